//! Reading the graph: greedy descent, the beam search on one layer, filtered search,
//! exact search and the choice between them.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

use braid_core::{Cardinality, OffsetFilter, PointOffset, ScoredOffset, VectorSource};
use braid_distance::{CodeKind, CodedQuery, Codes, RowKernel, TopK, prepare};

use crate::HnswError;
use crate::graph::{Hnsw, LinkGroup};
use crate::visited::{Visited, with_visited};

/// A node with its distance to the query; ordered by distance, then offset.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Near {
    pub dist: f32,
    pub node: u32,
}

impl Eq for Near {}
impl PartialOrd for Near {
    #[inline]
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Near {
    #[inline]
    fn cmp(&self, other: &Self) -> Ordering {
        self.dist.total_cmp(&other.dist).then(self.node.cmp(&other.node))
    }
}

/// Measures graph nodes against one query for a walk through the graph.
pub(crate) trait Probe {
    /// The ranking distance (lower is better) from the query to `node`.
    fn distance(&self, node: u32) -> f32;
    /// Asks the memory system for the start of `node`'s data, early: a walk calls it
    /// for every new neighbour of a node before scoring any of them.
    fn prefetch(&self, node: u32);
    /// Asks for the rest of `node`'s data, one node ahead of [`Probe::distance`].
    #[inline(always)]
    fn prefetch_rest(&self, _node: u32) {}
}

/// Measures with the stored `f32` vectors: exact distances.
pub(crate) struct Floats<'a, S: ?Sized> {
    pub hnsw: &'a Hnsw,
    pub source: &'a S,
    pub query: &'a [f32],
}

impl<S: VectorSource<Elem: RowKernel> + ?Sized> Probe for Floats<'_, S> {
    #[inline(always)]
    fn distance(&self, node: u32) -> f32 {
        self.hnsw.distance(self.query, self.source.vector(PointOffset(node)))
    }
    #[inline(always)]
    fn prefetch(&self, node: u32) {
        prefetch_head(self.source.vector(PointOffset(node)));
    }
    #[inline(always)]
    fn prefetch_rest(&self, node: u32) {
        prefetch_rest(self.source.vector(PointOffset(node)));
    }
}

/// Measures with one-byte codes: approximate distances, re-scored afterwards.
pub(crate) struct Coded<'a> {
    pub codes: &'a Codes,
    pub query: &'a CodedQuery,
}

impl Probe for Coded<'_> {
    #[inline(always)]
    fn distance(&self, node: u32) -> f32 {
        self.codes.distance(self.query, node as usize)
    }
    #[inline(always)]
    fn prefetch(&self, node: u32) {
        self.codes.prefetch(node as usize);
    }
}

/// Measures with a score of the caller's (higher is better) over the stored vectors:
/// recommendation, discovery and context queries, whose score is not a distance to
/// one vector.
struct ScoredBy<'a, S: ?Sized, F> {
    source: &'a S,
    score: &'a F,
    metric: braid_core::Metric,
    /// Where rows of another element type are widened for `score`.
    scratch: std::cell::RefCell<Vec<f32>>,
}

impl<S: VectorSource<Elem: RowKernel> + ?Sized, F: Fn(&[f32]) -> f32> Probe for ScoredBy<'_, S, F> {
    #[inline(always)]
    fn distance(&self, node: u32) -> f32 {
        let mut scratch = self.scratch.borrow_mut();
        -(self.score)(S::Elem::as_query_into(
            self.metric,
            self.source.vector(PointOffset(node)),
            &mut scratch,
        ))
    }
    #[inline(always)]
    fn prefetch(&self, node: u32) {
        prefetch_head(self.source.vector(PointOffset(node)));
    }
    #[inline(always)]
    fn prefetch_rest(&self, node: u32) {
        prefetch_rest(self.source.vector(PointOffset(node)));
    }
}

/// How many of the best coded candidates are re-scored with the original vectors:
/// `RESCORE_FACTOR · k`, and at least `RESCORE_MIN`.
pub const RESCORE_FACTOR: usize = 4;
/// See [`RESCORE_FACTOR`].
pub const RESCORE_MIN: usize = 40;

/// [`RESCORE_FACTOR`] for binary and product codes, whose ranking is coarser.
pub const BINARY_RESCORE_FACTOR: usize = 10;
/// [`RESCORE_MIN`] for binary and product codes.
pub const BINARY_RESCORE_MIN: usize = 100;

fn rescore_pool(k: usize, kind: CodeKind) -> usize {
    if kind.is_coarse() {
        k.saturating_mul(BINARY_RESCORE_FACTOR).max(BINARY_RESCORE_MIN)
    } else {
        k.saturating_mul(RESCORE_FACTOR).max(RESCORE_MIN)
    }
}

