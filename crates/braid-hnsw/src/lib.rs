//! An HNSW graph (Malkov & Yashunin, 2016) for approximate nearest-neighbour search,
//! usable on its own.
//!
//! What it does:
//! - builds a navigable small-world graph over vectors addressed by
//!   [`PointOffset`](braid_core::PointOffset), read through the caller's
//!   [`VectorSource`](braid_core::VectorSource) — the graph stores links, never vectors;
//! - `m` / `ef_construct` at build and `ef` per search as in Qdrant and hnswlib, with
//!   `m0 = 2·m` on layer 0 and the paper's neighbour-selection heuristic;
//! - concurrent inserts from several threads, with searches running meanwhile;
//! - tombstone deletes that searches walk through but never return, and
//!   [`Hnsw::compact`] to drop them;
//! - link groups: extra links among the nodes that share a payload value (Qdrant's
//!   `payload_m`), walked by searches whose filter matches that value;
//! - search with a filter checked during the traversal, exact search over the same
//!   vectors, and [`Hnsw::choose_path`] to pick one from a cardinality estimate;
//! - a checksummed byte format ([`Hnsw::to_bytes`] / [`Hnsw::from_bytes`]).
//!
//! What it does not do: it knows nothing of payloads, JSON, external ids, the WAL or
//! files beyond its own encoding. Scores follow `braid-distance` (`docs/distance.md`).
//!
//! ```
//! use braid_core::{DenseVectors, Metric, PointOffset};
//! use braid_hnsw::{Hnsw, HnswConfig};
//!
//! // Eight points on a line; under Euclid the nearest to 2.9 are 3, then 2.
//! let mut vectors = DenseVectors::new(2);
//! for i in 0..8 {
//!     vectors.push(&[i as f32, 0.0]);
//! }
//! let graph = Hnsw::build(&vectors, Metric::Euclid, HnswConfig::default(), 1).unwrap();
//! let hits = graph.search(&vectors, &[2.9, 0.0], 2, 16, None).unwrap();
//! assert_eq!(hits[0].offset, PointOffset(3));
//! assert_eq!(hits[1].offset, PointOffset(2));
//! assert!((hits[0].score - 0.1).abs() < 1e-6); // the L2 distance
//! ```
#![forbid(unsafe_code)]

mod codec;
mod graph;
mod groups;
mod insert;
mod search;
mod upper;
mod visited;

use thiserror::Error;

pub use codec::{DecodeError, FORMAT_VERSION};
pub use graph::{GraphFile, Hnsw};
pub use groups::GROUP_SCAN_UP_TO;
pub use search::{
    BINARY_RESCORE_FACTOR, BINARY_RESCORE_MIN, CODED_SCAN_ADVANTAGE, FilteredWalk, GRAPH_COST_DIVISOR,
    GROUP_SEEDS, GROUP_WALK_COST, PathChoice, RESCORE_FACTOR, RESCORE_MIN, Rescore, SearchPath,
    TWO_HOP_BELOW, TWO_HOP_COST, TWO_HOP_FROM, TWO_HOP_SEEDS,
};

/// Build parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HnswConfig {
    /// Links per node on the upper layers; `2·m` on layer 0. At least 2.
    pub m: usize,
    /// Beam width while inserting. At least 1.
    pub ef_construct: usize,
    /// Seeds the level of every node, so single-threaded builds are reproducible.
    pub seed: u64,
}

impl Default for HnswConfig {
    /// Qdrant's defaults: `m = 16`, `ef_construct = 100`.
    fn default() -> Self {
        HnswConfig { m: 16, ef_construct: 100, seed: 0x5EED }
    }
}

impl HnswConfig {
    /// Links per node on layer 0.
    pub fn m0(&self) -> usize {
        2 * self.m
    }

    /// Checks the parameters.
    pub fn validate(&self) -> Result<(), HnswError> {
        if self.m < 2 || self.m > 1024 {
            return Err(HnswError::InvalidConfig { why: "m must be between 2 and 1024" });
        }
        if self.ef_construct == 0 || self.ef_construct > 1 << 20 {
            return Err(HnswError::InvalidConfig { why: "ef_construct must be between 1 and 2^20" });
        }
        Ok(())
    }
}

/// What went wrong.
#[derive(Clone, Debug, PartialEq, Error)]
#[non_exhaustive]
pub enum HnswError {
    /// A parameter is out of range.
    #[error("invalid HNSW configuration: {why}")]
    InvalidConfig {
        /// The rule broken.
        why: &'static str,
    },
    /// The query or a stored vector was refused.
    #[error(transparent)]
    Vector(#[from] braid_distance::VectorError),
    /// The vector source has another dimension than the graph.
    #[error("the vector source has dimension {source_dim}, the graph {graph}")]
    SourceDimension {
        /// The graph's.
        graph: usize,
        /// The source's.
        source_dim: usize,
    },
    /// One-byte codes that do not code the rows searched (another count, dimension or
    /// metric).
    #[error("{codes} vector codes do not match the {rows} rows searched")]
    CodesMismatch {
        /// Vectors coded.
        codes: usize,
        /// Rows in the source.
        rows: usize,
    },
    /// An offset beyond the graph's capacity or the source's length.
    #[error("offset {offset} is out of range (capacity {capacity})")]
    OffsetOutOfRange {
        /// The offset.
        offset: u32,
        /// The limit.
        capacity: usize,
    },
    /// The offset is already in the graph.
    #[error("offset {offset} is already in the graph")]
    AlreadyInserted {
        /// The offset.
        offset: u32,
    },
    /// No link group under this key ([`Hnsw::add_link_group`]).
    #[error("the graph has no link group {key:#x}")]
    UnknownGroup {
        /// The key asked for.
        key: u64,
    },
    /// The offset has not been inserted into the graph.
    #[error("offset {offset} is not in the graph")]
    NotInserted {
        /// The offset.
        offset: u32,
    },
    /// A build thread panicked.
    #[error("a build thread panicked")]
    WorkerPanicked,
    /// A serialised graph could not be read.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// A graph file could not be read.
    #[error("i/o error: {message}")]
    Io {
        /// The operating system's message.
        message: String,
    },
}
