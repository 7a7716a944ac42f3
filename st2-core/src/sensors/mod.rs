//! Sensors: what watches the outside world and dispatches trigger instances.
//!
//! - [`builtin`]: sensors implemented in Rust, selected by a sensor's `entry_point:
//!   builtin:<name>` (file tail, AMQP queue, MQTT v5), run by the `sensorcontainer` role.
//! - [`python`]: pack sensors written in Python, each run as a supervised child process.
//! - [`claims`]: which container runs which sensor when there are several.

pub mod builtin;
pub mod claims;
pub mod python;
