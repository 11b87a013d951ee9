//! The upper layers' lists. About one node in `m` has any, so they are not kept per
//! node: a node's lists (levels `1..=level`, `m + 1` words each) are consecutive
//! slots of one arena, and the node keeps the index of its first (4 bytes; a
//! `OnceLock<Box<[_]>>` per node took 24, plus an allocation per list block).
//!
//! The arena grows while searches read it, without a lock: it is a sequence of fixed
//! chunks of lists, allocated when first handed out, found through a fixed array of
//! groups (group `g` holds `2^g` chunks), each set once. Slots are handed out by one
//! atomic counter, and a node's index is published (release) only once its slots
//! exist, so a reader that sees the index (acquire) finds them.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

use crate::graph::{atomics, copy_words};

/// Words per chunk, about: a chunk holds a whole number of lists.
const CHUNK_WORDS: usize = 4096;
/// Groups of chunks: enough for `u32::MAX` lists of one word.
const GROUPS: usize = 33;

type Chunk = Box<[AtomicU32]>;

/// See the module documentation.
pub(crate) struct Upper {
    /// Words per list (`m + 1`: a count, then the neighbours).
    width: usize,
    /// Lists per chunk.
    per_chunk: usize,
    /// Per node: 1 + the index of its first list, or 0 for none.
    first: Box<[AtomicU32]>,
    /// Lists handed out.
    next: AtomicUsize,
    groups: [OnceLock<Box<[OnceLock<Chunk>]>>; GROUPS],
}

impl Upper {
    /// No lists, for `capacity` nodes of lists `width` words wide.
    pub(crate) fn new(width: usize, capacity: usize) -> Upper {
        Upper {
            width,
            per_chunk: (CHUNK_WORDS / width).max(1),
            first: atomics(capacity, || AtomicU32::new(0)),
            next: AtomicUsize::new(0),
            groups: std::array::from_fn(|_| OnceLock::new()),
        }
    }

    /// The same lists for `capacity` nodes (at least as many as before).
    pub(crate) fn grown(self, capacity: usize) -> Upper {
        let first = atomics(capacity, || AtomicU32::new(0));
        copy_words(&first, &self.first);
        Upper { first, ..self }
    }

    /// Makes `levels` zeroed lists for `node`, which has none; the caller holds the
    /// node's lock. Refuses more lists than a `u32` index reaches.
    pub(crate) fn make(&self, node: u32, levels: usize) -> Result<(), crate::HnswError> {
        debug_assert_eq!(self.first[node as usize].load(Ordering::Relaxed), 0);
        let start = self.next.fetch_add(levels, Ordering::Relaxed);
        if start + levels >= u32::MAX as usize {
            return Err(crate::HnswError::InvalidConfig { why: "more upper-layer lists than a u32 indexes" });
        }
        for chunk in start / self.per_chunk..=(start + levels - 1) / self.per_chunk {
            self.chunk_or_make(chunk);
        }
        self.first[node as usize].store(start as u32 + 1, Ordering::Release);
        Ok(())
    }

    /// The slots of `node`'s list on `layer` (1 or more): `[count, n1, …]`, or `None`
    /// when the node has no lists. The caller knows the node reaches `layer`.
    #[inline]
    pub(crate) fn list(&self, node: u32, layer: u8) -> Option<&[AtomicU32]> {
        let first = self.first.get(node as usize)?.load(Ordering::Acquire);
        if first == 0 {
            return None;
        }
        let list = first as usize - 1 + layer as usize - 1;
        let chunk = self.chunk(list / self.per_chunk)?;
        let at = (list % self.per_chunk) * self.width;
        chunk.get(at..at + self.width)
    }

    /// Heap bytes: the chunks handed out, their groups' tables and the per-node index.
    pub(crate) fn bytes(&self) -> usize {
        let lists = self.next.load(Ordering::Relaxed);
        let chunks = lists.div_ceil(self.per_chunk);
        let tables: usize = self.groups.iter().filter_map(OnceLock::get).map(|g| g.len()).sum();
        chunks * self.per_chunk * self.width * 4
            + tables * std::mem::size_of::<OnceLock<Chunk>>()
            + self.first.len() * 4
    }

    /// Lists handed out.
    #[cfg(test)]
    pub(crate) fn lists(&self) -> usize {
        self.next.load(Ordering::Relaxed)
    }

    /// Chunk `j` lives in group `ilog2(j + 1)` at `j + 1 − 2^group`.
    fn place(j: usize) -> (usize, usize) {
        let group = (j + 1).ilog2() as usize;
        (group, j + 1 - (1 << group))
    }

    fn chunk(&self, j: usize) -> Option<&Chunk> {
        let (group, at) = Upper::place(j);
        self.groups.get(group)?.get()?.get(at)?.get()
    }

    fn chunk_or_make(&self, j: usize) -> &Chunk {
        let (group, at) = Upper::place(j);
        let table =
            self.groups[group].get_or_init(|| (0..1usize << group).map(|_| OnceLock::new()).collect());
        table[at].get_or_init(|| atomics(self.per_chunk * self.width, || AtomicU32::new(0)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_are_found_where_they_were_made_across_chunks() {
        let width = 17;
        let upper = Upper::new(width, 2000);
        // Levels 1..=5 in turn: blocks cross chunk boundaries (240 lists per chunk).
        let mut made = Vec::new();
        for node in 0..2000u32 {
            let levels = (node % 5) as usize + 1;
            if node % 3 == 0 {
                continue;
            }
            upper.make(node, levels).unwrap();
            for layer in 1..=levels as u8 {
                let list = upper.list(node, layer).unwrap();
                assert_eq!(list.len(), width);
                assert!(list.iter().all(|w| w.load(Ordering::Relaxed) == 0));
                list[0].store(node * 8 + layer as u32, Ordering::Relaxed);
            }
            made.push((node, levels));
        }
        for &(node, levels) in &made {
            for layer in 1..=levels as u8 {
                assert_eq!(
                    upper.list(node, layer).unwrap()[0].load(Ordering::Relaxed),
                    node * 8 + layer as u32
                );
            }
        }
        assert!(upper.list(0, 1).is_none());
        assert!(upper.list(5000, 1).is_none());
        let lists: usize = made.iter().map(|m| m.1).sum();
        assert_eq!(upper.lists(), lists);
        let grown = upper.grown(4000);
        assert_eq!(grown.list(1, 2).unwrap()[0].load(Ordering::Relaxed), 8 + 2);
        grown.make(3999, 1).unwrap();
        assert!(grown.list(3999, 1).is_some());
        // Chunks whole, tables and the index: within a chunk of the lists' own words.
        let words = (lists + 1) * width * 4;
        assert!(grown.bytes() >= words + 4000 * 4);
        assert!(grown.bytes() < words + 4000 * 4 + CHUNK_WORDS * 4 + 64 * 24);
    }

    #[test]
    fn wide_lists_fill_a_chunk_each() {
        let upper = Upper::new(5000, 4);
        upper.make(0, 3).unwrap();
        upper.make(1, 1).unwrap();
        for layer in 1..=3 {
            assert_eq!(upper.list(0, layer).unwrap().len(), 5000);
        }
        assert_eq!(upper.lists(), 4);
    }

    #[test]
    fn places_cover_chunks_once() {
        let mut seen = std::collections::HashSet::new();
        for j in 0..10_000 {
            let (g, at) = Upper::place(j);
            assert!(at < 1 << g);
            assert!(seen.insert((g, at)));
        }
    }
}
