//! `cargo bench -p braid-hnsw --bench filtered -- --bench --data DIR`: filtered graph
//! walks on the WordNet/MiniLM set. For payload filters from ~1 % to ~70 % of the points,
//! the plain walk (every neighbour scored) and the two-hop walk (matching nodes only,
//! `FilteredWalk::TwoHop`) and, for a match of one value, the walk along payload links
//! (link groups over `category` and `pos`, `payload_m` 16) against the exact scan of
//! the matches: recall@10 against the filtered brute force, and latency as a ratio to
//! the unfiltered walk at the same `ef` measured in the same run, over floats and over
//! int8 codes.
//!
//! `--data DIR` defaults to the 20k set `cargo xtask data` makes
//! (`target/data/wn20000-q1000-k100`); `--ef N` (default 64); `--only TEXT` (the filters whose name holds TEXT); `--out FILE`;
//! `--recall R` (also each filter's cheapest walk reaching recall R against the
//! unfiltered walk's cheapest); `--graph FILE` (the built and linked graph read from
//! FILE, or written there after the build; one that does not fit the data — metric,
//! dimension, point count, link groups — is refused); `--build-codes` (the graph and its links built
//! walking by the int8 codes, as a database space with codes builds them). Under
//! `cargo test` (no `--bench`) it runs once on the set's first 2,000 rows when the set is
//! there, else it prints a note and stops.

use std::hint::black_box;
use std::path::PathBuf;
use std::time::Instant;

use braid_core::{Cardinality, DenseVectors, Metric, OffsetFilter, PointOffset};
use braid_distance::Codes;
use braid_hnsw::{FilteredWalk, Hnsw, HnswConfig, Rescore};
use braid_testkit::WordnetSet;
use serde_json::json;

/// A payload filter over the set: its name and which rows pass.
struct Case {
    name: &'static str,
    pass: Vec<bool>,
    /// The link group of its field, for a match of one value.
    group: Option<u64>,
}

/// A filter that lists its matches, like a payload index's bitmap, naming a link group.
struct Listed<'a> {
    pass: &'a [bool],
    matching: Vec<u32>,
    group: Option<u64>,
}

impl OffsetFilter for Listed<'_> {
    fn matches(&self, offset: PointOffset) -> bool {
        self.pass.get(offset.index()).copied().unwrap_or(false)
    }
    fn estimate(&self) -> Cardinality {
        Cardinality::exact(self.matching.len())
    }
    fn for_each_match(&self, f: &mut dyn FnMut(PointOffset)) -> bool {
        self.matching.iter().for_each(|&o| f(PointOffset(o)));
        true
    }
    fn link_group(&self) -> Option<u64> {
        self.group
    }
}

/// Link groups over each of `fields` (group key = position + 1): every point linked
/// among the points sharing its value, on two threads, found by `codes` if given.
fn link(
    graph: &mut Hnsw,
    base: &DenseVectors,
    codes: Option<&Codes>,
    payloads: &[serde_json::Value],
    fields: &[&str],
) {
    for (i, field) in fields.iter().enumerate() {
        let key = i as u64 + 1;
        graph.add_link_group(key, 16).expect("group");
        let mut by_value: std::collections::BTreeMap<String, Vec<u32>> = Default::default();
        for (o, p) in payloads.iter().enumerate() {
            by_value.entry(p[field].to_string()).or_default().push(o as u32);
        }
        let blocks: std::collections::BTreeMap<&String, (Vec<bool>, &Vec<u32>)> = by_value
            .iter()
            .map(|(v, list)| {
                let mut pass = vec![false; payloads.len()];
                list.iter().for_each(|&o| pass[o as usize] = true);
                (v, (pass, list))
            })
            .collect();
        let graph = &*graph;
        let chunks: Vec<u32> = (0..payloads.len() as u32).step_by(256).collect();
        braid_core::run_parts(chunks, 2, |start| {
            for o in start..(start + 256).min(payloads.len() as u32) {
                let (pass, list) = &blocks[&payloads[o as usize][field].to_string()];
                let block = Listed { pass, matching: list.to_vec(), group: None };
                graph.link_in_group_coded(base, codes, key, PointOffset(o), &[&block], false).expect("link");
            }
        });
    }
}

