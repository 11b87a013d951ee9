//! A Braid collection as a replica of a shard's Raft group (`braid-cluster`, #19;
//! `docs/distributed.md`).
//!
//! An entry's write is a batch update's body as Qdrant's REST API takes it
//! (`{"operations": [{"upsert": {…}}, {"delete": {…}}, …]}`), so one parser serves
//! both. Operation `k` of the entry at position `p` is logged as write `k + 1` of
//! entry `p` (`Collection::write_in_entry`), and the entry is closed after its last
//! operation (`Collection::close_entry`), also when an operation was refused. After a
//! crash the collection's `entry_mark` says how far the durable log got: the group
//! resumes after the last closed entry, and the open one's operations already logged
//! are skipped when it is applied again — no operation is applied twice, none lost.

use std::path::PathBuf;

use braid::Database;
use braid_cluster::{ApplyError, Replica};
use serde_json::{Value, json};

use crate::error::{ApiError, ErrorKind};
use crate::grpc::proto::{PointsUpdateOperation, UpdateBatchPoints};
use crate::rest::Write;

/// Collection `name` of `db` as a shard replica. Snapshots pass through files in
/// `work_dir` (made if missing).
#[derive(Clone, Debug)]
pub struct CollectionReplica {
    db: Database,
    name: String,
    work_dir: PathBuf,
}

impl CollectionReplica {
    /// The replica of collection `name` (which must exist) of `db`.
    pub fn new(db: Database, name: &str, work_dir: impl Into<PathBuf>) -> CollectionReplica {
        CollectionReplica { db, name: name.to_string(), work_dir: work_dir.into() }
    }

    fn collection(&self) -> Result<braid::Collection, String> {
        self.db.collection(&self.name).map_err(|e| e.to_string())
    }
}

fn position_bytes(position: &Value) -> Vec<u8> {
    serde_json::to_vec(position).expect("JSON values serialise")
}

/// One operation of a batch: which write, and its body.
fn operation(i: usize, op: &Value) -> Result<(Write, &Value), String> {
    let o = op
        .as_object()
        .filter(|o| o.len() == 1)
        .ok_or(format!("operation {i}: must be an object with one key"))?;
    let (name, inner) = o.iter().next().ok_or(format!("operation {i}: is empty"))?;
    let write = Write::named(name).ok_or(format!("operation {i}: `{name}` is not an update operation"))?;
    Ok((write, inner))
}

/// A payload index created or deleted: applied on a single server, or carried by a
/// replicated entry (an operation named `create_payload_index` or
/// `delete_payload_index`, which user batches cannot name) so that every replica has
/// the same indexes, in order with the writes.
#[derive(Clone, Debug)]
pub(crate) enum IndexChange {
    /// Index `field` as `index` says.
    Create {
        /// The payload key.
        field: String,
        /// The kind of index, or a full-text index's options.
        index: crate::convert::FieldIndex,
    },
    /// Drop the index on `field` (if there is one).
    Delete {
        /// The payload key.
        field: String,
    },
}

impl IndexChange {
    pub(crate) fn apply(&self, c: &braid::Collection) -> Result<(), ApiError> {
        use crate::convert::FieldIndex;
        match self {
            IndexChange::Create { field, index: FieldIndex::Kind(kind) } => {
                c.create_payload_index(field, *kind)?
            }
            IndexChange::Create { field, index: FieldIndex::Text(options) } => {
                c.create_text_index(field, options.clone())?
            }
            IndexChange::Delete { field } => drop(c.delete_payload_index(field)?),
        }
        Ok(())
    }

    /// The operation a replicated entry carries.
    pub(crate) fn op(&self) -> Value {
        use crate::convert::FieldIndex;
        match self {
            IndexChange::Create { field, index: FieldIndex::Kind(kind) } => {
                json!({"create_payload_index": {"field": field, "kind": kind}})
            }
            IndexChange::Create { field, index: FieldIndex::Text(options) } => {
                json!({"create_payload_index": {"field": field, "text": options}})
            }
            IndexChange::Delete { field } => json!({"delete_payload_index": {"field": field}}),
        }
    }

    /// The change an entry's operation `name` with `body` carries, if it is one.
    fn read(name: &str, body: &Value) -> Option<Result<IndexChange, String>> {
        let field = || {
            body.get("field")
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or("an index change names its `field`")
        };
        let change = match name {
            "create_payload_index" => field().and_then(|field| {
                let index = match (body.get("kind"), body.get("text")) {
                    (Some(kind), None) => {
                        serde_json::from_value(kind.clone()).map(crate::convert::FieldIndex::Kind)
                    }
                    (None, Some(text)) => {
                        serde_json::from_value(text.clone()).map(crate::convert::FieldIndex::Text)
                    }
                    _ => return Err("an index is a `kind` or a full-text index's `text` options"),
                };
                index.map(|index| IndexChange::Create { field, index }).map_err(|_| "an unreadable index")
            }),
            "delete_payload_index" => field().map(|field| IndexChange::Delete { field }),
            _ => return None,
        };
        Some(change.map_err(str::to_string))
    }
}

