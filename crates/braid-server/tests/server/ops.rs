//! Operations over both protocols: aliases (REST `POST /collections/aliases`, the
//! alias lists; gRPC `UpdateAliases`, `ListAliases`, `ListCollectionAliases` through
//! the official client), and every call that takes a collection name taking an alias.

use crate::common;

use qdrant_client::qdrant::{self as q};
use reqwest::Method;
use serde_json::json;

use common::*;

#[tokio::test]
async fn aliases_over_rest() {
    let (running, rest) = serve_products().await;
    rest.put("/collections/other", config_json()).await;
    let actions = json!({"actions": [
        {"create_alias": {"collection_name": "p", "alias_name": "live"}},
        {"create_alias": {"collection_name": "p", "alias_name": "old"}},
        {"rename_alias": {"old_alias_name": "old", "new_alias_name": "legacy"}},
    ]});
    assert_eq!(rest.post("/collections/aliases", actions).await, json!(true));
    assert_eq!(
        rest.get("/aliases").await,
        json!({"aliases": [
            {"alias_name": "legacy", "collection_name": "p"},
            {"alias_name": "live", "collection_name": "p"},
        ]})
    );
    assert_eq!(rest.get("/collections/other/aliases").await, json!({"aliases": []}));

    // Reads, writes and info through the alias reach `p`.
    assert_eq!(rest.get("/collections/live").await["points_count"], 300);
    assert_eq!(rest.get("/collections/live/exists").await, json!({"exists": true}));
    let (text, _) = query_vectors(7);
    let by_alias = rest
        .post(
            "/collections/live/points/search",
            json!({"vector": {"name": "text", "vector": text}, "limit": 5}),
        )
        .await;
    let direct = rest
        .post("/collections/p/points/search", json!({"vector": {"name": "text", "vector": text}, "limit": 5}))
        .await;
    assert_eq!(by_alias, direct);
    rest.put(
        "/collections/live/points?wait=true",
        json!({"points": [{"id": 5000, "vector": {"text": text, "image": [1.0, 0.0, 0.0, 0.0, 0.0, 0.0]}}]}),
    )
    .await;
    assert_eq!(rest.post("/collections/p/points/count", json!({})).await["count"], 301);

    // All or none: the bad second action leaves `live` where it was.
    let (status, v) = rest
        .call(
            Method::POST,
            "/collections/aliases",
            Some(json!({"actions": [
                {"delete_alias": {"alias_name": "live"}},
                {"create_alias": {"collection_name": "missing", "alias_name": "x"}},
            ]})),
        )
        .await;
    assert_eq!(status, 404, "{v}");
    assert!(v["status"]["error"].as_str().unwrap().contains("missing"), "{v}");
    assert_eq!(rest.get("/collections/p/aliases").await["aliases"].as_array().unwrap().len(), 2);

    // Refusals: an alias over a collection's name, a collection over an alias's name,
    // an unknown action, a rename of nothing.
    let refused = [
        json!({"actions": [{"create_alias": {"collection_name": "p", "alias_name": "other"}}]}),
        json!({"actions": [{"switch_alias": {"alias_name": "live"}}]}),
        json!({"actions": [{"rename_alias": {"old_alias_name": "nope", "new_alias_name": "x"}}]}),
        json!({"actions": [{"create_alias": {"collection_name": "p"}}]}),
        json!({"actions": {}}),
    ];
    for body in refused {
        let (status, v) = rest.call(Method::POST, "/collections/aliases", Some(body.clone())).await;
        assert!(status == 400 || status == 404, "{body} → {status} {v}");
        assert!(v["status"]["error"].is_string(), "{v}");
    }
    let (status, v) = rest.call(Method::PUT, "/collections/live", Some(config_json())).await;
    assert_eq!(status, 400, "{v}");
    // POST on a collection's own path is not an alias update.
    let (status, _) = rest.call(Method::POST, "/collections/p", Some(json!({}))).await;
    assert_eq!(status, 405);

    // A collection may be named `aliases`: it is reached by GET, PUT and DELETE.
    rest.put("/collections/aliases", config_json()).await;
    assert_eq!(rest.get("/collections/aliases").await["points_count"], 0);
    assert_eq!(rest.ok(Method::DELETE, "/collections/aliases", json!({})).await, json!(true));

    // Deleting the collection takes its aliases.
    assert_eq!(rest.ok(Method::DELETE, "/collections/p", json!({})).await, json!(true));
    assert_eq!(rest.get("/aliases").await, json!({"aliases": []}));
    drop(running);
}

