//! Qdrant's grouped queries (`query/groups`, `search/groups`, `recommend/groups`): the
//! best points of a query gathered by a payload value, a few per group, and optionally
//! each group's record from another collection (`with_lookup`). `docs/query.md`,
//! "Groups".

use braid_core::{PointId, PointOffset};
use braid_filter::Filter;
use braid_filter::JsonPath;
use braid_query::{Prefetch, QueryRequest, Stop};
use serde_json::Value;

use crate::Error;
use crate::collection::{Collection, QueryPoints};
use crate::point::{Record, ScoredPoint, WithPayload, WithVectors};

/// A group's id: a string or integer value of the `group_by` key.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(untagged)]
pub enum GroupId {
    /// An integer value.
    Int(i64),
    /// A string value.
    Str(String),
}

impl GroupId {
    /// The point this id names in a `with_lookup` collection: a non-negative integer
    /// or a UUID string; anything else names none.
    pub fn point_id(&self) -> Option<PointId> {
        match self {
            GroupId::Int(i) => u64::try_from(*i).ok().map(PointId::Num),
            GroupId::Str(s) => braid_core::Uuid::parse_str(s).ok().map(PointId::Uuid),
        }
    }
}

/// Where each group's record comes from (`with_lookup`): the point of `collection`
/// whose id is the group's id.
#[derive(Clone, Debug, PartialEq)]
pub struct WithLookup {
    /// The collection to read the records from.
    pub collection: String,
    /// Which payload of the record (Qdrant's default: all of it).
    pub with_payload: WithPayload,
    /// Which vectors of the record (default: none).
    pub with_vectors: WithVectors,
}

impl WithLookup {
    /// Records from `collection`, with their payload and no vectors.
    pub fn new(collection: &str) -> WithLookup {
        WithLookup {
            collection: collection.to_string(),
            with_payload: WithPayload::All,
            with_vectors: WithVectors::None,
        }
    }
}

/// How to group a query's results.
#[derive(Clone, Debug, PartialEq)]
pub struct GroupBy {
    /// The payload key whose values name the groups (strings or integers; a point
    /// holding an array is in the group of each value).
    pub key: String,
    /// The most points per group (Qdrant's default 3).
    pub group_size: usize,
    /// How many groups (Qdrant's default 10).
    pub limit: usize,
    /// Each group's record from another collection.
    pub with_lookup: Option<WithLookup>,
}

impl GroupBy {
    /// Groups by `key`, 3 points per group, 10 groups.
    pub fn new(key: &str) -> GroupBy {
        GroupBy { key: key.to_string(), group_size: 3, limit: 10, with_lookup: None }
    }
}

/// One group: its id, its best points (best first) and its looked-up record.
#[derive(Clone, Debug, PartialEq)]
pub struct PointGroup {
    /// The value the points share.
    pub id: GroupId,
    /// Its points, best first.
    pub hits: Vec<ScoredPoint>,
    /// The record `with_lookup` found for it, if any.
    pub lookup: Option<Record>,
}

/// The most points a grouped query gathers from (`limit · group_size`).
pub const MAX_GROUPED: usize = braid_query::MAX_LIMIT;

