//! A collection with no vector space (Qdrant's `vectors: {}`): points carry ids and
//! payloads only; filters, scroll, count and payload writes work, a search names an
//! unknown space, and everything survives a reopen.

use braid::{CollectionConfig, Database, Error, PointId, PointStruct, SearchRequest, field};
use serde_json::json;

#[test]
fn a_collection_without_vectors_holds_payloads() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = Database::open(dir.path()).unwrap();
        let c = db.create_collection("docs", CollectionConfig::new()).unwrap();
        c.upsert((0..10u64).map(|i| PointStruct::new(i).payload(json!({"n": i}))).collect()).unwrap();
        assert_eq!(c.count(Some(&braid::Filter::must([field("n").gte(5.0)]))).unwrap(), 5);
        c.set_payload(vec![PointId::from(1)], json!({"tag": "x"})).unwrap();
        let err = c.search(&SearchRequest::new("v", vec![1.0])).unwrap_err();
        assert!(matches!(err, Error::UnknownVector { .. } | Error::Query(_)), "{err}");
        let err = c.upsert(vec![PointStruct::new(99).vector("v", vec![1.0])]).unwrap_err();
        assert!(matches!(err, Error::UnknownVector { .. }), "{err}");
        c.flush().unwrap();
        c.delete(vec![PointId::from(0)]).unwrap();
    }
    let db = Database::open(dir.path()).unwrap();
    let c = db.collection("docs").unwrap();
    assert_eq!(c.count(None).unwrap(), 9);
    let got = c.get(&[PointId::from(1)], true, true).unwrap();
    assert_eq!(got[0].payload, Some(json!({"n": 1, "tag": "x"})));
    assert_eq!(c.compact().unwrap().kept, 9);
    assert_eq!(c.scroll(None, 100, None, false, false).unwrap().0.len(), 9);
}
