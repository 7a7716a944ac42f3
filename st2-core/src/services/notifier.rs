//! The notifier: when an execution completes it emits `core.st2.generic.actiontrigger`, one
//! `core.st2.generic.notifytrigger` per route of the action's `notify`, and applies the
//! `action.retry` policy (re-running failed, timed-out or, beyond StackStorm, abandoned
//! executions as new executions).

use std::sync::Arc;

use serde_json::{json, Value};

use super::executions::{self, ExecutionRequest};
use super::{dispatch, Ctx, ServiceError};
use crate::bus::Subscription;
use crate::model::{derived_id, Execution, ExecutionStatus, JsonMap, Notify, NotifySubSchema};
use crate::template::RenderContext;

/// Status routing keys of completed executions.
pub const COMPLETED_STATUSES: [&str; 5] =
    ["succeeded", "failed", "timeout", "canceled", "abandoned"];

/// Trigger emitted for every completed execution.
pub const ACTION_TRIGGER: &str = "core.st2.generic.actiontrigger";
/// Trigger emitted per notify route.
pub const NOTIFY_TRIGGER: &str = "core.st2.generic.notifytrigger";

/// The notifier service.
pub struct Notifier {
    ctx: Ctx,
}

impl Notifier {
    /// A notifier over the shared context.
    pub fn new(ctx: Ctx) -> Arc<Self> {
        Arc::new(Self { ctx })
    }

    /// Subscribes, then consumes execution updates in a task until the bus closes.
    pub async fn start(self: Arc<Self>) -> Result<tokio::task::JoinHandle<()>, ServiceError> {
        let sub = self
            .ctx
            .bus
            .subscribe(super::topology::notifier().with_prefetch(self.ctx.consumer_prefetch()))
            .await?;
        Ok(tokio::spawn(self.consume(sub)))
    }

    async fn consume(self: Arc<Self>, mut sub: Subscription) {
        // Completions are handled concurrently; each is independent of the others.
        let slots = Arc::new(tokio::sync::Semaphore::new(
            self.ctx.consumer_prefetch().into(),
        ));
        while let Some(d) = sub.next().await {
            let Ok(d) = d else { continue };
            let Ok(permit) = Arc::clone(&slots).acquire_owned().await else {
                break;
            };
            let me = Arc::clone(&self);
            tokio::spawn(async move {
                me.handle(d).await;
                drop(permit);
            });
        }
        let _ = slots
            .acquire_many(self.ctx.consumer_prefetch().into())
            .await;
    }

