//! The metadata log on disk.
//!
//! `raft-log` is an append-only file of records, each framed as its length (u32, little
//! endian), the CRC-32C of its body and the body (JSON): an entry appended, the log
//! truncated from an index, or purged up to a log id. Opening replays the records. A
//! record cut short by a crash — the file's last record, or one followed only by zero
//! bytes — is cut off; a damaged record with intact data after it is
//! [`crate::ClusterError::Corrupt`], never skipped (Raft's safety rests on a node
//! keeping what it acknowledged). When purges leave most records dead, the file is
//! written anew and renamed over the old one. The vote and the committed log id live
//! in `raft-vote.json`, replaced atomically. Every write is synced before openraft is
//! told it is done.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{LogId, OptionalSend, RaftLogReader, StorageError, StorageIOError, Vote};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::{ClusterError, GroupTypes, PeerId};

const LOG: &str = "raft-log";
const VOTE: &str = "raft-vote.json";

#[derive(Serialize, Deserialize)]
#[serde(bound = "")]
enum Record<C: GroupTypes> {
    Entry(openraft::Entry<C>),
    /// Entries from this index on are gone.
    Truncate(u64),
    /// Entries up to this log id are gone (applied and in a snapshot).
    Purge(LogId<PeerId>),
}

#[derive(Default, Serialize, Deserialize)]
struct VoteFile {
    vote: Option<Vote<PeerId>>,
    committed: Option<LogId<PeerId>>,
}

#[derive(Debug)]
struct Inner<C: GroupTypes> {
    dir: PathBuf,
    file: File,
    entries: BTreeMap<u64, openraft::Entry<C>>,
    last_purged: Option<LogId<PeerId>>,
    vote: Option<Vote<PeerId>>,
    committed: Option<LogId<PeerId>>,
    /// Records in the file, live or not.
    records: usize,
}

/// The log openraft writes through; cloning it gives a reader of the same log.
#[derive(Debug)]
pub struct LogStore<C: GroupTypes> {
    inner: Arc<Mutex<Inner<C>>>,
}

impl<C: GroupTypes> Clone for LogStore<C> {
    fn clone(&self) -> Self {
        LogStore { inner: self.inner.clone() }
    }
}

/// A group's last snapshot as its node keeps it (`raft-snapshot.json` in the group's
/// directory): openraft's metadata and the state machine's bytes.
#[derive(Serialize, Deserialize)]
pub(crate) struct SnapshotFile {
    pub(crate) meta: openraft::SnapshotMeta<PeerId, openraft::BasicNode>,
    pub(crate) data: Vec<u8>,
}

impl SnapshotFile {
    /// The snapshot kept at `path`, if there is one.
    pub(crate) fn read(path: &Path) -> Result<Option<SnapshotFile>, ClusterError> {
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| ClusterError::Corrupt { path: path.to_path_buf(), reason: e.to_string() }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(ClusterError::Io { path: path.to_path_buf(), source: e }),
        }
    }

    /// Keeps this snapshot at `path`, replacing the one there.
    pub(crate) fn write(&self, path: &Path) -> std::io::Result<()> {
        write_atomically(path, &serde_json::to_vec(self).map_err(std::io::Error::other)?)
    }

    /// The snapshot as openraft hands it on.
    pub(crate) fn into_snapshot<C: GroupTypes>(self) -> openraft::Snapshot<C> {
        openraft::Snapshot { meta: self.meta, snapshot: Box::new(std::io::Cursor::new(self.data)) }
    }
}

/// Writes `bytes` to `path` through a temporary file renamed over it, synced (file and
/// directory) before it returns.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut file = File::create(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)?;
    sync_dir(path)
}

fn sync_dir(path: &Path) -> std::io::Result<()> {
    match path.parent() {
        Some(dir) => File::open(dir)?.sync_all(),
        None => Ok(()),
    }
}

