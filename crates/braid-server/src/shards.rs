//! Collections of several shards on a cluster (#19, `docs/distributed.md`): which
//! shard a point belongs to, a write cut into one entry per shard it touches, the
//! reads one shard answers (locally, or on a peer holding a replica of it), and how
//! the shards' answers are merged into the collection's.
//!
//! A point's shard is a hash of its id modulo the number of shards, fixed when the
//! collection is created. A write naming points goes to the shards of those points
//! only; a write by filter, and a payload index change, goes to every shard. Reads
//! run on every shard and merge: the best hits by the query's ranking, scroll pages
//! in id order, counts and facets summed.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use braid::{
    Collection, CollectionConfig, FacetHit, Filter, OrderBy, PointId, Query, QueryPoints, QueryRequest,
    Record, ScoredPoint, WithPayload, WithVectors,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::error::{ApiError, ErrorKind};
use crate::grpc::proto;
pub(crate) use crate::keys::*;

/// The shard of a point: a 64-bit mix of its id (so that ids of any pattern spread
/// evenly), modulo the number of shards.
pub(crate) fn shard_of(id: &PointId, shards: usize) -> usize {
    fn mix(mut x: u64) -> u64 {
        // SplitMix64's finaliser.
        x ^= x >> 30;
        x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
        x ^= x >> 27;
        x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
        x ^ (x >> 31)
    }
    let h = match id {
        PointId::Num(n) => mix(*n),
        PointId::Uuid(u) => {
            let v = u.as_u128();
            mix(mix(v as u64) ^ (v >> 64) as u64)
        }
    };
    (h % shards.max(1) as u64) as usize
}

/// A read one shard answers.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) enum ShardRead {
    /// A universal query (searches, recommendations and discovery are made into one),
    /// given up after `timeout_ms` (what is left of the caller's `timeout`).
    Query { query: Box<QueryPoints>, timeout_ms: Option<u64> },
    /// Several, each answered or failed alone.
    Batch { queries: Vec<QueryPoints>, timeout_ms: Option<u64> },
    /// Points by id.
    Get { ids: Vec<PointId>, with_payload: WithPayload, with_vectors: WithVectors },
    /// A page of points in id order from `offset`.
    Scroll {
        filter: Option<Filter>,
        limit: usize,
        offset: Option<PointId>,
        with_payload: WithPayload,
        with_vectors: WithVectors,
    },
    /// A page of points in the order of a payload value.
    ScrollOrdered {
        filter: Option<Filter>,
        order: OrderBy,
        limit: usize,
        with_payload: WithPayload,
        with_vectors: WithVectors,
    },
    /// Points passing a filter.
    Count { filter: Option<Filter> },
    /// Counts of a payload key's values.
    Facet { key: String, filter: Option<Filter>, limit: usize },
    /// What collection information adds up over shards.
    Info,
}

/// What one shard answers.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) enum ShardAnswer {
    Points(Vec<ScoredPoint>),
    Batch(Vec<Result<Vec<ScoredPoint>, ApiError>>),
    Records(Vec<Record>, Option<PointId>),
    Count(usize),
    Facet(Vec<FacetHit>),
    Info(ShardInfo),
}

/// The parts of collection information that are sums over shards.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct ShardInfo {
    pub(crate) points_count: usize,
    pub(crate) vectors_count: BTreeMap<String, usize>,
    pub(crate) indexed_vectors_count: BTreeMap<String, usize>,
    pub(crate) dead_versions: usize,
    pub(crate) disk_bytes: Option<u64>,
    /// The payload indexes and text index options (alike on every shard).
    #[allow(clippy::type_complexity)]
    pub(crate) schema:
        Option<(BTreeMap<String, braid::IndexKind>, BTreeMap<String, braid::text::TextOptions>)>,
}

impl ShardInfo {
    fn of(info: &braid::CollectionInfo) -> ShardInfo {
        ShardInfo {
            points_count: info.points_count,
            vectors_count: info.vectors_count.clone(),
            indexed_vectors_count: info.indexed_vectors_count.clone(),
            dead_versions: info.dead_versions,
            disk_bytes: info.disk_bytes,
            schema: Some((info.payload_schema.clone(), info.text_indexes.clone())),
        }
    }

    fn add(&mut self, other: ShardInfo) {
        self.points_count += other.points_count;
        for (k, n) in other.vectors_count {
            *self.vectors_count.entry(k).or_default() += n;
        }
        for (k, n) in other.indexed_vectors_count {
            *self.indexed_vectors_count.entry(k).or_default() += n;
        }
        self.dead_versions += other.dead_versions;
        self.disk_bytes = match (self.disk_bytes, other.disk_bytes) {
            (Some(a), Some(b)) => Some(a + b),
            (a, b) => a.or(b),
        };
    }

    /// `info` with the sums over every shard in place of one shard's.
    pub(crate) fn apply(self, info: &mut braid::CollectionInfo) {
        info.points_count = self.points_count;
        info.vectors_count = self.vectors_count;
        info.indexed_vectors_count = self.indexed_vectors_count;
        info.dead_versions = self.dead_versions;
        info.disk_bytes = self.disk_bytes;
    }
}

/// Answers `read` from collection `c` (one shard's replica): a query gives up when
/// `stop` says, or (`None`, a read from another peer) after the read's own
/// `timeout_ms`.
pub(crate) fn answer(
    c: &Collection,
    read: ShardRead,
    stop: Option<&braid::Stop>,
) -> Result<ShardAnswer, ApiError> {
    let stop_for = |timeout_ms: Option<u64>| match stop {
        Some(stop) => stop.clone(),
        None => timeout_ms.map_or_else(braid::Stop::never, |ms| {
            braid::Stop::never().after(std::time::Duration::from_millis(ms))
        }),
    };
    Ok(match read {
        ShardRead::Query { query, timeout_ms } => {
            ShardAnswer::Points(c.query_until(*query, &stop_for(timeout_ms))?)
        }
        ShardRead::Batch { queries, timeout_ms } => {
            let results = c.query_batch_until(queries, &stop_for(timeout_ms))?;
            ShardAnswer::Batch(results.into_iter().map(|r| r.map_err(ApiError::from)).collect())
        }
        ShardRead::Get { ids, with_payload, with_vectors } => {
            ShardAnswer::Records(c.get(&ids, with_payload, with_vectors)?, None)
        }
        ShardRead::Scroll { filter, limit, offset, with_payload, with_vectors } => {
            let (records, next) = c.scroll(filter.as_ref(), limit, offset, with_payload, with_vectors)?;
            ShardAnswer::Records(records, next)
        }
        ShardRead::ScrollOrdered { filter, order, limit, with_payload, with_vectors } => {
            let (records, _) =
                c.scroll_ordered(filter.as_ref(), &order, limit, with_payload, with_vectors)?;
            ShardAnswer::Records(records, None)
        }
        ShardRead::Count { filter } => ShardAnswer::Count(c.count(filter.as_ref())?),
        ShardRead::Facet { key, filter, limit } => {
            ShardAnswer::Facet(c.facet(&key, filter.as_ref(), limit)?)
        }
        ShardRead::Info => ShardAnswer::Info(ShardInfo::of(&c.info())),
    })
}

/// A read as it travels to a peer, and the peer's answer as it travels back.
pub(crate) fn answer_json(c: Result<Collection, ApiError>, request: &Value) -> Value {
    let result = c.and_then(|c| {
        let read: ShardRead = serde_json::from_value(request.clone())
            .map_err(|e| ApiError::bad_request(format!("a shard read that does not parse: {e}")))?;
        answer(&c, read, None)
    });
    serde_json::to_value(result)
        .unwrap_or_else(|e| json!({"Err": {"kind": "Internal", "message": e.to_string()}}))
}

