//! Qdrant's distance matrix (`search/matrix/pairs` and `/offsets`): a random sample
//! of points and, for each, its nearest others within the sample.

use braid_core::PointId;
use braid_filter::{Condition, Filter};
use braid_query::{Searchable, Stop};

use crate::Error;
use crate::collection::Collection;

/// The most points a distance matrix samples: each row scores every other sampled
/// point, so a call costs `sample²` distances (10⁸ at the limit, a few seconds).
pub const MAX_MATRIX_SAMPLE: usize = 10_000;

/// What a distance matrix call asks for.
#[derive(Clone, Debug, PartialEq)]
pub struct MatrixRequest {
    /// Only points this filter passes are sampled.
    pub filter: Option<Filter>,
    /// How many points to sample (Qdrant's default 10).
    pub sample: usize,
    /// How many nearest others per sampled point (default 3).
    pub limit: usize,
    /// The space (default: the unnamed or only one).
    pub using: Option<String>,
}

impl Default for MatrixRequest {
    fn default() -> Self {
        MatrixRequest { filter: None, sample: 10, limit: 3, using: None }
    }
}

/// The sampled points, in id order, and each one's nearest others among them, best
/// first (equal scores by id).
#[derive(Clone, Debug, PartialEq)]
pub struct DistanceMatrix {
    /// The sampled points, ascending.
    pub ids: Vec<PointId>,
    /// For `ids[i]`, its nearest others: (position in `ids`, score).
    pub rows: Vec<Vec<(usize, f32)>>,
}

impl DistanceMatrix {
    /// Qdrant's `pairs` form: (a, b, score) for every row and neighbour.
    pub fn pairs(&self) -> Vec<(PointId, PointId, f32)> {
        self.rows
            .iter()
            .enumerate()
            .flat_map(|(a, row)| row.iter().map(move |&(b, s)| (self.ids[a], self.ids[b], s)))
            .collect()
    }

    /// Qdrant's `offsets` form: row and column positions into `ids`, and scores.
    pub fn offsets(&self) -> (Vec<u64>, Vec<u64>, Vec<f32>) {
        let mut rows = Vec::new();
        let mut cols = Vec::new();
        let mut scores = Vec::new();
        for (a, row) in self.rows.iter().enumerate() {
            for &(b, s) in row {
                rows.push(a as u64);
                cols.push(b as u64);
                scores.push(s);
            }
        }
        (rows, cols, scores)
    }
}

impl Collection {
    /// Qdrant's distance matrix: `sample` points drawn at random among those with a
    /// vector in the space that pass the filter, sorted by id, each with its `limit`
    /// nearest others among the sampled ones (exact scores, the metric's user
    /// scores). Fewer than two points to sample from gives an empty matrix.
    pub fn distance_matrix(&self, request: &MatrixRequest, stop: &Stop) -> Result<DistanceMatrix, Error> {
        use rayon::prelude::*;
        if request.sample == 0 || request.sample > MAX_MATRIX_SAMPLE {
            return Err(braid_query::QueryError::Limit {
                what: "sample",
                max: MAX_MATRIX_SAMPLE,
                got: request.sample,
            }
            .into());
        }
        if request.limit == 0 || request.limit > braid_query::MAX_LIMIT {
            return Err(braid_query::QueryError::Limit {
                what: "limit",
                max: braid_query::MAX_LIMIT,
                got: request.limit,
            }
            .into());
        }
        let segment = self.serve()?;
        let (space, info) = braid_query::resolve_space(&*segment, request.using.as_ref())?;
        let with_vector = Filter::must([Condition::has_vector(space.clone())]);
        let filter = match &request.filter {
            Some(f) => f.clone().and(with_vector),
            None => with_vector,
        };
        let mut ids = segment.sample(Some(&filter), request.sample);
        if ids.len() < 2 {
            return Ok(DistanceMatrix { ids: Vec::new(), rows: Vec::new() });
        }
        ids.sort();
        let vectors: Vec<Vec<f32>> =
            ids.iter().map(|id| segment.vector_of(&space, *id)).collect::<Result<_, _>>()?;
        let kernel = braid_distance::Kernel::new(info.metric);
        let rows: Vec<Result<Vec<(usize, f32)>, Error>> = (0..ids.len())
            .into_par_iter()
            .map(|a| {
                stop.check()?;
                let mut row: Vec<(usize, f32)> = (0..ids.len())
                    .filter(|&b| b != a)
                    .map(|b| (b, kernel.score(&vectors[a], &vectors[b])))
                    .collect();
                row.sort_by(|x, y| braid_distance::compare(info.metric, y.1, x.1).then(x.0.cmp(&y.0)));
                row.truncate(request.limit);
                Ok(row)
            })
            .collect();
        Ok(DistanceMatrix { ids, rows: rows.into_iter().collect::<Result<_, _>>()? })
    }
}
