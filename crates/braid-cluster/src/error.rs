use std::path::PathBuf;

/// What can go wrong in a cluster node.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// Reading or writing the node's own files.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// A file of the node's directory is damaged (a checksum or its JSON did not hold).
    #[error("{path} is damaged: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What did not hold.
        reason: String,
    },
    /// A setting that cannot be served (a malformed URI, an address already taken).
    #[error("{0}")]
    Config(String),
    /// A change was not committed within the time a proposal may wait: no leader, or
    /// a leader without a majority (voters down or cut off). A change that reached
    /// the leader's log may still be applied once a majority answers again.
    #[error(
        "no majority of the cluster's peers answered within {waited_ms} ms (a change that reached the leader may still be applied)"
    )]
    NoQuorum {
        /// How long the node tried.
        waited_ms: u64,
    },
    /// Another peer could not be reached.
    #[error("peer at {uri} is unreachable: {reason}")]
    Unreachable {
        /// The peer's p2p URI.
        uri: String,
        /// The transport's error.
        reason: String,
    },
    /// The consensus engine refused (a removed peer, an invalid membership change) or
    /// stopped.
    #[error("consensus: {0}")]
    Raft(String),
    /// The replicas refused a write (every replica alike: it is invalid for the shard).
    #[error("{0}")]
    Refused(String),
    /// No peer with this id is a member of the cluster.
    #[error("peer {0} is not a member of the cluster")]
    UnknownPeer(u64),
}

impl ClusterError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> ClusterError {
        let path = path.into();
        move |source| ClusterError::Io { path, source }
    }
}
