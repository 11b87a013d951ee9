//! The query tree of Braid and the planner that runs it, with the semantics of
//! Qdrant's server (`docs/query.md`).
//!
//! A [`QueryRequest`] is a tree: the root and each [`Prefetch`] either search a named
//! vector space (`Query::Nearest`), re-rank the candidates of the levels below by a
//! vector (`Nearest` with prefetches), or fuse them (`Query::Fusion`). The planner
//! validates the whole tree first (names, dimensions, finite values, limits, fusion
//! weights) and returns a typed [`QueryError`] before anything runs; then it pushes
//! the top-level filter into every leaf, chooses per leaf between the HNSW graph and an
//! exact scan from the filter's cardinality estimate ([`explain`] says which and why),
//! and runs the tree bottom-up over anything that implements [`Searchable`].
//!
//! What it does not do: store points, build indexes, fetch payloads. Those belong to
//! the segment behind [`Searchable`] and to the facade.
//!
//! ```
//! use braid_query::{Fusion, Prefetch, QueryRequest};
//!
//! // Two prefetches of 20, fused by RRF, best 10 returned.
//! let request = QueryRequest::fusion(
//!     Fusion::rrf(),
//!     vec![Prefetch::nearest("text", vec![0.1; 4], 20), Prefetch::nearest("image", vec![0.2; 8], 20)],
//! )
//! .limit(10);
//! assert_eq!(request.prefetch.len(), 2);
//! ```
#![forbid(unsafe_code)]

mod explore;
mod formula;
mod mmr;
mod plan;
mod run;
mod tree;

use braid_core::{Cardinality, Metric, PointId};
pub use braid_core::{PathChoice, SearchPath};
use braid_filter::Filter;
use thiserror::Error;

pub use braid_filter::OrderValue;
pub use braid_sparse::SparseVector;
pub use braid_text::Document;
pub use explore::{Scorer, VectorPair, fast_sigmoid, scaled_fast_sigmoid};
pub use formula::{Decay, Expression, Formula, Variable};
pub use plan::{MAX_DEPTH, MAX_LIMIT, MAX_MMR_CANDIDATES, MAX_MULTI_QUERY, MAX_OFFSET, resolve_space};
pub use run::{Explain, MAX_BATCH, MAX_ROWS, Stop, explain, run, run_batch, run_batch_until, run_until};
pub use tree::{
    ContextPair, Direction, Example, Fusion, LookupFrom, Mmr, OrderBy, OrderCursor, Prefetch,
    QuantizationParams, Query, QueryRequest, Recommend, RecommendStrategy, SearchParams,
};

/// One result: a point and its score at the level that produced it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Hit {
    /// The point.
    pub id: PointId,
    /// Its score: a user score for `Nearest` (`docs/distance.md`), a fused score for
    /// `Fusion`, 1.0 for a scroll, a sample or `order_by`.
    pub score: f32,
    /// The payload value that placed it, for an `order_by` level.
    pub order_value: Option<OrderValue>,
}

impl Hit {
    /// A hit with a score and no order value.
    pub fn new(id: PointId, score: f32) -> Hit {
        Hit { id, score, order_value: None }
    }
}

/// A named vector space as the planner needs to know it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Space {
    /// Vector length.
    pub dim: usize,
    /// Distance.
    pub metric: Metric,
}

/// A sparse vector space as the planner needs to know it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SparseSpace {
    /// Whether query values are weighted by IDF (the segment applies it).
    pub idf: bool,
}