fn unexpected(what: &str) -> ApiError {
    ApiError { kind: ErrorKind::Internal, message: format!("a shard answered a {what} with something else") }
}

/// How a query's hits are ranked, so that the shards' lists can be merged.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Ranking {
    /// Higher scores first.
    Higher,
    /// Lower scores (distances) first.
    Lower,
    /// By id (a query without a query: every point in id order).
    Id,
    /// By the payload value that placed them.
    Value(braid::Direction),
    /// No order (a random sample).
    Random,
}

fn metric_of(config: &CollectionConfig, using: Option<&str>) -> Ranking {
    let higher = |better: bool| if better { Ranking::Higher } else { Ranking::Lower };
    match using {
        Some(name) => match (config.vectors.get(name), config.multivectors.get(name)) {
            (Some(space), _) => higher(space.distance.higher_is_better()),
            (None, Some(multi)) => higher(multi.distance.higher_is_better()),
            // Sparse spaces score by dot product.
            (None, None) => Ranking::Higher,
        },
        None => match config.vectors.get("").or_else(|| config.vectors.values().next()) {
            Some(space) => higher(space.distance.higher_is_better()),
            None => Ranking::Higher,
        },
    }
}

/// Why a query cannot yet be answered over several shards, if it cannot.
fn not_across_shards(what: &str) -> ApiError {
    ApiError::bad_request(format!(
        "{what} is not served yet on a collection of several shards (docs/distributed.md); it is on a \
         collection of one shard"
    ))
}

fn names_points(example: &braid::Example) -> bool {
    matches!(example, braid::Example::Id(_))
}

/// The ranking of `request`'s root over a collection of `config`, or why it cannot be
/// merged across shards: MMR (its picks depend on every candidate), and queries still
/// naming stored points (a point's vector is on its own shard only: [`resolve`]
/// replaces them first).
fn ranking(config: &CollectionConfig, request: &QueryRequest) -> Result<Ranking, ApiError> {
    if request.lookup_from.is_some() {
        return Err(not_across_shards("lookup_from"));
    }
    fn check_prefetch(p: &braid::Prefetch) -> Result<(), ApiError> {
        if p.lookup_from.is_some() {
            return Err(not_across_shards("lookup_from"));
        }
        if let Some(q) = &p.query {
            check_query(q)?;
        }
        p.prefetch.iter().try_for_each(check_prefetch)
    }
    fn check_query(q: &Query) -> Result<(), ApiError> {
        let named = match q {
            Query::Point(_) => true,
            Query::Recommend(r) => r.positive.iter().chain(&r.negative).any(names_points),
            Query::Discover { target, context } => {
                names_points(target)
                    || context.iter().any(|p| names_points(&p.positive) || names_points(&p.negative))
            }
            Query::Context(pairs) => {
                pairs.iter().any(|p| names_points(&p.positive) || names_points(&p.negative))
            }
            Query::Mmr { .. } => return Err(not_across_shards("mmr")),
            _ => false,
        };
        if named { Err(not_across_shards("a query naming a stored point by id")) } else { Ok(()) }
    }
    request.prefetch.iter().try_for_each(check_prefetch)?;
    let Some(query) = &request.query else {
        return Ok(if request.prefetch.is_empty() { Ranking::Id } else { Ranking::Higher });
    };
    check_query(query)?;
    Ok(match query {
        // At the root fusion runs here, over the prefetches merged from every shard
        // ([`Source::query_until`]); below the root each shard fuses its own, as in
        // Qdrant.
        Query::Fusion(_) => Ranking::Higher,
        Query::Nearest(_) | Query::Sparse(_) | Query::Document(_) | Query::Multi(_) => {
            metric_of(config, request.using.as_deref())
        }
        Query::Recommend(r) if r.strategy == braid::RecommendStrategy::AverageVector => {
            metric_of(config, request.using.as_deref())
        }
        Query::OrderBy(order) => Ranking::Value(order.direction),
        Query::Sample => Ranking::Random,
        _ => Ranking::Higher,
    })
}

fn order_value(p: &ScoredPoint) -> f64 {
    p.order_value.map_or(f64::NAN, |v| v.as_f64())
}

/// The request each shard runs for `query`: the same, with its root's page widened to
/// `offset + limit` from the first hit (the merge skips `offset`).
pub(crate) fn widened(query: &QueryPoints) -> QueryPoints {
    let mut q = query.clone();
    q.request.limit = query.request.limit + query.request.offset;
    q.request.offset = 0;
    q
}

/// The checks a query must pass to run over several shards (see [`ranking`]).
pub(crate) fn check_query(config: &CollectionConfig, query: &QueryPoints) -> Result<(), ApiError> {
    ranking(config, &query.request).map(drop)
}

/// Merges the shards' hits for `query` (each list already ranked): the page
/// `offset..offset + limit` of them all by the query's ranking.
pub(crate) fn merge_points(
    config: &CollectionConfig,
    query: &QueryPoints,
    lists: Vec<Vec<ScoredPoint>>,
) -> Result<Vec<ScoredPoint>, ApiError> {
    let ranking = ranking(config, &query.request)?;
    let mut all: Vec<ScoredPoint> = lists.into_iter().flatten().collect();
    let by = |a: &ScoredPoint, b: &ScoredPoint| -> Ordering {
        let first = match ranking {
            Ranking::Higher => b.score.total_cmp(&a.score),
            Ranking::Lower => a.score.total_cmp(&b.score),
            Ranking::Id | Ranking::Random => Ordering::Equal,
            Ranking::Value(braid::Direction::Asc) => order_value(a).total_cmp(&order_value(b)),
            Ranking::Value(braid::Direction::Desc) => order_value(b).total_cmp(&order_value(a)),
        };
        first.then_with(|| a.id.cmp(&b.id))
    };
    if ranking == Ranking::Random {
        use rand::seq::SliceRandom;
        all.shuffle(&mut rand::rng());
    } else {
        all.sort_by(by);
    }
    Ok(all.into_iter().skip(query.request.offset).take(query.request.limit).collect())
}

/// Merges the shards' answers to a batch, query by query.
pub(crate) fn merge_batch(
    config: &CollectionConfig,
    queries: &[QueryPoints],
    answers: Vec<Vec<Result<Vec<ScoredPoint>, ApiError>>>,
) -> Result<Vec<Result<Vec<ScoredPoint>, ApiError>>, ApiError> {
    let mut per_query: Vec<Result<Vec<Vec<ScoredPoint>>, ApiError>> =
        queries.iter().map(|_| Ok(Vec::new())).collect();
    for shard in answers {
        if shard.len() != queries.len() {
            return Err(unexpected("batch"));
        }
        for (slot, result) in per_query.iter_mut().zip(shard) {
            match (slot.as_mut(), result) {
                (Ok(lists), Ok(hits)) => lists.push(hits),
                (Ok(_), Err(e)) => *slot = Err(e),
                (Err(_), _) => {}
            }
        }
    }
    Ok(per_query
        .into_iter()
        .zip(queries)
        .map(|(lists, q)| lists.and_then(|lists| merge_points(config, q, lists)))
        .collect())
}

/// Merges the shards' scroll pages: the first `limit` points in id order, and the id
/// the next page starts at (the first id past the page that any shard holds).
pub(crate) fn merge_scroll(
    pages: Vec<(Vec<Record>, Option<PointId>)>,
    limit: usize,
) -> (Vec<Record>, Option<PointId>) {
    let mut records = Vec::new();
    let mut nexts = Vec::new();
    for (page, next) in pages {
        records.extend(page);
        nexts.extend(next);
    }
    records.sort_by_key(|r| r.id);
    let rest = records.split_off(limit.min(records.len()));
    let next = rest.iter().map(|r| r.id).chain(nexts).min();
    (records, next)
}

