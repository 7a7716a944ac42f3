//! The SSE stream: `GET /stream/v1/stream` (also `/v1/stream`), StackStorm's event stream.
//!
//! Each event published on one of the streamed exchanges (`st2.execution`,
//! `st2.execution.output`, `st2.liveaction`, `st2.announcement`, `st2.workflow`, `st2.sensor`)
//! becomes a frame `event: st2.<exchange>__<routing key>\ndata: <compact JSON>\n\n`. A bare
//! `\n` is a heartbeat: one at connect, then one every [`HEARTBEAT`].
//!
//! Query parameters (all optional): `events` (comma list of fnmatch globs; default: announcements
//! and execution/liveaction create, update and delete), `action_refs`, `execution_ids`,
//! `end_event` and `end_execution_id`. With `end_execution_id`, the response ends right after
//! the `end_event` frame of that execution in a completed status; when the execution is already
//! completed at connect, its current state is sent at once and the response ends (StackStorm's
//! client has no timeout, and real st2 misses executions that finished before the connection).
//!
//! Subscriptions are made before the store is read, so nothing between the two is missed.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Query as QueryParams, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::Value;
use tokio::sync::mpsc;

use st2_core::bus::{names, SubscribeSpec};
use st2_core::model::Execution;
use st2_core::store::repo;

use crate::error::ApiError;
use crate::executions::view;
use crate::listing::{comma_list, RawParams};
use crate::AppState;

/// Time between heartbeats (StackStorm's `stream.heartbeat` default).
pub const HEARTBEAT: Duration = Duration::from_secs(25);

/// The exchanges whose events are streamed.
pub const STREAMED_EXCHANGES: &[&str] = &[
    names::EXECUTION,
    names::EXECUTION_OUTPUT,
    names::LIVEACTION,
    names::ANNOUNCEMENT,
    names::WORKFLOW,
    names::SENSOR,
];

/// Events sent when the client names none (StackStorm's defaults).
pub const DEFAULT_EVENTS: &[&str] = &[
    "st2.announcement__*",
    "st2.execution__create",
    "st2.execution__update",
    "st2.execution__delete",
    "st2.liveaction__create",
    "st2.liveaction__update",
    "st2.liveaction__delete",
];

/// Frames buffered per client before the slowest client starts losing the oldest events (the
/// broadcast queues drop oldest; the client's own buffer blocks its forwarder).
const CLIENT_BUFFER: usize = 256;

/// The routes of this module (mounted under `/stream/v1` and `/v1`).
pub fn routes() -> Router<AppState> {
    Router::new().route("/stream", get(stream))
}

/// What one client asked for.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StreamFilter {
    /// fnmatch globs of event names.
    pub events: Vec<String>,
    /// Only events about executions of these actions (empty: all).
    pub action_refs: Vec<String>,
    /// Only events about these executions (empty: all).
    pub execution_ids: Vec<String>,
    /// The event name that ends the stream...
    pub end_event: Option<String>,
    /// ...when it is about this execution in a completed status.
    pub end_execution_id: Option<String>,
}

impl StreamFilter {
    /// Reads the query parameters.
    pub fn from_params(p: &RawParams) -> Self {
        let list = |k: &str| p.get(k).map(|v| comma_list(v)).unwrap_or_default();
        let mut events = list("events");
        if events.is_empty() {
            events = DEFAULT_EVENTS.iter().map(|s| s.to_string()).collect();
        }
        Self {
            events,
            action_refs: list("action_refs"),
            execution_ids: list("execution_ids"),
            end_event: p.get("end_event").filter(|s| !s.is_empty()).cloned(),
            end_execution_id: p.get("end_execution_id").filter(|s| !s.is_empty()).cloned(),
        }
    }

    /// Whether an event goes to this client.
    pub fn wants(&self, event: &str, data: &Value) -> bool {
        if !self.events.iter().any(|g| glob_match(g, event)) {
            return false;
        }
        if !self.action_refs.is_empty() {
            let action = data
                .pointer("/action/ref")
                .or_else(|| data.get("action_ref"))
                .and_then(Value::as_str);
            if !action.is_some_and(|a| self.action_refs.iter().any(|r| r == a)) {
                return false;
            }
        }
        if !self.execution_ids.is_empty() {
            let id = execution_id_of(event, data);
            if !id.is_some_and(|i| self.execution_ids.iter().any(|x| x == i)) {
                return false;
            }
        }
        true
    }

