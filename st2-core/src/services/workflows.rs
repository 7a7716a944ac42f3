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
//!   completed statuses of `st2.liveaction.status`) and control requests (`canceling`,
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

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, LazyLock, Mutex};

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::executions::{self, ExecutionRequest};
use super::{dispatch::Handoff, now_iso, Ctx, ServiceError};
use crate::bus::{names, Delivery, SubscribeSpec, Subscription};
use crate::model::{Execution, ExecutionStatus, JsonMap};
use crate::store::{repo, Collection, Query, StoreError, Write};
use crate::template::{Decrypter, KvLookup, KvScope};
use crate::workflow::expr::KvSource;
use crate::workflow::machine::{
    ActionStatus, Command, Event, TaskRecord, TaskStatus, Workflow, WorkflowHeader, WorkflowState,
    WorkflowStatus,
};
use crate::workflow::spec::WorkflowSpec;

/// The runner type whose executions this service runs.
pub const RUNNER: &str = "orquesta";

/// The work queue of control requests (cancel, pause, resume) of workflow executions.
pub const CONTROL_QUEUE: &str = "st2.workflow.control";

/// Status routing keys of completed executions.
const COMPLETED_STATUSES: [&str; 5] = ["succeeded", "failed", "timeout", "canceled", "abandoned"];

/// Status routing keys of control requests.
const CONTROL_STATUSES: [&str; 3] = ["canceling", "pausing", "resuming"];

/// Deliveries handled at once (also the queues' prefetch).
pub const CONCURRENCY: usize = 32;

/// Compare-and-set attempts before an event is given back to the queue.
const COMMIT_ATTEMPTS: usize = 20;

