//! Model-based: random sequences of writes with flushes, optimisations and reopens in
//! between, on disk and in memory side by side; after every reopen the two hold the
//! same points and give the same exact answers.

use braid::{
    CollectionConfig, Database, Distance, Durability, Filter, IndexKind, PointId, PointStruct, Record,
    SearchParams, SearchRequest, StorageOptions, VectorParams, field,
};
use proptest::prelude::*;
use serde_json::json;

/// id, text vector, maybe an image vector, tag.
type NewPoint = (u64, Vec<f32>, Option<Vec<f32>>, u8);

#[derive(Clone, Debug)]
enum Action {
    Upsert(Vec<NewPoint>),
    Delete(Vec<u64>),
    DeleteTag(u8),
    SetPayload(u8, i64),
    DeleteVectors(u64),
    UpdateImage(u64, Vec<f32>),
    Index,
    Flush,
    Optimize,
    Reopen,
}

fn vector(dim: usize) -> impl Strategy<Value = Vec<f32>> {
    prop::collection::vec(-1.0f32..1.0, dim).prop_filter("non-zero", |v| v.iter().any(|x| x.abs() > 1e-3))
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        4 => prop::collection::vec((0u64..30, vector(3), prop::option::of(vector(2)), 0u8..3), 1..8)
            .prop_map(Action::Upsert),
        1 => prop::collection::vec(0u64..30, 1..4).prop_map(Action::Delete),
        1 => (0u8..3).prop_map(Action::DeleteTag),
        1 => (0u8..3, 0i64..9).prop_map(|(t, v)| Action::SetPayload(t, v)),
        1 => (0u64..30).prop_map(Action::DeleteVectors),
        1 => (0u64..30, vector(2)).prop_map(|(id, v)| Action::UpdateImage(id, v)),
        1 => Just(Action::Index),
        1 => Just(Action::Flush),
        1 => Just(Action::Optimize),
        2 => Just(Action::Reopen),
    ]
}

fn config() -> CollectionConfig {
    CollectionConfig::new()
        .vector("text", VectorParams::new(3, Distance::Cosine).hnsw(4, 16))
        .vector("image", VectorParams::new(2, Distance::Euclid).hnsw(4, 16))
}

fn tag(t: u8) -> Filter {
    Filter::must([field("tag").eq(["a", "b", "c"][t as usize % 3])])
}

fn apply(db: &Database, action: &Action) {
    let c = db.collection("m").unwrap();
    match action {
        Action::Upsert(points) => c
            .upsert(
                points
                    .iter()
                    .map(|(id, text, image, t)| {
                        let name = ["a", "b", "c"][*t as usize];
                        let mut p =
                            PointStruct::new(*id).vector("text", text.clone()).payload(json!({"tag": name}));
                        if let Some(image) = image {
                            p = p.vector("image", image.clone());
                        }
                        p
                    })
                    .collect(),
            )
            .unwrap(),
        Action::Delete(ids) => {
            c.delete(ids.iter().map(|&i| PointId::from(i)).collect::<Vec<_>>()).unwrap();
        }
        Action::DeleteTag(t) => {
            c.delete(tag(*t)).unwrap();
        }
        Action::SetPayload(t, v) => c.set_payload(tag(*t), json!({"v": v})).unwrap(),
        Action::DeleteVectors(id) => c.delete_vectors(vec![PointId::from(*id)], &["image"]).unwrap(),
        Action::UpdateImage(id, v) => {
            match c.update_vectors(vec![(PointId::from(*id), [("image".to_string(), v.clone())].into())]) {
                Ok(()) | Err(braid::Error::PointNotFound { .. }) => {}
                Err(e) => panic!("{e}"),
            }
        }
        Action::Index => c.create_payload_index("tag", IndexKind::Keyword).unwrap(),
        Action::Flush => c.flush().unwrap(),
        Action::Optimize => {
            c.optimize_if(0.1).unwrap();
        }
        Action::Reopen => {}
    }
}

fn contents(db: &Database) -> Vec<Record> {
    db.collection("m").unwrap().scroll(None, 1000, None, true, true).unwrap().0
}

fn exact(db: &Database, space: &str, q: &[f32]) -> Vec<(PointId, f32)> {
    let request = SearchRequest::new(space, q.to_vec())
        .limit(10)
        .filter(Filter::must_not([field("tag").eq("c")]))
        .params(SearchParams::EXACT);
    db.collection("m").unwrap().search(&request).unwrap().into_iter().map(|p| (p.id, p.score)).collect()
}

proptest! {
    #[test]
    fn disk_and_memory_agree_across_reopens(actions in prop::collection::vec(action(), 1..40), every_write in any::<bool>()) {
        let dir = tempfile::tempdir().unwrap();
        let durability = if every_write { Durability::EveryWrite } else { Durability::OnFlush };
        // The background optimiser runs often and compacts at the first dead version:
        // it must never change what the collection holds, nor keep a reopen waiting.
        let options = StorageOptions {
            durability,
            checkpoint_log_bytes: 2048,
            optimize_every: Some(std::time::Duration::from_millis(5)),
            vacuum_share: 0.0,
            vacuum_min: 1,
            // Half the runs keep their logs: archiving at every checkpoint must not
            // change what the collection holds either.
            log_retention: every_write.then_some(std::time::Duration::from_secs(3600)),
            // Every reopen checks its vector files in the background, beside the
            // actions and the optimiser (whose compactions wait for the pass).
            verify_after_open_above: 0,
        };
        let model = Database::in_memory();
        model.create_collection("m", config()).unwrap();
        let mut disk = Database::open_with(dir.path(), options).unwrap();
        disk.create_collection("m", config()).unwrap();
        for action in actions.iter().chain([&Action::Reopen]) {
            apply(&model, action);
            apply(&disk, action);
            if let Action::Reopen = action {
                drop(disk);
                disk = Database::open_with(dir.path(), options).unwrap();
                prop_assert_eq!(contents(&disk), contents(&model));
                prop_assert_eq!(exact(&disk, "text", &[0.3, -0.2, 0.9]), exact(&model, "text", &[0.3, -0.2, 0.9]));
                prop_assert_eq!(exact(&disk, "image", &[0.1, 0.4]), exact(&model, "image", &[0.1, 0.4]));
                let (d, m) = (disk.collection("m").unwrap().info(), model.collection("m").unwrap().info());
                prop_assert_eq!((d.points_count, d.vectors_count, d.payload_schema), (m.points_count, m.vectors_count, m.payload_schema));
            }
        }
    }
}
