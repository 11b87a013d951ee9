//! The database: a set of named collections, in memory or in a directory.
//!
//! On disk (`docs/storage.md`):
//!
//! ```text
//! <dir>/
//!   LOCK          held by the process that has the database open
//!   MANIFEST      collection names → their directories (replaced atomically)
//!   c-<n>/        one directory per collection (see `store.rs`)
//! ```
//!
//! Creating or deleting a collection rewrites the database manifest (synced) before it
//! returns, so those two operations are durable as soon as they are acknowledged.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use braid_storage::{DirLock, IoContext, StorageError, document};
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};

use crate::Error;
use crate::collection::{Collection, WeakCollection};
use crate::config::CollectionConfig;
use crate::snapshot::{self, SnapshotDescription, SnapshotKind, Staged};
use crate::store::{StorageOptions, Store};

const MANIFEST: &str = "MANIFEST";
const MANIFEST_MAGIC: &[u8; 8] = b"BRAIDDB\0";
const FORMAT_VERSION: u32 = 1;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
struct DbManifest {
    /// Collection name → its directory under the database directory.
    collections: BTreeMap<String, String>,
    /// The number of the next collection directory (never reused).
    next: u64,
    /// Alias → the collection it names (manifests written before aliases read as none).
    #[serde(default)]
    aliases: BTreeMap<String, String>,
}

struct Disk {
    /// The background optimiser: its stop signal and thread.
    optimizer: Option<(std::sync::mpsc::Sender<()>, std::thread::JoinHandle<()>)>,
    /// What it looks after.
    registry: Registry,
    /// Shared with every collection's store: the directory stays locked while any
    /// handle to anything in it lives.
    lock: Arc<DirLock>,
    dir: PathBuf,
    manifest: DbManifest,
    options: StorageOptions,
}

impl Drop for Disk {
    /// Stops the background optimiser and waits for a compaction in progress, so that
    /// the directory is unlocked when the last database handle is gone.
    fn drop(&mut self) {
        if let Some((stop, thread)) = self.optimizer.take() {
            drop(stop);
            // Never the optimiser's own thread: it holds no database handle.
            let _ = thread.join();
        }
    }
}

impl Disk {
    fn save(&self) -> Result<(), StorageError> {
        let path = self.dir.join(MANIFEST);
        let body = serde_json::to_vec_pretty(&self.manifest)
            .map_err(|e| StorageError::corrupt(&path, 0, format!("manifest does not serialise: {e}")))?;
        document::replace(&self.dir.join(MANIFEST), &document::encode(MANIFEST_MAGIC, FORMAT_VERSION, &body))
    }
}

#[derive(Default)]
struct Catalog {
    collections: BTreeMap<String, Collection>,
    /// Alias → collection name; every target is in `collections`, no alias is a
    /// collection's name.
    aliases: BTreeMap<String, String>,
    disk: Option<Disk>,
}

impl Catalog {
    /// The collection `name` names, directly or through an alias.
    fn resolve(&self, name: &str) -> Option<&Collection> {
        self.collections.get(name).or_else(|| self.aliases.get(name).and_then(|c| self.collections.get(c)))
    }

    /// Makes `aliases` the alias table: on disk, the manifest is rewritten (synced)
    /// first, and a failure leaves both the file and the table as they were.
    fn set_aliases(&mut self, aliases: BTreeMap<String, String>) -> Result<(), Error> {
        if let Some(disk) = self.disk.as_mut() {
            let old = std::mem::replace(&mut disk.manifest.aliases, aliases.clone());
            if let Err(e) = disk.save() {
                disk.manifest.aliases = old;
                return Err(e.into());
            }
        }
        self.aliases = aliases;
        Ok(())
    }
}

/// One change to the alias table; [`Database::update_aliases`] applies a list of them
/// all or none.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AliasOp {
    /// Points `alias` at `collection` (which must be a collection, not an alias),
    /// replacing where it pointed before: the blue/green switch in one step.
    Create {
        /// The alias.
        alias: String,
        /// The collection it names.
        collection: String,
    },
    /// Removes `alias`; one that does not exist is no error (as in Qdrant).
    Delete {
        /// The alias.
        alias: String,
    },
    /// Renames alias `from` to `to` (an alias `to` is replaced); `from` must exist.
    Rename {
        /// The alias now.
        from: String,
        /// Its new name.
        to: String,
    },
}

