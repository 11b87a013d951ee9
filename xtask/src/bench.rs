//! `cargo xtask bench <name>`: one entry per benchmark, mapped to the crate that owns it.

use crate::{cargo, exec};

/// (name, package, bench target, what it measures)
const BENCHES: &[(&str, &str, &str, &str)] = &[
    (
        "distance",
        "braid-distance",
        "distance",
        "kernels per metric at 384/512-d, 1×N block, Q×N faer, exact-scan bandwidth vs memory read",
    ),
    (
        "filter",
        "braid-filter",
        "filter",
        "filter → bitmap through payload indexes vs per-point evaluation, 1M points",
    ),
];

pub(crate) fn run_bench(name: &str, extra: &[String]) -> Result<(), String> {
    let Some((_, package, target, _)) = BENCHES.iter().find(|(n, ..)| *n == name) else {
        return Err(format!("unknown bench `{name}`; known: {}", names()));
    };
    let mut cmd = cargo();
    cmd.args(["bench", "--package", package, "--bench", target]);
    if !extra.is_empty() {
        cmd.arg("--").args(extra);
    }
    exec(&mut cmd)
}

fn names() -> String {
    BENCHES.iter().map(|(n, _, _, what)| format!("\n  {n}: {what}")).collect()
}

pub(crate) fn run(args: &[String]) -> Result<(), String> {
    match args {
        [] => Err(format!("usage: cargo xtask bench <name> [-- criterion args]; names:{}", names())),
        [name, rest @ ..] => {
            let extra = match rest {
                [dashes, tail @ ..] if dashes == "--" => tail,
                other => other,
            };
            run_bench(name, extra)
        }
    }
}
