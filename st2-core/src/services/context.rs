//! What every service shares: store, bus, template engine, runners, datastore lookup, paths.

use std::sync::Arc;

use crate::bus::Bus;
use crate::config::CoordinationConfig;
use crate::datastore::Datastore;
use crate::packs::PackPaths;
use crate::runners::RunnerRegistry;
use crate::store::Store;
use crate::template::{Decrypter, KvLookup, TemplateEngine};
use tokio_util::sync::CancellationToken;

/// The user rule- and sensor-triggered executions run as (StackStorm's `system_user`).
pub const SYSTEM_USER: &str = "stanley";

/// Shared handles of one platform process.
#[derive(Clone)]
pub struct Ctx {
    /// The store.
    pub store: Arc<dyn Store>,
    /// The bus.
    pub bus: Arc<dyn Bus>,
    /// Template engine (filters registered once).
    pub engine: TemplateEngine,
    /// Runners by runner type name.
    pub runners: Arc<RunnerRegistry>,
    /// Datastore lookups for `st2kv.*` in templates.
    pub kv: Option<Arc<dyn KvLookup>>,
    /// Where packs, configs and virtualenvs are.
    pub paths: PackPaths,
    /// This process's identity, written as the lease owner of executions it runs.
    pub node_id: String,
    /// The API URL actions get as `ST2_ACTION_API_URL`.
    pub api_url: Option<String>,
    /// Decrypts datastore secrets for `| decrypt_kv`.
    pub decrypter: Option<Arc<dyn Decrypter>>,
    /// The datastore (key-value pairs), for actions' `action_service` and the API.
    pub datastore: Option<Arc<Datastore>>,
    /// Cancelled when the platform shuts down; long-running loops stop on it.
    pub shutdown: CancellationToken,
    /// Trigger instances stored but not yet handed to the rules engine (see
    /// [`super::deferred`]).
    pub deferred: Arc<super::deferred::Deferred>,
    /// Registration-time content, cached; call `catalog.invalidate()` after changing content.
    pub catalog: Arc<super::catalog::Catalog>,
    /// Settings and lock of pack install/uninstall and config saves (see [`super::pack_ops`]).
    pub pack_ops: Arc<super::pack_ops::PackOps>,
    /// Lease, heartbeat, watchdog and timer catch-up settings (`[coordination]`).
    pub coordination: CoordinationConfig,
    /// How many messages each pipeline consumer (rules engine, scheduler, notifier) handles at
    /// once (`[messaging] consumer_concurrency`, see [`crate::config::Config::consumer_concurrency`]).
    pub consumer_concurrency: usize,
}

impl Ctx {
    /// A context over `store` with an in-process bus, no runners and default settings.
    #[cfg(test)]
    pub(crate) fn for_tests(store: Arc<dyn Store>) -> Self {
        Self {
            store,
            bus: Arc::new(crate::bus::MemoryBus::new()),
            engine: TemplateEngine::new(),
            runners: Arc::new(RunnerRegistry::new()),
            kv: None,
            paths: PackPaths::under_data_dir(std::path::Path::new("unused"), None),
            node_id: "test".into(),
            api_url: None,
            decrypter: None,
            datastore: None,
            shutdown: CancellationToken::new(),
            deferred: Default::default(),
            catalog: Default::default(),
            pack_ops: Default::default(),
            coordination: Default::default(),
            consumer_concurrency: crate::config::MessagingConfig::DEFAULT_CONCURRENCY,
        }
    }

    /// [`Ctx::consumer_concurrency`] as a queue prefetch: at least 1, at most `u16::MAX`.
    pub fn consumer_prefetch(&self) -> u16 {
        u16::try_from(self.consumer_concurrency.max(1)).unwrap_or(u16::MAX)
    }
}
