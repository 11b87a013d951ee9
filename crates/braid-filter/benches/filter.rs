//! `cargo xtask bench filter`: a filter turned into a bitmap through payload indexes
//! vs the same filter evaluated point by point, on 1M payloads, in the same run.
//!
//! Under `cargo test` (no `--bench` flag) it runs once on 10k points.

use std::hint::black_box;
use std::time::{Duration, Instant};

use braid_core::PointOffset;
use braid_filter::{Filter, IndexKind, OffsetIds, PayloadStore, PointLookup, field};
use serde_json::json;

fn best_of(rounds: usize, mut f: impl FnMut() -> u64) -> (Duration, u64) {
    let mut best = Duration::MAX;
    let mut count = 0;
    for _ in 0..rounds {
        let start = Instant::now();
        count = black_box(f());
        best = best.min(start.elapsed());
    }
    (best, count)
}

fn main() {
    let bench_mode = std::env::args().any(|a| a == "--bench");
    let n: u32 = if bench_mode { 1_000_000 } else { 10_000 };
    let rounds = if bench_mode { 5 } else { 1 };

    // A cheap deterministic generator: payloads shaped like a product catalogue.
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let started = Instant::now();
    let mut indexed = PayloadStore::new();
    indexed.create_index("category", IndexKind::Keyword).expect("fresh store");
    indexed.create_index("price", IndexKind::Float).expect("fresh store");
    indexed.create_index("in_stock", IndexKind::Bool).expect("fresh store");
    let mut plain = PayloadStore::new();
    for i in 0..n {
        let payload = json!({
            "category": format!("c{}", next() % 45),
            "price": (next() % 100_000) as f64 / 100.0,
            "in_stock": next() % 4 != 0,
            "name": format!("item {i}"),
        });
        indexed.set(PointOffset(i), payload.clone());
        plain.set(PointOffset(i), payload);
    }
    println!("built {n} payloads twice (indexed and plain) in {:.1} s", started.elapsed().as_secs_f64());
    let segment = OffsetIds::new((0..n).collect());

    let cases: Vec<(&str, Filter)> = vec![
        ("keyword: category = c7", Filter::must([field("category").eq("c7")])),
        ("range: 100 <= price <= 200", Filter::must([field("price").between(100.0, 200.0)])),
        ("bool: in_stock = true", Filter::must([field("in_stock").eq(true)])),
        (
            "keyword any + range + must_not bool",
            Filter {
                must: vec![field("category").any_keyword(["c1", "c2", "c3"]), field("price").lte(300.0)],
                must_not: vec![field("in_stock").eq(false)],
                ..Filter::default()
            },
        ),
    ];
    println!();
    println!("| filter | matches | indexed → bitmap | per point | per point / indexed |");
    println!("|---|---|---|---|---|");
    for (name, filter) in &cases {
        let (fast, hits) = best_of(rounds, || indexed.plan(filter, &segment).matching().len());
        let (slow, hits_slow) = best_of(rounds, || plain.plan(filter, &segment).matching().len());
        assert_eq!(hits, hits_slow, "indexed and per-point evaluation disagree on {name}");
        println!(
            "| {name} | {hits} | {:.2} ms | {:.1} ms | {:.1}× |",
            fast.as_secs_f64() * 1e3,
            slow.as_secs_f64() * 1e3,
            slow.as_secs_f64() / fast.as_secs_f64()
        );
    }

    // Facets: value counts from the keyword index vs counting each payload's value.
    println!();
    println!("| facet on `category` | values | from the index | per point | per point / index |");
    println!("|---|---|---|---|---|");
    let facet_cases: Vec<(&str, Option<Filter>)> =
        vec![("all points", None), ("in_stock = true", Some(Filter::must([field("in_stock").eq(true)])))];
    for (name, filter) in &facet_cases {
        let among = |store: &PayloadStore| match filter {
            Some(f) => store.plan(f, &segment).matching(),
            None => segment.live().clone(),
        };
        let mut from_index = Vec::new();
        let (fast, _) = best_of(rounds, || {
            from_index = indexed.facet("category", &among(&indexed), 100).expect("indexed");
            from_index.len() as u64
        });
        let mut counted = Vec::new();
        let (slow, _) = best_of(rounds, || {
            let mut counts: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
            for o in &among(&plain) {
                if let Some(p) = plain.get(PointOffset(o))
                    && let Some(c) = p["category"].as_str()
                {
                    *counts.entry(c.to_string()).or_default() += 1;
                }
            }
            counted = counts.into_iter().collect::<Vec<_>>();
            counted.len() as u64
        });
        counted.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let want: Vec<(braid_filter::FacetValue, usize)> =
            counted.iter().map(|(k, n)| (braid_filter::FacetValue::Keyword(k.clone()), *n)).collect();
        assert_eq!(from_index, want, "the index and a per-point count disagree on {name}");
        println!(
            "| {name} | {} | {:.3} ms | {:.1} ms | {:.0}× |",
            from_index.len(),
            fast.as_secs_f64() * 1e3,
            slow.as_secs_f64() * 1e3,
            slow.as_secs_f64() / fast.as_secs_f64()
        );
    }
}
