//! Recovery of the log and the vector files from truncation, bit flips and a full disk.

use braid_core::{Datatype, PointOffset, VectorSource, f16};
use braid_storage::vectors::extend_crc;
use braid_storage::wal::{FILE_HEADER, Record, Wal};
use braid_storage::{DirLock, Rows, StorageError, VectorFile, fault};
use proptest::prelude::*;

fn bodies(n: usize) -> Vec<Vec<u8>> {
    (0..n).map(|i| (0..(i * 7 % 50 + 1)).map(|j| (i * 31 + j) as u8).collect()).collect()
}

fn write_log(path: &std::path::Path, bodies: &[Vec<u8>]) -> Vec<u64> {
    let mut wal = Wal::create(path).unwrap();
    let mut ends = vec![wal.len()];
    for (i, b) in bodies.iter().enumerate() {
        wal.append(i as u64 + 1, b).unwrap();
        ends.push(wal.len());
    }
    wal.sync().unwrap();
    ends
}

fn expected(bodies: &[Vec<u8>], n: usize) -> Vec<Record> {
    bodies[..n].iter().enumerate().map(|(i, b)| Record { seq: i as u64 + 1, body: b.clone() }).collect()
}

#[test]
fn every_truncation_recovers_exactly_the_whole_records_before_the_cut() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wal.log");
    let bodies = bodies(12);
    let ends = write_log(&path, &bodies);
    let full = std::fs::read(&path).unwrap();
    for cut in FILE_HEADER as usize..=full.len() {
        std::fs::write(&path, &full[..cut]).unwrap();
        let (mut wal, got) = Wal::open(&path).unwrap();
        let whole = ends.iter().filter(|&&e| e as usize <= cut).count() - 1;
        assert_eq!(got.records, expected(&bodies, whole), "cut at {cut}");
        assert_eq!(got.torn_bytes as usize, cut - ends[whole] as usize);
        // The torn tail is gone from the file, so a new record follows the last good one.
        wal.append(1000, b"after").unwrap();
        drop(wal);
        let (_, again) = Wal::open(&path).unwrap();
        assert_eq!(again.records.len(), whole + 1);
        assert_eq!(again.records[whole].body, b"after");
    }
}

#[test]
fn a_cut_inside_the_file_header_is_an_error_not_an_empty_log() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wal.log");
    write_log(&path, &bodies(2));
    let full = std::fs::read(&path).unwrap();
    for cut in 0..FILE_HEADER as usize {
        std::fs::write(&path, &full[..cut]).unwrap();
        assert!(Wal::open(&path).is_err(), "cut at {cut}");
    }
}

#[test]
fn every_bit_flip_is_an_error_naming_the_file_or_drops_only_the_last_record() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wal.log");
    let bodies = bodies(6);
    let ends = write_log(&path, &bodies);
    let full = std::fs::read(&path).unwrap();
    let last_start = ends[ends.len() - 2] as usize;
    for bit in 0..full.len() * 8 {
        let mut bad = full.clone();
        bad[bit / 8] ^= 1 << (bit % 8);
        std::fs::write(&path, &bad).unwrap();
        match Wal::open(&path) {
            Err(e) => assert_eq!(e.file(), path, "{e}"),
            Ok((_, got)) => {
                // Only damage to the last record's body or body checksum may read as
                // a torn tail.
                assert!(bit / 8 >= last_start + 16, "flip of bit {bit} was accepted");
                assert_eq!(got.records, expected(&bodies, bodies.len() - 1), "bit {bit}");
            }
        }
    }
}

#[test]
fn a_zero_filled_tail_after_a_power_cut_is_torn() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wal.log");
    let bodies = bodies(3);
    write_log(&path, &bodies);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.extend(std::iter::repeat_n(0u8, 4096));
    std::fs::write(&path, &bytes).unwrap();
    let (_, got) = Wal::open(&path).unwrap();
    assert_eq!(got.records, expected(&bodies, 3));
    assert_eq!(got.torn_bytes, 4096);
}

#[test]
fn a_full_disk_fails_the_append_and_leaves_the_log_at_a_record_boundary() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wal.log");
    let mut wal = Wal::create(&path).unwrap();
    wal.append(1, b"kept").unwrap();
    fault::set_disk_budget(Some(10));
    let err = wal.append(2, &[7u8; 100]).unwrap_err();
    fault::set_disk_budget(None);
    assert!(matches!(err, StorageError::Io { kind: std::io::ErrorKind::StorageFull, .. }), "{err}");
    wal.append(3, b"next").unwrap();
    wal.sync().unwrap();
    drop(wal);
    let (_, got) = Wal::open(&path).unwrap();
    assert_eq!(got.torn_bytes, 0);
    assert_eq!(got.records.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![1, 3]);
}

