//! Replicated shards across real nodes on loopback: every acknowledged write on every
//! replica through a leader stopping and restarting, identical replicas, refusals
//! alike everywhere, and a replica behind a purged log catching up from a snapshot.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use braid_cluster::{ApplyError, ClusterError, ClusterNode, Replica, Role};
use common::{config, eventually, free_addr, settled};
use parking_lot::Mutex;
use serde_json::{Value, json};

/// A key-value replica that rewrites its file (data and position together) at every
/// write: what survives a stop is exactly what it acknowledged to its group.
struct Kv {
    path: PathBuf,
    state: Mutex<(Option<Value>, BTreeMap<String, Value>)>,
    installs: std::sync::atomic::AtomicUsize,
}

impl Kv {
    fn open(dir: &Path) -> Arc<Kv> {
        let path = dir.join("kv.json");
        let state = match std::fs::read(&path) {
            Ok(bytes) => {
                let v: Value = serde_json::from_slice(&bytes).unwrap();
                (Some(v["position"].clone()), serde_json::from_value(v["data"].clone()).unwrap())
            }
            Err(_) => (None, BTreeMap::new()),
        };
        Arc::new(Kv { path, state: Mutex::new(state), installs: Default::default() })
    }

    fn save(&self, position: &Value, data: &BTreeMap<String, Value>) {
        let tmp = self.path.with_extension("tmp");
        std::fs::write(&tmp, serde_json::to_vec(&json!({"position": position, "data": data})).unwrap())
            .unwrap();
        std::fs::rename(&tmp, &self.path).unwrap();
    }

    fn data(&self) -> BTreeMap<String, Value> {
        self.state.lock().1.clone()
    }
}

impl Replica for Kv {
    fn apply(&self, position: &Value, write: Option<&Value>) -> Result<Value, ApplyError> {
        let mut state = self.state.lock();
        let answer = match write {
            None => Ok(Value::Null),
            Some(w) => match (w.get("put"), w.get("delete")) {
                (Some(put), None) => {
                    state.1.insert(put["key"].as_str().unwrap().to_string(), put["value"].clone());
                    Ok(json!("put"))
                }
                (None, Some(key)) => Ok(json!(state.1.remove(key.as_str().unwrap()).is_some())),
                _ => Err(ApplyError::Refused(format!("not a write: {w}"))),
            },
        };
        state.0 = Some(position.clone());
        self.save(position, &state.1);
        answer
    }

    fn position(&self) -> Option<Value> {
        self.state.lock().0.clone()
    }

    fn snapshot(&self) -> Result<(Option<Value>, Vec<u8>), String> {
        let state = self.state.lock();
        Ok((state.0.clone(), serde_json::to_vec(&state.1).map_err(|e| e.to_string())?))
    }

    fn install(&self, position: &Value, bytes: &[u8]) -> Result<(), String> {
        let data: BTreeMap<String, Value> = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        self.save(position, &data);
        *self.state.lock() = (Some(position.clone()), data);
        self.installs.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }
}

fn put(key: &str, value: i64) -> Value {
    json!({"put": {"key": key, "value": value}})
}

struct Cluster {
    dirs: Vec<tempfile::TempDir>,
    addrs: Vec<std::net::SocketAddr>,
    nodes: Vec<Option<ClusterNode>>,
    replicas: Vec<Option<Arc<Kv>>>,
}

impl Cluster {
    async fn start(snapshot_every: Option<u64>) -> Cluster {
        let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
        let addrs: Vec<_> = (0..3).map(|_| free_addr()).collect();
        let mut cluster = Cluster { dirs, addrs, nodes: vec![], replicas: vec![None, None, None] };
        for i in 0..3 {
            let mut c = cluster.config(i, snapshot_every);
            if i > 0 {
                c = c.bootstrap(format!("http://{}", cluster.addrs[0]));
            }
            cluster.nodes.push(Some(ClusterNode::start(c).await.unwrap()));
        }
        settled(&cluster.nodes.iter().flatten().collect::<Vec<_>>(), 3).await;
        for i in 0..3 {
            cluster.open_group(i).await;
        }
        cluster
    }

    fn config(&self, i: usize, snapshot_every: Option<u64>) -> braid_cluster::NodeConfig {
        let c = config(self.dirs[i].path(), self.addrs[i]);
        match snapshot_every {
            Some(n) => c.snapshot_every(n).keep_behind_snapshot(0),
            None => c,
        }
    }

    fn members(&self) -> BTreeMap<u64, String> {
        self.nodes.iter().flatten().next().unwrap().status().peers
    }

    async fn open_group(&mut self, i: usize) {
        let replica_dir = self.dirs[i].path().join("kv");
        std::fs::create_dir_all(&replica_dir).unwrap();
        let kv = Kv::open(&replica_dir);
        let members = self.members();
        self.nodes[i].as_ref().unwrap().open_group("kv/0", members, kv.clone()).await.unwrap();
        self.replicas[i] = Some(kv);
    }

    /// The node leading the group, once the live replicas agree on one.
    async fn group_leader(&self) -> usize {
        let groups: Vec<_> = self.nodes.iter().flatten().map(|n| n.group("kv/0").unwrap()).collect();
        eventually("the group has a leader", || {
            let leader = groups[0].status().leader;
            leader.is_some() && groups.iter().all(|g| g.status().leader == leader)
        })
        .await;
        let leader = groups[0].status().leader.unwrap();
        self.nodes.iter().position(|n| n.as_ref().is_some_and(|n| n.peer_id() == leader)).unwrap()
    }

