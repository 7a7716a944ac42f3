//! Runner types.

use serde::{Deserialize, Serialize};

use super::{default_true, document, ParamMap};
use crate::store::Collection;

/// A kind of runner and the parameters it takes (StackStorm's `runner.yaml`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunnerType {
    /// Store id.
    #[serde(default)]
    pub id: String,
    /// Name, e.g. `local-shell-cmd`.
    pub name: String,
    /// `runner_type:<name>`.
    #[serde(default)]
    pub uid: String,
    /// Description.
    #[serde(default)]
    pub description: String,
    /// Whether actions of this runner can run.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Implementing module name.
    #[serde(default)]
    pub runner_module: String,
    /// Key of the result holding the action's output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_key: Option<String>,
    /// JSON Schema of the result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_schema: Option<serde_json::Value>,
    /// Parameters the runner takes.
    #[serde(default)]
    pub runner_parameters: ParamMap,
}
document!(RunnerType, Collection::RunnerTypes);
