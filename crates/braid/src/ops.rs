//! Write operations as the log records them: resolved (ids, not filters) and validated,
//! so that replaying them in order rebuilds exactly the state the writes made.

use std::path::Path;

use braid_core::{PointId, Uuid};
use braid_filter::IndexKind;
use braid_storage::StorageError;
use braid_storage::bytes::{Decoder, Encoder};
use serde_json::{Map, Value};

use crate::point::{MultiVector, MultiVectors, NamedVectors, SparseVectors};

/// A point version ready to be written: vectors prepared (normalised under Cosine),
/// documents turned into sparse vectors.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Prepared {
    pub id: PointId,
    pub vectors: NamedVectors,
    pub sparse: SparseVectors,
    pub multi: MultiVectors,
    pub payload: Value,
}

/// A multivector as the log and the checkpoint write it: its vectors, each as `f32`s.
pub(crate) fn encode_multi(e: &mut Encoder, v: &MultiVector) {
    e.len(v.len());
    for row in v {
        e.f32s(row);
    }
}

pub(crate) fn decode_multi(d: &mut Decoder<'_>) -> Result<MultiVector, StorageError> {
    let n = d.len(8)?;
    (0..n).map(|_| d.f32s()).collect()
}

/// A sparse vector as the log and the checkpoint write it: entries, then the indices
/// as `u32`s, then the values.
pub(crate) fn encode_sparse(e: &mut Encoder, v: &braid_sparse::SparseVector) {
    e.len(v.len());
    v.indices().iter().for_each(|i| {
        e.u32(*i);
    });
    e.f32s(v.values());
}

pub(crate) fn decode_sparse(d: &mut Decoder<'_>) -> Result<braid_sparse::SparseVector, StorageError> {
    let n = d.len(8)?;
    let indices = (0..n).map(|_| d.u32()).collect::<Result<Vec<u32>, _>>()?;
    let values = d.f32s()?;
    braid_sparse::SparseVector::new(indices, values).map_err(|e| d.error(format!("bad sparse vector: {e}")))
}

/// One write, after validation and after filters were resolved to ids.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Op {
    /// New versions of points (upsert, update_vectors and delete_vectors all write these).
    Upsert(Vec<Prepared>),
    /// Remove these (existing) points.
    Delete(Vec<PointId>),
    /// Merge keys into the payloads (a null is stored as null). Written by logs of
    /// earlier versions; replayed as it was applied then.
    SetPayload { ids: Vec<PointId>, payload: Map<String, Value> },
    /// [`Op::SetPayload`] into the object at a dotted path (created if absent).
    /// Earlier logs only.
    SetPayloadAt { ids: Vec<PointId>, key: Vec<String>, payload: Map<String, Value> },
    /// Qdrant's `set_payload`: merge keys into the object at `key`, a JSON path such
    /// as `a.b`, `a[0].b` or `a[].b` (the payload itself when empty; see
    /// `Segment::merge_at` for how the path is walked), a null value removing its key.
    MergePayload { ids: Vec<PointId>, key: String, payload: Map<String, Value> },
    /// Replace the payloads.
    OverwritePayload { ids: Vec<PointId>, payload: Map<String, Value> },
    /// Remove keys (paths) from the payloads.
    DeletePayload { ids: Vec<PointId>, keys: Vec<String> },
    /// Empty the payloads.
    ClearPayload { ids: Vec<PointId> },
    /// Index a payload key.
    CreateIndex { key: String, kind: IndexKind },
    /// Drop a payload index.
    DropIndex { key: String },
    /// Index a payload key for full-text conditions, tokenised by `options`.
    CreateTextIndex { key: String, options: braid_text::TextOptions },
}

/// Text index options as the log and the checkpoint write them: JSON.
pub(crate) fn encode_text_options(
    e: &mut Encoder,
    options: &braid_text::TextOptions,
) -> Result<(), crate::Error> {
    let value = serde_json::to_value(options)
        .map_err(|e| crate::Error::Internal { what: format!("text options do not serialise: {e}") })?;
    encode_json(e, &value)
}

pub(crate) fn decode_text_options(d: &mut Decoder<'_>) -> Result<braid_text::TextOptions, StorageError> {
    let value = decode_json(d)?;
    serde_json::from_value(value).map_err(|e| d.error(format!("bad text index options: {e}")))
}

