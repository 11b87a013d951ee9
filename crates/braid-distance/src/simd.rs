//! The fast kernels, for the instruction set detected once per process. Each public
//! function is a direct call behind a branch on that cached level, which the CPU
//! predicts perfectly (measurably faster in search loops than a call through a
//! pointer).
//!
//! - Dot product and squared L2: on x86-64 with AVX-512F or AVX2+FMA, Braid's own
//!   kernels with four independent accumulator registers, called directly. Measured
//!   per pair in a tight loop they are level with `simsimd`'s (`cargo xtask bench
//!   distance`), but inside the HNSW beam search, where `simsimd` is reached through
//!   three calls per pair (Rust wrapper, C dispatcher, kernel), switching to them raised
//!   throughput by about a fifth (`docs/benchmarks.md`). Everywhere else (ARM
//!   NEON/SVE, older x86) `simsimd`, which dispatches at run time, is the kernel;
//!   [`simsimd_dot`] and [`simsimd_l2_squared`] stay public and are benchmarked
//!   beside Braid's.
//! - L1, which `simsimd` lacks for `f32`: one loop compiled for AVX-512, AVX2+FMA and
//!   portable code.
//! - The memory-read baseline that exact-scan bandwidth is measured against.

use simsimd::SpatialSimilarity;

use braid_core::{Element, f16};

/// Σ aᵢ·bᵢ. Callers guarantee `a.len() == b.len()`.
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    match level() {
        #[cfg(target_arch = "x86_64")]
        Level::Avx512 => x86::dot_avx512(a, b),
        #[cfg(target_arch = "x86_64")]
        Level::Avx2 => x86::dot_avx2(a, b),
        _ => simsimd_dot(a, b),
    }
}

/// Σ (aᵢ − bᵢ)². Callers guarantee `a.len() == b.len()`. Dispatched like [`dot`].
#[inline]
pub fn l2_squared(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    match level() {
        #[cfg(target_arch = "x86_64")]
        Level::Avx512 => x86::l2_squared_avx512(a, b),
        #[cfg(target_arch = "x86_64")]
        Level::Avx2 => x86::l2_squared_avx2(a, b),
        _ => simsimd_l2_squared(a, b),
    }
}

/// The instruction-set level the kernels run at.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Level {
    Unknown = 0,
    Portable = 1,
    Avx2 = 2,
    Avx512 = 3,
}

static LEVEL: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(Level::Unknown as u8);

#[inline(always)]
fn level() -> Level {
    match LEVEL.load(std::sync::atomic::Ordering::Relaxed) {
        3 => Level::Avx512,
        2 => Level::Avx2,
        1 => Level::Portable,
        _ => detect_level(),
    }
}

#[cold]
fn detect_level() -> Level {
    #[cfg(target_arch = "x86_64")]
    let level =
        if std::arch::is_x86_feature_detected!("avx512f") && std::arch::is_x86_feature_detected!("fma") {
            Level::Avx512
        } else if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            Level::Avx2
        } else {
            Level::Portable
        };
    #[cfg(not(target_arch = "x86_64"))]
    let level = Level::Portable;
    // Racing threads store the same value.
    LEVEL.store(level as u8, std::sync::atomic::Ordering::Relaxed);
    level
}

/// `simsimd`'s dot product.
pub fn simsimd_dot(a: &[f32], b: &[f32]) -> f32 {
    // `simsimd` returns None only on a length mismatch, which callers rule out.
    f32::dot(a, b).unwrap_or(f64::NAN) as f32
}

/// `simsimd`'s squared L2 distance.
pub fn simsimd_l2_squared(a: &[f32], b: &[f32]) -> f32 {
    f32::l2sq(a, b).unwrap_or(f64::NAN) as f32
}

/// Σ |aᵢ − bᵢ|. Callers guarantee `a.len() == b.len()`. Dispatched like [`dot`].
#[inline]
pub fn l1(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    match level() {
        #[cfg(target_arch = "x86_64")]
        Level::Avx512 => x86::l1_avx512(a, b),
        #[cfg(target_arch = "x86_64")]
        Level::Avx2 => x86::l1_avx2(a, b),
        _ => l1_portable(a, b),
    }
}

