//! Scoring one query, or many, against a contiguous row-major block of vectors.
//!
//! One query: a loop over rows into a caller-owned output slice, with no allocation.
//! Many queries under Dot or Cosine: one matrix product `Q · Bᵀ` through `faer`, which
//! reads the block once for all queries instead of once per query. [`score_matrix`]
//! takes that path from [`MATRIX_MIN_QUERIES`] queries on, where
//! `cargo xtask bench distance` shows it is faster (`docs/benchmarks.md`).

use braid_core::{Metric, PointOffset, ScoredOffset};
use faer::{Accum, MatMut, MatRef, Par};

use crate::{Kernel, TopK, VectorError, is_better};

/// From this many queries on, [`score_matrix`] uses the `faer` matrix product for Dot
/// and Cosine. Below it, per-pair kernels win (measured, see `docs/benchmarks.md`).
pub const MATRIX_MIN_QUERIES: usize = 8;

/// How many rows of `dim` values `block` holds; `dim` must be non-zero and divide it.
fn block_rows(dim: usize, block: &[f32]) -> Result<usize, VectorError> {
    if dim == 0 {
        return Err(VectorError::BlockShape { what: "query", expected: 1, got: 0 });
    }
    if !block.len().is_multiple_of(dim) {
        return Err(VectorError::BlockShape {
            what: "block",
            expected: block.len() / dim * dim,
            got: block.len(),
        });
    }
    Ok(block.len() / dim)
}

fn check_shapes(dim: usize, queries: &[f32], block: &[f32], out: &[f32]) -> Result<usize, VectorError> {
    if dim == 0 || !queries.len().is_multiple_of(dim) || queries.is_empty() {
        return Err(VectorError::BlockShape { what: "queries", expected: dim.max(1), got: queries.len() });
    }
    block_rows(dim, block)?;
    let expected = queries.len() / dim * (block.len() / dim);
    if out.len() != expected {
        return Err(VectorError::BlockShape { what: "out", expected, got: out.len() });
    }
    Ok(block.len() / dim)
}

/// Writes the raw score (see [`Kernel`]) of `query` against every row of `block`
/// into `out`, where `block` holds `out.len()` rows of `query.len()` values.
pub fn score_block_raw(
    kernel: &Kernel,
    query: &[f32],
    block: &[f32],
    out: &mut [f32],
) -> Result<(), VectorError> {
    check_shapes(query.len(), query, block, out)?;
    for (row, slot) in block.chunks_exact(query.len()).zip(out.iter_mut()) {
        *slot = kernel.raw(query, row);
    }
    Ok(())
}

/// Like [`score_block_raw`], but writes user scores (L2 distance, not its square).
pub fn score_block(
    kernel: &Kernel,
    query: &[f32],
    block: &[f32],
    out: &mut [f32],
) -> Result<(), VectorError> {
    score_block_raw(kernel, query, block, out)?;
    if kernel.metric() == Metric::Euclid {
        for s in out.iter_mut() {
            *s = kernel.finish(*s);
        }
    }
    Ok(())
}

/// The `k` best rows of `block` for `query`, best first, with user scores: an exact
/// search over a contiguous block in one pass.
///
/// Scores a chunk of rows into a stack buffer, then offers only those that beat the
/// current k-th best to the heap, so the scores never make a second trip through
/// memory.
pub fn scan_top_k(
    kernel: &Kernel,
    query: &[f32],
    block: &[f32],
    k: usize,
) -> Result<Vec<ScoredOffset>, VectorError> {
    const CHUNK: usize = 256;
    let dim = query.len();
    let rows = block_rows(dim, block)?;
    if rows > u32::MAX as usize {
        return Err(VectorError::BlockShape {
            what: "block",
            expected: u32::MAX as usize * dim,
            got: block.len(),
        });
    }
    let mut top = TopK::new(k, kernel.metric());
    let mut scores = [0.0f32; CHUNK];
    for (chunk_index, chunk) in block.chunks(CHUNK * dim).enumerate() {
        let n = chunk.len() / dim;
        score_block_raw(kernel, query, chunk, &mut scores[..n])?;
        let base = chunk_index * CHUNK;
        for (i, &s) in scores[..n].iter().enumerate() {
            if top.worst_score().is_none_or(|worst| !is_better(kernel.metric(), worst, s)) {
                top.push(PointOffset((base + i) as u32), s);
            }
        }
    }
    let mut best = top.into_sorted_vec();
    for hit in &mut best {
        hit.score = kernel.finish(hit.score);
    }
    Ok(best)
}

