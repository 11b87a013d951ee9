//! A segment's point ids: the id written at every offset, which offsets are live, and
//! the live ids in id order (scrolling reads them so, and writes look ids up).
//!
//! Sized for ten million points: per offset the id itself (8 bytes for integer ids,
//! 16 for UUIDs) and, per live point, 4 bytes of an offset array sorted by id. Ids
//! written since the array was last sorted wait in a small ordered map, merged into
//! the array once they pass a sixty-fourth of it; a lookup reads the map, then
//! binary-searches the array. A `BTreeMap<PointId, u32>` beside a `Vec<PointId>`
//! (what this replaces) took 55–80 bytes per point.

use std::collections::BTreeMap;
use std::iter::Peekable;

use braid_core::PointId;
use roaring::RoaringBitmap;
use uuid::Uuid;

/// Merged into the sorted array once the map holds this many ids and more than a
/// [`MERGE_SHARE`]th of the array's length (tests merge often, on small sets).
#[cfg(not(test))]
const MERGE_MIN: usize = 1024;
#[cfg(test)]
const MERGE_MIN: usize = 16;
const MERGE_SHARE: usize = 64;
/// A merge drops the array's stale entries once they pass this share of it; until
/// then scans skip them (a drop reads the liveness of every entry: ~0.1 s at 10M).
const STALE_SHARE: usize = 16;

/// Interpolation steps before a lookup falls back to binary search.
const INTERPOLATIONS: usize = 4;

/// `id` as a number for interpolating towards it, when it is of `like`'s kind:
/// an integer as itself, a UUID by its first 64 bits.
fn rank(id: &PointId, like: &PointId) -> Option<f64> {
    match (id, like) {
        (PointId::Num(n), PointId::Num(_)) => Some(*n as f64),
        (PointId::Uuid(u), PointId::Uuid(_)) => Some((u.as_u128() >> 64) as f64),
        _ => None,
    }
}

/// The id of every offset ever written, by offset, as narrow as the ids allow.
#[derive(Clone, Debug)]
pub(crate) enum Column {
    /// Every id an integer.
    Num(Vec<u64>),
    /// Every id a UUID.
    Uuid(Vec<Uuid>),
    /// Both kinds.
    Mixed(Vec<PointId>),
}

impl Default for Column {
    fn default() -> Column {
        Column::Num(Vec::new())
    }
}

impl Column {
    fn get(&self, offset: u32) -> PointId {
        let i = offset as usize;
        match self {
            Column::Num(v) => PointId::Num(v[i]),
            Column::Uuid(v) => PointId::Uuid(v[i]),
            Column::Mixed(v) => v[i],
        }
    }

    fn len(&self) -> usize {
        match self {
            Column::Num(v) => v.len(),
            Column::Uuid(v) => v.len(),
            Column::Mixed(v) => v.len(),
        }
    }

    /// An empty column with room for `n` integer ids (a checkpoint's, read back).
    pub(crate) fn with_capacity(n: usize) -> Column {
        Column::Num(Vec::with_capacity(n))
    }

    /// Appends the id of the next offset.
    pub(crate) fn push(&mut self, id: PointId) {
        match (&mut *self, id) {
            (Column::Num(v), PointId::Num(n)) => v.push(n),
            (Column::Uuid(v), PointId::Uuid(u)) => v.push(u),
            (Column::Mixed(v), id) => v.push(id),
            (Column::Num(v), PointId::Uuid(u)) if v.is_empty() => {
                let mut uuids = Vec::with_capacity(v.capacity());
                uuids.push(u);
                *self = Column::Uuid(uuids);
            }
            (column, id) => {
                let mut all: Vec<PointId> = Vec::with_capacity(column.len() + 1);
                all.extend((0..column.len() as u32).map(|o| column.get(o)));
                all.push(id);
                *column = Column::Mixed(all);
            }
        }
    }

    #[cfg(test)]
    fn bytes(&self) -> usize {
        match self {
            Column::Num(v) => v.capacity() * 8,
            Column::Uuid(v) => v.capacity() * 16,
            Column::Mixed(v) => v.capacity() * std::mem::size_of::<PointId>(),
        }
    }
}

/// See the module documentation. Invariants: `live` holds exactly the offsets of
/// `recent`'s values and of `sorted`'s live entries; an id has at most one live offset;
/// `sorted` is in id order and names each id at most once; `stale` counts its entries
/// that are no longer live.
#[derive(Clone, Debug)]
pub(crate) struct PointIds {
    column: Column,
    live: RoaringBitmap,
    sorted: Vec<u32>,
    recent: BTreeMap<PointId, u32>,
    stale: usize,
}

impl Default for PointIds {
    fn default() -> PointIds {
        PointIds::new()
    }
}

