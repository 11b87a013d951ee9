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
    CollectionConfig, Database, Distance, Filter, Fusion, GroupBy, IndexKind, Mmr, OrderBy, PointId,
    PointStruct, Prefetch, Query, QueryRequest, Recommend, RecommendStrategy, SearchRequest, VectorParams,
    field,
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
    c.create_payload_index("topic", IndexKind::Integer).expect("fresh collection");
    // The group_by key is indexed, as Qdrant advises: later rounds are narrowed by it.
    c.create_payload_index("doc", IndexKind::Integer).expect("fresh collection");
    let t = Instant::now();
    for start in (0..n).step_by(2_000) {
        let batch = (start..(start + 2_000).min(n))
            .map(|i| {
                let topic = (i * 7919) % topics;
                PointStruct::new(i as u64)
                    .vector("text", rng.around(&text_c[topic], 0.6))
                    .vector("image", rng.around(&image_c[(topic + i % 3) % topics], 0.6))
                    // A document: 10 chunks of one topic (ids topic-congruent, 2,000 apart).
                    .payload(json!({"category": format!("c{}", i % 10), "topic": topic, "doc": (i % 2_000) * 100 + i / 20_000}))
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

    query_api(&c, &qs, n, rounds, single);
    max_sim_rerank(bench, rounds);

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

/// The rest of the query API (#16), each as a ratio to the plain search measured in the
/// same run: recommend (3 positive and 2 negative points, each strategy), groups
/// (group_size 3), MMR, and order_by from its index against a per-point sort.
fn query_api(c: &braid::Collection, qs: &[(Vec<f32>, Vec<f32>)], n: usize, rounds: usize, single: f64) {
    let queries = qs.len();
    let id = |i: usize| braid::Example::Id(PointId::Num((i % n) as u64));
    let recommend = |q: usize, strategy| {
        QueryRequest::recommend(
            "text",
            Recommend {
                positive: vec![id(q * 5), id(q * 5 + 1), id(q * 5 + 2)],
                negative: vec![id(q * 5 + 3), id(q * 5 + 4)],
                strategy,
            },
        )
        .limit(10)
    };
    let time = |f: &dyn Fn(usize)| per_query(rounds, queries, f);
    let average = time(&|q| {
        black_box(c.query(recommend(q, RecommendStrategy::AverageVector)).expect("valid"));
    });
    let best = time(&|q| {
        black_box(c.query(recommend(q, RecommendStrategy::BestScore)).expect("valid"));
    });
    let sum = time(&|q| {
        black_box(c.query(recommend(q, RecommendStrategy::SumScores)).expect("valid"));
    });
    let group = GroupBy { group_size: 3, limit: 10, ..GroupBy::new("doc") };
    let groups = time(&|q| {
        black_box(c.query_groups(QueryRequest::nearest("text", qs[q].0.clone()), &group).expect("valid"));
    });
    // The worst case: every near neighbour in the same category, so each of the other
    // nine groups is found only by narrowed searches far from the query.
    let by_category = GroupBy { group_size: 3, limit: 10, ..GroupBy::new("category") };
    let skewed = time(&|q| {
        black_box(
            c.query_groups(QueryRequest::nearest("text", qs[q].0.clone()), &by_category).expect("valid"),
        );
    });
    let mmr = time(&|q| {
        let request = QueryRequest {
            query: Some(Query::Mmr {
                nearest: braid::Example::Vector(qs[q].0.clone()),
                mmr: Mmr { diversity: Some(0.5), candidates_limit: Some(100) },
            }),
            using: Some("text".into()),
            ..QueryRequest::default()
        };
        black_box(c.query(request.limit(10)).expect("valid"));
    });
    // order_by from the integer index vs reading every point's value and sorting.
    let order_queries = 20.min(queries);
    let ordered = per_query(rounds, order_queries, |q| {
        let order = OrderBy { start_from: Some((q * 10) as f64), ..OrderBy::asc("topic") };
        black_box(c.scroll_ordered(None, &order, 10, false, false).expect("valid"));
    });
    let scanned = per_query(1, order_queries.min(3), |q| {
        let start = (q * 10) as i64;
        let mut all: Vec<(i64, PointId)> = Vec::with_capacity(n);
        let mut offset = None;
        loop {
            let (page, next) = c.scroll(None, 10_000, offset, true, false).expect("valid");
            all.extend(page.iter().filter_map(|r| {
                let t = r.payload.as_ref()?.get("topic")?.as_i64()?;
                (t >= start).then_some((t, r.id))
            }));
            match next {
                Some(n) => offset = Some(n),
                None => break,
            }
        }
        all.sort();
        black_box(all.into_iter().take(10).count());
    });
    println!();
    println!("| query API (#16, n = {n}, limit 10) | µs per query | ratio to single-space search | target |");
    println!("|---|---|---|---|");
    println!("| single-space search | {single:.0} | 1.00 | |");
    for (what, t, target) in [
        ("recommend average_vector (3 positive, 2 negative ids)", average, "≤ 1.2"),
        ("recommend best_score (same examples, graph walked by the score)", best, "≤ 3"),
        ("recommend sum_scores (same examples)", sum, ""),
        ("groups by document (group_size 3, 10 groups; 10 chunks per document)", groups, "≤ 2"),
        ("groups by category, all near neighbours in one category (worst case)", skewed, ""),
        ("MMR (diversity 0.5, 100 candidates)", mmr, ""),
    ] {
        println!("| {what} | {t:.0} | {:.2} | {target} |", t / single);
    }
    println!(
        "| order_by topic from its index (start_from, limit 10) | {ordered:.0} | per-point scan and sort: {scanned:.0} µs, {:.0}× slower | |",
        scanned / ordered
    );
}

/// The ColBERT pattern: a dense prefetch of 100 re-ranked by MaxSim over 32×128-d
/// multivectors, against the plain dense search of the same collection.
fn max_sim_rerank(bench: bool, rounds: usize) {
    let (n, queries) = if bench { (5_000, 200) } else { (300, 10) };
    let mut rng = Rng::new(0xC01B);
    let db = Database::in_memory();
    let c = db
        .create_collection(
            "colbert",
            CollectionConfig::new()
                .vector("dense", VectorParams::new(384, Distance::Cosine))
                .multivector("tokens", braid::MultiVectorParams::new(128, Distance::Cosine)),
        )
        .expect("valid config");
    for start in (0..n).step_by(500) {
        let batch = (start..(start + 500).min(n))
            .map(|i| {
                let tokens: Vec<Vec<f32>> =
                    (0..32).map(|_| (0..128).map(|_| rng.uniform()).collect()).collect();
                PointStruct::new(i as u64)
                    .vector("dense", (0..384).map(|_| rng.uniform()).collect())
                    .multivector("tokens", tokens)
            })
            .collect();
        c.upsert(batch).expect("valid points");
    }
    let qs: Vec<(Vec<f32>, Vec<Vec<f32>>)> = (0..queries)
        .map(|_| {
            let dense = (0..384).map(|_| rng.uniform()).collect();
            let tokens = (0..32).map(|_| (0..128).map(|_| rng.uniform()).collect()).collect();
            (dense, tokens)
        })
        .collect();
    let plain = per_query(rounds, queries, |q| {
        black_box(c.query(QueryRequest::nearest("dense", qs[q].0.clone()).limit(10)).expect("valid"));
    });
    let rerank = per_query(rounds, queries, |q| {
        let request = QueryRequest {
            prefetch: vec![Prefetch::nearest("dense", qs[q].0.clone(), 100)],
            query: Some(Query::Multi(qs[q].1.clone())),
            using: Some("tokens".into()),
            ..QueryRequest::default()
        };
        black_box(c.query(request.limit(10)).expect("valid"));
    });
    println!();
    println!("| ColBERT pattern (n = {n}, 384-d dense + 32×128-d multivectors) | µs per query | ratio |");
    println!("|---|---|---|");
    println!("| dense search, limit 10 | {plain:.0} | 1.00 |");
    println!(
        "| dense prefetch of 100 re-ranked by MaxSim (32 query vectors), limit 10 | {rerank:.0} | {:.2} |",
        rerank / plain
    );
}
