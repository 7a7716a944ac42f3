//! Traces: `GET /traces` (newest first; filters `trace_tag`, `execution`, `rule`,
//! `trigger_instance`) and `GET /traces/{id}`.

use axum::extract::{Path, Query as QueryParams, State};
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::Value;

use st2_core::model::{Trace, TraceComponent};
use st2_core::store::Query;

use crate::error::ApiError;
use crate::listing::{self, ListSpec, Paging, RawParams};
use crate::AppState;

/// The routes of this module.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/traces", get(list_traces))
        .route("/traces/{id}", get(get_trace))
}

fn has(components: &[TraceComponent], id: Option<&String>) -> bool {
    id.is_none_or(|id| components.iter().any(|c| &c.object_id == id))
}

/// A trace as the API shows it, with StackStorm's `uid` (`trace:<id>`).
pub fn view(t: Trace) -> Value {
    let uid = format!("trace:{}", t.id);
    let mut v = listing::to_json(t);
    if let Some(o) = v.as_object_mut() {
        o.insert("uid".into(), Value::String(uid));
    }
    v
}

/// `GET /traces`: newest first.
pub async fn list_traces(
    State(s): State<AppState>,
    QueryParams(p): QueryParams<RawParams>,
) -> Result<Response, ApiError> {
    let spec = ListSpec::<Trace> {
        filters: &[("trace_tag", "trace_tag"), ("id", "id")],
        sort: ("start_timestamp", true),
        default_limit: Some(100),
        view,
    };
    let (execution, rule, instance) = (
        p.get("execution").cloned(),
        p.get("rule").cloned(),
        p.get("trigger_instance").cloned(),
    );
    if execution.is_none() && rule.is_none() && instance.is_none() {
        return listing::list(&*s.store, &p, Query::all(), &spec).await;
    }
    listing::list_matching(&*s.store, &p, Query::all(), &spec, move |t: &Trace| {
        has(&t.action_executions, execution.as_ref())
            && has(&t.rules, rule.as_ref())
            && has(&t.trigger_instances, instance.as_ref())
    })
    .await
}

/// `GET /traces/{id}`.
pub async fn get_trace(
    State(s): State<AppState>,
    Path(id): Path<String>,
    QueryParams(p): QueryParams<RawParams>,
) -> Result<Json<Value>, ApiError> {
    let paging = Paging::from_params(&p, None)?;
    let t = listing::get_by_id::<Trace>(&*s.store, "Trace", &id).await?;
    Ok(Json(paging.project(view(t))))
}
