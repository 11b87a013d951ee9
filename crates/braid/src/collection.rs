//! A collection: the handle users search and write through.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};

use braid_core::PointId;
use braid_filter::{Filter, IndexKind};
use braid_query::{Hit, QueryRequest, SearchParams, Stop};
use parking_lot::{Mutex, RwLock};
use serde_json::{Map, Value};

use crate::Error;
use crate::config::CollectionConfig;
use crate::ops::{EntryMark, Op, Prepared};
use crate::point::{PointStruct, PointVectors, Record, ScoredPoint, WithPayload, WithVectors};
use crate::segment::Segment;
use crate::store::{Remap, Store};
use braid_storage::IoContext;
use braid_storage::wal::WalSyncer;

/// The most points one upsert, get or delete call may carry.
pub const MAX_BATCH: usize = 10_000;

/// Which points a write applies to.
#[derive(Clone, Debug, PartialEq)]
pub enum PointsSelector {
    /// These ids (ids that do not exist are skipped).
    Ids(Vec<PointId>),
    /// Every point the filter matches.
    Filter(Filter),
}

impl From<Vec<PointId>> for PointsSelector {
    fn from(ids: Vec<PointId>) -> Self {
        PointsSelector::Ids(ids)
    }
}

impl From<Filter> for PointsSelector {
    fn from(filter: Filter) -> Self {
        PointsSelector::Filter(filter)
    }
}

/// A search in one named space, built as a sentence:
/// `SearchRequest::new("text", vector).limit(5).filter(f).with_payload(true)`.
#[derive(Clone, Debug, PartialEq)]
pub struct SearchRequest {
    /// The space (`using`).
    pub using: String,
    /// The query vector.
    pub vector: Vec<f32>,
    /// A payload filter.
    pub filter: Option<Filter>,
    /// How many results (default 10).
    pub limit: usize,
    /// How many to skip.
    pub offset: usize,
    /// Strict score threshold in the metric's direction.
    pub score_threshold: Option<f32>,
    /// `hnsw_ef` / `exact`.
    pub params: Option<SearchParams>,
    /// Which payload to return.
    pub with_payload: WithPayload,
    /// Which vectors to return.
    pub with_vectors: WithVectors,
}

impl SearchRequest {
    /// Nearest to `vector` in `using`.
    pub fn new(using: &str, vector: Vec<f32>) -> SearchRequest {
        SearchRequest {
            using: using.to_string(),
            vector,
            filter: None,
            limit: 10,
            offset: 0,
            score_threshold: None,
            params: None,
            with_payload: WithPayload::None,
            with_vectors: WithVectors::None,
        }
    }
    /// How many results.
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = limit;
        self
    }
    /// How many to skip.
    pub fn offset(mut self, offset: usize) -> Self {
        self.offset = offset;
        self
    }
    /// A payload filter.
    pub fn filter(mut self, filter: Filter) -> Self {
        self.filter = Some(filter);
        self
    }
    /// A strict score threshold.
    pub fn score_threshold(mut self, threshold: f32) -> Self {
        self.score_threshold = Some(threshold);
        self
    }
    /// `hnsw_ef` / `exact`.
    pub fn params(mut self, params: SearchParams) -> Self {
        self.params = Some(params);
        self
    }
    /// Which payload to return.
    pub fn with_payload(mut self, with: impl Into<WithPayload>) -> Self {
        self.with_payload = with.into();
        self
    }
    /// Which vectors to return.
    pub fn with_vectors(mut self, with: impl Into<WithVectors>) -> Self {
        self.with_vectors = with.into();
        self
    }

    /// The same search as a universal query.
    pub fn to_query(&self) -> QueryPoints {
        let mut q =
            QueryRequest::nearest(&self.using, self.vector.clone()).limit(self.limit).offset(self.offset);
        q.filter = self.filter.clone();
        q.score_threshold = self.score_threshold;
        q.params = self.params;
        QueryPoints {
            request: q,
            with_payload: self.with_payload.clone(),
            with_vectors: self.with_vectors.clone(),
        }
    }
}

/// A universal query (prefetch, fusion, re-ranking) with result selectors.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct QueryPoints {
    /// The query tree.
    pub request: QueryRequest,
    /// Which payload to return.
    pub with_payload: WithPayload,
    /// Which vectors to return.
    pub with_vectors: WithVectors,
}

impl From<QueryRequest> for QueryPoints {
    fn from(request: QueryRequest) -> Self {
        QueryPoints { request, with_payload: WithPayload::None, with_vectors: WithVectors::None }
    }
}

impl QueryPoints {
    /// Which payload to return.
    pub fn with_payload(mut self, with: impl Into<WithPayload>) -> Self {
        self.with_payload = with.into();
        self
    }
    /// Which vectors to return.
    pub fn with_vectors(mut self, with: impl Into<WithVectors>) -> Self {
        self.with_vectors = with.into();
        self
    }
}

/// One value of a facet and how many points hold it ([`Collection::facet`]).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FacetHit {
    /// The value.
    pub value: braid_filter::FacetValue,
    /// Points holding it.
    pub count: usize,
}

/// A collection without a store (an in-memory database) has nowhere to put a
/// payload file.
fn payloads_in_memory(config: &CollectionConfig) -> Result<(), Error> {
    if config.on_disk_payload {
        return Err(Error::InvalidConfig {
            why: "on_disk_payload needs a database on disk; an in-memory database keeps payloads in memory"
                .into(),
        });
    }
    if let Some((name, _)) = config.vectors.iter().find(|(_, p)| p.hnsw.on_disk) {
        return Err(Error::InvalidConfig {
            why: format!(
                "space `{name}`: hnsw on_disk needs a database on disk; an in-memory database keeps graphs in memory"
            ),
        });
    }
    if let Some((name, _)) = config.vectors.iter().find(|(_, p)| p.codes_on_disk) {
        return Err(Error::InvalidConfig {
            why: format!(
                "space `{name}`: codes on disk (always_ram: false) need a database on disk; an in-memory database keeps codes in memory"
            ),
        });
    }
    Ok(())
}

/// What [`Collection::info`] reports.
#[derive(Clone, Debug, PartialEq)]
pub struct CollectionInfo {
    /// `green`: every write is applied and indexed (writes index synchronously);
    /// `yellow`: a graph waits for its rebuild after its settings changed
    /// ([`Collection::reconfigure`]); the old one serves meanwhile; `red`: the
    /// collection failed (see `damage`) and refuses every request.
    pub status: &'static str,
    /// Why the status is `red`: the damage the background checksum pass found
    /// ([`Task::Verify`]).
    pub damage: Option<Error>,
    /// Live points.
    pub points_count: usize,
    /// Live vectors per space, dense and sparse.
    pub vectors_count: BTreeMap<String, usize>,
    /// Live vectors in each space's graph.
    pub indexed_vectors_count: BTreeMap<String, usize>,
    /// Payload indexes by key.
    pub payload_schema: BTreeMap<String, IndexKind>,
    /// The options of each text index, by key.
    pub text_indexes: BTreeMap<String, braid_text::TextOptions>,
    /// The configuration.
    pub config: CollectionConfig,
    /// Bytes of the collection's files (`None` in memory).
    pub disk_bytes: Option<u64>,
    /// Point versions written and since replaced or deleted, which `compact` drops.
    pub dead_versions: usize,
    /// Bytes each dense space holds, by part.
    pub memory: BTreeMap<String, SpaceMemory>,
    /// Where the payloads are held.
    pub payloads: PayloadResidency,
}

/// Where a collection's payloads are held ([`CollectionInfo::payloads`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PayloadResidency {
    /// Payloads in memory: all of them, or with `on_disk_payload` those written since
    /// the last checkpoint.
    pub in_memory: usize,
    /// Bytes of the payload file read as payloads are asked for (`on_disk_payload`;
    /// page cache, not heap), 0 without one.
    pub file_bytes: usize,
}

/// The bytes one dense space holds ([`CollectionInfo::memory`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SpaceMemory {
    /// The `f32` rows (one per point offset, zeros where a point has no vector here).
    pub vectors: usize,
    /// Of `vectors`, the rows mapped from the space's vector file: page cache the
    /// kernel can drop and read again, not heap. The rest is heap.
    pub vectors_mapped: usize,
    /// The quantized codes (int8, binary or product) with their per-vector terms.
    pub codes: usize,
    /// Of `codes`, the codes held in the mapped codes file (`codes_on_disk`): page
    /// cache the kernel can drop and read again, not heap. The rest is heap.
    pub codes_mapped: usize,
    /// The HNSW graph's links, levels and locks.
    pub graph: usize,
    /// Of `graph`, the layer-0 links mapped from the graph file (`hnsw_config.on_disk`):
    /// page cache the kernel can drop and read again, not heap, except for the pages an
    /// insert has written since the last checkpoint. The rest is heap.
    pub graph_mapped: usize,
}