/// How a coded search turns the candidates its codes ranked into answers (Qdrant's
/// search-time `quantization: {rescore, oversampling}`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Rescore {
    /// Re-score the best `max(RESCORE_FACTOR · k, RESCORE_MIN)` candidates with the
    /// original vectors (`BINARY_RESCORE_…` for binary codes; a graph walk keeps its
    /// beam `max(ef, k)`): exact scores.
    #[default]
    Pool,
    /// Re-score exactly the best `n` candidates (at least `k`), the beam widened to
    /// `max(ef, n)` so that a graph walk finds that many: `ceil(k · oversampling)`.
    Oversample(usize),
    /// Answer with the codes' approximate scores and never read the original vectors.
    Off,
}

impl Rescore {
    /// How many coded candidates to re-score for `k` answers, or `None` for none.
    fn pool(self, k: usize, kind: CodeKind) -> Option<usize> {
        match self {
            Rescore::Pool => Some(rescore_pool(k, kind)),
            Rescore::Oversample(n) => Some(n.max(k)),
            Rescore::Off => None,
        }
    }

    /// The beam a graph walk needs for `k` answers: binary and product codes rank
    /// too coarsely for a beam of `max(ef, k)` to hold the true neighbours, so their
    /// walk widens to the pool it re-scores.
    fn beam(self, k: usize, kind: CodeKind) -> usize {
        match self {
            Rescore::Oversample(n) => n.max(k),
            Rescore::Pool if kind.is_coarse() => rescore_pool(k, kind),
            Rescore::Pool | Rescore::Off => k,
        }
    }
}

/// How a filtered search walks layer 0.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(u8)]
pub enum FilteredWalk {
    /// [`FilteredWalk::TwoHop`] when the filter's estimate puts between
    /// [`TWO_HOP_FROM`] and [`TWO_HOP_BELOW`] of the live points through it,
    /// [`FilteredWalk::Plain`] otherwise.
    #[default]
    Auto = 0,
    /// Every neighbour is scored and steers the walk; only matching ones enter the
    /// result. Costs about `1 / selectivity` times an unfiltered walk, because the
    /// beam's bound only tightens with matching nodes.
    Plain = 1,
    /// Only matching nodes are scored: a node's matching neighbours, then the matching
    /// neighbours of its non-matching ones, up to `m0` per step (ACORN-1's two-hop
    /// expansion, Patel et al., SIGMOD 2024, on the ordinary graph). The walk moves
    /// through the subgraph of matching points without paying for the others' distances.
    /// It starts from a small unfiltered beam ([`TWO_HOP_SEEDS`]) around the query, and
    /// walks plainly when it runs out of matching nodes before filling its beam.
    TwoHop = 2,
}

impl FilteredWalk {
    fn from_byte(b: u8) -> FilteredWalk {
        match b {
            1 => FilteredWalk::Plain,
            2 => FilteredWalk::TwoHop,
            _ => FilteredWalk::Auto,
        }
    }
}

/// Below this estimated selectivity (and from [`TWO_HOP_FROM`]) a filtered walk uses
/// [`FilteredWalk::TwoHop`]; above it the plain walk costs about as little or less
/// (measured on the WordNet/MiniLM set, `docs/hnsw.md`, "Filtered walks").
pub const TWO_HOP_BELOW: f64 = 0.4;

/// Below this estimated selectivity the walk stays plain: two hops connect the matching
/// points less well as they thin out (recall@10 at ef 64 on the WordNet/MiniLM set:
/// 0.995 at 3.3 %, 0.989 at 0.9 %, against the plain walk's 0.9997 and 1.0), and the
/// planner sends most such filters to the exact scan anyway.
pub const TWO_HOP_FROM: f64 = 0.02;

/// The width of the unfiltered beam that seeds a two-hop walk (see [`FilteredWalk::TwoHop`]).
pub const TWO_HOP_SEEDS: usize = 16;

/// The width of the beam on layer 1 that seeds a search's walk along a link group:
/// the walk starts from the layer-1 nodes nearest the query rather than from the
/// layer-0 beam of [`TWO_HOP_SEEDS`], whose unfiltered distances were about a fifth
/// of a group walk reaching recall 0.99. On the 100k WordNet/MiniLM set 8 needed the
/// fewest distances at recall 0.99 among the descent's node alone, 4, 8 and 16
/// (`docs/hnsw.md`, "Seeding a group walk").
pub const GROUP_SEEDS: usize = 8;

/// What a two-hop walk costs, as a multiple of an unfiltered walk of the same `ef`:
/// 2.7–3.7× measured between 1 % and 30 % selectivity (`cargo bench -p braid-hnsw
/// --bench filtered`), where the plain walk costs about `1 / selectivity`.
pub const TWO_HOP_COST: f64 = 3.5;

/// Which nodes a walk may return: live ones a filter accepts. For a two-hop walk the
/// filter's matches are copied into a dense bitset first (one bit per node), so that
/// testing the many two-hop neighbours costs a load, not a bitmap lookup.
enum Admit<'f> {
    All,
    Filter(&'f dyn OffsetFilter),
    Bits(Vec<u64>),
}

impl Admit<'_> {
    #[inline(always)]
    fn matches(&self, node: u32) -> bool {
        match self {
            Admit::All => true,
            Admit::Filter(f) => f.matches(PointOffset(node)),
            Admit::Bits(bits) => bits.get(node as usize / 64).is_some_and(|w| w & (1 << (node % 64)) != 0),
        }
    }
}

