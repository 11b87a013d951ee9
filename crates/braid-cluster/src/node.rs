//! One node of a cluster: its peer id, its Raft instance, the internal gRPC service on
//! its p2p port, and the calls that must reach the leader.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::error::{ClientWriteError, RaftError};
use openraft::{BasicNode, ChangeMembers, ServerState};
use parking_lot::RwLock;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::{Request, Response, Status};

use crate::network::{Dialer, GroupService, Method, Network, encode, raft_message};
use crate::proto::raft_server::{Raft as RaftService, RaftServer};
use crate::proto::{JoinRequest, Json, RemovePeerRequest};
use crate::shard::{Peering, Replica, ShardGroup, ShardService};
use crate::state::{Applied, StateMachine};
use crate::store::{LogStore, write_atomically};
use crate::{ClusterError, ClusterState, MetaCommand, MetaResponse, PeerId, TypeConfig};

/// Raft's clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    /// How often the leader sends heartbeats.
    pub heartbeat: Duration,
    /// A follower that hears no leader for a random time between these two starts an
    /// election.
    pub election_min: Duration,
    /// See `election_min`.
    pub election_max: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            heartbeat: Duration::from_millis(200),
            election_min: Duration::from_millis(1000),
            election_max: Duration::from_millis(2000),
        }
    }
}

impl Timing {
    /// A fast clock for tests on loopback.
    pub fn fast() -> Timing {
        Timing {
            heartbeat: Duration::from_millis(50),
            election_min: Duration::from_millis(200),
            election_max: Duration::from_millis(400),
        }
    }
}

/// How a node starts.
#[derive(Debug)]
pub struct NodeConfig {
    dir: PathBuf,
    listen: SocketAddr,
    bound: Option<std::net::TcpListener>,
    uri: String,
    bootstrap: Option<String>,
    timing: Timing,
    wait: Duration,
    snapshot_every: u64,
    keep_behind_snapshot: u64,
}

impl NodeConfig {
    /// A node keeping its cluster files in `dir`, serving the internal service on
    /// `listen`, known to its peers as `uri` (`http://host:port`).
    pub fn new(dir: impl Into<PathBuf>, listen: SocketAddr, uri: impl Into<String>) -> NodeConfig {
        NodeConfig {
            dir: dir.into(),
            listen,
            bound: None,
            uri: uri.into(),
            bootstrap: None,
            timing: Timing::default(),
            wait: Duration::from_secs(10),
            snapshot_every: 5000,
            keep_behind_snapshot: 1000,
        }
    }

    /// Every group (the metadata, each shard) snapshots its state after this many log
    /// entries (5,000, openraft's default) and purges its log up to the snapshot, less
    /// [`NodeConfig::keep_behind_snapshot`] entries. A peer that falls behind a purge
    /// catches up from the snapshot.
    pub fn snapshot_every(mut self, entries: u64) -> NodeConfig {
        self.snapshot_every = entries.max(1);
        self
    }

    /// Log entries kept behind a snapshot (1,000), so that a peer a little behind
    /// catches up from the log rather than from a whole snapshot.
    pub fn keep_behind_snapshot(mut self, entries: u64) -> NodeConfig {
        self.keep_behind_snapshot = entries;
        self
    }

    /// Join the cluster the peer at `uri` belongs to (ignored by a node that is already
    /// a member: its directory says so). Without it, a new node starts a cluster of one.
    pub fn bootstrap(mut self, uri: impl Into<String>) -> NodeConfig {
        self.bootstrap = Some(uri.into());
        self
    }

    /// Serve the internal service on this listener, already bound (to the address
    /// given to [`NodeConfig::new`]), instead of binding one.
    pub fn listener(mut self, listener: std::net::TcpListener) -> NodeConfig {
        self.bound = Some(listener);
        self
    }

    /// Raft's clock (the default: heartbeats every 200 ms, elections after 1–2 s).
    pub fn timing(mut self, timing: Timing) -> NodeConfig {
        self.timing = timing;
        self
    }

