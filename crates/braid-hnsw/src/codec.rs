//! The graph as bytes, little-endian (layout in `docs/hnsw.md`):
//!
//! ```text
//! magic "BRAIDHNS" | version u32 (3; 1 and 2 are still read) | metric u8 | 3 zero bytes
//! dim u32 | m u32 | ef_construct u32 | seed u64 | capacity u32
//! entry u64 (node << 8 | level, or u64::MAX) | len u32 | deleted u32
//! levels: capacity × u8 (255 = absent)
//! deleted bits: ⌈capacity / 64⌉ × u64
//! version 3: zero bytes up to the next multiple of 64 from the start
//! layer 0: capacity × (m0 + 1) × u32 (count, then neighbours)
//! upper layers: for each node with level L > 0, in offset order, L × (m + 1) × u32
//! versions 2 and 3: groups u32 (at least 1 in version 2), then per link group
//!     key u64 | m0 u32 | capacity × (m0 + 1) × u32 (count, then neighbours)
//! crc32c u32 of every byte before it
//! ```
//!
//! Version 3's padding puts layer 0 on a 64-byte boundary of the file, so that a graph
//! read from a mapping of it ([`Hnsw::from_held`]) keeps layer 0 in the mapping: the
//! slots are little-endian `u32`s, which is what an `AtomicU32` is in memory on a
//! little-endian CPU. Version 1 was a graph without link groups, version 2 one with.
//!
//! Decoding checks the checksum first, then every structural invariant, so a corrupt
//! or hostile buffer is a typed [`DecodeError`], never a panic or an absurd allocation.

use std::sync::atomic::{AtomicU32, Ordering};

use braid_core::Metric;
use thiserror::Error;

use crate::HnswConfig;
use crate::graph::{ABSENT, Entry, GraphFile, Hnsw, Layer0, MAX_LEVEL, NO_ENTRY};

const MAGIC: &[u8; 8] = b"BRAIDHNS";
/// The format version this code writes, and the newest it reads.
pub const FORMAT_VERSION: u32 = 3;
/// Layer 0 starts at a multiple of this many bytes in version 3.
const LAYER0_ALIGN: usize = 64;
const HEADER: usize = 8 + 4 + 4 + 4 * 3 + 8 + 4 + 8 + 4 + 4;

/// Why bytes could not be read back as a graph.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The bytes do not start with the graph's magic number.
    #[error("not a Braid HNSW graph (bad magic number)")]
    BadMagic,
    /// Written by a format version this code does not read.
    #[error("unsupported HNSW format version {found} (this build reads versions 1 to {FORMAT_VERSION})")]
    UnsupportedVersion {
        /// The version in the header.
        found: u32,
    },
    /// Fewer bytes than the header says there are.
    #[error("truncated: {needed} bytes needed, {available} available")]
    Truncated {
        /// Bytes the layout requires.
        needed: usize,
        /// Bytes present.
        available: usize,
    },
    /// The stored checksum does not match the bytes.
    #[error("checksum mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    ChecksumMismatch {
        /// In the file.
        stored: u32,
        /// Over the bytes read.
        computed: u32,
    },
    /// The bytes are well-formed but describe an impossible graph.
    #[error("corrupt graph: {why}")]
    Corrupt {
        /// Which invariant fails.
        why: &'static str,
    },
}

fn metric_code(m: Metric) -> u8 {
    match m {
        Metric::Cosine => 0,
        Metric::Dot => 1,
        Metric::Euclid => 2,
        Metric::Manhattan => 3,
    }
}

