//! The pure workflow state machine: `Workflow::new(spec, input) -> (workflow, commands)` and
//! [`Workflow::apply`]`(event) -> commands`. No I/O: the workflow service runs the actions,
//! timers and persistence the commands ask for and feeds back events.
//!
//! # Transition table
//!
//! Workflow status (Orquesta's `WORKFLOW_STATE_MACHINE_DATA`, the cases we reach):
//!
//! | from        | on                                              | to                     |
//! |-------------|-------------------------------------------------|------------------------|
//! | running     | task succeeded / remediated, work left          | running                |
//! | running     | task succeeded / remediated, nothing left       | succeeded (¹)          |
//! | running     | task failed, no transition taken (or `fail`)    | failed (²)             |
//! | running     | expression error (input, when, publish, items)  | failed (²)             |
//! | running     | pause requested                                 | pausing / paused (³)   |
//! | running     | cancel requested, task canceled                 | canceling / canceled (³) |
//! | pausing     | last active task completed                      | paused                 |
//! | paused, pausing | resume requested                            | running                |
//! | canceling   | last active task completed                      | canceled               |
//! | failed      | last active task completed                      | failed, finished       |
//! | running     | task pending (inquiry)                          | pausing / paused (³)   |
//! | running     | nothing active, a task pending or paused (⁴)    | paused                 |
//! | paused, pausing | pending/paused task's action completed      | running                |
//! | any live    | timed out                                       | canceling / canceled (⁵) |
//!
//! (¹) an unsatisfied join left behind fails the workflow (`UnreachableJoinError`); an error
//! rendering the output too. (²) failing is immediate; tasks already running complete (their
//! transitions are not followed, except tasks routed next to a `fail` command), then
//! [`Command::Finished`] is emitted. (³) "…ing" while tasks are active, "…ed" when none are.
//! (⁴) a task is paused when its action (a nested workflow) paused. (⁵) with
//! [`WorkflowHeader::timed_out`] set; the service ends the execution `timeout`.
//!
//! Task status: `delayed` (waiting for a delay or retry timer) → `running` (↔ `pending` while
//! an inquiry waits, ↔ `paused` while a nested workflow is paused) → `succeeded` |
//! `failed` (action failed or timed out) | `canceled`; a retry puts a completed task back to
//! `delayed`/`running` (the same record, its `retry_tally` incremented).
//!
//! On completion a task's transitions are evaluated in order; each whose `when` holds
//! publishes (in order, into a copy of the task's context) and routes to each task in `do`.
//! A task without `join` gets a new instance per arrival (which is how cycles work); a join
//! task waits for `all` its inbound tasks or the given count, merging their contexts.
//! `continue` (also a transition without `do`), `noop` and `fail` end the branch (`fail` fails
//! the workflow); `retry` runs the task again. A failed task is remediated (the workflow goes
//! on) when a transition other than `continue` was taken.
//!
//! Costs: an event touches one task record; with-items renders the items list once and each
//! item's input when that item starts, so the cost per event does not grow with the item count.
//! State is a list of [`TaskRecord`]s plus small workflow fields; [`Workflow::take_dirty`] names
//! the records an event changed, so they can be persisted incrementally.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

mod control;
mod engine;
mod rerun;
mod transitions;

use super::expr::{self, ExprError, KvSource};
use super::spec::WorkflowSpec;

/// Status of a workflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkflowStatus {
    /// Tasks are running or being started.
    Running,
    /// Pause requested; tasks still active.
    Pausing,
    /// Paused: nothing active, nothing started.
    Paused,
    /// Cancel requested; tasks still active.
    Canceling,
    /// Canceled (final).
    Canceled,
    /// Succeeded (final).
    Succeeded,
    /// Failed (final once no task is active).
    Failed,
}

