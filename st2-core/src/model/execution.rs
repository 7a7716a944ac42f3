//! Executions: StackStorm's liveaction and action execution, merged into one document.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{document, JsonMap};
use crate::store::Collection;

/// Execution statuses (StackStorm's `constants/action.py`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExecutionStatus {
    /// Created, waiting for the scheduler.
    Requested,
    /// Picked by the scheduler, waiting for a runner.
    Scheduled,
    /// Held back by a policy.
    Delayed,
    /// A runner is running it.
    Running,
    /// Waiting on an inquiry.
    Pending,
    /// Pause requested.
    Pausing,
    /// Paused.
    Paused,
    /// Resume requested.
    Resuming,
    /// Cancel requested.
    Canceling,
    /// Canceled.
    Canceled,
    /// Finished successfully.
    Succeeded,
    /// Finished with failure.
    Failed,
    /// Ran out of time.
    Timeout,
    /// Its runner went away.
    Abandoned,
}

impl ExecutionStatus {
    /// Every status, in lifecycle order.
    pub const ALL: [ExecutionStatus; 14] = [
        Self::Requested,
        Self::Scheduled,
        Self::Delayed,
        Self::Running,
        Self::Pending,
        Self::Pausing,
        Self::Paused,
        Self::Resuming,
        Self::Canceling,
        Self::Canceled,
        Self::Succeeded,
        Self::Failed,
        Self::Timeout,
        Self::Abandoned,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Requested => "requested",
            Self::Scheduled => "scheduled",
            Self::Delayed => "delayed",
            Self::Running => "running",
            Self::Pending => "pending",
            Self::Pausing => "pausing",
            Self::Paused => "paused",
            Self::Resuming => "resuming",
            Self::Canceling => "canceling",
            Self::Canceled => "canceled",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Timeout => "timeout",
            Self::Abandoned => "abandoned",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// succeeded, failed, timeout, canceled or abandoned.
    pub fn is_completed(self) -> bool {
        matches!(
            self,
            Self::Succeeded | Self::Failed | Self::Timeout | Self::Canceled | Self::Abandoned
        )
    }

    /// Statuses from which a cancel is accepted.
    pub fn is_cancelable(self) -> bool {
        matches!(
            self,
            Self::Requested
                | Self::Scheduled
                | Self::Delayed
                | Self::Running
                | Self::Pausing
                | Self::Paused
                | Self::Resuming
        )
    }
}

impl std::fmt::Display for ExecutionStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `liveaction` sub-document StackStorm's API returns.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LiveActionRef {
    /// Liveaction id (we use the execution id).
    #[serde(default)]
    pub id: String,
    /// Action ref.
    #[serde(default)]
    pub action: String,
    /// Whether the action is a workflow.
    #[serde(default)]
    pub action_is_workflow: bool,
    /// Runner info (debug etc.).
    #[serde(default)]
    pub runner_info: JsonMap,
}

/// One run of an action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Execution {
    /// Store id.
    #[serde(default)]
    pub id: String,
    /// The action document at request time.
    pub action: Value,
    /// The runner type document.
    #[serde(default)]
    pub runner: Value,
    /// Liveaction view.
    #[serde(default)]
    pub liveaction: LiveActionRef,
    /// Current status.
    pub status: ExecutionStatus,
    /// Parameters as given (after rendering).
    #[serde(default)]
    pub parameters: JsonMap,
    /// Result, once there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    /// Context: user, parent, trace_context, rule, trigger_instance, orquesta, policies, ...
    #[serde(default)]
    pub context: JsonMap,
    /// Parent execution id for workflow tasks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    /// Child execution ids.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<String>,
    /// Trigger doc, when a rule caused it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger: Option<Value>,
    /// Trigger type doc, when a rule caused it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger_type: Option<Value>,
    /// Trigger instance doc, when a rule caused it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger_instance: Option<Value>,
    /// Rule doc, when a rule caused it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<Value>,
    /// When it was requested (ISO-8601).
    pub start_timestamp: String,
    /// When it completed (ISO-8601).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_timestamp: Option<String>,
    /// Seconds between start and end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub elapsed_seconds: Option<f64>,
    /// Delay in milliseconds before scheduling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<u64>,
    /// Status history `[{status, timestamp}]`.
    #[serde(default)]
    pub log: Vec<Value>,
    /// Whether the notifier has emitted this execution's completion triggers (set once, by
    /// compare-and-set, so redeliveries never emit twice).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub notified: bool,
    /// Runner lease owner, for distributed mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_owner: Option<String>,
}
document!(Execution, Collection::Executions);

/// One chunk of an execution's live output, as StackStorm's `st2.execution.output__create`
/// event and `GET /executions/{id}/output` show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecutionOutput {
    /// Store id (ObjectId-like: later chunks sort after earlier ones).
    #[serde(default)]
    pub id: String,
    /// The execution it belongs to.
    pub execution_id: String,
    /// The action's ref.
    #[serde(default)]
    pub action_ref: String,
    /// The runner's name.
    #[serde(default)]
    pub runner_ref: String,
    /// When it was read (ISO-8601 UTC).
    pub timestamp: String,
    /// `stdout` or `stderr`.
    pub output_type: String,
    /// The text, as read (no newline added).
    pub data: String,
}
document!(ExecutionOutput, Collection::ExecutionOutput);
