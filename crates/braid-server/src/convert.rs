//! Qdrant's JSON shapes ⇄ the facade's types. Mapping only: every decision about what
//! a request means is the facade's.

use std::collections::BTreeMap;

use braid::{
    CollectionConfig, CollectionInfo, ContextPair, Distance, Document, Example, Filter, Fusion, IndexKind,
    LookupFrom, NamedVectors, PointId, PointStruct, PointVectors, PointsSelector, Prefetch,
    QuantizationParams, Query, QueryPoints, QueryRequest, Recommend, RecommendStrategy, Record, ScoredPoint,
    SearchParams, SparseVector, SparseVectors, VectorParams, WithPayload, WithVectors,
};
use serde_json::{Map, Value, json};

use crate::ApiError;

use crate::mapping::{self, CollectionSpec, DEFAULT_VECTOR, HnswDiff, QuantizationSpec, SpaceSpec, Spaces};

fn bad(why: impl Into<String>) -> ApiError {
    ApiError::bad_request(why.into())
}

fn object<'a>(v: &'a Value, what: &str) -> Result<&'a Map<String, Value>, ApiError> {
    v.as_object().ok_or_else(|| bad(format!("{what} must be a JSON object")))
}

/// Checks the fields of one request object before it is decoded: each field present
/// (not null) must be one Braid reads. Anything else — a Qdrant field Braid does not
/// serve (`update_filter`, `order_by`, `sparse_vectors`, …) or a misspelt one — is
/// refused by name: a setting is served or refused, never dropped.
pub(crate) fn only(o: &Map<String, Value>, what: &str, served: &[&str]) -> Result<(), ApiError> {
    match o.iter().find(|(k, v)| !v.is_null() && !served.contains(&k.as_str())) {
        None => Ok(()),
        Some((k, _)) => Err(bad(format!(
            "{what}: `{k}` is not served by Braid (this object takes {})",
            served.iter().map(|s| format!("`{s}`")).collect::<Vec<_>>().join(", ")
        ))),
    }
}

/// A field Braid accepts only at the one value that describes what it does (one
/// shard, vectors as f32, …); any other value is refused.
fn fixed(o: &Map<String, Value>, key: &str, braid: Value, meaning: &str) -> Result<(), ApiError> {
    match field(o, key) {
        Some(v) if *v != braid => {
            Err(bad(format!("`{key}`: {v} is not served; Braid has {braid} only ({meaning})")))
        }
        _ => Ok(()),
    }
}

fn field<'a>(o: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    o.get(key).filter(|v| !v.is_null())
}

fn usize_field(o: &Map<String, Value>, key: &str) -> Result<Option<usize>, ApiError> {
    match field(o, key) {
        None => Ok(None),
        Some(v) => v
            .as_u64()
            .map(|n| Some(n as usize))
            .ok_or_else(|| bad(format!("`{key}` must be a non-negative integer, got {v}"))),
    }
}

fn f32_field(o: &Map<String, Value>, key: &str) -> Result<Option<f32>, ApiError> {
    match field(o, key) {
        None => Ok(None),
        Some(v) => v
            .as_f64()
            .map(|x| Some(x as f32))
            .ok_or_else(|| bad(format!("`{key}` must be a number, got {v}"))),
    }
}

fn string_list(v: &Value, what: &str) -> Result<Vec<String>, ApiError> {
    let list = v.as_array().ok_or_else(|| bad(format!("{what} must be a list of strings")))?;
    list.iter()
        .map(|s| {
            s.as_str().map(str::to_string).ok_or_else(|| bad(format!("{what} must be a list of strings")))
        })
        .collect()
}

fn distance(v: &Value) -> Result<Distance, ApiError> {
    v.as_str()
        .and_then(mapping::distance_named)
        .ok_or_else(|| bad(format!("unknown distance {v}: use Cosine, Euclid, Dot or Manhattan")))
}

fn hnsw(v: Option<&Value>) -> Result<HnswDiff, ApiError> {
    let Some(v) = v.filter(|v| !v.is_null()) else { return Ok(HnswDiff::default()) };
    let o = object(v, "`hnsw_config`")?;
    only(
        o,
        "`hnsw_config`",
        &[
            "m",
            "ef_construct",
            "full_scan_threshold",
            "on_disk",
            "max_indexing_threads",
            "payload_m",
            "memory",
        ],
    )?;
    fixed(o, "max_indexing_threads", json!(0), "graphs are built on every core")?;
    // Qdrant's newer `memory` overrides the deprecated `on_disk`: `cold` maps the
    // graph from its file; `cached` and `pinned` keep it in RAM (Braid's heap).
    let on_disk = match field(o, "memory") {
        None => bool_field(o, "hnsw_config.on_disk")?,
        Some(m) => Some(match m.as_str() {
            Some("cold") => true,
            Some("cached" | "pinned") => false,
            _ => {
                return Err(bad(format!(
                    "`hnsw_config.memory` must be \"cold\", \"cached\" or \"pinned\", got {m}"
                )));
            }
        }),
    };
    Ok(HnswDiff {
        m: usize_field(o, "m")?,
        ef_construct: usize_field(o, "ef_construct")?,
        full_scan_threshold: usize_field(o, "full_scan_threshold")?,
        payload_m: usize_field(o, "payload_m")?,
        on_disk,
    })
}

/// A `quantization_config` (collection-level or per vector), read for
/// [`QuantizationSpec::check`].
fn quantization(v: Option<&Value>) -> Result<QuantizationSpec, ApiError> {
    let Some(v) = v.filter(|v| !v.is_null()) else { return Ok(QuantizationSpec::Absent) };
    let o = object(v, "`quantization_config`")?;
    Ok(match (o.get("scalar"), o.get("binary"), o.len()) {
        (None, None, 1) if o.contains_key("product") => {
            let po = object(&o["product"], "`quantization_config.product`")?;
            only(po, "`quantization_config.product`", &["compression", "always_ram", "memory"])?;
            QuantizationSpec::Product {
                compression: match field(po, "compression") {
                    None => None,
                    Some(Value::String(s)) => Some(s.clone()),
                    Some(v) => {
                        return Err(bad(format!(
                            "`quantization_config.product.compression` must be a string, got {v}"
                        )));
                    }
                },
                always_ram: bool_field(po, "quantization_config.product.always_ram")?,
                memory: placement_name(po),
            }
        }
        (Some(scalar), None, 1) => {
            let so = object(scalar, "`quantization_config.scalar`")?;
            only(so, "`quantization_config.scalar`", &["type", "quantile", "always_ram", "memory"])?;
            let kind = so.get("type");
            QuantizationSpec::Scalar {
                kind: kind
                    .and_then(Value::as_str)
                    .map_or_else(|| format!("{}", kind.unwrap_or(&Value::Null)), str::to_string),
                quantile: f32_field(so, "quantile")?,
                always_ram: bool_field(so, "quantization_config.scalar.always_ram")?,
                memory: placement_name(so),
            }
        }
        (None, Some(binary), 1) => {
            let bo = object(binary, "`quantization_config.binary`")?;
            only(
                bo,
                "`quantization_config.binary`",
                &["always_ram", "encoding", "query_encoding", "memory"],
            )?;
            let name = |key: &str| -> Result<Option<String>, ApiError> {
                match field(bo, key) {
                    None => Ok(None),
                    Some(Value::String(s)) => Ok(Some(s.clone())),
                    Some(v) => {
                        Err(bad(format!("`quantization_config.binary.{key}` must be a string, got {v}")))
                    }
                }
            };
            QuantizationSpec::Binary {
                always_ram: bool_field(bo, "quantization_config.binary.always_ram")?,
                encoding: name("encoding")?,
                query_encoding: name("query_encoding")?,
                memory: placement_name(bo),
            }
        }
        _ => QuantizationSpec::Other { kinds: o.keys().cloned().collect() },
    })
}

/// A quantization's `memory` placement as given (a string, or any other JSON as text).
fn placement_name(o: &serde_json::Map<String, Value>) -> Option<String> {
    field(o, "memory").map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
}

/// What collection info reports for a space's quantization.
fn quantization_json(p: &VectorParams) -> Value {
    code_kind_json(p.code_kind(), p.codes_on_disk)
}

/// Codes of `kind` in Qdrant's `quantization_config` shape (`null` for none); codes
/// on disk report `always_ram: false`.
fn code_kind_json(kind: Option<braid::distance::CodeKind>, on_disk: bool) -> Value {
    let always_ram = !on_disk;
    match kind {
        Some(braid::distance::CodeKind::Int8) => {
            json!({"scalar": {"type": "int8", "always_ram": always_ram}})
        }
        Some(braid::distance::CodeKind::Binary) => {
            json!({"binary": {"always_ram": always_ram, "encoding": "one_bit", "query_encoding": "scalar8bits"}})
        }
        Some(braid::distance::CodeKind::BinaryTwoBits) => {
            json!({"binary": {"always_ram": always_ram, "encoding": "two_bits", "query_encoding": "scalar8bits"}})
        }
        Some(braid::distance::CodeKind::Product(c)) => {
            json!({"product": {"compression": c.name(), "always_ram": always_ram}})
        }
        None => Value::Null,
    }
}

