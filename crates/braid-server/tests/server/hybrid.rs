//! Hybrid search served (issue #15): sparse spaces, BM25 documents and fused
//! keyword + dense queries through REST (reqwest) and gRPC (the official Rust
//! `qdrant-client`) against `braid serve`, compared with the embedded facade on the
//! same data (whose answers `crates/braid/tests/hybrid.rs` checks against naive
//! references).

use crate::common;

use std::collections::HashMap;

use braid::{
    CollectionConfig, Database, Distance, Document, Filter, Fusion, PointId, PointStruct, Prefetch,
    QueryRequest, SearchParams, SparseVectorParams, VectorParams, field,
};
use braid_testkit::Rng;
use qdrant_client::Qdrant;
use qdrant_client::qdrant::{
    self as q, CreateCollectionBuilder, Modifier, PrefetchQueryBuilder, Query, QueryPointsBuilder,
    SparseVectorParamsBuilder, SparseVectorsConfigBuilder, UpsertPointsBuilder, VectorParamsBuilder,
    VectorsConfigBuilder,
};
use serde_json::{Value, json};

use common::*;

const DIM: usize = 16;
const WORDS: &[&str] = &[
    "the", "river", "rivers", "bank", "banks", "money", "stone", "light", "water", "music", "paper", "glass",
    "horse", "horses", "city", "garden", "winter", "of", "and", "running", "runs", "market",
];

fn passage(rng: &mut Rng) -> String {
    let n = 2 + (rng.next_u64() % 12) as usize;
    (0..n).map(|_| WORDS[(rng.next_u64() % WORDS.len() as u64) as usize]).collect::<Vec<_>>().join(" ")
}

struct Data {
    texts: Vec<String>,
    dense: Vec<Vec<f32>>,
}

fn data() -> Data {
    let mut rng = Rng::new(0x5EA5);
    let texts: Vec<String> = (0..400).map(|_| passage(&mut rng)).collect();
    let dense = (0..400).map(|_| rng.vector(DIM)).collect();
    Data { texts, dense }
}

/// The same collection embedded: what the served answers are compared with.
fn embedded(d: &Data) -> braid::Collection {
    let db = Database::in_memory();
    let c = db
        .create_collection(
            "docs",
            CollectionConfig::new()
                .vector("dense", VectorParams::new(DIM, Distance::Cosine))
                .sparse_vector("bm25", SparseVectorParams::idf()),
        )
        .unwrap();
    let points = (0..d.texts.len())
        .map(|i| {
            PointStruct::new(i as u64)
                .vector("dense", d.dense[i].clone())
                .document("bm25", Document::new(d.texts[i].clone(), "bm25"))
                .payload(json!({"group": i % 3, "text": d.texts[i]}))
        })
        .collect();
    c.upsert(points).unwrap();
    c.create_text_index("text", stemmed()).unwrap();
    c
}

/// The text index both sides create: English stopwords and stemming.
fn stemmed() -> braid::text::TextOptions {
    braid::text::TextOptions {
        stopwords: Some(braid::text::Stopwords { languages: vec!["english".into()], custom: vec![] }),
        stemmer: Some("english".into()),
        ..Default::default()
    }
}

/// The facade's answer to the served hybrid query: keyword and exact dense prefetches
/// of 30, filtered to `group`, fused, top 10.
fn local_hybrid(
    c: &braid::Collection,
    fusion: Fusion,
    text: &str,
    q: &[f32],
    group: i64,
) -> Vec<(PointId, f32)> {
    let exact = SearchParams::EXACT;
    let request = QueryRequest::fusion(
        fusion,
        vec![
            Prefetch::document("bm25", Document::new(text, "bm25"), 30),
            Prefetch::nearest("dense", q.to_vec(), 30).params(exact),
        ],
    )
    .filter(Filter::must([field("group").eq(group)]))
    .limit(10);
    local(c.query(request).unwrap())
}

fn local(points: Vec<braid::ScoredPoint>) -> Vec<(PointId, f32)> {
    points.into_iter().map(|p| (p.id, p.score)).collect()
}

fn rest_hits(v: &Value) -> Vec<(PointId, f32)> {
    let list = v.get("points").unwrap_or(v);
    list.as_array()
        .expect("a list of points")
        .iter()
        .map(|p| (serde_json::from_value(p["id"].clone()).unwrap(), p["score"].as_f64().unwrap() as f32))
        .collect()
}

