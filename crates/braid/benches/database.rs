//! `cargo xtask bench database` (Braid's half): the WordNet/MiniLM set through the
//! facade — ingest, default search, and keyword-filtered search at ~1 % and ~10 %
//! selectivity — with recall@10 against filtered brute force computed here. The xtask
//! then runs embedded Qdrant (`qdrant-edge-py`) and Chroma on the same files.
//!
//! Arguments after `--`: `--data DIR` (default `target/data/wn100000-q200-k100`, made by
//! `cargo xtask data --n 100000 --queries 200`), `--n N` (more points than the set has:
//! the scale bench's synthetic mix beyond its rows, `braid_testkit::Mix`, each mixed
//! point with the payload of the row it is mostly made of), `--out FILE`, `--keep DIR` (build the collection
//! durably in DIR on the first run and reopen it on later ones, to profile searches
//! without re-ingesting; ingest then reports the reopen), `--only TEXT` (run the cases
//! whose name contains TEXT), `--quantization int8|binary|product-x16|none` (the space's codes;
//! default int8, Braid's default), `--on-disk` (the space's rows read where touched,
//! `VectorParams::on_disk`; with `--keep`, the reopened run's resident memory, printed
//! at the end from `/proc/self/status`, shows what it saves), `--payload-m N` (links per
//! point among those sharing a `category` or `pos` value; default: unset, which takes
//! `m` as in Qdrant; 0 builds none), `--full-payloads` (every field of the set's
//! payloads, the gloss text among them, instead of `category` and `pos` alone),
//! `--on-disk-payload` (payloads in a payload file, `on_disk_payload`; needs `--keep`),
//! `--recall R` (instead of the cases below: unfiltered and ~10 % filtered searches, each
//! at the smallest `ef` reaching recall@10 R, with the planner's path and each filter's
//! cost as a multiple of an unfiltered search's).
//! Beside the searches it times a search returning payloads and a count filtered by a
//! key without an index (which reads every payload). Under `cargo test` it runs on the
//! 20k set's first 2,000 rows when `cargo xtask data` has made it, else it prints a
//! note and stops.

use std::collections::HashSet;
use std::hint::black_box;
use std::path::PathBuf;
use std::time::Instant;

use braid::{
    CollectionConfig, Database, Distance, Filter, IndexKind, PointStruct, SearchParams, SearchRequest,
    VectorParams, field,
};
use braid_testkit::WordnetSet;
use serde_json::{Value, json};

