//! The built-in sensor service of the `sensorcontainer` role: every [`RELOAD_INTERVAL`] it
//! reads the enabled sensors whose entry point is `builtin:<name>` and the triggers of their
//! trigger types, starts a watch for each new trigger, restarts the watch of a trigger whose
//! parameters changed and stops the watch of a trigger (or sensor) that is gone. A watch that
//! fails is restarted after a backoff (doubling from [`BACKOFF_MIN`] to [`BACKOFF_MAX`]).
//!
//! Exactly once across containers: a sensor's watches run only in the container that holds
//! the sensor's claim, by default a lease in the store ([`LeaseClaims`]); a sensor whose lease
//! is lost has its watches stopped at the next reload.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{builtin_name, BuiltinSensor};
use crate::model::{Sensor, Trigger};
use crate::services::lease::Lease;
use crate::services::{Ctx, ServiceError};
use crate::store::{repo, Query};

/// How often sensors and triggers are re-read.
pub const RELOAD_INTERVAL: Duration = Duration::from_secs(1);
/// First wait before a failed watch is restarted.
pub const BACKOFF_MIN: Duration = Duration::from_millis(500);
/// Longest wait before a failed watch is restarted.
pub const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// Which sensors this container may run ([`LeaseClaims`] by default; [`ClaimAll`] for a
/// container known to be alone).
#[async_trait::async_trait]
pub trait Claims: Send + Sync {
    /// Takes or renews the claim on `sensor_ref`; false when another container holds it.
    async fn hold(&self, sensor_ref: &str) -> bool;
    /// Gives up the claim (the sensor was removed or the container stops).
    async fn release(&self, sensor_ref: &str);
}

/// Claims every sensor: a single sensor container.
#[derive(Debug, Default)]
pub struct ClaimAll;

#[async_trait::async_trait]
impl Claims for ClaimAll {
    async fn hold(&self, _sensor_ref: &str) -> bool {
        true
    }
    async fn release(&self, _sensor_ref: &str) {}
}

/// Claims sensors with a lease per sensor (`sensor:<ref>`) in the store, so that of several
/// sensor containers exactly one runs each sensor; a container that dies loses its leases
/// after their TTL and another one takes its sensors over. Renewed on every reload
/// ([`RELOAD_INTERVAL`], a third of the default TTL).
pub struct LeaseClaims {
    store: Arc<dyn crate::store::Store>,
    holder: String,
    ttl: Duration,
    leases: std::sync::Mutex<HashMap<String, Lease>>,
}

impl LeaseClaims {
    /// Claims held as `holder` (unique per container) with leases of `ttl`.
    pub fn new(
        store: Arc<dyn crate::store::Store>,
        holder: impl Into<String>,
        ttl: Duration,
    ) -> Self {
        Self {
            store,
            holder: holder.into(),
            ttl,
            leases: Default::default(),
        }
    }

    fn lease(&self, sensor_ref: &str) -> Lease {
        let mut leases = self.leases.lock().unwrap_or_else(|p| p.into_inner());
        leases
            .entry(sensor_ref.to_string())
            .or_insert_with(|| {
                Lease::new(
                    Arc::clone(&self.store),
                    format!("sensor:{sensor_ref}"),
                    self.holder.clone(),
                    self.ttl,
                )
            })
            .clone()
    }
}

#[async_trait::async_trait]
impl Claims for LeaseClaims {
    async fn hold(&self, sensor_ref: &str) -> bool {
        match self.lease(sensor_ref).try_acquire().await {
            Ok(held) => held.is_some(),
            Err(e) => {
                // Unsure: behave as not holding it, so two containers never both run it.
                tracing::warn!(sensor = %sensor_ref, error = %e, "sensor lease check failed");
                false
            }
        }
    }

    async fn release(&self, sensor_ref: &str) {
        if let Err(e) = self.lease(sensor_ref).release().await {
            tracing::warn!(sensor = %sensor_ref, error = %e, "sensor lease release failed");
        }
    }
}

/// A running watch.
struct Running {
    sensor_ref: String,
    trigger: Trigger,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

/// The built-in sensor service.
pub struct BuiltinSensors {
    ctx: Ctx,
    sensors: HashMap<&'static str, Arc<dyn BuiltinSensor>>,
    claims: Arc<dyn Claims>,
}

impl BuiltinSensors {
    /// The service with every standard built-in sensor, claiming sensors with leases held as
    /// this container (the node id and a fresh suffix).
    pub fn new(ctx: Ctx) -> Self {
        Self::with_sensors(ctx, super::standard())
    }

    /// The service with the given sensors, claiming sensors with leases.
    pub fn with_sensors(ctx: Ctx, sensors: Vec<Arc<dyn BuiltinSensor>>) -> Self {
        let holder = format!("{}-sensors-{}", ctx.node_id, uuid::Uuid::new_v4().simple());
        let claims = Arc::new(LeaseClaims::new(
            Arc::clone(&ctx.store),
            holder,
            ctx.coordination.lease_ttl,
        ));
        Self {
            ctx,
            sensors: sensors.into_iter().map(|s| (s.name(), s)).collect(),
            claims,
        }
    }

