//! Protobuf messages ⇄ the facade's types, for the gRPC services in `mod.rs`.
//! Filters and payloads go through their JSON form so that REST's parser serves both;
//! collection settings go through `crate::mapping`, like REST's.

use std::collections::HashMap;

use braid::{
    Collection, ContextPair, Database, Distance, Document, Example, Fusion, IndexKind, LookupFrom,
    NamedVectors, PointId, PointsSelector, Prefetch, QuantizationParams, Query, QueryPoints, QueryRequest,
    Recommend, RecommendStrategy, ScoredPoint, SearchParams, SparseVector, SparseVectors, VectorParams,
    WithPayload, WithVectors,
};
use serde_json::{Map, Value as Json, json};
use std::time::Instant;

use tonic::{Response, Status};

use super::proto;
use crate::convert;
use crate::error::ApiError;
use crate::mapping::{
    DEFAULT_VECTOR, HnswDiff, NewSpace, QuantizationChange, QuantizationSpec, SpaceSpec, UpdateSpec,
};
use crate::rest::AppState;

pub(super) fn err(e: impl Into<ApiError>) -> Status {
    e.into().grpc_status()
}

pub(super) fn bad(why: impl Into<String>) -> Status {
    ApiError::bad_request(why.into()).grpc_status()
}

/// Runs `f` on a blocking thread; the facade's calls are CPU-bound.
pub(super) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Status> + Send + 'static,
) -> Result<T, Status> {
    tokio::task::spawn_blocking(f).await.map_err(|e| Status::internal(format!("the request failed: {e}")))?
}

pub(super) fn collection(db: &Database, name: &str) -> Result<Collection, Status> {
    db.collection(name).map_err(err)
}

// ---- values, ids, filters ----

pub(super) fn to_json(v: &proto::Value) -> Json {
    use proto::value::Kind;
    match &v.kind {
        None | Some(Kind::NullValue(_)) => Json::Null,
        Some(Kind::DoubleValue(x)) => json!(x),
        Some(Kind::IntegerValue(x)) => json!(x),
        Some(Kind::StringValue(s)) => json!(s),
        Some(Kind::BoolValue(b)) => json!(b),
        Some(Kind::StructValue(s)) => Json::Object(map_to_json(&s.fields)),
        Some(Kind::ListValue(l)) => Json::Array(l.values.iter().map(to_json).collect()),
    }
}

pub(super) fn map_to_json(m: &HashMap<String, proto::Value>) -> Map<String, Json> {
    m.iter().map(|(k, v)| (k.clone(), to_json(v))).collect()
}

pub(super) fn from_json(v: &Json) -> proto::Value {
    use proto::value::Kind;
    let kind = match v {
        Json::Null => Kind::NullValue(0),
        Json::Bool(b) => Kind::BoolValue(*b),
        Json::Number(n) => match n.as_i64() {
            Some(i) => Kind::IntegerValue(i),
            None => Kind::DoubleValue(n.as_f64().unwrap_or_default()),
        },
        Json::String(s) => Kind::StringValue(s.clone()),
        Json::Array(a) => Kind::ListValue(proto::ListValue { values: a.iter().map(from_json).collect() }),
        Json::Object(o) => Kind::StructValue(proto::Struct { fields: json_to_map(o) }),
    };
    proto::Value { kind: Some(kind) }
}

pub(super) fn json_to_map(o: &Map<String, Json>) -> HashMap<String, proto::Value> {
    o.iter().map(|(k, v)| (k.clone(), from_json(v))).collect()
}

pub(super) fn point_id(id: Option<&proto::PointId>) -> Result<PointId, Status> {
    use proto::point_id::PointIdOptions;
    match id.and_then(|i| i.point_id_options.as_ref()) {
        Some(PointIdOptions::Num(n)) => Ok(PointId::Num(*n)),
        Some(PointIdOptions::Uuid(u)) => convert::point_id(&json!(u)).map_err(err),
        None => Err(bad("a point id is required")),
    }
}

pub(super) fn id_out(id: PointId) -> proto::PointId {
    use proto::point_id::PointIdOptions;
    proto::PointId {
        point_id_options: Some(match id {
            PointId::Num(n) => PointIdOptions::Num(n),
            PointId::Uuid(u) => PointIdOptions::Uuid(u.hyphenated().to_string()),
        }),
    }
}

pub(super) fn id_json(id: &proto::PointId) -> Json {
    use proto::point_id::PointIdOptions;
    match &id.point_id_options {
        Some(PointIdOptions::Num(n)) => json!(n),
        Some(PointIdOptions::Uuid(u)) => json!(u),
        None => Json::Null,
    }
}

pub(super) fn range_json(lt: Option<f64>, gt: Option<f64>, gte: Option<f64>, lte: Option<f64>) -> Json {
    let mut o = Map::new();
    for (k, v) in [("lt", lt), ("gt", gt), ("gte", gte), ("lte", lte)] {
        if let Some(v) = v {
            o.insert(k.into(), json!(v));
        }
    }
    Json::Object(o)
}

pub(super) fn geo(p: &Option<proto::GeoPoint>) -> Json {
    p.as_ref().map_or(Json::Null, |p| json!({"lon": p.lon, "lat": p.lat}))
}

pub(super) fn line(l: &proto::GeoLineString) -> Json {
    json!({"points": l.points.iter().map(|p| json!({"lon": p.lon, "lat": p.lat})).collect::<Vec<_>>()})
}

/// A protobuf timestamp as the RFC 3339 string the filter parser reads.
pub(super) fn rfc3339(t: &prost_types::Timestamp) -> Result<String, Status> {
    let nanos = u32::try_from(t.nanos).map_err(|_| bad("a timestamp with negative nanoseconds"))?;
    chrono::DateTime::from_timestamp(t.seconds, nanos)
        .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
        .ok_or_else(|| bad(format!("timestamp {}s is out of range", t.seconds)))
}

pub(super) fn match_json(m: &proto::Match) -> Result<Json, Status> {
    use proto::r#match::MatchValue;
    Ok(match &m.match_value {
        Some(MatchValue::Keyword(s)) => json!({"value": s}),
        Some(MatchValue::Integer(i)) => json!({"value": i}),
        Some(MatchValue::Boolean(b)) => json!({"value": b}),
        Some(MatchValue::Text(s)) => json!({"text": s}),
        Some(MatchValue::Keywords(s)) => json!({"any": s.strings}),
        Some(MatchValue::Integers(i)) => json!({"any": i.integers}),
        Some(MatchValue::ExceptIntegers(i)) => json!({"except": i.integers}),
        Some(MatchValue::ExceptKeywords(s)) => json!({"except": s.strings}),
        Some(MatchValue::Phrase(s)) => json!({"phrase": s}),
        Some(MatchValue::TextAny(s)) => json!({"text_any": s}),
        Some(MatchValue::Prefix(s)) => json!({"prefix": s}),
        Some(MatchValue::Substring(s)) => json!({"substring": s}),
        None => return Err(bad("a match needs a value")),
    })
}

pub(super) fn condition_json(c: &proto::Condition) -> Result<Json, Status> {
    use proto::condition::ConditionOneOf;
    Ok(match &c.condition_one_of {
        Some(ConditionOneOf::Field(f)) => {
            let mut o = Map::new();
            o.insert("key".into(), json!(f.key));
            if let Some(m) = &f.r#match {
                o.insert("match".into(), match_json(m)?);
            }
            if let Some(r) = &f.range {
                o.insert("range".into(), range_json(r.lt, r.gt, r.gte, r.lte));
            }
            if let Some(g) = &f.geo_bounding_box {
                o.insert(
                    "geo_bounding_box".into(),
                    json!({"top_left": geo(&g.top_left), "bottom_right": geo(&g.bottom_right)}),
                );
            }
            if let Some(g) = &f.geo_radius {
                o.insert("geo_radius".into(), json!({"center": geo(&g.center), "radius": g.radius}));
            }
            if let Some(g) = &f.geo_polygon {
                let exterior = g.exterior.as_ref().map_or(Json::Null, line);
                o.insert("geo_polygon".into(), json!({"exterior": exterior, "interiors": g.interiors.iter().map(line).collect::<Vec<_>>()}));
            }
            if let Some(d) = &f.datetime_range {
                let mut range = Map::new();
                for (k, t) in [("lt", &d.lt), ("gt", &d.gt), ("gte", &d.gte), ("lte", &d.lte)] {
                    if let Some(t) = t {
                        range.insert(k.into(), json!(rfc3339(t)?));
                    }
                }
                o.insert("range".into(), Json::Object(range));
            }
            if let Some(v) = &f.values_count {
                // Counts stay integers (as floats they were refused: `2.0` is no count).
                let bounds = [("lt", v.lt), ("gt", v.gt), ("gte", v.gte), ("lte", v.lte)];
                let range: Map<String, Json> =
                    bounds.into_iter().filter_map(|(k, x)| x.map(|x| (k.to_string(), json!(x)))).collect();
                o.insert("values_count".into(), Json::Object(range));
            }
            if f.is_empty == Some(true) {
                return Ok(json!({"is_empty": {"key": f.key}}));
            }
            if f.is_null == Some(true) {
                return Ok(json!({"is_null": {"key": f.key}}));
            }
            Json::Object(o)
        }
        Some(ConditionOneOf::IsEmpty(e)) => json!({"is_empty": {"key": e.key}}),
        Some(ConditionOneOf::IsNull(e)) => json!({"is_null": {"key": e.key}}),
        Some(ConditionOneOf::HasId(h)) => json!({"has_id": h.has_id.iter().map(id_json).collect::<Vec<_>>()}),
        Some(ConditionOneOf::HasVector(h)) => json!({"has_vector": h.has_vector}),
        Some(ConditionOneOf::Filter(f)) => filter_json(f)?,
        Some(ConditionOneOf::Nested(n)) => {
            let inner = n.filter.as_ref().map(filter_json).transpose()?.unwrap_or(json!({}));
            json!({"nested": {"key": n.key, "filter": inner}})
        }
        None => return Err(bad("an empty condition")),
    })
}

pub(super) fn conditions(list: &[proto::Condition]) -> Result<Json, Status> {
    Ok(Json::Array(list.iter().map(condition_json).collect::<Result<_, _>>()?))
}