/// Statuses a workflow's parent execution has while the workflow is not finished.
const LIVE_PARENT: [ExecutionStatus; 5] = [
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

/// A workflow in memory, valid while the stored `version` equals its own.
struct Live {
    version: u64,
    wf: Workflow,
    doc: WorkflowDoc,
}

type Slot = Arc<tokio::sync::Mutex<Option<Live>>>;

/// Per-workflow locks (and cached state) of this process.
static LOCKS: LazyLock<Mutex<HashMap<String, Slot>>> = LazyLock::new(Default::default);

fn slot(wf_id: &str) -> Slot {
    LOCKS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .entry(wf_id.to_string())
        .or_default()
        .clone()
}

fn forget(wf_id: &str) {
    LOCKS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(wf_id);
}

/// `st2kv(key, decrypt)` over the platform's datastore lookup.
struct WorkflowKv {
    kv: Arc<dyn KvLookup>,
    decrypter: Option<Arc<dyn Decrypter>>,
    user: String,
}

impl KvSource for WorkflowKv {
    fn get(&self, key: &str, decrypt: bool) -> Result<Option<Value>, String> {
        let (scope, name) = match key.split_once('.') {
            Some(("system", rest)) => (KvScope::System, rest),
            Some(("user", rest)) => (KvScope::User, rest),
            _ => (KvScope::System, key),
        };
        let Some(v) = self.kv.get(scope, Some(&self.user), name) else {
            return Ok(None);
        };
        if decrypt && v.encrypted {
            let d = self
                .decrypter
                .as_ref()
                .ok_or_else(|| format!("cannot decrypt \"{key}\": no key configured"))?;
            return d.decrypt(&v.value).map(|s| Some(Value::String(s)));
        }
        Ok(Some(Value::String(v.value)))
    }
}

fn kv_for(ctx: &Ctx, user: &str) -> Option<Arc<dyn KvSource>> {
    ctx.kv.clone().map(|kv| {
        Arc::new(WorkflowKv {
            kv,
            decrypter: ctx.decrypter.clone(),
            user: user.to_string(),
        }) as Arc<dyn KvSource>
    })
}

fn decode<T: serde::de::DeserializeOwned>(c: Collection, v: Value) -> Result<T, ServiceError> {
    serde_json::from_value(v).map_err(|source| {
        ServiceError::Store(StoreError::Decode {
            collection: c,
            source,
        })
    })
}

fn encode<T: Serialize>(c: Collection, v: &T) -> Result<Value, ServiceError> {
    serde_json::to_value(v).map_err(|e| {
        ServiceError::Store(StoreError::InvalidDocument {
            collection: c,
            reason: e.to_string(),
        })
    })
}

fn epoch_ms() -> i64 {
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

/// Fails execution `exec` (still running) with StackStorm's workflow result shape.
async fn fail_start(ctx: &Ctx, exec: &Execution, errors: Vec<Value>) -> Result<(), ServiceError> {
    tracing::info!(execution = %exec.id, "workflow failed to start");
    let mut patch = JsonMap::new();
    patch.insert("result".into(), json!({"errors": errors, "output": null}));
    executions::transition(ctx, &exec.id, &LIVE_PARENT, ExecutionStatus::Failed, patch).await?;
    Ok(())
}

fn content_error(message: impl Into<String>) -> Value {
    json!({"type": "content", "message": message.into()})
}

/// Starts the workflow of `exec` (an execution of an `orquesta` action the action runner has
/// just claimed, status `running`). A second call for the same execution does nothing.
pub async fn start(ctx: &Ctx, exec: &Execution) -> Result<(), ServiceError> {
    if find_by_execution(ctx, &exec.id).await?.is_some() {
        return Ok(());
    }
    let action_ref = exec
        .action
        .get("ref")
        .and_then(Value::as_str)
        .unwrap_or(&exec.liveaction.action)
        .to_string();
    let loaded = match ctx.catalog.action(&*ctx.store, &action_ref).await {
        Ok(l) => l,
        Err(e) => return fail_start(ctx, exec, vec![content_error(e.to_string())]).await,
    };
    let (action, runner) = (loaded.action.clone(), loaded.runner.clone());
    let Some(pack_dir) = ctx.paths.find_pack(&action.pack) else {
        let msg = format!("pack \"{}\" is not installed", action.pack);
        return fail_start(ctx, exec, vec![content_error(msg)]).await;
    };
    let path = pack_dir.join("actions").join(&action.entry_point);
    let text = match tokio::fs::read_to_string(&path).await {
        Ok(t) => t,
        Err(e) => {
            let msg = format!(
                "cannot read the workflow definition \"{}\": {e}",
                action.entry_point
            );
            return fail_start(ctx, exec, vec![content_error(msg)]).await;
        }
    };
    let spec = match WorkflowSpec::parse(&text) {
        Ok(s) => Arc::new(s),
        Err(errors) => {
            let errors = errors
                .iter()
                .map(|e| {
                    let mut v = content_error(e.to_string());
                    v["schema_path"] = json!(e.field);
                    if let Some(t) = &e.task {
                        v["task_id"] = json!(t);
                    }
                    v
                })
                .collect();
            return fail_start(ctx, exec, errors).await;
        }
    };
    let config = executions::pack_config(ctx, &action.pack).await?;
    let input = (|| -> Result<JsonMap, ServiceError> {
        let r = executions::renderer(ctx, &action, &runner, &exec.context, config)?;
        let params = r.render_final(&executions::open_secrets(ctx, &exec.parameters)?)?;
        Ok(r.split(&params).1)
    })();
    let input = match input {
        Ok(i) => i,
        Err(e) => return fail_start(ctx, exec, vec![content_error(e.to_string())]).await,
    };
    let user = exec
        .context
        .get("user")
        .and_then(Value::as_str)
        .unwrap_or(super::context::SYSTEM_USER)
        .to_string();
    let (mut wf, cmds) = Workflow::with_kv(spec, &input, kv_for(ctx, &user));
    let delta = wf.delta();
    let mut doc = WorkflowDoc {
        id: crate::model::new_id(),
        action_execution: exec.id.clone(),
        status: delta.header.status.as_str().to_string(),
        version: 0,
        spec: text,
        user,
        trace_context: exec.context.get("trace_context").cloned(),
        state: delta.header,
        pending: Vec::new(),
        records: wf.state.records.len(),
        timers: BTreeMap::new(),
        result: None,
        start_timestamp: now_iso(),
        end_timestamp: None,
        closed: false,
    };
    note_commands(&mut doc, &wf, &cmds);
    let mut writes = vec![Write::Put {
        collection: Collection::WorkflowExecutions,
        doc: encode(Collection::WorkflowExecutions, &doc)?,
    }];
    for r in &wf.state.records {
        writes.push(Write::Put {
            collection: Collection::TaskExecutions,
            doc: encode(Collection::TaskExecutions, &TaskDoc::of(&doc.id, r))?,
        });
    }
    ctx.store.apply(writes).await?;
    link_parent(ctx, &exec.id, &doc.id).await?;
    tracing::info!(execution = %exec.id, workflow = %doc.id, "workflow started");
    let wf_id = doc.id.clone();
    let s = slot(&wf_id);
    let mut guard = s.lock().await;
    *guard = Some(Live {
        version: 0,
        wf,
        doc,
    });
    let events = carry_out(ctx, &mut guard, cmds).await?;
    drain(ctx, &wf_id, &mut guard, events).await
}

/// Records the workflow run in the parent's `context.workflow_execution` (as StackStorm does).
async fn link_parent(ctx: &Ctx, exec_id: &str, wf_id: &str) -> Result<(), ServiceError> {
    for _ in 0..COMMIT_ATTEMPTS {
        let Some(p) = repo::<Execution>(&*ctx.store).get(exec_id).await? else {
            return Ok(());
        };
        let mut context = p.context.clone();
        context.insert("workflow_execution".into(), json!(wf_id));
        let mut patch = JsonMap::new();
        patch.insert("context".into(), Value::Object(context));
        let expected = [json!(p.status.as_str())];
        if ctx
            .store
            .compare_and_set(Collection::Executions, exec_id, "status", &expected, patch)
            .await?
            .is_some()
        {
            return Ok(());
        }
    }
    Ok(())
}

/// Updates the header fields that follow from the commands of an event: timers armed, the
/// result once finished.
fn note_commands(doc: &mut WorkflowDoc, wf: &Workflow, cmds: &[Command]) {
    let now = epoch_ms();
    for c in cmds {
        match c {
            Command::ScheduleTimer {
                instance, delay, ..
            } => {
                let due = now.saturating_add(i64::try_from(*delay).unwrap_or(i64::MAX / 2) * 1000);
                doc.timers.insert(instance.to_string(), due);
            }
            Command::Finished { result, .. } => {
                doc.result = Some(result.clone());
                doc.end_timestamp = Some(now_iso());
            }
            _ => {}
        }
    }
    doc.timers.retain(|k, _| {
        k.parse::<usize>()
            .ok()
            .and_then(|i| wf.state.records.get(i))
            .is_some_and(|r| r.status == TaskStatus::Delayed)
    });
    doc.status = wf.state.header.status.as_str().to_string();
    doc.records = wf.state.records.len();
}

/// Loads a workflow run from the store: the header, every record, the pending records of the
/// last commit laid over them (and written, in case a crash came before).
async fn load(ctx: &Ctx, wf_id: &str) -> Result<Option<Live>, ServiceError> {
    let Some(doc) = ctx.store.get(Collection::WorkflowExecutions, wf_id).await? else {
        return Ok(None);
    };
    let doc: WorkflowDoc = decode(Collection::WorkflowExecutions, doc)?;
    let q = Query::all().eq("workflow_execution", wf_id);
    let mut records: Vec<Option<TaskRecord>> = vec![None; doc.records];
    for d in ctx.store.find(Collection::TaskExecutions, &q).await? {
        let t: TaskDoc = decode(Collection::TaskExecutions, d)?;
        if t.instance >= records.len() {
            records.resize(t.instance + 1, None);
        }
        records[t.instance] = Some(t.record);
    }
    if !doc.pending.is_empty() {
        let mut writes = Vec::new();
        for r in &doc.pending {
            if r.instance >= records.len() {
                records.resize(r.instance + 1, None);
            }
            records[r.instance] = Some(r.clone());
            writes.push(Write::Put {
                collection: Collection::TaskExecutions,
                doc: encode(Collection::TaskExecutions, &TaskDoc::of(wf_id, r))?,
            });
        }
        ctx.store.apply(writes).await?;
    }
    let records: Vec<TaskRecord> = records.into_iter().flatten().collect();
    let spec = WorkflowSpec::parse(&doc.spec).map_err(|errors| {
        ServiceError::Invalid(format!(
            "stored workflow definition of {wf_id} no longer parses: {}",
            errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        ))
    })?;
    let state = WorkflowState::from_parts(doc.state.clone(), records);
    let wf = Workflow::restore(Arc::new(spec), state, kv_for(ctx, &doc.user));
    Ok(Some(Live {
        version: doc.version,
        wf,
        doc,
    }))
}

/// Makes `live` current: keeps it when the stored version is its own, else loads again.
async fn refresh(ctx: &Ctx, wf_id: &str, live: &mut Option<Live>) -> Result<bool, ServiceError> {
    let stored = ctx.store.get(Collection::WorkflowExecutions, wf_id).await?;
    let Some(stored) = stored else {
        *live = None;
        return Ok(false);
    };
    let version = stored.get("version").and_then(Value::as_u64);
    if live.as_ref().map(|l| l.version) != version {
        *live = load(ctx, wf_id).await?;
    }
    Ok(live.is_some())
}

/// What to do with the current state: an event to apply (`None`: nothing to do).
type Decide = dyn Fn(&Workflow) -> Option<Event> + Send + Sync;

/// Applies an event to the workflow under the caller's lock and commits it (compare-and-set on
/// `version`, then the changed records). Returns the commands to carry out, `None` when the
/// decision was to do nothing.
async fn step(
    ctx: &Ctx,
    wf_id: &str,
    live: &mut Option<Live>,
    decide: &Decide,
) -> Result<Option<Vec<Command>>, ServiceError> {
    for _ in 0..COMMIT_ATTEMPTS {
        if !refresh(ctx, wf_id, live).await? {
            return Ok(None);
        }
        let l = live.as_mut().expect("refreshed above");
        if l.wf.state.header.finished {
            return Ok(None);
        }
        let Some(event) = decide(&l.wf) else {
            return Ok(None);
        };
        let cmds = l.wf.apply(event);
        let delta = l.wf.delta();
        let mut doc = l.doc.clone();
        doc.version = l.version + 1;
        doc.state = delta.header;
        doc.pending = delta.records;
        note_commands(&mut doc, &l.wf, &cmds);
        let mut patch = JsonMap::new();
        if let Value::Object(m) = encode(Collection::WorkflowExecutions, &doc)? {
            patch = m;
        }
        // Fields fixed at start are not written again.
        for fixed in [
            "id",
            "spec",
            "action_execution",
            "user",
            "trace_context",
            "start_timestamp",
            "closed",
        ] {
            patch.remove(fixed);
        }
        let committed = ctx
            .store
            .compare_and_set(
                Collection::WorkflowExecutions,
                wf_id,
                "version",
                &[json!(l.version)],
                patch,
            )
            .await?;
        if committed.is_none() {
            // Another process committed first: start again from the stored state.
            *live = None;
            continue;
        }
        let mut writes = Vec::with_capacity(doc.pending.len());
        for r in &doc.pending {
            writes.push(Write::Put {
                collection: Collection::TaskExecutions,
                doc: encode(Collection::TaskExecutions, &TaskDoc::of(wf_id, r))?,
            });
        }
        if !writes.is_empty() {
            ctx.store.apply(writes).await?;
        }
        l.version = doc.version;
        l.doc = doc;
        return Ok(Some(cmds));
    }
    Err(ServiceError::Conflict {
        id: wf_id.to_string(),
        expected: "an uncontended workflow version".into(),
    })
}

/// Applies `first` and the events the commands lead to, one at a time, under the lock.
async fn process(ctx: &Ctx, wf_id: &str, first: Box<Decide>) -> Result<(), ServiceError> {
    let s = slot(wf_id);
    let mut guard = s.lock().await;
    let Some(cmds) = step(ctx, wf_id, &mut guard, &*first).await? else {
        return Ok(());
    };
    let events = carry_out(ctx, &mut guard, cmds).await?;
    drain(ctx, wf_id, &mut guard, events).await
}

/// Applies follow-up events (from failed requests) until none are left.
async fn drain(
    ctx: &Ctx,
    wf_id: &str,
    live: &mut Option<Live>,
    events: Vec<Event>,
) -> Result<(), ServiceError> {
    let mut queue: VecDeque<Event> = events.into();
    while let Some(ev) = queue.pop_front() {
        let decide = move |_: &Workflow| Some(ev.clone());
        if let Some(cmds) = step(ctx, wf_id, live, &decide).await? {
            queue.extend(carry_out(ctx, live, cmds).await?);
        }
    }
    if live.as_ref().is_some_and(|l| l.wf.state.header.finished) {
        forget(wf_id);
    }
    Ok(())
}

/// Carries out the commands of one event. Returns the events they produced (a child that
/// could not even be requested completes as failed).
async fn carry_out(
    ctx: &Ctx,
    live: &mut Option<Live>,
    cmds: Vec<Command>,
) -> Result<Vec<Event>, ServiceError> {
    let Some(l) = live.as_ref() else {
        return Ok(Vec::new());
    };
    let doc = l.doc.clone();
    let retries: HashMap<usize, u64> =
        l.wf.state
            .records
            .iter()
            .map(|r| (r.instance, r.retry_tally))
            .collect();
    let mut events = Vec::new();
    let mut children = Vec::new();
    for cmd in cmds {
        match cmd {
            Command::RunAction {
                task,
                instance,
                item,
                action,
                input,
            } => {
                let retry = retries.get(&instance).copied().unwrap_or(0);
                match request_child(ctx, &doc, &task, instance, item, retry, &action, input).await {
                    Ok(id) => children.push(id),
                    Err(e) => {
                        tracing::info!(workflow = %doc.id, task = %task, error = %e, "task action could not be requested");
                        events.push(Event::ActionCompleted {
                            instance,
                            item,
                            status: ActionStatus::Failed,
                            result: json!({"error": e.to_string()}),
                        });
                    }
                }
            }
            Command::ScheduleTimer {
                instance, delay, ..
            } => arm_timer(ctx, &doc.id, instance, delay.saturating_mul(1000)),
            Command::CancelTask { instance, .. } => {
                cancel_children(ctx, &doc.action_execution, Some(instance)).await?;
            }
            Command::Status(status) => parent_status(ctx, &doc.action_execution, status).await?,
            Command::Error(e) => {
                tracing::debug!(workflow = %doc.id, error = %e, "workflow error logged");
            }
            Command::Finished { status, result } => {
                finish_parent(ctx, &doc.action_execution, status, result).await?;
                close(ctx, &doc.id).await?;
            }
        }
    }
    if !children.is_empty() {
        add_children(ctx, &doc.action_execution, children).await?;
    }
    Ok(events)
}

/// Requests the child execution of one task (item); returns its id.
#[allow(clippy::too_many_arguments)]
async fn request_child(
    ctx: &Ctx,
    doc: &WorkflowDoc,
    task: &str,
    instance: usize,
    item: Option<usize>,
    retry: u64,
    action: &str,
    input: Value,
) -> Result<String, ServiceError> {
    let parameters = match input {
        Value::Object(m) => m,
        Value::Null => Map::new(),
        other => {
            return Err(ServiceError::Invalid(format!(
                "the input of task \"{task}\" is not a dict: {other}"
            )))
        }
    };
    let mut context = JsonMap::new();
    context.insert(
        "parent".into(),
        json!({"execution_id": doc.action_execution, "user": doc.user}),
    );
    context.insert(
        "orquesta".into(),
        json!({
            "workflow_execution_id": doc.id,
            "task_execution_id": format!("{}_{instance}", doc.id),
            "task_name": task,
            "task_id": task,
            "task_route": 0,
            "route": 0,
            "instance": instance,
            "item_id": item,
            "retry": retry,
        }),
    );
    if let Some(tc) = &doc.trace_context {
        context.insert("trace_context".into(), tc.clone());
    }
    let req = ExecutionRequest {
        action_ref: action.to_string(),
        parameters,
        user: Some(doc.user.clone()),
        context,
        ..Default::default()
    };
    let exec = executions::request_with(ctx, req, Handoff::NoWait).await?;
    Ok(exec.id)
}

/// Appends child ids to the parent's `children`.
async fn add_children(ctx: &Ctx, parent: &str, ids: Vec<String>) -> Result<(), ServiceError> {
    for _ in 0..COMMIT_ATTEMPTS {
        let Some(p) = repo::<Execution>(&*ctx.store).get(parent).await? else {
            return Ok(());
        };
        let mut children = p.children.clone();
        let known: HashSet<&String> = p.children.iter().collect();
        let new: Vec<&String> = ids.iter().filter(|i| !known.contains(i)).collect();
        if new.is_empty() {
            return Ok(());
        }
        children.extend(new.into_iter().cloned());
        let mut patch = JsonMap::new();
        patch.insert("children".into(), json!(children));
        let expected = [json!(p.status.as_str())];
        if ctx
            .store
            .compare_and_set(Collection::Executions, parent, "status", &expected, patch)
            .await?
            .is_some()
        {
            return Ok(());
        }
    }
    tracing::warn!(execution = %parent, "could not record children: status kept changing");
    Ok(())
}

fn orquesta_field<'a>(e: &'a Execution, field: &str) -> Option<&'a Value> {
    e.context.get("orquesta").and_then(|o| o.get(field))
}

