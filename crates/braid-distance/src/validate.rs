//! Checks every vector passes before it is stored or used as a query, and the one
//! transformation applied at insert: L2 normalisation under Cosine.

use braid_core::{Datatype, Metric};
use thiserror::Error;

/// Why a vector was refused.
#[derive(Clone, Debug, PartialEq, Error)]
#[non_exhaustive]
pub enum VectorError {
    /// The vector's length is not the space's dimension.
    #[error("expected a vector of dimension {expected}, got {got}")]
    DimensionMismatch {
        /// The configured dimension.
        expected: usize,
        /// The length that was given.
        got: usize,
    },
    /// A component is NaN or infinite.
    #[error("vector component {index} is not finite ({value})")]
    NonFinite {
        /// Position of the first offending component.
        index: usize,
        /// Its value.
        value: f32,
    },
    /// A component so large that a score could overflow `f32` (a dot product or a
    /// squared distance over `dim` such components). Only under Dot, Euclid and
    /// Manhattan: Cosine vectors are normalised first.
    #[error("vector component {index} is {value}; at most ±{max} keeps every score finite")]
    TooLarge {
        /// Position of the first offending component.
        index: usize,
        /// Its value.
        value: f32,
        /// The largest magnitude allowed for this dimension.
        max: f32,
    },
    /// A component the space's datatype cannot hold: beyond ±65,504 for `float16`,
    /// not an integer in `0..=255` for `uint8`.
    #[error("vector component {index} is {value}, which {datatype} cannot hold{hint}", hint = datatype_hint(*datatype))]
    NotHeld {
        /// Position of the first offending component.
        index: usize,
        /// Its value.
        value: f32,
        /// The space's datatype.
        datatype: Datatype,
    },
    /// An all-zero vector has no direction, so it has no cosine with anything.
    #[error("a zero vector has no cosine similarity; it cannot be used with the Cosine metric")]
    ZeroVector,
    /// A block or output buffer does not have the shape the call needs.
    #[error("{what} holds {got} values, expected {expected}")]
    BlockShape {
        /// Which argument is wrong.
        what: &'static str,
        /// How many values it should hold.
        expected: usize,
        /// How many it holds.
        got: usize,
    },
}

/// The largest component magnitude a `dim`-dimensional vector may have under Dot,
/// Euclid and Manhattan: `sqrt(f32::MAX / (8 dim))`. Two such vectors have a dot
/// product of at most `dim · max² = f32::MAX / 8` and a squared distance of at most
/// `dim · (2 max)² = f32::MAX / 2` (half of `f32::MAX`, so rounding cannot overflow),
/// so every score (and DBSF's statistics over them, taken in `f64`) stays finite. At
/// 384 dimensions the bound is about 3.3e17, far beyond any embedding model's range.
pub fn max_component(dim: usize) -> f32 {
    (f64::from(f32::MAX) / (8.0 * dim.max(1) as f64)).sqrt() as f32
}

/// Checks a vector against a space's `dim` and `metric`.
///
/// The facade calls this on every insert and every query vector, before anything is
/// touched. An empty vector with `dim == 0` is not possible here: spaces have `dim ≥ 1`.
pub fn validate(metric: Metric, dim: usize, vector: &[f32]) -> Result<(), VectorError> {
    if vector.len() != dim {
        return Err(VectorError::DimensionMismatch { expected: dim, got: vector.len() });
    }
    if let Some((index, &value)) = vector.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        return Err(VectorError::NonFinite { index, value });
    }
    if metric == Metric::Cosine {
        if vector.iter().all(|&v| v == 0.0) {
            return Err(VectorError::ZeroVector);
        }
    } else {
        let max = max_component(dim);
        if let Some((index, &value)) = vector.iter().enumerate().find(|(_, v)| v.abs() > max) {
            return Err(VectorError::TooLarge { index, value, max });
        }
    }
    Ok(())
}

