//! Qdrant's two size thresholds: a collection holding less than
//! `indexing_threshold` kilobytes of a space's vectors, and a filter matching less
//! than `full_scan_threshold` kilobytes of them, are answered exactly — as Qdrant
//! answers an unindexed segment or a small filtered set by a full scan.

use braid::{
    CollectionConfig, DEFAULT_THRESHOLD_KB, Database, Distance, Filter, IndexKind, PointId, PointStruct,
    QueryRequest, SearchParams, SearchRequest, VectorParams, field,
};
use braid_testkit::Rng;
use serde_json::json;

const DIM: usize = 64;
const N: u64 = 2_000;

/// Clustered vectors and queries of two shapes: near the data, and with one large
/// component (the shape that walked graphs and coded ranking get wrong most often).
fn data(rng: &mut Rng) -> (Vec<Vec<f32>>, Vec<Vec<f32>>) {
    let centres: Vec<Vec<f32>> = (0..20).map(|_| rng.vector(DIM)).collect();
    let points = (0..N).map(|i| rng.around(&centres[i as usize % 20], 0.3)).collect();
    let mut queries: Vec<Vec<f32>> = (0..20).map(|i| rng.around(&centres[i % 20], 0.3)).collect();
    for i in 0..20 {
        let mut q = rng.vector(DIM);
        q[i % DIM] = 25.0;
        queries.push(q);
    }
    (points, queries)
}

fn fill(db: &Database, name: &str, config: CollectionConfig, points: &[Vec<f32>]) -> braid::Collection {
    let c = db.create_collection(name, config).unwrap();
    c.create_payload_index("cat", IndexKind::Integer).unwrap();
    c.upsert(
        points
            .iter()
            .enumerate()
            .map(|(i, v)| PointStruct::new(i as u64).vector("v", v.clone()).payload(json!({"cat": i % 50})))
            .collect(),
    )
    .unwrap();
    c
}

fn ids(hits: &[braid::ScoredPoint]) -> Vec<PointId> {
    hits.iter().map(|h| h.id).collect()
}

fn plan(c: &braid::Collection, q: &[f32], filter: Option<Filter>) -> String {
    let mut request = QueryRequest::nearest("v", q.to_vec()).limit(10);
    request.filter = filter;
    c.explain(&request).unwrap().to_string()
}

#[test]
fn small_collections_and_small_filters_are_answered_exactly() {
    let mut rng = Rng::new(5);
    let (points, queries) = data(&mut rng);
    let db = Database::in_memory();
    // 2,000 × 64 × 4 B = 500 KB: below Qdrant's default indexing threshold.
    let small = fill(
        &db,
        "small",
        CollectionConfig::new().vector("v", VectorParams::new(DIM, Distance::Cosine)),
        &points,
    );
    assert_eq!(small.config().indexing_threshold_kb, DEFAULT_THRESHOLD_KB);
    let rare = Filter::must([field("cat").eq(7)]);
    for q in &queries {
        let plain = SearchRequest::new("v", q.clone()).limit(10);
        let exact = plain.clone().params(SearchParams::EXACT);
        assert_eq!(
            small.search(&plain).unwrap(),
            small.search(&exact).unwrap(),
            "a small collection is exact"
        );
    }
    assert!(plan(&small, &queries[0], None).contains("Exact: "), "{}", plan(&small, &queries[0], None));
    assert!(plan(&small, &queries[0], None).contains("indexing_threshold"));

    // The same points with the threshold below their size: the graph serves them, and
    // a filter matching 40 points (10 KB, below the default full-scan threshold) is
    // still answered exactly; with that threshold at 1 KB the planner's costs decide.
    let indexed = CollectionConfig::new().indexing_threshold_kb(1);
    let walked =
        fill(&db, "walked", indexed.clone().vector("v", VectorParams::new(DIM, Distance::Cosine)), &points);
    let unfiltered = plan(&walked, &queries[0], None);
    assert!(unfiltered.contains("Graph: "), "{unfiltered}");
    let filtered = plan(&walked, &queries[0], Some(rare.clone()));
    assert!(filtered.contains("Exact: ") && filtered.contains("full_scan_threshold"), "{filtered}");
    for q in &queries {
        let plain = SearchRequest::new("v", q.clone()).limit(10).filter(rare.clone());
        let exact = plain.clone().params(SearchParams::EXACT);
        assert_eq!(ids(&walked.search(&plain).unwrap()), ids(&walked.search(&exact).unwrap()));
    }
    let costed = fill(
        &db,
        "costed",
        indexed.vector("v", VectorParams::new(DIM, Distance::Cosine).full_scan_threshold_kb(1)),
        &points,
    );
    let filtered = plan(&costed, &queries[0], Some(rare));
    assert!(!filtered.contains("Exact: "), "{filtered}");

    // 0 is Qdrant's "never index": always exact.
    let never = fill(
        &db,
        "never",
        CollectionConfig::new()
            .indexing_threshold_kb(0)
            .vector("v", VectorParams::new(DIM, Distance::Cosine)),
        &points,
    );
    assert!(plan(&never, &queries[0], None).contains("Exact: "));
}

#[test]
fn thresholds_are_part_of_the_stored_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let config = CollectionConfig::new()
        .indexing_threshold_kb(123)
        .vector("v", VectorParams::new(4, Distance::Dot).full_scan_threshold_kb(45));
    {
        let db = Database::open(dir.path()).unwrap();
        db.create_collection("c", config.clone()).unwrap();
        // Another threshold is another configuration.
        let other = config.clone().indexing_threshold_kb(124);
        assert!(matches!(db.get_or_create("c", other), Err(braid::Error::CollectionConflict { .. })));
    }
    let db = Database::open(dir.path()).unwrap();
    let read = db.collection("c").unwrap().config();
    assert_eq!(read, config);
    assert_eq!(read.vectors["v"].hnsw.full_scan_threshold_kb, 45);
}
