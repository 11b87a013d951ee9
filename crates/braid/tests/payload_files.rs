//! `on_disk_payload`: payloads kept in a payload file each checkpoint writes, read from
//! its mapping as they are asked for, with the writes since held in memory beside it.
//! Whatever holds them, a collection answers the same: reads, filters on indexed and
//! unindexed keys, payload edits, deletes, reopens with and without a replayed log,
//! compaction, switching the setting either way; damage is a typed error at open.

use braid::{CollectionConfig, Database, Distance, Filter, IndexKind, PointId, PointStruct, VectorParams};
use serde_json::{Value, json};

const N: u64 = 300;

fn config(on_disk: bool) -> CollectionConfig {
    CollectionConfig::new().vector("v", VectorParams::new(4, Distance::Cosine)).on_disk_payload(on_disk)
}

fn payload(i: u64) -> Value {
    let tag = ["red", "green", "blue"][i as usize % 3];
    json!({"n": i, "tag": tag, "text": format!("point number {i}"), "nested": {"odd": i % 2 == 1}})
}

fn points(range: std::ops::Range<u64>) -> Vec<PointStruct> {
    range
        .map(|i| {
            PointStruct::new(i).vector("v", vec![1.0, i as f32, (i % 7) as f32, 0.5]).payload(payload(i))
        })
        .collect()
}

/// The payload files of every collection in the database directory `dir`.
fn payloads_dir_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    braid_testkit::collection_files(dir, "payloads-")
}

/// Everything a reader sees of the payloads: every point's payload, and the ids three
/// filters select (an indexed key, an unindexed nested key, a full-text-free match on
/// an unindexed string).
fn observed(c: &braid::Collection) -> (Vec<(PointId, Value)>, Vec<Vec<PointId>>) {
    let (records, next) = c.scroll(None, 1_000, None, true, false).unwrap();
    assert!(next.is_none());
    let all = records.into_iter().map(|r| (r.id, r.payload.unwrap_or(Value::Null))).collect();
    let filters = [
        json!({"must": [{"key": "tag", "match": {"value": "green"}}]}),
        json!({"must": [{"key": "nested.odd", "match": {"value": true}}]}),
        json!({"must": [{"key": "text", "match": {"value": "point number 7"}}]}),
    ];
    let selected = filters
        .iter()
        .map(|f| {
            let filter = Filter::from_json(f).unwrap();
            let (hits, _) = c.scroll(Some(&filter), 1_000, None, false, false).unwrap();
            hits.into_iter().map(|r| r.id).collect()
        })
        .collect();
    (all, selected)
}

