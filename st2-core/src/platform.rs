//! One platform process: opens the store and bus its configuration selects, registers content,
//! re-claims work left by a previous run, and starts the roles asked for.

use std::sync::Arc;

use crate::bus::{AmqpBus, Bus, MemoryBus};
use tokio_util::sync::CancellationToken;

use crate::config::{Config, GarbageCollectorConfig};
use crate::datastore::crypto::SymmetricKey;
use crate::datastore::{Datastore, KvEvent};
use crate::packs::{ContentTypes, RegisterOptions, Registrar};
use crate::runners::{RunnerRegistry, RunnerSettings};
use crate::services::dispatch;
use crate::services::gc::GarbageCollector;
use crate::services::lease::{Lease, Singleton};
use crate::services::notifier::Notifier;
use crate::services::rules_engine::RulesEngine;
use crate::services::scheduler::Scheduler;
use crate::services::timers::TimersService;
use crate::services::watchdog::Watchdog;
use crate::services::worker::{self, Worker};
use crate::services::{Ctx, ServiceError};
use crate::template::TemplateEngine;

/// The roles a process can run.
pub const ROLES: &[&str] = &[
    "api",
    "rulesengine",
    "scheduler",
    "actionrunner",
    "workflowengine",
    "sensorcontainer",
    "timersengine",
    "notifier",
    "garbagecollector",
];

/// A running platform: its shared context and the tasks of its roles.
pub struct Platform {
    /// Shared handles.
    pub ctx: Ctx,
    /// The rules engine, when that role runs (API rule changes call its `reload`).
    pub rules_engine: Option<Arc<RulesEngine>>,
    /// The action runner's task: drained first at shutdown.
    worker: Option<tokio::task::JoinHandle<()>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// Whether `role` is selected by `roles` (`all` selects every role).
pub fn has_role(roles: &[String], role: &str) -> bool {
    roles.iter().any(|r| r == "all" || r == role)
}

impl Platform {
    /// Starts the platform: store, bus, content registration (bundled and installed packs;
    /// broken packs are skipped with a warning), re-claim, then the selected roles.
    pub async fn start(cfg: &Config, roles: &[String]) -> Result<Self, crate::Error> {
        let store = cfg.open_store().await?;
        let bus: Arc<dyn Bus> = match cfg.messaging.url.as_deref() {
            None => Arc::new(MemoryBus::new()),
            Some(url) if url.starts_with("amqp://") || url.starts_with("amqps://") => {
                Arc::new(AmqpBus::connect(url).await.map_err(ServiceError::from)?)
            }
            Some(url) => {
                return Err(crate::Error::Config(crate::config::ConfigError::Value {
                    section: "messaging".into(),
                    key: "url".into(),
                    reason: format!(
                        "{:?} is not an amqp:// URL (leave it unset for the in-process bus)",
                        url.split('@').next_back().unwrap_or_default()
                    ),
                }));
            }
        };
        bus.declare_st2_exchanges()
            .await
            .map_err(ServiceError::from)?;
        // Every role's queue, whatever this process runs: a message published before its
        // consumer first starts waits for it.
        crate::services::topology::declare_work_queues(&*bus).await?;
        let registrar = Registrar::new(
            store.clone(),
            cfg.pack_paths(),
            RegisterOptions {
                types: ContentTypes::ALL,
                fail_on_failure: false,
                setup_virtualenvs: false,
                python: cfg.actionrunner.python_binary.clone(),
            },
        );
        let report = registrar.register_all().await?;
        for f in &report.failures {
            tracing::warn!(failure = %f, "pack skipped at start");
        }
        let key = load_or_create_key(&cfg.datastore_key_file())?;
        // Datastore changes become `core.st2.key_value_pair.*` trigger instances.
        let (events_tx, mut events_rx) = tokio::sync::mpsc::channel::<KvEvent>(1024);
        let datastore = Datastore::new(store.clone())
            .with_key(key.clone())
            .with_events(move |ev| {
                if events_tx.try_send(ev).is_err() {
                    tracing::warn!("datastore event dropped: dispatcher is behind");
                }
            });
        let lookup = datastore.lookup().await?;
        let ctx = Ctx {
            store,
            bus,
            engine: TemplateEngine::new(),
            runners: Arc::new(RunnerRegistry::standard(RunnerSettings::from_config(cfg))),
            kv: Some(Arc::new(lookup)),
            paths: cfg.pack_paths(),
            node_id: node_id(),
            api_url: Some(format!("http://{}/api/v1", cfg.api.bind)),
            decrypter: Some(Arc::new(key)),
            datastore: Some(Arc::new(datastore)),
            shutdown: CancellationToken::new(),
            deferred: Default::default(),
            catalog: Default::default(),
            pack_ops: Arc::new(crate::services::pack_ops::PackOps::new(
                cfg.content.index_url.clone(),
                Some(cfg.actionrunner.python_binary.clone()),
            )),
            coordination: cfg.coordination.clone(),
            consumer_concurrency: cfg.consumer_concurrency(),
        };
        let events_ctx = ctx.clone();
        tokio::spawn(async move {
            while let Some(ev) = events_rx.recv().await {
                if let Err(e) =
                    dispatch::dispatch(&events_ctx, ev.trigger_ref(), ev.payload(), None).await
                {
                    tracing::warn!(error = %e, "datastore event dispatch failed");
                }
            }
        });
        Self::start_roles(ctx, roles, &cfg.garbagecollector).await
    }