fn space_spec(v: &Value) -> Result<SpaceSpec, ApiError> {
    let o = object(v, "vector params")?;
    only(
        o,
        "vector params",
        &[
            "size",
            "distance",
            "hnsw_config",
            "quantization_config",
            "on_disk",
            "memory",
            "datatype",
            "multivector_config",
        ],
    )?;
    let multivector = match field(o, "multivector_config") {
        None => false,
        Some(m) => {
            let m = object(m, "`multivector_config`")?;
            only(m, "`multivector_config`", &["comparator"])?;
            match field(m, "comparator").and_then(Value::as_str) {
                Some("max_sim") => true,
                _ => return Err(bad("`multivector_config.comparator` must be \"max_sim\"")),
            }
        }
    };
    let datatype = match field(o, "datatype") {
        None => None,
        Some(d) => Some(d.as_str().and_then(braid::Datatype::from_name).ok_or_else(|| {
            bad(format!("`datatype` must be \"float32\", \"float16\" or \"uint8\", got {d}"))
        })?),
    };
    Ok(SpaceSpec {
        size: usize_field(o, "size")?,
        distance: field(o, "distance").map(distance).transpose()?,
        hnsw: hnsw(o.get("hnsw_config"))?,
        quantization: quantization(o.get("quantization_config"))?,
        on_disk: rows_on_disk(o)?,
        multivector,
        datatype,
    })
}

/// `PUT /collections/{name}` body: `vectors` is one `VectorParams` (the unnamed
/// vector) or a map of named ones (`mapping::CollectionSpec` decides the rest).
pub(crate) fn collection_config(body: &Value) -> Result<CollectionConfig, ApiError> {
    let o = object(body, "the request body")?;
    only(
        o,
        "create collection",
        &[
            "vectors",
            "hnsw_config",
            "quantization_config",
            "shard_number",
            "replication_factor",
            "write_consistency_factor",
            "on_disk_payload",
            "payload",
            "optimizers_config",
            "sparse_vectors",
            "sharding_method",
        ],
    )?;
    fixed(o, "sharding_method", json!("auto"), "points placed by their ids; shard keys need a cluster")?;
    fixed(o, "shard_number", json!(1), "one shard")?;
    fixed(o, "replication_factor", json!(1), "one replica")?;
    fixed(o, "write_consistency_factor", json!(1), "one replica")?;
    let on_disk_payload = payloads_on_disk(o, "")?;
    let spaces = match field(o, "vectors") {
        None => None,
        Some(vectors) => {
            let vo = object(vectors, "`vectors`")?;
            Some(if vo.contains_key("size") {
                Spaces::Unnamed(space_spec(vectors)?)
            } else {
                Spaces::Named(
                    vo.iter()
                        .map(|(name, p)| Ok((name.clone(), space_spec(p)?)))
                        .collect::<Result<_, ApiError>>()?,
                )
            })
        }
    };
    let thresholds = optimizer_thresholds(field(o, "optimizers_config"))?;
    let sparse = match field(o, "sparse_vectors") {
        None => Vec::new(),
        Some(v) => object(v, "`sparse_vectors`")?
            .iter()
            .map(|(name, p)| Ok((name.clone(), sparse_params(p)?)))
            .collect::<Result<_, ApiError>>()?,
    };
    CollectionSpec {
        indexing_threshold: thresholds.0,
        deleted_threshold: thresholds.1,
        vacuum_min: thresholds.2,
        hnsw: hnsw(o.get("hnsw_config"))?,
        quantization: quantization(o.get("quantization_config"))?,
        spaces,
        sparse,
        on_disk_payload,
    }
    .config()
}

/// `PATCH /collections/{name}` body (Qdrant's `UpdateCollection`): diffs of the
/// graph settings, quantization and thresholds, collection-wide and per space.
pub(crate) fn collection_update(body: &Value) -> Result<mapping::UpdateSpec, ApiError> {
    let o = object(body, "the request body")?;
    only(
        o,
        "update collection",
        &["vectors", "optimizers_config", "params", "hnsw_config", "quantization_config", "sparse_vectors"],
    )?;
    let mut on_disk_payload = None;
    if let Some(params) = field(o, "params") {
        let po = object(params, "`params`")?;
        only(
            po,
            "`params`",
            &[
                "replication_factor",
                "write_consistency_factor",
                "read_fan_out_factor",
                "on_disk_payload",
                "payload",
            ],
        )?;
        fixed(po, "replication_factor", json!(1), "one replica")?;
        fixed(po, "write_consistency_factor", json!(1), "one replica")?;
        fixed(po, "read_fan_out_factor", json!(0), "one replica answers every read")?;
        on_disk_payload = payloads_on_disk(po, "params.")?;
    }
    let mut vectors = Vec::new();
    if let Some(v) = field(o, "vectors") {
        for (name, diff) in object(v, "`vectors`")? {
            let d = object(diff, "a vector's update")?;
            only(d, "a vector's update", &["hnsw_config", "quantization_config", "on_disk", "memory"])?;
            vectors.push((
                name.clone(),
                hnsw(d.get("hnsw_config"))?,
                quantization_change(d.get("quantization_config"))?,
                rows_on_disk(d)?,
            ));
        }
    }
    let mut sparse = Vec::new();
    if let Some(v) = field(o, "sparse_vectors") {
        for (name, p) in object(v, "`sparse_vectors`")? {
            let given = object(p, "sparse vector params")?.get("modifier").is_some_and(|m| !m.is_null());
            let modifier = sparse_params(p)?;
            sparse.push((name.clone(), given.then_some(modifier)));
        }
    }
    let (indexing_threshold, deleted_threshold, vacuum_min) =
        optimizer_thresholds(field(o, "optimizers_config"))?;
    Ok(mapping::UpdateSpec {
        hnsw: hnsw(o.get("hnsw_config"))?,
        quantization: quantization_change(o.get("quantization_config"))?,
        vectors,
        sparse,
        indexing_threshold,
        deleted_threshold,
        vacuum_min,
        on_disk_payload,
    })
}

type Thresholds = (Option<usize>, Option<f64>, Option<usize>);

/// `optimizers_config`: (`indexing_threshold`, `deleted_threshold`,
/// `vacuum_min_vector_number`), the settings Braid keeps per collection. Segments,
/// memory maps and threads are the engine's business in Braid (one segment per
/// collection, mapped after each checkpoint, every core), so they are refused.
fn optimizer_thresholds(v: Option<&Value>) -> Result<Thresholds, ApiError> {
    let Some(v) = v else { return Ok((None, None, None)) };
    let oc = object(v, "`optimizers_config`")?;
    only(
        oc,
        "`optimizers_config`",
        &["indexing_threshold", "deleted_threshold", "vacuum_min_vector_number"],
    )?;
    let deleted = match field(oc, "deleted_threshold") {
        None => None,
        Some(v) => {
            Some(v.as_f64().ok_or_else(|| bad(format!("`deleted_threshold` must be a number, got {v}")))?)
        }
    };
    Ok((usize_field(oc, "indexing_threshold")?, deleted, usize_field(oc, "vacuum_min_vector_number")?))
}

/// An update's `quantization_config`: `"Disabled"`, or a config as at create.
fn quantization_change(v: Option<&Value>) -> Result<mapping::QuantizationChange, ApiError> {
    Ok(match v.filter(|v| !v.is_null()) {
        None => mapping::QuantizationChange::Keep,
        Some(Value::String(s)) if s.eq_ignore_ascii_case("disabled") => mapping::QuantizationChange::Disabled,
        Some(Value::String(s)) => {
            return Err(bad(format!(
                "`quantization_config`: unknown value \"{s}\" (use \"Disabled\" or an object)"
            )));
        }
        Some(v) => mapping::QuantizationChange::To(quantization(Some(v))?),
    })
}

