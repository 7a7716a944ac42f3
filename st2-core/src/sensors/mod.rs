//! Sensors: what watches the outside world and dispatches trigger instances.
//!
//! - [`builtin`]: sensors implemented in Rust, selected by a sensor's `entry_point:
//!   builtin:<name>` (file tail, AMQP queue, MQTT v5), run by the `sensorcontainer` role.
//! - [`container`]: the `sensorcontainer` service that runs pack sensors written in Python
//!   ([`python`], each a supervised child process) and WebAssembly ([`wasm`], polled in a
//!   sandbox).
//! - [`claims`]: which container runs which sensor when there are several.

use std::time::Duration;

use serde_json::{json, Value};

use crate::model::Sensor;
use crate::services::{dispatch as dispatch_service, Ctx, ServiceError};

pub mod builtin;
pub mod claims;
pub mod container;
pub mod python;
#[cfg(feature = "wasm")]
pub mod wasm;

/// The triggers a sensor follows (those of its trigger types), by trigger id (or ref when it
/// has none).
pub(crate) async fn sensor_triggers(
    ctx: &Ctx,
    sensor: &Sensor,
) -> Result<python::channel::Triggers, ServiceError> {
    let mut out = python::channel::Triggers::new();
    for tt in &sensor.trigger_types {
        for t in ctx.catalog.triggers_of_type(&*ctx.store, tt).await?.iter() {
            let key = if t.id.is_empty() {
                t.trigger_ref.clone()
            } else {
                t.id.clone()
            };
            out.insert(key, t.clone());
        }
    }
    Ok(out)
}

/// Stores dispatches of a pack sensor in order, in batches where it can
/// ([`dispatch_service::dispatch_batch`]); refused ones are logged.
pub(crate) async fn dispatch_batch(
    ctx: &Ctx,
    sensor_ref: &str,
    items: Vec<dispatch_service::Dispatch>,
) {
    let refs: Vec<String> = items.iter().map(|i| i.trigger.clone()).collect();
    let results = dispatch_service::dispatch_batch(ctx, items).await;
    for (trigger, r) in refs.into_iter().zip(results) {
        if let Err(e) = r {
            tracing::warn!(sensor = %sensor_ref, trigger = %trigger, error = %e, "sensor dispatch refused");
        }
    }
}

/// How long a sensor's dispatch waits before trying again while the rules engine's backlog is
/// full.
const BUSY_RETRY: Duration = Duration::from_millis(20);

/// Stores one dispatch of a pack sensor, waiting while the rules engine's backlog is full (the
/// sensor slows down, nothing is lost); a refused dispatch (unknown trigger, invalid payload)
/// is logged, as StackStorm's sensor container does. A `null` payload is `{}`.
pub(crate) async fn dispatch(
    ctx: &Ctx,
    sensor_ref: &str,
    trigger: &str,
    payload: Value,
    trace_tag: Option<String>,
) {
    if trigger.is_empty() {
        tracing::warn!(sensor = %sensor_ref, "dispatch without a trigger ref");
        return;
    }
    let payload = if payload.is_null() {
        json!({})
    } else {
        payload
    };
    loop {
        match dispatch_service::dispatch(
            ctx,
            trigger,
            payload.clone(),
            trace_tag.clone().map(dispatch_service::TraceTag::Join),
        )
        .await
        {
            Ok(_) => return,
            Err(ServiceError::Busy(_)) if !ctx.shutdown.is_cancelled() => {
                tokio::time::sleep(BUSY_RETRY).await;
            }
            Err(e) => {
                tracing::warn!(sensor = %sensor_ref, trigger = %trigger, error = %e, "sensor dispatch refused");
                return;
            }
        }
    }
}
