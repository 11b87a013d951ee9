//! Per-point evaluation: the reference semantics every index must reproduce.
//!
//! Rules (Qdrant's server; `docs/filter.md` has the table): a condition on an array
//! holds when some element holds; a missing key fails `match`, `range`, `except` and
//! geo; `values_count` on a missing key is checked against a count of 0; `nested`
//! needs one element to satisfy the whole inner filter, and `has_id`/`has_vector`
//! inside it are false.

use braid_core::PointOffset;
use serde_json::Value;

use crate::ast::*;
use crate::parse::{datetime_micros, geo_point};
use crate::{PointLookup, path::JsonPath};

/// The point a filter is evaluated on: its payload, plus its offset and the segment's
/// lookups outside `nested` (inside, `point` is `None`).
#[derive(Clone, Copy)]
pub(crate) struct Subject<'a> {
    pub payload: &'a Value,
    pub point: Option<(PointOffset, &'a dyn PointLookup)>,
}

impl Filter {
    /// Does a point with this `payload` at `offset` of the segment behind `lookup` pass?
    /// The reference evaluation: no index is consulted.
    pub fn check(&self, payload: &Value, offset: PointOffset, lookup: &dyn PointLookup) -> bool {
        self.check_subject(Subject { payload, point: Some((offset, lookup)) })
    }

    pub(crate) fn check_subject(&self, s: Subject<'_>) -> bool {
        self.must.iter().all(|c| c.check_subject(s))
            && self.should.as_ref().is_none_or(|list| list.iter().any(|c| c.check_subject(s)))
            && !self.must_not.iter().any(|c| c.check_subject(s))
            && self.min_should.as_ref().is_none_or(|m| {
                m.min_count == 0
                    || m.conditions.iter().filter(|c| c.check_subject(s)).take(m.min_count).count()
                        >= m.min_count
            })
    }
}

impl Condition {
    pub(crate) fn check_subject(&self, s: Subject<'_>) -> bool {
        match self {
            Condition::Field(f) => f.test.check(&f.key.values(s.payload)),
            Condition::IsEmpty(key) => is_empty(&key.values(s.payload)),
            Condition::IsNull(key) => key.values(s.payload).iter().any(|v| v.is_null()),
            Condition::HasId(ids) => s
                .point
                .is_some_and(|(offset, lookup)| ids.iter().any(|id| lookup.offset_of(id) == Some(offset))),
            Condition::HasVector(name) => s
                .point
                .is_some_and(|(offset, lookup)| lookup.vectors(name).is_some_and(|b| b.contains(offset.0))),
            Condition::Nested { key, filter } => nested_elements(key, s.payload)
                .any(|element| filter.check_subject(Subject { payload: element, point: None })),
            Condition::Filter(f) => f.check_subject(s),
        }
    }
}

/// The elements of the arrays at `key` (`key[]`); non-array values give none.
pub(crate) fn nested_elements<'a>(key: &JsonPath, payload: &'a Value) -> impl Iterator<Item = &'a Value> {
    key.values(payload).into_iter().filter_map(Value::as_array).flatten()
}

pub(crate) fn is_empty(values: &[&Value]) -> bool {
    values.iter().all(|v| v.is_null() || v.as_array().is_some_and(Vec::is_empty))
}

/// Each value, or each element of an array value: what "any element matches" ranges over.
fn flat<'a>(values: &'a [&'a Value]) -> impl Iterator<Item = &'a Value> {
    values.iter().flat_map(|v| match v {
        Value::Array(items) => items.iter().collect::<Vec<_>>(),
        other => vec![*other],
    })
}

/// The words of a text as Qdrant's default `word` tokenizer makes them: maximal runs
/// of letters and digits, lowercased.
pub(crate) fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_lowercase).collect()
}

