//! Keys and tokens on every route: the API key (everything), the read-only key
//! (reads), JWTs (`jwt_rbac`: global `r`/`m`, per-collection `r`/`rw`, expiry, a
//! foreign signature), no key — over REST for every route and method, and over gRPC
//! through the official client for each service and kind of call.

use crate::common;

use braid_server::{Server, ServerConfig};
use qdrant_client::qdrant::{self as q};
use reqwest::Method;
use serde_json::{Value, json};

use common::*;

const ADMIN: &str = "admin-key";
const READER: &str = "reader-key";

fn token(secret: &str, claims: Value) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

/// What a call needs, as this test (not the server) classifies it.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Need {
    Open,
    ReadAll,
    Read,
    Write,
    Manage,
}

/// Every REST route and method: (method, path, body, need). `p` is the collection.
fn routes() -> Vec<(Method, &'static str, Value, Need)> {
    use Need::*;
    let (text, image) = query_vectors(1);
    let nearest = json!({"vector": {"name": "text", "vector": text}, "limit": 2});
    let query = json!({"query": text, "using": "text", "limit": 2});
    let point = json!({"points": [{"id": 1, "vector": {"text": text, "image": image}}]});
    vec![
        (Method::GET, "/", json!(null), Open),
        (Method::GET, "/healthz", json!(null), Open),
        (Method::GET, "/livez", json!(null), Open),
        (Method::GET, "/readyz", json!(null), Open),
        (Method::GET, "/collections", json!(null), ReadAll),
        (Method::GET, "/aliases", json!(null), ReadAll),
        (Method::GET, "/metrics", json!(null), ReadAll),
        (Method::GET, "/telemetry", json!(null), ReadAll),
        (Method::GET, "/snapshots", json!(null), ReadAll),
        (Method::GET, "/snapshots/none.snapshot", json!(null), ReadAll),
        (Method::POST, "/snapshots", json!(null), Manage),
        (Method::DELETE, "/snapshots/none.snapshot", json!(null), Manage),
        (Method::POST, "/collections/aliases", json!({"actions": []}), Manage),
        (Method::GET, "/collections/p", json!(null), Read),
        (Method::PUT, "/collections/q", config_json(), Manage),
        (Method::DELETE, "/collections/q", json!(null), Manage),
        (
            Method::PATCH,
            "/collections/p",
            json!({"optimizers_config": {"indexing_threshold": 10000}}),
            Manage,
        ),
        (Method::PUT, "/collections/p/vectors/extra", json!({"sparse": {}}), Manage),
        (Method::DELETE, "/collections/p/vectors/extra", json!(null), Manage),
        (Method::GET, "/collections/p/exists", json!(null), Read),
        (Method::GET, "/collections/p/aliases", json!(null), Read),
        (
            Method::PUT,
            "/collections/p/index",
            json!({"field_name": "category", "field_schema": "keyword"}),
            Write,
        ),
        (Method::DELETE, "/collections/p/index/category", json!(null), Write),
        (Method::POST, "/collections/p/facet", json!({"key": "category"}), Read),
        (Method::GET, "/collections/p/snapshots", json!(null), Read),
        (Method::POST, "/collections/p/snapshots", json!(null), Manage),
        (Method::PUT, "/collections/p/snapshots/recover", json!({"location": "file:///nowhere"}), Manage),
        (Method::POST, "/collections/p/snapshots/upload", json!(null), Manage),
        (Method::GET, "/collections/p/snapshots/none.snapshot", json!(null), Read),
        (Method::DELETE, "/collections/p/snapshots/none.snapshot", json!(null), Manage),
        (Method::PUT, "/collections/p/points?wait=true", point.clone(), Write),
        (Method::POST, "/collections/p/points", json!({"ids": [1]}), Read),
        (Method::GET, "/collections/p/points/1", json!(null), Read),
        (Method::POST, "/collections/p/points/delete", json!({"points": [299]}), Write),
        (Method::POST, "/collections/p/points/scroll", json!({"limit": 2}), Read),
        (Method::POST, "/collections/p/points/count", json!({}), Read),
        (Method::POST, "/collections/p/points/search", nearest.clone(), Read),
        (Method::POST, "/collections/p/points/search/batch", json!({"searches": [nearest.clone()]}), Read),
        (Method::POST, "/collections/p/points/query", query.clone(), Read),
        (Method::POST, "/collections/p/points/query/batch", json!({"searches": [query.clone()]}), Read),
        (
            Method::POST,
            "/collections/p/points/query/groups",
            json!({"query": text, "using": "text", "group_by": "category"}),
            Read,
        ),
        (
            Method::POST,
            "/collections/p/points/search/matrix/pairs",
            json!({"using": "text", "sample": 5}),
            Read,
        ),
        (
            Method::POST,
            "/collections/p/points/search/matrix/offsets",
            json!({"using": "text", "sample": 5}),
            Read,
        ),
        (
            Method::POST,
            "/collections/p/points/search/groups",
            json!({"vector": {"name": "text", "vector": text}, "group_by": "category", "limit": 2}),
            Read,
        ),
        (
            Method::POST,
            "/collections/p/points/recommend/groups",
            json!({"positive": [1], "using": "text", "group_by": "category", "limit": 2}),
            Read,
        ),
        (
            Method::POST,
            "/collections/p/points/recommend",
            json!({"positive": [1], "using": "text", "limit": 2}),
            Read,
        ),
        (
            Method::POST,
            "/collections/p/points/recommend/batch",
            json!({"searches": [{"positive": [1], "using": "text", "limit": 2}]}),
            Read,
        ),
        (
            Method::POST,
            "/collections/p/points/discover",
            json!({"target": 1, "context": [{"positive": 2, "negative": 3}], "using": "text", "limit": 2}),
            Read,
        ),
        (
            Method::POST,
            "/collections/p/points/discover/batch",
            json!({"searches": [{"target": 1, "using": "text", "context": [{"positive": 2, "negative": 3}], "limit": 2}]}),
            Read,
        ),
        (
            Method::PUT,
            "/collections/p/points/vectors",
            json!({"points": [{"id": 1, "vector": {"text": text}}]}),
            Write,
        ),
        (
            Method::POST,
            "/collections/p/points/vectors/delete",
            json!({"points": [2], "vector": ["image"]}),
            Write,
        ),
        (Method::POST, "/collections/p/points/payload", json!({"points": [1], "payload": {"x": 1}}), Write),
        (Method::PUT, "/collections/p/points/payload", json!({"points": [1], "payload": {"x": 2}}), Write),
        (Method::POST, "/collections/p/points/payload/delete", json!({"points": [1], "keys": ["x"]}), Write),
        (Method::POST, "/collections/p/points/payload/clear", json!({"points": [3]}), Write),
        (Method::POST, "/collections/p/points/batch", json!({"operations": []}), Write),
    ]
}

