//! Collection configuration: one [`VectorParams`] per named vector space.

pub use braid_core::Datatype;
use std::collections::BTreeMap;

pub use braid_core::Metric as Distance;

use crate::Error;

/// Qdrant's default for both size thresholds, in kilobytes of vectors (1 KB is one
/// 256-d f32 vector): `optimizers_config.indexing_threshold` and
/// `hnsw_config.full_scan_threshold`.
pub const DEFAULT_THRESHOLD_KB: usize = 10_000;

fn default_threshold_kb() -> usize {
    DEFAULT_THRESHOLD_KB
}

/// HNSW settings of one space, as Qdrant names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HnswParams {
    /// Links per node (layer 0 has `2·m`).
    pub m: usize,
    /// Beam width while building.
    pub ef_construct: usize,
    /// A filtered search whose filter matches fewer than this many kilobytes of this
    /// space's vectors scores every match exactly instead of walking the graph
    /// (Qdrant's `full_scan_threshold`; `docs/query.md`, "Exact by size").
    #[serde(default = "default_threshold_kb")]
    pub full_scan_threshold_kb: usize,
    /// Links per point among the points sharing a value of an indexed keyword,
    /// integer, bool or uuid field (Qdrant's `payload_m`: `None` takes `m`, 0 builds
    /// none), which filtered searches on one such field walk (`docs/hnsw.md`,
    /// "Payload links").
    #[serde(default)]
    pub payload_m: Option<usize>,
    /// Qdrant's `hnsw_config.on_disk`: the graph's layer 0 (its largest part: `2·m + 1`
    /// words per point) is read from a copy-on-write mapping of the graph file the last
    /// checkpoint wrote, paged in as searches touch it, instead of copied to the heap
    /// (`docs/collections.md`, "Graphs on disk"). Needs a database on disk.
    #[serde(default)]
    pub on_disk: bool,
}

impl HnswParams {
    /// The payload links per point (`2·` that on layer 0): `payload_m`, else `m`.
    pub fn payload_links(&self) -> usize {
        self.payload_m.unwrap_or(self.m)
    }
}

impl Default for HnswParams {
    fn default() -> Self {
        HnswParams {
            m: 16,
            ef_construct: 100,
            full_scan_threshold_kb: DEFAULT_THRESHOLD_KB,
            payload_m: None,
            on_disk: false,
        }
    }
}

/// How a space ranks candidates before scoring them exactly (`docs/hnsw.md`, "Codes").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Quantization {
    /// One-byte codes (one byte per component plus 12 per vector, in RAM) rank graph
    /// walks and planner scans; the best candidates are re-scored with the original
    /// vectors. Applies under Cosine, Dot and Euclid from 64 components; elsewhere the
    /// space behaves as [`Quantization::None`].
    #[default]
    Int8,
    /// One bit per component (the sign of its difference from the space's mean) plus
    /// 8 bytes per vector: a thirty-second of the `f32` rows, ranking coarser than
    /// [`Quantization::Int8`], so searches re-score a larger pool (`docs/hnsw.md`,
    /// "Binary codes"). Same metrics and dimensions as Int8.
    Binary,
    /// Two bits per component (one of four levels of its difference from the space's
    /// mean) plus 8 bytes per vector: a sixteenth of the `f32` rows, ranking about
    /// twice as closely as [`Quantization::Binary`] (Qdrant's binary quantization with
    /// `encoding: two_bits`; `docs/hnsw.md`, "Two-bit codes"). Same metrics and
    /// dimensions as Int8.
    BinaryTwoBits,
    /// One byte per `ratio / 4` components (the nearest of 256 centroids learnt for
    /// that group of components) and no per-vector terms: 4–64 times smaller than the
    /// `f32` rows, ranking coarser than [`Quantization::Int8`], so searches re-score a
    /// larger pool (`docs/hnsw.md`, "Product codes"). One-byte codes until the space
    /// holds [`braid_distance::PRODUCT_SAMPLE`] non-zero vectors to learn from. Same
    /// metrics and dimensions as Int8.
    Product(braid_distance::Compression),
    /// Only the original vectors: less memory, slower walks and scans.
    None,
}

