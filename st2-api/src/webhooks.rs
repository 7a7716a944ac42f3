//! Webhooks: `POST /api/v1/webhooks/<url>` fires the `core.st2.webhook` trigger whose `url`
//! parameter matches (payload `{headers, headers_lower, body}`); `POST /api/v1/webhooks/st2`
//! dispatches any trigger (`{trigger, payload}`). Both answer 202 echoing the body once the
//! trigger instance is stored.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};

use st2_core::model::Trigger;
use st2_core::services::dispatch::{self, TraceTag};
use st2_core::store::{repo, Query};

use crate::error::ApiError;
use crate::AppState;

/// The webhook trigger type.
pub const WEBHOOK_TRIGGER_TYPE: &str = "core.st2.webhook";

fn normalise(url: &str) -> &str {
    url.trim_matches('/')
}

/// The webhook triggers registered by rules.
pub async fn find_webhook(state: &AppState, url: &str) -> Result<Option<Trigger>, ApiError> {
    let same_url = |t: &&Trigger| {
        t.parameters
            .get("url")
            .and_then(Value::as_str)
            .is_some_and(|u| normalise(u) == normalise(url))
    };
    match &state.services {
        // The catalog's copy: rule changes made here invalidate it, others are seen within
        // its TTL (as the rules engine sees them).
        Some(ctx) => Ok(ctx
            .catalog
            .triggers_of_type(&*state.store, WEBHOOK_TRIGGER_TYPE)
            .await?
            .iter()
            .find(same_url)
            .cloned()),
        None => Ok(repo::<Trigger>(&*state.store)
            .find(&Query::all().eq("type", WEBHOOK_TRIGGER_TYPE))
            .await?
            .iter()
            .find(same_url)
            .cloned()),
    }
}

/// `GET /api/v1/webhooks`.
pub async fn list(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let triggers: Vec<Trigger> = repo::<Trigger>(&*state.store)
        .find(&Query::all().eq("type", WEBHOOK_TRIGGER_TYPE))
        .await?;
    Ok(Json(serde_json::to_value(triggers).unwrap_or(Value::Null)))
}

/// `GET /api/v1/webhooks/{*url}`: the webhook trigger, 404 when no rule registered it.
pub async fn get_one(
    State(state): State<AppState>,
    Path(url): Path<String>,
) -> Result<Json<Value>, ApiError> {
    find_webhook(&state, &url)
        .await?
        .map(|t| Json(serde_json::to_value(t).unwrap_or(Value::Null)))
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                format!("Webhook {} not registered with st2", normalise(&url)),
            )
        })
}

/// `POST /api/v1/webhooks/{*url}`.
pub async fn post(
    State(state): State<AppState>,
    Path(url): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let ctx = state.services.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the event pipeline is not running in this process",
        )
    })?;
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    let body: Value = if content_type.starts_with("application/x-www-form-urlencoded") {
        let form: Vec<(String, String)> = serde_urlencoded::from_bytes(&body).map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("Failed to parse request body: {e}"),
            )
        })?;
        Value::Object(
            form.into_iter()
                .map(|(k, v)| (k, Value::String(v)))
                .collect(),
        )
    } else if body.is_empty() {
        json!({})
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("Failed to parse request body: {e}"),
            )
        })?
    };
    let trace_tag = headers
        .get("st2-trace-tag")
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    if normalise(&url) == "st2" {
        let obj = body.as_object().ok_or_else(|| {
            ApiError::new(StatusCode::BAD_REQUEST, "Request body must be an object")
        })?;
        let trigger = obj
            .get("trigger")
            .and_then(Value::as_str)
            .ok_or_else(|| ApiError::new(StatusCode::BAD_REQUEST, "Trigger not specified"))?;
        let payload = obj.get("payload").cloned().unwrap_or_else(|| json!({}));
        dispatch::dispatch(ctx, trigger, payload, trace_tag.map(TraceTag::Join)).await?;
        return Ok((StatusCode::ACCEPTED, Json(body)).into_response());
    }
    let trigger = find_webhook(&state, &url).await?.ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            format!("Webhook route /{} not found", normalise(&url)),
        )
    })?;
    let mut hdrs = Map::new();
    let mut lower = Map::new();
    for (name, value) in headers.iter() {
        // Credentials never reach the trigger payload (StackStorm drops the same three).
        if matches!(name.as_str(), "x-auth-token" | "st2-api-key" | "cookie") {
            continue;
        }
        let v = Value::String(value.to_str().unwrap_or_default().to_string());
        hdrs.insert(title_case(name.as_str()), v.clone());
        lower.insert(name.as_str().to_ascii_lowercase(), v);
    }
    let payload = json!({"headers": hdrs, "headers_lower": lower, "body": body});
    // StackStorm's default tag for a webhook: `webhook-<url>-<uuid4 hex>`.
    let trace_tag = match trace_tag {
        Some(t) => TraceTag::Join(t),
        None => TraceTag::New(format!(
            "webhook-{}-{}",
            normalise(&url),
            uuid::Uuid::new_v4().simple()
        )),
    };
    dispatch::dispatch(ctx, &trigger.trigger_ref, payload, Some(trace_tag)).await?;
    Ok((StatusCode::ACCEPTED, Json(body)).into_response())
}

/// `content-type` → `Content-Type` (StackStorm's `headers` keep the client's casing, which
/// HTTP/1 clients send title-cased; axum lowercases names).
fn title_case(name: &str) -> String {
    name.split('-')
        .map(|w| {
            let mut c = w.chars();
            match c.next() {
                Some(f) => f.to_ascii_uppercase().to_string() + c.as_str(),
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join("-")
}
