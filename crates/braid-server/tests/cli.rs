//! The `braid` binary: settings from a TOML file, environment and flags (flags win),
//! and a graceful SIGTERM that flushes.

mod common;

use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::json;

use common::*;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

async fn wait_until_up(url: &str) {
    for _ in 0..100 {
        if reqwest::get(url).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the server did not come up at {url}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn braid_serve_reads_file_env_and_flags_and_flushes_on_sigterm() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let (file_http, env_http, grpc) = (free_port(), free_port(), free_port());
    let toml = dir.path().join("braid.toml");
    std::fs::write(
        &toml,
        format!(
            "data = {:?}\nhttp = \"127.0.0.1:{file_http}\"\napi_key = \"from-file\"\n",
            data.display().to_string()
        ),
    )
    .expect("config file");
    let mut child = Command::new(env!("CARGO_BIN_EXE_braid"))
        .args(["serve", "--config"])
        .arg(&toml)
        .args(["--grpc", &format!("127.0.0.1:{grpc}")])
        .env("BRAID_HTTP", format!("127.0.0.1:{env_http}"))
        .env("BRAID_API_KEY", "from-env")
        .stderr(Stdio::null())
        .spawn()
        .expect("braid serve starts");
    let base = format!("http://127.0.0.1:{env_http}");
    wait_until_up(&format!("{base}/healthz")).await;
    // The environment beat the file for the address and the key.
    assert!(TcpListener::bind(("127.0.0.1", file_http)).is_ok(), "the file's address is unused");
    let client = reqwest::Client::new();
    let denied = client
        .get(format!("{base}/collections"))
        .header("api-key", "from-file")
        .send()
        .await
        .expect("answer");
    assert_eq!(denied.status().as_u16(), 403);
    let create = client
        .put(format!("{base}/collections/p"))
        .header("api-key", "from-env")
        .json(&config_json())
        .send()
        .await
        .expect("create");
    assert_eq!(create.status().as_u16(), 200);
    let points = json!({"points": products().iter().take(30).map(point_json).collect::<Vec<_>>()});
    let upsert = client
        .put(format!("{base}/collections/p/points?wait=true"))
        .header("api-key", "from-env")
        .json(&points)
        .send()
        .await
        .expect("upsert");
    assert_eq!(upsert.status().as_u16(), 200);

    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill");
    assert!(status.success());
    let exit = child.wait().expect("exit");
    assert!(exit.success(), "graceful shutdown exits 0, got {exit}");
    // The shutdown flushed: a checkpoint (points document) exists and nothing needs replay.
    let collection_dir = std::fs::read_dir(&data)
        .expect("data dir")
        .flatten()
        .map(|e| e.path())
        .find(|p| p.is_dir())
        .expect("a collection directory");
    let checkpointed = std::fs::read_dir(&collection_dir)
        .expect("collection dir")
        .flatten()
        .any(|e| e.file_name().to_string_lossy().starts_with("points-"));
    assert!(checkpointed, "SIGTERM flushed a checkpoint");
    let db = braid::Database::open(&data).expect("reopen");
    assert_eq!(db.collection("p").expect("collection").count(None).expect("count"), 30);
}

#[test]
fn braid_serve_without_a_data_directory_says_so() {
    let out = Command::new(env!("CARGO_BIN_EXE_braid"))
        .arg("serve")
        .env_remove("BRAID_DATA")
        .output()
        .expect("runs");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("data directory"));
}

/// One request cannot take a memory-capped server down: `braid serve` under a 2 GiB
/// address-space limit answers the 52 KB batch that asks for 10⁸ result rows (1,000
/// searches of limit 100,000) with a 400, and keeps serving.
#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_memory_capped_server_refuses_a_batch_that_would_exhaust_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (http, grpc) = (free_port(), free_port());
    // `sh -c 'ulimit -v …; exec braid …'`: the limit applies to the server alone.
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -v {} && exec {} serve --data {} --http 127.0.0.1:{http} --grpc 127.0.0.1:{grpc}",
            2 * 1024 * 1024,
            env!("CARGO_BIN_EXE_braid"),
            dir.path().join("data").display()
        ))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn braid");
    let base = format!("http://127.0.0.1:{http}");
    wait_until_up(&format!("{base}/healthz")).await;
    let client = reqwest::Client::new();
    let created =
        client.put(format!("{base}/collections/p")).json(&config_json()).send().await.expect("create");
    assert_eq!(created.status().as_u16(), 200);
    let points = json!({"points": products().iter().take(200).map(point_json).collect::<Vec<_>>()});
    let upserted = client
        .put(format!("{base}/collections/p/points?wait=true"))
        .json(&points)
        .send()
        .await
        .expect("upsert");
    assert_eq!(upserted.status().as_u16(), 200);
    let (t, _) = query_vectors(1);
    let one = json!({"vector": {"name": "text", "vector": t}, "limit": 100_000});
    let batch = json!({"searches": vec![one; 1000]});
    let answer = client
        .post(format!("{base}/collections/p/points/search/batch"))
        .json(&batch)
        .send()
        .await
        .expect("answer");
    assert_eq!(answer.status().as_u16(), 400);
    let body: serde_json::Value = answer.json().await.expect("json");
    assert!(body["status"]["error"].as_str().unwrap_or_default().contains("rows"), "{body}");
    let health = reqwest::get(format!("{base}/healthz")).await.expect("still serving");
    assert_eq!(health.status().as_u16(), 200);
    let _ = child.kill();
    let _ = child.wait();
}
