//! Property tests for both fusion families, against properties that follow from the
//! formulas rather than from the code.

use std::collections::HashMap;

use braid_fusion::classic::{self, ScoredList};
use braid_fusion::{Fused, qdrant};
use proptest::prelude::*;

type List = Vec<(u16, f32)>;

/// Lists of distinct ids (as search results are), with finite scores in rank order.
fn ranked_list(max_len: usize) -> impl Strategy<Value = List> {
    prop::collection::btree_set(0u16..60, 0..max_len)
        .prop_flat_map(|ids| {
            let n = ids.len();
            (
                Just(ids.into_iter().collect::<Vec<_>>()).prop_shuffle(),
                prop::collection::vec(-10.0f32..10.0, n),
            )
        })
        .prop_map(|(ids, mut scores)| {
            scores.sort_by(|a, b| b.total_cmp(a));
            ids.into_iter().zip(scores).collect()
        })
}

fn lists(max_lists: usize) -> impl Strategy<Value = Vec<List>> {
    prop::collection::vec(ranked_list(25), 1..max_lists)
}

fn by_id(fused: &[Fused<u16>]) -> HashMap<u16, f32> {
    fused.iter().map(|f| (f.id, f.score)).collect()
}

fn same_scores(a: &[Fused<u16>], b: &[Fused<u16>], tolerance: f32) -> Result<(), TestCaseError> {
    let (ma, mb) = (by_id(a), by_id(b));
    prop_assert_eq!(ma.len(), mb.len());
    for (id, s) in &ma {
        let t = mb.get(id).copied();
        prop_assert!(t.is_some_and(|t| (t - s).abs() <= tolerance), "id {id}: {s} vs {t:?}");
    }
    // The rankings agree wherever the scores are not (near-)tied.
    for w in b.windows(2) {
        prop_assert!(w[0].score + tolerance >= w[1].score);
    }
    for (x, y) in a.iter().zip(b) {
        prop_assert!((x.score - y.score).abs() <= tolerance);
    }
    Ok(())
}

fn descending(fused: &[Fused<u16>]) -> bool {
    fused.windows(2).all(|w| w[0].score >= w[1].score)
}

