//! Snapshots: taken while a writer runs, they hold a prefix of its acknowledged writes
//! exactly (points, vectors of every kind, payloads, indexes, search answers); a
//! database snapshot restores every collection and alias; a damaged, truncated or
//! mismatched snapshot is refused and changes nothing; a recovery survives reopen.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use braid::{
    AliasOp, Collection, CollectionConfig, Database, Distance, Error, Filter, IndexKind, PointId,
    PointStruct, SearchRequest, SparseVector, SparseVectorParams, VectorParams, WithPayload, WithVectors,
    field,
};
use braid_testkit::Rng;
use serde_json::json;

fn config() -> CollectionConfig {
    CollectionConfig::new()
        .vector("text", VectorParams::new(16, Distance::Cosine))
        .vector("image", VectorParams::new(8, Distance::Euclid))
        .sparse_vector("keywords", SparseVectorParams::default())
}

const TAGS: [&str; 3] = ["red", "green", "blue"];

fn point(i: u64) -> PointStruct {
    let mut rng = Rng::new(i + 1);
    PointStruct::new(i)
        .vector("text", rng.vector(16))
        .vector("image", rng.vector(8))
        .sparse(
            "keywords",
            SparseVector::new(vec![(i % 50) as u32, 100 + (i % 7) as u32], vec![1.0, 0.5]).unwrap(),
        )
        .payload(json!({"n": i, "tag": TAGS[(i % 3) as usize]}))
}

/// Every point of `c`, sorted by id, with payload and every vector.
fn dump(c: &Collection) -> Vec<braid::Record> {
    let (mut all, mut offset) = (Vec::new(), None);
    loop {
        let (page, next) = c.scroll(None, 500, offset, WithPayload::All, WithVectors::All).unwrap();
        all.extend(page);
        match next {
            Some(n) => offset = Some(n),
            None => return all,
        }
    }
}

fn answers(c: &Collection) -> Vec<Vec<(PointId, u32)>> {
    let mut rng = Rng::new(99);
    (0..10)
        .map(|k| {
            let mut request = SearchRequest::new("text", rng.vector(16)).limit(10);
            if k % 2 == 1 {
                request = request.filter(Filter::must([field("tag").eq("red")]));
            }
            c.search(&request).unwrap().into_iter().map(|h| (h.id, h.score.to_bits())).collect()
        })
        .collect()
}

#[test]
fn a_snapshot_taken_while_writing_holds_a_prefix_of_the_writes_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let snapshots = dir.path().join("snapshots");
    let db = Database::open(dir.path().join("db")).unwrap();
    let c = db.create_collection("docs", config()).unwrap();
    c.create_payload_index("tag", IndexKind::Keyword).unwrap();
    c.upsert((0..500).map(point).collect()).unwrap();
    let written = Arc::new(AtomicU64::new(500));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (c, written, stop) = (c.clone(), written.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Acquire) {
                let i = written.load(Ordering::Relaxed);
                c.upsert(vec![point(i)]).unwrap();
                written.store(i + 1, Ordering::Release);
            }
        })
    };
    while written.load(Ordering::Acquire) < 700 {
        std::thread::yield_now();
    }
    let before = written.load(Ordering::Acquire);
    let description = db.snapshot_collection("docs", &snapshots).unwrap();
    let after = written.load(Ordering::Acquire);
    stop.store(true, Ordering::Release);
    writer.join().unwrap();
    assert!(description.name.starts_with("docs-") && description.name.ends_with(".snapshot"));
    assert_eq!(description.checksum.as_deref().map(str::len), Some(64));
    assert_eq!(braid::snapshot::list(&snapshots).unwrap(), vec![description.clone()]);

    let other = Database::open(dir.path().join("other")).unwrap();
    let restored = other
        .recover_collection("copy", &snapshots.join(&description.name), description.checksum.as_deref())
        .unwrap();
    let got = dump(&restored);
    let k = got.len() as u64;
    assert!(k >= before && k <= after + 1, "{before} ≤ {k} ≤ {after}+1");
    // Exactly the first k writes: build them again in memory and compare everything.
    let reference = Database::in_memory().create_collection("docs", config()).unwrap();
    reference.create_payload_index("tag", IndexKind::Keyword).unwrap();
    reference.upsert((0..k).map(point).collect()).unwrap();
    assert_eq!(got, dump(&reference));
    assert_eq!(restored.info().payload_schema, reference.info().payload_schema);
    assert_eq!(answers(&restored), answers(&reference));
    assert_eq!(restored.config(), c.config());
    // And it is a database collection like any other: writable, durable.
    restored.upsert(vec![point(100_000)]).unwrap();
    restored.flush().unwrap();
    drop((restored, other));
    let other = Database::open(dir.path().join("other")).unwrap();
    assert_eq!(other.collection("copy").unwrap().count(None).unwrap() as u64, k + 1);
}

