//! A collection on disk: its manifest, write-ahead log, vector files, graphs and
//! points document (`docs/storage.md` has every byte).
//!
//! ```text
//! <collection dir>/
//!   MANIFEST                       which files are live and the log position they cover
//!   wal-<first seq>-<n>.log        operations since the last checkpoint
//!   vectors-<space>-<gen>.vec      append-only rows of one space, mapped
//!   graph-<space>-<seq>-<n>.hnsw   one space's graph as of checkpoint number <n>
//!   points-<seq>-<n>.bin           ids, live and per-space bitmaps, payloads, index list
//!   codes-<space>-<seq>-<n>.i8     one space's one-byte codes, read at open, not rebuilt
//!   payloads-<seq>-<n>.bin         every point's payload, mapped (`on_disk_payload` only)
//!   archive/                       replaced logs, kept for point-in-time recovery
//! ```
//!
//! Spaces are numbered by their position in the (sorted) configuration, so file names
//! never contain user text. A checkpoint appends the new rows to the vector files,
//! writes the graphs and the points document under new names, starts a new log and then
//! switches the manifest atomically; files the manifest does not name are removed.
//!
//! **Invariant:** a file the manifest names is never opened for writing again, except
//! to append rows past the count the manifest records (vector files). New files take
//! the checkpoint number `<n>`, which only grows, so two checkpoints at the same log
//! position (a compaction or an index rebuild with no write between) never share a
//! name; [`Store::fresh`] refuses a live name outright.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use braid_core::PointOffset;
use braid_filter::{PayloadSource, PayloadStore, Stored};
use braid_hnsw::{GraphFile, Hnsw};
use braid_storage::bytes::{Decoder, Encoder};
use braid_storage::payloads::PayloadFile;
use braid_storage::wal::{Record, Wal, WalSyncer};
use braid_storage::{
    DirLock, IoContext, PrivateMap, Residency, RowsCheck, StorageError, VectorFile, document,
};
use roaring::RoaringBitmap;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::Error;
use crate::config::CollectionConfig;
use crate::ids::PointIds;
use crate::ops::{self, EntryMark, Logged, Op};
use crate::rows::{SpaceRows, with_rows};
use crate::segment::{Segment, SpaceData};

/// When acknowledged writes become durable.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Durability {
    /// Writes are logged when acknowledged and synced to disk by `flush()` (and by a
    /// checkpoint): after `flush()` returns, every earlier write survives a crash or a
    /// power cut; writes since the last flush may be lost (all of a suffix, never a
    /// hole). The default, as in Qdrant.
    #[default]
    OnFlush,
    /// Every write is synced before it is acknowledged: slower, and every acknowledged
    /// write survives.
    EveryWrite,
}

/// How a database on disk behaves.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StorageOptions {
    /// When writes become durable.
    pub durability: Durability,
    /// A collection checkpoints by itself once its log passes this many bytes, so that
    /// the log (and the time to replay it at open) stays bounded.
    pub checkpoint_log_bytes: u64,
    /// How often a background thread looks for collections to compact (`None`: never;
    /// call `Collection::optimize` yourself).
    pub optimize_every: Option<std::time::Duration>,
    /// The background thread compacts a collection when its dead point versions
    /// (replaced or deleted) are more than this share of all versions…
    pub vacuum_share: f64,
    /// …and at least this many (Qdrant's `deleted_threshold` 0.2 and
    /// `vacuum_min_vector_number` 1000 are the defaults).
    pub vacuum_min: usize,
    /// Keep each collection's logs for this long after a checkpoint replaces them (in
    /// an `archive` directory beside the collection's files), so that a full snapshot
    /// can be recovered to any moment since it was taken
    /// ([`crate::Database::recover_collection_until`]). `None` (the default): a
    /// checkpoint removes the log it replaces.
    pub log_retention: Option<std::time::Duration>,
    /// A vector file with more bytes of rows than this is checked against its
    /// checksum on a background thread after its collection opens, instead of before
    /// the open returns: reading a large file whole is most of a reopen's time. Until
    /// the check ends the collection serves; if it finds damage, every later request
    /// to the collection fails with the storage error and its status turns red
    /// (`docs/storage.md`). `u64::MAX`: every file is checked before the open returns.
    pub verify_after_open_above: u64,
}

impl Default for StorageOptions {
    fn default() -> Self {
        StorageOptions {
            durability: Durability::OnFlush,
            checkpoint_log_bytes: 256 << 20,
            optimize_every: Some(std::time::Duration::from_secs(60)),
            vacuum_share: 0.2,
            vacuum_min: 1000,
            log_retention: None,
            verify_after_open_above: 64 << 20,
        }
    }
}

const MANIFEST: &str = "MANIFEST";
/// The directory of a collection's retained logs.
const ARCHIVE: &str = "archive";
const MANIFEST_MAGIC: &[u8; 8] = b"BRAIDCOL";
const POINTS_MAGIC: &[u8; 8] = b"BRAIDPTS";
const CODES_MAGIC: &[u8; 8] = b"BRAIDCOD";
const FORMAT_VERSION: u32 = 1;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct VectorsEntry {
    file: String,
    rows: u64,
    crc: u32,
}

/// The collection manifest's body (JSON inside a checksummed document).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Manifest {
    config: CollectionConfig,
    /// Every operation with a sequence number up to this one is in the files below.
    seq: u64,
    /// Vector file generation (a compaction starts a new one).
    generation: u64,
    /// The log holding operations after `seq`.
    wal: String,
    /// The points document, once there has been a checkpoint.
    points: Option<String>,
    /// Per space (by name): its vector file.
    vectors: BTreeMap<String, VectorsEntry>,
    /// Per space (by name): its graph file, once there has been a checkpoint.
    graphs: BTreeMap<String, String>,
    /// Per space with one-byte codes (by name): its codes file, so that an open reads
    /// them rather than coding every row again. Spaces without one (manifests from
    /// before, codes whose centre is not yet fixed) are coded at open.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    codes: BTreeMap<String, String>,
    /// The payload file, when the payloads are kept on disk (`on_disk_payload`); the
    /// points document then holds none. Manifests written before it existed read as
    /// none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    payloads: Option<String>,
    /// Checkpoints written so far: the `<n>` in new file names. Manifests written
    /// before it existed read as 0; their files are named without it, so no new name
    /// can equal an old one.
    #[serde(default)]
    checkpoints: u64,
    /// Per dense space (by name): the number its files are named by, fixed for the
    /// space's life and never reused, so that adding or removing a space renames
    /// nothing. Manifests written before it existed read as empty: their spaces are
    /// numbered by position in the sorted configuration, as their files were.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    space_numbers: BTreeMap<String, u64>,
    /// The number the next added space gets.
    #[serde(default)]
    next_space: u64,
    /// Which history the log continues: chosen at random when the collection is
    /// created, and anew when it is recovered from a snapshot or its configuration
    /// changes (its logged operations then no longer replay onto older files). A
    /// point-in-time recovery replays retained logs only onto a snapshot of the same
    /// timeline. Manifests written before it existed read as 0 and get one at open.
    #[serde(default)]
    timeline: u64,
    /// Where replicated writes stand (#19): the last replicated entry closed and the
    /// one open, as of `seq`. Manifests without it read as none.
    #[serde(default, skip_serializing_if = "EntryMark::is_empty")]
    entry: EntryMark,
}

