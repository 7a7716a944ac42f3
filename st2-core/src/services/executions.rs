//! Executions: requesting one (validating the action and its parameters), status transitions by
//! compare-and-set, and cancellation. Every transition is stored first, then published on
//! `st2.liveaction.status` (routing key = new status) and `st2.execution` (`create`/`update`).
//! Both messages carry the stored document, so the services consuming them (scheduler, action
//! runner, notifier, workflow engine) start from it instead of reading it again; their
//! compare-and-set on the status makes a message that is already stale harmless.

use serde_json::{json, Value};

use super::context::SYSTEM_USER;
use super::dispatch::Handoff;
use super::{now_iso, Ctx, ServiceError};
use crate::bus::{names, Message};
use crate::model::{Action, Execution, ExecutionStatus, JsonMap, LiveActionRef, RunnerType};
use crate::store::{repo, Repo};
use crate::template::params::ParamRenderer;

/// Prefix of a secret parameter value encrypted at rest (beyond StackStorm, which stores secret
/// parameters in clear): `st2enc:` + the datastore cipher's hex of the JSON value.
pub const ENCRYPTED_PARAM_PREFIX: &str = "st2enc:";

/// Encrypts the values of `secret` parameters with the datastore key (no key: unchanged).
pub fn seal_secrets(ctx: &Ctx, params: &mut JsonMap, specs: &crate::model::ParamMap) {
    let Some(key) = ctx.datastore.as_ref().and_then(|d| d.key()) else {
        return;
    };
    for (name, spec) in specs {
        if !spec.secret {
            continue;
        }
        if let Some(v) = params.get_mut(name) {
            if v.is_null()
                || v.as_str()
                    .is_some_and(|s| s.starts_with(ENCRYPTED_PARAM_PREFIX))
            {
                continue;
            }
            let plain = serde_json::to_string(v).unwrap_or_default();
            *v = Value::String(format!("{ENCRYPTED_PARAM_PREFIX}{}", key.encrypt(&plain)));
        }
    }
}

/// Decrypts values sealed by [`seal_secrets`]; a value that cannot be decrypted is an error.
pub fn open_secrets(ctx: &Ctx, params: &JsonMap) -> Result<JsonMap, ServiceError> {
    let mut out = params.clone();
    for (name, v) in out.iter_mut() {
        let Some(hex) = v
            .as_str()
            .and_then(|s| s.strip_prefix(ENCRYPTED_PARAM_PREFIX))
        else {
            continue;
        };
        let key = ctx
            .datastore
            .as_ref()
            .and_then(|d| d.key())
            .ok_or_else(|| {
                ServiceError::Invalid(format!(
                    "parameter \"{name}\" is encrypted but no datastore key is configured"
                ))
            })?;
        let plain = key.decrypt(hex).map_err(|e| {
            ServiceError::Invalid(format!("cannot decrypt parameter \"{name}\": {e}"))
        })?;
        *v = serde_json::from_str(&plain).unwrap_or(Value::String(plain));
    }
    Ok(out)
}

/// Runner types whose actions are workflows.
pub const WORKFLOW_RUNNERS: &[&str] = &["orquesta", "action-chain"];

/// What is asked to run.
#[derive(Debug, Clone, Default)]
pub struct ExecutionRequest {
    /// Action ref (`pack.name`).
    pub action_ref: String,
    /// Parameters as given by the caller (rendered rule parameters, API body, ...).
    pub parameters: JsonMap,
    /// Who asks (`None`: the system user).
    pub user: Option<String>,
    /// Extra context (`trigger_instance`, `rule`, `trace_context`, `parent`, ...).
    pub context: JsonMap,
    /// Trigger, trigger type, trigger instance and rule docs when a rule caused it.
    pub trigger: Option<Value>,
    /// Trigger type doc.
    pub trigger_type: Option<Value>,
    /// Trigger instance doc.
    pub trigger_instance: Option<Value>,
    /// Rule doc.
    pub rule: Option<Value>,
    /// Delay in milliseconds before scheduling.
    pub delay: Option<u64>,
}

