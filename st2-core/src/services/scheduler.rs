//! The scheduler: `requested` executions pass their action's policies and become `scheduled`
//! (or `delayed` / `canceled`). Delayed executions are re-examined whenever an execution ends
//! and on a short sweep.
//!
//! Concurrency policies claim slots in the store ([`super::concurrency`]), so they hold across
//! any number of schedulers; a completion releases its execution's slots. Rate limits take
//! rate slots in the store the same way (see [`super::concurrency`]), so they hold across
//! schedulers too.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use super::executions::{self, advance, transition};
use super::{Ctx, ServiceError};
use crate::bus::{names, SubscribeSpec, Subscription};
use crate::model::{Execution, ExecutionStatus, JsonMap, Policy};
use crate::store::{repo, Query};

/// How often delayed executions are re-examined.
pub const DELAYED_SWEEP: Duration = Duration::from_millis(500);

/// What a policy decided for one execution.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Go ahead.
    Schedule,
    /// Wait for a slot.
    Delay,
    /// Refuse.
    Cancel(String),
}

/// The scheduler service.
pub struct Scheduler {
    ctx: Ctx,
}

impl Scheduler {
    /// A scheduler over the shared context.
    pub fn new(ctx: Ctx) -> Arc<Self> {
        Arc::new(Self { ctx })
    }

    /// Subscribes, then consumes `requested` executions and completions in a task until the bus
    /// closes.
    pub async fn start(self: Arc<Self>) -> Result<tokio::task::JoinHandle<()>, ServiceError> {
        let req = self
            .ctx
            .bus
            .subscribe(SubscribeSpec::work(
                names::ACTIONRUNNER_REQ,
                names::LIVEACTION_STATUS,
                ["requested"],
            ))
            .await?;
        // Completions free slots: re-examine delayed executions then.
        let done = self
            .ctx
            .bus
            .subscribe(SubscribeSpec::broadcast(
                "st2.scheduler.completions",
                names::LIVEACTION_STATUS,
                ["succeeded", "failed", "timeout", "canceled", "abandoned"],
            ))
            .await?;
        Ok(tokio::spawn(self.consume(req, done)))
    }

    async fn consume(self: Arc<Self>, mut req: Subscription, mut done: Subscription) {
        let mut sweep = tokio::time::interval(DELAYED_SWEEP);
        let slots = Arc::new(tokio::sync::Semaphore::new(
            self.ctx.consumer_prefetch().into(),
        ));
        loop {
            tokio::select! {
                d = req.next() => {
                    let Some(d) = d else { break };
                    let Ok(d) = d else { continue };
                    // Executions are scheduled concurrently: policies count in the store.
                    let Ok(permit) = Arc::clone(&slots).acquire_owned().await else { break };
                    let me = Arc::clone(&self);
                    tokio::spawn(async move {
                        let res = match executions::from_status_message(&me.ctx, d.message()).await {
                            Ok(Some(exec)) => me.schedule_execution(exec).await,
                            Ok(None) => Ok(()),
                            Err(e) => Err(e),
                        };
                        if let Err(e) = res {
                            tracing::warn!(error = %e, "scheduling failed");
                        }
                        let _ = d.ack().await;
                        drop(permit);
                    });
                }
                d = done.next() => {
                    let Some(d) = d else { break };
                    if let Ok(d) = d {
                        if let Ok(Some(exec)) = executions::from_status_message(&self.ctx, d.message()).await {
                            self.completed(&exec).await;
                        }
                        let _ = d.ack().await;
                    }
                }
                _ = sweep.tick() => self.sweep_delayed().await,
            }
        }
    }

    /// A completion: frees the slots the execution held and re-examines the delayed executions
    /// of its action. An action without policies holds no slot and delays nothing, so its
    /// completions cost no store call (a slot left behind by a policy removed meanwhile is taken
    /// over by the next claimer).
    async fn completed(&self, exec: &Execution) {
        let action_ref = exec
            .action
            .get("ref")
            .and_then(Value::as_str)
            .unwrap_or_default();
        match self
            .ctx
            .catalog
            .policies(&*self.ctx.store, action_ref)
            .await
        {
            Ok(p) if p.is_empty() => return,
            Ok(_) => {}
            Err(e) => tracing::warn!(action = %action_ref, error = %e, "cannot read policies"),
        }
        if let Err(e) = super::concurrency::release(&self.ctx, &exec.id).await {
            // A slot left held is taken over by the next claimer.
            tracing::warn!(execution = %exec.id, error = %e, "cannot release concurrency slots");
        }
        self.sweep(Query::all().eq("action.ref", action_ref)).await;
    }

