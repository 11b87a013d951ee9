//! The replicated metadata: what the log's commands build, and the state machine that
//! openraft applies them to (in memory, with snapshots written to the node's directory).

use std::collections::BTreeMap;
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use openraft::storage::RaftStateMachine;
use openraft::{
    EntryPayload, LogId, OptionalSend, RaftSnapshotBuilder, Snapshot, SnapshotMeta, StorageError,
    StorageIOError, StoredMembership,
};
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};

use crate::store::SnapshotFile;
use crate::{ClusterError, Entry, PeerId, TypeConfig};

/// A change to the cluster's metadata, proposed on any node and applied on every node
/// in the same order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum MetaCommand {
    /// Create a collection with this configuration (the creation request as the
    /// server received it). Creating a name that exists changes nothing.
    CreateCollection {
        /// The collection's name.
        name: String,
        /// Its configuration, as JSON.
        config: serde_json::Value,
    },
    /// Delete a collection; deleting a name that does not exist changes nothing.
    DeleteCollection {
        /// The collection's name.
        name: String,
    },
    /// Replace a collection's configuration with `to` if it is `from` (so that of two
    /// changes made from the same configuration, the second changes nothing).
    UpdateCollection {
        /// The collection's name.
        name: String,
        /// The configuration the change was made from.
        from: serde_json::Value,
        /// The new configuration.
        to: serde_json::Value,
    },
    /// Changes nothing: a node that proposes it has applied, once the proposal
    /// returns, everything committed before it (a read of the metadata after it is
    /// up to date).
    Sync,
    /// Replace the alias table with `to` if it is `from` and every alias of `to`
    /// names a collection that exists under a name no collection has.
    SetAliases {
        /// The table the change was made from.
        from: BTreeMap<String, String>,
        /// The new table.
        to: BTreeMap<String, String>,
    },
}

/// What applying a command did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetaResponse {
    /// `false` when the command found nothing to do (the collection existed, or did not).
    pub changed: bool,
}

/// The metadata every node agrees on.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ClusterState {
    /// The cluster's peers (voters and learners) by id, with their p2p URIs.
    pub peers: BTreeMap<PeerId, String>,
    /// The collections, each with the configuration it was created with.
    pub collections: BTreeMap<String, serde_json::Value>,
    /// The aliases, each with the collection it names.
    #[serde(default)]
    pub aliases: BTreeMap<String, String>,
}

impl ClusterState {
    fn apply(&mut self, command: &MetaCommand) -> MetaResponse {
        let changed = match command {
            MetaCommand::CreateCollection { name, config } => {
                !self.collections.contains_key(name)
                    && !self.aliases.contains_key(name)
                    && self.collections.insert(name.clone(), config.clone()).is_none()
            }
            MetaCommand::DeleteCollection { name } => {
                // Its aliases go with it.
                let deleted = self.collections.remove(name).is_some();
                self.aliases.retain(|_, collection| collection != name);
                deleted
            }
            MetaCommand::SetAliases { from, to } => {
                let valid = to.iter().all(|(alias, c)| {
                    self.collections.contains_key(c) && !self.collections.contains_key(alias)
                });
                if self.aliases == *from && valid {
                    self.aliases = to.clone();
                    true
                } else {
                    false
                }
            }
            MetaCommand::UpdateCollection { name, from, to } => match self.collections.get_mut(name) {
                Some(config) if config == from => {
                    *config = to.clone();
                    true
                }
                _ => false,
            },
            MetaCommand::Sync => false,
        };
        MetaResponse { changed }
    }
}

/// What the state machine holds: the state, and how far into the log it is.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct Applied {
    pub(crate) state: ClusterState,
    pub(crate) last_applied: Option<LogId<PeerId>>,
    pub(crate) membership: StoredMembership<PeerId, openraft::BasicNode>,
}

/// The state machine openraft drives; [`crate::ClusterNode`] reads the same
/// [`Applied`] through its `Arc`.
#[derive(Clone, Debug)]
pub(crate) struct StateMachine {
    pub(crate) applied: Arc<RwLock<Applied>>,
    snapshot_path: PathBuf,
}

