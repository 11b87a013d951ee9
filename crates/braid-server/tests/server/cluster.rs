//! `braid serve` as cluster nodes (`--p2p`, `--bootstrap`): three servers in process
//! on loopback, collections created and deleted through any of them, writes of both
//! protocols replicated to every replica, a node stopped and restarted, and the calls
//! this version does not replicate refused.

use std::path::Path;
use std::time::{Duration, Instant};

use braid_server::{ClusterConfig, Server, ServerConfig, ServerError, Timing};
use qdrant_client::qdrant::{
    PointStruct as GrpcPoint, PointsIdsList, SetPayloadPointsBuilder, UpsertPointsBuilder,
};
use serde_json::{Value, json};

use crate::common::{self, Rest, Running};

async fn node_in(dir: &Path, p2p: &str, bootstrap: Option<&str>) -> Server {
    try_node_in(dir, p2p, bootstrap).await.expect("the node starts")
}

async fn try_node_in(dir: &Path, p2p: &str, bootstrap: Option<&str>) -> Result<Server, ServerError> {
    let mut config = ServerConfig::new(dir);
    config.http = "127.0.0.1:0".parse().expect("addr");
    config.grpc = "127.0.0.1:0".parse().expect("addr");
    config.cluster = Some(ClusterConfig {
        bootstrap: bootstrap.map(str::to_string),
        timing: Timing::fast(),
        ..ClusterConfig::new(p2p.parse().expect("addr"))
    });
    Server::start(config).await
}

async fn node(bootstrap: Option<&str>) -> Running {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = node_in(dir.path(), "127.0.0.1:0", bootstrap).await;
    Running { server, dir }
}

/// A node whose p2p port lies below Linux's ephemeral range (32,768 and up), so that
/// once it stops no outbound connection can be given its port before it starts again
/// there (an ephemeral p2p port was, once: the restart failed with `AddrInUse`). Each
/// call in this process tries ports no earlier call tried: when two tests tried the
/// same sequence, one test's new node took the port of another's stopped node, whose
/// restart then failed — and that cluster's leader, still sending to the port, met a
/// node of another cluster (openraft panicked on its log).
async fn node_on_a_fixed_port(bootstrap: Option<&str>) -> Running {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let dir = tempfile::tempdir().expect("temp dir");
    let first = std::process::id() % 10_000;
    for _ in 0..100 {
        let taken = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let p2p = format!("127.0.0.1:{}", 20_000 + (first + taken * 101) % 12_000);
        match try_node_in(dir.path(), &p2p, bootstrap).await {
            Ok(server) => return Running { server, dir },
            Err(ServerError::Bind { source, .. }) if source.kind() == std::io::ErrorKind::AddrInUse => {}
            Err(e) => panic!("the node starts: {e}"),
        }
    }
    panic!("no free port for the node")
}

/// A cluster of three nodes, the first started alone and the others joining through
/// it, and the URI they joined through. The third is restarted by some tests: its
/// port is fixed.
pub(crate) async fn three_nodes() -> (Running, Running, Running, String) {
    let first = node(None).await;
    let uri = first.server.cluster_uri().expect("a cluster node").to_string();
    let second = node(Some(&uri)).await;
    let third = node_on_a_fixed_port(Some(&uri)).await;
    (first, second, third, uri)
}

/// Every point of collection `c` with vectors and payload, by id.
async fn contents(rest: &Rest, c: &str) -> Vec<Value> {
    let body = json!({"limit": 10_000, "with_payload": true, "with_vector": true});
    let mut points = rest.post(&format!("/collections/{c}/points/scroll"), body).await["points"]
        .as_array()
        .expect("points")
        .clone();
    points.sort_by_key(|p| p["id"].to_string());
    points
}