pub(super) fn filter_json(f: &proto::Filter) -> Result<Json, Status> {
    let mut o = Map::new();
    if !f.must.is_empty() {
        o.insert("must".into(), conditions(&f.must)?);
    }
    if !f.should.is_empty() {
        o.insert("should".into(), conditions(&f.should)?);
    }
    if !f.must_not.is_empty() {
        o.insert("must_not".into(), conditions(&f.must_not)?);
    }
    if let Some(m) = &f.min_should {
        o.insert(
            "min_should".into(),
            json!({"conditions": conditions(&m.conditions)?, "min_count": m.min_count}),
        );
    }
    Ok(Json::Object(o))
}

pub(super) fn filter(f: Option<&proto::Filter>) -> Result<Option<braid::Filter>, Status> {
    match f {
        None => Ok(None),
        Some(f) => convert::filter(Some(&filter_json(f)?)).map_err(err),
    }
}

pub(super) fn selector(s: Option<&proto::PointsSelector>) -> Result<PointsSelector, Status> {
    use proto::points_selector::PointsSelectorOneOf;
    match s.and_then(|s| s.points_selector_one_of.as_ref()) {
        Some(PointsSelectorOneOf::Points(list)) => {
            Ok(PointsSelector::Ids(list.ids.iter().map(|i| point_id(Some(i))).collect::<Result<_, _>>()?))
        }
        Some(PointsSelectorOneOf::Filter(f)) => {
            Ok(PointsSelector::Filter(filter(Some(f))?.unwrap_or_else(|| braid::Filter::must([]))))
        }
        None => Err(bad("select points by ids or by a filter")),
    }
}

// ---- vectors and selectors ----

fn sparse_in(s: &proto::SparseVector, what: &str) -> Result<SparseVector, Status> {
    SparseVector::new(s.indices.clone(), s.values.clone()).map_err(|e| bad(format!("{what}: {e}")))
}

fn document_in(d: &proto::Document) -> Document {
    Document { text: d.text.clone(), model: d.model.clone(), options: map_to_json(&d.options) }
}

/// One vector as Qdrant's `Vector` carries it: the dense/sparse/document oneof, or the
/// older `data` (+ `indices` for a sparse one) fields.
fn vector_in(v: &proto::Vector, what: &str) -> Result<convert::VectorIn, Status> {
    use convert::VectorIn;
    use proto::vector::Vector as V;
    let refused = |kind: &str| Err(bad(format!("{what}: {kind} are not served")));
    match &v.vector {
        Some(V::Dense(d)) => Ok(VectorIn::Dense(d.data.clone())),
        Some(V::Sparse(s)) => Ok(VectorIn::Sparse(sparse_in(s, what)?)),
        Some(V::Document(d)) => Ok(VectorIn::Document(document_in(d))),
        Some(V::MultiDense(m)) => Ok(VectorIn::Multi(m.vectors.iter().map(|d| d.data.clone()).collect())),
        Some(V::Image(_)) | Some(V::Object(_)) => {
            refused("images and inference objects (only bm25 text documents)")
        }
        // The older form: `data` holds `vectors_count` vectors one after another.
        None if v.vectors_count.is_some() => {
            let count = v.vectors_count.unwrap_or(0) as usize;
            if count == 0 || !v.data.len().is_multiple_of(count) {
                return Err(bad(format!(
                    "{what}: {} numbers do not split into {count} vectors",
                    v.data.len()
                )));
            }
            Ok(VectorIn::Multi(v.data.chunks(v.data.len() / count).map(<[f32]>::to_vec).collect()))
        }
        None => match &v.indices {
            Some(indices) => Ok(VectorIn::Sparse(
                SparseVector::new(indices.data.clone(), v.data.clone())
                    .map_err(|e| bad(format!("{what}: {e}")))?,
            )),
            None => Ok(VectorIn::Dense(v.data.clone())),
        },
    }
}

pub(super) fn vectors(v: Option<&proto::Vectors>) -> Result<convert::VectorsIn, Status> {
    use convert::VectorIn;
    use proto::vectors::VectorsOptions;
    let mut out = convert::VectorsIn::default();
    let mut add = |name: &str, v: &proto::Vector| -> Result<(), Status> {
        match vector_in(v, &format!("vector `{name}`"))? {
            VectorIn::Dense(d) => out.dense.insert(name.to_string(), d).map(drop),
            VectorIn::Multi(m) => out.multi.insert(name.to_string(), m).map(drop),
            VectorIn::Sparse(s) if !name.is_empty() => out.sparse.insert(name.to_string(), s).map(drop),
            VectorIn::Document(d) if !name.is_empty() => out.documents.insert(name.to_string(), d).map(drop),
            _ => return Err(bad("sparse vectors and documents go to named sparse spaces")),
        };
        Ok(())
    };
    match v.and_then(|v| v.vectors_options.as_ref()) {
        None => {}
        Some(VectorsOptions::Vector(one)) => add(DEFAULT_VECTOR, one)?,
        Some(VectorsOptions::Vectors(named)) => {
            for (k, v) in &named.vectors {
                add(k, v)?;
            }
        }
    }
    Ok(out)
}

pub(super) fn vectors_out(
    dense: NamedVectors,
    sparse: Option<SparseVectors>,
    multi: Option<braid::MultiVectors>,
) -> proto::VectorsOutput {
    use proto::vector_output::Vector as V;
    use proto::vectors_output::VectorsOptions;
    let out = |vector: V| proto::VectorOutput {
        data: Vec::new(),
        indices: None,
        vectors_count: None,
        vector: Some(vector),
    };
    let one = |data: Vec<f32>| out(V::Dense(proto::DenseVector { data }));
    let sparse = sparse.unwrap_or_default();
    let multi = multi.unwrap_or_default();
    let options =
        if sparse.is_empty() && multi.is_empty() && dense.len() == 1 && dense.contains_key(DEFAULT_VECTOR) {
            VectorsOptions::Vector(one(dense.into_values().next().unwrap_or_default()))
        } else {
            let mut vectors: HashMap<String, proto::VectorOutput> =
                dense.into_iter().map(|(k, d)| (k, one(d))).collect();
            vectors.extend(multi.into_iter().map(|(k, m)| {
                let rows = m.into_iter().map(|data| proto::DenseVector { data }).collect();
                (k, out(V::MultiDense(proto::MultiDenseVector { vectors: rows })))
            }));
            vectors.extend(sparse.into_iter().map(|(k, s)| {
                (
                    k,
                    out(V::Sparse(proto::SparseVector {
                        values: s.values().to_vec(),
                        indices: s.indices().to_vec(),
                    })),
                )
            }));
            VectorsOptions::Vectors(proto::NamedVectorsOutput { vectors })
        };
    proto::VectorsOutput { vectors_options: Some(options) }
}

pub(super) fn with_payload(s: Option<&proto::WithPayloadSelector>, default: bool) -> WithPayload {
    use proto::with_payload_selector::SelectorOptions;
    match s.and_then(|s| s.selector_options.as_ref()) {
        None => default.into(),
        Some(SelectorOptions::Enable(b)) => (*b).into(),
        Some(SelectorOptions::Include(i)) => WithPayload::Include(i.fields.clone()),
        Some(SelectorOptions::Exclude(e)) => WithPayload::Exclude(e.fields.clone()),
    }
}

pub(super) fn with_vectors(s: Option<&proto::WithVectorsSelector>) -> WithVectors {
    use proto::with_vectors_selector::SelectorOptions;
    match s.and_then(|s| s.selector_options.as_ref()) {
        None => WithVectors::None,
        Some(SelectorOptions::Enable(b)) => (*b).into(),
        Some(SelectorOptions::Include(i)) => WithVectors::Names(i.names.clone()),
    }
}

pub(super) fn params(p: Option<&proto::SearchParams>) -> Option<SearchParams> {
    p.map(|p| SearchParams {
        hnsw_ef: p.hnsw_ef.map(|e| e as usize),
        exact: p.exact.unwrap_or(false),
        quantization: p.quantization.map(|q| QuantizationParams {
            ignore: q.ignore.unwrap_or(false),
            rescore: q.rescore,
            oversampling: q.oversampling,
        }),
    })
}

pub(super) fn payload_out(p: Option<Json>) -> HashMap<String, proto::Value> {
    match p {
        Some(Json::Object(o)) => json_to_map(&o),
        _ => HashMap::new(),
    }
}

fn order_value_out(v: braid::OrderValue) -> proto::OrderValue {
    use proto::order_value::Variant;
    proto::OrderValue {
        variant: Some(match v {
            braid::OrderValue::Int(i) => Variant::Int(i),
            braid::OrderValue::Float(x) => Variant::Float(x),
        }),
    }
}

pub(super) fn scored(p: ScoredPoint) -> proto::ScoredPoint {
    proto::ScoredPoint {
        id: Some(id_out(p.id)),
        payload: payload_out(p.payload),
        score: p.score,
        version: 0,
        vectors: p.vectors.map(|v| vectors_out(v, p.sparse, p.multi)),
        shard_key: None,
        order_value: p.order_value.map(order_value_out),
    }
}

pub(super) fn retrieved(r: braid::Record) -> proto::RetrievedPoint {
    proto::RetrievedPoint {
        id: Some(id_out(r.id)),
        payload: payload_out(r.payload),
        vectors: r.vectors.map(|v| vectors_out(v, r.sparse, r.multi)),
        shard_key: None,
        order_value: r.order_value.map(order_value_out),
    }
}

/// Qdrant's `OrderBy`: a key, a direction and a start (a number, a timestamp or an
/// RFC 3339 string; datetimes become microseconds, as the index keeps them).
pub(super) fn order_by(o: &proto::OrderBy) -> Result<braid::OrderBy, Status> {
    use proto::start_from::Value as V;
    let direction = match o.direction.map(proto::Direction::try_from) {
        None | Some(Ok(proto::Direction::Asc)) => braid::Direction::Asc,
        Some(Ok(proto::Direction::Desc)) => braid::Direction::Desc,
        Some(Err(_)) => return Err(bad(format!("unknown order_by direction {:?}", o.direction))),
    };
    let micros = |text: &str| {
        braid::filter::parse_datetime(text, "order_by.start_from")
            .map(|m| m as f64)
            .map_err(|e| bad(e.to_string()))
    };
    let start_from = match o.start_from.as_ref().and_then(|s| s.value.as_ref()) {
        None => None,
        Some(V::Float(x)) => Some(*x),
        Some(V::Integer(i)) => Some(*i as f64),
        Some(V::Timestamp(t)) => Some(micros(&rfc3339(t)?)?),
        Some(V::Datetime(d)) => Some(micros(d)?),
    };
    Ok(braid::OrderBy { key: o.key.clone(), direction, start_from, after: None })
}

