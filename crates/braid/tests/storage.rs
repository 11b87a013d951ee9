//! Durable storage through the facade: reopen round trips, the directory lock, damaged
//! and truncated files, a full disk, and the admin operations.

use std::path::{Path, PathBuf};

use braid::storage::{StorageError, fault};
use braid::{
    CollectionConfig, CollectionState, Database, Distance, Durability, Error, Fusion, IndexKind, PointId,
    PointStruct, Prefetch, QueryRequest, Record, SearchParams, SearchRequest, StorageOptions, Uuid,
    VectorParams, field,
};
use braid_testkit::Rng;
use serde_json::json;

fn config() -> CollectionConfig {
    CollectionConfig::new()
        .vector("text", VectorParams::new(8, Distance::Cosine).hnsw(8, 32))
        .vector("image", VectorParams::new(4, Distance::Euclid).hnsw(8, 32))
}

fn point(rng: &mut Rng, id: impl Into<PointId>, i: u64) -> PointStruct {
    let cat = ["a", "b", "c"][(i % 3) as usize];
    let mut p = PointStruct::new(id)
        .vector("text", rng.vector(8))
        .payload(json!({"cat": cat, "n": i, "deep": {"k": i % 5}}));
    if !i.is_multiple_of(4) {
        p = p.vector("image", rng.vector(4));
    }
    p
}

/// Everything a user can see: every point with payload and vectors, in id order.
fn contents(db: &Database, name: &str) -> Vec<Record> {
    let c = db.collection(name).unwrap();
    let (records, next) = c.scroll(None, 10_000, None, true, true).unwrap();
    assert!(next.is_none());
    records
}

/// Search answers through every path: exact, graph, filtered, fused.
fn answers(db: &Database, name: &str) -> Vec<Vec<(PointId, f32)>> {
    let c = db.collection(name).unwrap();
    let mut rng = Rng::new(99);
    let mut out = Vec::new();
    for _ in 0..5 {
        let q = rng.vector(8);
        let qi = rng.vector(4);
        let exact = SearchParams::EXACT;
        let runs = vec![
            c.search(&SearchRequest::new("text", q.clone()).limit(10).params(exact)).unwrap(),
            c.search(&SearchRequest::new("text", q.clone()).limit(10)).unwrap(),
            c.search(
                &SearchRequest::new("image", qi.clone())
                    .limit(5)
                    .filter(braid::Filter::must([field("cat").eq("b")])),
            )
            .unwrap(),
            c.query(QueryRequest::fusion(
                Fusion::rrf(),
                vec![Prefetch::nearest("text", q, 20), Prefetch::nearest("image", qi, 20)],
            ))
            .unwrap(),
        ];
        out.extend(runs.into_iter().map(|r| r.into_iter().map(|p| (p.id, p.score)).collect()));
    }
    out
}

/// Fills `name` with a history of every kind of write.
fn history(db: &Database, name: &str, seed: u64) {
    let c = db.get_or_create(name, config()).unwrap();
    let mut rng = Rng::new(seed);
    c.create_payload_index("cat", IndexKind::Keyword).unwrap();
    for batch in 0..4u64 {
        let points: Vec<PointStruct> =
            (0..50).map(|i| point(&mut rng, batch * 50 + i, batch * 50 + i)).collect();
        c.upsert(points).unwrap();
    }
    c.upsert(vec![point(&mut rng, Uuid::from_u128(0xFEED), 7)]).unwrap();
    c.update_vectors(vec![(5u64.into(), [("image".to_string(), vec![1.0, 2.0, 3.0, 4.0])].into())]).unwrap();
    c.delete_vectors(vec![PointId::from(6u64), 7u64.into()], &["text"]).unwrap();
    c.delete(braid::Filter::must([field("deep.k").eq(3)])).unwrap();
    c.delete(vec![PointId::from(10u64)]).unwrap();
    c.set_payload(vec![PointId::from(11u64)], json!({"extra": true})).unwrap();
    c.overwrite_payload(braid::Filter::must([field("n").eq(12)]), json!({"cat": "z"})).unwrap();
    // 13 went with the filtered delete above: Qdrant edits the ids that exist and
    // then answers "not found" for the first that does not.
    let err = c.delete_payload(vec![PointId::from(13u64), 19u64.into()], &["deep.k"]).unwrap_err();
    assert!(matches!(err, braid::Error::PointNotFound { id: PointId::Num(13) }), "{err}");
    c.set_payload_at(vec![PointId::from(15u64), 16u64.into()], "deep.more", json!({"x": 1})).unwrap();
    c.clear_payload(vec![PointId::from(14u64)]).unwrap();
    c.create_payload_index("n", IndexKind::Integer).unwrap();
    c.upsert((0..20).map(|i| point(&mut rng, 100 + i, 1000 + i)).collect()).unwrap();
}

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

