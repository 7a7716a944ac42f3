//! Rules (`rules/*.yaml`) and rule enforcements.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{default_pack, document, JsonMap};
use crate::store::Collection;

/// The trigger part of a rule.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RuleTrigger {
    /// Trigger type ref, e.g. `core.st2.webhook`.
    #[serde(rename = "type")]
    pub trigger_type: String,
    /// Parameters, validated against the trigger type's `parameters_schema`.
    #[serde(default)]
    pub parameters: JsonMap,
    /// Ref of the trigger object shared by rules with the same type and parameters.
    #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
    pub trigger_ref: Option<String>,
    /// Description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// The action part of a rule.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RuleAction {
    /// Action ref.
    #[serde(rename = "ref")]
    pub action_ref: String,
    /// Parameters (Jinja over `trigger.*`, `st2kv.*`).
    #[serde(default)]
    pub parameters: JsonMap,
    /// Description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// Rule type: `standard` or `backstop`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleType {
    /// `standard` or `backstop`.
    #[serde(rename = "ref")]
    pub type_ref: String,
    /// Parameters of the rule type.
    #[serde(default)]
    pub parameters: JsonMap,
}

impl Default for RuleType {
    fn default() -> Self {
        Self {
            type_ref: "standard".into(),
            parameters: JsonMap::new(),
        }
    }
}

/// A registered rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rule {
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
    pub rule_ref: String,
    /// `rule:<pack>:<name>`.
    #[serde(default)]
    pub uid: String,
    /// Description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Rules are disabled unless they say otherwise.
    #[serde(default)]
    pub enabled: bool,
    /// The trigger it listens to.
    pub trigger: RuleTrigger,
    /// Criteria: payload path (with optional `#tag`) → `{type, pattern, condition?}`.
    #[serde(default)]
    pub criteria: JsonMap,
    /// The action it runs.
    pub action: RuleAction,
    /// standard or backstop.
    #[serde(rename = "type", default)]
    pub rule_type: RuleType,
    /// Free-form context (e.g. user).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<Value>,
    /// Tags.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<Value>,
    /// Metadata file relative to the pack dir.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata_file: Option<String>,
}
document!(Rule, Collection::Rules, ref);

/// The record of a rule matching a trigger instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleEnforcement {
    /// Store id.
    #[serde(default)]
    pub id: String,
    /// Trigger instance that matched.
    pub trigger_instance_id: String,
    /// Execution started, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution_id: Option<String>,
    /// `{id, ref, uid}` of the rule at enforcement time.
    pub rule: Value,
    /// `succeeded` or `failed`.
    pub status: String,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_reason: Option<String>,
    /// When it was enforced (ISO-8601).
    pub enforced_at: String,
}
document!(RuleEnforcement, Collection::RuleEnforcements);