/// `PUT /collections/{c}/vectors/{name}` body (Qdrant's `VectorNameConfig`):
/// `{"dense": {"size", "distance", "multivector_config"?, "datatype"?}}` or
/// `{"sparse": {"modifier"?, "datatype"?}}`.
pub(crate) fn new_space(body: &Value) -> Result<mapping::NewSpace, ApiError> {
    let o = object(body, "the request body")?;
    only(o, "a new vector", &["dense", "sparse"])?;
    match (field(o, "dense"), field(o, "sparse")) {
        (Some(d), None) => {
            let d = object(d, "`dense`")?;
            only(d, "`dense`", &["size", "distance", "multivector_config", "datatype"])?;
            let spec = space_spec(&Value::Object(d.clone()))?;
            Ok(mapping::NewSpace::Dense {
                size: spec.size.ok_or_else(|| bad("`dense` needs `size`"))?,
                distance: spec.distance.ok_or_else(|| bad("`dense` needs `distance`"))?,
                multivector: spec.multivector,
                datatype: spec.datatype.unwrap_or_default(),
            })
        }
        (None, Some(sp)) => {
            let so = object(sp, "`sparse`")?;
            only(so, "`sparse`", &["modifier", "datatype"])?;
            fixed(so, "datatype", json!("float32"), "sparse values are stored as f32")?;
            let modifier = match field(so, "modifier") {
                None => braid::Modifier::None,
                Some(m) => m
                    .as_str()
                    .and_then(mapping::modifier_named)
                    .ok_or_else(|| bad(format!("unknown sparse modifier {m}: use \"none\" or \"idf\"")))?,
            };
            Ok(mapping::NewSpace::Sparse { modifier })
        }
        _ => Err(bad("a new vector is `{\"dense\": {…}}` or `{\"sparse\": {…}}`, exactly one")),
    }
}

/// One `sparse_vectors` entry: `{"modifier": "idf"|"none", "index": {...}}`.
fn sparse_params(v: &Value) -> Result<braid::Modifier, ApiError> {
    let o = object(v, "sparse vector params")?;
    only(o, "sparse vector params", &["modifier", "index"])?;
    if let Some(index) = field(o, "index") {
        let io = object(index, "`index`")?;
        // Braid answers every sparse search exactly from its inverted index, choosing
        // a scan for small filters by cost; the index lives in memory as f32.
        only(io, "sparse `index`", &["on_disk", "datatype"])?;
        fixed(io, "on_disk", json!(false), "the inverted index lives in memory")?;
        fixed(io, "datatype", json!("float32"), "sparse values are stored as f32")?;
    }
    match field(o, "modifier") {
        None => Ok(braid::Modifier::None),
        Some(m) => m
            .as_str()
            .and_then(mapping::modifier_named)
            .ok_or_else(|| bad(format!("unknown sparse modifier {m}: use \"none\" or \"idf\""))),
    }
}

pub(crate) fn point_id(v: &Value) -> Result<PointId, ApiError> {
    braid::filter::parse_point_id(v, "id").map_err(|e| bad(e.to_string()))
}

fn ids(v: &Value) -> Result<Vec<PointId>, ApiError> {
    v.as_array().ok_or_else(|| bad("`points` must be a list of ids"))?.iter().map(point_id).collect()
}

pub(crate) fn filter(v: Option<&Value>) -> Result<Option<Filter>, ApiError> {
    match v.filter(|v| !v.is_null()) {
        None => Ok(None),
        Some(v) => Filter::from_json(v).map(Some).map_err(|e| ApiError::from(braid::Error::from(e))),
    }
}

fn dense(v: &Value, what: &str) -> Result<Vec<f32>, ApiError> {
    let list = v.as_array().ok_or_else(|| bad(format!("{what} must be a list of numbers")))?;
    list.iter()
        .map(|x| {
            x.as_f64()
                .map(|x| x as f32)
                .ok_or_else(|| bad(format!("{what} must be a list of numbers, got {x}")))
        })
        .collect()
}

/// `{"indices": [...], "values": [...]}`.
pub(crate) fn sparse(o: &Map<String, Value>, what: &str) -> Result<SparseVector, ApiError> {
    only(o, what, &["indices", "values"])?;
    let list = |key: &str| {
        field(o, key).and_then(Value::as_array).ok_or_else(|| bad(format!("{what} needs `{key}`, a list")))
    };
    let indices = list("indices")?
        .iter()
        .map(|x| {
            x.as_u64()
                .and_then(|i| u32::try_from(i).ok())
                .ok_or_else(|| bad(format!("{what}: indices are integers from 0 to {}, got {x}", u32::MAX)))
        })
        .collect::<Result<Vec<u32>, _>>()?;
    let values = dense(&Value::Array(list("values")?.clone()), &format!("{what} `values`"))?;
    SparseVector::new(indices, values).map_err(|e| bad(format!("{what}: {e}")))
}

/// `{"text": "...", "model": "...", "options": {...}}`: Qdrant's `Document`.
pub(crate) fn document(o: &Map<String, Value>, what: &str) -> Result<Document, ApiError> {
    only(o, what, &["text", "model", "options"])?;
    let text = field(o, "text")
        .and_then(Value::as_str)
        .ok_or_else(|| bad(format!("{what} needs `text`, a string")))?;
    let model = field(o, "model")
        .and_then(Value::as_str)
        .ok_or_else(|| bad(format!("{what} needs `model`, a string")))?;
    let options = match field(o, "options") {
        None => Map::new(),
        Some(v) => object(v, &format!("{what} `options`"))?.clone(),
    };
    Ok(Document { text: text.to_string(), model: model.to_string(), options })
}

/// A point's vectors as REST gives them: dense lists, sparse objects and documents,
/// by name.
#[derive(Default)]
pub(crate) struct VectorsIn {
    pub(crate) dense: NamedVectors,
    pub(crate) sparse: SparseVectors,
    pub(crate) multi: braid::MultiVectors,
    pub(crate) documents: BTreeMap<String, Document>,
}

/// What one vector value is: a dense list, a sparse vector, a list of vectors (for a
/// multivector space) or a document.
pub(crate) enum VectorIn {
    Dense(Vec<f32>),
    Sparse(SparseVector),
    Multi(Vec<Vec<f32>>),
    Document(Document),
}

/// Whether an object is a sparse vector (`indices` and `values` lists), not a map of
/// named vectors (whose names may be anything, `text` included).
fn is_sparse(o: &Map<String, Value>) -> bool {
    o.get("indices").is_some_and(Value::is_array) && o.get("values").is_some_and(Value::is_array)
}

/// Whether an object is a document or another inference object (a `model` string
/// beside `text`, `image` or `object`), not a map of named vectors.
fn is_inference(o: &Map<String, Value>) -> bool {
    o.get("model").is_some_and(Value::is_string)
        && ["text", "image", "object"].iter().any(|k| o.contains_key(*k))
}

pub(crate) fn vector_in(v: &Value, what: &str) -> Result<VectorIn, ApiError> {
    match v {
        Value::Array(items) if items.first().is_some_and(Value::is_array) => {
            Ok(VectorIn::Multi(items.iter().map(|row| dense(row, what)).collect::<Result<_, _>>()?))
        }
        Value::Array(_) => Ok(VectorIn::Dense(dense(v, what)?)),
        Value::Object(o) if o.contains_key("indices") || o.contains_key("values") => {
            Ok(VectorIn::Sparse(sparse(o, what)?))
        }
        Value::Object(o) if o.contains_key("text") => Ok(VectorIn::Document(document(o, what)?)),
        Value::Object(o) if o.contains_key("image") || o.contains_key("object") => {
            Err(bad(format!("{what}: only text documents (model bm25) are served, not images or objects")))
        }
        _ => Err(bad(format!(
            "{what} must be a list of numbers, a sparse vector {{indices, values}} or a document {{text, model}}"
        ))),
    }
}

impl VectorsIn {
    fn add(&mut self, name: &str, v: &Value) -> Result<(), ApiError> {
        match vector_in(v, &format!("vector `{name}`"))? {
            VectorIn::Dense(d) => self.dense.insert(name.to_string(), d).map(drop),
            VectorIn::Sparse(s) => self.sparse.insert(name.to_string(), s).map(drop),
            VectorIn::Multi(m) => self.multi.insert(name.to_string(), m).map(drop),
            VectorIn::Document(d) => self.documents.insert(name.to_string(), d).map(drop),
        };
        Ok(())
    }

    /// A point's `vector`: a list (the unnamed vector) or a map of named vectors.
    fn read(v: &Value) -> Result<VectorsIn, ApiError> {
        let mut out = VectorsIn::default();
        match v {
            Value::Array(_) => out.add(DEFAULT_VECTOR, v)?,
            Value::Object(o) if is_sparse(o) || is_inference(o) => {
                return Err(bad(
                    "sparse vectors and documents go to named sparse spaces: `vector: {\"name\": …}`",
                ));
            }
            Value::Object(map) => {
                for (k, x) in map {
                    out.add(k, x)?;
                }
            }
            _ => return Err(bad("`vector` must be a list of numbers or a map of named vectors")),
        }
        Ok(out)
    }

