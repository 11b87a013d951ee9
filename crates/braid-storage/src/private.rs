//! A file mapped private and writable (copy-on-write): its bytes as written, and then
//! one range of them as little-endian `u32` words that the owner changes in place with
//! atomic stores. A changed page becomes the process's own (anonymous memory); the file
//! is never written. Braid's graph files are read this way when a space keeps its graph
//! on disk (`hnsw_config.on_disk`): the kernel pages lists in as searches touch them
//! and may drop the untouched ones again.

use std::fs::File;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::AtomicU32;

use memmap2::{MmapMut, MmapOptions};

use crate::{IoContext, StorageError};

/// See the [module docs](self).
pub struct PrivateMap {
    map: MmapMut,
    path: PathBuf,
    /// The mapping's first byte, taken once from `&mut map` so that every view (bytes,
    /// words) derives from a pointer allowed to write.
    base: *mut u8,
    len: usize,
    words: OnceLock<Range<usize>>,
}

// SAFETY: `base` points into `map`, which the struct owns and never remaps, so it is
// valid for as long as the struct; after `hold`, the held range is reached only
// through `AtomicU32`s (sound to share between threads), and `bytes` is documented to
// be read only before anything is written.
unsafe impl Send for PrivateMap {}
// SAFETY: as above.
unsafe impl Sync for PrivateMap {}

impl std::fmt::Debug for PrivateMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrivateMap")
            .field("path", &self.path)
            .field("len", &self.len)
            .field("words", &self.words.get())
            .finish()
    }
}

impl PrivateMap {
    /// Maps the file at `path` whole, private and writable.
    pub fn open(path: &Path) -> Result<PrivateMap, StorageError> {
        let file = File::open(path).at(path)?;
        // SAFETY: the files mapped so are written whole under a new name, synced, and
        // never written again (the next checkpoint writes another); the directory lock
        // keeps other Braid processes out. The mapping is private: writes through it
        // stay in this process.
        let mut map = unsafe { MmapOptions::new().map_copy(&file) }.at(path)?;
        let (base, len) = (map.as_mut_ptr(), map.len());
        Ok(PrivateMap { map, path: path.to_path_buf(), base, len, words: OnceLock::new() })
    }

    /// The file's bytes. Read them only before any held word is written: a write
    /// through [`PrivateMap::words`] changes the memory under this slice.
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: `base..base + len` is the live mapping (see the `Send` impl).
        unsafe { std::slice::from_raw_parts(self.base, self.len) }
    }

    /// Makes `range` (bytes) the words [`PrivateMap::words`] returns from now on; once.
    /// `false`, and nothing held, when the range is not 4-byte aligned, not a whole
    /// number of words, past the end, already chosen, or on a big-endian CPU (where
    /// the file's little-endian words are not the CPU's).
    pub fn hold(&self, range: Range<usize>) -> bool {
        cfg!(target_endian = "little")
            && range.start.is_multiple_of(4)
            && range.len().is_multiple_of(4)
            && range.start <= range.end
            && range.end <= self.len
            && self.words.set(range).is_ok()
    }

    /// The held words (none before [`PrivateMap::hold`]).
    pub fn words(&self) -> &[AtomicU32] {
        let Some(range) = self.words.get() else { return &[] };
        // SAFETY: `hold` checked that the range is inside the mapping, starts on a
        // 4-byte boundary (the mapping itself is page-aligned) and holds whole words;
        // `AtomicU32` has `u32`'s size and alignment, and every bit pattern is valid.
        // The mapping is writable (private), so stores through the atomics are sound.
        unsafe { std::slice::from_raw_parts(self.base.add(range.start).cast::<AtomicU32>(), range.len() / 4) }
    }

    /// The mapping's length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// `true` for an empty file.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Maps every page of the file into this mapping now, reading what the page cache
    /// does not hold (`MADV_POPULATE_READ`, Linux 5.14 and later; elsewhere an error).
    pub fn populate(&self) -> Result<(), StorageError> {
        #[cfg(target_os = "linux")]
        return self.map.advise(memmap2::Advice::PopulateRead).at(&self.path);
        #[cfg(not(target_os = "linux"))]
        Err(StorageError::io(&self.path, &std::io::Error::from(std::io::ErrorKind::Unsupported)))
    }

    /// Tells the kernel how this mapping will be read (random: no read-ahead).
    pub fn advise_random(&self) -> Result<(), StorageError> {
        self.map.advise(memmap2::Advice::Random).at(&self.path)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use super::*;

    #[test]
    fn words_change_in_memory_never_in_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let mut bytes = vec![9u8; 8];
        bytes.extend((0u32..6).flat_map(|w| w.to_le_bytes()));
        std::fs::write(&path, &bytes).unwrap();
        let map = PrivateMap::open(&path).unwrap();
        assert_eq!(map.bytes(), &bytes[..]);
        assert!(map.words().is_empty());
        assert!(!map.hold(2..10), "misaligned");
        assert!(!map.hold(8..11), "not whole words");
        assert!(!map.hold(8..36), "past the end");
        assert!(map.hold(8..32));
        assert!(!map.hold(8..32), "once");
        let words = map.words();
        assert_eq!(words.iter().map(|w| w.load(Ordering::Relaxed)).collect::<Vec<_>>(), [0, 1, 2, 3, 4, 5]);
        words[2].store(77, Ordering::Relaxed);
        assert_eq!(map.words()[2].load(Ordering::Relaxed), 77);
        drop(map);
        assert_eq!(std::fs::read(&path).unwrap(), bytes, "the file is untouched");
        assert_eq!(PrivateMap::open(&path).unwrap().bytes(), &bytes[..]);
    }
}
