//! Rank fusion: combine several ranked lists of ids into one.
//!
//! Two families, both pure functions over lists of `(id, score)` with any hashable
//! id type, both deterministic: results come **score descending**, ties in
//! **first-seen order** (earlier list first, then earlier position).
//!
//! - [`qdrant`]: exactly what Qdrant's server computes for a query's `Fusion::Rrf` and
//!   `Fusion::Dbsf` — RRF with `1 / ((p+1)/w + k − 1)` and default `k = 2`; DBSF with
//!   sample σ, no clipping, lists summed, raw scores as-is. Braid's server-side fusion
//!   uses these, so a user gets the numbers Qdrant would give.
//! - [`classic`]: the helpers users of other vector databases know — RRF with
//!   `Σ w / (k + rank)`, rank from 1, `k = 60`; DBSF normalised, clipped to `[0, 1]` and
//!   averaged — which flip distance scores (smaller is better) before fusing when told.
//!
//! Formulas, worked examples and how to get one family from the other are in
//! `docs/fusion.md`. This crate depends on no other Braid crate.
//!
//! ```
//! use braid_fusion::qdrant;
//!
//! let text = [("a", 0.9), ("b", 0.8), ("c", 0.7)];
//! let image = [("c", 0.95), ("a", 0.5)];
//! let fused = qdrant::rrf(&[&text[..], &image[..]], qdrant::DEFAULT_RRF_K, None).unwrap();
//! // a: 1/2 + 1/3, c: 1/4 + 1/2, b: 1/3
//! assert_eq!(fused[0].id, "a");
//! assert_eq!(fused[1].id, "c");
//! assert!((fused[0].score - (0.5 + 1.0 / 3.0)).abs() < 1e-6);
//! ```
#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::hash::Hash;

use thiserror::Error;

pub mod classic;
pub mod qdrant;

/// One entry of a fused ranking.
#[derive(Clone, Debug, PartialEq)]
pub struct Fused<Id> {
    /// The id, as it first appeared in the input.
    pub id: Id,
    /// The fused score; larger is better.
    pub score: f32,
}

/// Why a fusion could not run.
#[derive(Clone, Debug, PartialEq, Error)]
#[non_exhaustive]
pub enum FusionError {
    /// Weights were given, but not one per list.
    #[error("number of weights should match number of ranked lists: got {got}, expected {expected}")]
    WeightCount {
        /// The number of lists.
        expected: usize,
        /// The number of weights.
        got: usize,
    },
    /// A weight is NaN or infinite.
    #[error("weight {index} is not finite ({value})")]
    NonFiniteWeight {
        /// Which list.
        index: usize,
        /// The weight.
        value: f32,
    },
    /// A classic helper was given a negative weight (only Qdrant's RRF defines one: it
    /// contributes nothing).
    #[error("weight {index} is negative ({value}); weights must be at least 0")]
    NegativeWeight {
        /// Which list.
        index: usize,
        /// The weight.
        value: f32,
    },
    /// The RRF constant is out of range (Qdrant's `k` is an integer ≥ 1; the classic
    /// `k` must be finite and ≥ 0).
    #[error("RRF constant k = {k} is out of range: {why}")]
    InvalidK {
        /// The constant given.
        k: f64,
        /// The rule it breaks.
        why: &'static str,
    },
    /// A score that takes part in the arithmetic is NaN or infinite.
    #[error("score at list {list}, position {position} is not finite ({value})")]
    NonFiniteScore {
        /// Which list.
        list: usize,
        /// Which position in it.
        position: usize,
        /// The score.
        value: f32,
    },
}

/// Checks an optional weight vector: one finite weight per list.
fn check_weights(weights: Option<&[f32]>, lists: usize) -> Result<(), FusionError> {
    let Some(weights) = weights else { return Ok(()) };
    if weights.len() != lists {
        return Err(FusionError::WeightCount { expected: lists, got: weights.len() });
    }
    if let Some((index, &value)) = weights.iter().enumerate().find(|(_, w)| !w.is_finite()) {
        return Err(FusionError::NonFiniteWeight { index, value });
    }
    Ok(())
}

/// Checks that every score in `lists` is finite.
fn check_scores<Id, L: AsRef<[(Id, f32)]>>(lists: &[L]) -> Result<(), FusionError> {
    for (list, items) in lists.iter().enumerate() {
        if let Some((position, (_, value))) =
            items.as_ref().iter().enumerate().find(|(_, (_, s))| !s.is_finite())
        {
            return Err(FusionError::NonFiniteScore { list, position, value: *value });
        }
    }
    Ok(())
}

/// Sums contributions per id in first-seen order, then sorts by score descending
/// with a stable sort, so ties keep first-seen order.
struct Accumulator<Id> {
    slots: HashMap<Id, usize>,
    entries: Vec<Fused<Id>>,
}

impl<Id: Clone + Eq + Hash> Accumulator<Id> {
    fn new() -> Self {
        Accumulator { slots: HashMap::new(), entries: Vec::new() }
    }

    fn add(&mut self, id: &Id, contribution: f32) {
        match self.slots.get(id) {
            Some(&slot) => self.entries[slot].score += contribution,
            None => {
                self.slots.insert(id.clone(), self.entries.len());
                self.entries.push(Fused { id: id.clone(), score: contribution });
            }
        }
    }

    fn finish(mut self) -> Vec<Fused<Id>> {
        self.entries.sort_by(|a, b| b.score.total_cmp(&a.score));
        self.entries
    }
}

/// `mean` and `σ` of `scores`; `sample` picks the n − 1 divisor. `None` for an empty
/// slice; σ is 0 for one element.
fn mean_and_sigma(scores: impl Iterator<Item = f32> + Clone, sample: bool) -> Option<(f64, f64)> {
    let n = scores.clone().count();
    if n == 0 {
        return None;
    }
    let mean = scores.clone().map(f64::from).sum::<f64>() / n as f64;
    if n == 1 {
        return Some((mean, 0.0));
    }
    let squares: f64 = scores.map(|s| (f64::from(s) - mean).powi(2)).sum();
    let divisor = if sample { n - 1 } else { n } as f64;
    Some((mean, (squares / divisor).sqrt()))
}

/// Normalises `score` into the list's `mean ± 3σ` window; 0.5 when the window is
/// empty (one element, or every score equal).
fn distribution_norm(score: f32, mean: f64, sigma: f64) -> f64 {
    let (low, high) = (mean - 3.0 * sigma, mean + 3.0 * sigma);
    if high - low <= 0.0 { 0.5 } else { (f64::from(score) - low) / (high - low) }
}