    fn point(self, id: PointId, payload: Value) -> PointStruct {
        PointStruct {
            id,
            vectors: self.dense,
            sparse: self.sparse,
            multi: self.multi,
            documents: self.documents,
            payload,
        }
    }

    fn update(self, id: PointId) -> PointVectors {
        PointVectors {
            id,
            vectors: self.dense,
            sparse: self.sparse,
            multi: self.multi,
            documents: self.documents,
        }
    }
}

fn payload(v: Option<&Value>) -> Value {
    v.filter(|v| !v.is_null()).cloned().unwrap_or_else(|| Value::Object(Map::new()))
}

/// One point as REST writes it: `{"id", "vector" | "vectors", "payload"}`.
pub(crate) fn point(p: &Value) -> Result<PointStruct, ApiError> {
    let p = object(p, "a point")?;
    only(p, "a point", &["id", "vector", "vectors", "payload"])?;
    let id = point_id(field(p, "id").ok_or_else(|| bad("a point needs an `id`"))?)?;
    let vectors = match field(p, "vector").or_else(|| field(p, "vectors")) {
        Some(v) => VectorsIn::read(v)?,
        None => VectorsIn::default(),
    };
    Ok(vectors.point(id, payload(p.get("payload"))))
}

/// `PUT /points` body: `{"points": [...]}` or `{"batch": {"ids", "vectors", "payloads"}}`.
pub(crate) fn upsert(body: &Value) -> Result<Vec<PointStruct>, ApiError> {
    let o = object(body, "the request body")?;
    only(o, "upsert", &["points", "batch"])?;
    if let Some(points) = field(o, "points") {
        let list = points.as_array().ok_or_else(|| bad("`points` must be a list"))?;
        return list.iter().map(point).collect();
    }
    let batch =
        object(field(o, "batch").ok_or_else(|| bad("the body needs `points` or `batch`"))?, "`batch`")?;
    only(batch, "`batch`", &["ids", "vectors", "payloads"])?;
    let ids = ids(field(batch, "ids").ok_or_else(|| bad("`batch` needs `ids`"))?)?;
    let mut vectors: Vec<VectorsIn> = (0..ids.len()).map(|_| VectorsIn::default()).collect();
    match field(batch, "vectors") {
        Some(Value::Array(rows)) => {
            if rows.len() != ids.len() {
                return Err(bad(format!("{} ids but {} vectors", ids.len(), rows.len())));
            }
            for (slot, row) in vectors.iter_mut().zip(rows) {
                slot.dense.insert(DEFAULT_VECTOR.to_string(), dense(row, "a vector")?);
            }
        }
        Some(Value::Object(named)) => {
            for (name, rows) in named {
                let rows = rows.as_array().ok_or_else(|| bad(format!("vectors `{name}` must be a list")))?;
                if rows.len() != ids.len() {
                    return Err(bad(format!("{} ids but {} `{name}` vectors", ids.len(), rows.len())));
                }
                for (slot, row) in vectors.iter_mut().zip(rows) {
                    slot.add(name, row)?;
                }
            }
        }
        None => {}
        Some(_) => return Err(bad("`batch.vectors` must be a list or a map of lists")),
    }
    let payloads = match field(batch, "payloads") {
        None => vec![Value::Object(Map::new()); ids.len()],
        Some(Value::Array(p)) if p.len() == ids.len() => p.iter().map(|v| payload(Some(v))).collect(),
        Some(_) => return Err(bad("`batch.payloads` must be a list as long as `ids`")),
    };
    Ok(ids
        .into_iter()
        .zip(vectors)
        .zip(payloads)
        .map(|((id, vectors), payload)| vectors.point(id, payload))
        .collect())
}

/// `PUT /points/vectors` body: `{"points": [{"id", "vector"}]}`.
pub(crate) fn update_vectors(body: &Value) -> Result<Vec<PointVectors>, ApiError> {
    let o = object(body, "the request body")?;
    only(o, "update vectors", &["points"])?;
    let list = field(o, "points").and_then(Value::as_array).ok_or_else(|| bad("`points` must be a list"))?;
    list.iter()
        .map(|p| {
            let p = object(p, "a point")?;
            only(p, "a point", &["id", "vector"])?;
            let id = point_id(field(p, "id").ok_or_else(|| bad("a point needs an `id`"))?)?;
            let v = field(p, "vector").ok_or_else(|| bad("a point needs a `vector`"))?;
            Ok(VectorsIn::read(v)?.update(id))
        })
        .collect()
}

/// `{"points": [ids]}` or `{"filter": {...}}`.
pub(crate) fn selector(o: &Map<String, Value>) -> Result<PointsSelector, ApiError> {
    if let Some(points) = field(o, "points") {
        return Ok(PointsSelector::Ids(ids(points)?));
    }
    match filter(o.get("filter"))? {
        Some(f) => Ok(PointsSelector::Filter(f)),
        None => Err(bad("select points with `points` (ids) or `filter`")),
    }
}

pub(crate) fn body_selector(body: &Value) -> Result<PointsSelector, ApiError> {
    selector(object(body, "the request body")?)
}

pub(crate) fn with_payload(v: Option<&Value>, default: bool) -> Result<WithPayload, ApiError> {
    match v.filter(|v| !v.is_null()) {
        None => Ok(default.into()),
        Some(Value::Bool(b)) => Ok((*b).into()),
        Some(v @ Value::Array(_)) => Ok(WithPayload::Include(string_list(v, "`with_payload`")?)),
        Some(Value::Object(o)) => {
            only(o, "`with_payload`", &["include", "exclude"])?;
            if let Some(keys) = field(o, "include") {
                Ok(WithPayload::Include(string_list(keys, "`with_payload.include`")?))
            } else if let Some(keys) = field(o, "exclude") {
                Ok(WithPayload::Exclude(string_list(keys, "`with_payload.exclude`")?))
            } else {
                Err(bad("`with_payload` object needs `include` or `exclude`"))
            }
        }
        Some(v) => {
            Err(bad(format!("`with_payload` must be a bool, a list of keys or include/exclude, got {v}")))
        }
    }
}

pub(crate) fn with_vectors(o: &Map<String, Value>) -> Result<WithVectors, ApiError> {
    match field(o, "with_vector").or_else(|| field(o, "with_vectors")) {
        None => Ok(WithVectors::None),
        Some(Value::Bool(b)) => Ok((*b).into()),
        Some(v @ Value::Array(_)) => Ok(WithVectors::Names(string_list(v, "`with_vector`")?)),
        Some(v) => Err(bad(format!("`with_vector` must be a bool or a list of names, got {v}"))),
    }
}

fn params(o: &Map<String, Value>) -> Result<Option<SearchParams>, ApiError> {
    let Some(p) = field(o, "params") else { return Ok(None) };
    let p = object(p, "`params`")?;
    only(p, "`params`", &["hnsw_ef", "exact", "indexed_only", "quantization"])?;
    fixed(p, "indexed_only", json!(false), "every stored point is searchable at once")?;
    let quantization = match field(p, "quantization") {
        None => None,
        Some(q) => {
            let q = object(q, "`params.quantization`")?;
            only(q, "`params.quantization`", &["ignore", "rescore", "oversampling"])?;
            let oversampling = match field(q, "oversampling") {
                None => None,
                Some(v) => Some(v.as_f64().ok_or_else(|| {
                    bad(format!("`params.quantization.oversampling` must be a number, got {v}"))
                })?),
            };
            Some(QuantizationParams {
                ignore: bool_field(q, "params.quantization.ignore")?.unwrap_or(false),
                rescore: bool_field(q, "params.quantization.rescore")?,
                oversampling,
            })
        }
    };
    Ok(Some(SearchParams {
        hnsw_ef: usize_field(p, "hnsw_ef")?,
        exact: bool_field(p, "params.exact")?.unwrap_or(false),
        quantization,
    }))
}

/// A boolean field `path` names (its last part is the key), if present.
/// A vector space's rows on disk: its `memory` placement (`cold` on disk, `cached` in
/// memory; `pinned` refused, as Qdrant refuses it for dense vectors), else its
/// deprecated `on_disk`.
fn rows_on_disk(o: &Map<String, Value>) -> Result<Option<bool>, ApiError> {
    match field(o, "memory") {
        None => bool_field(o, "on_disk"),
        Some(m) => match m.as_str() {
            Some("cold") => Ok(Some(true)),
            Some("cached") => Ok(Some(false)),
            Some("pinned") => Err(bad(
                "`memory: pinned` is not supported for dense vector storage: use \"cached\" or \"cold\"",
            )),
            _ => Err(bad(format!("`memory` must be \"cached\" or \"cold\", got {m}"))),
        },
    }
}