/// Merges the shards' pages of a scroll ordered by a payload value.
pub(crate) fn merge_ordered(pages: Vec<Vec<Record>>, order: &OrderBy, limit: usize) -> Vec<Record> {
    let value = |r: &Record| r.order_value.map_or(f64::NAN, |v| v.as_f64());
    let mut records: Vec<Record> = pages.into_iter().flatten().collect();
    records.sort_by(|a, b| {
        let first = match order.direction {
            braid::Direction::Asc => value(a).total_cmp(&value(b)),
            braid::Direction::Desc => value(b).total_cmp(&value(a)),
        };
        first.then_with(|| a.id.cmp(&b.id))
    });
    records.truncate(limit);
    records
}

/// Merges the shards' facet counts (each shard counted every value): the sums, best
/// `limit` first (count descending, then value), as one shard ranks them.
pub(crate) fn merge_facets(lists: Vec<Vec<FacetHit>>, limit: usize) -> Vec<FacetHit> {
    let mut sums: BTreeMap<braid::FacetValue, usize> = BTreeMap::new();
    for hit in lists.into_iter().flatten() {
        *sums.entry(hit.value).or_default() += hit.count;
    }
    let mut hits: Vec<FacetHit> = sums.into_iter().map(|(value, count)| FacetHit { value, count }).collect();
    hits.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.value.cmp(&b.value)));
    hits.truncate(limit);
    hits
}

/// Sums the shards' information.
pub(crate) fn merge_info(parts: Vec<ShardInfo>) -> ShardInfo {
    let mut sum = ShardInfo::default();
    for part in parts {
        sum.add(part);
    }
    sum
}

/// Unpacks the shards' answers of one kind.
pub(crate) fn each<T>(
    answers: Vec<ShardAnswer>,
    what: &str,
    f: impl Fn(ShardAnswer) -> Option<T>,
) -> Result<Vec<T>, ApiError> {
    answers.into_iter().map(|a| f(a).ok_or_else(|| unexpected(what))).collect()
}

// ---- Reads: a collection here, or its shards ----

/// What a read of a collection goes to: a collection of this server (a single server,
/// or a cluster node holding the one shard of a collection), or a cluster
/// collection's shards, wherever they are.
pub(crate) enum Source {
    Local(Collection),
    Shards(Shards),
}

/// A cluster collection's shards, as a read reaches them.
#[derive(Clone)]
pub(crate) struct Shards {
    pub(crate) cluster: std::sync::Arc<crate::cluster::Cluster>,
    pub(crate) name: String,
    pub(crate) placement: crate::cluster::Placement,
    /// Every shard read from its group's leader ([`Scope::strong`]).
    pub(crate) strong: bool,
}

impl Shards {
    fn run(&self, read: &ShardRead) -> Result<Vec<ShardAnswer>, ApiError> {
        self.cluster.read_shards(&self.name, &self.placement, read, None, self.strong)
    }

    /// [`Shards::run`] for a query: this node's legs give up when `stop` says.
    fn run_until(&self, read: &ShardRead, stop: &braid::Stop) -> Result<Vec<ShardAnswer>, ApiError> {
        self.cluster.read_shards(&self.name, &self.placement, read, Some(stop), self.strong)
    }

    fn one(&self) -> bool {
        self.placement.shards.len() == 1
    }

    fn config(&self) -> &CollectionConfig {
        &self.placement.config
    }
}

impl Source {
    /// What a read of collection `name` goes to on this server: on a cluster node,
    /// the shards of `keys` (every shard when `None`).
    pub(crate) fn of(
        db: &braid::Database,
        cluster: Option<&std::sync::Arc<crate::cluster::Cluster>>,
        name: &str,
        scope: &Scope,
    ) -> Result<Source, ApiError> {
        match cluster {
            Some(cluster) => cluster.source(name, scope),
            None if scope.keys.is_some() => Err(no_keys_alone()),
            None => Ok(Source::Local(db.collection(name)?)),
        }
    }

    /// The collection itself, for the calls served on one collection only (`what`):
    /// refused for a collection of several shards, or one this peer holds no replica
    /// of.
    pub(crate) fn local(&self, what: &str) -> Result<&Collection, ApiError> {
        match self {
            Source::Local(c) => Ok(c),
            Source::Shards(s) if s.one() => Err(ApiError::bad_request(format!(
                "{what} is served by the peers holding a replica of `{}` (docs/distributed.md); ask one of them",
                s.name
            ))),
            Source::Shards(_) => Err(not_across_shards(what)),
        }
    }

    /// A grouped query: on several shards, the grouping loop of one collection
    /// (`braid::gather_groups`) over the shards' merged rankings, so that the groups
    /// are those one collection holding every point forms; then the hits' payloads
    /// and vectors as asked, and each group's lookup.
    pub(crate) fn query_groups_until(
        &self,
        query: QueryPoints,
        group: &braid::GroupBy,
        stop: &braid::Stop,
    ) -> Result<Vec<braid::PointGroup>, ApiError> {
        let s = match self {
            Source::Local(c) => return Ok(c.query_groups_until(query, group, stop)?),
            Source::Shards(s) => s,
        };
        braid::check_grouped(&query, group)?;
        let path = braid::filter::JsonPath::parse(&group.key)
            .map_err(|_| braid::Error::InvalidKey { key: group.key.clone() })?;
        // While ranking, only the payload field the group key starts at travels between
        // the nodes (the key may descend into arrays and objects below it). The loop
        // stops when a round ranks fewer points than asked, so the collection's size
        // (a count on every shard) is not needed to end it.
        let keyed = match path.steps().first() {
            Some(braid::filter::Step::Key(top)) => WithPayload::Include(vec![top.clone()]),
            _ => WithPayload::All,
        };
        let groups = braid::gather_groups(&query.request, group, usize::MAX, |deeper| {
            let ranked = QueryPoints {
                request: deeper.clone(),
                with_payload: keyed.clone(),
                with_vectors: WithVectors::None,
            };
            Ok::<_, ApiError>(
                self.query_until(ranked, stop)?
                    .into_iter()
                    .map(|hit| {
                        let ids = braid::group_ids(&path, hit.payload.as_ref());
                        (hit.id, (hit.id, hit.score, hit.order_value), ids)
                    })
                    .collect(),
            )
        })?;
        // The hits' records as asked, fetched once for every group.
        let ids: Vec<PointId> = groups.iter().flat_map(|(_, hits)| hits.iter().map(|h| h.0)).collect();
        let bare = matches!(query.with_payload, WithPayload::None)
            && matches!(query.with_vectors, WithVectors::None);
        let records = if bare {
            BTreeMap::new()
        } else {
            self.records(&ids, &query.with_payload, &query.with_vectors)?
        };
        let lookup = match &group.with_lookup {
            Some(l) => Some((s.cluster.source(&l.collection, &Scope { keys: None, strong: s.strong })?, l)),
            None => None,
        };
        // Each group's lookup point, fetched for all groups at once.
        let looked_up = match &lookup {
            Some((other, spec)) => {
                let points: Vec<PointId> = groups.iter().filter_map(|(id, _)| id.point_id()).collect();
                other.records(&points, &spec.with_payload, &spec.with_vectors)?
            }
            None => BTreeMap::new(),
        };
        let mut out = Vec::with_capacity(groups.len());
        for (id, hits) in groups {
            let hits = hits
                .into_iter()
                .map(|(point, score, order_value)| {
                    let r = records.get(&point);
                    ScoredPoint {
                        id: point,
                        score,
                        payload: r.and_then(|r| r.payload.clone()),
                        vectors: r.and_then(|r| r.vectors.clone()),
                        sparse: r.and_then(|r| r.sparse.clone()),
                        multi: r.and_then(|r| r.multi.clone()),
                        order_value,
                    }
                })
                .collect();
            let found = id.point_id().and_then(|point| looked_up.get(&point).cloned());
            out.push(braid::PointGroup { id, hits, lookup: found });
        }
        Ok(out)
    }