/// Waits (up to 10 s) until `check` holds.
async fn eventually<F: std::future::Future<Output = bool>>(what: &str, mut check: impl FnMut() -> F) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check().await {
        assert!(Instant::now() < deadline, "{what}: not within 10 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_nodes_replicate_collections_and_the_writes_of_both_protocols() {
    let (first, second, third, _) = three_nodes().await;
    let rests: Vec<Rest> = [&first, &second, &third].map(Rest::to).into_iter().collect();

    let cluster = rests[1].get("/cluster").await;
    assert_eq!(cluster["status"], "enabled", "{cluster}");
    assert_eq!(cluster["peers"].as_object().expect("peers").len(), 3, "{cluster}");
    assert!(cluster["raft_info"]["leader"].is_u64(), "{cluster}");

    // Placements the cluster cannot make, refused with the reason.
    for (key, value) in [
        ("shard_number", 0),
        ("shard_number", 65),
        ("replication_factor", 4),
        ("write_consistency_factor", 3),
    ] {
        let mut body = common::config_json();
        body[key] = json!(value);
        let (status, v) = rests[0].call(reqwest::Method::PUT, "/collections/p", Some(body)).await;
        assert_eq!(status, 400, "{key}: {v}");
        assert!(v["status"]["error"].as_str().unwrap_or_default().contains(key), "{v}");
    }
    // What only a database on disk serves is served on a cluster node too.
    let on_disk = json!({"vectors": {"size": 64, "distance": "Dot", "on_disk": true,
        "hnsw_config": {"on_disk": true}, "quantization_config": {"binary": {"always_ram": false}}},
        "on_disk_payload": true});
    assert_eq!(rests[0].put("/collections/on_disk", on_disk).await, json!(true));
    let params = &rests[1].get("/collections/on_disk").await["config"]["params"];
    assert_eq!(params["vectors"]["quantization_config"]["binary"]["always_ram"], false, "{params}");
    let mut body = common::config_json();
    body["replication_factor"] = json!(3);
    // Acknowledged by a majority of the three replicas: a factor of 2 is met.
    body["write_consistency_factor"] = json!(2);
    assert_eq!(rests[1].put("/collections/p", body).await, json!(true));
    assert_eq!(rests[0].get("/collections/p").await["config"]["params"]["write_consistency_factor"], 2);
    let (status, v) =
        rests[2].call(reqwest::Method::PUT, "/collections/p", Some(common::config_json())).await;
    assert_eq!(status, 409, "created twice: {v}");
    for rest in &rests {
        eventually("the collection on every node", || async {
            rest.call(reqwest::Method::GET, "/collections/p", None).await.0 == 200
        })
        .await;
        let info = rest.get("/collections/p/cluster").await;
        assert_eq!(info["local_shards"].as_array().map(Vec::len), Some(1), "{info}");
        assert_eq!(info["remote_shards"].as_array().map(Vec::len), Some(2), "{info}");
    }

    // The same over gRPC, read by the official client.
    let info = common::grpc_client(&third)
        .collection_cluster_info(qdrant_client::qdrant::CollectionClusterInfoRequest {
            collection_name: "p".into(),
        })
        .await
        .expect("gRPC cluster info");
    assert_eq!((info.local_shards.len(), info.remote_shards.len()), (1, 2), "{info:?}");
    assert!(info.remote_shards.iter().all(|r| r.state == qdrant_client::qdrant::ReplicaState::Active as i32));
    assert!(info.remote_shards.iter().all(|r| r.peer_id != info.peer_id && r.peer_id != 0), "{info:?}");

    // REST writes through one node, gRPC writes through the others.
    let products = common::products();
    let points: Vec<Value> = products[..200].iter().map(common::point_json).collect();
    rests[2].put("/collections/p/points?wait=true", json!({"points": points})).await;
    let client = common::grpc_client(&first);
    let grpc_points: Vec<GrpcPoint> = (1000..1010u64)
        .map(|i| {
            let text: Vec<f32> = (0..common::TEXT).map(|k| ((i + k as u64) % 7) as f32 + 1.0).collect();
            let image: Vec<f32> = (0..common::IMAGE).map(|k| ((i * k as u64) % 5) as f32 + 1.0).collect();
            let vectors =
                std::collections::HashMap::from([("text".to_string(), text), ("image".to_string(), image)]);
            GrpcPoint::new(
                i,
                vectors,
                qdrant_client::Payload::try_from(json!({"from": "grpc"})).expect("payload"),
            )
        })
        .collect();
    client.upsert_points(UpsertPointsBuilder::new("p", grpc_points).wait(true)).await.expect("gRPC upsert");
    let second_client = common::grpc_client(&second);
    let payload = qdrant_client::Payload::try_from(json!({"tag": "seen"})).expect("payload");
    second_client
        .set_payload(
            SetPayloadPointsBuilder::new("p", payload)
                .points_selector(PointsIdsList { ids: vec![1000.into(), 3.into()] })
                .wait(true),
        )
        .await
        .expect("gRPC set payload");
    let batch = json!({"operations": [
        {"delete": {"points": [0, 1, 2]}},
        {"set_payload": {"points": [4], "payload": {"batch": 1}}},
    ]});
    assert_eq!(
        rests[0].post("/collections/p/points/batch?wait=true", batch).await.as_array().map(Vec::len),
        Some(2)
    );

    // Bad input is refused by every replica alike and changes nothing.
    let wrong = json!({"points": [{"id": 5000, "vector": {"text": [1.0, 2.0], "image": vec![1.0; 6]}}]});
    let (status, v) =
        rests[1].call(reqwest::Method::PUT, "/collections/p/points?wait=true", Some(wrong)).await;
    assert_eq!(status, 400, "{v}");

    let expected = contents(&rests[0], "p").await;
    assert_eq!(expected.len(), 200 + 10 - 3, "every acknowledged write");
    assert!(expected.iter().any(|p| p["id"] == 1000 && p["payload"]["tag"] == "seen"));
    assert!(expected.iter().any(|p| p["id"] == 4 && p["payload"]["batch"] == 1));
    for rest in &rests[1..] {
        eventually("identical replicas", || async { contents(rest, "p").await == expected }).await;
    }

    // Payload indexes through both protocols, on every replica; a filter uses them.
    let index = json!({"field_name": "category", "field_schema": "keyword"});
    rests[0].put("/collections/p/index?wait=true", index).await;
    client
        .create_field_index(qdrant_client::qdrant::CreateFieldIndexCollectionBuilder::new(
            "p",
            "price",
            qdrant_client::qdrant::FieldType::Float,
        ))
        .await
        .expect("gRPC index");
    let (status, v) = rests[1].call(reqwest::Method::DELETE, "/collections/p/index/nothing", None).await;
    assert_eq!(status, 200, "deleting an index that is not there: {v}");
    for rest in &rests {
        eventually("the indexes on every replica", || async {
            let schema = rest.get("/collections/p").await["payload_schema"].clone();
            schema["category"]["data_type"] == "keyword" && schema["price"]["data_type"] == "float"
        })
        .await;
    }
    // A batch names update operations only, not the entry's own.
    let sneaky = json!({"operations": [{"create_payload_index": {"field": "x", "kind": "keyword"}}]});
    let (status, v) = rests[0].call(reqwest::Method::POST, "/collections/p/points/batch", Some(sneaky)).await;
    assert_eq!(status, 400, "{v}");

    // Aliases are the cluster's: made through one node, resolved by every node for
    // reads and writes.
    let alias = json!({"actions": [{"create_alias": {"collection_name": "p", "alias_name": "q"}},
        {"create_alias": {"collection_name": "p", "alias_name": "old"}},
        {"rename_alias": {"old_alias_name": "old", "new_alias_name": "current"}}]});
    assert_eq!(rests[0].post("/collections/aliases", alias).await, json!(true));
    let listed = json!({"aliases": [{"alias_name": "current", "collection_name": "p"},
        {"alias_name": "q", "collection_name": "p"}]});
    for rest in &rests {
        eventually("the aliases on every node", || async { rest.get("/aliases").await == listed }).await;
        assert_eq!(rest.get("/collections/p/aliases").await, listed);
        assert_eq!(
            rest.post("/collections/q/points/count", json!({"exact": true})).await,
            rest.post("/collections/p/points/count", json!({"exact": true})).await
        );
        assert_eq!(rest.get("/collections/current/exists").await, json!({"exists": true}));
    }
    let through_alias =
        json!({"points": [{"id": 9_999, "vector": common::point_json(&products[0])["vector"]}]});
    rests[2].put("/collections/q/points?wait=true", through_alias).await;
    // Acknowledged through another node: a follower here may trail it, a majority read
    // sees it (`docs/distributed.md`).
    let read = rests[1].post("/collections/p/points?consistency=majority", json!({"ids": [9_999]})).await;
    assert_eq!(read[0]["id"], 9_999);
    rests[1].post("/collections/p/points/delete?wait=true", json!({"points": [9_999]})).await;
    // The rules of a single server: an alias on a missing collection, a collection
    // named as an alias, are refused.
    let bad = json!({"actions": [{"create_alias": {"collection_name": "nope", "alias_name": "z"}}]});
    let (status, v) = rests[1].call(reqwest::Method::POST, "/collections/aliases", Some(bad)).await;
    assert_eq!(status, 404, "{v}");
    let (status, v) =
        rests[2].call(reqwest::Method::PUT, "/collections/q", Some(common::config_json())).await;
    assert!(status == 400 || status == 409, "{v}");
    let drop = json!({"actions": [{"delete_alias": {"alias_name": "current"}}]});
    assert_eq!(rests[2].post("/collections/aliases", drop).await, json!(true));

    // Schema changes reach every replica: parameters, and a vector name added and
    // deleted.
    let patch = json!({"hnsw_config": {"m": 24}, "optimizers_config": {"indexing_threshold": 100}});
    assert_eq!(rests[0].call(reqwest::Method::PATCH, "/collections/p", Some(patch)).await.0, 200);
    let space = json!({"dense": {"size": 4, "distance": "Dot"}});
    assert_eq!(rests[1].put("/collections/p/vectors/extra?wait=true", space).await["status"], "completed");
    for rest in &rests {
        eventually("the change on every replica", || async {
            let config = rest.get("/collections/p").await["config"].clone();
            config["hnsw_config"]["m"] == 24
                && config["optimizer_config"]["indexing_threshold"] == 100
                && config["params"]["vectors"]["extra"]["size"] == 4
        })
        .await;
    }
    let extra = json!({"points": [{"id": 9_998, "vector": {"extra": [1.0, 0.0, 0.0, 0.5]}}]});
    rests[2].put("/collections/p/points?wait=true", extra).await;
    let (status, v) = rests[0]
        .call(reqwest::Method::PATCH, "/collections/p", Some(json!({"vectors": {"nope": {"m": 4}}})))
        .await;
    assert_eq!(status, 400, "a change no replica could make is refused before it is agreed: {v}");
    let (status, v) = rests[2].call(reqwest::Method::DELETE, "/collections/p/vectors/extra", None).await;
    assert_eq!(status, 200, "{v}");
    rests[0].post("/collections/p/points/delete?wait=true", json!({"points": [9_998]})).await;
    for rest in &rests {
        eventually("the vector name deleted everywhere", || async {
            rest.get("/collections/p").await["config"]["params"]["vectors"].get("extra").is_none()
        })
        .await;
    }
    let third_id = rests[2].get("/cluster").await["peer_id"].clone();
    let (status, v) =
        rests[0].call(reqwest::Method::DELETE, &format!("/cluster/peer/{third_id}"), None).await;
    assert_eq!(status, 400, "a peer holding replicas is not removed: {v}");

    // A node stopped, writes meanwhile, the node back from its directory: caught up.
    let Running { server, dir } = third;
    let p2p = server.cluster_uri().expect("uri").trim_start_matches("http://").to_string();
    server.shutdown().await.expect("stops");
    let more: Vec<Value> = products[200..].iter().map(common::point_json).collect();
    rests[1].put("/collections/p/points?wait=true", json!({"points": more})).await;
    // Entries of 0.8 MB each meanwhile in another collection: catching up sends
    // messages of several of them, past gRPC's 4 MiB default.
    rests[0].put("/collections/big", json!({"vectors": {"size": 384, "distance": "Dot"}})).await;
    for b in 0..12u64 {
        let points: Vec<Value> = (0..200u64)
            .map(|i| json!({"id": b * 200 + i, "vector": (0..384).map(|d| ((b + i + d) % 97) as f32 / 97.0 + 0.001).collect::<Vec<f32>>()}))
            .collect();
        rests[1].put("/collections/big/points?wait=true", json!({"points": points})).await;
    }
    let third = Running { server: node_in(dir.path(), &p2p, None).await, dir };
    let rest3 = Rest::to(&third);
    let expected = contents(&rests[0], "p").await;
    assert_eq!(expected.len(), 300 + 10 - 3);
    eventually("the restarted node caught up", || async { contents(&rest3, "p").await == expected }).await;
    eventually("and the large entries", || async {
        let count = json!({"exact": true});
        let v = rest3.call(reqwest::Method::POST, "/collections/big/points/count", Some(count)).await.1;
        v["result"]["count"] == 2400
    })
    .await;

    // Deleted through one node: gone from every node.
    let (status, v) = rest3.call(reqwest::Method::DELETE, "/collections/p", None).await;
    assert_eq!((status, v["result"].clone()), (200, json!(true)), "{v}");
    for rest in [&rests[0], &rests[1], &rest3] {
        eventually("deleted everywhere", || async {
            rest.call(reqwest::Method::GET, "/collections/p", None).await.0 == 404
        })
        .await;
    }
    let (status, v) = rests[0].call(reqwest::Method::DELETE, "/collections/p", None).await;
    assert_eq!((status, v["result"].clone()), (200, json!(false)), "{v}");
    // Its aliases went with it.
    assert_eq!(rests[1].get("/aliases").await, json!({"aliases": []}));
}

/// Pages through a scroll of `c` (`page` points at a time) to the end.
async fn scroll_pages(rest: &Rest, c: &str, page: usize, filter: Value) -> Vec<Value> {
    let mut pages = Vec::new();
    let mut offset = Value::Null;
    loop {
        let body = json!({"limit": page, "offset": offset, "filter": filter, "with_payload": true});
        let v = rest.post(&format!("/collections/{c}/points/scroll"), body).await;
        pages.push(v["points"].clone());
        offset = v["next_page_offset"].clone();
        if offset.is_null() {
            return pages;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sharded_collections_answer_as_one_collection_through_any_node() {
    let (first, second, third, uri) = three_nodes().await;
    let rests: Vec<Rest> = [&first, &second, &third].map(Rest::to).into_iter().collect();
    // The reference: one server holding the same points in one collection.
    let (_reference, one) = common::serve_products().await;

    // `s`: three shards, two replicas each; `t`: two shards, one replica each, so that
    // one node holds no shard of it and another only one.
    for (c, shards, replicas) in [("s", 3, 2), ("t", 2, 1)] {
        let mut body = common::config_json();
        body["shard_number"] = json!(shards);
        body["replication_factor"] = json!(replicas);
        assert_eq!(rests[0].put(&format!("/collections/{c}"), body).await, json!(true));
    }
    let products = common::products();
    let points: Vec<Value> = products.iter().map(common::point_json).collect();
    // `s` written over REST through a node, `t` over gRPC through another.
    rests[1].put("/collections/s/points?wait=true", json!({"points": points[..150]})).await;
    let columns = json!({"batch": {
        "ids": points[150..].iter().map(|p| p["id"].clone()).collect::<Vec<_>>(),
        "vectors": {
            "text": points[150..].iter().map(|p| p["vector"]["text"].clone()).collect::<Vec<_>>(),
            "image": points[150..].iter().map(|p| p["vector"]["image"].clone()).collect::<Vec<_>>(),
        },
        "payloads": points[150..].iter().map(|p| p["payload"].clone()).collect::<Vec<_>>(),
    }});
    rests[2].put("/collections/s/points?wait=true", columns).await;
    let grpc_points: Vec<GrpcPoint> = products
        .iter()
        .map(|p| {
            let id: qdrant_client::qdrant::PointId = match p.id {
                braid::PointId::Num(n) => n.into(),
                braid::PointId::Uuid(u) => u.to_string().into(),
            };
            let vectors: std::collections::HashMap<String, Vec<f32>> =
                p.vectors.clone().into_iter().collect();
            GrpcPoint::new(id, vectors, qdrant_client::Payload::try_from(p.payload.clone()).expect("payload"))
        })
        .collect();
    common::grpc_client(&third)
        .upsert_points(UpsertPointsBuilder::new("t", grpc_points).wait(true))
        .await
        .expect("gRPC upsert into shards");
    // The same changes everywhere: deletes by id, a payload by filter, an index.
    let batch = json!({"operations": [
        {"delete": {"points": [0, 1, 2, 33, 47]}},
        {"set_payload": {"filter": {"must": [{"key": "category", "match": {"value": "toys"}}]},
            "payload": {"sale": true}}},
    ]});
    let index = json!({"field_name": "category", "field_schema": "keyword"});
    for (rest, c) in [(&one, "p"), (&rests[0], "s"), (&rests[1], "t")] {
        rest.post(&format!("/collections/{c}/points/batch?wait=true"), batch.clone()).await;
        rest.put(&format!("/collections/{c}/index?wait=true"), index.clone()).await;
    }

    let (text, image) = common::query_vectors(7);
    let books = json!({"must": [{"key": "category", "match": {"value": "books"}}]});
    let reads: Vec<(&str, Value)> = vec![
        (
            "points/query",
            json!({"query": text, "using": "text", "limit": 7, "offset": 4, "with_payload": true}),
        ),
        ("points/query?timeout=30", json!({"query": image, "using": "image", "filter": books, "limit": 5})),
        (
            "points/query",
            json!({"prefetch": [{"query": text, "using": "text", "limit": 20},
            {"query": image, "using": "image", "limit": 15}], "query": {"fusion": "rrf"}, "limit": 8,
            "offset": 2, "with_payload": ["category"]}),
        ),
        (
            "points/query",
            json!({"prefetch": [{"query": text, "using": "text", "limit": 20, "filter": books},
            {"query": image, "using": "image"}], "query": {"fusion": "dbsf"},
            "filter": {"must_not": [{"key": "category", "match": {"value": "toys"}}]}, "limit": 5}),
        ),
        ("points/query", json!({"query": {"order_by": {"key": "price", "direction": "desc"}}, "limit": 5})),
        (
            "points/search",
            json!({"vector": {"name": "image", "vector": image}, "limit": 5, "with_vector": true}),
        ),
        (
            "points/query/batch",
            json!({"searches": [{"query": text, "using": "text", "limit": 3},
            {"query": image, "using": "image", "limit": 4, "filter": books}]}),
        ),
        ("points/query", json!({"query": 3, "using": "text", "limit": 4})),
        (
            "points/recommend",
            json!({"positive": [3, 150], "negative": [10], "using": "image", "limit": 5,
            "filter": books}),
        ),
        (
            "points/recommend",
            json!({"positive": [3, [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]], "using": "image",
            "strategy": "best_score", "limit": 3}),
        ),
        (
            "points/discover",
            json!({"target": 8, "context": [{"positive": 3, "negative": 150}],
            "using": "text", "limit": 4}),
        ),
        (
            "points/query",
            json!({"prefetch": [{"query": {"recommend": {"positive": [5]}}, "using": "text",
            "limit": 15}, {"query": 6, "using": "image", "limit": 15}], "query": {"fusion": "rrf"}, "limit": 6}),
        ),
        // Groups: the grouping loop over the shards' merged rankings.
        (
            "points/query/groups",
            json!({"query": text, "using": "text", "group_by": "category", "limit": 3, "group_size": 2,
            "with_payload": true}),
        ),
        (
            "points/search/groups",
            json!({"vector": {"name": "image", "vector": image}, "group_by": "stock.n", "limit": 4,
            "group_size": 3, "filter": books, "with_vector": ["image"]}),
        ),
        (
            "points/query/groups",
            json!({"prefetch": [{"query": text, "using": "text", "limit": 20},
            {"query": image, "using": "image", "limit": 15}], "query": {"fusion": "rrf"},
            "group_by": "category", "limit": 5, "group_size": 4}),
        ),
        ("points/count", json!({"filter": books, "exact": true})),
        ("points/count", json!({})),
        ("facet", json!({"key": "category"})),
        ("points", json!({"ids": [3, 150, 299, 9, "00000000-0000-0000-0000-0000b4a10009", 0]})),
    ];
    // `order_by` over a payload key needs its range index.
    let price = json!({"field_name": "price", "field_schema": "float"});
    for (rest, c) in [(&one, "p"), (&rests[2], "s"), (&rests[0], "t")] {
        rest.put(&format!("/collections/{c}/index?wait=true"), price.clone()).await;
    }
    let expected_pages = scroll_pages(&one, "p", 37, json!(null)).await;
    let expected_books = scroll_pages(&one, "p", 9, books.clone()).await;
    for c in ["s", "t"] {
        for rest in &rests {
            for (call, body) in &reads {
                let reference = one.post(&format!("/collections/p/{call}"), body.clone()).await;
                let got = rest.post(&format!("/collections/{c}/{call}"), body.clone()).await;
                assert_eq!(got, reference, "{c}: {call} {body}");
            }
            assert_eq!(scroll_pages(rest, c, 37, json!(null)).await, expected_pages, "{c}: scroll pages");
            assert_eq!(scroll_pages(rest, c, 9, books.clone()).await, expected_books, "{c}: filtered pages");
            let info = rest.get(&format!("/collections/{c}")).await;
            assert_eq!(info["points_count"], 295, "{c}: {info}");
            let mut params = one.get("/collections/p").await["config"]["params"].clone();
            params["shard_number"] = json!(if c == "s" { 3 } else { 2 });
            params["replication_factor"] = json!(if c == "s" { 2 } else { 1 });
            assert_eq!(info["config"]["params"], params, "{c}");
            assert_eq!(info["payload_schema"]["category"]["data_type"], "keyword", "{info}");
            let cluster = rest.get(&format!("/collections/{c}/cluster")).await;
            assert_eq!(cluster["shard_count"], if c == "s" { 3 } else { 2 }, "{cluster}");
        }
    }
    // A node joining afterwards holds nothing, and answers as the others.
    let fourth = node(Some(&uri)).await;
    let late = Rest::to(&fourth);
    let body = json!({"query": text, "using": "text", "limit": 5, "with_payload": true});
    for c in ["s", "t"] {
        assert_eq!(
            late.post(&format!("/collections/{c}/points/query"), body.clone()).await,
            one.post("/collections/p/points/query", body.clone()).await,
            "{c} through a node that joined later"
        );
        let cluster = late.get(&format!("/collections/{c}/cluster")).await;
        assert_eq!(cluster["local_shards"], json!([]), "{cluster}");
    }
    late.put("/collections/t/points?wait=true", json!({"points": [common::point_json(&products[0])]})).await;
    assert_eq!(late.post("/collections/t/points/count", json!({"exact": true})).await["count"], 296);

    // Listed on every node, held or not.
    for rest in &rests {
        let names = rest.get("/collections").await["collections"].to_string();
        assert!(names.contains("\"s\"") && names.contains("\"t\""), "{names}");
    }
    // gRPC reads merge alike.
    let query =
        qdrant_client::qdrant::QueryPointsBuilder::new("t").query(text.clone()).using("text").limit(5);
    let got = common::grpc_client(&second).query(query).await.expect("gRPC query over shards");
    let reference =
        one.post("/collections/p/points/query", json!({"query": text, "using": "text", "limit": 5})).await;
    let ids: Vec<String> = got.result.iter().map(|p| format!("{:?}", p.id)).collect();
    assert_eq!(ids.len(), 5);
    for (hit, expected) in got.result.iter().zip(reference["points"].as_array().expect("points")) {
        assert_eq!(hit.score, expected["score"].as_f64().expect("score") as f32);
    }
    let count = common::grpc_client(&first)
        .count(qdrant_client::qdrant::CountPointsBuilder::new("s").exact(true))
        .await
        .expect("gRPC count");
    assert_eq!(count.result.map(|r| r.count), Some(295));
    let info = common::grpc_client(&second).collection_info("s").await.expect("gRPC info");
    let params = info.result.and_then(|r| r.config).and_then(|c| c.params).expect("params");
    assert_eq!((params.shard_number, params.replication_factor), (3, Some(2)));

    // A root re-scoring prefetches runs on each shard over that shard's candidates,
    // as in Qdrant: the scores are the root's, for points among the candidates.
    let rescored = json!({"prefetch": [{"query": text, "using": "text", "limit": 40}],
        "query": image, "using": "image", "limit": 6});
    let hits = rests[1].post("/collections/s/points/query", rescored).await["points"].clone();
    let hits = hits.as_array().expect("points");
    assert_eq!(hits.len(), 6);
    let ids: Vec<Value> = hits.iter().map(|h| h["id"].clone()).collect();
    let exact = json!({"query": image, "using": "image", "limit": 6,
        "filter": {"must": [{"has_id": ids}]}});
    assert_eq!(one.post("/collections/p/points/query", exact).await["points"].as_array(), Some(hits));

    // What cannot be merged across shards yet is refused with the reason.
    // Vectors looked up in another collection, itself in shards.
    let looked_up =
        |c: &str| json!({"query": 150, "using": "text", "limit": 3, "lookup_from": {"collection": c}});
    assert_eq!(
        rests[1].post("/collections/s/points/query", looked_up("t")).await,
        one.post("/collections/p/points/query", looked_up("p")).await
    );
    // A deleted point named, or no space named among several: the status one
    // collection answers.
    for body in [json!({"query": 1, "using": "text"}), json!({"query": 4})] {
        let (status, v) =
            rests[2].call(reqwest::Method::POST, "/collections/s/points/query", Some(body.clone())).await;
        let (expected, w) = one.call(reqwest::Method::POST, "/collections/p/points/query", Some(body)).await;
        assert_eq!(status, expected, "{v} vs {w}");
        assert!(status == 404 || status == 400, "{v}");
    }
    // A group's lookup in another collection, itself in shards.
    let grouped = |lookup: &str| {
        json!({"query": text, "using": "text", "group_by": "stock.n", "limit": 4, "group_size": 2,
            "with_lookup": {"collection": lookup, "with_payload": ["name"]}})
    };
    assert_eq!(
        rests[1].post("/collections/t/points/query/groups", grouped("s")).await,
        one.post("/collections/p/points/query/groups", grouped("p")).await
    );
    let mmr = json!({"query": {"nearest": text, "mmr": {"diversity": 0.5}}, "using": "text"});
    let (status, v) = rests[0].call(reqwest::Method::POST, "/collections/s/points/query", Some(mmr)).await;
    assert_eq!(status, 400, "{v}");
    assert!(v["status"]["error"].as_str().unwrap_or_default().contains("several shards"), "{v}");

    // Deleting removes every shard from every node.
    assert_eq!(rests[2].call(reqwest::Method::DELETE, "/collections/s", None).await.1["result"], json!(true));
    for rest in &rests {
        eventually("deleted everywhere", || async {
            rest.call(reqwest::Method::GET, "/collections/s", None).await.0 == 404
        })
        .await;
    }
}

/// Who holds each shard of `c`, as `GET /collections/{c}/cluster` on `rest` reports
/// it: per shard, the peers and their replicas' states.
async fn holders(rest: &Rest, c: &str) -> Vec<Vec<(u64, String)>> {
    let info = rest.get(&format!("/collections/{c}/cluster")).await;
    let me = info["peer_id"].as_u64().expect("peer id");
    let mut shards = vec![Vec::new(); info["shard_count"].as_u64().expect("count") as usize];
    for s in info["local_shards"].as_array().expect("local") {
        shards[s["shard_id"].as_u64().expect("id") as usize]
            .push((me, s["state"].as_str().unwrap_or("").to_string()));
    }
    for s in info["remote_shards"].as_array().expect("remote") {
        let peer = s["peer_id"].as_u64().expect("peer");
        shards[s["shard_id"].as_u64().expect("id") as usize]
            .push((peer, s["state"].as_str().unwrap_or("").to_string()));
    }
    for peers in &mut shards {
        peers.sort();
    }
    shards
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_are_added_moved_and_dropped_between_peers() {
    let (first, second, third, _) = three_nodes().await;
    let rests: Vec<Rest> = [&first, &second, &third].map(Rest::to).into_iter().collect();
    let (_reference, one) = common::serve_products().await;
    let mut peers = Vec::new();
    for rest in &rests {
        peers.push(rest.get("/cluster").await["peer_id"].as_u64().expect("peer id"));
    }

    let mut body = common::config_json();
    body["shard_number"] = json!(2);
    body["replication_factor"] = json!(1);
    rests[0].put("/collections/m", body).await;
    let points: Vec<Value> = common::products().iter().map(common::point_json).collect();
    rests[1].put("/collections/m/points?wait=true", json!({"points": points})).await;
    let before = holders(&rests[0], "m").await;
    assert!(before.iter().all(|p| p.len() == 1 && p[0].1 == "Active"), "{before:?}");
    let (holder0, holder1) = (before[0][0].0, before[1][0].0);
    let spare = |holder: u64| *peers.iter().find(|p| **p != holder).expect("another peer");

    // Shard 0 replicated to a second peer: both replicas active, the same points.
    let to = spare(holder0);
    let op = json!({"replicate_shard": {"shard_id": 0, "from_peer_id": holder0, "to_peer_id": to}});
    assert_eq!(rests[2].post("/collections/m/cluster", op).await, json!(true));
    // Other nodes see the metadata's change once they have applied it.
    let mut both = vec![(holder0, "Active".to_string()), (to, "Active".to_string())];
    both.sort();
    eventually("two replicas of shard 0", || async { holders(&rests[1], "m").await[0] == both }).await;
    // Shard 1 moved to another peer.
    let target = spare(holder1);
    let op = json!({"move_shard": {"shard_id": 1, "from_peer_id": holder1, "to_peer_id": target}});
    assert_eq!(rests[0].post("/collections/m/cluster", op).await, json!(true));
    eventually("shard 1 moved", || async {
        holders(&rests[2], "m").await[1] == vec![(target, "Active".to_string())]
    })
    .await;
    // The first replica of shard 0 dropped: the copy serves alone.
    let op = json!({"drop_replica": {"shard_id": 0, "peer_id": holder0}});
    assert_eq!(rests[1].post("/collections/m/cluster", op).await, json!(true));
    eventually("shard 0 dropped from its first peer", || async {
        holders(&rests[0], "m").await[0] == vec![(to, "Active".to_string())]
    })
    .await;

    // Every read through every node answers as one collection, and writes go on.
    let (text, _) = common::query_vectors(3);
    let query = json!({"query": text, "using": "text", "limit": 10, "with_payload": true});
    let expected = one.post("/collections/p/points/query", query.clone()).await;
    for rest in &rests {
        eventually("the moved replicas answer", || async {
            rest.call(reqwest::Method::POST, "/collections/m/points/query", Some(query.clone())).await.1["result"]
                == expected
        })
        .await;
        assert_eq!(rest.post("/collections/m/points/count", json!({"exact": true})).await["count"], 300);
    }
    rests[2].post("/collections/m/points/delete?wait=true", json!({"points": [1, 2, 3]})).await;
    assert_eq!(rests[0].post("/collections/m/points/count", json!({"exact": true})).await["count"], 297);
    // The peers left without a replica deleted theirs.
    for (i, rest) in rests.iter().enumerate() {
        let local = rest.get("/collections/m/cluster").await["local_shards"].as_array().map(Vec::len);
        let held =
            holders(rest, "m").await.iter().filter(|p| p.iter().any(|(id, _)| *id == peers[i])).count();
        assert_eq!(local, Some(held), "node {i}");
    }

    // What cannot be done is refused with the reason.
    let (shard0, shard1) = (to, target);
    for (op, why) in [
        (json!({"drop_replica": {"shard_id": 0, "peer_id": shard0}}), "last active replica"),
        (
            json!({"replicate_shard": {"shard_id": 1, "from_peer_id": shard1, "to_peer_id": shard1}}),
            "already",
        ),
        (
            json!({"replicate_shard": {"shard_id": 5, "from_peer_id": shard1, "to_peer_id": shard0}}),
            "no shard 5",
        ),
        (
            json!({"move_shard": {"shard_id": 1, "from_peer_id": shard1, "to_peer_id": shard0, "method": "snapshot"}}),
            "method",
        ),
        (
            json!({"abort_transfer": {"shard_id": 1, "from_peer_id": shard1, "to_peer_id": shard0}}),
            "no transfer",
        ),
        (json!({"create_sharding_key": {"shard_key": "a"}}), "sharding_method: custom"),
    ] {
        let (status, v) =
            rests[0].call(reqwest::Method::POST, "/collections/m/cluster", Some(op.clone())).await;
        assert_eq!(status, 400, "{op}: {v}");
        assert!(v["status"]["error"].as_str().unwrap_or_default().contains(why), "{op}: {v}");
    }
    let (status, v) = rests[0].call(reqwest::Method::POST, "/cluster/recover", None).await;
    assert_eq!(status, 400, "{v}");

    // The same over gRPC, with the official client: shard 1 moved on, and a method
    // refused.
    use qdrant_client::qdrant::update_collection_cluster_setup_request::Operation;
    use qdrant_client::qdrant::{MoveShard, UpdateCollectionClusterSetupRequest};
    let next = *peers.iter().find(|p| **p != shard1).expect("another peer");
    let setup = |method: Option<i32>| UpdateCollectionClusterSetupRequest {
        collection_name: "m".into(),
        operation: Some(Operation::MoveShard(MoveShard {
            shard_id: 1,
            from_peer_id: shard1,
            to_peer_id: next,
            method,
            to_shard_id: None,
        })),
        timeout: None,
    };
    let client = common::grpc_client(&third);
    let refused =
        client.update_collection_cluster_setup(setup(Some(1))).await.expect_err("a method is refused");
    assert!(format!("{refused}").contains("method"), "{refused}");
    assert!(client.update_collection_cluster_setup(setup(None)).await.expect("gRPC move").result);
    eventually("shard 1 moved over gRPC", || async {
        holders(&rests[0], "m").await[1] == vec![(next, "Active".to_string())]
    })
    .await;
    assert_eq!(
        rests[1].post("/collections/m/points/query", query.clone()).await["points"].as_array().map(Vec::len),
        Some(10)
    );
}

/// The products of `category`, as points in REST's shape.
fn of_category(points: &[Value], category: &str) -> Vec<Value> {
    points.iter().filter(|p| p["payload"]["category"] == category).cloned().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn shard_keys_place_tenants_on_their_own_shards() {
    let (first, second, third, _) = three_nodes().await;
    let rests: Vec<Rest> = [&first, &second, &third].map(Rest::to).into_iter().collect();
    // The reference: one server holding the same points in one collection.
    let (_reference, one) = common::serve_products().await;

    // Sharded by the user: no shard until a key makes them; two per key by default.
    let mut body = common::config_json();
    body["sharding_method"] = json!("custom");
    body["shard_number"] = json!(2);
    body["replication_factor"] = json!(1);
    assert_eq!(rests[0].put("/collections/k", body).await, json!(true));
    for rest in &rests {
        // Without shards there is nothing to wait for: the others learn of it from the
        // metadata a moment later.
        eventually("the collection on every node", || async {
            rest.call(reqwest::Method::GET, "/collections/k", None).await.0 == 200
        })
        .await;
    }
    let params = rests[1].get("/collections/k").await["config"]["params"].clone();
    assert_eq!(
        (params["sharding_method"].clone(), params["shard_number"].clone()),
        (json!("custom"), json!(2))
    );
    assert_eq!(rests[2].get("/collections/k/shards").await, json!({"shard_keys": []}));
    assert_eq!(rests[0].post("/collections/k/points/count", json!({})).await["count"], 0);

    // Keys made three ways: REST, the cluster operation, gRPC.
    assert_eq!(rests[0].put("/collections/k/shards", json!({"shard_key": "books"})).await, json!(true));
    let op =
        json!({"create_sharding_key": {"shard_key": "toys", "shards_number": 1, "replication_factor": 2}});
    assert_eq!(rests[1].post("/collections/k/cluster", op).await, json!(true));
    use qdrant_client::qdrant::shard_key::Key;
    use qdrant_client::qdrant::{CreateShardKeyBuilder, CreateShardKeyRequestBuilder};
    let grpc = common::grpc_client(&third);
    grpc.create_shard_key(
        CreateShardKeyRequestBuilder::new("k")
            .request(CreateShardKeyBuilder::default().shard_key(Key::Number(7))),
    )
    .await
    .expect("a shard key made over gRPC");
    for rest in &rests {
        eventually("the keys on every node", || async {
            rest.get("/collections/k/shards").await
                == json!({"shard_keys": [{"key": "books"}, {"key": "toys"}, {"key": 7}]})
        })
        .await;
    }
    let (status, v) = rests[2]
        .call(reqwest::Method::PUT, "/collections/k/shards", Some(json!({"shard_key": "books"})))
        .await;
    assert_eq!(status, 400, "{v}");
    assert!(v["status"]["error"].as_str().unwrap_or_default().contains("already exists"), "{v}");
    let info = rests[0].get("/collections/k/cluster").await;
    assert_eq!(info["shard_count"], 5, "{info}");
    let keyed: usize = ["local_shards", "remote_shards"]
        .iter()
        .flat_map(|side| info[side].as_array().expect("shards").clone())
        .filter(|s| s["shard_key"] == "toys")
        .count();
    assert_eq!(keyed, 2, "one shard of `toys`, on two peers: {info}");

    // Each tenant written into its key: books and toys over REST, the rest over gRPC.
    let points: Vec<Value> = common::products().iter().map(common::point_json).collect();
    for (node, key) in [(0, "books"), (1, "toys")] {
        let body = json!({"points": of_category(&points, key), "shard_key": key});
        rests[node].put("/collections/k/points?wait=true", body).await;
    }
    let others: Vec<GrpcPoint> = common::products()
        .into_iter()
        .filter(|p| !matches!(p.payload["category"].as_str(), Some("books" | "toys")))
        .map(|p| {
            let id: qdrant_client::qdrant::PointId = match p.id {
                braid::PointId::Num(n) => n.into(),
                braid::PointId::Uuid(u) => u.to_string().into(),
            };
            let vectors: std::collections::HashMap<String, Vec<f32>> = p.vectors.into_iter().collect();
            GrpcPoint::new(id, vectors, qdrant_client::Payload::try_from(p.payload).expect("payload"))
        })
        .collect();
    grpc.upsert_points(UpsertPointsBuilder::new("k", others).wait(true).shard_key_selector(vec![7u64]))
        .await
        .expect("a gRPC upsert into key 7");
    // Writes naming points need a key the collection has.
    for (body, why) in [
        (json!({"points": [points[0].clone()]}), "Shard key not specified"),
        (json!({"points": [points[0].clone()], "shard_key": "garden"}), "not found"),
    ] {
        let (status, v) = rests[2].call(reqwest::Method::PUT, "/collections/k/points", Some(body)).await;
        assert_eq!(status, 400, "{v}");
        assert!(v["status"]["error"].as_str().unwrap_or_default().contains(why), "{why}: {v}");
    }

    // Reads of a key answer as the collection filtered to that tenant; without a key,
    // as the whole collection.
    let category = |values: Value| json!({"must": [{"key": "category", "match": {"any": values}}]});
    let (text, _) = common::query_vectors(5);
    let query = json!({"query": text, "using": "text", "limit": 9, "with_payload": true});
    let reads: Vec<(Value, Option<Value>)> = vec![
        (json!(null), None),
        (json!("books"), Some(category(json!(["books"])))),
        (json!(["books", "toys"]), Some(category(json!(["books", "toys"])))),
        (json!(7), Some(json!({"must_not": [{"key": "category", "match": {"any": ["books", "toys"]}}]}))),
    ];
    for (key, filter) in &reads {
        let mut reference = query.clone();
        reference["filter"] = filter.clone().unwrap_or(Value::Null);
        let expected = one.post("/collections/p/points/query", reference).await;
        let count = one.post("/collections/p/points/count", json!({"filter": filter, "exact": true})).await;
        let mut keyed = query.clone();
        keyed["shard_key"] = key.clone();
        for rest in &rests {
            assert_eq!(rest.post("/collections/k/points/query", keyed.clone()).await, expected, "{key}");
            let counted =
                rest.post("/collections/k/points/count", json!({"shard_key": key, "exact": true})).await;
            assert_eq!(counted, count, "{key}");
        }
    }
    let batch = json!({"searches": [
        {"vector": {"name": "text", "vector": text}, "limit": 4, "shard_key": "toys"},
        {"vector": {"name": "text", "vector": text}, "limit": 2, "shard_key": "toys"},
    ]});
    let toys = category(json!(["toys"]));
    let expected = one
        .post(
            "/collections/p/points/search/batch",
            json!({"searches": [
                {"vector": {"name": "text", "vector": text}, "limit": 4, "filter": toys},
                {"vector": {"name": "text", "vector": text}, "limit": 2, "filter": toys},
            ]}),
        )
        .await;
    assert_eq!(rests[1].post("/collections/k/points/search/batch", batch).await, expected);
    let scrolled = rests[2]
        .post(
            "/collections/k/points/scroll",
            json!({"shard_key": "toys", "limit": 100, "with_payload": true}),
        )
        .await;
    let reference = one
        .post("/collections/p/points/scroll", json!({"filter": toys, "limit": 100, "with_payload": true}))
        .await;
    assert_eq!(scrolled, reference);
    // A stronger read consistency reads every shard from its leader: the same answers.
    for rest in &rests {
        for consistency in ["all", "majority", "quorum", "2", "1"] {
            let path = format!("/collections/k/points/count?consistency={consistency}");
            assert_eq!(rest.post(&path, json!({"exact": true})).await["count"], 300, "{consistency}");
        }
        let path = "/collections/k/points/query?consistency=all";
        let expected = one.post("/collections/p/points/query", query.clone()).await;
        assert_eq!(rest.post(path, query.clone()).await, expected);
    }
    for bad in ["0", "most", "-1"] {
        let path = format!("/collections/k/points/count?consistency={bad}");
        let (status, v) = rests[1].call(reqwest::Method::POST, &path, Some(json!({}))).await;
        assert_eq!(status, 400, "{bad}: {v}");
    }
    let read_all = qdrant_client::qdrant::read_consistency::Value::Type(
        qdrant_client::qdrant::ReadConsistencyType::All as i32,
    );
    let counted = grpc
        .count(qdrant_client::qdrant::CountPointsBuilder::new("k").exact(true).read_consistency(read_all))
        .await
        .expect("a gRPC count read from the leaders");
    assert_eq!(counted.result.expect("count").count, 300);
    let (status, v) = rests[0]
        .call(reqwest::Method::POST, "/collections/k/points/count", Some(json!({"shard_key": "garden"})))
        .await;
    assert_eq!(
        (status, v["status"]["error"].as_str().unwrap_or_default().contains("not found")),
        (400, true),
        "{v}"
    );
    let counted = grpc
        .count(
            qdrant_client::qdrant::CountPointsBuilder::new("k")
                .exact(true)
                .shard_key_selector("books".to_string()),
        )
        .await
        .expect("a gRPC count of one key");
    assert_eq!(counted.result.expect("count").count, 60);

    // A write by filter without a key reaches every shard; with one, its key's only.
    let sale =
        json!({"payload": {"sale": true}, "filter": {"must": [{"key": "price", "range": {"lt": 100}}]}});
    rests[1].post("/collections/k/points/payload?wait=true", sale.clone()).await;
    let mut books_only = sale.clone();
    books_only["payload"] = json!({"shelf": "b"});
    books_only["shard_key"] = json!("books");
    rests[2].post("/collections/k/points/payload?wait=true", books_only).await;
    let on_sale = json!({"must": [{"key": "sale", "match": {"value": true}}]});
    let shelved = json!({"must": [{"key": "shelf", "match": {"value": "b"}}]});
    let counted = |filter: Value| {
        let rest = &rests[0];
        async move {
            rest.post("/collections/k/points/count", json!({"filter": filter, "exact": true})).await["count"]
                .clone()
        }
    };
    let reference = one
        .post(
            "/collections/p/points/count",
            json!({"filter": {"must": [{"key": "price", "range": {"lt": 100}}]}}),
        )
        .await["count"]
        .clone();
    assert_eq!(counted(on_sale).await, reference);
    let books_cheap = one
        .post(
            "/collections/p/points/count",
            json!({"filter": {"must": [{"key": "price", "range": {"lt": 100}}, {"key": "category", "match": {"value": "books"}}]}}),
        )
        .await["count"]
        .clone();
    assert_eq!(counted(shelved).await, books_cheap);

    // A key dropped takes its shards and points; the other shards keep their numbers.
    let ids_before: Vec<u64> = shard_ids(&rests[0], "k").await;
    assert_eq!(
        rests[2].post("/collections/k/shards/delete", json!({"shard_key": "toys"})).await,
        json!(true)
    );
    for rest in &rests {
        eventually("the key dropped everywhere", || async {
            rest.get("/collections/k/shards").await == json!({"shard_keys": [{"key": "books"}, {"key": 7}]})
        })
        .await;
        assert_eq!(rest.post("/collections/k/points/count", json!({"exact": true})).await["count"], 240);
    }
    let ids_after = shard_ids(&rests[1], "k").await;
    assert_eq!(ids_after.len(), 4);
    assert!(ids_after.iter().all(|id| ids_before.contains(id)), "{ids_before:?} → {ids_after:?}");
    let (status, v) = rests[0]
        .call(reqwest::Method::POST, "/collections/k/shards/delete", Some(json!({"shard_key": "toys"})))
        .await;
    assert_eq!(status, 400, "{v}");

    // Keys are refused where they mean nothing: a collection placed by point ids, a
    // server running alone.
    rests[0].put("/collections/auto", common::config_json()).await;
    let (status, v) = rests[1]
        .call(
            reqwest::Method::PUT,
            "/collections/auto/points",
            Some(json!({"points": [points[0].clone()], "shard_key": "books"})),
        )
        .await;
    assert_eq!(status, 400, "{v}");
    assert!(v["status"]["error"].as_str().unwrap_or_default().contains("sharding_method"), "{v}");
    for (method, path, body) in [
        (reqwest::Method::PUT, "/collections/p/shards", json!({"shard_key": "books"})),
        (reqwest::Method::POST, "/collections/p/points/count", json!({"shard_key": "books"})),
        (
            reqwest::Method::PUT,
            "/collections/p/points",
            json!({"points": [points[0].clone()], "shard_key": "a"}),
        ),
    ] {
        let (status, v) = one.call(method, path, Some(body)).await;
        assert_eq!(status, 400, "{path}: {v}");
        assert!(v["status"]["error"].as_str().unwrap_or_default().contains("cluster"), "{path}: {v}");
    }
    let mut custom = common::config_json();
    custom["sharding_method"] = json!("custom");
    assert_eq!(one.call(reqwest::Method::PUT, "/collections/q", Some(custom)).await.0, 400);
}

/// The shard numbers of collection `c`, as its cluster information reports them.
async fn shard_ids(rest: &Rest, c: &str) -> Vec<u64> {
    let info = rest.get(&format!("/collections/{c}/cluster")).await;
    let mut ids: Vec<u64> = ["local_shards", "remote_shards"]
        .iter()
        .flat_map(|side| info[side].as_array().expect("shards").clone())
        .filter_map(|s| s["shard_id"].as_u64())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}