impl WorkflowStatus {
    /// StackStorm's name of the status.
    pub fn as_str(self) -> &'static str {
        match self {
            WorkflowStatus::Running => "running",
            WorkflowStatus::Pausing => "pausing",
            WorkflowStatus::Paused => "paused",
            WorkflowStatus::Canceling => "canceling",
            WorkflowStatus::Canceled => "canceled",
            WorkflowStatus::Succeeded => "succeeded",
            WorkflowStatus::Failed => "failed",
        }
    }
}

/// Status of one task instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskStatus {
    /// Waiting for a delay or retry timer.
    Delayed,
    /// Its action (or items) running.
    Running,
    /// Succeeded.
    Succeeded,
    /// Failed.
    Failed,
    /// Canceled.
    Canceled,
    /// Held by a workflow pause (not active; runs on resume), or its action (a workflow)
    /// paused.
    Paused,
    /// Its action waits for a response (an inquiry, `core.ask`); not active.
    Pending,
}

impl TaskStatus {
    /// StackStorm's name of the status.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Delayed => "delayed",
            TaskStatus::Running => "running",
            TaskStatus::Succeeded => "succeeded",
            TaskStatus::Failed => "failed",
            TaskStatus::Canceled => "canceled",
            TaskStatus::Paused => "paused",
            TaskStatus::Pending => "pending",
        }
    }

    fn is_active(self) -> bool {
        matches!(self, TaskStatus::Delayed | TaskStatus::Running)
    }
}

/// How an action execution ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ActionStatus {
    /// Succeeded.
    Succeeded,
    /// Failed.
    Failed,
    /// Timed out (a failure for the workflow).
    Timeout,
    /// Canceled.
    Canceled,
}

/// Something that happened to the workflow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Event {
    /// The action execution of task instance `instance` (item `item`) ended.
    ActionCompleted {
        /// Task record index.
        instance: usize,
        /// Item index, for with-items tasks.
        item: Option<usize>,
        /// How it ended.
        status: ActionStatus,
        /// The execution result.
        result: Value,
    },
    /// The delay or retry timer of task instance `instance` fired.
    TimerFired {
        /// Task record index.
        instance: usize,
    },
    /// Pause requested.
    PauseRequested,
    /// Resume requested.
    ResumeRequested,
    /// Cancel requested.
    CancelRequested,
    /// The action execution of task instance `instance` went `pending` (an inquiry waits for
    /// its response): the task is pending and the workflow pauses (`pausing` while other
    /// tasks are active, then `paused`). Its completion (the response) resumes the workflow.
    ActionPending {
        /// Task record index.
        instance: usize,
    },
    /// The action execution of task instance `instance` (a nested workflow) paused: the task
    /// is paused; the workflow pauses once nothing else is active.
    ActionPaused {
        /// Task record index.
        instance: usize,
    },
    /// The workflow ran past its timeout: running tasks are canceled and the workflow ends
    /// (status canceled, [`WorkflowHeader::timed_out`] set).
    TimedOut,
}

/// Something the workflow service must do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Command {
    /// Run action `action` for task `task` (instance, item) with the rendered input.
    RunAction {
        /// Task name.
        task: String,
        /// Task record index.
        instance: usize,
        /// Item index, for with-items tasks.
        item: Option<usize>,
        /// Action ref.
        action: String,
        /// Rendered action input.
        input: Value,
    },
    /// Fire [`Event::TimerFired`] for `instance` in `delay` seconds.
    ScheduleTimer {
        /// Task name.
        task: String,
        /// Task record index.
        instance: usize,
        /// Seconds.
        delay: u64,
    },
    /// Cancel the running action executions of `instance` (cancel cascades to children).
    CancelTask {
        /// Task name.
        task: String,
        /// Task record index.
        instance: usize,
    },
    /// The workflow status changed (not final).
    Status(WorkflowStatus),
    /// An error was logged (also kept in [`WorkflowState::errors`]).
    Error(Value),
    /// The workflow ended: final status and StackStorm's result (`{"output": …}`, plus
    /// `errors` when there are any).
    Finished {
        /// Final status.
        status: WorkflowStatus,
        /// The execution result.
        result: Value,
    },
}

