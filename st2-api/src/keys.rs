//! The datastore: `/keys` (scopes system/user/all, prefix, decrypt, ttl, secret).

use axum::Router;

use crate::AppState;

/// The routes of this module.
pub fn routes() -> Router<AppState> {
    Router::new()
}
