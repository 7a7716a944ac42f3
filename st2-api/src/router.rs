//! The axum router. Handlers stay thin: they call st2-core and shape StackStorm's JSON.

use std::sync::Arc;

use axum::routing::{get, post};
use axum::{middleware, Json, Router};
use serde_json::{json, Value};

use st2_core::services::Ctx;
use st2_core::store::Store;

use crate::{
    actions, apikeys, auth, executions, inquiries, keys, openapi, packs, policies, rules, sensors,
    stream, traces, triggers, webhooks,
};

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// The platform's store.
    pub store: Arc<dyn Store>,
    /// The event pipeline's shared context, when this process runs it.
    pub services: Option<Ctx>,
    /// Whether calls need a token or API key.
    pub auth_enabled: bool,
    /// Longest token lifetime, seconds.
    pub token_ttl: u64,
}

impl AppState {
    /// State over a store only (no event pipeline), auth enabled.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self {
            store,
            services: None,
            auth_enabled: true,
            token_ttl: 86_400,
        }
    }
}

/// The StackStorm version whose API we serve.
pub const ST2_COMPAT_VERSION: &str = "3.9.0";

async fn root() -> Json<Value> {
    Json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "st2_version": ST2_COMPAT_VERSION,
        "docs_url": "/api/v1/openapi.json",
    }))
}

/// The authenticated `/api/v1` routes (also served under `/v1`): each resource module brings
/// its own routes.
fn api_routes(state: &AppState) -> Router<AppState> {
    Router::new()
        .merge(actions::routes())
        .merge(executions::routes())
        .merge(rules::routes())
        .merge(triggers::routes())
        .merge(sensors::routes())
        .merge(traces::routes())
        .merge(policies::routes())
        .merge(keys::routes())
        .merge(apikeys::routes())
        .merge(packs::routes())
        .merge(inquiries::routes())
        .route("/webhooks", get(webhooks::list))
        .route(
            "/webhooks/{*url}",
            get(webhooks::get_one).post(webhooks::post),
        )
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_auth,
        ))
}

/// The authenticated stream routes (`/stream/v1/stream`, `/v1/stream`).
fn stream_routes(state: &AppState) -> Router<AppState> {
    stream::routes().route_layer(middleware::from_fn_with_state(
        state.clone(),
        auth::require_auth,
    ))
}

/// The API as served: [`router`] behind trailing-slash normalisation (StackStorm's client asks
/// for `/runnertypes/?name=...` and `/executions/ID/`).
pub fn service(state: AppState) -> tower_http::normalize_path::NormalizePath<Router> {
    tower_http::normalize_path::NormalizePath::trim_trailing_slash(router(state))
}

/// The whole HTTP API.
pub fn router(state: AppState) -> Router {
    let api = api_routes(&state);
    let stream = stream_routes(&state);
    Router::new()
        .route("/api/v1", get(root))
        .route("/api/v1/", get(root))
        .route("/api/v1/openapi.json", get(openapi::serve))
        .route("/v1", get(root))
        .route("/v1/", get(root))
        .route("/auth/v1/tokens", post(auth::create_token))
        .route("/v1/tokens", post(auth::create_token))
        .nest("/api/v1", api.clone())
        .nest("/v1", api.merge(stream.clone()))
        .nest("/stream/v1", stream)
        // Room for the largest trigger payload plus headers; dispatch enforces the exact limit
        // with a clear message.
        .layer(middleware::from_fn(crate::error::faultstring_errors))
        .layer(axum::extract::DefaultBodyLimit::max(
            2 * st2_core::services::dispatch::MAX_PAYLOAD_BYTES,
        ))
        .with_state(state)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use tower::ServiceExt;

    #[tokio::test]
    async fn root_answers() {
        let store: Arc<dyn Store> =
            Arc::new(st2_core::store::EmbeddedStore::open_in_memory().expect("store"));
        let app = router(AppState::new(store));
        let resp = app
            .oneshot(
                Request::get("/api/v1/")
                    .body(Body::empty())
                    .expect("request"),
            )
            .await
            .expect("response");
        assert_eq!(resp.status(), StatusCode::OK);
        let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .expect("body");
        let v: Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(v["st2_version"], ST2_COMPAT_VERSION);
    }

    #[tokio::test]
    async fn webhooks_need_auth() {
        let store: Arc<dyn Store> =
            Arc::new(st2_core::store::EmbeddedStore::open_in_memory().expect("store"));
        let app = router(AppState::new(store));
        let resp = app
            .oneshot(
                Request::post("/api/v1/webhooks/x")
                    .body(Body::from("{}"))
                    .expect("request"),
            )
            .await
            .expect("response");
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .expect("body");
        let v: Value = serde_json::from_slice(&body).expect("json");
        assert!(v["faultstring"]
            .as_str()
            .is_some_and(|s| s.contains("Token")));
    }
}
