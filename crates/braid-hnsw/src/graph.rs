//! The graph's memory layout and the primitives every other module uses.
//!
//! Layer 0 is one flat array of `capacity × (m0 + 1)` atomics: per node, a count then
//! up to `m0` neighbour offsets — one cache-friendly block, as in hnswlib. The array's
//! first nodes may be held outside the heap ([`GraphFile`]: a graph file mapped
//! copy-on-write, `hnsw_config.on_disk`), the rest in a heap tail that grows. Upper layers
//! exist for few nodes (a fraction 1/m per level), so each such node owns one boxed
//! block of `level × (m + 1)` atomics, set once when it is inserted.
//!
//! Concurrency: a writer changes a node's lists only while holding that node's `lock`.
//! Readers take no lock. A writer stores a list's entries, then its count with
//! `Release`; a reader loads the count with `Acquire`, then the entries, so on any CPU
//! (x86's strong ordering made `Relaxed` look sufficient; ARM's does not) a reader that
//! sees a count sees entries at least as new as the ones it covers. A list being
//! rewritten may still be seen half old and half new, which is harmless: every entry
//! ever written is a node whose level was published (`Release`) before it was linked,
//! and the search only needs *some* neighbours. As a second guard, `neighbours` drops
//! any entry whose level is not (yet) visible, so a search never reads a row that was
//! not inserted.
//!
//! Lock order: a thread holds at most one node lock at a time, plus possibly the
//! entry-point lock taken before it (never the other way round).

use crate::upper::Upper;
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Ordering};

use braid_core::{Metric, VectorSource};
use braid_distance::{Kernel, RowKernel};
use parking_lot::Mutex;

use crate::HnswConfig;

/// Level value of a node slot that holds no node yet.
pub(crate) const ABSENT: u8 = u8::MAX;

/// The highest level a node may get; levels above it are clamped (at m = 2 the chance
/// of reaching it is 2⁻⁶⁰).
pub(crate) const MAX_LEVEL: u8 = 60;

/// [`Hnsw::entry`] when the graph is empty.
pub(crate) const NO_ENTRY: u64 = u64::MAX;

/// The entry point: the node on the highest level.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Entry {
    pub node: u32,
    pub level: u8,
}

/// Extra layer-0 links among nodes that share a value ([`Hnsw::add_link_group`]):
/// per node a count, then up to `m0` neighbours, laid out as layer 0 is.
pub(crate) struct LinkGroup {
    pub key: u64,
    /// Links per node (twice the group's `m`, as on layer 0).
    pub m0: usize,
    pub slots: Box<[AtomicU32]>,
}

impl LinkGroup {
    pub(crate) fn empty(key: u64, m0: usize, capacity: usize) -> LinkGroup {
        LinkGroup { key, m0, slots: atomics(capacity * (m0 + 1), || AtomicU32::new(0)) }
    }

    /// The slots of `node`'s list: `[count, n1, …]`.
    #[inline]
    pub(crate) fn links(&self, node: u32) -> Option<&[AtomicU32]> {
        let w = self.m0 + 1;
        let start = node as usize * w;
        self.slots.get(start..start + w)
    }
}

/// A graph file's bytes in memory that the graph may keep and write in place — in
/// Braid, a private (copy-on-write) mapping of the file — so that [`Hnsw::from_held`]
/// leaves layer 0 there instead of copying it to the heap: the kernel reads lists from
/// the file as searches touch them, and a list an insert rewrites becomes a private page.
pub trait GraphFile: Send + Sync {
    /// The file's bytes. Read only while the graph is decoded, before any slot is
    /// written.
    fn bytes(&self) -> &[u8];

    /// Makes `range` of the bytes the slots [`GraphFile::slots`] returns from now on
    /// (called once, by the decoder). `false` where this memory cannot hold them as
    /// atomics (the range's start not 4-byte aligned, a big-endian CPU): the decoder
    /// then copies layer 0 to the heap.
    fn hold(&self, range: std::ops::Range<usize>) -> bool;

    /// The held slots (empty before [`GraphFile::hold`]).
    fn slots(&self) -> &[AtomicU32];
}

/// Layer 0: the held nodes' slots, then the heap's.
pub(crate) struct Layer0 {
    /// Slots per node: `m0 + 1`.
    width: usize,
    held: Option<std::sync::Arc<dyn GraphFile>>,
    /// Nodes `0..held_nodes` are in `held`; 0 when nothing is held.
    held_nodes: usize,
    /// Nodes `held_nodes..capacity`.
    heap: Box<[AtomicU32]>,
}

