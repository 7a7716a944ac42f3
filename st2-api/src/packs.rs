//! Packs (list, get, install, uninstall, register, index search, views), configs and config schemas: `/packs`, `/configs`, `/config_schemas`.
//!
//! Install and uninstall answer `202 {"execution_id"}` for executions of `packs.install` /
//! `packs.uninstall`, as StackStorm does; the work itself is done by the action runner service
//! (see `st2_core::services::pack_ops`). Registration, index search and config saves call
//! st2-core directly and invalidate the content catalog where content changed.

use std::path::PathBuf;

use axum::extract::{Path, Query as QueryParams, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde_json::{json, Map, Value};

use st2_core::model::{Config, ConfigSchema, JsonMap, Pack};
use st2_core::packs::{ContentTypes, PackError, RegisterOptions, Registrar};
use st2_core::services::executions::{self, ExecutionRequest};
use st2_core::services::pack_ops::{self, ConfigSaveError};
use st2_core::store::{repo, Query};

use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::executions::services;
use crate::listing::{self, bool_param, ListSpec, RawParams};
use crate::AppState;

/// The routes of this module.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/packs", get(list_packs))
        .route("/packs/install", post(install))
        .route("/packs/uninstall", post(uninstall))
        .route("/packs/register", post(register))
        .route("/packs/index/search", post(index_search))
        .route("/packs/views/files/{key}", get(view_files))
        .route("/packs/views/file/{key}/{*path}", get(view_file))
        .route("/packs/{key}", get(get_pack))
        .route("/configs", get(list_configs))
        .route("/configs/{pack}", get(get_config).put(put_config))
        .route("/config_schemas", get(list_schemas))
        .route("/config_schemas/{pack}", get(get_schema))
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, message)
}

/// `GET /packs` (`name`, `ref` filters, paging, include/exclude attributes).
pub async fn list_packs(
    State(s): State<AppState>,
    QueryParams(p): QueryParams<RawParams>,
) -> Result<Response, ApiError> {
    let spec = ListSpec::<Pack> {
        filters: &[("name", "name"), ("ref", "ref")],
        sort: ("ref", false),
        default_limit: None,
        view: listing::to_json,
    };
    listing::list(&*s.store, &p, Query::all(), &spec).await
}

/// `GET /packs/{ref_or_id}`.
pub async fn get_pack(
    State(s): State<AppState>,
    Path(key): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let pack = listing::get_by_ref_or_id::<Pack>(&*s.store, "Pack", &key).await?;
    Ok(Json(listing::to_json(pack)))
}

/// A list of pack names from `body.packs` (a lone string is accepted).
fn packs_of(body: &Value) -> Result<Vec<String>, ApiError> {
    match body.get("packs") {
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| {
                v.as_str()
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .ok_or_else(|| bad(format!("\"packs\" must be a list of names, got {v}")))
            })
            .collect(),
        Some(Value::String(s)) if !s.is_empty() => Ok(vec![s.clone()]),
        Some(Value::Null) | None => Ok(Vec::new()),
        Some(other) => Err(bad(format!(
            "\"packs\" must be a list of names, got {other}"
        ))),
    }
}

/// Starts an execution of `action_ref` and answers `202 {"execution_id"}`.
async fn start(
    s: &AppState,
    caller: String,
    action_ref: &str,
    parameters: JsonMap,
) -> Result<Response, ApiError> {
    let ctx = services(s)?;
    let exec = executions::request(
        ctx,
        ExecutionRequest {
            action_ref: action_ref.to_string(),
            parameters,
            user: Some(caller),
            ..Default::default()
        },
    )
    .await?;
    Ok((StatusCode::ACCEPTED, Json(json!({"execution_id": exec.id}))).into_response())
}

/// `POST /packs/install {"packs", "force", "skip_dependencies"}`: 202 `{"execution_id"}` of a
/// `packs.install` execution.
pub async fn install(
    State(s): State<AppState>,
    Extension(AuthUser(caller)): Extension<AuthUser>,
    Json(body): Json<Value>,
) -> Result<Response, ApiError> {
    let packs = packs_of(&body)?;
    if packs.is_empty() {
        return Err(bad("\"packs\" is a required property (a non-empty list)"));
    }
    let flag = |k: &str| body.get(k).and_then(Value::as_bool).unwrap_or(false);
    let mut params = JsonMap::new();
    params.insert("packs".into(), json!(packs));
    params.insert("force".into(), json!(flag("force")));
    params.insert("skip_dependencies".into(), json!(flag("skip_dependencies")));
    start(&s, caller, pack_ops::INSTALL_ACTION, params).await
}

