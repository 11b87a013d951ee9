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
use braid_cluster::{ClusterError, ClusterNode, MetaCommand, NodeConfig, PeerId, Role, Timing};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::error::{ApiError, ErrorKind};
use crate::replica::CollectionReplica;
use crate::server_error::ServerError;
use crate::shards::{KeyToMake, ShardKey};

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

/// Where a collection lives, as the metadata records it: its shards (a point's shard
/// is `shards::shard_of` its id), each replicated by its own group on its peers.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(try_from = "StoredPlacement")]
pub(crate) struct Placement {
    /// The shards, by number.
    pub(crate) shards: Vec<ShardPlace>,
    /// Its configuration.
    pub(crate) config: CollectionConfig,
    /// Set for a collection sharded by the user (`sharding_method: custom`): its
    /// shards are made per shard key, and a point goes to the shards of the key its
    /// write names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) custom: Option<CustomSharding>,
    /// Qdrant's `write_consistency_factor` as given (1 when not): at most a majority
    /// of each shard's replicas, which is what acknowledges every write.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) write_consistency: Option<u64>,
}

/// The defaults of a collection sharded by the user, for the shard keys made
/// without their own.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub(crate) struct CustomSharding {
    /// Shards per key.
    pub(crate) shard_number: u64,
    /// Replicas per shard.
    pub(crate) replication_factor: u64,
}

/// One shard of a collection.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct ShardPlace {
    /// The group replicating it (a fresh name for every creation, so that a
    /// collection deleted and created again starts a new log).
    pub(crate) group: String,
    /// The peers holding a replica, with their p2p URIs.
    pub(crate) replicas: BTreeMap<PeerId, String>,
    /// Of those, the ones whose replica is being filled (added by `replicate_shard` or
    /// `move_shard` and not caught up yet): no read goes to them, and they are
    /// reported `Partial`.
    #[serde(default, skip_serializing_if = "std::collections::BTreeSet::is_empty")]
    pub(crate) joining: std::collections::BTreeSet<PeerId>,
    /// Its number where that is not its position (the shards of a collection sharded
    /// by the user keep theirs when another key's shards are dropped).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) id: Option<u32>,
    /// The shard key it holds the points of (collections sharded by the user).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) key: Option<ShardKey>,
}

impl ShardPlace {
    /// The peers reads of this shard may go to.
    pub(crate) fn readable(&self) -> impl Iterator<Item = (&PeerId, &String)> {
        self.replicas.iter().filter(|(id, _)| !self.joining.contains(id))
    }
}

/// A placement as the metadata holds it: with its shards, or (written before
/// collections had several) one shard's group and replicas. Read through a JSON value
/// (not an untagged enum, whose buffering cannot read the peer ids keying a map).
#[derive(Deserialize)]
struct StoredPlacement(Value);

#[derive(Deserialize)]
struct OneShard {
    group: String,
    replicas: BTreeMap<PeerId, String>,
    config: CollectionConfig,
}

#[derive(Deserialize)]
struct Sharded {
    shards: Vec<ShardPlace>,
    config: CollectionConfig,
    #[serde(default)]
    custom: Option<CustomSharding>,
    #[serde(default)]
    write_consistency: Option<u64>,
}

impl TryFrom<StoredPlacement> for Placement {
    type Error = serde_json::Error;

    fn try_from(StoredPlacement(value): StoredPlacement) -> Result<Placement, serde_json::Error> {
        if value.get("shards").is_some() {
            let Sharded { shards, config, custom, write_consistency } = serde_json::from_value(value)?;
            return Ok(Placement { shards, config, custom, write_consistency });
        }
        let OneShard { group, replicas, config } = serde_json::from_value(value)?;
        let shard = ShardPlace { group, replicas, joining: Default::default(), id: None, key: None };
        Ok(Placement { shards: vec![shard], config, custom: None, write_consistency: None })
    }
}

impl Placement {
    /// The local collection holding shard `shard` of collection `name` on a peer with
    /// a replica of it: the collection's own name when it has one shard (as on a single
    /// server), else the shard's group name (unique, and not a name users pick).
    pub(crate) fn local_name(&self, name: &str, shard: usize) -> String {
        if self.shards.len() == 1 && self.custom.is_none() {
            name.to_string()
        } else {
            self.shards[shard].group.clone()
        }
    }

    /// The number of the shard at position `i`.
    pub(crate) fn shard_id(&self, i: usize) -> u32 {
        self.shards[i].id.unwrap_or(i as u32)
    }

    /// The position of shard number `id`.
    fn position(&self, id: u64) -> Option<usize> {
        (0..self.shards.len()).find(|&i| u64::from(self.shard_id(i)) == id)
    }

    /// The shard keys, in the order they were made.
    pub(crate) fn keys(&self) -> Vec<ShardKey> {
        let mut keys: Vec<ShardKey> = Vec::new();
        for key in self.shards.iter().filter_map(|s| s.key.as_ref()) {
            if !keys.contains(key) {
                keys.push(key.clone());
            }
        }
        keys
    }

    /// The positions of the shards holding key `key`'s points.
    pub(crate) fn shards_of(&self, key: &ShardKey) -> Vec<usize> {
        (0..self.shards.len()).filter(|&i| self.shards[i].key.as_ref() == Some(key)).collect()
    }

