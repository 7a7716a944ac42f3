//! Trigger dispatch: a payload for a trigger becomes a stored `pending` trigger instance (and a
//! trace), then a message on `st2.trigger_instances_dispatch`. Stored before it is published, so
//! an acknowledged webhook is never lost.
//!
//! A trigger type with `preprocessing:` steps has them applied here, before the instance is
//! stored ([`super::preprocess`]): the stored payload carries what the steps extracted, and a
//! rejected, suppressed or failed instance is stored with its `preprocessing` record and never
//! published.

use serde_json::{json, Value};

use super::preprocess::Verdict;
use super::{now_iso, Ctx, ServiceError};
use crate::bus::names;
use crate::model::{Trace, TraceComponent, Trigger, TriggerInstance, TriggerType};
use crate::store::{repo, Collection, Repo, Write};

/// Largest payload accepted, serialised (StackStorm has none; a bound keeps memory bounded).
pub const MAX_PAYLOAD_BYTES: usize = 4 * 1024 * 1024;

/// Refuses a payload larger than [`MAX_PAYLOAD_BYTES`] once serialised.
fn check_size(payload: &Value) -> Result<(), ServiceError> {
    let size = serde_json::to_vec(payload)
        .map(|v| v.len())
        .unwrap_or(usize::MAX);
    if size > MAX_PAYLOAD_BYTES {
        return Err(ServiceError::Invalid(format!(
            "payload of {size} bytes exceeds the limit of {MAX_PAYLOAD_BYTES} bytes"
        )));
    }
    Ok(())
}

/// Finds the trigger for a ref: a trigger document, or the shadow trigger of a trigger type.
pub async fn resolve_trigger(
    ctx: &Ctx,
    trigger_ref: &str,
) -> Result<(Trigger, Option<TriggerType>), ServiceError> {
    let r = ctx.catalog.trigger(&*ctx.store, trigger_ref).await?;
    Ok((r.trigger.clone(), r.trigger_type.clone()))
}

/// The trace a dispatched instance belongs to (StackStorm's trace tag).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TraceTag {
    /// A tag given from outside (a client's `St2-Trace-Tag` header, a sensor, a timer, an
    /// execution's trace context): the instance joins the trace with that tag, or starts it.
    Join(String),
    /// The trace with this id, known to the caller (an execution's `trace_context`): the
    /// instance joins it without looking it up, or starts a trace with `tag` if it is gone.
    Known {
        /// The trace's id.
        id: String,
        /// Its tag.
        tag: String,
    },
    /// A tag the caller just made unique (e.g. a webhook's `webhook-<url>-<uuid>`): the
    /// instance starts its trace without looking for one.
    New(String),
}

/// How a dispatch hands the stored trigger instance to the rules engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handoff {
    /// Wait for room on the rules engine's queue (ingress: webhooks, timers, sensors, API).
    /// Refused with [`ServiceError::Busy`] while the deferred backlog is over its high water.
    Wait,
    /// Never wait: when the queue is full, defer the publish (services that hold a delivery,
    /// such as the notifier; see [`super::deferred`]).
    NoWait,
}

/// Publishes a stored trigger instance to the rules engine again (a re-claim: it was stored
/// but maybe never published, or its processing never finished).
pub async fn republish(ctx: &Ctx, ti: &TriggerInstance) -> Result<(), ServiceError> {
    let msg = json!({"trigger_instance": ti});
    ctx.bus
        .publish_json(
            names::TRIGGER_INSTANCES_DISPATCH,
            names::RK_TRIGGER_INSTANCE,
            &msg,
        )
        .await?;
    Ok(())
}

/// Stores a trigger instance for `trigger_ref` with `payload` and publishes it to the rules
/// engine, waiting for room ([`Handoff::Wait`]). The payload is validated against the trigger
/// type's `payload_schema`.
pub async fn dispatch(
    ctx: &Ctx,
    trigger_ref: &str,
    payload: Value,
    trace_tag: Option<TraceTag>,
) -> Result<TriggerInstance, ServiceError> {
    dispatch_with(ctx, trigger_ref, payload, trace_tag, Handoff::Wait).await
}

/// [`dispatch`] with an explicit [`Handoff`].
pub async fn dispatch_with(
    ctx: &Ctx,
    trigger_ref: &str,
    payload: Value,
    trace_tag: Option<TraceTag>,
    handoff: Handoff,
) -> Result<TriggerInstance, ServiceError> {
    dispatch_as(ctx, None, trigger_ref, payload, trace_tag, handoff).await
}

