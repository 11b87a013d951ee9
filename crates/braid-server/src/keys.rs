//! Shard keys and the scope of a read on a cluster (#19, `docs/distributed.md`): the
//! keys of collections sharded by the user (`sharding_method: custom`) as REST and
//! gRPC name them, the keys to make and drop, and which shards a read goes to at
//! which consistency (`Scope`).

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::grpc::proto;

/// A shard key of a collection sharded by the user (`sharding_method: custom`): a
/// keyword or a number, as in Qdrant.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub(crate) enum ShardKey {
    Number(u64),
    Keyword(String),
}

impl std::fmt::Display for ShardKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ShardKey::Number(n) => write!(f, "{n}"),
            ShardKey::Keyword(k) => write!(f, "\"{k}\""),
        }
    }
}

impl ShardKey {
    /// A key as REST writes it: a string or a non-negative integer.
    pub(crate) fn from_json(v: &Value) -> Result<ShardKey, ApiError> {
        match v {
            Value::String(s) => Ok(ShardKey::Keyword(s.clone())),
            Value::Number(n) => n.as_u64().map(ShardKey::Number).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "shard key {n}: a shard key is a string or a non-negative integer"
                ))
            }),
            other => Err(ApiError::bad_request(format!(
                "shard key {other}: a shard key is a string or a non-negative integer"
            ))),
        }
    }

    pub(crate) fn to_json(&self) -> Value {
        match self {
            ShardKey::Number(n) => json!(n),
            ShardKey::Keyword(k) => json!(k),
        }
    }

    pub(crate) fn from_proto(key: Option<&proto::ShardKey>) -> Result<ShardKey, ApiError> {
        use proto::shard_key::Key;
        match key.and_then(|k| k.key.as_ref()) {
            Some(Key::Keyword(k)) => Ok(ShardKey::Keyword(k.clone())),
            Some(Key::Number(n)) => Ok(ShardKey::Number(*n)),
            None => Err(ApiError::bad_request("a shard key must be given (`keyword` or `number`)".into())),
        }
    }

    pub(crate) fn to_proto(&self) -> proto::ShardKey {
        use proto::shard_key::Key;
        proto::ShardKey {
            key: Some(match self {
                ShardKey::Number(n) => Key::Number(*n),
                ShardKey::Keyword(k) => Key::Keyword(k.clone()),
            }),
        }
    }
}

/// The shard keys a REST request names (`shard_key`: one key or a list; Qdrant's
/// selector with a `fallback` is refused), taken out of `o`. `None`: no key named.
pub(crate) fn take_shard_keys(o: &mut Value) -> Result<Option<Vec<ShardKey>>, ApiError> {
    let Some(v) = o.as_object_mut().and_then(|o| o.remove("shard_key")) else { return Ok(None) };
    match v {
        Value::Null => Ok(None),
        Value::Array(list) if list.is_empty() => {
            Err(ApiError::bad_request("`shard_key`: an empty list selects no shard".into()))
        }
        Value::Array(list) => list.iter().map(ShardKey::from_json).collect::<Result<_, _>>().map(Some),
        Value::Object(_) => Err(ApiError::bad_request(
            "`shard_key` with a `fallback` is not served: name the keys (one, or a list)".into(),
        )),
        key => Ok(Some(vec![ShardKey::from_json(&key)?])),
    }
}

/// A shard key to make (`PUT /collections/{c}/shards`, the `create_sharding_key`
/// cluster operation, gRPC `CreateShardKey`): its shards, replicas and peers, the
/// collection's defaults where not given.
#[derive(Clone, Debug)]
pub(crate) struct KeyToMake {
    pub(crate) key: ShardKey,
    pub(crate) shards_number: Option<u64>,
    pub(crate) replication_factor: Option<u64>,
    pub(crate) placement: Option<Vec<u64>>,
}

impl KeyToMake {
    /// Qdrant's `CreateShardingKey`; `initial_state` other than `Active` is refused
    /// (a new key's shards are empty and active at once).
    pub(crate) fn from_json(body: &Value) -> Result<KeyToMake, ApiError> {
        let o =
            body.as_object().ok_or_else(|| ApiError::bad_request("the body must be a JSON object".into()))?;
        crate::convert::only(
            o,
            "create shard key",
            &["shard_key", "shards_number", "replication_factor", "placement", "initial_state"],
        )?;
        if let Some(state) = o.get("initial_state").filter(|v| !v.is_null() && v.as_str() != Some("Active")) {
            return Err(ApiError::bad_request(format!(
                "`initial_state` {state} is not served: a new shard key's shards start empty and `Active`"
            )));
        }
        let count = |key: &str| -> Result<Option<u64>, ApiError> {
            match o.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(v) => v
                    .as_u64()
                    .map(Some)
                    .ok_or_else(|| ApiError::bad_request(format!("`{key}` must be a positive integer"))),
            }
        };
        let placement = match o.get("placement") {
            None | Some(Value::Null) => None,
            Some(Value::Array(ids)) => Some(
                ids.iter()
                    .map(|id| {
                        id.as_u64().ok_or_else(|| {
                            ApiError::bad_request(format!("`placement`: {id} is not a peer id"))
                        })
                    })
                    .collect::<Result<_, _>>()?,
            ),
            Some(other) => {
                return Err(ApiError::bad_request(format!("`placement` must list peer ids, not {other}")));
            }
        };
        Ok(KeyToMake {
            key: ShardKey::from_json(o.get("shard_key").unwrap_or(&Value::Null))?,
            shards_number: count("shards_number")?,
            replication_factor: count("replication_factor")?,
            placement,
        })
    }
}

