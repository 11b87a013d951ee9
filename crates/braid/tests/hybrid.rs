//! The hybrid-search walk (issue #15) on the embedded database, against references
//! computed naively: BM25 from the tokens (the same tokeniser, the formula written
//! out), dense scores by brute force, fusion over the reference lists.
//!
//! The corpus is made here: passages drawn from a skewed vocabulary (so that some
//! terms are common and some rare, as in text), with random dense vectors.

use std::collections::{BTreeMap, HashSet};

use braid::{
    Bm25, CollectionConfig, Database, Distance, Document, Error, Fusion, PointId, PointStruct, PointVectors,
    Prefetch, QueryRequest, SparseVector, SparseVectorParams, VectorParams, field,
};
use braid_testkit::Rng;
use serde_json::json;

const N: u64 = 3_000;
const DIM: usize = 48;

/// A word list with a Zipf-like draw: word `i` about `1/(i+1)` as often as word 0.
struct Words {
    words: Vec<String>,
    cumulative: Vec<f64>,
}

impl Words {
    fn new() -> Words {
        let stems = [
            "river", "bank", "money", "stone", "light", "water", "music", "paper", "glass", "horse", "city",
            "garden", "winter", "summer", "island", "market", "letter", "mountain", "forest", "engine",
        ];
        let suffixes = ["", "s", "ing", "ed", "er"];
        let mut words: Vec<String> = vec!["the".into(), "of".into(), "and".into(), "a".into()];
        for s in stems {
            for x in suffixes {
                words.push(format!("{s}{x}"));
            }
        }
        for i in 0..300 {
            words.push(format!("w{i}x"));
        }
        let mut cumulative = Vec::new();
        let mut total = 0.0;
        for i in 0..words.len() {
            total += 1.0 / (i as f64 + 1.0);
            cumulative.push(total);
        }
        Words { words, cumulative }
    }

    fn passage(&self, rng: &mut Rng) -> String {
        let len = 3 + (rng.next_u64() % 30) as usize;
        let total = *self.cumulative.last().unwrap();
        (0..len)
            .map(|_| {
                let x = f64::from(rng.uniform()) * total;
                let i = self.cumulative.partition_point(|&c| c < x).min(self.words.len() - 1);
                self.words[i].clone()
            })
            .collect::<Vec<_>>()
            .join(if rng.next_u64().is_multiple_of(5) { ", " } else { " " })
    }
}

/// Which ids a condition passes, by definition.
type Reference<'a> = Box<dyn Fn(u64) -> bool + 'a>;

/// The text index of the walk: English stopwords and stemming.
fn text_options() -> braid::text::TextOptions {
    braid::text::TextOptions {
        stopwords: Some(braid::text::Stopwords { languages: vec!["english".into()], custom: vec![] }),
        stemmer: Some("english".into()),
        phrase_matching: true,
        ..Default::default()
    }
}

fn config() -> CollectionConfig {
    CollectionConfig::new()
        .vector("dense", VectorParams::new(DIM, Distance::Cosine).hnsw(16, 64))
        .sparse_vector("bm25", SparseVectorParams::idf())
        // Graphs, not exact scans, answer dense searches here.
        .indexing_threshold_kb(1)
}

struct Corpus {
    texts: BTreeMap<u64, String>,
    dense: BTreeMap<u64, Vec<f32>>,
}

impl Corpus {
    fn group(id: u64) -> u64 {
        id % 4
    }