pub(super) fn updated(
    state: &AppState,
    wait: Option<bool>,
    started: Instant,
) -> Response<proto::PointsOperationResponse> {
    let id = state.operations.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let status = if wait.unwrap_or(false) {
        proto::UpdateStatus::Completed
    } else {
        proto::UpdateStatus::Acknowledged
    };
    Response::new(proto::PointsOperationResponse {
        result: Some(proto::UpdateResult { operation_id: Some(id), status: status as i32 }),
        time: started.elapsed().as_secs_f64(),
    })
}

// ---- search and query ----

/// `SearchPoints` as the query it is; `sparse_indices` make `vector` the values of a
/// sparse query.
pub(super) fn search_request(s: &proto::SearchPoints) -> Result<QueryPoints, Status> {
    let query = match &s.sparse_indices {
        Some(indices) => Query::Sparse(
            SparseVector::new(indices.data.clone(), s.vector.clone())
                .map_err(|e| bad(format!("`vector`: {e}")))?,
        ),
        None => Query::Nearest(s.vector.clone()),
    };
    let request = QueryRequest {
        query: Some(query),
        using: Some(s.vector_name.clone().unwrap_or_default()),
        filter: filter(s.filter.as_ref())?,
        params: params(s.params.as_ref()),
        limit: s.limit as usize,
        offset: s.offset.unwrap_or(0) as usize,
        score_threshold: s.score_threshold,
        ..QueryRequest::default()
    };
    Ok(QueryPoints {
        request,
        with_payload: with_payload(s.with_payload.as_ref(), false),
        with_vectors: with_vectors(s.with_vectors.as_ref()),
    })
}

/// A recommend/discover example: a point id or a dense vector.
fn example(v: Option<&proto::VectorInput>, what: &str) -> Result<Example, Status> {
    use proto::vector_input::Variant as V;
    match v.and_then(|v| v.variant.as_ref()) {
        Some(V::Id(id)) => Ok(Example::Id(point_id(Some(id))?)),
        Some(V::Dense(d)) => Ok(Example::Vector(d.data.clone())),
        Some(_) => Err(bad(format!("{what}: examples must be point ids or dense vectors"))),
        None => Err(bad(format!("{what} needs a point id or a vector"))),
    }
}

fn strategy(s: Option<i32>) -> Result<RecommendStrategy, Status> {
    match s.map(proto::RecommendStrategy::try_from) {
        None | Some(Ok(proto::RecommendStrategy::AverageVector)) => Ok(RecommendStrategy::AverageVector),
        Some(Ok(proto::RecommendStrategy::BestScore)) => Ok(RecommendStrategy::BestScore),
        Some(Ok(proto::RecommendStrategy::SumScores)) => Ok(RecommendStrategy::SumScores),
        Some(Err(_)) => Err(bad(format!("unknown recommend strategy {s:?}"))),
    }
}

fn context_in(c: Option<&proto::ContextInput>) -> Result<Vec<ContextPair>, Status> {
    c.map_or(&[][..], |c| &c.pairs[..])
        .iter()
        .map(|p| {
            Ok(ContextPair {
                positive: example(p.positive.as_ref(), "a context pair's `positive`")?,
                negative: example(p.negative.as_ref(), "a context pair's `negative`")?,
            })
        })
        .collect()
}

pub(super) fn lookup_from(l: Option<&proto::LookupLocation>) -> Result<Option<LookupFrom>, Status> {
    let Some(l) = l else { return Ok(None) };
    if l.shard_key_selector.is_some() {
        return Err(bad(
            "`lookup_from.shard_key_selector` is not served: the collection looked up is read over all its shards",
        ));
    }
    Ok(Some(LookupFrom { collection: l.collection_name.clone(), vector: l.vector_name.clone() }))
}

pub(super) fn query(q: Option<&proto::Query>) -> Result<Option<Query>, Status> {
    use proto::query::Variant;
    let Some(q) = q else { return Ok(None) };
    match &q.variant {
        Some(Variant::Nearest(input)) => {
            use proto::vector_input::Variant as V;
            match &input.variant {
                Some(V::Dense(d)) => Ok(Some(Query::Nearest(d.data.clone()))),
                Some(V::Sparse(s)) => Ok(Some(Query::Sparse(sparse_in(s, "`query.nearest`")?))),
                Some(V::Document(d)) => Ok(Some(Query::Document(document_in(d)))),
                Some(V::Id(id)) => Ok(Some(Query::Point(point_id(Some(id))?))),
                Some(V::MultiDense(m)) => {
                    Ok(Some(Query::Multi(m.vectors.iter().map(|d| d.data.clone()).collect())))
                }
                Some(V::Image(_)) | Some(V::Object(_)) => {
                    Err(bad("images and inference objects are not served (only bm25 text documents)"))
                }
                None => Err(bad("`query.nearest` needs a vector")),
            }
        }
        Some(Variant::Fusion(f)) => match proto::Fusion::try_from(*f) {
            Ok(proto::Fusion::Rrf) => Ok(Some(Query::Fusion(Fusion::rrf()))),
            Ok(proto::Fusion::Dbsf) => Ok(Some(Query::Fusion(Fusion::dbsf()))),
            Err(_) => Err(bad(format!("unknown fusion {f}"))),
        },
        Some(Variant::Rrf(r)) => Ok(Some(Query::Fusion(Fusion::Rrf {
            k: r.k.map_or(braid::fusion::qdrant::DEFAULT_RRF_K, |k| k as usize),
            weights: (!r.weights.is_empty()).then(|| r.weights.clone()),
        }))),
        Some(Variant::Sample(s)) => match proto::Sample::try_from(*s) {
            Ok(proto::Sample::Random) => Ok(Some(Query::Sample)),
            Err(_) => Err(bad(format!("unknown sample {s}: use Random"))),
        },
        Some(Variant::Recommend(r)) => {
            let examples = |list: &[proto::VectorInput], what: &str| -> Result<Vec<Example>, Status> {
                list.iter().map(|e| example(Some(e), what)).collect()
            };
            Ok(Some(Query::Recommend(Recommend {
                positive: examples(&r.positive, "a positive example")?,
                negative: examples(&r.negative, "a negative example")?,
                strategy: strategy(r.strategy)?,
            })))
        }
        Some(Variant::Discover(d)) => Ok(Some(Query::Discover {
            target: example(d.target.as_ref(), "`discover.target`")?,
            context: context_in(d.context.as_ref())?,
        })),
        Some(Variant::Context(c)) => Ok(Some(Query::Context(context_in(Some(c))?))),
        Some(Variant::OrderBy(o)) => Ok(Some(Query::OrderBy(order_by(o)?))),
        Some(Variant::Formula(f)) => {
            let expression = f.expression.as_ref().ok_or_else(|| bad("a formula needs an expression"))?;
            let defaults = Json::Object(map_to_json(&f.defaults));
            let formula = braid::Formula::from_json(&expression_json(expression)?, Some(&defaults))
                .map_err(|e| bad(e.to_string()))?;
            Ok(Some(Query::Formula(formula)))
        }
        Some(Variant::NearestWithMmr(n)) => Ok(Some(Query::Mmr {
            nearest: example(n.nearest.as_ref(), "`nearest_with_mmr.nearest`")?,
            mmr: braid::Mmr {
                diversity: n.mmr.as_ref().and_then(|m| m.diversity),
                candidates_limit: n.mmr.as_ref().and_then(|m| m.candidates_limit).map(|c| c as usize),
            },
        })),
        Some(Variant::RelevanceFeedback(_)) => Err(bad("query kind `relevance_feedback` is not served yet")),
        Some(Variant::Text(_)) => Err(bad("query kind `text` is not served yet")),
        None => Err(bad("a query needs a kind")),
    }
}

pub(super) fn prefetch(p: &proto::PrefetchQuery) -> Result<Prefetch, Status> {
    Ok(Prefetch {
        query: query(p.query.as_ref())?,
        using: p.using.clone(),
        filter: filter(p.filter.as_ref())?,
        limit: p.limit.map(|l| l as usize),
        params: params(p.params.as_ref()),
        score_threshold: p.score_threshold,
        prefetch: p.prefetch.iter().map(prefetch).collect::<Result<_, _>>()?,
        lookup_from: lookup_from(p.lookup_from.as_ref())?,
    })
}

pub(super) fn query_points(q: &proto::QueryPoints) -> Result<QueryPoints, Status> {
    let mut request =
        QueryRequest::fusion(Fusion::rrf(), q.prefetch.iter().map(prefetch).collect::<Result<_, _>>()?);
    request.query = query(q.query.as_ref())?;
    request.using = q.using.clone();
    request.filter = filter(q.filter.as_ref())?;
    request.params = params(q.params.as_ref());
    request.limit = q.limit.map_or(10, |l| l as usize);
    request.offset = q.offset.unwrap_or(0) as usize;
    request.score_threshold = q.score_threshold;
    request.lookup_from = lookup_from(q.lookup_from.as_ref())?;
    Ok(QueryPoints {
        request,
        with_payload: with_payload(q.with_payload.as_ref(), false),
        with_vectors: with_vectors(q.with_vectors.as_ref()),
    })
}

/// One example of the older calls: a point id or a dense `Vector`.
fn vector_example(v: Option<&proto::VectorExample>, what: &str) -> Result<Example, Status> {
    use proto::vector_example::Example as E;
    match v.and_then(|v| v.example.as_ref()) {
        Some(E::Id(id)) => Ok(Example::Id(point_id(Some(id))?)),
        Some(E::Vector(v)) => match vector_in(v, what)? {
            convert::VectorIn::Dense(d) => Ok(Example::Vector(d)),
            _ => Err(bad(format!("{what}: examples must be point ids or dense vectors"))),
        },
        None => Err(bad(format!("{what} needs a point id or a vector"))),
    }
}

fn dense_examples(list: &[proto::Vector], what: &str) -> Result<Vec<Example>, Status> {
    list.iter()
        .map(|v| match vector_in(v, what)? {
            convert::VectorIn::Dense(d) => Ok(Example::Vector(d)),
            _ => Err(bad(format!("{what}: examples must be point ids or dense vectors"))),
        })
        .collect()
}

