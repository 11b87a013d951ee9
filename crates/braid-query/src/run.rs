//! Running a plan bottom-up, explaining it, and running batches on several threads.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use braid_core::PointId;
use braid_core::{Cardinality, PathChoice, SearchPath};

use crate::plan::{Node, Probe, plan};
use crate::tree::{Fusion, QueryRequest};
use crate::{Hit, QueryError, Searchable};

/// The most requests one batch may hold.
pub const MAX_BATCH: usize = 1_000;

/// The most result rows one call (a query, or a whole batch) may ask for, summed over
/// every level's limit ([`QueryRequest::rows`]). A bound on what one request can make
/// the process hold: without it, 1,000 searches of `limit` 100,000 in a 52 KB body
/// ask for 10⁸ rows.
pub const MAX_ROWS: usize = 2_000_000;

fn check_rows(rows: usize) -> Result<(), QueryError> {
    if rows > MAX_ROWS { Err(QueryError::TooManyRows { rows, max: MAX_ROWS }) } else { Ok(()) }
}

/// When a running query gives up: at a deadline (Qdrant's `timeout`), when another
/// thread raises a flag (a server's client went away), or never. Checked before every
/// leaf search and fusion, so a query stops within one leaf's time of either.
#[derive(Clone, Debug, Default)]
pub struct Stop {
    deadline: Option<Instant>,
    flag: Option<Arc<AtomicBool>>,
}

impl Stop {
    /// Never gives up.
    pub fn never() -> Stop {
        Stop::default()
    }

    /// Gives up `timeout` from now (or at an earlier deadline already set).
    pub fn after(mut self, timeout: Duration) -> Stop {
        let at = Instant::now().checked_add(timeout);
        self.deadline = match (self.deadline, at) {
            (Some(d), Some(a)) => Some(d.min(a)),
            (d, a) => d.or(a),
        };
        self
    }

    /// Gives up once `flag` is set.
    pub fn on(mut self, flag: Arc<AtomicBool>) -> Stop {
        self.flag = Some(flag);
        self
    }

    /// The time left before the deadline (zero once past it); `None` without one.
    pub fn remaining(&self) -> Option<Duration> {
        self.deadline.map(|d| d.saturating_duration_since(Instant::now()))
    }

    /// `Err` once the query should give up.
    pub fn check(&self) -> Result<(), QueryError> {
        if self.flag.as_ref().is_some_and(|f| f.load(Ordering::Acquire)) {
            return Err(QueryError::Cancelled);
        }
        if self.deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(QueryError::Timeout);
        }
        Ok(())
    }
}

/// Runs `request` against `segment`: validate, plan, search, fuse, re-rank, cut.
pub fn run<S: Searchable + ?Sized>(segment: &S, request: &QueryRequest) -> Result<Vec<Hit>, QueryError> {
    run_until(segment, request, &Stop::never())
}

/// [`run`], giving up when `stop` says so ([`QueryError::Timeout`] or
/// [`QueryError::Cancelled`]).
pub fn run_until<S: Searchable + ?Sized>(
    segment: &S,
    request: &QueryRequest,
    stop: &Stop,
) -> Result<Vec<Hit>, QueryError> {
    check_rows(request.rows())?;
    let plan = plan(segment, request)?;
    let mut hits = execute(segment, &plan.node, stop)?;
    if let Some(gate) = &plan.post_filter {
        let ids: Vec<PointId> = hits.iter().map(|h| h.id).collect();
        let keep: HashSet<PointId> = segment.matching(gate, &ids).into_iter().collect();
        hits.retain(|h| keep.contains(&h.id));
    }
    Ok(hits.into_iter().skip(plan.offset).take(plan.limit).collect())
}

/// Runs every request on rayon's pool (as many threads as the machine has); one result
/// per request, in order. The batch itself is refused when empty or too large.
pub fn run_batch<S: Searchable + ?Sized>(
    segment: &S,
    requests: &[QueryRequest],
) -> Result<Vec<Result<Vec<Hit>, QueryError>>, QueryError> {
    run_batch_until(segment, requests, &Stop::never())
}

/// [`run_batch`], every request giving up when `stop` says so.
pub fn run_batch_until<S: Searchable + ?Sized>(
    segment: &S,
    requests: &[QueryRequest],
    stop: &Stop,
) -> Result<Vec<Result<Vec<Hit>, QueryError>>, QueryError> {
    // An empty batch has an empty answer, as in Qdrant.
    if requests.len() > MAX_BATCH {
        return Err(QueryError::BatchTooLarge { max: MAX_BATCH, got: requests.len() });
    }
    check_rows(requests.iter().fold(0usize, |n, r| n.saturating_add(r.rows())))?;
    use rayon::prelude::*;
    Ok(requests.par_iter().map(|r| guarded(|| run_until(segment, r, stop))).collect())
}