/// A kernel between an `f32` query and a narrower row, dispatched like [`dot`]: the
/// AVX-512 form, the AVX2 form where `$avx2_ok` holds, else the portable `widened`
/// form of the `f32` kernel `$portable`.
macro_rules! narrow_kernel {
    ($(#[$doc:meta])* $name:ident, $elem:ty, $avx512:ident, $avx2:ident, $avx2_ok:expr, $portable:ident) => {
        $(#[$doc])*
        #[inline]
        pub fn $name(q: &[f32], r: &[$elem]) -> f32 {
            debug_assert_eq!(q.len(), r.len());
            match level() {
                #[cfg(target_arch = "x86_64")]
                Level::Avx512 => x86::$avx512(q, r),
                #[cfg(target_arch = "x86_64")]
                Level::Avx2 if $avx2_ok => x86::$avx2(q, r),
                _ => widened(q, r, $portable),
            }
        }
    };
}

narrow_kernel!(
    /// Σ qᵢ·rᵢ over an `f32` query and a row of halves, each widened to `f32` as it
    /// is read (F16C's conversion on AVX2, AVX-512F's on AVX-512). Callers guarantee
    /// equal lengths.
    dot_f16, f16, dot_f16_avx512, dot_f16_avx2, has_f16c(), dot
);
narrow_kernel!(
    /// Σ (qᵢ − rᵢ)² over an `f32` query and a row of halves.
    l2_squared_f16, f16, l2_squared_f16_avx512, l2_squared_f16_avx2, has_f16c(), l2_squared
);
narrow_kernel!(
    /// Σ qᵢ·rᵢ over an `f32` query and a row of bytes, each widened to `f32` as it is
    /// read. Callers guarantee equal lengths.
    dot_u8, u8, dot_u8_avx512, dot_u8_avx2, true, dot
);
narrow_kernel!(
    /// Σ (qᵢ − rᵢ)² over an `f32` query and a row of bytes.
    l2_squared_u8, u8, l2_squared_u8_avx512, l2_squared_u8_avx2, true, l2_squared
);

/// `f` summed over blocks of `q` and `r`, each block of `r` widened to `f32` on the
/// stack first: the portable form of every kernel over a narrower row (and L1's
/// only form there).
#[inline]
pub fn widened<E: Element>(q: &[f32], r: &[E], f: PairFn) -> f32 {
    const BLOCK: usize = 64;
    let mut buf = [0.0f32; BLOCK];
    q.chunks(BLOCK)
        .zip(r.chunks(BLOCK))
        .map(|(qb, rb)| {
            let wide = &mut buf[..rb.len()];
            for (w, &x) in wide.iter_mut().zip(rb) {
                *w = x.to_f32();
            }
            f(qb, wide)
        })
        .sum()
}

#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn has_f16c() -> bool {
    std::arch::is_x86_feature_detected!("f16c")
}

/// Σ xᵢ, read as fast as the machine can: the memory-bandwidth baseline that exact
/// scans are measured against in `cargo xtask bench distance`.
pub fn sum(values: &[f32]) -> f32 {
    match level() {
        #[cfg(target_arch = "x86_64")]
        Level::Avx512 => x86::sum_avx512(values),
        #[cfg(target_arch = "x86_64")]
        Level::Avx2 => x86::sum_avx2(values),
        _ => sum_portable(values),
    }
}

/// The instruction set the kernels run with on this CPU.
pub fn isa() -> &'static str {
    match level() {
        Level::Avx512 => "avx512f",
        Level::Avx2 => "avx2+fma",
        Level::Portable | Level::Unknown => "portable",
    }
}