    /// The placement of the shards of `keys` only (every shard when `None`): what a
    /// read naming those keys goes to. Keys are for collections sharded by the user;
    /// a key the collection does not have is refused, as in Qdrant.
    pub(crate) fn select(&self, name: &str, keys: Option<&[ShardKey]>) -> Result<Placement, ApiError> {
        let Some(keys) = keys else { return Ok(self.clone()) };
        self.check_custom(name)?;
        let mut picked: Vec<usize> = Vec::new();
        for key in keys {
            let of = self.shards_of(key);
            if of.is_empty() {
                return Err(no_key(key));
            }
            picked.extend(of.into_iter().filter(|i| !picked.contains(i)).collect::<Vec<_>>());
        }
        picked.sort_unstable();
        let mut p = self.clone();
        p.shards = picked
            .into_iter()
            .map(|i| ShardPlace { id: Some(self.shard_id(i)), ..self.shards[i].clone() })
            .collect();
        Ok(p)
    }

    /// Refuses shard keys for a collection sharded automatically.
    fn check_custom(&self, name: &str) -> Result<(), ApiError> {
        match self.custom {
            Some(_) => Ok(()),
            None => Err(auto_sharded(name)),
        }
    }

    /// Cuts `entry` by shard for a collection sharded by the user: each REST
    /// operation goes to the shards of the key it names (`shard_key`, taken out of
    /// it; several keys: to each), cut among them by point id; an operation naming
    /// no key goes to every shard if it selects points by filter, and is refused
    /// ("Shard key not specified", as in Qdrant) if it names points.
    fn split_custom(&self, entry: &Value) -> Result<Vec<Option<Value>>, ApiError> {
        let mut per_shard: Vec<Vec<Value>> = vec![Vec::new(); self.shards.len()];
        let parts_of = |entry: &Value,
                        to: &[usize],
                        per_shard: &mut Vec<Vec<Value>>|
         -> Result<(), ApiError> {
            let parts = crate::shards::split_entry(entry, to.len())?;
            for (part, &i) in parts.into_iter().zip(to) {
                if let Some(ops) = part.as_ref().and_then(|p| p.get("operations")).and_then(Value::as_array) {
                    per_shard[i].extend(ops.iter().cloned());
                }
            }
            Ok(())
        };
        if let Some(grpc) = entry.get("grpc") {
            return crate::shards::split_grpc_custom(grpc, self);
        }
        let ops = entry
            .get("operations")
            .and_then(Value::as_array)
            .ok_or_else(|| ApiError::bad_request("an entry holds a list of `operations`".into()))?;
        for op in ops {
            let mut op = op.clone();
            let (kind, body) =
                match op.as_object_mut().filter(|o| o.len() == 1).and_then(|o| o.iter_mut().next()) {
                    Some((kind, body)) => (kind.clone(), body),
                    // Malformed: every shard refuses it alike.
                    None => {
                        per_shard.iter_mut().for_each(|ops| ops.push(op.clone()));
                        continue;
                    }
                };
            let keys = crate::shards::take_shard_keys(body)?;
            let one = json!({"operations": [{kind.clone(): body.clone()}]});
            match keys {
                Some(keys) => {
                    for key in &keys {
                        let of = self.shards_of(key);
                        if of.is_empty() {
                            return Err(no_key(key));
                        }
                        parts_of(&one, &of, &mut per_shard)?;
                    }
                }
                None if crate::shards::op_names_points(&kind, body) => {
                    return Err(ApiError::bad_request(format!(
                        "Shard key not specified: collection sharded by the user needs `shard_key` on `{kind}`"
                    )));
                }
                None => {
                    let all: Vec<usize> = (0..self.shards.len()).collect();
                    for i in all {
                        per_shard[i].push(json!({kind.clone(): body.clone()}));
                    }
                }
            }
        }
        Ok(per_shard.into_iter().map(|ops| (!ops.is_empty()).then(|| json!({"operations": ops}))).collect())
    }
}

/// Why shard keys are refused for collection `name`, sharded by point ids.
fn auto_sharded(name: &str) -> ApiError {
    ApiError::bad_request(format!(
        "collection `{name}` places its points by their ids (`sharding_method: auto`): shard keys are for \
         collections created with `sharding_method: custom`"
    ))
}

/// A shard key a collection does not have, refused as Qdrant refuses it.
pub(crate) fn no_key(key: &ShardKey) -> ApiError {
    ApiError::bad_request(format!("Shard key {key} not found"))
}

/// The most shards a collection sharded by its ids may have, and a shard key.
pub(crate) const MAX_SHARDS: u64 = 64;

/// The most shards a collection sharded by the user may have over all its keys.
const MAX_SHARDS_CUSTOM: u64 = 1024;

/// `n` shards checked against [`MAX_SHARDS`] (`what` has them).
fn shards_in_range(n: u64, what: &str) -> Result<u64, ApiError> {
    match (1..=MAX_SHARDS).contains(&n) {
        true => Ok(n),
        false => Err(ApiError::bad_request(format!("shard_number {n}: {what} has 1 to {MAX_SHARDS} shards"))),
    }
}

/// `factor` replicas per shard checked against the `peers` that may hold them.
fn replicas_in_range(factor: u64, peers: usize) -> Result<u64, ApiError> {
    match factor >= 1 && factor <= peers as u64 {
        true => Ok(factor),
        false => Err(ApiError::bad_request(format!(
            "replication_factor {factor}: each shard has 1 to {peers} replicas here (one per peer; {peers} \
             peers may hold them)"
        ))),
    }
}

/// `write_consistency_factor` `w` checked against shards of `factor` replicas: a write
/// is acknowledged once a majority of a shard's replicas has it, which meets any
/// factor up to that majority.
fn consistency_in_range(w: u64, factor: u64) -> Result<(), ApiError> {
    let majority = factor / 2 + 1;
    match (1..=majority).contains(&w) {
        true => Ok(()),
        false => Err(ApiError::bad_request(format!(
            "write_consistency_factor {w}: Braid acknowledges a write once a majority of the shard's {factor} \
             replicas ({majority}) has it in a synced log, which meets 1 to {majority}; more is not served"
        ))),
    }
}

