//! The query tree users build: what to search, how to combine, and the limits.

use braid_core::PointId;
use braid_filter::Filter;
use braid_sparse::SparseVector;
use braid_text::Document;

/// Per-request search knobs, as in Qdrant's `SearchParams`.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SearchParams {
    /// Beam width for the HNSW search (default: the collection's choice).
    pub hnsw_ef: Option<usize>,
    /// Score every candidate exactly instead of searching the graph.
    pub exact: bool,
    /// How a space's quantized codes are used (`docs/query.md`, "Quantization at
    /// search time"); none: the defaults.
    pub quantization: Option<QuantizationParams>,
}

impl SearchParams {
    /// `{"exact": true}`: every candidate scored with the original vectors.
    pub const EXACT: SearchParams = SearchParams { hnsw_ef: None, exact: true, quantization: None };

    /// `{"hnsw_ef": ef}`.
    pub const fn ef(ef: usize) -> SearchParams {
        SearchParams { hnsw_ef: Some(ef), exact: false, quantization: None }
    }

    /// These parameters with `quantization` set.
    pub const fn with_quantization(self, quantization: QuantizationParams) -> SearchParams {
        SearchParams { quantization: Some(quantization), ..self }
    }
}

/// Qdrant's search-time `quantization` parameters: whether a search of a quantized
/// space walks by its codes, and how it re-scores what they found. Spaces without
/// codes are always searched with their original vectors.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct QuantizationParams {
    /// Search with the original vectors only, as if the space had no codes.
    pub ignore: bool,
    /// Re-score the candidates the codes found with the original vectors (exact
    /// scores; the default), or answer with the codes' approximate scores (`false`).
    pub rescore: Option<bool>,
    /// Re-score exactly `ceil(limit · oversampling)` candidates, at least 1.0
    /// (default: Braid's pool of `max(4 · limit, 40)`).
    pub oversampling: Option<f64>,
}

/// How to combine the results of several prefetches.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Fusion {
    /// Reciprocal rank fusion with Qdrant's formula; `k` defaults to 2.
    Rrf {
        /// The rank constant, at least 1.
        k: usize,
        /// One weight per prefetch, or none for all 1.
        weights: Option<Vec<f32>>,
    },
    /// Distribution-based score fusion with Qdrant's rules; weights go beyond Qdrant.
    Dbsf {
        /// One weight per prefetch, or none for Qdrant's behaviour.
        weights: Option<Vec<f32>>,
    },
}

impl Fusion {
    /// `{"fusion": "rrf"}`: k = 2, no weights.
    pub fn rrf() -> Fusion {
        Fusion::Rrf { k: braid_fusion::qdrant::DEFAULT_RRF_K, weights: None }
    }

    /// `{"fusion": "dbsf"}`.
    pub fn dbsf() -> Fusion {
        Fusion::Dbsf { weights: None }
    }
}

/// A vector a query names: given, or the stored vector of a point (in the level's
/// `using` space, or where `lookup_from` says).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Example {
    /// A dense vector.
    Vector(Vec<f32>),
    /// The vector of this point. A point of the collection being searched never
    /// comes back in the results of the level that names it, as in Qdrant.
    Id(PointId),
}

impl From<Vec<f32>> for Example {
    fn from(v: Vec<f32>) -> Self {
        Example::Vector(v)
    }
}

impl From<PointId> for Example {
    fn from(id: PointId) -> Self {
        Example::Id(id)
    }
}

impl From<u64> for Example {
    fn from(id: u64) -> Self {
        Example::Id(PointId::Num(id))
    }
}

/// How a recommendation turns its examples into scores (`docs/query.md`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum RecommendStrategy {
    /// Search for `2·mean(positive) − mean(negative)` (or `mean(positive)`): a plain
    /// nearest search, with the metric's scores. Needs a positive example.
    #[default]
    AverageVector,
    /// Each point scored by its best positive and best negative similarity.
    BestScore,
    /// Each point scored by the sum of its positive similarities minus the sum of its
    /// negative ones.
    SumScores,
}

/// Qdrant's `recommend`: positive and negative examples and a strategy.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Recommend {
    /// Examples to move towards.
    pub positive: Vec<Example>,
    /// Examples to move away from.
    pub negative: Vec<Example>,
    /// How to combine them.
    pub strategy: RecommendStrategy,
}