/// A Braid database. `Send + Sync`; clone the handle to share it.
#[derive(Clone, Default)]
pub struct Database {
    catalog: Arc<RwLock<Catalog>>,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database").field("collections", &self.list()).finish()
    }
}

/// The collections the background optimiser looks after, held weakly so that it never
/// keeps a collection (or the directory's lock) alive on its own.
type Registry = Arc<parking_lot::Mutex<Vec<WeakCollection>>>;

/// The background optimiser: every `every`, compacts the collections whose dead
/// versions pass the thresholds (the collection's own, else the database's) or whose
/// graphs wait for a rebuild. It never holds the catalog, so the last database
/// handle is always dropped by a user thread, whose `Disk::drop` stops this thread and
/// waits for a compaction in progress.
fn spawn_optimizer(
    registry: Registry,
    every: std::time::Duration,
    share: f64,
    min: usize,
) -> Option<(std::sync::mpsc::Sender<()>, std::thread::JoinHandle<()>)> {
    let (stop, stopped) = std::sync::mpsc::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("braid-optimizer".into())
        .spawn(move || {
            while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(every) {
                let weak: Vec<WeakCollection> = {
                    let mut list = registry.lock();
                    list.retain(|w| w.upgrade().is_some());
                    list.clone()
                };
                for w in weak {
                    let Some(c) = w.upgrade() else { continue };
                    if c.verifying() {
                        // Its compaction would wait for the checksum pass still running
                        // since the open (and so would a drop of the database waiting
                        // for this thread); the next round comes back.
                        continue;
                    }
                    let (dead, total) = c.versions();
                    let config = c.config();
                    let share = config.deleted_threshold.unwrap_or(share);
                    let min = config.vacuum_min_vector_number.unwrap_or(min);
                    // A graph waiting for new settings (changed, then the process
                    // stopped before the rebuild) is rebuilt as a compaction too.
                    if (dead >= min.max(1) && dead as f64 > share * total as f64)
                        || !c.stale_graphs().is_empty()
                    {
                        // A failure leaves the collection as it was; the next round retries.
                        let _ = c.compact();
                    }
                }
            }
        })
        .ok()?;
    Some((stop, thread))
}

/// How a collection finds another by name, without keeping the catalog alive.
fn finder(catalog: &Arc<RwLock<Catalog>>) -> crate::collection::Finder {
    let weak = Arc::downgrade(catalog);
    Arc::new(move |name: &str| weak.upgrade().and_then(|c| c.read().resolve(name).cloned()))
}

/// Is `name` a valid collection (or alias) name?
pub(crate) fn valid_name(name: &str) -> bool {
    // `.` and `..` are path segments, not names: a URL or a file path with one in it
    // means something else.
    !name.is_empty()
        && name.len() <= 255
        && name.chars().all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
        && !name.chars().all(|c| c == '.')
}

/// Whether `name` may name a collection or an alias (letters, digits, `_`, `-`, `.`;
/// not only dots; at most 255 bytes): [`Error::InvalidName`] if not.
pub fn check_name(name: &str) -> Result<(), Error> {
    if valid_name(name) { Ok(()) } else { Err(Error::InvalidName { name: name.to_string() }) }
}

/// The alias table `aliases` after `ops`, applied in order, all or none (the rules
/// of [`Database::update_aliases`]); `is_collection` tells the collections' names.
/// Shared with a cluster's metadata, which keeps its own table.
pub fn apply_alias_ops(
    aliases: &BTreeMap<String, String>,
    is_collection: impl Fn(&str) -> bool,
    ops: &[AliasOp],
) -> Result<BTreeMap<String, String>, Error> {
    let mut aliases = aliases.clone();
    let free = |name: &str| {
        check_name(name)?;
        if is_collection(name) {
            return Err(Error::NameTaken { name: name.to_string(), what: "a collection" });
        }
        Ok(())
    };
    for op in ops {
        match op {
            AliasOp::Create { alias, collection } => {
                free(alias)?;
                if !is_collection(collection) {
                    return Err(Error::CollectionNotFound { name: collection.clone() });
                }
                aliases.insert(alias.clone(), collection.clone());
            }
            AliasOp::Delete { alias } => {
                aliases.remove(alias);
            }
            AliasOp::Rename { from, to } => {
                free(to)?;
                let target =
                    aliases.remove(from).ok_or_else(|| Error::AliasNotFound { name: from.clone() })?;
                aliases.insert(to.clone(), target);
            }
        }
    }
    Ok(aliases)
}