/// The parts the older calls share, as a query with `query`.
struct Explore<'a> {
    filter: Option<&'a proto::Filter>,
    limit: u64,
    offset: Option<u64>,
    params: Option<&'a proto::SearchParams>,
    score_threshold: Option<f32>,
    using: Option<&'a String>,
    lookup_from: Option<&'a proto::LookupLocation>,
    with_payload: Option<&'a proto::WithPayloadSelector>,
    with_vectors: Option<&'a proto::WithVectorsSelector>,
}

impl Explore<'_> {
    fn points(self, query: Query) -> Result<QueryPoints, Status> {
        let request = QueryRequest {
            query: Some(query),
            using: self.using.cloned(),
            filter: filter(self.filter)?,
            params: params(self.params),
            limit: self.limit as usize,
            offset: self.offset.unwrap_or(0) as usize,
            score_threshold: self.score_threshold,
            lookup_from: lookup_from(self.lookup_from)?,
            ..QueryRequest::default()
        };
        Ok(QueryPoints {
            request,
            with_payload: with_payload(self.with_payload, false),
            with_vectors: with_vectors(self.with_vectors),
        })
    }
}

/// `RecommendPoints` (the older call) as the query it is.
pub(super) fn recommend_request(r: &proto::RecommendPoints) -> Result<QueryPoints, Status> {
    let ids = |list: &[proto::PointId]| -> Result<Vec<Example>, Status> {
        list.iter().map(|id| Ok(Example::Id(point_id(Some(id))?))).collect()
    };
    let mut positive = ids(&r.positive)?;
    positive.extend(dense_examples(&r.positive_vectors, "a positive vector")?);
    let mut negative = ids(&r.negative)?;
    negative.extend(dense_examples(&r.negative_vectors, "a negative vector")?);
    let recommend = Recommend { positive, negative, strategy: strategy(r.strategy)? };
    Explore {
        filter: r.filter.as_ref(),
        limit: r.limit,
        offset: r.offset,
        params: r.params.as_ref(),
        score_threshold: r.score_threshold,
        using: r.using.as_ref(),
        lookup_from: r.lookup_from.as_ref(),
        with_payload: r.with_payload.as_ref(),
        with_vectors: r.with_vectors.as_ref(),
    }
    .points(Query::Recommend(recommend))
}

/// `DiscoverPoints` (the older call): discovery with a target, else a context search.
pub(super) fn discover_request(d: &proto::DiscoverPoints) -> Result<QueryPoints, Status> {
    use proto::target_vector::Target;
    let context = d
        .context
        .iter()
        .map(|p| {
            Ok(ContextPair {
                positive: vector_example(p.positive.as_ref(), "a context pair's `positive`")?,
                negative: vector_example(p.negative.as_ref(), "a context pair's `negative`")?,
            })
        })
        .collect::<Result<Vec<_>, Status>>()?;
    let query = match d.target.as_ref().and_then(|t| t.target.as_ref()) {
        Some(Target::Single(e)) => Query::Discover { target: vector_example(Some(e), "`target`")?, context },
        None => Query::Context(context),
    };
    Explore {
        filter: d.filter.as_ref(),
        limit: d.limit,
        offset: d.offset,
        params: d.params.as_ref(),
        score_threshold: None,
        using: d.using.as_ref(),
        lookup_from: d.lookup_from.as_ref(),
        with_payload: d.with_payload.as_ref(),
        with_vectors: d.with_vectors.as_ref(),
    }
    .points(query)
}

// ---- formulas ----

/// A formula expression as Qdrant's JSON form, which the facade parses (as filters are
/// mapped to JSON and parsed once).
fn expression_json(e: &proto::Expression) -> Result<Json, Status> {
    use proto::expression::Variant as V;
    let sub = |e: &Option<Box<proto::Expression>>, what: &str| -> Result<Json, Status> {
        e.as_deref()
            .map(expression_json)
            .transpose()?
            .ok_or_else(|| bad(format!("a formula `{what}` needs its operand")))
    };
    let list = |l: &[proto::Expression]| -> Result<Json, Status> {
        Ok(Json::Array(l.iter().map(expression_json).collect::<Result<_, _>>()?))
    };
    let decay = |d: &proto::DecayParamsExpression| -> Result<Json, Status> {
        let mut o = json!({"x": sub(&d.x, "x")?});
        if let Some(t) = d.target.as_deref() {
            o["target"] = expression_json(t)?;
        }
        if let Some(s) = d.scale {
            o["scale"] = json!(s);
        }
        if let Some(m) = d.midpoint {
            o["midpoint"] = json!(m);
        }
        Ok(o)
    };
    Ok(match e.variant.as_ref().ok_or_else(|| bad("an empty formula expression"))? {
        V::Constant(c) => json!(c),
        V::Variable(v) => json!(v),
        V::Condition(c) => condition_json(c)?,
        V::GeoDistance(g) => json!({"geo_distance": {"origin": geo(&g.origin), "to": g.to}}),
        V::Datetime(d) => json!({"datetime": d}),
        V::DatetimeKey(k) => json!({"datetime_key": k}),
        V::Mult(m) => json!({"mult": list(&m.mult)?}),
        V::Sum(s) => json!({"sum": list(&s.sum)?}),
        V::Max(m) => json!({"max": list(&m.max)?}),
        V::Min(m) => json!({"min": list(&m.min)?}),
        V::Div(d) => {
            let mut o = json!({"left": sub(&d.left, "div.left")?, "right": sub(&d.right, "div.right")?});
            if let Some(z) = d.by_zero_default {
                o["by_zero_default"] = json!(z);
            }
            json!({"div": o})
        }
        V::Neg(x) => json!({"neg": expression_json(x)?}),
        V::Abs(x) => json!({"abs": expression_json(x)?}),
        V::Sqrt(x) => json!({"sqrt": expression_json(x)?}),
        V::Exp(x) => json!({"exp": expression_json(x)?}),
        V::Log10(x) => json!({"log10": expression_json(x)?}),
        V::Ln(x) => json!({"ln": expression_json(x)?}),
        V::Acosh(x) => json!({"acosh": expression_json(x)?}),
        V::Pow(p) => {
            json!({"pow": {"base": sub(&p.base, "pow.base")?, "exponent": sub(&p.exponent, "pow.exponent")?}})
        }
        V::ExpDecay(d) => json!({"exp_decay": decay(d)?}),
        V::GaussDecay(d) => json!({"gauss_decay": decay(d)?}),
        V::LinDecay(d) => json!({"lin_decay": decay(d)?}),
    })
}

// ---- distance matrix ----

pub(super) fn matrix_request(m: &proto::SearchMatrixPoints) -> Result<braid::MatrixRequest, Status> {
    Ok(braid::MatrixRequest {
        filter: filter(m.filter.as_ref())?,
        sample: m.sample.map_or(10, |s| s as usize),
        limit: m.limit.map_or(3, |l| l as usize),
        using: m.using.clone(),
    })
}

// ---- grouped calls ----

fn group_by(
    key: &str,
    group_size: Option<u64>,
    limit: Option<u64>,
    lookup: Option<&proto::WithLookup>,
) -> braid::GroupBy {
    braid::GroupBy {
        key: key.to_string(),
        group_size: group_size.map_or(3, |n| n as usize),
        limit: limit.map_or(10, |n| n as usize),
        with_lookup: lookup.map(|l| braid::WithLookup {
            collection: l.collection.clone(),
            with_payload: with_payload(l.with_payload.as_ref(), true),
            with_vectors: with_vectors(l.with_vectors.as_ref()),
        }),
    }
}

/// `QueryPointGroups`: the query it holds and its grouping.
pub(super) fn query_groups_request(
    g: &proto::QueryPointGroups,
) -> Result<(QueryPoints, braid::GroupBy), Status> {
    let query = query_points(&proto::QueryPoints {
        collection_name: g.collection_name.clone(),
        prefetch: g.prefetch.clone(),
        query: g.query.clone(),
        using: g.using.clone(),
        filter: g.filter.clone(),
        params: g.params.clone(),
        score_threshold: g.score_threshold,
        with_payload: g.with_payload.clone(),
        with_vectors: g.with_vectors.clone(),
        lookup_from: g.lookup_from.clone(),
        ..Default::default()
    })?;
    Ok((query, group_by(&g.group_by, g.group_size, g.limit, g.with_lookup.as_ref())))
}

/// `SearchPointGroups`: the search it holds and its grouping.
pub(super) fn search_groups_request(
    g: &proto::SearchPointGroups,
) -> Result<(QueryPoints, braid::GroupBy), Status> {
    let query = search_request(&proto::SearchPoints {
        collection_name: g.collection_name.clone(),
        vector: g.vector.clone(),
        filter: g.filter.clone(),
        limit: u64::from(g.limit),
        with_payload: g.with_payload.clone(),
        params: g.params.clone(),
        score_threshold: g.score_threshold,
        vector_name: g.vector_name.clone(),
        with_vectors: g.with_vectors.clone(),
        sparse_indices: g.sparse_indices.clone(),
        ..Default::default()
    })?;
    Ok((
        query,
        group_by(
            &g.group_by,
            Some(u64::from(g.group_size)),
            Some(u64::from(g.limit)),
            g.with_lookup.as_ref(),
        ),
    ))
}

/// `RecommendPointGroups`: the recommendation it holds and its grouping.
pub(super) fn recommend_groups_request(
    g: &proto::RecommendPointGroups,
) -> Result<(QueryPoints, braid::GroupBy), Status> {
    let query = recommend_request(&proto::RecommendPoints {
        collection_name: g.collection_name.clone(),
        positive: g.positive.clone(),
        negative: g.negative.clone(),
        filter: g.filter.clone(),
        limit: u64::from(g.limit),
        with_payload: g.with_payload.clone(),
        params: g.params.clone(),
        score_threshold: g.score_threshold,
        using: g.using.clone(),
        with_vectors: g.with_vectors.clone(),
        lookup_from: g.lookup_from.clone(),
        strategy: g.strategy,
        positive_vectors: g.positive_vectors.clone(),
        negative_vectors: g.negative_vectors.clone(),
        ..Default::default()
    })?;
    Ok((
        query,
        group_by(
            &g.group_by,
            Some(u64::from(g.group_size)),
            Some(u64::from(g.limit)),
            g.with_lookup.as_ref(),
        ),
    ))
}

