//! The write-ahead log: one checksummed record per operation, appended in sequence.
//!
//! Layout (little-endian). File header: `"BRAIDWAL" | version u32 | 0u32`. Then records:
//!
//! ```text
//! body_len u32 | seq u64 | header_crc u32 | body_crc u32 | body[body_len]
//! ```
//!
//! `header_crc` is the crc32c of `body_len` and `seq`, so a damaged length is told from
//! a short write; `body_crc` covers the body. Sequence numbers strictly increase.
//!
//! **Recovery** ([`Wal::open`]) keeps every record up to the first one that fails, and
//! decides whether that failure is a *torn tail* — the normal result of a crash during
//! an append — or damage:
//! - torn tail, cut off and truncated away: fewer bytes left than a record header; a
//!   valid header whose body runs past the end of the file; a bad body checksum on the
//!   last record of the file; or nothing but zero bytes from there to the end (a file
//!   extended but never written, as after a power cut);
//! - damage, [`StorageError::Corrupt`] naming the file and offset: anything else (a bad
//!   record with valid records after it), so that no acknowledged record past the
//!   damage is ever dropped silently.
//!
//! **A failed sync poisons the log.** After `fsync` reports an error the kernel may
//! have dropped the unsynced pages, so a later sync that succeeds would vouch for bytes
//! that are gone. The log then refuses every append and sync with
//! [`StorageError::Poisoned`] until it is opened again, which re-reads what the disk
//! really holds. [`Wal::rollback`] cuts a record whose sync failed off the file, so
//! that a write reported as failed is not replayed at the next open.

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::{IoContext, StorageError};
use crate::fault;

/// The first bytes of every log file.
pub const WAL_MAGIC: &[u8; 8] = b"BRAIDWAL";
/// The log format this build writes and reads.
pub const WAL_VERSION: u32 = 1;
/// Bytes before the first record.
pub const FILE_HEADER: u64 = 16;
/// Bytes before each record's body.
pub const RECORD_HEADER: u64 = 20;

/// One logged operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// Its sequence number.
    pub seq: u64,
    /// The operation, encoded by the caller.
    pub body: Vec<u8>,
}

/// What [`Wal::open`] found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recovered {
    /// Every intact record, in order.
    pub records: Vec<Record>,
    /// Bytes of torn tail cut off (0 after a clean shutdown).
    pub torn_bytes: u64,
}

/// An open log, positioned at its end.
#[derive(Debug)]
pub struct Wal {
    file: File,
    path: PathBuf,
    len: u64,
    last_seq: Option<u64>,
    syncer: WalSyncer,
}

/// A handle that syncs a log without owning it: what a background flusher holds, so
/// that syncing never waits for the log's writer. Shares the log's poisoned state.
#[derive(Clone, Debug)]
pub struct WalSyncer {
    inner: Arc<SyncState>,
}

#[derive(Debug)]
struct SyncState {
    /// A second descriptor of the log file (`dup`).
    file: File,
    path: PathBuf,
    poisoned: AtomicBool,
}

impl WalSyncer {
    fn new(file: &File, path: &Path) -> Result<WalSyncer, StorageError> {
        let file = file.try_clone().at(path)?;
        Ok(WalSyncer {
            inner: Arc::new(SyncState { file, path: path.to_path_buf(), poisoned: AtomicBool::new(false) }),
        })
    }

    /// Makes every record appended so far durable (`fdatasync`). A failure poisons the
    /// log (see the module docs).
    pub fn sync(&self) -> Result<(), StorageError> {
        self.check()?;
        let s = &self.inner;
        fault::sync(&s.file, &s.path, true).map_err(|e| {
            s.poisoned.store(true, Ordering::Release);
            StorageError::io(&s.path, &e)
        })
    }