fn close(a: &[(PointId, f32)], b: &[(PointId, f32)], what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: {a:?} vs {b:?}");
    for (x, y) in a.iter().zip(b) {
        assert_eq!(x.0, y.0, "{what}: {a:?} vs {b:?}");
        assert!((x.1 - y.1).abs() <= 1e-5 * x.1.abs().max(1.0), "{what}: {a:?} vs {b:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hybrid_search_through_rest_answers_as_the_facade() {
    let d = data();
    let local_c = embedded(&d);
    let running = start(None, None).await;
    let rest = Rest::to(&running);
    rest.put(
        "/collections/docs",
        json!({"vectors": {"dense": {"size": DIM, "distance": "Cosine"}},
               "sparse_vectors": {"bm25": {"modifier": "idf"}}}),
    )
    .await;
    // Half as documents Braid embeds, half as the sparse vectors a client computed.
    let bm25 = braid::Bm25::new();
    let points: Vec<Value> = (0..d.texts.len())
        .map(|i| {
            let sparse = if i % 2 == 0 {
                json!({"text": d.texts[i], "model": "qdrant/bm25"})
            } else {
                let v = bm25.document(&d.texts[i]);
                json!({"indices": v.indices(), "values": v.values()})
            };
            json!({"id": i, "vector": {"dense": d.dense[i], "bm25": sparse}, "payload": {"group": i % 3, "text": d.texts[i]}})
        })
        .collect();
    rest.put("/collections/docs/points?wait=true", json!({"points": points})).await;

    rest.put(
        "/collections/docs/index?wait=true",
        json!({"field_name": "text", "field_schema": {"type": "text", "tokenizer": "word", "lowercase": true,
               "stopwords": "english", "stemmer": {"type": "snowball", "language": "english"}}}),
    )
    .await;
    let info = rest.get("/collections/docs").await;
    assert_eq!(info["config"]["params"]["sparse_vectors"], json!({"bm25": {"modifier": "idf"}}));
    assert_eq!(info["payload_schema"]["text"]["params"]["stemmer"]["language"], "english");
    let got = rest.post("/collections/docs/points", json!({"ids": [1], "with_vector": true})).await;
    let want = bm25.document(&d.texts[1]);
    assert_eq!(got[0]["vector"]["bm25"]["indices"], json!(want.indices()));

    let mut rng = Rng::new(7);
    for _ in 0..8 {
        let text = passage(&mut rng);
        let q = rng.vector(DIM);
        // Keyword alone, as a document and as a client-computed sparse query.
        let doc = rest
            .post(
                "/collections/docs/points/query",
                json!({"query": {"text": text, "model": "bm25"}, "using": "bm25", "limit": 10}),
            )
            .await;
        let want = local(
            local_c
                .query(QueryRequest::document("bm25", Document::new(text.clone(), "bm25")).limit(10))
                .unwrap(),
        );
        close(&rest_hits(&doc), &want, "keyword");
        let v = bm25.query(&text);
        let sparse = rest
            .post(
                "/collections/docs/points/query",
                json!({"query": {"indices": v.indices(), "values": v.values()}, "using": "bm25", "limit": 10}),
            )
            .await;
        close(&rest_hits(&sparse), &want, "sparse query");
        let search = rest
            .post(
                "/collections/docs/points/search",
                json!({"vector": {"name": "bm25", "vector": {"indices": v.indices(), "values": v.values()}}, "limit": 10}),
            )
            .await;
        close(&rest_hits(&search), &want, "sparse search");
        // Full-text conditions on the indexed field, stemmed: inside a dense search.
        for kind in ["text", "text_any", "phrase"] {
            let condition = json!({"key": "text", "match": {kind: text}});
            let body = json!({"query": q, "using": "dense", "filter": {"must": [condition]}, "params": {"exact": true}, "limit": 10});
            let got = rest_hits(&rest.post("/collections/docs/points/query", body).await);
            let filter = Filter::from_json(&json!({"must": [condition]})).unwrap();
            let exact = SearchParams::EXACT;
            let want = local_c
                .query(QueryRequest::nearest("dense", q.clone()).filter(filter).params(exact).limit(10))
                .unwrap();
            close(&got, &local(want), kind);
        }
        // Hybrid, filter pushed into both, RRF and DBSF, then the nested form.
        for (fusion, local_fusion) in [("rrf", Fusion::rrf()), ("dbsf", Fusion::dbsf())] {
            let body = json!({
                "prefetch": [
                    {"query": {"text": text, "model": "bm25"}, "using": "bm25", "limit": 30},
                    {"query": q, "using": "dense", "limit": 30, "params": {"exact": true}},
                ],
                "query": {"fusion": fusion},
                "filter": {"must": [{"key": "group", "match": {"value": 1}}]},
                "limit": 10,
            });
            let want = local_hybrid(&local_c, local_fusion, &text, &q, 1);
            close(&rest_hits(&rest.post("/collections/docs/points/query", body).await), &want, fusion);
        }
    }
    // A text update changes the sparse vector, not the dense one.
    rest.put(
        "/collections/docs/points/vectors?wait=true",
        json!({"points": [{"id": 2, "vector": {"bm25": {"text": "winter horses", "model": "bm25"}}}]}),
    )
    .await;
    let got = rest.post("/collections/docs/points", json!({"ids": [2], "with_vector": true})).await;
    let want = bm25.document("winter horses");
    assert_eq!(got[0]["vector"]["bm25"]["indices"], json!(want.indices()));
    let dense: Vec<f32> = serde_json::from_value(got[0]["vector"]["dense"].clone()).unwrap();
    let stored = braid::distance::prepare(Distance::Cosine, DIM, &d.dense[2]).unwrap();
    assert!(dense.iter().zip(&stored).all(|(a, b)| (a - b).abs() < 1e-6), "the dense vector stays");
    // Bad sparse input: each refused with a clear error.
    for (body, words) in [
        (json!({"points": [{"id": 1, "vector": {"bm25": {"indices": [1, 1], "values": [1, 2]}}}]}), "unique"),
        (json!({"points": [{"id": 1, "vector": {"bm25": {"indices": [1], "values": [1, 2]}}}]}), "as many"),
        (json!({"points": [{"id": 1, "vector": {"bm25": [1.0, 2.0]}}]}), "sparse"),
        (json!({"points": [{"id": 1, "vector": {"dense": {"indices": [1], "values": [1]}}}]}), "dense"),
        (json!({"points": [{"id": 1, "vector": {"bm25": {"text": "x", "model": "splade-pp"}}}]}), "bm25"),
        (json!({"points": [{"id": 1, "vector": {"bm25": {"indices": [-1], "values": [1]}}}]}), "indices"),
    ] {
        let (status, v) = rest.call(reqwest::Method::PUT, "/collections/docs/points", Some(body)).await;
        assert_eq!(status, 400, "{v}");
        let message = v["status"]["error"].as_str().unwrap().to_lowercase();
        assert!(message.contains(words), "`{message}` lacks `{words}`");
    }
}

fn grpc_client(running: &Running) -> Qdrant {
    Qdrant::from_url(&format!("http://{}", running.server.grpc_addr()))
        .skip_compatibility_check()
        .build()
        .unwrap()
}

fn grpc_hits(points: &[q::ScoredPoint]) -> Vec<(PointId, f32)> {
    points
        .iter()
        .map(|p| match p.id.as_ref().and_then(|i| i.point_id_options.clone()) {
            Some(q::point_id::PointIdOptions::Num(n)) => (PointId::Num(n), p.score),
            other => panic!("unexpected id {other:?}"),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hybrid_search_through_grpc_with_the_official_client() {
    let d = data();
    let local_c = embedded(&d);
    let running = start(None, None).await;
    let client = grpc_client(&running);
    let mut sparse = SparseVectorsConfigBuilder::default();
    sparse.add_named_vector_params("bm25", SparseVectorParamsBuilder::default().modifier(Modifier::Idf));
    let mut dense = VectorsConfigBuilder::default();
    dense.add_named_vector_params("dense", VectorParamsBuilder::new(DIM as u64, q::Distance::Cosine));
    client
        .create_collection(
            CreateCollectionBuilder::new("docs").vectors_config(dense).sparse_vectors_config(sparse),
        )
        .await
        .unwrap();
    let bm25 = braid::Bm25::new();
    let points: Vec<q::PointStruct> = (0..d.texts.len())
        .map(|i| {
            let mut vectors: HashMap<String, q::Vector> = HashMap::new();
            vectors.insert("dense".into(), d.dense[i].clone().into());
            let sparse: q::Vector = if i % 2 == 0 {
                q::Document::new(d.texts[i].clone(), "qdrant/bm25").into()
            } else {
                let v = bm25.document(&d.texts[i]);
                q::Vector::new_sparse(v.indices().to_vec(), v.values().to_vec())
            };
            vectors.insert("bm25".into(), sparse);
            let payload: qdrant_client::Payload =
                json!({"group": i % 3, "text": d.texts[i]}).try_into().unwrap();
            q::PointStruct::new(i as u64, vectors, payload)
        })
        .collect();
    client.upsert_points(UpsertPointsBuilder::new("docs", points).wait(true)).await.unwrap();
    client
        .create_field_index(
            q::CreateFieldIndexCollectionBuilder::new("docs", "text", q::FieldType::Text)
                .field_index_params(
                    q::TextIndexParamsBuilder::new(q::TokenizerType::Word)
                        .stopwords(q::StopwordsSet { languages: vec!["english".into()], custom: vec![] })
                        .stemmer(q::stemming_algorithm::StemmingParams::Snowball(q::SnowballParams {
                            language: "english".into(),
                        }))
                        .build(),
                )
                .wait(true),
        )
        .await
        .unwrap();
    let info = client.collection_info("docs").await.unwrap().result.unwrap();
    assert_eq!(info.payload_schema["text"].data_type, q::PayloadSchemaType::Text as i32);
    let params = info.config.unwrap().params.unwrap();
    assert_eq!(params.sparse_vectors_config.unwrap().map["bm25"].modifier, Some(Modifier::Idf as i32));

    let mut rng = Rng::new(8);
    for _ in 0..8 {
        let text = passage(&mut rng);
        let qv = rng.vector(DIM);
        let keyword = client
            .query(
                QueryPointsBuilder::new("docs")
                    .query(Query::new_nearest(q::Document::new(text.clone(), "bm25")))
                    .using("bm25")
                    .limit(10),
            )
            .await
            .unwrap();
        let want = local(
            local_c
                .query(QueryRequest::document("bm25", Document::new(text.clone(), "bm25")).limit(10))
                .unwrap(),
        );
        close(&grpc_hits(&keyword.result), &want, "keyword");
        let v = bm25.query(&text);
        let pairs: Vec<(u32, f32)> = v.iter().collect();
        let sparse = client
            .query(
                QueryPointsBuilder::new("docs")
                    .query(Query::new_nearest(pairs.as_slice()))
                    .using("bm25")
                    .limit(10),
            )
            .await
            .unwrap();
        close(&grpc_hits(&sparse.result), &want, "sparse query");
        let filtered = client
            .query(
                QueryPointsBuilder::new("docs")
                    .query(Query::new_nearest(qv.clone()))
                    .using("dense")
                    .filter(q::Filter::must([q::Condition::matches_text("text", text.clone())]))
                    .params(q::SearchParamsBuilder::default().exact(true))
                    .limit(10),
            )
            .await
            .unwrap();
        let exact = SearchParams::EXACT;
        let want = local_c
            .query(
                QueryRequest::nearest("dense", qv.clone())
                    .filter(Filter::must([field("text").text(text.clone())]))
                    .params(exact)
                    .limit(10),
            )
            .unwrap();
        close(&grpc_hits(&filtered.result), &local(want), "text filter");
        let hybrid = client
            .query(
                QueryPointsBuilder::new("docs")
                    .add_prefetch(
                        PrefetchQueryBuilder::default()
                            .query(Query::new_nearest(q::Document::new(text.clone(), "bm25")))
                            .using("bm25")
                            .limit(30u64),
                    )
                    .add_prefetch(
                        PrefetchQueryBuilder::default()
                            .query(Query::new_nearest(qv.clone()))
                            .using("dense")
                            .params(q::SearchParamsBuilder::default().exact(true))
                            .limit(30u64),
                    )
                    .query(Query::new_fusion(q::Fusion::Rrf))
                    .filter(q::Filter::must([q::Condition::matches("group", 2i64)]))
                    .limit(10),
            )
            .await
            .unwrap();
        close(
            &grpc_hits(&hybrid.result),
            &local_hybrid(&local_c, Fusion::rrf(), &text, &qv, 2),
            "hybrid rrf",
        );
    }
    let got = client
        .get_points(q::GetPointsBuilder::new("docs", vec![1u64.into()]).with_vectors(true))
        .await
        .unwrap();
    let vectors = got.result[0].vectors.clone().unwrap();
    let Some(q::vectors_output::VectorsOptions::Vectors(named)) = vectors.vectors_options else {
        panic!("named vectors")
    };
    let Some(q::vector_output::Vector::Sparse(s)) = named.vectors["bm25"].vector.clone() else {
        panic!("a sparse vector")
    };
    assert_eq!(s.indices, bm25.document(&d.texts[1]).indices());
    // An unknown model is refused with the models there are.
    let err = client
        .query(
            QueryPointsBuilder::new("docs")
                .query(Query::new_nearest(q::Document::new("x", "splade")))
                .using("bm25"),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("bm25"), "{err}");
}
