//! One process owns a directory: an advisory lock on `LOCK`.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};

use crate::error::{IoContext, StorageError};

/// The lock file's name inside a database directory.
pub const LOCK_FILE: &str = "LOCK";

/// Holds the directory's lock until dropped. The lock is the operating system's
/// (`flock` on Unix), so it is released when the process dies, even by `kill -9`.
#[derive(Debug)]
pub struct DirLock {
    _file: File,
    dir: PathBuf,
}

impl DirLock {
    /// Takes the lock on `dir` (which must exist), or [`StorageError::Locked`] if it is
    /// held — by another process or by another open handle in this one.
    pub fn acquire(dir: &Path) -> Result<DirLock, StorageError> {
        let path = dir.join(LOCK_FILE);
        let file = OpenOptions::new().create(true).truncate(false).write(true).open(&path).at(&path)?;
        match file.try_lock() {
            Ok(()) => Ok(DirLock { _file: file, dir: dir.to_path_buf() }),
            Err(TryLockError::WouldBlock) => Err(StorageError::Locked { dir: dir.to_path_buf() }),
            Err(TryLockError::Error(e)) => Err(StorageError::io(&path, &e)),
        }
    }

    /// The locked directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}
