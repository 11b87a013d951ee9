//! The one place where Qdrant's collection settings meet Braid's: both protocols read
//! their wire shapes (JSON in `convert.rs`, protobuf in `grpc.rs`) into the neutral
//! specs here, and every decision — defaults, which quantization is served, what a
//! missing field means, what collection info reports — is taken here once, so REST and
//! gRPC cannot drift apart.

use braid::{CollectionConfig, Distance, HnswParams, Modifier, SparseVectorParams, VectorParams};

use crate::ApiError;

/// The name Qdrant gives the one unnamed vector of a collection.
pub(crate) const DEFAULT_VECTOR: &str = "";

fn bad(why: impl Into<String>) -> ApiError {
    ApiError::bad_request(why.into())
}

/// An `hnsw_config` diff: the fields given.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct HnswDiff {
    pub(crate) m: Option<usize>,
    pub(crate) ef_construct: Option<usize>,
    /// Kilobytes (Qdrant's unit).
    pub(crate) full_scan_threshold: Option<usize>,
    pub(crate) payload_m: Option<usize>,
    /// The graph's layer 0 read from its file (`hnsw_config.on_disk`).
    pub(crate) on_disk: Option<bool>,
}

impl HnswDiff {
    /// `base` with the given fields replaced.
    pub(crate) fn over(self, base: HnswParams) -> HnswParams {
        HnswParams {
            m: self.m.unwrap_or(base.m),
            ef_construct: self.ef_construct.unwrap_or(base.ef_construct),
            full_scan_threshold_kb: self.full_scan_threshold.unwrap_or(base.full_scan_threshold_kb),
            payload_m: self.payload_m.or(base.payload_m),
            on_disk: self.on_disk.unwrap_or(base.on_disk),
        }
    }
}

/// The bits per component of binary codes Braid keeps.
enum BinaryEncoding {
    OneBit,
    TwoBits,
}

/// A binary `encoding` as either protocol names it (REST `two_bits`, gRPC `TwoBits`),
/// absent meaning one bit. Qdrant's `one_and_half_bits` is refused: a three-level
/// code, what 1.5 bits pack, ranked between one and two bits and was not built
/// (`docs/hnsw.md`, "Two-bit codes").
fn binary_encoding(name: Option<&str>) -> Result<BinaryEncoding, ApiError> {
    let Some(name) = name else { return Ok(BinaryEncoding::OneBit) };
    let is = |rest: &str, grpc: &str| name.eq_ignore_ascii_case(rest) || name.eq_ignore_ascii_case(grpc);
    if is("one_bit", "OneBit") {
        Ok(BinaryEncoding::OneBit)
    } else if is("two_bits", "TwoBits") {
        Ok(BinaryEncoding::TwoBits)
    } else {
        Err(bad(format!(
            "binary quantization encoding {name} is not supported: Braid keeps one bit (one_bit) or two (two_bits)"
        )))
    }
}

/// A `quantization_config` as either protocol gave it.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) enum QuantizationSpec {
    /// None given.
    Absent,
    /// `scalar` with this `type` (`int8` is what Braid's codes are), `quantile` and
    /// `always_ram`.
    Scalar { kind: String, quantile: Option<f32>, always_ram: Option<bool>, memory: Option<String> },
    /// `binary` with its `always_ram`, `encoding` and `query_encoding` (as named on
    /// the wire), and its `memory` placement (`cold`, `cached`, `pinned`).
    Binary {
        always_ram: Option<bool>,
        encoding: Option<String>,
        query_encoding: Option<String>,
        memory: Option<String>,
    },
    /// `product` with its `compression` (as named on the wire, absent if not given)
    /// and `always_ram`, and its `memory` placement.
    Product { compression: Option<String>, always_ram: Option<bool>, memory: Option<String> },
    /// Any other kind (`turboquant`, …), by name.
    Other { kinds: Vec<String> },
}

