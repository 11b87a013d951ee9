//! `cargo xtask bench scale [-- --n 100000,1000000] [--threads 1,2] [--configs …] [--datatype float16] [--ef-construct E] [--build-codes int8] [--keep] [--reuse] [--resume] [--peers]`:
//! how build time, memory, disk, reopen time and search cost grow with N. `--datatype`
//! builds a space storing `float16` or `uint8` rows (kept apart, in `target/scale/nN-TYPE`);
//! `--build-codes int8` builds with Braid's default one-byte codes, by which inserts
//! walk the graph (kept apart, in `target/scale/nN-int8build`).
//!
//! Each step is its own process (`crates/braid/benches/scale.rs`, one phase per run) so
//! that peak memory is per step: for each N, a build per thread count (one thread by
//! pinning the process to one CPU with `taskset`), then one measuring run per
//! configuration on the last build, each reopening the database after dropping the page
//! cache where the user may. The runs print `{"scale": …}` lines; this collects them into
//! `target/bench/scale.json` and a Markdown table, `target/bench/scale.md`.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use serde_json::{Value, json};

use crate::root;

const CONFIGS: &str = "float32,int8,binary,binary-disk,binary-disk-graph-disk,binary2-disk,pq-x32";

/// One run of the scale bench binary; returns its `{"scale": …}` report.
fn run_phase(pin_one_cpu: bool, args: &[String]) -> Result<Value, String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = if pin_one_cpu {
        let mut c = Command::new("taskset");
        c.args(["-c", "0"]).arg(&cargo);
        c
    } else {
        Command::new(&cargo)
    };
    cmd.current_dir(root())
        .args(["bench", "--package", "braid", "--bench", "scale", "--", "--bench"])
        .args(args);
    println!("$ {}{}", if pin_one_cpu { "taskset -c 0 " } else { "" }, args.join(" "));
    let mut child =
        cmd.stdout(Stdio::piped()).spawn().map_err(|e| format!("could not start the scale bench: {e}"))?;
    let mut report = None;
    for line in BufReader::new(child.stdout.take().expect("piped")).lines() {
        let line = line.map_err(|e| format!("reading the bench's output: {e}"))?;
        match line.strip_prefix("{\"scale\": ") {
            Some(_) => report = serde_json::from_str::<Value>(&line).ok().map(|v| v["scale"].clone()),
            None => println!("{line}"),
        }
    }
    let status = child.wait().map_err(|e| e.to_string())?;
    if !status.success() {
        return Err(format!("the scale bench failed ({status}) with {}", args.join(" ")));
    }
    report.ok_or_else(|| "the scale bench printed no report".to_string())
}

fn list(args: &[String], flag: &str, default: &str) -> Vec<String> {
    let value =
        args.iter().position(|a| a == flag).and_then(|i| args.get(i + 1)).map_or(default, String::as_str);
    value.split(',').filter(|s| !s.is_empty()).map(str::to_string).collect()
}

fn mib(kb: &Value) -> String {
    kb.as_f64().map_or("–".into(), |k| format!("{:.0}", k / 1024.0))
}

/// A phase's peak resident memory above what the process held before the database
/// opened (the bench's own data), in MiB.
fn peak_above_baseline(report: &Value) -> String {
    match (report["memory"]["peak_rss_kb"].as_f64(), report["baseline_rss_kb"].as_f64()) {
        (Some(peak), Some(base)) => format!("{:.0}", (peak - base) / 1024.0),
        _ => "–".into(),
    }
}

fn at(row: &Value) -> String {
    if row.is_null() {
        return "not reached".into();
    }
    let o = row["oversampling"].as_f64().map_or(String::new(), |o| format!(" (oversampling {o})"));
    format!(
        "ef {}{o} · {:.0} QPS · p99 {:.0} µs",
        row["ef"],
        row["qps"].as_f64().unwrap_or(0.0),
        row["p99_us"].as_f64().unwrap_or(0.0)
    )
}

/// The peers the bench runs, one script run each (`scale_peers.py --peers NAME`).
const PEERS: &str = "hnswlib,faiss-hnsw,faiss-ivfpq,qdrant-edge";