    async fn stop(&mut self, i: usize) {
        self.nodes[i].take().unwrap().shutdown().await.unwrap();
        self.replicas[i] = None;
    }

    async fn restart(&mut self, i: usize, snapshot_every: Option<u64>) {
        self.nodes[i] = Some(ClusterNode::start(self.config(i, snapshot_every)).await.unwrap());
        self.open_group(i).await;
    }

    async fn converged(&self) -> BTreeMap<String, Value> {
        let replicas: Vec<&Arc<Kv>> = self.replicas.iter().flatten().collect();
        eventually("the replicas are identical", || replicas.iter().all(|r| r.data() == replicas[0].data()))
            .await;
        replicas[0].data()
    }
}

/// Writes `count` keys `prefix-0…` through node `i`'s group, `writers` at a time;
/// returns the keys acknowledged.
async fn write_through(cluster: &Cluster, nodes: &[usize], prefix: &str, count: usize) -> BTreeSet<String> {
    let mut tasks = Vec::new();
    for &i in nodes {
        let group = cluster.nodes[i].as_ref().unwrap().group("kv/0").unwrap();
        let prefix = format!("{prefix}-{i}");
        tasks.push(tokio::spawn(async move {
            let mut acked = BTreeSet::new();
            for k in 0..count {
                let key = format!("{prefix}-{k}");
                let answer = group.propose(put(&key, k as i64)).await.unwrap();
                assert_eq!(answer, json!("put"));
                acked.insert(key);
            }
            acked
        }));
    }
    let mut acked = BTreeSet::new();
    for t in tasks {
        acked.extend(t.await.unwrap());
    }
    acked
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_keep_every_acknowledged_write_through_a_leader_stopping() {
    let mut cluster = Cluster::start(None).await;
    let mut acked = write_through(&cluster, &[0, 1, 2], "first", 15).await;

    // The group's leader stops; writes through the other two go on.
    let leader = cluster.group_leader().await;
    let stopped = cluster.nodes[leader].as_ref().unwrap().peer_id();
    cluster.stop(leader).await;
    let others: Vec<usize> = (0..3).filter(|&i| i != leader).collect();
    acked.extend(write_through(&cluster, &others, "second", 15).await);
    let group = cluster.nodes[others[0]].as_ref().unwrap().group("kv/0").unwrap();
    assert!(group.status().leader.is_some_and(|l| l != stopped), "a new leader took over");
    assert_eq!(group.propose(json!({"delete": "first-0-0"})).await.unwrap(), json!(true));
    acked.remove("first-0-0");
    // A write every replica refuses is refused to the proposer, and changes nothing.
    let err = group.propose(json!({"neither": 1})).await.unwrap_err();
    assert!(matches!(err, ClusterError::Refused(_)), "{err}");

    // It comes back from its directories and catches up from the log.
    cluster.restart(leader, None).await;
    let data = cluster.converged().await;
    assert_eq!(data.keys().cloned().collect::<BTreeSet<_>>(), acked, "exactly the acknowledged writes");
    assert_eq!(data.len(), 15 * 3 + 15 * 2 - 1);
    let status = cluster.nodes[leader].as_ref().unwrap().group("kv/0").unwrap().status();
    assert_eq!(status.members.len(), 3);
    assert!(status.role == Role::Follower || status.role == Role::Leader);
    for node in cluster.nodes.into_iter().flatten() {
        node.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_behind_a_purged_log_catches_up_from_a_snapshot() {
    let mut cluster = Cluster::start(Some(10)).await;
    let leader = cluster.group_leader().await;
    let lagging = (leader + 1) % 3;
    cluster.stop(lagging).await;
    let others: Vec<usize> = (0..3).filter(|&i| i != lagging).collect();
    let acked = write_through(&cluster, &others, "w", 30).await;
    cluster.restart(lagging, Some(10)).await;
    let data = cluster.converged().await;
    assert_eq!(data.keys().cloned().collect::<BTreeSet<_>>(), acked);
    let installs =
        cluster.replicas[lagging].as_ref().unwrap().installs.load(std::sync::atomic::Ordering::Relaxed);
    assert!(installs >= 1, "the lagging replica caught up from a snapshot");
    let snapshot = cluster.dirs[lagging].path().join("groups/kv/0/raft-snapshot.json");
    assert!(snapshot.exists(), "and keeps it");
    for node in cluster.nodes.into_iter().flatten() {
        node.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_refuses_bad_names_and_peers_outside_it() {
    let dir = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let node = ClusterNode::start(config(dir.path(), addr)).await.unwrap();
    let kv = Kv::open(dir.path());
    let me = BTreeMap::from([(node.peer_id(), format!("http://{addr}"))]);
    for bad in ["", "../x", "/abs", "a b", "a..b"] {
        let err = node.open_group(bad, me.clone(), kv.clone()).await.unwrap_err();
        assert!(matches!(err, ClusterError::Config(_)), "{bad}: {err}");
    }
    let others = BTreeMap::from([(7, "http://127.0.0.1:1".to_string())]);
    let err = node.open_group("kv/0", others, kv.clone()).await.unwrap_err();
    assert!(matches!(err, ClusterError::Config(_)), "{err}");
    // A group of one takes writes alone.
    let group = node.open_group("kv/0", me, kv.clone()).await.unwrap();
    assert_eq!(group.propose(put("a", 1)).await.unwrap(), json!("put"));
    assert_eq!(kv.data()["a"], json!(1));
    node.shutdown().await.unwrap();
}