/// The strings among the values (array elements included).
fn strings<'a>(values: &'a [&'a Value]) -> impl Iterator<Item = &'a str> {
    flat(values).filter_map(Value::as_str)
}

/// The number of values a payload value counts as for `values_count`.
pub(crate) fn value_count(v: &Value) -> usize {
    match v {
        Value::Null => 0,
        Value::Array(items) => items.len(),
        _ => 1,
    }
}

impl Scalar {
    /// Does one (non-array) payload value equal this scalar?
    pub(crate) fn equals(&self, v: &Value) -> bool {
        match (self, v) {
            (Scalar::Keyword(k), Value::String(s)) => k == s,
            (Scalar::Integer(i), Value::Number(n)) => n.as_i64() == Some(*i),
            (Scalar::Bool(b), Value::Bool(x)) => b == x,
            _ => false,
        }
    }
}

impl Variants {
    pub(crate) fn contains(&self, v: &Value) -> bool {
        match (self, v) {
            (Variants::Keywords(list), Value::String(s)) => list.contains(s),
            (Variants::Integers(list), Value::Number(n)) => n.as_i64().is_some_and(|i| list.contains(&i)),
            _ => false,
        }
    }

    /// `except` on one element: null is false; a value of another type than the list
    /// is true; otherwise "not in the list".
    fn excludes(&self, v: &Value) -> bool {
        match (self, v) {
            (_, Value::Null) => false,
            (Variants::Keywords(list), Value::String(s)) => !list.contains(s),
            (Variants::Integers(list), Value::Number(n)) => n.as_i64().is_none_or(|i| !list.contains(&i)),
            _ => true,
        }
    }
}

impl FieldTest {
    /// Does the test hold for the values found at its key?
    pub(crate) fn check(&self, values: &[&Value]) -> bool {
        match self {
            FieldTest::Match(Match::Value(x)) => flat(values).any(|v| x.equals(v)),
            FieldTest::Match(Match::Any(list)) => flat(values).any(|v| list.contains(v)),
            FieldTest::Match(Match::Except(list)) => flat(values).any(|v| list.excludes(v)),
            FieldTest::Match(Match::Text(t)) => {
                let query = words(t);
                !query.is_empty() && strings(values).any(|s| query.iter().all(|w| words(s).contains(w)))
            }
            FieldTest::Match(Match::TextAny(t)) => {
                let query = words(t);
                strings(values).any(|s| words(s).iter().any(|w| query.contains(w)))
            }
            FieldTest::Match(Match::Phrase(t)) => {
                let phrase = words(t);
                !phrase.is_empty()
                    && strings(values).any(|s| words(s).windows(phrase.len()).any(|w| w == phrase))
            }
            FieldTest::Match(Match::Prefix(t)) => strings(values).any(|s| s.starts_with(t.as_str())),
            FieldTest::Match(Match::Substring(t)) => strings(values).any(|s| s.contains(t.as_str())),
            FieldTest::Range(r) => flat(values).any(|v| v.as_f64().is_some_and(|x| r.contains(x))),
            FieldTest::DatetimeRange(r) => {
                flat(values).any(|v| v.as_str().and_then(datetime_micros).is_some_and(|t| r.contains(t)))
            }
            FieldTest::ValuesCount(r) => {
                if values.is_empty() {
                    r.contains(0)
                } else {
                    values.iter().any(|v| r.contains(value_count(v)))
                }
            }
            FieldTest::GeoRadius(g) => flat(values).filter_map(geo_point).any(|p| g.contains(p)),
            FieldTest::GeoBoundingBox(b) => flat(values).filter_map(geo_point).any(|p| b.contains(p)),
            FieldTest::GeoPolygon(p) => flat(values).filter_map(geo_point).any(|x| p.contains(x)),
        }
    }
}

#[cfg(test)]
mod tests {
    use roaring::RoaringBitmap;
    use serde_json::json;

    use super::*;
    use crate::field;

    struct NoPoints(RoaringBitmap);
    impl PointLookup for NoPoints {
        fn offset_of(&self, id: &braid_core::PointId) -> Option<PointOffset> {
            match id {
                braid_core::PointId::Num(n) => Some(PointOffset(*n as u32)),
                braid_core::PointId::Uuid(_) => None,
            }
        }
        fn vectors(&self, name: &str) -> Option<&RoaringBitmap> {
            (name == "image").then_some(&self.0)
        }
        fn live(&self) -> &RoaringBitmap {
            &self.0
        }
    }

    #[track_caller]
    fn check(filter: &Filter, payload: Value, expected: bool) {
        let lookup = NoPoints(RoaringBitmap::from_iter([0u32]));
        assert_eq!(
            filter.check(&payload, PointOffset(0), &lookup),
            expected,
            "{:?} on {payload}",
            filter.to_json()
        );
    }

    fn f(text: &str) -> Filter {
        Filter::from_json_str(text).unwrap()
    }

    #[test]
    fn semantics_table() {
        let one = |c| Filter::must([c]);
        // match value: keyword, integer, bool; arrays match on any element; floats do not equal ints.
        check(&one(field("a").eq("x")), json!({"a": "x"}), true);
        check(&one(field("a").eq("x")), json!({"a": ["y", "x"]}), true);
        check(&one(field("a").eq(1)), json!({"a": 1.0}), false);
        check(&one(field("a").eq(1)), json!({"a": 1}), true);
        check(&one(field("a").eq(true)), json!({"a": [false, true]}), true);
        check(&one(field("a").eq("x")), json!({}), false);
        check(&one(field("a").eq("x")), json!({"a": null}), false);
        // except: missing false, null false, type mismatch true, arrays any element.
        check(&one(field("a").except_keyword(["x"])), json!({}), false);
        check(&one(field("a").except_keyword(["x"])), json!({"a": null}), false);
        check(&one(field("a").except_keyword(["x"])), json!({"a": "x"}), false);
        check(&one(field("a").except_keyword(["x"])), json!({"a": ["x", "y"]}), true);
        check(&one(field("a").except_keyword(["x"])), json!({"a": 3}), true);
        check(&one(field("a").except_keyword(["x"])), json!({"a": []}), false);
        // text is a substring test.
        // text: every query word is a word of the value (lowercased, split on anything
        // not a letter or digit), in any order; not a part of a word.
        check(&one(field("d").text("Red, SHOE")), json!({"d": "a red shoe"}), true);
        check(&one(field("d").text("shoe red")), json!({"d": "a red-shoe!"}), true);
        check(&one(field("d").text("red sh")), json!({"d": "a red shoe"}), false);
        check(&one(field("d").text("blue")), json!({"d": ["a red shoe", "blue"]}), true);
        check(&one(field("d").text("")), json!({"d": "a red shoe"}), false);
        check(&one(field("d").text("...")), json!({"d": "a red shoe"}), false);
        // text_any: one query word is enough; phrase: the words in order, adjacent.
        check(&one(field("d").text_any("green SHOE")), json!({"d": "a red shoe"}), true);
        check(&one(field("d").text_any("green sho")), json!({"d": "a red shoe"}), false);
        check(&one(field("d").text_any("")), json!({"d": "a red shoe"}), false);
        check(&one(field("d").text_any("shoe")), json!({"d": [1, "shoe"]}), true);
        check(&one(field("d").phrase("Red Shoe")), json!({"d": "a red shoe"}), true);
        check(&one(field("d").phrase("shoe red")), json!({"d": "a red shoe"}), false);
        check(&one(field("d").phrase("a shoe")), json!({"d": "a red shoe"}), false);
        check(&one(field("d").phrase("")), json!({"d": "a red shoe"}), false);
        // prefix and substring: bytes, case-sensitive. Non-strings never match.
        check(&one(field("d").prefix("a re")), json!({"d": "a red shoe"}), true);
        check(&one(field("d").prefix("red")), json!({"d": "a red shoe"}), false);
        check(&one(field("d").prefix("1")), json!({"d": 12}), false);
        check(&one(field("d").prefix("")), json!({"d": 12}), false);
        check(&one(field("d").substring("d sh")), json!({"d": "a red shoe"}), true);
        check(&one(field("d").substring("Red")), json!({"d": "a red shoe"}), false);
        // range: numbers only, any element.
        check(&one(field("p").lte(200.0)), json!({"p": 150.5}), true);
        check(&one(field("p").lte(200.0)), json!({"p": [300, 100]}), true);
        check(&one(field("p").lte(200.0)), json!({"p": "100"}), false);
        check(&one(field("p").lte(200.0)), json!({"p": true}), false);
        // datetime range.
        let dt =
            f(r#"{"must": [{"key": "t", "range": {"gte": "2024-01-01T00:00:00Z", "lt": "2024-02-01"}}]}"#);
        check(&dt, json!({"t": "2024-01-15T10:00:00+02:00"}), true);
        check(&dt, json!({"t": "2024-02-01T00:00:00Z"}), false);
        check(&dt, json!({"t": "not a date"}), false);
        // is_empty / is_null.
        for (payload, empty, null) in [
            (json!({}), true, false),
            (json!({"a": null}), true, true),
            (json!({"a": []}), true, false),
            (json!({"a": [null]}), false, false),
            (json!({"a": 0}), false, false),
        ] {
            check(&one(field("a").is_empty()), payload.clone(), empty);
            check(&one(field("a").is_null()), payload, null);
        }
        check(&one(field("a[].b").is_null()), json!({"a": [{"b": 1}, {"b": null}]}), true);
        // values_count: missing counts as 0.
        let count = |r: Range<usize>| one(field("a").values_count(r));
        check(&count(Range { lt: Some(1), ..Range::default() }), json!({}), true);
        check(&count(Range { gte: Some(2), ..Range::default() }), json!({"a": [1, 2]}), true);
        check(&count(Range { gte: Some(2), ..Range::default() }), json!({"a": 1}), false);
        // should: [] is false; absent clauses are true; min_should.
        check(&Filter { should: Some(vec![]), ..Filter::default() }, json!({}), false);
        check(&Filter::default(), json!({}), true);
        check(
            &Filter::min_should([field("a").eq(1), field("b").eq(1), field("c").eq(1)], 2),
            json!({"a": 1, "c": 1}),
            true,
        );
        check(&Filter::min_should([field("a").eq(1), field("b").eq(1)], 2), json!({"a": 1}), false);
        // has_id / has_vector come from the lookup.
        check(&one(Condition::has_id([0u64])), json!({}), true);
        check(&one(Condition::has_id([5u64])), json!({}), false);
        check(&one(Condition::has_vector("image")), json!({}), true);
        check(&one(Condition::has_vector("text")), json!({}), false);
    }

    #[test]
    fn nested_needs_one_element_for_the_whole_filter() {
        let payload = json!({"reviews": [{"user": "ann", "score": 2}, {"user": "bob", "score": 9}]});
        let both = Filter::must([field("user").eq("ann"), field("score").gte(5.0)]);
        check(&Filter::must([Condition::nested("reviews", both.clone())]), payload.clone(), false);
        // Without nested the two conditions may hold on different elements.
        check(
            &Filter::must([field("reviews[].user").eq("ann"), field("reviews[].score").gte(5.0)]),
            payload.clone(),
            true,
        );
        let bob = Filter::must([field("user").eq("bob"), field("score").gte(5.0)]);
        check(&Filter::must([Condition::nested("reviews", bob)]), payload.clone(), true);
        // has_id inside nested is false; a non-array key is false.
        check(
            &Filter::must([Condition::nested("reviews", Filter::must([Condition::has_id([0u64])]))]),
            payload,
            false,
        );
        check(&Filter::must([Condition::nested("r", Filter::default())]), json!({"r": {"a": 1}}), false);
    }

    #[test]
    fn geo_conditions() {
        let payload = json!({"loc": {"lon": 13.405, "lat": 52.52}});
        check(&Filter::must([field("loc").geo_radius(13.4, 52.5, 5_000.0)]), payload.clone(), true);
        check(&Filter::must([field("loc").geo_radius(2.35, 48.85, 5_000.0)]), payload.clone(), false);
        let bbox = f(
            r#"{"must": [{"key": "loc", "geo_bounding_box": {"top_left": {"lon": 13, "lat": 53}, "bottom_right": {"lon": 14, "lat": 52}}}]}"#,
        );
        check(&bbox, payload.clone(), true);
        check(&bbox, json!({"loc": [{"lon": 0, "lat": 0}, {"lon": 13.5, "lat": 52.5}]}), true);
        check(&bbox, json!({"loc": {"lon": 13.5}}), false);
    }
}
