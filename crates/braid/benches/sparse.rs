//! `cargo xtask bench sparse` (Braid's half): hybrid search on WordNet glosses with
//! their MiniLM vectors — ingest with BM25 documents on vs dense only, keyword top-10
//! through the inverted index vs a brute-force BM25 scan (and equality of the two),
//! dense-only vs hybrid RRF latency. The xtask then runs tantivy on the same passages
//! and keyword queries (`benches/peers/tantivy`).
//!
//! Arguments after `--`: `--data DIR` (default `target/data/wn100000-q200-k100`), `--out
//! FILE` (JSON), `--queries-out FILE` (the keyword queries, one per line, for the peer).
//! Under `cargo test` it runs on 2,000 rows of the 20k set when `cargo xtask data` has
//! made it, else it prints a note and stops.

use std::collections::HashMap;
use std::hint::black_box;
use std::path::PathBuf;
use std::time::Instant;

use braid::{
    Bm25, CollectionConfig, Database, Distance, Document, Fusion, PointStruct, Prefetch, QueryRequest,
    SparseVector, SparseVectorParams, VectorParams,
};
use braid_testkit::npy;
use serde_json::{Value, json};

/// Latencies in µs → (QPS over the whole run, p50, p99).
fn summary(mut lat: Vec<f64>, total_s: f64) -> (f64, f64, f64) {
    let n = lat.len();
    lat.sort_by(f64::total_cmp);
    let pct = |p: f64| lat[((n as f64 * p) as usize).min(n - 1)];
    (n as f64 / total_s, pct(0.5), pct(0.99))
}

/// Runs `f` once per query (after one warm-up pass), `rounds` times.
fn timed<T>(queries: usize, rounds: usize, mut f: impl FnMut(usize) -> T) -> (f64, f64, f64) {
    for i in 0..queries {
        black_box(f(i));
    }
    let mut lat = Vec::with_capacity(queries * rounds);
    let all = Instant::now();
    for _ in 0..rounds {
        for i in 0..queries {
            let t = Instant::now();
            black_box(f(i));
            lat.push(t.elapsed().as_secs_f64() * 1e6);
        }
    }
    summary(lat, all.elapsed().as_secs_f64())
}

/// A keyword query from a held-out gloss: up to eight words of its definition (the
/// part after the headwords), as a user would type a short description.
fn keyword_query(gloss: &str) -> String {
    let definition = gloss.split_once(':').map_or(gloss, |(_, d)| d);
    definition.split_whitespace().take(8).collect::<Vec<_>>().join(" ")
}