#[test]
fn everything_survives_close_and_open_with_and_without_a_checkpoint() {
    for flush_at_end in [false, true] {
        let dir = tmp();
        let (before, answered, info) = {
            let db = Database::open(dir.path()).unwrap();
            history(&db, "products", 1);
            db.flush().unwrap();
            // More writes after the checkpoint: they are replayed from the log.
            let c = db.collection("products").unwrap();
            c.upsert(vec![point(&mut Rng::new(5), 500u64, 500)]).unwrap();
            c.delete(vec![PointId::from(0u64)]).unwrap();
            if flush_at_end {
                c.flush().unwrap();
            }
            (contents(&db, "products"), answers(&db, "products"), c.info())
        };
        let db = Database::open(dir.path()).unwrap();
        assert_eq!(contents(&db, "products"), before);
        assert_eq!(answers(&db, "products"), answered);
        let after = db.collection("products").unwrap().info();
        assert_eq!(
            (after.points_count, after.vectors_count, after.payload_schema, after.config),
            (info.points_count, info.vectors_count, info.payload_schema, info.config)
        );
    }
}

#[test]
fn a_second_open_of_the_same_directory_is_refused_until_the_first_is_dropped() {
    let dir = tmp();
    let db = Database::open(dir.path()).unwrap();
    let err = Database::open(dir.path()).unwrap_err();
    assert!(matches!(err, Error::Storage(StorageError::Locked { .. })), "{err}");
    // A collection handle outliving its database keeps the directory locked: it can
    // still write there.
    let c = db.create_collection("c", config()).unwrap();
    drop(db);
    assert!(matches!(Database::open(dir.path()), Err(Error::Storage(StorageError::Locked { .. }))));
    drop(c);
    Database::open(dir.path()).unwrap();
}

#[test]
fn collections_created_and_deleted_stay_so() {
    let dir = tmp();
    {
        let db = Database::open(dir.path()).unwrap();
        db.create_collection("a", config()).unwrap();
        db.create_collection("b", config()).unwrap();
        history(&db, "b", 3);
        assert!(db.delete_collection("a").unwrap());
        db.create_collection("a", config().vector("extra", VectorParams::new(2, Distance::Dot))).unwrap();
    }
    let db = Database::open(dir.path()).unwrap();
    assert_eq!(db.list(), vec!["a".to_string(), "b".to_string()]);
    assert_eq!(db.collection("a").unwrap().config().vectors.len(), 3);
    assert_eq!(db.collection("a").unwrap().count(None).unwrap(), 0);
    assert!(db.collection("b").unwrap().count(None).unwrap() > 100);
    // Only the two live collection directories remain.
    let dirs = std::fs::read_dir(dir.path()).unwrap().flatten().filter(|e| e.path().is_dir()).count();
    assert_eq!(dirs, 2);
}

fn collection_dir(db_dir: &Path) -> PathBuf {
    std::fs::read_dir(db_dir).unwrap().flatten().map(|e| e.path()).find(|p| p.is_dir()).unwrap()
}

fn files(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix))
        .collect();
    out.sort();
    out
}

/// A database with a checkpoint and then `n` single-point upserts in the log; returns
/// the contents after each of them.
fn logged(dir: &Path, n: u64) -> Vec<Vec<Record>> {
    let db = Database::open(dir).unwrap();
    history(&db, "c", 2);
    db.flush().unwrap();
    let c = db.collection("c").unwrap();
    let mut rng = Rng::new(8);
    let mut states = vec![contents(&db, "c")];
    for i in 0..n {
        c.upsert(vec![point(&mut rng, 2000 + i, i)]).unwrap();
        states.push(contents(&db, "c"));
    }
    states
}

