//! Action aliases (`aliases/*.yaml`).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{default_pack, default_true, document, JsonMap};
use crate::store::Collection;

/// A ChatOps alias mapping command text to an action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionAlias {
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
    pub alias_ref: String,
    /// `action:<pack>:<name>`.
    #[serde(default)]
    pub uid: String,
    /// Description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Whether it matches.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Action it runs.
    pub action_ref: String,
    /// Format strings or `{display, representation[]}` objects.
    #[serde(default)]
    pub formats: Vec<Value>,
    /// Acknowledgement settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ack: Option<Value>,
    /// Result settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    /// Extra data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra: Option<Value>,
    /// Parameters callers cannot change.
    #[serde(default)]
    pub immutable_parameters: JsonMap,
    /// Metadata file relative to the pack dir.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata_file: Option<String>,
}
document!(ActionAlias, Collection::Aliases, ref);