proptest! {
    #[test]
    fn list_order_does_not_matter(lists in lists(5), seed in any::<u64>()) {
        let mut permuted = lists.clone();
        // A seeded rotation-and-reverse is enough to move every list.
        let len = permuted.len();
        permuted.rotate_left((seed as usize) % len);
        if seed & 1 == 1 { permuted.reverse(); }
        same_scores(&qdrant::rrf(&lists, 2, None).unwrap(), &qdrant::rrf(&permuted, 2, None).unwrap(), 1e-6)?;
        same_scores(&qdrant::dbsf(&lists, None).unwrap(), &qdrant::dbsf(&permuted, None).unwrap(), 1e-5)?;
        let wrap = |ls: &[List]| ls.iter().cloned().map(ScoredList::similarities).collect::<Vec<_>>();
        same_scores(
            &classic::reciprocal_rank_fusion(&wrap(&lists), 60.0, None).unwrap(),
            &classic::reciprocal_rank_fusion(&wrap(&permuted), 60.0, None).unwrap(),
            1e-6,
        )?;
        same_scores(
            &classic::distribution_based_score_fusion(&wrap(&lists)).unwrap(),
            &classic::distribution_based_score_fusion(&wrap(&permuted)).unwrap(),
            1e-5,
        )?;
    }

    #[test]
    fn a_list_fused_with_itself_keeps_its_order(list in ranked_list(30)) {
        let ids: Vec<u16> = list.iter().map(|(id, _)| *id).collect();
        let rrf = qdrant::rrf(&[list.clone(), list.clone()], 2, None).unwrap();
        prop_assert_eq!(rrf.iter().map(|f| f.id).collect::<Vec<_>>(), ids.clone());
        let classic_rrf = classic::reciprocal_rank_fusion(
            &[ScoredList::similarities(list.clone()), ScoredList::similarities(list.clone())], 60.0, None).unwrap();
        prop_assert_eq!(classic_rrf.iter().map(|f| f.id).collect::<Vec<_>>(), ids.clone());
        // DBSF keeps the order up to ties in the input scores.
        let dbsf = qdrant::dbsf(&[list.clone(), list.clone()], None).unwrap();
        let input: HashMap<u16, f32> = list.iter().copied().collect();
        for w in dbsf.windows(2) {
            prop_assert!(input[&w[0].id] >= input[&w[1].id]);
        }
    }

    #[test]
    fn weight_zero_removes_a_lists_influence(a in ranked_list(20), b in ranked_list(20)) {
        let alone = by_id(&qdrant::rrf(std::slice::from_ref(&a), 2, None).unwrap());
        let muted = qdrant::rrf(&[a.clone(), b.clone()], 2, Some(&[1.0, 0.0])).unwrap();
        for f in &muted {
            prop_assert_eq!(f.score, alone.get(&f.id).copied().unwrap_or(0.0));
        }
        let alone = by_id(&qdrant::dbsf(std::slice::from_ref(&a), None).unwrap());
        for f in &qdrant::dbsf(&[a.clone(), b.clone()], Some(&[1.0, 0.0])).unwrap() {
            prop_assert_eq!(f.score, alone.get(&f.id).copied().unwrap_or(0.0));
        }
        let wrap = |l: &List| ScoredList::similarities(l.clone());
        let alone = by_id(&classic::reciprocal_rank_fusion(&[wrap(&a)], 60.0, None).unwrap());
        for f in &classic::reciprocal_rank_fusion(&[wrap(&a), wrap(&b)], 60.0, Some(&[1.0, 0.0])).unwrap() {
            prop_assert_eq!(f.score, alone.get(&f.id).copied().unwrap_or(0.0));
        }
    }

    #[test]
    fn rrf_scores_fall_with_rank(list in ranked_list(40), k in 1usize..100, w in 0.01f32..10.0) {
        let fused = qdrant::rrf(std::slice::from_ref(&list), k, Some(&[w])).unwrap();
        prop_assert_eq!(fused.iter().map(|f| f.id).collect::<Vec<_>>(), list.iter().map(|(id, _)| *id).collect::<Vec<_>>());
        prop_assert!(fused.windows(2).all(|p| p[0].score > p[1].score));
        let classic = classic::reciprocal_rank_fusion(&[ScoredList::similarities(list)], k as f32, None).unwrap();
        prop_assert!(classic.windows(2).all(|p| p[0].score > p[1].score));
    }

    #[test]
    fn outputs_are_sorted_and_cover_every_id(lists in lists(4)) {
        let ids: std::collections::HashSet<u16> = lists.iter().flatten().map(|(id, _)| *id).collect();
        for fused in [qdrant::rrf(&lists, 2, None).unwrap(), qdrant::dbsf(&lists, None).unwrap()] {
            prop_assert!(descending(&fused));
            prop_assert_eq!(fused.iter().map(|f| f.id).collect::<std::collections::HashSet<_>>(), ids.clone());
        }
    }

    #[test]
    fn dbsf_is_invariant_under_affine_rescaling(lists in lists(4), scale in 0.01f32..100.0, shift in -100.0f32..100.0) {
        let rescaled: Vec<List> = vec![lists[0].iter().map(|(id, s)| (*id, s * scale + shift)).collect()]
            .into_iter().chain(lists[1..].iter().cloned()).collect();
        same_scores(&qdrant::dbsf(&lists, None).unwrap(), &qdrant::dbsf(&rescaled, None).unwrap(), 2e-4)?;
        let wrap = |ls: &[List]| ls.iter().cloned().map(ScoredList::similarities).collect::<Vec<_>>();
        same_scores(
            &classic::distribution_based_score_fusion(&wrap(&lists)).unwrap(),
            &classic::distribution_based_score_fusion(&wrap(&rescaled)).unwrap(),
            2e-4,
        )?;
    }

    #[test]
    fn qdrant_rrf_with_k_is_classic_rrf_with_k_minus_one(lists in lists(4), k in 1usize..80) {
        let wrap: Vec<ScoredList<u16>> = lists.iter().cloned().map(ScoredList::similarities).collect();
        same_scores(
            &qdrant::rrf(&lists, k, None).unwrap(),
            &classic::reciprocal_rank_fusion(&wrap, (k - 1) as f32, None).unwrap(),
            1e-6,
        )?;
    }
}
