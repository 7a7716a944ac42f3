//! Trigger types, triggers and trigger instances (with `re_emit`): `/triggertypes`, `/triggers`, `/triggerinstances`.

use axum::Router;

use crate::AppState;

/// The routes of this module.
pub fn routes() -> Router<AppState> {
    Router::new()
}
