//! Searches that rank by one-byte codes (spaces of 64 components or more under Cosine,
//! Dot or Euclid), checked end to end against brute force written here: the scores
//! returned are the exact ones, recall holds on the graph and on the planner's filtered
//! scan, `exact: true` is exact, and a reopened database answers exactly as before.

use std::collections::{HashMap, HashSet};

use braid::{
    CollectionConfig, Database, Distance, Filter, IndexKind, PointId, PointStruct, Quantization,
    SearchParams, SearchRequest, VectorParams, field,
};
use braid_testkit::Rng;
use serde_json::json;

const N: u64 = 3_000;

/// Qdrant's size thresholds would answer a collection this small exactly; these
/// tests are about the graph walk and scan by codes, so the thresholds are set
/// below the collection's size (1 KB).
fn walked(p: VectorParams) -> VectorParams {
    p.full_scan_threshold_kb(1)
}

fn config() -> CollectionConfig {
    CollectionConfig::new()
        .indexing_threshold_kb(1)
        .vector("text", walked(VectorParams::new(96, Distance::Cosine).hnsw(12, 64)))
        .vector("shape", walked(VectorParams::new(80, Distance::Euclid).hnsw(12, 64)))
}

/// Embedding-like vectors: 12 directions with as much spread around each as the
/// direction's own size.
struct Data {
    rng: Rng,
    centres: Vec<Vec<f32>>,
}

impl Data {
    fn new(seed: u64, dim: usize) -> Data {
        let mut rng = Rng::new(seed);
        let centres = (0..12).map(|_| rng.vector(dim)).collect();
        Data { rng, centres }
    }
    fn next(&mut self, i: u64) -> Vec<f32> {
        let c = &self.centres[(i % 12) as usize];
        c.iter().map(|x| x + self.rng.uniform()).collect()
    }
}

/// The category a point falls in: `rare` for 2 %, `common` for 30 %, else `other`.
fn category(i: u64) -> &'static str {
    match i % 50 {
        0 => "rare",
        1..=15 => "common",
        _ => "other",
    }
}

struct Truth {
    text: HashMap<u64, Vec<f32>>,
    shape: HashMap<u64, Vec<f32>>,
}

fn fill(db: &Database) -> Truth {
    fill_with(db, config())
}

/// Creates `coded` with `config` and fills it with [`N`] points.
fn fill_with(db: &Database, config: CollectionConfig) -> Truth {
    fill_n(db, config, N)
}

/// Creates `coded` with `config` and fills it with `n` points.
fn fill_n(db: &Database, config: CollectionConfig, n: u64) -> Truth {
    let c = db.create_collection("coded", config).unwrap();
    c.create_payload_index("cat", IndexKind::Keyword).unwrap();
    let (mut text, mut shape) = (Data::new(7, 96), Data::new(8, 80));
    let mut truth = Truth { text: HashMap::new(), shape: HashMap::new() };
    let points: Vec<PointStruct> = (0..n)
        .map(|i| {
            let (t, s) = (text.next(i), shape.next(i));
            truth.text.insert(i, t.clone());
            truth.shape.insert(i, s.clone());
            PointStruct::new(i).vector("text", t).vector("shape", s).payload(json!({"cat": category(i)}))
        })
        .collect();
    for chunk in points.chunks(500) {
        c.upsert(chunk.to_vec()).unwrap();
    }
    truth
}

fn score(space: &str, q: &[f32], v: &[f32]) -> f32 {
    if space == "text" {
        let norm = |x: &[f32]| x.iter().map(|a| a * a).sum::<f32>().sqrt();
        q.iter().zip(v).map(|(a, b)| a * b).sum::<f32>() / (norm(q) * norm(v))
    } else {
        q.iter().zip(v).map(|(a, b)| (a - b) * (a - b)).sum::<f32>().sqrt()
    }
}

/// The ids of the `k` best points passing `keep`, best first.
fn brute_force(truth: &Truth, space: &str, q: &[f32], k: usize, keep: impl Fn(u64) -> bool) -> Vec<u64> {
    let vectors = if space == "text" { &truth.text } else { &truth.shape };
    let mut all: Vec<(f32, u64)> =
        vectors.iter().filter(|(i, _)| keep(**i)).map(|(i, v)| (score(space, q, v), *i)).collect();
    if space == "text" {
        all.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    } else {
        all.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    }
    all.into_iter().take(k).map(|x| x.1).collect()
}

fn num(id: PointId) -> u64 {
    match id {
        PointId::Num(n) => n,
        PointId::Uuid(_) => panic!("numeric ids only"),
    }
}