    /// Reference BM25: Qdrant's weights for each document's tokens, IDF over the
    /// documents held, a query's distinct tokens weighted 1; scored in f64.
    fn bm25(&self, query: &str, allowed: impl Fn(u64) -> bool, limit: usize) -> Vec<(u64, f64)> {
        let bm25 = Bm25::new();
        let docs: BTreeMap<u64, Vec<String>> =
            self.texts.iter().map(|(id, t)| (*id, bm25.tokens(t))).collect();
        let n = docs.len() as f64;
        let terms: HashSet<String> = bm25.tokens(query).into_iter().collect();
        let mut scores = Vec::new();
        for (id, tokens) in &docs {
            if !allowed(*id) {
                continue;
            }
            let len = tokens.len() as f64;
            let mut score = None;
            for term in &terms {
                let tf = tokens.iter().filter(|t| *t == term).count() as f64;
                if tf == 0.0 {
                    continue;
                }
                let df = docs.values().filter(|d| d.contains(term)).count() as f64;
                let idf = ((n - df + 0.5) / (df + 0.5) + 1.0).ln();
                let w = tf * 2.2 / (tf + 1.2 * (0.25 + 0.75 * len / 256.0));
                *score.get_or_insert(0.0) += idf * w;
            }
            if let Some(s) = score {
                scores.push((*id, s));
            }
        }
        rank(scores, limit)
    }

    fn cosine(&self, q: &[f32], allowed: impl Fn(u64) -> bool, limit: usize) -> Vec<(u64, f64)> {
        let norm = |v: &[f32]| v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
        let scores = self
            .dense
            .iter()
            .filter(|(id, _)| allowed(**id))
            .map(|(id, v)| {
                let dot: f64 = v.iter().zip(q).map(|(a, b)| f64::from(*a) * f64::from(*b)).sum();
                (*id, dot / (norm(v) * norm(q)))
            })
            .collect();
        rank(scores, limit)
    }
}

fn rank(mut scores: Vec<(u64, f64)>, limit: usize) -> Vec<(u64, f64)> {
    scores.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    scores.truncate(limit);
    scores
}

fn num(id: PointId) -> u64 {
    match id {
        PointId::Num(n) => n,
        PointId::Uuid(_) => panic!("numeric ids only here"),
    }
}

/// Braid's answer equals the reference: same scores (to f32 rounding) and the same
/// ids, where a run of scores equal to rounding may come in any order.
fn same(got: &[braid::ScoredPoint], want: &[(u64, f64)], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: {} results, want {}", got.len(), want.len());
    for (g, w) in got.iter().zip(want) {
        let tol = 1e-4 * w.1.abs().max(1.0);
        assert!(
            (f64::from(g.score) - w.1).abs() <= tol,
            "{what}: score {} for {:?}, want {} for {}",
            g.score,
            g.id,
            w.1,
            w.0
        );
    }
    let tie = |a: f64, b: f64| (a - b).abs() <= 1e-4 * a.abs().max(1.0);
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        if num(g.id) != w.0 {
            // Only a near-tie may reorder: some reference entry with a near-equal score
            // has this id, and the cut-off does not separate unequal scores.
            let near: Vec<u64> = want.iter().filter(|x| tie(x.1, w.1)).map(|x| x.0).collect();
            let last = want.last().unwrap().1;
            assert!(
                near.contains(&num(g.id)) || tie(w.1, last),
                "{what}: rank {i} is {:?}, want {}",
                g.id,
                w.0
            );
        }
    }
}

fn build(db: &Database, rng: &mut Rng, words: &Words) -> Corpus {
    let c = db.create_collection("docs", config()).unwrap();
    let mut corpus = Corpus { texts: BTreeMap::new(), dense: BTreeMap::new() };
    let bm25 = Bm25::new();
    let mut points = Vec::new();
    for id in 0..N {
        let text = words.passage(rng);
        let dense = rng.vector(DIM);
        let p = PointStruct::new(id)
            .vector("dense", dense.clone())
            .payload(json!({"group": Corpus::group(id), "text": text}));
        // Half the points come with the vector a client computed, half as text for
        // Braid to embed: both must store the same vector.
        let p = if id % 2 == 0 {
            p.document("bm25", Document::new(text.clone(), "bm25"))
        } else {
            p.sparse("bm25", bm25.document(&text))
        };
        points.push(p);
        corpus.texts.insert(id, text);
        corpus.dense.insert(id, dense);
        if points.len() == 500 {
            c.upsert(std::mem::take(&mut points)).unwrap();
        }
    }
    corpus
}

