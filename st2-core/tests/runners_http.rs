//! `http-request` against a real HTTP server on 127.0.0.1:0 (axum): methods, JSON and form
//! bodies, headers, cookies, basic auth, query parameters, status codes, redirects, timeouts and
//! host lists.

mod runners_common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, Query};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Redirect};
use axum::routing::{any, get};
use axum::{Json, Router};
use serde_json::{json, Value};
use st2_core::model::ExecutionStatus;
use st2_core::runners::http::HttpRunner;
use st2_core::runners::{RunOutcome, Runner};

use runners_common::*;

/// Echoes the request back as JSON.
async fn echo(method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Json<Value> {
    let headers: BTreeMap<String, String> = headers
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    Json(json!({
        "method": method.as_str(),
        "path": uri.path(),
        "query": uri.query(),
        "headers": headers,
        "body": String::from_utf8_lossy(&body),
    }))
}

async fn status(Path(code): Path<u16>) -> impl IntoResponse {
    (
        StatusCode::from_u16(code).unwrap_or(StatusCode::IM_A_TEAPOT),
        format!("status {code}"),
    )
}

async fn slow(Query(q): Query<BTreeMap<String, u64>>) -> &'static str {
    tokio::time::sleep(Duration::from_millis(q.get("ms").copied().unwrap_or(3000))).await;
    "late"
}

/// Starts the test server; returns its address.
async fn server() -> SocketAddr {
    let app = Router::new()
        .route("/echo", any(echo))
        .route("/status/{code}", get(status))
        .route("/redirect", get(|| async { Redirect::to("/echo") }))
        .route(
            "/text",
            get(|| async {
                (
                    [("content-type", "text/plain; charset=utf-8")],
                    "plain text",
                )
            }),
        )
        .route(
            "/badjson",
            get(|| async { ([("content-type", "application/json")], "{not json") }),
        )
        .route("/slow", get(slow));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    addr
}

async fn request(runner_params: Value, action_params: Value) -> RunOutcome {
    let action = load_action(&repo_root().join("packs").join("core"), "core", "http");
    HttpRunner::new()
        .run(context(action, runner_params, action_params))
        .await
}

#[tokio::test]
async fn get_parses_json_bodies_and_sends_st2_headers() {
    let addr = server().await;
    let out = request(
        json!({"url": format!("http://{addr}/echo"), "headers": {"X-Custom": "yes"}, "cookies": {"a": "1", "b": "2"}}),
        json!({"params": {"q": "x y", "n": [1, 2]}}),
    )
    .await;
    assert_eq!(out.status, ExecutionStatus::Succeeded, "{:#}", out.result);
    let r = &out.result;
    assert_eq!(r["status_code"], 200);
    assert_eq!(r["parsed"], true);
    assert_eq!(r["headers"]["content-type"], "application/json");
    let body = &r["body"];
    assert_eq!(body["method"], "GET");
    assert_eq!(body["query"], "q=x+y&n=1&n=2");
    assert_eq!(body["headers"]["x-custom"], "yes");
    assert_eq!(body["headers"]["x-stanley-action"], "http");
    assert!(body["headers"]["user-agent"]
        .as_str()
        .is_some_and(|u| u.starts_with("st2/v")));
    assert_eq!(body["headers"]["cookie"], "a=1; b=2");
    let keys: Vec<&String> = r.as_object().expect("object").keys().collect();
    assert_eq!(keys, ["status_code", "body", "parsed", "headers"]);
}

#[tokio::test]
async fn post_json_body_is_re_encoded() {
    let addr = server().await;
    let out = request(
        json!({"url": format!("http://{addr}/echo"), "headers": {"Content-Type": "application/json"}}),
        json!({"body": "{\"a\": 1, \"b\": [true, null]}"}),
    )
    .await;
    assert_eq!(out.status, ExecutionStatus::Succeeded, "{:#}", out.result);
    let body = &out.result["body"];
    assert_eq!(
        body["method"], "POST",
        "a body makes the default method POST"
    );
    assert_eq!(body["body"], "{\"a\":1,\"b\":[true,null]}");
    assert_eq!(body["headers"]["content-type"], "application/json");

    let out = request(
        json!({"url": format!("http://{addr}/echo"), "headers": {"Content-Type": "application/json"}}),
        json!({"body": "{not json"}),
    )
    .await;
    assert_eq!(out.status, ExecutionStatus::Failed);
    assert!(out.result["error"]
        .as_str()
        .is_some_and(|e| e.contains("can't be parsed as JSON")));
}

