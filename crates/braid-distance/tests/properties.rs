//! Property tests: every fast path against the plain `f64` reference in `scalar`.
//!
//! "Equal within a relative 1e-5" is judged against the scale of the sum's terms
//! (Σ|aᵢbᵢ| for a dot product, the result itself for sums of non-negative terms), the
//! standard bound for floating-point summation: a dot product that cancels to nearly
//! zero cannot be relatively exact in any float kernel.

use braid_core::{Metric, PointOffset, f16};
use braid_distance::{
    Kernel, RowKernel, TopK, normalize, prepare, scalar, score_block, score_matrix_faer, score_matrix_pairs,
    simd, top_k,
};
use proptest::prelude::*;

const TOLERANCE: f64 = 1e-5;
const DIMS: [usize; 9] = [1, 3, 7, 16, 33, 383, 384, 512, 1536];

fn close(got: f32, reference: f64, scale: f64) -> bool {
    (f64::from(got) - reference).abs() <= TOLERANCE * scale.max(f64::MIN_POSITIVE) + 1e-30
}

fn pair() -> impl Strategy<Value = (Vec<f32>, Vec<f32>)> {
    (prop::sample::select(DIMS.to_vec()), 0u32..3).prop_flat_map(|(dim, scale)| {
        // Scales 1, 1e3 and 1e-3 exercise large and small magnitudes.
        let s = [1.0f32, 1e3, 1e-3][scale as usize];
        let v = prop::collection::vec(-s..s, dim);
        (v.clone(), v)
    })
}

/// A query and a row of `float16` and of `uint8` values, at every tested dimension.
fn narrow_pair() -> impl Strategy<Value = (Vec<f32>, Vec<f16>, Vec<u8>)> {
    (prop::sample::select(DIMS.to_vec()), 0u32..3).prop_flat_map(|(dim, scale)| {
        let s = [1.0f32, 1e3, 1e-3][scale as usize];
        let halves = prop::collection::vec((-s..s).prop_map(f16::from_f32), dim);
        (prop::collection::vec(-s..s, dim), halves, prop::collection::vec(any::<u8>(), dim))
    })
}

