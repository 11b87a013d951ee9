//! Plain reference implementations, accumulated in `f64`.
//!
//! They are the yardstick the SIMD paths are tested against, not a fast path: nothing
//! on a search path calls them.

/// Σ aᵢ·bᵢ.
pub fn dot(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(&x, &y)| f64::from(x) * f64::from(y)).sum()
}

/// Σ (aᵢ − bᵢ)².
pub fn l2_squared(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(&x, &y)| {
            let d = f64::from(x) - f64::from(y);
            d * d
        })
        .sum()
}

/// Σ |aᵢ − bᵢ|.
pub fn l1(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(&x, &y)| (f64::from(x) - f64::from(y)).abs()).sum()
}

/// a·b / (|a|·|b|), or 0 when either vector is zero.
pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let norms = dot(a, a).sqrt() * dot(b, b).sqrt();
    if norms == 0.0 { 0.0 } else { dot(a, b) / norms }
}

/// Σ |aᵢ·bᵢ|: the scale against which a dot product's rounding error is judged.
pub fn dot_magnitude(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(&x, &y)| (f64::from(x) * f64::from(y)).abs()).sum()
}
