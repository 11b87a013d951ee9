//! One-byte codes of stored vectors, for ranking candidates before the exact score.
//!
//! Vectors are coded as their residual from a centre `μ`: `r = x − μ`, scaled by its
//! own largest absolute component to −127…127 and rounded, `r ≈ s · c` with
//! `s = max|rᵢ| / 127`. Beside the components a code keeps the scale, one exact term
//! (`μ·r` for dot products, `|r|²` for Euclid) and the sum of its components. With
//! the query coded the same way (`q − μ`), a distance is an integer dot product
//! (exact, no overflow below 2¹⁷ components) times two scales plus exact terms:
//!
//! - dot: `q·x = q·μ + μ·r + (q − μ)·r`;
//! - Euclid: `|q − x|² = |q − μ|² + |r|² − 2·(q − μ)·r`.
//!
//! One candidate costs a quarter of the memory traffic of its `f32` row. Codes only
//! *rank*: whoever uses them re-scores the best candidates with the original vectors
//! (`braid-hnsw`'s coded searches do), so the scores users see are always exact.
//!
//! The centre is the mean of the first [`CENTRE_SAMPLE`] non-zero vectors in the order
//! they were pushed; until that many exist it is zero, and when the last of them
//! arrives every code so far is re-coded. It depends only on the vectors and their
//! order, so codes rebuilt from the same rows (a reopened collection) are identical to
//! codes built one push at a time. Centring spends the 255 levels on what tells
//! vectors apart rather than on what they share (embeddings share a mean direction).
//!
//! **Binary codes** ([`CodeKind::Binary`], Qdrant's binary quantization) keep one bit
//! per component, the sign of `r`, and `s = |r|² / |r|₁` beside it: with
//! `r̂ = s · sign(r)`, `r̂·r = |r|²`, so `(q − μ)·r̂` estimates `(q − μ)·r` without
//! the bias of a plain sign vector (the estimator of RaBitQ, Gao & Long 2024, without
//! its random rotation). The query stays at eight bits (asymmetric): its code's bit
//! planes against the vector's sign bits give `Σ sign(rᵢ)·cᵢ` in eight popcounts per
//! 64 components. One candidate costs a thirty-second of its `f32` row's traffic;
//! ranking is coarser than the one-byte codes', so searches re-score a larger pool.
//!
//! **Two-bit codes** ([`CodeKind::BinaryTwoBits`], Qdrant's `encoding: two_bits`) keep
//! each residual component as one of four levels `uᵢ ∈ {0, 1, 2, 3}`, read as
//! `r̂ᵢ = s · (2uᵢ − 3)`: uniform steps of `Δ = 1.25 · mean|rᵢ|` (the uniform four-level
//! quantiser of a Gaussian has `Δ ≈ σ`, and `mean|r| ≈ 0.8 σ`), zero a threshold, and
//! `s = |r|² / Σ (2uᵢ − 3)·rᵢ` so that again `r̂·r = |r|²`. The levels are two bit
//! planes (low, high), and `Σ uᵢ·cᵢ` is the one-bit kernel run on each plane:
//! sixteen popcounts per 64 components for twice the bits, a sixteenth of the row.
//!
//! **Product codes** ([`CodeKind::Product`], Qdrant's product quantization) keep one
//! byte per group of components: the index of the nearest of 256 centroids learnt for
//! that group from a sample of residuals (`crate::product`). Learning needs a larger
//! sample than the centre ([`PRODUCT_SAMPLE`]): until it is complete, product codes
//! are one-byte codes as above; when it completes, the codebook is learnt and every
//! vector so far re-coded. A query's distances to every centroid make a table, and a
//! candidate costs one table read per byte of code.
//!
//! Supported metrics: Cosine and Dot (by dot product) and Euclid. Manhattan has no
//! cheap form over per-vector scales and is not coded, nor are vectors under
//! [`MIN_CODED_DIM`] components ([`Codes::supports`]).

use braid_core::Metric;

use crate::RowKernel;
use crate::held::{CodesFile, Copying, Held, InFile, Source};
use crate::product::{Codebook, Compression};
use std::sync::Arc;

/// Vectors with fewer components are not coded: they span at most four cache lines
/// as floats, so codes would save little traffic, and rounding errors average out
/// only over many components.
pub const MIN_CODED_DIM: usize = 64;

/// Vectors with more components are not coded either: one-byte codes' integer dot
/// products are exact in 32 bits below 2¹⁷ components (a space holds at most 2¹⁶).
pub const MAX_CODED_DIM: usize = 1 << 16;

/// How many non-zero vectors the centre is the mean of.
pub(crate) const CENTRE_SAMPLE: usize = 1024;

/// How many non-zero vectors product codes learn their codebook from (and take their
/// centre from): 64 per centroid.
pub const PRODUCT_SAMPLE: usize = 16 * 1024;

/// The largest code magnitude.
const LEVELS: f32 = 127.0;

/// Codes to be written ([`Codes::serialized`]).
#[derive(Debug)]
pub struct Serialized<'a> {
    codes: &'a Codes,
    /// Where in its file the first byte goes ([`Serialized::at`]).
    at: usize,
}

impl Serialized<'_> {
    /// The same codes, to be written at byte `at` of their file, so that bit-plane
    /// words land on 8-byte boundaries of the file (and can be read in place from a
    /// mapping of it, [`Codes::hold_from`]). Without it they are aligned as if the
    /// file began with them, as [`Codes::to_bytes`] writes them.
    pub fn at(self, at: usize) -> Self {
        Serialized { at, ..self }
    }

    /// Writes the bytes [`Codes::to_bytes`] returns to `out` (with bit-plane words
    /// aligned for [`Serialized::at`]), a section at a time (the per-vector terms in
    /// blocks); `out`'s first error is returned.
    pub fn write_to(&self, out: &mut impl std::io::Write) -> std::io::Result<()> {
        let codes = self.codes;
        let flag = match codes.kind {
            CodeKind::Int8 => 0,
            CodeKind::Binary => BINARY_FLAG | SLOTS_FLAG,
            CodeKind::BinaryTwoBits => BINARY_FLAG | TWO_BITS_FLAG | SLOTS_FLAG,
            CodeKind::Product(_) => PRODUCT_FLAG,
        };
        let mut head = Vec::with_capacity(HEAD + 1 + codes.dim * 4);
        head.push(metric_code(codes.metric) | flag);
        head.extend_from_slice(&(codes.dim as u32).to_le_bytes());
        head.extend_from_slice(&(codes.sample as u32).to_le_bytes());
        head.extend_from_slice(&(codes.len() as u64).to_le_bytes());
        if let CodeKind::Product(compression) = codes.kind {
            head.push(compression.code());
        }
        for c in &codes.centre {
            head.extend_from_slice(&c.to_le_bytes());
        }
        if codes.is_bits() {
            // The words as they lie in memory, each vector's slot after the other,
            // from the first 8-byte boundary of the file after a count of padding bytes.
            let pad = (8 - (self.at + head.len() + 1) % 8) % 8;
            head.push(pad as u8);
            head.resize(head.len() + pad, 0);
            out.write_all(&head)?;
            let mut block = Vec::with_capacity(BLOCK * 8);
            for run in codes.bits.runs() {
                for words in run.chunks(BLOCK) {
                    block.clear();
                    words.iter().for_each(|w| block.extend_from_slice(&w.to_le_bytes()));
                    out.write_all(&block)?;
                }
            }
            return Ok(());
        }
        out.write_all(&head)?;
        let mut block = Vec::with_capacity(BLOCK * 12);
        for m in &codes.meta {
            block.extend_from_slice(&m.scale.to_le_bytes());
            block.extend_from_slice(&m.exact.to_le_bytes());
            block.extend_from_slice(&m.sum.to_le_bytes());
            if block.len() >= BLOCK * 12 {
                out.write_all(&block)?;
                block.clear();
            }
        }
        out.write_all(&block)?;
        for run in codes.codes.runs() {
            out.write_all(bytemuck::cast_slice(run))?;
        }
        if let Some(book) = &codes.book {
            block.clear();
            book.write(&mut block);
            out.write_all(&block)?;
            for run in codes.parts.runs() {
                out.write_all(run)?;
            }
        }
        Ok(())
    }
}

/// Bytes before a codes file's centre: metric and kind `u8`, dim `u32`, sample `u32`,
/// count `u64` (product codes add their ratio, counted in [`body_len`]).
const HEAD: usize = 17;

/// Vectors whose terms (or binary words) are gathered into one write.
const BLOCK: usize = 1 << 16;

/// How a codes file lays out bit-plane codes.
#[derive(Clone, Copy, PartialEq)]
enum Layout {
    /// Every vector's three terms, then every vector's planes (files written before
    /// [`SLOTS_FLAG`]; still read).
    Split,
    /// A count of padding bytes and the padding, then every vector's slot as it lies
    /// in memory (its planes' words, then its packed terms).
    Slots { pad: usize },
}

/// Bytes of a codes file after its 17-byte head, for `n` codes of `kind` and `dim`
/// components: the centre, then per vector its terms and components (product codes
/// keep no per-vector terms, and add their ratio and codebook; bit-plane codes in
/// slots keep one word of terms and are preceded by their padding). `None` on
/// overflow.
fn body_len(kind: CodeKind, layout: Layout, dim: usize, n: usize) -> Option<usize> {
    let planes = kind.bit_planes() * dim.div_ceil(64) * 8;
    let (per_code, fixed) = match (kind, layout) {
        (CodeKind::Int8, _) => (12 + dim, 0),
        (CodeKind::Binary | CodeKind::BinaryTwoBits, Layout::Split) => (12 + planes, 0),
        (CodeKind::Binary | CodeKind::BinaryTwoBits, Layout::Slots { pad }) => (planes + 8, 1 + pad),
        (CodeKind::Product(compression), _) => (compression.code_len(dim), 1 + Codebook::file_len(dim)),
    };
    dim.checked_mul(4)?.checked_add(fixed)?.checked_add(n.checked_mul(per_code)?)
}

/// Set in the first byte of [`Codes::to_bytes`] for binary codes.
const BINARY_FLAG: u8 = 0x80;

/// Set beside [`BINARY_FLAG`] when the words are laid out in slots ([`Layout::Slots`]).
const SLOTS_FLAG: u8 = 0x10;

/// Set in the first byte of [`Codes::to_bytes`] for product codes.
const PRODUCT_FLAG: u8 = 0x40;

/// Set in the first byte of [`Codes::to_bytes`], beside [`BINARY_FLAG`], for two-bit
/// codes.
const TWO_BITS_FLAG: u8 = 0x20;

/// The step of two-bit codes, in units of the residual's mean absolute component.
const TWO_BITS_STEP: f32 = 1.25;

