//! `cargo xtask <task>`: the project's automation, in Rust instead of shell scripts.
//!
//! Every task prints each command before it runs it, so a failure names the step.

#![forbid(unsafe_code)]

use std::env;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

mod bench;
mod cluster;
mod compat;
mod data;
mod fuzz;
mod scale;
mod tsan;

const USAGE: &str = "\
usage: cargo xtask <task>

tasks:
  ci                         fmt check, clippy -D warnings, rustdoc -D warnings,
                             cargo deny (licenses, bans, sources), every test and
                             doctest (proptests with a short case count), 10 power-cut
                             crash trials, 20 s of each fuzz target, the graph's
                             concurrency test under ThreadSanitizer
  bench <name> [-- args]     run a benchmark; names: distance, filter, hnsw, query,
                             database, storage, server, ops, sparse, scale
  proptest [--cases N]       every test with many proptest cases (default 4096)
  fuzz <target> [--time S]   run a cargo-fuzz target for S seconds (default 60);
                             installs cargo-fuzz and uses the nightly toolchain
  data [--n N] [--queries Q] [--k K]
                             real MiniLM embeddings of WordNet glosses under
                             target/data (apt + PyPI on first use; default 20000/1000/100)
  compat [--differential [--seed N] [--cases N]]
                             the Python qdrant-client walks the tutorial against
                             braid serve over REST and gRPC (venv under target/; needs PyPI);
                             --differential compares braid serve with the client's local
                             mode on random collections and requests (default 200 cases)
  tsan [-p PACKAGE]          the concurrency tests under ThreadSanitizer (nightly)
  crash [--trials N] [--seed S] [--power-loss]
                             kill -9 a writing child process N times (default 100)
                             and check every recovery; --power-loss also drops every
                             byte not synced before reopening (`ci` runs 10 of each)
  cluster up [--nodes N] [--release]
                             a cluster of N (default 3) `braid serve` nodes on this
                             machine: REST on 6333, 6433, 6533…, gRPC one port
                             above each, data under target/cluster; Ctrl-C stops it
  chaos [--trials N] [--seed S] [--seconds T]
                             three `braid serve` processes in a cluster under writes
                             and queries while nodes are killed (SIGKILL) and cut
                             off; every acknowledged write checked on every replica
                             (default 100 trials of 8 s; the test suite runs 1)
";

/// Seconds each fuzz target runs in `ci`: a smoke test that it builds and that its
/// seeds and the first mutations pass; `cargo xtask fuzz` runs long ones.
const CI_FUZZ_SECONDS: u64 = 20;

