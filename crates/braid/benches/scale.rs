//! `cargo xtask bench scale` (one step of it): how Braid's costs grow with the number of
//! points. The xtask runs this binary once per phase so that each process's peak
//! resident memory belongs to one phase:
//!
//! - `--phase build --n N --dir D [--datatype T] [--ef-construct E] [--build-codes C]`: makes N 384-d
//!   points (below), computes each query's exact top 10 over them, ingests them into a
//!   database in `D` (one space, Cosine, m 16, `ef_construct` E, 200 unless given, no
//!   codes unless `--build-codes int8` (Braid's default, by which inserts walk the
//!   graph), rows stored as `T`:
//!   `float32` by default, `float16`, or `uint8` — each component `c` of a unit vector
//!   stored as `round(127.5 · (c + 1))` in a Euclid space, queries mapped the same way
//!   unrounded: for unit vectors the L2 order is the cosine order), flushes, and
//!   reports the build time, peak memory and bytes on disk. With `--resume` a kept build
//!   of the same points (stopped part way, or of a smaller N) continues from the
//!   points its database holds; each run is one segment of the build (`build.json`).
//! - `--phase measure --config C --dir D`: switches the kept collection to configuration
//!   `C` (`float32`, `int8`, `binary`, `binary-disk`: binary codes with the rows read
//!   only where touched, `binary2`, `binary2-disk`: the same with two-bit codes
//!   (`encoding: two_bits`), `pq`: product codes at x16, `pq-x4` … `pq-x64` at that
//!   ratio; any but `float32` followed by `-codes-disk`: the codes held in their file's
//!   pages, `always_ram: false`; any of them followed by `-graph-disk`: the graph's layer 0 read from its
//!   file too, `hnsw_config.on_disk`), checkpoints, times the checkpoint of one small write (and
//!   the resident peak it reaches above where it starts), closes, and reopens it twice (timed, page cache
//!   dropped first with `--cold` where the process may): once checking every row before
//!   the open returns (the baseline), once as by default (large files checked in the
//!   background; then the first query's latency and the end of that pass), then sweeps `hnsw_ef` single-threaded
//!   and reports, per ef, recall@10, QPS and p50/p99 latency, with the peak and current
//!   resident memory and the collection's own memory report.
//!
//! The points: the first rows of a WordNet/MiniLM set (`--data DIR`, default the 100k
//! set `cargo xtask data --n 100000 --queries 200` makes) as they are, and beyond them a
//! synthetic mix of two rows plus noise (`braid_testkit::Mix`). Queries are the set's
//! held-out real queries. Each phase prints a JSON line `{"scale": …}` the xtask collects.
//!
//! - `--phase compact --dir D`: compacts the kept collection (every live point rebuilt
//!   into the next generation of files, as the optimiser's vacuum does) and reports the
//!   time and the resident peak above where it started. Run it on a copy when the
//!   build is to be measured again as it was built (the rebuilt graph is a new one).
//!
//! Under `cargo test` every phase runs in one process on 3,000 points in a temporary
//! directory, with every configuration, as a smoke test.

use std::path::{Path, PathBuf};
use std::time::Instant;

use braid::{
    CollectionConfig, Database, Datatype, Distance, PointStruct, Quantization, QuantizationParams,
    SearchParams, SearchRequest, StorageOptions, VectorParams,
};
use braid_testkit::{Mix, Rng, WordnetSet, npy, status_kb};
use serde_json::{Value, json};

const SPACE: &str = "text";
const COLLECTION: &str = "scale";
const TOP: usize = 10;
const BATCH: usize = 10_000;
/// The sweep stops at the first `ef` reaching recall 0.99; the widest ones are there for
/// 10M points, whose graph needs a beam of thousands for it.
const EFS: &[usize] =
    &[10, 16, 24, 32, 40, 48, 56, 64, 96, 128, 192, 256, 384, 512, 768, 1024, 1536, 2048, 3072, 4096];
/// Binary codes re-score a pool of candidates and widen the walk to it, so their sweep
/// is over `quantization.oversampling` (the pool is `10 · o`, the beam `hnsw_ef` = that).
const OVERSAMPLINGS: &[f64] =
    &[1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 10.0, 15.0, 20.0, 30.0, 50.0, 75.0, 100.0, 150.0, 200.0, 300.0];