/// A change of a collection's schema outside its points, as either protocol gave it,
/// carried by a replicated entry (an operation named `change_collection`, which user
/// batches cannot name) so that every replica of every shard makes it: the diffs of
/// `PATCH /collections/{c}` (gRPC `Update`), or a vector name added or deleted.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub(crate) enum SchemaChange {
    /// Diffs over the live configuration.
    Update(Box<crate::mapping::UpdateSpec>),
    /// A space added under a name.
    AddVector(String, crate::mapping::NewSpace),
    /// A space deleted with every vector in it.
    DeleteVector(String),
}

impl SchemaChange {
    /// The operation of an entry that carries it.
    pub(crate) fn op(&self) -> Result<Value, ApiError> {
        let change = serde_json::to_value(self)
            .map_err(|e| ApiError { kind: ErrorKind::Internal, message: format!("a schema change: {e}") })?;
        Ok(json!({"change_collection": change}))
    }

    /// The change an entry's operation `name` with `body` carries, if it is one.
    fn read(name: &str, body: &Value) -> Option<Result<SchemaChange, String>> {
        (name == "change_collection").then(|| {
            serde_json::from_value(body.clone()).map_err(|e| format!("an unreadable schema change: {e}"))
        })
    }

    /// The configuration `config` becomes (what the cluster's metadata records, and
    /// checks before the change is agreed).
    pub(crate) fn config(
        &self,
        mut config: braid::CollectionConfig,
    ) -> Result<braid::CollectionConfig, ApiError> {
        match self {
            SchemaChange::Update(spec) => spec.over(config),
            SchemaChange::AddVector(name, space) => space.add(name, config),
            SchemaChange::DeleteVector(name) => {
                let found = config.vectors.remove(name).is_some()
                    | config.sparse_vectors.remove(name).is_some()
                    | config.multivectors.remove(name).is_some();
                match found {
                    true => Ok(config),
                    false => {
                        let available = config.space_names();
                        Err(braid::Error::UnknownVector { name: name.clone(), available }.into())
                    }
                }
            }
        }
    }

    /// Makes the change on collection `c` (a single server's, or a replica).
    pub(crate) fn apply(&self, c: &braid::Collection) -> Result<(), ApiError> {
        match self {
            SchemaChange::DeleteVector(name) => Ok(c.delete_vector(name)?),
            change => crate::admin::update_collection(c, |config| change.config(config)),
        }
    }
}

/// An operation of an entry, ready to apply to the collection.
type Op<'a> = Box<dyn FnOnce(&braid::Collection) -> Result<(), ApiError> + 'a>;

