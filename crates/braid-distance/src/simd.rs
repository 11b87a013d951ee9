//! The fast kernels: `simsimd` where it has one (dot, squared L2), and a
//! multiversioned loop for L1, which `simsimd` lacks for `f32`.
//!
//! `simsimd` picks its instruction set at run time inside the C library. The L1 loop
//! and the memory-read baseline are compiled three times (AVX-512, AVX2+FMA, portable)
//! and the best one for this CPU is chosen once and cached.

use std::sync::OnceLock;

use simsimd::SpatialSimilarity;

/// Σ aᵢ·bᵢ. Callers guarantee `a.len() == b.len()`.
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    // `simsimd` returns None only on a length mismatch, which callers rule out.
    f32::dot(a, b).unwrap_or(f64::NAN) as f32
}

/// Σ (aᵢ − bᵢ)². Callers guarantee `a.len() == b.len()`.
#[inline]
pub fn l2_squared(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    f32::l2sq(a, b).unwrap_or(f64::NAN) as f32
}

/// Σ |aᵢ − bᵢ|. Callers guarantee `a.len() == b.len()`.
#[inline]
pub fn l1(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    (kernels().l1)(a, b)
}

/// Σ xᵢ, read as fast as the machine can: the memory-bandwidth baseline that exact
/// scans are measured against in `cargo xtask bench distance`.
pub fn sum(values: &[f32]) -> f32 {
    (kernels().sum)(values)
}

/// The instruction set the multiversioned loops run with on this CPU.
pub fn isa() -> &'static str {
    kernels().isa
}

/// A pairwise kernel over two equal-length slices.
pub type PairFn = fn(&[f32], &[f32]) -> f32;

struct Kernels {
    l1: PairFn,
    sum: fn(&[f32]) -> f32,
    isa: &'static str,
}

fn kernels() -> &'static Kernels {
    static CHOSEN: OnceLock<Kernels> = OnceLock::new();
    CHOSEN.get_or_init(detect)
}

#[cfg(target_arch = "x86_64")]
fn detect() -> Kernels {
    if std::arch::is_x86_feature_detected!("avx512f") {
        return Kernels { l1: x86::l1_avx512, sum: x86::sum_avx512, isa: "avx512f" };
    }
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        return Kernels { l1: x86::l1_avx2, sum: x86::sum_avx2, isa: "avx2+fma" };
    }
    portable_kernels()
}

#[cfg(not(target_arch = "x86_64"))]
fn detect() -> Kernels {
    portable_kernels()
}

fn portable_kernels() -> Kernels {
    Kernels { l1: l1_portable, sum: sum_portable, isa: "portable" }
}

/// Lanes of independent accumulators: wide enough to fill one AVX-512 register, and
/// to let the compiler vectorise a float reduction it may not reorder by itself.
const LANES: usize = 16;

#[inline(always)]
fn l1_body(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; LANES];
    let chunks_a = a.chunks_exact(LANES);
    let chunks_b = b.chunks_exact(LANES);
    let tail: f32 = chunks_a.remainder().iter().zip(chunks_b.remainder()).map(|(x, y)| (x - y).abs()).sum();
    for (ca, cb) in chunks_a.zip(chunks_b) {
        for i in 0..LANES {
            acc[i] += (ca[i] - cb[i]).abs();
        }
    }
    acc.iter().sum::<f32>() + tail
}

#[inline(always)]
fn sum_body(values: &[f32]) -> f32 {
    // Four registers of accumulators hide the add latency, so the loop is bound by
    // memory, not by the adder.
    let mut acc = [0.0f32; 4 * LANES];
    let chunks = values.chunks_exact(4 * LANES);
    let tail: f32 = chunks.remainder().iter().sum();
    for c in chunks {
        for i in 0..4 * LANES {
            acc[i] += c[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

fn l1_portable(a: &[f32], b: &[f32]) -> f32 {
    l1_body(a, b)
}

fn sum_portable(values: &[f32]) -> f32 {
    sum_body(values)
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{l1_body, sum_body};

    #[target_feature(enable = "avx512f")]
    unsafe fn l1_avx512_inner(a: &[f32], b: &[f32]) -> f32 {
        l1_body(a, b)
    }

    #[target_feature(enable = "avx2,fma")]
    unsafe fn l1_avx2_inner(a: &[f32], b: &[f32]) -> f32 {
        l1_body(a, b)
    }

    #[target_feature(enable = "avx512f")]
    unsafe fn sum_avx512_inner(values: &[f32]) -> f32 {
        sum_body(values)
    }

    #[target_feature(enable = "avx2,fma")]
    unsafe fn sum_avx2_inner(values: &[f32]) -> f32 {
        sum_body(values)
    }

    pub(super) fn l1_avx512(a: &[f32], b: &[f32]) -> f32 {
        // SAFETY: only installed by `detect` after `avx512f` was detected on this CPU.
        unsafe { l1_avx512_inner(a, b) }
    }

    pub(super) fn l1_avx2(a: &[f32], b: &[f32]) -> f32 {
        // SAFETY: only installed by `detect` after `avx2` and `fma` were detected.
        unsafe { l1_avx2_inner(a, b) }
    }

    pub(super) fn sum_avx512(values: &[f32]) -> f32 {
        // SAFETY: only installed by `detect` after `avx512f` was detected on this CPU.
        unsafe { sum_avx512_inner(values) }
    }

    pub(super) fn sum_avx2(values: &[f32]) -> f32 {
        // SAFETY: only installed by `detect` after `avx2` and `fma` were detected.
        unsafe { sum_avx2_inner(values) }
    }

    /// Every L1 path this CPU can run, for tests that compare each with the reference.
    pub(crate) fn l1_paths() -> Vec<(&'static str, super::PairFn)> {
        let mut paths: Vec<(&'static str, super::PairFn)> = Vec::new();
        if std::arch::is_x86_feature_detected!("avx512f") {
            paths.push(("avx512f", l1_avx512));
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            paths.push(("avx2+fma", l1_avx2));
        }
        paths
    }
}

/// Every L1 implementation this CPU can run, named by instruction set.
#[doc(hidden)]
pub fn l1_paths() -> Vec<(&'static str, PairFn)> {
    let mut paths: Vec<(&'static str, PairFn)> = vec![("portable", l1_portable)];
    #[cfg(target_arch = "x86_64")]
    paths.extend(x86::l1_paths());
    paths
}