/// What the planner needs from a collection (or one segment of it).
///
/// Vectors passed in are validated and in stored form (normalised under Cosine). A
/// leaf search is planned once ([`Searchable::leaf`]: its filter resolved against the
/// payload indexes, the points that pass estimated), then asked for its estimate and
/// path and searched, so neither a query nor `explain()` plans a filter twice. The
/// seam names only the shared path vocabulary of `braid-core`, not any index crate.
pub trait Searchable: Sync {
    /// A planned leaf search, borrowing the segment and the filter.
    type Leaf<'s>
    where
        Self: 's;
    /// The space called `name`, if there is one.
    fn space(&self, name: &str) -> Option<Space>;
    /// Every space name, sorted.
    fn space_names(&self) -> Vec<String>;
    /// The beam width to use when a request names none.
    fn default_ef(&self, space: &str) -> usize;
    /// Plans a search in `space` over the points that pass `filter`.
    fn leaf<'s>(&'s self, space: &str, filter: Option<&'s Filter>) -> Result<Self::Leaf<'s>, QueryError>;
    /// How many points with a vector in the leaf's space pass its filter.
    fn estimate(&self, leaf: &Self::Leaf<'_>) -> Cardinality;
    /// Graph or scan for the leaf with beam `ef`, and the costs behind the choice.
    fn choose(&self, leaf: &Self::Leaf<'_>, ef: usize) -> PathChoice;
    /// The `limit` nearest points to `vector` in the leaf, best first, using the
    /// space's quantized codes (if it has any) as `quantization` says.
    fn nearest(
        &self,
        leaf: &Self::Leaf<'_>,
        vector: &[f32],
        limit: usize,
        ef: usize,
        path: SearchPath,
        quantization: QuantizationParams,
    ) -> Result<Vec<Hit>, QueryError>;
    /// The scores of `ids` against `vector` in `space`; points without a vector there
    /// (or not present) are left out. Any order.
    fn score(&self, space: &str, vector: &[f32], ids: &[PointId]) -> Result<Vec<Hit>, QueryError>;
    /// The stored vector of point `id` in dense space `space` (in stored form), for
    /// a query that names a point: [`QueryError::PointNotFound`] when there is no such
    /// point, [`QueryError::NoVector`] when it has no vector there.
    fn vector_of(&self, space: &str, id: PointId) -> Result<Vec<f32>, QueryError> {
        let _ = space;
        Err(QueryError::PointNotFound { id })
    }
    /// The `limit` points of the leaf with the highest `scorer` score, best first
    /// (the graph walked by that score, or a scan, as `path` says).
    fn nearest_by(
        &self,
        leaf: &Self::Leaf<'_>,
        scorer: &Scorer,
        limit: usize,
        ef: usize,
        path: SearchPath,
    ) -> Result<Vec<Hit>, QueryError> {
        let _ = (leaf, scorer, limit, ef, path);
        Err(QueryError::SearchFailed { why: "this segment cannot score by examples".into() })
    }
    /// The `scorer` scores of `ids` in `space` (those with a vector there). Any order.
    fn score_by(&self, space: &str, scorer: &Scorer, ids: &[PointId]) -> Result<Vec<Hit>, QueryError> {
        let _ = (space, scorer, ids);
        Err(QueryError::SearchFailed { why: "this segment cannot score by examples".into() })
    }
    /// The multivector space called `name`, if there is one (none by default).
    fn multi_space(&self, name: &str) -> Option<Space> {
        let _ = name;
        None
    }
    /// The `limit` best points by MaxSim to `query` (prepared vectors) in multivector
    /// space `space` among those passing `filter`, best first, equal scores by id: an
    /// exact scan.
    fn multi_nearest(
        &self,
        space: &str,
        filter: Option<&Filter>,
        query: &[Vec<f32>],
        limit: usize,
    ) -> Result<Vec<Hit>, QueryError> {
        let _ = (filter, query, limit);
        Err(QueryError::UnknownVector { name: space.to_string(), available: self.space_names() })
    }
    /// The MaxSim scores of `ids` (those with vectors in `space`). Any order.
    fn multi_score(&self, space: &str, query: &[Vec<f32>], ids: &[PointId]) -> Result<Vec<Hit>, QueryError> {
        let _ = (query, ids);
        Err(QueryError::UnknownVector { name: space.to_string(), available: self.space_names() })
    }
    /// Qdrant's `order_by`: up to `limit` points passing `filter` (and among
    /// `candidates`, when given) in the order of their values at `order.key`, which
    /// needs a range index ([`QueryError::NoRangeIndex`]); a point with several values
    /// comes once per value. Equal values by id, in the same direction. Score 1.0,
    /// with the value in [`Hit::order_value`].
    fn ordered(
        &self,
        filter: Option<&Filter>,
        candidates: Option<&[PointId]>,
        order: &OrderBy,
        limit: usize,
    ) -> Result<Vec<Hit>, QueryError> {
        let _ = (filter, candidates, limit);
        Err(QueryError::NoRangeIndex { key: order.key.clone(), found: None })
    }
    /// The sparse space called `name`, if there is one (none by default).
    fn sparse_space(&self, name: &str) -> Option<SparseSpace> {
        let _ = name;
        None
    }
    /// Every sparse space name, sorted.
    fn sparse_names(&self) -> Vec<String> {
        Vec::new()
    }
    /// The `limit` best points for `vector` in sparse space `space` among those that
    /// pass `filter`, best first (equal scores by id); only points sharing an index
    /// with the query. The segment applies the space's IDF, if it has one.
    fn sparse_nearest(
        &self,
        space: &str,
        filter: Option<&Filter>,
        vector: &braid_sparse::SparseVector,
        limit: usize,
    ) -> Result<Vec<Hit>, QueryError> {
        let _ = (filter, vector, limit);
        Err(QueryError::UnknownVector { name: space.to_string(), available: self.space_names() })
    }
    /// The sparse scores of `ids` (those with a vector in `space` sharing an index
    /// with `vector`). Any order.
    fn sparse_score(
        &self,
        space: &str,
        vector: &braid_sparse::SparseVector,
        ids: &[PointId],
    ) -> Result<Vec<Hit>, QueryError> {
        let _ = (vector, ids);
        Err(QueryError::UnknownVector { name: space.to_string(), available: self.space_names() })
    }
    /// How a sparse leaf keeping `limit` is answered, for `explain()`: the path and
    /// what it touches (a sparse leaf is cheap to run, so the segment may run it to
    /// report what pruning skipped).
    fn sparse_path(
        &self,
        space: &str,
        filter: Option<&Filter>,
        vector: &braid_sparse::SparseVector,
        limit: usize,
    ) -> String {
        let _ = (space, filter, vector, limit);
        String::new()
    }
    /// The payload of point `id`, for formulas (none by default).
    fn payload(&self, id: PointId) -> Option<serde_json::Value> {
        let _ = id;
        None
    }
    /// The subset of `ids` that passes `filter`, in the given order.
    fn matching(&self, filter: &Filter, ids: &[PointId]) -> Vec<PointId>;
    /// The first `limit` point ids in ascending order that pass `filter`.
    fn scroll(&self, filter: Option<&Filter>, limit: usize) -> Vec<PointId>;
    /// `limit` point ids drawn uniformly at random without repeats among those that
    /// pass `filter` (all of them, in random order, when fewer pass).
    fn sample(&self, filter: Option<&Filter>, limit: usize) -> Vec<PointId>;
}

/// Why a query was refused or failed. Refusals happen before anything runs.
#[derive(Clone, Debug, PartialEq, Error)]
#[non_exhaustive]
pub enum QueryError {
    /// `using` names no space of the collection.
    #[error("unknown vector name `{name}`; the collection has {available:?}")]
    UnknownVector {
        /// The name given.
        name: String,
        /// The names there are.
        available: Vec<String>,
    },
    /// A dense query for a sparse space, or the reverse.
    #[error("`{name}` is a {is} space: {hint}")]
    WrongKind {
        /// The space.
        name: String,
        /// `dense` or `sparse`.
        is: &'static str,
        /// What it takes.
        hint: &'static str,
    },
    /// A sparse query or document without `using`: sparse spaces are always named.
    #[error("a sparse vector or document query needs `using`, naming one of the sparse spaces {available:?}")]
    SparseWithoutUsing {
        /// The sparse spaces there are.
        available: Vec<String>,
    },
    /// A document its model refused (unknown model, bad options, too long).
    #[error("document: {0}")]
    Document(#[from] braid_text::TextError),
    /// No `using` on a collection with several named spaces.
    #[error("the collection has several vector spaces {available:?}: say which one with `using`")]
    MissingUsing {
        /// The names there are.
        available: Vec<String>,
    },
    /// The query vector does not fit the space.
    #[error("query vector for `{space}`: {source}")]
    Vector {
        /// The space.
        space: String,
        /// What is wrong with it.
        #[source]
        source: braid_distance::VectorError,
    },
    /// A limit out of range.
    #[error("{what} must be between 1 and {max}, got {got}")]
    Limit {
        /// Which limit.
        what: &'static str,
        /// The largest allowed.
        max: usize,
        /// The value given.
        got: usize,
    },
    /// An offset beyond [`MAX_OFFSET`].
    #[error("offset must be at most {max}, got {got}")]
    Offset {
        /// The largest allowed.
        max: usize,
        /// The value given.
        got: usize,
    },
    /// A NaN or infinite score threshold.
    #[error("score_threshold must be a finite number")]
    BadThreshold,
    /// A search-time `quantization.oversampling` below 1 or not a number.
    #[error("quantization oversampling must be a number of at least 1, got {value}")]
    BadOversampling {
        /// The value given.
        value: f64,
    },
    /// `order_by` on a key without a range index (integer, float or datetime).
    #[error(
        "order_by `{key}` needs a range index (integer, float or datetime) on the key; it has {}",
        found.map_or("none".to_string(), |k| format!("a {k} index"))
    )]
    NoRangeIndex {
        /// The key.
        key: String,
        /// The kind of index it has, if any.
        found: Option<&'static str>,
    },
    /// An `order_by` key that is not a payload key path.
    #[error("order_by: {0}")]
    OrderKey(braid_filter::FilterError),
    /// A formula that cannot be parsed or evaluated (an unknown or non-numeric
    /// variable without a default, a division by zero without `by_zero_default`, a
    /// non-finite result, a bad decay parameter).
    #[error("formula: {0}")]
    Formula(String),
    /// A formula level without prefetches: it re-scores their candidates.
    #[error("cannot apply a formula without prefetches")]
    FormulaWithoutPrefetch,
    /// A multivector query with no vectors or too many.
    #[error("a multivector query for `{space}` holds 1 to {max} vectors, got {got}")]
    MultiQuerySize {
        /// The space.
        space: String,
        /// The most allowed.
        max: usize,
        /// The number given.
        got: usize,
    },
    /// MMR settings out of range.
    #[error("mmr: {0}")]
    BadMmr(String),
    /// An `order_by` `start_from` that is NaN or infinite.
    #[error("order_by start_from must be a finite number")]
    BadStartFrom,
    /// A query names a point that does not exist.
    #[error("no point with id {id} found")]
    PointNotFound {
        /// The point.
        id: PointId,
    },
    /// A query names a point that has no vector in the space it searches.
    #[error("point {id} has no vector in `{space}`")]
    NoVector {
        /// The point.
        id: PointId,
        /// The space.
        space: String,
    },
    /// A recommendation, discovery or context query without the examples it needs.
    #[error("{0}")]
    NoExamples(&'static str),
    /// A level with `lookup_from` whose points could not be looked up (the planner
    /// alone cannot reach another collection: the facade resolves them first).
    #[error("lookup_from `{collection}` was not resolved before planning")]
    LookupUnresolved {
        /// The collection named.
        collection: String,
    },
    /// `sample` with prefetches below it.
    #[error("sample takes no prefetches: it draws points from the collection")]
    SampleWithPrefetch,
    /// A fusion level with no prefetches.
    #[error("cannot apply Fusion without prefetches")]
    FusionWithoutPrefetch,
    /// A level with prefetches but no query.
    #[error("cannot have prefetches without a query")]
    PrefetchWithoutQuery,
    /// A prefetch with neither a query nor prefetches.
    #[error("a prefetch needs a query")]
    MissingQuery,
    /// Fusion parameters the fusion crate refuses.
    #[error(transparent)]
    Fusion(#[from] braid_fusion::FusionError),
    /// Prefetches nested deeper than [`MAX_DEPTH`].
    #[error("prefetches nest deeper than {max} levels")]
    TooDeep {
        /// The limit.
        max: usize,
    },
    /// A batch with too many requests.
    #[error("a batch holds at most {max} requests, got {got}")]
    BatchTooLarge {
        /// The limit.
        max: usize,
        /// The number given.
        got: usize,
    },
    /// A call that asks for more result rows, over all its levels (and all the
    /// requests of a batch), than [`MAX_ROWS`].
    #[error("the request asks for {rows} result rows over all its limits; at most {max} per call")]
    TooManyRows {
        /// Rows asked for.
        rows: usize,
        /// The limit.
        max: usize,
    },
    /// The query ran past its deadline ([`Stop::after`], Qdrant's `timeout`).
    #[error("the query timed out")]
    Timeout,
    /// The query was called off ([`Stop::on`]): its caller no longer wants it.
    #[error("the query was cancelled")]
    Cancelled,
    /// A search panicked (a bug); only its own query fails.
    #[error("the search failed unexpectedly (a panic inside Braid)")]
    Panicked,
    /// The segment failed while searching (a damaged index or a bug, not the
    /// request): what the segment reported.
    #[error("search failed: {why}")]
    SearchFailed {
        /// The segment's own error, as text.
        why: String,
    },
}
