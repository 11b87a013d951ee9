//! Spaces that store `float16` and `uint8` rows, end to end: searches score against
//! the stored values exactly (checked against brute force over those values written
//! here), find the neighbours over the graph, codes and a filtered scan, return the
//! stored vectors, refuse what the datatype cannot hold, and read back after a reopen.

use std::collections::{HashMap, HashSet};

use braid::{
    CollectionConfig, Database, Datatype, Distance, Filter, IndexKind, PointId, PointStruct, Quantization,
    SearchParams, SearchRequest, VectorParams, field,
};
use braid_core::f16;
use braid_testkit::Rng;
use serde_json::json;

const N: u64 = 1_500;

/// The spaces under test: (name, dimension, distance, datatype, quantization).
const SPACES: [(&str, usize, Distance, Datatype, Quantization); 5] = [
    ("half", 96, Distance::Cosine, Datatype::Float16, Quantization::Int8),
    ("half_dot", 72, Distance::Dot, Datatype::Float16, Quantization::None),
    ("byte_cos", 80, Distance::Cosine, Datatype::Uint8, Quantization::Binary),
    ("byte_dot", 64, Distance::Dot, Datatype::Uint8, Quantization::Int8),
    ("byte_l2", 24, Distance::Euclid, Datatype::Uint8, Quantization::Int8),
];

fn config() -> CollectionConfig {
    SPACES.iter().fold(CollectionConfig::new().indexing_threshold_kb(1), |c, &(name, dim, d, t, q)| {
        c.vector(
            name,
            VectorParams::new(dim, d).hnsw(12, 64).datatype(t).quantization(q).full_scan_threshold_kb(1),
        )
    })
}

fn is_bytes(space: &str) -> bool {
    space.starts_with("byte")
}

/// Clustered vectors: floats around 10 centres for the half spaces, integers
/// `0..=255` around 10 centres for the byte spaces.
fn vector(rng: &mut Rng, space: &str, dim: usize, centre: usize) -> Vec<f32> {
    let mut seeded = Rng::new(1000 + centre as u64 + dim as u64);
    if is_bytes(space) {
        (0..dim)
            .map(|_| {
                let c = (seeded.uniform() + 1.0) * 110.0;
                (c + rng.uniform() * 30.0).round().clamp(0.0, 255.0)
            })
            .collect()
    } else {
        (0..dim).map(|_| seeded.uniform() + 0.7 * rng.uniform()).collect()
    }
}

/// What a stored row holds: a `float16` Cosine row normalised then rounded to halves,
/// a `float16` Dot row rounded, a `uint8` row exactly as given.
fn stored(space: &str, distance: Distance, v: &[f32]) -> Vec<f32> {
    if is_bytes(space) {
        return v.to_vec();
    }
    let mut v = v.to_vec();
    if distance == Distance::Cosine {
        let norm = v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
        v.iter_mut().for_each(|x| *x = (f64::from(*x) / norm) as f32);
    }
    v.iter().map(|&x| f16::from_f32(x).to_f32()).collect()
}

/// The user score of `q` against a stored row, in `f64`.
fn score(distance: Distance, q: &[f32], row: &[f32]) -> f64 {
    let dot = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| f64::from(*x) * f64::from(*y)).sum::<f64>();
    match distance {
        Distance::Cosine => dot(q, row) / (dot(q, q).sqrt() * dot(row, row).sqrt()),
        Distance::Dot => dot(q, row),
        Distance::Euclid => q.iter().zip(row).map(|(x, y)| f64::from(x - y).powi(2)).sum::<f64>().sqrt(),
        Distance::Manhattan => q.iter().zip(row).map(|(x, y)| f64::from((x - y).abs())).sum(),
    }
}

fn num(id: PointId) -> u64 {
    match id {
        PointId::Num(n) => n,
        PointId::Uuid(_) => panic!("numeric ids only"),
    }
}

/// Each space's stored rows by id.
type Truth = HashMap<&'static str, HashMap<u64, Vec<f32>>>;

fn fill(db: &Database) -> Truth {
    let c = db.create_collection("typed", config()).unwrap();
    c.create_payload_index("cat", IndexKind::Keyword).unwrap();
    let mut rng = Rng::new(5);
    let mut truth: Truth = HashMap::new();
    let points: Vec<PointStruct> = (0..N)
        .map(|i| {
            let mut p = PointStruct::new(i)
                .payload(json!({"cat": if i.is_multiple_of(40) { "rare" } else { "other" }}));
            for &(name, dim, distance, _, _) in &SPACES {
                let v = vector(&mut rng, name, dim, (i % 10) as usize);
                truth.entry(name).or_default().insert(i, stored(name, distance, &v));
                p = p.vector(name, v);
            }
            p
        })
        .collect();
    for chunk in points.chunks(400) {
        c.upsert(chunk.to_vec()).unwrap();
    }
    truth
}