/// Whether the payloads are kept on disk, from the deprecated `on_disk_payload` and the
/// `payload.memory` that overrides it (Qdrant's rule): `cold` on disk, read as asked
/// for; `cached` in memory; `pinned` refused, as Qdrant refuses it for payloads.
/// `at`: where the object sits in the body, for errors.
fn payloads_on_disk(o: &Map<String, Value>, at: &str) -> Result<Option<bool>, ApiError> {
    let Some(payload) = field(o, "payload") else {
        return bool_field(o, &format!("{at}on_disk_payload"));
    };
    let po = object(payload, "`payload`")?;
    only(po, "`payload`", &["memory"])?;
    match field(po, "memory") {
        None => bool_field(o, &format!("{at}on_disk_payload")),
        Some(m) => match m.as_str() {
            Some("cold") => Ok(Some(true)),
            Some("cached") => Ok(Some(false)),
            Some("pinned") => Err(bad(format!(
                "`{at}payload.memory: pinned` is not supported for payload storage: use \"cached\" or \"cold\""
            ))),
            _ => Err(bad(format!("`{at}payload.memory` must be \"cached\" or \"cold\", got {m}"))),
        },
    }
}

fn bool_field(o: &Map<String, Value>, path: &str) -> Result<Option<bool>, ApiError> {
    let key = path.rsplit('.').next().unwrap_or(path);
    match field(o, key) {
        None => Ok(None),
        Some(v) => v.as_bool().map(Some).ok_or_else(|| bad(format!("`{path}` must be a bool, got {v}"))),
    }
}

/// `POST /points/search` body, as the query it is.
pub(crate) fn search(body: &Value) -> Result<QueryPoints, ApiError> {
    search_with(body, &[])
}

/// The parts of a body only a grouped call has, which its other parts' decoder allows.
const GROUP_FIELDS: [&str; 3] = ["group_by", "group_size", "with_lookup"];

/// Refuses any field of `o` but `served` and `extra`.
fn only_with(o: &Map<String, Value>, what: &str, served: &[&str], extra: &[&str]) -> Result<(), ApiError> {
    let all: Vec<&str> = served.iter().chain(extra).copied().collect();
    only(o, what, &all)
}

fn search_with(body: &Value, extra: &[&str]) -> Result<QueryPoints, ApiError> {
    let o = object(body, "a search")?;
    only_with(
        o,
        "a search",
        &[
            "vector",
            "filter",
            "params",
            "limit",
            "offset",
            "with_payload",
            "with_vector",
            "with_vectors",
            "score_threshold",
        ],
        extra,
    )?;
    let (using, query) = match field(o, "vector").ok_or_else(|| bad("a search needs `vector`"))? {
        v @ Value::Array(_) => (DEFAULT_VECTOR.to_string(), Query::Nearest(dense(v, "`vector`")?)),
        Value::Object(named) => {
            only(named, "a named vector", &["name", "vector"])?;
            let name = field(named, "name")
                .and_then(Value::as_str)
                .ok_or_else(|| bad("a named vector needs `name`"))?;
            // Qdrant's NamedVector (a list) or NamedSparseVector ({indices, values}).
            let query = match field(named, "vector").ok_or_else(|| bad("a named vector needs `vector`"))? {
                Value::Object(s) => Query::Sparse(sparse(s, "`vector.vector`")?),
                v => Query::Nearest(dense(v, "`vector.vector`")?),
            };
            (name.to_string(), query)
        }
        _ => return Err(bad("`vector` must be a list or {\"name\", \"vector\"}")),
    };
    // The rest reads as the older calls' bodies do (a search has no `using` or
    // `lookup_from` field: the vector names its space).
    let mut points = explore_points(o, query)?;
    points.request.using = Some(using);
    Ok(points)
}

/// The parts the older `recommend` and `discover` bodies share with a search.
const EXPLORE_COMMON: [&str; 10] = [
    "filter",
    "params",
    "limit",
    "offset",
    "with_payload",
    "with_vector",
    "with_vectors",
    "score_threshold",
    "using",
    "lookup_from",
];

fn explore_points(o: &Map<String, Value>, query: Query) -> Result<QueryPoints, ApiError> {
    let request = QueryRequest {
        query: Some(query),
        using: field(o, "using").and_then(Value::as_str).map(str::to_string),
        filter: filter(o.get("filter"))?,
        params: params(o)?,
        limit: usize_field(o, "limit")?.unwrap_or(10),
        offset: usize_field(o, "offset")?.unwrap_or(0),
        score_threshold: f32_field(o, "score_threshold")?,
        lookup_from: lookup_from(o.get("lookup_from"))?,
        ..QueryRequest::default()
    };
    Ok(QueryPoints {
        request,
        with_payload: with_payload(o.get("with_payload"), false)?,
        with_vectors: with_vectors(o)?,
    })
}

/// `POST /points/recommend` body (Qdrant's older recommend API), as the query it is.
pub(crate) fn recommend(body: &Value) -> Result<QueryPoints, ApiError> {
    recommend_with(body, &[])
}

fn recommend_with(body: &Value, extra: &[&str]) -> Result<QueryPoints, ApiError> {
    let o = object(body, "a recommend request")?;
    let served: Vec<&str> = ["positive", "negative", "strategy"].into_iter().chain(EXPLORE_COMMON).collect();
    only_with(o, "a recommend request", &served, extra)?;
    explore_points(o, Query::Recommend(recommend_input(o)?))
}

/// `POST /points/discover` body (Qdrant's older discovery API): a target makes it
/// discovery, none a context search.
pub(crate) fn discover(body: &Value) -> Result<QueryPoints, ApiError> {
    let o = object(body, "a discover request")?;
    let served: Vec<&str> = ["target", "context"].into_iter().chain(EXPLORE_COMMON).collect();
    only(o, "a discover request", &served)?;
    let context = context(o.get("context"))?;
    let query = match field(o, "target").filter(|t| !t.is_null()) {
        Some(t) => Query::Discover { target: example(t, "`target`")?, context },
        None => Query::Context(context),
    };
    explore_points(o, query)
}

/// A vector given as a query: dense, sparse or a document.
fn vector_query(v: &Value, what: &str) -> Result<Query, ApiError> {
    Ok(match vector_in(v, what)? {
        VectorIn::Dense(d) => Query::Nearest(d),
        VectorIn::Sparse(s) => Query::Sparse(s),
        VectorIn::Multi(m) => Query::Multi(m),
        VectorIn::Document(d) => Query::Document(d),
    })
}

/// A recommend/discover example: a point id or a dense vector.
fn example(v: &Value, what: &str) -> Result<Example, ApiError> {
    match v {
        Value::Number(_) | Value::String(_) => Ok(Example::Id(point_id(v)?)),
        _ => match vector_in(v, what)? {
            VectorIn::Dense(d) => Ok(Example::Vector(d)),
            _ => Err(bad(format!("{what}: examples must be point ids or dense vectors"))),
        },
    }
}

fn examples(v: Option<&Value>, what: &str) -> Result<Vec<Example>, ApiError> {
    match v.filter(|v| !v.is_null()) {
        None => Ok(Vec::new()),
        Some(Value::Array(list)) => list.iter().map(|e| example(e, what)).collect(),
        Some(other) => Err(bad(format!("{what} must be a list of point ids or vectors, got {other}"))),
    }
}

fn strategy(v: Option<&Value>) -> Result<RecommendStrategy, ApiError> {
    match v.filter(|v| !v.is_null()).map(|v| v.as_str()) {
        None | Some(Some("average_vector")) => Ok(RecommendStrategy::AverageVector),
        Some(Some("best_score")) => Ok(RecommendStrategy::BestScore),
        Some(Some("sum_scores")) => Ok(RecommendStrategy::SumScores),
        _ => Err(bad("unknown recommend strategy: use \"average_vector\", \"best_score\" or \"sum_scores\"")),
    }
}

/// `{positive, negative, strategy}`.
pub(crate) fn recommend_input(o: &Map<String, Value>) -> Result<Recommend, ApiError> {
    Ok(Recommend {
        positive: examples(o.get("positive"), "`positive`")?,
        negative: examples(o.get("negative"), "`negative`")?,
        strategy: strategy(o.get("strategy"))?,
    })
}

/// A context: one `{positive, negative}` pair or a list of them.
pub(crate) fn context(v: Option<&Value>) -> Result<Vec<ContextPair>, ApiError> {
    let pair = |v: &Value| -> Result<ContextPair, ApiError> {
        let o = object(v, "a context pair")?;
        only(o, "a context pair", &["positive", "negative"])?;
        let side = |k: &str| {
            field(o, k)
                .ok_or_else(|| bad(format!("a context pair needs `{k}`")))
                .and_then(|v| example(v, "a context example"))
        };
        Ok(ContextPair { positive: side("positive")?, negative: side("negative")? })
    };
    match v.filter(|v| !v.is_null()) {
        None => Ok(Vec::new()),
        Some(Value::Array(list)) => list.iter().map(pair).collect(),
        Some(one) => Ok(vec![pair(one)?]),
    }
}