impl StateMachine {
    /// The state machine of the node whose directory is `dir`: its last snapshot, if it
    /// wrote one (the log replays the rest).
    pub(crate) fn open(dir: &Path) -> Result<StateMachine, ClusterError> {
        let snapshot_path = dir.join("raft-snapshot.json");
        let applied = match SnapshotFile::read(&snapshot_path)? {
            Some(file) => {
                let state: ClusterState = serde_json::from_slice(&file.data).map_err(|e| {
                    ClusterError::Corrupt { path: snapshot_path.clone(), reason: e.to_string() }
                })?;
                Applied { state, last_applied: file.meta.last_log_id, membership: file.meta.last_membership }
            }
            None => Applied::default(),
        };
        Ok(StateMachine { applied: Arc::new(RwLock::new(applied)), snapshot_path })
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<PeerId>> {
        let (data, last_log_id, last_membership) = {
            let applied = self.applied.read();
            let data =
                serde_json::to_vec(&applied.state).map_err(|e| StorageIOError::read_state_machine(&e))?;
            (data, applied.last_applied, applied.membership.clone())
        };
        let snapshot_id = match last_log_id {
            Some(id) => format!("{}-{}", id.leader_id, id.index),
            None => "empty".to_string(),
        };
        let meta = SnapshotMeta { last_log_id, last_membership, snapshot_id };
        let file = SnapshotFile { meta: meta.clone(), data };
        file.write(&self.snapshot_path)
            .map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), &e))?;
        Ok(file.into_snapshot())
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = Self;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<PeerId>>, StoredMembership<PeerId, openraft::BasicNode>), StorageError<PeerId>>
    {
        let applied = self.applied.read();
        Ok((applied.last_applied, applied.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<MetaResponse>, StorageError<PeerId>>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut applied = self.applied.write();
        let mut out = Vec::new();
        for entry in entries {
            applied.last_applied = Some(entry.log_id);
            let response = match &entry.payload {
                EntryPayload::Blank => MetaResponse { changed: false },
                EntryPayload::Normal(command) => applied.state.apply(command),
                EntryPayload::Membership(m) => {
                    applied.membership = StoredMembership::new(Some(entry.log_id), m.clone());
                    applied.state.peers = m.nodes().map(|(id, node)| (*id, node.addr.clone())).collect();
                    MetaResponse { changed: true }
                }
            };
            out.push(response);
        }
        Ok(out)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError<PeerId>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<PeerId, openraft::BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<PeerId>> {
        let data = snapshot.into_inner();
        let state: ClusterState = serde_json::from_slice(&data)
            .map_err(|e| StorageIOError::read_snapshot(Some(meta.signature()), &e))?;
        SnapshotFile { meta: meta.clone(), data }
            .write(&self.snapshot_path)
            .map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), &e))?;
        let mut applied = self.applied.write();
        applied.state = state;
        applied.last_applied = meta.last_log_id;
        applied.membership = meta.last_membership.clone();
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError<PeerId>> {
        Ok(SnapshotFile::read(&self.snapshot_path)
            .map_err(|e| StorageIOError::read_snapshot(None, &e))?
            .map(SnapshotFile::into_snapshot))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_report_whether_they_changed_anything() {
        let mut state = ClusterState::default();
        let create = MetaCommand::CreateCollection { name: "a".into(), config: serde_json::json!({"x": 1}) };
        assert!(state.apply(&create).changed);
        let again = MetaCommand::CreateCollection { name: "a".into(), config: serde_json::json!({"x": 2}) };
        assert!(!state.apply(&again).changed);
        assert_eq!(state.collections["a"], serde_json::json!({"x": 1}), "the first creation stands");
        let delete = MetaCommand::DeleteCollection { name: "a".into() };
        assert!(state.apply(&delete).changed);
        assert!(!state.apply(&delete).changed);
        assert!(state.collections.is_empty());
    }

    #[test]
    fn aliases_change_as_a_compare_and_set_and_go_with_their_collection() {
        let mut state = ClusterState::default();
        for name in ["a", "b"] {
            state.apply(&MetaCommand::CreateCollection { name: name.into(), config: serde_json::json!({}) });
        }
        let table = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs.iter().map(|(a, c)| (a.to_string(), c.to_string())).collect()
        };
        let set = |from: &[(&str, &str)], to: &[(&str, &str)]| MetaCommand::SetAliases {
            from: table(from),
            to: table(to),
        };
        assert!(state.apply(&set(&[], &[("x", "a"), ("y", "b")])).changed);
        // Made from a table that is no longer the state's: nothing changes.
        assert!(!state.apply(&set(&[], &[("z", "a")])).changed);
        // An alias on a missing collection, or named as a collection: refused.
        let now = [("x", "a"), ("y", "b")];
        assert!(!state.apply(&set(&now, &[("x", "nope")])).changed);
        assert!(!state.apply(&set(&now, &[("b", "a")])).changed);
        assert_eq!(state.aliases, table(&now));
        // A collection is not created under an alias's name; deleting one deletes its aliases.
        assert!(
            !state
                .apply(&MetaCommand::CreateCollection { name: "x".into(), config: serde_json::json!({}) })
                .changed
        );
        assert!(state.apply(&MetaCommand::DeleteCollection { name: "a".into() }).changed);
        assert_eq!(state.aliases, table(&[("y", "b")]));
    }
}
