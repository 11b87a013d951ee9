//! Qdrant's query semantics, one test each, with expected answers from brute force and
//! hand-written fusion formulas (not from the planner).

mod common;

use std::collections::HashMap;

use braid_core::{Metric, PointId};
use braid_filter::{Filter, field};
use braid_query::{Fusion, Hit, Prefetch, QueryError, QueryRequest, SearchParams, explain, run, run_batch};
use common::{Rng, catalogue};

fn ids(hits: &[Hit]) -> Vec<PointId> {
    hits.iter().map(|h| h.id).collect()
}

/// RRF by hand: 1 / (p + 2) per list, summed; ties keep first-seen order.
fn rrf_by_hand(lists: &[Vec<Hit>]) -> Vec<(PointId, f32)> {
    let mut order: Vec<PointId> = Vec::new();
    let mut scores: HashMap<PointId, f32> = HashMap::new();
    for list in lists {
        for (p, hit) in list.iter().enumerate() {
            if !scores.contains_key(&hit.id) {
                order.push(hit.id);
            }
            *scores.entry(hit.id).or_default() += 1.0 / (p as f32 + 2.0);
        }
    }
    let mut out: Vec<(PointId, f32)> = order.into_iter().map(|id| (id, scores[&id])).collect();
    out.sort_by(|a, b| b.1.total_cmp(&a.1));
    out
}

fn query_vectors(seed: u64) -> (Vec<f32>, Vec<f32>) {
    let mut rng = Rng(seed);
    let text = braid_distance::prepare(Metric::Cosine, 4, &rng.vector(4)).unwrap();
    let image = braid_distance::prepare(Metric::Cosine, 6, &rng.vector(6)).unwrap();
    (text, image)
}

#[test]
fn rrf_of_two_prefetches_matches_the_formula() {
    let db = catalogue(1, 200);
    let (t, i) = query_vectors(5);
    let request = QueryRequest::fusion(
        Fusion::rrf(),
        vec![Prefetch::nearest("text", t.clone(), 20), Prefetch::nearest("image", i.clone(), 20)],
    )
    .limit(10);
    let got = run(&db, &request).unwrap();
    let lists = vec![db.ranked("text", &t, None)[..20].to_vec(), db.ranked("image", &i, None)[..20].to_vec()];
    let expected = rrf_by_hand(&lists);
    assert_eq!(got.len(), 10);
    for (g, e) in got.iter().zip(&expected) {
        assert_eq!(g.id, e.0);
        assert!((g.score - e.1).abs() < 1e-6);
    }
}

#[test]
fn top_level_filter_goes_into_every_leaf_before_its_limit() {
    let db = catalogue(2, 300);
    let (t, i) = query_vectors(6);
    let apparel = Filter::must([field("category").eq("apparel")]);
    let prefetch = vec![Prefetch::nearest("text", t.clone(), 20), Prefetch::nearest("image", i.clone(), 20)];
    let filtered =
        run(&db, &QueryRequest::fusion(Fusion::rrf(), prefetch.clone()).filter(apparel.clone()).limit(10))
            .unwrap();
    // Each leaf takes its 20 best *among apparel*, so 10 results always come back.
    let lists = vec![
        db.ranked("text", &t, Some(&apparel))[..20].to_vec(),
        db.ranked("image", &i, Some(&apparel))[..20].to_vec(),
    ];
    assert_eq!(ids(&filtered), rrf_by_hand(&lists).iter().take(10).map(|e| e.0).collect::<Vec<_>>());
    // The post-fusion gate fuses the unfiltered pools and drops the rest: a subset of
    // the unfiltered answer, possibly shorter.
    let gated = run(
        &db,
        &QueryRequest::fusion(Fusion::rrf(), prefetch.clone()).post_filter(apparel.clone()).limit(10),
    )
    .unwrap();
    let unfiltered = run(&db, &QueryRequest::fusion(Fusion::rrf(), prefetch).limit(10)).unwrap();
    let kept: Vec<PointId> =
        unfiltered.iter().map(|h| h.id).filter(|id| matches!(id, PointId::Num(n) if n % 3 == 0)).collect();
    assert_eq!(ids(&gated), kept);
    assert!(gated.len() <= filtered.len());
}

