//! From a filter to something a search can consult: the exact set of matching offsets
//! when payload indexes answer every condition, else a per-point predicate that still
//! uses a bitmap for each condition an index (or the id and vector lookups) answers.
//! Either way with a [`Cardinality`] estimate for the query planner.

use std::borrow::Cow;

use braid_core::{Cardinality, OffsetFilter, PointOffset};
use roaring::RoaringBitmap;
use serde_json::Value;

use crate::ast::{Condition, FieldCondition, FieldTest, Filter, Match, Scalar, Variants};
use crate::check::Subject;
use crate::{IndexKind, JsonPath};
use crate::{PayloadStore, PointLookup};

/// How many live points a per-point condition is tried on to estimate its selectivity.
const SAMPLE: u64 = 64;

/// A compiled filter node.
#[derive(Clone, Debug)]
enum Node<'a> {
    /// Exactly these offsets (a subset of the live ones).
    Set(RoaringBitmap),
    /// Evaluate this condition on the point's payload.
    Check(&'a Condition),
    All(Vec<Node<'a>>),
    Any(Vec<Node<'a>>),
    Not(Box<Node<'a>>),
    AtLeast(usize, Vec<Node<'a>>),
}

struct Compiler<'a> {
    store: &'a PayloadStore,
    lookup: &'a dyn PointLookup,
    live: &'a RoaringBitmap,
}

impl<'a> Compiler<'a> {
    fn filter(&self, f: &'a Filter) -> Node<'a> {
        let mut all: Vec<Node<'a>> = f.must.iter().map(|c| self.condition(c)).collect();
        if let Some(should) = &f.should {
            all.push(self.any(should.iter().map(|c| self.condition(c)).collect()));
        }
        all.extend(f.must_not.iter().map(|c| self.not(self.condition(c))));
        if let Some(m) = &f.min_should {
            all.push(self.at_least(m.min_count, m.conditions.iter().map(|c| self.condition(c)).collect()));
        }
        self.all(all)
    }

    fn condition(&self, c: &'a Condition) -> Node<'a> {
        match c {
            Condition::Field(f) => match self.store.answer(&f.key, &f.test) {
                Some(set) => Node::Set(set & self.live),
                None => Node::Check(c),
            },
            Condition::HasId(ids) => {
                let mut set: RoaringBitmap =
                    ids.iter().filter_map(|id| self.lookup.offset_of(id)).map(|o| o.0).collect();
                set &= self.live;
                Node::Set(set)
            }
            Condition::HasVector(name) => {
                Node::Set(self.lookup.vectors(name).map_or_else(RoaringBitmap::new, |b| b & self.live))
            }
            Condition::Filter(f) => self.filter(f),
            Condition::IsEmpty(_) | Condition::IsNull(_) | Condition::Nested { .. } => Node::Check(c),
        }
    }

    /// Intersects every `Set` child into one; an all-`Set` conjunction becomes a `Set`.
    fn all(&self, children: Vec<Node<'a>>) -> Node<'a> {
        let (sets, mut rest): (Vec<_>, Vec<_>) =
            children.into_iter().partition(|n| matches!(n, Node::Set(_)));
        let mut set: Option<RoaringBitmap> = None;
        for n in sets {
            if let Node::Set(s) = n {
                set = Some(match set {
                    None => s,
                    Some(acc) => acc & s,
                });
            }
        }
        match (set, rest.is_empty()) {
            (None, true) => Node::Set(self.live.clone()),
            (Some(s), true) => Node::Set(s),
            (Some(s), false) => {
                rest.insert(0, Node::Set(s));
                Node::All(rest)
            }
            (None, false) if rest.len() == 1 => rest.pop().unwrap_or(Node::All(Vec::new())),
            (None, false) => Node::All(rest),
        }
    }

    fn any(&self, children: Vec<Node<'a>>) -> Node<'a> {
        if children.iter().all(|n| matches!(n, Node::Set(_))) {
            let mut out = RoaringBitmap::new();
            for n in &children {
                if let Node::Set(s) = n {
                    out |= s;
                }
            }
            return Node::Set(out);
        }
        Node::Any(children)
    }

    fn not(&self, child: Node<'a>) -> Node<'a> {
        match child {
            Node::Set(s) => Node::Set(self.live - s),
            other => Node::Not(Box::new(other)),
        }
    }

    fn at_least(&self, count: usize, children: Vec<Node<'a>>) -> Node<'a> {
        if count == 0 {
            return Node::Set(self.live.clone());
        }
        if !children.iter().all(|n| matches!(n, Node::Set(_))) {
            return Node::AtLeast(count, children);
        }
        // levels[j] holds the offsets found in at least j + 1 of the sets seen so far.
        let mut levels: Vec<RoaringBitmap> = vec![RoaringBitmap::new(); count];
        for n in &children {
            if let Node::Set(s) = n {
                for j in (0..count).rev() {
                    let promoted = if j == 0 { s.clone() } else { &levels[j - 1] & s };
                    levels[j] |= promoted;
                }
            }
        }
        Node::Set(levels.pop().unwrap_or_default())
    }
}

/// The point's payload, or `null` (which has no keys) when it has none.
fn payload_at(store: &PayloadStore, offset: PointOffset) -> Cow<'_, Value> {
    store.get(offset).unwrap_or(Cow::Owned(Value::Null))
}

impl Node<'_> {
    fn eval(&self, offset: PointOffset, store: &PayloadStore, lookup: &dyn PointLookup) -> bool {
        match self {
            Node::Set(s) => s.contains(offset.0),
            Node::Check(c) => c.check_subject(Subject {
                payload: &payload_at(store, offset),
                point: Some((offset, lookup)),
            }),
            Node::All(children) => children.iter().all(|n| n.eval(offset, store, lookup)),
            Node::Any(children) => children.iter().any(|n| n.eval(offset, store, lookup)),
            Node::Not(child) => !child.eval(offset, store, lookup),
            Node::AtLeast(k, children) => {
                children.iter().filter(|n| n.eval(offset, store, lookup)).take(*k).count() >= *k
            }
        }
    }

    /// Bounds that contain the true count over `live` (n points).
    fn estimate(
        &self,
        n: usize,
        sample: &[PointOffset],
        store: &PayloadStore,
        lookup: &dyn PointLookup,
    ) -> Cardinality {
        let frac = |e: usize| if n == 0 { 0.0 } else { e as f64 / n as f64 };
        match self {
            Node::Set(s) => Cardinality::exact(s.len() as usize),
            Node::Check(_) => {
                let hits = sample.iter().filter(|&&o| self.eval(o, store, lookup)).count();
                let expected = if sample.is_empty() { n / 2 } else { n * hits / sample.len() };
                Cardinality::new(0, expected, n)
            }
            Node::All(children) => {
                let parts: Vec<Cardinality> =
                    children.iter().map(|c| c.estimate(n, sample, store, lookup)).collect();
                let slack = parts.len().saturating_sub(1) * n;
                let min = parts.iter().map(|p| p.min).sum::<usize>().saturating_sub(slack);
                let max = parts.iter().map(|p| p.max).min().unwrap_or(n);
                let expected = parts.iter().fold(n as f64, |acc, p| acc * frac(p.expected));
                Cardinality::new(min, expected.round() as usize, max)
            }
            Node::Any(children) => {
                let parts: Vec<Cardinality> =
                    children.iter().map(|c| c.estimate(n, sample, store, lookup)).collect();
                let min = parts.iter().map(|p| p.min).max().unwrap_or(0);
                let max = parts.iter().map(|p| p.max).sum::<usize>().min(n);
                let miss = parts.iter().fold(1.0, |acc, p| acc * (1.0 - frac(p.expected)));
                Cardinality::new(min, (n as f64 * (1.0 - miss)).round() as usize, max)
            }
            Node::Not(child) => {
                let c = child.estimate(n, sample, store, lookup);
                Cardinality::new(n - c.max.min(n), n - c.expected.min(n), n - c.min.min(n))
            }
            Node::AtLeast(k, children) => {
                let parts: Vec<Cardinality> =
                    children.iter().map(|c| c.estimate(n, sample, store, lookup)).collect();
                // Each matching point is counted at least k times in Σ|Sᵢ|.
                let max = (parts.iter().map(|p| p.max).sum::<usize>() / k).min(n);
                let expected = parts.iter().map(|p| p.expected).sum::<usize>() / k;
                Cardinality::new(0, expected, max)
            }
        }
    }
}

/// See [`PlannedFilter::value_key`].
fn value_key<'a>(filter: &'a Filter, store: &PayloadStore) -> Option<&'a JsonPath> {
    let alone = filter.should.as_ref().is_none_or(Vec::is_empty)
        && filter.must_not.is_empty()
        && filter.min_should.is_none();
    match filter.must.as_slice() {
        [Condition::Field(FieldCondition { key, test: FieldTest::Match(m) })] if alone => {
            let (_, kind) = store.indexes().find(|(k, _)| *k == key)?;
            let fits = matches!(
                (kind, m),
                (IndexKind::Keyword | IndexKind::Uuid, Match::Value(Scalar::Keyword(_)))
                    | (IndexKind::Keyword | IndexKind::Uuid, Match::Any(Variants::Keywords(_)))
                    | (IndexKind::Integer, Match::Value(Scalar::Integer(_)))
                    | (IndexKind::Integer, Match::Any(Variants::Integers(_)))
                    | (IndexKind::Bool, Match::Value(Scalar::Bool(_)))
            );
            fits.then_some(key)
        }
        [Condition::Filter(inner)] if alone => value_key(inner, store),
        _ => None,
    }
}

/// A filter ready to be consulted by a search, made by [`PayloadStore::plan`].
pub struct PlannedFilter<'a> {
    root: Node<'a>,
    store: &'a PayloadStore,
    lookup: &'a dyn PointLookup,
    estimate: Cardinality,
    value_key: Option<&'a JsonPath>,
}

impl std::fmt::Debug for PlannedFilter<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlannedFilter")
            .field("exact", &self.bitmap().is_some())
            .field("estimate", &self.estimate)
            .finish()
    }
}

impl<'a> PlannedFilter<'a> {
    pub(crate) fn new(filter: &'a Filter, store: &'a PayloadStore, lookup: &'a dyn PointLookup) -> Self {
        let live = lookup.live();
        let root = Compiler { store, lookup, live }.filter(filter);
        let n = live.len() as usize;
        // Only per-point conditions need the sample; a pure bitmap knows its count.
        let sample: Vec<PointOffset> = if matches!(root, Node::Set(_)) {
            Vec::new()
        } else {
            let step = (live.len() / SAMPLE).max(1);
            (0..live.len().min(SAMPLE))
                .filter_map(|i| live.select((i * step) as u32))
                .map(PointOffset)
                .collect()
        };
        let estimate = root.estimate(n, &sample, store, lookup);
        PlannedFilter { root, store, lookup, estimate, value_key: value_key(filter, store) }
    }

    /// The key of a value index (keyword, integer, bool, uuid) when the filter is one
    /// match of values there and nothing else: its matches are the points holding
    /// those values, which a graph's payload links join (`docs/hnsw.md`, "Payload
    /// links").
    pub fn value_key(&self) -> Option<&'a JsonPath> {
        self.value_key
    }

    /// The exact matching set, when indexes answered every condition.
    pub fn bitmap(&self) -> Option<&RoaringBitmap> {
        match &self.root {
            Node::Set(s) => Some(s),
            _ => None,
        }
    }

    /// Every matching live offset: the bitmap, or a per-point pass over the live ones.
    pub fn matching(&self) -> RoaringBitmap {
        match &self.root {
            Node::Set(s) => s.clone(),
            node => self
                .lookup
                .live()
                .iter()
                .filter(|&o| node.eval(PointOffset(o), self.store, self.lookup))
                .collect(),
        }
    }
}

impl OffsetFilter for PlannedFilter<'_> {
    fn matches(&self, offset: PointOffset) -> bool {
        match &self.root {
            Node::Set(s) => s.contains(offset.0),
            node => self.lookup.live().contains(offset.0) && node.eval(offset, self.store, self.lookup),
        }
    }

    fn estimate(&self) -> Cardinality {
        self.estimate
    }

    fn for_each_match(&self, f: &mut dyn FnMut(PointOffset)) -> bool {
        match &self.root {
            Node::Set(s) => {
                s.iter().for_each(|o| f(PointOffset(o)));
                true
            }
            _ => false,
        }
    }
}
