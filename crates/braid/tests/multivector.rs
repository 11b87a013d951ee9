//! Multivector spaces (ColBERT-style lists of vectors, MaxSim): search and the
//! re-ranking pattern against a brute-force MaxSim, updates, deletes, durability
//! (reopen, compaction) and the refusals.

use braid::query::QueryError;
use braid::{
    CollectionConfig, Database, Distance, Error, Filter, MultiVectorParams, PointId, PointStruct,
    PointVectors, Prefetch, Query, QueryRequest, SearchParams, VectorParams, WithVectors, field,
};
use serde_json::json;

const DIM: usize = 16;
const EXACT: SearchParams = SearchParams::EXACT;

struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> f32 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((self.0 >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
    fn vector(&mut self, dim: usize) -> Vec<f32> {
        (0..dim).map(|_| self.next()).collect()
    }
    fn multi(&mut self) -> Vec<Vec<f32>> {
        let n = 2 + (self.next().abs() * 6.0) as usize;
        (0..n).map(|_| self.vector(DIM)).collect()
    }
}

fn normalised(v: &[f32]) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter().map(|x| x / n).collect()
}

/// MaxSim under Cosine, naively.
fn max_sim(query: &[Vec<f32>], doc: &[Vec<f32>]) -> f32 {
    query
        .iter()
        .map(|q| {
            let q = normalised(q);
            doc.iter()
                .map(|d| normalised(d).iter().zip(&q).map(|(a, b)| a * b).sum::<f32>())
                .fold(f32::NEG_INFINITY, f32::max)
        })
        .sum()
}

fn config() -> CollectionConfig {
    CollectionConfig::new()
        .vector("dense", VectorParams::new(DIM, Distance::Cosine))
        .multivector("colbert", MultiVectorParams::new(DIM, Distance::Cosine))
}

fn points(rng: &mut Lcg) -> Vec<(PointStruct, Vec<Vec<f32>>)> {
    (0..300u64)
        .map(|i| {
            let multi = rng.multi();
            let p = PointStruct::new(i)
                .vector("dense", rng.vector(DIM))
                .multivector("colbert", multi.clone())
                .payload(json!({"even": i % 2 == 0}));
            (p, multi)
        })
        .collect()
}

fn ids(hits: &[braid::ScoredPoint]) -> Vec<u64> {
    hits.iter()
        .map(|h| match h.id {
            PointId::Num(n) => n,
            other => panic!("{other}"),
        })
        .collect()
}

fn reference(
    docs: &[Vec<Vec<f32>>],
    query: &[Vec<f32>],
    keep: impl Fn(u64) -> bool,
    limit: usize,
) -> Vec<(u64, f32)> {
    let mut all: Vec<(u64, f32)> =
        (0..docs.len() as u64).filter(|i| keep(*i)).map(|i| (i, max_sim(query, &docs[i as usize]))).collect();
    all.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    all.truncate(limit);
    all
}

fn check(got: &[braid::ScoredPoint], want: &[(u64, f32)], what: &str) {
    assert_eq!(ids(got), want.iter().map(|w| w.0).collect::<Vec<_>>(), "{what}");
    for (g, w) in got.iter().zip(want) {
        assert!((g.score - w.1).abs() < 1e-4, "{what}: {} vs {}", g.score, w.1);
    }
}

