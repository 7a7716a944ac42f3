//! Trigger types, triggers and trigger instances.
//!
//! | method and path | what |
//! |---|---|
//! | `GET /triggertypes` | list; filters `pack`, `name` |
//! | `POST /triggertypes` | 201; validated as `triggers/*.yaml` is; parameterless types get their shadow trigger |
//! | `GET /triggertypes/{ref_or_id}` | one |
//! | `PUT /triggertypes/{ref_or_id}` | replace (not for `core` types) |
//! | `DELETE /triggertypes/{ref_or_id}` | 204 (not for `core` types, nor while rules use it) |
//! | `GET /triggers` | list; filter `type` |
//! | `GET /triggers/{ref_or_id}` | one |
//! | `GET /triggerinstances` | list, newest first; filters `trigger`, `status`, `timestamp_gt`/`timestamp_lt` (on `occurrence_time`) |
//! | `GET /triggerinstances/{id}` | one |
//! | `POST /triggerinstances/{id}/re_emit` | dispatches the payload again as a new instance |

use std::path::Path as FsPath;

use axum::extract::{Path, Query as QueryParams, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use st2_core::model::{Rule, Trigger, TriggerInstance, TriggerType};
use st2_core::packs::{loader, register};
use st2_core::services::dispatch;
use st2_core::store::{repo, Collection, Query, Repo, Write};

use crate::error::ApiError;
use crate::executions::services;
use crate::listing::{self, ListSpec, Paging, RawParams};
use crate::listing::{list_matching, within};
use crate::rules::invalid;
use crate::AppState;

/// The pack whose trigger types are built in and cannot be changed through the API.
const SYSTEM_TRIGGER_PACK: &str = "core";

/// The routes of this module.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/triggertypes",
            get(list_trigger_types).post(create_trigger_type),
        )
        .route(
            "/triggertypes/{key}",
            get(get_trigger_type)
                .put(update_trigger_type)
                .delete(delete_trigger_type),
        )
        .route("/triggers", get(list_triggers))
        .route("/triggers/{key}", get(get_trigger))
        .route("/triggerinstances", get(list_instances))
        .route("/triggerinstances/{id}", get(get_instance))
        .route("/triggerinstances/{id}/re_emit", post(re_emit))
}

/// `GET /triggertypes`.
pub async fn list_trigger_types(
    State(s): State<AppState>,
    QueryParams(p): QueryParams<RawParams>,
) -> Result<Response, ApiError> {
    let spec = ListSpec::<TriggerType> {
        filters: &[("pack", "pack"), ("name", "name")],
        sort: ("ref", false),
        default_limit: None,
        view: listing::to_json,
    };
    listing::list(&*s.store, &p, Query::all(), &spec).await
}

/// `GET /triggertypes/{ref_or_id}`.
pub async fn get_trigger_type(
    State(s): State<AppState>,
    Path(key): Path<String>,
    QueryParams(p): QueryParams<RawParams>,
) -> Result<Json<Value>, ApiError> {
    let paging = Paging::from_params(&p, None)?;
    let t = listing::get_by_ref_or_id::<TriggerType>(&*s.store, "TriggerType", &key).await?;
    Ok(Json(paging.project(listing::to_json(t))))
}

fn parse_trigger_type(mut body: Value) -> Result<TriggerType, ApiError> {
    if let Some(obj) = body.as_object_mut() {
        obj.remove("id");
    }
    loader::trigger_type_from_document(FsPath::new("trigger type"), body)
        .map_err(|e| invalid("trigger type", &e))
}

fn refuse_system(t: &TriggerType) -> Result<(), ApiError> {
    if t.pack == SYSTEM_TRIGGER_PACK {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!(
                "Trigger type \"{}\" is a system trigger type and cannot be changed",
                t.trigger_type_ref
            ),
        ));
    }
    Ok(())
}

/// Writes a trigger type with its shadow trigger (parameterless types) in one batch; removes
/// the shadow trigger of a type that now takes parameters.
async fn save_trigger_type(s: &AppState, mut t: TriggerType) -> Result<TriggerType, ApiError> {
    if let Some(other) = repo::<TriggerType>(&*s.store)
        .get_by_ref(&t.trigger_type_ref)
        .await?
    {
        if other.id != t.id {
            return Err(ApiError::duplicate(
                "trigger type",
                &t.trigger_type_ref,
                &other.id,
            ));
        }
    }
    let mut writes = vec![Repo::<TriggerType>::to_write(&mut t)?];
    let old_shadow = repo::<Trigger>(&*s.store)
        .get_by_ref(&t.trigger_type_ref)
        .await?;
    match (register::shadow_trigger(&t), old_shadow) {
        (Some(mut shadow), old) => {
            if let Some(old) = old {
                shadow.id = old.id;
            }
            writes.push(Repo::<Trigger>::to_write(&mut shadow)?);
        }
        (None, Some(old)) => writes.push(Write::Delete {
            collection: Collection::Triggers,
            id: old.id,
        }),
        (None, None) => {}
    }
    s.store.apply(writes).await?;
    if let Some(ctx) = &s.services {
        ctx.catalog.invalidate();
    }
    Ok(t)
}

/// `POST /triggertypes`: 201.
pub async fn create_trigger_type(
    State(s): State<AppState>,
    Json(body): Json<Value>,
) -> Result<Response, ApiError> {
    let t = parse_trigger_type(body)?;
    refuse_system(&t)?;
    let t = save_trigger_type(&s, t).await?;
    tracing::info!(trigger_type = %t.trigger_type_ref, "trigger type created");
    Ok((StatusCode::CREATED, Json(listing::to_json(t))).into_response())
}

