//! Policies and policy types.
//!
//! | method and path | what |
//! |---|---|
//! | `GET /policies` | list; filters `pack`, `name`, `resource_ref`, `policy_type`, `enabled` |
//! | `POST /policies` | 201; validated as registration validates `policies/*.yaml` |
//! | `GET /policies/{ref_or_id}` | one |
//! | `PUT /policies/{ref_or_id}` | replace |
//! | `DELETE /policies/{ref_or_id}` | 204 |
//! | `GET /policytypes` | list; filters `resource_type`, `name` |
//! | `GET /policytypes/{ref_or_id}` | one |
//!
//! Changes invalidate the catalog so the scheduler applies them at once.

use std::path::Path as FsPath;

use axum::extract::{Path, Query as QueryParams, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::Value;

use st2_core::model::{Policy, PolicyType};
use st2_core::packs::{loader, register};
use st2_core::store::{repo, Collection, Query, Repo, Write};

use crate::error::ApiError;
use crate::listing::{self, ListSpec, Paging, RawParams};
use crate::rules::invalid;
use crate::AppState;

/// The routes of this module.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/policies", get(list_policies).post(create_policy))
        .route(
            "/policies/{key}",
            get(get_policy).put(update_policy).delete(delete_policy),
        )
        .route("/policytypes", get(list_policy_types))
        .route("/policytypes/{key}", get(get_policy_type))
}

/// `GET /policies`.
pub async fn list_policies(
    State(s): State<AppState>,
    QueryParams(p): QueryParams<RawParams>,
) -> Result<Response, ApiError> {
    let spec = ListSpec::<Policy> {
        filters: &[
            ("pack", "pack"),
            ("name", "name"),
            ("resource_ref", "resource_ref"),
            ("policy_type", "policy_type"),
            ("enabled", "enabled"),
        ],
        sort: ("ref", false),
        default_limit: None,
        view: listing::to_json,
    };
    listing::list(&*s.store, &p, Query::all(), &spec).await
}

/// `GET /policies/{ref_or_id}`.
pub async fn get_policy(
    State(s): State<AppState>,
    Path(key): Path<String>,
    QueryParams(p): QueryParams<RawParams>,
) -> Result<Json<Value>, ApiError> {
    let paging = Paging::from_params(&p, None)?;
    let pol = listing::get_by_ref_or_id::<Policy>(&*s.store, "Policy", &key).await?;
    Ok(Json(paging.project(listing::to_json(pol))))
}

/// Reads a policy body as registration reads a policy file (schema, computed fields, policy
/// type and its parameters).
fn parse_body(mut body: Value) -> Result<Policy, ApiError> {
    if let Some(obj) = body.as_object_mut() {
        obj.remove("id");
    }
    let file = FsPath::new("policy");
    let pol = loader::policy_from_document(file, body).map_err(|e| invalid("policy", &e))?;
    let errs = register::check_policy(&pol, file);
    if !errs.is_empty() {
        return Err(invalid("policy", &errs));
    }
    Ok(pol)
}

/// Writes a policy (409 when another has its ref) and invalidates the catalog.
async fn save(s: &AppState, mut pol: Policy) -> Result<Policy, ApiError> {
    if let Some(other) = repo::<Policy>(&*s.store)
        .get_by_ref(&pol.policy_ref)
        .await?
    {
        if other.id != pol.id {
            return Err(ApiError::duplicate("policy", &pol.policy_ref, &other.id));
        }
    }
    let w = Repo::<Policy>::to_write(&mut pol)?;
    s.store.apply(vec![w]).await?;
    if let Some(ctx) = &s.services {
        ctx.catalog.invalidate();
    }
    Ok(pol)
}

/// `POST /policies`: 201.
pub async fn create_policy(
    State(s): State<AppState>,
    Json(body): Json<Value>,
) -> Result<Response, ApiError> {
    let pol = save(&s, parse_body(body)?).await?;
    tracing::info!(policy = %pol.policy_ref, "policy created");
    Ok((StatusCode::CREATED, Json(listing::to_json(pol))).into_response())
}

/// `PUT /policies/{ref_or_id}`.
pub async fn update_policy(
    State(s): State<AppState>,
    Path(key): Path<String>,
    Json(body): Json<Value>,
) -> Result<Json<Value>, ApiError> {
    let old = listing::get_by_ref_or_id::<Policy>(&*s.store, "Policy", &key).await?;
    let mut pol = parse_body(body)?;
    pol.id = old.id;
    if pol.metadata_file.is_none() {
        pol.metadata_file = old.metadata_file;
    }
    let pol = save(&s, pol).await?;
    Ok(Json(listing::to_json(pol)))
}

/// `DELETE /policies/{ref_or_id}`: 204.
pub async fn delete_policy(
    State(s): State<AppState>,
    Path(key): Path<String>,
) -> Result<StatusCode, ApiError> {
    let pol = listing::get_by_ref_or_id::<Policy>(&*s.store, "Policy", &key).await?;
    s.store
        .apply(vec![Write::Delete {
            collection: Collection::Policies,
            id: pol.id.clone(),
        }])
        .await?;
    if let Some(ctx) = &s.services {
        ctx.catalog.invalidate();
    }
    tracing::info!(policy = %pol.policy_ref, "policy deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /policytypes`.
pub async fn list_policy_types(
    State(s): State<AppState>,
    QueryParams(p): QueryParams<RawParams>,
) -> Result<Response, ApiError> {
    let spec = ListSpec::<PolicyType> {
        filters: &[("resource_type", "resource_type"), ("name", "name")],
        sort: ("ref", false),
        default_limit: None,
        view: listing::to_json,
    };
    listing::list(&*s.store, &p, Query::all(), &spec).await
}

/// `GET /policytypes/{ref_or_id}`.
pub async fn get_policy_type(
    State(s): State<AppState>,
    Path(key): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let t = listing::get_by_ref_or_id::<PolicyType>(&*s.store, "PolicyType", &key).await?;
    Ok(Json(listing::to_json(t)))
}