#[test]
fn a_truncated_log_recovers_a_prefix_of_the_writes() {
    let dir = tmp();
    let states = logged(dir.path(), 6);
    let wal = files(&collection_dir(dir.path()), "wal-").pop().unwrap();
    let full = std::fs::read(&wal).unwrap();
    for cut in (16..=full.len()).step_by(97).chain([full.len() - 1]) {
        std::fs::write(&wal, &full[..cut]).unwrap();
        let db = Database::open(dir.path()).unwrap();
        let got = contents(&db, "c");
        assert!(states.contains(&got), "cut at {cut}: not a prefix of the writes");
        drop(db);
        std::fs::write(&wal, &full).unwrap();
    }
}

#[test]
fn damage_anywhere_is_a_typed_error_naming_the_file_or_loses_at_most_the_last_write() {
    let dir = tmp();
    let states = logged(dir.path(), 3);
    let cdir = collection_dir(dir.path());
    let mut targets = Vec::new();
    for prefix in ["MANIFEST", "points-", "graph-", "vectors-", "wal-"] {
        targets.extend(files(&cdir, prefix));
    }
    targets.push(dir.path().join("MANIFEST"));
    let mut rng = Rng::new(4);
    for file in targets {
        let original = std::fs::read(&file).unwrap();
        for _ in 0..12 {
            let mut bad = original.clone();
            let at = (rng.next_u64() % bad.len() as u64) as usize;
            bad[at] ^= 1 << (rng.next_u64() % 8);
            std::fs::write(&file, &bad).unwrap();
            match Database::open(dir.path()) {
                Err(Error::Storage(e)) => {
                    assert_eq!(e.file(), file, "{e}");
                }
                Err(other) => panic!("{}: byte {at}: untyped failure {other}", file.display()),
                Ok(db) => {
                    // Only the log may shed its last record (a torn tail).
                    let got = contents(&db, "c");
                    let name = file.file_name().unwrap().to_string_lossy().into_owned();
                    assert!(name.starts_with("wal-"), "{name}: byte {at} flipped and nothing noticed");
                    assert!(
                        got == states[states.len() - 1] || got == states[states.len() - 2],
                        "{name}: byte {at}"
                    );
                }
            }
            std::fs::write(&file, &original).unwrap();
        }
    }
    // Undamaged again, it opens with everything.
    let db = Database::open(dir.path()).unwrap();
    assert_eq!(&contents(&db, "c"), states.last().unwrap());
}

/// Options that leave every vector file's checksum to the background pass.
fn checked_after_open() -> StorageOptions {
    StorageOptions { verify_after_open_above: 0, ..StorageOptions::default() }
}

/// Opens `dir` with the pass in the background, waits for it to pass, and checks that
/// collection `c` holds `last`.
fn reopens_intact(dir: &Path, last: &[Record]) {
    let db = Database::open_with(dir, checked_after_open()).unwrap();
    db.collection("c").unwrap().verify_wait().unwrap();
    assert_eq!(contents(&db, "c"), last);
}