/// Cancels the children of `parent` still running (of record `instance` only, when given).
async fn cancel_children(
    ctx: &Ctx,
    parent: &str,
    instance: Option<usize>,
) -> Result<(), ServiceError> {
    let q = Query::all().eq("parent", parent);
    for child in repo::<Execution>(&*ctx.store).find(&q).await? {
        if child.status.is_completed() || child.status == ExecutionStatus::Canceling {
            continue;
        }
        let of_instance = orquesta_field(&child, "instance").and_then(Value::as_u64);
        if instance.is_some_and(|i| of_instance != Some(i as u64)) {
            continue;
        }
        if let Err(e) = executions::cancel(ctx, &child.id).await {
            tracing::info!(execution = %child.id, error = %e, "child not canceled");
        }
    }
    Ok(())
}

/// Mirrors a (non-final) workflow status on the parent execution.
async fn parent_status(
    ctx: &Ctx,
    parent: &str,
    status: WorkflowStatus,
) -> Result<(), ServiceError> {
    use ExecutionStatus as S;
    let (from, to): (&[S], S) = match status {
        WorkflowStatus::Running => (&[S::Resuming, S::Pausing, S::Paused], S::Running),
        WorkflowStatus::Pausing => (&[S::Running], S::Pausing),
        WorkflowStatus::Paused => (&[S::Pausing, S::Running], S::Paused),
        WorkflowStatus::Canceling => (
            &[S::Running, S::Pausing, S::Paused, S::Resuming],
            S::Canceling,
        ),
        _ => return Ok(()),
    };
    executions::transition(ctx, parent, from, to, JsonMap::new()).await?;
    Ok(())
}

