//! Python sensors: each enabled pack sensor whose entry point is a Python file runs, unchanged,
//! as a child process of the `sensorcontainer` role, under the wrapper and `st2reactor` shim
//! of `st2-core/python/` (`Sensor` / `PollingSensor`, `sensor_service`), with the pack's
//! virtualenv when it has one.
//!
//! [`crate::sensors::container`] decides which sensors run here and starts, restarts and stops
//! their processes.
//!
//! # Layout
//! - [`process`]: one supervised sensor process (spawn, respawn with backoff, stop,
//!   `core.st2.sensor.process_spawn` / `process_exit` triggers, output to the log).
//! - [`channel`]: the control channel to the wrapper (init, trigger changes, dispatches and
//!   datastore calls), protocol described in `st2-core/python/st2_sensor_wrapper.py`.

pub mod channel;
pub mod process;

/// Whether `entry_point` names a Python sensor (a `.py` file).
pub fn is_python(entry_point: &str) -> bool {
    entry_point.ends_with(".py")
}
