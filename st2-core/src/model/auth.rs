//! Users, auth tokens and API keys.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{default_true, document};
use crate::store::Collection;

/// A user known to the platform.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    /// Store id.
    #[serde(default)]
    pub id: String,
    /// Login name.
    pub name: String,
    /// Password hash (never served).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_hash: Option<String>,
}
document!(User, Collection::Users);

/// An auth token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Token {
    /// Store id.
    #[serde(default)]
    pub id: String,
    /// Owner.
    pub user: String,
    /// The token (stored hashed; shown once).
    pub token: String,
    /// Expiry (ISO-8601).
    pub expiry: String,
    /// Extra metadata.
    #[serde(default)]
    pub metadata: Value,
}
document!(Token, Collection::Tokens);

/// A non-expiring API key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiKey {
    /// Store id.
    #[serde(default)]
    pub id: String,
    /// `api_key:<id>`.
    #[serde(default)]
    pub uid: String,
    /// Owner.
    pub user: String,
    /// SHA-256 of the key.
    pub key_hash: String,
    /// Extra metadata.
    #[serde(default)]
    pub metadata: Value,
    /// Creation time (ISO-8601).
    pub created_at: String,
    /// Disabled keys authenticate nobody.
    #[serde(default = "default_true")]
    pub enabled: bool,
}
document!(ApiKey, Collection::ApiKeys);
