//! Trigger types, triggers and trigger instances.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{default_pack, document, JsonMap};
use crate::store::Collection;

/// A kind of event (`triggers/*.yaml`, or declared by a sensor).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TriggerType {
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
    pub trigger_type_ref: String,
    /// `trigger_type:<pack>:<name>`.
    #[serde(default)]
    pub uid: String,
    /// Description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// JSON Schema of payloads.
    #[serde(default)]
    pub payload_schema: JsonMap,
    /// JSON Schema of the parameters a rule gives.
    #[serde(default)]
    pub parameters_schema: JsonMap,
    /// Tags.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<Value>,
    /// Metadata file relative to the pack dir.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata_file: Option<String>,
    /// Ordered preprocessing steps applied to every instance before the rules engine sees it
    /// (an st2-rs extension; see `services::preprocess`). Kept as written, compiled on use.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub preprocessing: Vec<Value>,
}
document!(TriggerType, Collection::TriggerTypes, ref);

/// A trigger type with concrete parameters, shared by the rules that use them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trigger {
    /// Store id.
    #[serde(default)]
    pub id: String,
    /// Name (a uuid for parameterised triggers, the type name otherwise).
    pub name: String,
    /// Pack ref.
    #[serde(default = "default_pack")]
    pub pack: String,
    /// `pack.name`.
    #[serde(rename = "ref", default)]
    pub trigger_ref: String,
    /// `trigger:<pack>:<name>:<hash>`.
    #[serde(default)]
    pub uid: String,
    /// Trigger type ref.
    #[serde(rename = "type")]
    pub trigger_type: String,
    /// Parameters.
    #[serde(default)]
    pub parameters: JsonMap,
    /// Number of rules using it.
    #[serde(default)]
    pub ref_count: u32,
    /// Description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}
document!(Trigger, Collection::Triggers, ref);

/// One occurrence of a trigger, with its payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TriggerInstance {
    /// Store id.
    #[serde(default)]
    pub id: String,
    /// Trigger ref (or trigger type ref).
    pub trigger: String,
    /// The event payload.
    #[serde(default)]
    pub payload: Value,
    /// When it happened (ISO-8601).
    pub occurrence_time: String,
    /// pending → processing → processed | processing_failed.
    pub status: String,
    /// What trigger preprocessing decided, when the trigger type has steps and one of them
    /// rejected, suppressed or failed the instance (an st2-rs extension): `{outcome, step,
    /// name, reason}`. A rejected or suppressed instance is `processed` and never reaches rules;
    /// a failed one is `processing_failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preprocessing: Option<Value>,
}
document!(TriggerInstance, Collection::TriggerInstances);