#[tokio::test]
async fn text_and_form_bodies_methods_and_basic_auth() {
    let addr = server().await;
    let out = request(
        json!({"url": format!("http://{addr}/echo"), "username": "u", "password": "p"}),
        json!({"method": "PUT", "body": "raw text"}),
    )
    .await;
    let body = &out.result["body"];
    assert_eq!(body["method"], "PUT");
    assert_eq!(body["body"], "raw text");
    assert_eq!(body["headers"]["authorization"], "Basic dTpw");

    let out = request(
        json!({"url": format!("http://{addr}/echo")}),
        json!({"body": {"k": "v w", "n": 2}}),
    )
    .await;
    let body = &out.result["body"];
    assert_eq!(body["body"], "k=v+w&n=2");
    assert_eq!(
        body["headers"]["content-type"],
        "application/x-www-form-urlencoded"
    );
}

#[tokio::test]
async fn non_2xx_fails_and_text_bodies_stay_text() {
    let addr = server().await;
    let out = request(
        json!({"url": format!("http://{addr}/status/404")}),
        json!({}),
    )
    .await;
    assert_eq!(out.status, ExecutionStatus::Failed);
    assert_eq!(out.result["status_code"], 404);
    assert_eq!(out.result["body"], "status 404");
    assert_eq!(out.result["parsed"], false);

    // 206 is the last success code, 207 already fails (StackStorm's 200-206 range).
    let out = request(
        json!({"url": format!("http://{addr}/status/206")}),
        json!({}),
    )
    .await;
    assert_eq!(out.status, ExecutionStatus::Succeeded);
    let out = request(
        json!({"url": format!("http://{addr}/status/207")}),
        json!({}),
    )
    .await;
    assert_eq!(out.status, ExecutionStatus::Failed);

    let out = request(json!({"url": format!("http://{addr}/text")}), json!({})).await;
    assert_eq!(out.result["body"], "plain text");
    assert_eq!(out.result["parsed"], false);
    let out = request(json!({"url": format!("http://{addr}/badjson")}), json!({})).await;
    assert_eq!(out.result["body"], "{not json");
    assert_eq!(out.result["parsed"], false);
}

#[tokio::test]
async fn redirects_are_not_followed_by_default() {
    let addr = server().await;
    let out = request(json!({"url": format!("http://{addr}/redirect")}), json!({})).await;
    assert_eq!(out.status, ExecutionStatus::Failed);
    assert_eq!(out.result["status_code"], 303);
    assert_eq!(out.result["headers"]["location"], "/echo");

    let out = request(
        json!({"url": format!("http://{addr}/redirect"), "allow_redirects": true}),
        json!({}),
    )
    .await;
    assert_eq!(out.status, ExecutionStatus::Succeeded, "{:#}", out.result);
    assert_eq!(out.result["body"]["path"], "/echo");
}

#[tokio::test]
async fn slow_server_times_out() {
    let addr = server().await;
    let started = std::time::Instant::now();
    let out = request(
        json!({"url": format!("http://{addr}/slow?ms=5000")}),
        json!({"timeout": 0.5}),
    )
    .await;
    assert_eq!(out.status, ExecutionStatus::Timeout, "{:#}", out.result);
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(out.result["error"].is_string());
}

#[tokio::test]
async fn cancel_stops_the_request() {
    let addr = server().await;
    let action = load_action(&repo_root().join("packs").join("core"), "core", "http");
    let ctx = context(
        action,
        json!({"url": format!("http://{addr}/slow?ms=10000")}),
        json!({}),
    );
    let cancel = ctx.cancel.clone();
    let task = tokio::spawn(async move { HttpRunner::new().run(ctx).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    cancel.cancel();
    let out = tokio::time::timeout(Duration::from_secs(2), task)
        .await
        .expect("in time")
        .expect("join");
    assert_eq!(out.status, ExecutionStatus::Canceled);
}

#[tokio::test]
async fn host_lists_and_connection_errors() {
    let addr = server().await;
    let url = format!("http://{addr}/echo");
    let out = request(
        json!({"url": url, "url_hosts_blacklist": ["127.0.0.1"]}),
        json!({}),
    )
    .await;
    assert_eq!(out.status, ExecutionStatus::Failed);
    assert!(out.result["error"]
        .as_str()
        .is_some_and(|e| e.contains("is blacklisted")));
    let out = request(
        json!({"url": url, "url_hosts_whitelist": ["example.com"]}),
        json!({}),
    )
    .await;
    assert!(out.result["error"]
        .as_str()
        .is_some_and(|e| e.contains("is not whitelisted")));
    let out = request(
        json!({"url": url, "url_hosts_whitelist": ["127.0.0.1"]}),
        json!({}),
    )
    .await;
    assert_eq!(out.status, ExecutionStatus::Succeeded);

    // Nothing listens on port 1.
    let out = request(json!({"url": "http://127.0.0.1:1/"}), json!({})).await;
    assert_eq!(out.status, ExecutionStatus::Failed);
    assert!(out.result["error"].is_string());
    let out = request(json!({}), json!({})).await;
    assert_eq!(out.result["error"], "URL must be specified.");
}
