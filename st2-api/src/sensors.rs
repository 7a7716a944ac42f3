//! Sensor types (`st2 sensor list/get/enable/disable`).
//!
//! | method and path | what |
//! |---|---|
//! | `GET /sensortypes` | list; filters `pack`, `name`, `enabled`, `trigger_type` |
//! | `GET /sensortypes/{ref_or_id}` | one |
//! | `PUT /sensortypes/{ref_or_id}` | changes `enabled` only (as StackStorm: the rest comes from the pack); the sensor container starts or stops the sensor within a second |

use axum::extract::{Path, Query as QueryParams, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::Value;

use st2_core::model::Sensor;
use st2_core::store::{repo, Query, Repo};

use crate::error::ApiError;
use crate::listing::{self, ListSpec, Paging, RawParams};
use crate::AppState;

/// The routes of this module.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/sensortypes", get(list_sensor_types))
        .route(
            "/sensortypes/{key}",
            get(get_sensor_type).put(update_sensor_type),
        )
}

/// `GET /sensortypes`.
pub async fn list_sensor_types(
    State(s): State<AppState>,
    QueryParams(p): QueryParams<RawParams>,
) -> Result<Response, ApiError> {
    let spec = ListSpec::<Sensor> {
        filters: &[
            ("pack", "pack"),
            ("name", "name"),
            ("enabled", "enabled"),
            ("trigger_type", "trigger_types"),
        ],
        sort: ("ref", false),
        default_limit: None,
        view: listing::to_json,
    };
    listing::list(&*s.store, &p, Query::all(), &spec).await
}

/// `GET /sensortypes/{ref_or_id}`.
pub async fn get_sensor_type(
    State(s): State<AppState>,
    Path(key): Path<String>,
    QueryParams(p): QueryParams<RawParams>,
) -> Result<Json<Value>, ApiError> {
    let paging = Paging::from_params(&p, None)?;
    let sensor = listing::get_by_ref_or_id::<Sensor>(&*s.store, "SensorType", &key).await?;
    Ok(Json(paging.project(listing::to_json(sensor))))
}

/// `PUT /sensortypes/{ref_or_id}`: only `enabled` is taken from the body.
pub async fn update_sensor_type(
    State(s): State<AppState>,
    Path(key): Path<String>,
    Json(body): Json<Value>,
) -> Result<Json<Value>, ApiError> {
    let mut sensor = listing::get_by_ref_or_id::<Sensor>(&*s.store, "SensorType", &key).await?;
    let enabled = match body.get("enabled") {
        Some(Value::Bool(b)) => *b,
        None => sensor.enabled,
        Some(other) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("'enabled' must be a boolean, got {other}"),
            ))
        }
    };
    sensor.enabled = enabled;
    let w = Repo::<Sensor>::to_write(&mut sensor)?;
    s.store.apply(vec![w]).await?;
    if let Some(ctx) = &s.services {
        ctx.catalog.invalidate();
    }
    tracing::info!(sensor = %sensor.sensor_ref, enabled, "sensor updated");
    let saved = repo::<Sensor>(&*s.store)
        .get(&sensor.id)
        .await?
        .unwrap_or(sensor);
    Ok(Json(listing::to_json(saved)))
}
