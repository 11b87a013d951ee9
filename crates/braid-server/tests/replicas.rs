//! Braid collections as shard replicas (#19): three nodes on loopback, each with its own
//! database, keep the same collection through a Raft group — every acknowledged batch
//! on every replica, identical contents, a refused operation refused alike, the group's
//! leader stopping and coming back, and a replica behind a purged log restored from a
//! snapshot of another's collection.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use braid::{CollectionConfig, Database, Distance, VectorParams};
use braid_cluster::{ClusterError, ClusterNode, NodeConfig, Timing};
use braid_server::CollectionReplica;
use serde_json::{Value, json};

struct Node {
    dir: PathBuf,
    addr: SocketAddr,
    node: Option<ClusterNode>,
    db: Option<Database>,
}

fn node_config(dir: &Path, addr: SocketAddr, snapshot_every: Option<u64>) -> NodeConfig {
    let c = NodeConfig::new(dir.join("cluster"), addr, format!("http://{addr}"))
        .timing(Timing::fast())
        .wait(Duration::from_secs(5));
    match snapshot_every {
        Some(n) => c.snapshot_every(n).keep_behind_snapshot(0),
        None => c,
    }
}

async fn eventually(what: &str, check: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Every point of collection `c` of `db`: id, vector and payload, as JSON.
fn contents(db: &Database) -> Vec<Value> {
    let c = db.collection("c").unwrap();
    c.scroll(None, 10_000, None, true, true)
        .unwrap()
        .0
        .into_iter()
        .map(|r| json!({"id": format!("{:?}", r.id), "vectors": format!("{:?}", r.vectors), "payload": r.payload}))
        .collect()
}

struct Cluster {
    nodes: Vec<Node>,
    members: BTreeMap<u64, String>,
    snapshot_every: Option<u64>,
    _dirs: Vec<tempfile::TempDir>,
}

impl Cluster {
    async fn start(snapshot_every: Option<u64>) -> Cluster {
        let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
        let mut nodes = Vec::new();
        for (i, d) in dirs.iter().enumerate() {
            // A port taken by a listener handed over to the node: no other test takes it,
            // and (below the ephemeral range) no outgoing connection while it restarts.
            let listener = braid_testkit::loopback_listener();
            let addr = listener.local_addr().unwrap();
            let mut config = node_config(d.path(), addr, snapshot_every).listener(listener);
            if i > 0 {
                config = config
                    .bootstrap(format!("http://{}", nodes.iter().map(|n: &Node| n.addr).next().unwrap()));
            }
            let node = ClusterNode::start(config).await.unwrap();
            nodes.push(Node { dir: d.path().to_path_buf(), addr, node: Some(node), db: None });
        }
        let first = nodes[0].node.as_ref().unwrap();
        eventually("three voters", || first.status().voters.len() == 3).await;
        let members = first.status().peers;
        let mut cluster = Cluster { nodes, members, snapshot_every, _dirs: dirs };
        for i in 0..3 {
            cluster.open_replica(i).await;
        }
        cluster
    }

    async fn open_replica(&mut self, i: usize) {
        let n = &mut self.nodes[i];
        let db = Database::open(n.dir.join("db")).unwrap();
        if !db.collection_exists("c") {
            db.create_collection(
                "c",
                CollectionConfig::new().vector("v", VectorParams::new(3, Distance::Dot)),
            )
            .unwrap();
        }
        let replica = CollectionReplica::new(db.clone(), "c", n.dir.join("work"));
        n.node.as_ref().unwrap().open_group("c/0", self.members.clone(), Arc::new(replica)).await.unwrap();
        n.db = Some(db);
    }

    fn group(&self, i: usize) -> Arc<braid_cluster::ShardGroup> {
        self.nodes[i].node.as_ref().unwrap().group("c/0").unwrap()
    }

    async fn leader(&self) -> usize {
        let live: Vec<usize> = (0..3).filter(|&i| self.nodes[i].node.is_some()).collect();
        eventually("the group has a leader", || {
            let l = self.group(live[0]).status().leader;
            l.is_some() && live.iter().all(|&i| self.group(i).status().leader == l)
        })
        .await;
        let l = self.group(live[0]).status().leader.unwrap();
        (0..3).find(|&i| self.nodes[i].node.as_ref().is_some_and(|n| n.peer_id() == l)).unwrap()
    }

    async fn stop(&mut self, i: usize) {
        self.nodes[i].node.take().unwrap().shutdown().await.unwrap();
        self.nodes[i].db = None;
    }

    async fn restart(&mut self, i: usize) {
        let n = &self.nodes[i];
        let node = ClusterNode::start(node_config(&n.dir, n.addr, self.snapshot_every)).await.unwrap();
        self.nodes[i].node = Some(node);
        self.open_replica(i).await;
    }

    async fn converged(&self) -> Vec<Value> {
        let dbs: Vec<&Database> = self.nodes.iter().filter_map(|n| n.db.as_ref()).collect();
        eventually("the replicas hold the same points", || {
            dbs.iter().all(|db| contents(db) == contents(dbs[0]))
        })
        .await;
        contents(dbs[0])
    }

    async fn shutdown(self) {
        for n in self.nodes {
            if let Some(node) = n.node {
                node.shutdown().await.unwrap();
            }
        }
    }
}

fn upserts(from: u64, n: u64) -> Value {
    let points: Vec<Value> = (from..from + n)
        .map(|i| json!({"id": i, "vector": {"v": [i as f32, 1.0, 0.5]}, "payload": {"n": i}}))
        .collect();
    json!({"operations": [{"upsert": {"points": points}}]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_of_a_collection_hold_every_acknowledged_batch_alike() {
    let mut cluster = Cluster::start(None).await;
    for k in 0..6u64 {
        let answer = cluster.group((k % 3) as usize).propose(upserts(k * 10, 10)).await.unwrap();
        assert_eq!(answer, json!({"operations": 1}));
    }
    // A batch whose second operation is bad input: the first applies, the rest is
    // refused — on every replica alike.
    let bad = json!({"operations": [
        {"set_payload": {"points": [1, 2], "payload": {"tag": "x"}}},
        {"upsert": {"points": [{"id": 100, "vector": {"v": [1.0, 2.0]}}]}},
        {"delete": {"points": [3]}}
    ]});
    let err = cluster.group(1).propose(bad).await.unwrap_err();
    assert!(matches!(&err, ClusterError::Refused(why) if why.starts_with("operation 1")), "{err}");

    // The group's leader stops; batches through the others go on; it comes back.
    let leader = cluster.leader().await;
    cluster.stop(leader).await;
    let other = (leader + 1) % 3;
    cluster.group(other).propose(json!({"operations": [{"delete": {"points": [0, 1]}}]})).await.unwrap();
    cluster.group(other).propose(upserts(60, 10)).await.unwrap();
    cluster.restart(leader).await;
    let points = cluster.converged().await;
    assert_eq!(points.len(), 68, "60 + 10 upserted, 2 deleted");
    assert!(
        points.iter().any(|p| p["payload"] == json!({"n": 2, "tag": "x"})),
        "the refused batch's first operation"
    );
    assert!(!points.iter().any(|p| p["id"] == json!("Num(100)")));
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_behind_a_purged_log_is_restored_from_a_collection_snapshot() {
    let mut cluster = Cluster::start(Some(5)).await;
    let leader = cluster.leader().await;
    let lagging = (leader + 1) % 3;
    cluster.stop(lagging).await;
    for k in 0..12u64 {
        cluster.group(leader).propose(upserts(k * 5, 5)).await.unwrap();
    }
    cluster.restart(lagging).await;
    let points = cluster.converged().await;
    assert_eq!(points.len(), 60);
    // Its collection reports the group's position, and takes writes after it.
    let db = cluster.nodes[lagging].db.clone().unwrap();
    assert!(db.collection("c").unwrap().entry_mark().closed.is_some());
    cluster.group(lagging).propose(upserts(1000, 1)).await.unwrap();
    assert_eq!(cluster.converged().await.len(), 61);
    cluster.shutdown().await;
}
