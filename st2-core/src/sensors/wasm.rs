//! WebAssembly sensors (our own; StackStorm has none): a pack sensor whose `entry_point` is a
//! module (`.wasm`, or `.wat` text) under `sensors/` is polled every `poll_interval` seconds
//! (default [`DEFAULT_POLL_INTERVAL`]) in the `wasm` runner's sandbox: no files, no network,
//! at most [`POLL_TIMEOUT`] and 64 MiB of memory per poll, compiled once and cached.
//!
//! Each poll runs the module as a WASI command with, on standard input,
//! `{"config": <pack config>, "state": <what the last poll kept, or null>, "poll": <n>,
//! "triggers": [<triggers of its trigger types>]}`, and reads from standard output either a
//! JSON array of payloads, dispatched to the sensor's first trigger type, or
//! `{"dispatch": [{"trigger": <ref, default the first type>, "payload": {...}}, ...],
//! "state": <any JSON>}`. The state is kept in the datastore under the sensor-local key
//! `<pack>.<Class>:state` (JSON text), so it survives restarts. A poll that fails (trap, exit
//! code, timeout, output that is not one of these) is logged and dispatches nothing.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::python::channel::Triggers;
use crate::model::{ExecutionStatus, JsonMap};
use crate::runners::datastore::KvKey;
use crate::runners::wasm::WasmRunner;
use crate::runners::DatastoreAccess;
use crate::services::context::SYSTEM_USER;
use crate::services::Ctx;
use crate::template::KvScope;

/// Poll interval of a WASM sensor whose metadata gives none, in seconds.
pub const DEFAULT_POLL_INTERVAL: f64 = 5.0;
/// Wall-time limit of one poll.
pub const POLL_TIMEOUT: Duration = Duration::from_secs(10);

/// Whether `entry_point` names a WebAssembly sensor.
pub fn is_wasm(entry_point: &str) -> bool {
    entry_point.ends_with(".wasm") || entry_point.ends_with(".wat")
}

/// What is needed to poll one WASM sensor.
#[derive(Debug, Clone)]
pub struct WasmSensorSpec {
    /// `pack.Class`.
    pub sensor_ref: String,
    /// Pack ref.
    pub pack: String,
    /// The sensor's class name (its local datastore namespace).
    pub class_name: String,
    /// The module file.
    pub module: PathBuf,
    /// Time between polls.
    pub poll_interval: Duration,
    /// The pack config.
    pub config: Value,
    /// Where the payloads of a plain array go: the sensor's first trigger type.
    pub default_trigger: Option<String>,
}

/// What one poll asked for.
#[derive(Debug, PartialEq)]
struct PollOutput {
    /// (trigger ref, payload).
    dispatch: Vec<(String, Value)>,
    /// The state to keep, when the output set one.
    state: Option<Value>,
}

/// Reads a poll's output (see the module docs).
fn parse_output(result: &Value, default_trigger: Option<&str>) -> Result<PollOutput, String> {
    let to_default = |payload: &Value| -> Result<(String, Value), String> {
        default_trigger
            .map(|t| (t.to_string(), payload.clone()))
            .ok_or_else(|| "the sensor has no trigger type to dispatch to".to_string())
    };
    match result {
        Value::Null => Ok(PollOutput {
            dispatch: Vec::new(),
            state: None,
        }),
        Value::Array(payloads) => Ok(PollOutput {
            dispatch: payloads.iter().map(to_default).collect::<Result<_, _>>()?,
            state: None,
        }),
        Value::Object(o) => {
            let mut dispatch = Vec::new();
            match o.get("dispatch") {
                None | Some(Value::Null) => {}
                Some(Value::Array(items)) => {
                    for item in items {
                        let payload = item.get("payload").cloned().unwrap_or(json!({}));
                        match item.get("trigger") {
                            None | Some(Value::Null) => dispatch.push(to_default(&payload)?),
                            Some(Value::String(t)) => dispatch.push((t.clone(), payload)),
                            Some(other) => {
                                return Err(format!("\"trigger\" must be a string, got {other}"))
                            }
                        }
                    }
                }
                Some(other) => return Err(format!("\"dispatch\" must be a list, got {other}")),
            }
            Ok(PollOutput {
                dispatch,
                state: o.get("state").cloned(),
            })
        }
        other => Err(format!(
            "the output must be a JSON list of payloads or an object with \"dispatch\", got {other}"
        )),
    }
}

