//! Validation and lowering: a [`QueryRequest`] becomes a tree of [`Node`]s in which every
//! name is resolved, every vector validated and normalised, every limit checked, and
//! the top-level filter merged into every leaf. Nothing runs until this succeeds.

use braid_core::Metric;
use braid_filter::Filter;
use braid_sparse::SparseVector;

use braid_core::PointId;

use crate::explore::Scorer;
use crate::tree::{
    ContextPair, Example, Fusion, LookupFrom, OrderBy, Prefetch, Query, QueryRequest, Recommend,
    RecommendStrategy, SearchParams,
};
use crate::{QueryError, Searchable};

/// The largest `limit` a level may ask for.
pub const MAX_LIMIT: usize = 100_000;
/// The largest root `offset`.
pub const MAX_OFFSET: usize = 1_000_000;
/// The most vectors a multivector query may hold.
pub const MAX_MULTI_QUERY: usize = 4_096;
/// The most candidates an MMR query picks from (Qdrant's limit).
pub const MAX_MMR_CANDIDATES: usize = 16_384;
/// How deep prefetches may nest (Qdrant's limit).
pub const MAX_DEPTH: usize = 64;
/// A prefetch's limit when it names none.
pub(crate) const DEFAULT_PREFETCH_LIMIT: usize = 10;

/// What a level scores by: a prepared dense vector, or a sparse one (the segment
/// applies its space's IDF).
#[derive(Clone, Debug)]
pub(crate) enum Probe {
    Dense(Vec<f32>),
    Sparse(SparseVector),
    /// A score of several dense examples (recommend, discover, context).
    Scored(Scorer),
    /// MaxSim to a list of prepared vectors, in a multivector space.
    Multi(Vec<Vec<f32>>),
}

/// A validated plan node.
#[derive(Clone, Debug)]
pub(crate) enum Node {
    /// Search one space.
    Nearest {
        space: String,
        metric: Metric,
        probe: Probe,
        filter: Option<Filter>,
        limit: usize,
        params: SearchParams,
        threshold: Option<f32>,
    },
    /// Score the children's candidates by a vector.
    Rescore {
        space: String,
        metric: Metric,
        probe: Probe,
        children: Vec<Node>,
        limit: usize,
        threshold: Option<f32>,
    },
    /// Fuse the children's rankings.
    Fuse { fusion: Fusion, children: Vec<Node>, limit: usize, threshold: Option<f32> },
    /// Every point in id order (score 1.0): a root with neither query nor prefetch.
    Scroll { filter: Option<Filter>, limit: usize },
    /// `limit` random points passing the filter (score 1.0).
    Sample { filter: Option<Filter>, limit: usize },
    /// The children's candidates re-scored by a formula.
    Formula { formula: crate::Formula, children: Vec<Node>, limit: usize, threshold: Option<f32> },
    /// A nearest search's candidates re-picked by maximal marginal relevance.
    Mmr {
        space: String,
        metric: Metric,
        vector: Vec<f32>,
        filter: Option<Filter>,
        children: Vec<Node>,
        candidates: usize,
        lambda: f32,
        params: SearchParams,
        threshold: Option<f32>,
        limit: usize,
    },
    /// Points (or the children's candidates) in the order of a payload value.
    Order { order: OrderBy, filter: Option<Filter>, children: Vec<Node>, limit: usize },
}

/// The validated root: the node, plus what only the root does afterwards.
#[derive(Clone, Debug)]
pub(crate) struct Plan {
    pub node: Node,
    pub post_filter: Option<Filter>,
    pub offset: usize,
    pub limit: usize,
}

/// The parts of a level the lowering needs; the root and a prefetch share them.
struct Level<'a> {
    query: Option<&'a Query>,
    using: Option<&'a String>,
    filter: Option<&'a Filter>,
    limit: usize,
    params: Option<SearchParams>,
    threshold: Option<f32>,
    prefetch: &'a [Prefetch],
    lookup_from: Option<&'a LookupFrom>,
    /// The level's limit before the root's offset is added: MMR's default pool.
    own_limit: usize,
}

fn merge(above: Option<&Filter>, own: Option<&Filter>) -> Option<Filter> {
    match (above, own) {
        (None, None) => None,
        (Some(f), None) | (None, Some(f)) => Some(f.clone()),
        (Some(a), Some(b)) => Some(a.clone().and(b.clone())),
    }
}

