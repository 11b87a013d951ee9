//! The joints between the facade and its files: a refused write never comes back, a
//! failed sync is visible and stops writes, files a manifest names are never
//! rewritten, replay refuses records that do not fit, and payloads cannot nest
//! deeper than they can be read back.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use braid::storage::{StorageError, fault};
use braid::{
    CollectionConfig, Database, Distance, Durability, Error, MAX_KEY_BYTES, MAX_PAYLOAD_DEPTH, PointId,
    PointStruct, StorageOptions, Task, VectorParams,
};
use serde_json::{Value, json};

fn config(dim: usize) -> CollectionConfig {
    CollectionConfig::new().vector("v", VectorParams::new(dim, Distance::Dot).hnsw(8, 32))
}

fn options(durability: Durability) -> StorageOptions {
    StorageOptions { durability, optimize_every: None, ..StorageOptions::default() }
}

fn point(id: u64, dim: usize) -> PointStruct {
    PointStruct::new(id).vector("v", (0..dim).map(|j| (id as f32 + j as f32) / 10.0).collect())
}

fn ids(db: &Database) -> Vec<PointId> {
    let c = db.collection("c").unwrap();
    c.scroll(None, 1000, None, false, false).unwrap().0.into_iter().map(|r| r.id).collect()
}

#[test]
fn a_write_whose_sync_failed_is_refused_and_never_replayed() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = Database::open_with(dir.path(), options(Durability::EveryWrite)).unwrap();
        let c = db.create_collection("c", config(4)).unwrap();
        c.upsert(vec![point(1, 4)]).unwrap();
        fault::fail_next_syncs(1);
        let err = c.upsert(vec![point(2, 4)]).unwrap_err();
        assert!(matches!(err, Error::Storage(StorageError::Io { .. })), "{err}");
        // The refused write is not visible, and the poisoned log refuses the next one.
        assert_eq!(ids(&db), vec![PointId::from(1)]);
        let err = c.upsert(vec![point(3, 4)]).unwrap_err();
        assert!(matches!(err, Error::Storage(StorageError::Poisoned { .. })), "{err}");
        assert!(c.failures().is_empty(), "a foreground failure is the caller's error, not a background one");
    }
    let db = Database::open_with(dir.path(), options(Durability::EveryWrite)).unwrap();
    assert_eq!(ids(&db), vec![PointId::from(1)], "the refused write came back");
    // Reopened, the log takes writes again.
    db.collection("c").unwrap().upsert(vec![point(4, 4)]).unwrap();
    assert_eq!(ids(&db), vec![PointId::from(1), PointId::from(4)]);
}

#[test]
fn a_failed_background_sync_is_reported_and_stops_writes_until_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = Database::open_with(dir.path(), options(Durability::OnFlush)).unwrap();
        let c = db.create_collection("c", config(4)).unwrap();
        c.upsert(vec![point(1, 4)]).unwrap();
        db.sync().unwrap();
        fault::fail_next_syncs(1);
        assert!(db.sync().is_err());
        let failures = c.failures();
        assert_eq!(failures.keys().copied().collect::<Vec<_>>(), vec![Task::Sync]);
        assert_eq!(db.failures().len(), 1);
        let err = c.upsert(vec![point(2, 4)]).unwrap_err();
        assert!(matches!(err, Error::Storage(StorageError::Poisoned { .. })), "{err}");
        // Reads go on.
        assert_eq!(ids(&db), vec![PointId::from(1)]);
    }
    let db = Database::open(dir.path()).unwrap();
    assert_eq!(ids(&db), vec![PointId::from(1)]);
    assert!(db.failures().is_empty());
}

/// Every file in `dir` with its bytes.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect()
}

fn collection_dir(db: &Path) -> PathBuf {
    std::fs::read_dir(db)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.is_dir() && p.file_name().unwrap().to_string_lossy().starts_with("c-"))
        .unwrap()
}

/// Checkpoints and compactions write new files beside the live ones; a live file may
/// only grow (vector rows appended past the count its manifest records) or be removed
/// once the new manifest is in place. A crash in the middle then always leaves the old
/// manifest's files intact.
#[test]
fn checkpoints_and_compactions_never_rewrite_a_live_file() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = Database::open_with(dir.path(), options(Durability::OnFlush)).unwrap();
        let c = db.create_collection("c", config(4)).unwrap();
        c.upsert((0..100).map(|i| point(i, 4)).collect()).unwrap();
        c.delete((0..40).map(PointId::from).collect::<Vec<_>>()).unwrap();
        c.flush().unwrap();
    }
    // Reopened with nothing in the log, the next checkpoint falls at the same log
    // position as the last one: the case that used to reuse its file names.
    let db = Database::open_with(dir.path(), options(Durability::OnFlush)).unwrap();
    let c = db.collection("c").unwrap();
    let cdir = collection_dir(dir.path());
    for step in ["rebuild", "compact", "flush"] {
        let before = snapshot(&cdir);
        match step {
            "rebuild" => c.rebuild_index("v").unwrap(),
            "compact" => assert_eq!(c.compact().unwrap().dropped, 40),
            _ => c.flush().unwrap(),
        }
        for (path, bytes) in &before {
            if path.ends_with("MANIFEST") {
                continue; // replaced by rename, never written in place
            }
            if let Ok(now) = std::fs::read(path) {
                assert!(now.starts_with(bytes), "{step} rewrote live file {}", path.display());
            }
        }
    }
    drop((c, db));
    let db = Database::open(dir.path()).unwrap();
    assert_eq!(ids(&db), (40..100).map(PointId::from).collect::<Vec<_>>());
}

