//! The rest of the query API served (#16), so far facets and random samples: REST
//! (reqwest) and gRPC (the official Rust client) answer as the embedded facade does on
//! the same data.

use crate::common;

use braid::{Database, FacetValue, Filter, IndexKind, field};
use qdrant_client::qdrant::{self as q, FacetCountsBuilder};
use serde_json::{Value, json};

use common::*;

fn local() -> braid::Collection {
    let db = Database::in_memory();
    let c = db.create_collection("p", config()).unwrap();
    c.upsert(products()).unwrap();
    c.create_payload_index("category", IndexKind::Keyword).unwrap();
    c.create_payload_index("stock.n", IndexKind::Integer).unwrap();
    c
}

fn value_json(v: &FacetValue) -> Value {
    match v {
        FacetValue::Keyword(s) => json!(s),
        FacetValue::Integer(i) => json!(i),
        FacetValue::Bool(b) => json!(b),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn facets_answer_as_the_facade_on_both_protocols() {
    let local = local();
    let (running, rest) = serve_products().await;
    for (key, schema) in [("category", "keyword"), ("stock.n", "integer")] {
        rest.put("/collections/p/index?wait=true", json!({"field_name": key, "field_schema": schema})).await;
    }
    let cheap = Filter::must([field("price").lt(100.0)]);
    let cases: Vec<(&str, Option<Filter>, usize)> =
        vec![("category", None, 10), ("category", Some(cheap.clone()), 2), ("stock.n", Some(cheap), 10)];
    let client = grpc_client(&running);
    for (key, filter, limit) in cases {
        let want = local.facet(key, filter.as_ref(), limit).unwrap();
        assert!(!want.is_empty());
        let want_json: Vec<Value> =
            want.iter().map(|h| json!({"value": value_json(&h.value), "count": h.count})).collect();
        let mut body = json!({"key": key, "limit": limit, "exact": true});
        if let Some(f) = &filter {
            body["filter"] = f.to_json();
        }
        let got = rest.post("/collections/p/facet", body).await;
        assert_eq!(got["hits"], json!(want_json), "{key}");

        let mut request = FacetCountsBuilder::new("p", key).limit(limit as u64);
        if let Some(f) = &filter {
            let q_filter = q::Filter::must([q::Condition::range(
                "price",
                q::Range { lt: f.to_json()["must"][0]["range"]["lt"].as_f64(), ..Default::default() },
            )]);
            request = request.filter(q_filter);
        }
        let got = client.facet(request).await.unwrap();
        let got: Vec<Value> = got
            .hits
            .iter()
            .map(|h| {
                let value = match h.value.as_ref().and_then(|v| v.variant.clone()) {
                    Some(q::facet_value::Variant::StringValue(s)) => json!(s),
                    Some(q::facet_value::Variant::IntegerValue(i)) => json!(i),
                    Some(q::facet_value::Variant::BoolValue(b)) => json!(b),
                    None => Value::Null,
                };
                json!({"value": value, "count": h.count})
            })
            .collect();
        assert_eq!(got, want_json, "{key} over gRPC");
    }
    // No index on the key: a clear refusal on both protocols.
    let (status, v) =
        rest.call(reqwest::Method::POST, "/collections/p/facet", Some(json!({"key": "name"}))).await;
    assert_eq!(status, 400, "{v}");
    assert!(v["status"]["error"].as_str().unwrap().contains("index"), "{v}");
    let err = client.facet(FacetCountsBuilder::new("p", "name")).await.unwrap_err();
    assert!(err.to_string().contains("index"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_samples_on_both_protocols() {
    let (running, rest) = serve_products().await;
    let books = json!({"must": [{"key": "category", "match": {"value": "books"}}]});
    let got = rest
        .post(
            "/collections/p/points/query",
            json!({"query": {"sample": "random"}, "filter": books, "limit": 7, "with_payload": true}),
        )
        .await;
    let hits = got["points"].as_array().unwrap();
    assert_eq!(hits.len(), 7);
    assert!(hits.iter().all(|h| h["payload"]["category"] == "books" && h["score"] == 1.0), "{got}");
    let ids: std::collections::BTreeSet<String> = hits.iter().map(|h| h["id"].to_string()).collect();
    assert_eq!(ids.len(), 7, "distinct");
    let (status, v) = rest
        .call(
            reqwest::Method::POST,
            "/collections/p/points/query",
            Some(json!({"query": {"sample": "first"}})),
        )
        .await;
    assert_eq!(status, 400, "{v}");

    let client = grpc_client(&running);
    let got = client
        .query(
            q::QueryPointsBuilder::new("p")
                .query(q::Query::new_sample(q::Sample::Random))
                .filter(q::Filter::must([q::Condition::matches("category", "books".to_string())]))
                .with_payload(true)
                .limit(60),
        )
        .await
        .unwrap();
    // 60 books among the 300 products: a sample larger than that is all of them.
    assert_eq!(got.result.len(), 60);
    assert!(got.result.iter().all(|p| p.score == 1.0));
    // order_by is served over a range index only; `price` has none here.
    let err = client
        .query(q::QueryPointsBuilder::new("p").query(q::Query::new_order_by("price")))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("needs a range index"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn order_by_answers_as_the_facade_on_both_protocols() {
    let local = local();
    local.create_payload_index("price", IndexKind::Float).unwrap();
    let (running, rest) = serve_products().await;
    for (key, schema) in [("price", "float"), ("stock.n", "integer"), ("category", "keyword")] {
        rest.put("/collections/p/index?wait=true", json!({"field_name": key, "field_schema": schema})).await;
    }
    let client = grpc_client(&running);
    let books = Filter::must([field("category").eq("books")]);
    let cases = [
        (braid::OrderBy::asc("price"), None),
        (braid::OrderBy { start_from: Some(100.0), ..braid::OrderBy::desc("price") }, Some(books.clone())),
        (braid::OrderBy::desc("stock.n"), Some(books)),
    ];
    for (order, filter) in cases {
        let (want, _) = local.scroll_ordered(filter.as_ref(), &order, 12, false, false).unwrap();
        let want: Vec<Value> = want.iter().map(|r| json!([r.id, r.order_value])).collect();
        let direction = if order.direction == braid::Direction::Desc { "desc" } else { "asc" };
        let mut order_json = json!({"key": order.key, "direction": direction});
        if let Some(s) = order.start_from {
            order_json["start_from"] = json!(s);
        }
        let filter_json = filter.as_ref().map(Filter::to_json);
        let got = rest
            .post(
                "/collections/p/points/scroll",
                json!({"order_by": order_json, "filter": filter_json, "limit": 12, "with_payload": false}),
            )
            .await;
        assert_eq!(got["next_page_offset"], Value::Null, "Qdrant's ordered scroll has no next offset");
        let pairs: Vec<Value> =
            got["points"].as_array().unwrap().iter().map(|p| json!([p["id"], p["order_value"]])).collect();
        assert_eq!(pairs, want, "REST scroll {order:?}");
        let got = rest
            .post(
                "/collections/p/points/query",
                json!({"query": {"order_by": order_json}, "filter": filter_json, "limit": 12}),
            )
            .await;
        let pairs: Vec<Value> =
            got["points"].as_array().unwrap().iter().map(|p| json!([p["id"], p["order_value"]])).collect();
        assert_eq!(pairs, want, "REST query {order:?}");
        assert!(got["points"].as_array().unwrap().iter().all(|p| p["score"] == 1.0));

        // gRPC: the same through the official client's ScrollPoints and Query.
        let grpc_order = q::OrderBy {
            key: order.key.clone(),
            direction: Some(if direction == "desc" { q::Direction::Desc } else { q::Direction::Asc } as i32),
            start_from: order
                .start_from
                .map(|s| q::StartFrom { value: Some(q::start_from::Value::Float(s)) }),
        };
        let grpc_filter = filter
            .as_ref()
            .map(|_| q::Filter::must([q::Condition::matches("category", "books".to_string())]));
        let value_json = |v: Option<&q::OrderValue>| match v.and_then(|v| v.variant) {
            Some(q::order_value::Variant::Int(i)) => json!(i),
            Some(q::order_value::Variant::Float(x)) => json!(x),
            None => Value::Null,
        };
        let id_json = |id: Option<&q::PointId>| match id.and_then(|i| i.point_id_options.clone()) {
            Some(q::point_id::PointIdOptions::Num(n)) => json!(n),
            Some(q::point_id::PointIdOptions::Uuid(u)) => json!(u),
            None => Value::Null,
        };
        let mut scroll = q::ScrollPointsBuilder::new("p").order_by(grpc_order.clone()).limit(12);
        if let Some(f) = grpc_filter.clone() {
            scroll = scroll.filter(f);
        }
        let got = client.scroll(scroll).await.unwrap();
        assert!(got.next_page_offset.is_none());
        let pairs: Vec<Value> = got
            .result
            .iter()
            .map(|p| json!([id_json(p.id.as_ref()), value_json(p.order_value.as_ref())]))
            .collect();
        assert_eq!(pairs, want, "gRPC scroll {order:?}");
        let mut query = q::QueryPointsBuilder::new("p").query(q::Query::new_order_by(grpc_order)).limit(12);
        if let Some(f) = grpc_filter {
            query = query.filter(f);
        }
        let got = client.query(query).await.unwrap();
        let pairs: Vec<Value> = got
            .result
            .iter()
            .map(|p| json!([id_json(p.id.as_ref()), value_json(p.order_value.as_ref())]))
            .collect();
        assert_eq!(pairs, want, "gRPC query {order:?}");
    }
    // A keyword key: refused, naming the index it has.
    let (status, v) = rest
        .call(reqwest::Method::POST, "/collections/p/points/scroll", Some(json!({"order_by": "category"})))
        .await;
    assert_eq!(status, 400, "{v}");
    assert!(v["status"]["error"].as_str().unwrap().contains("keyword"), "{v}");
}

/// Search-time `quantization` parameters over both protocols, on a 96-d space whose
/// searches walk by its codes: `rescore: false` answers with the codes' approximate
/// scores, `ignore` with exact ones, `oversampling` is checked, and REST and gRPC
/// answer alike; a bad value is a clear error on both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_time_quantization_on_both_protocols() {
    let running = start(None, None).await;
    let rest = Rest::to(&running);
    let c = "/collections/coded";
    rest.put(
        c,
        json!({
            "vectors": {"t": {"size": 96, "distance": "Cosine", "hnsw_config": {"full_scan_threshold": 1}}},
            "optimizers_config": {"indexing_threshold": 1},
        }),
    )
    .await;
    let mut rng = braid_testkit::Rng::new(5);
    let centres: Vec<Vec<f32>> = (0..8).map(|_| rng.vector(96)).collect();
    let mut near = |i: usize| -> Vec<f32> { centres[i % 8].iter().map(|x| x + rng.uniform()).collect() };
    let vectors: Vec<Vec<f32>> = (0..2_000).map(&mut near).collect();
    for (b, batch) in vectors.chunks(500).enumerate() {
        let points: Vec<Value> =
            batch.iter().enumerate().map(|(i, v)| json!({"id": b * 500 + i, "vector": {"t": v}})).collect();
        rest.put(&format!("{c}/points?wait=true"), json!({"points": points})).await;
    }
    let cosine = |a: &[f32], b: &[f32]| {
        let norm = |x: &[f32]| x.iter().map(|v| v * v).sum::<f32>().sqrt();
        a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>() / (norm(a) * norm(b))
    };
    let client = grpc_client(&running);
    let (mut approximate, mut compared) = (0, 0);
    for qi in 0..5 {
        let query = near(qi);
        for (params, exact_scores) in [
            (json!({"rescore": false}), false),
            (json!({"ignore": true, "rescore": false}), true),
            (json!({"oversampling": 2.5}), true),
            (json!({"rescore": true, "oversampling": 1.0, "ignore": false}), true),
        ] {
            let body = json!({"query": query, "using": "t", "limit": 10, "params": {"quantization": params}});
            let got = rest.post(&format!("{c}/points/query"), body).await;
            let hits: Vec<(u64, f32)> = got["points"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| (p["id"].as_u64().unwrap(), p["score"].as_f64().unwrap() as f32))
                .collect();
            assert_eq!(hits.len(), 10, "{params}");
            for &(id, score) in &hits {
                let exact = cosine(&query, &vectors[id as usize]);
                if exact_scores {
                    assert!((score - exact).abs() <= 1e-4, "{params}: {score} vs exact {exact}");
                } else {
                    assert!((score - exact).abs() <= 0.05, "{params}: coded {score} vs exact {exact}");
                    compared += 1;
                    approximate += usize::from((score - exact).abs() > 1e-5);
                }
            }
            // The official client's QuantizationSearchParams reach the same search.
            let mut qp = q::QuantizationSearchParamsBuilder::default();
            if let Some(b) = params["ignore"].as_bool() {
                qp = qp.ignore(b);
            }
            if let Some(b) = params["rescore"].as_bool() {
                qp = qp.rescore(b);
            }
            if let Some(o) = params["oversampling"].as_f64() {
                qp = qp.oversampling(o);
            }
            let got = client
                .query(
                    q::QueryPointsBuilder::new("coded")
                        .query(query.clone())
                        .using("t")
                        .limit(10)
                        .params(q::SearchParamsBuilder::default().quantization(qp)),
                )
                .await
                .unwrap();
            let grpc: Vec<(u64, f32)> = got
                .result
                .iter()
                .map(|p| match p.id.as_ref().and_then(|i| i.point_id_options.clone()) {
                    Some(q::point_id::PointIdOptions::Num(n)) => (n, p.score),
                    other => panic!("numeric ids: {other:?}"),
                })
                .collect();
            assert_eq!(grpc, hits, "gRPC and REST answer alike for {params}");
        }
    }
    assert!(
        approximate * 2 > compared,
        "rescore: false gives the codes' scores ({approximate} of {compared})"
    );

    // Bad values: 400 with the reason on REST, InvalidArgument on gRPC.
    for (params, says) in [
        (json!({"oversampling": 0.5}), "oversampling"),
        (json!({"oversampling": "2"}), "oversampling"),
        (json!({"rescore": 1}), "rescore"),
        (json!({"always": true}), "always"),
    ] {
        let body = json!({"query": vec![0.5; 96], "using": "t", "params": {"quantization": params}});
        let (status, got) = rest.call(reqwest::Method::POST, &format!("{c}/points/query"), Some(body)).await;
        assert_eq!(status, 400, "{params}: {got}");
        assert!(got["status"]["error"].as_str().unwrap().contains(says), "{params}: {got}");
    }
    let err = client
        .query(
            q::QueryPointsBuilder::new("coded").query(vec![0.5; 96]).using("t").params(
                q::SearchParamsBuilder::default()
                    .quantization(q::QuantizationSearchParamsBuilder::default().oversampling(0.5)),
            ),
        )
        .await
        .unwrap_err();
    assert!(
        format!("{err:?}").contains("InvalidArgument") && format!("{err}").contains("oversampling"),
        "{err:?}"
    );
}
