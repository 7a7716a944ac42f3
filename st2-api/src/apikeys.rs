//! API keys (`/apikeys`) and the caller (`/user`).

use axum::Router;

use crate::AppState;

/// The routes of this module.
pub fn routes() -> Router<AppState> {
    Router::new()
}