/// A kind's code on disk: its position in [`IndexKind::ALL`] (an exhaustive match, so
/// that a new kind cannot be written as an old one; a test checks the two agree).
pub(crate) fn encode_kind(kind: IndexKind) -> u8 {
    match kind {
        IndexKind::Keyword => 0,
        IndexKind::Integer => 1,
        IndexKind::Float => 2,
        IndexKind::Bool => 3,
        IndexKind::Uuid => 4,
        IndexKind::Datetime => 5,
        IndexKind::Text => 6,
    }
}

pub(crate) fn decode_kind(d: &Decoder<'_>, code: u8) -> Result<IndexKind, StorageError> {
    IndexKind::ALL.get(code as usize).copied().ok_or_else(|| d.error(format!("unknown index kind {code}")))
}

pub(crate) fn encode_id(e: &mut Encoder, id: &PointId) {
    match id {
        PointId::Num(n) => e.u8(0).u64(*n),
        PointId::Uuid(u) => e.u8(1).bytes(u.as_bytes()),
    };
}

pub(crate) fn decode_id(d: &mut Decoder<'_>) -> Result<PointId, StorageError> {
    match d.u8()? {
        0 => Ok(PointId::Num(d.u64()?)),
        1 => {
            let b = d.bytes()?;
            Uuid::from_slice(b).map(PointId::Uuid).map_err(|_| d.error("a UUID needs 16 bytes"))
        }
        t => Err(d.error(format!("unknown id tag {t}"))),
    }
}

/// Writes a payload as JSON. Payloads are depth-checked before they are accepted
/// (`crate::payload::check_depth`), so serialising one cannot exhaust the stack and
/// the JSON reads back under serde_json's nesting limit.
pub(crate) fn encode_json(e: &mut Encoder, value: &Value) -> Result<(), crate::Error> {
    e.bytes(&json_bytes(value)?);
    Ok(())
}

/// A payload as the JSON bytes Braid's files hold.
pub(crate) fn json_bytes(value: &Value) -> Result<Vec<u8>, crate::Error> {
    serde_json::to_vec(value)
        .map_err(|e| crate::Error::Internal { what: format!("a payload does not serialise: {e}") })
}

pub(crate) fn decode_json(d: &mut Decoder<'_>) -> Result<Value, StorageError> {
    let b = d.bytes()?;
    serde_json::from_slice(b).map_err(|e| d.error(format!("bad JSON: {e}")))
}

fn encode_ids(e: &mut Encoder, ids: &[PointId]) {
    e.len(ids.len());
    ids.iter().for_each(|id| encode_id(e, id));
}

fn decode_ids(d: &mut Decoder<'_>) -> Result<Vec<PointId>, StorageError> {
    let n = d.len(9)?;
    (0..n).map(|_| decode_id(d)).collect()
}

fn decode_object(d: &mut Decoder<'_>) -> Result<Map<String, Value>, StorageError> {
    match decode_json(d)? {
        Value::Object(m) => Ok(m),
        _ => Err(d.error("a payload must be an object")),
    }
}

/// The tag of a log record that carries its time before the op.
const TIMED: u8 = 14;
/// The tag of a write made inside a replicated entry (#19): the entry's position and
/// the write's number in it, then the timed op.
const IN_ENTRY: u8 = 15;
/// The tag of a record closing a replicated entry: its time and the entry's position.
const CLOSE: u8 = 16;

/// Where a collection's replicated writes stand (#19, `docs/distributed.md`): the
/// position of the last replicated entry closed ([`crate::Collection::close_entry`]),
/// and the entry whose writes were logged after it but which was not closed, with the
/// number of its last logged write. After a crash both are as the durable log has
/// them, so a replica re-applying the open entry knows which of its writes to skip.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EntryMark {
    /// The last entry closed.
    pub closed: Option<Vec<u8>>,
    /// An entry with writes logged after `closed` and no close: its position and the
    /// number of its last logged write.
    pub open: Option<(Vec<u8>, u32)>,
}

impl EntryMark {
    pub(crate) fn is_empty(&self) -> bool {
        self.closed.is_none() && self.open.is_none()
    }
}

/// A log record as read back.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Logged {
    /// A write; `entry` is its entry's position and its number there, when it was made
    /// inside one.
    Op { time: Option<u64>, entry: Option<(Vec<u8>, u32)>, op: Op },
    /// The end of a replicated entry: every write it made is in the log before this.
    Close { time: u64, position: Vec<u8> },
}