    /// [`StorageError::Poisoned`] once a failed write or sync has made the log refuse
    /// further ones. A sync that succeeded while another failed on the same file
    /// vouches for nothing (the kernel reports a lost write-back to one caller only):
    /// a caller recording the outcome asks this again where it records it.
    pub fn check(&self) -> Result<(), StorageError> {
        if self.is_poisoned() {
            Err(StorageError::Poisoned { file: self.inner.path.clone() })
        } else {
            Ok(())
        }
    }

    /// Has a failed write or sync made the log refuse further ones?
    pub fn is_poisoned(&self) -> bool {
        self.inner.poisoned.load(Ordering::Acquire)
    }

    fn poison(&self) {
        self.inner.poisoned.store(true, Ordering::Release);
    }
}

fn header_crc(len: u32, seq: u64) -> u32 {
    let mut b = [0u8; 12];
    b[..4].copy_from_slice(&len.to_le_bytes());
    b[4..].copy_from_slice(&seq.to_le_bytes());
    crc32c::crc32c(&b)
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// Parses a whole log file: its intact records and the length of the valid prefix.
pub fn scan(path: &Path, bytes: &[u8]) -> Result<(Vec<Record>, u64), StorageError> {
    if bytes.len() < 8 || &bytes[..8] != WAL_MAGIC {
        return Err(StorageError::BadMagic { file: path.to_path_buf(), what: "write-ahead log" });
    }
    if bytes.len() < FILE_HEADER as usize {
        return Err(StorageError::corrupt(path, bytes.len() as u64, "truncated file header"));
    }
    let version = u32_at(bytes, 8);
    if version != WAL_VERSION {
        return Err(StorageError::UnsupportedVersion {
            file: path.to_path_buf(),
            found: version,
            supported: WAL_VERSION,
        });
    }
    if u32_at(bytes, 12) != 0 {
        return Err(StorageError::corrupt(path, 12, "reserved header bytes are not zero"));
    }
    let mut records = Vec::new();
    let mut at = FILE_HEADER as usize;
    let mut last: Option<u64> = None;
    let end = bytes.len();
    let zeros_from = |i: usize| bytes[i..].iter().all(|&b| b == 0);
    while at < end {
        if end - at < RECORD_HEADER as usize {
            break; // a header cut short: torn
        }
        let len = u32_at(bytes, at);
        let seq = u64_at(bytes, at + 4);
        if header_crc(len, seq) != u32_at(bytes, at + 12) {
            if zeros_from(at) {
                break;
            }
            return Err(StorageError::corrupt(path, at as u64, "record header checksum mismatch"));
        }
        let body_start = at + RECORD_HEADER as usize;
        let body_end = body_start + len as usize;
        if body_end > end {
            break; // a body cut short: torn
        }
        let body = &bytes[body_start..body_end];
        if crc32c::crc32c(body) != u32_at(bytes, at + 16) {
            if body_end == end || zeros_from(body_start) {
                break;
            }
            return Err(StorageError::corrupt(path, at as u64, "record body checksum mismatch"));
        }
        if last.is_some_and(|l| seq <= l) {
            return Err(StorageError::corrupt(
                path,
                at as u64,
                format!("sequence number {seq} does not follow {}", last.unwrap_or_default()),
            ));
        }
        last = Some(seq);
        records.push(Record { seq, body: body.to_vec() });
        at = body_end;
    }
    Ok((records, at as u64))
}

impl Wal {
    /// Creates an empty log at `path` (replacing any file there) and syncs it. The
    /// caller syncs the directory before relying on the file's existence.
    pub fn create(path: &Path) -> Result<Wal, StorageError> {
        let mut header = Vec::with_capacity(FILE_HEADER as usize);
        header.extend_from_slice(WAL_MAGIC);
        header.extend_from_slice(&WAL_VERSION.to_le_bytes());
        header.extend_from_slice(&0u32.to_le_bytes());
        crate::document::write_new(path, &header)?;
        let mut file = OpenOptions::new().read(true).write(true).open(path).at(path)?;
        file.seek(SeekFrom::End(0)).at(path)?;
        let syncer = WalSyncer::new(&file, path)?;
        Ok(Wal { file, path: path.to_path_buf(), len: FILE_HEADER, last_seq: None, syncer })
    }

    /// Opens the log at `path`, returns its intact records and cuts a torn tail off the
    /// file (see the module docs), so that new records follow the last good one.
    pub fn open(path: &Path) -> Result<(Wal, Recovered), StorageError> {
        let bytes = std::fs::read(path).at(path)?;
        let (records, valid) = scan(path, &bytes)?;
        let mut file = OpenOptions::new().read(true).write(true).open(path).at(path)?;
        let torn_bytes = bytes.len() as u64 - valid;
        if torn_bytes > 0 {
            file.set_len(valid).at(path)?;
            fault::sync(&file, path, false).at(path)?;
        }
        file.seek(SeekFrom::Start(valid)).at(path)?;
        let last_seq = records.last().map(|r| r.seq);
        let syncer = WalSyncer::new(&file, path)?;
        let wal = Wal { file, path: path.to_path_buf(), len: valid, last_seq, syncer };
        Ok((wal, Recovered { records, torn_bytes }))
    }

    /// Appends one record. Not durable until [`Wal::sync`]. A failed append (a full
    /// disk) is rolled back so that the file still ends at a record boundary.
    pub fn append(&mut self, seq: u64, body: &[u8]) -> Result<(), StorageError> {
        self.syncer.check()?;
        let len = u32::try_from(body.len()).map_err(|_| {
            StorageError::corrupt(
                &self.path,
                self.len,
                format!("a record of {} bytes is too large", body.len()),
            )
        })?;
        if self.last_seq.is_some_and(|l| seq <= l) {
            return Err(StorageError::corrupt(
                &self.path,
                self.len,
                format!("sequence number {seq} does not follow {:?}", self.last_seq),
            ));
        }
        let mut buf = Vec::with_capacity(RECORD_HEADER as usize + body.len());
        buf.extend_from_slice(&len.to_le_bytes());
        buf.extend_from_slice(&seq.to_le_bytes());
        buf.extend_from_slice(&header_crc(len, seq).to_le_bytes());
        buf.extend_from_slice(&crc32c::crc32c(body).to_le_bytes());
        buf.extend_from_slice(body);
        if let Err(e) = fault::write_all(&mut self.file, &buf) {
            let rolled_back =
                self.file.set_len(self.len).and_then(|()| self.file.seek(SeekFrom::Start(self.len)));
            if rolled_back.is_err() {
                self.syncer.poison();
            }
            return Err(StorageError::io(&self.path, &e));
        }
        self.len += buf.len() as u64;
        self.last_seq = Some(seq);
        Ok(())
    }

    /// Makes every appended record durable (`fdatasync`). A failure poisons the log.
    pub fn sync(&mut self) -> Result<(), StorageError> {
        self.syncer.sync()
    }

    /// A handle that syncs this log from elsewhere.
    pub fn syncer(&self) -> WalSyncer {
        self.syncer.clone()
    }

    /// Cuts the file back to `len`, a record boundary this log reached before (its
    /// length before the append being undone), and makes the cut durable. The log
    /// stays poisoned if it was: the cut only keeps a write reported as failed from
    /// being replayed. Fails if the cut cannot be made durable; then nothing can keep
    /// the record from being replayed except the caller refusing to go on.
    pub fn rollback(&mut self, len: u64) -> Result<(), StorageError> {
        if len < FILE_HEADER || len > self.len {
            return Err(StorageError::corrupt(
                &self.path,
                len,
                "a rollback past the log's end or into its header",
            ));
        }
        self.file.set_len(len).at(&self.path)?;
        self.file.seek(SeekFrom::Start(len)).at(&self.path)?;
        self.len = len;
        fault::sync(&self.file, &self.path, false).at(&self.path)
    }

    /// The file's length in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// `true` when the log holds no record.
    pub fn is_empty(&self) -> bool {
        self.len == FILE_HEADER
    }

    /// The last sequence number written.
    pub fn last_seq(&self) -> Option<u64> {
        self.last_seq
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}
