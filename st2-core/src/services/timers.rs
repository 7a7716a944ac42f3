//! The timers engine role: every timer trigger (`core.st2.IntervalTimer`, `DateTimer`,
//! `CronTimer` with parameters, created by the rules that use them) is scheduled; each fire
//! dispatches a trigger instance with StackStorm's payload and trace tag. Triggers added or
//! removed by (re-)registration take effect within [`RELOAD_INTERVAL`], without a restart.
//!
//! Fire records: before dispatching a tick, the engine creates the record
//! `{id: "<trigger ref>@<planned ms>", trigger, scheduled_at}` in [`Collection::TimerFires`]
//! with [`Store::insert_new`](crate::store::Store::insert_new); only the creator dispatches, so
//! two engines (a leader that has not noticed it lost its lease, and its successor) never fire
//! the same tick twice. The last two records of each timer are kept.
//!
//! Catch-up: when this engine starts (e.g. takes over the `timersengine` lease), a timer with
//! a recorded fire resumes from it: interval timers keep the previous engine's phase, and the
//! latest tick missed since that fire is fired once, at once, if it is at most
//! `[coordination] timer_catchup_window` late (earlier missed ticks are coalesced into it,
//! like a cron misfire grace). A timer never fired before starts as StackStorm's does, except a
//! DateTimer that an engine had planned (a `#planned` record, written when it was scheduled)
//! and whose instant passed while no engine was active: it fires once, late, within the same
//! window. A tick whose record was created by an engine that died before dispatching it is
//! lost.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use chrono::{DateTime, TimeDelta, Utc};

use super::{dispatch, Ctx, ServiceError};
use crate::model::Trigger;
use crate::store::{repo, Collection, Query, Write};
use crate::timers::{
    timer_payload, trace_tag, trigger_key, SystemClock, TimerEngine, TimerFire, TimerSpec,
    DATE_TIMER, TIMER_TRIGGER_TYPES,
};