#[test]
fn a_database_snapshot_restores_every_collection_and_alias() {
    let dir = tempfile::tempdir().unwrap();
    let snapshots = dir.path().join("snapshots");
    let db = Database::open(dir.path().join("db")).unwrap();
    for (name, n) in [("a", 50), ("b", 120)] {
        db.create_collection(name, config()).unwrap().upsert((0..n).map(point).collect()).unwrap();
    }
    db.update_aliases(&[AliasOp::Create { alias: "live".into(), collection: "b".into() }]).unwrap();
    let full = db.snapshot(&snapshots).unwrap();
    assert!(full.name.starts_with("full-snapshot-"));

    let fresh = Database::open(dir.path().join("fresh")).unwrap();
    fresh.create_collection("untouched", config()).unwrap();
    assert_eq!(fresh.restore(&snapshots.join(&full.name), None).unwrap(), ["a", "b"]);
    assert_eq!(fresh.list(), ["a", "b", "untouched"]);
    assert_eq!(dump(&fresh.collection("live").unwrap()), dump(&db.collection("b").unwrap()));
    assert_eq!(dump(&fresh.collection("a").unwrap()), dump(&db.collection("a").unwrap()));
    drop(fresh);
    let fresh = Database::open(dir.path().join("fresh")).unwrap();
    assert_eq!(fresh.aliases(), [("live".into(), "b".into())]);

    // The two kinds are not interchangeable.
    let one = db.snapshot_collection("a", &snapshots).unwrap();
    assert!(matches!(fresh.restore(&snapshots.join(&one.name), None), Err(Error::Snapshot { .. })));
    assert!(matches!(
        fresh.recover_collection("x", &snapshots.join(&full.name), None),
        Err(Error::Snapshot { .. })
    ));
    assert!(!fresh.collection_exists("x"));
    assert!(braid::snapshot::delete(&snapshots, &one.name).unwrap());
    assert!(!braid::snapshot::delete(&snapshots, &one.name).unwrap());
    assert_eq!(braid::snapshot::list(&snapshots).unwrap().len(), 1);
}

#[test]
fn damaged_snapshots_are_refused_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let snapshots = dir.path().join("snapshots");
    let db = Database::open(dir.path().join("db")).unwrap();
    let c = db.create_collection("docs", config()).unwrap();
    c.upsert((0..300).map(point).collect()).unwrap();
    let good = db.snapshot_collection("docs", &snapshots).unwrap();
    let bytes = std::fs::read(snapshots.join(&good.name)).unwrap();
    // Overwrite the live collection's contents, then try to recover over it.
    c.delete(vec![PointId::from(0u64)]).unwrap();
    let expected = dump(&c);

    let mut cases: Vec<(&str, Vec<u8>)> = Vec::new();
    for at in [700, bytes.len() / 3, bytes.len() / 2, bytes.len() - 1500] {
        let mut flipped = bytes.clone();
        flipped[at] ^= 0x40;
        cases.push(("flipped", flipped));
    }
    for len in [0, 100, 512, bytes.len() / 2, bytes.len() - 2048] {
        cases.push(("truncated", bytes[..len].to_vec()));
    }
    cases.push(("not a tar", b"hello, this is not a snapshot at all".repeat(40)));
    let listed_dirs = || std::fs::read_dir(dir.path().join("db")).unwrap().count();
    let dirs_before = listed_dirs();
    for (what, body) in cases {
        let path = dir.path().join("bad.snapshot");
        std::fs::write(&path, &body).unwrap();
        let result = db.recover_collection("docs", &path, None);
        assert!(result.is_err(), "{what} ({} bytes) was accepted", body.len());
        assert_eq!(dump(&db.collection("docs").unwrap()), expected, "{what} changed the collection");
        assert_eq!(listed_dirs(), dirs_before, "{what} left a directory behind");
    }
    // A checksum that does not match refuses a sound file.
    let wrong = "0".repeat(64);
    let e = db.recover_collection("docs", &snapshots.join(&good.name), Some(&wrong)).unwrap_err();
    assert!(e.to_string().contains("does not match"), "{e}");
    assert_eq!(dump(&db.collection("docs").unwrap()), expected);

    // The good one, with its checksum, replaces the collection — durably.
    db.recover_collection("docs", &snapshots.join(&good.name), good.checksum.as_deref()).unwrap();
    assert_eq!(db.collection("docs").unwrap().count(None).unwrap(), 300);
    drop(c);
    drop(db);
    let db = Database::open(dir.path().join("db")).unwrap();
    assert_eq!(db.collection("docs").unwrap().count(None).unwrap(), 300);
    assert_eq!(listed_dirs(), dirs_before, "the replaced collection's directory is gone");
}

