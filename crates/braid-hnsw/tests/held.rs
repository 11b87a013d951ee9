//! A graph read from a file's memory (`Hnsw::from_held`) keeps layer 0 there: it
//! answers, grows, takes inserts and deletes, and writes the same bytes as the same
//! graph read into the heap; memory that cannot hold the slots gets a heap copy.

use std::ops::Range;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use braid_core::{DenseVectors, Metric, PointOffset, VectorSource};
use braid_distance::prepare;
use braid_hnsw::{DecodeError, GraphFile, Hnsw, HnswConfig};
use braid_testkit::Rng;

/// A graph file's bytes, and the slots `hold` was asked for: a copy of that range
/// as atomics, which is what a mapping would show of it.
struct TestFile {
    bytes: Vec<u8>,
    slots: OnceLock<Box<[AtomicU32]>>,
    /// `hold` refuses (as a mapping on a big-endian CPU would).
    refuse: bool,
    holds: AtomicUsize,
}

impl TestFile {
    fn new(bytes: Vec<u8>, refuse: bool) -> Arc<TestFile> {
        Arc::new(TestFile { bytes, slots: OnceLock::new(), refuse, holds: AtomicUsize::new(0) })
    }
}

impl GraphFile for TestFile {
    fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    fn hold(&self, range: Range<usize>) -> bool {
        self.holds.fetch_add(1, Ordering::Relaxed);
        if self.refuse || !range.start.is_multiple_of(4) {
            return false;
        }
        let slots = self.bytes[range]
            .chunks_exact(4)
            .map(|b| AtomicU32::new(u32::from_le_bytes([b[0], b[1], b[2], b[3]])))
            .collect();
        self.slots.set(slots).is_ok()
    }

    fn slots(&self) -> &[AtomicU32] {
        self.slots.get().map_or(&[], |s| s)
    }
}

fn rows(seed: u64, n: usize, dim: usize) -> DenseVectors {
    let mut rng = Rng::new(seed);
    let mut rows = DenseVectors::new(dim);
    for _ in 0..n {
        rows.push(&prepare(Metric::Cosine, dim, &rng.vector(dim)).unwrap());
    }
    rows
}

fn ids(graph: &Hnsw, rows: &DenseVectors, query: &[f32]) -> Vec<u32> {
    graph.search(rows, query, 10, 48, None).unwrap().iter().map(|h| h.offset.0).collect()
}

#[test]
fn a_held_graph_answers_grows_and_writes_as_a_heap_one() {
    let all = rows(5, 1_600, 24);
    let first = 1_000;
    let config = HnswConfig { m: 8, ef_construct: 48, seed: 5 };
    let graph = Hnsw::new(Metric::Cosine, 24, config, first).unwrap();
    for o in 0..first as u32 {
        graph.insert(&all, PointOffset(o)).unwrap();
    }
    assert!(graph.delete(PointOffset(3)));
    let bytes = graph.to_bytes();
    // Layer 0 starts on a 64-byte boundary of the bytes.
    let file = TestFile::new(bytes.clone(), false);
    let mut held = Hnsw::from_held(file.clone()).unwrap();
    let mut heap = Hnsw::from_bytes(&bytes).unwrap();
    assert_eq!(file.holds.load(Ordering::Relaxed), 1);
    assert!(held.is_held() && !heap.is_held());
    let layer0 = first * (2 * 8 + 1) * 4;
    assert_eq!((held.held_bytes(), heap.held_bytes()), (layer0, 0));
    assert_eq!(held.graph_bytes(), heap.graph_bytes());
    assert_eq!(held.to_bytes(), bytes);
    let queries = rows(77, 20, 24);
    for q in 0..20 {
        let query = queries.vector(PointOffset(q));
        assert_eq!(ids(&held, &all, query), ids(&heap, &all, query));
    }
    // Grown and inserted into, one node at a time (as a single-threaded build is
    // reproducible): the held part stays held, new nodes' lists go to the heap, and
    // links to them are written into held lists in place.
    let before: Vec<u32> = file.slots().iter().map(|s| s.load(Ordering::Relaxed)).collect();
    for g in [&mut held, &mut heap] {
        g.grow(all.len()).unwrap();
        for o in first as u32..all.len() as u32 {
            g.insert(&all, PointOffset(o)).unwrap();
        }
        assert!(g.delete(PointOffset(1_200)));
    }
    assert_eq!(held.held_bytes(), layer0, "growth keeps the held slots");
    let after: Vec<u32> = file.slots().iter().map(|s| s.load(Ordering::Relaxed)).collect();
    assert_ne!(before, after, "inserts link new nodes into held lists");
    assert_eq!(held.to_bytes(), heap.to_bytes());
    for q in 0..20 {
        let query = queries.vector(PointOffset(q));
        let found = ids(&held, &all, query);
        assert_eq!(found, ids(&heap, &all, query));
        assert!(!found.contains(&3) && !found.contains(&1_200));
    }
    // Read back into the heap, the held graph's bytes are the same graph.
    let again = Hnsw::from_bytes(&held.to_bytes()).unwrap();
    assert_eq!(again.to_bytes(), heap.to_bytes());
}

#[test]
fn memory_that_cannot_hold_the_slots_gets_a_heap_copy() {
    let all = rows(9, 300, 16);
    let graph = Hnsw::build(&all, Metric::Cosine, HnswConfig { m: 6, ef_construct: 32, seed: 9 }, 1).unwrap();
    let bytes = graph.to_bytes();
    let refusing = TestFile::new(bytes.clone(), true);
    let copy = Hnsw::from_held(refusing.clone()).unwrap();
    assert_eq!(refusing.holds.load(Ordering::Relaxed), 1);
    assert!(!copy.is_held());
    assert_eq!(copy.to_bytes(), bytes);
    // A version-2 file (the fuzz seed written before layer 0 was aligned) reads too.
    let seed = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/seeds/hnsw_decode/small");
    let seed = std::fs::read(seed).unwrap();
    let old = Hnsw::from_held(TestFile::new(seed.clone(), false)).unwrap();
    assert_eq!(old.to_bytes(), Hnsw::from_bytes(&seed).unwrap().to_bytes());
    // A corrupt held file is the same typed error as corrupt bytes, before anything is held.
    let mut bad = bytes.clone();
    bad[70] ^= 1;
    let file = TestFile::new(bad, false);
    assert!(matches!(Hnsw::from_held(file.clone()), Err(DecodeError::ChecksumMismatch { .. })));
    assert_eq!(file.holds.load(Ordering::Relaxed), 0);
}

#[test]
fn the_padding_before_layer_0_is_checked() {
    let all = rows(4, 100, 8);
    let graph = Hnsw::build(&all, Metric::Cosine, HnswConfig { m: 4, ef_construct: 16, seed: 4 }, 1).unwrap();
    let mut bytes = graph.to_bytes();
    // Header (56 bytes), 100 levels, 2 words of deleted bits: 172; padding to 192.
    let pad = 56 + 100 + 16;
    assert!(bytes[pad..192].iter().all(|&b| b == 0));
    bytes[pad + 1] = 7;
    let end = bytes.len() - 4;
    let crc = crc32c::crc32c(&bytes[..end]);
    bytes[end..].copy_from_slice(&crc.to_le_bytes());
    assert_eq!(
        Hnsw::from_bytes(&bytes).unwrap_err(),
        DecodeError::Corrupt { why: "non-zero padding before layer 0" }
    );
}
