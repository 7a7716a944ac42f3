//! st2-api: the HTTP face of the platform (StackStorm's `/api/v1`, `/auth/v1`, `/stream/v1`)
//! and the `st2d` server that runs the platform's roles.
//!
//! # Layout
//! - [`router`]: `router(state)`, so tests drive it with `oneshot` and no socket.
//! - [`auth`]: tokens, API keys, the auth middleware.
//! - [`resources`]: actions, runner types, executions (what `st2 run` needs).
//! - [`webhooks`]: webhook triggers.
//! - [`error`]: `{"faultstring"}` errors.
//! - [`server`]: `st2d` start-up: config, store, first-start admin, content registration, serve.

pub mod auth;
pub mod error;
pub mod resources;
pub mod router;
pub mod server;
pub mod webhooks;

pub use router::{router, service, AppState};
