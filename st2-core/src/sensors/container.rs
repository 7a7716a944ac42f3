//! The pack sensor service of the `sensorcontainer` role: every [`RELOAD_INTERVAL`] it reads
//! the enabled Python and WebAssembly sensors, claims them (a store lease per sensor, so that
//! of several containers exactly one runs each), and
//! - starts each claimed sensor that is not running: a Python sensor as a supervised process
//!   ([`super::python::process::supervise`]), a WASM sensor as a poll loop
//!   ([`super::wasm::supervise`]);
//! - restarts a sensor whose registration changed: its stored document, its pack config, or
//!   its code file (size or modification time), so re-registering a pack after editing a
//!   sensor restarts it;
//! - stops a sensor that was removed, disabled or whose lease was lost;
//! - publishes each sensor's triggers (those of its trigger types) to it: a Python sensor gets
//!   the differences as `add_trigger` / `update_trigger` / `remove_trigger` calls, a WASM
//!   sensor the current list in each poll's input.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::python::channel::Triggers;
use super::python::process::SensorSpec;
use crate::model::Sensor;
use crate::sensors::claims::Claims;
use crate::services::{Ctx, ServiceError};
use crate::store::{repo, Query};

/// How often sensors and triggers are re-read.
pub const RELOAD_INTERVAL: Duration = Duration::from_secs(1);

/// A running sensor.
struct Running {
    fingerprint: String,
    triggers: watch::Sender<Triggers>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

/// How a sensor runs.
enum Spec {
    Python(SensorSpec),
    #[cfg(feature = "wasm")]
    Wasm(super::wasm::WasmSensorSpec),
}

/// A sensor this container should run now.
struct Wanted {
    spec: Spec,
    fingerprint: String,
    triggers: Triggers,
}

/// The pack sensor service.
pub struct SensorContainer {
    ctx: Ctx,
    claims: Arc<dyn Claims>,
    /// The sandbox of WASM sensors (its engine is made when the first one runs).
    #[cfg(feature = "wasm")]
    wasm: Arc<crate::runners::wasm::WasmRunner>,
}

impl SensorContainer {
    /// The service, claiming sensors with leases held as this container (the node id and a
    /// fresh suffix).
    pub fn new(ctx: Ctx) -> Self {
        let claims = super::claims::for_container(&ctx);
        Self {
            ctx,
            claims,
            #[cfg(feature = "wasm")]
            wasm: Arc::new(crate::runners::wasm::WasmRunner::new()),
        }
    }

