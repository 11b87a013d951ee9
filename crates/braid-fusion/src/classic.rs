//! The fusion helpers users of other vector databases know, for client-side fusion.
//!
//! - [`reciprocal_rank_fusion`]: `Σᵢ wᵢ / (k + rankᵢ)`, rank counted from 1, `k = 60`
//!   by convention (Cormack, Clarke & Büttcher, 2009).
//! - [`distribution_based_score_fusion`]: each list normalised into its `μ ± 3σ`
//!   window (population σ), clipped to `[0, 1]`, averaged over the lists.
//!
//! Each input list carries its [`Direction`]. A list of distances
//! ([`Direction::LowerIsBetter`]) is flipped to larger-is-better before fusing, and
//! every list is ranked by its scores (a stable sort, so a list already in rank order
//! keeps its order, and equal scores keep their input order).

use std::hash::Hash;

use crate::{
    Accumulator, Fused, FusionError, check_scores, check_weights, distribution_norm, mean_and_sigma,
};

/// The customary RRF constant of the classic formula.
pub const DEFAULT_K: f32 = 60.0;

/// Which way a list's scores point.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Direction {
    /// Similarities (Cosine, Dot): larger is better.
    #[default]
    HigherIsBetter,
    /// Distances (Euclid, Manhattan): smaller is better.
    LowerIsBetter,
}

/// One ranked list for the classic helpers: `(id, score)` pairs and the direction of
/// their scores.
#[derive(Clone, Debug, PartialEq)]
pub struct ScoredList<Id> {
    /// The results, usually best first.
    pub items: Vec<(Id, f32)>,
    /// Which way the scores point.
    pub direction: Direction,
}

impl<Id> ScoredList<Id> {
    /// A list of similarities (larger is better).
    pub fn similarities(items: Vec<(Id, f32)>) -> Self {
        ScoredList { items, direction: Direction::HigherIsBetter }
    }

    /// A list of distances (smaller is better).
    pub fn distances(items: Vec<(Id, f32)>) -> Self {
        ScoredList { items, direction: Direction::LowerIsBetter }
    }

    /// The items with larger-is-better scores, best first (stable on ties).
    fn flipped_and_ranked(&self) -> Vec<(&Id, f32)> {
        let sign = match self.direction {
            Direction::HigherIsBetter => 1.0,
            Direction::LowerIsBetter => -1.0,
        };
        let mut ranked: Vec<(&Id, f32)> = self.items.iter().map(|(id, s)| (id, sign * s)).collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
        ranked
    }
}

impl<Id> AsRef<[(Id, f32)]> for ScoredList<Id> {
    fn as_ref(&self) -> &[(Id, f32)] {
        &self.items
    }
}

fn check_classic_weights(weights: Option<&[f32]>, lists: usize) -> Result<(), FusionError> {
    check_weights(weights, lists)?;
    if let Some((index, &value)) = weights.into_iter().flatten().enumerate().find(|(_, w)| **w < 0.0) {
        return Err(FusionError::NegativeWeight { index, value });
    }
    Ok(())
}

/// Classic weighted RRF: an id at rank `r` (from 1) of list `i` gains `wᵢ / (k + r)`.
///
/// With every weight 1 this equals [`crate::qdrant::rrf`] with `k + 1`.
///
/// Errors: `k` negative or not finite; weights not one per list, negative or not
/// finite; a non-finite score (scores decide the ranking).
pub fn reciprocal_rank_fusion<Id>(
    lists: &[ScoredList<Id>],
    k: f32,
    weights: Option<&[f32]>,
) -> Result<Vec<Fused<Id>>, FusionError>
where
    Id: Clone + Eq + Hash,
{
    if !k.is_finite() || k < 0.0 {
        return Err(FusionError::InvalidK {
            k: f64::from(k),
            why: "the classic RRF constant must be finite and >= 0",
        });
    }
    check_classic_weights(weights, lists.len())?;
    check_scores(lists)?;
    let mut acc = Accumulator::new();
    for (i, list) in lists.iter().enumerate() {
        let w = weights.map_or(1.0, |w| w[i]);
        for (position, (id, _)) in list.flipped_and_ranked().into_iter().enumerate() {
            acc.add(id, w / (k + position as f32 + 1.0));
        }
    }
    Ok(acc.finish())
}