fn frame<C: GroupTypes>(record: &Record<C>) -> Vec<u8> {
    let body = serde_json::to_vec(record).expect("log records are plain data");
    let mut out = Vec::with_capacity(body.len() + 8);
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32c::crc32c(&body).to_le_bytes());
    out.extend_from_slice(&body);
    out
}

/// How far past a damaged record [`read_records`] looks for an intact one.
const LOOK_PAST_DAMAGE: usize = 1 << 20;

/// Whether an intact record (a JSON body under its checksum) starts in the first
/// [`LOOK_PAST_DAMAGE`] bytes of `bytes`.
fn intact_record_within(bytes: &[u8]) -> bool {
    (0..bytes.len().min(LOOK_PAST_DAMAGE)).any(|at| {
        let rest = &bytes[at..];
        if rest.len() < 9 || !matches!(rest[8], b'{' | b'"') {
            return false;
        }
        let len = u32::from_le_bytes(rest[0..4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(rest[4..8].try_into().expect("4 bytes"));
        rest.get(8..8 + len).is_some_and(|body| crc32c::crc32c(body) == crc)
    })
}

/// The records of a log file, and the length of its intact prefix.
fn read_records<C: GroupTypes>(path: &Path, bytes: &[u8]) -> Result<(Vec<Record<C>>, usize), ClusterError> {
    let mut records = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let rest = &bytes[at..];
        let body = (rest.len() >= 8)
            .then(|| {
                let len = u32::from_le_bytes(rest[0..4].try_into().expect("4 bytes")) as usize;
                let crc = u32::from_le_bytes(rest[4..8].try_into().expect("4 bytes"));
                rest.get(8..8 + len).filter(|body| crc32c::crc32c(body) == crc)
            })
            .flatten();
        let record =
            body.and_then(|body| serde_json::from_slice::<Record<C>>(body).ok().map(|r| (r, body.len())));
        match record {
            Some((record, len)) => {
                records.push(record);
                at += 8 + len;
            }
            None => {
                // A torn tail: the frame reaches the end, or only zeros follow — and no
                // intact record follows (a damaged length would otherwise pass for a
                // frame running past the end and hide the records after it).
                let len =
                    (rest.len() >= 4).then(|| u32::from_le_bytes(rest[0..4].try_into().expect("4 bytes")));
                let past_end = len.is_none_or(|len| 8 + len as usize >= rest.len());
                if (past_end || rest.iter().all(|&b| b == 0)) && !intact_record_within(&rest[1..]) {
                    break;
                }
                return Err(ClusterError::Corrupt {
                    path: path.to_path_buf(),
                    reason: format!("record at byte {at} is damaged and intact records follow it"),
                });
            }
        }
    }
    Ok((records, at))
}

impl<C: GroupTypes> LogStore<C> {
    /// Opens the log in `dir` (made if missing), replaying its records and cutting off
    /// a torn last record.
    pub fn open(dir: &Path) -> Result<LogStore<C>, ClusterError> {
        std::fs::create_dir_all(dir).map_err(ClusterError::io(dir))?;
        let path = dir.join(LOG);
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)
            .map_err(ClusterError::io(&path))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(ClusterError::io(&path))?;
        let (records, intact) = read_records(&path, &bytes)?;
        if intact < bytes.len() {
            tracing::warn!(path = %path.display(), cut = bytes.len() - intact, "cutting off a torn log record");
            file.set_len(intact as u64).map_err(ClusterError::io(&path))?;
            file.sync_all().map_err(ClusterError::io(&path))?;
        }
        let mut inner = Inner {
            dir: dir.to_path_buf(),
            file,
            entries: BTreeMap::new(),
            last_purged: None,
            vote: None,
            committed: None,
            records: records.len(),
        };
        for record in records {
            inner.replay(record);
        }
        let vote_path = dir.join(VOTE);
        match std::fs::read(&vote_path) {
            Ok(bytes) => {
                let v: VoteFile = serde_json::from_slice(&bytes)
                    .map_err(|e| ClusterError::Corrupt { path: vote_path.clone(), reason: e.to_string() })?;
                (inner.vote, inner.committed) = (v.vote, v.committed);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(ClusterError::Io { path: vote_path, source: e }),
        }
        Ok(LogStore { inner: Arc::new(Mutex::new(inner)) })
    }

    /// The last membership the log holds (`None`: no membership entry since the last
    /// purge; the snapshot has it then).
    pub fn last_membership(&self) -> Option<openraft::Membership<PeerId, openraft::BasicNode>> {
        self.inner.lock().entries.values().rev().find_map(|e| match &e.payload {
            openraft::EntryPayload::Membership(m) => Some(m.clone()),
            _ => None,
        })
    }

    /// How many entries the log holds (after purges).
    pub fn len(&self) -> usize {
        self.inner.lock().entries.len()
    }

    /// Whether the log holds no entries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<C: GroupTypes> Inner<C> {
    fn replay(&mut self, record: Record<C>) {
        match record {
            Record::Entry(entry) => {
                self.entries.insert(entry.log_id.index, entry);
            }
            Record::Truncate(from) => {
                self.entries.split_off(&from);
            }
            Record::Purge(upto) => {
                self.entries = self.entries.split_off(&(upto.index + 1));
                self.last_purged = Some(upto);
            }
        }
    }

    fn write(&mut self, bytes: &[u8], records: usize) -> std::io::Result<()> {
        self.file.write_all(bytes)?;
        self.file.sync_data()?;
        self.records += records;
        Ok(())
    }

    fn save_vote_file(&self) -> std::io::Result<()> {
        let file = VoteFile { vote: self.vote, committed: self.committed };
        write_atomically(&self.dir.join(VOTE), &serde_json::to_vec(&file).expect("plain data"))
    }

    /// Writes the live records into a new file renamed over the log.
    fn rewrite(&mut self) -> std::io::Result<()> {
        let mut bytes = Vec::new();
        let mut records = 0;
        if let Some(purged) = self.last_purged {
            bytes.extend(frame(&Record::<C>::Purge(purged)));
            records += 1;
        }
        for entry in self.entries.values() {
            bytes.extend(frame(&Record::Entry(entry.clone())));
            records += 1;
        }
        let path = self.dir.join(LOG);
        write_atomically(&path, &bytes)?;
        self.file = OpenOptions::new().append(true).open(&path)?;
        self.records = records;
        Ok(())
    }
}

impl<C: GroupTypes> RaftLogReader<C> for LogStore<C> {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<openraft::Entry<C>>, StorageError<PeerId>> {
        Ok(self.inner.lock().entries.range(range).map(|(_, e)| e.clone()).collect())
    }
}

impl<C: GroupTypes> RaftLogStorage<C> for LogStore<C> {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<C>, StorageError<PeerId>> {
        let inner = self.inner.lock();
        let last = inner.entries.values().next_back().map(|e| e.log_id).or(inner.last_purged);
        Ok(LogState { last_purged_log_id: inner.last_purged, last_log_id: last })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<PeerId>) -> Result<(), StorageError<PeerId>> {
        let mut inner = self.inner.lock();
        inner.vote = Some(*vote);
        inner.save_vote_file().map_err(|e| StorageIOError::write_vote(&e).into())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<PeerId>>, StorageError<PeerId>> {
        Ok(self.inner.lock().vote)
    }

    async fn save_committed(&mut self, committed: Option<LogId<PeerId>>) -> Result<(), StorageError<PeerId>> {
        let mut inner = self.inner.lock();
        if inner.committed == committed {
            return Ok(());
        }
        inner.committed = committed;
        inner.save_vote_file().map_err(|e| StorageIOError::write(&e).into())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<PeerId>>, StorageError<PeerId>> {
        Ok(self.inner.lock().committed)
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<C>) -> Result<(), StorageError<PeerId>>
    where
        I: IntoIterator<Item = openraft::Entry<C>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<openraft::Entry<C>> = entries.into_iter().collect();
        let mut bytes = Vec::new();
        for entry in &entries {
            bytes.extend(frame(&Record::<C>::Entry(entry.clone())));
        }
        let mut inner = self.inner.lock();
        let written = inner.write(&bytes, entries.len());
        if written.is_ok() {
            for entry in entries {
                inner.entries.insert(entry.log_id.index, entry);
            }
        }
        drop(inner);
        let failed = written.as_ref().err().map(|e| std::io::Error::new(e.kind(), e.to_string()));
        callback.log_io_completed(written);
        match failed {
            Some(e) => Err(StorageIOError::write_logs(&e).into()),
            None => Ok(()),
        }
    }

    async fn truncate(&mut self, log_id: LogId<PeerId>) -> Result<(), StorageError<PeerId>> {
        let mut inner = self.inner.lock();
        inner
            .write(&frame(&Record::<C>::Truncate(log_id.index)), 1)
            .map_err(|e| StorageIOError::write_logs(&e))?;
        inner.entries.split_off(&log_id.index);
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId<PeerId>) -> Result<(), StorageError<PeerId>> {
        let mut inner = self.inner.lock();
        inner.write(&frame(&Record::<C>::Purge(log_id)), 1).map_err(|e| StorageIOError::write_logs(&e))?;
        inner.replay(Record::Purge(log_id));
        if inner.records > 2 * inner.entries.len() + 64 {
            inner.rewrite().map_err(|e| StorageIOError::write_logs(&e))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use openraft::{CommittedLeaderId, EntryPayload};

    use super::*;
    use crate::{Entry, MetaCommand, TypeConfig};

    type LogStore = super::LogStore<TypeConfig>;

    fn entry(term: u64, index: u64) -> Entry {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(term, 1), index),
            payload: EntryPayload::Normal(MetaCommand::DeleteCollection { name: format!("c{index}") }),
        }
    }

    fn put(store: &LogStore, entries: &[Entry]) {
        let mut inner = store.inner.lock();
        let bytes: Vec<u8> =
            entries.iter().flat_map(|e| frame(&Record::<TypeConfig>::Entry(e.clone()))).collect();
        inner.write(&bytes, entries.len()).unwrap();
        for e in entries {
            inner.entries.insert(e.log_id.index, e.clone());
        }
    }

    fn indexes(store: &LogStore) -> Vec<u64> {
        store.inner.lock().entries.keys().copied().collect()
    }

    #[tokio::test]
    async fn truncations_and_purges_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = LogStore::open(dir.path()).unwrap();
        put(&store, &(1..=10).map(|i| entry(1, i)).collect::<Vec<_>>());
        store.truncate(LogId::new(CommittedLeaderId::new(1, 1), 8)).await.unwrap();
        put(&store, &[entry(2, 8)]);
        store.purge(LogId::new(CommittedLeaderId::new(1, 1), 3)).await.unwrap();
        store.save_vote(&Vote::new(2, 1)).await.unwrap();
        drop(store);
        let mut store = LogStore::open(dir.path()).unwrap();
        assert_eq!(indexes(&store), vec![4, 5, 6, 7, 8]);
        let state = store.get_log_state().await.unwrap();
        assert_eq!(state.last_purged_log_id.map(|l| l.index), Some(3));
        assert_eq!(state.last_log_id.map(|l| (l.leader_id.term, l.index)), Some((2, 8)));
        assert_eq!(store.read_vote().await.unwrap(), Some(Vote::new(2, 1)));
    }

    #[test]
    fn a_torn_last_record_is_cut_off_and_damage_before_intact_records_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = LogStore::open(dir.path()).unwrap();
        put(&store, &(1..=3).map(|i| entry(1, i)).collect::<Vec<_>>());
        drop(store);
        let path = dir.path().join(LOG);
        let whole = std::fs::read(&path).unwrap();
        // A crash halfway through the last record's write.
        std::fs::write(&path, &whole[..whole.len() - 5]).unwrap();
        let store = LogStore::open(dir.path()).unwrap();
        assert_eq!(indexes(&store), vec![1, 2]);
        put(&store, &[entry(1, 3)]);
        drop(store);
        assert_eq!(indexes(&LogStore::open(dir.path()).unwrap()), vec![1, 2, 3], "appends go after the cut");
        // Zeros after the last record (a file extended but not written) are a torn tail too.
        let mut padded = std::fs::read(&path).unwrap();
        padded.extend([0u8; 100]);
        std::fs::write(&path, &padded).unwrap();
        assert_eq!(indexes(&LogStore::open(dir.path()).unwrap()), vec![1, 2, 3]);
        // A flipped byte in the first record, with two intact ones after it.
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[12] ^= 0x40;
        std::fs::write(&path, &bytes).unwrap();
        let err = LogStore::open(dir.path()).unwrap_err();
        assert!(matches!(err, ClusterError::Corrupt { .. }), "{err}");
    }

    #[tokio::test]
    async fn purges_rewrite_the_file_once_most_records_are_dead() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = LogStore::open(dir.path()).unwrap();
        put(&store, &(1..=200).map(|i| entry(1, i)).collect::<Vec<_>>());
        let before = std::fs::metadata(dir.path().join(LOG)).unwrap().len();
        store.purge(LogId::new(CommittedLeaderId::new(1, 1), 190)).await.unwrap();
        let after = std::fs::metadata(dir.path().join(LOG)).unwrap().len();
        assert!(after < before / 5, "{after} bytes after the purge, {before} before");
        put(&store, &[entry(1, 201)]);
        drop(store);
        let store = LogStore::open(dir.path()).unwrap();
        assert_eq!(indexes(&store), (191..=201).collect::<Vec<_>>());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

        /// Any damage to a log — a cut anywhere, a flipped byte anywhere — opens as a
        /// prefix of what was written (a torn tail cut off) or fails as `Corrupt`;
        /// never a panic, never entries that were not written.
        #[test]
        fn damaged_logs_open_as_a_prefix_or_fail_typed(
            n in 1u64..12,
            cut in proptest::prelude::any::<proptest::sample::Index>(),
            flip in proptest::prelude::any::<Option<(proptest::sample::Index, u8)>>(),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let written: Vec<Entry> = (1..=n).map(|i| entry(1, i)).collect();
            put(&LogStore::open(dir.path()).unwrap(), &written);
            let path = dir.path().join(LOG);
            let mut bytes = std::fs::read(&path).unwrap();
            // Where each record ends.
            let mut ends = Vec::new();
            let mut at = 0;
            while at < bytes.len() {
                at += 8 + u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
                ends.push(at);
            }
            bytes.truncate(cut.index(bytes.len() + 1));
            let whole = ends.iter().filter(|&&end| end <= bytes.len()).count();
            let mut damaged = None;
            if let (Some((at, mask)), false) = (flip, bytes.is_empty()) {
                let at = at.index(bytes.len());
                bytes[at] ^= mask.max(1);
                damaged = Some(ends.iter().position(|&end| at < end).unwrap());
            }
            std::fs::write(&path, &bytes).unwrap();
            match LogStore::open(dir.path()) {
                Ok(store) => {
                    let read: Vec<u64> = indexes(&store);
                    proptest::prop_assert_eq!(&read, &(1..=read.len() as u64).collect::<Vec<_>>());
                    // Every whole record before any damage is read…
                    proptest::prop_assert!(read.len() >= damaged.unwrap_or(whole).min(whole));
                    // …and damage with a whole record after it is never taken for a torn tail.
                    proptest::prop_assert!(
                        damaged.is_none_or(|r| r + 1 >= whole),
                        "damage in record {:?} of {} hid the records after it",
                        damaged,
                        whole
                    );
                    let inner = store.inner.lock();
                    for (i, e) in inner.entries.values().enumerate() {
                        proptest::prop_assert_eq!(format!("{e:?}"), format!("{:?}", written[i]));
                    }
                }
                Err(e) => proptest::prop_assert!(matches!(e, ClusterError::Corrupt { .. }), "{}", e),
            }
        }
    }
}