/// `n` new shards of `factor` replicas over `peers`: shard *i* on `factor` peers
/// from the *i*-th in order on (from the `first`-th for numbered shards), so that
/// shards and replicas spread evenly; numbered from `first` when `key` is given.
fn new_shards(
    n: u64,
    factor: u64,
    peers: &[(PeerId, String)],
    first: u32,
    key: Option<ShardKey>,
) -> Vec<ShardPlace> {
    (0..n as usize)
        .map(|i| ShardPlace {
            group: format!("c-{:016x}", rand::random::<u64>()),
            replicas: (0..factor as usize)
                .map(|k| peers[(first as usize + i + k) % peers.len()].clone())
                .collect(),
            joining: Default::default(),
            id: key.as_ref().map(|_| first + i as u32),
            key: key.clone(),
        })
        .collect()
}

/// The metadata command that replaces collection `name`'s placement `from` with `to`.
fn placement_update(name: &str, from: Value, to: &Placement) -> Result<MetaCommand, ApiError> {
    let to = serde_json::to_value(to).map_err(|e| internal("a placement")(e.to_string()))?;
    Ok(MetaCommand::UpdateCollection { name: name.to_string(), from, to })
}

/// A collection's placement as collection information reports it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Shape {
    pub(crate) shard_number: u32,
    pub(crate) replication_factor: u32,
    pub(crate) write_consistency_factor: u32,
    /// Sharded by the user (`sharding_method: custom`; then the numbers are each
    /// shard key's).
    pub(crate) custom: bool,
}

/// Where a collection's shards are, as cluster information reports them.
#[derive(Clone, Debug)]
pub(crate) struct ShardMap {
    pub(crate) shard_count: usize,
    /// The shards this peer holds, with their points and whether the replica is
    /// active (else being filled: `Partial`), and their shard key.
    pub(crate) local: Vec<(u32, usize, bool, Option<ShardKey>)>,
    /// The replicas on other peers: shard, peer, active, shard key.
    pub(crate) remote: Vec<(u32, PeerId, bool, Option<ShardKey>)>,
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

    /// Whether this node leads group `group` (its replica has applied every write
    /// acknowledged anywhere, but for the entries it is applying).
    fn leads(&self, group: &str) -> bool {
        self.node.group(group).is_some_and(|g| g.status().role == Role::Leader)
    }