/// Every (space, filter, exact) search over 20 queries: the hits of each.
fn answers(db: &Database, truth: &Truth) -> Vec<Vec<(u64, f32)>> {
    let c = db.collection("coded").unwrap();
    let (mut text, mut shape) = (Data::new(70, 96), Data::new(80, 80));
    // Queries near the data: reuse the data's centres with fresh spread.
    text.centres = Data::new(7, 96).centres;
    shape.centres = Data::new(8, 80).centres;
    let mut out = Vec::new();
    let (mut graph_found, mut scan_found, mut total) = (0usize, 0usize, 0usize);
    for qi in 0..20u64 {
        for (space, q) in [("text", text.next(qi)), ("shape", shape.next(qi))] {
            for (cat, exact) in [
                (None, false),
                (Some("rare"), false),
                (Some("common"), false),
                (Some("rare"), true),
                (None, true),
            ] {
                let mut request = SearchRequest::new(space, q.clone()).limit(10);
                if let Some(cat) = cat {
                    request = request.filter(Filter::must([field("cat").eq(cat)]));
                }
                if exact {
                    request = request.params(SearchParams::EXACT);
                }
                let hits = c.search(&request).unwrap();
                let keep = |i: u64| cat.is_none_or(|c| category(i) == c);
                let expected = brute_force(truth, space, &q, 10, keep);
                let vectors = if space == "text" { &truth.text } else { &truth.shape };
                for h in &hits {
                    let id = num(h.id);
                    assert!(keep(id), "{space} {cat:?}: {id} does not pass the filter");
                    let exact_score = score(space, &q, &vectors[&id]);
                    assert!(
                        (h.score - exact_score).abs() <= 1e-4 * (1.0 + exact_score.abs()),
                        "{space}: returned score {} is not the exact {exact_score}",
                        h.score
                    );
                }
                let ids: Vec<u64> = hits.iter().map(|h| num(h.id)).collect();
                if exact {
                    assert_eq!(ids, expected, "{space} {cat:?}: exact: true must be exact");
                } else {
                    let want: HashSet<u64> = expected.iter().copied().collect();
                    let found = ids.iter().filter(|i| want.contains(i)).count();
                    total += expected.len();
                    if cat == Some("rare") {
                        scan_found += found;
                    } else {
                        graph_found += found;
                    }
                }
                out.push(hits.iter().map(|h| (num(h.id), h.score)).collect());
            }
        }
    }
    let recall = (graph_found + scan_found) as f64 / total as f64;
    assert!(recall >= 0.97, "recall@10 of coded searches {recall}");
    out
}

#[test]
fn coded_searches_are_exactly_scored_and_find_the_neighbours() {
    let db = Database::in_memory();
    let truth = fill(&db);
    let explain = db
        .collection("coded")
        .unwrap()
        .explain(
            &braid::QueryRequest::nearest("text", vec![0.5; 96])
                .filter(Filter::must([field("cat").eq("rare")])),
        )
        .unwrap()
        .to_string();
    assert!(explain.contains("Scan:"), "a 2 % filter is answered by a scan: {explain}");
    answers(&db, &truth);
}

#[test]
fn a_reopened_database_answers_as_before() {
    let dir = tempfile::tempdir().unwrap();
    let (truth, before) = {
        let db = Database::open(dir.path()).unwrap();
        let truth = fill(&db);
        db.collection("coded").unwrap().flush().unwrap();
        let before = answers(&db, &truth);
        (truth, before)
    };
    // The codes were written with the checkpoint (one file per coded space) and are
    // read back, not rebuilt: answers repeat exactly.
    let codes_files = || -> Vec<std::path::PathBuf> {
        let mut files: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .flat_map(|c| std::fs::read_dir(c.unwrap().path()).into_iter().flatten())
            .map(|f| f.unwrap().path())
            .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("codes-"))
            .collect();
        files.sort();
        files
    };
    assert_eq!(codes_files().len(), 2, "{:?}", codes_files());
    {
        let db = Database::open(dir.path()).unwrap();
        assert_eq!(answers(&db, &truth), before, "codes read back answer as the ones built");
    }
    // A flipped byte in a codes file is a typed error at open, not a silent rebuild.
    let file = codes_files()[0].clone();
    let mut bytes = std::fs::read(&file).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x10;
    std::fs::write(&file, &bytes).unwrap();
    let opened = Database::open(dir.path());
    assert!(matches!(&opened, Err(braid::Error::Storage(_))), "{:?}", opened.err());
    bytes[at] ^= 0x10;
    std::fs::write(&file, &bytes).unwrap();
    assert_eq!(answers(&Database::open(dir.path()).unwrap(), &truth), before);
}