    /// Decides with `claims` which sensors run here (several containers).
    pub fn with_claims(mut self, claims: Arc<dyn Claims>) -> Self {
        self.claims = claims;
        self
    }

    /// Runs the service in a task until the platform shuts down.
    pub fn start(self) -> tokio::task::JoinHandle<()> {
        tokio::spawn(self.run())
    }

    async fn run(self) {
        let mut running: HashMap<String, Running> = HashMap::new();
        loop {
            match self.wanted().await {
                Ok(wanted) => self.reconcile(&mut running, wanted).await,
                Err(e) => tracing::warn!(error = %e, "built-in sensors: reload failed"),
            }
            tokio::select! {
                _ = self.ctx.shutdown.cancelled() => break,
                _ = tokio::time::sleep(RELOAD_INTERVAL) => {}
            }
        }
        let mut refs: Vec<String> = Vec::new();
        for (_, r) in running.drain() {
            r.stop.cancel();
            let _ = r.task.await;
            refs.push(r.sensor_ref);
        }
        refs.sort();
        refs.dedup();
        for s in refs {
            self.claims.release(&s).await;
        }
    }

    /// Trigger id → (sensor ref, sensor implementation, trigger) for every trigger a claimed
    /// built-in sensor should watch.
    async fn wanted(
        &self,
    ) -> Result<HashMap<String, (String, Arc<dyn BuiltinSensor>, Trigger)>, ServiceError> {
        let sensors: Vec<Sensor> = repo::<Sensor>(&*self.ctx.store)
            .find(&Query::all().eq("enabled", true))
            .await?;
        let mut wanted = HashMap::new();
        for s in sensors {
            let Some(name) = builtin_name(&s.entry_point) else {
                continue;
            };
            let Some(imp) = self.sensors.get(name) else {
                tracing::warn!(sensor = %s.sensor_ref, entry_point = %s.entry_point, "unknown built-in sensor");
                continue;
            };
            if !self.claims.hold(&s.sensor_ref).await {
                continue;
            }
            for tt in &s.trigger_types {
                let triggers = self
                    .ctx
                    .catalog
                    .triggers_of_type(&*self.ctx.store, tt)
                    .await?;
                for t in triggers.iter() {
                    let key = if t.id.is_empty() {
                        t.trigger_ref.clone()
                    } else {
                        t.id.clone()
                    };
                    wanted.insert(key, (s.sensor_ref.clone(), Arc::clone(imp), t.clone()));
                }
            }
        }
        Ok(wanted)
    }

    async fn reconcile(
        &self,
        running: &mut HashMap<String, Running>,
        mut wanted: HashMap<String, (String, Arc<dyn BuiltinSensor>, Trigger)>,
    ) {
        // Stop what is gone or changed (remove_trigger / update_trigger).
        let stale: Vec<String> = running
            .iter()
            .filter(|(k, r)| {
                wanted.get(*k).is_none_or(|(s, _, t)| {
                    *s != r.sensor_ref || t.parameters != r.trigger.parameters
                })
            })
            .map(|(k, _)| k.clone())
            .collect();
        for k in stale {
            if let Some(r) = running.remove(&k) {
                tracing::info!(trigger = %r.trigger.trigger_ref, sensor = %r.sensor_ref, "stopping watch");
                r.stop.cancel();
                let _ = r.task.await;
            }
        }
        // Start what is new (add_trigger).
        for (k, (sensor_ref, imp, trigger)) in wanted.drain() {
            if running.contains_key(&k) {
                continue;
            }
            let stop = self.ctx.shutdown.child_token();
            let task = tokio::spawn(supervise(
                self.ctx.clone(),
                imp,
                trigger.clone(),
                stop.clone(),
            ));
            running.insert(
                k,
                Running {
                    sensor_ref,
                    trigger,
                    stop,
                    task,
                },
            );
        }
    }
}

/// Runs one watch until `stop`, restarting it with backoff when it fails.
async fn supervise(
    ctx: Ctx,
    sensor: Arc<dyn BuiltinSensor>,
    trigger: Trigger,
    stop: CancellationToken,
) {
    let mut backoff = BACKOFF_MIN;
    loop {
        let started = tokio::time::Instant::now();
        match sensor.watch(&ctx, &trigger, stop.clone()).await {
            Ok(()) => return,
            Err(e @ super::SensorError::Parameters { .. }) => {
                // Retrying cannot help: a trigger with other parameters is a new watch.
                tracing::warn!(sensor = sensor.name(), trigger = %trigger.trigger_ref, error = %e, "built-in sensor cannot watch this trigger");
                stop.cancelled().await;
                return;
            }
            Err(e) => {
                tracing::warn!(sensor = sensor.name(), trigger = %trigger.trigger_ref, error = %e, retry_in = ?backoff, "built-in sensor watch failed");
            }
        }
        if started.elapsed() > BACKOFF_MAX {
            backoff = BACKOFF_MIN; // it ran a good while: a fresh failure
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}
