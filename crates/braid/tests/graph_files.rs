//! `hnsw_config.on_disk`: a space's graph read from a copy-on-write mapping of the graph
//! file each checkpoint writes, layer 0 left in the mapping and new nodes' lists on the
//! heap. The graph moved to its file is the same graph: searches answer exactly as
//! before the move, across checkpoints, reopens (with and without a replayed log),
//! compaction, payload links and both switches; damage is a typed error at open.

use braid::{
    CollectionConfig, Database, Distance, Filter, IndexKind, PointId, PointStruct, SearchParams,
    SearchRequest, VectorParams, field,
};
use braid_testkit::Rng;
use serde_json::json;

const DIM: usize = 16;

fn config(on_disk: bool) -> CollectionConfig {
    let mut params = VectorParams::new(DIM, Distance::Cosine).hnsw(8, 48);
    params.hnsw.on_disk = on_disk;
    CollectionConfig::new().vector("v", params)
}

fn points(seed: u64, ids: std::ops::Range<u64>) -> Vec<PointStruct> {
    let mut rng = Rng::new(seed);
    ids.map(|i| {
        let colour = ["red", "green"][i as usize % 2];
        PointStruct::new(i).vector("v", rng.vector(DIM)).payload(json!({ "colour": colour }))
    })
    .collect()
}

/// What searches answer: ids and scores of a few plain and filtered searches, at a
/// small ef so that the walk (not an exhaustive beam) decides them.
fn answers(c: &braid::Collection) -> Vec<Vec<(PointId, u32)>> {
    let mut rng = Rng::new(99);
    let green = Filter::must([field("colour").eq("green")]);
    (0..12)
        .map(|q| {
            let mut request = SearchRequest::new("v", rng.vector(DIM))
                .limit(5)
                .params(SearchParams { hnsw_ef: Some(12), ..SearchParams::default() });
            if q % 3 == 0 {
                request = request.filter(green.clone());
            }
            c.search(&request).unwrap().into_iter().map(|h| (h.id, h.score.to_bits())).collect()
        })
        .collect()
}

fn mapped(c: &braid::Collection) -> usize {
    c.info().memory["v"].graph_mapped
}

#[test]
fn a_graph_moved_to_its_file_answers_as_it_did_in_memory() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path()).unwrap();
    let c = db.create_collection("c", config(true)).unwrap();
    c.create_payload_index("colour", IndexKind::Keyword).unwrap();
    c.upsert(points(1, 0..1_500)).unwrap();
    c.delete(vec![PointId::from(10), 11.into()]).unwrap();
    // Before the first checkpoint the graph is on the heap.
    assert_eq!(mapped(&c), 0);
    let before = answers(&c);
    c.flush().unwrap();
    let held = mapped(&c);
    assert!(held >= 1_500 * (2 * 8 + 1) * 4, "layer 0 mapped: {held}");
    assert!(c.info().memory["v"].graph >= held);
    assert_eq!(answers(&c), before, "the same graph, read from its file");
    // Writes after the checkpoint: new nodes on the heap, links into mapped lists.
    c.upsert(points(2, 1_500..1_800)).unwrap();
    c.delete(vec![PointId::from(12)]).unwrap();
    assert_eq!(mapped(&c), held, "growth keeps the mapped part");
    let written = answers(&c);
    c.flush().unwrap();
    assert!(mapped(&c) > held);
    assert_eq!(answers(&c), written);
    // In the log only, then reopened: replayed onto the mapped graph.
    c.upsert(points(3, 1_800..1_900)).unwrap();
    let logged = answers(&c);
    drop((c, db));
    let db = Database::open(dir.path()).unwrap();
    let c = db.collection("c").unwrap();
    assert!(mapped(&c) > held);
    assert_eq!(answers(&c), logged, "reopened: the file's graph and the replayed log");
    // A compaction writes a new graph and maps it.
    c.delete((0..300).map(PointId::from).collect::<Vec<_>>()).unwrap();
    c.compact().unwrap();
    assert!(mapped(&c) > 0);
    let compacted = answers(&c);
    drop((c, db));
    let db = Database::open(dir.path()).unwrap();
    let c = db.collection("c").unwrap();
    assert_eq!(answers(&c), compacted);
    // Off: the graph is read back into the heap at the change's checkpoint; on again.
    c.reconfigure(config(false)).unwrap();
    assert_eq!(mapped(&c), 0);
    assert!(!c.info().config.vectors["v"].hnsw.on_disk);
    assert_eq!(answers(&c), compacted);
    c.reconfigure(config(true)).unwrap();
    assert!(mapped(&c) > 0);
    assert_eq!(answers(&c), compacted);
}

#[test]
fn an_in_memory_database_refuses_graphs_on_disk() {
    let db = Database::in_memory();
    let err = db.create_collection("c", config(true)).unwrap_err();
    assert!(matches!(&err, braid::Error::InvalidConfig { why } if why.contains("hnsw on_disk")), "{err}");
    let c = db.create_collection("c", config(false)).unwrap();
    let err = c.reconfigure(config(true)).unwrap_err();
    assert!(matches!(&err, braid::Error::InvalidConfig { why } if why.contains("hnsw on_disk")), "{err}");
    assert!(!c.info().config.vectors["v"].hnsw.on_disk);
}

#[test]
fn a_damaged_mapped_graph_is_a_typed_error_at_open() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = Database::open(dir.path()).unwrap();
        let c = db.create_collection("c", config(true)).unwrap();
        c.upsert(points(4, 0..200)).unwrap();
        c.flush().unwrap();
    }
    let file = braid_testkit::collection_files(dir.path(), "graph-").remove(0);
    braid_testkit::with_each_byte_flipped(
        &file,
        0x10,
        |len| vec![0, 9, 60, len / 2, len - 1],
        |at| {
            let opened = Database::open(dir.path());
            assert!(matches!(&opened, Err(braid::Error::Storage(_))), "byte {at}: {:?}", opened.err());
        },
    );
    let db = Database::open(dir.path()).unwrap();
    let c = db.collection("c").unwrap();
    assert!(mapped(&c) > 0);
    assert_eq!(c.info().points_count, 200);
}
