//! Snapshots: one file holding the checkpoint files of one collection or of every
//! collection of a database, with a manifest of checksums (`docs/operations.md`).
//!
//! A snapshot is a POSIX tar archive:
//!
//! ```text
//! c/<collection>/<file>   each checkpoint file (MANIFEST, vectors, graphs, points),
//!                         vector files cut at the rows the checkpoint holds
//! snapshot.json           last: format, kind, creation time, every file's length and
//!                         CRC-32C per collection, and (database snapshots) the aliases
//! ```
//!
//! The manifest comes last so that a snapshot is written and read in one pass; a
//! file cut short anywhere lacks it (or ends inside an entry) and is refused. Restoring
//! checks every entry against the manifest, and the collection files themselves
//! (their own checksums) when the restored collection is opened, before anything
//! existing is replaced. Beside each snapshot, `<name>.checksum` holds the SHA-256 of
//! the whole file, as Qdrant reports it.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use braid_storage::IoContext;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::Error;

/// The extension of snapshot files.
pub const EXTENSION: &str = "snapshot";
const CHECKSUM_EXTENSION: &str = "checksum";
const MANIFEST_ENTRY: &str = "snapshot.json";
const FORMAT: &str = "braid-snapshot";
const VERSION: u32 = 1;

/// A snapshot file, as listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotDescription {
    /// Its file name (`<collection>-<UTC time>.snapshot`, `full-snapshot-<UTC time>.snapshot`).
    pub name: String,
    /// When it was written (the file's modification time when listed).
    pub created: SystemTime,
    /// Its size in bytes.
    pub size: u64,
    /// SHA-256 of the whole file, in lower-case hex (`None` if its `.checksum` file
    /// is missing).
    pub checksum: Option<String>,
}

/// What a snapshot holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SnapshotKind {
    /// One collection.
    Collection,
    /// Every collection of a database, and its aliases.
    Database,
}

#[derive(Debug, Serialize, Deserialize)]
struct Manifest {
    format: String,
    version: u32,
    kind: SnapshotKind,
    /// RFC 3339, UTC.
    created: String,
    collections: BTreeMap<String, Vec<FileEntry>>,
    #[serde(default)]
    aliases: BTreeMap<String, String>,
    /// An incremental snapshot's base: a full snapshot in the same directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    base: Option<BaseRef>,
}

/// The snapshot an incremental one builds on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct BaseRef {
    /// Its file name, in the incremental snapshot's directory.
    name: String,
    /// Its SHA-256: a base that changed is refused.
    sha256: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct FileEntry {
    name: String,
    /// The whole file's length and CRC-32C.
    bytes: u64,
    crc32c: u32,
    /// In an incremental snapshot: the first `from_base` bytes are the base's file of
    /// the same name (a vector file the checkpoint appended to, or one unchanged); the
    /// archive entry holds the rest, whose CRC-32C is `stored_crc32c`.
    #[serde(default, skip_serializing_if = "is_zero")]
    from_base: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    stored_crc32c: Option<u32>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl FileEntry {
    /// The length and CRC-32C of what the archive entry holds.
    fn stored(&self) -> (u64, u32) {
        if self.from_base == 0 {
            (self.bytes, self.crc32c)
        } else {
            (self.bytes - self.from_base, self.stored_crc32c.unwrap_or(0))
        }
    }
}

/// One collection's checkpoint files, linked into a staging directory.
#[derive(Debug)]
pub(crate) struct Staged {
    pub name: String,
    pub dir: PathBuf,
    pub files: Vec<(String, u64)>,
}

/// Counts and hashes what passes through.
struct Hashing<W> {
    inner: W,
    sha: Sha256,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.sha.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.sha.update(&buf[..n]);
        Ok(n)
    }
}

/// CRC-32C and length of what passes through.
struct Crc<R> {
    inner: R,
    crc: u32,
    len: u64,
}