#[test]
fn a_space_without_codes_scans_and_walks_on_floats() {
    let dir = tempfile::tempdir().unwrap();
    let plain = CollectionConfig::new().indexing_threshold_kb(1).vector(
        "text",
        walked(VectorParams::new(96, Distance::Cosine).hnsw(12, 64).quantization(Quantization::None)),
    );
    let mut data = Data::new(9, 96);
    let vectors: Vec<Vec<f32>> = (0..1_500).map(|i| data.next(i)).collect();
    {
        let db = Database::open(dir.path()).unwrap();
        let c = db.get_or_create("plain", plain.clone()).unwrap();
        // The same name with codes is another configuration: a conflict, not a change.
        let coded = CollectionConfig::new()
            .indexing_threshold_kb(1)
            .vector("text", walked(VectorParams::new(96, Distance::Cosine).hnsw(12, 64)));
        assert!(matches!(db.get_or_create("plain", coded), Err(braid::Error::CollectionConflict { .. })));
        c.create_payload_index("cat", IndexKind::Keyword).unwrap();
        c.upsert(
            vectors
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    PointStruct::new(i as u64)
                        .vector("text", v.clone())
                        .payload(json!({"cat": category(i as u64)}))
                })
                .collect(),
        )
        .unwrap();
        c.flush().unwrap();
    }
    let db = Database::open(dir.path()).unwrap();
    let c = db.collection("plain").unwrap();
    assert_eq!(c.info().config.vectors["text"].quantization, Quantization::None, "kept across a reopen");
    let truth = Truth {
        text: vectors.iter().enumerate().map(|(i, v)| (i as u64, v.clone())).collect(),
        shape: HashMap::new(),
    };
    // Queries near the data: its centres with fresh spread.
    let mut queries = Data::new(99, 96);
    queries.centres = Data::new(9, 96).centres;
    for qi in 0..10u64 {
        let q = queries.next(qi);
        // The planner's scan on floats is exact.
        let request =
            SearchRequest::new("text", q.clone()).limit(10).filter(Filter::must([field("cat").eq("rare")]));
        let ids: Vec<u64> = c.search(&request).unwrap().iter().map(|h| num(h.id)).collect();
        assert_eq!(ids, brute_force(&truth, "text", &q, 10, |i| category(i) == "rare"));
        let walked = c.search(&SearchRequest::new("text", q.clone()).limit(10)).unwrap();
        let expected: HashSet<u64> = brute_force(&truth, "text", &q, 10, |_| true).into_iter().collect();
        let found = walked.iter().filter(|h| expected.contains(&num(h.id))).count();
        assert!(found >= 8, "float walk recall {found}/10");
    }
}

/// Qdrant's search-time `quantization` parameters: `rescore: false` answers with the
/// codes' approximate scores, `ignore` walks and scans on the floats (so even without
/// re-scoring the scores are exact), `oversampling` re-scores `ceil(limit · o)`
/// candidates (a pool holding every match makes a scan exact), and bad values are
/// typed errors.
#[test]
fn search_time_quantization_params_are_honoured() {
    use braid::QuantizationParams;
    let db = Database::in_memory();
    let truth = fill(&db);
    let c = db.collection("coded").unwrap();
    let mut queries = Data::new(71, 96);
    queries.centres = Data::new(7, 96).centres;
    let rare = Filter::must([field("cat").eq("rare")]);
    let params = |q: QuantizationParams| SearchParams::default().with_quantization(q);
    let (mut approximate, mut compared) = (0usize, 0usize);
    for qi in 0..10u64 {
        let q = queries.next(qi);
        for filter in [None, Some(rare.clone())] {
            let search = |p: SearchParams| {
                let mut r = SearchRequest::new("text", q.clone()).limit(10).params(p);
                if let Some(f) = &filter {
                    r = r.filter(f.clone());
                }
                c.search(&r).unwrap()
            };
            let unrescored =
                search(params(QuantizationParams { rescore: Some(false), ..Default::default() }));
            assert_eq!(unrescored.len(), 10);
            assert!(unrescored.windows(2).all(|w| w[0].score >= w[1].score), "best first");
            for h in &unrescored {
                let exact = score("text", &q, &truth.text[&num(h.id)]);
                assert!((h.score - exact).abs() <= 0.05, "coded score {} vs exact {exact}", h.score);
                compared += 1;
                if (h.score - exact).abs() > 1e-5 {
                    approximate += 1;
                }
            }
            let ignored =
                search(params(QuantizationParams { ignore: true, rescore: Some(false), oversampling: None }));
            for h in &ignored {
                let exact = score("text", &q, &truth.text[&num(h.id)]);
                assert!(
                    (h.score - exact).abs() <= 1e-4 * (1.0 + exact.abs()),
                    "ignore: {} vs {exact}",
                    h.score
                );
            }
            if filter.is_some() {
                // 60 rare points: a pool of 6 × 10 holds them all.
                let all =
                    search(params(QuantizationParams { oversampling: Some(6.0), ..Default::default() }));
                let ids: Vec<u64> = all.iter().map(|h| num(h.id)).collect();
                assert_eq!(ids, brute_force(&truth, "text", &q, 10, |i| category(i) == "rare"));
            }
        }
    }
    assert!(approximate * 2 > compared, "codes' scores are approximate: {approximate} of {compared} differ");
    for (bad, what) in [(0.5, "below 1"), (f64::NAN, "NaN"), (f64::INFINITY, "infinite")] {
        let r = SearchRequest::new("text", vec![0.5; 96])
            .params(params(QuantizationParams { oversampling: Some(bad), ..Default::default() }));
        let got = c.search(&r);
        assert!(
            matches!(got, Err(braid::Error::Query(braid::query::QueryError::BadOversampling { .. }))),
            "{what}: {got:?}"
        );
    }
    let huge = SearchRequest::new("text", vec![0.5; 96])
        .limit(100)
        .params(params(QuantizationParams { oversampling: Some(1e9), ..Default::default() }));
    assert!(matches!(c.search(&huge), Err(braid::Error::Query(braid::query::QueryError::Limit { .. }))));
}

