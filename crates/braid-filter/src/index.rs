//! Payloads by offset, and the roaring-bitmap payload indexes kept beside them.
//!
//! An index answers a condition with the exact set of offsets the per-point check
//! would accept, or declines (`None`) when it cannot be sure — then the planner falls
//! back to a per-point check for that condition. Indexes are updated on every payload
//! change, from the old and the new payload, which the store owns.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use braid_text::{TextOptions, Tokenizer};

use braid_core::PointOffset;
use roaring::RoaringBitmap;
use serde_json::Value;

use crate::ast::{FieldTest, Match, Range, Scalar, Variants};
use crate::parse::datetime_micros;
use crate::path::JsonPath;
use crate::{IndexError, PlannedFilter, PointLookup};

/// The kinds of payload index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IndexKind {
    /// Strings: `match value`/`any` on keywords.
    Keyword,
    /// Integers: `match value`/`any` on integers, and `range` over every number.
    Integer,
    /// Numbers: `range`.
    Float,
    /// Bools: `match value`.
    Bool,
    /// UUID strings in canonical form: `match value`/`any`.
    Uuid,
    /// RFC 3339 strings: datetime `range`.
    Datetime,
    /// Full text: `match text` (every token), `text_any` and `phrase`, tokenised by
    /// the index's [`TextOptions`] ([`PayloadStore::create_text_index`]).
    Text,
}

impl IndexKind {
    /// Every kind, in declaration order (storage encodes a kind as its position here).
    pub const ALL: [IndexKind; 7] = [
        IndexKind::Keyword,
        IndexKind::Integer,
        IndexKind::Float,
        IndexKind::Bool,
        IndexKind::Uuid,
        IndexKind::Datetime,
        IndexKind::Text,
    ];

    /// Does the index match exact values (keyword, integer, bool, uuid), each with its
    /// own set of points?
    pub fn matches_values(self) -> bool {
        matches!(self, IndexKind::Keyword | IndexKind::Integer | IndexKind::Bool | IndexKind::Uuid)
    }

    /// The lower-case name, as in Qdrant's `field_schema`.
    pub fn name(self) -> &'static str {
        match self {
            IndexKind::Keyword => "keyword",
            IndexKind::Integer => "integer",
            IndexKind::Float => "float",
            IndexKind::Bool => "bool",
            IndexKind::Uuid => "uuid",
            IndexKind::Datetime => "datetime",
            IndexKind::Text => "text",
        }
    }
}

/// A value `order_by` sorts by (Qdrant's `OrderValue`): an integer (integer and
/// datetime indexes; datetimes in microseconds since the epoch) or a float.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
pub enum OrderValue {
    /// From an integer or datetime index.
    Int(i64),
    /// From a float index.
    Float(f64),
}

impl OrderValue {
    /// As a float, for comparing across kinds.
    pub fn as_f64(self) -> f64 {
        match self {
            OrderValue::Int(i) => i as f64,
            OrderValue::Float(x) => x,
        }
    }

    /// A total order: integers exactly, anything with a float by `f64::total_cmp`.
    pub fn total_cmp(&self, other: &OrderValue) -> std::cmp::Ordering {
        match (self, other) {
            (OrderValue::Int(a), OrderValue::Int(b)) => a.cmp(b),
            (a, b) => a.as_f64().total_cmp(&b.as_f64()),
        }
    }
}

/// An `f64` with a total order, `-0.0` folded into `0.0` so that it orders the way
/// `<=` compares.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Number(f64);
impl Eq for Number {}
impl PartialOrd for Number {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Number {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}
impl Number {
    fn new(x: f64) -> Number {
        Number(x + 0.0)
    }
}

/// Offsets per value, ordered so that ranges are cheap.
type Postings<K> = BTreeMap<K, RoaringBitmap>;

fn post<K: Ord>(map: &mut Postings<K>, key: K, offset: u32, insert: bool) {
    if insert {
        map.entry(key).or_default().insert(offset);
    } else if let Some(bitmap) = map.get_mut(&key) {
        bitmap.remove(offset);
        if bitmap.is_empty() {
            map.remove(&key);
        }
    }
}

fn union<'a>(bitmaps: impl Iterator<Item = &'a RoaringBitmap>) -> RoaringBitmap {
    // roaring's multi-way union merges containers once instead of pairwise.
    roaring::MultiOps::union(bitmaps)
}

