//! The `braid` binary: settings from a TOML file, environment and flags (flags win),
//! and a graceful SIGTERM that flushes.

use crate::common;

use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::json;

use common::*;

/// A free port for a server this test starts (`braid_testkit::loopback_listener`:
/// below the ephemeral range, so no test's outgoing connection takes it meanwhile).
fn free_port() -> u16 {
    braid_testkit::loopback_listener().local_addr().map(|a| a.port()).expect("a free port")
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

fn braid(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_braid")).args(args).output().expect("braid runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// 100,000 points as JSON Lines, and line `bad` (1-based) replaced by `bad_line`.
fn jsonl(path: &std::path::Path, bad: usize, bad_line: &str) {
    use std::io::Write;
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut rng = braid_testkit::Rng::new(9);
    for i in 0..100_000u64 {
        if i as usize + 1 == bad {
            writeln!(out, "{bad_line}").unwrap();
            continue;
        }
        let v = rng.vector(4);
        writeln!(out, "{}", json!({"id": i, "vector": v, "payload": {"n": i, "even": i % 2 == 0}})).unwrap();
    }
}

/// `braid import` (a bad line stops it with its line and column and writes nothing;
/// `--skip-bad` keeps the good rows; `--resume` skips ids present), `export`, `query`,
/// `info` and `snapshot create | list | restore` on a directory.
#[test]
fn the_cli_imports_exports_queries_and_snapshots() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("db");
    let data_s = data.to_str().unwrap();
    let file = dir.path().join("points.jsonl");
    let create = r#"{"vectors": {"size": 4, "distance": "Cosine"}}"#;
    // `braid import` into `collection` (created if missing) with `extra` flags.
    let import = |collection: &str, file: &std::path::Path, extra: &[&str]| {
        let mut args = vec!["import", "--data", data_s, "--collection", collection, "--create", create];
        args.extend_from_slice(extra);
        let file = file.to_str().unwrap().to_string();
        args.push(&file);
        braid(&args)
    };

    // A JSON syntax error in the middle: refused with line and column, nothing written.
    jsonl(&file, 50_001, r#"{"id": 50000, "vector": [1, 2, 3, 4], "payload": {"n": }}"#);
    let out = import("docs", &file, &[]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("points.jsonl:50001:"), "{}", text(&out.stderr));
    let info = braid(&["info", "--data", data_s, "--json"]);
    let info: serde_json::Value = serde_json::from_slice(&info.stdout).unwrap();
    assert_eq!(info["collections"], json!([]), "the failed import created nothing");

    // A wrong dimension: the same, naming the line and the space.
    jsonl(&file, 50_001, r#"{"id": 50000, "vector": [1, 2, 3]}"#);
    let out = import("docs", &file, &[]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("points.jsonl:50001:") && err.contains("dimension"), "{err}");

    // --skip-bad: the 99,999 good rows.
    let out = import("docs", &file, &["--skip-bad"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(err.contains("imported 99999 points") && err.contains("1 bad lines skipped"), "{err}");
    // --resume: everything is present already.
    let out = import("docs", &file, &["--skip-bad", "--resume"]);
    assert!(
        text(&out.stderr).contains("imported 0 points")
            && text(&out.stderr).contains("99999 already present")
    );

    // Export, then import the export into a second collection: the same points.
    let exported = dir.path().join("export.jsonl");
    let out =
        braid(&["export", "--data", data_s, "--collection", "docs", "--out", exported.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(std::fs::read_to_string(&exported).unwrap().lines().count(), 99_999);
    let out = import("copy", &exported, &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    // Query: the same hits from both collections, payloads included.
    let q = |collection: &str| {
        let out = braid(&[
            "query",
            "--data",
            data_s,
            "--collection",
            collection,
            "--vector",
            "[0.1, 0.2, 0.3, 0.4]",
            "--limit",
            "5",
            "--filter",
            r#"{"must": [{"key": "even", "match": {"value": true}}]}"#,
        ]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout)
    };
    let hits = q("docs");
    assert_eq!(hits.lines().count(), 5);
    assert!(hits.lines().all(|l| l.contains("\"even\":true")), "{hits}");
    assert_eq!(hits, q("copy"));

    // Info, snapshots.
    let info = text(&braid(&["info", "--data", data_s]).stdout);
    assert!(info.contains("docs  99999 points") && info.contains("health ok"), "{info}");
    let out = braid(&["snapshot", "create", "--data", data_s, "--collection", "docs"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let name = text(&out.stdout).split_whitespace().next().unwrap().to_string();
    let listed = text(&braid(&["snapshot", "list", "--data", data_s, "--collection", "docs"]).stdout);
    assert!(listed.starts_with(&name), "{listed}");
    let snapshot = data.join("snapshots/docs").join(&name);
    let out = braid(&[
        "snapshot",
        "restore",
        "--data",
        data_s,
        "--collection",
        "restored",
        snapshot.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(q("restored"), hits);
    // A bad file: a clear error.
    let out = braid(&["snapshot", "restore", "--data", data_s, "--collection", "x", file.to_str().unwrap()]);
    assert!(!out.status.success() && text(&out.stderr).contains("snapshot"), "{}", text(&out.stderr));
}

/// A NumPy `.npy` file (format 1.0, little-endian) holding `rows` in C order, as
/// float32 or float64.
fn npy(path: &std::path::Path, rows: &[Vec<f64>], f64s: bool) {
    let cols = rows.first().map_or(0, Vec::len);
    let descr = if f64s { "<f8" } else { "<f4" };
    let mut header =
        format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': ({}, {cols}), }}", rows.len());
    // Magic (6) + version (2) + length (2) + header, padded with spaces to 64 bytes, then '\n'.
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend((header.len() as u16).to_le_bytes());
    bytes.extend(header.as_bytes());
    for row in rows {
        for x in row {
            if f64s {
                bytes.extend(x.to_le_bytes());
            } else {
                bytes.extend((*x as f32).to_le_bytes());
            }
        }
    }
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn the_cli_imports_npy_matrices_with_json_lines_payloads() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    let rows = |n: usize, d: usize| -> Vec<Vec<f64>> {
        (0..n).map(|i| (0..d).map(|j| ((i * 7 + j * 3) % 11) as f64 / 11.0 + 0.01).collect()).collect()
    };
    let (text_rows, image) = (rows(300, 8), rows(300, 6));
    npy(&dir.path().join("text.npy"), &text_rows, false);
    npy(&dir.path().join("image.npy"), &image, true);
    let meta = dir.path().join("meta.jsonl");
    let lines: Vec<String> =
        (0..300).map(|i| json!({"id": 1000 + i, "payload": {"n": i}}).to_string()).collect();
    std::fs::write(&meta, lines.join("\n")).unwrap();
    let create = r#"{"vectors": {"text": {"size": 8, "distance": "Cosine"}, "image": {"size": 6, "distance": "Dot"}}}"#;
    let text_arg = format!("text={}", dir.path().join("text.npy").display());
    let image_arg = format!("image={}", dir.path().join("image.npy").display());
    let meta_arg = meta.to_str().unwrap();
    let out = braid(&[
        "import",
        "--data",
        data,
        "--collection",
        "m",
        "--create",
        create,
        "--npy",
        &text_arg,
        "--npy",
        &image_arg,
        meta_arg,
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let db = braid::Database::open(data).unwrap();
    let c = db.collection("m").unwrap();
    assert_eq!(c.count(None).unwrap(), 300);
    let p = c.get(&[braid::PointId::from(1007u64)], true, true).unwrap().remove(0);
    assert_eq!(p.payload.unwrap()["n"], 7);
    let v = p.vectors.unwrap();
    assert_eq!(v["image"], image[7].iter().map(|x| *x as f32).collect::<Vec<_>>(), "float64 read as f32");
    assert_eq!(v["text"].len(), 8);
    drop((c, db));

    // Without ids, a row's number is its id; mismatched row counts, a bad dimension and
    // a short payload file are refused before anything is written.
    let out = braid(&[
        "import",
        "--data",
        data,
        "--collection",
        "n",
        "--create",
        create,
        "--npy",
        &text_arg,
        "--npy",
        &image_arg,
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    npy(&dir.path().join("short.npy"), &rows(299, 6), false);
    npy(&dir.path().join("wide.npy"), &rows(300, 7), false);
    std::fs::write(dir.path().join("few.jsonl"), lines[..10].join("\n")).unwrap();
    let short = format!("image={}", dir.path().join("short.npy").display());
    let wide = format!("image={}", dir.path().join("wide.npy").display());
    let few = dir.path().join("few.jsonl");
    for (args, needle) in [
        (vec!["--npy", &text_arg, "--npy", &short], "rows"),
        (vec!["--npy", &text_arg, "--npy", &wide], "row 1"),
        (vec!["--npy", &text_arg, "--npy", &image_arg, few.to_str().unwrap()], "fewer lines"),
        (vec!["--npy", "text"], "SPACE=FILE"),
    ] {
        let mut all = vec!["import", "--data", data, "--collection", "bad", "--create", create];
        all.extend(args);
        let out = braid(&all);
        assert!(!out.status.success());
        assert!(text(&out.stderr).contains(needle), "{needle}: {}", text(&out.stderr));
    }
    let db = braid::Database::open(data).unwrap();
    assert_eq!(db.collection("n").unwrap().count(None).unwrap(), 300);
    assert!(
        db.collection("n").unwrap().get(&[braid::PointId::from(299u64)], false, false).unwrap().len() == 1
    );
    assert!(!db.collection_exists("bad"), "a refused import leaves no collection behind");
}

/// `braid import --url` into a running server: checked before anything is sent (a bad
/// line creates nothing), keys sent, `--resume` skipping what the server holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_imports_into_a_running_server() {
    let running = start(Some("secret"), None).await;
    let url = format!("http://{}", running.server.http_addr());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("points.jsonl");
    let lines: Vec<String> = (0..1500u64)
        .map(|i| json!({"id": i, "vector": [i as f32, 1.0, 0.5, 0.25], "payload": {"n": i}}).to_string())
        .collect();
    std::fs::write(&file, lines.join("\n")).unwrap();
    let mut bad_lines = lines.clone();
    bad_lines[700] = json!({"id": 700, "vector": [1.0, 2.0]}).to_string();
    let bad = dir.path().join("bad.jsonl");
    std::fs::write(&bad, bad_lines.join("\n")).unwrap();
    let create = r#"{"vectors": {"size": 4, "distance": "Dot"}}"#;
    let run = |args: Vec<String>| {
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            braid(&args)
        })
    };
    let args = |extra: &[&str], path: &std::path::Path| -> Vec<String> {
        let mut all = vec!["import", "--url", &url, "--collection", "remote", "--create", create];
        all.extend(extra);
        all.push(path.to_str().unwrap());
        all.into_iter().map(str::to_string).collect()
    };

    let out = run(args(&["--api-key", "wrong"], &file)).await.unwrap();
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("remote"), "{}", text(&out.stderr));
    let out = run(args(&["--api-key", "secret"], &bad)).await.unwrap();
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains(":701:"), "{}", text(&out.stderr));
    let db = running.server.database().clone();
    assert!(!db.collection_exists("remote"), "a refused import leaves no collection behind");

    let out = run(args(&["--api-key", "secret", "--batch", "400"], &file)).await.unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let c = db.collection("remote").unwrap();
    assert_eq!(c.count(None).unwrap(), 1500);
    let p = c.get(&[braid::PointId::from(42u64)], true, true).unwrap().remove(0);
    assert_eq!(p.payload.unwrap()["n"], 42);
    assert_eq!(p.vectors.unwrap()[""], vec![42.0, 1.0, 0.5, 0.25]);
    let out = run(args(&["--api-key", "secret", "--resume"], &file)).await.unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("1500 already present"), "{}", text(&out.stderr));
}

/// `braid snapshot create|list|restore --store URL`: snapshots kept in an object store
/// (the local file system backend here); `restore --until` refused without retained logs.
#[test]
fn the_cli_keeps_snapshots_in_an_object_store() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("db");
    let data_s = data.to_str().unwrap();
    let store = format!("file://{}/bucket", dir.path().display());
    let file = dir.path().join("points.jsonl");
    jsonl(&file, 0, "");
    let create = r#"{"vectors": {"size": 4, "distance": "Cosine"}}"#;
    let out = braid(&[
        "import",
        "--data",
        data_s,
        "--collection",
        "docs",
        "--create",
        create,
        file.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    let out = braid(&["snapshot", "create", "--data", data_s, "--collection", "docs", "--store", &store]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let name = text(&out.stdout).split_whitespace().next().unwrap().to_string();
    assert!(dir.path().join("bucket/docs").join(&name).is_file());
    assert!(!data.join("snapshots/docs").join(&name).exists(), "the staged copy is removed");
    let listed = text(
        &braid(&["snapshot", "list", "--data", data_s, "--collection", "docs", "--store", &store]).stdout,
    );
    assert!(listed.starts_with(&name), "{listed}");

    let location = format!("{store}/docs/{name}");
    let out = braid(&[
        "snapshot",
        "restore",
        "--data",
        data_s,
        "--collection",
        "copy",
        "--store",
        &store,
        &location,
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let info: serde_json::Value =
        serde_json::from_slice(&braid(&["info", "--data", data_s, "--json"]).stdout).unwrap();
    let counts: Vec<_> =
        info["collections"].as_array().unwrap().iter().map(|c| c["points"].clone()).collect();
    assert_eq!(counts, vec![json!(100_000), json!(100_000)], "{info}");

    // Point-in-time: a bad time, then writes after the snapshot whose logs were not
    // retained (the import checkpoints, and nothing kept the log): clear refusals.
    let out = braid(&["import", "--data", data_s, "--collection", "docs", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let until = |time: &str| {
        braid(&[
            "snapshot",
            "restore",
            "--data",
            data_s,
            "--collection",
            "docs",
            "--store",
            &store,
            "--until",
            time,
            &location,
        ])
    };
    let out = until("noon");
    assert!(!out.status.success() && text(&out.stderr).contains("RFC 3339"), "{}", text(&out.stderr));
    let out = until("2030-01-01T00:00:00Z");
    assert!(!out.status.success() && text(&out.stderr).contains("retain"), "{}", text(&out.stderr));
}