/// A vector's first cache line, asked for as soon as the walk meets the node. Asking
/// for more lines of every new neighbour at once fills the core's miss buffers and the
/// prefetches themselves stall; each vector's other lines are asked for one vector
/// ahead of its distance instead ([`prefetch_rest`]). Measured against four lines per
/// neighbour up front on the WordNet/MiniLM set (`docs/hnsw.md`, "Prefetching").
#[inline(always)]
fn prefetch_head<T>(v: &[T]) {
    braid_distance::simd::prefetch(v, 0);
}

/// Every cache line of a vector after its first.
#[inline(always)]
fn prefetch_rest<T>(v: &[T]) {
    let line = 64 / std::mem::size_of::<T>().max(1);
    for i in (line..v.len()).step_by(line) {
        braid_distance::simd::prefetch(v, i);
    }
}

/// What a filtered walk along a link group costs, in the planner's unfiltered-walk
/// units ([`Hnsw::choose_path_priced`]). Measured, the walk costs 1.1–1.6 unfiltered
/// walks at 10 % selectivity, but over int8 codes the planner's model prices a walk
/// at less than its cost against a coded scan. 3.0 puts the model's crossing at `ef`
/// ≈ 170–200 for a 10 % filter at 100k points, where the measured walk and coded scan
/// are about even; near the crossing the scan is the better choice, being exact. At
/// 1M points, where a 10 % scan costs ten times more, it walks (`docs/hnsw.md`,
/// "Expanding a match along its group alone").
pub const GROUP_WALK_COST: f64 = 3.0;

/// Calibration of [`Hnsw::choose_path`]: on 100,000 points (384-d, m = 16, ef = 100)
/// one unfiltered graph search took as long as exactly scoring ~720 scattered matching
/// points (`cargo xtask bench query`), which this divisor reproduces.
pub const GRAPH_COST_DIVISOR: f64 = 16.0;

/// How much cheaper a point of a coded scan is than a float one, for
/// [`Hnsw::choose_path_priced`]: measured on the 100k MiniLM set (`cargo xtask bench
/// database`, 10 % filter), a float scan cost 122 ns per matching point and a coded one
/// 35 ns (3.5×), while codes made graph walks about 1.4× faster; 3.5 / 1.4 ≈ 2.5.
pub const CODED_SCAN_ADVANTAGE: f64 = 2.5;

pub use braid_core::{PathChoice, SearchPath};

/// The two heaps of a layer's beam search (Malkov & Yashunin, algorithm 2): the
/// candidates still to expand, closest first, and the `ef` closest admitted nodes, worst
/// on top, whose worst distance bounds the search once the beam is full.
struct Beam {
    candidates: BinaryHeap<Reverse<Near>>,
    results: BinaryHeap<Near>,
    bound: f32,
    ef: usize,
}

impl Beam {
    /// A beam of `ef` over a graph of `capacity` nodes, seeded with the unvisited
    /// `entry` nodes (all steer; the admitted ones are results).
    fn new(
        ef: usize,
        capacity: usize,
        entry: &[Near],
        visited: &mut Visited,
        admit: impl Fn(u32) -> bool,
    ) -> Beam {
        // A beam wider than the graph cannot fill: size the heaps by what can exist, so a
        // caller's huge `ef` costs nothing extra.
        let ef = ef.clamp(1, capacity.max(1));
        let mut beam = Beam {
            candidates: BinaryHeap::with_capacity(ef * 2),
            results: BinaryHeap::with_capacity(ef + 1),
            bound: f32::INFINITY,
            ef,
        };
        for &e in entry {
            if visited.insert(e.node) {
                beam.candidates.push(Reverse(e));
                if admit(e.node) {
                    beam.keep(e);
                }
            }
        }
        beam
    }

    /// The closest candidate left, unless it is beyond the bound (the search is done).
    #[inline]
    fn next(&mut self) -> Option<Near> {
        let Reverse(current) = self.candidates.pop()?;
        (current.dist <= self.bound).then_some(current)
    }

    /// A scored node: a candidate when it can still improve the beam, and a result
    /// when `admitted` also says so.
    #[inline]
    fn offer(&mut self, near: Near, admitted: impl FnOnce() -> bool) {
        if near.dist < self.bound || self.results.len() < self.ef {
            self.candidates.push(Reverse(near));
            if admitted() {
                self.keep(near);
            }
        }
    }

    /// Scores `fresh` (whose first lines were asked for) and offers each, asking for
    /// the rest of the next one's data while this one is scored.
    #[inline]
    fn offer_all<P: Probe>(&mut self, probe: &P, fresh: &[u32], admit: impl Fn(u32) -> bool) {
        if let Some(&first) = fresh.first() {
            probe.prefetch_rest(first);
        }
        for (i, &n) in fresh.iter().enumerate() {
            if let Some(&next) = fresh.get(i + 1) {
                probe.prefetch_rest(next);
            }
            self.offer(Near { dist: probe.distance(n), node: n }, || admit(n));
        }
    }

