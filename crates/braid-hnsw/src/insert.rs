//! Writing the graph: levels, insertion with the neighbour-selection heuristic,
//! concurrent build, deletes and compaction.

use std::sync::atomic::{AtomicUsize, Ordering};

use braid_core::{Metric, PointOffset, VectorSource};
use braid_distance::{CodePairs, Codes, RowKernel};

use crate::graph::{ABSENT, Entry, Hnsw, Layer0, MAX_LEVEL, copy_words};
use crate::search::{Coded, Floats, Near, Probe};
use crate::upper::Upper;
use crate::visited::with_visited;
use crate::{HnswConfig, HnswError};

/// The codes a build walks and links by, with their pairwise distances: one-byte
/// codes only. Binary and product codes rank too coarsely to find a node's neighbours
/// by; with them (or none) a build measures by the rows.
pub(crate) fn build_codes(codes: Option<&Codes>) -> Option<(&Codes, CodePairs<'_>)> {
    codes.and_then(|c| Some((c, c.pairs()?)))
}

/// Distances between stored nodes, as the neighbour heuristic and the links back
/// measure them: by the rows (exact) or by one-byte codes alone.
pub(crate) trait Pairs {
    /// A stored node made ready to be measured from.
    type Base<'b>
    where
        Self: 'b;
    /// `node` as a base, converted into `scratch` where its row needs converting.
    fn base<'b>(&'b self, node: u32, scratch: &'b mut Vec<f32>) -> Self::Base<'b>;
    /// The ranking distance from `base` to stored node `node`.
    fn distance(&self, base: &Self::Base<'_>, node: u32) -> f32;
}

/// [`Pairs`] by the rows.
pub(crate) struct RowPairs<'a, S: ?Sized> {
    pub hnsw: &'a Hnsw,
    pub source: &'a S,
}

impl<S: VectorSource<Elem: RowKernel> + ?Sized> Pairs for RowPairs<'_, S> {
    type Base<'b>
        = &'b [f32]
    where
        Self: 'b;
    #[inline(always)]
    fn base<'b>(&'b self, node: u32, scratch: &'b mut Vec<f32>) -> &'b [f32] {
        S::Elem::as_query_into(self.hnsw.metric, self.source.vector(PointOffset(node)), scratch)
    }
    #[inline(always)]
    fn distance(&self, base: &&[f32], node: u32) -> f32 {
        self.hnsw.distance(base, self.source.vector(PointOffset(node)))
    }
}

impl Pairs for CodePairs<'_> {
    type Base<'b>
        = u32
    where
        Self: 'b;
    #[inline(always)]
    fn base<'b>(&'b self, node: u32, _scratch: &'b mut Vec<f32>) -> u32 {
        node
    }
    #[inline(always)]
    fn distance(&self, base: &u32, node: u32) -> f32 {
        CodePairs::distance(self, *base as usize, node as usize)
    }
}

