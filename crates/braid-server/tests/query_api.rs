//! The rest of the query API served (#16), so far facets and random samples: REST
//! (reqwest) and gRPC (the official Rust client) answer as the embedded facade does on
//! the same data.

mod common;

use braid::{Database, FacetValue, Filter, IndexKind, field};
use qdrant_client::Qdrant;
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
    let running = start(None, None).await;
    let rest = Rest::to(&running);
    rest.put("/collections/p", config_json()).await;
    let points = json!({"points": products().iter().map(point_json).collect::<Vec<_>>()});
    rest.put("/collections/p/points?wait=true", points).await;
    for (key, schema) in [("category", "keyword"), ("stock.n", "integer")] {
        rest.put("/collections/p/index?wait=true", json!({"field_name": key, "field_schema": schema})).await;
    }
    let cheap = Filter::must([field("price").lt(100.0)]);
    let cases: Vec<(&str, Option<Filter>, usize)> =
        vec![("category", None, 10), ("category", Some(cheap.clone()), 2), ("stock.n", Some(cheap), 10)];
    let client = Qdrant::from_url(&format!("http://{}", running.server.grpc_addr()))
        .skip_compatibility_check()
        .build()
        .unwrap();
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
    let running = start(None, None).await;
    let rest = Rest::to(&running);
    rest.put("/collections/p", config_json()).await;
    let points = json!({"points": products().iter().map(point_json).collect::<Vec<_>>()});
    rest.put("/collections/p/points?wait=true", points).await;
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

    let client = Qdrant::from_url(&format!("http://{}", running.server.grpc_addr()))
        .skip_compatibility_check()
        .build()
        .unwrap();
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
    let err = client
        .query(q::QueryPointsBuilder::new("p").query(q::Query::new_order_by("price")))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("order_by"), "{err}");
}
