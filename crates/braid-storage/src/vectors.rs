//! Vectors on disk: one append-only file per named space, read through `memmap2`.
//!
//! Layout: a 64-byte header `"BRAIDVEC" | version u32 | dim u32 | datatype u8 | zeros`,
//! then rows of `dim` little-endian components of the space's [`Datatype`] (`f32`,
//! `f16` or `u8`; code 0, what files written before datatypes hold there, is `f32`). Rows are only ever appended; the manifest that refers to
//! the file records how many rows it covers and their crc32c (one running checksum,
//! extended at each append), so bytes past that count — an append cut short by a crash —
//! are ignored and truncated away at open, and a damaged row is caught by the checksum
//! pass ([`RowsCheck`]): at open, or after it when the caller defers the pass.

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom};
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use braid_core::{Datatype, Element, PointOffset, VectorSource};
use memmap2::{Mmap, MmapOptions};

use crate::error::{IoContext, StorageError};
use crate::fault;

#[cfg(not(target_endian = "little"))]
compile_error!("braid-storage maps little-endian vector files directly and needs a little-endian target");

/// The first bytes of every vector file.
pub const VECTORS_MAGIC: &[u8; 8] = b"BRAIDVEC";
/// The vector file format this build reads and writes.
pub const VECTORS_VERSION: u32 = 1;
/// Bytes before the first row (a multiple of 64, so rows stay cache-line aligned).
pub const VECTORS_HEADER: u64 = 64;

/// The checksum of `rows` (as stored bytes), continuing `crc`.
pub fn extend_crc<E: Element>(crc: u32, rows: &[E]) -> u32 {
    // Invariant: elements are plain old data and the target is little-endian, so these
    // are the bytes written to the file.
    crc32c::crc32c_append(crc, bytemuck::cast_slice(rows))
}

/// An append-only vector file opened for writing.
#[derive(Debug)]
pub struct VectorFile {
    file: File,
    path: PathBuf,
    dim: usize,
    datatype: Datatype,
    rows: u64,
    crc: u32,
}

impl VectorFile {
    /// Creates an empty file for vectors of `dim` components of `datatype` and syncs it.
    pub fn create(path: &Path, dim: usize, datatype: Datatype) -> Result<VectorFile, StorageError> {
        let mut header = vec![0u8; VECTORS_HEADER as usize];
        header[..8].copy_from_slice(VECTORS_MAGIC);
        header[8..12].copy_from_slice(&VECTORS_VERSION.to_le_bytes());
        header[12..16].copy_from_slice(&(dim as u32).to_le_bytes());
        header[16] = datatype.code();
        crate::document::write_new(path, &header)?;
        let mut file = OpenOptions::new().read(true).write(true).open(path).at(path)?;
        file.seek(SeekFrom::End(0)).at(path)?;
        Ok(VectorFile { file, path: path.to_path_buf(), dim, datatype, rows: 0, crc: 0 })
    }

    /// Opens a file a manifest says holds `rows` rows of `dim` components of
    /// `datatype` with checksum `crc`; checks the header, the length and the checksum,
    /// and truncates anything after those rows.
    pub fn open(
        path: &Path,
        dim: usize,
        datatype: Datatype,
        rows: u64,
        crc: u32,
    ) -> Result<VectorFile, StorageError> {
        let (file, check) = VectorFile::open_unchecked(path, dim, datatype, rows, crc)?;
        check.run(|| true)?;
        Ok(file)
    }

    /// Bytes of one row.
    fn row_bytes(&self) -> u64 {
        (self.dim * self.datatype.width()) as u64
    }

