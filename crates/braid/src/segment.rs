//! The in-memory segment behind a collection: vectors per named space with an HNSW
//! graph each, payloads with their indexes, and the id tracker.
//!
//! Writes never modify a stored vector: an upsert of an existing id, `update_vectors`
//! and `delete_vectors` write a new version of the point at a new offset and tombstone
//! the old one, so graph links never point at changed data. Payload changes apply in
//! place.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::ids::PointIds;
use crate::rows::{SpaceRows, with_rows};
use braid_core::{Cardinality, OffsetFilter, PointId, PointOffset};
use braid_distance::{Codes, Kernel};
use braid_filter::{Filter, PayloadSource, PayloadStore, PlannedFilter, PointLookup};
use braid_hnsw::{Hnsw, HnswConfig, PathChoice, SearchPath};
use braid_query::{Hit, QueryError, Searchable, Space};
use roaring::RoaringBitmap;
use serde_json::Value;

use crate::Error;
use crate::config::{CollectionConfig, Modifier, MultiVectorParams, SparseVectorParams, VectorParams};
use crate::ops::{Op, Prepared};
use crate::point::{MultiVector, MultiVectors, NamedVectors, SparseVectors, WithPayload};
use braid_sparse::{SparseIndex, SparseVector};

/// The most point versions one segment addresses (offsets are `u32`).
pub(crate) const MAX_OFFSETS: usize = u32::MAX as usize - 1;

pub(crate) struct SpaceData {
    pub params: VectorParams,
    /// One row per offset; offsets without a vector here hold zeros. A prefix may be
    /// mapped from a vector file.
    pub rows: SpaceRows,
    /// Offsets that have a vector in this space (live or not).
    pub present: RoaringBitmap,
    /// How many of `present` are live, kept as points are written and removed:
    /// counting the intersection instead cost O(N) on every search.
    pub live: usize,
    pub graph: Hnsw,
    /// One-byte codes of `rows` (same offsets), which graph walks and scans rank by
    /// before re-scoring with `rows`; `None` where the space keeps none (Manhattan,
    /// under 64 components, or `Quantization::None`).
    pub codes: Option<Codes>,
}

impl SpaceData {
    /// The kilobytes `points` of this space's rows take (Qdrant's threshold unit).
    fn kb(&self, points: usize) -> usize {
        points.saturating_mul(self.params.size * self.params.datatype.width()) / 1024
    }

    /// Is a filter matching `points` here answered exactly, by Qdrant's
    /// `full_scan_threshold` (`docs/query.md`, "Exact by size")?
    fn below_full_scan(&self, points: usize) -> bool {
        self.kb(points) < self.params.hnsw.full_scan_threshold_kb
    }

    /// A space where none of the segment's `n` offsets has a vector yet: `n` rows of
    /// zeros (coded on up to `threads` threads), an empty graph.
    fn without_vectors(params: &VectorParams, n: usize, threads: usize) -> Result<SpaceData, Error> {
        let mut rows = SpaceRows::new(params.size, params.datatype);
        let zeros = vec![0.0; params.size];
        for _ in 0..n {
            rows.push(&zeros);
        }
        let codes = params.codes().map(|mut c| {
            with_rows!(&rows, |r| c.extend_from_parallel(r, threads));
            c
        });
        Ok(SpaceData {
            params: *params,
            rows,
            present: RoaringBitmap::new(),
            live: 0,
            graph: new_graph(params, 0)?,
            codes,
        })
    }
}

/// One sparse space: its vectors by offset, with their inverted index.
pub(crate) struct SparseData {
    pub params: SparseVectorParams,
    pub index: SparseIndex,
}

impl SparseData {
    fn new(params: SparseVectorParams) -> SparseData {
        SparseData { params, index: SparseIndex::new() }
    }
}

/// One multivector space: each point's list of vectors (stored form), by offset.
pub(crate) struct MultiData {
    pub params: MultiVectorParams,
    pub vectors: BTreeMap<u32, MultiVector>,
}

impl MultiData {
    /// MaxSim of `query` against the vectors at `offset`: for each query vector its best
    /// similarity (Qdrant's internal scale) to the point's vectors, summed.
    pub(crate) fn max_sim(&self, kernel: &Kernel, query: &[Vec<f32>], offset: u32) -> Option<f32> {
        let stored = self.vectors.get(&offset)?;
        Some(
            query
                .iter()
                .map(|q| stored.iter().map(|d| kernel.similarity(q, d)).fold(f32::NEG_INFINITY, f32::max))
                .sum(),
        )
    }
}

/// Point versions a write stored but has not linked into the graphs yet.
#[derive(Debug, Default)]
#[must_use = "staged versions are not found by graph searches until they are indexed"]
pub(crate) struct Unindexed {
    points: usize,
    offsets: BTreeMap<String, Vec<u32>>,
    /// Payload links to make in every graph that has the group.
    links: Vec<Links>,
}

/// Offsets to link in one payload-link group: new groups link every point; a point
/// whose value changed replaces its own links.
#[derive(Debug)]
struct Links {
    key: u64,
    offsets: Vec<u32>,
    replace: bool,
}

/// The key of the payload-link group of an indexed field, in every graph: FNV-1a of
/// the key as written, so that a graph's bytes name their groups without a table.
pub(crate) fn group_key(path: &braid_filter::JsonPath) -> u64 {
    path.to_string()
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// The points holding one payload value, among which a point is linked.
struct Holding<'a>(&'a RoaringBitmap);

impl OffsetFilter for Holding<'_> {
    fn matches(&self, offset: PointOffset) -> bool {
        self.0.contains(offset.0)
    }
    fn estimate(&self) -> Cardinality {
        Cardinality::exact(self.0.len() as usize)
    }
    fn for_each_match(&self, f: &mut dyn FnMut(PointOffset)) -> bool {
        self.0.iter().for_each(|o| f(PointOffset(o)));
        true
    }
}

/// Which values a space links its points among: those a filtered search would walk
/// the graph for — not answered exactly by `full_scan_threshold`
/// ([`SpaceData::below_full_scan`]) and held by less than
/// [`braid_hnsw::TWO_HOP_BELOW`] of the space's live points (more are walked plainly).
#[derive(Clone, Copy)]
struct Worth<'a> {
    space: &'a SpaceData,
    live: u64,
}

impl<'a> Worth<'a> {
    fn of(space: &'a SpaceData) -> Worth<'a> {
        Worth { space, live: space.live as u64 }
    }

    fn holds(self, points: u64) -> bool {
        points > 0
            && !self.space.below_full_scan(points as usize)
            && (points as f64) < self.live as f64 * braid_hnsw::TWO_HOP_BELOW
    }
}

/// Threads for linking `n` offsets: every core, one per 64 offsets at most.
fn threads_for(n: usize) -> usize {
    std::thread::available_parallelism().map_or(1, |t| t.get()).min(n.div_ceil(64)).max(1)
}

/// Its fields are private: the collection and the store change a segment only through
/// its methods (writes through logged [`Op`]s), so its invariants — one id per live
/// offset, one row per offset in every space, indexes in step with payloads — are
/// kept here alone.
pub(crate) struct Segment {
    config: CollectionConfig,
    spaces: BTreeMap<String, SpaceData>,
    sparse: BTreeMap<String, SparseData>,
    multi: BTreeMap<String, MultiData>,
    payloads: PayloadStore,
    /// The id of every offset ever written, the live ones, and live ids in id order.
    ids: PointIds,
}

/// A configuration change, prepared ([`Segment::prepare_reconfigure`]).
pub(crate) struct Reconfigure {
    config: CollectionConfig,
    /// New dense spaces, with a zero row per existing offset.
    added: BTreeMap<String, SpaceData>,
    /// New codes (or none) for kept spaces whose quantization changes.
    codes: BTreeMap<String, Option<Codes>>,
}

/// What [`Segment::reconfigure`] replaced.
pub(crate) struct Replaced {
    config: CollectionConfig,
    /// Removed dense spaces.
    spaces: BTreeMap<String, SpaceData>,
    /// Kept dense spaces: their old parameters, and their old codes where the change
    /// replaced them.
    params: BTreeMap<String, (VectorParams, Option<Codes>)>,
    sparse: BTreeMap<String, SparseData>,
    multi: BTreeMap<String, MultiData>,
}

/// A payload index as it is recreated: key, kind and, for a text index, its options.
pub(crate) type IndexSpec = (String, braid_filter::IndexKind, Option<braid_text::TextOptions>);

/// A segment's live points, copied out for a compaction ([`Segment::live_copy`]).
pub(crate) struct LiveCopy {
    config: CollectionConfig,
    /// Each live point's id and offset; its vectors are read from `rows` as the new
    /// segment takes it.
    points: Vec<(PointId, u32, CopiedPoint)>,
    /// Each dense space's rows and the offsets with a vector there, as they were:
    /// rows are written once and never changed, so the mapped prefix is shared with
    /// the segment (an `Arc`), and only the rows since the last checkpoint are copied.
    rows: BTreeMap<String, (SpaceRows, RoaringBitmap)>,
    /// The payload file the segment read its payloads from (`on_disk_payload`), shared:
    /// the payloads no write has changed since are read from it, not copied.
    payloads: Option<Arc<dyn PayloadSource>>,
    indexes: Vec<IndexSpec>,
    /// Point versions the copied segment had written.
    pub(crate) versions: usize,
}

/// What a compaction copies of a point besides its dense vectors.
struct CopiedPoint {
    sparse: SparseVectors,
    multi: MultiVectors,
    payload: CopiedPayload,
}

/// A point's payload as a compaction takes it: never copied.
enum CopiedPayload {
    None,
    /// Held in memory: shared with the live segment.
    Shared(Arc<Value>),
    /// In the payload file, at the point's old offset.
    InFile,
}

/// A compaction's new segment's payloads, read from the old segment's payload file:
/// for each new offset the old one, filled in as the points are written (an offset
/// not yet written holds none).
#[derive(Debug)]
struct Renumbered {
    file: Arc<dyn PayloadSource>,
    old: Vec<AtomicU32>,
}

impl Renumbered {
    const NONE: u32 = u32::MAX;

    fn new(file: Arc<dyn PayloadSource>, len: usize) -> Renumbered {
        Renumbered { file, old: (0..len).map(|_| AtomicU32::new(Renumbered::NONE)).collect() }
    }