/// Validates `vector` and returns it in stored form: normalised under Cosine, as given
/// otherwise.
pub fn prepare(metric: Metric, dim: usize, vector: &[f32]) -> Result<Vec<f32>, VectorError> {
    validate(metric, dim, vector)?;
    let mut stored = vector.to_vec();
    if metric == Metric::Cosine {
        normalize(&mut stored);
        // Squaring tiny components can underflow to a zero norm even though the
        // vector is not zero; such a vector cannot be normalised in f32.
        if stored.iter().any(|v| !v.is_finite()) {
            return Err(VectorError::ZeroVector);
        }
    }
    Ok(stored)
}

fn datatype_hint(datatype: Datatype) -> &'static str {
    match datatype {
        Datatype::Uint8 => " (uint8 stores integers 0 to 255)",
        Datatype::Float16 => " (float16 stores magnitudes up to 65504)",
        Datatype::Float32 => "",
    }
}

/// [`validate`] for a space storing `datatype`, whose every component must also be one
/// the datatype holds ([`Datatype::holds`]).
pub fn validate_as(
    metric: Metric,
    datatype: Datatype,
    dim: usize,
    vector: &[f32],
) -> Result<(), VectorError> {
    validate(metric, dim, vector)?;
    held(datatype, vector)
}

/// [`prepare`] for a space storing `datatype`: the stored form is normalised under
/// Cosine only where the datatype can hold a unit vector (not `uint8`, whose rows are
/// stored as given and whose Cosine kernel divides by their length), and every
/// component of it must be one the datatype holds.
pub fn prepare_as(
    metric: Metric,
    datatype: Datatype,
    dim: usize,
    vector: &[f32],
) -> Result<Vec<f32>, VectorError> {
    let stored = if datatype == Datatype::Uint8 {
        validate(metric, dim, vector)?;
        vector.to_vec()
    } else {
        prepare(metric, dim, vector)?
    };
    held(datatype, &stored)?;
    Ok(stored)
}

fn held(datatype: Datatype, vector: &[f32]) -> Result<(), VectorError> {
    match vector.iter().enumerate().find(|(_, v)| !datatype.holds(**v)) {
        Some((index, &value)) => Err(VectorError::NotHeld { index, value, datatype }),
        None => Ok(()),
    }
}

