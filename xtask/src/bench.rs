//! `cargo xtask bench <name>`: one entry per benchmark, mapped to the crate that owns it.

use std::process::Command;

use crate::{cargo, exec, root};

/// (name, package, bench target, what it measures)
const BENCHES: &[(&str, &str, &str, &str)] = &[
    (
        "distance",
        "braid-distance",
        "distance",
        "kernels per metric at 384/512-d, 1×N block, Q×N faer, exact-scan bandwidth vs memory read",
    ),
    (
        "filter",
        "braid-filter",
        "filter",
        "filter → bitmap through payload indexes vs per-point evaluation, 1M points",
    ),
    (
        "query",
        "braid",
        "query",
        "facade: single-space search vs 2-prefetch RRF vs RRF with a filter, 100k points, 2 spaces",
    ),
    (
        "database",
        "braid",
        "database",
        "the facade on 100k WordNet/MiniLM beside qdrant-edge and Chroma (makes the data and a venv under target/)",
    ),
    (
        "storage",
        "braid",
        "storage",
        "ingest 100k points (384-d + 512-d + payload) on disk, flush, reopen; vs in-memory ingest and a raw write",
    ),
    (
        "server",
        "braid-server",
        "server",
        "search QPS and p50/p99 over REST and gRPC at 1, 8, 64 connections vs the embedded facade, 100k points",
    ),
    (
        "ops",
        "braid-server",
        "ops",
        "snapshot create/restore of 100k points vs cp of the same bytes, CLI import vs facade upsert, metrics on vs off",
    ),
    (
        "sparse",
        "braid",
        "sparse",
        "hybrid search on 100k WordNet passages: BM25 via the inverted index vs brute force and tantivy, dense vs hybrid RRF, ingest",
    ),
    (
        "scale",
        "braid",
        "scale",
        "build time, peak memory, disk, reopen and recall-matched QPS/p99 as N grows (--n 100000,1000000), float32/int8/binary/on-disk/product; --peers [LIST]: hnswlib, FAISS, qdrant-edge on the same rows",
    ),
    (
        "cluster",
        "braid-server",
        "cluster",
        "braid serve processes: ingest alone vs a cluster of 1 vs 3 replicas, failover after a kill, a replica catching up 100k points",
    ),
    (
        "hnsw",
        "braid-hnsw",
        "hnsw",
        "Braid's HNSW beside hnswlib, FAISS and usearch (Python venv under target/) on the same data",
    ),
];

/// The peers of `bench hnsw`, pinned; installed into a venv under `target/` on first use.
pub(crate) const HNSW_PEERS: &[&str] =
    &["hnswlib==0.8.0", "faiss-cpu==1.15.1", "usearch==2.26.6", "numpy", "matplotlib"];

/// The database-level peers, pinned.
const DATABASE_PEERS: &[&str] = &["qdrant-edge-py==0.9.0", "chromadb==1.5.9", "numpy"];

