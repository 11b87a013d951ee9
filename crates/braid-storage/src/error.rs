//! The storage error: every failure names the file it concerns.

use std::path::{Path, PathBuf};

use thiserror::Error;

/// What went wrong reading or writing a Braid directory. `Clone` and comparable so
/// that callers can hand it around and test for it; an I/O error is kept as its kind
/// and message.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum StorageError {
    /// The operating system refused a read, write, sync or rename.
    #[error("{}: {message}", file.display())]
    Io {
        /// The file or directory.
        file: PathBuf,
        /// The I/O error kind (`StorageFull` for a full disk).
        kind: std::io::ErrorKind,
        /// The operating system's message.
        message: String,
    },
    /// The file does not start with the magic number of the kind of file expected.
    #[error("{}: not a Braid {what} file", file.display())]
    BadMagic {
        /// The file.
        file: PathBuf,
        /// The kind of file expected.
        what: &'static str,
    },
    /// The file was written by a format version this build does not read.
    #[error("{}: format version {found} is not supported (this build reads version {supported})", file.display())]
    UnsupportedVersion {
        /// The file.
        file: PathBuf,
        /// The version in the file.
        found: u32,
        /// The version this build reads.
        supported: u32,
    },
    /// A checksum mismatch or a structure that cannot be: the file is damaged.
    #[error("{}: corrupt at byte {offset}: {why}", file.display())]
    Corrupt {
        /// The file.
        file: PathBuf,
        /// Where the damage was found.
        offset: u64,
        /// What is wrong.
        why: String,
    },
    /// Another process (or another handle in this one) has the directory open.
    #[error("{}: the database is open elsewhere (lock held on {})", dir.display(), dir.join(crate::LOCK_FILE).display())]
    Locked {
        /// The directory.
        dir: PathBuf,
    },
    /// An earlier write failed half-way and could not be undone; the log refuses
    /// further writes until the database is reopened.
    #[error("{}: an earlier write failed and could not be rolled back; reopen the database", file.display())]
    Poisoned {
        /// The log file.
        file: PathBuf,
    },
}

impl StorageError {
    /// Wraps an I/O error for `file`.
    pub fn io(file: &Path, error: &std::io::Error) -> StorageError {
        StorageError::Io { file: file.to_path_buf(), kind: error.kind(), message: error.to_string() }
    }

    /// A corrupt-file error.
    pub fn corrupt(file: &Path, offset: u64, why: impl Into<String>) -> StorageError {
        StorageError::Corrupt { file: file.to_path_buf(), offset, why: why.into() }
    }

    /// The file the error concerns.
    pub fn file(&self) -> &Path {
        match self {
            StorageError::Io { file, .. }
            | StorageError::BadMagic { file, .. }
            | StorageError::UnsupportedVersion { file, .. }
            | StorageError::Corrupt { file, .. }
            | StorageError::Poisoned { file } => file,
            StorageError::Locked { dir } => dir,
        }
    }
}

/// Attaches a path to `std::io::Result`s.
pub trait IoContext<T> {
    /// Maps the error to [`StorageError::Io`] naming `file`.
    fn at(self, file: &Path) -> Result<T, StorageError>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, file: &Path) -> Result<T, StorageError> {
        self.map_err(|e| StorageError::io(file, &e))
    }
}