impl Layer0 {
    pub(crate) fn on_heap(width: usize, capacity: usize) -> Layer0 {
        Layer0 { width, held: None, held_nodes: 0, heap: atomics(capacity * width, || AtomicU32::new(0)) }
    }

    /// `capacity` nodes on the heap, their slots read from `bytes` (little-endian,
    /// `capacity × width` words): written once, not zeroed first.
    pub(crate) fn on_heap_from(width: usize, bytes: &[u8]) -> Layer0 {
        let mut heap = Vec::new();
        braid_core::memory::reserve_huge(&mut heap, bytes.len() / 4);
        heap.extend(
            bytes.chunks_exact(4).map(|b| AtomicU32::new(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))),
        );
        Layer0 { width, held: None, held_nodes: 0, heap: heap.into_boxed_slice() }
    }

    /// Nodes `0..nodes` in `held` (which holds at least their slots), the rest of
    /// `capacity` in a new heap tail.
    pub(crate) fn holding(
        width: usize,
        held: std::sync::Arc<dyn GraphFile>,
        nodes: usize,
        capacity: usize,
    ) -> Layer0 {
        debug_assert!(held.slots().len() >= nodes * width);
        let tail = capacity.saturating_sub(nodes) * width;
        Layer0 { width, held: Some(held), held_nodes: nodes, heap: atomics(tail, || AtomicU32::new(0)) }
    }

    /// The slots of `node`: `[count, n1, …]`.
    #[inline]
    pub(crate) fn list(&self, node: u32) -> Option<&[AtomicU32]> {
        let n = node as usize;
        let w = self.width;
        if n < self.held_nodes {
            self.held.as_ref()?.slots().get(n * w..(n + 1) * w)
        } else {
            let start = (n - self.held_nodes) * w;
            self.heap.get(start..start + w)
        }
    }

    /// Every node's slots in order (held, then heap), `nodes × (m0 + 1)` of them.
    pub(crate) fn slots(&self, nodes: usize) -> impl Iterator<Item = &AtomicU32> {
        let held = self.held.as_ref().map_or(&[][..], |h| &h.slots()[..self.held_nodes * self.width]);
        held.iter().chain(self.heap.iter()).take(nodes * self.width)
    }

    /// Nodes whose slots are held outside the heap.
    pub(crate) fn held_nodes(&self) -> usize {
        self.held_nodes
    }

    /// Bytes of slots (held, on the heap).
    pub(crate) fn bytes(&self) -> (usize, usize) {
        let slot = std::mem::size_of::<AtomicU32>();
        (self.held_nodes * self.width * slot, self.heap.len() * slot)
    }

    /// The same slots in a layer of `capacity` nodes: the held part kept, the heap
    /// tail copied into a larger one.
    pub(crate) fn grown(self, capacity: usize) -> Layer0 {
        let tail = capacity.saturating_sub(self.held_nodes) * self.width;
        let heap = atomics(tail, || AtomicU32::new(0));
        copy_words(&heap, &self.heap);
        Layer0 { heap, ..self }
    }
}

/// The HNSW graph. See [`crate`] for the user-facing API.
pub struct Hnsw {
    pub(crate) metric: Metric,
    pub(crate) kernel: Kernel,
    pub(crate) config: HnswConfig,
    pub(crate) dim: usize,
    pub(crate) capacity: usize,
    /// `capacity × (m0 + 1)`: per node a count, then the neighbours.
    pub(crate) layer0: Layer0,
    /// Per node: `level` lists of `m + 1` for levels 1..=level, made once at insert.
    pub(crate) upper: Upper,
    /// Per node: its top level, or [`ABSENT`].
    pub(crate) levels: Box<[AtomicU8]>,
    /// One bit per node: deleted (a tombstone: still traversed, never returned).
    pub(crate) deleted: Box<[AtomicU64]>,
    pub(crate) locks: Box<[Mutex<()>]>,
    /// The entry point packed as `node << 8 | level`, or [`NO_ENTRY`]. Read without a
    /// lock by searches; changed only under `top`.
    pub(crate) entry: AtomicU64,
    /// Held by an insert that raises the top level, for its whole insert.
    pub(crate) top: Mutex<()>,
    pub(crate) len: AtomicUsize,
    pub(crate) deleted_count: AtomicUsize,
    /// How filtered searches walk layer 0 ([`crate::FilteredWalk`] as a byte).
    pub(crate) filtered_walk: AtomicU8,
    /// Links among nodes that share a value, one group per key.
    pub(crate) groups: Vec<LinkGroup>,
}

