//! Indexed evaluation against per-point evaluation on random payloads and filters, and
//! cardinality bounds against the true count.

use std::sync::Arc;

use braid_core::{OffsetFilter, PointId, PointOffset};
use braid_filter::{
    Condition, FieldCondition, FieldTest, Filter, IndexKind, JsonPath, Match, MinShould, PayloadSource,
    PayloadStore, PointLookup, Range, Scalar, Stored, Variants,
};
use proptest::prelude::*;
use roaring::RoaringBitmap;
use serde_json::{Value, json};

const KEYS: [&str; 7] = ["a", "b", "n", "tags", "obj.b", "arr[].b", "t"];
const WORDS: [&str; 4] = ["x", "y", "zz", "550e8400-e29b-41d4-a716-446655440000"];

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        (-3i64..4).prop_map(Value::from),
        prop::sample::select(vec![0.0f64, -0.0, 1.0, 1.5, -2.5, 3.0]).prop_map(Value::from),
        prop::sample::select(WORDS.to_vec()).prop_map(Value::from),
        Just(json!("550E8400-E29B-41D4-A716-446655440000")),
        prop::sample::select(vec!["2024-01-01T00:00:00Z", "2024-06-01", "2023-12-31T23:00:00-02:00"])
            .prop_map(Value::from),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => scalar(),
        1 => prop::collection::vec(scalar(), 0..4).prop_map(Value::from),
    ]
}

fn payload() -> impl Strategy<Value = Value> {
    (
        prop::collection::btree_map(prop::sample::select(vec!["a", "b", "n", "tags", "t"]), value(), 0..5),
        prop::option::of(value()),
        prop::option::of(prop::collection::vec(prop::option::of(value()), 0..3)),
    )
        .prop_map(|(top, obj_b, arr)| {
            let mut m: serde_json::Map<String, Value> =
                top.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
            if let Some(b) = obj_b {
                m.insert("obj".into(), json!({"b": b}));
            }
            if let Some(items) = arr {
                let items: Vec<Value> =
                    items.into_iter().map(|b| b.map_or(json!({}), |b| json!({"b": b}))).collect();
                m.insert("arr".into(), Value::Array(items));
            }
            Value::Object(m)
        })
}

fn key() -> impl Strategy<Value = JsonPath> {
    prop::sample::select(KEYS.to_vec()).prop_map(|k| JsonPath::parse(k).unwrap())
}

fn range<T: std::fmt::Debug + Clone + 'static>(
    bound: impl Strategy<Value = T> + Clone,
) -> impl Strategy<Value = Range<T>> {
    (
        prop::option::of(bound.clone()),
        prop::option::of(bound.clone()),
        prop::option::of(bound.clone()),
        prop::option::of(bound),
    )
        .prop_map(|(gt, gte, lt, lte)| Range { gt, gte, lt, lte })
        .prop_filter("a range needs a bound", |r| {
            r.gt.is_some() || r.gte.is_some() || r.lt.is_some() || r.lte.is_some()
        })
}

/// An empty list reads back from JSON as keywords (`[]` has no element type); the two
/// empty forms mean the same thing, so generate only the one JSON can carry.
fn integers(list: Vec<i64>) -> Variants {
    if list.is_empty() { Variants::Keywords(Vec::new()) } else { Variants::Integers(list) }
}

fn field_test() -> impl Strategy<Value = FieldTest> {
    let word = prop::sample::select(WORDS.to_vec()).prop_map(str::to_string);
    prop_oneof![
        word.clone().prop_map(|w| FieldTest::Match(Match::Value(Scalar::Keyword(w)))),
        (-3i64..4).prop_map(|i| FieldTest::Match(Match::Value(Scalar::Integer(i)))),
        any::<bool>().prop_map(|b| FieldTest::Match(Match::Value(Scalar::Bool(b)))),
        prop::collection::vec(word.clone(), 0..3)
            .prop_map(|w| FieldTest::Match(Match::Any(Variants::Keywords(w)))),
        prop::collection::vec(-3i64..4, 0..3).prop_map(|i| FieldTest::Match(Match::Any(integers(i)))),
        prop::collection::vec(word.clone(), 0..3)
            .prop_map(|w| FieldTest::Match(Match::Except(Variants::Keywords(w)))),
        prop::collection::vec(-3i64..4, 0..3).prop_map(|i| FieldTest::Match(Match::Except(integers(i)))),
        prop::sample::select(vec!["z", "x", "5"]).prop_map(|t| FieldTest::Match(Match::Text(t.to_string()))),
        prop::sample::select(vec!["z q", "x", ""])
            .prop_map(|t| FieldTest::Match(Match::TextAny(t.to_string()))),
        prop::sample::select(vec!["z", "x5"]).prop_map(|t| FieldTest::Match(Match::Phrase(t.to_string()))),
        prop::sample::select(vec!["z", "a"]).prop_map(|t| FieldTest::Match(Match::Prefix(t.to_string()))),
        prop::sample::select(vec!["z", "x5"]).prop_map(|t| FieldTest::Match(Match::Substring(t.to_string()))),
        range(prop::sample::select(vec![-1.0f64, 0.0, -0.0, 1.0, 1.5, 3.0])).prop_map(FieldTest::Range),
        range(prop::sample::select(vec![
            1_704_067_200_000_000i64,
            1_717_200_000_000_000,
            1_704_060_000_000_000
        ]))
        .prop_map(FieldTest::DatetimeRange),
        range(0usize..4).prop_map(FieldTest::ValuesCount),
    ]
}