    /// Re-examines every delayed execution, oldest first.
    pub async fn sweep_delayed(&self) {
        self.sweep(Query::all()).await;
    }

    /// Re-examines the delayed executions `q` selects, oldest first.
    async fn sweep(&self, q: Query) {
        let q = q.eq("status", "delayed").sort("id", false);
        let Ok(delayed) = repo::<Execution>(&*self.ctx.store).find(&q).await else {
            return;
        };
        for e in delayed {
            let id = e.id.clone();
            if let Err(err) = self.schedule_execution(e).await {
                tracing::warn!(execution = %id, error = %err, "rescheduling failed");
            }
        }
    }

    /// The execution, if it is still `requested` or `delayed`.
    async fn schedulable(&self, id: &str) -> Result<Option<Execution>, ServiceError> {
        Ok(repo::<Execution>(&*self.ctx.store)
            .get(id)
            .await?
            .filter(|e| {
                matches!(
                    e.status,
                    ExecutionStatus::Requested | ExecutionStatus::Delayed
                )
            }))
    }

    /// Applies the policies to one `requested` or `delayed` execution.
    pub async fn schedule(&self, id: &str) -> Result<(), ServiceError> {
        match self.schedulable(id).await? {
            Some(exec) => self.schedule_execution(exec).await,
            None => Ok(()),
        }
    }

