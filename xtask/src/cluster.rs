//! `cargo xtask cluster up`: a cluster of `braid serve` nodes on this machine, for
//! trying the cluster API (docs/distributed.md). Node `i` serves REST on 6333 + 100·i,
//! gRPC on 6334 + 100·i and its peers on 6335 + 100·i, with its data in
//! `target/cluster/node<i>`; the first starts the cluster and the others join it. Runs
//! until Ctrl-C, which stops every node gracefully.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use crate::{cargo, exec, root};

const USAGE: &str = "usage: cargo xtask cluster up [--nodes N] [--release]";

pub(crate) fn run(args: &[String]) -> Result<(), String> {
    let (mut nodes, mut release) = (3usize, false);
    let mut rest = args.iter();
    if rest.next().map(String::as_str) != Some("up") {
        return Err(USAGE.into());
    }
    while let Some(flag) = rest.next() {
        match flag.as_str() {
            "--nodes" => {
                nodes =
                    rest.next().and_then(|n| n.parse().ok()).filter(|n| (1..=9).contains(n)).ok_or(USAGE)?
            }
            "--release" => release = true,
            _ => return Err(USAGE.into()),
        }
    }
    let mut build = cargo();
    build.args(["build", "-p", "braid-server", "--bin", "braid"]);
    if release {
        build.arg("--release");
    }
    exec(&mut build)?;
    let root = root();
    let binary = root.join("target").join(if release { "release" } else { "debug" }).join("braid");
    let data = root.join("target").join("cluster");
    let mut nodes = start(&binary, &data, nodes)?;
    println!("cluster up: {} nodes; Ctrl-C stops them", nodes.children.len());
    nodes.wait();
    Ok(())
}

/// The nodes of a cluster (or, with `cluster` false, one server running alone) as
/// processes of `binary`, node `i` on ports `base + 100·i` (REST), `+1` (gRPC), `+2`
/// (p2p), its data in `data/node<i>`.
pub(crate) struct Nodes {
    binary: PathBuf,
    data: PathBuf,
    base: u16,
    cluster: bool,
    children: Vec<Option<Child>>,
}

impl Nodes {
    pub(crate) fn new(binary: &Path, data: &Path, base: u16, cluster: bool) -> Nodes {
        Nodes { binary: binary.to_path_buf(), data: data.to_path_buf(), base, cluster, children: Vec::new() }
    }

    pub(crate) fn port(&self, i: usize, k: u16) -> u16 {
        self.base + 100 * i as u16 + k
    }