impl KeyToMake {
    /// gRPC's `CreateShardKey`.
    pub(crate) fn from_proto(c: &proto::CreateShardKey) -> Result<KeyToMake, ApiError> {
        // Qdrant's `ReplicaState`: Active = 0.
        if let Some(state) = c.initial_state.filter(|s| *s != 0) {
            return Err(ApiError::bad_request(format!(
                "`initial_state` {state} is not served: a new shard key's shards start empty and `Active`"
            )));
        }
        Ok(KeyToMake {
            key: ShardKey::from_proto(c.shard_key.as_ref())?,
            shards_number: c.shards_number.map(u64::from),
            replication_factor: c.replication_factor.map(u64::from),
            placement: (!c.placement.is_empty()).then(|| c.placement.clone()),
        })
    }
}

/// The key of Qdrant's `DropShardingKey` (`{"shard_key": k}`).
pub(crate) fn key_to_drop(body: &Value) -> Result<ShardKey, ApiError> {
    let o = body.as_object().ok_or_else(|| ApiError::bad_request("the body must be a JSON object".into()))?;
    crate::convert::only(o, "drop shard key", &["shard_key"])?;
    ShardKey::from_json(o.get("shard_key").unwrap_or(&Value::Null))
}

/// Which shards a read goes to, and how fresh its answer must be.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Scope {
    /// The shard keys named (`None`: every shard).
    pub(crate) keys: Option<Vec<ShardKey>>,
    /// A read consistency above one replica (`majority`, `quorum`, `all`, or more than
    /// one replica): every shard is read from its group's leader, which has applied
    /// every acknowledged write, rather than from this node's replica, which may trail.
    pub(crate) strong: bool,
}

/// A REST read's `consistency` parameter: a number of replicas, `majority`, `quorum`
/// or `all`; whether it asks for more than one replica.
pub(crate) fn consistency(value: Option<&str>) -> Result<bool, ApiError> {
    match value {
        None => Ok(false),
        Some("majority" | "quorum" | "all") => Ok(true),
        Some(n) => match n.parse::<u64>() {
            Ok(n) if n >= 1 => Ok(n > 1),
            _ => Err(ApiError::bad_request(format!(
                "`consistency` {n}: a number of replicas (1 or more), `majority`, `quorum` or `all`"
            ))),
        },
    }
}

/// gRPC's `read_consistency`, as [`consistency`].
pub(crate) fn proto_consistency(c: Option<&proto::ReadConsistency>) -> Result<bool, ApiError> {
    use proto::read_consistency::Value;
    match c.and_then(|c| c.value.as_ref()) {
        None => Ok(false),
        // Qdrant's ReadConsistencyType: All = 0, Majority = 1, Quorum = 2.
        Some(Value::Type(0..=2)) => Ok(true),
        Some(Value::Type(t)) => Err(ApiError::bad_request(format!(
            "`read_consistency.type` {t}: 0 (all), 1 (majority) or 2 (quorum)"
        ))),
        Some(Value::Factor(0)) => Err(ApiError::bad_request(
            "`read_consistency.factor` 0: a read needs at least one replica".into(),
        )),
        Some(Value::Factor(n)) => Ok(*n > 1),
    }
}

/// A REST write's `ordering` parameter: every level (`weak`, `medium`, `strong`) is
/// met, since each shard's writes are ordered by its group's leader.
pub(crate) fn ordering(value: Option<&str>) -> Result<(), ApiError> {
    match value {
        None | Some("weak" | "medium" | "strong") => Ok(()),
        Some(other) => Err(ApiError::bad_request(format!("`ordering` {other}: one of weak, medium, strong"))),
    }
}

/// Why a shard key is refused on a server running alone.
pub(crate) fn no_keys_alone() -> ApiError {
    ApiError::bad_request(
        "shard keys are served on a cluster (`braid serve --p2p …`, docs/distributed.md), for collections \
         created with `sharding_method: custom`; this server runs alone, with one shard per collection"
            .into(),
    )
}

/// The shard keys of a REST read's body: its own `shard_key`, or, for a batch
/// (`searches`), the one its searches all name (taken out of each). Searches of
/// one batch naming different keys are refused: send them apart.
pub(crate) fn take_read_keys(body: &mut Value) -> Result<Option<Vec<ShardKey>>, ApiError> {
    let own = take_shard_keys(body)?;
    let Some(searches) = body.get_mut("searches").and_then(Value::as_array_mut) else { return Ok(own) };
    let mut named: Option<Option<Vec<ShardKey>>> = None;
    for search in searches.iter_mut() {
        let keys = take_shard_keys(search)?;
        match &named {
            Some(first) if *first != keys => {
                return Err(ApiError::bad_request(
                    "the searches of one batch name different `shard_key`s: Braid serves one selection per \
                     batch; send them as separate batches"
                        .into(),
                ));
            }
            Some(_) => {}
            None => named = Some(keys),
        }
    }
    Ok(own.or(named.flatten()))
}

/// The shard keys of a gRPC selector (`None`: none named).
pub(crate) fn proto_keys(
    selector: Option<&proto::ShardKeySelector>,
) -> Result<Option<Vec<ShardKey>>, ApiError> {
    let Some(selector) = selector else { return Ok(None) };
    if selector.fallback.is_some() {
        return Err(ApiError::bad_request(
            "`shard_key_selector.fallback` is not served: name the keys".into(),
        ));
    }
    if selector.shard_keys.is_empty() {
        return Err(ApiError::bad_request("`shard_key_selector` names no shard key".into()));
    }
    selector.shard_keys.iter().map(|k| ShardKey::from_proto(Some(k))).collect::<Result<_, _>>().map(Some)
}
