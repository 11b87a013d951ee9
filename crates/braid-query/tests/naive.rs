//! The planner against a naive evaluator written here from the rules in
//! `docs/query.md`, on random query trees (fusion, re-ranking, nested prefetches,
//! filters at every level, thresholds, offsets, post-filters).

mod common;

use std::collections::HashMap;

use braid_core::{Metric, PointId};
use braid_filter::{Filter, field};
use braid_query::{Fusion, Hit, Prefetch, Query, QueryRequest, run};
use common::{BruteForce, Rng, catalogue};
use proptest::prelude::*;

/// Points ranked in `space` that pass every filter in `filters`.
fn leaf(db: &BruteForce, space: &str, vector: &[f32], filters: &[Filter]) -> Vec<Hit> {
    let all = db.ranked(space, vector, None);
    all.into_iter()
        .filter(|h| {
            let i = db.points.iter().position(|p| p.id == h.id).unwrap();
            filters.iter().all(|f| db.passes(Some(f), i))
        })
        .collect()
}

fn fuse(fusion: &Fusion, lists: &[Vec<Hit>]) -> Vec<Hit> {
    let mut order: Vec<PointId> = Vec::new();
    let mut total: HashMap<PointId, f32> = HashMap::new();
    for (li, list) in lists.iter().enumerate() {
        let contributions: Vec<f32> = match fusion {
            Fusion::Rrf { k, weights } => {
                let w = weights.as_ref().map_or(1.0, |w| w[li]);
                (0..list.len())
                    .map(|p| if w <= 0.0 { 0.0 } else { 1.0 / ((p as f32 + 1.0) / w + *k as f32 - 1.0) })
                    .collect()
            }
            Fusion::Dbsf { weights } => {
                let w = f64::from(weights.as_ref().map_or(1.0, |w| w[li]));
                let n = list.len() as f64;
                let mean = list.iter().map(|h| f64::from(h.score)).sum::<f64>() / n;
                let sd = if list.len() > 1 {
                    (list.iter().map(|h| (f64::from(h.score) - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
                } else {
                    0.0
                };
                list.iter()
                    .map(|h| {
                        let norm = if sd == 0.0 {
                            0.5
                        } else {
                            (f64::from(h.score) - (mean - 3.0 * sd)) / (6.0 * sd)
                        };
                        (w * norm) as f32
                    })
                    .collect()
            }
        };
        for (h, c) in list.iter().zip(contributions) {
            if !total.contains_key(&h.id) {
                order.push(h.id);
            }
            *total.entry(h.id).or_default() += c;
        }
    }
    let mut out: Vec<Hit> = order.into_iter().map(|id| Hit::new(id, total[&id])).collect();
    out.sort_by(|a, b| b.score.total_cmp(&a.score));
    out
}

/// Evaluates one level: `filters` are those of every level above, own included below.
fn level(
    db: &BruteForce,
    query: &Query,
    using: Option<&str>,
    prefetch: &[Prefetch],
    filters: &[Filter],
    limit: usize,
    threshold: Option<f32>,
) -> Vec<Hit> {
    let children: Vec<Vec<Hit>> = prefetch
        .iter()
        .map(|p| {
            let mut f = filters.to_vec();
            f.extend(p.filter.clone());
            level(
                db,
                p.query.as_ref().unwrap(),
                p.using.as_deref(),
                &p.prefetch,
                &f,
                p.limit.unwrap_or(10),
                p.score_threshold,
            )
        })
        .collect();
    let mut hits = match query {
        Query::Nearest(v) => {
            let space = using.unwrap();
            let v = braid_distance::prepare(Metric::Cosine, db.spaces[space].dim, v).unwrap();
            if prefetch.is_empty() {
                leaf(db, space, &v, filters)
            } else {
                let candidates: Vec<PointId> = children.iter().flatten().map(|h| h.id).collect();
                db.ranked(space, &v, None).into_iter().filter(|h| candidates.contains(&h.id)).collect()
            }
        }
        Query::Fusion(f) => fuse(f, &children),
        // Sparse leaves and example queries have their own references
        // (crates/braid/tests/hybrid.rs, explore.rs).
        _ => {
            panic!("this model generates dense trees only")
        }
    };
    if let Some(t) = threshold {
        match query {
            Query::Fusion(_) => hits.retain(|h| h.score >= t),
            _ => hits.retain(|h| h.score > t),
        }
    }
    hits.truncate(limit);
    hits
}

fn naive(db: &BruteForce, r: &QueryRequest) -> Vec<Hit> {
    let filters: Vec<Filter> = r.filter.iter().cloned().collect();
    let mut hits = level(
        db,
        r.query.as_ref().unwrap(),
        r.using.as_deref(),
        &r.prefetch,
        &filters,
        r.limit + r.offset,
        r.score_threshold,
    );
    if let Some(gate) = &r.post_filter {
        hits.retain(|h| {
            let i = db.points.iter().position(|p| p.id == h.id).unwrap();
            db.passes(Some(gate), i)
        });
    }
    hits.into_iter().skip(r.offset).take(r.limit).collect()
}

fn filter_choice(choice: u8) -> Option<Filter> {
    match choice % 4 {
        0 => None,
        1 => Some(Filter::must([field("category").eq("apparel")])),
        2 => Some(Filter::must([field("price").lt(500.0)])),
        _ => Some(Filter::must_not([field("category").eq("home")])),
    }
}

fn leaf_prefetch(rng: &mut Rng, choice: u8, limit: usize) -> Prefetch {
    let (space, dim) = if choice & 1 == 0 { ("text", 4) } else { ("image", 6) };
    Prefetch { filter: filter_choice(choice >> 1), ..Prefetch::nearest(space, rng.vector(dim), limit) }
}

fn fusion(choice: u8, lists: usize) -> Fusion {
    match choice % 3 {
        0 => Fusion::rrf(),
        1 => Fusion::Rrf {
            k: 1 + choice as usize % 5,
            weights: Some((0..lists).map(|i| (i as f32 + 1.0) * 0.5).collect()),
        },
        _ => Fusion::dbsf(),
    }
}

/// A random tree from a list of small choices.
fn tree(seed: u64, shape: &[u8]) -> QueryRequest {
    let mut rng = Rng(seed | 1);
    let pick = |i: usize| shape[i % shape.len()];
    let leaves = 1 + pick(0) as usize % 3;
    let mut prefetch: Vec<Prefetch> =
        (0..leaves).map(|i| leaf_prefetch(&mut rng, pick(1 + i), 1 + pick(4 + i) as usize % 15)).collect();
    if pick(7) % 3 == 0 {
        // A nested level: fuse the leaves, keep a few, under a filter of its own.
        prefetch = vec![Prefetch {
            filter: filter_choice(pick(8)),
            ..Prefetch::fusion(fusion(pick(9), prefetch.len()), prefetch, 1 + pick(10) as usize % 12)
        }];
    }
    let mut request = match pick(11) % 3 {
        0 => QueryRequest::fusion(fusion(pick(12), prefetch.len()), prefetch),
        1 => QueryRequest::rescore("text", rng.vector(4), prefetch),
        _ => QueryRequest::rescore("image", rng.vector(6), prefetch),
    };
    request.limit = 1 + pick(13) as usize % 10;
    request.offset = pick(14) as usize % 4;
    request.filter = filter_choice(pick(15));
    request.post_filter = if pick(16) % 4 == 0 { filter_choice(pick(17)) } else { None };
    request.score_threshold = if pick(18) % 5 == 0 { Some(0.3) } else { None };
    request
}

proptest! {
    #[test]
    fn planner_equals_naive_evaluator(seed in any::<u64>(), shape in prop::collection::vec(any::<u8>(), 19), n in 20u64..120) {
        let db = catalogue(seed, n);
        let request = tree(seed ^ 0x5555, &shape);
        let got = run(&db, &request).unwrap();
        let expected = naive(&db, &request);
        prop_assert_eq!(got.len(), expected.len(), "{:?}", request);
        for (g, e) in got.iter().zip(&expected) {
            prop_assert!((g.score - e.score).abs() <= 1e-5, "{:?} vs {:?} in {:?}", got, expected, request);
        }
        // Ids agree wherever scores are not tied.
        for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
            let tied = got.iter().enumerate().any(|(j, o)| j != i && (o.score - g.score).abs() <= 1e-5);
            if !tied {
                prop_assert_eq!(g.id, e.id, "{:?} vs {:?}", got, expected);
            }
        }
    }
}
