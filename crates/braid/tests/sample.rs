//! `sample: random`: distinct points, all passing the filter, score 1.0, every point
//! as likely as any other.

use std::collections::{BTreeMap, BTreeSet};

use braid::{
    CollectionConfig, Database, Error, Filter, PointId, PointStruct, Prefetch, Query, QueryRequest, field,
};
use serde_json::json;

fn sample(filter: Option<Filter>, limit: usize) -> QueryRequest {
    QueryRequest { query: Some(Query::Sample), filter, ..QueryRequest::default() }.limit(limit)
}

#[test]
fn a_random_sample_is_distinct_filtered_and_uniform() {
    let db = Database::in_memory();
    let c = db.create_collection("s", CollectionConfig::new()).unwrap();
    c.upsert((0..100u64).map(|i| PointStruct::new(i).payload(json!({"even": i % 2 == 0}))).collect())
        .unwrap();
    let even = Filter::must([field("even").eq(true)]);
    let hits = c.query(sample(Some(even.clone()), 10)).unwrap();
    let ids: BTreeSet<PointId> = hits.iter().map(|h| h.id).collect();
    assert_eq!(ids.len(), 10, "distinct");
    assert!(hits.iter().all(|h| h.score == 1.0));
    assert!(ids.iter().all(|id| matches!(id, PointId::Num(n) if n % 2 == 0)), "{ids:?}");
    // More asked than pass: all of them.
    let all = c.query(sample(Some(even), 1_000)).unwrap();
    assert_eq!(all.len(), 50);
    // Uniform: 4,000 draws of 1 among 10 points; each expected 400 times.
    let ten = Filter::must([field("even").eq(true), braid::Condition::has_id(0..20u64)]);
    let mut seen: BTreeMap<PointId, usize> = BTreeMap::new();
    for _ in 0..4_000 {
        for h in c.query(sample(Some(ten.clone()), 1)).unwrap() {
            *seen.entry(h.id).or_default() += 1;
        }
    }
    assert_eq!(seen.len(), 10);
    // A bias this test must catch (one point never or twice as often drawn) lies far
    // outside 250..=550 (±7.5 standard deviations of a fair draw).
    assert!(seen.values().all(|&n| (250..=550).contains(&n)), "{seen:?}");
}

#[test]
fn a_sample_takes_no_prefetches() {
    let db = Database::in_memory();
    let c = db.create_collection("s", CollectionConfig::new()).unwrap();
    let bad = QueryRequest {
        query: Some(Query::Sample),
        prefetch: vec![Prefetch { query: Some(Query::Sample), ..Prefetch::default() }],
        ..QueryRequest::default()
    };
    assert!(matches!(c.query(bad), Err(Error::Query(braid::query::QueryError::SampleWithPrefetch))));
    assert!(c.query(sample(None, 5)).unwrap().is_empty(), "an empty collection samples nothing");
}