#[test]
fn snapshots_need_a_database_on_disk() {
    let db = Database::in_memory();
    db.create_collection("docs", config()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(db.snapshot_collection("docs", dir.path()), Err(Error::NotOnDisk { .. })));
    assert!(matches!(db.snapshot(dir.path()), Err(Error::NotOnDisk { .. })));
    assert!(matches!(db.snapshot_collection("nope", dir.path()), Err(Error::CollectionNotFound { .. })));
}

#[test]
fn an_incremental_snapshot_holds_what_changed_and_restores_the_whole() {
    let dir = tempfile::tempdir().unwrap();
    let shots = dir.path().join("snapshots");
    let db = Database::open(dir.path().join("db")).unwrap();
    let c = db.create_collection("docs", config()).unwrap();
    for chunk in (0..3000u64).collect::<Vec<_>>().chunks(1000) {
        c.upsert(chunk.iter().map(|i| point(*i)).collect()).unwrap();
    }
    let full = db.snapshot_collection("docs", &shots).unwrap();
    // Snapshots between (no checkpoint needed) change nothing for the base.
    let between = db.snapshot_collection("docs", &shots).unwrap();
    assert!(braid::snapshot::delete(&shots, &between.name).unwrap());
    // 1 % changed: 15 replaced, 15 new, a payload set.
    c.upsert((0..15).chain(5000..5015).map(|i| point(i * 7 % 6000)).collect()).unwrap();
    c.set_payload(vec![PointId::from(3u64)], json!({"x": 1})).unwrap();
    let inc = db.snapshot_collection_incremental("docs", &shots, &full.name).unwrap();
    assert!(inc.name.contains("incremental"), "{}", inc.name);
    // The vector files' 3000 base rows (288 KB) are not stored again; graphs and the
    // points document are (a checkpoint rewrites them).
    assert!(inc.size + 250_000 < full.size, "incremental {} bytes vs full {}", inc.size, full.size);

    // Recovered beside its base, it is the collection as it is now.
    let copy = db.recover_collection("copy", &shots.join(&inc.name), inc.checksum.as_deref()).unwrap();
    assert_eq!(dump(&copy), dump(&c));
    assert_eq!(answers(&copy), answers(&c));
    // An incremental snapshot cannot be a base; an unknown base is refused.
    assert!(matches!(
        db.snapshot_collection_incremental("docs", &shots, &inc.name),
        Err(Error::Snapshot { .. })
    ));
    assert!(matches!(
        db.snapshot_collection_incremental("docs", &shots, "none.snapshot"),
        Err(Error::Snapshot { .. })
    ));

    // Without its base, or with a base that changed, it is refused; nothing changes.
    let before = dump(&copy);
    let moved = dir.path().join("elsewhere");
    std::fs::create_dir_all(&moved).unwrap();
    std::fs::copy(shots.join(&inc.name), moved.join(&inc.name)).unwrap();
    let lone = db.recover_collection("copy", &moved.join(&inc.name), None);
    assert!(matches!(&lone, Err(Error::Snapshot { why, .. }) if why.contains("base")), "{lone:?}");
    let base_path = shots.join(&full.name);
    let mut bytes = std::fs::read(&base_path).unwrap();
    let at = bytes.len() / 3;
    bytes[at] ^= 0x40;
    std::fs::write(&base_path, &bytes).unwrap();
    let damaged = db.recover_collection("copy", &shots.join(&inc.name), None);
    assert!(matches!(&damaged, Err(Error::Snapshot { why, .. }) if why.contains("base")), "{damaged:?}");
    assert_eq!(dump(&db.collection("copy").unwrap()), before);
}

