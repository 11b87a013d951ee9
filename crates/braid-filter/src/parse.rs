//! Qdrant's filter JSON ⇄ [`Filter`]. Hand-written rather than derived so that every
//! mistake gets a typed error that says where it is, and so that no input can panic.

use std::collections::BTreeSet;

use braid_core::PointId;
use chrono::{DateTime, NaiveDate, NaiveDateTime, SecondsFormat, Utc};
use serde_json::{Map, Value, json};

use crate::ast::*;
use crate::path::JsonPath;
use crate::{FilterError, MAX_DEPTH};

impl Filter {
    /// Parses a filter from Qdrant's JSON shape.
    pub fn from_json(value: &Value) -> Result<Filter, FilterError> {
        parse_filter(value, "filter", 0)
    }

    /// Parses a filter from JSON text.
    pub fn from_json_str(text: &str) -> Result<Filter, FilterError> {
        let value: Value =
            serde_json::from_str(text).map_err(|e| FilterError::Json { message: e.to_string() })?;
        Filter::from_json(&value)
    }

    /// The filter in Qdrant's JSON shape; `from_json(to_json(f)) == f`.
    pub fn to_json(&self) -> Value {
        let mut out = Map::new();
        if !self.must.is_empty() {
            out.insert("must".into(), Value::Array(self.must.iter().map(condition_json).collect()));
        }
        if let Some(should) = &self.should {
            out.insert("should".into(), Value::Array(should.iter().map(condition_json).collect()));
        }
        if !self.must_not.is_empty() {
            out.insert("must_not".into(), Value::Array(self.must_not.iter().map(condition_json).collect()));
        }
        if let Some(m) = &self.min_should {
            out.insert(
                "min_should".into(),
                json!({"conditions": m.conditions.iter().map(condition_json).collect::<Vec<_>>(), "min_count": m.min_count}),
            );
        }
        Value::Object(out)
    }
}

impl serde::Serialize for Filter {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_json().serialize(serializer)
    }
}

impl<'de> serde::Deserialize<'de> for Filter {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        Filter::from_json(&value).map_err(serde::de::Error::custom)
    }
}

fn object<'a>(value: &'a Value, at: &str) -> Result<&'a Map<String, Value>, FilterError> {
    value.as_object().ok_or_else(|| FilterError::WrongType { at: at.to_string(), expected: "an object" })
}

fn check_fields(map: &Map<String, Value>, at: &str, allowed: &[&str]) -> Result<(), FilterError> {
    match map.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(field) => Err(FilterError::UnknownField { at: at.to_string(), field: field.clone() }),
        None => Ok(()),
    }
}

/// A present, non-null field.
fn get<'a>(map: &'a Map<String, Value>, field: &str) -> Option<&'a Value> {
    map.get(field).filter(|v| !v.is_null())
}

fn require<'a>(map: &'a Map<String, Value>, field: &'static str, at: &str) -> Result<&'a Value, FilterError> {
    get(map, field).ok_or_else(|| FilterError::MissingField { at: at.to_string(), field })
}

fn parse_filter(value: &Value, at: &str, depth: usize) -> Result<Filter, FilterError> {
    if depth > MAX_DEPTH {
        return Err(FilterError::TooDeep { at: at.to_string(), limit: MAX_DEPTH });
    }
    let map = object(value, at)?;
    check_fields(map, at, &["must", "should", "must_not", "min_should"])?;
    let list = |field: &str| -> Result<Option<Vec<Condition>>, FilterError> {
        let Some(v) = get(map, field) else { return Ok(None) };
        let at = format!("{at}.{field}");
        match v {
            Value::Array(items) => items
                .iter()
                .enumerate()
                .map(|(i, c)| parse_condition(c, &format!("{at}[{i}]"), depth + 1))
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            // Qdrant also accepts one condition in place of a list.
            Value::Object(_) => Ok(Some(vec![parse_condition(v, &at, depth + 1)?])),
            _ => Err(FilterError::WrongType { at, expected: "a condition or a list of conditions" }),
        }
    };
    let must = list("must")?.unwrap_or_default();
    let should = list("should")?;
    let must_not = list("must_not")?.unwrap_or_default();
    let min_should = match get(map, "min_should") {
        None => None,
        Some(v) => {
            let at = format!("{at}.min_should");
            let m = object(v, &at)?;
            check_fields(m, &at, &["conditions", "min_count"])?;
            let conditions = match require(m, "conditions", &at)? {
                Value::Array(items) => items
                    .iter()
                    .enumerate()
                    .map(|(i, c)| parse_condition(c, &format!("{at}.conditions[{i}]"), depth + 1))
                    .collect::<Result<Vec<_>, _>>()?,
                _ => {
                    return Err(FilterError::WrongType {
                        at: format!("{at}.conditions"),
                        expected: "a list of conditions",
                    });
                }
            };
            let min_count = require(m, "min_count", &at)?
                .as_u64()
                .and_then(|n| usize::try_from(n).ok())
                .filter(|&n| n >= 1)
                .ok_or(FilterError::WrongType {
                    at: format!("{at}.min_count"),
                    // Qdrant's server refuses 0 too.
                    expected: "an integer of 1 or more",
                })?;
            Some(MinShould { conditions, min_count })
        }
    };
    Ok(Filter { must, should, must_not, min_should })
}