/// A pairwise kernel over two equal-length slices.
pub type PairFn = fn(&[f32], &[f32]) -> f32;

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
    use std::arch::x86_64::*;

    use braid_core::f16;

    use super::{PairFn, l1_body, sum_body};

    /// Compiles a body for one instruction set behind a safe wrapper that is called
    /// only after the CPU was checked.
    macro_rules! kernel {
        ($name:ident, $inner:ident, $features:literal, |$a:ident, $b:ident| $body:expr) => {
            #[target_feature(enable = $features)]
            unsafe fn $inner($a: &[f32], $b: &[f32]) -> f32 {
                $body
            }

            #[inline]
            pub(super) fn $name(a: &[f32], b: &[f32]) -> f32 {
                // SAFETY: only called when `level()` (or `paths`) detected the features this
                // function is compiled for on this CPU.
                unsafe { $inner(a, b) }
            }
        };
    }

    /// Σ f(aᵢ, bᵢ) with four 16-lane accumulators over 64 values a step, one
    /// accumulator over 16, and a masked load for the tail. `$step(x, y, acc)` folds one
    /// register of each input into `acc` with a fused multiply-add.
    macro_rules! avx512_sum {
        ($a:ident, $b:ident, $step:expr) => {{
            let n = $a.len().min($b.len());
            let (pa, pb) = ($a.as_ptr(), $b.as_ptr());
            let step = $step;
            // SAFETY: every offset read is below `n`, inside both slices; the tail's
            // masked load touches only lanes below `n`.
            unsafe {
                let mut s = [_mm512_setzero_ps(); 4];
                let mut i = 0;
                while i + 64 <= n {
                    for (k, acc) in s.iter_mut().enumerate() {
                        *acc = step(
                            _mm512_loadu_ps(pa.add(i + 16 * k)),
                            _mm512_loadu_ps(pb.add(i + 16 * k)),
                            *acc,
                        );
                    }
                    i += 64;
                }
                while i + 16 <= n {
                    s[0] = step(_mm512_loadu_ps(pa.add(i)), _mm512_loadu_ps(pb.add(i)), s[0]);
                    i += 16;
                }
                if i < n {
                    let mask: __mmask16 = ((1u32 << (n - i)) - 1) as __mmask16;
                    s[1] = step(
                        _mm512_maskz_loadu_ps(mask, pa.add(i)),
                        _mm512_maskz_loadu_ps(mask, pb.add(i)),
                        s[1],
                    );
                }
                _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s[0], s[1]), _mm512_add_ps(s[2], s[3])))
            }
        }};
    }

    /// The AVX2 form of `avx512_sum`: 8 lanes, and a scalar tail with `$scalar`.
    macro_rules! avx2_sum {
        ($a:ident, $b:ident, $step:expr, $scalar:expr) => {{
            let n = $a.len().min($b.len());
            let (pa, pb) = ($a.as_ptr(), $b.as_ptr());
            let step = $step;
            // SAFETY: every offset read is below `n`, inside both slices.
            let (mut total, mut i) = unsafe {
                let mut s = [_mm256_setzero_ps(); 4];
                let mut i = 0;
                while i + 32 <= n {
                    for (k, acc) in s.iter_mut().enumerate() {
                        *acc = step(
                            _mm256_loadu_ps(pa.add(i + 8 * k)),
                            _mm256_loadu_ps(pb.add(i + 8 * k)),
                            *acc,
                        );
                    }
                    i += 32;
                }
                while i + 8 <= n {
                    s[0] = step(_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i)), s[0]);
                    i += 8;
                }
                let sum = _mm256_add_ps(_mm256_add_ps(s[0], s[1]), _mm256_add_ps(s[2], s[3]));
                let half = _mm_add_ps(_mm256_castps256_ps128(sum), _mm256_extractf128_ps::<1>(sum));
                let pair = _mm_add_ps(half, _mm_movehl_ps(half, half));
                let one = _mm_add_ss(pair, _mm_shuffle_ps::<0b01>(pair, pair));
                (_mm_cvtss_f32(one), i)
            };
            let scalar = $scalar;
            while i < n {
                total += scalar($a[i], $b[i]);
                i += 1;
            }
            total
        }};
    }

    kernel!(dot_avx512, dot_avx512_inner, "avx512f,fma", |a, b| avx512_sum!(a, b, |x, y, acc| {
        _mm512_fmadd_ps(x, y, acc)
    }));
    kernel!(l2_squared_avx512, l2_squared_avx512_inner, "avx512f,fma", |a, b| avx512_sum!(
        a,
        b,
        |x, y, acc| {
            let d = _mm512_sub_ps(x, y);
            _mm512_fmadd_ps(d, d, acc)
        }
    ));
    kernel!(dot_avx2, dot_avx2_inner, "avx2,fma", |a, b| avx2_sum!(
        a,
        b,
        |x, y, acc| _mm256_fmadd_ps(x, y, acc),
        |x: f32, y: f32| x * y
    ));
    kernel!(l2_squared_avx2, l2_squared_avx2_inner, "avx2,fma", |a, b| avx2_sum!(
        a,
        b,
        |x, y, acc| {
            let d = _mm256_sub_ps(x, y);
            _mm256_fmadd_ps(d, d, acc)
        },
        |x: f32, y: f32| (x - y) * (x - y)
    ));
    /// Σ step(qᵢ, rᵢ) over an `f32` query and a narrower row, `$load(ptr)` widening
    /// `$lanes` row values to one register; four accumulators over `4·$lanes` values a
    /// step, one over `$lanes`, and a scalar tail.
    macro_rules! widen_sum {
        ($q:ident, $r:ident, $lanes:literal, $loadq:ident, |$p:ident| $load:expr, $step:expr, $reduce:expr, $zero:expr, $scalar:expr) => {{
            let n = $q.len().min($r.len());
            let (pq, pr) = ($q.as_ptr(), $r.as_ptr());
            let (step, reduce) = ($step, $reduce);
            macro_rules! load {
                ($at:expr) => {{
                    let $p = pr.add($at);
                    $load
                }};
            }
            // SAFETY: every offset read is below `n`, inside both slices (the loads
            // read `$lanes` values of the row from the offset given).
            let (mut total, mut i) = unsafe {
                let mut s = [$zero; 4];
                let mut i = 0;
                while i + 4 * $lanes <= n {
                    for (k, acc) in s.iter_mut().enumerate() {
                        *acc = step($loadq(pq.add(i + $lanes * k)), load!(i + $lanes * k), *acc);
                    }
                    i += 4 * $lanes;
                }
                while i + $lanes <= n {
                    s[0] = step($loadq(pq.add(i)), load!(i), s[0]);
                    i += $lanes;
                }
                (reduce(s), i)
            };
            let scalar = $scalar;
            while i < n {
                total += scalar($q[i], braid_core::Element::to_f32($r[i]));
                i += 1;
            }
            total
        }};
    }

    /// Compiles one widening kernel for an instruction set behind a safe wrapper.
    macro_rules! widen_kernel {
        ($name:ident, $inner:ident, $features:literal, $elem:ty, |$q:ident, $r:ident| $body:expr) => {
            #[target_feature(enable = $features)]
            unsafe fn $inner($q: &[f32], $r: &[$elem]) -> f32 {
                $body
            }

            #[inline]
            pub(super) fn $name(q: &[f32], r: &[$elem]) -> f32 {
                // SAFETY: only called when `level()` detected the features this
                // function is compiled for on this CPU.
                unsafe { $inner(q, r) }
            }
        };
    }

    // The parts of the widening kernels, as closures written inside each kernel so that
    // they compile with its instruction set.
    macro_rules! reduce512 {
        () => {
            |s: [__m512; 4]| {
                _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s[0], s[1]), _mm512_add_ps(s[2], s[3])))
            }
        };
    }
    macro_rules! reduce256 {
        () => {
            |s: [__m256; 4]| {
                let sum = _mm256_add_ps(_mm256_add_ps(s[0], s[1]), _mm256_add_ps(s[2], s[3]));
                let half = _mm_add_ps(_mm256_castps256_ps128(sum), _mm256_extractf128_ps::<1>(sum));
                let pair = _mm_add_ps(half, _mm_movehl_ps(half, half));
                _mm_cvtss_f32(_mm_add_ss(pair, _mm_shuffle_ps::<0b01>(pair, pair)))
            }
        };
    }
    macro_rules! dot_step {
        ($fmadd:ident) => {
            |x, y, acc| $fmadd(x, y, acc)
        };
    }
    macro_rules! l2_step {
        ($sub:ident, $fmadd:ident) => {
            |x, y, acc| {
                let d = $sub(x, y);
                $fmadd(d, d, acc)
            }
        };
    }
    fn mul(x: f32, y: f32) -> f32 {
        x * y
    }
    fn sq(x: f32, y: f32) -> f32 {
        (x - y) * (x - y)
    }

    widen_kernel!(dot_f16_avx512, dot_f16_avx512_inner, "avx512f,fma", f16, |q, r| widen_sum!(
        q,
        r,
        16,
        _mm512_loadu_ps,
        |p| _mm512_cvtph_ps(_mm256_loadu_si256(p.cast::<__m256i>())),
        dot_step!(_mm512_fmadd_ps),
        reduce512!(),
        _mm512_setzero_ps(),
        mul
    ));
    widen_kernel!(l2_squared_f16_avx512, l2_squared_f16_avx512_inner, "avx512f,fma", f16, |q, r| widen_sum!(
        q,
        r,
        16,
        _mm512_loadu_ps,
        |p| _mm512_cvtph_ps(_mm256_loadu_si256(p.cast::<__m256i>())),
        l2_step!(_mm512_sub_ps, _mm512_fmadd_ps),
        reduce512!(),
        _mm512_setzero_ps(),
        sq
    ));
    widen_kernel!(dot_f16_avx2, dot_f16_avx2_inner, "avx2,fma,f16c", f16, |q, r| widen_sum!(
        q,
        r,
        8,
        _mm256_loadu_ps,
        |p| _mm256_cvtph_ps(_mm_loadu_si128(p.cast::<__m128i>())),
        dot_step!(_mm256_fmadd_ps),
        reduce256!(),
        _mm256_setzero_ps(),
        mul
    ));
    widen_kernel!(l2_squared_f16_avx2, l2_squared_f16_avx2_inner, "avx2,fma,f16c", f16, |q, r| widen_sum!(
        q,
        r,
        8,
        _mm256_loadu_ps,
        |p| _mm256_cvtph_ps(_mm_loadu_si128(p.cast::<__m128i>())),
        l2_step!(_mm256_sub_ps, _mm256_fmadd_ps),
        reduce256!(),
        _mm256_setzero_ps(),
        sq
    ));
    widen_kernel!(dot_u8_avx512, dot_u8_avx512_inner, "avx512f,fma", u8, |q, r| widen_sum!(
        q,
        r,
        16,
        _mm512_loadu_ps,
        |p| _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128(p.cast::<__m128i>()))),
        dot_step!(_mm512_fmadd_ps),
        reduce512!(),
        _mm512_setzero_ps(),
        mul
    ));
    widen_kernel!(l2_squared_u8_avx512, l2_squared_u8_avx512_inner, "avx512f,fma", u8, |q, r| widen_sum!(
        q,
        r,
        16,
        _mm512_loadu_ps,
        |p| _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128(p.cast::<__m128i>()))),
        l2_step!(_mm512_sub_ps, _mm512_fmadd_ps),
        reduce512!(),
        _mm512_setzero_ps(),
        sq
    ));
    widen_kernel!(dot_u8_avx2, dot_u8_avx2_inner, "avx2,fma", u8, |q, r| widen_sum!(
        q,
        r,
        8,
        _mm256_loadu_ps,
        |p| _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64(p.cast::<__m128i>()))),
        dot_step!(_mm256_fmadd_ps),
        reduce256!(),
        _mm256_setzero_ps(),
        mul
    ));
    widen_kernel!(l2_squared_u8_avx2, l2_squared_u8_avx2_inner, "avx2,fma", u8, |q, r| widen_sum!(
        q,
        r,
        8,
        _mm256_loadu_ps,
        |p| _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64(p.cast::<__m128i>()))),
        l2_step!(_mm256_sub_ps, _mm256_fmadd_ps),
        reduce256!(),
        _mm256_setzero_ps(),
        sq
    ));

    kernel!(l1_avx512, l1_avx512_inner, "avx512f", |a, b| l1_body(a, b));
    kernel!(l1_avx2, l1_avx2_inner, "avx2,fma", |a, b| l1_body(a, b));

    #[target_feature(enable = "avx512f")]
    unsafe fn sum_avx512_inner(values: &[f32]) -> f32 {
        sum_body(values)
    }

    #[target_feature(enable = "avx2,fma")]
    unsafe fn sum_avx2_inner(values: &[f32]) -> f32 {
        sum_body(values)
    }

    pub(super) fn sum_avx512(values: &[f32]) -> f32 {
        // SAFETY: only called when `level()` detected `avx512f` on this CPU.
        unsafe { sum_avx512_inner(values) }
    }

    pub(super) fn sum_avx2(values: &[f32]) -> f32 {
        // SAFETY: only called when `level()` detected `avx2` and `fma` on this CPU.
        unsafe { sum_avx2_inner(values) }
    }

    /// Every `[dot, squared L2, L1]` this CPU can run, named by instruction set.
    pub(crate) fn paths() -> Vec<(&'static str, [PairFn; 3])> {
        let mut paths: Vec<(&'static str, [PairFn; 3])> = Vec::new();
        if std::arch::is_x86_feature_detected!("avx512f") && std::arch::is_x86_feature_detected!("fma") {
            paths.push(("avx512f", [dot_avx512, l2_squared_avx512, l1_avx512]));
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            paths.push(("avx2+fma", [dot_avx2, l2_squared_avx2, l1_avx2]));
        }
        paths
    }
}

