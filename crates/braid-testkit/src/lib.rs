//! Deterministic data for Braid's tests, benches and examples: a tiny xorshift
//! generator, so that every data set is reproducible from a seed without a dependency;
//! and loopback ports for tests of servers ([`loopback_listener`]).
//!
//! ```
//! use braid_testkit::Rng;
//!
//! let mut rng = Rng::new(7);
//! let centre = rng.vector(4);
//! let near = rng.around(&centre, 0.1);
//! assert!(centre.iter().zip(&near).all(|(c, n)| (c - n).abs() <= 0.05));
//! assert_eq!(Rng::new(7).vector(4), centre);
//! ```
#![forbid(unsafe_code)]

/// The files of every collection in the database directory `db` whose names start with
/// `prefix` (`"graph-"`, `"codes-"`, …), for tests that damage or count them.
pub fn collection_files(db: &std::path::Path, prefix: &str) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(db)
        .expect("the database directory")
        .flat_map(|c| std::fs::read_dir(c.expect("an entry").path()).into_iter().flatten())
        .map(|f| f.expect("an entry").path())
        .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with(prefix)))
        .collect();
    files.sort();
    files
}

/// Writes `file` with one byte flipped (xor `mask`) at each of `positions(len)` in
/// turn, calling `check` with the position while that damage is on disk, then writes
/// the file back as it was: for tests that each kind of damage is a typed error.
pub fn with_each_byte_flipped(
    file: &std::path::Path,
    mask: u8,
    positions: impl FnOnce(usize) -> Vec<usize>,
    mut check: impl FnMut(usize),
) {
    let good = std::fs::read(file).expect("the file to damage");
    for at in positions(good.len()) {
        let mut bad = good.clone();
        bad[at] ^= mask;
        std::fs::write(file, &bad).expect("the damaged file");
        check(at);
    }
    std::fs::write(file, &good).expect("the file restored");
}

/// A loopback listener on a free port below the kernel's ephemeral port range
/// (`/proc/sys/net/ipv4/ip_local_port_range`), from which the kernel gives every
/// outgoing connection its local port. A test that stops a server and starts it again
/// at the same port, or hands the port to a child process to bind, cannot lose it to a
/// connection some other test opens meanwhile — as it can with a port from `bind(0)`,
/// which comes from that range. Falls back to `bind(0)` where the range leaves no room.
pub fn loopback_listener() -> std::net::TcpListener {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let below = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u64>().ok())
        .unwrap_or(32_768);
    let span = below.saturating_sub(1_024).clamp(1, 8_192);
    // Spread by process and call, so that test binaries and tests running side by side
    // start their search at different ports.
    let start = u64::from(std::process::id()) * 7_919 + NEXT.fetch_add(1, Ordering::Relaxed) * 104_729;
    for step in 0..span {
        let port = below.saturating_sub(span) + (start + step) % span;
        let Ok(port) = u16::try_from(port) else { continue };
        if let Ok(listener) = std::net::TcpListener::bind(("127.0.0.1", port)) {
            return listener;
        }
    }
    std::net::TcpListener::bind("127.0.0.1:0").expect("a free loopback port")
}

/// A xorshift64 generator. Not for anything but test data.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed` (any value; zero is mapped to a non-zero state).
    pub fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }

    /// The next raw 64-bit value.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Uniform in [−0.5, 0.5).
    pub fn uniform(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / 16_777_216.0 - 0.5
    }

    /// `dim` values uniform in [−0.5, 0.5).
    pub fn vector(&mut self, dim: usize) -> Vec<f32> {
        (0..dim).map(|_| self.uniform()).collect()
    }

    /// `centre` plus uniform noise of width `spread` in each component.
    pub fn around(&mut self, centre: &[f32], spread: f32) -> Vec<f32> {
        centre.iter().map(|c| c + spread * self.uniform()).collect()
    }
}

/// A point stream of any length from a set of real rows: the rows as they are, then a
/// synthetic mix beyond them. Point `i ≥ real.len()` is `normalize(a·x + (1 − a)·y + g)`
/// for two real rows `x`, `y` and a weight `a` uniform in [0.25, 0.75], drawn from a
/// generator seeded by `i`, and `g` Gaussian noise of standard deviation 0.02 per
/// component; the row weighing more is the point's [`Mix::source`], whose payload a
/// bench gives it. Used by the scale and database benches.
#[derive(Debug)]
pub struct Mix {
    /// The real rows, unit length.
    pub real: Vec<Vec<f32>>,
}