impl<R: Read> Read for Crc<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.crc = crc32c::crc32c_append(self.crc, &buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `2026-11-30-19-47-26`: the UTC time in a snapshot's name.
fn stamp(at: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(at).format("%Y-%m-%d-%H-%M-%S").to_string()
}

/// A name `<prefix>-<UTC time>.snapshot` not taken in `dir`.
pub(crate) fn fresh_name(dir: &Path, prefix: &str) -> String {
    let base = format!("{prefix}-{}", stamp(SystemTime::now()));
    let mut name = format!("{base}.{EXTENSION}");
    let mut n = 1;
    while dir.join(&name).exists() {
        n += 1;
        name = format!("{base}-{n}.{EXTENSION}");
    }
    name
}

/// Is `name` a snapshot file name (no path, the extension)? Anything else is refused
/// before it reaches the file system.
pub fn valid_name(name: &str) -> bool {
    !name.starts_with('.')
        && !name.contains(['/', '\\', '\0'])
        && name.len() <= 255
        && name.strip_suffix(EXTENSION).is_some_and(|stem| stem.ends_with('.') && stem.len() > 1)
}

fn sidecar(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{CHECKSUM_EXTENSION}"));
    path.with_file_name(name)
}

/// Writes the staged collections as snapshot `<dir>/<name>` (through a temporary file,
/// synced, then renamed, so a snapshot listed is whole) and its `.checksum` beside it.
pub(crate) fn write(
    dir: &Path,
    name: &str,
    kind: SnapshotKind,
    staged: &[Staged],
    aliases: BTreeMap<String, String>,
    base: Option<&str>,
) -> Result<SnapshotDescription, Error> {
    std::fs::create_dir_all(dir).at(dir)?;
    let base = match base {
        None => None,
        Some(b) => Some(read_base(dir, b, kind)?),
    };
    let path = dir.join(name);
    let tmp = dir.join(format!(".{name}.tmp"));
    let result = write_archive(&tmp, kind, staged, aliases, base.as_ref());
    let sha = match result {
        Ok(sha) => sha,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
    };
    std::fs::rename(&tmp, &path).at(&path)?;
    braid_storage::document::replace(&sidecar(&path), sha.as_bytes())?;
    describe(&path)
}

/// A base snapshot as an incremental one uses it: its reference and manifest.
struct Base {
    reference: BaseRef,
    manifest: Manifest,
}

/// Reads base snapshot `name` of `dir` for an incremental snapshot of `kind`: a full
/// (not itself incremental) snapshot of the same kind.
fn read_base(dir: &Path, name: &str, kind: SnapshotKind) -> Result<Base, Error> {
    let refuse = |why: String| Error::Snapshot { name: name.to_string(), why };
    if !valid_name(name) {
        return Err(refuse("not a snapshot name".into()));
    }
    let path = dir.join(name);
    if !path.is_file() {
        return Err(refuse(format!("no such snapshot in {}", dir.display())));
    }
    let manifest = read_manifest(&path)?;
    if manifest.base.is_some() {
        return Err(refuse("an incremental snapshot; an incremental snapshot builds on a full one".into()));
    }
    if manifest.kind != kind {
        return Err(refuse(format!("a {:?} snapshot; this one is a {kind:?} snapshot", manifest.kind)));
    }
    let sha256 = match std::fs::read_to_string(sidecar(&path)) {
        Ok(s) => s.trim().to_string(),
        Err(_) => sha256_of(&path)?,
    };
    Ok(Base { reference: BaseRef { name: name.to_string(), sha256 }, manifest })
}

/// The manifest of the snapshot at `path`, read by seeking from entry header to
/// entry header (a snapshot's data is not read).
fn read_manifest(path: &Path) -> Result<Manifest, Error> {
    let label = path.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let refuse = |why: String| Error::Snapshot { name: label.clone(), why };
    let file = std::fs::File::open(path).at(path)?;
    let mut archive = tar::Archive::new(file);
    let entries = archive.entries_with_seek().map_err(|e| refuse(format!("not a snapshot archive: {e}")))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| refuse(format!("damaged or truncated: {e}")))?;
        let is_manifest = entry.path().is_ok_and(|p| p.as_os_str() == MANIFEST_ENTRY);
        if is_manifest {
            let mut body = Vec::new();
            (&mut entry)
                .take(16 << 20)
                .read_to_end(&mut body)
                .map_err(|e| refuse(format!("manifest: {e}")))?;
            let m: Manifest = serde_json::from_slice(&body).map_err(|e| refuse(format!("manifest: {e}")))?;
            if m.format != FORMAT || m.version != VERSION {
                return Err(refuse(format!("format {} version {}", m.format, m.version)));
            }
            return Ok(m);
        }
    }
    Err(refuse("no manifest: the file is truncated or not a Braid snapshot".into()))
}

