//! Validation and lowering: a [`QueryRequest`] becomes a tree of [`Node`]s in which every
//! name is resolved, every vector validated and normalised, every limit checked, and
//! the top-level filter merged into every leaf. Nothing runs until this succeeds.

use braid_core::Metric;
use braid_filter::Filter;
use braid_sparse::SparseVector;

use crate::tree::{Fusion, Prefetch, Query, QueryRequest, SearchParams};
use crate::{QueryError, Searchable};

/// The largest `limit` a level may ask for.
pub const MAX_LIMIT: usize = 100_000;
/// The largest root `offset`.
pub const MAX_OFFSET: usize = 1_000_000;
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
fn resolve_space<S: Searchable + ?Sized>(
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

/// The space a vector query searches, the metric its scores follow, and what it
/// scores by.
fn lower_probe<S: Searchable + ?Sized>(
    segment: &S,
    using: Option<&String>,
    query: &Query,
) -> Result<(String, Metric, Probe), QueryError> {
    match query {
        Query::Nearest(vector) => {
            let (space, info) = resolve_space(segment, using)?;
            let vector = braid_distance::prepare(info.metric, info.dim, vector)
                .map_err(|source| QueryError::Vector { space: space.clone(), source })?;
            Ok((space, info.metric, Probe::Dense(vector)))
        }
        // Sparse scores are dot products: larger is better.
        Query::Sparse(vector) => {
            Ok((resolve_sparse(segment, using)?, Metric::Dot, Probe::Sparse(vector.clone())))
        }
        Query::Document(document) => {
            let vector = document.embed_query()?;
            Ok((resolve_sparse(segment, using)?, Metric::Dot, Probe::Sparse(vector)))
        }
        Query::Fusion(_) | Query::Sample => unreachable!("fusion and sampling are lowered on their own"),
    }
}

fn check_params(params: Option<SearchParams>) -> Result<Option<SearchParams>, QueryError> {
    if let Some(ef) = params.and_then(|p| p.hnsw_ef) {
        check_limit("hnsw_ef", ef)?;
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
    check_params(level.params)?;
    let filter = merge(above, level.filter);
    let children = || -> Result<Vec<Node>, QueryError> {
        level.prefetch.iter().map(|p| lower_prefetch(segment, p, filter.as_ref(), depth + 1)).collect()
    };
    match level.query {
        None if !level.prefetch.is_empty() => Err(QueryError::PrefetchWithoutQuery),
        None if is_root => Ok(Node::Scroll { filter, limit: level.limit }),
        None => Err(QueryError::MissingQuery),
        Some(query @ (Query::Nearest(_) | Query::Sparse(_) | Query::Document(_))) => {
            let (space, metric, probe) = lower_probe(segment, level.using, query)?;
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
                    children: children()?,
                    limit: level.limit,
                    threshold: level.threshold,
                })
            }
        }
        Some(Query::Sample) if !level.prefetch.is_empty() => Err(QueryError::SampleWithPrefetch),
        Some(Query::Sample) => Ok(Node::Sample { filter, limit: level.limit }),
        Some(Query::Fusion(fusion)) => {
            if level.prefetch.is_empty() {
                return Err(QueryError::FusionWithoutPrefetch);
            }
            check_fusion(fusion, level.prefetch.len())?;
            Ok(Node::Fuse {
                fusion: fusion.clone(),
                children: children()?,
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
    };
    let node = lower_level(segment, level, None, 0, true)?;
    Ok(Plan { node, post_filter: request.post_filter.clone(), offset: request.offset, limit })
}