/// A vector file too large to read before the open returns is checked after it, in
/// the background: the open serves at once, and damage the pass finds later fails the
/// collection — every request, read or write, returns the storage error naming the
/// file, the status turns red and `failures` reports it — instead of answering from
/// damaged rows.
#[test]
fn damage_found_by_the_background_pass_fails_every_later_request() {
    let dir = tmp();
    let states = logged(dir.path(), 2);
    let background = checked_after_open();
    let vectors = files(&collection_dir(dir.path()), "vectors-");
    assert!(!vectors.is_empty());
    // Undamaged, the pass ends well and nothing changes.
    {
        let db = Database::open_with(dir.path(), background).unwrap();
        let c = db.collection("c").unwrap();
        c.verify_wait().unwrap();
        assert!(!c.verifying());
        assert_eq!(&contents(&db, "c"), states.last().unwrap());
        assert_eq!(c.info().status, "green");
        assert!(db.failures().is_empty());
    }
    for file in &vectors {
        let original = std::fs::read(file).unwrap();
        let mut bad = original.clone();
        // A bit of a row (past the 64-byte header): only the checksum can tell.
        let at = bad.len() - 3;
        bad[at] ^= 0x08;
        std::fs::write(file, &bad).unwrap();
        let db = Database::open_with(dir.path(), background).unwrap();
        let c = db.collection("c").unwrap();
        let err = c.verify_wait().unwrap_err();
        match &err {
            Error::Storage(StorageError::Corrupt { file: named, .. }) => assert_eq!(named, file),
            other => panic!("{}: {other}", file.display()),
        }
        let request = SearchRequest::new("text", vec![0.5; 8]).limit(3);
        assert_eq!(c.search(&request).unwrap_err(), err);
        assert_eq!(c.scroll(None, 10, None, true, true).unwrap_err(), err);
        assert_eq!(c.count(None).unwrap_err(), err);
        assert_eq!(c.get(&[PointId::from(1u64)], true, true).unwrap_err(), err);
        let mut rng = Rng::new(3);
        assert_eq!(c.upsert(vec![point(&mut rng, 9999u64, 1)]).unwrap_err(), err);
        assert_eq!(c.flush().unwrap_err(), err);
        assert_eq!(c.compact().unwrap_err(), err);
        assert_eq!(c.info().status, "red");
        let failures = db.failures();
        assert_eq!(failures["c"].get(&braid::Task::Verify), Some(&err));
        drop((c, db));
        // Checked before the open returns (the default for small files), the same
        // damage is the open's error.
        let at_open = Database::open(dir.path()).unwrap_err();
        assert_eq!(at_open, err);
        std::fs::write(file, &original).unwrap();
    }
    reopens_intact(dir.path(), states.last().unwrap());
}

/// The background pass holds nothing that keeps the directory locked: a database
/// dropped while its pass runs (or just as it ends) can be opened again at once.
#[test]
fn a_pass_in_flight_never_keeps_the_directory_locked() {
    let dir = tmp();
    let states = logged(dir.path(), 1);
    let background = checked_after_open();
    for _ in 0..30 {
        let db = Database::open_with(dir.path(), background).unwrap();
        drop(db);
    }
    reopens_intact(dir.path(), states.last().unwrap());
}

#[test]
fn a_full_disk_fails_writes_with_a_clear_error_and_keeps_what_was_flushed() {
    let dir = tmp();
    let flushed = {
        let db = Database::open(dir.path()).unwrap();
        history(&db, "c", 6);
        db.flush().unwrap();
        let flushed = contents(&db, "c");
        let c = db.collection("c").unwrap();
        let mut rng = Rng::new(12);
        fault::set_disk_budget(Some(3000));
        let mut failed = None;
        for i in 0..100 {
            if let Err(e) = c.upsert(vec![point(&mut rng, 3000 + i, i)]) {
                failed = Some(e);
                break;
            }
        }
        let err = failed.expect("the budget runs out");
        assert!(
            matches!(&err, Error::Storage(StorageError::Io { kind: std::io::ErrorKind::StorageFull, .. })),
            "{err}"
        );
        // A checkpoint cannot be written either; the previous one stays in charge.
        assert!(c.flush().is_err());
        fault::set_disk_budget(None);
        flushed
    };
    let db = Database::open(dir.path()).unwrap();
    let got = contents(&db, "c");
    // Everything flushed is there; the writes acknowledged before the disk filled may be too.
    for record in &flushed {
        if record.id.to_string().parse::<u64>().is_ok_and(|n| n >= 3000) {
            continue;
        }
        assert!(got.contains(record), "lost {:?}", record.id);
    }
    assert!(got.len() >= flushed.len());
    // With space again, it takes writes and checkpoints.
    let c = db.collection("c").unwrap();
    c.upsert(vec![point(&mut Rng::new(1), 9999u64, 1)]).unwrap();
    c.flush().unwrap();
}

/// A checkpoint writes its files as it reads the state (graph, codes, payload file,
/// points document), each through a buffer: a disk that fills anywhere inside any of
/// them fails the flush with `StorageFull`, keeps the previous checkpoint in charge,
/// and loses nothing the log holds; with space again the next flush succeeds.
/// Runs `op` with the calling thread's disk budget at `budget` bytes; whether it failed
/// on the full disk (`StorageFull`). Any other error fails the test.
fn fails_full<T>(budget: u64, op: impl FnOnce() -> Result<T, Error>) -> bool {
    fault::set_disk_budget(Some(budget));
    let result = op();
    fault::set_disk_budget(None);
    match result {
        Err(Error::Storage(StorageError::Io { kind: std::io::ErrorKind::StorageFull, .. })) => true,
        Err(other) => panic!("budget {budget}: {other}"),
        Ok(_) => false,
    }
}