impl Logged {
    /// When the record was logged (`None`: before records carried their time).
    pub(crate) fn time(&self) -> Option<u64> {
        match self {
            Logged::Op { time, .. } => *time,
            Logged::Close { time, .. } => Some(*time),
        }
    }

    /// Reads a log record that starts at byte `base` of `file`.
    pub(crate) fn decode(file: &Path, base: u64, body: &[u8]) -> Result<Logged, StorageError> {
        let mut d = Decoder::new(file, base, body);
        match body.first() {
            Some(&CLOSE) => {
                d.u8()?;
                let time = d.u64()?;
                let position = d.bytes()?.to_vec();
                d.finish()?;
                Ok(Logged::Close { time, position })
            }
            Some(&IN_ENTRY) => {
                d.u8()?;
                let position = d.bytes()?.to_vec();
                let index = d.u32()?;
                let head = d.offset();
                let (time, op) = Op::decode_timed(file, base + head as u64, &body[head..])?;
                Ok(Logged::Op { time, entry: Some((position, index)), op })
            }
            _ => {
                let (time, op) = Op::decode_timed(file, base, body)?;
                Ok(Logged::Op { time, entry: None, op })
            }
        }
    }

    /// The record closing the entry at `position`, logged at `unix_ms`.
    pub(crate) fn encode_close(unix_ms: u64, position: &[u8]) -> Vec<u8> {
        let mut e = Encoder::new();
        e.u8(CLOSE).u64(unix_ms).bytes(position);
        e.finish()
    }
}

impl Op {
    #[cfg(test)]
    pub(crate) fn encode(&self) -> Result<Vec<u8>, crate::Error> {
        let mut e = Encoder::new();
        self.encode_into(&mut e)?;
        Ok(e.finish())
    }

    /// Encodes the op as a log record written at `unix_ms` (milliseconds since the
    /// Unix epoch): tag 14, the time, then the op as [`Op::encode`] writes it. The time
    /// is what a point-in-time recovery stops at. A write made inside a replicated
    /// entry (`entry`: its position and the write's number there) is prefixed with tag
    /// 15, the position and the number.
    pub(crate) fn encode_in_entry(
        &self,
        unix_ms: u64,
        entry: Option<(&[u8], u32)>,
    ) -> Result<Vec<u8>, crate::Error> {
        let mut e = Encoder::new();
        if let Some((position, index)) = entry {
            e.u8(IN_ENTRY).bytes(position).u32(index);
        }
        e.u8(TIMED).u64(unix_ms);
        self.encode_into(&mut e)?;
        Ok(e.finish())
    }

    fn encode_into(&self, e: &mut Encoder) -> Result<(), crate::Error> {
        match self {
            Op::Upsert(points) => {
                // Tag 11 carries sparse vectors after the dense ones, tag 13 sparse and
                // then multivectors; batches without either are written as tag 1, as
                // before those spaces existed.
                let multi = points.iter().any(|p| !p.multi.is_empty());
                let sparse = multi || points.iter().any(|p| !p.sparse.is_empty());
                e.u8(if multi {
                    13
                } else if sparse {
                    11
                } else {
                    1
                })
                .len(points.len());
                for p in points {
                    encode_id(e, &p.id);
                    e.len(p.vectors.len());
                    for (name, v) in &p.vectors {
                        e.str(name).f32s(v);
                    }
                    if sparse {
                        e.len(p.sparse.len());
                        for (name, v) in &p.sparse {
                            e.str(name);
                            encode_sparse(e, v);
                        }
                    }
                    if multi {
                        e.len(p.multi.len());
                        for (name, v) in &p.multi {
                            e.str(name);
                            encode_multi(e, v);
                        }
                    }
                    encode_json(e, &p.payload)?;
                }
            }
            Op::Delete(ids) => encode_ids(e.u8(2), ids),
            Op::SetPayload { ids, payload } => {
                encode_ids(e.u8(3), ids);
                encode_json(e, &Value::Object(payload.clone()))?;
            }
            Op::OverwritePayload { ids, payload } => {
                encode_ids(e.u8(4), ids);
                encode_json(e, &Value::Object(payload.clone()))?;
            }
            Op::DeletePayload { ids, keys } => {
                encode_ids(e.u8(5), ids);
                e.len(keys.len());
                keys.iter().for_each(|k| {
                    e.str(k);
                });
            }
            Op::ClearPayload { ids } => encode_ids(e.u8(6), ids),
            Op::SetPayloadAt { ids, key, payload } => {
                encode_ids(e.u8(9), ids);
                e.len(key.len());
                key.iter().for_each(|k| {
                    e.str(k);
                });
                encode_json(e, &Value::Object(payload.clone()))?;
            }
            Op::MergePayload { ids, key, payload } => {
                encode_ids(e.u8(10), ids);
                e.str(key);
                encode_json(e, &Value::Object(payload.clone()))?;
            }
            Op::CreateIndex { key, kind } => {
                e.u8(7).str(key).u8(encode_kind(*kind));
            }
            Op::DropIndex { key } => {
                e.u8(8).str(key);
            }
            Op::CreateTextIndex { key, options } => {
                e.u8(12).str(key);
                encode_text_options(e, options)?;
            }
        }
        Ok(())
    }