/// Scales `vector` to unit L2 length in place.
///
/// A zero vector, and one whose squared length is already within `1e-6` of 1, is left
/// unchanged, so normalising twice gives the same bits as normalising once.
pub fn normalize(vector: &mut [f32]) {
    let squared: f64 = vector.iter().map(|&v| f64::from(v) * f64::from(v)).sum();
    if squared == 0.0 || (squared - 1.0).abs() <= 1e-6 {
        return;
    }
    let inv = (1.0 / squared.sqrt()) as f32;
    for v in vector.iter_mut() {
        *v *= inv;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datatypes_refuse_what_they_cannot_hold() {
        let bytes = prepare_as(Metric::Cosine, Datatype::Uint8, 3, &[3.0, 0.0, 4.0]).unwrap();
        assert_eq!(bytes, vec![3.0, 0.0, 4.0], "uint8 rows are stored as given, even under Cosine");
        let halves = prepare_as(Metric::Cosine, Datatype::Float16, 2, &[3.0e5, 4.0e5]).unwrap();
        assert_eq!(halves, vec![0.6, 0.8], "normalised first, then it fits");
        for (datatype, metric, v, index) in [
            (Datatype::Uint8, Metric::Dot, [1.0, 256.0], 1),
            (Datatype::Uint8, Metric::Euclid, [-1.0, 2.0], 0),
            (Datatype::Uint8, Metric::Cosine, [1.0, 2.5], 1),
            (Datatype::Float16, Metric::Dot, [70000.0, 1.0], 0),
        ] {
            let err = prepare_as(metric, datatype, 2, &v).unwrap_err();
            assert_eq!(err, VectorError::NotHeld { index, value: v[index], datatype });
            assert!(err.to_string().contains(datatype.name()), "{err}");
            assert_eq!(validate_as(metric, datatype, 2, &v).unwrap_err(), err);
        }
        // NaN is refused before the datatype is asked.
        let err = prepare_as(Metric::Dot, Datatype::Float16, 1, &[f32::NAN]).unwrap_err();
        assert!(matches!(err, VectorError::NonFinite { index: 0, .. }));
        assert_eq!(prepare_as(Metric::Cosine, Datatype::Uint8, 2, &[0.0, 0.0]), Err(VectorError::ZeroVector));
    }

    #[test]
    fn error_table() {
        type Case<'a> = (Metric, usize, &'a [f32], Result<(), VectorError>);
        let cases: &[Case] = &[
            (Metric::Dot, 3, &[1.0, 2.0, 3.0], Ok(())),
            (Metric::Dot, 3, &[1.0, 2.0], Err(VectorError::DimensionMismatch { expected: 3, got: 2 })),
            (Metric::Euclid, 2, &[], Err(VectorError::DimensionMismatch { expected: 2, got: 0 })),
            (
                Metric::Dot,
                2,
                &[1.0, f32::INFINITY],
                Err(VectorError::NonFinite { index: 1, value: f32::INFINITY }),
            ),
            (
                Metric::Manhattan,
                2,
                &[f32::NEG_INFINITY, 0.0],
                Err(VectorError::NonFinite { index: 0, value: f32::NEG_INFINITY }),
            ),
            (Metric::Cosine, 2, &[0.0, 0.0], Err(VectorError::ZeroVector)),
            (Metric::Cosine, 2, &[-0.0, 0.0], Err(VectorError::ZeroVector)),
            (Metric::Dot, 2, &[0.0, 0.0], Ok(())),
            (Metric::Euclid, 2, &[0.0, 0.0], Ok(())),
            (Metric::Cosine, 1, &[-3.0], Ok(())),
            (Metric::Cosine, 2, &[3e38, 1.0], Ok(())),
            (
                Metric::Dot,
                1,
                &[3e38],
                Err(VectorError::TooLarge { index: 0, value: 3e38, max: max_component(1) }),
            ),
            (
                Metric::Euclid,
                2,
                &[1.0, -1e19],
                Err(VectorError::TooLarge { index: 1, value: -1e19, max: max_component(2) }),
            ),
        ];
        for (metric, dim, vector, expected) in cases {
            assert_eq!(&validate(*metric, *dim, vector), expected, "{metric:?} dim {dim} {vector:?}");
        }
        // NaN compares unequal to itself, so check the variant by shape.
        assert!(matches!(
            validate(Metric::Cosine, 2, &[0.5, f32::NAN]),
            Err(VectorError::NonFinite { index: 1, value }) if value.is_nan()
        ));
    }

    #[test]
    fn the_largest_allowed_components_score_finitely() {
        for dim in [1, 3, 384, 4096, 65_536] {
            let m = max_component(dim);
            let (a, b) = (vec![m; dim], vec![-m; dim]);
            assert!(validate(Metric::Dot, dim, &a).is_ok() && validate(Metric::Euclid, dim, &b).is_ok());
            let dot: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
            let l2: f32 = a.iter().zip(&b).map(|(x, y)| (x - y) * (x - y)).sum();
            assert!(dot.is_finite() && l2.is_finite(), "dim {dim}: dot {dot}, l2 {l2}");
        }
    }

    #[test]
    fn prepare_normalises_only_cosine() {
        assert_eq!(prepare(Metric::Cosine, 2, &[3.0, 4.0]).unwrap(), vec![0.6, 0.8]);
        assert_eq!(prepare(Metric::Dot, 2, &[3.0, 4.0]).unwrap(), vec![3.0, 4.0]);
        assert_eq!(prepare(Metric::Cosine, 2, &[1e-30, 0.0]), Ok(vec![1.0, 0.0]));
        assert_eq!(prepare(Metric::Cosine, 2, &[1e-45, 0.0]), Err(VectorError::ZeroVector));
    }

    #[test]
    fn normalize_leaves_zero_alone() {
        let mut v = [0.0f32; 4];
        normalize(&mut v);
        assert_eq!(v, [0.0; 4]);
    }
}