/// A kernel between an `f32` query and a row of halves.
pub type HalfFn = fn(&[f32], &[f16]) -> f32;
/// A kernel between an `f32` query and a row of bytes.
pub type ByteFn = fn(&[f32], &[u8]) -> f32;

/// Every implementation of the narrow-row kernels this CPU can run, named by
/// instruction set, as `([dot, squared L2] over halves, [dot, squared L2] over bytes)`
/// (the portable entry widens blocks on the stack); tests compare each with the
/// reference.
#[doc(hidden)]
pub fn narrow_paths() -> Vec<(&'static str, [HalfFn; 2], [ByteFn; 2])> {
    let mut paths: Vec<(&'static str, [HalfFn; 2], [ByteFn; 2])> = vec![(
        "portable",
        [|q, r| widened(q, r, dot), |q, r| widened(q, r, l2_squared)],
        [|q, r| widened(q, r, dot), |q, r| widened(q, r, l2_squared)],
    )];
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") && std::arch::is_x86_feature_detected!("fma") {
            paths.push((
                "avx512f",
                [x86::dot_f16_avx512, x86::l2_squared_f16_avx512],
                [x86::dot_u8_avx512, x86::l2_squared_u8_avx512],
            ));
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            let halves: [HalfFn; 2] = if has_f16c() {
                [x86::dot_f16_avx2, x86::l2_squared_f16_avx2]
            } else {
                [|q, r| widened(q, r, dot), |q, r| widened(q, r, l2_squared)]
            };
            paths.push(("avx2+fma", halves, [x86::dot_u8_avx2, x86::l2_squared_u8_avx2]));
        }
    }
    paths
}