/// The distinct group ids a payload gives, in payload order, or `None` when the point
/// cannot be grouped: no value at the key, or a value that is neither a string nor an
/// integer (the server then drops the whole point, as local mode notes).
pub fn group_ids(path: &JsonPath, payload: Option<&Value>) -> Option<Vec<GroupId>> {
    let values = path.values(payload?);
    let mut ids: Vec<GroupId> = Vec::new();
    for v in values.iter().flat_map(|v| match v {
        Value::Array(items) => items.iter().collect::<Vec<_>>(),
        other => vec![*other],
    }) {
        let id = match v {
            Value::String(s) => GroupId::Str(s.clone()),
            Value::Number(n) => GroupId::Int(n.as_i64()?),
            _ => return None,
        };
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    (!ids.is_empty()).then_some(ids)
}

/// Raises every prefetch's limit to at least `n`, so that the root ranks as deep.
fn deepen(prefetch: &mut [Prefetch], n: usize) {
    for p in prefetch {
        p.limit = Some(p.limit.unwrap_or(10).max(n));
        deepen(&mut p.prefetch, n);
    }
}

/// Points gathered into groups, in the order the groups first appeared.
struct Gathered<H> {
    groups: Vec<(GroupId, Vec<H>)>,
    index: std::collections::HashMap<GroupId, usize>,
}

impl<H: Clone> Gathered<H> {
    /// Adds the points of `hits` (a ranking, best first, each with its point and the
    /// groups its payload names) not seen in an earlier round.
    fn gather(
        &mut self,
        hits: Vec<(PointId, H, Option<Vec<GroupId>>)>,
        group_size: usize,
        seen: &mut std::collections::HashSet<PointId>,
    ) {
        for (point, hit, ids) in hits {
            if !seen.insert(point) {
                continue;
            }
            let Some(ids) = ids else { continue };
            for id in ids {
                let at = *self.index.entry(id.clone()).or_insert_with(|| {
                    self.groups.push((id, Vec::new()));
                    self.groups.len() - 1
                });
                if self.groups[at].1.len() < group_size {
                    self.groups[at].1.push(hit.clone());
                }
            }
        }
    }

    /// The filter for the next round, as Qdrant's server narrows its searches: points
    /// that can still add to an open group — no value in a full group, or a value in
    /// an open one — and once `limit` groups exist, only points of the open ones
    /// among them (a later group can no longer make the answer). `None` while no
    /// group is full and fewer than `limit` exist.
    fn narrowing(&self, key: &str, limit: usize, group_size: usize) -> Option<Filter> {
        let split = |groups: &[(GroupId, Vec<H>)], full: bool| {
            let (mut words, mut ints) = (Vec::new(), Vec::new());
            for (id, hits) in groups {
                if (hits.len() >= group_size) == full {
                    match id {
                        GroupId::Str(s) => words.push(s.clone()),
                        GroupId::Int(i) => ints.push(*i),
                    }
                }
            }
            (words, ints)
        };
        let any = |(words, ints): (Vec<String>, Vec<i64>)| {
            let mut conditions = Vec::new();
            if !words.is_empty() {
                conditions.push(braid_filter::field(key).any_keyword(words));
            }
            if !ints.is_empty() {
                conditions.push(braid_filter::field(key).any_integer(ints));
            }
            conditions
        };
        if self.groups.len() >= limit {
            return Some(Filter::should(any(split(&self.groups[..limit], false))));
        }
        let full = any(split(&self.groups, true));
        if full.is_empty() {
            return None;
        }
        let mut open = any(split(&self.groups, false));
        open.push(Filter::must_not(full).into_condition());
        Some(Filter::should(open))
    }

    /// The first `limit` groups exist and each is full.
    fn complete(&self, limit: usize, group_size: usize) -> bool {
        self.groups.len() >= limit && self.groups[..limit].iter().all(|(_, h)| h.len() >= group_size)
    }
}

/// Refuses a grouped query whose limits or offset Braid does not serve, or whose
/// key is not a payload path.
pub fn check_grouped(query: &QueryPoints, group: &GroupBy) -> Result<(), Error> {
    for (what, n) in [("group limit", group.limit), ("group_size", group.group_size)] {
        if n == 0 || n > MAX_GROUPED {
            return Err(braid_query::QueryError::Limit { what, max: MAX_GROUPED, got: n }.into());
        }
    }
    let wanted = group.limit.saturating_mul(group.group_size);
    if wanted > MAX_GROUPED {
        return Err(braid_query::QueryError::Limit {
            what: "limit × group_size",
            max: MAX_GROUPED,
            got: wanted,
        }
        .into());
    }
    if query.request.offset != 0 {
        // A grouped query takes no offset, as in Qdrant.
        return Err(braid_query::QueryError::Offset { max: 0, got: query.request.offset }.into());
    }
    JsonPath::parse(&group.key).map_err(|_| Error::InvalidKey { key: group.key.clone() })?;
    Ok(())
}

/// The ranking loop of a grouped query over any ranking of `live` points: `rank`
/// answers a request with its hits in order, each with its point and the groups its
/// payload puts it in. Ranks, gathers, and ranks again — narrowed to the points that
/// can still add to an open group, and deeper — until the first `limit` groups are
/// full or the ranking runs out (Qdrant's server searches again the same way); the
/// first `limit` groups. One collection ranks its segment; a cluster node the merged
/// answers of the collection's shards.
pub fn gather_groups<H: Clone, E>(
    request: &QueryRequest,
    group: &GroupBy,
    live: usize,
    mut rank: impl FnMut(&QueryRequest) -> Result<Vec<(PointId, H, Option<Vec<GroupId>>)>, E>,
) -> Result<Vec<(GroupId, Vec<H>)>, E> {
    let wanted = group.limit.saturating_mul(group.group_size);
    let mut depth = wanted.saturating_mul(2).clamp(32, MAX_GROUPED);
    let mut gathered = Gathered { groups: Vec::new(), index: std::collections::HashMap::new() };
    let mut seen = std::collections::HashSet::new();
    loop {
        let narrowing = gathered.narrowing(&group.key, group.limit, group.group_size);
        let filter = match (&request.filter, narrowing) {
            (Some(f), Some(n)) => Some(f.clone().and(n)),
            (f, n) => n.or_else(|| f.clone()),
        };
        let mut deeper = QueryRequest { limit: depth, offset: 0, filter, ..request.clone() };
        deepen(&mut deeper.prefetch, depth);
        let hits = rank(&deeper)?;
        let found = hits.len();
        gathered.gather(hits, group.group_size, &mut seen);
        if found < depth || depth >= live.min(MAX_GROUPED) || gathered.complete(group.limit, group.group_size)
        {
            break;
        }
        depth = depth.saturating_mul(2).min(MAX_GROUPED);
    }
    gathered.groups.truncate(group.limit);
    Ok(gathered.groups)
}

impl Collection {
    /// Qdrant's grouped query: the query's points, best first, gathered into groups by
    /// their values at `group.key`; the first `group.limit` groups to appear, each
    /// with its best `group.group_size` points (`docs/query.md`, "Groups").
    pub fn query_groups(
        &self,
        query: impl Into<QueryPoints>,
        group: &GroupBy,
    ) -> Result<Vec<PointGroup>, Error> {
        self.query_groups_until(query, group, &Stop::never())
    }

    /// [`Collection::query_groups`], giving up when `stop` says so.
    pub fn query_groups_until(
        &self,
        query: impl Into<QueryPoints>,
        group: &GroupBy,
        stop: &Stop,
    ) -> Result<Vec<PointGroup>, Error> {
        let query = query.into();
        check_grouped(&query, group)?;
        let path = JsonPath::parse(&group.key).map_err(|_| Error::InvalidKey { key: group.key.clone() })?;
        let lookup = group.with_lookup.as_ref().map(|l| self.find(&l.collection)).transpose()?;
        let request = self.resolve_lookups(&query.request)?.into_owned();
        let segment = self.serve()?;
        let live = segment.live().len() as usize;
        let gathered = gather_groups(&request, group, live, |deeper| {
            let hits = braid_query::run_until(&*segment, deeper, stop)?;
            Ok::<_, Error>(
                hits.into_iter()
                    .map(|hit| {
                        let payload =
                            segment.offset(&hit.id).and_then(|o| segment.payloads().get(PointOffset(o)));
                        (hit.id, hit, group_ids(&path, payload.as_deref()))
                    })
                    .collect(),
            )
        })?;
        let mut groups: Vec<PointGroup> = gathered
            .into_iter()
            .map(|(id, hits)| PointGroup {
                id,
                hits: self.scored(&segment, hits, &query.with_payload, &query.with_vectors),
                lookup: None,
            })
            .collect();
        drop(segment);
        if let (Some(other), Some(spec)) = (lookup, &group.with_lookup) {
            for g in &mut groups {
                if let Some(id) = g.id.point_id() {
                    g.lookup = other.get(&[id], spec.with_payload.clone(), spec.with_vectors.clone())?.pop();
                }
            }
        }
        Ok(groups)
    }
}