/// A pair of examples splitting the space: points nearer `positive` than `negative`
/// are on the good side.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ContextPair {
    /// The good side.
    pub positive: Example,
    /// The bad side.
    pub negative: Example,
}

impl ContextPair {
    /// A pair.
    pub fn new(positive: impl Into<Example>, negative: impl Into<Example>) -> ContextPair {
        ContextPair { positive: positive.into(), negative: negative.into() }
    }
}

/// Where a level takes the vectors of the points its examples name: another
/// collection (and optionally another of its spaces) instead of the one searched.
/// Points named there are not excluded from the results (they are other points).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LookupFrom {
    /// The collection to read the examples' vectors from.
    pub collection: String,
    /// Its space; default: the level's `using`.
    pub vector: Option<String>,
}

/// Qdrant's maximal marginal relevance: re-pick a nearest search's candidates so that
/// each next point balances its relevance against its similarity to those already
/// picked.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Mmr {
    /// 0 (relevance only) to 1 (diversity only); default 0.5.
    pub diversity: Option<f32>,
    /// How many nearest candidates to pick from; default the request's `limit`, at most
    /// [`crate::MAX_MMR_CANDIDATES`].
    pub candidates_limit: Option<usize>,
}

/// Which way `order_by` sorts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Direction {
    /// Smallest value first (Qdrant's default).
    #[default]
    Asc,
    /// Largest value first.
    Desc,
}

/// A position in an `order_by` walk: the value and the point there.
pub type OrderCursor = (crate::OrderValue, PointId);

/// Qdrant's `order_by`: points in the order of a payload value.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct OrderBy {
    /// The payload key; it needs a range index (integer, float or datetime).
    pub key: String,
    /// Which way.
    pub direction: Direction,
    /// Start at this value (inclusive) instead of the first one. Datetimes are given
    /// in microseconds since the epoch (the server parses RFC 3339 strings).
    pub start_from: Option<f64>,
    /// Braid's cursor for stable paging: start strictly after this (value, point)
    /// position, the last hit of the previous page.
    pub after: Option<OrderCursor>,
}

impl OrderBy {
    /// Ascending by `key` from the first value.
    pub fn asc(key: &str) -> OrderBy {
        OrderBy { key: key.to_string(), direction: Direction::Asc, start_from: None, after: None }
    }

    /// Descending by `key` from the largest value.
    pub fn desc(key: &str) -> OrderBy {
        OrderBy { direction: Direction::Desc, ..OrderBy::asc(key) }
    }

    /// This order, starting strictly after `(value, id)`.
    pub fn after(mut self, value: crate::OrderValue, id: PointId) -> OrderBy {
        self.after = Some((value, id));
        self
    }
}

/// What a level of the tree computes.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Query {
    /// Nearest points to this vector in the level's `using` space. With prefetches
    /// below it, only their candidates are scored (re-ranking).
    Nearest(Vec<f32>),
    /// Nearest points to this sparse vector (dot product over shared indices) in the
    /// level's `using` sparse space, which it must name. With prefetches below it,
    /// only their candidates are scored.
    Sparse(SparseVector),
    /// Nearest to the vector a model makes of this text (BM25: a sparse vector, so
    /// `using` names a sparse space), as [`Query::Sparse`] then.
    Document(Document),
    /// Nearest points to a stored point's vector (`query: <id>` in Qdrant); the point
    /// itself is left out when it belongs to the collection searched.
    Point(PointId),
    /// Recommendation by examples ([`Recommend`]).
    Recommend(Recommend),
    /// Discovery: nearest to `target` among the points on the most positive sides of
    /// the context pairs (score: pairs on the good side minus pairs on the bad side,
    /// plus a sigmoid of the similarity to the target).
    Discover {
        /// What to get near to.
        target: Example,
        /// The pairs that constrain where.
        context: Vec<ContextPair>,
    },
    /// Context search: points scored by how far inside the good side of every pair
    /// they lie (0 when inside all of them); needs a pair.
    Context(Vec<ContextPair>),
    /// Points in the order of a payload value (`order_by`), score 1.0; over
    /// prefetches, their candidates in that order.
    OrderBy(OrderBy),
    /// `nearest` with `mmr`: the `candidates_limit` nearest points to the example, then
    /// picked greedily by maximal marginal relevance; scores stay the nearest scores.
    Mmr {
        /// What to be near to (a vector or a point).
        nearest: Example,
        /// The diversity settings.
        mmr: Mmr,
    },
    /// Re-score the candidates of the prefetches below by a formula of their scores
    /// and payloads (Qdrant's score boosting).
    Formula(crate::Formula),
    /// Nearest by MaxSim to this list of vectors in the level's `using` multivector
    /// space (ColBERT's late interaction); with prefetches below it, their
    /// candidates re-scored (the ColBERT pattern).
    Multi(Vec<Vec<f32>>),
    /// Fuse the results of the prefetches below.
    Fusion(Fusion),
    /// Qdrant's `sample: random`: `limit` points drawn uniformly at random, without
    /// repeats, among those the level's filter passes; score 1.0 each. Takes no
    /// prefetches.
    Sample,
}

