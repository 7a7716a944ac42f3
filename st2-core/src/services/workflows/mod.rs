//! The Orquesta workflow service (StackStorm's `orquesta` runner and `st2workflowengine`): runs
//! the pure state machine of [`crate::workflow::machine`] against the store and the bus.
//!
//! - [`start`]: the action runner hands it an execution of an `orquesta` action (see
//!   `worker.rs`): the spec is loaded and checked (a bad spec fails the execution with its
//!   errors), the workflow is created with the execution's parameters as input and stored.
//! - Commands become actions: each `RunAction` is a child execution ([`executions::request`])
//!   with `parent` and `context.orquesta` (`task_name`, `task_id`, `route`, `item_id`,
//!   `workflow_execution_id`, ...); timers are tokio timers whose due time is stored.
//! - [`WorkflowEngine`] consumes child completions (`st2.workflow.action.update`, bound to the
//!   completed, `pending` and `paused` statuses of `st2.liveaction.status`) and control requests (`canceling`,
//!   `pausing`, `resuming` of workflow executions), turning each into a machine event.
//! - [`recover`]: after a restart, running workflows continue from their stored state: completed
//!   children are applied, missing children (recorded as started, never requested) requested,
//!   timers re-armed.
//!
//! Persistence is incremental: the header (collection `WorkflowExecutions`) carries the
//! workflow-level fields, a `version` and the task records the last event changed (`pending`);
//! one compare-and-set on `version` commits an event (so two processes cannot interleave), then
//! the pending records are written to `TaskExecutions` (again on the next load if a crash came
//! in between). Events of one workflow are applied one at a time in a process (an async lock per
//! workflow, which also guards an in-memory copy of the state so that an event reads only the
//! header).
//!
//! # Layout
//!
//! - `start`: a new run from an execution (spec, input, first commands).
//! - `step`: the in-memory copy and lock per workflow, loading, applying one event and
//!   committing it.
//! - `children`: carrying out commands (child executions, timers, cancels) and turning child
//!   completions into events.
//! - `control`: cancel/pause/resume requests and mirroring the status on the parent execution.
//! - `recovery`: continuing unfinished runs after a restart.
//! - `engine`: the role consuming the bus queues.
//! - `kv`: `st2kv()` over the datastore.

mod children;
mod control;
mod engine;
mod kv;
mod recovery;
mod start;
mod step;

pub use children::child_completed;
pub use control::control;
pub use engine::WorkflowEngine;
pub use recovery::recover;
pub use start::start;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Ctx, ServiceError};
use crate::model::ExecutionStatus;
use crate::store::{Collection, Query, StoreError};

use crate::workflow::machine::{ItemChange, TaskRecord, WorkflowHeader};

/// The runner type whose executions this service runs.
pub const RUNNER: &str = "orquesta";

/// The work queue of control requests (cancel, pause, resume) of workflow executions.
pub const CONTROL_QUEUE: &str = "st2.workflow.control";

/// Status routing keys of completed executions.
/// Status routing keys of control requests.
pub(super) const CONTROL_STATUSES: [&str; 3] = ["canceling", "pausing", "resuming"];

/// Deliveries handled at once (also the queues' prefetch).
pub const CONCURRENCY: usize = 32;

/// Compare-and-set attempts before an event is given back to the queue.
pub(super) const COMMIT_ATTEMPTS: usize = 20;

/// Statuses a workflow's parent execution has while the workflow is not finished.
pub(super) const LIVE_PARENT: [ExecutionStatus; 5] = [
    ExecutionStatus::Running,
    ExecutionStatus::Pausing,
    ExecutionStatus::Paused,
    ExecutionStatus::Resuming,
    ExecutionStatus::Canceling,
];

/// Whether executions of runner type `runner` are run by this service.
pub fn handles(runner: &str) -> bool {
    runner == RUNNER
}

/// The header of one workflow run (collection `WorkflowExecutions`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorkflowDoc {
    /// Id (`context.orquesta.workflow_execution_id` of the children).
    pub id: String,
    /// The execution of the workflow action.
    pub action_execution: String,
    /// Workflow status (StackStorm's names).
    pub status: String,
    /// Bumped by every committed event (compare-and-set).
    pub version: u64,
    /// The workflow definition as it was when the run started.
    pub spec: String,
    /// The user children run as.
    pub user: String,
    /// The parent's `trace_context`, passed to the children.
    #[serde(default)]
    pub trace_context: Option<Value>,
    /// Workflow-level state.
    pub state: WorkflowHeader,
    /// The task records the last event changed (written to `TaskExecutions` after the commit).
    #[serde(default)]
    pub pending: Vec<TaskRecord>,
    /// The with-items changes of the last event (written as [`ItemDoc`]s after the commit).
    #[serde(default)]
    pub pending_items: Vec<ItemChange>,
    /// Number of task records.
    pub records: usize,
    /// Due times (epoch milliseconds) of the timers of delayed records, by record index.
    #[serde(default)]
    pub timers: BTreeMap<String, i64>,
    /// The execution result once finished.
    #[serde(default)]
    pub result: Option<Value>,
    /// When the run started.
    pub start_timestamp: String,
    /// When it finished.
    #[serde(default)]
    pub end_timestamp: Option<String>,
    /// Finished and its parent execution ended too (nothing left for [`recover`]).
    #[serde(default)]
    pub closed: bool,
    /// When the workflow times out (epoch milliseconds), from the action's `timeout`.
    #[serde(default)]
    pub timeout_at: Option<i64>,
}

