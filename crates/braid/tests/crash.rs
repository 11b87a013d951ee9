//! Crash safety: a child process runs a known sequence of writes against a database on
//! disk and reports each acknowledgement and flush on stdout; the parent kills it with
//! SIGKILL at a random moment, reopens the directory and checks that the contents equal
//! the contents after some prefix of the sequence that includes every write flushed
//! (with `Durability::EveryWrite`: every write acknowledged) and nothing that was never
//! written — and that the store answers queries.
//!
//! Half the trials kill at a random moment after a random step; the other half wait
//! for that step, then watch the collection directory and kill the moment a
//! checkpoint or compaction creates its first new file, so that kills land inside
//! those on purpose, not only by chance.
//!
//! `cargo xtask crash --trials N` runs N trials (default here: 10, or
//! `BRAID_CRASH_TRIALS`). This target has no test harness: its `main` is the parent,
//! and the child is this binary again with `BRAID_CRASH_CHILD_DIR` set.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use braid::storage::fault;
use braid::{
    CollectionConfig, Database, Datatype, Distance, Durability, Filter, PointId, PointStruct, Quantization,
    Record, SearchParams, SearchRequest, SparseVector, SparseVectorParams, StorageOptions, VectorParams,
    field,
};
use braid_testkit::Rng;
use serde_json::json;

const CHILD_DIR: &str = "BRAID_CRASH_CHILD_DIR";
const CHILD_SEED: &str = "BRAID_CRASH_CHILD_SEED";
const OPS: usize = 160;

#[derive(Clone, Debug)]
enum Step {
    Upsert(Vec<PointStruct>),
    Delete(Vec<PointId>),
    DeleteWhere(Filter),
    UpdateImage(PointId, Vec<f32>),
    UpdateWords(PointId, SparseVector),
    DropText(PointId),
    SetPayload(Filter, serde_json::Value),
    Flush,
    Optimize,
}

/// The trial's collection. Seeds alternate the text space's codes between one-byte
/// (the default) and bit codes — one bit (`Quantization::Binary`, odd seeds `8k + 1`,
/// `8k + 3`) or two (`Quantization::BinaryTwoBits`, `8k + 5`, `8k + 7`) — so every
/// kind of codes file is written, killed around and reopened, and the image space's rows between
/// `float32`, `float16` and `uint8` ([`image_type`]). The text space's full-scan
/// threshold of 16 KB (64 points) makes the integer index on `tag` ([`indexed`]) link
/// each tag's points (payload links), so graph files with link groups are written,
/// killed around and reopened too. Every other pair of triples of seeds keeps the
/// payloads in payload files (`on_disk_payload`), killed around and reopened too, and
/// seeds `4k + 1`, `4k + 2` read the text space's graph from its file
/// (`hnsw_config.on_disk`), written into in place between checkpoints; seeds
/// `16k + 8 … 16k + 15` keep the codes of every kind in their file (`codes_on_disk`).
fn config(seed: u64) -> CollectionConfig {
    let codes = match (seed % 2, seed / 4 % 2) {
        (0, _) => Quantization::Int8,
        (_, 0) => Quantization::Binary,
        _ => Quantization::BinaryTwoBits,
    };
    let mut text =
        VectorParams::new(64, Distance::Cosine).hnsw(8, 32).quantization(codes).full_scan_threshold_kb(16);
    text.hnsw.on_disk = matches!(seed % 4, 1 | 2);
    // Codes held in their file (`codes_on_disk`) on seeds `16k + 8 … 16k + 15`.
    text.codes_on_disk = seed / 8 % 2 == 1;
    CollectionConfig::new()
        // 64 components: coded (codes written with checkpoints once their centre is
        // fixed after 1,024 rows), so kills land around codes files too.
        .vector("text", text)
        .vector("image", VectorParams::new(8, Distance::Dot).hnsw(8, 32).datatype(image_type(seed)))
        .sparse_vector("words", SparseVectorParams::idf())
        .on_disk_payload(seed / 6 % 2 == 1)
}

/// The collection of a trial, created (or opened) in `db` with its payload index.
fn indexed(db: &Database, config: CollectionConfig) {
    let c = db.get_or_create("crash", config).expect("collection");
    c.create_payload_index("tag", braid::IndexKind::Integer).expect("index");
}