/// Stores and publishes one instance, under `id` when given: an id the caller derives from what
/// caused it (see [`crate::model::derived_id`]), so that dispatching twice (a redelivered or
/// duplicated message, a consumer that crashed half-way) stores one instance. It is created
/// only if absent; when it is already stored, that instance is returned and nothing is written
/// or published (the first dispatch handed it on, or the watchdog's republish sweep does if
/// that one died). Without `id`, the instance and its trace are one batch.
pub async fn dispatch_as(
    ctx: &Ctx,
    id: Option<String>,
    trigger_ref: &str,
    payload: Value,
    trace_tag: Option<TraceTag>,
    handoff: Handoff,
) -> Result<TriggerInstance, ServiceError> {
    if handoff == Handoff::Wait && ctx.deferred.is_over_high_water() {
        return Err(ServiceError::Busy(format!(
            "{} trigger instances are waiting for the rules engine; retry later",
            ctx.deferred.len()
        )));
    }
    check_size(&payload)?;
    let resolved = ctx.catalog.trigger(&*ctx.store, trigger_ref).await?;
    resolved
        .validate_payload(&payload)
        .map_err(ServiceError::Schema)?;
    let trigger = &resolved.trigger;
    let mut payload = payload;
    // Preprocessing: decided under the trigger type's lock, held until the instance and the
    // state writes are stored together, so instances of a type are decided in arrival order.
    let mut state_writes = Vec::new();
    let mut verdict = Verdict::Accept;
    let mut preprocess_guard = None;
    if let Some(tt) = resolved
        .trigger_type
        .as_ref()
        .filter(|tt| !tt.preprocessing.is_empty())
    {
        let pipeline = ctx.catalog.preprocessors.pipeline(
            &ctx.engine,
            &tt.trigger_type_ref,
            &tt.preprocessing,
        );
        preprocess_guard = Some(ctx.catalog.preprocessors.lock(&tt.trigger_type_ref).await);
        let mut render = crate::template::RenderContext::new();
        if let Some(kv) = &ctx.kv {
            render = render.with_kv(kv.clone(), None);
        }
        (verdict, state_writes) = pipeline
            .run(&*ctx.store, &render, &mut payload, chrono::Utc::now())
            .await?;
    }
    let (status, record) = match &verdict {
        Verdict::Accept => ("pending", None),
        Verdict::Drop(r) => ("processed", Some(r.to_json())),
        Verdict::Fail(r) => ("processing_failed", Some(r.to_json())),
    };
    if let Verdict::Drop(r) | Verdict::Fail(r) = &verdict {
        tracing::debug!(trigger = %trigger.trigger_ref, outcome = r.outcome, step = r.step, reason = %r.reason, "trigger instance preprocessed");
    }
    let now = now_iso();
    let derived = id.is_some();
    // A derived instance's own trace gets a derived id too.
    let trace_id = id
        .as_deref()
        .map(|i| crate::model::derived_id(i, "trace"))
        .unwrap_or_default();
    let mut ti = TriggerInstance {
        id: id.unwrap_or_default(),
        trigger: trigger.trigger_ref.clone(),
        payload,
        occurrence_time: now.clone(),
        status: status.into(),
        preprocessing: record,
    };
    let w_ti = Repo::<TriggerInstance>::to_write(&mut ti)?;
    let component = TraceComponent {
        object_id: ti.id.clone(),
        component_ref: ti.trigger.clone(),
        updated_at: now.clone(),
        caused_by: json!({}),
    };
    // One trace per tag: a tagged event (e.g. the action trigger of an execution that a traced
    // rule started) joins the trace that tag already has, by appending to it once the instance
    // is stored (appends racing on one trace all land).
    let joined = match &trace_tag {
        Some(TraceTag::Join(tag)) => repo::<Trace>(&*ctx.store)
            .find_one(crate::store::Query::all().eq("trace_tag", tag.as_str()))
            .await?
            .map(|t| t.id),
        Some(TraceTag::Known { id, .. }) => Some(id.clone()),
        Some(TraceTag::New(_)) | None => None,
    };
    let tag = match trace_tag {
        Some(TraceTag::Join(t) | TraceTag::New(t) | TraceTag::Known { tag: t, .. }) => t,
        None => format!("trigger_instance-{}", ti.id),
    };
    let mut trace = Trace {
        id: trace_id,
        trace_tag: tag,
        trigger_instances: vec![component],
        rules: Vec::new(),
        action_executions: Vec::new(),
        start_timestamp: now,
    };
    let mut writes = state_writes;
    if joined.is_none() {
        writes.insert(0, Repo::<Trace>::to_write(&mut trace)?);
    }
    match (derived, w_ti) {
        // Under a derived id the instance is created only if absent, before its trace: a
        // second first-delivery (a duplicated message) finds it, and leaves the instance, its
        // trace and what the rules engine added to that trace as they are.
        (true, Write::Put { collection, doc }) => {
            if !ctx.store.insert_new(collection, doc).await? {
                drop(preprocess_guard);
                let stored = repo::<TriggerInstance>(&*ctx.store).get(&ti.id).await?;
                return Ok(stored.unwrap_or(ti));
            }
            ctx.store.apply(writes).await?;
        }
        // The common case, a new instance and its new trace: trace first, then the instance,
        // each on its own (a failure in between leaves a trace naming an instance that was
        // never accepted, which is harmless; the caller is told the dispatch failed).
        (_, w_ti) if writes.len() <= 1 && preprocess_guard.is_none() => {
            writes.push(w_ti);
            ctx.store.apply_each(writes).await?;
        }
        // With preprocessing state, the instance and the state are one atomic batch.
        (_, w_ti) => {
            writes.insert(0, w_ti);
            ctx.store.apply(writes).await?;
        }
    }
    if let Some(id) = joined {
        let mut items = crate::model::JsonMap::new();
        items.insert(
            "trigger_instances".into(),
            serde_json::to_value(&trace.trigger_instances)
                .map_err(|e| ServiceError::Invalid(format!("trace component: {e}")))?,
        );
        if ctx.store.append(Collection::Traces, &id, items).await? {
            trace.id = id;
        } else {
            // The trace is gone (garbage-collected): this instance starts it again.
            let w = Repo::<Trace>::to_write(&mut trace)?;
            ctx.store.apply(vec![w]).await?;
        }
    }
    drop(preprocess_guard);
    if verdict != Verdict::Accept {
        return Ok(ti); // stored with its record; never reaches the rules engine
    }
    let msg = json!({"trigger_instance": ti, "trace_id": trace.id, "trace_tag": trace.trace_tag});
    let (x, rk) = (
        names::TRIGGER_INSTANCES_DISPATCH,
        names::RK_TRIGGER_INSTANCE,
    );
    match handoff {
        Handoff::Wait => ctx.bus.publish_json(x, rk, &msg).await?,
        Handoff::NoWait => match ctx.bus.try_publish_json(x, rk, &msg).await {
            Ok(()) => {}
            Err(crate::bus::BusError::Full { .. }) => {
                ctx.deferred.push(ti.id.clone(), trace.id.clone());
            }
            Err(e) => return Err(e.into()),
        },
    }
    Ok(ti)
}