    /// New offset `new` reads the payload the file holds for `old`.
    fn place(&self, new: u32, old: u32) {
        self.old[new as usize].store(old, Ordering::Relaxed);
    }

    fn old(&self, offset: u32) -> Option<u32> {
        let old = self.old.get(offset as usize)?.load(Ordering::Relaxed);
        (old != Renumbered::NONE).then_some(old)
    }
}

impl PayloadSource for Renumbered {
    fn payload(&self, offset: u32) -> Option<Value> {
        self.file.payload(self.old(offset)?)
    }

    fn len(&self) -> usize {
        self.old.len()
    }

    fn bytes(&self) -> usize {
        self.file.bytes()
    }

    fn encoded(&self, offset: u32) -> Option<&[u8]> {
        self.file.encoded(self.old(offset)?)
    }
}

impl LiveCopy {
    /// A new segment holding these points only, at fresh offsets in id order, with
    /// fresh graphs and the same indexes: what a compaction writes. With `files` (the
    /// next generation's vector files, by space) its rows are written there as they
    /// are built and read back from a mapping, so that they never all wait on the heap
    /// (at 10M × 384-d they are 15 GB).
    pub(crate) fn build(
        self,
        mut files: Option<&mut BTreeMap<String, braid_storage::VectorFile>>,
    ) -> Result<Segment, Error> {
        let mut fresh = Segment::new(self.config)?;
        // Indexes first: each batch is then linked among the points sharing its values
        // as it is written, as live writes are.
        for (key, kind, options) in self.indexes {
            match options {
                Some(options) => fresh.payloads.create_text_index(&key, options)?,
                None => fresh.payloads.create_index(&key, kind)?,
            }
        }
        let none = fresh.sync_groups()?;
        fresh.index(none)?;
        // Payloads the old payload file holds stay there: the new segment reads them
        // through a renumbering, filled in as its points are written (the checkpoint
        // that ends the compaction copies their bytes to the new file as they are).
        let renumbered = self.payloads.map(|file| Arc::new(Renumbered::new(file, self.points.len())));
        if let Some(renumbered) = &renumbered {
            fresh.payloads.hold_in(Some(renumbered.clone()));
        }
        // A batch at a time, each point's vectors read from the shared rows as its
        // batch is made: at no time are all the rows copied (at 1M × 384-d they are
        // 1.5 GB, at 10M 15 GB).
        let rows = self.rows;
        let mut points = self.points.into_iter();
        loop {
            // Points take the new offsets in order, from the segment's end; their
            // payloads are put in once they are staged, before they are linked.
            let first = fresh.ids.len() as u32;
            let (mut batch, mut in_file, mut shared) = (Vec::new(), Vec::new(), Vec::new());
            for (id, offset, p) in points.by_ref().take(crate::MAX_BATCH) {
                let new = first + batch.len() as u32;
                match p.payload {
                    CopiedPayload::None => {}
                    CopiedPayload::Shared(payload) => shared.push((new, payload)),
                    CopiedPayload::InFile => in_file.push((new, offset)),
                }
                let vectors = rows
                    .iter()
                    .filter(|(_, (_, present))| present.contains(offset))
                    .map(|(name, (rows, _))| (name.clone(), rows.stored(offset)))
                    .collect();
                let payload = Value::Object(Default::default());
                batch.push(Prepared { id, vectors, sparse: p.sparse, multi: p.multi, payload });
            }
            if batch.is_empty() {
                return Ok(fresh);
            }
            let unindexed = fresh.stage(batch)?;
            for (new, payload) in shared {
                fresh.payloads.set_shared(PointOffset(new), payload);
            }
            if let Some(renumbered) = &renumbered {
                for (new, old) in in_file {
                    renumbered.place(new, old);
                    fresh.payloads.index_from_source(PointOffset(new));
                }
            }
            fresh.index(unindexed)?;
            if let Some(files) = files.as_deref_mut() {
                fresh.spill_rows(files)?;
            }
        }
    }
}

/// What a merge does with a `null` value: Qdrant's `set_payload` removes the key;
/// logs written before `Op::MergePayload` existed stored it.
#[derive(Clone, Copy, PartialEq)]
enum Nulls {
    Remove,
    Store,
}

/// Merges `payload` into a point's payload `map` at the path `steps` ([`merge_at`]).
fn merge_into(
    map: &mut serde_json::Map<String, Value>,
    steps: &[braid_filter::Step],
    payload: &serde_json::Map<String, Value>,
    nulls: Nulls,
) {
    let mut root = Value::Object(std::mem::take(map));
    merge_at(&mut root, steps, payload, nulls);
    if let Value::Object(m) = root {
        *map = m;
    }
}

/// Qdrant's `set_payload` at a path, from `slot` down `steps`: a key step makes the
/// slot an object if it is not one and enters the key (created empty if missing); an
/// index step enters that element of an array (nothing happens past its end), `[]`
/// every element; an index step on a slot that is not an array makes it an empty
/// array and stops. At the end the slot becomes an object if it is not one, and
/// `payload` is merged into it.
fn merge_at(
    slot: &mut Value,
    steps: &[braid_filter::Step],
    payload: &serde_json::Map<String, Value>,
    nulls: Nulls,
) {
    use braid_filter::Step;
    match steps.split_first() {
        None => {
            if !slot.is_object() {
                *slot = Value::Object(Default::default());
            }
            if let Value::Object(map) = slot {
                for (k, v) in payload {
                    match v {
                        Value::Null if nulls == Nulls::Remove => map.remove(k),
                        v => map.insert(k.clone(), v.clone()),
                    };
                }
            }
        }
        Some((Step::Key(k), rest)) => {
            if !slot.is_object() {
                *slot = Value::Object(Default::default());
            }
            if let Value::Object(map) = slot {
                let next = map.entry(k.clone()).or_insert_with(|| Value::Object(Default::default()));
                merge_at(next, rest, payload, nulls);
            }
        }
        Some((Step::Index(i), rest)) => match slot {
            Value::Array(items) => {
                if let Some(item) = items.get_mut(*i) {
                    merge_at(item, rest, payload, nulls);
                }
            }
            other => *other = Value::Array(Vec::new()),
        },
        Some((Step::Each, rest)) => match slot {
            Value::Array(items) => items.iter_mut().for_each(|item| merge_at(item, rest, payload, nulls)),
            other => *other = Value::Array(Vec::new()),
        },
    }
}

/// An empty graph for a space.
pub(crate) fn new_graph(params: &VectorParams, capacity: usize) -> Result<Hnsw, Error> {
    let hnsw = HnswConfig { m: params.hnsw.m, ef_construct: params.hnsw.ef_construct, seed: 0x5EED };
    Ok(Hnsw::new(params.distance, params.size, hnsw, capacity)?)
}

impl Segment {
    pub(crate) fn new(config: CollectionConfig) -> Result<Segment, Error> {
        let spaces = config
            .vectors
            .iter()
            .map(|(name, params)| Ok((name.clone(), SpaceData::without_vectors(params, 0, 1)?)))
            .collect::<Result<_, Error>>()?;
        let sparse =
            config.sparse_vectors.iter().map(|(name, p)| (name.clone(), SparseData::new(*p))).collect();
        let multi = config
            .multivectors
            .iter()
            .map(|(name, p)| (name.clone(), MultiData { params: *p, vectors: BTreeMap::new() }))
            .collect();
        Ok(Segment { config, spaces, sparse, multi, payloads: PayloadStore::new(), ids: PointIds::new() })
    }

    /// A segment read back from a checkpoint.
    pub(crate) fn from_checkpoint(
        config: CollectionConfig,
        spaces: BTreeMap<String, SpaceData>,
        sparse: BTreeMap<String, SparseIndex>,
        mut multi: BTreeMap<String, BTreeMap<u32, MultiVector>>,
        payloads: PayloadStore,
        ids: PointIds,
    ) -> Segment {
        let sparse = config
            .sparse_vectors
            .iter()
            .map(|(name, p)| {
                let mut data = SparseData::new(*p);
                if let Some(index) = sparse.get(name) {
                    data.index = index.clone();
                }
                (name.clone(), data)
            })
            .collect();
        let multi = config
            .multivectors
            .iter()
            .map(|(name, p)| {
                (name.clone(), MultiData { params: *p, vectors: multi.remove(name).unwrap_or_default() })
            })
            .collect();
        Segment { config, spaces, sparse, multi, payloads, ids }
    }

    /// The multivector spaces, by name.
    pub(crate) fn multi_spaces(&self) -> &BTreeMap<String, MultiData> {
        &self.multi
    }

    /// The stored multivectors of the point at `offset`.
    pub(crate) fn multi_at(&self, offset: u32) -> MultiVectors {
        self.multi
            .iter()
            .filter_map(|(name, m)| m.vectors.get(&offset).map(|v| (name.clone(), v.clone())))
            .collect()
    }

    /// Checks every multivector names a multivector space, holds 1 to
    /// `MAX_MULTIVECTOR` vectors, each of the space's size and finite; returns them
    /// in stored form (normalised under Cosine).
    pub(crate) fn prepare_multi(&self, multi: &MultiVectors) -> Result<MultiVectors, Error> {
        multi
            .iter()
            .map(|(name, vectors)| {
                let data = self.multi.get(name).ok_or_else(|| self.unknown_multi(name))?;
                if vectors.is_empty() || vectors.len() > crate::config::MAX_MULTIVECTOR {
                    return Err(Error::Multivector {
                        space: name.clone(),
                        why: format!(
                            "a multivector holds 1 to {} vectors, got {}",
                            crate::config::MAX_MULTIVECTOR,
                            vectors.len()
                        ),
                    });
                }
                let rows = vectors
                    .iter()
                    .map(|v| {
                        braid_distance::prepare(data.params.distance, data.params.size, v)
                            .map_err(|source| Error::Vector { space: name.clone(), source })
                    })
                    .collect::<Result<MultiVector, Error>>()?;
                Ok((name.clone(), rows))
            })
            .collect()
    }

    /// The error for a multivector given for `name`: another kind of space, or none.
    pub(crate) fn unknown_multi(&self, name: &str) -> Error {
        let is = if self.spaces.contains_key(name) {
            Some("dense")
        } else if self.sparse.contains_key(name) {
            Some("sparse")
        } else {
            None
        };
        self.not_for(
            name,
            is.map(|is| {
                (is, "give it the kind of vector it holds; lists of vectors go to multivector spaces")
            }),
        )
    }

