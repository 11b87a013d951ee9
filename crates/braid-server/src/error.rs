//! One error for both protocols: a status and Qdrant's message.

use braid::Error;
use braid::storage::StorageError;

/// What a request failed with, as both protocols report it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ApiError {
    /// The kind of failure.
    pub kind: ErrorKind,
    /// The message for the client.
    pub message: String,
}

/// The kinds of failure, each with its HTTP status and gRPC code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ErrorKind {
    /// Malformed or refused input (400 / INVALID_ARGUMENT).
    BadRequest,
    /// No such collection or point (404 / NOT_FOUND).
    NotFound,
    /// The collection exists with another configuration (409 / ALREADY_EXISTS).
    Conflict,
    /// No API key given (401 / UNAUTHENTICATED).
    Unauthenticated,
    /// A wrong API key (403 / PERMISSION_DENIED).
    Forbidden,
    /// A body over the size limit (413 / RESOURCE_EXHAUSTED).
    TooLarge,
    /// The disk is full (507 / RESOURCE_EXHAUSTED).
    StorageFull,
    /// The query ran past its `timeout` (408 / DEADLINE_EXCEEDED).
    Timeout,
    /// The query was called off because its client went away (499 / CANCELLED); no
    /// one is left to read it, but logs see it.
    Cancelled,
    /// Anything else: an I/O error, damaged files (500 / INTERNAL).
    Internal,
    /// The cluster could not carry the call out now: no majority of the replicas
    /// answered, or the collection is not open here yet (503 / UNAVAILABLE).
    Unavailable,
}

impl ApiError {
    /// A 400 with `message`.
    pub fn bad_request(message: String) -> ApiError {
        ApiError { kind: ErrorKind::BadRequest, message }
    }

    /// The HTTP status code.
    pub fn http_status(&self) -> u16 {
        match self.kind {
            ErrorKind::BadRequest => 400,
            ErrorKind::NotFound => 404,
            ErrorKind::Conflict => 409,
            ErrorKind::Unauthenticated => 401,
            ErrorKind::Forbidden => 403,
            ErrorKind::TooLarge => 413,
            ErrorKind::StorageFull => 507,
            ErrorKind::Timeout => 408,
            ErrorKind::Cancelled => 499,
            ErrorKind::Internal => 500,
            ErrorKind::Unavailable => 503,
        }
    }

    /// The gRPC status.
    pub fn grpc_status(&self) -> tonic::Status {
        use tonic::Code;
        let code = match self.kind {
            ErrorKind::BadRequest => Code::InvalidArgument,
            ErrorKind::NotFound => Code::NotFound,
            ErrorKind::Conflict => Code::AlreadyExists,
            ErrorKind::Unauthenticated => Code::Unauthenticated,
            ErrorKind::Forbidden => Code::PermissionDenied,
            ErrorKind::TooLarge | ErrorKind::StorageFull => Code::ResourceExhausted,
            ErrorKind::Timeout => Code::DeadlineExceeded,
            ErrorKind::Cancelled => Code::Cancelled,
            ErrorKind::Internal => Code::Internal,
            ErrorKind::Unavailable => Code::Unavailable,
        };
        tonic::Status::new(code, self.message.clone())
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> ApiError {
        let kind = match &e {
            Error::CollectionNotFound { .. } | Error::PointNotFound { .. } | Error::AliasNotFound { .. } => {
                ErrorKind::NotFound
            }
            Error::CollectionConflict { .. } => ErrorKind::Conflict,
            Error::Storage(StorageError::Io { kind: std::io::ErrorKind::StorageFull, .. }) => {
                ErrorKind::StorageFull
            }
            Error::Storage(_) | Error::Full { .. } => ErrorKind::Internal,
            // Refusals of what the request asked: its input, not the server, is wrong.
            Error::InvalidConfig { .. }
            | Error::InvalidName { .. }
            | Error::NameTaken { .. }
            | Error::Snapshot { .. }
            | Error::NotOnDisk { .. }
            | Error::UnknownVector { .. }
            | Error::Vector { .. }
            | Error::WrongKind { .. }
            | Error::Sparse { .. }
            | Error::Document { .. }
            | Error::InvalidKey { .. }
            | Error::PayloadTooDeep { .. }
            | Error::KeyTooLong { .. }
            | Error::PayloadNotObject
            | Error::EmptyBatch
            | Error::BatchTooLarge { .. }
            | Error::Limit { .. }
            | Error::Filter(_)
            | Error::Index(_)
            | Error::Fusion(_) => ErrorKind::BadRequest,
            Error::Query(braid::query::QueryError::Timeout) => ErrorKind::Timeout,
            Error::Query(braid::query::QueryError::Cancelled) => ErrorKind::Cancelled,
            Error::Query(q)
                if !matches!(
                    q,
                    braid::query::QueryError::SearchFailed { .. } | braid::query::QueryError::Panicked
                ) =>
            {
                ErrorKind::BadRequest
            }
            // A graph failure, a panic caught as an error, an invariant broken, and any
            // variant added later: the server's fault until shown otherwise.
            _ => ErrorKind::Internal,
        };
        let message = match kind {
            ErrorKind::NotFound => format!("Not found: {e}"),
            ErrorKind::BadRequest => format!("Wrong input: {e}"),
            _ => e.to_string(),
        };
        ApiError { kind, message }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_errors_are_400_and_server_failures_are_500() {
        let cases: Vec<(Error, u16)> = vec![
            (Error::PayloadTooDeep { depth: 70, max: 64 }, 400),
            (Error::KeyTooLong { len: 2000, max: 1024 }, 400),
            (Error::EmptyBatch, 400),
            (Error::CollectionNotFound { name: "x".into() }, 404),
            (Error::Internal { what: "a worker panicked".into() }, 500),
            (Error::Storage(StorageError::Poisoned { file: "wal".into() }), 500),
            (Error::Hnsw(braid::hnsw::HnswError::WorkerPanicked), 500),
            (Error::Query(braid::query::QueryError::SearchFailed { why: "damaged graph".into() }), 500),
            (Error::Query(braid::query::QueryError::MissingQuery), 400),
            (Error::Query(braid::query::QueryError::Panicked), 500),
            (Error::Query(braid::query::QueryError::Timeout), 408),
            (
                Error::Storage(StorageError::Io {
                    file: "wal".into(),
                    kind: std::io::ErrorKind::StorageFull,
                    message: "full".into(),
                }),
                507,
            ),
        ];
        for (error, status) in cases {
            let text = error.to_string();
            assert_eq!(ApiError::from(error).http_status(), status, "{text}");
        }
    }

    #[test]
    fn a_missing_collection_is_reported_in_qdrant_words() {
        let e = ApiError::from(Error::CollectionNotFound { name: "docs".into() });
        assert_eq!(e.message, "Not found: Collection `docs` doesn't exist!");
    }
}