/// User scores of `q` queries (row-major `q × dim` in `queries`) against `n` rows of
/// `block`, into `out` as a row-major `q × n` matrix: `out[i·n + j]` scores query `i`
/// against row `j`.
///
/// Dot and Cosine with at least [`MATRIX_MIN_QUERIES`] queries go through
/// [`score_matrix_faer`]; everything else through the per-pair kernels.
pub fn score_matrix(
    metric: Metric,
    dim: usize,
    queries: &[f32],
    block: &[f32],
    out: &mut [f32],
) -> Result<(), VectorError> {
    let q = queries.len().checked_div(dim).unwrap_or(0);
    if matches!(metric, Metric::Dot | Metric::Cosine) && q >= MATRIX_MIN_QUERIES {
        score_matrix_faer(dim, queries, block, out)
    } else {
        score_matrix_pairs(metric, dim, queries, block, out)
    }
}

/// [`score_matrix`] through per-pair kernels, one block pass per query.
pub fn score_matrix_pairs(
    metric: Metric,
    dim: usize,
    queries: &[f32],
    block: &[f32],
    out: &mut [f32],
) -> Result<(), VectorError> {
    let n = check_shapes(dim, queries, block, out)?;
    let kernel = Kernel::new(metric);
    if n == 0 {
        return Ok(());
    }
    for (query, row_out) in queries.chunks_exact(dim).zip(out.chunks_exact_mut(n)) {
        score_block(&kernel, query, block, row_out)?;
    }
    Ok(())
}

/// Dot products of every query with every row as one `faer` matrix product,
/// single-threaded (callers parallelise across requests).
pub fn score_matrix_faer(
    dim: usize,
    queries: &[f32],
    block: &[f32],
    out: &mut [f32],
) -> Result<(), VectorError> {
    let n = check_shapes(dim, queries, block, out)?;
    let q = queries.len() / dim;
    if n == 0 {
        return Ok(());
    }
    let lhs = MatRef::from_row_major_slice(queries, q, dim);
    let rhs = MatRef::from_row_major_slice(block, n, dim).transpose();
    let dst = MatMut::from_row_major_slice_mut(out, q, n);
    faer::linalg::matmul::matmul(dst, Accum::Replace, lhs, rhs, 1.0f32, Par::Seq);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_scores_by_hand() {
        let kernel = Kernel::new(Metric::Euclid);
        let block = [0.0, 0.0, 3.0, 4.0, 6.0, 8.0];
        let mut out = [0.0; 3];
        score_block(&kernel, &[0.0, 0.0], &block, &mut out).unwrap();
        assert_eq!(out, [0.0, 5.0, 10.0]);
        score_block_raw(&kernel, &[0.0, 0.0], &block, &mut out).unwrap();
        assert_eq!(out, [0.0, 25.0, 100.0]);
    }

    #[test]
    fn shape_errors() {
        let kernel = Kernel::new(Metric::Dot);
        let mut out = [0.0; 2];
        assert!(matches!(
            score_block(&kernel, &[1.0, 2.0], &[1.0, 2.0, 3.0], &mut out),
            Err(VectorError::BlockShape { what: "block", .. })
        ));
        assert!(matches!(
            score_block(&kernel, &[1.0, 2.0], &[1.0, 2.0], &mut out),
            Err(VectorError::BlockShape { what: "out", expected: 1, got: 2 })
        ));
        assert!(matches!(
            score_matrix(Metric::Dot, 0, &[], &[], &mut []),
            Err(VectorError::BlockShape { what: "queries", .. })
        ));
        assert!(score_matrix(Metric::Dot, 2, &[1.0, 2.0], &[], &mut []).is_ok());
    }

    #[test]
    fn scan_top_k_by_hand() {
        let block = [0.0, 0.0, 3.0, 4.0, 6.0, 8.0, 1.0, 0.0];
        let best = scan_top_k(&Kernel::new(Metric::Euclid), &[0.0, 0.0], &block, 2).unwrap();
        assert_eq!(
            best,
            vec![
                ScoredOffset { offset: PointOffset(0), score: 0.0 },
                ScoredOffset { offset: PointOffset(3), score: 1.0 },
            ]
        );
        assert!(scan_top_k(&Kernel::new(Metric::Dot), &[], &block, 2).is_err());
        assert!(scan_top_k(&Kernel::new(Metric::Dot), &[1.0, 0.0, 0.0], &block, 2).is_err());
    }

    #[test]
    fn matrix_paths_agree() {
        let dim = 5;
        let queries: Vec<f32> = (0..6 * dim).map(|i| ((i * 7) % 11) as f32 - 5.0).collect();
        let block: Vec<f32> = (0..9 * dim).map(|i| ((i * 5) % 13) as f32 - 6.0).collect();
        let mut a = vec![0.0; 6 * 9];
        let mut b = vec![0.0; 6 * 9];
        score_matrix_faer(dim, &queries, &block, &mut a).unwrap();
        score_matrix_pairs(Metric::Dot, dim, &queries, &block, &mut b).unwrap();
        // Small integers: both paths are exact.
        assert_eq!(a, b);
    }
}
