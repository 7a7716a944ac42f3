//! Named leases in the store: one holder at a time for a singleton role (timers engine, garbage
//! collector) or a sensor, with expiry so that a standby takes over when the holder dies.
//!
//! A lease is one document of [`Collection::Leases`]:
//! `{id: name, holder, expires_at (epoch ms), epoch, version}`. Every change is a
//! compare-and-set on `version`, so of two racing writers exactly one wins; `epoch` grows by one
//! on each change of holder and serves as a fencing token. The first holder creates the document
//! with [`Store::insert_new`]. Expiry compares wall clocks of different machines: keep them in
//! sync (NTP) and the TTL well above their skew.
//!
//! [`Singleton`] runs a task only while its process holds the lease: it renews every third of the
//! TTL, stops the task when the lease is lost or cannot be renewed before it would expire, and
//! releases the lease on shutdown so a standby takes over at once.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use crate::model::JsonMap;
use crate::store::{Collection, Store, StoreError};

/// Default time to live of a lease: a dead holder's lease is taken over within this (plus one
/// renewal period).
pub const DEFAULT_TTL: Duration = Duration::from_secs(3);

/// A lease as read from the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseState {
    /// Who holds it.
    pub holder: String,
    /// Expiry, milliseconds since the Unix epoch.
    pub expires_at: i64,
    /// Fencing token: grows by one on each change of holder.
    pub epoch: u64,
    /// Grows by one on each write (the compare-and-set field).
    pub version: u64,
}

impl LeaseState {
    fn from_doc(doc: &Value) -> Self {
        Self {
            holder: doc["holder"].as_str().unwrap_or_default().to_string(),
            expires_at: doc["expires_at"].as_i64().unwrap_or(0),
            epoch: doc["epoch"].as_u64().unwrap_or(0),
            version: doc["version"].as_u64().unwrap_or(0),
        }
    }
}

/// Milliseconds since the Unix epoch.
fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// One named lease, as seen by one would-be holder.
#[derive(Clone)]
pub struct Lease {
    store: Arc<dyn Store>,
    name: String,
    holder: String,
    ttl: Duration,
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease")
            .field("name", &self.name)
            .field("holder", &self.holder)
            .field("ttl", &self.ttl)
            .finish()
    }
}

impl Lease {
    /// The lease `name` as wanted by `holder` (unique per process, e.g. the node id).
    pub fn new(
        store: Arc<dyn Store>,
        name: impl Into<String>,
        holder: impl Into<String>,
        ttl: Duration,
    ) -> Self {
        Self {
            store,
            name: name.into(),
            holder: holder.into(),
            ttl,
        }
    }

    /// The lease's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its time to live.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// The lease as stored now, if it was ever taken.
    pub async fn state(&self) -> Result<Option<LeaseState>, StoreError> {
        Ok(self
            .store
            .get(Collection::Leases, &self.name)
            .await?
            .map(|d| LeaseState::from_doc(&d)))
    }

    fn ttl_ms(&self) -> i64 {
        i64::try_from(self.ttl.as_millis()).unwrap_or(i64::MAX)
    }

    /// Takes the lease if it is free or expired, or renews it if this holder has it. Returns the
    /// epoch (fencing token) when this holder holds it after the call, `None` when someone else
    /// does.
    pub async fn try_acquire(&self) -> Result<Option<u64>, StoreError> {
        // Two rounds: a lost insert race is followed by one read of the winner's document.
        for _ in 0..2 {
            let now = now_ms();
            let Some(doc) = self.store.get(Collection::Leases, &self.name).await? else {
                let doc = json!({
                    "id": self.name,
                    "holder": self.holder,
                    "expires_at": now + self.ttl_ms(),
                    "epoch": 1,
                    "version": 1,
                });
                if self.store.insert_new(Collection::Leases, doc).await? {
                    return Ok(Some(1));
                }
                continue;
            };
            let cur = LeaseState::from_doc(&doc);
            let mine = cur.holder == self.holder;
            if !mine && cur.expires_at > now {
                return Ok(None);
            }
            let epoch = if mine { cur.epoch } else { cur.epoch + 1 };
            let mut patch = JsonMap::new();
            patch.insert("holder".into(), json!(self.holder));
            patch.insert("expires_at".into(), json!(now + self.ttl_ms()));
            patch.insert("epoch".into(), json!(epoch));
            patch.insert("version".into(), json!(cur.version + 1));
            let won = self.write_over(cur.version, patch).await?;
            return Ok(won.then_some(epoch));
        }
        Ok(None)
    }

