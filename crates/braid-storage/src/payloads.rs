//! Payload files: one byte string per point offset, read from a mapping as it is asked
//! for, so that a collection's payloads need not live in memory (Qdrant's
//! `on_disk_payload`; what the strings hold is the facade's business).
//!
//! A payload file is a [`crate::document`] (magic `BRAIDPAY`, version, length, body,
//! CRC-32C) whose body is `n: u64`, then `n + 1` positions (`u64`, non-decreasing, the
//! first 0 and the last the length of what follows), then the strings back to back:
//! offset `o`'s string is the bytes between positions `o` and `o + 1`; an empty one is
//! no payload.

use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::Mmap;

use crate::document;
use crate::error::{IoContext, StorageError};

/// The payload file's magic number.
pub const MAGIC: &[u8; 8] = b"BRAIDPAY";
/// The body's format version.
pub const VERSION: u32 = 1;
/// Bytes of a document before its body (magic, version, length).
const HEADER: usize = 8 + 4 + 8;

/// Writes the payload file holding the strings for offsets `0..n` at `path`, which must
/// not exist yet ([`document::write_new_document`]): `string(o, out)` appends offset
/// `o`'s string to `out` (nothing for none); its first error stops the writing. The
/// strings are written as they come; only their positions (8 bytes a point) are held
/// until the end, when they fill the table reserved before the strings.
pub fn write_new<E: From<StorageError>>(
    path: &Path,
    n: usize,
    mut string: impl FnMut(u32, &mut Vec<u8>) -> Result<(), E>,
) -> Result<(), E> {
    use std::io::Write as _;
    document::write_new_document(path, MAGIC, VERSION, |out| {
        out.write_all(&(n as u64).to_le_bytes()).at(path)?;
        let table = out.reserve(8 * (n + 1)).at(path)?;
        let mut positions = Vec::with_capacity(8 * (n + 1));
        positions.extend_from_slice(&0u64.to_le_bytes());
        let (mut end, mut scratch) = (0u64, Vec::new());
        for offset in 0..n {
            scratch.clear();
            string(offset as u32, &mut scratch)?;
            out.write_all(&scratch).at(path)?;
            end += scratch.len() as u64;
            positions.extend_from_slice(&end.to_le_bytes());
        }
        Ok(out.fill(table, &positions).at(path)?)
    })
}

/// A payload file, mapped and checked.
#[derive(Debug)]
pub struct PayloadFile {
    map: Mmap,
    path: PathBuf,
    n: usize,
}

impl PayloadFile {
    /// Maps the payload file at `path` and checks it whole: the document's checksum
    /// (every byte is read once), then that its positions are in order and inside it.
    /// Damage is [`StorageError::Corrupt`].
    pub fn open(path: &Path) -> Result<PayloadFile, StorageError> {
        let file = File::open(path).at(path)?;
        // SAFETY: payload files are written whole under a new name, synced, and never
        // written again (a checkpoint writes the next one under another name); the
        // directory lock keeps other Braid processes out. The mapping is read-only.
        #[allow(unsafe_code)]
        let map = unsafe { Mmap::map(&file) }.at(path)?;
        let body = document::decode(path, &map, MAGIC, VERSION, "payloads")?;
        let corrupt =
            |at: usize, why: &str| StorageError::corrupt(path, (HEADER + at) as u64, why.to_string());
        let n = body.get(..8).map(|b| u64::from_le_bytes(b.try_into().unwrap_or_default()));
        let n = n.ok_or_else(|| corrupt(0, "no offset count"))?;
        let table = usize::try_from(n)
            .ok()
            .and_then(|n| n.checked_add(1)?.checked_mul(8))
            .filter(|t| 8 + t <= body.len())
            .ok_or_else(|| corrupt(0, "the offset count is past the file's end"))?;
        let data = body.len() - 8 - table;
        let mut last = 0u64;
        for (i, p) in body[8..8 + table].chunks_exact(8).enumerate() {
            let p = u64::from_le_bytes(p.try_into().unwrap_or_default());
            let first = i == 0;
            if (first && p != 0) || p < last || p > data as u64 {
                return Err(corrupt(8 + 8 * i, "a payload position out of order or past the end"));
            }
            last = p;
        }
        if last != data as u64 {
            return Err(corrupt(8 + table - 8, "the last position is not the end of the payloads"));
        }
        Ok(PayloadFile { map, path: path.to_path_buf(), n: n as usize })
    }

