//! The tutorial through REST (reqwest) against `braid serve`, step by step, compared
//! with the embedded facade doing the same on the same data.

use crate::common;

use braid::{
    Database, Filter, Fusion, IndexKind, PointId, Prefetch, QueryPoints, QueryRequest, ScoredPoint,
    SearchParams, SearchRequest, field,
};
use serde_json::{Value, json};

use common::*;

const EXACT: SearchParams = SearchParams::EXACT;

/// (id, score) pairs of a REST result list.
fn hits(v: &Value) -> Vec<(PointId, f32)> {
    v.as_array()
        .expect("a list of points")
        .iter()
        .map(|p| {
            (
                serde_json::from_value(p["id"].clone()).expect("an id"),
                p["score"].as_f64().expect("score") as f32,
            )
        })
        .collect()
}

/// Vectors as f32 (JSON floats parse as f64 with a last-digit tolerance).
fn vectors(v: &Value) -> braid::NamedVectors {
    serde_json::from_value(v.clone()).expect("named vectors")
}

fn local(points: Vec<ScoredPoint>) -> Vec<(PointId, f32)> {
    points.into_iter().map(|p| (p.id, p.score)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_walks_the_tutorial_like_the_embedded_facade() {
    let running = start(None, None).await;
    let rest = Rest::to(&running);
    let embedded = Database::in_memory();
    let products = embedded.create_collection("products", config()).expect("config");
    let c = "/collections/products";

    // 1. create; a second create conflicts; info reports the configuration.
    assert_eq!(rest.put(c, config_json()).await, json!(true));
    let (status, body) = rest.call(reqwest::Method::PUT, c, Some(config_json())).await;
    assert_eq!(status, 409, "{body}");
    assert!(body["status"]["error"].as_str().expect("message").contains("already exists"));

    // 2. upsert in batches (ints and UUIDs); vector counts.
    let data = common::products();
    for batch in data.chunks(100) {
        let body = json!({"points": batch.iter().map(point_json).collect::<Vec<_>>()});
        let result = rest.put(&format!("{c}/points?wait=true"), body).await;
        assert_eq!(result["status"], "completed");
        products.upsert(batch.to_vec()).expect("valid");
    }
    rest.put(&format!("{c}/index"), json!({"field_name": "category", "field_schema": "keyword"})).await;
    products.create_payload_index("category", IndexKind::Keyword).expect("index");
    let info = rest.get(c).await;
    assert_eq!(info["points_count"], 300);
    assert_eq!(info["vectors_count"], 600);
    assert_eq!(info["config"]["params"]["vectors"]["image"]["hnsw_config"]["m"], 32);
    assert_eq!(info["payload_schema"]["category"]["data_type"], "keyword");

    // 3. search each space with using, limit, offset, score_threshold.
    let (tq, iq) = query_vectors(7);
    let got = rest
        .post(&format!("{c}/points/search"), json!({"vector": {"name": "text", "vector": tq}, "limit": 5, "offset": 2, "score_threshold": 0.1, "params": {"exact": true}}))
        .await;
    let want = products
        .search(&SearchRequest::new("text", tq.clone()).limit(5).offset(2).score_threshold(0.1).params(EXACT))
        .expect("search");
    assert_eq!(hits(&got), local(want));

    // 4. prefetch + RRF, prefetch + DBSF.
    for (fusion, local_fusion) in [("rrf", Fusion::rrf()), ("dbsf", Fusion::dbsf())] {
        let body = json!({
            "prefetch": [
                {"query": tq, "using": "text", "limit": 20, "params": {"exact": true}},
                {"query": iq, "using": "image", "limit": 20, "params": {"exact": true}},
            ],
            "query": {"fusion": fusion}, "limit": 10,
        });
        let got = rest.post(&format!("{c}/points/query"), body).await;
        let want = products
            .query(QueryRequest::fusion(
                local_fusion,
                vec![
                    Prefetch::nearest("text", tq.clone(), 20).params(EXACT),
                    Prefetch::nearest("image", iq.clone(), 20).params(EXACT),
                ],
            ))
            .expect("query");
        assert_eq!(hits(&got["points"]), local(want), "{fusion}");
    }

    // 5. the top-level filter goes into every leaf; weighted RRF server-side.
    let apparel = json!({"must": [{"key": "category", "match": {"value": "apparel"}}, {"key": "price", "range": {"lte": 200.0}}]});
    let body = json!({
        "prefetch": [
            {"query": tq, "using": "text", "limit": 20, "params": {"exact": true}},
            {"query": iq, "using": "image", "limit": 20, "params": {"exact": true}},
        ],
        "query": {"rrf": {"k": 60, "weights": [1.0, 0.3]}}, "filter": apparel, "limit": 10, "with_payload": ["category"],
    });
    let got = rest.post(&format!("{c}/points/query"), body).await;
    let filter = Filter::must([field("category").eq("apparel"), field("price").lte(200.0)]);
    let want = products
        .query(
            QueryRequest::fusion(
                Fusion::Rrf { k: 60, weights: Some(vec![1.0, 0.3]) },
                vec![
                    Prefetch::nearest("text", tq.clone(), 20).params(EXACT),
                    Prefetch::nearest("image", iq.clone(), 20).params(EXACT),
                ],
            )
            .filter(filter.clone()),
        )
        .expect("query");
    assert_eq!(hits(&got["points"]), local(want));
    for p in got["points"].as_array().expect("points") {
        assert_eq!(p["payload"], json!({"category": "apparel"}));
    }

    // 7. batches.
    let got = rest
        .post(
            &format!("{c}/points/search/batch"),
            json!({"searches": [
                {"vector": {"name": "text", "vector": tq}, "limit": 3, "params": {"exact": true}},
                {"vector": {"name": "image", "vector": iq}, "limit": 3, "params": {"exact": true}, "filter": apparel},
            ]}),
        )
        .await;
    let want = products
        .search_batch(&[
            SearchRequest::new("text", tq.clone()).limit(3).params(EXACT),
            SearchRequest::new("image", iq.clone()).limit(3).params(EXACT).filter(filter.clone()),
        ])
        .expect("batch");
    for (g, w) in got.as_array().expect("list").iter().zip(want) {
        assert_eq!(hits(g), local(w.expect("ok")));
    }
    let got = rest
        .post(
            &format!("{c}/points/query/batch"),
            json!({"searches": [{"query": tq, "using": "text", "limit": 4, "params": {"exact": true}}]}),
        )
        .await;
    let want =
        products.query(QueryRequest::nearest("text", tq.clone()).limit(4).params(EXACT)).expect("query");
    assert_eq!(hits(&got[0]["points"]), local(want));

    // 8. selectors: vectors by name, payload include/exclude.
    let got = rest
        .post(
            &format!("{c}/points"),
            json!({"ids": [3, 1], "with_payload": {"exclude": ["stock"]}, "with_vector": ["image"]}),
        )
        .await;
    let want = products
        .get(
            &[3u64.into(), 1u64.into()],
            braid::WithPayload::Exclude(vec!["stock".into()]),
            braid::WithVectors::Names(vec!["image".into()]),
        )
        .expect("get");
    assert_eq!(got.as_array().expect("list").len(), 2);
    for (g, w) in got.as_array().expect("list").iter().zip(&want) {
        assert_eq!(g["payload"], w.payload.clone().expect("payload"));
        assert_eq!(vectors(&g["vector"]), w.vectors.clone().expect("vectors"));
    }

    // 9. update_vectors touches one space; delete_vectors; payload ops.
    let new_image = vec![0.5f32; IMAGE];
    rest.put(
        &format!("{c}/points/vectors?wait=true"),
        json!({"points": [{"id": 4, "vector": {"image": new_image}}]}),
    )
    .await;
    products
        .update_vectors(vec![(4u64.into(), [("image".to_string(), new_image.clone())].into())])
        .expect("update");
    rest.post(&format!("{c}/points/vectors/delete"), json!({"points": [5], "vector": ["text"]})).await;
    products.delete_vectors(vec![PointId::from(5u64)], &["text"]).expect("delete vectors");
    rest.post(&format!("{c}/points/payload"), json!({"payload": {"sale": true}, "filter": {"must": [{"key": "category", "match": {"value": "toys"}}]}})).await;
    products.set_payload(Filter::must([field("category").eq("toys")]), json!({"sale": true})).expect("set");
    rest.post(
        &format!("{c}/points/payload"),
        json!({"payload": {"size": "M"}, "key": "stock", "points": [11, 12]}),
    )
    .await;
    products
        .set_payload_at(vec![PointId::from(11u64), 12u64.into()], "stock", json!({"size": "M"}))
        .expect("set at key");
    rest.put(&format!("{c}/points/payload"), json!({"payload": {"only": 1}, "points": [6]})).await;
    products.overwrite_payload(vec![PointId::from(6u64)], json!({"only": 1})).expect("overwrite");
    rest.post(&format!("{c}/points/payload/delete"), json!({"keys": ["stock.n"], "points": [7, 8]})).await;
    products.delete_payload(vec![PointId::from(7u64), 8u64.into()], &["stock.n"]).expect("delete payload");
    rest.post(&format!("{c}/points/payload/clear"), json!({"points": [10]})).await;
    products.clear_payload(vec![PointId::from(10u64)]).expect("clear");

    // 10. nested prefetch: RRF keeping 15, re-scored by text.
    let body = json!({
        "prefetch": {"prefetch": [
            {"query": tq, "using": "text", "limit": 20, "params": {"exact": true}},
            {"query": iq, "using": "image", "limit": 20, "params": {"exact": true}},
        ], "query": {"fusion": "rrf"}, "limit": 15},
        "query": tq, "using": "text", "limit": 10, "with_payload": true, "with_vector": true,
    });
    let got = rest.post(&format!("{c}/points/query"), body).await;
    let want = products
        .query(
            QueryPoints::from(
                QueryRequest::rescore(
                    "text",
                    tq.clone(),
                    vec![Prefetch::fusion(
                        Fusion::rrf(),
                        vec![
                            Prefetch::nearest("text", tq.clone(), 20).params(EXACT),
                            Prefetch::nearest("image", iq.clone(), 20).params(EXACT),
                        ],
                        15,
                    )],
                )
                .limit(10),
            )
            .with_payload(true)
            .with_vectors(true),
        )
        .expect("query");
    assert_eq!(hits(&got["points"]), local(want.clone()));
    for (g, w) in got["points"].as_array().expect("points").iter().zip(&want) {
        assert_eq!(g["payload"], w.payload.clone().expect("payload"));
        assert_eq!(vectors(&g["vector"]), w.vectors.clone().expect("vectors"));
    }

    // 12. scroll with next_page_offset, count, deletes, list / exists / delete.
    let shoes = json!({"must": [{"key": "category", "match": {"value": "shoes"}}]});
    let page = rest
        .post(&format!("{c}/points/scroll"), json!({"filter": shoes, "limit": 4, "with_payload": false}))
        .await;
    let (want, next) = products
        .scroll(Some(&Filter::must([field("category").eq("shoes")])), 4, None, false, false)
        .expect("scroll");
    let ids: Vec<PointId> = page["points"]
        .as_array()
        .expect("points")
        .iter()
        .map(|p| serde_json::from_value(p["id"].clone()).expect("id"))
        .collect();
    assert_eq!(ids, want.iter().map(|r| r.id).collect::<Vec<_>>());
    assert_eq!(page["next_page_offset"], json!(next));
    let count = rest.post(&format!("{c}/points/count"), json!({"filter": shoes, "exact": true})).await;
    assert_eq!(
        count["count"],
        products.count(Some(&Filter::must([field("category").eq("shoes")]))).expect("count")
    );
    rest.post(&format!("{c}/points/delete?wait=true"), json!({"points": [0, 1]})).await;
    rest.post(
        &format!("{c}/points/delete"),
        json!({"filter": {"must": [{"key": "price", "range": {"lt": 20}}]}}),
    )
    .await;
    products.delete(vec![PointId::from(0u64), 1u64.into()]).expect("delete");
    products.delete(Filter::must([field("price").lt(20.0)])).expect("delete");
    assert_eq!(
        rest.post(&format!("{c}/points/count"), json!({})).await["count"],
        products.count(None).expect("count")
    );

    // Everything the facade holds, the server holds.
    let all = rest
        .post(
            &format!("{c}/points/scroll"),
            json!({"limit": 1000, "with_payload": true, "with_vector": true}),
        )
        .await;
    let (want, _) = products.scroll(None, 1000, None, true, true).expect("scroll");
    assert_eq!(all["points"].as_array().expect("points").len(), want.len());
    for (g, w) in all["points"].as_array().expect("points").iter().zip(&want) {
        assert_eq!(serde_json::from_value::<PointId>(g["id"].clone()).expect("id"), w.id);
        assert_eq!(g["payload"], w.payload.clone().expect("payload"));
        assert_eq!(vectors(&g["vector"]), w.vectors.clone().expect("vectors"));
    }

    assert_eq!(rest.get("/collections").await, json!({"collections": [{"name": "products"}]}));
    assert_eq!(rest.get(&format!("{c}/exists")).await, json!({"exists": true}));
    assert_eq!(rest.ok(reqwest::Method::DELETE, c, json!({})).await, json!(true));
    assert_eq!(rest.get(&format!("{c}/exists")).await, json!({"exists": false}));
    running.server.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_through_the_server_survive_a_restart() {
    let running = start(None, None).await;
    let base = format!("http://{}", running.server.http_addr());
    let client = reqwest::Client::new();
    client.put(format!("{base}/collections/p")).json(&config_json()).send().await.expect("create");
    let body = json!({"points": products().iter().take(50).map(point_json).collect::<Vec<_>>()});
    client.put(format!("{base}/collections/p/points?wait=true")).json(&body).send().await.expect("upsert");
    let dir = running.dir;
    running.server.shutdown().await.expect("shutdown flushes");
    let db = Database::open(dir.path()).expect("reopen the server's directory");
    assert_eq!(db.collection("p").expect("collection").count(None).expect("count"), 50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collection_with_one_unnamed_vector_works_like_qdrant() {
    let running = start(None, None).await;
    let rest = Rest::to(&running);
    let c = "/collections/plain";
    rest.put(c, json!({"vectors": {"size": 3, "distance": "Dot"}})).await;
    let points = json!({"points": [
        {"id": 1, "vector": [1.0, 0.0, 0.0], "payload": {"k": "a"}},
        {"id": 2, "vector": [0.0, 1.0, 0.0]},
        {"id": 3, "vector": [0.5, 0.5, 0.0]},
    ]});
    rest.put(&format!("{c}/points?wait=true"), points).await;
    let batch = json!({"batch": {"ids": [4, 5], "vectors": [[0.0, 0.0, 1.0], [0.9, 0.1, 0.0]], "payloads": [{"k": "b"}, null]}});
    rest.put(&format!("{c}/points?wait=true"), batch).await;
    let got = rest
        .post(
            &format!("{c}/points/search"),
            json!({"vector": [1.0, 0.0, 0.0], "limit": 2, "with_vector": true}),
        )
        .await;
    assert_eq!(hits(&got), vec![(PointId::Num(1), 1.0), (PointId::Num(5), 0.9)]);
    // The unnamed vector comes back as a plain list, as Qdrant returns it.
    assert_eq!(got[0]["vector"], json!([1.0, 0.0, 0.0]));
    let got = rest.post(&format!("{c}/points/query"), json!({"query": [0.0, 1.0, 0.0], "limit": 1})).await;
    assert_eq!(hits(&got["points"]), vec![(PointId::Num(2), 1.0)]);
    // Neither query nor prefetch: points in id order with score 1.0, as Qdrant does.
    let got = rest.post(&format!("{c}/points/query"), json!({"limit": 3, "offset": 1})).await;
    assert_eq!(
        hits(&got["points"]),
        vec![(PointId::Num(2), 1.0), (PointId::Num(3), 1.0), (PointId::Num(4), 1.0)]
    );
    let info = rest.get(c).await;
    assert_eq!(info["config"]["params"]["vectors"]["size"], 3);
    // Three components are too few for codes: reported as no quantization.
    assert_eq!(info["config"]["params"]["vectors"]["quantization_config"], Value::Null);
    // A 64-d space keeps Braid's one-byte codes, asked for or not, and says so.
    // A quantile under 1.0 (clipping outliers) is not what Braid's codes do: refused.
    let clipped = json!({"vectors": {"size": 64, "distance": "Cosine", "quantization_config": {"scalar": {"type": "int8", "quantile": 0.99}}}});
    let (status, body) = rest.call(reqwest::Method::PUT, "/collections/wide", Some(clipped)).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["status"]["error"].as_str().unwrap_or_default().contains("quantile"), "{body}");
    let wide = json!({"vectors": {"size": 64, "distance": "Cosine", "quantization_config": {"scalar": {"type": "int8", "quantile": 1.0, "always_ram": true}}}});
    assert_eq!(rest.put("/collections/wide", wide).await, json!(true));
    let info = rest.get("/collections/wide").await;
    assert_eq!(info["config"]["params"]["vectors"]["quantization_config"]["scalar"]["type"], "int8");
    assert_eq!(rest.get(&format!("{c}/points/4")).await["payload"], json!({"k": "b"}));
    running.server.shutdown().await.expect("shutdown");
}

/// Settings a collection is created with read back as they were written; empty
/// batches answer empty lists.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_read_back_and_empty_batches_answer_empty() {
    let running = start(None, None).await;
    let rest = Rest::to(&running);
    let c = "/collections/tuned";
    rest.put(
        c,
        json!({"vectors": {"text": {"size": 4, "distance": "Cosine", "hnsw_config": {"m": 8, "full_scan_threshold": 77, "payload_m": 6}}},
               "hnsw_config": {"ef_construct": 64}, "optimizers_config": {"indexing_threshold": 0},
               "shard_number": 1, "on_disk_payload": false}),
    )
    .await;
    let info = rest.get(c).await;
    let text = &info["config"]["params"]["vectors"]["text"];
    assert_eq!(
        text["hnsw_config"],
        json!({"m": 8, "ef_construct": 64, "full_scan_threshold": 77, "payload_m": 6, "on_disk": false}),
        "{info}"
    );
    assert_eq!(info["config"]["hnsw_config"]["payload_m"], json!(6));
    assert_eq!((&text["on_disk"], &text["datatype"]), (&json!(false), &json!("float32")));
    assert_eq!(info["config"]["optimizer_config"]["indexing_threshold"], json!(0));
    assert_eq!(info["config"]["hnsw_config"]["full_scan_threshold"], json!(77));
    assert_eq!(rest.post(&format!("{c}/points/search/batch"), json!({"searches": []})).await, json!([]));
    assert_eq!(rest.post(&format!("{c}/points/query/batch"), json!({"searches": []})).await, json!([]));
    assert_eq!(rest.post(&format!("{c}/points"), json!({"ids": []})).await, json!([]));
    running.server.shutdown().await.expect("shutdown");
}

/// `POST …/points/batch`: the operations in order, one result each; not atomic, as in
/// Qdrant: the operations before a refused one stay applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_update_applies_operations_in_order() {
    let running = start(None, None).await;
    let rest = Rest::to(&running);
    let c = "/collections/b";
    rest.put(
        c,
        json!({"vectors": {"a": {"size": 2, "distance": "Dot"}, "b": {"size": 2, "distance": "Dot"}}}),
    )
    .await;
    let ops = json!({"operations": [
        {"upsert": {"points": [{"id": 1, "vector": {"a": [1.0, 0.0], "b": [0.0, 1.0]}, "payload": {"k": 1}},
                               {"id": 2, "vector": {"a": [0.0, 1.0]}, "payload": {"k": 2}},
                               {"id": 3, "vector": {"a": [1.0, 1.0]}}]}},
        {"set_payload": {"payload": {"k": null, "t": "x"}, "points": [1]}},
        {"overwrite_payload": {"payload": {"o": true}, "filter": {"must": [{"key": "k", "match": {"value": 2}}]}}},
        {"update_vectors": {"points": [{"id": 3, "vector": {"b": [2.0, 2.0]}}]}},
        {"delete_vectors": {"points": [1], "vector": ["b"]}},
        {"delete_payload": {"keys": ["t"], "points": [1]}},
        {"clear_payload": {"points": [3]}},
        {"delete": {"points": [2]}},
    ]});
    let results = rest.post(&format!("{c}/points/batch?wait=true"), ops).await;
    assert_eq!(results.as_array().map(Vec::len), Some(8), "{results}");
    assert!(results.as_array().unwrap().iter().all(|r| r["status"] == "completed"));
    let got = rest.post(&format!("{c}/points"), json!({"ids": [1, 2, 3], "with_vector": true})).await;
    assert_eq!(got.as_array().map(Vec::len), Some(2), "{got}");
    assert_eq!(got[0]["payload"], json!({}));
    assert_eq!(got[0]["vector"], json!({"a": [1.0, 0.0]}));
    assert_eq!(got[1]["vector"], json!({"a": [1.0, 1.0], "b": [2.0, 2.0]}));
    // A refused operation stops the batch; what came before it stays.
    let bad = json!({"operations": [{"set_payload": {"payload": {"z": 1}, "points": [1]}}, {"upsert": {"points": [{"id": 4, "vector": {"a": [1.0]}}]}}]});
    let (status, body) = rest.call(reqwest::Method::POST, &format!("{c}/points/batch"), Some(bad)).await;
    assert_eq!(status, 400, "{body}");
    let got = rest.post(&format!("{c}/points"), json!({"ids": [1]})).await;
    assert_eq!(got[0]["payload"], json!({"z": 1}));
    let (status, body) = rest
        .call(
            reqwest::Method::POST,
            &format!("{c}/points/batch"),
            Some(json!({"operations": [{"merge": {}}]})),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    running.server.shutdown().await.expect("shutdown");
}

/// `vectors: {}`: a collection of payloads, as Qdrant allows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collection_without_vectors_is_served() {
    let running = start(None, None).await;
    let rest = Rest::to(&running);
    let c = "/collections/novec";
    rest.put(c, json!({"vectors": {}})).await;
    rest.put(
        &format!("{c}/points?wait=true"),
        json!({"points": [{"id": 1, "vector": {}, "payload": {"a": 1}}]}),
    )
    .await;
    let got = rest.post(&format!("{c}/points/scroll"), json!({})).await;
    assert_eq!(got["points"][0]["payload"], json!({"a": 1}));
    assert_eq!(rest.get(c).await["config"]["params"]["vectors"], json!({}));
    running.server.shutdown().await.expect("shutdown");
}

/// `datatype` over REST: a `uint8` space stores integers and scores them exactly, a
/// `float16` space its rounded values; what a datatype cannot hold is a 400 naming it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn narrow_datatypes_store_score_and_refuse() {
    let running = start(None, None).await;
    let rest = Rest::to(&running);
    let c = "/collections/typed";
    rest.put(
        c,
        json!({"vectors": {"bytes": {"size": 3, "distance": "Cosine", "datatype": "uint8"},
                           "halves": {"size": 2, "distance": "Dot", "datatype": "float16"}}}),
    )
    .await;
    let points = json!({"points": [
        {"id": 1, "vector": {"bytes": [3, 0, 4], "halves": [0.1, 1.0]}},
        {"id": 2, "vector": {"bytes": [0, 255, 0], "halves": [2.0, 0.0]}},
    ]});
    rest.put(&format!("{c}/points?wait=true"), points).await;
    let got = rest
        .post(
            &format!("{c}/points/search"),
            json!({"vector": {"name": "bytes", "vector": [1.0, 0.0, 0.0]}, "limit": 2, "with_vector": true}),
        )
        .await;
    // The cosine of the stored integers (3, 0, 4): 3 / 5; vectors come back as stored.
    assert_eq!(hits(&got), vec![(PointId::Num(1), 0.6), (PointId::Num(2), 0.0)]);
    assert_eq!(got[0]["vector"]["bytes"], json!([3.0, 0.0, 4.0]));
    assert_eq!(got[0]["vector"]["halves"], json!([0.0999755859375, 1.0]));
    for (bad, what) in [
        (json!({"bytes": [256, 0, 0]}), "uint8 cannot hold"),
        (json!({"halves": [1e6, 0.0]}), "float16 cannot hold"),
    ] {
        let (status, body) = rest
            .call(
                reqwest::Method::PUT,
                &format!("{c}/points?wait=true"),
                Some(json!({"points": [{"id": 3, "vector": bad}]})),
            )
            .await;
        assert_eq!(status, 400, "{body}");
        assert!(body["status"]["error"].as_str().unwrap_or_default().contains(what), "{body}");
    }
    let info = rest.get(c).await;
    let vectors = &info["config"]["params"]["vectors"];
    assert_eq!(
        (&vectors["bytes"]["datatype"], &vectors["halves"]["datatype"]),
        (&json!("uint8"), &json!("float16"))
    );
    let (status, body) = rest
        .call(
            reqwest::Method::PUT,
            "/collections/odd",
            Some(json!({"vectors": {"size": 2, "distance": "Dot", "datatype": "int4"}})),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(body["status"]["error"].as_str().unwrap_or_default().contains("datatype"), "{body}");
    running.server.shutdown().await.expect("shutdown");
}
