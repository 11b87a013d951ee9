//! The one error type of the facade: every lower error, wrapped, plus the facade's own.

use thiserror::Error;

/// Everything that can go wrong in a Braid call. Every variant is a refusal or a
/// failure that left the collection unchanged.
#[derive(Clone, Debug, PartialEq, Error)]
#[non_exhaustive]
pub enum Error {
    /// No collection of that name. The text is Qdrant's, which clients match on.
    #[error("Collection `{name}` doesn't exist!")]
    CollectionNotFound {
        /// The name.
        name: String,
    },
    /// A collection of that name exists with another configuration.
    #[error("collection `{name}` already exists with a different configuration")]
    CollectionConflict {
        /// The name.
        name: String,
    },
    /// No alias of that name (renaming one that does not exist).
    #[error("Alias `{name}` does not exist")]
    AliasNotFound {
        /// The name.
        name: String,
    },
    /// A name that an alias or a collection already holds: aliases and collections
    /// share one namespace.
    #[error("`{name}` is already {what}")]
    NameTaken {
        /// The name.
        name: String,
        /// `a collection` or `an alias`.
        what: &'static str,
    },
    /// Something only a database in a directory can do, asked of one in memory.
    #[error("{what} needs a database on disk (Database::open), not one in memory")]
    NotOnDisk {
        /// What was asked.
        what: &'static str,
    },
    /// A snapshot that cannot be restored: damaged, truncated, not a Braid snapshot,
    /// or of another kind than asked. Nothing was changed.
    #[error("snapshot `{name}`: {why}")]
    Snapshot {
        /// The snapshot (its file name or location).
        name: String,
        /// What is wrong.
        why: String,
    },
    /// A collection configuration that cannot work.
    #[error("invalid collection configuration: {why}")]
    InvalidConfig {
        /// What is wrong.
        why: String,
    },
    /// A collection name that is empty, too long, has characters outside
    /// `[A-Za-z0-9_.-]`, or is only dots.
    #[error("invalid collection name `{name}`: use 1 to 255 of A-Z a-z 0-9 _ - . (not only dots)")]
    InvalidName {
        /// The name.
        name: String,
    },
    /// A vector name the collection does not have.
    #[error("unknown vector name `{name}`; the collection has {available:?}")]
    UnknownVector {
        /// The name.
        name: String,
        /// The names there are.
        available: Vec<String>,
    },
    /// A vector refused by its space.
    #[error("vector `{space}`: {source}")]
    Vector {
        /// The space.
        space: String,
        /// What is wrong.
        #[source]
        source: braid_distance::VectorError,
    },
    /// A dense vector for a sparse space, or the reverse.
    #[error("`{name}` is a {is} space: {hint}")]
    WrongKind {
        /// The space.
        name: String,
        /// `dense` or `sparse`.
        is: &'static str,
        /// What it takes.
        hint: &'static str,
    },
    /// A sparse vector its space refused.
    #[error("sparse vector `{space}`: {source}")]
    Sparse {
        /// The space.
        space: String,
        /// What is wrong.
        #[source]
        source: braid_sparse::SparseError,
    },
    /// A multivector its space refused (no vectors, too many).
    #[error("multivector `{space}`: {why}")]
    Multivector {
        /// The space.
        space: String,
        /// What is wrong.
        why: String,
    },
    /// A document its model refused (unknown model, bad option, too long).
    #[error("document for `{space}`: {source}")]
    Document {
        /// The space.
        space: String,
        /// What is wrong.
        #[source]
        source: braid_text::TextError,
    },
    /// An operation on a point that does not exist.
    #[error("no point with id {id} found")]
    PointNotFound {
        /// The point.
        id: braid_core::PointId,
    },
    /// A payload key that is not a dotted path of object keys.
    #[error("payload key `{key}` is not a dotted path of object keys")]
    InvalidKey {
        /// The key.
        key: String,
    },
    /// A payload (or a `set_payload` key plus its payload) nested deeper than Braid
    /// stores: objects and arrays inside each other more than `max` levels.
    #[error("payload nests {depth} levels deep; at most {max} are allowed")]
    PayloadTooDeep {
        /// The depth found (counted up to the first level past the limit).
        depth: usize,
        /// The limit.
        max: usize,
    },
    /// A payload key longer than Braid accepts.
    #[error("payload key of {len} bytes; at most {max} are allowed")]
    KeyTooLong {
        /// The key's length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Something that cannot happen did: a bug in Braid, not in the request. Servers
    /// answer it as an internal error.
    #[error("internal error: {what}")]
    Internal {
        /// What broke.
        what: String,
    },
    /// A payload that is not a JSON object.
    #[error("a payload must be a JSON object")]
    PayloadNotObject,
    /// An empty batch.
    #[error("a batch needs at least one item")]
    EmptyBatch,
    /// A batch over the limit.
    #[error("a batch holds at most {max} items, got {got}")]
    BatchTooLarge {
        /// The limit.
        max: usize,
        /// The size given.
        got: usize,
    },
    /// A limit of 0 or over the maximum.
    #[error("limit must be between 1 and {max}, got {got}")]
    Limit {
        /// The maximum.
        max: usize,
        /// The value given.
        got: usize,
    },
    /// A malformed filter.
    #[error(transparent)]
    Filter(#[from] braid_filter::FilterError),
    /// A payload index that cannot be created.
    #[error(transparent)]
    Index(#[from] braid_filter::IndexError),
    /// A query refused or failed by the planner. A graph failure during a search is
    /// [`Error::Internal`], not `Query(SearchFailed { .. })`: one variant per failure.
    #[error(transparent)]
    Query(braid_query::QueryError),
    /// Client-side fusion refused its input.
    #[error(transparent)]
    Fusion(#[from] braid_fusion::FusionError),
    /// The graph refused an operation.
    #[error(transparent)]
    Hnsw(#[from] braid_hnsw::HnswError),
    /// Reading or writing the database's files failed; the error names the file.
    #[error(transparent)]
    Storage(#[from] braid_storage::StorageError),
    /// More points than one collection segment can address.
    #[error(
        "the collection is full ({max} point versions); a later version of Braid compacts and adds segments"
    )]
    Full {
        /// The limit.
        max: usize,
    },
}

impl From<braid_query::QueryError> for Error {
    fn from(e: braid_query::QueryError) -> Error {
        match e {
            braid_query::QueryError::SearchFailed { why } => Error::Internal { what: why },
            braid_query::QueryError::PointNotFound { id } => Error::PointNotFound { id },
            other => Error::Query(other),
        }
    }
}
