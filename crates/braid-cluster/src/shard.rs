//! Replicated shards: each shard's replicas form a Raft group of their own, whose log
//! entries are the shard's writes. A write is acknowledged once a majority of the
//! replicas has it in its log and the leader has applied it; every replica applies the
//! same entries in the same order, so replicas converge to the same contents.
//!
//! What a replica is — a Braid collection, or anything that applies writes
//! deterministically — is behind [`Replica`]. The group keeps its Raft log in its own
//! directory; the replica keeps its own data and, with every write, the *position*
//! the group hands it (the last log id applied and the group's membership), so that
//! after a restart the group resumes exactly after what the replica durably holds.

use std::collections::BTreeMap;
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::error::{ClientWriteError, InitializeError, RaftError};
use openraft::storage::RaftStateMachine;
use openraft::{
    BasicNode, EntryPayload, LogId, OptionalSend, RaftSnapshotBuilder, ServerState, Snapshot, SnapshotMeta,
    StorageError, StorageIOError, StoredMembership,
};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::network::{Dialer, GroupService, Method, Network, encode, raft_message};
use crate::node::{Answer, NOT_LEADER, Role, raft_error, settled};
use crate::proto::Json;
use crate::store::{LogStore, SnapshotFile};
use crate::{ClusterError, PeerId};

openraft::declare_raft_types!(
    /// The types a shard's group runs openraft with: writes and answers as JSON.
    pub ShardTypes:
        D = Value,
        R = Value,
        NodeId = PeerId,
        Node = BasicNode,
        SnapshotData = Cursor<Vec<u8>>,
);

/// A shard replica as its Raft group drives it.
///
/// `position` values are opaque JSON the group makes; a replica stores the one it was
/// last given durably *with* the write it came with (one record, so that a crash keeps
/// both or neither) and reports it back from [`Replica::position`].
pub trait Replica: Send + Sync + 'static {
    /// Applies `write` (`None`: an entry of the group's own, which changes no data but
    /// moves the position) and returns the answer for the proposer. Must be
    /// deterministic: replicas apply the same entries in the same order and must end
    /// in the same state. A write the replica refuses ([`ApplyError::Refused`]) is
    /// answered, not failed: every replica refuses it alike, and the position moves.
    fn apply(&self, position: &Value, write: Option<&Value>) -> Result<Value, ApplyError>;
    /// The position of the last entry applied that survives a restart.
    fn position(&self) -> Option<Value>;
    /// The replica's whole state as bytes [`Replica::install`] takes, with its position;
    /// everything applied so far is durable when this returns (the group may then purge
    /// its log up to that position).
    fn snapshot(&self) -> Result<(Option<Value>, Vec<u8>), String>;
    /// Replaces the replica's state with a snapshot's, made at `position`.
    fn install(&self, position: &Value, bytes: &[u8]) -> Result<(), String>;
    /// Answers a read of the replica's data, asked by any node of the cluster
    /// ([`crate::ClusterNode::read`]); what a request and its answer hold is the
    /// replica's to define (failures included: the answer is passed back as it is).
    /// Runs on a blocking thread. By default a replica serves no reads.
    fn read(&self, request: &Value) -> Value {
        let _ = request;
        Value::String("this replica serves no reads".into())
    }
}

/// Why a replica did not apply a write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ApplyError {
    /// The write is invalid for the shard (every replica finds so alike): the
    /// proposer gets [`ClusterError::Refused`] with this message.
    Refused(String),
    /// The replica could not apply anything (its storage failed): the group stops on
    /// this node, as a collection whose storage fails stops.
    Failed(String),
}

/// Where a replica is in its group's log.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Position {
    last_applied: Option<LogId<PeerId>>,
    membership: StoredMembership<PeerId, BasicNode>,
}

fn position_of(value: Option<Value>) -> Result<Position, String> {
    value.map_or(Ok(Position::default()), |v| serde_json::from_value(v).map_err(|e| e.to_string()))
}

/// The state machine of a shard's group: the replica, and its position in memory.
#[derive(Clone)]
struct ShardMachine {
    replica: Arc<dyn Replica>,
    position: Arc<Mutex<Position>>,
    snapshot_path: PathBuf,
    /// Held while an entry is applied and while the replica makes a snapshot, which
    /// openraft runs beside the applies: a snapshot never holds half an entry.
    gate: Arc<Mutex<()>>,
}