/// With-items progress of one task instance. The per-item lists (`values`, `results`,
/// `done`) are not serialised with the record: they are persisted as [`ItemChange`]s (see
/// [`Delta::items`]), so that the cost of an item event does not grow with the item count.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemsState {
    /// The item values (`item()`), rendered once when the task started.
    #[serde(skip)]
    pub values: Vec<Value>,
    /// Results by item (null until completed).
    #[serde(skip)]
    pub results: Vec<Value>,
    /// Items run at once at most (`None`: all).
    pub concurrency: Option<usize>,
    /// Next item to start.
    pub next: usize,
    /// Items running.
    pub active: usize,
    /// Items completed.
    pub completed: usize,
    /// Whether an item failed (no more items are started).
    pub failed: bool,
    /// Whether an item was canceled.
    pub canceled: bool,
    /// Which items completed (a completion reported twice is ignored).
    #[serde(skip)]
    pub done: Vec<bool>,
}

/// A change to the items of a with-items record, persisted apart from the record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum ItemChange {
    /// The items of record `instance` (try `retry`) were rendered.
    Values {
        /// Task record index.
        instance: usize,
        /// The record's `retry_tally` then.
        retry: u64,
        /// The item values.
        values: Vec<Value>,
    },
    /// The progress counters of record `instance` (try `retry`), as of the latest event that
    /// changed them (the record itself is not rewritten for an item event).
    Progress {
        /// Task record index.
        instance: usize,
        /// The record's `retry_tally` then.
        retry: u64,
        /// Next item to start.
        next: usize,
        /// Items running.
        active: usize,
        /// Items completed.
        completed: usize,
        /// Whether an item failed.
        failed: bool,
        /// Whether an item was canceled.
        canceled: bool,
    },
    /// Item `item` of record `instance` (try `retry`) completed with `result`.
    Done {
        /// Task record index.
        instance: usize,
        /// The record's `retry_tally` then.
        retry: u64,
        /// Item index.
        item: usize,
        /// The item's result.
        result: Value,
    },
}

impl ItemChange {
    /// The record the change belongs to and its try.
    pub fn record(&self) -> (usize, u64) {
        match self {
            ItemChange::Values {
                instance, retry, ..
            }
            | ItemChange::Progress {
                instance, retry, ..
            }
            | ItemChange::Done {
                instance, retry, ..
            } => (*instance, *retry),
        }
    }
}

/// One task instance, persisted on its own.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskRecord {
    /// Index of this record (the instance id in events and commands).
    pub instance: usize,
    /// Task name (or engine command).
    pub task: String,
    /// Route (branch); always 0 here.
    pub route: u32,
    /// Status.
    pub status: TaskStatus,
    /// The context the task started with.
    pub ctx: Map<String, Value>,
    /// The result, once completed (a list for with-items).
    pub result: Option<Value>,
    /// Retries allowed (evaluated when the task was staged).
    pub retry_count: u64,
    /// Seconds between retries.
    pub retry_delay: u64,
    /// Retries made.
    pub retry_tally: u64,
    /// With-items progress.
    pub items: Option<ItemsState>,
    /// Terminal: its context counts toward the workflow output.
    pub term: bool,
    /// Started after a `fail` command (runs although the workflow failed).
    pub run_on_fail: bool,
}

/// A join waiting for its inbound branches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Barrier {
    /// Inbound tasks arrived.
    pub arrived: BTreeSet<String>,
    /// Merged context of the arrivals.
    pub ctx: Map<String, Value>,
    /// Whether the join task was started.
    pub fired: bool,
}

/// Work inside one `apply`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Work {
    /// Create an instance of `task` with `ctx`.
    Stage {
        task: String,
        ctx: Map<String, Value>,
        run_on_fail: bool,
    },
    /// Run (or re-run) record `id`.
    Run(usize),
    /// Record `id` completed.
    Complete(usize, TaskStatus, Value),
}

