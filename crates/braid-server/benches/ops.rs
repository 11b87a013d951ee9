//! `cargo xtask bench ops`: what operating Braid costs, each figure against a baseline
//! measured in the same run.
//!
//! - Snapshot create and restore of n points (384-d text + 512-d image + a payload) vs
//!   `cp` of the same bytes (the collection's files; the snapshot file); the size of
//!   an incremental snapshot after 1 % of the points changed, as a share of a full one.
//! - `braid import` of m points from JSON Lines (the CLI process, parse and check
//!   included) vs upserting the same points through the facade in one process.
//! - REST search QPS at 8 connections with request metrics on vs off (three
//!   alternating rounds each, medians).
//!
//! n = 100,000 and m = 20,000 by default (`-- --n N --m M`); under `cargo test` (no
//! `--bench`) 1,000 and 500.

use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use braid::{CollectionConfig, Database, Distance, IndexKind, PointStruct, VectorParams};
use braid_server::{Server, ServerConfig};
use braid_testkit::Rng;
use serde_json::json;

fn config() -> CollectionConfig {
    CollectionConfig::new()
        .vector("text", VectorParams::new(384, Distance::Cosine).hnsw(16, 100))
        .vector("image", VectorParams::new(512, Distance::Cosine).hnsw(16, 100))
}

fn points(n: usize, seed: u64) -> Vec<PointStruct> {
    let mut rng = Rng::new(seed);
    (0..n)
        .map(|i| {
            PointStruct::new(i as u64)
                .vector("text", rng.vector(384))
                .vector("image", rng.vector(512))
                .payload(json!({"category": format!("c{}", i % 10), "price": (i % 500) as f64}))
        })
        .collect()
}

fn secs(f: impl FnOnce()) -> f64 {
    let t = Instant::now();
    f();
    t.elapsed().as_secs_f64()
}

fn cp(from: &std::path::Path, to: &std::path::Path) -> f64 {
    secs(|| {
        let ok = Command::new("cp").arg("-r").arg(from).arg(to).status().expect("cp runs").success();
        assert!(ok, "cp failed");
        // As the snapshot does, make the copy durable.
        let _ = Command::new("sync").arg("-f").arg(to).status();
    })
}