/// Runs `benches/peers/scale_peers.py` on the build kept in `dir` (its vector file is
/// the peers' input); returns its report. With `keep` (a kept build) the peers' graphs
/// are kept beside it too and read back by the next run (`--keep-index`).
fn run_peers(
    dir: &std::path::Path,
    data: &std::path::Path,
    threads: &[String],
    peer: &str,
    keep: bool,
) -> Result<Value, String> {
    let packages: Vec<&str> = crate::bench::HNSW_PEERS
        .iter()
        .copied()
        .filter(|p| !p.starts_with("usearch"))
        .chain(["qdrant-edge-py==0.9.0"])
        .collect();
    let python = crate::bench::venv_with(&packages)?;
    let out = dir.join("peers.json");
    crate::exec(
        Command::new(python)
            .arg(root().join("benches/peers/scale_peers.py"))
            .arg("--dir")
            .arg(dir)
            .arg("--queries")
            .arg(data.join("queries.npy"))
            .args(["--threads", &threads.join(","), "--peers", peer, "--out"])
            .arg(&out)
            .args(keep.then_some("--keep-index")),
    )?;
    let text = std::fs::read_to_string(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", out.display()))
}

/// The QPS a `sweep` (rows of `recall` and `qps`, by growing beam) would answer at
/// exactly `target` recall: log QPS interpolated linearly in recall between the last
/// row short of it and the first reaching it. The first reaching row's own QPS when the
/// sweep starts above `target`; `None` when it never reaches it. Two systems whose grids
/// cross `target` at different steps are compared at the same recall this way, not at
/// whichever step each happened to reach it.
fn qps_at_recall(sweep: &Value, target: f64) -> Option<f64> {
    let rows: Vec<(f64, f64)> =
        sweep.as_array()?.iter().filter_map(|r| Some((r["recall"].as_f64()?, r["qps"].as_f64()?))).collect();
    let i = rows.iter().position(|&(recall, _)| recall >= target)?;
    let (r1, q1) = rows[i];
    let Some(&(r0, q0)) = i.checked_sub(1).and_then(|j| rows.get(j)) else { return Some(q1) };
    let f = (target - r0) / (r1 - r0);
    Some((q0.ln() + f * (q1.ln() - q0.ln())).exp())
}

/// A range of ratios as the tables print it: `lo–hi`, one value, or `–`.
fn ratio_range(mut r: Vec<f64>) -> String {
    r.sort_by(f64::total_cmp);
    match r.as_slice() {
        [] => "–".to_string(),
        [one] => format!("{one:.2}"),
        [lo, .., hi] => format!("{lo:.2}–{hi:.2}"),
    }
}

/// The peers' table, each peer's QPS against Braid's float32 measured just before the
/// peer's run and just after it (the machine's speed drifts: the two bound the ratio):
/// at the first sweep step reaching each recall, and at exactly 0.95 (`qps_at_recall`).
fn peers_table(peers: &[Value], builds: &[Value]) -> String {
    let qps = |row: &Value| row["qps"].as_f64();
    let mut out = String::from(
        "\n| N | system | build s (threads) | memory MiB | recall ≥ 0.95 | recall ≥ 0.99 | Braid float32 QPS ÷ this at 0.95 · at 0.99 (range over Braid measured before and after the peer) | the same at exactly 0.95, interpolated | Braid build ÷ this |\n|---|---|---|---|---|---|---|---|---|\n",
    );
    for report in peers {
        let n = &report["n"];
        let bracket = [&report["braid_before"], &report["braid_after"]];
        for p in report["peers"].as_array().into_iter().flatten() {
            let builds_of = p["builds"].as_object().cloned().unwrap_or_default();
            let mut build = builds_of
                .iter()
                .map(|(t, b)| format!("{:.0} ({t})", b["build_s"].as_f64().unwrap_or(0.0)))
                .collect::<Vec<_>>()
                .join(", ");
            if p["kept"] == true {
                // Read back from an earlier run's build (`--keep-index`), not built now.
                build += ", kept";
            }
            let memory = builds_of
                .values()
                .next_back()
                .and_then(|b| b["rss_anon_mib"].as_f64())
                .map_or("–".into(), |m| format!("{m:.0}"));
            let ratio = |target: &str| {
                ratio_range(
                    bracket.iter().filter_map(|b| Some(qps(&b[target])? / qps(&p[target])?)).collect(),
                )
            };
            let interpolated = ratio_range(
                bracket
                    .iter()
                    .filter_map(|b| {
                        Some(qps_at_recall(&b["sweep"], 0.95)? / qps_at_recall(&p["sweep"], 0.95)?)
                    })
                    .collect(),
            );
            // Braid's build over the peer's, thread count for thread count.
            let build_ratio = builds_of
                .iter()
                .filter_map(|(t, pb)| {
                    let ours =
                        builds.iter().find(|b| b["n"] == *n && b["threads"].as_u64() == t.parse().ok())?;
                    Some(format!("{:.2} ({t})", ours["build_s"].as_f64()? / pb["build_s"].as_f64()?))
                })
                .collect::<Vec<_>>()
                .join(", ");
            let knob = |row: &Value| {
                if row.is_null() {
                    return "not reached".to_string();
                }
                let (name, value) =
                    if row["nprobe"].is_null() { ("ef", &row["ef"]) } else { ("nprobe", &row["nprobe"]) };
                format!(
                    "{name} {value} · {:.0} QPS · p99 {:.0} µs",
                    qps(row).unwrap_or(0.0),
                    row["p99_us"].as_f64().unwrap_or(0.0)
                )
            };
            out += &format!(
                "| {n} | {} | {build} | {memory} | {} | {} | {} · {} | {interpolated} | {} |\n",
                p["peer"].as_str().unwrap_or("?"),
                knob(&p["at_recall_95"]),
                knob(&p["at_recall_99"]),
                ratio("at_recall_95"),
                ratio("at_recall_99"),
                if build_ratio.is_empty() { "–".into() } else { build_ratio },
            );
        }
    }
    out
}

/// The Markdown table of one run of the whole bench.
fn table(builds: &[Value], measures: &[Value]) -> String {
    let mut out = String::from(
        "| N | threads | ef_construct | codes | build s | points/s | peak RSS MiB (above the bench's data) | disk MiB |\n|---|---|---|---|---|---|---|---|\n",
    );
    for b in builds {
        let n = b["n"].as_f64().unwrap_or(0.0);
        let s = b["build_s"].as_f64().unwrap_or(0.0);
        out += &format!(
            "| {} | {} | {} | {} | {:.1} | {:.0} | {} | {:.0} |\n",
            b["n"],
            b["threads"],
            b["ef_construct"],
            b["build_codes"].as_str().unwrap_or("none"),
            s,
            n / s.max(1e-9),
            peak_above_baseline(b),
            b["disk_bytes"].as_f64().unwrap_or(0.0) / 1048576.0
        );
    }
    out += "\n| N | config | reopen s | reopen s, rows checked first | first query ms | rows verified s | checkpoint s (peak MiB above its start) | RSS after reopen MiB (anon + file) | after the sweep | peak RSS MiB (above the bench's data) | recall ≥ 0.95 | recall ≥ 0.99 |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n";
    for m in measures {
        let open = &m["memory_after_open"];
        let checkpoint = &m["checkpoint_rss"];
        let above =
            checkpoint["peak_kb"].as_f64().unwrap_or(0.0) - checkpoint["before_kb"].as_f64().unwrap_or(0.0);
        out += &format!(
            "| {} | {} | {:.2}{} | {:.2} | {:.1} | {:.2} | {:.2} ({:.0}) | {} + {} | {} + {} | {} | {} | {} |\n",
            m["n"],
            m["config"].as_str().unwrap_or("?"),
            m["reopen_s"].as_f64().unwrap_or(0.0),
            if m["page_cache_dropped"] == true { " (cold)" } else { "" },
            m["reopen_checked_s"].as_f64().unwrap_or(0.0),
            m["first_query_ms"].as_f64().unwrap_or(0.0),
            m["verified_s"].as_f64().unwrap_or(0.0),
            m["checkpoint_s"].as_f64().unwrap_or(0.0),
            above / 1024.0,
            mib(&open["rss_anon_kb"]),
            mib(&open["rss_file_kb"]),
            mib(&m["memory"]["rss_anon_kb"]),
            mib(&m["memory"]["rss_file_kb"]),
            peak_above_baseline(m),
            at(&m["at_recall_95"]),
            at(&m["at_recall_99"]),
        );
    }
    out
}

pub(crate) fn run(args: &[String]) -> Result<(), String> {
    let ns = list(args, "--n", "100000");
    let threads = list(args, "--threads", "1,2");
    let configs = list(args, "--configs", CONFIGS);
    let datatype = list(args, "--datatype", "float32").pop().unwrap_or_default();
    if !["float32", "float16", "uint8"].contains(&datatype.as_str()) {
        return Err(format!("--datatype takes float32, float16 or uint8, not `{datatype}`"));
    }
    // The graph's construction beam: 200 (as the peers are built) unless given; a build
    // with another is kept in its own directory.
    let ef_construct = list(args, "--ef-construct", "200").pop().unwrap_or_default();
    if !ef_construct.parse::<usize>().is_ok_and(|e| e > 0) {
        return Err(format!("--ef-construct takes a positive number, not `{ef_construct}`"));
    }
    // The codes the build keeps: none (the bench's float32 baseline) unless given.
    let build_codes = list(args, "--build-codes", "none").pop().unwrap_or_default();
    if !["none", "int8"].contains(&build_codes.as_str()) {
        return Err(format!("--build-codes takes none or int8, not `{build_codes}`"));
    }
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    // Measure a build an earlier `--keep` run left, instead of building again (and
    // keep it: a measured build is measured again, one configuration per run).
    let reuse = args.iter().any(|a| a == "--reuse");
    let keep = ["--keep", "--resume", "--reuse"].iter().any(|flag| args.iter().any(|a| a == flag));
    // Continue a kept build (stopped part way, or of a smaller N copied into this N's
    // directory) from the points its database holds, on all cores; it is kept.
    let resume = args.iter().any(|a| a == "--resume");
    if resume && threads.iter().any(|t| t != &cpus.to_string()) {
        return Err(format!(
            "--resume continues a build on this machine's {cpus} threads: pass --threads {cpus}"
        ));
    }
    // hnswlib, FAISS and embedded Qdrant on the same rows, after Braid's runs of each
    // N: `--peers` runs them all, `--peers hnswlib,qdrant-edge` those named.
    let peer_list = args.iter().position(|a| a == "--peers").map(|i| match args.get(i + 1) {
        Some(list) if !list.starts_with("--") => list.clone(),
        _ => PEERS.to_string(),
    });
    if let Some(unknown) =
        peer_list.iter().flat_map(|l| l.split(',')).find(|p| !PEERS.split(',').any(|known| known == *p))
    {
        return Err(format!("--peers takes a list of {PEERS}, not `{unknown}`"));
    }
    let mut peers = Vec::new();
    let data = match args.iter().position(|a| a == "--data").and_then(|i| args.get(i + 1)) {
        // Absolute: the bench runs in its crate's directory.
        Some(d) => std::path::absolute(d).map_err(|e| format!("--data {d}: {e}"))?,
        None => crate::data::ensure(crate::data::Spec { n: 100_000, queries: 200, k: 100 })?,
    };
    let (mut builds, mut measures) = (Vec::new(), Vec::new());
    for n in &ns {
        n.parse::<usize>().map_err(|_| format!("--n takes numbers, got `{n}`"))?;
        let mut name = format!("n{n}");
        if datatype != "float32" {
            name += &format!("-{datatype}");
        }
        if ef_construct != "200" {
            name += &format!("-ef{ef_construct}");
        }
        if build_codes != "none" {
            name += &format!("-{build_codes}build");
        }
        let dir = root().join("target/scale").join(name);
        let kept = reuse && dir.join("truth.json").exists();
        if kept {
            println!("measuring the build kept in {}", dir.display());
        }
        for t in threads.iter().filter(|_| !kept) {
            let t: usize = t.parse().map_err(|_| format!("--threads takes 1 or 2, got `{t}`"))?;
            if t != 1 && t != cpus {
                return Err(format!("--threads takes 1 or this machine's {cpus}, got {t}"));
            }
            if !resume {
                let _ = std::fs::remove_dir_all(&dir);
            }
            let phase = [
                "--phase",
                "build",
                "--datatype",
                &datatype,
                "--ef-construct",
                &ef_construct,
                "--build-codes",
                &build_codes,
                "--n",
                n,
                "--data",
            ]
            .map(str::to_string);
            let mut a = phase.to_vec();
            if resume {
                a.insert(0, "--resume".into());
            }
            a.extend([data.display().to_string(), "--dir".into(), dir.display().to_string()]);
            builds.push(run_phase(t == 1 && cpus > 1, &a)?);
        }
        let measure = |config: &str| {
            let a: Vec<String> = ["--phase", "measure", "--cold", "--config", config, "--data"]
                .iter()
                .map(|s| s.to_string())
                .chain([data.display().to_string(), "--dir".into(), dir.display().to_string()])
                .collect();
            run_phase(false, &a)
        };
        let start = measures.len();
        for config in &configs {
            measures.push(measure(config)?);
        }
        if let Some(list) = &peer_list {
            // Braid's float32 again after each peer: each peer's ratio is bounded by
            // the Braid measures on either side of it.
            let mut before = measures[start..].iter().find(|m| m["config"] == "float32").cloned();
            for peer in list.split(',') {
                let before_this = match before.take() {
                    Some(m) => m,
                    None => measure("float32")?,
                };
                let mut report = run_peers(&dir, &data, &threads, peer, keep)?;
                let after = measure("float32")?;
                let figures = |m: &Value| json!({"at_recall_95": m["at_recall_95"], "at_recall_99": m["at_recall_99"], "sweep": m["sweep"]});
                report["braid_before"] = figures(&before_this);
                report["braid_after"] = figures(&after);
                peers.push(report);
                before = Some(after);
            }
        }
        if !keep {
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
    let out_dir = root().join("target/bench");
    std::fs::create_dir_all(&out_dir).map_err(|e| e.to_string())?;
    let report = json!({"data": data, "builds": builds, "measures": measures, "peers": peers});
    std::fs::write(
        out_dir.join("scale.json"),
        serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?,
    )
    .map_err(|e| e.to_string())?;
    let mut md = table(&builds, &measures);
    if !peers.is_empty() {
        md += &peers_table(&peers, &builds);
    }
    std::fs::write(out_dir.join("scale.md"), &md).map_err(|e| e.to_string())?;
    println!("{md}\nresults: {}", out_dir.join("scale.md").display());
    // The plots need matplotlib (PyPI); a machine without it still has the tables.
    let plotted = crate::bench::venv_with(&["matplotlib"]).and_then(|python| {
        crate::exec(
            std::process::Command::new(python)
                .arg(root().join("benches/plots/scale_plot.py"))
                .arg("--report")
                .arg(out_dir.join("scale.json"))
                .arg("--out-dir")
                .arg(&out_dir),
        )
    });
    match plotted {
        Ok(()) => println!("plots: {}", out_dir.join("scale-recall-qps.png").display()),
        Err(e) => println!("no plots: {e}"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qps_at_a_recall_is_interpolated_between_the_sweep_steps_around_it() {
        let sweep = json!([
            {"ef": 16, "recall": 0.90, "qps": 4000.0},
            {"ef": 24, "recall": 0.94, "qps": 3000.0},
            {"ef": 32, "recall": 0.96, "qps": 2000.0}
        ]);
        let near = |a: Option<f64>, b: f64| a.is_some_and(|a| (a - b).abs() < 1e-6);
        // Halfway in recall between two steps: halfway in log QPS, their geometric mean.
        assert!(near(qps_at_recall(&sweep, 0.95), (3000.0f64 * 2000.0).sqrt()));
        // A step exactly at the target answers with its own QPS.
        assert!(near(qps_at_recall(&sweep, 0.94), 3000.0));
        // Below the first step there is nothing to interpolate from: the first step.
        assert!(near(qps_at_recall(&sweep, 0.85), 4000.0));
        assert_eq!(qps_at_recall(&sweep, 0.99), None);
        assert_eq!(qps_at_recall(&Value::Null, 0.95), None);
    }
}