fn parse_key(map: &Map<String, Value>, at: &str) -> Result<JsonPath, FilterError> {
    let key = require(map, "key", at)?
        .as_str()
        .ok_or(FilterError::WrongType { at: format!("{at}.key"), expected: "a string" })?;
    JsonPath::parse(key)
}

fn parse_condition(value: &Value, at: &str, depth: usize) -> Result<Condition, FilterError> {
    if depth > MAX_DEPTH {
        return Err(FilterError::TooDeep { at: at.to_string(), limit: MAX_DEPTH });
    }
    let map = object(value, at)?;
    if map.contains_key("key") {
        return parse_field_condition(map, at).map(Condition::Field);
    }
    let single = |name: &str| -> Result<Option<&Value>, FilterError> {
        match map.get(name) {
            None => Ok(None),
            Some(v) => {
                check_fields(map, at, &[name])?;
                Ok(Some(v))
            }
        }
    };
    if let Some(v) = single("is_empty")? {
        let at = format!("{at}.is_empty");
        let m = object(v, &at)?;
        check_fields(m, &at, &["key"])?;
        return Ok(Condition::IsEmpty(parse_key(m, &at)?));
    }
    if let Some(v) = single("is_null")? {
        let at = format!("{at}.is_null");
        let m = object(v, &at)?;
        check_fields(m, &at, &["key"])?;
        return Ok(Condition::IsNull(parse_key(m, &at)?));
    }
    if let Some(v) = single("has_id")? {
        let at = format!("{at}.has_id");
        let items =
            v.as_array().ok_or(FilterError::WrongType { at: at.clone(), expected: "a list of point ids" })?;
        let ids = items
            .iter()
            .enumerate()
            .map(|(i, id)| parse_point_id(id, &format!("{at}[{i}]")))
            .collect::<Result<BTreeSet<_>, _>>()?;
        return Ok(Condition::HasId(ids));
    }
    if let Some(v) = single("has_vector")? {
        let name = v
            .as_str()
            .ok_or(FilterError::WrongType { at: format!("{at}.has_vector"), expected: "a vector name" })?;
        return Ok(Condition::HasVector(name.to_string()));
    }
    if let Some(v) = single("nested")? {
        let at = format!("{at}.nested");
        let m = object(v, &at)?;
        check_fields(m, &at, &["key", "filter"])?;
        let key = parse_key(m, &at)?;
        let filter = parse_filter(require(m, "filter", &at)?, &format!("{at}.filter"), depth + 1)?;
        return Ok(Condition::Nested { key, filter: Box::new(filter) });
    }
    if map.keys().all(|k| ["must", "should", "must_not", "min_should"].contains(&k.as_str())) {
        return parse_filter(value, at, depth + 1).map(|f| Condition::Filter(Box::new(f)));
    }
    Err(FilterError::UnknownCondition { at: at.to_string() })
}

/// A point id: a non-negative integer or a UUID string.
pub fn parse_point_id(value: &Value, at: &str) -> Result<PointId, FilterError> {
    let wrong =
        || FilterError::WrongType { at: at.to_string(), expected: "an unsigned integer or a UUID string" };
    match value {
        Value::Number(n) => n.as_u64().map(PointId::Num).ok_or_else(wrong),
        Value::String(s) => uuid::Uuid::parse_str(s).map(PointId::Uuid).map_err(|_| wrong()),
        _ => Err(wrong()),
    }
}

