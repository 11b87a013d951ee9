//! Sparse vectors for Braid's sparse named spaces (`docs/hybrid.md`).
//!
//! A [`SparseVector`] is validated once (indices sorted and unique, values finite,
//! at most [`MAX_NNZ`] entries). A [`SparseIndex`] holds one space's vectors by
//! segment offset with a posting list per dimension and answers exact top-k dot
//! product searches with MaxScore pruning ([`SparseIndex::search`]), or by scoring a
//! candidate set ([`SparseIndex::scan`]). [`idf`] is Qdrant's IDF, which
//! [`SparseIndex::with_idf`] applies to a query from the live document frequencies.
//!
//! ```
//! use braid_sparse::{SparseIndex, SparseVector};
//!
//! let mut index = SparseIndex::new();
//! index.insert(0, SparseVector::new(vec![1, 5], vec![1.0, 2.0]).unwrap());
//! index.insert(1, SparseVector::new(vec![5, 9], vec![0.5, 4.0]).unwrap());
//! let query = SparseVector::new(vec![5], vec![1.0]).unwrap();
//! let (hits, _) = index.search(&query, 10, |_| true, |offset| offset);
//! assert_eq!(hits, vec![(0, 2.0), (1, 0.5)]);
//! ```
#![forbid(unsafe_code)]

mod index;
mod vector;

pub use index::{SearchStats, SparseIndex, idf};
pub use vector::{MAX_NNZ, SparseError, SparseVector};