impl PointIds {
    pub(crate) fn new() -> PointIds {
        PointIds {
            column: Column::Num(Vec::new()),
            live: RoaringBitmap::new(),
            sorted: Vec::new(),
            recent: BTreeMap::new(),
            stale: 0,
        }
    }

    /// The ids of a checkpoint: `column` by offset, of which `live` are live. Refuses a
    /// live offset past the column's end (`None`) and an id live at two offsets.
    pub(crate) fn read(column: Column, live: RoaringBitmap) -> Result<PointIds, Option<PointId>> {
        if live.max().is_some_and(|m| m as usize >= column.len()) {
            return Err(None);
        }
        let mut sorted: Vec<u32> = live.iter().collect();
        // Integer ids written in order (the usual bulk load) need no sort; otherwise
        // the keys are sorted beside their offsets, not looked up per comparison.
        if !sorted.is_sorted_by_key(|&o| column.get(o)) {
            sorted = match &column {
                Column::Num(v) => by_key(&sorted, |o| v[o as usize]),
                Column::Uuid(v) => by_key(&sorted, |o| v[o as usize]),
                Column::Mixed(v) => by_key(&sorted, |o| v[o as usize]),
            };
        }
        if let Some(w) = sorted.windows(2).find(|w| column.get(w[0]) == column.get(w[1])) {
            return Err(Some(column.get(w[0])));
        }
        sorted.shrink_to_fit();
        Ok(PointIds { column, live, sorted, recent: BTreeMap::new(), stale: 0 })
    }

    /// Offsets ever written.
    pub(crate) fn len(&self) -> usize {
        self.column.len()
    }

    /// The id written at `offset` (below [`PointIds::len`]).
    pub(crate) fn id(&self, offset: u32) -> PointId {
        self.column.get(offset)
    }

    /// Every offset's id, by offset.
    pub(crate) fn all(&self) -> impl ExactSizeIterator<Item = PointId> + '_ {
        (0..self.len() as u32).map(|o| self.column.get(o))
    }

    /// Live offsets.
    pub(crate) fn live(&self) -> &RoaringBitmap {
        &self.live
    }

    /// The live offset of `id`.
    pub(crate) fn offset(&self, id: &PointId) -> Option<u32> {
        if let Some(&o) = self.recent.get(id) {
            return Some(o);
        }
        let o = self.sorted[self.position(id).ok()?];
        self.live.contains(o).then_some(o)
    }

    /// Where `id` is in `sorted` (`Ok`), or where it would go (`Err`). Ids of one kind
    /// are numbers spread over their range (integer ids are mostly dense runs, UUIDs
    /// uniform), so a few interpolation steps find most in two or three reads where a
    /// binary search takes `log₂ n`; what they leave is binary-searched, so the worst
    /// case stays logarithmic.
    fn position(&self, id: &PointId) -> Result<usize, usize> {
        let key = |i: usize| self.column.get(self.sorted[i]);
        let (mut lo, mut hi) = (0, self.sorted.len());
        // An id ranks against its own kind.
        let x = rank(id, id).unwrap_or_default();
        for _ in 0..INTERPOLATIONS {
            if hi - lo < 16 {
                break;
            }
            let (Some(a), Some(b)) = (rank(&key(lo), id), rank(&key(hi - 1), id)) else {
                break;
            };
            if x <= a || x >= b {
                break;
            }
            let guess = (lo + (((x - a) / (b - a)) * (hi - 1 - lo) as f64) as usize).min(hi - 1);
            match key(guess).cmp(id) {
                std::cmp::Ordering::Equal => return Ok(guess),
                std::cmp::Ordering::Less => lo = guess + 1,
                std::cmp::Ordering::Greater => hi = guess,
            }
        }
        self.sorted[lo..hi]
            .binary_search_by(|&o| self.column.get(o).cmp(id))
            .map(|i| lo + i)
            .map_err(|i| lo + i)
    }

    /// Writes `id` at the next offset, live, and returns that offset. The id has no
    /// live offset (its old version was removed first).
    pub(crate) fn push(&mut self, id: PointId) -> u32 {
        debug_assert!(self.offset(&id).is_none(), "{id} is live already");
        let offset = self.len() as u32;
        self.column.push(id);
        self.live.insert(offset);
        self.recent.insert(id, offset);
        self.maybe_merge();
        offset
    }

    /// Removes the live version of `id`; returns its offset.
    pub(crate) fn remove(&mut self, id: &PointId) -> Option<u32> {
        let offset = match self.recent.remove(id) {
            Some(o) => o,
            None => {
                let o = self.offset(id)?;
                self.stale += 1;
                o
            }
        };
        self.live.remove(offset);
        self.maybe_merge();
        Some(offset)
    }

    /// Live ids from `from` on (all with `None`), in id order, with their offsets.
    pub(crate) fn from(&self, from: Option<PointId>) -> impl Iterator<Item = (PointId, u32)> + '_ {
        let (start, recent) = match from {
            Some(id) => (self.position(&id).unwrap_or_else(|at| at), self.recent.range(id..)),
            None => (0, self.recent.range(..)),
        };
        let sorted = self.sorted[start..]
            .iter()
            .filter(|&&o| self.stale == 0 || self.live.contains(o))
            .map(|&o| (self.column.get(o), o));
        Merge { a: sorted.peekable(), b: recent.map(|(id, o)| (*id, *o)).peekable() }
    }

    /// Heap bytes held (an estimate for the map's nodes).
    #[cfg(test)]
    fn bytes(&self) -> usize {
        // A B-tree leaf holds up to 11 entries; ids written in order leave them about
        // half full.
        let recent = self.recent.len() * 2 * (std::mem::size_of::<PointId>() + 4);
        self.column.bytes() + self.live.serialized_size() + self.sorted.capacity() * 4 + recent
    }

    fn maybe_merge(&mut self) {
        let n = self.sorted.len();
        if self.recent.len() > MERGE_MIN.max(n / MERGE_SHARE) || self.stale > MERGE_MIN.max(n / STALE_SHARE) {
            self.merge();
        }
    }

    /// Folds `recent` into `sorted` and drops `sorted`'s stale entries: runs of the
    /// array between the map's ids are copied whole.
    fn merge(&mut self) {
        let mut old = std::mem::take(&mut self.sorted);
        if self.stale > MERGE_MIN.max(old.len() / STALE_SHARE) {
            old.retain(|&o| self.live.contains(o));
            self.stale = 0;
        }
        let mut merged = Vec::with_capacity(old.len() + self.recent.len());
        let mut rest = &old[..];
        for (id, &o) in &self.recent {
            // Galloping from the last place: the map's ids are in order, so each search
            // starts where the previous one ended and reads near it.
            let below = |x: &u32| self.column.get(*x) < *id;
            let mut step = 1;
            while step <= rest.len() && below(&rest[step - 1]) {
                step *= 2;
            }
            let (from, to) = (step / 2, step.min(rest.len()));
            let at = from + rest[from..to].partition_point(below);
            merged.extend_from_slice(&rest[..at]);
            merged.push(o);
            rest = &rest[at..];
            // The array's entry for an id written again is its old, dead version: an id
            // stays in the array once.
            if rest.first().is_some_and(|&x| self.column.get(x) == *id) {
                rest = &rest[1..];
                self.stale -= 1;
            }
        }
        merged.extend_from_slice(rest);
        self.recent.clear();
        self.sorted = merged;
    }
}