/// `lookup_from: {collection, vector}`.
pub(crate) fn lookup_from(v: Option<&Value>) -> Result<Option<LookupFrom>, ApiError> {
    let Some(v) = v.filter(|v| !v.is_null()) else { return Ok(None) };
    let o = object(v, "`lookup_from`")?;
    only(o, "`lookup_from`", &["collection", "vector"])?;
    let collection = field(o, "collection")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("`lookup_from` needs `collection`"))?
        .to_string();
    let vector = field(o, "vector").and_then(Value::as_str).map(str::to_string);
    Ok(Some(LookupFrom { collection, vector }))
}

fn fusion_name(v: &Value) -> Result<Fusion, ApiError> {
    match v.as_str() {
        Some("rrf") => Ok(Fusion::rrf()),
        Some("dbsf") => Ok(Fusion::dbsf()),
        _ => Err(bad(format!("unknown fusion {v}: use \"rrf\" or \"dbsf\""))),
    }
}

/// A `query`: a vector, `{"nearest": v}`, `{"fusion": "rrf"|"dbsf"}` or
/// `{"rrf": {"k", "weights"}}`.
fn query(v: &Value) -> Result<Query, ApiError> {
    match v {
        Value::Number(_) | Value::String(_) => Ok(Query::Point(point_id(v)?)),
        Value::Array(_) => vector_query(v, "`query`"),
        Value::Object(o) if is_sparse(o) || is_inference(o) => vector_query(v, "`query`"),
        Value::Object(o) => {
            // One kind per query object; `nearest` takes no `mmr` yet.
            only(
                o,
                "a query",
                &[
                    "nearest",
                    "mmr",
                    "fusion",
                    "rrf",
                    "sample",
                    "recommend",
                    "discover",
                    "context",
                    "order_by",
                    "formula",
                    "defaults",
                ],
            )?;
            if let Some(f) = field(o, "formula") {
                let formula = braid::Formula::from_json(f, o.get("defaults"))
                    .map_err(|e| ApiError::from(braid::Error::from(e)))?;
                Ok(Query::Formula(formula))
            } else if let Some(m) = field(o, "mmr") {
                let m = object(m, "`mmr`")?;
                only(m, "`mmr`", &["diversity", "candidates_limit"])?;
                let nearest = field(o, "nearest").ok_or_else(|| bad("`mmr` goes with `nearest`"))?;
                Ok(Query::Mmr {
                    nearest: example(nearest, "`nearest` (with `mmr`)")?,
                    mmr: braid::Mmr {
                        diversity: f32_field(m, "diversity")?,
                        candidates_limit: usize_field(m, "candidates_limit")?,
                    },
                })
            } else if let Some(ob) = field(o, "order_by") {
                Ok(Query::OrderBy(order_by(ob)?))
            } else if let Some(r) = field(o, "recommend") {
                let r = object(r, "`recommend`")?;
                only(r, "`recommend`", &["positive", "negative", "strategy"])?;
                Ok(Query::Recommend(recommend_input(r)?))
            } else if let Some(d) = field(o, "discover") {
                let d = object(d, "`discover`")?;
                only(d, "`discover`", &["target", "context"])?;
                let target = field(d, "target").ok_or_else(|| bad("`discover` needs `target`"))?;
                Ok(Query::Discover {
                    target: example(target, "`discover.target`")?,
                    context: context(d.get("context"))?,
                })
            } else if let Some(c) = field(o, "context") {
                Ok(Query::Context(context(Some(c))?))
            } else if let Some(s) = field(o, "sample") {
                match s.as_str() {
                    Some("random") => Ok(Query::Sample),
                    _ => Err(bad(format!("unknown sample {s}: use \"random\""))),
                }
            } else if let Some(n) = field(o, "nearest") {
                match n {
                    Value::Number(_) | Value::String(_) => Ok(Query::Point(point_id(n)?)),
                    _ => vector_query(n, "`query.nearest`"),
                }
            } else if let Some(f) = field(o, "fusion") {
                Ok(Query::Fusion(fusion_name(f)?))
            } else if let Some(r) = field(o, "rrf") {
                let r = object(r, "`rrf`")?;
                only(r, "`rrf`", &["k", "weights"])?;
                let weights = match field(r, "weights") {
                    None => None,
                    Some(w) => Some(dense(w, "`rrf.weights`")?),
                };
                let k = usize_field(r, "k")?.unwrap_or(braid::fusion::qdrant::DEFAULT_RRF_K);
                Ok(Query::Fusion(Fusion::Rrf { k, weights }))
            } else {
                Err(bad("a query object needs one of its kinds"))
            }
        }
        _ => Err(bad(format!("`query` must be a vector, a point id or a query object, got {v}"))),
    }
}

fn prefetches(v: Option<&Value>) -> Result<Vec<Prefetch>, ApiError> {
    match v.filter(|v| !v.is_null()) {
        None => Ok(Vec::new()),
        Some(Value::Array(list)) => list.iter().map(prefetch).collect(),
        Some(one) => Ok(vec![prefetch(one)?]),
    }
}

fn prefetch(v: &Value) -> Result<Prefetch, ApiError> {
    let o = object(v, "a prefetch")?;
    only(
        o,
        "a prefetch",
        &["prefetch", "query", "using", "filter", "params", "limit", "score_threshold", "lookup_from"],
    )?;
    Ok(Prefetch {
        query: field(o, "query").map(query).transpose()?,
        using: field(o, "using").and_then(Value::as_str).map(str::to_string),
        filter: filter(o.get("filter"))?,
        limit: usize_field(o, "limit")?,
        params: params(o)?,
        score_threshold: f32_field(o, "score_threshold")?,
        prefetch: prefetches(o.get("prefetch"))?,
        lookup_from: lookup_from(o.get("lookup_from"))?,
    })
}

/// `POST /points/query` body.
pub(crate) fn query_points(body: &Value) -> Result<QueryPoints, ApiError> {
    query_points_with(body, &[])
}

fn query_points_with(body: &Value, extra: &[&str]) -> Result<QueryPoints, ApiError> {
    let o = object(body, "a query")?;
    only_with(
        o,
        "a query",
        &[
            "prefetch",
            "query",
            "using",
            "filter",
            "params",
            "limit",
            "offset",
            "score_threshold",
            "with_payload",
            "with_vector",
            "with_vectors",
            "lookup_from",
        ],
        extra,
    )?;
    let mut request = QueryRequest::fusion(Fusion::rrf(), prefetches(o.get("prefetch"))?);
    request.lookup_from = lookup_from(o.get("lookup_from"))?;
    request.query = field(o, "query").map(query).transpose()?;
    request.using = field(o, "using").and_then(Value::as_str).map(str::to_string);
    request.filter = filter(o.get("filter"))?;
    request.params = params(o)?;
    request.limit = usize_field(o, "limit")?.unwrap_or(10);
    request.offset = usize_field(o, "offset")?.unwrap_or(0);
    request.score_threshold = f32_field(o, "score_threshold")?;
    Ok(QueryPoints {
        request,
        with_payload: with_payload(o.get("with_payload"), false)?,
        with_vectors: with_vectors(o)?,
    })
}

/// The grouping of a grouped call: `group_by`, `group_size` (default 3), `limit` (the
/// number of groups, default 10) and `with_lookup` (a collection name or
/// `{collection, with_payload, with_vectors}`).
fn group_by(o: &Map<String, Value>) -> Result<braid::GroupBy, ApiError> {
    let key =
        field(o, "group_by").and_then(Value::as_str).ok_or_else(|| bad("a grouped call needs `group_by`"))?;
    let with_lookup = match field(o, "with_lookup") {
        None => None,
        Some(Value::String(c)) => Some(braid::WithLookup::new(c)),
        Some(v) => {
            let l = object(v, "`with_lookup`")?;
            only(l, "`with_lookup`", &["collection", "with_payload", "with_vectors", "with_vector"])?;
            let collection = field(l, "collection")
                .and_then(Value::as_str)
                .ok_or_else(|| bad("`with_lookup` needs `collection`"))?;
            Some(braid::WithLookup {
                collection: collection.to_string(),
                with_payload: with_payload(l.get("with_payload"), true)?,
                with_vectors: with_vectors(l)?,
            })
        }
    };
    Ok(braid::GroupBy {
        key: key.to_string(),
        group_size: usize_field(o, "group_size")?.unwrap_or(3),
        limit: usize_field(o, "limit")?.unwrap_or(10),
        with_lookup,
    })
}