    /// The records of `ids` that exist, by id, fetched `braid::MAX_BATCH` at a time.
    fn records(
        &self,
        ids: &[PointId],
        with_payload: &WithPayload,
        with_vectors: &WithVectors,
    ) -> Result<BTreeMap<PointId, Record>, ApiError> {
        let mut records = BTreeMap::new();
        for chunk in ids.chunks(braid::MAX_BATCH) {
            for r in self.get(chunk, with_payload.clone(), with_vectors.clone())? {
                records.insert(r.id, r);
            }
        }
        Ok(records)
    }

    pub(crate) fn query_until(
        &self,
        query: impl Into<QueryPoints>,
        stop: &braid::Stop,
    ) -> Result<Vec<ScoredPoint>, ApiError> {
        let query = query.into();
        let s = match self {
            Source::Local(c) => return Ok(c.query_until(query, stop)?),
            Source::Shards(s) => s,
        };
        let timeout_ms = remaining_ms(stop);
        if s.one() {
            let answers = s.run_until(&ShardRead::Query { query: Box::new(query), timeout_ms }, stop)?;
            return Ok(each(
                answers,
                "query",
                |a| if let ShardAnswer::Points(p) = a { Some(p) } else { None },
            )?
            .pop()
            .unwrap_or_default());
        }
        let query = resolve(s, query)?;
        check_query(s.config(), &query)?;
        if let Some(fusion) = root_fusion(&query) {
            return fused(s, &query, fusion, stop);
        }
        let answers =
            s.run_until(&ShardRead::Query { query: Box::new(widened(&query)), timeout_ms }, stop)?;
        let lists = each(answers, "query", |a| if let ShardAnswer::Points(p) = a { Some(p) } else { None })?;
        merge_points(s.config(), &query, lists)
    }

    pub(crate) fn query_batch_until(
        &self,
        queries: Vec<QueryPoints>,
        stop: &braid::Stop,
    ) -> Result<Vec<Result<Vec<ScoredPoint>, ApiError>>, ApiError> {
        let s = match self {
            Source::Local(c) => {
                let results = c.query_batch_until(queries, stop)?;
                return Ok(results.into_iter().map(|r| r.map_err(ApiError::from)).collect());
            }
            Source::Shards(s) => s,
        };
        let batch = |a| if let ShardAnswer::Batch(b) = a { Some(b) } else { None };
        if s.one() {
            let answers = s.run_until(&ShardRead::Batch { queries, timeout_ms: remaining_ms(stop) }, stop)?;
            return Ok(each(answers, "batch", batch)?.pop().unwrap_or_default());
        }
        let queries = queries.into_iter().map(|q| resolve(s, q)).collect::<Result<Vec<_>, _>>()?;
        for q in &queries {
            check_query(s.config(), q)?;
        }
        if queries.iter().any(|q| root_fusion(q).is_some()) {
            // Each on its own: a fused one takes two steps.
            return Ok(queries.into_iter().map(|q| self.query_until(q, stop)).collect());
        }
        let widened_queries = queries.iter().map(widened).collect();
        let read = ShardRead::Batch { queries: widened_queries, timeout_ms: remaining_ms(stop) };
        let answers = s.run_until(&read, stop)?;
        merge_batch(s.config(), &queries, each(answers, "batch", batch)?)
    }

    pub(crate) fn get(
        &self,
        ids: &[PointId],
        with_payload: impl Into<WithPayload>,
        with_vectors: impl Into<WithVectors>,
    ) -> Result<Vec<Record>, ApiError> {
        let (with_payload, with_vectors) = (with_payload.into(), with_vectors.into());
        let s = match self {
            Source::Local(c) => return Ok(c.get(ids, with_payload, with_vectors)?),
            Source::Shards(s) => s,
        };
        // Refused here, as one collection refuses it, before a round trip to every shard.
        if ids.len() > braid::MAX_BATCH {
            return Err(braid::Error::BatchTooLarge { max: braid::MAX_BATCH, got: ids.len() }.into());
        }
        let read = ShardRead::Get { ids: ids.to_vec(), with_payload, with_vectors };
        let pages = each(s.run(&read)?, "retrieve", records)?;
        // In the order asked, as one collection answers.
        let mut found: BTreeMap<PointId, Record> =
            pages.into_iter().flat_map(|(page, _)| page).map(|r| (r.id, r)).collect();
        Ok(ids.iter().filter_map(|id| found.remove(id)).collect())
    }

    pub(crate) fn scroll(
        &self,
        filter: Option<&Filter>,
        limit: usize,
        offset: Option<PointId>,
        with_payload: impl Into<WithPayload>,
        with_vectors: impl Into<WithVectors>,
    ) -> Result<(Vec<Record>, Option<PointId>), ApiError> {
        let (with_payload, with_vectors) = (with_payload.into(), with_vectors.into());
        let s = match self {
            Source::Local(c) => return Ok(c.scroll(filter, limit, offset, with_payload, with_vectors)?),
            Source::Shards(s) => s,
        };
        let read = ShardRead::Scroll { filter: filter.cloned(), limit, offset, with_payload, with_vectors };
        Ok(merge_scroll(each(s.run(&read)?, "scroll", records)?, limit))
    }

    pub(crate) fn scroll_ordered(
        &self,
        filter: Option<&Filter>,
        order: &OrderBy,
        limit: usize,
        with_payload: impl Into<WithPayload>,
        with_vectors: impl Into<WithVectors>,
    ) -> Result<Vec<Record>, ApiError> {
        let (with_payload, with_vectors) = (with_payload.into(), with_vectors.into());
        let s = match self {
            Source::Local(c) => {
                return Ok(c.scroll_ordered(filter, order, limit, with_payload, with_vectors)?.0);
            }
            Source::Shards(s) => s,
        };
        let read = ShardRead::ScrollOrdered {
            filter: filter.cloned(),
            order: order.clone(),
            limit,
            with_payload,
            with_vectors,
        };
        let pages = each(s.run(&read)?, "scroll", records)?;
        Ok(merge_ordered(pages.into_iter().map(|(page, _)| page).collect(), order, limit))
    }

    pub(crate) fn count(&self, filter: Option<&Filter>) -> Result<usize, ApiError> {
        let s = match self {
            Source::Local(c) => return Ok(c.count(filter)?),
            Source::Shards(s) => s,
        };
        let counts = each(s.run(&ShardRead::Count { filter: filter.cloned() })?, "count", |a| {
            if let ShardAnswer::Count(n) = a { Some(n) } else { None }
        })?;
        Ok(counts.into_iter().sum())
    }

