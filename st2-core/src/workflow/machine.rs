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
//!
//! (¹) an unsatisfied join left behind fails the workflow (`UnreachableJoinError`); an error
//! rendering the output too. (²) failing is immediate; tasks already running complete (their
//! transitions are not followed, except tasks routed next to a `fail` command), then
//! [`Command::Finished`] is emitted. (³) "…ing" while tasks are active, "…ed" when none are.
//!
//! Task status: `delayed` (waiting for a delay or retry timer) → `running` → `succeeded` |
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

use super::expr::{self, ExprError, KvSource, Scope, TaskView};
use super::spec::{Join, WorkflowSpec};

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

/// With-items progress of one task instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemsState {
    /// The item values (`item()`), rendered once when the task started.
    pub values: Vec<Value>,
    /// Results by item (null until completed).
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

/// The persisted workflow state (besides the spec).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkflowState {
    /// Status.
    pub status: WorkflowStatus,
    /// The initial context (input and vars).
    pub ctx: Map<String, Value>,
    /// Task instances in creation order.
    pub records: Vec<TaskRecord>,
    /// Errors logged (Orquesta's `errors`: type, message, task_id, route, ...).
    pub errors: Vec<Value>,
    /// Join barriers by task name.
    pub barriers: BTreeMap<String, Barrier>,
    /// Latest status by task name (`task_status()`).
    pub statuses: BTreeMap<String, String>,
    /// Work held while paused.
    held: Vec<Work>,
    /// Records with items left to start once resumed.
    items_waiting: BTreeSet<usize>,
    /// Active records (delayed or running).
    pub active: usize,
    /// The output, once finished.
    pub output: Option<Value>,
    /// Whether [`Command::Finished`] was emitted.
    pub finished: bool,
}