/// A query's code: components of `q − μ`, scale, and the exact terms.
#[derive(Clone, Debug, PartialEq)]
pub struct CodedQuery {
    codes: Vec<i8>,
    /// `codes` + 128, for the unsigned × signed dot product of AVX-512 VNNI.
    shifted: Vec<u8>,
    /// For binary and two-bit codes: bit `j` of every `shifted` component, 64
    /// components per word, the eight planes of a word side by side
    /// (`planes[w · 8 + j]`).
    planes: Vec<u64>,
    /// For learnt product codes: each part's share of the distance to each centroid.
    table: Vec<f32>,
    /// Σ codes.
    sum: i32,
    scale: f32,
    /// Dot: `q·μ`. Euclid: `|q − μ|²`.
    exact: f32,
}

/// What a code keeps of each component.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum CodeKind {
    /// One byte: the residual scaled to −127…127.
    #[default]
    Int8,
    /// One bit: the residual's sign (Qdrant's binary quantization).
    Binary,
    /// Two bits: one of four uniform levels of the residual (Qdrant's binary
    /// quantization with `encoding: two_bits`).
    BinaryTwoBits,
    /// One byte per `ratio / 4` components: the nearest learnt centroid of the
    /// residual's part (Qdrant's product quantization).
    Product(Compression),
}

impl CodeKind {
    /// How many non-zero vectors the centre (and a product codebook) is taken from.
    pub fn sample(self) -> usize {
        match self {
            CodeKind::Product(_) => PRODUCT_SAMPLE,
            CodeKind::Int8 | CodeKind::Binary | CodeKind::BinaryTwoBits => CENTRE_SAMPLE,
        }
    }

    /// How many bit planes a code keeps per component: one for binary codes, two for
    /// two-bit ones, none for the kinds kept in bytes.
    pub fn bit_planes(self) -> usize {
        match self {
            CodeKind::Binary => 1,
            CodeKind::BinaryTwoBits => 2,
            CodeKind::Int8 | CodeKind::Product(_) => 0,
        }
    }

    /// Whether the codes rank coarsely enough that searches re-score a larger pool:
    /// binary (one or two bits) and product codes.
    pub fn is_coarse(self) -> bool {
        !matches!(self, CodeKind::Int8)
    }
}

/// What a code keeps beside its components.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Meta {
    /// Int8: `max|rᵢ| / 127`. Binary: `|r|² / |r|₁`. Two bits: `|r|² / Σ (2uᵢ − 3)·rᵢ`.
    scale: f32,
    /// Dot: `μ·r`. Euclid: `|r|²`.
    exact: f32,
    /// Int8: Σ codes, to undo the +128 shift of a query's codes. Binary: the number of
    /// bits set; two bits: Σ uᵢ (written to files; in memory a popcount of the code
    /// gives it: [`bits_sum`]).
    sum: i32,
}

impl Meta {
    /// Binary codes keep `scale` and `exact` in one word after the bit planes.
    fn packed(self) -> u64 {
        u64::from(self.scale.to_bits()) | u64::from(self.exact.to_bits()) << 32
    }

    /// What [`Meta::packed`] packed, with `sum` counted from the code's planes of
    /// `words` words each.
    fn unpacked(word: u64, code: &[u64], words: usize) -> Meta {
        Meta {
            scale: f32::from_bits(word as u32),
            exact: f32::from_bits((word >> 32) as u32),
            sum: bits_sum(code, words),
        }
    }
}

/// `Σ uᵢ` of a code whose bit planes (low first) are `words` words each: the number of
/// bits set in plane `p`, weighted `2ᵖ`.
fn bits_sum(code: &[u64], words: usize) -> i32 {
    code.chunks(words.max(1))
        .enumerate()
        .map(|(p, plane)| plane.iter().map(|w| w.count_ones() as i32).sum::<i32>() << p)
        .sum()
}

/// The terms of one bit-plane code's slot (its planes of `words` words for `dim`
/// components, then its packed terms), or what is wrong with it.
fn check_slot(slot: &[u64], dim: usize, words: usize) -> Result<Meta, String> {
    let (code, packed) = slot.split_at(slot.len() - 1);
    // Bits past the last component are never set by coding.
    if !dim.is_multiple_of(64) && code.chunks_exact(words).any(|plane| plane[words - 1] >> (dim % 64) != 0) {
        return Err("binary codes with bits past the last component".into());
    }
    let m = Meta::unpacked(packed[0], code, words);
    if m.scale.is_nan() || m.exact.is_nan() {
        return Err("binary codes whose terms are not numbers".into());
    }
    Ok(m)
}

/// `n` bit-plane codes laid out in slots ([`Layout::Slots`]), the padding read: held
/// where `r` can hold them (then they are not checked here: a mapped file's checksum
/// is its owner's pass), else read and every slot checked.
fn read_slots(r: &mut impl Source, kind: CodeKind, dim: usize, n: usize) -> Result<Held<u64>, String> {
    let words = dim.div_ceil(64);
    let width = words * kind.bit_planes() + 1;
    if let Some((file, start)) = r.hold::<u64>(n * width * 8)? {
        return Ok(Held::in_file(file, start, n * width));
    }
    let mut bits: Vec<u64> = Vec::new();
    braid_core::memory::reserve_huge(&mut bits, n * width);
    bits.resize(n * width, 0);
    r.read_exact(bytemuck::cast_slice_mut(&mut bits)).map_err(|e| format!("codes cut short: {e}"))?;
    for slot in bits.chunks_exact_mut(width) {
        // Stored little-endian: a no-op where the target is.
        slot.iter_mut().for_each(|w| *w = u64::from_le(*w));
        check_slot(slot, dim, words)?;
    }
    Ok(Held::from(bits))
}

/// What is kept until the centre is known, to re-code what came before it.
#[derive(Clone, Debug, Default, PartialEq)]
struct Sampling {
    /// Σ of the non-zero vectors so far, in push order.
    total: Vec<f64>,
    /// Those vectors, and their offsets.
    vectors: Vec<f32>,
    offsets: Vec<u32>,
    /// Offsets of the all-zero vectors so far.
    zeros: Vec<u32>,
}

/// The codes of a growing list of vectors of one dimension, under one metric.
#[derive(Clone, Debug, PartialEq)]
pub struct Codes {
    kind: CodeKind,
    metric: Metric,
    dim: usize,
    sample: usize,
    /// Int8: `dim` components per vector (those read back from a mapped codes file
    /// held in it, [`Codes::hold_from`]).
    codes: Held<i8>,
    /// Binary and two-bit: per vector `words` 64-bit words per bit plane (one plane of
    /// signs; two of levels, low then high), then one word of its terms
    /// ([`Meta::packed`]): one read per candidate, and 8 bytes of terms where a
    /// separate [`Meta`] took 12. Those read back from a mapped codes file may be
    /// held in it.
    bits: Held<u64>,
    /// 64-bit words per bit plane: `dim / 64` rounded up.
    words: usize,
    /// Int8, and product codes until their codebook is learnt: per vector.
    meta: Vec<Meta>,
    /// Product: the learnt codebook (`None` until the sample is complete), and its
    /// `parts` bytes of code per vector.
    book: Option<Codebook>,
    parts: Held<u8>,
    /// `μ`; zeros until the sample is complete.
    centre: Vec<f32>,
    /// `None` once the centre is set.
    sampling: Option<Sampling>,
    /// Scratch for one residual.
    residual: Vec<f32>,
}

fn metric_code(metric: Metric) -> u8 {
    match metric {
        Metric::Cosine => 0,
        Metric::Dot => 1,
        Metric::Euclid => 2,
        Metric::Manhattan => 3,
    }
}

fn metric_from_code(code: u8) -> Result<Metric, String> {
    Ok(match code {
        0 => Metric::Cosine,
        1 => Metric::Dot,
        2 => Metric::Euclid,
        3 => Metric::Manhattan,
        other => return Err(format!("unknown metric {other}")),
    })
}

/// Quantises `v` into `out` (same length); returns the scale and the code sum.
fn quantise(v: &[f32], out: &mut [i8]) -> (f32, i32) {
    let max = v.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    if max == 0.0 || !max.is_finite() {
        out.fill(0);
        return (0.0, 0);
    }
    let inv = LEVELS / max;
    for (o, x) in out.iter_mut().zip(v) {
        // In range by construction: |x| · 127 / max ≤ 127.
        *o = (x * inv).round().clamp(-LEVELS, LEVELS) as i8;
    }
    (max / LEVELS, out.iter().map(|&c| c as i32).sum())
}

/// The code of `v` against `centre` into `out`, using `residual` as scratch.
fn code_into(metric: Metric, centre: &[f32], v: &[f32], residual: &mut [f32], out: &mut [i8]) -> Meta {
    for ((r, &x), &m) in residual.iter_mut().zip(v).zip(centre) {
        *r = x - m;
    }
    let (scale, sum) = quantise(residual, out);
    let exact = match metric {
        Metric::Euclid => crate::simd::dot(residual, residual),
        _ => crate::simd::dot(centre, residual),
    };
    Meta { scale, exact, sum }
}

/// The binary code of `v` against `centre` into `out` (`dim.div_ceil(64)` words),
/// using `residual` as scratch.
fn bits_into(metric: Metric, centre: &[f32], v: &[f32], residual: &mut [f32], out: &mut [u64]) -> Meta {
    for ((r, &x), &m) in residual.iter_mut().zip(v).zip(centre) {
        *r = x - m;
    }
    out.fill(0);
    let mut l1 = 0.0f32;
    for (i, &r) in residual.iter().enumerate() {
        l1 += r.abs();
        if r > 0.0 {
            out[i / 64] |= 1 << (i % 64);
        }
    }
    let l2 = crate::simd::dot(residual, residual);
    let scale = if l1 > 0.0 && l1.is_finite() { l2 / l1 } else { 0.0 };
    let exact = match metric {
        Metric::Euclid => l2,
        _ => crate::simd::dot(centre, residual),
    };
    Meta { scale, exact, sum: bits_sum(out, out.len()) }
}

/// The two-bit code of `v` against `centre` into `out` (two planes of `words` words,
/// low then high), using `residual` as scratch.
fn two_bits_into(
    metric: Metric,
    centre: &[f32],
    v: &[f32],
    residual: &mut [f32],
    out: &mut [u64],
    words: usize,
) -> Meta {
    for ((r, &x), &m) in residual.iter_mut().zip(v).zip(centre) {
        *r = x - m;
    }
    out.fill(0);
    let l1: f32 = residual.iter().map(|r| r.abs()).sum();
    let step = TWO_BITS_STEP * l1 / residual.len().max(1) as f32;
    let (mut along, mut sum) = (0.0f32, 0i32);
    if step > 0.0 && step.is_finite() {
        let inv = 1.0 / step;
        for (i, &r) in residual.iter().enumerate() {
            // Levels −3, −1, 1, 3 (in half steps): zero is a threshold, so a level
            // always has its component's sign.
            let u = ((r * inv).floor() + 2.0).clamp(0.0, 3.0) as u64;
            out[i / 64] |= (u & 1) << (i % 64);
            out[words + i / 64] |= (u >> 1) << (i % 64);
            along += (2 * u as i32 - 3) as f32 * r;
            sum += u as i32;
        }
    }
    let l2 = crate::simd::dot(residual, residual);
    let scale = if along > 0.0 && along.is_finite() { l2 / along } else { 0.0 };
    let exact = match metric {
        Metric::Euclid => l2,
        _ => crate::simd::dot(centre, residual),
    };
    Meta { scale, exact, sum }
}

