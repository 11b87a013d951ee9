//! A brute-force [`Searchable`] for tests: exact answers, computed independently of the
//! planner, over points kept in plain vectors.

use std::collections::BTreeMap;

use braid_core::{Cardinality, Metric, OffsetFilter, PointId, PointOffset};
use braid_core::{PathChoice, SearchPath};
use braid_distance::Kernel;
use braid_filter::{Filter, OffsetIds, PayloadStore};
use braid_query::{Hit, QuantizationParams, QueryError, Searchable, Space};
use roaring::RoaringBitmap;
use serde_json::Value;

pub(crate) struct Point {
    pub id: PointId,
    pub vectors: BTreeMap<String, Vec<f32>>,
    pub payload: Value,
}

pub(crate) struct BruteForce {
    pub spaces: BTreeMap<String, Space>,
    pub points: Vec<Point>,
    store: PayloadStore,
    lookup: OffsetIds,
}

impl BruteForce {
    /// Points are stored as given (callers pass stored-form vectors).
    pub(crate) fn new(spaces: BTreeMap<String, Space>, points: Vec<Point>) -> BruteForce {
        let mut store = PayloadStore::new();
        for (i, p) in points.iter().enumerate() {
            store.set(PointOffset(i as u32), p.payload.clone());
        }
        let mut lookup = OffsetIds::new((0..points.len() as u32).collect());
        for name in spaces.keys() {
            let with: RoaringBitmap = points
                .iter()
                .enumerate()
                .filter(|(_, p)| p.vectors.contains_key(name))
                .map(|(i, _)| i as u32)
                .collect();
            lookup = lookup.with_vectors(name, with);
        }
        BruteForce { spaces, points, store, lookup }
    }

    fn offset(&self, id: &PointId) -> Option<usize> {
        self.points.iter().position(|p| p.id == *id)
    }

    pub(crate) fn passes(&self, filter: Option<&Filter>, offset: usize) -> bool {
        filter.is_none_or(|f| self.store.plan(f, &self.lookup).matches(PointOffset(offset as u32)))
    }

    /// Exact ranking of every point with a vector in `space` passing `filter`.
    pub(crate) fn ranked(&self, space: &str, vector: &[f32], filter: Option<&Filter>) -> Vec<Hit> {
        let metric = self.spaces[space].metric;
        let kernel = Kernel::new(metric);
        let mut hits: Vec<Hit> = self
            .points
            .iter()
            .enumerate()
            .filter(|(i, _)| self.passes(filter, *i))
            .filter_map(|(_, p)| p.vectors.get(space).map(|v| Hit::new(p.id, kernel.score(vector, v))))
            .collect();
        hits.sort_by(|a, b| braid_distance::compare(metric, b.score, a.score).then(a.id.cmp(&b.id)));
        hits
    }
}

/// A brute-force leaf: the space and the filter, checked per point when searched.
pub(crate) struct Leaf<'s> {
    space: String,
    filter: Option<&'s Filter>,
}

impl Searchable for BruteForce {
    type Leaf<'s> = Leaf<'s>;

