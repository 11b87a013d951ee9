//! `braid serve` as a node of a cluster (issue #19; `docs/distributed.md`).
//!
//! Collections are created and deleted through the cluster's metadata group, which
//! records for each its *placement*: the shard group that replicates it, the peers
//! holding a replica, and its configuration. Every node makes its own database match
//! the metadata (`reconcile`): it creates the collections placed on it and opens their
//! groups, and deletes the ones the metadata no longer has. Writes of both protocols
//! are proposed to the collection's group as entries ([`CollectionReplica`]: a batch
//! body in REST's shape, or gRPC's batch operations as protobuf) and answered once a
//! majority of the replicas has them and this node's replica has applied them. Reads
//! are answered by this node's replica.
//!
//! What this version serves: one shard per collection, a replica on every peer that
//! is a member when the collection is created. `shard_number` other than 1, or a
//! `replication_factor` other than the number of peers, is refused with the reason, as
//! are the calls that change a collection outside its points and payload indexes
//! (aliases, vector names, collection parameters, snapshot recovery): they are not
//! replicated yet, and serving them on one node only would leave the replicas
//! different.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use braid::{CollectionConfig, Database};
use braid_cluster::{ClusterError, ClusterNode, MetaCommand, NodeConfig, PeerId, Role, ShardGroup, Timing};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::error::{ApiError, ErrorKind};
use crate::replica::CollectionReplica;
use crate::server_error::ServerError;

/// How `braid serve` takes part in a cluster (Qdrant's `--uri` and `--bootstrap`, and
/// the p2p address its internal service listens on).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterConfig {
    /// Where the internal service between peers listens (Qdrant's p2p port, 6335).
    pub p2p: SocketAddr,
    /// How other peers reach this one (`http://host:port`); by default
    /// `http://<p2p address>`, which needs an address other than `0.0.0.0`.
    pub uri: Option<String>,
    /// A peer of the cluster to join; none starts a new cluster (or, on a directory
    /// that is a member already, takes its place again).
    pub bootstrap: Option<String>,
    /// Raft's clock (heartbeats, election timeouts).
    pub timing: Timing,
}

impl ClusterConfig {
    /// A node listening for peers on `p2p`, with Raft's default clock.
    pub fn new(p2p: SocketAddr) -> ClusterConfig {
        ClusterConfig { p2p, uri: None, bootstrap: None, timing: Timing::default() }
    }
}

/// Where a collection lives, as the metadata records it.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Placement {
    /// The shard group replicating it (a fresh name for every creation, so that a
    /// collection deleted and created again starts a new log).
    group: String,
    /// The peers holding a replica, with their p2p URIs.
    replicas: BTreeMap<PeerId, String>,
    /// Its configuration.
    config: CollectionConfig,
}

/// This server's part of the cluster.
#[derive(Debug)]
pub(crate) struct Cluster {
    node: ClusterNode,
    uri: String,
    p2p: SocketAddr,
    db: Database,
    dir: PathBuf,
    /// Which group each local collection belongs to (`placed.json`): written before a
    /// collection is created here and after one is deleted, so that a restart knows
    /// which local collections are the cluster's, and which are of an older group.
    placed: tokio::sync::Mutex<BTreeMap<String, String>>,
}

fn internal(what: &str) -> impl FnOnce(String) -> ApiError + '_ {
    move |why| ApiError { kind: ErrorKind::Internal, message: format!("{what}: {why}") }
}

/// A cluster failure as both protocols report it.
pub(crate) fn cluster_error(e: ClusterError) -> ApiError {
    let kind = match &e {
        ClusterError::Refused(_) | ClusterError::Config(_) => ErrorKind::BadRequest,
        ClusterError::UnknownPeer(_) => ErrorKind::NotFound,
        ClusterError::NoQuorum { .. } | ClusterError::Unreachable { .. } => ErrorKind::Unavailable,
        _ => ErrorKind::Internal,
    };
    ApiError { kind, message: e.to_string() }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    tokio::task::spawn_blocking(f).await.map_err(|e| e.to_string())?
}

