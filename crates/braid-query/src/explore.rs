//! Scores made of several examples: Qdrant's recommendation (`best_score`,
//! `sum_scores`), discovery and context queries (`docs/query.md`, "Recommend,
//! discover, context").
//!
//! Each is computed from the *internal* similarity of a stored vector to each example
//! ([`braid_distance::Kernel::similarity`]: the dot product for Cosine/Dot, minus the
//! squared L2 distance for Euclid, minus L1 for Manhattan), and is higher-is-better
//! whatever the space's metric.

/// `x / (1 + |x|)`: a sigmoid into (−1, 1) that costs a division.
#[inline]
pub fn fast_sigmoid(x: f32) -> f32 {
    if x.is_finite() { x / (1.0 + x.abs()) } else { x }
}

/// [`fast_sigmoid`] moved into (0, 1).
#[inline]
pub fn scaled_fast_sigmoid(x: f32) -> f32 {
    0.5 * (fast_sigmoid(x) + 1.0)
}

/// A context pair of prepared vectors: (positive, negative).
pub type VectorPair = (Vec<f32>, Vec<f32>);

/// A multi-example score over prepared vectors (in stored form: normalised under
/// Cosine), as a leaf searches by it or a level re-scores by it.
#[derive(Clone, Debug, PartialEq)]
pub enum Scorer {
    /// Recommend `best_score`: with `p` the best positive similarity and `n` the best
    /// negative one (−∞ when there are none), `sigmoid(p)` if `p > n`, else
    /// `−sigmoid(n)`, with the scaled fast sigmoid.
    BestScore {
        /// Positive examples.
        positive: Vec<Vec<f32>>,
        /// Negative examples.
        negative: Vec<Vec<f32>>,
    },
    /// Recommend `sum_scores`: the sum of the positive similarities minus the sum of
    /// the negative ones.
    SumScores {
        /// Positive examples.
        positive: Vec<Vec<f32>>,
        /// Negative examples.
        negative: Vec<Vec<f32>>,
    },
    /// Discovery: for each pair +1 when nearer its positive, −1 when nearer its
    /// negative, 0 on a tie; summed, plus the scaled sigmoid of the similarity to the
    /// target.
    Discover {
        /// The target.
        target: Vec<f32>,
        /// (positive, negative) pairs.
        pairs: Vec<VectorPair>,
    },
    /// Context: the sum over pairs of `fast_sigmoid(min(pos − neg − ε, 0))`, with ε
    /// f32's machine epsilon: 0 for a point inside every pair's good side.
    Context {
        /// (positive, negative) pairs.
        pairs: Vec<VectorPair>,
    },
}

impl Scorer {
    /// The score of a stored vector, given its similarity to any example.
    pub fn score(&self, similarity: impl Fn(&[f32]) -> f32) -> f32 {
        let best =
            |examples: &[Vec<f32>]| examples.iter().map(|e| similarity(e)).fold(f32::NEG_INFINITY, f32::max);
        let sum = |examples: &[Vec<f32>]| examples.iter().map(|e| similarity(e)).sum::<f32>();
        match self {
            Scorer::BestScore { positive, negative } => {
                let (p, n) = (best(positive), best(negative));
                if p > n { scaled_fast_sigmoid(p) } else { -scaled_fast_sigmoid(n) }
            }
            Scorer::SumScores { positive, negative } => sum(positive) - sum(negative),
            Scorer::Discover { target, pairs } => {
                let rank: i32 =
                    pairs.iter().map(|(p, n)| similarity(p).total_cmp(&similarity(n)) as i32).sum();
                rank as f32 + scaled_fast_sigmoid(similarity(target))
            }
            Scorer::Context { pairs } => pairs
                .iter()
                .map(|(p, n)| fast_sigmoid((similarity(p) - similarity(n) - f32::EPSILON).min(0.0)))
                .sum(),
        }
    }

    /// How many example vectors one score reads.
    pub fn examples(&self) -> usize {
        match self {
            Scorer::BestScore { positive, negative } | Scorer::SumScores { positive, negative } => {
                positive.len() + negative.len()
            }
            Scorer::Discover { pairs, .. } => 1 + 2 * pairs.len(),
            Scorer::Context { pairs } => 2 * pairs.len(),
        }
    }

    /// The name Qdrant gives this query, for `explain()`.
    pub fn name(&self) -> &'static str {
        match self {
            Scorer::BestScore { .. } => "recommend (best_score)",
            Scorer::SumScores { .. } => "recommend (sum_scores)",
            Scorer::Discover { .. } => "discover",
            Scorer::Context { .. } => "context",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dot(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    #[test]
    fn sigmoids_are_bounded_and_monotone() {
        assert_eq!(fast_sigmoid(0.0), 0.0);
        assert_eq!(scaled_fast_sigmoid(0.0), 0.5);
        assert!(fast_sigmoid(1e6) < 1.0 && fast_sigmoid(-1e6) > -1.0);
        assert!(scaled_fast_sigmoid(0.3) < scaled_fast_sigmoid(0.4));
    }

    #[test]
    fn best_score_takes_the_nearer_side() {
        let s = Scorer::BestScore { positive: vec![vec![1.0, 0.0]], negative: vec![vec![0.0, 1.0]] };
        let v = [0.9, 0.1];
        assert_eq!(s.score(|e| dot(e, &v)), scaled_fast_sigmoid(0.9));
        let w = [0.1, 0.9];
        assert_eq!(s.score(|e| dot(e, &w)), -scaled_fast_sigmoid(0.9));
        // Only negatives: every score negative, the farthest from them best.
        let s = Scorer::BestScore { positive: vec![], negative: vec![vec![0.0, 1.0]] };
        assert!(s.score(|e| dot(e, &v)) > s.score(|e| dot(e, &w)));
        assert!(s.score(|e| dot(e, &v)) < 0.0);
    }

    #[test]
    fn discovery_counts_sides_then_target() {
        let s = Scorer::Discover {
            target: vec![1.0, 0.0],
            pairs: vec![(vec![1.0, 0.0], vec![0.0, 1.0]), (vec![0.0, 1.0], vec![1.0, 0.0])],
        };
        let v = [0.9, 0.1];
        // One pair each way: rank 0.
        assert_eq!(s.score(|e| dot(e, &v)), scaled_fast_sigmoid(0.9));
        let c = Scorer::Context { pairs: vec![(vec![1.0, 0.0], vec![0.0, 1.0])] };
        assert_eq!(c.score(|e| dot(e, &v)), 0.0);
        assert!(c.score(|e| dot(e, &[0.1, 0.9])) < 0.0);
    }
}