/// Every search over 10 queries per space (graph, rare filter, exact): checks scores
/// and exact answers, and returns the hits and the recall of the approximate ones.
fn answers(db: &Database, truth: &Truth) -> (Vec<Vec<(u64, f32)>>, f64) {
    let c = db.collection("typed").unwrap();
    let mut rng = Rng::new(77);
    let (mut out, mut found, mut total) = (Vec::new(), 0, 0);
    for &(name, dim, distance, _, _) in &SPACES {
        let before = (found, total);
        for qi in 0..10 {
            let q = vector(&mut rng, name, dim, qi);
            for (rare, exact) in [(false, false), (true, false), (false, true)] {
                let mut request = SearchRequest::new(name, q.clone()).limit(10);
                if rare {
                    request = request.filter(Filter::must([field("cat").eq("rare")]));
                }
                if exact {
                    request = request.params(SearchParams::EXACT);
                }
                let hits = c.search(&request).unwrap();
                let keep = |i: u64| !rare || i.is_multiple_of(40);
                let mut all: Vec<(f64, u64)> = truth[name]
                    .iter()
                    .filter(|(i, _)| keep(**i))
                    .map(|(i, v)| (score(distance, &q, v), *i))
                    .collect();
                let better = |a: &(f64, u64), b: &(f64, u64)| {
                    let by =
                        if distance == Distance::Euclid { a.0.total_cmp(&b.0) } else { b.0.total_cmp(&a.0) };
                    by.then(a.1.cmp(&b.1))
                };
                all.sort_by(better);
                for h in &hits {
                    let want = score(distance, &q, &truth[name][&num(h.id)]);
                    assert!(
                        (f64::from(h.score) - want).abs() <= 2e-4 * want.abs().max(1.0),
                        "{name}: score {} of {:?} is not the stored row's {want}",
                        h.score,
                        h.id
                    );
                }
                let ids: Vec<u64> = hits.iter().map(|h| num(h.id)).collect();
                let expected: Vec<u64> = all.iter().take(10).map(|x| x.1).collect();
                if exact {
                    let got: Vec<f64> = ids.iter().map(|i| score(distance, &q, &truth[name][i])).collect();
                    let best: Vec<f64> = all.iter().take(10).map(|x| x.0).collect();
                    for (g, b) in got.iter().zip(&best) {
                        assert!(
                            (g - b).abs() <= 1e-4 * b.abs().max(1.0),
                            "{name}: exact: {ids:?} vs {expected:?}"
                        );
                    }
                } else {
                    let want: HashSet<u64> = expected.iter().copied().collect();
                    found += ids.iter().filter(|i| want.contains(i)).count();
                    total += expected.len();
                }
                out.push(hits.iter().map(|h| (num(h.id), h.score)).collect());
            }
        }
        // Binary codes rank these all-positive byte vectors (cosines near 1 between any
        // two) coarsely: a `float32` space of the same rows and codes found 0.85 too.
        let space_recall = (found - before.0) as f64 / (total - before.1) as f64;
        assert!(space_recall >= 0.8, "{name}: recall@10 {space_recall}");
    }
    (out, found as f64 / total as f64)
}

#[test]
fn narrow_spaces_score_their_stored_values_and_find_the_neighbours() {
    let db = Database::in_memory();
    let truth = fill(&db);
    let (_, recall) = answers(&db, &truth);
    assert!(recall >= 0.95, "recall@10 over graph, codes and scan: {recall}");

    // A recommendation scores every candidate row against the example's (the walk and
    // the scan that take a score function): with one positive example under
    // `best_score` it ranks by the metric, as brute force over the stored rows does.
    let c = db.collection("typed").unwrap();
    // Not `byte_dot`: its dot products (~10⁶) all squash to the same best_score
    // (Qdrant's `x / (1 + |x|)`), so its order there is the points' order.
    for &(name, _, distance, _, _) in SPACES.iter().filter(|s| s.0 != "byte_dot") {
        let example = &truth[name][&5];
        let mut all: Vec<(f64, u64)> = truth[name]
            .iter()
            .filter(|(i, _)| **i != 5)
            .map(|(i, v)| (score(distance, example, v), *i))
            .collect();
        all.sort_by(|a, b| {
            let by = if distance == Distance::Euclid { a.0.total_cmp(&b.0) } else { b.0.total_cmp(&a.0) };
            by.then(a.1.cmp(&b.1))
        });
        let want: HashSet<u64> = all.iter().take(10).map(|x| x.1).collect();
        let recommend = braid::Recommend {
            positive: vec![braid::Example::Id(PointId::Num(5))],
            negative: vec![],
            strategy: braid::RecommendStrategy::BestScore,
        };
        for exact in [true, false] {
            let mut request = braid::QueryRequest::recommend(name, recommend.clone()).limit(10);
            if exact {
                request = request.params(SearchParams::EXACT);
            }
            let got: HashSet<u64> = c.query(request).unwrap().iter().map(|h| num(h.id)).collect();
            let found = got.intersection(&want).count();
            if exact {
                assert_eq!(got, want, "{name}: an exact recommendation is the brute force");
            } else {
                assert!(found >= 8, "{name}: a walked recommendation found {found} of 10");
            }
        }
    }

    // Vectors come back as stored: bytes exactly, halves normalised and rounded.
    let records = c.get(&[PointId::Num(3), PointId::Num(700)], false, true).unwrap();
    for r in &records {
        let vectors = r.vectors.as_ref().unwrap();
        for &(name, ..) in &SPACES {
            assert_eq!(vectors[name], truth[name][&num(r.id)], "{name} of {:?}", r.id);
        }
    }
    // Rows take the datatype's width: 2 bytes a component for halves, 1 for bytes.
    let info = c.info();
    for &(name, dim, _, datatype, _) in &SPACES {
        assert_eq!(info.memory[name].vectors, N as usize * dim * datatype.width(), "{name}");
    }
}