impl Database {
    /// A database held in memory: everything is gone when it is dropped.
    pub fn in_memory() -> Database {
        Database::default()
    }

    /// Opens (or creates) the database in directory `path` with default options:
    /// writes are durable once `flush()` returns ([`crate::Durability::OnFlush`]).
    pub fn open(path: impl AsRef<Path>) -> Result<Database, Error> {
        Database::open_with(path, StorageOptions::default())
    }

    /// Opens (or creates) the database in `path` with `options`. The directory is
    /// locked until the last handle is dropped: a second open, from this process or
    /// another, is [`braid_storage::StorageError::Locked`].
    pub fn open_with(path: impl AsRef<Path>, options: StorageOptions) -> Result<Database, Error> {
        let dir = path.as_ref().to_path_buf();
        std::fs::create_dir_all(&dir).at(&dir)?;
        let lock = Arc::new(DirLock::acquire(&dir)?);
        let manifest_path = dir.join(MANIFEST);
        let manifest = if manifest_path.exists() {
            let body = document::read(&manifest_path, MANIFEST_MAGIC, FORMAT_VERSION, "database manifest")?;
            serde_json::from_slice(&body)
                .map_err(|e| StorageError::corrupt(&manifest_path, 0, format!("manifest: {e}")))?
        } else {
            DbManifest::default()
        };
        let registry = Registry::default();
        let disk =
            Disk { optimizer: None, registry: registry.clone(), lock, dir: dir.clone(), manifest, options };
        if !manifest_path.exists() {
            disk.save()?;
        }
        let mut collections = BTreeMap::new();
        for (name, sub) in &disk.manifest.collections {
            let (store, segment, checks) = Store::open(&dir.join(sub), options, disk.lock.clone())?;
            let collection = Collection::from_parts(name, segment, Some(store));
            collection.verify_in_background(checks);
            registry.lock().push(collection.downgrade());
            collections.insert(name.clone(), collection);
        }
        // Directories of collections whose creation or deletion a crash interrupted.
        for entry in std::fs::read_dir(&dir).at(&dir)? {
            let entry = entry.at(&dir)?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let referenced = disk.manifest.collections.values().any(|s| *s == name);
            if name.starts_with("c-") && !referenced {
                braid_storage::fault::remove_dir_all(&entry.path()).at(&entry.path())?;
            }
        }
        // An alias whose collection is gone (a crash between the two rewrites cannot
        // cause one, but a hand-edited manifest can) is dropped rather than kept dangling.
        let aliases = disk
            .manifest
            .aliases
            .iter()
            .filter(|(_, c)| collections.contains_key(*c))
            .map(|(a, c)| (a.clone(), c.clone()))
            .collect();
        let catalog = Arc::new(RwLock::new(Catalog { collections, aliases, disk: Some(disk) }));
        for c in catalog.read().collections.values() {
            c.set_finder(finder(&catalog));
        }
        if let Some(every) = options.optimize_every {
            let stop = spawn_optimizer(registry, every, options.vacuum_share, options.vacuum_min);
            if let Some(disk) = catalog.write().disk.as_mut() {
                disk.optimizer = stop;
            }
        }
        Ok(Database { catalog })
    }

    /// The directory, for a database on disk.
    pub fn path(&self) -> Option<PathBuf> {
        self.catalog.read().disk.as_ref().map(|d| d.dir.clone())
    }

