//! Payload links (Qdrant's `payload_m`): a collection with a keyword index links each
//! point among the points sharing its value, filtered searches on that field walk the
//! links and find the filtered nearest, and the links follow index creation and
//! removal, payload changes, reconfiguration, a reopen and a compaction.

use std::collections::HashSet;

use braid::{
    CollectionConfig, Database, Distance, Filter, IndexKind, PointId, PointStruct, QueryRequest,
    SearchParams, SearchRequest, VectorParams, field,
};
use braid_testkit::Rng;
use serde_json::json;

const DIM: usize = 32;
const N: u64 = 3_000;
const COLOURS: u64 = 4;

/// Clustered vectors; each point's colour is drawn independently of its vector, so a
/// colour's points are scattered over every cluster (the hard case for a filtered walk).
fn points(seed: u64) -> (Vec<PointStruct>, Vec<Vec<f32>>) {
    let mut rng = Rng::new(seed);
    let centres: Vec<Vec<f32>> = (0..16).map(|_| rng.vector(DIM)).collect();
    let points = (0..N)
        .map(|i| {
            let colour = rng.next_u64() % COLOURS;
            PointStruct::new(i)
                .vector("v", rng.around(&centres[i as usize % 16], 0.4))
                .payload(json!({"colour": format!("c{colour}"), "n": i}))
        })
        .collect();
    let queries = (0..30).map(|i| rng.around(&centres[i % 16], 0.4)).collect();
    (points, queries)
}

fn config(params: VectorParams) -> CollectionConfig {
    // Thresholds of 1 KB: the graph answers, as it would for a large collection.
    CollectionConfig::new().indexing_threshold_kb(1).vector("v", params.hnsw(8, 64).full_scan_threshold_kb(1))
}

/// The filtered graph walk's estimated cost in the plan of a search filtered by one
/// colour.
fn walk_cost(c: &braid::Collection, q: &[f32]) -> f64 {
    let mut request = QueryRequest::nearest("v", q.to_vec()).limit(10);
    request.filter = Some(Filter::must([field("colour").eq("c1")]));
    let plan = c.explain(&request).unwrap().to_string();
    let at = plan.find("filtered graph ≈ ").unwrap_or_else(|| panic!("{plan}")) + "filtered graph ≈ ".len();
    plan[at..].split(|ch: char| !ch.is_ascii_digit()).next().unwrap().parse().unwrap()
}

fn graph_bytes(c: &braid::Collection) -> usize {
    c.info().memory["v"].graph
}

/// Mean recall@10 of searches filtered by one colour each, against the exact answer;
/// every hit must hold the colour.
fn recall(c: &braid::Collection, queries: &[Vec<f32>]) -> f64 {
    let mut total = 0.0;
    for (i, q) in queries.iter().enumerate() {
        let colour = format!("c{}", i as u64 % COLOURS);
        let filter = Filter::must([field("colour").eq(colour.as_str())]);
        let request = SearchRequest::new("v", q.clone())
            .limit(10)
            .filter(filter.clone())
            .params(SearchParams { hnsw_ef: Some(24), ..SearchParams::default() });
        let found = c.search(&request).unwrap();
        let exact = c.search(&request.clone().params(SearchParams::EXACT)).unwrap();
        let ids: Vec<PointId> = found.iter().map(|h| h.id).collect();
        for record in c.get(&ids, true, false).unwrap() {
            assert_eq!(record.payload.unwrap()["colour"], json!(colour), "only matching points");
        }
        let truth: HashSet<PointId> = exact.iter().map(|h| h.id).collect();
        total += found.iter().filter(|h| truth.contains(&h.id)).count() as f64 / truth.len() as f64;
    }
    total / queries.len() as f64
}

#[test]
fn links_follow_the_index_and_serve_filtered_searches() {
    let (points, queries) = points(3);
    let db = Database::in_memory();
    let c = db.create_collection("c", config(VectorParams::new(DIM, Distance::Cosine))).unwrap();
    c.upsert(points.clone()).unwrap();
    let bare = graph_bytes(&c);
    let unlinked = recall(&c, &queries);

    // Creating the index links every point; the graph grows by the group's lists.
    c.create_payload_index("colour", IndexKind::Keyword).unwrap();
    let linked_bytes = graph_bytes(&c);
    assert!(linked_bytes > bare + (N as usize) * 4 * 16, "{bare} → {linked_bytes}");
    let linked = recall(&c, &queries);
    assert!(linked >= 0.95, "recall@10 along payload links {linked} (without: {unlinked})");
    let along = walk_cost(&c, &queries[0]);

    // A float index links nothing; dropping the keyword index drops the links.
    c.create_payload_index("n", IndexKind::Float).unwrap();
    assert_eq!(graph_bytes(&c), linked_bytes);
    assert!(c.delete_payload_index("colour").unwrap());
    assert_eq!(graph_bytes(&c), bare);

    // `payload_m: 0` builds none; setting it back links again.
    c.create_payload_index("colour", IndexKind::Keyword).unwrap();
    assert_eq!(graph_bytes(&c), linked_bytes);
    let mut none = c.config();
    none.vectors.get_mut("v").unwrap().hnsw.payload_m = Some(0);
    c.reconfigure(none).unwrap();
    assert_eq!(graph_bytes(&c), bare);
    // The planner prices the walk without links as a two-hop one.
    let two_hop = walk_cost(&c, &queries[0]);
    let ratio = two_hop / along;
    let expected = braid::hnsw::TWO_HOP_COST / braid::hnsw::GROUP_WALK_COST;
    assert!((ratio - expected).abs() < 0.05, "{two_hop} / {along}");
    let mut wider = c.config();
    wider.vectors.get_mut("v").unwrap().hnsw.payload_m = Some(12);
    c.reconfigure(wider).unwrap();
    assert!(graph_bytes(&c) > linked_bytes);
    assert!(recall(&c, &queries) >= 0.95);
}