/// SplitMix64: a node's level depends only on the seed and its offset, so a
/// single-threaded build is reproducible and a parallel one draws the same levels.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Hnsw {
    /// An empty graph for vectors of `dim` components that can hold offsets
    /// `0..capacity`.
    pub fn new(metric: Metric, dim: usize, config: HnswConfig, capacity: usize) -> Result<Hnsw, HnswError> {
        config.validate()?;
        if dim == 0 {
            return Err(HnswError::InvalidConfig { why: "dimension must be at least 1" });
        }
        if capacity > u32::MAX as usize {
            return Err(HnswError::InvalidConfig { why: "capacity is limited to u32::MAX offsets" });
        }
        Ok(Hnsw::empty(metric, dim, config, capacity))
    }

    /// Builds a graph over every vector of `source` on `threads` threads (1 gives a
    /// reproducible graph for a given seed).
    pub fn build<S: VectorSource<Elem: RowKernel> + ?Sized>(
        source: &S,
        metric: Metric,
        config: HnswConfig,
        threads: usize,
    ) -> Result<Hnsw, HnswError> {
        let graph = Hnsw::new(metric, source.dim(), config, source.len())?;
        graph.insert_all(source, 0..source.len() as u32, threads)?;
        Ok(graph)
    }

    /// Inserts `offsets` from `threads` threads (work is handed out one offset at a time,
    /// in order). Stops at the first error.
    pub fn insert_all<S: VectorSource<Elem: RowKernel> + ?Sized>(
        &self,
        source: &S,
        offsets: impl IntoIterator<Item = u32>,
        threads: usize,
    ) -> Result<(), HnswError> {
        self.insert_all_coded(source, None, offsets, threads)
    }

    /// [`Hnsw::insert_all`], measuring by `codes` where they are one-byte codes of
    /// `source` ([`Hnsw::insert_coded`]).
    pub fn insert_all_coded<S: VectorSource<Elem: RowKernel> + ?Sized>(
        &self,
        source: &S,
        codes: Option<&Codes>,
        offsets: impl IntoIterator<Item = u32>,
        threads: usize,
    ) -> Result<(), HnswError> {
        let offsets: Vec<u32> = offsets.into_iter().collect();
        if threads <= 1 {
            return offsets.iter().try_for_each(|&o| self.insert_coded(source, codes, PointOffset(o)));
        }
        // Each worker claims offsets one at a time (inserts vary in cost); a worker the
        // system will not start leaves its share to the others and the caller.
        let next = AtomicUsize::new(0);
        let failed = parking_lot::Mutex::new(None);
        let worker = |_| {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(&o) = offsets.get(i) else { break };
                if let Err(e) = self.insert_coded(source, codes, PointOffset(o)) {
                    failed.lock().get_or_insert(e);
                    next.store(offsets.len(), Ordering::Relaxed);
                    break;
                }
            }
        };
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            braid_core::run_parts(0..threads, threads, worker)
        }))
        .map_err(|_| HnswError::WorkerPanicked)?;
        failed.into_inner().map_or(Ok(()), Err)
    }

    fn random_level(&self, node: u32) -> u8 {
        // Uniform in (0, 1]: never 0, so the logarithm is finite.
        let u = ((mix(self.config.seed ^ u64::from(node).wrapping_mul(0xD6E8_FEB8_6659_FD93)) >> 11) as f64
            + 1.0)
            / (1u64 << 53) as f64;
        let ml = 1.0 / (self.config.m as f64).ln();
        ((-u.ln() * ml).floor() as u64).min(u64::from(MAX_LEVEL)) as u8
    }

    /// Inserts the vector at `offset` of `source` into the graph. Safe to call from
    /// several threads at once, and while others search.
    pub fn insert<S: VectorSource<Elem: RowKernel> + ?Sized>(
        &self,
        source: &S,
        offset: PointOffset,
    ) -> Result<(), HnswError> {
        self.insert_coded(source, None, offset)
    }

    /// [`Hnsw::insert`], measuring by `codes` alone when they are one-byte codes of
    /// `source` (binary and product codes rank too coarsely to build by): each layer's
    /// beam of `ef_construct` is walked by the node's coded distances, and the
    /// neighbours are chosen, and full lists pruned, by distances between codes
    /// ([`Codes::pairs`]), each of which reads a quarter of a row's bytes. The only row
    /// the insert reads is the node's own, so a build whose rows live on disk does not
    /// wait on them.
    pub fn insert_coded<S: VectorSource<Elem: RowKernel> + ?Sized>(
        &self,
        source: &S,
        codes: Option<&Codes>,
        offset: PointOffset,
    ) -> Result<(), HnswError> {
        self.check_source(source)?;
        if let Some(codes) = codes {
            self.check_codes(source, codes)?;
        }
        let node = offset.0;
        if offset.index() >= self.capacity || offset.index() >= source.len() {
            return Err(HnswError::OffsetOutOfRange {
                offset: node,
                capacity: self.capacity.min(source.len()),
            });
        }
        let level = self.random_level(node);
        let vector = S::Elem::as_query(self.metric, source.vector(offset));
        let vector = &*vector;
        if vector.iter().any(|v| !v.is_finite()) {
            return Err(HnswError::Vector(braid_distance::VectorError::NonFinite {
                index: vector.iter().position(|v| !v.is_finite()).unwrap_or(0),
                value: f32::NAN,
            }));
        }
        // Claim the slot and create the upper-layer block before anyone can see the node.
        let lock = self.locks[node as usize].lock();
        if self.levels[node as usize].load(Ordering::Acquire) != ABSENT {
            return Err(HnswError::AlreadyInserted { offset: node });
        }
        if level > 0 {
            // A slot is claimed once (checked above under its lock), so it has no lists.
            self.upper.make(node, level as usize)?;
        }
        self.levels[node as usize].store(level, Ordering::Release);
        drop(lock);

        // A node that raises the top level holds `top` for its whole insert, so that two
        // such nodes do not race (rare: a fraction 1/m^L of inserts). Searches never wait:
        // they read the entry point atomically.
        let mut top_guard = None;
        let mut entry = self.entry();
        if entry.is_none_or(|e| level > e.level) {
            top_guard = Some(self.top.lock());
            entry = self.entry();
        }
        let raises_top = entry.is_none_or(|e| level > e.level);
        if !raises_top {
            top_guard = None;
        }
        let Some(entry) = entry else {
            // The first node: it is the entry point.
            self.set_entry(Entry { node, level });
            self.len.fetch_add(1, Ordering::AcqRel);
            drop(top_guard);
            return Ok(());
        };

        match build_codes(codes) {
            Some((codes, pairs)) => {
                let query = codes.query(vector);
                self.link_new(&Coded { codes, query: &query }, &pairs, node, level, entry);
            }
            None => {
                let exact = Floats { hnsw: self, source, query: vector };
                self.link_new(&exact, &RowPairs { hnsw: self, source }, node, level, entry);
            }
        }
        if raises_top {
            self.set_entry(Entry { node, level });
        }
        drop(top_guard);
        self.len.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }

    /// Walks down to `node` (at `level`) from `entry` by `walk`, writes the node's own
    /// lists on every layer it shares with the graph, then links its neighbours back.
    /// Distances from the node are `walk`'s; between other nodes (the heuristic, the
    /// links back), `pairs`'.
    fn link_new<P: Probe, Q: Pairs>(&self, walk: &P, pairs: &Q, node: u32, level: u8, entry: Entry) {
        let mut ep = Near { dist: walk.distance(entry.node), node: entry.node };
        for layer in (level + 1..=entry.level).rev() {
            ep = self.greedy(walk, ep, layer);
        }
        let mut entry_points = vec![ep];
        // Links from other nodes to this one are added only once its own lists exist
        // on every layer: a search that reached it through an upper layer before its
        // lower lists were written found a dead end there (no neighbours on layer 0)
        // and returned fewer results than asked. The searches of lower layers read
        // only those layers' lists, so deferring the links back changes no choice.
        let mut links_back = Vec::new();
        for layer in (0..=level.min(entry.level)).rev() {
            let found = with_visited(self.capacity, |visited| {
                self.search_layer(walk, &entry_points, self.config.ef_construct, layer, visited, |n| {
                    n != node
                })
            });
            let candidates = found.into_sorted_vec();
            let chosen = self.select_neighbours(pairs, &candidates, self.config.m);
            {
                let _own = self.locks[node as usize].lock();
                // Other threads may already have linked themselves to this node on this
                // layer (it became reachable through a higher layer): keep those links.
                let mut added = Vec::new();
                self.neighbours(node, layer, &mut added);
                let mut merged = chosen.clone();
                for n in added.into_iter().filter(|n| !chosen.iter().any(|c| c.node == *n)) {
                    merged.push(Near { dist: walk.distance(n), node: n });
                }
                let max = if layer == 0 { self.config.m0() } else { self.config.m };
                if merged.len() > max {
                    merged.sort_unstable();
                    merged = self.select_neighbours(pairs, &merged, max);
                }
                let ids: Vec<u32> = merged.iter().map(|c| c.node).collect();
                self.set_neighbours(node, layer, &ids);
            }
            links_back.push((layer, chosen));
            if !candidates.is_empty() {
                entry_points = candidates;
            }
        }
        for (layer, chosen) in links_back {
            for c in &chosen {
                self.link_back(pairs, c.node, node, c.dist, layer);
            }
        }
    }

    /// The neighbour-selection heuristic (Malkov & Yashunin, algorithm 4, without
    /// extending or keeping pruned candidates): walk the candidates nearest first and
    /// keep one only if it is closer to the base than to every neighbour kept so far,
    /// so that the kept neighbours point in different directions.
    pub(crate) fn select_neighbours<P: Pairs>(&self, pairs: &P, sorted: &[Near], m: usize) -> Vec<Near> {
        if sorted.len() <= m {
            return sorted.to_vec();
        }
        let mut kept: Vec<Near> = Vec::with_capacity(m);
        let mut scratch = Vec::new();
        for &c in sorted {
            if kept.len() >= m {
                break;
            }
            let base = pairs.base(c.node, &mut scratch);
            if kept.iter().all(|k| pairs.distance(&base, k.node) >= c.dist) {
                kept.push(c);
            }
        }
        kept
    }

    /// Adds `new` (at `dist`) to `node`'s list on `layer`; a full list is re-selected
    /// with the heuristic.
    fn link_back<P: Pairs>(&self, pairs: &P, node: u32, new: u32, dist: f32, layer: u8) {
        if let Some(slots) = self.links(node, layer) {
            self.link_back_in(pairs, node, new, dist, slots);
        }
    }

    /// Adds `new` (at `dist`) to `node`'s list `slots` (`[count, n1, …]`, on layer 0,
    /// an upper layer or in a link group); a full list is re-selected with the
    /// heuristic, measuring by `pairs`.
    pub(crate) fn link_back_in<P: Pairs>(
        &self,
        pairs: &P,
        node: u32,
        new: u32,
        dist: f32,
        slots: &[std::sync::atomic::AtomicU32],
    ) {
        let max = slots.len() - 1;
        let _lock = self.locks[node as usize].lock();
        let mut current = Vec::with_capacity(max + 1);
        self.read_list(slots, &mut current);
        if current.contains(&new) {
            return;
        }
        if current.len() < max {
            current.push(new);
            crate::graph::write_list(slots, &current);
            return;
        }
        let mut scratch = Vec::new();
        let base = pairs.base(node, &mut scratch);
        let mut candidates: Vec<Near> =
            current.iter().map(|&n| Near { dist: pairs.distance(&base, n), node: n }).collect();
        candidates.push(Near { dist, node: new });
        candidates.sort_unstable();
        let kept = self.select_neighbours(pairs, &candidates, max);
        let ids: Vec<u32> = kept.iter().map(|k| k.node).collect();
        crate::graph::write_list(slots, &ids);
    }

    /// Makes room for offsets up to `capacity` (no-op when it is not larger). Needs
    /// `&mut self`: callers that share the graph grow it under their write lock.
    pub fn grow(&mut self, capacity: usize) -> Result<(), HnswError> {
        if capacity <= self.capacity {
            return Ok(());
        }
        if capacity > u32::MAX as usize {
            return Err(HnswError::InvalidConfig { why: "capacity is limited to u32::MAX offsets" });
        }
        // Held slots stay where they are; only the heap's tail is copied.
        let layer0 = std::mem::replace(&mut self.layer0, Layer0::on_heap(1, 0)).grown(capacity);
        let mut grown = Hnsw::with_layer0(self.metric, self.dim, self.config, capacity, layer0);
        copy_words(&grown.levels, &self.levels);
        copy_words(&grown.deleted, &self.deleted);
        grown.upper = std::mem::replace(&mut self.upper, Upper::new(1, 0)).grown(capacity);
        grown.entry.store(self.entry.load(Ordering::Acquire), Ordering::Release);
        grown.len.store(self.len(), Ordering::Release);
        grown.deleted_count.store(self.deleted_len(), Ordering::Release);
        for group in std::mem::take(&mut self.groups) {
            let bigger = crate::graph::LinkGroup::empty(group.key, group.m0, capacity);
            copy_words(&bigger.slots, &group.slots);
            grown.groups.push(bigger);
        }
        *self = grown;
        Ok(())
    }

    /// Marks `offset` deleted: searches walk through it but never return it. Returns
    /// `true` if it was inserted and not already deleted.
    pub fn delete(&self, offset: PointOffset) -> bool {
        if self.level(offset.0).is_none() {
            return false;
        }
        let bit = 1u64 << (offset.0 % 64);
        let before = self.deleted[offset.index() / 64].fetch_or(bit, Ordering::AcqRel);
        let newly = before & bit == 0;
        if newly {
            self.deleted_count.fetch_add(1, Ordering::AcqRel);
        }
        newly
    }

    /// Is `offset` deleted?
    pub fn is_deleted_offset(&self, offset: PointOffset) -> bool {
        offset.index() < self.capacity && self.is_deleted(offset.0)
    }

    /// A new graph with the same parameters over the live (inserted, not deleted)
    /// offsets only: the tombstones are gone and their neighbours relinked. Offsets keep
    /// their values (storage renumbers points when it rewrites a segment).
    pub fn compact<S: VectorSource<Elem: RowKernel> + ?Sized>(
        &self,
        source: &S,
        threads: usize,
    ) -> Result<Hnsw, HnswError> {
        self.compact_coded(source, None, threads)
    }

    /// [`Hnsw::compact`], measuring by `codes` as [`Hnsw::insert_all_coded`] does.
    pub fn compact_coded<S: VectorSource<Elem: RowKernel> + ?Sized>(
        &self,
        source: &S,
        codes: Option<&Codes>,
        threads: usize,
    ) -> Result<Hnsw, HnswError> {
        let graph = Hnsw::new(self.metric, self.dim, self.config, self.capacity)?;
        let live = (0..self.capacity as u32).filter(|&n| self.level(n).is_some() && !self.is_deleted(n));
        graph.insert_all_coded(source, codes, live, threads)?;
        Ok(graph)
    }
}

