//! `cargo xtask tsan`: the concurrency tests under ThreadSanitizer (nightly).
//!
//! The standard library is not rebuilt with the sanitizer (that needs `rust-src`
//! and `-Zbuild-std`), so its own thread start/join synchronisation is reported as
//! races; `tsan/suppressions.txt` hides exactly those frames. TSan sees races on
//! plain memory (vector rows, payloads, anything behind a lock); orderings between
//! atomics are not races to it, so it cannot check those (docs/hnsw.md says why
//! the graph's are right).

use std::process::Command;

use crate::{exec, root};

/// (package, test target, test name filter) of each concurrency test it runs.
const ALL: [(&str, &str, &str); 3] = [
    ("braid-hnsw", "--test=properties", "inserts_from_two_threads"),
    ("braid", "--lib", "a_query_on_a_pool_thread"),
    ("braid", "--test=storage", "while_the_collection_is_compacted"),
];

/// Runs the tests of `ALL` that `only` selects (all for `None`).
pub(crate) fn run_tsan(only: Option<&str>) -> Result<(), String> {
    let suppressions = root().join("xtask").join("tsan").join("suppressions.txt");
    for (package, target, filter) in ALL.iter().filter(|(p, ..)| only.is_none_or(|o| o == *p)) {
        exec(
            Command::new("cargo")
                .current_dir(root())
                .args(["+nightly", "test", "-p", package, target, "--target", "x86_64-unknown-linux-gnu"])
                .args(["--", filter])
                .env("RUSTFLAGS", "-Zsanitizer=thread -Cunsafe-allow-abi-mismatch=sanitizer")
                .env("TSAN_OPTIONS", format!("suppressions={} halt_on_error=1", suppressions.display()))
                .env("CARGO_TARGET_DIR", root().join("target").join("tsan")),
        )?;
    }
    Ok(())
}

pub(crate) fn run(args: &[String]) -> Result<(), String> {
    match args {
        [] => run_tsan(None),
        [flag, package] if flag == "--package" || flag == "-p" => run_tsan(Some(package)),
        _ => Err("usage: cargo xtask tsan [-p PACKAGE]".into()),
    }
}
