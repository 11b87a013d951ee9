//! Facets against a per-point count: for random payloads, updates, deletes and
//! filters, `Collection::facet` equals counting each point's distinct values at the key
//! among the points the filter passes, ordered by count then value.

use std::collections::{BTreeMap, BTreeSet};

use braid::{CollectionConfig, Database, Error, FacetValue, Filter, IndexKind, PointId, PointStruct, field};
use proptest::prelude::*;
use serde_json::{Value, json};

fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        prop::sample::select(vec!["red", "green", "blue", "grey"]).prop_map(|s| json!(s)),
        (0i64..4).prop_map(|i| json!(i)),
        any::<bool>().prop_map(|b| json!(b)),
        Just(json!(1.5)),
        Just(Value::Null),
    ]
}

fn payload() -> impl Strategy<Value = Value> {
    (prop_oneof![value(), prop::collection::vec(value(), 0..4).prop_map(Value::Array)], 0i64..3)
        .prop_map(|(k, g)| json!({"k": k, "g": g}))
}

/// The values a facet of `kind` counts for one payload: distinct, of the index's type.
fn values(kind: IndexKind, p: &Value) -> BTreeSet<FacetValue> {
    let items: Vec<&Value> = match &p["k"] {
        Value::Array(a) => a.iter().collect(),
        v => vec![v],
    };
    items
        .into_iter()
        .filter_map(|v| match (kind, v) {
            (IndexKind::Keyword, Value::String(s)) => Some(FacetValue::Keyword(s.clone())),
            (IndexKind::Integer, Value::Number(n)) => n.as_i64().map(FacetValue::Integer),
            (IndexKind::Bool, Value::Bool(b)) => Some(FacetValue::Bool(*b)),
            _ => None,
        })
        .collect()
}

proptest! {
    #[test]
    fn facet_counts_equal_a_per_point_count(
        payloads in prop::collection::vec(payload(), 1..60),
        updates in prop::collection::vec((0u64..60, payload()), 0..10),
        deleted in prop::collection::vec(0u64..60, 0..10),
        kind in prop::sample::select(vec![IndexKind::Keyword, IndexKind::Integer, IndexKind::Bool]),
        group in prop::option::of(0i64..3),
        limit in 1usize..6,
        early in any::<bool>(),
    ) {
        let db = Database::in_memory();
        let c = db.create_collection("f", CollectionConfig::new()).unwrap();
        if early {
            c.create_payload_index("k", kind).unwrap();
        }
        let mut held: BTreeMap<u64, Value> = BTreeMap::new();
        c.upsert(payloads.iter().enumerate().map(|(i, p)| PointStruct::new(i as u64).payload(p.clone())).collect()).unwrap();
        for (i, p) in payloads.iter().enumerate() {
            held.insert(i as u64, p.clone());
        }
        if !early {
            c.create_payload_index("k", kind).unwrap();
        }
        for (id, p) in updates {
            if held.contains_key(&id) {
                c.overwrite_payload(vec![PointId::Num(id)], p.clone()).unwrap();
                held.insert(id, p);
            }
        }
        if !deleted.is_empty() {
            c.delete(deleted.iter().map(|d| PointId::Num(*d)).collect::<Vec<_>>()).unwrap();
        }
        for d in &deleted {
            held.remove(d);
        }
        let filter = group.map(|g| Filter::must([field("g").eq(g)]));
        let mut counts: BTreeMap<FacetValue, usize> = BTreeMap::new();
        for p in held.values().filter(|p| group.is_none_or(|g| p["g"] == json!(g))) {
            for v in values(kind, p) {
                *counts.entry(v).or_default() += 1;
            }
        }
        let mut want: Vec<(FacetValue, usize)> = counts.into_iter().collect();
        want.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        want.truncate(limit);
        let got: Vec<(FacetValue, usize)> =
            c.facet("k", filter.as_ref(), limit).unwrap().into_iter().map(|h| (h.value, h.count)).collect();
        prop_assert_eq!(got, want);
    }
}

#[test]
fn a_facet_needs_a_value_index_and_a_limit() {
    let db = Database::in_memory();
    let c = db.create_collection("f", CollectionConfig::new()).unwrap();
    c.upsert(vec![PointStruct::new(1).payload(json!({"k": "a", "t": "some text", "x": 1.5}))]).unwrap();
    assert!(matches!(
        c.facet("k", None, 10),
        Err(Error::Index(braid::filter::IndexError::FacetNeedsIndex { found: None, .. }))
    ));
    c.create_payload_index("x", IndexKind::Float).unwrap();
    assert!(matches!(
        c.facet("x", None, 10),
        Err(Error::Index(braid::filter::IndexError::FacetNeedsIndex { found: Some("float"), .. }))
    ));
    c.create_payload_index("k", IndexKind::Keyword).unwrap();
    assert!(matches!(c.facet("k", None, 0), Err(Error::Limit { .. })));
    assert!(matches!(c.facet("a..b", None, 10), Err(Error::Index(_))));
    let hits = c.facet("k", None, 10).unwrap();
    assert_eq!(hits, vec![braid::FacetHit { value: FacetValue::Keyword("a".into()), count: 1 }]);
}
