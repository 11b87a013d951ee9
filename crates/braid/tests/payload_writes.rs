//! Payload writes as Qdrant's server makes them: `set_payload` merges with a null
//! removing its key, and ids that name no point do not stop the edit of the others
//! (the first missing one is reported afterwards). Both survive a reopen.

use braid::{CollectionConfig, Database, Distance, Error, PointId, PointStruct, VectorParams};
use serde_json::json;

fn payload_of(c: &braid::Collection, id: u64) -> serde_json::Value {
    c.get(&[PointId::from(id)], true, false).unwrap()[0].payload.clone().unwrap()
}

#[test]
fn a_null_removes_its_key_and_missing_ids_do_not_stop_the_others() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = Database::open(dir.path()).unwrap();
        let c = db
            .create_collection("c", CollectionConfig::new().vector("v", VectorParams::new(2, Distance::Dot)))
            .unwrap();
        c.upsert(
            (1..=3u64)
                .map(|i| {
                    PointStruct::new(i)
                        .vector("v", vec![1.0, 0.0])
                        .payload(json!({"a": 1, "b": 2, "o": {"x": 1, "y": 2}}))
                })
                .collect(),
        )
        .unwrap();
        c.set_payload(vec![PointId::from(1)], json!({"a": null, "c": 3})).unwrap();
        assert_eq!(payload_of(&c, 1), json!({"b": 2, "c": 3, "o": {"x": 1, "y": 2}}));
        c.set_payload_at(vec![PointId::from(2)], "o", json!({"x": null, "z": [1]})).unwrap();
        assert_eq!(payload_of(&c, 2), json!({"a": 1, "b": 2, "o": {"y": 2, "z": [1]}}));
        let err = c.set_payload(vec![PointId::from(9), 3.into(), 8.into()], json!({"b": 5})).unwrap_err();
        assert!(matches!(err, Error::PointNotFound { id: PointId::Num(9) }), "{err}");
        assert_eq!(payload_of(&c, 3)["b"], json!(5), "the point that exists was edited");
        let err = c.clear_payload(vec![PointId::from(7)]).unwrap_err();
        assert!(matches!(err, Error::PointNotFound { .. }), "{err}");
    }
    let db = Database::open(dir.path()).unwrap();
    let c = db.collection("c").unwrap();
    assert_eq!(payload_of(&c, 1), json!({"b": 2, "c": 3, "o": {"x": 1, "y": 2}}));
    assert_eq!(payload_of(&c, 2), json!({"a": 1, "b": 2, "o": {"y": 2, "z": [1]}}));
    assert_eq!(payload_of(&c, 3)["b"], json!(5));
}

/// Keys with array steps, walked as Qdrant's server walks them: `[n]` enters one
/// element (nothing past the end), `[]` every element, and an array step on a value
/// that is not an array leaves an empty array.
#[test]
fn set_payload_paths_enter_arrays() {
    let db = Database::in_memory();
    let c = db.create_collection("c", CollectionConfig::new()).unwrap();
    c.upsert(vec![PointStruct::new(1).payload(json!({"arr": [{"x": 1}, {"x": 2}, 3], "s": "str"}))]).unwrap();
    c.set_payload_at(vec![PointId::from(1)], "arr[0]", json!({"y": 1})).unwrap();
    c.set_payload_at(vec![PointId::from(1)], "arr[].z", json!({"w": 1, "x": null})).unwrap();
    c.set_payload_at(vec![PointId::from(1)], "arr[9]", json!({"never": 1})).unwrap();
    c.set_payload_at(vec![PointId::from(1)], "s[0]", json!({"gone": 1})).unwrap();
    assert_eq!(
        payload_of(&c, 1),
        json!({"arr": [{"x": 1, "y": 1, "z": {"w": 1}}, {"x": 2, "z": {"w": 1}}, {"z": {"w": 1}}], "s": []})
    );
    for bad in ["a..b", "[0]", "a[x]", "a]"] {
        let err = c.set_payload_at(vec![PointId::from(1)], bad, json!({"k": 1})).unwrap_err();
        assert!(matches!(err, Error::InvalidKey { .. }), "{bad}: {err}");
    }
}
