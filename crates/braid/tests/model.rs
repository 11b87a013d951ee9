//! Random collections, points, payloads and query trees, with and without payload
//! indexes: the facade's answer with `exact: true` equals a naive evaluator written
//! here; through the graph, recall@10 is at least 0.95.

use std::collections::HashMap;

use braid::{
    CollectionConfig, Database, Distance, Filter, Fusion, IndexKind, PointId, PointStruct, Prefetch, Query,
    QueryRequest, SearchParams, VectorParams, field,
};
use proptest::prelude::*;
use serde_json::{Value, json};

const EXACT: SearchParams = SearchParams::EXACT;

#[derive(Clone, Debug)]
struct P {
    id: u64,
    text: Vec<f32>,
    image: Option<Vec<f32>>,
    payload: Value,
}

fn point() -> impl Strategy<Value = P> {
    (
        0u64..1000,
        prop::collection::vec(-1.0f32..1.0, 3).prop_filter("non-zero", |v| v.iter().any(|x| x.abs() > 1e-3)),
        prop::option::of(prop::collection::vec(-5.0f32..5.0, 2)),
        0u8..3,
        0i64..50,
    )
        .prop_map(|(id, text, image, tag, n)| {
            let tag = ["a", "b", "c"][tag as usize];
            P { id, text, image, payload: json!({"tag": tag, "n": n}) }
        })
}

fn filter(choice: u8) -> Option<Filter> {
    match choice % 4 {
        0 => None,
        1 => Some(Filter::must([field("tag").eq("a")])),
        2 => Some(Filter::must([field("n").lt(25.0)])),
        _ => Some(Filter::must_not([field("tag").eq("c")])),
    }
}

#[derive(Clone, Debug)]
struct Leaf {
    text: bool,
    vector: Vec<f32>,
    filter: u8,
    limit: usize,
}

fn leaf() -> impl Strategy<Value = Leaf> {
    (any::<bool>(), prop::collection::vec(-1.0f32..1.0, 3), any::<u8>(), 1usize..12).prop_map(
        |(text, mut vector, filter, limit)| {
            if text {
                vector[0] += 1.5; // never the zero vector
            } else {
                vector.truncate(2);
            }
            Leaf { text, vector, filter, limit }
        },
    )
}

fn prefetch(l: &Leaf) -> Prefetch {
    let space = if l.text { "text" } else { "image" };
    Prefetch { filter: filter(l.filter), ..Prefetch::nearest(space, l.vector.clone(), l.limit).params(EXACT) }
}

fn normalise(v: &[f32]) -> Vec<f32> {
    let n = v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    v.iter().map(|x| (f64::from(*x) / n) as f32).collect()
}

struct Model {
    points: Vec<P>,
}

impl Model {
    fn passes(p: &P, filters: &[Option<Filter>]) -> bool {
        filters.iter().flatten().all(|f| {
            let tag = p.payload["tag"].as_str().unwrap();
            let n = p.payload["n"].as_i64().unwrap() as f64;
            match f.to_json().to_string().as_str() {
                s if s.contains("must_not") => tag != "c",
                s if s.contains("\"tag\"") => tag == "a",
                _ => n < 25.0,
            }
        })
    }

    /// Best first, ties by id: cosine similarity on text, L2 distance on image.
    fn rank(&self, text: bool, v: &[f32], filters: &[Option<Filter>]) -> Vec<(PointId, f32)> {
        let mut out: Vec<(PointId, f32)> = self
            .points
            .iter()
            .filter(|p| Self::passes(p, filters))
            .filter_map(|p| {
                if text {
                    let (a, b) = (normalise(v), normalise(&p.text));
                    Some((PointId::Num(p.id), a.iter().zip(&b).map(|(x, y)| x * y).sum::<f32>()))
                } else {
                    p.image.as_ref().map(|img| {
                        (
                            PointId::Num(p.id),
                            v.iter().zip(img).map(|(x, y)| (x - y).powi(2)).sum::<f32>().sqrt(),
                        )
                    })
                }
            })
            .collect();
        if text {
            out.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        } else {
            out.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
        }
        out
    }