    /// How long a join or a proposal waits for a leader before it fails (10 s).
    pub fn wait(mut self, wait: Duration) -> NodeConfig {
        self.wait = wait;
        self
    }
}

/// A node's place in the consensus.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Accepts proposals and replicates them.
    Leader,
    /// Follows a leader.
    Follower,
    /// Asking for votes.
    Candidate,
    /// Receives the log without voting (a node while it joins).
    Learner,
    /// Stopped.
    Shutdown,
}

/// What `GET /cluster` shows of a node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterStatus {
    /// This node's peer id.
    pub peer_id: PeerId,
    /// Every member (voters and learners) with its p2p URI.
    pub peers: BTreeMap<PeerId, String>,
    /// The members that vote.
    pub voters: BTreeSet<PeerId>,
    /// The current Raft term.
    pub term: u64,
    /// The index of the last log entry applied here.
    pub commit: u64,
    /// Entries in this node's log not applied yet.
    pub pending_operations: u64,
    /// The leader this node knows of.
    pub leader: Option<PeerId>,
    /// This node's role.
    pub role: Role,
    /// Whether this node votes.
    pub is_voter: bool,
}

struct Shared {
    id: PeerId,
    uri: String,
    raft: openraft::Raft<TypeConfig>,
    applied: Arc<RwLock<Applied>>,
    wait: Duration,
    timing: Timing,
    dir: PathBuf,
    snapshots: (u64, u64),
    dialer: Dialer,
    /// The shard groups this node holds a replica of, by name.
    shards: RwLock<std::collections::HashMap<String, Arc<ShardGroup>>>,
}

/// A running cluster node. Dropping it stops its service; [`ClusterNode::shutdown`]
/// also waits for Raft to stop.
pub struct ClusterNode {
    shared: Arc<Shared>,
    stop: parking_lot::Mutex<Option<oneshot::Sender<()>>>,
    server: parking_lot::Mutex<Option<JoinHandle<Result<(), tonic::transport::Error>>>>,
}

impl std::fmt::Debug for ClusterNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterNode")
            .field("peer_id", &self.shared.id)
            .field("uri", &self.shared.uri)
            .finish()
    }
}

/// The peer id of the node whose cluster directory is `dir`: drawn at its first start
/// and kept in `dir/peer_id` (a single-node server reports it too, as Qdrant does).
pub fn peer_id(dir: &Path) -> Result<PeerId, ClusterError> {
    let path = dir.join("peer_id");
    match std::fs::read_to_string(&path) {
        Ok(text) => text
            .trim()
            .parse()
            .map_err(|e| ClusterError::Corrupt { path: path.clone(), reason: format!("not a peer id: {e}") }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // Qdrant's peer ids are random too; 0 is left out (openraft has no use for it,
            // and it reads as "none" in logs).
            let id = rand::random_range(1..=u64::MAX >> 1);
            write_atomically(&path, id.to_string().as_bytes()).map_err(ClusterError::io(&path))?;
            Ok(id)
        }
        Err(e) => Err(ClusterError::Io { path, source: e }),
    }
}

/// The largest message between peers: one entry of a write batch (a request body is
/// 32 MiB by default), or a snapshot sent whole (which is why snapshots must become
/// streamed before large shards move: `docs/distributed.md`).
pub(crate) const MAX_MESSAGE_BYTES: usize = 1 << 30;

pub(crate) fn raft_error(e: impl std::fmt::Display) -> ClusterError {
    ClusterError::Raft(e.to_string())
}

/// openraft's settings for a group: the node's clock, a snapshot after `snapshot_every`
/// entries, and `keep` entries left in the log behind a snapshot.
pub(crate) fn raft_config(
    timing: Timing,
    snapshot_every: u64,
    keep: u64,
) -> Result<openraft::Config, ClusterError> {
    openraft::Config {
        cluster_name: "braid".into(),
        heartbeat_interval: timing.heartbeat.as_millis() as u64,
        election_timeout_min: timing.election_min.as_millis() as u64,
        election_timeout_max: timing.election_max.as_millis() as u64,
        snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(snapshot_every),
        // Entries per append message; the network also cuts a message at
        // `MESSAGE_BUDGET` bytes, as a shard's entries are write batches of up to a
        // request body each.
        max_payload_entries: 64,
        max_in_snapshot_log_to_keep: keep,
        ..Default::default()
    }
    .validate()
    .map_err(|e| ClusterError::Config(format!("Raft settings: {e}")))
}

