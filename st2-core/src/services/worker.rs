//! The action runner service (StackStorm's `st2actionrunner`): claims `scheduled` executions
//! (compare-and-set to `running`, with this node as lease owner), renders their final
//! parameters, runs them with their runner, and stores the outcome. Cancel requests arrive on a
//! broadcast queue; the worker holding the execution stops its runner.
//!
//! Local child processes are recorded in the execution's `context.runner_process` as soon as
//! they start, so that a restart after a crash kills them ([`reclaim_on_start`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::executions::{self, advance, renderer, transition};
use super::{Ctx, ServiceError};
use crate::bus::{names, SubscribeSpec, Subscription};
use crate::model::{Execution, ExecutionOutput, ExecutionStatus, JsonMap};
use crate::runners::{ChildProcess, OutputChunk, RunContext, RunOutcome};
use crate::store::repo;

/// How long a graceful shutdown waits for running executions before canceling them.
pub const DRAIN_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// Default number of executions one worker runs at once.
pub const DEFAULT_CONCURRENCY: usize = 64;

/// The key of an execution's `context` holding the last local child process its runner
/// started (a [`ChildProcess`]).
pub const RUNNER_PROCESS_KEY: &str = "runner_process";

/// The action runner service.
pub struct Worker {
    ctx: Ctx,
    running: Mutex<HashMap<String, CancellationToken>>,
    slots: Arc<Semaphore>,
    slots_total: usize,
}

impl Worker {
    /// A worker running at most `concurrency` executions at once.
    pub fn new(ctx: Ctx, concurrency: usize) -> Arc<Self> {
        let n = concurrency.max(1);
        Arc::new(Self {
            ctx,
            running: Mutex::new(HashMap::new()),
            slots: Arc::new(Semaphore::new(n)),
            slots_total: n,
        })
    }

    /// Subscribes, then consumes scheduled executions and cancel requests in a task until the
    /// bus closes.
    pub async fn start(self: Arc<Self>) -> Result<tokio::task::JoinHandle<()>, ServiceError> {
        // The heartbeat lease exists before the first claim (see `watchdog`).
        let heartbeat = super::watchdog::Heartbeat::new(&self.ctx);
        heartbeat.beat().await?;
        let prefetch = u16::try_from(self.slots.available_permits()).unwrap_or(u16::MAX);
        let work = self
            .ctx
            .bus
            .subscribe(
                SubscribeSpec::work(
                    names::ACTIONRUNNER_WORK,
                    names::LIVEACTION_STATUS,
                    ["scheduled"],
                )
                .with_prefetch(prefetch),
            )
            .await?;
        let cancels = self
            .ctx
            .bus
            .subscribe(SubscribeSpec::broadcast(
                names::ACTIONRUNNER_CANCEL,
                names::LIVEACTION_STATUS,
                ["canceling"],
            ))
            .await?;
        Ok(tokio::spawn(async move {
            // Beats until the drain is over, then releases the lease.
            let stop = CancellationToken::new();
            let beating = heartbeat.spawn(stop.clone());
            self.consume(work, cancels).await;
            stop.cancel();
            let _ = beating.await;
        }))
    }

    async fn consume(self: Arc<Self>, mut work: Subscription, mut cancels: Subscription) {
        loop {
            tokio::select! {
                _ = self.ctx.shutdown.cancelled() => break,
                d = work.next() => {
                    let Some(d) = d else { break };
                    let Ok(d) = d else { continue };
                    let exec = executions::from_status_message(&self.ctx, d.message()).await;
                    let _ = d.ack().await;
                    let exec = match exec {
                        Ok(Some(exec)) => exec,
                        Ok(None) => continue,
                        Err(e) => {
                            tracing::warn!(error = %e, "cannot read a scheduled execution");
                            continue;
                        }
                    };
                    let Ok(permit) = Arc::clone(&self.slots).acquire_owned().await else { break };
                    let me = Arc::clone(&self);
                    tokio::spawn(async move {
                        let id = exec.id.clone();
                        if let Err(e) = me.run_scheduled(exec).await {
                            tracing::warn!(execution = %id, error = %e, "execution failed to run");
                        }
                        drop(permit);
                    });
                }
                c = cancels.next() => {
                    let Some(c) = c else { break };
                    let Ok(c) = c else { continue };
                    if let Some(id) = c.message().value().ok().and_then(|v| v.get("id").and_then(Value::as_str).map(String::from)) {
                        self.cancel_local(&id);
                    }
                    let _ = c.ack().await;
                }
            }
        }
        self.drain(DRAIN_GRACE).await;
    }