/// Offsets whose key lies in `range`.
fn range_union<K: Ord + Copy>(map: &Postings<K>, range: &Range<K>) -> RoaringBitmap {
    let lo = [range.gt, range.gte].into_iter().flatten().max();
    let hi = [range.lt, range.lte].into_iter().flatten().min();
    if let (Some(lo), Some(hi)) = (lo, hi)
        && lo > hi
    {
        return RoaringBitmap::new();
    }
    use std::ops::Bound::{Included, Unbounded};
    let bounds = (lo.map_or(Unbounded, Included), hi.map_or(Unbounded, Included));
    union(map.range(bounds).filter(|(k, _)| range.contains(**k)).map(|(_, b)| b))
}

#[derive(Clone, Debug)]
enum FieldIndex {
    Keyword(Postings<String>),
    Integer { exact: Postings<i64>, numbers: Postings<Number> },
    Float(Postings<Number>),
    Bool { yes: RoaringBitmap, no: RoaringBitmap },
    Uuid(Postings<u128>),
    Datetime(Postings<i64>),
    Text(TextIndex),
}

/// A full-text index: the offsets holding each token of the strings at its key (all
/// of a point's strings together, as Qdrant indexes a point's texts).
#[derive(Clone, Debug)]
struct TextIndex {
    tokenizer: Arc<Tokenizer>,
    postings: Postings<String>,
}

impl TextIndex {
    /// The distinct tokens of every string among `values`.
    fn tokens(&self, values: &[&Value]) -> BTreeSet<String> {
        strings(values).flat_map(|s| self.tokenizer.document_tokens(s)).collect()
    }

    fn query(&self, text: &str) -> Vec<String> {
        self.tokenizer.query_tokens(text)
    }

    /// Points holding every token of `query` (none for a query without tokens).
    fn all_of(&self, query: &[String]) -> RoaringBitmap {
        if query.is_empty() {
            return RoaringBitmap::new();
        }
        let mut lists: Vec<&RoaringBitmap> = Vec::with_capacity(query.len());
        for t in query {
            match self.postings.get(t) {
                Some(b) => lists.push(b),
                None => return RoaringBitmap::new(),
            }
        }
        lists.sort_by_key(|b| b.len());
        roaring::MultiOps::intersection(lists.into_iter())
    }

    /// Whether one of the strings among `values` holds `phrase` as consecutive tokens.
    fn has_phrase(&self, values: &[&Value], phrase: &[String]) -> bool {
        strings(values).any(|s| self.tokenizer.query_tokens(s).windows(phrase.len()).any(|w| w == phrase))
    }
}

/// A test of one point's values at an index's key (false without a payload).
type OnValues<'a> = dyn Fn(u32, &dyn Fn(&[&Value]) -> bool) -> bool + 'a;

