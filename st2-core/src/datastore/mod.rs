//! The datastore: StackStorm's key-value pairs (`st2 key ...`, `/api/v1/keys`, `{{ st2kv.* }}`).
//!
//! Owns the rules StackStorm applies to key-value pairs: the two scopes (`st2kv.system`, alias
//! `system`; `st2kv.user`, alias `user`, stored as `<user>:<key>`), secrets encrypted at rest with
//! the keyczar-compatible [`crypto`] (pre-encrypted values are integrity-checked, never
//! re-encrypted; `encrypted` always implies `secret`), TTLs (`expire_timestamp = now + ttl`;
//! expired pairs are invisible and [`Datastore::purge_expired`] deletes them), the API shape of a
//! pair (user-scoped names without the `<user>:` prefix, `encrypted` telling whether `value` is
//! ciphertext) and the [`KvEvent`]s behind the `core.st2.key_value_pair.*` triggers.
//!
//! [`Datastore`] (in `service.rs`) is the one place that reads and writes the store; it reports
//! each change to a callback the caller provides and must not publish to the bus itself, nor check
//! permissions (RBAC: who may decrypt or read another user's keys is the API's business).
//! [`DatastoreLookup`] serves template `st2kv` lookups from an in-memory snapshot.

pub mod crypto;
mod lookup;
mod service;

pub use crypto::{CryptoError, SymmetricKey};
pub use lookup::DatastoreLookup;
pub use service::{Datastore, NowFn};

use std::fmt;
use std::str::FromStr;

use serde_json::{json, Value};

use crate::model::KeyValuePair;
use crate::store::StoreError;

/// Full name of the system scope.
pub const FULL_SYSTEM_SCOPE: &str = "st2kv.system";
/// Full name of the user scope.
pub const FULL_USER_SCOPE: &str = "st2kv.user";
/// Legacy short name of the system scope.
pub const SYSTEM_SCOPE: &str = "system";
/// Legacy short name of the user scope.
pub const USER_SCOPE: &str = "user";
/// Separator between the owner and the key in stored user-scoped names (and in namespaces).
pub const KEY_SEPARATOR: char = ':';

/// A datastore scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum Scope {
    /// `st2kv.system`: keys shared by everyone.
    #[default]
    System,
    /// `st2kv.user`: keys owned by one user.
    User,
}

impl Scope {
    /// The full name stored and returned by the API (`st2kv.system` / `st2kv.user`).
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::System => FULL_SYSTEM_SCOPE,
            Scope::User => FULL_USER_SCOPE,
        }
    }

    /// The legacy short alias (`system` / `user`).
    pub fn short(self) -> &'static str {
        match self {
            Scope::System => SYSTEM_SCOPE,
            Scope::User => USER_SCOPE,
        }
    }

    /// The name a pair is stored under: `name` in the system scope, `<user>:<name>` in the user
    /// scope (StackStorm's `get_key_reference`).
    pub fn stored_name(self, name: &str, user: Option<&str>) -> Result<String, DatastoreError> {
        match self {
            Scope::System => Ok(name.to_string()),
            Scope::User => match user {
                Some(u) if !u.is_empty() => Ok(format!("{u}{KEY_SEPARATOR}{name}")),
                _ => Err(DatastoreError::MissingUser {
                    name: name.to_string(),
                }),
            },
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Scope {
    type Err = DatastoreError;

    /// Accepts `st2kv.system`, `system`, `st2kv.user` and `user` (StackStorm's `ALLOWED_SCOPES`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            FULL_SYSTEM_SCOPE | SYSTEM_SCOPE => Ok(Scope::System),
            FULL_USER_SCOPE | USER_SCOPE => Ok(Scope::User),
            other => Err(DatastoreError::InvalidScope {
                scope: other.to_string(),
            }),
        }
    }
}

/// What to write with [`Datastore::set`]. Built with [`SetKey::new`] and the chained setters.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SetKey {
    /// Key name, without any `<user>:` prefix.
    pub name: String,
    /// The value: plaintext, or ciphertext when `encrypted`.
    pub value: String,
    /// Scope (default `st2kv.system`).
    pub scope: Scope,
    /// Owner, required for [`Scope::User`].
    pub user: Option<String>,
    /// Encrypt the value at rest (needs a crypto key).
    pub secret: bool,
    /// The value is already ciphertext (`st2 key set --encrypted`): it is checked against the key
    /// and stored as is. Implies `secret`.
    pub encrypted: bool,
    /// Seconds to live; `None` or `0` never expires (StackStorm ignores a zero TTL).
    pub ttl: Option<u64>,
}

impl SetKey {
    /// A plain system-scoped pair.
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        SetKey {
            name: name.into(),
            value: value.into(),
            ..Default::default()
        }
    }

    /// Sets the scope.
    pub fn scope(mut self, scope: Scope) -> Self {
        self.scope = scope;
        self
    }

    /// Makes the pair user-scoped, owned by `user`.
    pub fn user(mut self, user: impl Into<String>) -> Self {
        self.scope = Scope::User;
        self.user = Some(user.into());
        self
    }

    /// Marks the value secret (encrypted at rest).
    pub fn secret(mut self) -> Self {
        self.secret = true;
        self
    }

    /// Declares the value already encrypted with the datastore key.
    pub fn pre_encrypted(mut self) -> Self {
        self.encrypted = true;
        self
    }

    /// Sets the time to live in seconds.
    pub fn ttl(mut self, seconds: u64) -> Self {
        self.ttl = Some(seconds);
        self
    }
}

