//! A platform in this process behind the real router, for API tests: `Harness::start()` gives
//! a fresh data dir with the bundled packs (plus fixture packs if asked), every role running,
//! a token for `st2admin`, and helpers that send requests through `oneshot` (no socket).

use std::path::Path;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use serde_json::Value;
use tower::ServiceExt;

use st2_api::{service, AppState};
use st2_core::config::Config;
use st2_core::model::Execution;
use st2_core::platform::Platform;
use st2_core::store::{repo, Query};

use crate::{bundled_packs, copy_dir, fixture_pack};

/// A running platform and its API.
pub struct Harness {
    /// The platform (store, bus, roles).
    pub platform: Platform,
    /// The API as served (trailing slashes normalised).
    pub app: tower_http::normalize_path::NormalizePath<axum::Router>,
    /// A token of `st2admin`.
    pub token: String,
    /// The data dir (deleted on drop).
    pub dir: tempfile::TempDir,
}

/// An answer: status, headers and the body (parsed as JSON when it is JSON, else a string).
#[derive(Debug)]
pub struct Answer {
    /// Status code.
    pub status: StatusCode,
    /// Response headers.
    pub headers: HeaderMap,
    /// JSON body, or the text as a JSON string, or `null` when empty.
    pub body: Value,
}

impl Harness {
    /// A platform with the bundled packs only.
    pub async fn start() -> Self {
        Self::start_with(&[], |_| {}).await
    }

    /// A platform with the bundled packs and the named fixture packs (`tests/fixtures/packs`),
    /// after `prepare` has changed the data dir.
    pub async fn start_with(fixtures: &[&str], prepare: impl FnOnce(&Path)) -> Self {
        let dir = tempfile::tempdir().expect("tmp");
        for name in fixtures {
            copy_dir(&fixture_pack(name), &dir.path().join("packs").join(name)).expect("copy");
        }
        prepare(dir.path());
        let mut cfg = Config::default();
        cfg.system.data_dir = dir.path().to_path_buf();
        cfg.content.system_packs_base_path = Some(bundled_packs());
        // Hermetic: no pack index on the network (tests that need one serve it themselves).
        cfg.content.index_url = Vec::new();
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
        Self {
            app: service(state),
            platform,
            token,
            dir,
        }
    }

    /// Sends `method path` with an optional JSON body, authenticated as `st2admin`.
    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Answer {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header("x-auth-token", &self.token);
        if body.is_some() {
            req = req.header("content-type", "application/json");
        }
        let req = req
            .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
            .expect("request");
        self.send(req).await
    }

    /// Sends a request as built by the caller (no auth added).
    pub async fn send(&self, req: Request<Body>) -> Answer {
        let resp = self.app.clone().oneshot(req).await.expect("response");
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = axum::body::to_bytes(resp.into_body(), 64 << 20)
            .await
            .expect("body");
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        Answer {
            status,
            headers,
            body,
        }
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> Answer {
        self.call(Method::GET, path, None).await
    }

    /// `POST path` with a JSON body.
    pub async fn post(&self, path: &str, body: Value) -> Answer {
        self.call(Method::POST, path, Some(body)).await
    }

    /// `PUT path` with a JSON body.
    pub async fn put(&self, path: &str, body: Value) -> Answer {
        self.call(Method::PUT, path, Some(body)).await
    }

    /// `DELETE path`.
    pub async fn delete(&self, path: &str) -> Answer {
        self.call(Method::DELETE, path, None).await
    }

    /// Waits (up to 30 s) until execution `id` is completed, returning it.
    pub async fn wait_done(&self, id: &str) -> Execution {
        self.wait_execution(id, |e| e.status.is_completed()).await
    }

    /// Waits (up to 30 s) until execution `id` satisfies `pred`, returning it.
    pub async fn wait_execution(&self, id: &str, pred: impl Fn(&Execution) -> bool) -> Execution {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(e) = repo::<Execution>(&*self.platform.ctx.store)
                .get(id)
                .await
                .expect("get")
            {
                if pred(&e) {
                    return e;
                }
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for execution {id}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits (up to 30 s) until some execution of `action_ref` satisfies `pred`.
    pub async fn wait_for(&self, action_ref: &str, pred: impl Fn(&Execution) -> bool) -> Execution {
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