fn main() {
    let args = braid_testkit::BenchArgs::from_env();
    let bench = args.bench;
    let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dir = args.wordnet_dir(&workspace);
    let out = args.out_file(&workspace, "sparse-braid.json");
    let Ok(mut base) = npy::f32_rows(&dir.join("out.npy")) else {
        println!("no data at {}: nothing to measure", dir.display());
        return;
    };
    let read_texts = |file: &str| -> Vec<String> {
        std::fs::read_to_string(dir.join(file))
            .expect("jsonl")
            .lines()
            .map(|l| {
                serde_json::from_str::<Value>(l).expect("json")["text"].as_str().unwrap_or("").to_string()
            })
            .collect()
    };
    let mut texts = read_texts("out.jsonl");
    let mut dense_queries = npy::f32_rows(&dir.join("queries.npy")).expect("queries.npy");
    let mut keyword: Vec<String> = read_texts("queries.jsonl").iter().map(|g| keyword_query(g)).collect();
    if !bench {
        base.truncate(2_000);
        texts.truncate(2_000);
        dense_queries.truncate(10);
        keyword.truncate(10);
    }
    let n = base.len();
    let dim = base[0].len();
    let nq = keyword.len().min(dense_queries.len());
    let rounds = if bench { 5 } else { 1 };
    println!("data: {} ({n} passages, {nq} queries, dim {dim})", dir.display());
    if let Some(path) = args.value("--queries-out") {
        std::fs::write(path, keyword[..nq].join("\n")).expect("write the queries");
    }

    // Ingest: dense only, then dense + a BM25 document per point (Braid embeds it).
    let batch = 2_000;
    let ingest = |with_text: bool| {
        let db = Database::in_memory();
        let mut config =
            CollectionConfig::new().vector("dense", VectorParams::new(dim, Distance::Cosine).hnsw(16, 200));
        if with_text {
            config = config.sparse_vector("bm25", SparseVectorParams::idf());
        }
        let c = db.create_collection("wordnet", config).expect("config");
        let t = Instant::now();
        for start in (0..n).step_by(batch) {
            let points = (start..(start + batch).min(n))
                .map(|i| {
                    let p = PointStruct::new(i as u64)
                        .vector("dense", base[i].clone())
                        .payload(json!({"text": texts[i]}));
                    if with_text { p.document("bm25", Document::new(texts[i].clone(), "bm25")) } else { p }
                })
                .collect();
            c.upsert(points).expect("upsert");
        }
        (db, c, t.elapsed().as_secs_f64())
    };
    let (_dense_db, _dense_c, dense_ingest) = ingest(false);
    let (_db, c, hybrid_ingest) = ingest(true);
    println!(
        "ingest: dense only {:.0} points/s, dense + BM25 documents {:.0} points/s (ratio {:.2})",
        n as f64 / dense_ingest,
        n as f64 / hybrid_ingest,
        dense_ingest / hybrid_ingest
    );

    // The brute-force reference: every document's vector, IDF from the corpus, every
    // vector scored (dot over shared indices, in index order as Braid sums).
    let bm25 = Bm25::new();
    let docs: Vec<SparseVector> = texts.iter().map(|t| bm25.document(t)).collect();
    let mut df: HashMap<u32, u32> = HashMap::new();
    for d in &docs {
        for &i in d.indices() {
            *df.entry(i).or_default() += 1;
        }
    }
    let brute = |text: &str| -> Vec<(u64, f32)> {
        let q =
            bm25.query(text).reweighted(|i| braid::sparse::idf(df.get(&i).copied().unwrap_or(0), n as u32));
        let mut all: Vec<(u64, f32)> =
            docs.iter().enumerate().filter_map(|(i, d)| q.dot(d).map(|s| (i as u64, s))).collect();
        all.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        all.truncate(10);
        all
    };
    let keyword_request =
        |i: usize| QueryRequest::document("bm25", Document::new(keyword[i].clone(), "bm25")).limit(10);
    let mut exact = 0;
    let mut top10 = Vec::new();
    for (i, text) in keyword.iter().enumerate().take(nq) {
        let got: Vec<(u64, f32)> = c
            .query(keyword_request(i))
            .expect("keyword")
            .into_iter()
            .map(|p| {
                (
                    match p.id {
                        braid::PointId::Num(x) => x,
                        braid::PointId::Uuid(_) => u64::MAX,
                    },
                    p.score,
                )
            })
            .collect();
        if got == brute(text) {
            exact += 1;
        }
        top10.push(got.iter().map(|x| x.0).collect::<Vec<_>>());
    }
    println!("keyword top-10 equal to brute-force BM25 (ids and scores): {exact}/{nq}");
    let explain = c
        .explain(&QueryRequest::document("bm25", Document::new(keyword[0].clone(), "bm25")))
        .expect("explain");
    print!("{explain}");

    let (kq, kp50, kp99) = timed(nq, rounds, |i| c.query(keyword_request(i)).expect("keyword"));
    let (bq, bp50, bp99) = timed(nq, rounds.min(2), |i| brute(&keyword[i]));
    let (dq, dp50, dp99) = timed(nq, rounds, |i| {
        c.query(QueryRequest::nearest("dense", dense_queries[i].clone()).limit(10)).expect("dense")
    });
    let hybrid = |i: usize| {
        QueryRequest::fusion(
            Fusion::rrf(),
            vec![
                Prefetch::document("bm25", Document::new(keyword[i].clone(), "bm25"), 50),
                Prefetch::nearest("dense", dense_queries[i].clone(), 50),
            ],
        )
        .limit(10)
    };
    let (hq, hp50, hp99) = timed(nq, rounds, |i| c.query(hybrid(i)).expect("hybrid"));
    println!("| query | QPS | p50 µs | p99 µs |");
    println!("|---|---:|---:|---:|");
    for (name, (q, p50, p99)) in [
        ("keyword (BM25 top-10, inverted index)", (kq, kp50, kp99)),
        ("keyword brute force (every vector scored)", (bq, bp50, bp99)),
        ("dense only (HNSW, ef 200)", (dq, dp50, dp99)),
        ("hybrid: BM25 50 + dense 50, RRF top-10", (hq, hp50, hp99)),
    ] {
        println!("| {name} | {q:.0} | {p50:.0} | {p99:.0} |");
    }
    println!(
        "inverted index vs brute force: {:.1}× QPS; hybrid p50 / dense p50 = {:.2}, hybrid p99 / dense p99 = {:.2}",
        kq / bq,
        hp50 / dp50,
        hp99 / dp99
    );
    let report = json!({
        "passages": n, "queries": nq,
        "ingest_points_per_s": {"dense": n as f64 / dense_ingest, "hybrid": n as f64 / hybrid_ingest},
        "exact_top10": exact,
        "keyword": {"qps": kq, "p50_us": kp50, "p99_us": kp99},
        "brute": {"qps": bq, "p50_us": bp50, "p99_us": bp99},
        "dense": {"qps": dq, "p50_us": dp50, "p99_us": dp99},
        "hybrid": {"qps": hq, "p50_us": hp50, "p99_us": hp99},
        "top10": top10,
    });
    if let Some(parent) = out.parent() {
        std::fs::create_dir_all(parent).expect("out dir");
    }
    std::fs::write(&out, serde_json::to_string_pretty(&report).expect("json")).expect("write");
    assert_eq!(exact, nq, "the inverted index must answer exactly what brute force does");
}
