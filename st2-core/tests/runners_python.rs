//! `python-script` against a real Python: the fixture pack's actions run unchanged under the
//! st2common shim, with `self.config`, the datastore through `self.action_service` (an
//! in-memory `DatastoreAccess`), `(status, result)` tuples, exceptions, timeouts, cancel.

mod runners_common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use st2_core::model::ExecutionStatus;
use st2_core::runners::python::PythonRunner;
use st2_core::runners::{DatastoreAccess, KvKey, MemoryDatastore, RunContext, RunOutcome, Runner};
use st2_core::template::KvScope;

use runners_common::*;

/// A runner with a cache private to the test (kept alive by the returned guard).
fn runner() -> (PythonRunner, tempfile::TempDir) {
    let cache = tempfile::tempdir().expect("tempdir");
    (PythonRunner::new(Arc::new(settings(cache.path()))), cache)
}

/// The fixture action `name` with parameters; Python must not write bytecode into the repo.
fn py_context(name: &str, runner_params: Value, action_params: Value) -> RunContext {
    let mut rp = map(runner_params);
    rp.entry("env")
        .or_insert(json!({"PYTHONDONTWRITEBYTECODE": "1"}));
    context(fixture_action(name), Value::Object(rp), action_params)
}

async fn run(ctx: RunContext) -> RunOutcome {
    let (r, _cache) = runner();
    r.run(ctx).await
}

#[tokio::test]
async fn config_and_datastore_through_action_service() {
    let ds = Arc::new(MemoryDatastore::new());
    let global = KvKey {
        scope: KvScope::System,
        user: String::new(),
        name: "global_token".into(),
    };
    let mut ctx = py_context(
        "config_kv",
        json!({}),
        json!({"key": "token", "value": "abc"}),
    );
    ctx.config = map(json!({"api_host": "example.org", "retries": 3}));
    ctx.datastore = Some(ds.clone() as Arc<dyn DatastoreAccess>);
    let out = run(ctx).await;
    assert_eq!(out.status, ExecutionStatus::Succeeded, "{:#}", out.result);
    let r = &out.result["result"];
    assert_eq!(r["api_host"], "example.org");
    assert_eq!(r["retries"], 3);
    assert_eq!(r["local"], "abc");
    assert_eq!(r["missing"], Value::Null);
    assert_eq!(r["listed"], json!(["runnertest.ConfigKv:token"]));
    assert_eq!(r["deleted"], true);
    assert_eq!(r["deleted_again"], false);
    assert_eq!(r["greeting"], "hello example.org");
    assert_eq!(r["greeting_again"], "hello lib");
    assert_eq!(out.result["exit_code"], 0);
    assert_eq!(out.result["stdout"], "stored token\n");
    let stderr = out.result["stderr"].as_str().expect("stderr");
    assert!(
        stderr.contains("actions.python.ConfigKv: INFO     storing token"),
        "{stderr}"
    );
    assert!(stderr.contains("a line on stderr"), "{stderr}");
    // The global key stays; the local one was deleted.
    assert_eq!(ds.peek(&global).as_deref(), Some("ABC"));
    let local = KvKey {
        name: "runnertest.ConfigKv:token".into(),
        ..global
    };
    assert_eq!(ds.peek(&local), None);
    let keys: Vec<&String> = out.result.as_object().expect("object").keys().collect();
    assert_eq!(keys, ["stdout", "stderr", "exit_code", "result"]);
}

#[tokio::test]
async fn no_datastore_fails_inside_the_action() {
    let out = run(py_context(
        "config_kv",
        json!({}),
        json!({"key": "k", "value": "v"}),
    ))
    .await;
    assert_eq!(out.status, ExecutionStatus::Failed);
    let stderr = out.result["stderr"].as_str().expect("stderr");
    assert!(stderr.contains("No datastore is available"), "{stderr}");
}