#[cfg(test)]
mod tests {
    use braid_core::DenseVectors;

    use super::*;

    fn near(graph: &Hnsw, source: &DenseVectors, base: &[f32], node: u32) -> Near {
        Near { dist: graph.distance(base, source.vector(PointOffset(node))), node }
    }

    /// Each node has one upper list per level above 0, and they read the same after a
    /// grow and a decode.
    #[test]
    fn upper_lists_are_one_per_level_and_survive_a_grow_and_a_decode() {
        let mut source = DenseVectors::new(4);
        for i in 0..300 {
            let x = i as f32;
            source.push(&[x.sin(), x.cos(), (x * 0.3).sin(), 1.0]);
        }
        let mut graph =
            Hnsw::build(&source, Metric::Cosine, HnswConfig { m: 4, ef_construct: 16, seed: 3 }, 1).unwrap();
        let lists = |g: &Hnsw| -> Vec<Vec<u32>> {
            (0..300u32)
                .flat_map(|node| {
                    let level = g.level(node).unwrap();
                    assert!(g.links(node, level + 1).is_none());
                    (1..=level).map(move |layer| {
                        g.links(node, layer).unwrap().iter().map(|w| w.load(Ordering::Relaxed)).collect()
                    })
                })
                .collect()
        };
        let before = lists(&graph);
        assert!(!before.is_empty());
        assert_eq!(graph.upper.lists(), before.len());
        graph.grow(600).unwrap();
        assert_eq!(lists(&graph), before);
        let decoded = Hnsw::from_bytes(&graph.to_bytes()).unwrap();
        assert_eq!(lists(&decoded), before);
        assert_eq!(decoded.upper.lists(), before.len());
    }

