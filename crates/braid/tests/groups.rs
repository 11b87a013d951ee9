//! Grouped queries against a reference: the whole exact ranking walked best first,
//! each point joining the group of each of its string or integer values (points with
//! another type of value joining none), the first `limit` groups kept with their
//! best `group_size` points; `with_lookup` records from another collection.

use std::collections::HashMap;

use braid::{
    CollectionConfig, Database, Distance, Error, Filter, GroupBy, GroupId, PointId, PointStruct, Prefetch,
    QueryRequest, Recommend, RecommendStrategy, SearchParams, VectorParams, WithLookup, field,
};
use serde_json::{Value, json};

const EXACT: SearchParams = SearchParams::EXACT;

fn doc(i: u64) -> Value {
    match i % 9 {
        0 => json!(format!("d{}", i % 7)),
        1 => json!([i % 5, i % 7]),
        2 => json!(1.5),  // a float: the point joins no group
        3 => json!(true), // a bool: no group either
        4 => Value::Null,
        5 => json!([format!("d{}", i % 7), 2]),
        _ => json!(i % 11),
    }
}

fn fixture() -> (Database, braid::Collection) {
    let db = Database::in_memory();
    let config = CollectionConfig::new().vector("v", VectorParams::new(3, Distance::Cosine));
    let c = db.create_collection("chunks", config).unwrap();
    c.upsert(
        (0..400u64)
            .map(|i| {
                let v = vec![(i as f32 * 0.37).sin(), (i as f32 * 0.11).cos(), 0.3];
                let mut payload = json!({"n": i % 4});
                if i % 13 != 0 {
                    payload["doc"] = doc(i);
                }
                PointStruct::new(i).vector("v", v).payload(payload)
            })
            .collect(),
    )
    .unwrap();
    (db, c)
}

fn reference_ids(payload: &Value) -> Option<Vec<GroupId>> {
    let values: Vec<&Value> = match payload.get("doc")? {
        Value::Array(a) => a.iter().collect(),
        v => vec![v],
    };
    let mut ids = Vec::new();
    for v in values {
        let id = match v {
            Value::String(s) => GroupId::Str(s.clone()),
            Value::Number(n) => GroupId::Int(n.as_i64()?),
            _ => return None,
        };
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    (!ids.is_empty()).then_some(ids)
}

/// The reference: every point ranked (exact), then grouped.
fn reference(
    c: &braid::Collection,
    request: &QueryRequest,
    group: &GroupBy,
) -> Vec<(GroupId, Vec<(PointId, f32)>)> {
    let all = c
        .query(braid::QueryPoints::from(QueryRequest { limit: 400, ..request.clone() }).with_payload(true))
        .unwrap();
    let mut order: Vec<GroupId> = Vec::new();
    let mut groups: HashMap<GroupId, Vec<(PointId, f32)>> = HashMap::new();
    for hit in all {
        let Some(ids) = reference_ids(hit.payload.as_ref().unwrap()) else { continue };
        for id in ids {
            let members = groups.entry(id.clone()).or_insert_with(|| {
                order.push(id.clone());
                Vec::new()
            });
            if members.len() < group.group_size {
                members.push((hit.id, hit.score));
            }
        }
    }
    order.into_iter().take(group.limit).map(|id| (id.clone(), groups.remove(&id).unwrap())).collect()
}

fn got(groups: Vec<braid::PointGroup>) -> Vec<(GroupId, Vec<(PointId, f32)>)> {
    groups.into_iter().map(|g| (g.id, g.hits.into_iter().map(|h| (h.id, h.score)).collect())).collect()
}

#[test]
fn groups_equal_grouping_the_whole_ranking() {
    let (_db, c) = fixture();
    let near = QueryRequest::nearest("v", vec![0.2, 0.9, 0.1]).params(EXACT);
    let requests = vec![
        near.clone(),
        near.clone().filter(Filter::must([field("n").eq(1)])),
        QueryRequest::recommend(
            "v",
            Recommend {
                positive: vec![3u64.into()],
                negative: vec![9u64.into()],
                strategy: RecommendStrategy::SumScores,
            },
        )
        .params(EXACT),
        // Over a prefetch as deep as the collection: the same as ranking every point.
        QueryRequest {
            prefetch: vec![Prefetch::nearest("v", vec![0.9, 0.1, 0.0], 400).params(EXACT)],
            ..near.clone()
        },
    ];
    for request in requests {
        for (size, limit) in [(1, 1), (3, 10), (2, 25), (5, 40)] {
            let group = GroupBy { group_size: size, limit, ..GroupBy::new("doc") };
            let want = reference(&c, &request, &group);
            let got = got(c.query_groups(request.clone(), &group).unwrap());
            assert_eq!(got, want, "size {size}, limit {limit}, {:?}", request.query);
            assert!(got.len() <= limit && got.iter().all(|(_, h)| !h.is_empty() && h.len() <= size));
        }
    }
    // A key nobody holds: no groups (as Qdrant).
    assert!(c.query_groups(near, &GroupBy::new("nowhere")).unwrap().is_empty());
}

#[test]
fn groups_bring_their_lookup_records_and_payloads() {
    let (db, c) = fixture();
    let docs = db.create_collection("docs", CollectionConfig::new()).unwrap();
    docs.upsert(
        (0..11u64).map(|i| PointStruct::new(i).payload(json!({"title": format!("doc {i}")}))).collect(),
    )
    .unwrap();
    let group = GroupBy { with_lookup: Some(WithLookup::new("docs")), ..GroupBy::new("doc") };
    let query = braid::QueryPoints::from(QueryRequest::nearest("v", vec![0.2, 0.9, 0.1])).with_payload(true);
    let groups = c.query_groups(query, &group).unwrap();
    assert_eq!(groups.len(), 10);
    for g in &groups {
        assert!(g.hits.iter().all(|h| h.payload.is_some()), "hits carry the payload asked for");
        match (&g.id, &g.lookup) {
            (GroupId::Int(i), Some(r)) if *i < 11 => {
                assert_eq!(r.payload.as_ref().unwrap()["title"], json!(format!("doc {i}")));
            }
            (GroupId::Int(i), None) => assert!(*i >= 11, "doc {i} exists"),
            (GroupId::Str(_), None) => {} // "d3" names no point
            other => panic!("unexpected {other:?}"),
        }
    }
    // Bad input: typed errors.
    let near = QueryRequest::nearest("v", vec![0.2, 0.9, 0.1]);
    let zero = GroupBy { group_size: 0, ..GroupBy::new("doc") };
    assert!(matches!(c.query_groups(near.clone(), &zero), Err(Error::Query(_))));
    let huge = GroupBy { group_size: 1_000, limit: 1_000, ..GroupBy::new("doc") };
    assert!(matches!(c.query_groups(near.clone(), &huge), Err(Error::Query(_))));
    assert!(matches!(c.query_groups(near.clone(), &GroupBy::new("a[")), Err(Error::InvalidKey { .. })));
    let missing = GroupBy { with_lookup: Some(WithLookup::new("nope")), ..GroupBy::new("doc") };
    assert!(matches!(c.query_groups(near.clone(), &missing), Err(Error::CollectionNotFound { .. })));
    assert!(c.query_groups(near.offset(3), &GroupBy::new("doc")).is_err());
}