impl Quantization {
    /// The kind of codes this setting asks for (`None` for [`Quantization::None`]);
    /// a space keeps them where its metric and dimension allow
    /// ([`VectorParams::code_kind`]).
    pub fn code_kind(self) -> Option<braid_distance::CodeKind> {
        Some(match self {
            Quantization::Int8 => braid_distance::CodeKind::Int8,
            Quantization::Binary => braid_distance::CodeKind::Binary,
            Quantization::BinaryTwoBits => braid_distance::CodeKind::BinaryTwoBits,
            Quantization::Product(compression) => braid_distance::CodeKind::Product(compression),
            Quantization::None => return None,
        })
    }
}

/// One named vector space.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct VectorParams {
    /// Dimension.
    pub size: usize,
    /// Distance.
    pub distance: Distance,
    /// Graph settings.
    pub hnsw: HnswParams,
    /// Codes for ranking; absent in collections written before it existed, which read
    /// as the default.
    #[serde(default)]
    pub quantization: Quantization,
    /// Qdrant's `on_disk`: the rows on disk are read only where a search touches them
    /// (no read-ahead), instead of read into memory when mapped. For spaces searched by
    /// their codes, whose rows are read only to re-score (`docs/collections.md`).
    #[serde(default)]
    pub on_disk: bool,
    /// Qdrant's `datatype`: what each stored component is (`f32`, `f16` or `u8`).
    /// Absent in collections written before it existed, which read as `Float32`.
    #[serde(default)]
    pub datatype: Datatype,
    /// Qdrant's `always_ram: false` (or `memory: cold`) on the quantization: the codes
    /// written by a checkpoint stay in their file, mapped, and the kernel pages them in
    /// as searches touch them, instead of being read into the heap at open
    /// (`docs/collections.md`, "Codes on disk"). A space without codes refuses it
    /// ([`Error::InvalidConfig`]). Absent in collections written before it existed,
    /// which read as `false`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub codes_on_disk: bool,
}

impl VectorParams {
    /// A space of `size` dimensions under `distance`, default graph settings and
    /// one-byte codes, rows read into memory.
    pub fn new(size: usize, distance: Distance) -> VectorParams {
        VectorParams {
            size,
            distance,
            hnsw: HnswParams::default(),
            quantization: Quantization::default(),
            on_disk: false,
            datatype: Datatype::Float32,
            codes_on_disk: false,
        }
    }

    /// With the codes kept in their file's pages (`true`) or read into the heap
    /// ([`VectorParams::codes_on_disk`]).
    pub fn codes_on_disk(mut self, on_disk: bool) -> VectorParams {
        self.codes_on_disk = on_disk;
        self
    }

    /// With rows stored as `datatype` instead of `f32` (`docs/collections.md`,
    /// "Datatypes"): `Float16` halves them, `Uint8` holds integers `0..=255`.
    pub fn datatype(mut self, datatype: Datatype) -> VectorParams {
        self.datatype = datatype;
        self
    }

    /// With the rows kept on disk and read where touched (`true`), or read into memory.
    pub fn on_disk(mut self, on_disk: bool) -> VectorParams {
        self.on_disk = on_disk;
        self
    }

    /// How the kernel is told to treat this space's mapped rows.
    pub(crate) fn residency(&self) -> braid_storage::Residency {
        if self.on_disk { braid_storage::Residency::Disk } else { braid_storage::Residency::Memory }
    }

    /// With `quantization` instead of the default [`Quantization::Int8`].
    pub fn quantization(mut self, quantization: Quantization) -> VectorParams {
        self.quantization = quantization;
        self
    }

    /// Whether this space keeps one-byte codes: [`Quantization::Int8`] under a metric
    /// and dimension codes apply to (Cosine, Dot, Euclid; 64 components or more).
    pub fn keeps_codes(&self) -> bool {
        self.code_kind().is_some()
    }

    /// The kind of codes this space keeps, if it keeps any.
    pub fn code_kind(&self) -> Option<braid_distance::CodeKind> {
        let kind = self.quantization.code_kind()?;
        braid_distance::Codes::supports(self.distance, self.size).then_some(kind)
    }