/// One level below the root: a query over its own prefetches (or over the space).
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Prefetch {
    /// What this level computes; required.
    pub query: Option<Query>,
    /// The named vector space for `Nearest`.
    pub using: Option<String>,
    /// ANDed with every filter above it, then applied at the leaves.
    pub filter: Option<Filter>,
    /// How many results this level passes up; default 10.
    pub limit: Option<usize>,
    /// Search knobs for this level.
    pub params: Option<SearchParams>,
    /// Drop results worse than this (strict for vectors, `>=` for fusion).
    pub score_threshold: Option<f32>,
    /// Levels below.
    pub prefetch: Vec<Prefetch>,
    /// Where the points this level's query names take their vectors from.
    pub lookup_from: Option<LookupFrom>,
}

impl Prefetch {
    /// Nearest to `vector` in space `using`, keeping `limit`.
    pub fn nearest(using: &str, vector: Vec<f32>, limit: usize) -> Prefetch {
        Prefetch {
            query: Some(Query::Nearest(vector)),
            using: Some(using.to_string()),
            limit: Some(limit),
            ..Prefetch::default()
        }
    }

    /// Nearest to a sparse `vector` in sparse space `using`, keeping `limit`.
    pub fn sparse(using: &str, vector: SparseVector, limit: usize) -> Prefetch {
        Prefetch {
            query: Some(Query::Sparse(vector)),
            using: Some(using.to_string()),
            limit: Some(limit),
            ..Prefetch::default()
        }
    }

    /// Nearest to `document`'s vector in sparse space `using`, keeping `limit`.
    pub fn document(using: &str, document: Document, limit: usize) -> Prefetch {
        Prefetch {
            query: Some(Query::Document(document)),
            using: Some(using.to_string()),
            limit: Some(limit),
            ..Prefetch::default()
        }
    }

    /// Fusion of `prefetch`, keeping `limit`.
    pub fn fusion(fusion: Fusion, prefetch: Vec<Prefetch>, limit: usize) -> Prefetch {
        Prefetch { query: Some(Query::Fusion(fusion)), limit: Some(limit), prefetch, ..Prefetch::default() }
    }

    /// With a filter.
    pub fn filter(mut self, filter: Filter) -> Prefetch {
        self.filter = Some(filter);
        self
    }

    /// With search knobs.
    pub fn params(mut self, params: SearchParams) -> Prefetch {
        self.params = Some(params);
        self
    }
}

/// A whole query: the root level plus what only the root has.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct QueryRequest {
    /// Levels below the root.
    pub prefetch: Vec<Prefetch>,
    /// What the root computes; `None` with no prefetch means "every point in id order"
    /// (score 1.0), as in Qdrant.
    pub query: Option<Query>,
    /// The named vector space for a root `Nearest`.
    pub using: Option<String>,
    /// Qdrant's top-level filter: ANDed into every leaf before its limit.
    pub filter: Option<Filter>,
    /// Braid's post-fusion gate: after the root's ranking, drop points that do not
    /// match (so fewer than `limit` may come back).
    pub post_filter: Option<Filter>,
    /// Search knobs for a root `Nearest`.
    pub params: Option<SearchParams>,
    /// Results to return; default 10.
    pub limit: usize,
    /// Results to skip, at the root only.
    pub offset: usize,
    /// Drop results worse than this.
    pub score_threshold: Option<f32>,
    /// Where the points the root's query names take their vectors from.
    pub lookup_from: Option<LookupFrom>,
}

impl Default for QueryRequest {
    fn default() -> Self {
        QueryRequest {
            prefetch: Vec::new(),
            query: None,
            using: None,
            filter: None,
            post_filter: None,
            params: None,
            limit: 10,
            offset: 0,
            score_threshold: None,
            lookup_from: None,
        }
    }
}