/// What a collection is doing, as [`Collection::state`] reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CollectionState {
    /// Serving reads and writes; nothing running in the background of this collection.
    Ready,
    /// Writing a checkpoint (`flush`, or the log passed its size limit). Reads go on;
    /// writes wait for it.
    Flushing,
    /// Rewriting the collection without its deleted points, or rebuilding a graph
    /// (`optimize`, `compact`, `rebuild_index`). Reads go on; writes wait for it.
    Optimizing,
}

/// Work a collection does that no request waits for, whose failure
/// [`Collection::failures`] reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Task {
    /// Syncing the log (`Collection::sync`, the server's once-a-second sync). While
    /// this has failed the log is poisoned: writes are refused until the database is
    /// reopened.
    Sync,
    /// A checkpoint (`flush`, or the automatic one once the log is large).
    Checkpoint,
    /// A compaction (`compact`, `optimize`, the background optimiser).
    Compaction,
    /// The checksum pass over the vector files that the open left running in the
    /// background (`StorageOptions::verify_after_open_above`). Once it has failed the
    /// collection is damaged: every request is refused with its error until the
    /// files are repaired (a snapshot restored) and the database reopened.
    Verify,
}

/// What [`Collection::optimize`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OptimizeReport {
    /// Point versions dropped (replaced or deleted points).
    pub dropped: usize,
    /// Live points kept.
    pub kept: usize,
}

/// A collection handle. Cheap to clone; `Send + Sync`; many readers and one writer at
/// a time. Readers share a read–write lock around the segment; writers first take the
/// writer lock, which also owns the collection's files when it is on disk, so the log
/// order is the order writes are applied in.
#[derive(Clone)]
pub struct Collection {
    name: Arc<str>,
    inner: Arc<Shared>,
}

struct Shared {
    segment: RwLock<Segment>,
    /// The writer lock; `Some` when the collection is on disk.
    writer: Mutex<Option<Store>>,
    /// Syncs the current log without the writer lock (so a sync never waits for a
    /// compaction). Replaced under the writer lock when a checkpoint starts a new log,
    /// before any write reaches the new one.
    syncer: Mutex<Option<WalSyncer>>,
    /// The last failure of each kind of background work, until that work succeeds.
    failures: Mutex<BTreeMap<Task, Error>>,
    /// The store's `disk_bytes` after the last write or checkpoint, so that `info`
    /// never waits for the writer lock.
    disk_bytes: AtomicU64,
    state: AtomicU8,
    /// While a compaction rebuilds (without the writer lock), every op written since
    /// its copy was taken, in log order, for it to apply to the rebuilt segment
    /// before swapping it in. `None` when no compaction runs.
    tail: Mutex<Option<Vec<Op>>>,
    /// One compaction at a time.
    compacting: Mutex<()>,
    /// Finds the other collections of the database (`lookup_from`); unset for a
    /// collection made outside a database.
    finder: std::sync::OnceLock<Finder>,
    /// Where the background checksum pass over the vector files stands; shared with
    /// the pass's thread, which holds nothing else of the collection (so that the
    /// directory is unlocked as soon as the last handle is dropped).
    verify: Arc<Verification>,
    /// Where replicated writes stand, for a collection in memory (one on disk keeps
    /// it in its store's manifest).
    entry_in_memory: Mutex<EntryMark>,
}

std::thread_local! {
    /// The replicated entry the writes this thread makes belong to
    /// ([`Collection::write_in_entry`]): the collection (its shared state's address),
    /// the entry's position, and the write's number in it.
    static IN_ENTRY: std::cell::RefCell<Option<(usize, Vec<u8>, u32)>> = const { std::cell::RefCell::new(None) };
}

/// The checksum pass a collection's open left to a background thread.
#[derive(Default)]
struct Verification {
    /// Whether the pass still runs.
    pending: Mutex<bool>,
    /// Signalled when it ends.
    ended: parking_lot::Condvar,
    /// What it found wrong, if it did: every request returns it from then on, and
    /// `failures()` reports it as [`Task::Verify`].
    damage: std::sync::OnceLock<Error>,
}

impl Verification {
    /// Records how the pass over collection `name`'s files ended and wakes its waiters.
    fn end(&self, name: &str, found: Result<(), Error>) {
        let mut pending = self.pending.lock();
        match found {
            Ok(()) => tracing::info!(collection = %name, "vector files verified"),
            Err(e) => {
                tracing::error!(collection = %name, error = %e, "vector files damaged; the collection fails every request");
                let _ = self.damage.set(e);
            }
        }
        *pending = false;
        self.ended.notify_all();
    }
}

/// Finds a collection of the same database by name.
pub(crate) type Finder = Arc<dyn Fn(&str) -> Option<Collection> + Send + Sync>;

/// A collection handle that does not keep the collection (or its directory lock)
/// alive: what the background optimiser holds between rounds.
#[derive(Clone)]
pub(crate) struct WeakCollection {
    name: Arc<str>,
    inner: std::sync::Weak<Shared>,
}

impl WeakCollection {
    pub(crate) fn upgrade(&self) -> Option<Collection> {
        self.inner.upgrade().map(|inner| Collection { name: self.name.clone(), inner })
    }
}

impl std::fmt::Debug for Collection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Collection").field("name", &self.name).finish_non_exhaustive()
    }
}

fn check_batch(n: usize) -> Result<(), Error> {
    if n == 0 {
        Err(Error::EmptyBatch)
    } else if n > MAX_BATCH {
        Err(Error::BatchTooLarge { max: MAX_BATCH, got: n })
    } else {
        Ok(())
    }
}

/// How deep objects and arrays may nest in a stored payload (a `set_payload` key's
/// parts count as levels too). serde_json reads at most 128 levels back, so every
/// payload Braid stores can be read again.
pub const MAX_PAYLOAD_DEPTH: usize = 64;

/// The longest payload key (`set_payload`'s `key`) Braid accepts, in bytes.
pub const MAX_KEY_BYTES: usize = 1024;

/// How deep `value` nests, counted without recursion and only up to `max + 1`.
fn depth(value: &Value, max: usize) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(value, 0usize)];
    while let Some((v, d)) = stack.pop() {
        let children: Box<dyn Iterator<Item = &Value>> = match v {
            Value::Object(m) => Box::new(m.values()),
            Value::Array(a) => Box::new(a.iter()),
            _ => continue,
        };
        deepest = deepest.max(d + 1);
        if deepest > max {
            break;
        }
        stack.extend(children.map(|c| (c, d + 1)));
    }
    deepest
}

/// A payload as stored below `above` levels of objects: an object, and all of it at
/// most [`MAX_PAYLOAD_DEPTH`] levels deep.
fn payload_below(payload: &Value, above: usize) -> Result<&Map<String, Value>, Error> {
    let map = payload.as_object().ok_or(Error::PayloadNotObject)?;
    let room = MAX_PAYLOAD_DEPTH.saturating_sub(above);
    let found = depth(payload, room);
    if found > room {
        return Err(Error::PayloadTooDeep { depth: found + above, max: MAX_PAYLOAD_DEPTH });
    }
    Ok(map)
}

fn object(payload: &Value) -> Result<&Map<String, Value>, Error> {
    payload_below(payload, 0)
}

/// Ends a compaction's tail (see `Shared::tail`) when dropped.
struct TailGuard<'a>(&'a Mutex<Option<Vec<Op>>>);

impl TailGuard<'_> {
    /// The ops written since the copy; collecting stops. Call under the writer lock.
    fn take(&self) -> Vec<Op> {
        self.0.lock().take().unwrap_or_default()
    }
}

impl Drop for TailGuard<'_> {
    fn drop(&mut self) {
        *self.0.lock() = None;
    }
}

/// Sets the state for as long as it lives, then puts back the one before (a
/// checkpoint inside a compaction returns to `Optimizing`).
struct StateGuard<'a>(&'a AtomicU8, u8);

impl<'a> StateGuard<'a> {
    fn new(cell: &'a AtomicU8, state: CollectionState) -> Self {
        let before = cell.swap(state as u8, Ordering::AcqRel);
        StateGuard(cell, before)
    }
}

impl Drop for StateGuard<'_> {
    fn drop(&mut self) {
        self.0.store(self.1, Ordering::Release);
    }
}

impl Collection {
    pub(crate) fn new(name: &str, config: CollectionConfig) -> Result<Collection, Error> {
        payloads_in_memory(&config)?;
        Ok(Collection::from_parts(name, Segment::new(config)?, None))
    }

