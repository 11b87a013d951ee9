//! Product codes (Qdrant's product quantization): each vector's residual from the
//! space's centre is cut into consecutive sub-vectors, and each sub-vector is kept as
//! the index (one byte) of its nearest of 256 centroids learnt for that part of the
//! space (Jégou, Douze & Schmid, "Product quantization for nearest neighbor search",
//! 2011). A query is compared with every centroid of every part once, into a table;
//! the distance to a coded vector is then one table read per byte of its code
//! (asymmetric distance: the query is never coded).
//!
//! The codebook is learnt by k-means (Lloyd's iterations) on a sample of residuals,
//! each part on its own: the first centroids are sample rows chosen by k-means++ from
//! a generator with a fixed seed, [`ROUNDS`] rounds of assignment and means follow, and a centroid nobody is
//! nearest to takes half of the most chosen centroid's rows (both move a step apart). Everything is in sample order and independent of the
//! number of threads, so the same rows give the same codebook.

/// Centroids per part: one byte of code.
pub(crate) const CENTROIDS: usize = 256;

/// Rounds of k-means.
pub(crate) const ROUNDS: usize = 10;

/// How much smaller the codes are than the `f32` rows (Qdrant's `compression`): each
/// byte of code stands for `ratio / 4` components.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Compression {
    /// One component per byte.
    X4,
    /// Two components per byte.
    X8,
    /// Four components per byte.
    #[default]
    X16,
    /// Eight components per byte.
    X32,
    /// Sixteen components per byte.
    X64,
}

impl Compression {
    /// Every ratio, smallest first.
    pub const ALL: [Compression; 5] =
        [Compression::X4, Compression::X8, Compression::X16, Compression::X32, Compression::X64];

    /// The ratio of the rows' bytes to the codes' (4, 8, 16, 32 or 64).
    pub fn ratio(self) -> usize {
        4 << self.code()
    }

    /// Components one byte of code stands for.
    pub fn width(self) -> usize {
        self.ratio() / 4
    }

    /// Bytes of code for `dim` components.
    pub fn code_len(self, dim: usize) -> usize {
        dim.div_ceil(self.width())
    }

    /// The ratio's name on Qdrant's wire: `x4` … `x64`.
    pub fn name(self) -> &'static str {
        ["x4", "x8", "x16", "x32", "x64"][self.code() as usize]
    }

    /// The ratio named `x4` … `x64` (case-insensitive).
    pub fn from_name(name: &str) -> Option<Compression> {
        Compression::ALL.into_iter().find(|c| c.name().eq_ignore_ascii_case(name))
    }

    /// 0 for `x4` … 4 for `x64`: Qdrant's `CompressionRatio` numbers, and the byte
    /// the codes file keeps.
    pub fn code(self) -> u8 {
        match self {
            Compression::X4 => 0,
            Compression::X8 => 1,
            Compression::X16 => 2,
            Compression::X32 => 3,
            Compression::X64 => 4,
        }
    }

    /// The ratio numbered `code` ([`Compression::code`]).
    pub fn from_code(code: u8) -> Option<Compression> {
        Compression::ALL.get(code as usize).copied()
    }
}

/// The learnt centroids of every part, kept as a `dim × 256` matrix: row `i` holds
/// component `i` of the 256 centroids of the part component `i` belongs to, so that
/// comparing one component with all 256 centroids reads one contiguous row.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Codebook {
    dim: usize,
    width: usize,
    centroids: Vec<f32>,
}

/// The index of the smallest of `d`, the first on ties: the minimum first, kept in 16
/// independent lanes (element-wise, so the compiler makes vector `min`s of it; one
/// running minimum would be a chain of 256 dependent compares), then where it is.
#[inline]
fn nearest(d: &[f32; CENTROIDS]) -> u8 {
    let mut lanes = [f32::INFINITY; 16];
    for chunk in d.chunks_exact(16) {
        for (m, &x) in lanes.iter_mut().zip(chunk) {
            *m = if x < *m { x } else { *m };
        }
    }
    let min = lanes.iter().fold(f32::INFINITY, |m, &x| if x < m { x } else { m });
    d.iter().position(|&x| x == min).unwrap_or(0) as u8
}

