//! Query by point id, `lookup_from`, recommend (every strategy), discover and context
//! against a brute-force reference written from Qdrant's formulas (`docs/query.md`).

use braid::query::QueryError;
use braid::{
    CollectionConfig, ContextPair, Database, Distance, Error, Example, Filter, LookupFrom, PointId,
    PointStruct, Prefetch, Query, QueryRequest, Recommend, RecommendStrategy, SearchParams, VectorParams,
    field,
};
use serde_json::json;

const EXACT: SearchParams = SearchParams::EXACT;
const N: u64 = 300;
const DIM: usize = 8;

/// A small deterministic generator (tests need no seed management).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> f32 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((self.0 >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
    fn vector(&mut self) -> Vec<f32> {
        (0..DIM).map(|_| self.next()).collect()
    }
}

fn normalised(v: &[f32]) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter().map(|x| x / n).collect()
}

/// Qdrant's internal similarity, computed naively.
fn similarity(metric: Distance, a: &[f32], b: &[f32]) -> f32 {
    match metric {
        Distance::Cosine => normalised(a).iter().zip(normalised(b)).map(|(x, y)| x * y).sum(),
        Distance::Dot => a.iter().zip(b).map(|(x, y)| x * y).sum(),
        Distance::Euclid => -a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum::<f32>(),
        Distance::Manhattan => -a.iter().zip(b).map(|(x, y)| (x - y).abs()).sum::<f32>(),
    }
}

fn sigmoid(x: f32) -> f32 {
    x / (1.0 + x.abs())
}

fn scaled(x: f32) -> f32 {
    0.5 * (sigmoid(x) + 1.0)
}

struct Fixture {
    db: Database,
    vectors: Vec<Vec<f32>>,
}

impl Fixture {
    fn new(metric: Distance) -> Fixture {
        let db = Database::in_memory();
        let config = CollectionConfig::new().vector("v", VectorParams::new(DIM, metric));
        let c = db.create_collection("items", config).unwrap();
        let mut rng = Lcg(7 + metric as u64);
        let vectors: Vec<Vec<f32>> = (0..N).map(|_| rng.vector()).collect();
        c.upsert(
            vectors
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    PointStruct::new(i as u64).vector("v", v.clone()).payload(json!({"group": i % 3}))
                })
                .collect(),
        )
        .unwrap();
        Fixture { db, vectors }
    }

    fn vector(&self, e: &Example) -> Vec<f32> {
        match e {
            Example::Vector(v) => v.clone(),
            Example::Id(PointId::Num(n)) => self.vectors[*n as usize].clone(),
            Example::Id(other) => panic!("unexpected id {other}"),
        }
    }

    /// The best `limit` by `score`, among points not in `skip` passing `keep`, by a
    /// scan (ties by id).
    fn reference(
        &self,
        score: impl Fn(&[f32]) -> f32,
        skip: &[u64],
        keep: impl Fn(u64) -> bool,
    ) -> Vec<(u64, f32)> {
        let mut all: Vec<(u64, f32)> = (0..N)
            .filter(|i| !skip.contains(i) && keep(*i))
            .map(|i| (i, score(&self.vectors[i as usize])))
            .collect();
        all.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        all.truncate(10);
        all
    }

    fn run(&self, request: QueryRequest) -> Vec<(u64, f32)> {
        let c = self.db.collection("items").unwrap();
        c.query(request.params(EXACT))
            .unwrap()
            .into_iter()
            .map(|h| match h.id {
                PointId::Num(n) => (n, h.score),
                other => panic!("unexpected id {other}"),
            })
            .collect()
    }
}

/// Same points in the same order, scores within float noise (the engine sums in SIMD
/// lanes, the reference in order).
fn assert_same(got: &[(u64, f32)], want: &[(u64, f32)], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: {got:?} vs {want:?}");
    for (g, w) in got.iter().zip(want) {
        assert!((g.1 - w.1).abs() <= 1e-4 * w.1.abs().max(1.0), "{what}: score {g:?} vs {w:?}");
    }
    // Equal scores may swap within noise; compare ids as sets and in order where the
    // scores clearly differ.
    let ids = |v: &[(u64, f32)]| v.iter().map(|x| x.0).collect::<std::collections::BTreeSet<_>>();
    assert_eq!(ids(got), ids(want), "{what}");
}