/// CRC-32C of the first `bytes` bytes of `path` (`None` if it is shorter).
fn prefix_crc(path: &Path, bytes: u64) -> Result<Option<u32>, Error> {
    let file = std::fs::File::open(path).at(path)?;
    let mut crc = Crc { inner: std::io::BufReader::with_capacity(1 << 20, file).take(bytes), crc: 0, len: 0 };
    std::io::copy(&mut crc, &mut std::io::sink()).at(path)?;
    Ok((crc.len == bytes).then_some(crc.crc))
}

fn write_archive(
    tmp: &Path,
    kind: SnapshotKind,
    staged: &[Staged],
    aliases: BTreeMap<String, String>,
    base: Option<&Base>,
) -> Result<String, Error> {
    let file = std::fs::File::create(tmp).at(tmp)?;
    let out = Hashing { inner: std::io::BufWriter::with_capacity(1 << 20, file), sha: Sha256::new() };
    let mut tar = tar::Builder::new(out);
    let mut collections = BTreeMap::new();
    for s in staged {
        let mut entries = Vec::new();
        for (file, bytes) in &s.files {
            let from = s.dir.join(file);
            // What the base holds of this file: for a vector file (which only grows
            // between compactions), a prefix with the same CRC-32C. Other files are
            // stored whole: they end in their own CRC, so every one of a length has the
            // same whole-file CRC-32C, which cannot tell them apart.
            let in_base = base
                .filter(|_| file.ends_with(".vec"))
                .and_then(|b| b.manifest.collections.get(&s.name))
                .and_then(|files| files.iter().find(|f| f.name == *file && f.bytes <= *bytes));
            let from_base = match in_base {
                Some(f) if prefix_crc(&from, f.bytes)? == Some(f.crc32c) => f.bytes,
                _ => 0,
            };
            let mut reader = std::fs::File::open(&from).at(&from)?;
            // The whole file's CRC: the base's prefix, then what is stored.
            let prefix = in_base.filter(|_| from_base > 0).map_or(0, |f| f.crc32c);
            std::io::Seek::seek(&mut reader, std::io::SeekFrom::Start(from_base)).at(&from)?;
            let stored = bytes - from_base;
            let mut crc = Crc { inner: reader.take(stored), crc: 0, len: 0 };
            let mut header = tar::Header::new_ustar();
            header.set_size(stored);
            header.set_mode(0o644);
            header.set_entry_type(tar::EntryType::Regular);
            tar.append_data(&mut header, format!("c/{}/{file}", s.name), &mut crc).at(tmp)?;
            if crc.len != stored {
                return Err(Error::Internal {
                    what: format!(
                        "{} holds {} bytes, the checkpoint {bytes}",
                        from.display(),
                        crc.len + from_base
                    ),
                });
            }
            let entry = if from_base == 0 {
                FileEntry {
                    name: file.clone(),
                    bytes: *bytes,
                    crc32c: crc.crc,
                    from_base: 0,
                    stored_crc32c: None,
                }
            } else {
                FileEntry {
                    name: file.clone(),
                    bytes: *bytes,
                    crc32c: crc32c::crc32c_combine(prefix, crc.crc, stored as usize),
                    from_base,
                    stored_crc32c: Some(crc.crc),
                }
            };
            entries.push(entry);
        }
        collections.insert(s.name.clone(), entries);
    }
    let created = chrono::DateTime::<chrono::Utc>::from(SystemTime::now()).to_rfc3339();
    let base = base.map(|b| b.reference.clone());
    let manifest =
        Manifest { format: FORMAT.into(), version: VERSION, kind, created, collections, aliases, base };
    let body = serde_json::to_vec_pretty(&manifest)
        .map_err(|e| Error::Internal { what: format!("snapshot manifest: {e}") })?;
    let mut header = tar::Header::new_ustar();
    header.set_size(body.len() as u64);
    header.set_mode(0o644);
    tar.append_data(&mut header, MANIFEST_ENTRY, body.as_slice()).at(tmp)?;
    let mut out = tar.into_inner().at(tmp)?;
    out.flush().at(tmp)?;
    let sha = hex(&out.sha.finalize());
    let file = out.inner.into_inner().map_err(|e| e.into_error()).at(tmp)?;
    file.sync_all().at(tmp)?;
    Ok(sha)
}

