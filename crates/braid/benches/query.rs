//! `cargo xtask bench query`: single-space search vs a two-prefetch RRF query vs the
//! same with a filter, through the facade, on clustered synthetic data with a 384-d
//! text and a 512-d image space (n = 100,000 by default; `-- --n N` to change).
//! Also single-space search latency (p50, p99) alone and while another thread upserts
//! batches of 2,000 new points, as a ratio: how long readers wait for writers.
//! Under `cargo test` (no `--bench`) it runs once on 2,000 points.

use braid_testkit::Rng;
use std::hint::black_box;
use std::time::Instant;

use braid::{
    CollectionConfig, Database, Distance, Filter, Fusion, IndexKind, PointStruct, Prefetch, QueryRequest,
    SearchRequest, VectorParams, field,
};
use serde_json::json;

/// Microseconds of each call of `f` over `queries`, sorted.
fn latencies(queries: usize, mut f: impl FnMut(usize)) -> Vec<f64> {
    let mut out: Vec<f64> = (0..queries)
        .map(|q| {
            let t = Instant::now();
            f(q);
            t.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    out.sort_by(f64::total_cmp);
    out
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

/// Mean microseconds per call of `f` over `queries`, best of `rounds` passes.
fn per_query(rounds: usize, queries: usize, mut f: impl FnMut(usize)) -> f64 {
    (0..rounds)
        .map(|_| {
            let t = Instant::now();
            for q in 0..queries {
                f(q);
            }
            t.elapsed().as_secs_f64() * 1e6 / queries as f64
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() {
    let args = braid_testkit::BenchArgs::from_env();
    let (bench, n) = (args.bench, args.n(100_000, 2_000));
    let queries = if bench { 500 } else { 20 };
    let rounds = if bench { 3 } else { 1 };
    let topics = 200;
    let mut rng = Rng::new(0xBEEF);
    let text_c: Vec<Vec<f32>> = (0..topics).map(|_| (0..384).map(|_| rng.uniform()).collect()).collect();
    let image_c: Vec<Vec<f32>> = (0..topics).map(|_| (0..512).map(|_| rng.uniform()).collect()).collect();

    let db = Database::in_memory();
    let c = db
        .create_collection(
            "bench",
            CollectionConfig::new()
                .vector("text", VectorParams::new(384, Distance::Cosine).hnsw(16, 100))
                .vector("image", VectorParams::new(512, Distance::Cosine).hnsw(16, 100)),
        )
        .expect("valid config");
    c.create_payload_index("category", IndexKind::Keyword).expect("fresh collection");
    let t = Instant::now();
    for start in (0..n).step_by(2_000) {
        let batch = (start..(start + 2_000).min(n))
            .map(|i| {
                let topic = (i * 7919) % topics;
                PointStruct::new(i as u64)
                    .vector("text", rng.around(&text_c[topic], 0.6))
                    .vector("image", rng.around(&image_c[(topic + i % 3) % topics], 0.6))
                    .payload(json!({"category": format!("c{}", i % 10), "topic": topic}))
            })
            .collect();
        c.upsert(batch).expect("valid points");
    }
    println!(
        "ingested {n} points with text (384-d) and image (512-d) in {:.1} s (graphs built on insert)",
        t.elapsed().as_secs_f64()
    );

    let qs: Vec<(Vec<f32>, Vec<f32>)> = (0..queries)
        .map(|q| {
            let topic = (q * 31) % topics;
            (rng.around(&text_c[topic], 0.4), rng.around(&image_c[topic], 0.4))
        })
        .collect();
    let ten_percent = Filter::must([field("category").eq("c3")]);
    let fused = |q: usize, filter: Option<&Filter>| {
        let mut r = QueryRequest::fusion(
            Fusion::rrf(),
            vec![
                Prefetch::nearest("text", qs[q].0.clone(), 20),
                Prefetch::nearest("image", qs[q].1.clone(), 20),
            ],
        )
        .limit(10);
        r.filter = filter.cloned();
        r
    };
    let single = per_query(rounds, queries, |q| {
        black_box(c.search(&SearchRequest::new("text", qs[q].0.clone()).limit(10)).expect("valid"));
    });
    let rrf = per_query(rounds, queries, |q| {
        black_box(c.query(fused(q, None)).expect("valid"));
    });
    let rrf_filtered = per_query(rounds, queries, |q| {
        black_box(c.query(fused(q, Some(&ten_percent))).expect("valid"));
    });
    println!();
    println!(
        "| query (n = {n}, default ef = ef_construct = 100) | µs per query | ratio to single-space search |"
    );
    println!("|---|---|---|");
    println!("| single-space search (text, limit 10) | {single:.0} | 1.00 |");
    println!("| 2 prefetches × 20 (text, image) → RRF, limit 10 | {rrf:.0} | {:.2} |", rrf / single);
    println!(
        "| same with a 10 % keyword filter (category = c3) | {rrf_filtered:.0} | {:.2} |",
        rrf_filtered / single
    );
    println!();
    println!("plan of the filtered query:\n{}", c.explain(&fused(0, Some(&ten_percent))).expect("valid"));

    // Readers beside a writer: the same searches, alone and while batches of 2,000 new
    // points (with both vectors) are upserted on another thread.
    let search = |q: usize| {
        black_box(c.search(&SearchRequest::new("text", qs[q % queries].0.clone()).limit(10)).expect("valid"));
    };
    let rounds_of = if bench { 8 } else { 2 };
    let quiet = latencies(queries * rounds_of, search);
    let stop = std::sync::atomic::AtomicBool::new(false);
    let (busy, batches) = std::thread::scope(|s| {
        let writer = s.spawn(|| {
            let mut rng = Rng::new(0xFEED);
            let mut next = n;
            let mut batches = 0;
            while !stop.load(std::sync::atomic::Ordering::Acquire) {
                let batch = (next..next + 2_000)
                    .map(|i| {
                        let topic = (i * 7919) % topics;
                        PointStruct::new(i as u64)
                            .vector("text", rng.around(&text_c[topic], 0.6))
                            .vector("image", rng.around(&image_c[topic], 0.6))
                    })
                    .collect();
                c.upsert(batch).expect("valid points");
                next += 2_000;
                batches += 1;
            }
            batches
        });
        let busy = latencies(queries * rounds_of, search);
        stop.store(true, std::sync::atomic::Ordering::Release);
        (busy, writer.join().expect("writer"))
    });
    println!();
    println!("| single-space search, µs | p50 | p99 | max |");
    println!("|---|---|---|---|");
    for (what, l) in [("alone", &quiet), ("while upserting batches of 2,000", &busy)] {
        println!(
            "| {what} | {:.0} | {:.0} | {:.0} |",
            percentile(l, 0.5),
            percentile(l, 0.99),
            percentile(l, 1.0)
        );
    }
    println!(
        "p99 while writing / p99 alone = {:.2} ({batches} batches written during {} searches)",
        percentile(&busy, 0.99) / percentile(&quiet, 0.99),
        busy.len()
    );
}
