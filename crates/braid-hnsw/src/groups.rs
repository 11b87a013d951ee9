//! Link groups: extra layer-0 links among the nodes that share a value — Qdrant's
//! payload-aware links (`payload_m`). A caller that keeps payloads adds one group per
//! indexed field and links each point among the points holding its value; a search
//! whose filter is a match on that field ([`OffsetFilter::link_group`]) then walks
//! among matching nodes that are joined to each other, instead of bridging to them
//! through the non-matching ones (`docs/hnsw.md`, "Payload links").

use std::sync::atomic::AtomicU32;

use braid_core::{OffsetFilter, PointOffset, VectorSource};
use braid_distance::{Codes, RowKernel};

use crate::HnswError;
use crate::graph::{Hnsw, LinkGroup, write_list};
use crate::insert::{Pairs, RowPairs, build_codes};
use crate::search::{Coded, Floats, Near, Probe};

/// A value held by at most this many points is linked from an exact scan of them
/// (when the filter can list them) rather than from a walk.
pub const GROUP_SCAN_UP_TO: usize = 2048;

impl Hnsw {
    /// Adds an empty link group under `key` whose nodes keep up to `2·m` links each
    /// (as on layer 0), replacing any group under that key. Link nodes with
    /// [`Hnsw::link_in_group`]. Groups are part of the graph's bytes; a
    /// [`Hnsw::compact`]ed graph has none.
    pub fn add_link_group(&mut self, key: u64, m: usize) -> Result<(), HnswError> {
        if m == 0 || m > 1024 {
            return Err(HnswError::InvalidConfig { why: "a link group's m must be between 1 and 1024" });
        }
        self.remove_link_group(key);
        self.groups.push(LinkGroup::empty(key, 2 * m, self.capacity));
        Ok(())
    }

    /// Drops the link group under `key`; `true` if there was one.
    pub fn remove_link_group(&mut self, key: u64) -> bool {
        let before = self.groups.len();
        self.groups.retain(|g| g.key != key);
        self.groups.len() != before
    }

    /// The link groups, as `(key, m)`, in the order they were added.
    pub fn link_groups(&self) -> Vec<(u64, usize)> {
        self.groups.iter().map(|g| (g.key, g.m0 / 2)).collect()
    }

    /// The group links `offset` holds in group `key` (empty without the group or node).
    pub fn group_links(&self, key: u64, offset: PointOffset) -> Vec<u32> {
        let mut out = Vec::new();
        if let Some(slots) = self.group(key).and_then(|g| g.links(offset.0)) {
            self.read_list(slots, &mut out);
        }
        out
    }

    pub(crate) fn group(&self, key: u64) -> Option<&LinkGroup> {
        self.groups.iter().find(|g| g.key == key)
    }

    /// Links the inserted node at `offset` in group `key` to its nearest nodes among
    /// those each of `blocks` accepts — one filter per value the point holds, passing
    /// the points that share it — and links them back to it (a full list is
    /// re-selected with the neighbour heuristic, as on layer 0). A point with several
    /// values gets an equal share of the group's links for each. With `replace` the
    /// node's own group links are dropped first (its values changed); without, links
    /// other nodes already made to it are kept. Safe to call from several threads at
    /// once, and while others search.
    pub fn link_in_group<S: VectorSource<Elem: RowKernel> + ?Sized>(
        &self,
        source: &S,
        key: u64,
        offset: PointOffset,
        blocks: &[&dyn OffsetFilter],
        replace: bool,
    ) -> Result<(), HnswError> {
        self.link_in_group_coded(source, None, key, offset, blocks, replace)
    }

