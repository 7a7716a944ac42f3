//! Read endpoints for actions and runner types, and the execution endpoints StackStorm's `st2 run`
//! uses: `GET /actions/{ref_or_id}`, `GET /runnertypes?name=`, `POST /executions`,
//! `GET /executions[/{id}]`, `DELETE /executions/{id}` (cancel).

use axum::extract::{Path, Query as QueryParams, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{json, Value};

use st2_core::model::{Action, Execution, JsonMap, RunnerType};
use st2_core::services::executions::{self, ExecutionRequest, ENCRYPTED_PARAM_PREFIX};
use st2_core::store::{repo, Query};

use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::AppState;

/// StackStorm's masked value.
const MASKED: &str = "********";

/// Query parameters shared by list endpoints.
#[derive(Debug, Default, Deserialize)]
pub struct ListParams {
    /// Filter by name.
    pub name: Option<String>,
    /// Filter by pack.
    pub pack: Option<String>,
    /// Page size.
    pub limit: Option<i64>,
    /// Page start.
    pub offset: Option<u64>,
    /// Executions: filter by action ref.
    pub action: Option<String>,
    /// Executions: filter by status.
    pub status: Option<String>,
}

fn not_found(what: &str, key: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("{what} with ref or id \"{key}\" not found"),
    )
}

fn with_total(body: Value, total: u64) -> Response {
    let mut resp = Json(body).into_response();
    if let Ok(v) = HeaderValue::from_str(&total.to_string()) {
        resp.headers_mut().insert("X-Total-Count", v);
    }
    resp
}

fn page(q: Query, p: &ListParams) -> Query {
    // StackStorm: limit -1 (or absent on most resources) means no limit.
    let limit = p.limit.filter(|l| *l > 0).map(|l| l as u64);
    q.page(p.offset.unwrap_or(0), limit)
}

/// `GET /actions`.
pub async fn list_actions(
    State(s): State<AppState>,
    QueryParams(p): QueryParams<ListParams>,
) -> Result<Response, ApiError> {
    let mut q = Query::all().sort("ref", false);
    if let Some(pack) = &p.pack {
        q = q.eq("pack", pack.as_str());
    }
    if let Some(name) = &p.name {
        q = q.eq("name", name.as_str());
    }
    let actions = repo::<Action>(&*s.store);
    let total = actions.count(&q).await?;
    let items = actions.find(&page(q, &p)).await?;
    Ok(with_total(
        serde_json::to_value(items).unwrap_or(Value::Null),
        total,
    ))
}

/// `GET /actions/{ref_or_id}`.
pub async fn get_action(
    State(s): State<AppState>,
    Path(key): Path<String>,
) -> Result<Json<Action>, ApiError> {
    repo::<Action>(&*s.store)
        .get_by_ref_or_id(&key)
        .await?
        .map(Json)
        .ok_or_else(|| not_found("Action", &key))
}

/// `GET /runnertypes` (`?name=` filters, as `st2 run` uses it).
pub async fn list_runners(
    State(s): State<AppState>,
    QueryParams(p): QueryParams<ListParams>,
) -> Result<Response, ApiError> {
    let mut q = Query::all().sort("name", false);
    if let Some(name) = &p.name {
        q = q.eq("name", name.as_str());
    }
    let runners = repo::<RunnerType>(&*s.store);
    let total = runners.count(&q).await?;
    let items = runners.find(&page(q, &p)).await?;
    Ok(with_total(
        serde_json::to_value(items).unwrap_or(Value::Null),
        total,
    ))
}

/// `GET /runnertypes/{name_or_id}`.
pub async fn get_runner(
    State(s): State<AppState>,
    Path(key): Path<String>,
) -> Result<Json<RunnerType>, ApiError> {
    let runners = repo::<RunnerType>(&*s.store);
    let found = match runners.get(&key).await? {
        Some(r) => Some(r),
        None => {
            runners
                .find_one(Query::all().eq("name", key.as_str()))
                .await?
        }
    };
    found.map(Json).ok_or_else(|| not_found("RunnerType", &key))
}

/// An execution as the API shows it: secret parameters masked.
fn view(mut e: Execution) -> Value {
    for v in e.parameters.values_mut() {
        if v.as_str()
            .is_some_and(|s| s.starts_with(ENCRYPTED_PARAM_PREFIX))
        {
            *v = Value::String(MASKED.into());
        }
    }
    let mut v = serde_json::to_value(&e).unwrap_or(Value::Null);
    if let Some(obj) = v.as_object_mut() {
        obj.remove("lease_owner");
        obj.remove("notified");
    }
    v
}

/// Body of `POST /executions`.
#[derive(Debug, Deserialize)]
pub struct ExecutionBody {
    /// Action ref.
    pub action: String,
    /// Parameters.
    #[serde(default)]
    pub parameters: JsonMap,
    /// Run as this user (`null`: the caller).
    #[serde(default)]
    pub user: Option<String>,
    /// Extra context (`trace_context`).
    #[serde(default)]
    pub context: JsonMap,
    /// Delay in milliseconds.
    #[serde(default)]
    pub delay: Option<u64>,
}

/// `POST /executions`: 201 with the new execution.
pub async fn create_execution(
    State(s): State<AppState>,
    Extension(AuthUser(caller)): Extension<AuthUser>,
    headers: HeaderMap,
    Json(body): Json<ExecutionBody>,
) -> Result<Response, ApiError> {
    let ctx = s.services.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the event pipeline is not running in this process",
        )
    })?;
    let mut context = body.context.clone();
    if let Some(tag) = headers.get("st2-trace-tag").and_then(|v| v.to_str().ok()) {
        context.insert("trace_context".into(), json!({"trace_tag": tag}));
    }
    let req = ExecutionRequest {
        action_ref: body.action,
        parameters: body.parameters,
        user: Some(body.user.unwrap_or(caller)),
        context,
        delay: body.delay,
        ..Default::default()
    };
    let exec = executions::request(ctx, req).await?;
    Ok((StatusCode::CREATED, Json(view(exec))).into_response())
}

/// `GET /executions`: newest first.
pub async fn list_executions(
    State(s): State<AppState>,
    QueryParams(p): QueryParams<ListParams>,
) -> Result<Response, ApiError> {
    let mut q = Query::all().sort("id", true);
    if let Some(a) = &p.action {
        q = q.eq("action.ref", a.as_str());
    }
    if let Some(st) = &p.status {
        q = q.eq("status", st.as_str());
    }
    let execs = repo::<Execution>(&*s.store);
    let total = execs.count(&q).await?;
    let p = ListParams {
        limit: Some(p.limit.unwrap_or(50)),
        ..p
    };
    let items: Vec<Value> = execs
        .find(&page(q, &p))
        .await?
        .into_iter()
        .map(view)
        .collect();
    Ok(with_total(Value::Array(items), total))
}

/// `GET /executions/{id}`.
pub async fn get_execution(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let e = repo::<Execution>(&*s.store)
        .get(&id)
        .await?
        .ok_or_else(|| not_found("ActionExecution", &id))?;
    Ok(Json(view(e)))
}

/// `DELETE /executions/{id}`: cancel.
pub async fn cancel_execution(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let ctx = s.services.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the event pipeline is not running in this process",
        )
    })?;
    let e = executions::cancel(ctx, &id).await?;
    Ok(Json(view(e)))
}
