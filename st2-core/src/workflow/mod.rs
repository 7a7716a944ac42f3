//! Orquesta-compatible workflows: the workflow spec, the expression dialects (Jinja `{{ }}` and
//! YAQL `<% %>`) with Orquesta's functions, and the pure state machine that turns events into
//! commands. Pure: no store, no bus (the workflow service in `services` does the I/O).
//!
//! - [`yaql`]: a YAQL evaluator over JSON values (the language as Orquesta workflows use it).
//! - [`spec`]: the workflow definition (`version: 1.0`), loaded and checked.
//! - [`expr`]: one expression interface over both dialects, with Orquesta's functions.
//! - [`machine`]: the state machine, `apply(event) -> Vec<Command>`.

pub mod expr;
pub mod machine;
pub mod spec;
pub mod yaql;