/// Queries per second of `search` over every query, repeated for `secs`.
fn qps(queries: &[Vec<f32>], secs: f64, mut search: impl FnMut(&[f32])) -> f64 {
    let start = Instant::now();
    let mut done = 0usize;
    while start.elapsed().as_secs_f64() < secs || done == 0 {
        for q in queries {
            search(q);
        }
        done += queries.len();
    }
    done as f64 / start.elapsed().as_secs_f64()
}

/// The `ef`s a recall-matched comparison tries, smallest first.
const EFS: [usize; 18] = [10, 16, 24, 32, 40, 48, 56, 64, 72, 80, 88, 96, 112, 128, 160, 200, 256, 320];

/// The smallest `ef` of [`EFS`] at which `walk` recalls at least `target` against
/// `truth`, with that recall.
fn smallest_ef(
    queries: &[Vec<f32>],
    truth: &[Vec<u32>],
    target: f64,
    walk: impl Fn(&[f32], usize) -> Vec<u32>,
) -> Option<(usize, f64)> {
    EFS.iter().find_map(|&ef| {
        let found: Vec<Vec<u32>> = queries.iter().map(|q| walk(q, ef)).collect();
        let r = recall(&found, truth);
        (r >= target).then_some((ef, r))
    })
}

fn recall(found: &[Vec<u32>], truth: &[Vec<u32>]) -> f64 {
    let hits: usize = found.iter().zip(truth).map(|(f, t)| f.iter().filter(|x| t.contains(x)).count()).sum();
    hits as f64 / truth.iter().map(Vec::len).sum::<usize>().max(1) as f64
}