/// A Python venv under target/bench with `packages` installed; returns its python.
pub(crate) fn venv_with(packages: &[&str]) -> Result<std::path::PathBuf, String> {
    let venv = root().join("target/bench/venv");
    let python = venv.join("bin/python");
    if !python.exists() {
        exec(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
    }
    exec(Command::new(&python).args(["-m", "pip", "install", "--quiet"]).args(packages))?;
    Ok(python)
}

/// A bench with peers: Braid's half (`cargo bench` of `package`/`bench`, which writes
/// `target/bench/<bench>-braid.json`), then `benches/peers/<bench>_peers.py` with
/// `peers` installed in the venv, reading that JSON. Results land in target/bench/.
fn with_peers(package: &str, bench: &str, peers: &[&str], braid_args: &[String]) -> Result<(), String> {
    let out_dir = root().join("target/bench");
    std::fs::create_dir_all(&out_dir).map_err(|e| format!("cannot create {}: {e}", out_dir.display()))?;
    let braid_json = out_dir.join(format!("{bench}-braid.json"));
    let mut cmd = cargo();
    cmd.args(["bench", "--package", package, "--bench", bench, "--", "--bench", "--out"])
        .arg(&braid_json)
        .args(braid_args);
    exec(&mut cmd)?;
    let python = venv_with(peers)?;
    exec(
        Command::new(&python)
            .arg(root().join(format!("benches/peers/{bench}_peers.py")))
            .arg("--braid")
            .arg(&braid_json)
            .arg("--out-dir")
            .arg(&out_dir),
    )?;
    println!("results: {}", out_dir.join(format!("{bench}.md")).display());
    Ok(())
}

/// `bench database`: the 100k WordNet set (`cargo xtask data --n 100000 --queries 200`,
/// made once and cached under target/data), then Braid, qdrant-edge and Chroma on it.
fn database_with_peers(extra: &[String]) -> Result<(), String> {
    let data = crate::data::ensure(crate::data::Spec { n: 100_000, queries: 200, k: 100 })?;
    let mut args = vec!["--data".to_string(), data.display().to_string()];
    args.extend_from_slice(extra);
    with_peers("braid", "database", DATABASE_PEERS, &args)
}

/// `bench sparse`: Braid's half on the 100k set (writing the keyword queries), then
/// tantivy's (a project outside the workspace, built into its own target directory)
/// and embedded Qdrant's (qdrant-edge-py, with its own BM25 model), then the comparison: QPS ratio and how much the two top-10s overlap (their BM25
/// variants differ: Qdrant's fixed average length vs tantivy's corpus statistics).
fn sparse_with_tantivy(extra: &[String]) -> Result<(), String> {
    let data = match extra.iter().position(|a| a == "--data") {
        Some(i) => std::path::PathBuf::from(extra.get(i + 1).ok_or("--data needs a directory")?),
        None => crate::data::ensure(crate::data::Spec { n: 100_000, queries: 200, k: 100 })?,
    };
    let out = root().join("target/bench");
    std::fs::create_dir_all(&out).map_err(|e| e.to_string())?;
    let (braid_json, peer_json, queries) =
        (out.join("sparse-braid.json"), out.join("sparse-tantivy.json"), out.join("sparse-queries.txt"));
    let mut cmd = cargo();
    cmd.args(["bench", "--package", "braid", "--bench", "sparse", "--", "--bench", "--data"])
        .arg(&data)
        .arg("--out")
        .arg(&braid_json)
        .arg("--queries-out")
        .arg(&queries);
    exec(&mut cmd)?;
    exec(
        cargo()
            .env("CARGO_TARGET_DIR", out.join("tantivy-target"))
            .args(["run", "--release", "--quiet", "--manifest-path"])
            .arg(root().join("benches/peers/tantivy/Cargo.toml"))
            .arg("--")
            .arg("--data")
            .arg(&data)
            .arg("--queries")
            .arg(&queries)
            .arg("--out")
            .arg(&peer_json),
    )?;
    let read = |p: &std::path::Path| -> Result<serde_json::Value, String> {
        let text = std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?;
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", p.display()))
    };
    let qdrant_json = out.join("sparse-qdrant.json");
    let python = venv_with(DATABASE_PEERS)?;
    exec(
        Command::new(&python)
            .arg(root().join("benches/peers/sparse_peers.py"))
            .arg("--data")
            .arg(&data)
            .arg("--queries")
            .arg(&queries)
            .arg("--braid")
            .arg(&braid_json)
            .arg("--out")
            .arg(&qdrant_json),
    )?;
    let (braid, peer, qdrant) = (read(&braid_json)?, read(&peer_json)?, read(&qdrant_json)?);
    let top = |v: &serde_json::Value| -> Vec<Vec<u64>> {
        v["top10"].as_array().map_or_else(Vec::new, |qs| {
            qs.iter()
                .map(|q| {
                    q.as_array().map_or_else(Vec::new, |ids| ids.iter().filter_map(|i| i.as_u64()).collect())
                })
                .collect()
        })
    };
    let (a, b) = (top(&braid), top(&peer));
    let overlap: f64 = a
        .iter()
        .zip(&b)
        .map(|(x, y)| x.iter().filter(|i| y.contains(i)).count() as f64 / x.len().max(1) as f64)
        .sum::<f64>()
        / a.len().max(1) as f64;
    let ratio = |k: &str| braid["keyword"][k].as_f64().unwrap_or(0.0) / peer[k].as_f64().unwrap_or(f64::NAN);
    println!(
        "keyword BM25 top-10, Braid / tantivy: QPS {:.2}×, p50 {:.2}×, p99 {:.2}× (latency ratios: lower is faster); top-10 overlap {:.0} %",
        ratio("qps"),
        ratio("p50_us"),
        ratio("p99_us"),
        overlap * 100.0
    );
    let qps = |v: &serde_json::Value| v["qps"].as_f64().unwrap_or(f64::NAN);
    println!(
        "keyword BM25 top-10, Braid / qdrant-edge: QPS {:.2}×; same top-10 sets {}/{}",
        braid["keyword"]["qps"].as_f64().unwrap_or(0.0) / qps(&qdrant),
        qdrant["same_top10_sets"],
        qdrant["queries"]
    );
    Ok(())
}

pub(crate) fn run_bench(name: &str, extra: &[String]) -> Result<(), String> {
    let Some((_, package, target, _)) = BENCHES.iter().find(|(n, ..)| *n == name) else {
        return Err(format!("unknown bench `{name}`; known: {}", names()));
    };
    if name == "hnsw" {
        let mut args = extra.to_vec();
        if !args.iter().any(|a| a == "--data") {
            let data = crate::data::ensure(crate::data::DEFAULT)?;
            args.extend(["--data".to_string(), data.display().to_string()]);
        }
        return with_peers("braid-hnsw", "hnsw", HNSW_PEERS, &args);
    }
    if name == "database" {
        return database_with_peers(extra);
    }
    if name == "sparse" {
        return sparse_with_tantivy(extra);
    }
    if name == "scale" {
        return crate::scale::run(extra);
    }
    if name == "cluster" {
        return crate::cluster::bench(extra);
    }
    let mut cmd = cargo();
    cmd.args(["bench", "--package", package, "--bench", target]);
    if !extra.is_empty() {
        cmd.arg("--").args(extra);
    }
    exec(&mut cmd)
}

fn names() -> String {
    BENCHES.iter().map(|(n, _, _, what)| format!("\n  {n}: {what}")).collect()
}

pub(crate) fn run(args: &[String]) -> Result<(), String> {
    match args {
        [] => Err(format!("usage: cargo xtask bench <name> [-- criterion args]; names:{}", names())),
        [name, rest @ ..] => {
            let extra = match rest {
                [dashes, tail @ ..] if dashes == "--" => tail,
                other => other,
            };
            run_bench(name, extra)
        }
    }
}