/// The pack config an action sees: the stored config, or the schema's defaults.
pub async fn pack_config(ctx: &Ctx, pack: &str) -> Result<JsonMap, ServiceError> {
    Ok((*ctx.catalog.pack_config(&*ctx.store, pack).await?).clone())
}

/// The action and its runner type, or a precise error.
pub async fn load_action(
    ctx: &Ctx,
    action_ref: &str,
) -> Result<(Action, RunnerType), ServiceError> {
    let loaded = ctx.catalog.action(&*ctx.store, action_ref).await?;
    Ok((loaded.action.clone(), loaded.runner.clone()))
}

/// The parameter renderer of an execution: runner + action specs, action and config context,
/// datastore.
pub fn renderer(
    ctx: &Ctx,
    action: &Action,
    runner: &RunnerType,
    context: &JsonMap,
    config: JsonMap,
) -> Result<ParamRenderer, ServiceError> {
    let mut r = ParamRenderer::for_action(
        &ctx.engine,
        &action.action_ref,
        &runner.runner_parameters,
        &action.parameters,
    )?
    .action_context(context.clone())
    .config_context(config);
    if let Some(kv) = &ctx.kv {
        r = r.kv(kv.clone(), Some(SYSTEM_USER.to_string()));
    }
    if let Some(d) = &ctx.decrypter {
        r = r.decrypter(d.clone());
    }
    Ok(r)
}

/// Creates an execution in status `requested` (or `delayed`) and publishes it, waiting for room
/// on the scheduler's queue.
pub async fn request(ctx: &Ctx, req: ExecutionRequest) -> Result<Execution, ServiceError> {
    request_with(ctx, req, Handoff::Wait).await
}

/// [`request`] with an explicit [`Handoff`]: with [`Handoff::NoWait`] the stored execution is
/// published by a task of its own, so a caller holding a delivery never waits on a full queue
/// (a crash before that publish leaves it `requested`, re-claimed at start).
pub async fn request_with(
    ctx: &Ctx,
    req: ExecutionRequest,
    handoff: Handoff,
) -> Result<Execution, ServiceError> {
    Ok(create(ctx, req, handoff, None).await?.0)
}

/// [`request`] under an id the caller derives from what caused it (see
/// [`crate::model::derived_id`]), so that asking twice (a redelivered message, a consumer that
/// crashed half-way) creates one execution. Returns the execution and whether this call created
/// it; an existing one is returned as it is, published again while it is still `requested`
/// (the first caller may have died before publishing it; the scheduler's compare-and-set makes
/// a second publish harmless).
pub async fn request_once(
    ctx: &Ctx,
    id: String,
    req: ExecutionRequest,
) -> Result<(Execution, bool), ServiceError> {
    // No read first: the insert-if-absent decides, so the common case costs no extra call.
    create(ctx, req, Handoff::Wait, Some(id)).await
}

/// An execution that already existed, published again when still `requested`.
async fn republished(ctx: &Ctx, existing: Execution) -> Result<(Execution, bool), ServiceError> {
    if existing.status == ExecutionStatus::Requested {
        publish(ctx, &existing, names::RK_CREATE).await?;
    }
    Ok((existing, false))
}