fn main() {
    let args = braid_testkit::BenchArgs::from_env();
    let bench = args.bench;
    let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dir = args
        .value("--data")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target/data/wn20000-q1000-k100"));
    let out = args.out_file(&workspace, "filtered-braid.json");
    let ef: usize = args.value("--ef").and_then(|s| s.parse().ok()).unwrap_or(64);
    let Ok(mut set) = WordnetSet::read(&dir) else {
        println!("no data at {}: nothing to measure", dir.display());
        return;
    };
    if !bench {
        set.truncate(2_000, 20);
    }
    let WordnetSet { base: rows, queries, payloads } = set;
    let (n, dim) = (rows.len(), rows[0].len());
    let mut base = DenseVectors::new(dim);
    for r in &rows {
        base.push(r).expect("rows of one width");
    }
    let secs = if bench { 1.0 } else { 0.0 };
    println!("data: {} ({n} points, {} queries, dim {dim}), ef {ef}", dir.display(), queries.len());

    // `--graph FILE`: the graph with its links read from FILE when it is there (written
    // after the build otherwise), so that runs comparing search variants skip the build.
    let cached = args.value("--graph").map(PathBuf::from);
    let t = Instant::now();
    let codes = Codes::from_source(Metric::Dot, &base).expect("codes");
    let coded = t.elapsed().as_secs_f64();
    let (graph, linked) = match cached.as_deref().filter(|p| p.exists()) {
        Some(path) => {
            println!("graph and links read from {}", path.display());
            let graph = Hnsw::read_from(path).expect("read the cached graph");
            // A graph kept from another data set would answer with the wrong offsets.
            let fits = graph.metric() == Metric::Dot
                && graph.dim() == dim
                && graph.len() == n
                && graph.link_groups().len() == 2;
            assert!(
                fits,
                "{} holds a graph of {} {}-d points with {} link groups, not this set's {n} {dim}-d \
                 points with 2: remove it or name another --graph",
                path.display(),
                graph.len(),
                graph.dim(),
                graph.link_groups().len()
            );
            (graph, None)
        }
        None => {
            let walk = args.flag("--build-codes").then_some(&codes);
            let t = Instant::now();
            let config = HnswConfig { m: 16, ef_construct: 200, seed: 42 };
            let mut graph = Hnsw::new(Metric::Dot, dim, config, n).expect("graph");
            graph.insert_all_coded(&base, walk, 0..n as u32, 2).expect("build");
            let built = t.elapsed().as_secs_f64();
            let t = Instant::now();
            link(&mut graph, &base, walk, &payloads, &["category", "pos"]);
            let linked = t.elapsed().as_secs_f64();
            println!(
                "graph built in {built:.1} s, int8 codes in {coded:.1} s, payload links (category, pos) in {linked:.1} s{}",
                if walk.is_some() { ", both walking by the codes" } else { "" }
            );
            if let Some(path) = &cached {
                graph.write_to(path).expect("write the graph");
            }
            (graph, Some(linked))
        }
    };

    let field = |key: &'static str, value: &'static str| payloads.iter().map(|p| p[key] == value).collect();
    let (category, pos) = (Some(1), Some(2));
    let cases = [
        Case { name: "category = verb.social", pass: field("category", "verb.social"), group: category },
        Case { name: "pos = adv", pass: field("pos", "adv"), group: pos },
        Case { name: "category = noun.artifact", pass: field("category", "noun.artifact"), group: category },
        Case { name: "pos = verb", pass: field("pos", "verb"), group: pos },
        Case {
            name: "pos != noun",
            pass: payloads.iter().map(|p| p["pos"] != "noun").collect(),
            group: None,
        },
        Case { name: "pos = noun", pass: field("pos", "noun"), group: pos },
    ];

    let unfiltered_float = qps(&queries, secs, |q| {
        black_box(graph.search(&base, q, 10, ef, None).expect("search"));
    });
    let unfiltered_coded = qps(&queries, secs, |q| {
        black_box(graph.search_coded(&base, &codes, q, 10, ef, None, Rescore::Pool).expect("search"));
    });
    println!("unfiltered: {unfiltered_float:.0} QPS over floats, {unfiltered_coded:.0} QPS over codes");

    // `--recall R`: besides the equal-`ef` figures, each filter's cheapest walk reaching
    // recall R against the unfiltered walk's cheapest reaching R (the `ef`s of [`EFS`]).
    let recall_target: Option<f64> = args.value("--recall").and_then(|s| s.parse().ok());
    let unfiltered_matched = recall_target.and_then(|target| {
        let truth: Vec<Vec<u32>> = queries
            .iter()
            .map(|q| offsets(&graph.search_exact(&base, q, 10, None).expect("exact")))
            .collect();
        let walk = |q: &[f32], ef| offsets(&graph.search(&base, q, 10, ef, None).expect("search"));
        let found = smallest_ef(&queries, &truth, target, walk);
        if let Some((ef, r)) = found {
            println!("unfiltered: recall {r:.4} >= {target} first at ef {ef}");
        }
        found
    });

    let mut report = Vec::new();
    let only = args.value("--only");
    for case in cases.iter().filter(|c| only.as_ref().is_none_or(|o| c.name.contains(o.as_str()))) {
        let matching: Vec<u32> = (0..n as u32).filter(|&i| case.pass[i as usize]).collect();
        let unlinked = Listed { pass: &case.pass, matching: matching.clone(), group: None };
        let linked = Listed { pass: &case.pass, matching, group: case.group };
        let filter: &dyn OffsetFilter = &unlinked;
        let selectivity = filter.estimate().expected as f64 / n as f64;
        let truth: Vec<Vec<u32>> = queries
            .iter()
            .map(|q| offsets(&graph.search_exact(&base, q, 10, Some(filter)).expect("exact")))
            .collect();
        let scan = qps(&queries, secs, |q| {
            black_box(graph.search_exact(&base, q, 10, Some(filter)).expect("scan"));
        });
        let mut row = json!({"filter": case.name, "selectivity": selectivity,
                             "scan_latency_ratio": unfiltered_float / scan});
        let walks = [
            (FilteredWalk::Plain, "plain"),
            (FilteredWalk::TwoHop, "two_hop"),
            (FilteredWalk::Auto, "linked"),
        ];
        for (walk, label) in walks {
            if label == "linked" && case.group.is_none() {
                continue;
            }
            graph.set_filtered_walk(walk);
            let filter: &dyn OffsetFilter = if label == "linked" { &linked } else { &unlinked };
            let found: Vec<Vec<u32>> = queries
                .iter()
                .map(|q| offsets(&graph.search(&base, q, 10, ef, Some(filter)).expect("search")))
                .collect();
            // Bracketed by unfiltered walks measured just before and after: the machine's
            // drift between the start of the run and this case does not enter the ratio.
            let before = qps(&queries, secs, |q| {
                black_box(graph.search(&base, q, 10, ef, None).expect("search"));
            });
            let float_qps = qps(&queries, secs, |q| {
                black_box(graph.search(&base, q, 10, ef, Some(filter)).expect("search"));
            });
            let after = qps(&queries, secs, |q| {
                black_box(graph.search(&base, q, 10, ef, None).expect("search"));
            });
            let float_ratio = (before + after) / 2.0 / float_qps;
            let coded_found: Vec<Vec<u32>> = queries
                .iter()
                .map(|q| {
                    offsets(
                        &graph
                            .search_coded(&base, &codes, q, 10, ef, Some(filter), Rescore::Pool)
                            .expect("search"),
                    )
                })
                .collect();
            let unfiltered_coded = || {
                qps(&queries, secs, |q| {
                    black_box(
                        graph.search_coded(&base, &codes, q, 10, ef, None, Rescore::Pool).expect("search"),
                    );
                })
            };
            let coded_before = unfiltered_coded();
            let coded_qps = qps(&queries, secs, |q| {
                black_box(
                    graph
                        .search_coded(&base, &codes, q, 10, ef, Some(filter), Rescore::Pool)
                        .expect("search"),
                );
            });
            let coded_ratio = (coded_before + unfiltered_coded()) / 2.0 / coded_qps;
            let (r, rc) = (recall(&found, &truth), recall(&coded_found, &truth));
            println!(
                "{:<26} {:>5.1} % {label:<8} floats: recall {r:.4}, {float_ratio:.2}× unfiltered latency \
                 (unfiltered {before:.0} / {after:.0} QPS before / after); codes: recall {rc:.4}, {:.2}×; scan {:.2}×",
                case.name,
                100.0 * selectivity,
                coded_ratio,
                unfiltered_float / scan,
            );
            row[label] = json!({"recall": r, "latency_ratio": float_ratio, "unfiltered_qps_around": [before, after],
                                "coded_recall": rc, "coded_latency_ratio": coded_ratio});
        }
        graph.set_filtered_walk(FilteredWalk::Auto);
        if let (Some(target), Some((unfiltered_ef, unfiltered_recall))) = (recall_target, unfiltered_matched)
        {
            let filter: &dyn OffsetFilter = if case.group.is_some() { &linked } else { &unlinked };
            let walk =
                |q: &[f32], ef| offsets(&graph.search(&base, q, 10, ef, Some(filter)).expect("search"));
            if let Some((filtered_ef, filtered_recall)) = smallest_ef(&queries, &truth, target, walk) {
                let unfiltered = || {
                    qps(&queries, secs, |q| {
                        black_box(graph.search(&base, q, 10, unfiltered_ef, None).expect("search"));
                    })
                };
                let before = unfiltered();
                let filtered = qps(&queries, secs, |q| {
                    black_box(graph.search(&base, q, 10, filtered_ef, Some(filter)).expect("search"));
                });
                let ratio = (before + unfiltered()) / 2.0 / filtered;
                println!(
                    "{:<26} recall-matched at >= {target}: filtered ef {filtered_ef} (recall {filtered_recall:.4}) \
                     {ratio:.2}x the latency of unfiltered ef {unfiltered_ef} (recall {unfiltered_recall:.4})",
                    case.name
                );
                row["recall_matched"] = json!({"target": target, "filtered_ef": filtered_ef,
                    "filtered_recall": filtered_recall, "unfiltered_ef": unfiltered_ef,
                    "unfiltered_recall": unfiltered_recall, "latency_ratio": ratio});
            }
        }
        report.push(row);
    }
    if bench {
        let doc = json!({"data_dir": dir, "n": n, "queries": queries.len(), "ef": ef, "link_seconds": linked, "build_codes": linked.is_some().then(|| args.flag("--build-codes")),
                         "unfiltered_qps": unfiltered_float, "unfiltered_coded_qps": unfiltered_coded, "cases": report});
        if let Some(parent) = out.parent() {
            let _ = std::fs::create_dir_all(parent);
        }
        std::fs::write(&out, serde_json::to_string_pretty(&doc).expect("json")).expect("write the report");
        println!("wrote {}", out.display());
    }
}

fn offsets(hits: &[braid_core::ScoredOffset]) -> Vec<u32> {
    hits.iter().map(|h| h.offset.0).collect()
}
