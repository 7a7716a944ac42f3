//! Rules and rule enforcements.
//!
//! | method and path | what |
//! |---|---|
//! | `GET /rules` | list; filters `pack`, `name`, `action` (`action.ref`), `trigger` (`trigger.ref` or `trigger.type`), `enabled` |
//! | `POST /rules` | 201 with the rule; validated as registration validates `rules/*.yaml` |
//! | `GET /rules/{ref_or_id}` | one |
//! | `PUT /rules/{ref_or_id}` | replace (`st2 rule enable/disable/update`) |
//! | `DELETE /rules/{ref_or_id}` | 204 |
//! | `GET /ruleenforcements` | list, newest first; filters `rule` (ref or id), `trigger_instance`, `execution`, `enforced_at_gt`/`enforced_at_lt` |
//! | `GET /ruleenforcements/{id}` | one |
//!
//! A rule saved here gets its trigger exactly as registration makes it (shared by type and
//! parameters, see `st2_core::packs::register::rule_writes`), so a `core.st2.webhook` rule makes
//! its webhook URL live; the rules engine reloads its rules before the next trigger instance.

use std::path::Path as FsPath;

use axum::extract::{Path, Query as QueryParams, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use serde_json::{json, Value};

use st2_core::model::{Rule, RuleEnforcement};
use st2_core::packs::{loader, register, PackError};
use st2_core::schema::ContentError;
use st2_core::store::{repo, Query, Write};

use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::listing::{self, ListSpec, RawParams};
use crate::listing::{list_matching, within};
use crate::AppState;

/// The routes of this module.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/rules", get(list_rules).post(create_rule))
        .route(
            "/rules/{key}",
            get(get_rule).put(update_rule).delete(delete_rule),
        )
        .route("/ruleenforcements", get(list_enforcements))
        .route("/ruleenforcements/{id}", get(get_enforcement))
}

/// A 400 naming every invalid field and why (`trigger.parameters.url: ...`).
pub fn invalid(what: &str, errs: &[ContentError]) -> ApiError {
    let parts: Vec<String> = errs
        .iter()
        .map(|e| {
            let field = e.field.trim_start_matches('/').replace('/', ".");
            if field.is_empty() {
                e.reason.clone()
            } else {
                format!("{field}: {}", e.reason)
            }
        })
        .collect();
    ApiError::new(
        StatusCode::BAD_REQUEST,
        format!("Invalid {what}: {}", parts.join("; ")),
    )
}

/// A content error from st2-core as the API answers it: invalid content is a 400 naming the
/// fields, anything else a 500.
pub fn pack_error(what: &str, e: PackError) -> ApiError {
    match e {
        PackError::InvalidContent(errs) => invalid(what, &errs),
        PackError::Store(s) => s.into(),
        other => {
            tracing::error!(error = %other, "content operation failed");
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, other.to_string())
        }
    }
}

/// A rule as the API shows it (`tags` always present, as StackStorm shows it).
pub fn view(r: Rule) -> Value {
    let mut v = listing::to_json(r);
    if let Some(obj) = v.as_object_mut() {
        obj.entry("tags").or_insert_with(|| json!([]));
    }
    v
}

/// Tells the event pipeline (when this process runs it) that content changed.
fn content_changed(s: &AppState) {
    if let Some(ctx) = &s.services {
        ctx.catalog.invalidate();
    }
}

/// `GET /rules`.
pub async fn list_rules(
    State(s): State<AppState>,
    QueryParams(p): QueryParams<RawParams>,
) -> Result<Response, ApiError> {
    let spec = ListSpec::<Rule> {
        filters: &[
            ("pack", "pack"),
            ("name", "name"),
            ("action", "action.ref"),
            ("enabled", "enabled"),
        ],
        sort: ("ref", false),
        default_limit: None,
        view,
    };
    match p.get("trigger") {
        None => listing::list(&*s.store, &p, Query::all(), &spec).await,
        Some(t) => {
            let t = t.clone();
            list_matching(&*s.store, &p, Query::all(), &spec, move |r: &Rule| {
                r.trigger.trigger_type == t || r.trigger.trigger_ref.as_deref() == Some(t.as_str())
            })
            .await
        }
    }
}

/// `GET /rules/{ref_or_id}`.
pub async fn get_rule(
    State(s): State<AppState>,
    Path(key): Path<String>,
    QueryParams(p): QueryParams<RawParams>,
) -> Result<Json<Value>, ApiError> {
    let paging = listing::Paging::from_params(&p, None)?;
    let r = listing::get_by_ref_or_id::<Rule>(&*s.store, "Rule", &key).await?;
    Ok(Json(paging.project(view(r))))
}

/// Reads a rule body as registration reads a rule file; computed fields given by the client
/// (`id`, `ref`, `uid`, `trigger.ref`) are ignored.
fn parse_body(mut body: Value) -> Result<Rule, ApiError> {
    if let Some(obj) = body.as_object_mut() {
        obj.remove("id");
        if let Some(Value::Object(t)) = obj.get_mut("trigger") {
            t.remove("ref");
        }
    }
    loader::rule_from_document(FsPath::new("rule"), body).map_err(|e| invalid("rule", &e))
}

