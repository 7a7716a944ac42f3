//! The axum router. Handlers stay thin: they call st2-core and shape StackStorm's JSON.

use std::sync::Arc;

use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use st2_core::store::Store;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// The platform's store.
    pub store: Arc<dyn Store>,
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

/// The whole HTTP API.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/api/v1", get(root))
        .route("/api/v1/", get(root))
        .route("/v1", get(root))
        .route("/v1/", get(root))
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
        let app = router(AppState { store });
        let resp = app
            .oneshot(Request::get("/api/v1/").body(Body::empty()).expect("request"))
            .await
            .expect("response");
        assert_eq!(resp.status(), StatusCode::OK);
        let body = axum::body::to_bytes(resp.into_body(), 1 << 20).await.expect("body");
        let v: Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(v["st2_version"], ST2_COMPAT_VERSION);
    }
}