impl Manifest {
    /// The number `space`'s files are named by.
    fn space_number(&self, space: &str) -> u64 {
        self.space_numbers
            .get(space)
            .copied()
            .unwrap_or_else(|| self.config.vectors.keys().position(|n| n == space).unwrap_or(0) as u64)
    }

    /// Numbers every space explicitly (a manifest from before the numbers existed).
    fn number_spaces(&mut self) {
        if self.space_numbers.is_empty() {
            self.space_numbers =
                self.config.vectors.keys().enumerate().map(|(i, n)| (n.clone(), i as u64)).collect();
            self.next_space = self.next_space.max(self.config.vectors.len() as u64);
        }
    }

    /// Every data file the manifest names, but the log.
    fn data_files(&self) -> impl Iterator<Item = &str> {
        self.whole_files().chain(self.vectors.values().map(|v| v.file.as_str()))
    }

    /// The files a checkpoint writes whole and never changes after: every data file
    /// but the vector files (which grow past what the manifest covers).
    fn whole_files(&self) -> impl Iterator<Item = &str> {
        self.points
            .as_deref()
            .into_iter()
            .chain(self.graphs.values().map(String::as_str))
            .chain(self.codes.values().map(String::as_str))
            .chain(self.payloads.as_deref())
    }

    /// Does the manifest name `file`?
    fn names(&self, file: &str) -> bool {
        file == MANIFEST || self.wal == file || self.data_files().any(|f| f == file)
    }
}

/// What a checkpoint hands back for the caller to swap in.
#[derive(Default)]
pub(crate) struct Remap {
    /// Each space's vectors as mapped anew.
    pub(crate) rows: Vec<(String, SpaceRows)>,
    /// The graphs of the spaces that keep theirs on disk, read from the files the
    /// checkpoint wrote, and of those whose graph was held in a file and no longer is
    /// (`hnsw_config.on_disk` turned off), read into the heap.
    pub(crate) graphs: Vec<(String, Hnsw)>,
    /// The codes of the spaces that keep theirs on disk, held in the files the
    /// checkpoint wrote, and of those whose codes were held in a file and no longer are
    /// (`codes_on_disk` turned off), read into the heap.
    pub(crate) codes: Vec<(String, braid_distance::Codes)>,
    /// Where the payloads are read from now: `Some(Some(file))` the payload file the
    /// checkpoint wrote, `Some(None)` memory (`on_disk_payload` off), `None` as before
    /// (nothing was written).
    pub(crate) payloads: Option<Option<Arc<MappedPayloads>>>,
}

/// A payload file as the payload store reads it: each offset's payload parsed from
/// the JSON the checkpoint wrote (checked whole against its checksum at open).
#[derive(Debug)]
pub(crate) struct MappedPayloads(PayloadFile);

impl MappedPayloads {
    fn open(path: &Path, offsets: usize) -> Result<MappedPayloads, Error> {
        let file = PayloadFile::open(path)?;
        if file.len() != offsets {
            let why = format!("{} payload offsets for {offsets} points", file.len());
            return Err(StorageError::corrupt(path, 0, why).into());
        }
        Ok(MappedPayloads(file))
    }
}

impl PayloadSource for MappedPayloads {
    fn payload(&self, offset: u32) -> Option<Value> {
        let bytes = self.0.get(offset)?;
        // The file passed its checksum at open and holds what `serde_json` wrote.
        serde_json::from_slice(bytes)
            .inspect_err(|e| {
                tracing::error!(file = %self.0.path().display(), offset, error = %e, "unreadable payload");
                debug_assert!(false, "a checked payload file holds JSON: {e}");
            })
            .ok()
    }

    fn len(&self) -> usize {
        self.0.len()
    }

    fn bytes(&self) -> usize {
        self.0.bytes()
    }

    fn encoded(&self, offset: u32) -> Option<&[u8]> {
        self.0.get(offset)
    }
}

/// The on-disk side of one collection. Owned by the collection's writer lock.
pub(crate) struct Store {
    dir: PathBuf,
    manifest: Manifest,
    wal: Wal,
    vectors: BTreeMap<String, VectorFile>,
    options: StorageOptions,
    next_seq: u64,
    /// Operations logged since the last checkpoint, or graphs changed.
    dirty: bool,
    /// Bytes of the live files but the log, as of the last checkpoint.
    files_bytes: u64,
    /// The next generation's vector files a compaction is writing
    /// ([`Store::next_generation`]): named by no manifest yet, and kept by the sweeps of
    /// the checkpoints written meanwhile.
    building: std::collections::BTreeSet<String>,
    /// The database directory's lock, held while this collection can write.
    _lock: Arc<DirLock>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("dir", &self.dir).field("seq", &self.manifest.seq).finish()
    }
}

fn new_timeline() -> u64 {
    rand::random::<u64>().max(1)
}

