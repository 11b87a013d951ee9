//! Whole-file documents: a magic number, a version, a body and a checksum, replaced
//! atomically (write a temporary file, sync it, rename it over the old one, sync the
//! directory).
//!
//! Layout (little-endian): `magic[8] | version u32 | body_len u64 | body | crc32c u32`,
//! the checksum covering every byte before it.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::error::{IoContext, StorageError};
use crate::fault;

const HEADER: usize = 8 + 4 + 8;

/// Frames `body` as a document (for small bodies: a large one is written section by
/// section with [`write_new_document`]).
pub fn encode(magic: &[u8; 8], version: u32, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + body.len() + 4);
    out.extend_from_slice(magic);
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(&(body.len() as u64).to_le_bytes());
    out.extend_from_slice(body);
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Checks a document read from `file` and returns its body. `what` names the kind of
/// file in errors.
pub fn decode<'a>(
    file: &Path,
    bytes: &'a [u8],
    magic: &[u8; 8],
    version: u32,
    what: &'static str,
) -> Result<&'a [u8], StorageError> {
    let (found, _) = check_header(file, &bytes[..bytes.len().min(HEADER)], bytes.len() as u64, magic, what)?;
    let end = bytes.len() - 4;
    let stored = u32::from_le_bytes(bytes[end..].try_into().unwrap_or_default());
    if crc32c::crc32c(&bytes[..end]) != stored {
        return Err(StorageError::corrupt(file, end as u64, "checksum mismatch"));
    }
    // The version is checked after the checksum so that a damaged version field reads
    // as damage, not as a file from the future.
    if found != version {
        return Err(StorageError::UnsupportedVersion { file: file.to_path_buf(), found, supported: version });
    }
    Ok(&bytes[HEADER..end])
}

/// Checks what a document mapped whole (`bytes`) says of itself — magic, length and
/// version — and returns where its body lies, without reading the body: the checksum
/// is left to a pass of its own ([`crate::RowsCheck::document`]), for files too large
/// to read at open.
pub fn mapped_body(
    file: &Path,
    bytes: &[u8],
    magic: &[u8; 8],
    version: u32,
    what: &'static str,
) -> Result<std::ops::Range<usize>, StorageError> {
    let (found, _) = check_header(file, &bytes[..bytes.len().min(HEADER)], bytes.len() as u64, magic, what)?;
    if found != version {
        return Err(StorageError::UnsupportedVersion { file: file.to_path_buf(), found, supported: version });
    }
    Ok(HEADER..bytes.len() - 4)
}

/// Checks a document's `header` (its first `HEADER` bytes, fewer if the file is
/// shorter) against the file's length `total`: the magic, then that the header is
/// whole, then that the length it declares is the file's. Returns the version (checked
/// by the caller after the checksum) and the body's length.
fn check_header(
    file: &Path,
    header: &[u8],
    total: u64,
    magic: &[u8; 8],
    what: &'static str,
) -> Result<(u32, u64), StorageError> {
    if header.len() < 8 || &header[..8] != magic {
        return Err(StorageError::BadMagic { file: file.to_path_buf(), what });
    }
    if total < (HEADER + 4) as u64 {
        return Err(StorageError::corrupt(file, total, "truncated header"));
    }
    let found = u32::from_le_bytes(header[8..12].try_into().unwrap_or_default());
    let len = u64::from_le_bytes(header[12..20].try_into().unwrap_or_default());
    let body = total - (HEADER + 4) as u64;
    if body != len {
        return Err(StorageError::corrupt(
            file,
            total,
            format!("length {body} does not match the {len} bytes the header declares"),
        ));
    }
    Ok((found, len))
}

/// Reads the document at `path`.
pub fn read(path: &Path, magic: &[u8; 8], version: u32, what: &'static str) -> Result<Vec<u8>, StorageError> {
    let bytes = std::fs::read(path).at(path)?;
    decode(path, &bytes, magic, version, what).map(<[u8]>::to_vec)
}

/// The body of a document being read by [`read_with`]: reads stop at the body's end
/// and every byte goes through the running checksum.
#[derive(Debug)]
pub struct Body {
    file: std::io::BufReader<File>,
    left: u64,
    crc: u32,
}