#[test]
fn nested_prefetch_rescores_only_the_fused_candidates() {
    let db = catalogue(3, 250);
    let (t, i) = query_vectors(7);
    let fused = Prefetch::fusion(
        Fusion::rrf(),
        vec![Prefetch::nearest("text", t.clone(), 20), Prefetch::nearest("image", i.clone(), 20)],
        15,
    );
    let got = run(&db, &QueryRequest::rescore("text", t.clone(), vec![fused]).limit(10)).unwrap();
    let lists = vec![db.ranked("text", &t, None)[..20].to_vec(), db.ranked("image", &i, None)[..20].to_vec()];
    let candidates: Vec<PointId> = rrf_by_hand(&lists).into_iter().take(15).map(|e| e.0).collect();
    // Final scores are cosine similarities of the 15 candidates, best first.
    let mut expected: Vec<Hit> =
        db.ranked("text", &t, None).into_iter().filter(|h| candidates.contains(&h.id)).collect();
    expected.truncate(10);
    assert_eq!(got, expected);
}

#[test]
fn offset_only_at_the_root_and_thresholds() {
    let db = catalogue(4, 120);
    let (t, _) = query_vectors(8);
    let all = db.ranked("text", &t, None);
    let page = run(&db, &QueryRequest::nearest("text", t.clone()).limit(5).offset(5)).unwrap();
    assert_eq!(page, all[5..10].to_vec());
    // Vector threshold is strict: a threshold equal to the 3rd score keeps two.
    let third = all[2].score;
    let got = run(&db, &QueryRequest::nearest("text", t.clone()).score_threshold(third)).unwrap();
    assert_eq!(got, all[..2].to_vec());
    // Fusion threshold is inclusive: 0.5 keeps the points ranked first in some list.
    let (_, i) = query_vectors(8);
    let fused = run(
        &db,
        &QueryRequest::fusion(
            Fusion::rrf(),
            vec![Prefetch::nearest("text", t, 5), Prefetch::nearest("image", i, 5)],
        )
        .score_threshold(0.5),
    )
    .unwrap();
    assert!(!fused.is_empty() && fused.iter().all(|h| h.score >= 0.5));
}

#[test]
fn euclid_scores_are_distances_ascending_and_dbsf_keeps_raw_scores() {
    use std::collections::BTreeMap;
    let spaces = BTreeMap::from([("e".to_string(), braid_query::Space { dim: 2, metric: Metric::Euclid })]);
    let points = (0..6u64)
        .map(|i| common::Point {
            id: PointId::Num(i),
            vectors: BTreeMap::from([("e".to_string(), vec![i as f32, 0.0])]),
            payload: serde_json::json!({}),
        })
        .collect();
    let db = common::BruteForce::new(spaces, points);
    let got = run(&db, &QueryRequest::nearest("e", vec![0.0, 0.0]).limit(3)).unwrap();
    assert_eq!(got.iter().map(|h| h.score).collect::<Vec<_>>(), vec![0.0, 1.0, 2.0]);
    // DBSF on distances, as Qdrant's server does it: the nearest point (distance 0) gets
    // the lowest normalised score.
    let fused =
        run(&db, &QueryRequest::fusion(Fusion::dbsf(), vec![Prefetch::nearest("e", vec![0.0, 0.0], 3)]))
            .unwrap();
    assert_eq!(fused.last().unwrap().id, PointId::Num(0));
}

#[test]
fn no_query_and_no_prefetch_scrolls_in_id_order() {
    let db = catalogue(5, 30);
    let got =
        run(&db, &QueryRequest::default().filter(Filter::must([field("category").eq("shoes")])).limit(4))
            .unwrap();
    assert_eq!(ids(&got), [1u64, 4, 7, 10].map(PointId::Num).to_vec());
    assert!(got.iter().all(|h| h.score == 1.0));
}

#[test]
fn points_without_a_vector_are_skipped_in_that_space() {
    let db = catalogue(6, 50);
    let (_, i) = query_vectors(9);
    let got = run(&db, &QueryRequest::nearest("image", i).limit(50)).unwrap();
    assert_eq!(got.len(), 50 - (0..50).filter(|n| n % 7 == 3).count());
}