pub(super) fn groups_out(groups: Vec<braid::PointGroup>) -> proto::GroupsResult {
    use proto::group_id::Kind;
    proto::GroupsResult {
        groups: groups
            .into_iter()
            .map(|g| proto::PointGroup {
                id: Some(proto::GroupId {
                    kind: Some(match g.id {
                        braid::GroupId::Int(i) => Kind::IntegerValue(i),
                        braid::GroupId::Str(s) => Kind::StringValue(s),
                    }),
                }),
                hits: g.hits.into_iter().map(scored).collect(),
                lookup: g.lookup.map(retrieved),
            })
            .collect(),
    }
}

// ---- services ----

pub(super) fn quantization_in(q: Option<&proto::QuantizationConfig>) -> QuantizationSpec {
    use proto::quantization_config::Quantization;
    match q.and_then(|q| q.quantization.as_ref()) {
        None => QuantizationSpec::Absent,
        Some(Quantization::Scalar(s)) => QuantizationSpec::Scalar {
            kind: proto::QuantizationType::try_from(s.r#type)
                .map_or_else(|_| format!("{}", s.r#type), |t| t.as_str_name().to_string()),
            quantile: s.quantile,
            always_ram: s.always_ram,
            memory: s.memory.map(memory_name),
        },
        Some(Quantization::Binary(b)) => QuantizationSpec::Binary {
            always_ram: b.always_ram,
            encoding: b.encoding.map(|e| {
                proto::BinaryQuantizationEncoding::try_from(e)
                    .map_or_else(|_| format!("{e}"), |e| e.as_str_name().to_string())
            }),
            query_encoding: b.query_encoding.map(|q| {
                use proto::binary_quantization_query_encoding::{Setting, Variant};
                match q.variant {
                    Some(Variant::Setting(v)) => {
                        Setting::try_from(v).map_or_else(|_| format!("{v}"), |s| s.as_str_name().to_string())
                    }
                    None => "(empty)".to_string(),
                }
            }),
            memory: b.memory.map(memory_name),
        },
        Some(Quantization::Product(p)) => QuantizationSpec::Product {
            compression: Some(
                proto::CompressionRatio::try_from(p.compression)
                    .map_or_else(|_| format!("{}", p.compression), |c| c.as_str_name().to_string()),
            ),
            always_ram: p.always_ram,
            memory: p.memory.map(memory_name),
        },
        Some(Quantization::Turboquant(_)) => {
            QuantizationSpec::Other { kinds: vec!["turboquant".to_string()] }
        }
    }
}

/// Qdrant's `Memory` placement by name (`cold`, `cached`, `pinned`), or its number.
fn memory_name(memory: i32) -> String {
    match memory {
        1 => "cold".into(),
        2 => "cached".into(),
        3 => "pinned".into(),
        other => format!("{other}"),
    }
}

pub(super) fn hnsw_in(h: Option<&proto::HnswConfigDiff>) -> HnswDiff {
    HnswDiff {
        m: h.and_then(|h| h.m).map(|m| m as usize),
        ef_construct: h.and_then(|h| h.ef_construct).map(|e| e as usize),
        full_scan_threshold: h.and_then(|h| h.full_scan_threshold).map(|t| t as usize),
        payload_m: h.and_then(|h| h.payload_m).map(|m| m as usize),
        // `memory` (Qdrant's newer field) overrides `on_disk`: `Cold` maps the graph,
        // `Cached` and `Pinned` keep it in RAM; an unknown value is refused before this.
        on_disk: h.and_then(|h| match h.memory {
            Some(1) => Some(true),
            Some(2 | 3) => Some(false),
            _ => h.on_disk,
        }),
    }
}

pub(super) fn space_in(p: &proto::VectorParams) -> SpaceSpec {
    let distance = proto::Distance::try_from(p.distance).ok().and_then(|d| match d {
        proto::Distance::Cosine => Some(Distance::Cosine),
        proto::Distance::Euclid => Some(Distance::Euclid),
        proto::Distance::Dot => Some(Distance::Dot),
        proto::Distance::Manhattan => Some(Distance::Manhattan),
        _ => None,
    });
    SpaceSpec {
        size: Some(p.size as usize),
        distance,
        hnsw: hnsw_in(p.hnsw_config.as_ref()),
        quantization: quantization_in(p.quantization_config.as_ref()),
        on_disk: rows_on_disk(p.on_disk, p.memory),
        multivector: p.multivector_config.is_some(),
        datatype: p.datatype.and_then(datatype_in),
    }
}

/// Qdrant's `Datatype`: Default (0) and Float32 (1) are `f32`, Uint8 (2), Float16 (3);
/// other values are `None` (refused by [`Unserved`]).
fn datatype_in(d: i32) -> Option<braid::Datatype> {
    match d {
        0 | 1 => Some(braid::Datatype::Float32),
        2 => Some(braid::Datatype::Uint8),
        3 => Some(braid::Datatype::Float16),
        _ => None,
    }
}

fn datatype_out(d: braid::Datatype) -> i32 {
    match d {
        braid::Datatype::Float32 => 1,
        braid::Datatype::Uint8 => 2,
        braid::Datatype::Float16 => 3,
    }
}

/// Qdrant's `Memory` for a vector space's rows: `Some(None)` for `MemoryUnknown` (0,
/// as absent), `Cold` (1) on disk, `Cached` (2) in memory; `Pinned` (3) and unknown
/// values are `None`, refused (Qdrant does not support pinned dense vector storage).
fn placement_in(memory: i32) -> Option<Option<bool>> {
    match memory {
        0 => Some(None),
        1 => Some(Some(true)),
        2 => Some(Some(false)),
        _ => None,
    }
}

/// Payloads on disk from the deprecated `on_disk_payload` and the `payload.memory` that
/// overrides it (`Pinned` is refused before this, as Qdrant refuses it for payloads).
pub(super) fn payloads_on_disk_in(
    on_disk: Option<bool>,
    payload: Option<&proto::PayloadStorageParams>,
) -> Option<bool> {
    rows_on_disk(on_disk, payload.and_then(|p| p.memory))
}

/// A space's rows on disk from its deprecated `on_disk` and the `memory` that overrides it.
fn rows_on_disk(on_disk: Option<bool>, memory: Option<i32>) -> Option<bool> {
    memory.and_then(placement_in).flatten().or(on_disk)
}

/// A multivector space in collection info: no graph (`m: 0`), searched exactly.
pub(super) fn multi_params_out(p: &braid::MultiVectorParams) -> proto::VectorParams {
    let mut out = params_out(&VectorParams::new(p.size, p.distance));
    out.hnsw_config = Some(proto::HnswConfigDiff { m: Some(0), ..Default::default() });
    out.quantization_config = None;
    out.multivector_config =
        Some(proto::MultiVectorConfig { comparator: proto::MultiVectorComparator::MaxSim as i32 });
    out
}

pub(super) fn params_out(p: &VectorParams) -> proto::VectorParams {
    let distance = match p.distance {
        Distance::Cosine => proto::Distance::Cosine,
        Distance::Euclid => proto::Distance::Euclid,
        Distance::Dot => proto::Distance::Dot,
        Distance::Manhattan => proto::Distance::Manhattan,
    };
    proto::VectorParams {
        size: p.size as u64,
        distance: distance as i32,
        hnsw_config: Some(proto::HnswConfigDiff {
            m: Some(p.hnsw.m as u64),
            ef_construct: Some(p.hnsw.ef_construct as u64),
            full_scan_threshold: Some(p.hnsw.full_scan_threshold_kb as u64),
            payload_m: p.hnsw.payload_m.map(|m| m as u64),
            on_disk: Some(p.hnsw.on_disk),
            ..Default::default()
        }),
        on_disk: Some(p.on_disk),
        memory: Some(if p.on_disk { 1 } else { 2 }),
        // Reported whether or not the request said it.
        datatype: Some(datatype_out(p.datatype)),
        quantization_config: quantization_out(p.code_kind(), p.codes_on_disk),
        ..Default::default()
    }
}

/// Codes of `kind` in Qdrant's `QuantizationConfig` (absent for none); codes on disk
/// report `always_ram: false`.
pub(super) fn quantization_out(
    kind: Option<braid::distance::CodeKind>,
    on_disk: bool,
) -> Option<proto::QuantizationConfig> {
    let always_ram = Some(!on_disk);
    kind.map(|kind| proto::QuantizationConfig {
        quantization: Some(match kind {
            braid::distance::CodeKind::Int8 => {
                proto::quantization_config::Quantization::Scalar(proto::ScalarQuantization {
                    r#type: proto::QuantizationType::Int8 as i32,
                    quantile: None,
                    always_ram,
                    memory: None,
                })
            }
            braid::distance::CodeKind::Binary | braid::distance::CodeKind::BinaryTwoBits => {
                let encoding = if kind == braid::distance::CodeKind::Binary {
                    proto::BinaryQuantizationEncoding::OneBit
                } else {
                    proto::BinaryQuantizationEncoding::TwoBits
                };
                proto::quantization_config::Quantization::Binary(proto::BinaryQuantization {
                    always_ram,
                    encoding: Some(encoding as i32),
                    ..Default::default()
                })
            }
            braid::distance::CodeKind::Product(c) => {
                proto::quantization_config::Quantization::Product(proto::ProductQuantization {
                    compression: i32::from(c.code()),
                    always_ram,
                    memory: None,
                })
            }
        }),
    })
}

pub(super) fn schema_type(kind: IndexKind) -> proto::PayloadSchemaType {
    match kind {
        IndexKind::Keyword => proto::PayloadSchemaType::Keyword,
        IndexKind::Integer => proto::PayloadSchemaType::Integer,
        IndexKind::Float => proto::PayloadSchemaType::Float,
        IndexKind::Bool => proto::PayloadSchemaType::Bool,
        IndexKind::Uuid => proto::PayloadSchemaType::Uuid,
        IndexKind::Datetime => proto::PayloadSchemaType::Datetime,
        IndexKind::Text => proto::PayloadSchemaType::Text,
    }
}

/// Qdrant's `TextIndexParams` as Braid's text options (unserved fields are refused
/// before this by [`Unserved`]).
pub(super) fn text_options_in(
    p: Option<&proto::TextIndexParams>,
) -> Result<braid::text::TextOptions, Status> {
    use braid::text::{Stopwords, TextOptions, TokenizerKind};
    let Some(p) = p else { return Ok(TextOptions::default()) };
    let tokenizer = match proto::TokenizerType::try_from(p.tokenizer) {
        Ok(proto::TokenizerType::Unknown | proto::TokenizerType::Word) => TokenizerKind::Word,
        Ok(proto::TokenizerType::Whitespace) => TokenizerKind::Whitespace,
        Ok(proto::TokenizerType::Prefix) => TokenizerKind::Prefix,
        Ok(proto::TokenizerType::Multilingual) => TokenizerKind::Multilingual,
        _ => {
            return Err(bad(format!(
                "tokenizer {} is not served: use word, whitespace, prefix or multilingual",
                p.tokenizer
            )));
        }
    };
    let stemmer = match p.stemmer.as_ref().and_then(|s| s.stemming_params.as_ref()) {
        Some(proto::stemming_algorithm::StemmingParams::Snowball(s)) => Some(s.language.clone()),
        Some(proto::stemming_algorithm::StemmingParams::Disabled(_)) | None => None,
    };
    Ok(TextOptions {
        tokenizer,
        lowercase: p.lowercase.unwrap_or(true),
        min_token_len: p.min_token_len.map(|n| n as usize),
        max_token_len: p.max_token_len.map(|n| n as usize),
        stopwords: p
            .stopwords
            .as_ref()
            .map(|s| Stopwords { languages: s.languages.clone(), custom: s.custom.clone() }),
        stemmer,
        phrase_matching: p.phrase_matching.unwrap_or(false),
    })
}

/// Braid's text options as Qdrant's `TextIndexParams`, for collection info.
pub(super) fn text_options_out(o: &braid::text::TextOptions) -> proto::PayloadIndexParams {
    use braid::text::TokenizerKind;
    let tokenizer = match o.tokenizer {
        TokenizerKind::Word => proto::TokenizerType::Word,
        TokenizerKind::Whitespace => proto::TokenizerType::Whitespace,
        TokenizerKind::Prefix => proto::TokenizerType::Prefix,
        TokenizerKind::Multilingual => proto::TokenizerType::Multilingual,
    };
    let params = proto::TextIndexParams {
        tokenizer: tokenizer as i32,
        lowercase: Some(o.lowercase),
        min_token_len: o.min_token_len.map(|n| n as u64),
        max_token_len: o.max_token_len.map(|n| n as u64),
        stopwords: o
            .stopwords
            .as_ref()
            .map(|s| proto::StopwordsSet { languages: s.languages.clone(), custom: s.custom.clone() }),
        phrase_matching: Some(o.phrase_matching),
        stemmer: o.stemmer.as_ref().map(|l| proto::StemmingAlgorithm {
            stemming_params: Some(proto::stemming_algorithm::StemmingParams::Snowball(
                proto::SnowballParams { language: l.clone() },
            )),
        }),
        ..Default::default()
    };
    proto::PayloadIndexParams {
        index_params: Some(proto::payload_index_params::IndexParams::TextIndexParams(params)),
    }
}

// ---- fields Braid does not serve ----

/// A request message (or a part of one) that can name the first field it sets which
/// Braid does not serve. Braid's proto declares every field of Qdrant's request
/// messages, so nothing a client sets is dropped unseen; this says which to refuse.
pub(super) trait Unserved {
    /// Qdrant's name of the first field set that Braid does not serve.
    fn unserved(&self) -> Option<&'static str>;
}

/// Refuses `request` when it sets a field Braid does not serve.
pub(super) fn served(what: &str, request: &impl Unserved) -> Result<(), Status> {
    match request.unserved() {
        None => Ok(()),
        Some(field) => Err(bad(format!("{what}: `{field}` is not served by Braid"))),
    }
}

/// The first name whose condition holds.
fn first(fields: &[(&'static str, bool)]) -> Option<&'static str> {
    fields.iter().find(|(_, set)| *set).map(|(name, _)| *name)
}

fn inner<T: Unserved>(part: Option<&T>) -> Option<&'static str> {
    part.and_then(Unserved::unserved)
}

impl Unserved for proto::HnswConfigDiff {
    fn unserved(&self) -> Option<&'static str> {
        first(&[
            ("hnsw_config.max_indexing_threads", self.max_indexing_threads.is_some_and(|n| n != 0)),
            ("hnsw_config.inline_storage", self.inline_storage.is_some()),
            ("hnsw_config.memory", self.memory.is_some_and(|m| !(0..=3).contains(&m))),
        ])
    }
}

impl Unserved for proto::VectorParams {
    fn unserved(&self) -> Option<&'static str> {
        inner(self.hnsw_config.as_ref()).or_else(|| {
            first(&[
                ("datatype", self.datatype.is_some_and(|d| datatype_in(d).is_none())),
                ("memory", self.memory.is_some_and(|m| placement_in(m).is_none())),
            ])
        })
    }
}

impl Unserved for proto::VectorsConfig {
    fn unserved(&self) -> Option<&'static str> {
        match &self.config {
            Some(proto::vectors_config::Config::Params(p)) => p.unserved(),
            Some(proto::vectors_config::Config::ParamsMap(m)) => m.map.values().find_map(Unserved::unserved),
            None => None,
        }
    }
}

impl Unserved for proto::OptimizersConfigDiff {
    fn unserved(&self) -> Option<&'static str> {
        // Braid serves `indexing_threshold`, `deleted_threshold` and
        // `vacuum_min_vector_number` per collection; segments, memory maps and threads
        // are the engine's business (one segment, mapped after each checkpoint).
        first(&[
            ("optimizers_config.default_segment_number", self.default_segment_number.is_some()),
            ("optimizers_config.max_segment_size", self.max_segment_size.is_some()),
            ("optimizers_config.memmap_threshold", self.memmap_threshold.is_some()),
            ("optimizers_config.flush_interval_sec", self.flush_interval_sec.is_some()),
            (
                "optimizers_config.max_optimization_threads",
                self.deprecated_max_optimization_threads.is_some(),
            ),
            ("optimizers_config.max_optimization_threads", self.max_optimization_threads.is_some()),
            ("optimizers_config.prevent_unoptimized", self.prevent_unoptimized.is_some()),
        ])
    }
}

impl Unserved for proto::CreateCollection {
    fn unserved(&self) -> Option<&'static str> {
        let not_one = |n: Option<u32>| n.is_some_and(|n| n != 1);
        first(&[
            ("wal_config", self.wal_config.is_some()),
            ("shard_number", not_one(self.shard_number)),
            ("replication_factor", not_one(self.replication_factor)),
            ("write_consistency_factor", not_one(self.write_consistency_factor)),
            // Qdrant's `ShardingMethod`: Auto = 0, Custom = 1.
            ("sharding_method", self.sharding_method.is_some_and(|m| m != 0)),
            ("strict_mode_config", self.strict_mode_config.is_some()),
            ("metadata", !self.metadata.is_empty()),
            ("payload.memory", pinned_payloads(self.payload.as_ref())),
            ("id_tracker", self.id_tracker.is_some()),
        ])
        .or_else(|| inner(self.hnsw_config.as_ref()))
        .or_else(|| inner(self.optimizers_config.as_ref()))
        .or_else(|| inner(self.vectors_config.as_ref()))
        .or_else(|| inner(self.sparse_vectors_config.as_ref()))
    }
}