/// The credentials and what each may do: (label, key, reads all, reads p, writes p, manages).
fn credentials() -> Vec<(&'static str, Option<String>, [bool; 4])> {
    let far = 4_102_444_800u64; // 2100-01-01
    vec![
        ("no key", None, [false; 4]),
        ("wrong key", Some("nope".into()), [false; 4]),
        ("api key", Some(ADMIN.into()), [true; 4]),
        ("read-only key", Some(READER.into()), [true, true, false, false]),
        ("jwt m", Some(token(ADMIN, json!({"access": "m", "exp": far}))), [true; 4]),
        ("jwt r", Some(token(ADMIN, json!({"access": "r"}))), [true, true, false, false]),
        (
            "jwt p:r",
            Some(token(ADMIN, json!({"access": [{"collection": "p", "access": "r"}]}))),
            [false, true, false, false],
        ),
        (
            "jwt p:rw",
            Some(token(ADMIN, json!({"access": [{"collection": "p", "access": "rw"}]}))),
            [false, true, true, false],
        ),
        (
            "jwt other:rw",
            Some(token(ADMIN, json!({"access": [{"collection": "other", "access": "rw"}]}))),
            [false; 4],
        ),
        ("jwt expired", Some(token(ADMIN, json!({"access": "m", "exp": 1_000_000}))), [false; 4]),
        ("jwt foreign", Some(token("not-the-key", json!({"access": "m"}))), [false; 4]),
    ]
}

async fn secured() -> (Server, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = ServerConfig::new(dir.path());
    config.http = "127.0.0.1:0".parse().unwrap();
    config.grpc = "127.0.0.1:0".parse().unwrap();
    config.api_key = Some(ADMIN.into());
    config.read_only_api_key = Some(READER.into());
    config.jwt_rbac = true;
    let server = Server::start(config).await.unwrap();
    let db = server.database().clone();
    tokio::task::spawn_blocking(move || {
        db.create_collection("p", common::config()).unwrap().upsert(products()).unwrap();
    })
    .await
    .unwrap();
    (server, dir)
}

#[tokio::test]
async fn every_rest_route_checks_keys_and_tokens() {
    let (server, _dir) = secured().await;
    let base = format!("http://{}", server.http_addr());
    let http = reqwest::Client::new();
    let mut checked = 0;
    for (label, key, [read_all, read, write, manage]) in credentials() {
        for (method, path, body, need) in routes() {
            let allowed = match need {
                Need::Open => true,
                Need::ReadAll => read_all,
                Need::Read => read,
                Need::Write => write,
                Need::Manage => manage,
            };
            let mut request = http.request(method.clone(), format!("{base}{path}"));
            if !body.is_null() {
                request = request.json(&body);
            }
            if let Some(key) = &key {
                // Both ways of carrying it, alternately.
                request = if checked % 2 == 0 {
                    request.header("api-key", key)
                } else {
                    request.header("authorization", format!("Bearer {key}"))
                };
            }
            let status = request.send().await.unwrap().status().as_u16();
            checked += 1;
            if allowed {
                assert!(status != 401 && status != 403, "{label}: {method} {path} refused ({status})");
            } else {
                let expected = if key.is_none() { 401 } else { 403 };
                assert_eq!(status, expected, "{label}: {method} {path} answered {status}");
            }
        }
    }
    assert!(checked > 500);
}

