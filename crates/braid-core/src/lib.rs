//! The vocabulary shared by every Braid engine crate, and nothing else.
//!
//! This crate holds plain types and three small traits so that the kernels, the HNSW
//! graph, the payload filters and the query planner meet at the same seams without
//! depending on one another: [`OffsetFilter`], [`VectorSource`] and the element types
//! rows are stored in ([`Element`], one per [`Datatype`]). It deliberately contains
//! **no logic** beyond trivial constructors, element conversions and one memory hint
//! ([`memory`]): no distance kernels (see `braid-distance`), no graph, no JSON.
//!
//! ```
//! use braid_core::{Cardinality, OffsetFilter, PointOffset, ScoredOffset};
//!
//! // A filter is anything that can answer "does this offset match?".
//! struct Even;
//! impl OffsetFilter for Even {
//!     fn matches(&self, offset: PointOffset) -> bool {
//!         offset.0 % 2 == 0
//!     }
//!     fn estimate(&self) -> Cardinality {
//!         Cardinality::exact(50)
//!     }
//! }
//! assert!(Even.matches(PointOffset(4)));
//! let hit = ScoredOffset { offset: PointOffset(4), score: 0.9 };
//! assert_eq!(hit.offset.index(), 4);
//! ```
// `unsafe` only where ARCHITECTURE.md says: the module allowed below.
#![deny(unsafe_code)]

use std::fmt;

use serde::{Deserialize, Serialize};

/// The dense, per-segment position of a point: row `n` of a vector store.
///
/// External point ids ([`PointId`]: `u64` or UUID) are a different type; the two
/// never mix in one signature (segments map one to the other).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
pub struct PointOffset(pub u32);

mod element;
#[allow(unsafe_code)]
pub mod memory;
mod parts;

pub use element::{Datatype, Element, f16};
pub use parts::run_parts;

pub use uuid::Uuid;

impl PointOffset {
    /// The offset as a `usize` index into a vector store.
    #[inline]
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

impl fmt::Debug for PointOffset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

impl From<u32> for PointOffset {
    fn from(value: u32) -> Self {
        PointOffset(value)
    }
}

/// The external id of a point, as users give it: an unsigned integer or a UUID.
///
/// Serialised the way Qdrant's JSON API has it: a number, or a UUID string. Ids are
/// mapped to [`PointOffset`]s by the segment that holds the point; the two never mix in
/// one signature.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PointId {
    /// An unsigned integer id.
    Num(u64),
    /// A UUID id; it compares and prints in canonical hyphenated lower-case form.
    Uuid(uuid::Uuid),
}

impl fmt::Debug for PointId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for PointId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PointId::Num(n) => write!(f, "{n}"),
            PointId::Uuid(u) => write!(f, "{}", u.hyphenated()),
        }
    }
}

impl From<u64> for PointId {
    fn from(value: u64) -> Self {
        PointId::Num(value)
    }
}

impl From<uuid::Uuid> for PointId {
    fn from(value: uuid::Uuid) -> Self {
        PointId::Uuid(value)
    }
}

/// A point offset with the score a metric gave it.
///
/// The meaning of `score` (larger or smaller is better) belongs to the [`Metric`]
/// that produced it; `braid-distance` owns the ordering.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScoredOffset {
    /// Which point.
    pub offset: PointOffset,
    /// Its score under the metric of the search that found it.
    pub score: f32,
}

/// The four distance functions a user can configure for a vector space.
///
/// Score conventions follow Qdrant's server (see `docs/distance.md`): `Cosine` and
/// `Dot` are similarities (larger is better), `Euclid` and `Manhattan` are distances
/// (smaller is better).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Metric {
    /// Cosine similarity; vectors are L2-normalised once at insert and scored by dot product.
    Cosine,
    /// Raw dot product.
    Dot,
    /// L2 (Euclidean) distance.
    Euclid,
    /// L1 (Manhattan) distance.
    Manhattan,
}

impl Metric {
    /// Every metric, in declaration order.
    pub const ALL: [Metric; 4] = [Metric::Cosine, Metric::Dot, Metric::Euclid, Metric::Manhattan];