impl Cluster {
    /// Starts this server's cluster node over `db` (whose directory is `data`): a new
    /// cluster, a join through the bootstrap peer, or the node's place again.
    pub(crate) async fn start(
        db: Database,
        data: &Path,
        config: &ClusterConfig,
    ) -> Result<Cluster, ServerError> {
        let refuse = |why: String| ServerError::Config { why };
        let dir = data.join("cluster");
        let placed_path = dir.join("placed.json");
        let placed: BTreeMap<String, String> = match std::fs::read(&placed_path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| refuse(format!("{} is damaged: {e}", placed_path.display())))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(refuse(format!("{}: {e}", placed_path.display()))),
        };
        let strangers: Vec<String> = db.list().into_iter().filter(|n| !placed.contains_key(n)).collect();
        if !strangers.is_empty() {
            return Err(refuse(format!(
                "the data directory holds collections that are not the cluster's ({}): a cluster node \
                 starts on an empty directory or on its own; bring collections in through a snapshot \
                 of a single server recovered into the cluster, or serve them without --p2p",
                strangers.join(", ")
            )));
        }
        let listener = std::net::TcpListener::bind(config.p2p)
            .map_err(|source| ServerError::Bind { addr: config.p2p, source })?;
        let bound = listener.local_addr().map_err(|source| ServerError::Bind { addr: config.p2p, source })?;
        let uri = match &config.uri {
            Some(uri) => uri.clone(),
            None if !bound.ip().is_unspecified() => format!("http://{bound}"),
            None => {
                return Err(refuse(format!(
                    "the p2p address {bound} listens on every interface: give --uri, the address other peers reach this one at"
                )));
            }
        };
        let mut node = NodeConfig::new(&dir, bound, &uri).listener(listener).timing(config.timing);
        if let Some(bootstrap) = &config.bootstrap {
            node = node.bootstrap(bootstrap);
        }
        let node = ClusterNode::start(node).await.map_err(|e| ServerError::Cluster(e.to_string()))?;
        let cluster = Cluster { node, uri, p2p: bound, db, dir, placed: tokio::sync::Mutex::new(placed) };
        if let Err(e) = cluster.reconcile().await {
            // Retried by the watch; the node serves meanwhile (reads of what it holds).
            tracing::warn!(error = %e, "making the local collections match the cluster's failed; retrying");
        }
        Ok(cluster)
    }

    /// How peers reach this node.
    pub(crate) fn uri(&self) -> &str {
        &self.uri
    }

    /// Where this node's internal service listens.
    pub(crate) fn p2p_addr(&self) -> SocketAddr {
        self.p2p
    }

    /// Keeps the local collections matching the metadata until `stop` turns true:
    /// after every metadata change, and once a second (retrying what failed).
    pub(crate) async fn watch(self: Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        let mut seen = self.node.applied_index();
        loop {
            tokio::select! {
                now = self.node.changed_after(seen, Duration::from_secs(1)) => {
                    seen = now;
                    if let Err(e) = self.reconcile().await {
                        tracing::warn!(error = %e, "making the local collections match the cluster's failed; retrying");
                    }
                }
                _ = stop.changed() => return,
            }
        }
    }

    fn placements(&self) -> BTreeMap<String, Placement> {
        self.node
            .state()
            .collections
            .into_iter()
            .filter_map(|(name, v)| match serde_json::from_value::<Placement>(v) {
                Ok(p) => Some((name, p)),
                Err(e) => {
                    tracing::error!(collection = %name, error = %e, "a collection's placement is unreadable");
                    None
                }
            })
            .collect()
    }

    /// One collection's placement, read alone: a write looks up its group here, so it
    /// must not copy and parse every collection's.
    fn placement(&self, name: &str) -> Option<Placement> {
        serde_json::from_value(self.node.collection(name)?)
            .map_err(
                |e| tracing::error!(collection = %name, error = %e, "a collection's placement is unreadable"),
            )
            .ok()
    }

    fn save(&self, placed: &BTreeMap<String, String>) -> Result<(), String> {
        let path = self.dir.join("placed.json");
        let bytes = serde_json::to_vec_pretty(placed).map_err(|e| e.to_string())?;
        braid_cluster::store::write_atomically(&path, &bytes).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Makes this node's collections and groups match the metadata: deletes the
    /// collections it no longer places here (or places in another group), creates the
    /// ones it places here, and opens their groups.
    async fn reconcile(&self) -> Result<(), String> {
        let mut placed = self.placed.lock().await;
        let me = self.node.peer_id();
        let wanted: BTreeMap<String, Placement> =
            self.placements().into_iter().filter(|(_, p)| p.replicas.contains_key(&me)).collect();
        let stale: Vec<(String, String)> = placed
            .iter()
            .filter(|(name, group)| wanted.get(*name).is_none_or(|p| p.group != **group))
            .map(|(n, g)| (n.clone(), g.clone()))
            .collect();
        for (name, group) in stale {
            self.node.drop_group(&group).await.map_err(|e| e.to_string())?;
            let (db, n) = (self.db.clone(), name.clone());
            blocking(move || db.delete_collection(&n).map_err(|e| e.to_string())).await?;
            placed.remove(&name);
            self.save(&placed)?;
            tracing::info!(collection = %name, group = %group, "deleted: the cluster no longer has it here");
        }
        for (name, p) in wanted {
            if placed.get(&name) != Some(&p.group) {
                placed.insert(name.clone(), p.group.clone());
                self.save(&placed)?;
            }
            if !self.db.collection_exists(&name) {
                let (db, n, config) = (self.db.clone(), name.clone(), p.config.clone());
                blocking(move || db.create_collection(&n, config).map(drop).map_err(|e| e.to_string()))
                    .await?;
                tracing::info!(collection = %name, group = %p.group, "created: placed here by the cluster");
            }
            if self.node.group(&p.group).is_none() {
                let replica =
                    CollectionReplica::new(self.db.clone(), &name, self.dir.join("work").join(&p.group));
                self.node
                    .open_group(&p.group, p.replicas, Arc::new(replica))
                    .await
                    .map_err(|e| e.to_string())?;
            }
        }
        Ok(())
    }

    /// Creates a collection on the cluster: checked here first (name, configuration,
    /// the placement this version serves), then agreed through the metadata, then
    /// made usable: the call returns once a majority of its replicas has it open.
    pub(crate) async fn create(
        &self,
        name: &str,
        config: CollectionConfig,
        shard_number: Option<u64>,
        replication_factor: Option<u64>,
    ) -> Result<(), ApiError> {
        braid::check_name(name)?;
        if let Some(n) = shard_number.filter(|n| *n != 1) {
            return Err(ApiError::bad_request(format!(
                "shard_number {n}: this version of Braid keeps a collection in one shard, replicated on \
                 every peer; sharding across peers is not served yet (docs/distributed.md)"
            )));
        }
        let status = self.node.status();
        let replicas: BTreeMap<PeerId, String> =
            status.peers.into_iter().filter(|(id, _)| status.voters.contains(id)).collect();
        if let Some(n) = replication_factor.filter(|n| *n != replicas.len() as u64) {
            return Err(ApiError::bad_request(format!(
                "replication_factor {n}: this version of Braid places a replica of every collection on \
                 every peer ({} here); give {} or leave it out (docs/distributed.md)",
                replicas.len(),
                replicas.len()
            )));
        }
        // Every node creates it from the metadata: a configuration that one of them
        // would refuse must be refused before it is agreed. Checked by creating it in
        // memory, with what only a database on disk serves (payloads and graphs on
        // disk) set aside.
        let mut probe = config.clone();
        probe.on_disk_payload = false;
        for space in probe.vectors.values_mut() {
            space.hnsw.on_disk = false;
        }
        Database::in_memory().create_collection(name, probe)?;
        let exists = || ApiError::from(braid::Error::CollectionConflict { name: name.to_string() });
        if self.node.collection(name).is_some() {
            return Err(exists());
        }
        let group = format!("c-{:016x}", rand::random::<u64>());
        let placement = Placement { group, replicas, config };
        let command = MetaCommand::CreateCollection {
            name: name.to_string(),
            config: serde_json::to_value(&placement).map_err(|e| internal("a placement")(e.to_string()))?,
        };
        let done = self.node.propose(command).await.map_err(cluster_error)?;
        if !done.changed {
            return Err(exists());
        }
        self.reconcile().await.map_err(internal("creating the collection here"))?;
        // This node asks for the new group's lead at once rather than after an
        // election timeout; another replica may win, which is as good.
        self.group_of(name)?.elect().await.map_err(cluster_error)?;
        // An empty entry commits once a majority of the replicas has the group open.
        self.group_of(name)?.propose(json!({"operations": []})).await.map_err(cluster_error)?;
        Ok(())
    }

    /// Deletes a collection from the cluster; `false` if it has no such collection.
    pub(crate) async fn delete(&self, name: &str) -> Result<bool, ApiError> {
        if self.node.collection(name).is_none() {
            return Ok(false);
        }
        let command = MetaCommand::DeleteCollection { name: name.to_string() };
        let done = self.node.propose(command).await.map_err(cluster_error)?;
        self.reconcile().await.map_err(internal("deleting the collection here"))?;
        Ok(done.changed)
    }

    fn group_of(&self, name: &str) -> Result<Arc<ShardGroup>, ApiError> {
        let Some(p) = self.placement(name) else {
            return Err(braid::Error::CollectionNotFound { name: name.to_string() }.into());
        };
        self.node.group(&p.group).ok_or_else(|| ApiError {
            kind: ErrorKind::Unavailable,
            message: format!("collection `{name}` is not open on this peer yet; try again in a moment"),
        })
    }

    /// Proposes `write` (an entry as [`CollectionReplica`] reads it) to the group of
    /// collection `name`; answers once a majority has it and this node applied it.
    pub(crate) async fn write(&self, name: &str, write: Value) -> Result<Value, ApiError> {
        self.group_of(name)?.propose(write).await.map_err(cluster_error)
    }

    /// `GET /cluster`, in Qdrant's shape.
    pub(crate) fn info_json(&self) -> Value {
        let s = self.node.status();
        let peers: serde_json::Map<String, Value> =
            s.peers.iter().map(|(id, uri)| (id.to_string(), json!({"uri": uri}))).collect();
        let (role, thread) = match s.role {
            Role::Leader => ("Leader", "working"),
            Role::Candidate => ("Candidate", "working"),
            Role::Follower | Role::Learner => ("Follower", "working"),
            Role::Shutdown => ("Follower", "stopped"),
        };
        json!({
            "status": "enabled",
            "peer_id": s.peer_id,
            "peers": peers,
            "raft_info": {
                "term": s.term,
                "commit": s.commit,
                "pending_operations": s.pending_operations,
                "leader": s.leader,
                "role": role,
                "is_voter": s.is_voter,
            },
            "consensus_thread_status": {
                "consensus_thread_status": thread,
                "last_update": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            },
            "message_send_failures": {},
        })
    }

    /// The replicas of collection `name`'s shard: the points this peer's replica
    /// holds (none: no replica here), and the other peers holding one.
    pub(crate) fn replicas(&self, name: &str) -> Result<(Option<usize>, Vec<PeerId>), ApiError> {
        let Some(p) = self.placement(name) else {
            return Err(braid::Error::CollectionNotFound { name: name.to_string() }.into());
        };
        let me = self.node.peer_id();
        let local = match self.db.collection(name) {
            Ok(c) if p.replicas.contains_key(&me) => Some(c.info().points_count),
            _ => None,
        };
        Ok((local, p.replicas.into_keys().filter(|id| *id != me).collect()))
    }

    /// `GET /collections/{c}/cluster`, in Qdrant's shape: shard 0 here if this peer
    /// holds a replica, and on every other replica's peer.
    pub(crate) fn collection_json(&self, name: &str) -> Result<Value, ApiError> {
        let (local, remote) = self.replicas(name)?;
        let local: Vec<Value> =
            local.map(|n| json!({"shard_id": 0, "points_count": n, "state": "Active"})).into_iter().collect();
        let remote: Vec<Value> =
            remote.iter().map(|id| json!({"shard_id": 0, "peer_id": id, "state": "Active"})).collect();
        Ok(json!({
            "peer_id": self.node.peer_id(),
            "shard_count": 1,
            "local_shards": local,
            "remote_shards": remote,
            "shard_transfers": [],
        }))
    }

    /// `DELETE /cluster/peer/{id}`: refused while the peer holds replicas (Qdrant
    /// asks for them to be moved first; moving replicas is not served yet).
    pub(crate) async fn remove_peer(&self, peer: PeerId) -> Result<(), ApiError> {
        let holding: Vec<String> = self
            .placements()
            .into_iter()
            .filter(|(_, p)| p.replicas.contains_key(&peer))
            .map(|(n, _)| n)
            .collect();
        if !holding.is_empty() {
            return Err(ApiError::bad_request(format!(
                "peer {peer} holds replicas of {}: delete those collections first (moving replicas \
                 between peers is not served yet)",
                holding.join(", ")
            )));
        }
        self.node.remove_peer(peer).await.map_err(cluster_error)
    }

    /// Stops the node (its groups, then the metadata's Raft).
    pub(crate) async fn shutdown(&self) -> Result<(), ClusterError> {
        self.node.shutdown().await
    }
}

/// The reason a call that changes a collection outside its points is refused on a
/// cluster node.
pub(crate) fn not_replicated(what: &str) -> ApiError {
    ApiError::bad_request(format!(
        "{what} is not served in distributed mode yet: it would change this peer's replica only \
         (docs/distributed.md)"
    ))
}
