//! Starting a workflow run from an execution of an `orquesta` action.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{json, Value};

use super::children::{arm_timeout, carry_out};
use super::kv::kv_for;
use super::step::{drain, load, note_commands, slot, Live};
use super::{
    encode, epoch_ms, find_by_execution, CtxDoc, ItemDoc, TaskDoc, WorkflowDoc, COMMIT_ATTEMPTS,
    LIVE_PARENT,
};
use crate::model::{Execution, ExecutionStatus, JsonMap};
use crate::services::executions::{self};
use crate::services::{now_iso, Ctx, ServiceError};
use crate::store::{repo, Collection, Write};
use crate::workflow::machine::{Command, Workflow};
use crate::workflow::spec::WorkflowSpec;

/// Fails execution `exec` (still running) with StackStorm's workflow result shape.
pub(super) async fn fail_start(
    ctx: &Ctx,
    exec: &Execution,
    errors: Vec<Value>,
) -> Result<(), ServiceError> {
    tracing::info!(execution = %exec.id, "workflow failed to start");
    let mut patch = JsonMap::new();
    patch.insert("result".into(), json!({"errors": errors, "output": null}));
    executions::transition(ctx, &exec.id, &LIVE_PARENT, ExecutionStatus::Failed, patch).await?;
    Ok(())
}

pub(super) fn content_error(message: impl Into<String>) -> Value {
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
    let input = (|| -> Result<(JsonMap, Option<u64>), ServiceError> {
        let r = executions::renderer(ctx, &action, &runner, &exec.context, config)?;
        let params = r.render_final(&executions::open_secrets(ctx, &exec.parameters)?)?;
        // The action's `timeout` (seconds), as StackStorm's action runners read it.
        let timeout = params.get("timeout").and_then(|t| {
            t.as_u64()
                .or_else(|| t.as_f64().map(|f| f.max(0.0) as u64))
                .or_else(|| t.as_str().and_then(|s| s.trim().parse().ok()))
        });
        Ok((r.split(&params).1, timeout.filter(|t| *t > 0)))
    })();
    let (input, timeout) = match input {
        Ok(i) => i,
        Err(e) => return fail_start(ctx, exec, vec![content_error(e.to_string())]).await,
    };
    let user = exec
        .context
        .get("user")
        .and_then(Value::as_str)
        .unwrap_or(crate::services::context::SYSTEM_USER)
        .to_string();
    let (mut wf, cmds, text) = match rerun_request(exec) {
        None => {
            let (wf, cmds) = Workflow::with_kv(spec, &input, kv_for(ctx, &user));
            (wf, cmds, text)
        }
        Some((of, tasks, reset)) => match rerun_from(ctx, &of, &tasks, &reset).await? {
            Ok(r) => r,
            Err(m) => return fail_start(ctx, exec, vec![content_error(m)]).await,
        },
    };
    let doc = store_new(
        ctx,
        &mut wf,
        &cmds,
        NewRun {
            action_execution: exec.id.clone(),
            spec: text,
            user,
            trace_context: exec.context.get("trace_context").cloned(),
            timeout,
        },
    )
    .await?;
    link_parent(ctx, &exec.id, &doc.id).await?;
    tracing::info!(execution = %exec.id, workflow = %doc.id, "workflow started");
    let wf_id = doc.id.clone();
    if let Some(t) = timeout {
        arm_timeout(ctx, &wf_id, t.saturating_mul(1000));
    }
    let s = slot(&wf_id);
    let mut guard = s.live.lock().await;
    *guard = Some(Live {
        version: 0,
        wf,
        doc,
    });
    let events = carry_out(ctx, &mut guard, cmds).await?;
    drain(ctx, &wf_id, &mut guard, events).await
}

/// What a new workflow run is stored with, besides its state.
pub(super) struct NewRun {
    /// The execution of the workflow action.
    pub(super) action_execution: String,
    /// The workflow definition's text.
    pub(super) spec: String,
    /// Who runs it.
    pub(super) user: String,
    /// The execution's `trace_context`.
    pub(super) trace_context: Option<Value>,
    /// Its timeout in seconds.
    pub(super) timeout: Option<u64>,
}

/// Stores a new workflow run (header, records, items, initial context) in one batch; the
/// header as stored.
pub(super) async fn store_new(
    ctx: &Ctx,
    wf: &mut Workflow,
    cmds: &[Command],
    run: NewRun,
) -> Result<WorkflowDoc, ServiceError> {
    let delta = wf.delta();
    let mut doc = WorkflowDoc {
        id: crate::model::new_id(),
        action_execution: run.action_execution,
        status: delta.header.status.as_str().to_string(),
        version: 0,
        spec: run.spec,
        user: run.user,
        trace_context: run.trace_context,
        state: delta.header,
        pending: Vec::new(),
        pending_items: Vec::new(),
        records: wf.state.records.len(),
        timers: BTreeMap::new(),
        result: None,
        start_timestamp: now_iso(),
        end_timestamp: None,
        closed: false,
        timeout_at: run.timeout.map(|t| {
            epoch_ms().saturating_add(i64::try_from(t.saturating_mul(1000)).unwrap_or(i64::MAX / 2))
        }),
    };
    note_commands(&mut doc, wf, cmds);
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
    // The items as they are now (a re-run copies them from the original run).
    for c in &wf.state.item_snapshot() {
        writes.push(Write::Put {
            collection: Collection::TaskExecutions,
            doc: encode(Collection::TaskExecutions, &ItemDoc::of(&doc.id, c))?,
        });
    }
    writes.push(Write::Put {
        collection: Collection::TaskExecutions,
        doc: encode(
            Collection::TaskExecutions,
            &CtxDoc::of(&doc.id, &wf.state.header.ctx),
        )?,
    });
    ctx.store.apply(writes).await?;
    Ok(doc)
}

/// The re-run from tasks `exec` asks for (`context.re-run`: `ref`, `tasks`, `reset`), if any.
fn rerun_request(exec: &Execution) -> Option<(String, Vec<String>, Vec<String>)> {
    let rr = exec.context.get("re-run")?;
    let list = |k: &str| -> Vec<String> {
        rr.get(k)
            .and_then(Value::as_array)
            .map(|l| {
                l.iter()
                    .filter_map(Value::as_str)
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default()
    };
    let tasks = list("tasks");
    if tasks.is_empty() {
        return None;
    }
    Some((rr.get("ref")?.as_str()?.to_string(), tasks, list("reset")))
}

/// The workflow of execution `of` (finished), re-run from `tasks`: its state with the tasks
/// started again, the commands of that and the original definition. `Ok(Err(reason))` when it
/// cannot be re-run.
async fn rerun_from(
    ctx: &Ctx,
    of: &str,
    tasks: &[String],
    reset: &[String],
) -> Result<Result<(Workflow, Vec<Command>, String), String>, ServiceError> {
    let Some(original) = find_by_execution(ctx, of).await? else {
        return Ok(Err(format!("execution {of} has no workflow run to re-run")));
    };
    let Some(live) = load(ctx, &original.id).await? else {
        return Ok(Err(format!("execution {of} has no workflow run to re-run")));
    };
    let Live { mut wf, doc, .. } = live;
    Ok(wf.rerun(tasks, reset).map(|cmds| (wf, cmds, doc.spec)))
}

/// Records the workflow run in the parent's `context.workflow_execution` (as StackStorm does).
pub(super) async fn link_parent(ctx: &Ctx, exec_id: &str, wf_id: &str) -> Result<(), ServiceError> {
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
