//! Sensor types (`sensors/*.yaml`).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{default_pack, default_true, document};
use crate::store::Collection;

/// A registered sensor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sensor {
    /// Store id.
    #[serde(default)]
    pub id: String,
    /// Python class name (also the sensor's name).
    pub class_name: String,
    /// Name; StackStorm uses the class name.
    #[serde(default)]
    pub name: String,
    /// Pack ref.
    #[serde(default = "default_pack")]
    pub pack: String,
    /// `pack.class_name`.
    #[serde(rename = "ref", default)]
    pub sensor_ref: String,
    /// `sensor_type:<pack>:<class_name>`.
    #[serde(default)]
    pub uid: String,
    /// Python file (relative to `sensors/`).
    #[serde(default)]
    pub entry_point: String,
    /// Absolute path of the sensor code (set by the registrar).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_uri: Option<String>,
    /// Description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Whether the sensor container runs it.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Poll interval in seconds (PollingSensor).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub poll_interval: Option<f64>,
    /// Refs of the trigger types it emits (the inline definitions are registered as trigger types).
    #[serde(default)]
    pub trigger_types: Vec<String>,
    /// Metadata file relative to the pack dir.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata_file: Option<String>,
    /// Unused extra fields kept for API echo.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra: Option<Value>,
}
document!(Sensor, Collection::Sensors, ref);
