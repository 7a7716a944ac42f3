//! [`TimerEngine`]: runs a [`TimerSchedule`] against a [`Clock`] and reports each fire.
//!
//! One task sleeps until the earliest planned fire; adding or removing a timer wakes it to
//! re-plan, so nothing restarts. Fires are handed to the caller's callback (which turns them
//! into trigger instances; the dispatch is not this module's business).

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use chrono::{DateTime, TimeDelta, Utc};
use chrono_tz::Tz;
use serde_json::Value;
use tokio::sync::Notify;

use super::schedule::{
    resume_after, trigger_key, Resume, TimerFire, TimerSchedule, DEFAULT_MISFIRE_GRACE,
};
use super::{Clock, TimerError, TimerSpec};
use crate::model::Trigger;

/// Engine settings (StackStorm's `[timersengine]` section).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TimerEngineConfig {
    /// Timezone of cron and date timers that name none (`timersengine.local_timezone`).
    pub local_timezone: Tz,
    /// How late a fire may be and still run (APScheduler's `misfire_grace_time`, 1 s).
    pub misfire_grace: TimeDelta,
}

impl Default for TimerEngineConfig {
    fn default() -> Self {
        TimerEngineConfig {
            local_timezone: Tz::UTC,
            misfire_grace: DEFAULT_MISFIRE_GRACE,
        }
    }
}

struct Inner {
    clock: Arc<dyn Clock>,
    config: TimerEngineConfig,
    schedule: Mutex<TimerSchedule>,
    /// Wakes the run loop when the schedule changes.
    changed: Notify,
    running: AtomicBool,
}

/// The timers engine: a set of timer triggers, changeable at run time, and the loop that fires
/// them. Cheap to clone; clones share everything.
#[derive(Clone)]
pub struct TimerEngine {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for TimerEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TimerEngine")
            .field("config", &self.inner.config)
            .field("timers", &self.keys())
            .finish()
    }
}

/// Clears the running flag when `run` returns or is cancelled.
struct RunningGuard<'a>(&'a AtomicBool);

impl Drop for RunningGuard<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

impl TimerEngine {
    /// An engine with the default settings.
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self::with_config(clock, TimerEngineConfig::default())
    }

    /// An engine with the given settings.
    pub fn with_config(clock: Arc<dyn Clock>, config: TimerEngineConfig) -> Self {
        TimerEngine {
            inner: Arc::new(Inner {
                clock,
                config,
                schedule: Mutex::new(TimerSchedule::new().with_misfire_grace(config.misfire_grace)),
                changed: Notify::new(),
                running: AtomicBool::new(false),
            }),
        }
    }

    fn schedule(&self) -> MutexGuard<'_, TimerSchedule> {
        self.inner
            .schedule
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds (or replaces: StackStorm's update is remove + add) a timer trigger, parsing its
    /// `type` and `parameters`. Returns the first fire time; `None` for a DateTimer in the past,
    /// which is not kept.
    pub fn add(&self, trigger: Trigger) -> Result<Option<DateTime<Utc>>, TimerError> {
        let spec = TimerSpec::from_trigger_in(
            &trigger.trigger_type,
            &trigger.parameters,
            self.inner.config.local_timezone,
        )?;
        Ok(self.add_spec(trigger, spec))
    }

    /// The schedule of a timer trigger, as [`TimerEngine::add`] parses it (naive dates and cron
    /// in the engine's local time zone).
    pub fn spec(&self, trigger: &Trigger) -> Result<TimerSpec, TimerError> {
        TimerSpec::from_trigger_in(
            &trigger.trigger_type,
            &trigger.parameters,
            self.inner.config.local_timezone,
        )
    }

    /// Adds (or replaces) a trigger with an already parsed schedule.
    pub fn add_spec(&self, trigger: Trigger, spec: TimerSpec) -> Option<DateTime<Utc>> {
        let now = self.inner.clock.now();
        let first = self.schedule().add(trigger, spec, now);
        self.inner.changed.notify_waiters();
        first
    }

    /// Adds a timer whose last fire (by any engine) was planned at `last`, keeping its planned
    /// times (see [`resume_after`]); returns the missed run to fire now, if any, and the next
    /// planned one. A timer with no next run is not kept.
    pub fn resume(
        &self,
        trigger: Trigger,
        last: DateTime<Utc>,
        catch_up_window: TimeDelta,
    ) -> Result<Resume, TimerError> {
        let spec = TimerSpec::from_trigger_in(
            &trigger.trigger_type,
            &trigger.parameters,
            self.inner.config.local_timezone,
        )?;
        let now = self.inner.clock.now();
        let r = resume_after(&spec, last, now, catch_up_window);
        {
            let mut schedule = self.schedule();
            match r.next {
                Some(next) => schedule.add_at(trigger, spec, next),
                None => {
                    schedule.remove(&trigger_key(&trigger));
                }
            }
        }
        self.inner.changed.notify_waiters();
        Ok(r)
    }

    /// Removes the timer kept under `key` (the trigger ref); true if it existed.
    pub fn remove(&self, key: &str) -> bool {
        let removed = self.schedule().remove(key);
        self.inner.changed.notify_waiters();
        removed
    }

    /// Removes a trigger's timer; true if it existed.
    pub fn remove_trigger(&self, trigger: &Trigger) -> bool {
        self.remove(&trigger_key(trigger))
    }

    /// Keys of the planned timers, sorted.
    pub fn keys(&self) -> Vec<String> {
        self.schedule().keys()
    }

    /// When the timer under `key` fires next.
    pub fn next_fire_of(&self, key: &str) -> Option<DateTime<Utc>> {
        self.schedule().next_fire_of(key)
    }

    /// Runs until `shutdown` completes, calling `on_fire(trigger, payload)` for every fire, in
    /// planned order. At most one `run` at a time per engine ([`TimerError::AlreadyRunning`]).
    pub async fn run<F, S>(&self, on_fire: F, shutdown: S) -> Result<(), TimerError>
    where
        F: Fn(Trigger, Value) + Send + Sync,
        S: Future<Output = ()> + Send,
    {
        self.run_fires(|fire| on_fire(fire.trigger, fire.payload), shutdown)
            .await
    }

    /// [`run`](Self::run), handing over each whole [`TimerFire`] (with its planned time).
    pub async fn run_fires<F, S>(&self, on_fire: F, shutdown: S) -> Result<(), TimerError>
    where
        F: Fn(TimerFire) + Send + Sync,
        S: Future<Output = ()> + Send,
    {
        if self.inner.running.swap(true, Ordering::AcqRel) {
            return Err(TimerError::AlreadyRunning);
        }
        let _running = RunningGuard(&self.inner.running);
        tokio::pin!(shutdown);
        tracing::info!(timers = self.keys().len(), "timer engine started");
        loop {
            // Registered before the schedule is read, so a change made from here on wakes us.
            let changed = self.inner.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();

            let now = self.inner.clock.now();
            let (fires, wake) = {
                let mut schedule = self.schedule();
                (schedule.due(now), schedule.next_wakeup())
            };
            for fire in fires {
                tracing::debug!(trigger = %fire.key, planned = %fire.scheduled_at, "timer fired");
                on_fire(fire);
            }

            let clock = self.inner.clock.clone();
            let sleep = async move {
                match wake {
                    Some(t) => clock.sleep_until(t).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = &mut shutdown => break,
                _ = &mut changed => {}
                _ = sleep => {}
            }
        }
        tracing::info!("timer engine stopped");
        Ok(())
    }
}
