//! API keys (`/apikeys`) and the caller (`/user`).
//!
//! Keys are stored hashed ([`st2_core::auth::create_api_key`]); the plain key appears only in
//! the answer to `POST /apikeys`. Lists and gets never show the hash unless `show_secrets=True`.
//! A disabled key authenticates nobody (the auth middleware checks `enabled`).

use axum::extract::{Path, Query as QueryParams, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use serde_json::{json, Value};

use st2_core::model::ApiKey;
use st2_core::store::{repo, Query};

use crate::auth::{AuthMethod, AuthUser};
use crate::error::ApiError;
use crate::listing::{self, bool_param, Paging, RawParams};
use crate::AppState;

/// The routes of this module.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/apikeys", get(list_keys).post(create_key))
        .route(
            "/apikeys/{id}",
            get(get_key).put(update_key).delete(delete_key),
        )
        .route("/user", get(whoami))
}

/// An API key as the API shows it: no hash unless `show_secrets`.
fn view(k: ApiKey, show_secrets: bool) -> Value {
    let mut v = listing::to_json(&k);
    if !show_secrets {
        if let Some(obj) = v.as_object_mut() {
            obj.remove("key_hash");
        }
    }
    v
}

/// `POST /apikeys`: body `{}` or `{"user", "metadata"}`; 201 with the plain `key` (shown once).
pub async fn create_key(
    State(s): State<AppState>,
    Extension(AuthUser(caller)): Extension<AuthUser>,
    body: Option<Json<Value>>,
) -> Result<Response, ApiError> {
    let body = body.map(|Json(b)| b).unwrap_or_else(|| json!({}));
    let Value::Object(body) = body else {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "the body must be a JSON object",
        ));
    };
    let user = match body.get("user") {
        None | Some(Value::Null) => caller,
        Some(Value::String(u)) if !u.is_empty() => u.clone(),
        Some(other) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("\"user\" must be a non-empty string, got {other}"),
            ))
        }
    };
    let metadata = match body.get("metadata") {
        None | Some(Value::Null) => json!({}),
        Some(m @ Value::Object(_)) => m.clone(),
        Some(other) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("\"metadata\" must be an object, got {other}"),
            ))
        }
    };
    let (saved, plain) = st2_core::auth::create_api_key(&*s.store, &user, metadata).await?;
    let mut v = view(saved, false);
    if let Some(obj) = v.as_object_mut() {
        obj.insert("key".into(), Value::String(plain));
    }
    Ok((StatusCode::CREATED, Json(v)).into_response())
}

/// `GET /apikeys` (`user` filter, `show_secrets`, paging).
pub async fn list_keys(
    State(s): State<AppState>,
    QueryParams(p): QueryParams<RawParams>,
) -> Result<Response, ApiError> {
    let show = bool_param(&p, "show_secrets").unwrap_or(false);
    let paging = Paging::from_params(&p, None)?;
    let q = listing::filtered(Query::all(), &p, &[("user", "user")]).sort("created_at", false);
    let keys = repo::<ApiKey>(&*s.store);
    let total = keys.count(&q).await?;
    let items: Vec<Value> = keys
        .find(&q.page(paging.offset, paging.limit))
        .await?
        .into_iter()
        .map(|k| paging.project(view(k, show)))
        .collect();
    Ok(listing::with_total(Value::Array(items), total))
}

/// `GET /apikeys/{id}` (`show_secrets`).
pub async fn get_key(
    State(s): State<AppState>,
    Path(id): Path<String>,
    QueryParams(p): QueryParams<RawParams>,
) -> Result<Json<Value>, ApiError> {
    let k = listing::get_by_id::<ApiKey>(&*s.store, "ApiKey", &id).await?;
    Ok(Json(view(
        k,
        bool_param(&p, "show_secrets").unwrap_or(false),
    )))
}

/// `PUT /apikeys/{id}`: the full object as `apikey enable/disable` sends it; `enabled` and
/// `metadata` are updated, the rest is ignored (the hash and owner never change).
pub async fn update_key(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Json(body): Json<Value>,
) -> Result<Json<Value>, ApiError> {
    let mut k = listing::get_by_id::<ApiKey>(&*s.store, "ApiKey", &id).await?;
    match body.get("enabled") {
        None | Some(Value::Null) => {}
        Some(Value::Bool(b)) => k.enabled = *b,
        Some(other) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("\"enabled\" must be a boolean, got {other}"),
            ))
        }
    }
    match body.get("metadata") {
        None | Some(Value::Null) => {}
        Some(m @ Value::Object(_)) => k.metadata = m.clone(),
        Some(other) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("\"metadata\" must be an object, got {other}"),
            ))
        }
    }
    let saved = repo::<ApiKey>(&*s.store).save(k).await?;
    Ok(Json(view(saved, false)))
}

/// `DELETE /apikeys/{id}`: 204.
pub async fn delete_key(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    if repo::<ApiKey>(&*s.store).delete(&id).await? {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(listing::not_found("ApiKey", &id))
    }
}

/// `GET /user`: who the caller is and how they authenticated. RBAC is not enforced, so every
/// user is an administrator without roles.
pub async fn whoami(
    Extension(AuthUser(user)): Extension<AuthUser>,
    method: Option<Extension<AuthMethod>>,
) -> Json<Value> {
    let mut authentication = json!({});
    if let Some(Extension(m)) = method {
        authentication = json!({"method": m.method, "location": m.location});
    }
    Json(json!({
        "username": user,
        "authentication": authentication,
        "rbac": {"enabled": false, "roles": [], "permissions": {}},
        "is_rbac_admin": true,
    }))
}