    /// Graceful shutdown: lets running executions finish for up to `grace`, then cancels the
    /// rest and waits for their runners to stop (their status becomes `canceled`).
    pub async fn drain(&self, grace: std::time::Duration) {
        let deadline = tokio::time::Instant::now() + grace;
        let total = self.slots_total;
        let busy = |w: &Self| total - w.slots.available_permits();
        while busy(self) > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        if busy(self) > 0 {
            let tokens: Vec<CancellationToken> = self
                .running
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .values()
                .cloned()
                .collect();
            tracing::warn!(
                count = tokens.len(),
                "shutdown: canceling executions still running"
            );
            for t in tokens {
                t.cancel();
            }
            let _ = self
                .slots
                .acquire_many(u32::try_from(total).unwrap_or(u32::MAX))
                .await;
        }
    }

    /// Stops the runner of an execution this worker is running; false if it runs none.
    pub fn cancel_local(&self, id: &str) -> bool {
        let guard = self.running.lock().unwrap_or_else(|p| p.into_inner());
        match guard.get(id) {
            Some(t) => {
                t.cancel();
                true
            }
            None => false,
        }
    }

    /// Runs one execution: claim, render, run, store the outcome.
    pub async fn execute(&self, id: &str) -> Result<(), ServiceError> {
        match repo::<Execution>(&*self.ctx.store).get(id).await? {
            Some(exec) => self.run_scheduled(exec).await,
            None => Err(ServiceError::NotFound {
                kind: "execution",
                id: id.to_string(),
            }),
        }
    }

