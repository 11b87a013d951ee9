//! The tutorial's steps as tests. Expected answers come from brute force over the
//! points the test itself generated, never from Braid's search.

use braid_testkit::Rng;
use std::collections::HashSet;

use braid::fusion::qdrant;
use braid::{
    CollectionConfig, Database, Distance, Error, Filter, Fusion, PointId, PointStruct, Prefetch, QueryPoints,
    QueryRequest, SearchParams, SearchRequest, Uuid, VectorParams, WithPayload, WithVectors, field,
};
use serde_json::{Value, json};

const N: u64 = 300;

fn id_of(i: u64) -> PointId {
    if i % 5 == 4 {
        PointId::Uuid(Uuid::from_u128(0xABCD_0000_0000_4000_8000_0000_0000_0000 | u128::from(i)))
    } else {
        PointId::Num(i)
    }
}

fn config() -> CollectionConfig {
    CollectionConfig::new()
        .vector("text", VectorParams::new(384, Distance::Cosine).hnsw(16, 200))
        .vector("image", VectorParams::new(512, Distance::Cosine).hnsw(32, 256))
}

fn points() -> Vec<PointStruct> {
    let mut rng = Rng::new(42);
    (0..N)
        .map(|i| {
            let category = ["apparel", "shoes", "home"][(i % 3) as usize];
            let mut p = PointStruct::new(id_of(i)).vector("text", rng.vector(384)).payload(json!({
                "name": format!("item {i}"),
                "category": category,
                "price": (i * 13 % 400) as f64,
                "description": format!("description {i}"),
            }));
            if i % 11 != 5 {
                p = p.vector("image", rng.vector(512));
            }
            p
        })
        .collect()
}

fn loaded() -> (Database, braid::Collection, Vec<PointStruct>) {
    let db = Database::in_memory();
    let products = db.get_or_create("products", config()).unwrap();
    let pts = points();
    for batch in pts.chunks(100) {
        products.upsert(batch.to_vec()).unwrap();
    }
    (db, products, pts)
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| f64::from(*x) * f64::from(*y)).sum();
    let na: f64 = a.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    (dot / (na * nb)) as f32
}

/// Every point with a vector in `space` passing `keep`, best first (ties by id).
fn brute(pts: &[PointStruct], space: &str, q: &[f32], keep: impl Fn(&Value) -> bool) -> Vec<(PointId, f32)> {
    let mut all: Vec<(PointId, f32)> = pts
        .iter()
        .filter(|p| keep(&p.payload))
        .filter_map(|p| p.vectors.get(space).map(|v| (p.id, cosine(q, v))))
        .collect();
    all.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    all
}

fn ids<T>(hits: &[T], id: impl Fn(&T) -> PointId) -> Vec<PointId> {
    hits.iter().map(id).collect()
}

const EXACT: SearchParams = SearchParams::EXACT;

#[test]
fn step_1_get_or_create_is_idempotent_and_refuses_another_config() {
    let db = Database::in_memory();
    db.get_or_create("products", config()).unwrap();
    assert!(db.get_or_create("products", config()).is_ok());
    let other = CollectionConfig::new().vector("text", VectorParams::new(384, Distance::Dot));
    assert_eq!(
        db.get_or_create("products", other).unwrap_err(),
        Error::CollectionConflict { name: "products".into() }
    );
    assert_eq!(db.collection("products").unwrap().config(), config());
}

#[test]
fn step_2_upsert_counts_and_stored_vectors() {
    let (_db, products, pts) = loaded();
    products.flush().unwrap();
    assert_eq!(products.count(None).unwrap(), N as usize);
    assert_eq!(products.vector_count("text").unwrap(), N as usize);
    assert_eq!(
        products.vector_count("image").unwrap(),
        pts.iter().filter(|p| p.vectors.contains_key("image")).count()
    );
    // Cosine vectors come back normalised; UUID and integer ids both work.
    let got = products.get(&[id_of(4), id_of(7)], true, true).unwrap();
    assert_eq!(got.len(), 2);
    let v = &got[0].vectors.as_ref().unwrap()["text"];
    assert!((v.iter().map(|x| x * x).sum::<f32>() - 1.0).abs() < 1e-5);
    assert!((cosine(v, &pts[4].vectors["text"]) - 1.0).abs() < 1e-5);
    assert_eq!(got[1].payload.as_ref().unwrap()["name"], "item 7");
}