/// Runs `f` on whichever thread the pool chose; a panic becomes a typed error for that
/// request alone instead of unwinding through the pool.
fn guarded<T>(f: impl FnOnce() -> Result<T, QueryError>) -> Result<T, QueryError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or(Err(QueryError::Panicked))
}

fn ef_for<S: Searchable + ?Sized>(
    segment: &S,
    space: &str,
    limit: usize,
    params: &crate::SearchParams,
) -> usize {
    params.hnsw_ef.unwrap_or_else(|| segment.default_ef(space)).max(limit)
}

/// The `limit` nearest points to a dense `vector` in `space` among those `filter`
/// passes, by the path the planner chooses and the request's parameters.
fn dense_nearest<S: Searchable + ?Sized>(
    segment: &S,
    space: &str,
    filter: Option<&braid_filter::Filter>,
    vector: &[f32],
    limit: usize,
    params: &crate::SearchParams,
) -> Result<Vec<Hit>, QueryError> {
    let ef = ef_for(segment, space, limit, params);
    let leaf = segment.leaf(space, filter)?;
    let (path, _) = leaf_path(segment, &leaf, ef, params.exact);
    segment.nearest(&leaf, vector, limit, ef, path, params.quantization.unwrap_or_default())
}

/// The path a planned leaf takes, and why.
fn leaf_path<S: Searchable + ?Sized>(
    segment: &S,
    leaf: &S::Leaf<'_>,
    ef: usize,
    exact: bool,
) -> (SearchPath, Option<PathChoice>) {
    if exact {
        return (SearchPath::Exact, None);
    }
    let choice = segment.choose(leaf, ef);
    (choice.path, Some(choice))
}

fn keep_passing(metric: braid_core::Metric, hits: &mut Vec<Hit>, threshold: Option<f32>) {
    if let Some(t) = threshold {
        // Vector thresholds are strict, in the metric's direction.
        hits.retain(|h| braid_distance::passes_threshold(metric, h.score, t));
    }
}

/// Runs sibling prefetches at the same time on rayon's pool, whose threads persist: a
/// fused query then takes about as long as its slowest prefetch, not their sum, without
/// starting threads per query (which cost more than a coded search of 100k points). A
/// panic in one prefetch is a typed error, as for batches.
fn execute_all<S: Searchable + ?Sized>(
    segment: &S,
    children: &[Node],
    stop: &Stop,
) -> Result<Vec<Vec<Hit>>, QueryError> {
    use rayon::prelude::*;
    if children.len() <= 1 {
        return children.iter().map(|c| execute(segment, c, stop)).collect();
    }
    let results: Vec<Result<Vec<Hit>, QueryError>> =
        children.par_iter().map(|c| guarded(|| execute(segment, c, stop))).collect();
    results.into_iter().collect()
}