/// Polls the sensor of `spec` until `stop` is cancelled.
pub async fn supervise(
    ctx: Ctx,
    spec: WasmSensorSpec,
    runner: Arc<WasmRunner>,
    triggers: watch::Receiver<Triggers>,
    stop: CancellationToken,
) {
    let datastore: Option<Arc<dyn DatastoreAccess>> = ctx.datastore.clone().map(|d| {
        Arc::new(crate::services::kv_access::ActionDatastore(d)) as Arc<dyn DatastoreAccess>
    });
    let key = KvKey {
        scope: KvScope::System,
        user: SYSTEM_USER.to_string(),
        name: format!("{}.{}:state", spec.pack, spec.class_name),
    };
    let mut state = match &datastore {
        Some(ds) => match ds.get_value(&key, false).await {
            Ok(Some(text)) => serde_json::from_str(&text).unwrap_or(Value::String(text)),
            Ok(None) => Value::Null,
            Err(e) => {
                tracing::warn!(sensor = %spec.sensor_ref, error = %e, "cannot read the sensor's state");
                Value::Null
            }
        },
        None => Value::Null,
    };
    let mut params = JsonMap::new();
    params.insert("timeout".into(), json!(POLL_TIMEOUT.as_secs()));
    tracing::info!(sensor = %spec.sensor_ref, module = %spec.module.display(), "wasm sensor started");
    let mut poll: u64 = 0;
    loop {
        poll += 1;
        let input = json!({
            "config": spec.config,
            "state": state,
            "poll": poll,
            "triggers": triggers.borrow().values().collect::<Vec<_>>(),
        });
        let stdin = serde_json::to_vec(&input).unwrap_or_default();
        let env = [("ST2_SENSOR_REF", spec.sensor_ref.as_str())];
        let outcome = runner
            .run_module(&spec.module, &params, None, stdin, &env, &stop)
            .await;
        if stop.is_cancelled() {
            return;
        }
        let result = outcome.result.get("result").cloned().unwrap_or(Value::Null);
        if outcome.status != ExecutionStatus::Succeeded {
            let error = outcome.result.get("error").cloned().unwrap_or(Value::Null);
            tracing::warn!(sensor = %spec.sensor_ref, status = outcome.status.as_str(), error = %error, "wasm sensor poll failed");
        } else {
            match parse_output(&result, spec.default_trigger.as_deref()) {
                Ok(out) => {
                    for (trigger, payload) in out.dispatch {
                        super::dispatch(&ctx, &spec.sensor_ref, &trigger, payload, None).await;
                    }
                    if let Some(new) = out.state.filter(|s| *s != state) {
                        if let Some(ds) = &datastore {
                            if let Err(e) = ds.set_value(&key, &new.to_string(), None, false).await
                            {
                                tracing::warn!(sensor = %spec.sensor_ref, error = %e, "cannot keep the sensor's state");
                            }
                        }
                        state = new;
                    }
                }
                Err(e) => {
                    tracing::warn!(sensor = %spec.sensor_ref, error = %e, "wasm sensor output refused")
                }
            }
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(spec.poll_interval) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs() {
        let d = Some("p.t");
        let out = parse_output(&json!([{"a": 1}, {"a": 2}]), d).expect("list");
        assert_eq!(
            out.dispatch,
            vec![
                ("p.t".to_string(), json!({"a": 1})),
                ("p.t".to_string(), json!({"a": 2}))
            ]
        );
        assert_eq!(out.state, None);
        let out = parse_output(
            &json!({"dispatch": [{"payload": {"x": 1}}, {"trigger": "q.u", "payload": {"y": 2}}], "state": {"n": 3}}),
            d,
        )
        .expect("object");
        assert_eq!(
            out.dispatch,
            vec![
                ("p.t".to_string(), json!({"x": 1})),
                ("q.u".to_string(), json!({"y": 2}))
            ]
        );
        assert_eq!(out.state, Some(json!({"n": 3})));
        assert!(parse_output(&Value::Null, d)
            .expect("null")
            .dispatch
            .is_empty());
        assert!(parse_output(&json!("text"), d).is_err());
        assert!(parse_output(&json!({"dispatch": 5}), d).is_err());
        assert!(parse_output(&json!([{"a": 1}]), None).is_err());
    }
}