fn check_limit(what: &'static str, got: usize) -> Result<usize, QueryError> {
    if got == 0 || got > MAX_LIMIT { Err(QueryError::Limit { what, max: MAX_LIMIT, got }) } else { Ok(got) }
}

/// Resolves `using` to a space: the named one, or the unnamed `""` one, or the only one.
pub fn resolve_space<S: Searchable + ?Sized>(
    segment: &S,
    using: Option<&String>,
) -> Result<(String, crate::Space), QueryError> {
    let names = segment.space_names();
    let name = match using {
        Some(name) => name.clone(),
        None if segment.space("").is_some() => String::new(),
        None if names.len() == 1 => names[0].clone(),
        None => return Err(QueryError::MissingUsing { available: names }),
    };
    if segment.sparse_space(&name).is_some() {
        return Err(QueryError::WrongKind {
            name,
            is: "sparse",
            hint: "query it with a sparse vector or a document",
        });
    }
    if segment.multi_space(&name).is_some() {
        return Err(QueryError::WrongKind {
            name,
            is: "multivector",
            hint: "query it with a list of vectors",
        });
    }
    match segment.space(&name) {
        Some(space) => Ok((name, space)),
        None => Err(QueryError::UnknownVector { name, available: all_names(segment) }),
    }
}

/// Dense and sparse space names, sorted.
fn all_names<S: Searchable + ?Sized>(segment: &S) -> Vec<String> {
    let mut names = segment.space_names();
    names.extend(segment.sparse_names());
    names.sort();
    names
}

/// Resolves `using` to a sparse space, which a sparse query must name.
fn resolve_sparse<S: Searchable + ?Sized>(segment: &S, using: Option<&String>) -> Result<String, QueryError> {
    let Some(name) = using else {
        return Err(QueryError::SparseWithoutUsing { available: segment.sparse_names() });
    };
    if segment.sparse_space(name).is_some() {
        Ok(name.clone())
    } else if segment.space(name).is_some() {
        Err(QueryError::WrongKind {
            name: name.clone(),
            is: "dense",
            hint: "query it with a dense vector; sparse vectors and documents search sparse spaces",
        })
    } else {
        Err(QueryError::UnknownVector { name: name.clone(), available: all_names(segment) })
    }
}

/// A lowered vector query: the space, the metric its scores follow, what it scores
/// by, and the points of this collection it named (left out of its results).
struct Lowered {
    space: String,
    metric: Metric,
    probe: Probe,
    named: Vec<PointId>,
}

/// Turns examples into prepared vectors of one dense space, noting the points named.
struct Examples<'a, S: ?Sized> {
    segment: &'a S,
    space: &'a str,
    info: crate::Space,
    lookup_from: Option<&'a LookupFrom>,
    named: Vec<PointId>,
}

impl<S: Searchable + ?Sized> Examples<'_, S> {
    fn vector(&mut self, example: &Example) -> Result<Vec<f32>, QueryError> {
        match example {
            Example::Vector(v) => braid_distance::prepare(self.info.metric, self.info.dim, v)
                .map_err(|source| QueryError::Vector { space: self.space.to_string(), source }),
            Example::Id(_) if self.lookup_from.is_some() => Err(QueryError::LookupUnresolved {
                collection: self.lookup_from.map(|l| l.collection.clone()).unwrap_or_default(),
            }),
            Example::Id(id) => {
                self.named.push(*id);
                self.segment.vector_of(self.space, *id)
            }
        }
    }

    fn all(&mut self, examples: &[Example]) -> Result<Vec<Vec<f32>>, QueryError> {
        examples.iter().map(|e| self.vector(e)).collect()
    }

    fn pairs(&mut self, pairs: &[ContextPair]) -> Result<Vec<crate::explore::VectorPair>, QueryError> {
        pairs.iter().map(|p| Ok((self.vector(&p.positive)?, self.vector(&p.negative)?))).collect()
    }
}

/// `2·mean(positive) − mean(negative)`, or `mean(positive)` without negatives.
fn average_vector(positive: &[Vec<f32>], negative: &[Vec<f32>]) -> Vec<f32> {
    let mean = |vs: &[Vec<f32>]| -> Vec<f32> {
        let mut m = vec![0.0f32; vs[0].len()];
        for v in vs {
            for (a, b) in m.iter_mut().zip(v) {
                *a += b;
            }
        }
        let n = vs.len() as f32;
        m.iter_mut().for_each(|a| *a /= n);
        m
    };
    let p = mean(positive);
    if negative.is_empty() {
        return p;
    }
    let n = mean(negative);
    p.iter().zip(&n).map(|(p, n)| p + p - n).collect()
}

