//! Timers: StackStorm's built-in timer trigger types and the engine that fires them
//! (st2timersengine).
//!
//! - [`TimerSpec`] (`spec.rs`, `cron.rs`): a timer trigger's parameters as a schedule, with
//!   APScheduler's semantics (`core.st2.IntervalTimer`, `core.st2.DateTimer`,
//!   `core.st2.CronTimer`, whose `day_of_week` counts 0 = Monday). Pure.
//! - [`TimerSchedule`] (`schedule.rs`): the set of planned timers and what fires when. Pure.
//! - [`TimerEngine`] (`engine.rs`): a task sleeping until the next fire on a [`Clock`]
//!   ([`SystemClock`], or [`ManualClock`] in tests) and calling back with
//!   `(trigger, payload)`.
//!
//! Payloads are StackStorm's `{"executed_at": "<UTC, Python str() format>", "schedule": null}`.
//! This module neither reads the store nor publishes: the service that owns it learns timer
//! triggers (store at start, trigger create/update/delete events) and dispatches the fires.

mod clock;
pub mod cron;
mod engine;
mod schedule;
mod spec;

pub use clock::{Clock, ManualClock, SystemClock};
pub use cron::{CronFieldError, CronSpec};
pub use engine::{TimerEngine, TimerEngineConfig};
pub use schedule::{
    resume_after, trigger_key, Resume, TimerFire, TimerSchedule, DEFAULT_MISFIRE_GRACE,
};
pub use spec::{parse_date, DateSpec, IntervalSpec, TimerSpec};

use chrono::{DateTime, Timelike, Utc};
use serde_json::{json, Value};

use crate::model::Trigger;

/// `core.st2.IntervalTimer`.
pub const INTERVAL_TIMER: &str = "core.st2.IntervalTimer";
/// `core.st2.DateTimer`.
pub const DATE_TIMER: &str = "core.st2.DateTimer";
/// `core.st2.CronTimer`.
pub const CRON_TIMER: &str = "core.st2.CronTimer";
/// The three timer trigger types.
pub const TIMER_TRIGGER_TYPES: [&str; 3] = [INTERVAL_TIMER, DATE_TIMER, CRON_TIMER];

/// Whether `trigger_type` is one of the timer trigger types.
pub fn is_timer_type(trigger_type: &str) -> bool {
    TIMER_TRIGGER_TYPES.contains(&trigger_type)
}

/// What can go wrong with timers.
#[derive(Debug, thiserror::Error)]
pub enum TimerError {
    /// The trigger's type is not a timer type.
    #[error("{trigger_type:?} is not a timer trigger type (expected one of core.st2.IntervalTimer, core.st2.DateTimer, core.st2.CronTimer)")]
    NotATimer {
        /// The type given.
        trigger_type: String,
    },
    /// A required parameter is absent.
    #[error("{trigger_type}: missing required parameter {parameter:?}")]
    MissingParameter {
        /// The timer type.
        trigger_type: String,
        /// The parameter.
        parameter: String,
    },
    /// A parameter has an unusable value.
    #[error("{trigger_type}: invalid parameter {parameter:?}: {reason}")]
    InvalidParameter {
        /// The timer type.
        trigger_type: String,
        /// The parameter.
        parameter: String,
        /// Why.
        reason: String,
    },
    /// `run` was called on an engine that is already running.
    #[error("the timer engine is already running")]
    AlreadyRunning,
}

/// The trigger instance payload of a timer fire: `executed_at` in Python's `str(datetime)`
/// format (what StackStorm sends), `schedule` = the trigger's `time` parameter (normally null).
pub fn timer_payload(trigger: &Trigger, executed_at: DateTime<Utc>) -> Value {
    json!({
        "executed_at": format_executed_at(executed_at),
        "schedule": trigger.parameters.get("time").cloned().unwrap_or(Value::Null),
    })
}

/// Python's `str()` of an aware UTC datetime: `2024-05-01 10:00:00.123456+00:00`, the fraction
/// left out when it is zero.
pub fn format_executed_at(at: DateTime<Utc>) -> String {
    let micros = (at.nanosecond() / 1_000).min(999_999);
    if micros == 0 {
        format!("{}+00:00", at.format("%Y-%m-%d %H:%M:%S"))
    } else {
        format!("{}.{micros:06}+00:00", at.format("%Y-%m-%d %H:%M:%S"))
    }
}

/// The trace tag StackStorm gives timer trigger instances: `<type name>-<trigger name>`
/// (`st2.IntervalTimer-<uuid>`).
pub fn trace_tag(trigger: &Trigger) -> String {
    let type_name = trigger
        .trigger_type
        .strip_prefix("core.")
        .unwrap_or(&trigger.trigger_type);
    format!("{type_name}-{}", trigger.name)
}