    #[inline]
    fn keep(&mut self, near: Near) {
        self.results.push(near);
        if self.results.len() > self.ef {
            self.results.pop();
        }
        if self.results.len() >= self.ef {
            self.bound = self.results.peek().map_or(f32::INFINITY, |w| w.dist);
        }
    }
}

impl Hnsw {
    /// Greedy walk on `layer` from `start` towards the probe's query: the closest node
    /// found.
    pub(crate) fn greedy<P: Probe>(&self, probe: &P, start: Near, layer: u8) -> Near {
        let mut best = start;
        let mut buf = Vec::new();
        loop {
            let mut improved = false;
            self.neighbours(best.node, layer, &mut buf);
            for &n in &buf {
                let d = probe.distance(n);
                if d < best.dist {
                    best = Near { dist: d, node: n };
                    improved = true;
                }
            }
            if !improved {
                return best;
            }
        }
    }

    /// Beam search on one layer (Malkov & Yashunin, algorithm 2). Every visited node
    /// steers the search; only nodes for which `admit` holds enter the result, which
    /// keeps the `ef` closest admitted nodes. Returns them in a max-heap (worst on top).
    pub(crate) fn search_layer<P: Probe>(
        &self,
        probe: &P,
        entry: &[Near],
        ef: usize,
        layer: u8,
        visited: &mut Visited,
        admit: impl Fn(u32) -> bool,
    ) -> BinaryHeap<Near> {
        let mut beam = Beam::new(ef, self.capacity, entry, visited, &admit);
        let mut buf = Vec::with_capacity(self.config.m0());
        let mut fresh = Vec::with_capacity(self.config.m0());
        while let Some(current) = beam.next() {
            self.neighbours(current.node, layer, &mut buf);
            // Mark and prefetch every unvisited neighbour first, then score them: the
            // memory system fetches several vectors at once instead of one per distance.
            fresh.clear();
            for &n in &buf {
                if visited.insert(n) {
                    probe.prefetch(n);
                    fresh.push(n);
                }
            }
            beam.offer_all(probe, &fresh, &admit);
        }
        beam.results
    }

    /// The selection, best first, with ranking distances turned into user scores.
    fn user_scores(&self, top: TopK) -> Vec<ScoredOffset> {
        top.into_sorted_vec()
            .into_iter()
            .map(|s| ScoredOffset { offset: s.offset, score: self.user_score(s.score) })
            .collect()
    }

    fn prepared_query(&self, query: &[f32]) -> Result<Vec<f32>, HnswError> {
        prepare(self.metric, self.dim, query).map_err(HnswError::Vector)
    }

    /// The `k` nearest points to `query` through the graph, beam width
    /// `max(ef, k)`, skipping deleted points and points `filter` rejects (the search
    /// still walks through them). User scores, best first; ties by lower offset.
    ///
    /// `query` is validated and, under Cosine, normalised here. The vectors in `source`
    /// must be in stored form (normalised under Cosine).
    pub fn search<S: VectorSource<Elem: RowKernel> + ?Sized>(
        &self,
        source: &S,
        query: &[f32],
        k: usize,
        ef: usize,
        filter: Option<&dyn OffsetFilter>,
    ) -> Result<Vec<ScoredOffset>, HnswError> {
        self.check_source(source)?;
        let query = self.prepared_query(query)?;
        let found = self.beam(&Floats { hnsw: self, source, query: &query }, k, ef, filter);
        let mut top = TopK::new(k, braid_core::Metric::Euclid);
        for r in found {
            top.push(PointOffset(r.node), r.dist);
        }
        Ok(self.user_scores(top))
    }

    /// [`Hnsw::search`] walking the graph by the one-byte `codes` of the vectors (a
    /// quarter of the memory traffic), then, as `rescore` says, re-scoring the best
    /// candidates with the vectors of `source` (the scores returned are exact, the
    /// selection approximate like any graph search) or answering with the codes'
    /// approximate scores. `codes` must code exactly the rows of `source`.
    #[allow(clippy::too_many_arguments)]
    pub fn search_coded<S: VectorSource<Elem: RowKernel> + ?Sized>(
        &self,
        source: &S,
        codes: &Codes,
        query: &[f32],
        k: usize,
        ef: usize,
        filter: Option<&dyn OffsetFilter>,
        rescore: Rescore,
    ) -> Result<Vec<ScoredOffset>, HnswError> {
        self.check_codes(source, codes)?;
        let query = self.prepared_query(query)?;
        let coded = codes.query(&query);
        let found = self.beam(&Coded { codes, query: &coded }, rescore.beam(k, codes.kind()), ef, filter);
        Ok(self.finish_coded(source, &query, found, k, rescore.pool(k, codes.kind())))
    }

    /// The answers of a coded search from its candidates, best first by their codes.
    fn finish_coded<S: VectorSource<Elem: RowKernel> + ?Sized>(
        &self,
        source: &S,
        query: &[f32],
        found: Vec<Near>,
        k: usize,
        pool: Option<usize>,
    ) -> Vec<ScoredOffset> {
        if let Some(pool) = pool {
            return self.rescore(source, query, found.iter().map(|n| n.node), pool, k);
        }
        let mut top = TopK::new(k, braid_core::Metric::Euclid);
        for n in found.into_iter().take(k) {
            // A coded squared distance can round below zero; a score cannot.
            let dist = if self.metric == braid_core::Metric::Euclid { n.dist.max(0.0) } else { n.dist };
            top.push(PointOffset(n.node), dist);
        }
        self.user_scores(top)
    }

