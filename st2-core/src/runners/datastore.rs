//! What Python actions reach through `self.action_service` (StackStorm's
//! `ActionDatastoreService`): [`DatastoreAccess`], implemented over the real datastore by the
//! service layer, and [`MemoryDatastore`] for tests and tools.
//!
//! Key names arrive complete: the Python shim has already applied StackStorm's local namespace
//! (`local=True`, the default, prefixes the name with `<pack>.<ActionClass>:`), exactly as
//! `BaseDatastoreService._get_full_key_name` does. Values are strings (`set_value` calls
//! `str(value)` in Python first).

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;
use serde_json::Value;

use crate::model::KeyValuePair;
use crate::template::KvScope;

/// A datastore key as an action addresses it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KvKey {
    /// `st2kv.system` or `st2kv.user`.
    pub scope: KvScope,
    /// The executing user: owner of `st2kv.user` keys (ignored for system keys).
    pub user: String,
    /// The full key name (local prefix already applied).
    pub name: String,
}

/// Why a datastore call failed; the text reaches the action as a Python exception (or, for
/// `get_value`, a `None` as StackStorm returns on any error).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DatastoreError {
    /// The request cannot be served (unknown scope, no permission, ...).
    #[error("{0}")]
    Rejected(String),
    /// The backing store failed.
    #[error("datastore failure: {0}")]
    Backend(String),
}

/// The datastore operations of `action_service`.
#[async_trait]
pub trait DatastoreAccess: Send + Sync {
    /// The value of `key` (decrypted when `decrypt` and it is encrypted); `None` when it does
    /// not exist or has expired.
    async fn get_value(&self, key: &KvKey, decrypt: bool)
        -> Result<Option<String>, DatastoreError>;

    /// Creates or replaces `key`; `ttl` in seconds; `encrypt` stores it as a secret.
    async fn set_value(
        &self,
        key: &KvKey,
        value: &str,
        ttl: Option<u64>,
        encrypt: bool,
    ) -> Result<(), DatastoreError>;

    /// Deletes `key`; `false` when it did not exist.
    async fn delete_value(&self, key: &KvKey) -> Result<bool, DatastoreError>;

    /// The pairs of `scope` (for the user scope: those of `user`) whose name starts with
    /// `prefix` (all of them without one), sorted by name. Encrypted values stay ciphertext.
    async fn list_values(
        &self,
        scope: KvScope,
        user: &str,
        prefix: Option<&str>,
    ) -> Result<Vec<KeyValuePair>, DatastoreError>;
}

/// A [`DatastoreAccess`] in memory, for tests and tools: no encryption (a value set with
/// `encrypt` is only marked secret) and no expiry.
#[derive(Debug, Default)]
pub struct MemoryDatastore {
    /// `(scope, owner or "" for system keys, name)` → pair.
    entries: Mutex<BTreeMap<(String, String, String), KeyValuePair>>,
}

impl MemoryDatastore {
    /// An empty datastore.
    pub fn new() -> Self {
        Self::default()
    }

    fn slot(key: &KvKey) -> (String, String, String) {
        let owner = match key.scope {
            KvScope::System => String::new(),
            KvScope::User => key.user.clone(),
        };
        (key.scope.as_str().to_string(), owner, key.name.clone())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<(String, String, String), KeyValuePair>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The stored value of `key`, if any (a synchronous peek for tests).
    pub fn peek(&self, key: &KvKey) -> Option<String> {
        self.lock().get(&Self::slot(key)).map(|p| p.value.clone())
    }
}

#[async_trait]
impl DatastoreAccess for MemoryDatastore {
    async fn get_value(
        &self,
        key: &KvKey,
        _decrypt: bool,
    ) -> Result<Option<String>, DatastoreError> {
        Ok(self.peek(key))
    }