/// Ends the parent execution with the workflow's final status and result.
async fn finish_parent(
    ctx: &Ctx,
    parent: &str,
    status: WorkflowStatus,
    result: Value,
) -> Result<(), ServiceError> {
    let to = match status {
        WorkflowStatus::Succeeded => ExecutionStatus::Succeeded,
        WorkflowStatus::Canceled => ExecutionStatus::Canceled,
        _ => ExecutionStatus::Failed,
    };
    let mut patch = JsonMap::new();
    patch.insert("result".into(), result);
    executions::transition(ctx, parent, &LIVE_PARENT, to, patch).await?;
    tracing::info!(execution = %parent, status = to.as_str(), "workflow finished");
    Ok(())
}

/// Marks a finished workflow run whose parent has ended as closed.
async fn close(ctx: &Ctx, wf_id: &str) -> Result<(), ServiceError> {
    let mut patch = JsonMap::new();
    patch.insert("closed".into(), json!(true));
    ctx.store
        .compare_and_set(
            Collection::WorkflowExecutions,
            wf_id,
            "closed",
            &[json!(false)],
            patch,
        )
        .await?;
    Ok(())
}

/// Fires [`Event::TimerFired`] for `instance` in `delay_ms` milliseconds.
fn arm_timer(ctx: &Ctx, wf_id: &str, instance: usize, delay_ms: u64) {
    let (ctx, wf_id) = (ctx.clone(), wf_id.to_string());
    tokio::spawn(async move {
        tokio::select! {
            _ = ctx.shutdown.cancelled() => return,
            _ = tokio::time::sleep(std::time::Duration::from_millis(delay_ms)) => {}
        }
        let decide = move |wf: &Workflow| {
            let delayed = wf
                .state
                .records
                .get(instance)
                .is_some_and(|r| r.status == TaskStatus::Delayed);
            delayed.then_some(Event::TimerFired { instance })
        };
        if let Err(e) = process(&ctx, &wf_id, Box::new(decide)).await {
            tracing::warn!(workflow = %wf_id, error = %e, "timer event failed");
        }
    });
}