/// Each query's exact top `TOP` ids over points `0..n`, scored by dot product (every
/// point and query is unit length, so this is the Cosine order).
fn truth(points: &Mix, queries: &[Vec<f32>], n: usize) -> Vec<Vec<u64>> {
    let mut best: Vec<Vec<(f32, u64)>> = vec![Vec::with_capacity(TOP + 1); queries.len()];
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    for start in (0..n).step_by(BATCH) {
        let end = (start + BATCH).min(n);
        let rows = points.batch(start, end);
        let per = queries.len().div_ceil(threads).max(1);
        std::thread::scope(|s| {
            for (qs, bs) in queries.chunks(per).zip(best.chunks_mut(per)) {
                let rows = &rows;
                s.spawn(move || {
                    for (q, b) in qs.iter().zip(bs) {
                        for (k, row) in rows.iter().enumerate() {
                            let score = braid_distance::simd::dot(q, row);
                            if b.len() < TOP || score > b[b.len() - 1].0 {
                                let at = b.partition_point(|(s, _)| *s >= score);
                                b.insert(at, (score, (start + k) as u64));
                                b.truncate(TOP);
                            }
                        }
                    }
                });
            }
        });
    }
    best.into_iter().map(|b| b.into_iter().map(|(_, id)| id).collect()).collect()
}

/// Starts a new peak (`VmHWM`) from the current resident set (Linux `clear_refs` 5);
/// returns that resident set, the baseline the phase's own memory adds to.
fn reset_peak() -> Value {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let [rss] = status_kb(["VmRSS:"]);
    json!(rss)
}

/// Bytes of every file under `dir`.
fn disk_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir).map_or(0, |entries| {
        entries
            .flatten()
            .map(|e| match e.metadata() {
                Ok(m) if m.is_dir() => disk_bytes(&e.path()),
                Ok(m) => m.len(),
                Err(_) => 0,
            })
            .sum()
    })
}

fn memory_now() -> Value {
    let [peak, anon, file] = status_kb(["VmHWM:", "RssAnon:", "RssFile:"]);
    json!({"peak_rss_kb": peak, "rss_anon_kb": anon, "rss_file_kb": file})
}

/// `v` as a `datatype` space stores it: for `uint8` a unit vector's components mapped
/// onto `0..=255` by `127.5 · (c + 1)` (rounded for rows, not for queries), as given
/// otherwise. The map is affine, so L2 distances between mapped vectors keep the order
/// of the originals', which for unit vectors is their cosine order.
fn stored_as(datatype: Datatype, v: Vec<f32>, round: bool) -> Vec<f32> {
    match datatype {
        Datatype::Uint8 => v
            .into_iter()
            .map(|c| {
                let x = 127.5 * (c + 1.0);
                if round { x.round().clamp(0.0, 255.0) } else { x }
            })
            .collect(),
        Datatype::Float32 | Datatype::Float16 => v,
    }
}

/// The distance a `datatype` build uses (see [`stored_as`]).
fn distance_for(datatype: Datatype) -> Distance {
    if datatype == Datatype::Uint8 { Distance::Euclid } else { Distance::Cosine }
}

/// A build's progress, kept beside its database (`build.json`): a build stopped part
/// way (10M points take hours on two cores) continues with `--resume` from the points
/// its database recovered, and each run of the phase is one segment of the build.
#[derive(serde::Serialize, serde::Deserialize)]
struct Progress {
    n: usize,
    datatype: String,
    /// Builds kept before the setting was recorded used 200.
    #[serde(default = "default_ef_construct")]
    ef_construct: usize,
    /// The codes the build kept (`none` or `int8`); builds kept before the setting
    /// was recorded kept none.
    #[serde(default = "default_build_codes")]
    codes: String,
    truth_s: f64,
    done: bool,
    segments: Vec<Segment>,
}

fn default_ef_construct() -> usize {
    200
}

/// The smoke test's builds: the bench's baseline recipe.
const FLOAT32_NO_CODES: Recipe<'static> =
    Recipe { datatype: Datatype::Float32, ef_construct: 200, codes: "none" };