    /// [`Scheduler::schedule`] of an execution as a message or a query returned it (every
    /// transition is a compare-and-set from the status it shows, so a stale copy does nothing).
    async fn schedule_execution(&self, exec: Execution) -> Result<(), ServiceError> {
        if !matches!(
            exec.status,
            ExecutionStatus::Requested | ExecutionStatus::Delayed
        ) {
            return Ok(());
        }
        let id = exec.id.as_str();
        if let (Some(delay), ExecutionStatus::Requested) = (exec.delay, exec.status) {
            if delay > 0 && !exec.context.contains_key("delay_applied") {
                let mut patch = JsonMap::new();
                patch.insert("context".into(), {
                    let mut c = exec.context.clone();
                    c.insert("delay_applied".into(), json!(true));
                    Value::Object(c)
                });
                transition(
                    &self.ctx,
                    id,
                    &[ExecutionStatus::Requested],
                    ExecutionStatus::Delayed,
                    patch,
                )
                .await?;
                let ctx = self.ctx.clone();
                let id = id.to_string();
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(delay)).await;
                    let mut patch = JsonMap::new();
                    patch.insert("delay".into(), json!(0));
                    let _ = ctx
                        .store
                        .compare_and_set(
                            crate::store::Collection::Executions,
                            &id,
                            "status",
                            &[json!("delayed")],
                            patch,
                        )
                        .await;
                });
                return Ok(());
            }
        }
        if exec.status == ExecutionStatus::Delayed && exec.delay.unwrap_or(0) > 0 {
            return Ok(()); // still waiting out its own delay
        }
        let action_ref = exec
            .action
            .get("ref")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let policies = self
            .ctx
            .catalog
            .policies(&*self.ctx.store, &action_ref)
            .await?;
        if policies.is_empty() {
            // No policy to count against: the compare-and-set alone decides.
            advance(&self.ctx, &exec, ExecutionStatus::Scheduled, JsonMap::new()).await?;
            return Ok(());
        }
        let Some(exec) = self.schedulable(id).await? else {
            return Ok(());
        };
        let mut decision = Decision::Schedule;
        let mut claimed = Vec::new();
        for p in policies.iter() {
            match self.apply(p, &exec, &mut claimed).await? {
                Decision::Schedule => {}
                other => {
                    decision = other;
                    break;
                }
            }
        }
        let scheduled = match decision {
            Decision::Schedule => {
                advance(&self.ctx, &exec, ExecutionStatus::Scheduled, JsonMap::new())
                    .await?
                    .is_some()
            }
            Decision::Delay if exec.status == ExecutionStatus::Requested => {
                advance(&self.ctx, &exec, ExecutionStatus::Delayed, JsonMap::new()).await?;
                false
            }
            Decision::Delay => false,
            Decision::Cancel(reason) => {
                let mut patch = JsonMap::new();
                patch.insert("result".into(), json!({"error": reason}));
                advance(&self.ctx, &exec, ExecutionStatus::Canceled, patch).await?;
                false
            }
        };
        // Slots are held only by scheduled executions. A slot is claimed per execution, so
        // another scheduler that raced us and scheduled it holds the very same slot: keep it.
        if !scheduled && !claimed.is_empty() && !self.holds_slot(id).await? {
            for slot in claimed {
                super::concurrency::unclaim(&self.ctx, &slot, &exec.id).await?;
            }
        }
        Ok(())
    }

    /// Whether the execution is (now) past scheduling and not completed: it needs its slot.
    async fn holds_slot(&self, id: &str) -> Result<bool, ServiceError> {
        Ok(repo::<Execution>(&*self.ctx.store)
            .get(id)
            .await?
            .is_some_and(|e| {
                !e.status.is_completed()
                    && !matches!(
                        e.status,
                        ExecutionStatus::Requested | ExecutionStatus::Delayed
                    )
            }))
    }

    /// One policy's decision; a concurrency or rate slot it claims is pushed onto `claimed`.
    async fn apply(
        &self,
        p: &Policy,
        exec: &Execution,
        claimed: &mut Vec<String>,
    ) -> Result<Decision, ServiceError> {
        let over = |action: Option<&Value>, what: String| match action.and_then(Value::as_str) {
            Some("cancel") => Decision::Cancel(what),
            _ => Decision::Delay,
        };
        let threshold = p.parameters.get("threshold").and_then(Value::as_u64);
        match p.policy_type.as_str() {
            "action.concurrency" => {
                let Some(t) = threshold else {
                    return Ok(Decision::Schedule);
                };
                let group = super::concurrency::group(&p.policy_ref, None);
                if let Some(slot) =
                    super::concurrency::claim(&self.ctx, &group, t, &exec.id).await?
                {
                    claimed.push(slot);
                } else {
                    return Ok(over(
                        p.parameters.get("action"),
                        format!(
                            "concurrency threshold {t} of policy {} reached",
                            p.policy_ref
                        ),
                    ));
                }
            }
            "action.concurrency.attr" => {
                let Some(t) = threshold else {
                    return Ok(Decision::Schedule);
                };
                let attrs: Vec<String> = p
                    .parameters
                    .get("attributes")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(Value::as_str)
                            .map(String::from)
                            .collect()
                    })
                    .unwrap_or_default();
                let group =
                    super::concurrency::group(&p.policy_ref, Some((&attrs, &exec.parameters)));
                if let Some(slot) =
                    super::concurrency::claim(&self.ctx, &group, t, &exec.id).await?
                {
                    claimed.push(slot);
                } else {
                    return Ok(over(
                        p.parameters.get("action"),
                        format!(
                            "concurrency threshold {t} of policy {} reached",
                            p.policy_ref
                        ),
                    ));
                }
            }
            "action.ratelimit" => {
                let Some(limit) = p.parameters.get("limit").and_then(Value::as_u64) else {
                    return Ok(Decision::Schedule);
                };
                let interval = p
                    .parameters
                    .get("interval")
                    .and_then(Value::as_f64)
                    .unwrap_or(60.0);
                let window = chrono::TimeDelta::milliseconds((interval * 1000.0) as i64);
                let group = format!("{}@rate", p.policy_ref);
                match super::concurrency::claim_rate(&self.ctx, &group, limit, window, &exec.id)
                    .await?
                {
                    Some(slot) => claimed.push(slot),
                    None => {
                        return Ok(over(
                            p.parameters.get("action"),
                            format!(
                                "rate limit {limit}/{interval}s of policy {} reached",
                                p.policy_ref
                            ),
                        ))
                    }
                }
            }
            _ => {} // retry is applied when an execution ends (see the worker)
        }
        Ok(Decision::Schedule)
    }
}
