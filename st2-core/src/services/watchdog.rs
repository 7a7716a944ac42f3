//! Runner heartbeats and the watchdog that turns the executions of a dead runner into
//! `abandoned` ones.
//!
//! Every process with the `actionrunner` role holds its own lease `actionrunner:<node id>` in
//! [`Collection::Leases`](crate::store::Collection::Leases) ([`Heartbeat`]), renewed every third
//! of `[coordination] heartbeat_ttl`. An execution the runner claims carries its node id as
//! `lease_owner`. The [`Watchdog`] (run by every scheduler; its transitions are
//! compare-and-set, so several watchdogs are harmless) looks every
//! `[coordination] watchdog_interval` for `running`/`canceling`/`pausing` executions whose
//! owner's lease is missing or expired and moves them to `abandoned`, its result naming the
//! reason and the runner. The completion then does what any completion does: the notifier
//! applies an `action.retry` policy with `retry_on: abandoned`, a parent workflow fails the
//! task (unless the task handles it), concurrency slots are freed.
//!
//! Orquesta workflow executions whose workflow state is stored are left alone: the workflow
//! engine continues them from that state (as at a restart, see `workflows::recover`).
//!
//! The same sweep publishes again what a dead process stored but never published: trigger
//! instances still `pending`, and executions still `requested`, `[coordination]
//! republish_after` after they were created (the oldest [`REPUBLISH_BATCH`] of each per sweep).
//! Handling them is idempotent (claims by compare-and-set, ids derived from the instance), so
//! one that was only slow to be consumed is at worst looked at twice.
//!
//! This module does not run actions and does not decide retries.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use super::executions::transition;
use super::lease::Lease;
use super::{Ctx, ServiceError};
use crate::bus::names;
use crate::model::{Execution, ExecutionStatus, JsonMap, TriggerInstance};
use crate::store::{repo, Query};

/// At most this many stale trigger instances, and as many stale executions, are published
/// again per sweep.
pub const REPUBLISH_BATCH: u64 = 100;

/// Statuses in which an execution needs its runner alive.
pub const OWNED: [ExecutionStatus; 3] = [
    ExecutionStatus::Running,
    ExecutionStatus::Canceling,
    ExecutionStatus::Pausing,
];

/// The name of the heartbeat lease of the action runner `node_id`.
pub fn lease_name(node_id: &str) -> String {
    format!("actionrunner:{node_id}")
}

/// One action runner's heartbeat: its lease, renewed until stopped.
pub struct Heartbeat {
    lease: Lease,
}

impl Heartbeat {
    /// The heartbeat of this process (`ctx.node_id`) with `[coordination] heartbeat_ttl`.
    pub fn new(ctx: &Ctx) -> Self {
        Self {
            lease: Lease::new(
                ctx.store.clone(),
                lease_name(&ctx.node_id),
                ctx.node_id.clone(),
                ctx.coordination.heartbeat_ttl,
            ),
        }
    }

    /// Writes one beat (takes or renews the lease). Called before the runner takes work, so
    /// that an execution is never claimed by a runner without a lease.
    pub async fn beat(&self) -> Result<(), ServiceError> {
        match self.lease.try_acquire().await? {
            Some(_) => Ok(()),
            // Node ids are unique per process: someone else holding ours is a configuration
            // error (two processes given the same id).
            None => Err(ServiceError::Invalid(format!(
                "the heartbeat lease {} is held by another process",
                self.lease.name()
            ))),
        }
    }

    /// Renews the lease every third of its TTL until `stop`, then releases it (a clean stop
    /// has drained its executions, so nothing is left for the watchdog).
    pub fn spawn(self, stop: CancellationToken) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let period = (self.lease.ttl() / 3).max(Duration::from_millis(50));
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep(period) => {}
                }
                if let Err(e) = self.beat().await {
                    tracing::warn!(lease = %self.lease.name(), error = %e, "heartbeat not renewed");
                }
            }
            if let Err(e) = self.lease.release().await {
                tracing::warn!(lease = %self.lease.name(), error = %e, "heartbeat not released");
            }
        })
    }
}

/// Whether the action runner `node_id` has a live heartbeat lease now.
pub async fn runner_alive(ctx: &Ctx, node_id: &str) -> Result<bool, ServiceError> {
    let lease = Lease::new(
        ctx.store.clone(),
        lease_name(node_id),
        "watchdog",
        Duration::ZERO,
    );
    let now = chrono::Utc::now().timestamp_millis();
    Ok(lease.state().await?.is_some_and(|s| s.expires_at > now))
}

/// Whether `e` is an Orquesta workflow whose state is stored (continued by the workflow
/// engine, never abandoned for its runner's sake).
pub async fn recoverable_workflow(ctx: &Ctx, e: &Execution) -> Result<bool, ServiceError> {
    let runner = e.runner.get("name").and_then(Value::as_str);
    Ok(runner.is_some_and(super::workflows::handles)
        && super::workflows::find_by_execution(ctx, &e.id)
            .await?
            .is_some())
}