#[tokio::test]
async fn aliases_over_grpc_with_the_official_client() {
    let (running, rest) = serve_products().await;
    let client = grpc_client(&running);
    client.create_alias(q::CreateAliasBuilder::new("p", "blue")).await.unwrap();
    client.rename_alias(q::RenameAliasBuilder::new("blue", "green")).await.unwrap();
    let all = client.list_aliases().await.unwrap().aliases;
    assert_eq!(all.len(), 1);
    assert_eq!((all[0].alias_name.as_str(), all[0].collection_name.as_str()), ("green", "p"));
    let of_p = client.list_collection_aliases("p").await.unwrap().aliases;
    assert_eq!(of_p, all);
    assert_eq!(rest.get("/aliases").await["aliases"][0]["alias_name"], "green");

    // Calls by alias.
    let info = client.collection_info("green").await.unwrap().result.unwrap();
    assert_eq!(info.points_count, Some(300));
    assert!(client.collection_exists("green").await.unwrap());
    let (text, _) = query_vectors(3);
    let hits = client
        .query(q::QueryPointsBuilder::new("green").query(text.clone()).using("text").limit(3))
        .await
        .unwrap()
        .result;
    let direct = client
        .query(q::QueryPointsBuilder::new("p").query(text).using("text").limit(3))
        .await
        .unwrap()
        .result;
    assert_eq!(hits, direct);

    // Errors: an alias on a missing collection, renaming a missing alias.
    let e = client.create_alias(q::CreateAliasBuilder::new("nope", "x")).await.unwrap_err();
    assert!(e.to_string().contains("nope"), "{e}");
    let e = client.rename_alias(q::RenameAliasBuilder::new("none", "x")).await.unwrap_err();
    assert!(e.to_string().contains("none"), "{e}");
    let e = client.list_collection_aliases("green").await.unwrap_err();
    assert!(e.to_string().contains("green"), "{e}");

    client.delete_alias("green").await.unwrap();
    assert!(client.list_aliases().await.unwrap().aliases.is_empty());
}