/// Which pairs [`Datastore::list`] returns.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ListKeys {
    /// One scope, or `None` for StackStorm's `all`: system keys plus the user's own keys.
    pub scope: Option<Scope>,
    /// The user whose keys are listed (required for [`Scope::User`]).
    pub user: Option<String>,
    /// Only names starting with this (the name without the `<user>:` prefix).
    pub prefix: Option<String>,
    /// Return secret values decrypted.
    pub decrypt: bool,
}

/// One change to the datastore, as StackStorm reports it through the
/// `core.st2.key_value_pair.*` triggers. Objects are API-shaped pairs with secrets left encrypted
/// (see [`to_api_json`]).
#[derive(Debug, Clone, PartialEq)]
pub enum KvEvent {
    /// A pair was created (`core.st2.key_value_pair.create`, payload `{object}`).
    Create {
        /// The new pair.
        object: Value,
    },
    /// A pair was written over (`core.st2.key_value_pair.update`, payload `{object}`), whether
    /// or not its value changed.
    Update {
        /// The pair after the write.
        object: Value,
    },
    /// A pair's value changed (`core.st2.key_value_pair.value_change`, payload
    /// `{old_object, new_object}`); follows the [`KvEvent::Update`] of the same write.
    ValueChange {
        /// The pair before.
        old_object: Value,
        /// The pair after.
        new_object: Value,
    },
    /// A pair was deleted (`core.st2.key_value_pair.delete`, payload `{object}`).
    Delete {
        /// The pair that was deleted.
        object: Value,
    },
}

impl KvEvent {
    /// `create`, `update`, `value_change` or `delete`.
    pub fn operation(&self) -> &'static str {
        match self {
            KvEvent::Create { .. } => "create",
            KvEvent::Update { .. } => "update",
            KvEvent::ValueChange { .. } => "value_change",
            KvEvent::Delete { .. } => "delete",
        }
    }

    /// The trigger type to dispatch (`core.st2.key_value_pair.<operation>`).
    pub fn trigger_ref(&self) -> &'static str {
        match self {
            KvEvent::Create { .. } => "core.st2.key_value_pair.create",
            KvEvent::Update { .. } => "core.st2.key_value_pair.update",
            KvEvent::ValueChange { .. } => "core.st2.key_value_pair.value_change",
            KvEvent::Delete { .. } => "core.st2.key_value_pair.delete",
        }
    }

    /// The trigger payload: `{"object": ...}` or `{"old_object": ..., "new_object": ...}`.
    pub fn payload(&self) -> Value {
        match self {
            KvEvent::Create { object }
            | KvEvent::Update { object }
            | KvEvent::Delete { object } => {
                json!({ "object": object })
            }
            KvEvent::ValueChange {
                old_object,
                new_object,
            } => {
                json!({ "old_object": old_object, "new_object": new_object })
            }
        }
    }
}

/// A pair as StackStorm's API and trigger payloads show it: every field of the model plus
/// `secret` and `encrypted` spelled out even when false.
pub fn to_api_json(pair: &KeyValuePair) -> Value {
    let mut v = serde_json::to_value(pair).unwrap_or_else(|_| json!({}));
    if let Some(obj) = v.as_object_mut() {
        obj.insert("secret".into(), Value::Bool(pair.secret));
        obj.insert("encrypted".into(), Value::Bool(pair.encrypted));
    }
    v
}

/// `key_value_pair:<scope>:<stored name>` (StackStorm's `KeyValuePairDB.get_uid()`).
pub fn uid(scope: Scope, stored_name: &str) -> String {
    format!("key_value_pair:{}:{stored_name}", scope.as_str())
}

/// What can go wrong in the datastore.
#[derive(Debug, thiserror::Error)]
pub enum DatastoreError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Not one of `st2kv.system`, `system`, `st2kv.user`, `user`.
    #[error(
        "Scope {scope:?} is not valid. Allowed scopes are st2kv.system, system, st2kv.user, user."
    )]
    InvalidScope {
        /// The scope given.
        scope: String,
    },
    /// A user-scoped operation without a user.
    #[error("A valid user must be specified for user key ref (key {name:?}).")]
    MissingUser {
        /// The key.
        name: String,
    },
    /// The key name is unusable.
    #[error("invalid key name {name:?}: {reason}")]
    InvalidName {
        /// The name given.
        name: String,
        /// Why.
        reason: String,
    },
    /// A secret was written or decrypted but no crypto key is configured.
    #[error("Crypto key not found. Unable to encrypt / decrypt value for key {name}.")]
    CryptoKeyMissing {
        /// The key.
        name: String,
    },
    /// A pre-encrypted value does not verify against the configured key.
    #[error(
        "Failed to verify the integrity of the provided value for key \"{name}\". Ensure that \
         the value is encrypted with the correct key and not corrupted."
    )]
    IntegrityCheckFailed {
        /// The key.
        name: String,
        /// The crypto error.
        source: CryptoError,
    },
    /// A stored secret could not be decrypted.
    #[error("cannot decrypt the value of key {name:?}: {source}")]
    Decrypt {
        /// The key.
        name: String,
        /// The crypto error.
        source: CryptoError,
    },
}
