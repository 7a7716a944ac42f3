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
//! - [`rules`]: criteria operators (pure).
//! - [`error`]: the crate's error type.

pub mod auth;
pub mod config;
pub mod error;
pub mod model;
pub mod packs;
pub mod rules;
pub mod schema;
pub mod store;

pub use error::{Error, Result};