#[tokio::test]
async fn false_status_tuple_fails_with_its_result() {
    let out = run(py_context("tuple_status", json!({}), json!({"ok": false}))).await;
    assert_eq!(out.status, ExecutionStatus::Failed, "{:#}", out.result);
    assert_eq!(out.result["exit_code"], 0);
    assert_eq!(
        out.result["result"],
        json!({"ok": false, "items": [1, 2.5, null, "x"]})
    );

    let out = run(py_context("tuple_status", json!({}), json!({"ok": true}))).await;
    assert_eq!(out.status, ExecutionStatus::Succeeded, "{:#}", out.result);
    assert_eq!(out.result["result"]["ok"], true);
}

#[tokio::test]
async fn exception_fails_with_the_traceback() {
    let out = run(py_context("raises", json!({}), json!({}))).await;
    assert_eq!(out.status, ExecutionStatus::Failed);
    assert_eq!(out.result["exit_code"], 1);
    assert_eq!(out.result["stdout"], "about to fail\n");
    assert_eq!(out.result["result"], "None");
    let stderr = out.result["stderr"].as_str().expect("stderr");
    assert!(
        stderr.contains("Traceback (most recent call last)"),
        "{stderr}"
    );
    assert!(
        stderr.contains("RuntimeError: boom from the action"),
        "{stderr}"
    );
}

#[tokio::test]
async fn non_bool_status_is_rejected() {
    let out = run(py_context("bad_status", json!({}), json!({}))).await;
    assert_eq!(out.status, ExecutionStatus::Failed);
    assert_eq!(out.result["exit_code"], 220);
    assert!(out.result["error"]
        .as_str()
        .is_some_and(|e| e.contains("must either be True or False")));
}

#[tokio::test]
async fn stdout_environment_and_parameters() {
    let mut ctx = py_context(
        "plain",
        json!({"env": {"CUSTOM_VAR": "c1", "PYTHONPATH": "/nowhere", "PYTHONDONTWRITEBYTECODE": "1"}}),
        json!({"message": "hi there"}),
    );
    ctx.api_url = Some("http://127.0.0.1:1/api/v1".into());
    let out = run(ctx).await;
    assert_eq!(out.status, ExecutionStatus::Succeeded, "{:#}", out.result);
    assert_eq!(out.result["stdout"], "hi there\n");
    assert_eq!(out.result["stderr"], "");
    assert_eq!(
        out.result["result"],
        json!({"message": "hi there", "pack": "runnertest", "execution": "5f1c0ffee0000000000000aa", "custom": "c1"})
    );
}

#[tokio::test]
async fn timeout_kills_the_action_and_its_children() {
    let ctx = py_context("sleeper", json!({"timeout": 1}), json!({"seconds": 30}));
    let started = Instant::now();
    let out = run(ctx).await;
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(out.status, ExecutionStatus::Timeout, "{:#}", out.result);
    assert_eq!(out.result["exit_code"], -9);
    assert_eq!(out.result["result"], "None");
    assert_eq!(
        out.result["error"],
        "Action failed to complete in 1 seconds"
    );
    let stdout = out.result["stdout"].as_str().expect("stdout");
    let child: i32 = stdout
        .trim()
        .strip_prefix("child:")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("child pid in {stdout:?}"));
    assert!(
        wait_for(Duration::from_secs(2), || !alive(child)).await,
        "child {child} survived"
    );
}

#[tokio::test]
async fn cancel_stops_the_action() {
    let ctx = py_context("sleeper", json!({}), json!({"seconds": 30}));
    let cancel = ctx.cancel.clone();
    let (r, _cache) = runner();
    let task = tokio::spawn(async move { r.run(ctx).await });
    tokio::time::sleep(Duration::from_millis(700)).await;
    let started = Instant::now();
    cancel.cancel();
    let out = task.await.expect("join");
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(out.status, ExecutionStatus::Canceled, "{:#}", out.result);
}