/// A workflow: its spec and state.
pub struct Workflow {
    spec: Arc<WorkflowSpec>,
    kv: Option<Arc<dyn KvSource>>,
    /// The state (persist it through [`Workflow::take_dirty`]).
    pub state: WorkflowState,
    queue: VecDeque<Work>,
    dirty: BTreeSet<usize>,
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
                status: WorkflowStatus::Running,
                ctx: Map::new(),
                records: Vec::new(),
                errors: Vec::new(),
                barriers: BTreeMap::new(),
                statuses: BTreeMap::new(),
                held: Vec::new(),
                items_waiting: BTreeSet::new(),
                active: 0,
                output: None,
                finished: false,
            },
            queue: VecDeque::new(),
            dirty: BTreeSet::new(),
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
        wf.state.ctx = ctx.clone();
        if failed {
            wf.state.status = WorkflowStatus::Failed;
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

    /// Rebuilds a workflow from its spec and persisted state.
    pub fn restore(
        spec: Arc<WorkflowSpec>,
        state: WorkflowState,
        kv: Option<Arc<dyn KvSource>>,
    ) -> Self {
        Workflow {
            spec,
            kv,
            state,
            queue: VecDeque::new(),
            dirty: BTreeSet::new(),
        }
    }

    /// Indexes of the records changed since the last call (persist those).
    pub fn take_dirty(&mut self) -> BTreeSet<usize> {
        std::mem::take(&mut self.dirty)
    }

    /// Applies one event.
    pub fn apply(&mut self, event: Event) -> Vec<Command> {
        let mut cmds = Vec::new();
        if self.state.finished {
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
                if self.state.status == WorkflowStatus::Running {
                    self.set_status(WorkflowStatus::Pausing, &mut cmds);
                }
            }
            Event::ResumeRequested => {
                if matches!(
                    self.state.status,
                    WorkflowStatus::Paused | WorkflowStatus::Pausing
                ) {
                    self.set_status(WorkflowStatus::Running, &mut cmds);
                    self.queue.extend(std::mem::take(&mut self.state.held));
                    for id in std::mem::take(&mut self.state.items_waiting) {
                        self.start_items(id, &mut cmds);
                    }
                }
            }
            Event::CancelRequested => {
                if !matches!(
                    self.state.status,
                    WorkflowStatus::Canceled | WorkflowStatus::Succeeded | WorkflowStatus::Failed
                ) {
                    self.set_status(WorkflowStatus::Canceling, &mut cmds);
                    self.state.held.clear();
                    self.state.items_waiting.clear();
                    for id in 0..self.state.records.len() {
                        let r = &self.state.records[id];
                        match r.status {
                            TaskStatus::Running => cmds.push(Command::CancelTask {
                                task: r.task.clone(),
                                instance: id,
                            }),
                            TaskStatus::Delayed => {
                                self.queue.push_back(Work::Complete(
                                    id,
                                    TaskStatus::Canceled,
                                    Value::Null,
                                ));
                            }
                            _ => {}
                        }
                    }
                }
            }
        }
        self.drain(&mut cmds);
        cmds
    }

    fn scope_for<'a>(
        &'a self,
        vars: &'a Map<String, Value>,
        task: Option<TaskView<'a>>,
        item: Option<&'a Value>,
    ) -> Scope<'a> {
        Scope {
            vars,
            task,
            item,
            statuses: &self.state.statuses,
            kv: self.kv.as_ref(),
        }
    }

    fn log(&mut self, entry: Value, cmds: &mut Vec<Command>) {
        self.state.errors.push(entry.clone());
        cmds.push(Command::Error(entry));
    }

    fn set_status(&mut self, status: WorkflowStatus, cmds: &mut Vec<Command>) {
        if self.state.status != status {
            self.state.status = status;
            if !matches!(
                status,
                WorkflowStatus::Succeeded | WorkflowStatus::Canceled | WorkflowStatus::Failed
            ) {
                cmds.push(Command::Status(status));
            }
        }
    }

    /// Fails the workflow (immediately; active tasks finish first before `Finished`).
    fn fail(&mut self, cmds: &mut Vec<Command>) {
        if !matches!(
            self.state.status,
            WorkflowStatus::Canceling | WorkflowStatus::Canceled
        ) {
            self.set_status(WorkflowStatus::Failed, cmds);
        }
    }

    fn set_record_status(&mut self, id: usize, status: TaskStatus) {
        let r = &mut self.state.records[id];
        let was_active = r.status.is_active();
        r.status = status;
        match (was_active, status.is_active()) {
            (false, true) => self.state.active += 1,
            (true, false) => self.state.active -= 1,
            _ => {}
        }
        self.state
            .statuses
            .insert(r.task.clone(), status.as_str().to_string());
        self.dirty.insert(id);
    }

    fn drain(&mut self, cmds: &mut Vec<Command>) {
        while let Some(work) = self.queue.pop_front() {
            match work {
                Work::Stage {
                    task,
                    ctx,
                    run_on_fail,
                } => self.stage(task, ctx, run_on_fail, cmds),
                Work::Run(id) => self.run(id, cmds),
                Work::Complete(id, status, result) => self.complete(id, status, result, cmds),
            }
        }
        self.settle(cmds);
    }

    /// May new work start now? Holds it when paused.
    fn may_start(&mut self, work: &Work, run_on_fail: bool) -> bool {
        match self.state.status {
            WorkflowStatus::Running => true,
            WorkflowStatus::Pausing | WorkflowStatus::Paused => {
                self.state.held.push(work.clone());
                false
            }
            WorkflowStatus::Failed => run_on_fail,
            _ => false,
        }
    }

    fn stage(
        &mut self,
        task: String,
        ctx: Map<String, Value>,
        run_on_fail: bool,
        cmds: &mut Vec<Command>,
    ) {
        let work = Work::Stage {
            task: task.clone(),
            ctx,
            run_on_fail,
        };
        if !self.may_start(&work, run_on_fail) {
            return;
        }
        let Work::Stage { ctx, .. } = work else {
            unreachable!("built above")
        };
        let spec = self.spec.clone();
        let Some(task_spec) = spec.task(&task) else {
            return;
        };
        let id = self.state.records.len();
        self.state.records.push(TaskRecord {
            instance: id,
            task: task.clone(),
            route: 0,
            status: TaskStatus::Succeeded,
            ctx,
            result: None,
            retry_count: 0,
            retry_delay: 0,
            retry_tally: 0,
            items: None,
            term: task_spec.next.is_empty(),
            run_on_fail,
        });
        self.set_record_status(id, TaskStatus::Delayed);
        // Retry count and delay, and the task delay, are evaluated in the task's context.
        let evaluated = (|| -> Result<(u64, u64, u64), ExprError> {
            let r = &self.state.records[id];
            let scope = self.scope_for(&r.ctx, None, None);
            let number = |v: &Option<Value>, field: &str| -> Result<u64, ExprError> {
                match v {
                    None => Ok(0),
                    Some(v) => {
                        let n = expr::render(v, &scope)?;
                        as_u64(&n).ok_or_else(|| ExprError {
                            kind: "ValueError",
                            message: format!("The {field} for task \"{task}\" is not an integer."),
                        })
                    }
                }
            };
            let (count, retry_delay) = match &task_spec.retry {
                Some(r) => (
                    number(&Some(r.count.clone()), "retry count")?,
                    number(&r.delay, "retry delay")?,
                ),
                None => (0, 0),
            };
            Ok((count, retry_delay, number(&task_spec.delay, "delay")?))
        })();
        match evaluated {
            Ok((count, retry_delay, delay)) => {
                let r = &mut self.state.records[id];
                r.retry_count = count;
                r.retry_delay = retry_delay;
                if delay > 0 {
                    cmds.push(Command::ScheduleTimer {
                        task,
                        instance: id,
                        delay,
                    });
                } else {
                    self.queue.push_back(Work::Run(id));
                }
            }
            Err(e) => self.task_error(id, &e, cmds),
        }
    }

    /// An expression error in a task: logged, the task and the workflow fail.
    fn task_error(&mut self, id: usize, e: &ExprError, cmds: &mut Vec<Command>) {
        let task = self.state.records[id].task.clone();
        self.log(error_entry(e, Some(&task), None), cmds);
        self.set_record_status(id, TaskStatus::Failed);
        self.state.records[id].result = Some(Value::Null);
        self.fail(cmds);
    }

    fn run(&mut self, id: usize, cmds: &mut Vec<Command>) {
        let run_on_fail = self.state.records[id].run_on_fail;
        if !self.may_start(&Work::Run(id), run_on_fail) {
            return;
        }
        let spec = self.spec.clone();
        let task = self.state.records[id].task.clone();
        let Some(task_spec) = spec.task(&task) else {
            return;
        };
        self.set_record_status(id, TaskStatus::Running);
        if let Some(with) = &task_spec.with {
            let r = &self.state.records[id];
            let scope = self.scope_for(&r.ctx, None, None);
            let items = expr::evaluate(&with.items, &scope).and_then(|items| {
                let concurrency = match &with.concurrency {
                    None => None,
                    Some(c) => Some(as_u64(&expr::render(c, &scope)?).ok_or_else(|| ExprError {
                        kind: "ValueError",
                        message: format!("The concurrency of task \"{task}\" is not an integer."),
                    })? as usize),
                };
                match items {
                    Value::Array(list) => Ok((list, concurrency)),
                    other => Err(ExprError {
                        kind: "TypeError",
                        message: format!(
                            "The value of \"{}\" is not type of list: {other}",
                            with.items
                        ),
                    }),
                }
            });
            match items {
                Ok((list, concurrency)) => {
                    let values: Vec<Value> = list
                        .into_iter()
                        .map(|v| match with.vars.as_slice() {
                            [] => v,
                            [one] => json!({ one.as_str(): v }),
                            names => {
                                let parts = v.as_array().cloned().unwrap_or_else(|| vec![v]);
                                Value::Object(
                                    names
                                        .iter()
                                        .cloned()
                                        .zip(
                                            parts.into_iter().chain(std::iter::repeat(Value::Null)),
                                        )
                                        .collect(),
                                )
                            }
                        })
                        .collect();
                    let n = values.len();
                    self.state.records[id].items = Some(ItemsState {
                        values,
                        results: vec![Value::Null; n],
                        concurrency: concurrency.filter(|c| *c > 0),
                        next: 0,
                        active: 0,
                        completed: 0,
                        failed: false,
                        canceled: false,
                    });
                    if n == 0 {
                        self.queue
                            .push_back(Work::Complete(id, TaskStatus::Succeeded, json!([])));
                    } else {
                        self.start_items(id, cmds);
                    }
                }
                Err(e) => self.task_error(id, &e, cmds),
            }
            return;
        }
        let Some(action) = task_spec.action.clone() else {
            self.queue
                .push_back(Work::Complete(id, TaskStatus::Succeeded, Value::Null));
            return;
        };
        match self.render_input(id, None) {
            Ok(input) => cmds.push(Command::RunAction {
                task,
                instance: id,
                item: None,
                action,
                input,
            }),
            Err(e) => self.task_error(id, &e, cmds),
        }
    }

    fn render_input(&self, id: usize, item: Option<usize>) -> Result<Value, ExprError> {
        let r = &self.state.records[id];
        let Some(input) = self.spec.task(&r.task).and_then(|t| t.input.as_ref()) else {
            return Ok(json!({}));
        };
        let item = item.and_then(|i| r.items.as_ref().map(|s| &s.values[i]));
        let view = TaskView {
            id: &r.task,
            route: r.route,
            status: None,
            result: None,
        };
        expr::render(input, &self.scope_for(&r.ctx, Some(view), item))
    }

    /// Starts items of record `id` up to its concurrency.
    fn start_items(&mut self, id: usize, cmds: &mut Vec<Command>) {
        let spec = self.spec.clone();
        loop {
            let r = &self.state.records[id];
            let Some(items) = &r.items else { return };
            let full = items.concurrency.is_some_and(|c| items.active >= c);
            if items.failed || items.canceled || full || items.next >= items.values.len() {
                return;
            }
            if self.state.status != WorkflowStatus::Running {
                if matches!(
                    self.state.status,
                    WorkflowStatus::Pausing | WorkflowStatus::Paused
                ) {
                    self.state.items_waiting.insert(id);
                }
                return;
            }
            let i = items.next;
            let task = r.task.clone();
            match self.render_input(id, Some(i)) {
                Ok(input) => {
                    let action = spec.task(&task).and_then(|t| t.action.clone());
                    let items = self.state.records[id]
                        .items
                        .as_mut()
                        .expect("checked above");
                    items.next += 1;
                    items.active += 1;
                    self.dirty.insert(id);
                    match action {
                        Some(action) => cmds.push(Command::RunAction {
                            task,
                            instance: id,
                            item: Some(i),
                            action,
                            input,
                        }),
                        None => self.queue.push_back(Work::Complete(
                            id,
                            TaskStatus::Succeeded,
                            Value::Null,
                        )),
                    }
                }
                Err(e) => {
                    self.task_error(id, &e, cmds);
                    return;
                }
            }
        }
    }

    fn action_completed(
        &mut self,
        id: usize,
        item: Option<usize>,
        status: ActionStatus,
        result: Value,
        cmds: &mut Vec<Command>,
    ) {
        let Some(r) = self.state.records.get_mut(id) else {
            return;
        };
        if r.status != TaskStatus::Running {
            return;
        }
        let task_status = match status {
            ActionStatus::Succeeded => TaskStatus::Succeeded,
            ActionStatus::Failed | ActionStatus::Timeout => TaskStatus::Failed,
            ActionStatus::Canceled => TaskStatus::Canceled,
        };
        match (&mut r.items, item) {
            (Some(items), Some(i)) if i < items.values.len() => {
                items.results[i] = result;
                items.active = items.active.saturating_sub(1);
                items.completed += 1;
                items.failed |= task_status == TaskStatus::Failed;
                items.canceled |= task_status == TaskStatus::Canceled;
                self.dirty.insert(id);
                let all_done = items.completed == items.values.len();
                let stopped = (items.failed || items.canceled) && items.active == 0;
                if all_done || stopped {
                    let status = if items.canceled {
                        TaskStatus::Canceled
                    } else if items.failed {
                        TaskStatus::Failed
                    } else {
                        TaskStatus::Succeeded
                    };
                    let results = Value::Array(items.results.clone());
                    self.queue.push_back(Work::Complete(id, status, results));
                } else {
                    self.start_items(id, cmds);
                }
            }
            (None, None) => self
                .queue
                .push_back(Work::Complete(id, task_status, result)),
            _ => {}
        }
    }

    fn view<'a>(&self, r: &'a TaskRecord) -> TaskView<'a> {
        TaskView {
            id: &r.task,
            route: r.route,
            status: Some(r.status.as_str()),
            result: r.result.as_ref(),
        }
    }

    fn complete(&mut self, id: usize, status: TaskStatus, result: Value, cmds: &mut Vec<Command>) {
        if !self.state.records[id].status.is_active() {
            return;
        }
        let spec = self.spec.clone();
        let task = self.state.records[id].task.clone();
        let Some(task_spec) = spec.task(&task) else {
            return;
        };
        if status == TaskStatus::Failed {
            let entry = json!({
                "type": "error",
                "message": "Execution failed. See result for details.",
                "task_id": task,
                "result": result,
            });
            self.log(entry, cmds);
        }
        self.state.records[id].result = Some(result);
        self.set_record_status(id, status);
        let r = &self.state.records[id];

        // Retry: the same record runs again.
        let workflow_active = matches!(
            self.state.status,
            WorkflowStatus::Running | WorkflowStatus::Pausing
        );
        if let (Some(retry), true) = (&task_spec.retry, workflow_active) {
            if status != TaskStatus::Canceled && r.retry_tally < r.retry_count {
                let retry_now = match &retry.when {
                    None => Ok(status == TaskStatus::Failed),
                    Some(when) => {
                        let scope = self.scope_for(&r.ctx, Some(self.view(r)), None);
                        expr::evaluate(when, &scope).map(|v| expr::truthy(&v))
                    }
                };
                match retry_now {
                    Ok(true) => {
                        let delay = r.retry_delay;
                        let rec = &mut self.state.records[id];
                        rec.retry_tally += 1;
                        rec.items = None;
                        rec.result = None;
                        self.set_record_status(id, TaskStatus::Delayed);
                        if delay > 0 {
                            cmds.push(Command::ScheduleTimer {
                                task,
                                instance: id,
                                delay,
                            });
                        } else {
                            self.queue.push_back(Work::Run(id));
                        }
                        return;
                    }
                    Ok(false) => {}
                    Err(e) => {
                        let tr = Some(format!("{task}__retry"));
                        self.log(error_entry(&e, Some(&task), tr), cmds);
                        self.fail(cmds);
                        return;
                    }
                }
            }
        }
        if status == TaskStatus::Canceled {
            if matches!(
                self.state.status,
                WorkflowStatus::Running | WorkflowStatus::Pausing
            ) {
                self.set_status(WorkflowStatus::Canceling, cmds);
            }
            return;
        }
        let follows = match self.state.status {
            WorkflowStatus::Running | WorkflowStatus::Pausing | WorkflowStatus::Paused => true,
            WorkflowStatus::Failed => r.run_on_fail,
            _ => false,
        };
        if !follows {
            return;
        }

        let mut remediated = false;
        let mut manual_fail = false;
        let mut next_work = Vec::new();
        let mut engine = Vec::new();
        for (i, tr) in task_spec.next.iter().enumerate() {
            let r = &self.state.records[id];
            let first = tr.next.first().map_or("continue", String::as_str);
            let transition_id = format!("{first}__t{i}");
            let taken = match &tr.when {
                None => Ok(true),
                Some(when) => {
                    let scope = self.scope_for(&r.ctx, Some(self.view(r)), None);
                    expr::evaluate(when, &scope).map(|v| expr::truthy(&v))
                }
            };
            let taken = match taken {
                Ok(t) => t,
                Err(e) => {
                    self.log(error_entry(&e, Some(&task), Some(transition_id)), cmds);
                    self.fail(cmds);
                    continue;
                }
            };
            if !taken {
                continue;
            }
            let mut out = r.ctx.clone();
            let mut publish_error = None;
            for (name, value) in &tr.publish {
                let scope = self.scope_for(&out, Some(self.view(r)), None);
                match expr::render(value, &scope) {
                    Ok(v) => {
                        out.insert(name.clone(), v);
                    }
                    Err(e) => {
                        publish_error = Some(e);
                        break;
                    }
                }
            }
            if let Some(e) = publish_error {
                self.log(error_entry(&e, Some(&task), Some(transition_id)), cmds);
                self.fail(cmds);
                continue;
            }
            let targets: Vec<&str> = if tr.next.is_empty() {
                vec!["continue"]
            } else {
                tr.next.iter().map(String::as_str).collect()
            };
            for target in targets {
                match target {
                    "continue" => engine.push(("continue", out.clone(), TaskStatus::Succeeded)),
                    "noop" => {
                        remediated = true;
                        engine.push(("noop", out.clone(), TaskStatus::Succeeded));
                    }
                    "fail" => {
                        remediated = true;
                        manual_fail = true;
                        engine.push(("fail", out.clone(), TaskStatus::Failed));
                    }
                    "retry" => {
                        remediated = true;
                        next_work.push((task.clone(), out.clone()));
                    }
                    other => {
                        remediated = true;
                        self.route_to(other, out.clone(), &task, &mut next_work);
                    }
                }
            }
        }
        for (name, ctx, status) in engine {
            let id = self.state.records.len();
            self.state.records.push(TaskRecord {
                instance: id,
                task: name.to_string(),
                route: 0,
                status,
                ctx,
                result: None,
                retry_count: 0,
                retry_delay: 0,
                retry_tally: 0,
                items: None,
                term: true,
                run_on_fail: false,
            });
            self.dirty.insert(id);
        }
        if manual_fail || (status == TaskStatus::Failed && !remediated) {
            self.fail(cmds);
        }
        for (task, ctx) in next_work {
            self.queue.push_back(Work::Stage {
                task,
                ctx,
                run_on_fail: manual_fail,
            });
        }
    }

    /// Routes a transition from `from` to `target`: a new instance, or an arrival at a join.
    fn route_to(
        &mut self,
        target: &str,
        ctx: Map<String, Value>,
        from: &str,
        next: &mut Vec<(String, Map<String, Value>)>,
    ) {
        let Some(join) = self.spec.task(target).and_then(|t| t.join) else {
            next.push((target.to_string(), ctx));
            return;
        };
        let required = match join {
            Join::All => self.spec.inbound.get(target).map_or(1, BTreeSet::len),
            Join::Count(n) => n.max(1),
        };
        let barrier = self
            .state
            .barriers
            .entry(target.to_string())
            .or_insert_with(|| Barrier {
                arrived: BTreeSet::new(),
                ctx: Map::new(),
                fired: false,
            });
        if barrier.fired {
            if !barrier.arrived.contains(from) {
                barrier.arrived.insert(from.to_string());
                return;
            }
            // A new round (the join is inside a cycle).
            *barrier = Barrier {
                arrived: BTreeSet::new(),
                ctx: Map::new(),
                fired: false,
            };
        }
        barrier.arrived.insert(from.to_string());
        for (k, v) in ctx {
            barrier.ctx.insert(k, v);
        }
        if barrier.arrived.len() >= required {
            barrier.fired = true;
            next.push((target.to_string(), barrier.ctx.clone()));
        }
    }

    /// After the queue drained: status changes when nothing is active, and the end.
    fn settle(&mut self, cmds: &mut Vec<Command>) {
        if self.state.finished || self.state.active > 0 {
            return;
        }
        match self.state.status {
            WorkflowStatus::Running => {
                let unreachable: Vec<String> = self
                    .state
                    .barriers
                    .iter()
                    .filter(|(_, b)| !b.fired && !b.arrived.is_empty())
                    .map(|(name, _)| name.clone())
                    .collect();
                for name in unreachable {
                    let e = ExprError {
                        kind: "UnreachableJoinError",
                        message: format!(
                            "The join task \"{name}\" is unreachable: its inbound criteria cannot be satisfied."
                        ),
                    };
                    self.log(error_entry(&e, Some(&name), None), cmds);
                    self.state.status = WorkflowStatus::Failed;
                }
                if self.state.status == WorkflowStatus::Running {
                    self.state.status = WorkflowStatus::Succeeded;
                }
                self.finish(cmds);
            }
            WorkflowStatus::Pausing => self.set_status(WorkflowStatus::Paused, cmds),
            WorkflowStatus::Canceling => {
                self.state.status = WorkflowStatus::Canceled;
                self.finish(cmds);
            }
            WorkflowStatus::Failed => self.finish(cmds),
            _ => {}
        }
    }

    /// Renders the output against the terminal context and emits [`Command::Finished`].
    fn finish(&mut self, cmds: &mut Vec<Command>) {
        if let Some(last) = self
            .state
            .records
            .iter_mut()
            .rev()
            .find(|r| !r.status.is_active())
        {
            last.term = true;
            self.dirty.insert(last.instance);
        }
        let mut ctx = Map::new();
        let mut terminal = self.state.records.iter().filter(|r| r.term).peekable();
        if terminal.peek().is_none() {
            ctx = self.state.ctx.clone();
        }
        for r in terminal {
            for (k, v) in &r.ctx {
                ctx.insert(k.clone(), v.clone());
            }
        }
        let spec = self.spec.clone();
        let mut output = Map::new();
        let mut errors = Vec::new();
        for (name, value) in &spec.output {
            match expr::render(value, &self.scope_for(&ctx, None, None)) {
                Ok(v) => {
                    output.insert(name.clone(), v);
                }
                Err(e) => errors.push(error_entry(&e, None, None)),
            }
        }
        let had_errors = !errors.is_empty();
        for e in errors {
            self.log(e, cmds);
        }
        if had_errors && self.state.status == WorkflowStatus::Succeeded {
            self.state.status = WorkflowStatus::Failed;
        }
        let output = (!output.is_empty()).then_some(Value::Object(output));
        let mut result = json!({ "output": output });
        if self.state.status == WorkflowStatus::Failed {
            result["errors"] = Value::Array(self.state.errors.clone());
        }
        self.state.output = output;
        self.state.finished = true;
        cmds.push(Command::Finished {
            status: self.state.status,
            result,
        });
    }
}