const FIELD_TESTS: [&str; 6] =
    ["match", "range", "geo_radius", "geo_bounding_box", "geo_polygon", "values_count"];

fn parse_field_condition(map: &Map<String, Value>, at: &str) -> Result<FieldCondition, FilterError> {
    let mut allowed = vec!["key"];
    allowed.extend(FIELD_TESTS);
    check_fields(map, at, &allowed)?;
    let key = parse_key(map, at)?;
    let present: Vec<&str> = FIELD_TESTS.iter().copied().filter(|t| get(map, t).is_some()).collect();
    let [name] = present[..] else {
        return Err(FilterError::OperatorCount { at: at.to_string(), found: present.len() });
    };
    let v = &map[name];
    let at = format!("{at}.{name}");
    let test = match name {
        "match" => FieldTest::Match(parse_match(v, &at)?),
        "range" => parse_range(v, &at)?,
        "values_count" => FieldTest::ValuesCount(parse_count_range(v, &at)?),
        "geo_radius" => {
            let m = object(v, &at)?;
            check_fields(m, &at, &["center", "radius"])?;
            let center = parse_geo_point(require(m, "center", &at)?, &format!("{at}.center"))?;
            let radius = require(m, "radius", &at)?.as_f64().filter(|r| *r >= 0.0 && r.is_finite()).ok_or(
                FilterError::BadGeo {
                    at: format!("{at}.radius"),
                    why: "radius must be a non-negative number of metres",
                },
            )?;
            FieldTest::GeoRadius(GeoRadius { center, radius })
        }
        "geo_bounding_box" => {
            let m = object(v, &at)?;
            check_fields(m, &at, &["top_left", "bottom_right"])?;
            let top_left = parse_geo_point(require(m, "top_left", &at)?, &format!("{at}.top_left"))?;
            let bottom_right =
                parse_geo_point(require(m, "bottom_right", &at)?, &format!("{at}.bottom_right"))?;
            FieldTest::GeoBoundingBox(GeoBoundingBox { top_left, bottom_right })
        }
        _ => {
            let m = object(v, &at)?;
            check_fields(m, &at, &["exterior", "interiors"])?;
            let exterior = parse_ring(require(m, "exterior", &at)?, &format!("{at}.exterior"))?;
            let interiors = match get(m, "interiors") {
                None => Vec::new(),
                Some(Value::Array(rings)) => rings
                    .iter()
                    .enumerate()
                    .map(|(i, r)| parse_ring(r, &format!("{at}.interiors[{i}]")))
                    .collect::<Result<_, _>>()?,
                Some(_) => {
                    return Err(FilterError::WrongType {
                        at: format!("{at}.interiors"),
                        expected: "a list of rings",
                    });
                }
            };
            FieldTest::GeoPolygon(GeoPolygon { exterior, interiors })
        }
    };
    Ok(FieldCondition { key, test })
}

fn parse_match(value: &Value, at: &str) -> Result<Match, FilterError> {
    let map = object(value, at)?;
    const KINDS: [&str; 8] = ["value", "any", "except", "text", "text_any", "phrase", "prefix", "substring"];
    check_fields(map, at, &KINDS)?;
    let present: Vec<&str> = KINDS.into_iter().filter(|k| map.contains_key(*k)).collect();
    let [name] = present[..] else {
        return Err(FilterError::WrongType {
            at: at.to_string(),
            expected: "exactly one of value, any, except, text, text_any, phrase, prefix, substring",
        });
    };
    let v = &map[name];
    let at = format!("{at}.{name}");
    Ok(match name {
        "value" => Match::Value(match v {
            Value::String(s) => Scalar::Keyword(s.clone()),
            Value::Bool(b) => Scalar::Bool(*b),
            Value::Number(n) if n.as_i64().is_some() => Scalar::Integer(n.as_i64().unwrap_or_default()),
            _ => return Err(FilterError::WrongType { at, expected: "a keyword, an integer or a bool" }),
        }),
        "any" => Match::Any(parse_variants(v, &at)?),
        "except" => Match::Except(parse_variants(v, &at)?),
        text => {
            let t = v.as_str().ok_or(FilterError::WrongType { at, expected: "a string" })?.to_string();
            match text {
                "text_any" => Match::TextAny(t),
                "phrase" => Match::Phrase(t),
                "prefix" => Match::Prefix(t),
                "substring" => Match::Substring(t),
                _ => Match::Text(t),
            }
        }
    })
}