impl QueryRequest {
    /// Nearest to `vector` in `using`.
    pub fn nearest(using: &str, vector: Vec<f32>) -> QueryRequest {
        QueryRequest {
            query: Some(Query::Nearest(vector)),
            using: Some(using.to_string()),
            ..QueryRequest::default()
        }
    }

    /// Nearest to a sparse `vector` in sparse space `using`.
    pub fn sparse(using: &str, vector: SparseVector) -> QueryRequest {
        QueryRequest {
            query: Some(Query::Sparse(vector)),
            using: Some(using.to_string()),
            ..QueryRequest::default()
        }
    }

    /// Nearest to `document`'s vector in sparse space `using`.
    pub fn document(using: &str, document: Document) -> QueryRequest {
        QueryRequest {
            query: Some(Query::Document(document)),
            using: Some(using.to_string()),
            ..QueryRequest::default()
        }
    }

    /// Nearest to point `id`'s vector in `using` (the point itself left out).
    pub fn point(using: &str, id: impl Into<PointId>) -> QueryRequest {
        QueryRequest {
            query: Some(Query::Point(id.into())),
            using: Some(using.to_string()),
            ..QueryRequest::default()
        }
    }

    /// A recommendation in `using`.
    pub fn recommend(using: &str, recommend: Recommend) -> QueryRequest {
        QueryRequest {
            query: Some(Query::Recommend(recommend)),
            using: Some(using.to_string()),
            ..QueryRequest::default()
        }
    }

    /// Take the vectors of the points the query names from `lookup`.
    pub fn lookup_from(mut self, lookup: LookupFrom) -> QueryRequest {
        self.lookup_from = Some(lookup);
        self
    }

    /// `fusion` over `prefetch`.
    pub fn fusion(fusion: Fusion, prefetch: Vec<Prefetch>) -> QueryRequest {
        QueryRequest { query: Some(Query::Fusion(fusion)), prefetch, ..QueryRequest::default() }
    }

    /// Re-rank the candidates of `prefetch` by `vector` in `using`.
    pub fn rescore(using: &str, vector: Vec<f32>, prefetch: Vec<Prefetch>) -> QueryRequest {
        QueryRequest { prefetch, ..QueryRequest::nearest(using, vector) }
    }

    /// How many results.
    pub fn limit(mut self, limit: usize) -> QueryRequest {
        self.limit = limit;
        self
    }

    /// How many to skip.
    pub fn offset(mut self, offset: usize) -> QueryRequest {
        self.offset = offset;
        self
    }

    /// Qdrant's top-level filter.
    pub fn filter(mut self, filter: Filter) -> QueryRequest {
        self.filter = Some(filter);
        self
    }

    /// Braid's post-fusion gate.
    pub fn post_filter(mut self, filter: Filter) -> QueryRequest {
        self.post_filter = Some(filter);
        self
    }

    /// A score threshold.
    pub fn score_threshold(mut self, threshold: f32) -> QueryRequest {
        self.score_threshold = Some(threshold);
        self
    }

    /// Search knobs for a root `Nearest`.
    pub fn params(mut self, params: SearchParams) -> QueryRequest {
        self.params = Some(params);
        self
    }
}

impl Prefetch {
    /// Result rows this level and every level below it ask for (see
    /// [`QueryRequest::rows`]).
    pub fn rows(&self) -> usize {
        let below = self.prefetch.iter().fold(0usize, |n, p| n.saturating_add(p.rows()));
        below.saturating_add(self.limit.unwrap_or(10).min(crate::MAX_LIMIT))
    }
}

impl QueryRequest {
    /// Result rows the whole tree asks for: the root's `offset + limit` plus every
    /// prefetch's `limit` (each counted up to the most it may be, so that an
    /// invalid limit is reported as such). What a query holds in memory grows with
    /// it, so [`crate::run`] and [`crate::run_batch`] refuse a call over
    /// [`crate::MAX_ROWS`] before running anything.
    pub fn rows(&self) -> usize {
        let below = self.prefetch.iter().fold(0usize, |n, p| n.saturating_add(p.rows()));
        below
            .saturating_add(self.offset.min(crate::MAX_OFFSET))
            .saturating_add(self.limit.min(crate::MAX_LIMIT))
    }
}