/// The machine event for a completed child execution, if it is a workflow task's action.
fn completion(child: &Execution) -> Option<(String, usize, Option<usize>, u64, Event)> {
    let wf_id = orquesta_field(child, "workflow_execution_id")?
        .as_str()?
        .to_string();
    let instance = usize::try_from(orquesta_field(child, "instance")?.as_u64()?).ok()?;
    let item = orquesta_field(child, "item_id")
        .and_then(Value::as_u64)
        .and_then(|i| usize::try_from(i).ok());
    let retry = orquesta_field(child, "retry")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let status = match child.status {
        ExecutionStatus::Succeeded => ActionStatus::Succeeded,
        ExecutionStatus::Timeout => ActionStatus::Timeout,
        ExecutionStatus::Canceled => ActionStatus::Canceled,
        ExecutionStatus::Failed | ExecutionStatus::Abandoned => ActionStatus::Failed,
        _ => return None,
    };
    let event = Event::ActionCompleted {
        instance,
        item,
        status,
        result: child.result.clone().unwrap_or(Value::Null),
    };
    Some((wf_id, instance, item, retry, event))
}

/// Applies the completion of a child execution to its workflow (ignored when it is not a
/// task's action, or belongs to an earlier try of a retried task).
pub async fn child_completed(ctx: &Ctx, child: &Execution) -> Result<(), ServiceError> {
    let Some((wf_id, instance, _, retry, event)) = completion(child) else {
        return Ok(());
    };
    let decide = move |wf: &Workflow| {
        let r = wf.state.records.get(instance)?;
        (r.status == TaskStatus::Running && r.retry_tally == retry).then(|| event.clone())
    };
    process(ctx, &wf_id, Box::new(decide)).await
}