    async fn set_value(
        &self,
        key: &KvKey,
        value: &str,
        ttl: Option<u64>,
        encrypt: bool,
    ) -> Result<(), DatastoreError> {
        let scope = format!("st2kv.{}", key.scope.as_str());
        let pair = KeyValuePair {
            id: String::new(),
            name: key.name.clone(),
            value: value.to_string(),
            secret: encrypt,
            encrypted: false,
            uid: format!("key_value_pair:{scope}:{}", key.name),
            scope,
            user: (key.scope == KvScope::User).then(|| key.user.clone()),
            ttl,
            expire_timestamp: None,
        };
        self.lock().insert(Self::slot(key), pair);
        Ok(())
    }

    async fn delete_value(&self, key: &KvKey) -> Result<bool, DatastoreError> {
        Ok(self.lock().remove(&Self::slot(key)).is_some())
    }

    async fn list_values(
        &self,
        scope: KvScope,
        user: &str,
        prefix: Option<&str>,
    ) -> Result<Vec<KeyValuePair>, DatastoreError> {
        let owner = match scope {
            KvScope::System => "",
            KvScope::User => user,
        };
        Ok(self
            .lock()
            .iter()
            .filter(|((s, o, name), _)| {
                s == scope.as_str() && o == owner && prefix.is_none_or(|p| name.starts_with(p))
            })
            .map(|(_, v)| v.clone())
            .collect())
    }
}

/// `system` / `st2kv.system` / `user` / `st2kv.user`.
fn parse_scope(params: &Value) -> Result<KvScope, String> {
    match params
        .get("scope")
        .and_then(Value::as_str)
        .unwrap_or("system")
    {
        "system" | "st2kv.system" => Ok(KvScope::System),
        "user" | "st2kv.user" => Ok(KvScope::User),
        other => Err(format!("Scope {other} is unsupported.")),
    }
}

/// Serves one datastore call of the Python shim (`action_service` / `sensor_service`:
/// `get_value`, `set_value`, `delete_value`, `list_values`) for `user`; the error text reaches
/// Python as an exception.
pub async fn serve_call(
    ds: Option<&dyn DatastoreAccess>,
    user: &str,
    method: &str,
    params: &Value,
) -> Result<Value, String> {
    let ds = ds.ok_or_else(|| "No datastore is available here".to_string())?;
    let name = || {
        params
            .get("name")
            .and_then(Value::as_str)
            .map(String::from)
            .ok_or_else(|| "a key name is required".to_string())
    };
    let key = |scope: KvScope, name: String| KvKey {
        scope,
        user: user.to_string(),
        name,
    };
    match method {
        "get_value" => {
            let k = key(parse_scope(params)?, name()?);
            let decrypt = params
                .get("decrypt")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            let v = ds.get_value(&k, decrypt).await.map_err(|e| e.to_string())?;
            Ok(v.map_or(Value::Null, Value::String))
        }
        "set_value" => {
            let k = key(parse_scope(params)?, name()?);
            let value = match params.get("value") {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Null) | None => String::new(),
                Some(other) => other.to_string(),
            };
            let ttl = params.get("ttl").and_then(Value::as_u64).filter(|t| *t > 0);
            let encrypt = params
                .get("encrypt")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            ds.set_value(&k, &value, ttl, encrypt)
                .await
                .map_err(|e| e.to_string())?;
            Ok(Value::Bool(true))
        }
        "delete_value" => {
            let k = key(parse_scope(params)?, name()?);
            let deleted = ds.delete_value(&k).await.map_err(|e| e.to_string())?;
            Ok(Value::Bool(deleted))
        }
        "list_values" => {
            let prefix = params.get("prefix").and_then(Value::as_str);
            let items = ds
                .list_values(KvScope::System, user, prefix)
                .await
                .map_err(|e| e.to_string())?;
            serde_json::to_value(items).map_err(|e| e.to_string())
        }
        other => Err(format!("unknown action_service method \"{other}\"")),
    }
}