/// Snapshots over REST: create (wait and accepted), list, download, delete, recover
/// from a file in the snapshots directory, upload; full snapshots; refusals.
#[tokio::test]
async fn snapshots_over_rest() {
    let (running, rest) = serve_products().await;
    let base = format!("http://{}", running.server.http_addr());
    let http = reqwest::Client::new();
    let created = rest.post("/collections/p/snapshots", json!({})).await;
    let name = created["name"].as_str().unwrap().to_string();
    assert!(name.starts_with("p-") && name.ends_with(".snapshot"), "{created}");
    assert_eq!(created["checksum"].as_str().unwrap().len(), 64);
    assert!(created["creation_time"].as_str().unwrap().len() == 19, "{created}");
    assert_eq!(rest.get("/collections/p/snapshots").await, json!([created.clone()]));

    // wait=false: 202 accepted, the snapshot appears.
    let (status, v) = rest.call(Method::POST, "/collections/p/snapshots?wait=false", None).await;
    assert_eq!((status, v["status"].as_str()), (202, Some("accepted")), "{v}");
    for _ in 0..200 {
        if rest.get("/collections/p/snapshots").await.as_array().unwrap().len() == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(rest.get("/collections/p/snapshots").await.as_array().unwrap().len(), 2);

    // Download: the bytes whose SHA-256 was reported.
    let bytes = http.get(format!("{base}/collections/p/snapshots/{name}")).send().await.unwrap();
    assert_eq!(bytes.status(), 200);
    let bytes = bytes.bytes().await.unwrap();
    assert_eq!(bytes.len() as u64, created["size"].as_u64().unwrap());

    // Change the collection, then recover it from the file: the change is gone.
    rest.post("/collections/p/points/delete?wait=true", json!({"points": [0, 1, 2]})).await;
    assert_eq!(rest.post("/collections/p/points/count", json!({})).await["count"], 297);
    let location = format!("file://{}", running.dir.path().join("snapshots/p").join(&name).display());
    let recovered = rest
        .put(
            "/collections/p/snapshots/recover",
            json!({"location": location, "checksum": created["checksum"], "priority": "snapshot"}),
        )
        .await;
    assert_eq!(recovered, json!(true));
    assert_eq!(rest.post("/collections/p/points/count", json!({})).await["count"], 300);

    // Upload the downloaded bytes as a new collection.
    let form = reqwest::multipart::Form::new()
        .part("snapshot", reqwest::multipart::Part::bytes(bytes.to_vec()).file_name("x.snapshot"));
    let up = http
        .post(format!(
            "{base}/collections/copy/snapshots/upload?checksum={}",
            created["checksum"].as_str().unwrap()
        ))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(up.status(), 200, "{:?}", up.text().await);
    assert_eq!(rest.post("/collections/copy/points/count", json!({})).await["count"], 300);
    let (text, _) = query_vectors(11);
    let q = json!({"query": text, "using": "text", "limit": 5});
    assert_eq!(
        rest.post("/collections/copy/points/query", q.clone()).await,
        rest.post("/collections/p/points/query", q).await
    );

    // Refusals: a damaged upload, a URL, a file outside the directory, an unknown
    // priority, a missing snapshot, a name with a path in it.
    let mut damaged = bytes.to_vec();
    let mid = damaged.len() / 2;
    damaged[mid] ^= 1;
    let form = reqwest::multipart::Form::new().part("snapshot", reqwest::multipart::Part::bytes(damaged));
    let up =
        http.post(format!("{base}/collections/copy/snapshots/upload")).multipart(form).send().await.unwrap();
    assert_eq!(up.status(), 400);
    assert_eq!(rest.post("/collections/copy/points/count", json!({})).await["count"], 300);
    for body in [
        json!({"location": "http://example.invalid/x.snapshot"}),
        json!({"location": "file:///etc/passwd"}),
        json!({"location": location, "priority": "first"}),
        json!({"location": location, "api_key": "k"}),
        json!({"location": location, "until": "yesterday"}),
        // Point-in-time recovery needs retained logs, which this server does not keep.
        json!({"location": location, "until": "2030-01-01T00:00:00Z"}),
        json!({}),
    ] {
        let (status, v) =
            rest.call(Method::PUT, "/collections/p/snapshots/recover", Some(body.clone())).await;
        assert_eq!(status, 400, "{body}: {v}");
    }
    for path in [
        "/collections/p/snapshots/none.snapshot",
        "/collections/p/snapshots/..%2Fx.snapshot",
        "/snapshots/none.snapshot",
    ] {
        let (status, _) = rest.call(Method::DELETE, path, None).await;
        assert_eq!(status, 404, "{path}");
        assert_eq!(http.get(format!("{base}{path}")).send().await.unwrap().status(), 404, "{path}");
    }
    let (status, _) = rest.call(Method::POST, "/collections/missing/snapshots", None).await;
    assert_eq!(status, 404);

    // Delete.
    assert_eq!(
        rest.ok(Method::DELETE, &format!("/collections/p/snapshots/{name}"), json!({})).await,
        json!(true)
    );
    assert_eq!(rest.get("/collections/p/snapshots").await.as_array().unwrap().len(), 1);

    // Full snapshots: create, list, download, delete.
    let full = rest.post("/snapshots", json!({})).await;
    let full_name = full["name"].as_str().unwrap();
    assert!(full_name.starts_with("full-snapshot-"), "{full}");
    assert_eq!(rest.get("/snapshots").await, json!([full.clone()]));
    let got = http.get(format!("{base}/snapshots/{full_name}")).send().await.unwrap().bytes().await.unwrap();
    assert_eq!(got.len() as u64, full["size"].as_u64().unwrap());
    assert_eq!(rest.ok(Method::DELETE, &format!("/snapshots/{full_name}"), json!({})).await, json!(true));
    assert_eq!(rest.get("/snapshots").await, json!([]));
}

/// Point-in-time recovery over REST: a server that keeps its logs recovers a snapshot
/// to a moment between two writes (`until`, an extension of Qdrant's recover body).
#[tokio::test]
async fn a_snapshot_recovers_to_a_moment_over_rest() {
    let (running, rest) =
        serve_products_with(|c| c.log_retention = Some(std::time::Duration::from_secs(3600))).await;
    let created = rest.post("/collections/p/snapshots", json!({})).await;
    let name = created["name"].as_str().unwrap();
    rest.post("/collections/p/points/delete?wait=true", json!({"points": [0, 1, 2]})).await;
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let moment = chrono::DateTime::<chrono::Utc>::from(std::time::SystemTime::now())
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    rest.post("/collections/p/points/delete?wait=true", json!({"points": [3, 4, 5, 6]})).await;
    assert_eq!(rest.post("/collections/p/points/count", json!({})).await["count"], 293);
    let location = format!("file://{}", running.dir.path().join("snapshots/p").join(name).display());
    let body = json!({"location": location, "checksum": created["checksum"], "until": moment});
    assert_eq!(rest.put("/collections/p/snapshots/recover", body.clone()).await, json!(true));
    assert_eq!(rest.post("/collections/p/points/count", json!({})).await["count"], 297);
    let got = rest.post("/collections/p/points", json!({"ids": [2, 3]})).await;
    assert_eq!(got.as_array().unwrap().len(), 1, "{got}");
    // The recovery began a new history: the same snapshot no longer replays onto it.
    let (status, v) = rest.call(Method::PUT, "/collections/p/snapshots/recover", Some(body)).await;
    assert_eq!(status, 400, "{v}");
    assert_eq!(rest.post("/collections/p/points/count", json!({})).await["count"], 297);
}

/// Snapshots in an object store (`object_store`'s local file system backend, as S3,
/// GCS or Azure would be configured by URL): created there over REST and gRPC, listed,
/// downloaded, recovered from and deleted there; nothing left in the snapshots
/// directory.
#[tokio::test]
async fn snapshots_live_in_an_object_store() {
    let bucket = tempfile::tempdir().unwrap();
    let url = format!("file://{}/braid", bucket.path().display());
    let (running, rest) = serve_products_with(|c| c.snapshots_store = Some(url.clone())).await;
    let base = format!("http://{}", running.server.http_addr());
    let stored = |key: &str| bucket.path().join("braid").join(key);
    let local_files =
        || -> usize { walk(&running.dir.path().join("snapshots")).iter().filter(|p| p.is_file()).count() };

    let created = rest.post("/collections/p/snapshots", json!({})).await;
    let name = created["name"].as_str().unwrap().to_string();
    let object = std::fs::read(stored(&format!("p/{name}"))).unwrap();
    assert_eq!(object.len() as u64, created["size"].as_u64().unwrap());
    let sum = std::fs::read_to_string(stored(&format!("p/{name}.checksum"))).unwrap();
    assert_eq!(sum, created["checksum"].as_str().unwrap());
    assert_eq!(local_files(), 0, "staged copies are removed");
    let listed = rest.get("/collections/p/snapshots").await;
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(
        (&listed[0]["name"], &listed[0]["size"], &listed[0]["checksum"]),
        (&created["name"], &created["size"], &created["checksum"])
    );
    let got = reqwest::get(format!("{base}/collections/p/snapshots/{name}")).await.unwrap();
    assert_eq!(got.status(), 200);
    assert_eq!(got.bytes().await.unwrap().to_vec(), object);

    // Recovered from its location in the store (checksum checked); nothing stays behind.
    rest.post("/collections/p/points/delete?wait=true", json!({"points": [0, 1, 2]})).await;
    let location = format!("{url}/p/{name}");
    let body = json!({"location": location, "checksum": created["checksum"]});
    assert_eq!(rest.put("/collections/p/snapshots/recover", body).await, json!(true));
    assert_eq!(rest.post("/collections/p/points/count", json!({})).await["count"], 300);
    assert_eq!(local_files(), 0);
    for bad in [format!("{url}/p/none.snapshot"), format!("{url}/../x.snapshot")] {
        let (status, v) =
            rest.call(Method::PUT, "/collections/p/snapshots/recover", Some(json!({"location": bad}))).await;
        assert!(status == 404 || status == 400, "{bad}: {status} {v}");
    }
    // Incremental snapshots need their base beside them: refused with a store.
    let (status, v) = rest.call(Method::POST, &format!("/collections/p/snapshots?base={name}"), None).await;
    assert_eq!(status, 400, "{v}");

    // gRPC through the official client: the same store.
    let client = grpc_client(&running);
    let d = client.create_snapshot("p").await.unwrap().snapshot_description.unwrap();
    assert!(stored(&format!("p/{}", d.name)).is_file());
    assert_eq!(client.list_snapshots("p").await.unwrap().snapshot_descriptions.len(), 2);
    client.delete_snapshot(q::DeleteSnapshotRequestBuilder::new("p", &d.name)).await.unwrap();
    assert!(!stored(&format!("p/{}", d.name)).exists());
    assert_eq!(
        rest.ok(Method::DELETE, &format!("/collections/p/snapshots/{name}"), json!({})).await,
        json!(true)
    );
    assert!(!stored(&format!("p/{name}")).exists() && !stored(&format!("p/{name}.checksum")).exists());
    let (status, _) = rest.call(Method::DELETE, &format!("/collections/p/snapshots/{name}"), None).await;
    assert_eq!(status, 404);

    // Snapshots taken within one second (names carry the time to the second) do not
    // overwrite each other in the store, though their local copies are gone.
    let names: Vec<String> = three_snapshots(&rest).await;
    assert_eq!(names.len(), 3);
    assert!(names[0] != names[1] && names[1] != names[2] && names[0] != names[2], "{names:?}");
    assert_eq!(rest.get("/collections/p/snapshots").await.as_array().unwrap().len(), 3);
    for name in &names {
        assert!(stored(&format!("p/{name}")).is_file(), "{name}");
        rest.ok(Method::DELETE, &format!("/collections/p/snapshots/{name}"), json!({})).await;
    }

    // Full snapshots at the store's root.
    let full = rest.post("/snapshots", json!({})).await;
    let full_name = full["name"].as_str().unwrap();
    assert!(stored(full_name).is_file());
    assert_eq!(rest.get("/snapshots").await.as_array().unwrap().len(), 1);
    let got = reqwest::get(format!("{base}/snapshots/{full_name}")).await.unwrap().bytes().await.unwrap();
    assert_eq!(got.len() as u64, full["size"].as_u64().unwrap());
    assert_eq!(rest.ok(Method::DELETE, &format!("/snapshots/{full_name}"), json!({})).await, json!(true));
    assert_eq!(rest.get("/snapshots").await, json!([]));
    assert_eq!(local_files(), 0);

    // A store URL no backend serves stops the start.
    let dir = tempfile::tempdir().unwrap();
    let mut config = braid_server::ServerConfig::new(dir.path());
    config.http = "127.0.0.1:0".parse().unwrap();
    config.grpc = "127.0.0.1:0".parse().unwrap();
    config.snapshots_store = Some("ftp://example.invalid/x".into());
    let Err(refused) = braid_server::Server::start(config).await else {
        panic!("a bad store URL is refused")
    };
    assert!(refused.to_string().contains("ftp://"), "{refused}");
}

/// Three snapshots of `p` made one after the other; their names.
async fn three_snapshots(rest: &Rest) -> Vec<String> {
    let mut names = Vec::new();
    for _ in 0..3 {
        names.push(
            rest.post("/collections/p/snapshots", json!({})).await["name"].as_str().unwrap().to_string(),
        );
    }
    names
}

/// Every path under `dir` (none if it does not exist).
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    entries
        .flat_map(|e| {
            let path = e.unwrap().path();
            let mut below = walk(&path);
            below.push(path);
            below
        })
        .collect()
}