    /// One completion message: the execution's triggers, then ack (or requeue on failure).
    async fn handle(&self, d: crate::bus::Delivery) {
        // Only completions are routed here (each carries the execution's document on
        // `st2.liveaction.status`), so the notifier's queue holds one message per execution,
        // not one per status change.
        let res = match executions::from_status_message(&self.ctx, d.message()).await {
            Ok(Some(e)) if e.status.is_completed() => self.completed(&e).await,
            Ok(_) => Ok(()),
            Err(e) => Err(e),
        };
        match res {
            Ok(()) => {
                let _ = d.ack().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "notifier failed; requeued");
                let _ = d.nack(true).await;
            }
        }
    }

    /// Emits the completion triggers of one execution (and its retry), once in effect: each
    /// trigger instance and the retry execution get ids derived from the execution, so a
    /// delivery seen twice (a crash before the ack, a redelivery) stores nothing new. The
    /// execution is marked `notified` after them, so a crash in between loses nothing.
    pub async fn completed(&self, exec: &Execution) -> Result<(), ServiceError> {
        if exec.notified {
            return Ok(());
        }
        let action_ref = exec
            .action
            .get("ref")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let runner_ref = exec
            .runner
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let specs = exec
            .action
            .get("parameters")
            .cloned()
            .and_then(|p| serde_json::from_value(p).ok())
            .unwrap_or_default();
        let params = crate::template::params::mask_secrets(&exec.parameters, &specs);
        // The trace of the execution: by id when its context names one (no lookup), else by tag.
        let trace_ctx = exec.context.get("trace_context");
        let field = |k: &str| {
            trace_ctx
                .and_then(|t| t.get(k))
                .and_then(Value::as_str)
                .map(String::from)
        };
        let trace_tag = match (field("id_"), field("trace_tag")) {
            (Some(id), Some(tag)) => Some(dispatch::TraceTag::Known { id, tag }),
            (_, tag) => tag.map(dispatch::TraceTag::Join),
        };
        let payload = json!({
            "execution_id": exec.id,
            "status": exec.status.as_str(),
            "start_timestamp": exec.start_timestamp,
            "action_name": action_ref,
            "action_ref": action_ref,
            "runner_ref": runner_ref,
            "parameters": params,
            "result": exec.result.clone().unwrap_or(Value::Null),
        });
        let dispatched = self
            .trigger(
                derived_id(&exec.id, "actiontrigger"),
                ACTION_TRIGGER,
                payload,
                trace_tag.clone(),
            )
            .await;
        if let Err(e) = dispatched {
            match e {
                ServiceError::NotFound { .. } => {
                    tracing::debug!("no action trigger type registered")
                }
                other => return Err(other),
            }
        }
        if let Some(notify) = exec
            .action
            .get("notify")
            .cloned()
            .and_then(|n| serde_json::from_value::<Notify>(n).ok())
        {
            self.notify(exec, &notify, &action_ref, &runner_ref, trace_tag)
                .await?;
        }
        self.retry(exec, &action_ref).await?;
        let mut patch = JsonMap::new();
        patch.insert("notified".into(), json!(true));
        // `None`: a concurrent delivery marked it first; what it emitted had the same ids.
        self.ctx
            .store
            .set_if(
                crate::store::Collection::Executions,
                &exec.id,
                "notified",
                &[Value::Null, json!(false)],
                patch,
            )
            .await?;
        Ok(())
    }

    async fn notify(
        &self,
        exec: &Execution,
        notify: &Notify,
        action_ref: &str,
        runner_ref: &str,
        trace_tag: Option<dispatch::TraceTag>,
    ) -> Result<(), ServiceError> {
        let mut subs: Vec<&NotifySubSchema> = notify.on_complete.iter().collect();
        match exec.status {
            ExecutionStatus::Succeeded => subs.extend(notify.on_success.iter()),
            _ => subs.extend(notify.on_failure.iter()),
        }
        let ctx = RenderContext::new()
            .with("action_parameters", Value::Object(exec.parameters.clone()))
            .with("action_results", exec.result.clone().unwrap_or(Value::Null))
            .with("action_context", Value::Object(exec.context.clone()));
        for (n, sub) in subs.into_iter().enumerate() {
            let message = match &sub.message {
                Some(m) => self
                    .ctx
                    .engine
                    .render_str(m, &ctx)
                    .unwrap_or_else(|e| e.to_string()),
                None => String::new(),
            };
            let data = match &sub.data {
                Some(d) => self.ctx.engine.render_value(d, &ctx).unwrap_or(Value::Null),
                None => json!({}),
            };
            for (r, route) in sub.routes.iter().enumerate() {
                let payload = json!({
                    "execution_id": exec.id,
                    "status": exec.status.as_str(),
                    "start_timestamp": exec.start_timestamp,
                    "end_timestamp": exec.end_timestamp,
                    "action_ref": action_ref,
                    "runner_ref": runner_ref,
                    "channel": route,
                    "route": route,
                    "message": message,
                    "data": data,
                });
                self.trigger(
                    derived_id(&exec.id, &format!("notify:{n}:{r}")),
                    NOTIFY_TRIGGER,
                    payload,
                    trace_tag.clone(),
                )
                .await?;
            }
        }
        Ok(())
    }

    /// Dispatches one of a completion's triggers under its derived `id`: created only if
    /// absent, so a completion handled again (redelivered, or duplicated) stores and publishes
    /// nothing new.
    async fn trigger(
        &self,
        id: String,
        trigger_ref: &str,
        payload: Value,
        trace_tag: Option<dispatch::TraceTag>,
    ) -> Result<crate::model::TriggerInstance, ServiceError> {
        let handoff = dispatch::Handoff::NoWait;
        dispatch::dispatch_as(
            &self.ctx,
            Some(id),
            trigger_ref,
            payload,
            trace_tag,
            handoff,
        )
        .await
    }

    /// StackStorm's `action.retry`: re-run as a new execution, with `context.policies.retry`.
    async fn retry(&self, exec: &Execution, action_ref: &str) -> Result<(), ServiceError> {
        let on = match exec.status {
            ExecutionStatus::Failed => "failure",
            ExecutionStatus::Timeout => "timeout",
            // Beyond StackStorm: re-run what a dead runner left (see `watchdog`).
            ExecutionStatus::Abandoned => "abandoned",
            _ => return Ok(()),
        };
        let policies = self
            .ctx
            .catalog
            .policies(&*self.ctx.store, action_ref)
            .await?;
        let Some(p) = policies
            .iter()
            .filter(|p| p.policy_type == "action.retry")
            .find(|p| p.parameters.get("retry_on").and_then(Value::as_str) == Some(on))
        else {
            return Ok(());
        };
        let max = p
            .parameters
            .get("max_retry_count")
            .and_then(Value::as_u64)
            .unwrap_or(2);
        let done = exec
            .context
            .get("policies")
            .and_then(|x| x.get("retry"))
            .and_then(|r| r.get("retry_count"))
            .and_then(Value::as_u64)
            .unwrap_or(0);
        if done >= max {
            return Ok(());
        }
        let delay = p
            .parameters
            .get("delay")
            .and_then(Value::as_f64)
            .unwrap_or(0.0);
        let mut context = exec.context.clone();
        context.remove("user");
        context.insert(
            "policies".into(),
            json!({"retry": {"applied_policy": p.policy_ref, "retry_count": done + 1, "retried_liveaction_id": exec.id}}),
        );
        let req = ExecutionRequest {
            action_ref: action_ref.to_string(),
            parameters: exec.parameters.clone(),
            user: exec
                .context
                .get("user")
                .and_then(Value::as_str)
                .map(String::from),
            context,
            trigger: exec.trigger.clone(),
            trigger_type: exec.trigger_type.clone(),
            trigger_instance: exec.trigger_instance.clone(),
            rule: exec.rule.clone(),
            delay: (delay > 0.0).then_some((delay * 1000.0) as u64),
        };
        executions::request_once(&self.ctx, derived_id(&exec.id, "retry"), req).await?;
        Ok(())
    }
}
