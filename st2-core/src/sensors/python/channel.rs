//! The sensor container's side of a Python sensor's control channel: sends the init message,
//! forwards trigger changes (`add_trigger` / `update_trigger` / `remove_trigger`), stores the
//! sensor's dispatches in the order it made them and answers its datastore calls.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::sync::watch;

use crate::model::Trigger;
use crate::runners::datastore::serve_call;
use crate::runners::DatastoreAccess;
use crate::services::context::SYSTEM_USER;
use crate::services::dispatch::{Dispatch, TraceTag};
use crate::services::Ctx;

/// The triggers a sensor follows, by trigger id (or ref when it has none).
pub type Triggers = BTreeMap<String, Trigger>;

/// Serves one connected wrapper until it closes the channel: `init` first, then trigger
/// changes from `triggers` and the wrapper's calls. `sensor_ref` names the sensor in logs.
pub async fn serve(
    ctx: &Ctx,
    sensor_ref: &str,
    stream: UnixStream,
    mut init: Value,
    mut triggers: watch::Receiver<Triggers>,
    datastore: Option<Arc<dyn DatastoreAccess>>,
) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut sent: Triggers = triggers.borrow_and_update().clone();
    init["triggers"] = json!(sent.values().collect::<Vec<_>>());
    write.write_all(format!("{init}\n").as_bytes()).await?;
    let mut lines = BufReader::new(read).lines();
    let mut triggers_open = true;
    loop {
        tokio::select! {
            line = lines.next_line() => {
                let Some(line) = line? else { return Ok(()) };
                let mut next = Some(line);
                let mut eof = false;
                while let Some(line) = next.take() {
                    let Ok(msg) = serde_json::from_str::<Value>(&line) else {
                        tracing::warn!(sensor = %sensor_ref, "sensor sent a line that is not JSON");
                        continue;
                    };
                    if let Some(first) = as_dispatch(&msg) {
                        // Take the dispatches the sensor has already sent as one batch.
                        let mut batch = vec![first];
                        while batch.len() < MAX_BATCH {
                            match tokio::time::timeout(Duration::ZERO, lines.next_line()).await {
                                Ok(Ok(Some(l))) => {
                                    match serde_json::from_str::<Value>(&l).ok().as_ref().and_then(as_dispatch) {
                                        Some(d) => batch.push(d),
                                        None => {
                                            next = Some(l);
                                            break;
                                        }
                                    }
                                }
                                Ok(Ok(None)) | Ok(Err(_)) => {
                                    eof = true;
                                    break;
                                }
                                Err(_) => break,
                            }
                        }
                        crate::sensors::dispatch_batch(ctx, sensor_ref, batch).await;
                        continue;
                    }
                    let method = msg.get("method").and_then(Value::as_str).unwrap_or_default();
                    let params = msg.get("params").cloned().unwrap_or(Value::Null);
                    let id = msg.get("id").cloned().unwrap_or(Value::Null);
                    let reply = match serve_call(datastore.as_deref(), SYSTEM_USER, method, &params).await {
                        Ok(v) => json!({"id": id, "result": v}),
                        Err(e) => json!({"id": id, "error": e}),
                    };
                    write.write_all(format!("{reply}\n").as_bytes()).await?;
                }
                if eof {
                    return Ok(());
                }
            }
            changed = triggers.changed(), if triggers_open => {
                if changed.is_err() {
                    triggers_open = false;
                    continue;
                }
                let now = triggers.borrow_and_update().clone();
                for msg in changes(&sent, &now) {
                    write.write_all(format!("{msg}\n").as_bytes()).await?;
                }
                sent = now;
            }
        }
    }
}

/// Dispatches taken from the channel at once, at most.
const MAX_BATCH: usize = 512;

/// A `dispatch` message as a [`Dispatch`].
fn as_dispatch(msg: &Value) -> Option<Dispatch> {
    if msg.get("method").and_then(Value::as_str) != Some("dispatch") {
        return None;
    }
    let params = msg.get("params")?;
    Some(Dispatch {
        trigger: params
            .get("trigger")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        payload: match params.get("payload") {
            None | Some(Value::Null) => json!({}),
            Some(p) => p.clone(),
        },
        trace_tag: params
            .get("trace_tag")
            .and_then(Value::as_str)
            .map(|t| TraceTag::Join(t.to_string())),
    })
}

/// The calls that turn the wrapper's triggers `from` into `to`.
fn changes(from: &Triggers, to: &Triggers) -> Vec<Value> {
    let mut out = Vec::new();
    for (k, t) in from {
        if !to.contains_key(k) {
            out.push(json!({"method": "remove_trigger", "params": {"trigger": t}}));
        }
    }
    for (k, t) in to {
        match from.get(k) {
            None => out.push(json!({"method": "add_trigger", "params": {"trigger": t}})),
            Some(old) if old.parameters != t.parameters => {
                out.push(json!({"method": "update_trigger", "params": {"trigger": t}}))
            }
            Some(_) => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trigger(id: &str, p: Value) -> (String, Trigger) {
        let t: Trigger = serde_json::from_value(json!({
            "id": id, "name": id, "pack": "p", "ref": format!("p.{id}"), "type": "p.t",
            "parameters": p
        }))
        .expect("trigger");
        (id.to_string(), t)
    }

    #[test]
    fn changes_add_update_and_remove() {
        let from: Triggers = [trigger("a", json!({"x": 1})), trigger("b", json!({}))].into();
        let to: Triggers = [trigger("a", json!({"x": 2})), trigger("c", json!({}))].into();
        let calls: Vec<(String, String)> = changes(&from, &to)
            .iter()
            .map(|m| {
                (
                    m["method"].as_str().unwrap_or_default().to_string(),
                    m["params"]["trigger"]["id"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                )
            })
            .collect();
        assert_eq!(
            calls,
            vec![
                ("remove_trigger".to_string(), "b".to_string()),
                ("update_trigger".to_string(), "a".to_string()),
                ("add_trigger".to_string(), "c".to_string()),
            ]
        );
        assert!(changes(&to, &to).is_empty());
    }
}
