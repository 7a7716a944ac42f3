//! Packs (list, get, install, uninstall, register, index search, views), configs and config schemas: `/packs`, `/configs`, `/config_schemas`.

use axum::Router;

use crate::AppState;

/// The routes of this module.
pub fn routes() -> Router<AppState> {
    Router::new()
}