/// Adds `v` to the running sum of the centre's sample; `false` (and nothing added) for
/// an all-zero vector, which the sample skips.
fn add_to_sample(total: &mut [f64], v: &[f32]) -> bool {
    if v.iter().all(|&x| x == 0.0) {
        return false;
    }
    for (t, &x) in total.iter_mut().zip(v) {
        *t += f64::from(x);
    }
    true
}

/// The centre from the sample's sum over `count` vectors.
fn mean(total: &[f64], count: usize) -> Vec<f32> {
    total.iter().map(|t| (t / count as f64) as f32).collect()
}

impl Codes {
    /// Whether `dim`-component vectors under `metric` are coded: not under
    /// Manhattan, and from [`MIN_CODED_DIM`] to [`MAX_CODED_DIM`] components.
    pub fn supports(metric: Metric, dim: usize) -> bool {
        !matches!(metric, Metric::Manhattan) && (MIN_CODED_DIM..=MAX_CODED_DIM).contains(&dim)
    }

    /// Empty codes for `dim`-component vectors, or `None` when they are not coded
    /// ([`Codes::supports`]).
    pub fn new(metric: Metric, dim: usize) -> Option<Codes> {
        Codes::with_sample(metric, dim, CENTRE_SAMPLE)
    }

    /// Empty codes of `kind` for `dim`-component vectors, or `None` when they are not
    /// coded ([`Codes::supports`]).
    pub fn of_kind(kind: CodeKind, metric: Metric, dim: usize) -> Option<Codes> {
        Codes::of_kind_with_sample(kind, metric, dim, kind.sample())
    }

    /// [`Codes::new`] with the centre taken from the first `sample` non-zero vectors
    /// (at least 1); for tests of small collections.
    pub fn with_sample(metric: Metric, dim: usize, sample: usize) -> Option<Codes> {
        Codes::of_kind_with_sample(CodeKind::Int8, metric, dim, sample)
    }

    /// [`Codes::of_kind`] with the centre from the first `sample` non-zero vectors.
    pub fn of_kind_with_sample(kind: CodeKind, metric: Metric, dim: usize, sample: usize) -> Option<Codes> {
        Codes::supports(metric, dim).then(|| Codes {
            kind,
            metric,
            dim,
            sample: sample.max(1),
            codes: Held::default(),
            bits: Held::default(),
            words: dim.div_ceil(64),
            meta: Vec::new(),
            book: None,
            parts: Held::default(),
            centre: vec![0.0; dim],
            sampling: Some(Sampling { total: vec![0.0; dim], ..Sampling::default() }),
            residual: vec![0.0; dim],
        })
    }

    /// The codes of every vector of `source`, in offset order.
    pub fn from_source<S: braid_core::VectorSource<Elem: RowKernel> + ?Sized>(
        metric: Metric,
        source: &S,
    ) -> Option<Codes> {
        let mut codes = Codes::new(metric, source.dim())?;
        codes.extend_from(source);
        Some(codes)
    }

    /// Pushes every vector of `source`, in offset order.
    pub fn extend_from<S: braid_core::VectorSource<Elem: RowKernel> + ?Sized>(&mut self, source: &S) {
        self.reserve(source.len());
        for o in 0..source.len() {
            self.push(&S::Elem::as_query(self.metric, source.vector(braid_core::PointOffset(o as u32))));
        }
    }

    /// Room for `more` vectors without reallocating.
    pub fn reserve(&mut self, more: usize) {
        if let Some(book) = &self.book {
            return self.parts.reserve(more * book.parts());
        }
        match self.kind {
            CodeKind::Binary | CodeKind::BinaryTwoBits => {
                let width = self.width();
                return self.bits.reserve(more * width);
            }
            CodeKind::Int8 | CodeKind::Product(_) => self.codes.reserve(more * self.dim),
        }
        braid_core::memory::reserve_huge(&mut self.meta, more);
    }

    /// What each code keeps of a component.
    pub fn kind(&self) -> CodeKind {
        self.kind
    }

    /// Whether the codes are bit planes (binary or two-bit).
    fn is_bits(&self) -> bool {
        self.kind.bit_planes() > 0
    }

    /// Words per vector of bit-plane codes: its planes, then its packed terms.
    fn width(&self) -> usize {
        self.words * self.kind.bit_planes() + 1
    }

    /// Bytes the codes take in memory (components and per-vector terms).
    pub fn bytes(&self) -> usize {
        self.codes.len()
            + self.bits.len() * 8
            + self.meta.len() * std::mem::size_of::<Meta>()
            + self.parts.len()
            + self.book.as_ref().map_or(0, Codebook::bytes)
    }

    /// Appends the code of `v` (of this dimension, in stored form).
    pub fn push(&mut self, v: &[f32]) {
        debug_assert_eq!(v.len(), self.dim);
        self.reserve(1);
        let offset = self.len();
        match (&self.book, self.kind) {
            (Some(book), _) => self.parts.grow(book.parts()),
            (None, CodeKind::Binary | CodeKind::BinaryTwoBits) => self.bits.grow(self.width()),
            (None, CodeKind::Int8 | CodeKind::Product(_)) => self.codes.grow(self.dim),
        }
        if self.book.is_none() && !self.is_bits() {
            self.meta.push(Meta { scale: 0.0, exact: 0.0, sum: 0 });
        }
        self.code_at(offset, v);
        let Some(sampling) = &mut self.sampling else { return };
        if !add_to_sample(&mut sampling.total, v) {
            sampling.zeros.push(offset as u32);
            return;
        }
        sampling.vectors.extend_from_slice(v);
        sampling.offsets.push(offset as u32);
        if sampling.offsets.len() >= self.sample {
            self.set_centre();
        }
    }

    /// The sample is complete: fix the centre (and learn a product codebook) and
    /// re-code everything coded before.
    fn set_centre(&mut self) {
        let Some(sampling) = self.sampling.take() else { return };
        self.centre = mean(&sampling.total, sampling.offsets.len());
        if let CodeKind::Product(compression) = self.kind {
            let threads = std::thread::available_parallelism().map_or(1, usize::from);
            self.learn(compression, &sampling.vectors, self.len(), threads);
        }
        for (i, &offset) in sampling.offsets.iter().enumerate() {
            self.code_at(offset as usize, &sampling.vectors[i * self.dim..(i + 1) * self.dim]);
        }
        let zero = vec![0.0; self.dim];
        for &offset in &sampling.zeros {
            self.code_at(offset as usize, &zero);
        }
    }

    /// Learns the codebook from `sample` (rows, in push order) against the centre, and
    /// makes room for `n` product codes in place of the one-byte codes until now.
    fn learn(&mut self, compression: Compression, sample: &[f32], n: usize, threads: usize) {
        let mut residuals = sample.to_vec();
        for row in residuals.chunks_exact_mut(self.dim) {
            row.iter_mut().zip(&self.centre).for_each(|(x, m)| *x -= m);
        }
        let book = Codebook::train(&residuals, self.dim, compression.width(), threads);
        let mut parts = Vec::new();
        braid_core::memory::reserve_huge(&mut parts, n * book.parts());
        parts.resize(n * book.parts(), 0);
        self.parts.set(parts);
        self.book = Some(book);
        self.codes.set(Vec::new());
        self.meta = Vec::new();
    }

    /// Codes `v` into slot `offset` against the current centre.
    fn code_at(&mut self, offset: usize, v: &[f32]) {
        if let Some(book) = &self.book {
            for ((r, &x), &m) in self.residual.iter_mut().zip(v).zip(&self.centre) {
                *r = x - m;
            }
            let m = book.parts();
            return book.encode(&self.residual, self.parts.get_mut(offset * m, m));
        }
        if self.is_bits() {
            let width = self.width();
            let code = self.bits.get_mut(offset * width, width);
            let (planes, terms) = code.split_at_mut(width - 1);
            let meta = match self.kind {
                CodeKind::Binary => bits_into(self.metric, &self.centre, v, &mut self.residual, planes),
                _ => two_bits_into(self.metric, &self.centre, v, &mut self.residual, planes, self.words),
            };
            terms[0] = meta.packed();
            return;
        }
        self.meta[offset] = match self.kind {
            CodeKind::Int8 | CodeKind::Product(_) => {
                let start = offset * self.dim;
                code_into(
                    self.metric,
                    &self.centre,
                    v,
                    &mut self.residual,
                    self.codes.get_mut(start, self.dim),
                )
            }
            CodeKind::Binary | CodeKind::BinaryTwoBits => unreachable!("coded above"),
        };
    }