#[test]
fn a_disk_that_fills_inside_any_checkpoint_file_loses_nothing() {
    const DIM: usize = 64;
    let params = VectorParams::new(DIM, Distance::Cosine).hnsw(8, 32).full_scan_threshold_kb(1);
    let config = CollectionConfig::new()
        .on_disk_payload(true)
        .indexing_threshold_kb(1)
        .vector("v", params.quantization(braid::Quantization::Int8));
    let fill = |c: &braid::Collection, seed: u64, ids: std::ops::Range<u64>| {
        let mut rng = Rng::new(seed);
        let points: Vec<PointStruct> = ids
            .map(|i| {
                PointStruct::new(i)
                    .vector("v", rng.vector(DIM))
                    .payload(json!({"n": i, "text": "x".repeat(40)}))
            })
            .collect();
        c.upsert(points).unwrap();
    };
    // How many bytes a checkpoint of this history writes: what the directory grows by,
    // counting the files it replaces (a bound, not exact).
    let sized = tmp();
    let total = {
        let db = Database::open(sized.path()).unwrap();
        let c = db.create_collection("c", config.clone()).unwrap();
        fill(&c, 1, 0..1100);
        c.flush().unwrap();
        fill(&c, 2, 1100..1400);
        c.flush().unwrap();
        let cdir = collection_dir(sized.path());
        for kind in ["graph-", "codes-", "payloads-", "points-"] {
            assert_eq!(files(&cdir, kind).len(), 1, "one {kind} file");
        }
        ["graph-", "codes-", "payloads-", "points-"]
            .iter()
            .flat_map(|k| files(&cdir, k))
            .map(|f| f.metadata().unwrap().len())
            .sum::<u64>()
    };
    assert!(total > 100_000, "{total}");
    let mut failed = 0;
    for step in 0..24u64 {
        let budget = total * step / 20;
        let dir = tmp();
        let db = Database::open(dir.path()).unwrap();
        let c = db.create_collection("c", config.clone()).unwrap();
        fill(&c, 1, 0..1100);
        c.flush().unwrap();
        fill(&c, 2, 1100..1400);
        let want = contents(&db, "c");
        let before = files(&collection_dir(dir.path()), "");
        if fails_full(budget, || c.flush()) {
            failed += 1;
            let after = files(&collection_dir(dir.path()), "");
            assert_eq!(after, before, "budget {budget}: the failed checkpoint's files are gone");
        }
        drop((c, db));
        let db = Database::open(dir.path()).unwrap();
        assert_eq!(contents(&db, "c"), want, "budget {budget}: reopened");
        let c = db.collection("c").unwrap();
        c.flush().unwrap();
        drop((c, db));
        let db = Database::open(dir.path()).unwrap();
        assert_eq!(contents(&db, "c"), want, "budget {budget}: checkpointed again");
    }
    assert!(failed >= 18, "most budgets end inside the checkpoint: {failed} of 24 failed");
}

