//! The element types a space may store its vectors in (Qdrant's `datatype`).

use std::borrow::Cow;
use std::fmt;

use serde::{Deserialize, Serialize};

pub use half::f16;

/// How a space stores each component of its vectors.
///
/// Vectors always arrive and leave as `f32`; the datatype is what rows hold in memory
/// and on disk. `Float16` halves the rows (rounding each component to the nearest
/// half-precision value); `Uint8` quarters them and holds integers `0..=255` exactly,
/// for embeddings that are already quantised to bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Datatype {
    /// Four bytes per component (the default).
    #[default]
    Float32,
    /// Two bytes per component: IEEE 754 half precision.
    Float16,
    /// One byte per component: integers `0..=255`.
    Uint8,
}

impl Datatype {
    /// Every datatype, in the order of their codes.
    pub const ALL: [Datatype; 3] = [Datatype::Float32, Datatype::Float16, Datatype::Uint8];

    /// Bytes per component.
    pub fn width(self) -> usize {
        match self {
            Datatype::Float32 => 4,
            Datatype::Float16 => 2,
            Datatype::Uint8 => 1,
        }
    }

    /// The name Qdrant's API uses (`float32`, `float16`, `uint8`).
    pub fn name(self) -> &'static str {
        match self {
            Datatype::Float32 => "float32",
            Datatype::Float16 => "float16",
            Datatype::Uint8 => "uint8",
        }
    }

    /// The datatype named `name`, if any.
    pub fn from_name(name: &str) -> Option<Datatype> {
        Datatype::ALL.into_iter().find(|d| d.name() == name)
    }

    /// The one-byte code files record (`0` is `Float32`, so older files, whose
    /// header holds zeros there, read as `f32`).
    pub fn code(self) -> u8 {
        match self {
            Datatype::Float32 => 0,
            Datatype::Float16 => 1,
            Datatype::Uint8 => 2,
        }
    }

    /// The datatype of `code`, if any.
    pub fn from_code(code: u8) -> Option<Datatype> {
        Datatype::ALL.into_iter().find(|d| d.code() == code)
    }

    /// Whether `value` is one this datatype holds: finite, and for `Float16` within
    /// its range (±65,504), for `Uint8` an integer `0..=255`. Stored values are the
    /// nearest this datatype holds (exact for `Uint8`).
    pub fn holds(self, value: f32) -> bool {
        match self {
            Datatype::Float32 => value.is_finite(),
            Datatype::Float16 => value.is_finite() && value.abs() <= f16::MAX.to_f32(),
            Datatype::Uint8 => (0.0..=255.0).contains(&value) && value.fract() == 0.0,
        }
    }
}

impl fmt::Display for Datatype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A component type rows are stored in: `f32`, [`f16`](struct@f16) or `u8`, one per [`Datatype`].
///
/// Plain old data (`bytemuck::Pod`), so rows are written and mapped as their bytes.
pub trait Element: bytemuck::Pod + Default + Send + Sync + fmt::Debug + 'static {
    /// The datatype this element type stores.
    const DATATYPE: Datatype;

    /// The component as `f32` (exact: every stored value is an `f32`).
    fn to_f32(self) -> f32;

    /// The stored value nearest `value`, which the caller has checked with
    /// [`Datatype::holds`].
    fn from_f32(value: f32) -> Self;

    /// A row as `f32`s: borrowed when the rows are `f32`.
    fn widen(row: &[Self]) -> Cow<'_, [f32]> {
        Cow::Owned(row.iter().map(|x| x.to_f32()).collect())
    }

    /// [`Element::widen`] without allocating: the row itself when the rows are `f32`,
    /// else its values written into `buf`.
    fn widen_into<'a>(row: &'a [Self], buf: &'a mut Vec<f32>) -> &'a [f32] {
        buf.clear();
        buf.extend(row.iter().map(|x| x.to_f32()));
        buf
    }

    /// `vector` in this element type (see [`Element::from_f32`]).
    fn narrow(vector: &[f32]) -> Vec<Self> {
        vector.iter().map(|&x| Self::from_f32(x)).collect()
    }
}

impl Element for f32 {
    const DATATYPE: Datatype = Datatype::Float32;
    #[inline]
    fn to_f32(self) -> f32 {
        self
    }
    #[inline]
    fn from_f32(value: f32) -> Self {
        value
    }
    fn widen(row: &[f32]) -> Cow<'_, [f32]> {
        Cow::Borrowed(row)
    }
    fn widen_into<'a>(row: &'a [f32], _: &'a mut Vec<f32>) -> &'a [f32] {
        row
    }
    fn narrow(vector: &[f32]) -> Vec<f32> {
        vector.to_vec()
    }
}

impl Element for f16 {
    const DATATYPE: Datatype = Datatype::Float16;
    #[inline]
    fn to_f32(self) -> f32 {
        f16::to_f32(self)
    }
    #[inline]
    fn from_f32(value: f32) -> Self {
        f16::from_f32(value)
    }
    fn widen(row: &[f16]) -> Cow<'_, [f32]> {
        use half::slice::HalfFloatSliceExt;
        let mut out = vec![0.0; row.len()];
        row.convert_to_f32_slice(&mut out);
        Cow::Owned(out)
    }
    fn widen_into<'a>(row: &'a [f16], buf: &'a mut Vec<f32>) -> &'a [f32] {
        use half::slice::HalfFloatSliceExt;
        buf.clear();
        buf.resize(row.len(), 0.0);
        row.convert_to_f32_slice(buf);
        buf
    }
}

impl Element for u8 {
    const DATATYPE: Datatype = Datatype::Uint8;
    #[inline]
    fn to_f32(self) -> f32 {
        f32::from(self)
    }
    #[inline]
    fn from_f32(value: f32) -> Self {
        // `as` saturates; the caller has checked the value is an integer in range.
        value as u8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_codes_round_trip() {
        for d in Datatype::ALL {
            assert_eq!(Datatype::from_name(d.name()), Some(d));
            assert_eq!(Datatype::from_code(d.code()), Some(d));
            assert_eq!(serde_json::to_value(d).unwrap(), serde_json::json!(d.name()));
        }
        assert_eq!(Datatype::from_name("int8"), None);
        assert_eq!(Datatype::from_code(3), None);
        assert_eq!(Datatype::default().code(), 0);
    }

    #[test]
    fn holds_what_each_type_stores_exactly_or_nearly() {
        assert!(Datatype::Uint8.holds(0.0) && Datatype::Uint8.holds(255.0));
        for bad in [-1.0, 256.0, 0.5, f32::NAN, f32::INFINITY] {
            assert!(!Datatype::Uint8.holds(bad), "{bad}");
        }
        assert!(Datatype::Float16.holds(65504.0) && Datatype::Float16.holds(-1e-9));
        for bad in [65520.0, -1e6, f32::NAN, f32::NEG_INFINITY] {
            assert!(!Datatype::Float16.holds(bad), "{bad}");
        }
        assert!(!Datatype::Float32.holds(f32::NAN) && Datatype::Float32.holds(f32::MAX));
        assert_eq!(<u8 as Element>::narrow(&[0.0, 7.0, 255.0]), vec![0, 7, 255]);
        let halves = <f16 as Element>::narrow(&[0.1, -2.5]);
        assert_eq!(f16::widen(&halves).as_ref(), &[f16::from_f32(0.1).to_f32(), -2.5]);
        assert!(matches!(f32::widen(&[1.0]), Cow::Borrowed(_)));
    }
}
