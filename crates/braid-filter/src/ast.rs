//! The filter language: Qdrant's filter JSON as Rust types, and a builder that reads
//! as one sentence.
//!
//! ```
//! use braid_filter::{field, Filter};
//!
//! let filter = Filter::must([field("category").eq("apparel"), field("price").lte(200.0)]);
//! assert_eq!(
//!     filter.to_json(),
//!     serde_json::json!({"must": [
//!         {"key": "category", "match": {"value": "apparel"}},
//!         {"key": "price", "range": {"lte": 200.0}}
//!     ]})
//! );
//! ```

use std::collections::BTreeSet;

use braid_core::PointId;

use crate::path::{JsonPath, Step};

/// A boolean combination of conditions. Absent clauses are true; `should: Some([])`
/// is false (Qdrant's rule).
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Filter {
    /// Every one must hold.
    pub must: Vec<Condition>,
    /// When present, at least one must hold.
    pub should: Option<Vec<Condition>>,
    /// None may hold.
    pub must_not: Vec<Condition>,
    /// When present, at least `min_count` of its conditions must hold.
    pub min_should: Option<MinShould>,
}

/// At least `min_count` of `conditions`.
#[derive(Clone, Debug, PartialEq)]
pub struct MinShould {
    /// The candidates.
    pub conditions: Vec<Condition>,
    /// How many must hold.
    pub min_count: usize,
}

/// One condition of a filter.
#[derive(Clone, Debug, PartialEq)]
pub enum Condition {
    /// A test on the values at a payload key.
    Field(FieldCondition),
    /// The key is missing, `null`, `[]`, or every value at it is `null` or `[]`.
    IsEmpty(JsonPath),
    /// Some value at the key is JSON `null`.
    IsNull(JsonPath),
    /// The point's id is one of these.
    HasId(BTreeSet<PointId>),
    /// The point has a vector in this named space.
    HasVector(String),
    /// Some element of the array at `key` satisfies the whole `filter` on its own.
    Nested {
        /// The array's key.
        key: JsonPath,
        /// The filter each element is tested against; its keys are relative to the element.
        filter: Box<Filter>,
    },
    /// A sub-filter.
    Filter(Box<Filter>),
}

/// A test on the values at `key`.
#[derive(Clone, Debug, PartialEq)]
pub struct FieldCondition {
    /// The payload key.
    pub key: JsonPath,
    /// The test.
    pub test: FieldTest,
}

/// The test of a [`FieldCondition`].
#[derive(Clone, Debug, PartialEq)]
pub enum FieldTest {
    /// `match`.
    Match(Match),
    /// `range` with numeric bounds.
    Range(Range<f64>),
    /// `range` with datetime bounds, in microseconds since the Unix epoch (UTC).
    DatetimeRange(Range<i64>),
    /// `values_count`.
    ValuesCount(Range<usize>),
    /// `geo_radius`.
    GeoRadius(GeoRadius),
    /// `geo_bounding_box`.
    GeoBoundingBox(GeoBoundingBox),
    /// `geo_polygon`.
    GeoPolygon(GeoPolygon),
}

/// The forms of `match`.
#[derive(Clone, Debug, PartialEq)]
pub enum Match {
    /// `{"value": v}`: equals a keyword, an integer or a bool.
    Value(Scalar),
    /// `{"any": [..]}`: equals one of the list.
    Any(Variants),
    /// `{"except": [..]}`: some value is not one of the list.
    Except(Variants),
    /// `{"text": t}`: every word of `t` is a word of a string value. Words are what
    /// Qdrant's default `word` tokenizer makes (runs of letters and digits,
    /// lowercased), as its server matches a field without a full-text index (1.19.1+).
    Text(String),
    /// `{"text_any": t}`: some word of `t` is a word of a string value.
    TextAny(String),
    /// `{"phrase": t}`: the words of `t` appear in a string value consecutively.
    Phrase(String),
    /// `{"prefix": t}`: a string value starts with `t` (bytes, case-sensitive).
    Prefix(String),
    /// `{"substring": t}`: a string value contains `t` (bytes, case-sensitive).
    Substring(String),
}

/// A value `match` compares with.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scalar {
    /// A string.
    Keyword(String),
    /// An integer (a stored float such as `1.0` does not equal `1`).
    Integer(i64),
    /// A bool.
    Bool(bool),
}