/// A space with binary codes (one or two bits per component): searches walk and scan by them
/// and re-score a larger pool, so scores stay exact and recall holds; the codes are
/// written with the checkpoint and read back (answers repeat after reopen); switching
/// a live space between int8 and binary codes keeps its answers exact.
#[test]
fn binary_codes_answer_exactly_and_persist() {
    for (kind, words) in [(Quantization::Binary, 2), (Quantization::BinaryTwoBits, 4)] {
        binary_codes_of(kind, words);
    }
}

/// [`binary_codes_answer_exactly_and_persist`] for one kind of bit codes, whose code
/// of 96 components takes `words` 64-bit words.
fn binary_codes_of(kind: Quantization, words: usize) {
    let binary = |distance| walked(VectorParams::new(96, distance).hnsw(12, 64).quantization(kind));
    let config = || {
        CollectionConfig::new()
            .indexing_threshold_kb(1)
            .vector("text", binary(Distance::Cosine))
            .vector("shape", walked(VectorParams::new(80, Distance::Euclid).hnsw(12, 64)).quantization(kind))
    };
    let dir = tempfile::tempdir().unwrap();
    let truth = {
        let db = Database::open(dir.path()).unwrap();
        let truth = fill_with(&db, config());
        db.collection("coded").unwrap().flush().unwrap();
        truth
    };
    let before = answers(&Database::open(dir.path()).unwrap(), &truth);
    let files: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .flat_map(|c| std::fs::read_dir(c.unwrap().path()).into_iter().flatten())
        .map(|f| f.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("codes-"))
        .collect();
    assert_eq!(files.len(), 2, "{kind:?} codes are written with the checkpoint: {files:?}");
    let db = Database::open(dir.path()).unwrap();
    assert_eq!(answers(&db, &truth), before, "{kind:?} codes read back answer as the ones built");
    // Switch the text space to int8 codes and back: answers stay exact (`answers`
    // checks every score and the recall).
    let c = db.collection("coded").unwrap();
    // Info reports each space's bytes: 96 components of one bit (two words) or two
    // (four), and a word of terms per code, against 96 × 4 bytes of floats.
    let memory = c.info().memory["text"];
    assert_eq!(memory.codes, N as usize * (8 * words + 8), "{kind:?}");
    assert_eq!(memory.vectors, N as usize * 96 * 4);
    assert!(memory.vectors_mapped <= memory.vectors && memory.graph > 0, "{memory:?}");
    through_int8(&db, &truth, N, config());
    assert_eq!(c.config().vectors["text"].quantization, kind);
}