    pub(crate) fn from_parts(name: &str, segment: Segment, store: Option<Store>) -> Collection {
        let disk_bytes = AtomicU64::new(store.as_ref().map_or(0, Store::disk_bytes));
        Collection {
            name: name.into(),
            inner: Arc::new(Shared {
                segment: RwLock::new(segment),
                syncer: Mutex::new(store.as_ref().map(Store::syncer)),
                writer: Mutex::new(store),
                failures: Mutex::new(BTreeMap::new()),
                disk_bytes,
                state: AtomicU8::new(CollectionState::Ready as u8),
                tail: Mutex::new(None),
                compacting: Mutex::new(()),
                finder: std::sync::OnceLock::new(),
                verify: Arc::default(),
                entry_in_memory: Mutex::new(EntryMark::default()),
            }),
        }
    }

    /// Runs the checksum passes `Store::open` left (files above
    /// `StorageOptions::verify_after_open_above`) on a thread of their own, while the
    /// collection serves; damage found fails the collection (see [`Task::Verify`]).
    /// The thread stops early when the collection is dropped. Where no thread can be
    /// started, the passes run here, before the open returns.
    pub(crate) fn verify_in_background(&self, checks: Vec<braid_storage::RowsCheck>) {
        if checks.is_empty() {
            return;
        }
        let state = self.inner.verify.clone();
        *state.pending.lock() = true;
        let name = self.name.clone();
        let run = move || {
            // Only the thread's own reference left: the collection is gone.
            let alive = || Arc::strong_count(&state) > 1;
            let mut found = Ok(());
            for check in &checks {
                match check.run(alive) {
                    Ok(true) => {}
                    Ok(false) => return,
                    Err(e) => {
                        found = Err(Error::from(e));
                        break;
                    }
                }
            }
            state.end(&name, found);
        };
        // The pass goes to its thread through a slot so that, when no thread can be
        // had, it is still here to run before the open returns (as every open did
        // before the pass moved to the background): slower, never unchecked.
        let slot = Arc::new(Mutex::new(Some(run)));
        let for_thread = slot.clone();
        let spawned =
            std::thread::Builder::new().name(format!("braid-verify-{}", self.name)).spawn(move || {
                let run = for_thread.lock().take();
                run.map_or((), |run| run())
            });
        let left = if spawned.is_err() { slot.lock().take() } else { None };
        if let Some(run) = left {
            run();
        }
    }

    /// `Err` once the background checksum pass has found the collection's files
    /// damaged (the pass's error); every request checks this first.
    fn healthy(&self) -> Result<(), Error> {
        match self.inner.verify.damage.get() {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }

    /// The segment for a request, once [`Collection::healthy`] says it may be served.
    pub(crate) fn serve(&self) -> Result<parking_lot::RwLockReadGuard<'_, Segment>, Error> {
        self.healthy()?;
        Ok(self.read())
    }

    /// Waits until the checksum pass over the vector files that the open left to a
    /// background thread (files above `StorageOptions::verify_after_open_above`) has
    /// ended, and returns its verdict: `Ok` when every row matches its checksum (or
    /// there was nothing left to check), the storage error otherwise.
    pub fn verify_wait(&self) -> Result<(), Error> {
        let mut pending = self.inner.verify.pending.lock();
        while *pending {
            self.inner.verify.ended.wait(&mut pending);
        }
        drop(pending);
        self.healthy()
    }

    /// Whether the checksum pass the open left running is still running.
    pub fn verifying(&self) -> bool {
        *self.inner.verify.pending.lock()
    }

    pub(crate) fn set_finder(&self, finder: Finder) {
        let _ = self.inner.finder.set(finder);
    }

    /// The vector of point `id` in space `using` (the default space for `None`), for
    /// another collection's `lookup_from`.
    fn lookup_vector(&self, using: Option<&str>, id: PointId) -> Result<Vec<f32>, Error> {
        use braid_query::Searchable;
        let segment = self.serve()?;
        let (space, _) = braid_query::resolve_space(&*segment, using.map(str::to_string).as_ref())?;
        Ok(segment.vector_of(&space, id)?)
    }