#[test]
fn replay_refuses_a_record_that_does_not_fit_the_collection() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = Database::open_with(dir.path(), options(Durability::EveryWrite)).unwrap();
        db.create_collection("c", config(4)).unwrap().upsert(vec![point(1, 4)]).unwrap();
        db.create_collection("d", config(8)).unwrap().upsert(vec![point(1, 8)]).unwrap();
    }
    // Give `c` the log of `d`: checksums hold, but its vectors have 8 components.
    let mut dirs: Vec<PathBuf> =
        std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().path()).filter(|p| p.is_dir()).collect();
    dirs.sort();
    let log = |d: &Path| {
        std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.file_name().unwrap().to_string_lossy().starts_with("wal-"))
    };
    let (c_log, d_log) = (log(&dirs[0]).unwrap(), log(&dirs[1]).unwrap());
    std::fs::copy(&d_log, &c_log).unwrap();
    let err = Database::open(dir.path()).unwrap_err();
    match err {
        Error::Storage(StorageError::Corrupt { file, why, .. }) => {
            assert_eq!(file, c_log);
            assert!(why.contains("dimension"), "{why}");
        }
        other => panic!("expected a corrupt-log error, got {other}"),
    }
}

fn nested(levels: usize) -> Value {
    let mut v = json!(1);
    for _ in 0..levels {
        v = json!({ "a": v });
    }
    v
}

#[test]
fn payloads_nest_at_most_the_documented_depth_and_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = Database::open(dir.path()).unwrap();
        let c = db.create_collection("c", config(4)).unwrap();
        c.upsert(vec![point(1, 4).payload(nested(MAX_PAYLOAD_DEPTH))]).unwrap();
        let err = c.upsert(vec![point(2, 4).payload(nested(MAX_PAYLOAD_DEPTH + 1))]).unwrap_err();
        assert!(
            matches!(err, Error::PayloadTooDeep { depth, max } if depth == MAX_PAYLOAD_DEPTH + 1 && max == MAX_PAYLOAD_DEPTH),
            "{err}"
        );
        let err = c.set_payload(vec![PointId::from(1)], nested(200)).unwrap_err();
        assert!(matches!(err, Error::PayloadTooDeep { .. }), "{err}");
        // A dotted key's parts are levels too: 200 parts cannot be stored.
        let key = vec!["k"; 200].join(".");
        let err = c.set_payload_at(vec![PointId::from(1)], &key, json!({"x": 1})).unwrap_err();
        assert!(matches!(err, Error::PayloadTooDeep { depth: 201, .. }), "{err}");
        // Nor can a key of 200,000 parts, refused by its length before it is split.
        let key = vec!["k"; 200_000].join(".");
        let err = c.set_payload_at(vec![PointId::from(1)], &key, json!({"x": 1})).unwrap_err();
        assert!(matches!(err, Error::KeyTooLong { max: MAX_KEY_BYTES, .. }), "{err}");
        // At the limit, it is stored.
        let key = vec!["k"; MAX_PAYLOAD_DEPTH - 1].join(".");
        c.set_payload_at(vec![PointId::from(1)], &key, json!({"x": 1})).unwrap();
        c.flush().unwrap();
        c.set_payload_at(vec![PointId::from(1)], &key, json!({"y": 2})).unwrap();
    }
    // Reopened from the checkpoint and the log alike.
    let db = Database::open(dir.path()).unwrap();
    let got = db.collection("c").unwrap().get(&[PointId::from(1)], true, false).unwrap();
    let mut at = got[0].payload.as_ref().unwrap();
    for _ in 0..MAX_PAYLOAD_DEPTH - 1 {
        at = &at["k"];
    }
    assert_eq!(at, &json!({"x": 1, "y": 2}));
}

/// Queries issued from inside rayon's pool while writers run. A fused query fans its
/// prefetches out on the same pool while holding the segment's read guard; a pool
/// thread that blocked on the fair read lock behind a waiting writer would deadlock
/// with the thread holding that guard. A watchdog turns a hang into a failure.
#[test]
fn queries_from_inside_the_pool_never_deadlock_with_writers() {
    use rayon::prelude::*;
    let db = Database::in_memory();
    let c = db.create_collection("c", config(16)).unwrap();
    c.upsert((0..500).map(|i| point(i, 16)).collect()).unwrap();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watchdog = {
        let done = done.clone();
        std::thread::spawn(move || {
            for _ in 0..1200 {
                if done.load(std::sync::atomic::Ordering::Acquire) {
                    return;
                }
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            eprintln!("queries inside the pool and writers deadlocked");
            std::process::abort();
        })
    };
    let writer = {
        let (c, done) = (c.clone(), done.clone());
        std::thread::spawn(move || {
            let mut id = 1000;
            while !done.load(std::sync::atomic::Ordering::Acquire) {
                c.upsert((id..id + 20).map(|i| point(i, 16)).collect()).unwrap();
                id += 20;
            }
        })
    };
    let query = |i: u64| {
        let v: Vec<f32> = (0..16).map(|j| ((i + j) % 7) as f32).collect();
        braid::QueryRequest::fusion(
            braid::Fusion::rrf(),
            (0..4).map(|k| braid::Prefetch::nearest("v", v.clone(), 10 + k)).collect(),
        )
    };
    let answered: usize =
        (0..3000u32).into_par_iter().with_max_len(1).map(|i| c.query(query(i.into())).unwrap().len()).sum();
    done.store(true, std::sync::atomic::Ordering::Release);
    writer.join().unwrap();
    watchdog.join().unwrap();
    assert_eq!(answered, 3000 * 10);
}