fn execute<S: Searchable + ?Sized>(segment: &S, node: &Node, stop: &Stop) -> Result<Vec<Hit>, QueryError> {
    stop.check()?;
    match node {
        Node::Nearest { space, metric, probe, filter, limit, params, threshold } => {
            let mut hits = match probe {
                Probe::Dense(vector) => {
                    dense_nearest(segment, space, filter.as_ref(), vector, *limit, params)?
                }
                Probe::Sparse(vector) => segment.sparse_nearest(space, filter.as_ref(), vector, *limit)?,
                Probe::Multi(query) => segment.multi_nearest(space, filter.as_ref(), query, *limit)?,
                Probe::Scored(scorer) => {
                    let ef = ef_for(segment, space, *limit, params);
                    let leaf = segment.leaf(space, filter.as_ref())?;
                    let (path, _) = leaf_path(segment, &leaf, ef, params.exact);
                    let mut hits = segment.nearest_by(&leaf, scorer, *limit, ef, path)?;
                    hits.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.id.cmp(&b.id)));
                    hits
                }
            };
            keep_passing(*metric, &mut hits, *threshold);
            hits.truncate(*limit);
            Ok(hits)
        }
        Node::Rescore { space, metric, probe, children, limit, threshold } => {
            let mut seen = HashSet::new();
            let mut candidates = Vec::new();
            for hits in execute_all(segment, children, stop)? {
                for hit in hits {
                    if seen.insert(hit.id) {
                        candidates.push(hit.id);
                    }
                }
            }
            let mut hits = match probe {
                Probe::Dense(vector) => segment.score(space, vector, &candidates)?,
                Probe::Sparse(vector) => segment.sparse_score(space, vector, &candidates)?,
                Probe::Scored(scorer) => segment.score_by(space, scorer, &candidates)?,
                Probe::Multi(query) => segment.multi_score(space, query, &candidates)?,
            };
            // Best first; equal scores by id, so the order never depends on the segment.
            hits.sort_by(|a, b| braid_distance::compare(*metric, b.score, a.score).then(a.id.cmp(&b.id)));
            keep_passing(*metric, &mut hits, *threshold);
            hits.truncate(*limit);
            Ok(hits)
        }
        Node::Fuse { fusion, children, limit, threshold } => {
            let lists: Vec<Vec<(PointId, f32)>> = execute_all(segment, children, stop)?
                .into_iter()
                .map(|hits| hits.into_iter().map(|h| (h.id, h.score)).collect())
                .collect();
            let fused = match fusion {
                Fusion::Rrf { k, weights } => braid_fusion::qdrant::rrf(&lists, *k, weights.as_deref())?,
                Fusion::Dbsf { weights } => braid_fusion::qdrant::dbsf(&lists, weights.as_deref())?,
            };
            // Fusion thresholds are inclusive.
            Ok(fused
                .into_iter()
                .take_while(|f| threshold.is_none_or(|t| f.score >= t))
                .take(*limit)
                .map(|f| Hit::new(f.id, f.score))
                .collect())
        }
        Node::Scroll { filter, limit } => {
            Ok(segment.scroll(filter.as_ref(), *limit).into_iter().map(|id| Hit::new(id, 1.0)).collect())
        }
        Node::Sample { filter, limit } => {
            Ok(segment.sample(filter.as_ref(), *limit).into_iter().map(|id| Hit::new(id, 1.0)).collect())
        }
        Node::Formula { formula, children, limit, threshold } => {
            let lists = execute_all(segment, children, stop)?;
            let mut hits = crate::formula::rescore(segment, formula, &lists)?;
            // Higher is better; the threshold is strict, as for similarities.
            if let Some(t) = threshold {
                hits.retain(|h| h.score > *t);
            }
            hits.truncate(*limit);
            Ok(hits)
        }
        Node::Mmr {
            space,
            metric,
            vector,
            filter,
            children,
            candidates,
            lambda,
            params,
            threshold,
            limit,
        } => {
            let mut pool = if children.is_empty() {
                dense_nearest(segment, space, filter.as_ref(), vector, *candidates, params)?
            } else {
                let mut seen = HashSet::new();
                let ids: Vec<PointId> = execute_all(segment, children, stop)?
                    .into_iter()
                    .flatten()
                    .map(|h| h.id)
                    .filter(|id| seen.insert(*id))
                    .collect();
                let mut hits = segment.score(space, vector, &ids)?;
                hits.sort_by(|a, b| braid_distance::compare(*metric, b.score, a.score).then(a.id.cmp(&b.id)));
                hits
            };
            keep_passing(*metric, &mut pool, *threshold);
            pool.truncate(*candidates);
            stop.check()?;
            crate::mmr::pick(segment, space, *metric, vector, pool, *lambda, *limit)
        }
        Node::Order { order, filter, children, limit } => {
            if children.is_empty() {
                return segment.ordered(filter.as_ref(), None, order, *limit);
            }
            let mut seen = HashSet::new();
            let candidates: Vec<PointId> = execute_all(segment, children, stop)?
                .into_iter()
                .flatten()
                .map(|h| h.id)
                .filter(|id| seen.insert(*id))
                .collect();
            // The candidates passed their own filters below; this level's filter is
            // already part of theirs.
            segment.ordered(None, Some(&candidates), order, *limit)
        }
    }
}

/// The plan of a request with the choice made at each leaf, as an indented tree.
#[derive(Clone, Debug, PartialEq)]
pub struct Explain {
    /// One line per plan node, depth-first, indented two spaces per level.
    pub lines: Vec<String>,
}

impl fmt::Display for Explain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for line in &self.lines {
            writeln!(f, "{line}")?;
        }
        Ok(())
    }
}

/// Validates and plans `request` without running any dense search, and says what each
/// level would do: at each dense leaf, graph or exact scan and the estimate behind the
/// choice; at each sparse leaf, the lists or a scan, with what MaxScore touched (the
/// segment may run a sparse leaf to count it: microseconds).
pub fn explain<S: Searchable + ?Sized>(segment: &S, request: &QueryRequest) -> Result<Explain, QueryError> {
    check_rows(request.rows())?;
    let plan = plan(segment, request)?;
    let mut lines = vec![format!(
        "root: return {} after skipping {}{}",
        plan.limit,
        plan.offset,
        if plan.post_filter.is_some() { ", then drop points failing the post-filter" } else { "" }
    )];
    describe(segment, &plan.node, 1, &mut lines)?;
    Ok(Explain { lines })
}

