//! Continuing the workflow runs a previous process left unfinished.

use std::collections::HashSet;

use serde_json::{json, Value};

use super::children::{arm_timeout, arm_timer, carry_out, completion, orquesta_field};
use super::control::{close, finish_parent};
use super::step::{drain, forget, refresh, slot};
use super::{decode, epoch_ms, WorkflowDoc};
use crate::model::{Execution, ExecutionStatus};
use crate::services::{Ctx, ServiceError};
use crate::store::{repo, Collection, Query};
use crate::workflow::machine::{Command, Event, TaskStatus};

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

pub(super) async fn recover_one(
    ctx: &Ctx,
    wf_id: &str,
    parent: &Execution,
) -> Result<(), ServiceError> {
    let s = slot(wf_id);
    let mut guard = s.live.lock().await;
    *guard = None;
    if !refresh(ctx, wf_id, &mut guard).await? {
        return Ok(());
    }
    let l = guard.as_ref().expect("refreshed above");
    if l.wf.state.header.finished {
        let status = l.wf.state.header.status;
        let result = l.doc.result.clone().unwrap_or(json!({"output": null}));
        let timed_out = l.wf.state.header.timed_out;
        drop(guard);
        forget(wf_id);
        finish_parent(ctx, &parent.id, status, timed_out, result).await?;
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
    if let Some(at) = l.doc.timeout_at {
        arm_timeout(ctx, wf_id, u64::try_from(at - now).unwrap_or(0));
    }
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