impl QuantizationSpec {
    /// The codes a space keeps under this spec, `absent` when none was given.
    /// Scalar int8, binary one- and two-bit and product codes are served; other kinds and
    /// settings Braid does not have are refused rather than silently ignored.
    pub(crate) fn quantization(&self, absent: braid::Quantization) -> Result<braid::Quantization, ApiError> {
        self.codes_on_disk()?;
        match self {
            QuantizationSpec::Absent => Ok(absent),
            QuantizationSpec::Binary { encoding, query_encoding, .. } => {
                let codes = match binary_encoding(encoding.as_deref())? {
                    BinaryEncoding::OneBit => braid::Quantization::Binary,
                    BinaryEncoding::TwoBits => braid::Quantization::BinaryTwoBits,
                };
                match query_encoding {
                    Some(q)
                        if !(q.eq_ignore_ascii_case("default") || q.eq_ignore_ascii_case("scalar8bits")) =>
                    {
                        Err(bad(format!(
                            "binary quantization query_encoding {q} is not supported: Braid ranks binary codes against an 8-bit query (default, scalar8bits)"
                        )))
                    }
                    _ => Ok(codes),
                }
            }
            QuantizationSpec::Product { compression, .. } => {
                Ok(braid::Quantization::Product(compression_named(compression.as_deref())?))
            }
            QuantizationSpec::Scalar { kind, .. } if !kind.eq_ignore_ascii_case("int8") => {
                Err(bad(format!("scalar quantization type {kind} is not supported: use int8")))
            }
            // Braid scales each vector's code by its own largest component, which is
            // what quantile 1.0 means; a lower quantile (clipping outliers) is not
            // something it does, so it is refused rather than ignored.
            QuantizationSpec::Scalar { quantile: Some(q), .. } if *q != 1.0 => Err(bad(format!(
                "scalar quantization quantile {q} is not supported: Braid's codes are scaled per vector (quantile 1.0)"
            ))),
            QuantizationSpec::Scalar { .. } => Ok(braid::Quantization::Int8),
            QuantizationSpec::Other { kinds } => Err(bad(format!(
                "quantization {} is not supported: Braid keeps scalar int8 codes (its default), binary or product ones (REST: {{\"scalar\": {{\"type\": \"int8\"}}}}, {{\"binary\": {{}}}} or {{\"product\": {{\"compression\": \"x16\"}}}})",
                kinds.join(", ")
            ))),
        }
    }
}

impl QuantizationSpec {
    /// Where the codes live, `None` when the spec does not say: `memory` (Qdrant's
    /// newer field, which overrides `always_ram`) `pinned` or `always_ram: true` on
    /// the heap (`Some(false)`); `cached` or `always_ram: false` in their file's pages,
    /// mapped (`Some(true)`: `docs/collections.md`, "Codes on disk"). `cold` is
    /// refused: the open's checksum pass reads a codes file into the page cache, so
    /// Braid's codes on disk are `cached`.
    pub(crate) fn codes_on_disk(&self) -> Result<Option<bool>, ApiError> {
        let (kind, always_ram, memory) = match self {
            QuantizationSpec::Scalar { always_ram, memory, .. } => ("scalar", always_ram, memory),
            QuantizationSpec::Binary { always_ram, memory, .. } => ("binary", always_ram, memory),
            QuantizationSpec::Product { always_ram, memory, .. } => ("product", always_ram, memory),
            QuantizationSpec::Absent | QuantizationSpec::Other { .. } => return Ok(None),
        };
        let on_disk = match memory.as_deref() {
            Some(m) if m.eq_ignore_ascii_case("pinned") => Some(false),
            Some(m) if m.eq_ignore_ascii_case("cached") => Some(true),
            Some(m) => {
                return Err(bad(format!(
                    "{kind} quantization memory {m} is not supported: Braid keeps codes pinned (in RAM) or cached (mapped from their file, read into the page cache at open)"
                )));
            }
            None => always_ram.map(|ram| !ram),
        };
        Ok(on_disk)
    }
}

/// The product quantization ratio named `name` (`x4` … `x64`).
fn compression_named(name: Option<&str>) -> Result<braid::distance::Compression, ApiError> {
    let Some(name) = name else {
        return Err(bad("product quantization needs `compression`: x4, x8, x16, x32 or x64"));
    };
    braid::distance::Compression::from_name(name).ok_or_else(|| {
        bad(format!("product quantization compression {name} is not one of x4, x8, x16, x32, x64"))
    })
}

/// One vector space as either protocol gave it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct SpaceSpec {
    pub(crate) size: Option<usize>,
    pub(crate) distance: Option<Distance>,
    pub(crate) hnsw: HnswDiff,
    pub(crate) quantization: QuantizationSpec,
    /// `on_disk`: rows read where touched instead of into memory (absent: `false`).
    pub(crate) on_disk: Option<bool>,
    /// `multivector_config: {comparator: max_sim}`: a multivector space.
    pub(crate) multivector: bool,
    /// `datatype` (absent: `float32`).
    pub(crate) datatype: Option<braid::Datatype>,
}