#[test]
fn step_3_search_each_space_with_limit_offset_threshold() {
    let (_db, products, pts) = loaded();
    let q = Rng::new(7).vector(384);
    let truth = brute(&pts, "text", &q, |_| true);
    let exact =
        products.search(&SearchRequest::new("text", q.clone()).limit(5).offset(2).params(EXACT)).unwrap();
    assert_eq!(ids(&exact, |h| h.id), truth[2..7].iter().map(|t| t.0).collect::<Vec<_>>());
    for (h, t) in exact.iter().zip(&truth[2..7]) {
        assert!((h.score - t.1).abs() < 1e-5);
    }
    let threshold = truth[3].1;
    let above = products
        .search(&SearchRequest::new("text", q.clone()).limit(10).score_threshold(threshold).params(EXACT))
        .unwrap();
    assert_eq!(above.len(), 3, "strict threshold keeps the three scores above the 4th");
    // Through the graph: recall against brute force.
    let graph = products.search(&SearchRequest::new("text", q.clone()).limit(10)).unwrap();
    let truth10: HashSet<PointId> = truth[..10].iter().map(|t| t.0).collect();
    assert!(graph.iter().filter(|h| truth10.contains(&h.id)).count() >= 9);
    let image_q = Rng::new(8).vector(512);
    let image =
        products.search(&SearchRequest::new("image", image_q.clone()).limit(5).params(EXACT)).unwrap();
    assert_eq!(
        ids(&image, |h| h.id),
        brute(&pts, "image", &image_q, |_| true)[..5].iter().map(|t| t.0).collect::<Vec<_>>()
    );
}

fn two(t: &[f32], i: &[f32], limit: usize) -> Vec<Prefetch> {
    vec![
        Prefetch::nearest("text", t.to_vec(), limit).params(EXACT),
        Prefetch::nearest("image", i.to_vec(), limit).params(EXACT),
    ]
}

#[test]
fn step_4_and_6_server_side_fusion_equals_client_side_on_brute_force_lists() {
    let (_db, products, pts) = loaded();
    let (t, i) = (Rng::new(9).vector(384), Rng::new(10).vector(512));
    let lists = vec![
        brute(&pts, "text", &t, |_| true)[..20].to_vec(),
        brute(&pts, "image", &i, |_| true)[..20].to_vec(),
    ];
    for (fusion, expected) in [
        (Fusion::rrf(), qdrant::rrf(&lists, 2, None).unwrap()),
        (Fusion::dbsf(), qdrant::dbsf(&lists, None).unwrap()),
        (
            Fusion::Rrf { k: 2, weights: Some(vec![1.0, 0.3]) },
            qdrant::rrf(&lists, 2, Some(&[1.0, 0.3])).unwrap(),
        ),
    ] {
        let got = products.query(QueryRequest::fusion(fusion.clone(), two(&t, &i, 20)).limit(10)).unwrap();
        assert_eq!(got.len(), 10);
        for (g, e) in got.iter().zip(&expected) {
            assert_eq!(g.id, e.id, "{fusion:?}");
            assert!((g.score - e.score).abs() < 1e-4, "{fusion:?}: {} vs {}", g.score, e.score);
        }
    }
}

#[test]
fn step_5_filters_three_ways() {
    let (_db, products, pts) = loaded();
    products.create_payload_index("category", braid::IndexKind::Keyword).unwrap();
    let (t, i) = (Rng::new(11).vector(384), Rng::new(12).vector(512));
    let shoes = Filter::must([field("category").eq("shoes"), field("price").lte(300.0)]);
    let keep = |p: &Value| p["category"] == "shoes" && p["price"].as_f64().unwrap() <= 300.0;
    let inside: Vec<Prefetch> = two(&t, &i, 20).into_iter().map(|p| p.filter(shoes.clone())).collect();
    let a = products.query(QueryRequest::fusion(Fusion::rrf(), inside).limit(10)).unwrap();
    let b = products
        .query(QueryRequest::fusion(Fusion::rrf(), two(&t, &i, 20)).filter(shoes.clone()).limit(10))
        .unwrap();
    assert_eq!(a, b);
    let expected = qdrant::rrf(
        &[brute(&pts, "text", &t, keep)[..20].to_vec(), brute(&pts, "image", &i, keep)[..20].to_vec()],
        2,
        None,
    )
    .unwrap();
    assert_eq!(ids(&a, |h| h.id), ids(&expected[..10], |e| e.id));
    let gated = products
        .query(QueryRequest::fusion(Fusion::rrf(), two(&t, &i, 20)).post_filter(shoes).limit(10))
        .unwrap();
    let all = products
        .query(
            QueryPoints::from(QueryRequest::fusion(Fusion::rrf(), two(&t, &i, 20)).limit(10))
                .with_payload(true),
        )
        .unwrap();
    let kept: Vec<PointId> = all.iter().filter(|h| keep(h.payload.as_ref().unwrap())).map(|h| h.id).collect();
    assert_eq!(ids(&gated, |h| h.id), kept);
}

