//! Points in and out: [`PointStruct`], [`NamedVectors`], [`Record`], [`ScoredPoint`], and
//! the selectors that choose which payload keys and vectors come back.

use std::collections::BTreeMap;

pub use braid_core::PointId;
use braid_sparse::SparseVector;
use braid_text::Document;
use serde_json::{Map, Value};

/// Vectors by space name.
pub type NamedVectors = BTreeMap<String, Vec<f32>>;

/// Sparse vectors by sparse space name.
pub type SparseVectors = BTreeMap<String, SparseVector>;

/// One point's vectors in a multivector space.
pub type MultiVector = Vec<Vec<f32>>;

/// Multivectors by multivector space name.
pub type MultiVectors = BTreeMap<String, MultiVector>;

/// A point to upsert.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PointStruct {
    /// Its id (an unsigned integer or a UUID).
    pub id: PointId,
    /// One vector per dense space it has; a point may lack some spaces.
    pub vectors: NamedVectors,
    /// One vector per sparse space it has.
    pub sparse: SparseVectors,
    /// One list of vectors per multivector space it has.
    pub multi: MultiVectors,
    /// Text for sparse spaces, turned into their vectors by a model at upsert
    /// ([`Document`]; `bm25`).
    pub documents: BTreeMap<String, Document>,
    /// A JSON object.
    pub payload: Value,
}

impl PointStruct {
    /// A point with no vectors and an empty payload; add them with the builders.
    pub fn new(id: impl Into<PointId>) -> PointStruct {
        PointStruct {
            id: id.into(),
            vectors: NamedVectors::new(),
            sparse: SparseVectors::new(),
            multi: MultiVectors::new(),
            documents: BTreeMap::new(),
            payload: Value::Object(Map::new()),
        }
    }

    /// With the list of vectors for multivector space `name`.
    pub fn multivector(mut self, name: &str, vectors: MultiVector) -> PointStruct {
        self.multi.insert(name.to_string(), vectors);
        self
    }

    /// With the sparse vector for sparse space `name`.
    pub fn sparse(mut self, name: &str, vector: SparseVector) -> PointStruct {
        self.sparse.insert(name.to_string(), vector);
        self
    }

    /// With text for sparse space `name`, which `document`'s model turns into its
    /// vector when the point is written.
    pub fn document(mut self, name: &str, document: Document) -> PointStruct {
        self.documents.insert(name.to_string(), document);
        self
    }

    /// With the vector for space `name`.
    pub fn vector(mut self, name: &str, vector: Vec<f32>) -> PointStruct {
        self.vectors.insert(name.to_string(), vector);
        self
    }

    /// With this payload (a JSON object).
    pub fn payload(mut self, payload: Value) -> PointStruct {
        self.payload = payload;
        self
    }
}

/// New vectors for an existing point ([`crate::Collection::update_vectors`]): dense,
/// sparse, or documents a model turns into sparse vectors.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PointVectors {
    /// The point.
    pub id: PointId,
    /// Dense vectors by space.
    pub vectors: NamedVectors,
    /// Sparse vectors by sparse space.
    pub sparse: SparseVectors,
    /// Multivectors by multivector space.
    pub multi: MultiVectors,
    /// Documents by sparse space.
    pub documents: BTreeMap<String, Document>,
}

impl PointVectors {
    /// No vectors yet; add them with the builders.
    pub fn new(id: impl Into<PointId>) -> PointVectors {
        PointVectors {
            id: id.into(),
            vectors: NamedVectors::new(),
            sparse: SparseVectors::new(),
            multi: MultiVectors::new(),
            documents: BTreeMap::new(),
        }
    }

    /// With the list of vectors for multivector space `name`.
    pub fn multivector(mut self, name: &str, vectors: MultiVector) -> PointVectors {
        self.multi.insert(name.to_string(), vectors);
        self
    }

    /// With the dense vector for `name`.
    pub fn vector(mut self, name: &str, vector: Vec<f32>) -> PointVectors {
        self.vectors.insert(name.to_string(), vector);
        self
    }

    /// With the sparse vector for `name`.
    pub fn sparse(mut self, name: &str, vector: SparseVector) -> PointVectors {
        self.sparse.insert(name.to_string(), vector);
        self
    }

    /// With a document for sparse space `name`.
    pub fn document(mut self, name: &str, document: Document) -> PointVectors {
        self.documents.insert(name.to_string(), document);
        self
    }
}

impl From<(PointId, NamedVectors)> for PointVectors {
    fn from((id, vectors): (PointId, NamedVectors)) -> PointVectors {
        PointVectors { vectors, ..PointVectors::new(id) }
    }
}