    #[test]
    fn heuristic_prefers_directions_over_nearness() {
        // Base at the origin; A and B lie close together to the east, C to the north.
        // Plain nearest-2 keeps A and B; the heuristic drops B, which is nearer to A
        // than to the base, and keeps C.
        let mut source = DenseVectors::new(2);
        for p in [[0.0, 0.0], [1.0, 0.0], [1.1, 0.05], [0.0, 1.2]] {
            source.push(&p);
        }
        let graph = Hnsw::new(Metric::Euclid, 2, HnswConfig::default(), 4).unwrap();
        let base = source.vector(PointOffset(0)).to_vec();
        let mut sorted: Vec<Near> = [1, 2, 3].iter().map(|&n| near(&graph, &source, &base, n)).collect();
        sorted.sort_unstable();
        let kept: Vec<u32> = graph
            .select_neighbours(&RowPairs { hnsw: &graph, source: &source }, &sorted, 2)
            .iter()
            .map(|n| n.node)
            .collect();
        assert_eq!(kept, vec![1, 3]);
        // With room for everything nothing is pruned.
        let kept: Vec<u32> = graph
            .select_neighbours(&RowPairs { hnsw: &graph, source: &source }, &sorted, 3)
            .iter()
            .map(|n| n.node)
            .collect();
        assert_eq!(kept, vec![1, 2, 3]);
    }

    #[test]
    fn heuristic_may_keep_fewer_than_m() {
        // Every candidate is behind the first one: only the first survives.
        let mut source = DenseVectors::new(1);
        for p in [[0.0], [1.0], [2.0], [3.0], [4.0]] {
            source.push(&p);
        }
        let graph = Hnsw::new(Metric::Euclid, 1, HnswConfig::default(), 5).unwrap();
        let base = [0.0];
        let sorted: Vec<Near> = (1..5).map(|n| near(&graph, &source, &base, n)).collect();
        let kept: Vec<u32> = graph
            .select_neighbours(&RowPairs { hnsw: &graph, source: &source }, &sorted, 2)
            .iter()
            .map(|n| n.node)
            .collect();
        assert_eq!(kept, vec![1]);
    }

    #[test]
    fn levels_follow_the_geometric_distribution() {
        let graph = Hnsw::new(Metric::Dot, 2, HnswConfig { m: 16, ef_construct: 10, seed: 9 }, 0).unwrap();
        let above: usize = (0..100_000u32).filter(|&n| graph.random_level(n) >= 1).count();
        // P(level ≥ 1) = 1/m = 6.25 %.
        assert!((5_500..7_000).contains(&above), "{above} of 100000 above layer 0");
    }
}