/// The image space's datatype in trial `seed`.
fn image_type(seed: u64) -> Datatype {
    [Datatype::Float32, Datatype::Float16, Datatype::Uint8][(seed / 2 % 3) as usize]
}

/// An image vector for trial `seed`: integers `0..=255` where the space stores bytes.
fn image(rng: &mut Rng, seed: u64) -> Vec<f32> {
    match image_type(seed) {
        Datatype::Uint8 => (0..8).map(|_| (rng.next_u64() % 256) as f32).collect(),
        _ => rng.vector(8),
    }
}

/// A random sparse vector over a small vocabulary (some points get none).
fn words(rng: &mut Rng) -> SparseVector {
    let mut pairs: std::collections::BTreeMap<u32, f32> = std::collections::BTreeMap::new();
    for _ in 0..rng.next_u64() % 6 {
        pairs.insert((rng.next_u64() % 50) as u32, rng.uniform());
    }
    SparseVector::new(pairs.keys().copied().collect(), pairs.values().copied().collect()).expect("valid")
}

fn options(seed: u64) -> StorageOptions {
    let durability = if !seed.is_multiple_of(2) { Durability::EveryWrite } else { Durability::OnFlush };
    // A small log limit so that automatic checkpoints happen mid-sequence too.
    // The background optimiser compacts often too, so kills land inside it as well.
    StorageOptions {
        durability,
        checkpoint_log_bytes: 48 << 10,
        optimize_every: Some(std::time::Duration::from_millis(20)),
        vacuum_share: 0.2,
        vacuum_min: 20,
        // A third of the trials keep their logs: kills land inside archiving too.
        log_retention: seed.is_multiple_of(3).then_some(std::time::Duration::from_secs(3600)),
        // Half the trials check their vector files after open, in the background:
        // kills land inside that pass, and reopened data is served while it runs.
        verify_after_open_above: if seed % 4 < 2 { 0 } else { u64::MAX },
    }
}

fn steps(seed: u64) -> Vec<Step> {
    let mut rng = Rng::new(seed);
    // Enough ids that more than 1,024 points live at once: the text space's codes
    // centre then, and later checkpoints write codes files.
    let id = |rng: &mut Rng| PointId::from(rng.next_u64() % 1500);
    (0..OPS)
        .map(|i| match rng.next_u64() % 20 {
            _ if i % 9 == 8 => Step::Flush,
            _ if i % 53 == 52 => Step::Optimize,
            0..=9 => {
                let n = 1 + rng.next_u64() % 100;
                Step::Upsert(
                    (0..n)
                        .map(|_| {
                            let tag = rng.next_u64() % 4;
                            let p = PointStruct::new(id(&mut rng))
                                .vector("text", rng.vector(64))
                                .vector("image", image(&mut rng, seed))
                                .payload(json!({"tag": tag, "step": i}));
                            if tag == 0 { p } else { p.sparse("words", words(&mut rng)) }
                        })
                        .collect(),
                )
            }
            10..=11 => Step::Delete((0..5).map(|_| id(&mut rng)).collect()),
            12 => Step::DeleteWhere(Filter::must([
                field("tag").eq((rng.next_u64() % 4) as i64),
                field("step").lt(i as f64 / 2.0),
            ])),
            13 => Step::UpdateImage(id(&mut rng), image(&mut rng, seed)),
            14 => Step::UpdateWords(id(&mut rng), words(&mut rng)),
            15 => Step::DropText(id(&mut rng)),
            _ => Step::SetPayload(
                Filter::must([field("tag").eq((rng.next_u64() % 4) as i64)]),
                json!({"touched": i}),
            ),
        })
        .collect()
}