#[test]
fn a_compaction_the_disk_fills_under_leaves_the_directory_as_it_found_it() {
    const DIM: usize = 64;
    let params = VectorParams::new(DIM, Distance::Cosine).hnsw(8, 32).full_scan_threshold_kb(1);
    let config = CollectionConfig::new()
        .indexing_threshold_kb(1)
        .vector("v", params.quantization(braid::Quantization::Int8));
    let make = |dir: &Path| {
        let db = Database::open(dir).unwrap();
        let c = db.create_collection("c", config.clone()).unwrap();
        let mut rng = Rng::new(5);
        let points: Vec<PointStruct> = (0..2_000u64)
            .map(|i| PointStruct::new(i).vector("v", rng.vector(DIM)).payload(json!({"n": i})))
            .collect();
        c.upsert(points).unwrap();
        c.flush().unwrap();
        c.delete((0..600u64).map(PointId::from).collect::<Vec<_>>()).unwrap();
        (db, c)
    };
    let names = |dir: &Path| files(&collection_dir(dir), "");
    // What a compaction of this history writes: the files it adds.
    let sized = tmp();
    let total = {
        let (_db, c) = make(sized.path());
        let before = names(sized.path());
        c.compact().unwrap();
        names(sized.path())
            .iter()
            .filter(|f| !before.contains(f))
            .map(|f| f.metadata().unwrap().len())
            .sum::<u64>()
    };
    assert!(total > 300_000, "{total}");
    let mut failed = 0;
    for step in 0..12u64 {
        let budget = total * step / 10;
        let dir = tmp();
        let (db, c) = make(dir.path());
        let want = contents(&db, "c");
        let before = names(dir.path());
        if fails_full(budget, || c.compact()) {
            failed += 1;
            assert_eq!(names(dir.path()), before, "budget {budget}: nothing of the next generation stays");
        }
        assert_eq!(contents(&db, "c"), want, "budget {budget}");
        c.compact().unwrap();
        assert_eq!(contents(&db, "c"), want, "budget {budget}: compacted after all");
        drop((c, db));
        let db = Database::open(dir.path()).unwrap();
        assert_eq!(contents(&db, "c"), want, "budget {budget}: reopened");
    }
    assert!(failed >= 9, "most budgets end inside the compaction: {failed} of 12 failed");
}

#[test]
fn every_write_durability_and_automatic_checkpoints() {
    let dir = tmp();
    let options = StorageOptions {
        durability: Durability::EveryWrite,
        checkpoint_log_bytes: 4096,
        ..StorageOptions::default()
    };
    let before = {
        let db = Database::open_with(dir.path(), options).unwrap();
        history(&db, "c", 9);
        contents(&db, "c")
    };
    // The small log limit made the collection checkpoint by itself along the way.
    assert!(!files(&collection_dir(dir.path()), "points-").is_empty());
    let db = Database::open_with(dir.path(), options).unwrap();
    assert_eq!(contents(&db, "c"), before);
}

#[test]
fn optimize_drops_dead_versions_and_keeps_every_answer_exact() {
    let dir = tmp();
    let db = Database::open(dir.path()).unwrap();
    history(&db, "c", 11);
    let c = db.collection("c").unwrap();
    assert_eq!(c.state(), CollectionState::Ready);
    let before = contents(&db, "c");
    let q = Rng::new(3).vector(8);
    let exact = |c: &braid::Collection| {
        c.search(&SearchRequest::new("text", q.clone()).limit(20).params(SearchParams::EXACT)).unwrap()
    };
    let answer = exact(&c);
    // Under Qdrant's 20 % threshold there is nothing to vacuum yet: only a flush.
    assert!(c.optimize_if(0.99).unwrap().dropped == 0);
    let report = c.compact().unwrap();
    assert!(report.dropped > 0);
    assert_eq!(report.kept, before.len());
    assert_eq!(contents(&db, "c"), before);
    assert_eq!(exact(&c), answer);
    c.rebuild_index("image").unwrap();
    assert!(matches!(c.rebuild_index("nope"), Err(Error::UnknownVector { .. })));
    assert_eq!(c.state(), CollectionState::Ready);
    drop((c, db));
    let db = Database::open(dir.path()).unwrap();
    assert_eq!(contents(&db, "c"), before);
    assert_eq!(exact(&db.collection("c").unwrap()), answer);
}

#[test]
fn a_file_from_a_future_version_is_named() {
    let dir = tmp();
    logged(dir.path(), 0);
    let manifest = collection_dir(dir.path()).join("MANIFEST");
    let mut bytes = std::fs::read(&manifest).unwrap();
    bytes[8] = 9;
    // Recompute the checksum so that only the version is wrong.
    let end = bytes.len() - 4;
    let crc = crc32c(&bytes[..end]);
    bytes[end..].copy_from_slice(&crc.to_le_bytes());
    std::fs::write(&manifest, &bytes).unwrap();
    let err = Database::open(dir.path()).unwrap_err();
    assert!(matches!(&err, Error::Storage(StorageError::UnsupportedVersion { found: 9, .. })), "{err}");
}