/// A payload placement Braid does not serve: `Pinned` (Qdrant refuses it for payloads
/// too) or an unknown value.
fn pinned_payloads(payload: Option<&proto::PayloadStorageParams>) -> bool {
    payload.and_then(|p| p.memory).is_some_and(|m| placement_in(m).is_none())
}

impl Unserved for proto::UpdateCollection {
    fn unserved(&self) -> Option<&'static str> {
        first(&[
            ("strict_mode_config", self.strict_mode_config.is_some()),
            ("metadata", !self.metadata.is_empty()),
        ])
        .or_else(|| inner(self.params.as_ref()))
        .or_else(|| inner(self.hnsw_config.as_ref()))
        .or_else(|| inner(self.optimizers_config.as_ref()))
        .or_else(|| inner(self.sparse_vectors_config.as_ref()))
        .or_else(|| {
            use proto::vectors_config_diff::Config;
            match self.vectors_config.as_ref().and_then(|v| v.config.as_ref()) {
                Some(Config::Params(p)) => p.unserved(),
                Some(Config::ParamsMap(m)) => m.map.values().find_map(Unserved::unserved),
                None => None,
            }
        })
    }
}

impl Unserved for proto::CollectionParamsDiff {
    fn unserved(&self) -> Option<&'static str> {
        let not_one = |n: Option<u32>| n.is_some_and(|n| n != 1);
        first(&[
            ("params.replication_factor", not_one(self.replication_factor)),
            ("params.write_consistency_factor", not_one(self.write_consistency_factor)),
            ("params.read_fan_out_factor", self.read_fan_out_factor.is_some_and(|n| n != 0)),
            ("params.read_fan_out_delay_ms", self.read_fan_out_delay_ms.is_some()),
            ("params.payload.memory", pinned_payloads(self.payload.as_ref())),
        ])
    }
}

impl Unserved for proto::VectorParamsDiff {
    fn unserved(&self) -> Option<&'static str> {
        inner(self.hnsw_config.as_ref())
            .or_else(|| first(&[("memory", self.memory.is_some_and(|m| placement_in(m).is_none()))]))
    }
}

/// An update's `quantization_config`.
pub(super) fn quantization_change_in(q: Option<&proto::QuantizationConfigDiff>) -> QuantizationChange {
    use proto::quantization_config::Quantization as C;
    use proto::quantization_config_diff::Quantization as D;
    let to = |q: C| {
        QuantizationChange::To(quantization_in(Some(&proto::QuantizationConfig { quantization: Some(q) })))
    };
    match q.and_then(|q| q.quantization.as_ref()) {
        None => QuantizationChange::Keep,
        Some(D::Disabled(_)) => QuantizationChange::Disabled,
        Some(D::Scalar(s)) => to(C::Scalar(*s)),
        Some(D::Product(p)) => to(C::Product(*p)),
        Some(D::Binary(b)) => to(C::Binary(*b)),
        Some(D::Turboquant(t)) => to(C::Turboquant(*t)),
    }
}

/// A sparse modifier as gRPC gives it (`None` when absent).
pub(super) fn modifier_in(m: Option<i32>) -> Result<Option<braid::Modifier>, Status> {
    match m.map(proto::Modifier::try_from) {
        None => Ok(None),
        Some(Ok(proto::Modifier::None)) => Ok(Some(braid::Modifier::None)),
        Some(Ok(proto::Modifier::Idf)) => Ok(Some(braid::Modifier::Idf)),
        Some(Err(_)) => Err(bad("unknown sparse modifier: use None or Idf")),
    }
}

