//! `cargo xtask bench distance`: the kernels per metric, block and matrix scoring, coded
//! distances of every kind of codes (on the heap and held in a file's bytes), and the
//! exact-scan bandwidth beside a plain memory read of the same buffer.
//!
//! Figures go into `docs/benchmarks.md`. Under `cargo test` (no `--bench` flag) every
//! benchmark runs once on small inputs, so the code stays compiled and exercised.

use std::hint::black_box;
use std::time::{Duration, Instant};

use braid_core::Metric;
use std::sync::Arc;

use braid_distance::{
    CodeKind, Codes, CodesBuffer, Compression, Kernel, scan_top_k, score_block_raw, score_matrix_faer,
    score_matrix_pairs, simd,
};
use criterion::{BenchmarkId, Criterion, Throughput};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const DIMS: [usize; 2] = [384, 512];
const BLOCK_ROWS: usize = 10_000;

fn random_vectors(rng: &mut StdRng, n: usize, dim: usize) -> Vec<f32> {
    (0..n * dim).map(|_| rng.random_range(-1.0f32..1.0)).collect()
}

fn pairs(c: &mut Criterion) {
    let mut rng = StdRng::seed_from_u64(1);
    let mut group = c.benchmark_group("pair");
    for dim in DIMS {
        let a = random_vectors(&mut rng, 1, dim);
        let b = random_vectors(&mut rng, 1, dim);
        for metric in Metric::ALL {
            let kernel = Kernel::new(metric);
            group.throughput(Throughput::Bytes((2 * dim * 4) as u64));
            group.bench_with_input(BenchmarkId::new(format!("{metric:?}"), dim), &dim, |bench, _| {
                bench.iter(|| kernel.raw(black_box(&a), black_box(&b)))
            });
        }
        // simsimd's kernels for the same pairs, beside Braid's.
        group.bench_with_input(BenchmarkId::new("simsimd-dot", dim), &dim, |bench, _| {
            bench.iter(|| simd::simsimd_dot(black_box(&a), black_box(&b)))
        });
        group.bench_with_input(BenchmarkId::new("simsimd-l2sq", dim), &dim, |bench, _| {
            bench.iter(|| simd::simsimd_l2_squared(black_box(&a), black_box(&b)))
        });
    }
    group.finish();
}

fn blocks(c: &mut Criterion) {
    let mut rng = StdRng::seed_from_u64(2);
    let mut group = c.benchmark_group("block_1xN");
    for dim in DIMS {
        let block = random_vectors(&mut rng, BLOCK_ROWS, dim);
        let query = random_vectors(&mut rng, 1, dim);
        let mut out = vec![0.0f32; BLOCK_ROWS];
        group.throughput(Throughput::Bytes((BLOCK_ROWS * dim * 4) as u64));
        for metric in Metric::ALL {
            let kernel = Kernel::new(metric);
            group.bench_with_input(BenchmarkId::new(format!("{metric:?}"), dim), &dim, |bench, _| {
                bench.iter(|| score_block_raw(&kernel, black_box(&query), black_box(&block), &mut out))
            });
        }
    }
    group.finish();
}

/// Q queries against N rows: per-pair kernels vs one faer matrix product. Where the
/// faer line overtakes the pairs line sets `MATRIX_MIN_QUERIES`.
fn matrix(c: &mut Criterion) {
    let mut rng = StdRng::seed_from_u64(3);
    let mut group = c.benchmark_group("matrix_QxN");
    for dim in DIMS {
        let block = random_vectors(&mut rng, BLOCK_ROWS, dim);
        for q in [1usize, 2, 4, 8, 16, 64] {
            let queries = random_vectors(&mut rng, q, dim);
            let mut out = vec![0.0f32; q * BLOCK_ROWS];
            group.throughput(Throughput::Elements((q * BLOCK_ROWS) as u64));
            group.bench_with_input(BenchmarkId::new(format!("pairs/{dim}"), q), &q, |bench, _| {
                bench.iter(|| {
                    score_matrix_pairs(Metric::Dot, dim, black_box(&queries), black_box(&block), &mut out)
                })
            });
            group.bench_with_input(BenchmarkId::new(format!("faer/{dim}"), q), &q, |bench, _| {
                bench.iter(|| score_matrix_faer(dim, black_box(&queries), black_box(&block), &mut out))
            });
        }
    }
    group.finish();
}

/// Best-of-`rounds` wall time of `f`.
fn best_of(rounds: usize, mut f: impl FnMut()) -> Duration {
    (0..rounds)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .min()
        .unwrap_or_default()
}