/// The description of the snapshot at `path`.
pub fn describe(path: &Path) -> Result<SnapshotDescription, Error> {
    let md = std::fs::metadata(path).at(path)?;
    let checksum = std::fs::read_to_string(sidecar(path)).ok().map(|s| s.trim().to_string());
    Ok(SnapshotDescription {
        name: path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
        created: md.modified().unwrap_or(SystemTime::UNIX_EPOCH),
        size: md.len(),
        checksum,
    })
}

/// The snapshots in `dir`, oldest first (none if it does not exist).
pub fn list(dir: &Path) -> Result<Vec<SnapshotDescription>, Error> {
    let entries = match std::fs::read_dir(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        other => other.at(dir)?,
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.at(dir)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if valid_name(&name) && entry.file_type().at(dir)?.is_file() {
            out.push(describe(&entry.path())?);
        }
    }
    out.sort_by(|a, b| (a.created, &a.name).cmp(&(b.created, &b.name)));
    Ok(out)
}

/// Deletes snapshot `name` of `dir` and its checksum; `Ok(false)` if there is none.
pub fn delete(dir: &Path, name: &str) -> Result<bool, Error> {
    if !valid_name(name) {
        return Ok(false);
    }
    let path = dir.join(name);
    match std::fs::remove_file(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        other => other.at(&path)?,
    }
    let _ = std::fs::remove_file(sidecar(&path));
    Ok(true)
}

/// The SHA-256 of the file at `path`, in lower-case hex.
pub fn sha256_of(path: &Path) -> Result<String, Error> {
    let file = std::fs::File::open(path).at(path)?;
    let mut hashing = Hashing { inner: std::io::BufReader::with_capacity(1 << 20, file), sha: Sha256::new() };
    std::io::copy(&mut hashing, &mut std::io::sink()).at(path)?;
    Ok(hex(&hashing.sha.finalize()))
}

/// A snapshot's contents, each collection's files written into its staging directory
/// and checked against the manifest.
#[derive(Debug)]
pub(crate) struct Unpacked {
    pub kind: SnapshotKind,
    pub collections: BTreeMap<String, PathBuf>,
    pub aliases: BTreeMap<String, String>,
}

/// Reads snapshot `path`, writing each collection's files into the directory `stage`
/// gives for it. Every entry is checked against the manifest (length, CRC-32C, no file
/// missing or extra) and, when `checksum` is given, the whole file against it. On an
/// error, the directories staged so far are returned beside it for the caller to
/// remove.
pub(crate) fn unpack(
    path: &Path,
    checksum: Option<&str>,
    mut stage: impl FnMut(&str) -> Result<PathBuf, Error>,
) -> (Vec<PathBuf>, Result<Unpacked, Error>) {
    let mut staged: BTreeMap<String, PathBuf> = BTreeMap::new();
    let result = unpack_into(path, checksum, &mut staged, &mut stage);
    let dirs = staged.values().cloned().collect();
    (dirs, result.map(|(kind, aliases)| Unpacked { kind, collections: staged, aliases }))
}

