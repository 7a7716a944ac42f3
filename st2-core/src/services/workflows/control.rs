//! Cancel, pause and resume of workflow runs, and mirroring the workflow status on the
//! parent execution.

use serde_json::{json, Value};

use super::children::cancel_children;
use super::step::{forget, process, slot};
use super::{find_by_execution, LIVE_PARENT};
use crate::model::{Execution, ExecutionStatus, JsonMap};
use crate::services::executions::{self};
use crate::services::{Ctx, ServiceError};
use crate::store::{repo, Collection, Query};
use crate::workflow::machine::{Event, WorkflowStatus};

/// Mirrors a (non-final) workflow status on the parent execution.
pub(super) async fn parent_status(
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

/// Ends the parent execution with the workflow's final status and result (`timeout` when the
/// workflow was ended by its timeout).
pub(super) async fn finish_parent(
    ctx: &Ctx,
    parent: &str,
    status: WorkflowStatus,
    timed_out: bool,
    result: Value,
) -> Result<(), ServiceError> {
    let to = match status {
        _ if timed_out => ExecutionStatus::Timeout,
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
pub(super) async fn close(ctx: &Ctx, wf_id: &str) -> Result<(), ServiceError> {
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
    let guard = s.live.lock().await;
    let status = guard.as_ref().map(|l| l.wf.state.header.status);
    let finished = guard.as_ref().is_none_or(|l| l.wf.state.header.finished);
    drop(guard);
    if finished {
        forget(&doc.id);
    }
    match &event {
        Event::PauseRequested => {
            nested(
                ctx,
                &exec.id,
                ExecutionStatus::Running,
                ExecutionStatus::Pausing,
            )
            .await?;
        }
        Event::ResumeRequested => {
            nested(
                ctx,
                &exec.id,
                ExecutionStatus::Paused,
                ExecutionStatus::Resuming,
            )
            .await?;
        }
        _ => {}
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

/// Moves the nested workflows among the children of `parent` from `from` to `to`: a pause or
/// resume of a workflow cascades into the workflows its tasks run (their engine applies it).
async fn nested(
    ctx: &Ctx,
    parent: &str,
    from: ExecutionStatus,
    to: ExecutionStatus,
) -> Result<(), ServiceError> {
    let q = Query::all()
        .eq("parent", parent)
        .eq("status", from.as_str());
    for child in repo::<Execution>(&*ctx.store).find(&q).await? {
        let runner = child
            .runner
            .get("name")
            .and_then(Value::as_str)
            .or_else(|| child.action.get("runner_type").and_then(Value::as_str));
        if !runner.is_some_and(super::handles) {
            continue;
        }
        if let Err(e) = executions::transition(ctx, &child.id, &[from], to, JsonMap::new()).await {
            tracing::info!(execution = %child.id, error = %e, "nested workflow not moved");
        }
    }
    Ok(())
}
