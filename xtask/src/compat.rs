//! `cargo xtask compat [--differential [--seed N] [--cases N]]`: the official Python
//! `qdrant-client` walks the multi-model tutorial, the hybrid (BM25 + dense) walk and
//! the rest of the query API (`query_api.py`) against `braid serve`, over REST and over gRPC; with `--differential`, it runs random collections and requests against
//! `braid serve` and against the client's local mode and reports every divergence
//! (`crates/braid-server/compat/differential.py`). Needs PyPI on first run (the client
//! goes into a venv under `target/compat/venv`), so it is not part of `ci`.

use std::process::{Child, Command};

use crate::{cargo, exec, root};

/// A port for the child server to bind: below the kernel's ephemeral range, so no
/// connection opened between this call and the child's bind can be handed it.
fn free_port() -> Result<u16, String> {
    braid_testkit::loopback_listener().local_addr().map(|a| a.port()).map_err(|e| e.to_string())
}

struct Serving(Child);

impl Drop for Serving {
    fn drop(&mut self) {
        // SIGTERM: the server shuts down gracefully and flushes.
        let _ = Command::new("kill").arg(self.0.id().to_string()).status();
        let _ = self.0.wait();
    }
}

/// What to run: the tutorial, or the differential test with its seed and case count.
enum Mode {
    Tutorial,
    Differential { seed: String, cases: String },
}

fn mode(args: &[String]) -> Result<Mode, String> {
    let usage = || "usage: cargo xtask compat [--differential [--seed N] [--cases N]]".to_string();
    let Some((first, rest)) = args.split_first() else { return Ok(Mode::Tutorial) };
    if first != "--differential" {
        return Err(usage());
    }
    let (mut seed, mut cases) = ("1".to_string(), "200".to_string());
    let mut it = rest.iter();
    while let Some(flag) = it.next() {
        let value = it.next().filter(|v| v.parse::<u64>().is_ok()).ok_or_else(usage)?.clone();
        match flag.as_str() {
            "--seed" => seed = value,
            "--cases" => cases = value,
            _ => return Err(usage()),
        }
    }
    Ok(Mode::Differential { seed, cases })
}

pub(crate) fn run(args: &[String]) -> Result<(), String> {
    let mode = mode(args)?;
    exec(cargo().args(["build", "--release", "-p", "braid-server", "--bin", "braid"]))?;
    let target = root().join("target/compat");
    let data = target.join("data");
    let _ = std::fs::remove_dir_all(&data);
    std::fs::create_dir_all(&target).map_err(|e| e.to_string())?;
    let venv = target.join("venv");
    let python = venv.join("bin/python");
    if !python.exists() {
        exec(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
    }
    exec(Command::new(&python).args(["-m", "pip", "install", "--quiet", "qdrant-client"]))?;
    let (http, grpc) = (free_port()?, free_port()?);
    let child = Command::new(root().join("target/release/braid"))
        .args(["serve", "--data"])
        .arg(&data)
        .args(["--http", &format!("127.0.0.1:{http}"), "--grpc", &format!("127.0.0.1:{grpc}")])
        .spawn()
        .map_err(|e| format!("cannot start braid serve: {e}"))?;
    let _serving = Serving(child);
    // Wait until it answers.
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", http)).is_ok() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let scripts: &[&str] = match mode {
        Mode::Tutorial => &[
            "crates/braid-server/compat/tutorial.py",
            "crates/braid-server/compat/hybrid.py",
            "crates/braid-server/compat/query_api.py",
            "crates/braid-server/compat/ops.py",
        ],
        Mode::Differential { .. } => &["crates/braid-server/compat/differential.py"],
    };
    // Both protocols run even when the first diverges, so one run reports both.
    let mut failed = Vec::new();
    for (script, grpc_flag) in scripts.iter().flat_map(|s| [(s, None), (s, Some("--prefer-grpc"))]) {
        let mut cmd = Command::new(&python);
        cmd.arg(root().join(script)).args(["--http", &http.to_string(), "--grpc", &grpc.to_string()]);
        cmd.arg("--snapshots").arg(data.join("snapshots"));
        if let Mode::Differential { seed, cases } = &mode {
            cmd.args(["--seed", seed, "--cases", cases, "--out"]).arg(target.join("differential"));
        }
        if let Some(flag) = grpc_flag {
            cmd.arg(flag);
        }
        if let Err(e) = exec(&mut cmd) {
            failed.push(e);
        }
    }
    if matches!(mode, Mode::Tutorial) {
        // The cluster calls, against three nodes.
        let mut nodes = crate::cluster::Nodes::new(
            &root().join("target/release/braid"),
            &target.join("cluster"),
            7533,
            true,
        );
        let _ = std::fs::remove_dir_all(target.join("cluster"));
        for i in 0..3 {
            nodes.start(i)?;
        }
        let others =
            format!("{}:{},{}:{}", nodes.port(1, 0), nodes.port(1, 1), nodes.port(2, 0), nodes.port(2, 1));
        // The cluster walk, then the tutorial, query API and hybrid walks through a
        // node that is not the first (all their calls are served on a cluster node).
        let walks = [("cluster.py", 0), ("tutorial.py", 1), ("query_api.py", 1), ("hybrid.py", 1)];
        for ((script, node), grpc_flag) in walks.iter().flat_map(|w| [(w, None), (w, Some("--prefer-grpc"))])
        {
            let mut cmd = Command::new(&python);
            cmd.arg(root().join("crates/braid-server/compat").join(script)).args([
                "--http",
                &nodes.port(*node, 0).to_string(),
                "--grpc",
                &nodes.port(*node, 1).to_string(),
            ]);
            if *script == "cluster.py" {
                cmd.args(["--others", &others]);
            }
            if let Some(flag) = grpc_flag {
                cmd.arg(flag);
            }
            if let Err(e) = exec(&mut cmd) {
                failed.push(e);
            }
        }
    }
    if !failed.is_empty() {
        return Err(failed.join("\n"));
    }
    match mode {
        Mode::Tutorial => {
            println!(
                "xtask compat: the Python qdrant-client passed the tutorial, the hybrid walk, the query API walk, the aliases and snapshots walk over REST and gRPC, and on a cluster of three nodes the cluster walk and again the tutorial, hybrid and query API walks"
            )
        }
        Mode::Differential { seed, cases } => {
            println!("xtask compat: {cases} differential cases (seed {seed}) agreed over REST and gRPC")
        }
    }
    Ok(())
}