/// Every implementation this CPU can run, named by instruction set, as
/// `[dot, squared L2, L1]` (the portable entry is `simsimd`'s dot and squared L2 with
/// the portable L1 loop); tests compare each with the reference.
#[doc(hidden)]
pub fn paths() -> Vec<(&'static str, [PairFn; 3])> {
    let mut paths: Vec<(&'static str, [PairFn; 3])> =
        vec![("portable", [simsimd_dot, simsimd_l2_squared, l1_portable])];
    #[cfg(target_arch = "x86_64")]
    paths.extend(x86::paths());
    paths
}

/// Asks the memory system for the cache line holding `slice[index]`, ahead of a read.
/// A hint: it never faults and changes nothing; out-of-range indexes are ignored.
#[inline(always)]
pub fn prefetch<T>(slice: &[T], index: usize) {
    #[cfg(target_arch = "x86_64")]
    if index < slice.len() {
        // SAFETY: `_mm_prefetch` is a hint that never faults, the address is inside
        // `slice` (checked above), and SSE is part of the x86_64 baseline.
        unsafe {
            std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                slice.as_ptr().add(index).cast(),
            );
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (slice, index);
}

/// For one part of product codes: for each of the 256 centroids `c`, adds to `out[c]`
/// `(xᵢ − cᵢ)²` (when `squared`) or `−xᵢ·cᵢ` over the part's components `x`, the
/// centroids given as one row of 256 per component (`centroids[i · 256 + c]`). Compiled
/// for AVX-512 or AVX2 where the CPU has them (the loop over 256 centroids is what
/// vectorises), else the baseline's SSE.
#[inline]
pub fn part_scores(centroids: &[f32], x: &[f32], squared: bool, out: &mut [f32; 256]) {
    #[cfg(target_arch = "x86_64")]
    match level() {
        // SAFETY: the CPU has the features (detected by `level`).
        Level::Avx512 => return unsafe { part_scores_avx512(centroids, x, squared, out) },
        // SAFETY: as above.
        Level::Avx2 => return unsafe { part_scores_avx2(centroids, x, squared, out) },
        Level::Portable | Level::Unknown => {}
    }
    part_scores_portable(centroids, x, squared, out)
}

/// [`part_scores`] as a plain loop, the reference the dispatched forms are tested against.
#[inline(always)]
pub fn part_scores_portable(centroids: &[f32], x: &[f32], squared: bool, out: &mut [f32; 256]) {
    for (i, &v) in x.iter().enumerate() {
        let row: &[f32; 256] = centroids[i * 256..(i + 1) * 256].try_into().expect("256 per row");
        if squared {
            for (acc, &c) in out.iter_mut().zip(row) {
                let e = v - c;
                *acc += e * e;
            }
        } else {
            for (acc, &c) in out.iter_mut().zip(row) {
                *acc -= v * c;
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
unsafe fn part_scores_avx512(centroids: &[f32], x: &[f32], squared: bool, out: &mut [f32; 256]) {
    part_scores_portable(centroids, x, squared, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn part_scores_avx2(centroids: &[f32], x: &[f32], squared: bool, out: &mut [f32; 256]) {
    part_scores_portable(centroids, x, squared, out)
}

/// `Σⱼ 2ʲ·popcount(planeⱼ ∧ bits)` over a binary code's words and a query's eight bit
/// planes per word (side by side): the kernel of binary codes. Uses POPCNT where the
/// CPU has it (the x86_64 baseline lacks it, and `count_ones` is then a dozen bit
/// operations per word).
#[inline]
pub fn plane_sum(planes: &[u64], bits: &[u64]) -> i32 {
    #[cfg(target_arch = "x86_64")]
    if has_popcnt() {
        // SAFETY: the CPU has POPCNT (checked just above).
        return unsafe { plane_sum_popcnt(planes, bits) };
    }
    plane_sum_portable(planes, bits)
}

/// [`plane_sum`] as a plain loop, the reference the dispatched form is tested against.
#[inline(always)]
pub fn plane_sum_portable(planes: &[u64], bits: &[u64]) -> i32 {
    let mut weighted = 0i32;
    for (w, &x) in bits.iter().enumerate() {
        for (j, &p) in planes[w * 8..w * 8 + 8].iter().enumerate() {
            weighted += ((p & x).count_ones() as i32) << j;
        }
    }
    weighted
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "popcnt")]
unsafe fn plane_sum_popcnt(planes: &[u64], bits: &[u64]) -> i32 {
    plane_sum_portable(planes, bits)
}

#[cfg(target_arch = "x86_64")]
static POPCNT: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

/// Whether the CPU has POPCNT, detected once (racing threads store the same value).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn has_popcnt() -> bool {
    match POPCNT.load(std::sync::atomic::Ordering::Relaxed) {
        0 => {
            let has = std::arch::is_x86_feature_detected!("popcnt");
            POPCNT.store(if has { 2 } else { 1 }, std::sync::atomic::Ordering::Relaxed);
            has
        }
        seen => seen == 2,
    }
}

/// The `i8` code kernels of [`crate::Codes`], beside the `f32` ones.
#[cfg(target_arch = "x86_64")]
pub(crate) mod i8x86 {
    use std::arch::x86_64::*;

    use crate::codes::dot_i8_portable;

    /// Σ aᵢ·bᵢ over `$w` codes a register: each input sign-extended to 16 bits, pairs
    /// multiplied and added into 32-bit lanes, two accumulators over `2·$w` codes a
    /// step, the rest by the plain loop.
    macro_rules! widened_dot {
        ($a:ident, $b:ident, $w:expr, $zero:expr, $load:expr, $madd:expr, $add:expr, $reduce:expr) => {{
            let n = $a.len().min($b.len());
            let (pa, pb) = ($a.as_ptr(), $b.as_ptr());
            let mut i = 0;
            // SAFETY: every load reads `$w` bytes from `i` with `i + $w ≤ n`, inside both
            // slices.
            let body = unsafe {
                let (load, madd, add, reduce) = ($load, $madd, $add, $reduce);
                let (mut s0, mut s1) = ($zero, $zero);
                while i + 2 * $w <= n {
                    s0 = add(s0, madd(load(pa.add(i)), load(pb.add(i))));
                    s1 = add(s1, madd(load(pa.add(i + $w)), load(pb.add(i + $w))));
                    i += 2 * $w;
                }
                if i + $w <= n {
                    s0 = add(s0, madd(load(pa.add(i)), load(pb.add(i))));
                    i += $w;
                }
                reduce(add(s0, s1))
            };
            body + dot_i8_portable(&$a[i..n], &$b[i..n])
        }};
    }

    /// 32 codes per 512-bit register.
    #[target_feature(enable = "avx512bw")]
    unsafe fn dot_i8_avx512_inner(a: &[i8], b: &[i8]) -> i32 {
        widened_dot!(
            a,
            b,
            32,
            _mm512_setzero_si512(),
            |p: *const i8| _mm512_cvtepi8_epi16(_mm256_loadu_si256(p.cast())),
            |x, y| _mm512_madd_epi16(x, y),
            |x, y| _mm512_add_epi32(x, y),
            |s| _mm512_reduce_add_epi32(s)
        )
    }

    /// 16 codes per 256-bit register.
    #[target_feature(enable = "avx2")]
    unsafe fn dot_i8_avx2_inner(a: &[i8], b: &[i8]) -> i32 {
        widened_dot!(
            a,
            b,
            16,
            _mm256_setzero_si256(),
            |p: *const i8| _mm256_cvtepi8_epi16(_mm_loadu_si128(p.cast())),
            |x, y| _mm256_madd_epi16(x, y),
            |x, y| _mm256_add_epi32(x, y),
            |s: __m256i| {
                let half = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256::<1>(s));
                let pair = _mm_add_epi32(half, _mm_unpackhi_epi64(half, half));
                _mm_cvtsi128_si32(_mm_add_epi32(pair, _mm_shuffle_epi32::<0b01>(pair)))
            }
        )
    }

    /// Σ aᵢ·bᵢ for unsigned `a` and signed `b`: `vpdpbusd` multiplies 64 byte pairs
    /// and adds them in fours into 16 lanes, one instruction per 64 components.
    #[target_feature(enable = "avx512bw,avx512vnni")]
    unsafe fn dot_u8_i8_vnni_inner(a: &[u8], b: &[i8]) -> i32 {
        let n = a.len().min(b.len());
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut i = 0;
        // SAFETY: every 64-byte load starts at i with i + 64 ≤ n, inside both slices.
        let body = unsafe {
            let mut s0 = _mm512_setzero_si512();
            let mut s1 = _mm512_setzero_si512();
            while i + 128 <= n {
                s0 = _mm512_dpbusd_epi32(
                    s0,
                    _mm512_loadu_si512(pa.add(i).cast()),
                    _mm512_loadu_si512(pb.add(i).cast()),
                );
                s1 = _mm512_dpbusd_epi32(
                    s1,
                    _mm512_loadu_si512(pa.add(i + 64).cast()),
                    _mm512_loadu_si512(pb.add(i + 64).cast()),
                );
                i += 128;
            }
            if i + 64 <= n {
                s0 = _mm512_dpbusd_epi32(
                    s0,
                    _mm512_loadu_si512(pa.add(i).cast()),
                    _mm512_loadu_si512(pb.add(i).cast()),
                );
                i += 64;
            }
            _mm512_reduce_add_epi32(_mm512_add_epi32(s0, s1))
        };
        body + a[i..n].iter().zip(&b[i..n]).map(|(&x, &y)| x as i32 * y as i32).sum::<i32>()
    }

    pub(crate) fn dot_u8_i8_vnni(a: &[u8], b: &[i8]) -> i32 {
        // SAFETY: only called after `avx512bw` and `avx512vnni` were detected.
        unsafe { dot_u8_i8_vnni_inner(a, b) }
    }

    pub(crate) fn dot_i8_avx512(a: &[i8], b: &[i8]) -> i32 {
        // SAFETY: only called after `avx512bw` was detected on this CPU.
        unsafe { dot_i8_avx512_inner(a, b) }
    }

    pub(crate) fn dot_i8_avx2(a: &[i8], b: &[i8]) -> i32 {
        // SAFETY: only called after `avx2` was detected on this CPU.
        unsafe { dot_i8_avx2_inner(a, b) }
    }
}
