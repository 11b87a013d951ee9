//! `cargo xtask compat`: the official Python `qdrant-client` walks the multi-model
//! tutorial against `braid serve`, over REST and over gRPC. Needs PyPI on first run
//! (the client goes into a venv under `target/compat/venv`), so it is not part of `ci`.

use std::net::TcpListener;
use std::process::{Child, Command};

use crate::{cargo, exec, root};

fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).map_err(|e| e.to_string())
}

struct Serving(Child);

impl Drop for Serving {
    fn drop(&mut self) {
        // SIGTERM: the server shuts down gracefully and flushes.
        let _ = Command::new("kill").arg(self.0.id().to_string()).status();
        let _ = self.0.wait();
    }
}

pub(crate) fn run(args: &[String]) -> Result<(), String> {
    if !args.is_empty() {
        return Err("usage: cargo xtask compat".into());
    }
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
    let script = root().join("crates/braid-server/compat/tutorial.py");
    for grpc_flag in [None, Some("--prefer-grpc")] {
        let mut cmd = Command::new(&python);
        cmd.arg(&script).args(["--http", &http.to_string(), "--grpc", &grpc.to_string()]);
        if let Some(flag) = grpc_flag {
            cmd.arg(flag);
        }
        exec(&mut cmd)?;
    }
    println!("xtask compat: the Python qdrant-client passed the tutorial over REST and gRPC");
    Ok(())
}
