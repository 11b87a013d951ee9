//! `cargo xtask fuzz <target> [--time S]`: cargo-fuzz on the nightly toolchain,
//! installed on first use. Not part of `ci`.

use std::process::Command;

use crate::{exec, root};

pub(crate) fn run_fuzz(target: &str, seconds: u64) -> Result<(), String> {
    let has_cargo_fuzz =
        Command::new("cargo").args(["fuzz", "--version"]).output().is_ok_and(|o| o.status.success());
    if !has_cargo_fuzz {
        exec(Command::new("cargo").args(["install", "cargo-fuzz", "--locked"]))?;
    }
    let has_nightly = Command::new("rustup")
        .args(["run", "nightly", "rustc", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_nightly {
        exec(Command::new("rustup").args(["toolchain", "install", "nightly", "--profile", "minimal"]))?;
    }
    let mut cmd = Command::new("cargo");
    cmd.current_dir(root().join("fuzz")).args([
        "+nightly",
        "fuzz",
        "run",
        target,
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
