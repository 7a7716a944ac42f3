//! Inquiries: `/inquiries` (list, get, respond).
//!
//! An inquiry is an execution of an action whose runner is `inquirer`, waiting in status
//! `pending`; its result holds `{schema, roles, users, route, ttl}`. Responding validates the
//! response against `schema` and moves the execution to `succeeded` with the response added to
//! its result (compare-and-set, so an inquiry is answered once).

use std::path::Path as FsPath;

use axum::extract::{Path, Query as QueryParams, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::{Extension, Json, Router};
use serde_json::{json, Value};

use st2_core::model::{Execution, ExecutionStatus, JsonMap};
use st2_core::services::executions;
use st2_core::store::{repo, Query};

use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::executions::services;
use crate::listing::{self, ListSpec, RawParams};
use crate::AppState;

/// The runner type of inquiries.
const INQUIRER: &str = "inquirer";

/// The routes of this module.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/inquiries", get(list_inquiries))
        .route("/inquiries/{id}", get(get_inquiry).put(respond))
}

fn is_inquiry(e: &Execution) -> bool {
    e.runner.get("name").and_then(Value::as_str) == Some(INQUIRER)
        || e.action.get("runner_type").and_then(Value::as_str) == Some(INQUIRER)
}

/// The inquiry parameters (`schema`, `roles`, `users`, `route`, `ttl`) from the result.
fn field(e: &Execution, name: &str) -> Value {
    e.result
        .as_ref()
        .and_then(|r| r.get(name))
        .cloned()
        .unwrap_or(Value::Null)
}

/// An inquiry as StackStorm shows it: `{id, route, ttl, users, roles, schema}` plus the
/// execution's `status` and `parent`.
fn view(e: Execution) -> Value {
    let mut v = json!({
        "id": e.id,
        "route": field(&e, "route"),
        "ttl": field(&e, "ttl"),
        "users": field(&e, "users"),
        "roles": field(&e, "roles"),
        "schema": field(&e, "schema"),
        "status": e.status.as_str(),
    });
    if let (Some(obj), Some(p)) = (v.as_object_mut(), &e.parent) {
        obj.insert("parent".into(), Value::String(p.clone()));
    }
    v
}

/// `GET /inquiries`: the pending ones (paging).
pub async fn list_inquiries(
    State(s): State<AppState>,
    QueryParams(p): QueryParams<RawParams>,
) -> Result<Response, ApiError> {
    let spec = ListSpec::<Execution> {
        filters: &[],
        sort: ("start_timestamp", true),
        default_limit: None,
        view,
    };
    let q = Query::all()
        .eq("status", "pending")
        .eq("runner.name", INQUIRER);
    listing::list(&*s.store, &p, q, &spec).await
}

fn inquiry_not_found(id: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("Inquiry with id \"{id}\" not found"),
    )
}

async fn load(s: &AppState, id: &str) -> Result<Execution, ApiError> {
    repo::<Execution>(&*s.store)
        .get(id)
        .await?
        .filter(is_inquiry)
        .ok_or_else(|| inquiry_not_found(id))
}

/// `GET /inquiries/{id}`.
pub async fn get_inquiry(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let e = load(&s, &id).await?;
    if e.status != ExecutionStatus::Pending {
        return Err(inquiry_not_found(&id));
    }
    Ok(Json(view(e)))
}

/// `PUT /inquiries/{id}` with `{"id", "response": {...}}`: 200 `{"id", "response"}`; 400 when
/// the response does not match the schema or the inquiry was already answered; 403 when the
/// inquiry names its users and the caller is not one of them.
pub async fn respond(
    State(s): State<AppState>,
    Extension(AuthUser(caller)): Extension<AuthUser>,
    Path(id): Path<String>,
    Json(body): Json<Value>,
) -> Result<Json<Value>, ApiError> {
    let ctx = services(&s)?;
    let bad = |m: String| ApiError::new(StatusCode::BAD_REQUEST, m);
    let response = match body.get("response") {
        Some(r @ Value::Object(_)) => r.clone(),
        Some(other) => return Err(bad(format!("\"response\" must be an object, got {other}"))),
        None => return Err(bad("\"response\" is a required property".into())),
    };
    let e = load(&s, &id).await?;
    if e.status != ExecutionStatus::Pending {
        return Err(bad(format!(
            "Inquiry {id} has already been responded to (status {})",
            e.status
        )));
    }
    let users: Vec<&str> = e
        .result
        .as_ref()
        .and_then(|r| r.get("users"))
        .and_then(Value::as_array)
        .map(|u| u.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if !users.is_empty() && !users.contains(&caller.as_str()) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!("User \"{caller}\" does not have permission to respond to inquiry \"{id}\""),
        ));
    }
    let schema = field(&e, "schema");
    if !schema.is_null() {
        st2_core::schema::validate_instance(&schema, FsPath::new("response"), &response).map_err(
            |errs| {
                let reasons: Vec<String> = errs
                    .iter()
                    .map(|c| {
                        if c.field.is_empty() {
                            c.reason.clone()
                        } else {
                            format!("{}: {}", c.field, c.reason)
                        }
                    })
                    .collect();
                bad(format!(
                    "Response did not pass schema validation: {}",
                    reasons.join("; ")
                ))
            },
        )?;
    }
    let mut result = e
        .result
        .as_ref()
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    result.insert("response".into(), response.clone());
    let mut patch = JsonMap::new();
    patch.insert("result".into(), Value::Object(result));
    let done = executions::advance(ctx, &e, ExecutionStatus::Succeeded, patch).await?;
    if done.is_none() {
        return Err(bad(format!("Inquiry {id} has already been responded to")));
    }
    tracing::info!(inquiry = %id, user = %caller, "inquiry answered");
    Ok(Json(json!({"id": id, "response": response})))
}