/// `POST /packs/uninstall {"packs"}`: 202 `{"execution_id"}` of a `packs.uninstall` execution.
pub async fn uninstall(
    State(s): State<AppState>,
    Extension(AuthUser(caller)): Extension<AuthUser>,
    Json(body): Json<Value>,
) -> Result<Response, ApiError> {
    let packs = packs_of(&body)?;
    if packs.is_empty() {
        return Err(bad("\"packs\" is a required property (a non-empty list)"));
    }
    let mut params = JsonMap::new();
    params.insert("packs".into(), json!(packs));
    start(&s, caller, pack_ops::UNINSTALL_ACTION, params).await
}

fn pack_error(e: PackError) -> ApiError {
    match e {
        PackError::Store(s) => s.into(),
        PackError::NotFound(_) => ApiError::new(StatusCode::NOT_FOUND, e.to_string()),
        other => bad(other.to_string()),
    }
}

/// `POST /packs/register {"packs", "types", "fail_on_failure"}`: registers the named packs (all
/// when none) and answers the counts per content type.
pub async fn register(
    State(s): State<AppState>,
    body: Option<Json<Value>>,
) -> Result<Json<Value>, ApiError> {
    let ctx = services(&s)?;
    let body = body.map(|Json(b)| b).unwrap_or_else(|| json!({}));
    let packs = packs_of(&body)?;
    let types = match body.get("types") {
        Some(Value::Array(t)) if !t.is_empty() => {
            let names: Vec<&str> = t.iter().filter_map(Value::as_str).collect();
            ContentTypes::from_names(names).map_err(|e| bad(format!("\"types\": {e}")))?
        }
        _ => ContentTypes::DEFAULT,
    };
    let fail_on_failure = body
        .get("fail_on_failure")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    let registrar = Registrar::new(
        s.store.clone(),
        ctx.paths.clone(),
        RegisterOptions {
            types,
            fail_on_failure,
            ..RegisterOptions::default()
        },
    );
    let report = if packs.is_empty() {
        registrar.register_all().await
    } else {
        registrar.register_packs(&packs).await
    }
    .map_err(pack_error)?;
    ctx.catalog.invalidate();
    let mut counts = Map::new();
    for (kind, n) in &report.counts {
        counts.insert(kind.clone(), json!(n));
    }
    Ok(Json(Value::Object(counts)))
}

/// `POST /packs/index/search`: `{"query": Q}` → matching index entries; `{"pack": NAME}` → one
/// entry or `{}`. A missing or unreadable index gives `[]` / `{}` (and a log line).
pub async fn index_search(
    State(s): State<AppState>,
    Json(body): Json<Value>,
) -> Result<Json<Value>, ApiError> {
    let ctx = services(&s)?;
    let query = body.get("query").and_then(Value::as_str);
    let pack = body.get("pack").and_then(Value::as_str);
    if query.is_none() && pack.is_none() {
        return Err(bad("give \"query\" (a search) or \"pack\" (a pack name)"));
    }
    let index = match ctx.pack_ops.index().await {
        Ok(i) => Some(i),
        Err(e) => {
            tracing::warn!(error = %e, "pack index search: no index available");
            None
        }
    };
    let to_json =
        |e: &st2_core::packs::index::IndexEntry| serde_json::to_value(e).unwrap_or(Value::Null);
    if let Some(name) = pack {
        return Ok(Json(
            index
                .as_ref()
                .and_then(|i| i.get(name))
                .map(to_json)
                .unwrap_or_else(|| json!({})),
        ));
    }
    let q = query.unwrap_or_default();
    let hits: Vec<Value> = index
        .as_ref()
        .map(|i| i.search(q).into_iter().map(to_json).collect())
        .unwrap_or_default();
    Ok(Json(Value::Array(hits)))
}

/// The pack's directory on disk.
async fn pack_dir(s: &AppState, key: &str) -> Result<(Pack, PathBuf), ApiError> {
    let pack = listing::get_by_ref_or_id::<Pack>(&*s.store, "Pack", key).await?;
    let dir = pack
        .path
        .clone()
        .map(PathBuf::from)
        .or_else(|| {
            s.services
                .as_ref()
                .and_then(|c| c.paths.find_pack(&pack.pack_ref))
        })
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                format!("the directory of pack \"{}\" is unknown", pack.pack_ref),
            )
        })?;
    Ok((pack, dir))
}

/// `GET /packs/views/files/{ref_or_id}`: `[{"file_path", "content"}]` for the pack's text files.
pub async fn view_files(
    State(s): State<AppState>,
    Path(key): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let (pack, dir) = pack_dir(&s, &key).await?;
    let mut out = Vec::new();
    for f in &pack.files {
        // Binary files are skipped, like StackStorm does.
        if let Ok(content) = std::fs::read_to_string(dir.join(f)) {
            out.push(json!({"file_path": f, "content": content}));
        }
    }
    Ok(Json(Value::Array(out)))
}

