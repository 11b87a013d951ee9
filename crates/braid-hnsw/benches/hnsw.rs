//! `cargo xtask bench hnsw` (Braid's half): build time, memory, recall@10 and QPS per
//! `ef`, filtered search at ~1 % selectivity, and recall after deleting 30 %, on the
//! real WordNet/MiniLM embeddings when present (else clustered synthetic data, and it
//! says so). Writes JSON for the xtask, which runs the peers on the same data next.
//!
//! Arguments (after `--`): `--data DIR` (default `target/data/wn20000-q1000-k100`,
//! made by `cargo xtask data`), `--out FILE`, `--m M`, `--ef-construct N`.
//! Under `cargo test` (no `--bench`) it runs once on 2,000 synthetic points.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::Instant;

use braid_core::{Cardinality, DenseVectors, FnFilter, Metric, OffsetFilter, PointOffset, VectorSource};
use braid_hnsw::{Hnsw, HnswConfig};

/// Reads a little-endian `.npy` array of `f4` or `i4` into f32/i32 values and its shape.
fn read_npy(path: &Path) -> Result<(Vec<usize>, Vec<u8>, String), String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err(format!("{}: not an .npy file", path.display()));
    }
    let (header_len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        _ => (u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize, 12),
    };
    let header = String::from_utf8_lossy(&bytes[start..start + header_len]).to_string();
    let descr = header.split("'descr':").nth(1).and_then(|s| s.split('\'').nth(1)).unwrap_or("").to_string();
    let shape_text = header.split("'shape':").nth(1).and_then(|s| s.split(['(', ')']).nth(1)).unwrap_or("");
    let shape: Vec<usize> = shape_text.split(',').filter_map(|s| s.trim().parse().ok()).collect();
    Ok((shape, bytes[start + header_len..].to_vec(), descr))
}

fn f32s(bytes: &[u8]) -> Vec<f32> {
    bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

/// Writes a little-endian `.npy` file of `rows × cols` values (`descr` `<f4` or `<i4`).
fn write_npy(path: &Path, descr: &str, rows: usize, cols: usize, bytes: &[u8]) -> std::io::Result<()> {
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': ({rows}, {cols}), }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(bytes);
    std::fs::write(path, out)
}

/// Saves synthetic data in the shared data's layout, so the peers read the same points.
fn save(data: &Data, dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let f32_bytes = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    let dim = data.base.dim();
    write_npy(&dir.join("out.npy"), "<f4", data.base.len(), dim, &f32_bytes(data.base.as_flat()))?;
    let flat_q: Vec<f32> = data.queries.iter().flatten().copied().collect();
    write_npy(&dir.join("queries.npy"), "<f4", data.queries.len(), dim, &f32_bytes(&flat_q))?;
    let gt: Vec<u8> = data.truth.iter().flatten().flat_map(|&i| (i as i32).to_le_bytes()).collect();
    write_npy(&dir.join("gt.npy"), "<i4", data.truth.len(), 10, &gt)
}

struct Data {
    /// Where the peers can read the same data.
    dir: PathBuf,
    label: String,
    base: DenseVectors,
    queries: Vec<Vec<f32>>,
    /// Exact top-10 per query.
    truth: Vec<Vec<u32>>,
    /// Offsets in the ~1 % filter (category = verb.social on the real data).
    selective: Vec<bool>,
    selective_name: String,
}

fn load_real(dir: &Path) -> Result<Data, String> {
    let (shape, raw, _) = read_npy(&dir.join("out.npy"))?;
    let dim = shape[1];
    let base = DenseVectors::from_flat(dim, f32s(&raw)).ok_or("bad base shape")?;
    let (qshape, qraw, _) = read_npy(&dir.join("queries.npy"))?;
    let queries: Vec<Vec<f32>> = f32s(&qraw).chunks_exact(qshape[1]).map(<[f32]>::to_vec).collect();
    let (gshape, graw, _) = read_npy(&dir.join("gt.npy"))?;
    let gt: Vec<u32> =
        graw.chunks_exact(4).map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as u32).collect();
    let truth = gt.chunks_exact(gshape[1]).map(|row| row[..10].to_vec()).collect();
    let payloads = std::fs::read_to_string(dir.join("out.jsonl")).map_err(|e| e.to_string())?;
    let selective: Vec<bool> = payloads
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l)
                .map(|v| v["category"] == "verb.social")
                .unwrap_or(false)
        })
        .collect();
    Ok(Data {
        dir: dir.to_path_buf(),
        label: format!(
            "{} (real all-MiniLM-L6-v2 embeddings, n = {}, dim = {dim})",
            dir.display(),
            base.len()
        ),
        base,
        queries,
        truth,
        selective,
        selective_name: "category = verb.social".into(),
    })
}