    /// [`Codes::extend_from`] on up to `threads` threads, with the same result: the
    /// centre is found first (the first sample of non-zero rows, summed in the same
    /// order; a product codebook is learnt from those rows, its parts split over the
    /// threads), then rows are coded in parallel chunks. Falls back to
    /// [`Codes::extend_from`] when codes exist already or the rows do not complete the
    /// sample, and for binary and two-bit codes (a level and two sums per component:
    /// cheap to code).
    pub fn extend_from_parallel<S: braid_core::VectorSource<Elem: RowKernel> + ?Sized>(
        &mut self,
        source: &S,
        threads: usize,
    ) {
        if !self.is_empty() || threads <= 1 || self.is_bits() {
            return self.extend_from(source);
        }
        let (n, dim) = (source.len(), self.dim);
        let mut total = vec![0.0f64; dim];
        let mut found = 0;
        let mut sample = Vec::new();
        for o in 0..n {
            let v = S::Elem::as_query(self.metric, source.vector(braid_core::PointOffset(o as u32)));
            if add_to_sample(&mut total, &v) {
                if matches!(self.kind, CodeKind::Product(_)) {
                    sample.extend_from_slice(&v);
                }
                found += 1;
                if found == self.sample {
                    break;
                }
            }
        }
        if found < self.sample {
            return self.extend_from(source);
        }
        self.centre = mean(&total, found);
        self.sampling = None;
        let rows = n.div_ceil(threads).max(1);
        let metric = self.metric;
        if let CodeKind::Product(compression) = self.kind {
            self.learn(compression, &sample, n, threads);
            drop(sample);
            let (centre, book) = (&self.centre, self.book.as_ref().expect("just learnt"));
            let m = book.parts();
            let parts = self.parts.heap_mut().chunks_mut(rows * m).enumerate();
            braid_core::run_parts(parts, threads, |(part, codes)| {
                let mut residual = vec![0.0; dim];
                for (i, code) in codes.chunks_mut(m).enumerate() {
                    let v = source.vector(braid_core::PointOffset((part * rows + i) as u32));
                    let v = S::Elem::as_query(metric, v);
                    for ((r, &x), &c) in residual.iter_mut().zip(v.iter()).zip(centre) {
                        *r = x - c;
                    }
                    book.encode(&residual, code);
                }
            });
            return;
        }
        let mut codes = Vec::new();
        braid_core::memory::reserve_huge(&mut codes, n * dim);
        codes.resize(n * dim, 0);
        self.codes.set(codes);
        self.meta = Vec::new();
        braid_core::memory::reserve_huge(&mut self.meta, n);
        self.meta.resize(n, Meta { scale: 0.0, exact: 0.0, sum: 0 });
        let centre = &self.centre;
        let parts = self.codes.heap_mut().chunks_mut(rows * dim).zip(self.meta.chunks_mut(rows)).enumerate();
        braid_core::run_parts(parts, threads, |(part, (codes, meta))| {
            let mut residual = vec![0.0; dim];
            for (i, (code, m)) in codes.chunks_mut(dim).zip(meta.iter_mut()).enumerate() {
                let v = source.vector(braid_core::PointOffset((part * rows + i) as u32));
                *m = code_into(metric, centre, &S::Elem::as_query(metric, v), &mut residual, code);
            }
        });
    }

    /// The codes as bytes, for a file (little-endian: metric `u8`, dim `u32`, sample
    /// `u32`, count `u64`, the centre's `f32`s, per code its scale and exact term
    /// `f32` and sum `i32`, then every component `i8`; binary and two-bit codes: the
    /// metric's bits `0x80 | 0x10` set (two bits: and `0x20`), after the centre a
    /// count of padding `u8` and that many zeros, so that what follows starts on an
    /// 8-byte boundary ([`Serialized::at`]), then every code's slot of `u64` words,
    /// its bit planes then its scale and exact term `f32`s in one word (files without
    /// `0x10` keep every code's three terms, then every code's planes); product
    /// codes: the metric's bit `0x40` set, the ratio `u8` after the count, the
    /// centre, the codebook's `dim × 256` `f32`s, then every code's bytes). Only centred codes
    /// are written (`None` before the sample is complete: then they are few and cheap
    /// to rebuild, and the sample itself would have to be kept).
    pub fn to_bytes(&self) -> Option<Vec<u8>> {
        let bytes = self.serialized()?;
        let mut out = Vec::new();
        match bytes.write_to(&mut out) {
            Ok(()) => Some(out),
            Err(never) => unreachable!("writing to memory failed: {never}"),
        }
    }

