//! Maximal marginal relevance (Carbonell & Goldstein 1998) as Qdrant's server applies
//! it to a nearest search's candidates.

use braid_core::Metric;
use braid_distance::Kernel;

use crate::{Hit, QueryError, Searchable};

/// Picks up to `limit` of `pool` (best first by relevance): first the most relevant,
/// then each time the candidate maximising
/// `λ · sim(query, c) − (1 − λ) · max over picked p of sim(c, p)`,
/// with Qdrant's internal similarity ([`Kernel::similarity`]). Candidates are visited
/// as Qdrant's server keeps them (an insertion-ordered set whose picked element is
/// swap-removed), and on equal scores the last maximum wins, as Rust's `max_by` picks:
/// exact ties resolve as in Qdrant. The hits keep their nearest scores.
///
/// Each candidate's largest similarity to the picked ones is kept up to date as points
/// are picked, so the cost is `limit · pool` similarities, not `limit² · pool`.
pub(crate) fn pick<S: Searchable + ?Sized>(
    segment: &S,
    space: &str,
    metric: Metric,
    query: &[f32],
    pool: Vec<Hit>,
    lambda: f32,
    limit: usize,
) -> Result<Vec<Hit>, QueryError> {
    if pool.is_empty() {
        return Ok(pool);
    }
    let kernel = Kernel::new(metric);
    let vectors: Vec<Vec<f32>> =
        pool.iter().map(|h| segment.vector_of(space, h.id)).collect::<Result<_, _>>()?;
    let relevance: Vec<f32> = vectors.iter().map(|v| kernel.similarity(query, v)).collect();
    // Positions into `pool` not picked yet, in the server's visiting order.
    let mut pending: Vec<usize> = (0..pool.len()).collect();
    let mut nearest_picked = vec![f32::NEG_INFINITY; pool.len()];
    let mut picked = Vec::with_capacity(limit.min(pool.len()));
    let last_argmax = |scores: &mut dyn Iterator<Item = f32>| -> usize {
        let mut best = (0, f32::NEG_INFINITY);
        for (i, s) in scores.enumerate() {
            if i == 0 || s >= best.1 {
                best = (i, s);
            }
        }
        best.0
    };
    let mut next = last_argmax(&mut pending.iter().map(|&c| relevance[c]));
    loop {
        let chosen = pending.swap_remove(next);
        picked.push(chosen);
        if picked.len() >= limit || pending.is_empty() {
            break;
        }
        for &c in &pending {
            let s = kernel.similarity(&vectors[c], &vectors[chosen]);
            if s > nearest_picked[c] {
                nearest_picked[c] = s;
            }
        }
        next = last_argmax(
            &mut pending.iter().map(|&c| lambda * relevance[c] - (1.0 - lambda) * nearest_picked[c]),
        );
    }
    Ok(picked.into_iter().map(|i| pool[i]).collect())
}