    fn create_in(catalog: &mut Catalog, name: &str, config: CollectionConfig) -> Result<Collection, Error> {
        let collection = match catalog.disk.as_mut() {
            None => Collection::new(name, config)?,
            Some(disk) => {
                let sub = format!("c-{:06}", disk.manifest.next);
                let dir = disk.dir.join(&sub);
                std::fs::create_dir(&dir).at(&dir)?;
                let store = Store::create(&dir, &config, disk.options, disk.lock.clone())?;
                document::sync_dir(&disk.dir)?;
                disk.manifest.next += 1;
                disk.manifest.collections.insert(name.to_string(), sub);
                if let Err(e) = disk.save() {
                    disk.manifest.collections.remove(name);
                    return Err(e.into());
                }
                let collection =
                    Collection::from_parts(name, crate::segment::Segment::new(config)?, Some(store));
                disk.registry.lock().push(collection.downgrade());
                collection
            }
        };
        catalog.collections.insert(name.to_string(), collection.clone());
        Ok(collection)
    }

    /// Hands `collection` a way to reach the others (`lookup_from`).
    fn adopt(&self, collection: Collection) -> Collection {
        collection.set_finder(finder(&self.catalog));
        collection
    }

    /// Creates a collection; a name already taken is [`Error::CollectionConflict`].
    pub fn create_collection(&self, name: &str, config: CollectionConfig) -> Result<Collection, Error> {
        check_name(name)?;
        config.validate()?;
        let mut catalog = self.catalog.write();
        if catalog.collections.contains_key(name) {
            return Err(Error::CollectionConflict { name: name.to_string() });
        }
        if catalog.aliases.contains_key(name) {
            return Err(Error::NameTaken { name: name.to_string(), what: "an alias" });
        }
        Self::create_in(&mut catalog, name, config).map(|c| self.adopt(c))
    }

    /// The collection `name`, created with `config` if it does not exist. Asking again
    /// with the same configuration returns the same collection; with another one it is
    /// [`Error::CollectionConflict`], never a silent overwrite.
    pub fn get_or_create(&self, name: &str, config: CollectionConfig) -> Result<Collection, Error> {
        check_name(name)?;
        config.validate()?;
        let mut catalog = self.catalog.write();
        if let Some(existing) = catalog.collections.get(name) {
            return if existing.config() == config {
                Ok(existing.clone())
            } else {
                Err(Error::CollectionConflict { name: name.to_string() })
            };
        }
        if catalog.aliases.contains_key(name) {
            return Err(Error::NameTaken { name: name.to_string(), what: "an alias" });
        }
        Self::create_in(&mut catalog, name, config).map(|c| self.adopt(c))
    }

    /// The collection `name`, or the one the alias `name` points at.
    pub fn collection(&self, name: &str) -> Result<Collection, Error> {
        self.catalog
            .read()
            .resolve(name)
            .cloned()
            .ok_or_else(|| Error::CollectionNotFound { name: name.to_string() })
    }

    /// Does `name` name a collection, directly or as an alias?
    pub fn collection_exists(&self, name: &str) -> bool {
        self.catalog.read().resolve(name).is_some()
    }

    /// Applies `ops` in order, all or none: the first that fails (an alias on a
    /// missing collection or on an alias, an alias named as a collection, renaming a
    /// missing alias, an invalid name) leaves the table as it was. On disk the change
    /// is durable when this returns. A query resolving a name meanwhile sees the table
    /// before or after, never between.
    pub fn update_aliases(&self, ops: &[AliasOp]) -> Result<(), Error> {
        let mut catalog = self.catalog.write();
        let aliases = apply_alias_ops(&catalog.aliases, |name| catalog.collections.contains_key(name), ops)?;
        if aliases != catalog.aliases {
            catalog.set_aliases(aliases)?;
        }
        Ok(())
    }

    /// Every alias and the collection it names, sorted by alias.
    pub fn aliases(&self) -> Vec<(String, String)> {
        self.catalog.read().aliases.iter().map(|(a, c)| (a.clone(), c.clone())).collect()
    }