/// Applies a control request (the parent went `canceling`, `pausing` or `resuming`).
pub async fn control(ctx: &Ctx, exec: &Execution) -> Result<(), ServiceError> {
    let event = match exec.status {
        ExecutionStatus::Canceling => Event::CancelRequested,
        ExecutionStatus::Pausing => Event::PauseRequested,
        ExecutionStatus::Resuming => Event::ResumeRequested,
        _ => return Ok(()),
    };
    let Some(doc) = find_by_execution(ctx, &exec.id).await? else {
        return Ok(());
    };
    let ev = event.clone();
    process(ctx, &doc.id, Box::new(move |_| Some(ev.clone()))).await?;
    // The machine may already be where the request leads (nothing active to wait for, or
    // running again): mirror it on the parent.
    let s = slot(&doc.id);
    let guard = s.lock().await;
    let status = guard.as_ref().map(|l| l.wf.state.header.status);
    let finished = guard.as_ref().is_none_or(|l| l.wf.state.header.finished);
    drop(guard);
    if finished {
        forget(&doc.id);
    }
    match (event, status) {
        (Event::ResumeRequested, Some(WorkflowStatus::Running)) => {
            parent_status(ctx, &exec.id, WorkflowStatus::Running).await?;
        }
        (Event::PauseRequested, Some(WorkflowStatus::Paused)) => {
            parent_status(ctx, &exec.id, WorkflowStatus::Paused).await?;
        }
        (Event::CancelRequested, _) => cancel_children(ctx, &exec.id, None).await?,
        _ => {}
    }
    Ok(())
}

