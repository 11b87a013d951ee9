//! `cargo xtask fuzz <target> [--time S]`: cargo-fuzz on the nightly toolchain,
//! installed on first use. `ci` runs each target briefly.

use std::process::Command;

use crate::{exec, root};

/// Every target in `fuzz/fuzz_targets`.
pub(crate) const TARGETS: [&str; 4] = ["codes_decode", "filter_json", "hnsw_decode", "wal_scan"];

/// Is a nightly toolchain installed?
pub(crate) fn has_nightly() -> bool {
    Command::new("rustup")
        .args(["run", "nightly", "rustc", "--version"])
        .output()
        .is_ok_and(|o| o.status.success())
}

pub(crate) fn run_fuzz(target: &str, seconds: u64) -> Result<(), String> {
    crate::ensure_installed("fuzz", "cargo-fuzz")?;
    if !has_nightly() {
        exec(Command::new("rustup").args(["toolchain", "install", "nightly", "--profile", "minimal"]))?;
    }
    // New inputs go to corpus/<target> (not committed); the committed seeds are read too.
    let corpus = format!("corpus/{target}");
    let seeds = format!("seeds/{target}");
    std::fs::create_dir_all(root().join("fuzz").join(&corpus)).map_err(|e| format!("{corpus}: {e}"))?;
    let mut cmd = Command::new("cargo");
    cmd.current_dir(root().join("fuzz")).args([
        "+nightly",
        "fuzz",
        "run",
        target,
        &corpus,
        &seeds,
        "--",
        &format!("-max_total_time={seconds}"),
    ]);
    exec(&mut cmd)
}

pub(crate) fn run(args: &[String]) -> Result<(), String> {
    let usage = "usage: cargo xtask fuzz <target> [--time SECONDS]";
    let (target, seconds) = match args {
        [target] => (target, 60),
        [target, flag, s] if flag == "--time" => {
            (target, s.parse().map_err(|_| format!("--time wants seconds, got `{s}`"))?)
        }
        _ => return Err(usage.into()),
    };
    run_fuzz(target, seconds)
}