fn default_build_codes() -> String {
    "none".into()
}

/// The codes a build keeps (`--build-codes`): none, the bench's default, or one-byte
/// codes, Braid's default, by which inserts walk the graph (`docs/hnsw.md`, "Insert").
fn build_codes(name: &str) -> Quantization {
    match name {
        "none" => Quantization::None,
        "int8" => Quantization::Int8,
        other => panic!("--build-codes none|int8, not {other}"),
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Segment {
    /// Points `from..to` were upserted in this run.
    from: usize,
    to: usize,
    threads: usize,
    build_s: f64,
    generate_s: f64,
    /// The run's resident peak above what it held before opening the database.
    baseline_rss_kb: Value,
    peak_rss_kb: Value,
}

impl Progress {
    fn path(dir: &Path) -> PathBuf {
        dir.join("build.json")
    }

    fn read(dir: &Path) -> Option<Progress> {
        serde_json::from_str(&std::fs::read_to_string(Self::path(dir)).ok()?).ok()
    }

    /// Written whole under a new name and renamed over the old, so a kill leaves one.
    fn write(&self, dir: &Path) {
        let tmp = dir.join("build.json.tmp");
        std::fs::write(&tmp, serde_json::to_string(self).expect("json")).expect("write the progress");
        std::fs::rename(&tmp, Self::path(dir)).expect("replace the progress");
    }
}

/// How a build makes its space: the rows' datatype, `ef_construct` and the codes kept.
#[derive(Clone, Copy)]
struct Recipe<'a> {
    datatype: Datatype,
    ef_construct: usize,
    codes: &'a str,
}

fn build(
    points: &Mix,
    queries: &[Vec<f32>],
    n: usize,
    dir: &Path,
    recipe: Recipe<'_>,
    resume: bool,
) -> Value {
    let Recipe { datatype, ef_construct, codes } = recipe;
    // A kept build of the same stream continues: a stopped one of this N, or a smaller
    // N's (its points are this build's first ones), whose truth is made again for N.
    let earlier = Progress::read(dir).filter(|p| {
        resume
            && p.datatype == datatype.name()
            && p.ef_construct == ef_construct
            && p.codes == codes
            && p.n <= n
    });
    if earlier.is_none() {
        let _ = std::fs::remove_dir_all(dir.join("db"));
    }
    let mut progress = match earlier {
        Some(p) if p.n == n => p,
        earlier => {
            std::fs::create_dir_all(dir).expect("make the database directory");
            let t = Instant::now();
            let truth = truth(points, queries, n);
            std::fs::write(dir.join("truth.json"), serde_json::to_string(&truth).expect("json"))
                .expect("write the truth");
            let segments = earlier.map_or(vec![], |p| p.segments);
            let p = Progress {
                n,
                datatype: datatype.name().to_string(),
                ef_construct,
                codes: codes.to_string(),
                truth_s: t.elapsed().as_secs_f64(),
                done: false,
                segments,
            };
            p.write(dir);
            p
        }
    };
    let baseline = reset_peak();
    let t = Instant::now();
    let db = Database::open(dir.join("db")).expect("open the database");
    let c = match db.collection(COLLECTION) {
        Ok(c) => c,
        Err(_) => db
            .create_collection(
                COLLECTION,
                CollectionConfig::new().vector(
                    SPACE,
                    VectorParams::new(points.dim(), distance_for(datatype))
                        .hnsw(16, ef_construct)
                        .quantization(build_codes(codes))
                        .datatype(datatype),
                ),
            )
            .expect("a fresh directory"),
    };
    // A measure phase leaves the kept build switched to its configuration: back to the
    // build's (its codes, rows in memory) before it continues.
    let mut config = c.config();
    if let Some(space) = config
        .vectors
        .get_mut(SPACE)
        .filter(|s| s.quantization != build_codes(codes) || s.on_disk || s.hnsw.on_disk)
    {
        (space.quantization, space.on_disk, space.hnsw.on_disk) = (build_codes(codes), false, false);
        c.reconfigure(config).expect("the build's configuration");
    }
    // Points are upserted in id order, so what a stopped build's database recovered is
    // ids `0..count`: the build continues from there.
    let from = c.info().points_count;
    assert!(
        from == 0 || c.get(&[(from as u64 - 1).into()], false, false).expect("get").len() == 1,
        "the kept database holds {from} points but not id {}: not a prefix of the build",
        from - 1
    );
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let fresh = from < n;
    if fresh {
        progress.segments.push(Segment {
            from,
            to: from,
            threads,
            build_s: 0.0,
            generate_s: 0.0,
            baseline_rss_kb: baseline.clone(),
            peak_rss_kb: Value::Null,
        });
    }
    let mut generate_s = 0.0;
    for start in (from..n).step_by(BATCH) {
        let g = Instant::now();
        let end = (start + BATCH).min(n);
        let rows = points.batch(start, end);
        generate_s += g.elapsed().as_secs_f64();
        let batch = rows
            .into_iter()
            .enumerate()
            .map(|(k, v)| PointStruct::new((start + k) as u64).vector(SPACE, stored_as(datatype, v, true)));
        c.upsert(batch.collect()).expect("valid points");
        if let Some(s) = progress.segments.last_mut().filter(|_| fresh) {
            (s.to, s.build_s, s.generate_s) = (end, t.elapsed().as_secs_f64() - generate_s, generate_s);
            s.peak_rss_kb = memory_now()["peak_rss_kb"].clone();
        }
        progress.write(dir);
    }
    c.flush().expect("flush");
    let build_s = t.elapsed().as_secs_f64() - generate_s;
    drop(c);
    drop(db);
    let memory = memory_now();
    if let Some(s) = progress.segments.last_mut().filter(|_| fresh) {
        (s.build_s, s.peak_rss_kb) = (build_s, memory["peak_rss_kb"].clone());
    }
    progress.done = true;
    progress.write(dir);
    let sum = |f: fn(&Segment) -> f64| progress.segments.iter().map(f).sum::<f64>();
    json!({"phase": "build", "n": n, "dim": points.dim(), "real_rows": points.real.len().min(n), "datatype": datatype.name(),
           "ef_construct": ef_construct, "build_codes": codes, "threads": threads, "truth_s": progress.truth_s, "build_s": sum(|s| s.build_s), "generate_s": sum(|s| s.generate_s),
           "segments": serde_json::to_value(&progress.segments).expect("json"),
           "disk_bytes": disk_bytes(&dir.join("db")), "baseline_rss_kb": baseline, "memory": memory})
}

/// Drops the page cache when the process may (root on Linux); says whether it did.
fn drop_page_cache() -> bool {
    let _ = std::process::Command::new("sync").status();
    std::fs::write("/proc/sys/vm/drop_caches", "3").is_ok()
}

fn measure(config: &str, queries: &[Vec<f32>], dir: &Path, cold: bool, bench: bool) -> Value {
    let truth: Vec<Vec<u64>> = serde_json::from_str(
        &std::fs::read_to_string(dir.join("truth.json")).expect("the build phase's truth"),
    )
    .expect("truth json");
    // `-graph-disk` after any configuration also keeps the graph's layer 0 in its file.
    let (config_rows, graph_on_disk) =
        config.strip_suffix("-graph-disk").map_or((config, false), |rows| (rows, true));
    // `-codes-disk` before it keeps the codes in their file's pages.
    let (config_rows, codes_on_disk) =
        config_rows.strip_suffix("-codes-disk").map_or((config_rows, false), |rows| (rows, true));
    let (quantization, on_disk) = match config_rows {
        "float32" => (Quantization::None, false),
        "int8" => (Quantization::Int8, false),
        "binary" => (Quantization::Binary, false),
        "binary-disk" => (Quantization::Binary, true),
        "binary2" => (Quantization::BinaryTwoBits, false),
        "binary2-disk" => (Quantization::BinaryTwoBits, true),
        "pq" => (Quantization::Product(braid::distance::Compression::X16), false),
        other => match other.strip_prefix("pq-").and_then(braid::distance::Compression::from_name) {
            Some(ratio) => (Quantization::Product(ratio), false),
            None => panic!(
                "--config takes float32, int8, binary, binary-disk, binary2, binary2-disk, pq or pq-x4 … pq-x64 (all but float32 \
                 optionally followed by -codes-disk), each optionally followed by -graph-disk, not {other}"
            ),
        },
    };
    let t = Instant::now();
    let db = Database::open(dir.join("db")).expect("open the kept database");
    let c = db.collection(COLLECTION).expect("the build phase made it");
    let open_before_s = t.elapsed().as_secs_f64();
    let datatype = c.config().vectors.get(SPACE).map_or(Datatype::Float32, |p| p.datatype);
    let queries: &[Vec<f32>] =
        &queries.iter().map(|q| stored_as(datatype, q.clone(), false)).collect::<Vec<_>>();
    let mut new = c.config();
    let space = new.vectors.get_mut(SPACE).expect("the space");
    space.quantization = quantization;
    space.on_disk = on_disk;
    space.hnsw.on_disk = graph_on_disk;
    space.codes_on_disk = codes_on_disk;
    let t = Instant::now();
    c.reconfigure(new).expect("a valid change");
    c.flush().expect("checkpoint the change");
    let reconfigure_s = t.elapsed().as_secs_f64();
    // The checkpoint of one small write (a payload on point 0, no new rows): its time,
    // and the resident peak it reaches above the set it starts from.
    c.set_payload(vec![braid::PointId::Num(0)], json!({"checkpointed": true})).expect("point 0 is there");
    let before_checkpoint = reset_peak();
    let t = Instant::now();
    c.flush().expect("checkpoint");
    let checkpoint_s = t.elapsed().as_secs_f64();
    let checkpoint_rss = json!({"before_kb": before_checkpoint, "peak_kb": memory_now()["peak_rss_kb"]});
    drop(c);
    drop(db);

    // The same-run baseline: a cold reopen that reads every row for its checksum
    // before it returns (what every open did before the pass moved to the background).
    let dropped = cold && drop_page_cache();
    let t = Instant::now();
    let checked = StorageOptions { verify_after_open_above: u64::MAX, ..StorageOptions::default() };
    drop(Database::open_with(dir.join("db"), checked).expect("reopen, checking every row"));
    let reopen_checked_s = t.elapsed().as_secs_f64();

    let dropped = dropped && drop_page_cache();
    let baseline = reset_peak();
    let t = Instant::now();
    let db = Database::open(dir.join("db")).expect("reopen");
    let c = db.collection(COLLECTION).expect("the collection");
    let reopen_s = t.elapsed().as_secs_f64();
    let after_open = memory_now();
    // The first answer after the open (cold pages of the graph and rows), then the
    // end of the checksum pass the open left to a background thread, if it left one.
    let one = Instant::now();
    c.search(&SearchRequest::new(SPACE, queries[0].clone()).limit(TOP)).expect("valid search");
    let first_query_ms = one.elapsed().as_secs_f64() * 1e3;
    c.verify_wait().expect("the kept files are intact");
    let verified_s = t.elapsed().as_secs_f64();

    let mut sweep = Vec::new();
    let (mut at95, mut at99) = (None, None);
    // Coarse codes (binary, product) reach recall by re-scoring more: sweep oversampling.
    let points: Vec<(usize, Option<f64>)> = if matches!(
        quantization,
        Quantization::Binary | Quantization::BinaryTwoBits | Quantization::Product(_)
    ) {
        OVERSAMPLINGS.iter().map(|&o| ((o * TOP as f64).ceil() as usize, Some(o))).collect()
    } else {
        EFS.iter().map(|&ef| (ef, None)).collect()
    };
    for (ef, oversampling) in points {
        let params = match oversampling {
            Some(o) => SearchParams::ef(ef).with_quantization(QuantizationParams {
                ignore: false,
                rescore: Some(true),
                oversampling: Some(o),
            }),
            None => SearchParams::ef(ef),
        };
        let request = |q: &Vec<f32>| SearchRequest::new(SPACE, q.clone()).limit(TOP).params(params);
        let mut latencies = Vec::new();
        let mut hits = 0;
        let started = Instant::now();
        let mut passes = 0;
        while passes == 0 || (bench && started.elapsed().as_secs_f64() < 1.0) {
            for (q, t) in queries.iter().zip(&truth) {
                let one = Instant::now();
                let found = c.search(&request(q)).expect("valid search");
                latencies.push(one.elapsed().as_secs_f64());
                if passes == 0 {
                    hits += found
                        .iter()
                        .filter(|h| matches!(h.id, braid::PointId::Num(id) if t.contains(&id)))
                        .count();
                }
            }
            passes += 1;
        }
        let qps = latencies.len() as f64 / latencies.iter().sum::<f64>();
        latencies.sort_by(f64::total_cmp);
        let at = |p: f64| latencies[((latencies.len() - 1) as f64 * p).round() as usize] * 1e6;
        let recall = hits as f64 / (TOP * queries.len()) as f64;
        println!(
            "{config} ef {ef}{}: recall@10 {recall:.4}, {qps:.0} QPS, p50 {:.0} µs, p99 {:.0} µs",
            oversampling.map_or(String::new(), |o| format!(" oversampling {o}")),
            at(0.5),
            at(0.99)
        );
        let row = json!({"ef": ef, "oversampling": oversampling, "recall": recall, "qps": qps,
                         "p50_us": at(0.5), "p99_us": at(0.99)});
        if recall >= 0.95 && at95.is_none() {
            at95 = Some(row.clone());
        }
        if recall >= 0.99 && at99.is_none() {
            at99 = Some(row.clone());
        }
        sweep.push(row);
        if at99.is_some() {
            break;
        }
    }
    let info = c.info();
    let memory = info.memory.get(SPACE).map(|m| {
        json!({"vectors": m.vectors, "vectors_mapped": m.vectors_mapped, "codes": m.codes,
               "codes_mapped": m.codes_mapped, "graph": m.graph, "graph_mapped": m.graph_mapped})
    });
    json!({"phase": "measure", "config": config, "datatype": datatype.name(), "n": info.points_count, "open_before_s": open_before_s,
           "reconfigure_s": reconfigure_s, "checkpoint_s": checkpoint_s, "checkpoint_rss": checkpoint_rss, "reopen_s": reopen_s, "reopen_checked_s": reopen_checked_s, "first_query_ms": first_query_ms,
           "verified_s": verified_s, "page_cache_dropped": dropped,
           "baseline_rss_kb": baseline,
           "memory_after_open": after_open, "memory": memory_now(), "space_memory": memory,
           "disk_bytes": disk_bytes(&dir.join("db")), "at_recall_95": at95, "at_recall_99": at99, "sweep": sweep})
}

/// Compacts the kept collection (every live point rebuilt into the next generation,
/// as the optimiser's vacuum does) and reports the time and the resident peak above
/// where it started: the compaction's own memory.
fn compact(dir: &Path) -> Value {
    let db = Database::open(dir.join("db")).expect("open the kept database");
    let c = db.collection(COLLECTION).expect("the build phase made it");
    c.verify_wait().expect("the kept files are intact");
    let baseline = reset_peak();
    let t = Instant::now();
    let report = c.compact().expect("compact");
    let compact_s = t.elapsed().as_secs_f64();
    json!({"phase": "compact", "n": c.info().points_count, "kept": report.kept, "dropped": report.dropped,
           "compact_s": compact_s, "baseline_rss_kb": baseline, "memory": memory_now()})
}

fn main() {
    let args = braid_testkit::BenchArgs::from_env();
    let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let data = args.wordnet_dir(&workspace);
    if !args.bench {
        // The smoke test runs on the real set when it is there, else on random unit
        // vectors standing in for it.
        let mut set = WordnetSet::read(&data).unwrap_or_else(|_| {
            let mut rng = Rng::new(11);
            let mut unit = |_| {
                let v = rng.vector(64);
                let norm = v.iter().map(|c| c * c).sum::<f32>().sqrt();
                v.into_iter().map(|c| c / norm).collect::<Vec<f32>>()
            };
            WordnetSet {
                base: (0..2_000).map(&mut unit).collect(),
                queries: (0..20).map(unit).collect(),
                payloads: vec![],
            }
        });
        set.truncate(2_000, 20);
        let dir = tempfile::tempdir().expect("temp dir");
        let points = Mix { real: set.base };
        // Built in two runs: 2,000 points, then continued to 3,000 (`--resume`).
        let first = build(&points, &set.queries, 2_000, dir.path(), FLOAT32_NO_CODES, false);
        assert_eq!(first["segments"].as_array().map(Vec::len), Some(1));
        let report = build(&points, &set.queries, 3_000, dir.path(), FLOAT32_NO_CODES, true);
        let segments = report["segments"].as_array().expect("segments");
        assert_eq!(
            (segments.len(), &segments[1]["from"], &segments[1]["to"]),
            (2, &json!(2_000), &json!(3_000))
        );
        println!("{{\"scale\": {report}}}");
        for config in [
            "float32",
            "int8",
            "binary",
            "binary-disk",
            "binary-disk-graph-disk",
            "binary2-disk",
            "pq",
            "pq-x32",
        ] {
            let report = measure(config, &set.queries, dir.path(), false, false);
            assert!(!report["at_recall_95"].is_null(), "{config}: recall 0.95 not reached: {report}");
            println!("{{\"scale\": {report}}}");
        }
        let report = compact(dir.path());
        assert_eq!((&report["n"], &report["kept"]), (&json!(3_000), &json!(3_000)), "{report}");
        println!("{{\"scale\": {report}}}");
        // Narrow rows: a build of each datatype (walked by int8 codes as it is built),
        // measured as it is and with int8 codes.
        for datatype in [Datatype::Float16, Datatype::Uint8] {
            let dir = tempfile::tempdir().expect("temp dir");
            let report = build(
                &points,
                &set.queries,
                3_000,
                dir.path(),
                Recipe { datatype, ef_construct: 200, codes: "int8" },
                false,
            );
            assert_eq!(report["datatype"], datatype.name());
            for config in ["float32", "int8"] {
                let report = measure(config, &set.queries, dir.path(), false, false);
                assert_eq!(report["datatype"], datatype.name());
                // Bytes hold each component of these unit vectors to 1/255 of their
                // range: the rounding itself moves about one neighbour in twenty (0.95
                // at every ef on the random 64-d stand-in).
                let best = report["sweep"]
                    .as_array()
                    .and_then(|s| s.last())
                    .map_or(0.0, |r| r["recall"].as_f64().unwrap_or(0.0));
                let floor = if datatype == Datatype::Uint8 { 0.9 } else { 0.95 };
                assert!(best >= floor, "{datatype} {config}: recall {best} below {floor}: {report}");
                println!("{{\"scale\": {report}}}");
            }
        }
        return;
    }
    // Only the arrays a phase needs (not the set's payloads), so that its memory is the
    // database's: a freed copy would stay in the heap and be reused by the database.
    let rows = |file: &str| {
        npy::f32_rows(&data.join(file)).unwrap_or_else(|e| panic!("no data at {}: {e}", data.display()))
    };
    let queries = rows("queries.npy");
    let dir = PathBuf::from(args.value("--dir").expect("--dir DIR: where the database is kept"));
    let report = match args.value("--phase").as_deref() {
        Some("build") => {
            let n = args.n(100_000, 3_000);
            let datatype = args.value("--datatype").map_or(Datatype::Float32, |d| {
                Datatype::from_name(&d).unwrap_or_else(|| panic!("--datatype float32|float16|uint8, not {d}"))
            });
            let ef_construct = args.value("--ef-construct").map_or(200, |e| {
                e.parse()
                    .ok()
                    .filter(|&e| e > 0)
                    .unwrap_or_else(|| panic!("--ef-construct takes a positive number, not {e}"))
            });
            let codes = args.value("--build-codes").unwrap_or_else(|| "none".into());
            build_codes(&codes);
            let points = Mix { real: rows("out.npy") };
            build(
                &points,
                &queries,
                n,
                &dir,
                Recipe { datatype, ef_construct, codes: &codes },
                args.flag("--resume"),
            )
        }
        Some("measure") => {
            let config = args.value("--config").expect("--config float32|int8|binary|binary-disk|binary2|pq");
            measure(&config, &queries, &dir, args.flag("--cold"), true)
        }
        Some("compact") => compact(&dir),
        _ => panic!("--phase build|measure|compact"),
    };
    println!("{{\"scale\": {report}}}");
}
