//! The administrative calls shared by REST and gRPC: alias actions and descriptions,
//! the snapshots directory.

use std::path::{Path, PathBuf};

use braid::{AliasOp, SnapshotDescription};
use serde_json::{Map, Value, json};

use crate::convert::only;
use crate::error::ApiError;
use crate::rest::AppState;

fn text(o: &Map<String, Value>, key: &str, what: &str) -> Result<String, ApiError> {
    o.get(key)
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| ApiError::bad_request(format!("{what} needs `{key}` (a string)")))
}

/// `POST /collections/aliases`: `{"actions": [{"create_alias": {…}} | {"delete_alias":
/// {…}} | {"rename_alias": {…}}, …]}`.
pub(crate) fn alias_actions(body: &Value) -> Result<Vec<AliasOp>, ApiError> {
    let o = body.as_object().ok_or_else(|| ApiError::bad_request("the body must be a JSON object".into()))?;
    only(o, "alias update", &["actions"])?;
    let actions = o
        .get("actions")
        .and_then(Value::as_array)
        .ok_or_else(|| ApiError::bad_request("an alias update needs `actions` (a list)".into()))?;
    actions
        .iter()
        .map(|action| {
            let one = action.as_object().filter(|a| a.len() == 1).ok_or_else(|| {
                ApiError::bad_request(
                    "each alias action is one of {\"create_alias\": …}, {\"delete_alias\": …}, {\"rename_alias\": …}"
                        .into(),
                )
            })?;
            let (kind, args) = one.iter().next().expect("one entry");
            let args = args
                .as_object()
                .ok_or_else(|| ApiError::bad_request(format!("`{kind}` must be an object")))?;
            match kind.as_str() {
                "create_alias" => {
                    only(args, kind, &["collection_name", "alias_name"])?;
                    Ok(AliasOp::Create {
                        alias: text(args, "alias_name", kind)?,
                        collection: text(args, "collection_name", kind)?,
                    })
                }
                "delete_alias" => {
                    only(args, kind, &["alias_name"])?;
                    Ok(AliasOp::Delete { alias: text(args, "alias_name", kind)? })
                }
                "rename_alias" => {
                    only(args, kind, &["old_alias_name", "new_alias_name"])?;
                    Ok(AliasOp::Rename {
                        from: text(args, "old_alias_name", kind)?,
                        to: text(args, "new_alias_name", kind)?,
                    })
                }
                other => Err(ApiError::bad_request(format!(
                    "unknown alias action `{other}`: use create_alias, delete_alias or rename_alias"
                ))),
            }
        })
        .collect()
}

/// `{"aliases": [{"alias_name", "collection_name"}, …]}`.
pub(crate) fn aliases_json(aliases: impl IntoIterator<Item = (String, String)>) -> Value {
    let list: Vec<Value> =
        aliases.into_iter().map(|(a, c)| json!({"alias_name": a, "collection_name": c})).collect();
    json!({ "aliases": list })
}

/// The collection `name` names (itself, or the one an alias names): whose snapshots
/// a call on `name` works on.
pub(crate) fn snapshots_of(state: &AppState, name: &str) -> Result<String, ApiError> {
    Ok(state.db.collection(name)?.name().to_string())
}

/// Qdrant's `SnapshotDescription`: `creation_time` is UTC without a zone, as Qdrant
/// writes it.
pub(crate) fn description_json(d: &SnapshotDescription) -> Value {
    json!({
        "name": d.name,
        "creation_time": creation_time(d).format("%Y-%m-%dT%H:%M:%S").to_string(),
        "size": d.size,
        "checksum": d.checksum,
    })
}

pub(crate) fn creation_time(d: &SnapshotDescription) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::<chrono::Utc>::from(d.created)
}

/// Qdrant's `priority` of a recovery. On one node there is no replica to prefer, so
/// every priority restores the snapshot's contents; the value is still checked.
pub(crate) fn check_priority(priority: Option<&str>) -> Result<(), ApiError> {
    match priority {
        None | Some("snapshot" | "replica" | "no_sync") => Ok(()),
        Some(other) => Err(ApiError::bad_request(format!(
            "unknown snapshot priority `{other}`: use snapshot, replica or no_sync"
        ))),
    }
}