    /// The aliases of collection `name` (a collection's own name, not an alias),
    /// sorted; [`Error::CollectionNotFound`] if there is no such collection.
    pub fn collection_aliases(&self, name: &str) -> Result<Vec<String>, Error> {
        let catalog = self.catalog.read();
        if !catalog.collections.contains_key(name) {
            return Err(Error::CollectionNotFound { name: name.to_string() });
        }
        Ok(catalog.aliases.iter().filter(|(_, c)| *c == name).map(|(a, _)| a.clone()).collect())
    }

    /// Every collection name, sorted.
    pub fn list(&self) -> Vec<String> {
        self.catalog.read().collections.keys().cloned().collect()
    }

    /// Deletes `name`; `Ok(true)` if it existed. On disk the deletion is durable when
    /// this returns. Handles held elsewhere keep working on the detached data until
    /// dropped (their writes are no longer persisted).
    ///
    /// The catalog is locked only while the manifest is rewritten: waiting for a
    /// compaction of the collection to finish and removing its files happen after,
    /// so other collections (and listing them) are never held up by a delete.
    pub fn delete_collection(&self, name: &str) -> Result<bool, Error> {
        let (collection, dir) = {
            let mut catalog = self.catalog.write();
            if !catalog.collections.contains_key(name) {
                return Ok(false);
            }
            let mut dir = None;
            // Its aliases go with it, in the same manifest rewrite.
            let aliases: BTreeMap<String, String> = catalog
                .aliases
                .iter()
                .filter(|(_, c)| *c != name)
                .map(|(a, c)| (a.clone(), c.clone()))
                .collect();
            if let Some(disk) = catalog.disk.as_mut() {
                let Some(sub) = disk.manifest.collections.remove(name) else { return Ok(false) };
                let old_aliases = std::mem::replace(&mut disk.manifest.aliases, aliases.clone());
                if let Err(e) = disk.save() {
                    disk.manifest.collections.insert(name.to_string(), sub);
                    disk.manifest.aliases = old_aliases;
                    return Err(e.into());
                }
                dir = Some(disk.dir.join(&sub));
            }
            catalog.aliases = aliases;
            (catalog.collections.remove(name), dir)
        };
        if let Some(c) = collection {
            c.detach();
        }
        if let Some(dir) = dir {
            // The manifest no longer names it: if this fails, the next open removes it.
            let _ = braid_storage::fault::remove_dir_all(&dir);
        }
        Ok(true)
    }

    /// Writes a snapshot of collection `name` (or of the one alias `name` names) into
    /// directory `dir` as `<collection>-<UTC time>.snapshot`, and returns its
    /// description. The collection is checkpointed and its files linked aside under
    /// its writer lock (writers wait for that much only); the file is written after,
    /// while writes go on. [`Error::NotOnDisk`] for a database in memory.
    pub fn snapshot_collection(&self, name: &str, dir: &Path) -> Result<SnapshotDescription, Error> {
        let collection = self.collection(name)?;
        let file = snapshot::fresh_name(dir, collection.name());
        self.write_snapshot(dir, &file, SnapshotKind::Collection, &[collection], BTreeMap::new(), None)
    }

    /// Writes an incremental snapshot of collection `name` into `dir`: only what
    /// changed since `base`, a full snapshot of the same collection in `dir` — the
    /// rows appended to each vector file since, and the files a checkpoint rewrites
    /// (graphs, points) — with `base`'s SHA-256 recorded. Recovering it
    /// ([`Database::recover_collection`]) needs `base` beside it, unchanged; what it
    /// restores is the collection as of this snapshot, checked file by file as a full
    /// snapshot is.
    pub fn snapshot_collection_incremental(
        &self,
        name: &str,
        dir: &Path,
        base: &str,
    ) -> Result<SnapshotDescription, Error> {
        let collection = self.collection(name)?;
        let file = snapshot::fresh_name(dir, &format!("{}-incremental", collection.name()));
        self.write_snapshot(dir, &file, SnapshotKind::Collection, &[collection], BTreeMap::new(), Some(base))
    }