#[test]
fn batch_equals_one_by_one() {
    let db = catalogue(7, 150);
    let (t, i) = query_vectors(10);
    let requests = vec![
        QueryRequest::nearest("text", t.clone()),
        QueryRequest::nearest("image", i.clone()).limit(3),
        QueryRequest::fusion(
            Fusion::dbsf(),
            vec![Prefetch::nearest("text", t, 10), Prefetch::nearest("image", i, 10)],
        ),
        QueryRequest::nearest("nope", vec![1.0]),
    ];
    let batch = run_batch(&db, &requests).unwrap();
    for (r, b) in requests.iter().zip(&batch) {
        assert_eq!(&run(&db, r), b);
    }
    assert!(batch[3].is_err());
}

#[test]
fn explain_names_the_path_of_each_leaf() {
    let db = catalogue(8, 200);
    let (t, i) = query_vectors(11);
    let request = QueryRequest::fusion(
        Fusion::rrf(),
        vec![
            Prefetch::nearest("text", t, 20).filter(Filter::must([field("price").lt(30.0)])),
            Prefetch::nearest("image", i, 20).params(SearchParams { exact: true, ..SearchParams::ef(256) }),
        ],
    );
    let text = explain(&db, &request).unwrap().to_string();
    assert!(text.contains("fuse 2 lists by RRF (k = 2)"), "{text}");
    assert!(text.contains("nearest in `text`, keep 20, filtered"), "{text}");
    assert!(text.contains("Scan: scan"), "{text}");
    assert!(text.contains("Exact: requested by params.exact"), "{text}");
}