    /// `true` when a larger score is better (similarities), `false` for distances.
    #[inline]
    pub fn higher_is_better(self) -> bool {
        matches!(self, Metric::Cosine | Metric::Dot)
    }
}

/// How many points a filter is expected to let through.
///
/// Invariant: `min <= expected <= max`. Callers (the query planner) use it to choose
/// between a filtered graph traversal and an exact scan of the matching set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cardinality {
    /// A lower bound on the number of matching points.
    pub min: usize,
    /// The best guess.
    pub expected: usize,
    /// An upper bound on the number of matching points.
    pub max: usize,
}

impl Cardinality {
    /// An estimate that is known exactly.
    pub fn exact(n: usize) -> Self {
        Cardinality { min: n, expected: n, max: n }
    }

    /// An estimate with bounds; `expected` is clamped into `[min, max]`.
    pub fn new(min: usize, expected: usize, max: usize) -> Self {
        let max = max.max(min);
        Cardinality { min, expected: expected.clamp(min, max), max }
    }
}

/// A predicate over point offsets, consulted by graph traversal and exact scans.
///
/// `braid-filter` implements it with a roaring bitmap or a per-point payload check;
/// tests implement it with a closure through [`FnFilter`]. The graph never sees JSON.
pub trait OffsetFilter: Sync {
    /// Does the point at `offset` pass the filter?
    fn matches(&self, offset: PointOffset) -> bool;
    /// How many points are expected to pass.
    fn estimate(&self) -> Cardinality;
    /// Calls `f` with every matching offset, in ascending order, and returns `true` —
    /// when the filter can list its matches without testing every point (a bitmap).
    /// The default lists nothing and returns `false`; callers then test each point.
    fn for_each_match(&self, f: &mut dyn FnMut(PointOffset)) -> bool {
        let _ = f;
        false
    }
    /// The key of a graph's link group whose links join this filter's matches: links
    /// among points that share a payload value, for a filter that is a match on that
    /// value's field (`braid-hnsw`'s `Hnsw::add_link_group`). `None` by default.
    fn link_group(&self) -> Option<u64> {
        None
    }
}

/// Adapts a closure into an [`OffsetFilter`] with a caller-given estimate.
pub struct FnFilter<F> {
    predicate: F,
    estimate: Cardinality,
}

impl<F: Fn(PointOffset) -> bool + Sync> FnFilter<F> {
    /// Wraps `predicate`, reporting `estimate` to planners.
    pub fn new(predicate: F, estimate: Cardinality) -> Self {
        FnFilter { predicate, estimate }
    }
}

impl<F> fmt::Debug for FnFilter<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FnFilter").field("estimate", &self.estimate).finish_non_exhaustive()
    }
}

impl<F: Fn(PointOffset) -> bool + Sync> OffsetFilter for FnFilter<F> {
    fn matches(&self, offset: PointOffset) -> bool {
        (self.predicate)(offset)
    }
    fn estimate(&self) -> Cardinality {
        self.estimate
    }
}

/// Read access to dense vectors addressed by [`PointOffset`].
///
/// The seam between the graph and storage: the HNSW graph and exact search read
/// vectors through it, whether they live in RAM or in a memory-mapped segment.
pub trait VectorSource: Sync {
    /// The type rows hold their components in (`f32` unless the space stores another
    /// [`Datatype`]).
    type Elem: Element;
    /// The dimension of every vector.
    fn dim(&self) -> usize;
    /// How many offsets are addressable (`0..len`).
    fn len(&self) -> usize;
    /// `true` when there are no vectors.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The vector at `offset`. Callers pass only offsets below [`VectorSource::len`].
    fn vector(&self, offset: PointOffset) -> &[Self::Elem];
}

/// A row-major block of vectors held in one `Vec<f32>`: the simplest [`VectorSource`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DenseVectors {
    dim: usize,
    data: Vec<f32>,
}