fn metrics() -> [Distance; 4] {
    [Distance::Cosine, Distance::Dot, Distance::Euclid, Distance::Manhattan]
}

fn recommend(positive: Vec<Example>, negative: Vec<Example>, strategy: RecommendStrategy) -> QueryRequest {
    QueryRequest::recommend("v", Recommend { positive, negative, strategy })
}

#[test]
fn query_by_id_is_a_nearest_search_without_the_point() {
    for metric in metrics() {
        let f = Fixture::new(metric);
        let got = f.run(QueryRequest::point("v", 5u64));
        let me = f.vectors[5].clone();
        let want = f.reference(|v| similarity(metric, &me, v), &[5], |_| true);
        // Scores are the metric's user scores: compare the ranking by the reference.
        let ids: Vec<u64> = got.iter().map(|x| x.0).collect();
        assert!(!ids.contains(&5), "{metric:?}: the point itself is left out");
        let want_ids: std::collections::BTreeSet<u64> = want.iter().map(|x| x.0).collect();
        assert_eq!(ids.iter().copied().collect::<std::collections::BTreeSet<_>>(), want_ids, "{metric:?}");
    }
}

#[test]
fn recommend_strategies_match_their_formulas() {
    for metric in metrics() {
        let f = Fixture::new(metric);
        let mut rng = Lcg(99);
        let positive: Vec<Example> = vec![3u64.into(), 17u64.into(), Example::Vector(rng.vector())];
        let negative: Vec<Example> = vec![42u64.into(), Example::Vector(rng.vector())];
        let named = [3, 17, 42];
        let pv: Vec<Vec<f32>> = positive.iter().map(|e| f.vector(e)).collect();
        let nv: Vec<Vec<f32>> = negative.iter().map(|e| f.vector(e)).collect();

        // best_score
        let got = f.run(recommend(positive.clone(), negative.clone(), RecommendStrategy::BestScore));
        let best = |v: &[f32]| {
            let p = pv.iter().map(|e| similarity(metric, e, v)).fold(f32::NEG_INFINITY, f32::max);
            let n = nv.iter().map(|e| similarity(metric, e, v)).fold(f32::NEG_INFINITY, f32::max);
            if p > n { scaled(p) } else { -scaled(n) }
        };
        assert_same(&got, &f.reference(best, &named, |_| true), &format!("best_score {metric:?}"));

        // sum_scores
        let got = f.run(recommend(positive.clone(), negative.clone(), RecommendStrategy::SumScores));
        let sum = |v: &[f32]| {
            pv.iter().map(|e| similarity(metric, e, v)).sum::<f32>()
                - nv.iter().map(|e| similarity(metric, e, v)).sum::<f32>()
        };
        assert_same(&got, &f.reference(sum, &named, |_| true), &format!("sum_scores {metric:?}"));

        // average_vector: a nearest search for 2·mean(p) − mean(n) (examples in stored
        // form: normalised under Cosine), with the metric's scores.
        let got = f.run(recommend(positive.clone(), negative.clone(), RecommendStrategy::AverageVector));
        let stored = |v: &Vec<f32>| if metric == Distance::Cosine { normalised(v) } else { v.clone() };
        let mean = |vs: &[Vec<f32>]| -> Vec<f32> {
            (0..DIM).map(|d| vs.iter().map(|v| stored(v)[d]).sum::<f32>() / vs.len() as f32).collect()
        };
        let (mp, mn) = (mean(&pv), mean(&nv));
        let target: Vec<f32> = mp.iter().zip(&mn).map(|(p, n)| p + p - n).collect();
        let want = f.reference(|v| similarity(metric, &target, v), &named, |_| true);
        let got_ids: Vec<u64> = got.iter().map(|x| x.0).collect();
        let want_ids: Vec<u64> = want.iter().map(|x| x.0).collect();
        assert_eq!(got_ids, want_ids, "average_vector {metric:?}");
        let direct = f.run(
            QueryRequest::nearest("v", target.clone())
                .filter(Filter::must_not([braid::Condition::has_id(named)])),
        );
        assert_same(&got, &direct, "average_vector is that nearest search, scores included");
    }
}