fn apply(db: &Database, step: &Step) {
    let c = db.collection("crash").expect("the collection exists");
    let result = match step {
        Step::Upsert(points) => c.upsert(points.clone()),
        Step::Delete(ids) => c.delete(ids.clone()).map(drop),
        Step::DeleteWhere(f) => c.delete(f.clone()).map(drop),
        Step::UpdateImage(id, v) => {
            match c.update_vectors(vec![(*id, [("image".to_string(), v.clone())].into())]) {
                Err(braid::Error::PointNotFound { .. }) => Ok(()),
                other => other,
            }
        }
        Step::UpdateWords(id, v) => {
            match c.update_vectors(vec![braid::PointVectors::new(*id).sparse("words", v.clone())]) {
                Err(braid::Error::PointNotFound { .. }) => Ok(()),
                other => other,
            }
        }
        Step::DropText(id) => c.delete_vectors(vec![*id], &["text"]),
        Step::SetPayload(f, p) => c.set_payload(f.clone(), p.clone()),
        Step::Flush => c.flush(),
        Step::Optimize => c.compact().map(drop),
    };
    result.expect("every step is valid");
}

/// Whether trial `seed` writes each step as a replicated entry of its own (#19): the
/// step's write as the entry's write 1, then the entry closed; its position is the
/// step's number. Every third seed.
fn in_entries(seed: u64) -> bool {
    seed % 3 == 2
}

/// Step `i` (from 1) of trial `seed`, applied as the trial writes it.
fn apply_step(db: &Database, seed: u64, i: usize, step: &Step) {
    if !in_entries(seed) || matches!(step, Step::Flush | Step::Optimize) {
        return apply(db, step);
    }
    let c = db.collection("crash").expect("the collection exists");
    let position = i.to_string();
    c.write_in_entry(position.as_bytes(), 1, |_| apply(db, step));
    c.close_entry(position.as_bytes()).expect("close the entry");
}

/// The step a recovered collection's entry mark names: the open entry's (its write is
/// in the log), or else the last closed one's.
fn marked_step(db: &Database) -> usize {
    let mark = db.collection("crash").map(|c| c.entry_mark()).unwrap_or_default();
    let number =
        |p: &[u8]| -> usize { std::str::from_utf8(p).expect("utf-8").parse().expect("a step number") };
    match (&mark.open, &mark.closed) {
        (Some((open, write)), closed) => {
            assert_eq!(*write, 1, "each entry has one write");
            let open = number(open);
            // Entries are written one after another: the open one follows the closed one,
            // up to the flushes and compactions between them, which are not entries.
            assert!(closed.as_deref().map_or(0, number) < open, "{mark:?}");
            open
        }
        (None, Some(closed)) => number(closed),
        (None, None) => 0,
    }
}

/// The child: runs the sequence, reporting progress, until it is killed.
fn child(dir: &str, seed: &str) {
    let seed: u64 = seed.parse().expect("a numeric seed");
    let db = Database::open_with(dir, options(seed)).expect("open");
    indexed(&db, config(seed));
    let mut out = std::io::stdout().lock();
    for (i, step) in steps(seed).iter().enumerate() {
        apply_step(&db, seed, i + 1, step);
        if matches!(step, Step::Flush) {
            writeln!(out, "flushed {}", i + 1).and_then(|()| out.flush()).expect("stdout");
        }
        writeln!(out, "ack {}", i + 1).and_then(|()| out.flush()).expect("stdout");
    }
}

fn contents(db: &Database) -> Vec<Record> {
    match db.collection("crash") {
        Ok(c) => c.scroll(None, 10_000, None, true, true).expect("scroll").0,
        Err(_) => Vec::new(),
    }
}

/// The names of the files in every collection directory under `db`.
fn checkpoint_files(db: &Path) -> BTreeSet<PathBuf> {
    let dirs = std::fs::read_dir(db).into_iter().flatten().flatten().map(|e| e.path()).filter(|p| p.is_dir());
    dirs.flat_map(|d| std::fs::read_dir(d).into_iter().flatten().flatten().map(|e| e.path()))
        .filter(|p| {
            let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            ["graph-", "points-", "vectors-", "wal-", "codes-"].iter().any(|k| name.starts_with(k))
        })
        .collect()
}

/// How a trial chooses its moment.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Kill {
    /// A random moment after the chosen step.
    Random,
    /// The first new checkpoint or compaction file after the chosen step (or the end).
    InsideCheckpoint,
}