/// The space a vector query searches, the metric its scores follow, and what it
/// scores by.
fn lower_probe<S: Searchable + ?Sized>(
    segment: &S,
    using: Option<&String>,
    lookup_from: Option<&LookupFrom>,
    query: &Query,
) -> Result<Lowered, QueryError> {
    let plain = |space, metric, probe| Lowered { space, metric, probe, named: Vec::new() };
    match query {
        Query::Nearest(vector) => {
            let (space, info) = resolve_space(segment, using)?;
            let vector = braid_distance::prepare(info.metric, info.dim, vector)
                .map_err(|source| QueryError::Vector { space: space.clone(), source })?;
            Ok(plain(space, info.metric, Probe::Dense(vector)))
        }
        // Sparse scores are dot products: larger is better.
        Query::Sparse(vector) => {
            Ok(plain(resolve_sparse(segment, using)?, Metric::Dot, Probe::Sparse(vector.clone())))
        }
        Query::Document(document) => {
            let vector = document.embed_query()?;
            Ok(plain(resolve_sparse(segment, using)?, Metric::Dot, Probe::Sparse(vector)))
        }
        Query::Multi(vectors) => {
            let name = match using {
                Some(name) => name.clone(),
                None if segment.multi_space("").is_some() => String::new(),
                None => return Err(QueryError::MissingUsing { available: all_names(segment) }),
            };
            let Some(info) = segment.multi_space(&name) else {
                return Err(if segment.space(&name).is_some() || segment.sparse_space(&name).is_some() {
                    QueryError::WrongKind {
                        name,
                        is: "dense or sparse",
                        hint: "lists of vectors search multivector spaces",
                    }
                } else {
                    QueryError::UnknownVector { name, available: all_names(segment) }
                });
            };
            if vectors.is_empty() || vectors.len() > MAX_MULTI_QUERY {
                return Err(QueryError::MultiQuerySize {
                    space: name,
                    max: MAX_MULTI_QUERY,
                    got: vectors.len(),
                });
            }
            let prepared = vectors
                .iter()
                .map(|v| {
                    braid_distance::prepare(info.metric, info.dim, v)
                        .map_err(|source| QueryError::Vector { space: name.clone(), source })
                })
                .collect::<Result<Vec<_>, _>>()?;
            // MaxSim sums similarities: higher is better whatever the metric.
            Ok(plain(name, Metric::Dot, Probe::Multi(prepared)))
        }
        Query::Point(_) | Query::Recommend(_) | Query::Discover { .. } | Query::Context(_) => {
            let (space, info) = resolve_space(segment, using)?;
            let mut ex = Examples { segment, space: &space, info, lookup_from, named: Vec::new() };
            // Multi-example scores are higher-is-better whatever the metric.
            let (metric, probe) = match query {
                Query::Point(id) => (info.metric, Probe::Dense(ex.vector(&Example::Id(*id))?)),
                Query::Recommend(Recommend { positive, negative, strategy }) => {
                    let (positive, negative) = (ex.all(positive)?, ex.all(negative)?);
                    match strategy {
                        RecommendStrategy::AverageVector => {
                            if positive.is_empty() {
                                return Err(QueryError::NoExamples(
                                    "recommend with the average_vector strategy needs at least one positive example",
                                ));
                            }
                            let v = braid_distance::prepare(
                                info.metric,
                                info.dim,
                                &average_vector(&positive, &negative),
                            )
                            .map_err(|source| QueryError::Vector { space: space.clone(), source })?;
                            (info.metric, Probe::Dense(v))
                        }
                        _ if positive.is_empty() && negative.is_empty() => {
                            return Err(QueryError::NoExamples(
                                "recommend needs at least one positive or negative example",
                            ));
                        }
                        RecommendStrategy::BestScore => {
                            (Metric::Dot, Probe::Scored(Scorer::BestScore { positive, negative }))
                        }
                        RecommendStrategy::SumScores => {
                            (Metric::Dot, Probe::Scored(Scorer::SumScores { positive, negative }))
                        }
                    }
                }
                Query::Discover { target, context } => {
                    let target = ex.vector(target)?;
                    let pairs = ex.pairs(context)?;
                    (Metric::Dot, Probe::Scored(Scorer::Discover { target, pairs }))
                }
                Query::Context(pairs) => {
                    if pairs.is_empty() {
                        return Err(QueryError::NoExamples("context search needs at least one pair"));
                    }
                    (Metric::Dot, Probe::Scored(Scorer::Context { pairs: ex.pairs(pairs)? }))
                }
                _ => unreachable!("matched above"),
            };
            let named = ex.named;
            Ok(Lowered { space, metric, probe, named })
        }
        Query::Fusion(_) | Query::Sample | Query::OrderBy(_) | Query::Mmr { .. } | Query::Formula(_) => {
            unreachable!("fusion, sampling, order_by and MMR are lowered on their own")
        }
    }
}

