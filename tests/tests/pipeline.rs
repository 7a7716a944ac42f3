//! The event pipeline end to end, in one process (standalone shape): webhook → rule →
//! core.local → action trigger → second rule → second action; timeout and cancel of a real
//! `sleep`; bad input recorded, nothing lost.

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{json, Value};
use tower::ServiceExt;

use st2_api::{service, AppState};
use st2_core::config::Config;
use st2_core::model::{Execution, ExecutionStatus, RuleEnforcement, Trace, TriggerInstance};
use st2_core::platform::Platform;
use st2_core::store::{repo, Query};
use st2_tests::{bundled_packs, copy_dir, fixture_pack};

struct Harness {
    platform: Platform,
    app: tower_http::normalize_path::NormalizePath<axum::Router>,
    token: String,
    _dir: tempfile::TempDir,
}

async fn start() -> Harness {
    start_with(|_| {}).await
}

/// Starts a platform whose data dir holds the `e2e` pack, after `prepare` adds to it.
async fn start_with(prepare: impl FnOnce(&std::path::Path)) -> Harness {
    let dir = tempfile::tempdir().expect("tmp");
    copy_dir(&fixture_pack("e2e"), &dir.path().join("packs").join("e2e")).expect("copy");
    prepare(dir.path());
    let mut cfg = Config::default();
    cfg.system.data_dir = dir.path().to_path_buf();
    cfg.content.system_packs_base_path = Some(bundled_packs());
    let platform = Platform::start(&cfg, &["all".to_string()])
        .await
        .expect("platform");
    let store = platform.ctx.store.clone();
    let token = st2_core::auth::issue_token(&*store, "st2admin", 3600)
        .await
        .expect("token")
        .token;
    let state = AppState {
        store,
        services: Some(platform.ctx.clone()),
        auth_enabled: true,
        token_ttl: 3600,
    };
    Harness {
        app: service(state),
        platform,
        token,
        _dir: dir,
    }
}