/// Writes a history into collection `docs` of a database at `path` that keeps its logs
/// (or not): a full snapshot after the first writes, then phases of writes (upserts,
/// payload changes, deletes) with checkpoints between some, each phase ending at a
/// moment in time. Returns the database, the snapshot's path and, per moment, the
/// collection's contents then.
fn history(
    path: &std::path::Path,
    keep: bool,
) -> (Database, std::path::PathBuf, Vec<(std::time::SystemTime, Vec<braid::Record>)>) {
    let options = braid::StorageOptions {
        optimize_every: None,
        checkpoint_log_bytes: 16 << 10,
        log_retention: keep.then_some(std::time::Duration::from_secs(3600)),
        ..braid::StorageOptions::default()
    };
    let db = Database::open_with(path.join("db"), options).unwrap();
    let c = db.create_collection("docs", config()).unwrap();
    c.create_payload_index("tag", IndexKind::Keyword).unwrap();
    c.upsert((0..100).map(point).collect()).unwrap();
    let shot = db.snapshot_collection("docs", &path.join("snapshots")).unwrap();
    let mut moments = Vec::new();
    for phase in 0..4u64 {
        for i in 0..10 {
            // Small batches, so that the log passes its limit and checkpoints by itself.
            let start = 100 + phase * 100 + i * 10;
            c.upsert((start..start + 10).map(point).collect()).unwrap();
        }
        c.set_payload(vec![PointId::from(phase)], json!({"phase": phase})).unwrap();
        c.delete(vec![PointId::from(50 + phase)]).unwrap();
        if phase == 1 {
            c.flush().unwrap();
        }
        std::thread::sleep(std::time::Duration::from_millis(3));
        moments.push((std::time::SystemTime::now(), dump(&c)));
        std::thread::sleep(std::time::Duration::from_millis(3));
    }
    (db, path.join("snapshots").join(shot.name), moments)
}

#[test]
fn a_snapshot_recovers_to_any_moment_within_the_retained_log() {
    let dir = tempfile::tempdir().unwrap();
    for (k, moment) in [0usize, 2, 3].into_iter().enumerate() {
        let path = dir.path().join(format!("run-{k}"));
        let (db, shot, moments) = history(&path, true);
        // Checkpoints happened since the snapshot, and kept the logs they replaced.
        let archived: usize = std::fs::read_dir(path.join("db"))
            .unwrap()
            .filter_map(|e| std::fs::read_dir(e.unwrap().path().join("archive")).ok())
            .map(Iterator::count)
            .sum();
        assert!(archived >= 2, "{archived} logs retained");
        let (until, expected) = &moments[moment];
        let c = db.recover_collection_until("docs", &shot, None, *until).unwrap();
        assert_eq!(dump(&c), *expected, "moment {moment}");
        assert_ne!(dump(&c), moments[(moment + 1) % moments.len()].1);
        assert_eq!(c.info().payload_schema.len(), 1);
        // Writable and durable, as any recovered collection.
        c.upsert(vec![point(9999)]).unwrap();
        c.flush().unwrap();
        let expected_now = dump(&c);
        drop(c);
        drop(db);
        let db = Database::open(path.join("db")).unwrap();
        let c = db.collection("docs").unwrap();
        assert_eq!(dump(&c), expected_now);
        // The recovery started a new history: the old snapshot no longer replays onto it.
        let again = db.recover_collection_until("docs", &shot, None, std::time::SystemTime::now());
        assert!(matches!(&again, Err(Error::Snapshot { why, .. }) if why.contains("history")), "{again:?}");
        assert_eq!(dump(&c), expected_now);
    }
}

#[test]
fn a_point_in_time_recovery_without_the_logs_is_refused_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (db, shot, moments) = history(dir.path(), false);
    let c = db.collection("docs").unwrap();
    let before = dump(&c);
    let refused = db.recover_collection_until("docs", &shot, None, moments[1].0);
    assert!(matches!(&refused, Err(Error::Snapshot { why, .. }) if why.contains("retain")), "{refused:?}");
    assert_eq!(dump(&db.collection("docs").unwrap()), before);
    // Only the collection's own name: not an alias, not another collection's snapshot.
    db.update_aliases(&[AliasOp::Create { alias: "current".into(), collection: "docs".into() }]).unwrap();
    assert!(db.recover_collection_until("current", &shot, None, moments[1].0).is_err());
    db.create_collection("other", config()).unwrap();
    let foreign = db.recover_collection_until("other", &shot, None, moments[1].0);
    assert!(matches!(&foreign, Err(Error::Snapshot { why, .. }) if why.contains("history")), "{foreign:?}");
    // No directory is left behind by the refusals.
    let dirs = std::fs::read_dir(dir.path().join("db"))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().is_dir())
        .count();
    assert_eq!(dirs, 2, "one directory per collection");
    assert!(!moments.is_empty());
}
