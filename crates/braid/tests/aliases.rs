//! Aliases: one namespace with collections, all-or-none updates, durable across reopen,
//! removed with their collection, and the blue/green switch under concurrent queries.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use braid::{AliasOp, CollectionConfig, Database, Distance, Error, PointStruct, SearchRequest, VectorParams};

fn config() -> CollectionConfig {
    CollectionConfig::new().vector("v", VectorParams::new(2, Distance::Dot))
}

fn create(alias: &str, collection: &str) -> AliasOp {
    AliasOp::Create { alias: alias.into(), collection: collection.into() }
}

/// A collection whose every point carries `tag` in its payload.
fn tagged(db: &Database, name: &str, tag: &str) {
    let c = db.create_collection(name, config()).unwrap();
    c.upsert(
        (0..50u64)
            .map(|i| {
                PointStruct::new(i).vector("v", vec![i as f32, 1.0]).payload(serde_json::json!({"tag": tag}))
            })
            .collect(),
    )
    .unwrap();
}

#[test]
fn aliases_resolve_and_share_the_collection_namespace() {
    let db = Database::in_memory();
    tagged(&db, "docs_v1", "v1");
    db.update_aliases(&[create("docs", "docs_v1"), create("prod", "docs_v1")]).unwrap();
    assert_eq!(db.collection("docs").unwrap().name(), "docs_v1");
    assert!(db.collection_exists("prod"));
    assert_eq!(db.collection_aliases("docs_v1").unwrap(), ["docs", "prod"]);
    assert_eq!(db.list(), ["docs_v1"], "aliases are not collections");

    // An alias cannot take a collection's name, nor point at an alias or at nothing.
    assert!(matches!(
        db.update_aliases(&[create("docs_v1", "docs_v1")]),
        Err(Error::NameTaken { what: "a collection", .. })
    ));
    assert!(matches!(db.update_aliases(&[create("x", "docs")]), Err(Error::CollectionNotFound { .. })));
    assert!(matches!(db.update_aliases(&[create("bad/name", "docs_v1")]), Err(Error::InvalidName { .. })));
    // A collection cannot take an alias's name.
    assert!(matches!(db.create_collection("docs", config()), Err(Error::NameTaken { what: "an alias", .. })));
    assert!(matches!(db.get_or_create("prod", config()), Err(Error::NameTaken { .. })));

    // All or none: the failing rename undoes the delete before it.
    let before = db.aliases();
    let failed = db.update_aliases(&[
        AliasOp::Delete { alias: "docs".into() },
        AliasOp::Rename { from: "missing".into(), to: "y".into() },
    ]);
    assert!(matches!(failed, Err(Error::AliasNotFound { .. })));
    assert_eq!(db.aliases(), before);

    // Rename moves the target; deleting a missing alias is no error.
    db.update_aliases(&[
        AliasOp::Rename { from: "prod".into(), to: "live".into() },
        AliasOp::Delete { alias: "never".into() },
    ])
    .unwrap();
    assert_eq!(db.aliases(), [("docs".into(), "docs_v1".into()), ("live".into(), "docs_v1".into())]);
    assert!(matches!(db.collection("prod"), Err(Error::CollectionNotFound { .. })));
    assert!(matches!(db.collection_aliases("docs"), Err(Error::CollectionNotFound { .. })));

    // Deleting the collection takes its aliases with it; deleting by alias deletes nothing.
    assert!(!db.delete_collection("docs").unwrap());
    assert!(db.delete_collection("docs_v1").unwrap());
    assert!(db.aliases().is_empty());
}

#[test]
fn aliases_survive_reopen_and_go_with_their_collection() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = Database::open(dir.path()).unwrap();
        tagged(&db, "a", "a");
        tagged(&db, "b", "b");
        db.update_aliases(&[create("x", "a"), create("y", "b"), create("z", "b")]).unwrap();
        db.flush().unwrap();
    }
    {
        let db = Database::open(dir.path()).unwrap();
        assert_eq!(db.collection("x").unwrap().name(), "a");
        assert_eq!(db.collection_aliases("b").unwrap(), ["y", "z"]);
        db.delete_collection("b").unwrap();
    }
    let db = Database::open(dir.path()).unwrap();
    assert_eq!(db.aliases(), [("x".into(), "a".into())]);
}

/// Blue/green re-indexing: queries through the alias run on while `docs_v2` is built,
/// the alias switched in one request and `docs_v1` dropped. No query fails, and every
/// answer comes wholly from one version.
#[test]
fn blue_green_switch_fails_no_query() {
    let db = Database::in_memory();
    tagged(&db, "docs_v1", "v1");
    db.update_aliases(&[create("docs", "docs_v1")]).unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let seen_v2 = Arc::new(AtomicUsize::new(0));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (db, done, seen_v2) = (db.clone(), done.clone(), seen_v2.clone());
            std::thread::spawn(move || {
                let mut queries = 0usize;
                while !done.load(Ordering::Acquire) || queries < 100 {
                    let docs = db.collection("docs").expect("the alias always resolves");
                    let hits = docs
                        .search(&SearchRequest::new("v", vec![1.0, 0.5]).limit(5).with_payload(true))
                        .expect("a query through the alias never fails");
                    assert_eq!(hits.len(), 5);
                    let tags: Vec<&str> =
                        hits.iter().map(|h| h.payload.as_ref().unwrap()["tag"].as_str().unwrap()).collect();
                    assert!(tags.iter().all(|t| *t == tags[0]), "one answer mixes versions: {tags:?}");
                    if tags[0] == "v2" {
                        seen_v2.fetch_add(1, Ordering::Relaxed);
                    }
                    queries += 1;
                }
                queries
            })
        })
        .collect();
    tagged(&db, "docs_v2", "v2");
    db.update_aliases(&[AliasOp::Delete { alias: "docs".into() }, create("docs", "docs_v2")]).unwrap();
    db.delete_collection("docs_v1").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(50));
    done.store(true, Ordering::Release);
    let queries: usize = readers.into_iter().map(|r| r.join().unwrap()).sum();
    assert!(queries >= 200);
    assert!(seen_v2.load(Ordering::Relaxed) > 0, "the switch was seen");
    assert_eq!(db.collection("docs").unwrap().name(), "docs_v2");
}
