//! Carrying out the machine's commands (child executions, timers, cancels) and turning
//! completed children back into events.

use std::collections::{HashMap, HashSet};
use std::sync::{LazyLock, Mutex};

use serde_json::{json, Map, Value};

use super::control::{close, finish_parent, parent_status};
use super::step::{process, Live};
use super::{WorkflowDoc, COMMIT_ATTEMPTS};
use crate::model::{Execution, ExecutionStatus, JsonMap};
use crate::services::executions::{self, ExecutionRequest};
use crate::services::{dispatch::Handoff, Ctx, ServiceError};
use crate::store::{repo, Collection, Query};
use crate::workflow::machine::{ActionStatus, Command, Event, TaskStatus, Workflow};

/// Carries out the commands of one event. Returns the events they produced (a child that
/// could not even be requested completes as failed).
pub(super) async fn carry_out(
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
    // Child requests are made together (the store commits them as one batch), in runs ended by
    // the first command of another kind, so that command still comes after them.
    let mut requests = Vec::new();
    for cmd in cmds {
        if let Command::RunAction {
            task,
            instance,
            item,
            action,
            input,
        } = cmd
        {
            let retry = retries.get(&instance).copied().unwrap_or(0);
            requests.push((task, instance, item, retry, action, input));
            continue;
        }
        request_children(
            ctx,
            &doc,
            std::mem::take(&mut requests),
            &mut children,
            &mut events,
        )
        .await;
        match cmd {
            Command::RunAction { .. } => {}
            Command::ScheduleTimer {
                instance, delay, ..
            } => arm_timer(ctx, &doc.id, instance, delay.saturating_mul(1000)),
            Command::CancelTask { instance, .. } => {
                cancel_children(ctx, &doc.action_execution, Some(instance)).await?;
            }
            Command::Status(status) => {
                // The children are listed on the parent when it is seen paused, etc.
                queue_children(ctx, &doc.action_execution, std::mem::take(&mut children));
                flush_children(ctx, &doc.action_execution).await?;
                parent_status(ctx, &doc.action_execution, status).await?;
            }
            Command::Error(e) => {
                tracing::debug!(workflow = %doc.id, error = %e, "workflow error logged");
            }
            Command::Finished { status, result } => {
                let timed_out = live.as_ref().is_some_and(|l| l.wf.state.header.timed_out);
                // Every child is listed on the parent before it ends.
                queue_children(ctx, &doc.action_execution, std::mem::take(&mut children));
                flush_children(ctx, &doc.action_execution).await?;
                finish_parent(ctx, &doc.action_execution, status, timed_out, result).await?;
                close(ctx, &doc.id).await?;
            }
        }
    }
    request_children(ctx, &doc, requests, &mut children, &mut events).await;
    if !children.is_empty() {
        queue_children(ctx, &doc.action_execution, children);
    }
    Ok(events)
}

/// A child to request: task, instance, item, retry, action, input.
type ChildRequest = (String, usize, Option<usize>, u64, String, Value);

/// Requests these children concurrently; their ids go to `children`, in order, and a child that
/// could not even be requested becomes a failed completion in `events`.
async fn request_children(
    ctx: &Ctx,
    doc: &WorkflowDoc,
    requests: Vec<ChildRequest>,
    children: &mut Vec<String>,
    events: &mut Vec<Event>,
) {
    if requests.is_empty() {
        return;
    }
    let results = futures_util::future::join_all(requests.into_iter().map(
        |(task, instance, item, retry, action, input)| async move {
            let res = request_child(ctx, doc, &task, instance, item, retry, &action, input).await;
            (task, instance, item, res)
        },
    ))
    .await;
    for (task, instance, item, res) in results {
        match res {
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
}

/// Requests the child execution of one task (item); returns its id.
#[allow(clippy::too_many_arguments)]
pub(super) async fn request_child(
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

/// Child ids waiting to be appended to their parent's `children`, by parent.
static NEW_CHILDREN: LazyLock<Mutex<HashMap<String, Vec<String>>>> =
    LazyLock::new(Default::default);

/// Serialises the appends (a flush that took ids finishes before the next one reads).
static FLUSH: LazyLock<tokio::sync::Mutex<()>> = LazyLock::new(Default::default);

/// How long new children wait to be appended together: rewriting the parent's list once
/// per child would cost as much as the list is long (quadratic in a large with-items).
const CHILDREN_FLUSH_MS: u64 = 20;

/// Queues child ids for the parent's `children`; they are appended within
/// [`CHILDREN_FLUSH_MS`] (or by [`flush_children`]).
fn queue_children(ctx: &Ctx, parent: &str, ids: Vec<String>) {
    if ids.is_empty() {
        return;
    }
    let first = {
        let mut m = NEW_CHILDREN.lock().unwrap_or_else(|p| p.into_inner());
        let waiting = m.entry(parent.to_string()).or_default();
        let first = waiting.is_empty();
        waiting.extend(ids);
        first
    };
    if first {
        let (ctx, parent) = (ctx.clone(), parent.to_string());
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(CHILDREN_FLUSH_MS)).await;
            if let Err(e) = flush_children(&ctx, &parent).await {
                tracing::warn!(execution = %parent, error = %e, "children not recorded");
            }
        });
    }
}

