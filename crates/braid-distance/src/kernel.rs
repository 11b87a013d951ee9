//! Score conventions: which kernel a metric uses, what a returned score means, and
//! which of two scores is better.
//!
//! Two layers of score exist, and callers must know which one they hold:
//! - the **raw score** a [`Kernel`] computes on the hot path: dot product for
//!   Cosine/Dot, *squared* L2 for Euclid (the square root is monotone, so it is
//!   skipped while ranking), L1 for Manhattan;
//! - the **user score** that [`Kernel::finish`] turns it into and that users see:
//!   cosine similarity, dot product, L2 distance, L1 distance (Qdrant's server
//!   conventions, `docs/distance.md`).
//!
//! Both layers rank in the same direction, so [`is_better`] and [`compare`] apply
//! to either.

use std::cmp::Ordering;

use braid_core::Metric;

use crate::simd;

/// A distance kernel chosen once per search.
///
/// Holding a plain function pointer keeps the per-pair call free of `match`es and
/// `dyn` dispatch.
#[derive(Clone, Copy)]
pub struct Kernel {
    metric: Metric,
    raw: simd::PairFn,
}

impl std::fmt::Debug for Kernel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kernel").field("metric", &self.metric).finish()
    }
}

impl Kernel {
    /// The kernel for `metric`.
    pub fn new(metric: Metric) -> Self {
        let raw = match metric {
            // Cosine vectors are stored and queried normalised: the dot product is the cosine.
            Metric::Cosine | Metric::Dot => simd::dot,
            Metric::Euclid => simd::l2_squared,
            Metric::Manhattan => simd::l1,
        };
        Kernel { metric, raw }
    }

    /// The metric this kernel scores.
    #[inline]
    pub fn metric(&self) -> Metric {
        self.metric
    }

    /// The raw score of a pair (see the module docs). `a` and `b` have equal length.
    #[inline]
    pub fn raw(&self, a: &[f32], b: &[f32]) -> f32 {
        (self.raw)(a, b)
    }

    /// Turns a raw score into the user score.
    #[inline]
    pub fn finish(&self, raw: f32) -> f32 {
        match self.metric {
            Metric::Euclid => raw.max(0.0).sqrt(),
            Metric::Cosine | Metric::Dot | Metric::Manhattan => raw,
        }
    }

    /// Turns a user score (say a `score_threshold`) into the raw scale.
    #[inline]
    pub fn unfinish(&self, score: f32) -> f32 {
        match self.metric {
            Metric::Euclid => score * score.abs(),
            Metric::Cosine | Metric::Dot | Metric::Manhattan => score,
        }
    }

    /// The similarity of a pair on Qdrant's internal scale, higher is better: the
    /// dot product for Cosine/Dot, minus the *squared* L2 distance for Euclid, minus
    /// the L1 distance for Manhattan. Recommendation, discovery and context scores
    /// are made of these (`docs/query.md`).
    #[inline]
    pub fn similarity(&self, a: &[f32], b: &[f32]) -> f32 {
        let raw = self.raw(a, b);
        if self.metric.higher_is_better() { raw } else { -raw }
    }

    /// The user score of a pair: `finish(raw(a, b))`.
    #[inline]
    pub fn score(&self, a: &[f32], b: &[f32]) -> f32 {
        self.finish(self.raw(a, b))
    }
}

/// The user score of `a` against `b` under `metric`, with Qdrant's conventions.
///
/// Under Cosine both vectors must already be normalised (see [`crate::normalize`]).
pub fn score(metric: Metric, a: &[f32], b: &[f32]) -> f32 {
    Kernel::new(metric).score(a, b)
}

/// Is score `a` strictly better than score `b` under `metric`?
#[inline]
pub fn is_better(metric: Metric, a: f32, b: f32) -> bool {
    compare(metric, a, b) == Ordering::Greater
}

/// Orders two scores under `metric`: `Greater` means `a` is the better one.
///
/// Uses IEEE total order, so it is a total order even on NaN (which validation keeps
/// out of the index anyway).
#[inline]
pub fn compare(metric: Metric, a: f32, b: f32) -> Ordering {
    if metric.higher_is_better() { a.total_cmp(&b) } else { b.total_cmp(&a) }
}

/// Does `score` pass a vector search's `score_threshold` under `metric`?
///
/// Strict, as Qdrant's server has it: similarities keep `score > threshold`,
/// distances keep `score < threshold`.
#[inline]
pub fn passes_threshold(metric: Metric, score: f32, threshold: f32) -> bool {
    is_better(metric, score, threshold)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn direction_per_metric() {
        assert!(is_better(Metric::Cosine, 0.9, 0.1));
        assert!(is_better(Metric::Dot, 2.0, -1.0));
        assert!(is_better(Metric::Euclid, 0.1, 0.9));
        assert!(is_better(Metric::Manhattan, 1.0, 3.0));
        assert!(!is_better(Metric::Dot, 1.0, 1.0));
    }

    #[test]
    fn thresholds_are_strict() {
        assert!(!passes_threshold(Metric::Cosine, 0.5, 0.5));
        assert!(passes_threshold(Metric::Cosine, 0.51, 0.5));
        assert!(!passes_threshold(Metric::Euclid, 2.0, 2.0));
        assert!(passes_threshold(Metric::Euclid, 1.9, 2.0));
    }

    #[test]
    fn user_scores_by_hand() {
        let a = [1.0, 2.0, 3.0];
        let b = [4.0, 6.0, 3.0];
        assert_eq!(score(Metric::Dot, &a, &b), 25.0);
        assert_eq!(score(Metric::Euclid, &a, &b), 5.0);
        assert_eq!(score(Metric::Manhattan, &a, &b), 7.0);
        let k = Kernel::new(Metric::Euclid);
        assert_eq!(k.raw(&a, &b), 25.0);
        assert_eq!(k.unfinish(5.0), 25.0);
    }
}
