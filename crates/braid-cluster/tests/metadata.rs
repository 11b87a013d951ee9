//! Cluster metadata across real nodes on loopback: joining, proposals through any node,
//! a leader stopping, restarts from the nodes' directories, removal.

mod common;

use std::time::{Duration, Instant};

use braid_cluster::{ClusterError, ClusterNode, MetaCommand, NodeConfig, Role, Timing};
use common::{config, eventually, free_addr, settled};
use serde_json::json;

fn create(name: &str) -> MetaCommand {
    MetaCommand::CreateCollection {
        name: name.into(),
        config: json!({"vectors": {"size": 4, "distance": "Cosine"}}),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_agree_through_a_leader_stopping_and_restarting() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let addrs: Vec<_> = (0..3).map(|_| free_addr()).collect();
    let a = ClusterNode::start(config(dirs[0].path(), addrs[0])).await.unwrap();
    let b = ClusterNode::start(config(dirs[1].path(), addrs[1]).bootstrap(format!("http://{}", addrs[0])))
        .await
        .unwrap();
    // The third joins through a follower, which forwards the join to the leader.
    let c = ClusterNode::start(config(dirs[2].path(), addrs[2]).bootstrap(format!("http://{}", addrs[1])))
        .await
        .unwrap();
    let mut nodes = vec![Some(a), Some(b), Some(c)];
    let all = |nodes: &[Option<ClusterNode>]| nodes.iter().flatten().collect::<Vec<_>>().len();
    settled(&nodes.iter().flatten().collect::<Vec<_>>(), 3).await;
    assert_eq!(all(&nodes), 3);
    let ids: Vec<u64> = nodes.iter().flatten().map(|n| n.peer_id()).collect();
    let status = nodes[2].as_ref().unwrap().status();
    assert_eq!(status.peers.keys().copied().collect::<Vec<_>>(), {
        let mut sorted = ids.clone();
        sorted.sort();
        sorted
    });
    assert_eq!(status.peers[&ids[1]], format!("http://{}", addrs[1]));

    // A proposal on any node is applied on every node, in order, once.
    let follower = nodes.iter().flatten().find(|n| n.status().role != Role::Leader).unwrap();
    assert!(follower.propose(create("docs")).await.unwrap().changed);
    assert!(follower.state().collections.contains_key("docs"), "applied on the proposer before it returns");
    assert!(!nodes[0].as_ref().unwrap().propose(create("docs")).await.unwrap().changed, "created once");
    for node in nodes.iter().flatten() {
        eventually("every node has the collection", || node.state().collections.contains_key("docs")).await;
    }

    // The leader stops: the other two elect one of themselves and go on.
    let leader_id = nodes[0].as_ref().unwrap().status().leader.unwrap();
    let k = ids.iter().position(|&id| id == leader_id).unwrap();
    nodes[k].take().unwrap().shutdown().await.unwrap();
    let survivors: Vec<&ClusterNode> = nodes.iter().flatten().collect();
    eventually("a new leader", || {
        survivors.iter().all(|n| n.status().leader.is_some_and(|l| l != leader_id))
    })
    .await;
    assert!(survivors[0].propose(create("images")).await.unwrap().changed);
    assert!(
        survivors[1].propose(MetaCommand::DeleteCollection { name: "docs".into() }).await.unwrap().changed
    );

    // It restarts from its directory (same peer id, no bootstrap needed) and catches up.
    let back = ClusterNode::start(config(dirs[k].path(), addrs[k])).await.unwrap();
    assert_eq!(back.peer_id(), leader_id);
    eventually("the restarted node catches up", || {
        let state = back.state();
        state.collections.contains_key("images") && !state.collections.contains_key("docs")
    })
    .await;
    nodes[k] = Some(back);
    settled(&nodes.iter().flatten().collect::<Vec<_>>(), 3).await;

    // Removing a peer takes it out of every node's view; an unknown id is refused.
    let removed = ids[(k + 1) % 3];
    nodes[0].as_ref().or(nodes[1].as_ref()).unwrap().remove_peer(removed).await.unwrap();
    for node in nodes.iter().flatten().filter(|n| n.peer_id() != removed) {
        eventually("the peer is gone", || !node.status().peers.contains_key(&removed)).await;
    }
    let err = nodes[k].as_ref().unwrap().remove_peer(7).await.unwrap_err();
    assert!(matches!(err, ClusterError::UnknownPeer(7)), "{err}");
    for node in nodes.into_iter().flatten() {
        node.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_keeps_its_id_and_state_across_restarts_and_refuses_another_uri() {
    let dir = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let node = ClusterNode::start(config(dir.path(), addr)).await.unwrap();
    let id = node.peer_id();
    assert!(node.propose(create("a")).await.unwrap().changed);
    assert!(node.propose(create("b")).await.unwrap().changed);
    assert!(node.propose(MetaCommand::DeleteCollection { name: "a".into() }).await.unwrap().changed);
    node.shutdown().await.unwrap();

    let node = ClusterNode::start(config(dir.path(), addr)).await.unwrap();
    assert_eq!(node.peer_id(), id);
    eventually("the log is applied again", || node.state().collections.keys().eq(["b"])).await;
    let status = node.status();
    assert_eq!((status.role, status.is_voter, status.leader), (Role::Leader, true, Some(id)));
    node.shutdown().await.unwrap();

    let moved = free_addr();
    let err = ClusterNode::start(
        NodeConfig::new(dir.path(), moved, format!("http://{moved}")).timing(Timing::fast()),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, ClusterError::Config(_)), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_majority_proposals_fail_with_a_typed_error() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let addrs: Vec<_> = (0..3).map(|_| free_addr()).collect();
    let first = format!("http://{}", addrs[0]);
    let a =
        ClusterNode::start(config(dirs[0].path(), addrs[0]).wait(Duration::from_millis(1500))).await.unwrap();
    let b = ClusterNode::start(config(dirs[1].path(), addrs[1]).bootstrap(&first)).await.unwrap();
    let c = ClusterNode::start(config(dirs[2].path(), addrs[2]).bootstrap(&first)).await.unwrap();
    settled(&[&a, &b, &c], 3).await;
    b.shutdown().await.unwrap();
    c.shutdown().await.unwrap();
    let started = Instant::now();
    let err = a.propose(create("lost")).await.unwrap_err();
    assert!(matches!(err, ClusterError::NoQuorum { .. }), "{err}");
    assert!(started.elapsed() < Duration::from_secs(10), "bounded by the node's wait");
    assert!(!a.state().collections.contains_key("lost"));
    a.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_behind_a_purged_log_catches_up_from_a_snapshot() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let addrs: Vec<_> = (0..3).map(|_| free_addr()).collect();
    let first = format!("http://{}", addrs[0]);
    let start = |i: usize, bootstrap: bool| {
        let mut c = config(dirs[i].path(), addrs[i]).snapshot_every(8).keep_behind_snapshot(0);
        if bootstrap {
            c = c.bootstrap(&first);
        }
        ClusterNode::start(c)
    };
    let a = start(0, false).await.unwrap();
    let b = start(1, true).await.unwrap();
    let c = start(2, true).await.unwrap();
    settled(&[&a, &b, &c], 3).await;
    // A follower other than the first node stops.
    let (lagging, other, k) = if c.status().role == Role::Leader { (b, c, 1) } else { (c, b, 2) };
    lagging.shutdown().await.unwrap();
    for i in 0..40 {
        a.propose(create(&format!("c{i}"))).await.unwrap();
    }
    for i in (0..40).step_by(2) {
        a.propose(MetaCommand::DeleteCollection { name: format!("c{i}") }).await.unwrap();
    }
    let expected = a.state();
    assert_eq!(expected.collections.len(), 20);
    assert!(dirs[0].path().join("raft-snapshot.json").exists(), "the leader wrote a snapshot");
    let back = start(k, false).await.unwrap();
    eventually("the lagging peer has the same state", || back.state() == expected).await;
    assert!(dirs[k].path().join("raft-snapshot.json").exists(), "it installed a snapshot");
    back.shutdown().await.unwrap();
    // It reopens from the installed snapshot and its log.
    let again = start(k, false).await.unwrap();
    eventually("the reopened peer has the same state", || again.state() == expected).await;
    again.shutdown().await.unwrap();
    a.shutdown().await.unwrap();
    other.shutdown().await.unwrap();
}

/// A peer stops and a node of another cluster starts at its address: the leader's
/// messages for the peer reach that node, which refuses them (they name another peer),
/// so neither cluster takes the other's log or votes for its own. Before, the stranger
/// answered them: its log disagreed with what the leader had matched, and openraft's
/// leader panicked ("follower log reversion").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_of_another_cluster_at_a_peers_address_is_not_taken_for_it() {
    let dirs: Vec<_> = (0..4).map(|_| tempfile::tempdir().unwrap()).collect();
    let addrs: Vec<_> = (0..3).map(|_| free_addr()).collect();
    let a = ClusterNode::start(config(dirs[0].path(), addrs[0])).await.unwrap();
    let join = |i: usize| config(dirs[i].path(), addrs[i]).bootstrap(format!("http://{}", addrs[0]));
    let b = ClusterNode::start(join(1)).await.unwrap();
    let c = ClusterNode::start(join(2)).await.unwrap();
    settled(&[&a, &b, &c], 3).await;
    for i in 0..5 {
        assert!(a.propose(create(&format!("before-{i}"))).await.unwrap().changed);
    }
    let (leader, c_id) = (a.status().leader.unwrap(), c.peer_id());
    // Stop a follower, and start a cluster of its own at its address.
    let (stopped, running) = if c_id == leader { (b, c) } else { (c, b) };
    let k = if stopped.peer_id() == c_id { 2 } else { 1 };
    stopped.shutdown().await.unwrap();
    let stranger = ClusterNode::start(config(dirs[3].path(), addrs[k])).await.unwrap();
    eventually("the stranger leads its own cluster", || stranger.status().role == Role::Leader).await;
    assert!(stranger.propose(create("strangers")).await.unwrap().changed);
    // The first cluster goes on with its two nodes, several heartbeats long.
    for i in 0..20 {
        assert!(a.propose(create(&format!("after-{i}"))).await.unwrap().changed, "proposal {i}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    for node in [&a, &running] {
        eventually("every proposal applied", || node.state().collections.contains_key("after-19")).await;
        assert!(!node.state().collections.contains_key("strangers"), "no entry of the other cluster");
        assert_eq!(node.status().voters.len(), 3);
    }
    assert!(!stranger.state().collections.contains_key("before-0"), "no entry of the first cluster");
    assert_eq!(stranger.status().voters.len(), 1);
    for node in [a, running, stranger] {
        node.shutdown().await.unwrap();
    }
}
