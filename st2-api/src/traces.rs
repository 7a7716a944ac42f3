//! Traces: `GET /traces` (newest first; filters `trace_tag`, `execution`, `rule`,
//! `trigger_instance`) and `GET /traces/{id}`; plus the in-memory list path that resources use
//! for filters the store cannot express (either-of fields, array members, time windows).

use axum::extract::{Path, Query as QueryParams, State};
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::Value;

use st2_core::model::{Document, Trace, TraceComponent};
use st2_core::store::{repo, Query, Store};

use crate::error::ApiError;
use crate::listing::{self, ListSpec, Paging, RawParams};
use crate::AppState;

/// The routes of this module.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/traces", get(list_traces))
        .route("/traces/{id}", get(get_trace))
}

/// Like [`listing::list`], keeping only the documents for which `keep` holds (checked here,
/// after the store's equality filters), then paging and projecting. `X-Total-Count` counts the
/// kept documents.
pub async fn list_matching<T: Document>(
    store: &dyn Store,
    p: &RawParams,
    q: Query,
    spec: &ListSpec<T>,
    keep: impl Fn(&T) -> bool,
) -> Result<Response, ApiError> {
    let paging = Paging::from_params(p, spec.default_limit)?;
    let (field, desc) = spec.sort;
    let q = listing::filtered(q, p, spec.filters).sort(field, paging.descending.unwrap_or(desc));
    let kept: Vec<T> = repo::<T>(store)
        .find(&q)
        .await?
        .into_iter()
        .filter(|d| keep(d))
        .collect();
    let total = kept.len() as u64;
    let items = kept
        .into_iter()
        .skip(usize::try_from(paging.offset).unwrap_or(usize::MAX))
        .take(paging.limit.map_or(usize::MAX, |l| l as usize))
        .map(|d| paging.project((spec.view)(d)))
        .collect();
    Ok(listing::with_total(Value::Array(items), total))
}

fn parse_time(s: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|d| d.with_timezone(&chrono::Utc))
}

/// True when the ISO-8601 time `t` is after `gt` and before `lt` (each bound optional; an
/// unreadable time is outside any window).
pub fn within(t: &str, gt: Option<&str>, lt: Option<&str>) -> bool {
    let t = parse_time(t);
    gt.is_none_or(|g| t.is_some() && t > parse_time(g))
        && lt.is_none_or(|l| t.is_some() && t < parse_time(l))
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
    list_matching(&*s.store, &p, Query::all(), &spec, move |t: &Trace| {
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