impl ClusterNode {
    /// Starts a node: opens (or makes) its directory, serves the internal service, and
    /// either starts a cluster of one, joins through the bootstrap peer, or (a node
    /// that is already a member) takes its place again.
    pub async fn start(config: NodeConfig) -> Result<ClusterNode, ClusterError> {
        std::fs::create_dir_all(&config.dir).map_err(ClusterError::io(&config.dir))?;
        let id = peer_id(&config.dir)?;
        let log = LogStore::open(&config.dir)?;
        let machine = StateMachine::open(&config.dir)?;
        let applied = machine.applied.clone();
        // The membership as the log (or, before it, the snapshot) has it.
        let membership =
            log.last_membership().unwrap_or_else(|| applied.read().membership.membership().clone());
        if let Some(known) = membership.get_node(&id).filter(|n| n.addr != config.uri) {
            return Err(ClusterError::Config(format!(
                "peer {id} is a member of its cluster at {}, not {}: start it with its URI",
                known.addr, config.uri
            )));
        }
        let raft_config = raft_config(config.timing, config.snapshot_every, config.keep_behind_snapshot)?;
        let dialer = Dialer::from(config.listen);
        let raft =
            openraft::Raft::new(id, Arc::new(raft_config), Network::new("", dialer.clone()), log, machine)
                .await
                .map_err(raft_error)?;
        let address_error =
            |e: std::io::Error| ClusterError::Config(format!("p2p address {}: {e}", config.listen));
        let listener = match config.bound {
            Some(bound) => {
                bound.set_nonblocking(true).map_err(address_error)?;
                tokio::net::TcpListener::from_std(bound).map_err(address_error)?
            }
            None => tokio::net::TcpListener::bind(config.listen).await.map_err(address_error)?,
        };
        let shared = Arc::new(Shared {
            id,
            uri: config.uri.clone(),
            raft,
            applied,
            wait: config.wait,
            timing: config.timing,
            dir: config.dir.clone(),
            snapshots: (config.snapshot_every, config.keep_behind_snapshot),
            dialer,
            shards: RwLock::new(Default::default()),
        });
        let (stop, stopped) = oneshot::channel::<()>();
        let service = RaftServer::new(Service { shared: shared.clone() })
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES);
        let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
        let server = tokio::spawn(
            tonic::transport::Server::builder().add_service(service).serve_with_incoming_shutdown(
                incoming,
                async {
                    let _ = stopped.await;
                },
            ),
        );
        let node = ClusterNode {
            shared,
            stop: parking_lot::Mutex::new(Some(stop)),
            server: parking_lot::Mutex::new(Some(server)),
        };
        if !node.shared.raft.is_initialized().await.map_err(raft_error)? {
            match &config.bootstrap {
                None => {
                    let members = BTreeMap::from([(id, BasicNode::new(&config.uri))]);
                    node.shared.raft.initialize(members).await.map_err(raft_error)?;
                }
                Some(bootstrap) => node.join(bootstrap).await?,
            }
        }
        Ok(node)
    }

    /// Asks the peer at `bootstrap` to make this node a voter, retrying while the
    /// cluster has no leader or the peer does not answer yet.
    async fn join(&self, bootstrap: &str) -> Result<(), ClusterError> {
        let deadline = Instant::now() + self.shared.wait;
        let mut caller = self.shared.dialer.caller(bootstrap)?;
        loop {
            let failure = match caller.join::<Answer>(self.shared.id, &self.shared.uri).await {
                Ok(Ok(_)) => return Ok(()),
                Ok(Err(refused)) => refused,
                Err(unreachable) => unreachable.to_string(),
            };
            if Instant::now() > deadline {
                return Err(ClusterError::Unreachable { uri: bootstrap.to_string(), reason: failure });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// This node's peer id.
    pub fn peer_id(&self) -> PeerId {
        self.shared.id
    }

    /// The metadata as this node has applied it.
    pub fn state(&self) -> ClusterState {
        self.shared.applied.read().state.clone()
    }

    /// The configuration of one collection as this node has applied it (no copy of
    /// the rest of the metadata).
    pub fn collection(&self, name: &str) -> Option<serde_json::Value> {
        self.shared.applied.read().state.collections.get(name).cloned()
    }

    /// The collection alias `name` names, if it is an alias.
    pub fn alias(&self, name: &str) -> Option<String> {
        self.shared.applied.read().state.aliases.get(name).cloned()
    }

    /// The alias table, as applied here.
    pub fn aliases(&self) -> BTreeMap<String, String> {
        self.shared.applied.read().state.aliases.clone()
    }

    /// What `GET /cluster` reports of this node.
    pub fn status(&self) -> ClusterStatus {
        let m = self.shared.raft.metrics().borrow().clone();
        let membership = m.membership_config.membership();
        let voters: BTreeSet<PeerId> = membership.voter_ids().collect();
        let commit = m.last_applied.map_or(0, |l| l.index);
        ClusterStatus {
            peer_id: self.shared.id,
            peers: membership.nodes().map(|(id, node)| (*id, node.addr.clone())).collect(),
            is_voter: voters.contains(&self.shared.id),
            voters,
            term: m.current_term,
            commit,
            pending_operations: m.last_log_index.unwrap_or(0).saturating_sub(commit),
            leader: m.current_leader,
            role: match m.state {
                ServerState::Leader => Role::Leader,
                ServerState::Follower => Role::Follower,
                ServerState::Candidate => Role::Candidate,
                ServerState::Learner => Role::Learner,
                ServerState::Shutdown => Role::Shutdown,
            },
        }
    }

    /// Proposes a metadata change and waits until it is committed and applied here
    /// (the leader applies it first; this node's state has it when this returns). On a
    /// node that is not the leader the proposal is forwarded to the leader.
    pub async fn propose(&self, command: MetaCommand) -> Result<MetaResponse, ClusterError> {
        let answer = self.shared.on_leader(Call::Propose(command)).await?;
        self.wait_for_index(answer.index).await?;
        serde_json::from_value(answer.data).map_err(raft_error)
    }

    /// Removes a peer from the cluster (`DELETE /cluster/peer/{id}`).
    pub async fn remove_peer(&self, peer_id: PeerId) -> Result<(), ClusterError> {
        self.shared.on_leader(Call::Remove(peer_id)).await.map(drop)
    }

    /// Waits until this node has applied the log up to `index`, for at most the
    /// node's wait.
    pub async fn wait_for_index(&self, index: u64) -> Result<(), ClusterError> {
        self.shared
            .raft
            .wait(Some(self.shared.wait))
            .applied_index_at_least(Some(index), "proposal applied")
            .await
            .map(drop)
            .map_err(raft_error)
    }

    /// The index of the last metadata entry this node has applied.
    pub fn applied_index(&self) -> u64 {
        self.shared.raft.metrics().borrow().last_applied.map_or(0, |l| l.index)
    }

    /// Waits until this node has applied a metadata entry after `index`, or `timeout`
    /// passed; returns the index applied then (unchanged after a timeout).
    pub async fn changed_after(&self, index: u64, timeout: Duration) -> u64 {
        let _ =
            self.shared.raft.wait(Some(timeout)).applied_index_at_least(Some(index + 1), "a change").await;
        self.applied_index()
    }

    /// Opens this node's replica of the shard group `name`: its Raft log under the
    /// node's directory (`groups/<name>`), `replica` as its state, `members` (the peers
    /// holding its replicas, with their p2p URIs, this node among them) as its
    /// membership when the group is new. Opening a group that is open returns it.
    pub async fn open_group(
        &self,
        name: &str,
        members: BTreeMap<PeerId, String>,
        replica: Arc<dyn Replica>,
    ) -> Result<Arc<ShardGroup>, ClusterError> {
        self.start_group(name, Some(members), replica).await
    }

    /// Opens group `name` here: with `members` as its first membership, or none (a
    /// replica being added).
    async fn start_group(
        &self,
        name: &str,
        members: Option<BTreeMap<PeerId, String>>,
        replica: Arc<dyn Replica>,
    ) -> Result<Arc<ShardGroup>, ClusterError> {
        if let Some(open) = self.shared.shards.read().get(name) {
            return Ok(open.clone());
        }
        let dir = self.shared.dir.join("groups").join(name);
        let (every, keep) = self.shared.snapshots;
        let config = raft_config(self.shared.timing, every, keep)?;
        let group = ShardGroup::open(self.peering(), name, &dir, members, replica, config).await?;
        let group = Arc::new(group);
        self.shared.shards.write().insert(name.to_string(), group.clone());
        Ok(group)
    }

    fn peering(&self) -> Peering {
        Peering { id: self.shared.id, wait: self.shared.wait, dialer: self.shared.dialer.clone() }
    }

    /// Reads `request` from the replica of group `group` that the peer at `uri` holds
    /// ([`crate::Replica::read`] there); the answer is the replica's. A peer that does
    /// not run the group, or cannot be reached, is [`ClusterError::Unreachable`].
    pub async fn read(
        &self,
        group: &str,
        uri: &str,
        request: &serde_json::Value,
    ) -> Result<serde_json::Value, ClusterError> {
        let mut caller = self.shared.dialer.caller(uri)?;
        caller
            .read(group, request)
            .await?
            .map_err(|reason| ClusterError::Unreachable { uri: uri.to_string(), reason })
    }

    /// Proposes `write` to group `group`, which this node does not run, through its
    /// replicas at `uris` (the one leading it carries it out); answers once a majority
    /// has it and the leader applied it, with the leader's replica's answer. Retried
    /// while no replica answers as leader, up to the node's wait.
    pub async fn propose_to(
        &self,
        group: &str,
        uris: &[String],
        write: &serde_json::Value,
    ) -> Result<serde_json::Value, ClusterError> {
        self.on_members(uris, |mut caller| async move {
            let done = settled(caller.propose::<_, Answer>(group, write).await)?;
            Some(done.and_then(|answer| crate::shard::replica_answer(answer.data)))
        })
        .await
    }

    /// Runs `call` on the peers at `uris` in turn until one settles it (`Some`: the
    /// group's leader answered, or a peer refused), trying them all again while none
    /// does, up to the node's wait.
    async fn on_members<'a, T, F, Fut>(&'a self, uris: &'a [String], mut call: F) -> Result<T, ClusterError>
    where
        F: FnMut(crate::network::Caller) -> Fut,
        Fut: std::future::Future<Output = Option<Result<T, ClusterError>>>,
    {
        let deadline = Instant::now() + self.shared.wait;
        loop {
            for uri in uris {
                // A URI that does not parse is as unreachable as a peer that is down.
                if let Ok(caller) = self.shared.dialer.caller(uri)
                    && let Some(done) = call(caller).await
                {
                    return done;
                }
            }
            if Instant::now() > deadline {
                return Err(ClusterError::NoQuorum { waited_ms: self.shared.wait.as_millis() as u64 });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Carries out `change` in group `group`: through this node's own member of it when
    /// it runs the group, else through its replicas at `uris` (the one leading it does
    /// it). Retried while no replica answers as leader, up to the node's wait; adding a
    /// replica then waits for it to catch up (`timeout`).
    pub async fn change_replicas(
        &self,
        group: &str,
        uris: &[String],
        change: &crate::ReplicaChange,
        timeout: Duration,
    ) -> Result<(), ClusterError> {
        // Through this node's member of the group if it is one (not a replica still
        // waiting to be brought in).
        if let Some(open) = self.group(group).filter(|g| g.status().members.contains_key(&self.shared.id)) {
            return open.change_replicas(change, timeout).await;
        }
        self.on_members(uris, |mut caller| async move {
            let answer = match tokio::time::timeout(timeout, caller.change_replicas(group, change)).await {
                Ok(answer) => answer,
                Err(_) => {
                    return Some(Err(ClusterError::Raft(format!(
                        "the change of `{group}`'s replicas did not finish within {} s",
                        timeout.as_secs()
                    ))));
                }
            };
            match answer {
                Ok(Ok(())) => Some(Ok(())),
                Ok(Err(why)) if why != crate::node::NOT_LEADER => Some(Err(ClusterError::Raft(why))),
                _ => None,
            }
        })
        .await
    }

    /// Opens group `name` on this node as a replica being added to it: its Raft starts
    /// empty, not initialised, and waits for the group's leader to bring it in
    /// ([`ClusterNode::change_replicas`] with [`crate::ReplicaChange::Add`]).
    pub async fn join_group(
        &self,
        name: &str,
        replica: Arc<dyn Replica>,
    ) -> Result<Arc<ShardGroup>, ClusterError> {
        self.start_group(name, None, replica).await
    }

    /// An open shard group.
    pub fn group(&self, name: &str) -> Option<Arc<ShardGroup>> {
        self.shared.shards.read().get(name).cloned()
    }

    /// Stops this node's replica of a shard group (its files stay).
    pub async fn close_group(&self, name: &str) -> Result<(), ClusterError> {
        let group = self.shared.shards.write().remove(name);
        match group {
            Some(group) => group.shutdown().await,
            None => Ok(()),
        }
    }

    /// Stops this node's replica of a shard group and removes its files (the group's
    /// log, vote and snapshot); a group that is not open has its files removed too.
    pub async fn drop_group(&self, name: &str) -> Result<(), ClusterError> {
        crate::shard::check_name(name)?;
        self.close_group(name).await?;
        let dir = self.shared.dir.join("groups").join(name);
        match std::fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(ClusterError::Io { path: dir, source: e })
            }
            _ => Ok(()),
        }
    }

    /// Stops the node: the internal service, its shard groups, then the metadata's Raft.
    pub async fn shutdown(&self) -> Result<(), ClusterError> {
        if let Some(stop) = self.stop.lock().take() {
            let _ = stop.send(());
        }
        let server = self.server.lock().take();
        if let Some(server) = server {
            let _ = server.await;
        }
        let groups: Vec<Arc<ShardGroup>> = self.shared.shards.write().drain().map(|(_, g)| g).collect();
        for group in groups {
            group.shutdown().await?;
        }
        self.shared.raft.shutdown().await.map_err(raft_error)
    }
}

impl Drop for ClusterNode {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.get_mut().take() {
            let _ = stop.send(());
        }
    }
}

/// A call that only the leader can carry out.
#[derive(Clone, Debug)]
enum Call {
    Join { peer_id: PeerId, uri: String },
    Propose(MetaCommand),
    Remove(PeerId),
}

/// Not the leader: who is, if this node knows.
struct NotLeader(Option<String>);

/// What a node forwarded a leader-only call answers when it is not the leader (any
/// other error it answers is the call's own, and final).
pub(crate) const NOT_LEADER: &str = "not the leader";

/// A forwarded call's answer as the forwarding node takes it: done, final failure, or
/// (`None`) try again — the peer was not the leader, or could not be reached.
pub(crate) fn settled(
    forwarded: Result<Result<Answer, String>, ClusterError>,
) -> Option<Result<Answer, ClusterError>> {
    match forwarded {
        Ok(Ok(answer)) => Some(Ok(answer)),
        Ok(Err(why)) if why != NOT_LEADER => Some(Err(ClusterError::Raft(why))),
        _ => None,
    }
}

/// What the leader answers a call with: the index of the log entry it wrote (0: none
/// was needed) and the applied command's response.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct Answer {
    pub(crate) index: u64,
    pub(crate) data: serde_json::Value,
}

impl Shared {
    /// Carries out `call` on the leader: here if this node leads, else forwarded; retried
    /// while no leader is known, up to the node's wait.
    async fn on_leader(&self, call: Call) -> Result<Answer, ClusterError> {
        let deadline = Instant::now() + self.wait;
        let no_quorum = ClusterError::NoQuorum { waited_ms: self.wait.as_millis() as u64 };
        loop {
            // A leader without a majority waits for one indefinitely: bounded here.
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok(here) = tokio::time::timeout(left, self.here(&call)).await else {
                return Err(no_quorum);
            };
            match here {
                Ok(answer) => return answer,
                Err(NotLeader(Some(leader))) => {
                    if let Some(done) = settled(forward(&self.dialer, &leader, &call).await) {
                        return done;
                    }
                }
                Err(NotLeader(None)) => {}
            }
            if Instant::now() > deadline {
                return Err(no_quorum);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Carries out `call` if this node is the leader.
    async fn here(&self, call: &Call) -> Result<Result<Answer, ClusterError>, NotLeader> {
        let written = match call {
            Call::Propose(command) => self.raft.client_write(command.clone()).await,
            Call::Join { peer_id, uri } => {
                let members = self.raft.metrics().borrow().membership_config.clone();
                if members.voter_ids().any(|v| v == *peer_id) {
                    let known = members.membership().get_node(peer_id).map(|n| n.addr.clone());
                    return Ok(match known {
                        Some(addr) if addr != *uri => Err(ClusterError::Config(format!(
                            "peer {peer_id} is already a member at {addr}, not {uri}"
                        ))),
                        _ => Ok(Answer { index: 0, data: serde_json::Value::Null }),
                    });
                }
                match self.raft.add_learner(*peer_id, BasicNode::new(uri), true).await {
                    Ok(_) => {
                        self.raft
                            .change_membership(ChangeMembers::AddVoterIds([*peer_id].into()), false)
                            .await
                    }
                    Err(e) => Err(e),
                }
            }
            Call::Remove(peer_id) => {
                let members = self.raft.metrics().borrow().membership_config.clone();
                if members.membership().get_node(peer_id).is_none() {
                    return Ok(Err(ClusterError::UnknownPeer(*peer_id)));
                }
                let change = if members.voter_ids().any(|v| v == *peer_id) {
                    ChangeMembers::RemoveVoters([*peer_id].into())
                } else {
                    ChangeMembers::RemoveNodes([*peer_id].into())
                };
                self.raft.change_membership(change, false).await
            }
        };
        match written {
            Ok(response) => Ok(serde_json::to_value(response.data)
                .map(|data| Answer { index: response.log_id.index, data })
                .map_err(raft_error)),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(to))) => {
                Err(NotLeader(to.leader_node.map(|n| n.addr).filter(|addr| *addr != self.uri)))
            }
            Err(e) => Ok(Err(raft_error(e))),
        }
    }
}

/// Sends `call` to the leader at `uri`, which carries it out without forwarding again.
async fn forward(dialer: &Dialer, uri: &str, call: &Call) -> Result<Result<Answer, String>, ClusterError> {
    let mut caller = dialer.caller(uri)?;
    match call {
        Call::Propose(command) => caller.propose("", command).await,
        Call::Join { peer_id, uri } => caller.join(*peer_id, uri).await,
        Call::Remove(peer_id) => caller.remove_peer(*peer_id).await,
    }
}

struct Service {
    shared: Arc<Shared>,
}

fn bad_request(e: serde_json::Error) -> Status {
    Status::invalid_argument(format!("malformed message: {e}"))
}

impl Service {
    /// Runs a leader-only call for a peer: here if this node leads, else one hop on to
    /// the leader this node knows (whose own handler will not forward again).
    async fn leader_call(&self, call: Call, forwarded: bool) -> Json {
        leader_call(&self.shared, call, forwarded).await
    }

    /// The group a message is for: the metadata (no name) or a registered group.
    fn group(&self, name: &str) -> Result<Arc<dyn GroupService>, Status> {
        if name.is_empty() {
            return Ok(Arc::new(MetaGroup(self.shared.clone())));
        }
        match self.shared.shards.read().get(name) {
            Some(group) => Ok(Arc::new(ShardService(group.clone()))),
            None => Err(Status::not_found(format!("this node serves no group `{name}`"))),
        }
    }

    async fn message(&self, request: Request<Json>, method: Method) -> Result<Response<Json>, Status> {
        let json = request.into_inner();
        if json.to != 0 && json.to != self.shared.id {
            // For a node that was at this address: not this one's to answer.
            return Err(Status::unavailable(format!(
                "this is peer {}, not peer {} (another node at its address)",
                self.shared.id, json.to
            )));
        }
        let answer = self.group(&json.group)?.message(method, &json.body).await.map_err(bad_request)?;
        Ok(Response::new(answer))
    }
}

async fn leader_call(shared: &Shared, call: Call, forwarded: bool) -> Json {
    let answer = match shared.here(&call).await {
        Ok(answer) => answer.map_err(|e| e.to_string()),
        Err(NotLeader(Some(leader))) if !forwarded => match forward(&shared.dialer, &leader, &call).await {
            Ok(answer) => answer,
            Err(e) => Err(e.to_string()),
        },
        Err(NotLeader(_)) => Err(NOT_LEADER.to_string()),
    };
    encode(&answer)
}

/// The metadata group as the service routes to it.
struct MetaGroup(Arc<Shared>);

#[tonic::async_trait]
impl GroupService for MetaGroup {
    async fn message(&self, method: Method, body: &[u8]) -> Result<Json, serde_json::Error> {
        raft_message(&self.0.raft, method, body).await
    }

    async fn propose(&self, body: &[u8]) -> Result<Json, serde_json::Error> {
        let command: MetaCommand = serde_json::from_slice(body)?;
        Ok(leader_call(&self.0, Call::Propose(command), true).await)
    }
}

#[tonic::async_trait]
impl RaftService for Service {
    async fn append_entries(&self, request: Request<Json>) -> Result<Response<Json>, Status> {
        self.message(request, Method::Append).await
    }

    async fn vote(&self, request: Request<Json>) -> Result<Response<Json>, Status> {
        self.message(request, Method::Vote).await
    }

    async fn install_snapshot(&self, request: Request<Json>) -> Result<Response<Json>, Status> {
        self.message(request, Method::Snapshot).await
    }

    async fn join(&self, request: Request<JoinRequest>) -> Result<Response<Json>, Status> {
        let JoinRequest { peer_id, uri } = request.into_inner();
        Ok(Response::new(self.leader_call(Call::Join { peer_id, uri }, false).await))
    }

    async fn propose(&self, request: Request<Json>) -> Result<Response<Json>, Status> {
        let json = request.into_inner();
        let answer = self.group(&json.group)?.propose(&json.body).await.map_err(bad_request)?;
        Ok(Response::new(answer))
    }

    async fn change_replicas(&self, request: Request<Json>) -> Result<Response<Json>, Status> {
        let json = request.into_inner();
        let answer = self.group(&json.group)?.change_replicas(&json.body).await.map_err(bad_request)?;
        Ok(Response::new(answer))
    }

    async fn read(&self, request: Request<Json>) -> Result<Response<Json>, Status> {
        let json = request.into_inner();
        let answer = self.group(&json.group)?.read(&json.body).await.map_err(bad_request)?;
        Ok(Response::new(answer))
    }

    async fn remove_peer(&self, request: Request<RemovePeerRequest>) -> Result<Response<Json>, Status> {
        let RemovePeerRequest { peer_id } = request.into_inner();
        Ok(Response::new(self.leader_call(Call::Remove(peer_id), true).await))
    }
}