    /// The codes this space keeps, if any.
    pub(crate) fn codes(&self) -> Option<braid_distance::Codes> {
        braid_distance::Codes::of_kind(self.code_kind()?, self.distance, self.size)
    }

    /// With graph settings `m` and `ef_construct`.
    pub fn hnsw(mut self, m: usize, ef_construct: usize) -> VectorParams {
        self.hnsw = HnswParams { m, ef_construct, ..self.hnsw };
        self
    }

    /// With every HNSW setting of `hnsw`.
    pub fn hnsw_params(mut self, hnsw: HnswParams) -> VectorParams {
        self.hnsw = hnsw;
        self
    }

    /// With `payload_m` (links among the points sharing an indexed value; 0 for none)
    /// instead of `m`.
    pub fn payload_m(mut self, m: usize) -> VectorParams {
        self.hnsw.payload_m = Some(m);
        self
    }

    /// With `full_scan_threshold_kb` instead of the default.
    pub fn full_scan_threshold_kb(mut self, kb: usize) -> VectorParams {
        self.hnsw.full_scan_threshold_kb = kb;
        self
    }
}

/// How a sparse space weighs query values at search time (Qdrant's `modifier`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Modifier {
    /// Query values are used as given.
    #[default]
    None,
    /// Each query value is multiplied by its dimension's inverse document frequency
    /// over the space's live vectors, `ln((N − df + 0.5) / (df + 0.5) + 1)`, taken at
    /// search time (`docs/hybrid.md`). What BM25 vectors need.
    Idf,
}

/// One named sparse vector space (Qdrant's `sparse_vectors_config` entry). Sparse
/// spaces score by dot product over shared indices, exactly, from an inverted index.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SparseVectorParams {
    /// The query-time weighting.
    #[serde(default)]
    pub modifier: Modifier,
}

impl SparseVectorParams {
    /// A sparse space with no modifier.
    pub fn new() -> SparseVectorParams {
        SparseVectorParams::default()
    }

    /// A sparse space weighing queries by IDF (for BM25).
    pub fn idf() -> SparseVectorParams {
        SparseVectorParams { modifier: Modifier::Idf }
    }
}

/// How a multivector space compares two lists of vectors (Qdrant's `comparator`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Comparator {
    /// `Σ over query vectors of the max over the point's vectors` of their similarity
    /// (ColBERT's late interaction).
    #[default]
    MaxSim,
}

/// One multivector space (Qdrant's vector params with `multivector_config`): each point
/// holds a list of vectors of `size` components, compared by `comparator`. Braid
/// searches these spaces exactly (`docs/query.md`, "Multivectors").
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MultiVectorParams {
    /// Components of each vector.
    pub size: usize,
    /// Distance between two vectors.
    pub distance: Distance,
    /// How two lists compare.
    #[serde(default)]
    pub comparator: Comparator,
}

impl MultiVectorParams {
    /// A MaxSim space of `size`-component vectors under `distance`.
    pub fn new(size: usize, distance: Distance) -> MultiVectorParams {
        MultiVectorParams { size, distance, comparator: Comparator::MaxSim }
    }
}

/// The most vectors one point may hold in a multivector space.
pub const MAX_MULTIVECTOR: usize = 4_096;

/// The largest vector dimension a space may have.
pub const MAX_DIM: usize = 65_536;