    /// Writes a snapshot of every collection and the aliases into `dir` as
    /// `full-snapshot-<UTC time>.snapshot`. Each collection is consistent at its own
    /// checkpoint, taken one after the other (as Qdrant's full snapshots are).
    pub fn snapshot(&self, dir: &Path) -> Result<SnapshotDescription, Error> {
        let (collections, aliases) = {
            let catalog = self.catalog.read();
            (catalog.collections.values().cloned().collect::<Vec<_>>(), catalog.aliases.clone())
        };
        let file = snapshot::fresh_name(dir, "full-snapshot");
        self.write_snapshot(dir, &file, SnapshotKind::Database, &collections, aliases, None)
    }

    fn write_snapshot(
        &self,
        dir: &Path,
        file: &str,
        kind: SnapshotKind,
        collections: &[Collection],
        aliases: BTreeMap<String, String>,
        base: Option<&str>,
    ) -> Result<SnapshotDescription, Error> {
        // The staging directory is named like a collection's so that a crash leaves
        // nothing behind: the next open removes `c-` directories the manifest does not name.
        let stage = {
            let mut catalog = self.catalog.write();
            let disk = catalog.disk.as_mut().ok_or(Error::NotOnDisk { what: "a snapshot" })?;
            disk.manifest.next += 1;
            disk.dir.join(format!("c-{:06}-snapshot", disk.manifest.next - 1))
        };
        let result = (|| {
            let mut staged = Vec::new();
            for c in collections {
                let into = stage.join(c.name());
                std::fs::create_dir_all(&into).at(&into)?;
                let files = c.stage_checkpoint(&into)?;
                staged.push(Staged { name: c.name().to_string(), dir: into, files });
            }
            snapshot::write(dir, file, kind, &staged, aliases, base)
        })();
        let _ = braid_storage::fault::remove_dir_all(&stage);
        result
    }

    /// Replaces collection `name` (or creates it) with the one in the collection
    /// snapshot at `file`, checked first against `checksum` (SHA-256, hex) when given.
    /// A damaged, truncated or foreign snapshot is [`Error::Snapshot`] and changes
    /// nothing; otherwise the restored collection is opened (every file checked)
    /// before the old one is swapped out, durably. Handles to the old collection held
    /// elsewhere keep reading it, detached, as after a delete.
    pub fn recover_collection(
        &self,
        name: &str,
        file: &Path,
        checksum: Option<&str>,
    ) -> Result<Collection, Error> {
        check_name(name)?;
        if self.catalog.read().aliases.contains_key(name) {
            return Err(Error::NameTaken { name: name.to_string(), what: "an alias" });
        }
        let unpacked = self.unpack(file, checksum)?;
        if unpacked.0 != SnapshotKind::Collection {
            self.discard(&unpacked.1);
            return Err(Error::Snapshot {
                name: file.display().to_string(),
                why: "a database snapshot; restore it with Database::restore".into(),
            });
        }
        let dir = unpacked.1.into_values().next().expect("one collection, checked by unpack");
        let mut installed = self.install(vec![(name.to_string(), dir)], None, Vec::new())?;
        Ok(installed.remove(0))
    }

    /// Point-in-time recovery: replaces collection `name` with the full collection
    /// snapshot at `file` (taken from `name` itself) brought forward to `until` by
    /// replaying the operations `name` logged after the snapshot and at or before
    /// `until`. The logs must still be there: kept with
    /// [`StorageOptions::log_retention`](crate::StorageOptions::log_retention) for at least
    /// as long as since the snapshot, on the same history (no recovery or
    /// configuration change of `name` since the snapshot). Everything else is as
    /// [`Database::recover_collection`]: checked first, all or nothing. The recovered
    /// collection starts a new history: its logs from before are gone with the old
    /// directory.
    pub fn recover_collection_until(
        &self,
        name: &str,
        file: &Path,
        checksum: Option<&str>,
        until: std::time::SystemTime,
    ) -> Result<Collection, Error> {
        let live = self.collection(name)?;
        if live.name() != name {
            return Err(Error::NameTaken { name: name.to_string(), what: "an alias" });
        }
        let (kind, dirs, _) = self.unpack(file, checksum)?;
        let dir = match (kind, dirs.values().next()) {
            (SnapshotKind::Collection, Some(dir)) => dir.clone(),
            _ => {
                self.discard(&dirs);
                return Err(Error::Snapshot {
                    name: file.display().to_string(),
                    why: "a database snapshot: a point-in-time recovery starts from a collection snapshot"
                        .into(),
                });
            }
        };
        let tail = crate::store::checkpoint_position(&dir)
            .and_then(|(seq, timeline)| live.history(timeline, seq, crate::store::unix_ms(until)));
        let tail = match tail {
            Ok(tail) => tail,
            Err(e) => {
                self.discard(&dirs);
                return Err(e);
            }
        };
        let mut installed = self.install(vec![(name.to_string(), dir)], None, tail)?;
        Ok(installed.remove(0))
    }