impl std::io::Read for Body {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let want = buf.len().min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.file.read(&mut buf[..want])?;
        self.crc = crc32c::crc32c_append(self.crc, &buf[..n]);
        self.left -= n as u64;
        Ok(n)
    }
}

/// Reads the document at `path` through `parse`, which reads its body (of the length
/// given) straight from the file: for documents too large to hold twice, as
/// [`read`] would (the bytes, then what is parsed from them). The checks and their
/// order are [`decode`]'s: magic, length, then — whether `parse` succeeded or not —
/// the checksum over the whole file, then the version, then `parse`'s own verdict.
/// A body `parse` leaves partly unread is an error.
pub fn read_with<T>(
    path: &Path,
    magic: &[u8; 8],
    version: u32,
    what: &'static str,
    parse: impl FnOnce(&mut Body, u64) -> Result<T, String>,
) -> Result<T, StorageError> {
    use std::io::Read;
    let file = File::open(path).at(path)?;
    let file_len = file.metadata().at(path)?.len();
    let mut file = std::io::BufReader::with_capacity(1 << 20, file);
    let mut header = [0u8; HEADER];
    let got = header.len().min(usize::try_from(file_len).unwrap_or(HEADER));
    file.read_exact(&mut header[..got]).at(path)?;
    let (found, len) = check_header(path, &header[..got], file_len, magic, what)?;
    let mut body = Body { file, left: len, crc: crc32c::crc32c(&header) };
    let parsed = parse(&mut body, len);
    let unread = body.left;
    // Whatever `parse` left is still checksummed, so damage reads as damage.
    std::io::copy(&mut body, &mut std::io::sink()).at(path)?;
    let mut trailer = [0u8; 4];
    body.file.read_exact(&mut trailer).at(path)?;
    if u32::from_le_bytes(trailer) != body.crc {
        return Err(StorageError::corrupt(path, file_len - 4, "checksum mismatch"));
    }
    if found != version {
        return Err(StorageError::UnsupportedVersion { file: path.to_path_buf(), found, supported: version });
    }
    let parsed =
        parsed.map_err(|why| StorageError::corrupt(path, HEADER as u64, format!("{what}: {why}")))?;
    if unread != 0 {
        return Err(StorageError::corrupt(
            path,
            file_len - 4 - unread,
            format!("{what}: {unread} bytes unread"),
        ));
    }
    Ok(parsed)
}

/// Writes `bytes` to a file at `path`, which must not exist yet, and syncs it (not its
/// directory). An existing file is never opened for writing here: what a manifest
/// names must not change under it.
pub fn write_new(path: &Path, bytes: &[u8]) -> Result<(), StorageError> {
    write_new_with(path, |out| std::io::Write::write_all(out, bytes).at(path))
}

/// A new file being written section by section ([`write_new_with`],
/// [`write_new_document`]): buffered, every byte drawn on the fault layer's budget.
/// A part known only once what follows it is written (a length, a table of
/// positions) is [reserved](Writer::reserve) and [filled](Writer::fill) later.
pub struct Writer {
    out: std::io::BufWriter<Sink>,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer").field("written", &self.out.get_ref().written).finish()
    }
}

/// Bytes [`Writer::reserve`] left at `at`, to be [filled](Writer::fill).
#[derive(Debug)]
#[must_use = "a reserved part is filled before the file is finished"]
pub struct Reserved {
    at: u64,
    len: usize,
    /// Its place among the checksum's sections.
    section: usize,
}

/// Below the buffer: the file, and (documents only) the checksum of what reached it.
struct Sink {
    file: File,
    written: u64,
    crc: Option<Sections>,
}

/// A checksum kept by section, so that a reserved part filled later is counted with
/// its final bytes: each closed section's checksum (`None` while reserved) and
/// length, then the open one's.
#[derive(Default)]
struct Sections {
    closed: Vec<(Option<u32>, u64)>,
    crc: u32,
    len: u64,
}