#[test]
fn bad_input_is_refused_before_anything_runs() {
    let db = catalogue(9, 20);
    let (t, i) = query_vectors(12);
    let near = |v: &Vec<f32>| Prefetch::nearest("text", v.clone(), 10);
    let deep = (0..70).fold(near(&t), |inner, _| Prefetch::fusion(Fusion::rrf(), vec![inner], 10));
    type Case = (QueryRequest, fn(&QueryError) -> bool);
    let cases: Vec<Case> = vec![
        (QueryRequest::nearest("nope", t.clone()), |e| matches!(e, QueryError::UnknownVector { .. })),
        (
            QueryRequest { query: Some(braid_query::Query::Nearest(t.clone())), ..QueryRequest::default() },
            |e| matches!(e, QueryError::MissingUsing { .. }),
        ),
        (QueryRequest::nearest("text", vec![1.0; 5]), |e| matches!(e, QueryError::Vector { .. })),
        (QueryRequest::nearest("text", vec![f32::NAN, 0.0, 0.0, 1.0]), |e| {
            matches!(e, QueryError::Vector { .. })
        }),
        (QueryRequest::nearest("text", vec![f32::INFINITY, 0.0, 0.0, 1.0]), |e| {
            matches!(e, QueryError::Vector { .. })
        }),
        (QueryRequest::nearest("text", vec![0.0; 4]), |e| matches!(e, QueryError::Vector { .. })),
        (QueryRequest::nearest("text", t.clone()).limit(0), |e| matches!(e, QueryError::Limit { .. })),
        (QueryRequest::nearest("text", t.clone()).limit(usize::MAX), |e| {
            matches!(e, QueryError::Limit { .. })
        }),
        (QueryRequest::nearest("text", t.clone()).offset(usize::MAX), |e| {
            matches!(e, QueryError::Offset { .. })
        }),
        (QueryRequest::nearest("text", t.clone()).score_threshold(f32::NAN), |e| {
            matches!(e, QueryError::BadThreshold)
        }),
        (QueryRequest::fusion(Fusion::rrf(), vec![]), |e| matches!(e, QueryError::FusionWithoutPrefetch)),
        (QueryRequest { prefetch: vec![near(&t)], ..QueryRequest::default() }, |e| {
            matches!(e, QueryError::PrefetchWithoutQuery)
        }),
        (QueryRequest::fusion(Fusion::rrf(), vec![Prefetch::default()]), |e| {
            matches!(e, QueryError::MissingQuery)
        }),
        (
            QueryRequest::fusion(Fusion::Rrf { k: 2, weights: Some(vec![1.0]) }, vec![near(&t), near(&t)]),
            |e| matches!(e, QueryError::Fusion(_)),
        ),
        (QueryRequest::fusion(Fusion::Rrf { k: 0, weights: None }, vec![near(&t)]), |e| {
            matches!(e, QueryError::Fusion(_))
        }),
        (QueryRequest::fusion(Fusion::Dbsf { weights: Some(vec![f32::NAN]) }, vec![near(&t)]), |e| {
            matches!(e, QueryError::Fusion(_))
        }),
        (QueryRequest::fusion(Fusion::rrf(), vec![Prefetch { limit: Some(0), ..near(&t) }]), |e| {
            matches!(e, QueryError::Limit { .. })
        }),
        (QueryRequest::fusion(Fusion::rrf(), vec![Prefetch::nearest("image", t.clone(), 5)]), |e| {
            matches!(e, QueryError::Vector { .. })
        }),
        (QueryRequest::rescore("text", i.clone(), vec![near(&t)]), |e| {
            matches!(e, QueryError::Vector { .. })
        }),
        (QueryRequest::fusion(Fusion::rrf(), vec![deep]), |e| matches!(e, QueryError::TooDeep { .. })),
    ];
    for (request, check) in cases {
        let err = run(&db, &request).expect_err(&format!("{request:?}"));
        assert!(check(&err), "{request:?} gave {err:?}");
        assert_eq!(explain(&db, &request).unwrap_err().to_string(), err.to_string());
    }
    assert_eq!(run_batch(&db, &[]).unwrap(), Vec::new(), "an empty batch has an empty answer");
    let many = vec![QueryRequest::nearest("text", t.clone()); braid_query::MAX_BATCH + 1];
    assert!(matches!(run_batch(&db, &many).unwrap_err(), QueryError::BatchTooLarge { .. }));
    // What one call may ask for in rows: 1,000 searches of limit 100,000 is 10⁸ rows.
    let huge = vec![QueryRequest::nearest("text", t.clone()).limit(100_000); braid_query::MAX_BATCH];
    let err = run_batch(&db, &huge).unwrap_err();
    assert_eq!(err, QueryError::TooManyRows { rows: 100_000_000, max: braid_query::MAX_ROWS });
    let wide = QueryRequest::fusion(Fusion::rrf(), vec![Prefetch::nearest("text", t.clone(), 100_000); 30]);
    assert!(matches!(run(&db, &wide).unwrap_err(), QueryError::TooManyRows { rows: 3_000_010, .. }));
    assert_eq!(explain(&db, &wide).unwrap_err(), run(&db, &wide).unwrap_err());
    // Just under the bound runs.
    let fits = QueryRequest::fusion(Fusion::rrf(), vec![Prefetch::nearest("text", t, 100_000); 19]);
    run(&db, &fits.limit(10)).unwrap();
}

#[test]
fn a_stopped_query_gives_up_with_a_typed_error() {
    use braid_query::{Stop, run_batch_until, run_until};
    use std::sync::Arc;
    use std::sync::atomic::AtomicBool;
    let db = catalogue(1, 200);
    let (t, i) = query_vectors(3);
    let fused = QueryRequest::fusion(
        Fusion::rrf(),
        vec![Prefetch::nearest("text", t, 10), Prefetch::nearest("image", i, 10)],
    );
    let flag = Arc::new(AtomicBool::new(false));
    let stop = Stop::never().on(flag.clone()).after(std::time::Duration::from_secs(3600));
    assert_eq!(run_until(&db, &fused, &stop).unwrap(), run(&db, &fused).unwrap());
    flag.store(true, std::sync::atomic::Ordering::Release);
    assert_eq!(run_until(&db, &fused, &stop).unwrap_err(), QueryError::Cancelled);
    let expired = Stop::never().after(std::time::Duration::ZERO);
    assert_eq!(run_until(&db, &fused, &expired).unwrap_err(), QueryError::Timeout);
    let results = run_batch_until(&db, &[fused.clone(), fused], &expired).unwrap();
    assert!(results.iter().all(|r| r.as_ref().unwrap_err() == &QueryError::Timeout));
}