    /// The sparse spaces, by name.
    pub(crate) fn sparse_spaces(&self) -> &BTreeMap<String, SparseData> {
        &self.sparse
    }

    /// The configuration.
    pub(crate) fn config(&self) -> &CollectionConfig {
        &self.config
    }

    /// The spaces, by name.
    pub(crate) fn spaces(&self) -> &BTreeMap<String, SpaceData> {
        &self.spaces
    }

    /// The space `name`, or [`Error::UnknownVector`].
    pub(crate) fn space_named(&self, name: &str) -> Result<&SpaceData, Error> {
        self.spaces.get(name).ok_or_else(|| self.unknown(name))
    }

    /// The payloads and their indexes.
    pub(crate) fn payloads(&self) -> &PayloadStore {
        &self.payloads
    }

    /// The ids: of every offset ever written, by offset, and of the live points.
    pub(crate) fn ids(&self) -> &PointIds {
        &self.ids
    }

    /// The id written at `offset`.
    pub(crate) fn id_at(&self, offset: PointOffset) -> PointId {
        self.ids.id(offset.0)
    }

    /// Live offsets.
    pub(crate) fn live(&self) -> &RoaringBitmap {
        self.ids.live()
    }

    /// Live ids from `from` on, in id order, with their offsets.
    pub(crate) fn ids_from(&self, from: Option<PointId>) -> impl Iterator<Item = (PointId, u32)> + '_ {
        self.ids.from(from)
    }

    /// Live points with a vector in `space`.
    pub(crate) fn live_in(&self, space: &SpaceData) -> usize {
        debug_assert_eq!(space.live, space.present.intersection_len(self.live()) as usize);
        space.live
    }

    /// Reads rows from the vector files a checkpoint just wrote instead of memory, and
    /// graphs from its graph files where a space keeps its graph on disk.
    /// Reads payloads from the payload file it wrote (`on_disk_payload`), or back into
    /// memory when the setting was turned off.
    pub(crate) fn remap(&mut self, mapped: crate::store::Remap) {
        for (name, rows) in mapped.rows {
            if let Some(space) = self.spaces.get_mut(&name) {
                debug_assert_eq!(rows.len(), space.rows.len());
                space.rows = rows;
            }
        }
        // The graph as the checkpoint wrote it (writers waited), read from its file.
        for (name, graph) in mapped.graphs {
            if let Some(space) = self.spaces.get_mut(&name) {
                debug_assert_eq!(
                    (graph.len(), graph.deleted_len()),
                    (space.graph.len(), space.graph.deleted_len())
                );
                space.graph = graph;
            }
        }
        // The codes as the checkpoint wrote them, held in their file or back on the heap.
        for (name, codes) in mapped.codes {
            if let Some(space) = self.spaces.get_mut(&name) {
                debug_assert_eq!(Some(codes.len()), space.codes.as_ref().map(braid_distance::Codes::len));
                space.codes = Some(codes);
            }
        }
        match mapped.payloads {
            Some(Some(file)) => self.payloads.hold_in(Some(file)),
            Some(None) if self.payloads.is_held_in_source() => self.payloads.hold_in(None),
            _ => {}
        }
    }

    /// Appends each space's rows not yet in its file in `files` there and reads them
    /// back from a mapping of it: the heap copies go (a compaction's rebuild, after
    /// every batch: a batch's rows are 15 MB at 384-d).
    pub(crate) fn spill_rows(
        &mut self,
        files: &mut BTreeMap<String, braid_storage::VectorFile>,
    ) -> Result<(), Error> {
        for (name, space) in &mut self.spaces {
            let Some(file) = files.get_mut(name).filter(|_| space.rows.len() > space.rows.mapped_rows())
            else {
                continue;
            };
            space.rows.append_to(file)?;
            let rows = SpaceRows::mapped(file, space.params.size, space.params.datatype)?;
            debug_assert_eq!(rows.len(), space.rows.len());
            space.rows = rows;
        }
        Ok(())
    }

    /// Replaces the graph of `space` (a rebuilt one over the same offsets).
    pub(crate) fn set_graph(&mut self, space: &str, graph: Hnsw) -> Result<(), Error> {
        let unknown = self.unknown(space);
        let data = self.spaces.get_mut(space).ok_or(unknown)?;
        data.graph = graph;
        Ok(())
    }

    /// What turning this segment's configuration into `new` takes, built without
    /// changing the segment (under its read lock, so readers go on): empty spaces for
    /// the spaces `new` adds — dense ones with a zero row per offset, as a point
    /// without a vector there has — and codes for kept spaces whose quantization
    /// changes. `new` has passed [`CollectionConfig::check_change`].
    pub(crate) fn prepare_reconfigure(&self, new: CollectionConfig) -> Result<Reconfigure, Error> {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let n = self.ids.len();
        let mut added = BTreeMap::new();
        let mut codes = BTreeMap::new();
        for (name, params) in &new.vectors {
            match self.spaces.get(name) {
                Some(old) => {
                    if params.code_kind() != old.params.code_kind() {
                        let fresh = params.codes().map(|mut c| {
                            with_rows!(&old.rows, |r| c.extend_from_parallel(r, threads));
                            c
                        });
                        codes.insert(name.clone(), fresh);
                    }
                }
                None => {
                    added.insert(name.clone(), SpaceData::without_vectors(params, n, threads)?);
                }
            }
        }
        Ok(Reconfigure { config: new, added, codes })
    }

    /// Makes `change` this segment's configuration: removes the spaces it drops (their
    /// vectors with them), adds its new spaces, and sets each kept space's settings.
    /// A changed `m` or `ef_construct` leaves the graph as it was built
    /// ([`Segment::stale_graphs`] names it until a rebuild). Returns what it replaced,
    /// for [`Segment::undo_reconfigure`].
    pub(crate) fn reconfigure(&mut self, change: Reconfigure) -> Replaced {
        let Reconfigure { config, mut added, mut codes } = change;
        let mut replaced = Replaced {
            config: std::mem::replace(&mut self.config, config),
            spaces: BTreeMap::new(),
            params: BTreeMap::new(),
            sparse: BTreeMap::new(),
            multi: BTreeMap::new(),
        };
        let config = &self.config;
        let gone: Vec<String> =
            self.spaces.keys().filter(|n| !config.vectors.contains_key(*n)).cloned().collect();
        for name in gone {
            if let Some(space) = self.spaces.remove(&name) {
                replaced.spaces.insert(name, space);
            }
        }
        for (name, params) in &config.vectors {
            match self.spaces.get_mut(name) {
                Some(space) => {
                    if params.on_disk != space.params.on_disk
                        && let Err(e) = space.rows.advise(params.residency())
                    {
                        // A hint the kernel refused: rows still read the same, only
                        // what stays resident differs.
                        tracing::warn!(space = %name, error = %e, "could not advise the kernel of on_disk");
                    }
                    let old_codes = match codes.remove(name) {
                        Some(fresh) => std::mem::replace(&mut space.codes, fresh),
                        None => None,
                    };
                    replaced
                        .params
                        .insert(name.clone(), (std::mem::replace(&mut space.params, *params), old_codes));
                }
                None => {
                    if let Some(space) = added.remove(name) {
                        self.spaces.insert(name.clone(), space);
                    }
                }
            }
        }
        let gone: Vec<String> =
            self.sparse.keys().filter(|n| !config.sparse_vectors.contains_key(*n)).cloned().collect();
        for name in gone {
            if let Some(space) = self.sparse.remove(&name) {
                replaced.sparse.insert(name, space);
            }
        }
        for (name, params) in &config.sparse_vectors {
            self.sparse.entry(name.clone()).or_insert_with(|| SparseData::new(*params)).params = *params;
        }
        let gone: Vec<String> =
            self.multi.keys().filter(|n| !config.multivectors.contains_key(*n)).cloned().collect();
        for name in gone {
            if let Some(space) = self.multi.remove(&name) {
                replaced.multi.insert(name, space);
            }
        }
        for (name, params) in &config.multivectors {
            self.multi
                .entry(name.clone())
                .or_insert_with(|| MultiData { params: *params, vectors: BTreeMap::new() });
        }
        replaced
    }

    /// Puts back what [`Segment::reconfigure`] replaced (its change could not be made
    /// durable). No write has happened in between: both run under the writer lock.
    pub(crate) fn undo_reconfigure(&mut self, replaced: Replaced) {
        let Replaced { config, spaces, params, sparse, multi } = replaced;
        self.spaces.retain(|name, _| config.vectors.contains_key(name));
        self.spaces.extend(spaces);
        for (name, (params, codes)) in params {
            if let Some(space) = self.spaces.get_mut(&name) {
                space.params = params;
                if let Some(codes) = codes {
                    space.codes = Some(codes);
                } else if !params.keeps_codes() {
                    space.codes = None;
                }
            }
        }
        self.sparse.retain(|name, _| config.sparse_vectors.contains_key(name));
        self.sparse.extend(sparse);
        for (name, p) in &config.sparse_vectors {
            if let Some(space) = self.sparse.get_mut(name) {
                space.params = *p;
            }
        }
        self.multi.retain(|name, _| config.multivectors.contains_key(name));
        self.multi.extend(multi);
        self.config = config;
    }