    /// Starts the selected roles over an existing context (tests build their own context).
    pub async fn start_roles(
        ctx: Ctx,
        roles: &[String],
        gc: &GarbageCollectorConfig,
    ) -> Result<Self, crate::Error> {
        let mut tasks = vec![tokio::spawn(crate::services::deferred::Deferred::run(
            ctx.clone(),
        ))];
        let mut rules_engine = None;
        let mut worker_task = None;
        if has_role(roles, "rulesengine") {
            let re = RulesEngine::new(ctx.clone()).await?;
            rules_engine = Some(Arc::clone(&re));
            tasks.push(re.start().await?);
        }
        if has_role(roles, "scheduler") {
            tasks.push(Scheduler::new(ctx.clone()).start().await?);
            // Every scheduler also watches for executions of dead runners (see `watchdog`).
            tasks.push(Watchdog::new(ctx.clone()).start());
        }
        if has_role(roles, "actionrunner") {
            worker_task = Some(
                Worker::new(ctx.clone(), worker::DEFAULT_CONCURRENCY)
                    .start()
                    .await?,
            );
        }
        if has_role(roles, "workflowengine") {
            tasks.push(
                crate::services::workflows::WorkflowEngine::new(ctx.clone())
                    .start()
                    .await?,
            );
        }
        if has_role(roles, "notifier") {
            tasks.push(Notifier::new(ctx.clone()).start().await?);
        }
        // Singleton roles: one active process per store, the others stand by (see `lease`).
        if has_role(roles, "timersengine") {
            tasks.push(singleton(&ctx, "timersengine", |ctx| async move {
                match TimersService::new(ctx).start().await {
                    Ok(task) => {
                        let _ = task.await;
                    }
                    Err(e) => tracing::error!(error = %e, "timers engine failed to start"),
                }
            }));
        }
        if has_role(roles, "sensorcontainer") {
            tasks.push(crate::sensors::builtin::service::BuiltinSensors::new(ctx.clone()).start());
            tasks.push(crate::sensors::container::SensorContainer::new(ctx.clone()).start());
        }
        if has_role(roles, "garbagecollector") {
            let gc = gc.clone();
            tasks.push(singleton(&ctx, "garbagecollector", move |ctx| {
                let task = GarbageCollector::new(ctx, gc.clone()).start();
                async move {
                    let _ = task.await;
                }
            }));
        }
        // Every queue is declared by now, so re-published work finds its consumers.
        if has_role(roles, "all") {
            match worker::reclaim_on_start(&ctx).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(count = n, "re-claimed work left by a previous run"),
                Err(e) => tracing::warn!(error = %e, "re-claim failed"),
            }
            match crate::services::workflows::recover(&ctx).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(count = n, "workflows continued after a restart"),
                Err(e) => tracing::warn!(error = %e, "workflow recovery failed"),
            }
        }
        Ok(Self {
            ctx,
            rules_engine,
            worker: worker_task,
            tasks,
        })
    }

    /// Stops the roles: the action runner stops taking work and drains (running executions get
    /// a grace period, then are canceled), then the bus closes so every other consumer ends.
    pub async fn shutdown(self) {
        self.ctx.shutdown.cancel();
        if let Some(w) = self.worker {
            // The drain is bounded by its grace period plus the runners' cancel; past that,
            // close the bus anyway so that nothing waits on a publish forever.
            let bound = worker::DRAIN_GRACE * 2;
            if tokio::time::timeout(bound, w).await.is_err() {
                tracing::warn!("shutdown: the action runner did not drain in time");
            }
        }
        let _ = self.ctx.bus.close().await;
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

/// Runs a singleton role under the store lease `name`: `run` gets a context whose `shutdown`
/// fires when the lease is lost or the process stops.
fn singleton<F, Fut>(ctx: &Ctx, name: &str, run: F) -> tokio::task::JoinHandle<()>
where
    F: Fn(Ctx) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let lease = Lease::new(
        ctx.store.clone(),
        name,
        ctx.node_id.clone(),
        ctx.coordination.lease_ttl,
    );
    let base = ctx.clone();
    tokio::spawn(
        Singleton::new(lease).run(ctx.shutdown.clone(), move |stop| {
            let mut c = base.clone();
            c.shutdown = stop;
            run(c)
        }),
    )
}

/// A process id unique across hosts and restarts: host name, pid and a random suffix.
fn node_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "st2d".into());
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    format!("{host}-{}-{}", std::process::id(), &suffix[..6])
}

/// Reads the datastore key, generating it (mode 0600) on first start.
fn load_or_create_key(path: &std::path::Path) -> Result<SymmetricKey, crate::Error> {
    let bad = |reason: String| {
        crate::Error::Config(crate::config::ConfigError::Value {
            section: "keyvalue".into(),
            key: "encryption_key_path".into(),
            reason,
        })
    };
    if path.is_file() {
        return SymmetricKey::read_file(path).map_err(|e| bad(e.to_string()));
    }
    let key = SymmetricKey::generate();
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| bad(format!("cannot create {}: {e}", dir.display())))?;
    }
    crate::auth::write_secret_file(path, &key.to_json())
        .map_err(|e| bad(format!("cannot write {}: {e}", path.display())))?;
    tracing::info!(path = %path.display(), "generated the datastore encryption key");
    Ok(key)
}
