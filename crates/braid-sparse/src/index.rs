//! The inverted index of one sparse space: a posting list per dimension, the stored
//! vectors, document frequencies for IDF, and a top-k search that prunes with
//! MaxScore instead of scoring every posting.

use std::collections::{BinaryHeap, HashMap};

use roaring::RoaringBitmap;

use crate::SparseVector;

/// The offsets holding a dimension, ascending, with their values.
#[derive(Clone, Debug, Default)]
struct Posting {
    offsets: Vec<u32>,
    values: Vec<f32>,
    /// The largest and smallest value ever added (entries of removed vectors stay
    /// until the index is rebuilt, so these may only be looser than the truth).
    max: f32,
    min: f32,
}

impl Posting {
    fn add(&mut self, offset: u32, value: f32) {
        if self.offsets.is_empty() {
            (self.max, self.min) = (value, value);
        } else {
            self.max = self.max.max(value);
            self.min = self.min.min(value);
        }
        if self.offsets.last().is_none_or(|&last| last < offset) {
            self.offsets.push(offset);
            self.values.push(value);
        } else {
            let at = self.offsets.partition_point(|&o| o < offset);
            if self.offsets.get(at) == Some(&offset) {
                self.values[at] = value;
            } else {
                self.offsets.insert(at, offset);
                self.values.insert(at, value);
            }
        }
    }
}

/// What one search did: the figures `explain()` and the bench report.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SearchStats {
    /// Posting lists the query named that exist.
    pub lists: usize,
    /// Entries in those lists (what scoring every posting would touch).
    pub postings: usize,
    /// Entries actually read (walked or jumped to).
    pub touched: usize,
    /// Points scored in full.
    pub scored: usize,
    /// Points dropped by MaxScore before being scored in full.
    pub pruned: usize,
}

/// A sparse space's vectors and inverted index.
///
/// Offsets are a segment's point versions: a point's vector is [`SparseIndex::insert`]ed
/// at its offset and [`SparseIndex::remove`]d when that version dies. Removing leaves
/// its postings in place (searches skip them), so a write costs one append per entry;
/// rebuilding the segment drops them.
#[derive(Clone, Debug, Default)]
pub struct SparseIndex {
    vectors: HashMap<u32, SparseVector>,
    alive: RoaringBitmap,
    postings: HashMap<u32, Posting>,
    /// Live vectors holding each dimension.
    df: HashMap<u32, u32>,
    /// Posting entries of removed vectors.
    stale: usize,
    /// Every offset ever inserted.
    used: RoaringBitmap,
}

/// A candidate in the top-k heap, ordered so that the heap's top is the worst one:
/// lowest score, then largest key.
struct Entry<K> {
    score: f32,
    key: K,
    offset: u32,
}

impl<K: Ord> PartialEq for Entry<K> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == std::cmp::Ordering::Equal
    }
}
impl<K: Ord> Eq for Entry<K> {}
impl<K: Ord> PartialOrd for Entry<K> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl<K: Ord> Ord for Entry<K> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        // Greater = worse.
        other.score.total_cmp(&self.score).then_with(|| self.key.cmp(&other.key))
    }
}

/// The best `limit` of what is offered: higher score first, equal scores by `key`.
struct TopK<K, F> {
    limit: usize,
    heap: BinaryHeap<Entry<K>>,
    key: F,
}

impl<K: Ord, F: Fn(u32) -> K> TopK<K, F> {
    fn new(limit: usize, key: F) -> Self {
        TopK { limit, heap: BinaryHeap::with_capacity(limit + 1), key }
    }

    /// The score a point must reach to enter (ties may enter on their key).
    fn threshold(&self) -> f32 {
        if self.heap.len() < self.limit {
            f32::NEG_INFINITY
        } else {
            self.heap.peek().map_or(f32::NEG_INFINITY, |e| e.score)
        }
    }

    /// Offers a point; whether the threshold rose.
    fn offer(&mut self, offset: u32, score: f32) -> bool {
        if self.limit == 0 {
            return false;
        }
        let before = self.threshold();
        let entry = Entry { score, key: (self.key)(offset), offset };
        if self.heap.len() < self.limit {
            self.heap.push(entry);
        } else if self.heap.peek().is_some_and(|worst| entry < *worst) {
            self.heap.pop();
            self.heap.push(entry);
        }
        self.threshold() > before
    }

    fn into_sorted(self) -> Vec<(u32, f32)> {
        self.heap.into_sorted_vec().into_iter().map(|e| (e.offset, e.score)).collect()
    }
}

/// Qdrant's IDF of a dimension held by `df` of `n` vectors:
/// `ln((n − df + 0.5) / (df + 0.5) + 1)`.
pub fn idf(df: u32, n: u32) -> f32 {
    let (df, n) = (f64::from(df), f64::from(n));
    ((n - df + 0.5) / (df + 0.5) + 1.0).ln() as f32
}