    /// [`Codes::to_bytes`]'s bytes, to be written a section at a time
    /// ([`Serialized::write_to`]) rather than gathered whole: at 10M × 384-d one-byte
    /// codes are 4 GB. `None` as for `to_bytes`.
    pub fn serialized(&self) -> Option<Serialized<'_>> {
        self.is_centred().then_some(Serialized { codes: self, at: 0 })
    }

    /// Reads what [`Codes::to_bytes`] wrote; an error says what does not fit.
    pub fn from_bytes(bytes: &[u8]) -> Result<Codes, String> {
        Codes::read_from(&mut &bytes[..], bytes.len() as u64)
    }

    /// Reads what [`Codes::to_bytes`] wrote, `len` bytes, from `r` straight into the
    /// codes' own buffers (no copy of the whole in between: at 1M × 384-d int8 codes are
    /// 396 MB). The header's count must account for exactly `len` bytes, so nothing is
    /// allocated beyond what `r` holds.
    pub fn read_from(r: &mut impl std::io::Read, len: u64) -> Result<Codes, String> {
        Codes::parse(&mut Copying(r), len)
    }

    /// Reads what [`Codes::to_bytes`] wrote from bytes `body` of `file`, keeping the
    /// components (one-byte codes), the product codes or the bit-plane words (where
    /// aligned in the file, [`Serialized::at`], and on a little-endian target) in the
    /// file instead of copying them: they stay in the file's pages, and what is pushed
    /// later goes to the heap.
    /// The per-vector terms, the centre and a codebook are read into the heap. Nothing
    /// is checked against a checksum here: that is the file's owner's pass.
    pub fn hold_from(file: Arc<dyn CodesFile>, body: std::ops::Range<usize>) -> Result<Codes, String> {
        if body.start > body.end || body.end > file.bytes().len() {
            return Err(format!("codes at {body:?} lie outside a file of {} bytes", file.bytes().len()));
        }
        let len = body.len() as u64;
        Codes::parse(&mut InFile { file, at: body }, len)
    }

    /// Bytes of codes kept in a file's pages ([`Codes::hold_from`]), of [`Codes::bytes`].
    pub fn held_bytes(&self) -> usize {
        self.codes.held_bytes() + self.parts.held_bytes() + self.bits.held_bytes()
    }

    fn parse(r: &mut impl Source, len: u64) -> Result<Codes, String> {
        fn exact(r: &mut impl std::io::Read, buf: &mut [u8]) -> Result<(), String> {
            r.read_exact(buf).map_err(|e| format!("codes cut short: {e}"))
        }
        let u32_at = |b: &[u8]| u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        let mut head = [0u8; HEAD];
        exact(r, &mut head)?;
        let first = head[0];
        let kinds = BINARY_FLAG | PRODUCT_FLAG | TWO_BITS_FLAG | SLOTS_FLAG;
        let metric = metric_from_code(first & !kinds)?;
        let dim = u32_at(&head[1..5]) as usize;
        let sample = u32_at(&head[5..9]) as usize;
        let n = u64::from_le_bytes(head[9..17].try_into().map_err(|_| "count")?);
        if !Codes::supports(metric, dim) || sample == 0 {
            return Err(format!("codes of {dim} components under {metric:?} are not made"));
        }
        let n = usize::try_from(n).map_err(|_| "count too large")?;
        let slotted = |kind| (kind, Layout::Slots { pad: 0 });
        let (kind, layout) = match first & kinds {
            0 => (CodeKind::Int8, Layout::Split),
            BINARY_FLAG => (CodeKind::Binary, Layout::Split),
            f if f == BINARY_FLAG | SLOTS_FLAG => slotted(CodeKind::Binary),
            f if f == BINARY_FLAG | TWO_BITS_FLAG => (CodeKind::BinaryTwoBits, Layout::Split),
            f if f == BINARY_FLAG | TWO_BITS_FLAG | SLOTS_FLAG => slotted(CodeKind::BinaryTwoBits),
            PRODUCT_FLAG => {
                let mut ratio = [0u8; 1];
                exact(r, &mut ratio)?;
                let compression = Compression::from_code(ratio[0])
                    .ok_or_else(|| format!("unknown compression {}", ratio[0]))?;
                (CodeKind::Product(compression), Layout::Split)
            }
            f => return Err(format!("codes marked with an unknown kind ({f:#04x})")),
        };
        let words = dim.div_ceil(64);
        // Checked before anything is allocated: slots may be preceded by up to 7 bytes
        // of padding, counted once read.
        let expected = body_len(kind, layout, dim, n).ok_or("count too large")?;
        let rest = len.saturating_sub(head.len() as u64);
        let slack = if layout == Layout::Split { 0 } else { 7 };
        if !(expected as u64..=expected as u64 + slack).contains(&rest) {
            return Err(format!("{n} codes of {dim} components need {expected} bytes, not {rest}"));
        }
        let f32_at = |b: &[u8]| f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        let mut centre = vec![0u8; dim * 4];
        exact(r, &mut centre)?;
        let centre: Vec<f32> = centre.chunks_exact(4).map(f32_at).collect();
        if layout != Layout::Split {
            let mut pad = [0u8; 8];
            exact(r, &mut pad[..1])?;
            let count = usize::from(pad[0]);
            if count as u64 != rest - expected as u64 {
                return Err(format!(
                    "{count} bytes of padding where the length leaves {}",
                    rest - expected as u64
                ));
            }
            exact(r, &mut pad[..count])?;
            if pad[..count].iter().any(|&b| b != 0) {
                return Err("codes whose padding is not zeros".into());
            }
            let bits = read_slots(r, kind, dim, n)?;
            return Ok(Codes { bits, ..Codes::read_back(kind, metric, dim, sample, centre) });
        }
        if let CodeKind::Product(compression) = kind {
            let mut book = vec![0u8; Codebook::file_len(dim)];
            exact(r, &mut book)?;
            let book = Codebook::read(&book, dim, compression.width())?;
            let parts = match r.hold::<u8>(n * book.parts())? {
                Some((file, start)) => Held::in_file(file, start, n * book.parts()),
                None => {
                    let mut parts = vec![0u8; n * book.parts()];
                    exact(r, &mut parts)?;
                    Held::from(parts)
                }
            };
            return Ok(Codes {
                book: Some(book),
                parts,
                ..Codes::read_back(kind, metric, dim, sample, centre)
            });
        }
        // The file keeps every vector's terms, then every vector's codes.
        let mut terms = vec![0u8; 12 * n.min(1 << 16)];
        let mut read_terms = |each: &mut dyn FnMut(Meta)| -> Result<(), String> {
            for at in (0..n).step_by(1 << 16) {
                let k = (n - at).min(1 << 16);
                exact(r, &mut terms[..12 * k])?;
                for m in terms[..12 * k].chunks_exact(12) {
                    each(Meta {
                        scale: f32_at(&m[..4]),
                        exact: f32_at(&m[4..8]),
                        sum: u32_at(&m[8..]) as i32,
                    });
                }
            }
            Ok(())
        };
        let (codes, bits, meta) = match kind {
            // Returned above.
            CodeKind::Int8 | CodeKind::Product(_) => {
                let mut meta = Vec::with_capacity(n);
                read_terms(&mut |m| meta.push(m))?;
                // A code's components sum to at most 127 a component either way.
                let most = 127 * dim as u64;
                if meta.iter().any(|m| u64::from(m.sum.unsigned_abs()) > most) {
                    return Err("one-byte codes whose sum of components is out of range".into());
                }
                if meta.iter().any(|m| m.scale.is_nan() || m.exact.is_nan()) {
                    return Err("one-byte codes whose terms are not numbers".into());
                }
                let codes = match r.hold::<i8>(n * dim)? {
                    Some((file, start)) => Held::in_file(file, start, n * dim),
                    None => {
                        let mut codes = vec![0i8; n * dim];
                        exact(r, bytemuck::cast_slice_mut(&mut codes))?;
                        Held::from(codes)
                    }
                };
                (codes, Held::default(), meta)
            }
            CodeKind::Binary | CodeKind::BinaryTwoBits => {
                // Each vector's slots are its planes' words, then its packed terms. The
                // terms go to their slots as they are read, and the weighted count of
                // bits set waits in the first word until the planes are read over it
                // (so no list of every vector's terms is held beside the codes).
                let code_words = words * kind.bit_planes();
                let width = code_words + 1;
                let mut bits: Vec<u64> = Vec::new();
                braid_core::memory::reserve_huge(&mut bits, n * width);
                read_terms(&mut |m| {
                    bits.push(m.sum as u32 as u64);
                    bits.resize(bits.len() + code_words - 1, 0);
                    bits.push(m.packed());
                })?;
                let mut block = vec![0u64; code_words * n.min(1 << 16)];
                for at in (0..n).step_by(1 << 16) {
                    let k = (n - at).min(1 << 16);
                    exact(r, bytemuck::cast_slice_mut(&mut block[..code_words * k]))?;
                    let slots = bits[at * width..(at + k) * width].chunks_exact_mut(width);
                    for (planes, slot) in block[..code_words * k].chunks_exact(code_words).zip(slots) {
                        let sum = slot[0] as u32 as i32;
                        // Stored little-endian: a no-op where the target is.
                        for (to, &w) in slot.iter_mut().zip(planes) {
                            *to = u64::from_le(w);
                        }
                        if check_slot(slot, dim, words)?.sum != sum {
                            return Err(
                                "binary codes whose count of bits set disagrees with their bits".into()
                            );
                        }
                    }
                }
                (Held::default(), Held::from(bits), Vec::new())
            }
        };
        Ok(Codes { codes, bits, meta, ..Codes::read_back(kind, metric, dim, sample, centre) })
    }

    /// Codes read back from a file, centred on `centre`, before their codes are filled in.
    fn read_back(kind: CodeKind, metric: Metric, dim: usize, sample: usize, centre: Vec<f32>) -> Codes {
        Codes {
            kind,
            metric,
            dim,
            sample,
            codes: Held::default(),
            bits: Held::default(),
            words: dim.div_ceil(64),
            meta: Vec::new(),
            book: None,
            parts: Held::default(),
            centre,
            sampling: None,
            residual: vec![0.0; dim],
        }
    }

    /// Whether the centre is fixed (the sample is complete).
    pub fn is_centred(&self) -> bool {
        self.sampling.is_none()
    }

    /// How many vectors are coded.
    pub fn len(&self) -> usize {
        match &self.book {
            Some(book) => self.parts.len() / book.parts(),
            None if self.is_bits() => self.bits.len() / self.width(),
            None => self.meta.len(),
        }
    }

    /// `true` when nothing is coded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Components per vector.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The metric the codes rank by.
    pub fn metric(&self) -> Metric {
        self.metric
    }

    /// The code of a query (of this dimension, in stored form).
    pub fn query(&self, q: &[f32]) -> CodedQuery {
        let residual: Vec<f32> = q.iter().zip(&self.centre).map(|(x, m)| x - m).collect();
        if let Some(book) = &self.book {
            // Euclid: |(q − μ) − r̂|² part by part. Dot: q·μ + q·r̂, the table holding
            // −q·r̂ part by part.
            let (table, exact) = match self.metric {
                Metric::Euclid => (book.table(&residual, true), 0.0),
                _ => (book.table(q, false), crate::simd::dot(q, &self.centre)),
            };
            return CodedQuery {
                codes: Vec::new(),
                shifted: Vec::new(),
                planes: Vec::new(),
                table,
                sum: 0,
                scale: 0.0,
                exact,
            };
        }
        let mut codes = vec![0i8; q.len()];
        let (scale, sum) = quantise(&residual, &mut codes);
        let shifted: Vec<u8> = codes.iter().map(|&c| (c as i16 + 128) as u8).collect();
        let exact = match self.metric {
            Metric::Euclid => crate::simd::dot(&residual, &residual),
            _ => crate::simd::dot(q, &self.centre),
        };
        let mut planes = Vec::new();
        if self.is_bits() {
            planes = vec![0u64; self.words * 8];
            for (i, &u) in shifted.iter().enumerate() {
                for j in 0..8 {
                    if u >> j & 1 == 1 {
                        planes[(i / 64) * 8 + j] |= 1 << (i % 64);
                    }
                }
            }
        }
        CodedQuery { codes, shifted, planes, table: Vec::new(), sum, scale, exact }
    }

    /// The approximate ranking distance (lower is better, as in the graph: negated
    /// dot product, or squared Euclidean distance) from `q` to vector `offset`.
    #[inline]
    pub fn distance(&self, q: &CodedQuery, offset: usize) -> f32 {
        if self.is_bits() {
            return self.binary_distance(q, offset);
        }
        if let Some(book) = &self.book {
            let m = book.parts();
            let parts = Codebook::lookup(&q.table, self.parts.get(offset * m, m));
            return match self.metric {
                Metric::Euclid => parts,
                _ => parts - q.exact,
            };
        }
        let start = offset * self.dim;
        let code = self.codes.get(start, self.dim);
        let meta = self.meta[offset];
        #[cfg(target_arch = "x86_64")]
        let int = match i8_level() {
            I8Level::Vnni => crate::simd::i8x86::dot_u8_i8_vnni(&q.shifted, code) - 128 * meta.sum,
            _ => dot_i8(&q.codes, code),
        };
        #[cfg(not(target_arch = "x86_64"))]
        let int = dot_i8(&q.codes, code);
        // (q − μ)·r
        let cross = int as f32 * q.scale * meta.scale;
        ranked(self.metric, q.exact, meta.exact, cross)
    }

    /// [`Codes::distance`] for binary and two-bit codes: `Σ uᵢ·cᵢ` from the query's
    /// bit planes (`Σⱼ 2ʲ·popcount(planeⱼ ∧ bits) − 128·Σ uᵢ` per plane of the code,
    /// the high plane counting twice), then `Σ (2uᵢ − 1)·cᵢ` for signs or
    /// `Σ (2uᵢ − 3)·cᵢ` for two-bit levels.
    #[inline]
    fn binary_distance(&self, q: &CodedQuery, offset: usize) -> f32 {
        let width = self.width();
        let start = offset * width;
        let (code, terms) = self.bits.get(start, width).split_at(width - 1);
        let meta = Meta::unpacked(terms[0], code, self.words);
        let (weighted, middle) = match self.kind {
            CodeKind::Binary => (crate::simd::plane_sum(&q.planes, code), 1),
            _ => {
                let (low, high) = code.split_at(self.words);
                (crate::simd::plane_sum(&q.planes, low) + 2 * crate::simd::plane_sum(&q.planes, high), 3)
            }
        };
        let set = weighted - 128 * meta.sum;
        let signed = 2 * set - middle * q.sum;
        // (q − μ)·r̂ with r̂ = scale · (2u − 1) (signs) or scale · (2u − 3) (levels).
        let cross = signed as f32 * q.scale * meta.scale;
        ranked(self.metric, q.exact, meta.exact, cross)
    }

    /// Distances between stored vectors read from their codes alone, as a build needs
    /// them between a node and its neighbours; `None` unless these are one-byte codes
    /// (bit and product codes are too coarse to choose links by).
    pub fn pairs(&self) -> Option<CodePairs<'_>> {
        if self.kind != CodeKind::Int8 {
            return None;
        }
        let shared = match self.metric {
            Metric::Euclid => 0.0,
            _ => crate::simd::dot(&self.centre, &self.centre),
        };
        Some(CodePairs { codes: self, shared })
    }

    /// Asks the memory system for vector `offset`'s code ahead of [`Codes::distance`].
    #[inline(always)]
    pub fn prefetch(&self, offset: usize) {
        if let Some(book) = &self.book {
            let (m, start) = (book.parts(), offset * book.parts());
            if start < self.parts.len() {
                let (part, at) = self.parts.part(start);
                crate::simd::prefetch(part, at);
                crate::simd::prefetch(part, at + m - 1);
            }
            return;
        }
        if self.is_bits() {
            // A code of 384 components is 56 bytes (two bits: 104): it may straddle
            // two lines.
            let start = offset * self.width();
            if start < self.bits.len() {
                let (part, at) = self.bits.part(start);
                crate::simd::prefetch(part, at);
                crate::simd::prefetch(part, at + self.width() - 1);
            }
            return;
        }
        let start = offset * self.dim;
        if start < self.codes.len() {
            let lines = self.dim.div_ceil(64).min(8);
            let (part, at) = self.codes.part(start);
            for line in 0..lines {
                crate::simd::prefetch(part, at + (line * 64).min(self.dim - 1));
            }
            // The scale and exact term live in another array: one more line.
            crate::simd::prefetch(&self.meta, offset);
        }
    }
}

/// Σ aᵢ·bᵢ over one-byte codes, exactly, in 32 bits. Callers guarantee equal lengths
/// below 2¹⁷ (each product is at most 127², so the sum cannot overflow).
#[inline]
pub fn dot_i8(a: &[i8], b: &[i8]) -> i32 {
    debug_assert_eq!(a.len(), b.len());
    #[cfg(target_arch = "x86_64")]
    match i8_level() {
        I8Level::Vnni | I8Level::Avx512 => return crate::simd::i8x86::dot_i8_avx512(a, b),
        I8Level::Avx2 => return crate::simd::i8x86::dot_i8_avx2(a, b),
        I8Level::Portable => {}
    }
    dot_i8_portable(a, b)
}

/// The plain loop, the reference the SIMD forms are tested against.
pub fn dot_i8_portable(a: &[i8], b: &[i8]) -> i32 {
    a.iter().zip(b).map(|(&x, &y)| x as i32 * y as i32).sum()
}

/// A ranking distance (lower is better) from its parts: `a` and `b` the exact terms of
/// the two sides (Dot and Cosine: a query's `q·μ`, or `μ·μ + μ·r` for a stored vector
/// measured from, and the other's `μ·r`; Euclid: each side's `|r|²`), `cross` the
/// estimated product of their residuals. Coded queries and code pairs share it.
#[inline(always)]
fn ranked(metric: Metric, a: f32, b: f32, cross: f32) -> f32 {
    match metric {
        Metric::Euclid => a + b - 2.0 * cross,
        _ => -(a + b + cross),
    }
}

/// Distances between two stored vectors by their one-byte codes ([`Codes::pairs`]).
#[derive(Clone, Copy, Debug)]
pub struct CodePairs<'a> {
    codes: &'a Codes,
    /// `μ·μ` under Dot and Cosine, the one term of `a·b` neither code holds; 0 under
    /// Euclid.
    shared: f32,
}