/// `GET /packs/views/file/{ref_or_id}/{path}`: one file of the pack, as text.
pub async fn view_file(
    State(s): State<AppState>,
    Path((key, path)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let (pack, dir) = pack_dir(&s, &key).await?;
    // Only files the registrar listed: no way out of the pack directory.
    if !pack.files.iter().any(|f| f == &path) {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("File \"{path}\" not found in pack \"{}\"", pack.pack_ref),
        ));
    }
    let bytes = std::fs::read(dir.join(&path)).map_err(|e| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            format!("cannot read \"{path}\" of pack \"{}\": {e}", pack.pack_ref),
        )
    })?;
    Ok(([(header::CONTENT_TYPE, "application/octet-stream")], bytes).into_response())
}

/// The text shown instead of secret config values.
const MASKED: &str = "********";

/// A config as the API shows it: secret attributes (per the config schema) masked unless
/// `show_secrets`.
async fn config_view(s: &AppState, c: Config, show_secrets: bool) -> Result<Value, ApiError> {
    let mut c = c;
    if !show_secrets {
        if let Some(schema) = repo::<ConfigSchema>(&*s.store)
            .find_one(Query::all().eq("pack", c.pack.as_str()))
            .await?
        {
            for (name, spec) in &schema.attributes {
                if spec.get("secret").and_then(Value::as_bool) == Some(true) {
                    if let Some(v) = c.values.get_mut(name) {
                        *v = Value::String(MASKED.into());
                    }
                }
            }
        }
    }
    Ok(listing::to_json(c))
}

/// `GET /configs` (`show_secrets`).
pub async fn list_configs(
    State(s): State<AppState>,
    QueryParams(p): QueryParams<RawParams>,
) -> Result<Response, ApiError> {
    let show = bool_param(&p, "show_secrets").unwrap_or(false);
    let paging = listing::Paging::from_params(&p, None)?;
    let q = Query::all().sort("pack", false);
    let configs = repo::<Config>(&*s.store);
    let total = configs.count(&q).await?;
    let mut items = Vec::new();
    for c in configs.find(&q.page(paging.offset, paging.limit)).await? {
        items.push(paging.project(config_view(&s, c, show).await?));
    }
    Ok(listing::with_total(Value::Array(items), total))
}

/// `GET /configs/{pack}` (`show_secrets`).
pub async fn get_config(
    State(s): State<AppState>,
    Path(pack): Path<String>,
    QueryParams(p): QueryParams<RawParams>,
) -> Result<Json<Value>, ApiError> {
    let c = repo::<Config>(&*s.store)
        .find_one(Query::all().eq("pack", pack.as_str()))
        .await?
        .ok_or_else(|| listing::not_found("Config", &pack))?;
    let show = bool_param(&p, "show_secrets").unwrap_or(false);
    Ok(Json(config_view(&s, c, show).await?))
}

/// `PUT /configs/{pack}` with the values: validated against the pack's config schema (400
/// naming each violation), written to the pack's config file and stored.
pub async fn put_config(
    State(s): State<AppState>,
    Path(pack): Path<String>,
    Json(body): Json<Value>,
) -> Result<Json<Value>, ApiError> {
    let ctx = services(&s)?;
    let Value::Object(values) = body else {
        return Err(bad("the config must be a JSON object of values"));
    };
    let saved = pack_ops::save_config(ctx, &pack, &values)
        .await
        .map_err(|e| match e {
            ConfigSaveError::UnknownPack(_) => ApiError::new(StatusCode::NOT_FOUND, e.to_string()),
            ConfigSaveError::Invalid(errs) => {
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
                    "Values for pack \"{pack}\" do not match its config schema: {}",
                    reasons.join("; ")
                ))
            }
            ConfigSaveError::Io(m) => {
                tracing::error!(pack = %pack, error = %m, "cannot save a pack config");
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, m)
            }
        })?;
    Ok(Json(config_view(&s, saved, true).await?))
}

/// `GET /config_schemas`.
pub async fn list_schemas(
    State(s): State<AppState>,
    QueryParams(p): QueryParams<RawParams>,
) -> Result<Response, ApiError> {
    let spec = ListSpec::<ConfigSchema> {
        filters: &[("pack", "pack")],
        sort: ("pack", false),
        default_limit: None,
        view: listing::to_json,
    };
    listing::list(&*s.store, &p, Query::all(), &spec).await
}

/// `GET /config_schemas/{pack}`.
pub async fn get_schema(
    State(s): State<AppState>,
    Path(pack): Path<String>,
) -> Result<Json<Value>, ApiError> {
    repo::<ConfigSchema>(&*s.store)
        .find_one(Query::all().eq("pack", pack.as_str()))
        .await?
        .map(|c| Json(listing::to_json(c)))
        .ok_or_else(|| listing::not_found("ConfigSchema", &pack))
}
