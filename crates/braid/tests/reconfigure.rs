//! Changing a live collection: vector spaces added and removed, graph settings
//! rebuilt beside the serving graph while writes go on, quantization switched, bad
//! changes refused — and all of it as it was after a reopen.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use braid::{
    CollectionConfig, Database, Distance, Error, MultiVectorParams, PointStruct, Quantization, SearchParams,
    SearchRequest, SparseVector, SparseVectorParams, StorageOptions, VectorParams, WithVectors,
};

const DIM: usize = 64;

fn vector(i: u64, dim: usize) -> Vec<f32> {
    (0..dim).map(|j| ((i * 31 + j as u64 * 7) % 97) as f32 / 97.0 - 0.4).collect()
}

fn config() -> CollectionConfig {
    CollectionConfig::new().vector("text", VectorParams::new(DIM, Distance::Cosine).hnsw(8, 40))
}

fn options() -> StorageOptions {
    // No background optimiser: the tests rebuild when they mean to.
    StorageOptions { optimize_every: None, ..StorageOptions::default() }
}

fn fill(c: &braid::Collection, ids: std::ops::Range<u64>) {
    let points: Vec<PointStruct> = ids
        .map(|i| PointStruct::new(i).vector("text", vector(i, DIM)).payload(serde_json::json!({"i": i})))
        .collect();
    for chunk in points.chunks(500) {
        c.upsert(chunk.to_vec()).unwrap();
    }
}

fn exact(using: &str, v: Vec<f32>) -> SearchRequest {
    SearchRequest::new(using, v).limit(10).params(SearchParams { exact: true, ..SearchParams::default() })
}

fn ids(c: &braid::Collection, request: &SearchRequest) -> Vec<String> {
    c.search(request).unwrap().iter().map(|h| format!("{:?}", h.id)).collect()
}

#[test]
fn spaces_are_added_and_removed_durably() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = Database::open_with(dir.path(), options()).unwrap();
        let c = db.create_collection("docs", config()).unwrap();
        fill(&c, 0..300);
        c.create_vector("image", VectorParams::new(32, Distance::Euclid)).unwrap();
        c.create_sparse_vector("words", SparseVectorParams::idf()).unwrap();
        c.create_multivector("tokens", MultiVectorParams::new(4, Distance::Dot)).unwrap();
        // Existing points have no vector in the new spaces; new writes may fill them.
        let info = c.info();
        assert_eq!(info.vectors_count.get("image"), Some(&0));
        assert_eq!(info.points_count, 300);
        c.update_vectors(vec![braid::PointVectors::new(7u64).vector("image", vector(7, 32))]).unwrap();
        c.upsert(vec![
            PointStruct::new(1000u64)
                .vector("image", vector(1000, 32))
                .sparse("words", SparseVector::new(vec![3, 9], vec![1.0, 2.0]).unwrap())
                .multivector("tokens", vec![vec![1.0, 0.0, 0.0, 0.0], vec![0.0, 1.0, 0.0, 0.0]]),
        ])
        .unwrap();
        let hits = c.search(&SearchRequest::new("image", vector(7, 32)).limit(2)).unwrap();
        assert_eq!(hits.len(), 2, "only the two points with an image vector are found");
        // A name of another kind or one taken is refused; nothing changes.
        assert!(matches!(
            c.create_vector("words", VectorParams::new(8, Distance::Dot)),
            Err(Error::InvalidConfig { .. })
        ));
        assert!(matches!(c.delete_vector("nothing"), Err(Error::UnknownVector { .. })));
        c.delete_vector("text").unwrap();
        let gone = c.search(&SearchRequest::new("text", vector(1, DIM)));
        assert!(
            matches!(gone, Err(Error::Query(braid::query::QueryError::UnknownVector { .. }))),
            "{gone:?}"
        );
    }
    let db = Database::open_with(dir.path(), options()).unwrap();
    let c = db.collection("docs").unwrap();
    let config = c.config();
    assert_eq!(config.space_names(), ["image", "tokens", "words"]);
    assert_eq!(c.info().points_count, 301, "removing a space keeps the points and their payloads");
    let p = c.get(&[7u64.into()], true, WithVectors::All).unwrap();
    assert_eq!(p[0].vectors.as_ref().unwrap()["image"], vector(7, 32));
    assert_eq!(p[0].payload.as_ref().unwrap()["i"], 7);
    assert!(!p[0].vectors.as_ref().unwrap().contains_key("text"));
    let hits = c.search(&SearchRequest::new("image", vector(1000, 32)).limit(1)).unwrap();
    assert_eq!(format!("{:?}", hits[0].id), format!("{:?}", braid::PointId::from(1000u64)));

    // A removed name can come back, as a new, empty space with other settings, and
    // its files are named afresh (nothing of the old `text` is read back).
    c.create_vector("text", VectorParams::new(16, Distance::Dot)).unwrap();
    assert_eq!(c.info().vectors_count.get("text"), Some(&0));
    c.update_vectors(vec![braid::PointVectors::new(3u64).vector("text", vector(3, 16))]).unwrap();
    c.flush().unwrap();
    drop((c, db));
    let db = Database::open_with(dir.path(), options()).unwrap();
    let c = db.collection("docs").unwrap();
    assert_eq!(c.config().vectors["text"].size, 16);
    assert_eq!(c.info().vectors_count.get("text"), Some(&1));
    let files: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .flat_map(|e| std::fs::read_dir(e.unwrap().path()).into_iter().flatten())
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("vectors-"))
        .collect();
    assert_eq!(files.len(), 2, "one vector file per dense space, the removed ones gone: {files:?}");
}