/// The operations of an entry: a batch body in REST's shape, or (`{"grpc": …}`)
/// gRPC's batch operations as protobuf, base64 (what [`grpc_entry`] makes). An
/// operation that cannot be read is refused when its turn comes.
fn operations(write: &Value) -> Result<Vec<Result<Op<'_>, String>>, String> {
    if let Some(encoded) = write.get("grpc") {
        return Ok(grpc_batch(encoded)?
            .operations
            .into_iter()
            .map(|op| {
                Ok(Box::new(move |c: &braid::Collection| crate::grpc::apply_operation(c, &op)) as Op<'_>)
            })
            .collect());
    }
    let ops = write
        .get("operations")
        .and_then(Value::as_array)
        .ok_or("a write is a batch update: {\"operations\": [...]}")?;
    Ok(ops
        .iter()
        .enumerate()
        .map(|(i, op)| {
            // The entry's own operations (index and schema changes) first.
            let named = op.as_object().filter(|o| o.len() == 1).and_then(|o| o.iter().next());
            let at = |why: String| format!("operation {i}: {why}");
            if let Some(change) = named.and_then(|(name, body)| IndexChange::read(name, body)) {
                let change = change.map_err(at)?;
                return Ok(Box::new(move |c: &braid::Collection| change.apply(c)) as Op<'_>);
            }
            if let Some(change) = named.and_then(|(name, body)| SchemaChange::read(name, body)) {
                let change = change.map_err(at)?;
                return Ok(Box::new(move |c: &braid::Collection| change.apply(c)) as Op<'_>);
            }
            let (write, body) = operation(i, op)?;
            Ok(Box::new(move |c: &braid::Collection| write.apply(c, body)) as Op<'_>)
        })
        .collect())
}

/// The batch an entry's `grpc` value carries (protobuf, base64).
pub(crate) fn grpc_batch(encoded: &Value) -> Result<UpdateBatchPoints, String> {
    use base64::Engine;
    let encoded = encoded.as_str().ok_or("a gRPC entry is a base64 string")?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|e| format!("a gRPC entry is not base64: {e}"))?;
    <UpdateBatchPoints as prost::Message>::decode(bytes.as_slice())
        .map_err(|e| format!("a gRPC entry does not decode: {e}"))
}

/// An entry carrying gRPC's batch operations, as [`CollectionReplica`] applies them.
pub(crate) fn grpc_entry(operations: Vec<PointsUpdateOperation>) -> Value {
    use base64::Engine;
    let batch = UpdateBatchPoints { operations, ..Default::default() };
    json!({"grpc": base64::engine::general_purpose::STANDARD.encode(prost::Message::encode_to_vec(&batch))})
}

impl Replica for CollectionReplica {
    fn apply(&self, position: &Value, write: Option<&Value>) -> Result<Value, ApplyError> {
        let c = self.collection().map_err(ApplyError::Failed)?;
        let p = position_bytes(position);
        // Operations of this entry the durable log already holds (a crash cut the
        // entry short before it closed): skipped, not applied twice.
        let done = match c.entry_mark().open {
            Some((open, last)) if open == p => last as usize,
            _ => 0,
        };
        let mut refused = None;
        let mut applied = 0;
        match write.map(operations).transpose() {
            Err(why) => refused = Some(why),
            Ok(None) => {}
            Ok(Some(ops)) => {
                for (i, op) in ops.into_iter().enumerate().skip(done) {
                    let outcome = op.map_err(|why| (ErrorKind::BadRequest, why)).and_then(|op| {
                        c.write_in_entry(&p, i as u32 + 1, op)
                            .map_err(|e| (e.kind, format!("operation {i}: {}", e.message)))
                    });
                    match outcome {
                        Ok(()) => applied += 1,
                        // Bad input is refused alike on every replica; anything else is
                        // this replica's own failure.
                        Err((ErrorKind::BadRequest | ErrorKind::NotFound | ErrorKind::TooLarge, why)) => {
                            refused = Some(why);
                            break;
                        }
                        Err((_, why)) => return Err(ApplyError::Failed(why)),
                    }
                }
            }
        }
        c.close_entry(&p).map_err(|e| ApplyError::Failed(e.to_string()))?;
        match refused {
            Some(why) => Err(ApplyError::Refused(why)),
            None => Ok(json!({"operations": done + applied})),
        }
    }

    fn position(&self) -> Option<Value> {
        let closed = self.collection().ok()?.entry_mark().closed?;
        serde_json::from_slice(&closed).ok()
    }

    fn snapshot(&self) -> Result<(Option<Value>, Vec<u8>), String> {
        std::fs::create_dir_all(&self.work_dir).map_err(|e| format!("{}: {e}", self.work_dir.display()))?;
        let c = self.collection()?;
        // The group applies nothing while this runs (its gate), so the mark and the
        // checkpoint the snapshot copies are of the same moment.
        let position = c
            .entry_mark()
            .closed
            .map(|p| serde_json::from_slice(&p))
            .transpose()
            .map_err(|e| e.to_string())?;
        let description =
            self.db.snapshot_collection(&self.name, &self.work_dir).map_err(|e| e.to_string())?;
        let path = self.work_dir.join(&description.name);
        let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()));
        let _ = std::fs::remove_file(&path);
        Ok((position, bytes?))
    }

    /// A shard read (`crate::shards::ShardRead`) answered from this replica.
    fn read(&self, request: &Value) -> Value {
        let collection = self.db.collection(&self.name).map_err(ApiError::from);
        crate::shards::answer_json(collection, request)
    }

    fn install(&self, position: &Value, bytes: &[u8]) -> Result<(), String> {
        std::fs::create_dir_all(&self.work_dir).map_err(|e| format!("{}: {e}", self.work_dir.display()))?;
        let path = self.work_dir.join(format!("{}-install.snapshot", self.name));
        std::fs::write(&path, bytes).map_err(|e| format!("{}: {e}", path.display()))?;
        let recovered = self.db.recover_collection(&self.name, &path, None);
        let _ = std::fs::remove_file(&path);
        let c = recovered.map_err(|e| e.to_string())?;
        // The snapshot's own mark is the position it was made at; closing it again
        // makes the position the group handed over the one this replica reports.
        c.close_entry(&position_bytes(position)).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use braid::{CollectionConfig, Distance, VectorParams};

    use super::*;

    /// An entry whose operations give another state when applied twice: the filter of
    /// the first matches, on the second pass, a point the second operation changed.
    fn entry() -> Value {
        json!({"operations": [
            {"set_payload": {"filter": {"must": [{"key": "x", "match": {"value": 2}}]}, "payload": {"z": 1}}},
            {"set_payload": {"points": [1], "payload": {"x": 2}}},
            {"upsert": {"points": [{"id": 3, "vector": {"v": [0.0, 1.0]}, "payload": {"x": 2}}]}}
        ]})
    }

    fn payloads(db: &Database) -> Vec<Value> {
        let c = db.collection("c").unwrap();
        c.scroll(None, 100, None, true, false)
            .unwrap()
            .0
            .into_iter()
            .map(|r| r.payload.unwrap_or_default())
            .collect()
    }

    fn fresh(dir: &std::path::Path) -> (Database, CollectionReplica) {
        let db = Database::open(dir.join("db")).unwrap();
        if !db.collection_exists("c") {
            let c = db
                .create_collection(
                    "c",
                    CollectionConfig::new().vector("v", VectorParams::new(2, Distance::Dot)),
                )
                .unwrap();
            let points = json!({"points": [
                {"id": 1, "vector": {"v": [1.0, 0.0]}, "payload": {"x": 1}},
                {"id": 2, "vector": {"v": [0.5, 0.5]}, "payload": {"x": 2}}
            ]});
            c.upsert(crate::convert::upsert(&points).unwrap()).unwrap();
        }
        let replica = CollectionReplica::new(db.clone(), "c", dir.join("work"));
        (db, replica)
    }

    #[test]
    fn an_entry_cut_short_by_a_crash_is_finished_without_applying_anything_twice() {
        let position = json!({"last_applied": {"index": 7}});
        // What applying the entry once gives.
        let once = tempfile::tempdir().unwrap();
        let (db, replica) = fresh(once.path());
        assert_eq!(replica.apply(&position, Some(&entry())).unwrap(), json!({"operations": 3}));
        let expected = payloads(&db);
        assert_eq!(replica.position(), Some(position.clone()));

        // Applying it twice would not give the same: point 1 would get `z` too.
        let (db2, replica2) = fresh(tempfile::tempdir().unwrap().path());
        replica2.apply(&json!(1), Some(&entry())).unwrap();
        replica2.apply(&json!(2), Some(&entry())).unwrap();
        assert_ne!(payloads(&db2), expected, "the entry is not idempotent");

        // A crash after its first two operations were logged: the log holds them and
        // the entry open; the group hands the entry over again after the restart.
        let crashed = tempfile::tempdir().unwrap();
        {
            let (db, _) = fresh(crashed.path());
            let c = db.collection("c").unwrap();
            let p = position_bytes(&position);
            let ops = entry()["operations"].as_array().unwrap().clone();
            for (i, op) in ops.iter().take(2).enumerate() {
                let (write, body) = operation(i, op).unwrap();
                c.write_in_entry(&p, i as u32 + 1, |c| write.apply(c, body)).unwrap();
            }
        }
        let (db, replica) = fresh(crashed.path());
        assert_eq!(replica.position(), None, "no entry closed before the crash");
        assert_eq!(db.collection("c").unwrap().entry_mark().open.map(|(_, k)| k), Some(2));
        assert_eq!(replica.apply(&position, Some(&entry())).unwrap(), json!({"operations": 3}));
        assert_eq!(payloads(&db), expected, "the same state as applying it once");
        assert_eq!(replica.position(), Some(position));
    }

    #[test]
    fn entries_without_a_batch_are_refused_and_still_move_the_position() {
        let dir = tempfile::tempdir().unwrap();
        let (_db, replica) = fresh(dir.path());
        let err = replica.apply(&json!(1), Some(&json!({"upsert": {}}))).unwrap_err();
        assert!(matches!(err, ApplyError::Refused(_)), "{err:?}");
        assert_eq!(replica.position(), Some(json!(1)));
        let err =
            replica.apply(&json!(2), Some(&json!({"operations": [{"drop_everything": {}}]}))).unwrap_err();
        assert!(matches!(&err, ApplyError::Refused(why) if why.contains("drop_everything")), "{err:?}");
        assert_eq!(replica.apply(&json!(3), None).unwrap(), json!({"operations": 0}));
        assert_eq!(replica.position(), Some(json!(3)));
    }
}
