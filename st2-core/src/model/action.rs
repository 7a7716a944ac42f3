//! Actions (`actions/*.yaml`).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{default_pack, default_true, document, ParamMap};
use crate::store::Collection;

/// One notification sub-schema (`on-complete`, `on-success`, `on-failure`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NotifySubSchema {
    /// Message template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Extra data templates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
    /// Routes (alias channels).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<String>,
}

/// Action `notify` block.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Notify {
    /// Sent whatever the outcome.
    #[serde(
        rename = "on-complete",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub on_complete: Option<NotifySubSchema>,
    /// Sent on success.
    #[serde(
        rename = "on-success",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub on_success: Option<NotifySubSchema>,
    /// Sent on failure.
    #[serde(
        rename = "on-failure",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub on_failure: Option<NotifySubSchema>,
}

/// A registered action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Action {
    /// Store id.
    #[serde(default)]
    pub id: String,
    /// Name within the pack.
    pub name: String,
    /// Pack ref (default `default`).
    #[serde(default = "default_pack")]
    pub pack: String,
    /// `pack.name`.
    #[serde(rename = "ref", default)]
    pub action_ref: String,
    /// `action:<pack>:<name>`.
    #[serde(default)]
    pub uid: String,
    /// Description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Disabled actions cannot be executed.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Runner type name.
    pub runner_type: String,
    /// Script/workflow path relative to the pack's `actions/` dir; empty for cmd runners.
    #[serde(default)]
    pub entry_point: String,
    /// Parameter specs, in file order.
    #[serde(default)]
    pub parameters: ParamMap,
    /// JSON Schema of the result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_schema: Option<Value>,
    /// Notifications.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify: Option<Notify>,
    /// Tags `[{name, value}]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<Value>,
    /// Metadata file relative to the pack dir (set by the registrar).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata_file: Option<String>,
}
document!(Action, Collection::Actions, ref);