/// The workflow-level part of the state: small, persisted with the records an event changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkflowHeader {
    /// Status.
    pub status: WorkflowStatus,
    /// The initial context (input and vars). Not serialised with the header (it can be as
    /// large as the input, and the header is written per event): persist it once, apart.
    #[serde(skip)]
    pub ctx: Map<String, Value>,
    /// Errors logged (Orquesta's `errors`: type, message, task_id, route, ...).
    pub errors: Vec<Value>,
    /// Join barriers by task name.
    pub barriers: BTreeMap<String, Barrier>,
    /// Work held while paused.
    held: Vec<Work>,
    /// Records with items left to start once resumed.
    items_waiting: BTreeSet<usize>,
    /// The output, once finished.
    pub output: Option<Value>,
    /// Whether [`Command::Finished`] was emitted.
    pub finished: bool,
    /// Whether the workflow ended because it ran past its timeout ([`Event::TimedOut`]).
    #[serde(default)]
    pub timed_out: bool,
}

/// The whole workflow state (besides the spec): the header and the task records, plus
/// indexes rebuilt from the records on restore (not persisted).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkflowState {
    /// Workflow-level fields.
    pub header: WorkflowHeader,
    /// Task instances in creation order.
    pub records: Vec<TaskRecord>,
    /// Latest status by task name (`task_status()`), rebuilt from the records.
    #[serde(skip)]
    pub statuses: BTreeMap<String, String>,
    /// Active records (delayed or running), rebuilt from the records.
    #[serde(skip)]
    pub active: usize,
}

impl WorkflowState {
    /// Lays persisted [`ItemChange`]s over `records` (those of another try of a record are
    /// skipped): the item values, then the completed items and their results.
    pub fn apply_items(records: &mut [TaskRecord], changes: Vec<ItemChange>) {
        let (values, rest): (Vec<ItemChange>, Vec<ItemChange>) = changes
            .into_iter()
            .partition(|c| matches!(c, ItemChange::Values { .. }));
        let (progress, done): (Vec<ItemChange>, Vec<ItemChange>) = rest
            .into_iter()
            .partition(|c| matches!(c, ItemChange::Progress { .. }));
        for change in values.into_iter().chain(done).chain(progress) {
            let (instance, retry) = change.record();
            let Some(r) = records.get_mut(instance).filter(|r| r.retry_tally == retry) else {
                continue;
            };
            let Some(items) = r.items.as_mut() else {
                continue;
            };
            match change {
                ItemChange::Values { values, .. } => {
                    let n = values.len();
                    items.values = values;
                    items.results = vec![Value::Null; n];
                    items.done = vec![false; n];
                }
                ItemChange::Progress {
                    next,
                    active,
                    completed,
                    failed,
                    canceled,
                    ..
                } => {
                    items.next = next;
                    items.active = active;
                    items.completed = completed;
                    items.failed = failed;
                    items.canceled = canceled;
                }
                ItemChange::Done { item, result, .. } => {
                    if let (Some(slot), Some(d)) =
                        (items.results.get_mut(item), items.done.get_mut(item))
                    {
                        *slot = result;
                        *d = true;
                    }
                }
            }
        }
    }

    /// Every item change that rebuilds the items of the records as they are now (to copy a
    /// state under a new workflow id).
    pub fn item_snapshot(&self) -> Vec<ItemChange> {
        let mut out = Vec::new();
        for r in &self.records {
            let Some(items) = &r.items else { continue };
            out.push(ItemChange::Values {
                instance: r.instance,
                retry: r.retry_tally,
                values: items.values.clone(),
            });
            out.push(ItemChange::Progress {
                instance: r.instance,
                retry: r.retry_tally,
                next: items.next,
                active: items.active,
                completed: items.completed,
                failed: items.failed,
                canceled: items.canceled,
            });
            for (i, done) in items.done.iter().enumerate() {
                if *done {
                    out.push(ItemChange::Done {
                        instance: r.instance,
                        retry: r.retry_tally,
                        item: i,
                        result: items.results.get(i).cloned().unwrap_or(Value::Null),
                    });
                }
            }
        }
        out
    }