#[test]
fn payloads_read_from_their_file_answer_as_payloads_in_memory() {
    let (on, off) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let open = |dir: &tempfile::TempDir, on_disk: bool| {
        let db = Database::open(dir.path()).unwrap();
        let c = db.get_or_create("c", config(on_disk)).unwrap();
        (db, c)
    };
    // The same writes to a collection holding payloads on disk and one in memory.
    let write = |c: &braid::Collection, step: u32| match step {
        0 => {
            c.create_payload_index("tag", IndexKind::Keyword).unwrap();
            c.upsert(points(0..N)).unwrap();
        }
        1 => {
            c.set_payload(vec![PointId::from(3), 4.into()], json!({"tag": "green", "extra": 1})).unwrap();
            c.delete_payload(vec![PointId::from(5)], &["nested"]).unwrap();
            c.delete(vec![PointId::from(6), 7.into()]).unwrap();
            c.upsert(points(N..N + 20)).unwrap();
        }
        _ => {
            c.overwrite_payload(vec![PointId::from(8)], json!({"tag": "green", "text": "point number 7"}))
                .unwrap();
            c.clear_payload(vec![PointId::from(9)]).unwrap();
        }
    };
    let (db_on, c_on) = open(&on, true);
    let (_db_off, c_off) = open(&off, false);
    write(&c_on, 0);
    write(&c_off, 0);
    // Before the first checkpoint every payload is in memory.
    assert_eq!(c_on.info().payloads.in_memory, N as usize);
    assert_eq!(c_on.info().payloads.file_bytes, 0);
    c_on.flush().unwrap();
    c_off.flush().unwrap();
    let info = c_on.info();
    assert_eq!((info.payloads.in_memory, info.config.on_disk_payload), (0, true));
    assert!(info.payloads.file_bytes > N as usize * 40, "{:?}", info.payloads);
    assert_eq!(c_off.info().payloads, braid::PayloadResidency { in_memory: N as usize, file_bytes: 0 });
    assert_eq!(payloads_dir_files(on.path()).len(), 1);
    assert!(payloads_dir_files(off.path()).is_empty());
    assert_eq!(observed(&c_on), observed(&c_off));
    // Edits after the checkpoint sit in memory beside the file.
    write(&c_on, 1);
    write(&c_off, 1);
    assert_eq!(c_on.info().payloads.in_memory, 2 + 1 + 20, "edited, trimmed and new payloads");
    assert_eq!(observed(&c_on), observed(&c_off));
    let (all, selected) = observed(&c_on);
    assert_eq!(all.iter().find(|(id, _)| *id == PointId::from(3)).unwrap().1["extra"], json!(1));
    assert!(selected[0].contains(&PointId::from(3)) && selected[0].contains(&PointId::from(4)));
    assert!(!all.iter().any(|(id, _)| *id == PointId::from(6)));
    // Reopened with the edits in the log only, then after another checkpoint.
    drop(c_on);
    drop(db_on);
    let (db_on, c_on) = open(&on, true);
    assert_eq!(observed(&c_on), observed(&c_off), "the log replayed over the file");
    write(&c_on, 2);
    write(&c_off, 2);
    c_on.flush().unwrap();
    assert_eq!(c_on.info().payloads.in_memory, 0);
    assert_eq!(payloads_dir_files(on.path()).len(), 1, "the checkpoint replaced the file");
    drop(c_on);
    drop(db_on);
    let (db_on, c_on) = open(&on, true);
    assert_eq!(observed(&c_on), observed(&c_off), "reopened from the new file");
    // A compaction rewrites the file without the deleted points.
    c_on.compact().unwrap();
    c_off.compact().unwrap();
    assert_eq!(c_on.info().payloads.in_memory, 0);
    assert_eq!(observed(&c_on), observed(&c_off), "after compaction");
    drop(c_on);
    drop(db_on);
    let (db_on, c_on) = open(&on, true);
    assert_eq!(observed(&c_on), observed(&c_off), "compacted and reopened");
    // Off: every payload back in memory and the file gone; on again: a new file.
    c_on.reconfigure(config(false)).unwrap();
    let info = c_on.info();
    // Point 9's payload was cleared: an empty payload is not held.
    assert_eq!((info.payloads.in_memory, info.payloads.file_bytes), (c_on.count(None).unwrap() - 1, 0));
    assert!(payloads_dir_files(on.path()).is_empty());
    assert_eq!(observed(&c_on), observed(&c_off), "read back into memory");
    c_on.reconfigure(config(true)).unwrap();
    assert_eq!(c_on.info().payloads.in_memory, 0);
    assert_eq!(payloads_dir_files(on.path()).len(), 1);
    assert_eq!(observed(&c_on), observed(&c_off), "written out again");
    drop(c_on);
    drop(db_on);
    let (_db_on, c_on) = open(&on, true);
    assert_eq!(observed(&c_on), observed(&c_off), "reopened after both switches");
}

#[test]
fn a_snapshot_carries_the_payload_file() {
    let (dir, snapshots) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let db = Database::open(dir.path()).unwrap();
    let c = db.create_collection("c", config(true)).unwrap();
    c.create_payload_index("tag", IndexKind::Keyword).unwrap();
    c.upsert(points(0..100)).unwrap();
    c.flush().unwrap();
    // Written after the checkpoint: in the log the snapshot carries, not in the file.
    c.set_payload(vec![PointId::from(1)], json!({"late": true})).unwrap();
    let taken = db.snapshot_collection("c", snapshots.path()).unwrap();
    let copy = db.recover_collection("copy", &snapshots.path().join(&taken.name), None).unwrap();
    assert!(copy.info().config.on_disk_payload);
    assert_eq!(observed(&copy), observed(&c));
    assert_eq!(
        copy.get(&[PointId::from(1)], true, false).unwrap()[0].payload.as_ref().unwrap()["late"],
        json!(true)
    );
}

#[test]
fn an_in_memory_database_refuses_payloads_on_disk() {
    let db = Database::in_memory();
    let err = db.create_collection("c", config(true)).unwrap_err();
    assert!(matches!(&err, braid::Error::InvalidConfig { why } if why.contains("on_disk_payload")), "{err}");
    let c = db.create_collection("c", config(false)).unwrap();
    let err = c.reconfigure(config(true)).unwrap_err();
    assert!(matches!(&err, braid::Error::InvalidConfig { why } if why.contains("on_disk_payload")), "{err}");
    assert!(!c.info().config.on_disk_payload);
}

#[test]
fn a_damaged_payload_file_is_a_typed_error_at_open() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = Database::open(dir.path()).unwrap();
        let c = db.create_collection("c", config(true)).unwrap();
        c.upsert(points(0..50)).unwrap();
        c.flush().unwrap();
    }
    let file = payloads_dir_files(dir.path()).remove(0);
    braid_testkit::with_each_byte_flipped(
        &file,
        0x08,
        |len| vec![0, 12, 30, len / 2, len - 1],
        |at| {
            let opened = Database::open(dir.path());
            assert!(matches!(&opened, Err(braid::Error::Storage(_))), "byte {at}: {:?}", opened.err());
        },
    );
    let db = Database::open(dir.path()).unwrap();
    assert_eq!(
        db.collection("c").unwrap().get(&[PointId::from(7)], true, false).unwrap()[0].payload,
        Some(payload(7))
    );
}