/// crc32c (Castagnoli), bit by bit: the test's own reference.
fn crc32c(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0x82F6_3B78 } else { crc >> 1 };
        }
    }
    !crc
}

#[test]
fn readers_keep_answering_while_the_collection_is_compacted() {
    let dir = tmp();
    // No background optimiser: this test compacts by hand and counts what it drops.
    let options = StorageOptions { optimize_every: None, ..StorageOptions::default() };
    let db = Database::open_with(dir.path(), options).unwrap();
    let c = db
        .create_collection(
            "big",
            CollectionConfig::new().vector("v", VectorParams::new(16, Distance::Dot).hnsw(16, 100)),
        )
        .unwrap();
    let mut rng = Rng::new(21);
    for start in (0..20_000u64).step_by(5_000) {
        c.upsert((start..start + 5_000).map(|i| PointStruct::new(i).vector("v", rng.vector(16))).collect())
            .unwrap();
    }
    c.delete((0..5_000u64).map(PointId::from).collect::<Vec<_>>()).unwrap();
    let q = rng.vector(16);
    let expected =
        c.search(&SearchRequest::new("v", q.clone()).limit(5).params(SearchParams::EXACT)).unwrap();
    std::thread::scope(|s| {
        let compacting = s.spawn(|| c.compact().unwrap());
        let mut answered_while_optimizing = 0;
        while !compacting.is_finished() {
            let state = c.state();
            let got =
                c.search(&SearchRequest::new("v", q.clone()).limit(5).params(SearchParams::EXACT)).unwrap();
            assert_eq!(got, expected);
            if state == CollectionState::Optimizing && c.state() == CollectionState::Optimizing {
                answered_while_optimizing += 1;
            }
        }
        assert!(answered_while_optimizing > 0, "no search ran while the compaction did");
        assert_eq!(compacting.join().unwrap().dropped, 5_000);
    });
    assert_eq!(c.count(None).unwrap(), 15_000);
}

#[test]
fn writers_go_on_while_the_collection_is_compacted_and_nothing_they_wrote_is_lost() {
    let dir = tmp();
    let options = StorageOptions { optimize_every: None, ..StorageOptions::default() };
    let config = CollectionConfig::new().vector("v", VectorParams::new(16, Distance::Dot).hnsw(16, 100));
    let mut rng = Rng::new(22);
    let (written, payloads, dead_after) = {
        let db = Database::open_with(dir.path(), options).unwrap();
        let c = db.create_collection("big", config.clone()).unwrap();
        c.create_payload_index("tag", IndexKind::Integer).unwrap();
        for start in (0..20_000u64).step_by(5_000) {
            c.upsert(
                (start..start + 5_000).map(|i| PointStruct::new(i).vector("v", rng.vector(16))).collect(),
            )
            .unwrap();
        }
        c.delete((0..5_000u64).map(PointId::from).collect::<Vec<_>>()).unwrap();
        std::thread::scope(|s| {
            let compacting = s.spawn(|| c.compact().unwrap());
            while c.state() != CollectionState::Optimizing {
                assert!(!compacting.is_finished(), "the compaction ended before it was seen");
                std::thread::yield_now();
            }
            // Each round replaces one old point, adds a new one, deletes one and tags
            // one, so the rebuilt segment must take all four kinds of write.
            let (mut round, mut while_optimizing) = (0u64, 0);
            while !compacting.is_finished() {
                let before = c.state();
                c.upsert(vec![
                    PointStruct::new(5_000 + round).vector("v", rng.vector(16)),
                    PointStruct::new(100_000 + round).vector("v", rng.vector(16)),
                ])
                .unwrap();
                c.delete(vec![PointId::from(10_000 + round)]).unwrap();
                c.set_payload(vec![PointId::from(15_000 + round)], json!({"tag": round})).unwrap();
                // Checkpoints meanwhile: their sweeps keep the next generation's vector
                // files, which the rebuild is writing its rows into.
                if round % 4 == 0 {
                    c.flush().unwrap();
                }
                if before == CollectionState::Optimizing && c.state() == CollectionState::Optimizing {
                    while_optimizing += 1;
                }
                round += 1;
            }
            let report = compacting.join().unwrap();
            assert!(while_optimizing > 0, "no write finished while the compaction ran ({round} rounds)");
            assert_eq!(report.dropped, 5_000);
            // What was written during the rebuild was applied to the rebuilt segment.
            // Each round adds one point and deletes one.
            assert_eq!(c.count(None).unwrap(), 15_000);
            for r in 0..round {
                assert!(
                    c.get(&[PointId::from(100_000 + r)], false, false).unwrap().len() == 1,
                    "new point {r}"
                );
                assert!(c.get(&[PointId::from(10_000 + r)], false, false).unwrap().is_empty(), "deleted {r}");
            }
            let tagged = c.count(Some(&braid::Filter::must([field("tag").gte(0.0)]))).unwrap();
            assert_eq!(tagged, round as usize);
            (round, contents_of(&c), c.info().dead_versions)
        })
    };
    assert!(written > 0);
    // The versions replaced or deleted during the rebuild are dead in the new segment.
    assert!(dead_after >= 2 * written as usize, "{dead_after} dead after {written} rounds");
    let db = Database::open_with(dir.path(), options).unwrap();
    assert_eq!(contents_of(&db.collection("big").unwrap()), payloads, "a reopen answers as before");
}

