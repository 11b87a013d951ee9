//! What the cluster tests share: loopback addresses, node settings, waiting.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use braid_cluster::{ClusterNode, NodeConfig, Role, Timing};

/// A loopback address no other test can take: the port is taken by a listener kept
/// (`LISTENERS`) until a node at that address starts and takes the listener over.
///
/// The port lies below the kernel's ephemeral range, so that while a stopped node is
/// down no outgoing connection (the other nodes dial it again and again) can be given
/// its port as a local one, and its restart binds the port again.
pub(crate) fn free_addr() -> SocketAddr {
    let below = ephemeral_low();
    let span = below.saturating_sub(1_024).clamp(1, 8_192);
    let start = (std::process::id() as u64 * 7_919 + NEXT.fetch_add(1, Ordering::Relaxed) * 104_729) % span;
    for step in 0..span {
        let port = (below.saturating_sub(span) + (start + step) % span) as u16;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        if let Ok(listener) = std::net::TcpListener::bind(addr) {
            LISTENERS.lock().unwrap().insert(addr, listener);
            return addr;
        }
    }
    // No room below the range (or every port there taken): any free port.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    LISTENERS.lock().unwrap().insert(addr, listener);
    addr
}

/// The first port of the kernel's ephemeral range (32768 where it cannot be read).
fn ephemeral_low() -> u64 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse().ok())
        .unwrap_or(32_768)
}

static NEXT: AtomicU64 = AtomicU64::new(0);

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