fn dir_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir).expect("dir").filter_map(|e| e.ok()?.metadata().ok()).map(|m| m.len()).sum()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn snapshots(n: usize) {
    let dir = tempfile::tempdir().expect("temp dir");
    // Logs kept, for the point-in-time recovery at the end.
    let options = braid::StorageOptions {
        log_retention: Some(std::time::Duration::from_secs(3600)),
        ..braid::StorageOptions::default()
    };
    let db = Database::open_with(dir.path().join("db"), options).expect("open");
    let c = db.create_collection("bench", config()).expect("config");
    c.create_payload_index("category", IndexKind::Keyword).expect("index");
    let all = points(n, 0x0b5);
    let ingest = secs(|| {
        for batch in all.chunks(1000) {
            c.upsert(batch.to_vec()).expect("upsert");
        }
        c.flush().expect("flush");
    });
    drop(all);
    let collection_dir = std::fs::read_dir(dir.path().join("db"))
        .expect("db dir")
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("c-")))
        .expect("the collection's directory");
    let bytes = dir_bytes(&collection_dir);
    let snapshots = dir.path().join("snapshots");
    let (mut create, mut copy, mut restore, mut copy_file) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut size = 0;
    for round in 0..3 {
        let to = dir.path().join(format!("copy-{round}"));
        copy.push(cp(&collection_dir, &to));
        let _ = std::fs::remove_dir_all(&to);
        let mut d = None;
        create.push(secs(|| d = Some(db.snapshot_collection("bench", &snapshots).expect("snapshot"))));
        let d = d.expect("made");
        size = d.size;
        let file = snapshots.join(&d.name);
        let to = dir.path().join(format!("file-{round}"));
        copy_file.push(cp(&file, &to));
        let _ = std::fs::remove_file(&to);
        restore.push(secs(|| {
            db.recover_collection(&format!("restored-{round}"), &file, d.checksum.as_deref())
                .expect("restore");
        }));
        let _ = std::fs::remove_file(&file);
    }
    let (create, copy, restore, copy_file) =
        (median(create), median(copy), median(restore), median(copy_file));
    println!(
        "snapshot of {n} points (384-d + 512-d + payload; ingest {ingest:.1} s), {bytes} bytes of files, snapshot {size} bytes:"
    );
    println!("  create  {create:>8.3} s   cp -r of the files {copy:>8.3} s   ratio {:.2}", create / copy);
    println!(
        "  restore {restore:>8.3} s   cp of the snapshot {copy_file:>8.3} s   ratio {:.2}",
        restore / copy_file
    );

    // Incremental: a full base, 1 % of the points written anew, then only what changed.
    let base = db.snapshot_collection("bench", &snapshots).expect("base");
    let changed = points(n / 100, 0x1c);
    c.upsert(changed).expect("changes");
    let mut inc = None;
    let made = secs(|| {
        inc = Some(db.snapshot_collection_incremental("bench", &snapshots, &base.name).expect("inc"))
    });
    let inc = inc.expect("made");
    let restored = secs(|| {
        db.recover_collection("restored-inc", &snapshots.join(&inc.name), inc.checksum.as_deref())
            .expect("incremental restore");
    });
    println!(
        "  incremental after 1 % changed: {} bytes = {:.3} of the full snapshot ({} bytes); create {made:.3} s, restore {restored:.3} s",
        inc.size,
        inc.size as f64 / base.size as f64,
        base.size
    );

    // Point-in-time: the base brought forward by replaying the 1 % from the retained
    // log, against recovering the base alone.
    let base_file = snapshots.join(&base.name);
    let plain = secs(|| {
        db.recover_collection("restored-base", &base_file, base.checksum.as_deref()).expect("base restore");
    });
    let before = c.count(None).expect("count");
    let mut recovered = None;
    let pitr = secs(|| {
        recovered = Some(
            db.recover_collection_until(
                "bench",
                &base_file,
                base.checksum.as_deref(),
                std::time::SystemTime::now(),
            )
            .expect("point-in-time recovery"),
        );
    });
    assert_eq!(recovered.expect("made").count(None).expect("count"), before);
    println!(
        "  point-in-time recovery (base + {} points replayed from the log) {pitr:.3} s   recovery of the base alone {plain:.3} s   ratio {:.2}",
        n / 100,
        pitr / plain
    );
}

fn import(m: usize) {
    let dir = tempfile::tempdir().expect("temp dir");
    let all = points(m, 0x1a9);
    let file = dir.path().join("points.jsonl");
    {
        use std::io::Write;
        let mut out = std::io::BufWriter::new(std::fs::File::create(&file).expect("file"));
        for p in &all {
            let line = json!({"id": p.id, "vector": p.vectors, "payload": p.payload});
            writeln!(out, "{line}").expect("write");
        }
    }
    let file_bytes = std::fs::metadata(&file).expect("file").len();
    let mut cli = Vec::new();
    let mut facade = Vec::new();
    for round in 0..3 {
        let data = dir.path().join(format!("cli-{round}"));
        cli.push(secs(|| {
            let out = Command::new(env!("CARGO_BIN_EXE_braid"))
                .args(["import", "--data"])
                .arg(&data)
                .args(["--collection", "bench", "--create"])
                .arg(
                    r#"{"vectors": {"text": {"size": 384, "distance": "Cosine", "hnsw_config": {"m": 16, "ef_construct": 100}},
                                    "image": {"size": 512, "distance": "Cosine", "hnsw_config": {"m": 16, "ef_construct": 100}}}}"#,
                )
                .arg(&file)
                .output()
                .expect("braid runs");
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        }));
        let db = Database::open(dir.path().join(format!("facade-{round}"))).expect("open");
        facade.push(secs(|| {
            let c = db.create_collection("bench", config()).expect("config");
            for batch in all.chunks(512) {
                c.upsert(batch.to_vec()).expect("upsert");
            }
            c.flush().expect("flush");
        }));
    }
    let (cli, facade) = (median(cli), median(facade));
    println!("import of {m} points ({file_bytes} bytes of JSON Lines):");
    println!(
        "  braid import {cli:>8.2} s ({:.0} points/s)   facade upsert {facade:>8.2} s ({:.0} points/s)   ratio {:.2}",
        m as f64 / cli,
        m as f64 / facade,
        cli / facade
    );
}