/// Each query's exact top 10 ids among the points `keep` accepts, on every core.
fn truth(
    base: &[Vec<f32>],
    queries: &[Vec<f32>],
    keep: &(dyn Fn(usize) -> bool + Sync),
) -> Vec<HashSet<u64>> {
    let kept: Vec<usize> = (0..base.len()).filter(|&i| keep(i)).collect();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let per = queries.len().div_ceil(threads).max(1);
    std::thread::scope(|s| {
        let parts: Vec<_> = queries
            .chunks(per)
            .map(|qs| {
                let kept = &kept;
                s.spawn(move || {
                    qs.iter()
                        .map(|q| {
                            let mut all: Vec<(f32, u64)> = kept
                                .iter()
                                .map(|&i| (braid::distance::simd::dot(q, &base[i]), i as u64))
                                .collect();
                            all.sort_unstable_by(|a, b| b.0.total_cmp(&a.0));
                            all.into_iter().take(10).map(|x| x.1).collect::<HashSet<u64>>()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        parts.into_iter().flat_map(|p| p.join().expect("truth")).collect()
    })
}

fn main() {
    let args = braid_testkit::BenchArgs::from_env();
    let bench = args.bench;
    let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dir = args.wordnet_dir(&workspace);
    let out = args.out_file(&workspace, "database-braid.json");
    let Ok(mut set) = WordnetSet::read(&dir) else {
        println!("no data at {}: nothing to measure", dir.display());
        return;
    };
    if !bench {
        set.truncate(2_000, 10);
    }
    let WordnetSet { mut base, queries, payloads } = set;
    let mut payloads: Vec<Value> = match args.flag("--full-payloads") {
        true => payloads,
        false => payloads.iter().map(|v| json!({"category": v["category"], "pos": v["pos"]})).collect(),
    };
    // `--n N` beyond the real rows: the scale bench's synthetic mix, each point with the
    // payload of the row it is mostly made of.
    let more = args.value("--n").map(|v| v.parse::<usize>().expect("--n N"));
    if let Some(total) = more.filter(|&t| t > base.len()) {
        let real = base.len();
        let mix = braid_testkit::Mix { real: base };
        let extra = mix.batch(real, total);
        let more: Vec<Value> = (real..total).map(|i| payloads[mix.source(i)].clone()).collect();
        payloads.extend(more);
        base = mix.real;
        base.extend(extra);
    }
    let n = base.len();
    println!("data: {} ({n} points, {} queries, dim {})", dir.display(), queries.len(), base[0].len());

    let keep = args.value("--keep").map(PathBuf::from);
    let reuse = keep.as_ref().is_some_and(|d| d.join("MANIFEST").exists());
    // Ingest from here, or the reopen of a kept database.
    let t = Instant::now();
    let db = match &keep {
        Some(d) => Database::open(d).expect("open the kept database"),
        None => Database::in_memory(),
    };
    let quantization = match args.value("--quantization").as_deref() {
        None | Some("int8") => braid::Quantization::Int8,
        Some("binary") => braid::Quantization::Binary,
        Some("binary2") => braid::Quantization::BinaryTwoBits,
        Some("none") => braid::Quantization::None,
        Some(other) => match other.strip_prefix("product-").and_then(braid::distance::Compression::from_name)
        {
            Some(ratio) => braid::Quantization::Product(ratio),
            None => {
                panic!(
                    "--quantization takes int8, binary, binary2, product-x4 … product-x64 or none, not {other}"
                )
            }
        },
    };
    let on_disk = args.flag("--on-disk");
    let payload_m: Option<usize> = args.value("--payload-m").map(|v| v.parse().expect("--payload-m N"));
    let on_disk_payload = args.flag("--on-disk-payload");
    println!("quantization: {quantization:?}, rows on disk: {on_disk}, payloads on disk: {on_disk_payload}");
    let c = if reuse {
        db.collection("wordnet").expect("the kept database has the collection")
    } else {
        let c = db
            .create_collection(
                "wordnet",
                CollectionConfig::new()
                    .vector(
                        "text",
                        VectorParams::new(base[0].len(), Distance::Cosine)
                            .hnsw_params(braid::HnswParams {
                                m: 16,
                                ef_construct: 200,
                                payload_m,
                                ..Default::default()
                            })
                            .quantization(quantization)
                            .on_disk(on_disk),
                    )
                    .on_disk_payload(on_disk_payload),
            )
            .expect("valid config");
        c.create_payload_index("category", IndexKind::Keyword).expect("fresh");
        c.create_payload_index("pos", IndexKind::Keyword).expect("fresh");
        for start in (0..n).step_by(5_000) {
            let end = (start + 5_000).min(n);
            c.upsert(
                (start..end)
                    .map(|i| {
                        PointStruct::new(i as u64)
                            .vector("text", base[i].clone())
                            .payload(payloads[i].clone())
                    })
                    .collect(),
            )
            .expect("valid points");
        }
        if keep.is_some() {
            c.flush().expect("flush the kept database");
        }
        c
    };
    let ingest = t.elapsed().as_secs_f64();
    if reuse {
        println!("reopened the kept database in {ingest:.2} s");
    } else {
        println!("ingest with graph built on insert: {ingest:.1} s");
    }
    let only = args.value("--only");
    if let Some(target) = args.value("--recall") {
        let target: f64 = target.parse().expect("--recall R, a recall@10 between 0 and 1");
        let filters = [("pos", "verb"), ("category", "noun.artifact")];
        let report = recall_matched(&c, &base, &queries, &payloads, &filters, target, bench);
        if bench {
            write_report(&out, &json!({"data_dir": dir, "n": n, "recall": target, "rows": report}));
        }
        return;
    }

    // (name, keyword filter (key, value), hnsw_ef, with payloads)
    type Case<'a> = (&'a str, Option<(&'a str, &'a str)>, Option<usize>, bool);
    let cases: Vec<Case> = vec![
        ("default (ef = ef_construct = 200)", None, None, false),
        ("ef = 64", None, Some(64), false),
        ("ef = 64, returning payloads", None, Some(64), true),
        ("ef = 96", None, Some(96), false),
        ("ef = 128", None, Some(128), false),
        ("filter ~1 %: category = verb.social", Some(("category", "verb.social")), None, false),
        ("filter ~10 %: pos = verb", Some(("pos", "verb")), None, false),
    ];
    let mut rows = Vec::new();
    for (name, filter, ef, with_payload) in cases {
        if only.as_ref().is_some_and(|o| !name.contains(o.as_str())) {
            continue;
        }
        let keep = |i: usize| filter.is_none_or(|(k, v)| payloads[i][k] == v);
        let selectivity = (0..n).filter(|&i| keep(i)).count() as f64 / n as f64;
        let truth = truth(&base, &queries, &keep);
        let request = |q: &Vec<f32>| {
            let mut r = SearchRequest::new("text", q.clone()).limit(10);
            if let Some((k, v)) = filter {
                r = r.filter(Filter::must([field(k).eq(v)]));
            }
            if let Some(ef) = ef {
                r = r.params(SearchParams::ef(ef));
            }
            r.with_payload(with_payload)
        };
        let found: Vec<Vec<u64>> = queries
            .iter()
            .map(|q| {
                c.search(&request(q))
                    .expect("valid search")
                    .iter()
                    .map(|h| match h.id {
                        braid::PointId::Num(id) => id,
                        braid::PointId::Uuid(_) => u64::MAX,
                    })
                    .collect()
            })
            .collect();
        let recall =
            found.iter().zip(&truth).map(|(f, t)| f.iter().filter(|x| t.contains(x)).count()).sum::<usize>()
                as f64
                / (10 * queries.len()) as f64;
        let t = Instant::now();
        let mut done = 0;
        while t.elapsed().as_secs_f64() < if bench { 2.0 } else { 0.0 } || done == 0 {
            for q in &queries {
                black_box(c.search(&request(q)).expect("valid search"));
            }
            done += queries.len();
        }
        let qps = done as f64 / t.elapsed().as_secs_f64();
        println!("{name}: selectivity {:.2} %, recall@10 {recall:.4}, {qps:.0} QPS", 100.0 * selectivity);
        rows.push(json!({"case": name, "selectivity": selectivity, "recall": recall, "qps": qps}));
    }
    // A count filtered by a key no index covers (the full payloads' `n_examples`):
    // every live point's payload is read.
    if only.is_none() && args.flag("--full-payloads") {
        let unindexed = Filter::from_json(&json!({"must": [{"key": "n_examples", "match": {"value": 0}}]}))
            .expect("a valid filter");
        let _ = c.count(None);
        let t = Instant::now();
        let mut counted = 0;
        let mut rounds = 0;
        while t.elapsed().as_secs_f64() < if bench { 2.0 } else { 0.0 } || rounds == 0 {
            counted = black_box(c.count(Some(&unindexed)).expect("valid count"));
            rounds += 1;
        }
        let ms = 1e3 * t.elapsed().as_secs_f64() / rounds as f64;
        println!("count by an unindexed key (n_examples = 0): {counted} in {ms:.1} ms");
        rows.push(json!({"case": "count by an unindexed condition", "count": counted, "ms": ms}));
    }
    // Resident memory now (Linux): anonymous (heap: codes, graph, payloads, rows not yet
    // checkpointed) and file-backed (mapped rows a search touched or the kernel read ahead).
    let [rss_anon, rss_file] = braid_testkit::status_kb(["RssAnon:", "RssFile:"]);
    if let (Some(a), Some(f)) = (rss_anon, rss_file) {
        println!(
            "resident: {:.1} MiB anonymous, {:.1} MiB file-backed",
            a as f64 / 1024.0,
            f as f64 / 1024.0
        );
    }
    if bench {
        let report = json!({"data_dir": dir, "n": n, "queries": queries.len(), "quantization": format!("{quantization:?}"),
                            "on_disk": on_disk, "ingest_s": ingest, "rows": rows,
                            "rss_anon_kb": rss_anon, "rss_file_kb": rss_file});
        write_report(&out, &report);
    }
}

fn write_report(out: &std::path::Path, report: &Value) {
    if let Some(parent) = out.parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    std::fs::write(out, serde_json::to_string_pretty(report).expect("json")).expect("write report");
    println!("wrote {}", out.display());
}

/// The `ef` values a recall-matched measure tries, smallest first.
const EF_GRID: [usize; 21] =
    [16, 24, 32, 40, 48, 56, 64, 72, 80, 88, 96, 104, 112, 128, 160, 200, 256, 320, 512, 768, 1024];

/// `--recall R`: each search at the smallest `ef` of [`EF_GRID`] whose recall@10 reaches
/// `target` — unfiltered, then each keyword filter, then unfiltered again — with the
/// planner's path for the filtered ones (`Collection::explain`) and each filtered QPS
/// as a ratio of time per search to the mean of the two unfiltered measures around it.
fn recall_matched(
    c: &braid::Collection,
    base: &[Vec<f32>],
    queries: &[Vec<f32>],
    payloads: &[Value],
    filters: &[(&str, &str)],
    target: f64,
    bench: bool,
) -> Vec<Value> {
    let request = |q: &Vec<f32>, filter: Option<(&str, &str)>, ef: usize| {
        let r = SearchRequest::new("text", q.clone()).limit(10).params(SearchParams::ef(ef));
        match filter {
            Some((k, v)) => r.filter(Filter::must([field(k).eq(v)])),
            None => r,
        }
    };
    // The smallest ef reaching the target (or the grid's last) and its recall.
    let matched = |filter: Option<(&str, &str)>| -> (usize, f64) {
        let keep = |i: usize| filter.is_none_or(|(k, v)| payloads[i][k] == v);
        let truth = truth(base, queries, &keep);
        let recall_at = |ef: usize| {
            let found: usize = queries
                .iter()
                .zip(&truth)
                .map(|(q, t)| {
                    let hits = c.search(&request(q, filter, ef)).expect("valid search");
                    hits.iter().filter(|h| matches!(h.id, braid::PointId::Num(id) if t.contains(&id))).count()
                })
                .sum();
            found as f64 / (10 * queries.len()) as f64
        };
        let mut last = (0, 0.0);
        for ef in EF_GRID {
            last = (ef, recall_at(ef));
            if last.1 >= target {
                break;
            }
        }
        last
    };
    let qps_at = |filter: Option<(&str, &str)>, ef: usize| {
        let t = Instant::now();
        let mut done = 0;
        while t.elapsed().as_secs_f64() < if bench { 2.0 } else { 0.0 } || done == 0 {
            for q in queries {
                black_box(c.search(&request(q, filter, ef)).expect("valid search"));
            }
            done += queries.len();
        }
        done as f64 / t.elapsed().as_secs_f64()
    };
    let (ef0, recall0) = matched(None);
    let before = qps_at(None, ef0);
    println!("unfiltered: ef {ef0}, recall@10 {recall0:.4}, {before:.0} QPS");
    let mut filtered = Vec::new();
    for &(key, value) in filters {
        let (ef, recall) = matched(Some((key, value)));
        let qps = qps_at(Some((key, value)), ef);
        let plan = c
            .explain(&request(&queries[0], Some((key, value)), ef).to_query().request)
            .expect("a valid query");
        let path = plan.lines.last().and_then(|l| l.rsplit("; ").next()).unwrap_or_default().to_string();
        filtered.push((key, value, ef, recall, qps, path));
    }
    let after = qps_at(None, ef0);
    println!("unfiltered again: {after:.0} QPS");
    let unfiltered = (before + after) / 2.0;
    let mut rows = vec![json!({"case": "unfiltered", "ef": ef0, "recall": recall0, "qps": [before, after]})];
    for (key, value, ef, recall, qps, path) in filtered {
        let ratio = unfiltered / qps;
        println!(
            "{key} = {value}: ef {ef}, recall@10 {recall:.4}, {qps:.0} QPS, {ratio:.2}x an unfiltered search; {path}"
        );
        rows.push(json!({"case": format!("{key} = {value}"), "ef": ef, "recall": recall, "qps": qps,
                         "cost_vs_unfiltered": ratio, "plan": path}));
    }
    rows
}