/// Continues the workflow runs a previous process left unfinished: finished ones end their
/// parent; completed children are applied; children recorded as started but never requested
/// are requested; timers are re-armed. Call once the engine's queues are declared.
pub async fn recover(ctx: &Ctx) -> Result<usize, ServiceError> {
    let q = Query::all().eq("closed", false);
    let mut n = 0;
    for d in ctx.store.find(Collection::WorkflowExecutions, &q).await? {
        let doc: WorkflowDoc = decode(Collection::WorkflowExecutions, d)?;
        let parent = repo::<Execution>(&*ctx.store)
            .get(&doc.action_execution)
            .await?;
        let Some(parent) = parent.filter(|p| !p.status.is_completed()) else {
            close(ctx, &doc.id).await?;
            continue;
        };
        if let Err(e) = recover_one(ctx, &doc.id, &parent).await {
            tracing::warn!(workflow = %doc.id, error = %e, "workflow not recovered");
        } else {
            n += 1;
        }
    }
    Ok(n)
}

async fn recover_one(ctx: &Ctx, wf_id: &str, parent: &Execution) -> Result<(), ServiceError> {
    let s = slot(wf_id);
    let mut guard = s.lock().await;
    *guard = None;
    if !refresh(ctx, wf_id, &mut guard).await? {
        return Ok(());
    }
    let l = guard.as_ref().expect("refreshed above");
    if l.wf.state.header.finished {
        let status = l.wf.state.header.status;
        let result = l.doc.result.clone().unwrap_or(json!({"output": null}));
        drop(guard);
        forget(wf_id);
        finish_parent(ctx, &parent.id, status, result).await?;
        return close(ctx, wf_id).await;
    }
    let q = Query::all().eq("parent", parent.id.as_str());
    let children = repo::<Execution>(&*ctx.store).find(&q).await?;
    let mut requested: HashSet<(usize, Option<usize>, u64)> = HashSet::new();
    let mut events = Vec::new();
    for c in &children {
        if let Some((_, instance, item, retry, event)) = completion(c) {
            requested.insert((instance, item, retry));
            let r = l.wf.state.records.get(instance);
            if r.is_some_and(|r| r.status == TaskStatus::Running && r.retry_tally == retry) {
                events.push(event);
            }
        } else if let (Some(i), Some(retry)) = (
            orquesta_field(c, "instance").and_then(Value::as_u64),
            orquesta_field(c, "retry").and_then(Value::as_u64),
        ) {
            let item = orquesta_field(c, "item_id")
                .and_then(Value::as_u64)
                .map(|i| i as usize);
            requested.insert((i as usize, item, retry));
        }
    }
    let missing: Vec<Command> =
        l.wf.running_actions()
            .into_iter()
            .filter(|c| match c {
                Command::RunAction { instance, item, .. } => {
                    let retry = l.wf.state.records[*instance].retry_tally;
                    !requested.contains(&(*instance, *item, retry))
                }
                _ => false,
            })
            .collect();
    let now = epoch_ms();
    for r in &l.wf.state.records {
        if r.status == TaskStatus::Delayed {
            let due = l
                .doc
                .timers
                .get(&r.instance.to_string())
                .copied()
                .unwrap_or(now);
            arm_timer(
                ctx,
                wf_id,
                r.instance,
                u64::try_from(due - now).unwrap_or(0),
            );
        }
    }
    tracing::info!(workflow = %wf_id, completed = events.len(), missing = missing.len(), "workflow recovered");
    if !missing.is_empty() {
        let more = carry_out(ctx, &mut guard, missing).await?;
        events.extend(more);
    }
    match parent.status {
        ExecutionStatus::Canceling => events.push(Event::CancelRequested),
        ExecutionStatus::Pausing => events.push(Event::PauseRequested),
        ExecutionStatus::Resuming => events.push(Event::ResumeRequested),
        _ => {}
    }
    drain(ctx, wf_id, &mut guard, events).await
}