/// Clustered synthetic data: unit vectors around 64 random centres.
fn synthetic(n: usize, queries: usize, dim: usize) -> Data {
    let mut state = 0x1234_5678_9ABC_DEF1u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 40) as f32 / 16_777_216.0 - 0.5
    };
    let centres: Vec<Vec<f32>> = (0..64).map(|_| (0..dim).map(|_| next()).collect()).collect();
    let mut point = |i: usize| -> Vec<f32> {
        let c = &centres[i % centres.len()];
        let mut v: Vec<f32> = c.iter().map(|x| x + 0.35 * next()).collect();
        braid_distance::normalize(&mut v);
        v
    };
    let mut base = DenseVectors::new(dim);
    for i in 0..n {
        base.push(&point(i));
    }
    let queries: Vec<Vec<f32>> = (0..queries).map(|i| point(i * 7 + 3)).collect();
    let graph = Hnsw::new(Metric::Dot, dim, HnswConfig::default(), n).expect("valid config");
    let truth = queries.iter().map(|q| graph_exact(&graph, &base, q)).collect();
    let selective = (0..n).map(|i| i % 97 == 5).collect();
    Data {
        dir: PathBuf::new(),
        label: format!("synthetic clustered unit vectors (n = {n}, dim = {dim}; real data not found)"),
        base,
        queries,
        truth,
        selective,
        selective_name: "every 97th point".into(),
    }
}

/// Exact top-10 by brute force, independent of any graph.
fn graph_exact(_: &Hnsw, base: &DenseVectors, q: &[f32]) -> Vec<u32> {
    let mut scores: Vec<(f32, u32)> = (0..base.len() as u32)
        .map(|i| (braid_distance::simd::dot(q, base.vector(PointOffset(i))), i))
        .collect();
    scores.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    scores.iter().take(10).map(|s| s.1).collect()
}

fn recall(found: &[Vec<u32>], truth: &[Vec<u32>]) -> f64 {
    let hits: usize = found.iter().zip(truth).map(|(f, t)| f.iter().filter(|x| t.contains(x)).count()).sum();
    hits as f64 / (truth.len() * 10) as f64
}

/// Runs every query through `search`, repeating the pass until `min_secs` elapsed;
/// returns (results of the first pass, queries per second).
fn timed(
    queries: &[Vec<f32>],
    min_secs: f64,
    mut search: impl FnMut(&[f32]) -> Vec<u32>,
) -> (Vec<Vec<u32>>, f64) {
    let first: Vec<Vec<u32>> = queries.iter().map(|q| search(q)).collect();
    let start = Instant::now();
    let mut done = 0usize;
    while start.elapsed().as_secs_f64() < min_secs || done == 0 {
        for q in queries {
            black_box(search(q));
        }
        done += queries.len();
    }
    (first, done as f64 / start.elapsed().as_secs_f64())
}