impl Codebook {
    /// Bytes of code per vector.
    pub(crate) fn parts(&self) -> usize {
        self.dim.div_ceil(self.width)
    }

    /// The components of part `j`.
    fn range(&self, j: usize) -> std::ops::Range<usize> {
        j * self.width..((j + 1) * self.width).min(self.dim)
    }

    /// Squared distances from `r`'s components `range` to the 256 centroids of their part.
    #[inline]
    fn distances(centroids: &[f32], r: &[f32], range: std::ops::Range<usize>) -> [f32; CENTROIDS] {
        let mut d = [0.0f32; CENTROIDS];
        crate::simd::part_scores(
            &centroids[range.start * CENTROIDS..range.end * CENTROIDS],
            &r[range],
            true,
            &mut d,
        );
        d
    }

    /// The code of residual `r` into `out` (one byte per part).
    pub(crate) fn encode(&self, r: &[f32], out: &mut [u8]) {
        for (j, o) in out.iter_mut().enumerate() {
            *o = nearest(&Codebook::distances(&self.centroids, r, self.range(j)));
        }
    }

    /// Learns the codebook of `width`-component parts from `sample` (rows of `dim`
    /// residuals, at least one), the parts split over up to `threads` threads.
    pub(crate) fn train(sample: &[f32], dim: usize, width: usize, threads: usize) -> Codebook {
        let n = sample.len() / dim;
        debug_assert!(n > 0 && sample.len() == n * dim);
        let mut book = Codebook { dim, width, centroids: vec![0.0; dim * CENTROIDS] };
        // Parts are independent: threads take whole parts (rows of the matrix).
        let parts = book.parts();
        let per = parts.div_ceil(threads.clamp(1, parts));
        let rows_per = per * width * CENTROIDS;
        braid_core::run_parts(book.centroids.chunks_mut(rows_per).enumerate(), threads, |(t, block)| {
            let first = t * per;
            let components = block.len() / CENTROIDS;
            for j in 0..components.div_ceil(width) {
                let start = j * width;
                let end = (start + width).min(components);
                let part = &mut block[start * CENTROIDS..end * CENTROIDS];
                train_part(sample, dim, (first * width + start)..(first * width + end), part, n);
            }
        });
        book
    }

    /// The residual `code` stands for (each part's centroid), into `out`.
    #[cfg(test)]
    pub(crate) fn decode(&self, code: &[u8], out: &mut [f32]) {
        for (j, &c) in code.iter().enumerate() {
            for i in self.range(j) {
                out[i] = self.centroids[i * CENTROIDS + c as usize];
            }
        }
    }

    /// The query's table: for part `j` and centroid `c`, `table[j·256 + c]` is the
    /// part's share of the distance — `Σᵢ (qᵢ − cᵢ)²` when `squared`, else `−Σᵢ qᵢ·cᵢ`.
    pub(crate) fn table(&self, q: &[f32], squared: bool) -> Vec<f32> {
        let mut table = vec![0.0f32; self.parts() * CENTROIDS];
        for (j, t) in table.chunks_exact_mut(CENTROIDS).enumerate() {
            let range = self.range(j);
            let t: &mut [f32; CENTROIDS] = t.try_into().expect("256 per part");
            crate::simd::part_scores(
                &self.centroids[range.start * CENTROIDS..range.end * CENTROIDS],
                &q[range],
                squared,
                t,
            );
        }
        table
    }

    /// The sum of `code`'s entries of `table`.
    #[inline]
    pub(crate) fn lookup(table: &[f32], code: &[u8]) -> f32 {
        let mut acc = [0.0f32; 4];
        let mut chunks = code.chunks_exact(4);
        let mut j = 0;
        for c in &mut chunks {
            for k in 0..4 {
                acc[k] += table[(j + k) * CENTROIDS + c[k] as usize];
            }
            j += 4;
        }
        for (k, &c) in chunks.remainder().iter().enumerate() {
            acc[k] += table[(j + k) * CENTROIDS + c as usize];
        }
        (acc[0] + acc[1]) + (acc[2] + acc[3])
    }

