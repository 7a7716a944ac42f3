//! Which sensors a sensor container runs: with several containers over one store, each sensor
//! runs in exactly one of them, the one holding its claim ([`LeaseClaims`], a store lease per
//! sensor); [`ClaimAll`] for a container known to be alone.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::services::lease::Lease;
use crate::services::Ctx;

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

/// Lease claims for one sensor container of this process: held as the node id and a fresh
/// suffix, with the default lease TTL.
pub fn for_container(ctx: &Ctx) -> Arc<LeaseClaims> {
    let holder = format!("{}-sensors-{}", ctx.node_id, uuid::Uuid::new_v4().simple());
    Arc::new(LeaseClaims::new(
        Arc::clone(&ctx.store),
        holder,
        ctx.coordination.lease_ttl,
    ))
}