/// Milliseconds since the Unix epoch: the time a log record carries.
pub(crate) fn unix_ms(time: std::time::SystemTime) -> u64 {
    time.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

fn wal_name(first: u64, checkpoint: u64) -> String {
    format!("wal-{first:020}-{checkpoint:08}.log")
}

fn write_manifest(dir: &Path, manifest: &Manifest) -> Result<(), StorageError> {
    document::commit(&stage_manifest(dir, manifest)?, &dir.join(MANIFEST))
}

/// Writes `manifest` beside the live one, synced, for [`document::commit`] to rename
/// over it; returns the staged file's path.
fn stage_manifest(dir: &Path, manifest: &Manifest) -> Result<PathBuf, StorageError> {
    let body = serde_json::to_vec_pretty(manifest).map_err(|e| {
        StorageError::corrupt(&dir.join(MANIFEST), 0, format!("manifest does not serialise: {e}"))
    })?;
    document::stage(&dir.join(MANIFEST), &document::encode(MANIFEST_MAGIC, FORMAT_VERSION, &body))
}

fn read_manifest(dir: &Path) -> Result<Manifest, StorageError> {
    let path = dir.join(MANIFEST);
    let body = document::read(&path, MANIFEST_MAGIC, FORMAT_VERSION, "collection manifest")?;
    serde_json::from_slice(&body).map_err(|e| StorageError::corrupt(&path, 0, format!("manifest: {e}")))
}

impl Store {
    /// Creates the files of a new, empty collection in `dir` (which exists and is empty).
    pub(crate) fn create(
        dir: &Path,
        config: &CollectionConfig,
        options: StorageOptions,
        lock: Arc<DirLock>,
    ) -> Result<Store, Error> {
        let mut vectors = BTreeMap::new();
        let mut entries = BTreeMap::new();
        for (number, (name, params)) in config.vectors.iter().enumerate() {
            let file = format!("vectors-{number}-0.vec");
            vectors.insert(name.clone(), VectorFile::create(&dir.join(&file), params.size, params.datatype)?);
            entries.insert(name.clone(), VectorsEntry { file, rows: 0, crc: 0 });
        }
        let mut manifest = Manifest {
            config: config.clone(),
            seq: 0,
            generation: 0,
            wal: wal_name(1, 0),
            points: None,
            vectors: entries,
            graphs: BTreeMap::new(),
            codes: BTreeMap::new(),
            payloads: None,
            checkpoints: 0,
            space_numbers: BTreeMap::new(),
            next_space: 0,
            timeline: new_timeline(),
            entry: EntryMark::default(),
        };
        manifest.number_spaces();
        let wal = Wal::create(&dir.join(&manifest.wal))?;
        document::sync_dir(dir)?;
        write_manifest(dir, &manifest)?;
        let mut store = Store {
            dir: dir.to_path_buf(),
            manifest,
            wal,
            vectors,
            options,
            next_seq: 1,
            dirty: false,
            files_bytes: 0,
            building: Default::default(),
            _lock: lock,
        };
        store.count_files();
        Ok(store)
    }

    /// Opens the collection in `dir`: maps the vectors, loads the last checkpoint and
    /// replays the log after it. Returns the store, the segment and the checksum
    /// passes of the vector files larger than `options.verify_after_open_above`,
    /// which are left for the caller to run (the smaller ones have passed).
    pub(crate) fn open(
        dir: &Path,
        options: StorageOptions,
        lock: Arc<DirLock>,
    ) -> Result<(Store, Segment, Vec<RowsCheck>), Error> {
        let mut manifest = read_manifest(dir)?;
        manifest.config.validate()?;
        let manifest_path = dir.join(MANIFEST);
        if manifest.timeline == 0 {
            manifest.timeline = new_timeline();
            write_manifest(dir, &manifest)?;
        }
        let mut vectors = BTreeMap::new();
        let mut rows = BTreeMap::new();
        let mut checks = Vec::new();
        for (name, params) in &manifest.config.vectors {
            let entry = manifest.vectors.get(name).ok_or_else(|| {
                StorageError::corrupt(&manifest_path, 0, format!("no vector file for space `{name}`"))
            })?;
            let (file, check) = VectorFile::open_unchecked(
                &dir.join(&entry.file),
                params.size,
                params.datatype,
                entry.rows,
                entry.crc,
            )?;
            let check = check.keep_cached(params.residency() == Residency::Memory);
            checks.extend(run_if_small(check, &options)?);
            rows.insert(name.clone(), SpaceRows::mapped(&file, params.size, params.datatype)?);
            vectors.insert(name.clone(), file);
        }
        let mut segment = match &manifest.points {
            Some(points) => {
                let (segment, codes_checks) = load_segment(dir, &manifest, &dir.join(points), rows)?;
                // Codes files first: searches read every candidate's code, so the pass
                // brings into the page cache first what the first searches touch most.
                let mut first = Vec::new();
                for check in codes_checks {
                    first.extend(run_if_small(check, &options)?);
                }
                checks.splice(0..0, first);
                segment
            }
            None => Segment::new(manifest.config.clone())?,
        };
        // Graphs written before payload links existed (or without a group their
        // indexes ask for) are linked now; persisted groups are read as they were.
        let links = segment.sync_groups()?;
        segment.index(links)?;
        let wal_path = dir.join(&manifest.wal);
        let (wal, recovered) = Wal::open(&wal_path)?;
        let mut last = manifest.seq;
        for record in recovered.records {
            if record.seq <= manifest.seq {
                continue;
            }
            let op = match Logged::decode(&wal_path, 0, &record.body)? {
                Logged::Op { entry, op, .. } => {
                    if let Some(open) = entry {
                        manifest.entry.open = Some(open);
                    }
                    op
                }
                Logged::Close { position, .. } => {
                    manifest.entry = EntryMark { closed: Some(position), open: None };
                    last = record.seq;
                    continue;
                }
            };
            // Every logged op passed `Segment::check` before it was logged, so one
            // that does not fit now means the log is not this collection's history.
            segment.apply(op).map_err(|e| {
                StorageError::corrupt(&wal_path, 0, format!("record {} does not apply: {e}", record.seq))
            })?;
            last = record.seq;
        }
        let dirty = last > manifest.seq;
        let mut store = Store {
            dir: dir.to_path_buf(),
            manifest,
            wal,
            vectors,
            options,
            next_seq: last + 1,
            dirty,
            files_bytes: 0,
            building: Default::default(),
            _lock: lock,
        };
        store.sweep()?;
        store.count_files();
        Ok((store, segment, checks))
    }

    /// Removes files of this collection that the manifest does not name: leftovers of
    /// a checkpoint or compaction interrupted by a crash, or replaced by a later one.
    fn sweep(&self) -> Result<(), StorageError> {
        for entry in std::fs::read_dir(&self.dir).at(&self.dir)? {
            let entry = entry.at(&self.dir)?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name != ARCHIVE && !self.manifest.names(&name) && !self.building.contains(&*name) {
                let path = entry.path();
                braid_storage::fault::remove_file(&path).at(&path)?;
            }
        }
        Ok(())
    }

    /// The path of a new file `name`. A name the manifest uses is refused (that file
    /// is live and immutable); a leftover of an interrupted checkpoint is removed.
    fn fresh(&self, name: &str) -> Result<PathBuf, StorageError> {
        let path = self.dir.join(name);
        if self.manifest.names(name) {
            return Err(StorageError::corrupt(&path, 0, "a new file would overwrite one the manifest names"));
        }
        match braid_storage::fault::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(StorageError::io(&path, &e)),
            _ => Ok(path),
        }
    }

    /// Logs `op` before it is applied; with [`Durability::EveryWrite`] also syncs.
    /// A write that fails here is not in the log: a failed append is cut off by the
    /// log itself, a failed sync by [`Wal::rollback`] (the log is poisoned then, and
    /// refuses writes until the database is reopened).
    pub(crate) fn log(&mut self, op: &Op, entry: Option<(&[u8], u32)>) -> Result<(), Error> {
        self.append(&op.encode_in_entry(unix_ms(std::time::SystemTime::now()), entry)?)?;
        if let Some((position, index)) = entry {
            self.manifest.entry.open = Some((position.to_vec(), index));
        }
        Ok(())
    }

    /// Logs the end of the replicated entry at `position` (#19): every write it made
    /// is logged before this record.
    pub(crate) fn close_entry(&mut self, position: &[u8]) -> Result<(), Error> {
        self.append(&Logged::encode_close(unix_ms(std::time::SystemTime::now()), position))?;
        self.manifest.entry = EntryMark { closed: Some(position.to_vec()), open: None };
        Ok(())
    }

    /// Where replicated writes stand, as logged.
    pub(crate) fn entry_mark(&self) -> &EntryMark {
        &self.manifest.entry
    }

    fn append(&mut self, record: &[u8]) -> Result<(), Error> {
        let before = self.wal.len();
        self.wal.append(self.next_seq, record)?;
        self.next_seq += 1;
        if self.options.durability == Durability::EveryWrite
            && let Err(failed) = self.wal.sync()
        {
            // The record may or may not have reached the disk; cut it off so that a
            // write reported as failed is never replayed. If even the cut fails, the
            // log stays poisoned and the error says so.
            self.wal.rollback(before)?;
            return Err(failed.into());
        }
        self.dirty = true;
        Ok(())
    }

    /// A handle that syncs the current log without the writer lock. It changes at
    /// every checkpoint (which starts a new log).
    pub(crate) fn syncer(&self) -> WalSyncer {
        self.wal.syncer()
    }

    /// Does the log call for a checkpoint?
    pub(crate) fn wants_checkpoint(&self) -> bool {
        self.wal.len() > self.options.checkpoint_log_bytes
    }

    /// The graphs changed without a logged operation (a rebuilt index).
    pub(crate) fn mark_dirty(&mut self) {
        self.dirty = true;
    }

    /// Writes `segment` (which holds exactly the logged writes) as the new checkpoint:
    /// new rows appended to the vector files, graphs and points written, a new empty
    /// log, the manifest switched. Returns each space's vectors mapped anew, for the
    /// caller to swap in. Readers of `segment` are not disturbed.
    pub(crate) fn checkpoint(&mut self, segment: &Segment) -> Result<Remap, Error> {
        self.wal.sync()?;
        if !self.dirty {
            return Ok(Remap::default());
        }
        let manifest = self.manifest.clone();
        self.append_and_write(segment, manifest, BTreeMap::new())
    }

    /// Writes `segment`, whose configuration has just changed
    /// ([`crate::Collection::reconfigure`]), as the new checkpoint: vector files
    /// created for the spaces it adds, the removed spaces' files left out of the new
    /// manifest (and so removed), the configuration in the manifest. One manifest
    /// rewrite makes all of it durable at once.
    pub(crate) fn reconfigure(&mut self, segment: &Segment) -> Result<Remap, Error> {
        self.wal.sync()?;
        let config = segment.config().clone();
        let mut manifest = self.manifest.clone();
        manifest.number_spaces();
        manifest.space_numbers.retain(|name, _| config.vectors.contains_key(name));
        manifest.vectors.retain(|name, _| config.vectors.contains_key(name));
        let mut added = BTreeMap::new();
        for (name, params) in &config.vectors {
            if manifest.vectors.contains_key(name) {
                continue;
            }
            let number = manifest.next_space;
            manifest.next_space += 1;
            manifest.space_numbers.insert(name.clone(), number);
            let file = format!("vectors-{number}-{}.vec", manifest.generation);
            added
                .insert(name.clone(), VectorFile::create(&self.fresh(&file)?, params.size, params.datatype)?);
            manifest.vectors.insert(name.clone(), VectorsEntry { file, rows: 0, crc: 0 });
        }
        manifest.config = config;
        // Logged operations before this point do not replay onto the new files.
        manifest.timeline = new_timeline();
        self.append_and_write(segment, manifest, added)
    }

    /// Appends each space's new rows to its vector file (`added`'s for new spaces),
    /// then writes the checkpoint with `manifest`; the store keeps the files of the
    /// spaces `segment` has.
    fn append_and_write(
        &mut self,
        segment: &Segment,
        mut manifest: Manifest,
        mut added: BTreeMap<String, VectorFile>,
    ) -> Result<Remap, Error> {
        let seq = self.next_seq - 1;
        let mut mapped = Vec::new();
        for (name, space) in segment.spaces() {
            let file = match added.get_mut(name) {
                Some(file) => file,
                None => self.vectors.get_mut(name).ok_or_else(|| Error::UnknownVector {
                    name: name.clone(),
                    available: segment.space_names(),
                })?,
            };
            space.rows.append_to(file)?;
            file.sync()?;
            manifest.vectors.insert(
                name.clone(),
                VectorsEntry { file: file_name(file.path()), rows: file.rows(), crc: file.crc() },
            );
            mapped.push((name.clone(), SpaceRows::mapped(file, space.params.size, space.params.datatype)?));
        }
        let remap = self.write_checkpoint(segment, seq, manifest)?;
        self.vectors.retain(|name, _| segment.config().vectors.contains_key(name));
        self.vectors.extend(added);
        Ok(Remap { rows: mapped, ..remap })
    }

    /// The name of space `name`'s vector file of the generation after this one.
    fn next_generation_file(&self, name: &str) -> String {
        format!("vectors-{}-{}.vec", self.manifest.space_number(name), self.manifest.generation + 1)
    }

    /// Creates the next generation's vector files, empty, one per dense space, for a
    /// compaction to write its new rows into as it builds them ([`Store::rewrite`]
    /// appends the rest). This store's sweeps leave them alone until then; after a
    /// crash, the next open sweeps them like any other file no manifest names.
    pub(crate) fn next_generation(&mut self) -> Result<BTreeMap<String, VectorFile>, Error> {
        let mut files = BTreeMap::new();
        self.building.clear();
        for (name, params) in &self.manifest.config.vectors {
            let file = self.next_generation_file(name);
            let path = self.fresh(&file)?;
            // Named before it exists, so that a failed creation is removed too.
            self.building.insert(file);
            files.insert(name.clone(), VectorFile::create(&path, params.size, params.datatype)?);
        }
        Ok(files)
    }

    /// Removes the next generation's vector files ([`Store::next_generation`]) of a
    /// compaction that did not finish — no longer kept from the sweep, which removes
    /// every file the manifest does not name (so not those of a rewrite that failed
    /// after its commit point). Left alone, they would wait for the next open's sweep;
    /// if this sweep fails, they still do.
    pub(crate) fn abandon_next_generation(&mut self) {
        self.building.clear();
        if let Err(e) = self.sweep() {
            tracing::warn!(error = %e, "an unfinished compaction's files stay until the next open");
        }
    }

    /// Writes `segment`, a compacted rewrite of the collection, into the next
    /// generation's vector files — `started`'s, which hold its first rows already
    /// ([`Store::next_generation`]), or new ones — and checkpoints it. Returns the new
    /// mappings.
    pub(crate) fn rewrite(
        &mut self,
        segment: &Segment,
        mut started: BTreeMap<String, VectorFile>,
    ) -> Result<Remap, Error> {
        self.wal.sync()?;
        let seq = self.next_seq - 1;
        let mut manifest = self.manifest.clone();
        manifest.generation += 1;
        let mut files = BTreeMap::new();
        let mut mapped = Vec::new();
        for (name, space) in segment.spaces() {
            let file = self.next_generation_file(name);
            let (dim, datatype) = (space.params.size, space.params.datatype);
            let mut out = match started.remove(name) {
                Some(out) => out,
                None => {
                    let path = self.fresh(&file)?;
                    self.building.insert(file.clone());
                    VectorFile::create(&path, dim, datatype)?
                }
            };
            space.rows.append_to(&mut out)?;
            out.sync()?;
            manifest.vectors.insert(name.clone(), VectorsEntry { file, rows: out.rows(), crc: out.crc() });
            mapped.push((name.clone(), SpaceRows::mapped(&out, dim, datatype)?));
            files.insert(name.clone(), out);
        }
        let remap = self.write_checkpoint(segment, seq, manifest)?;
        self.vectors = files;
        self.building.clear();
        Ok(Remap { rows: mapped, ..remap })
    }

    /// Writes the checkpoint's files and switches the manifest; returns what to swap
    /// in besides the rows: the payload file it wrote, mapped (`on_disk_payload`), or
    /// memory, and the graphs read back from the files (`hnsw_config.on_disk`, or
    /// back into the heap when that was turned off).
    fn write_checkpoint(
        &mut self,
        segment: &Segment,
        seq: u64,
        mut manifest: Manifest,
    ) -> Result<Remap, Error> {
        let n = manifest.checkpoints + 1;
        let written = self.write_checkpoint_files(segment, seq, n, &mut manifest).and_then(|written| {
            let archived = self.archive_log(&manifest)?;
            manifest.checkpoints = n;
            manifest.seq = seq;
            Ok((written, archived, stage_manifest(&self.dir, &manifest)?))
        });
        let ((remap, wal), archived, staged) = match written {
            Ok(written) => written,
            Err(e) => {
                // No manifest names what it wrote (the commit point is the staged
                // manifest's rename, below): removed now rather than by the next sweep.
                if let Err(left) = self.sweep() {
                    tracing::warn!(error = %left, "a failed checkpoint's files stay until the next sweep");
                }
                return Err(e);
            }
        };
        document::commit(&staged, &self.dir.join(MANIFEST))?;
        // The checkpoint is durable from here on; what follows only tidies up.
        self.manifest = manifest;
        self.wal = wal;
        self.dirty = false;
        self.count_files();
        self.sweep()?;
        if archived {
            self.prune_archive()?;
        }
        Ok(remap)
    }

    /// Writes checkpoint `n`'s files (graphs, codes, payload file, points document,
    /// the next log), each synced, and names them in `manifest`; returns what to swap
    /// in besides the rows ([`Remap`]) and the next log.
    fn write_checkpoint_files(
        &mut self,
        segment: &Segment,
        seq: u64,
        n: u64,
        manifest: &mut Manifest,
    ) -> Result<(Remap, Wal), Error> {
        let mut graphs = BTreeMap::new();
        let mut reread = Vec::new();
        for (name, space) in segment.spaces() {
            let file = format!("graph-{}-{seq:020}-{n:08}.hnsw", manifest.space_number(name));
            let path = self.fresh(&file)?;
            // Written as it is read, never gathered whole (1.4 GB at 10M points).
            document::write_new_with(&path, |out| space.graph.write_bytes(out).at(&path))?;
            if space.params.hnsw.on_disk || space.graph.is_held() {
                // Mapped (`on_disk`), or back on the heap when that was turned off.
                reread.push((name.clone(), load_graph(&path, &space.params, segment.ids().len())?));
            }
            graphs.insert(name.clone(), file);
        }
        let mut codes = BTreeMap::new();
        let mut codes_read = Vec::new();
        for (name, space) in segment.spaces() {
            let Some(bytes) = space.codes.as_ref().and_then(braid_distance::Codes::serialized) else {
                continue;
            };
            let file = format!("codes-{}-{seq:020}-{n:08}.i8", manifest.space_number(name));
            let path = self.fresh(&file)?;
            // Written a section at a time: at 10M one-byte codes are 4 GB, which
            // gathering them (and then framing a copy) would hold twice over.
            // Placed for where it lands in the file, so that bit-plane words fall on
            // 8-byte boundaries of a mapping of it.
            document::write_new_document(&path, CODES_MAGIC, FORMAT_VERSION, |out| {
                let at = usize::try_from(out.position()).unwrap_or(0);
                bytes.at(at).write_to(out).at(&path)
            })?;
            if space.params.codes_on_disk {
                // Held in the file just written (and just checksummed as it was made),
                // whose pages are in the page cache: mapped at once (a hint).
                let (codes, map) = map_codes(&path)?;
                let _ = map.populate();
                codes_read.push((name.clone(), codes));
            } else if space.codes.as_ref().is_some_and(|c| c.held_bytes() > 0) {
                // Turned off: read back into the heap.
                codes_read.push((name.clone(), read_codes(&path)?));
            }
            codes.insert(name.clone(), file);
        }
        let payloads = match segment.config().on_disk_payload {
            false => None,
            true => {
                let file = format!("payloads-{seq:020}-{n:08}.bin");
                let offsets = segment.ids().len();
                // A payload untouched since the last payload file is copied from it
                // as it is (the same JSON), not parsed and written again.
                let path = self.fresh(&file)?;
                braid_storage::payloads::write_new(&path, offsets, |o, out| {
                    if !segment.live().contains(o) {
                        return Ok::<_, Error>(());
                    }
                    match segment.payloads().stored(PointOffset(o)) {
                        Stored::None => {}
                        Stored::Encoded(bytes) => out.extend_from_slice(bytes),
                        Stored::Value(p) => out.extend_from_slice(&ops::json_bytes(p)?),
                    }
                    Ok(())
                })?;
                Some((file, Arc::new(MappedPayloads::open(&path, offsets)?)))
            }
        };
        let points = format!("points-{seq:020}-{n:08}.bin");
        let path = self.fresh(&points)?;
        document::write_new_document(&path, POINTS_MAGIC, FORMAT_VERSION, |out| {
            encode_points(segment, out, &path)
        })?;
        let wal_file = wal_name(seq + 1, n);
        let wal = Wal::create(&self.fresh(&wal_file)?)?;
        document::sync_dir(&self.dir)?;
        manifest.wal = wal_file;
        manifest.points = Some(points);
        manifest.graphs = graphs;
        manifest.codes = codes;
        manifest.payloads = payloads.as_ref().map(|(file, _)| file.clone());
        let remap = Remap {
            rows: Vec::new(),
            graphs: reread,
            codes: codes_read,
            payloads: Some(payloads.map(|(_, mapped)| mapped)),
        };
        Ok((remap, wal))
    }

    /// Keeps the log a checkpoint is about to replace, when logs are retained: a hard
    /// link in `archive/`, made durable before the manifest stops naming the log, so a
    /// crash never leaves a hole in the retained history. A log from before a
    /// configuration change (another timeline) empties the archive instead. A
    /// collection with an archive keeps archiving even when opened without a
    /// retention (by a tool, say), so that no opener leaves a hole in the history; only
    /// an opener with a retention prunes.
    fn archive_log(&self, next: &Manifest) -> Result<bool, Error> {
        let archive = self.dir.join(ARCHIVE);
        if self.options.log_retention.is_none() && !archive.exists() {
            return Ok(false);
        }
        if next.timeline != self.manifest.timeline {
            if archive.exists() {
                braid_storage::fault::remove_dir_all(&archive).at(&archive)?;
            }
            return Ok(false);
        }
        std::fs::create_dir_all(&archive).at(&archive)?;
        let from = self.dir.join(&self.manifest.wal);
        let to = archive.join(&self.manifest.wal);
        if !to.exists() {
            std::fs::hard_link(&from, &to).at(&to)?;
        }
        document::sync_dir(&archive)?;
        Ok(true)
    }

    /// Removes retained logs whose last write is older than the retention.
    fn prune_archive(&self) -> Result<(), Error> {
        let (Some(keep), archive) = (self.options.log_retention, self.dir.join(ARCHIVE)) else {
            return Ok(());
        };
        let now = std::time::SystemTime::now();
        for entry in std::fs::read_dir(&archive).at(&archive)? {
            let path = entry.at(&archive)?.path();
            let modified = std::fs::metadata(&path).and_then(|m| m.modified()).at(&path)?;
            if now.duration_since(modified).unwrap_or_default() > keep {
                braid_storage::fault::remove_file(&path).at(&path)?;
            }
        }
        Ok(())
    }

    /// The logged records after sequence number `after`, up to the last one written at
    /// or before `until` (Unix milliseconds), from the retained logs and the current
    /// one (synced first): what a point-in-time recovery replays onto a snapshot taken
    /// at `after` on timeline `timeline`. An error says why the retained history does
    /// not reach: another timeline, logs pruned or not retained, records without times.
    pub(crate) fn history(&mut self, timeline: u64, after: u64, until: u64) -> Result<Vec<Record>, Error> {
        let refuse = |why: String| Err(Error::Snapshot { name: self.dir.display().to_string(), why });
        if timeline != self.manifest.timeline {
            return refuse(
                "the snapshot is not of this collection's current history (it was recovered or \
                 reconfigured since, or the snapshot is of another collection)"
                    .into(),
            );
        }
        self.wal.sync()?;
        let archive = self.dir.join(ARCHIVE);
        let mut logs: Vec<PathBuf> = match std::fs::read_dir(&archive) {
            Ok(entries) => entries.map(|e| e.map(|e| e.path())).collect::<Result<_, _>>().at(&archive)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(StorageError::io(&archive, &e).into()),
        };
        // Log names start with their first sequence number, zero-padded.
        logs.sort();
        logs.push(self.dir.join(&self.manifest.wal));
        let mut out = Vec::new();
        let mut next = after + 1;
        for path in logs {
            let bytes = std::fs::read(&path).at(&path)?;
            let (records, _) = braid_storage::wal::scan(&path, &bytes)?;
            for record in records {
                if record.seq < next {
                    continue;
                }
                if record.seq > next {
                    return refuse(format!(
                        "the retained log has no record {next} (it goes on at {}): the logs after \
                         the snapshot were not retained, or are pruned",
                        record.seq
                    ));
                }
                let Some(time) = Logged::decode(&path, 0, &record.body)?.time() else {
                    return refuse(format!(
                        "record {} was logged before records carried their time",
                        record.seq
                    ));
                };
                if time > until {
                    return Ok(out);
                }
                next += 1;
                out.push(record);
            }
        }
        if next == after + 1 && self.manifest.seq > after {
            return refuse(format!(
                "the retained log does not reach back to the snapshot (sequence {after}); keep logs \
                 with log retention, and recover from a snapshot taken since"
            ));
        }
        Ok(out)
    }

    /// The files of the last checkpoint and how many bytes of each belong to it (a
    /// vector file may have grown past its rows since): what a snapshot copies. The
    /// log is not among them: a snapshot is taken right after a checkpoint, and its
    /// restore starts an empty log (`prepare_restored`).
    pub(crate) fn checkpoint_files(&self) -> Vec<(String, u64)> {
        let fixed = std::iter::once(MANIFEST).chain(self.manifest.whole_files()).filter_map(|name| {
            let len = std::fs::metadata(self.dir.join(name)).ok()?.len();
            Some((name.to_string(), len))
        });
        let vectors = self.manifest.vectors.iter().map(|(space, entry)| {
            let row =
                self.manifest.config.vectors.get(space).map_or(0, |p| p.size * p.datatype.width()) as u64;
            (entry.file.clone(), braid_storage::vectors::VECTORS_HEADER + entry.rows * row)
        });
        fixed.chain(vectors).collect()
    }

    /// The collection's directory.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// Bytes of the live files: counted once per checkpoint (and at open), plus the
    /// log's length, so reading it lists no directory and waits for nothing.
    pub(crate) fn disk_bytes(&self) -> u64 {
        self.files_bytes + self.wal.len()
    }

    /// Bytes of the files the manifest names, but the log.
    fn count_files(&mut self) {
        let names = std::iter::once(MANIFEST).chain(self.manifest.data_files());
        self.files_bytes =
            names.filter_map(|n| std::fs::metadata(self.dir.join(n)).ok()).map(|md| md.len()).sum();
    }
}