    /// Dense spaces whose graph was built with other `m` or `ef_construct` than their
    /// configuration now asks for: what a rebuild ([`crate::Collection::reindex`])
    /// is owed. The old graph serves searches until then.
    pub(crate) fn stale_graphs(&self) -> Vec<String> {
        self.spaces
            .iter()
            .filter(|(_, s)| {
                let built = s.graph.config();
                (built.m, built.ef_construct) != (s.params.hnsw.m, s.params.hnsw.ef_construct)
            })
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// A copy of this segment's live points (vectors and payloads) and index list:
    /// what a compaction rebuilds from, taken in one short critical section so that
    /// the long rebuild holds no lock.
    pub(crate) fn live_copy(&self) -> LiveCopy {
        let points = self
            .ids
            .from(None)
            .map(|(id, o)| {
                (
                    id,
                    o,
                    CopiedPoint {
                        sparse: self.sparse_at(o),
                        multi: self.multi_at(o),
                        payload: match self.payloads.stored(PointOffset(o)) {
                            braid_filter::Stored::None => CopiedPayload::None,
                            braid_filter::Stored::Value(payload) => CopiedPayload::Shared(payload.clone()),
                            braid_filter::Stored::Encoded(_) => CopiedPayload::InFile,
                        },
                    },
                )
            })
            .collect();
        let rows =
            self.spaces.iter().map(|(name, s)| (name.clone(), (s.rows.clone(), s.present.clone()))).collect();
        let indexes = self.index_specs();
        let payloads = self.payloads.source().cloned();
        LiveCopy { config: self.config.clone(), points, rows, payloads, indexes, versions: self.ids.len() }
    }

    /// Every payload index with what recreating it takes.
    pub(crate) fn index_specs(&self) -> Vec<IndexSpec> {
        self.payloads
            .indexes()
            .map(|(key, kind)| (key.to_string(), kind, self.payloads.text_options(key).cloned()))
            .collect()
    }

    /// Point versions written (live or not).
    pub(crate) fn versions(&self) -> usize {
        self.ids.len()
    }

    pub(crate) fn space_names(&self) -> Vec<String> {
        self.spaces.keys().cloned().collect()
    }

    /// Dense and sparse space names, sorted.
    pub(crate) fn all_space_names(&self) -> Vec<String> {
        let mut names = self.space_names();
        names.extend(self.sparse.keys().cloned());
        names.extend(self.multi.keys().cloned());
        names.sort();
        names
    }

    /// The error for a dense vector given for `name`: a sparse space, or none.
    pub(crate) fn unknown(&self, name: &str) -> Error {
        if self.multi.contains_key(name) {
            return self.not_for(name, Some(("multivector", "give it a list of vectors")));
        }
        let sparse = self.sparse.contains_key(name);
        self.not_for(
            name,
            sparse.then_some(("sparse", "give it a sparse vector (indices and values) or a document")),
        )
    }

    /// The error for a sparse vector or document given for `name`: a dense space, or
    /// none.
    pub(crate) fn unknown_sparse(&self, name: &str) -> Error {
        let dense = self.spaces.contains_key(name);
        let hint = "give it a dense vector; sparse vectors and documents go to sparse spaces";
        self.not_for(name, dense.then_some(("dense", hint)))
    }

    /// `WrongKind` when `name` is a space of the other kind (`is`, `hint`), else
    /// `UnknownVector` listing every space.
    fn not_for(&self, name: &str, other: Option<(&'static str, &'static str)>) -> Error {
        match other {
            Some((is, hint)) => Error::WrongKind { name: name.to_string(), is, hint },
            None => Error::UnknownVector { name: name.to_string(), available: self.all_space_names() },
        }
    }

    /// Checks every sparse vector names a sparse space and turns each document into
    /// its space's vector.
    pub(crate) fn prepare_sparse(
        &self,
        sparse: &SparseVectors,
        documents: &BTreeMap<String, braid_text::Document>,
    ) -> Result<SparseVectors, Error> {
        let mut out = SparseVectors::new();
        for (name, v) in sparse {
            if !self.sparse.contains_key(name) {
                return Err(self.unknown_sparse(name));
            }
            out.insert(name.clone(), v.clone());
        }
        for (name, document) in documents {
            if !self.sparse.contains_key(name) {
                return Err(self.unknown_sparse(name));
            }
            if out.contains_key(name) {
                return Err(Error::InvalidConfig {
                    why: format!("`{name}` is given both a sparse vector and a document; give one"),
                });
            }
            let v = document.embed().map_err(|source| Error::Document { space: name.clone(), source })?;
            out.insert(name.clone(), v);
        }
        Ok(out)
    }

    /// The stored sparse vectors of the point at `offset`.
    pub(crate) fn sparse_at(&self, offset: u32) -> SparseVectors {
        self.sparse
            .iter()
            .filter_map(|(name, s)| s.index.get(offset).map(|v| (name.clone(), v.clone())))
            .collect()
    }

    /// Validates one vector for `space` and returns its stored form.
    pub(crate) fn prepare(&self, space: &str, vector: &[f32]) -> Result<Vec<f32>, Error> {
        let data = self.spaces.get(space).ok_or_else(|| self.unknown(space))?;
        let p = &data.params;
        braid_distance::prepare_as(p.distance, p.datatype, p.size, vector)
            .map_err(|source| Error::Vector { space: space.to_string(), source })
    }

    /// Validates every vector of a point.
    pub(crate) fn prepare_vectors(&self, vectors: &NamedVectors) -> Result<NamedVectors, Error> {
        vectors.iter().map(|(name, v)| Ok((name.clone(), self.prepare(name, v)?))).collect()
    }

    pub(crate) fn offset(&self, id: &PointId) -> Option<u32> {
        self.ids.offset(id)
    }

    /// The stored vectors of the point at `offset`.
    pub(crate) fn vectors_at(&self, offset: u32) -> NamedVectors {
        self.spaces
            .iter()
            .filter(|(_, s)| s.present.contains(offset))
            .map(|(name, s)| (name.clone(), s.rows.stored(offset)))
            .collect()
    }

    pub(crate) fn payload_at(&self, offset: u32) -> Value {
        self.payloads
            .get(PointOffset(offset))
            .map_or_else(|| Value::Object(Default::default()), Cow::into_owned)
    }

    /// Removes the live version of `id`, if any.
    pub(crate) fn remove(&mut self, id: &PointId) -> bool {
        let Some(offset) = self.ids.remove(id) else { return false };
        self.payloads.remove(PointOffset(offset));
        for space in self.spaces.values_mut() {
            if space.present.contains(offset) {
                space.live -= 1;
                space.graph.delete(PointOffset(offset));
            }
        }
        for space in self.sparse.values_mut() {
            space.index.remove(offset);
        }
        // A replaced version's multivectors are no longer reachable: free them.
        for space in self.multi.values_mut() {
            space.vectors.remove(&offset);
        }
        true
    }

    /// Writes new versions of `points` (already validated), replacing existing ones,
    /// and indexes them. When an id appears more than once, its last occurrence wins
    /// (as if the points were upserted one by one).
    #[cfg(test)]
    pub(crate) fn write(&mut self, points: Vec<Prepared>) -> Result<(), Error> {
        let unindexed = self.stage(points)?;
        self.index(unindexed)
    }

    /// Links staged versions into their spaces' graphs. Takes `&self`: the graph
    /// takes inserts concurrently with searches, so a collection runs this under the
    /// segment's read lock (holding its writer lock) and readers go on searching while
    /// a batch is linked. Until it is done, graph searches miss the staged versions
    /// (and the versions they replaced, already tombstoned); scans see them.
    pub(crate) fn index(&self, unindexed: Unindexed) -> Result<(), Error> {
        let threads = threads_for(unindexed.points);
        for (name, offsets) in unindexed.offsets {
            if let Some(space) = self.spaces.get(&name) {
                let codes = space.codes.as_ref();
                with_rows!(&space.rows, |r| space.graph.insert_all_coded(
                    r,
                    codes,
                    offsets.iter().copied(),
                    threads
                ))?;
                let added = offsets.iter().filter(|&&o| self.live().contains(o)).count();
                for (key, _) in space.graph.link_groups() {
                    let (rows, codes) = (&space.rows, space.codes.as_ref());
                    self.link(rows, codes, &space.graph, Worth::of(space), key, &offsets, added, false)?;
                }
            }
        }
        for links in unindexed.links {
            for space in self.spaces.values() {
                if space.graph.link_groups().iter().any(|(k, _)| *k == links.key) {
                    let worth = Worth::of(space);
                    let (rows, codes) = (&space.rows, space.codes.as_ref());
                    self.link(rows, codes, &space.graph, worth, links.key, &links.offsets, 0, links.replace)?;
                }
            }
        }
        Ok(())
    }

    /// Links `offsets` (those in the graph and live) in its payload-link group `key`,
    /// each among the points holding each of its values at the group's field — the
    /// values worth linking ([`Worth`]) — and, when the values these offsets brought
    /// became worth linking with them, those values' other points too. `added` is
    /// how many of `offsets` are new live points (0 when their payloads changed).
    /// Links are found and chosen by `codes` where the space keeps one-byte codes
    /// ([`Hnsw::link_in_group_coded`]).
    #[allow(clippy::too_many_arguments)]
    fn link(
        &self,
        rows: &SpaceRows,
        codes: Option<&Codes>,
        graph: &Hnsw,
        worth: Worth<'_>,
        key: u64,
        offsets: &[u32],
        added: usize,
        replace: bool,
    ) -> Result<(), Error> {
        let Some(path) = self.payloads.value_keys().find(|p| group_key(p) == key) else { return Ok(()) };
        // The values these offsets hold (each set once, by address), with how many of
        // them hold each.
        let mut brought: std::collections::HashMap<*const RoaringBitmap, (&RoaringBitmap, u64)> =
            std::collections::HashMap::new();
        for &o in offsets {
            for set in self.payloads.value_sets(path, PointOffset(o)) {
                brought.entry(std::ptr::from_ref(set)).or_insert((set, 0)).1 += 1;
            }
        }
        let before = Worth { live: worth.live.saturating_sub(added as u64), ..worth };
        let mut others = RoaringBitmap::new();
        for (set, n) in brought.values() {
            if worth.holds(set.len()) && !before.holds(set.len() - n) {
                others |= *set;
            }
        }
        if !others.is_empty() {
            for &o in offsets {
                others.remove(o);
            }
        }
        let others: Vec<u32> = others.iter().collect();
        let work: Vec<(u32, bool)> =
            offsets.iter().map(|&o| (o, replace)).chain(others.iter().map(|&o| (o, false))).collect();
        let failed = parking_lot::Mutex::new(None);
        braid_core::run_parts(work.chunks(64), threads_for(work.len()), |chunk| {
            for &(o, replace) in chunk {
                let offset = PointOffset(o);
                if !graph.contains(offset) || graph.is_deleted_offset(offset) {
                    continue;
                }
                let mut sets = self.payloads.value_sets(path, offset);
                sets.retain(|s| worth.holds(s.len()));
                if sets.is_empty() && !replace {
                    continue;
                }
                let holding: Vec<Holding> = sets.into_iter().map(Holding).collect();
                let blocks: Vec<&dyn OffsetFilter> = holding.iter().map(|h| h as &dyn OffsetFilter).collect();
                let linked =
                    with_rows!(rows, |r| graph.link_in_group_coded(r, codes, key, offset, &blocks, replace));
                if let Err(e) = linked {
                    failed.lock().get_or_insert(e);
                    return;
                }
            }
        });
        failed.into_inner().map_or(Ok(()), |e| Err(e.into()))
    }

    /// The payload-link groups `space`'s graph should have: one per value index
    /// (keyword, integer, bool, uuid), with the space's `payload_m` (none for 0).
    fn wanted_groups(&self, space: &SpaceData) -> Vec<(u64, usize)> {
        match space.params.hnsw.payload_links() {
            0 => Vec::new(),
            m => self.payloads.value_keys().map(|k| (group_key(k), m)).collect(),
        }
    }

    /// Gives every graph the payload-link groups its space and the payload indexes
    /// ask for: drops the others, adds the missing ones empty, and returns the
    /// linking of every live point in them, for [`Segment::index`].
    pub(crate) fn sync_groups(&mut self) -> Result<Unindexed, Error> {
        let wanted: Vec<(String, Vec<(u64, usize)>)> =
            self.spaces.iter().map(|(name, s)| (name.clone(), self.wanted_groups(s))).collect();
        let mut links = Vec::new();
        for (name, wanted) in wanted {
            let Some(space) = self.spaces.get_mut(&name) else { continue };
            let have = space.graph.link_groups();
            for (key, m) in &have {
                if !wanted.contains(&(*key, *m)) {
                    space.graph.remove_link_group(*key);
                }
            }
            for (key, m) in wanted {
                if !have.contains(&(key, m)) {
                    space.graph.add_link_group(key, m)?;
                    let offsets = (&space.present & self.ids.live()).iter().collect();
                    links.push(Links { key, offsets, replace: false });
                }
            }
        }
        Ok(Unindexed { points: 0, offsets: BTreeMap::new(), links })
    }

    /// Adds the payload-link groups `space` should have to `graph` (a rebuilt graph of
    /// that space, not yet swapped in) and links every live point in them.
    pub(crate) fn link_rebuilt(&self, space: &str, graph: &mut Hnsw) -> Result<(), Error> {
        let data = self.space_named(space)?;
        let offsets: Vec<u32> = (&data.present & self.live()).iter().collect();
        for (key, m) in self.wanted_groups(data) {
            graph.add_link_group(key, m)?;
            self.link(&data.rows, data.codes.as_ref(), graph, Worth::of(data), key, &offsets, 0, false)?;
        }
        Ok(())
    }

    /// Stores new versions of `points` (rows, codes, ids, payloads) without linking
    /// them into the graphs: the part of a write that needs `&mut self`. Returns what
    /// [`Segment::index`] must still link.
    fn stage(&mut self, points: Vec<Prepared>) -> Result<Unindexed, Error> {
        // Keep the last version of each id: writing an earlier one first would put a
        // version in the graph that is replaced before it is ever searchable.
        let mut last: std::collections::HashMap<PointId, usize> = std::collections::HashMap::new();
        for (i, p) in points.iter().enumerate() {
            last.insert(p.id, i);
        }
        let points: Vec<Prepared> =
            points.into_iter().enumerate().filter(|(i, p)| last[&p.id] == *i).map(|(_, p)| p).collect();
        let first = self.ids.len();
        if first + points.len() > MAX_OFFSETS {
            return Err(Error::Full { max: MAX_OFFSETS });
        }
        let end = first + points.len();
        for space in self.spaces.values_mut() {
            if space.graph.capacity() < end {
                space.graph.grow(end.max(2 * space.graph.capacity()).max(1024))?;
            }
        }
        let mut added: BTreeMap<String, Vec<u32>> = BTreeMap::new();
        for (i, point) in points.iter().enumerate() {
            let offset = (first + i) as u32;
            self.remove(&point.id);
            for (name, space) in &mut self.spaces {
                match point.vectors.get(name) {
                    Some(v) => {
                        space.rows.push(v);
                        if let Some(codes) = &mut space.codes {
                            // Coded from the row as stored, as a rebuild of the codes does.
                            space.rows.with_query(space.params.distance, offset, |q| codes.push(q));
                        }
                        space.present.insert(offset);
                        space.live += 1;
                        added.entry(name.clone()).or_default().push(offset);
                    }
                    None => {
                        let zeros = vec![0.0; space.params.size];
                        space.rows.push(&zeros);
                        if let Some(codes) = &mut space.codes {
                            codes.push(&zeros);
                        }
                    }
                }
            }
            for (name, space) in &mut self.sparse {
                if let Some(v) = point.sparse.get(name) {
                    space.index.insert(offset, v.clone());
                }
            }
            for (name, space) in &mut self.multi {
                if let Some(v) = point.multi.get(name) {
                    space.vectors.insert(offset, v.clone());
                }
            }
            let pushed = self.ids.push(point.id);
            debug_assert_eq!(pushed, offset);
            self.payloads.set(PointOffset(offset), point.payload.clone());
        }
        Ok(Unindexed { points: points.len(), offsets: added, links: Vec::new() })
    }

    /// Checks that `op` fits this segment: every vector names a space and has its
    /// dimension and finite components, payloads are objects, keys are paths, index
    /// kinds agree. The write path checks every op before it is logged; replay checks
    /// every record before it is applied, so a record that passed its checksum but
    /// does not fit (a bug, or a log from another collection) is an error rather than
    /// a misaligned row.
    pub(crate) fn check(&self, op: &Op) -> Result<(), Error> {
        let ids_ok = |n: usize| if n <= MAX_OFFSETS { Ok(()) } else { Err(Error::Full { max: MAX_OFFSETS }) };
        match op {
            Op::Upsert(points) => {
                ids_ok(points.len())?;
                for p in points {
                    for (name, v) in &p.vectors {
                        let data = self.spaces.get(name).ok_or_else(|| self.unknown(name))?;
                        let p = &data.params;
                        braid_distance::validate_as(p.distance, p.datatype, p.size, v)
                            .map_err(|source| Error::Vector { space: name.clone(), source })?;
                    }
                    if let Some(name) = p.sparse.keys().find(|n| !self.sparse.contains_key(*n)) {
                        return Err(self.unknown_sparse(name));
                    }
                    for (name, vectors) in &p.multi {
                        let data = self.multi.get(name).ok_or_else(|| self.unknown_multi(name))?;
                        for v in vectors {
                            braid_distance::validate(data.params.distance, data.params.size, v)
                                .map_err(|source| Error::Vector { space: name.clone(), source })?;
                        }
                    }
                    if !p.payload.is_object() {
                        return Err(Error::PayloadNotObject);
                    }
                }
            }
            Op::SetPayloadAt { key, .. } if key.iter().any(String::is_empty) => {
                return Err(Error::InvalidKey { key: key.join(".") });
            }
            Op::MergePayload { key, .. }
                if !key.is_empty() && braid_filter::JsonPath::parse(key).is_err() =>
            {
                return Err(Error::InvalidKey { key: key.clone() });
            }
            Op::CreateIndex { key, kind } => {
                self.payloads.check_index(key, *kind)?;
            }
            Op::CreateTextIndex { key, options } => {
                self.payloads.check_text_index(key, options)?;
            }
            Op::Delete(ids)
            | Op::SetPayload { ids, .. }
            | Op::SetPayloadAt { ids, .. }
            | Op::MergePayload { ids, .. }
            | Op::OverwritePayload { ids, .. }
            | Op::DeletePayload { ids, .. }
            | Op::ClearPayload { ids } => ids_ok(ids.len())?,
            Op::DropIndex { .. } => {}
        }
        Ok(())
    }

    /// Applies one logged operation after [`Segment::check`]ing it, indexing what it
    /// wrote. What can fail after the check is a resource (memory, the graph's
    /// capacity), not the op.
    pub(crate) fn apply(&mut self, op: Op) -> Result<(), Error> {
        let unindexed = self.apply_staged(op)?;
        self.index(unindexed)
    }

    /// [`Segment::apply`] but for linking new versions into the graphs, which the
    /// caller does with [`Segment::index`] (under a read lock, in a collection).
    pub(crate) fn apply_staged(&mut self, op: Op) -> Result<Unindexed, Error> {
        self.check(&op)?;
        match op {
            Op::Upsert(points) => return self.stage(points),
            Op::Delete(ids) => {
                for id in &ids {
                    self.remove(id);
                }
            }
            Op::SetPayload { ids, payload } => {
                return Ok(self.edit_payloads(&ids, |map| merge_into(map, &[], &payload, Nulls::Store)));
            }
            Op::SetPayloadAt { ids, key, payload } => {
                let steps: Vec<braid_filter::Step> = key.into_iter().map(braid_filter::Step::Key).collect();
                return Ok(self.edit_payloads(&ids, |map| merge_into(map, &steps, &payload, Nulls::Store)));
            }
            Op::MergePayload { ids, key, payload } => {
                let steps = match key.as_str() {
                    "" => Vec::new(),
                    key => braid_filter::JsonPath::parse(key)
                        .map_err(|_| Error::InvalidKey { key: key.to_string() })?
                        .steps()
                        .to_vec(),
                };
                return Ok(self.edit_payloads(&ids, |map| merge_into(map, &steps, &payload, Nulls::Remove)));
            }
            Op::OverwritePayload { ids, payload } => {
                return Ok(self.edit_payloads(&ids, |map| *map = payload.clone()));
            }
            Op::DeletePayload { ids, keys } => {
                let exclude = WithPayload::Exclude(keys);
                return Ok(self.edit_payloads(&ids, |map| {
                    if let Some(Value::Object(kept)) = exclude.select(&Value::Object(std::mem::take(map))) {
                        *map = kept;
                    }
                }));
            }
            Op::ClearPayload { ids } => return Ok(self.edit_payloads(&ids, serde_json::Map::clear)),
            Op::CreateIndex { key, kind } => {
                self.payloads.create_index(&key, kind)?;
                return self.sync_groups();
            }
            Op::CreateTextIndex { key, options } => self.payloads.create_text_index(&key, options)?,
            Op::DropIndex { key } => {
                self.payloads.drop_index(&key);
                return self.sync_groups();
            }
        }
        Ok(Unindexed::default())
    }

    /// Edits the payloads of `ids`; returns the payload links of the points whose
    /// values changed at a linked field, to be made again.
    fn edit_payloads(
        &mut self,
        ids: &[PointId],
        edit: impl Fn(&mut serde_json::Map<String, Value>),
    ) -> Unindexed {
        let linked: Vec<braid_filter::JsonPath> =
            if self.spaces.values().any(|s| !s.graph.link_groups().is_empty()) {
                self.payloads.value_keys().cloned().collect()
            } else {
                Vec::new()
            };
        let mut changed: Vec<Vec<u32>> = vec![Vec::new(); linked.len()];
        for id in ids {
            if let Some(offset) = self.offset(id) {
                let mut payload = self.payload_at(offset);
                if let Value::Object(map) = &mut payload {
                    edit(map);
                }
                let old = self.payloads.set(PointOffset(offset), payload);
                let new = self.payloads.get(PointOffset(offset));
                for (path, changed) in linked.iter().zip(&mut changed) {
                    let before = old.as_ref().map(|p| path.values(p)).unwrap_or_default();
                    let after = new.as_deref().map(|p| path.values(p)).unwrap_or_default();
                    if before != after {
                        changed.push(offset);
                    }
                }
            }
        }
        let links = linked
            .iter()
            .zip(changed)
            .filter(|(_, offsets)| !offsets.is_empty())
            .map(|(path, offsets)| Links { key: group_key(path), offsets, replace: true })
            .collect();
        Unindexed { points: 0, offsets: BTreeMap::new(), links }
    }

    /// Point versions this segment can still take.
    pub(crate) fn room(&self) -> usize {
        MAX_OFFSETS - self.ids.len()
    }

    /// Offsets written whose point was since replaced or deleted.
    pub(crate) fn dead(&self) -> usize {
        self.ids.len() - self.live().len() as usize
    }

    /// The live offsets `filter` selects (all live ones for `None`).
    pub(crate) fn select(&self, filter: Option<&Filter>) -> RoaringBitmap {
        match filter {
            None => self.live().clone(),
            Some(f) => self.payloads.plan(f, self).matching(),
        }
    }
}

impl PointLookup for Segment {
    fn offset_of(&self, id: &PointId) -> Option<PointOffset> {
        self.offset(id).map(PointOffset)
    }
    fn vectors(&self, name: &str) -> Option<&RoaringBitmap> {
        match self.spaces.get(name) {
            Some(s) => Some(&s.present),
            None => self.sparse.get(name).map(|s| s.index.offsets()),
        }
    }
    fn live(&self) -> &RoaringBitmap {
        self.ids.live()
    }
}

/// A filter restricted to points that have a vector in one space.
struct InSpace<'a> {
    planned: PlannedFilter<'a>,
    present: &'a RoaringBitmap,
    /// The filter's matches with a vector in the space, when the indexes answer the
    /// whole filter as a set and some live points have no vector there: intersected
    /// once per search, then asked per node. When every live point has one, the
    /// planned set (within the live points) is already that.
    restricted: Option<RoaringBitmap>,
    estimate: Cardinality,
    /// The payload-link group of the filter's field, if it names one.
    group: Option<u64>,
}