    pub(crate) fn facet(
        &self,
        key: &str,
        filter: Option<&Filter>,
        limit: usize,
    ) -> Result<Vec<FacetHit>, ApiError> {
        let s = match self {
            Source::Local(c) => return Ok(c.facet(key, filter, limit)?),
            Source::Shards(s) => s,
        };
        if limit == 0 || limit > braid::query::MAX_LIMIT {
            return Err(braid::Error::Limit { max: braid::query::MAX_LIMIT, got: limit }.into());
        }
        // Each shard counts every value, so that the sums are exact.
        let read = ShardRead::Facet {
            key: key.to_string(),
            filter: filter.cloned(),
            limit: braid::query::MAX_LIMIT,
        };
        let lists =
            each(s.run(&read)?, "facet", |a| if let ShardAnswer::Facet(f) = a { Some(f) } else { None })?;
        Ok(merge_facets(lists, limit))
    }

    /// The collection's information: one collection's, or for shards the counts
    /// summed over them with the rest (configuration, payload indexes) from a
    /// replica here, or as the configuration makes it.
    pub(crate) fn info(&self) -> Result<braid::CollectionInfo, ApiError> {
        let s = match self {
            Source::Local(c) => return Ok(c.info()),
            Source::Shards(s) => s,
        };
        let parts = each(s.run(&ShardRead::Info)?, "info", |a| {
            if let ShardAnswer::Info(i) = a { Some(i) } else { None }
        })?;
        let mut info = braid::Database::in_memory()
            .create_collection(&s.name, crate::cluster::probe(s.config()))?
            .info();
        info.config = s.config().clone();
        let schema = parts.first().and_then(|p| p.schema.clone());
        if let Some((payload_schema, text_indexes)) = schema {
            info.payload_schema = payload_schema;
            info.text_indexes = text_indexes;
        }
        merge_info(parts).apply(&mut info);
        Ok(info)
    }
}

/// `query` with the stored points its levels name (`query: <id>`, recommendation,
/// discovery and context examples, in this collection or `lookup_from` another)
/// replaced by their vectors, fetched from the shards holding them; a level naming
/// points of this collection leaves them out of its results, as one collection does.
/// Every shard can then run it without the others.
fn resolve(s: &Shards, mut query: QueryPoints) -> Result<QueryPoints, ApiError> {
    let r = &mut query.request;
    resolve_level(s, &mut r.lookup_from, &mut r.query, r.using.as_deref(), &mut r.filter)?;
    fn prefetches(s: &Shards, list: &mut [braid::Prefetch]) -> Result<(), ApiError> {
        for p in list {
            resolve_level(s, &mut p.lookup_from, &mut p.query, p.using.as_deref(), &mut p.filter)?;
            prefetches(s, &mut p.prefetch)?;
        }
        Ok(())
    }
    prefetches(s, &mut r.prefetch)?;
    Ok(query)
}

/// The examples of one query level that are stored points.
fn named_ids(query: &mut Option<Query>) -> Vec<&mut braid::Example> {
    fn pair(p: &mut braid::ContextPair) -> [&mut braid::Example; 2] {
        [&mut p.positive, &mut p.negative]
    }
    let examples: Vec<&mut braid::Example> = match query {
        Some(Query::Recommend(r)) => r.positive.iter_mut().chain(r.negative.iter_mut()).collect(),
        Some(Query::Discover { target, context }) => {
            std::iter::once(target).chain(context.iter_mut().flat_map(pair)).collect()
        }
        Some(Query::Context(pairs)) => pairs.iter_mut().flat_map(pair).collect(),
        _ => Vec::new(),
    };
    examples.into_iter().filter(|e| names_points(e)).collect()
}

fn resolve_level(
    s: &Shards,
    lookup_from: &mut Option<braid::LookupFrom>,
    query: &mut Option<Query>,
    using: Option<&str>,
    filter: &mut Option<Filter>,
) -> Result<(), ApiError> {
    let point = match query {
        Some(Query::Point(id)) => Some(*id),
        _ => None,
    };
    let mut ids: Vec<PointId> = point.into_iter().collect();
    for example in named_ids(query) {
        if let braid::Example::Id(id) = example {
            ids.push(*id);
        }
    }
    if ids.is_empty() {
        return Ok(());
    }
    // Where the vectors come from: this collection, or the one `lookup_from` names
    // (held here, or itself in shards).
    let lookup = lookup_from.take();
    let (source, config, space) = match &lookup {
        Some(l) => {
            let source = s.cluster.source(&l.collection, &Scope { keys: None, strong: s.strong })?;
            let config = match &source {
                Source::Local(c) => c.info().config,
                Source::Shards(other) => other.config().clone(),
            };
            (Some(source), config, l.vector.as_deref().or(using).map(str::to_string))
        }
        None => (None, s.config().clone(), using.map(str::to_string)),
    };
    let space = match space {
        Some(name) if config.vectors.contains_key(&name) => name,
        Some(name)
            if config.sparse_vectors.contains_key(&name) || config.multivectors.contains_key(&name) =>
        {
            return Err(not_across_shards("a query naming a stored point of a sparse or multivector space"));
        }
        Some(name) => {
            let available = config.vectors.keys().cloned().collect();
            return Err(braid::Error::UnknownVector { name, available }.into());
        }
        None if config.vectors.len() == 1 => config.vectors.keys().next().cloned().unwrap_or_default(),
        None => {
            return Err(ApiError::bad_request(
                "the collection has several vector spaces: name the one to search with `using`".into(),
            ));
        }
    };
    let names = WithVectors::Names(vec![space.clone()]);
    let records = match &source {
        Some(other) => other.get(&ids, WithPayload::None, names)?,
        None => Source::Shards(s.clone()).get(&ids, WithPayload::None, names)?,
    };
    let mut vectors: BTreeMap<PointId, Vec<f32>> = BTreeMap::new();
    for r in records {
        if let Some(v) = r.vectors.and_then(|mut v| v.remove(&space)) {
            vectors.insert(r.id, v);
        }
    }
    let vector = |id: PointId| vectors.get(&id).cloned().ok_or(braid::Error::PointNotFound { id });
    if let Some(id) = point {
        *query = Some(Query::Nearest(vector(id)?));
    }
    for example in named_ids(query) {
        if let braid::Example::Id(id) = example {
            *example = braid::Example::Vector(vector(*id)?);
        }
    }
    if lookup.is_none() {
        // The points named never come back from the level that names them.
        let exclude = Filter {
            must_not: vec![braid::Condition::HasId(ids.into_iter().collect())],
            ..Filter::default()
        };
        *filter = Some(match filter.take() {
            Some(f) => Filter {
                must: vec![
                    braid::Condition::Filter(Box::new(f)),
                    braid::Condition::Filter(Box::new(exclude)),
                ],
                ..Filter::default()
            },
            None => exclude,
        });
    }
    Ok(())
}

/// The fusion at the root of `query`, if it fuses prefetches.
fn root_fusion(query: &QueryPoints) -> Option<&braid::Fusion> {
    match &query.request.query {
        Some(Query::Fusion(fusion)) if !query.request.prefetch.is_empty() => Some(fusion),
        _ => None,
    }
}

/// Prefetch `p` below a root with `root`'s filter, as a query of its own: the same
/// candidates a collection of one shard passes up to its root.
fn prefetch_request(root: &QueryRequest, p: &braid::Prefetch) -> QueryRequest {
    let filter = match (&root.filter, &p.filter) {
        (Some(a), Some(b)) => Some(Filter {
            must: vec![
                braid::Condition::Filter(Box::new(a.clone())),
                braid::Condition::Filter(Box::new(b.clone())),
            ],
            ..Filter::default()
        }),
        (a, b) => a.clone().or_else(|| b.clone()),
    };
    QueryRequest {
        prefetch: p.prefetch.clone(),
        query: p.query.clone(),
        using: p.using.clone(),
        filter,
        post_filter: None,
        params: p.params,
        limit: p.limit.unwrap_or(10),
        offset: 0,
        score_threshold: p.score_threshold,
        lookup_from: p.lookup_from.clone(),
    }
}