/// Makes a directory holding a checkpoint's files (a snapshot's, see
/// [`Store::checkpoint_files`]) ready for [`Store::open`]: creates the empty log its
/// manifest names. Everything else is checked by the open itself.
pub(crate) fn prepare_restored(dir: &Path, tail: &[Record]) -> Result<(), Error> {
    let mut manifest = read_manifest(dir)?;
    // A manifest from elsewhere must name plain files of this directory (the data
    // files present, the log not yet), never a path out of it.
    let plain = |name: &str| !name.is_empty() && !name.starts_with('.') && !name.contains(['/', '\\']);
    let bad = |why: String| -> Error { StorageError::corrupt(&dir.join(MANIFEST), 0, why).into() };
    for name in manifest.data_files() {
        if !plain(name) || !dir.join(name).is_file() {
            return Err(bad(format!("the manifest names `{name}`, which the snapshot does not hold")));
        }
    }
    if !plain(&manifest.wal) || dir.join(&manifest.wal).exists() {
        return Err(bad(format!("the log name `{}` is not a new file name", manifest.wal)));
    }
    let mut wal = Wal::create(&dir.join(&manifest.wal))?;
    for record in tail {
        wal.append(record.seq, &record.body)?;
    }
    wal.sync()?;
    document::sync_dir(dir)?;
    // A recovered collection's history goes its own way from here.
    manifest.timeline = new_timeline();
    write_manifest(dir, &manifest)?;
    Ok(())
}

