//! Action and runner parameter specs (StackStorm's `action_params.json`: draft-4 plus
//! `required`, `secret`, `immutable`, `position`).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{is_false, JsonMap};

/// The simple JSON types a parameter may declare.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ParamType {
    /// A string.
    String,
    /// An integer.
    Integer,
    /// Any number.
    Number,
    /// true/false.
    Boolean,
    /// A list.
    Array,
    /// A map.
    Object,
    /// null.
    Null,
}

/// One parameter of an action or runner type.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ParamSpec {
    /// Declared type; absent when `anyOf`/`oneOf` is used.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub param_type: Option<ParamType>,
    /// Human description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Default value, possibly a Jinja template string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Value>,
    /// The caller must supply a value (or a default must exist).
    #[serde(default, skip_serializing_if = "is_false")]
    pub required: bool,
    /// Masked in API responses and logs.
    #[serde(default, skip_serializing_if = "is_false")]
    pub secret: bool,
    /// The caller may not override the default.
    #[serde(default, skip_serializing_if = "is_false")]
    pub immutable: bool,
    /// Positional argument order for script runners.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<u32>,
    /// Allowed values.
    #[serde(rename = "enum", default, skip_serializing_if = "Option::is_none")]
    pub enum_values: Option<Vec<Value>>,
    /// Any other JSON Schema keywords (pattern, items, properties, minimum, ...), kept verbatim.
    #[serde(flatten)]
    pub extra: JsonMap,
}

/// Attributes an action may override on a runner parameter (StackStorm's
/// `RUNNER_PARAM_OVERRIDABLE_ATTRS`).
pub const RUNNER_PARAM_OVERRIDABLE_ATTRS: &[&str] =
    &["default", "description", "enum", "immutable", "required"];

/// Parameter name → spec, in declaration order.
pub type ParamMap = indexmap::IndexMap<String, ParamSpec>;