    /// [`Worker::execute`] of an execution as its `scheduled` message carried it: the claim
    /// is a compare-and-set from `scheduled`, so a copy gone stale claims nothing.
    async fn run_scheduled(&self, scheduled: Execution) -> Result<(), ServiceError> {
        if scheduled.status != ExecutionStatus::Scheduled {
            return Ok(());
        }
        let id = scheduled.id.as_str();
        let mut claim = JsonMap::new();
        claim.insert("lease_owner".into(), json!(self.ctx.node_id));
        let Some(exec) = advance(&self.ctx, &scheduled, ExecutionStatus::Running, claim).await?
        else {
            return Ok(()); // canceled meanwhile, or claimed by another worker
        };
        // Orquesta workflows are not run by a runner: the workflow service takes them over
        // (except the pack operations `pack_ops` carries out itself).
        let runner = exec.runner.get("name").and_then(Value::as_str);
        let action_ref = exec.action.get("ref").and_then(Value::as_str);
        if runner.is_some_and(super::workflows::handles)
            && !action_ref.is_some_and(super::pack_ops::handles)
        {
            return super::workflows::start(&self.ctx, &exec).await;
        }
        let token = CancellationToken::new();
        self.running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.to_string(), token.clone());
        let outcome = self.run_action(&exec, token).await;
        self.running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
        let (status, result) = match outcome {
            Ok(o) => (o.status, o.result),
            Err(e) => (ExecutionStatus::Failed, json!({"error": e.to_string()})),
        };
        let mut patch = JsonMap::new();
        patch.insert("result".into(), result);
        // `exec` is the document as claimed: if it is still `running`, one compare-and-set ends
        // it; if a cancel moved it on meanwhile, read it again.
        let mut done = advance(&self.ctx, &exec, status, patch.clone()).await?;
        if done.is_none() {
            done = transition(
                &self.ctx,
                id,
                &[ExecutionStatus::Running, ExecutionStatus::Canceling],
                status,
                patch.clone(),
            )
            .await?;
        }
        if done.is_none() {
            // Status moved to canceling between our read and write: settle as canceled.
            transition(
                &self.ctx,
                id,
                &[ExecutionStatus::Canceling],
                ExecutionStatus::Canceled,
                patch,
            )
            .await?;
        }
        Ok(())
    }

    async fn run_action(
        &self,
        exec: &Execution,
        cancel: CancellationToken,
    ) -> Result<RunOutcome, ServiceError> {
        let action_ref = exec
            .action
            .get("ref")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let loaded = self
            .ctx
            .catalog
            .action(&*self.ctx.store, action_ref)
            .await?;
        let (action, runner_type) = (loaded.action.clone(), &loaded.runner);
        let config = (*self
            .ctx
            .catalog
            .pack_config(&*self.ctx.store, &action.pack)
            .await?)
            .clone();
        let r = renderer(
            &self.ctx,
            &action,
            runner_type,
            &exec.context,
            config.clone(),
        )?;
        let params = r.render_final(&executions::open_secrets(&self.ctx, &exec.parameters)?)?;
        // Stand-in until the Orquesta engine runs the `packs.install`/`packs.uninstall`
        // workflows (see `pack_ops`).
        if super::pack_ops::handles(&action.action_ref) {
            return Ok(super::pack_ops::run(&self.ctx, &action.action_ref, &params).await);
        }
        let (runner_params, action_params) = r.split(&params);
        if super::action_chain::handles(&runner_type.name) {
            let pack_dir = self.ctx.paths.find_pack(&action.pack);
            return Ok(super::action_chain::run(
                &self.ctx,
                exec,
                &action,
                pack_dir.as_deref(),
                &action_params,
                &runner_params,
                &cancel,
            )
            .await);
        }
        let runner =
            self.ctx
                .runners
                .get(&runner_type.name)
                .ok_or_else(|| ServiceError::NotFound {
                    kind: "runner",
                    id: runner_type.name.clone(),
                })?;
        let pack_dir = self.ctx.paths.find_pack(&action.pack);
        let venv = Some(self.ctx.paths.virtualenv(&action.pack))
            .filter(|v| v.join("bin").join("python").exists());
        let (output, mut chunks) = tokio::sync::mpsc::channel::<OutputChunk>(256);
        let forward = {
            let ctx = self.ctx.clone();
            let (exec_id, action_ref, runner_ref) = (
                exec.id.clone(),
                action.action_ref.clone(),
                runner_type.name.clone(),
            );
            tokio::spawn(async move {
                while let Some(chunk) = chunks.recv().await {
                    let out = ExecutionOutput {
                        id: String::new(),
                        execution_id: exec_id.clone(),
                        action_ref: action_ref.clone(),
                        runner_ref: runner_ref.clone(),
                        timestamp: super::now_iso(),
                        output_type: chunk.stream.as_str().to_string(),
                        data: chunk.data,
                    };
                    store_output(&ctx, out).await;
                }
            })
        };
        let user = exec
            .context
            .get("user")
            .and_then(Value::as_str)
            .unwrap_or(super::context::SYSTEM_USER)
            .to_string();
        let (processes, mut started) = tokio::sync::mpsc::unbounded_channel::<ChildProcess>();
        let record = {
            let (ctx, exec) = (self.ctx.clone(), exec.clone());
            tokio::spawn(async move {
                while let Some(p) = started.recv().await {
                    record_process(&ctx, &exec, &p).await;
                }
            })
        };
        let run_ctx = RunContext {
            execution_id: exec.id.clone(),
            action,
            runner_params,
            action_params,
            pack_dir,
            virtualenv: venv,
            config,
            user,
            api_url: self.ctx.api_url.clone(),
            auth_token: None,
            output,
            cancel,
            datastore: self.ctx.datastore.clone().map(|d| {
                Arc::new(super::kv_access::ActionDatastore(d))
                    as Arc<dyn crate::runners::DatastoreAccess>
            }),
            processes: Some(processes),
        };
        let outcome = runner.run(run_ctx).await;
        let _ = forward.await;
        let _ = record.await;
        Ok(outcome)
    }
}