impl Hnsw {
    /// The graph as bytes. Consistent when no insert or delete runs at the same time.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self.write_bytes(&mut out) {
            Ok(()) => out,
            Err(never) => unreachable!("writing to memory failed: {never}"),
        }
    }

    /// Writes [`Hnsw::to_bytes`]'s bytes to `out` a chunk at a time, so that a graph is
    /// never held twice in memory to be written (at 10M points it is 1.4 GB). `out`'s
    /// first error is returned. Consistent when no insert or delete runs at the same time.
    pub fn write_bytes(&self, out: &mut impl std::io::Write) -> std::io::Result<()> {
        self.write_in_chunks(out, 1 << 20)
    }

    fn write_in_chunks(&self, out: &mut impl std::io::Write, chunk: usize) -> std::io::Result<()> {
        // Slots past the last inserted node are empty: the bytes record the graph
        // trimmed to them, and a graph read back grows again on its next insert.
        let capacity =
            self.levels.iter().rposition(|l| l.load(Ordering::Acquire) != ABSENT).map_or(0, |i| i + 1);
        let mut out = Chunks::new(out, chunk);
        out.put(MAGIC)?;
        out.put(&FORMAT_VERSION.to_le_bytes())?;
        out.put(&[metric_code(self.metric), 0, 0, 0])?;
        for v in [self.dim, self.config.m, self.config.ef_construct] {
            out.put(&(v as u32).to_le_bytes())?;
        }
        out.put(&self.config.seed.to_le_bytes())?;
        out.put(&(capacity as u32).to_le_bytes())?;
        out.put(&self.entry.load(Ordering::Acquire).to_le_bytes())?;
        out.put(&(self.len() as u32).to_le_bytes())?;
        out.put(&(self.deleted_len() as u32).to_le_bytes())?;
        for level in &self.levels[..capacity] {
            out.put(&[level.load(Ordering::Acquire)])?;
        }
        for word in &self.deleted[..capacity.div_ceil(64)] {
            out.put(&word.load(Ordering::Acquire).to_le_bytes())?;
        }
        out.pad_to(LAYER0_ALIGN);
        for slot in self.layer0.slots(capacity) {
            out.put(&slot.load(Ordering::Acquire).to_le_bytes())?;
        }
        for node in 0..capacity as u32 {
            for layer in 1..=self.level(node).unwrap_or(0) {
                for slot in self.links(node, layer).expect("a list per level") {
                    out.put(&slot.load(Ordering::Acquire).to_le_bytes())?;
                }
            }
        }
        out.put(&(self.groups.len() as u32).to_le_bytes())?;
        for group in &self.groups {
            out.put(&group.key.to_le_bytes())?;
            out.put(&(group.m0 as u32).to_le_bytes())?;
            for slot in &group.slots[..capacity * (group.m0 + 1)] {
                out.put(&slot.load(Ordering::Acquire).to_le_bytes())?;
            }
        }
        out.finish()
    }

    /// Reads a graph written by [`Hnsw::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Hnsw, DecodeError> {
        Hnsw::decode(bytes, None)
    }

    /// Reads the graph in `file` (bytes written by [`Hnsw::to_bytes`]), leaving layer 0
    /// in the file's memory where it can ([`GraphFile::hold`]: layer 0 4-byte aligned in
    /// the file — version 3 always is, older versions by chance — on a little-endian
    /// CPU) instead of copying it to the heap: [`Hnsw::held_bytes`] says
    /// how much stayed there. Inserts write their new nodes' lists to the heap, and
    /// their links into held lists in place. Checked as [`Hnsw::from_bytes`] checks.
    pub fn from_held(file: std::sync::Arc<dyn GraphFile>) -> Result<Hnsw, DecodeError> {
        let held = file.clone();
        Hnsw::decode(file.bytes(), Some(held))
    }

    fn decode(bytes: &[u8], held: Option<std::sync::Arc<dyn GraphFile>>) -> Result<Hnsw, DecodeError> {
        if bytes.len() < 8 || &bytes[..8] != MAGIC {
            return Err(DecodeError::BadMagic);
        }
        if bytes.len() < HEADER + 4 {
            return Err(DecodeError::Truncated { needed: HEADER + 4, available: bytes.len() });
        }
        let mut r = Reader { bytes: &bytes[..bytes.len() - 4], at: 8 };
        let version = r.u32()?;
        if !(1..=FORMAT_VERSION).contains(&version) {
            return Err(DecodeError::UnsupportedVersion { found: version });
        }
        let stored =
            u32::from_le_bytes(bytes[bytes.len() - 4..].try_into().map_err(|_| DecodeError::BadMagic)?);
        let computed = crc32c::crc32c(&bytes[..bytes.len() - 4]);
        if stored != computed {
            return Err(DecodeError::ChecksumMismatch { stored, computed });
        }
        let metric = match r.take(4)? {
            [0, 0, 0, 0] => Metric::Cosine,
            [1, 0, 0, 0] => Metric::Dot,
            [2, 0, 0, 0] => Metric::Euclid,
            [3, 0, 0, 0] => Metric::Manhattan,
            _ => return Err(DecodeError::Corrupt { why: "unknown metric code" }),
        };
        let dim = r.u32()? as usize;
        let m = r.u32()? as usize;
        let ef_construct = r.u32()? as usize;
        let seed = r.u64()?;
        let capacity = r.u32()? as usize;
        let entry = r.u64()?;
        let len = r.u32()? as usize;
        let deleted_len = r.u32()? as usize;
        let config = HnswConfig { m, ef_construct, seed };
        if config.validate().is_err() || dim == 0 {
            return Err(DecodeError::Corrupt { why: "invalid parameters in the header" });
        }
        let m0 = config.m0();
        // Check the fixed-size sections fit before allocating anything for them.
        let layer0_bytes = capacity
            .checked_mul(m0 + 1)
            .and_then(|x| x.checked_mul(4))
            .ok_or(DecodeError::Corrupt { why: "capacity overflows" })?;
        let layer0_at = (r.at + capacity + capacity.div_ceil(64) * 8).next_multiple_of(if version >= 3 {
            LAYER0_ALIGN
        } else {
            1
        });
        let fixed = (layer0_at - r.at)
            .checked_add(layer0_bytes)
            .ok_or(DecodeError::Corrupt { why: "capacity overflows" })?;
        if r.remaining() < fixed {
            return Err(DecodeError::Truncated { needed: r.at + fixed + 4, available: bytes.len() });
        }
        let layer0_range = layer0_at..layer0_at + layer0_bytes;
        let layer0 = match held {
            Some(file) if file.hold(layer0_range.clone()) => {
                Layer0::holding(m0 + 1, file, capacity, capacity)
            }
            _ => Layer0::on_heap_from(m0 + 1, &bytes[layer0_range.clone()]),
        };
        let mut graph = Hnsw::with_layer0(metric, dim, config, capacity, layer0);
        let levels = r.take(capacity)?;
        let mut inserted = 0;
        for (slot, &level) in graph.levels.iter().zip(levels) {
            if level != ABSENT {
                if level > MAX_LEVEL {
                    return Err(DecodeError::Corrupt { why: "a level above the maximum" });
                }
                inserted += 1;
            }
            slot.store(level, Ordering::Relaxed);
        }
        if inserted != len {
            return Err(DecodeError::Corrupt { why: "node count does not match the levels" });
        }
        let mut deleted = 0;
        for (i, word) in graph.deleted.iter().enumerate() {
            let w = r.u64()?;
            for bit in 0..64 {
                if w & (1 << bit) != 0 {
                    let node = i * 64 + bit;
                    if node >= capacity || levels[node] == ABSENT {
                        return Err(DecodeError::Corrupt { why: "a deleted mark on an absent node" });
                    }
                    deleted += 1;
                }
            }
            word.store(w, Ordering::Relaxed);
        }
        if deleted != deleted_len {
            return Err(DecodeError::Corrupt { why: "deleted count does not match the marks" });
        }
        let check_list = |slots: &[AtomicU32], max: usize, layer: u8| -> Result<(), DecodeError> {
            let count = slots[0].load(Ordering::Relaxed) as usize;
            if count > max {
                return Err(DecodeError::Corrupt { why: "a neighbour list longer than allowed" });
            }
            for s in &slots[1..=count] {
                let n = s.load(Ordering::Relaxed) as usize;
                if n >= capacity || levels[n] == ABSENT || levels[n] < layer {
                    return Err(DecodeError::Corrupt { why: "a link to a node that is not on that layer" });
                }
            }
            Ok(())
        };
        if r.take(layer0_at - r.at)?.iter().any(|&b| b != 0) {
            return Err(DecodeError::Corrupt { why: "non-zero padding before layer 0" });
        }
        r.take(layer0_bytes)?;
        for (node, &level) in levels.iter().enumerate() {
            let slots =
                graph.layer0.list(node as u32).ok_or(DecodeError::Corrupt { why: "layer 0 is short" })?;
            if level == ABSENT {
                if slots[0].load(Ordering::Relaxed) != 0 {
                    return Err(DecodeError::Corrupt { why: "links on an absent node" });
                }
                continue;
            }
            check_list(slots, m0, 0)?;
        }
        for (node, &level) in levels.iter().enumerate() {
            if level == ABSENT || level == 0 {
                continue;
            }
            let n = level as usize * (m + 1);
            if r.remaining() < n * 4 {
                return Err(DecodeError::Truncated { needed: r.at + n * 4 + 4, available: bytes.len() });
            }
            graph
                .upper
                .make(node as u32, level as usize)
                .map_err(|_| DecodeError::Corrupt { why: "more upper-layer lists than a u32 indexes" })?;
            for layer in 1..=level {
                let list = graph.upper.list(node as u32, layer).expect("lists made above");
                for slot in list {
                    slot.store(r.u32()?, Ordering::Relaxed);
                }
                check_list(list, m, layer)?;
            }
        }
        if version >= 2 {
            let groups = r.u32()?;
            if groups == 0 && version == 2 {
                // A graph without groups is written as version 1: one graph, one encoding.
                return Err(DecodeError::Corrupt { why: "version 2 without link groups" });
            }
            for _ in 0..groups {
                let key = r.u64()?;
                let m0 = r.u32()? as usize;
                if m0 == 0 || m0 > 2048 || !m0.is_multiple_of(2) || graph.groups.iter().any(|g| g.key == key)
                {
                    return Err(DecodeError::Corrupt { why: "invalid link group header" });
                }
                let n =
                    capacity.checked_mul(m0 + 1).ok_or(DecodeError::Corrupt { why: "capacity overflows" })?;
                if r.remaining() < n * 4 {
                    return Err(DecodeError::Truncated { needed: r.at + n * 4 + 4, available: bytes.len() });
                }
                let group = crate::graph::LinkGroup::empty(key, m0, capacity);
                for slot in group.slots.iter() {
                    slot.store(r.u32()?, Ordering::Relaxed);
                }
                for (node, &level) in levels.iter().enumerate() {
                    let slots = &group.slots[node * (m0 + 1)..(node + 1) * (m0 + 1)];
                    if level == ABSENT && slots[0].load(Ordering::Relaxed) != 0 {
                        return Err(DecodeError::Corrupt { why: "links on an absent node" });
                    }
                    check_list(slots, m0, 0)?;
                }
                graph.groups.push(group);
            }
        }
        if r.remaining() != 0 {
            return Err(DecodeError::Corrupt { why: "trailing bytes after the graph" });
        }
        if entry == NO_ENTRY {
            if len != 0 {
                return Err(DecodeError::Corrupt { why: "nodes but no entry point" });
            }
        } else {
            let e = Entry { node: (entry >> 8) as u32, level: entry as u8 };
            let top = levels.iter().filter(|&&l| l != ABSENT).max().copied();
            if entry >> 40 != 0
                || (e.node as usize) >= capacity
                || levels[e.node as usize] != e.level
                || top != Some(e.level)
            {
                return Err(DecodeError::Corrupt { why: "the entry point is not a node on the top level" });
            }
        }
        graph.entry.store(entry, Ordering::Relaxed);
        graph.len.store(len, Ordering::Relaxed);
        graph.deleted_count.store(deleted_len, Ordering::Relaxed);
        Ok(graph)
    }

    /// Writes [`Hnsw::to_bytes`] to `path` (through a temporary file renamed into place).
    pub fn write_to(&self, path: &std::path::Path) -> std::io::Result<()> {
        let tmp = path.with_extension("tmp");
        let mut file = std::fs::File::create(&tmp)?;
        self.write_bytes(&mut file)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    }

    /// Reads a graph file written by [`Hnsw::write_to`].
    pub fn read_from(path: &std::path::Path) -> Result<Hnsw, crate::HnswError> {
        let bytes = std::fs::read(path).map_err(|e| crate::HnswError::Io { message: e.to_string() })?;
        Hnsw::from_bytes(&bytes).map_err(crate::HnswError::Decode)
    }
}