/// gRPC `Update` as the neutral update (`mapping::UpdateSpec`).
pub(super) fn update_in(r: &proto::UpdateCollection) -> Result<UpdateSpec, Status> {
    use proto::vectors_config_diff::Config;
    let diff = |name: &str, p: &proto::VectorParamsDiff| {
        (
            name.to_string(),
            hnsw_in(p.hnsw_config.as_ref()),
            quantization_change_in(p.quantization_config.as_ref()),
            rows_on_disk(p.on_disk, p.memory),
        )
    };
    let vectors = match r.vectors_config.as_ref().and_then(|v| v.config.as_ref()) {
        None => Vec::new(),
        Some(Config::Params(p)) => vec![diff(DEFAULT_VECTOR, p)],
        Some(Config::ParamsMap(m)) => m.map.iter().map(|(name, p)| diff(name, p)).collect(),
    };
    let sparse = match &r.sparse_vectors_config {
        None => Vec::new(),
        Some(c) => c
            .map
            .iter()
            .map(|(name, p)| Ok((name.clone(), modifier_in(p.modifier)?)))
            .collect::<Result<_, Status>>()?,
    };
    let o = r.optimizers_config.as_ref();
    Ok(UpdateSpec {
        hnsw: hnsw_in(r.hnsw_config.as_ref()),
        quantization: quantization_change_in(r.quantization_config.as_ref()),
        vectors,
        sparse,
        indexing_threshold: o.and_then(|o| o.indexing_threshold).map(|t| t as usize),
        deleted_threshold: o.and_then(|o| o.deleted_threshold),
        vacuum_min: o.and_then(|o| o.vacuum_min_vector_number).map(|n| n as usize),
        on_disk_payload: r
            .params
            .as_ref()
            .and_then(|p| payloads_on_disk_in(p.on_disk_payload, p.payload.as_ref())),
    })
}

/// gRPC `CreateVectorName`'s space.
pub(super) fn new_space_in(r: &proto::CreateVectorNameRequest) -> Result<NewSpace, Status> {
    use proto::create_vector_name_request::VectorConfig;
    match &r.vector_config {
        Some(VectorConfig::DenseConfig(d)) => {
            if d.datatype.is_some_and(|t| datatype_in(t).is_none()) {
                return Err(bad("create vector: unknown `datatype`"));
            }
            let params = proto::VectorParams {
                size: d.size,
                distance: d.distance,
                multivector_config: d.multivector_config,
                datatype: d.datatype,
                ..Default::default()
            };
            let spec = space_in(&params);
            Ok(NewSpace::Dense {
                size: d.size as usize,
                distance: spec.distance.ok_or_else(|| bad("create vector: unknown distance"))?,
                multivector: spec.multivector,
                datatype: spec.datatype.unwrap_or_default(),
            })
        }
        Some(VectorConfig::SparseConfig(sp)) => {
            if sp.datatype.is_some_and(|t| t > 1) {
                return Err(bad(
                    "create vector: sparse `datatype` other than Float32 is not served by Braid",
                ));
            }
            Ok(NewSpace::Sparse { modifier: modifier_in(sp.modifier)?.unwrap_or(braid::Modifier::None) })
        }
        None => Err(bad("create vector: give `dense_config` or `sparse_config`")),
    }
}

impl Unserved for proto::SparseVectorConfig {
    fn unserved(&self) -> Option<&'static str> {
        self.map.values().find_map(|p| inner(p.index.as_ref()))
    }
}

impl Unserved for proto::SparseIndexConfig {
    fn unserved(&self) -> Option<&'static str> {
        // Qdrant's `Datatype`: Default = 0, Float32 = 1.
        first(&[
            ("sparse index full_scan_threshold", self.full_scan_threshold.is_some()),
            ("sparse index on_disk", self.on_disk == Some(true)),
            ("sparse index datatype", self.datatype.is_some_and(|d| d > 1)),
            ("sparse index memory", self.memory.is_some()),
        ])
    }
}

impl Unserved for proto::UpsertPoints {
    fn unserved(&self) -> Option<&'static str> {
        first(&[
            ("update_filter", self.update_filter.is_some()),
            // Qdrant's `UpdateMode`: Upsert = 0 (what Braid does), InsertOnly = 1, UpdateOnly = 2.
            ("update_mode", self.update_mode.is_some_and(|m| m != 0)),
        ])
    }
}

impl Unserved for proto::UpdatePointVectors {
    fn unserved(&self) -> Option<&'static str> {
        first(&[("update_filter", self.update_filter.is_some())])
    }
}

/// Query-shaped messages whose unserved fields are those of their `params`
/// (`shard_key_selector` is served: on a cluster node, `shards::proto_keys`).
macro_rules! only_params {
    ($($message:ident),*) => {$(
        impl Unserved for proto::$message {
            fn unserved(&self) -> Option<&'static str> {
                inner(self.params.as_ref())
            }
        }
    )*};
}
only_params!(RecommendPoints, DiscoverPoints, SearchPointGroups, RecommendPointGroups, SearchPoints);

/// Messages with no field Braid does not serve.
macro_rules! all_served {
    ($($message:ident),*) => {$(
        impl Unserved for proto::$message {
            fn unserved(&self) -> Option<&'static str> {
                None
            }
        }
    )*};
}
all_served!(
    SearchMatrixPoints,
    DeletePoints,
    GetPoints,
    DeletePointVectors,
    SetPayloadPoints,
    DeletePayloadPoints,
    ClearPayloadPoints,
    CountPoints,
    FacetCounts,
    ScrollPoints
);

impl Unserved for proto::CreateFieldIndexCollection {
    fn unserved(&self) -> Option<&'static str> {
        use proto::payload_index_params::IndexParams as P;
        match self.field_index_params.as_ref().and_then(|p| p.index_params.as_ref()) {
            None => None,
            Some(P::TextIndexParams(t)) => first(&[
                ("text_index_params.on_disk", t.on_disk == Some(true)),
                ("text_index_params.ascii_folding", t.ascii_folding == Some(true)),
                ("text_index_params.enable_hnsw", t.enable_hnsw == Some(true)),
                ("text_index_params.memory", t.memory.is_some()),
            ]),
            Some(P::IntegerIndexParams(_)) => Some("integer_index_params"),
            Some(P::KeywordIndexParams(_)) => Some("keyword_index_params"),
            Some(P::FloatIndexParams(_)) => Some("float_index_params"),
            Some(P::GeoIndexParams(_)) => Some("geo_index_params"),
            Some(P::BoolIndexParams(_)) => Some("bool_index_params"),
            Some(P::DatetimeIndexParams(_)) => Some("datetime_index_params"),
            Some(P::UuidIndexParams(_)) => Some("uuid_index_params"),
        }
    }
}

impl Unserved for proto::SearchParams {
    fn unserved(&self) -> Option<&'static str> {
        first(&[
            ("params.indexed_only", self.indexed_only == Some(true)),
            ("params.acorn", self.acorn.is_some()),
            ("params.idf", self.idf.is_some()),
        ])
    }
}

impl Unserved for proto::SearchBatchPoints {
    fn unserved(&self) -> Option<&'static str> {
        self.search_points.iter().find_map(Unserved::unserved)
    }
}

impl Unserved for proto::PrefetchQuery {
    fn unserved(&self) -> Option<&'static str> {
        inner(self.params.as_ref()).or_else(|| self.prefetch.iter().find_map(Unserved::unserved))
    }
}

impl Unserved for proto::QueryPoints {
    fn unserved(&self) -> Option<&'static str> {
        inner(self.params.as_ref()).or_else(|| self.prefetch.iter().find_map(Unserved::unserved))
    }
}

impl Unserved for proto::QueryPointGroups {
    fn unserved(&self) -> Option<&'static str> {
        inner(self.params.as_ref()).or_else(|| self.prefetch.iter().find_map(Unserved::unserved))
    }
}

impl Unserved for proto::RecommendBatchPoints {
    fn unserved(&self) -> Option<&'static str> {
        self.recommend_points.iter().find_map(Unserved::unserved)
    }
}

impl Unserved for proto::DiscoverBatchPoints {
    fn unserved(&self) -> Option<&'static str> {
        self.discover_points.iter().find_map(Unserved::unserved)
    }
}

impl Unserved for proto::UpdateBatchPoints {
    fn unserved(&self) -> Option<&'static str> {
        self.operations.iter().find_map(Unserved::unserved)
    }
}

impl Unserved for proto::PointsUpdateOperation {
    fn unserved(&self) -> Option<&'static str> {
        use proto::points_update_operation::Operation;
        match &self.operation {
            Some(Operation::Upsert(u)) => first(&[
                ("update_filter", u.update_filter.is_some()),
                ("update_mode", u.update_mode.is_some_and(|m| m != 0)),
            ]),
            Some(Operation::UpdateVectors(u)) => first(&[("update_filter", u.update_filter.is_some())]),
            _ => None,
        }
    }
}

impl Unserved for proto::QueryBatchPoints {
    fn unserved(&self) -> Option<&'static str> {
        self.query_points.iter().find_map(Unserved::unserved)
    }
}