impl std::fmt::Debug for Hnsw {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hnsw")
            .field("metric", &self.metric)
            .field("config", &self.config)
            .field("dim", &self.dim)
            .field("len", &self.len())
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

/// Replaces one list (`[count, n1, …]`); the caller holds its node's lock.
pub(crate) fn write_list(slots: &[AtomicU32], list: &[u32]) {
    let n = list.len().min(slots.len() - 1);
    // Entries first, count last: a reader that sees the new count sees entries that
    // are all valid nodes (old or new).
    for (slot, &v) in slots[1..=n].iter().zip(list) {
        slot.store(v, Ordering::Relaxed);
    }
    slots[0].store(n as u32, Ordering::Release);
}

/// An atomic word a grow copies into a larger array: with `&mut` on the graph, no
/// other thread reads or writes either copy, so `Relaxed` suffices.
pub(crate) trait Word {
    fn copy_from(&self, from: &Self);
}

macro_rules! word {
    ($($atomic:ty),*) => {$(
        impl Word for $atomic {
            #[inline]
            fn copy_from(&self, from: &Self) {
                self.store(from.load(Ordering::Relaxed), Ordering::Relaxed);
            }
        }
    )*};
}
word!(AtomicU8, AtomicU32, AtomicU64);

/// Copies `from` into the start of `to` (at least as long).
pub(crate) fn copy_words<T: Word>(to: &[T], from: &[T]) {
    debug_assert!(to.len() >= from.len());
    for (to, from) in to.iter().zip(from) {
        to.copy_from(from);
    }
}

pub(crate) fn atomics<T>(n: usize, make: impl Fn() -> T) -> Box<[T]> {
    // Asked for huge pages before the first write, so the kernel can back them so.
    let mut v = Vec::new();
    braid_core::memory::reserve_huge(&mut v, n);
    v.extend((0..n).map(|_| make()));
    v.into_boxed_slice()
}

impl Hnsw {
    pub(crate) fn empty(metric: Metric, dim: usize, config: HnswConfig, capacity: usize) -> Hnsw {
        Hnsw::with_layer0(metric, dim, config, capacity, Layer0::on_heap(config.m0() + 1, capacity))
    }

    /// An empty graph of `capacity` nodes whose layer 0 is `layer0` (of that capacity).
    pub(crate) fn with_layer0(
        metric: Metric,
        dim: usize,
        config: HnswConfig,
        capacity: usize,
        layer0: Layer0,
    ) -> Hnsw {
        Hnsw {
            metric,
            kernel: Kernel::new(metric),
            config,
            dim,
            capacity,
            layer0,
            upper: Upper::new(config.m + 1, capacity),
            levels: atomics(capacity, || AtomicU8::new(ABSENT)),
            deleted: atomics(capacity.div_ceil(64), || AtomicU64::new(0)),
            locks: atomics(capacity, || Mutex::new(())),
            entry: AtomicU64::new(NO_ENTRY),
            top: Mutex::new(()),
            len: AtomicUsize::new(0),
            deleted_count: AtomicUsize::new(0),
            filtered_walk: AtomicU8::new(crate::FilteredWalk::Auto as u8),
            groups: Vec::new(),
        }
    }

    /// How many nodes have been inserted (deleted ones included).
    pub fn len(&self) -> usize {
        self.len.load(Ordering::Acquire)
    }

    /// `true` when nothing has been inserted.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many inserted nodes are deleted.
    pub fn deleted_len(&self) -> usize {
        self.deleted_count.load(Ordering::Acquire)
    }

    /// The highest offset + 1 this graph can hold.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The metric the graph ranks by.
    pub fn metric(&self) -> Metric {
        self.metric
    }

    /// The dimension of the vectors.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The build parameters.
    pub fn config(&self) -> HnswConfig {
        self.config
    }

    /// The current entry point.
    #[inline]
    pub(crate) fn entry(&self) -> Option<Entry> {
        let packed = self.entry.load(Ordering::Acquire);
        (packed != NO_ENTRY).then_some(Entry { node: (packed >> 8) as u32, level: packed as u8 })
    }

    pub(crate) fn set_entry(&self, e: Entry) {
        self.entry.store(u64::from(e.node) << 8 | u64::from(e.level), Ordering::Release);
    }

    /// The node's top level, if it was inserted.
    pub(crate) fn level(&self, node: u32) -> Option<u8> {
        let level = self.levels.get(node as usize)?.load(Ordering::Acquire);
        (level != ABSENT).then_some(level)
    }

    /// Is `node` inserted?
    pub fn contains(&self, offset: braid_core::PointOffset) -> bool {
        self.level(offset.0).is_some()
    }

