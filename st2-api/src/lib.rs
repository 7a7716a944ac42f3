//! st2-api: the HTTP face of the platform (StackStorm's `/api/v1`, `/auth/v1`, `/stream/v1`)
//! and the `st2d` server that runs the platform's roles.
//!
//! # Layout
//! - [`router`]: `router(state)`, so tests drive it with `oneshot` and no socket.
//! - [`listing`]: StackStorm's list/get conventions (paging, `X-Total-Count`, include/exclude
//!   attributes, sorting, filters, ref-or-id lookups).
//! - [`auth`]: tokens, API keys, the auth middleware.
//! - Resources, one module each: [`actions`] (and runner types), [`executions`], [`rules`] (and
//!   enforcements), [`triggers`] (types, triggers, instances), [`traces`], [`policies`],
//!   [`keys`], [`apikeys`] (and `/user`), [`packs`] (and configs), [`inquiries`], [`webhooks`].
//! - [`stream`]: the SSE event stream.
//! - [`openapi`]: the OpenAPI document of the whole API (`/api/v1/openapi.json`).
//! - [`error`]: `{"faultstring"}` errors.
//! - [`server`]: `st2d` start-up: config, store, first-start admin, content registration, serve.

pub mod actions;
pub mod apikeys;
pub mod auth;
pub mod error;
pub mod executions;
pub mod inquiries;
pub mod keys;
pub mod listing;
pub mod memory;
pub mod openapi;
pub mod packs;
pub mod policies;
pub mod router;
pub mod rules;
pub mod sensors;
pub mod server;
pub mod stream;
pub mod traces;
pub mod triggers;
pub mod webhooks;

pub use router::{router, service, AppState};