#[tokio::test]
async fn snapshots_over_grpc_with_the_official_client() {
    let (running, rest) = serve_products().await;
    let client = grpc_client(&running);
    let d = client.create_snapshot("p").await.unwrap().snapshot_description.unwrap();
    assert!(d.name.starts_with("p-") && d.size > 0 && d.checksum.as_ref().unwrap().len() == 64);
    let listed = client.list_snapshots("p").await.unwrap().snapshot_descriptions;
    assert_eq!(listed, vec![d.clone()]);
    assert_eq!(rest.get("/collections/p/snapshots").await[0]["name"], d.name);
    client.delete_snapshot(q::DeleteSnapshotRequestBuilder::new("p", &d.name)).await.unwrap();
    assert!(client.list_snapshots("p").await.unwrap().snapshot_descriptions.is_empty());
    let e = client.delete_snapshot(q::DeleteSnapshotRequestBuilder::new("p", &d.name)).await.unwrap_err();
    assert!(e.to_string().contains("not found"), "{e}");

    let full = client.create_full_snapshot().await.unwrap().snapshot_description.unwrap();
    assert_eq!(client.list_full_snapshots().await.unwrap().snapshot_descriptions, vec![full.clone()]);
    client.delete_full_snapshot(&full.name).await.unwrap();
    assert!(client.list_full_snapshots().await.unwrap().snapshot_descriptions.is_empty());
    let e = client.create_snapshot("missing").await.unwrap_err();
    assert!(e.to_string().contains("missing"), "{e}");
}