impl CodePairs<'_> {
    /// The approximate ranking distance between stored vectors `a` and `b`, on the
    /// scale of [`Codes::distance`]: with `a = μ + r_a`, Dot (and Cosine) ranks by
    /// `−(μ·μ + μ·r_a + μ·r_b + r̂_a·r̂_b)`, Euclid by `|r_a|² + |r_b|² − 2·r̂_a·r̂_b`.
    #[inline]
    pub fn distance(&self, a: usize, b: usize) -> f32 {
        let codes = self.codes;
        let dim = codes.dim;
        let (ma, mb) = (codes.meta[a], codes.meta[b]);
        let dot = dot_i8(codes.codes.get(a * dim, dim), codes.codes.get(b * dim, dim));
        let cross = dot as f32 * ma.scale * mb.scale;
        ranked(codes.metric, self.shared + ma.exact, mb.exact, cross)
    }
}

/// A dot product over two codes.
pub type CodeDotFn = fn(&[i8], &[i8]) -> i32;

/// Every `dot_i8` this CPU can run, named by instruction set; tests compare each
/// with [`dot_i8_portable`].
#[doc(hidden)]
pub fn dot_i8_paths() -> Vec<(&'static str, CodeDotFn)> {
    let mut paths: Vec<(&'static str, CodeDotFn)> = vec![("portable", dot_i8_portable)];
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512bw") {
            paths.push(("avx512bw", crate::simd::i8x86::dot_i8_avx512));
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            paths.push(("avx2", crate::simd::i8x86::dot_i8_avx2));
        }
    }
    paths
}

#[derive(Clone, Copy, PartialEq, Eq)]
#[cfg(target_arch = "x86_64")]
enum I8Level {
    Portable = 1,
    Avx2 = 2,
    Avx512 = 3,
    /// AVX-512 BW with VNNI: [`Codes::distance`] uses `vpdpbusd` on shifted queries.
    Vnni = 4,
}

#[cfg(target_arch = "x86_64")]
static I8_LEVEL: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn i8_level() -> I8Level {
    match I8_LEVEL.load(std::sync::atomic::Ordering::Relaxed) {
        4 => I8Level::Vnni,
        3 => I8Level::Avx512,
        2 => I8Level::Avx2,
        1 => I8Level::Portable,
        _ => detect_i8_level(),
    }
}

