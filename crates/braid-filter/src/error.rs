//! What can be wrong with a filter or a payload-index request.

use thiserror::Error;

/// A filter could not be parsed or built.
///
/// `at` fields hold the JSON location of the mistake, like `must[1].range`.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum FilterError {
    /// A key the filter language does not have.
    #[error("unknown field `{field}` at {at}")]
    UnknownField {
        /// Where.
        at: String,
        /// The key.
        field: String,
    },
    /// A condition object with none of the keys that name a condition.
    #[error(
        "unknown condition at {at}: expected one of key, is_empty, is_null, has_id, has_vector, nested, must, should, must_not, min_should"
    )]
    UnknownCondition {
        /// Where.
        at: String,
    },
    /// A required key is absent.
    #[error("missing `{field}` at {at}")]
    MissingField {
        /// Where.
        at: String,
        /// The key.
        field: &'static str,
    },
    /// A value of the wrong JSON type or shape.
    #[error("wrong value at {at}: expected {expected}")]
    WrongType {
        /// Where.
        at: String,
        /// What was expected there.
        expected: &'static str,
    },
    /// A field condition names more than one operator, or none.
    #[error(
        "a field condition at {at} needs exactly one of match, range, geo_radius, geo_bounding_box, geo_polygon, values_count (found {found})"
    )]
    OperatorCount {
        /// Where.
        at: String,
        /// How many were given.
        found: usize,
    },
    /// A `range` or `values_count` without any of `gt`, `gte`, `lt`, `lte`.
    #[error("{at} has no bound: give at least one of gt, gte, lt, lte")]
    RangeWithoutBound {
        /// Where.
        at: String,
    },
    /// A datetime that is not RFC 3339 (or one of the accepted naive forms).
    #[error("`{value}` at {at} is not an RFC 3339 datetime")]
    BadDatetime {
        /// Where.
        at: String,
        /// The text.
        value: String,
    },
    /// A payload key path that cannot be parsed.
    #[error("bad key path `{path}`: {why}")]
    BadPath {
        /// The path.
        path: String,
        /// What is wrong.
        why: &'static str,
    },
    /// A geo value out of range or a malformed polygon.
    #[error("bad geo value at {at}: {why}")]
    BadGeo {
        /// Where.
        at: String,
        /// What is wrong.
        why: &'static str,
    },
    /// Filters nest deeper than [`crate::MAX_DEPTH`].
    #[error("filter at {at} nests deeper than {limit} levels")]
    TooDeep {
        /// Where.
        at: String,
        /// The limit.
        limit: usize,
    },
    /// The JSON text itself does not parse.
    #[error("malformed JSON: {message}")]
    Json {
        /// serde_json's message.
        message: String,
    },
}

/// A payload index could not be created.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum IndexError {
    /// An index already exists on the key with another kind.
    #[error("key `{key}` already has a {existing} index; drop it before creating a {requested} index")]
    KindConflict {
        /// The key.
        key: String,
        /// The existing kind.
        existing: &'static str,
        /// The kind asked for.
        requested: &'static str,
    },
    /// The key path does not parse.
    #[error(transparent)]
    Path(#[from] FilterError),
    /// Text index options a tokeniser refuses (an unknown language, bad lengths).
    #[error("text index: {0}")]
    Text(braid_text::TextError),
    /// A text index on the key exists with other options.
    #[error("key `{key}` already has a text index with other options; drop it first")]
    OptionsConflict {
        /// The key.
        key: String,
    },
    /// A facet on a key without a keyword, integer, bool or uuid index.
    #[error(
        "facet on `{key}` needs a keyword, integer, bool or uuid index on it (found {}): create one first",
        found.unwrap_or("none")
    )]
    FacetNeedsIndex {
        /// The key.
        key: String,
        /// The kind of index it has, if any.
        found: Option<&'static str>,
    },
    /// `order_by` on a key without a range index.
    #[error(
        "order_by `{key}` needs a range index (integer, float or datetime) on the key; it has {}",
        found.map_or("none".to_string(), |k| format!("a {k} index"))
    )]
    OrderByNeedsIndex {
        /// The key.
        key: String,
        /// The kind of index it has, if any.
        found: Option<&'static str>,
    },
    /// A text index on a key whose stored values are all non-strings.
    #[error("key `{key}` holds {found}, not strings: a text index there would hold nothing")]
    NotText {
        /// The key.
        key: String,
        /// What it holds.
        found: &'static str,
    },
}