impl DenseVectors {
    /// An empty block for vectors of `dim` components.
    pub fn new(dim: usize) -> Self {
        DenseVectors { dim, data: Vec::new() }
    }

    /// Wraps `data`, a row-major block of `data.len() / dim` vectors.
    ///
    /// Returns `None` when `dim` is zero or does not divide `data.len()`.
    pub fn from_flat(dim: usize, data: Vec<f32>) -> Option<Self> {
        (dim > 0 && data.len().is_multiple_of(dim)).then_some(DenseVectors { dim, data })
    }

    /// Appends one vector and returns its offset.
    ///
    /// Returns `None` when `vector.len() != dim` or the block already holds `u32::MAX` rows.
    pub fn push(&mut self, vector: &[f32]) -> Option<PointOffset> {
        if vector.len() != self.dim || self.len() >= u32::MAX as usize {
            return None;
        }
        let offset = PointOffset(self.len() as u32);
        self.data.extend_from_slice(vector);
        Some(offset)
    }

    /// The whole row-major block.
    pub fn as_flat(&self) -> &[f32] {
        &self.data
    }
}

impl VectorSource for DenseVectors {
    type Elem = f32;
    fn dim(&self) -> usize {
        self.dim
    }
    fn len(&self) -> usize {
        self.data.len().checked_div(self.dim).unwrap_or(0)
    }
    fn vector(&self, offset: PointOffset) -> &[f32] {
        let start = offset.index() * self.dim;
        &self.data[start..start + self.dim]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cardinality_new_keeps_the_invariant() {
        let c = Cardinality::new(5, 1, 3);
        assert_eq!((c.min, c.expected, c.max), (5, 5, 5));
        let c = Cardinality::new(1, 9, 4);
        assert_eq!((c.min, c.expected, c.max), (1, 4, 4));
    }

    #[test]
    fn dense_vectors_address_rows() {
        let mut v = DenseVectors::new(2);
        assert_eq!(v.push(&[1.0, 2.0]), Some(PointOffset(0)));
        assert_eq!(v.push(&[3.0, 4.0]), Some(PointOffset(1)));
        assert_eq!(v.push(&[3.0]), None);
        assert_eq!(v.len(), 2);
        assert_eq!(v.vector(PointOffset(1)), &[3.0, 4.0]);
        assert!(DenseVectors::from_flat(3, vec![0.0; 4]).is_none());
        assert!(DenseVectors::from_flat(0, vec![]).is_none());
    }

    #[test]
    fn metric_direction() {
        assert!(Metric::Cosine.higher_is_better());
        assert!(Metric::Dot.higher_is_better());
        assert!(!Metric::Euclid.higher_is_better());
        assert!(!Metric::Manhattan.higher_is_better());
    }
}

/// Which way a search was answered, and why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SearchPath {
    /// Beam search through the graph, checking the filter on the way.
    Graph,
    /// Score every matching point, the planner's choice for selective filters. A
    /// collection that keeps one-byte codes ranks by them and re-scores the best with
    /// the original vectors (`Hnsw::search_scan_coded` in `braid-hnsw`); without codes this is
    /// [`SearchPath::Exact`].
    Scan,
    /// Score every matching point with the original vectors: the exact answer, as a
    /// request with `exact: true` asks.
    Exact,
}

/// The choice `Hnsw::choose_path` (`braid-hnsw`) made, with the numbers behind it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PathChoice {
    /// The path taken.
    pub path: SearchPath,
    /// Estimated distance computations for an exact scan of the matching points.
    pub exact_cost: f64,
    /// Estimated distance computations for a filtered graph search.
    pub graph_cost: f64,
    /// Why the path was taken when a rule, not the costs, decided (e.g. a size
    /// threshold below which answers are exact).
    pub rule: Option<&'static str>,
}

impl std::fmt::Display for PathChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:?}: scan ≈ {:.0} points scored, filtered graph ≈ {:.0}",
            self.path, self.exact_cost, self.graph_cost
        )?;
        match self.rule {
            Some(rule) => write!(f, " ({rule})"),
            None => Ok(()),
        }
    }
}