    fn fuse(rrf: bool, lists: &[Vec<(PointId, f32)>]) -> Vec<(PointId, f32)> {
        let mut order = Vec::new();
        let mut total: HashMap<PointId, f32> = HashMap::new();
        for list in lists {
            let n = list.len() as f64;
            let mean = list.iter().map(|x| f64::from(x.1)).sum::<f64>() / n;
            let sd = if list.len() > 1 {
                (list.iter().map(|x| (f64::from(x.1) - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
            } else {
                0.0
            };
            for (p, (id, s)) in list.iter().enumerate() {
                let c = if rrf {
                    1.0 / (p as f32 + 2.0)
                } else if sd == 0.0 {
                    0.5
                } else {
                    ((f64::from(*s) - (mean - 3.0 * sd)) / (6.0 * sd)) as f32
                };
                if !total.contains_key(id) {
                    order.push(*id);
                }
                *total.entry(*id).or_default() += c;
            }
        }
        let mut out: Vec<(PointId, f32)> = order.into_iter().map(|id| (id, total[&id])).collect();
        out.sort_by(|a, b| b.1.total_cmp(&a.1));
        out
    }
}

fn same(got: &[braid::ScoredPoint], expected: &[(PointId, f32)]) -> Result<(), TestCaseError> {
    prop_assert_eq!(got.len(), expected.len());
    for (i, (g, e)) in got.iter().zip(expected).enumerate() {
        prop_assert!((g.score - e.1).abs() <= 1e-4, "score {} vs {}", g.score, e.1);
        let tied = expected.iter().enumerate().any(|(j, o)| j != i && (o.1 - e.1).abs() <= 1e-4);
        if !tied {
            prop_assert_eq!(g.id, e.0);
        }
    }
    Ok(())
}

/// A collection of `points`; with `indexed`, `tag` and `n` have payload indexes, so
/// filters on them are answered as sets (intersected with a space's points where some
/// lack its vector, as `image` may) instead of point by point.
fn load(points: &[P], indexed: bool) -> (braid::Collection, Model) {
    // Later duplicates of an id replace earlier ones, as upsert does.
    let mut by_id: HashMap<u64, P> = HashMap::new();
    for p in points {
        by_id.insert(p.id, p.clone());
    }
    let db = Database::in_memory();
    let c = db
        .create_collection(
            "m",
            CollectionConfig::new()
                .vector("text", VectorParams::new(3, Distance::Cosine).hnsw(4, 16))
                .vector("image", VectorParams::new(2, Distance::Euclid).hnsw(4, 16)),
        )
        .unwrap();
    if indexed {
        c.create_payload_index("tag", IndexKind::Keyword).unwrap();
        c.create_payload_index("n", IndexKind::Integer).unwrap();
    }
    c.upsert(
        points
            .iter()
            .map(|p| {
                let mut s = PointStruct::new(p.id).vector("text", p.text.clone()).payload(p.payload.clone());
                if let Some(img) = &p.image {
                    s = s.vector("image", img.clone());
                }
                s
            })
            .collect(),
    )
    .unwrap();
    (c, Model { points: by_id.into_values().collect() })
}

proptest! {
    #[test]
    fn exact_answers_equal_the_naive_evaluator(
        points in prop::collection::vec(point(), 1..60),
        leaves in prop::collection::vec(leaf(), 1..4),
        rrf in any::<bool>(),
        rescore in prop::option::of(prop::collection::vec(-1.0f32..1.0, 3)),
        root_filter in any::<u8>(),
        limit in 1usize..10,
        offset in 0usize..3,
        indexed in any::<bool>(),
    ) {
        let (c, model) = load(&points, indexed);
        let fusion = if rrf { Fusion::rrf() } else { Fusion::dbsf() };
        let prefetch: Vec<Prefetch> = leaves.iter().map(prefetch).collect();
        let root_f = filter(root_filter);
        let lists: Vec<Vec<(PointId, f32)>> = leaves
            .iter()
            .map(|l| {
                let mut r = model.rank(l.text, &l.vector, &[root_f.clone(), filter(l.filter)]);
                r.truncate(l.limit);
                r
            })
            .collect();
        let (request, mut expected) = match rescore {
            None => (QueryRequest::fusion(fusion, prefetch), Model::fuse(rrf, &lists)),
            Some(mut v) => {
                v[0] += 1.5;
                let fused: Vec<PointId> = Model::fuse(rrf, &lists).into_iter().take(10).map(|f| f.0).collect();
                let ranked: Vec<(PointId, f32)> = model.rank(true, &v, &[]).into_iter().filter(|(id, _)| fused.contains(id)).collect();
                (QueryRequest::rescore("text", v, vec![Prefetch::fusion(fusion, prefetch, 10)]), ranked)
            }
        };
        let mut request = request.limit(limit).offset(offset);
        request.filter = root_f;
        expected = expected.into_iter().skip(offset).take(limit).collect();
        let got = c.query(request).unwrap();
        same(&got, &expected)?;
    }

    #[test]
    fn graph_search_recall(seed in any::<u64>()) {
        let mut state = seed | 1;
        let mut next = move || { state ^= state << 13; state ^= state >> 7; state ^= state << 17; (state >> 40) as f32 / 16_777_216.0 - 0.5 };
        let db = Database::in_memory();
        let c = db.create_collection("r", CollectionConfig::new().vector("v", VectorParams::new(16, Distance::Cosine))).unwrap();
        let vectors: Vec<Vec<f32>> = (0..800).map(|_| (0..16).map(|_| next()).collect()).collect();
        c.upsert(vectors.iter().enumerate().map(|(i, v)| PointStruct::new(i as u64).vector("v", v.clone())).collect()).unwrap();
        let mut hits = 0;
        for _ in 0..20 {
            let q: Vec<f32> = (0..16).map(|_| next()).collect();
            let exact = c.search(&braid::SearchRequest::new("v", q.clone()).params(EXACT)).unwrap();
            let graph = c.search(&braid::SearchRequest::new("v", q)).unwrap();
            hits += graph.iter().filter(|g| exact.iter().any(|e| e.id == g.id)).count();
        }
        let recall = hits as f64 / 200.0;
        prop_assert!(recall >= 0.95, "recall@10 {recall}");
    }
}

#[test]
fn query_without_rescore_keeps_query_enum_usable() {
    // `Query` is part of the public API: a root Nearest built by hand.
    let (c, _) = load(
        &[P { id: 1, text: vec![1.0, 0.0, 0.0], image: None, payload: json!({"tag": "a", "n": 1}) }],
        false,
    );
    let request = QueryRequest {
        query: Some(Query::Nearest(vec![1.0, 0.0, 0.0])),
        using: Some("text".into()),
        ..QueryRequest::default()
    };
    assert_eq!(c.query(request).unwrap()[0].id, PointId::Num(1));
}

#[test]
fn an_id_repeated_in_one_batch_keeps_its_last_version_only() {
    let (c, _) = load(
        &[
            P { id: 7, text: vec![0.0, 0.0, 1.0], image: None, payload: json!({"tag": "a", "n": 1}) },
            P { id: 7, text: vec![0.0, 1.0, 0.0], image: None, payload: json!({"tag": "b", "n": 2}) },
            P { id: 8, text: vec![0.0, 0.0, 1.0], image: None, payload: json!({"tag": "c", "n": 3}) },
        ],
        false,
    );
    let exact = c
        .search(&braid::SearchRequest::new("text", vec![0.0, 0.0, 1.0]).params(EXACT).with_payload(true))
        .unwrap();
    assert_eq!(exact.iter().map(|h| h.id).collect::<Vec<_>>(), vec![PointId::Num(8), PointId::Num(7)]);
    assert_eq!(exact[1].payload.as_ref().unwrap()["tag"], "b");
    assert_eq!(c.count(None).unwrap(), 2);
}
