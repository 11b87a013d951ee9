//! Bad requests get the right status and Qdrant's error body while valid traffic runs
//! alongside; the server keeps serving. Both protocols check the API key.

use crate::common;

use qdrant_client::Qdrant;
use qdrant_client::qdrant::SearchPoints;
use serde_json::{Value, json};

use common::*;

const KEY: &str = "s3cret-key";

/// What, method, URL, API key, body, expected status, words the error must contain.
type Case = (&'static str, reqwest::Method, String, Option<&'static str>, Option<Vec<u8>>, u16, &'static str);

async fn send(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    key: Option<&str>,
    body: Option<Vec<u8>>,
) -> (u16, Value) {
    let mut request = client.request(method, url).header("content-type", "application/json");
    if let Some(key) = key {
        request = request.header("api-key", key);
    }
    if let Some(body) = body {
        request = request.body(body);
    }
    let response = request.send().await.expect("the server answers");
    let status = response.status().as_u16();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, body)
}

/// Creates collection `p` over REST and upserts the first `n` products into it.
async fn collection_with_products(client: &reqwest::Client, base: &str, key: Option<&str>, n: usize) {
    let config = config_json().to_string().into_bytes();
    let (status, body) =
        send(client, reqwest::Method::PUT, format!("{base}/collections/p"), key, Some(config)).await;
    assert_eq!(status, 200, "{body}");
    let points = json!({"points": products().iter().take(n).map(point_json).collect::<Vec<_>>()});
    let url = format!("{base}/collections/p/points?wait=true");
    let (status, body) =
        send(client, reqwest::Method::PUT, url, key, Some(points.to_string().into_bytes())).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_are_refused_clearly_while_good_ones_keep_working() {
    let running = start(Some(KEY), Some(64 * 1024)).await;
    let base = format!("http://{}", running.server.http_addr());
    let client = reqwest::Client::new();
    let put = reqwest::Method::PUT;
    let post = reqwest::Method::POST;
    collection_with_products(&client, &base, Some(KEY), 100).await;

    let (tq, _) = query_vectors(3);
    let good = json!({"vector": {"name": "text", "vector": tq}, "limit": 3}).to_string().into_bytes();
    let search = format!("{base}/collections/p/points/search");
    let huge = vec![b' '; 100 * 1024];
    let cases: Vec<Case> = vec![
        ("malformed JSON", post.clone(), search.clone(), Some(KEY), Some(b"{\"vector\": [1,".to_vec()), 400, "JSON"),
        ("wrong type", post.clone(), search.clone(), Some(KEY), Some(br#"{"vector": "abc"}"#.to_vec()), 400, "vector"),
        ("wrong dimension", post.clone(), search.clone(), Some(KEY), Some(br#"{"vector": {"name": "text", "vector": [1, 2]}}"#.to_vec()), 400, "dimension"),
        ("unknown vector", post.clone(), search.clone(), Some(KEY), Some(br#"{"vector": {"name": "audio", "vector": [1]}}"#.to_vec()), 400, "audio"),
        ("malformed filter", post.clone(), search.clone(), Some(KEY), Some(br#"{"vector": {"name": "text", "vector": [1,0,0,0,0,0,0,0]}, "filter": {"must": [{"key": 5}]}}"#.to_vec()), 400, "filter"),
        ("unknown collection", post.clone(), format!("{base}/collections/nope/points/search"), Some(KEY), Some(good.clone()), 404, "nope"),
        ("oversized body", post.clone(), search.clone(), Some(KEY), Some(huge), 413, "too large"),
        ("missing API key", post.clone(), search.clone(), None, Some(good.clone()), 401, "API key"),
        ("wrong API key", post.clone(), search.clone(), Some("nope"), Some(good.clone()), 403, "Invalid API key"),
        ("limit 0", post.clone(), search.clone(), Some(KEY), Some(br#"{"vector": {"name": "text", "vector": [1,0,0,0,0,0,0,0]}, "limit": 0}"#.to_vec()), 400, "limit"),
        ("negative offset", post.clone(), search.clone(), Some(KEY), Some(br#"{"vector": {"name": "text", "vector": [1,0,0,0,0,0,0,0]}, "offset": -1}"#.to_vec()), 400, "offset"),
        ("unknown fusion", post.clone(), format!("{base}/collections/p/points/query"), Some(KEY), Some(br#"{"prefetch": [], "query": {"fusion": "magic"}}"#.to_vec()), 400, "fusion"),
        ("bad distance", put.clone(), format!("{base}/collections/q"), Some(KEY), Some(br#"{"vectors": {"size": 3, "distance": "Hamming"}}"#.to_vec()), 400, "distance"),
        ("product quantization without a ratio", put.clone(), format!("{base}/collections/q"), Some(KEY), Some(br#"{"vectors": {"size": 64, "distance": "Cosine", "quantization_config": {"product": {}}}}"#.to_vec()), 400, "compression"),
        ("uint4 scalar quantization", put.clone(), format!("{base}/collections/q"), Some(KEY), Some(br#"{"vectors": {"size": 64, "distance": "Cosine"}, "quantization_config": {"scalar": {"type": "uint4"}}}"#.to_vec()), 400, "int8"),
        ("payload not an object", post.clone(), format!("{base}/collections/p/points/payload"), Some(KEY), Some(br#"{"payload": [1], "points": [1]}"#.to_vec()), 400, "object"),
        ("NaN-free: string id", put.clone(), format!("{base}/collections/p/points"), Some(KEY), Some(br#"{"points": [{"id": "not-a-uuid", "vector": {"text": [1,0,0,0,0,0,0,0]}}]}"#.to_vec()), 400, "id"),
        ("unknown path", reqwest::Method::GET, format!("{base}/nowhere"), Some(KEY), None, 404, "Not found"),
        ("missing collection, Qdrant's words", post.clone(), format!("{base}/collections/nope/points/count"), Some(KEY), Some(b"{}".to_vec()), 404, "Not found: Collection `nope` doesn't exist!"),
        ("method not allowed", reqwest::Method::DELETE, format!("{base}/collections/p/points/search"), Some(KEY), None, 405, "Method not allowed"),
        // Fields Braid does not serve are refused by name, never dropped.
        ("conditional upsert", put.clone(), format!("{base}/collections/p/points"), Some(KEY), Some(br#"{"points": [{"id": 1, "vector": {"text": [1,0,0,0,0,0,0,0]}}], "update_filter": {"must": []}}"#.to_vec()), 400, "update_filter"),
        ("insert-only upsert", put.clone(), format!("{base}/collections/p/points"), Some(KEY), Some(br#"{"points": [{"id": 1, "vector": {"text": [1,0,0,0,0,0,0,0]}}], "update_mode": "insert_only"}"#.to_vec()), 400, "update_mode"),
        ("scroll order_by without a range index", post.clone(), format!("{base}/collections/p/points/scroll"), Some(KEY), Some(br#"{"order_by": "price"}"#.to_vec()), 400, "needs a range index"),
        ("scroll order_by with an offset", post.clone(), format!("{base}/collections/p/points/scroll"), Some(KEY), Some(br#"{"order_by": "price", "offset": 3}"#.to_vec()), 400, "offset cannot be used with order_by"),
        ("order_by with a bad direction", post.clone(), format!("{base}/collections/p/points/scroll"), Some(KEY), Some(br#"{"order_by": {"key": "price", "direction": "up"}}"#.to_vec()), 400, "direction"),
        ("mmr diversity out of range", post.clone(), format!("{base}/collections/p/points/query"), Some(KEY), Some(br#"{"query": {"nearest": [1,0,0,0,0,0,0,0], "mmr": {"diversity": 1.5}}, "using": "text"}"#.to_vec()), 400, "diversity must be between 0 and 1"),
        ("sparse index on disk", put.clone(), format!("{base}/collections/q"), Some(KEY), Some(br#"{"vectors": {"size": 3, "distance": "Dot"}, "sparse_vectors": {"bm25": {"index": {"on_disk": true}}}}"#.to_vec()), 400, "on_disk"),
        ("dense vector for a sparse space", put.clone(), format!("{base}/collections/p/points"), Some(KEY), Some(br#"{"points": [{"id": 1, "vector": {"text": {"indices": [1], "values": [0.5]}}}]}"#.to_vec()), 400, "dense"),
        ("unknown model", post.clone(), format!("{base}/collections/p/points/query"), Some(KEY), Some(br#"{"query": {"text": "shoes", "model": "openai/x"}, "using": "text"}"#.to_vec()), 400, "bm25"),
        ("optimizer config at create", put.clone(), format!("{base}/collections/q"), Some(KEY), Some(br#"{"vectors": {"size": 3, "distance": "Dot"}, "optimizers_config": {"memmap_threshold": 1000}}"#.to_vec()), 400, "memmap_threshold"),
        ("read consistency of no replica", post.clone(), format!("{base}/collections/p/points/count?consistency=0"), Some(KEY), Some(b"{}".to_vec()), 400, "consistency"),
        ("unknown write ordering", put.clone(), format!("{base}/collections/p/points?ordering=fast"), Some(KEY), Some(br#"{"points": []}"#.to_vec()), 400, "ordering"),
        ("shard key on a server running alone", post.clone(), format!("{base}/collections/p/points/count"), Some(KEY), Some(br#"{"shard_key": "a"}"#.to_vec()), 400, "cluster"),
        ("custom sharding on a server running alone", put.clone(), format!("{base}/collections/q"), Some(KEY), Some(br#"{"vectors": {"size": 3, "distance": "Dot"}, "sharding_method": "custom"}"#.to_vec()), 400, "sharding_method"),
        ("two shards", put.clone(), format!("{base}/collections/q"), Some(KEY), Some(br#"{"vectors": {"size": 3, "distance": "Dot"}, "shard_number": 2}"#.to_vec()), 400, "shard_number"),
        ("bfloat16 vectors", put.clone(), format!("{base}/collections/q"), Some(KEY), Some(br#"{"vectors": {"size": 3, "distance": "Dot", "datatype": "bfloat16"}}"#.to_vec()), 400, "datatype"),
        ("misspelt search field", post.clone(), search.clone(), Some(KEY), Some(br#"{"vector": {"name": "text", "vector": [1,0,0,0,0,0,0,0]}, "filtr": {}}"#.to_vec()), 400, "filtr"),
        ("search params oversampling below 1", post.clone(), search.clone(), Some(KEY), Some(br#"{"vector": {"name": "text", "vector": [1,0,0,0,0,0,0,0]}, "params": {"quantization": {"oversampling": 0.5}}}"#.to_vec()), 400, "oversampling"),
        ("search params quantization field", post.clone(), search.clone(), Some(KEY), Some(br#"{"vector": {"name": "text", "vector": [1,0,0,0,0,0,0,0]}, "params": {"quantization": {"rescore": false, "exact": true}}}"#.to_vec()), 400, "exact"),
        ("1.5-bit binary quantization", put.clone(), format!("{base}/collections/q"), Some(KEY), Some(br#"{"vectors": {"size": 64, "distance": "Cosine", "quantization_config": {"binary": {"encoding": "one_and_half_bits"}}}}"#.to_vec()), 400, "one_and_half_bits"),
    ];

    // Valid searches run throughout; every one must succeed.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let background = {
        let (client, search, good, stop) = (client.clone(), search.clone(), good.clone(), stop.clone());
        tokio::spawn(async move {
            let mut served = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let (status, body) =
                    send(&client, reqwest::Method::POST, search.clone(), Some(KEY), Some(good.clone())).await;
                assert_eq!(status, 200, "{body}");
                assert_eq!(body["result"].as_array().map(Vec::len), Some(3));
                served += 1;
            }
            served
        })
    };
    let mut pending = Vec::new();
    for round in 0..3 {
        for (what, method, url, key, body, status, words) in cases.clone() {
            let client = client.clone();
            pending.push(tokio::spawn(async move {
                let (got, body) = send(&client, method, url, key, body).await;
                assert_eq!(got, status, "{what} (round {round}): {body}");
                let message = body["status"]["error"].as_str().unwrap_or_default().to_lowercase();
                assert!(message.contains(&words.to_lowercase()), "{what}: `{message}` lacks `{words}`");
                assert!(body["time"].is_number(), "{what}: no time in {body}");
            }));
        }
    }
    for p in pending {
        p.await.expect("case");
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let served = background.await.expect("background traffic");
    assert!(served > 0);

    // gRPC: no key, wrong key, right key.
    let url = format!("http://{}", running.server.grpc_addr());
    let request = || SearchPoints {
        collection_name: "p".into(),
        vector: tq.clone(),
        vector_name: Some("text".into()),
        limit: 3,
        ..Default::default()
    };
    let none = Qdrant::from_url(&url).skip_compatibility_check().build().expect("client");
    let err = none.search_points(request()).await.expect_err("no key");
    assert!(err.to_string().contains("API key"), "{err}");
    let wrong = Qdrant::from_url(&url).api_key("nope").skip_compatibility_check().build().expect("client");
    assert!(wrong.search_points(request()).await.is_err());
    let right = Qdrant::from_url(&url).api_key(KEY).skip_compatibility_check().build().expect("client");
    assert_eq!(right.search_points(request()).await.expect("search").result.len(), 3);
    let bad_dim = SearchPoints { vector: vec![1.0, 2.0], ..request() };
    let err = right.search_points(bad_dim).await.expect_err("wrong dimension");
    assert!(err.to_string().contains("dimension"), "{err}");
    running.server.shutdown().await.expect("shutdown");
}

/// Probes carry no key: `/`, `/healthz`, `/livez`, `/readyz` and gRPC `HealthCheck` are
/// open, as in Qdrant; everything else still wants the key. An empty key is refused at
/// start, so an empty header can never get in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_is_open_and_an_empty_key_is_refused() {
    let running = start(Some(KEY), None).await;
    let base = format!("http://{}", running.server.http_addr());
    let client = reqwest::Client::new();
    for path in ["/", "/healthz", "/livez", "/readyz"] {
        let response = client.get(format!("{base}{path}")).send().await.expect("answers");
        assert_eq!(response.status().as_u16(), 200, "{path}");
    }
    let (status, _) = send(&client, reqwest::Method::GET, format!("{base}/collections"), None, None).await;
    assert_eq!(status, 401);
    let (status, _) =
        send(&client, reqwest::Method::GET, format!("{base}/collections"), Some(""), None).await;
    assert_eq!(status, 403);
    let url = format!("http://{}", running.server.grpc_addr());
    let none = Qdrant::from_url(&url).skip_compatibility_check().build().expect("client");
    none.health_check().await.expect("health without a key");
    assert!(none.list_collections().await.is_err(), "listing without a key");
    running.server.shutdown().await.expect("shutdown");

    for empty in ["", "  "] {
        let dir = tempfile::tempdir().expect("dir");
        let mut config = braid_server::ServerConfig::new(dir.path());
        config.http = "127.0.0.1:0".parse().expect("addr");
        config.grpc = "127.0.0.1:0".parse().expect("addr");
        config.api_key = Some(empty.to_string());
        let err = braid_server::Server::start(config).await.expect_err("an empty key");
        assert!(
            matches!(err, braid_server::ServerError::Config { .. }) && err.to_string().contains("empty"),
            "{err}"
        );
    }
}

/// A collection whose log cannot be synced makes `/readyz` fail with what failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_fails_while_a_log_cannot_be_synced() {
    let running = start(None, None).await;
    let base = format!("http://{}", running.server.http_addr());
    let db = running.server.database().clone();
    db.create_collection("p", config()).expect("create");
    // Fail a sync on this thread: the collection keeps the failure.
    braid::storage::fault::fail_next_syncs(1);
    assert!(db.collection("p").expect("p").sync().is_err());
    let response = reqwest::get(format!("{base}/readyz")).await.expect("answers");
    assert_eq!(response.status().as_u16(), 503);
    let body: Value = response.json().await.expect("json");
    assert!(body["status"]["failures"]["p"]["sync"].is_string(), "{body}");
    assert_eq!(reqwest::get(format!("{base}/livez")).await.expect("answers").status().as_u16(), 200);
    running.server.shutdown().await.expect_err("the final flush cannot sync a poisoned log");
}

/// Qdrant's `timeout` (seconds) on searches and queries: a query past it stops at its
/// next leaf and answers 408 / DEADLINE_EXCEEDED; a generous one changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_honour_their_timeout() {
    let running = start(None, None).await;
    let base = format!("http://{}", running.server.http_addr());
    let client = reqwest::Client::new();
    let post = reqwest::Method::POST;
    collection_with_products(&client, &base, None, 50).await;
    let query = json!({"query": vec![0.5; TEXT], "using": "text", "limit": 3}).to_string().into_bytes();
    let (status, body) = send(
        &client,
        post.clone(),
        format!("{base}/collections/p/points/query?timeout=0"),
        None,
        Some(query.clone()),
    )
    .await;
    assert_eq!(status, 408, "{body}");
    assert!(body["status"]["error"].as_str().unwrap_or_default().contains("timed out"), "{body}");
    let (status, body) =
        send(&client, post, format!("{base}/collections/p/points/query?timeout=60"), None, Some(query)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["result"]["points"].as_array().map(Vec::len), Some(3));

    let url = format!("http://{}", running.server.grpc_addr());
    let grpc = Qdrant::from_url(&url).skip_compatibility_check().build().expect("client");
    let search = |timeout| SearchPoints {
        collection_name: "p".into(),
        vector: vec![0.5; TEXT],
        vector_name: Some("text".into()),
        limit: 3,
        timeout,
        ..Default::default()
    };
    let err = grpc.search_points(search(Some(0))).await.expect_err("timed out");
    assert!(err.to_string().contains("timed out"), "{err}");
    assert_eq!(grpc.search_points(search(Some(60))).await.expect("search").result.len(), 3);
    running.server.shutdown().await.expect("shutdown");
}

fn server_config(dir: &std::path::Path) -> braid_server::ServerConfig {
    let mut config = braid_server::ServerConfig::new(dir);
    config.http = "127.0.0.1:0".parse().expect("addr");
    config.grpc = "127.0.0.1:0".parse().expect("addr");
    config
}

/// Idle sockets cannot lock new clients out for good: past `max_connections` a new
/// connection waits for one to close, then is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_cap_wait_for_one_to_close() {
    let dir = tempfile::tempdir().expect("dir");
    let mut config = server_config(dir.path());
    config.max_connections = 2;
    let server = braid_server::Server::start(config).await.expect("start");
    let addr = server.http_addr();
    let idle: Vec<tokio::net::TcpStream> = vec![
        tokio::net::TcpStream::connect(addr).await.expect("connect"),
        tokio::net::TcpStream::connect(addr).await.expect("connect"),
    ];
    let client = reqwest::Client::new();
    let url = format!("http://{addr}/healthz");
    let waiting = tokio::spawn({
        let client = client.clone();
        async move { client.get(url).send().await.map(|r| r.status().as_u16()) }
    });
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(!waiting.is_finished(), "a third connection was served past a cap of 2");
    drop(idle);
    let status = tokio::time::timeout(std::time::Duration::from_secs(30), waiting)
        .await
        .expect("served once a connection closed")
        .expect("task")
        .expect("answer");
    assert_eq!(status, 200);
    server.shutdown().await.expect("shutdown");
}

/// A client that sends half a request and stops cannot keep the server from stopping:
/// shutdown drops it after the grace period.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_does_not_wait_for_a_half_sent_request_forever() {
    use tokio::io::AsyncWriteExt;
    let dir = tempfile::tempdir().expect("dir");
    let server = braid_server::Server::start(server_config(dir.path())).await.expect("start");
    let mut half = tokio::net::TcpStream::connect(server.http_addr()).await.expect("connect");
    half.write_all(b"POST /collections/p/points/search HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\n{")
        .await
        .expect("write");
    let stopped = tokio::time::timeout(
        braid_server::SHUTDOWN_GRACE + std::time::Duration::from_secs(20),
        server.shutdown(),
    )
    .await;
    assert!(stopped.is_ok(), "shutdown hung on a half-sent request");
    drop(half);
}

/// Idle sockets give their slots back: with two slots held by connections that never
/// send a byte, a third client is served once the idle timeout closes them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_closed_and_free_their_slots() {
    use tokio::io::AsyncReadExt;
    let dir = tempfile::tempdir().expect("dir");
    let mut config = server_config(dir.path());
    config.max_connections = 2;
    config.idle_timeout = std::time::Duration::from_secs(1);
    let server = braid_server::Server::start(config).await.expect("start");
    let addr = server.http_addr();
    let mut idle = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let _other = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let status = tokio::time::timeout(std::time::Duration::from_secs(30), async {
        reqwest::get(format!("http://{addr}/healthz")).await.map(|r| r.status().as_u16())
    })
    .await
    .expect("served once the idle connections were closed")
    .expect("answer");
    assert_eq!(status, 200);
    // The idle connection was closed by the server: reading it ends.
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(std::time::Duration::from_secs(30), idle.read(&mut buf)).await;
    assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "an idle connection stayed open: {read:?}");
    server.shutdown().await.expect("shutdown");
}

/// A client that trickles a request's header is cut off at the header timeout, even
/// though bytes keep the connection from counting as idle.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_header_sent_too_slowly_is_cut_off() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().expect("dir");
    let mut config = server_config(dir.path());
    config.header_timeout = std::time::Duration::from_secs(1);
    let server = braid_server::Server::start(config).await.expect("start");
    let mut slow = tokio::net::TcpStream::connect(server.http_addr()).await.expect("connect");
    let closed = tokio::time::timeout(std::time::Duration::from_secs(20), async {
        for byte in b"GET /healthz HTTP/1.1\r\nhost: x\r\nx-slow: " {
            if slow.write_all(&[*byte]).await.is_err() {
                return true;
            }
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        }
        let mut buf = [0u8; 64];
        matches!(slow.read(&mut buf).await, Ok(0) | Err(_))
    })
    .await;
    assert_eq!(closed, Ok(true), "a trickled header kept its connection");
    server.shutdown().await.expect("shutdown");
}
