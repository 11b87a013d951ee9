//! Who may do what: the API key (everything), the read-only key (reads), and with
//! `jwt_rbac` Qdrant's JWTs — HS256 tokens signed with the API key whose `access`
//! claim is `"r"` (read everything), `"m"` (manage: everything) or a list of
//! `{"collection": c, "access": "r" | "rw"}`, and whose optional `exp` bounds them.
//!
//! Every call needs one of three levels ([`Need`]): a read (of one collection or of
//! the whole database), a write to one collection, or management (creating, deleting
//! and reconfiguring collections, aliases, snapshots). `docs/operations.md` has the
//! table of calls.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Deserialize;

use crate::error::{ApiError, ErrorKind};

/// What a request may do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Access {
    /// Everything: the API key, a JWT with `access: "m"`, or no key configured.
    Full,
    /// Reads of anything: the read-only key, a JWT with `access: "r"`.
    ReadAll,
    /// Reads (and writes where `true`) of the collections named, nothing else.
    Collections(Arc<BTreeMap<String, bool>>),
}

/// What a call needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Need<'a> {
    /// A read of this collection (`None`: of the database, such as listing).
    Read(Option<&'a str>),
    /// A write to this collection's points, vectors, payloads or indexes.
    Write(&'a str),
    /// Creating, deleting or reconfiguring collections, aliases, snapshots.
    Manage,
}

fn forbidden(why: String) -> ApiError {
    ApiError { kind: ErrorKind::Forbidden, message: why }
}

impl Access {
    /// Does this access allow `need`? `resolved` is the collection an alias in `need`
    /// names, if it is one: a token for the collection covers its aliases.
    pub(crate) fn allow(&self, need: Need<'_>, resolved: Option<&str>) -> Result<(), ApiError> {
        let covers = |map: &BTreeMap<String, bool>, name: &str, write: bool| {
            [Some(name), resolved].into_iter().flatten().any(|n| map.get(n).is_some_and(|rw| *rw || !write))
        };
        match (self, need) {
            (Access::Full, _) | (Access::ReadAll, Need::Read(_)) => Ok(()),
            (Access::ReadAll, _) => Err(forbidden("this key or token allows reads only".into())),
            (Access::Collections(map), Need::Read(Some(c))) if covers(map, c, false) => Ok(()),
            (Access::Collections(map), Need::Write(c)) if covers(map, c, true) => Ok(()),
            (Access::Collections(map), need) => Err(forbidden(format!(
                "this token allows {} only; the call needs {}",
                map.iter()
                    .map(|(c, rw)| format!("{} of `{c}`", if *rw { "reads and writes" } else { "reads" }))
                    .collect::<Vec<_>>()
                    .join(", "),
                match need {
                    Need::Read(Some(c)) => format!("reads of `{c}`"),
                    Need::Read(None) => "reads of the whole database".into(),
                    Need::Write(c) => format!("writes to `{c}`"),
                    Need::Manage => "management access".into(),
                }
            ))),
        }
    }
}

/// Checks `need` against `access`, resolving an alias `need` names first, so that a
/// token for a collection covers its aliases. The one check both protocols make.
pub(crate) fn check(access: &Access, need: Need<'_>, db: &braid::Database) -> Result<(), ApiError> {
    if *access == Access::Full {
        return Ok(());
    }
    let resolved = match need {
        Need::Read(Some(c)) | Need::Write(c) => db.collection(c).ok().map(|c| c.name().to_string()),
        _ => None,
    };
    access.allow(need, resolved.as_deref())
}

/// The configured keys.
#[derive(Clone)]
pub(crate) struct Keys {
    api_key: Option<Arc<str>>,
    read_only: Option<Arc<str>>,
    jwt: Option<Arc<jsonwebtoken::DecodingKey>>,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys")
            .field("api_key", &self.api_key.is_some())
            .field("read_only", &self.read_only.is_some())
            .field("jwt_rbac", &self.jwt.is_some())
            .finish()
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Claims {
    #[allow(dead_code)] // checked by the validation
    exp: Option<u64>,
    access: AccessClaim,
    /// Qdrant's `sub` (who the token is for) is informational.
    #[allow(dead_code)]
    sub: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum AccessClaim {
    Global(String),
    Collections(Vec<CollectionClaim>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CollectionClaim {
    collection: String,
    access: String,
}

impl Keys {
    pub(crate) fn new(api_key: Option<&str>, read_only: Option<&str>, jwt_rbac: bool) -> Keys {
        let jwt = jwt_rbac
            .then_some(api_key)
            .flatten()
            .map(|k| Arc::new(jsonwebtoken::DecodingKey::from_secret(k.as_bytes())));
        Keys { api_key: api_key.map(Arc::from), read_only: read_only.map(Arc::from), jwt }
    }

    /// The access of a request whose headers `header` looks up by name: the key or
    /// token in `api-key`, or in `Authorization: Bearer`. Compared in constant time.
    pub(crate) fn access(&self, header: impl Fn(&str) -> Option<String>) -> Result<Access, ApiError> {
        use subtle::ConstantTimeEq;
        if self.api_key.is_none() && self.read_only.is_none() {
            return Ok(Access::Full);
        }
        let given = header("api-key")
            .or_else(|| header("authorization").and_then(|v| v.strip_prefix("Bearer ").map(str::to_string)));
        let Some(given) = given else {
            return Err(ApiError {
                kind: ErrorKind::Unauthenticated,
                message: "Must provide an API key or an Authorization bearer token".into(),
            });
        };
        let equal = |key: &Option<Arc<str>>| {
            key.as_ref().is_some_and(|k| bool::from(given.as_bytes().ct_eq(k.as_bytes())))
        };
        if equal(&self.api_key) {
            return Ok(Access::Full);
        }
        if equal(&self.read_only) {
            return Ok(Access::ReadAll);
        }
        if let Some(key) = &self.jwt
            && given.matches('.').count() == 2
        {
            return token_access(&given, key);
        }
        Err(forbidden("Invalid API key or JWT".into()))
    }
}

fn token_access(token: &str, key: &jsonwebtoken::DecodingKey) -> Result<Access, ApiError> {
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    validation.required_spec_claims.clear();
    validation.leeway = 0;
    validation.validate_exp = true;
    let claims = jsonwebtoken::decode::<Claims>(token, key, &validation)
        .map_err(|e| forbidden(format!("Invalid JWT: {e}")))?
        .claims;
    match claims.access {
        AccessClaim::Global(a) if a == "m" => Ok(Access::Full),
        AccessClaim::Global(a) if a == "r" => Ok(Access::ReadAll),
        AccessClaim::Global(a) => Err(forbidden(format!("Invalid JWT: global access `{a}`; use r or m"))),
        AccessClaim::Collections(list) => {
            let mut map = BTreeMap::new();
            for c in list {
                let rw = match c.access.as_str() {
                    "r" => false,
                    "rw" => true,
                    other => {
                        return Err(forbidden(format!(
                            "Invalid JWT: access `{other}` to `{}`; use r or rw",
                            c.collection
                        )));
                    }
                };
                let was = map.entry(c.collection).or_insert(false);
                *was |= rw;
            }
            Ok(Access::Collections(Arc::new(map)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(secret: &str, claims: serde_json::Value) -> String {
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    }

    fn access(keys: &Keys, given: &str) -> Result<Access, ApiError> {
        keys.access(|h| (h == "api-key").then(|| given.to_string()))
    }

    #[test]
    fn keys_and_tokens_map_to_access() {
        let keys = Keys::new(Some("secret"), Some("reader"), true);
        assert_eq!(access(&keys, "secret").unwrap(), Access::Full);
        assert_eq!(access(&keys, "reader").unwrap(), Access::ReadAll);
        assert_eq!(access(&keys, "nope").unwrap_err().kind, ErrorKind::Forbidden);
        assert_eq!(keys.access(|_| None).unwrap_err().kind, ErrorKind::Unauthenticated);
        assert_eq!(
            access(&keys, &token("secret", serde_json::json!({"access": "m"}))).unwrap(),
            Access::Full
        );
        assert_eq!(
            access(&keys, &token("secret", serde_json::json!({"access": "r"}))).unwrap(),
            Access::ReadAll
        );
        let scoped = access(
            &keys,
            &token("secret", serde_json::json!({"access": [{"collection": "a", "access": "r"}, {"collection": "b", "access": "rw"}]})),
        )
        .unwrap();
        assert!(scoped.allow(Need::Read(Some("a")), None).is_ok());
        assert!(scoped.allow(Need::Write("a"), None).is_err());
        assert!(scoped.allow(Need::Write("b"), None).is_ok());
        assert!(scoped.allow(Need::Read(Some("alias")), Some("a")).is_ok());
        assert!(scoped.allow(Need::Read(None), None).is_err());
        assert!(scoped.allow(Need::Manage, None).is_err());
        // Signed with another key, expired, a foreign claim, a bad level: refused.
        for bad in [
            token("other", serde_json::json!({"access": "m"})),
            token("secret", serde_json::json!({"access": "m", "exp": 1})),
            token("secret", serde_json::json!({"access": "m", "value_exists": {"collection": "a"}})),
            token("secret", serde_json::json!({"access": "w"})),
            token("secret", serde_json::json!({"access": [{"collection": "a", "access": "x"}]})),
        ] {
            assert_eq!(access(&keys, &bad).unwrap_err().kind, ErrorKind::Forbidden, "{bad}");
        }
        // Without jwt_rbac a token is just a wrong key.
        let plain = Keys::new(Some("secret"), None, false);
        assert!(access(&plain, &token("secret", serde_json::json!({"access": "m"}))).is_err());
        assert_eq!(Keys::new(None, None, false).access(|_| None).unwrap(), Access::Full);
    }
}
