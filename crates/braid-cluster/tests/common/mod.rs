//! What the cluster tests share: loopback addresses, node settings, waiting.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use braid_cluster::{ClusterNode, NodeConfig, Role, Timing};

/// A loopback address no other test can take: the port (below the ephemeral range,
/// `braid_testkit::loopback_listener`, so that while a stopped node is down no outgoing
/// connection can be given it) is held by a listener kept in `LISTENERS` until a node at
/// that address starts and takes the listener over; a restart binds it again.
pub(crate) fn free_addr() -> SocketAddr {
    let listener = braid_testkit::loopback_listener();
    let addr = listener.local_addr().unwrap();
    LISTENERS.lock().unwrap().insert(addr, listener);
    addr
}

static LISTENERS: std::sync::Mutex<std::collections::BTreeMap<SocketAddr, std::net::TcpListener>> =
    std::sync::Mutex::new(std::collections::BTreeMap::new());

/// A node at `addr`: on the listener kept for it at its first start, bound again at
/// a restart.
pub(crate) fn config(dir: &Path, addr: SocketAddr) -> NodeConfig {
    let config = NodeConfig::new(dir, addr, format!("http://{addr}"))
        .timing(Timing::fast())
        .wait(Duration::from_secs(5));
    match LISTENERS.lock().unwrap().remove(&addr) {
        Some(listener) => config.listener(listener),
        None => config,
    }
}

/// Waits (up to 10 s) until `check` holds.
pub(crate) async fn eventually(what: &str, check: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until every node reports the same leader among `voters` voters.
pub(crate) async fn settled(nodes: &[&ClusterNode], voters: usize) {
    eventually("the nodes agree on a leader", || {
        let statuses: Vec<_> = nodes.iter().map(|n| n.status()).collect();
        let leader = statuses[0].leader;
        leader.is_some()
            && statuses.iter().all(|s| s.leader == leader && s.voters.len() == voters)
            && statuses.iter().filter(|s| s.role == Role::Leader).count() == 1
    })
    .await;
}