fn unpack_into(
    path: &Path,
    checksum: Option<&str>,
    staged: &mut BTreeMap<String, PathBuf>,
    stage: &mut impl FnMut(&str) -> Result<PathBuf, Error>,
) -> Result<(SnapshotKind, BTreeMap<String, String>), Error> {
    let label =
        path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned());
    let refuse = |why: String| Error::Snapshot { name: label.clone(), why };
    let file = std::fs::File::open(path).at(path)?;
    let mut hashing = Hashing { inner: std::io::BufReader::with_capacity(1 << 20, file), sha: Sha256::new() };
    let mut seen: BTreeMap<(String, String), (u64, u32)> = BTreeMap::new();
    let mut manifest: Option<Manifest> = None;
    {
        let mut archive = tar::Archive::new(&mut hashing);
        let entries = archive.entries().map_err(|e| refuse(format!("not a snapshot archive: {e}")))?;
        for entry in entries {
            let mut entry = entry.map_err(|e| refuse(format!("damaged or truncated: {e}")))?;
            if manifest.is_some() {
                return Err(refuse("an entry after the manifest".into()));
            }
            let entry_path = entry.path().map_err(|e| refuse(format!("bad entry name: {e}")))?.into_owned();
            let parts: Vec<&str> = entry_path.iter().filter_map(|p| p.to_str()).collect();
            if !entry.header().entry_type().is_file() {
                return Err(refuse(format!("`{}` is not a plain file", entry_path.display())));
            }
            match parts.as_slice() {
                [MANIFEST_ENTRY] => {
                    let mut body = Vec::new();
                    (&mut entry)
                        .take(16 << 20)
                        .read_to_end(&mut body)
                        .map_err(|e| refuse(format!("manifest: {e}")))?;
                    let m: Manifest =
                        serde_json::from_slice(&body).map_err(|e| refuse(format!("manifest: {e}")))?;
                    if m.format != FORMAT || m.version != VERSION {
                        return Err(refuse(format!(
                            "format {} version {}; this Braid reads {FORMAT} {VERSION}",
                            m.format, m.version
                        )));
                    }
                    manifest = Some(m);
                }
                ["c", collection, file]
                    if crate::database::valid_name(collection)
                        && !file.starts_with('.')
                        && !file.is_empty() =>
                {
                    let dir = match staged.get(*collection) {
                        Some(dir) => dir.clone(),
                        None => {
                            let dir = stage(collection)?;
                            staged.insert(collection.to_string(), dir.clone());
                            dir
                        }
                    };
                    let to = dir.join(file);
                    if to.exists() {
                        return Err(refuse(format!("`{}` twice", entry_path.display())));
                    }
                    let mut out = std::fs::File::create(&to).at(&to)?;
                    let mut crc = Crc { inner: &mut entry, crc: 0, len: 0 };
                    std::io::copy(&mut crc, &mut out).map_err(|e| {
                        refuse(format!("damaged or truncated in `{}`: {e}", entry_path.display()))
                    })?;
                    out.sync_all().at(&to)?;
                    seen.insert((collection.to_string(), file.to_string()), (crc.len, crc.crc));
                }
                _ => return Err(refuse(format!("unexpected entry `{}`", entry_path.display()))),
            }
        }
    }
    // The rest of the file (the archive's end blocks), for the whole-file checksum.
    std::io::copy(&mut hashing, &mut std::io::sink()).at(path)?;
    let manifest = manifest
        .ok_or_else(|| refuse("no manifest: the file is truncated or not a Braid snapshot".into()))?;
    if let Some(expected) = checksum {
        let got = hex(&hashing.sha.finalize());
        if !got.eq_ignore_ascii_case(expected.trim()) {
            return Err(refuse(format!("SHA-256 {got} does not match the checksum given ({expected})")));
        }
    }
    for (collection, files) in &manifest.collections {
        for f in files {
            match seen.remove(&(collection.clone(), f.name.clone())) {
                Some(stored) if stored == f.stored() => {}
                Some(_) => {
                    return Err(refuse(format!("`{collection}/{}` does not match its checksum", f.name)));
                }
                None => return Err(refuse(format!("`{collection}/{}` is missing", f.name))),
            }
        }
        if !staged.contains_key(collection) {
            return Err(refuse(format!("collection `{collection}` has no files")));
        }
    }
    if let Some(((collection, file), _)) = seen.into_iter().next() {
        return Err(refuse(format!("`{collection}/{file}` is not in the manifest")));
    }
    if manifest.kind == SnapshotKind::Collection && manifest.collections.len() != 1 {
        return Err(refuse("a collection snapshot with other than one collection".into()));
    }
    if let Some(base) = &manifest.base {
        let dir = path.parent().unwrap_or(Path::new("."));
        fill_from_base(dir, base, &manifest, staged).map_err(|e| match e {
            Error::Snapshot { why, .. } => refuse(format!("base snapshot `{}`: {why}", base.name)),
            other => other,
        })?;
    }
    Ok((manifest.kind, manifest.aliases))
}