    /// The graph walk shared by the searches: greedy descent to layer 0, then a beam
    /// of `max(ef, k)`. The admitted nodes found, closest first.
    fn beam<P: Probe>(&self, probe: &P, k: usize, ef: usize, filter: Option<&dyn OffsetFilter>) -> Vec<Near> {
        if k == 0 {
            return Vec::new();
        }
        let Some(ep) = self.descend(probe) else { return Vec::new() };
        let ef = ef.max(k);
        // Links among the points sharing the filter's value join its matches: walk
        // them, bridging only from the seeds (the layer-1 nodes nearest the query, or
        // when those reach too few matches, the layer-0 seed beam).
        let group = self.filter_group(filter);
        let two_hop = group.is_some() || self.walks_two_hop(filter);
        let admit = self.admit(filter, two_hop && group.is_none());
        let admit = |n| !self.is_deleted(n) && admit.matches(n);
        if two_hop {
            if let Some(found) = group.and_then(|g| self.walk_group_from_layer1(probe, ep, ef, &admit, g)) {
                return found.into_sorted_vec();
            }
            let found = self.filtered_walk(probe, ep, ef, &admit, group);
            if found.len() >= ef {
                return found.into_sorted_vec();
            }
            // The walk ran out of matching nodes within two hops before filling its
            // beam: the matching points may lie in parts of the graph that only longer
            // chains of non-matching ones join. Walk plainly, from what was found.
            let mut entry = found.into_vec();
            entry.push(ep);
            return with_visited(self.capacity, |visited| {
                self.search_layer(probe, &entry, ef, 0, visited, admit)
            })
            .into_sorted_vec();
        }
        with_visited(self.capacity, |visited| self.search_layer(probe, &[ep], ef, 0, visited, admit))
            .into_sorted_vec()
    }

    /// Greedy descent from the entry point to layer 0: the node it ends on, or `None`
    /// for an empty graph.
    pub(crate) fn descend<P: Probe>(&self, probe: &P) -> Option<Near> {
        let entry = self.entry()?;
        let mut ep = Near { dist: probe.distance(entry.node), node: entry.node };
        for layer in (1..=entry.level).rev() {
            ep = self.greedy(probe, ep, layer);
        }
        Some(ep)
    }

    /// The start of a two-hop or group walk: the `width` live nodes of `layer` nearest
    /// the query, by an unfiltered beam from `ep` (which must be on `layer`), or `ep`
    /// alone when none are found. The two-hop walk crosses only where matching points
    /// lie every other step and could stay in the region the upper layers happened to
    /// descend into.
    fn seeds_on<P: Probe>(&self, probe: &P, ep: Near, width: usize, layer: u8) -> Vec<Near> {
        let seeds = with_visited(self.capacity, |visited| {
            self.search_layer(probe, &[ep], width, layer, visited, |n| !self.is_deleted(n))
        })
        .into_vec();
        if seeds.is_empty() { vec![ep] } else { seeds }
    }

    /// A search's walk along a link `group` from the [`GROUP_SEEDS`] live nodes of
    /// layer 1 nearest the query (a beam from `ep`, where the descent ended on layer 1;
    /// `ep` alone in a graph without layer 1), which costs far fewer distances than the
    /// layer-0 seed beam of [`Hnsw::filtered_walk`]. `None` when it cannot fill its beam
    /// of `ef` (the matches those seeds reach are too few or none, as for a rare value
    /// far from where the descent ended): the caller then walks from the seed beam.
    fn walk_group_from_layer1<P: Probe>(
        &self,
        probe: &P,
        ep: Near,
        ef: usize,
        admit: &dyn Fn(u32) -> bool,
        group: &LinkGroup,
    ) -> Option<BinaryHeap<Near>> {
        let entry = match self.level(ep.node) {
            Some(level) if level >= 1 => self.seeds_on(probe, ep, GROUP_SEEDS, 1),
            _ => vec![ep],
        };
        let found = with_visited(self.capacity, |visited| {
            self.search_two_hop(probe, &entry, ef, visited, admit, Some(group))
        });
        (found.len() >= ef).then_some(found)
    }

    /// The two-hop or group walk of a filtered search from `ep`, seeded by a beam of
    /// [`TWO_HOP_SEEDS`] on layer 0: the `ef` closest nodes `admit` accepts, in a max-heap.
    pub(crate) fn filtered_walk<P: Probe>(
        &self,
        probe: &P,
        ep: Near,
        ef: usize,
        admit: &dyn Fn(u32) -> bool,
        group: Option<&LinkGroup>,
    ) -> BinaryHeap<Near> {
        let seeds = self.seeds_on(probe, ep, TWO_HOP_SEEDS, 0);
        with_visited(self.capacity, |visited| self.search_two_hop(probe, &seeds, ef, visited, admit, group))
    }