#[test]
fn recommend_edge_cases() {
    let f = Fixture::new(Distance::Cosine);
    // Negatives only: best_score and sum_scores serve it (every score ≤ 0 for
    // best_score: the points farthest from the negatives first).
    let got = f.run(recommend(vec![], vec![10u64.into()], RecommendStrategy::BestScore));
    assert_eq!(got.len(), 10);
    assert!(got.iter().all(|h| h.1 < 0.0), "{got:?}");
    let nv = f.vectors[10].clone();
    let want = f.reference(|v| -scaled(similarity(Distance::Cosine, &nv, v)), &[10], |_| true);
    assert_same(&got, &want, "negatives only");
    let got = f.run(recommend(vec![], vec![10u64.into()], RecommendStrategy::SumScores));
    assert_same(
        &got,
        &f.reference(|v| -similarity(Distance::Cosine, &nv, v), &[10], |_| true),
        "sum, negatives only",
    );

    let c = f.db.collection("items").unwrap();
    // average_vector needs a positive; the others need any example.
    let refused = |r: QueryRequest| matches!(c.query(r), Err(Error::Query(QueryError::NoExamples(_))));
    assert!(refused(recommend(vec![], vec![10u64.into()], RecommendStrategy::AverageVector)));
    assert!(refused(recommend(vec![], vec![], RecommendStrategy::BestScore)));
    assert!(refused(recommend(vec![], vec![], RecommendStrategy::SumScores)));
    assert!(refused(QueryRequest { query: Some(Query::Context(vec![])), ..QueryRequest::point("v", 1u64) }));
    // Unknown points are 404s; a wrong-size vector example a vector error.
    assert!(matches!(c.query(QueryRequest::point("v", 10_000u64)), Err(Error::PointNotFound { .. })));
    assert!(matches!(
        c.query(recommend(vec![Example::Vector(vec![1.0; 3])], vec![], RecommendStrategy::BestScore)),
        Err(Error::Query(QueryError::Vector { .. }))
    ));
    assert!(matches!(
        c.query(recommend(
            vec![Example::Vector(vec![f32::NAN; DIM])],
            vec![],
            RecommendStrategy::AverageVector
        )),
        Err(Error::Query(QueryError::Vector { .. }))
    ));
}

#[test]
fn discover_and_context_match_their_formulas() {
    for metric in metrics() {
        let f = Fixture::new(metric);
        let pairs = vec![
            ContextPair::new(1u64, 2u64),
            ContextPair::new(30u64, 40u64),
            ContextPair::new(50u64, 51u64),
        ];
        let pv: Vec<(Vec<f32>, Vec<f32>)> =
            pairs.iter().map(|p| (f.vector(&p.positive), f.vector(&p.negative))).collect();
        let named = [1, 2, 30, 40, 50, 51, 7];
        let target = f.vectors[7].clone();
        let got = f.run(QueryRequest {
            query: Some(Query::Discover { target: 7u64.into(), context: pairs.clone() }),
            ..QueryRequest::point("v", 0u64)
        });
        let discover = |v: &[f32]| {
            let rank: i32 = pv
                .iter()
                .map(|(p, n)| similarity(metric, p, v).total_cmp(&similarity(metric, n, v)) as i32)
                .sum();
            rank as f32 + scaled(similarity(metric, &target, v))
        };
        assert_same(&got, &f.reference(discover, &named, |_| true), &format!("discover {metric:?}"));

        let got = f.run(QueryRequest {
            query: Some(Query::Context(pairs.clone())),
            ..QueryRequest::point("v", 0u64)
        });
        let context = |v: &[f32]| {
            pv.iter()
                .map(|(p, n)| {
                    sigmoid((similarity(metric, p, v) - similarity(metric, n, v) - f32::EPSILON).min(0.0))
                })
                .sum::<f32>()
        };
        assert_same(&got, &f.reference(context, &named[..6], |_| true), &format!("context {metric:?}"));
    }
}