/// The list of `match any` / `match except`: all keywords or all integers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Variants {
    /// Strings (an empty list parses as this).
    Keywords(Vec<String>),
    /// Integers.
    Integers(Vec<i64>),
}

/// Bounds; at least one is present.
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub struct Range<T> {
    /// Greater than.
    pub gt: Option<T>,
    /// Greater than or equal.
    pub gte: Option<T>,
    /// Less than.
    pub lt: Option<T>,
    /// Less than or equal.
    pub lte: Option<T>,
}

impl<T: PartialOrd + Copy> Range<T> {
    /// Does `v` satisfy every bound?
    pub fn contains(&self, v: T) -> bool {
        self.gt.is_none_or(|b| v > b)
            && self.gte.is_none_or(|b| v >= b)
            && self.lt.is_none_or(|b| v < b)
            && self.lte.is_none_or(|b| v <= b)
    }
}

/// A point on Earth, degrees.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GeoPoint {
    /// Longitude, −180..=180.
    pub lon: f64,
    /// Latitude, −90..=90.
    pub lat: f64,
}

/// Within `radius` metres (haversine) of `center`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GeoRadius {
    /// The centre.
    pub center: GeoPoint,
    /// Metres.
    pub radius: f64,
}

/// Inside a box; `top_left.lon > bottom_right.lon` means the box crosses the antimeridian.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GeoBoundingBox {
    /// North-west corner.
    pub top_left: GeoPoint,
    /// South-east corner.
    pub bottom_right: GeoPoint,
}

/// Inside the exterior ring and outside every interior ring. Rings are closed (first
/// point = last point) and have at least 4 points.
#[derive(Clone, Debug, PartialEq)]
pub struct GeoPolygon {
    /// The outer boundary.
    pub exterior: Vec<GeoPoint>,
    /// Holes.
    pub interiors: Vec<Vec<GeoPoint>>,
}

impl Filter {
    /// All of `conditions`.
    pub fn must(conditions: impl IntoIterator<Item = Condition>) -> Filter {
        Filter { must: conditions.into_iter().collect(), ..Filter::default() }
    }

    /// At least one of `conditions`.
    pub fn should(conditions: impl IntoIterator<Item = Condition>) -> Filter {
        Filter { should: Some(conditions.into_iter().collect()), ..Filter::default() }
    }

    /// None of `conditions`.
    pub fn must_not(conditions: impl IntoIterator<Item = Condition>) -> Filter {
        Filter { must_not: conditions.into_iter().collect(), ..Filter::default() }
    }

    /// At least `min_count` of `conditions`.
    pub fn min_should(conditions: impl IntoIterator<Item = Condition>, min_count: usize) -> Filter {
        Filter {
            min_should: Some(MinShould { conditions: conditions.into_iter().collect(), min_count }),
            ..Filter::default()
        }
    }

    /// `self` AND `other`: Qdrant's merge of a query's filter into a prefetch's.
    pub fn and(self, other: Filter) -> Filter {
        Filter::must([Condition::Filter(Box::new(self)), Condition::Filter(Box::new(other))])
    }

    /// This filter as a condition, to nest it inside another.
    pub fn into_condition(self) -> Condition {
        Condition::Filter(Box::new(self))
    }
}

impl Condition {
    /// The point's id is one of `ids`.
    pub fn has_id(ids: impl IntoIterator<Item = impl Into<PointId>>) -> Condition {
        Condition::HasId(ids.into_iter().map(Into::into).collect())
    }

    /// The point has a vector named `name`.
    pub fn has_vector(name: impl Into<String>) -> Condition {
        Condition::HasVector(name.into())
    }

    /// Some element of the array at `key` satisfies all of `filter`.
    pub fn nested(key: &str, filter: Filter) -> Condition {
        Condition::Nested { key: lenient_path(key), filter: Box::new(filter) }
    }
}

/// Starts a condition on a payload key: `field("price").lte(200.0)`.
///
/// `key` is a path such as `meta.author` or `reviews[].score`. A string that does not
/// parse as a path is taken as one literal key, so the builder never fails; filters
/// parsed from JSON reject such paths instead.
pub fn field(key: &str) -> Field {
    Field { key: lenient_path(key) }
}

fn lenient_path(key: &str) -> JsonPath {
    JsonPath::parse(key).unwrap_or_else(|_| JsonPath::from_steps(vec![Step::Key(key.to_string())]))
}

