//! Codes whose first part may stay in a file's pages: the codes a store read back from
//! its codes file, mapped ([`crate::Codes::hold_from`]), then the codes of vectors
//! pushed since, on the heap. Only the heap part is ever written: a code is written
//! when its vector is pushed, and a held code was pushed before the file was.

use std::ops::Range;
use std::sync::Arc;

/// A codes file as its store keeps it (mapped): codes read from it with
/// [`crate::Codes::hold_from`] keep a range of its bytes instead of copying them.
pub trait CodesFile: Send + Sync {
    /// The file's bytes.
    fn bytes(&self) -> &[u8];
}

/// A codes file's bytes in memory, starting on an 8-byte boundary as a mapping's do:
/// codes held in it ([`crate::Codes::hold_from`]) are held as in a mapped file, for
/// tests, benches and fuzzing of held codes.
#[derive(Debug)]
pub struct CodesBuffer {
    words: Vec<u64>,
    len: usize,
}

impl CodesBuffer {
    /// A copy of `bytes`, from an 8-byte boundary.
    pub fn new(bytes: &[u8]) -> CodesBuffer {
        let mut words = vec![0u64; bytes.len().div_ceil(8)];
        bytemuck::cast_slice_mut::<u64, u8>(&mut words)[..bytes.len()].copy_from_slice(bytes);
        CodesBuffer { words, len: bytes.len() }
    }
}

impl CodesFile for CodesBuffer {
    fn bytes(&self) -> &[u8] {
        &bytemuck::cast_slice(&self.words)[..self.len]
    }
}

/// A [`CodesFile`] and a byte position in it.
pub(crate) type At = (Arc<dyn CodesFile>, usize);

/// An element of codes: `i8` components, `u8` product codes, or the `u64` words of
/// bit-plane codes (held only where the file's bytes are the target's, little-endian,
/// and aligned for them: [`Source::hold`]).
pub(crate) trait Element: bytemuck::Pod + Default + PartialEq {}
impl Element for i8 {}
impl Element for u8 {}
impl Element for u64 {}

/// Elements `0..held` in a range of a [`CodesFile`], the rest on the heap.
#[derive(Clone, Default)]
pub(crate) struct Held<T> {
    /// The file and where in it element 0 is (`None` when nothing is held).
    file: Option<At>,
    held: usize,
    heap: Vec<T>,
}

impl<T: Element> Held<T> {
    /// `len` elements at byte `start` of `file`, held there (a place [`Source::hold`]
    /// gave, so aligned for `T`).
    pub(crate) fn in_file(file: Arc<dyn CodesFile>, start: usize, len: usize) -> Held<T> {
        debug_assert!(start + len * size_of::<T>() <= file.bytes().len());
        Held { file: Some((file, start)), held: len, heap: Vec::new() }
    }

    /// The held elements.
    fn held(&self) -> &[T] {
        match &self.file {
            Some((file, start)) => {
                bytemuck::cast_slice(&file.bytes()[*start..*start + self.held * size_of::<T>()])
            }
            None => &[],
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.held + self.heap.len()
    }

    /// Elements `start..start + len`, which lie in one part: codes are pushed whole,
    /// so a code is all held or all on the heap.
    #[inline]
    pub(crate) fn get(&self, start: usize, len: usize) -> &[T] {
        match start.checked_sub(self.held) {
            Some(s) => &self.heap[s..s + len],
            None => &self.held()[start..start + len],
        }
    }

    /// The part element `at` is in and its index there (for a prefetch).
    #[inline]
    pub(crate) fn part(&self, at: usize) -> (&[T], usize) {
        match at.checked_sub(self.held) {
            Some(s) => (&self.heap, s),
            None => (self.held(), at),
        }
    }

    /// Elements `start..start + len` to write. Held ones are copied to the heap first
    /// (all of them): never the case for codes written as vectors are pushed.
    pub(crate) fn get_mut(&mut self, start: usize, len: usize) -> &mut [T] {
        if start < self.held {
            self.unhold();
        }
        &mut self.heap[start - self.held..start - self.held + len]
    }

    /// Every element on the heap, to write in place: held ones are copied there first.
    pub(crate) fn heap_mut(&mut self) -> &mut Vec<T> {
        self.unhold();
        &mut self.heap
    }

    /// Moves the held elements to the heap, ahead of the heap's own.
    fn unhold(&mut self) {
        if self.file.is_none() {
            return;
        }
        let mut all = Vec::new();
        braid_core::memory::reserve_huge(&mut all, self.len());
        all.extend_from_slice(self.held());
        all.extend_from_slice(&self.heap);
        self.heap = all;
        self.file = None;
        self.held = 0;
    }

    /// `more` zeros appended.
    pub(crate) fn grow(&mut self, more: usize) {
        self.heap.resize(self.heap.len() + more, T::default());
    }

    /// Room on the heap for `more` elements without reallocating.
    pub(crate) fn reserve(&mut self, more: usize) {
        braid_core::memory::reserve_huge(&mut self.heap, more);
    }

    /// Replaced by `heap`, nothing held.
    pub(crate) fn set(&mut self, heap: Vec<T>) {
        *self = Held { file: None, held: 0, heap };
    }

    /// Every element, held then heap.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &T> {
        self.held().iter().chain(&self.heap)
    }

