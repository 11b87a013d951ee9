//! `cargo xtask cluster up`: a cluster of `braid serve` nodes on this machine, for
//! trying the cluster API (docs/distributed.md). Node `i` serves REST on 6333 + 100·i,
//! gRPC on 6334 + 100·i and its peers on 6335 + 100·i, with its data in
//! `target/cluster/node<i>`; the first starts the cluster and the others join it. Runs
//! until Ctrl-C, which stops every node gracefully.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
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
    let mut children: Vec<Child> = Vec::new();
    let result = start(&binary, &data, nodes, &mut children);
    match result {
        Ok(()) => {
            println!("cluster up: {nodes} nodes; Ctrl-C stops them");
            for child in &mut children {
                let _ = child.wait();
            }
            Ok(())
        }
        Err(e) => {
            for child in &mut children {
                let _ = child.kill();
                let _ = child.wait();
            }
            Err(e)
        }
    }
}

fn start(binary: &Path, data: &Path, nodes: usize, children: &mut Vec<Child>) -> Result<(), String> {
    let port = |i: usize, k: u16| 6333 + 100 * i as u16 + k;
    for i in 0..nodes {
        let dir = data.join(format!("node{i}"));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let mut command = Command::new(binary);
        command
            .args(["serve", "--data"])
            .arg(&dir)
            .args(["--http", &format!("127.0.0.1:{}", port(i, 0))])
            .args(["--grpc", &format!("127.0.0.1:{}", port(i, 1))])
            .args(["--p2p", &format!("127.0.0.1:{}", port(i, 2))])
            .args(["--log-level", "warn,openraft=error"]);
        if i > 0 {
            command.args(["--bootstrap", &format!("http://127.0.0.1:{}", port(0, 2))]);
        }
        println!("$ {command:?}");
        children.push(command.spawn().map_err(|e| format!("{}: {e}", binary.display()))?);
        // Each node joins through the first: wait until it answers before the next.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(peers) = peers(port(i, 0)) {
                println!(
                    "node {i}: REST http://127.0.0.1:{}  gRPC http://127.0.0.1:{}  ({peers} peers)",
                    port(i, 0),
                    port(i, 1)
                );
                break;
            }
            if let Ok(Some(status)) = children[i].try_wait() {
                return Err(format!("node {i} exited: {status}"));
            }
            if Instant::now() > deadline {
                return Err(format!("node {i} did not answer within 60 s"));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    Ok(())
}

/// The number of peers `GET /cluster` on the REST port reports, once it answers.
fn peers(port: u16) -> Option<usize> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    stream.write_all(b"GET /cluster HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let body = response.split("\r\n\r\n").nth(1)?;
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    v["result"]["peers"].as_object().map(serde_json::Map::len)
}