    /// Decides with `claims` which sensors run here.
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
                Err(e) => tracing::warn!(error = %e, "sensor container: reload failed"),
            }
            tokio::select! {
                _ = self.ctx.shutdown.cancelled() => break,
                _ = tokio::time::sleep(RELOAD_INTERVAL) => {}
            }
        }
        let refs: Vec<String> = running.keys().cloned().collect();
        stop_all(running.drain().map(|(_, r)| r)).await;
        for s in refs {
            self.claims.release(&s).await;
        }
    }

    /// Sensor ref → what to run, for every enabled Python or WASM sensor this container
    /// claims.
    async fn wanted(&self) -> Result<HashMap<String, Wanted>, ServiceError> {
        let sensors: Vec<Sensor> = repo::<Sensor>(&*self.ctx.store)
            .find(&Query::all().eq("enabled", true))
            .await?;
        let mut wanted = HashMap::new();
        for s in sensors {
            let python = super::python::is_python(&s.entry_point);
            #[cfg(feature = "wasm")]
            let wasm = super::wasm::is_wasm(&s.entry_point);
            #[cfg(not(feature = "wasm"))]
            let wasm = false;
            if !python && !wasm {
                continue;
            }
            let Some(file_path) = self.sensor_file(&s) else {
                tracing::warn!(sensor = %s.sensor_ref, entry_point = %s.entry_point, "sensor file not found");
                continue;
            };
            if !self.claims.hold(&s.sensor_ref).await {
                continue;
            }
            let triggers = super::sensor_triggers(&self.ctx, &s).await?;
            let config = serde_json::Value::Object(
                (*self
                    .ctx
                    .catalog
                    .pack_config(&*self.ctx.store, &s.pack)
                    .await?)
                    .clone(),
            );
            let fingerprint = fingerprint(&s, &config, &file_path);
            let spec = if python {
                Spec::Python(self.python_spec(&s, file_path, config)?)
            } else {
                #[cfg(feature = "wasm")]
                {
                    Spec::Wasm(super::wasm::WasmSensorSpec {
                        sensor_ref: s.sensor_ref.clone(),
                        pack: s.pack.clone(),
                        class_name: s.class_name.clone(),
                        module: file_path,
                        poll_interval: Duration::from_secs_f64(
                            s.poll_interval
                                .filter(|p| p.is_finite() && *p > 0.0)
                                .unwrap_or(super::wasm::DEFAULT_POLL_INTERVAL),
                        ),
                        config,
                        default_trigger: s.trigger_types.first().cloned(),
                    })
                }
                #[cfg(not(feature = "wasm"))]
                continue;
            };
            wanted.insert(
                s.sensor_ref.clone(),
                Wanted {
                    spec,
                    fingerprint,
                    triggers,
                },
            );
        }
        Ok(wanted)
    }

    /// How a Python sensor is started.
    fn python_spec(
        &self,
        s: &Sensor,
        file_path: PathBuf,
        config: serde_json::Value,
    ) -> Result<SensorSpec, ServiceError> {
        let venv = Some(self.ctx.paths.virtualenv(&s.pack))
            .filter(|v| v.join("bin").join("python").exists());
        let settings = self.ctx.runners.settings();
        let shim = crate::runners::python::unpack_shim(&settings.cache_dir)
            .map_err(|e| ServiceError::Invalid(e.to_string()))?;
        Ok(SensorSpec {
            sensor_ref: s.sensor_ref.clone(),
            pack: s.pack.clone(),
            class_name: s.class_name.clone(),
            file_path,
            poll_interval: s.poll_interval,
            config,
            python: venv.as_ref().map_or_else(
                || PathBuf::from(&settings.python_binary),
                |v| v.join("bin").join("python"),
            ),
            virtualenv: venv,
            shim,
            runtime_dir: settings.runtime_dir.clone(),
        })
    }

    /// The sensor's code file: its `artifact_uri`, else `<pack>/sensors/<entry_point>`.
    fn sensor_file(&self, s: &Sensor) -> Option<PathBuf> {
        let from_uri = s
            .artifact_uri
            .as_deref()
            .map(|u| PathBuf::from(u.strip_prefix("file://").unwrap_or(u)));
        from_uri
            .or_else(|| {
                self.ctx
                    .paths
                    .find_pack(&s.pack)
                    .map(|d| d.join("sensors").join(&s.entry_point))
            })
            .filter(|p| p.is_file())
    }

    async fn reconcile(
        &self,
        running: &mut HashMap<String, Running>,
        mut wanted: HashMap<String, Wanted>,
    ) {
        let stale: Vec<String> = running
            .iter()
            .filter(|(k, r)| {
                wanted
                    .get(*k)
                    .is_none_or(|w| w.fingerprint != r.fingerprint)
            })
            .map(|(k, _)| k.clone())
            .collect();
        let mut stopping = Vec::new();
        for k in stale {
            if let Some(r) = running.remove(&k) {
                tracing::info!(sensor = %k, "stopping sensor");
                if !wanted.contains_key(&k) {
                    self.claims.release(&k).await;
                }
                stopping.push(r);
            }
        }
        stop_all(stopping.into_iter()).await;
        for (k, w) in wanted.drain() {
            if let Some(r) = running.get(&k) {
                r.triggers.send_if_modified(|t| {
                    let changed = *t != w.triggers;
                    if changed {
                        *t = w.triggers;
                    }
                    changed
                });
                continue;
            }
            tracing::info!(sensor = %k, "starting sensor");
            let (tx, rx) = watch::channel(w.triggers);
            let stop = self.ctx.shutdown.child_token();
            let task = match w.spec {
                Spec::Python(spec) => tokio::spawn(super::python::process::supervise(
                    self.ctx.clone(),
                    spec,
                    rx,
                    stop.clone(),
                )),
                #[cfg(feature = "wasm")]
                Spec::Wasm(spec) => tokio::spawn(super::wasm::supervise(
                    self.ctx.clone(),
                    spec,
                    Arc::clone(&self.wasm),
                    rx,
                    stop.clone(),
                )),
            };
            running.insert(
                k,
                Running {
                    fingerprint: w.fingerprint,
                    triggers: tx,
                    stop,
                    task,
                },
            );
        }
    }
}

/// Stops sensors together and waits for them.
async fn stop_all(sensors: impl Iterator<Item = Running>) {
    let tasks: Vec<_> = sensors
        .map(|r| {
            r.stop.cancel();
            r.task
        })
        .collect();
    for t in tasks {
        let _ = t.await;
    }
}

/// What identifies a sensor's registration: its document, pack config and file.
fn fingerprint(s: &Sensor, config: &serde_json::Value, file: &std::path::Path) -> String {
    let mut h = Sha256::new();
    h.update(serde_json::to_vec(s).unwrap_or_default());
    h.update([0]);
    h.update(serde_json::to_vec(config).unwrap_or_default());
    h.update([0]);
    if let Ok(m) = std::fs::metadata(file) {
        h.update(m.len().to_le_bytes());
        if let Ok(t) = m.modified() {
            if let Ok(d) = t.duration_since(std::time::UNIX_EPOCH) {
                h.update(d.as_nanos().to_le_bytes());
            }
        }
    }
    hex::encode(h.finalize())
}