#[test]
fn a_changed_value_is_found_by_its_new_filter() {
    let (points, _) = points(5);
    let db = Database::in_memory();
    let c = db.create_collection("c", config(VectorParams::new(DIM, Distance::Cosine))).unwrap();
    c.create_payload_index("colour", IndexKind::Keyword).unwrap();
    c.upsert(points.clone()).unwrap();
    // Move a tenth of the points to a new colour (their links are made again, among
    // their new peers): filtered by it, each is its own nearest.
    let moved: Vec<u64> = (0..N).step_by(10).collect();
    let ids: Vec<PointId> = moved.iter().map(|&i| PointId::Num(i)).collect();
    c.set_payload(ids, json!({"colour": "new"})).unwrap();
    let filter = Filter::must([field("colour").eq("new")]);
    let mut found_self = 0;
    for &i in &moved {
        let v = points[i as usize].vectors["v"].clone();
        let request = SearchRequest::new("v", v)
            .limit(1)
            .filter(filter.clone())
            .params(SearchParams { hnsw_ef: Some(16), ..SearchParams::default() });
        let hits = c.search(&request).unwrap();
        found_self += usize::from(hits.first().is_some_and(|h| h.id == PointId::Num(i)));
    }
    assert!(found_self as f64 >= 0.95 * moved.len() as f64, "{found_self} of {}", moved.len());
}

#[test]
fn links_survive_a_reopen_and_a_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let (points, queries) = points(7);
    let before = {
        let db = Database::open(dir.path()).unwrap();
        let c = db.create_collection("c", config(VectorParams::new(DIM, Distance::Cosine))).unwrap();
        c.create_payload_index("colour", IndexKind::Keyword).unwrap();
        c.upsert(points[..2000].to_vec()).unwrap();
        c.flush().unwrap();
        // Logged after the checkpoint: linked again as the log is replayed.
        c.upsert(points[2000..].to_vec()).unwrap();
        (graph_bytes(&c), recall(&c, &queries))
    };
    let db = Database::open(dir.path()).unwrap();
    let c = db.collection("c").unwrap();
    assert!(before.1 >= 0.95, "{before:?}");
    assert_eq!(graph_bytes(&c), before.0);
    assert_eq!(recall(&c, &queries), before.1);
    c.delete((0..N).step_by(3).map(PointId::Num).collect::<Vec<_>>()).unwrap();
    c.compact().unwrap();
    assert!(recall(&c, &queries) >= 0.95);
}

#[test]
fn a_walk_along_a_group_returns_only_points_with_a_vector_in_its_space() {
    let (points, queries) = points(11);
    let db = Database::in_memory();
    let params = VectorParams::new(DIM, Distance::Cosine);
    let c = db.create_collection("c", config(params).vector("w", params)).unwrap();
    c.create_payload_index("colour", IndexKind::Keyword).unwrap();
    // Every point has `w`; one in three lacks `v`: half of those never had it, half lose
    // it after being linked (their nodes stay in the graph and its group). The colour's
    // set holds them all, space `v` does not, so a search in `v` must never return them.
    let lacks_v = |i: u64| i.is_multiple_of(3);
    let points = points
        .into_iter()
        .map(|mut p| {
            let v = p.vectors["v"].clone();
            let PointId::Num(i) = p.id else { unreachable!("numeric ids") };
            if i.is_multiple_of(6) {
                p.vectors.remove("v");
            }
            p.vector("w", v)
        })
        .collect();
    c.upsert(points).unwrap();
    let dropped: Vec<PointId> = (0..N).filter(|i| i % 6 == 3).map(PointId::Num).collect();
    c.delete_vectors(dropped, &["v"]).unwrap();
    let mut recall = 0.0;
    for (i, q) in queries.iter().enumerate() {
        let filter = Filter::must([field("colour").eq(format!("c{}", i as u64 % COLOURS).as_str())]);
        let request = SearchRequest::new("v", q.clone())
            .limit(10)
            .filter(filter)
            .params(SearchParams { hnsw_ef: Some(32), ..SearchParams::default() });
        let plan = c.explain(&request.to_query().request).unwrap().to_string();
        assert!(plan.contains("Graph:"), "the group is walked: {plan}");
        let found = c.search(&request).unwrap();
        assert_eq!(found.len(), 10);
        assert!(found.iter().all(|h| matches!(h.id, PointId::Num(i) if !lacks_v(i))), "{found:?}");
        let exact: HashSet<PointId> =
            c.search(&request.clone().params(SearchParams::EXACT)).unwrap().iter().map(|h| h.id).collect();
        recall += found.iter().filter(|h| exact.contains(&h.id)).count() as f64 / 10.0;
    }
    assert!(recall / queries.len() as f64 >= 0.9, "recall@10 {}", recall / queries.len() as f64);
}
