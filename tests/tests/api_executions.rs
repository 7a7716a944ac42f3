//! The executions API and the SSE stream as StackStorm's client uses them: create, get with
//! include/exclude attributes, list newest first with filters and `X-Total-Count`, output as
//! text, result, re-run, children, pause of a non-workflow (400), cancel; the stream's frames,
//! filters and end semantics (live and already completed).

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{json, Value};

use st2_core::model::ExecutionStatus;
use st2_tests::api::Harness;

async fn run(h: &Harness, action: &str, parameters: Value) -> String {
    let a = h
        .post(
            "/api/v1/executions",
            json!({"action": action, "parameters": parameters, "user": null}),
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    a.body["id"].as_str().expect("id").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn execution_endpoints_answer_like_stackstorm() {
    let h = Harness::start().await;
    let id = run(&h, "core.local", json!({"cmd": "echo hi; echo oops >&2"})).await;
    let done = h.wait_done(&id).await;
    assert_eq!(done.status, ExecutionStatus::Succeeded, "{:?}", done.result);

    // get: the whole document, action as an object, context.user the caller.
    let g = h.get(&format!("/api/v1/executions/{id}/")).await;
    assert_eq!(g.status, StatusCode::OK);
    assert_eq!(g.body["action"]["ref"], "core.local");
    assert_eq!(g.body["action"]["runner_type"], "local-shell-cmd");
    assert_eq!(g.body["context"]["user"], "st2admin");
    assert_eq!(g.body["result"]["stdout"], "hi");
    assert!(g.body["end_timestamp"]
        .as_str()
        .is_some_and(|t| t.ends_with('Z')));
    assert!(
        g.body.get("lease_owner").is_none(),
        "internal fields are not shown"
    );

    // include_attributes keeps dotted parents as objects; exclude drops.
    let inc = h
        .get(&format!(
            "/api/v1/executions/{id}?include_attributes=action.ref,status,context.user"
        ))
        .await;
    assert_eq!(
        inc.body,
        json!({"id": id, "action": {"ref": "core.local"}, "status": "succeeded",
               "context": {"user": "st2admin"}})
    );
    let exc = h
        .get(&format!(
            "/api/v1/executions/{id}?exclude_attributes=result"
        ))
        .await;
    assert!(exc.body.get("result").is_none());
    assert_eq!(exc.body["status"], "succeeded");

    // output: stored chunks as text/plain, filtered by type.
    let out = h.get(&format!("/api/v1/executions/{id}/output")).await;
    assert_eq!(out.status, StatusCode::OK);
    assert!(out.headers["content-type"]
        .to_str()
        .expect("ascii")
        .starts_with("text/plain"));
    let text = out.body.as_str().expect("text").to_string();
    assert!(text.contains("hi\n") && text.contains("oops\n"), "{text:?}");
    let stdout = h
        .get(&format!(
            "/api/v1/executions/{id}/output?output_type=stdout"
        ))
        .await;
    assert_eq!(stdout.body, json!("hi\n"));

    // result and one attribute.
    let r = h.get(&format!("/api/v1/executions/{id}/result")).await;
    assert_eq!(r.body["return_code"], 0);
    let st = h
        .get(&format!("/api/v1/executions/{id}/attribute/status"))
        .await;
    assert_eq!(st.body, json!("succeeded"));

    // A second execution, then the list: newest first, total in the header, filters.
    let id2 = run(&h, "core.noop", json!({})).await;
    h.wait_done(&id2).await;
    let l = h
        .get("/api/v1/executions/?limit=1&parent=null&sort_desc=True&include_attributes=id,action.ref,status")
        .await;
    assert_eq!(l.status, StatusCode::OK);
    assert_eq!(l.body.as_array().map(Vec::len), Some(1));
    assert_eq!(l.body[0]["id"], id2.as_str(), "newest first");
    let total: u64 = l.headers["x-total-count"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("number");
    assert!(total >= 2, "{total}");
    let by_action = h.get("/api/v1/executions?action=core.local").await;
    let refs: Vec<&str> = by_action
        .body
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|e| e["action"]["ref"].as_str())
        .collect();
    assert!(
        !refs.is_empty() && refs.iter().all(|r| *r == "core.local"),
        "{refs:?}"
    );
    let none = h.get("/api/v1/executions?status=abandoned").await;
    assert_eq!(none.body, json!([]));
    let bad = h.get("/api/v1/executions?limit=ten").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.body["faultstring"]
        .as_str()
        .is_some_and(|f| f.contains("limit")));

    // re-run: a new execution of the same action, parameters overridden, linked to the first.
    let rr = h
        .post(
            &format!("/api/v1/executions/{id}/re_run"),
            json!({"parameters": {"cmd": "echo again"}}),
        )
        .await;
    assert_eq!(rr.status, StatusCode::CREATED, "{}", rr.body);
    let rr_id = rr.body["id"].as_str().expect("id").to_string();
    assert_ne!(rr_id, id);
    assert_eq!(rr.body["context"]["re-run"]["ref"], id.as_str());
    let again = h.wait_done(&rr_id).await;
    assert_eq!(again.result.expect("result")["stdout"], "again");

    // children of a non-workflow: none. Pause of a non-workflow: 400 naming the runner.
    let ch = h
        .get(&format!("/api/v1/executions/{id}/children/?depth=-1"))
        .await;
    assert_eq!(ch.body, json!([]));
    let p = h
        .put(
            &format!("/api/v1/executions/{id}"),
            json!({"status": "pausing"}),
        )
        .await;
    assert_eq!(p.status, StatusCode::BAD_REQUEST);
    assert!(p.body["faultstring"]
        .as_str()
        .is_some_and(|f| f.contains("local-shell-cmd")));

    // Unknown ids: 404 with a faultstring.
    let nf = h.get("/api/v1/executions/000000000000000000000000").await;
    assert_eq!(nf.status, StatusCode::NOT_FOUND);
    assert!(nf.body["faultstring"].is_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_a_running_sleep() {
    let h = Harness::start().await;
    let id = run(&h, "core.local", json!({"cmd": "sleep 30"})).await;
    h.wait_execution(&id, |e| e.status == ExecutionStatus::Running)
        .await;
    let c = h.delete(&format!("/api/v1/executions/{id}")).await;
    assert_eq!(c.status, StatusCode::OK, "{}", c.body);
    let done = h.wait_done(&id).await;
    assert_eq!(done.status, ExecutionStatus::Canceled);
}

/// Reads a whole stream response (it must end by itself within 30 s).
async fn read_stream(h: &Harness, query: &str) -> (StatusCode, String, String) {
    let req = Request::get(format!(
        "/stream/v1/stream?x-auth-token={}&{query}",
        h.token
    ))
    .body(Body::empty())
    .expect("request");
    let resp = tower::ServiceExt::oneshot(h.app.clone(), req)
        .await
        .expect("response");
    let status = resp.status();
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let bytes = tokio::time::timeout(
        Duration::from_secs(30),
        axum::body::to_bytes(resp.into_body(), 16 << 20),
    )
    .await
    .expect("the stream ends after the end event")
    .expect("body");
    (status, ct, String::from_utf8_lossy(&bytes).into_owned())
}

/// The `(event, data)` frames of an SSE body.
fn frames(body: &str) -> Vec<(String, Value)> {
    body.split("\n\n")
        .filter_map(|f| {
            let event = f.lines().find_map(|l| l.strip_prefix("event: "))?;
            let data = f.lines().find_map(|l| l.strip_prefix("data: "))?;
            Some((event.to_string(), serde_json::from_str(data).ok()?))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_ends_after_the_end_event() {
    let h = Harness::start().await;

    // Unauthenticated: 401.
    let req = Request::get("/stream/v1/stream")
        .body(Body::empty())
        .expect("request");
    let resp = tower::ServiceExt::oneshot(h.app.clone(), req)
        .await
        .expect("response");
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);

    // Live: the client connects while the action runs, sees its output and its end.
    let id = run(&h, "core.local", json!({"cmd": "sleep 1; echo streamed"})).await;
    let q = format!(
        "end_execution_id={id}&end_event=st2.execution__update&events=st2.execution__update,st2.execution.output__create"
    );
    let (status, ct, body) = read_stream(&h, &q).await;
    assert_eq!(status, StatusCode::OK);
    assert!(ct.starts_with("text/event-stream"), "{ct}");
    assert!(body.starts_with('\n'), "a heartbeat first");
    let fr = frames(&body);
    let last = fr.last().expect("frames");
    assert_eq!(last.0, "st2.execution__update");
    assert_eq!(last.1["id"], id.as_str());
    assert_eq!(last.1["status"], "succeeded");
    let output: String = fr
        .iter()
        .filter(|(e, d)| e == "st2.execution.output__create" && d["execution_id"] == id.as_str())
        .filter_map(|(_, d)| d["data"].as_str())
        .collect();
    assert!(output.contains("streamed"), "{body}");
    assert!(
        fr.iter()
            .all(|(e, _)| e == "st2.execution__update" || e == "st2.execution.output__create"),
        "only the asked events: {body}"
    );

    // Already completed at connect: its state at once, then the end.
    let (_, _, body) = read_stream(&h, &q).await;
    let fr = frames(&body);
    assert_eq!(fr.len(), 1, "{body}");
    assert_eq!(fr[0].1["status"], "succeeded");
}
