//! Replicated entries (#19): writes logged as part of an entry, the entry closed, and
//! where they stand read back after reopens, checkpoints and compactions — the mark a
//! shard replica resumes from.

use braid::{CollectionConfig, Database, Distance, EntryMark, PointId, PointStruct, VectorParams};

fn config() -> CollectionConfig {
    CollectionConfig::new().vector("v", VectorParams::new(2, Distance::Dot))
}

fn point(id: u64) -> Vec<PointStruct> {
    vec![PointStruct::new(id).vector("v", vec![id as f32, 1.0])]
}

fn mark(closed: Option<&[u8]>, open: Option<(&[u8], u32)>) -> EntryMark {
    EntryMark { closed: closed.map(<[u8]>::to_vec), open: open.map(|(p, i)| (p.to_vec(), i)) }
}

#[test]
fn entry_marks_are_what_the_log_and_the_checkpoint_hold() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = Database::open(dir.path()).unwrap();
        let c = db.create_collection("c", config()).unwrap();
        let other = db.create_collection("other", config()).unwrap();
        assert_eq!(c.entry_mark(), EntryMark::default());
        c.write_in_entry(b"A", 1, |c| c.upsert(point(1))).unwrap();
        c.write_in_entry(b"A", 2, |c| c.upsert(point(2))).unwrap();
        assert_eq!(c.entry_mark(), mark(None, Some((b"A", 2))));
        c.close_entry(b"A").unwrap();
        c.write_in_entry(b"B", 1, |c| c.upsert(point(3))).unwrap();
        // A write that changes nothing logs nothing: the mark stays at write 1.
        assert_eq!(c.write_in_entry(b"B", 2, |c| c.delete(vec![PointId::Num(99)])).unwrap(), 0);
        // Writes outside the entry, or to another collection inside it, are not its.
        c.upsert(point(4)).unwrap();
        c.write_in_entry(b"B", 3, |_| other.upsert(point(5))).unwrap();
        assert_eq!(other.entry_mark(), EntryMark::default());
        assert_eq!(c.entry_mark(), mark(Some(b"A"), Some((b"B", 1))));
    }
    // From the log alone.
    let db = Database::open(dir.path()).unwrap();
    let c = db.collection("c").unwrap();
    assert_eq!(c.entry_mark(), mark(Some(b"A"), Some((b"B", 1))));
    assert_eq!(c.info().points_count, 4);
    // From the checkpoint's manifest (the log after it empty).
    c.flush().unwrap();
    drop((c, db));
    let db = Database::open(dir.path()).unwrap();
    let c = db.collection("c").unwrap();
    assert_eq!(c.entry_mark(), mark(Some(b"A"), Some((b"B", 1))));
    c.close_entry(b"B").unwrap();
    c.write_in_entry(b"C", 1, |c| c.delete(vec![PointId::Num(1)])).unwrap();
    c.optimize().unwrap();
    drop((c, db));
    // Through a compaction, and a close after the checkpoint.
    let db = Database::open(dir.path()).unwrap();
    let c = db.collection("c").unwrap();
    assert_eq!(c.entry_mark(), mark(Some(b"B"), Some((b"C", 1))));
    assert_eq!(c.info().points_count, 3);
}

#[test]
fn a_collection_in_memory_keeps_its_mark_while_it_lives() {
    let db = Database::in_memory();
    let c = db.create_collection("c", config()).unwrap();
    c.write_in_entry(b"A", 7, |c| c.upsert(point(1))).unwrap();
    assert_eq!(c.entry_mark(), mark(None, Some((b"A", 7))));
    c.close_entry(b"A").unwrap();
    assert_eq!(c.entry_mark(), mark(Some(b"A"), None));
}

#[test]
fn a_panicking_entry_leaves_later_writes_outside_it() {
    let db = Database::in_memory();
    let c = db.create_collection("c", config()).unwrap();
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        c.write_in_entry(b"A", 1, |_| panic!("the replica's apply failed"));
    }));
    assert!(caught.is_err());
    c.upsert(point(1)).unwrap();
    assert_eq!(c.entry_mark(), EntryMark::default(), "the entry ended with the panic");
}