    /// Restores the database snapshot at `file`: every collection in it replaces the
    /// one of the same name (or is created), and its aliases are set; collections
    /// the snapshot does not hold are left alone. All or nothing, as
    /// [`Database::recover_collection`]. Returns the collections restored.
    pub fn restore(&self, file: &Path, checksum: Option<&str>) -> Result<Vec<String>, Error> {
        let (kind, dirs, aliases) = self.unpack(file, checksum)?;
        if kind != SnapshotKind::Database {
            self.discard(&dirs);
            return Err(Error::Snapshot {
                name: file.display().to_string(),
                why: "a collection snapshot; recover it with Database::recover_collection".into(),
            });
        }
        let names: Vec<String> = dirs.keys().cloned().collect();
        self.install(dirs.into_iter().collect(), Some(aliases), Vec::new())?;
        Ok(names)
    }

    fn discard(&self, dirs: &BTreeMap<String, PathBuf>) {
        for dir in dirs.values() {
            let _ = braid_storage::fault::remove_dir_all(dir);
        }
    }

    /// Unpacks a snapshot into fresh collection directories of this database.
    #[allow(clippy::type_complexity)]
    fn unpack(
        &self,
        file: &Path,
        checksum: Option<&str>,
    ) -> Result<(SnapshotKind, BTreeMap<String, PathBuf>, BTreeMap<String, String>), Error> {
        let base = self.path().ok_or(Error::NotOnDisk { what: "restoring a snapshot" })?;
        let (dirs, result) = snapshot::unpack(file, checksum, |_| {
            let mut catalog = self.catalog.write();
            let disk = catalog.disk.as_mut().ok_or(Error::NotOnDisk { what: "restoring a snapshot" })?;
            let dir = base.join(format!("c-{:06}", disk.manifest.next));
            disk.manifest.next += 1;
            std::fs::create_dir(&dir).at(&dir)?;
            Ok(dir)
        });
        match result {
            Ok(u) => Ok((u.kind, u.collections, u.aliases)),
            Err(e) => {
                for dir in dirs {
                    let _ = braid_storage::fault::remove_dir_all(&dir);
                }
                Err(e)
            }
        }
    }

    /// Opens each restored directory as collection `name` and swaps them all in with
    /// one manifest rewrite (with `aliases` added, for a database restore). `tail` is
    /// logged into the one restored collection, to be replayed as it opens (a
    /// point-in-time recovery). Any failure removes the restored directories and
    /// leaves the database as it was.
    fn install(
        &self,
        restored: Vec<(String, PathBuf)>,
        aliases: Option<BTreeMap<String, String>>,
        tail: Vec<braid_storage::wal::Record>,
    ) -> Result<Vec<Collection>, Error> {
        let (lock, options) = {
            let catalog = self.catalog.read();
            let disk = catalog.disk.as_ref().ok_or(Error::NotOnDisk { what: "restoring a snapshot" })?;
            (disk.lock.clone(), disk.options)
        };
        let opened = restored
            .iter()
            .map(|(name, dir)| {
                crate::store::prepare_restored(dir, &tail)?;
                // A restore answers for the data it installs: every file is checked
                // before it returns.
                let options = StorageOptions { verify_after_open_above: u64::MAX, ..options };
                let (store, segment, _) = Store::open(dir, options, lock.clone())?;
                Ok(Collection::from_parts(name, segment, Some(store)))
            })
            .collect::<Result<Vec<Collection>, Error>>();
        let swapped = opened.and_then(|opened| self.swap_in(&restored, opened, aliases));
        if swapped.is_err() {
            for (_, dir) in &restored {
                let _ = braid_storage::fault::remove_dir_all(dir);
            }
        }
        swapped
    }