fn condition_leaf() -> impl Strategy<Value = Condition> {
    prop_oneof![
        6 => (key(), field_test()).prop_map(|(key, test)| Condition::Field(FieldCondition { key, test })),
        1 => key().prop_map(Condition::IsEmpty),
        1 => key().prop_map(Condition::IsNull),
        1 => prop::collection::btree_set((0u64..50).prop_map(PointId::Num), 0..5).prop_map(Condition::HasId),
        1 => prop::sample::select(vec!["image", "text", "nope"]).prop_map(Condition::has_vector),
    ]
}

fn filter() -> impl Strategy<Value = Filter> {
    let leaf = prop::collection::vec(condition_leaf(), 0..3).prop_map(Filter::must);
    leaf.prop_recursive(3, 24, 4, |inner| {
        let cond = prop_oneof![
            3 => condition_leaf(),
            1 => inner.clone().prop_map(Filter::into_condition),
            1 => inner.clone().prop_map(|f| Condition::Nested { key: JsonPath::parse("arr").unwrap(), filter: Box::new(f) }),
        ];
        (
            prop::collection::vec(cond.clone(), 0..3),
            prop::option::of(prop::collection::vec(cond.clone(), 0..3)),
            prop::collection::vec(cond.clone(), 0..2),
            prop::option::of((prop::collection::vec(cond, 0..4), 1usize..4)),
        )
            .prop_map(|(must, should, must_not, min)| Filter {
                must,
                should,
                must_not,
                min_should: min.map(|(conditions, min_count)| MinShould { conditions, min_count }),
            })
    })
}

struct Segment {
    live: RoaringBitmap,
    image: RoaringBitmap,
    text: RoaringBitmap,
}

/// Payloads by offset as JSON, standing in for a file of them (`on_disk_payload`).
#[derive(Debug)]
struct Source(std::collections::BTreeMap<u32, Vec<u8>>, usize);

impl PayloadSource for Source {
    fn payload(&self, offset: u32) -> Option<Value> {
        self.0.get(&offset).map(|bytes| serde_json::from_slice(bytes).unwrap())
    }
    fn len(&self) -> usize {
        self.1
    }
    fn bytes(&self) -> usize {
        0
    }
    fn encoded(&self, offset: u32) -> Option<&[u8]> {
        self.0.get(&offset).map(Vec::as_slice)
    }
}

impl PointLookup for Segment {
    fn offset_of(&self, id: &PointId) -> Option<PointOffset> {
        // Ids 0..50 map to offsets 2·id, so has_id is not the identity.
        match id {
            PointId::Num(n) => Some(PointOffset(*n as u32 * 2)),
            PointId::Uuid(_) => None,
        }
    }
    fn vectors(&self, name: &str) -> Option<&RoaringBitmap> {
        match name {
            "image" => Some(&self.image),
            "text" => Some(&self.text),
            _ => None,
        }
    }
    fn live(&self) -> &RoaringBitmap {
        &self.live
    }
}

fn indexes() -> impl Strategy<Value = Vec<(&'static str, IndexKind)>> {
    prop::collection::vec(
        (
            prop::sample::select(KEYS.to_vec()),
            prop::sample::select(vec![
                IndexKind::Keyword,
                IndexKind::Integer,
                IndexKind::Float,
                IndexKind::Bool,
                IndexKind::Uuid,
                IndexKind::Datetime,
            ]),
        ),
        0..6,
    )
}