fn sm_error(e: impl std::fmt::Display) -> StorageError<PeerId> {
    StorageIOError::write_state_machine(openraft::AnyError::error(e.to_string())).into()
}

impl RaftSnapshotBuilder<ShardTypes> for ShardMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<ShardTypes>, StorageError<PeerId>> {
        let (position, data) = {
            let _gate = self.gate.lock();
            self.replica.snapshot().map_err(sm_error)?
        };
        let position = position_of(position).map_err(sm_error)?;
        let snapshot_id = match position.last_applied {
            Some(id) => format!("{}-{}", id.leader_id, id.index),
            None => "empty".to_string(),
        };
        let meta = SnapshotMeta {
            last_log_id: position.last_applied,
            last_membership: position.membership,
            snapshot_id,
        };
        let file = SnapshotFile { meta: meta.clone(), data };
        file.write(&self.snapshot_path)
            .map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), &e))?;
        Ok(file.into_snapshot())
    }
}

impl RaftStateMachine<ShardTypes> for ShardMachine {
    type SnapshotBuilder = Self;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<PeerId>>, StoredMembership<PeerId, BasicNode>), StorageError<PeerId>> {
        let position = self.position.lock();
        Ok((position.last_applied, position.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Value>, StorageError<PeerId>>
    where
        I: IntoIterator<Item = openraft::Entry<ShardTypes>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut out = Vec::new();
        for entry in entries {
            let mut position = self.position.lock().clone();
            position.last_applied = Some(entry.log_id);
            let write = match &entry.payload {
                EntryPayload::Normal(write) => Some(write),
                EntryPayload::Membership(m) => {
                    position.membership = StoredMembership::new(Some(entry.log_id), m.clone());
                    None
                }
                EntryPayload::Blank => None,
            };
            let value = serde_json::to_value(&position).map_err(sm_error)?;
            // A refusal is the write's answer (every replica refuses it alike); only
            // a failure to apply at all (the replica's storage) stops the group.
            let applied = {
                let _gate = self.gate.lock();
                self.replica.apply(&value, write)
            };
            let answer = match applied {
                Ok(answer) => serde_json::json!({"ok": answer}),
                Err(ApplyError::Refused(refused)) => serde_json::json!({"refused": refused}),
                Err(ApplyError::Failed(failed)) => return Err(sm_error(failed)),
            };
            *self.position.lock() = position;
            out.push(answer);
        }
        Ok(out)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError<PeerId>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<PeerId, BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<PeerId>> {
        let data = snapshot.into_inner();
        let position = Position { last_applied: meta.last_log_id, membership: meta.last_membership.clone() };
        let value = serde_json::to_value(&position).map_err(sm_error)?;
        self.replica.install(&value, &data).map_err(sm_error)?;
        SnapshotFile { meta: meta.clone(), data }
            .write(&self.snapshot_path)
            .map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), &e))?;
        *self.position.lock() = position;
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<ShardTypes>>, StorageError<PeerId>> {
        Ok(SnapshotFile::read(&self.snapshot_path)
            .map_err(|e| StorageIOError::read_snapshot(None, &e))?
            .map(SnapshotFile::into_snapshot))
    }
}

/// The envelope of a read a follower passed on to its leader.
const FORWARDED: &str = "forwarded to the leader";

/// A change of a shard group's replicas, carried out by its leader.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReplicaChange {
    /// Add the replica on `peer` (reached at `uri`): a learner until it has caught up
    /// with the log, then a voter.
    Add {
        /// The peer.
        peer: PeerId,
        /// Its p2p URI.
        uri: String,
    },
    /// Remove the replica on `peer` from the voters.
    Remove {
        /// The peer.
        peer: PeerId,
    },
}

/// A replica's answer to a write, as the group's state machine wraps it.
pub(crate) fn replica_answer(data: Value) -> Result<Value, ClusterError> {
    match data {
        Value::Object(mut m) if m.contains_key("ok") => Ok(m.remove("ok").unwrap_or(Value::Null)),
        Value::Object(mut m) if m.contains_key("refused") => Err(ClusterError::Refused(
            m.remove("refused").and_then(|v| v.as_str().map(String::from)).unwrap_or_default(),
        )),
        other => Err(ClusterError::Raft(format!("unexpected answer {other}"))),
    }
}

