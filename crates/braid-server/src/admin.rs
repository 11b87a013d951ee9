//! The administrative calls' shapes shared by REST and gRPC: alias actions and
//! descriptions.

use braid::AliasOp;
use serde_json::{Map, Value, json};

use crate::convert::only;
use crate::error::ApiError;

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
