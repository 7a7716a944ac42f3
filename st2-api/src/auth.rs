//! Authentication: `POST /auth/v1/tokens` (basic auth → token) and the middleware that requires
//! a token (`X-Auth-Token` header or `x-auth-token` query) or an API key (`St2-Api-Key` header or
//! `st2-api-key` query) on API calls.

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine as _;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::AppState;

/// The authenticated user of a request (a request extension).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthUser(pub String);

/// How the caller of a request authenticated (a request extension, shown by `GET /user`);
/// absent when auth is disabled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthMethod {
    /// `authentication token` or `api key` (StackStorm's wording).
    pub method: &'static str,
    /// `header` or `query`.
    pub location: &'static str,
}

fn query_param(req: &Request, name: &str) -> Option<String> {
    req.uri().query()?.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        k.eq_ignore_ascii_case(name).then(|| v.to_string())
    })
}

fn header_str(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// The user of a valid token: from the catalog's token cache when the pipeline runs here (a
/// token cannot be revoked, only expire), else from the store.
async fn token_user(state: &AppState, token: &str) -> st2_core::Result<Option<String>> {
    let catalog = state.services.as_ref().map(|c| &c.catalog);
    if let Some(user) = catalog.and_then(|c| c.token_user(token)) {
        return Ok(Some(user));
    }
    let found = st2_core::auth::valid_token(&*state.store, token).await?;
    if let (Some(c), Some((user, expiry))) = (catalog, &found) {
        c.put_token(token, user, *expiry);
    }
    Ok(found.map(|(user, _)| user))
}

/// Requires a valid token or API key when auth is enabled.
pub async fn require_auth(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    if !state.auth_enabled {
        req.extensions_mut().insert(AuthUser("st2admin".into()));
        return next.run(req).await;
    }
    let located = |h: Option<String>, q: Option<String>| match (h, q) {
        (Some(v), _) => Some((v, "header")),
        (None, Some(v)) => Some((v, "query")),
        (None, None) => None,
    };
    let token = located(
        header_str(req.headers(), "x-auth-token"),
        query_param(&req, "x-auth-token"),
    );
    let key = located(
        header_str(req.headers(), "st2-api-key"),
        query_param(&req, "st2-api-key"),
    );
    let (user, method) = match (token, key) {
        (Some((t, location)), _) => (
            token_user(&state, &t).await,
            AuthMethod {
                method: "authentication token",
                location,
            },
        ),
        (None, Some((k, location))) => (
            st2_core::auth::user_for_api_key(&*state.store, &k).await,
            AuthMethod {
                method: "api key",
                location,
            },
        ),
        (None, None) => return ApiError::unauthorized().into_response(),
    };
    match user {
        Ok(Some(u)) => {
            req.extensions_mut().insert(AuthUser(u));
            req.extensions_mut().insert(method);
            next.run(req).await
        }
        Ok(None) => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "Unauthorized - Invalid or expired token or API key.",
        )
        .into_response(),
        Err(e) => ApiError::from(e).into_response(),
    }
}

/// `POST /auth/v1/tokens`: basic auth in, `201 {user, token, expiry, id, metadata}` out.
pub async fn create_token(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Option<Json<Value>>,
) -> Result<Response, ApiError> {
    let invalid = || ApiError::new(StatusCode::UNAUTHORIZED, "Invalid or missing credentials");
    let auth = header_str(&headers, header::AUTHORIZATION.as_str()).ok_or_else(invalid)?;
    let encoded = auth
        .strip_prefix("Basic ")
        .or_else(|| auth.strip_prefix("basic "))
        .ok_or_else(invalid)?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|_| invalid())?;
    let text = String::from_utf8(decoded).map_err(|_| invalid())?;
    let (user, password) = text.split_once(':').ok_or_else(invalid)?;
    if !st2_core::auth::check_password(&*state.store, user, password).await? {
        return Err(invalid());
    }
    let ttl = body
        .as_ref()
        .and_then(|b| b.get("ttl"))
        .and_then(Value::as_u64)
        .map(|t| t.min(state.token_ttl))
        .unwrap_or(state.token_ttl);
    let t = st2_core::auth::issue_token(&*state.store, user, ttl).await?;
    let body = json!({"id": t.id, "user": t.user, "token": t.token, "expiry": t.expiry, "metadata": t.metadata});
    Ok((StatusCode::CREATED, Json(body)).into_response())
}
