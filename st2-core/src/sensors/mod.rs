//! Sensors: what watches the outside world and dispatches trigger instances.
//!
//! - [`builtin`]: sensors implemented in Rust, selected by a sensor's `entry_point:
//!   builtin:<name>` (file tail, AMQP queue, MQTT v5), run by the `sensorcontainer` role.

pub mod builtin;