impl SpaceSpec {
    /// Adds this space to `config` as `name`: dense, or a multivector space (whose
    /// graph and quantization settings Braid accepts but has no use for: it searches
    /// multivector spaces exactly, and reports `m: 0`).
    fn add(
        &self,
        config: CollectionConfig,
        name: &str,
        base: HnswParams,
        (quantization, codes_on_disk): (braid::Quantization, bool),
    ) -> Result<CollectionConfig, ApiError> {
        let params = self.params(base, quantization, codes_on_disk)?;
        Ok(if self.multivector {
            if params.on_disk {
                return Err(bad(format!(
                    "`{name}`: on_disk is not supported for a multivector space: Braid keeps its vectors in memory"
                )));
            }
            multivector_datatype(name, params.datatype)?;
            config.multivector(name, braid::MultiVectorParams::new(params.size, params.distance))
        } else {
            config.vector(name, params)
        })
    }

    /// The space's parameters, its HNSW settings over `base` and its quantization
    /// over `quantization` (the collection's).
    pub(crate) fn params(
        &self,
        base: HnswParams,
        quantization: braid::Quantization,
        codes_on_disk: bool,
    ) -> Result<VectorParams, ApiError> {
        // The space's own quantization, placement included, replaces the collection's.
        let codes_on_disk = match self.quantization {
            QuantizationSpec::Absent => codes_on_disk,
            _ => self.quantization.codes_on_disk()?.unwrap_or(false),
        };
        let quantization = self.quantization.quantization(quantization)?;
        let size = self.size.ok_or_else(|| bad("vector params need `size`"))?;
        let distance = self.distance.ok_or_else(|| bad("vector params need `distance`"))?;
        let hnsw = self.hnsw.over(base);
        Ok(VectorParams::new(size, distance)
            .hnsw_params(hnsw)
            .quantization(quantization)
            .on_disk(self.on_disk.unwrap_or(false))
            .datatype(self.datatype.unwrap_or_default())
            .codes_on_disk(codes_on_disk && quantization != braid::Quantization::None))
    }
}

/// A collection's spaces: one unnamed, or named ones.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Spaces {
    /// `vectors: {size, distance}`: the unnamed vector.
    Unnamed(SpaceSpec),
    /// `vectors: {name: {size, distance}, …}`.
    Named(Vec<(String, SpaceSpec)>),
}

/// Multivector spaces store `f32`: any other datatype for one is refused.
fn multivector_datatype(name: &str, datatype: braid::Datatype) -> Result<(), ApiError> {
    if datatype == braid::Datatype::Float32 {
        return Ok(());
    }
    Err(bad(format!(
        "`{name}`: datatype {datatype} is not supported for a multivector space: Braid stores its vectors as float32"
    )))
}

/// A create-collection request as either protocol gave it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct CollectionSpec {
    pub(crate) hnsw: HnswDiff,
    /// `optimizers_config.indexing_threshold`, kilobytes.
    pub(crate) indexing_threshold: Option<usize>,
    /// `optimizers_config.deleted_threshold` and `vacuum_min_vector_number`.
    pub(crate) deleted_threshold: Option<f64>,
    pub(crate) vacuum_min: Option<usize>,
    pub(crate) quantization: QuantizationSpec,
    pub(crate) spaces: Option<Spaces>,
    /// `sparse_vectors`: each sparse space's modifier.
    pub(crate) sparse: Vec<(String, Modifier)>,
    /// `on_disk_payload` (or `payload.memory`, which overrides it); absent: in memory.
    pub(crate) on_disk_payload: Option<bool>,
}