/// An exact scan of `rows × 384` f32 (score every row, keep the top 10) next to a plain
/// read of the same buffer, in the same run. Prints GB/s for both and their ratio.
fn scan_bandwidth(rows: usize, rounds: usize) {
    let dim = 384;
    let mut rng = StdRng::seed_from_u64(4);
    let block = random_vectors(&mut rng, rows, dim);
    let query = random_vectors(&mut rng, 1, dim);
    let mut out = vec![0.0f32; rows];
    let bytes = (rows * dim * 4) as f64;
    let gbps = |d: Duration| bytes / d.as_secs_f64() / 1e9;

    let read = best_of(rounds, || {
        black_box(simd::sum(black_box(&block)));
    });
    let kernel = Kernel::new(Metric::Dot);
    let score_only = best_of(rounds, || {
        score_block_raw(&kernel, black_box(&query), black_box(&block), &mut out)
            .expect("shapes match by construction");
        black_box(&out);
    });
    let scan_top10 = best_of(rounds, || {
        black_box(
            scan_top_k(&kernel, black_box(&query), black_box(&block), 10)
                .expect("shapes match by construction"),
        );
    });
    let l1 = Kernel::new(Metric::Manhattan);
    let scan_l1 = best_of(rounds, || {
        score_block_raw(&l1, black_box(&query), black_box(&block), &mut out)
            .expect("shapes match by construction");
        black_box(&out);
    });
    println!();
    println!(
        "exact scan of {rows} x {dim} f32 ({:.2} GB), best of {rounds}, ISA {}:",
        bytes / 1e9,
        simd::isa()
    );
    println!("  memory read (sum)        {:6.2} GB/s  (baseline)", gbps(read));
    for (name, d) in [
        ("dot scan, scores only", score_only),
        ("dot scan_top_k, k = 10", scan_top10),
        ("L1 scan, scores only", scan_l1),
    ] {
        println!(
            "  {name:<24} {:6.2} GB/s  = {:.2} x memory read",
            gbps(d),
            read.as_secs_f64() / d.as_secs_f64()
        );
    }
}

/// Coded distances to 1,000 random vectors of `n`, as a graph walk reads them, for
/// each kind of codes: on the heap, and held in place in their file's bytes
/// (`codes_on_disk`).
fn codes(c: &mut Criterion, n: usize) {
    let mut rng = StdRng::seed_from_u64(4);
    let dim = 384;
    let rows = random_vectors(&mut rng, n, dim);
    let offsets: Vec<usize> = (0..1_000).map(|_| rng.random_range(0..n)).collect();
    let mut group = c.benchmark_group("codes_1000_random");
    group.throughput(Throughput::Elements(offsets.len() as u64));
    let kinds = [
        ("int8", CodeKind::Int8),
        ("binary", CodeKind::Binary),
        ("two_bits", CodeKind::BinaryTwoBits),
        ("product_x16", CodeKind::Product(Compression::X16)),
    ];
    for (name, kind) in kinds {
        let mut codes = Codes::of_kind_with_sample(kind, Metric::Cosine, dim, kind.sample().min(n / 2))
            .expect("384-d cosine vectors are coded");
        for row in rows.chunks_exact(dim) {
            codes.push(row);
        }
        let mut bytes = Vec::new();
        codes.serialized().expect("centred").write_to(&mut bytes).expect("written to memory");
        // Held in a heap buffer: only the lookup differs from heap codes, not the pages.
        let held = Codes::hold_from(Arc::new(CodesBuffer::new(&bytes)), 0..bytes.len())
            .expect("the codes just written");
        assert!(held.held_bytes() > 0, "{name}: held in the file's bytes");
        let q = codes.query(&rows[..dim]);
        for (place, codes) in [("heap", &codes), ("held", &held)] {
            group.bench_function(BenchmarkId::new(name, place), |bench| {
                bench.iter(|| offsets.iter().map(|&o| codes.distance(black_box(&q), o)).sum::<f32>())
            });
        }
    }
    group.finish();
}

fn main() {
    let bench_mode = std::env::args().any(|a| a == "--bench");
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .sample_size(20)
        .configure_from_args();
    pairs(&mut c);
    blocks(&mut c);
    matrix(&mut c);
    codes(&mut c, if bench_mode { 200_000 } else { 2_000 });
    c.final_summary();
    if bench_mode {
        scan_bandwidth(1_000_000, 7);
    } else {
        scan_bandwidth(1_000, 1);
    }
}
