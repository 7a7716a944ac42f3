//! The datastore: `/keys` (scopes system/user/all, prefix, decrypt, ttl, secret).
//!
//! Thin over [`st2_core::datastore::Datastore`], which owns scopes, encryption, TTLs and change
//! events. This module only reads StackStorm's parameters, picks the owner of user-scoped keys
//! (the caller, or `user` when given) and shapes the answers: secrets come back as ciphertext
//! with `encrypted: true` unless `decrypt=true`.

use axum::extract::{Path, Query as QueryParams, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use serde_json::Value;

use st2_core::datastore::{self, Datastore, DatastoreError, ListKeys, Scope, SetKey};

use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::listing::{self, bool_param, Paging, RawParams};
use crate::AppState;

/// The routes of this module.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/keys", get(list_keys))
        .route("/keys/{name}", get(get_key).put(put_key).delete(delete_key))
}

fn store_of(s: &AppState) -> Result<&Datastore, ApiError> {
    s.services
        .as_ref()
        .and_then(|c| c.datastore.as_deref())
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the datastore is not available in this process",
            )
        })
}

impl From<DatastoreError> for ApiError {
    fn from(e: DatastoreError) -> Self {
        match e {
            DatastoreError::Store(s) => s.into(),
            DatastoreError::Decrypt { .. } => {
                tracing::error!(error = %e, "cannot decrypt a datastore value");
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
            }
            other => ApiError::new(StatusCode::BAD_REQUEST, other.to_string()),
        }
    }
}

/// A scope parameter: `system`, `st2kv.system`, `user`, `st2kv.user`; `all` only when allowed
/// (`None` then).
fn parse_scope(
    raw: Option<&str>,
    default: &str,
    allow_all: bool,
) -> Result<Option<Scope>, ApiError> {
    let raw = raw.filter(|s| !s.is_empty()).unwrap_or(default);
    if raw == "all" || raw == "st2kv.all" {
        if allow_all {
            return Ok(None);
        }
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "Invalid scope \"all\": only listing accepts it; use st2kv.system or st2kv.user",
        ));
    }
    raw.parse::<Scope>().map(Some).map_err(ApiError::from)
}

/// The owner of user-scoped keys: `user` when given, else the caller.
fn owner(p: &RawParams, caller: &str) -> String {
    p.get("user")
        .filter(|u| !u.is_empty())
        .cloned()
        .unwrap_or_else(|| caller.to_string())
}

fn view(pair: &st2_core::model::KeyValuePair) -> Value {
    datastore::to_api_json(pair)
}

/// `GET /keys` (`scope` default `all`, `prefix`, `decrypt`, `user`, paging).
pub async fn list_keys(
    State(s): State<AppState>,
    Extension(AuthUser(caller)): Extension<AuthUser>,
    QueryParams(p): QueryParams<RawParams>,
) -> Result<Response, ApiError> {
    let ds = store_of(&s)?;
    let scope = parse_scope(p.get("scope").map(String::as_str), "all", true)?;
    let paging = Paging::from_params(&p, None)?;
    let pairs = ds
        .list(&ListKeys {
            scope,
            user: Some(owner(&p, &caller)),
            prefix: p.get("prefix").filter(|x| !x.is_empty()).cloned(),
            decrypt: bool_param(&p, "decrypt").unwrap_or(false),
        })
        .await?;
    let total = pairs.len() as u64;
    let start = usize::try_from(paging.offset).unwrap_or(usize::MAX);
    let items: Vec<Value> = pairs
        .iter()
        .skip(start)
        .take(
            paging
                .limit
                .and_then(|l| usize::try_from(l).ok())
                .unwrap_or(usize::MAX),
        )
        .map(|kv| paging.project(view(kv)))
        .collect();
    Ok(listing::with_total(Value::Array(items), total))
}

fn key_not_found(name: &str, scope: Scope) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("Key with name: {name} and scope: {scope} not found!"),
    )
}