/// A collection's configuration: its named vector spaces (`vectors_config`).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CollectionConfig {
    /// Spaces by name.
    pub vectors: BTreeMap<String, VectorParams>,
    /// A space holding fewer than this many kilobytes of vectors is searched exactly,
    /// by scoring every vector, as Qdrant searches a segment it has not indexed yet
    /// (`optimizers_config.indexing_threshold`). 0 means always (Qdrant: indexing
    /// disabled). Collections written before it existed read as the default.
    #[serde(default = "default_threshold_kb")]
    pub indexing_threshold_kb: usize,
    /// Sparse spaces by name (`sparse_vectors_config`); a name is either dense or
    /// sparse. Collections written before they existed read as none.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sparse_vectors: BTreeMap<String, SparseVectorParams>,
    /// Multivector spaces by name (Qdrant's vectors with `multivector_config`); a name
    /// is dense, sparse or multivector. Collections written before they existed read
    /// as none.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub multivectors: BTreeMap<String, MultiVectorParams>,
    /// The background optimiser compacts this collection when its dead point versions
    /// are more than this share of all versions (Qdrant's
    /// `optimizers_config.deleted_threshold`); `None`: the database's
    /// [`crate::StorageOptions::vacuum_share`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted_threshold: Option<f64>,
    /// …and at least this many (`vacuum_min_vector_number`); `None`: the database's
    /// [`crate::StorageOptions::vacuum_min`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vacuum_min_vector_number: Option<usize>,
    /// The collection-level quantization a client asked for (Qdrant's top-level
    /// `quantization_config`), kept to be reported where Qdrant reports it and given
    /// to dense spaces added later without their own. Each space's own
    /// [`VectorParams::quantization`] is what it keeps; `None`: none was asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantization: Option<Quantization>,
    /// Whether that collection-level quantization keeps its codes on disk (Qdrant's
    /// `always_ram: false`), for the same two uses: reported with it, and given to
    /// dense spaces added later ([`VectorParams::codes_on_disk`]).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub codes_on_disk: bool,
    /// Keep the payloads in a file read as they are asked for, not in memory (Qdrant's
    /// `on_disk_payload`): from the next checkpoint on, each checkpoint writes them to
    /// a payload file and the collection reads them from its mapping; payloads
    /// written since stay in memory until the next. Payload indexes stay in memory.
    /// Needs a database on disk. Collections written before it existed read as false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub on_disk_payload: bool,
}

impl Default for CollectionConfig {
    fn default() -> Self {
        CollectionConfig {
            vectors: BTreeMap::new(),
            indexing_threshold_kb: DEFAULT_THRESHOLD_KB,
            sparse_vectors: BTreeMap::new(),
            multivectors: BTreeMap::new(),
            deleted_threshold: None,
            vacuum_min_vector_number: None,
            quantization: None,
            codes_on_disk: false,
            on_disk_payload: false,
        }
    }
}

impl CollectionConfig {
    /// No spaces yet; add them with [`CollectionConfig::vector`].
    pub fn new() -> CollectionConfig {
        CollectionConfig::default()
    }

    /// With the payloads kept in a file rather than in memory
    /// ([`CollectionConfig::on_disk_payload`]).
    pub fn on_disk_payload(mut self, on_disk: bool) -> CollectionConfig {
        self.on_disk_payload = on_disk;
        self
    }

    /// With `indexing_threshold_kb` instead of the default.
    pub fn indexing_threshold_kb(mut self, kb: usize) -> CollectionConfig {
        self.indexing_threshold_kb = kb;
        self
    }

    /// Adds the space `name`.
    pub fn vector(mut self, name: &str, params: VectorParams) -> CollectionConfig {
        self.vectors.insert(name.to_string(), params);
        self
    }

    /// Adds the sparse space `name`.
    pub fn sparse_vector(mut self, name: &str, params: SparseVectorParams) -> CollectionConfig {
        self.sparse_vectors.insert(name.to_string(), params);
        self
    }

    /// Adds the multivector space `name`.
    pub fn multivector(mut self, name: &str, params: MultiVectorParams) -> CollectionConfig {
        self.multivectors.insert(name.to_string(), params);
        self
    }