/// Spaces with product codes: until the sample is complete they rank by one-byte
/// codes; past it the codebook is learnt and every vector re-coded, searches re-score
/// a larger pool (exact scores, recall holds), the codes and codebook are written with
/// the checkpoint and read back, and info counts a byte per part plus the codebook.
#[test]
fn product_codes_learn_answer_exactly_and_persist() {
    use braid::distance::{Compression, PRODUCT_SAMPLE};
    let config = || {
        CollectionConfig::new()
            .indexing_threshold_kb(1)
            .vector(
                "text",
                walked(VectorParams::new(96, Distance::Cosine).hnsw(12, 64))
                    .quantization(Quantization::Product(Compression::X16)),
            )
            .vector(
                "shape",
                walked(VectorParams::new(80, Distance::Euclid).hnsw(12, 64))
                    .quantization(Quantization::Product(Compression::X8)),
            )
    };
    let n = PRODUCT_SAMPLE as u64 + 600;
    let dir = tempfile::tempdir().unwrap();
    let (truth, before) = {
        let db = Database::open(dir.path()).unwrap();
        let truth = fill_n(&db, config(), n);
        let c = db.collection("coded").unwrap();
        // 96 / 4 = 24 bytes per text vector, 80 / 2 = 40 per shape vector, and each
        // space's codebook (256 centroids' components as f32).
        let memory = c.info().memory;
        assert_eq!(memory["text"].codes, n as usize * 24 + 96 * 256 * 4, "{memory:?}");
        assert_eq!(memory["shape"].codes, n as usize * 40 + 80 * 256 * 4);
        let before = answers(&db, &truth);
        c.flush().unwrap();
        (truth, before)
    };
    let files = braid_testkit::collection_files(dir.path(), "codes-").len();
    assert_eq!(files, 2, "product codes are written with the checkpoint");
    let db = Database::open(dir.path()).unwrap();
    assert_eq!(answers(&db, &truth), before, "product codes read back answer as the ones built");
    let c = db.collection("coded").unwrap();
    assert_eq!(c.config().vectors["text"].quantization, Quantization::Product(Compression::X16));
    // Switched to int8 codes and back on the live space: the codebook is learnt again
    // from the same sample, so the answers are the same.
    assert_eq!(through_int8(&db, &truth, n, config()), before, "the same sample learns the same codebook");
}

/// Switches the live text space of `n` points to int8 codes and then to `back`: codes
/// rebuilt from the rows each way, answers exact after each; the last answers.
fn through_int8(db: &Database, truth: &Truth, n: u64, back: CollectionConfig) -> Vec<Vec<(u64, f32)>> {
    let c = db.collection("coded").unwrap();
    let mut int8 = c.config();
    int8.vectors.get_mut("text").unwrap().quantization = Quantization::Int8;
    c.reconfigure(int8).unwrap();
    assert_eq!(c.info().memory["text"].codes, n as usize * (96 + 12));
    answers(db, truth);
    c.reconfigure(back).unwrap();
    answers(db, truth)
}

#[test]
fn rows_on_disk_answer_the_same_and_the_setting_persists() {
    // Binary codes in memory, rows read only where re-scoring touches them: the
    // configuration `on_disk` is for. The other space keeps its rows in memory.
    let config = |on_disk: bool| {
        CollectionConfig::new()
            .indexing_threshold_kb(1)
            .vector(
                "text",
                walked(VectorParams::new(96, Distance::Cosine).hnsw(12, 64))
                    .quantization(Quantization::Binary)
                    .on_disk(on_disk),
            )
            .vector("shape", walked(VectorParams::new(80, Distance::Euclid).hnsw(12, 64)))
    };
    let dir = tempfile::tempdir().unwrap();
    let (truth, before) = {
        let db = Database::open(dir.path()).unwrap();
        let truth = fill_with(&db, config(true));
        let c = db.collection("coded").unwrap();
        assert!(c.config().vectors["text"].on_disk && !c.config().vectors["shape"].on_disk);
        let before = answers(&db, &truth);
        c.flush().unwrap();
        assert_eq!(answers(&db, &truth), before, "mapped on disk after the checkpoint, same answers");
        (truth, before)
    };
    let db = Database::open(dir.path()).unwrap();
    let c = db.collection("coded").unwrap();
    assert!(c.config().vectors["text"].on_disk, "on_disk persists across reopen");
    assert_eq!(answers(&db, &truth), before);
    let memory = c.info().memory["text"];
    assert_eq!(memory.vectors_mapped, memory.vectors, "every row read from its file: {memory:?}");
    // Switched on a live space, both ways, answers unchanged.
    c.reconfigure(config(false)).unwrap();
    assert!(!c.config().vectors["text"].on_disk);
    assert_eq!(answers(&db, &truth), before);
    c.reconfigure(config(true)).unwrap();
    c.flush().unwrap();
    drop(c);
    drop(db);
    let db = Database::open(dir.path()).unwrap();
    assert!(db.collection("coded").unwrap().config().vectors["text"].on_disk);
    assert_eq!(answers(&db, &truth), before);
}