fn keyword(c: &braid::Collection, text: &str, limit: usize) -> Vec<braid::ScoredPoint> {
    c.query(QueryRequest::document("bm25", Document::new(text, "bm25")).limit(limit)).unwrap()
}

/// Every answer of the walk, for comparing before and after a reopen and a
/// compaction (dense leaves exact: a compaction rebuilds the graphs).
fn answers(c: &braid::Collection, queries: &[(String, Vec<f32>)]) -> Vec<Vec<(PointId, f32)>> {
    let exact = braid::SearchParams::EXACT;
    let mut out = Vec::new();
    for (text, q) in queries {
        let in_group = braid::Filter::must([field("group").eq(1)]);
        let prefetch = |filter: &braid::Filter| {
            vec![
                Prefetch::document("bm25", Document::new(text.clone(), "bm25"), 40).filter(filter.clone()),
                Prefetch::nearest("dense", q.clone(), 40).filter(filter.clone()).params(exact),
            ]
        };
        for r in [
            keyword(c, text, 10),
            c.query(QueryRequest::nearest("dense", q.clone()).params(exact).limit(10)).unwrap(),
            c.query(QueryRequest::fusion(Fusion::rrf(), prefetch(&in_group)).limit(10)).unwrap(),
            c.query(QueryRequest::fusion(Fusion::dbsf(), prefetch(&in_group)).limit(10)).unwrap(),
            // The text index (recreated with its options at reopen and compaction).
            c.query(
                QueryRequest::nearest("dense", q.clone())
                    .filter(braid::Filter::must([field("text").text_any(text.clone())]))
                    .params(exact)
                    .limit(10),
            )
            .unwrap(),
        ] {
            out.push(r.into_iter().map(|p| (p.id, p.score)).collect());
        }
    }
    out
}

