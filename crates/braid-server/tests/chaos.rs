//! Chaos trials: three `braid serve` processes in a cluster, writers upserting through
//! random nodes with `wait=true` and readers querying, while faults come and go: a
//! node killed with SIGKILL (the leader among them) and restarted from its directory,
//! or a node cut off from the other two and healed. Peers reach each other through a
//! proxy this test runs (every node's `--uri` is its proxy's port), which tells nodes
//! apart by the loopback address each one connects from (its `--p2p` address) and cuts
//! the links between them.
//!
//! After each trial every fault is healed, and then: the replicas are identical, every
//! acknowledged write is there with its exact vector and payload (or a write issued
//! after it to the same point that was not acknowledged either way), and the queries
//! sent to nodes on the majority's side were all answered.
//!
//! The collection has one shard in trials of even seeds and two in trials of odd ones
//! (every shard replicated on the three nodes), unless `BRAID_CHAOS_SHARDS` says.
//!
//! `BRAID_CHAOS_TRIALS` (default 1), `BRAID_CHAOS_SEED` (default 1),
//! `BRAID_CHAOS_SECONDS` (seconds of faults per trial, default 8) and
//! `BRAID_CHAOS_SHARDS`; `cargo xtask chaos` sets them.

use std::collections::{BTreeMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use braid_testkit::Rng;
use parking_lot::Mutex;
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};

const NODES: usize = 3;
const DIM: usize = 4;
/// How long a client waits for a write before it counts it as not acknowledged.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(3);

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Node `i` connects from this address (its `--p2p` address).
fn node_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, 11 + i as u8)
}

fn node_of(ip: IpAddr) -> Option<usize> {
    match ip {
        IpAddr::V4(v4) => (0..NODES).find(|i| node_ip(*i) == v4),
        IpAddr::V6(_) => None,
    }
}

/// A connection through a proxy: its link `(from, to)` and the task carrying it.
type Connection = ((Option<usize>, usize), tokio::task::AbortHandle);

/// The links between nodes, as the proxies carry them.
#[derive(Default)]
struct Net {
    /// Where node `i` listens now (none while it is down).
    targets: Mutex<[Option<SocketAddr>; NODES]>,
    /// Cut links, `(from, to)`.
    cut: Mutex<HashSet<(usize, usize)>>,
    /// Open connections, `(from, to)`, so that a cut closes them.
    open: Mutex<Vec<Connection>>,
}

impl Net {
    fn isolate(&self, x: usize, isolated: bool) {
        let mut cut = self.cut.lock();
        for y in (0..NODES).filter(|y| *y != x) {
            for link in [(x, y), (y, x)] {
                if isolated {
                    cut.insert(link);
                } else {
                    cut.remove(&link);
                }
            }
        }
        let mut open = self.open.lock();
        open.retain(|((from, to), handle)| {
            let severed = from.is_some_and(|f| cut.contains(&(f, *to)));
            if severed {
                handle.abort();
            }
            !severed && !handle.is_finished()
        });
    }
}

/// The proxy in front of node `to`: forwards connections to where the node listens,
/// unless the link from the connecting node is cut.
async fn proxy(to: usize, listener: TcpListener, net: Arc<Net>) {
    loop {
        let Ok((mut inbound, peer)) = listener.accept().await else { continue };
        let from = node_of(peer.ip());
        if from.is_some_and(|f| net.cut.lock().contains(&(f, to))) {
            continue;
        }
        let Some(target) = net.targets.lock()[to] else { continue };
        let task = tokio::spawn(async move {
            if let Ok(mut outbound) = TcpStream::connect(target).await {
                let _ = outbound.set_nodelay(true);
                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
            }
        });
        net.open.lock().push(((from, to), task.abort_handle()));
    }
}

/// One `braid serve` process.
struct Node {
    index: usize,
    dir: PathBuf,
    log: PathBuf,
    proxy_port: u16,
    /// Where the node listens for peers: its own loopback address, a port kept
    /// across restarts (the proxy forwards there while the node starts).
    p2p: SocketAddr,
    bootstrap: Option<String>,
    child: Option<Child>,
    http: Option<String>,
    since: Instant,
}