/// Bytes gathered into chunks, each checksummed and written whole: the graph's many
/// four-byte slots are neither written nor checksummed one at a time.
struct Chunks<'a, W: std::io::Write> {
    out: &'a mut W,
    /// Bytes gathered before they are written.
    size: usize,
    chunk: Vec<u8>,
    /// Bytes handed to `out` so far.
    written: usize,
    crc: u32,
}

impl<'a, W: std::io::Write> Chunks<'a, W> {
    fn new(out: &'a mut W, size: usize) -> Self {
        Chunks { out, size, chunk: Vec::with_capacity(size + 8), written: 0, crc: 0 }
    }

    fn put(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.chunk.extend_from_slice(bytes);
        if self.chunk.len() >= self.size { self.flush() } else { Ok(()) }
    }

    /// Zero bytes up to the next multiple of `align` from the start.
    fn pad_to(&mut self, align: usize) {
        let at = self.written + self.chunk.len();
        self.chunk.resize(self.chunk.len() + (at.next_multiple_of(align) - at), 0);
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.crc = crc32c::crc32c_append(self.crc, &self.chunk);
        self.out.write_all(&self.chunk)?;
        self.written += self.chunk.len();
        self.chunk.clear();
        Ok(())
    }

    /// Writes what is left, then the checksum of every byte before it.
    fn finish(mut self) -> std::io::Result<()> {
        self.flush()?;
        self.out.write_all(&self.crc.to_le_bytes())
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn remaining(&self) -> usize {
        self.bytes.len() - self.at
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.remaining() < n {
            return Err(DecodeError::Truncated { needed: self.at + n + 4, available: self.bytes.len() + 4 });
        }
        let out = &self.bytes[self.at..self.at + n];
        self.at += n;
        Ok(out)
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self) -> Result<u64, DecodeError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }
}

#[cfg(test)]
mod tests {
    use braid_core::DenseVectors;

    use super::*;
    use crate::HnswConfig;

    /// Written in chunks of any size — here smaller than the header, and not a divisor
    /// of layer 0's alignment — the bytes are the same, and read back.
    #[test]
    fn chunked_writes_give_the_same_bytes() {
        let mut source = DenseVectors::new(6);
        for i in 0..400 {
            let x = i as f32;
            source.push(&[x.sin(), x.cos(), (x * 0.3).sin(), (x * 0.7).cos(), 1.0, (x * 0.1).sin()]);
        }
        let config = HnswConfig { m: 6, ef_construct: 24, seed: 5 };
        let mut graph = Hnsw::build(&source, Metric::Cosine, config, 1).unwrap();
        graph.add_link_group(9, 4).unwrap();
        let whole = graph.to_bytes();
        for chunk in [1, 7, 61, 4096] {
            let mut out = Vec::new();
            graph.write_in_chunks(&mut out, chunk).unwrap();
            assert!(out == whole, "chunks of {chunk} bytes");
        }
        assert_eq!(Hnsw::from_bytes(&whole).unwrap().to_bytes(), whole);
    }
}