    /// Starts node `i` (the first start of a node past the first joins through it)
    /// and waits until it answers.
    pub(crate) fn start(&mut self, i: usize) -> Result<(), String> {
        let dir = self.data.join(format!("node{i}"));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let mut command = Command::new(&self.binary);
        command
            .args(["serve", "--data"])
            .arg(&dir)
            .args(["--http", &format!("127.0.0.1:{}", self.port(i, 0))])
            .args(["--grpc", &format!("127.0.0.1:{}", self.port(i, 1))])
            .args(["--log-level", "warn,openraft=error"]);
        if self.cluster {
            command.args(["--p2p", &format!("127.0.0.1:{}", self.port(i, 2))]);
            if i > 0 {
                command.args(["--bootstrap", &format!("http://127.0.0.1:{}", self.port(0, 2))]);
            }
        }
        println!("$ {command:?}");
        let child = command.spawn().map_err(|e| format!("{}: {e}", self.binary.display()))?;
        if self.children.len() <= i {
            self.children.resize_with(i + 1, || None);
        }
        self.children[i] = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if http(self.port(i, 0), "GET", "/cluster", None).is_ok() {
                return Ok(());
            }
            if let Some(Ok(Some(status))) = self.children[i].as_mut().map(Child::try_wait) {
                return Err(format!("node {i} exited: {status}"));
            }
            if Instant::now() > deadline {
                return Err(format!("node {i} did not answer within 60 s"));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGKILL to node `i`.
    fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.children.get_mut(i).and_then(Option::take) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn wait(&mut self) {
        for child in self.children.iter_mut().flatten() {
            let _ = child.wait();
        }
    }
}

impl Drop for Nodes {
    fn drop(&mut self) {
        for i in 0..self.children.len() {
            self.kill(i);
        }
    }
}

fn start(binary: &Path, data: &Path, count: usize) -> Result<Nodes, String> {
    let mut nodes = Nodes::new(binary, data, 6333, true);
    for i in 0..count {
        nodes.start(i)?;
        let peers = http(nodes.port(i, 0), "GET", "/cluster", None)?.1["result"]["peers"]
            .as_object()
            .map_or(0, serde_json::Map::len);
        println!(
            "node {i}: REST http://127.0.0.1:{}  gRPC http://127.0.0.1:{}  ({peers} peers)",
            nodes.port(i, 0),
            nodes.port(i, 1)
        );
    }
    Ok(nodes)
}

/// One HTTP/1.1 request to the REST port on loopback (its own connection); the
/// status and the JSON body.
fn http(port: u16, method: &str, path: &str, body: Option<&str>) -> Result<(u16, serde_json::Value), String> {
    http_within(port, method, path, body, Duration::from_secs(30))
}

/// [`http`], waiting up to `wait` for the answer.
fn http_within(
    port: u16,
    method: &str,
    path: &str,
    body: Option<&str>,
    wait: Duration,
) -> Result<(u16, serde_json::Value), String> {
    let fail = |e: std::io::Error| format!("{method} {path}: {e}");
    let mut stream = TcpStream::connect(("127.0.0.1", port)).map_err(fail)?;
    stream.set_read_timeout(Some(wait)).map_err(fail)?;
    let body = body.unwrap_or("");
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).map_err(fail)?;
    let mut response = String::new();
    stream.read_to_string(&mut response).map_err(fail)?;
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or(format!("{method} {path}: no status"))?;
    let json = response.split("\r\n\r\n").nth(1).ok_or(format!("{method} {path}: no body"))?;
    let value = serde_json::from_str(json).map_err(|e| format!("{method} {path}: {e}: {json}"))?;
    Ok((status, value))
}

/// `cargo xtask bench cluster [-- --ingest N --catch-up N --queries N]`: ingest
/// throughput of one server alone, a cluster of one and a cluster of three (every
/// write replicated to all three); query throughput of one server alone and of two
/// shards on two nodes; the pause in acknowledged writes when a node is killed, each node in
/// turn (the one leading the collection's group gives the failover time); and the
/// time a replica stopped while N points were written takes to catch up after its
/// restart, and the time `replicate_shard` takes to fill a new replica of N points. Processes of the release `braid` on loopback; written to
/// `target/bench/cluster.{md,json}`.
pub(crate) fn bench(args: &[String]) -> Result<(), String> {
    let number = |flag: &str, default: usize| -> Result<usize, String> {
        match args.iter().position(|a| a == flag) {
            None => Ok(default),
            Some(i) => args.get(i + 1).and_then(|v| v.parse().ok()).ok_or(format!("{flag} takes a number")),
        }
    };
    let (ingest, catch_up) = (number("--ingest", 20_000)?, number("--catch-up", 100_000)?);
    let queries = number("--queries", 2_000)?;
    exec(cargo().args(["build", "--release", "-p", "braid-server", "--bin", "braid"]))?;
    let binary = root().join("target/release/braid");
    let data = root().join("target/bench/cluster");
    let _ = std::fs::remove_dir_all(&data);
    let mut report = serde_json::json!({"points": ingest, "dim": DIM, "batch": BATCH, "clients": CLIENTS});

    let mut rows = Vec::new();
    for (label, count, cluster) in
        [("one server, alone", 1, false), ("cluster of 1", 1, true), ("cluster of 3", 3, true)]
    {
        let mut nodes = Nodes::new(&binary, &data.join(label.replace([' ', ','], "-")), 7333, cluster);
        for i in 0..count {
            nodes.start(i)?;
        }
        create(nodes.port(0, 0))?;
        let seconds = ingest_points(nodes.port(0, 0), 0, ingest)?;
        println!("{label}: {ingest} points in {seconds:.2} s");
        rows.push(
            serde_json::json!({"setup": label, "seconds": seconds, "points_per_s": ingest as f64 / seconds}),
        );
    }
    report["ingest"] = serde_json::Value::Array(rows);

    // Queries: one server alone vs the same points in two shards on two nodes, asked
    // through one of them (each query reaches both shards and merges).
    let mut query_rows = Vec::new();
    for (label, count, shards) in [("one server, alone", 1, 0), ("2 shards on 2 nodes", 2, 2)] {
        let mut nodes = Nodes::new(&binary, &data.join(format!("query-{count}")), 7333, shards > 0);
        for i in 0..count {
            nodes.start(i)?;
        }
        let placement = if shards > 0 {
            format!(r#", "shard_number": {shards}, "replication_factor": 1"#)
        } else {
            String::new()
        };
        create_with(nodes.port(0, 0), &placement)?;
        ingest_points(nodes.port(0, 0), 0, ingest)?;
        let qps = query_rate(nodes.port(0, 0), queries)?;
        println!("{label}: {qps:.0} queries/s");
        query_rows.push(serde_json::json!({"setup": label, "queries_per_s": qps}));
    }
    report["query"] = serde_json::Value::Array(query_rows.clone());

    // Failover: writes of one point through another node while each node is killed.
    let mut nodes = Nodes::new(&binary, &data.join("failover"), 7333, true);
    for i in 0..3 {
        nodes.start(i)?;
    }
    create(nodes.port(0, 0))?;
    let mut pauses = Vec::new();
    for k in 0..3 {
        let through = nodes.port((k + 1) % 3, 0);
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writer = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut acks = Vec::new();
                let mut id = 10_000_000 + k as u64 * 1_000_000;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    id += 1;
                    let sent = Instant::now();
                    if put_points(through, id, 1).is_ok() {
                        acks.push((sent, Instant::now()));
                    }
                }
                acks
            })
        };
        std::thread::sleep(Duration::from_secs(2));
        // From the moment the node is gone (killed and reaped) to the answer of the
        // first write sent after it: a write in flight before the kill, answered just
        // after it, is not a failover.
        nodes.kill(k);
        let killed = Instant::now();
        std::thread::sleep(Duration::from_secs(6));
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let acks = writer.join().map_err(|_| "the writer panicked")?;
        let next = acks
            .iter()
            .find(|(sent, _)| *sent > killed)
            .map(|(_, answered)| *answered)
            .ok_or(format!("no write acknowledged within 6 s of killing node {k}"))?;
        let pause = next.duration_since(killed).as_secs_f64();
        println!("node {k} killed: next acknowledged write after {:.3} s", pause);
        pauses.push(pause);
        nodes.start(k)?;
    }
    report["failover_s"] = serde_json::json!(pauses);

    // Catch-up: a replica stopped while `catch_up` points are written.
    nodes.kill(2);
    ingest_points(nodes.port(0, 0), 20_000_000, catch_up)?;
    let expected = count(nodes.port(0, 0))?;
    let restarted = Instant::now();
    nodes.start(2)?;
    let deadline = Instant::now() + Duration::from_secs(600);
    while count(nodes.port(2, 0)).ok() != Some(expected) {
        if Instant::now() > deadline {
            return Err("the restarted replica did not catch up within 600 s".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let caught_up = restarted.elapsed().as_secs_f64();
    println!("a replica {catch_up} points behind caught up {caught_up:.2} s after its restart");
    report["catch_up"] = serde_json::json!({"points": catch_up, "seconds": caught_up});
    drop(nodes);

    // A new replica: `catch_up` points in a collection with one replica on two nodes,
    // then `replicate_shard` to the other node, timed to the call's answer (the new
    // replica caught up and voting).
    let mut nodes = Nodes::new(&binary, &data.join("replicate"), 7333, true);
    for i in 0..2 {
        nodes.start(i)?;
    }
    create_with(nodes.port(0, 0), r#", "replication_factor": 1"#)?;
    ingest_points(nodes.port(0, 0), 0, catch_up)?;
    let (_, info) = http(nodes.port(0, 0), "GET", "/collections/c/cluster", None)?;
    let (_, cluster) = http(nodes.port(0, 0), "GET", "/cluster", None)?;
    let holder = match info["result"]["local_shards"].as_array().is_some_and(|l| !l.is_empty()) {
        true => info["result"]["peer_id"].as_u64(),
        false => info["result"]["remote_shards"][0]["peer_id"].as_u64(),
    }
    .ok_or(format!("no holder of the shard in {info}"))?;
    let to = cluster["result"]["peers"]
        .as_object()
        .and_then(|peers| peers.keys().filter_map(|k| k.parse::<u64>().ok()).find(|p| *p != holder))
        .ok_or(format!("no other peer in {cluster}"))?;
    let op =
        format!(r#"{{"replicate_shard": {{"shard_id": 0, "from_peer_id": {holder}, "to_peer_id": {to}}}}}"#);
    let started = Instant::now();
    let wait = Duration::from_secs(600);
    match http_within(nodes.port(0, 0), "POST", "/collections/c/cluster?timeout=600", Some(&op), wait)? {
        (200, _) => {}
        (status, v) => return Err(format!("replicate_shard: {status} {v}")),
    }
    let replicated = started.elapsed().as_secs_f64();
    println!("a new replica of {catch_up} points filled by replicate_shard in {replicated:.2} s");
    report["replicate_shard"] = serde_json::json!({"points": catch_up, "seconds": replicated});
    drop(nodes);

    let ingest_rows = report["ingest"].as_array().cloned().unwrap_or_default();
    let alone = ingest_rows.first().and_then(|r| r["points_per_s"].as_f64()).unwrap_or(f64::NAN);
    let mut md = format!(
        "| setup | points/s ({ingest} × {DIM}-d, batches of {BATCH}, {CLIENTS} clients, `wait=true`) | vs one server alone |\n|---|---|---|\n"
    );
    for row in &ingest_rows {
        let rate = row["points_per_s"].as_f64().unwrap_or(f64::NAN);
        md += &format!("| {} | {rate:.0} | {:.2} |\n", row["setup"].as_str().unwrap_or(""), rate / alone);
    }
    let alone_qps = query_rows.first().and_then(|r| r["queries_per_s"].as_f64()).unwrap_or(f64::NAN);
    md += &format!(
        "\n| setup | queries/s ({queries} nearest-10 over {ingest} points, {CLIENTS} clients, through node 0) | vs one server alone |\n|---|---|---|\n"
    );
    for row in &query_rows {
        let rate = row["queries_per_s"].as_f64().unwrap_or(f64::NAN);
        md += &format!("| {} | {rate:.0} | {:.2} |\n", row["setup"].as_str().unwrap_or(""), rate / alone_qps);
    }
    md += &format!(
        "\nnext acknowledged write after killing node 0 / 1 / 2 (writes through another node): {}\n",
        pauses.iter().map(|p| format!("{p:.3} s")).collect::<Vec<_>>().join(" / ")
    );
    md += &format!("\na replica {catch_up} points behind: caught up {caught_up:.2} s after its restart\n");
    md += &format!("\na new replica of {catch_up} points (`replicate_shard`): filled in {replicated:.2} s\n");
    let out = root().join("target/bench");
    std::fs::write(
        out.join("cluster.json"),
        serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?,
    )
    .map_err(|e| e.to_string())?;
    std::fs::write(out.join("cluster.md"), &md).map_err(|e| e.to_string())?;
    println!("\n{md}\nresults: {}", out.join("cluster.md").display());
    Ok(())
}

const DIM: usize = 384;
const BATCH: usize = 100;
const CLIENTS: usize = 2;

fn create(port: u16) -> Result<(), String> {
    create_with(port, "")
}

/// Creates collection `c` with `placement` (extra fields of the body, each with a
/// leading comma).
fn create_with(port: u16, placement: &str) -> Result<(), String> {
    let body = format!(r#"{{"vectors": {{"size": {DIM}, "distance": "Cosine"}}{placement}}}"#);
    match http(port, "PUT", "/collections/c", Some(&body))? {
        (200, _) => Ok(()),
        (status, v) => Err(format!("create: {status} {v}")),
    }
}

fn count(port: u16) -> Result<u64, String> {
    let (_, v) = http(port, "POST", "/collections/c/points/count", Some(r#"{"exact": true}"#))?;
    v["result"]["count"].as_u64().ok_or(format!("count: {v}"))
}

/// Upserts points `first .. first + n` (pseudo-random vectors) through `port`.
fn put_points(port: u16, first: u64, n: usize) -> Result<(), String> {
    let mut state = first.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut body = String::from(r#"{"points": ["#);
    for id in first..first + n as u64 {
        if id > first {
            body.push(',');
        }
        body += &format!(r#"{{"id": {id}, "vector": ["#);
        for d in 0..DIM {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            if d > 0 {
                body.push(',');
            }
            body += &format!("{:.5}", (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5);
        }
        body += "]}";
    }
    body += "]}";
    match http(port, "PUT", "/collections/c/points?wait=true", Some(&body))? {
        (200, _) => Ok(()),
        (status, v) => Err(format!("upsert: {status} {v}")),
    }
}

/// Runs `n` nearest-10 queries (pseudo-random vectors) through `port` from
/// [`CLIENTS`] threads; queries per second.
fn query_rate(port: u16, n: usize) -> Result<f64, String> {
    let bodies: Vec<String> = (0..n as u64)
        .map(|q| {
            let mut state = (q + 1).wrapping_mul(0xD1B5_4A32_D192_ED03) | 1;
            let vector: Vec<String> = (0..DIM)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    format!("{:.5}", (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5)
                })
                .collect();
            format!(r#"{{"query": [{}], "limit": 10}}"#, vector.join(","))
        })
        .collect();
    let started = Instant::now();
    std::thread::scope(|scope| {
        let workers: Vec<_> = bodies
            .chunks(n.div_ceil(CLIENTS).max(1))
            .map(|mine| {
                scope.spawn(move || {
                    mine.iter().try_for_each(|body| {
                        match http(port, "POST", "/collections/c/points/query", Some(body))? {
                            (200, _) => Ok(()),
                            (status, v) => Err(format!("query: {status} {v}")),
                        }
                    })
                })
            })
            .collect();
        workers.into_iter().try_for_each(|w| w.join().map_err(|_| "a client panicked".to_string())?)
    })?;
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

/// Upserts `n` points from id `first` in batches by [`CLIENTS`] threads; the seconds
/// it took.
fn ingest_points(port: u16, first: u64, n: usize) -> Result<f64, String> {
    let started = Instant::now();
    let batches: Vec<u64> = (0..n.div_ceil(BATCH) as u64).collect();
    std::thread::scope(|scope| {
        let workers: Vec<_> = batches
            .chunks(batches.len().div_ceil(CLIENTS).max(1))
            .map(|mine| {
                scope.spawn(move || {
                    mine.iter().try_for_each(|b| {
                        let size = BATCH.min(n - *b as usize * BATCH);
                        put_points(port, first + b * BATCH as u64, size)
                    })
                })
            })
            .collect();
        workers.into_iter().try_for_each(|w| w.join().map_err(|_| "a client panicked".to_string())?)
    })?;
    Ok(started.elapsed().as_secs_f64())
}