/// One query term during a search.
struct Term<'a> {
    /// Its position in the query (ascending index order), where its contribution is
    /// summed.
    pos: usize,
    weight: f32,
    list: &'a Posting,
    /// The most it can add to a score (never below 0).
    bound: f64,
    cursor: usize,
}

impl Term<'_> {
    fn doc(&self) -> Option<u32> {
        self.list.offsets.get(self.cursor).copied()
    }

    /// Takes the entry under the cursor (the current point's): records its
    /// contribution at the term's query position and moves past it.
    fn take(&mut self, contrib: &mut [Option<f32>], touched: &mut Vec<usize>) -> f32 {
        let v = self.weight * self.list.values[self.cursor];
        contrib[self.pos] = Some(v);
        touched.push(self.pos);
        self.cursor += 1;
        v
    }
}

impl SparseIndex {
    /// An empty index.
    pub fn new() -> SparseIndex {
        SparseIndex::default()
    }

    /// Stores `vector` at `offset` and indexes it. A segment writes each point version
    /// at a fresh offset, which costs one append per entry; an offset used before (its
    /// vector replaced, or removed and now written again) first has its old entries
    /// taken out of the lists, which is slower.
    pub fn insert(&mut self, offset: u32, vector: SparseVector) {
        if self.used.contains(offset) {
            self.purge(offset);
        }
        self.used.insert(offset);
        for (i, v) in vector.iter() {
            self.postings.entry(i).or_default().add(offset, v);
            *self.df.entry(i).or_default() += 1;
        }
        self.alive.insert(offset);
        self.vectors.insert(offset, vector);
    }

    /// Forgets the vector at `offset` (its postings stay until a rebuild, skipped by
    /// searches); returns it.
    pub fn remove(&mut self, offset: u32) -> Option<SparseVector> {
        let vector = self.vectors.remove(&offset)?;
        self.alive.remove(offset);
        for i in vector.indices() {
            if let Some(n) = self.df.get_mut(i) {
                *n -= 1;
                if *n == 0 {
                    self.df.remove(i);
                }
            }
        }
        self.stale += vector.len();
        Some(vector)
    }

    /// Takes every entry of `offset` out of the lists: those of its live vector if it
    /// has one, else (a removed vector's entries are not known any more) of all lists.
    fn purge(&mut self, offset: u32) {
        let drop_from = |p: &mut Posting| -> usize {
            match p.offsets.binary_search(&offset) {
                Ok(at) => {
                    p.offsets.remove(at);
                    p.values.remove(at);
                    1
                }
                Err(_) => 0,
            }
        };
        match self.remove(offset) {
            Some(old) => {
                for i in old.indices() {
                    if let Some(p) = self.postings.get_mut(i) {
                        self.stale -= drop_from(p);
                    }
                }
            }
            None => {
                for p in self.postings.values_mut() {
                    self.stale -= drop_from(p);
                }
            }
        }
        self.postings.retain(|_, p| !p.offsets.is_empty());
    }

    /// The vector stored at `offset`.
    pub fn get(&self, offset: u32) -> Option<&SparseVector> {
        self.vectors.get(&offset)
    }

    /// Offsets holding a vector.
    pub fn offsets(&self) -> &RoaringBitmap {
        &self.alive
    }

    /// Vectors held.
    pub fn len(&self) -> usize {
        self.vectors.len()
    }

    /// Whether it holds no vector.
    pub fn is_empty(&self) -> bool {
        self.vectors.is_empty()
    }

    /// Vectors holding dimension `index`.
    pub fn document_frequency(&self, index: u32) -> u32 {
        self.df.get(&index).copied().unwrap_or(0)
    }

    /// `query` with each value multiplied by its dimension's [`idf`] over the vectors
    /// held now (Qdrant's `modifier: idf`, applied at search time).
    pub fn with_idf(&self, query: &SparseVector) -> SparseVector {
        let n = u32::try_from(self.len()).unwrap_or(u32::MAX);
        query.reweighted(|i| idf(self.document_frequency(i), n))
    }

    /// Entries in the posting lists of `query`'s dimensions: what scoring every
    /// posting would touch.
    pub fn postings(&self, query: &SparseVector) -> usize {
        query.indices().iter().filter_map(|i| self.postings.get(i)).map(|p| p.offsets.len()).sum()
    }

    /// Posting entries of removed vectors still in the lists.
    pub fn stale(&self) -> usize {
        self.stale
    }