#[tokio::test]
async fn missing_action_file_and_virtualenv() {
    let mut action = fixture_action("plain");
    action.entry_point = "nope.py".into();
    let mut ctx = context(
        action,
        json!({"env": {"PYTHONDONTWRITEBYTECODE": "1"}}),
        json!({}),
    );
    ctx.pack_dir = Some(fixture_pack());
    let out = run(ctx).await;
    assert_eq!(out.status, ExecutionStatus::Failed);
    let stderr = out.result["stderr"].as_str().expect("stderr");
    assert!(
        stderr.contains("Failed to load action class from file"),
        "{stderr}"
    );

    let mut ctx = py_context("plain", json!({}), json!({}));
    ctx.virtualenv = Some(fixture_pack().join("no-such-virtualenv"));
    let out = run(ctx).await;
    assert_eq!(out.status, ExecutionStatus::Failed);
    assert!(out.result["error"]
        .as_str()
        .is_some_and(|e| e.contains("virtual environment")));
}

#[tokio::test]
async fn core_uuid_action_runs_unchanged() {
    let core = repo_root().join("packs").join("core");
    let action = load_action(&core, "core", "uuid");
    let mut ctx = context(
        action,
        json!({"env": {"PYTHONDONTWRITEBYTECODE": "1"}}),
        json!({"uuid_type": "uuid4"}),
    );
    ctx.pack_dir = Some(core);
    let out = run(ctx).await;
    assert_eq!(out.status, ExecutionStatus::Succeeded, "{:#}", out.result);
    let id = out.result["result"].as_str().expect("uuid string");
    assert_eq!(id.len(), 36, "{id}");
}

#[tokio::test]
async fn trivial_action_round_trip_is_fast() {
    let (r, _cache) = runner();
    // The first run unpacks the shim and warms the interpreter's caches.
    let out = r
        .run(py_context("plain", json!({}), json!({"message": "warm"})))
        .await;
    assert_eq!(out.status, ExecutionStatus::Succeeded, "{:#}", out.result);
    let mut best = Duration::MAX;
    for _ in 0..3 {
        let started = Instant::now();
        let out = r
            .run(py_context("plain", json!({}), json!({"message": "x"})))
            .await;
        best = best.min(started.elapsed());
        assert_eq!(out.status, ExecutionStatus::Succeeded);
    }
    eprintln!("python-script round trip: {best:?}");
    // Generous bound for slow CI machines; the round trip is dominated by interpreter start-up.
    assert!(best < Duration::from_secs(2), "round trip {best:?}");
}

#[tokio::test]
async fn core_inject_trigger_posts_to_the_api() {
    use axum::http::{HeaderMap, StatusCode};
    use axum::routing::post;
    use axum::{Json, Router};

    let (tx, mut rx) = tokio::sync::mpsc::channel::<(Value, Option<String>, Option<String>)>(4);
    let app = Router::new().route(
        "/api/v1/webhooks/st2",
        post(move |headers: HeaderMap, Json(body): Json<Value>| {
            let tx = tx.clone();
            async move {
                let h = |k: &str| {
                    headers
                        .get(k)
                        .and_then(|v| v.to_str().ok())
                        .map(String::from)
                };
                let _ = tx
                    .send((body.clone(), h("x-auth-token"), h("st2-trace-tag")))
                    .await;
                (StatusCode::ACCEPTED, Json(body))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });

    let core = repo_root().join("packs").join("core");
    let action = load_action(&core, "core", "inject_trigger");
    let mut ctx = context(
        action,
        json!({"env": {"PYTHONDONTWRITEBYTECODE": "1"}}),
        json!({"trigger": "mypack.hook", "payload": {"k": "v"}, "trace_tag": "t-1"}),
    );
    ctx.pack_dir = Some(core);
    ctx.api_url = Some(format!("http://{addr}/api/v1"));
    ctx.auth_token = Some("tok-1".into());
    let out = run(ctx).await;
    assert_eq!(out.status, ExecutionStatus::Succeeded, "{:#}", out.result);
    assert_eq!(
        out.result["result"],
        json!({"trigger": "mypack.hook", "payload": {"k": "v"}})
    );
    let (body, token, tag) = rx.recv().await.expect("request seen");
    assert_eq!(
        body,
        json!({"trigger": "mypack.hook", "payload": {"k": "v"}})
    );
    assert_eq!(token.as_deref(), Some("tok-1"));
    assert_eq!(tag.as_deref(), Some("t-1"));
}