/// Does the client's error text say the call was refused for its credentials?
fn refused(error: &str) -> bool {
    error.contains("valid authentication credentials") || error.contains("does not have permission")
}

#[tokio::test]
async fn every_grpc_service_checks_keys_and_tokens() {
    let (server, _dir) = secured().await;
    let url = format!("http://{}", server.grpc_addr());
    let (text, image) = query_vectors(2);
    for (label, key, [read_all, read, write, manage]) in credentials() {
        let mut builder = qdrant_client::Qdrant::from_url(&url).skip_compatibility_check();
        if let Some(key) = &key {
            builder = builder.api_key(key.clone());
        }
        let client = builder.build().unwrap();
        let denied = |r: Result<(), qdrant_client::QdrantError>, allowed: bool, what: &str| match (r, allowed)
        {
            (Ok(()), true) => {}
            (Err(e), true) => {
                let s = e.to_string();
                assert!(!refused(&s), "{label}: {what}: {s}");
            }
            (Ok(()), false) => panic!("{label}: {what} was allowed"),
            (Err(e), false) => {
                let s = e.to_string();
                assert!(refused(&s), "{label}: {what}: {s}");
            }
        };
        denied(client.list_collections().await.map(drop), read_all, "list collections");
        denied(client.list_aliases().await.map(drop), read_all, "list aliases");
        denied(client.list_full_snapshots().await.map(drop), read_all, "list full snapshots");
        denied(client.collection_info("p").await.map(drop), read, "collection info");
        denied(client.collection_exists("p").await.map(drop), read, "collection exists");
        denied(client.list_snapshots("p").await.map(drop), read, "list snapshots");
        denied(
            client
                .query(q::QueryPointsBuilder::new("p").query(text.clone()).using("text").limit(2))
                .await
                .map(drop),
            read,
            "query",
        );
        denied(client.count(q::CountPointsBuilder::new("p")).await.map(drop), read, "count");
        let vectors: std::collections::HashMap<String, Vec<f32>> =
            [("text".to_string(), text.clone()), ("image".to_string(), image.clone())].into();
        let upsert = q::UpsertPointsBuilder::new(
            "p",
            vec![q::PointStruct::new(7u64, vectors, qdrant_client::Payload::new())],
        )
        .wait(true);
        denied(client.upsert_points(upsert).await.map(drop), write, "upsert");
        let index =
            q::CreateFieldIndexCollectionBuilder::new("p", "category", q::FieldType::Keyword).wait(true);
        denied(client.create_field_index(index).await.map(drop), write, "create index");
        denied(client.create_snapshot("p").await.map(drop), manage, "create snapshot");
        denied(
            client
                .create_alias(q::CreateAliasBuilder::new("p", format!("a-{}", label.len())))
                .await
                .map(drop),
            manage,
            "alias",
        );
        let create = q::CreateCollectionBuilder::new(format!("new-{}", label.replace([' ', ':'], "-")))
            .vectors_config(q::VectorParamsBuilder::new(4, q::Distance::Dot));
        denied(client.create_collection(create).await.map(drop), manage, "create collection");
        denied(client.delete_collection("gone").await.map(drop), manage, "delete collection");
        let update = q::UpdateCollectionBuilder::new("p")
            .optimizers_config(q::OptimizersConfigDiffBuilder::default().indexing_threshold(10_000));
        denied(client.update_collection(update).await.map(drop), manage, "update collection");
        let new_vector = q::CreateVectorNameRequestBuilder::new(
            "p",
            "extra",
            q::SparseVectorCreationConfigBuilder::default(),
        );
        denied(client.create_vector_name(new_vector).await.map(drop), manage, "create vector");
        let drop_vector = q::DeleteVectorNameRequestBuilder::new("p", "extra");
        denied(client.delete_vector_name(drop_vector).await.map(drop), manage, "delete vector");
    }
    // Health is open to all, as in Qdrant.
    let anonymous = qdrant_client::Qdrant::from_url(&url).skip_compatibility_check().build().unwrap();
    anonymous.health_check().await.unwrap();
}

#[tokio::test]
async fn inconsistent_key_settings_are_refused_at_start() {
    for (api, read_only, jwt) in
        [(None, None, true), (Some(ADMIN), Some(ADMIN), false), (Some(ADMIN), Some(" "), false)]
    {
        let dir = tempfile::tempdir().unwrap();
        let mut config = ServerConfig::new(dir.path());
        config.http = "127.0.0.1:0".parse().unwrap();
        config.grpc = "127.0.0.1:0".parse().unwrap();
        config.api_key = api.map(str::to_string);
        config.read_only_api_key = read_only.map(str::to_string);
        config.jwt_rbac = jwt;
        let e = Server::start(config).await.unwrap_err();
        assert!(e.to_string().contains("key") || e.to_string().contains("jwt"), "{e}");
    }
}