impl InSpace<'_> {
    /// The filter's matches with a vector in the space, when the indexes answer the
    /// whole filter as a set.
    fn matched(&self) -> Option<&RoaringBitmap> {
        matched_set(self.restricted.as_ref(), &self.planned)
    }
}

/// [`InSpace::matched`] from its parts: the intersected set when there is one, else the
/// planned set.
fn matched_set<'a>(
    restricted: Option<&'a RoaringBitmap>,
    planned: &'a PlannedFilter<'_>,
) -> Option<&'a RoaringBitmap> {
    restricted.or_else(|| planned.bitmap())
}

impl OffsetFilter for InSpace<'_> {
    fn matches(&self, offset: PointOffset) -> bool {
        match self.matched() {
            Some(m) => m.contains(offset.0),
            None => self.present.contains(offset.0) && self.planned.matches(offset),
        }
    }
    fn estimate(&self) -> Cardinality {
        self.estimate
    }
    fn for_each_match(&self, f: &mut dyn FnMut(PointOffset)) -> bool {
        match self.matched() {
            Some(m) => {
                m.iter().for_each(|o| f(PointOffset(o)));
                true
            }
            None => false,
        }
    }
    fn link_group(&self) -> Option<u64> {
        self.group
    }
}

impl Segment {
    fn in_space<'a>(&'a self, space: &'a SpaceData, filter: &'a Filter) -> InSpace<'a> {
        let planned = self.payloads.plan(filter, self);
        let present = &space.present;
        let in_space = self.live_in(space);
        let whole = in_space as u64 == self.live().len();
        let restricted = planned.bitmap().filter(|_| !whole).map(|b| b & present);
        let estimate = match matched_set(restricted.as_ref(), &planned) {
            Some(m) => Cardinality::exact(m.len() as usize),
            None => {
                let e = planned.estimate();
                Cardinality::new(e.min.min(in_space), e.expected.min(in_space), e.max.min(in_space))
            }
        };
        let group = planned.value_key().map(group_key);
        InSpace { planned, present, restricted, estimate, group }
    }

    fn space_data(&self, space: &str) -> Result<&SpaceData, QueryError> {
        self.spaces.get(space).ok_or_else(|| QueryError::UnknownVector {
            name: space.to_string(),
            available: self.space_names(),
        })
    }
}

