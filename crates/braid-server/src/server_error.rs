//! What starting, running or stopping a server can fail with.

use std::net::SocketAddr;
use std::path::PathBuf;

use thiserror::Error;

/// A failure of the server itself (a request's failure is an [`crate::ApiError`]).
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ServerError {
    /// A setting that cannot work.
    #[error("invalid setting: {why}")]
    Config {
        /// What is wrong.
        why: String,
    },
    /// The database directory could not be opened.
    #[error("cannot open {}: {source}", dir.display())]
    Open {
        /// The directory.
        dir: PathBuf,
        /// Why.
        #[source]
        source: braid::Error,
    },
    /// A listener could not be bound.
    #[error("cannot bind {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A listener or a background task stopped with an error (or panicked).
    #[error("{what} failed: {why}")]
    Task {
        /// Which one.
        what: &'static str,
        /// Why.
        why: String,
    },
    /// The checkpoint written when the server stops failed; the log still holds every
    /// synced write, so the next start replays it.
    #[error("the final flush failed: {0}")]
    Flush(#[source] braid::Error),
    /// The cluster node could not start (a bootstrap peer that does not answer, a
    /// directory that is another cluster's member under another URI).
    #[error("cluster: {0}")]
    Cluster(String),
    /// The signal handlers could not be installed.
    #[error("cannot listen for stop signals: {0}")]
    Signal(#[source] std::io::Error),
}

impl ServerError {
    pub(crate) fn task(what: &'static str) -> impl FnOnce(tokio::task::JoinError) -> ServerError {
        move |e| ServerError::Task { what, why: e.to_string() }
    }
}