    /// Offset `offset`'s string; `None` when it has none or is past the end.
    pub fn get(&self, offset: u32) -> Option<&[u8]> {
        let o = offset as usize;
        if o >= self.n {
            return None;
        }
        let position = |i: usize| {
            let at = HEADER + 8 + 8 * i;
            // Checked at open: every position is inside the file.
            u64::from_le_bytes(self.map[at..at + 8].try_into().unwrap_or_default()) as usize
        };
        let data = HEADER + 8 + 8 * (self.n + 1);
        let (from, to) = (position(o), position(o + 1));
        (to > from).then(|| &self.map[data + from..data + to])
    }

    /// Offsets the file covers (`0..len`).
    pub fn len(&self) -> usize {
        self.n
    }

    /// Whether it covers no offset.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// The file's bytes (mapped, read from the page cache or the disk).
    pub fn bytes(&self) -> usize {
        self.map.len()
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(dir: &Path, bytes: &[u8]) -> PathBuf {
        let path = dir.join("payloads.bin");
        std::fs::write(&path, bytes).unwrap();
        path
    }

    /// The payload file of `strings` (`None`: no payload), as its bytes.
    fn encoded(dir: &Path, strings: &[Option<&[u8]>]) -> Vec<u8> {
        let path = dir.join("encoded.bin");
        let _ = std::fs::remove_file(&path);
        write_new(&path, strings.len(), |o, out| {
            out.extend(strings[o as usize].iter().copied().flatten());
            Ok::<_, StorageError>(())
        })
        .unwrap();
        std::fs::read(&path).unwrap()
    }

    #[test]
    fn strings_come_back_by_offset() {
        let dir = tempfile::tempdir().unwrap();
        let strings = [Some(&b"{\"a\":1}"[..]), None, Some(&[][..]), Some(&b"[]"[..])];
        let bytes = encoded(dir.path(), &strings);
        // The documented layout: the count, the positions, the strings.
        let body: Vec<u8> =
            [4u64, 0, 7, 7, 7, 9].iter().flat_map(|p| p.to_le_bytes()).chain(*b"{\"a\":1}[]").collect();
        assert!(bytes == document::encode(MAGIC, VERSION, &body));
        let path = written(dir.path(), &bytes);
        let file = PayloadFile::open(&path).unwrap();
        assert_eq!(file.len(), 4);
        assert_eq!(file.get(0), Some(&b"{\"a\":1}"[..]));
        assert_eq!((file.get(1), file.get(2)), (None, None));
        assert_eq!(file.get(3), Some(&b"[]"[..]));
        assert_eq!((file.get(4), file.get(u32::MAX)), (None, None));
        let empty = PayloadFile::open(&written(dir.path(), &encoded(dir.path(), &[]))).unwrap();
        assert!(empty.is_empty() && empty.get(0).is_none());
    }

    #[test]
    fn damage_is_a_typed_error() {
        let dir = tempfile::tempdir().unwrap();
        let good = encoded(dir.path(), &[Some(&b"\"0\""[..]), Some(b"\"1\""), Some(b"\"2\"")]);
        // Every flipped byte is caught by the checksum.
        for at in 0..good.len() {
            let mut bad = good.clone();
            bad[at] ^= 0x10;
            let err = PayloadFile::open(&written(dir.path(), &bad)).unwrap_err();
            assert!(matches!(err, StorageError::Corrupt { .. } | StorageError::BadMagic { .. }), "{err}");
        }
        // A well-framed body whose positions run backwards, or past the strings.
        for body in [
            [&2u64.to_le_bytes()[..], &0u64.to_le_bytes(), &3u64.to_le_bytes(), &1u64.to_le_bytes(), b"abc"]
                .concat(),
            [&1u64.to_le_bytes()[..], &0u64.to_le_bytes(), &9u64.to_le_bytes(), b"abc"].concat(),
            [&1u64.to_le_bytes()[..], &1u64.to_le_bytes(), &3u64.to_le_bytes(), b"abc"].concat(),
            [&u64::MAX.to_le_bytes()[..], b"abc"].concat(),
            Vec::new(),
        ] {
            let path = written(dir.path(), &document::encode(MAGIC, VERSION, &body));
            let err = PayloadFile::open(&path).unwrap_err();
            assert!(matches!(err, StorageError::Corrupt { .. }), "{err}");
        }
    }
}
