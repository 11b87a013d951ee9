//! `codes_on_disk` (Qdrant's `always_ram: false`): a space's one-byte, product, binary
//! or two-bit codes held in a copy-on-write mapping of the codes file each checkpoint writes, the codes
//! of points written since on the heap. The held codes are the same codes: searches
//! answer exactly as with codes in memory, across checkpoints, reopens (with and
//! without a replayed log), compaction and both switches; damage is a typed error,
//! at open for the header and from the background checksum pass for the rest.

use braid::distance::{Compression, PRODUCT_SAMPLE};
use braid::{
    CollectionConfig, Database, Distance, PointId, PointStruct, Quantization, SearchParams, SearchRequest,
    StorageOptions, VectorParams,
};
use braid_testkit::Rng;

const DIM: usize = 64;

fn config(quantization: Quantization, on_disk: bool) -> CollectionConfig {
    // Walked at any size: the threshold below every collection here.
    let params = VectorParams::new(DIM, Distance::Cosine)
        .hnsw(8, 48)
        .full_scan_threshold_kb(1)
        .quantization(quantization)
        .codes_on_disk(on_disk);
    CollectionConfig::new().indexing_threshold_kb(1).vector("v", params)
}

fn points(seed: u64, ids: std::ops::Range<u64>) -> Vec<PointStruct> {
    let mut rng = Rng::new(seed);
    ids.map(|i| PointStruct::new(i).vector("v", rng.vector(DIM))).collect()
}

/// Ids and exact scores of searches at a small ef, where the codes' ranking decides
/// which candidates the walk keeps.
fn answers(c: &braid::Collection) -> Vec<Vec<(PointId, u32)>> {
    let mut rng = Rng::new(99);
    (0..12)
        .map(|_| {
            let request = SearchRequest::new("v", rng.vector(DIM))
                .limit(5)
                .params(SearchParams { hnsw_ef: Some(12), ..SearchParams::default() });
            c.search(&request).unwrap().into_iter().map(|h| (h.id, h.score.to_bits())).collect()
        })
        .collect()
}

fn mapped(c: &braid::Collection) -> usize {
    c.info().memory["v"].codes_mapped
}

/// Opens the database in `dir` with every file checked before the open returns.
fn open_checked(dir: &std::path::Path) -> Result<Database, braid::Error> {
    Database::open_with(
        dir,
        StorageOptions { verify_after_open_above: u64::MAX, ..StorageOptions::default() },
    )
}

fn held_codes_answer_as_codes_in_memory(quantization: Quantization, n: u64, per_point: usize) {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path()).unwrap();
    let c = db.create_collection("c", config(quantization, true)).unwrap();
    for chunk in points(1, 0..n).chunks(5_000) {
        c.upsert(chunk.to_vec()).unwrap();
    }
    c.delete(vec![PointId::from(10), 11.into()]).unwrap();
    // Before the first checkpoint the codes are on the heap.
    assert_eq!(mapped(&c), 0);
    let before = answers(&c);
    c.flush().unwrap();
    let held = mapped(&c);
    assert_eq!(held, n as usize * per_point, "{quantization:?}: the codes mapped");
    // One-byte codes keep their terms, product codes their codebook, on the heap; bit-plane
    // codes keep their terms in each code's slot, in the file.
    let bits = matches!(quantization, Quantization::Binary | Quantization::BinaryTwoBits);
    assert_eq!(c.info().memory["v"].codes > held, !bits);
    assert_eq!(answers(&c), before, "the same codes, read from their file");
    // Writes after the checkpoint: their codes on the heap.
    c.upsert(points(2, n..n + 300)).unwrap();
    assert_eq!(mapped(&c), held, "growth keeps the mapped part");
    let written = answers(&c);
    c.flush().unwrap();
    assert_eq!(mapped(&c), (n as usize + 300) * per_point);
    assert_eq!(answers(&c), written);
    // In the log only, then reopened (the file checked in the background, and before
    // the open returns): replayed onto the mapped codes.
    c.upsert(points(3, n + 300..n + 400)).unwrap();
    let logged = answers(&c);
    drop((c, db));
    for checked in [false, true] {
        let db = if checked { open_checked(dir.path()) } else { Database::open(dir.path()) }.unwrap();
        let c = db.collection("c").unwrap();
        assert_eq!(mapped(&c), (n as usize + 300) * per_point);
        assert_eq!(answers(&c), logged, "reopened: the file's codes and the replayed log");
        assert!(c.config().vectors["v"].codes_on_disk, "the setting persists");
    }
    // A compaction writes new codes and maps them.
    let db = Database::open(dir.path()).unwrap();
    let c = db.collection("c").unwrap();
    c.delete((0..200).map(PointId::from).collect::<Vec<_>>()).unwrap();
    c.compact().unwrap();
    assert!(mapped(&c) > 0);
    let compacted = answers(&c);
    // Off: the codes are read back into the heap at the change's checkpoint; on again.
    c.reconfigure(config(quantization, false)).unwrap();
    assert_eq!(mapped(&c), 0);
    assert_eq!(answers(&c), compacted);
    c.reconfigure(config(quantization, true)).unwrap();
    assert!(mapped(&c) > 0);
    assert_eq!(answers(&c), compacted);
    drop((c, db));
    let db = Database::open(dir.path()).unwrap();
    assert_eq!(answers(&db.collection("c").unwrap()), compacted);
}

