//! A server on free ports over a temporary directory, and the tutorial's data.

use braid::{CollectionConfig, Distance, PointId, PointStruct, Uuid, VectorParams};
use braid_server::{Server, ServerConfig};
use braid_testkit::Rng;
use serde_json::{Value, json};

pub(crate) struct Running {
    pub server: Server,
    pub dir: tempfile::TempDir,
}

pub(crate) async fn start(api_key: Option<&str>, max_body_bytes: Option<usize>) -> Running {
    start_with(|config| {
        config.api_key = api_key.map(str::to_string);
        if let Some(n) = max_body_bytes {
            config.max_body_bytes = n;
        }
    })
    .await
}

/// A server on free ports with the settings `set` makes.
pub(crate) async fn start_with(set: impl FnOnce(&mut ServerConfig)) -> Running {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = ServerConfig::new(dir.path());
    config.http = "127.0.0.1:0".parse().expect("addr");
    config.grpc = "127.0.0.1:0".parse().expect("addr");
    set(&mut config);
    let server = Server::start(config).await.expect("server starts");
    Running { server, dir }
}

pub(crate) const TEXT: usize = 8;
pub(crate) const IMAGE: usize = 6;

pub(crate) fn config() -> CollectionConfig {
    CollectionConfig::new()
        .vector("text", VectorParams::new(TEXT, Distance::Cosine).hnsw(16, 200))
        .vector("image", VectorParams::new(IMAGE, Distance::Cosine).hnsw(32, 256))
}

pub(crate) fn config_json() -> Value {
    json!({"vectors": {
        "text": {"size": TEXT, "distance": "Cosine", "hnsw_config": {"m": 16, "ef_construct": 200}},
        "image": {"size": IMAGE, "distance": "Cosine", "hnsw_config": {"m": 32, "ef_construct": 256}},
    }})
}

/// 300 products over 5 categories; every 10th id a UUID.
pub(crate) fn products() -> Vec<PointStruct> {
    let mut rng = Rng::new(0xB2A1D);
    (0..300u64)
        .map(|i| {
            let id: PointId = if i % 10 == 9 { Uuid::from_u128(0xB4A1_0000 + i as u128).into() } else { i.into() };
            let category = ["apparel", "shoes", "books", "toys", "garden"][(i % 5) as usize];
            PointStruct::new(id)
                .vector("text", rng.vector(TEXT))
                .vector("image", rng.vector(IMAGE))
                .payload(json!({"name": format!("product {i}"), "category": category, "price": (i * 7 % 300) as f64, "stock": {"n": i % 4}}))
        })
        .collect()
}

pub(crate) fn point_json(p: &PointStruct) -> Value {
    json!({"id": p.id, "vector": p.vectors, "payload": p.payload})
}

pub(crate) fn query_vectors(seed: u64) -> (Vec<f32>, Vec<f32>) {
    let mut rng = Rng::new(seed);
    (rng.vector(TEXT), rng.vector(IMAGE))
}

/// The official Rust client on the running server's gRPC port.
#[allow(dead_code)] // not every test binary speaks gRPC
pub(crate) fn grpc_client(running: &Running) -> qdrant_client::Qdrant {
    qdrant_client::Qdrant::from_url(&format!("http://{}", running.server.grpc_addr()))
        .skip_compatibility_check()
        .build()
        .expect("a gRPC client")
}

/// A server holding the 300 products of [`products`] in collection `p`, and a REST
/// client on it.
#[allow(dead_code)]
pub(crate) async fn serve_products() -> (Running, Rest) {
    serve_products_with(|_| {}).await
}

/// [`serve_products`] on a server with the settings `set` makes.
pub(crate) async fn serve_products_with(set: impl FnOnce(&mut ServerConfig)) -> (Running, Rest) {
    let running = start_with(set).await;
    let rest = Rest::to(&running);
    rest.put("/collections/p", config_json()).await;
    let points = serde_json::json!({"points": products().iter().map(point_json).collect::<Vec<_>>()});
    rest.put("/collections/p/points?wait=true", points).await;
    (running, rest)
}

/// A REST client on the running server.
pub(crate) struct Rest {
    client: reqwest::Client,
    base: String,
}

impl Rest {
    pub(crate) fn to(running: &Running) -> Rest {
        Rest { client: reqwest::Client::new(), base: format!("http://{}", running.server.http_addr()) }
    }
    pub(crate) async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let (status, answer) = self.answer(method, path, body.as_ref()).await;
        (status, answer.expect("a JSON envelope"))
    }
    /// The status and the body as JSON (`None` when it is not JSON); a dropped
    /// connection fails the test.
    pub(crate) async fn answer(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> (u16, Option<Value>) {
        let what = format!("{method} {path}");
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.unwrap_or_else(|e| panic!("{what}: no answer: {e}"));
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_else(|e| panic!("{what}: no body: {e}"));
        (status, serde_json::from_str(&text).ok())
    }
    pub(crate) async fn ok(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let (status, v) = self.call(method, path, Some(body)).await;
        assert_eq!(status, 200, "{path}: {v}");
        assert_eq!(v["status"], "ok");
        v["result"].clone()
    }
    pub(crate) async fn post(&self, path: &str, body: Value) -> Value {
        self.ok(reqwest::Method::POST, path, body).await
    }
    pub(crate) async fn put(&self, path: &str, body: Value) -> Value {
        self.ok(reqwest::Method::PUT, path, body).await
    }
    pub(crate) async fn get(&self, path: &str) -> Value {
        let (status, v) = self.call(reqwest::Method::GET, path, None).await;
        assert_eq!(status, 200, "{path}: {v}");
        v["result"].clone()
    }
}