fn parse_variants(value: &Value, at: &str) -> Result<Variants, FilterError> {
    let items = value.as_array().ok_or(FilterError::WrongType { at: at.to_string(), expected: "a list" })?;
    if items.iter().all(Value::is_string) {
        return Ok(Variants::Keywords(items.iter().filter_map(|v| v.as_str().map(str::to_string)).collect()));
    }
    items.iter().map(Value::as_i64).collect::<Option<Vec<_>>>().map(Variants::Integers).ok_or(
        FilterError::WrongType { at: at.to_string(), expected: "a list of only keywords or only integers" },
    )
}

fn bounds<'a>(value: &'a Value, at: &str) -> Result<[(&'static str, Option<&'a Value>); 4], FilterError> {
    let map = object(value, at)?;
    check_fields(map, at, &["gt", "gte", "lt", "lte"])?;
    let b = ["gt", "gte", "lt", "lte"].map(|k| (k, get(map, k)));
    if b.iter().all(|(_, v)| v.is_none()) {
        return Err(FilterError::RangeWithoutBound { at: at.to_string() });
    }
    Ok(b)
}

fn to_range<T>(b: [Option<T>; 4]) -> Range<T> {
    let [gt, gte, lt, lte] = b;
    Range { gt, gte, lt, lte }
}

fn parse_range(value: &Value, at: &str) -> Result<FieldTest, FilterError> {
    let b = bounds(value, at)?;
    if b.iter().flat_map(|(_, v)| v).all(|v| v.is_string()) {
        let micros =
            b.map(|(k, v)| v.and_then(Value::as_str).map(|s| parse_datetime(s, &format!("{at}.{k}"))));
        let micros = micros.map(Option::transpose);
        let [gt, gte, lt, lte] = micros;
        return Ok(FieldTest::DatetimeRange(to_range([gt?, gte?, lt?, lte?])));
    }
    let numbers = b.map(|(k, v)| {
        v.map(|v| {
            v.as_f64().filter(|f| f.is_finite()).ok_or(FilterError::WrongType {
                at: format!("{at}.{k}"),
                expected: "a number (or, for every bound, a datetime string)",
            })
        })
        .transpose()
    });
    let [gt, gte, lt, lte] = numbers;
    Ok(FieldTest::Range(to_range([gt?, gte?, lt?, lte?])))
}

fn parse_count_range(value: &Value, at: &str) -> Result<Range<usize>, FilterError> {
    let b = bounds(value, at)?.map(|(k, v)| {
        v.map(|v| {
            v.as_u64()
                .and_then(|n| usize::try_from(n).ok())
                .ok_or(FilterError::WrongType { at: format!("{at}.{k}"), expected: "a non-negative integer" })
        })
        .transpose()
    });
    let [gt, gte, lt, lte] = b;
    Ok(to_range([gt?, gte?, lt?, lte?]))
}

/// Parses an RFC 3339 datetime, or a naive one (`2024-01-31T12:00:00`, with a space
/// instead of `T`, or a bare date), taken as UTC. Returns microseconds since the epoch.
pub fn parse_datetime(text: &str, at: &str) -> Result<i64, FilterError> {
    datetime_micros(text)
        .ok_or_else(|| FilterError::BadDatetime { at: at.to_string(), value: text.to_string() })
}

/// [`parse_datetime`] without the error: payload values that are not datetimes simply
/// do not match.
pub(crate) fn datetime_micros(text: &str) -> Option<i64> {
    // The leniencies of Qdrant's parser: leading blanks, a lowercase `z`, `Z` or
    // ` UTC` for +00:00 (as chrono prints UTC).
    let text = text.trim_start();
    let utc = text.strip_suffix(" UTC").or_else(|| text.strip_suffix(['z', 'Z']));
    let owned;
    let text = match utc {
        Some(rest) => {
            owned = format!("{rest}+00:00");
            owned.as_str()
        }
        None => text,
    };
    if let Ok(dt) = DateTime::parse_from_rfc3339(text) {
        return Some(dt.timestamp_micros());
    }
    // `T` or a space between date and time; an offset with or without its colon,
    // right after the time or after one space.
    for format in [
        "%Y-%m-%dT%H:%M:%S%.f%z",
        "%Y-%m-%d %H:%M:%S%.f%z",
        "%Y-%m-%dT%H:%M:%S%.f %z",
        "%Y-%m-%d %H:%M:%S%.f %z",
    ] {
        if let Ok(dt) = DateTime::parse_from_str(text, format) {
            return Some(dt.timestamp_micros());
        }
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"] {
        if let Ok(dt) = NaiveDateTime::parse_from_str(text, format) {
            return Some(dt.and_utc().timestamp_micros());
        }
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|dt| dt.and_utc().timestamp_micros())
}