    /// Every element as two runs: the held ones, then the heap's.
    pub(crate) fn runs(&self) -> [&[T]; 2] {
        [self.held(), &self.heap]
    }

    /// Bytes held in the file's pages.
    pub(crate) fn held_bytes(&self) -> usize {
        self.held * size_of::<T>()
    }
}

impl<T: Element> From<Vec<T>> for Held<T> {
    fn from(heap: Vec<T>) -> Held<T> {
        Held { file: None, held: 0, heap }
    }
}

impl<T: Element> PartialEq for Held<T> {
    fn eq(&self, other: &Held<T>) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl<T: Element> std::fmt::Debug for Held<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Held").field("held", &self.held).field("heap", &self.heap.len()).finish()
    }
}

/// Where a codes reader takes its bytes from: [`Copying`] copies every section to the
/// heap; [`InFile`] keeps the large sections (components, product codes, bit-plane
/// words) in the file.
pub(crate) trait Source: std::io::Read {
    /// The next `len` bytes, as elements of `T`, kept where they are; or `None` (and
    /// nothing consumed) to read them as usual.
    fn hold<T: Element>(&mut self, len: usize) -> Result<Option<At>, String>;
}

/// A reader every section is copied from.
pub(crate) struct Copying<'a, R>(pub(crate) &'a mut R);

impl<R: std::io::Read> std::io::Read for Copying<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.read(buf)
    }
}

impl<R: std::io::Read> Source for Copying<'_, R> {
    fn hold<T: Element>(&mut self, _len: usize) -> Result<Option<At>, String> {
        Ok(None)
    }
}

/// A range of a [`CodesFile`], read from its start.
pub(crate) struct InFile {
    pub(crate) file: Arc<dyn CodesFile>,
    pub(crate) at: Range<usize>,
}

impl std::io::Read for InFile {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let bytes = self.file.bytes();
        let n = buf.len().min(self.at.len());
        buf[..n].copy_from_slice(&bytes[self.at.start..self.at.start + n]);
        self.at.start += n;
        Ok(n)
    }
}

impl Source for InFile {
    fn hold<T: Element>(&mut self, len: usize) -> Result<Option<At>, String> {
        if len > self.at.len() {
            return Err(format!("codes cut short: {len} bytes asked, {} left", self.at.len()));
        }
        let start = self.at.start;
        // Words are stored little-endian, and read in place only where they are aligned
        // (the writer aligns them to their file's offsets, [`crate::Serialized::at`]).
        let wide = size_of::<T>() > 1;
        let aligned = self.file.bytes()[start..].as_ptr().align_offset(align_of::<T>()) == 0;
        if wide && (cfg!(target_endian = "big") || !aligned) {
            return Ok(None);
        }
        self.at.start += len;
        Ok(Some((self.file.clone(), start)))
    }
}
