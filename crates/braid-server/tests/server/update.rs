//! Collection updates over both protocols: `PATCH /collections/{c}` and gRPC `Update`
//! (graph settings rebuilt in the background, quantization, thresholds), named vectors
//! added and removed (`PUT`/`DELETE /collections/{c}/vectors/{v}`, gRPC
//! `CreateVectorName`/`DeleteVectorName` through the official client), refusals, and
//! all of it as reported by collection info.

use crate::common;

use std::time::{Duration, Instant};

use qdrant_client::qdrant::{self as q};
use reqwest::Method;
use serde_json::{Value, json};

use common::*;

/// Collection info until `done` holds of it (a background rebuild), at most 30 s.
async fn info_until(rest: &Rest, name: &str, done: impl Fn(&Value) -> bool) -> Value {
    let started = Instant::now();
    loop {
        let info = rest.get(&format!("/collections/{name}")).await;
        if done(&info) {
            return info;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "never settled: {info}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn patch_changes_a_live_collection_over_rest() {
    let (running, rest) = serve_products().await;
    let (text, _) = query_vectors(5);
    let search = json!({"vector": {"name": "text", "vector": text}, "limit": 5, "params": {"exact": true}});
    let before = rest.post("/collections/p/points/search", search.clone()).await;

    let patch = json!({
        "hnsw_config": {"ef_construct": 64},
        "vectors": {"text": {"hnsw_config": {"m": 8}, "quantization_config": "Disabled"}},
        "optimizers_config": {"deleted_threshold": 0.4, "vacuum_min_vector_number": 50, "indexing_threshold": 0},
        "params": {"replication_factor": 1},
    });
    assert_eq!(rest.ok(Method::PATCH, "/collections/p", patch).await, json!(true));
    let info = info_until(&rest, "p", |i| i["status"] == "green").await;
    let vectors = &info["config"]["params"]["vectors"];
    assert_eq!(vectors["text"]["hnsw_config"]["m"], 8);
    assert_eq!(vectors["text"]["hnsw_config"]["ef_construct"], 64);
    assert_eq!(vectors["image"]["hnsw_config"]["m"], 32, "a space's own setting stays");
    assert_eq!(
        vectors["image"]["hnsw_config"]["ef_construct"], 64,
        "the collection-level diff reaches every space"
    );
    let optimizer = &info["config"]["optimizer_config"];
    assert_eq!(optimizer["deleted_threshold"], 0.4);
    assert_eq!(optimizer["vacuum_min_vector_number"], 50);
    assert_eq!(optimizer["indexing_threshold"], 0);
    assert_eq!(info["points_count"], 300);
    assert_eq!(rest.post("/collections/p/points/search", search.clone()).await, before);

    // One space's rows on disk (read where touched), reported, answering the same.
    let on_disk = json!({"vectors": {"text": {"on_disk": true}}});
    assert_eq!(rest.ok(Method::PATCH, "/collections/p", on_disk).await, json!(true));
    let vectors = rest.get("/collections/p").await["config"]["params"]["vectors"].clone();
    assert_eq!((&vectors["text"]["on_disk"], &vectors["image"]["on_disk"]), (&json!(true), &json!(false)));
    assert_eq!(vectors["text"]["memory"], "cold");
    assert_eq!(rest.post("/collections/p/points/search", search.clone()).await, before);
    // `memory` (what Qdrant now names it) overrides `on_disk`.
    let cached = json!({"vectors": {"text": {"memory": "cached", "on_disk": true}}});
    assert_eq!(rest.ok(Method::PATCH, "/collections/p", cached).await, json!(true));
    let text = rest.get("/collections/p").await["config"]["params"]["vectors"]["text"].clone();
    assert_eq!((&text["on_disk"], &text["memory"]), (&json!(false), &json!("cached")));

    // Codes (kept from 64 components) off and on again; through an alias too.
    rest.put("/collections/wide", json!({"vectors": {"v": {"size": 64, "distance": "Cosine"}}})).await;
    rest.post(
        "/collections/aliases",
        json!({"actions": [{"create_alias": {"collection_name": "wide", "alias_name": "live"}}]}),
    )
    .await;
    let codes = |info: &Value| info["config"]["params"]["vectors"]["v"]["quantization_config"].clone();
    // The collection-level setting is reported as asked for: none was, so `null`.
    let collection_level = |info: &Value| info["config"]["quantization_config"].clone();
    assert!(codes(&rest.get("/collections/wide").await).is_object());
    assert_eq!(collection_level(&rest.get("/collections/wide").await), Value::Null);
    let off = json!({"vectors": {"v": {"quantization_config": "Disabled"}}});
    assert_eq!(rest.ok(Method::PATCH, "/collections/live", off).await, json!(true));
    assert_eq!(codes(&rest.get("/collections/wide").await), Value::Null);
    let on = json!({"quantization_config": {"scalar": {"type": "int8"}}});
    assert_eq!(rest.ok(Method::PATCH, "/collections/live", on).await, json!(true));
    let info = rest.get("/collections/wide").await;
    assert_eq!(codes(&info), json!({"scalar": {"type": "int8", "always_ram": true}}));
    assert_eq!(collection_level(&info), codes(&info), "a collection-level change is reported there too");
    let binary = json!({"vectors": {"v": {"quantization_config": {"binary": {"always_ram": true}}}}});
    assert_eq!(rest.ok(Method::PATCH, "/collections/live", binary).await, json!(true));
    assert_eq!(
        codes(&rest.get("/collections/wide").await),
        json!({"binary": {"always_ram": true, "encoding": "one_bit", "query_encoding": "scalar8bits"}})
    );
    let two_bits = json!({"vectors": {"v": {"quantization_config": {"binary": {"encoding": "two_bits"}}}}});
    assert_eq!(rest.ok(Method::PATCH, "/collections/live", two_bits).await, json!(true));
    assert_eq!(
        codes(&rest.get("/collections/wide").await),
        json!({"binary": {"always_ram": true, "encoding": "two_bits", "query_encoding": "scalar8bits"}})
    );
    // Codes kept in their file's pages (always_ram: false, or memory cached): reported
    // so, per space and at the collection level, for every kind of codes.
    let binary_cached = json!({"vectors": {"v": {"quantization_config": {"binary": {"memory": "cached"}}}}});
    assert_eq!(rest.ok(Method::PATCH, "/collections/live", binary_cached).await, json!(true));
    assert_eq!(
        codes(&rest.get("/collections/wide").await),
        json!({"binary": {"always_ram": false, "encoding": "one_bit", "query_encoding": "scalar8bits"}})
    );
    let on_disk = json!({"quantization_config": {"scalar": {"type": "int8", "always_ram": false}}});
    assert_eq!(rest.ok(Method::PATCH, "/collections/live", on_disk).await, json!(true));
    let info = rest.get("/collections/wide").await;
    assert_eq!(codes(&info), json!({"scalar": {"type": "int8", "always_ram": false}}));
    assert_eq!(collection_level(&info), codes(&info));
    let cached = json!({"vectors": {"v": {"quantization_config": {"product": {"compression": "x16", "memory": "cached"}}}}});
    assert_eq!(rest.ok(Method::PATCH, "/collections/live", cached).await, json!(true));
    assert_eq!(
        codes(&rest.get("/collections/wide").await),
        json!({"product": {"compression": "x16", "always_ram": false}})
    );
    let product = json!({"quantization_config": {"product": {"compression": "x32", "always_ram": true}}});
    assert_eq!(rest.ok(Method::PATCH, "/collections/live", product).await, json!(true));
    let info = rest.get("/collections/wide").await;
    assert_eq!(codes(&info), json!({"product": {"compression": "x32", "always_ram": true}}));
    assert_eq!(collection_level(&info), codes(&info));
    // A space added now takes the collection-level setting.
    let added = json!({"dense": {"size": 64, "distance": "Dot"}});
    assert_eq!(
        rest.ok(Method::PUT, "/collections/wide/vectors/more?wait=true", added).await["status"],
        "completed"
    );
    let info = rest.get("/collections/wide").await;
    assert_eq!(info["config"]["params"]["vectors"]["more"]["quantization_config"], codes(&info));
    let disabled = json!({"quantization_config": "Disabled"});
    assert_eq!(rest.ok(Method::PATCH, "/collections/live", disabled).await, json!(true));
    let info = rest.get("/collections/wide").await;
    assert_eq!((codes(&info), collection_level(&info)), (Value::Null, Value::Null));

    // Refused, with nothing changed.
    let refused = [
        (json!({"vectors": {"nope": {"hnsw_config": {"m": 4}}}}), "nope"),
        (json!({"quantization_config": {"binary": {"encoding": "one_and_half_bits"}}}), "one_and_half_bits"),
        (json!({"quantization_config": {"product": {"always_ram": true}}}), "compression"),
        (json!({"quantization_config": {"product": {"compression": "x128"}}}), "x128"),
        (json!({"quantization_config": {"product": {"compression": "x16", "memory": "cold"}}}), "memory"),
        (json!({"quantization_config": {"turboquant": {}}}), "turboquant"),
        (json!({"quantization_config": "Enabled"}), "Enabled"),
        (json!({"params": {"replication_factor": 3}}), "replication_factor"),
        (json!({"optimizers_config": {"memmap_threshold": 10}}), "memmap_threshold"),
        (json!({"optimizers_config": {"deleted_threshold": 2.0}}), "deleted_threshold"),
        (json!({"vectors": {"text": {"on_disk": "yes"}}}), "on_disk"),
        (json!({"vectors": {"text": {"memory": "pinned"}}}), "pinned"),
        (json!({"hnsw_config": {"m": 1}}), "m"),
        (json!({"strict_mode_config": {"enabled": true}}), "strict_mode_config"),
        (json!({"sparse_vectors": {"text": {"modifier": "idf"}}}), "text"),
    ];
    let config_before = rest.get("/collections/p").await["config"].clone();
    for (body, needle) in refused {
        let (status, v) = rest.call(Method::PATCH, "/collections/p", Some(body.clone())).await;
        assert_eq!(status, 400, "{body} → {v}");
        assert!(v["status"]["error"].as_str().unwrap().contains(needle), "{body} → {v}");
    }
    assert_eq!(rest.get("/collections/p").await["config"], config_before);
    let (status, _) = rest.call(Method::PATCH, "/collections/missing", Some(json!({}))).await;
    assert_eq!(status, 404);
    drop(running);
}

#[tokio::test]
async fn named_vectors_are_added_and_removed_over_rest() {
    let (running, rest) = serve_products().await;
    let put = |name: &str, body: Value| {
        let path = format!("/collections/p/vectors/{name}?wait=true");
        let rest = &rest;
        async move { rest.call(Method::PUT, &path, Some(body)).await }
    };
    let (status, v) = put("audio", json!({"dense": {"size": 3, "distance": "Euclid"}})).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["result"]["status"], "completed");
    let (status, v) = put("words", json!({"sparse": {"modifier": "idf"}})).await;
    assert_eq!(status, 200, "{v}");
    let (status, v) = put(
        "tokens",
        json!({"dense": {"size": 2, "distance": "Dot", "multivector_config": {"comparator": "max_sim"}}}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    for (name, body, needle) in [
        ("text", json!({"dense": {"size": 3, "distance": "Dot"}}), "already"),
        ("x", json!({"dense": {"size": 3}}), "distance"),
        ("x", json!({"dense": {"size": 3, "distance": "Dot"}, "sparse": {}}), "exactly one"),
        ("x", json!({"dense": {"size": 3, "distance": "Dot", "datatype": "int4"}}), "datatype"),
        (
            "x",
            json!({"dense": {"size": 3, "distance": "Dot", "datatype": "uint8", "multivector_config": {"comparator": "max_sim"}}}),
            "multivector",
        ),
        ("x", json!({"sparse": {"modifier": "bm42"}}), "bm42"),
    ] {
        let (status, v) = put(name, body.clone()).await;
        assert_eq!(status, 400, "{body} → {v}");
        assert!(v["status"]["error"].as_str().unwrap().contains(needle), "{body} → {v}");
    }
    let (status, v) =
        put("bytes", json!({"dense": {"size": 3, "distance": "Dot", "datatype": "uint8"}})).await;
    assert_eq!(status, 200, "{v}");
    let info = rest.get("/collections/p").await;
    assert_eq!(info["config"]["params"]["vectors"]["bytes"]["datatype"], "uint8");
    assert_eq!(info["config"]["params"]["vectors"]["audio"]["size"], 3);
    assert_eq!(info["config"]["params"]["sparse_vectors"]["words"]["modifier"], "idf");
    assert_eq!(info["config"]["params"]["vectors"]["tokens"]["multivector_config"]["comparator"], "max_sim");

    // The new space is empty until written; then it answers.
    rest.put(
        "/collections/p/points/vectors?wait=true",
        json!({"points": [{"id": 4, "vector": {"audio": [1.0, 2.0, 3.0]}}]}),
    )
    .await;
    let hits = rest
        .post(
            "/collections/p/points/search",
            json!({"vector": {"name": "audio", "vector": [1.0, 2.0, 3.0]}, "limit": 3}),
        )
        .await;
    assert_eq!(hits.as_array().unwrap().len(), 1, "{hits}");
    assert_eq!(hits[0]["id"], 4);

    let (status, v) = rest.call(Method::DELETE, "/collections/p/vectors/text?wait=true", None).await;
    assert_eq!(status, 200, "{v}");
    let (status, v) = rest.call(Method::DELETE, "/collections/p/vectors/text", None).await;
    assert_eq!(status, 400, "{v}");
    let (status, _) = rest
        .call(
            Method::POST,
            "/collections/p/points/search",
            Some(json!({"vector": {"name": "text", "vector": vec![0.0; 8]}})),
        )
        .await;
    assert_eq!(status, 400);
    let info = rest.get("/collections/p").await;
    assert!(info["config"]["params"]["vectors"].get("text").is_none(), "{info}");
    assert_eq!(info["points_count"], 300);
    drop(running);
}

#[tokio::test]
async fn updates_over_grpc_with_the_official_client() {
    let (running, rest) = serve_products().await;
    let client = grpc_client(&running);
    client
        .update_collection(
            q::UpdateCollectionBuilder::new("p")
                .vectors_config(q::vectors_config_diff::Config::ParamsMap(q::VectorParamsDiffMap {
                    map: [(
                        "image".to_string(),
                        q::VectorParamsDiffBuilder::default()
                            .hnsw_config(q::HnswConfigDiffBuilder::default().m(12))
                            .quantization_config(q::quantization_config_diff::Quantization::Disabled(
                                q::Disabled {},
                            ))
                            .build(),
                    )]
                    .into(),
                }))
                .optimizers_config(q::OptimizersConfigDiffBuilder::default().deleted_threshold(0.3)),
        )
        .await
        .unwrap();
    let info = info_until(&rest, "p", |i| i["status"] == "green").await;
    assert_eq!(info["config"]["params"]["vectors"]["image"]["hnsw_config"]["m"], 12);
    assert_eq!(info["config"]["params"]["vectors"]["image"]["quantization_config"], Value::Null);
    assert_eq!(info["config"]["optimizer_config"]["deleted_threshold"], 0.3);
    let grpc_info = client.collection_info("p").await.unwrap().result.unwrap();
    assert_eq!(grpc_info.config.unwrap().optimizer_config.unwrap().deleted_threshold, Some(0.3));

    // Codes kept in their file's pages (`memory: cached`), asked for and reported
    // (`always_ram: false`, which the client marks deprecated) over gRPC.
    let on_disk = q::ScalarQuantization {
        r#type: q::QuantizationType::Int8.into(),
        memory: Some(q::Memory::Cached.into()),
        ..Default::default()
    };
    client
        .update_collection(
            q::UpdateCollectionBuilder::new("p")
                .quantization_config(q::quantization_config_diff::Quantization::Scalar(on_disk)),
        )
        .await
        .unwrap();
    let grpc_info = client.collection_info("p").await.unwrap().result.unwrap();
    let reported = grpc_info.config.unwrap().quantization_config.unwrap().quantization.unwrap();
    #[allow(deprecated)]
    let always_ram = match &reported {
        q::quantization_config::Quantization::Scalar(s) => s.always_ram,
        _ => None,
    };
    assert_eq!(always_ram, Some(false), "{reported:?}");

    client
        .create_vector_name(
            q::CreateVectorNameRequestBuilder::new(
                "p",
                "audio",
                q::DenseVectorCreationConfigBuilder::new(4, q::Distance::Dot),
            )
            .wait(true),
        )
        .await
        .unwrap();
    assert_eq!(rest.get("/collections/p").await["config"]["params"]["vectors"]["audio"]["size"], 4);
    let e = client
        .create_vector_name(q::CreateVectorNameRequestBuilder::new(
            "p",
            "audio",
            q::DenseVectorCreationConfigBuilder::new(4, q::Distance::Dot),
        ))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("audio"), "{e}");
    client.delete_vector_name(q::DeleteVectorNameRequestBuilder::new("p", "audio").wait(true)).await.unwrap();
    assert!(rest.get("/collections/p").await["config"]["params"]["vectors"].get("audio").is_none());

    let e = client
        .update_collection(
            q::UpdateCollectionBuilder::new("p")
                .params(q::CollectionParamsDiffBuilder::default().replication_factor(2)),
        )
        .await
        .unwrap_err();
    assert!(e.to_string().contains("replication_factor"), "{e}");
    let e = client.update_collection(q::UpdateCollectionBuilder::new("missing")).await.unwrap_err();
    assert!(e.to_string().contains("missing"), "{e}");
}

/// `on_disk_payload` and `payload.memory` (which overrides it, as in Qdrant) move a
/// live collection's payloads to a payload file and back over both protocols, reported
/// by info, answering the same; `pinned` is refused as Qdrant refuses it for payloads.
#[tokio::test]
async fn payloads_move_to_disk_and_back_over_both_protocols() {
    let (running, rest) = serve_products().await;
    let on_disk = |info: &Value| info["config"]["params"]["on_disk_payload"].clone();
    let read = || async {
        let filtered = json!({"filter": {"must": [{"key": "stock.n", "match": {"value": 2}}]}, "limit": 500, "with_payload": true});
        let all = json!({"limit": 500, "with_payload": true});
        (
            rest.post("/collections/p/points/scroll", filtered).await,
            rest.post("/collections/p/points/scroll", all).await,
        )
    };
    let before = read().await;
    assert_eq!(on_disk(&rest.get("/collections/p").await), json!(false), "in memory by default");
    assert_eq!(
        rest.ok(Method::PATCH, "/collections/p", json!({"params": {"on_disk_payload": true}})).await,
        json!(true)
    );
    assert_eq!(on_disk(&rest.get("/collections/p").await), json!(true));
    assert_eq!(read().await, before, "read from the payload file");
    let cached = json!({"params": {"on_disk_payload": true, "payload": {"memory": "cached"}}});
    assert_eq!(rest.ok(Method::PATCH, "/collections/p", cached).await, json!(true));
    assert_eq!(on_disk(&rest.get("/collections/p").await), json!(false), "`memory` overrides the flag");
    assert_eq!(read().await, before);
    for (body, needle) in [
        (json!({"params": {"payload": {"memory": "pinned"}}}), "pinned"),
        (json!({"params": {"payload": {"memory": "warm"}}}), "memory"),
        (json!({"params": {"payload": {"memory": "cold", "mmap": true}}}), "mmap"),
        (json!({"params": {"on_disk_payload": "yes"}}), "on_disk_payload"),
    ] {
        let (status, v) = rest.call(Method::PATCH, "/collections/p", Some(body.clone())).await;
        assert_eq!(status, 400, "{body} → {v}");
        assert!(v["status"]["error"].as_str().unwrap().contains(needle), "{body} → {v}");
    }
    let cold = json!({"vectors": {"v": {"size": 2, "distance": "Dot"}}, "payload": {"memory": "cold"}});
    rest.put("/collections/cold", cold).await;
    assert_eq!(on_disk(&rest.get("/collections/cold").await), json!(true));

    let client = grpc_client(&running);
    client
        .update_collection(
            q::UpdateCollectionBuilder::new("p")
                .params(q::CollectionParamsDiffBuilder::default().on_disk_payload(true)),
        )
        .await
        .unwrap();
    let params = |info: q::GetCollectionInfoResponse| info.result.unwrap().config.unwrap().params.unwrap();
    #[allow(deprecated)]
    let flag = |p: q::CollectionParams| p.on_disk_payload;
    assert!(flag(params(client.collection_info("p").await.unwrap())));
    assert_eq!(read().await, before);
    let pinned = q::UpdateCollectionBuilder::new("p").params(
        q::CollectionParamsDiffBuilder::default()
            .payload(q::PayloadStorageParams { memory: Some(q::Memory::Pinned.into()) }),
    );
    let err = client.update_collection(pinned).await.unwrap_err();
    assert!(err.to_string().contains("payload.memory"), "{err}");
    let cached = q::UpdateCollectionBuilder::new("p").params(
        q::CollectionParamsDiffBuilder::default()
            .payload(q::PayloadStorageParams { memory: Some(q::Memory::Cached.into()) }),
    );
    client.update_collection(cached).await.unwrap();
    assert!(!flag(params(client.collection_info("p").await.unwrap())));
    client
        .create_collection(
            q::CreateCollectionBuilder::new("g")
                .vectors_config(q::VectorParamsBuilder::new(2, q::Distance::Dot))
                .on_disk_payload(true),
        )
        .await
        .unwrap();
    assert!(flag(params(client.collection_info("g").await.unwrap())));
    assert_eq!(on_disk(&rest.get("/collections/g").await), json!(true));
    drop(running);
}

/// `hnsw_config.on_disk` (collection-level, reaching every space, or one space's) moves
/// a live collection's graphs to their files and back over both protocols, reported by
/// info at both levels, answering the same searches at a small ef.
#[tokio::test]
async fn graphs_move_to_disk_and_back_over_both_protocols() {
    let (running, rest) = serve_products().await;
    let (text, image) = query_vectors(7);
    let searches = [
        json!({"vector": {"name": "text", "vector": text}, "limit": 5, "params": {"hnsw_ef": 8}}),
        json!({"vector": {"name": "image", "vector": image}, "limit": 5, "params": {"hnsw_ef": 8}}),
    ];
    let read = || async {
        let mut out = Vec::new();
        for s in &searches {
            out.push(rest.post("/collections/p/points/search", s.clone()).await);
        }
        out
    };
    let flags = |info: &Value| {
        let v = &info["config"]["params"]["vectors"];
        (
            info["config"]["hnsw_config"]["on_disk"].clone(),
            v["text"]["hnsw_config"]["on_disk"].clone(),
            v["image"]["hnsw_config"]["on_disk"].clone(),
        )
    };
    let before = read().await;
    assert_eq!(flags(&rest.get("/collections/p").await), (json!(false), json!(false), json!(false)));
    let all = json!({"hnsw_config": {"on_disk": true}});
    assert_eq!(rest.ok(Method::PATCH, "/collections/p", all).await, json!(true));
    assert_eq!(flags(&rest.get("/collections/p").await), (json!(true), json!(true), json!(true)));
    assert_eq!(read().await, before, "read from the graph files");
    let one = json!({"vectors": {"image": {"hnsw_config": {"on_disk": false}}}});
    assert_eq!(rest.ok(Method::PATCH, "/collections/p", one).await, json!(true));
    // The collection level reports the first space's settings (`image`), as for `m`.
    assert_eq!(flags(&rest.get("/collections/p").await), (json!(false), json!(true), json!(false)));
    assert_eq!(read().await, before);
    // Qdrant's newer `memory` overrides `on_disk`: `cold` maps the graph.
    let cold = json!({"vectors": {"image": {"hnsw_config": {"memory": "cold", "on_disk": false}}}});
    assert_eq!(rest.ok(Method::PATCH, "/collections/p", cold).await, json!(true));
    assert_eq!(flags(&rest.get("/collections/p").await), (json!(true), json!(true), json!(true)));
    assert_eq!(read().await, before);
    for (body, needle) in [
        (json!({"hnsw_config": {"on_disk": "yes"}}), "hnsw_config.on_disk"),
        (json!({"hnsw_config": {"memory": "warm"}}), "hnsw_config.memory"),
        (json!({"hnsw_config": {"inline_storage": true}}), "inline_storage"),
    ] {
        let (status, v) = rest.call(Method::PATCH, "/collections/p", Some(body.clone())).await;
        assert_eq!(status, 400, "{body} → {v}");
        assert!(v["status"]["error"].as_str().unwrap().contains(needle), "{body} → {v}");
    }
    let create = json!({"vectors": {"size": 2, "distance": "Dot", "hnsw_config": {"on_disk": true}}});
    rest.put("/collections/d", create).await;
    let info = rest.get("/collections/d").await;
    assert_eq!(info["config"]["params"]["vectors"]["hnsw_config"]["on_disk"], json!(true));

    let client = grpc_client(&running);
    let hnsw = |info: q::GetCollectionInfoResponse| info.result.unwrap().config.unwrap().hnsw_config.unwrap();
    // The official client marks `on_disk` deprecated (for `memory`); Braid serves both.
    #[allow(deprecated)]
    let on_disk = |h: q::HnswConfigDiff| h.on_disk;
    client
        .update_collection(
            q::UpdateCollectionBuilder::new("p")
                .hnsw_config(q::HnswConfigDiffBuilder::default().on_disk(false)),
        )
        .await
        .unwrap();
    assert_eq!(on_disk(hnsw(client.collection_info("p").await.unwrap())), Some(false));
    assert_eq!(flags(&rest.get("/collections/p").await), (json!(false), json!(false), json!(false)));
    assert_eq!(read().await, before);
    client
        .create_collection(
            q::CreateCollectionBuilder::new("g")
                .vectors_config(q::VectorParamsBuilder::new(2, q::Distance::Dot))
                .hnsw_config(q::HnswConfigDiffBuilder::default().on_disk(true)),
        )
        .await
        .unwrap();
    assert_eq!(on_disk(hnsw(client.collection_info("g").await.unwrap())), Some(true));
    let cold = q::HnswConfigDiffBuilder::default().memory(q::Memory::Cold);
    client.update_collection(q::UpdateCollectionBuilder::new("p").hnsw_config(cold)).await.unwrap();
    assert_eq!(flags(&rest.get("/collections/p").await), (json!(true), json!(true), json!(true)));
    drop(running);
}