fn describe<S: Searchable + ?Sized>(
    segment: &S,
    node: &Node,
    depth: usize,
    lines: &mut Vec<String>,
) -> Result<(), QueryError> {
    let pad = "  ".repeat(depth);
    match node {
        Node::Nearest { space, probe: Probe::Sparse(vector), filter, limit, threshold, .. } => {
            lines.push(format!(
                "{pad}sparse nearest in `{space}`, keep {limit}{}{}: {}",
                if filter.is_some() { ", filtered" } else { "" },
                threshold.map_or(String::new(), |t| format!(", score threshold {t}")),
                segment.sparse_path(space, filter.as_ref(), vector, *limit),
            ));
        }
        Node::Nearest { space, probe: Probe::Multi(query), filter, limit, threshold, .. } => {
            lines.push(format!(
                "{pad}MaxSim of {} query vectors in multivector space `{space}`, keep {limit}{}{}: an exact scan",
                query.len(),
                if filter.is_some() { ", filtered" } else { "" },
                threshold.map_or(String::new(), |t| format!(", score threshold {t}")),
            ));
        }
        Node::Nearest { space, probe, filter, limit, params, threshold, .. } => {
            let what = match probe {
                Probe::Scored(scorer) => format!("{} by {} examples", scorer.name(), scorer.examples()),
                _ => "nearest".to_string(),
            };
            let ef = ef_for(segment, space, *limit, params);
            let leaf = segment.leaf(space, filter.as_ref())?;
            let estimate: Cardinality = segment.estimate(&leaf);
            let why = match leaf_path(segment, &leaf, ef, params.exact) {
                (_, Some(choice)) => choice.to_string(),
                (_, None) => "Exact: requested by params.exact".to_string(),
            };
            lines.push(format!(
                "{pad}{what} in `{space}`, keep {limit}{}{}: {} points pass (estimate {}..{}); {why}",
                if filter.is_some() { ", filtered" } else { "" },
                threshold.map_or(String::new(), |t| format!(", score threshold {t}")),
                estimate.expected,
                estimate.min,
                estimate.max,
            ));
        }
        Node::Rescore { space, children, limit, .. } => {
            lines.push(format!("{pad}re-score the candidates below by `{space}` exactly, keep {limit}"));
            for c in children {
                describe(segment, c, depth + 1, lines)?;
            }
        }
        Node::Fuse { fusion, children, limit, threshold } => {
            let name = match fusion {
                Fusion::Rrf { k, weights } => format!(
                    "RRF (k = {k}{})",
                    weights.as_ref().map_or(String::new(), |w| format!(", weights {w:?}"))
                ),
                Fusion::Dbsf { weights } => {
                    format!("DBSF{}", weights.as_ref().map_or(String::new(), |w| format!(" (weights {w:?})")))
                }
            };
            lines.push(format!(
                "{pad}fuse {} lists by {name}, keep {limit}{}",
                children.len(),
                threshold.map_or(String::new(), |t| format!(", score ≥ {t}"))
            ));
            for c in children {
                describe(segment, c, depth + 1, lines)?;
            }
        }
        Node::Scroll { filter, limit } => {
            lines.push(format!(
                "{pad}scroll {limit} points in id order{}",
                if filter.is_some() { ", filtered" } else { "" }
            ));
        }
        Node::Formula { children, limit, .. } => {
            lines.push(format!("{pad}re-score the candidates below by a formula, keep {limit}"));
            for c in children {
                describe(segment, c, depth + 1, lines)?;
            }
        }
        Node::Mmr { space, filter, children, candidates, lambda, limit, .. } => {
            lines.push(format!(
                "{pad}MMR in `{space}`: the {candidates} nearest{}, {limit} picked with diversity {}",
                if children.is_empty() {
                    if filter.is_some() { " (filtered)" } else { "" }
                } else {
                    " among the candidates below"
                },
                1.0 - lambda
            ));
            for c in children {
                describe(segment, c, depth + 1, lines)?;
            }
        }
        Node::Order { order, filter, children, limit } => {
            lines.push(format!(
                "{pad}order by `{}` {}, keep {limit}{}{}",
                order.key,
                if order.direction == crate::Direction::Desc { "descending" } else { "ascending" },
                if filter.is_some() && children.is_empty() { ", filtered" } else { "" },
                if children.is_empty() { " (from its range index)" } else { ", over the candidates below" },
            ));
            for c in children {
                describe(segment, c, depth + 1, lines)?;
            }
        }
        Node::Sample { filter, limit } => {
            lines.push(format!(
                "{pad}sample {limit} points at random{}",
                if filter.is_some() { " among those the filter passes" } else { "" }
            ));
        }
    }
    Ok(())
}