/// 409 when another rule already has this ref.
async fn check_unique(s: &AppState, rule: &Rule) -> Result<(), ApiError> {
    if let Some(other) = repo::<Rule>(&*s.store).get_by_ref(&rule.rule_ref).await? {
        if other.id != rule.id {
            return Err(ApiError::duplicate("rule", &rule.rule_ref, &other.id));
        }
    }
    Ok(())
}

/// Validates `rule` against the store and writes it with its trigger, in one batch.
async fn save(s: &AppState, mut rule: Rule) -> Result<Rule, ApiError> {
    check_unique(s, &rule).await?;
    let writes = register::rule_writes(&*s.store, &mut rule, FsPath::new("rule"))
        .await
        .map_err(|e| pack_error("rule", e))?;
    s.store.apply(writes).await?;
    register::delete_unused_triggers(&*s.store)
        .await
        .map_err(|e| pack_error("rule", e))?;
    content_changed(s);
    Ok(rule)
}

/// `POST /rules`: 201 with the stored rule.
pub async fn create_rule(
    State(s): State<AppState>,
    Extension(AuthUser(caller)): Extension<AuthUser>,
    Json(body): Json<Value>,
) -> Result<Response, ApiError> {
    let mut rule = parse_body(body)?;
    if rule.context.is_none() {
        rule.context = Some(json!({"user": caller}));
    }
    let rule = save(&s, rule).await?;
    tracing::info!(rule = %rule.rule_ref, id = %rule.id, "rule created");
    Ok((StatusCode::CREATED, Json(view(rule))).into_response())
}

/// `PUT /rules/{ref_or_id}`: replaces the rule (keeping its id), as `st2 rule update`,
/// `enable` and `disable` send it.
pub async fn update_rule(
    State(s): State<AppState>,
    Path(key): Path<String>,
    Json(body): Json<Value>,
) -> Result<Json<Value>, ApiError> {
    let old = listing::get_by_ref_or_id::<Rule>(&*s.store, "Rule", &key).await?;
    let mut rule = parse_body(body)?;
    rule.id = old.id.clone();
    if rule.context.is_none() {
        rule.context = old.context.clone();
    }
    if rule.metadata_file.is_none() {
        rule.metadata_file = old.metadata_file.clone();
    }
    let rule = save(&s, rule).await?;
    tracing::info!(rule = %rule.rule_ref, id = %rule.id, enabled = rule.enabled, "rule updated");
    Ok(Json(view(rule)))
}

/// `DELETE /rules/{ref_or_id}`: 204.
pub async fn delete_rule(
    State(s): State<AppState>,
    Path(key): Path<String>,
) -> Result<StatusCode, ApiError> {
    let rule = listing::get_by_ref_or_id::<Rule>(&*s.store, "Rule", &key).await?;
    s.store
        .apply(vec![Write::Delete {
            collection: st2_core::store::Collection::Rules,
            id: rule.id.clone(),
        }])
        .await?;
    register::delete_unused_triggers(&*s.store)
        .await
        .map_err(|e| pack_error("rule", e))?;
    content_changed(&s);
    tracing::info!(rule = %rule.rule_ref, id = %rule.id, "rule deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /ruleenforcements`: newest first.
pub async fn list_enforcements(
    State(s): State<AppState>,
    QueryParams(p): QueryParams<RawParams>,
) -> Result<Response, ApiError> {
    let spec = ListSpec::<RuleEnforcement> {
        filters: &[
            ("trigger_instance", "trigger_instance_id"),
            ("execution", "execution_id"),
            ("status", "status"),
            ("id", "id"),
        ],
        sort: ("enforced_at", true),
        default_limit: Some(100),
        view: listing::to_json,
    };
    let rule = p.get("rule").cloned();
    let (gt, lt) = (
        p.get("enforced_at_gt").cloned(),
        p.get("enforced_at_lt").cloned(),
    );
    if rule.is_none() && gt.is_none() && lt.is_none() {
        return listing::list(&*s.store, &p, Query::all(), &spec).await;
    }
    list_matching(
        &*s.store,
        &p,
        Query::all(),
        &spec,
        move |e: &RuleEnforcement| {
            let rule_ok = rule.as_deref().is_none_or(|r| {
                e.rule.get("ref").and_then(Value::as_str) == Some(r)
                    || e.rule.get("id").and_then(Value::as_str) == Some(r)
            });
            rule_ok && within(&e.enforced_at, gt.as_deref(), lt.as_deref())
        },
    )
    .await
}

/// `GET /ruleenforcements/{id}`.
pub async fn get_enforcement(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let e = listing::get_by_id::<RuleEnforcement>(&*s.store, "RuleEnforcement", &id).await?;
    Ok(Json(listing::to_json(e)))
}