#[test]
fn max_sim_search_and_rerank_match_brute_force_and_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Lcg(42);
    let data = points(&mut rng);
    let mut docs: Vec<Vec<Vec<f32>>> = data.iter().map(|(_, m)| m.clone()).collect();
    let query = rng.multi();
    let dense_query = rng.vector(DIM);
    let multi = |q: &[Vec<f32>]| QueryRequest {
        query: Some(Query::Multi(q.to_vec())),
        using: Some("colbert".into()),
        ..QueryRequest::default()
    };
    {
        let db = Database::open(dir.path()).unwrap();
        let c = db.create_collection("docs", config()).unwrap();
        c.upsert(data.into_iter().map(|(p, _)| p).collect()).unwrap();

        check(&c.query(multi(&query).limit(10)).unwrap(), &reference(&docs, &query, |_| true, 10), "search");
        let even = Filter::must([field("even").eq(true)]);
        check(
            &c.query(multi(&query).filter(even).limit(7)).unwrap(),
            &reference(&docs, &query, |i| i % 2 == 0, 7),
            "filtered",
        );
        // The ColBERT pattern: a dense prefetch of 50, re-ranked by MaxSim.
        let prefetch = Prefetch::nearest("dense", dense_query.clone(), 50).params(EXACT);
        let candidates: Vec<u64> = ids(&c
            .query(QueryRequest::nearest("dense", dense_query.clone()).params(EXACT).limit(50))
            .unwrap());
        let rerank = QueryRequest { prefetch: vec![prefetch.clone()], ..multi(&query) }.limit(10);
        check(
            &c.query(rerank).unwrap(),
            &reference(&docs, &query, |i| candidates.contains(&i), 10),
            "re-rank",
        );

        // Updates and deletes of the multivector only.
        let replacement = rng.multi();
        c.update_vectors(vec![PointVectors::new(7u64).multivector("colbert", replacement.clone())]).unwrap();
        docs[7] = replacement;
        c.delete_vectors(vec![PointId::Num(8)], &["colbert"]).unwrap();
        docs[8] = Vec::new();
        let record = c.get(&[PointId::Num(7)], false, WithVectors::All).unwrap().pop().unwrap();
        assert_eq!(record.multi.as_ref().unwrap()["colbert"].len(), docs[7].len());
        assert!(record.vectors.unwrap().contains_key("dense"), "the dense vector stays");
        c.flush().unwrap();
    }
    let live = |i: u64| i != 8;
    // Reopened from the log, then after a checkpoint and a compaction.
    for round in 0..3 {
        let db = Database::open(dir.path()).unwrap();
        let c = db.collection("docs").unwrap();
        let got = c.query(multi(&query).limit(300)).unwrap();
        check(&got, &reference(&docs, &query, live, 300), &format!("after reopen {round}"));
        assert_eq!(c.info().vectors_count["colbert"], 299);
        match round {
            0 => c.sync().unwrap(),
            1 => {
                c.upsert(vec![
                    PointStruct::new(3u64)
                        .vector("dense", vec![1.0; DIM])
                        .multivector("colbert", docs[3].clone()),
                ])
                .unwrap();
                c.compact().unwrap();
            }
            _ => {}
        }
        c.flush().unwrap();
    }
}

#[test]
fn multivector_refusals_are_typed() {
    let db = Database::in_memory();
    let c = db.create_collection("docs", config()).unwrap();
    let good = vec![vec![0.1; DIM], vec![0.2; DIM]];
    // Ragged dimensions, no vectors, NaN, a dense space given a list, a list given a
    // dense space's name: nothing is written.
    let bad_points = vec![
        PointStruct::new(1u64).multivector("colbert", vec![vec![0.1; DIM], vec![0.1; DIM - 1]]),
        PointStruct::new(1u64).multivector("colbert", vec![]),
        PointStruct::new(1u64).multivector("colbert", vec![vec![f32::NAN; DIM]]),
        PointStruct::new(1u64).multivector("dense", good.clone()),
        PointStruct::new(1u64).vector("colbert", vec![0.1; DIM]),
    ];
    for p in bad_points {
        let e = c.upsert(vec![p.clone()]).unwrap_err();
        assert!(
            matches!(e, Error::Vector { .. } | Error::Multivector { .. } | Error::WrongKind { .. }),
            "{p:?}: {e}"
        );
    }
    assert_eq!(c.count(None).unwrap(), 0);
    c.upsert(vec![PointStruct::new(1u64).multivector("colbert", good.clone())]).unwrap();
    // Queries of the wrong kind or shape.
    let q = |query: Query, using: &str| {
        c.query(QueryRequest { query: Some(query), using: Some(using.into()), ..QueryRequest::default() })
    };
    assert!(matches!(
        q(Query::Nearest(vec![0.1; DIM]), "colbert"),
        Err(Error::Query(QueryError::WrongKind { .. }))
    ));
    assert!(matches!(
        q(Query::Multi(good.clone()), "dense"),
        Err(Error::Query(QueryError::WrongKind { .. }))
    ));
    assert!(matches!(
        q(Query::Multi(vec![]), "colbert"),
        Err(Error::Query(QueryError::MultiQuerySize { .. }))
    ));
    assert!(matches!(
        q(Query::Multi(vec![vec![0.1; 3]]), "colbert"),
        Err(Error::Query(QueryError::Vector { .. }))
    ));
    assert_eq!(q(Query::Multi(good), "colbert").unwrap().len(), 1);
    // A name cannot be two kinds.
    let clash = CollectionConfig::new()
        .vector("x", VectorParams::new(4, Distance::Dot))
        .multivector("x", MultiVectorParams::new(4, Distance::Dot));
    assert!(matches!(db.create_collection("clash", clash), Err(Error::InvalidConfig { .. })));
}