#[test]
fn step_7_batches_equal_single_calls() {
    let (_db, products, _) = loaded();
    let (t, i) = (Rng::new(13).vector(384), Rng::new(14).vector(512));
    let searches = vec![
        SearchRequest::new("text", t.clone()).limit(3),
        SearchRequest::new("image", i.clone()).limit(4),
        SearchRequest::new("text", i.clone()),
    ];
    let batch = products.search_batch(&searches).unwrap();
    assert_eq!(batch[0], products.search(&searches[0]));
    assert_eq!(batch[1], products.search(&searches[1]));
    assert!(matches!(batch[2], Err(Error::Query(_))), "a bad search fails alone");
    let queries: Vec<QueryPoints> = vec![
        QueryRequest::fusion(Fusion::rrf(), two(&t, &i, 10)).into(),
        QueryRequest::nearest("image", i).into(),
    ];
    let batch = products.query_batch(queries.clone()).unwrap();
    for (q, b) in queries.into_iter().zip(batch) {
        assert_eq!(products.query(q), b);
    }
}

#[test]
fn step_8_selectors() {
    let (_db, products, _) = loaded();
    let q = Rng::new(15).vector(384);
    let hit = &products
        .search(
            &SearchRequest::new("text", q)
                .limit(1)
                .with_payload(WithPayload::Include(vec!["name".into()]))
                .with_vectors(WithVectors::Names(vec!["image".into()])),
        )
        .unwrap()[0];
    assert_eq!(hit.payload.as_ref().unwrap().as_object().unwrap().keys().collect::<Vec<_>>(), vec!["name"]);
    let vectors = hit.vectors.as_ref().unwrap();
    assert!(vectors.keys().all(|k| k == "image"));
    let record = &products
        .get(&[id_of(0)], WithPayload::Exclude(vec!["description".into(), "price".into()]), false)
        .unwrap()[0];
    assert_eq!(record.payload.as_ref().unwrap(), &json!({"name": "item 0", "category": "apparel"}));
    assert!(record.vectors.is_none());
}

#[test]
fn step_9_update_and_delete_vectors_and_payload_operations() {
    let (_db, products, pts) = loaded();
    let target = id_of(10);
    let before = products.get(&[target], true, true).unwrap().remove(0);
    let new_image = Rng::new(16).vector(512);
    products.update_vectors(vec![(target, [("image".to_string(), new_image.clone())].into())]).unwrap();
    let after = products.get(&[target], true, true).unwrap().remove(0);
    assert_eq!(before.payload, after.payload);
    assert_eq!(before.vectors.as_ref().unwrap()["text"], after.vectors.as_ref().unwrap()["text"]);
    let top =
        products.search(&SearchRequest::new("image", new_image.clone()).limit(1).params(EXACT)).unwrap();
    assert_eq!(top[0].id, target);
    products.delete_vectors(vec![target], &["image"]).unwrap();
    assert!(
        products
            .search(&SearchRequest::new("image", new_image).limit(N as usize))
            .unwrap()
            .iter()
            .all(|h| h.id != target)
    );
    assert_eq!(
        products.vector_count("image").unwrap(),
        pts.iter().filter(|p| p.vectors.contains_key("image")).count() - 1
    );
    // Payload by ids and by filter.
    products.set_payload(vec![target], json!({"on_sale": true})).unwrap();
    products.set_payload(Filter::must([field("category").eq("home")]), json!({"room": "any"})).unwrap();
    assert_eq!(
        products.count(Some(&Filter::must([field("room").eq("any")]))).unwrap(),
        (0..N).filter(|i| i % 3 == 2).count()
    );
    products.delete_payload(vec![target], &["description"]).unwrap();
    let p = products.get(&[target], true, false).unwrap().remove(0).payload.unwrap();
    assert_eq!(p["on_sale"], true);
    assert!(p.get("description").is_none());
    products.overwrite_payload(vec![target], json!({"only": 1})).unwrap();
    assert_eq!(
        products.get(&[target], true, false).unwrap()[0].payload.as_ref().unwrap(),
        &json!({"only": 1})
    );
    products.clear_payload(Filter::must([field("only").eq(1)])).unwrap();
    assert_eq!(products.get(&[target], true, false).unwrap()[0].payload.as_ref().unwrap(), &json!({}));
    assert_eq!(
        products.update_vectors(vec![(PointId::Num(99_999), Default::default())]).unwrap_err(),
        Error::PointNotFound { id: PointId::Num(99_999) }
    );
}