/// Fire records kept per timer (the latest anchors a catch-up; one more covers a lagging
/// engine).
const RECORDS_KEPT: usize = 2;

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
            let on_fire = move |fire: TimerFire| {
                let ctx = ctx.clone();
                tokio::spawn(async move {
                    fire_once(&ctx, &fire.trigger, fire.scheduled_at, fire.payload).await;
                });
            };
            let stop = me.ctx.shutdown.clone();
            let shutdown = async move { stop.cancelled().await };
            if let Err(e) = me.engine.run_fires(on_fire, shutdown).await {
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
            if !known.contains_key(&t.trigger_ref) {
                if let Some(last) = last_fire(&self.ctx, &trigger_key(&t)).await? {
                    self.resume(t, last).await;
                    continue;
                }
            }
            match self.engine.add(t.clone()) {
                Ok(next) => {
                    tracing::info!(trigger = %t.trigger_ref, next = ?next, "timer scheduled");
                    if t.trigger_type == DATE_TIMER {
                        self.plan_date(&t, next).await;
                    }
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

    /// Takes over a timer fired before (by this or another engine): keeps its planned times
    /// and fires the tick missed since, once.
    async fn resume(&self, t: Trigger, last: DateTime<Utc>) {
        let window = TimeDelta::from_std(self.ctx.coordination.timer_catchup_window)
            .unwrap_or(TimeDelta::MAX);
        match self.engine.resume(t.clone(), last, window) {
            Ok(r) => {
                tracing::info!(trigger = %t.trigger_ref, last = %last, catch_up = ?r.catch_up,
                    next = ?r.next, "timer resumed from its last recorded fire");
                if let Some(tick) = r.catch_up {
                    let payload = timer_payload(&t, Utc::now());
                    fire_once(&self.ctx, &t, tick, payload).await;
                }
            }
            Err(e) => {
                tracing::warn!(trigger = %t.trigger_ref, error = %e, "timer not scheduled")
            }
        }
    }
}

impl TimersService {
    /// A DateTimer scheduled for later is recorded as planned; one already past that an engine
    /// had planned (it stopped, or lost its lease, before the instant) fires now, if it is at
    /// most `[coordination] timer_catchup_window` late. A DateTimer that nobody planned before
    /// its instant never fires, as in StackStorm.
    async fn plan_date(&self, t: &Trigger, next: Option<DateTime<Utc>>) {
        let key = trigger_key(t);
        if let Some(at) = next {
            let record = json!({
                "id": planned_id(&key, at),
                "trigger": format!("{key}{PLANNED}"),
                "scheduled_at": at.timestamp_millis(),
                "node": self.ctx.node_id,
            });
            if let Err(e) = self
                .ctx
                .store
                .insert_new(Collection::TimerFires, record)
                .await
            {
                tracing::warn!(trigger = %key, error = %e, "date timer plan not recorded");
            }
            return;
        }
        let Ok(TimerSpec::Date(date)) = self.engine.spec(t) else {
            return;
        };
        let window = TimeDelta::from_std(self.ctx.coordination.timer_catchup_window)
            .unwrap_or(TimeDelta::MAX);
        let now = Utc::now();
        if date.at > now || now - date.at > window {
            return;
        }
        match self
            .ctx
            .store
            .get(Collection::TimerFires, &planned_id(&key, date.at))
            .await
        {
            Ok(Some(_)) => {
                tracing::info!(trigger = %t.trigger_ref, date = %date.at,
                    "date timer planned by an engine that stopped before it: firing it late");
                fire_once(&self.ctx, t, date.at, timer_payload(t, now)).await;
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(trigger = %key, error = %e, "cannot read date timer plan"),
        }
    }
}

/// What a plan record's `trigger` field adds to the trigger's key (so plans are never taken
/// for fires).
const PLANNED: &str = "#planned";

/// The id of the plan record of a DateTimer `trigger` firing at `at`.
fn planned_id(trigger: &str, at: DateTime<Utc>) -> String {
    format!("{}{PLANNED}", record_id(trigger, at))
}

/// The id of the fire record of `trigger`'s tick planned at `at`.
fn record_id(trigger: &str, at: DateTime<Utc>) -> String {
    format!("{trigger}@{}", at.timestamp_millis())
}

/// When the last recorded fire of the timer `trigger` (its ref) was planned.
pub async fn last_fire(ctx: &Ctx, trigger: &str) -> Result<Option<DateTime<Utc>>, ServiceError> {
    let q = Query::all()
        .eq("trigger", trigger)
        .sort("scheduled_at", true)
        .page(0, Some(1));
    let docs = ctx.store.find(Collection::TimerFires, &q).await?;
    Ok(docs
        .first()
        .and_then(|d| d.get("scheduled_at"))
        .and_then(Value::as_i64)
        .and_then(DateTime::<Utc>::from_timestamp_millis))
}

/// Fires one tick unless it was fired already: creates its record, and only then dispatches.
async fn fire_once(ctx: &Ctx, trigger: &Trigger, scheduled_at: DateTime<Utc>, payload: Value) {
    let key = trigger_key(trigger);
    let record = json!({
        "id": record_id(&key, scheduled_at),
        "trigger": key,
        "scheduled_at": scheduled_at.timestamp_millis(),
        "fired_at": super::now_iso(),
        "node": ctx.node_id,
    });
    match ctx.store.insert_new(Collection::TimerFires, record).await {
        Ok(true) => {}
        Ok(false) => {
            tracing::debug!(trigger = %key, planned = %scheduled_at, "tick already fired by another engine");
            return;
        }
        Err(e) => {
            tracing::warn!(trigger = %key, planned = %scheduled_at, error = %e, "tick not fired: cannot record it");
            return;
        }
    }
    let tag = trace_tag(trigger);
    if let Err(e) = dispatch::dispatch(
        ctx,
        &trigger.trigger_ref,
        payload,
        Some(dispatch::TraceTag::Join(tag)),
    )
    .await
    {
        tracing::warn!(trigger = %trigger.trigger_ref, error = %e, "timer dispatch failed");
    }
    if let Err(e) = prune(ctx, &key).await {
        tracing::debug!(trigger = %key, error = %e, "old fire records not pruned");
    }
}

/// Deletes the fire records of a timer but the latest [`RECORDS_KEPT`].
async fn prune(ctx: &Ctx, trigger: &str) -> Result<(), ServiceError> {
    let q = Query::all()
        .eq("trigger", trigger)
        .sort("scheduled_at", true);
    let old: Vec<Write> = ctx
        .store
        .find(Collection::TimerFires, &q)
        .await?
        .iter()
        .skip(RECORDS_KEPT)
        .filter_map(|d| d.get("id").and_then(Value::as_str))
        .map(|id| Write::Delete {
            collection: Collection::TimerFires,
            id: id.to_string(),
        })
        .collect();
    if !old.is_empty() {
        ctx.store.apply(old).await?;
    }
    Ok(())
}
