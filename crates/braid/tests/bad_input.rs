//! Bad input, one row each: a typed error, and the collection unchanged afterwards.

use braid::{
    CollectionConfig, Database, Distance, Document, Error, Filter, Fusion, PointId, PointStruct,
    PointVectors, Prefetch, QueryRequest, SearchRequest, SparseVector, SparseVectorParams, VectorParams,
    field,
};
use serde_json::json;

fn setup() -> (Database, braid::Collection) {
    let db = Database::in_memory();
    let c = db
        .create_collection(
            "c",
            CollectionConfig::new()
                .vector("text", VectorParams::new(3, Distance::Cosine))
                .vector("image", VectorParams::new(2, Distance::Euclid))
                .sparse_vector("bm25", SparseVectorParams::idf()),
        )
        .unwrap();
    c.upsert(
        (0..20u64)
            .map(|i| {
                PointStruct::new(i)
                    .vector("text", vec![1.0 + i as f32, 0.5, -0.25 * i as f32])
                    .vector("image", vec![i as f32, 1.0])
                    .document("bm25", Document::new(format!("point {i} river bank"), "bm25"))
                    .payload(json!({"n": i, "tag": if i % 2 == 0 { "even" } else { "odd" }}))
            })
            .collect(),
    )
    .unwrap();
    (db, c)
}

/// Everything observable that a refused call must not change.
fn snapshot(c: &braid::Collection) -> String {
    let (records, _) = c.scroll(None, 1000, None, true, true).unwrap();
    let search = c.search(&SearchRequest::new("text", vec![1.0, 0.0, 0.0]).limit(5)).unwrap();
    format!("{records:?}{search:?}{:?}", c.info())
}

