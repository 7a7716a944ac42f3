//! st2-core: the domain model and engines of a StackStorm-compatible automation platform.
//!
//! # Layout
//! - [`auth`]: users, password hashing, first-start admin.
//! - [`config`]: layered st2.conf-style configuration.
//! - [`model`]: serde types with StackStorm's field names (packs, actions, rules, executions, ...).
//! - [`store`]: the `Store` trait, typed repositories, the embedded SQLite backend and the
//!   conformance suite every backend must pass.
//! - [`schema`]: JSON Schemas of every metadata file kind (from the repo's `schemas/`) and
//!   validation with precise errors.
//! - [`packs`]: reading pack directories, registering their content (`st2ctl reload`), installing
//!   and removing packs from git, pack indexes, virtualenvs.
//! - [`pyfmt`]: Python text forms of JSON values (type names, `repr(float)`, `repr(str)`,
//!   `str()` / `repr()`), shared by rules, templates and runners (pure).
//! - [`rules`]: criteria operators (pure).
//! - [`bus`]: the `Bus` trait (topic exchanges, work and broadcast queues, ack/nack, dead
//!   letters), StackStorm's exchange and queue names, the in-process backend and its
//!   conformance suite.
//! - [`template`]: StackStorm-compatible Jinja (filters, `st2kv` lookups, criteria patterns) and
//!   action parameter rendering (pure).
//! - [`datastore`]: key-value pairs (scopes, secrets encrypted with StackStorm's keyczar-compatible
//!   crypto, TTLs, `core.st2.key_value_pair.*` change events) and the template `st2kv` lookup.
//! - [`timers`]: IntervalTimer / DateTimer / CronTimer schedules (APScheduler semantics, pure) and
//!   the timer engine that fires them.
//! - [`runners`]: the action runners (local shell, Python with a StackStorm-compatible shim,
//!   HTTP, remote SSH, noop/announcement/inquirer) behind the `Runner` trait and registry.
//! - [`workflow`]: Orquesta workflows: spec, YAQL and Jinja expressions with Orquesta's functions,
//!   the pure state machine.
//! - [`sensors`]: built-in sensors (file tail, AMQP queue, MQTT v5) and their service.
//! - [`error`]: the crate's error type.

pub mod auth;
pub mod bus;
pub mod config;
pub mod datastore;
pub mod error;
pub mod model;
pub mod packs;
pub mod platform;
pub mod pyfmt;
pub mod rules;
pub mod runners;
pub mod schema;
pub mod sensors;
pub mod services;
pub mod store;
pub mod template;
pub mod timers;
pub mod workflow;

pub use error::{Error, Result};