    /// Gives the lease up (expires it now) if this holder has it; true if it did.
    pub async fn release(&self) -> Result<bool, StoreError> {
        let Some(cur) = self.state().await? else {
            return Ok(false);
        };
        if cur.holder != self.holder {
            return Ok(false);
        }
        let mut patch = JsonMap::new();
        patch.insert("expires_at".into(), json!(0));
        patch.insert("version".into(), json!(cur.version + 1));
        self.write_over(cur.version, patch).await
    }

    /// Applies `patch` if the lease is still at `version`; false when someone wrote first.
    async fn write_over(&self, version: u64, patch: JsonMap) -> Result<bool, StoreError> {
        Ok(self
            .store
            .compare_and_set(
                Collection::Leases,
                &self.name,
                "version",
                &[json!(version)],
                patch,
            )
            .await?
            .is_some())
    }
}

/// Runs a task only while this process holds a lease; see the module docs.
pub struct Singleton {
    lease: Lease,
}

impl Singleton {
    /// A singleton over `lease`.
    pub fn new(lease: Lease) -> Self {
        Self { lease }
    }

    /// Until `shutdown`: waits for the lease, runs `work(stop)` while holding it, and cancels
    /// `stop` as soon as the lease is lost or could not be renewed in time (then waits for the
    /// work to end and competes again). Releases the lease on shutdown.
    pub async fn run<F, Fut>(self, shutdown: CancellationToken, mut work: F)
    where
        F: FnMut(CancellationToken) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let period = (self.lease.ttl / 3).max(Duration::from_millis(50));
        let name = self.lease.name.clone();
        loop {
            // Stand by until the lease is ours.
            let epoch = loop {
                match self.lease.try_acquire().await {
                    Ok(Some(epoch)) => break Some(epoch),
                    Ok(None) => {}
                    Err(e) => tracing::warn!(lease = %name, error = %e, "cannot read lease"),
                }
                tokio::select! {
                    _ = shutdown.cancelled() => break None,
                    _ = tokio::time::sleep(period) => {}
                }
            };
            let Some(epoch) = epoch else { return };
            tracing::info!(lease = %name, epoch, holder = %self.lease.holder, "lease taken: active");
            let mut valid_until = Instant::now() + self.lease.ttl;
            let stop = CancellationToken::new();
            let mut task = tokio::spawn(work(stop.clone()));
            let mut task_done = false;
            // Hold: renew until lost, shut down or the work ends.
            let released = loop {
                tokio::select! {
                    _ = shutdown.cancelled() => break true,
                    r = &mut task, if !task_done => {
                        task_done = true;
                        if let Err(e) = r {
                            tracing::warn!(lease = %name, error = %e, "leased work ended abnormally");
                        }
                        break true;
                    }
                    _ = tokio::time::sleep(period) => {}
                }
                let asked = Instant::now();
                match self.lease.try_acquire().await {
                    Ok(Some(_)) => valid_until = asked + self.lease.ttl,
                    Ok(None) => {
                        tracing::warn!(lease = %name, "lease lost to another holder: standing by");
                        break false;
                    }
                    Err(e) => {
                        tracing::warn!(lease = %name, error = %e, "cannot renew lease");
                        // Stop before the lease can expire under us.
                        if Instant::now() + period >= valid_until {
                            tracing::warn!(lease = %name, "lease about to expire: standing by");
                            break false;
                        }
                    }
                }
            };
            stop.cancel();
            if !task_done {
                let _ = (&mut task).await;
            }
            if released {
                if let Err(e) = self.lease.release().await {
                    tracing::warn!(lease = %name, error = %e, "cannot release lease");
                }
                if shutdown.is_cancelled() {
                    return;
                }
                // The work ended on its own: let another holder take over before competing.
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(self.lease.ttl) => {}
                }
            }
        }
    }
}