    /// Reassembles a persisted state: the header and every task record.
    pub fn from_parts(header: WorkflowHeader, records: Vec<TaskRecord>) -> Self {
        let mut statuses = BTreeMap::new();
        for r in &records {
            statuses.insert(r.task.clone(), r.status.as_str().to_string());
        }
        let active = records.iter().filter(|r| r.status.is_active()).count();
        WorkflowState {
            header,
            records,
            statuses,
            active,
        }
    }
}

/// What to persist after an event: the header and the records it changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delta {
    /// The workflow-level fields.
    pub header: WorkflowHeader,
    /// The task records changed since the last delta.
    pub records: Vec<TaskRecord>,
    /// The item changes since the last delta (persisted apart from the records).
    #[serde(default)]
    pub items: Vec<ItemChange>,
}

/// A workflow: its spec and state.
pub struct Workflow {
    spec: Arc<WorkflowSpec>,
    kv: Option<Arc<dyn KvSource>>,
    /// The state (persist it through [`Workflow::take_dirty`]).
    pub state: WorkflowState,
    queue: VecDeque<Work>,
    dirty: BTreeSet<usize>,
    /// Records whose item progress changed (persisted as [`ItemChange::Progress`]).
    items_dirty: BTreeSet<usize>,
    item_changes: Vec<ItemChange>,
}

impl std::fmt::Debug for Workflow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workflow")
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

fn error_entry(e: &ExprError, task: Option<&str>, transition: Option<String>) -> Value {
    let mut entry = json!({"type": "error", "message": e.to_string()});
    if let Some(t) = task {
        entry["task_id"] = json!(t);
        entry["route"] = json!(0);
    }
    if let Some(tr) = transition {
        entry["task_transition_id"] = json!(tr);
    }
    entry
}

fn as_u64(v: &Value) -> Option<u64> {
    v.as_u64()
        .or_else(|| {
            v.as_f64()
                .filter(|f| *f >= 0.0 && f.fract() == 0.0)
                .map(|f| f as u64)
        })
        .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
}

impl Workflow {
    /// Starts a workflow: renders input defaults and vars, starts the start tasks.
    pub fn new(spec: Arc<WorkflowSpec>, input: &Map<String, Value>) -> (Workflow, Vec<Command>) {
        Workflow::with_kv(spec, input, None)
    }

    /// Like [`Workflow::new`], with the datastore for `st2kv()`.
    pub fn with_kv(
        spec: Arc<WorkflowSpec>,
        input: &Map<String, Value>,
        kv: Option<Arc<dyn KvSource>>,
    ) -> (Workflow, Vec<Command>) {
        let mut wf = Workflow {
            spec,
            kv,
            state: WorkflowState {
                header: WorkflowHeader {
                    status: WorkflowStatus::Running,
                    ctx: Map::new(),
                    errors: Vec::new(),
                    barriers: BTreeMap::new(),
                    held: Vec::new(),
                    items_waiting: BTreeSet::new(),
                    output: None,
                    finished: false,
                    timed_out: false,
                },
                records: Vec::new(),
                statuses: BTreeMap::new(),
                active: 0,
            },
            queue: VecDeque::new(),
            dirty: BTreeSet::new(),
            items_dirty: BTreeSet::new(),
            item_changes: Vec::new(),
        };
        let mut cmds = Vec::new();
        let spec = wf.spec.clone();
        let mut ctx = Map::new();
        let mut failed = false;
        for (name, default) in &spec.input {
            let value = match (input.get(name), default) {
                (Some(v), _) => Ok(v.clone()),
                (None, Some(d)) => expr::render(d, &wf.scope_for(&ctx, None, None)),
                (None, None) => Ok(Value::Null),
            };
            match value {
                Ok(v) => {
                    ctx.insert(name.clone(), v);
                }
                Err(e) => {
                    failed = true;
                    wf.log(error_entry(&e, None, None), &mut cmds);
                }
            }
        }
        for (name, v) in input {
            ctx.entry(name.clone()).or_insert_with(|| v.clone());
        }
        for (name, v) in &spec.vars {
            match expr::render(v, &wf.scope_for(&ctx, None, None)) {
                Ok(v) => {
                    ctx.insert(name.clone(), v);
                }
                Err(e) => {
                    failed = true;
                    wf.log(error_entry(&e, None, None), &mut cmds);
                }
            }
        }
        wf.state.header.ctx = ctx.clone();
        if failed {
            wf.state.header.status = WorkflowStatus::Failed;
        } else {
            for task in &spec.start {
                wf.queue.push_back(Work::Stage {
                    task: task.clone(),
                    ctx: ctx.clone(),
                    run_on_fail: false,
                });
            }
        }
        wf.drain(&mut cmds);
        (wf, cmds)
    }