/// A grouped call's body: the call's own decoder for the query, plus the grouping.
pub(crate) fn grouped(body: &Value, kind: &str) -> Result<(QueryPoints, braid::GroupBy), ApiError> {
    let query = match kind {
        "search" => search_with(body, &GROUP_FIELDS)?,
        "recommend" => recommend_with(body, &GROUP_FIELDS)?,
        _ => query_points_with(body, &GROUP_FIELDS)?,
    };
    Ok((query, group_by(object(body, "a grouped request")?)?))
}

fn group_id_json(id: &braid::GroupId) -> Value {
    match id {
        braid::GroupId::Int(i) => json!(i),
        braid::GroupId::Str(s) => json!(s),
    }
}

/// `{"groups": [{id, hits, lookup}]}`, as Qdrant's grouped calls answer.
pub(crate) fn groups_json(groups: Vec<braid::PointGroup>) -> Value {
    let groups: Vec<Value> = groups
        .into_iter()
        .map(|g| {
            let mut v = json!({"id": group_id_json(&g.id), "hits": g.hits.into_iter().map(scored_json).collect::<Vec<_>>()});
            if let Some(r) = g.lookup {
                v["lookup"] = record_json(r);
            }
            v
        })
        .collect();
    json!({"groups": groups})
}

/// `POST /points/search/matrix/{pairs,offsets}` body: `filter`, `sample` (default 10),
/// `limit` (default 3), `using`.
pub(crate) fn matrix_request(body: &Value) -> Result<braid::MatrixRequest, ApiError> {
    let o = object(body, "a distance matrix request")?;
    only(o, "a distance matrix request", &["filter", "sample", "limit", "using"])?;
    Ok(braid::MatrixRequest {
        filter: filter(o.get("filter"))?,
        sample: usize_field(o, "sample")?.unwrap_or(10),
        limit: usize_field(o, "limit")?.unwrap_or(3),
        using: field(o, "using").and_then(Value::as_str).map(str::to_string),
    })
}

/// A payload index to create: a kind, or a text index with its options.
#[derive(Clone, Debug)]
pub(crate) enum FieldIndex {
    Kind(IndexKind),
    Text(braid::text::TextOptions),
}

/// `{"type": "text", "tokenizer", "lowercase", ...}`: Qdrant's text index params.
fn text_options(o: &Map<String, Value>) -> Result<braid::text::TextOptions, ApiError> {
    only(
        o,
        "text `field_schema`",
        &[
            "type",
            "tokenizer",
            "lowercase",
            "min_token_len",
            "max_token_len",
            "stopwords",
            "stemmer",
            "phrase_matching",
            "ascii_folding",
            "on_disk",
        ],
    )?;
    fixed(o, "ascii_folding", json!(false), "Braid does not fold text to ASCII")?;
    fixed(o, "on_disk", json!(false), "payload indexes live in memory")?;
    // The stemmer's and stopwords' shapes are the BM25 options' ones; one parser reads both.
    let mut bm25 = Map::new();
    for key in ["stopwords", "stemmer"] {
        if let Some(v) = field(o, key) {
            bm25.insert(key.to_string(), v.clone());
        }
    }
    let mut options = braid::text::TextOptions {
        tokenizer: match field(o, "tokenizer") {
            None => braid::text::TokenizerKind::Word,
            Some(t) => serde_json::from_value(t.clone()).map_err(|_| {
                bad(format!("tokenizer {t} is not served: use word, whitespace, prefix or multilingual"))
            })?,
        },
        lowercase: match field(o, "lowercase") {
            None => true,
            Some(v) => v.as_bool().ok_or_else(|| bad("`lowercase` must be a boolean"))?,
        },
        min_token_len: usize_field(o, "min_token_len")?,
        max_token_len: usize_field(o, "max_token_len")?,
        phrase_matching: match field(o, "phrase_matching") {
            None => false,
            Some(v) => v.as_bool().ok_or_else(|| bad("`phrase_matching` must be a boolean"))?,
        },
        ..braid::text::TextOptions::default()
    };
    let (stopwords, stemmer) =
        braid::text::text_processing(&bm25).map_err(|e| bad(format!("text index: {e}")))?;
    options.stopwords = stopwords;
    options.stemmer = stemmer;
    Ok(options)
}

/// What collection info reports for a text index.
pub(crate) fn text_options_json(o: &braid::text::TextOptions) -> Value {
    let mut v = json!({
        "type": "text",
        "tokenizer": o.tokenizer,
        "lowercase": o.lowercase,
        "phrase_matching": o.phrase_matching,
    });
    if let Some(n) = o.min_token_len {
        v["min_token_len"] = json!(n);
    }
    if let Some(n) = o.max_token_len {
        v["max_token_len"] = json!(n);
    }
    if let Some(s) = &o.stopwords {
        v["stopwords"] = json!({"languages": s.languages, "custom": s.custom});
    }
    if let Some(l) = &o.stemmer {
        v["stemmer"] = json!({"type": "snowball", "language": l});
    }
    v
}

/// `"keyword"`, `{"type": "keyword"}` or a text index with its params.
pub(crate) fn field_index(v: &Value) -> Result<FieldIndex, ApiError> {
    if let Value::Object(o) = v
        && field(o, "type").and_then(Value::as_str) == Some("text")
    {
        return Ok(FieldIndex::Text(text_options(o)?));
    }
    index_kind(v).map(FieldIndex::Kind)
}

/// `"keyword"` or `{"type": "keyword", ...}`.
pub(crate) fn index_kind(v: &Value) -> Result<IndexKind, ApiError> {
    let name = match v {
        Value::String(s) => s.as_str(),
        Value::Object(o) => {
            only(o, "`field_schema`", &["type"])?;
            field(o, "type").and_then(Value::as_str).unwrap_or_default()
        }
        _ => "",
    };
    match name {
        "keyword" => Ok(IndexKind::Keyword),
        "integer" => Ok(IndexKind::Integer),
        "float" => Ok(IndexKind::Float),
        "bool" => Ok(IndexKind::Bool),
        "uuid" => Ok(IndexKind::Uuid),
        "datetime" => Ok(IndexKind::Datetime),
        "text" => Ok(IndexKind::Text),
        _ => Err(bad(format!(
            "field_schema {v} is not served: use keyword, integer, float, bool, uuid, datetime or text"
        ))),
    }
}

/// `POST /collections/{c}/facet` body: `key`, `filter`, `limit` (default 10), `exact`
/// (`false` allows estimated counts; Braid's are always exact, so both are served).
pub(crate) fn facet(body: &Value) -> Result<(String, Option<Filter>, usize), ApiError> {
    let o = object(body, "a facet")?;
    only(o, "a facet", &["key", "filter", "limit", "exact"])?;
    if let Some(e) = field(o, "exact")
        && !e.is_boolean()
    {
        return Err(bad("`exact` must be a boolean"));
    }
    let key = field(o, "key").and_then(Value::as_str).ok_or_else(|| bad("a facet needs `key`, a string"))?;
    Ok((key.to_string(), filter(o.get("filter"))?, usize_field(o, "limit")?.unwrap_or(10)))
}

/// `{"value": …, "count": n}`.
pub(crate) fn facet_hit_json(hit: braid::FacetHit) -> Value {
    let value = match hit.value {
        braid::FacetValue::Keyword(s) => json!(s),
        braid::FacetValue::Integer(i) => json!(i),
        braid::FacetValue::Bool(b) => json!(b),
    };
    json!({"value": value, "count": hit.count})
}

fn sparse_json(v: &SparseVector) -> Value {
    json!({"indices": v.indices(), "values": v.values()})
}

/// Returned vectors: the unnamed one alone as a list, else a map of named lists and
/// sparse objects.
fn vectors_json(
    dense: Option<NamedVectors>,
    sparse: Option<SparseVectors>,
    multi: Option<braid::MultiVectors>,
) -> Value {
    let sparse = sparse.unwrap_or_default();
    let multi = multi.unwrap_or_default();
    let Some(dense) = dense else { return Value::Null };
    if sparse.is_empty() && multi.is_empty() && dense.len() == 1 && dense.contains_key(DEFAULT_VECTOR) {
        return json!(dense[DEFAULT_VECTOR]);
    }
    let mut map: Map<String, Value> = dense.into_iter().map(|(k, v)| (k, json!(v))).collect();
    map.extend(sparse.iter().map(|(k, v)| (k.clone(), sparse_json(v))));
    map.extend(multi.into_iter().map(|(k, v)| (k, json!(v))));
    Value::Object(map)
}

