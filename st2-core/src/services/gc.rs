//! The garbage collector role: deletes completed executions, trigger instances, rule
//! enforcements and traces older than their configured TTL (days, StackStorm's
//! `[garbagecollector]` options; unset = kept), expired datastore keys, expired tokens and
//! expired trigger preprocessing state.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{Ctx, ServiceError};
use crate::config::GarbageCollectorConfig;
use crate::model::Token;
use crate::store::{repo, Collection, Query, Write};

/// What one collection pass deleted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Executions deleted.
    pub executions: usize,
    /// Output chunks deleted (kept as long as executions).
    pub execution_output: usize,
    /// Trigger instances deleted.
    pub trigger_instances: usize,
    /// Rule enforcements deleted.
    pub rule_enforcements: usize,
    /// Traces deleted.
    pub traces: usize,
    /// Expired tokens deleted.
    pub tokens: usize,
    /// Expired datastore keys deleted.
    pub keys: usize,
}

/// The garbage collector.
pub struct GarbageCollector {
    ctx: Ctx,
    cfg: GarbageCollectorConfig,
}

fn older(ts: Option<&str>, cutoff: DateTime<Utc>) -> bool {
    ts.and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .is_some_and(|t| t < cutoff)
}

impl GarbageCollector {
    /// A collector with the given TTLs.
    pub fn new(ctx: Ctx, cfg: GarbageCollectorConfig) -> Arc<Self> {
        Arc::new(Self { ctx, cfg })
    }

    /// Runs a pass every `collection_interval` seconds until shutdown.
    pub fn start(self: Arc<Self>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut tick =
                tokio::time::interval(Duration::from_secs(self.cfg.collection_interval.max(1)));
            loop {
                tokio::select! {
                    _ = self.ctx.shutdown.cancelled() => break,
                    _ = tick.tick() => {
                        match self.collect(Utc::now()).await {
                            Ok(r) if r != GcReport::default() => tracing::info!(report = ?r, "garbage collected"),
                            Ok(_) => {}
                            Err(e) => tracing::warn!(error = %e, "garbage collection failed"),
                        }
                    }
                }
            }
        })
    }

    async fn purge(
        &self,
        c: Collection,
        field: &str,
        ttl_days: Option<u64>,
        now: DateTime<Utc>,
        only_completed: bool,
    ) -> Result<usize, ServiceError> {
        let Some(days) = ttl_days else { return Ok(0) };
        let cutoff =
            now - chrono::Duration::days(i64::try_from(days).unwrap_or(i64::MAX / 86_400_000));
        let docs = self.ctx.store.find(c, &Query::all()).await?;
        let mut writes = Vec::new();
        for d in docs {
            let done = !only_completed
                || d.get("status")
                    .and_then(Value::as_str)
                    .and_then(crate::model::ExecutionStatus::parse)
                    .is_some_and(|s| s.is_completed());
            if done && older(d.get(field).and_then(Value::as_str), cutoff) {
                if let Some(id) = d.get("id").and_then(Value::as_str) {
                    writes.push(Write::Delete {
                        collection: c,
                        id: id.to_string(),
                    });
                }
            }
        }
        let n = writes.len();
        if n > 0 {
            self.ctx.store.apply(writes).await?;
        }
        Ok(n)
    }

    /// One collection pass as of `now`.
    pub async fn collect(&self, now: DateTime<Utc>) -> Result<GcReport, ServiceError> {
        let mut r = GcReport {
            executions: self
                .purge(
                    Collection::Executions,
                    "end_timestamp",
                    self.cfg.action_executions_ttl,
                    now,
                    true,
                )
                .await?,
            execution_output: self
                .purge(
                    Collection::ExecutionOutput,
                    "timestamp",
                    self.cfg.action_executions_ttl,
                    now,
                    false,
                )
                .await?,
            trigger_instances: self
                .purge(
                    Collection::TriggerInstances,
                    "occurrence_time",
                    self.cfg.trigger_instances_ttl,
                    now,
                    false,
                )
                .await?,
            rule_enforcements: self
                .purge(
                    Collection::RuleEnforcements,
                    "enforced_at",
                    self.cfg.rule_enforcements_ttl,
                    now,
                    false,
                )
                .await?,
            traces: self
                .purge(
                    Collection::Traces,
                    "start_timestamp",
                    self.cfg.traces_ttl,
                    now,
                    false,
                )
                .await?,
            ..GcReport::default()
        };
        let expired: Vec<Token> = repo::<Token>(&*self.ctx.store)
            .find(&Query::all())
            .await?
            .into_iter()
            .filter(|t| older(Some(&t.expiry), now))
            .collect();
        for t in &expired {
            repo::<Token>(&*self.ctx.store).delete(&t.id).await?;
        }
        r.tokens = expired.len();
        if let Some(ds) = &self.ctx.datastore {
            r.keys = ds.purge_expired().await.unwrap_or(0);
        }
        // Expired trigger preprocessing state (dedup keys, throttle windows).
        if let Err(e) = super::preprocess::purge_expired(&self.ctx).await {
            tracing::warn!(error = %e, "purging expired preprocessing state failed");
        }
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::TriggerInstance;
    use crate::store::EmbeddedStore;

    fn ctx(store: Arc<dyn crate::store::Store>) -> Ctx {
        Ctx::for_tests(store)
    }

    fn ti(id: &str, when: &str) -> TriggerInstance {
        TriggerInstance {
            id: id.into(),
            trigger: "core.st2.webhook".into(),
            payload: serde_json::json!({}),
            occurrence_time: when.into(),
            status: "processed".into(),
            preprocessing: None,
        }
    }

    #[tokio::test]
    async fn purges_only_what_is_older_than_its_ttl() {
        let store: Arc<dyn crate::store::Store> =
            Arc::new(EmbeddedStore::open_in_memory().expect("store"));
        let tis = repo::<TriggerInstance>(&*store);
        tis.save(ti("old", "2026-01-01T00:00:00.000000Z"))
            .await
            .expect("save");
        tis.save(ti("new", "2026-01-09T00:00:00.000000Z"))
            .await
            .expect("save");
        let cfg = GarbageCollectorConfig {
            trigger_instances_ttl: Some(7),
            ..Default::default()
        };
        let gc = GarbageCollector::new(ctx(store.clone()), cfg);
        let now = DateTime::parse_from_rfc3339("2026-01-10T00:00:00Z")
            .expect("date")
            .with_timezone(&Utc);
        let report = gc.collect(now).await.expect("collect");
        assert_eq!(report.trigger_instances, 1);
        assert!(tis.get("old").await.expect("get").is_none());
        assert!(tis.get("new").await.expect("get").is_some());
        // No TTL configured: executions are kept.
        assert_eq!(report.executions, 0);
    }
}
