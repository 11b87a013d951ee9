//! Crash safety: a child process runs a known sequence of writes against a database on
//! disk and reports each acknowledgement and flush on stdout; the parent kills it with
//! SIGKILL at a random moment, reopens the directory and checks that the contents equal
//! the contents after some prefix of the sequence that includes every write flushed
//! (with `Durability::EveryWrite`: every write acknowledged) and nothing that was never
//! written — and that the store answers queries.
//!
//! `cargo xtask crash --trials N` runs N trials (default here: 10, or
//! `BRAID_CRASH_TRIALS`). The child is this test binary again, running `crash_child`.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use braid::{
    CollectionConfig, Database, Distance, Durability, Filter, PointId, PointStruct, Record, SearchParams,
    SearchRequest, StorageOptions, VectorParams, field,
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
    DropText(PointId),
    SetPayload(Filter, serde_json::Value),
    Flush,
    Optimize,
}

fn config() -> CollectionConfig {
    CollectionConfig::new()
        .vector("text", VectorParams::new(16, Distance::Cosine).hnsw(8, 32))
        .vector("image", VectorParams::new(8, Distance::Dot).hnsw(8, 32))
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
    }
}

fn steps(seed: u64) -> Vec<Step> {
    let mut rng = Rng::new(seed);
    let id = |rng: &mut Rng| PointId::from(rng.next_u64() % 400);
    (0..OPS)
        .map(|i| match rng.next_u64() % 20 {
            _ if i % 9 == 8 => Step::Flush,
            _ if i % 53 == 52 => Step::Optimize,
            0..=9 => {
                let n = 1 + rng.next_u64() % 25;
                Step::Upsert(
                    (0..n)
                        .map(|_| {
                            let tag = rng.next_u64() % 4;
                            PointStruct::new(id(&mut rng))
                                .vector("text", rng.vector(16))
                                .vector("image", rng.vector(8))
                                .payload(json!({"tag": tag, "step": i}))
                        })
                        .collect(),
                )
            }
            10..=11 => Step::Delete((0..5).map(|_| id(&mut rng)).collect()),
            12 => Step::DeleteWhere(Filter::must([
                field("tag").eq((rng.next_u64() % 4) as i64),
                field("step").lt(i as f64 / 2.0),
            ])),
            13..=14 => Step::UpdateImage(id(&mut rng), rng.vector(8)),
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
        Step::DropText(id) => c.delete_vectors(vec![*id], &["text"]),
        Step::SetPayload(f, p) => c.set_payload(f.clone(), p.clone()),
        Step::Flush => c.flush(),
        Step::Optimize => c.compact().map(drop),
    };
    result.expect("every step is valid");
}

/// The child: runs the sequence, reporting progress. Does nothing unless started by
/// the parent.
#[test]
fn crash_child() {
    let (Ok(dir), Ok(seed)) = (std::env::var(CHILD_DIR), std::env::var(CHILD_SEED)) else { return };
    let seed: u64 = seed.parse().expect("a numeric seed");
    let db = Database::open_with(&dir, options(seed)).expect("open");
    db.get_or_create("crash", config()).expect("collection");
    let mut out = std::io::stdout().lock();
    for (i, step) in steps(seed).iter().enumerate() {
        apply(&db, step);
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

/// One trial: returns how many steps were acknowledged before the kill.
fn trial(seed: u64, dir: &Path) -> usize {
    let mut rng = Rng::new(seed ^ 0xC0FFEE);
    let kill_after = 1 + (rng.next_u64() % OPS as u64) as usize;
    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args(["crash_child", "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_DIR, dir)
        .env(CHILD_SEED, seed.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut lines = BufReader::new(stdout).lines();
    let (mut acked, mut flushed) = (0usize, 0usize);
    let read = |line: &str, acked: &mut usize, flushed: &mut usize| {
        if let Some(n) = line.strip_prefix("ack ") {
            *acked = n.parse().expect("ack count");
        } else if let Some(n) = line.strip_prefix("flushed ") {
            *flushed = n.parse().expect("flush count");
        }
    };
    for line in lines.by_ref() {
        read(&line.expect("child output"), &mut acked, &mut flushed);
        if acked >= kill_after {
            break;
        }
    }
    // Let it run on for a moment, so that the kill lands anywhere inside a step.
    std::thread::sleep(std::time::Duration::from_micros(rng.next_u64() % 3000));
    let _ = child.kill();
    let _ = child.wait();
    // Progress the child reported before it died is still in the pipe.
    for line in lines.map_while(Result::ok) {
        read(&line, &mut acked, &mut flushed);
    }

    let durable = if options(seed).durability == Durability::EveryWrite { acked } else { flushed };
    let db = Database::open_with(dir, options(seed)).expect("reopen after the crash");
    let recovered = contents(&db);
    let model = Database::in_memory();
    model.create_collection("crash", config()).expect("model");
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
    // The recovered store answers queries like the model at the same step.
    if let (Ok(c), Ok(m)) = (db.collection("crash"), model.collection("crash")) {
        let q = SearchRequest::new("text", Rng::new(seed).vector(16))
            .limit(10)
            .params(SearchParams { hnsw_ef: None, exact: true });
        let ids = |r: Vec<braid::ScoredPoint>| r.into_iter().map(|p| p.id).collect::<Vec<_>>();
        assert_eq!(
            ids(c.search(&q).expect("search")),
            ids(m.search(&q).expect("search")),
            "seed {seed}, step {k}"
        );
        let graph =
            c.search(&SearchRequest::new("image", Rng::new(seed).vector(8)).limit(5)).expect("search");
        assert!(graph.len() <= 5);
    }
    acked
}

#[test]
fn kill_9_at_random_moments_loses_no_flushed_write() {
    let trials: u64 = std::env::var("BRAID_CRASH_TRIALS").ok().and_then(|t| t.parse().ok()).unwrap_or(10);
    let base: u64 = std::env::var("BRAID_CRASH_SEED").ok().and_then(|t| t.parse().ok()).unwrap_or(1);
    let mut killed_mid_run = 0;
    for t in 0..trials {
        let dir = tempfile::tempdir().expect("temp dir");
        if trial(base + t, dir.path()) < OPS {
            killed_mid_run += 1;
        }
    }
    eprintln!("{trials} crash trials, {killed_mid_run} killed before the end, all recovered");
}