/// Appends the queued child ids of `parent` now.
pub(super) async fn flush_children(ctx: &Ctx, parent: &str) -> Result<(), ServiceError> {
    let _serial = FLUSH.lock().await;
    let ids = NEW_CHILDREN
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(parent)
        .unwrap_or_default();
    if ids.is_empty() {
        return Ok(());
    }
    add_children(ctx, parent, ids).await
}

/// Appends child ids to the parent's `children`.
pub(crate) async fn add_children(
    ctx: &Ctx,
    parent: &str,
    ids: Vec<String>,
) -> Result<(), ServiceError> {
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

pub(super) fn orquesta_field<'a>(e: &'a Execution, field: &str) -> Option<&'a Value> {
    e.context.get("orquesta").and_then(|o| o.get(field))
}

/// Cancels the children of `parent` still running (of record `instance` only, when given).
pub(super) async fn cancel_children(
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

/// Fires [`Event::TimerFired`] for `instance` in `delay_ms` milliseconds.
pub(super) fn arm_timer(ctx: &Ctx, wf_id: &str, instance: usize, delay_ms: u64) {
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
pub(super) fn completion(child: &Execution) -> Option<(String, usize, Option<usize>, u64, Event)> {
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
        let waiting = matches!(
            r.status,
            TaskStatus::Running | TaskStatus::Pending | TaskStatus::Paused
        );
        (waiting && r.retry_tally == retry).then(|| event.clone())
    };
    process(ctx, &wf_id, Box::new(decide)).await
}

/// Applies a child execution that went `pending` (an inquiry waits for its response) or
/// `paused` (a nested workflow paused) to its workflow.
pub async fn child_suspended(ctx: &Ctx, child: &Execution) -> Result<(), ServiceError> {
    let Some(wf_id) = orquesta_field(child, "workflow_execution_id")
        .and_then(Value::as_str)
        .map(String::from)
    else {
        return Ok(());
    };
    let Some(instance) = orquesta_field(child, "instance")
        .and_then(Value::as_u64)
        .and_then(|i| usize::try_from(i).ok())
    else {
        return Ok(());
    };
    let retry = orquesta_field(child, "retry")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let event = match child.status {
        ExecutionStatus::Pending => Event::ActionPending { instance },
        ExecutionStatus::Paused => Event::ActionPaused { instance },
        _ => return Ok(()),
    };
    let decide = move |wf: &Workflow| {
        let r = wf.state.records.get(instance)?;
        (r.status == TaskStatus::Running && r.retry_tally == retry).then(|| event.clone())
    };
    process(ctx, &wf_id, Box::new(decide)).await
}

/// Fires [`Event::TimedOut`] for workflow `wf_id` in `delay_ms` milliseconds (unless it has
/// finished by then).
pub(super) fn arm_timeout(ctx: &Ctx, wf_id: &str, delay_ms: u64) {
    let (ctx, wf_id) = (ctx.clone(), wf_id.to_string());
    tokio::spawn(async move {
        tokio::select! {
            _ = ctx.shutdown.cancelled() => return,
            _ = tokio::time::sleep(std::time::Duration::from_millis(delay_ms)) => {}
        }
        let decide = |wf: &Workflow| (!wf.state.header.finished).then_some(Event::TimedOut);
        if let Err(e) = process(&ctx, &wf_id, Box::new(decide)).await {
            tracing::warn!(workflow = %wf_id, error = %e, "timeout event failed");
        }
    });
}
