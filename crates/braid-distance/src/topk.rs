//! Bounded top-k selection with a defined tie order.
//!
//! Shared by exact search, the HNSW graph and the planner: keep the `k` best
//! `(offset, score)` pairs seen so far under a metric's direction, in `O(log k)` per
//! candidate. Ties on score go to the **lower offset**, so results never depend on
//! the order candidates arrive in.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use braid_core::{Metric, PointOffset, ScoredOffset};

/// A heap entry whose order is "worse is greater", so the heap's top is the entry to
/// evict next.
#[derive(Clone, Copy, Debug)]
struct Entry {
    /// The score mapped so that larger is always better (negated for distances).
    key: f32,
    offset: PointOffset,
    score: f32,
}

impl Entry {
    fn worse_than(&self, other: &Entry) -> Ordering {
        other.key.total_cmp(&self.key).then(self.offset.cmp(&other.offset))
    }
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.worse_than(other) == Ordering::Equal
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    fn cmp(&self, other: &Self) -> Ordering {
        self.worse_than(other)
    }
}

/// Keeps the `k` best scored offsets pushed into it.
#[derive(Clone, Debug)]
pub struct TopK {
    k: usize,
    higher_is_better: bool,
    heap: BinaryHeap<Entry>,
}

impl TopK {
    /// An empty selection of at most `k` entries, ranked by `metric`'s direction.
    pub fn new(k: usize, metric: Metric) -> Self {
        TopK {
            k,
            higher_is_better: metric.higher_is_better(),
            heap: BinaryHeap::with_capacity(k.min(1 << 16) + 1),
        }
    }

    fn entry(&self, offset: PointOffset, score: f32) -> Entry {
        let key = if self.higher_is_better { score } else { -score };
        Entry { key, offset, score }
    }

    /// Offers a candidate; returns `true` if it was kept.
    #[inline]
    pub fn push(&mut self, offset: PointOffset, score: f32) -> bool {
        if self.k == 0 {
            return false;
        }
        let entry = self.entry(offset, score);
        if self.heap.len() < self.k {
            self.heap.push(entry);
            return true;
        }
        // Invariant: the heap is full and non-empty here (k > 0).
        let mut worst = self.heap.peek_mut().expect("a full heap with k > 0 has a top");
        if entry < *worst {
            *worst = entry;
            true
        } else {
            false
        }
    }

    /// The score a candidate must beat to be kept, once `k` entries are held.
    pub fn worst_score(&self) -> Option<f32> {
        (self.heap.len() == self.k).then(|| self.heap.peek().map(|e| e.score)).flatten()
    }

    /// How many entries are held.
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// `true` when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    /// The kept entries, best first (ties: lower offset first).
    pub fn into_sorted_vec(self) -> Vec<ScoredOffset> {
        self.heap
            .into_sorted_vec()
            .into_iter()
            .map(|e| ScoredOffset { offset: e.offset, score: e.score })
            .collect()
    }
}

/// The `k` best of `scores` (offset `i` has `scores[i]`), best first.
pub fn top_k(scores: &[f32], k: usize, metric: Metric) -> Vec<ScoredOffset> {
    let mut top = TopK::new(k, metric);
    for (i, &s) in scores.iter().enumerate() {
        top.push(PointOffset(i as u32), s);
    }
    top.into_sorted_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offsets(v: &[ScoredOffset]) -> Vec<u32> {
        v.iter().map(|s| s.offset.0).collect()
    }

    #[test]
    fn ties_go_to_the_lower_offset() {
        let scores = [0.5, 0.9, 0.5, 0.9, 0.1];
        assert_eq!(offsets(&top_k(&scores, 3, Metric::Dot)), vec![1, 3, 0]);
        assert_eq!(offsets(&top_k(&scores, 3, Metric::Euclid)), vec![4, 0, 2]);
    }

    #[test]
    fn arrival_order_does_not_matter() {
        let mut a = TopK::new(2, Metric::Cosine);
        let mut b = TopK::new(2, Metric::Cosine);
        for (o, s) in [(7, 1.0), (3, 1.0), (5, 1.0)] {
            a.push(PointOffset(o), s);
        }
        for (o, s) in [(5, 1.0), (3, 1.0), (7, 1.0)] {
            b.push(PointOffset(o), s);
        }
        assert_eq!(offsets(&a.into_sorted_vec()), vec![3, 5]);
        assert_eq!(offsets(&b.into_sorted_vec()), vec![3, 5]);
    }

    #[test]
    fn zero_and_oversized_k() {
        assert!(top_k(&[1.0, 2.0], 0, Metric::Dot).is_empty());
        assert_eq!(offsets(&top_k(&[1.0, 2.0], 10, Metric::Dot)), vec![1, 0]);
        let mut t = TopK::new(1, Metric::Dot);
        assert_eq!(t.worst_score(), None);
        t.push(PointOffset(0), 3.0);
        assert_eq!(t.worst_score(), Some(3.0));
    }
}