fn parse_geo_point(value: &Value, at: &str) -> Result<GeoPoint, FilterError> {
    let point = geo_point(value).ok_or(FilterError::BadGeo {
        at: at.to_string(),
        why: "expected {lon, lat} with lon in [-180, 180] and lat in [-90, 90]",
    })?;
    Ok(point)
}

/// A `{lon, lat}` object with both in range, else `None`. Used for payload values too.
pub(crate) fn geo_point(value: &Value) -> Option<GeoPoint> {
    let map = value.as_object()?;
    if map.len() != 2 {
        return None;
    }
    let lon = map.get("lon")?.as_f64()?;
    let lat = map.get("lat")?.as_f64()?;
    ((-180.0..=180.0).contains(&lon) && (-90.0..=90.0).contains(&lat)).then_some(GeoPoint { lon, lat })
}

fn parse_ring(value: &Value, at: &str) -> Result<Vec<GeoPoint>, FilterError> {
    let map = object(value, at)?;
    check_fields(map, at, &["points"])?;
    let points = require(map, "points", at)?
        .as_array()
        .ok_or(FilterError::WrongType { at: format!("{at}.points"), expected: "a list of {lon, lat}" })?
        .iter()
        .enumerate()
        .map(|(i, p)| parse_geo_point(p, &format!("{at}.points[{i}]")))
        .collect::<Result<Vec<_>, _>>()?;
    if points.len() < 4 {
        return Err(FilterError::BadGeo { at: at.to_string(), why: "a ring needs at least 4 points" });
    }
    if points.first() != points.last() {
        return Err(FilterError::BadGeo {
            at: at.to_string(),
            why: "a ring must be closed: its first and last points must be equal",
        });
    }
    Ok(points)
}

fn point_json(p: &GeoPoint) -> Value {
    json!({"lon": p.lon, "lat": p.lat})
}

fn range_json<T: Copy>(r: &Range<T>, f: impl Fn(T) -> Value) -> Value {
    let mut m = Map::new();
    for (k, v) in [("gt", r.gt), ("gte", r.gte), ("lt", r.lt), ("lte", r.lte)] {
        if let Some(v) = v {
            m.insert(k.into(), f(v));
        }
    }
    Value::Object(m)
}

fn variants_json(v: &Variants) -> Value {
    match v {
        Variants::Keywords(k) => json!(k),
        Variants::Integers(i) => json!(i),
    }
}

fn micros_json(micros: i64) -> Value {
    match DateTime::<Utc>::from_timestamp_micros(micros) {
        Some(dt) => Value::String(dt.to_rfc3339_opts(SecondsFormat::AutoSi, true)),
        None => Value::Null,
    }
}