#[cfg(target_arch = "x86_64")]
#[cold]
fn detect_i8_level() -> I8Level {
    let level = if std::arch::is_x86_feature_detected!("avx512bw")
        && std::arch::is_x86_feature_detected!("avx512vnni")
    {
        I8Level::Vnni
    } else if std::arch::is_x86_feature_detected!("avx512bw") {
        I8Level::Avx512
    } else if std::arch::is_x86_feature_detected!("avx2") {
        I8Level::Avx2
    } else {
        I8Level::Portable
    };
    // Racing threads store the same value.
    I8_LEVEL.store(level as u8, std::sync::atomic::Ordering::Relaxed);
    level
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_rank_like_the_vectors() {
        let wide = |head: &[f32]| {
            let mut v = head.to_vec();
            v.resize(MIN_CODED_DIM, 0.0);
            v
        };
        let codes = {
            let mut c = Codes::new(Metric::Dot, MIN_CODED_DIM).expect("dot is coded");
            c.push(&wide(&[1.0, 0.0, 0.0]));
            c.push(&wide(&[0.0, 0.5, 0.5]));
            c.push(&wide(&[0.0, 0.0, 0.0]));
            c
        };
        let q = codes.query(&wide(&[0.9, 0.1, 0.0]));
        assert!(codes.distance(&q, 0) < codes.distance(&q, 1));
        assert!((codes.distance(&q, 0) + 0.9).abs() < 0.01);
        assert_eq!(codes.distance(&q, 2), 0.0);
    }

    #[test]
    fn euclid_uses_exact_norms() {
        let at = |x: f32, y: f32| {
            let mut v = vec![0.0; MIN_CODED_DIM];
            v[0] = x;
            v[1] = y;
            v
        };
        let mut c = Codes::new(Metric::Euclid, MIN_CODED_DIM).expect("euclid is coded");
        c.push(&at(3.0, 4.0));
        let q = c.query(&at(3.0, 4.0));
        assert!(c.distance(&q, 0).abs() < 0.2, "rounding error only");
        let far = c.query(&at(0.0, 0.0));
        assert!((c.distance(&far, 0) - 25.0).abs() < 1e-4);
    }

    /// The VNNI form (shifted query, corrected by the code sum) is exact.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn vnni_dot_is_exact() {
        if !(std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512vnni"))
        {
            return;
        }
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            ((state >> 24) % 255) as i32 - 127
        };
        for len in [0, 1, 5, 63, 64, 65, 127, 128, 129, 384, 512, 1000] {
            let a: Vec<i8> = (0..len).map(|_| next() as i8).collect();
            let b: Vec<i8> = (0..len).map(|_| next() as i8).collect();
            let shifted: Vec<u8> = a.iter().map(|&c| (c as i16 + 128) as u8).collect();
            let sum: i32 = b.iter().map(|&c| c as i32).sum();
            assert_eq!(
                crate::simd::i8x86::dot_u8_i8_vnni(&shifted, &b) - 128 * sum,
                dot_i8_portable(&a, &b),
                "len {len}"
            );
        }
    }

    #[test]
    fn parallel_building_equals_pushing() {
        let dim = 80;
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        let mut rows = braid_core::DenseVectors::new(dim);
        for i in 0..700 {
            let v: Vec<f32> = (0..dim)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    ((state >> 40) as f32 / (1u64 << 24) as f32) - 0.3
                })
                .collect();
            rows.push(&if i % 9 == 4 { vec![0.0; dim] } else { v });
        }
        for metric in [Metric::Cosine, Metric::Euclid] {
            for sample in [1, 7, 300, 10_000] {
                let mut pushed = Codes::with_sample(metric, dim, sample).unwrap();
                pushed.extend_from(&rows);
                for threads in [1, 2, 3, 8] {
                    let mut parallel = Codes::with_sample(metric, dim, sample).unwrap();
                    parallel.extend_from_parallel(&rows, threads);
                    assert_eq!(parallel.codes, pushed.codes, "{metric:?} sample {sample} threads {threads}");
                    assert_eq!(parallel.meta, pushed.meta);
                    assert_eq!(parallel.centre, pushed.centre);
                    assert_eq!(parallel.sampling, pushed.sampling);
                }
            }
        }
    }

    /// The bytes of binary codes in the layout files had before their words were laid
    /// out in slots (every vector's terms, then every vector's planes), which opens
    /// must still read.
    fn split_layout(codes: &Codes) -> Vec<u8> {
        let mut out = codes.to_bytes().unwrap()[..HEAD + codes.dim * 4].to_vec();
        out[0] &= !SLOTS_FLAG;
        let width = codes.width();
        for o in 0..codes.len() {
            let slot = codes.bits.get(o * width, width);
            let m = Meta::unpacked(slot[width - 1], &slot[..width - 1], codes.words);
            out.extend_from_slice(&m.scale.to_le_bytes());
            out.extend_from_slice(&m.exact.to_le_bytes());
            out.extend_from_slice(&m.sum.to_le_bytes());
        }
        for o in 0..codes.len() {
            codes.bits.get(o * width, width - 1).iter().for_each(|w| out.extend_from_slice(&w.to_le_bytes()));
        }
        out
    }

    #[test]
    fn codes_written_a_section_at_a_time_read_back_whole() {
        // More vectors than one block of terms, so that blocks are written and flushed.
        let (dim, n) = (70, BLOCK + 5);
        let data = rows(11, 2_000, dim);
        /// Takes at most 7 bytes a call, and fails once `left` runs out.
        struct Trickle {
            out: Vec<u8>,
            left: usize,
        }
        impl std::io::Write for Trickle {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                let take = buf.len().min(7).min(self.left);
                if take == 0 && !buf.is_empty() {
                    return Err(std::io::Error::new(std::io::ErrorKind::StorageFull, "full"));
                }
                self.out.extend_from_slice(&buf[..take]);
                self.left -= take;
                Ok(take)
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let kinds =
            [CodeKind::Int8, CodeKind::Binary, CodeKind::BinaryTwoBits, CodeKind::Product(Compression::X8)];
        for kind in kinds {
            let mut codes = Codes::of_kind_with_sample(kind, Metric::Cosine, dim, 1_000).unwrap();
            for i in 0..n {
                codes.push(&data[i % data.len()]);
            }
            let bytes = codes.to_bytes().unwrap();
            let serialized = codes.serialized().unwrap();
            let mut trickle = Trickle { out: Vec::new(), left: usize::MAX };
            serialized.write_to(&mut trickle).unwrap();
            assert!(trickle.out == bytes, "{kind:?}: written in pieces, the same bytes");
            let back = Codes::from_bytes(&bytes).unwrap();
            assert!(back.to_bytes().unwrap() == bytes && back.len() == n, "{kind:?}");
            // A writer that fails part way hands its error back.
            let mut short = Trickle { out: Vec::new(), left: bytes.len() / 2 };
            let err = serialized.write_to(&mut short).unwrap_err();
            assert_eq!(err.kind(), std::io::ErrorKind::StorageFull, "{kind:?}");
        }
    }

    #[test]
    fn codes_held_in_a_file_rank_grow_and_write_as_copied_ones() {
        let dim = 100;
        let data = rows(7, 900, dim);
        let kinds =
            [CodeKind::Int8, CodeKind::Product(Compression::X16), CodeKind::Binary, CodeKind::BinaryTwoBits];
        // Bodies written for where they lie in the file, and (13, 0) one written as if
        // its file began with it: its words fall off 8-byte boundaries.
        let placed = [(13, 13), (20, 20), (13, 0)];
        for metric in [Metric::Cosine, Metric::Euclid] {
            for (kind, (pad, at)) in kinds.into_iter().flat_map(|k| placed.map(|p| (k, p))) {
                let mut codes = Codes::of_kind_with_sample(kind, metric, dim, 600).unwrap();
                for r in &data[..800] {
                    codes.push(r);
                }
                let mut bytes = Vec::new();
                codes.serialized().unwrap().at(at).write_to(&mut bytes).unwrap();
                let file: Arc<dyn CodesFile> =
                    Arc::new(crate::CodesBuffer::new(&[vec![7; pad], bytes.clone()].concat()));
                let mut held = Codes::hold_from(file.clone(), pad..pad + bytes.len()).unwrap();
                // One-byte and product codes stay in the file, and so do bit-plane words
                // on 8-byte boundaries; others are copied.
                let in_file = match kind {
                    CodeKind::Int8 => 800 * dim,
                    CodeKind::Product(c) => 800 * c.code_len(dim),
                    _ if pad == at => 800 * codes.width() * 8,
                    _ => 0,
                };
                // Equal but for the scratch row.
                let same = |a: &Codes, b: &Codes| {
                    (a.kind, a.metric, a.dim, a.sample, &a.codes, &a.bits, &a.meta, &a.parts, &a.centre)
                        == (
                            b.kind, b.metric, b.dim, b.sample, &b.codes, &b.bits, &b.meta, &b.parts,
                            &b.centre,
                        )
                };
                assert_eq!(held.held_bytes(), in_file, "{kind:?}");
                assert_eq!(held.bytes(), codes.bytes());
                assert!(same(&held, &codes));
                // Pushed vectors go to the heap and rank as in codes never held.
                for r in &data[800..] {
                    held.push(r);
                    codes.push(r);
                }
                assert_eq!(held.held_bytes(), in_file);
                assert!(same(&held, &codes));
                for q in &data[..5] {
                    let (a, b) = (held.query(q), codes.query(q));
                    for o in [0, 1, 799, 800, 899] {
                        held.prefetch(o);
                        assert_eq!(held.distance(&a, o).to_bits(), codes.distance(&b, o).to_bits());
                    }
                }
                if kind == CodeKind::Int8 {
                    let (p, q) = (held.pairs().unwrap(), codes.pairs().unwrap());
                    assert_eq!(p.distance(3, 850).to_bits(), q.distance(3, 850).to_bits());
                }
                assert_eq!(held.to_bytes(), codes.to_bytes());
                // Codes held before their centre was fixed cannot be: only centred
                // codes are written. A held code written over moves every held one
                // to the heap (never the case for pushed vectors).
                if kind.bit_planes() > 0 {
                    let mut moved = Codes::hold_from(file.clone(), pad..pad + bytes.len()).unwrap();
                    moved.code_at(3, &data[850]);
                    assert_eq!(moved.held_bytes(), 0);
                    let (a, b) = (moved.query(&data[0]), held.query(&data[0]));
                    assert_eq!(moved.distance(&a, 3).to_bits(), held.distance(&b, 850).to_bits());
                }
                // A body past the file's end, or cut short inside it: refused.
                assert!(Codes::hold_from(file.clone(), pad..pad + bytes.len() + 1).is_err());
                assert!(Codes::hold_from(file, pad..pad + bytes.len() - 1).is_err());
            }
        }
    }

    #[test]
    fn codes_round_trip_through_bytes_and_refuse_damage() {
        let dim = 72;
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        for metric in [Metric::Cosine, Metric::Dot, Metric::Euclid] {
            let mut codes = Codes::with_sample(metric, dim, 5).unwrap();
            let mut row = || -> Vec<f32> {
                (0..dim)
                    .map(|_| {
                        state ^= state << 13;
                        state ^= state >> 7;
                        state ^= state << 17;
                        ((state >> 40) as f32 / (1u64 << 24) as f32) - 0.4
                    })
                    .collect()
            };
            for _ in 0..4 {
                codes.push(&row());
            }
            assert!(codes.to_bytes().is_none(), "not centred yet: rebuilt, not written");
            for _ in 0..30 {
                codes.push(&row());
            }
            let bytes = codes.to_bytes().unwrap();
            // Equal but for the scratch row.
            let same = |a: &Codes, b: &Codes| {
                (a.metric, a.dim, a.sample, &a.codes, &a.meta, &a.centre, &a.sampling)
                    == (b.metric, b.dim, b.sample, &b.codes, &b.meta, &b.centre, &b.sampling)
            };
            let mut back = Codes::from_bytes(&bytes).unwrap();
            assert!(same(&back, &codes));
            // It goes on growing exactly as the original does.
            let next = row();
            back.push(&next);
            codes.push(&next);
            assert!(same(&back, &codes));
            // Cut short, too long, or naming something never coded: refused.
            assert!(Codes::from_bytes(&bytes[..bytes.len() - 1]).is_err());
            assert!(Codes::from_bytes(&[bytes.as_slice(), &[0]].concat()).is_err());
            let mut manhattan = bytes.clone();
            manhattan[0] = 3;
            assert!(Codes::from_bytes(&manhattan).is_err());
            let mut huge = bytes.clone();
            huge[9..17].copy_from_slice(&u64::MAX.to_le_bytes());
            assert!(Codes::from_bytes(&huge).is_err());
            // A term no code can have (found by the `codes_decode` fuzz target: the
            // sum overflowed the distance's arithmetic), or one that is not a number.
            let terms = 17 + codes.dim * 4;
            let mut sum = bytes.clone();
            sum[terms + 8..terms + 12].copy_from_slice(&(127 * codes.dim as i32 + 1).to_le_bytes());
            assert!(Codes::from_bytes(&sum).unwrap_err().contains("out of range"));
            let mut nan = bytes.clone();
            nan[terms..terms + 4].copy_from_slice(&f32::NAN.to_le_bytes());
            assert!(Codes::from_bytes(&nan).unwrap_err().contains("not numbers"));
        }
    }

    /// Rows of `dim` components from a xorshift stream: a shared offset plus noise.
    fn rows(seed: u64, n: usize, dim: usize) -> Vec<Vec<f32>> {
        let mut state = seed | 1;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 24) as f32
        };
        (0..n).map(|_| (0..dim).map(|i| 0.3 * (i % 3) as f32 + next() - 0.5).collect()).collect()
    }

    /// Binary and two-bit codes in the split layout of older files are read in blocks
    /// of 65,536 vectors, each vector's terms put in their slot before its planes: more
    /// than one block reads back exactly, and a corrupt vector in the last block is
    /// still found.
    #[test]
    fn binary_codes_in_the_split_layout_read_back_across_blocks() {
        let dim = 70;
        let n = (1 << 16) + 1_000;
        let data = rows(21, n, dim);
        for kind in [CodeKind::Binary, CodeKind::BinaryTwoBits] {
            let mut codes = Codes::of_kind_with_sample(kind, Metric::Cosine, dim, 64).unwrap();
            for r in &data {
                codes.push(r);
            }
            let bytes = split_layout(&codes);
            let back = Codes::from_bytes(&bytes).unwrap();
            assert_eq!(
                (back.kind, back.len(), &back.bits, &back.centre),
                (kind, n, &codes.bits, &codes.centre)
            );
            // Written again, in slots.
            assert_eq!(back.to_bytes(), codes.to_bytes());
            let terms = 17 + dim * 4;
            let planes = terms + 12 * n;
            let per_code = 16 * kind.bit_planes();
            // A flipped bit in either plane of the last vector.
            for plane in 0..kind.bit_planes() {
                let mut flipped = bytes.clone();
                flipped[planes + per_code * (n - 1) + 16 * plane] ^= 1;
                assert!(Codes::from_bytes(&flipped).unwrap_err().contains("count of bits set"), "{kind:?}");
            }
            let mut nan = bytes.clone();
            nan[terms + 12 * (n - 1)..][..4].copy_from_slice(&f32::NAN.to_le_bytes());
            assert!(Codes::from_bytes(&nan).unwrap_err().contains("not numbers"), "{kind:?}");
        }
    }

    /// The ranking distance codes estimate, computed exactly: squared Euclidean, or the
    /// negated dot product.
    fn exact_distance(metric: Metric, q: &[f32], v: &[f32]) -> f32 {
        match metric {
            Metric::Euclid => q.iter().zip(v).map(|(a, b)| (a - b) * (a - b)).sum::<f32>(),
            _ => -q.iter().zip(v).map(|(a, b)| a * b).sum::<f32>(),
        }
    }

    /// The mean relative error of `codes`' distances from `queries` to `data` against
    /// the exact ones under `metric`.
    fn relative_error(codes: &Codes, metric: Metric, data: &[Vec<f32>], queries: &[Vec<f32>]) -> f64 {
        let (mut err, mut scale) = (0.0f64, 0.0f64);
        for q in queries {
            let coded = codes.query(q);
            for (o, v) in data.iter().enumerate() {
                let t = exact_distance(metric, q, v);
                err += f64::from((t - codes.distance(&coded, o)).abs());
                scale += f64::from(t.abs());
            }
        }
        err / scale
    }

    /// Distances between two stored vectors from their one-byte codes alone estimate
    /// the exact ones as closely as a coded query does, on the same scale, and the same
    /// either way round; coarser codes offer none.
    #[test]
    fn code_pairs_estimate_distances_between_stored_vectors() {
        for metric in [Metric::Cosine, Metric::Dot, Metric::Euclid] {
            let dim = 128;
            let data = rows(41, 200, dim);
            let mut codes = Codes::with_sample(metric, dim, 64).unwrap();
            data.iter().for_each(|r| codes.push(r));
            let pairs = codes.pairs().expect("one-byte codes have pairs");
            let (mut err, mut scale) = (0.0f64, 0.0f64);
            for a in 0..data.len() {
                for b in (0..data.len()).step_by(7) {
                    let t = exact_distance(metric, &data[a], &data[b]);
                    let d = pairs.distance(a, b);
                    assert!(
                        (d - pairs.distance(b, a)).abs() <= 1e-5 * d.abs().max(1.0),
                        "{metric:?}: symmetric"
                    );
                    err += f64::from((t - d).abs());
                    scale += f64::from(t.abs());
                }
            }
            let pair_error = err / scale;
            let query_error = relative_error(&codes, metric, &data, &data[..20]);
            // A coded query is rounded to one byte a component too, so the errors are
            // alike (measured 0.00023 against 0.00023 under Cosine, 0.00042 against
            // 0.00042 under Euclid), a hundredth of a one-bit code's.
            assert!(
                pair_error < 0.002 && pair_error < 1.5 * query_error,
                "{metric:?}: pairs {pair_error}, queries {query_error}"
            );
        }
        for kind in [CodeKind::Binary, CodeKind::BinaryTwoBits] {
            let mut codes = Codes::of_kind_with_sample(kind, Metric::Cosine, 128, 64).unwrap();
            rows(42, 80, 128).iter().for_each(|r| codes.push(r));
            assert!(codes.pairs().is_none(), "{kind:?}");
        }
    }

    /// Two bits a component estimate distances more closely than one, under every
    /// coded metric: the point of spending the second bit.
    #[test]
    fn two_bit_codes_estimate_closer_than_one_bit() {
        for metric in [Metric::Cosine, Metric::Dot, Metric::Euclid] {
            let dim = 128;
            let data = rows(31, 400, dim);
            let queries = rows(32, 10, dim);
            let coded = |kind| {
                let mut codes = Codes::of_kind_with_sample(kind, metric, dim, 64).unwrap();
                data.iter().for_each(|r| codes.push(r));
                relative_error(&codes, metric, &data, &queries)
            };
            let (one, two) = (coded(CodeKind::Binary), coded(CodeKind::BinaryTwoBits));
            // Measured: about half (0.0123 against 0.0240 under Cosine).
            assert!(two < 0.6 * one, "{metric:?}: two bits {two}, one bit {one}");
        }
    }

    #[test]
    fn binary_codes_estimate_and_rank_like_the_vectors() {
        for (metric, kind) in [Metric::Cosine, Metric::Dot, Metric::Euclid]
            .into_iter()
            .flat_map(|m| [(m, CodeKind::Binary), (m, CodeKind::BinaryTwoBits)])
        {
            // 100 components: the last word is partly used.
            let dim = 100;
            let data = rows(11, 300, dim);
            let mut codes = Codes::of_kind_with_sample(kind, metric, dim, 64).unwrap();
            for r in &data {
                codes.push(r);
            }
            assert_eq!(codes.kind(), kind);
            assert_eq!(
                codes.bytes(),
                300 * (16 * kind.bit_planes() + 8),
                "planes' words and one word of terms"
            );
            let queries = rows(12, 10, dim);
            let (mut agree, mut pairs) = (0, 0);
            for q in &queries {
                let coded = codes.query(q);
                let truth: Vec<f32> = data.iter().map(|v| exact_distance(metric, q, v)).collect();
                let approx: Vec<f32> = (0..data.len()).map(|o| codes.distance(&coded, o)).collect();
                // Pairs whose exact distances differ clearly keep their order.
                for i in (0..data.len()).step_by(7) {
                    for j in (1..data.len()).step_by(11) {
                        if (truth[i] - truth[j]).abs() > 0.25 * truth[i].abs().max(1.0) {
                            pairs += 1;
                            agree += usize::from((truth[i] < truth[j]) == (approx[i] < approx[j]));
                        }
                    }
                }
            }
            let err = relative_error(&codes, metric, &data, &queries);
            assert!(err < 0.1, "{metric:?} {kind:?}: mean relative error {err}");
            assert!(
                agree as f64 >= 0.95 * pairs as f64,
                "{metric:?} {kind:?}: {agree} of {pairs} pairs ordered"
            );
            // The bytes read back equal, and a stray bit past the last component or a
            // cut is refused.
            let bytes = codes.to_bytes().unwrap();
            assert_eq!(bytes[0] & BINARY_FLAG, BINARY_FLAG);
            assert_eq!(bytes[0] & TWO_BITS_FLAG != 0, kind == CodeKind::BinaryTwoBits);
            let back = Codes::from_bytes(&bytes).unwrap();
            assert_eq!(
                (back.kind, &back.bits, &back.meta, &back.centre),
                (codes.kind, &codes.bits, &codes.meta, &codes.centre)
            );
            let q = codes.query(&data[0]);
            assert_eq!(back.distance(&q, 5), codes.distance(&q, 5));
            for o in 0..data.len() {
                for plane in codes.bits.get(o * codes.width(), codes.width() - 1).chunks_exact(codes.words) {
                    assert_eq!(
                        crate::simd::plane_sum(&q.planes, plane),
                        crate::simd::plane_sum_portable(&q.planes, plane),
                        "the dispatched kernel and the portable loop agree"
                    );
                }
            }
            // Slots follow the centre and their padding, the last slot's terms last.
            assert_eq!(bytes[0] & SLOTS_FLAG, SLOTS_FLAG);
            let pad = usize::from(bytes[17 + dim * 4]);
            assert_eq!(bytes.len(), 17 + dim * 4 + 1 + pad + data.len() * codes.width() * 8);
            assert_eq!((17 + dim * 4 + 1 + pad) % 8, 0, "words on 8-byte boundaries");
            let terms = bytes.len() - 8;
            // A stray bit past the last component, in the last plane and (two bits) in
            // the low plane.
            let mut stray = bytes.clone();
            stray[terms - 1] |= 0x80;
            assert!(Codes::from_bytes(&stray).unwrap_err().contains("past the last component"));
            let mut stray = bytes.clone();
            stray[terms - 1 - 16 * (kind.bit_planes() - 1)] |= 0x80;
            assert!(Codes::from_bytes(&stray).unwrap_err().contains("past the last component"));
            let mut nan = bytes.clone();
            nan[terms..terms + 4].copy_from_slice(&f32::NAN.to_le_bytes());
            assert!(Codes::from_bytes(&nan).unwrap_err().contains("not numbers"));
            // Cut short, padding that is not zeros, or a count of padding the length
            // does not leave.
            assert!(Codes::from_bytes(&bytes[..bytes.len() - 8]).is_err());
            if pad > 0 {
                let mut dirty = bytes.clone();
                dirty[17 + dim * 4 + 1] = 1;
                assert!(Codes::from_bytes(&dirty).unwrap_err().contains("padding"));
            }
            let mut miscounted = bytes.clone();
            miscounted[17 + dim * 4] = (pad as u8 + 1) % 8;
            assert!(Codes::from_bytes(&miscounted).unwrap_err().contains("padding"));
            // In the older split layout, a flipped sign bit no longer agrees with the
            // count of bits set the file keeps for its vector.
            let split = split_layout(&codes);
            let back = Codes::from_bytes(&split).unwrap();
            assert_eq!((&back.bits, back.to_bytes()), (&codes.bits, Some(bytes)));
            let mut flipped = split;
            flipped[17 + dim * 4 + 12 * data.len()] ^= 1;
            assert!(Codes::from_bytes(&flipped).unwrap_err().contains("count of bits set"));
        }
    }

    #[test]
    fn product_codes_learn_rank_and_round_trip() {
        for metric in [Metric::Cosine, Metric::Dot, Metric::Euclid] {
            // 100 components at x16: 25 parts of four; at x64 the last part is short.
            let dim = 100;
            let data = rows(21, 900, dim);
            for compression in [Compression::X16, Compression::X64] {
                let kind = CodeKind::Product(compression);
                let mut codes = Codes::of_kind_with_sample(kind, metric, dim, 600).unwrap();
                for r in &data[..599] {
                    codes.push(r);
                }
                assert!(codes.book.is_none() && codes.to_bytes().is_none(), "one-byte codes until learnt");
                assert_eq!(codes.codes.len(), 599 * dim);
                for r in &data[599..] {
                    codes.push(r);
                }
                let parts = compression.code_len(dim);
                assert_eq!((codes.len(), codes.parts.len()), (900, 900 * parts));
                assert!(codes.codes.len() == 0 && codes.meta.is_empty(), "the one-byte codes are dropped");
                assert_eq!(codes.bytes(), 900 * parts + dim * 256 * 4);
                let exact = |q: &[f32], v: &[f32]| match metric {
                    Metric::Euclid => q.iter().zip(v).map(|(a, b)| (a - b) * (a - b)).sum::<f32>(),
                    _ => -q.iter().zip(v).map(|(a, b)| a * b).sum::<f32>(),
                };
                let (mut agree, mut pairs) = (0, 0);
                for q in rows(22, 10, dim) {
                    let coded = codes.query(&q);
                    let truth: Vec<f32> = data.iter().map(|v| exact(&q, v)).collect();
                    let approx: Vec<f32> = (0..data.len()).map(|o| codes.distance(&coded, o)).collect();
                    for i in (0..data.len()).step_by(7) {
                        for j in (1..data.len()).step_by(11) {
                            if (truth[i] - truth[j]).abs() > 0.25 * truth[i].abs().max(1.0) {
                                pairs += 1;
                                agree += usize::from((truth[i] < truth[j]) == (approx[i] < approx[j]));
                            }
                        }
                    }
                }
                assert!(
                    pairs > 100 && agree as f64 >= 0.9 * pairs as f64,
                    "{metric:?} {compression:?}: {agree} of {pairs}"
                );
                // The table's sum is the exact distance to what the code stands for
                // (centre plus each part's centroid).
                let book = codes.book.as_ref().unwrap();
                for (o, q) in [(0, &data[5]), (777, &data[1]), (899, &rows(23, 1, dim)[0])] {
                    let mut decoded = vec![0.0; dim];
                    book.decode(codes.parts.get(o * parts, parts), &mut decoded);
                    decoded.iter_mut().zip(&codes.centre).for_each(|(x, m)| *x += m);
                    let (want, got) = (exact(q, &decoded), codes.distance(&codes.query(q), o));
                    assert!((want - got).abs() <= 1e-4 * (1.0 + want.abs()), "{metric:?}: {got} vs {want}");
                }
                // Written and read back equal; going on growing as the original does.
                let bytes = codes.to_bytes().unwrap();
                assert_eq!(bytes[0] & PRODUCT_FLAG, PRODUCT_FLAG);
                let mut back = Codes::from_bytes(&bytes).unwrap();
                assert_eq!(
                    (back.kind, &back.parts, &back.book, &back.centre, back.sample),
                    (codes.kind, &codes.parts, &codes.book, &codes.centre, codes.sample)
                );
                back.push(&data[3]);
                codes.push(&data[3]);
                assert_eq!(back.parts, codes.parts);
                // Cut, grown, an unknown ratio, both flags, a NaN centroid: refused.
                assert!(Codes::from_bytes(&bytes[..bytes.len() - 1]).is_err());
                assert!(Codes::from_bytes(&[bytes.as_slice(), &[0]].concat()).is_err());
                let mut ratio = bytes.clone();
                ratio[17] = 9;
                assert!(Codes::from_bytes(&ratio).is_err());
                let mut both = bytes.clone();
                both[0] |= BINARY_FLAG;
                assert!(Codes::from_bytes(&both).is_err());
                let mut nan = bytes.clone();
                let book_at = 18 + dim * 4;
                nan[book_at..book_at + 4].copy_from_slice(&f32::NAN.to_le_bytes());
                assert!(Codes::from_bytes(&nan).is_err());
                // Built in parallel from the rows: the same codes.
                let mut source = braid_core::DenseVectors::new(dim);
                for r in &data {
                    source.push(r);
                }
                source.push(&vec![0.0; dim]);
                let mut pushed = Codes::of_kind_with_sample(kind, metric, dim, 600).unwrap();
                pushed.extend_from(&source);
                let mut parallel = Codes::of_kind_with_sample(kind, metric, dim, 600).unwrap();
                parallel.extend_from_parallel(&source, 3);
                assert_eq!(
                    (&parallel.parts, &parallel.book, &parallel.centre, parallel.sampling.is_none()),
                    (&pushed.parts, &pushed.book, &pushed.centre, true),
                    "{metric:?} {compression:?}"
                );
            }
        }
    }

    #[test]
    fn manhattan_and_narrow_vectors_are_not_coded() {
        assert!(Codes::new(Metric::Manhattan, 384).is_none());
        assert!(Codes::new(Metric::Cosine, MIN_CODED_DIM - 1).is_none());
        assert!(Codes::new(Metric::Cosine, MAX_CODED_DIM + 1).is_none());
        assert!(Codes::new(Metric::Cosine, MAX_CODED_DIM).is_some());
    }
}