/// A sync failing on one thread poisons the log for every handle: a flusher's syncer
/// that was already past its own check before the failure is refused by `check()`,
/// which a collection asks where it records the outcome (so a success that raced the
/// failure cannot erase its record), and by every later sync and append.
#[test]
fn a_failed_sync_poisons_every_handle_of_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wal.log");
    let mut wal = Wal::create(&path).unwrap();
    wal.append(1, b"first").unwrap();
    let flusher = wal.syncer();
    flusher.sync().unwrap();
    flusher.check().unwrap();
    let failing = wal.syncer();
    std::thread::spawn(move || {
        fault::fail_next_syncs(1);
        assert!(matches!(failing.sync(), Err(StorageError::Io { .. })));
    })
    .join()
    .unwrap();
    assert!(matches!(flusher.check(), Err(StorageError::Poisoned { .. })));
    assert!(matches!(flusher.sync(), Err(StorageError::Poisoned { .. })));
    assert!(matches!(wal.append(2, b"refused"), Err(StorageError::Poisoned { .. })));
}

#[test]
fn sequence_numbers_must_increase() {
    let dir = tempfile::tempdir().unwrap();
    let mut wal = Wal::create(&dir.path().join("wal.log")).unwrap();
    wal.append(5, b"a").unwrap();
    assert!(wal.append(5, b"b").is_err());
    assert!(wal.append(4, b"b").is_err());
    wal.append(6, b"b").unwrap();
}

#[test]
fn vector_files_append_map_and_check_their_rows() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("text.vec");
    let mut file = VectorFile::create(&path, 3, Datatype::Float32).unwrap();
    let first: Vec<f32> = (0..6).map(|i| i as f32).collect();
    file.append(&first).unwrap();
    file.sync().unwrap();
    let (rows, crc) = (file.rows(), file.crc());
    assert_eq!(crc, extend_crc(0, &first));
    // A crash during the next append leaves extra bytes; open cuts them.
    file.append(&[9.0; 3]).unwrap();
    drop(file);
    let mut file = VectorFile::open(&path, 3, Datatype::Float32, rows, crc).unwrap();
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 64 + 6 * 4);
    file.append(&[6.0, 7.0, 8.0]).unwrap();
    let mapped = file.map().unwrap();
    let mut source = Rows::mapped(3, mapped);
    source.push(&[1.5, 2.5, 3.5]);
    assert_eq!(source.len(), 4);
    assert_eq!(source.vector(PointOffset(1)), &[3.0, 4.0, 5.0]);
    assert_eq!(source.vector(PointOffset(2)), &[6.0, 7.0, 8.0]);
    assert_eq!(source.vector(PointOffset(3)), &[1.5, 2.5, 3.5]);
    assert_eq!(source.unmapped(), &[1.5, 2.5, 3.5]);

    // A flipped bit inside the rows is a checksum error naming the file.
    let (rows, crc) = (file.rows(), file.crc());
    drop((file, source));
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[64 + 5] ^= 0x10;
    std::fs::write(&path, &bytes).unwrap();
    let err = VectorFile::open(&path, 3, Datatype::Float32, rows, crc).unwrap_err();
    assert!(matches!(&err, StorageError::Corrupt { file, .. } if *file == path), "{err}");
    // Fewer bytes than the manifest promises is an error too, never a short read.
    std::fs::write(&path, &bytes[..64 + 8]).unwrap();
    assert!(VectorFile::open(&path, 3, Datatype::Float32, rows, crc).is_err());
}

/// Files of halves and bytes hold two and one bytes per component, map back the
/// values written, and refuse to open as another datatype.
#[test]
fn narrow_vector_files_keep_their_datatype() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bytes.vec");
    let mut file = VectorFile::create(&path, 3, Datatype::Uint8).unwrap();
    file.append(&[0u8, 7, 255, 1, 2, 3]).unwrap();
    file.sync().unwrap();
    let (rows, crc) = (file.rows(), file.crc());
    drop(file);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 64 + 6);
    for other in [Datatype::Float32, Datatype::Float16] {
        let err = VectorFile::open(&path, 3, other, rows, crc).unwrap_err();
        assert!(err.to_string().contains("datatype uint8"), "{err}");
    }
    let file = VectorFile::open(&path, 3, Datatype::Uint8, rows, crc).unwrap();
    let source = Rows::<u8>::mapped(3, file.map().unwrap());
    assert_eq!(source.vector(PointOffset(0)), &[0, 7, 255]);
    assert_eq!(source.vector(PointOffset(1)), &[1, 2, 3]);

    let path = dir.path().join("halves.vec");
    let mut file = VectorFile::create(&path, 2, Datatype::Float16).unwrap();
    let halves = [f16::from_f32(0.1), f16::from_f32(-3.5)];
    file.append(&halves).unwrap();
    assert_eq!(file.crc(), extend_crc(0, &halves));
    let mut source = Rows::<f16>::mapped(2, file.map().unwrap());
    source.push(&[f16::from_f32(1.0), f16::ZERO]);
    assert_eq!(source.vector(PointOffset(0)), &halves);
    assert_eq!(source.vector(PointOffset(1))[0].to_f32(), 1.0);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 64 + 4);
    // An unknown datatype code is damage, not a guess.
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[16] = 9;
    std::fs::write(&path, &bytes).unwrap();
    let err = VectorFile::open(&path, 2, Datatype::Float16, 1, file.crc()).unwrap_err();
    assert!(err.to_string().contains("unknown datatype code 9"), "{err}");
}