/// The sequence number and timeline of the checkpoint in `dir` (an unpacked snapshot).
pub(crate) fn checkpoint_position(dir: &Path) -> Result<(u64, u64), Error> {
    let manifest = read_manifest(dir)?;
    Ok((manifest.seq, manifest.timeline))
}

impl Drop for Store {
    fn drop(&mut self) {
        // A clean close makes every logged write durable (errors have nowhere to go).
        let _ = self.wal.sync();
    }
}

fn file_name(path: &Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

fn bitmap_bytes(e: &mut Encoder, bitmap: &RoaringBitmap) {
    let mut out = Vec::with_capacity(bitmap.serialized_size());
    // Invariant: writing into a Vec cannot fail.
    let _ = bitmap.serialize_into(&mut out);
    e.bytes(&out);
}

fn read_bitmap(d: &mut Decoder<'_>) -> Result<RoaringBitmap, StorageError> {
    let b = d.bytes()?;
    RoaringBitmap::deserialize_from(b).map_err(|e| d.error(format!("bad bitmap: {e}")))
}

/// The points document: every offset's id, the live bitmap, each space's bitmap of
/// offsets with a vector, the payloads of live points and the payload index list.
fn encode_points(segment: &Segment, out: &mut document::Writer, path: &Path) -> Result<(), Error> {
    // Written a section at a time: with their payloads the points of a large
    // collection are gigabytes.
    const SECTION: usize = 1 << 20;
    let mut e = Encoder::new();
    e.len(segment.ids().len());
    for id in segment.ids().all() {
        ops::encode_id(&mut e, &id);
        e.spill(out, SECTION).at(path)?;
    }
    bitmap_bytes(&mut e, segment.live());
    e.len(segment.spaces().len());
    for (name, space) in segment.spaces() {
        e.str(name);
        bitmap_bytes(&mut e, &space.present);
    }
    // Payloads kept on disk are in their own file, not here.
    let on_disk = segment.config().on_disk_payload;
    e.len(if on_disk { 0 } else { segment.live().len() as usize });
    for offset in segment.live().iter().filter(|_| !on_disk) {
        e.u32(offset);
        ops::encode_json(&mut e, &segment.payload_at(offset))?;
        e.spill(out, SECTION).at(path)?;
    }
    let indexes = segment.index_specs();
    e.len(indexes.len());
    for (key, kind, options) in indexes {
        e.str(&key).u8(ops::encode_kind(kind));
        // A text index's options follow its kind (a kind files before text indexes
        // existed never held).
        if let Some(options) = options {
            ops::encode_text_options(&mut e, &options)?;
        }
    }
    // Sparse spaces, then multivector spaces, each section only when the collection
    // has such spaces (files of collections without them end as they did before those
    // existed): each live vector by offset.
    if !segment.sparse_spaces().is_empty() {
        e.len(segment.sparse_spaces().len());
        for (name, data) in segment.sparse_spaces() {
            e.str(name).len(data.index.len());
            for offset in data.index.offsets() {
                if let Some(v) = data.index.get(offset) {
                    e.u32(offset);
                    ops::encode_sparse(&mut e, v);
                    e.spill(out, SECTION).at(path)?;
                }
            }
        }
    }
    if !segment.multi_spaces().is_empty() {
        e.len(segment.multi_spaces().len());
        for (name, data) in segment.multi_spaces() {
            let live: Vec<(&u32, &crate::point::MultiVector)> =
                data.vectors.iter().filter(|(o, _)| segment.live().contains(**o)).collect();
            e.str(name).len(live.len());
            for (offset, v) in live {
                e.u32(*offset);
                ops::encode_multi(&mut e, v);
                e.spill(out, SECTION).at(path)?;
            }
        }
    }
    Ok(e.spill(out, 0).at(path)?)
}

/// The segment of the checkpoint in `path`, and the checksum passes of the codes
/// files it keeps mapped (`codes_on_disk`), left to the caller.
fn load_segment(
    dir: &Path,
    manifest: &Manifest,
    path: &Path,
    mut rows: BTreeMap<String, SpaceRows>,
) -> Result<(Segment, Vec<RowsCheck>), Error> {
    // Decoded from the file's pages rather than a copy of them (with their payloads
    // the points of a large collection are gigabytes); nothing decoded borrows them.
    let map = PrivateMap::open(path)?;
    let body = document::decode(path, map.bytes(), POINTS_MAGIC, FORMAT_VERSION, "points")?;
    let mut d = Decoder::new(path, 20, body);
    let n = d.len(9)?;
    let mut column = crate::ids::Column::with_capacity(n);
    for _ in 0..n {
        column.push(ops::decode_id(&mut d)?);
    }
    let ids = PointIds::read(column, read_bitmap(&mut d)?).map_err(|e| match e {
        None => d.error("a live offset past the last one"),
        Some(id) => d.error(format!("point {id} live at two offsets")),
    })?;
    let live = ids.live();
    let mut spaces = BTreeMap::new();
    let mut checks = Vec::new();
    let count = d.len(8)?;
    if count != manifest.config.vectors.len() {
        return Err(d.error("the space list does not match the configuration").into());
    }
    for _ in 0..count {
        let name = d.str()?.to_string();
        let present = read_bitmap(&mut d)?;
        let (Some(params), Some(rows)) = (manifest.config.vectors.get(&name), rows.remove(&name)) else {
            return Err(d.error(format!("unknown space `{name}`")).into());
        };
        if rows.len() != n || present.max().is_some_and(|m| m as usize >= n) {
            return Err(d.error(format!("space `{name}` has {} rows for {n} offsets", rows.len())).into());
        }
        let graph_file =
            manifest.graphs.get(&name).ok_or_else(|| d.error(format!("no graph for `{name}`")))?;
        // The codes are read (or made) on a second thread while this one reads and
        // checks the graph: at 1M × 384-d with int8 codes they are 396 MB and the
        // graph 163 MB, most of a reopen.
        // A space without codes (and no codes file to refuse) needs no second thread.
        let codes_here = params.codes().is_some() || manifest.codes.contains_key(&name);
        // Without a second thread (the system refused one) the codes load after the graph.
        let (graph, codes) = std::thread::scope(|s| {
            let load = || load_codes(dir, manifest, &name, params, &rows, n);
            let codes = codes_here.then(|| std::thread::Builder::new().spawn_scoped(s, load));
            let graph = load_graph(&dir.join(graph_file), params, n);
            let codes = match codes {
                None => Ok((None, None)),
                Some(Ok(c)) => c.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
                Some(Err(_)) => load(),
            };
            (graph, codes)
        });
        let (graph, (codes, check)) = (graph?, codes?);
        checks.extend(check);
        let live_here = present.intersection_len(live) as usize;
        spaces.insert(name, SpaceData { params: *params, rows, present, live: live_here, graph, codes });
    }
    let mut payloads = PayloadStore::new();
    let with_payload = d.len(5)?;
    for _ in 0..with_payload {
        let offset = d.u32()?;
        let payload = ops::decode_json(&mut d)?;
        if !live.contains(offset) {
            return Err(d.error(format!("a payload for offset {offset}, which is not live")).into());
        }
        payloads.set(PointOffset(offset), payload);
    }
    if let Some(file) = &manifest.payloads {
        if with_payload > 0 {
            return Err(d.error("payloads both here and in a payload file").into());
        }
        payloads.hold_in(Some(Arc::new(MappedPayloads::open(&dir.join(file), n)?)));
    }
    let indexes = d.len(9)?;
    for _ in 0..indexes {
        let key = d.str()?.to_string();
        let code = d.u8()?;
        let kind = ops::decode_kind(&d, code)?;
        match kind {
            braid_filter::IndexKind::Text => {
                payloads.create_text_index(&key, ops::decode_text_options(&mut d)?)?
            }
            kind => payloads.create_index(&key, kind)?,
        }
    }
    let mut sparse = BTreeMap::new();
    if !manifest.config.sparse_vectors.is_empty() {
        let count = d.len(8)?;
        if count != manifest.config.sparse_vectors.len() {
            return Err(d.error("the sparse space list does not match the configuration").into());
        }
        for _ in 0..count {
            let name = d.str()?.to_string();
            if !manifest.config.sparse_vectors.contains_key(&name) {
                return Err(d.error(format!("unknown sparse space `{name}`")).into());
            }
            let mut index = braid_sparse::SparseIndex::new();
            for _ in 0..d.len(8)? {
                let offset = d.u32()?;
                let v = ops::decode_sparse(&mut d)?;
                if !live.contains(offset) || index.get(offset).is_some() {
                    return Err(d
                        .error(format!("a sparse vector for offset {offset}, which is not live or has one"))
                        .into());
                }
                index.insert(offset, v);
            }
            sparse.insert(name, index);
        }
    }
    let mut multi = BTreeMap::new();
    if !manifest.config.multivectors.is_empty() {
        let count = d.len(8)?;
        if count != manifest.config.multivectors.len() {
            return Err(d.error("the multivector space list does not match the configuration").into());
        }
        for _ in 0..count {
            let name = d.str()?.to_string();
            let Some(params) = manifest.config.multivectors.get(&name) else {
                return Err(d.error(format!("unknown multivector space `{name}`")).into());
            };
            let mut vectors = BTreeMap::new();
            for _ in 0..d.len(8)? {
                let offset = d.u32()?;
                let v = ops::decode_multi(&mut d)?;
                if !live.contains(offset) || v.is_empty() || v.iter().any(|row| row.len() != params.size) {
                    return Err(d
                        .error(format!(
                            "a multivector for offset {offset} that is not live or does not fit `{name}`"
                        ))
                        .into());
                }
                if vectors.insert(offset, v).is_some() {
                    return Err(d.error(format!("two multivectors for offset {offset} in `{name}`")).into());
                }
            }
            multi.insert(name, vectors);
        }
    }
    d.finish()?;
    Ok((Segment::from_checkpoint(manifest.config.clone(), spaces, sparse, multi, payloads, ids), checks))
}

/// A graph file mapped copy-on-write: the graph keeps its layer 0 in the mapping.
struct MappedGraph(PrivateMap);

impl GraphFile for MappedGraph {
    fn bytes(&self) -> &[u8] {
        self.0.bytes()
    }

    fn hold(&self, range: std::ops::Range<usize>) -> bool {
        self.0.hold(range)
    }

    fn slots(&self) -> &[std::sync::atomic::AtomicU32] {
        self.0.words()
    }
}

/// A space's graph file, decoded and checked against the space (`n` offsets): read
/// into the heap, or mapped with layer 0 left in the mapping (`hnsw_config.on_disk`).
fn load_graph(path: &Path, params: &crate::VectorParams, n: usize) -> Result<Hnsw, Error> {
    let corrupt = |e: braid_hnsw::DecodeError| StorageError::corrupt(path, 0, format!("graph: {e}"));
    let graph = if params.hnsw.on_disk {
        let file = Arc::new(MappedGraph(PrivateMap::open(path)?));
        let graph = Hnsw::from_held(file.clone()).map_err(corrupt)?;
        // Lists are read one at a time, wherever a walk goes: no read-ahead.
        file.0.advise_random()?;
        graph
    } else {
        // Decoded from the file's pages, not from a copy of them: at 10M the graph
        // is 1.4 GB, and a read would copy it into a buffer the heap graph copies again.
        Hnsw::from_bytes(PrivateMap::open(path)?.bytes()).map_err(corrupt)?
    };
    if graph.dim() != params.size || graph.capacity() > n {
        return Err(StorageError::corrupt(path, 0, "graph does not fit the space").into());
    }
    Ok(graph)
}

/// A space's codes: its codes file, checked against the space, or made from its rows
/// when the manifest names none (a sample not yet complete, an older manifest). Codes
/// kept on disk (`codes_on_disk`) stay in their file, mapped, and come with the pass
/// that checks the file's checksum, for the caller to run; the others are read whole
/// and checked here.
fn load_codes(
    dir: &Path,
    manifest: &Manifest,
    name: &str,
    params: &crate::VectorParams,
    rows: &SpaceRows,
    n: usize,
) -> Result<(Option<braid_distance::Codes>, Option<RowsCheck>), Error> {
    Ok(match (params.codes(), manifest.codes.get(name)) {
        (Some(fresh), Some(file)) => {
            let path = dir.join(file);
            let (codes, check) = if params.codes_on_disk {
                let (codes, map) = map_codes(&path)?;
                // The pass that checks the file reads it into the page cache; then the
                // mapping is filled from it, so that searches do not fault each code's
                // page in one at a time (at 1M, QPS at the smallest `ef` 0.6–1.0× the
                // heap codes' without it).
                (codes, Some(RowsCheck::document(&path)?.populate(map)))
            } else {
                (read_codes(&path)?, None)
            };
            if codes.len() != n
                || codes.dim() != fresh.dim()
                || codes.metric() != fresh.metric()
                || codes.kind() != fresh.kind()
            {
                return Err(StorageError::corrupt(&path, 0, "codes do not fit the space").into());
            }
            (Some(codes), check)
        }
        (Some(mut codes), None) => {
            let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
            with_rows!(rows, |r| codes.extend_from_parallel(r, threads));
            (Some(codes), None)
        }
        (None, Some(file)) => {
            return Err(StorageError::corrupt(&dir.join(file), 0, "codes for a space that keeps none").into());
        }
        (None, None) => (None, None),
    })
}

/// Runs `check` now when its file is no larger than
/// `options.verify_after_open_above`; otherwise returns it, for the pass after open.
fn run_if_small(check: RowsCheck, options: &StorageOptions) -> Result<Option<RowsCheck>, StorageError> {
    if check.bytes() > options.verify_after_open_above {
        return Ok(Some(check));
    }
    check.run(|| true)?;
    Ok(None)
}

/// A codes file mapped copy-on-write (never written through): codes held in it keep
/// their components in its pages.
struct MappedCodes(Arc<PrivateMap>);

impl braid_distance::CodesFile for MappedCodes {
    fn bytes(&self) -> &[u8] {
        self.0.bytes()
    }
}

/// Reads a codes file into the heap, straight into the codes' buffers: the file is the
/// codes' size, and holding it twice would double the peak memory.
fn read_codes(path: &Path) -> Result<braid_distance::Codes, Error> {
    Ok(document::read_with(path, CODES_MAGIC, FORMAT_VERSION, "codes", |body, len| {
        braid_distance::Codes::read_from(body, len)
    })?)
}

/// The codes in the codes file at `path`, held in its mapping (returned too). Its
/// header, version and layout are checked here; its checksum is not (at 10M × 384-d the
/// file is 4 GB: [`RowsCheck::document`]'s pass).
fn map_codes(path: &Path) -> Result<(braid_distance::Codes, Arc<PrivateMap>), Error> {
    let map = PrivateMap::open(path)?;
    let body = document::mapped_body(path, map.bytes(), CODES_MAGIC, FORMAT_VERSION, "codes")?;
    let at = body.start as u64;
    let map = Arc::new(map);
    let file = Arc::new(MappedCodes(map.clone()));
    // The terms before the components are read from start to end (with read-ahead)…
    let codes = braid_distance::Codes::hold_from(file.clone(), body)
        .map_err(|why| StorageError::corrupt(path, at, format!("codes: {why}")))?;
    // …and from then on each search reads a few codes wherever its walk goes: no
    // read-ahead (at 10M, reading the terms one page per fault took 3.3 s).
    map.advise_random()?;
    Ok((codes, map))
}