    /// [`Hnsw::link_in_group`], finding each value's candidates and choosing the links
    /// by `codes` alone when they are one-byte codes of `source`, as
    /// [`Hnsw::insert_coded`] does.
    pub fn link_in_group_coded<S: VectorSource<Elem: RowKernel> + ?Sized>(
        &self,
        source: &S,
        codes: Option<&Codes>,
        key: u64,
        offset: PointOffset,
        blocks: &[&dyn OffsetFilter],
        replace: bool,
    ) -> Result<(), HnswError> {
        self.check_source(source)?;
        if let Some(codes) = codes {
            self.check_codes(source, codes)?;
        }
        let group = self.group(key).ok_or(HnswError::UnknownGroup { key })?;
        let node = offset.0;
        let slots = match group.links(node) {
            Some(slots) if self.level(node).is_some() && offset.index() < source.len() => slots,
            _ => return Err(HnswError::NotInserted { offset: node }),
        };
        let vector = S::Elem::as_query(self.metric, source.vector(offset));
        match build_codes(codes) {
            Some((codes, pairs)) => {
                let query = codes.query(&vector);
                self.link_group_by(
                    &Coded { codes, query: &query },
                    &pairs,
                    group,
                    node,
                    slots,
                    blocks,
                    replace,
                );
            }
            None => {
                let exact = Floats { hnsw: self, source, query: &vector };
                self.link_group_by(
                    &exact,
                    &RowPairs { hnsw: self, source },
                    group,
                    node,
                    slots,
                    blocks,
                    replace,
                );
            }
        }
        Ok(())
    }

    /// [`Hnsw::link_in_group_coded`] once the node's `slots` are found: distances from
    /// the node are `walk`'s, between other nodes `pairs`'.
    #[allow(clippy::too_many_arguments)]
    fn link_group_by<P: Probe, Q: Pairs>(
        &self,
        walk: &P,
        pairs: &Q,
        group: &LinkGroup,
        node: u32,
        slots: &[AtomicU32],
        blocks: &[&dyn OffsetFilter],
        replace: bool,
    ) {
        let share = (group.m0 / blocks.len().max(1)).max(1);
        let mut chosen: Vec<Near> = Vec::new();
        for block in blocks {
            let admit = |n: u32| n != node && !self.is_deleted(n) && block.matches(PointOffset(n));
            let candidates = self.group_candidates(walk, group, *block, &admit);
            for c in self.select_neighbours(pairs, &candidates, share) {
                if !chosen.iter().any(|k| k.node == c.node) {
                    chosen.push(c);
                }
            }
        }
        {
            let _own = self.locks[node as usize].lock();
            let mut merged = chosen.clone();
            if !replace {
                let mut added = Vec::new();
                self.read_list(slots, &mut added);
                for n in added.into_iter().filter(|n| !chosen.iter().any(|c| c.node == *n)) {
                    merged.push(Near { dist: walk.distance(n), node: n });
                }
            }
            if merged.len() > group.m0 {
                merged.sort_unstable();
                merged = self.select_neighbours(pairs, &merged, group.m0);
            }
            let ids: Vec<u32> = merged.iter().map(|c| c.node).collect();
            write_list(slots, &ids);
        }
        for c in &chosen {
            if let Some(back) = group.links(c.node) {
                self.link_back_in(pairs, c.node, node, c.dist, back);
            }
        }
    }

    /// Up to `ef_construct` nodes `admit` accepts, nearest first: an exact scan of a
    /// small block, else a walk along the group from the nodes nearest the probe.
    fn group_candidates<P: Probe>(
        &self,
        probe: &P,
        group: &LinkGroup,
        block: &dyn OffsetFilter,
        admit: &dyn Fn(u32) -> bool,
    ) -> Vec<Near> {
        let ef = self.config.ef_construct;
        if block.estimate().max <= GROUP_SCAN_UP_TO {
            let mut found = Vec::new();
            let listed = block.for_each_match(&mut |o| {
                if o.index() < self.capacity && self.level(o.0).is_some() && admit(o.0) {
                    found.push(Near { dist: probe.distance(o.0), node: o.0 });
                }
            });
            if listed {
                found.sort_unstable();
                found.truncate(ef);
                return found;
            }
        }
        let Some(ep) = self.descend(probe) else { return Vec::new() };
        self.filtered_walk(probe, ep, ef, admit, Some(group)).into_sorted_vec()
    }
}
