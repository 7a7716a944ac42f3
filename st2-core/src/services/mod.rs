//! The thin services of the event pipeline: each one consumes a bus queue, changes state in the
//! store (compare-and-set on status) and publishes what changed. All logic that can be pure
//! lives elsewhere (rules matching, templates, runners); these files are the only ones that
//! touch both bus and store.
//!
//! - [`dispatch`]: trigger instances in (webhooks, timers, sensors, notifier) → stored → bus.
//! - [`deferred`]: trigger instances whose publish would have had to wait (cycle breaker).
//! - [`executions`]: requesting, cancelling and finishing executions (status transitions).
//! - [`rules_engine`]: trigger instances → matching rules → executions + enforcements.
//! - [`scheduler`]: `requested` → policies → `scheduled` / `delayed`.
//! - [`concurrency`]: concurrency policy slots claimed in the store.
//! - [`worker`]: `scheduled` → runner → final status, live output.
//! - [`watchdog`]: runner heartbeats; executions of dead runners → `abandoned`.
//! - [`notifier`]: completed executions → `core.st2.generic.actiontrigger` / notify triggers.
//! - [`timers`]: timer triggers → trigger instances.
//! - [`topology`]: the roles' work queues, declared by every process at start.
//! - [`gc`]: TTL purges.
//! - [`kv_access`]: the datastore as Python actions see it.
//! - [`pack_ops`]: pack install/uninstall (stand-in for the `packs.*` workflows), config saves.
//! - [`workflows`]: Orquesta workflows run as executions with child executions.
//! - [`preprocess`]: per-trigger-type preprocessing steps, applied at dispatch.
//! - [`context`]: what every service shares.
//! - [`catalog`]: registration-time content (actions, configs, policies, triggers), cached.

pub mod action_chain;
pub mod catalog;
pub mod concurrency;
pub mod context;
pub mod deferred;
pub mod dispatch;
mod error;
pub mod executions;
pub mod gc;
pub mod kv_access;
pub mod lease;
pub mod notifier;
pub mod pack_ops;
pub mod preprocess;
pub mod rules_engine;
pub mod scheduler;
pub mod timers;
pub mod topology;
pub mod watchdog;
pub mod worker;
pub mod workflows;

pub use context::Ctx;
pub use error::ServiceError;

/// StackStorm's timestamp format: ISO-8601 UTC with microseconds and `Z`.
pub fn now_iso() -> String {
    chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string()
}