/// A query fusing its prefetches at the root, over several shards: each prefetch runs
/// on every shard and its lists merge into the prefetch's best `limit` of them all;
/// then they fuse here, as one collection fuses them (Qdrant fuses at the root the
/// same way, at the collection level).
fn fused(
    s: &Shards,
    query: &QueryPoints,
    fusion: &braid::Fusion,
    stop: &braid::Stop,
) -> Result<Vec<ScoredPoint>, ApiError> {
    let root = &query.request;
    if root.post_filter.is_some() {
        return Err(not_across_shards("post_filter with fusion at the root"));
    }
    let prefetches: Vec<QueryPoints> = root
        .prefetch
        .iter()
        .map(|p| QueryPoints {
            request: prefetch_request(root, p),
            with_payload: query.with_payload.clone(),
            with_vectors: query.with_vectors.clone(),
        })
        .collect();
    let read = ShardRead::Batch { queries: prefetches.clone(), timeout_ms: remaining_ms(stop) };
    let answers = s.run_until(&read, stop)?;
    let per_shard = each(answers, "batch", |a| if let ShardAnswer::Batch(b) = a { Some(b) } else { None })?;
    let lists = merge_batch(s.config(), &prefetches, per_shard)?
        .into_iter()
        .collect::<Result<Vec<Vec<ScoredPoint>>, ApiError>>()?;
    let ids: Vec<Vec<(PointId, f32)>> =
        lists.iter().map(|hits| hits.iter().map(|h| (h.id, h.score)).collect()).collect();
    let fusion_error = |e: braid::fusion::FusionError| ApiError::bad_request(e.to_string());
    let fused = match fusion {
        braid::Fusion::Rrf { k, weights } => braid::fusion::qdrant::rrf(&ids, *k, weights.as_deref()),
        braid::Fusion::Dbsf { weights } => braid::fusion::qdrant::dbsf(&ids, weights.as_deref()),
    }
    .map_err(fusion_error)?;
    // The points as the prefetches brought them (payloads and vectors asked for).
    let mut found: BTreeMap<PointId, ScoredPoint> = BTreeMap::new();
    for hit in lists.into_iter().flatten() {
        found.entry(hit.id).or_insert(hit);
    }
    Ok(fused
        .into_iter()
        // Fusion thresholds are inclusive.
        .take_while(|f| root.score_threshold.is_none_or(|t| f.score >= t))
        .skip(root.offset)
        .take(root.limit)
        .filter_map(|f| {
            found.remove(&f.id).map(|hit| ScoredPoint { score: f.score, order_value: None, ..hit })
        })
        .collect())
}

/// What is left of a query's `timeout`, in milliseconds, for the legs on other peers.
fn remaining_ms(stop: &braid::Stop) -> Option<u64> {
    stop.remaining().map(|left| left.as_millis() as u64)
}

fn records(a: ShardAnswer) -> Option<(Vec<Record>, Option<PointId>)> {
    if let ShardAnswer::Records(r, next) = a { Some((r, next)) } else { None }
}

// ---- Writes: one entry per shard ----

/// Cuts a replicated entry (`{"operations": [...]}` in REST's shape, or
/// `{"grpc": ...}`) into one entry per shard: each operation naming points goes to
/// the shards of its points with only theirs, every other operation (by filter, an
/// index change) to every shard. `None` for a shard the entry does not touch.
pub(crate) fn split_entry(entry: &Value, shards: usize) -> Result<Vec<Option<Value>>, ApiError> {
    if let Some(grpc) = entry.get("grpc") {
        return split_grpc(grpc, shards);
    }
    let ops = entry
        .get("operations")
        .and_then(Value::as_array)
        .ok_or_else(|| ApiError::bad_request("an entry holds a list of `operations`".into()))?;
    let mut per_shard: Vec<Vec<Value>> = vec![Vec::new(); shards];
    for op in ops {
        let parts = op
            .as_object()
            .filter(|o| o.len() == 1)
            .and_then(|o| o.iter().next())
            .map(|(name, body)| split_rest_op(name, body, shards));
        match parts {
            Some(parts) => {
                for (shard, part) in parts.into_iter().enumerate() {
                    if let Some(body) = part {
                        per_shard[shard].push(body);
                    }
                }
            }
            // Malformed: every shard refuses it alike.
            None => per_shard.iter_mut().for_each(|ops| ops.push(op.clone())),
        }
    }
    Ok(per_shard.into_iter().map(|ops| (!ops.is_empty()).then(|| json!({"operations": ops}))).collect())
}

/// Whether REST operation `name` with `body` names its points (an upsert, a vector
/// update, or an operation with a list of `points`) rather than selecting them by
/// filter.
pub(crate) fn op_names_points(name: &str, body: &Value) -> bool {
    matches!(name, "upsert" | "update_vectors") || body.get("points").is_some_and(Value::is_array)
}

/// Whether an entry's operations name shard keys (REST's `shard_key`, gRPC's
/// `shard_key_selector`).
pub(crate) fn entry_names_keys(entry: &Value) -> bool {
    if let Some(grpc) = entry.get("grpc") {
        return crate::replica::grpc_batch(grpc)
            .is_ok_and(|b| b.operations.into_iter().any(|mut op| take_selector(&mut op).is_some()));
    }
    let ops = entry.get("operations").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    ops.iter()
        .filter_map(Value::as_object)
        .flat_map(|o| o.values())
        .any(|body| body.get("shard_key").is_some_and(|k| !k.is_null()))
}

/// The shard key selector of a gRPC operation, taken out of it.
fn take_selector(op: &mut proto::PointsUpdateOperation) -> Option<proto::ShardKeySelector> {
    use proto::points_update_operation::Operation;
    match op.operation.as_mut()? {
        Operation::Upsert(o) => o.shard_key_selector.take(),
        Operation::UpdateVectors(o) => o.shard_key_selector.take(),
        Operation::SetPayload(o) => o.shard_key_selector.take(),
        Operation::OverwritePayload(o) => o.shard_key_selector.take(),
        Operation::DeletePayload(o) => o.shard_key_selector.take(),
        Operation::DeleteVectors(o) => o.shard_key_selector.take(),
        Operation::DeletePoints(o) => o.shard_key_selector.take(),
        Operation::ClearPayload(o) => o.shard_key_selector.take(),
        Operation::DeleteDeprecated(_) | Operation::ClearPayloadDeprecated(_) => None,
    }
}

/// Whether a gRPC operation names its points (an upsert, a vector update, or a
/// selector listing ids) rather than selecting them by filter.
fn grpc_names_points(op: &proto::PointsUpdateOperation) -> bool {
    use proto::points_selector::PointsSelectorOneOf;
    use proto::points_update_operation::Operation;
    let listed = |s: &Option<proto::PointsSelector>| {
        matches!(
            s.as_ref().and_then(|s| s.points_selector_one_of.as_ref()),
            Some(PointsSelectorOneOf::Points(_))
        )
    };
    match &op.operation {
        Some(Operation::Upsert(_) | Operation::UpdateVectors(_)) => true,
        Some(Operation::SetPayload(o)) => listed(&o.points_selector),
        Some(Operation::OverwritePayload(o)) => listed(&o.points_selector),
        Some(Operation::DeletePayload(o)) => listed(&o.points_selector),
        Some(Operation::DeleteVectors(o)) => listed(&o.points_selector),
        Some(Operation::DeletePoints(o)) => listed(&o.points),
        Some(Operation::ClearPayload(o)) => listed(&o.points),
        Some(Operation::DeleteDeprecated(s) | Operation::ClearPayloadDeprecated(s)) => {
            listed(&Some(s.clone()))
        }
        None => false,
    }
}