fn condition_json(c: &Condition) -> Value {
    match c {
        Condition::Field(f) => {
            let key = f.key.to_string();
            match &f.test {
                FieldTest::Match(m) => {
                    let m = match m {
                        Match::Value(Scalar::Keyword(s)) => json!({"value": s}),
                        Match::Value(Scalar::Integer(i)) => json!({"value": i}),
                        Match::Value(Scalar::Bool(b)) => json!({"value": b}),
                        Match::Any(v) => json!({"any": variants_json(v)}),
                        Match::Except(v) => json!({"except": variants_json(v)}),
                        Match::Text(t) => json!({"text": t}),
                        Match::TextAny(t) => json!({"text_any": t}),
                        Match::Phrase(t) => json!({"phrase": t}),
                        Match::Prefix(t) => json!({"prefix": t}),
                        Match::Substring(t) => json!({"substring": t}),
                    };
                    json!({"key": key, "match": m})
                }
                FieldTest::Range(r) => json!({"key": key, "range": range_json(r, |v| json!(v))}),
                FieldTest::DatetimeRange(r) => json!({"key": key, "range": range_json(r, micros_json)}),
                FieldTest::ValuesCount(r) => json!({"key": key, "values_count": range_json(r, |v| json!(v))}),
                FieldTest::GeoRadius(g) => {
                    json!({"key": key, "geo_radius": {"center": point_json(&g.center), "radius": g.radius}})
                }
                FieldTest::GeoBoundingBox(b) => json!({"key": key, "geo_bounding_box": {
                    "top_left": point_json(&b.top_left), "bottom_right": point_json(&b.bottom_right)}}),
                FieldTest::GeoPolygon(p) => json!({"key": key, "geo_polygon": {
                    "exterior": {"points": p.exterior.iter().map(point_json).collect::<Vec<_>>()},
                    "interiors": p.interiors.iter().map(|r| json!({"points": r.iter().map(point_json).collect::<Vec<_>>()})).collect::<Vec<_>>()}}),
            }
        }
        Condition::IsEmpty(k) => json!({"is_empty": {"key": k.to_string()}}),
        Condition::IsNull(k) => json!({"is_null": {"key": k.to_string()}}),
        Condition::HasId(ids) => json!({"has_id": ids.iter().collect::<Vec<_>>()}),
        Condition::HasVector(name) => json!({"has_vector": name}),
        Condition::Nested { key, filter } => {
            json!({"nested": {"key": key.to_string(), "filter": filter.to_json()}})
        }
        Condition::Filter(f) => f.to_json(),
    }
}

/// One condition travels as its filter JSON (between cluster peers, inside a query).
impl serde::Serialize for Condition {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        condition_json(self).serialize(serializer)
    }
}

impl<'de> serde::Deserialize<'de> for Condition {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        parse_condition(&value, "condition", 0).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> FilterError {
        Filter::from_json_str(text).expect_err(text)
    }