impl Node {
    fn uri(&self) -> String {
        format!("http://127.0.0.1:{}", self.proxy_port)
    }

    /// Starts the process and waits for the addresses it prints.
    async fn start(&mut self, net: &Net) {
        let seen = std::fs::metadata(&self.log).map_or(0, |m| m.len()) as usize;
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).expect("log file");
        let mut command = Command::new(env!("CARGO_BIN_EXE_braid"));
        command
            .args(["serve", "--data"])
            .arg(&self.dir)
            .args(["--http", "127.0.0.1:0", "--grpc", "127.0.0.1:0"])
            .args(["--p2p", &self.p2p.to_string(), "--uri", &self.uri()])
            .args(["--log-level", "warn,openraft=error"])
            .stdout(Stdio::null())
            .stderr(log);
        if let Some(b) = &self.bootstrap {
            command.args(["--bootstrap", b]);
        }
        self.child = Some(command.spawn().expect("braid serve starts"));
        net.targets.lock()[self.index] = Some(self.p2p);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let text = std::fs::read_to_string(&self.log).unwrap_or_default();
            // Whole lines only: the process may be halfway through writing one.
            let text = text.get(seen..).unwrap_or_default();
            let text = &text[..text.rfind('\n').map_or(0, |end| end + 1)];
            let after = |marker: &str| {
                text.split(marker)
                    .nth(1)
                    .and_then(|rest| rest.split([',', '\n', ' ']).next())
                    .map(str::to_string)
            };
            if let Some(http) = after("REST on http://").filter(|h| !h.is_empty()) {
                self.http = Some(http);
                self.since = Instant::now();
                return;
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                panic!("node {} exited ({status}) at start:\n{text}", self.index);
            }
            assert!(Instant::now() < deadline, "node {} did not start:\n{text}", self.index);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn kill(&mut self, net: &Net) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        net.targets.lock()[self.index] = None;
        self.http = None;
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// One write as a writer issued it.
#[derive(Clone, Debug)]
struct Write {
    id: u64,
    vector: Vec<f32>,
    payload: Value,
    acked: bool,
}

/// What the workload sees of the nodes: who is up and reachable, and where.
#[derive(Default)]
struct View {
    /// REST address of each node that is up and on the majority's side, with the time
    /// it came up.
    serving: Mutex<[Option<(String, Instant)>; NODES]>,
    /// REST address of each node that is up (isolated or not).
    up: Mutex<[Option<String>; NODES]>,
}

async fn writer(w: u64, seed: u64, view: Arc<View>, stop: Arc<AtomicBool>) -> Vec<Write> {
    let client = reqwest::Client::builder().timeout(CLIENT_TIMEOUT).build().expect("client");
    let mut rng = Rng::new(seed);
    let mut history = Vec::new();
    let mut k = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let up: Vec<String> = view.up.lock().iter().flatten().cloned().collect();
        if up.is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        }
        let base = &up[(rng.next_u64() % up.len() as u64) as usize];
        // Mostly new points; one write in five overwrites one of this writer's own.
        let id = if k > 0 && rng.next_u64().is_multiple_of(5) {
            w * 1_000_000 + rng.next_u64() % k
        } else {
            w * 1_000_000 + k
        };
        k += 1;
        let vector = rng.vector(DIM);
        let payload = json!({"w": w, "k": k});
        let body = json!({"points": [{"id": id, "vector": vector, "payload": payload}]});
        let sent =
            client.put(format!("http://{base}/collections/c/points?wait=true")).json(&body).send().await;
        let acked = match sent {
            Ok(r) if r.status().is_success() => true,
            Ok(r) if r.status().as_u16() == 400 => panic!("a valid write refused: {:?}", r.text().await),
            _ => false,
        };
        history.push(Write { id, vector, payload, acked });
    }
    history
}