    /// The codebook's floats as bytes (little-endian), for a file.
    pub(crate) fn write(&self, out: &mut Vec<u8>) {
        for c in &self.centroids {
            out.extend_from_slice(&c.to_le_bytes());
        }
    }

    /// Bytes [`Codebook::write`] writes for `dim` components.
    pub(crate) fn file_len(dim: usize) -> usize {
        dim * CENTROIDS * 4
    }

    /// Reads what [`Codebook::write`] wrote; non-finite centroids are refused.
    pub(crate) fn read(bytes: &[u8], dim: usize, width: usize) -> Result<Codebook, String> {
        if bytes.len() != Codebook::file_len(dim) {
            return Err(format!("a codebook of {dim} components needs {} bytes", Codebook::file_len(dim)));
        }
        let centroids: Vec<f32> =
            bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
        if centroids.iter().any(|c| !c.is_finite()) {
            return Err("a codebook with a non-finite centroid".into());
        }
        Ok(Codebook { dim, width, centroids })
    }

    /// Bytes the codebook takes in memory.
    pub(crate) fn bytes(&self) -> usize {
        self.centroids.len() * 4
    }
}

/// k-means of one part: components `range` of the `n` sample rows into `part`
/// (`range.len()` rows of 256 centroids' components).
fn train_part(sample: &[f32], dim: usize, range: std::ops::Range<usize>, part: &mut [f32], n: usize) {
    let w = range.len();
    // The part's components of every row, side by side: the passes below read them
    // hundreds of times, and in place each row's few floats sit on a cache line of
    // their own.
    let rows: Vec<f32> =
        (0..n).flat_map(|p| &sample[p * dim + range.start..p * dim + range.end]).copied().collect();
    let row = |p: usize| &rows[p * w..(p + 1) * w];
    // Seeds by k-means++ (Arthur & Vassilvitskii 2007): each next seed is a row drawn
    // with probability proportional to its squared distance from the seeds so far,
    // from a generator seeded by the part's first component.
    let mut state = 0x9E37_79B9_7F4A_7C15u64 ^ (range.start as u64).wrapping_mul(0xD1B5_4A32_D192_ED03);
    let mut draw = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut nearest_sq = vec![f32::INFINITY; n];
    let mut pick = (draw() * n as f64) as usize % n;
    for c in 0..CENTROIDS {
        let seed = row(pick);
        for (i, &x) in seed.iter().enumerate() {
            part[i * CENTROIDS + c] = x;
        }
        let mut total = 0.0f64;
        for (r, best) in rows.chunks_exact(w).zip(nearest_sq.iter_mut()) {
            let d: f32 = r.iter().zip(seed).map(|(a, b)| (a - b) * (a - b)).sum();
            *best = best.min(d);
            total += f64::from(*best);
        }
        // Every row is a seed already (fewer distinct rows than centroids): repeat one.
        let mut target = draw() * total;
        pick = nearest_sq
            .iter()
            .position(|&d| {
                target -= f64::from(d);
                target < 0.0 && d > 0.0
            })
            .unwrap_or(c % n);
    }
    let mut sums = vec![0.0f64; w * CENTROIDS];
    let mut counts = vec![0u32; CENTROIDS];
    for _ in 0..ROUNDS {
        sums.fill(0.0);
        counts.fill(0);
        for r in rows.chunks_exact(w) {
            let c = nearest(&Codebook::distances(part, r, 0..w)) as usize;
            counts[c] += 1;
            for (i, &x) in r.iter().enumerate() {
                sums[i * CENTROIDS + c] += f64::from(x);
            }
        }
        for (c, &count) in counts.iter().enumerate() {
            if count > 0 {
                for i in 0..w {
                    part[i * CENTROIDS + c] = (sums[i * CENTROIDS + c] / f64::from(count)) as f32;
                }
            }
        }
        split_empty(part, w, &mut counts);
    }
}

/// Relative step by which a split centroid and the one it comes from move apart.
const SPLIT_STEP: f32 = 1.0 / 1024.0;