impl Sections {
    /// Closes the open section and adds a reserved one of `len` bytes after it;
    /// returns the reserved one's place.
    fn close(&mut self, len: u64) -> usize {
        self.closed.push((Some(self.crc), self.len));
        self.closed.push((None, len));
        (self.crc, self.len) = (0, 0);
        self.closed.len() - 1
    }
}

impl std::io::Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        // What the disk budget grants is written before a full disk fails it; a failed
        // write fails the whole file, so only whole writes are counted.
        fault::write_all(&mut self.file, buf)?;
        self.written += buf.len() as u64;
        if let Some(s) = &mut self.crc {
            s.crc = crc32c::crc32c_append(s.crc, buf);
            s.len += buf.len() as u64;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

impl std::io::Write for Writer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.out.write(buf)
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.out.write_all(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

impl Writer {
    /// Writes `len` zero bytes here, to be replaced by [`Writer::fill`] once they are
    /// known.
    pub fn reserve(&mut self, len: usize) -> std::io::Result<Reserved> {
        self.out.flush()?;
        let sink = self.out.get_mut();
        let at = sink.written;
        // What came before is one section, the reserved part the next.
        let section = sink.crc.as_mut().map_or(0, |s| s.close(len as u64));
        let zeros = [0u8; 4096];
        let mut left = len;
        while left > 0 {
            let n = left.min(zeros.len());
            self.out.write_all(&zeros[..n])?;
            left -= n;
        }
        self.out.flush()?;
        if let Some(s) = &mut self.out.get_mut().crc {
            // The zeros are not checksummed: their section waits for the fill.
            (s.crc, s.len) = (0, 0);
        }
        Ok(Reserved { at, len, section })
    }

    /// Writes `bytes` over the part `reserved` left; they must be as long.
    pub fn fill(&mut self, reserved: Reserved, bytes: &[u8]) -> std::io::Result<()> {
        if bytes.len() != reserved.len {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("{} bytes written over {} reserved", bytes.len(), reserved.len),
            ));
        }
        let sink = self.out.get_mut();
        std::os::unix::fs::FileExt::write_all_at(&sink.file, bytes, reserved.at)?;
        if let Some(s) = &mut sink.crc {
            s.closed[reserved.section].0 = Some(crc32c::crc32c(bytes));
        }
        Ok(())
    }

    /// Where in the file the next byte written lands (what the buffer holds counted).
    pub fn position(&self) -> u64 {
        self.out.get_ref().written + self.out.buffer().len() as u64
    }

    /// Bytes written so far.
    fn written(&mut self) -> std::io::Result<u64> {
        self.out.flush()?;
        Ok(self.out.get_ref().written)
    }

    /// The checksum of every byte written so far, reserved parts as filled.
    fn checksum(&mut self) -> std::io::Result<u32> {
        self.out.flush()?;
        let s = self.out.get_mut().crc.as_ref().expect("a document's writer keeps a checksum");
        let open = (Some(s.crc), s.len);
        s.closed.iter().chain([&open]).try_fold(0, |crc, &(section, len)| match section {
            Some(section) => Ok(crc32c::crc32c_combine(crc, section, len as usize)),
            None => Err(std::io::Error::other("a reserved part of the file was never filled")),
        })
    }
}

/// Bytes a [`Writer`] gathers before writing them.
const WRITE_BUFFER: usize = 1 << 20;

fn create(path: &Path, checksum: bool) -> Result<Writer, StorageError> {
    let file = OpenOptions::new().create_new(true).write(true).open(path).at(path)?;
    fault::created(path);
    let sink = Sink { file, written: 0, crc: checksum.then(Sections::default) };
    Ok(Writer { out: std::io::BufWriter::with_capacity(WRITE_BUFFER, sink) })
}

/// Flushes `writer` and syncs its file.
fn finish(writer: Writer, path: &Path) -> Result<(), StorageError> {
    let sink = writer.out.into_inner().map_err(|e| StorageError::io(path, e.error()))?;
    fault::sync(&sink.file, path, false).at(path)
}