    #[inline]
    pub(crate) fn is_deleted(&self, node: u32) -> bool {
        self.deleted[node as usize / 64].load(Ordering::Relaxed) & (1 << (node % 64)) != 0
    }

    /// The slots of `node`'s list on `layer`: `[count, n1, …]`, or `None` when the
    /// node has no such layer.
    #[inline]
    pub(crate) fn links(&self, node: u32, layer: u8) -> Option<&[AtomicU32]> {
        if layer == 0 {
            return self.layer0.list(node);
        }
        // Past the node's level the arena holds other nodes' lists.
        if layer > self.levels.get(node as usize)?.load(Ordering::Acquire) {
            return None;
        }
        self.upper.list(node, layer)
    }

    /// Copies `node`'s neighbours on `layer` into `out`.
    #[inline]
    pub(crate) fn neighbours(&self, node: u32, layer: u8, out: &mut Vec<u32>) {
        out.clear();
        if let Some(slots) = self.links(node, layer) {
            self.read_list(slots, out);
        }
    }

    /// Appends the inserted nodes of one list (`[count, n1, …]`) to `out`.
    #[inline]
    pub(crate) fn read_list(&self, slots: &[AtomicU32], out: &mut Vec<u32>) {
        // Acquire: pairs with the Release of the count in `write_list`.
        let count = (slots[0].load(Ordering::Acquire) as usize).min(slots.len() - 1);
        out.extend(
            slots[1..=count].iter().map(|s| s.load(Ordering::Relaxed)).filter(|&n| self.level(n).is_some()),
        );
    }

    /// Replaces `node`'s list on `layer`. The caller holds `node`'s lock.
    pub(crate) fn set_neighbours(&self, node: u32, layer: u8, list: &[u32]) {
        if let Some(slots) = self.links(node, layer) {
            write_list(slots, list);
        }
    }

    /// The ranking distance between two vectors: lower is better for every metric
    /// (similarities are negated).
    #[inline(always)]
    pub(crate) fn distance<E: RowKernel>(&self, a: &[f32], b: &[E]) -> f32 {
        // A direct call per metric (the branch is perfectly predicted) instead of the
        // kernel's function pointer: this is the innermost call of every search.
        match self.metric {
            Metric::Cosine => -E::cosine(a, b),
            Metric::Dot => -E::dot(a, b),
            Metric::Euclid => E::l2_squared(a, b),
            Metric::Manhattan => E::l1(a, b),
        }
    }

    /// Turns a ranking distance back into the user score.
    #[inline]
    pub(crate) fn user_score(&self, distance: f32) -> f32 {
        let raw = if self.metric.higher_is_better() { -distance } else { distance };
        self.kernel.finish(raw)
    }

    /// Bytes of graph structure per node slot (excluding vectors), for the memory report:
    /// the heap's and the held layer-0 slots' ([`Hnsw::held_bytes`]).
    pub fn graph_bytes(&self) -> usize {
        let (held, heap) = self.layer0.bytes();
        held + heap
            + self.upper.bytes()
            + self.levels.len()
            + self.deleted.len() * 8
            + self.locks.len() * std::mem::size_of::<Mutex<()>>()
            + self.groups.iter().map(|g| g.slots.len() * std::mem::size_of::<AtomicU32>()).sum::<usize>()
    }

    /// Of [`Hnsw::graph_bytes`], the layer-0 slots held outside the heap (a mapped
    /// graph file, [`Hnsw::from_held`]): pages the kernel may drop and read again.
    pub fn held_bytes(&self) -> usize {
        self.layer0.bytes().0
    }

    /// Is any of layer 0 held outside the heap?
    pub fn is_held(&self) -> bool {
        self.layer0.held_nodes() > 0
    }

    pub(crate) fn check_codes<S: VectorSource<Elem: RowKernel> + ?Sized>(
        &self,
        source: &S,
        codes: &braid_distance::Codes,
    ) -> Result<(), crate::HnswError> {
        self.check_source(source)?;
        if codes.dim() != self.dim || codes.len() != source.len() || codes.metric() != self.metric {
            return Err(crate::HnswError::CodesMismatch { codes: codes.len(), rows: source.len() });
        }
        Ok(())
    }

    pub(crate) fn check_source<S: VectorSource<Elem: RowKernel> + ?Sized>(
        &self,
        source: &S,
    ) -> Result<(), crate::HnswError> {
        if source.dim() != self.dim {
            return Err(crate::HnswError::SourceDimension { graph: self.dim, source_dim: source.dim() });
        }
        Ok(())
    }
}