/// Finds executions of dead runners and abandons them; see the module docs.
pub struct Watchdog {
    ctx: Ctx,
}

impl Watchdog {
    /// A watchdog over the shared context.
    pub fn new(ctx: Ctx) -> Arc<Self> {
        Arc::new(Self { ctx })
    }

    /// Sweeps every `[coordination] watchdog_interval` until shutdown.
    pub fn start(self: Arc<Self>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let every = self.ctx.coordination.watchdog_interval;
            loop {
                tokio::select! {
                    _ = self.ctx.shutdown.cancelled() => break,
                    _ = tokio::time::sleep(every) => {}
                }
                match self.sweep().await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(count = n, "executions of dead runners abandoned"),
                    Err(e) => tracing::warn!(error = %e, "watchdog sweep failed"),
                }
                match self.republish_stale().await {
                    Ok(0) => {}
                    Ok(n) => {
                        tracing::info!(count = n, "stored but unpublished work published again")
                    }
                    Err(e) => tracing::warn!(error = %e, "republish sweep failed"),
                }
            }
        })
    }

    /// One pass: abandons the executions whose runner's heartbeat is missing or expired.
    /// Returns how many this call abandoned.
    pub async fn sweep(&self) -> Result<usize, ServiceError> {
        let statuses: Vec<Value> = OWNED.iter().map(|s| json!(s.as_str())).collect();
        let owned = repo::<Execution>(&*self.ctx.store)
            .find(&Query::all().is_in("status", statuses))
            .await?;
        let mut alive: HashMap<String, bool> = HashMap::new();
        let mut n = 0;
        for e in owned {
            let Some(owner) = e.lease_owner.clone() else {
                continue; // not claimed by a runner
            };
            let live = match alive.get(&owner) {
                Some(l) => *l,
                None => {
                    let l = runner_alive(&self.ctx, &owner).await?;
                    alive.insert(owner.clone(), l);
                    l
                }
            };
            if live || recoverable_workflow(&self.ctx, &e).await? {
                continue;
            }
            if abandon(&self.ctx, &e, &owner).await? {
                n += 1;
            }
        }
        Ok(n)
    }
}

impl Watchdog {
    /// One pass: publishes again the trigger instances still `pending` and the executions
    /// still `requested` longer than `[coordination] republish_after`. Returns how many.
    pub async fn republish_stale(&self) -> Result<usize, ServiceError> {
        let age = chrono::TimeDelta::from_std(self.ctx.coordination.republish_after)
            .unwrap_or(chrono::TimeDelta::MAX);
        let cutoff = chrono::Utc::now() - age;
        let stale = |ts: &str| {
            chrono::DateTime::parse_from_rfc3339(ts)
                .is_ok_and(|t| t.with_timezone(&chrono::Utc) < cutoff)
        };
        let oldest = |status: &str, by: &str| {
            Query::all()
                .eq("status", status)
                .sort(by, false)
                .page(0, Some(REPUBLISH_BATCH))
        };
        let mut n = 0;
        let tis = repo::<TriggerInstance>(&*self.ctx.store)
            .find(&oldest("pending", "occurrence_time"))
            .await?;
        for ti in tis.into_iter().filter(|t| stale(&t.occurrence_time)) {
            tracing::info!(trigger_instance = %ti.id, "pending too long: published again");
            super::dispatch::republish(&self.ctx, &ti).await?;
            n += 1;
        }
        let execs = repo::<Execution>(&*self.ctx.store)
            .find(&oldest("requested", "start_timestamp"))
            .await?;
        for e in execs.into_iter().filter(|e| stale(&e.start_timestamp)) {
            tracing::info!(execution = %e.id, "requested too long: published again");
            super::executions::publish(&self.ctx, &e, names::RK_UPDATE).await?;
            n += 1;
        }
        Ok(n)
    }
}

/// Moves `e` (as read) to `abandoned` because its runner `owner` stopped heartbeating, after
/// killing the process group its runner recorded when it runs on this machine. False when the
/// execution moved on meanwhile.
pub async fn abandon(ctx: &Ctx, e: &Execution, owner: &str) -> Result<bool, ServiceError> {
    super::worker::kill_orphan(e);
    let mut patch = JsonMap::new();
    patch.insert(
        "result".into(),
        json!({
            "error": format!(
                "the action runner {owner} running this execution stopped heartbeating \
                 (its lease expired): execution abandoned"
            ),
            "reason": "runner_lost",
            "runner": owner,
        }),
    );
    let done = transition(ctx, &e.id, &[e.status], ExecutionStatus::Abandoned, patch).await?;
    if done.is_some() {
        tracing::warn!(execution = %e.id, runner = %owner, "execution abandoned: its runner is gone");
    }
    Ok(done.is_some())
}