proptest! {
    #![proptest_config(ProptestConfig { max_shrink_iters: 2000, ..ProptestConfig::default() })]

    #[test]
    fn indexed_evaluation_equals_per_point(
        payloads in prop::collection::vec(payload(), 1..40),
        updates in prop::collection::vec((0usize..40, prop::option::of(payload())), 0..10),
        indexes in indexes(),
        deleted in prop::collection::vec(0u32..40, 0..8),
        image_mask in any::<u64>(),
        filter in filter(),
        // 0: payloads in memory throughout; 1: read from a source made before the
        // updates (which stay in memory beside it); 2: that, then read back into memory.
        held in 0u8..3,
    ) {
        let n = payloads.len();
        let mut store = PayloadStore::new();
        // Index some keys before the data arrives and some after, and update payloads
        // afterwards, so that incremental maintenance and bulk builds are both exercised.
        let (early, late) = indexes.split_at(indexes.len() / 2);
        for (k, kind) in early {
            let _ = store.create_index(k, *kind);
        }
        for (i, p) in payloads.iter().enumerate() {
            store.set(PointOffset(i as u32), p.clone());
        }
        for (k, kind) in late {
            let _ = store.create_index(k, *kind);
        }
        if held > 0 {
            let source = Source(store.all().map(|(o, p)| (o, serde_json::to_vec(&*p).unwrap())).collect(), n);
            store.hold_in(Some(Arc::new(source)));
            prop_assert!(store.is_held_in_source());
        }
        let updates_model = updates.clone();
        for (i, p) in updates {
            let o = PointOffset((i % n) as u32);
            match p {
                Some(p) => { store.set(o, p); }
                None => { store.remove(o); }
            }
        }
        if held == 2 {
            store.hold_in(None);
            prop_assert!(!store.is_held_in_source());
        }
        let mut live: RoaringBitmap = (0..n as u32).collect();
        for d in deleted { live.remove(d); }
        let image: RoaringBitmap = (0..n as u32).filter(|i| image_mask >> (i % 64) & 1 == 1).collect();
        let segment = Segment { live: live.clone(), image, text: RoaringBitmap::new() };

        // The model: the payloads as written, kept apart from the store.
        // An empty object is no payload.
        let kept = |p: &Value| Some(p.clone()).filter(|p| p.as_object().is_none_or(|m| !m.is_empty()));
        let mut model: Vec<Option<Value>> = payloads.iter().map(kept).collect();
        for (i, p) in &updates_model {
            model[i % n] = p.as_ref().and_then(kept);
        }
        for o in 0..n as u32 {
            prop_assert_eq!(store.get(PointOffset(o)).map(|p| p.into_owned()), model[o as usize].clone());
            // Undecoded, as the next source's writer reads it: the same payload.
            let stored = match store.stored(PointOffset(o)) {
                Stored::None => None,
                Stored::Value(v) => Some(Value::clone(v)),
                Stored::Encoded(bytes) => Some(serde_json::from_slice(bytes).unwrap()),
            };
            prop_assert_eq!(stored, model[o as usize].clone());
        }
        // Payloads in memory: all of them, or those written since the source was made.
        let written_since = |i: usize| updates_model.iter().any(|(j, p)| j % n == i && p.is_some());
        let in_memory = (0..n).filter(|&i| model[i].is_some() && (held != 1 || written_since(i))).count();
        prop_assert_eq!(store.residency().0, in_memory);
        let null = Value::Null;
        let expected: RoaringBitmap = live.iter()
            .filter(|&o| filter.check(model[o as usize].as_ref().unwrap_or(&null), PointOffset(o), &segment))
            .collect();
        let planned = store.plan(&filter, &segment);
        prop_assert_eq!(planned.matching(), expected.clone(), "filter {}", filter.to_json());
        for o in 0..n as u32 + 2 {
            prop_assert_eq!(planned.matches(PointOffset(o)), expected.contains(o), "offset {} filter {}", o, filter.to_json());
        }
        let est = planned.estimate();
        let count = expected.len() as usize;
        prop_assert!(est.min <= count && count <= est.max, "{est:?} vs true {count} for {}", filter.to_json());
        prop_assert!(est.min <= est.expected && est.expected <= est.max);
    }

    #[test]
    fn json_round_trip(filter in filter()) {
        let again = Filter::from_json(&filter.to_json()).unwrap();
        prop_assert_eq!(again, filter);
    }
}
