//! `cargo xtask bench storage`: ingest n points (384-d text, 512-d image, a payload)
//! into a database on disk, flush, reopen; beside, in the same run, the same ingest in
//! memory and a raw sequential write (+ fsync) of the same vector and payload bytes.
//! Reports points/s, reopen time and bytes on disk against raw vector bytes.
//! n = 100,000 by default (`-- --n N`); under `cargo test` (no `--bench`) 2,000.

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use braid::{
    CollectionConfig, Database, Distance, IndexKind, PointStruct, SearchRequest, StorageOptions, VectorParams,
};
use braid_testkit::Rng;
use serde_json::json;

fn config() -> CollectionConfig {
    CollectionConfig::new()
        .vector("text", VectorParams::new(384, Distance::Cosine).hnsw(16, 100))
        .vector("image", VectorParams::new(512, Distance::Cosine).hnsw(16, 100))
}

fn points(n: usize) -> Vec<PointStruct> {
    let topics = 200;
    let mut rng = Rng::new(0x5701);
    let text_c: Vec<Vec<f32>> = (0..topics).map(|_| rng.vector(384)).collect();
    let image_c: Vec<Vec<f32>> = (0..topics).map(|_| rng.vector(512)).collect();
    (0..n)
        .map(|i| {
            let topic = (i * 7919) % topics;
            PointStruct::new(i as u64)
                .vector("text", rng.around(&text_c[topic], 0.6))
                .vector("image", rng.around(&image_c[(topic + i % 3) % topics], 0.6))
                .payload(json!({
                    "name": format!("item {i}"),
                    "category": format!("c{}", i % 10),
                    "price": (i % 500) as f64 + 0.99,
                    "description": format!("a product of topic {topic}, made for test number {i}"),
                }))
        })
        .collect()
}

fn ingest(db: &Database, points: &[PointStruct]) -> f64 {
    let c = db.create_collection("bench", config()).expect("valid config");
    c.create_payload_index("category", IndexKind::Keyword).expect("fresh collection");
    let t = Instant::now();
    for batch in points.chunks(1_000) {
        c.upsert(batch.to_vec()).expect("valid points");
    }
    t.elapsed().as_secs_f64()
}

/// The same vector and payload bytes, written sequentially and synced.
fn raw_write(path: &Path, points: &[PointStruct]) -> (f64, u64, u64) {
    let t = Instant::now();
    let mut out = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path).expect("raw file"));
    let (mut vector_bytes, mut total) = (0u64, 0u64);
    for p in points {
        for v in p.vectors.values() {
            for x in v {
                out.write_all(&x.to_le_bytes()).expect("raw write");
            }
            vector_bytes += 4 * v.len() as u64;
        }
        let payload = serde_json::to_vec(&p.payload).expect("json");
        out.write_all(&payload).expect("raw write");
        total += payload.len() as u64;
    }
    let file = out.into_inner().expect("flush");
    file.sync_all().expect("sync");
    (t.elapsed().as_secs_f64(), vector_bytes, total + vector_bytes)
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .expect("dir")
        .flatten()
        .map(|e| {
            let m = e.metadata().expect("metadata");
            if m.is_dir() { dir_bytes(&e.path()) } else { m.len() }
        })
        .sum()
}

fn main() {
    let args = braid_testkit::BenchArgs::from_env();
    let n = args.n(100_000, 2_000);
    let base = std::env::var_os("BRAID_BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join(format!("braid-bench-storage-{}", std::process::id())));
    let _ = std::fs::remove_dir_all(&base);
    std::fs::create_dir_all(&base).expect("bench dir");
    let points = points(n);

    let (raw_s, vector_bytes, raw_bytes) = raw_write(&base.join("raw.bin"), &points);
    std::fs::remove_file(base.join("raw.bin")).expect("remove raw");

    let memory_s = ingest(&Database::in_memory(), &points);

    let dir = base.join("db");
    let db = Database::open_with(&dir, StorageOptions::default()).expect("open");
    let disk_s = ingest(&db, &points);
    let t = Instant::now();
    db.flush().expect("flush");
    let flush_s = t.elapsed().as_secs_f64();
    let c = db.collection("bench").expect("collection");
    let probe = SearchRequest::new("text", points[n / 2].vectors["text"].clone()).limit(10);
    let before = c.search(&probe).expect("search");
    drop((c, db));

    let t = Instant::now();
    let db = Database::open(&dir).expect("reopen");
    let reopen_s = t.elapsed().as_secs_f64();
    let after = db.collection("bench").expect("collection").search(&probe).expect("search");
    assert_eq!(before, after, "the reopened collection answers as before");
    let disk = dir_bytes(&dir);
    drop(db);
    let _ = std::fs::remove_dir_all(&base);

    let rate = |s: f64| n as f64 / s;
    println!("storage bench: n = {n}, 384-d + 512-d Cosine (m 16, ef_construct 100), payload ~150 B");
    println!();
    println!("| step | seconds | points/s | ratio |");
    println!("|---|---|---|---|");
    println!(
        "| raw sequential write + fsync of the same bytes ({:.0} MB) | {raw_s:.2} | {:.0} | 1.00 (baseline) |",
        raw_bytes as f64 / 1e6,
        rate(raw_s)
    );
    println!(
        "| ingest in memory (graphs built on insert) | {memory_s:.2} | {:.0} | {:.3} of raw |",
        rate(memory_s),
        raw_s / memory_s
    );
    println!(
        "| ingest on disk (logged, checkpoints as the log fills) | {disk_s:.2} | {:.0} | {:.3} of raw; {:.3} of in-memory |",
        rate(disk_s),
        raw_s / disk_s,
        memory_s / disk_s
    );
    println!(
        "| ingest on disk + flush | {:.2} | {:.0} | {:.3} of in-memory |",
        disk_s + flush_s,
        rate(disk_s + flush_s),
        memory_s / (disk_s + flush_s)
    );
    println!("| flush (checkpoint) | {flush_s:.2} | | |");
    println!("| reopen (map, verify checksums, load graphs and payloads) | {reopen_s:.3} | | target ≤ 1 s |");
    println!();
    println!(
        "on disk: {:.1} MB for {:.1} MB of raw vectors: overhead {:.1} % (target ≤ 15 %)",
        disk as f64 / 1e6,
        vector_bytes as f64 / 1e6,
        100.0 * (disk as f64 / vector_bytes as f64 - 1.0)
    );
}