proptest! {
    /// The kernels over narrow rows, on every path, equal the `f64` reference over
    /// the rows' widened values.
    #[test]
    fn every_narrow_path_matches_reference((q, h, b) in narrow_pair()) {
        let hw: Vec<f32> = h.iter().map(|x| x.to_f32()).collect();
        let bw: Vec<f32> = b.iter().map(|&x| f32::from(x)).collect();
        let (hdot, hl2) = (scalar::dot(&q, &hw), scalar::l2_squared(&q, &hw));
        let (bdot, bl2) = (scalar::dot(&q, &bw), scalar::l2_squared(&q, &bw));
        let (hmag, bmag) = (scalar::dot_magnitude(&q, &hw), scalar::dot_magnitude(&q, &bw));
        for (isa, [hdot_fn, hl2_fn], [bdot_fn, bl2_fn]) in simd::narrow_paths() {
            let got = hdot_fn(&q, &h);
            prop_assert!(close(got, hdot, hmag), "{isa} f16 dot: {got} vs {hdot}");
            let got = hl2_fn(&q, &h);
            prop_assert!(close(got, hl2, hl2), "{isa} f16 squared L2: {got} vs {hl2}");
            let got = bdot_fn(&q, &b);
            prop_assert!(close(got, bdot, bmag), "{isa} u8 dot: {got} vs {bdot}");
            let got = bl2_fn(&q, &b);
            prop_assert!(close(got, bl2, bl2), "{isa} u8 squared L2: {got} vs {bl2}");
        }
        // The dispatched kernels, L1 and the byte rows' cosine.
        prop_assert!(close(RowKernel::dot(&q, &h), hdot, hmag));
        prop_assert!(close(RowKernel::l2_squared(&q, &b), bl2, bl2));
        let (hl1, bl1) = (scalar::l1(&q, &hw), scalar::l1(&q, &bw));
        prop_assert!(close(<f16 as RowKernel>::l1(&q, &h), hl1, hl1));
        prop_assert!(close(<u8 as RowKernel>::l1(&q, &b), bl1, bl1));
        if b.iter().any(|&x| x != 0) && q.iter().any(|&x| x != 0.0) {
            let mut unit = q.clone();
            normalize(&mut unit);
            let cosine = scalar::cosine(&q, &bw);
            let got = <u8 as RowKernel>::cosine(&unit, &b);
            prop_assert!((f64::from(got) - cosine).abs() <= 1e-4 * (1.0 + scalar::cosine(&unit.iter().map(|x| x.abs()).collect::<Vec<_>>(), &bw)), "{got} vs {cosine}");
        }
    }

    #[test]
    fn every_path_matches_reference((a, b) in pair()) {
        let dot = scalar::dot(&a, &b);
        let magnitude = scalar::dot_magnitude(&a, &b);
        let l2 = scalar::l2_squared(&a, &b);
        let l1 = scalar::l1(&a, &b);
        for (isa, [dot_fn, l2_fn, l1_fn]) in simd::paths() {
            let got = dot_fn(&a, &b);
            prop_assert!(close(got, dot, magnitude), "{isa} dot: {got} vs {dot}");
            let got = l2_fn(&a, &b);
            prop_assert!(close(got, l2, l2), "{isa} squared L2: {got} vs {l2}");
            let got = l1_fn(&a, &b);
            prop_assert!(close(got, l1, l1), "{isa} L1: {got} vs {l1}");
        }
        // The dispatched kernels.
        prop_assert!(close(simd::dot(&a, &b), dot, magnitude));
        prop_assert!(close(simd::l2_squared(&a, &b), l2, l2));
        prop_assert!(close(simd::l1(&a, &b), l1, l1));
    }

    #[test]
    fn user_scores_match_reference((a, b) in pair()) {
        let euclid = Kernel::new(Metric::Euclid).score(&a, &b);
        let reference = scalar::l2_squared(&a, &b).sqrt();
        prop_assert!(close(euclid, reference, reference), "{euclid} vs {reference}");
        let manhattan = Kernel::new(Metric::Manhattan).score(&a, &b);
        prop_assert!(close(manhattan, scalar::l1(&a, &b), scalar::l1(&a, &b)));
    }

    #[test]
    fn cosine_is_dot_of_normalised((a, b) in pair()) {
        prop_assume!(a.iter().any(|&x| x != 0.0) && b.iter().any(|&x| x != 0.0));
        let dim = a.len();
        let (na, nb) = (prepare(Metric::Cosine, dim, &a).unwrap(), prepare(Metric::Cosine, dim, &b).unwrap());
        let got = Kernel::new(Metric::Cosine).score(&na, &nb);
        // Both vectors have unit length, so Σ|aᵢbᵢ| ≤ 1; normalisation itself rounds in f32.
        prop_assert!(close(got, scalar::cosine(&a, &b), 1.0), "{got} vs {}", scalar::cosine(&a, &b));
    }

    #[test]
    fn normalisation_is_idempotent(v in prop::collection::vec(-100.0f32..100.0, 1..600)) {
        let mut once = v.clone();
        normalize(&mut once);
        let mut twice = once.clone();
        normalize(&mut twice);
        prop_assert_eq!(&once, &twice);
        if v.iter().any(|&x| x != 0.0) {
            let norm = scalar::dot(&once, &once);
            prop_assert!((norm - 1.0).abs() < 1e-5, "squared norm {norm}");
        }
    }

    #[test]
    fn block_equals_pairs(dim in 1usize..70, rows in 0usize..40, metric in prop::sample::select(Metric::ALL.to_vec()), seed in any::<u64>()) {
        let values = |n: usize, salt: u64| -> Vec<f32> {
            (0..n).map(|i| (((i as u64 + 1).wrapping_mul(seed ^ salt).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40) as f32 / 16_777_216.0) - 0.5).collect()
        };
        let query = values(dim, 1);
        let block = values(dim * rows, 2);
        let kernel = Kernel::new(metric);
        let mut out = vec![0.0; rows];
        score_block(&kernel, &query, &block, &mut out).unwrap();
        for (row, &got) in block.chunks_exact(dim).zip(&out) {
            prop_assert_eq!(got, kernel.score(&query, row));
        }
    }

    #[test]
    fn faer_matrix_matches_pairs(dim in 1usize..100, q in 1usize..9, n in 0usize..50, seed in any::<u64>()) {
        let mut state = seed | 1;
        let mut next = || { state ^= state << 13; state ^= state >> 7; state ^= state << 17; (state >> 40) as f32 / 16_777_216.0 - 0.5 };
        let queries: Vec<f32> = (0..q * dim).map(|_| next()).collect();
        let block: Vec<f32> = (0..n * dim).map(|_| next()).collect();
        let mut faer_out = vec![0.0; q * n];
        let mut pair_out = vec![0.0; q * n];
        score_matrix_faer(dim, &queries, &block, &mut faer_out).unwrap();
        score_matrix_pairs(Metric::Dot, dim, &queries, &block, &mut pair_out).unwrap();
        for (i, (f, p)) in faer_out.iter().zip(&pair_out).enumerate() {
            let (qi, ni) = (i / n.max(1), i % n.max(1));
            let a = &queries[qi * dim..(qi + 1) * dim];
            let b = &block[ni * dim..(ni + 1) * dim];
            let reference = scalar::dot(a, b);
            let scale = scalar::dot_magnitude(a, b);
            prop_assert!(close(*f, reference, scale), "faer {f} vs {reference}");
            prop_assert!(close(*p, reference, scale), "pairs {p} vs {reference}");
        }
    }

    #[test]
    fn top_k_equals_full_sort(scores in prop::collection::vec(prop::sample::select(vec![0.0f32, 0.25, 0.5, 1.0, -1.0, 3.5]), 0..200), k in 0usize..30, metric in prop::sample::select(Metric::ALL.to_vec())) {
        let mut sorted: Vec<(usize, f32)> = scores.iter().copied().enumerate().collect();
        // Independent reference: a stable sort by score in the metric's direction keeps
        // equal scores in offset order.
        sorted.sort_by(|a, b| if metric.higher_is_better() { b.1.total_cmp(&a.1) } else { a.1.total_cmp(&b.1) });
        let expected: Vec<(u32, f32)> = sorted.into_iter().take(k).map(|(i, s)| (i as u32, s)).collect();
        let got: Vec<(u32, f32)> = top_k(&scores, k, metric).into_iter().map(|s| (s.offset.0, s.score)).collect();
        prop_assert_eq!(got, expected);
    }

    #[test]
    fn top_k_ignores_arrival_order(mut items in prop::collection::vec((0u32..50, prop::sample::select(vec![1.0f32, 2.0, 3.0])), 0..60), k in 1usize..10) {
        items.sort_by_key(|(o, _)| *o);
        items.dedup_by_key(|(o, _)| *o);
        let forward = { let mut t = TopK::new(k, Metric::Dot); for &(o, s) in &items { t.push(PointOffset(o), s); } t.into_sorted_vec() };
        let backward = { let mut t = TopK::new(k, Metric::Dot); for &(o, s) in items.iter().rev() { t.push(PointOffset(o), s); } t.into_sorted_vec() };
        prop_assert_eq!(forward, backward);
    }
}