fn main() {
    let args = braid_testkit::BenchArgs::from_env();
    let bench_mode = args.bench;
    let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let data_dir = args
        .value("--data")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target/data/wn20000-q1000-k100"));
    let out = args
        .value("--out")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target/bench/hnsw-braid.json"));
    let m: usize = args.value("--m").and_then(|s| s.parse().ok()).unwrap_or(16);
    let ef_construct: usize = args.value("--ef-construct").and_then(|s| s.parse().ok()).unwrap_or(200);
    let data = if bench_mode {
        load_real(&data_dir).unwrap_or_else(|e| {
            eprintln!("real data unavailable ({e}); using synthetic clustered data");
            let mut data = synthetic(20_000, 1_000, 384);
            data.dir = workspace.join("target/bench/hnsw-synthetic");
            save(&data, &data.dir).expect("write synthetic data for the peers");
            data
        })
    } else {
        synthetic(2_000, 50, 64)
    };
    let min_secs = if bench_mode { 1.0 } else { 0.0 };
    let n = data.base.len();
    let dim = data.base.dim();
    println!("data: {}", data.label);
    let config = HnswConfig { m, ef_construct, seed: 42 };

    let t = Instant::now();
    let graph = Hnsw::build(&data.base, Metric::Dot, config, 1).expect("build");
    let build_1 = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let graph2 = Hnsw::build(&data.base, Metric::Dot, config, 2).expect("build");
    let build_2 = t.elapsed().as_secs_f64();
    println!(
        "build: {build_1:.2} s on 1 thread, {build_2:.2} s on 2 threads (m = {m}, ef_construct = {ef_construct})"
    );

    let raw = (n * dim * 4) as f64;
    let graph_bytes = graph.graph_bytes() as f64;
    let budget = raw + (n * config.m0() * 4) as f64;
    let memory_ratio = (raw + graph_bytes) / budget;
    println!(
        "memory: graph {:.1} bytes/vector; (raw + graph) / (raw + m0·4·n) = {memory_ratio:.3}",
        graph_bytes / n as f64
    );

    let mut sweep = Vec::new();
    for ef in [10usize, 16, 24, 32, 48, 64, 96, 128, 256] {
        let (found, qps) = timed(&data.queries, min_secs, |q| {
            graph.search(&data.base, q, 10, ef, None).expect("search").iter().map(|h| h.offset.0).collect()
        });
        let r = recall(&found, &data.truth);
        println!("ef = {ef:>3}: recall@10 {r:.4}, {qps:>8.0} QPS");
        sweep.push(serde_json::json!({"ef": ef, "recall": r, "qps": qps}));
    }
    let (found2, _) = timed(&data.queries, 0.0, |q| {
        graph2.search(&data.base, q, 10, 64, None).expect("search").iter().map(|h| h.offset.0).collect()
    });
    let (found1, _) = timed(&data.queries, 0.0, |q| {
        graph.search(&data.base, q, 10, 64, None).expect("search").iter().map(|h| h.offset.0).collect()
    });
    let (r1, r2) = (recall(&found1, &data.truth), recall(&found2, &data.truth));
    println!("ef = 64: 1-thread build recall {r1:.4}, 2-thread build recall {r2:.4}");

    // Filtered search at ~1 % selectivity.
    let matching = data.selective.iter().filter(|&&b| b).count();
    let selective = &data.selective;
    let filter = FnFilter::new(
        |o: PointOffset| selective.get(o.index()).copied().unwrap_or(false),
        Cardinality::exact(matching),
    );
    let filter: &dyn OffsetFilter = &filter;
    let exact_truth: Vec<Vec<u32>> = data
        .queries
        .iter()
        .map(|q| {
            graph
                .search_exact(&data.base, q, 10, Some(filter))
                .expect("exact")
                .iter()
                .map(|h| h.offset.0)
                .collect()
        })
        .collect();
    let ef_filtered = 64;
    let (unfiltered, qps_unfiltered) = timed(&data.queries, min_secs, |q| {
        graph
            .search(&data.base, q, 10, ef_filtered, None)
            .expect("search")
            .iter()
            .map(|h| h.offset.0)
            .collect()
    });
    black_box(unfiltered);
    let (auto_found, qps_auto) = timed(&data.queries, min_secs, |q| {
        graph
            .search_auto(&data.base, q, 10, ef_filtered, Some(filter))
            .expect("search")
            .0
            .iter()
            .map(|h| h.offset.0)
            .collect()
    });
    let (graph_found, qps_graph) = timed(&data.queries, min_secs, |q| {
        graph
            .search(&data.base, q, 10, ef_filtered, Some(filter))
            .expect("search")
            .iter()
            .map(|h| h.offset.0)
            .collect()
    });
    let choice = graph.choose_path(ef_filtered, Some(Cardinality::exact(matching)));
    let (r_auto, r_graph) = (recall(&auto_found, &exact_truth), recall(&graph_found, &exact_truth));
    println!(
        "filter {} ({matching} of {n}, {:.2} %): auto ({:?}) recall {r_auto:.4} at {:.2}× unfiltered latency; \
         forced graph recall {r_graph:.4} at {:.2}× unfiltered latency",
        data.selective_name,
        100.0 * matching as f64 / n as f64,
        choice.path,
        qps_unfiltered / qps_auto,
        qps_unfiltered / qps_graph,
    );

    // Delete 30 % and compare with exact search over the survivors.
    let deleted_graph = Hnsw::from_bytes(&graph.to_bytes()).expect("round trip");
    let mut state = 7u64;
    for o in 0..n as u32 {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        if (state >> 33) % 10 < 3 {
            deleted_graph.delete(PointOffset(o));
        }
    }
    let truth_after: Vec<Vec<u32>> = data
        .queries
        .iter()
        .map(|q| {
            deleted_graph
                .search_exact(&data.base, q, 10, None)
                .expect("exact")
                .iter()
                .map(|h| h.offset.0)
                .collect()
        })
        .collect();
    let (after, _) = timed(&data.queries, 0.0, |q| {
        deleted_graph
            .search(&data.base, q, 10, 64, None)
            .expect("search")
            .iter()
            .map(|h| h.offset.0)
            .collect()
    });
    let r_deleted = recall(&after, &truth_after);
    let compacted = deleted_graph.compact(&data.base, 2).expect("compact");
    let (after_compact, _) = timed(&data.queries, 0.0, |q| {
        compacted.search(&data.base, q, 10, 64, None).expect("search").iter().map(|h| h.offset.0).collect()
    });
    let r_compacted = recall(&after_compact, &truth_after);
    println!(
        "after deleting {} of {n}: recall@10 at ef = 64 {r_deleted:.4} (tombstones), {r_compacted:.4} (compacted)",
        deleted_graph.deleted_len()
    );

    let report = serde_json::json!({
        "data": data.label, "data_dir": data.dir, "n": n, "dim": dim, "m": m, "ef_construct": ef_construct,
        "build_s_1thread": build_1, "build_s_2threads": build_2,
        "graph_bytes_per_vector": graph_bytes / n as f64, "memory_ratio": memory_ratio,
        "sweep": sweep,
        "recall_ef64_1thread_build": r1, "recall_ef64_2thread_build": r2,
        "filter": {"name": data.selective_name, "matching": matching, "ef": ef_filtered,
                   "auto_path": format!("{:?}", choice.path), "auto_recall": r_auto, "auto_latency_ratio": qps_unfiltered / qps_auto,
                   "graph_recall": r_graph, "graph_latency_ratio": qps_unfiltered / qps_graph, "unfiltered_qps": qps_unfiltered},
        "deleted_30pct": {"recall_tombstones": r_deleted, "recall_compacted": r_compacted},
    });
    if bench_mode {
        if let Some(dir) = out.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        std::fs::write(&out, serde_json::to_string_pretty(&report).expect("json")).expect("write report");
        println!("wrote {}", out.display());
    }
}