#[test]
fn the_hybrid_walk_answers_as_the_references_do_and_survives_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng::new(15);
    let words = Words::new();
    let db = Database::open(dir.path()).unwrap();
    let mut corpus = build(&db, &mut rng, &words);
    let c = db.collection("docs").unwrap();
    c.create_text_index("text", text_options()).unwrap();
    c.create_payload_index("group", braid::IndexKind::Integer).unwrap();

    // The two ways in stored the same vectors.
    let records = c.get(&[PointId::Num(0), PointId::Num(1)], false, true).unwrap();
    for r in &records {
        let want = Bm25::new().document(&corpus.texts[&num(r.id)]);
        assert_eq!(r.sparse.as_ref().unwrap()["bm25"], want);
    }

    assert_eq!(c.vector_count("bm25").unwrap(), N as usize);
    // explain() names the sparse path: the lists unfiltered, a scan for a small filter.
    let plan =
        c.explain(&QueryRequest::document("bm25", Document::new("river bank", "bm25"))).unwrap().to_string();
    assert!(
        plan.contains("sparse nearest in `bm25`")
            && plan.contains("IDF")
            && plan.contains("posting lists")
            && plan.contains("MaxScore touched"),
        "{plan}"
    );
    let few = braid::Filter::must([braid::Condition::has_id(0..5u64)]);
    let plan = c
        .explain(&QueryRequest::document("bm25", Document::new("river bank", "bm25")).filter(few))
        .unwrap()
        .to_string();
    assert!(plan.contains("Scan: score the 5 points"), "{plan}");

    let queries: Vec<(String, Vec<f32>)> =
        (0..12).map(|_| (words.passage(&mut rng), rng.vector(DIM))).collect();
    for (text, q) in &queries {
        // 1. Keyword search alone: exact top-k.
        same(&keyword(&c, text, 10), &corpus.bm25(text, |_| true, 10), "bm25");
        // Filtered keyword search, both paths: a small bitmap scanned point by point,
        // a large one and a per-point filter walked through the lists.
        let few: Vec<u64> = (0..N).step_by(97).collect();
        let filtered = |f: braid::Filter| {
            c.query(QueryRequest::document("bm25", Document::new(text.clone(), "bm25")).filter(f).limit(10))
                .unwrap()
        };
        same(
            &filtered(braid::Filter::must([braid::Condition::has_id(few.clone())])),
            &corpus.bm25(text, |id| few.contains(&id), 10),
            "bm25, few ids",
        );
        same(
            &filtered(braid::Filter::must([field("group").eq(1)])),
            &corpus.bm25(text, |id| id % 4 == 1, 10),
            "bm25, group",
        );
        let stems = braid::text::Tokenizer::new(text_options()).unwrap();
        let river = |id: u64| stems.document_tokens(&corpus.texts[&id]).contains(&"river".to_string());
        // `prefix` is checked per point (no index answers it): the lists path with a
        // predicate; the text and integer indexes make the other parts bitmaps.
        let mixed = braid::Filter::must([field("group").eq(1)])
            .and(braid::Filter::must_not([field("text").text_any("rivers"), field("text").prefix("the")]));
        let keep = |id: u64| id % 4 == 1 && !river(id) && !corpus.texts[&id].starts_with("the");
        same(&filtered(mixed), &corpus.bm25(text, keep, 10), "bm25, group, no river, not starting with the");
        // A client-computed query vector gives the same answer.
        let client = c.query(QueryRequest::sparse("bm25", Bm25::new().query(text)).limit(10)).unwrap();
        assert_eq!(client, keyword(&c, text, 10));
        // 2. Dense alone (graph; recall, not equality).
        let dense = c.query(QueryRequest::nearest("dense", q.clone()).limit(10)).unwrap();
        let truth: HashSet<u64> = corpus.cosine(q, |_| true, 10).into_iter().map(|x| x.0).collect();
        let found = dense.iter().filter(|p| truth.contains(&num(p.id))).count();
        assert!(found >= 8, "dense recall {found}/10");
        // 3. Hybrid, a filter pushed into both prefetches; exact leaves so that the
        // reference lists are the engine's.
        let exact = braid::SearchParams::EXACT;
        let in_group = |id: u64| Corpus::group(id) == 1;
        let filter = braid::Filter::must([field("group").eq(1)]);
        let sparse_ref = corpus.bm25(text, in_group, 40);
        let dense_ref = corpus.cosine(q, in_group, 40);
        let lists: Vec<Vec<(u64, f32)>> = [&sparse_ref, &dense_ref]
            .iter()
            .map(|l| l.iter().map(|(id, s)| (*id, *s as f32)).collect())
            .collect();
        let prefetch = vec![
            Prefetch::document("bm25", Document::new(text.clone(), "bm25"), 40),
            Prefetch::nearest("dense", q.clone(), 40).params(exact),
        ];
        let rrf = c
            .query(QueryRequest::fusion(Fusion::rrf(), prefetch.clone()).filter(filter.clone()).limit(10))
            .unwrap();
        let want: Vec<(u64, f64)> = braid::fusion::qdrant::rrf(&lists, 2, None)
            .unwrap()
            .into_iter()
            .take(10)
            .map(|f| (f.id, f64::from(f.score)))
            .collect();
        same(&rrf, &want, "rrf");
        assert!(rrf.iter().all(|p| in_group(num(p.id))));
        let dbsf = c
            .query(QueryRequest::fusion(Fusion::dbsf(), prefetch.clone()).filter(filter.clone()).limit(10))
            .unwrap();
        let want: Vec<(u64, f64)> = braid::fusion::qdrant::dbsf(&lists, None)
            .unwrap()
            .into_iter()
            .take(10)
            .map(|f| (f.id, f64::from(f.score)))
            .collect();
        same(&dbsf, &want, "dbsf");
        // The nested form: fuse, then re-score the fused candidates by the dense space.
        let nested =
            QueryRequest::rescore("dense", q.clone(), vec![Prefetch::fusion(Fusion::rrf(), prefetch, 30)])
                .filter(filter.clone())
                .limit(10);
        let fused: HashSet<u64> =
            braid::fusion::qdrant::rrf(&lists, 2, None).unwrap().into_iter().take(30).map(|f| f.id).collect();
        same(
            &c.query(nested).unwrap(),
            &corpus.cosine(q, |id| fused.contains(&id), 10),
            "fuse then re-score",
        );
        // 4. Full-text filters on the indexed (stemmed, stopworded) text field inside
        // a dense search: the index's tokens decide.
        let tok = braid::text::Tokenizer::new(text_options()).unwrap();
        let words: Vec<String> = tok.query_tokens(text);
        let doc_tokens = |id: u64| tok.document_tokens(&corpus.texts[&id]);
        let two: String =
            text.split([' ', ',']).filter(|w| !w.is_empty()).take(2).collect::<Vec<_>>().join(" ");
        let pair = tok.query_tokens(&two);
        let cases: Vec<(braid::Condition, Reference<'_>)> = vec![
            (
                field("text").text(text.clone()),
                Box::new(|id| !words.is_empty() && words.iter().all(|w| doc_tokens(id).contains(w))),
            ),
            (
                field("text").text_any(text.clone()),
                Box::new(|id| words.iter().any(|w| doc_tokens(id).contains(w))),
            ),
            (
                field("text").phrase(two.clone()),
                Box::new(|id| {
                    !pair.is_empty()
                        && tok.query_tokens(&corpus.texts[&id]).windows(pair.len()).any(|w| w == pair)
                }),
            ),
        ];
        for (condition, reference) in cases {
            let got = c
                .query(
                    QueryRequest::nearest("dense", q.clone())
                        .filter(braid::Filter::must([condition.clone()]))
                        .params(exact)
                        .limit(10),
                )
                .unwrap();
            same(&got, &corpus.cosine(q, reference, 10), &format!("dense with {condition:?}"));
        }
    }

    // 5. Rewrite some documents (sparse changes, dense stays), delete others.
    let rewritten: Vec<u64> = (0..N).step_by(7).collect();
    let mut updates = Vec::new();
    for id in &rewritten {
        let text = words.passage(&mut rng);
        corpus.texts.insert(*id, text.clone());
        updates.push(PointVectors::new(*id).document("bm25", Document::new(text, "bm25")));
    }
    for chunk in updates.chunks(200) {
        c.update_vectors(chunk.to_vec()).unwrap();
    }
    let deleted: Vec<PointId> = (0..N).step_by(11).map(PointId::Num).collect();
    c.delete(deleted.clone()).unwrap();
    for id in &deleted {
        corpus.texts.remove(&num(*id));
        corpus.dense.remove(&num(*id));
    }
    let before_dense = c.get(&[PointId::Num(7)], false, true).unwrap();
    assert_eq!(before_dense[0].vectors.as_ref().unwrap()["dense"].len(), DIM, "the dense vector stays");
    for (text, _) in &queries {
        same(&keyword(&c, text, 10), &corpus.bm25(text, |_| true, 10), "bm25 after updates");
    }
    let before = answers(&c, &queries);
    c.flush().unwrap();
    drop(c);
    drop(db);
    let db = Database::open(dir.path()).unwrap();
    let c = db.collection("docs").unwrap();
    assert_eq!(answers(&c, &queries), before, "the same answers after a reopen");
    c.optimize().unwrap();
    assert_eq!(answers(&c, &queries), before, "the same answers after a compaction");
    drop(c);
    drop(db);
    let db = Database::open(dir.path()).unwrap();
    let c = db.collection("docs").unwrap();
    assert_eq!(answers(&c, &queries), before, "the same answers after a compaction and a reopen");
    assert_eq!(c.info().text_indexes["text"], text_options());
    for (text, _) in &queries {
        same(&keyword(&c, text, 10), &corpus.bm25(text, |_| true, 10), "bm25 after reopen");
    }
}