/// One dispatch of a batch ([`dispatch_batch`]).
#[derive(Debug, Clone)]
pub struct Dispatch {
    /// Trigger ref.
    pub trigger: String,
    /// Payload.
    pub payload: Value,
    /// Trace tag.
    pub trace_tag: Option<TraceTag>,
}

/// Dispatches several instances from one source, in order, as [`dispatch`] does each, but
/// storing consecutive instances of trigger types without preprocessing and without a trace tag
/// in one store write (one transaction for the lot), then publishing them in order. Instances
/// that need preprocessing or join a tagged trace go one at a time, between the batches, so the
/// order of the source is kept (a full rules engine backlog is waited out). Returns one result
/// per dispatch, in order.
pub async fn dispatch_batch(
    ctx: &Ctx,
    items: Vec<Dispatch>,
) -> Vec<Result<TriggerInstance, ServiceError>> {
    let mut out: Vec<Result<TriggerInstance, ServiceError>> = Vec::with_capacity(items.len());
    let mut pending: Vec<(usize, TriggerInstance, Trace)> = Vec::new();
    let mut writes: Vec<Write> = Vec::new();
    for item in items {
        let simple = item.trace_tag.is_none()
            && match ctx.catalog.trigger(&*ctx.store, &item.trigger).await {
                Ok(r) => r
                    .trigger_type
                    .as_ref()
                    .is_none_or(|tt| tt.preprocessing.is_empty()),
                Err(_) => false,
            };
        if !simple {
            flush(ctx, &mut pending, &mut writes, &mut out).await;
            // Wait out a full backlog here, so later instances cannot overtake this one.
            let r = loop {
                match dispatch(
                    ctx,
                    &item.trigger,
                    item.payload.clone(),
                    item.trace_tag.clone(),
                )
                .await
                {
                    Err(ServiceError::Busy(_)) if !ctx.shutdown.is_cancelled() => {
                        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                    }
                    r => break r,
                }
            };
            out.push(r);
            continue;
        }
        match prepare_simple(ctx, &item.trigger, item.payload).await {
            Ok((mut ti, mut trace)) => {
                let w = Repo::<TriggerInstance>::to_write(&mut ti)
                    .and_then(|w_ti| {
                        trace.trigger_instances[0].object_id = ti.id.clone();
                        trace.trace_tag = format!("trigger_instance-{}", ti.id);
                        Repo::<Trace>::to_write(&mut trace).map(|w_tr| (w_ti, w_tr))
                    })
                    .map_err(ServiceError::from);
                match w {
                    Ok((a, b)) => {
                        writes.push(a);
                        writes.push(b);
                        pending.push((out.len(), ti, trace));
                        // A placeholder, replaced when the batch is stored.
                        out.push(Err(ServiceError::Invalid("not stored".into())));
                    }
                    Err(e) => out.push(Err(e)),
                }
            }
            Err(e) => out.push(Err(e)),
        }
    }
    flush(ctx, &mut pending, &mut writes, &mut out).await;
    out
}