    /// [`VectorFile::open`] without reading the rows: checks the header and the length
    /// and truncates anything after the rows, and returns the checksum pass for the
    /// caller to run when it chooses (reading a large file whole is most of the time
    /// an open takes).
    pub fn open_unchecked(
        path: &Path,
        dim: usize,
        datatype: Datatype,
        rows: u64,
        crc: u32,
    ) -> Result<(VectorFile, RowsCheck), StorageError> {
        let mut file = OpenOptions::new().read(true).write(true).open(path).at(path)?;
        let mut header = [0u8; VECTORS_HEADER as usize];
        let file_len = file.metadata().at(path)?.len();
        if file_len < VECTORS_HEADER {
            return Err(StorageError::corrupt(path, file_len, "truncated header"));
        }
        std::io::Read::read_exact(&mut file, &mut header).at(path)?;
        if &header[..8] != VECTORS_MAGIC {
            return Err(StorageError::BadMagic { file: path.to_path_buf(), what: "vector" });
        }
        let version = u32::from_le_bytes([header[8], header[9], header[10], header[11]]);
        if version != VECTORS_VERSION {
            return Err(StorageError::UnsupportedVersion {
                file: path.to_path_buf(),
                found: version,
                supported: VECTORS_VERSION,
            });
        }
        let stored_dim = u32::from_le_bytes([header[12], header[13], header[14], header[15]]) as usize;
        if stored_dim != dim {
            return Err(StorageError::corrupt(path, 12, format!("dimension {stored_dim}, expected {dim}")));
        }
        match Datatype::from_code(header[16]) {
            Some(stored) if stored == datatype => {}
            Some(stored) => {
                return Err(StorageError::corrupt(
                    path,
                    16,
                    format!("datatype {stored}, expected {datatype}"),
                ));
            }
            None => {
                return Err(StorageError::corrupt(path, 16, format!("unknown datatype code {}", header[16])));
            }
        }
        let need = VECTORS_HEADER + rows * (dim * datatype.width()) as u64;
        if file_len < need {
            return Err(StorageError::corrupt(
                path,
                file_len,
                format!("{rows} rows need {need} bytes, the file has {file_len}"),
            ));
        }
        if file_len > need {
            file.set_len(need).at(path)?;
            fault::sync(&file, path, false).at(path)?;
        }
        file.seek(SeekFrom::Start(need)).at(path)?;
        let check = RowsCheck {
            // Its own open file, so its reads never move the writer's offset.
            file: File::open(path).at(path)?,
            path: path.to_path_buf(),
            start: VECTORS_HEADER,
            bytes: need - VECTORS_HEADER,
            crc,
            keep_cached: true,
            populate: None,
        };
        Ok((VectorFile { file, path: path.to_path_buf(), dim, datatype, rows, crc }, check))
    }

    /// Appends rows (a row-major block of `dim`-sized vectors of the file's datatype).
    /// Not durable until [`VectorFile::sync`]. A failed append is rolled back to the
    /// previous length.
    pub fn append<E: Element>(&mut self, rows: &[E]) -> Result<(), StorageError> {
        debug_assert!(rows.len().is_multiple_of(self.dim));
        debug_assert_eq!(E::DATATYPE, self.datatype);
        let before = VECTORS_HEADER + self.rows * self.row_bytes();
        if let Err(e) = fault::write_all(&mut self.file, bytemuck::cast_slice(rows)) {
            // Best effort: bytes past `rows` are ignored at open anyway.
            let _ =
                self.file.set_len(before).and_then(|()| self.file.seek(SeekFrom::Start(before)).map(drop));
            return Err(StorageError::io(&self.path, &e));
        }
        self.rows += (rows.len() / self.dim) as u64;
        self.crc = extend_crc(self.crc, rows);
        Ok(())
    }

    /// Makes the appended rows durable.
    pub fn sync(&mut self) -> Result<(), StorageError> {
        fault::sync(&self.file, &self.path, true).at(&self.path)
    }