/// One trial: returns how many steps were acknowledged before the kill, and whether
/// the kill landed inside a checkpoint or compaction (a new file had appeared).
fn trial(seed: u64, dir: &Path, kill: Kill, power_loss: Option<&Path>) -> (usize, bool) {
    let mut rng = Rng::new(seed ^ 0xC0FFEE);
    let kill_after = 1 + (rng.next_u64() % OPS as u64) as usize;
    let mut child = Command::new(std::env::current_exe().expect("test binary"));
    if let Some(journal) = power_loss {
        child.env(fault::POWER_LOSS_JOURNAL, journal);
    }
    let mut child = child
        .env(CHILD_DIR, dir)
        .env(CHILD_SEED, seed.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().expect("piped stdout");
    // The child's progress, read on a thread so that the parent can watch files.
    let (acked, flushed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let reader = {
        let (acked, flushed) = (acked.clone(), flushed.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(n) = line.strip_prefix("ack ") {
                    acked.store(n.parse().expect("ack count"), Ordering::Release);
                } else if let Some(n) = line.strip_prefix("flushed ") {
                    flushed.store(n.parse().expect("flush count"), Ordering::Release);
                }
            }
        })
    };
    let running = |child: &mut std::process::Child| matches!(child.try_wait(), Ok(None));
    while acked.load(Ordering::Acquire) < kill_after && running(&mut child) {
        std::thread::yield_now();
    }
    let mut inside = false;
    match kill {
        Kill::Random => {
            // Let it run on for a moment, so that the kill lands anywhere inside a step.
            std::thread::sleep(std::time::Duration::from_micros(rng.next_u64() % 3000));
        }
        Kill::InsideCheckpoint => {
            let before = checkpoint_files(dir);
            while running(&mut child) {
                if checkpoint_files(dir).difference(&before).next().is_some() {
                    inside = true;
                    break;
                }
            }
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    // Progress the child reported before it died is still in the pipe.
    reader.join().expect("reader");
    let (acked, flushed) = (acked.load(Ordering::Acquire), flushed.load(Ordering::Acquire));
    if let Some(journal) = power_loss {
        // The machine, not only the process, went down: drop every byte not synced.
        fault::power_cut(journal, dir).expect("replay the power cut");
    }

    let durable = if options(seed).durability == Durability::EveryWrite { acked } else { flushed };
    let db = Database::open_with(dir, options(seed)).expect("reopen after the crash");
    let recovered = contents(&db);
    let model = Database::in_memory();
    // The model holds its payloads and graphs in memory (it has no disk), whatever the
    // trial does.
    let mut in_memory = config(seed).on_disk_payload(false);
    in_memory.vectors.values_mut().for_each(|p| {
        p.hnsw.on_disk = false;
        p.codes_on_disk = false;
    });
    indexed(&model, in_memory);
    let steps = steps(seed);
    let mut matched = None;
    for k in 0..=steps.len() {
        if k > 0 {
            apply(&model, &steps[k - 1]);
        }
        if k >= durable && k <= acked + 1 && contents(&model) == recovered {
            matched = Some(k);
            break;
        }
    }
    let Some(k) = matched else {
        panic!(
            "seed {seed}: recovered {} points, equal to no state between step {durable} (durable) and {} (acknowledged + 1)",
            recovered.len(),
            acked + 1
        )
    };
    if in_entries(seed) {
        // The entry mark says exactly how far the durable log got: the recovered
        // contents are the model's after the step it names (a replica resumes there).
        let marked = marked_step(&db);
        let last_durable_entry = steps[..durable]
            .iter()
            .rposition(|s| !matches!(s, Step::Flush | Step::Optimize))
            .map_or(0, |i| i + 1);
        assert!(
            (last_durable_entry..=acked + 1).contains(&marked),
            "seed {seed}: the mark names step {marked}; durable {durable}, acknowledged {acked}"
        );
        let at_mark = Database::in_memory();
        let mut in_memory = config(seed).on_disk_payload(false);
        in_memory.vectors.values_mut().for_each(|p| {
            p.hnsw.on_disk = false;
            p.codes_on_disk = false;
        });
        indexed(&at_mark, in_memory);
        for step in &steps[..marked] {
            apply(&at_mark, step);
        }
        assert!(
            contents(&at_mark) == recovered,
            "seed {seed}: the mark names step {marked}, the contents are step {k}'s"
        );
    }
    // The recovered store answers queries like the model at the same step.
    if let (Ok(c), Ok(m)) = (db.collection("crash"), model.collection("crash")) {
        let q = SearchRequest::new("text", Rng::new(seed).vector(64)).limit(10).params(SearchParams::EXACT);
        let ids = |r: Vec<braid::ScoredPoint>| r.into_iter().map(|p| p.id).collect::<Vec<_>>();
        assert_eq!(
            ids(c.search(&q).expect("search")),
            ids(m.search(&q).expect("search")),
            "seed {seed}, step {k}"
        );
        // The graph answers too: as many hits as the model has image vectors, up to 5.
        let graph =
            c.search(&SearchRequest::new("image", Rng::new(seed).vector(8)).limit(5)).expect("search");
        assert_eq!(graph.len(), m.vector_count("image").expect("count").min(5), "seed {seed}, step {k}");
        // A walk filtered by one tag (along its payload links where the graph has
        // them) returns only that tag's points, as many as the model has up to 10.
        let tag = Filter::must([field("tag").eq(1)]);
        let found =
            ids(c.search(&q.clone().params(SearchParams::default()).filter(tag.clone())).expect("search"));
        let holding: BTreeSet<PointId> =
            ids(m.search(&q.clone().limit(10_000).filter(tag.clone())).expect("search"))
                .into_iter()
                .collect();
        assert!(found.iter().all(|id| holding.contains(id)), "seed {seed}, step {k}");
        assert_eq!(found.len(), holding.len().min(10), "seed {seed}, step {k}");
    }
    (acked, inside)
}

fn main() -> ExitCode {
    if let (Ok(dir), Ok(seed)) = (std::env::var(CHILD_DIR), std::env::var(CHILD_SEED)) {
        child(&dir, &seed);
        return ExitCode::SUCCESS;
    }
    // `cargo test` passes harness flags (`--nocapture`, filters); there is one test here.
    let trials: u64 = std::env::var("BRAID_CRASH_TRIALS").ok().and_then(|t| t.parse().ok()).unwrap_or(10);
    let base: u64 = std::env::var("BRAID_CRASH_SEED").ok().and_then(|t| t.parse().ok()).unwrap_or(1);
    // With BRAID_CRASH_POWER_LOSS=1 every trial is a power cut: the child journals its
    // syncs, and before reopening the parent drops every byte the disk had not
    // synced (`braid_storage::fault::power_cut`). A missing fsync shows up there.
    let power_loss = std::env::var("BRAID_CRASH_POWER_LOSS").is_ok_and(|v| v == "1");
    let (mut killed_mid_run, mut inside, mut with_codes) = (0u64, 0u64, 0u64);
    for t in 0..trials {
        let dir = tempfile::tempdir().expect("temp dir");
        let journal_dir = tempfile::tempdir().expect("temp dir");
        let journal = journal_dir.path().join("journal");
        let kill = if t % 2 == 0 { Kill::Random } else { Kill::InsideCheckpoint };
        let (acked, landed_inside) =
            trial(base + t, dir.path(), kill, power_loss.then_some(journal.as_path()));
        killed_mid_run += u64::from(acked < OPS);
        inside += u64::from(landed_inside);
        let codes = checkpoint_files(dir.path())
            .iter()
            .any(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("codes-")));
        with_codes += u64::from(codes);
    }
    let what = if power_loss { "power-cut" } else { "kill -9" };
    eprintln!(
        "{trials} {what} trials: {killed_mid_run} killed before the end, {inside} inside a checkpoint or compaction, {with_codes} reopened from codes files; all recovered"
    );
    // The kill step is uniform over the sequence, so most trials must end mid-run, and
    // the watching trials must catch checkpoints; a harness that never kills anything
    // in time would otherwise pass.
    assert!(killed_mid_run * 3 >= trials * 2, "only {killed_mid_run} of {trials} trials were killed mid-run");
    let watching = trials / 2;
    assert!(inside * 4 >= watching, "only {inside} of {watching} watching trials landed inside a checkpoint");
    // The text space's codes are written once their centre is fixed, halfway through a
    // run or so: some of ten trials must have reopened from codes files.
    assert!(trials < 10 || with_codes > 0, "no trial reopened from a codes file");
    ExitCode::SUCCESS
}