/// [`split_entry`] of a gRPC entry for a collection sharded by the user: each
/// operation to the shards of the keys its `shard_key_selector` names (cut among
/// them by point id), an operation by filter naming none to every shard, one
/// naming points without a key refused.
pub(crate) fn split_grpc_custom(
    grpc: &Value,
    p: &crate::cluster::Placement,
) -> Result<Vec<Option<Value>>, ApiError> {
    let batch = crate::replica::grpc_batch(grpc).map_err(ApiError::bad_request)?;
    let mut per_shard: Vec<Vec<proto::PointsUpdateOperation>> = vec![Vec::new(); p.shards.len()];
    for mut op in batch.operations {
        let keys = proto_keys(take_selector(&mut op).as_ref())?;
        let to: Vec<Vec<usize>> = match keys {
            Some(keys) => keys
                .iter()
                .map(|key| {
                    let of = p.shards_of(key);
                    if of.is_empty() { Err(crate::cluster::no_key(key)) } else { Ok(of) }
                })
                .collect::<Result<_, _>>()?,
            None if grpc_names_points(&op) => {
                return Err(ApiError::bad_request(
                    "Shard key not specified: a collection sharded by the user needs `shard_key_selector` on \
                     writes naming points"
                        .into(),
                ));
            }
            None => vec![(0..p.shards.len()).collect()],
        };
        for shards in to {
            let parts = split_grpc(&crate::replica::grpc_entry(vec![op.clone()])["grpc"], shards.len())?;
            for (part, i) in parts.into_iter().zip(shards) {
                if let Some(part) = part {
                    per_shard[i].extend(
                        crate::replica::grpc_batch(&part["grpc"]).map_err(ApiError::bad_request)?.operations,
                    );
                }
            }
        }
    }
    Ok(per_shard.into_iter().map(|ops| (!ops.is_empty()).then(|| crate::replica::grpc_entry(ops))).collect())
}

/// One REST operation's part for each shard (the whole operation for every shard
/// when it names no points or cannot be read: then every shard refuses it alike).
fn split_rest_op(name: &str, body: &Value, shards: usize) -> Vec<Option<Value>> {
    let everywhere = || vec![Some(json!({name: body})); shards];
    let by_index = |ids: &[Value]| -> Option<Vec<usize>> {
        ids.iter().map(|id| crate::convert::point_id(id).ok().map(|id| shard_of(&id, shards))).collect()
    };
    let pick = |list: &[Value], of: &[usize], shard: usize| -> Value {
        Value::Array(list.iter().zip(of).filter(|(_, s)| **s == shard).map(|(v, _)| v.clone()).collect())
    };
    let with = |key: &str, value: Value| {
        let mut body = body.clone();
        body[key] = value;
        json!({name: body})
    };
    match name {
        "upsert" | "update_vectors" if body.get("points").is_some_and(Value::is_array) => {
            let points = body["points"].as_array().map(Vec::as_slice).unwrap_or_default();
            let ids: Vec<Value> =
                points.iter().map(|p| p.get("id").cloned().unwrap_or(Value::Null)).collect();
            let Some(of) = by_index(&ids) else { return everywhere() };
            (0..shards).map(|s| of.contains(&s).then(|| with("points", pick(points, &of, s)))).collect()
        }
        "upsert" if body.get("batch").is_some() => split_columns(body, shards).unwrap_or_else(everywhere),
        "upsert" | "update_vectors" => everywhere(),
        _ => match body.get("points").and_then(Value::as_array) {
            Some(ids) => {
                let Some(of) = by_index(ids) else { return everywhere() };
                (0..shards).map(|s| of.contains(&s).then(|| with("points", pick(ids, &of, s)))).collect()
            }
            None => everywhere(),
        },
    }
}

/// An upsert in columns (`{"batch": {"ids", "vectors", "payloads"}}`) cut by shard;
/// `None` when its columns do not line up (every shard then refuses it).
fn split_columns(body: &Value, shards: usize) -> Option<Vec<Option<Value>>> {
    let batch = body.get("batch")?.as_object()?;
    let ids = batch.get("ids")?.as_array()?;
    let of: Vec<usize> = ids
        .iter()
        .map(|id| crate::convert::point_id(id).ok().map(|id| shard_of(&id, shards)))
        .collect::<Option<_>>()?;
    let pick = |list: &Vec<Value>, shard: usize| -> Option<Value> {
        (list.len() == of.len()).then(|| {
            Value::Array(list.iter().zip(&of).filter(|(_, s)| **s == shard).map(|(v, _)| v.clone()).collect())
        })
    };
    let column = |value: &Value, shard: usize| -> Option<Value> {
        match value {
            Value::Array(list) => pick(list, shard),
            // Named spaces: a column per space.
            Value::Object(spaces) => spaces
                .iter()
                .map(|(k, v)| Some((k.clone(), pick(v.as_array()?, shard)?)))
                .collect::<Option<serde_json::Map<String, Value>>>()
                .map(Value::Object),
            Value::Null => Some(Value::Null),
            _ => None,
        }
    };
    (0..shards)
        .map(|s| {
            if !of.contains(&s) {
                return Some(None);
            }
            let mut part = serde_json::Map::new();
            for (key, value) in batch {
                part.insert(key.clone(), if key == "ids" { pick(ids, s)? } else { column(value, s)? });
            }
            let mut body = body.clone();
            body["batch"] = Value::Object(part);
            Some(Some(json!({"upsert": body})))
        })
        .collect()
}