    /// Sets how filtered searches walk layer 0 (not persisted; [`FilteredWalk::Auto`]
    /// after decoding or growing). For measuring one walk against the other.
    pub fn set_filtered_walk(&self, walk: FilteredWalk) {
        self.filtered_walk.store(walk as u8, std::sync::atomic::Ordering::Relaxed);
    }

    /// Does a filtered search with `filter` walk by two hops?
    fn walks_two_hop(&self, filter: Option<&dyn OffsetFilter>) -> bool {
        filter.is_some_and(|f| self.two_hop_at(self.selectivity(Some(f.estimate()))))
    }

    /// The share of live points a filter with `estimate` is expected to pass.
    fn selectivity(&self, estimate: Option<Cardinality>) -> f64 {
        let n = (self.len() - self.deleted_len()).max(1) as f64;
        let matches = estimate.map_or(n, |c| c.expected as f64).clamp(0.0, n);
        (matches / n).max(1.0 / n)
    }

    /// Does a filtered walk at `selectivity` go by two hops?
    fn two_hop_at(&self, selectivity: f64) -> bool {
        match FilteredWalk::from_byte(self.filtered_walk.load(std::sync::atomic::Ordering::Relaxed)) {
            FilteredWalk::Plain => false,
            FilteredWalk::TwoHop => true,
            FilteredWalk::Auto => (TWO_HOP_FROM..TWO_HOP_BELOW).contains(&selectivity),
        }
    }

