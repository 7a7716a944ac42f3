//! Executions: create (`st2 run`), list (newest first), get, cancel, pause/resume, re-run,
//! children, live output as text and the result.
//!
//! | method and path | what |
//! |---|---|
//! | `GET /executions` | list; filters `action`, `status`, `user`, `parent` (`null`: top level), `trigger_instance`, `rule`, `runner`, `timestamp_gt`/`timestamp_lt` |
//! | `POST /executions` | 201 with the new execution |
//! | `GET /executions/{id}` | one, with `include_attributes`/`exclude_attributes` |
//! | `PUT /executions/{id}` | `{"status": "pausing"|"resuming"}` |
//! | `DELETE /executions/{id}` | cancel |
//! | `POST /executions/{id}/re_run` | a new execution of the same action (`parameters` override) |
//! | `GET /executions/{id}/children` | descendants (`depth`, `-1`: all) |
//! | `GET /executions/{id}/output` | stored output chunks, `text/plain` (`output_type` filters) |
//! | `GET /executions/{id}/result` | the result as JSON |
//! | `GET /executions/{id}/attribute/{name}` | one top-level attribute |

use axum::extract::{Path, Query as QueryParams, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use st2_core::model::{Execution, ExecutionOutput, ExecutionStatus, JsonMap};
use st2_core::services::executions::{self, ExecutionRequest, ENCRYPTED_PARAM_PREFIX};
use st2_core::services::Ctx;
use st2_core::store::{repo, Query};

use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::listing::{self, Paging, RawParams};
use crate::AppState;

/// StackStorm's masked value.
pub const MASKED: &str = "********";

/// The routes of this module.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/executions", get(list_executions).post(create_execution))
        .route(
            "/executions/{id}",
            get(get_execution)
                .put(update_execution)
                .delete(cancel_execution),
        )
        .route("/executions/{id}/re_run", post(re_run))
        .route("/executions/{id}/children", get(children))
        .route("/executions/{id}/output", get(output))
        .route("/executions/{id}/result", get(result))
        .route("/executions/{id}/attribute/{name}", get(attribute))
}

/// The event pipeline's context, or 503 when this process does not run it.
pub fn services(s: &AppState) -> Result<&Ctx, ApiError> {
    s.services.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the event pipeline is not running in this process",
        )
    })
}

/// An execution as the API shows it: secret parameters masked, internal fields dropped.
pub fn view(mut e: Execution) -> Value {
    for v in e.parameters.values_mut() {
        if v.as_str()
            .is_some_and(|s| s.starts_with(ENCRYPTED_PARAM_PREFIX))
        {
            *v = Value::String(MASKED.into());
        }
    }
    let mut v = listing::to_json(&e);
    if let Some(obj) = v.as_object_mut() {
        obj.remove("lease_owner");
        obj.remove("notified");
        if let Some(Value::Object(c)) = obj.get_mut("context") {
            c.remove(st2_core::services::worker::RUNNER_PROCESS_KEY);
        }
        obj.insert(
            "web_url".into(),
            Value::String(format!("/#/history/{}/general", e.id)),
        );
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
    let ctx = services(&s)?;
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

/// Executions filters: query parameter → field.
const FILTERS: &[(&str, &str)] = &[
    ("action", "action.ref"),
    ("status", "status"),
    ("user", "context.user"),
    ("parent", "parent"),
    ("trigger_instance", "trigger_instance.id"),
    ("rule", "rule.id"),
    ("runner", "runner.name"),
    ("id", "id"),
];

/// `GET /executions`: newest first (ids grow with time).
pub async fn list_executions(
    State(s): State<AppState>,
    QueryParams(p): QueryParams<RawParams>,
) -> Result<Response, ApiError> {
    let spec = listing::ListSpec::<Execution> {
        filters: FILTERS,
        sort: ("id", true),
        default_limit: Some(100),
        view,
    };
    let (gt, lt) = (
        p.get("timestamp_gt").cloned(),
        p.get("timestamp_lt").cloned(),
    );
    if gt.is_none() && lt.is_none() {
        return listing::list(&*s.store, &p, Query::all(), &spec).await;
    }
    // Time windows: filtered here (the store knows equality only), then paged.
    listing::list_matching(&*s.store, &p, Query::all(), &spec, move |e: &Execution| {
        listing::within(&e.start_timestamp, gt.as_deref(), lt.as_deref())
    })
    .await
}

async fn load(s: &AppState, id: &str) -> Result<Execution, ApiError> {
    listing::get_by_id::<Execution>(&*s.store, "ActionExecution", id).await
}

/// `GET /executions/{id}`.
pub async fn get_execution(
    State(s): State<AppState>,
    Path(id): Path<String>,
    QueryParams(p): QueryParams<RawParams>,
) -> Result<Json<Value>, ApiError> {
    let paging = Paging::from_params(&p, None)?;
    Ok(Json(paging.project(view(load(&s, &id).await?))))
}

/// `DELETE /executions/{id}`: cancel.
pub async fn cancel_execution(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let e = executions::cancel(services(&s)?, &id).await?;
    Ok(Json(view(e)))
}

/// Body of `PUT /executions/{id}`.
#[derive(Debug, Deserialize)]
pub struct UpdateBody {
    /// `pausing` or `resuming`.
    pub status: String,
}

/// `PUT /executions/{id}`: pause (`pausing`) or resume (`resuming`). Only workflow runners can
/// pause; anything else is a 400 naming the runner, as in StackStorm.
pub async fn update_execution(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Json(body): Json<UpdateBody>,
) -> Result<Json<Value>, ApiError> {
    let ctx = services(&s)?;
    let e = load(&s, &id).await?;
    let target = match body.status.as_str() {
        "pausing" | "paused" => ExecutionStatus::Pausing,
        "resuming" | "running" => ExecutionStatus::Resuming,
        other => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("Unsupported status \"{other}\": use \"pausing\" or \"resuming\""),
            ))
        }
    };
    let runner = e
        .runner
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if !e.liveaction.action_is_workflow {
        let what = if target == ExecutionStatus::Pausing {
            "pause"
        } else {
            "resume"
        };
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("Runner type \"{runner}\" does not support {what}."),
        ));
    }
    let from: &[ExecutionStatus] = if target == ExecutionStatus::Pausing {
        &[ExecutionStatus::Running]
    } else {
        &[ExecutionStatus::Paused, ExecutionStatus::Pausing]
    };
    match executions::transition(ctx, &id, from, target, JsonMap::new()).await? {
        Some(updated) => Ok(Json(view(updated))),
        None => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!(
                "Execution \"{id}\" is in status \"{}\" and cannot be {}.",
                e.status,
                if target == ExecutionStatus::Pausing {
                    "paused"
                } else {
                    "resumed"
                }
            ),
        )),
    }
}