/// A collection's health as Qdrant reports it: its status, and the optimiser's state
/// carrying the reason a checksum pass failed it (`Red`).
pub(super) fn health_out(info: &braid::CollectionInfo) -> (proto::CollectionStatus, proto::OptimizerStatus) {
    let status = match info.status {
        "red" => proto::CollectionStatus::Red,
        "yellow" => proto::CollectionStatus::Yellow,
        _ => proto::CollectionStatus::Green,
    };
    let optimizer = proto::OptimizerStatus {
        ok: info.damage.is_none(),
        error: info.damage.as_ref().map_or_else(String::new, ToString::to_string),
    };
    (status, optimizer)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A collection the background checksum pass failed reports `Red` with the reason
    /// as the optimiser's error.
    #[test]
    fn a_failed_collection_reports_red_with_its_reason() {
        let (healthy, failed) = crate::mapping::healthy_and_failed_info();
        let (status, optimizer) = health_out(&healthy);
        assert_eq!(
            (status, optimizer.ok, optimizer.error.as_str()),
            (proto::CollectionStatus::Green, true, "")
        );
        let (status, optimizer) = health_out(&failed);
        assert_eq!(status, proto::CollectionStatus::Red);
        assert!(!optimizer.ok);
        assert_eq!(Some(optimizer.error), failed.damage.map(|d| d.to_string()));
    }

    fn bytes() -> Option<Vec<u8>> {
        Some(vec![1])
    }

    fn named(message: &dyn Unserved) -> &'static str {
        message.unserved().unwrap_or("(served)")
    }

    /// Every field of every gRPC request message that Braid does not serve, set on its
    /// own, is named; the same messages with only served fields (or a served value of
    /// a one-value setting) are let through. Served fields are exercised end to end by
    /// `tests/server/grpc.rs`.
    #[test]
    fn every_unserved_field_of_every_request_is_named() {
        use proto::points_update_operation::{Operation, PointStructList, UpdateVectors};
        let hnsw =
            |h: proto::HnswConfigDiff| proto::CreateCollection { hnsw_config: Some(h), ..Default::default() };
        let space = |p: proto::VectorParams| proto::CreateCollection {
            vectors_config: Some(proto::VectorsConfig {
                config: Some(proto::vectors_config::Config::Params(p)),
            }),
            ..Default::default()
        };
        let optimizers = |o: proto::OptimizersConfigDiff| proto::CreateCollection {
            optimizers_config: Some(o),
            ..Default::default()
        };
        let params = |p: proto::SearchParams| proto::SearchPoints { params: Some(p), ..Default::default() };
        let cases: Vec<(Box<dyn Unserved>, &str)> = vec![
            (Box::new(proto::CreateCollection { wal_config: bytes(), ..Default::default() }), "wal_config"),
            (
                Box::new(proto::CreateCollection { shard_number: Some(2), ..Default::default() }),
                "shard_number",
            ),
            (Box::new(proto::CreateCollection { shard_number: Some(1), ..Default::default() }), "(served)"),
            (
                Box::new(proto::CreateCollection { on_disk_payload: Some(true), ..Default::default() }),
                "(served)",
            ),
            (
                Box::new(proto::CreateCollection {
                    payload: Some(proto::PayloadStorageParams { memory: Some(1) }),
                    ..Default::default()
                }),
                "(served)",
            ),
            (
                Box::new(proto::CreateCollection {
                    payload: Some(proto::PayloadStorageParams { memory: Some(3) }),
                    ..Default::default()
                }),
                "payload.memory",
            ),
            (
                Box::new(proto::CreateCollection { replication_factor: Some(3), ..Default::default() }),
                "replication_factor",
            ),
            (
                Box::new(proto::CreateCollection { write_consistency_factor: Some(2), ..Default::default() }),
                "write_consistency_factor",
            ),
            (
                Box::new(proto::CreateCollection { sharding_method: Some(1), ..Default::default() }),
                "sharding_method",
            ),
            (
                Box::new(proto::CreateCollection { strict_mode_config: bytes(), ..Default::default() }),
                "strict_mode_config",
            ),
            (Box::new(proto::CreateCollection { metadata: vec![vec![1]], ..Default::default() }), "metadata"),
            (Box::new(proto::CreateCollection { id_tracker: bytes(), ..Default::default() }), "id_tracker"),
            (Box::new(proto::CreateCollection { timeout: Some(5), ..Default::default() }), "(served)"),
            (
                Box::new(hnsw(proto::HnswConfigDiff { max_indexing_threads: Some(2), ..Default::default() })),
                "hnsw_config.max_indexing_threads",
            ),
            (Box::new(hnsw(proto::HnswConfigDiff { on_disk: Some(true), ..Default::default() })), "(served)"),
            (Box::new(hnsw(proto::HnswConfigDiff { payload_m: Some(8), ..Default::default() })), "(served)"),
            (
                Box::new(hnsw(proto::HnswConfigDiff { inline_storage: Some(true), ..Default::default() })),
                "hnsw_config.inline_storage",
            ),
            (Box::new(hnsw(proto::HnswConfigDiff { memory: Some(1), ..Default::default() })), "(served)"),
            (
                Box::new(hnsw(proto::HnswConfigDiff { memory: Some(7), ..Default::default() })),
                "hnsw_config.memory",
            ),
            (
                Box::new(hnsw(proto::HnswConfigDiff {
                    m: Some(8),
                    ef_construct: Some(50),
                    full_scan_threshold: Some(10),
                    max_indexing_threads: Some(0),
                    on_disk: Some(false),
                    ..Default::default()
                })),
                "(served)",
            ),
            (Box::new(space(proto::VectorParams { on_disk: Some(true), ..Default::default() })), "(served)"),
            (Box::new(space(proto::VectorParams { datatype: Some(4), ..Default::default() })), "datatype"),
            (Box::new(space(proto::VectorParams { datatype: Some(1), ..Default::default() })), "(served)"),
            (
                Box::new(space(proto::VectorParams {
                    multivector_config: Some(proto::MultiVectorConfig::default()),
                    ..Default::default()
                })),
                "(served)",
            ),
            (Box::new(space(proto::VectorParams { memory: Some(1), ..Default::default() })), "(served)"),
            (Box::new(space(proto::VectorParams { memory: Some(3), ..Default::default() })), "memory"),
            (
                Box::new(optimizers(proto::OptimizersConfigDiff {
                    deleted_threshold: Some(0.1),
                    ..Default::default()
                })),
                "(served)",
            ),
            (
                Box::new(optimizers(proto::OptimizersConfigDiff {
                    vacuum_min_vector_number: Some(1),
                    ..Default::default()
                })),
                "(served)",
            ),
            (
                Box::new(optimizers(proto::OptimizersConfigDiff {
                    default_segment_number: Some(1),
                    ..Default::default()
                })),
                "optimizers_config.default_segment_number",
            ),
            (
                Box::new(optimizers(proto::OptimizersConfigDiff {
                    max_segment_size: Some(1),
                    ..Default::default()
                })),
                "optimizers_config.max_segment_size",
            ),
            (
                Box::new(optimizers(proto::OptimizersConfigDiff {
                    memmap_threshold: Some(1),
                    ..Default::default()
                })),
                "optimizers_config.memmap_threshold",
            ),
            (
                Box::new(optimizers(proto::OptimizersConfigDiff {
                    flush_interval_sec: Some(1),
                    ..Default::default()
                })),
                "optimizers_config.flush_interval_sec",
            ),
            (
                Box::new(optimizers(proto::OptimizersConfigDiff {
                    deprecated_max_optimization_threads: Some(1),
                    ..Default::default()
                })),
                "optimizers_config.max_optimization_threads",
            ),
            (
                Box::new(optimizers(proto::OptimizersConfigDiff {
                    max_optimization_threads: bytes(),
                    ..Default::default()
                })),
                "optimizers_config.max_optimization_threads",
            ),
            (
                Box::new(optimizers(proto::OptimizersConfigDiff {
                    prevent_unoptimized: Some(true),
                    ..Default::default()
                })),
                "optimizers_config.prevent_unoptimized",
            ),
            (
                Box::new(optimizers(proto::OptimizersConfigDiff {
                    indexing_threshold: Some(0),
                    ..Default::default()
                })),
                "(served)",
            ),
            (Box::new(proto::UpsertPoints { update_filter: bytes(), ..Default::default() }), "update_filter"),
            (Box::new(proto::UpsertPoints { update_mode: Some(1), ..Default::default() }), "update_mode"),
            (
                Box::new(proto::UpsertPoints {
                    update_mode: Some(0),
                    ordering: bytes(),
                    timeout: Some(1),
                    ..Default::default()
                }),
                "(served)",
            ),
            (
                Box::new(proto::UpdatePointVectors { update_filter: bytes(), ..Default::default() }),
                "update_filter",
            ),
            (
                Box::new(proto::GetPoints {
                    read_consistency: Some(Default::default()),
                    ..Default::default()
                }),
                "(served)",
            ),
            (
                Box::new(proto::CreateFieldIndexCollection {
                    field_index_params: Some(proto::PayloadIndexParams {
                        index_params: Some(proto::payload_index_params::IndexParams::KeywordIndexParams(
                            vec![1],
                        )),
                    }),
                    ..Default::default()
                }),
                "keyword_index_params",
            ),
            (
                Box::new(proto::CreateFieldIndexCollection {
                    field_index_params: Some(proto::PayloadIndexParams {
                        index_params: Some(proto::payload_index_params::IndexParams::TextIndexParams(
                            proto::TextIndexParams { ascii_folding: Some(true), ..Default::default() },
                        )),
                    }),
                    ..Default::default()
                }),
                "text_index_params.ascii_folding",
            ),
            (
                Box::new(params(proto::SearchParams { indexed_only: Some(true), ..Default::default() })),
                "params.indexed_only",
            ),
            (Box::new(params(proto::SearchParams { acorn: bytes(), ..Default::default() })), "params.acorn"),
            (Box::new(params(proto::SearchParams { idf: bytes(), ..Default::default() })), "params.idf"),
            (
                Box::new(params(proto::SearchParams {
                    hnsw_ef: Some(8),
                    exact: Some(true),
                    indexed_only: Some(false),
                    ..Default::default()
                })),
                "(served)",
            ),
            (
                Box::new(proto::SearchBatchPoints {
                    search_points: vec![params(proto::SearchParams { acorn: bytes(), ..Default::default() })],
                    ..Default::default()
                }),
                "params.acorn",
            ),
            (
                Box::new(proto::DiscoverBatchPoints {
                    discover_points: vec![proto::DiscoverPoints {
                        params: Some(proto::SearchParams { acorn: bytes(), ..Default::default() }),
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
                "params.acorn",
            ),
            (
                Box::new(proto::UpdateBatchPoints {
                    operations: vec![proto::PointsUpdateOperation {
                        operation: Some(Operation::Upsert(PointStructList {
                            update_mode: Some(2),
                            ..Default::default()
                        })),
                    }],
                    ..Default::default()
                }),
                "update_mode",
            ),
            (
                Box::new(proto::UpdateBatchPoints {
                    operations: vec![proto::PointsUpdateOperation {
                        operation: Some(Operation::UpdateVectors(UpdateVectors {
                            update_filter: bytes(),
                            ..Default::default()
                        })),
                    }],
                    ..Default::default()
                }),
                "update_filter",
            ),
        ];
        for (message, expected) in &cases {
            assert_eq!(named(message.as_ref()), *expected);
        }
    }
}
