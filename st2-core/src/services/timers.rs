//! The timers engine role: every timer trigger (`core.st2.IntervalTimer`, `DateTimer`,
//! `CronTimer` with parameters, created by the rules that use them) is scheduled; each fire
//! dispatches a trigger instance with StackStorm's payload and trace tag. Triggers added or
//! removed by (re-)registration take effect within [`RELOAD_INTERVAL`], without a restart.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use super::{dispatch, Ctx, ServiceError};
use crate::model::Trigger;
use crate::store::{repo, Query};
use crate::timers::{trace_tag, SystemClock, TimerEngine, TIMER_TRIGGER_TYPES};

/// How often timer triggers are re-read from the store.
pub const RELOAD_INTERVAL: Duration = Duration::from_secs(2);

/// The timers service.
pub struct TimersService {
    ctx: Ctx,
    engine: TimerEngine,
    /// Trigger ref → parameters last scheduled, to notice changes.
    known: tokio::sync::Mutex<HashMap<String, Value>>,
}

impl TimersService {
    /// A timers service on the system clock.
    pub fn new(ctx: Ctx) -> Arc<Self> {
        Arc::new(Self {
            ctx,
            engine: TimerEngine::new(Arc::new(SystemClock)),
            known: Default::default(),
        })
    }

    /// Loads the timer triggers, then runs the engine and the reloader in tasks.
    pub async fn start(self: Arc<Self>) -> Result<tokio::task::JoinHandle<()>, ServiceError> {
        self.reload().await?;
        let me = Arc::clone(&self);
        Ok(tokio::spawn(async move {
            let reloader = {
                let me = Arc::clone(&me);
                tokio::spawn(async move {
                    let mut tick = tokio::time::interval(RELOAD_INTERVAL);
                    loop {
                        tick.tick().await;
                        if let Err(e) = me.reload().await {
                            tracing::warn!(error = %e, "timer reload failed");
                        }
                    }
                })
            };
            let ctx = me.ctx.clone();
            let on_fire = move |trigger: Trigger, payload: Value| {
                let ctx = ctx.clone();
                let tag = trace_tag(&trigger);
                tokio::spawn(async move {
                    if let Err(e) =
                        dispatch::dispatch(&ctx, &trigger.trigger_ref, payload, Some(tag)).await
                    {
                        tracing::warn!(trigger = %trigger.trigger_ref, error = %e, "timer dispatch failed");
                    }
                });
            };
            let stop = me.ctx.shutdown.clone();
            let shutdown = async move { stop.cancelled().await };
            if let Err(e) = me.engine.run(on_fire, shutdown).await {
                tracing::error!(error = %e, "timer engine stopped");
            }
            reloader.abort();
        }))
    }

    /// Schedules new or changed timer triggers and drops removed ones.
    pub async fn reload(&self) -> Result<(), ServiceError> {
        let types: Vec<Value> = TIMER_TRIGGER_TYPES.iter().map(|t| json!(t)).collect();
        let triggers: Vec<Trigger> = repo::<Trigger>(&*self.ctx.store)
            .find(&Query::all().is_in("type", types))
            .await?;
        let mut known = self.known.lock().await;
        let mut seen = HashMap::new();
        for t in triggers.into_iter().filter(|t| !t.parameters.is_empty()) {
            let params = Value::Object(t.parameters.clone());
            seen.insert(t.trigger_ref.clone(), params.clone());
            if known.get(&t.trigger_ref) == Some(&params) {
                continue;
            }
            match self.engine.add(t.clone()) {
                Ok(next) => {
                    tracing::info!(trigger = %t.trigger_ref, next = ?next, "timer scheduled")
                }
                Err(e) => {
                    tracing::warn!(trigger = %t.trigger_ref, error = %e, "timer not scheduled")
                }
            }
        }
        for gone in known.keys().filter(|k| !seen.contains_key(*k)) {
            self.engine.remove(gone);
            tracing::info!(trigger = %gone, "timer removed");
        }
        *known = seen;
        Ok(())
    }
}