/// Writes a new file at `path`, which must not exist yet, as [`write_new`] does, but
/// section by section: `write` writes the bytes to the [`Writer`] it is given, so that
/// a large file (a graph, codes) is never gathered in memory first. `write`'s first
/// error is returned, and the file left for the caller to remove, as after a failed
/// [`write_new`].
pub fn write_new_with<E: From<StorageError>>(
    path: &Path,
    write: impl FnOnce(&mut Writer) -> Result<(), E>,
) -> Result<(), E> {
    let mut writer = create(path, false)?;
    write(&mut writer)?;
    Ok(finish(writer, path)?)
}

/// Writes a new document at `path` as [`write_new`] writes [`encode`]'s bytes, its
/// body written section by section by `write` (as [`write_new_with`]); the header,
/// which holds the body's length, is filled in after it.
pub fn write_new_document<E: From<StorageError>>(
    path: &Path,
    magic: &[u8; 8],
    version: u32,
    write: impl FnOnce(&mut Writer) -> Result<(), E>,
) -> Result<(), E> {
    let mut writer = create(path, true)?;
    let header = writer.reserve(HEADER).at(path)?;
    write(&mut writer)?;
    let body = writer.written().at(path)? - HEADER as u64;
    let mut head = [0u8; HEADER];
    head[..8].copy_from_slice(magic);
    head[8..12].copy_from_slice(&version.to_le_bytes());
    head[HEADER - 8..].copy_from_slice(&body.to_le_bytes());
    writer.fill(header, &head).at(path)?;
    let crc = writer.checksum().at(path)?;
    writer.write_all(&crc.to_le_bytes()).at(path)?;
    Ok(finish(writer, path)?)
}

/// Replaces the file at `path` with `bytes` atomically: after a crash the file holds
/// either the old or the new content, never a mixture.
pub fn replace(path: &Path, bytes: &[u8]) -> Result<(), StorageError> {
    commit(&stage(path, bytes)?, path)
}

/// The first half of [`replace`]: writes `bytes` to `path`'s temporary file (its
/// `.tmp`), synced, and returns that file's path for [`commit`]. Until then `path` is
/// untouched, and the temporary file is the caller's to remove if it gives up.
pub fn stage(path: &Path, bytes: &[u8]) -> Result<PathBuf, StorageError> {
    let tmp = path.with_extension("tmp");
    // A temporary file left by a crash names nothing; it goes.
    match fault::remove_file(&tmp) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(StorageError::io(&tmp, &e)),
        _ => {}
    }
    write_new(&tmp, bytes)?;
    Ok(tmp)
}