impl CollectionSpec {
    /// The configuration: a collection-level `hnsw_config` is the default of every
    /// space (over Braid's and Qdrant's m = 16, ef_construct = 100).
    pub(crate) fn config(&self) -> Result<CollectionConfig, ApiError> {
        let quantization = self.quantization.quantization(braid::Quantization::default())?;
        let base = self.hnsw.over(HnswParams::default());
        let mut config = CollectionConfig::new();
        if let Some(kb) = self.indexing_threshold {
            config = config.indexing_threshold_kb(kb);
        }
        config.deleted_threshold = self.deleted_threshold;
        config.vacuum_min_vector_number = self.vacuum_min;
        config.on_disk_payload = self.on_disk_payload.unwrap_or(false);
        let codes_on_disk = self.quantization.codes_on_disk()?.unwrap_or(false);
        if self.quantization != QuantizationSpec::Absent {
            config.quantization = Some(quantization);
            config.codes_on_disk = codes_on_disk;
        }
        match &self.spaces {
            // No vectors (absent or `{}`): a collection of payloads, as Qdrant allows.
            None => {}
            Some(Spaces::Unnamed(space)) => {
                config = space.add(config, DEFAULT_VECTOR, base, (quantization, codes_on_disk))?
            }
            Some(Spaces::Named(spaces)) => {
                for (name, space) in spaces {
                    config = space.add(config, name, base, (quantization, codes_on_disk))?;
                }
            }
        }
        for (name, modifier) in &self.sparse {
            if config.vectors.contains_key(name) {
                return Err(bad(format!(
                    "`{name}` is both a dense and a sparse vector; a name can be only one"
                )));
            }
            config = config.sparse_vector(name, SparseVectorParams { modifier: *modifier });
        }
        Ok(config)
    }
}

/// A `quantization_config` in an update, as either protocol gave it.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) enum QuantizationChange {
    /// None given: as it is.
    Keep,
    /// `"Disabled"`: no codes.
    Disabled,
    /// A kind to switch to (checked as at create: only scalar int8 is served).
    To(QuantizationSpec),
}

impl QuantizationChange {
    /// The quantization and codes placement after the change, over `base`'s: a new
    /// kind replaces the old whole, its placement with it (absent: in RAM).
    fn over(&self, base: (braid::Quantization, bool)) -> Result<(braid::Quantization, bool), ApiError> {
        Ok(match self {
            QuantizationChange::Keep => base,
            QuantizationChange::Disabled => (braid::Quantization::None, false),
            QuantizationChange::To(spec) => {
                (spec.quantization(base.0)?, spec.codes_on_disk()?.unwrap_or(false))
            }
        })
    }
}

/// A collection update (`PATCH /collections/{c}`, gRPC `Update`) as either protocol
/// gave it: diffs over the live configuration.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) struct UpdateSpec {
    /// Collection-level `hnsw_config`: applies to every dense space (Braid resolved
    /// the collection's defaults into each space at create).
    pub(crate) hnsw: HnswDiff,
    /// Collection-level `quantization_config`: every dense space.
    pub(crate) quantization: QuantizationChange,
    /// `vectors`: per space, over the collection-level change, with its `on_disk`.
    pub(crate) vectors: Vec<(String, HnswDiff, QuantizationChange, Option<bool>)>,
    /// `sparse_vectors`: a new modifier per sparse space (`None`: as it is).
    pub(crate) sparse: Vec<(String, Option<Modifier>)>,
    pub(crate) indexing_threshold: Option<usize>,
    pub(crate) deleted_threshold: Option<f64>,
    pub(crate) vacuum_min: Option<usize>,
    /// `params.on_disk_payload` (or `params.payload.memory`); `None`: as it is.
    pub(crate) on_disk_payload: Option<bool>,
}

impl UpdateSpec {
    /// `config` with the update applied; a space named that the collection does not
    /// have (of the right kind) is an error.
    pub(crate) fn over(&self, mut config: CollectionConfig) -> Result<CollectionConfig, ApiError> {
        (config.quantization, config.codes_on_disk) = match &self.quantization {
            QuantizationChange::Keep => (config.quantization, config.codes_on_disk),
            QuantizationChange::Disabled => (None, false),
            QuantizationChange::To(spec) => (
                Some(spec.quantization(config.quantization.unwrap_or_default())?),
                spec.codes_on_disk()?.unwrap_or(false),
            ),
        };
        for params in config.vectors.values_mut() {
            params.hnsw = self.hnsw.over(params.hnsw);
            (params.quantization, params.codes_on_disk) =
                self.quantization.over((params.quantization, params.codes_on_disk))?;
        }
        for (name, hnsw, quantization, on_disk) in &self.vectors {
            let Some(params) = config.vectors.get_mut(name) else {
                return Err(bad(format!(
                    "Wrong input: Not existing vector name error: `{name}` is not a dense vector of this collection"
                )));
            };
            params.hnsw = hnsw.over(params.hnsw);
            (params.quantization, params.codes_on_disk) =
                quantization.over((params.quantization, params.codes_on_disk))?;
            params.on_disk = on_disk.unwrap_or(params.on_disk);
        }
        for (name, modifier) in &self.sparse {
            let Some(params) = config.sparse_vectors.get_mut(name) else {
                return Err(bad(format!(
                    "Wrong input: Not existing vector name error: `{name}` is not a sparse vector of this collection"
                )));
            };
            if let Some(m) = modifier {
                params.modifier = *m;
            }
        }
        if let Some(kb) = self.indexing_threshold {
            config.indexing_threshold_kb = kb;
        }
        if let Some(t) = self.deleted_threshold {
            config.deleted_threshold = Some(t);
        }
        if let Some(n) = self.vacuum_min {
            config.vacuum_min_vector_number = Some(n);
        }
        config.on_disk_payload = self.on_disk_payload.unwrap_or(config.on_disk_payload);
        Ok(config)
    }
}