/// Validates and stores a new execution (under `id` when given, only if no execution has it)
/// and publishes it; `(execution, created)`.
async fn create(
    ctx: &Ctx,
    req: ExecutionRequest,
    handoff: Handoff,
    id: Option<String>,
) -> Result<(Execution, bool), ServiceError> {
    let loaded = ctx.catalog.action(&*ctx.store, &req.action_ref).await?;
    let (action, runner) = (&loaded.action, &loaded.runner);
    if !action.enabled {
        return Err(ServiceError::Invalid(format!(
            "Unable to execute. Action \"{}\" is disabled.",
            action.action_ref
        )));
    }
    if !runner.enabled {
        return Err(ServiceError::Invalid(format!(
            "Unable to execute. Runner \"{}\" is disabled.",
            runner.name
        )));
    }
    let user = req.user.clone().unwrap_or_else(|| SYSTEM_USER.to_string());
    let mut context = req.context.clone();
    context.insert("user".into(), Value::String(user.clone()));
    context
        .entry("pack")
        .or_insert_with(|| Value::String(action.pack.clone()));
    let config = (*ctx.catalog.pack_config(&*ctx.store, &action.pack).await?).clone();
    // Validate now (required, types, enum, immutable, templates): a bad request is refused
    // before anything is stored. Defaults are rendered again when the action runs.
    let r = renderer(ctx, action, runner, &context, config)?;
    let mut live = r.render_live(&req.parameters)?;
    let final_params = r.render_final(&live)?;
    r.check_required_and_enums(&final_params)?;
    seal_secrets(ctx, &mut live, r.specs());

    let now = now_iso();
    let mut exec = Execution {
        id: String::new(),
        action: loaded.action_json.clone(),
        runner: loaded.runner_json.clone(),
        liveaction: LiveActionRef::default(),
        status: ExecutionStatus::Requested,
        parameters: live,
        result: None,
        context,
        parent: req
            .context
            .get("parent")
            .and_then(|p| p.get("execution_id"))
            .and_then(Value::as_str)
            .map(String::from),
        children: Vec::new(),
        trigger: req.trigger,
        trigger_type: req.trigger_type,
        trigger_instance: req.trigger_instance,
        rule: req.rule,
        start_timestamp: now.clone(),
        end_timestamp: None,
        elapsed_seconds: None,
        delay: req.delay,
        log: vec![json!({"status": "requested", "timestamp": now})],
        notified: false,
        lease_owner: None,
    };
    let derived = id.is_some();
    exec.id = id.unwrap_or_else(crate::model::new_id);
    exec.liveaction = LiveActionRef {
        id: exec.id.clone(),
        action: action.action_ref.clone(),
        action_is_workflow: WORKFLOW_RUNNERS.contains(&runner.name.as_str()),
        runner_info: JsonMap::new(),
    };
    let w = Repo::<Execution>::to_write(&mut exec)?;
    match (derived, w) {
        (true, crate::store::Write::Put { collection, doc }) => {
            if !ctx.store.insert_new(collection, doc).await? {
                // An earlier delivery, or a concurrent one, stored it first.
                let existing = repo::<Execution>(&*ctx.store)
                    .get(&exec.id)
                    .await?
                    .ok_or_else(|| ServiceError::NotFound {
                        kind: "execution",
                        id: exec.id.clone(),
                    })?;
                return republished(ctx, existing).await;
            }
        }
        (_, w) => ctx.store.apply(vec![w]).await?,
    }
    match handoff {
        Handoff::Wait => publish(ctx, &exec, names::RK_CREATE).await?,
        Handoff::NoWait => {
            let (ctx, exec) = (ctx.clone(), exec.clone());
            tokio::spawn(async move {
                if let Err(e) = publish(&ctx, &exec, names::RK_CREATE).await {
                    tracing::warn!(execution = %exec.id, error = %e, "publish failed; left requested for re-claim");
                }
            });
        }
    }
    Ok((exec, true))
}

/// Publishes an execution's state: its status on `st2.liveaction.status`, the document on
/// `st2.execution`.
pub async fn publish(ctx: &Ctx, exec: &Execution, execution_rk: &str) -> Result<(), ServiceError> {
    let msg = Message::to_json(exec)?;
    publish_message(ctx, exec.status, msg, execution_rk).await
}

/// Publishes a message holding an execution's document (one encoding, sent on both
/// exchanges): on `st2.liveaction.status` under its status, on `st2.execution` under
/// `execution_rk`.
async fn publish_message(
    ctx: &Ctx,
    status: ExecutionStatus,
    msg: Message,
    execution_rk: &str,
) -> Result<(), ServiceError> {
    ctx.bus
        .publish(names::LIVEACTION_STATUS, status.as_str(), msg.clone())
        .await?;
    ctx.bus.publish(names::EXECUTION, execution_rk, msg).await?;
    Ok(())
}

/// The execution a `st2.liveaction.status` message carries. A message holding only `{"id"}`
/// (or one that does not decode as an execution) is looked up in the store. `Ok(None)`: no id,
/// or no such execution.
pub async fn from_status_message(
    ctx: &Ctx,
    msg: &Message,
) -> Result<Option<Execution>, ServiceError> {
    if let Ok(exec) = msg.decode::<Execution>() {
        if !exec.id.is_empty() {
            return Ok(Some(exec));
        }
    }
    let id = match msg.value().ok().as_ref().and_then(|v| v.get("id")) {
        Some(Value::String(id)) => id.clone(),
        _ => return Ok(None),
    };
    Ok(repo::<Execution>(&*ctx.store).get(&id).await?)
}