/// A point as stored, with the parts the selectors asked for.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Record {
    /// The id.
    pub id: PointId,
    /// The payload, if requested.
    pub payload: Option<Value>,
    /// The vectors, if requested (Cosine vectors come back normalised).
    pub vectors: Option<NamedVectors>,
    /// The sparse vectors, if requested (with the dense ones).
    pub sparse: Option<SparseVectors>,
    /// The multivectors, if requested (with the dense ones).
    pub multi: Option<MultiVectors>,
    /// The value that placed it, in a scroll ordered by a payload key.
    pub order_value: Option<braid_query::OrderValue>,
}

/// A search or query result.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ScoredPoint {
    /// The id.
    pub id: PointId,
    /// The score (`docs/distance.md`, `docs/query.md`).
    pub score: f32,
    /// The payload, if requested.
    pub payload: Option<Value>,
    /// The vectors, if requested.
    pub vectors: Option<NamedVectors>,
    /// The sparse vectors, if requested.
    pub sparse: Option<SparseVectors>,
    /// The multivectors, if requested.
    pub multi: Option<MultiVectors>,
    /// The value that placed it, for an `order_by` query.
    pub order_value: Option<braid_query::OrderValue>,
}

/// Which payload to return.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum WithPayload {
    /// None (the default, as in Qdrant's API).
    #[default]
    None,
    /// All of it.
    All,
    /// Only these keys (paths with prefix matching: `a` brings `a.b`; `a.b` brings `a`
    /// down to `a.b`).
    Include(Vec<String>),
    /// All but these keys.
    Exclude(Vec<String>),
}

/// Which vectors to return.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum WithVectors {
    /// None (the default).
    #[default]
    None,
    /// Every vector the point has.
    All,
    /// Only these spaces.
    Names(Vec<String>),
}

impl From<bool> for WithPayload {
    fn from(all: bool) -> Self {
        if all { WithPayload::All } else { WithPayload::None }
    }
}

impl From<bool> for WithVectors {
    fn from(all: bool) -> Self {
        if all { WithVectors::All } else { WithVectors::None }
    }
}

/// Keeps only the dotted paths in `keys` (and what lies below them).
fn include(value: &Value, keys: &[Vec<&str>]) -> Value {
    let Value::Object(map) = value else { return value.clone() };
    let mut out = Map::new();
    for (k, v) in map {
        let below: Vec<Vec<&str>> =
            keys.iter().filter(|p| p.first() == Some(&k.as_str())).map(|p| p[1..].to_vec()).collect();
        if below.is_empty() {
            continue;
        }
        if below.iter().any(Vec::is_empty) {
            out.insert(k.clone(), v.clone());
        } else {
            out.insert(k.clone(), include(v, &below));
        }
    }
    Value::Object(out)
}

/// Removes the dotted paths in `keys`.
fn exclude(value: &Value, keys: &[Vec<&str>]) -> Value {
    let Value::Object(map) = value else { return value.clone() };
    let mut out = Map::new();
    for (k, v) in map {
        let below: Vec<Vec<&str>> =
            keys.iter().filter(|p| p.first() == Some(&k.as_str())).map(|p| p[1..].to_vec()).collect();
        if below.iter().any(Vec::is_empty) {
            continue;
        }
        out.insert(k.clone(), if below.is_empty() { v.clone() } else { exclude(v, &below) });
    }
    Value::Object(out)
}

impl WithPayload {
    pub(crate) fn select(&self, payload: &Value) -> Option<Value> {
        fn split(keys: &[String]) -> Vec<Vec<&str>> {
            keys.iter().map(|k| k.split('.').collect()).collect()
        }
        match self {
            WithPayload::None => None,
            WithPayload::All => Some(payload.clone()),
            WithPayload::Include(keys) => Some(include(payload, &split(keys))),
            WithPayload::Exclude(keys) => Some(exclude(payload, &split(keys))),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn payload_selectors_match_paths_by_prefix() {
        let p = json!({"a": {"b": 1, "c": 2}, "d": 3, "e": {"f": {"g": 4}}});
        assert_eq!(WithPayload::Include(vec!["a".into()]).select(&p), Some(json!({"a": {"b": 1, "c": 2}})));
        assert_eq!(
            WithPayload::Include(vec!["a.b".into(), "d".into()]).select(&p),
            Some(json!({"a": {"b": 1}, "d": 3}))
        );
        assert_eq!(
            WithPayload::Include(vec!["e.f.g".into()]).select(&p),
            Some(json!({"e": {"f": {"g": 4}}}))
        );
        assert_eq!(WithPayload::Include(vec![]).select(&p), Some(json!({})));
        assert_eq!(
            WithPayload::Exclude(vec!["a.b".into(), "e".into()]).select(&p),
            Some(json!({"a": {"c": 2}, "d": 3}))
        );
        assert_eq!(WithPayload::None.select(&p), None);
        assert_eq!(WithPayload::All.select(&p), Some(p));
    }
}