/// `PUT /collections/{c}/snapshots/recover`: `{"location": "file:///…", "priority",
/// "checksum"}`. Only files inside the snapshots directory are read (a client must not
/// make the server open any file it can name); URLs are refused, since Braid does not
/// download.
pub(crate) fn recover(state: &AppState, name: &str, body: &Value) -> Result<(), ApiError> {
    let o = body.as_object().ok_or_else(|| ApiError::bad_request("the body must be a JSON object".into()))?;
    only(o, "snapshot recovery", &["location", "priority", "checksum", "api_key", "until"])?;
    let until = match o.get("until") {
        None | Some(Value::Null) => None,
        Some(Value::String(t)) => Some(parse_time(t)?),
        Some(_) => {
            return Err(ApiError::bad_request(
                "`until` is an RFC 3339 time, such as \"2026-12-01T10:30:00Z\"".into(),
            ));
        }
    };
    check_priority(o.get("priority").and_then(Value::as_str))?;
    if o.get("api_key").is_some_and(|k| !k.is_null()) {
        return Err(ApiError::bad_request(
            "`api_key` authenticates a download from a URL, and Braid does not download snapshots: \
             upload the file (POST /collections/{name}/snapshots/upload) instead"
                .into(),
        ));
    }
    let location = text(o, "location", "a snapshot recovery")?;
    let checksum = o.get("checksum").and_then(Value::as_str);
    if let Some(fetched) = state.snapshots.fetch(&location)? {
        return recover_file(state, name, fetched.path(), checksum, until);
    }
    let local = state.snapshots.dir();
    let Some(path) = location.strip_prefix("file://") else {
        return Err(ApiError::bad_request(format!(
            "location `{location}`: Braid recovers from file:// locations inside its snapshots directory \
             ({}){}, or from an upload (POST /collections/{name}/snapshots/upload); it does not download",
            local.display(),
            state
                .snapshots
                .url()
                .map(|u| format!(" and from its snapshot store ({u}/…)"))
                .unwrap_or_default()
        )));
    };
    let inside = |p: &Path| -> Option<PathBuf> {
        let root = local.canonicalize().ok()?;
        let p = p.canonicalize().ok()?;
        p.starts_with(&root).then_some(p)
    };
    let file = inside(Path::new(path)).ok_or_else(|| {
        ApiError::bad_request(format!(
            "location `{location}` is not a file inside the snapshots directory ({})",
            local.display()
        ))
    })?;
    recover_file(state, name, &file, checksum, until)
}

fn recover_file(
    state: &AppState,
    name: &str,
    file: &Path,
    checksum: Option<&str>,
    until: Option<std::time::SystemTime>,
) -> Result<(), ApiError> {
    match until {
        Some(until) => state.db.recover_collection_until(name, file, checksum, until)?,
        None => state.db.recover_collection(name, file, checksum)?,
    };
    Ok(())
}

/// An RFC 3339 time (`2026-12-01T10:30:00Z`, `2026-12-01T11:30:00.250+01:00`).
pub(crate) fn parse_time(text: &str) -> Result<std::time::SystemTime, ApiError> {
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| std::time::SystemTime::from(t.with_timezone(&chrono::Utc)))
        .map_err(|e| {
            ApiError::bad_request(format!(
                "`{text}` is not an RFC 3339 time ({e}), such as \"2026-12-01T10:30:00Z\""
            ))
        })
}

/// Changes collection `c`'s configuration to what `change` makes of the current one
/// (`PATCH /collections/{c}`, vector creation): read and replaced under one lock, so
/// two concurrent updates cannot undo each other. A graph whose settings changed is
/// rebuilt on a thread of its own (`Collection::reindex`), the old graph serving
/// meanwhile; a failed rebuild is logged and retried by the background optimiser.
pub(crate) fn update_collection(
    c: &braid::Collection,
    change: impl FnOnce(braid::CollectionConfig) -> Result<braid::CollectionConfig, ApiError>,
) -> Result<(), ApiError> {
    static UPDATES: parking_lot::Mutex<()> = parking_lot::Mutex::new(());
    let stale = {
        let _one = UPDATES.lock();
        c.reconfigure(change(c.config())?)?
    };
    if !stale.is_empty() {
        let rebuilt = c.clone();
        let spawned = std::thread::Builder::new().name("braid-reindex".into()).spawn(move || {
            if let Err(e) = rebuilt.reindex() {
                tracing::error!(collection = rebuilt.name(), error = %e, "rebuilding graphs with new settings failed");
            }
        });
        if let Err(e) = spawned {
            tracing::error!(collection = c.name(), error = %e, "could not start the graph rebuild; the optimiser will");
        }
    }
    Ok(())
}