impl Harness {
    async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        let req = Request::post(path)
            .header("content-type", "application/json")
            .header("x-auth-token", &self.token)
            .body(Body::from(body.to_string()))
            .expect("request");
        let resp = self.app.clone().oneshot(req).await.expect("response");
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .expect("body");
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        let req = Request::get(path)
            .header("x-auth-token", &self.token)
            .body(Body::empty())
            .expect("request");
        let resp = self.app.clone().oneshot(req).await.expect("response");
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .expect("body");
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    /// Waits until `pred` holds for some execution of `action_ref`, returning it.
    async fn wait_for(&self, action_ref: &str, pred: impl Fn(&Execution) -> bool) -> Execution {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let execs: Vec<Execution> = repo::<Execution>(&*self.platform.ctx.store)
                .find(&Query::all().eq("action.ref", action_ref))
                .await
                .expect("query");
            if let Some(e) = execs.into_iter().find(|e| pred(e)) {
                return e;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for an execution of {action_ref}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_rule_action_actiontrigger_chain() {
    let h = start().await;
    let (status, body) = h
        .post(
            "/api/v1/webhooks/e2e",
            json!({"level": "critical", "message": "hello"}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(
        body,
        json!({"level": "critical", "message": "hello"}),
        "202 echoes the body"
    );

    let first = h.wait_for("core.local", |e| e.status.is_completed()).await;
    assert_eq!(
        first.status,
        ExecutionStatus::Succeeded,
        "{:?}",
        first.result
    );
    let result = first.result.clone().expect("result");
    assert_eq!(result["stdout"], "first hello");
    assert_eq!(result["return_code"], 0);
    assert_eq!(first.parameters["cmd"], "echo first hello");
    assert_eq!(first.context["user"], "stanley");
    assert!(first.rule.is_some() && first.trigger_instance.is_some());

    let second = h.wait_for("core.echo", |e| e.status.is_completed()).await;
    assert_eq!(
        second.status,
        ExecutionStatus::Succeeded,
        "{:?}",
        second.result
    );
    assert_eq!(
        second.result.clone().expect("result")["stdout"],
        "second after first hello"
    );

    // Enforcements and trigger instances recorded; a non-matching event runs nothing.
    let store = &*h.platform.ctx.store;
    let enf: Vec<RuleEnforcement> = repo::<RuleEnforcement>(store)
        .find(&Query::all())
        .await
        .expect("q");
    assert!(enf
        .iter()
        .any(|e| e.execution_id.as_deref() == Some(first.id.as_str()) && e.status == "succeeded"));
    let (status, _) = h
        .post(
            "/api/v1/webhooks/e2e",
            json!({"level": "info", "message": "ignored"}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let locals = repo::<Execution>(store)
        .count(&Query::all().eq("action.ref", "core.local"))
        .await
        .expect("q");
    assert_eq!(locals, 1, "the info event matched no rule");
    let tis: Vec<TriggerInstance> = repo::<TriggerInstance>(store)
        .find(&Query::all())
        .await
        .expect("q");
    assert!(tis.iter().all(|t| t.status == "processed"), "{tis:?}");
    // Webhook payloads carry the request headers, never the caller's credentials.
    let hooks: Vec<&TriggerInstance> = tis
        .iter()
        .filter(|t| t.payload.get("headers_lower").is_some())
        .collect();
    assert!(!hooks.is_empty());
    for t in hooks {
        assert_eq!(
            t.payload["headers_lower"]["content-type"],
            "application/json"
        );
        assert!(
            t.payload["headers_lower"].get("x-auth-token").is_none(),
            "{}",
            t.payload
        );
        assert!(!t.payload.to_string().contains(&h.token), "{}", t.payload);
    }
    // One trace holds the chain: the webhook's instance, both rules, both executions, and
    // the action trigger instances of both executions.
    let deadline = Instant::now() + Duration::from_secs(20);
    let trace = loop {
        let traces: Vec<Trace> = repo::<Trace>(store).find(&Query::all()).await.expect("q");
        let chain = traces.into_iter().find(|t| !t.rules.is_empty());
        match chain {
            Some(t) if t.trigger_instances.len() >= 3 => break t,
            other => assert!(Instant::now() < deadline, "trace of the chain: {other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(trace.trace_tag.starts_with("webhook-e2e-"), "{trace:?}");
    let ids = |c: &[st2_core::model::TraceComponent]| {
        c.iter().map(|x| x.object_id.clone()).collect::<Vec<_>>()
    };
    assert_eq!(
        ids(&trace.action_executions),
        vec![first.id.clone(), second.id.clone()]
    );
    assert_eq!(trace.rules.len(), 2, "{trace:?}");
    assert_eq!(trace.trigger_instances.len(), 3, "{trace:?}");
    let instance_of = |e: &Execution| e.trigger_instance.as_ref().map(|t| t["id"].clone());
    assert_eq!(
        Some(json!(trace.trigger_instances[0].object_id)),
        instance_of(&first)
    );
    assert_eq!(
        Some(json!(trace.trigger_instances[1].object_id)),
        instance_of(&second),
        "the second rule fired on the first execution's action trigger"
    );
    h.platform.shutdown().await;
}

/// A webhook with an `St2-Trace-Tag` header joins the trace with that tag (concurrent joins
/// all land); one without gets a trace of its own, tagged `webhook-<url>-<uuid>`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_trace_tags_join_or_start_traces() {
    let h = start().await;
    let hook = |tag: Option<&str>| {
        let mut req = Request::post("/api/v1/webhooks/e2e")
            .header("content-type", "application/json")
            .header("x-auth-token", &h.token);
        if let Some(t) = tag {
            req = req.header("St2-Trace-Tag", t);
        }
        req.body(Body::from(json!({"level": "info"}).to_string()))
            .expect("request")
    };
    for tag in [Some("shared-tag"), Some("shared-tag"), None, None] {
        let resp = h.app.clone().oneshot(hook(tag)).await.expect("response");
        assert_eq!(resp.status(), StatusCode::ACCEPTED);
    }
    // Joins racing on one trace all land.
    let racing: Vec<_> = (0..16)
        .map(|_| tokio::spawn(h.app.clone().oneshot(hook(Some("shared-tag")))))
        .collect();
    for r in racing {
        let resp = r.await.expect("task").expect("response");
        assert_eq!(resp.status(), StatusCode::ACCEPTED);
    }
    let store = &*h.platform.ctx.store;
    let traces: Vec<Trace> = repo::<Trace>(store).find(&Query::all()).await.expect("q");
    let shared: Vec<&Trace> = traces
        .iter()
        .filter(|t| t.trace_tag == "shared-tag")
        .collect();
    assert_eq!(shared.len(), 1, "{traces:?}");
    assert_eq!(shared[0].trigger_instances.len(), 18, "{:?}", shared[0]);
    let own: Vec<&Trace> = traces
        .iter()
        .filter(|t| t.trace_tag.starts_with("webhook-e2e-"))
        .collect();
    assert_eq!(own.len(), 2, "{traces:?}");
    assert_ne!(own[0].trace_tag, own[1].trace_tag);
    assert!(
        own.iter().all(|t| t.trigger_instances.len() == 1),
        "{own:?}"
    );
    h.platform.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_and_cancel_of_a_real_sleep() {
    let h = start().await;
    let started = Instant::now();
    h.post(
        "/api/v1/webhooks/sleepy",
        json!({"seconds": 30, "timeout": 1}),
    )
    .await;
    let timed_out = h.wait_for("core.local", |e| e.status.is_completed()).await;
    assert_eq!(
        timed_out.status,
        ExecutionStatus::Timeout,
        "{:?}",
        timed_out.result
    );
    assert_eq!(
        timed_out.parameters["timeout"], 1,
        "rendered \"1\" cast to the declared integer"
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "killed at its timeout, not after the sleep"
    );

    h.post(
        "/api/v1/webhooks/sleepy",
        json!({"seconds": 30, "timeout": 60}),
    )
    .await;
    let running = h
        .wait_for("core.local", |e| e.status == ExecutionStatus::Running)
        .await;
    st2_core::services::executions::cancel(&h.platform.ctx, &running.id)
        .await
        .expect("cancel");
    let canceled = h
        .wait_for("core.local", |e| {
            e.id == running.id && e.status.is_completed()
        })
        .await;
    assert_eq!(canceled.status, ExecutionStatus::Canceled);
    h.platform.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_or_recorded() {
    let h = start().await;
    // Unknown webhook.
    let (status, body) = h.post("/api/v1/webhooks/nope", json!({})).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert!(body["faultstring"]
        .as_str()
        .is_some_and(|s| s.contains("nope")));
    // Generic webhook to an unknown trigger.
    let (status, _) = h
        .post(
            "/api/v1/webhooks/st2",
            json!({"trigger": "no.such", "payload": {}}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // An oversize payload is refused before anything is stored.
    let big = "x".repeat(st2_core::services::dispatch::MAX_PAYLOAD_BYTES + 1);
    let (status, body) = h
        .post(
            "/api/v1/webhooks/e2e",
            json!({"level": "critical", "message": big}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["faultstring"]
        .as_str()
        .is_some_and(|s| s.contains("exceeds")));
    // A rule pointing at an unknown action: a failed enforcement naming the action.
    let (status, _) = h.post("/api/v1/webhooks/ghost", json!({})).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let enf: Vec<RuleEnforcement> = repo::<RuleEnforcement>(&*h.platform.ctx.store)
            .find(&Query::all().eq("status", "failed"))
            .await
            .expect("q");
        if enf.iter().any(|e| {
            e.failure_reason
                .as_deref()
                .is_some_and(|r| r.contains("e2e.no_such_action"))
        }) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no failed enforcement for the unknown action: {enf:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A rule whose parameters do not render: recorded as a failed enforcement with the reason.
    let (status, _) = h
        .post("/api/v1/webhooks/sleepy", json!({"timeout": 5}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let enf: Vec<RuleEnforcement> = repo::<RuleEnforcement>(&*h.platform.ctx.store)
            .find(&Query::all())
            .await
            .expect("q");
        if let Some(e) = enf
            .iter()
            .find(|e| e.status == "failed" && e.rule["ref"] == "e2e.sleepy")
        {
            let reason = e.failure_reason.clone().unwrap_or_default();
            assert!(
                reason.contains("seconds") || reason.contains("undefined"),
                "{reason}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "no failed enforcement recorded");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    h.platform.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interval_timer_fires_on_schedule() {
    let h = start_with(|data| {
        let rules = data.join("packs").join("e2e_timer").join("rules");
        std::fs::create_dir_all(&rules).expect("mkdir");
        std::fs::write(
            data.join("packs").join("e2e_timer").join("pack.yaml"),
            "ref: e2e_timer\nname: e2e_timer\ndescription: timer test\nauthor: t\nversion: 0.1.0\n",
        )
        .expect("write");
        std::fs::write(
            rules.join("every_second.yaml"),
            "name: every_second\nenabled: true\ntrigger:\n  type: core.st2.IntervalTimer\n  parameters:\n    unit: seconds\n    delta: 1\naction:\n  ref: core.noop\n",
        )
        .expect("write");
    })
    .await;
    let started = Instant::now();
    let store = &*h.platform.ctx.store;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let done: Vec<Execution> = repo::<Execution>(store)
            .find(
                &Query::all()
                    .eq("action.ref", "core.noop")
                    .eq("status", "succeeded"),
            )
            .await
            .expect("q");
        if done.len() >= 2 {
            let ti = done[0]
                .trigger_instance
                .clone()
                .expect("caused by a trigger instance");
            assert!(
                ti["payload"]["executed_at"]
                    .as_str()
                    .is_some_and(|s| s.ends_with("+00:00")),
                "{ti}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the 1 s interval timer did not fire twice"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "fires follow the schedule, not all at once"
    );
    h.platform.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_action_uses_config_and_datastore() {
    let h = start_with(|data| {
        copy_dir(
            &st2_tests::repo_root().join("tests/fixtures/runners/runnertest"),
            &data.join("packs").join("runnertest"),
        )
        .expect("copy");
        std::fs::create_dir_all(data.join("configs")).expect("mkdir");
        std::fs::write(
            data.join("configs").join("runnertest.yaml"),
            "api_host: example.org\nretries: 3\n",
        )
        .expect("write");
    })
    .await;
    let mut params = serde_json::Map::new();
    params.insert("key".into(), json!("color"));
    params.insert("value".into(), json!("blue"));
    let req = st2_core::services::executions::ExecutionRequest {
        action_ref: "runnertest.config_kv".into(),
        parameters: params,
        ..Default::default()
    };
    let exec = st2_core::services::executions::request(&h.platform.ctx, req)
        .await
        .expect("request");
    let done = h
        .wait_for("runnertest.config_kv", |e| {
            e.id == exec.id && e.status.is_completed()
        })
        .await;
    assert_eq!(done.status, ExecutionStatus::Succeeded, "{:?}", done.result);
    let result = done.result.expect("result");
    assert_eq!(result["result"]["api_host"], "example.org");
    assert_eq!(result["result"]["local"], "blue");
    // The global key stays in the platform datastore, and its creation fired a trigger.
    let ds = h.platform.ctx.datastore.clone().expect("datastore");
    let kv = ds
        .get(
            "global_color",
            st2_core::datastore::Scope::System,
            None,
            false,
        )
        .await
        .expect("get");
    assert_eq!(kv.map(|k| k.value).as_deref(), Some("BLUE"));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let tis: Vec<TriggerInstance> = repo::<TriggerInstance>(&*h.platform.ctx.store)
            .find(&Query::all().eq("trigger", "core.st2.key_value_pair.create"))
            .await
            .expect("q");
        if tis
            .iter()
            .any(|t| t.payload["object"]["name"] == "global_color")
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no key_value_pair.create trigger instance"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    h.platform.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_policy_delays_then_runs() {
    let h = start_with(|data| {
        let dir = data.join("packs").join("e2e_policy");
        std::fs::create_dir_all(dir.join("policies")).expect("mkdir");
        std::fs::write(dir.join("pack.yaml"), "ref: e2e_policy\nname: e2e_policy\ndescription: policy test\nauthor: t\nversion: 0.1.0\n")
            .expect("write");
        std::fs::write(
            dir.join("policies").join("one_pause.yaml"),
            "name: one_pause\nresource_ref: core.pause\npolicy_type: action.concurrency\nparameters:\n  threshold: 1\n  action: delay\n",
        )
        .expect("write");
    })
    .await;
    let mut ids = Vec::new();
    for _ in 0..2 {
        let mut params = serde_json::Map::new();
        params.insert("max_pause".into(), json!(1));
        let req = st2_core::services::executions::ExecutionRequest {
            action_ref: "core.pause".into(),
            parameters: params,
            ..Default::default()
        };
        ids.push(
            st2_core::services::executions::request(&h.platform.ctx, req)
                .await
                .expect("request")
                .id,
        );
    }
    let mut done = Vec::new();
    for id in &ids {
        done.push(
            h.wait_for("core.pause", |e| &e.id == id && e.status.is_completed())
                .await,
        );
    }
    for e in &done {
        assert_eq!(e.status, ExecutionStatus::Succeeded, "{:?}", e.result);
    }
    let statuses = |e: &Execution| -> Vec<String> {
        e.log
            .iter()
            .filter_map(|l| l["status"].as_str().map(String::from))
            .collect()
    };
    let delayed: Vec<&Execution> = done
        .iter()
        .filter(|e| statuses(e).contains(&"delayed".to_string()))
        .collect();
    assert_eq!(
        delayed.len(),
        1,
        "exactly one waited for the slot: {:?}",
        done.iter().map(statuses).collect::<Vec<_>>()
    );
    let other = done.iter().find(|e| e.id != delayed[0].id).expect("other");
    let ts = |e: &Execution, s: &str| {
        e.log
            .iter()
            .find(|l| l["status"] == s)
            .and_then(|l| l["timestamp"].as_str())
            .map(String::from)
            .expect("timestamp")
    };
    assert!(
        ts(delayed[0], "running") >= ts(other, "succeeded"),
        "the delayed one ran only after the first finished"
    );
    h.platform.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_drains_running_work() {
    let h = start().await;
    h.post(
        "/api/v1/webhooks/sleepy",
        json!({"seconds": 1, "timeout": 60}),
    )
    .await;
    let running = h
        .wait_for("core.local", |e| e.status == ExecutionStatus::Running)
        .await;
    let store = h.platform.ctx.store.clone();
    h.platform.shutdown().await;
    let after = repo::<Execution>(&*store)
        .get(&running.id)
        .await
        .expect("q")
        .expect("exists");
    assert_eq!(
        after.status,
        ExecutionStatus::Succeeded,
        "the running sleep finished before shutdown returned"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_parameters_are_encrypted_at_rest() {
    let h = start().await;
    let mut params = serde_json::Map::new();
    params.insert("token".into(), json!("hunter2"));
    let req = st2_core::services::executions::ExecutionRequest {
        action_ref: "e2e.secret_echo".into(),
        parameters: params,
        ..Default::default()
    };
    let exec = st2_core::services::executions::request(&h.platform.ctx, req)
        .await
        .expect("request");
    let stored = exec.parameters["token"]
        .as_str()
        .expect("string")
        .to_string();
    assert!(
        stored.starts_with(st2_core::services::executions::ENCRYPTED_PARAM_PREFIX),
        "{stored}"
    );
    assert!(!stored.contains("hunter2"));
    let done = h
        .wait_for("e2e.secret_echo", |e| {
            e.id == exec.id && e.status.is_completed()
        })
        .await;
    assert_eq!(done.status, ExecutionStatus::Succeeded, "{:?}", done.result);
    assert_eq!(
        done.result.expect("result")["stdout"],
        "hunter2",
        "the action got the clear value"
    );
    h.platform.shutdown().await;
}

/// What StackStorm's `st2 run core.local cmd=date` does, call by call (trailing slashes and all).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn st2_run_core_local_date_over_the_api() {
    let h = start().await;
    let (status, action) = h.get("/api/v1/actions/core.local").await;
    assert_eq!(status, StatusCode::OK, "{action}");
    assert_eq!(action["runner_type"], "local-shell-cmd");
    assert!(action["parameters"]
        .as_object()
        .is_some_and(|p| p.values().all(|s| s.get("type").is_some())));
    let (status, runners) = h.get("/api/v1/runnertypes/?name=local-shell-cmd").await;
    assert_eq!(status, StatusCode::OK);
    assert!(runners[0]["runner_parameters"].is_object(), "{runners}");
    let (status, exec) = h
        .post(
            "/api/v1/executions/",
            json!({"action": "core.local", "parameters": {"cmd": "date"}, "user": null}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{exec}");
    assert_eq!(exec["status"], "requested");
    assert_eq!(exec["context"]["user"], "st2admin", "the caller runs it");
    let id = exec["id"].as_str().expect("id").to_string();
    let deadline = Instant::now() + Duration::from_secs(30);
    let done = loop {
        let (_, e) = h.get(&format!("/api/v1/executions/{id}/")).await;
        if !["requested", "scheduled", "running", "canceling"]
            .contains(&e["status"].as_str().unwrap_or(""))
        {
            break e;
        }
        assert!(Instant::now() < deadline, "execution never completed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(done["status"], "succeeded", "{done}");
    assert!(done["result"]["stdout"]
        .as_str()
        .is_some_and(|s| !s.is_empty()));
    let (status, body) = h.get("/api/v1/actions/core.nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body["faultstring"]
        .as_str()
        .is_some_and(|s| s.contains("core.nope")));
    h.platform.shutdown().await;
}