/// A vector space to add (`PUT /collections/{c}/vectors/{name}`, gRPC
/// `CreateVectorName`).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) enum NewSpace {
    /// Dense, or with `multivector` a multivector space.
    Dense {
        size: usize,
        distance: Distance,
        multivector: bool,
        datatype: braid::Datatype,
    },
    Sparse {
        modifier: Modifier,
    },
}

impl NewSpace {
    /// `config` with the space `name` added. A new dense space takes the graph
    /// settings collection info reports as the collection's, and the collection-level
    /// quantization (Braid's default codes when none was asked for).
    pub(crate) fn add(&self, name: &str, config: CollectionConfig) -> Result<CollectionConfig, ApiError> {
        if config.space_names().iter().any(|n| n == name) {
            return Err(bad(format!("Wrong input: the collection already has a vector named `{name}`")));
        }
        Ok(match *self {
            NewSpace::Dense { size, distance, multivector: true, datatype } => {
                multivector_datatype(name, datatype)?;
                config.multivector(name, braid::MultiVectorParams::new(size, distance))
            }
            NewSpace::Dense { size, distance, multivector: false, datatype } => {
                let hnsw = reported_hnsw(&config);
                let params = VectorParams::new(size, distance)
                    .hnsw_params(hnsw)
                    .quantization(config.quantization.unwrap_or_default())
                    .codes_on_disk(config.codes_on_disk)
                    .datatype(datatype);
                config.vector(name, params)
            }
            NewSpace::Sparse { modifier } => config.sparse_vector(name, SparseVectorParams { modifier }),
        })
    }
}

/// The one unnamed space, when that is all the collection has (reported in Qdrant's
/// single-vector shape).
pub(crate) fn unnamed(config: &CollectionConfig) -> Option<&VectorParams> {
    (config.vectors.len() == 1 && config.multivectors.is_empty())
        .then(|| config.vectors.get(DEFAULT_VECTOR))
        .flatten()
}

/// The collection-level `hnsw_config` info reports: the first space's (Braid keeps it
/// per space; Qdrant's clients read one).
pub(crate) fn reported_hnsw(config: &CollectionConfig) -> HnswParams {
    config.vectors.values().next().map(|p| p.hnsw).unwrap_or_default()
}

/// `"none" | "idf"` (REST) — gRPC's enum names map to the same.
pub(crate) fn modifier_named(name: &str) -> Option<Modifier> {
    match name.to_ascii_lowercase().as_str() {
        "none" => Some(Modifier::None),
        "idf" => Some(Modifier::Idf),
        _ => None,
    }
}

/// The REST name of a modifier.
pub(crate) fn modifier_name(m: Modifier) -> &'static str {
    match m {
        Modifier::None => "none",
        Modifier::Idf => "idf",
    }
}

/// `"Cosine" | "Euclid" | "Dot" | "Manhattan"`.
pub(crate) fn distance_named(name: &str) -> Option<Distance> {
    match name {
        "Cosine" => Some(Distance::Cosine),
        "Euclid" => Some(Distance::Euclid),
        "Dot" => Some(Distance::Dot),
        "Manhattan" => Some(Distance::Manhattan),
        _ => None,
    }
}