/// `offsets` in the order of `key`: the keys sorted beside them.
fn by_key<K: Ord + Copy>(offsets: &[u32], key: impl Fn(u32) -> K) -> Vec<u32> {
    let mut pairs: Vec<(K, u32)> = offsets.iter().map(|&o| (key(o), o)).collect();
    pairs.sort_unstable();
    pairs.into_iter().map(|(_, o)| o).collect()
}

/// Two id-ordered streams with no id in both, as one.
struct Merge<A: Iterator, B: Iterator> {
    a: Peekable<A>,
    b: Peekable<B>,
}

impl<A, B> Iterator for Merge<A, B>
where
    A: Iterator<Item = (PointId, u32)>,
    B: Iterator<Item = (PointId, u32)>,
{
    type Item = (PointId, u32);

    fn next(&mut self) -> Option<(PointId, u32)> {
        match (self.a.peek(), self.b.peek()) {
            (Some(x), Some(y)) if y.0 < x.0 => self.b.next(),
            (Some(_), _) => self.a.next(),
            (None, _) => self.b.next(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Integer ids spread unevenly (cubes), UUIDs scattered over their range.
    fn id(n: u8, uuid: bool) -> PointId {
        let n = n as u64;
        if uuid {
            PointId::Uuid(Uuid::from_u128(
                (n as u128).wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835),
            ))
        } else {
            PointId::Num(n * n * n)
        }
    }

    #[derive(Debug, Clone)]
    enum Step {
        Upsert(u8, bool),
        Remove(u8, bool),
        Reopen,
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            4 => (any::<u8>(), any::<bool>()).prop_map(|(n, u)| Step::Upsert(n, u)),
            2 => (any::<u8>(), any::<bool>()).prop_map(|(n, u)| Step::Remove(n, u)),
            1 => Just(Step::Reopen),
        ]
    }

    /// Checks `ids` against the model: live ids with their offsets, in id order.
    fn agrees(ids: &PointIds, model: &BTreeMap<PointId, u32>, written: &[PointId]) {
        assert_eq!(ids.len(), written.len());
        assert!(ids.all().eq(written.iter().copied()));
        assert_eq!(ids.live().len() as usize, model.len());
        assert!(ids.from(None).eq(model.iter().map(|(i, o)| (*i, *o))));
        for n in [0u8, 3, 100, 200, 255] {
            for uuid in [false, true] {
                let from = id(n, uuid);
                assert!(ids.from(Some(from)).eq(model.range(from..).map(|(i, o)| (*i, *o))));
                assert_eq!(ids.offset(&from), model.get(&from).copied());
            }
        }
        for (i, o) in model {
            assert_eq!(ids.offset(i), Some(*o));
        }
    }

    proptest! {
        /// Upserts (remove, then push), removes and reopens (the checkpoint's form
        /// read back), against a `BTreeMap` and a `Vec`; the merge threshold is
        /// passed often because the ids repeat.
        #[test]
        fn ids_agree_with_an_ordered_map(steps in prop::collection::vec(step(), 1..3000)) {
            let mut ids = PointIds::new();
            let mut model: BTreeMap<PointId, u32> = BTreeMap::new();
            let mut written = Vec::new();
            for step in steps {
                match step {
                    Step::Upsert(n, u) => {
                        let i = id(n, u);
                        prop_assert_eq!(ids.remove(&i), model.remove(&i));
                        let o = ids.push(i);
                        prop_assert_eq!(o as usize, written.len());
                        written.push(i);
                        model.insert(i, o);
                    }
                    Step::Remove(n, u) => {
                        let i = id(n, u);
                        prop_assert_eq!(ids.remove(&i), model.remove(&i));
                    }
                    Step::Reopen => {
                        let mut column = Column::default();
                        ids.all().for_each(|i| column.push(i));
                        ids = PointIds::read(column, ids.live().clone()).unwrap();
                    }
                }
            }
            agrees(&ids, &model, &written);
            ids.merge();
            agrees(&ids, &model, &written);
        }
    }

    #[test]
    fn many_ids_merge_in_runs() {
        // Past several merges, interleaved with what the array holds.
        let mut ids = PointIds::new();
        let mut model = BTreeMap::new();
        for n in (0..20_000u64).map(|i| (i * 7_919) % 20_011) {
            let o = ids.push(PointId::Num(n));
            model.insert(PointId::Num(n), o);
        }
        for n in (0..20_000u64).step_by(3) {
            assert_eq!(ids.remove(&PointId::Num(n)), model.remove(&PointId::Num(n)));
        }
        assert!(ids.from(None).eq(model.iter().map(|(i, o)| (*i, *o))));
        assert!(ids.recent.len() <= MERGE_MIN.max(ids.sorted.len() / MERGE_SHARE));
        for (i, o) in &model {
            assert_eq!(ids.offset(i), Some(*o));
        }
    }

    #[test]
    fn a_checkpoint_naming_a_live_id_twice_or_an_offset_past_the_end_is_refused() {
        let mut live = RoaringBitmap::new();
        live.insert_range(0..3);
        let mut column = Column::default();
        [5, 1, 5].into_iter().for_each(|n| column.push(PointId::Num(n)));
        assert_eq!(PointIds::read(column.clone(), live.clone()).err(), Some(Some(PointId::Num(5))));
        live.insert(3);
        assert_eq!(PointIds::read(column, live).err(), Some(None));
    }

    #[test]
    fn integer_ids_written_in_order_take_about_twelve_bytes_each() {
        let mut ids = PointIds::new();
        for n in 0..200_000u64 {
            ids.push(PointId::Num(n));
        }
        // 8 for the id, 4 in the sorted array, the map at most a 64th of the array.
        let per_point = ids.bytes() as f64 / 200_000.0;
        assert!(per_point < 8.0 * 1.25 + 4.0 * 1.25 + 48.0 / 64.0, "{per_point} bytes per point");
        let mut column = Column::with_capacity(ids.len());
        ids.all().for_each(|i| column.push(i));
        let read = PointIds::read(column, ids.live().clone()).unwrap();
        assert!(read.bytes() as f64 / 200_000.0 < 8.0 * 1.25 + 4.0 + 0.1);
    }

    #[test]
    fn columns_stay_narrow_until_kinds_mix() {
        let mut ids = PointIds::new();
        ids.push(PointId::Num(1));
        assert!(matches!(ids.column, Column::Num(_)));
        let mut uuids = PointIds::new();
        uuids.push(id(1, true));
        assert!(matches!(uuids.column, Column::Uuid(_)));
        uuids.push(PointId::Num(1));
        assert!(matches!(uuids.column, Column::Mixed(_)));
        assert_eq!(uuids.id(0), id(1, true));
        assert_eq!(uuids.id(1), PointId::Num(1));
    }
}