#[test]
fn sparse_bad_input_is_refused_and_changes_nothing() {
    let db = Database::in_memory();
    let c = db.create_collection("docs", config()).unwrap();
    c.upsert(vec![
        PointStruct::new(1)
            .vector("dense", vec![1.0; DIM])
            .document("bm25", Document::new("river bank", "bm25")),
    ])
    .unwrap();
    let before = c.scroll(None, 100, None, true, true).unwrap();
    let sv = |i: Vec<u32>, v: Vec<f32>| SparseVector::new(i, v);
    assert!(matches!(sv(vec![1, 1], vec![1.0, 2.0]), Err(braid::SparseError::Duplicate { index: 1 })));
    assert!(matches!(sv(vec![1], vec![f32::NAN]), Err(braid::SparseError::NotFinite { .. })));
    let one = sv(vec![3], vec![1.0]).unwrap();
    let cases: Vec<(&str, Result<(), Error>)> = vec![
        (
            "dense vector to a sparse space",
            c.upsert(vec![PointStruct::new(2).vector("bm25", vec![1.0; DIM])]),
        ),
        ("sparse vector to a dense space", c.upsert(vec![PointStruct::new(2).sparse("dense", one.clone())])),
        ("unknown sparse space", c.upsert(vec![PointStruct::new(2).sparse("nope", one.clone())])),
        ("unknown model", c.upsert(vec![PointStruct::new(2).document("bm25", Document::new("x", "splade"))])),
        (
            "oversized document",
            c.upsert(vec![
                PointStruct::new(2)
                    .document("bm25", Document::new("a ".repeat(braid::text::MAX_DOCUMENT_BYTES), "bm25")),
            ]),
        ),
        (
            "both a vector and a document",
            c.upsert(vec![
                PointStruct::new(2).sparse("bm25", one.clone()).document("bm25", Document::new("x", "bm25")),
            ]),
        ),
        (
            "update of a missing point",
            c.update_vectors(vec![PointVectors::new(9).sparse("bm25", one.clone())]),
        ),
    ];
    for (what, result) in cases {
        assert!(result.is_err(), "{what} was accepted");
    }
    assert!(matches!(
        c.upsert(vec![PointStruct::new(2).document("bm25", Document::new("x", "splade"))]),
        Err(Error::Document { .. })
    ));
    assert!(matches!(
        c.upsert(vec![PointStruct::new(2).vector("bm25", vec![1.0; DIM])]),
        Err(Error::WrongKind { .. })
    ));
    let queries = vec![
        QueryRequest::sparse("dense", one.clone()),
        QueryRequest::nearest("bm25", vec![1.0; DIM]),
        QueryRequest { using: None, ..QueryRequest::sparse("bm25", one.clone()) },
        QueryRequest::document("bm25", Document::new("x", "nope")),
        QueryRequest::document("dense", Document::new("x", "bm25")),
    ];
    for q in queries {
        assert!(matches!(c.query(q.clone()), Err(Error::Query(_))), "{q:?} was accepted");
    }
    assert_eq!(c.scroll(None, 100, None, true, true).unwrap(), before);
    // An empty sparse vector is stored (as in Qdrant) and found by nothing.
    c.upsert(vec![PointStruct::new(3).sparse("bm25", SparseVector::empty())]).unwrap();
    assert!(c.query(QueryRequest::sparse("bm25", one)).unwrap().is_empty());
    let hits = c.query(QueryRequest::document("bm25", Document::new("rivers", "bm25"))).unwrap();
    assert_eq!(hits.iter().map(|h| h.id).collect::<Vec<_>>(), vec![PointId::Num(1)]);
    // Deleting the sparse vector of a point removes it from sparse results only.
    c.delete_vectors(vec![PointId::Num(1)], &["bm25"]).unwrap();
    assert!(c.query(QueryRequest::document("bm25", Document::new("rivers", "bm25"))).unwrap().is_empty());
    assert_eq!(c.query(QueryRequest::nearest("dense", vec![1.0; DIM])).unwrap().len(), 1);
}
