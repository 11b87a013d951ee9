//! `braid serve` as cluster nodes (`--p2p`, `--bootstrap`): three servers in process
//! on loopback, collections created and deleted through any of them, writes of both
//! protocols replicated to every replica, a node stopped and restarted, and the calls
//! this version does not replicate refused.

use std::path::Path;
use std::time::{Duration, Instant};

use braid_server::{ClusterConfig, Server, ServerConfig, Timing};
use qdrant_client::qdrant::{
    PointStruct as GrpcPoint, PointsIdsList, SetPayloadPointsBuilder, UpsertPointsBuilder,
};
use serde_json::{Value, json};

use crate::common::{self, Rest, Running};

async fn node_in(dir: &Path, p2p: &str, bootstrap: Option<&str>) -> Server {
    let mut config = ServerConfig::new(dir);
    config.http = "127.0.0.1:0".parse().expect("addr");
    config.grpc = "127.0.0.1:0".parse().expect("addr");
    config.cluster = Some(ClusterConfig {
        bootstrap: bootstrap.map(str::to_string),
        timing: Timing::fast(),
        ..ClusterConfig::new(p2p.parse().expect("addr"))
    });
    Server::start(config).await.expect("the node starts")
}

async fn node(bootstrap: Option<&str>) -> Running {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = node_in(dir.path(), "127.0.0.1:0", bootstrap).await;
    Running { server, dir }
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
    let first = node(None).await;
    let uri = first.server.cluster_uri().expect("a cluster node").to_string();
    let second = node(Some(&uri)).await;
    let third = node(Some(&uri)).await;
    let rests: Vec<Rest> = [&first, &second, &third].map(Rest::to).into_iter().collect();

    let cluster = rests[1].get("/cluster").await;
    assert_eq!(cluster["status"], "enabled", "{cluster}");
    assert_eq!(cluster["peers"].as_object().expect("peers").len(), 3, "{cluster}");
    assert!(cluster["raft_info"]["leader"].is_u64(), "{cluster}");

    // The placement this version serves, refused otherwise with the reason.
    for (key, value) in [("shard_number", 2), ("replication_factor", 2)] {
        let mut body = common::config_json();
        body[key] = json!(value);
        let (status, v) = rests[0].call(reqwest::Method::PUT, "/collections/p", Some(body)).await;
        assert_eq!(status, 400, "{key}: {v}");
        assert!(v["status"]["error"].as_str().unwrap_or_default().contains(key), "{v}");
    }
    // What only a database on disk serves is served on a cluster node too.
    let on_disk = json!({"vectors": {"size": 4, "distance": "Dot", "on_disk": true,
        "hnsw_config": {"on_disk": true}}, "on_disk_payload": true});
    assert_eq!(rests[0].put("/collections/on_disk", on_disk).await, json!(true));
    let mut body = common::config_json();
    body["replication_factor"] = json!(3);
    assert_eq!(rests[1].put("/collections/p", body).await, json!(true));
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

    // Changes outside the points and indexes are not replicated yet: refused, with the
    // reason.
    let alias = json!({"actions": [{"create_alias": {"collection_name": "p", "alias_name": "q"}}]});
    let (status, v) = rests[0].call(reqwest::Method::POST, "/collections/aliases", Some(alias)).await;
    assert_eq!(status, 400, "{v}");
    assert!(v["status"]["error"].as_str().unwrap_or_default().contains("distributed mode"), "{v}");
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
}