    fn space(&self, name: &str) -> Option<Space> {
        self.spaces.get(name).copied()
    }
    fn space_names(&self) -> Vec<String> {
        self.spaces.keys().cloned().collect()
    }
    fn default_ef(&self, _space: &str) -> usize {
        32
    }
    fn leaf<'s>(&'s self, space: &str, filter: Option<&'s Filter>) -> Result<Leaf<'s>, QueryError> {
        if !self.spaces.contains_key(space) {
            return Err(QueryError::UnknownVector { name: space.to_string(), available: self.space_names() });
        }
        Ok(Leaf { space: space.to_string(), filter })
    }
    fn estimate(&self, leaf: &Leaf<'_>) -> Cardinality {
        Cardinality::exact(
            self.points
                .iter()
                .enumerate()
                .filter(|(i, p)| p.vectors.contains_key(&leaf.space) && self.passes(leaf.filter, *i))
                .count(),
        )
    }
    fn choose(&self, leaf: &Leaf<'_>, _ef: usize) -> PathChoice {
        let estimate = self.estimate(leaf);
        let path = if estimate.expected < 20 { SearchPath::Scan } else { SearchPath::Graph };
        PathChoice { path, exact_cost: estimate.expected as f64, graph_cost: 20.0, rule: None }
    }
    fn nearest(
        &self,
        leaf: &Leaf<'_>,
        vector: &[f32],
        limit: usize,
        _ef: usize,
        _path: SearchPath,
        _quantization: QuantizationParams,
    ) -> Result<Vec<Hit>, QueryError> {
        let mut hits = self.ranked(&leaf.space, vector, leaf.filter);
        hits.truncate(limit);
        Ok(hits)
    }
    fn score(&self, space: &str, vector: &[f32], ids: &[PointId]) -> Result<Vec<Hit>, QueryError> {
        let kernel = Kernel::new(self.spaces[space].metric);
        Ok(ids
            .iter()
            .filter_map(|id| self.offset(id))
            .filter_map(|i| {
                self.points[i]
                    .vectors
                    .get(space)
                    .map(|v| Hit::new(self.points[i].id, kernel.score(vector, v)))
            })
            .collect())
    }
    fn matching(&self, filter: &Filter, ids: &[PointId]) -> Vec<PointId> {
        ids.iter()
            .copied()
            .filter(|id| self.offset(id).is_some_and(|i| self.passes(Some(filter), i)))
            .collect()
    }
    fn sample(&self, filter: Option<&Filter>, limit: usize) -> Vec<PointId> {
        // Deterministic here: the passing ids, rotated, cut to `limit`.
        let mut ids = self.scroll(filter, usize::MAX);
        let by = ids.len() / 2;
        ids.rotate_left(by);
        ids.truncate(limit);
        ids
    }
    fn scroll(&self, filter: Option<&Filter>, limit: usize) -> Vec<PointId> {
        let mut ids: Vec<PointId> = self
            .points
            .iter()
            .enumerate()
            .filter(|(i, _)| self.passes(filter, *i))
            .map(|(_, p)| p.id)
            .collect();
        ids.sort();
        ids.truncate(limit);
        ids
    }
}

/// A deterministic generator.
pub(crate) struct Rng(pub u64);
impl Rng {
    pub(crate) fn next(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 40) as f32 / 16_777_216.0 - 0.5
    }
    pub(crate) fn vector(&mut self, dim: usize) -> Vec<f32> {
        (0..dim).map(|_| self.next()).collect()
    }
}

/// `n` points with a 4-d `text` (Cosine) and a 6-d `image` (Cosine) vector; every 7th
/// point lacks an image. Payload: `category` one of 3, `price` 0..1000.
pub(crate) fn catalogue(seed: u64, n: u64) -> BruteForce {
    let mut rng = Rng(seed | 1);
    let spaces = BTreeMap::from([
        ("text".to_string(), Space { dim: 4, metric: Metric::Cosine }),
        ("image".to_string(), Space { dim: 6, metric: Metric::Cosine }),
    ]);
    let points = (0..n)
        .map(|i| {
            let mut vectors = BTreeMap::new();
            vectors.insert(
                "text".to_string(),
                braid_distance::prepare(Metric::Cosine, 4, &rng.vector(4)).unwrap(),
            );
            if i % 7 != 3 {
                vectors.insert(
                    "image".to_string(),
                    braid_distance::prepare(Metric::Cosine, 6, &rng.vector(6)).unwrap(),
                );
            }
            let category = ["apparel", "shoes", "home"][(i % 3) as usize];
            Point {
                id: PointId::Num(i),
                vectors,
                payload: serde_json::json!({"category": category, "price": (i * 37 % 1000) as f64}),
            }
        })
        .collect();
    BruteForce::new(spaces, points)
}
