//! The sparse vector type: indices and values, validated once.

use thiserror::Error;

/// The most non-zero entries one sparse vector may hold. A bound on what one point or
/// one query costs; learned sparse models (SPLADE) write a few hundred, BM25 one per
/// distinct token.
pub const MAX_NNZ: usize = 65_536;

/// Why a sparse vector was refused.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum SparseError {
    /// `indices` and `values` differ in length.
    #[error("a sparse vector needs as many values as indices: {indices} indices, {values} values")]
    LengthMismatch {
        /// Indices given.
        indices: usize,
        /// Values given.
        values: usize,
    },
    /// An index appears twice (Qdrant refuses these: indices must be unique).
    #[error("sparse vector indices must be unique: {index} appears more than once")]
    Duplicate {
        /// The repeated index.
        index: u32,
    },
    /// A NaN or infinite value.
    #[error("sparse vector value at index {index} is not a finite number")]
    NotFinite {
        /// The index whose value it is.
        index: u32,
    },
    /// More entries than [`MAX_NNZ`].
    #[error("a sparse vector holds at most {max} entries, got {got}")]
    TooLong {
        /// The limit.
        max: usize,
        /// Entries given.
        got: usize,
    },
}

/// A sparse vector: the non-zero entries of a vector over `u32` dimensions, sorted
/// by index with no index twice, every value finite. Any order is accepted on input
/// and sorted (as Qdrant does); repeated indices are refused. Negative values and
/// the empty vector are allowed, as in Qdrant: an empty vector shares no index with
/// anything and so is never found by a search.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "Raw", into = "Raw")]
pub struct SparseVector {
    indices: Vec<u32>,
    values: Vec<f32>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Raw {
    indices: Vec<u32>,
    values: Vec<f32>,
}

impl TryFrom<Raw> for SparseVector {
    type Error = SparseError;
    fn try_from(raw: Raw) -> Result<Self, SparseError> {
        SparseVector::new(raw.indices, raw.values)
    }
}

impl From<SparseVector> for Raw {
    fn from(v: SparseVector) -> Raw {
        Raw { indices: v.indices, values: v.values }
    }
}

impl SparseVector {
    /// Validates and sorts the pairs `(indices[i], values[i])`.
    pub fn new(indices: Vec<u32>, values: Vec<f32>) -> Result<SparseVector, SparseError> {
        if indices.len() != values.len() {
            return Err(SparseError::LengthMismatch { indices: indices.len(), values: values.len() });
        }
        if indices.len() > MAX_NNZ {
            return Err(SparseError::TooLong { max: MAX_NNZ, got: indices.len() });
        }
        if let Some(i) = values.iter().position(|v| !v.is_finite()) {
            return Err(SparseError::NotFinite { index: indices[i] });
        }
        let (indices, values) = if indices.is_sorted() {
            (indices, values)
        } else {
            let mut pairs: Vec<(u32, f32)> = indices.into_iter().zip(values).collect();
            pairs.sort_by_key(|p| p.0);
            pairs.into_iter().unzip()
        };
        if let Some(w) = indices.windows(2).find(|w| w[0] == w[1]) {
            return Err(SparseError::Duplicate { index: w[0] });
        }
        Ok(SparseVector { indices, values })
    }

    /// The vector with no entries.
    pub fn empty() -> SparseVector {
        SparseVector::default()
    }

    /// The indices, ascending.
    pub fn indices(&self) -> &[u32] {
        &self.indices
    }

    /// The values, in the order of [`SparseVector::indices`].
    pub fn values(&self) -> &[f32] {
        &self.values
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.indices.len()
    }

    /// Whether it holds no entry.
    pub fn is_empty(&self) -> bool {
        self.indices.is_empty()
    }

    /// The pairs, ascending by index.
    pub fn iter(&self) -> impl Iterator<Item = (u32, f32)> + '_ {
        self.indices.iter().copied().zip(self.values.iter().copied())
    }

    /// The dot product over the indices both vectors hold, summed in ascending index
    /// order in `f32` (the order every Braid sparse score is summed in, so that the
    /// inverted index and a scan give bit-identical scores), and whether they share
    /// any index at all.
    pub fn dot(&self, other: &SparseVector) -> Option<f32> {
        let (mut i, mut j) = (0, 0);
        let (mut sum, mut shared) = (0.0f32, false);
        while i < self.indices.len() && j < other.indices.len() {
            match self.indices[i].cmp(&other.indices[j]) {
                std::cmp::Ordering::Less => i += 1,
                std::cmp::Ordering::Greater => j += 1,
                std::cmp::Ordering::Equal => {
                    sum += self.values[i] * other.values[j];
                    shared = true;
                    i += 1;
                    j += 1;
                }
            }
        }
        shared.then_some(sum)
    }

    /// The same indices with each value multiplied by `weight(index)`.
    pub fn reweighted(&self, weight: impl Fn(u32) -> f32) -> SparseVector {
        let values = self.iter().map(|(i, v)| v * weight(i)).collect();
        SparseVector { indices: self.indices.clone(), values }
    }

    /// Bytes held on the heap.
    pub fn heap_bytes(&self) -> usize {
        self.indices.capacity() * 4 + self.values.capacity() * 4
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_is_sorted_and_bad_input_refused() {
        let v = SparseVector::new(vec![7, 1, 3], vec![0.7, 0.1, 0.3]).unwrap();
        assert_eq!(v.indices(), &[1, 3, 7]);
        assert_eq!(v.values(), &[0.1, 0.3, 0.7]);
        assert_eq!(
            SparseVector::new(vec![1, 2], vec![1.0]),
            Err(SparseError::LengthMismatch { indices: 2, values: 1 })
        );
        assert_eq!(SparseVector::new(vec![3, 1, 3], vec![1.0; 3]), Err(SparseError::Duplicate { index: 3 }));
        assert_eq!(
            SparseVector::new(vec![4, 5], vec![1.0, f32::NAN]),
            Err(SparseError::NotFinite { index: 5 })
        );
        assert_eq!(
            SparseVector::new(vec![0; MAX_NNZ + 1], vec![0.0; MAX_NNZ + 1]),
            Err(SparseError::TooLong { max: MAX_NNZ, got: MAX_NNZ + 1 })
        );
        assert!(SparseVector::new(vec![], vec![]).unwrap().is_empty());
        assert!(SparseVector::new(vec![2], vec![-1.5]).is_ok());
    }

    #[test]
    fn dot_sums_shared_indices_only() {
        let a = SparseVector::new(vec![1, 3, 5], vec![1.0, 2.0, 3.0]).unwrap();
        let b = SparseVector::new(vec![3, 4, 5], vec![10.0, 1.0, -1.0]).unwrap();
        assert_eq!(a.dot(&b), Some(17.0));
        let c = SparseVector::new(vec![2], vec![1.0]).unwrap();
        assert_eq!(a.dot(&c), None);
        assert_eq!(a.dot(&SparseVector::empty()), None);
    }

    #[test]
    fn serde_validates() {
        let ok: SparseVector = serde_json::from_str(r#"{"indices":[2,1],"values":[0.2,0.1]}"#).unwrap();
        assert_eq!(ok.indices(), &[1, 2]);
        assert!(serde_json::from_str::<SparseVector>(r#"{"indices":[1,1],"values":[0.2,0.1]}"#).is_err());
    }
}