/// The name of a distance, as both protocols spell it.
pub(crate) fn distance_name(d: Distance) -> &'static str {
    match d {
        Distance::Cosine => "Cosine",
        Distance::Euclid => "Euclid",
        Distance::Dot => "Dot",
        Distance::Manhattan => "Manhattan",
    }
}

/// A healthy collection's info, and the same info as a failed checksum pass leaves it
/// (`red`, with the damage): for both protocols' info tests.
#[cfg(test)]
pub(crate) fn healthy_and_failed_info() -> (braid::CollectionInfo, braid::CollectionInfo) {
    let db = braid::Database::in_memory();
    let config =
        braid::CollectionConfig::new().vector("v", braid::VectorParams::new(2, braid::Distance::Dot));
    let c = db.create_collection("c", config).expect("a valid collection");
    let mut failed = c.info();
    failed.status = "red";
    failed.damage = Some(braid::Error::Storage(braid::storage::StorageError::corrupt(
        std::path::Path::new("vectors-0-0.vec"),
        64,
        "vector checksum mismatch",
    )));
    (c.info(), failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn space(size: usize) -> SpaceSpec {
        SpaceSpec {
            size: Some(size),
            distance: Some(Distance::Cosine),
            hnsw: HnswDiff::default(),
            quantization: QuantizationSpec::Absent,
            on_disk: None,
            multivector: false,
            datatype: None,
        }
    }

    #[test]
    fn collection_hnsw_is_every_spaces_default_and_a_space_overrides_it() {
        let mut image = space(512);
        image.hnsw.m = Some(32);
        let spec = CollectionSpec {
            hnsw: HnswDiff {
                m: None,
                ef_construct: Some(200),
                full_scan_threshold: Some(500),
                payload_m: None,
                on_disk: None,
            },
            indexing_threshold: Some(0),
            deleted_threshold: None,
            vacuum_min: None,
            quantization: QuantizationSpec::Absent,
            spaces: Some(Spaces::Named(vec![("text".into(), space(384)), ("image".into(), image)])),
            sparse: vec![("bm25".into(), Modifier::Idf)],
            on_disk_payload: None,
        };
        let config = spec.config().unwrap();
        let hnsw = |m| HnswParams {
            m,
            ef_construct: 200,
            full_scan_threshold_kb: 500,
            payload_m: None,
            on_disk: false,
        };
        assert_eq!(config.vectors["text"].hnsw, hnsw(16));
        assert_eq!(config.vectors["image"].hnsw, hnsw(32));
        assert_eq!(config.indexing_threshold_kb, 0);
        assert!(unnamed(&config).is_none());
        assert_eq!(config.sparse_vectors["bm25"].modifier, Modifier::Idf);
        let clash = CollectionSpec { sparse: vec![("text".into(), Modifier::None)], ..spec };
        assert!(clash.config().unwrap_err().message.contains("both"));
    }

    #[test]
    fn scalar_int8_and_binary_quantization_are_served() {
        let q = |spec: QuantizationSpec| spec.quantization(braid::Quantization::None);
        // The message a refused spec gets.
        let refused = |spec: QuantizationSpec| q(spec).unwrap_err().message;
        let scalar = |kind: &str, quantile, always_ram| QuantizationSpec::Scalar {
            kind: kind.into(),
            quantile,
            always_ram,
            memory: None,
        };
        assert!(q(scalar("int8", None, None)).is_ok());
        assert!(q(scalar("Int8", Some(1.0), Some(true))).is_ok());
        assert!(q(scalar("uint4", None, None)).is_err());
        assert!(refused(scalar("int8", Some(0.99), None)).contains("quantile"));
        // always_ram: false keeps the codes in their file's pages (memory cached).
        assert!(q(scalar("int8", None, Some(false))).is_ok());
        assert_eq!(scalar("int8", None, Some(false)).codes_on_disk().unwrap(), Some(true));
        assert_eq!(scalar("int8", None, Some(true)).codes_on_disk().unwrap(), Some(false));
        assert_eq!(scalar("int8", None, None).codes_on_disk().unwrap(), None);
        let err = refused(QuantizationSpec::Other { kinds: vec!["turboquant".into()] });
        assert!(err.contains("turboquant"), "{err}");
        let pinned = |memory: &str| QuantizationSpec::Scalar {
            kind: "int8".into(),
            quantile: None,
            always_ram: None,
            memory: Some(memory.into()),
        };
        assert!(q(pinned("Pinned")).is_ok());
        assert_eq!(pinned("Pinned").codes_on_disk().unwrap(), Some(false));
        assert_eq!(pinned("cached").codes_on_disk().unwrap(), Some(true));
        assert!(refused(pinned("cold")).contains("cold"));
        let product =
            |compression: Option<&str>, always_ram, memory: Option<&str>| QuantizationSpec::Product {
                compression: compression.map(str::to_string),
                always_ram,
                memory: memory.map(str::to_string),
            };
        assert_eq!(
            product(Some("X64"), Some(true), Some("pinned")).quantization(braid::Quantization::Int8).unwrap(),
            braid::Quantization::Product(braid::distance::Compression::X64)
        );
        assert!(refused(product(None, None, None)).contains("compression"));
        assert!(refused(product(Some("x3"), None, None)).contains("x3"));
        assert_eq!(product(Some("x8"), Some(false), None).codes_on_disk().unwrap(), Some(true));
        // `memory` overrides `always_ram`, as in Qdrant.
        assert_eq!(product(Some("x8"), Some(true), Some("cached")).codes_on_disk().unwrap(), Some(true));
        assert_eq!(product(Some("x8"), Some(false), Some("pinned")).codes_on_disk().unwrap(), Some(false));
        let binary = |encoding: Option<&str>, query: Option<&str>, always_ram, memory: Option<&str>| {
            QuantizationSpec::Binary {
                always_ram,
                encoding: encoding.map(str::to_string),
                query_encoding: query.map(str::to_string),
                memory: memory.map(str::to_string),
            }
        };
        assert_eq!(q(binary(None, None, None, None)).unwrap(), braid::Quantization::Binary);
        assert_eq!(
            q(binary(Some("one_bit"), Some("scalar8bits"), Some(true), Some("pinned"))).unwrap(),
            braid::Quantization::Binary
        );
        assert_eq!(q(QuantizationSpec::Absent).unwrap(), braid::Quantization::None);
        assert_eq!(
            q(binary(Some("two_bits"), None, None, None)).unwrap(),
            braid::Quantization::BinaryTwoBits
        );
        assert_eq!(q(binary(Some("TwoBits"), None, None, None)).unwrap(), braid::Quantization::BinaryTwoBits);
        let half = refused(binary(Some("one_and_half_bits"), None, None, None));
        assert!(half.contains("one_and_half_bits") && half.contains("two_bits"), "{half}");
        assert!(refused(binary(None, Some("scalar4bits"), None, None)).contains("scalar4bits"));
        assert_eq!(binary(None, None, Some(false), None).codes_on_disk().unwrap(), Some(true));
        assert_eq!(binary(Some("two_bits"), None, None, Some("cached")).codes_on_disk().unwrap(), Some(true));
        assert_eq!(binary(None, None, Some(false), Some("pinned")).codes_on_disk().unwrap(), Some(false));
        assert!(refused(binary(None, None, None, Some("cold"))).contains("memory"));
        let mut s = space(4);
        s.quantization = QuantizationSpec::Other { kinds: vec!["turboquant".into()] };
        assert!(s.params(HnswParams::default(), braid::Quantization::Int8, false).is_err());
        // A space's own quantization places its codes; without one, the collection's does.
        let mut s = space(64);
        assert!(s.params(HnswParams::default(), braid::Quantization::Int8, true).unwrap().codes_on_disk);
        s.quantization = scalar("int8", None, None);
        assert!(!s.params(HnswParams::default(), braid::Quantization::Int8, true).unwrap().codes_on_disk);
        s.quantization = scalar("int8", None, Some(false));
        assert!(s.params(HnswParams::default(), braid::Quantization::None, false).unwrap().codes_on_disk);
    }

    #[test]
    fn missing_fields_are_named() {
        let mut s = space(4);
        s.size = None;
        assert!(
            s.params(HnswParams::default(), braid::Quantization::Int8, false)
                .unwrap_err()
                .message
                .contains("size")
        );
        let none = CollectionSpec {
            hnsw: HnswDiff::default(),
            indexing_threshold: None,
            deleted_threshold: None,
            vacuum_min: None,
            quantization: QuantizationSpec::Absent,
            spaces: None,
            sparse: vec![],
            on_disk_payload: None,
        };
        assert!(none.config().unwrap().vectors.is_empty(), "no vectors: a collection of payloads");
    }
}