/// `PUT /triggertypes/{ref_or_id}`.
pub async fn update_trigger_type(
    State(s): State<AppState>,
    Path(key): Path<String>,
    Json(body): Json<Value>,
) -> Result<Json<Value>, ApiError> {
    let old = listing::get_by_ref_or_id::<TriggerType>(&*s.store, "TriggerType", &key).await?;
    refuse_system(&old)?;
    let mut t = parse_trigger_type(body)?;
    refuse_system(&t)?;
    t.id = old.id;
    let t = save_trigger_type(&s, t).await?;
    Ok(Json(listing::to_json(t)))
}

/// `DELETE /triggertypes/{ref_or_id}`: 204; 409 while rules use the type.
pub async fn delete_trigger_type(
    State(s): State<AppState>,
    Path(key): Path<String>,
) -> Result<StatusCode, ApiError> {
    let t = listing::get_by_ref_or_id::<TriggerType>(&*s.store, "TriggerType", &key).await?;
    refuse_system(&t)?;
    let users = repo::<Rule>(&*s.store)
        .count(&Query::all().eq("trigger.type", t.trigger_type_ref.as_str()))
        .await?;
    if users > 0 {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!(
                "Trigger type \"{}\" is used by {users} rule(s); delete them first",
                t.trigger_type_ref
            ),
        ));
    }
    let mut writes = vec![Write::Delete {
        collection: Collection::TriggerTypes,
        id: t.id.clone(),
    }];
    for trigger in repo::<Trigger>(&*s.store)
        .find(&Query::all().eq("type", t.trigger_type_ref.as_str()))
        .await?
    {
        writes.push(Write::Delete {
            collection: Collection::Triggers,
            id: trigger.id,
        });
    }
    s.store.apply(writes).await?;
    if let Some(ctx) = &s.services {
        ctx.catalog.invalidate();
    }
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /triggers` (`?type=` filters, as `st2 trigger getspecs` uses it).
pub async fn list_triggers(
    State(s): State<AppState>,
    QueryParams(p): QueryParams<RawParams>,
) -> Result<Response, ApiError> {
    let spec = ListSpec::<Trigger> {
        filters: &[("type", "type"), ("pack", "pack"), ("name", "name")],
        sort: ("ref", false),
        default_limit: None,
        view: listing::to_json,
    };
    listing::list(&*s.store, &p, Query::all(), &spec).await
}

/// `GET /triggers/{ref_or_id}`.
pub async fn get_trigger(
    State(s): State<AppState>,
    Path(key): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let t = listing::get_by_ref_or_id::<Trigger>(&*s.store, "Trigger", &key).await?;
    Ok(Json(listing::to_json(t)))
}

/// `GET /triggerinstances`: newest first.
pub async fn list_instances(
    State(s): State<AppState>,
    QueryParams(p): QueryParams<RawParams>,
) -> Result<Response, ApiError> {
    let spec = ListSpec::<TriggerInstance> {
        filters: &[("trigger", "trigger"), ("status", "status"), ("id", "id")],
        sort: ("occurrence_time", true),
        default_limit: Some(100),
        view: listing::to_json,
    };
    let (gt, lt) = (
        p.get("timestamp_gt").cloned(),
        p.get("timestamp_lt").cloned(),
    );
    if gt.is_none() && lt.is_none() {
        return listing::list(&*s.store, &p, Query::all(), &spec).await;
    }
    list_matching(
        &*s.store,
        &p,
        Query::all(),
        &spec,
        move |ti: &TriggerInstance| within(&ti.occurrence_time, gt.as_deref(), lt.as_deref()),
    )
    .await
}

/// `GET /triggerinstances/{id}`.
pub async fn get_instance(
    State(s): State<AppState>,
    Path(id): Path<String>,
    QueryParams(p): QueryParams<RawParams>,
) -> Result<Json<Value>, ApiError> {
    let paging = Paging::from_params(&p, None)?;
    let ti = listing::get_by_id::<TriggerInstance>(&*s.store, "TriggerInstance", &id).await?;
    Ok(Json(paging.project(listing::to_json(ti))))
}

/// `POST /triggerinstances/{id}/re_emit`: dispatches the instance's payload again (a new
/// trigger instance), marked with `__context: {original_id, source}` as StackStorm marks it
/// unless the trigger type's payload schema forbids extra properties.
pub async fn re_emit(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let ctx = services(&s)?;
    let ti = listing::get_by_id::<TriggerInstance>(&*s.store, "TriggerInstance", &id).await?;
    let (_, trigger_type) = dispatch::resolve_trigger(ctx, &ti.trigger).await?;
    let closed = trigger_type.is_some_and(|tt| {
        tt.payload_schema.get("additionalProperties") == Some(&Value::Bool(false))
    });
    let mut payload = ti.payload.clone();
    if !closed {
        if let Some(obj) = payload.as_object_mut() {
            obj.insert(
                "__context".into(),
                json!({"original_id": id, "source": "st2api"}),
            );
        }
    }
    let new = dispatch::dispatch(ctx, &ti.trigger, payload.clone(), None).await?;
    tracing::info!(original = %id, new = %new.id, trigger = %ti.trigger, "trigger instance re-emitted");
    Ok(Json(json!({
        "message": format!("Trigger instance {id} succesfully re-sent."),
        "payload": payload,
    })))
}
