//! `order_by` against a per-point reference: for random payloads (integers, floats,
//! datetimes, arrays, missing and wrongly typed values), updates, deletes and filters,
//! `Collection::scroll_ordered` and `Query::OrderBy` equal sorting every (value, point)
//! pair the index holds; paging with the cursor visits each pair exactly once.

use braid::{
    CollectionConfig, Database, Direction, Error, Filter, IndexKind, OrderBy, OrderValue, PointId,
    PointStruct, Prefetch, Query, QueryRequest, VectorParams, field,
};
use proptest::prelude::*;
use serde_json::{Value, json};

fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        (-3i64..4).prop_map(|i| json!(i)),
        (-3i64..4).prop_map(|i| json!(i as f64 + 0.5)),
        (0u32..4).prop_map(|d| json!(format!("2024-01-0{}T00:00:00Z", d + 1))),
        Just(json!("red")),
        Just(Value::Null),
    ]
}

fn payload() -> impl Strategy<Value = Value> {
    (prop_oneof![value(), prop::collection::vec(value(), 0..4).prop_map(Value::Array)], 0i64..3)
        .prop_map(|(k, g)| json!({"k": k, "g": g}))
}

/// The (value, id) pairs an index of `kind` holds for one point, as order_by sees them.
fn pairs(kind: IndexKind, id: u64, p: &Value) -> Vec<(OrderValue, u64)> {
    let items: Vec<&Value> = match &p["k"] {
        Value::Array(a) => a.iter().collect(),
        v => vec![v],
    };
    let mut out: Vec<(OrderValue, u64)> = items
        .into_iter()
        .filter_map(|v| match (kind, v) {
            (IndexKind::Integer, Value::Number(n)) => n.as_i64().map(OrderValue::Int),
            (IndexKind::Float, Value::Number(n)) => n.as_f64().map(OrderValue::Float),
            (IndexKind::Datetime, Value::String(s)) => {
                braid::filter::parse_datetime(s, "k").ok().map(OrderValue::Int)
            }
            _ => None,
        })
        .map(|v| (v, id))
        .collect();
    out.sort_by(|a, b| a.0.total_cmp(&b.0));
    out.dedup_by(|a, b| a.0.total_cmp(&b.0).is_eq());
    out
}

fn reference(
    kind: IndexKind,
    points: &std::collections::BTreeMap<u64, Value>,
    group: Option<i64>,
    order: &OrderBy,
) -> Vec<(OrderValue, u64)> {
    let mut all: Vec<(OrderValue, u64)> = points
        .iter()
        .filter(|(_, p)| group.is_none_or(|g| p["g"] == json!(g)))
        .flat_map(|(id, p)| pairs(kind, *id, p))
        .filter(|(v, _)| match (order.start_from, order.direction) {
            (None, _) => true,
            (Some(s), Direction::Asc) => v.as_f64() >= s,
            (Some(s), Direction::Desc) => v.as_f64() <= s,
        })
        .collect();
    all.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    if order.direction == Direction::Desc {
        all.reverse();
    }
    all
}

fn num(id: PointId) -> u64 {
    match id {
        PointId::Num(n) => n,
        other => panic!("unexpected id {other}"),
    }
}

#[derive(Clone, Debug)]
enum Step {
    Upsert(u64, Value),
    Delete(u64),
}

