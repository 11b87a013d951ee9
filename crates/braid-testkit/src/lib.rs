//! Deterministic data for Braid's tests, benches and examples: a tiny xorshift
//! generator, so that every data set is reproducible from a seed without a dependency.
//!
//! ```
//! use braid_testkit::Rng;
//!
//! let mut rng = Rng::new(7);
//! let centre = rng.vector(4);
//! let near = rng.around(&centre, 0.1);
//! assert!(centre.iter().zip(&near).all(|(c, n)| (c - n).abs() <= 0.05));
//! assert_eq!(Rng::new(7).vector(4), centre);
//! ```

/// A xorshift64 generator. Not for anything but test data.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed` (any value; zero is mapped to a non-zero state).
    pub fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }

    /// The next raw 64-bit value.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Uniform in [−0.5, 0.5).
    pub fn uniform(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / 16_777_216.0 - 0.5
    }

    /// `dim` values uniform in [−0.5, 0.5).
    pub fn vector(&mut self, dim: usize) -> Vec<f32> {
        (0..dim).map(|_| self.uniform()).collect()
    }

    /// `centre` plus uniform noise of width `spread` in each component.
    pub fn around(&mut self, centre: &[f32], spread: f32) -> Vec<f32> {
        centre.iter().map(|c| c + spread * self.uniform()).collect()
    }
}