#[test]
fn step_10_nested_prefetch_rescored_by_text() {
    let (_db, products, pts) = loaded();
    let (t, i) = (Rng::new(17).vector(384), Rng::new(18).vector(512));
    let got = products
        .query(
            QueryRequest::rescore(
                "text",
                t.clone(),
                vec![Prefetch::fusion(Fusion::rrf(), two(&t, &i, 20), 15)],
            )
            .limit(10),
        )
        .unwrap();
    let lists = vec![
        brute(&pts, "text", &t, |_| true)[..20].to_vec(),
        brute(&pts, "image", &i, |_| true)[..20].to_vec(),
    ];
    let candidates: HashSet<PointId> =
        qdrant::rrf(&lists, 2, None).unwrap().into_iter().take(15).map(|f| f.id).collect();
    let expected: Vec<(PointId, f32)> = brute(&pts, "text", &t, |_| true)
        .into_iter()
        .filter(|(id, _)| candidates.contains(id))
        .take(10)
        .collect();
    assert_eq!(ids(&got, |h| h.id), expected.iter().map(|e| e.0).collect::<Vec<_>>());
    for (g, e) in got.iter().zip(&expected) {
        assert!((g.score - e.1).abs() < 1e-5, "final scores are cosine");
    }
}

#[test]
fn step_11_per_prefetch_params_fused_by_dbsf() {
    let (_db, products, pts) = loaded();
    let (t, i) = (Rng::new(19).vector(384), Rng::new(20).vector(512));
    let request = QueryRequest::fusion(
        Fusion::dbsf(),
        vec![
            Prefetch::nearest("text", t.clone(), 20).params(SearchParams::ef(64)),
            Prefetch::nearest("image", i.clone(), 20)
                .params(SearchParams { exact: true, ..SearchParams::ef(256) }),
        ],
    )
    .limit(10);
    let got = products.query(request.clone()).unwrap();
    let expected = qdrant::dbsf(
        &[
            brute(&pts, "text", &t, |_| true)[..20].to_vec(),
            brute(&pts, "image", &i, |_| true)[..20].to_vec(),
        ],
        None,
    )
    .unwrap();
    let top: HashSet<PointId> = expected[..10].iter().map(|e| e.id).collect();
    // The text leaf goes through the graph: allow one miss.
    assert!(got.iter().filter(|h| top.contains(&h.id)).count() >= 9);
    let plan = products.explain(&request).unwrap().to_string();
    assert!(plan.contains("Exact: requested by params.exact"), "{plan}");
}

#[test]
fn step_12_info_scroll_count_delete_list() {
    let (db, products, pts) = loaded();
    let info = products.info();
    assert_eq!((info.status, info.points_count), ("green", N as usize));
    assert_eq!(info.vectors_count["text"], N as usize);
    let shoes = Filter::must([field("category").eq("shoes")]);
    let mut expected: Vec<PointId> =
        pts.iter().filter(|p| p.payload["category"] == "shoes").map(|p| p.id).collect();
    expected.sort();
    let mut seen = Vec::new();
    let mut next = None;
    loop {
        let (page, after) = products.scroll(Some(&shoes), 7, next, false, false).unwrap();
        seen.extend(page.iter().map(|r| r.id));
        match after {
            Some(n) => next = Some(n),
            None => break,
        }
    }
    assert_eq!(seen, expected);
    assert_eq!(products.count(Some(&shoes)).unwrap(), expected.len());
    assert_eq!(products.delete(vec![id_of(1), id_of(2), PointId::Num(123_456)]).unwrap(), 2);
    let cheap = Filter::must([field("price").lt(50.0)]);
    let cheap_count = products.count(Some(&cheap)).unwrap();
    assert_eq!(products.delete(cheap.clone()).unwrap(), cheap_count);
    assert_eq!(products.count(Some(&cheap)).unwrap(), 0);
    assert_eq!(products.count(None).unwrap(), N as usize - 2 - cheap_count);
    assert_eq!(db.list(), vec!["products".to_string()]);
    assert!(db.delete_collection("products").unwrap());
    assert!(!db.collection_exists("products"));
    assert_eq!(db.collection("products").unwrap_err(), Error::CollectionNotFound { name: "products".into() });
}

#[test]
fn readers_and_a_writer_at_once() {
    let (_db, products, _) = loaded();
    let q = Rng::new(21).vector(384);
    std::thread::scope(|s| {
        let writer = products.clone();
        s.spawn(move || {
            let mut rng = Rng::new(22);
            for i in 0..50u64 {
                writer.upsert(vec![PointStruct::new(10_000 + i).vector("text", rng.vector(384))]).unwrap();
            }
        });
        for _ in 0..2 {
            let reader = products.clone();
            let q = q.clone();
            s.spawn(move || {
                for _ in 0..30 {
                    assert_eq!(
                        reader.search(&SearchRequest::new("text", q.clone()).limit(5)).unwrap().len(),
                        5
                    );
                }
            });
        }
    });
    assert_eq!(products.count(None).unwrap(), N as usize + 50);
}