/// Classic DBSF: each list normalised by `(s − (μ − 3σ)) / 6σ` with the population σ
/// after flipping distances, **clipped** to `[0, 1]`, then summed and divided by the
/// number of lists (an id absent from a list gets 0 there). A list of one element or
/// of equal scores gives 0.5.
///
/// Errors: a non-finite score.
pub fn distribution_based_score_fusion<Id>(lists: &[ScoredList<Id>]) -> Result<Vec<Fused<Id>>, FusionError>
where
    Id: Clone + Eq + Hash,
{
    check_scores(lists)?;
    let mut acc = Accumulator::new();
    let count = lists.len().max(1) as f64;
    for list in lists {
        let ranked = list.flipped_and_ranked();
        let Some((mean, sigma)) = mean_and_sigma(ranked.iter().map(|(_, s)| *s), false) else { continue };
        for (id, score) in ranked {
            acc.add(id, (distribution_norm(score, mean, sigma).clamp(0.0, 1.0) / count) as f32);
        }
    }
    Ok(acc.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classic_rrf_by_hand() {
        let lists = [
            ScoredList::similarities(vec![("a", 0.9), ("b", 0.8)]),
            ScoredList::distances(vec![("b", 0.1), ("a", 0.4)]),
        ];
        let fused = reciprocal_rank_fusion(&lists, DEFAULT_K, Some(&[1.0, 0.5])).unwrap();
        // a: 1/61 + 0.5/62; b: 1/62 + 0.5/61.
        assert_eq!(fused[0].id, "a");
        assert!((fused[0].score - (1.0 / 61.0 + 0.5 / 62.0)).abs() < 1e-7);
        assert!((fused[1].score - (1.0 / 62.0 + 0.5 / 61.0)).abs() < 1e-7);
    }

    #[test]
    fn distances_are_flipped_before_ranking() {
        // Given worst first, the distance list still ranks its smallest distance first.
        let lists = [ScoredList::distances(vec![("far", 3.0), ("near", 1.0)])];
        let fused = reciprocal_rank_fusion(&lists, 0.0, None).unwrap();
        assert_eq!(fused, vec![Fused { id: "near", score: 1.0 }, Fused { id: "far", score: 0.5 }]);
    }

    #[test]
    fn classic_dbsf_by_hand() {
        // Scores 1, 2, 3: population σ = √(2/3); window 2 ± √6 → norms clip-free.
        let lists = [
            ScoredList::similarities(vec![("a", 3.0), ("b", 2.0), ("c", 1.0)]),
            ScoredList::similarities(vec![]),
        ];
        let fused = distribution_based_score_fusion(&lists).unwrap();
        let sigma = (2.0f64 / 3.0).sqrt();
        let a = (3.0 - (2.0 - 3.0 * sigma)) / (6.0 * sigma) / 2.0;
        assert_eq!(fused[0].id, "a");
        assert!((f64::from(fused[0].score) - a).abs() < 1e-6);
        assert!((f64::from(fused[1].score) - 0.25).abs() < 1e-7);
    }

    #[test]
    fn classic_dbsf_clips() {
        let mut items: Vec<(u32, f32)> = (0..10).map(|i| (i, 0.0)).collect();
        items.push((10, 100.0));
        let fused = distribution_based_score_fusion(&[ScoredList::similarities(items)]).unwrap();
        assert_eq!(fused[0], Fused { id: 10, score: 1.0 });
    }

    #[test]
    fn classic_errors() {
        let lists = [ScoredList::similarities(vec![(1, 0.5)])];
        assert!(matches!(reciprocal_rank_fusion(&lists, -1.0, None), Err(FusionError::InvalidK { .. })));
        assert!(matches!(
            reciprocal_rank_fusion(&lists, 60.0, Some(&[-0.1])),
            Err(FusionError::NegativeWeight { index: 0, .. })
        ));
        assert!(matches!(
            reciprocal_rank_fusion(&lists, 60.0, Some(&[])),
            Err(FusionError::WeightCount { expected: 1, got: 0 })
        ));
        let bad = [ScoredList::similarities(vec![(1, f32::NAN)])];
        assert!(matches!(distribution_based_score_fusion(&bad), Err(FusionError::NonFiniteScore { .. })));
    }
}