/// Moves an execution from one of `from` to `to` (compare-and-set), merging `patch`, logging
/// the transition and publishing it. `Ok(None)` when the execution was not in `from`.
pub async fn transition(
    ctx: &Ctx,
    id: &str,
    from: &[ExecutionStatus],
    to: ExecutionStatus,
    patch: JsonMap,
) -> Result<Option<Execution>, ServiceError> {
    let Some(current) = repo::<Execution>(&*ctx.store).get(id).await? else {
        return Err(ServiceError::NotFound {
            kind: "execution",
            id: id.to_string(),
        });
    };
    if !from.contains(&current.status) {
        return Ok(None);
    }
    advance(ctx, &current, to, patch).await
}

/// Moves an execution the caller has just read (or got back from its last transition) from
/// its status to `to`: [`transition`] without reading it again. The compare-and-set on its
/// status makes a stale `current` harmless: `Ok(None)` when the status moved meanwhile.
pub async fn advance(
    ctx: &Ctx,
    current: &Execution,
    to: ExecutionStatus,
    mut patch: JsonMap,
) -> Result<Option<Execution>, ServiceError> {
    let now = now_iso();
    let mut log = current.log.clone();
    log.push(json!({"status": to.as_str(), "timestamp": now}));
    patch.insert("status".into(), Value::String(to.as_str().into()));
    patch.insert("log".into(), Value::Array(log));
    if to.is_completed() {
        patch.insert("end_timestamp".into(), Value::String(now.clone()));
        if let (Ok(s), Ok(e)) = (
            chrono::DateTime::parse_from_rfc3339(&current.start_timestamp),
            chrono::DateTime::parse_from_rfc3339(&now),
        ) {
            let secs = (e - s).num_microseconds().unwrap_or(0) as f64 / 1e6;
            patch.insert("elapsed_seconds".into(), json!(secs));
        }
    }
    let expected = [Value::String(current.status.as_str().into())];
    let Some(text) = ctx
        .store
        .compare_and_set_text(
            crate::store::Collection::Executions,
            &current.id,
            "status",
            &expected,
            patch,
        )
        .await?
    else {
        return Ok(None);
    };
    let updated: Execution = serde_json::from_str(&text).map_err(|e| {
        ServiceError::Store(crate::store::StoreError::Decode {
            collection: crate::store::Collection::Executions,
            source: e,
        })
    })?;
    // The stored text is what the `st2.execution` event carries: no second serialisation.
    let msg = Message::new(text.into_bytes(), crate::bus::message::CONTENT_TYPE_JSON);
    publish_message(ctx, updated.status, msg, names::RK_UPDATE).await?;
    Ok(Some(updated))
}

/// Requests cancellation: executions not yet running are canceled at once; running ones go to
/// `canceling` and their runner is told to stop.
pub async fn cancel(ctx: &Ctx, id: &str) -> Result<Execution, ServiceError> {
    use ExecutionStatus::*;
    for _ in 0..5 {
        let Some(current) = repo::<Execution>(&*ctx.store).get(id).await? else {
            return Err(ServiceError::NotFound {
                kind: "execution",
                id: id.to_string(),
            });
        };
        if current.status.is_completed() || current.status == Canceling {
            return Ok(current);
        }
        if !current.status.is_cancelable() {
            return Err(ServiceError::Invalid(format!(
                "execution {id} in status {} cannot be canceled",
                current.status
            )));
        }
        let target = if current.status == Running
            || current.status == Pausing
            || current.status == Paused
            || current.status == Resuming
        {
            Canceling
        } else {
            Canceled
        };
        if let Some(e) = transition(ctx, id, &[current.status], target, JsonMap::new()).await? {
            return Ok(e);
        }
    }
    Err(ServiceError::Conflict {
        id: id.to_string(),
        expected: "cancelable".into(),
    })
}
