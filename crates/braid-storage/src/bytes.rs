//! Little-endian encoding for the bodies of log records and documents.

use std::path::Path;

use crate::error::StorageError;

/// Builds a byte body.
#[derive(Debug, Default)]
pub struct Encoder {
    out: Vec<u8>,
}

impl Encoder {
    /// An empty body.
    pub fn new() -> Encoder {
        Encoder::default()
    }
    /// One byte.
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.out.push(v);
        self
    }
    /// A `u32`.
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.out.extend_from_slice(&v.to_le_bytes());
        self
    }
    /// A `u64`.
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.out.extend_from_slice(&v.to_le_bytes());
        self
    }
    /// A length or count (as `u64`).
    pub fn len(&mut self, v: usize) -> &mut Self {
        self.u64(v as u64)
    }
    /// Length-prefixed bytes.
    pub fn bytes(&mut self, v: &[u8]) -> &mut Self {
        self.len(v.len());
        self.out.extend_from_slice(v);
        self
    }
    /// A length-prefixed UTF-8 string.
    pub fn str(&mut self, v: &str) -> &mut Self {
        self.bytes(v.as_bytes())
    }
    /// Length-prefixed `f32`s.
    pub fn f32s(&mut self, v: &[f32]) -> &mut Self {
        self.len(v.len());
        self.out.reserve(v.len() * 4);
        for x in v {
            self.out.extend_from_slice(&x.to_le_bytes());
        }
        self
    }
    /// Writes what is encoded so far to `out` and forgets it, once it is `at_least`
    /// bytes: a large body is written a section at a time (with
    /// [`crate::document::write_new_document`]) rather than gathered whole.
    pub fn spill(&mut self, out: &mut impl std::io::Write, at_least: usize) -> std::io::Result<()> {
        if self.out.len() >= at_least {
            out.write_all(&self.out)?;
            self.out.clear();
        }
        Ok(())
    }
    /// The body.
    pub fn finish(self) -> Vec<u8> {
        self.out
    }
}

/// Reads a body built by [`Encoder`]; every read past the end or of malformed data is
/// [`StorageError::Corrupt`] naming `file` and the offset.
#[derive(Debug)]
pub struct Decoder<'a> {
    bytes: &'a [u8],
    at: usize,
    file: &'a Path,
    base: u64,
}

impl<'a> Decoder<'a> {
    /// Reads `bytes`, which start at byte `base` of `file` (for error offsets).
    pub fn new(file: &'a Path, base: u64, bytes: &'a [u8]) -> Decoder<'a> {
        Decoder { bytes, at: 0, file, base }
    }

    /// A corrupt-data error at the current position.
    pub fn error(&self, why: impl Into<String>) -> StorageError {
        StorageError::corrupt(self.file, self.base + self.at as u64, why)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], StorageError> {
        if self.bytes.len() - self.at < n {
            return Err(self.error(format!("needs {n} more bytes, {} left", self.bytes.len() - self.at)));
        }
        let out = &self.bytes[self.at..self.at + n];
        self.at += n;
        Ok(out)
    }
    /// One byte.
    pub fn u8(&mut self) -> Result<u8, StorageError> {
        Ok(self.take(1)?[0])
    }
    /// A `u32`.
    pub fn u32(&mut self) -> Result<u32, StorageError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    /// A `u64`.
    pub fn u64(&mut self) -> Result<u64, StorageError> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(a))
    }
    /// A length or count no larger than what `unit`-byte items the rest could hold.
    pub fn len(&mut self, unit: usize) -> Result<usize, StorageError> {
        let n = self.u64()?;
        let left = (self.bytes.len() - self.at) as u64;
        if n.saturating_mul(unit.max(1) as u64) > left {
            return Err(self.error(format!("a count of {n} cannot fit in the {left} bytes left")));
        }
        Ok(n as usize)
    }
    /// Length-prefixed bytes.
    pub fn bytes(&mut self) -> Result<&'a [u8], StorageError> {
        let n = self.len(1)?;
        self.take(n)
    }
    /// A length-prefixed UTF-8 string.
    pub fn str(&mut self) -> Result<&'a str, StorageError> {
        let b = self.bytes()?;
        std::str::from_utf8(b).map_err(|_| self.error("invalid UTF-8"))
    }
    /// Length-prefixed `f32`s.
    pub fn f32s(&mut self) -> Result<Vec<f32>, StorageError> {
        let n = self.len(4)?;
        let b = self.take(n * 4)?;
        Ok(b.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
    }
    /// How many bytes were read so far.
    pub fn offset(&self) -> usize {
        self.at
    }
    /// `true` when everything was read.
    pub fn is_done(&self) -> bool {
        self.at == self.bytes.len()
    }
    /// Fails unless everything was read.
    pub fn finish(&self) -> Result<(), StorageError> {
        if self.is_done() { Ok(()) } else { Err(self.error("trailing bytes")) }
    }
}
