//! Rules (CRUD, enable/disable through PUT) and rule enforcements: `/rules`, `/ruleenforcements`.

use axum::Router;

use crate::AppState;

/// The routes of this module.
pub fn routes() -> Router<AppState> {
    Router::new()
}