fn check_params(params: Option<SearchParams>, limit: usize) -> Result<Option<SearchParams>, QueryError> {
    if let Some(ef) = params.and_then(|p| p.hnsw_ef) {
        check_limit("hnsw_ef", ef)?;
    }
    if let Some(o) = params.and_then(|p| p.quantization).and_then(|q| q.oversampling) {
        if !(o.is_finite() && o >= 1.0) {
            return Err(QueryError::BadOversampling { value: o });
        }
        // The oversampled pool is a beam width: bounded like one.
        let pool = (limit as f64 * o).ceil();
        if pool > MAX_LIMIT as f64 {
            return Err(QueryError::Limit {
                what: "limit × oversampling",
                max: MAX_LIMIT,
                got: pool as usize,
            });
        }
    }
    Ok(params)
}

fn lower_level<S: Searchable + ?Sized>(
    segment: &S,
    level: Level<'_>,
    above: Option<&Filter>,
    depth: usize,
    is_root: bool,
) -> Result<Node, QueryError> {
    if depth > MAX_DEPTH {
        return Err(QueryError::TooDeep { max: MAX_DEPTH });
    }
    if level.threshold.is_some_and(|t| !t.is_finite()) {
        return Err(QueryError::BadThreshold);
    }
    check_params(level.params, level.limit)?;
    let mut filter = merge(above, level.filter);
    let children = |filter: &Option<Filter>| -> Result<Vec<Node>, QueryError> {
        level.prefetch.iter().map(|p| lower_prefetch(segment, p, filter.as_ref(), depth + 1)).collect()
    };
    match level.query {
        None if !level.prefetch.is_empty() => Err(QueryError::PrefetchWithoutQuery),
        None if is_root => Ok(Node::Scroll { filter, limit: level.limit }),
        None => Err(QueryError::MissingQuery),
        Some(
            query @ (Query::Nearest(_)
            | Query::Sparse(_)
            | Query::Document(_)
            | Query::Multi(_)
            | Query::Point(_)
            | Query::Recommend(_)
            | Query::Discover { .. }
            | Query::Context(_)),
        ) => {
            let Lowered { space, metric, probe, named } =
                lower_probe(segment, level.using, level.lookup_from, query)?;
            // The points the query named are left out of this level (and so of the
            // candidates below it), as Qdrant does.
            if !named.is_empty() {
                let exclude = Filter::must_not([braid_filter::Condition::has_id(named)]);
                filter = merge(filter.as_ref(), Some(&exclude));
            }
            if level.prefetch.is_empty() {
                Ok(Node::Nearest {
                    space,
                    metric,
                    probe,
                    filter,
                    limit: level.limit,
                    params: level.params.unwrap_or_default(),
                    threshold: level.threshold,
                })
            } else {
                Ok(Node::Rescore {
                    space,
                    metric,
                    probe,
                    children: children(&filter)?,
                    limit: level.limit,
                    threshold: level.threshold,
                })
            }
        }
        Some(Query::Sample) if !level.prefetch.is_empty() => Err(QueryError::SampleWithPrefetch),
        Some(Query::Sample) => Ok(Node::Sample { filter, limit: level.limit }),
        Some(Query::Formula(formula)) => {
            if level.prefetch.is_empty() {
                return Err(QueryError::FormulaWithoutPrefetch);
            }
            Ok(Node::Formula {
                formula: formula.clone(),
                children: children(&filter)?,
                limit: level.limit,
                threshold: level.threshold,
            })
        }
        Some(Query::Mmr { nearest, mmr }) => {
            let diversity = mmr.diversity.unwrap_or(0.5);
            if !(0.0..=1.0).contains(&diversity) {
                return Err(QueryError::BadMmr(format!(
                    "diversity must be between 0 and 1, got {diversity}"
                )));
            }
            let candidates = mmr.candidates_limit.unwrap_or(level.own_limit);
            if candidates == 0 || candidates > MAX_MMR_CANDIDATES {
                return Err(QueryError::BadMmr(format!(
                    "candidates_limit must be between 1 and {MAX_MMR_CANDIDATES}, got {candidates}"
                )));
            }
            let (space, info) = resolve_space(segment, level.using)?;
            let mut ex =
                Examples { segment, space: &space, info, lookup_from: level.lookup_from, named: Vec::new() };
            let vector = ex.vector(nearest)?;
            if !ex.named.is_empty() {
                let exclude = Filter::must_not([braid_filter::Condition::has_id(ex.named)]);
                filter = merge(filter.as_ref(), Some(&exclude));
            }
            let children = children(&filter)?;
            Ok(Node::Mmr {
                space,
                metric: info.metric,
                vector,
                filter,
                children,
                candidates,
                lambda: 1.0 - diversity,
                params: level.params.unwrap_or_default(),
                threshold: level.threshold,
                limit: level.limit,
            })
        }
        Some(Query::OrderBy(order)) => {
            if order.start_from.is_some_and(|s| !s.is_finite()) {
                return Err(QueryError::BadStartFrom);
            }
            let children = children(&filter)?;
            Ok(Node::Order { order: order.clone(), filter, children, limit: level.limit })
        }
        Some(Query::Fusion(fusion)) => {
            if level.prefetch.is_empty() {
                return Err(QueryError::FusionWithoutPrefetch);
            }
            check_fusion(fusion, level.prefetch.len())?;
            Ok(Node::Fuse {
                fusion: fusion.clone(),
                children: children(&filter)?,
                limit: level.limit,
                threshold: level.threshold,
            })
        }
    }
}