/// Queries nodes on the majority's side that have been up a second; every one must be
/// answered. Returns how many were.
async fn reader(seed: u64, view: Arc<View>, stop: Arc<AtomicBool>, failed: Arc<Mutex<Vec<String>>>) -> u64 {
    // A query is answered by the node asked, whatever the cluster does: a generous
    // timeout, so that a loaded machine (the suite runs beside other tests) is not
    // taken for a failure.
    let client = reqwest::Client::builder().timeout(Duration::from_secs(15)).build().expect("client");
    let mut rng = Rng::new(seed);
    let mut answered = 0;
    while !stop.load(Ordering::Relaxed) {
        let ready: Vec<String> = view
            .serving
            .lock()
            .iter()
            .flatten()
            .filter(|(_, since)| since.elapsed() > Duration::from_secs(1))
            .map(|(base, _)| base.clone())
            .collect();
        if let Some(base) = ready.get((rng.next_u64() % ready.len().max(1) as u64) as usize) {
            let body = json!({"query": rng.vector(DIM), "limit": 5});
            let sent =
                client.post(format!("http://{base}/collections/c/points/query")).json(&body).send().await;
            // A node killed between the choice and the answer is not a failure.
            let still_serving = || view.serving.lock().iter().flatten().any(|(b, _)| b == base);
            match sent {
                Ok(r) if r.status().is_success() => answered += 1,
                Ok(r) if still_serving() => failed.lock().push(format!("{base}: {}", r.status())),
                Err(e) if still_serving() => failed.lock().push(format!("{base}: {e}")),
                _ => {}
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    answered
}

async fn contents(client: &reqwest::Client, base: &str) -> Option<BTreeMap<u64, (Vec<f32>, Value)>> {
    let mut points = BTreeMap::new();
    let mut offset = Value::Null;
    loop {
        let body = json!({"limit": 10_000, "offset": offset, "with_payload": true, "with_vector": true});
        let r = client
            .post(format!("http://{base}/collections/c/points/scroll"))
            .json(&body)
            .send()
            .await
            .ok()?;
        let v: Value = r.json().await.ok()?;
        for p in v["result"]["points"].as_array()? {
            let vector = p["vector"]
                .as_array()?
                .iter()
                .map(|x| x.as_f64().map(|x| x as f32))
                .collect::<Option<_>>()?;
            points.insert(p["id"].as_u64()?, (vector, p["payload"].clone()));
        }
        offset = v["result"]["next_page_offset"].clone();
        if offset.is_null() {
            return Some(points);
        }
    }
}

#[derive(Debug, Default)]
struct Report {
    kills: u64,
    leader_kills: u64,
    isolations: u64,
    acked: u64,
    unacked: u64,
    queries: u64,
}

async fn leader_index(client: &reqwest::Client, nodes: &[Node], ids: &[u64]) -> Option<usize> {
    for node in nodes {
        let Some(base) = &node.http else { continue };
        let Ok(r) = client.get(format!("http://{base}/cluster")).send().await else { continue };
        let Ok(v) = r.json::<Value>().await else { continue };
        if let Some(leader) = v["result"]["raft_info"]["leader"].as_u64() {
            return ids.iter().position(|id| *id == leader);
        }
    }
    None
}

fn publish(view: &View, nodes: &[Node], isolated: Option<usize>) {
    let mut up = view.up.lock();
    let mut serving = view.serving.lock();
    for (i, node) in nodes.iter().enumerate() {
        up[i] = node.http.clone();
        serving[i] = node.http.clone().filter(|_| isolated != Some(i)).map(|b| (b, node.since));
    }
}

async fn trial(seed: u64, seconds: u64, shards: u64, root: &Path) -> Report {
    let net = Arc::new(Net::default());
    let mut nodes = Vec::new();
    for i in 0..NODES {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("proxy port");
        let port = listener.local_addr().expect("addr").port();
        tokio::spawn(proxy(i, listener, net.clone()));
        // A free port on the node's address, kept for its restarts.
        let p2p =
            std::net::TcpListener::bind((node_ip(i), 0)).and_then(|l| l.local_addr()).expect("a p2p port");
        let dir = root.join(format!("node{i}"));
        std::fs::create_dir_all(&dir).expect("node dir");
        nodes.push(Node {
            index: i,
            log: root.join(format!("node{i}.log")),
            dir,
            proxy_port: port,
            p2p,
            bootstrap: None,
            child: None,
            http: None,
            since: Instant::now(),
        });
    }
    let first = nodes[0].uri();
    for node in &mut nodes {
        if node.index > 0 {
            node.bootstrap = Some(first.clone());
        }
        node.start(&net).await;
    }
    let client = reqwest::Client::builder().timeout(Duration::from_secs(15)).build().expect("client");
    let base0 = nodes[0].http.clone().expect("up");
    let created = client
        .put(format!("http://{base0}/collections/c"))
        .json(&json!({"vectors": {"size": DIM, "distance": "Dot"}, "shard_number": shards}))
        .send()
        .await
        .expect("create answered");
    assert!(created.status().is_success(), "create: {:?}", created.text().await);
    let mut ids = Vec::new();
    for node in &nodes {
        let v: Value = client
            .get(format!("http://{}/cluster", node.http.as_ref().expect("up")))
            .send()
            .await
            .expect("cluster")
            .json()
            .await
            .expect("json");
        ids.push(v["result"]["peer_id"].as_u64().expect("peer id"));
    }

    let view = Arc::new(View::default());
    publish(&view, &nodes, None);
    let stop = Arc::new(AtomicBool::new(false));
    let failed = Arc::new(Mutex::new(Vec::new()));
    let writers: Vec<_> =
        (0..3u64).map(|w| tokio::spawn(writer(w + 1, seed * 31 + w, view.clone(), stop.clone()))).collect();
    let reader = tokio::spawn(reader(seed * 37, view.clone(), stop.clone(), failed.clone()));

    let mut rng = Rng::new(seed);
    let mut report = Report::default();
    let end = Instant::now() + Duration::from_secs(seconds);
    let pause =
        |rng: &mut Rng, from: u64, to: u64| Duration::from_millis(from + rng.next_u64() % (to - from));
    while Instant::now() < end {
        tokio::time::sleep(pause(&mut rng, 500, 1500)).await;
        let leader = leader_index(&client, &nodes, &ids).await;
        // The leader one time in two, else any node.
        let x = match leader {
            Some(l) if rng.next_u64().is_multiple_of(2) => l,
            _ => (rng.next_u64() % NODES as u64) as usize,
        };
        if rng.next_u64().is_multiple_of(2) {
            report.kills += 1;
            report.leader_kills += u64::from(leader == Some(x));
            // Out of the workload's view first, so that a query it sends from now on
            // to the node may fail.
            nodes[x].http = None;
            publish(&view, &nodes, None);
            nodes[x].kill(&net);
            tokio::time::sleep(pause(&mut rng, 300, 2000)).await;
            nodes[x].start(&net).await;
            publish(&view, &nodes, None);
        } else {
            report.isolations += 1;
            net.isolate(x, true);
            publish(&view, &nodes, Some(x));
            // Longer than an election timeout (1–2 s), mostly.
            tokio::time::sleep(pause(&mut rng, 1500, 4000)).await;
            net.isolate(x, false);
            publish(&view, &nodes, None);
        }
    }

    // Every fault healed: stop the workload and check.
    stop.store(true, Ordering::Relaxed);
    let mut history = Vec::new();
    for w in writers {
        history.extend(w.await.expect("writer"));
    }
    report.queries = reader.await.expect("reader");
    let failed = failed.lock().clone();
    assert!(failed.is_empty(), "seed {seed}: queries on the majority's side failed: {failed:?}");

    // One more write, acknowledged, through every node in turn: the cluster works.
    let deadline = Instant::now() + Duration::from_secs(30);
    'last: loop {
        for node in &nodes {
            let base = node.http.as_ref().expect("up");
            let body = json!({"points": [{"id": 9_999_999, "vector": [1.0, 0.0, 0.0, 0.0], "payload": {"last": true}}]});
            let r =
                client.put(format!("http://{base}/collections/c/points?wait=true")).json(&body).send().await;
            if r.is_ok_and(|r| r.status().is_success()) {
                break 'last;
            }
        }
        assert!(Instant::now() < deadline, "seed {seed}: no write acknowledged after healing");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    history.push(Write {
        id: 9_999_999,
        vector: vec![1.0, 0.0, 0.0, 0.0],
        payload: json!({"last": true}),
        acked: true,
    });

    // The replicas converge to the same contents.
    let deadline = Instant::now() + Duration::from_secs(30);
    let reference = loop {
        let mut all = Vec::new();
        for node in &nodes {
            all.push(contents(&client, node.http.as_ref().expect("up")).await);
        }
        if let Some(Some(first)) = all.first()
            && all.iter().all(|c| c.as_ref() == Some(first))
            && first.contains_key(&9_999_999)
        {
            break first.clone();
        }
        if Instant::now() > deadline {
            let sizes: Vec<Option<usize>> = all.iter().map(|c| c.as_ref().map(BTreeMap::len)).collect();
            let differing: Vec<u64> = match (&all[0], &all[1], &all[2]) {
                (Some(a), Some(b), Some(c)) => a
                    .keys()
                    .chain(b.keys())
                    .chain(c.keys())
                    .filter(|k| a.get(k) != b.get(k) || b.get(k) != c.get(k))
                    .take(10)
                    .copied()
                    .collect(),
                _ => Vec::new(),
            };
            let logs: Vec<String> =
                nodes.iter().map(|n| std::fs::read_to_string(&n.log).unwrap_or_default()).collect();
            panic!(
                "seed {seed}: replicas differ 30 s after healing: sizes {sizes:?}, differing ids {differing:?}\nlogs:\n{}",
                logs.join("\n----\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };

    // Every acknowledged write there: the point holds the last acknowledged write to
    // it, or a write issued after that one whose answer was lost.
    let mut by_id: BTreeMap<u64, Vec<&Write>> = BTreeMap::new();
    for write in &history {
        by_id.entry(write.id).or_default().push(write);
        if write.acked {
            report.acked += 1;
        } else {
            report.unacked += 1;
        }
    }
    for (id, writes) in by_id {
        let last_acked = writes.iter().rposition(|w| w.acked);
        let allowed: Vec<&Write> = match last_acked {
            Some(i) => writes[i..].to_vec(),
            None => writes.clone(),
        };
        match reference.get(&id) {
            Some((vector, payload)) => assert!(
                allowed.iter().any(|w| w.vector == *vector && w.payload == *payload),
                "seed {seed}: point {id} holds {vector:?} {payload}, which no write it may hold wrote"
            ),
            None => assert!(last_acked.is_none(), "seed {seed}: point {id} was acknowledged and is lost"),
        }
    }
    for node in &mut nodes {
        node.kill(&net);
    }
    report
}

#[test]
fn acknowledged_writes_survive_kills_and_cut_links() {
    let trials = env_u64("BRAID_CHAOS_TRIALS", 1);
    let seed = env_u64("BRAID_CHAOS_SEED", 1);
    let seconds = env_u64("BRAID_CHAOS_SECONDS", 8);
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(4).enable_all().build().expect("rt");
    let total = AtomicU64::new(0);
    let mut sum = Report::default();
    for t in 0..trials {
        let dir = tempfile::tempdir().expect("temp dir");
        let shards = env_u64("BRAID_CHAOS_SHARDS", 1 + (seed + t) % 2);
        let r = runtime.block_on(trial(seed + t, seconds, shards, dir.path()));
        println!(
            "chaos trial {} (seed {}, {shards} shard(s)): {} kills ({} of the leader), {} isolations, {} writes acknowledged, {} not, {} queries answered, 0 lost",
            t + 1,
            seed + t,
            r.kills,
            r.leader_kills,
            r.isolations,
            r.acked,
            r.unacked,
            r.queries
        );
        total.fetch_add(1, Ordering::Relaxed);
        sum.kills += r.kills;
        sum.leader_kills += r.leader_kills;
        sum.isolations += r.isolations;
        sum.acked += r.acked;
        sum.unacked += r.unacked;
        sum.queries += r.queries;
    }
    println!(
        "chaos: {} trials, {} kills ({} of the leader), {} isolations, {} acknowledged writes checked, {} unacknowledged, {} queries answered, 0 lost",
        total.load(Ordering::Relaxed),
        sum.kills,
        sum.leader_kills,
        sum.isolations,
        sum.acked,
        sum.unacked,
        sum.queries
    );
}