    /// `request` with every level that has `lookup_from` rewritten: the points its
    /// query names replaced by their vectors in the collection (and space) named, so
    /// that the planner sees plain vectors (which it does not exclude from results:
    /// they are other collections' points). Borrowed when nothing needs it.
    pub(crate) fn resolve_lookups<'r>(
        &self,
        request: &'r QueryRequest,
    ) -> Result<std::borrow::Cow<'r, QueryRequest>, Error> {
        fn any(p: &[braid_query::Prefetch]) -> bool {
            p.iter().any(|p| p.lookup_from.is_some() || any(&p.prefetch))
        }
        if request.lookup_from.is_none() && !any(&request.prefetch) {
            return Ok(std::borrow::Cow::Borrowed(request));
        }
        let mut owned = request.clone();
        let QueryRequest { lookup_from, query, using, prefetch, .. } = &mut owned;
        self.resolve_level(lookup_from, query, using.as_deref())?;
        self.resolve_prefetches(prefetch)?;
        Ok(std::borrow::Cow::Owned(owned))
    }

    fn resolve_prefetches(&self, prefetch: &mut [braid_query::Prefetch]) -> Result<(), Error> {
        for p in prefetch {
            self.resolve_level(&mut p.lookup_from, &mut p.query, p.using.as_deref())?;
            self.resolve_prefetches(&mut p.prefetch)?;
        }
        Ok(())
    }

    fn resolve_level(
        &self,
        lookup_from: &mut Option<braid_query::LookupFrom>,
        query: &mut Option<braid_query::Query>,
        using: Option<&str>,
    ) -> Result<(), Error> {
        use braid_query::{Example, Query};
        let Some(lookup) = lookup_from.take() else { return Ok(()) };
        let other = self.find(&lookup.collection)?;
        let space = lookup.vector.as_deref().or(using);
        let vector = |id: PointId| other.lookup_vector(space, id);
        let fill = |e: &mut Example| -> Result<(), Error> {
            if let Example::Id(id) = e {
                *e = Example::Vector(vector(*id)?);
            }
            Ok(())
        };
        match query {
            Some(Query::Point(id)) => *query = Some(Query::Nearest(vector(*id)?)),
            Some(Query::Mmr { nearest, .. }) => fill(nearest)?,
            Some(Query::Recommend(r)) => {
                r.positive.iter_mut().chain(r.negative.iter_mut()).try_for_each(fill)?;
            }
            Some(Query::Discover { target, context }) => {
                fill(target)?;
                context
                    .iter_mut()
                    .try_for_each(|p| fill(&mut p.positive).and_then(|_| fill(&mut p.negative)))?;
            }
            Some(Query::Context(pairs)) => {
                pairs
                    .iter_mut()
                    .try_for_each(|p| fill(&mut p.positive).and_then(|_| fill(&mut p.negative)))?;
            }
            _ => {}
        }
        Ok(())
    }

    /// The collection `name` of the same database (this one for its own name).
    pub(crate) fn find(&self, name: &str) -> Result<Collection, Error> {
        if name == &*self.name {
            return Ok(self.clone());
        }
        self.inner
            .finder
            .get()
            .and_then(|find| find(name))
            .ok_or_else(|| Error::CollectionNotFound { name: name.to_string() })
    }

    pub(crate) fn downgrade(&self) -> WeakCollection {
        WeakCollection { name: self.name.clone(), inner: Arc::downgrade(&self.inner) }
    }

    /// The collection's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The configuration.
    pub fn config(&self) -> CollectionConfig {
        self.read().config().clone()
    }

    /// The write path: under the writer lock, `plan` validates the request against the
    /// current state and resolves it to an [`Op`] (or to nothing to do); the op is
    /// logged, then applied. Readers are blocked only while it is applied.
    fn write<T>(&self, plan: impl FnOnce(&Segment) -> Result<(Option<Op>, T), Error>) -> Result<T, Error> {
        self.healthy()?;
        let mut store = self.inner.writer.lock();
        let (op, out) = {
            let segment = self.inner.segment.read();
            let (op, out) = plan(&segment)?;
            if let Some(op) = &op {
                segment.check(op)?;
            }
            (op, out)
        };
        let Some(op) = op else { return Ok(out) };
        let id = Arc::as_ptr(&self.inner) as usize;
        let entry = IN_ENTRY
            .with(|e| e.borrow().as_ref().filter(|(c, ..)| *c == id).map(|(_, p, i)| (p.clone(), *i)));
        let entry = entry.as_ref().map(|(p, i)| (p.as_slice(), *i));
        match store.as_mut() {
            Some(store) => store.log(&op, entry)?,
            None => {
                if let Some((position, index)) = entry {
                    self.inner.entry_in_memory.lock().open = Some((position.to_vec(), index));
                }
            }
        }
        if let Some(tail) = self.inner.tail.lock().as_mut() {
            tail.push(op.clone());
        }
        // Stored under the write lock, linked into the graphs under a read lock:
        // readers wait only for the first, short part. The writer lock stays held,
        // so no other write sees a half-indexed segment.
        let unindexed = self.inner.segment.write().apply_staged(op)?;
        self.inner.segment.read().index(unindexed)?;
        if let Some(s) = store.as_mut()
            && s.wants_checkpoint()
        {
            // The write is logged and applied, so it is acknowledged whatever happens
            // here; a failed checkpoint leaves the previous one (and the log) in place,
            // is logged and reported by `failures()`, and the next write retries.
            let _ = self.checkpoint(s);
        }
        if let Some(s) = store.as_ref() {
            self.inner.disk_bytes.store(s.disk_bytes(), Ordering::Relaxed);
        }
        Ok(out)
    }

    /// Runs `f`, whose writes to this collection are logged as write number `index` of
    /// the replicated entry at `position` (#19; `docs/distributed.md`): after a crash,
    /// [`Collection::entry_mark`] says the highest number of that entry the durable log
    /// holds, and a replica applying the entry again skips the writes up to it. Writes
    /// `f` makes to other collections, or on other threads, are not part of it.
    pub fn write_in_entry<T>(&self, position: &[u8], index: u32, f: impl FnOnce(&Collection) -> T) -> T {
        struct Restore(Option<(usize, Vec<u8>, u32)>);
        impl Drop for Restore {
            fn drop(&mut self) {
                let previous = self.0.take();
                IN_ENTRY.with(|e| *e.borrow_mut() = previous);
            }
        }
        let id = Arc::as_ptr(&self.inner) as usize;
        let _restore = Restore(IN_ENTRY.with(|e| e.borrow_mut().replace((id, position.to_vec(), index))));
        f(self)
    }

    /// Logs the end of the replicated entry at `position`: every write made in it is
    /// logged before, and [`Collection::entry_mark`] names it closed (durable as the
    /// writes are: at the next sync, or at once with `Durability::EveryWrite`).
    pub fn close_entry(&self, position: &[u8]) -> Result<(), Error> {
        self.healthy()?;
        let mut store = self.inner.writer.lock();
        match store.as_mut() {
            Some(store) => store.close_entry(position),
            None => {
                *self.inner.entry_in_memory.lock() =
                    EntryMark { closed: Some(position.to_vec()), open: None };
                Ok(())
            }
        }
    }

    /// Where this collection's replicated writes stand: after an open, as the durable
    /// log and the last checkpoint have them.
    pub fn entry_mark(&self) -> EntryMark {
        match self.inner.writer.lock().as_ref() {
            Some(store) => store.entry_mark().clone(),
            None => self.inner.entry_in_memory.lock().clone(),
        }
    }

    /// Records how background work of kind `task` ended: a failure is logged and kept
    /// for [`Collection::failures`] until the same work succeeds.
    fn note<T>(&self, task: Task, result: Result<T, Error>) -> Result<T, Error> {
        self.note_checked(task, result, || Ok(()))
    }

    /// [`Collection::note`], with `still` asked under the lock the outcome is recorded
    /// under: a success it refuses is recorded as its error. So a success that raced a
    /// failure of the same work on another thread cannot erase that failure's record.
    fn note_checked<T>(
        &self,
        task: Task,
        result: Result<T, Error>,
        still: impl FnOnce() -> Result<(), Error>,
    ) -> Result<T, Error> {
        let mut failures = self.inner.failures.lock();
        let result = result.and_then(|value| still().map(|()| value));
        match &result {
            Ok(_) => {
                if failures.remove(&task).is_some() {
                    tracing::info!(collection = %self.name, ?task, "recovered");
                }
            }
            Err(e) => {
                tracing::error!(collection = %self.name, ?task, error = %e, "background work failed");
                failures.insert(task, e.clone());
            }
        }
        result
    }

    /// Background work that failed and has not succeeded since, by kind: a failed log
    /// sync (writes are refused until the database is reopened), checkpoint or
    /// compaction, or the checksum pass after open that found the files damaged
    /// (every request is refused). Empty when all is well.
    pub fn failures(&self) -> BTreeMap<Task, Error> {
        let mut failures = self.inner.failures.lock().clone();
        if let Some(e) = self.inner.verify.damage.get() {
            failures.insert(Task::Verify, e.clone());
        }
        failures
    }

    /// Writes a checkpoint and maps the new vector rows in place of the in-memory ones.
    fn checkpoint(&self, store: &mut Store) -> Result<(), Error> {
        let _state = StateGuard::new(&self.inner.state, CollectionState::Flushing);
        let written = store.checkpoint(&self.inner.segment.read());
        let result = written.map(|mapped| {
            *self.inner.syncer.lock() = Some(store.syncer());
            self.inner.disk_bytes.store(store.disk_bytes(), Ordering::Relaxed);
            self.inner.segment.write().remap(mapped);
        });
        self.note(Task::Checkpoint, result)
    }

    /// Checks `points` as [`Collection::upsert`] would (payloads, every vector against
    /// its space) without writing them: an importer's dry run.
    pub fn check_points(&self, points: &[PointStruct]) -> Result<(), Error> {
        let segment = self.read();
        for p in points {
            object(&p.payload)?;
            segment.prepare_vectors(&p.vectors)?;
            segment.prepare_sparse(&p.sparse, &p.documents)?;
            segment.prepare_multi(&p.multi)?;
        }
        Ok(())
    }

    /// Inserts or replaces points. Everything is validated first: one bad point refuses
    /// the whole batch and changes nothing.
    pub fn upsert(&self, points: Vec<PointStruct>) -> Result<(), Error> {
        check_batch(points.len())?;
        self.write(|segment| {
            let prepared = points
                .into_iter()
                .map(|p| {
                    object(&p.payload)?;
                    Ok(Prepared {
                        id: p.id,
                        vectors: segment.prepare_vectors(&p.vectors)?,
                        sparse: segment.prepare_sparse(&p.sparse, &p.documents)?,
                        multi: segment.prepare_multi(&p.multi)?,
                        payload: p.payload,
                    })
                })
                .collect::<Result<Vec<_>, Error>>()?;
            Self::check_room(segment, prepared.len())?;
            Ok((Some(Op::Upsert(prepared)), ()))
        })
    }

    fn check_room(segment: &Segment, n: usize) -> Result<(), Error> {
        if n > segment.room() { Err(Error::Full { max: crate::segment::MAX_OFFSETS }) } else { Ok(()) }
    }

    /// Replaces the given vectors (dense, sparse, or made from documents) of existing
    /// points; their other vectors and payload stay.
    pub fn update_vectors<P: Into<PointVectors>>(&self, points: Vec<P>) -> Result<(), Error> {
        check_batch(points.len())?;
        let points: Vec<PointVectors> = points.into_iter().map(Into::into).collect();
        self.write(|segment| {
            let mut prepared = Vec::with_capacity(points.len());
            for p in &points {
                let offset = segment.offset(&p.id).ok_or(Error::PointNotFound { id: p.id })?;
                let mut vectors = segment.vectors_at(offset);
                vectors.extend(segment.prepare_vectors(&p.vectors)?);
                let mut sparse = segment.sparse_at(offset);
                sparse.extend(segment.prepare_sparse(&p.sparse, &p.documents)?);
                let mut multi = segment.multi_at(offset);
                multi.extend(segment.prepare_multi(&p.multi)?);
                prepared.push(Prepared {
                    id: p.id,
                    vectors,
                    sparse,
                    multi,
                    payload: segment.payload_at(offset),
                });
            }
            Self::check_room(segment, prepared.len())?;
            Ok((Some(Op::Upsert(prepared)), ()))
        })
    }

    /// Removes the vectors named `names` from the selected points; searches in those
    /// spaces skip them afterwards.
    pub fn delete_vectors(&self, selector: impl Into<PointsSelector>, names: &[&str]) -> Result<(), Error> {
        let selector = selector.into();
        self.write(|segment| {
            if let Some(bad) = names.iter().find(|n| {
                !segment.spaces().contains_key(**n)
                    && !segment.sparse_spaces().contains_key(**n)
                    && !segment.multi_spaces().contains_key(**n)
            }) {
                return Err(segment.unknown(bad));
            }
            let prepared: Vec<Prepared> = Self::resolve(segment, selector)?
                .into_iter()
                .filter_map(|id| segment.offset(&id).map(|o| (id, o)))
                .map(|(id, o)| {
                    let mut vectors = segment.vectors_at(o);
                    vectors.retain(|name, _| !names.contains(&name.as_str()));
                    let mut sparse = segment.sparse_at(o);
                    sparse.retain(|name, _| !names.contains(&name.as_str()));
                    let mut multi = segment.multi_at(o);
                    multi.retain(|name, _| !names.contains(&name.as_str()));
                    Prepared { id, vectors, sparse, multi, payload: segment.payload_at(o) }
                })
                .collect();
            Self::check_room(segment, prepared.len())?;
            Ok(((!prepared.is_empty()).then_some(Op::Upsert(prepared)), ()))
        })
    }

    /// The ids a selector names that exist.
    fn resolve(segment: &Segment, selector: PointsSelector) -> Result<Vec<PointId>, Error> {
        match selector {
            PointsSelector::Ids(ids) => {
                check_batch(ids.len())?;
                Ok(ids.into_iter().filter(|id| segment.offset(id).is_some()).collect())
            }
            PointsSelector::Filter(f) => {
                let selected = segment.select(Some(&f));
                Ok(selected.iter().map(|o| segment.id_at(braid_core::PointOffset(o))).collect())
            }
        }
    }

    /// Deletes the selected points; returns how many existed.
    pub fn delete(&self, selector: impl Into<PointsSelector>) -> Result<usize, Error> {
        let selector = selector.into();
        self.write(|segment| {
            let mut ids = Self::resolve(segment, selector)?;
            ids.sort_unstable();
            ids.dedup();
            let n = ids.len();
            Ok(((n > 0).then_some(Op::Delete(ids)), n))
        })
    }

    /// A payload edit of the selected points. As on Qdrant's server, ids that name no
    /// point do not stop the edit of the others: it is applied (and logged), and then
    /// the first missing id is reported as [`Error::PointNotFound`].
    fn edit_payload(
        &self,
        selector: PointsSelector,
        op: impl FnOnce(Vec<PointId>) -> Op,
    ) -> Result<(), Error> {
        let missing = self.write(|segment| {
            let missing = match &selector {
                PointsSelector::Ids(ids) => ids.iter().find(|id| segment.offset(id).is_none()).copied(),
                PointsSelector::Filter(_) => None,
            };
            let ids = Self::resolve(segment, selector)?;
            Ok(((!ids.is_empty()).then(|| op(ids)), missing))
        })?;
        match missing {
            Some(id) => Err(Error::PointNotFound { id }),
            None => Ok(()),
        }
    }

    /// Sets the keys of `payload` on the selected points, keeping their other keys; a
    /// key whose value is `null` is removed (Qdrant's merge).
    pub fn set_payload(&self, selector: impl Into<PointsSelector>, payload: Value) -> Result<(), Error> {
        let payload = object(&payload)?.clone();
        self.edit_payload(selector.into(), |ids| Op::MergePayload { ids, key: String::new(), payload })
    }

    /// Sets the keys of `payload` inside the object at `key` (a dotted path such as
    /// `"details.size"`) of the selected points, creating the path where it is missing
    /// and replacing any non-object on it — Qdrant's `set_payload` with `key`. A key
    /// of `payload` whose value is `null` is removed there.
    pub fn set_payload_at(
        &self,
        selector: impl Into<PointsSelector>,
        key: &str,
        payload: Value,
    ) -> Result<(), Error> {
        if key.len() > MAX_KEY_BYTES {
            return Err(Error::KeyTooLong { len: key.len(), max: MAX_KEY_BYTES });
        }
        let path =
            braid_filter::JsonPath::parse(key).map_err(|_| Error::InvalidKey { key: key.to_string() })?;
        // The key's steps become levels above the payload's own.
        let payload = payload_below(&payload, path.steps().len())?.clone();
        let key = key.to_string();
        self.edit_payload(selector.into(), |ids| Op::MergePayload { ids, key, payload })
    }

    /// Replaces the whole payload of the selected points.
    pub fn overwrite_payload(
        &self,
        selector: impl Into<PointsSelector>,
        payload: Value,
    ) -> Result<(), Error> {
        let payload = object(&payload)?.clone();
        self.edit_payload(selector.into(), |ids| Op::OverwritePayload { ids, payload })
    }

    /// Removes the given keys (dotted paths) from the selected points.
    pub fn delete_payload(&self, selector: impl Into<PointsSelector>, keys: &[&str]) -> Result<(), Error> {
        let keys = keys.iter().map(|k| k.to_string()).collect();
        self.edit_payload(selector.into(), |ids| Op::DeletePayload { ids, keys })
    }

    /// Empties the payload of the selected points.
    pub fn clear_payload(&self, selector: impl Into<PointsSelector>) -> Result<(), Error> {
        self.edit_payload(selector.into(), |ids| Op::ClearPayload { ids })
    }

    /// Indexes the payload key `key` (a path) with an index of `kind`.
    pub fn create_payload_index(&self, key: &str, kind: IndexKind) -> Result<(), Error> {
        self.write(|segment| {
            let new = segment.payloads().check_index(key, kind)?;
            Ok((new.then(|| Op::CreateIndex { key: key.to_string(), kind }), ()))
        })
    }

    /// Indexes `key` for full-text conditions (`match text`, `text_any`, `phrase`),
    /// tokenised by `options` (Qdrant's text `field_schema`). Text conditions on the
    /// key then use these tokens: `docs/filter.md`, "Full-text index".
    pub fn create_text_index(&self, key: &str, options: braid_text::TextOptions) -> Result<(), Error> {
        self.write(|segment| {
            let new = segment.payloads().check_text_index(key, &options)?;
            Ok((new.then(|| Op::CreateTextIndex { key: key.to_string(), options: options.clone() }), ()))
        })
    }

    /// Drops the index on `key`; `true` if there was one.
    pub fn delete_payload_index(&self, key: &str) -> Result<bool, Error> {
        self.write(|segment| {
            let exists = segment.payloads().indexes().any(|(k, _)| k.to_string() == key);
            Ok((exists.then(|| Op::DropIndex { key: key.to_string() }), exists))
        })
    }

    /// Writes a checkpoint and links its files into `into` (an empty directory on the
    /// same file system), returning each file's name and the bytes of it that belong
    /// to the checkpoint. Writers wait for the checkpoint and the links only: the
    /// files named are never rewritten (vector files only grow past those bytes), and
    /// the links keep them readable after a later checkpoint or compaction removes
    /// them. [`Error::NotOnDisk`] for a collection in memory.
    pub(crate) fn stage_checkpoint(&self, into: &Path) -> Result<Vec<(String, u64)>, Error> {
        let mut store = self.inner.writer.lock();
        let Some(store) = store.as_mut() else {
            return Err(Error::NotOnDisk { what: "a snapshot" });
        };
        self.checkpoint(store)?;
        let files = store.checkpoint_files();
        for (name, _) in &files {
            let (from, to) = (store.dir().join(name), into.join(name));
            if std::fs::hard_link(&from, &to).is_err() {
                std::fs::copy(&from, &to).at(&to)?;
            }
        }
        Ok(files)
    }

    /// The logged records to replay onto a snapshot of this collection taken at
    /// sequence `after` on `timeline` to bring it to `until` (Unix milliseconds); see
    /// [`crate::Database::recover_collection_until`]. Holds the writer lock while the
    /// retained logs are read.
    pub(crate) fn history(
        &self,
        timeline: u64,
        after: u64,
        until: u64,
    ) -> Result<Vec<braid_storage::wal::Record>, Error> {
        let mut store = self.inner.writer.lock();
        let Some(store) = store.as_mut() else {
            return Err(Error::NotOnDisk { what: "a point-in-time recovery" });
        };
        store.history(timeline, after, until)
    }

    /// Stops persisting: the collection was deleted from its database.
    pub(crate) fn detach(&self) {
        let mut writer = self.inner.writer.lock();
        *self.inner.syncer.lock() = None;
        *writer = None;
    }

    /// What the collection is doing.
    pub fn state(&self) -> CollectionState {
        match self.inner.state.load(Ordering::Acquire) {
            s if s == CollectionState::Flushing as u8 => CollectionState::Flushing,
            s if s == CollectionState::Optimizing as u8 => CollectionState::Optimizing,
            _ => CollectionState::Ready,
        }
    }

    /// Makes every acknowledged write durable: syncs the log and writes a checkpoint
    /// (new vector rows, graphs, payloads), so that reopening loads rather than
    /// replays. In memory there is nothing to do.
    pub fn flush(&self) -> Result<(), Error> {
        self.healthy()?;
        let mut store = self.inner.writer.lock();
        match store.as_mut() {
            Some(store) => self.checkpoint(store),
            None => Ok(()),
        }
    }

    /// Compacts the collection when replaced or deleted point versions make up more
    /// than `dead_share` of it (0.0: whenever there is one), else only flushes.
    /// Returns what it dropped.
    pub fn optimize_if(&self, dead_share: f64) -> Result<OptimizeReport, Error> {
        let (dead, total) = self.versions();
        if dead > 0 && dead as f64 > dead_share * total as f64 {
            self.compact()
        } else {
            self.flush()?;
            Ok(OptimizeReport { dropped: 0, kept: total - dead })
        }
    }

    /// (dead versions, all versions).
    pub(crate) fn versions(&self) -> (usize, usize) {
        let segment = self.read();
        (segment.dead(), segment.ids().len())
    }

    /// [`Collection::optimize_if`] with a share of 0.2, Qdrant's default vacuum
    /// threshold.
    pub fn optimize(&self) -> Result<OptimizeReport, Error> {
        self.optimize_if(0.2)
    }

    /// Makes every acknowledged write durable by syncing the log only — cheaper than
    /// [`Collection::flush`], which also writes a checkpoint so that reopening loads
    /// rather than replays. In memory there is nothing to do.
    ///
    /// Takes no writer lock, so it never waits for a write, a checkpoint or a
    /// compaction. A failed sync poisons the log: every later write is refused with
    /// [`braid_storage::StorageError::Poisoned`] until the database is reopened (the
    /// kernel may have dropped the unsynced pages, so nothing written since could be
    /// promised durable).
    pub fn sync(&self) -> Result<(), Error> {
        let syncer = self.inner.syncer.lock().clone();
        match syncer {
            // A sync that overlapped a failed one (the background flusher's beside a
            // caller's) reports success, but the log is poisoned: record that.
            Some(syncer) => self.note_checked(Task::Sync, syncer.sync().map_err(Error::from), || {
                syncer.check().map_err(Error::from)
            }),
            None => Ok(()),
        }
    }

    /// Rewrites the collection without the versions of replaced and deleted points
    /// (their rows, graph nodes and offsets), with fresh graphs, then checkpoints it.
    /// Returns what it dropped.
    ///
    /// Neither readers nor writers wait for the rebuild: the live points are copied
    /// in one short critical section, the new segment is built from the copy with no
    /// lock held while writes go on, and then, under the writer lock, the writes made
    /// meanwhile are applied to it, it is written as the new checkpoint and swapped
    /// in. Writers wait for the copy and for that last part (about one checkpoint).
    pub fn compact(&self) -> Result<OptimizeReport, Error> {
        let result = self.compact_beside();
        self.note(Task::Compaction, result)
    }

    fn compact_beside(&self) -> Result<OptimizeReport, Error> {
        // The rewrite copies the rows into new files with new checksums: rows not yet
        // proved to match their old ones must not be copied.
        self.verify_wait()?;
        let _one = self.inner.compacting.lock();
        let result = self.rebuild_and_swap();
        if result.is_err()
            && let Some(store) = self.inner.writer.lock().as_mut()
        {
            // What it wrote of the next generation goes now, not at the next open.
            store.abandon_next_generation();
        }
        result
    }

    /// [`Collection::compact`]'s work, under its lock.
    fn rebuild_and_swap(&self) -> Result<OptimizeReport, Error> {
        let (copy, _state, mut files) = {
            let mut writer = self.inner.writer.lock();
            // The next generation's vector files, which the rebuild writes its rows
            // into as it goes (on disk only).
            let files = writer.as_mut().map(Store::next_generation).transpose()?;
            // Set under the writer lock: a write that starts once the state reads
            // `Optimizing` is in the tail.
            let state = StateGuard::new(&self.inner.state, CollectionState::Optimizing);
            let copy = self.inner.segment.read().live_copy();
            *self.inner.tail.lock() = Some(Vec::new());
            (copy, state, files)
        };
        // Whatever happens below, writes stop collecting a tail.
        let tail = TailGuard(&self.inner.tail);
        let versions_before = copy.versions;
        let mut rebuilt = copy.build(files.as_mut())?;
        let mut store = self.inner.writer.lock();
        for op in tail.take() {
            rebuilt.apply(op)?;
        }
        // Versions dropped: all the old segment wrote (before and during the
        // rebuild) less all the new one holds.
        let written_meanwhile = self.inner.segment.read().versions() - versions_before;
        let dropped = versions_before + written_meanwhile - rebuilt.versions();
        let kept = rebuilt.live().len() as usize;
        let mapped = match store.as_mut() {
            Some(store) => {
                let mapped = store.rewrite(&rebuilt, files.unwrap_or_default())?;
                *self.inner.syncer.lock() = Some(store.syncer());
                self.inner.disk_bytes.store(store.disk_bytes(), Ordering::Relaxed);
                mapped
            }
            None => Remap::default(),
        };
        let mut segment = self.inner.segment.write();
        *segment = rebuilt;
        segment.remap(mapped);
        Ok(OptimizeReport { dropped, kept })
    }

    /// Changes the configuration of this live collection to `new`: spaces of any
    /// kind may be added (existing points have no vector there until written) and
    /// removed (their vectors go with them), and a kept space may change its graph
    /// settings, quantization and sparse modifier, and the collection its thresholds.
    /// Size, distance and kind of a kept space cannot change
    /// ([`Error::InvalidConfig`]).
    ///
    /// The change is durable when this returns (on disk it is written as a
    /// checkpoint, one manifest rewrite) and searches see it at once — but a new `m`
    /// or `ef_construct` needs the space's graph rebuilt: the old graph serves until
    /// [`Collection::reindex`] (the server and the background optimiser call it)
    /// swaps the new one in. Returns the spaces waiting for that. Writers wait for the
    /// change and its checkpoint; readers only for the swap.
    pub fn reconfigure(&self, new: CollectionConfig) -> Result<Vec<String>, Error> {
        // No compaction may swap in a segment copied under the old configuration.
        self.healthy()?;
        let _one = self.inner.compacting.lock();
        let mut store = self.inner.writer.lock();
        let change = {
            let segment = self.inner.segment.read();
            if *segment.config() == new {
                return Ok(segment.stale_graphs());
            }
            segment.config().check_change(&new)?;
            if store.is_none() {
                payloads_in_memory(&new)?;
            }
            segment.prepare_reconfigure(new)?
        };
        let replaced = self.inner.segment.write().reconfigure(change);
        // A changed `payload_m` relinks its groups, under the read lock: readers go on.
        let links = self.inner.segment.write().sync_groups()?;
        self.inner.segment.read().index(links)?;
        let Some(store) = store.as_mut() else {
            return Ok(self.read().stale_graphs());
        };
        let _state = StateGuard::new(&self.inner.state, CollectionState::Flushing);
        let written = store.reconfigure(&self.inner.segment.read());
        match written {
            Ok(mapped) => {
                *self.inner.syncer.lock() = Some(store.syncer());
                self.inner.disk_bytes.store(store.disk_bytes(), Ordering::Relaxed);
                let mut segment = self.inner.segment.write();
                segment.remap(mapped);
                tracing::info!(collection = %self.name, config = ?segment.config(), "reconfigured");
                Ok(segment.stale_graphs())
            }
            Err(e) => {
                let links = {
                    let mut segment = self.inner.segment.write();
                    segment.undo_reconfigure(replaced);
                    segment.sync_groups()?
                };
                self.inner.segment.read().index(links)?;
                Err(e)
            }
        }
    }

    /// Adds the dense space `name` ([`Collection::reconfigure`]).
    pub fn create_vector(&self, name: &str, params: crate::VectorParams) -> Result<(), Error> {
        self.add_space(name, |config| config.vector(name, params))
    }

    /// Adds the sparse space `name`.
    pub fn create_sparse_vector(&self, name: &str, params: crate::SparseVectorParams) -> Result<(), Error> {
        self.add_space(name, |config| config.sparse_vector(name, params))
    }

    /// Adds the multivector space `name`.
    pub fn create_multivector(&self, name: &str, params: crate::MultiVectorParams) -> Result<(), Error> {
        self.add_space(name, |config| config.multivector(name, params))
    }

    /// Reconfigures to `add(config)`, which adds space `name`; refused when a space
    /// has that name already.
    fn add_space(
        &self,
        name: &str,
        add: impl FnOnce(CollectionConfig) -> CollectionConfig,
    ) -> Result<(), Error> {
        let config = self.config();
        if config.space_names().iter().any(|n| n == name) {
            return Err(Error::InvalidConfig {
                why: format!("the collection already has a space named `{name}`"),
            });
        }
        self.reconfigure(add(config)).map(drop)
    }

    /// Removes the space `name`, of any kind, with every vector in it. The last space
    /// of a collection can be removed too (its points keep their payloads).
    pub fn delete_vector(&self, name: &str) -> Result<(), Error> {
        let mut config = self.config();
        let found = config.vectors.remove(name).is_some()
            | config.sparse_vectors.remove(name).is_some()
            | config.multivectors.remove(name).is_some();
        if !found {
            return Err(self.read().unknown(name));
        }
        self.reconfigure(config).map(drop)
    }

    /// Spaces whose graph waits for a rebuild after their `m` or `ef_construct`
    /// changed ([`Collection::reconfigure`]).
    pub fn stale_graphs(&self) -> Vec<String> {
        self.read().stale_graphs()
    }

    /// Rebuilds the graphs of [`Collection::stale_graphs`], if any, as a compaction
    /// does — beside the live segment, with the new settings, while searches use
    /// the old graphs and writes go on — and returns the spaces rebuilt.
    pub fn reindex(&self) -> Result<Vec<String>, Error> {
        let stale = self.stale_graphs();
        if stale.is_empty() {
            return Ok(stale);
        }
        self.compact()?;
        Ok(stale)
    }

    /// Rebuilds the graph of `space` from its live vectors (same offsets, no
    /// tombstones), then checkpoints. Readers use the old graph until the swap.
    pub fn rebuild_index(&self, space: &str) -> Result<(), Error> {
        let mut store = self.inner.writer.lock();
        let _state = StateGuard::new(&self.inner.state, CollectionState::Optimizing);
        let graph = {
            let segment = self.inner.segment.read();
            let data = segment.space_named(space)?;
            let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
            let codes = data.codes.as_ref();
            let mut graph =
                crate::rows::with_rows!(&data.rows, |r| data.graph.compact_coded(r, codes, threads))?;
            segment.link_rebuilt(space, &mut graph)?;
            graph
        };
        self.inner.segment.write().set_graph(space, graph)?;
        match store.as_mut() {
            Some(store) => {
                store.mark_dirty();
                drop(_state);
                self.checkpoint(store)
            }
            None => Ok(()),
        }
    }

    pub(crate) fn record(
        segment: &Segment,
        id: PointId,
        offset: u32,
        with_payload: &WithPayload,
        with_vectors: &WithVectors,
    ) -> Record {
        // The named vectors of one kind the selector asks for; sparse vectors and
        // multivectors come back beside the dense ones in collections that have them.
        fn chosen<T>(
            with: &WithVectors,
            has: bool,
            all: impl FnOnce() -> BTreeMap<String, T>,
        ) -> Option<BTreeMap<String, T>> {
            match with {
                _ if !has => None,
                WithVectors::None => None,
                WithVectors::All => Some(all()),
                WithVectors::Names(names) => {
                    let mut v = all();
                    v.retain(|k, _| names.contains(k));
                    Some(v)
                }
            }
        }
        let vectors = chosen(with_vectors, true, || segment.vectors_at(offset));
        let sparse = chosen(with_vectors, !segment.sparse_spaces().is_empty(), || segment.sparse_at(offset));
        let multi = chosen(with_vectors, !segment.multi_spaces().is_empty(), || segment.multi_at(offset));
        // Copy the payload only when it was asked for.
        let payload = match with_payload {
            WithPayload::None => None,
            selector => selector.select(&segment.payload_at(offset)),
        };
        Record { id, payload, vectors, sparse, multi, order_value: None }
    }

    /// The points with these ids that exist, in the order asked (none for no ids, as
    /// in Qdrant).
    pub fn get(
        &self,
        ids: &[PointId],
        with_payload: impl Into<WithPayload>,
        with_vectors: impl Into<WithVectors>,
    ) -> Result<Vec<Record>, Error> {
        if ids.len() > MAX_BATCH {
            return Err(Error::BatchTooLarge { max: MAX_BATCH, got: ids.len() });
        }
        let (with_payload, with_vectors) = (with_payload.into(), with_vectors.into());
        let segment = self.serve()?;
        Ok(ids
            .iter()
            .filter_map(|id| {
                segment.offset(id).map(|o| Self::record(&segment, *id, o, &with_payload, &with_vectors))
            })
            .collect())
    }

    /// One page of points in id order from `offset` on, and the id the next page starts at.
    pub fn scroll(
        &self,
        filter: Option<&Filter>,
        limit: usize,
        offset: Option<PointId>,
        with_payload: impl Into<WithPayload>,
        with_vectors: impl Into<WithVectors>,
    ) -> Result<(Vec<Record>, Option<PointId>), Error> {
        if limit == 0 || limit > MAX_BATCH {
            return Err(Error::Limit { max: MAX_BATCH, got: limit });
        }
        let (with_payload, with_vectors) = (with_payload.into(), with_vectors.into());
        let segment = self.serve()?;
        let selected = segment.select(filter);
        let mut page: Vec<(PointId, u32)> =
            segment.ids_from(offset).filter(|(_, o)| selected.contains(*o)).take(limit + 1).collect();
        let next = (page.len() > limit).then(|| page.pop().map(|(id, _)| id)).flatten();
        Ok((
            page.into_iter()
                .map(|(id, o)| Self::record(&segment, id, o, &with_payload, &with_vectors))
                .collect(),
            next,
        ))
    }

    /// Qdrant's scroll with `order_by`: up to `limit` points passing `filter` in the
    /// order of their values at `order.key` (a range index is needed), each with the
    /// value in [`Record::order_value`]; a point holding several values comes once
    /// per value. Equal values go by id in the same direction, so the order is total
    /// and `order.after` pages through it stably: the second value returned is the
    /// position to continue after (`None` on the last page). Qdrant's server pages
    /// only by `start_from`, and its REST and gRPC answers carry no next offset.
    pub fn scroll_ordered(
        &self,
        filter: Option<&Filter>,
        order: &braid_query::OrderBy,
        limit: usize,
        with_payload: impl Into<WithPayload>,
        with_vectors: impl Into<WithVectors>,
    ) -> Result<(Vec<Record>, Option<braid_query::OrderCursor>), Error> {
        use braid_query::Searchable;
        if limit == 0 || limit > MAX_BATCH {
            return Err(Error::Limit { max: MAX_BATCH, got: limit });
        }
        if order.start_from.is_some_and(|s| !s.is_finite()) {
            return Err(braid_query::QueryError::BadStartFrom.into());
        }
        let (with_payload, with_vectors) = (with_payload.into(), with_vectors.into());
        let segment = self.serve()?;
        let mut hits = segment.ordered(filter, None, order, limit + 1)?;
        let more = hits.len() > limit;
        hits.truncate(limit);
        let next = if more { hits.last().and_then(|h| Some((h.order_value?, h.id))) } else { None };
        let records = hits
            .into_iter()
            .filter_map(|h| {
                let o = segment.offset(&h.id)?;
                let record = Self::record(&segment, h.id, o, &with_payload, &with_vectors);
                Some(Record { order_value: h.order_value, ..record })
            })
            .collect();
        Ok((records, next))
    }

    /// How many points match `filter` (all live points for `None`); exact.
    pub fn count(&self, filter: Option<&Filter>) -> Result<usize, Error> {
        Ok(self.serve()?.select(filter).len() as usize)
    }

    /// Qdrant's facet: the values of `key` among the points `filter` passes, each with
    /// how many of those points hold it, best `limit` first (count descending, then
    /// value). Counts are exact. `key` needs a keyword, integer, bool or uuid index
    /// (`docs/filter.md`, "Facets").
    pub fn facet(&self, key: &str, filter: Option<&Filter>, limit: usize) -> Result<Vec<FacetHit>, Error> {
        if limit == 0 || limit > braid_query::MAX_LIMIT {
            return Err(Error::Limit { max: braid_query::MAX_LIMIT, got: limit });
        }
        let segment = self.serve()?;
        let among = segment.select(filter);
        let hits = segment.payloads().facet(key, &among, limit)?;
        Ok(hits.into_iter().map(|(value, count)| FacetHit { value, count }).collect())
    }

    /// Live points with a vector in `space`.
    pub fn vector_count(&self, space: &str) -> Result<usize, Error> {
        let segment = self.serve()?;
        if let Some(sparse) = segment.sparse_spaces().get(space) {
            return Ok(sparse.index.len());
        }
        if let Some(multi) = segment.multi_spaces().get(space) {
            return Ok(multi.vectors.keys().filter(|o| segment.live().contains(**o)).count());
        }
        Ok(segment.live_in(segment.space_named(space)?))
    }

    pub(crate) fn scored(
        &self,
        segment: &Segment,
        hits: Vec<Hit>,
        with_payload: &WithPayload,
        with_vectors: &WithVectors,
    ) -> Vec<ScoredPoint> {
        // Nothing to copy: skip looking each id up (a tree walk per hit).
        let bare = matches!(with_payload, WithPayload::None) && matches!(with_vectors, WithVectors::None);
        hits.into_iter()
            .map(|h| {
                let record = (!bare)
                    .then(|| segment.offset(&h.id))
                    .flatten()
                    .map(|o| Self::record(segment, h.id, o, with_payload, with_vectors))
                    .unwrap_or(Record {
                        id: h.id,
                        payload: None,
                        vectors: None,
                        sparse: None,
                        multi: None,
                        order_value: None,
                    });
                ScoredPoint {
                    id: h.id,
                    score: h.score,
                    payload: record.payload,
                    vectors: record.vectors,
                    sparse: record.sparse,
                    multi: record.multi,
                    order_value: h.order_value,
                }
            })
            .collect()
    }

    /// Nearest points in one space.
    pub fn search(&self, request: &SearchRequest) -> Result<Vec<ScoredPoint>, Error> {
        self.query(request.to_query())
    }

    /// Several searches in one call, run in parallel; one result per search.
    pub fn search_batch(
        &self,
        requests: &[SearchRequest],
    ) -> Result<Vec<Result<Vec<ScoredPoint>, Error>>, Error> {
        self.query_batch(requests.iter().map(SearchRequest::to_query).collect())
    }

    /// The segment for a reader. Queries fan out on rayon's pool while they hold this
    /// guard, and a pool thread waiting for its children runs other pool work,
    /// possibly another query. parking_lot's lock is fair (a waiting writer blocks
    /// new readers), so a pool thread that took the lock the fair way could block
    /// behind a writer that waits for the very guard that thread already holds:
    /// pool threads take it recursively instead, which never waits while readers
    /// hold it. Threads outside the pool keep the fair lock, so writers are not starved.
    pub(crate) fn read(&self) -> parking_lot::RwLockReadGuard<'_, Segment> {
        if rayon::current_thread_index().is_some() {
            self.inner.segment.read_recursive()
        } else {
            self.inner.segment.read()
        }
    }

    /// A universal query: prefetches, fusion, re-ranking (`docs/query.md`).
    pub fn query(&self, query: impl Into<QueryPoints>) -> Result<Vec<ScoredPoint>, Error> {
        self.query_until(query, &Stop::never())
    }

    /// [`Collection::query`], giving up with [`braid_query::QueryError::Timeout`] or
    /// `Cancelled` when `stop` says so (Qdrant's `timeout`; a server's client leaving).
    pub fn query_until(&self, query: impl Into<QueryPoints>, stop: &Stop) -> Result<Vec<ScoredPoint>, Error> {
        let query = query.into();
        let request = self.resolve_lookups(&query.request)?;
        let segment = self.serve()?;
        let hits = braid_query::run_until(&*segment, &request, stop)?;
        Ok(self.scored(&segment, hits, &query.with_payload, &query.with_vectors))
    }

    /// Several queries in one call, run in parallel; one result per query.
    pub fn query_batch(
        &self,
        queries: Vec<QueryPoints>,
    ) -> Result<Vec<Result<Vec<ScoredPoint>, Error>>, Error> {
        self.query_batch_until(queries, &Stop::never())
    }

    /// [`Collection::query_batch`], every query giving up when `stop` says so.
    pub fn query_batch_until(
        &self,
        queries: Vec<QueryPoints>,
        stop: &Stop,
    ) -> Result<Vec<Result<Vec<ScoredPoint>, Error>>, Error> {
        // A lookup that fails fails its own query only.
        let mut requests = Vec::with_capacity(queries.len());
        let mut failed = Vec::with_capacity(queries.len());
        for q in &queries {
            match self.resolve_lookups(&q.request) {
                Ok(r) => {
                    requests.push(r.into_owned());
                    failed.push(None);
                }
                Err(e) => {
                    requests.push(q.request.clone());
                    failed.push(Some(e));
                }
            }
        }
        let segment = self.serve()?;
        let results = braid_query::run_batch_until(&*segment, &requests, stop)?;
        Ok(results
            .into_iter()
            .zip(&queries)
            .zip(failed)
            .map(|((r, q), failed)| {
                if let Some(e) = failed {
                    return Err(e);
                }
                r.map(|hits| self.scored(&segment, hits, &q.with_payload, &q.with_vectors))
                    .map_err(Error::from)
            })
            .collect())
    }

    /// The plan of a query with the choice made at each leaf, without running it.
    pub fn explain(&self, query: &QueryRequest) -> Result<braid_query::Explain, Error> {
        let request = self.resolve_lookups(query)?;
        Ok(braid_query::explain(&*self.serve()?, &request)?)
    }

    /// Counts, configuration and status.
    pub fn info(&self) -> CollectionInfo {
        // Counters only: info never waits for a write, checkpoint or compaction.
        let on_disk = self.inner.syncer.lock().is_some();
        let disk_bytes = on_disk.then(|| self.inner.disk_bytes.load(Ordering::Relaxed));
        let segment = self.read();
        let mut vectors_count: BTreeMap<String, usize> =
            segment.spaces().iter().map(|(n, s)| (n.clone(), segment.live_in(s))).collect();
        vectors_count.extend(segment.sparse_spaces().iter().map(|(n, s)| (n.clone(), s.index.len())));
        vectors_count.extend(
            segment
                .multi_spaces()
                .iter()
                .map(|(n, m)| (n.clone(), m.vectors.keys().filter(|o| segment.live().contains(**o)).count())),
        );
        let text_indexes =
            segment.index_specs().into_iter().filter_map(|(key, _, options)| Some((key, options?))).collect();
        // Qdrant's yellow: optimisation pending or running — here, a graph waiting for
        // its rebuild after new settings.
        // Red: the background checksum pass found the files damaged.
        let damage = self.healthy().err();
        let status = if damage.is_some() {
            "red"
        } else if segment.stale_graphs().is_empty() {
            "green"
        } else {
            "yellow"
        };
        CollectionInfo {
            status,
            damage,
            points_count: segment.live().len() as usize,
            indexed_vectors_count: vectors_count.clone(),
            vectors_count,
            payload_schema: segment.payloads().indexes().map(|(k, kind)| (k.to_string(), kind)).collect(),
            text_indexes,
            config: segment.config().clone(),
            disk_bytes,
            dead_versions: segment.dead(),
            memory: segment
                .spaces()
                .iter()
                .map(|(name, space)| {
                    let row = space.rows.row_bytes();
                    let memory = SpaceMemory {
                        vectors: space.rows.len() * row,
                        vectors_mapped: space.rows.mapped_rows() * row,
                        codes: space.codes.as_ref().map_or(0, braid_distance::Codes::bytes),
                        codes_mapped: space.codes.as_ref().map_or(0, braid_distance::Codes::held_bytes),
                        graph: space.graph.graph_bytes(),
                        graph_mapped: space.graph.held_bytes(),
                    };
                    (name.clone(), memory)
                })
                .collect(),
            payloads: {
                let (in_memory, file_bytes) = segment.payloads().residency();
                PayloadResidency { in_memory, file_bytes }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Distance, VectorParams};

    /// The interleaving that deadlocked, made on purpose: a query holds the segment's
    /// read guard (as one whose prefetches are out on the pool does), a writer waits
    /// for the write lock, and a pool thread that picked up another query asks for a
    /// read guard. The fair lock would park that thread behind the writer, which waits
    /// for the first guard, whose query waits for the pool: the pool's read must not
    /// wait.
    #[test]
    fn a_query_on_a_pool_thread_never_queues_behind_a_waiting_writer() {
        let config = CollectionConfig::new().vector("v", VectorParams::new(4, Distance::Dot));
        let c = Collection::new("c", config).unwrap();
        c.upsert(vec![PointStruct::new(1).vector("v", vec![1.0, 0.0, 0.0, 0.0])]).unwrap();
        let held = c.inner.segment.read();
        std::thread::scope(|s| {
            let writer = s.spawn(|| drop(c.inner.segment.write()));
            // A writer is queued once a fair read would wait.
            while c.inner.segment.try_read().is_some() {
                assert!(!writer.is_finished());
                std::thread::yield_now();
            }
            let (tx, rx) = std::sync::mpsc::channel();
            let query = c.clone();
            rayon::spawn(move || {
                let hits = query.query(QueryRequest::nearest("v", vec![1.0, 0.0, 0.0, 0.0]).limit(1));
                let _ = tx.send(hits.map(|h| h.len()));
            });
            // On a deadlock the query never answers while `held` lives; wait long
            // enough for a loaded machine, then fail instead of hanging.
            let answered = rx.recv_timeout(std::time::Duration::from_secs(60));
            drop(held);
            assert_eq!(answered.expect("the pool's query waited behind the writer").unwrap(), 1);
        });
    }
}