fn steps() -> impl Strategy<Value = Vec<Step>> {
    prop::collection::vec(
        prop_oneof![
            4 => (0u64..40, payload()).prop_map(|(i, p)| Step::Upsert(i, p)),
            1 => (0u64..40).prop_map(Step::Delete),
        ],
        1..80,
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn order_by_equals_sorting_every_value_and_pages_visit_each_once(
        steps in steps(),
        kind in prop::sample::select(vec![IndexKind::Integer, IndexKind::Float, IndexKind::Datetime]),
        descending in any::<bool>(),
        start in prop::option::of(-2i64..3),
        group in prop::option::of(0i64..3),
        page in 1usize..6,
        index_first in any::<bool>(),
    ) {
        let db = Database::in_memory();
        let c = db.create_collection("o", CollectionConfig::new()).unwrap();
        if index_first {
            c.create_payload_index("k", kind).unwrap();
        }
        let mut model = std::collections::BTreeMap::new();
        for step in &steps {
            match step {
                Step::Upsert(i, p) => {
                    c.upsert(vec![PointStruct::new(*i).payload(p.clone())]).unwrap();
                    model.insert(*i, p.clone());
                }
                Step::Delete(i) => {
                    c.delete(vec![PointId::Num(*i)]).unwrap();
                    model.remove(i);
                }
            }
        }
        if !index_first {
            c.create_payload_index("k", kind).unwrap();
        }
        // Datetimes start from a day (in microseconds), numbers from a number.
        let start_from = start.map(|s| match kind {
            IndexKind::Datetime => 1_704_067_200_000_000.0 + (s.max(0) as f64) * 86_400e6,
            _ => s as f64,
        });
        let direction = if descending { Direction::Desc } else { Direction::Asc };
        let order = OrderBy { key: "k".into(), direction, start_from, after: None };
        let filter = group.map(|g| Filter::must([field("g").eq(g)]));
        let want = reference(kind, &model, group, &order);

        // One call with room for everything.
        let (all, next) = c.scroll_ordered(filter.as_ref(), &order, 10_000, false, false).unwrap();
        let got: Vec<(OrderValue, u64)> = all.iter().map(|r| (r.order_value.unwrap(), num(r.id))).collect();
        prop_assert_eq!(&got, &want);
        prop_assert!(next.is_none());

        // Page by page with the cursor: every pair once, in order.
        let mut paged = Vec::new();
        let mut cursor = order.clone();
        loop {
            let (records, next) = c.scroll_ordered(filter.as_ref(), &cursor, page, false, false).unwrap();
            paged.extend(records.iter().map(|r| (r.order_value.unwrap(), num(r.id))));
            match next {
                Some((v, id)) => cursor = order.clone().after(v, id),
                None => break,
            }
            prop_assert!(paged.len() <= want.len());
        }
        prop_assert_eq!(&paged, &want);

        // The query API: the same order, with an offset.
        let query = QueryRequest { query: Some(Query::OrderBy(order.clone())), filter: filter.clone(), ..QueryRequest::default() }
            .limit(7)
            .offset(2);
        let hits = c.query(query).unwrap();
        let got: Vec<(OrderValue, u64)> = hits.iter().map(|h| (h.order_value.unwrap(), num(h.id))).collect();
        let expected: Vec<(OrderValue, u64)> = want.iter().skip(2).take(7).copied().collect();
        prop_assert_eq!(got, expected);
        prop_assert!(hits.iter().all(|h| h.score == 1.0));
    }
}

#[test]
fn order_by_over_prefetch_candidates_and_errors() {
    let db = Database::in_memory();
    let config = CollectionConfig::new().vector("v", VectorParams::new(2, braid::Distance::Dot));
    let c = db.create_collection("o", config).unwrap();
    c.upsert(
        (0..50u64)
            .map(|i| {
                PointStruct::new(i)
                    .vector("v", vec![i as f32, 1.0])
                    .payload(json!({"price": (i * 37 % 50) as i64, "tag": "x"}))
            })
            .collect(),
    )
    .unwrap();
    // Without an index: a clear refusal naming the key (and the index it has).
    let order = OrderBy::asc("price");
    let no_index = c.scroll_ordered(None, &order, 10, false, false).unwrap_err();
    assert!(matches!(no_index, Error::Query(braid::query::QueryError::NoRangeIndex { .. })), "{no_index}");
    assert!(no_index.to_string().contains("price"));
    c.create_payload_index("tag", IndexKind::Keyword).unwrap();
    let wrong = c.scroll_ordered(None, &OrderBy::asc("tag"), 10, false, false).unwrap_err();
    assert!(wrong.to_string().contains("keyword"), "{wrong}");
    // A key that is not a key path is the request's error, not the engine's.
    for bad in ["", "a.b[", "x[]y"] {
        let e = c.scroll_ordered(None, &OrderBy::asc(bad), 10, false, false).unwrap_err();
        assert!(matches!(e, Error::Query(braid::query::QueryError::OrderKey(_))), "{bad}: {e}");
    }
    c.create_payload_index("price", IndexKind::Integer).unwrap();

    // Over a prefetch: the 10 nearest to (1, 0) (ids 40..49), ordered by price.
    let request = QueryRequest {
        prefetch: vec![Prefetch::nearest("v", vec![1.0, 0.0], 10)],
        query: Some(Query::OrderBy(OrderBy::desc("price"))),
        ..QueryRequest::default()
    }
    .limit(5);
    let hits = c.query(request).unwrap();
    let mut want: Vec<(i64, u64)> = (40..50u64).map(|i| ((i * 37 % 50) as i64, i)).collect();
    want.sort_by(|a, b| b.cmp(a));
    let got: Vec<(i64, u64)> = hits
        .iter()
        .map(|h| match h.order_value {
            Some(OrderValue::Int(v)) => (v, num(h.id)),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(got, want[..5].to_vec());
    let plan = c.explain(&QueryRequest {
        query: Some(Query::OrderBy(OrderBy::asc("price"))),
        ..QueryRequest::default()
    });
    assert!(plan.unwrap().to_string().contains("order by `price` ascending"));
    let nan = OrderBy { start_from: Some(f64::NAN), ..OrderBy::asc("price") };
    assert!(matches!(
        c.scroll_ordered(None, &nan, 10, false, false),
        Err(Error::Query(braid::query::QueryError::BadStartFrom))
    ));
}