/// A leaf search planned once: its space, its filter resolved against the payload
/// indexes and restricted to points with a vector there, and how many pass.
pub(crate) struct Leaf<'s> {
    data: &'s SpaceData,
    restricted: Option<InSpace<'s>>,
    estimate: Cardinality,
}

impl Leaf<'_> {
    /// The leaf's filter as the graph takes it.
    fn filter(&self) -> Option<&dyn OffsetFilter> {
        self.restricted.as_ref().map(|r| r as &dyn OffsetFilter)
    }
}

/// How a coded search of `limit` answers re-scores, from Qdrant's search-time
/// `quantization` parameters (`docs/query.md`, "Quantization at search time").
fn rescore_for(q: braid_query::QuantizationParams, limit: usize) -> braid_hnsw::Rescore {
    match (q.rescore, q.oversampling) {
        (Some(false), _) => braid_hnsw::Rescore::Off,
        // The planner bounded `limit × oversampling` by MAX_LIMIT.
        (_, Some(o)) => braid_hnsw::Rescore::Oversample((limit as f64 * o).ceil() as usize),
        (_, None) => braid_hnsw::Rescore::Pool,
    }
}

/// A graph failure while searching, for the planner (the facade reports it as
/// `Error::Internal`: a damaged index or a bug, not the request).
fn search_failed(e: braid_hnsw::HnswError) -> QueryError {
    QueryError::SearchFailed { why: e.to_string() }
}

/// How a filtered sparse search is answered.
enum SparseFilter<'a> {
    /// Few points pass: score each one's stored vector.
    Scan(RoaringBitmap),
    /// Walk the posting lists, skipping points that fail the filter.
    Lists(PlannedFilter<'a>),
}

impl Segment {
    /// The sparse space `space` and the query as it scores (IDF applied).
    fn sparse_query(
        &self,
        space: &str,
        vector: &SparseVector,
    ) -> Result<(&SparseData, SparseVector), QueryError> {
        let data = self.sparse.get(space).ok_or_else(|| QueryError::UnknownVector {
            name: space.to_string(),
            available: self.all_space_names(),
        })?;
        let query = match data.params.modifier {
            Modifier::Idf => data.index.with_idf(vector),
            Modifier::None => vector.clone(),
        };
        Ok((data, query))
    }

    /// Scan when the filter is a bitmap (every condition indexed) passing fewer points
    /// with a vector in the space than the query's lists hold entries: scoring a point's
    /// stored vector costs about one merge of it with the query. A filter with per-point
    /// parts is checked only on the points the lists bring up, never on every point.
    fn sparse_filter<'a>(
        &'a self,
        data: &SparseData,
        query: &SparseVector,
        filter: &'a Filter,
    ) -> SparseFilter<'a> {
        let planned = self.payloads.plan(filter, self);
        if let Some(bitmap) = planned.bitmap() {
            let candidates = bitmap & data.index.offsets();
            if (candidates.len() as usize) < data.index.postings(query) {
                return SparseFilter::Scan(candidates);
            }
        }
        SparseFilter::Lists(planned)
    }

    fn multi_data(&self, space: &str) -> Result<&MultiData, QueryError> {
        self.multi.get(space).ok_or_else(|| QueryError::UnknownVector {
            name: space.to_string(),
            available: self.all_space_names(),
        })
    }

    /// The offsets in `data` of those of `ids` that have a vector there.
    fn offsets_in<'a>(
        &'a self,
        data: &'a SpaceData,
        ids: &'a [PointId],
    ) -> impl Iterator<Item = (PointId, u32)> {
        ids.iter()
            .filter_map(|id| self.offset(id).map(|o| (*id, o)))
            .filter(|(_, o)| data.present.contains(*o))
    }

    fn hits(&self, found: Vec<braid_core::ScoredOffset>) -> Vec<Hit> {
        found.into_iter().map(|s| Hit::new(self.ids.id(s.offset.0), s.score)).collect()
    }
}

impl Searchable for Segment {
    type Leaf<'s> = Leaf<'s>;