/// A shard's Raft group as one node runs it.
pub struct ShardGroup {
    name: String,
    replica: Arc<dyn Replica>,
    id: PeerId,
    raft: openraft::Raft<ShardTypes>,
    wait: Duration,
    dialer: Dialer,
}

/// What a group takes from the node that opens it: the node's peer id, how long a
/// proposal may wait, and how it connects to peers.
#[derive(Clone, Debug)]
pub(crate) struct Peering {
    pub(crate) id: PeerId,
    pub(crate) wait: Duration,
    pub(crate) dialer: Dialer,
}

impl std::fmt::Debug for ShardGroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShardGroup").field("name", &self.name).field("peer_id", &self.id).finish()
    }
}

/// A group's state as one node sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupStatus {
    /// The group's leader, as this node knows it.
    pub leader: Option<PeerId>,
    /// This node's role in the group.
    pub role: Role,
    /// The group's current term.
    pub term: u64,
    /// The last index applied to this node's replica.
    pub applied: u64,
    /// The replicas that vote, with their p2p URIs.
    pub members: BTreeMap<PeerId, String>,
}

/// A group name: letters, digits, `-`, `_`, `.` and `/` (a collection and its shard),
/// no `..`, at most 255 bytes.
pub(crate) fn check_name(name: &str) -> Result<(), ClusterError> {
    let ok = !name.is_empty()
        && name.len() <= 255
        && !name.contains("..")
        && !name.starts_with('/')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'));
    if ok { Ok(()) } else { Err(ClusterError::Config(format!("`{name}` is not a valid group name"))) }
}

impl ShardGroup {
    /// Opens the group `name` on this node: its log in `dir`, `replica` as its state,
    /// `members` (every replica's peer, with its p2p URI) as its first membership —
    /// or none for a replica being added, which the leader brings in.
    pub(crate) async fn open(
        node: Peering,
        name: &str,
        dir: &Path,
        members: Option<BTreeMap<PeerId, String>>,
        replica: Arc<dyn Replica>,
        config: openraft::Config,
    ) -> Result<ShardGroup, ClusterError> {
        let Peering { id, wait, dialer } = node;
        check_name(name)?;
        if members.as_ref().is_some_and(|m| !m.contains_key(&id)) {
            return Err(ClusterError::Config(format!("peer {id} is not among the replicas of `{name}`")));
        }
        std::fs::create_dir_all(dir).map_err(ClusterError::io(dir))?;
        let log = LogStore::<ShardTypes>::open(dir)?;
        let position = position_of(replica.position())
            .map_err(|reason| ClusterError::Corrupt { path: dir.to_path_buf(), reason })?;
        let machine = ShardMachine {
            replica: replica.clone(),
            position: Arc::new(Mutex::new(position)),
            snapshot_path: dir.join("raft-snapshot.json"),
            gate: Arc::default(),
        };
        let raft =
            openraft::Raft::new(id, Arc::new(config), Network::new(name, dialer.clone()), log, machine)
                .await
                .map_err(raft_error)?;
        if let Some(members) = members
            && !raft.is_initialized().await.map_err(raft_error)?
        {
            // Every replica initialises with the same membership, which is safe; the
            // ones that find the group formed already are told so and go on.
            let nodes: BTreeMap<PeerId, BasicNode> =
                members.iter().map(|(id, uri)| (*id, BasicNode::new(uri))).collect();
            match raft.initialize(nodes).await {
                Ok(()) | Err(RaftError::APIError(InitializeError::NotAllowed(_))) => {}
                Err(e) => return Err(raft_error(e)),
            }
        }
        Ok(ShardGroup { name: name.to_string(), replica, id, raft, wait, dialer })
    }