#[test]
fn examples_respect_filters_prefetches_and_lookup_from() {
    let f = Fixture::new(Distance::Cosine);
    let c = f.db.collection("items").unwrap();
    let metric = Distance::Cosine;
    // A filter: only group 1; the examples themselves may be outside it.
    let pv = [f.vectors[3].clone()];
    let got = f.run(
        recommend(vec![3u64.into()], vec![], RecommendStrategy::SumScores)
            .filter(Filter::must([field("group").eq(1)])),
    );
    let want = f.reference(|v| similarity(metric, &pv[0], v), &[3], |i| i % 3 == 1);
    assert_same(&got, &want, "filtered");

    // As a re-scorer over a prefetch: only the prefetch's candidates, the examples
    // excluded from them too.
    let prefetch = Prefetch {
        filter: Some(Filter::must([field("group").eq(2)])),
        ..Prefetch::nearest("v", f.vectors[5].clone(), 50)
    };
    let got = c
        .query(QueryRequest {
            prefetch: vec![prefetch],
            ..recommend(vec![5u64.into()], vec![8u64.into()], RecommendStrategy::BestScore)
        })
        .unwrap();
    assert!(got.iter().all(|h| matches!(h.id, PointId::Num(n) if n % 3 == 2 && n != 5 && n != 8)), "{got:?}");

    // lookup_from: the examples' vectors come from another collection (and space);
    // those ids are not excluded, since they name other points.
    let other =
        f.db.create_collection(
            "anchors",
            CollectionConfig::new().vector("w", VectorParams::new(DIM, Distance::Cosine)),
        )
        .unwrap();
    other.upsert(vec![PointStruct::new(5u64).vector("w", f.vectors[9].clone())]).unwrap();
    let lookup = LookupFrom { collection: "anchors".into(), vector: Some("w".into()) };
    let got = f.run(QueryRequest::point("v", 5u64).lookup_from(lookup.clone()));
    assert_eq!(got[0].0, 9, "the nearest to anchors/5's vector is point 9 itself");
    assert!((got[0].1 - 1.0).abs() < 1e-5);
    let got =
        f.run(recommend(vec![5u64.into()], vec![], RecommendStrategy::BestScore).lookup_from(lookup.clone()));
    assert_eq!(got[0].0, 9);
    // A missing lookup collection, point or space is a clear error.
    let bad = |l: LookupFrom| c.query(QueryRequest::point("v", 5u64).lookup_from(l));
    assert!(matches!(
        bad(LookupFrom { collection: "nope".into(), vector: None }),
        Err(Error::CollectionNotFound { .. })
    ));
    assert!(matches!(
        c.query(QueryRequest::point("v", 6u64).lookup_from(lookup.clone())),
        Err(Error::PointNotFound { .. })
    ));
    assert!(matches!(
        bad(LookupFrom { collection: "anchors".into(), vector: Some("x".into()) }),
        Err(Error::Query(QueryError::UnknownVector { .. }))
    ));
    // In a prefetch too.
    let got = c
        .query(QueryRequest {
            prefetch: vec![Prefetch {
                query: Some(Query::Point(5u64.into())),
                using: Some("v".into()),
                lookup_from: Some(lookup),
                limit: Some(5),
                ..Prefetch::default()
            }],
            ..QueryRequest::fusion(braid::Fusion::rrf(), vec![])
        })
        .unwrap();
    assert_eq!(got[0].id, PointId::Num(9));
}