    /// The collection `name` names: itself, or the collection an alias names.
    fn real<'a>(&self, name: &'a str) -> std::borrow::Cow<'a, str> {
        match self.node.alias(name) {
            Some(collection) => std::borrow::Cow::Owned(collection),
            None => std::borrow::Cow::Borrowed(name),
        }
    }

    /// Applies alias operations `ops` to the cluster's alias table, all or none, with
    /// the rules of a single server (`braid::apply_alias_ops`), through the metadata:
    /// every node resolves the aliases alike once it returns.
    pub(crate) async fn update_aliases(&self, ops: &[braid::AliasOp]) -> Result<(), ApiError> {
        self.compare_and_set(
            || {
                let state = self.node.state();
                let to = braid::apply_alias_ops(&state.aliases, |n| state.collections.contains_key(n), ops)?;
                Ok((to != state.aliases).then_some(MetaCommand::SetAliases { from: state.aliases, to }))
            },
            "the aliases kept changing meanwhile; try again".into(),
        )
        .await
    }

    /// Proposes the compare-and-set command `make` makes from the metadata as this
    /// node has applied it after a sync (`None`: nothing to change), made again while
    /// the state it was made from changed before it was applied; a conflict saying
    /// `conflict` when five tries found it changed each time.
    async fn compare_and_set(
        &self,
        mut make: impl FnMut() -> Result<Option<MetaCommand>, ApiError>,
        conflict: String,
    ) -> Result<(), ApiError> {
        for _ in 0..5 {
            self.node.propose(MetaCommand::Sync).await.map_err(cluster_error)?;
            let Some(command) = make()? else { return Ok(()) };
            if self.node.propose(command).await.map_err(cluster_error)?.changed {
                return Ok(());
            }
        }
        Err(ApiError { kind: ErrorKind::Conflict, message: conflict })
    }

    /// Every alias with the collection it names, sorted by alias.
    pub(crate) fn aliases(&self) -> Vec<(String, String)> {
        self.node.aliases().into_iter().collect()
    }

    /// The aliases of collection `name` (a collection's own name), sorted.
    pub(crate) fn collection_aliases(&self, name: &str) -> Result<Vec<String>, ApiError> {
        self.placement_of(name)?;
        Ok(self.node.aliases().into_iter().filter(|(_, c)| c == name).map(|(a, _)| a).collect())
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
        // The local collections the metadata wants here: local name → (group, the
        // shard's placement, the configuration).
        let mut wanted: BTreeMap<String, (String, ShardPlace, CollectionConfig)> = BTreeMap::new();
        for (name, p) in self.placements() {
            for (i, shard) in p.shards.iter().enumerate() {
                if shard.replicas.contains_key(&me) {
                    let local = p.local_name(&name, i);
                    wanted.insert(local, (shard.group.clone(), shard.clone(), p.config.clone()));
                }
            }
        }
        let stale: Vec<(String, String)> = placed
            .iter()
            .filter(|(name, group)| wanted.get(*name).is_none_or(|(g, _, _)| g != *group))
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
        for (name, (group, shard, config)) in wanted {
            if placed.get(&name) != Some(&group) {
                placed.insert(name.clone(), group.clone());
                self.save(&placed)?;
            }
            if !self.db.collection_exists(&name) {
                let (db, n) = (self.db.clone(), name.clone());
                blocking(move || db.create_collection(&n, config).map(drop).map_err(|e| e.to_string()))
                    .await?;
                tracing::info!(collection = %name, group = %group, "created: placed here by the cluster");
            }
            if self.node.group(&group).is_none() {
                let replica = Arc::new(CollectionReplica::new(
                    self.db.clone(),
                    &name,
                    self.dir.join("work").join(&group),
                ));
                // A replica being added waits for the group's leader to bring it in;
                // the others start (or resume) the group with its replicas.
                let opened = if shard.joining.contains(&me) {
                    self.node.join_group(&group, replica).await
                } else {
                    self.node.open_group(&group, shard.replicas, replica).await
                };
                opened.map_err(|e| e.to_string())?;
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
        write_consistency: Option<u64>,
        custom: bool,
    ) -> Result<(), ApiError> {
        braid::check_name(name)?;
        let shard_number = shards_in_range(shard_number.unwrap_or(1), "a collection")?;
        let peers = self.voters();
        let factor = replicas_in_range(replication_factor.unwrap_or(peers.len() as u64), peers.len())?;
        consistency_in_range(write_consistency.unwrap_or(1), factor)?;
        // Every node creates it from the metadata: a configuration that one of them
        // would refuse must be refused before it is agreed. Checked by creating it in
        // memory, with what only a database on disk serves (payloads and graphs on
        // disk) set aside.
        Database::in_memory().create_collection(name, probe(&config))?;
        let exists = || ApiError::from(braid::Error::CollectionConflict { name: name.to_string() });
        if self.node.collection(name).is_some() {
            return Err(exists());
        }
        if self.node.alias(name).is_some() {
            return Err(braid::Error::NameTaken { name: name.to_string(), what: "an alias" }.into());
        }
        // A collection sharded by the user starts without shards: its keys make them.
        let (shards, custom) = match custom {
            true => (Vec::new(), Some(CustomSharding { shard_number, replication_factor: factor })),
            false => (new_shards(shard_number, factor, &peers, 0, None), None),
        };
        let placement = Placement { shards, config, custom, write_consistency };
        let command = MetaCommand::CreateCollection {
            name: name.to_string(),
            config: serde_json::to_value(&placement).map_err(|e| internal("a placement")(e.to_string()))?,
        };
        let done = self.node.propose(command).await.map_err(cluster_error)?;
        if !done.changed {
            return Err(exists());
        }
        self.reconcile().await.map_err(internal("creating the collection here"))?;
        self.start_shards(&placement, 0..placement.shards.len()).await
    }

    /// Waits for the new shards at positions `new` of `placement` to be usable: a
    /// majority of each one's replicas has its group open.
    async fn start_shards(&self, placement: &Placement, new: std::ops::Range<usize>) -> Result<(), ApiError> {
        for i in new {
            let shard = &placement.shards[i];
            // This node asks for the lead of the groups it is in at once rather than
            // after an election timeout (another replica may win, which is as good) —
            // once the replicas have the group open, so that the vote reaches them
            // (up to 2 s; a majority is enough, the election timeout covers the rest).
            if let Some(group) = self.node.group(&shard.group) {
                self.replicas_open(shard, Duration::from_secs(2)).await;
                group.elect().await.map_err(cluster_error)?;
            }
            // An empty entry commits once a majority of the replicas has the group open.
            self.write_shard(placement, i, &json!({"operations": []})).await?;
        }
        Ok(())
    }

    /// The peers that vote in the metadata, with their URIs, in peer-id order.
    fn voters(&self) -> Vec<(PeerId, String)> {
        let status = self.node.status();
        status.peers.into_iter().filter(|(id, _)| status.voters.contains(id)).collect()
    }

    /// `PUT /collections/{c}/shards`: makes shard key `key`'s shards (`shards_number`
    /// of them, each with `replication_factor` replicas, the collection's defaults
    /// when not given) on the peers of `placement` (every peer when not given).
    pub(crate) async fn create_shard_key(&self, name: &str, make: KeyToMake) -> Result<(), ApiError> {
        let name = &*self.real(name);
        let KeyToMake { key, shards_number, replication_factor, placement } = make;
        self.node.propose(MetaCommand::Sync).await.map_err(cluster_error)?;
        let (stored, mut p) = self.stored_placement(name)?;
        p.check_custom(name)?;
        let defaults = p.custom.unwrap_or(CustomSharding { shard_number: 1, replication_factor: 1 });
        if !p.shards_of(&key).is_empty() {
            return Err(ApiError::bad_request(format!("Shard key {key} already exists")));
        }
        let shard_number = shards_in_range(shards_number.unwrap_or(defaults.shard_number), "a shard key")?;
        let voters = self.voters();
        let peers: Vec<(PeerId, String)> = match placement {
            None => voters,
            Some(ids) if ids.is_empty() => voters,
            Some(ids) => ids
                .iter()
                .map(|id| {
                    voters.iter().find(|(v, _)| v == id).cloned().ok_or_else(|| ApiError {
                        kind: ErrorKind::NotFound,
                        message: format!("`placement`: no peer {id} in the cluster"),
                    })
                })
                .collect::<Result<_, _>>()?,
        };
        let factor = replicas_in_range(
            replication_factor.unwrap_or(defaults.replication_factor).min(peers.len() as u64),
            peers.len(),
        )?;
        consistency_in_range(p.write_consistency.unwrap_or(1), factor)?;
        if p.shards.len() as u64 + shard_number > MAX_SHARDS_CUSTOM {
            return Err(ApiError::bad_request(format!(
                "collection `{name}` would have {} shards: a collection sharded by the user has at most \
                 {MAX_SHARDS_CUSTOM}",
                p.shards.len() as u64 + shard_number
            )));
        }
        let first_id = (0..p.shards.len()).map(|i| p.shard_id(i) + 1).max().unwrap_or(0);
        let start = p.shards.len();
        p.shards.extend(new_shards(shard_number, factor, &peers, first_id, Some(key)));
        self.set_placement(name, stored, &p).await?;
        self.start_shards(&p, start..p.shards.len()).await
    }

    /// `POST /collections/{c}/shards/delete`: drops shard key `key` with its shards
    /// and their points.
    pub(crate) async fn delete_shard_key(&self, name: &str, key: &ShardKey) -> Result<(), ApiError> {
        let name = &*self.real(name);
        self.node.propose(MetaCommand::Sync).await.map_err(cluster_error)?;
        let (stored, mut p) = self.stored_placement(name)?;
        p.check_custom(name)?;
        if p.shards_of(key).is_empty() {
            return Err(no_key(key));
        }
        // Positions change: every remaining shard keeps its number.
        p.shards = (0..p.shards.len())
            .filter(|&i| p.shards[i].key.as_ref() != Some(key))
            .map(|i| ShardPlace { id: Some(p.shard_id(i)), ..p.shards[i].clone() })
            .collect();
        self.set_placement(name, stored, &p).await
    }

    /// Changes collection `name`'s schema (its parameters, or a vector name added or
    /// deleted) on every replica of every shard: checked on the configuration the
    /// metadata holds, proposed to every shard's group (each replica makes it in log
    /// order), then recorded in the metadata, which new replicas are made from.
    pub(crate) async fn change_schema(
        &self,
        name: &str,
        change: crate::replica::SchemaChange,
    ) -> Result<(), ApiError> {
        let name = &*self.real(name);
        self.node.propose(MetaCommand::Sync).await.map_err(cluster_error)?;
        let (_, p) = self.stored_placement(name)?;
        // Checked as every replica will make it, before it is agreed.
        let changed = change.config(p.config.clone())?;
        Database::in_memory().create_collection(name, probe(&changed))?;
        let entry = json!({"operations": [change.op()?]});
        let writes = (0..p.shards.len()).map(|i| self.write_shard(&p, i, &entry));
        for answer in futures_util::future::join_all(writes).await {
            answer?;
        }
        // The metadata's copy (a replica move may change the placement meanwhile).
        self.compare_and_set(
            || {
                let (stored, mut p) = self.stored_placement(name)?;
                p.config = change.config(p.config)?;
                Ok(Some(placement_update(name, stored, &p)?))
            },
            format!("the placement of `{name}` kept changing; its replicas have the change"),
        )
        .await
    }

    /// The shard keys of collection `name`, in the order they were made; `None` for
    /// a collection sharded automatically.
    pub(crate) fn shard_keys(&self, name: &str) -> Result<Option<Vec<ShardKey>>, ApiError> {
        let name = &*self.real(name);
        let p = self.placement_of(name)?;
        Ok(p.custom.map(|_| p.keys()))
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

    /// Waits until every replica of `shard` (this node's among them) runs its group, as
    /// a read of it shows, or `timeout` passes.
    async fn replicas_open(&self, shard: &ShardPlace, timeout: Duration) {
        let me = self.node.peer_id();
        let probe =
            serde_json::to_value(crate::shards::ShardRead::Count { filter: None }).unwrap_or(Value::Null);
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let mut open = 1;
            for (_, uri) in shard.replicas.iter().filter(|(id, _)| **id != me) {
                if self.node.read(&shard.group, uri, &probe).await.is_ok() {
                    open += 1;
                }
            }
            if open == shard.replicas.len() || tokio::time::Instant::now() > deadline {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn placement_of(&self, name: &str) -> Result<Placement, ApiError> {
        self.placement(name).ok_or_else(|| braid::Error::CollectionNotFound { name: name.to_string() }.into())
    }

    /// Proposes `write` to shard `shard`'s group: through this node's replica of it,
    /// or through the peers holding one.
    async fn write_shard(&self, p: &Placement, shard: usize, write: &Value) -> Result<Value, ApiError> {
        let place = &p.shards[shard];
        let me = self.node.peer_id();
        // A replica still being filled is no member yet: writes go through the others.
        let member = place.replicas.contains_key(&me) && !place.joining.contains(&me);
        if member && let Some(group) = self.node.group(&place.group) {
            return group.propose(write.clone()).await.map_err(cluster_error);
        }
        if member {
            return Err(ApiError {
                kind: ErrorKind::Unavailable,
                message: "the collection is not open on this peer yet; try again in a moment".into(),
            });
        }
        let uris: Vec<String> = place.readable().map(|(_, uri)| uri.clone()).collect();
        self.node.propose_to(&place.group, &uris, write).await.map_err(cluster_error)
    }

    /// Proposes `write` (an entry as [`CollectionReplica`] reads it) to collection
    /// `name`: to its one shard, or cut by shard (`shards::split_entry`) to each shard
    /// it touches, together. Answers once a majority of every touched shard's
    /// replicas has it; a write over several shards is not atomic across them (as in
    /// Qdrant): a shard that refuses its part leaves the others' parts applied.
    pub(crate) async fn write(&self, name: &str, write: Value) -> Result<Value, ApiError> {
        let name = &*self.real(name);
        let p = self.placement_of(name)?;
        let parts = match p.custom {
            Some(_) => p.split_custom(&write)?,
            None if crate::shards::entry_names_keys(&write) => return Err(auto_sharded(name)),
            None if p.shards.len() == 1 => return self.write_shard(&p, 0, &write).await,
            None => crate::shards::split_entry(&write, p.shards.len())?,
        };
        let writes = parts
            .iter()
            .enumerate()
            .filter_map(|(i, part)| part.as_ref().map(|part| self.write_shard(&p, i, part)));
        let answers = futures_util::future::join_all(writes).await;
        let mut last = Value::Null;
        for answer in answers {
            last = answer?;
        }
        Ok(last)
    }

    /// Collection `name`'s number of shards and replicas per shard, as collection
    /// information reports them (`shard_number`, `replication_factor`).
    /// Whether it is sharded by the user (`sharding_method: custom`; then the numbers
    /// are those of each shard key).
    pub(crate) fn shape(&self, name: &str) -> Option<Shape> {
        let name = &*self.real(name);
        let p = self.placement(name)?;
        let (shard_number, replication_factor) = match p.custom {
            Some(c) => (c.shard_number as u32, c.replication_factor as u32),
            None => (p.shards.len() as u32, p.shards.first().map_or(0, |s| s.replicas.len()) as u32),
        };
        Some(Shape {
            shard_number,
            replication_factor,
            write_consistency_factor: p.write_consistency.unwrap_or(1) as u32,
            custom: p.custom.is_some(),
        })
    }

    /// The names of the cluster's collections.
    pub(crate) fn list(&self) -> Vec<String> {
        self.node.state().collections.into_keys().collect()
    }

    /// Whether the cluster has collection `name`.
    pub(crate) fn exists(&self, name: &str) -> bool {
        self.node.collection(&self.real(name)).is_some()
    }

    /// What reads of collection `name` go to: this node's replica, when the
    /// collection has one shard and this node holds it; else its shards, here or on
    /// the peers holding them.
    pub(crate) fn source(
        self: &Arc<Self>,
        name: &str,
        scope: &crate::shards::Scope,
    ) -> Result<crate::shards::Source, ApiError> {
        let name = &*self.real(name);
        let p = self.placement_of(name)?.select(name, scope.keys.as_deref())?;
        if p.shards.len() == 1
            && (!scope.strong || self.leads(&p.shards[0].group))
            && p.shards[0].readable().any(|(id, _)| *id == self.node.peer_id())
            && let Ok(c) = self.db.collection(&p.local_name(name, 0))
        {
            return Ok(crate::shards::Source::Local(c));
        }
        Ok(crate::shards::Source::Shards(crate::shards::Shards {
            cluster: self.clone(),
            name: name.to_string(),
            placement: p,
            strong: scope.strong,
        }))
    }

    /// Runs `read` on every shard of collection `name` placed as `p` — on this
    /// node's replica where it holds one, else on a peer holding one (the first that
    /// answers) — and returns the answers in shard order; this node's legs give up when
    /// `stop` says, the peers' after the read's own timeout. `strong`: every shard read
    /// from its group's leader (through this node's group where it holds the shard).
    /// Called on a blocking thread.
    pub(crate) fn read_shards(
        self: &Arc<Self>,
        name: &str,
        p: &Placement,
        read: &crate::shards::ShardRead,
        stop: Option<&braid::Stop>,
        strong: bool,
    ) -> Result<Vec<crate::shards::ShardAnswer>, ApiError> {
        let me = self.node.peer_id();
        let request = serde_json::to_value(read).map_err(|e| internal("a shard read")(e.to_string()))?;
        let handle = tokio::runtime::Handle::current();
        // The peers' legs first, then this node's own while they run.
        let mut local = Vec::new();
        let mut remote = Vec::new();
        for (i, shard) in p.shards.iter().enumerate() {
            let here = shard.readable().any(|(id, _)| *id == me);
            // A strong read is this node's to answer only where it leads the group.
            let mine = here && (!strong || self.leads(&shard.group));
            let held = mine.then(|| self.db.collection(&p.local_name(name, i)).ok()).flatten();
            match held {
                Some(c) => local.push((i, c)),
                None => {
                    let (cluster, group, request) = (self.clone(), shard.group.clone(), request.clone());
                    // A strong read of a shard held here goes through this node's
                    // group too, which passes it to the leader when it follows.
                    let uris: Vec<String> = shard
                        .readable()
                        .filter(|(id, _)| **id != me || strong)
                        .map(|(id, u)| (*id != me, u.clone()))
                        .collect::<std::collections::BTreeSet<_>>()
                        .into_iter()
                        .map(|(_, u)| u)
                        .collect();
                    let task =
                        handle.spawn(async move { cluster.read_remote(&group, &uris, &request).await });
                    remote.push((i, task));
                }
            }
        }
        let mut answers: Vec<(usize, Result<crate::shards::ShardAnswer, ApiError>)> =
            local.into_iter().map(|(i, c)| (i, crate::shards::answer(&c, read.clone(), stop))).collect();
        for (i, task) in remote {
            let answer =
                handle.block_on(task).map_err(|e| internal("a shard read")(e.to_string())).and_then(|a| a);
            answers.push((i, answer));
        }
        answers.sort_by_key(|(i, _)| *i);
        answers.into_iter().map(|(_, a)| a).collect()
    }

    /// Reads from the first of the peers at `uris` that answers for group `group`.
    async fn read_remote(
        &self,
        group: &str,
        uris: &[String],
        request: &Value,
    ) -> Result<crate::shards::ShardAnswer, ApiError> {
        let mut last = None;
        for uri in uris {
            match self.node.read(group, uri, request).await {
                Ok(answer) => {
                    let answer: Result<crate::shards::ShardAnswer, ApiError> = serde_json::from_value(answer)
                        .map_err(|e| internal("a shard's answer")(e.to_string()))?;
                    return answer;
                }
                Err(e) => last = Some(e),
            }
        }
        Err(ApiError {
            kind: ErrorKind::Unavailable,
            message: format!(
                "no replica of a shard of this collection answered{}",
                last.map(|e| format!(": {e}")).unwrap_or_default()
            ),
        })
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

    /// Where collection `name`'s shards are: the ones this peer holds, with their
    /// points, and the other peers' replicas.
    pub(crate) fn replicas(&self, name: &str) -> Result<ShardMap, ApiError> {
        let name = &*self.real(name);
        let p = self.placement_of(name)?;
        let me = self.node.peer_id();
        let mut map = ShardMap { shard_count: p.shards.len(), local: Vec::new(), remote: Vec::new() };
        for (i, shard) in p.shards.iter().enumerate() {
            let (id, key) = (p.shard_id(i), shard.key.clone());
            for peer in shard.replicas.keys() {
                let active = !shard.joining.contains(peer);
                if *peer != me {
                    map.remote.push((id, *peer, active, key.clone()));
                } else if let Ok(c) = self.db.collection(&p.local_name(name, i)) {
                    map.local.push((id, c.info().points_count, active, key.clone()));
                }
            }
        }
        Ok(map)
    }

    /// `GET /collections/{c}/cluster`, in Qdrant's shape: the shards this peer holds,
    /// and the replicas on other peers.
    pub(crate) fn collection_json(&self, name: &str) -> Result<Value, ApiError> {
        let map = self.replicas(name)?;
        let keyed = |mut shard: Value, key: &Option<ShardKey>| {
            if let Some(key) = key {
                shard["shard_key"] = key.to_json();
            }
            shard
        };
        let local: Vec<Value> = map
            .local
            .iter()
            .map(|(id, n, active, key)| {
                keyed(json!({"shard_id": id, "points_count": n, "state": state(*active)}), key)
            })
            .collect();
        let remote: Vec<Value> = map
            .remote
            .iter()
            .map(|(id, peer, active, key)| {
                keyed(json!({"shard_id": id, "peer_id": peer, "state": state(*active)}), key)
            })
            .collect();
        Ok(json!({
            "peer_id": self.node.peer_id(),
            "shard_count": map.shard_count,
            "local_shards": local,
            "remote_shards": remote,
            "shard_transfers": [],
        }))
    }

    /// `POST /collections/{c}/cluster`: `replicate_shard`, `move_shard` and
    /// `drop_replica` carried out (the call returns once done); the rest refused with
    /// the reason.
    /// A new replica not caught up within `timeout` seconds (default an hour) fails
    /// the call and stays `Partial`, catching up.
    pub(crate) async fn change_placement(
        &self,
        name: &str,
        body: &Value,
        timeout: Option<u64>,
    ) -> Result<(), ApiError> {
        let name = &*self.real(name);
        let bad = |why: String| ApiError::bad_request(why);
        let (op, args) = body
            .as_object()
            .filter(|o| o.len() == 1)
            .and_then(|o| o.iter().next())
            .ok_or_else(|| bad("the body names one operation, as `{\"move_shard\": {...}}`".into()))?;
        let number = |key: &str| -> Result<u64, ApiError> {
            args.get(key)
                .and_then(Value::as_u64)
                .ok_or_else(|| bad(format!("{op}: `{key}` must be a number")))
        };
        enum Op {
            Copy { then_drop: bool },
            Drop,
            Abort,
        }
        let (kind, fields): (Op, &[&str]) = match op.as_str() {
            "replicate_shard" | "move_shard" => (
                Op::Copy { then_drop: op == "move_shard" },
                &["shard_id", "from_peer_id", "to_peer_id", "method", "to_shard_id"],
            ),
            "drop_replica" => (Op::Drop, &["shard_id", "peer_id"]),
            "create_sharding_key" => {
                return self.create_shard_key(name, KeyToMake::from_json(args)?).await;
            }
            "drop_sharding_key" => {
                return self.delete_shard_key(name, &crate::shards::key_to_drop(args)?).await;
            }
            "abort_transfer" => (Op::Abort, &["shard_id", "from_peer_id", "to_peer_id", "to_shard_id"]),
            other => {
                return Err(bad(format!("`{other}` is not served on a Braid cluster (docs/distributed.md)")));
            }
        };
        if let Some(unknown) = args.as_object().and_then(|o| o.keys().find(|k| !fields.contains(&k.as_str())))
        {
            return Err(bad(format!("{op}: unknown field `{unknown}`")));
        }
        if args.get("to_shard_id").is_some_and(|v| !v.is_null()) {
            return Err(bad(format!("{op}: `to_shard_id` (resharding) is not served")));
        }
        match kind {
            Op::Copy { then_drop } => {
                if let Some(method) = args.get("method").filter(|v| !v.is_null()) {
                    return Err(bad(format!(
                        "{op}: `method` {method} is not served: Braid fills a new replica through its shard \
                         group's Raft log (a snapshot of the shard where the log was compacted); leave it out"
                    )));
                }
                let (shard, from, to) = (number("shard_id")?, number("from_peer_id")?, number("to_peer_id")?);
                let timeout = Duration::from_secs(timeout.unwrap_or(3_600));
                self.add_replica(name, shard, from, to, timeout).await?;
                if then_drop {
                    self.drop_replica(name, shard, from).await?;
                }
                Ok(())
            }
            Op::Drop => self.drop_replica(name, number("shard_id")?, number("peer_id")?).await,
            Op::Abort => Err(bad(format!(
                "abort_transfer: no transfer of shard {} is in progress (a transfer runs within the call that \
                 starts it)",
                number("shard_id")?
            ))),
        }
    }

    /// The stored placement of `name` (as the metadata holds it, for a
    /// compare-and-set) and its shard `shard`, read after everything committed so far
    /// is applied here.
    async fn placement_for_change(
        &self,
        name: &str,
        shard_id: u64,
    ) -> Result<(Value, Placement, usize), ApiError> {
        self.node.propose(MetaCommand::Sync).await.map_err(cluster_error)?;
        let (stored, p) = self.stored_placement(name)?;
        let Some(shard) = p.position(shard_id) else {
            let ids: Vec<String> = (0..p.shards.len()).map(|i| p.shard_id(i).to_string()).collect();
            return Err(ApiError::bad_request(format!(
                "collection `{name}` has no shard {shard_id} (its shards: {})",
                if ids.is_empty() { "none".to_string() } else { ids.join(", ") }
            )));
        };
        Ok((stored, p, shard))
    }

    /// The placement of `name` as the metadata holds it (for a compare-and-set) and read.
    fn stored_placement(&self, name: &str) -> Result<(Value, Placement), ApiError> {
        let stored = self
            .node
            .collection(name)
            .ok_or_else(|| ApiError::from(braid::Error::CollectionNotFound { name: name.to_string() }))?;
        let p: Placement =
            serde_json::from_value(stored.clone()).map_err(|e| internal("a placement")(e.to_string()))?;
        Ok((stored, p))
    }

    /// Replaces `name`'s placement `from` with `to` in the metadata.
    async fn set_placement(&self, name: &str, from: Value, to: &Placement) -> Result<(), ApiError> {
        let command = placement_update(name, from, to)?;
        if !self.node.propose(command).await.map_err(cluster_error)?.changed {
            return Err(ApiError {
                kind: ErrorKind::Conflict,
                message: format!("the placement of `{name}` changed meanwhile; try again"),
            });
        }
        self.reconcile().await.map_err(internal("placing the collection here"))
    }

    /// Adds a replica of shard `shard` on peer `to` (copied from the group, which
    /// `from` must be a member of): placed in the metadata as being filled, brought
    /// into the group by its leader as a learner, made a voter once caught up, then
    /// marked active.
    async fn add_replica(
        &self,
        name: &str,
        shard: u64,
        from: PeerId,
        to: PeerId,
        timeout: Duration,
    ) -> Result<(), ApiError> {
        let (stored, mut p, at) = self.placement_for_change(name, shard).await?;
        let place = &mut p.shards[at];
        if !place.replicas.contains_key(&from) {
            return Err(ApiError::bad_request(format!(
                "peer {from} holds no replica of shard {shard} of `{name}`"
            )));
        }
        if place.replicas.contains_key(&to) {
            return Err(ApiError::bad_request(format!(
                "peer {to} holds a replica of shard {shard} of `{name}` already"
            )));
        }
        let Some(uri) = self.node.status().peers.get(&to).cloned() else {
            return Err(ApiError {
                kind: ErrorKind::NotFound,
                message: format!("no peer {to} in the cluster"),
            });
        };
        let members: Vec<String> = place.replicas.values().cloned().collect();
        let group = place.group.clone();
        place.replicas.insert(to, uri.clone());
        place.joining.insert(to);
        self.set_placement(name, stored, &p).await?;
        let change = braid_cluster::ReplicaChange::Add { peer: to, uri };
        self.node.change_replicas(&group, &members, &change, timeout).await.map_err(cluster_error)?;
        // Caught up and voting: reads may go to it.
        let (stored, mut p, at) = self.placement_for_change(name, shard).await?;
        p.shards[at].joining.remove(&to);
        self.set_placement(name, stored, &p).await
    }

    /// Removes the replica of shard `shard` on peer `peer` from its group, then from
    /// the metadata (whereupon the peer deletes it). The last replica is not removed.
    async fn drop_replica(&self, name: &str, shard: u64, peer: PeerId) -> Result<(), ApiError> {
        let (stored, mut p, at) = self.placement_for_change(name, shard).await?;
        let place = &mut p.shards[at];
        if !place.replicas.contains_key(&peer) {
            return Err(ApiError::bad_request(format!(
                "peer {peer} holds no replica of shard {shard} of `{name}`"
            )));
        }
        if place.readable().filter(|(id, _)| **id != peer).count() == 0 {
            return Err(ApiError::bad_request(format!(
                "peer {peer} holds the last active replica of shard {shard} of `{name}`: add another first"
            )));
        }
        let members: Vec<String> = place.replicas.values().cloned().collect();
        let change = braid_cluster::ReplicaChange::Remove { peer };
        self.node
            .change_replicas(&place.group, &members, &change, Duration::from_secs(60))
            .await
            .map_err(cluster_error)?;
        place.replicas.remove(&peer);
        place.joining.remove(&peer);
        self.set_placement(name, stored, &p).await
    }

    /// `DELETE /cluster/peer/{id}`: refused while the peer holds replicas (Qdrant
    /// asks for them to be moved first, as does Braid).
    pub(crate) async fn remove_peer(&self, peer: PeerId) -> Result<(), ApiError> {
        let holding: Vec<String> = self
            .placements()
            .into_iter()
            .filter(|(_, p)| p.shards.iter().any(|s| s.replicas.contains_key(&peer)))
            .map(|(n, _)| n)
            .collect();
        if !holding.is_empty() {
            return Err(ApiError::bad_request(format!(
                "peer {peer} holds replicas of {}: move or drop them first (`POST \
                 /collections/{{c}}/cluster` with `move_shard` or `drop_replica`)",
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

/// A replica's state as cluster information names it.
fn state(active: bool) -> &'static str {
    if active { "Active" } else { "Partial" }
}

/// `config` as it can be created in memory: what only a database on disk serves
/// (payloads, graphs and codes on disk) set aside.
pub(crate) fn probe(config: &CollectionConfig) -> CollectionConfig {
    let mut probe = config.clone();
    probe.on_disk_payload = false;
    probe.codes_on_disk = false;
    for space in probe.vectors.values_mut() {
        space.hnsw.on_disk = false;
        space.codes_on_disk = false;
    }
    probe
}

/// The reason a call that changes a collection outside its points is refused on a
/// cluster node.
pub(crate) fn not_replicated(what: &str) -> ApiError {
    ApiError::bad_request(format!(
        "{what} is not served in distributed mode yet: it would change this peer's replica only \
         (docs/distributed.md)"
    ))
}