/// A point as REST's upsert takes it (`braid import --url` sends it so): its vectors,
/// sparse vectors, multivectors and documents (`{"text", "model", "options"}`) by name.
pub(crate) fn point_json(p: &braid::PointStruct) -> Value {
    let mut vectors: Map<String, Value> = p.vectors.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
    vectors.extend(p.sparse.iter().map(|(k, v)| (k.clone(), sparse_json(v))));
    vectors.extend(p.multi.iter().map(|(k, v)| (k.clone(), json!(v))));
    vectors.extend(
        p.documents
            .iter()
            .map(|(k, d)| (k.clone(), json!({"text": d.text, "model": d.model, "options": d.options}))),
    );
    json!({"id": p.id, "vector": vectors, "payload": p.payload})
}

/// `order_value` is present only when the point was placed by one, as in Qdrant.
fn with_order_value(mut v: Value, order_value: Option<braid::OrderValue>) -> Value {
    if let Some(o) = order_value {
        v["order_value"] = json!(o);
    }
    v
}

pub(crate) fn scored_json(p: ScoredPoint) -> Value {
    let v = json!({
        "id": p.id,
        "version": 0,
        "score": p.score,
        "payload": p.payload,
        "vector": vectors_json(p.vectors, p.sparse, p.multi),
    });
    with_order_value(v, p.order_value)
}

pub(crate) fn record_json(r: Record) -> Value {
    let v = json!({"id": r.id, "payload": r.payload, "vector": vectors_json(r.vectors, r.sparse, r.multi)});
    with_order_value(v, r.order_value)
}

/// `order_by`: a key, or `{key, direction: "asc"|"desc", start_from}` with a number or
/// an RFC 3339 datetime to start from.
pub(crate) fn order_by(v: &Value) -> Result<braid::OrderBy, ApiError> {
    let o = match v {
        Value::String(key) => return Ok(braid::OrderBy::asc(key)),
        v => object(v, "`order_by`")?,
    };
    only(o, "`order_by`", &["key", "direction", "start_from"])?;
    let key = field(o, "key").and_then(Value::as_str).ok_or_else(|| bad("`order_by` needs `key`"))?;
    let direction = match field(o, "direction").map(|d| d.as_str()) {
        None | Some(Some("asc")) => braid::Direction::Asc,
        Some(Some("desc")) => braid::Direction::Desc,
        _ => return Err(bad("`order_by.direction` must be \"asc\" or \"desc\"")),
    };
    let start_from = match field(o, "start_from") {
        None => None,
        Some(Value::Number(n)) => n.as_f64(),
        Some(Value::String(s)) => Some(
            braid::filter::parse_datetime(s, "order_by.start_from")
                .map_err(|e| ApiError::from(braid::Error::from(e)))? as f64,
        ),
        Some(other) => {
            return Err(bad(format!("`order_by.start_from` must be a number or a datetime, got {other}")));
        }
    };
    Ok(braid::OrderBy { key: key.to_string(), direction, start_from, after: None })
}

fn params_json(p: &VectorParams) -> Value {
    json!({"size": p.size, "distance": mapping::distance_name(p.distance),
           "hnsw_config": {"m": p.hnsw.m, "ef_construct": p.hnsw.ef_construct,
                           "full_scan_threshold": p.hnsw.full_scan_threshold_kb, "payload_m": p.hnsw.payload_m,
                           "on_disk": p.hnsw.on_disk},
           "quantization_config": quantization_json(p),
           "on_disk": p.on_disk, "memory": if p.on_disk { "cold" } else { "cached" },
           // Reported whether or not the request said it.
           "datatype": p.datatype.name()})
}

/// A multivector space as info reports it: no graph (`m: 0`), since Braid searches
/// these spaces exactly.
fn multi_params_json(p: &braid::MultiVectorParams) -> Value {
    json!({"size": p.size, "distance": mapping::distance_name(p.distance),
           "multivector_config": {"comparator": "max_sim"},
           "hnsw_config": {"m": 0}, "on_disk": false, "datatype": "float32"})
}

/// The settings collection info reports in Qdrant's optimizer and WAL fields, taken
/// from the options the server opened the database with, so that both protocols
/// report what Braid actually does.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Reported {
    /// `deleted_threshold`: the background optimiser's vacuum share.
    pub deleted_threshold: f64,
    /// `vacuum_min_vector_number`.
    pub vacuum_min: u64,
    /// `flush_interval_sec`: how often the server syncs the logs.
    pub flush_interval_sec: u64,
    /// `wal_capacity_mb`: the log size that triggers a checkpoint.
    pub wal_capacity_mb: u64,
}

impl Reported {
    /// From the storage options and the server's sync interval.
    pub(crate) fn new(options: &braid::StorageOptions, sync: std::time::Duration) -> Reported {
        Reported {
            deleted_threshold: options.vacuum_share,
            vacuum_min: options.vacuum_min as u64,
            flush_interval_sec: sync.as_secs().max(1),
            wal_capacity_mb: options.checkpoint_log_bytes >> 20,
        }
    }
}

/// `GET /collections/{name}`, in Qdrant's `CollectionInfo` shape. Settings Braid does
/// not have (shards, replication) are reported at the values that describe its
/// behaviour: one shard, one replica, no quantisation.
pub(crate) fn info_json(info: &CollectionInfo, reported: &Reported) -> Value {
    let vectors: Value = match mapping::unnamed(&info.config) {
        Some(p) => params_json(p),
        None => {
            let mut map: Map<String, Value> =
                info.config.vectors.iter().map(|(k, p)| (k.clone(), params_json(p))).collect();
            map.extend(info.config.multivectors.iter().map(|(k, p)| (k.clone(), multi_params_json(p))));
            Value::Object(map)
        }
    };
    let first = mapping::reported_hnsw(&info.config);
    let sparse: Map<String, Value> = info
        .config
        .sparse_vectors
        .iter()
        .map(|(k, p)| (k.clone(), json!({"modifier": mapping::modifier_name(p.modifier)})))
        .collect();
    let schema: BTreeMap<&String, Value> = info
        .payload_schema
        .iter()
        .map(|(k, kind)| {
            let params = match info.text_indexes.get(k) {
                Some(o) => text_options_json(o),
                None => json!({"type": kind.name()}),
            };
            (k, json!({"data_type": kind.name(), "params": params, "points": info.points_count}))
        })
        .collect();
    json!({
        "status": info.status,
        // Qdrant's shape: `"ok"`, or `{"error": why}` when the collection failed.
        "optimizer_status": match &info.damage {
            Some(e) => json!({"error": e.to_string()}),
            None => json!("ok"),
        },
        "vectors_count": info.vectors_count.values().sum::<usize>(),
        "indexed_vectors_count": info.indexed_vectors_count.values().sum::<usize>(),
        "points_count": info.points_count,
        "segments_count": 1,
        "config": {
            "params": {"vectors": vectors, "sparse_vectors": sparse, "shard_number": 1, "replication_factor": 1,
                       "write_consistency_factor": 1, "on_disk_payload": info.config.on_disk_payload},
            "hnsw_config": {"m": first.m, "ef_construct": first.ef_construct, "full_scan_threshold": first.full_scan_threshold_kb,
                            "max_indexing_threads": 0, "on_disk": first.on_disk, "payload_m": first.payload_m},
            "optimizer_config": {"deleted_threshold": info.config.deleted_threshold.unwrap_or(reported.deleted_threshold),
                                 "vacuum_min_vector_number": info.config.vacuum_min_vector_number.map_or(reported.vacuum_min, |n| n as u64),
                                 "default_segment_number": 1, "max_segment_size": null, "memmap_threshold": null,
                                 "indexing_threshold": info.config.indexing_threshold_kb, "flush_interval_sec": reported.flush_interval_sec, "max_optimization_threads": 0},
            "wal_config": {"wal_capacity_mb": reported.wal_capacity_mb, "wal_segments_ahead": 0},
            // The collection-level setting as it was asked for (each space's own is on its params).
            "quantization_config": code_kind_json(
                info.config.quantization.and_then(braid::Quantization::code_kind),
                info.config.codes_on_disk,
            )
        },
        "payload_schema": schema,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A collection the background checksum pass failed reports Qdrant's red status
    /// with the reason as the optimiser's error, not `ok`.
    #[test]
    fn a_failed_collection_reports_red_with_its_reason() {
        let (healthy, failed) = crate::mapping::healthy_and_failed_info();
        let reported = Reported::new(&braid::StorageOptions::default(), std::time::Duration::from_secs(1));
        let ok = info_json(&healthy, &reported);
        assert_eq!((&ok["status"], &ok["optimizer_status"]), (&json!("green"), &json!("ok")));
        let red = info_json(&failed, &reported);
        assert_eq!(red["status"], "red");
        let why = failed.damage.map(|d| d.to_string()).expect("damage");
        assert_eq!(red["optimizer_status"], json!({"error": why}));
    }
}