    /// Whether this event ends the stream (sent, then the response closes).
    pub fn ends(&self, event: &str, data: &Value) -> bool {
        let (Some(end_event), Some(end_id)) = (&self.end_event, &self.end_execution_id) else {
            return false;
        };
        event == end_event
            && execution_id_of(event, data) == Some(end_id.as_str())
            && data
                .get("status")
                .and_then(Value::as_str)
                .and_then(st2_core::model::ExecutionStatus::parse)
                .is_some_and(|s| s.is_completed())
    }
}

/// The execution an event is about: `execution_id` of output chunks, `id` of executions.
fn execution_id_of<'a>(event: &str, data: &'a Value) -> Option<&'a str> {
    if event.starts_with("st2.execution.output__") {
        data.get("execution_id").and_then(Value::as_str)
    } else {
        data.get("id").and_then(Value::as_str)
    }
}

/// fnmatch: `*` any run, `?` one character, `[...]` a class (`[!...]` negated); no escapes.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    fn class(p: &[char], c: char) -> Option<(bool, usize)> {
        // Returns (matched, length of the class in the pattern).
        let mut i = 1;
        let negate = p.get(i) == Some(&'!');
        if negate {
            i += 1;
        }
        let start = i;
        let mut hit = false;
        while i < p.len() && (p[i] != ']' || i == start) {
            if p.get(i + 1) == Some(&'-') && p.get(i + 2).is_some_and(|e| *e != ']') {
                hit |= p[i] <= c && c <= p[i + 2];
                i += 3;
            } else {
                hit |= p[i] == c;
                i += 1;
            }
        }
        (i < p.len()).then_some((hit != negate, i + 1))
    }
    fn go(p: &[char], n: &[char]) -> bool {
        match p.first() {
            None => n.is_empty(),
            Some('*') => (0..=n.len()).any(|k| go(&p[1..], &n[k..])),
            Some('?') => !n.is_empty() && go(&p[1..], &n[1..]),
            Some('[') => match (n.first(), class(p, *n.first().unwrap_or(&'\0'))) {
                (Some(_), Some((true, len))) => go(&p[len..], &n[1..]),
                (Some(c), None) => *c == '[' && go(&p[1..], &n[1..]),
                _ => false,
            },
            Some(c) => n.first() == Some(c) && go(&p[1..], &n[1..]),
        }
    }
    go(&p, &n)
}

/// One SSE frame.
pub fn frame(event: &str, data: &Value) -> Bytes {
    Bytes::from(format!("event: {event}\ndata: {data}\n\n"))
}

/// The data of a streamed message as clients see it: executions masked like the API shows them.
fn client_data(exchange: &str, data: Value) -> Value {
    if exchange == names::EXECUTION {
        if let Ok(e) = serde_json::from_value::<Execution>(data.clone()) {
            return view(e);
        }
    }
    data
}

/// `GET /stream`.
pub async fn stream(
    State(s): State<AppState>,
    QueryParams(p): QueryParams<RawParams>,
) -> Result<Response, ApiError> {
    let filter = StreamFilter::from_params(&p);
    let ctx = crate::executions::services(&s)?.clone();
    let (tx, rx) = mpsc::channel::<(String, Value)>(CLIENT_BUFFER);
    // Subscribe first: whatever happens after this point reaches the client.
    for exchange in STREAMED_EXCHANGES {
        let mut sub = ctx
            .bus
            .subscribe(SubscribeSpec::broadcast("st2.stream", *exchange, ["#"]))
            .await
            .map_err(st2_core::services::ServiceError::from)?;
        let tx = tx.clone();
        tokio::spawn(async move {
            loop {
                let d = tokio::select! {
                    _ = tx.closed() => break, // the client went away
                    d = sub.next() => match d {
                        Some(Ok(d)) => d,
                        _ => break,
                    },
                };
                let event = format!("{}__{}", d.info().exchange, d.routing_key());
                let data = d.message().value().unwrap_or(Value::Null);
                let exchange = d.info().exchange.clone();
                let _ = d.ack().await;
                if tx
                    .send((event, client_data(&exchange, data)))
                    .await
                    .is_err()
                {
                    break;
                }
            }
        });
    }
    drop(tx);
    // An execution already completed: its state now, then the end.
    let mut first = Vec::new();
    let mut done = false;
    if let (Some(end_id), Some(end_event)) = (&filter.end_execution_id, &filter.end_event) {
        if let Some(e) = repo::<Execution>(&*s.store).get(end_id).await? {
            if e.status.is_completed() {
                first.push(frame(end_event, &view(e)));
                done = true;
            }
        }
    }
    let state = StreamState {
        rx,
        filter,
        pending: first,
        done,
        started: false,
        end: None,
    };
    let body = Body::from_stream(futures_util::stream::unfold(state, next_frame));
    let mut resp = body.into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream; charset=UTF-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert("X-Accel-Buffering", HeaderValue::from_static("no"));
    Ok(resp)
}