#[test]
fn one_lock_per_directory() {
    let dir = tempfile::tempdir().unwrap();
    let lock = DirLock::acquire(dir.path()).unwrap();
    let err = DirLock::acquire(dir.path()).unwrap_err();
    assert!(matches!(err, StorageError::Locked { .. }), "{err}");
    drop(lock);
    DirLock::acquire(dir.path()).unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    /// Any sequence of appends with syncs and reopens in between reads back in order.
    #[test]
    fn appends_and_reopens_read_back(batches in prop::collection::vec(prop::collection::vec(prop::collection::vec(any::<u8>(), 0..40), 0..6), 1..5)) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wal.log");
        let mut wal = Wal::create(&path).unwrap();
        let mut all = Vec::new();
        for batch in &batches {
            for body in batch {
                let seq = all.len() as u64 * 3 + 1;
                wal.append(seq, body).unwrap();
                all.push(Record { seq, body: body.clone() });
            }
            wal.sync().unwrap();
            drop(wal);
            let (reopened, got) = Wal::open(&path).unwrap();
            prop_assert_eq!(&got.records, &all);
            wal = reopened;
        }
    }
}

/// `read_with` streams a document's body to its parser and checks it as `decode`
/// checks the whole: every byte flip, cut or extension is a typed error naming the
/// file, and a version from the future reads as such only when the checksum holds.
#[test]
fn streamed_documents_check_as_whole_ones_do() {
    use braid_storage::document;
    use std::io::Read;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("doc");
    let body: Vec<u8> = (0..5000u32).map(|i| (i * 7) as u8).collect();
    let whole = document::encode(b"BRAIDTST", 3, &body);
    let all = |b: &mut document::Body, len: u64| -> Result<Vec<u8>, String> {
        let mut out = vec![0; len as usize];
        b.read_exact(&mut out).map_err(|e| e.to_string())?;
        Ok(out)
    };
    std::fs::write(&path, &whole).unwrap();
    assert_eq!(document::read_with(&path, b"BRAIDTST", 3, "test", all).unwrap(), body);
    // A parser that stops early, or fails, is an error; the checksum still comes first.
    let half = |b: &mut document::Body, _: u64| -> Result<(), String> {
        b.read_exact(&mut [0; 100]).map_err(|e| e.to_string())
    };
    let err = document::read_with(&path, b"BRAIDTST", 3, "test", half).unwrap_err();
    assert!(err.to_string().contains("unread"), "{err}");
    let refuse = |_: &mut document::Body, _: u64| -> Result<(), String> { Err("no".into()) };
    let err = document::read_with(&path, b"BRAIDTST", 3, "test", refuse).unwrap_err();
    assert!(matches!(&err, StorageError::Corrupt { .. }) && err.to_string().contains("no"), "{err}");
    assert!(matches!(
        document::read_with(&path, b"BRAIDTST", 4, "test", all),
        Err(StorageError::UnsupportedVersion { found: 3, supported: 4, .. })
    ));
    assert!(matches!(
        document::read_with(&path, b"BRAIDXXX", 3, "test", all),
        Err(StorageError::BadMagic { .. })
    ));
    let mut rng = braid_testkit::Rng::new(11);
    for _ in 0..200 {
        let mut bad = whole.clone();
        let at = (rng.next_u64() % bad.len() as u64) as usize;
        bad[at] ^= 1 << (rng.next_u64() % 8);
        std::fs::write(&path, &bad).unwrap();
        let err = document::read_with(&path, b"BRAIDTST", 3, "test", all).unwrap_err();
        match &err {
            StorageError::Corrupt { file, .. } => assert_eq!(file, &path),
            StorageError::BadMagic { file, .. } => assert_eq!(file, &path),
            other => panic!("byte {at}: {other}"),
        }
        // The whole-file decode says the same kind of thing.
        let whole_err = document::decode(&path, &bad, b"BRAIDTST", 3, "test").unwrap_err();
        assert_eq!(std::mem::discriminant(&err), std::mem::discriminant(&whole_err), "byte {at}");
    }
    for cut in [0, 5, 19, 20, 100, whole.len() - 1] {
        std::fs::write(&path, &whole[..cut]).unwrap();
        assert!(document::read_with(&path, b"BRAIDTST", 3, "test", all).is_err(), "cut at {cut}");
    }
    std::fs::write(&path, [whole.as_slice(), b"x"].concat()).unwrap();
    assert!(document::read_with(&path, b"BRAIDTST", 3, "test", all).is_err());
}