/// The strings among the values, array elements included.
fn strings<'a>(values: &'a [&'a Value]) -> impl Iterator<Item = &'a str> {
    values
        .iter()
        .flat_map(|v| match v {
            Value::Array(items) => items.iter().collect::<Vec<_>>(),
            other => vec![*other],
        })
        .filter_map(Value::as_str)
}

/// A string's UUID, only when the string is the canonical lower-case hyphenated form:
/// per-point `match` compares strings exactly, so only canonical strings can be keyed
/// by their UUID without changing answers.
fn canonical_uuid(s: &str) -> Option<u128> {
    let u = uuid::Uuid::parse_str(s).ok()?;
    (u.hyphenated().to_string() == s).then_some(u.as_u128())
}

impl FieldIndex {
    fn new(kind: IndexKind) -> FieldIndex {
        match kind {
            IndexKind::Keyword => FieldIndex::Keyword(Postings::new()),
            IndexKind::Integer => FieldIndex::Integer { exact: Postings::new(), numbers: Postings::new() },
            IndexKind::Float => FieldIndex::Float(Postings::new()),
            IndexKind::Bool => FieldIndex::Bool { yes: RoaringBitmap::new(), no: RoaringBitmap::new() },
            IndexKind::Uuid => FieldIndex::Uuid(Postings::new()),
            IndexKind::Datetime => FieldIndex::Datetime(Postings::new()),
            IndexKind::Text => FieldIndex::text(Arc::new(Tokenizer::default())),
        }
    }

    fn text(tokenizer: Arc<Tokenizer>) -> FieldIndex {
        FieldIndex::Text(TextIndex { tokenizer, postings: Postings::new() })
    }

    fn kind(&self) -> IndexKind {
        match self {
            FieldIndex::Keyword(_) => IndexKind::Keyword,
            FieldIndex::Integer { .. } => IndexKind::Integer,
            FieldIndex::Float(_) => IndexKind::Float,
            FieldIndex::Bool { .. } => IndexKind::Bool,
            FieldIndex::Uuid(_) => IndexKind::Uuid,
            FieldIndex::Datetime(_) => IndexKind::Datetime,
            FieldIndex::Text(_) => IndexKind::Text,
        }
    }

    /// Adds (`insert`) or removes the offset under every value at the key.
    fn update(&mut self, key: &JsonPath, payload: &Value, offset: u32, insert: bool) {
        let values = key.values(payload);
        if let FieldIndex::Text(index) = self {
            for token in index.tokens(&values) {
                post(&mut index.postings, token, offset, insert);
            }
            return;
        }
        let elements = values.iter().flat_map(|v| match v {
            Value::Array(items) => items.iter().collect::<Vec<_>>(),
            other => vec![*other],
        });
        for v in elements {
            match (&mut *self, v) {
                (FieldIndex::Keyword(map), Value::String(s)) => post(map, s.clone(), offset, insert),
                (FieldIndex::Integer { exact, numbers }, Value::Number(n)) => {
                    if let Some(i) = n.as_i64() {
                        post(exact, i, offset, insert);
                    }
                    if let Some(x) = n.as_f64() {
                        post(numbers, Number::new(x), offset, insert);
                    }
                }
                (FieldIndex::Float(numbers), Value::Number(n)) => {
                    if let Some(x) = n.as_f64() {
                        post(numbers, Number::new(x), offset, insert);
                    }
                }
                (FieldIndex::Bool { yes, no }, Value::Bool(b)) => {
                    let set = if *b { yes } else { no };
                    if insert {
                        set.insert(offset);
                    } else {
                        set.remove(offset);
                    }
                }
                (FieldIndex::Uuid(map), Value::String(s)) => {
                    if let Some(u) = canonical_uuid(s) {
                        post(map, u, offset, insert);
                    }
                }
                (FieldIndex::Datetime(map), Value::String(s)) => {
                    if let Some(t) = datetime_micros(s) {
                        post(map, t, offset, insert);
                    }
                }
                _ => {}
            }
        }
    }

    /// The posting sets of the exact values at `key` in `payload`, each once.
    fn value_sets(&self, key: &JsonPath, payload: &Value) -> Vec<&RoaringBitmap> {
        let values = key.values(payload);
        let elements = values.iter().flat_map(|v| match v {
            Value::Array(items) => items.iter().collect::<Vec<_>>(),
            other => vec![*other],
        });
        let mut sets: Vec<&RoaringBitmap> = Vec::new();
        for v in elements {
            let set = match (self, v) {
                (FieldIndex::Keyword(map), Value::String(s)) => map.get(s),
                (FieldIndex::Integer { exact, .. }, Value::Number(n)) => {
                    n.as_i64().and_then(|i| exact.get(&i))
                }
                (FieldIndex::Bool { yes, no }, Value::Bool(b)) => Some(if *b { yes } else { no }),
                (FieldIndex::Uuid(map), Value::String(s)) => canonical_uuid(s).and_then(|u| map.get(&u)),
                _ => None,
            };
            if let Some(set) = set
                && !sets.iter().any(|s| std::ptr::eq(*s, set))
            {
                sets.push(set);
            }
        }
        sets
    }

    /// The exact matching set for `test`, or `None` when this index cannot answer it.
    /// `on_values(o, f)` is `f` of point `o`'s values at the key (a phrase is verified
    /// on them), false when it has no payload.
    fn answer(&self, test: &FieldTest, on_values: &OnValues<'_>) -> Option<RoaringBitmap> {
        let empty = RoaringBitmap::new;
        match (self, test) {
            (FieldIndex::Text(index), FieldTest::Match(Match::Text(t))) => {
                Some(index.all_of(&index.query(t)))
            }
            (FieldIndex::Text(index), FieldTest::Match(Match::TextAny(t))) => {
                let query = index.query(t);
                Some(union(query.iter().filter_map(|w| index.postings.get(w))))
            }
            (FieldIndex::Text(index), FieldTest::Match(Match::Phrase(t))) => {
                let phrase = index.query(t);
                let mut candidates = index.all_of(&phrase);
                if phrase.len() > 1 {
                    candidates.retain(|o| on_values(o, &|values| index.has_phrase(values, &phrase)));
                }
                Some(candidates)
            }
            (FieldIndex::Keyword(map), FieldTest::Match(Match::Value(Scalar::Keyword(k)))) => {
                Some(map.get(k).cloned().unwrap_or_else(empty))
            }
            (FieldIndex::Keyword(map), FieldTest::Match(Match::Any(Variants::Keywords(list)))) => {
                Some(union(list.iter().filter_map(|k| map.get(k))))
            }
            (FieldIndex::Integer { exact, .. }, FieldTest::Match(Match::Value(Scalar::Integer(i)))) => {
                Some(exact.get(i).cloned().unwrap_or_else(empty))
            }
            (FieldIndex::Integer { exact, .. }, FieldTest::Match(Match::Any(Variants::Integers(list)))) => {
                Some(union(list.iter().filter_map(|i| exact.get(i))))
            }
            (FieldIndex::Integer { numbers, .. } | FieldIndex::Float(numbers), FieldTest::Range(r)) => {
                let r = Range {
                    gt: r.gt.map(Number::new),
                    gte: r.gte.map(Number::new),
                    lt: r.lt.map(Number::new),
                    lte: r.lte.map(Number::new),
                };
                Some(range_union(numbers, &r))
            }
            (FieldIndex::Bool { yes, no }, FieldTest::Match(Match::Value(Scalar::Bool(b)))) => {
                Some(if *b { yes.clone() } else { no.clone() })
            }
            (FieldIndex::Uuid(map), FieldTest::Match(Match::Value(Scalar::Keyword(k)))) => {
                canonical_uuid(k).map(|u| map.get(&u).cloned().unwrap_or_else(empty))
            }
            (FieldIndex::Uuid(map), FieldTest::Match(Match::Any(Variants::Keywords(list)))) => {
                let keys = list.iter().map(|k| canonical_uuid(k)).collect::<Option<Vec<_>>>()?;
                Some(union(keys.iter().filter_map(|u| map.get(u))))
            }
            (FieldIndex::Datetime(map), FieldTest::DatetimeRange(r)) => Some(range_union(map, r)),
            _ => None,
        }
    }
}

/// A value a facet counts: what a keyword, integer, bool or uuid index holds (UUIDs
/// as their canonical strings, as Qdrant reports them).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
pub enum FacetValue {
    /// A string (keyword or UUID index).
    Keyword(String),
    /// An integer.
    Integer(i64),
    /// A boolean.
    Bool(bool),
}

/// Index-derived `(value, count)` pairs, best first: count descending, then value
/// ascending; at most `limit`, none with a count of 0.
fn top_facets(mut hits: Vec<(FacetValue, usize)>, limit: usize) -> Vec<(FacetValue, usize)> {
    hits.retain(|(_, n)| *n > 0);
    hits.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    hits.truncate(limit);
    hits
}

/// Payloads kept outside memory (Qdrant's `on_disk_payload`): a file of them by
/// offset, read as they are asked for. The source is immutable; a store holding one
/// keeps the payloads written since beside it in memory.
pub trait PayloadSource: Send + Sync + std::fmt::Debug {
    /// The payload stored for `offset`; `None` when it has none or is past the end.
    fn payload(&self, offset: u32) -> Option<Value>;
    /// The offsets it covers: `0..len`.
    fn len(&self) -> usize;
    /// Whether it covers no offset.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Its size in bytes (a file's, say), for memory reports.
    fn bytes(&self) -> usize;
    /// The payload for `offset` as the source stores it (its own encoding), without
    /// decoding it: what a writer of the next source copies as it is.
    fn encoded(&self, offset: u32) -> Option<&[u8]>;
}

/// A payload as [`PayloadStore::stored`] finds it.
#[derive(Debug)]
pub enum Stored<'a> {
    /// None is held for the offset.
    None,
    /// Held in memory (shared: a clone of the `Arc` takes it by reference).
    Value(&'a Arc<Value>),
    /// Untouched in the source since it was made, in the source's encoding.
    Encoded(&'a [u8]),
}

/// Where a store's payloads live. Those in memory are shared (`Arc`): a copy of the
/// store, or a compaction's copy of the live points, takes them by reference.
#[derive(Clone, Debug)]
enum Held {
    /// Every payload in memory, by offset.
    Memory(Vec<Option<Arc<Value>>>),
    /// A source, and in memory what was written or removed since it was made.
    Source { source: Arc<dyn PayloadSource>, changed: BTreeMap<u32, Option<Arc<Value>>> },
}

impl Default for Held {
    fn default() -> Held {
        Held::Memory(Vec::new())
    }
}

/// The payloads of one segment, addressed by offset, with their payload indexes. The
/// payloads are in memory, or in a [`PayloadSource`] read as they are asked for
/// ([`PayloadStore::hold_in`]); the indexes are always in memory.
#[derive(Clone, Debug, Default)]
pub struct PayloadStore {
    payloads: Held,
    /// Payloads held in memory (kept as they change: collection info reads it).
    in_memory: usize,
    indexes: BTreeMap<JsonPath, FieldIndex>,
}

impl PayloadStore {
    /// An empty store.
    pub fn new() -> PayloadStore {
        PayloadStore::default()
    }

    /// The payload at `offset`, if a non-empty one was set: borrowed from memory, or read from the
    /// source.
    pub fn get(&self, offset: PointOffset) -> Option<Cow<'_, Value>> {
        match &self.payloads {
            Held::Memory(payloads) => {
                payloads.get(offset.index()).and_then(Option::as_ref).map(|p| Cow::Borrowed(&**p))
            }
            Held::Source { source, changed } => match changed.get(&offset.0) {
                Some(held) => held.as_ref().map(|p| Cow::Borrowed(&**p)),
                None => source.payload(offset.0).map(Cow::Owned),
            },
        }
    }

    /// The payload at `offset` without decoding what a source holds: for writing the
    /// next source, which can copy an untouched payload's bytes as they are.
    pub fn stored(&self, offset: PointOffset) -> Stored<'_> {
        let held = match &self.payloads {
            Held::Memory(payloads) => payloads.get(offset.index()).and_then(Option::as_ref),
            Held::Source { source, changed } => match changed.get(&offset.0) {
                Some(held) => held.as_ref(),
                None => return source.encoded(offset.0).map_or(Stored::None, Stored::Encoded),
            },
        };
        held.map_or(Stored::None, Stored::Value)
    }

    /// Replaces the payload at `offset`, updating every index. Returns the old one.
    /// An empty object is no payload (Qdrant answers `{}` for both): nothing is kept
    /// for it, so points without payloads cost the store no memory.
    pub fn set(&mut self, offset: PointOffset, payload: Value) -> Option<Arc<Value>> {
        self.set_shared(offset, Arc::new(payload))
    }

    /// [`PayloadStore::set`] with a payload shared with its holders (another store's,
    /// say): kept by reference.
    pub fn set_shared(&mut self, offset: PointOffset, payload: Arc<Value>) -> Option<Arc<Value>> {
        let old = self.remove(offset);
        if payload.as_object().is_some_and(serde_json::Map::is_empty) {
            return old;
        }
        for (key, index) in &mut self.indexes {
            index.update(key, &payload, offset.0, true);
        }
        // `remove` left no payload at `offset` in memory.
        match &mut self.payloads {
            Held::Memory(payloads) => {
                if payloads.len() <= offset.index() {
                    payloads.resize(offset.index() + 1, None);
                }
                payloads[offset.index()] = Some(payload);
            }
            Held::Source { changed, .. } => {
                changed.insert(offset.0, Some(payload));
            }
        }
        self.in_memory += 1;
        old
    }

    /// Removes the payload at `offset` from the store and every index.
    pub fn remove(&mut self, offset: PointOffset) -> Option<Arc<Value>> {
        let old = match &mut self.payloads {
            Held::Memory(payloads) => {
                let old = payloads.get_mut(offset.index()).and_then(Option::take)?;
                self.in_memory -= 1;
                old
            }
            Held::Source { source, changed } => match changed.insert(offset.0, None) {
                Some(held) => {
                    let old = held?;
                    self.in_memory -= 1;
                    old
                }
                None => match source.payload(offset.0) {
                    Some(old) => Arc::new(old),
                    None => {
                        // The source has nothing there to hide: no entry is kept (a
                        // point without a payload costs no memory here either).
                        changed.remove(&offset.0);
                        return None;
                    }
                },
            },
        };
        for (key, index) in &mut self.indexes {
            index.update(key, &old, offset.0, false);
        }
        Some(old)
    }

    /// Indexes the payload the source holds for `offset`, where no write since has
    /// replaced it: for a source that gains payloads after the store was made over it
    /// (a compaction's new segment, over the old segment's payload file renumbered as
    /// its points are written), so they are indexed without being kept in memory.
    pub fn index_from_source(&mut self, offset: PointOffset) {
        let Held::Source { source, changed } = &self.payloads else { return };
        // Without indexes there is nothing to read it for.
        if self.indexes.is_empty() || changed.contains_key(&offset.0) {
            return;
        }
        if let Some(payload) = source.payload(offset.0) {
            for (key, index) in &mut self.indexes {
                index.update(key, &payload, offset.0, true);
            }
        }
    }

    /// The source the payloads are read from, if any ([`PayloadStore::hold_in`]).
    pub fn source(&self) -> Option<&Arc<dyn PayloadSource>> {
        match &self.payloads {
            Held::Source { source, .. } => Some(source),
            Held::Memory(_) => None,
        }
    }

    /// Where the payloads are held from now on: `Some(source)` holding exactly the
    /// payloads this store has now (a checkpoint just wrote them there), whose reads
    /// replace the memory copies; `None` reads every payload back into memory. The
    /// indexes are unchanged either way.
    pub fn hold_in(&mut self, source: Option<Arc<dyn PayloadSource>>) {
        self.payloads = match source {
            Some(source) => Held::Source { source, changed: BTreeMap::new() },
            None => Held::Memory(
                (0..self.end() as u32)
                    .map(|o| self.get(PointOffset(o)).map(|p| Arc::new(p.into_owned())))
                    .collect(),
            ),
        };
        self.in_memory = match &self.payloads {
            Held::Memory(payloads) => payloads.iter().flatten().count(),
            Held::Source { .. } => 0,
        };
    }

    /// Whether the payloads are read from a source (`on_disk_payload`).
    pub fn is_held_in_source(&self) -> bool {
        matches!(self.payloads, Held::Source { .. })
    }

    /// How many payloads are held in memory (with a source: those written since it
    /// was made), and the source's bytes (0 without one).
    pub fn residency(&self) -> (usize, usize) {
        match &self.payloads {
            Held::Memory(_) => (self.in_memory, 0),
            Held::Source { source, .. } => (self.in_memory, source.bytes()),
        }
    }

    /// Offsets `0..end` cover every payload.
    fn end(&self) -> usize {
        match &self.payloads {
            Held::Memory(payloads) => payloads.len(),
            Held::Source { source, changed } => {
                source.len().max(changed.last_key_value().map_or(0, |(o, _)| *o as usize + 1))
            }
        }
    }

    /// Every payload with its offset, in offset order.
    pub fn all(&self) -> impl Iterator<Item = (u32, Cow<'_, Value>)> {
        (0..self.end() as u32).filter_map(|o| self.get(PointOffset(o)).map(|p| (o, p)))
    }

    /// Builds an index of `kind` on `key` from every stored payload (a text index with
    /// the default options). Creating the same index again is a no-op; another kind on
    /// the same key is an error.
    pub fn create_index(&mut self, key: &str, kind: IndexKind) -> Result<(), IndexError> {
        match kind {
            IndexKind::Text => self.create_text_index(key, TextOptions::default()),
            kind => {
                if !self.check_index(key, kind)? {
                    return Ok(());
                }
                self.build(key, FieldIndex::new(kind))
            }
        }
    }

    /// Builds a full-text index on `key` tokenised by `options`. The same index again
    /// is a no-op; a text index with other options, or another kind, is an error.
    pub fn create_text_index(&mut self, key: &str, options: TextOptions) -> Result<(), IndexError> {
        if !self.check_text_index(key, &options)? {
            return Ok(());
        }
        let tokenizer = Tokenizer::new(options).map_err(IndexError::Text)?;
        self.build(key, FieldIndex::text(Arc::new(tokenizer)))
    }

    fn build(&mut self, key: &str, mut index: FieldIndex) -> Result<(), IndexError> {
        let path = JsonPath::parse(key)?;
        for (offset, payload) in self.all() {
            index.update(&path, &payload, offset, true);
        }
        self.indexes.insert(path, index);
        Ok(())
    }

    /// Would [`PayloadStore::create_index`] succeed? `Ok(false)` when the same index
    /// exists already, `Ok(true)` when it would be built.
    pub fn check_index(&self, key: &str, kind: IndexKind) -> Result<bool, IndexError> {
        if kind == IndexKind::Text {
            return self.check_text_index(key, &TextOptions::default());
        }
        let path = JsonPath::parse(key)?;
        match self.indexes.get(&path) {
            None => Ok(true),
            Some(existing) if existing.kind() == kind => Ok(false),
            Some(existing) => Err(IndexError::KindConflict {
                key: key.to_string(),
                existing: existing.kind().name(),
                requested: kind.name(),
            }),
        }
    }

    /// Would [`PayloadStore::create_text_index`] succeed? As [`PayloadStore::check_index`];
    /// options a tokeniser refuses, and a key whose stored values are all non-strings
    /// (a text index there would hold nothing), are errors too.
    pub fn check_text_index(&self, key: &str, options: &TextOptions) -> Result<bool, IndexError> {
        let path = JsonPath::parse(key)?;
        Tokenizer::new(options.clone()).map_err(IndexError::Text)?;
        match self.indexes.get(&path) {
            None => {}
            Some(FieldIndex::Text(existing)) if existing.tokenizer.options() == options => return Ok(false),
            Some(FieldIndex::Text(_)) => {
                return Err(IndexError::OptionsConflict { key: key.to_string() });
            }
            Some(existing) => {
                return Err(IndexError::KindConflict {
                    key: key.to_string(),
                    existing: existing.kind().name(),
                    requested: "text",
                });
            }
        }
        let mut found: Option<&'static str> = None;
        for (_, payload) in self.all() {
            let values = path.values(&payload);
            if strings(&values).next().is_some() {
                return Ok(true);
            }
            found = found.or_else(|| {
                values.iter().find(|v| !v.is_null() && !v.is_array()).map(|v| match v {
                    Value::Number(_) => "numbers",
                    Value::Bool(_) => "booleans",
                    _ => "objects",
                })
            });
        }
        match found {
            Some(found) => Err(IndexError::NotText { key: key.to_string(), found }),
            None => Ok(true),
        }
    }

    /// The options of the text index on `key`, if it has one.
    pub fn text_options(&self, key: &JsonPath) -> Option<&TextOptions> {
        match self.indexes.get(key) {
            Some(FieldIndex::Text(t)) => Some(t.tokenizer.options()),
            _ => None,
        }
    }

    /// Drops the index on `key`; `true` if there was one.
    pub fn drop_index(&mut self, key: &str) -> bool {
        JsonPath::parse(key).is_ok_and(|path| self.indexes.remove(&path).is_some())
    }

    /// Every index, by key.
    pub fn indexes(&self) -> impl Iterator<Item = (&JsonPath, IndexKind)> {
        self.indexes.iter().map(|(k, i)| (k, i.kind()))
    }

    /// The keys whose index matches exact values (keyword, integer, bool, uuid): the
    /// fields a graph links points by (`payload_m`, `docs/hnsw.md`, "Payload links").
    pub fn value_keys(&self) -> impl Iterator<Item = &JsonPath> {
        self.indexes.iter().filter(|(_, i)| i.kind().matches_values()).map(|(k, _)| k)
    }

    /// For each value the point at `offset` holds at `key`, the points holding that
    /// value, from the index on `key` (none without a value index there).
    pub fn value_sets(&self, key: &JsonPath, offset: PointOffset) -> Vec<&RoaringBitmap> {
        match (self.indexes.get(key), self.get(offset)) {
            (Some(index), Some(payload)) => index.value_sets(key, &payload),
            _ => Vec::new(),
        }
    }

    /// Qdrant's facet: for each value the index on `key` holds, how many of the points
    /// in `among` hold it (each point counted once per value, however many times it
    /// holds it), best `limit` first (count descending, then value). Exact. Needs a
    /// keyword, integer, bool or uuid index on the key, as Qdrant's server does.
    pub fn facet(
        &self,
        key: &str,
        among: &RoaringBitmap,
        limit: usize,
    ) -> Result<Vec<(FacetValue, usize)>, IndexError> {
        let path = JsonPath::parse(key)?;
        let count = |b: &RoaringBitmap| b.intersection_len(among) as usize;
        let hits: Vec<(FacetValue, usize)> = match self.indexes.get(&path) {
            Some(FieldIndex::Keyword(map)) => {
                map.iter().map(|(k, b)| (FacetValue::Keyword(k.clone()), count(b))).collect()
            }
            Some(FieldIndex::Integer { exact, .. }) => {
                exact.iter().map(|(i, b)| (FacetValue::Integer(*i), count(b))).collect()
            }
            Some(FieldIndex::Bool { yes, no }) => {
                vec![(FacetValue::Bool(true), count(yes)), (FacetValue::Bool(false), count(no))]
            }
            Some(FieldIndex::Uuid(map)) => map
                .iter()
                .map(|(u, b)| {
                    (FacetValue::Keyword(uuid::Uuid::from_u128(*u).hyphenated().to_string()), count(b))
                })
                .collect(),
            other => {
                return Err(IndexError::FacetNeedsIndex {
                    key: key.to_string(),
                    found: other.map(|i| i.kind().name()),
                });
            }
        };
        Ok(top_facets(hits, limit))
    }

    /// Qdrant's `order_by`: the values a range index (integer, float, datetime) on
    /// `key` holds, ascending or descending, each with the offsets in `among` holding
    /// it (values no such point holds are skipped). A point with several values comes
    /// once per value. `start_from` (inclusive) skips the values before it in that
    /// direction. Integer and datetime (microseconds) indexes give integer values, a
    /// float index floats.
    pub fn ordered<'a>(
        &'a self,
        key: &str,
        descending: bool,
        start_from: Option<f64>,
        among: &'a RoaringBitmap,
    ) -> Result<Box<dyn Iterator<Item = (OrderValue, RoaringBitmap)> + 'a>, IndexError> {
        fn walk<'a, K: Ord + Copy>(
            map: &'a Postings<K>,
            descending: bool,
            skip: impl Fn(K) -> bool + 'a,
            value: impl Fn(K) -> OrderValue + 'a,
            among: &'a RoaringBitmap,
        ) -> Box<dyn Iterator<Item = (OrderValue, RoaringBitmap)> + 'a> {
            let iter: Box<dyn Iterator<Item = (&K, &RoaringBitmap)>> =
                if descending { Box::new(map.iter().rev()) } else { Box::new(map.iter()) };
            Box::new(iter.filter(move |(k, _)| !skip(**k)).filter_map(move |(k, b)| {
                let held = b & among;
                (!held.is_empty()).then(|| (value(*k), held))
            }))
        }
        let path = JsonPath::parse(key)?;
        // Values before `start_from` in the walk's direction are skipped.
        let before = move |x: f64| match start_from {
            None => false,
            Some(s) if descending => x > s,
            Some(s) => x < s,
        };
        match self.indexes.get(&path) {
            Some(FieldIndex::Integer { exact, .. }) => {
                Ok(walk(exact, descending, move |k: i64| before(k as f64), OrderValue::Int, among))
            }
            Some(FieldIndex::Datetime(map)) => {
                Ok(walk(map, descending, move |k: i64| before(k as f64), OrderValue::Int, among))
            }
            Some(FieldIndex::Float(map)) => Ok(walk(
                map,
                descending,
                move |k: Number| before(k.0),
                |k: Number| OrderValue::Float(k.0),
                among,
            )),
            other => Err(IndexError::OrderByNeedsIndex {
                key: key.to_string(),
                found: other.map(|i| i.kind().name()),
            }),
        }
    }

    /// The exact set for a field test from an index on `key`, when one can answer it.
    pub(crate) fn answer(&self, key: &JsonPath, test: &FieldTest) -> Option<RoaringBitmap> {
        let on_values = |o: u32, f: &dyn Fn(&[&Value]) -> bool| {
            self.get(PointOffset(o)).is_some_and(|p| f(&key.values(&p)))
        };
        self.indexes.get(key).and_then(|i| i.answer(test, &on_values))
    }

    /// Turns `filter` into the set of matching offsets (when indexes answer every
    /// condition) or a per-point predicate, with a cardinality estimate.
    pub fn plan<'a>(&'a self, filter: &'a crate::Filter, lookup: &'a dyn PointLookup) -> PlannedFilter<'a> {
        PlannedFilter::new(filter, self, lookup)
    }
}