    /// Rows written.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// The running checksum of every row written.
    pub fn crc(&self) -> u32 {
        self.crc
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Maps the rows written so far (`None` when there are none), for random reads
    /// (`MADV_RANDOM`, one page per fault) whatever the space's residency: the one rule
    /// for every mapping (open, checkpoint, compaction). What a memory space keeps
    /// cached is put there by its writes (a checkpoint or compaction maps rows it has
    /// just written) and by the checksum pass at open ([`RowsCheck::keep_cached`]); a
    /// whole-file read-ahead at the mapping would only queue ahead of the first
    /// searches' faults, as would the kernel's read-around on each fault. Turning
    /// `on_disk` off is the one place a space asks for its whole file
    /// ([`MappedVectors::advise`]).
    pub fn map<E: Element>(&self) -> Result<Option<Arc<MappedVectors<E>>>, StorageError> {
        debug_assert_eq!(E::DATATYPE, self.datatype);
        if self.rows == 0 {
            return Ok(None);
        }
        let len = (VECTORS_HEADER + self.rows * self.row_bytes()) as usize;
        // SAFETY: the mapping is read-only and covers bytes that are never written
        // again: the file is append-only, truncated only below `rows` by `open` before
        // any mapping exists, and the directory lock keeps other Braid processes out.
        let map = unsafe { MmapOptions::new().len(len).map(&self.file) }.at(&self.path)?;
        // Checked once here so that `as_flat`, on the search hot path, need not.
        if !(map.as_ptr() as usize + VECTORS_HEADER as usize).is_multiple_of(std::mem::align_of::<E>()) {
            return Err(StorageError::corrupt(&self.path, 0, "mapping is not aligned for its datatype"));
        }
        let mapped = MappedVectors { map, dim: self.dim, rows: self.rows as usize, elem: PhantomData };
        mapped.advise(Residency::Disk).at(&self.path)?;
        Ok(Some(Arc::new(mapped)))
    }
}

/// The pass that checks a vector file's rows against the checksum its manifest
/// recorded ([`VectorFile::open_unchecked`]). Reads through its own handle, so it
/// can run on another thread while the file is mapped, appended to and searched:
/// it reads only the rows the manifest covers, which are never written again.
#[derive(Debug)]
pub struct RowsCheck {
    file: File,
    path: PathBuf,
    /// Where the checksummed bytes start.
    start: u64,
    bytes: u64,
    crc: u32,
    keep_cached: bool,
    /// A mapping of the same file to fill in once the checksum matches.
    populate: Option<std::sync::Arc<crate::PrivateMap>>,
}

impl RowsCheck {
    /// The same pass over a whole document file (`crate::document`): every byte but
    /// its trailer, against the checksum the trailer holds. For a file kept mapped
    /// (a space's codes on disk) whose checksum is left to a background pass.
    pub fn document(path: &Path) -> Result<RowsCheck, StorageError> {
        let mut file = File::open(path).at(path)?;
        let len = file.metadata().at(path)?.len();
        if len < 4 {
            return Err(StorageError::corrupt(path, len, "no checksum"));
        }
        let mut trailer = [0u8; 4];
        file.seek(SeekFrom::Start(len - 4)).at(path)?;
        std::io::Read::read_exact(&mut file, &mut trailer).at(path)?;
        let crc = u32::from_le_bytes(trailer);
        Ok(RowsCheck {
            file,
            path: path.to_path_buf(),
            start: 0,
            bytes: len - 4,
            crc,
            keep_cached: true,
            populate: None,
        })
    }

    /// Once the checksum matches, `map` (a mapping of the same file) is filled in from
    /// the page cache the pass just read into: every page mapped at once, instead of
    /// one fault per page on the searches' first touches (Qdrant's `cached`: warmed
    /// at startup).
    pub fn populate(mut self, map: std::sync::Arc<crate::PrivateMap>) -> RowsCheck {
        self.populate = Some(map);
        self
    }