    #[test]
    fn error_table() {
        type Case<'a> = (&'a str, fn(&FilterError) -> bool);
        let cases: &[Case] = &[
            (
                r#"{"must": [{"key": "a", "match": {"valu": 1}}]}"#,
                |e| matches!(e, FilterError::UnknownField { field, .. } if field == "valu"),
            ),
            (r#"{"must": [{"key": "a", "range": {}}]}"#, |e| {
                matches!(e, FilterError::RangeWithoutBound { .. })
            }),
            (r#"{"must": [{"key": "a", "range": {"gt": "x"}}]}"#, |e| {
                matches!(e, FilterError::BadDatetime { .. })
            }),
            (r#"{"must": [{"key": "a", "range": {"gt": 1, "lt": "2024-01-01"}}]}"#, |e| {
                matches!(e, FilterError::WrongType { .. })
            }),
            (r#"{"must": [{"key": "a", "match": {"value": 1.5}}]}"#, |e| {
                matches!(e, FilterError::WrongType { .. })
            }),
            (r#"{"must": [{"key": "a", "match": {"any": [1, "x"]}}]}"#, |e| {
                matches!(e, FilterError::WrongType { .. })
            }),
            (r#"{"must": [{"key": "a"}]}"#, |e| matches!(e, FilterError::OperatorCount { found: 0, .. })),
            (r#"{"must": [{"key": "a", "match": {"value": 1}, "range": {"gt": 1}}]}"#, |e| {
                matches!(e, FilterError::OperatorCount { found: 2, .. })
            }),
            (r#"{"must": [{"frobnicate": 1}]}"#, |e| matches!(e, FilterError::UnknownCondition { .. })),
            (r#"{"mustn't": []}"#, |e| matches!(e, FilterError::UnknownField { .. })),
            (r#"{"must": 3}"#, |e| matches!(e, FilterError::WrongType { .. })),
            (r#"{"must": [{"key": "a..b", "match": {"value": 1}}]}"#, |e| {
                matches!(e, FilterError::BadPath { .. })
            }),
            (r#"{"must": [{"has_id": [-1]}]}"#, |e| matches!(e, FilterError::WrongType { .. })),
            (r#"{"must": [{"has_id": ["not-a-uuid"]}]}"#, |e| matches!(e, FilterError::WrongType { .. })),
            (
                r#"{"must": [{"key": "g", "geo_radius": {"center": {"lon": 200, "lat": 0}, "radius": 1}}]}"#,
                |e| matches!(e, FilterError::BadGeo { .. }),
            ),
            (
                r#"{"must": [{"key": "g", "geo_polygon": {"exterior": {"points": [{"lon": 0, "lat": 0}, {"lon": 1, "lat": 0}, {"lon": 1, "lat": 1}, {"lon": 0, "lat": 1}]}}}]}"#,
                |e| matches!(e, FilterError::BadGeo { .. }),
            ),
            (r#"{"min_should": {"conditions": []}}"#, |e| {
                matches!(e, FilterError::MissingField { field: "min_count", .. })
            }),
            (r#"{"min_should": {"conditions": [], "min_count": 0}}"#, |e| {
                matches!(e, FilterError::WrongType { .. })
            }),
            (r#"{"must": [{"key": "a", "values_count": {"gt": -1}}]}"#, |e| {
                matches!(e, FilterError::WrongType { .. })
            }),
            (r#"{"must": [{"nested": {"key": "a"}}]}"#, |e| {
                matches!(e, FilterError::MissingField { field: "filter", .. })
            }),
            (r#"[1, 2]"#, |e| matches!(e, FilterError::WrongType { .. })),
            (r#"{"must": [{"key": "a", "match": {"value": 1}"#, |e| matches!(e, FilterError::Json { .. })),
        ];
        for (text, check) in cases {
            let e = err(text);
            assert!(check(&e), "{text} gave {e:?}");
        }
    }

    #[test]
    fn depth_is_limited() {
        let mut text = String::from(r#"{"key": "a", "match": {"value": 1}}"#);
        for _ in 0..MAX_DEPTH + 2 {
            text = format!(r#"{{"must": [{text}]}}"#);
        }
        assert!(matches!(err(&text), FilterError::TooDeep { .. } | FilterError::Json { .. }));
    }

    #[test]
    fn accepts_qdrant_shapes() {
        let f = Filter::from_json_str(
            r#"{"must": {"key": "a", "match": {"value": "x"}}, "should": null,
                "must_not": [{"has_id": [1, "550e8400-e29b-41d4-a716-446655440000"]}, {"has_vector": "image"}],
                "min_should": {"conditions": [{"is_empty": {"key": "b"}}, {"is_null": {"key": "c"}}], "min_count": 1}}"#,
        )
        .unwrap();
        assert_eq!(f.must.len(), 1);
        assert_eq!(f.should, None);
        assert_eq!(f.must_not.len(), 2);
        let again = Filter::from_json(&f.to_json()).unwrap();
        assert_eq!(again, f);
    }

    #[test]
    fn datetimes() {
        let t = |s| datetime_micros(s);
        assert_eq!(t("1970-01-01T00:00:01Z"), Some(1_000_000));
        assert_eq!(t("1970-01-01T01:00:01+01:00"), Some(1_000_000));
        assert_eq!(t("1970-01-01 00:00:01"), Some(1_000_000));
        assert_eq!(t("1970-01-01T00:00:01.5"), Some(1_500_000));
        assert_eq!(t("1970-01-02"), Some(86_400_000_000));
        // Offsets without a colon, after `T` or a space, right after the time or
        // after a space; Z, z and " UTC"; leading blanks.
        let five = 5 * 3_600_000_000i64;
        assert_eq!(t("1970-01-01T05:00:01+0500"), Some(1_000_000));
        assert_eq!(t("1970-01-01T05:00:01.25+0500"), Some(1_250_000));
        assert_eq!(t("1970-01-01T00:00:01-0500"), Some(1_000_000 + five));
        assert_eq!(t("1970-01-01 05:00:01+0500"), Some(1_000_000));
        assert_eq!(t("1970-01-01 05:00:01.000001+05:00"), Some(1_000_001));
        assert_eq!(t("1970-01-01T05:00:01 +05:00"), Some(1_000_000));
        assert_eq!(t("1970-01-01 00:00:01 UTC"), Some(1_000_000));
        assert_eq!(t("1970-01-01 00:00:01z"), Some(1_000_000));
        assert_eq!(t("  1970-01-01T00:00:01Z"), Some(1_000_000));
        assert_eq!(t("yesterday"), None);
        assert_eq!(t("1970-01-01T00:00:01+5"), None);
    }
}
