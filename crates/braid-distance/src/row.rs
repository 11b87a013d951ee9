//! Kernels between an `f32` query and a stored row of any [`Element`] type.

use std::borrow::Cow;

use braid_core::{Element, Metric, f16};

use crate::{normalize, simd};

/// The kernels of one row element type: an `f32` query (prepared as
/// [`crate::prepare`] prepares it) against a stored row of `Self`.
///
/// Rows of floats store Cosine vectors normalised, so their Cosine kernel is the dot
/// product; rows of bytes cannot hold a unit vector and store them as given, so theirs
/// divides by the row's length ([`RowKernel::NORMALISED`]).
pub trait RowKernel: Element {
    /// Whether Cosine rows of this type are stored normalised.
    const NORMALISED: bool = true;

    /// Σ qᵢ·rᵢ.
    fn dot(q: &[f32], row: &[Self]) -> f32;
    /// Σ (qᵢ − rᵢ)².
    fn l2_squared(q: &[f32], row: &[Self]) -> f32;
    /// Σ |qᵢ − rᵢ|.
    fn l1(q: &[f32], row: &[Self]) -> f32 {
        simd::widened(q, row, simd::l1)
    }
    /// The cosine of a normalised query and a row.
    fn cosine(q: &[f32], row: &[Self]) -> f32 {
        Self::dot(q, row)
    }

    /// The raw score of `q` and `row` under `metric` (the scale of
    /// [`crate::Kernel::raw`]).
    #[inline(always)]
    fn raw(metric: Metric, q: &[f32], row: &[Self]) -> f32 {
        match metric {
            Metric::Cosine => Self::cosine(q, row),
            Metric::Dot => Self::dot(q, row),
            Metric::Euclid => Self::l2_squared(q, row),
            Metric::Manhattan => Self::l1(q, row),
        }
    }

    /// `row` as a query under `metric`: widened to `f32`, and normalised under Cosine
    /// when rows are stored as given.
    fn as_query(metric: Metric, row: &[Self]) -> Cow<'_, [f32]> {
        let mut wide = Self::widen(row);
        if metric == Metric::Cosine && !Self::NORMALISED {
            normalize(wide.to_mut());
        }
        wide
    }

    /// [`RowKernel::as_query`] without allocating: the row itself when the rows are
    /// `f32`, else written into `buf` (for loops that turn many rows into queries).
    fn as_query_into<'a>(metric: Metric, row: &'a [Self], buf: &'a mut Vec<f32>) -> &'a [f32] {
        if metric == Metric::Cosine && !Self::NORMALISED {
            buf.clear();
            buf.extend(row.iter().map(|x| x.to_f32()));
            normalize(buf);
            return buf;
        }
        Self::widen_into(row, buf)
    }
}

impl RowKernel for f32 {
    #[inline(always)]
    fn dot(q: &[f32], row: &[f32]) -> f32 {
        simd::dot(q, row)
    }
    #[inline(always)]
    fn l2_squared(q: &[f32], row: &[f32]) -> f32 {
        simd::l2_squared(q, row)
    }
    #[inline(always)]
    fn l1(q: &[f32], row: &[f32]) -> f32 {
        simd::l1(q, row)
    }
}

impl RowKernel for f16 {
    #[inline(always)]
    fn dot(q: &[f32], row: &[f16]) -> f32 {
        simd::dot_f16(q, row)
    }
    #[inline(always)]
    fn l2_squared(q: &[f32], row: &[f16]) -> f32 {
        simd::l2_squared_f16(q, row)
    }
}

impl RowKernel for u8 {
    const NORMALISED: bool = false;

    #[inline(always)]
    fn dot(q: &[f32], row: &[u8]) -> f32 {
        simd::dot_u8(q, row)
    }
    #[inline(always)]
    fn l2_squared(q: &[f32], row: &[u8]) -> f32 {
        simd::l2_squared_u8(q, row)
    }
    #[inline]
    fn cosine(q: &[f32], row: &[u8]) -> f32 {
        // Exact in integers: 255² · 2²⁴ rows' worth of components fit in a u64.
        let squared: u64 = row.iter().map(|&x| u64::from(x) * u64::from(x)).sum();
        if squared == 0 {
            return 0.0;
        }
        (f64::from(simd::dot_u8(q, row)) / (squared as f64).sqrt()) as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scalar;

    fn rows(dim: usize, seed: u64) -> (Vec<f32>, Vec<f16>, Vec<u8>) {
        let mut x = seed;
        let mut next = || {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (x >> 33) as u32
        };
        let q: Vec<f32> = (0..dim).map(|_| (next() % 2000) as f32 / 1000.0 - 1.0).collect();
        let h: Vec<f16> = (0..dim).map(|_| f16::from_f32((next() % 2000) as f32 / 700.0 - 1.4)).collect();
        let b: Vec<u8> = (0..dim).map(|_| (next() % 256) as u8).collect();
        (q, h, b)
    }

    fn close(got: f32, want: f64) -> bool {
        (f64::from(got) - want).abs() <= 1e-4 * want.abs().max(1.0)
    }

    #[test]
    fn narrow_rows_score_as_their_widened_values() {
        for dim in [1, 7, 8, 15, 16, 17, 63, 64, 65, 100, 384, 385] {
            let (q, h, b) = rows(dim, dim as u64);
            let hw: Vec<f32> = h.iter().map(|x| x.to_f32()).collect();
            let bw: Vec<f32> = b.iter().map(|&x| f32::from(x)).collect();
            assert!(close(f16::dot(&q, &h), scalar::dot(&q, &hw)), "f16 dot at {dim}");
            assert!(close(f16::l2_squared(&q, &h), scalar::l2_squared(&q, &hw)), "f16 l2 at {dim}");
            assert!(close(f16::l1(&q, &h), scalar::l1(&q, &hw)), "f16 l1 at {dim}");
            assert!(close(u8::dot(&q, &b), scalar::dot(&q, &bw)), "u8 dot at {dim}");
            assert!(close(u8::l2_squared(&q, &b), scalar::l2_squared(&q, &bw)), "u8 l2 at {dim}");
            assert!(close(u8::l1(&q, &b), scalar::l1(&q, &bw)), "u8 l1 at {dim}");
            assert!(close(simd::widened(&q, &h, simd::dot), scalar::dot(&q, &hw)), "portable at {dim}");
            if b.iter().any(|&x| x > 0) {
                let mut unit = q.clone();
                normalize(&mut unit);
                assert!(close(u8::cosine(&unit, &b), scalar::cosine(&q, &bw)), "u8 cosine at {dim}");
                let query = u8::as_query(Metric::Cosine, &b);
                assert!(close(u8::raw(Metric::Cosine, &query, &b), 1.0), "a row is its own nearest at {dim}");
                let mut buf = Vec::new();
                assert_eq!(u8::as_query_into(Metric::Cosine, &b, &mut buf), &query[..]);
                assert_eq!(f16::as_query_into(Metric::Cosine, &h, &mut buf), &hw[..]);
            }
        }
        assert_eq!(u8::cosine(&[1.0, 0.0], &[0, 0]), 0.0);
        assert!(matches!(f32::as_query(Metric::Cosine, &[0.6, 0.8]), Cow::Borrowed(_)));
    }
}