    /// Reads an op from a log record that starts at byte `base` of `file`.
    #[cfg(test)]
    pub(crate) fn decode(file: &Path, base: u64, body: &[u8]) -> Result<Op, StorageError> {
        Self::decode_timed(file, base, body).map(|(_, op)| op)
    }

    /// Reads an op and the time it was logged at (`None` for records written before
    /// log records carried one).
    pub(crate) fn decode_timed(
        file: &Path,
        base: u64,
        body: &[u8],
    ) -> Result<(Option<u64>, Op), StorageError> {
        let mut d = Decoder::new(file, base, body);
        let mut tag = d.u8()?;
        let mut time = None;
        if tag == TIMED {
            time = Some(d.u64()?);
            tag = d.u8()?;
        }
        let op = match tag {
            tag @ (1 | 11 | 13) => {
                let n = d.len(9)?;
                let mut points = Vec::with_capacity(n);
                for _ in 0..n {
                    let id = decode_id(&mut d)?;
                    let spaces = d.len(16)?;
                    let mut vectors = NamedVectors::new();
                    for _ in 0..spaces {
                        let name = d.str()?.to_string();
                        vectors.insert(name, d.f32s()?);
                    }
                    let mut sparse = SparseVectors::new();
                    if tag >= 11 {
                        for _ in 0..d.len(16)? {
                            let name = d.str()?.to_string();
                            sparse.insert(name, decode_sparse(&mut d)?);
                        }
                    }
                    let mut multi = MultiVectors::new();
                    if tag == 13 {
                        for _ in 0..d.len(16)? {
                            let name = d.str()?.to_string();
                            multi.insert(name, decode_multi(&mut d)?);
                        }
                    }
                    let payload = decode_json(&mut d)?;
                    points.push(Prepared { id, vectors, sparse, multi, payload });
                }
                Op::Upsert(points)
            }
            2 => Op::Delete(decode_ids(&mut d)?),
            3 => Op::SetPayload { ids: decode_ids(&mut d)?, payload: decode_object(&mut d)? },
            4 => Op::OverwritePayload { ids: decode_ids(&mut d)?, payload: decode_object(&mut d)? },
            5 => {
                let ids = decode_ids(&mut d)?;
                let n = d.len(8)?;
                let keys = (0..n).map(|_| d.str().map(str::to_string)).collect::<Result<_, _>>()?;
                Op::DeletePayload { ids, keys }
            }
            6 => Op::ClearPayload { ids: decode_ids(&mut d)? },
            7 => {
                let key = d.str()?.to_string();
                let code = d.u8()?;
                Op::CreateIndex { key, kind: decode_kind(&d, code)? }
            }
            8 => Op::DropIndex { key: d.str()?.to_string() },
            9 => {
                let ids = decode_ids(&mut d)?;
                let n = d.len(8)?;
                let key = (0..n).map(|_| d.str().map(str::to_string)).collect::<Result<_, _>>()?;
                Op::SetPayloadAt { ids, key, payload: decode_object(&mut d)? }
            }
            10 => {
                let ids = decode_ids(&mut d)?;
                let key = d.str()?.to_string();
                Op::MergePayload { ids, key, payload: decode_object(&mut d)? }
            }
            12 => {
                let key = d.str()?.to_string();
                Op::CreateTextIndex { key, options: decode_text_options(&mut d)? }
            }
            t => return Err(d.error(format!("unknown operation {t}"))),
        };
        d.finish()?;
        Ok((time, op))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn index_kind_codes_are_their_positions() {
        for (i, kind) in IndexKind::ALL.iter().enumerate() {
            assert_eq!(encode_kind(*kind) as usize, i);
        }
    }

    #[test]
    fn every_op_round_trips() {
        let ids = vec![PointId::Num(7), PointId::Uuid(Uuid::from_u128(0xABCD))];
        let mut vectors = NamedVectors::new();
        vectors.insert("text".into(), vec![0.5, -1.25]);
        let payload = json!({"a": 1}).as_object().cloned().unwrap_or_default();
        let ops = vec![
            Op::Upsert(vec![Prepared {
                id: ids[1],
                vectors: vectors.clone(),
                sparse: SparseVectors::new(),
                multi: MultiVectors::new(),
                payload: json!({"x": [1, "y"]}),
            }]),
            Op::Upsert(vec![
                Prepared {
                    id: ids[0],
                    vectors,
                    sparse: SparseVectors::from([(
                        "bm25".to_string(),
                        braid_sparse::SparseVector::new(vec![9, 2], vec![0.5, -1.0]).unwrap(),
                    )]),
                    multi: MultiVectors::new(),
                    payload: json!({}),
                },
                Prepared {
                    id: ids[1],
                    vectors: NamedVectors::new(),
                    sparse: SparseVectors::new(),
                    multi: MultiVectors::from([(
                        "colbert".to_string(),
                        vec![vec![0.25, -0.5], vec![1.0, 2.0], vec![-3.0, 0.0]],
                    )]),
                    payload: json!({}),
                },
            ]),
            Op::Delete(ids.clone()),
            Op::SetPayload { ids: ids.clone(), payload: payload.clone() },
            Op::SetPayloadAt {
                ids: ids.clone(),
                key: vec!["a".into(), "b".into()],
                payload: payload.clone(),
            },
            Op::MergePayload { ids: ids.clone(), key: String::new(), payload: payload.clone() },
            Op::MergePayload { ids: ids.clone(), key: "a[0].b".into(), payload: payload.clone() },
            Op::OverwritePayload { ids: ids.clone(), payload },
            Op::DeletePayload { ids: ids.clone(), keys: vec!["a.b".into()] },
            Op::ClearPayload { ids },
            Op::CreateIndex { key: "k".into(), kind: IndexKind::Datetime },
            Op::DropIndex { key: "k".into() },
            Op::CreateTextIndex {
                key: "t".into(),
                options: braid_text::TextOptions { stemmer: Some("english".into()), ..Default::default() },
            },
        ];
        for op in ops {
            let bytes = op.encode().unwrap();
            assert_eq!(Op::decode(Path::new("wal"), 0, &bytes).unwrap(), op);
            for cut in 0..bytes.len() {
                assert!(Op::decode(Path::new("wal"), 0, &bytes[..cut]).is_err());
            }
        }
    }

    #[test]
    fn records_of_replicated_entries_read_back_and_refuse_truncation() {
        let op = Op::Delete(vec![PointId::Num(7), PointId::Num(9)]);
        let plain = op.encode_in_entry(1_700_000_000_000, None).unwrap();
        let in_entry = op.encode_in_entry(1_700_000_000_001, Some((b"pos-3", 2))).unwrap();
        let close = Logged::encode_close(1_700_000_000_002, b"pos-3");
        let wal = Path::new("wal");
        assert_eq!(
            Logged::decode(wal, 0, &plain).unwrap(),
            Logged::Op { time: Some(1_700_000_000_000), entry: None, op: op.clone() }
        );
        assert_eq!(
            Logged::decode(wal, 0, &in_entry).unwrap(),
            Logged::Op { time: Some(1_700_000_000_001), entry: Some((b"pos-3".to_vec(), 2)), op: op.clone() }
        );
        let closed = Logged::decode(wal, 0, &close).unwrap();
        assert_eq!(closed, Logged::Close { time: 1_700_000_000_002, position: b"pos-3".to_vec() });
        assert_eq!(closed.time(), Some(1_700_000_000_002));
        for bytes in [&in_entry, &close] {
            for cut in 0..bytes.len() {
                assert!(Logged::decode(wal, 0, &bytes[..cut]).is_err(), "cut at {cut}");
            }
        }
        let mut trailing = close.clone();
        trailing.push(0);
        assert!(Logged::decode(wal, 0, &trailing).is_err());
    }
}