    /// How many bytes of rows the pass reads.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Whether the rows the pass reads stay in the page cache (the default: a space
    /// meant for memory is read in by its checksum pass) or are dropped from it behind
    /// the pass (`Residency::Disk`: only searches should bring rows in). Linux only;
    /// elsewhere the kernel decides.
    pub fn keep_cached(mut self, keep: bool) -> RowsCheck {
        self.keep_cached = keep;
        self
    }

    /// Reads the rows in blocks and compares their checksum with the manifest's.
    /// `go_on` is asked before each block; when it says no the pass stops and
    /// returns `Ok(false)` (nothing was found wrong, nothing was proved right).
    /// `Ok(true)`: the rows match. A mismatch is [`StorageError::Corrupt`].
    pub fn run(&self, mut go_on: impl FnMut() -> bool) -> Result<bool, StorageError> {
        use std::io::Read;
        const BLOCK: u64 = 4 << 20;
        let mut buf = vec![0u8; BLOCK.min(self.bytes) as usize];
        let mut crc = 0;
        let mut done = 0;
        let mut file = &self.file;
        file.seek(SeekFrom::Start(self.start)).at(&self.path)?;
        while done < self.bytes {
            if !go_on() {
                return Ok(false);
            }
            let n = BLOCK.min(self.bytes - done) as usize;
            file.read_exact(&mut buf[..n]).at(&self.path)?;
            crc = crc32c::crc32c_append(crc, &buf[..n]);
            if !self.keep_cached {
                self.drop_cached(self.start + done, n as u64);
            }
            done += n as u64;
        }
        if crc != self.crc {
            return Err(StorageError::corrupt(&self.path, self.start, "checksum mismatch"));
        }
        if let Some(map) = &self.populate {
            // A hint: a kernel without it (before Linux 5.14) leaves the faults to the
            // searches.
            let _ = map.populate();
        }
        Ok(true)
    }

    /// Asks the kernel to drop the clean cached pages of `len` bytes at `offset` (pages
    /// a mapping holds are kept). A hint: failure changes nothing but the cache.
    fn drop_cached(&self, offset: u64, len: u64) {
        #[cfg(target_os = "linux")]
        {
            use std::os::fd::AsRawFd;
            let (Ok(offset), Ok(len)) = (libc::off_t::try_from(offset), libc::off_t::try_from(len)) else {
                return;
            };
            // SAFETY: the descriptor is this struct's open file; posix_fadvise reads no
            // memory of ours.
            unsafe {
                libc::posix_fadvise(self.file.as_raw_fd(), offset, len, libc::POSIX_FADV_DONTNEED);
            }
        }
        #[cfg(not(target_os = "linux"))]
        let _ = (offset, len);
    }
}

/// Where a space's mapped rows are meant to live (Qdrant's `on_disk` of a vector space).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Residency {
    /// Read ahead into memory when mapped (`MADV_WILLNEED`) and kept there while the
    /// page cache has room: every search may read any row.
    #[default]
    Memory,
    /// Read only where touched, one page at a time (`MADV_RANDOM`, no read-ahead): for
    /// rows read only to re-score candidates the codes chose, so that resident memory
    /// stays near what the searches actually touch.
    Disk,
}

/// Rows of a vector file, mapped into memory.
pub struct MappedVectors<E = f32> {
    map: Mmap,
    dim: usize,
    rows: usize,
    elem: PhantomData<E>,
}

impl<E> std::fmt::Debug for MappedVectors<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MappedVectors").field("dim", &self.dim).field("rows", &self.rows).finish()
    }
}

impl<E: Element> MappedVectors<E> {
    /// Every row, row-major.
    #[inline]
    pub fn as_flat(&self) -> &[E] {
        // SAFETY: `VectorFile::map` made the mapping cover the header and exactly
        // `rows * dim` elements after it, and checked that they start aligned for `E`;
        // every bit pattern is a valid `E` (plain old data); the mapping lives as long
        // as `self`.
        unsafe {
            std::slice::from_raw_parts(
                self.map.as_ptr().add(VECTORS_HEADER as usize).cast::<E>(),
                self.rows * self.dim,
            )
        }
    }