async fn qps(server: &Server, queries: &Arc<Vec<Vec<f32>>>, each: usize) -> f64 {
    let url = format!("http://{}/collections/bench/points/search", server.http_addr());
    let start = Instant::now();
    let tasks: Vec<_> = (0..8)
        .map(|w| {
            let (url, queries) = (url.clone(), queries.clone());
            tokio::spawn(async move {
                let client = reqwest::Client::new();
                for i in 0..each {
                    let q = &queries[(w * each + i) % queries.len()];
                    let body = json!({"vector": {"name": "text", "vector": q}, "limit": 10});
                    let r = client.post(&url).json(&body).send().await.expect("answer");
                    assert!(r.status().is_success());
                    r.bytes().await.expect("body");
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("task");
    }
    (8 * each) as f64 / start.elapsed().as_secs_f64()
}

async fn metrics_cost(n: usize, each: usize) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut servers = Vec::new();
    for (i, on) in [true, false].into_iter().enumerate() {
        let mut config = ServerConfig::new(dir.path().join(format!("db-{i}")));
        config.http = "127.0.0.1:0".parse().expect("addr");
        config.grpc = "127.0.0.1:0".parse().expect("addr");
        config.request_metrics = on;
        let server = Server::start(config).await.expect("server");
        let db = server.database().clone();
        tokio::task::spawn_blocking(move || {
            let c = db.create_collection("bench", config_text()).expect("config");
            for batch in points_text(n).chunks(1000) {
                c.upsert(batch.to_vec()).expect("upsert");
            }
        })
        .await
        .expect("ingest");
        servers.push(server);
    }
    let mut rng = Rng::new(7);
    let queries = Arc::new((0..512).map(|_| rng.vector(384)).collect::<Vec<_>>());
    qps(&servers[0], &queries, each / 4).await;
    qps(&servers[1], &queries, each / 4).await;
    let (mut on, mut off) = (Vec::new(), Vec::new());
    for round in 0..5 {
        // Alternate which goes first, so that neither always runs on a warmer machine.
        if round % 2 == 0 {
            on.push(qps(&servers[0], &queries, each).await);
            off.push(qps(&servers[1], &queries, each).await);
        } else {
            off.push(qps(&servers[1], &queries, each).await);
            on.push(qps(&servers[0], &queries, each).await);
        }
    }
    let (on, off) = (median(on), median(off));
    println!("REST search, {n} points 384-d, 8 connections, limit 10 (medians of 5 alternating rounds):");
    println!("  metrics on {on:>8.0} QPS   metrics off {off:>8.0} QPS   on/off {:.3}", on / off);
}

fn config_text() -> CollectionConfig {
    CollectionConfig::new().vector("text", VectorParams::new(384, Distance::Cosine))
}

fn points_text(n: usize) -> Vec<PointStruct> {
    let mut rng = Rng::new(0x7e);
    (0..n).map(|i| PointStruct::new(i as u64).vector("text", rng.vector(384))).collect()
}

fn main() {
    let args = braid_testkit::BenchArgs::from_env();
    let n = args.n(100_000, 1_000);
    let m = args.value("--m").and_then(|s| s.parse().ok()).unwrap_or(if args.bench { 20_000 } else { 500 });
    let each = if args.bench { 2_000 } else { 20 };
    snapshots(n);
    import(m);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    runtime.block_on(metrics_cost(n, each));
}