/// The value of the exposition line whose name and labels are given (labels in any
/// order), parsed as a number.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|line| {
        let (series, value) = line.rsplit_once(' ')?;
        let (metric, rest) = series.split_once('{').unwrap_or((series, "}"));
        let found: Vec<(&str, &str)> = rest
            .trim_end_matches('}')
            .split(',')
            .filter(|s| !s.is_empty())
            .filter_map(|kv| kv.split_once('=').map(|(k, v)| (k, v.trim_matches('"'))))
            .collect();
        let all = labels.iter().all(|l| found.contains(l)) && found.len() == labels.len();
        (metric == name && all).then(|| value.parse().ok())?
    })
}

/// `/metrics` parsed: requests of both protocols counted under their route or method,
/// durations, collection figures; `/telemetry` in Qdrant's shape.
#[tokio::test]
async fn metrics_count_requests_of_both_protocols() {
    let (running, rest) = serve_products().await;
    let (text, _) = query_vectors(5);
    for _ in 0..3 {
        rest.post(
            "/collections/p/points/search",
            json!({"vector": {"name": "text", "vector": text}, "limit": 3}),
        )
        .await;
    }
    let (status, _) =
        rest.call(Method::POST, "/collections/p/points/search", Some(json!({"vector": [1.0]}))).await;
    assert_eq!(status, 400);
    let client = grpc_client(&running);
    for _ in 0..2 {
        client
            .query(q::QueryPointsBuilder::new("p").query(text.clone()).using("text").limit(3))
            .await
            .unwrap();
    }
    client.collection_info("missing").await.unwrap_err();

    let scrape = reqwest::get(format!("http://{}/metrics", running.server.http_addr())).await.unwrap();
    assert!(scrape.headers()["content-type"].to_str().unwrap().starts_with("application/openmetrics-text"));
    let text = scrape.text().await.unwrap();
    assert!(text.ends_with("# EOF\n"), "{text}");
    let search = [("method", "POST"), ("endpoint", "/collections/{name}/points/search")];
    let with = |status: &'static str| {
        let mut l = search.to_vec();
        l.push(("status", status));
        l
    };
    assert_eq!(sample(&text, "rest_responses_total", &with("200")), Some(3.0), "{text}");
    assert_eq!(sample(&text, "rest_responses_total", &with("400")), Some(1.0));
    let endpoint = [("endpoint", "POST /collections/{name}/points/search")];
    assert_eq!(sample(&text, "rest_responses_duration_seconds_count", &endpoint), Some(4.0), "{text}");
    let query = [("endpoint", "/qdrant.Points/Query"), ("status", "0")];
    assert_eq!(sample(&text, "grpc_responses_total", &query), Some(2.0), "{text}");
    let missing = [("endpoint", "/qdrant.Collections/Get"), ("status", "5")];
    assert_eq!(sample(&text, "grpc_responses_total", &missing), Some(1.0), "{text}");
    assert_eq!(sample(&text, "collections", &[]), Some(1.0));
    assert_eq!(sample(&text, "collection_points", &[("collection", "p")]), Some(300.0));
    assert_eq!(sample(&text, "collection_vectors", &[("collection", "p"), ("vector", "image")]), Some(300.0));
    assert_eq!(sample(&text, "collection_state", &[("collection", "p"), ("state", "ready")]), Some(1.0));
    assert!(sample(&text, "collection_disk_bytes", &[("collection", "p")]).unwrap() > 0.0);
    let memory = |part: &str| {
        sample(&text, "collection_memory_bytes", &[("collection", "p"), ("vector", "text"), ("part", part)])
            .unwrap_or_else(|| panic!("collection_memory_bytes {part}: {text}"))
    };
    // 8-d text rows, at least one per point; no codes under 64 components.
    assert!(memory("vectors") + memory("vectors_mapped") >= 300.0 * 8.0 * 4.0, "{text}");
    assert!(memory("graph") > 0.0);
    assert_eq!(memory("codes"), 0.0);

    let t = rest.get("/telemetry?details_level=1").await;
    assert_eq!(t["app"]["name"], "braid");
    assert_eq!(t["collections"]["number_of_collections"], 1);
    assert_eq!(t["collections"]["collections"][0]["points_count"], 300);
    assert_eq!(
        t["requests"]["rest"]["responses"]["POST /collections/{name}/points/search"]["200"]["count"],
        3
    );
    assert_eq!(t["requests"]["grpc"]["responses"]["/qdrant.Points/Query"]["0"]["count"], 2);
    let hidden = rest.get("/telemetry?details_level=1&anonymize=true").await;
    assert_ne!(hidden["collections"]["collections"][0]["id"], "p");
    assert!(rest.get("/telemetry").await["collections"].get("collections").is_none());
    let (status, _) = rest.call(Method::GET, "/telemetry?verbose=1", None).await;
    assert_eq!(status, 400);
}