type Case =
    (&'static str, Box<dyn Fn(&Database, &braid::Collection) -> Result<(), Error>>, fn(&Error) -> bool);

/// Reads of nothing answer nothing, as in Qdrant (a batch of no queries, no ids).
#[test]
fn empty_reads_have_empty_answers() {
    let (_db, c) = setup();
    assert!(c.query_batch(vec![]).unwrap().is_empty());
    assert!(c.search_batch(&[]).unwrap().is_empty());
    assert!(c.get(&[], true, true).unwrap().is_empty());
}

#[test]
fn every_bad_input_is_a_typed_error_and_changes_nothing() {
    let near = |v: Vec<f32>| Prefetch::nearest("text", v, 10);
    let cases: Vec<Case> = vec![
        (
            "upsert: wrong dimension",
            Box::new(|_, c| c.upsert(vec![PointStruct::new(1u64).vector("text", vec![1.0; 4])])),
            |e| matches!(e, Error::Vector { .. }),
        ),
        (
            "upsert: unknown vector name",
            Box::new(|_, c| c.upsert(vec![PointStruct::new(1u64).vector("audio", vec![1.0])])),
            |e| matches!(e, Error::UnknownVector { .. }),
        ),
        (
            "upsert: NaN",
            Box::new(|_, c| c.upsert(vec![PointStruct::new(1u64).vector("text", vec![f32::NAN, 1.0, 1.0])])),
            |e| matches!(e, Error::Vector { .. }),
        ),
        (
            "upsert: infinity",
            Box::new(|_, c| c.upsert(vec![PointStruct::new(1u64).vector("image", vec![f32::INFINITY, 1.0])])),
            |e| matches!(e, Error::Vector { .. }),
        ),
        (
            "upsert: zero vector under Cosine",
            Box::new(|_, c| c.upsert(vec![PointStruct::new(1u64).vector("text", vec![0.0; 3])])),
            |e| matches!(e, Error::Vector { .. }),
        ),
        (
            "upsert: payload not an object",
            Box::new(|_, c| c.upsert(vec![PointStruct::new(1u64).payload(json!([1, 2]))])),
            |e| matches!(e, Error::PayloadNotObject),
        ),
        (
            "upsert: one bad point refuses the batch",
            Box::new(|_, c| {
                c.upsert(vec![
                    PointStruct::new(100u64).vector("text", vec![1.0; 3]),
                    PointStruct::new(101u64).vector("text", vec![1.0; 2]),
                ])
            }),
            |e| matches!(e, Error::Vector { .. }),
        ),
        ("upsert: empty batch", Box::new(|_, c| c.upsert(vec![])), |e| matches!(e, Error::EmptyBatch)),
        (
            "upsert: oversized batch",
            Box::new(|_, c| c.upsert(vec![PointStruct::new(1u64); braid::MAX_BATCH + 1])),
            |e| matches!(e, Error::BatchTooLarge { .. }),
        ),
        ("unknown collection", Box::new(|db, _| db.collection("nope").map(drop)), |e| {
            matches!(e, Error::CollectionNotFound { .. })
        }),
        (
            "duplicate collection with other config",
            Box::new(|db, _| {
                db.get_or_create(
                    "c",
                    CollectionConfig::new().vector("text", VectorParams::new(3, Distance::Dot)),
                )
                .map(drop)
            }),
            |e| matches!(e, Error::CollectionConflict { .. }),
        ),
        (
            "create an existing collection",
            Box::new(|db, c| db.create_collection("c", c.config()).map(drop)),
            |e| matches!(e, Error::CollectionConflict { .. }),
        ),
        (
            "space of size 0",
            Box::new(|db, _| {
                db.create_collection(
                    "d",
                    CollectionConfig::new().vector("v", VectorParams::new(0, Distance::Dot)),
                )
                .map(drop)
            }),
            |e| matches!(e, Error::InvalidConfig { .. }),
        ),
        (
            "hnsw m = 1",
            Box::new(|db, _| {
                db.create_collection(
                    "d",
                    CollectionConfig::new().vector("v", VectorParams::new(2, Distance::Dot).hnsw(1, 10)),
                )
                .map(drop)
            }),
            |e| matches!(e, Error::InvalidConfig { .. }),
        ),
        (
            "collection name with a slash",
            Box::new(|db, c| db.create_collection("a/b", c.config()).map(drop)),
            |e| matches!(e, Error::InvalidName { .. }),
        ),
        ("collection named .", Box::new(|db, c| db.create_collection(".", c.config()).map(drop)), |e| {
            matches!(e, Error::InvalidName { .. })
        }),
        ("collection named ..", Box::new(|db, c| db.get_or_create("..", c.config()).map(drop)), |e| {
            matches!(e, Error::InvalidName { .. })
        }),
        (
            "a Euclid vector whose squares overflow",
            Box::new(|_, c| c.upsert(vec![PointStruct::new(9u64).vector("image", vec![3e38; 2])])),
            |e| matches!(e, Error::Vector { source: braid::distance::VectorError::TooLarge { .. }, .. }),
        ),
        (
            "search: wrong dimension",
            Box::new(|_, c| c.search(&SearchRequest::new("text", vec![1.0; 2])).map(drop)),
            |e| matches!(e, Error::Query(_)),
        ),
        (
            "search: unknown vector name",
            Box::new(|_, c| c.search(&SearchRequest::new("audio", vec![1.0; 3])).map(drop)),
            |e| matches!(e, Error::Query(_)),
        ),
        (
            "search: NaN",
            Box::new(|_, c| c.search(&SearchRequest::new("text", vec![f32::NAN; 3])).map(drop)),
            |e| matches!(e, Error::Query(_)),
        ),
        (
            "search: zero vector under Cosine",
            Box::new(|_, c| c.search(&SearchRequest::new("text", vec![0.0; 3])).map(drop)),
            |e| matches!(e, Error::Query(_)),
        ),
        (
            "search: limit 0",
            Box::new(|_, c| c.search(&SearchRequest::new("text", vec![1.0; 3]).limit(0)).map(drop)),
            |e| matches!(e, Error::Query(_)),
        ),
        (
            "search: huge limit",
            Box::new(|_, c| c.search(&SearchRequest::new("text", vec![1.0; 3]).limit(usize::MAX)).map(drop)),
            |e| matches!(e, Error::Query(_)),
        ),
        (
            "search: huge offset",
            Box::new(|_, c| c.search(&SearchRequest::new("text", vec![1.0; 3]).offset(usize::MAX)).map(drop)),
            |e| matches!(e, Error::Query(_)),
        ),
        (
            "search: NaN threshold",
            Box::new(|_, c| {
                c.search(&SearchRequest::new("text", vec![1.0; 3]).score_threshold(f32::NAN)).map(drop)
            }),
            |e| matches!(e, Error::Query(_)),
        ),
        (
            "query: fusion without prefetch",
            Box::new(|_, c| c.query(QueryRequest::fusion(Fusion::rrf(), vec![])).map(drop)),
            |e| matches!(e, Error::Query(_)),
        ),
        (
            "query: prefetch without query",
            Box::new(move |_, c| {
                c.query(QueryRequest { prefetch: vec![near(vec![1.0; 3])], ..QueryRequest::default() })
                    .map(drop)
            }),
            |e| matches!(e, Error::Query(_)),
        ),
        (
            "query: using missing on a multi-space collection",
            Box::new(|_, c| {
                c.query(QueryRequest {
                    query: Some(braid::Query::Nearest(vec![1.0; 3])),
                    ..QueryRequest::default()
                })
                .map(drop)
            }),
            |e| matches!(e, Error::Query(_)),
        ),
        (
            "query: RRF weights count",
            Box::new(move |_, c| {
                c.query(QueryRequest::fusion(
                    Fusion::Rrf { k: 2, weights: Some(vec![1.0, 2.0]) },
                    vec![near(vec![1.0; 3])],
                ))
                .map(drop)
            }),
            |e| matches!(e, Error::Query(_)),
        ),
        (
            "query: RRF k = 0",
            Box::new(move |_, c| {
                c.query(QueryRequest::fusion(Fusion::Rrf { k: 0, weights: None }, vec![near(vec![1.0; 3])]))
                    .map(drop)
            }),
            |e| matches!(e, Error::Query(_)),
        ),
        (
            "search batch: oversized",
            Box::new(|_, c| {
                c.search_batch(&vec![SearchRequest::new("text", vec![1.0; 3]); braid::query::MAX_BATCH + 1])
                    .map(drop)
            }),
            |e| matches!(e, Error::Query(_)),
        ),
        (
            "malformed filter JSON",
            Box::new(|_, _| {
                Filter::from_json_str(r#"{"must": [{"key": "n", "range": {}}]}"#)
                    .map(drop)
                    .map_err(Error::from)
            }),
            |e| matches!(e, Error::Filter(_)),
        ),
        (
            "filter with an unknown operator",
            Box::new(|_, _| {
                Filter::from_json_str(r#"{"must": [{"key": "n", "match": {"like": 1}}]}"#)
                    .map(drop)
                    .map_err(Error::from)
            }),
            |e| matches!(e, Error::Filter(_)),
        ),
        (
            "id of the wrong type",
            Box::new(|_, _| braid::filter::parse_point_id(&json!(-3), "id").map(drop).map_err(Error::from)),
            |e| matches!(e, Error::Filter(_)),
        ),
        (
            "update_vectors: unknown point",
            Box::new(|_, c| {
                c.update_vectors(vec![(PointId::Num(999), [("text".to_string(), vec![1.0; 3])].into())])
            }),
            |e| matches!(e, Error::PointNotFound { .. }),
        ),
        (
            "update_vectors: wrong dimension",
            Box::new(|_, c| {
                c.update_vectors(vec![(PointId::Num(1), [("text".to_string(), vec![1.0; 7])].into())])
            }),
            |e| matches!(e, Error::Vector { .. }),
        ),
        (
            "delete_vectors: unknown name",
            Box::new(|_, c| c.delete_vectors(vec![PointId::Num(1)], &["audio"])),
            |e| matches!(e, Error::UnknownVector { .. }),
        ),
        (
            "set_payload: not an object",
            Box::new(|_, c| c.set_payload(vec![PointId::Num(1)], json!("x"))),
            |e| matches!(e, Error::PayloadNotObject),
        ),
        (
            "overwrite_payload: not an object",
            Box::new(|_, c| c.overwrite_payload(vec![PointId::Num(1)], json!(3))),
            |e| matches!(e, Error::PayloadNotObject),
        ),
        (
            "payload index: bad key path",
            Box::new(|_, c| c.create_payload_index("a..b", braid::IndexKind::Keyword)),
            |e| matches!(e, Error::Index(_)),
        ),
        ("scroll: limit 0", Box::new(|_, c| c.scroll(None, 0, None, false, false).map(drop)), |e| {
            matches!(e, Error::Limit { .. })
        }),
        ("vector_count: unknown space", Box::new(|_, c| c.vector_count("audio").map(drop)), |e| {
            matches!(e, Error::UnknownVector { .. })
        }),
        (
            "upsert: a dense vector for a sparse space",
            Box::new(|_, c| c.upsert(vec![PointStruct::new(1u64).vector("bm25", vec![1.0; 3])])),
            |e| matches!(e, Error::WrongKind { is: "sparse", .. }),
        ),
        (
            "upsert: a sparse vector for a dense space",
            Box::new(|_, c| c.upsert(vec![PointStruct::new(1u64).sparse("text", SparseVector::empty())])),
            |e| matches!(e, Error::WrongKind { is: "dense", .. }),
        ),
        (
            "upsert: a sparse vector for an unknown space",
            Box::new(|_, c| c.upsert(vec![PointStruct::new(1u64).sparse("splade", SparseVector::empty())])),
            |e| matches!(e, Error::UnknownVector { .. }),
        ),
        (
            "upsert: an unknown model",
            Box::new(|_, c| {
                c.upsert(vec![PointStruct::new(1u64).document("bm25", Document::new("x", "splade"))])
            }),
            |e| matches!(e, Error::Document { source: braid::TextError::UnknownModel { .. }, .. }),
        ),
        (
            "upsert: an unknown BM25 option",
            Box::new(|_, c| {
                let doc = Document::new("x", "bm25").option("kk", json!(1));
                c.upsert(vec![PointStruct::new(1u64).document("bm25", doc)])
            }),
            |e| matches!(e, Error::Document { source: braid::TextError::BadOption { .. }, .. }),
        ),
        (
            "upsert: an oversized document",
            Box::new(|_, c| {
                let doc = Document::new("a ".repeat(braid::text::MAX_DOCUMENT_BYTES), "bm25");
                c.upsert(vec![PointStruct::new(1u64).document("bm25", doc)])
            }),
            |e| matches!(e, Error::Document { source: braid::TextError::DocumentTooLarge { .. }, .. }),
        ),
        (
            "upsert: a sparse vector and a document for one space",
            Box::new(|_, c| {
                let p = PointStruct::new(1u64).sparse("bm25", SparseVector::empty());
                c.upsert(vec![p.document("bm25", Document::new("x", "bm25"))])
            }),
            |e| matches!(e, Error::InvalidConfig { .. }),
        ),
        (
            "update vectors: a document for a dense space",
            Box::new(|_, c| {
                c.update_vectors(vec![PointVectors::new(1u64).document("text", Document::new("x", "bm25"))])
            }),
            |e| matches!(e, Error::WrongKind { .. }),
        ),
        (
            "query: a sparse vector for a dense space",
            Box::new(|_, c| c.query(QueryRequest::sparse("text", SparseVector::empty())).map(drop)),
            |e| matches!(e, Error::Query(braid::query::QueryError::WrongKind { .. })),
        ),
        (
            "query: a dense vector for a sparse space",
            Box::new(|_, c| c.query(QueryRequest::nearest("bm25", vec![1.0; 3])).map(drop)),
            |e| matches!(e, Error::Query(braid::query::QueryError::WrongKind { .. })),
        ),
        (
            "query: a sparse vector without using",
            Box::new(|_, c| {
                c.query(QueryRequest { using: None, ..QueryRequest::sparse("bm25", SparseVector::empty()) })
                    .map(drop)
            }),
            |e| matches!(e, Error::Query(braid::query::QueryError::SparseWithoutUsing { .. })),
        ),
        (
            "query: a document with an unknown model",
            Box::new(|_, c| c.query(QueryRequest::document("bm25", Document::new("x", "gpt"))).map(drop)),
            |e| matches!(e, Error::Query(braid::query::QueryError::Document(_))),
        ),
        (
            "text index: an unknown stemmer language",
            Box::new(|_, c| {
                let options =
                    braid::text::TextOptions { stemmer: Some("klingon".into()), ..Default::default() };
                c.create_text_index("tag", options)
            }),
            |e| matches!(e, Error::Index(braid::filter::IndexError::Text(_))),
        ),
        (
            "text index: a key holding numbers",
            Box::new(|_, c| c.create_text_index("n", braid::text::TextOptions::default())),
            |e| matches!(e, Error::Index(braid::filter::IndexError::NotText { .. })),
        ),
        (
            "text index: a keyword index on the key already",
            Box::new(|_, c| c.create_text_index("tag", braid::text::TextOptions::default())),
            |e| matches!(e, Error::Index(braid::filter::IndexError::KindConflict { .. })),
        ),
        (
            "delete by ids: oversized",
            Box::new(|_, c| c.delete(vec![PointId::Num(1); braid::MAX_BATCH + 1]).map(drop)),
            |e| matches!(e, Error::BatchTooLarge { .. }),
        ),
    ];
    assert!(cases.len() >= 30);
    for (what, call, check) in &cases {
        let (db, c) = setup();
        c.create_payload_index("tag", braid::IndexKind::Keyword).unwrap();
        let before = snapshot(&c);
        let err = call(&db, &c).expect_err(what);
        assert!(check(&err), "{what}: unexpected {err:?}");
        assert!(!err.to_string().is_empty());
        assert_eq!(snapshot(&c), before, "{what} changed the collection");
        assert_eq!(db.list(), vec!["c".to_string()], "{what} changed the collections");
    }
    // A valid filter on a missing key is not an error: it matches nothing.
    let (_, c) = setup();
    assert_eq!(c.count(Some(&Filter::must([field("missing").eq("x")]))).unwrap(), 0);
}