#[test]
fn graph_search_by_examples_finds_what_the_scan_finds() {
    // 3,000 points, 16-d: enough for a real graph; best_score and sum_scores through
    // the graph against the exact scan.
    let db = Database::in_memory();
    let config = CollectionConfig::new().vector("v", VectorParams::new(16, Distance::Cosine));
    let c = db.create_collection("g", config).unwrap();
    let mut rng = Lcg(3);
    c.upsert(
        (0..3_000u64)
            .map(|i| PointStruct::new(i).vector("v", (0..16).map(|_| rng.next()).collect()))
            .collect(),
    )
    .unwrap();
    let mut found = 0;
    let mut total = 0;
    for q in 0..20u64 {
        for strategy in [RecommendStrategy::BestScore, RecommendStrategy::SumScores] {
            let r = recommend(
                vec![q.into(), (q + 100).into(), (q + 200).into()],
                vec![(q + 300).into()],
                strategy,
            );
            let exact: Vec<PointId> =
                c.query(r.clone().params(EXACT)).unwrap().iter().map(|h| h.id).collect();
            let graph: Vec<PointId> =
                c.query(r.params(SearchParams::ef(128))).unwrap().iter().map(|h| h.id).collect();
            total += exact.len();
            found += exact.iter().filter(|id| graph.contains(id)).count();
        }
    }
    let recall = found as f64 / total as f64;
    assert!(recall >= 0.8, "recall of graph search by examples {recall}");
    let plan =
        c.explain(&recommend(vec![1u64.into()], vec![2u64.into()], RecommendStrategy::BestScore)).unwrap();
    assert!(plan.to_string().contains("recommend (best_score) by 2 examples"), "{plan}");
}

/// MMR as Qdrant describes it, naively: the nearest `candidates`, then the most
/// relevant, then each time the best `λ·rel − (1−λ)·max sim to the picked`, visiting
/// the candidates in a swap-removed list and keeping the last maximum on ties.
fn mmr_reference(
    f: &Fixture,
    metric: Distance,
    query: &[f32],
    candidates: usize,
    diversity: f32,
    limit: usize,
) -> Vec<u64> {
    let pool: Vec<u64> =
        f.reference(|v| similarity(metric, query, v), &[], |_| true).iter().map(|x| x.0).collect();
    // `reference` keeps 10; widen it for larger pools.
    let pool: Vec<u64> = if candidates <= 10 {
        pool.into_iter().take(candidates).collect()
    } else {
        let mut all: Vec<(u64, f32)> =
            (0..N).map(|i| (i, similarity(metric, query, &f.vectors[i as usize]))).collect();
        all.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        all.into_iter().take(candidates).map(|x| x.0).collect()
    };
    let lambda = 1.0 - diversity;
    let rel = |i: u64| similarity(metric, query, &f.vectors[i as usize]);
    let sim = |a: u64, b: u64| similarity(metric, &f.vectors[a as usize], &f.vectors[b as usize]);
    let last_argmax = |scores: Vec<f32>| {
        let mut best = 0;
        for (i, s) in scores.iter().enumerate() {
            if *s >= scores[best] {
                best = i;
            }
        }
        best
    };
    let mut pending = pool.clone();
    let first = last_argmax(pending.iter().map(|&c| rel(c)).collect());
    let mut picked = vec![pending.swap_remove(first)];
    while picked.len() < limit && !pending.is_empty() {
        let scores = pending
            .iter()
            .map(|&c| {
                lambda * rel(c)
                    - (1.0 - lambda) * picked.iter().map(|&p| sim(c, p)).fold(f32::NEG_INFINITY, f32::max)
            })
            .collect();
        let next = last_argmax(scores);
        picked.push(pending.swap_remove(next));
    }
    picked
}

#[test]
fn mmr_picks_as_the_greedy_definition() {
    for metric in metrics() {
        let f = Fixture::new(metric);
        let c = f.db.collection("items").unwrap();
        let query = Lcg(5).vector();
        for (diversity, candidates, limit) in [(0.0, 10, 5), (0.5, 40, 8), (0.9, 100, 10), (1.0, 30, 6)] {
            let mmr = braid::Mmr { diversity: Some(diversity), candidates_limit: Some(candidates) };
            let request = QueryRequest {
                query: Some(Query::Mmr { nearest: Example::Vector(query.clone()), mmr }),
                using: Some("v".into()),
                ..QueryRequest::default()
            }
            .limit(limit)
            .params(EXACT);
            let got: Vec<u64> = c
                .query(request)
                .unwrap()
                .iter()
                .map(|h| match h.id {
                    PointId::Num(n) => n,
                    _ => 0,
                })
                .collect();
            let want = mmr_reference(&f, metric, &query, candidates, diversity, limit);
            assert_eq!(got, want, "{metric:?} diversity {diversity} candidates {candidates}");
        }
    }
    // Bad settings: typed errors.
    let f = Fixture::new(Distance::Cosine);
    let c = f.db.collection("items").unwrap();
    let bad = |mmr: braid::Mmr| {
        c.query(QueryRequest {
            query: Some(Query::Mmr { nearest: 1u64.into(), mmr }),
            using: Some("v".into()),
            ..QueryRequest::default()
        })
    };
    assert!(matches!(
        bad(braid::Mmr { diversity: Some(1.5), candidates_limit: None }),
        Err(Error::Query(QueryError::BadMmr(_)))
    ));
    assert!(matches!(
        bad(braid::Mmr { diversity: Some(f32::NAN), candidates_limit: None }),
        Err(Error::Query(QueryError::BadMmr(_)))
    ));
    assert!(matches!(
        bad(braid::Mmr { diversity: None, candidates_limit: Some(20_000) }),
        Err(Error::Query(QueryError::BadMmr(_)))
    ));
    // By id: the point itself is left out, as for any query naming it.
    let hits = bad(braid::Mmr::default()).unwrap();
    assert_eq!(hits.len(), 10);
    assert!(hits.iter().all(|h| h.id != PointId::Num(1)));
}

