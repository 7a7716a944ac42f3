//! Built-in sensors: sensors written in Rust that need no Python. A registered sensor is
//! built-in when its `entry_point` is `builtin:<name>`; the Python sensor container skips those
//! and [`service::BuiltinSensors`] runs them.
//!
//! A built-in sensor follows the triggers of its trigger types, as StackStorm's
//! `add_trigger`/`update_trigger`/`remove_trigger` do: every trigger (a trigger type with the
//! parameters a rule gave it) is one *watch*, started when the trigger appears and stopped
//! when it goes. A watch dispatches to its trigger's ref with `services::dispatch`.
//!
//! # Layout
//! - [`file_watch`]: `builtin:file_watch`, `linux.file_watch.line` (tail files).
//! - [`amqp`]: `builtin:amqp_queue`, `rabbitmq.new_message` (consume a queue).
//! - [`mqtt`]: `builtin:mqtt`, `mqtt.message` (MQTT v5 subscription).
//! - [`service`]: the `sensorcontainer` service that starts and stops watches.

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;

use crate::model::Trigger;
use crate::services::{Ctx, ServiceError};

pub mod amqp;
pub mod file_watch;
pub mod mqtt;
pub mod service;

/// The `entry_point` prefix that marks a built-in sensor.
pub const BUILTIN_PREFIX: &str = "builtin:";

/// Names of the built-in sensors (`builtin:<name>`).
pub const BUILTIN_NAMES: &[&str] = &[file_watch::NAME, amqp::NAME, mqtt::NAME];

/// The built-in name of an entry point (`builtin:file_watch` → `file_watch`), if it is one.
pub fn builtin_name(entry_point: &str) -> Option<&str> {
    entry_point.strip_prefix(BUILTIN_PREFIX)
}

/// What a watch can fail with. A failed watch is restarted with backoff.
#[derive(Debug, thiserror::Error)]
pub enum SensorError {
    /// The trigger's parameters do not say what to watch.
    #[error("trigger \"{trigger}\": {reason}")]
    Parameters {
        /// Trigger ref.
        trigger: String,
        /// What is wrong.
        reason: String,
    },
    /// Reading a watched file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// The broker connection or subscription failed.
    #[error("{broker}: {reason}")]
    Broker {
        /// Broker URL without credentials.
        broker: String,
        /// What failed.
        reason: String,
    },
    /// Dispatching a trigger instance failed.
    #[error(transparent)]
    Dispatch(#[from] ServiceError),
}

/// A sensor implemented in Rust.
#[async_trait]
pub trait BuiltinSensor: Send + Sync + 'static {
    /// The name after `builtin:` in a sensor's `entry_point`.
    fn name(&self) -> &'static str;

    /// Watches what `trigger`'s parameters name and dispatches to `trigger.trigger_ref` until
    /// `stop` is cancelled (then returns `Ok`). An error ends the watch; the service restarts
    /// it after a backoff.
    async fn watch(
        &self,
        ctx: &Ctx,
        trigger: &Trigger,
        stop: CancellationToken,
    ) -> Result<(), SensorError>;
}

/// Every built-in sensor, by name.
pub fn standard() -> Vec<std::sync::Arc<dyn BuiltinSensor>> {
    vec![
        std::sync::Arc::new(file_watch::FileWatch::default()),
        std::sync::Arc::new(amqp::AmqpQueue),
        std::sync::Arc::new(mqtt::Mqtt),
    ]
}

/// A required string parameter of a trigger.
pub(crate) fn str_param<'a>(trigger: &'a Trigger, name: &str) -> Result<&'a str, SensorError> {
    trigger
        .parameters
        .get(name)
        .and_then(serde_json::Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| SensorError::Parameters {
            trigger: trigger.trigger_ref.clone(),
            reason: format!("parameter \"{name}\" (a non-empty string) is required"),
        })
}

/// A URL with its password hidden, for messages.
pub(crate) fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}://***@{}", &url[..s], &url[at + 1..]),
        _ => url.to_string(),
    }
}