fn contents_of(c: &braid::Collection) -> Vec<Record> {
    let (mut records, mut next) = (Vec::new(), None);
    loop {
        let (page, after) = c.scroll(None, 10_000, next, true, true).unwrap();
        records.extend(page);
        match after {
            Some(id) => next = Some(id),
            None => return records,
        }
    }
}

#[test]
fn the_background_optimiser_compacts_without_changing_anything_visible() {
    let dir = tmp();
    let options = StorageOptions {
        optimize_every: Some(std::time::Duration::from_millis(10)),
        vacuum_share: 0.2,
        vacuum_min: 10,
        ..StorageOptions::default()
    };
    let db = Database::open_with(dir.path(), options).unwrap();
    history(&db, "c", 17);
    let c = db.collection("c").unwrap();
    let before = contents(&db, "c");
    let answered = answers(&db, "c");
    c.delete((100..200u64).map(PointId::from).collect::<Vec<_>>()).unwrap();
    let after_delete = contents(&db, "c");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while c.info().dead_versions > 0 {
        assert!(std::time::Instant::now() < deadline, "the optimiser never compacted");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(contents(&db, "c"), after_delete);
    assert!(after_delete.len() < before.len() && !answered.is_empty());
    // Dropping the database waits for the optimiser, so the directory reopens at once.
    drop((c, db));
    let db = Database::open_with(dir.path(), options).unwrap();
    assert_eq!(contents(&db, "c"), after_delete);
}

#[test]
fn set_payload_at_a_key_merges_into_the_nested_object() {
    let db = Database::in_memory();
    let c = db.create_collection("c", config()).unwrap();
    let mut rng = Rng::new(1);
    c.upsert(vec![
        PointStruct::new(1u64).vector("text", rng.vector(8)).payload(json!({"a": {"b": 1}, "z": 0})),
        PointStruct::new(2u64).vector("text", rng.vector(8)).payload(json!({"a": 5})),
    ])
    .unwrap();
    c.set_payload_at(vec![PointId::from(1u64), 2u64.into()], "a", json!({"c": 2})).unwrap();
    c.set_payload_at(vec![PointId::from(1u64)], "new.deep", json!({"d": true})).unwrap();
    let got = c.get(&[1u64.into(), 2u64.into()], true, false).unwrap();
    assert_eq!(got[0].payload, Some(json!({"a": {"b": 1, "c": 2}, "z": 0, "new": {"deep": {"d": true}}})));
    // A non-object on the path is replaced by an object, as Qdrant does.
    assert_eq!(got[1].payload, Some(json!({"a": {"c": 2}})));
    // Array steps are served (tests/payload_writes.rs); malformed paths are not.
    for bad in ["", "a..b", "a[", "[0]"] {
        assert!(
            matches!(
                c.set_payload_at(vec![PointId::from(1u64)], bad, json!({"x": 1})),
                Err(Error::InvalidKey { .. })
            ),
            "{bad}"
        );
    }
    assert!(matches!(
        c.set_payload_at(vec![PointId::from(1u64)], "a", json!([1])),
        Err(Error::PayloadNotObject)
    ));
}