fn split_grpc(grpc: &Value, shards: usize) -> Result<Vec<Option<Value>>, ApiError> {
    use proto::points_selector::PointsSelectorOneOf;
    use proto::points_update_operation::Operation;
    let batch = crate::replica::grpc_batch(grpc).map_err(ApiError::bad_request)?;
    let shard = |id: Option<&proto::PointId>| -> Option<usize> {
        crate::grpc::point_id_of(id).ok().map(|id| shard_of(&id, shards))
    };
    // The selector's part for `s`: `None` if it names points of other shards only.
    let select =
        |selector: &Option<proto::PointsSelector>, s: usize| -> Option<Option<proto::PointsSelector>> {
            match selector.as_ref().and_then(|p| p.points_selector_one_of.as_ref()) {
                Some(PointsSelectorOneOf::Points(list)) => {
                    let mine: Option<Vec<proto::PointId>> = list
                        .ids
                        .iter()
                        .map(|id| shard(Some(id)).map(|sh| (sh, id)))
                        .filter(|r| r.is_none_or(|(sh, _)| sh == s))
                        .map(|r| r.map(|(_, id)| id.clone()))
                        .collect();
                    match mine {
                        Some(ids) if ids.is_empty() => None,
                        Some(ids) => Some(Some(proto::PointsSelector {
                            points_selector_one_of: Some(PointsSelectorOneOf::Points(proto::PointsIdsList {
                                ids,
                            })),
                        })),
                        // An id that does not read: every shard refuses it alike.
                        None => Some(selector.clone()),
                    }
                }
                _ => Some(selector.clone()),
            }
        };
    // An operation by selector, with the selector's part for shard `s` (none: the
    // operation does not reach it).
    macro_rules! selected {
        ($variant:ident, $field:ident, $op:expr, $shard:expr) => {
            select(&$op.$field, $shard).map(|$field| {
                Operation::$variant(proto::points_update_operation::$variant { $field, ..$op.clone() })
            })
        };
    }
    // The points of a list that belong to shard `s` (an id that does not read goes to
    // every shard, which refuse it alike); none: the list has no point there.
    fn mine<P: Clone>(
        points: &[P],
        id: impl Fn(&P) -> Option<&proto::PointId>,
        s: usize,
        shards: usize,
    ) -> Option<Vec<P>> {
        let kept: Vec<P> = points
            .iter()
            .filter(|p| crate::grpc::point_id_of(id(p)).ok().is_none_or(|pid| shard_of(&pid, shards) == s))
            .cloned()
            .collect();
        (!kept.is_empty()).then_some(kept)
    }
    let mut per_shard: Vec<Vec<proto::PointsUpdateOperation>> = vec![Vec::new(); shards];
    for op in &batch.operations {
        for (s, ops) in per_shard.iter_mut().enumerate() {
            let part = match &op.operation {
                Some(Operation::Upsert(list)) => {
                    mine(&list.points, |p| p.id.as_ref(), s, shards).map(|points| {
                        Operation::Upsert(proto::points_update_operation::PointStructList {
                            points,
                            ..list.clone()
                        })
                    })
                }
                Some(Operation::UpdateVectors(u)) => {
                    mine(&u.points, |p| p.id.as_ref(), s, shards).map(|points| {
                        Operation::UpdateVectors(proto::points_update_operation::UpdateVectors {
                            points,
                            ..u.clone()
                        })
                    })
                }
                Some(Operation::DeleteDeprecated(sel)) => select(&Some(sel.clone()), s)
                    .map(|sel| Operation::DeleteDeprecated(sel.unwrap_or_default())),
                Some(Operation::ClearPayloadDeprecated(sel)) => select(&Some(sel.clone()), s)
                    .map(|sel| Operation::ClearPayloadDeprecated(sel.unwrap_or_default())),
                Some(Operation::SetPayload(p)) => selected!(SetPayload, points_selector, p, s),
                Some(Operation::OverwritePayload(p)) => selected!(OverwritePayload, points_selector, p, s),
                Some(Operation::DeletePayload(p)) => selected!(DeletePayload, points_selector, p, s),
                Some(Operation::DeleteVectors(p)) => selected!(DeleteVectors, points_selector, p, s),
                Some(Operation::DeletePoints(p)) => selected!(DeletePoints, points, p, s),
                Some(Operation::ClearPayload(p)) => selected!(ClearPayload, points, p, s),
                None => None,
            };
            if let Some(operation) = part {
                ops.push(proto::PointsUpdateOperation { operation: Some(operation) });
            } else if op.operation.is_none() {
                ops.push(op.clone());
            }
        }
    }
    Ok(per_shard.into_iter().map(|ops| (!ops.is_empty()).then(|| crate::replica::grpc_entry(ops))).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_spread_over_shards_and_stay_put() {
        let mut counts = [0usize; 3];
        for n in 0..3_000u64 {
            let s = shard_of(&PointId::Num(n), 3);
            assert_eq!(s, shard_of(&PointId::Num(n), 3));
            counts[s] += 1;
        }
        assert!(counts.iter().all(|&c| (800..1_200).contains(&c)), "{counts:?}");
        let u = PointId::Uuid(braid::Uuid::from_u128(0x1234_5678_9abc_def0_1234_5678_9abc_def0));
        assert!(shard_of(&u, 4) < 4);
        assert_eq!(shard_of(&PointId::Num(7), 1), 0);
    }

    #[test]
    fn a_rest_entry_is_cut_by_shard() {
        let ids: Vec<u64> = (0..20).collect();
        let points: Vec<Value> = ids.iter().map(|i| json!({"id": i, "vector": [1.0, 0.0]})).collect();
        let entry = json!({"operations": [
            {"upsert": {"points": points}},
            {"delete": {"points": [1, 2, 3]}},
            {"set_payload": {"payload": {"a": 1}, "filter": {"must": []}}},
            {"upsert": {"batch": {"ids": ids, "vectors": ids.iter().map(|_| json!([0.0, 1.0])).collect::<Vec<_>>()}}},
        ]});
        let parts = split_entry(&entry, 3).unwrap();
        let mut seen = 0;
        for (s, part) in parts.iter().enumerate() {
            let ops = part.as_ref().unwrap()["operations"].as_array().unwrap();
            let upserted = ops[0]["upsert"]["points"].as_array().unwrap();
            for p in upserted {
                assert_eq!(shard_of(&PointId::Num(p["id"].as_u64().unwrap()), 3), s);
            }
            seen += upserted.len();
            // The filter write reaches every shard.
            assert!(ops.iter().any(|op| op.get("set_payload").is_some()));
            let batch = ops.iter().find_map(|op| op["upsert"].get("batch")).unwrap();
            assert_eq!(batch["ids"].as_array().unwrap().len(), batch["vectors"].as_array().unwrap().len());
        }
        assert_eq!(seen, 20);
        // A delete of points on one shard only reaches that shard.
        let lone = split_entry(&json!({"operations": [{"delete": {"points": [5]}}]}), 3).unwrap();
        assert_eq!(lone.iter().filter(|p| p.is_some()).count(), 1);
        assert!(lone[shard_of(&PointId::Num(5), 3)].is_some());
    }

    #[test]
    fn reads_travel_between_peers_unchanged() {
        // A query with nested filters, a formula and a fused prefetch tree, as REST
        // reads it, through JSON and back.
        let body = json!({
            "prefetch": [
                {"query": [0.1, 0.2], "using": "a", "limit": 30,
                 "filter": {"should": [{"key": "tags[].name", "match": {"any": ["x", "y"]}},
                     {"nested": {"key": "reviews", "filter": {"must": [{"key": "score", "range": {"gte": 3}}]}}},
                     {"key": "where", "geo_radius": {"center": {"lon": 1.0, "lat": 2.0}, "radius": 50.0}}]}},
                {"prefetch": [{"query": {"indices": [1, 7], "values": [0.5, 0.25]}, "using": "s"}],
                 "query": {"formula": {"sum": ["$score", {"mult": [0.5, "price"]}]}}},
            ],
            "query": {"rrf": {"k": 3, "weights": [1.0, 2.0]}},
            "filter": {"must_not": [{"has_id": [1, "00000000-0000-0000-0000-00000000002a"]}],
                "min_should": {"conditions": [{"is_empty": {"key": "k"}}, {"has_vector": "a"}], "min_count": 1}},
            "limit": 4, "offset": 1, "with_payload": ["a", "b.c"],
        });
        let query = crate::convert::query_points(&body).expect("a query");
        let read = ShardRead::Query { query: Box::new(query.clone()), timeout_ms: Some(3) };
        let back: ShardRead = serde_json::from_value(serde_json::to_value(&read).unwrap()).unwrap();
        let ShardRead::Query { query: back, timeout_ms } = back else { panic!("{back:?}") };
        assert_eq!((*back, timeout_ms), (query, Some(3)));
    }

    #[test]
    fn scroll_pages_merge_in_id_order_with_the_next_offset() {
        let rec = |n: u64| Record {
            id: PointId::Num(n),
            payload: None,
            vectors: None,
            sparse: None,
            multi: None,
            order_value: None,
        };
        let pages = vec![
            (vec![rec(1), rec(4)], Some(PointId::Num(9))),
            (vec![rec(2), rec(3)], Some(PointId::Num(5))),
        ];
        let (records, next) = merge_scroll(pages, 3);
        assert_eq!(records.iter().map(|r| r.id).collect::<Vec<_>>(), [1u64, 2, 3].map(PointId::Num));
        assert_eq!(next, Some(PointId::Num(4)));
    }
}
