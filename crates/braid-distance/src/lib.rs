//! Distance kernels and score conventions for Braid.
//!
//! What this crate does:
//! - the four metrics users configure ([`Metric`]): Cosine, Dot, Euclid, Manhattan,
//!   with SIMD kernels (Braid's own four-accumulator dot and squared-L2 kernels on
//!   AVX-512 and AVX2, `simsimd` on other CPUs, an L1 loop compiled per instruction
//!   set; the level is detected once per process) and a plain `f64` reference for
//!   each in [`scalar`];
//! - Qdrant's score conventions ([`Kernel`], [`is_better`], [`compare`],
//!   [`passes_threshold`]): Cosine vectors are normalised once at insert and scored
//!   by dot product; Dot is the raw dot product; Euclid and Manhattan return
//!   distances, smaller is better (`docs/distance.md`);
//! - one query against a contiguous block ([`score_block`]) and many queries against
//!   a block through a `faer` matrix product ([`score_matrix`]);
//! - one-byte codes of vectors ([`Codes`]) that rank candidates at a quarter of the
//!   memory traffic before they are re-scored exactly;
//! - bounded top-k selection with ties to the lower offset ([`TopK`], [`top_k`]);
//! - the validation every inserted and query vector passes ([`validate`],
//!   [`prepare`]).
//!
//! What it deliberately does not do: it knows nothing of points, ids, payloads or
//! graphs, and it never allocates per scored pair.
//!
//! ```
//! use braid_distance::{prepare, top_k, Kernel, Metric};
//!
//! let metric = Metric::Cosine;
//! let stored: Vec<f32> = [[3.0, 4.0], [1.0, 0.0], [0.0, -2.0]]
//!     .iter()
//!     .flat_map(|v| prepare(metric, 2, v).unwrap())
//!     .collect();
//! let query = prepare(metric, 2, &[1.0, 1.0]).unwrap();
//!
//! let mut scores = vec![0.0; 3];
//! braid_distance::score_block(&Kernel::new(metric), &query, &stored, &mut scores).unwrap();
//! let best = top_k(&scores, 2, metric);
//! assert_eq!(best[0].offset.0, 0); // (0.6, 0.8) is closest in angle to (1, 1)
//! assert!((best[0].score - 0.98995).abs() < 1e-4);
//! ```
// `unsafe` only where ARCHITECTURE.md says: the module allowed below.
#![deny(unsafe_code)]

mod block;
mod codes;
mod held;
mod kernel;
mod product;
mod row;
pub mod scalar;
#[allow(unsafe_code)]
pub mod simd;
mod topk;
mod validate;

pub use block::{
    MATRIX_MIN_QUERIES, scan_top_k, score_block, score_block_raw, score_matrix, score_matrix_faer,
    score_matrix_pairs,
};
pub use braid_core::Metric;
pub use codes::{
    CodeDotFn, CodeKind, CodePairs, CodedQuery, Codes, MAX_CODED_DIM, MIN_CODED_DIM, PRODUCT_SAMPLE,
    Serialized, dot_i8, dot_i8_paths, dot_i8_portable,
};
pub use held::{CodesBuffer, CodesFile};
pub use kernel::{Kernel, compare, is_better, passes_threshold, score};
pub use product::Compression;
pub use row::RowKernel;
pub use topk::{TopK, top_k};
pub use validate::{VectorError, max_component, normalize, prepare, prepare_as, validate, validate_as};