/// The second half of [`replace`]: renames `staged` over `path` and syncs the
/// directory. A failure here may come after the rename: the new content may be in
/// place.
pub fn commit(staged: &Path, path: &Path) -> Result<(), StorageError> {
    fault::rename(staged, path).at(path)?;
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

/// Syncs a directory so that entries created, renamed or removed in it are durable.
pub fn sync_dir(dir: &Path) -> Result<(), StorageError> {
    File::open(dir).and_then(|d| d.sync_all()).at(dir)?;
    fault::synced_dir(dir);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAGIC: &[u8; 8] = b"BRAIDTST";

    #[test]
    fn round_trip_and_every_single_bit_flip_is_caught() {
        let bytes = encode(MAGIC, 3, b"hello, storage");
        let path = Path::new("doc");
        assert_eq!(decode(path, &bytes, MAGIC, 3, "test").unwrap(), b"hello, storage");
        for bit in 0..bytes.len() * 8 {
            let mut bad = bytes.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            assert!(decode(path, &bad, MAGIC, 3, "test").is_err(), "flip of bit {bit} went unnoticed");
        }
        for cut in 0..bytes.len() {
            assert!(decode(path, &bytes[..cut], MAGIC, 3, "test").is_err());
        }
    }

    #[test]
    fn another_version_is_named() {
        let bytes = encode(MAGIC, 9, b"x");
        let err = decode(Path::new("doc"), &bytes, MAGIC, 3, "test").unwrap_err();
        assert!(matches!(err, StorageError::UnsupportedVersion { found: 9, supported: 3, .. }), "{err}");
    }

    #[test]
    fn replace_is_atomic_by_rename() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("MANIFEST");
        replace(&path, &encode(MAGIC, 1, b"one")).unwrap();
        replace(&path, &encode(MAGIC, 1, b"two")).unwrap();
        assert_eq!(read(&path, MAGIC, 1, "test").unwrap(), b"two");
        assert!(!path.with_extension("tmp").exists());
    }

    #[test]
    fn a_document_written_in_sections_is_the_encoded_one() {
        let dir = tempfile::tempdir().unwrap();
        let body: Vec<u8> = (0..3 * WRITE_BUFFER + 17).map(|i| (i * 7 % 251) as u8).collect();
        for len in [0, 1, body.len()] {
            let path = dir.path().join(format!("sections-{len}"));
            write_new_document(&path, MAGIC, 4, |out| {
                body[..len].chunks(WRITE_BUFFER / 3 + 5).try_for_each(|piece| out.write_all(piece)).at(&path)
            })
            .unwrap();
            assert!(std::fs::read(&path).unwrap() == encode(MAGIC, 4, &body[..len]), "{len} bytes");
            assert!(read(&path, MAGIC, 4, "test").unwrap() == body[..len]);
        }
        // The body's first error is returned.
        let path = dir.path().join("failed");
        let err =
            write_new_document(&path, MAGIC, 4, |_| Err(StorageError::corrupt(Path::new("x"), 3, "no")));
        assert!(matches!(err, Err(StorageError::Corrupt { offset: 3, .. })));
        // A file written section by section with no frame is the bytes as they are.
        let path = dir.path().join("plain");
        write_new_with(&path, |out| body.chunks(1000).try_for_each(|c| out.write_all(c)).at(&path)).unwrap();
        assert!(std::fs::read(&path).unwrap() == body);
        assert!(
            write_new_with(&path, |_| Ok::<_, StorageError>(())).is_err(),
            "an existing file is never written"
        );
    }

    #[test]
    fn a_full_disk_stops_a_document_where_its_budget_ends() {
        let dir = tempfile::tempdir().unwrap();
        let body = vec![5u8; 2 * WRITE_BUFFER];
        for budget in [0, 10, HEADER as u64 + 1, WRITE_BUFFER as u64 + 3, body.len() as u64 + HEADER as u64] {
            let path = dir.path().join(format!("full-{budget}"));
            fault::set_disk_budget(Some(budget));
            let result = write_new_document(&path, MAGIC, 1, |out| out.write_all(&body).at(&path));
            fault::set_disk_budget(None);
            match result.unwrap_err() {
                StorageError::Io { kind, .. } => assert_eq!(kind, std::io::ErrorKind::StorageFull),
                other => panic!("{other}"),
            }
            assert_eq!(std::fs::metadata(&path).unwrap().len(), budget, "written up to the budget");
        }
    }

    #[test]
    fn a_part_reserved_and_filled_later_is_checksummed_as_filled() {
        let dir = tempfile::tempdir().unwrap();
        let tail: Vec<u8> = (0..WRITE_BUFFER + 999).map(|i| (i % 13) as u8).collect();
        let table = [9u8; 10_000];
        let path = dir.path().join("filled");
        write_new_document(&path, MAGIC, 2, |out| {
            out.write_all(b"abc").at(&path)?;
            let reserved = out.reserve(table.len()).at(&path)?;
            out.write_all(&tail).at(&path)?;
            out.fill(reserved, &table).at(&path)
        })
        .unwrap();
        let body = [&b"abc"[..], &table, &tail].concat();
        assert!(std::fs::read(&path).unwrap() == encode(MAGIC, 2, &body));
        // A part never filled, or filled with another length, is an error.
        let path = dir.path().join("unfilled");
        let err = write_new_document(&path, MAGIC, 2, |out| out.reserve(4).map(drop).at(&path)).unwrap_err();
        assert!(err.to_string().contains("never filled"), "{err}");
        let path = dir.path().join("short");
        let err = write_new_document(&path, MAGIC, 2, |out| {
            let reserved = out.reserve(4).at(&path)?;
            out.fill(reserved, b"abc").at(&path)
        })
        .unwrap_err();
        assert!(err.to_string().contains("3 bytes written over 4 reserved"), "{err}");
    }
}
