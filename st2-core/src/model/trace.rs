//! Traces linking trigger instances, rules and executions.

use serde::{Deserialize, Serialize};

use super::document;
use crate::store::Collection;

/// One component of a trace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TraceComponent {
    /// Id of the object.
    pub object_id: String,
    /// Its ref.
    #[serde(rename = "ref", default)]
    pub component_ref: String,
    /// When it was added (ISO-8601).
    pub updated_at: String,
    /// What caused it (`<kind>:<id>`).
    #[serde(default)]
    pub caused_by: serde_json::Value,
}

/// A trace: everything one event caused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trace {
    /// Store id.
    #[serde(default)]
    pub id: String,
    /// User-visible tag.
    pub trace_tag: String,
    /// Trigger instances.
    #[serde(default)]
    pub trigger_instances: Vec<TraceComponent>,
    /// Rules.
    #[serde(default)]
    pub rules: Vec<TraceComponent>,
    /// Executions.
    #[serde(default)]
    pub action_executions: Vec<TraceComponent>,
    /// Start (ISO-8601).
    pub start_timestamp: String,
}
document!(Trace, Collection::Traces);
