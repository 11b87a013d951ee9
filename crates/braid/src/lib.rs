//! Braid: a vector database for multi-model search, embedded in your program.
//!
//! A collection holds several **named vector spaces** — say a 384-d `text` space and a
//! 512-d `image` space — each with its own distance and HNSW settings. A query
//! prefetches candidates from each space and fuses them (RRF or DBSF) inside the
//! engine, filtered by payload and optionally re-ranked by one space. The API follows
//! Qdrant's model (collections, points with int or UUID ids, named vectors, JSON
//! payloads, search, query with prefetch), with the semantics written down in `docs/`.
//!
//! ```
//! use braid::{CollectionConfig, Database, Distance, Filter, Fusion, PointStruct, Prefetch, QueryRequest, VectorParams, field};
//! use serde_json::json;
//!
//! let db = Database::in_memory();
//! let products = db.get_or_create(
//!     "products",
//!     CollectionConfig::new()
//!         .vector("text", VectorParams::new(3, Distance::Cosine))
//!         .vector("image", VectorParams::new(2, Distance::Cosine)),
//! )?;
//! products.upsert(vec![
//!     PointStruct::new(1).vector("text", vec![1.0, 0.0, 0.0]).vector("image", vec![1.0, 0.0]).payload(json!({"category": "apparel"})),
//!     PointStruct::new(2).vector("text", vec![0.0, 1.0, 0.0]).vector("image", vec![0.9, 0.1]).payload(json!({"category": "shoes"})),
//! ])?;
//! let hits = products.query(
//!     QueryRequest::fusion(Fusion::rrf(), vec![
//!         Prefetch::nearest("text", vec![0.9, 0.1, 0.0], 20),
//!         Prefetch::nearest("image", vec![1.0, 0.0], 20),
//!     ])
//!     .filter(Filter::must([field("category").eq("apparel")])),
//! )?;
//! assert_eq!(hits[0].id, 1u64.into());
//! # Ok::<(), braid::Error>(())
//! ```
//!
//! The engine crates are re-exported whole for users who want one piece:
//! [`distance`], [`hnsw`], [`filter`], [`fusion`], [`query`].
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod collection;
mod config;
mod database;
mod error;
mod groups;
mod ids;
mod matrix;
mod ops;
mod point;
mod rows;
mod segment;
pub mod snapshot;
mod store;

pub use braid_distance as distance;
pub use braid_filter as filter;
pub use braid_fusion as fusion;
pub use braid_hnsw as hnsw;
pub use braid_query as query;
pub use braid_sparse as sparse;
pub use braid_storage as storage;
pub use braid_text as text;

pub use braid_core::Uuid;
pub use braid_filter::{Condition, FacetValue, Filter, IndexKind, field};
pub use braid_query::{
    ContextPair, Decay, Direction, Example, Expression, Formula, Fusion, LookupFrom, Mmr, OrderBy,
    OrderValue, Prefetch, QuantizationParams, Query, QueryRequest, Recommend, RecommendStrategy,
    SearchParams, Stop,
};
pub use braid_sparse::{SparseError, SparseVector};
pub use braid_text::{Bm25, Document, TextError};
pub use collection::{
    Collection, CollectionInfo, CollectionState, FacetHit, MAX_BATCH, MAX_KEY_BYTES, MAX_PAYLOAD_DEPTH,
    OptimizeReport, PayloadResidency, PointsSelector, QueryPoints, SearchRequest, SpaceMemory, Task,
};
pub use config::{
    CollectionConfig, Comparator, DEFAULT_THRESHOLD_KB, Datatype, Distance, HnswParams, MAX_DIM,
    MAX_MULTIVECTOR, Modifier, MultiVectorParams, Quantization, SparseVectorParams, VectorParams,
};
pub use database::{AliasOp, Database, apply_alias_ops, check_name};
pub use error::Error;
pub use groups::{
    GroupBy, GroupId, MAX_GROUPED, PointGroup, WithLookup, check_grouped, gather_groups, group_ids,
};
pub use matrix::{DistanceMatrix, MAX_MATRIX_SAMPLE, MatrixRequest};
pub use ops::EntryMark;
pub use point::{
    MultiVector, MultiVectors, NamedVectors, PointId, PointStruct, PointVectors, Record, ScoredPoint,
    SparseVectors, WithPayload, WithVectors,
};
pub use snapshot::{SnapshotDescription, SnapshotKind};
pub use store::{Durability, StorageOptions};