/// Refuses fusion parameters before anything runs, with the fusion crate's own checks.
fn check_fusion(fusion: &Fusion, lists: usize) -> Result<(), QueryError> {
    let empty: Vec<Vec<(u8, f32)>> = vec![Vec::new(); lists];
    match fusion {
        Fusion::Rrf { k, weights } => braid_fusion::qdrant::rrf(&empty, *k, weights.as_deref()).map(drop)?,
        Fusion::Dbsf { weights } => braid_fusion::qdrant::dbsf(&empty, weights.as_deref()).map(drop)?,
    }
    Ok(())
}

fn lower_prefetch<S: Searchable + ?Sized>(
    segment: &S,
    p: &Prefetch,
    above: Option<&Filter>,
    depth: usize,
) -> Result<Node, QueryError> {
    let limit = check_limit("prefetch limit", p.limit.unwrap_or(DEFAULT_PREFETCH_LIMIT))?;
    let level = Level {
        query: p.query.as_ref(),
        using: p.using.as_ref(),
        filter: p.filter.as_ref(),
        limit,
        params: p.params,
        threshold: p.score_threshold,
        prefetch: &p.prefetch,
        lookup_from: p.lookup_from.as_ref(),
        own_limit: limit,
    };
    lower_level(segment, level, above, depth, false)
}

/// Validates `request` against `segment` and lowers it to a plan.
pub(crate) fn plan<S: Searchable + ?Sized>(segment: &S, request: &QueryRequest) -> Result<Plan, QueryError> {
    let limit = check_limit("limit", request.limit)?;
    if request.offset > MAX_OFFSET {
        return Err(QueryError::Offset { max: MAX_OFFSET, got: request.offset });
    }
    // The root ranks limit + offset points; the offset is cut at the very end.
    let level = Level {
        query: request.query.as_ref(),
        using: request.using.as_ref(),
        filter: request.filter.as_ref(),
        limit: limit + request.offset,
        params: request.params,
        threshold: request.score_threshold,
        prefetch: &request.prefetch,
        lookup_from: request.lookup_from.as_ref(),
        own_limit: limit,
    };
    let node = lower_level(segment, level, None, 0, true)?;
    Ok(Plan { node, post_filter: request.post_filter.clone(), offset: request.offset, limit })
}