/// A payload key waiting for its test; made by [`field`].
#[derive(Clone, Debug)]
pub struct Field {
    key: JsonPath,
}

impl Field {
    fn test(self, test: FieldTest) -> Condition {
        Condition::Field(FieldCondition { key: self.key, test })
    }

    /// Equals a keyword, integer or bool.
    pub fn eq(self, value: impl Into<Scalar>) -> Condition {
        self.test(FieldTest::Match(Match::Value(value.into())))
    }

    /// Equals one of the keywords.
    pub fn any_keyword<S: Into<String>>(self, values: impl IntoIterator<Item = S>) -> Condition {
        self.test(FieldTest::Match(Match::Any(Variants::Keywords(
            values.into_iter().map(Into::into).collect(),
        ))))
    }

    /// Equals one of the integers.
    pub fn any_integer(self, values: impl IntoIterator<Item = i64>) -> Condition {
        self.test(FieldTest::Match(Match::Any(Variants::Integers(values.into_iter().collect()))))
    }

    /// Some value is none of the keywords.
    pub fn except_keyword<S: Into<String>>(self, values: impl IntoIterator<Item = S>) -> Condition {
        self.test(FieldTest::Match(Match::Except(Variants::Keywords(
            values.into_iter().map(Into::into).collect(),
        ))))
    }

    /// A string value has every word of `text`.
    pub fn text(self, text: impl Into<String>) -> Condition {
        self.test(FieldTest::Match(Match::Text(text.into())))
    }

    /// A string value has one of the words of `text`.
    pub fn text_any(self, text: impl Into<String>) -> Condition {
        self.test(FieldTest::Match(Match::TextAny(text.into())))
    }

    /// A string value has the words of `phrase`, consecutively.
    pub fn phrase(self, phrase: impl Into<String>) -> Condition {
        self.test(FieldTest::Match(Match::Phrase(phrase.into())))
    }

    /// A string value starts with `prefix`.
    pub fn prefix(self, prefix: impl Into<String>) -> Condition {
        self.test(FieldTest::Match(Match::Prefix(prefix.into())))
    }

    /// A string value contains `part`.
    pub fn substring(self, part: impl Into<String>) -> Condition {
        self.test(FieldTest::Match(Match::Substring(part.into())))
    }

    /// Numeric bounds.
    pub fn range(self, range: Range<f64>) -> Condition {
        self.test(FieldTest::Range(range))
    }

    /// `< v`.
    pub fn lt(self, v: f64) -> Condition {
        self.range(Range { lt: Some(v), ..Range::default() })
    }

    /// `<= v`.
    pub fn lte(self, v: f64) -> Condition {
        self.range(Range { lte: Some(v), ..Range::default() })
    }

    /// `> v`.
    pub fn gt(self, v: f64) -> Condition {
        self.range(Range { gt: Some(v), ..Range::default() })
    }

    /// `>= v`.
    pub fn gte(self, v: f64) -> Condition {
        self.range(Range { gte: Some(v), ..Range::default() })
    }

    /// `lo <= value <= hi`.
    pub fn between(self, lo: f64, hi: f64) -> Condition {
        self.range(Range { gte: Some(lo), lte: Some(hi), ..Range::default() })
    }

    /// Bounds on the number of values.
    pub fn values_count(self, range: Range<usize>) -> Condition {
        self.test(FieldTest::ValuesCount(range))
    }

    /// Within `radius` metres of `(lon, lat)`.
    pub fn geo_radius(self, lon: f64, lat: f64, radius: f64) -> Condition {
        self.test(FieldTest::GeoRadius(GeoRadius { center: GeoPoint { lon, lat }, radius }))
    }

    /// The key is missing, null or empty.
    pub fn is_empty(self) -> Condition {
        Condition::IsEmpty(self.key)
    }

    /// Some value at the key is null.
    pub fn is_null(self) -> Condition {
        Condition::IsNull(self.key)
    }
}

impl From<&str> for Scalar {
    fn from(v: &str) -> Self {
        Scalar::Keyword(v.to_string())
    }
}
impl From<String> for Scalar {
    fn from(v: String) -> Self {
        Scalar::Keyword(v)
    }
}
impl From<i64> for Scalar {
    fn from(v: i64) -> Self {
        Scalar::Integer(v)
    }
}
impl From<bool> for Scalar {
    fn from(v: bool) -> Self {
        Scalar::Bool(v)
    }
}