    /// How many rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Tells the kernel how the rows will be read. A hint: what is resident changes
    /// as pages are touched or evicted, never what is read.
    pub fn advise(&self, residency: Residency) -> std::io::Result<()> {
        #[cfg(unix)]
        match residency {
            Residency::Memory => {
                self.map.advise(memmap2::Advice::Normal)?;
                self.map.advise(memmap2::Advice::WillNeed)
            }
            Residency::Disk => self.map.advise(memmap2::Advice::Random),
        }
        #[cfg(not(unix))]
        {
            let _ = residency;
            Ok(())
        }
    }
}

/// The vectors of one space: a mapped, durable prefix and rows written since, in
/// memory. Offsets below the mapped count read the file; later ones the tail.
#[derive(Debug, Clone)]
pub struct Rows<E = f32> {
    dim: usize,
    base: Option<Arc<MappedVectors<E>>>,
    base_rows: usize,
    tail: Vec<E>,
}

impl<E: Element> Rows<E> {
    /// No rows, all in memory.
    pub fn new(dim: usize) -> Rows<E> {
        Rows { dim, base: None, base_rows: 0, tail: Vec::new() }
    }

    /// Rows read from `base`.
    pub fn mapped(dim: usize, base: Option<Arc<MappedVectors<E>>>) -> Rows<E> {
        let base_rows = base.as_ref().map_or(0, |b| b.rows);
        Rows { dim, base, base_rows, tail: Vec::new() }
    }

    /// Tells the kernel how the mapped prefix will be read ([`MappedVectors::advise`]).
    pub fn advise(&self, residency: Residency) -> std::io::Result<()> {
        self.base.as_ref().map_or(Ok(()), |b| b.advise(residency))
    }

    /// Appends one vector (its length must be `dim`).
    pub fn push(&mut self, vector: &[E]) {
        debug_assert_eq!(vector.len(), self.dim);
        braid_core::memory::reserve_huge(&mut self.tail, vector.len());
        self.tail.extend_from_slice(vector);
    }

    /// Appends one vector given as `f32`s (its length must be `dim`), each component
    /// the nearest value of `E` (exact when the caller checked it with
    /// [`Datatype::holds`]).
    pub fn push_from(&mut self, vector: &[f32]) {
        debug_assert_eq!(vector.len(), self.dim);
        braid_core::memory::reserve_huge(&mut self.tail, vector.len());
        self.tail.extend(vector.iter().map(|&x| E::from_f32(x)));
    }

    /// Rows in the mapped prefix.
    pub fn mapped_rows(&self) -> usize {
        self.base_rows
    }

    /// The rows after the mapped prefix, row-major.
    pub fn unmapped(&self) -> &[E] {
        &self.tail
    }

    /// Replaces the storage with `base`, which must hold exactly these rows (the
    /// caller has just appended the unmapped ones to the file and mapped it again).
    pub fn remap(&mut self, base: Option<Arc<MappedVectors<E>>>) {
        debug_assert_eq!(base.as_ref().map_or(0, |b| b.rows), self.len());
        *self = Rows::mapped(self.dim, base);
    }
}

impl<E: Element> VectorSource for Rows<E> {
    type Elem = E;
    fn dim(&self) -> usize {
        self.dim
    }
    fn len(&self) -> usize {
        self.base_rows + self.tail.len() / self.dim
    }
    #[inline]
    fn vector(&self, offset: PointOffset) -> &[E] {
        let i = offset.index();
        match &self.base {
            Some(base) if i < self.base_rows => &base.as_flat()[i * self.dim..(i + 1) * self.dim],
            _ => {
                let start = (i - self.base_rows) * self.dim;
                &self.tail[start..start + self.dim]
            }
        }
    }
}
