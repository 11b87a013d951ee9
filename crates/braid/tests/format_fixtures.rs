//! Committed databases written by earlier builds, opened by this one.
//!
//! `tests/fixtures/format-v1/` was written by the build at 65a8bfc (file format 1,
//! checkpoint files named by sequence number): a checkpoint plus a log tail. Every later
//! build must open it and answer as below. The expected values come from the formulas
//! that made the points, not from the code under test.
//!
//! To write a fixture for a new format, set `BRAID_WRITE_FIXTURE=<dir>`: the test then
//! writes [`write_fixture`]'s database there before checking the committed ones.

use std::path::{Path, PathBuf};

use braid::{
    CollectionConfig, Database, Distance, IndexKind, PointId, PointStruct, SearchParams, SearchRequest,
    StorageOptions, Uuid, VectorParams, field,
};
use serde_json::json;

const POINTS: u64 = 60;
const DELETED: u64 = 10;

fn config() -> CollectionConfig {
    CollectionConfig::new()
        .vector("text", VectorParams::new(8, Distance::Cosine).hnsw(8, 32))
        .vector("image", VectorParams::new(4, Distance::Euclid).hnsw(8, 32))
        .vector("big", VectorParams::new(64, Distance::Dot).hnsw(8, 32))
}

fn vector(i: u64, dim: usize, salt: u64) -> Vec<f32> {
    (0..dim as u64).map(|j| ((i * 7 + j * 3 + salt) % 11) as f32 - 4.5 + i as f32 / 64.0).collect()
}

fn cat(i: u64) -> &'static str {
    ["a", "b", "c"][(i % 3) as usize]
}

/// The database every format fixture holds: a checkpoint of 60 points with an index,
/// then (in the log only) ten deletes, a payload edit and one more point.
fn write_fixture(dir: &Path) {
    let options = StorageOptions { optimize_every: None, ..StorageOptions::default() };
    let db = Database::open_with(dir, options).unwrap();
    let c = db.create_collection("docs", config()).unwrap();
    c.create_payload_index("cat", IndexKind::Keyword).unwrap();
    let points = (0..POINTS)
        .map(|i| {
            let mut p = PointStruct::new(i)
                .vector("text", vector(i, 8, 0))
                .vector("big", vector(i, 64, 5))
                .payload(json!({"cat": cat(i), "n": i}));
            if i % 4 != 0 {
                p = p.vector("image", vector(i, 4, 1));
            }
            p
        })
        .collect();
    c.upsert(points).unwrap();
    c.flush().unwrap();
    c.delete((0..DELETED).map(PointId::from).collect::<Vec<_>>()).unwrap();
    c.set_payload(vec![PointId::from(20)], json!({"flag": true})).unwrap();
    c.upsert(vec![PointStruct::new(Uuid::from_u128(0xF1)).vector("text", vector(99, 8, 0))]).unwrap();
    db.sync().unwrap();
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

fn check(dir: &Path) {
    let db = Database::open(dir).unwrap();
    let c = db.collection("docs").unwrap();
    assert_eq!(c.count(None).unwrap() as u64, POINTS - DELETED + 1);
    let b = (DELETED..POINTS).filter(|i| i % 3 == 1).count();
    assert_eq!(c.count(Some(&braid::Filter::must([field("cat").eq("b")]))).unwrap(), b);
    let got = c.get(&[PointId::from(20), PointId::from(3)], true, true).unwrap();
    assert_eq!(got.len(), 1, "point 3 was deleted");
    assert_eq!(got[0].payload, Some(json!({"cat": cat(20), "n": 20, "flag": true})));
    let vectors = got[0].vectors.as_ref().unwrap();
    assert!(!vectors.contains_key("image"), "every fourth point has no image vector");
    assert_eq!(vectors["big"], vector(20, 64, 5), "Dot stores the vector as given");
    // Cosine vectors are stored normalised.
    let raw = vector(20, 8, 0);
    let norm = raw.iter().map(|x| x * x).sum::<f32>().sqrt();
    for (s, r) in vectors["text"].iter().zip(&raw) {
        assert!((s - r / norm).abs() < 1e-6);
    }
    // Nearest in `image` to point 21's own vector is point 21 at distance 0.
    let exact = SearchParams::EXACT;
    let hits = c.search(&SearchRequest::new("image", vector(21, 4, 1)).limit(1).params(exact)).unwrap();
    assert_eq!((hits[0].id, hits[0].score), (PointId::from(21), 0.0));
    let hits = c.search(&SearchRequest::new("text", vector(99, 8, 0)).limit(1)).unwrap();
    assert_eq!(hits[0].id, PointId::Uuid(Uuid::from_u128(0xF1)));
    // Writes after the reopen go on and survive another one.
    c.upsert(vec![PointStruct::new(1000u64).vector("image", vec![1.0, 2.0, 3.0, 4.0])]).unwrap();
    c.flush().unwrap();
    drop((c, db));
    let db = Database::open(dir).unwrap();
    assert_eq!(db.collection("docs").unwrap().count(None).unwrap() as u64, POINTS - DELETED + 2);
}

#[test]
fn every_committed_format_opens_and_answers() {
    if let Some(out) = std::env::var_os("BRAID_WRITE_FIXTURE") {
        write_fixture(Path::new(&out));
    }
    // One directory per format: add the next one here when the format changes.
    let committed = std::fs::read_dir(fixture("")).unwrap().count();
    assert_eq!(committed, 1, "a fixture directory is not checked");
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&fixture("format-v1"), dir.path());
    check(dir.path());
}