/// Checks a payload for a trigger type without preprocessing and builds its instance and
/// trace (ids assigned when written).
async fn prepare_simple(
    ctx: &Ctx,
    trigger_ref: &str,
    payload: Value,
) -> Result<(TriggerInstance, Trace), ServiceError> {
    check_size(&payload)?;
    let resolved = ctx.catalog.trigger(&*ctx.store, trigger_ref).await?;
    resolved
        .validate_payload(&payload)
        .map_err(ServiceError::Schema)?;
    let now = now_iso();
    let ti = TriggerInstance {
        id: String::new(),
        trigger: resolved.trigger.trigger_ref.clone(),
        payload,
        occurrence_time: now.clone(),
        status: "pending".into(),
        preprocessing: None,
    };
    let trace = Trace {
        id: String::new(),
        trace_tag: String::new(),
        trigger_instances: vec![TraceComponent {
            object_id: String::new(),
            component_ref: ti.trigger.clone(),
            updated_at: now.clone(),
            caused_by: json!({}),
        }],
        rules: Vec::new(),
        action_executions: Vec::new(),
        start_timestamp: now,
    };
    Ok((ti, trace))
}

/// Stores the pending instances of a batch in one write and publishes them in order, filling
/// in their results.
async fn flush(
    ctx: &Ctx,
    pending: &mut Vec<(usize, TriggerInstance, Trace)>,
    writes: &mut Vec<Write>,
    out: &mut [Result<TriggerInstance, ServiceError>],
) {
    if pending.is_empty() {
        return;
    }
    let batch = std::mem::take(pending);
    if let Err(e) = ctx.store.apply(std::mem::take(writes)).await {
        let e = ServiceError::from(e);
        for (i, _, _) in batch {
            out[i] = Err(ServiceError::Invalid(format!("not stored: {e}")));
        }
        return;
    }
    for (i, ti, trace) in batch {
        let msg =
            json!({"trigger_instance": ti, "trace_id": trace.id, "trace_tag": trace.trace_tag});
        out[i] = match ctx
            .bus
            .publish_json(
                names::TRIGGER_INSTANCES_DISPATCH,
                names::RK_TRIGGER_INSTANCE,
                &msg,
            )
            .await
        {
            Ok(()) => Ok(ti),
            // Stored: the start-up re-claim (or the deferred sweep) hands it over later.
            Err(e) => {
                ctx.deferred.push(ti.id.clone(), trace.id.clone());
                tracing::warn!(trigger_instance = %ti.id, error = %e, "publish deferred");
                Ok(ti)
            }
        };
    }
}
