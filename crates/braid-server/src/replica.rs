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

use crate::error::ErrorKind;
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
        if let Some(write) = write {
            let ops = write.get("operations").and_then(Value::as_array);
            match ops {
                None => refused = Some("a write is a batch update: {\"operations\": [...]}".to_string()),
                Some(ops) => {
                    for (i, op) in ops.iter().enumerate().skip(done) {
                        let outcome = operation(i, op).map_err(|why| (ErrorKind::BadRequest, why)).and_then(
                            |(write, body)| {
                                c.write_in_entry(&p, i as u32 + 1, |c| write.apply(c, body))
                                    .map_err(|e| (e.kind, format!("operation {i}: {}", e.message)))
                            },
                        );
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
