//! Actions and runner types: `GET /actions[/{ref_or_id}]`, `GET /runnertypes[/{name_or_id}]`
//! (`?name=` filters, as `st2 run` uses it).

use axum::extract::{OriginalUri, Path, Query as QueryParams, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::Value;

use st2_core::model::{Action, RunnerType};
use st2_core::store::{repo, Query};

use crate::error::ApiError;
use crate::listing::{self, ListSpec, RawParams};
use crate::AppState;

/// The routes of this module.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/actions", get(list_actions))
        .route("/actions/{key}", get(get_action))
        .route("/runnertypes", get(list_runners))
        .route("/runnertypes/{key}", get(get_runner))
}

/// The cache key of a request: its path and query.
fn request_key(uri: &axum::http::Uri) -> String {
    uri.path_and_query()
        .map_or_else(|| uri.path().to_string(), |pq| pq.as_str().to_string())
}

/// `GET /actions` (answered from the catalog's listing cache when it is fresh).
pub async fn list_actions(
    State(s): State<AppState>,
    OriginalUri(uri): OriginalUri,
    QueryParams(p): QueryParams<RawParams>,
) -> Result<Response, ApiError> {
    let spec = ListSpec::<Action> {
        filters: &[
            ("pack", "pack"),
            ("name", "name"),
            ("runner_type", "runner_type"),
        ],
        sort: ("ref", false),
        default_limit: None,
        view: listing::to_json,
    };
    listing::cached_list(&s, &request_key(&uri), &p, &spec).await
}

/// `GET /actions/{ref_or_id}` (from the catalog when the pipeline runs here).
pub async fn get_action(
    State(s): State<AppState>,
    Path(key): Path<String>,
) -> Result<Response, ApiError> {
    if let Some(ctx) = &s.services {
        return match ctx.catalog.action(&*s.store, &key).await {
            Ok(loaded) => Ok(Json(&loaded.action_json).into_response()),
            Err(st2_core::services::ServiceError::NotFound { kind: "action", .. }) => {
                Err(listing::not_found("Action", &key))
            }
            Err(e) => Err(e.into()),
        };
    }
    listing::get_by_ref_or_id::<Action>(&*s.store, "Action", &key)
        .await
        .map(|a| Json(a).into_response())
}

/// `GET /runnertypes` (`?name=` filters, as `st2 run` uses it).
pub async fn list_runners(
    State(s): State<AppState>,
    OriginalUri(uri): OriginalUri,
    QueryParams(p): QueryParams<RawParams>,
) -> Result<Response, ApiError> {
    let spec = ListSpec::<RunnerType> {
        filters: &[("name", "name")],
        sort: ("name", false),
        default_limit: None,
        view: listing::to_json,
    };
    listing::cached_list(&s, &request_key(&uri), &p, &spec).await
}

/// `GET /runnertypes/{name_or_id}`.
pub async fn get_runner(
    State(s): State<AppState>,
    Path(key): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let runners = repo::<RunnerType>(&*s.store);
    let found = match runners.get(&key).await? {
        Some(r) => Some(r),
        None => {
            runners
                .find_one(Query::all().eq("name", key.as_str()))
                .await?
        }
    };
    found
        .map(|r| Json(listing::to_json(r)))
        .ok_or_else(|| listing::not_found("RunnerType", &key))
}