    fn space(&self, name: &str) -> Option<Space> {
        self.spaces.get(name).map(|s| Space { dim: s.params.size, metric: s.params.distance })
    }
    fn space_names(&self) -> Vec<String> {
        Segment::space_names(self)
    }
    fn default_ef(&self, space: &str) -> usize {
        // Qdrant searches with ef = ef_construct when a request names none.
        self.spaces.get(space).map_or(100, |s| s.params.hnsw.ef_construct)
    }
    fn leaf<'s>(&'s self, space: &str, filter: Option<&'s Filter>) -> Result<Leaf<'s>, QueryError> {
        let data = self.space_data(space)?;
        let restricted = filter.map(|f| self.in_space(data, f));
        let estimate = match &restricted {
            Some(r) => r.estimate,
            None => Cardinality::exact(self.live_in(data)),
        };
        Ok(Leaf { data, restricted, estimate })
    }
    fn estimate(&self, leaf: &Leaf<'_>) -> Cardinality {
        leaf.estimate
    }
    fn choose(&self, leaf: &Leaf<'_>, ef: usize) -> PathChoice {
        let data = leaf.data;
        let advantage = if data.codes.is_some() { braid_hnsw::CODED_SCAN_ADVANTAGE } else { 1.0 };
        let group = leaf.restricted.as_ref().and_then(|r| r.link_group());
        let priced = data.graph.choose_path_priced(ef, Some(leaf.estimate), advantage, group);
        // Qdrant's two size thresholds, in kilobytes of f32 vectors: below them its
        // answer is exact, so Braid's is too (`docs/query.md`, "Exact by size").
        let unindexed = match self.config.indexing_threshold_kb {
            0 => true,
            threshold => data.kb(self.live_in(data)) < threshold,
        };
        let few_matches = leaf.restricted.is_some() && data.below_full_scan(leaf.estimate.max);
        let rule = if unindexed {
            "below the collection's indexing_threshold"
        } else if few_matches {
            "the filter matches less than full_scan_threshold"
        } else {
            return priced;
        };
        PathChoice { path: SearchPath::Exact, rule: Some(rule), ..priced }
    }
    fn nearest(
        &self,
        leaf: &Leaf<'_>,
        vector: &[f32],
        limit: usize,
        ef: usize,
        path: SearchPath,
        quantization: braid_query::QuantizationParams,
    ) -> Result<Vec<Hit>, QueryError> {
        let filter = leaf.filter();
        let graph = &leaf.data.graph;
        let codes = leaf.data.codes.as_ref().filter(|_| !quantization.ignore);
        let rescore = rescore_for(quantization, limit);
        let found = with_rows!(&leaf.data.rows, |rows| match (path, codes) {
            (SearchPath::Exact, _) | (SearchPath::Scan, None) => {
                graph.search_exact(rows, vector, limit, filter)
            }
            (SearchPath::Scan, Some(codes)) => {
                graph.search_scan_coded(rows, codes, vector, limit, filter, rescore)
            }
            (SearchPath::Graph, None) => graph.search(rows, vector, limit, ef, filter),
            (SearchPath::Graph, Some(codes)) => {
                graph.search_coded(rows, codes, vector, limit, ef, filter, rescore)
            }
        })
        .map_err(search_failed)?;
        Ok(self.hits(found))
    }
    fn score(&self, space: &str, vector: &[f32], ids: &[PointId]) -> Result<Vec<Hit>, QueryError> {
        let data = self.space_data(space)?;
        let kernel = Kernel::new(data.params.distance);
        Ok(self
            .offsets_in(data, ids)
            .map(|(id, o)| Hit::new(id, data.rows.score(&kernel, vector, o)))
            .collect())
    }
    fn vector_of(&self, space: &str, id: PointId) -> Result<Vec<f32>, QueryError> {
        let data = self.space_data(space)?;
        let offset = self.offset(&id).ok_or(QueryError::PointNotFound { id })?;
        if !data.present.contains(offset) {
            return Err(QueryError::NoVector { id, space: space.to_string() });
        }
        Ok(data.rows.query_of(data.params.distance, offset))
    }
    fn nearest_by(
        &self,
        leaf: &Leaf<'_>,
        scorer: &braid_query::Scorer,
        limit: usize,
        ef: usize,
        path: SearchPath,
    ) -> Result<Vec<Hit>, QueryError> {
        let filter = leaf.filter();
        let graph = &leaf.data.graph;
        let kernel = Kernel::new(leaf.data.params.distance);
        let score = |v: &[f32]| scorer.score(|e| kernel.similarity(e, v));
        let found = with_rows!(&leaf.data.rows, |rows| match path {
            SearchPath::Exact | SearchPath::Scan => graph.scan_by(rows, score, limit, filter),
            SearchPath::Graph => graph.search_by(rows, score, limit, ef, filter),
        })
        .map_err(search_failed)?;
        Ok(self.hits(found))
    }
    fn score_by(
        &self,
        space: &str,
        scorer: &braid_query::Scorer,
        ids: &[PointId],
    ) -> Result<Vec<Hit>, QueryError> {
        let data = self.space_data(space)?;
        let kernel = Kernel::new(data.params.distance);
        Ok(self
            .offsets_in(data, ids)
            .map(|(id, o)| {
                let score = data
                    .rows
                    .with_query(data.params.distance, o, |v| scorer.score(|e| kernel.similarity(e, v)));
                Hit::new(id, score)
            })
            .collect())
    }
    fn ordered(
        &self,
        filter: Option<&Filter>,
        candidates: Option<&[PointId]>,
        order: &braid_query::OrderBy,
        limit: usize,
    ) -> Result<Vec<Hit>, QueryError> {
        use std::cmp::Ordering;
        let mut among = self.select(filter);
        if let Some(ids) = candidates {
            among &= ids.iter().filter_map(|id| self.offset(id)).collect::<roaring::RoaringBitmap>();
        }
        let descending = order.direction == braid_query::Direction::Desc;
        let groups =
            self.payloads.ordered(&order.key, descending, order.start_from, &among).map_err(|e| match e {
                braid_filter::IndexError::OrderByNeedsIndex { key, found } => {
                    QueryError::NoRangeIndex { key, found }
                }
                braid_filter::IndexError::Path(e) => QueryError::OrderKey(e),
                other => QueryError::SearchFailed { why: other.to_string() },
            })?;
        // `Greater` when `a` comes after `b` in the walk's direction.
        let later = |a: Ordering| if descending { a.reverse() } else { a };
        let mut hits = Vec::with_capacity(limit.min(1024));
        for (value, offsets) in groups {
            let mut ids: Vec<PointId> = offsets.iter().map(|o| self.ids.id(o)).collect();
            ids.sort_unstable_by(|a, b| later(a.cmp(b)));
            if let Some((after_value, after_id)) = order.after {
                match later(value.total_cmp(&after_value)) {
                    Ordering::Less => continue,
                    Ordering::Equal => ids.retain(|id| later(id.cmp(&after_id)) == Ordering::Greater),
                    Ordering::Greater => {}
                }
            }
            for id in ids {
                if hits.len() == limit {
                    return Ok(hits);
                }
                hits.push(Hit { id, score: 1.0, order_value: Some(value) });
            }
        }
        Ok(hits)
    }
    fn multi_space(&self, name: &str) -> Option<Space> {
        self.multi.get(name).map(|m| Space { dim: m.params.size, metric: m.params.distance })
    }
    fn multi_nearest(
        &self,
        space: &str,
        filter: Option<&Filter>,
        query: &[Vec<f32>],
        limit: usize,
    ) -> Result<Vec<Hit>, QueryError> {
        let data = self.multi_data(space)?;
        let kernel = Kernel::new(data.params.distance);
        let passing = self.select(filter);
        let mut top = braid_distance::TopK::new(limit, braid_core::Metric::Dot);
        for offset in data.vectors.keys().filter(|o| passing.contains(**o)) {
            if let Some(score) = data.max_sim(&kernel, query, *offset) {
                top.push(PointOffset(*offset), score);
            }
        }
        let mut hits = self.hits(top.into_sorted_vec());
        // Equal scores by id, as the other exact paths.
        hits.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.id.cmp(&b.id)));
        Ok(hits)
    }
    fn multi_score(&self, space: &str, query: &[Vec<f32>], ids: &[PointId]) -> Result<Vec<Hit>, QueryError> {
        let data = self.multi_data(space)?;
        let kernel = Kernel::new(data.params.distance);
        Ok(ids
            .iter()
            .filter_map(|id| {
                let offset = self.offset(id)?;
                data.max_sim(&kernel, query, offset).map(|s| Hit::new(*id, s))
            })
            .collect())
    }
    fn payload(&self, id: PointId) -> Option<Value> {
        self.offset(&id).and_then(|o| self.payloads.get(PointOffset(o)).map(Cow::into_owned))
    }
    fn matching(&self, filter: &Filter, ids: &[PointId]) -> Vec<PointId> {
        let planned = self.payloads.plan(filter, self);
        ids.iter()
            .copied()
            .filter(|id| self.offset(id).is_some_and(|o| planned.matches(PointOffset(o))))
            .collect()
    }
    fn sparse_space(&self, name: &str) -> Option<braid_query::SparseSpace> {
        self.sparse.get(name).map(|s| braid_query::SparseSpace { idf: s.params.modifier == Modifier::Idf })
    }
    fn sparse_names(&self) -> Vec<String> {
        self.sparse.keys().cloned().collect()
    }
    fn sparse_nearest(
        &self,
        space: &str,
        filter: Option<&Filter>,
        vector: &SparseVector,
        limit: usize,
    ) -> Result<Vec<Hit>, QueryError> {
        let (data, query) = self.sparse_query(space, vector)?;
        let key = |o: u32| self.ids.id(o);
        let found = match filter.map(|f| self.sparse_filter(data, &query, f)) {
            None => data.index.search(&query, limit, |_| true, key).0,
            Some(SparseFilter::Scan(candidates)) => data.index.scan(&query, limit, &candidates, key),
            Some(SparseFilter::Lists(planned)) => {
                data.index.search(&query, limit, |o| planned.matches(PointOffset(o)), key).0
            }
        };
        Ok(found.into_iter().map(|(o, score)| Hit::new(key(o), score)).collect())
    }
    fn sparse_score(
        &self,
        space: &str,
        vector: &SparseVector,
        ids: &[PointId],
    ) -> Result<Vec<Hit>, QueryError> {
        let (data, query) = self.sparse_query(space, vector)?;
        Ok(ids
            .iter()
            .filter_map(|id| {
                let v = data.index.get(self.offset(id)?)?;
                Some(Hit::new(*id, query.dot(v)?))
            })
            .collect())
    }
    fn sparse_path(
        &self,
        space: &str,
        filter: Option<&Filter>,
        vector: &SparseVector,
        limit: usize,
    ) -> String {
        let Ok((data, query)) = self.sparse_query(space, vector) else { return String::new() };
        let idf = if data.params.modifier == Modifier::Idf { "query weighted by IDF; " } else { "" };
        let key = |o: u32| self.ids.id(o);
        let (planned, passes) = match filter.map(|f| self.sparse_filter(data, &query, f)) {
            Some(SparseFilter::Scan(candidates)) => {
                return format!(
                    "{idf}Scan: score the {} points the filter passes one by one (fewer than the entries of the query's posting lists)",
                    candidates.len()
                );
            }
            Some(SparseFilter::Lists(planned)) => (Some(planned), ", skipping points the filter fails"),
            None => (None, ""),
        };
        // Run the leaf to say what MaxScore skipped (a sparse leaf costs microseconds).
        let allowed = |o: u32| planned.as_ref().is_none_or(|p| p.matches(PointOffset(o)));
        let (_, s) = data.index.search(&query, limit, allowed, key);
        format!(
            "{idf}Inverted index: {} posting lists, {} entries over {} vectors; MaxScore touched {} entries, \
             scored {} points in full, dropped {} early{passes}",
            s.lists,
            s.postings,
            data.index.len(),
            s.touched,
            s.scored,
            s.pruned,
        )
    }
    fn sample(&self, filter: Option<&Filter>, limit: usize) -> Vec<PointId> {
        let selected = self.select(filter);
        let n = selected.len() as usize;
        let mut rng = rand::rng();
        rand::seq::index::sample(&mut rng, n, limit.min(n))
            .into_iter()
            .filter_map(|rank| selected.select(rank as u32))
            .map(|o| self.ids.id(o))
            .collect()
    }
    fn scroll(&self, filter: Option<&Filter>, limit: usize) -> Vec<PointId> {
        let selected = self.select(filter);
        self.ids.from(None).filter(|(_, o)| selected.contains(*o)).map(|(id, _)| id).take(limit).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Distance, VectorParams};
    use serde_json::json;

    fn point(i: u64, value: &str) -> Prepared {
        let x = i as f32;
        Prepared {
            id: PointId::Num(i),
            vectors: [(
                "v".to_string(),
                vec![x.sin(), x.cos(), (0.3 * x).sin(), (0.7 * x).cos(), 1.0, 0.5, x % 3.0, 0.1],
            )]
            .into(),
            sparse: Default::default(),
            multi: Default::default(),
            payload: json!({"k": value}),
        }
    }

    /// The group links of the point with id `i`, and whether all of them hold `value`.
    fn links(segment: &Segment, i: u64, value: &str) -> (usize, bool) {
        let path = braid_filter::JsonPath::parse("k").unwrap();
        let space = &segment.spaces["v"];
        let offset = segment.offset(&PointId::Num(i)).unwrap();
        let found = space.graph.group_links(group_key(&path), PointOffset(offset));
        let same = found.iter().all(|&o| segment.payload_at(o)["k"] == json!(value));
        (found.len(), same)
    }

    /// Values are linked only while a filtered search would walk the graph for them:
    /// from `full_scan_threshold` worth of points, below 40 % of the space's points; a
    /// value that becomes worth it links its earlier points too.
    #[test]
    fn values_are_linked_once_a_walk_would_use_them() {
        // 8-d f32 rows are 32 bytes: a 1 KB threshold is 32 points.
        let params = VectorParams::new(8, Distance::Euclid).hnsw(4, 16).full_scan_threshold_kb(1);
        let mut segment = Segment::new(CollectionConfig::new().vector("v", params)).unwrap();
        segment.apply(Op::CreateIndex { key: "k".into(), kind: braid_filter::IndexKind::Keyword }).unwrap();
        let mut batch: Vec<Prepared> = (0..20).map(|i| point(i, "a")).collect();
        batch.extend((20..100).map(|i| point(i, "b")));
        segment.write(batch).unwrap();
        // a: 20 points (below 32); b: 80 % of the points.
        assert_eq!(links(&segment, 0, "a").0, 0);
        assert_eq!(links(&segment, 50, "b").0, 0);
        let mut batch: Vec<Prepared> = (100..120).map(|i| point(i, "a")).collect();
        batch.extend((120..219).map(|i| point(i, "c")));
        batch.push(point(219, "b"));
        segment.write(batch).unwrap();
        // a: 40 points, 18 %: linked, its first points too; b: 81 points, 37 %, linked
        // with the point that brought it below 40 %; c: 99 points, 45 %, not.
        for i in [0, 19, 100, 119] {
            let (n, same) = links(&segment, i, "a");
            assert!(n > 0 && same, "point {i}: {n} links");
        }
        let (n, same) = links(&segment, 50, "b");
        assert!(n > 0 && same);
        assert_eq!(links(&segment, 150, "c").0, 0);
        // A point moved from a to b is linked among b's points.
        segment
            .apply(Op::SetPayload {
                ids: vec![PointId::Num(0)],
                payload: json!({"k": "b"}).as_object().unwrap().clone(),
            })
            .unwrap();
        let (n, same) = links(&segment, 0, "b");
        assert!(n > 0 && same);
    }

    /// Payloads as a payload file holds them, for tests: each one's JSON by offset.
    #[derive(Debug)]
    struct JsonFile(Vec<Option<Vec<u8>>>);

    impl PayloadSource for JsonFile {
        fn payload(&self, offset: u32) -> Option<Value> {
            serde_json::from_slice(self.encoded(offset)?).ok()
        }
        fn len(&self) -> usize {
            self.0.len()
        }
        fn bytes(&self) -> usize {
            self.0.iter().flatten().map(Vec::len).sum()
        }
        fn encoded(&self, offset: u32) -> Option<&[u8]> {
            self.0.get(offset as usize)?.as_deref()
        }
    }

    /// A compaction of a segment whose payloads are in a payload file reads them from
    /// that file, renumbered, instead of copying them: the new segment holds in memory
    /// only what was written since the file, and reads, filters and links by payload
    /// as the compaction of the same segment with every payload in memory — which
    /// shares those payloads with the old segment rather than copying them.
    #[test]
    fn a_compaction_reads_payloads_from_the_old_file_without_copying_them() {
        let params = VectorParams::new(8, Distance::Euclid).hnsw(4, 16).full_scan_threshold_kb(1);
        let values = ["a", "b", "c", "d", "e"];
        let make = |in_file: bool| {
            let mut segment = Segment::new(CollectionConfig::new().vector("v", params)).unwrap();
            segment
                .apply(Op::CreateIndex { key: "k".into(), kind: braid_filter::IndexKind::Keyword })
                .unwrap();
            segment.write((0..300).map(|i| point(i, values[i as usize % 5])).collect()).unwrap();
            if in_file {
                let file = (0..segment.versions() as u32)
                    .map(|o| segment.payloads.get(PointOffset(o)).map(|p| serde_json::to_vec(&*p).unwrap()))
                    .collect();
                segment.payloads.hold_in(Some(Arc::new(JsonFile(file))));
            }
            // Since the file: deletes, a payload replaced, a point without one.
            for i in (0..300).step_by(7) {
                segment.remove(&PointId::Num(i));
            }
            let mut bare = point(400, "");
            bare.payload = json!({});
            segment.write(vec![point(3, "e"), bare]).unwrap();
            segment
        };
        let (held, memory) = (make(true), make(false));
        assert_eq!(held.payloads().residency().0, 1, "point 3's new payload");
        let old = memory;
        let (held, memory) = (held.live_copy().build(None).unwrap(), old.live_copy().build(None).unwrap());
        assert_eq!(held.payloads().residency().0, 1, "still only point 3's, the rest read from the file");
        assert!(memory.payloads().residency().0 > 250);
        assert_eq!(held.versions(), memory.versions());
        for o in 0..held.versions() as u32 {
            let offset = PointOffset(o);
            assert_eq!(held.id_at(offset), memory.id_at(offset));
            assert_eq!(held.payload_at(o), memory.payload_at(o), "offset {o}");
            // What the checkpoint after the compaction copies as it is.
            let copied = matches!(held.payloads().stored(offset), braid_filter::Stored::Encoded(_));
            let id = held.id_at(offset);
            assert_eq!(copied, id != PointId::Num(3) && id != PointId::Num(400), "{id:?}");
            let before = PointOffset(old.offset(&id).unwrap());
            use braid_filter::Stored;
            match (old.payloads().stored(before), memory.payloads().stored(offset)) {
                (Stored::Value(a), Stored::Value(b)) => {
                    assert!(Arc::ptr_eq(a, b), "{id:?}: shared, not copied")
                }
                (a, b) => assert!(
                    matches!((a, b), (Stored::None, Stored::None)) && id == PointId::Num(400),
                    "{id:?}"
                ),
            }
        }
        for value in values {
            let filter = Filter::must([braid_filter::field("k").eq(value)]);
            let selected = |s: &Segment| {
                let passed = s.in_space(s.space_data("v").unwrap(), &filter);
                let mut listed = Vec::new();
                assert!(passed.for_each_match(&mut |o| listed.push(s.id_at(o))));
                listed
            };
            assert_eq!(selected(&held), selected(&memory), "{value}");
            // 20 % of the points each: linked among themselves in both.
            let first = (0..300u64)
                .find(|&i| {
                    i % 5 == values.iter().position(|v| *v == value).unwrap() as u64 && i % 7 != 0 && i != 3
                })
                .unwrap();
            let (n, same) = links(&held, first, value);
            assert!(n > 0 && same, "{value}: {n} links");
        }
    }

    /// A filter the indexes answer as a set counts and passes, in one space, only the
    /// points with a vector there: in a space every point has (where the planned set
    /// is used as it is) and in one a third of the points lack.
    #[test]
    fn a_filter_in_a_space_counts_and_passes_only_points_with_a_vector_there() {
        let params = VectorParams::new(8, Distance::Euclid);
        let config = CollectionConfig::new().vector("v", params).vector("w", params);
        let mut segment = Segment::new(config).unwrap();
        segment.apply(Op::CreateIndex { key: "k".into(), kind: braid_filter::IndexKind::Keyword }).unwrap();
        let batch = (0..60)
            .map(|i| {
                let mut p = point(i, if i % 2 == 0 { "a" } else { "b" });
                let row = p.vectors["v"].clone();
                if i % 3 == 0 {
                    p.vectors.clear();
                }
                p.vectors.insert("w".to_string(), row);
                p
            })
            .collect();
        segment.write(batch).unwrap();
        let filter = Filter::must([braid_filter::field("k").eq("a")]);
        for (space, has) in [("w", (|_| true) as fn(u64) -> bool), ("v", |i| i % 3 != 0)] {
            let passed = segment.in_space(segment.space_data(space).unwrap(), &filter);
            let expected: Vec<u64> = (0..60).filter(|&i| i % 2 == 0 && has(i)).collect();
            assert_eq!(passed.estimate().expected, expected.len(), "{space}");
            let mut listed = Vec::new();
            assert!(passed.for_each_match(&mut |o| listed.push(segment.id_at(o))));
            assert_eq!(listed, expected.iter().map(|&i| PointId::Num(i)).collect::<Vec<_>>(), "{space}");
            for i in 0..60 {
                let offset = PointOffset(segment.offset(&PointId::Num(i)).unwrap());
                assert_eq!(passed.matches(offset), expected.contains(&i), "{space}: point {i}");
            }
        }
    }
}