#[test]
fn new_graph_settings_rebuild_beside_the_serving_graph() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open_with(dir.path(), options()).unwrap();
    let c = db.create_collection("docs", config()).unwrap();
    fill(&c, 0..1500);
    let query = exact("text", vector(5, DIM));
    let before = ids(&c, &query);

    let mut changed = c.config();
    changed.vectors.get_mut("text").unwrap().hnsw.m = 24;
    assert_eq!(c.reconfigure(changed.clone()).unwrap(), ["text"]);
    assert_eq!(c.stale_graphs(), ["text"]);
    assert_eq!(c.info().status, "yellow");
    // The old graph serves meanwhile.
    assert_eq!(c.search(&SearchRequest::new("text", vector(5, DIM)).limit(10)).unwrap().len(), 10);

    // Reopening before the rebuild keeps the new setting and the debt.
    drop((c, db));
    let db = Database::open_with(dir.path(), options()).unwrap();
    let c = db.collection("docs").unwrap();
    assert_eq!(c.config(), changed);
    assert_eq!(c.stale_graphs(), ["text"]);

    // Rebuild while a writer goes on: every acknowledged write is there afterwards.
    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicU64::new(0));
    let writer = {
        let (c, stop, written) = (c.clone(), stop.clone(), written.clone());
        std::thread::spawn(move || {
            let mut i = 10_000u64;
            while !stop.load(Ordering::Relaxed) || i < 10_050 {
                c.upsert(vec![PointStruct::new(i).vector("text", vector(i, DIM))]).unwrap();
                written.store(i - 10_000 + 1, Ordering::Relaxed);
                i += 1;
            }
        })
    };
    assert_eq!(c.reindex().unwrap(), ["text"]);
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    assert!(c.stale_graphs().is_empty());
    assert_eq!(c.info().status, "green");
    assert_eq!(c.info().points_count as u64, 1500 + written.load(Ordering::Relaxed));
    assert_eq!(c.info().indexed_vectors_count["text"], c.info().points_count);
    assert_eq!(ids(&c, &query).len(), 10);
    let graph_hits = c.search(&SearchRequest::new("text", vector(5, DIM)).limit(10)).unwrap();
    assert_eq!(graph_hits.len(), 10);
    drop((c, db));
    let db = Database::open_with(dir.path(), options()).unwrap();
    let c = db.collection("docs").unwrap();
    assert!(c.stale_graphs().is_empty(), "the rebuilt graph is what reopens");
    assert_eq!(before.len(), 10);
}

#[test]
fn quantization_and_thresholds_switch_without_changing_answers() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open_with(dir.path(), options()).unwrap();
    let c = db.create_collection("docs", config()).unwrap();
    fill(&c, 0..800);
    let query = exact("text", vector(11, DIM));
    let graph = SearchRequest::new("text", vector(11, DIM)).limit(10);
    let before = ids(&c, &query);
    assert!(c.config().vectors["text"].keeps_codes());

    let mut plain = c.config();
    plain.vectors.get_mut("text").unwrap().quantization = Quantization::None;
    plain.indexing_threshold_kb = 0;
    plain.deleted_threshold = Some(0.5);
    plain.vacuum_min_vector_number = Some(10);
    assert!(c.reconfigure(plain.clone()).unwrap().is_empty(), "no graph to rebuild");
    assert_eq!(ids(&c, &query), before);
    assert_eq!(c.search(&graph).unwrap().len(), 10);
    drop((c, db));
    let db = Database::open_with(dir.path(), options()).unwrap();
    let c = db.collection("docs").unwrap();
    assert_eq!(c.config(), plain);
    assert!(!c.config().vectors["text"].keeps_codes());
    let mut coded = plain.clone();
    coded.vectors.get_mut("text").unwrap().quantization = Quantization::Int8;
    c.reconfigure(coded).unwrap();
    assert_eq!(ids(&c, &query), before);
    assert_eq!(c.search(&graph).unwrap().len(), 10);

    // What a stored vector means cannot change; neither can a bad threshold pass.
    let mut resized = c.config();
    resized.vectors.get_mut("text").unwrap().size = 32;
    assert!(matches!(c.reconfigure(resized), Err(Error::InvalidConfig { .. })));
    let mut redistanced = c.config();
    redistanced.vectors.get_mut("text").unwrap().distance = Distance::Dot;
    assert!(matches!(c.reconfigure(redistanced), Err(Error::InvalidConfig { .. })));
    let mut bad = c.config();
    bad.deleted_threshold = Some(f64::NAN);
    assert!(matches!(c.reconfigure(bad), Err(Error::InvalidConfig { .. })));
    let mut kind = c.config();
    let text = kind.vectors.remove("text").unwrap();
    kind.multivectors.insert("text".into(), MultiVectorParams::new(text.size, text.distance));
    assert!(matches!(c.reconfigure(kind), Err(Error::InvalidConfig { .. })));
    assert_eq!(ids(&c, &query), before);
}

#[test]
fn in_memory_collections_reconfigure_too() {
    let db = Database::in_memory();
    let c = db.create_collection("docs", config()).unwrap();
    fill(&c, 0..200);
    c.create_vector("image", VectorParams::new(8, Distance::Dot)).unwrap();
    c.delete_vector("text").unwrap();
    assert_eq!(c.config().space_names(), ["image"]);
    assert_eq!(c.info().points_count, 200);
}
