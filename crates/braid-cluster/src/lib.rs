//! Braid's cluster metadata: which peers make up a cluster and which collections it
//! holds, agreed through Raft so that every node answers with the same view.
//!
//! The consensus engine is [`openraft`]; this crate gives it what it asks of an
//! application: a log that survives restarts ([`store::LogStore`]: an append-only file
//! of checksummed records beside a small file for the vote), a state machine
//! ([`state::ClusterState`], with snapshots written to disk), and a network
//! ([`network`]: an internal gRPC service on the node's p2p port). [`ClusterNode`] puts
//! them together: it keeps its peer id in its directory, starts a new cluster or joins
//! one through a bootstrap peer, forwards proposals to the leader, and reports the
//! status Qdrant's `GET /cluster` shows. `docs/distributed.md` has the design.
//!
//! ```no_run
//! # async fn demo() -> Result<(), braid_cluster::ClusterError> {
//! use braid_cluster::{ClusterNode, MetaCommand, NodeConfig};
//! let first = ClusterNode::start(NodeConfig::new("/var/lib/braid/a", "127.0.0.1:6335".parse().unwrap(), "http://127.0.0.1:6335")).await?;
//! let second = ClusterNode::start(
//!     NodeConfig::new("/var/lib/braid/b", "127.0.0.1:6336".parse().unwrap(), "http://127.0.0.1:6336")
//!         .bootstrap("http://127.0.0.1:6335"),
//! ).await?;
//! second.propose(MetaCommand::CreateCollection { name: "docs".into(), config: serde_json::json!({}) }).await?;
//! assert!(first.state().collections.contains_key("docs"));
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]

mod error;
pub mod network;
mod node;
pub mod shard;
pub mod state;
pub mod store;

/// The Rust code `tonic` generated from `proto/internal.proto`.
#[allow(missing_docs, unreachable_pub, missing_debug_implementations, clippy::all)]
pub mod proto {
    tonic::include_proto!("braid.internal");
}

pub use error::ClusterError;
pub use node::{ClusterNode, ClusterStatus, NodeConfig, Role, Timing, peer_id};
pub use shard::{ApplyError, GroupStatus, Replica, ReplicaChange, ShardGroup, ShardTypes};
pub use state::{ClusterState, MetaCommand, MetaResponse};

/// A peer's id: a random number it draws when it first starts and keeps in its
/// directory (as Qdrant's peer ids).
pub type PeerId = u64;

openraft::declare_raft_types!(
    /// The types Braid's metadata group runs openraft with: commands and answers of
    /// [`state`], peers known by the URI of their p2p service.
    pub TypeConfig:
        D = MetaCommand,
        R = MetaResponse,
        NodeId = PeerId,
        Node = openraft::BasicNode,
        SnapshotData = std::io::Cursor<Vec<u8>>,
);

/// One entry of the metadata log.
pub type Entry = openraft::Entry<TypeConfig>;

/// What every Raft group of a node shares: peers by id and p2p URI, entries as
/// openraft makes them, snapshots as bytes. Implemented for every type configuration
/// that fits (the metadata's [`TypeConfig`], the shards' [`shard::ShardTypes`]).
pub trait GroupTypes:
    openraft::RaftTypeConfig<
        NodeId = PeerId,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<Self>,
        SnapshotData = std::io::Cursor<Vec<u8>>,
        D: Clone,
    >
{
}

impl<C> GroupTypes for C where
    C: openraft::RaftTypeConfig<
            NodeId = PeerId,
            Node = openraft::BasicNode,
            Entry = openraft::Entry<C>,
            SnapshotData = std::io::Cursor<Vec<u8>>,
            D: Clone,
        >
{
}