/// Proptest cases per property in `ci`: enough to catch regressions, small enough
/// that the whole suite stays within a few minutes on two cores.
const CI_PROPTEST_CASES: &str = "64";

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("ci") => ci(),
        Some("bench") => bench::run(&args[1..]),
        Some("proptest") => proptest(&args[1..]),
        Some("fuzz") => fuzz::run(&args[1..]),
        Some("crash") => crash(&args[1..]),
        Some("chaos") => chaos(&args[1..]),
        Some("cluster") => cluster::run(&args[1..]),
        Some("compat") => compat::run(&args[1..]),
        Some("data") => data::run(&args[1..]),
        Some("tsan") => tsan::run(&args[1..]),
        Some("-h" | "--help" | "help") | None => {
            print!("{USAGE}");
            Ok(())
        }
        Some(other) => Err(format!("unknown task `{other}`\n\n{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root (the parent of this crate's directory).
pub(crate) fn root() -> PathBuf {
    let manifest =
        env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("xtask"));
    manifest.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."))
}

/// `cargo` as the one that invoked us.
pub(crate) fn cargo() -> Command {
    let mut cmd = Command::new(env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(root());
    cmd
}

/// Prints the command, runs it, and fails if it fails.
pub(crate) fn exec(cmd: &mut Command) -> Result<(), String> {
    let envs: Vec<String> = cmd
        .get_envs()
        .filter_map(|(k, v)| v.map(|v| format!("{}={}", k.to_string_lossy(), v.to_string_lossy())))
        .collect();
    let line = format!(
        "{}{} {}",
        envs.iter().map(|e| format!("{e} ")).collect::<String>(),
        cmd.get_program().to_string_lossy(),
        cmd.get_args().map(|a| a.to_string_lossy().into_owned()).collect::<Vec<_>>().join(" ")
    );
    println!("$ {line}");
    let started = std::time::Instant::now();
    let status = cmd.status().map_err(|e| format!("could not start `{line}`: {e}"))?;
    println!("xtask: {:.0} s for `{line}`", started.elapsed().as_secs_f64());
    if status.success() { Ok(()) } else { Err(format!("`{line}` failed with {status}")) }
}

/// Installs a cargo subcommand from crates.io unless it is already there.
pub(crate) fn ensure_installed(subcommand: &str, package: &str) -> Result<(), String> {
    let present = std::process::Command::new("cargo")
        .args([subcommand, "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if present { Ok(()) } else { exec(cargo().args(["install", package, "--locked"])) }
}

fn ci() -> Result<(), String> {
    // Without incremental state: a clean checkout gains nothing from it, and it was half
    // of the suite's target directory (8.5 of 16 GB), enough to fill a shared disk.
    let cargo = || {
        let mut cmd = cargo();
        cmd.env("CARGO_INCREMENTAL", "0");
        cmd
    };
    exec(cargo().args(["fmt", "--all", "--", "--check"]))?;
    exec(cargo().args(["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"]))?;
    exec(cargo().args(["doc", "--workspace", "--no-deps"]).env("RUSTDOCFLAGS", "-D warnings"))?;
    // Licenses, duplicate bans and sources (deny.toml); offline: no advisory fetch.
    ensure_installed("deny", "cargo-deny")?;
    // Its `cargo metadata` resolves every platform's dependencies, which a build for this
    // one never downloads (e.g. Windows-only crates of the CLI's terminal stack).
    exec(cargo().args(["fetch", "--locked"]))?;
    exec(cargo().args(["deny", "--offline", "check", "licenses", "bans", "sources"]))?;
    exec(cargo().args(["test", "--workspace", "--all-targets"]).env("PROPTEST_CASES", CI_PROPTEST_CASES))?;
    exec(cargo().args(["test", "--workspace", "--doc"]))?;
    // The kill -9 trials ran with the tests; power cuts too, on other seeds.
    crash_trials("10", "500", true)?;
    // Every fuzz target builds and runs briefly from its seeds. libFuzzer needs a
    // nightly toolchain; a machine without one says so here instead of failing the
    // gate on a toolchain it cannot fetch (`cargo xtask fuzz` still requires it).
    if fuzz::has_nightly() {
        for target in fuzz::TARGETS {
            fuzz::run_fuzz(target, CI_FUZZ_SECONDS)?;
        }
        // The graph's lock-free inserts and searches under ThreadSanitizer (154 s cold
        // on two cores; the facade's tests rebuild much more; `cargo xtask tsan` runs
        // them too).
        tsan::run_tsan(Some("braid-hnsw"))?;
    } else {
        println!("xtask ci: no nightly toolchain on this machine; the fuzz and tsan runs were not run");
    }
    println!("xtask ci: all checks passed");
    Ok(())
}

fn crash(args: &[String]) -> Result<(), String> {
    let usage = || "usage: cargo xtask crash [--trials N] [--seed S] [--power-loss]".to_string();
    let (mut trials, mut seed, mut power_loss) = ("100".to_string(), "1".to_string(), false);
    let mut rest = args.iter();
    while let Some(flag) = rest.next() {
        if flag == "--power-loss" {
            power_loss = true;
            continue;
        }
        let value = rest.next().filter(|v| v.parse::<u64>().is_ok()).ok_or_else(usage)?;
        match flag.as_str() {
            "--trials" => trials = value.clone(),
            "--seed" => seed = value.clone(),
            _ => return Err(usage()),
        }
    }
    crash_trials(&trials, &seed, power_loss)
}

fn chaos(args: &[String]) -> Result<(), String> {
    let usage = || "usage: cargo xtask chaos [--trials N] [--seed S] [--seconds T] [--shards N]".to_string();
    let (mut trials, mut seed, mut seconds) = ("100".to_string(), "1".to_string(), "8".to_string());
    let mut shards = None;
    let mut rest = args.iter();
    while let Some(flag) = rest.next() {
        let value = rest.next().filter(|v| v.parse::<u64>().is_ok()).ok_or_else(usage)?;
        match flag.as_str() {
            "--trials" => trials = value.clone(),
            "--seed" => seed = value.clone(),
            "--seconds" => seconds = value.clone(),
            "--shards" => shards = Some(value.clone()),
            _ => return Err(usage()),
        }
    }
    let mut command = cargo();
    command
        .args(["test", "--workspace", "--test", "chaos", "--", "--nocapture"])
        .env("BRAID_CHAOS_TRIALS", trials)
        .env("BRAID_CHAOS_SEED", seed)
        .env("BRAID_CHAOS_SECONDS", seconds);
    // Without it, trials alternate between one shard and two.
    if let Some(shards) = shards {
        command.env("BRAID_CHAOS_SHARDS", shards);
    }
    exec(&mut command)
}

/// The crash test binary with its trial count, first seed and mode.
fn crash_trials(trials: &str, seed: &str, power_loss: bool) -> Result<(), String> {
    exec(
        cargo()
            // `--workspace`, as the suite's own run: with `-p braid` cargo unifies
            // features for that package alone and compiles the whole engine again
            // (3 minutes of a cold CI run).
            .args(["test", "--workspace", "--test", "crash"])
            .env("BRAID_CRASH_TRIALS", trials)
            .env("BRAID_CRASH_SEED", seed)
            .env("BRAID_CRASH_POWER_LOSS", if power_loss { "1" } else { "0" }),
    )
}

fn proptest(args: &[String]) -> Result<(), String> {
    let cases = match args {
        [] => "4096".to_string(),
        [flag, n] if flag == "--cases" => n.clone(),
        _ => return Err("usage: cargo xtask proptest [--cases N]".into()),
    };
    if cases.parse::<u32>().is_err() {
        return Err(format!("--cases wants a number, got `{cases}`"));
    }
    exec(cargo().args(["test", "--workspace", "--release", "--all-targets"]).env("PROPTEST_CASES", &cases))
}