/// Completes an incremental snapshot's staged files: each that starts in the base gets
/// the base's bytes in front of what the incremental snapshot stored, and then must
/// match its whole-file CRC-32C.
fn fill_from_base(
    dir: &Path,
    base: &BaseRef,
    manifest: &Manifest,
    staged: &BTreeMap<String, PathBuf>,
) -> Result<(), Error> {
    let refuse = |why: String| Error::Snapshot { name: base.name.clone(), why };
    let path = dir.join(&base.name);
    if !valid_name(&base.name) || !path.is_file() {
        return Err(refuse(format!(
            "not found in {} (an incremental snapshot is recovered beside its base)",
            dir.display()
        )));
    }
    let sha = sha256_of(&path)?;
    if !sha.eq_ignore_ascii_case(&base.sha256) {
        return Err(refuse(format!(
            "SHA-256 {sha}, not the {} the incremental snapshot was made on",
            base.sha256
        )));
    }
    let mut wanted: BTreeMap<(String, String), &FileEntry> = BTreeMap::new();
    for (collection, files) in &manifest.collections {
        for f in files.iter().filter(|f| f.from_base > 0) {
            wanted.insert((collection.clone(), f.name.clone()), f);
        }
    }
    let file = std::fs::File::open(&path).at(&path)?;
    let mut archive = tar::Archive::new(file);
    let entries = archive.entries_with_seek().map_err(|e| refuse(format!("not a snapshot archive: {e}")))?;
    for entry in entries {
        let entry = entry.map_err(|e| refuse(format!("damaged or truncated: {e}")))?;
        let entry_path = entry.path().map_err(|e| refuse(format!("bad entry name: {e}")))?.into_owned();
        let parts: Vec<String> = entry_path.iter().filter_map(|p| p.to_str()).map(str::to_string).collect();
        let [c, collection, name] = parts.as_slice() else { continue };
        if c != "c" {
            continue;
        }
        let Some(f) = wanted.remove(&(collection.clone(), name.clone())) else { continue };
        let Some(dir) = staged.get(collection) else { continue };
        let to = dir.join(name);
        let tmp = dir.join(format!(".{name}.whole"));
        {
            let mut out = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&tmp).at(&tmp)?);
            let mut prefix = Crc { inner: entry.take(f.from_base), crc: 0, len: 0 };
            std::io::copy(&mut prefix, &mut out).map_err(|e| refuse(format!("`{name}`: {e}")))?;
            let mut rest = Crc { inner: std::fs::File::open(&to).at(&to)?, crc: 0, len: 0 };
            std::io::copy(&mut rest, &mut out).at(&tmp)?;
            let whole = crc32c::crc32c_combine(prefix.crc, rest.crc, rest.len as usize);
            if prefix.len != f.from_base || prefix.len + rest.len != f.bytes || whole != f.crc32c {
                let _ = std::fs::remove_file(&tmp);
                return Err(refuse(format!(
                    "`{collection}/{name}` does not match what the incremental snapshot was made on"
                )));
            }
            out.into_inner().map_err(|e| e.into_error()).at(&tmp)?.sync_all().at(&tmp)?;
        }
        std::fs::rename(&tmp, &to).at(&to)?;
    }
    if let Some(((collection, name), _)) = wanted.into_iter().next() {
        return Err(refuse(format!("`{collection}/{name}` is not in it")));
    }
    Ok(())
}