/// `GET /keys/{name}` (`scope` default `system`, `decrypt`, `user`).
pub async fn get_key(
    State(s): State<AppState>,
    Extension(AuthUser(caller)): Extension<AuthUser>,
    Path(name): Path<String>,
    QueryParams(p): QueryParams<RawParams>,
) -> Result<Json<Value>, ApiError> {
    let ds = store_of(&s)?;
    let scope =
        parse_scope(p.get("scope").map(String::as_str), "system", false)?.unwrap_or(Scope::System);
    let user = owner(&p, &caller);
    let decrypt = bool_param(&p, "decrypt").unwrap_or(false);
    ds.get(&name, scope, Some(&user), decrypt)
        .await?
        .map(|kv| Json(view(&kv)))
        .ok_or_else(|| key_not_found(&name, scope))
}

/// `PUT /keys/{name}`: body `{name, value, scope, user, secret, encrypted, ttl}`; 200 with the
/// pair (secrets as ciphertext).
pub async fn put_key(
    State(s): State<AppState>,
    Extension(AuthUser(caller)): Extension<AuthUser>,
    Path(name): Path<String>,
    QueryParams(p): QueryParams<RawParams>,
    Json(body): Json<Value>,
) -> Result<Json<Value>, ApiError> {
    let ds = store_of(&s)?;
    let bad = |m: String| ApiError::new(StatusCode::BAD_REQUEST, m);
    let Value::Object(body) = body else {
        return Err(bad("the body must be a JSON object".into()));
    };
    let value = match body.get("value") {
        Some(Value::String(v)) => v.clone(),
        Some(Value::Null) | None => return Err(bad("\"value\" is a required property".into())),
        // StackStorm stores values as strings; other JSON is kept as its text.
        Some(other) => other.to_string(),
    };
    let flag = |k: &str| -> Result<bool, ApiError> {
        match body.get(k) {
            None | Some(Value::Null) => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(other) => Err(bad(format!("\"{k}\" must be a boolean, got {other}"))),
        }
    };
    let ttl = match body.get("ttl") {
        None | Some(Value::Null) => None,
        Some(v) => Some(v.as_u64().ok_or_else(|| {
            bad(format!(
                "\"ttl\" must be a non-negative integer (seconds), got {v}"
            ))
        })?),
    };
    let body_str = |k: &str| {
        body.get(k)
            .and_then(Value::as_str)
            .filter(|v| !v.is_empty())
    };
    let scope_raw = body_str("scope").or(p.get("scope").map(String::as_str));
    let scope = parse_scope(scope_raw, "system", false)?.unwrap_or(Scope::System);
    let user = body_str("user")
        .map(str::to_string)
        .unwrap_or_else(|| owner(&p, &caller));
    let req = SetKey {
        name,
        value,
        scope,
        user: (scope == Scope::User).then_some(user),
        secret: flag("secret")?,
        encrypted: flag("encrypted")?,
        ttl: ttl.filter(|t| *t > 0),
    };
    let saved = ds.set(req).await?;
    Ok(Json(view(&saved)))
}

/// `DELETE /keys/{name}` (`scope` default `system`, `user`): 204, or 404 when absent.
pub async fn delete_key(
    State(s): State<AppState>,
    Extension(AuthUser(caller)): Extension<AuthUser>,
    Path(name): Path<String>,
    QueryParams(p): QueryParams<RawParams>,
) -> Result<Response, ApiError> {
    let ds = store_of(&s)?;
    let scope =
        parse_scope(p.get("scope").map(String::as_str), "system", false)?.unwrap_or(Scope::System);
    let user = owner(&p, &caller);
    match ds.delete(&name, scope, Some(&user)).await? {
        Some(_) => Ok(StatusCode::NO_CONTENT.into_response()),
        None => Err(key_not_found(&name, scope)),
    }
}