#[test]
fn one_byte_codes_held_in_their_file_answer_as_codes_in_memory() {
    held_codes_answer_as_codes_in_memory(Quantization::Int8, 1_500, DIM);
}

#[test]
fn product_codes_held_in_their_file_answer_as_codes_in_memory() {
    // x16: one byte per four components.
    let n = PRODUCT_SAMPLE as u64 + 500;
    held_codes_answer_as_codes_in_memory(Quantization::Product(Compression::X16), n, DIM / 4);
}

#[test]
fn binary_codes_held_in_their_file_answer_as_codes_in_memory() {
    // One 64-bit word of signs and one of terms a point.
    held_codes_answer_as_codes_in_memory(Quantization::Binary, 1_500, 16);
}

#[test]
fn two_bit_codes_held_in_their_file_answer_as_codes_in_memory() {
    // Two planes of one word, and one word of terms.
    held_codes_answer_as_codes_in_memory(Quantization::BinaryTwoBits, 1_500, 24);
}

#[test]
fn codes_on_disk_are_refused_where_they_cannot_be_served() {
    let db = Database::in_memory();
    let err = db.create_collection("c", config(Quantization::Int8, true)).unwrap_err();
    assert!(matches!(&err, braid::Error::InvalidConfig { why } if why.contains("always_ram")), "{err}");
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path()).unwrap();
    let err = db.create_collection("c", config(Quantization::None, true)).unwrap_err();
    assert!(matches!(&err, braid::Error::InvalidConfig { why } if why.contains("keeps no codes")), "{err}");
    let c = db.create_collection("c", config(Quantization::Binary, false)).unwrap();
    let err = c.reconfigure(config(Quantization::None, true)).unwrap_err();
    assert!(matches!(&err, braid::Error::InvalidConfig { .. }), "{err}");
    assert!(!c.config().vectors["v"].codes_on_disk);
}

#[test]
fn a_damaged_codes_file_is_a_typed_error() {
    damaged_codes_file_is_a_typed_error(Quantization::Int8);
}

#[test]
fn a_damaged_binary_codes_file_is_a_typed_error() {
    damaged_codes_file_is_a_typed_error(Quantization::Binary);
}

fn damaged_codes_file_is_a_typed_error(quantization: Quantization) {
    let dir = tempfile::tempdir().unwrap();
    let before = {
        let db = Database::open(dir.path()).unwrap();
        let c = db.create_collection("c", config(quantization, true)).unwrap();
        c.upsert(points(4, 0..1_500)).unwrap();
        c.flush().unwrap();
        answers(&c)
    };
    let file = braid_testkit::collection_files(dir.path(), "codes-").remove(0);
    // The header (magic, version, length) is checked at open; the body by the checksum
    // pass: before the open returns when asked, or in the background, after which every
    // request fails with the storage error.
    braid_testkit::with_each_byte_flipped(
        &file,
        0x10,
        |len| vec![0, 9, 60, len / 2, len - 1],
        |at| {
            let opened = open_checked(dir.path());
            assert!(matches!(&opened, Err(braid::Error::Storage(_))), "byte {at}: {:?}", opened.err());
            let db = Database::open_with(
                dir.path(),
                StorageOptions { verify_after_open_above: 0, ..Default::default() },
            );
            let failed = match db {
                Err(e) => e,
                Ok(db) => {
                    let c = db.collection("c").unwrap();
                    assert!(matches!(c.verify_wait(), Err(braid::Error::Storage(_))), "byte {at}");
                    c.search(&SearchRequest::new("v", vec![0.5; DIM]).limit(3)).unwrap_err()
                }
            };
            assert!(matches!(failed, braid::Error::Storage(_)), "byte {at}: {failed}");
        },
    );
    let db = open_checked(dir.path()).unwrap();
    assert_eq!(answers(&db.collection("c").unwrap()), before);
}
