//! Deferred publishes: what a service could not publish without waiting.
//!
//! The pipeline is a cycle of bounded work queues (rules engine → scheduler → action runner →
//! notifier → rules engine, through action triggers). Services that hold a delivery while they
//! publish would wait on each other forever once every queue is full. So the edge that closes
//! the cycle — trigger instances emitted by the notifier — never waits: the trigger instance is
//! stored `pending` first, then published with [`Bus::try_publish`](crate::bus::Bus::try_publish);
//! when the rules engine's queue is full its id goes here and [`Deferred::run`] publishes it as
//! soon as there is room. Only ids are kept (the document is in the store), and ingress refuses
//! new work while the backlog is over [`Deferred::HIGH_WATER`], so the backlog stays bounded.
//! After a crash, `pending` trigger instances are re-claimed at start like any other.

use std::collections::VecDeque;
use std::sync::Mutex;

use serde_json::json;
use tokio::sync::Notify;

use super::Ctx;
use crate::bus::names;
use crate::model::TriggerInstance;
use crate::store::repo;

/// Ids of stored trigger instances (with their trace's id) waiting for room on the rules
/// engine's queue.
#[derive(Debug, Default)]
pub struct Deferred {
    ids: Mutex<VecDeque<(String, String)>>,
    added: Notify,
}

impl Deferred {
    /// Backlog above which ingress (webhooks, API) answers "busy" instead of accepting more.
    pub const HIGH_WATER: usize = 4096;

    /// Remembers a stored trigger instance to publish later.
    pub fn push(&self, trigger_instance_id: String, trace_id: String) {
        self.lock().push_back((trigger_instance_id, trace_id));
        self.added.notify_one();
    }

    /// How many trigger instances wait.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether ingress should refuse new work for now.
    pub fn is_over_high_water(&self) -> bool {
        self.len() >= Self::HIGH_WATER
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<(String, String)>> {
        self.ids.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Publishes deferred trigger instances, oldest first, waiting for room (this task holds no
    /// delivery, so waiting here cannot close a cycle), until the platform shuts down.
    pub async fn run(ctx: Ctx) {
        loop {
            let next = ctx.deferred.lock().pop_front();
            let Some((id, trace_id)) = next else {
                tokio::select! {
                    _ = ctx.deferred.added.notified() => continue,
                    _ = ctx.shutdown.cancelled() => return,
                }
            };
            let ti = match repo::<TriggerInstance>(&*ctx.store).get(&id).await {
                Ok(Some(ti)) if ti.status == "pending" => ti,
                Ok(_) => continue, // processed meanwhile (re-claimed) or purged
                Err(e) => {
                    tracing::warn!(trigger_instance = %id, error = %e, "deferred trigger instance unreadable; left pending for re-claim");
                    continue;
                }
            };
            let msg = json!({"trigger_instance": ti, "trace_id": trace_id});
            let publish = ctx.bus.publish_json(
                names::TRIGGER_INSTANCES_DISPATCH,
                names::RK_TRIGGER_INSTANCE,
                &msg,
            );
            tokio::select! {
                r = publish => if let Err(e) = r {
                    tracing::warn!(trigger_instance = %id, error = %e, "deferred publish failed; left pending for re-claim");
                },
                _ = ctx.shutdown.cancelled() => return,
            }
        }
    }
}