#[test]
fn values_a_datatype_cannot_hold_are_refused() {
    let db = Database::in_memory();
    let c = db.create_collection("typed", config()).unwrap();
    for (space, dim, at, value) in [
        ("byte_dot", 64, 5, 256.0),
        ("byte_dot", 64, 0, -1.0),
        ("byte_l2", 24, 3, 2.5),
        ("byte_cos", 80, 7, 1000.0),
        ("half_dot", 72, 1, 70000.0),
    ] {
        let mut v = vec![1.0; dim];
        v[at] = value;
        let err = c.upsert(vec![PointStruct::new(1).vector(space, v)]).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, braid::Error::Vector { .. }), "{space}: {text}");
        assert!(text.contains(&format!("component {at}")) && text.contains("cannot hold"), "{space}: {text}");
    }
    assert_eq!(c.info().points_count, 0, "nothing refused was stored");
    // A datatype is fixed for the life of a space.
    let changed = CollectionConfig::new().indexing_threshold_kb(1);
    let changed = SPACES.iter().fold(changed, |c, &(name, dim, d, t, q)| {
        let t = if name == "half" { Datatype::Float32 } else { t };
        c.vector(
            name,
            VectorParams::new(dim, d).hnsw(12, 64).datatype(t).quantization(q).full_scan_threshold_kb(1),
        )
    });
    let err = c.reconfigure(changed).unwrap_err();
    assert!(err.to_string().contains("datatype cannot change (float16 → float32)"), "{err}");
}

#[test]
fn narrow_rows_are_read_back_after_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let (truth, before) = {
        let db = Database::open(dir.path()).unwrap();
        let truth = fill(&db);
        db.collection("typed").unwrap().flush().unwrap();
        let (before, _) = answers(&db, &truth);
        (truth, before)
    };
    let db = Database::open(dir.path()).unwrap();
    assert_eq!(answers(&db, &truth).0, before, "the files hold the rows the searches scored");
    let c = db.collection("typed").unwrap();
    let info = c.info();
    for &(name, dim, _, datatype, _) in &SPACES {
        assert_eq!(info.config.vectors[name].datatype, datatype, "{name}");
        assert_eq!(info.memory[name].vectors_mapped, N as usize * dim * datatype.width(), "{name}");
    }
    // A snapshot holds the narrow files at their width and restores the same answers.
    let snapshots = dir.path().join("snapshots");
    let description = db.snapshot_collection("typed", &snapshots).unwrap();
    let copy = db
        .recover_collection("copy", &snapshots.join(&description.name), description.checksum.as_deref())
        .unwrap();
    assert_eq!(copy.config(), c.config());
    let ids: Vec<PointId> = (0..N).map(PointId::Num).collect();
    let all = |c: &braid::Collection| c.get(&ids[..500], false, true).unwrap();
    assert_eq!(all(&copy), all(&c), "restored rows equal the originals");
    drop(copy);
    // Writes after the reopen append to the narrow files.
    let mut rng = Rng::new(9);
    let v = vector(&mut rng, "byte_dot", 64, 2);
    c.upsert(vec![PointStruct::new(N).vector("byte_dot", v.clone())]).unwrap();
    c.flush().unwrap();
    drop((c, db));
    let db = Database::open(dir.path()).unwrap();
    let got = db.collection("typed").unwrap().get(&[PointId::Num(N)], false, true).unwrap();
    assert_eq!(got[0].vectors.as_ref().unwrap()["byte_dot"], v);
}
