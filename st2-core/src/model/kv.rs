//! Datastore key-value pairs.

use serde::{Deserialize, Serialize};

use super::{document, is_false};
use crate::store::Collection;

/// A key-value pair in `st2kv.system` or `st2kv.user`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyValuePair {
    /// Store id.
    #[serde(default)]
    pub id: String,
    /// Key name (user-scoped keys are stored as `<user>:<key>`).
    pub name: String,
    /// The value (always a string, ciphertext when encrypted).
    pub value: String,
    /// Masked unless decrypted.
    #[serde(default, skip_serializing_if = "is_false")]
    pub secret: bool,
    /// Whether `value` is ciphertext.
    #[serde(default, skip_serializing_if = "is_false")]
    pub encrypted: bool,
    /// `st2kv.system` or `st2kv.user`.
    pub scope: String,
    /// Owner of a user-scoped key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Time to live in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<u64>,
    /// When it expires (ISO-8601).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expire_timestamp: Option<String>,
    /// `key_value_pair:<scope>:<name>`.
    #[serde(default)]
    pub uid: String,
}
document!(KeyValuePair, Collection::KeyValuePairs);