proptest! {
    #[test]
    fn scan_top_k_equals_score_then_sort(dim in 1usize..20, rows in 0usize..700, k in 0usize..20, metric in prop::sample::select(Metric::ALL.to_vec()), seed in any::<u64>()) {
        let mut state = seed | 1;
        // Coarse values so that ties are common and the tie order is exercised.
        let mut next = || { state ^= state << 13; state ^= state >> 7; state ^= state << 17; ((state >> 60) as f32) / 4.0 - 2.0 };
        let query: Vec<f32> = (0..dim).map(|_| next()).collect();
        let block: Vec<f32> = (0..rows * dim).map(|_| next()).collect();
        let kernel = Kernel::new(metric);
        let mut scores = vec![0.0; rows];
        score_block(&kernel, &query, &block, &mut scores).unwrap();
        let expected = top_k(&scores, k, metric);
        let got = braid_distance::scan_top_k(&kernel, &query, &block, k).unwrap();
        prop_assert_eq!(got, expected);
    }
}

proptest! {
    #[test]
    fn every_i8_dot_path_is_exact(pairs in prop::collection::vec((any::<i8>(), any::<i8>()), 0..1200)) {
        let a: Vec<i8> = pairs.iter().map(|p| p.0.max(-127)).collect();
        let b: Vec<i8> = pairs.iter().map(|p| p.1.max(-127)).collect();
        let reference: i64 = a.iter().zip(&b).map(|(&x, &y)| x as i64 * y as i64).sum();
        for (name, f) in braid_distance::dot_i8_paths() {
            prop_assert_eq!(f(&a, &b) as i64, reference, "{}", name);
        }
        prop_assert_eq!(braid_distance::dot_i8(&a, &b) as i64, reference);
    }

    /// A coded distance is within the rounding bound of the exact one:
    /// |a·b − â·b̂| ≤ (sₐ‖b‖₁ + s_b‖a‖₁)/2 + n·sₐ·s_b/4, with s = max|xᵢ| / 127, where
    /// a and b are the residuals from the centre (a third vector when `centred`).
    #[test]
    fn coded_distance_is_within_rounding_bound(
        (a, b) in pair().prop_filter("coded widths", |(a, _)| a.len() >= braid_distance::MIN_CODED_DIM),
        metric in prop::sample::select(vec![Metric::Cosine, Metric::Dot, Metric::Euclid]),
        centred in any::<bool>(),
    ) {
        let dim = a.len();
        let centre: Vec<f32> = if centred { a.iter().zip(&b).map(|(x, y)| 0.5 * x - 0.25 * y).collect() } else { vec![0.0; dim] };
        let mut codes = braid_distance::Codes::with_sample(metric, dim, 1).expect("coded metric");
        if centred && centre.iter().any(|&x| x != 0.0) {
            codes.push(&centre);
            prop_assert!(codes.is_centred());
        }
        let at = codes.len();
        codes.push(&b);
        let centre = if codes.is_centred() { centre } else { vec![0.0; dim] };
        let q = codes.query(&a);
        let exact_dot: f64 = a.iter().zip(&b).map(|(&x, &y)| x as f64 * y as f64).sum();
        let (ra, rb): (Vec<f32>, Vec<f32>) =
            (a.iter().zip(&centre).map(|(x, m)| x - m).collect(), b.iter().zip(&centre).map(|(x, m)| x - m).collect());
        let l1 = |v: &[f32]| v.iter().map(|x| x.abs() as f64).sum::<f64>();
        let scale = |v: &[f32]| v.iter().fold(0.0f64, |m, x| m.max(x.abs() as f64)) / 127.0;
        let (sa, sb) = (scale(&ra), scale(&rb));
        let bound = (sa * l1(&rb) + sb * l1(&ra)) / 2.0 + dim as f64 * sa * sb / 4.0;
        let got = codes.distance(&q, at) as f64;
        let (want, slack) = match metric {
            Metric::Euclid => {
                let n2 = |v: &[f32]| v.iter().map(|&x| x as f64 * x as f64).sum::<f64>();
                (n2(&a) + n2(&b) - 2.0 * exact_dot, 2.0 * bound)
            }
            _ => (-exact_dot, bound),
        };
        // f32 arithmetic on top of the bound (the exact terms are sums of products of
        // the inputs' magnitudes).
        let magnitude = l1(&a) * l1(&b).max(1.0) / dim as f64 + l1(&centre) * (l1(&a) + l1(&b)) / dim as f64;
        let tolerance = slack * 1.01 + 1e-3 * (1.0 + want.abs()) + 1e-5 * magnitude;
        prop_assert!((got - want).abs() <= tolerance, "got {} want {} bound {}", got, want, tolerance);
    }
}
