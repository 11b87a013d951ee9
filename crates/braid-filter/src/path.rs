//! Payload key paths (`meta.author`, `reviews[].score`, `tags[0]`) and value extraction.
//!
//! Semantics (Qdrant's server, `docs/filter.md`): `a.b` descends only through
//! **objects**; an array met in the middle of a path is not entered unless the path
//! says `[]` (every element) or `[n]` (one element). The values found at the end are
//! returned as they are — an array is one value — and each condition decides how to
//! look inside it.

use std::fmt;

use serde_json::Value;

use crate::FilterError;

/// One step of a path.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Step {
    /// Into an object's field.
    Key(String),
    /// Into every element of an array.
    Each,
    /// Into one element of an array.
    Index(usize),
}

/// A parsed key path.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JsonPath {
    steps: Vec<Step>,
}

impl JsonPath {
    /// Parses `a.b[].c[2]`. Keys are non-empty and contain none of `.`, `[`, `]`.
    pub fn parse(path: &str) -> Result<JsonPath, FilterError> {
        let bad = |why| FilterError::BadPath { path: path.to_string(), why };
        if path.is_empty() {
            return Err(bad("the path is empty"));
        }
        let mut steps = Vec::new();
        for part in path.split('.') {
            let (key, mut rest) = part.split_at(part.find('[').unwrap_or(part.len()));
            if key.is_empty() {
                return Err(bad("every segment needs a key before any [..]"));
            }
            if key.contains(']') {
                return Err(bad("unmatched ]"));
            }
            steps.push(Step::Key(key.to_string()));
            while !rest.is_empty() {
                let close = rest.find(']').ok_or_else(|| bad("unclosed ["))?;
                let inner = &rest[1..close];
                if inner.is_empty() {
                    steps.push(Step::Each);
                } else {
                    let n = inner
                        .parse::<usize>()
                        .map_err(|_| bad("an array index must be a non-negative integer"))?;
                    steps.push(Step::Index(n));
                }
                rest = &rest[close + 1..];
                if !rest.is_empty() && !rest.starts_with('[') {
                    return Err(bad("text after ] must start a new [..] or a new .segment"));
                }
            }
        }
        Ok(JsonPath { steps })
    }

    /// A path from already-split steps (no validation: any key text is allowed).
    pub fn from_steps(steps: Vec<Step>) -> JsonPath {
        JsonPath { steps }
    }

    /// The steps.
    pub fn steps(&self) -> &[Step] {
        &self.steps
    }

    /// `self` followed by `[]`: the elements of the array at this path (used by
    /// `nested`).
    pub fn each(&self) -> JsonPath {
        let mut steps = self.steps.clone();
        steps.push(Step::Each);
        JsonPath { steps }
    }

    /// Every value at this path in `payload`, in document order. A missing path gives
    /// none.
    pub fn values<'a>(&self, payload: &'a Value) -> Vec<&'a Value> {
        let mut current = vec![payload];
        for step in &self.steps {
            let mut next = Vec::with_capacity(current.len());
            for v in current {
                match (step, v) {
                    (Step::Key(k), Value::Object(map)) => next.extend(map.get(k)),
                    (Step::Each, Value::Array(items)) => next.extend(items.iter()),
                    (Step::Index(i), Value::Array(items)) => next.extend(items.get(*i)),
                    _ => {}
                }
            }
            if next.is_empty() {
                return next;
            }
            current = next;
        }
        current
    }

    /// Is `self` a prefix of `other` (or equal to it)?
    pub fn is_prefix_of(&self, other: &JsonPath) -> bool {
        other.steps.starts_with(&self.steps)
    }
}

impl fmt::Display for JsonPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, step) in self.steps.iter().enumerate() {
            match step {
                Step::Key(k) if i == 0 => write!(f, "{k}")?,
                Step::Key(k) => write!(f, ".{k}")?,
                Step::Each => write!(f, "[]")?,
                Step::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

impl fmt::Debug for JsonPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl std::str::FromStr for JsonPath {
    type Err = FilterError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        JsonPath::parse(s)
    }
}

/// A path travels as the text it was parsed from.
impl serde::Serialize for JsonPath {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for JsonPath {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        JsonPath::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn values(path: &str, payload: &Value) -> Vec<Value> {
        JsonPath::parse(path).unwrap().values(payload).into_iter().cloned().collect()
    }

    #[test]
    fn parse_and_print_round_trip() {
        for p in ["a", "a.b", "a[].b", "a[0].b[]", "reviews[].score", "x[3][]"] {
            assert_eq!(JsonPath::parse(p).unwrap().to_string(), p);
        }
        for bad in ["", ".a", "a.", "a..b", "[]", "a[", "a]", "a[x]", "a[-1]", "a[]b", "a.[0]"] {
            assert!(JsonPath::parse(bad).is_err(), "{bad:?} should not parse");
        }
    }

    #[test]
    fn dots_descend_only_through_objects() {
        let p = json!({"a": {"b": 1}, "arr": [{"b": 2}, {"b": 3}], "tags": ["x", "y"]});
        assert_eq!(values("a.b", &p), vec![json!(1)]);
        assert_eq!(values("arr.b", &p), Vec::<Value>::new());
        assert_eq!(values("arr[].b", &p), vec![json!(2), json!(3)]);
        assert_eq!(values("arr[1].b", &p), vec![json!(3)]);
        assert_eq!(values("tags", &p), vec![json!(["x", "y"])]);
        assert_eq!(values("tags[]", &p), vec![json!("x"), json!("y")]);
        assert_eq!(values("missing.b", &p), Vec::<Value>::new());
    }
}
