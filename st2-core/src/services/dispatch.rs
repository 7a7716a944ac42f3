//! Trigger dispatch: a payload for a trigger becomes a stored `pending` trigger instance (and a
//! trace), then a message on `st2.trigger_instances_dispatch`. Stored before it is published, so
//! an acknowledged webhook is never lost.

use serde_json::{json, Value};

use super::{now_iso, Ctx, ServiceError};
use crate::bus::names;
use crate::model::{Trace, TraceComponent, Trigger, TriggerInstance, TriggerType};
use crate::schema;
use crate::store::{repo, Repo, Write};

/// Largest payload accepted, serialised (StackStorm has none; a bound keeps memory bounded).
pub const MAX_PAYLOAD_BYTES: usize = 4 * 1024 * 1024;

/// Finds the trigger for a ref: a trigger document, or the shadow trigger of a trigger type.
pub async fn resolve_trigger(
    ctx: &Ctx,
    trigger_ref: &str,
) -> Result<(Trigger, Option<TriggerType>), ServiceError> {
    let trigger = repo::<Trigger>(&*ctx.store).get_by_ref(trigger_ref).await?;
    let trigger = match trigger {
        Some(t) => t,
        None => {
            let tt = repo::<TriggerType>(&*ctx.store)
                .get_by_ref(trigger_ref)
                .await?
                .ok_or_else(|| ServiceError::NotFound {
                    kind: "trigger",
                    id: trigger_ref.to_string(),
                })?;
            Trigger {
                id: String::new(),
                name: tt.name.clone(),
                pack: tt.pack.clone(),
                trigger_ref: tt.trigger_type_ref.clone(),
                uid: String::new(),
                trigger_type: tt.trigger_type_ref.clone(),
                parameters: Default::default(),
                ref_count: 0,
                description: tt.description.clone(),
            }
        }
    };
    let tt = repo::<TriggerType>(&*ctx.store)
        .get_by_ref(&trigger.trigger_type)
        .await?;
    Ok((trigger, tt))
}

/// Stores a trigger instance for `trigger_ref` with `payload` and publishes it to the rules
/// engine. The payload is validated against the trigger type's `payload_schema`.
pub async fn dispatch(
    ctx: &Ctx,
    trigger_ref: &str,
    payload: Value,
    trace_tag: Option<String>,
) -> Result<TriggerInstance, ServiceError> {
    let size = serde_json::to_vec(&payload)
        .map(|v| v.len())
        .unwrap_or(usize::MAX);
    if size > MAX_PAYLOAD_BYTES {
        return Err(ServiceError::Invalid(format!(
            "payload of {size} bytes exceeds the limit of {MAX_PAYLOAD_BYTES} bytes"
        )));
    }
    let (trigger, tt) = resolve_trigger(ctx, trigger_ref).await?;
    if let Some(tt) = &tt {
        if !tt.payload_schema.is_empty() {
            let schema = Value::Object(tt.payload_schema.clone());
            let file = std::path::Path::new(&tt.trigger_type_ref);
            schema::validate_instance(&schema, file, &payload).map_err(|mut errs| {
                for e in &mut errs {
                    e.field = format!("payload{}", e.field);
                }
                ServiceError::Schema(errs)
            })?;
        }
    }
    let now = now_iso();
    let mut ti = TriggerInstance {
        id: String::new(),
        trigger: trigger.trigger_ref.clone(),
        payload,
        occurrence_time: now.clone(),
        status: "pending".into(),
    };
    let w_ti = Repo::<TriggerInstance>::to_write(&mut ti)?;
    let component = TraceComponent {
        object_id: ti.id.clone(),
        component_ref: ti.trigger.clone(),
        updated_at: now.clone(),
        caused_by: json!({}),
    };
    // One trace per tag: a tagged event (e.g. the action trigger of an execution that a traced
    // rule started) joins the trace that tag already has.
    let existing = match &trace_tag {
        Some(tag) => {
            repo::<Trace>(&*ctx.store)
                .find_one(crate::store::Query::all().eq("trace_tag", tag.as_str()))
                .await?
        }
        None => None,
    };
    let mut trace = match existing {
        Some(mut t) => {
            t.trigger_instances.push(component);
            t
        }
        None => Trace {
            id: String::new(),
            trace_tag: trace_tag.unwrap_or_else(|| format!("trigger_instance-{}", ti.id)),
            trigger_instances: vec![component],
            rules: Vec::new(),
            action_executions: Vec::new(),
            start_timestamp: now,
        },
    };
    let w_trace = Repo::<Trace>::to_write(&mut trace)?;
    ctx.store.apply(vec![w_ti, w_trace]).await?;
    let msg = json!({"trigger_instance": ti, "trace_id": trace.id});
    ctx.bus
        .publish_json(
            names::TRIGGER_INSTANCES_DISPATCH,
            names::RK_TRIGGER_INSTANCE,
            &msg,
        )
        .await?;
    Ok(ti)
}

/// Appends components to a trace (read-modify-write; traces are append-only bookkeeping).
pub async fn extend_trace(
    ctx: &Ctx,
    trace_id: &str,
    rules: Vec<TraceComponent>,
    executions: Vec<TraceComponent>,
) -> Result<(), ServiceError> {
    let traces = repo::<Trace>(&*ctx.store);
    if let Some(mut t) = traces.get(trace_id).await? {
        t.rules.extend(rules);
        t.action_executions.extend(executions);
        let w: Write = Repo::<Trace>::to_write(&mut t)?;
        ctx.store.apply(vec![w]).await?;
    }
    Ok(())
}
