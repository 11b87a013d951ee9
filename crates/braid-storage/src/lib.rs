//! Durable storage pieces for Braid, each usable alone:
//!
//! - [`wal`]: a write-ahead log of checksummed, sequence-numbered records with
//!   recovery that cuts a torn tail and refuses real damage;
//! - [`document`]: whole-file documents (magic, version, checksum) replaced atomically,
//!   for manifests and metadata;
//! - [`vectors`]: append-only vector files read through `memmap2`, and [`Rows`], a
//!   [`braid_core::VectorSource`] over a mapped prefix and an in-memory tail;
//! - [`payloads`]: payload files, one byte string per offset read from a mapping;
//! - [`private`]: a file mapped copy-on-write, part of it as atomic words changed in
//!   place (graphs kept on disk);
//! - [`DirLock`]: one process per directory;
//! - [`fault`]: a simulated full disk for tests.
//!
//! It deliberately knows nothing of points, payloads or collections: the facade
//! (`braid`) decides what a record or a document holds. The formats are described
//! byte by byte in `docs/storage.md`.
//!
//! ```
//! use braid_storage::wal::Wal;
//!
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("wal.log");
//! let mut wal = Wal::create(&path)?;
//! wal.append(1, b"first")?;
//! wal.append(2, b"second")?;
//! wal.sync()?;
//! drop(wal);
//! let (_, recovered) = Wal::open(&path)?;
//! assert_eq!(recovered.records.len(), 2);
//! assert_eq!(recovered.records[1].body, b"second");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
// `unsafe` only where ARCHITECTURE.md says: the module allowed below.
#![deny(unsafe_code)]

pub mod bytes;
pub mod document;
mod error;
pub mod fault;
mod lock;
pub mod payloads;
#[allow(unsafe_code)]
pub mod private;
#[allow(unsafe_code)]
pub mod vectors;
pub mod wal;

pub use error::{IoContext, StorageError};
pub use lock::{DirLock, LOCK_FILE};
pub use private::PrivateMap;
pub use vectors::{MappedVectors, Residency, Rows, RowsCheck, VectorFile};