#[test]
fn distance_matrix_rows_are_the_nearest_sampled_others() {
    for metric in metrics() {
        let f = Fixture::new(metric);
        let c = f.db.collection("items").unwrap();
        let ones = Filter::must([field("group").eq(1)]);
        let num = |id: PointId| match id {
            PointId::Num(n) => n,
            other => panic!("{other}"),
        };
        // Sampling more than pass: all of them, in id order; then a real sample of 12.
        for sample in [1_000, 12] {
            let request = braid::MatrixRequest { filter: Some(ones.clone()), sample, limit: 4, using: None };
            let m = c.distance_matrix(&request, &braid::Stop::never()).unwrap();
            let ids: Vec<u64> = m.ids.iter().map(|id| num(*id)).collect();
            assert_eq!(ids.len(), sample.min(100));
            assert!(ids.windows(2).all(|w| w[0] < w[1]) && ids.iter().all(|i| i % 3 == 1), "{ids:?}");
            for (a, row) in m.rows.iter().enumerate() {
                let me = &f.vectors[ids[a] as usize];
                // Ranked by the internal similarity: the same order as the user scores.
                let mut want: Vec<(usize, f32)> = (0..ids.len())
                    .filter(|&b| b != a)
                    .map(|b| (b, similarity(metric, me, &f.vectors[ids[b] as usize])))
                    .collect();
                want.sort_by(|x, y| y.1.total_cmp(&x.1).then(x.0.cmp(&y.0)));
                let got: Vec<usize> = row.iter().map(|x| x.0).collect();
                let want_ids: Vec<usize> = want.iter().take(4).map(|x| x.0).collect();
                assert_eq!(got, want_ids, "{metric:?} row {a}");
            }
            let pairs = m.pairs();
            let (rows, cols, scores) = m.offsets();
            assert_eq!(pairs.len(), rows.len());
            assert!(
                pairs
                    .iter()
                    .zip(rows.iter().zip(&cols))
                    .all(|(p, (r, c))| p.0 == m.ids[*r as usize] && p.1 == m.ids[*c as usize])
            );
            assert_eq!(scores, pairs.iter().map(|p| p.2).collect::<Vec<_>>());
        }
    }
    let f = Fixture::new(Distance::Dot);
    let c = f.db.collection("items").unwrap();
    let run = |sample, limit, filter: Option<Filter>| {
        c.distance_matrix(&braid::MatrixRequest { filter, sample, limit, using: None }, &braid::Stop::never())
    };
    assert!(matches!(run(0, 3, None), Err(Error::Query(QueryError::Limit { .. }))));
    assert!(matches!(
        run(braid::MAX_MATRIX_SAMPLE + 1, 3, None),
        Err(Error::Query(QueryError::Limit { .. }))
    ));
    assert!(matches!(run(10, 0, None), Err(Error::Query(QueryError::Limit { .. }))));
    // Fewer than two points to sample: an empty matrix.
    let one = run(10, 3, Some(Filter::must([braid::Condition::has_id([5u64])]))).unwrap();
    assert!(one.ids.is_empty() && one.rows.is_empty());
}