    /// The admission test of a walk under `filter`: a dense bitset of its matches when
    /// `dense` and the filter can list them, else the filter itself. Listing costs a
    /// pass over every match, which a two-hop walk's many bridge reads repay; a walk
    /// along a link group asks about few nodes, and at 1M points a 10 % filter's
    /// listing took half its time (`docs/hnsw.md`, "Through the database").
    fn admit<'f>(&self, filter: Option<&'f dyn OffsetFilter>, dense: bool) -> Admit<'f> {
        let Some(f) = filter else { return Admit::All };
        if !dense {
            return Admit::Filter(f);
        }
        let mut bits = vec![0u64; self.capacity.div_ceil(64)];
        let listed = f.for_each_match(&mut |o| {
            if let Some(w) = bits.get_mut(o.index() / 64) {
                *w |= 1 << (o.0 % 64);
            }
        });
        if listed { Admit::Bits(bits) } else { Admit::Filter(f) }
    }

    /// The link group a filter names, if this graph has it and the filter passes less
    /// than [`TWO_HOP_BELOW`] of the points (above, a plain walk costs less: most
    /// neighbours match).
    pub(crate) fn filter_group(&self, filter: Option<&dyn OffsetFilter>) -> Option<&LinkGroup> {
        let f = filter?;
        self.walked_group(f.link_group(), self.selectivity(Some(f.estimate())))
    }

    /// The group under `key` when a walk at `selectivity` goes along it: the graph has
    /// it and the selectivity is below [`TWO_HOP_BELOW`].
    fn walked_group(&self, key: Option<u64>, selectivity: f64) -> Option<&LinkGroup> {
        (selectivity < TWO_HOP_BELOW).then(|| self.group(key?)).flatten()
    }

    /// The layer-0 beam of a filtered search that scores matching nodes only
    /// ([`FilteredWalk::TwoHop`]). `admit` is the filter (and liveness) test; the
    /// entry point steers even when it does not match. Returns the `ef` closest
    /// admitted nodes in a max-heap (worst on top). With a link `group`, a matching
    /// node that has group links is expanded along those alone and bridges nowhere:
    /// the group joins the matches already.
    pub(crate) fn search_two_hop<P: Probe>(
        &self,
        probe: &P,
        entry: &[Near],
        ef: usize,
        visited: &mut Visited,
        admit: impl Fn(u32) -> bool,
        group: Option<&LinkGroup>,
    ) -> BinaryHeap<Near> {
        let cap = self.config.m0();
        let mut beam = Beam::new(ef, self.capacity, entry, visited, &admit);
        let wide = cap.max(group.map_or(0, |g| g.m0));
        let (mut buf, mut hop) = (Vec::with_capacity(wide), Vec::with_capacity(cap));
        let mut fresh = Vec::with_capacity(wide);
        while let Some(current) = beam.next() {
            // A matching node with group links is expanded along them alone and bridges
            // nowhere: the group joins the matches, and most of its layer-0 neighbours
            // would be read only to be refused by the filter. Any other node (a seed
            // that does not match, a match not linked yet) reads its layer-0 links and
            // bridges through the non-matching ones.
            buf.clear();
            if let Some(slots) = group.and_then(|g| g.links(current.node)).filter(|_| admit(current.node)) {
                self.read_list(slots, &mut buf);
            }
            let bridge = buf.is_empty();
            if bridge {
                self.neighbours(current.node, 0, &mut buf);
            }
            fresh.clear();
            // Matching neighbours first (the filter asked only about unvisited nodes);
            // a non-matching one is only a bridge, whose link list is asked for now and
            // read below.
            for &n in &buf {
                if visited.contains(n) {
                    continue;
                }
                if admit(n) {
                    visited.insert(n);
                    probe.prefetch(n);
                    fresh.push(n);
                } else if let Some(list) = self.layer0.list(n).filter(|_| bridge) {
                    braid_distance::simd::prefetch(list, 0);
                }
            }
            // Then the matching neighbours of the bridges, each bridge crossed once
            // (marking it visited) and wholly, until a step holds `m0` nodes.
            for &n in &buf {
                if !bridge || fresh.len() >= cap {
                    break;
                }
                if visited.contains(n) || admit(n) {
                    continue;
                }
                visited.insert(n);
                self.neighbours(n, 0, &mut hop);
                for &h in &hop {
                    if !visited.contains(h) && admit(h) {
                        visited.insert(h);
                        probe.prefetch(h);
                        fresh.push(h);
                    }
                }
            }
            beam.offer_all(probe, &fresh, |_| true);
        }
        beam.results
    }

    /// The `k` best of the first `pool` of `nodes` (best first by some approximate
    /// distance) by their exact distance to `query`, in user scores.
    fn rescore<S: VectorSource<Elem: RowKernel> + ?Sized>(
        &self,
        source: &S,
        query: &[f32],
        nodes: impl Iterator<Item = u32>,
        pool: usize,
        k: usize,
    ) -> Vec<ScoredOffset> {
        let mut top = TopK::new(k, braid_core::Metric::Euclid);
        for n in nodes.take(pool) {
            top.push(PointOffset(n), self.distance(query, source.vector(PointOffset(n))));
        }
        self.user_scores(top)
    }

    /// Calls `f` with every inserted, live point `filter` accepts: from the filter's
    /// own list when it has one, else by checking every inserted point.
    fn for_each_candidate(&self, len: usize, filter: Option<&dyn OffsetFilter>, f: &mut dyn FnMut(u32)) {
        let mut consider = |n: u32| {
            if (n as usize) < self.capacity
                && (n as usize) < len
                && self.level(n).is_some()
                && !self.is_deleted(n)
            {
                f(n);
            }
        };
        let listed = match filter {
            Some(flt) => flt.for_each_match(&mut |o| consider(o.0)),
            None => false,
        };
        if !listed {
            for n in 0..self.capacity.min(len) as u32 {
                if filter.is_none_or(|flt| flt.matches(PointOffset(n))) {
                    consider(n);
                }
            }
        }
    }

    /// The exact `k` nearest inserted, live points that `filter` accepts: a scan of the
    /// matching set when the filter can list it, else of every inserted point. The
    /// reference for recall and the fast path for very selective filters.
    pub fn search_exact<S: VectorSource<Elem: RowKernel> + ?Sized>(
        &self,
        source: &S,
        query: &[f32],
        k: usize,
        filter: Option<&dyn OffsetFilter>,
    ) -> Result<Vec<ScoredOffset>, HnswError> {
        self.check_source(source)?;
        let query = self.prepared_query(query)?;
        let mut top = TopK::new(k, braid_core::Metric::Euclid);
        self.for_each_candidate(source.len(), filter, &mut |n| {
            top.push(PointOffset(n), self.distance(&query, source.vector(PointOffset(n))));
        });
        Ok(self.user_scores(top))
    }

    /// The scan of [`Hnsw::search_exact`] ranked by the one-byte `codes`, then the best
    /// re-scored with the vectors of `source` as `rescore` says: exact scores, and the
    /// exact selection unless rounding moved a true neighbour below the pool (or the
    /// codes' approximate scores with [`Rescore::Off`]). `codes` must code exactly the
    /// rows of `source`.
    pub fn search_scan_coded<S: VectorSource<Elem: RowKernel> + ?Sized>(
        &self,
        source: &S,
        codes: &Codes,
        query: &[f32],
        k: usize,
        filter: Option<&dyn OffsetFilter>,
        rescore: Rescore,
    ) -> Result<Vec<ScoredOffset>, HnswError> {
        self.check_codes(source, codes)?;
        let query = self.prepared_query(query)?;
        let coded = codes.query(&query);
        let mut listed = Vec::new();
        self.for_each_candidate(source.len(), filter, &mut |n| listed.push(n));
        // Scattered rows: ask for a few rows ahead while scoring this one.
        const AHEAD: usize = 8;
        let mut scored: Vec<Near> = Vec::with_capacity(listed.len());
        for (i, &n) in listed.iter().enumerate() {
            if let Some(&next) = listed.get(i + AHEAD) {
                codes.prefetch(next as usize);
            }
            scored.push(Near { dist: codes.distance(&coded, n as usize), node: n });
        }
        // The pool by selection (linear) rather than a heap; `Near` orders by distance,
        // then offset, so the pool does not depend on the scan order.
        let pool = rescore.pool(k, codes.kind());
        let keep = pool.unwrap_or(k).max(1);
        if scored.len() > keep {
            scored.select_nth_unstable(keep - 1);
            scored.truncate(keep);
        }
        Ok(self.finish_coded(source, &query, scored, k, pool))
    }

    /// The `k` points with the highest `score(vector)` found by walking the graph
    /// with it (beam `max(ef, k)`), skipping deleted points and those `filter`
    /// rejects. For scores that are not a distance to one query vector (Qdrant's
    /// recommend `best_score`/`sum_scores`, discovery, context), which the graph
    /// serves as well as their landscape is smooth. Scores as `score` returns them,
    /// best first; ties by lower offset.
    pub fn search_by<S: VectorSource<Elem: RowKernel> + ?Sized, F: Fn(&[f32]) -> f32>(
        &self,
        source: &S,
        score: F,
        k: usize,
        ef: usize,
        filter: Option<&dyn OffsetFilter>,
    ) -> Result<Vec<ScoredOffset>, HnswError> {
        self.check_source(source)?;
        let found = self.beam(
            &ScoredBy { source, score: &score, metric: self.metric, scratch: Default::default() },
            k,
            ef,
            filter,
        );
        let mut top = TopK::new(k, braid_core::Metric::Dot);
        for r in found {
            top.push(PointOffset(r.node), -r.dist);
        }
        Ok(top.into_sorted_vec())
    }

    /// The exact `k` highest `score(vector)` among the inserted, live points `filter`
    /// accepts (see [`Hnsw::search_by`]).
    pub fn scan_by<S: VectorSource<Elem: RowKernel> + ?Sized, F: Fn(&[f32]) -> f32>(
        &self,
        source: &S,
        score: F,
        k: usize,
        filter: Option<&dyn OffsetFilter>,
    ) -> Result<Vec<ScoredOffset>, HnswError> {
        self.check_source(source)?;
        let mut top = TopK::new(k, braid_core::Metric::Dot);
        let mut scratch = Vec::new();
        self.for_each_candidate(source.len(), filter, &mut |n| {
            top.push(
                PointOffset(n),
                score(S::Elem::as_query_into(self.metric, source.vector(PointOffset(n)), &mut scratch)),
            );
        });
        Ok(top.into_sorted_vec())
    }

    /// Chooses between a filtered graph search and an exact scan from the filter's
    /// cardinality estimate, in units of "one point scored by the exact scan": the scan
    /// costs one per matching point; an unfiltered graph search costs
    /// `ef · m0 · (ln(n)/4 + 1) / GRAPH_COST_DIVISOR`, inflated by `1 / selectivity`
    /// for a plain filtered walk (most visited nodes are rejected) or by
    /// [`TWO_HOP_COST`] for a two-hop one.
    pub fn choose_path(&self, ef: usize, estimate: Option<Cardinality>) -> PathChoice {
        self.choose_path_priced(ef, estimate, 1.0, None)
    }

    /// [`Hnsw::choose_path`] for a scan whose points are `scan_advantage` times cheaper
    /// than a float scan's: [`CODED_SCAN_ADVANTAGE`] for a scan by one-byte codes
    /// ([`Hnsw::search_scan_coded`]). The scan's cost is reported in float-scan units.
    /// `group` is the filter's [`OffsetFilter::link_group`]: a walk along a group this
    /// graph has is priced at [`GROUP_WALK_COST`].
    pub fn choose_path_priced(
        &self,
        ef: usize,
        estimate: Option<Cardinality>,
        scan_advantage: f64,
        group: Option<u64>,
    ) -> PathChoice {
        let n = (self.len() - self.deleted_len()).max(1) as f64;
        let matches = estimate.map_or(n, |c| c.expected as f64).clamp(0.0, n);
        let selectivity = self.selectivity(estimate);
        // A plain walk is slowed by every rejected node; a two-hop one by a constant.
        let filtered = match estimate {
            Some(_) if self.walked_group(group, selectivity).is_some() => GROUP_WALK_COST,
            Some(_) if self.two_hop_at(selectivity) => TWO_HOP_COST,
            _ => 1.0 / selectivity,
        };
        let graph_cost = (ef.max(1) * self.config.m0()) as f64 * (n.ln().max(1.0) / 4.0 + 1.0)
            / GRAPH_COST_DIVISOR
            * filtered;
        let exact_cost = matches / scan_advantage;
        let path = if exact_cost <= graph_cost { SearchPath::Scan } else { SearchPath::Graph };
        PathChoice { path, exact_cost, graph_cost, rule: None }
    }

    /// [`Hnsw::choose_path`], then that search. Returns the hits and the choice.
    pub fn search_auto<S: VectorSource<Elem: RowKernel> + ?Sized>(
        &self,
        source: &S,
        query: &[f32],
        k: usize,
        ef: usize,
        filter: Option<&dyn OffsetFilter>,
    ) -> Result<(Vec<ScoredOffset>, PathChoice), HnswError> {
        let choice = self.choose_path_priced(
            ef,
            filter.map(|f| f.estimate()),
            1.0,
            filter.and_then(|f| f.link_group()),
        );
        let hits = match choice.path {
            SearchPath::Scan | SearchPath::Exact => self.search_exact(source, query, k, filter)?,
            SearchPath::Graph => self.search(source, query, k, ef, filter)?,
        };
        Ok((hits, choice))
    }
}