/// Gives every centroid nobody chose half of the most chosen one's rows: both move a
/// little apart from where it was, in opposite directions, so the next round's
/// assignment divides its rows between them (otherwise duplicate seeds, or a cluster
/// emptied by its neighbours, would stay unused for good).
fn split_empty(part: &mut [f32], w: usize, counts: &mut [u32]) {
    for c in 0..CENTROIDS {
        if counts[c] > 0 {
            continue;
        }
        let big = (0..CENTROIDS).fold(0, |b, k| if counts[k] > counts[b] { k } else { b });
        if counts[big] < 2 {
            return;
        }
        for i in 0..w {
            let m = part[i * CENTROIDS + big];
            let step = SPLIT_STEP * m.abs().max(1e-6) * if i % 2 == 0 { 1.0 } else { -1.0 };
            part[i * CENTROIDS + c] = m + step;
            part[i * CENTROIDS + big] = m - step;
        }
        counts[c] = counts[big] / 2;
        counts[big] -= counts[c];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compression_names_and_sizes() {
        for (c, (name, width)) in
            Compression::ALL.into_iter().zip([("x4", 1), ("x8", 2), ("x16", 4), ("x32", 8), ("x64", 16)])
        {
            assert_eq!(c.name(), name);
            assert_eq!(c.width(), width);
            assert_eq!(Compression::from_name(&name.to_uppercase()), Some(c));
            assert_eq!(Compression::from_code(c.code()), Some(c));
        }
        assert_eq!(Compression::X16.code_len(384), 96);
        assert_eq!(Compression::X64.code_len(100), 7);
        assert_eq!(Compression::from_name("x128"), None);
        assert_eq!(Compression::from_code(5), None);
    }

    #[test]
    fn training_finds_clusters_and_ignores_thread_count() {
        // Rows drawn around 64 points (fewer than the centroids): the learnt codebook
        // must put every row's parts near a centroid, whatever the number of threads.
        let (dim, width, n) = (12, 4, 2048);
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 24) as f32
        };
        let centres: Vec<f32> = (0..64 * dim).map(|_| next()).collect();
        let sample: Vec<f32> = (0..n * dim)
            .map(|i| centres[((i / dim) * 7919 % 64) * dim + i % dim] + 0.01 * (next() - 0.5))
            .collect();
        let one = Codebook::train(&sample, dim, width, 1);
        for threads in [2, 3, 8] {
            assert_eq!(Codebook::train(&sample, dim, width, threads), one, "{threads} threads");
        }
        let mut code = vec![0u8; one.parts()];
        let mut error = 0.0;
        for p in 0..n {
            let r = &sample[p * dim..(p + 1) * dim];
            one.encode(r, &mut code);
            error += Codebook::lookup(&one.table(r, true), &code);
        }
        // The rows' spread is ~1 per row (12 components of variance 1/12); the noise's
        // is ~1e-4.
        assert!(error / (n as f32) < 1e-3, "mean squared error {}", error / n as f32);
    }

    #[test]
    fn dispatched_part_scores_equal_the_portable_loop() {
        let centroids: Vec<f32> = (0..5 * CENTROIDS).map(|i| ((i * 37 % 101) as f32 - 50.0) / 16.0).collect();
        let x = [0.5f32, -1.25, 3.0, 0.0, 2.5];
        for squared in [true, false] {
            let (mut a, mut b) = ([1.0f32; CENTROIDS], [1.0f32; CENTROIDS]);
            crate::simd::part_scores(&centroids, &x, squared, &mut a);
            crate::simd::part_scores_portable(&centroids, &x, squared, &mut b);
            // The same operations per element, only wider (Rust never fuses them).
            assert_eq!(a, b);
        }
    }

    #[test]
    fn lookup_sums_the_table() {
        let table: Vec<f32> = (0..7 * CENTROIDS).map(|i| (i % 97) as f32).collect();
        let code = [3u8, 200, 0, 255, 17, 9, 128];
        let sum: f32 = code.iter().enumerate().map(|(j, &c)| table[j * CENTROIDS + c as usize]).sum();
        assert_eq!(Codebook::lookup(&table, &code), sum);
    }
}
