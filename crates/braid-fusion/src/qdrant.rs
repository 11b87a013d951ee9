//! Fusion exactly as Qdrant's server computes it for `Fusion::Rrf` and `Fusion::Dbsf`.
//!
//! Input lists are the prefetch results in prefetch order, each already cut to its
//! prefetch's limit and in rank order (best first). The output holds every id that
//! appears in any list; the caller applies `score_threshold` (inclusive, `>=`), offset
//! and limit. Unlike the server, ties come out in first-seen order instead of an
//! unspecified one (see `docs/fusion.md`).

use std::hash::Hash;

use crate::{
    Accumulator, Fused, FusionError, check_scores, check_weights, distribution_norm, mean_and_sigma,
};

/// Qdrant's default RRF constant: `{"fusion": "rrf"}` means `k = 2`, not 60.
pub const DEFAULT_RRF_K: usize = 2;

/// Reciprocal rank fusion with Qdrant's formula.
///
/// An id at 0-based position `p` of a list with weight `w` gains
/// `1 / ((p + 1) / w + k − 1)`; with `w = 1` that is `1 / (p + k)`. A list with
/// `w ≤ 0` contributes 0, but its ids still appear (with whatever the other lists
/// give them). An id repeated within or across lists accumulates every contribution.
/// Input scores are ignored: only positions matter.
///
/// Errors: `k = 0`; weights given but not one per list; a non-finite weight.
pub fn rrf<Id, L>(lists: &[L], k: usize, weights: Option<&[f32]>) -> Result<Vec<Fused<Id>>, FusionError>
where
    Id: Clone + Eq + Hash,
    L: AsRef<[(Id, f32)]>,
{
    if k == 0 {
        return Err(FusionError::InvalidK { k: 0.0, why: "Qdrant's RRF needs k >= 1" });
    }
    check_weights(weights, lists.len())?;
    let k = k as f32;
    let mut acc = Accumulator::new();
    for (i, list) in lists.iter().enumerate() {
        let w = weights.map_or(1.0, |w| w[i]);
        for (p, (id, _)) in list.as_ref().iter().enumerate() {
            let contribution = if w <= 0.0 { 0.0 } else { 1.0 / ((p as f32 + 1.0) / w + k - 1.0) };
            acc.add(id, contribution);
        }
    }
    Ok(acc.finish())
}

