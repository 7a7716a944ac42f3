//! Policies (`policies/*.yaml`) and policy types.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{default_pack, default_true, document, JsonMap};
use crate::store::Collection;

/// A policy applied to an action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Policy {
    /// Store id.
    #[serde(default)]
    pub id: String,
    /// Name within the pack.
    pub name: String,
    /// Pack ref.
    #[serde(default = "default_pack")]
    pub pack: String,
    /// `pack.name`.
    #[serde(rename = "ref", default)]
    pub policy_ref: String,
    /// `policy:<pack>:<name>`.
    #[serde(default)]
    pub uid: String,
    /// Description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Whether it is applied.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Action ref it applies to.
    pub resource_ref: String,
    /// `action.concurrency`, `action.concurrency.attr`, `action.retry`, ...
    pub policy_type: String,
    /// Parameters, validated against the policy type.
    #[serde(default)]
    pub parameters: JsonMap,
    /// Metadata file relative to the pack dir.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata_file: Option<String>,
}
document!(Policy, Collection::Policies, ref);

/// A kind of policy and the parameters it takes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyType {
    /// Store id.
    #[serde(default)]
    pub id: String,
    /// Name, e.g. `concurrency`.
    pub name: String,
    /// Resource type, e.g. `action`.
    pub resource_type: String,
    /// `<resource_type>.<name>`.
    #[serde(rename = "ref", default)]
    pub policy_type_ref: String,
    /// `policy_type:<resource_type>:<name>`.
    #[serde(default)]
    pub uid: String,
    /// Description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Whether it can be used.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Implementing module (informational).
    #[serde(default)]
    pub module: String,
    /// Parameter specs.
    #[serde(default)]
    pub parameters: JsonMap,
    /// Unused extra data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra: Option<Value>,
}
document!(PolicyType, Collection::PolicyTypes);