/// One task instance (collection `TaskExecutions`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskDoc {
    /// `<workflow id>_<instance>`.
    pub id: String,
    /// The workflow run.
    pub workflow_execution: String,
    /// Task name.
    pub task_id: String,
    /// Route.
    pub task_route: u32,
    /// Record index.
    pub instance: usize,
    /// Task status.
    pub status: String,
    /// The machine's record.
    pub record: TaskRecord,
}

/// One with-items change (collection `TaskExecutions`, under `workflow_execution`
/// `<workflow id>/items` so that loading the task records does not read them): item values
/// are written once, each item's result once, so an item event costs the same at any count.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ItemDoc {
    /// `<workflow id>_<instance>_<retry>_values` or `..._<item>`.
    pub id: String,
    /// `<workflow id>/items`.
    pub workflow_execution: String,
    /// The change.
    pub change: ItemChange,
}

impl ItemDoc {
    pub(super) fn of(wf_id: &str, change: &ItemChange) -> Self {
        let (instance, retry) = change.record();
        let id = match change {
            ItemChange::Values { .. } => format!("{wf_id}_{instance}_{retry}_values"),
            ItemChange::Progress { .. } => format!("{wf_id}_{instance}_{retry}_progress"),
            ItemChange::Done { item, .. } => format!("{wf_id}_{instance}_{retry}_{item}"),
        };
        ItemDoc {
            id,
            workflow_execution: items_key(wf_id),
            change: change.clone(),
        }
    }
}

/// The initial context of a workflow run (input and vars; collection `TaskExecutions`, id
/// `<workflow id>_ctx`), written once at start: it can be as large as the input, so it is kept
/// out of the header, which is read and written per event.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CtxDoc {
    /// `<workflow id>_ctx`.
    pub id: String,
    /// `<workflow id>/ctx`.
    pub workflow_execution: String,
    /// The context.
    pub ctx: serde_json::Map<String, Value>,
}

impl CtxDoc {
    pub(super) fn of(wf_id: &str, ctx: &serde_json::Map<String, Value>) -> Self {
        CtxDoc {
            id: format!("{wf_id}_ctx"),
            workflow_execution: format!("{wf_id}/ctx"),
            ctx: ctx.clone(),
        }
    }
}

/// The `workflow_execution` of the item documents of workflow `wf_id`.
pub(super) fn items_key(wf_id: &str) -> String {
    format!("{wf_id}/items")
}

impl TaskDoc {
    fn of(wf_id: &str, r: &TaskRecord) -> Self {
        TaskDoc {
            id: format!("{wf_id}_{}", r.instance),
            workflow_execution: wf_id.to_string(),
            task_id: r.task.clone(),
            task_route: r.route,
            instance: r.instance,
            status: r.status.as_str().to_string(),
            record: r.clone(),
        }
    }
}

pub(super) fn decode<T: serde::de::DeserializeOwned>(
    c: Collection,
    v: Value,
) -> Result<T, ServiceError> {
    serde_json::from_value(v).map_err(|source| {
        ServiceError::Store(StoreError::Decode {
            collection: c,
            source,
        })
    })
}

pub(super) fn encode<T: Serialize>(c: Collection, v: &T) -> Result<Value, ServiceError> {
    serde_json::to_value(v).map_err(|e| {
        ServiceError::Store(StoreError::InvalidDocument {
            collection: c,
            reason: e.to_string(),
        })
    })
}

pub(super) fn epoch_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// The workflow run of execution `exec_id`, if it has one.
pub async fn find_by_execution(
    ctx: &Ctx,
    exec_id: &str,
) -> Result<Option<WorkflowDoc>, ServiceError> {
    let q = Query::all()
        .eq("action_execution", exec_id)
        .page(0, Some(1));
    let mut docs = ctx.store.find(Collection::WorkflowExecutions, &q).await?;
    docs.pop()
        .map(|d| decode(Collection::WorkflowExecutions, d))
        .transpose()
}