    fn swap_in(
        &self,
        restored: &[(String, PathBuf)],
        opened: Vec<Collection>,
        aliases: Option<BTreeMap<String, String>>,
    ) -> Result<Vec<Collection>, Error> {
        let (out, old, old_dirs) = self.swap_catalog(restored, opened, aliases)?;
        // As in a delete: outside the catalog lock, since detaching waits for a
        // compaction of the old collection to finish.
        for c in old {
            c.detach();
        }
        for dir in old_dirs {
            // The manifest no longer names it: if this fails, the next open removes it.
            let _ = braid_storage::fault::remove_dir_all(&dir);
        }
        Ok(out)
    }

    #[allow(clippy::type_complexity)]
    fn swap_catalog(
        &self,
        restored: &[(String, PathBuf)],
        opened: Vec<Collection>,
        aliases: Option<BTreeMap<String, String>>,
    ) -> Result<(Vec<Collection>, Vec<Collection>, Vec<PathBuf>), Error> {
        let mut catalog = self.catalog.write();
        let catalog = &mut *catalog;
        let mut new_aliases = catalog.aliases.clone();
        for (alias, target) in aliases.unwrap_or_default() {
            if catalog.collections.contains_key(&alias) || restored.iter().any(|(n, _)| *n == alias) {
                return Err(Error::NameTaken { name: alias, what: "a collection" });
            }
            new_aliases.insert(alias, target);
        }
        for (name, _) in restored {
            if new_aliases.contains_key(name) {
                return Err(Error::NameTaken { name: name.clone(), what: "an alias" });
            }
        }
        let disk = catalog.disk.as_mut().ok_or(Error::NotOnDisk { what: "restoring a snapshot" })?;
        let before = disk.manifest.clone();
        for (name, dir) in restored {
            let sub = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            disk.manifest.collections.insert(name.clone(), sub);
        }
        new_aliases.retain(|_, target| disk.manifest.collections.contains_key(target));
        disk.manifest.aliases = new_aliases.clone();
        if let Err(e) = disk.save() {
            disk.manifest = before;
            return Err(e.into());
        }
        let mut old_dirs = Vec::new();
        for (name, _) in restored {
            if let Some(sub) = before.collections.get(name) {
                old_dirs.push(disk.dir.join(sub));
            }
        }
        let registry = disk.registry.clone();
        let (mut out, mut old) = (Vec::new(), Vec::new());
        for c in opened {
            registry.lock().push(c.downgrade());
            c.set_finder(finder(&self.catalog));
            old.extend(catalog.collections.insert(c.name().to_string(), c.clone()));
            out.push(c);
        }
        catalog.aliases = new_aliases;
        Ok((out, old, old_dirs))
    }

    /// Syncs every collection's log (see [`Collection::sync`]); every collection is
    /// tried, and the first failure is returned. Never waits for a write, checkpoint
    /// or compaction.
    pub fn sync(&self) -> Result<(), Error> {
        let collections: Vec<Collection> = self.catalog.read().collections.values().cloned().collect();
        collections.iter().map(Collection::sync).fold(Ok(()), Result::and)
    }

    /// Background work that failed and has not succeeded since, per collection (see
    /// [`Collection::failures`]); empty when all is well. A server's readiness check.
    pub fn failures(&self) -> BTreeMap<String, BTreeMap<crate::Task, Error>> {
        let collections: Vec<Collection> = self.catalog.read().collections.values().cloned().collect();
        collections
            .iter()
            .map(|c| (c.name().to_string(), c.failures()))
            .filter(|(_, f)| !f.is_empty())
            .collect()
    }

    /// Flushes every collection (see [`Collection::flush`]).
    pub fn flush(&self) -> Result<(), Error> {
        let collections: Vec<Collection> = self.catalog.read().collections.values().cloned().collect();
        collections.iter().try_for_each(Collection::flush)
    }
}