    /// Heap bytes of the vectors and the lists (capacity, not counting map overhead).
    pub fn heap_bytes(&self) -> usize {
        let vectors: usize = self.vectors.values().map(SparseVector::heap_bytes).sum();
        let lists: usize =
            self.postings.values().map(|p| p.offsets.capacity() * 4 + p.values.capacity() * 4).sum();
        vectors + lists
    }

    /// The `limit` best vectors for `query` by dot product among those `allowed` lets
    /// through: best first, equal scores ordered by `key` (a point's id, so that the
    /// order never depends on where versions were written). A vector sharing no index
    /// with the query is not a result. Exact: the same answer, scores bit for bit, as
    /// [`SparseIndex::scan`] over every offset.
    ///
    /// Document-at-a-time MaxScore: the query's lists are ordered by the most each can
    /// add; once `limit` results are held, the lists whose bounds together cannot reach
    /// the current threshold stop driving the walk and are only probed (by binary
    /// search) for points the other lists bring up, and a point is dropped as soon as
    /// its score so far plus what its remaining lists could add falls below the
    /// threshold.
    pub fn search<K: Ord>(
        &self,
        query: &SparseVector,
        limit: usize,
        allowed: impl Fn(u32) -> bool,
        key: impl Fn(u32) -> K,
    ) -> (Vec<(u32, f32)>, SearchStats) {
        let mut stats = SearchStats::default();
        let mut terms: Vec<Term<'_>> = query
            .iter()
            .enumerate()
            .filter_map(|(pos, (i, weight))| {
                let list = self.postings.get(&i)?;
                let bound = f64::from(weight * list.max).max(f64::from(weight * list.min)).max(0.0);
                Some(Term { pos, weight, list, bound, cursor: 0 })
            })
            .collect();
        stats.lists = terms.len();
        stats.postings = self.postings(query);
        let mut top = TopK::new(limit, key);
        if terms.is_empty() || limit == 0 {
            return (Vec::new(), stats);
        }
        terms.sort_by(|a, b| a.bound.total_cmp(&b.bound));
        // prefix[i]: the most lists 0..=i can add together.
        let prefix: Vec<f64> = terms
            .iter()
            .scan(0.0, |sum, t| {
                *sum += t.bound;
                Some(*sum)
            })
            .collect();
        // A slack for the difference between the f64 bounds and f32 sums.
        let below = |bound: f64, threshold: f32| {
            let t = f64::from(threshold);
            bound < t - 1e-4 * (t.abs() + 1.0)
        };
        let essential_from = |threshold: f32| {
            if threshold == f32::NEG_INFINITY { 0 } else { prefix.partition_point(|&p| below(p, threshold)) }
        };
        let mut first = 0;
        let mut contrib = vec![None::<f32>; query.len()];
        let mut touched_pos = Vec::with_capacity(terms.len());
        while let Some(doc) = terms[first..].iter().filter_map(Term::doc).min() {
            let mut partial = 0.0f64;
            for t in &mut terms[first..] {
                if t.doc() == Some(doc) {
                    partial += f64::from(t.take(&mut contrib, &mut touched_pos));
                    stats.touched += 1;
                }
            }
            let threshold = top.threshold();
            let mut keep = self.alive.contains(doc) && allowed(doc);
            if keep {
                for i in (0..first).rev() {
                    if below(partial + prefix[i], threshold) {
                        keep = false;
                        stats.pruned += 1;
                        break;
                    }
                    let t = &mut terms[i];
                    let rest = &t.list.offsets[t.cursor..];
                    t.cursor += rest.partition_point(|&o| o < doc);
                    stats.touched += 1;
                    if t.doc() == Some(doc) {
                        partial += f64::from(t.take(&mut contrib, &mut touched_pos));
                    }
                }
            }
            if keep {
                stats.scored += 1;
                // Summed in query (ascending index) order, as `SparseVector::dot` does.
                let score = contrib.iter().flatten().fold(0.0f32, |s, v| s + v);
                if top.offer(doc, score) {
                    first = essential_from(top.threshold());
                    if first >= terms.len() {
                        break;
                    }
                }
            }
            for &p in &touched_pos {
                contrib[p] = None;
            }
            touched_pos.clear();
        }
        (top.into_sorted(), stats)
    }

    /// [`SparseIndex::search`] by scoring the stored vector of every offset in
    /// `candidates` (those holding one): what a small filter answers faster than the
    /// lists, and the reference the search is tested against.
    pub fn scan<K: Ord>(
        &self,
        query: &SparseVector,
        limit: usize,
        candidates: impl IntoIterator<Item = u32>,
        key: impl Fn(u32) -> K,
    ) -> Vec<(u32, f32)> {
        let mut top = TopK::new(limit, key);
        for offset in candidates {
            if let Some(score) = self.vectors.get(&offset).and_then(|v| query.dot(v)) {
                top.offer(offset, score);
            }
        }
        top.into_sorted()
    }
}