/// Stores one chunk of live output, then publishes it on `st2.execution.output` (the stream's
/// `st2.execution.output__create`). A store failure is logged, not fatal: the chunk is still
/// published and the final result holds the whole output.
async fn store_output(ctx: &Ctx, mut out: ExecutionOutput) {
    match repo::<ExecutionOutput>(&*ctx.store).save(out.clone()).await {
        Ok(saved) => out = saved,
        Err(e) => tracing::warn!(execution = %out.execution_id, error = %e, "cannot store output"),
    }
    let msg = serde_json::to_value(&out).unwrap_or(Value::Null);
    let _ = ctx
        .bus
        .publish_json(names::EXECUTION_OUTPUT, names::RK_CREATE, &msg)
        .await;
}

/// Stores `p` in `context.runner_process` of `exec` while it is still running or canceling.
async fn record_process(ctx: &Ctx, exec: &Execution, p: &ChildProcess) {
    let mut context = exec.context.clone();
    context.insert(RUNNER_PROCESS_KEY.into(), json!(p));
    let mut patch = JsonMap::new();
    patch.insert("context".into(), Value::Object(context));
    let expected = [json!("running"), json!("canceling")];
    if let Err(e) = repo::<Execution>(&*ctx.store)
        .compare_and_set(&exec.id, "status", &expected, patch)
        .await
    {
        tracing::warn!(execution = %exec.id, pid = p.pid, error = %e, "cannot record the child process");
    }
}

/// Kills what is left of the child process an execution's runner recorded, if it still runs
/// on this machine (the record names the boot and start time, so a pid reused or on another
/// host is never hit).
pub(crate) fn kill_orphan(e: &Execution) {
    let Some(p) = e
        .context
        .get(RUNNER_PROCESS_KEY)
        .and_then(|v| serde_json::from_value::<ChildProcess>(v.clone()).ok())
    else {
        return;
    };
    if p.kill_if_alive() {
        tracing::info!(execution = %e.id, pgid = p.pgid, "killed the process group left by a previous run");
    }
}

/// Executions left `running`/`canceling` by a process that is gone become `abandoned`, after
/// the process group their runner recorded is killed if it still runs;
/// `requested`/`scheduled` ones are published again. Called at start in standalone mode, where
/// every earlier lease belonged to a previous run of this process.
pub async fn reclaim_on_start(ctx: &Ctx) -> Result<usize, ServiceError> {
    use crate::store::Query;
    let mut n = 0;
    let execs = repo::<Execution>(&*ctx.store);
    for e in execs
        .find(&Query::all().is_in(
            "status",
            vec![json!("running"), json!("canceling"), json!("pausing")],
        ))
        .await?
    {
        // A workflow whose run is stored continues from its state (`workflows::recover`).
        if super::watchdog::recoverable_workflow(ctx, &e).await? {
            continue;
        }
        // An execution of another runner that is still heartbeating is that runner's.
        if let Some(owner) = e.lease_owner.as_deref() {
            if owner != ctx.node_id && super::watchdog::runner_alive(ctx, owner).await? {
                continue;
            }
        }
        kill_orphan(&e);
        let mut patch = JsonMap::new();
        patch.insert(
            "result".into(),
            json!({"error": "the runner of this execution went away (process restarted)"}),
        );
        if transition(ctx, &e.id, &[e.status], ExecutionStatus::Abandoned, patch)
            .await?
            .is_some()
        {
            n += 1;
        }
    }
    for e in execs
        .find(&Query::all().is_in("status", vec![json!("requested"), json!("scheduled")]))
        .await?
    {
        executions::publish(ctx, &e, names::RK_UPDATE).await?;
        n += 1;
    }
    // Trigger instances not fully processed go back to the rules engine.
    let tis = repo::<crate::model::TriggerInstance>(&*ctx.store);
    for ti in tis
        .find(&Query::all().is_in("status", vec![json!("pending"), json!("processing")]))
        .await?
    {
        super::dispatch::republish(ctx, &ti).await?;
        n += 1;
    }
    Ok(n)
}