/// How long the end frame waits for events of other exchanges published before it (an output
/// chunk is published before its execution's final update, but reaches this client through
/// another subscription, so the two may arrive out of order).
const END_GRACE: Duration = Duration::from_millis(100);

/// The state of one client's response body.
struct StreamState {
    rx: mpsc::Receiver<(String, Value)>,
    filter: StreamFilter,
    /// Frames to send before reading more events.
    pending: Vec<Bytes>,
    /// Close once `pending` is sent.
    done: bool,
    /// The connect heartbeat was sent.
    started: bool,
    /// The end frame (if it is wanted) and when to send it: other events are sent until then.
    end: Option<(Option<Bytes>, tokio::time::Instant)>,
}

/// The next chunk of the body: the connect heartbeat, pending frames, then events as they come
/// (heartbeats while idle); `None` ends the response.
async fn next_frame(mut st: StreamState) -> Option<(Result<Bytes, std::io::Error>, StreamState)> {
    if !st.started {
        st.started = true;
        return Some((Ok(Bytes::from_static(b"\n")), st));
    }
    if !st.pending.is_empty() {
        let f = st.pending.remove(0);
        return Some((Ok(f), st));
    }
    if st.done {
        return None;
    }
    loop {
        let wait = match &st.end {
            Some((_, at)) => at.saturating_duration_since(tokio::time::Instant::now()),
            None => HEARTBEAT,
        };
        match tokio::time::timeout(wait, st.rx.recv()).await {
            Err(_) => {
                return match st.end.take() {
                    Some((frame, _)) => {
                        st.done = true;
                        frame.map(|f| (Ok(f), st))
                    }
                    None => Some((Ok(Bytes::from_static(b"\n")), st)),
                };
            }
            // The bus closed (shutdown): send the end frame if one waits, then end.
            Ok(None) => {
                st.done = true;
                return st.end.take().and_then(|(f, _)| f).map(|f| (Ok(f), st));
            }
            Ok(Some((event, data))) => {
                let wanted = st.filter.wants(&event, &data);
                if st.end.is_none() && st.filter.ends(&event, &data) {
                    let frame = wanted.then(|| frame(&event, &data));
                    st.end = Some((frame, tokio::time::Instant::now() + END_GRACE));
                    continue;
                }
                if wanted {
                    return Some((Ok(frame(&event, &data)), st));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn globs_match_like_fnmatch() {
        for (p, n, want) in [
            ("st2.execution__*", "st2.execution__update", true),
            ("st2.execution__*", "st2.execution.output__create", false),
            ("st2.*", "st2.execution.output__create", true),
            ("st2.execution__update", "st2.execution__update", true),
            ("st2.execution__updat?", "st2.execution__update", true),
            ("st2.[el]*__create", "st2.liveaction__create", true),
            ("st2.[!e]*__create", "st2.execution__create", false),
            ("*", "", true),
            ("?", "", false),
        ] {
            assert_eq!(glob_match(p, n), want, "{p} vs {n}");
        }
    }

    #[test]
    fn filter_defaults_and_end() {
        let params: RawParams = [
            ("end_execution_id", "e1"),
            ("end_event", "st2.execution__update"),
            (
                "events",
                "st2.execution__update,st2.execution.output__create",
            ),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let f = StreamFilter::from_params(&params);
        let running = json!({"id": "e1", "status": "running"});
        let done = json!({"id": "e1", "status": "succeeded"});
        let other = json!({"id": "e2", "status": "succeeded"});
        assert!(f.wants("st2.execution__update", &running));
        assert!(!f.ends("st2.execution__update", &running));
        assert!(f.ends("st2.execution__update", &done));
        assert!(!f.ends("st2.execution__update", &other));
        assert!(!f.wants("st2.execution__create", &running));
        let out = json!({"execution_id": "e1", "data": "x"});
        assert!(f.wants("st2.execution.output__create", &out));

        let d = StreamFilter::from_params(&RawParams::new());
        assert!(d.wants("st2.announcement__chatops", &json!({})));
        assert!(d.wants("st2.execution__create", &json!({})));
        assert!(!d.wants("st2.execution.output__create", &json!({})));
        let by_action = StreamFilter {
            action_refs: vec!["core.local".into()],
            ..d
        };
        assert!(by_action.wants(
            "st2.execution__update",
            &json!({"action": {"ref": "core.local"}})
        ));
        assert!(!by_action.wants(
            "st2.execution__update",
            &json!({"action": {"ref": "core.noop"}})
        ));
    }
}