/// Body of `POST /executions/{id}/re_run`.
#[derive(Debug, Default, Deserialize)]
pub struct ReRunBody {
    /// Parameters overriding the original ones.
    #[serde(default)]
    pub parameters: JsonMap,
    /// Workflow tasks to re-run from (workflows only).
    #[serde(default)]
    pub tasks: Vec<String>,
    /// Tasks whose with-items state is reset (workflows only).
    #[serde(default)]
    pub reset: Vec<String>,
    /// Delay in milliseconds.
    #[serde(default)]
    pub delay: Option<u64>,
}

/// `POST /executions/{id}/re_run`: a new execution of the same action with the original
/// parameters (secrets included) overridden by `parameters`; `context.re-run.ref` names the
/// original.
pub async fn re_run(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Extension(AuthUser(caller)): Extension<AuthUser>,
    body: Option<Json<ReRunBody>>,
) -> Result<Response, ApiError> {
    let ctx = services(&s)?;
    let body = body.map(|Json(b)| b).unwrap_or_default();
    let original = load(&s, &id).await?;
    if !body.tasks.is_empty() && !original.liveaction.action_is_workflow {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "only workflow executions can be re-run from tasks",
        ));
    }
    let mut parameters = executions::open_secrets(ctx, &original.parameters)?;
    parameters.extend(body.parameters);
    let mut re_run = json!({"ref": id});
    if !body.tasks.is_empty() {
        re_run["tasks"] = json!(body.tasks);
        re_run["reset"] = json!(body.reset);
    }
    let mut context = JsonMap::new();
    context.insert("re-run".into(), re_run);
    if let Some(tc) = original.context.get("trace_context") {
        context.insert("trace_context".into(), tc.clone());
    }
    let action_ref = original
        .action
        .get("ref")
        .and_then(Value::as_str)
        .unwrap_or(&original.liveaction.action)
        .to_string();
    let req = ExecutionRequest {
        action_ref,
        parameters,
        user: Some(caller),
        context,
        delay: body.delay,
        ..Default::default()
    };
    let exec = executions::request(ctx, req).await?;
    Ok((StatusCode::CREATED, Json(view(exec))).into_response())
}

/// `GET /executions/{id}/children?depth=N` (`-1`, the default: every descendant).
pub async fn children(
    State(s): State<AppState>,
    Path(id): Path<String>,
    QueryParams(p): QueryParams<RawParams>,
) -> Result<Json<Value>, ApiError> {
    load(&s, &id).await?;
    let depth = p
        .get("depth")
        .and_then(|d| d.parse::<i64>().ok())
        .unwrap_or(-1);
    let paging = Paging::from_params(&p, None)?;
    let execs = repo::<Execution>(&*s.store);
    let mut out = Vec::new();
    let mut level = vec![id];
    let mut d = 0;
    while !level.is_empty() && (depth < 0 || d < depth) {
        let ids: Vec<Value> = level.drain(..).map(Value::String).collect();
        let found = execs
            .find(&Query::all().is_in("parent", ids).sort("id", false))
            .await?;
        for e in found {
            level.push(e.id.clone());
            out.push(paging.project(view(e)));
        }
        d += 1;
    }
    Ok(Json(Value::Array(out)))
}

/// `GET /executions/{id}/output[?output_type=stdout|stderr]`: the stored chunks, concatenated,
/// as `text/plain`.
pub async fn output(
    State(s): State<AppState>,
    Path(id): Path<String>,
    QueryParams(p): QueryParams<RawParams>,
) -> Result<Response, ApiError> {
    load(&s, &id).await?;
    let mut q = Query::all()
        .eq("execution_id", id.as_str())
        .sort("id", false);
    if let Some(t) = p.get("output_type").filter(|t| !t.is_empty()) {
        q = q.eq("output_type", t.as_str());
    }
    let chunks = repo::<ExecutionOutput>(&*s.store).find(&q).await?;
    let text: String = chunks.into_iter().map(|c| c.data).collect();
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response())
}

/// `GET /executions/{id}/result`: the result document (`null` while there is none).
pub async fn result(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(load(&s, &id).await?.result.unwrap_or(Value::Null)))
}

/// `GET /executions/{id}/attribute/{name}`: one top-level attribute of the execution.
pub async fn attribute(
    State(s): State<AppState>,
    Path((id, name)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let v = view(load(&s, &id).await?);
    v.get(&name).cloned().map(Json).ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("Invalid or unsupported attribute: {name}"),
        )
    })
}