    /// Rebuilds a workflow from its spec and persisted state (indexes are recomputed). Actions
    /// that were running complete through [`Workflow::apply`] as usual.
    pub fn restore(
        spec: Arc<WorkflowSpec>,
        state: WorkflowState,
        kv: Option<Arc<dyn KvSource>>,
    ) -> Self {
        Workflow {
            spec,
            kv,
            state: WorkflowState::from_parts(state.header, state.records),
            queue: VecDeque::new(),
            dirty: BTreeSet::new(),
            items_dirty: BTreeSet::new(),
            item_changes: Vec::new(),
        }
    }

    /// Indexes of the records changed since the last call (persist those).
    pub fn take_dirty(&mut self) -> BTreeSet<usize> {
        std::mem::take(&mut self.dirty)
    }

    /// What to persist now: the header (without its initial context, which does not change
    /// after the start), the records and the item changes since the last call.
    pub fn delta(&mut self) -> Delta {
        let dirty = self.take_dirty();
        let mut items = std::mem::take(&mut self.item_changes);
        for id in std::mem::take(&mut self.items_dirty) {
            let Some(r) = self.state.records.get(id) else {
                continue;
            };
            if let Some(s) = &r.items {
                items.push(ItemChange::Progress {
                    instance: id,
                    retry: r.retry_tally,
                    next: s.next,
                    active: s.active,
                    completed: s.completed,
                    failed: s.failed,
                    canceled: s.canceled,
                });
            }
        }
        // The initial context is persisted apart (see `WorkflowHeader::ctx`): not copied here.
        let ctx = std::mem::take(&mut self.state.header.ctx);
        let header = self.state.header.clone();
        self.state.header.ctx = ctx;
        Delta {
            header,
            records: dirty
                .into_iter()
                .filter_map(|i| self.state.records.get(i).cloned())
                .collect(),
            items,
        }
    }

    /// Applies one event.
    pub fn apply(&mut self, event: Event) -> Vec<Command> {
        let mut cmds = Vec::new();
        if self.state.header.finished {
            return cmds;
        }
        match event {
            Event::ActionCompleted {
                instance,
                item,
                status,
                result,
            } => self.action_completed(instance, item, status, result, &mut cmds),
            Event::TimerFired { instance } => {
                let delayed = self
                    .state
                    .records
                    .get(instance)
                    .is_some_and(|r| r.status == TaskStatus::Delayed);
                if delayed {
                    self.queue.push_back(Work::Run(instance));
                }
            }
            Event::PauseRequested => {
                if self.state.header.status == WorkflowStatus::Running {
                    self.set_status(WorkflowStatus::Pausing, &mut cmds);
                }
            }
            Event::ResumeRequested => self.resume(&mut cmds),
            Event::CancelRequested => self.cancel(&mut cmds),
            Event::TimedOut => {
                if !self.state.header.finished {
                    self.state.header.timed_out = true;
                    self.cancel(&mut cmds);
                }
            }
            Event::ActionPending { instance } => {
                self.action_suspended(instance, TaskStatus::Pending, &mut cmds);
            }
            Event::ActionPaused { instance } => {
                self.action_suspended(instance, TaskStatus::Paused, &mut cmds);
            }
        }
        self.drain(&mut cmds);
        cmds
    }
}