/// A single server reports cluster information as Qdrant does with distributed mode
/// off: `{"status": "disabled"}`, one active local shard per collection (REST and the
/// official gRPC client), its peer id kept across restarts; calls that change a cluster
/// are refused with a 400 that says why.
#[tokio::test]
async fn cluster_information_of_a_single_server() {
    let (running, rest) = serve_products().await;
    assert_eq!(rest.get("/cluster").await, json!({"status": "disabled"}));
    let info = rest.get("/collections/p/cluster").await;
    let peer_id = info["peer_id"].as_u64().expect("a peer id");
    assert!(peer_id > 0);
    assert_eq!(info["shard_count"], 1);
    assert_eq!(info["local_shards"], json!([{"shard_id": 0, "points_count": 300, "state": "Active"}]));
    assert_eq!((info["remote_shards"].clone(), info["shard_transfers"].clone()), (json!([]), json!([])));
    let (status, _) = rest.call(reqwest::Method::GET, "/collections/nope/cluster", None).await;
    assert_eq!(status, 404);

    let client = grpc_client(&running);
    let grpc = client.collection_cluster_info("p").await.unwrap();
    assert_eq!((grpc.peer_id, grpc.shard_count), (peer_id, 1));
    assert_eq!(grpc.local_shards.len(), 1);
    assert_eq!((grpc.local_shards[0].points_count, grpc.local_shards[0].state), (300, 0));
    assert!(grpc.remote_shards.is_empty() && grpc.shard_transfers.is_empty());
    let e = client.collection_cluster_info("nope").await.unwrap_err();
    assert!(e.to_string().contains("nope"), "{e}");

    for (method, path, body) in [
        (
            reqwest::Method::POST,
            "/collections/p/cluster",
            Some(json!({"move_shard": {"shard_id": 0, "from_peer_id": 1, "to_peer_id": 2}})),
        ),
        (reqwest::Method::DELETE, "/cluster/peer/7", None),
        (reqwest::Method::POST, "/cluster/recover", None),
    ] {
        let (status, v) = rest.call(method, path, body).await;
        assert_eq!(status, 400, "{path}: {v}");
        assert!(v["status"]["error"].as_str().unwrap().contains("distributed mode is off"), "{v}");
    }

    // The peer id is the data directory's, kept across restarts.
    let dir = running.dir;
    running.server.shutdown().await.unwrap();
    let mut config = braid_server::ServerConfig::new(dir.path());
    config.http = "127.0.0.1:0".parse().unwrap();
    config.grpc = "127.0.0.1:0".parse().unwrap();
    let again = common::Running { server: braid_server::Server::start(config).await.unwrap(), dir };
    assert_eq!(Rest::to(&again).get("/collections/p/cluster").await["peer_id"], peer_id);
}