    /// Every space name of every kind, sorted.
    pub fn space_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.vectors.keys().chain(self.sparse_vectors.keys()).cloned().collect();
        names.extend(self.multivectors.keys().cloned());
        names.sort();
        names
    }

    /// Can a live collection configured as `self` become `new`
    /// ([`crate::Collection::reconfigure`])? Spaces may be added and removed, and a
    /// kept space may change its graph settings, quantization and (sparse) modifier;
    /// what its stored vectors mean — size, distance, comparator — may not change,
    /// nor may a name change kind.
    pub(crate) fn check_change(&self, new: &CollectionConfig) -> Result<(), Error> {
        new.validate()?;
        let bad = |why: String| Err(Error::InvalidConfig { why });
        for (name, old) in &self.vectors {
            if let Some(p) = new.vectors.get(name)
                && (p.size, p.distance) != (old.size, old.distance)
            {
                return bad(format!(
                    "space `{name}`: size and distance cannot change ({} {:?} → {} {:?}); add a new space instead",
                    old.size, old.distance, p.size, p.distance
                ));
            }
            if let Some(p) = new.vectors.get(name)
                && p.datatype != old.datatype
            {
                return bad(format!(
                    "space `{name}`: datatype cannot change ({} → {}); add a new space instead",
                    old.datatype, p.datatype
                ));
            }
        }
        for (name, old) in &self.multivectors {
            if let Some(p) = new.multivectors.get(name)
                && p != old
            {
                return bad(format!(
                    "multivector space `{name}`: size, distance and comparator cannot change"
                ));
            }
        }
        let kind = |c: &CollectionConfig, n: &str| {
            if c.vectors.contains_key(n) {
                "dense"
            } else if c.sparse_vectors.contains_key(n) {
                "sparse"
            } else {
                "multivector"
            }
        };
        for name in self.space_names() {
            if new.space_names().contains(&name) && kind(self, &name) != kind(new, &name) {
                return bad(format!(
                    "space `{name}` is {}; it cannot become {} (remove it and add it again)",
                    kind(self, &name),
                    kind(new, &name)
                ));
            }
        }
        Ok(())
    }

    pub(crate) fn validate(&self) -> Result<(), Error> {
        let bad = |why: String| Err(Error::InvalidConfig { why });
        if let Some(t) = self.deleted_threshold
            && !(0.0..=1.0).contains(&t)
        {
            return bad(format!("deleted_threshold must be between 0 and 1, got {t}"));
        }
        if let Some(name) = self.sparse_vectors.keys().find(|n| self.vectors.contains_key(*n)) {
            return bad(format!("`{name}` is both a dense and a sparse space; a name can be only one"));
        }
        if let Some(name) = self
            .multivectors
            .keys()
            .find(|n| self.vectors.contains_key(*n) || self.sparse_vectors.contains_key(*n))
        {
            return bad(format!("`{name}` is a multivector space and another kind; a name can be only one"));
        }
        for (name, p) in &self.multivectors {
            if p.size == 0 || p.size > MAX_DIM {
                return bad(format!(
                    "multivector space `{name}`: size must be between 1 and {MAX_DIM}, got {}",
                    p.size
                ));
            }
        }
        for (name, p) in &self.vectors {
            if p.size == 0 || p.size > MAX_DIM {
                return bad(format!("space `{name}`: size must be between 1 and {MAX_DIM}, got {}", p.size));
            }
            let hnsw = braid_hnsw::HnswConfig { m: p.hnsw.m, ef_construct: p.hnsw.ef_construct, seed: 0 };
            if let Err(e) = hnsw.validate() {
                return bad(format!("space `{name}`: {e}"));
            }
            if p.hnsw.payload_m.is_some_and(|m| m > 1024) {
                return bad(format!("space `{name}`: payload_m must be between 0 and 1024"));
            }
            if p.codes_on_disk && p.quantization == Quantization::None {
                return bad(format!("space `{name}`: codes on disk, but the space keeps no codes"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configurations_written_before_quantization_read_as_the_default() {
        let old =
            r#"{"vectors":{"text":{"size":384,"distance":"Cosine","hnsw":{"m":16,"ef_construct":200}}}}"#;
        let config: CollectionConfig = serde_json::from_str(old).unwrap();
        assert_eq!(config.vectors["text"], VectorParams::new(384, Distance::Cosine).hnsw(16, 200));
        assert_eq!(config.vectors["text"].quantization, Quantization::Int8);
        assert_eq!(config.vectors["text"].hnsw.full_scan_threshold_kb, DEFAULT_THRESHOLD_KB);
        assert_eq!(config.indexing_threshold_kb, DEFAULT_THRESHOLD_KB);
        let plain = CollectionConfig::new()
            .vector("text", VectorParams::new(384, Distance::Cosine).quantization(Quantization::None));
        let round: CollectionConfig = serde_json::from_str(&serde_json::to_string(&plain).unwrap()).unwrap();
        assert_eq!(round, plain);
    }
}
