//! The inverted index's search against the definition: scoring every stored vector.

use braid_sparse::{SparseIndex, SparseVector, idf};
use proptest::prelude::*;

fn vector(dims: u32, signed: bool) -> impl Strategy<Value = SparseVector> {
    let value = if signed { (-4.0f32..4.0).boxed() } else { (0.0f32..4.0).boxed() };
    // Values on a coarse grid make equal scores common, so ties are exercised.
    proptest::collection::btree_map(0..dims, value.prop_map(|v| (v * 4.0).round() / 4.0), 0..8)
        .prop_map(|m| SparseVector::new(m.keys().copied().collect(), m.values().copied().collect()).unwrap())
}

#[derive(Debug, Clone)]
enum Step {
    Insert(u32, SparseVector),
    Remove(u32),
}

fn steps(signed: bool) -> impl Strategy<Value = Vec<Step>> {
    proptest::collection::vec(
        prop_oneof![
            4 => (0u32..120, vector(24, signed)).prop_map(|(o, v)| Step::Insert(o, v)),
            1 => (0u32..120).prop_map(Step::Remove),
        ],
        0..160,
    )
}

fn build(steps: &[Step]) -> SparseIndex {
    let mut index = SparseIndex::new();
    for s in steps {
        match s {
            Step::Insert(o, v) => index.insert(*o, v.clone()),
            Step::Remove(o) => {
                index.remove(*o);
            }
        }
    }
    index
}

/// The definition, with no index at all: every held vector scored by a merge of the
/// two index lists, ranked by score then key.
fn naive(
    index: &SparseIndex,
    query: &SparseVector,
    limit: usize,
    allowed: impl Fn(u32) -> bool,
    key: impl Fn(u32) -> u64,
) -> Vec<(u32, f32)> {
    let mut all: Vec<(u32, f32)> = index
        .offsets()
        .iter()
        .filter(|&o| allowed(o))
        .filter_map(|o| index.get(o).and_then(|v| query.dot(v)).map(|s| (o, s)))
        .collect();
    all.sort_by(|a, b| b.1.total_cmp(&a.1).then(key(a.0).cmp(&key(b.0))));
    all.truncate(limit);
    all
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn search_equals_scoring_every_vector(
        steps in steps(false),
        query in vector(24, false),
        limit in 1usize..12,
        modulus in 1u32..4,
        salt in 0u64..1000,
    ) {
        let index = build(&steps);
        let allowed = |o: u32| o.is_multiple_of(modulus);
        // A key unrelated to the offset order, as point ids are after updates.
        let key = |o: u32| (u64::from(o) * 7919 + salt) % 1009;
        let (hits, stats) = index.search(&query, limit, allowed, key);
        prop_assert_eq!(&hits, &naive(&index, &query, limit, allowed, key));
        prop_assert_eq!(&hits, &index.scan(&query, limit, index.offsets().iter().filter(|&o| allowed(o)), key));
        prop_assert!(stats.touched <= stats.postings + stats.lists * stats.scored.max(1) + stats.pruned * stats.lists);
    }

    #[test]
    fn negative_weights_are_exact_too(
        steps in steps(true),
        query in vector(24, true),
        limit in 1usize..12,
    ) {
        let index = build(&steps);
        let (hits, _) = index.search(&query, limit, |_| true, u64::from);
        prop_assert_eq!(hits, naive(&index, &query, limit, |_| true, u64::from));
    }

    #[test]
    fn document_frequencies_count_live_vectors(steps in steps(false)) {
        let index = build(&steps);
        for dim in 0..24 {
            let held = index.offsets().iter().filter(|&o| index.get(o).is_some_and(|v| v.indices().contains(&dim))).count();
            prop_assert_eq!(index.document_frequency(dim) as usize, held);
        }
        let q = SparseVector::new(vec![3, 7], vec![1.0, 2.0]).unwrap();
        let n = index.len() as u32;
        let w = index.with_idf(&q);
        prop_assert_eq!(w.values()[0], idf(index.document_frequency(3), n));
        prop_assert_eq!(w.values()[1], 2.0 * idf(index.document_frequency(7), n));
    }
}

#[test]
fn pruning_skips_most_postings_on_a_skewed_corpus() {
    // 20,000 points; a common dimension 0 everyone holds with a small value and a rare
    // dimension each 100th point holds with a large one: top-10 needs the rare list only.
    let mut index = SparseIndex::new();
    for o in 0..20_000u32 {
        let (i, v) = if o.is_multiple_of(100) {
            (vec![0, 1], vec![0.1, 5.0])
        } else {
            (vec![0], vec![0.1 + (o % 7) as f32 * 0.01])
        };
        index.insert(o, SparseVector::new(i, v).unwrap());
    }
    let query = SparseVector::new(vec![0, 1], vec![1.0, 1.0]).unwrap();
    let (hits, stats) = index.search(&query, 10, |_| true, u64::from);
    assert_eq!(hits, index.scan(&query, 10, 0..20_000, u64::from));
    assert!(stats.touched < stats.postings / 10, "{stats:?}");
    assert!(stats.scored < stats.postings / 10, "{stats:?}");
}

#[test]
fn idf_is_qdrants_formula() {
    // ln((n - df + 0.5) / (df + 0.5) + 1)
    assert!((idf(1, 10) - ((9.5f64 / 1.5 + 1.0).ln() as f32)).abs() < 1e-7);
    assert!(idf(10, 10) > 0.0, "a dimension every vector holds keeps a small positive weight");
    assert!(idf(0, 0) > 0.0);
}
