//! The API as a whole: every operation of the OpenAPI document is served (its handler answers:
//! no router 404 or 405), every one but the public ones refuses calls without credentials, an
//! expired token and a deleted API key are refused, and malformed bodies get a 4xx with a
//! `faultstring`.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use serde_json::{json, Value};

use st2_api::openapi::ROUTES;
use st2_core::model::Token;
use st2_core::store::repo;
use st2_tests::api::Harness;

/// Public operations (no credentials needed; `/auth/v1/tokens` takes basic auth instead).
const PUBLIC: &[&str] = &["/api/v1", "/api/v1/openapi.json"];

fn concrete(path: &str) -> String {
    path.split('/')
        .map(|seg| {
            if seg.starts_with('{') {
                "000000000000000000000000"
            } else {
                seg
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

fn method(m: &str) -> Method {
    Method::from_bytes(m.to_ascii_uppercase().as_bytes()).expect("method")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_operation_is_served_and_guarded() {
    let h = Harness::start().await;
    let doc = h.get("/api/v1/openapi.json").await;
    assert_eq!(doc.status, StatusCode::OK);
    assert_eq!(doc.body["openapi"], "3.0.3");
    for r in ROUTES {
        if r.path == "/stream/v1/stream" {
            continue; // endless by design; covered by the stream tests
        }
        let path = concrete(r.path);
        let body = matches!(r.method, "post" | "put").then(|| json!({}));

        // Without credentials: 401 with a faultstring, unless public.
        let mut req = Request::builder().method(method(r.method)).uri(&path);
        if body.is_some() {
            req = req.header("content-type", "application/json");
        }
        let anon = h
            .send(
                req.body(
                    body.as_ref()
                        .map_or_else(Body::empty, |b| Body::from(b.to_string())),
                )
                .expect("request"),
            )
            .await;
        if PUBLIC.contains(&r.path) {
            assert_ne!(
                anon.status,
                StatusCode::UNAUTHORIZED,
                "{} {} is public",
                r.method,
                r.path
            );
        } else {
            assert_eq!(
                anon.status,
                StatusCode::UNAUTHORIZED,
                "{} {} without credentials",
                r.method,
                r.path
            );
            assert!(
                anon.body["faultstring"].is_string(),
                "{} {}: {}",
                r.method,
                r.path,
                anon.body
            );
        }

        // With credentials: the handler answers (a router miss is a 404/405 without body).
        let a = h.call(method(r.method), &path, body).await;
        assert_ne!(
            a.status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{} {}",
            r.method,
            r.path
        );
        if a.status == StatusCode::NOT_FOUND {
            assert!(
                a.body["faultstring"].is_string(),
                "{} {} is not routed: {:?}",
                r.method,
                r.path,
                a.body
            );
        }
        assert!(
            a.status.as_u16() < 500,
            "{} {} answered {}: {}",
            r.method,
            r.path,
            a.status,
            a.body
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_4xx_with_a_faultstring() {
    let h = Harness::start().await;
    let cases: Vec<(Request<Body>, StatusCode, &str)> = vec![
        (
            Request::post("/api/v1/executions")
                .header("x-auth-token", &h.token)
                .header("content-type", "application/json")
                .body(Body::from("{not json"))
                .expect("request"),
            StatusCode::BAD_REQUEST,
            "",
        ),
        (
            Request::post("/api/v1/executions")
                .header("x-auth-token", &h.token)
                .header("content-type", "application/json")
                .body(Body::from(json!({"action": "nope.nothing"}).to_string()))
                .expect("request"),
            StatusCode::NOT_FOUND,
            "nope.nothing",
        ),
        (
            Request::post("/api/v1/executions")
                .header("x-auth-token", &h.token)
                .header("content-type", "application/json")
                .body(Body::from(
                    json!({"action": "core.local", "parameters": {"cmd": "true", "timeout": "soon"}})
                        .to_string(),
                ))
                .expect("request"),
            StatusCode::BAD_REQUEST,
            "timeout",
        ),
        (
            Request::post("/api/v1/executions")
                .header("x-auth-token", &h.token)
                .header("content-type", "application/json")
                .body(Body::from(json!({"action": "core.local"}).to_string()))
                .expect("request"),
            StatusCode::BAD_REQUEST,
            "cmd",
        ),
        (
            Request::post("/api/v1/webhooks/st2")
                .header("x-auth-token", &h.token)
                .header("content-type", "application/json")
                .body(Body::from("x".repeat(9 << 20)))
                .expect("request"),
            StatusCode::PAYLOAD_TOO_LARGE,
            "",
        ),
    ];
    for (req, want, mentions) in cases {
        let what = format!("{} {}", req.method(), req.uri());
        let a = h.send(req).await;
        assert_eq!(a.status, want, "{what}: {}", a.body);
        if want != StatusCode::PAYLOAD_TOO_LARGE {
            let f = a.body["faultstring"].as_str().unwrap_or_default();
            assert!(!f.is_empty() && f.contains(mentions), "{what}: {}", a.body);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_tokens_and_deleted_keys_are_refused() {
    let h = Harness::start().await;
    // A token whose expiry has passed.
    let t = st2_core::auth::issue_token(&*h.platform.ctx.store, "st2admin", 3600)
        .await
        .expect("token");
    let tokens = repo::<Token>(&*h.platform.ctx.store);
    let mut stored = tokens.get(&t.id).await.expect("get").expect("stored");
    stored.expiry = "2000-01-01T00:00:00.000000Z".into();
    tokens.save(stored).await.expect("save");
    let req = Request::get("/api/v1/actions")
        .header("x-auth-token", &t.token)
        .body(Body::empty())
        .expect("request");
    assert_eq!(h.send(req).await.status, StatusCode::UNAUTHORIZED);

    // An API key works until deleted.
    let k = h.post("/api/v1/apikeys", json!({})).await;
    assert_eq!(k.status, StatusCode::CREATED, "{}", k.body);
    let key = k.body["key"].as_str().expect("key").to_string();
    let id = k.body["id"].as_str().expect("id").to_string();
    let with_key = |key: String| {
        Request::get("/api/v1/actions?limit=1")
            .header("st2-api-key", key)
            .body(Body::empty())
            .expect("request")
    };
    assert_eq!(h.send(with_key(key.clone())).await.status, StatusCode::OK);
    let listed = h.get("/api/v1/apikeys").await;
    assert!(
        !listed.body.to_string().contains(&key),
        "keys are never listed: {}",
        listed.body
    );
    let d = h.delete(&format!("/api/v1/apikeys/{id}")).await;
    assert!(d.status.is_success(), "{}", d.body);
    assert_eq!(h.send(with_key(key)).await.status, StatusCode::UNAUTHORIZED);

    // Secrets: a secret key is never shown in clear unless decrypted.
    let put = h
        .put(
            "/api/v1/keys/db_password",
            json!({"name": "db_password", "value": "hunter2", "secret": true}),
        )
        .await;
    assert!(put.status.is_success(), "{}", put.body);
    for path in [
        "/api/v1/keys/db_password",
        "/api/v1/keys",
        "/api/v1/keys?scope=all",
    ] {
        let a = h.get(path).await;
        assert!(
            !a.body.to_string().contains("hunter2"),
            "{path}: {}",
            a.body
        );
    }
    let dec = h.get("/api/v1/keys/db_password?decrypt=true").await;
    assert_eq!(dec.body["value"], Value::from("hunter2"));
}