impl Mix {
    /// The dimension of every point.
    pub fn dim(&self) -> usize {
        self.real[0].len()
    }

    /// The generator of a mixed point (to draw its noise from), its two rows and `a`.
    fn recipe(&self, i: usize) -> (Rng, usize, usize, f32) {
        let mut rng = Rng::new((i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x5ca1e);
        let n = self.real.len() as u64;
        let x = (rng.next_u64() % n) as usize;
        let y = (rng.next_u64() % n) as usize;
        let a = 0.5 + rng.uniform() * 0.5;
        (rng, x, y, a)
    }

    /// The real row point `i` is, or weighs more in it: `x` when `a ≥ 1/2`, else `y`.
    pub fn source(&self, i: usize) -> usize {
        if i < self.real.len() {
            return i;
        }
        let (_, x, y, a) = self.recipe(i);
        if a >= 0.5 { x } else { y }
    }

    /// Point `i`.
    pub fn point(&self, i: usize) -> Vec<f32> {
        if i < self.real.len() {
            return self.real[i].clone();
        }
        let (mut rng, x, y, a) = self.recipe(i);
        let (x, y) = (&self.real[x], &self.real[y]);
        let mut v: Vec<f32> =
            x.iter().zip(y).map(|(x, y)| a * x + (1.0 - a) * y + 0.02 * gaussian(&mut rng)).collect();
        let norm = v.iter().map(|c| c * c).sum::<f32>().sqrt().max(f32::MIN_POSITIVE);
        v.iter_mut().for_each(|c| *c /= norm);
        v
    }

    /// Points `start..end`, made on every core.
    pub fn batch(&self, start: usize, end: usize) -> Vec<Vec<f32>> {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let per = (end - start).div_ceil(threads).max(1);
        std::thread::scope(|s| {
            let parts: Vec<_> = (start..end)
                .step_by(per)
                .map(|from| {
                    s.spawn(move || (from..(from + per).min(end)).map(|i| self.point(i)).collect::<Vec<_>>())
                })
                .collect();
            parts.into_iter().flat_map(|p| p.join().expect("point maker")).collect()
        })
    }
}

/// A standard normal draw (Box–Muller).
fn gaussian(rng: &mut Rng) -> f32 {
    let u = (rng.uniform() + 0.5).max(1e-7);
    let v = rng.uniform() + 0.5;
    (-2.0 * u.ln()).sqrt() * (std::f32::consts::TAU * v).cos()
}

/// Fields of `/proc/self/status` in KiB (`"VmRSS:"`, `"RssAnon:"`, …), from one read of
/// the file: for benches that report resident memory (Linux; `None` elsewhere).
pub fn status_kb<const N: usize>(keys: [&str; N]) -> [Option<u64>; N] {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    keys.map(|key| status.lines().find(|l| l.starts_with(key))?.split_whitespace().nth(1)?.parse().ok())
}

/// A WordNet/MiniLM set as `cargo xtask data` writes it (`out.npy`, `queries.npy`,
/// `out.jsonl`): base rows, query rows and each base row's payload.
#[derive(Clone, Debug)]
pub struct WordnetSet {
    /// The points' vectors (`out.npy`).
    pub base: Vec<Vec<f32>>,
    /// The held-out queries (`queries.npy`).
    pub queries: Vec<Vec<f32>>,
    /// One payload per point (`out.jsonl`).
    pub payloads: Vec<serde_json::Value>,
}

impl WordnetSet {
    /// Reads the set in `dir`.
    pub fn read(dir: &std::path::Path) -> Result<WordnetSet, String> {
        let base = npy::f32_rows(&dir.join("out.npy"))?;
        let queries = npy::f32_rows(&dir.join("queries.npy"))?;
        let path = dir.join("out.jsonl");
        let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let payloads = text
            .lines()
            .enumerate()
            .map(|(i, l)| serde_json::from_str(l).map_err(|e| format!("{}:{}: {e}", path.display(), i + 1)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(WordnetSet { base, queries, payloads })
    }

    /// Keeps the first `base` rows (and their payloads) and `queries` queries: the
    /// smoke-test size of a bench run under `cargo test`.
    pub fn truncate(&mut self, base: usize, queries: usize) {
        self.base.truncate(base);
        self.payloads.truncate(base);
        self.queries.truncate(queries);
    }
}

/// Little-endian `.npy` files of `f4` or `i4` (what `../shared/data` holds).
pub mod npy {
    use std::path::Path;

    /// Reads a 2-d array: `(rows, cols, raw little-endian bytes)`.
    pub fn read(path: &Path) -> Result<(usize, usize, Vec<u8>), String> {
        let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        if bytes.len() < 12 || &bytes[..6] != b"\x93NUMPY" {
            return Err(format!("{}: not an .npy file", path.display()));
        }
        let (len, start) = match bytes[6] {
            1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
            _ => (u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize, 12),
        };
        let header = bytes.get(start..start + len).ok_or("truncated header")?;
        let header = String::from_utf8_lossy(header);
        let shape = header.split("'shape':").nth(1).and_then(|s| s.split(['(', ')']).nth(1)).unwrap_or("");
        let dims: Vec<usize> = shape.split(',').filter_map(|s| s.trim().parse().ok()).collect();
        let (rows, cols) = match dims[..] {
            [r, c] => (r, c),
            [r] => (r, 1),
            _ => return Err(format!("{}: expected a 2-d array", path.display())),
        };
        Ok((rows, cols, bytes[start + len..].to_vec()))
    }

    /// A 2-d `f4` array as rows.
    pub fn f32_rows(path: &Path) -> Result<Vec<Vec<f32>>, String> {
        let (_, cols, raw) = read(path)?;
        let values: Vec<f32> =
            raw.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
        Ok(values.chunks_exact(cols).map(<[f32]>::to_vec).collect())
    }

    /// A 2-d `i4` array as rows.
    pub fn i32_rows(path: &Path) -> Result<Vec<Vec<i32>>, String> {
        let (_, cols, raw) = read(path)?;
        let values: Vec<i32> =
            raw.chunks_exact(4).map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
        Ok(values.chunks_exact(cols).map(<[i32]>::to_vec).collect())
    }
}

/// The command line of a `harness = false` bench: `cargo bench` passes `--bench`;
/// under `cargo test` it is absent and the bench runs small, as a smoke test.
#[derive(Clone, Debug)]
pub struct BenchArgs {
    args: Vec<String>,
    /// `true` under `cargo bench` (full size), `false` under `cargo test`.
    pub bench: bool,
}

impl BenchArgs {
    /// The process's arguments.
    pub fn from_env() -> BenchArgs {
        let args: Vec<String> = std::env::args().collect();
        let bench = args.iter().any(|a| a == "--bench");
        BenchArgs { args, bench }
    }

    /// Whether the flag `--name` was given.
    pub fn flag(&self, name: &str) -> bool {
        self.args.iter().any(|a| a == name)
    }

    /// The value after `--name`, if given.
    pub fn value(&self, name: &str) -> Option<String> {
        self.args.iter().position(|a| a == name).and_then(|i| self.args.get(i + 1)).cloned()
    }

    /// The WordNet/MiniLM set a database-level bench reads: `--data DIR`, else the 100k
    /// set under `cargo bench` and the 20k one under `cargo test` (both made by
    /// `cargo xtask data` under the workspace's `target/data`).
    pub fn wordnet_dir(&self, workspace: &std::path::Path) -> std::path::PathBuf {
        match self.value("--data") {
            Some(d) => std::path::PathBuf::from(d),
            None if self.bench => workspace.join("target/data/wn100000-q200-k100"),
            None => workspace.join("target/data/wn20000-q1000-k100"),
        }
    }

    /// `--out FILE`, else `target/bench/<default_name>` in the workspace.
    pub fn out_file(&self, workspace: &std::path::Path, default_name: &str) -> std::path::PathBuf {
        self.value("--out")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| workspace.join("target/bench").join(default_name))
    }

    /// `--n N`, else `bench_n` under `cargo bench` and `test_n` under `cargo test`.
    pub fn n(&self, bench_n: usize, test_n: usize) -> usize {
        self.value("--n").and_then(|s| s.parse().ok()).unwrap_or(if self.bench { bench_n } else { test_n })
    }
}