    /// The group's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Proposes a write and waits until a majority of the replicas has it and this
    /// node's replica has applied it; returns the replica's answer. Forwarded to the
    /// group's leader when this node does not lead it.
    pub async fn propose(&self, write: Value) -> Result<Value, ClusterError> {
        let deadline = Instant::now() + self.wait;
        let no_quorum = ClusterError::NoQuorum { waited_ms: self.wait.as_millis() as u64 };
        let answer = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok(here) = tokio::time::timeout(left, self.here(write.clone())).await else {
                return Err(no_quorum);
            };
            match here {
                Ok(answer) => break answer?,
                Err(Some(leader)) => {
                    let forwarded =
                        self.dialer.caller(&leader)?.propose::<_, Answer>(&self.name, &write).await;
                    if let Some(done) = settled(forwarded) {
                        break done?;
                    }
                }
                Err(None) => {}
            }
            if Instant::now() > deadline {
                return Err(no_quorum);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        self.raft
            .wait(Some(self.wait))
            .applied_index_at_least(Some(answer.index), "write applied here")
            .await
            .map_err(raft_error)?;
        replica_answer(answer.data)
    }

    /// Writes `write` if this node leads the group; else who leads, if known.
    async fn here(&self, write: Value) -> Result<Result<Answer, ClusterError>, Option<String>> {
        match self.raft.client_write(write).await {
            Ok(r) => Ok(Ok(Answer { index: r.log_id.index, data: r.data })),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(to))) => {
                Err(to.leader_node.map(|n| n.addr).filter(|_| to.leader_id != Some(self.id)))
            }
            Err(e) => Ok(Err(raft_error(e))),
        }
    }

    /// Carries out `change` if this node leads the group, else has the leader this
    /// node knows do it (one hop). An added replica is first a learner, made a voter
    /// once it has caught up with the log (within `timeout`).
    pub async fn change_replicas(
        &self,
        change: &ReplicaChange,
        timeout: Duration,
    ) -> Result<(), ClusterError> {
        let deadline = Instant::now() + self.wait;
        loop {
            match self.change_here(change, timeout).await {
                Ok(done) => return done,
                Err(Some(leader)) => {
                    let forwarded = self.dialer.caller(&leader)?.change_replicas(&self.name, change).await;
                    match forwarded {
                        Ok(Ok(())) => return Ok(()),
                        Ok(Err(why)) if why != NOT_LEADER => return Err(ClusterError::Raft(why)),
                        _ => {}
                    }
                }
                Err(None) => {}
            }
            if Instant::now() > deadline {
                return Err(ClusterError::NoQuorum { waited_ms: self.wait.as_millis() as u64 });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Where the group's leader is reached, when it is known and not this node.
    fn leader_uri(&self) -> Option<String> {
        let m = self.raft.metrics().borrow().clone();
        let leader = m.current_leader.filter(|l| *l != self.id)?;
        m.membership_config.membership().get_node(&leader).map(|n| n.addr.clone())
    }

    /// Carries out `change` if this node leads the group; else who leads, if known.
    async fn change_here(
        &self,
        change: &ReplicaChange,
        timeout: Duration,
    ) -> Result<Result<(), ClusterError>, Option<String>> {
        if self.status().role != Role::Leader {
            return Err(self.leader_uri());
        }
        let forward = |e: RaftError<PeerId, ClientWriteError<PeerId, BasicNode>>| match e {
            RaftError::APIError(ClientWriteError::ForwardToLeader(to)) => {
                Err(to.leader_node.map(|n| n.addr).filter(|_| to.leader_id != Some(self.id)))
            }
            other => Ok(Err(raft_error(other))),
        };
        match change {
            ReplicaChange::Add { peer, uri } => {
                // Waiting for the learner to catch up; a leader that loses its lead
                // meanwhile gives the change back, to be carried on by the next one
                // (adding a learner again is harmless).
                let deadline = Instant::now() + timeout;
                let added = self.raft.add_learner(*peer, BasicNode::new(uri), true);
                tokio::pin!(added);
                loop {
                    tokio::select! {
                        done = &mut added => match done {
                            Err(e) => return forward(e),
                            Ok(_) => break,
                        },
                        _ = tokio::time::sleep(Duration::from_millis(250)) => {
                            if self.status().role != Role::Leader {
                                return Err(self.leader_uri());
                            }
                            if Instant::now() > deadline {
                                return Ok(Err(ClusterError::Raft(format!(
                                    "the new replica on peer {peer} did not catch up within {} s",
                                    timeout.as_secs()
                                ))));
                            }
                        }
                    }
                }
                match self
                    .raft
                    .change_membership(openraft::ChangeMembers::AddVoterIds([*peer].into()), false)
                    .await
                {
                    Ok(_) => Ok(Ok(())),
                    Err(e) => forward(e),
                }
            }
            ReplicaChange::Remove { peer } => {
                match self
                    .raft
                    .change_membership(openraft::ChangeMembers::RemoveVoters([*peer].into()), false)
                    .await
                {
                    Ok(_) => Ok(Ok(())),
                    Err(e) => forward(e),
                }
            }
        }
    }

    /// Starts an election in the group now, with this node as candidate (a new
    /// group elects its first leader this way without waiting for a timeout).
    pub async fn elect(&self) -> Result<(), ClusterError> {
        self.raft.trigger().elect().await.map_err(raft_error)
    }

    /// The group as this node sees it.
    pub fn status(&self) -> GroupStatus {
        let m = self.raft.metrics().borrow().clone();
        let membership = m.membership_config.membership();
        GroupStatus {
            leader: m.current_leader,
            role: match m.state {
                ServerState::Leader => Role::Leader,
                ServerState::Follower => Role::Follower,
                ServerState::Candidate => Role::Candidate,
                ServerState::Learner => Role::Learner,
                ServerState::Shutdown => Role::Shutdown,
            },
            term: m.current_term,
            applied: m.last_applied.map_or(0, |l| l.index),
            members: membership
                .voter_ids()
                .filter_map(|id| membership.get_node(&id).map(|n| (id, n.addr.clone())))
                .collect(),
        }
    }

    /// Stops the group's Raft.
    pub(crate) async fn shutdown(&self) -> Result<(), ClusterError> {
        self.raft.shutdown().await.map_err(raft_error)
    }
}

/// A shard group as the node's service routes to it.
pub(crate) struct ShardService(pub(crate) Arc<ShardGroup>);

#[tonic::async_trait]
impl GroupService for ShardService {
    async fn message(&self, method: Method, body: &[u8]) -> Result<Json, serde_json::Error> {
        raft_message(&self.0.raft, method, body).await
    }

    async fn propose(&self, body: &[u8]) -> Result<Json, serde_json::Error> {
        let write: Value = serde_json::from_slice(body)?;
        let answer = match self.0.here(write).await {
            Ok(answer) => answer.map_err(|e| e.to_string()),
            Err(_) => Err(NOT_LEADER.to_string()),
        };
        Ok(encode(&answer))
    }

    async fn change_replicas(&self, body: &[u8]) -> Result<Json, serde_json::Error> {
        let change: ReplicaChange = serde_json::from_slice(body)?;
        // Once brought in, a learner catches up at the leader's pace; a peer asking
        // waits up to an hour (a large shard sent as a snapshot).
        let answer = match self.0.change_here(&change, Duration::from_secs(3_600)).await {
            Ok(done) => done.map_err(|e| e.to_string()),
            Err(_) => Err(NOT_LEADER.to_string()),
        };
        Ok(encode(&answer))
    }

    async fn read(&self, body: &[u8]) -> Result<Json, serde_json::Error> {
        let request: Value = serde_json::from_slice(body)?;
        // A read asked of a follower is answered by the leader (one hop), which has
        // applied every acknowledged write: a client reads its own writes through any
        // node. If the leader cannot be reached, this replica answers.
        let request = match request {
            Value::Object(mut m) if m.len() == 1 && m.contains_key(FORWARDED) => {
                m.remove(FORWARDED).unwrap_or(Value::Null)
            }
            request => {
                if let Some(leader) = self.0.leader_uri()
                    && let Ok(mut caller) = self.0.dialer.caller(&leader)
                {
                    let forwarded = serde_json::json!({ FORWARDED: request });
                    if let Ok(Ok(answer)) = caller.read(&self.0.name, &forwarded).await {
                        return Ok(encode(&Ok::<Value, String>(answer)));
                    }
                }
                request
            }
        };
        let replica = self.0.replica.clone();
        let answer =
            tokio::task::spawn_blocking(move || replica.read(&request)).await.map_err(|e| e.to_string());
        Ok(encode(&answer))
    }
}