/// Distribution-based score fusion with Qdrant's rules.
///
/// Each list is normalised on its own by `(s − (μ − 3σ)) / 6σ` with the **sample**
/// standard deviation (divisor n − 1), **not clipped**, so outliers leave `[0, 1]`; a
/// list of one element, or of equal scores, gives every id 0.5. Normalised scores are
/// **summed** across lists. Raw scores are used as they come: for a distance metric
/// (smaller is better) the closest points get the lowest normalised score, as on
/// Qdrant's server.
///
/// `weights` goes beyond Qdrant: when given, each list's normalised scores are
/// multiplied by its weight. `None` is Qdrant's behaviour exactly.
///
/// Errors: weights given but not one per list, or not finite; a non-finite score.
pub fn dbsf<Id, L>(lists: &[L], weights: Option<&[f32]>) -> Result<Vec<Fused<Id>>, FusionError>
where
    Id: Clone + Eq + Hash,
    L: AsRef<[(Id, f32)]>,
{
    check_weights(weights, lists.len())?;
    check_scores(lists)?;
    let mut acc = Accumulator::new();
    for (i, list) in lists.iter().enumerate() {
        let items = list.as_ref();
        let Some((mean, sigma)) = mean_and_sigma(items.iter().map(|(_, s)| *s), true) else { continue };
        let w = f64::from(weights.map_or(1.0, |w| w[i]));
        for (id, score) in items {
            acc.add(id, (w * distribution_norm(*score, mean, sigma)) as f32);
        }
    }
    Ok(acc.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scores<Id>(fused: &[Fused<Id>]) -> Vec<f32> {
        fused.iter().map(|f| f.score).collect()
    }

    #[test]
    fn one_list_gives_half_third_quarter() {
        let fused = rrf(&[[(1, 0.0), (2, 0.0), (3, 0.0)]], DEFAULT_RRF_K, None).unwrap();
        assert_eq!(fused.iter().map(|f| f.id).collect::<Vec<_>>(), vec![1, 2, 3]);
        assert_eq!(scores(&fused), vec![0.5, 1.0 / 3.0, 0.25]);
    }

    #[test]
    fn weights_by_hand() {
        // w = 2, k = 2: p = 0 → 1/(0.5 + 1) = 2/3; p = 1 → 1/(1 + 1) = 1/2.
        // w = 0.5:      p = 0 → 1/(2 + 1) = 1/3.
        let fused = rrf(&[vec![("a", 0.0), ("b", 0.0)], vec![("b", 0.0)]], 2, Some(&[2.0, 0.5])).unwrap();
        assert_eq!(fused[0], Fused { id: "b", score: 0.5 + 1.0 / 3.0 });
        assert_eq!(fused[1], Fused { id: "a", score: 2.0 / 3.0 });
    }

    #[test]
    fn non_positive_weight_keeps_ids_at_zero() {
        let fused = rrf(&[vec![(1, 0.0)], vec![(2, 0.0)]], 2, Some(&[1.0, -1.0])).unwrap();
        assert_eq!(fused, vec![Fused { id: 1, score: 0.5 }, Fused { id: 2, score: 0.0 }]);
    }

    #[test]
    fn repeated_ids_accumulate() {
        let fused = rrf(&[[(7, 0.0), (7, 0.0)]], 2, None).unwrap();
        assert_eq!(fused, vec![Fused { id: 7, score: 0.5 + 1.0 / 3.0 }]);
    }

    #[test]
    fn errors() {
        let lists = [[(1, 0.0)], [(2, 0.0)]];
        assert_eq!(rrf(&lists, 2, Some(&[1.0])), Err(FusionError::WeightCount { expected: 2, got: 1 }));
        assert!(matches!(rrf(&lists, 0, None), Err(FusionError::InvalidK { .. })));
        assert!(matches!(
            rrf(&lists, 2, Some(&[1.0, f32::NAN])),
            Err(FusionError::NonFiniteWeight { index: 1, .. })
        ));
        assert!(matches!(
            dbsf(&[[(1, f32::INFINITY)]], None),
            Err(FusionError::NonFiniteScore { list: 0, position: 0, .. })
        ));
    }

    #[test]
    fn dbsf_by_hand() {
        // Scores 1, 2, 3: mean 2, sample σ = 1, window [−1, 5]; norms 2/6, 3/6, 4/6.
        let fused = dbsf(&[[("a", 3.0), ("b", 2.0), ("c", 1.0)]], None).unwrap();
        let expected = [("a", 4.0 / 6.0), ("b", 0.5), ("c", 2.0 / 6.0)];
        for (f, (id, s)) in fused.iter().zip(expected) {
            assert_eq!(f.id, id);
            assert!((f.score - s as f32).abs() < 1e-7, "{} {}", f.score, s);
        }
    }

    #[test]
    fn dbsf_single_and_constant_lists_give_half_and_sum() {
        let fused = dbsf(&[vec![(1, 9.0)], vec![(1, 4.0), (2, 4.0)], vec![]], None).unwrap();
        assert_eq!(fused, vec![Fused { id: 1, score: 1.0 }, Fused { id: 2, score: 0.5 }]);
    }

    #[test]
    fn dbsf_does_not_clip_and_does_not_flip() {
        // Ten zeros and one 100: the outlier lies beyond mean + 3σ, so its norm exceeds 1.
        let mut list: Vec<(u32, f32)> = (0..10).map(|i| (i, 0.0)).collect();
        list.push((10, 100.0));
        let fused = dbsf(&[list], None).unwrap();
        assert_eq!(fused[0].id, 10);
        assert!(fused[0].score > 1.0);
        // Distances as raw scores: the closest (0.1) gets the lowest fused score.
        let fused = dbsf(&[[("near", 0.1), ("mid", 0.5), ("far", 0.9)]], None).unwrap();
        assert_eq!(fused.last().unwrap().id, "near");
    }
}