/// The workflow engine role: consumes child completions and control requests.
pub struct WorkflowEngine {
    ctx: Ctx,
}

impl WorkflowEngine {
    /// An engine over the shared context.
    pub fn new(ctx: Ctx) -> Arc<Self> {
        Arc::new(Self { ctx })
    }

    /// Subscribes to both queues, then consumes them in a task until the bus closes.
    pub async fn start(self: Arc<Self>) -> Result<tokio::task::JoinHandle<()>, ServiceError> {
        let updates = self
            .ctx
            .bus
            .subscribe(
                SubscribeSpec::work(
                    names::WORKFLOW_ACTION_UPDATE,
                    names::LIVEACTION_STATUS,
                    COMPLETED_STATUSES,
                )
                .with_prefetch(CONCURRENCY as u16),
            )
            .await?;
        let control = self
            .ctx
            .bus
            .subscribe(
                SubscribeSpec::work(CONTROL_QUEUE, names::LIVEACTION_STATUS, CONTROL_STATUSES)
                    .with_prefetch(CONCURRENCY as u16),
            )
            .await?;
        Ok(tokio::spawn(self.consume(updates, control)))
    }

    async fn consume(self: Arc<Self>, mut updates: Subscription, mut control: Subscription) {
        let slots = Arc::new(tokio::sync::Semaphore::new(CONCURRENCY));
        loop {
            // At shutdown the engine stops taking events: what is left is redelivered (durable
            // queues) or found again by `recover` at the next start.
            let (d, is_control) = tokio::select! {
                _ = self.ctx.shutdown.cancelled() => break,
                d = updates.next() => (d, false),
                d = control.next() => (d, true),
            };
            let Some(d) = d else { break };
            let Ok(d) = d else { continue };
            let Ok(permit) = Arc::clone(&slots).acquire_owned().await else {
                break;
            };
            let me = Arc::clone(&self);
            tokio::spawn(async move {
                me.handle(d, is_control).await;
                drop(permit);
            });
        }
        let _ = slots.acquire_many(CONCURRENCY as u32).await;
    }

    async fn handle(&self, d: Delivery, is_control: bool) {
        let id = d
            .message()
            .value()
            .ok()
            .and_then(|v| v.get("id").and_then(Value::as_str).map(String::from));
        let res = match id {
            None => Ok(()),
            Some(id) => match repo::<Execution>(&*self.ctx.store).get(&id).await {
                Ok(Some(e)) if is_control => control(&self.ctx, &e).await,
                Ok(Some(e)) if e.status.is_completed() => child_completed(&self.ctx, &e).await,
                Ok(_) => Ok(()),
                Err(e) => Err(e.into()),
            },
        };
        match res {
            Ok(()) => {
                let _ = d.ack().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "workflow event failed; requeued");
                let _ = d.nack(true).await;
            }
        }
    }
}
