//! [`TimerSchedule`]: the timer engine's state machine, pure (time comes in as an argument).
//!
//! | event | effect |
//! |---|---|
//! | `add(trigger, spec, now)` | job planned at `spec.next_fire(now)` (replaces a job with the same key; a past DateTimer is not planned) |
//! | `add_at(trigger, spec, next)` | job planned at `next` (a timer resumed after a takeover, see [`resume_after`]) |
//! | `remove(key)` | job dropped |
//! | `due(now)` | every job planned at or before `now` fires once (missed runs coalesced into the latest), unless that latest run is more than the misfire grace time late (then it is skipped); its next run is planned from the *planned* time, not from `now`; a DateTimer that fired is dropped |
//!
//! This is APScheduler's default job handling as StackStorm's timers engine uses it:
//! `coalesce=True`, `misfire_grace_time=1` second, jobs kept in memory only (fires missed while
//! the engine is stopped are not replayed).

use std::collections::BTreeMap;

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::Value;

use super::{timer_payload, TimerSpec};
use crate::model::Trigger;

/// APScheduler's default `misfire_grace_time`.
pub const DEFAULT_MISFIRE_GRACE: TimeDelta = TimeDelta::seconds(1);

/// Most runs walked through when coalescing cron runs missed during a long pause.
const MAX_COALESCED: usize = 100_000;

/// One fire of a timer.
#[derive(Debug, Clone, PartialEq)]
pub struct TimerFire {
    /// The job key (see [`trigger_key`]).
    pub key: String,
    /// The timer trigger.
    pub trigger: Trigger,
    /// When the fire was planned.
    pub scheduled_at: DateTime<Utc>,
    /// When it was dispatched (`executed_at` in the payload).
    pub executed_at: DateTime<Utc>,
    /// The trigger instance payload: `{executed_at, schedule}`.
    pub payload: Value,
}

#[derive(Debug, Clone)]
struct Job {
    trigger: Trigger,
    spec: TimerSpec,
    next: DateTime<Utc>,
}

/// The planned timers, keyed by trigger ref.
#[derive(Debug, Clone)]
pub struct TimerSchedule {
    jobs: BTreeMap<String, Job>,
    misfire_grace: TimeDelta,
}

impl Default for TimerSchedule {
    fn default() -> Self {
        Self::new()
    }
}

/// The key a trigger's job is kept under: its ref (`pack.name`), built from pack and name when
/// the ref field is empty.
pub fn trigger_key(trigger: &Trigger) -> String {
    if trigger.trigger_ref.is_empty() {
        format!("{}.{}", trigger.pack, trigger.name)
    } else {
        trigger.trigger_ref.clone()
    }
}

impl TimerSchedule {
    /// An empty schedule with APScheduler's one-second misfire grace time.
    pub fn new() -> Self {
        TimerSchedule {
            jobs: BTreeMap::new(),
            misfire_grace: DEFAULT_MISFIRE_GRACE,
        }
    }

    /// Sets how late a fire may be and still run.
    pub fn with_misfire_grace(mut self, grace: TimeDelta) -> Self {
        self.misfire_grace = grace;
        self
    }

    /// Plans `trigger` (replacing any job with the same key); returns its first fire time, or
    /// `None` when it will never fire (a DateTimer in the past, which is then not kept).
    pub fn add(
        &mut self,
        trigger: Trigger,
        spec: TimerSpec,
        now: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        let key = trigger_key(&trigger);
        self.jobs.remove(&key);
        let Some(next) = spec.next_fire(now) else {
            tracing::warn!(trigger = %key, "not scheduling expired timer");
            return None;
        };
        self.jobs.insert(
            key,
            Job {
                trigger,
                spec,
                next,
            },
        );
        Some(next)
    }

    /// Plans `trigger` with its next fire at `next` (replacing any job with the same key):
    /// a timer resumed after a takeover keeps the previous engine's planned times.
    pub fn add_at(&mut self, trigger: Trigger, spec: TimerSpec, next: DateTime<Utc>) {
        let key = trigger_key(&trigger);
        self.jobs.insert(
            key,
            Job {
                trigger,
                spec,
                next,
            },
        );
    }

    /// Drops a job; true if it existed.
    pub fn remove(&mut self, key: &str) -> bool {
        self.jobs.remove(key).is_some()
    }

    /// Whether a job is planned under `key`.
    pub fn contains(&self, key: &str) -> bool {
        self.jobs.contains_key(key)
    }

    /// Number of planned jobs.
    pub fn len(&self) -> usize {
        self.jobs.len()
    }

    /// True when nothing is planned.
    pub fn is_empty(&self) -> bool {
        self.jobs.is_empty()
    }

    /// Keys of the planned jobs, sorted.
    pub fn keys(&self) -> Vec<String> {
        self.jobs.keys().cloned().collect()
    }

    /// The next planned fire of one job.
    pub fn next_fire_of(&self, key: &str) -> Option<DateTime<Utc>> {
        self.jobs.get(key).map(|j| j.next)
    }

    /// The earliest planned fire of any job.
    pub fn next_wakeup(&self) -> Option<DateTime<Utc>> {
        self.jobs.values().map(|j| j.next).min()
    }

    /// Fires every job due at `now`, in planned order (ties by key), and plans their next runs.
    pub fn due(&mut self, now: DateTime<Utc>) -> Vec<TimerFire> {
        let mut fires = Vec::new();
        let mut finished = Vec::new();
        for (key, job) in self.jobs.iter_mut() {
            if job.next > now {
                continue;
            }
            let (latest, next) = latest_due(&job.spec, job.next, now);
            if now - latest <= self.misfire_grace {
                fires.push(TimerFire {
                    key: key.clone(),
                    trigger: job.trigger.clone(),
                    scheduled_at: latest,
                    executed_at: now,
                    payload: timer_payload(&job.trigger, now),
                });
            } else {
                tracing::warn!(trigger = %key, planned = %latest, late_by = %(now - latest),
                    "timer run missed (past the misfire grace time); skipped");
            }
            match next {
                Some(n) => job.next = n,
                None => finished.push(key.clone()),
            }
        }
        for key in finished {
            self.jobs.remove(&key);
        }
        fires.sort_by(|a, b| {
            a.scheduled_at
                .cmp(&b.scheduled_at)
                .then_with(|| a.key.cmp(&b.key))
        });
        fires
    }
}

/// Where a timer resumes when an engine takes it over from one that recorded its last fire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resume {
    /// The one planned run missed since the last fire that is still to be fired now: the
    /// latest run at or before `now`, if it is later than the last fire and at most the
    /// catch-up window late. Earlier missed runs are coalesced into it.
    pub catch_up: Option<DateTime<Utc>>,
    /// The next planned run after `now` (`None`: the timer is done, e.g. a DateTimer that
    /// fired).
    pub next: Option<DateTime<Utc>>,
}

/// Resumes a timer whose last recorded fire was planned at `last`: interval timers keep the
/// phase of that fire (`last + k·interval`), cron timers their own calendar, and a DateTimer
/// that fired is done. Pure.
pub fn resume_after(
    spec: &TimerSpec,
    last: DateTime<Utc>,
    now: DateTime<Utc>,
    window: TimeDelta,
) -> Resume {
    if let TimerSpec::Date(_) = spec {
        return Resume {
            catch_up: None,
            next: None,
        };
    }
    let Some(first) = spec.next_fire(last) else {
        return Resume {
            catch_up: None,
            next: None,
        };
    };
    if first > now {
        return Resume {
            catch_up: None,
            next: Some(first),
        };
    }
    let (latest, next) = latest_due(spec, first, now);
    Resume {
        catch_up: (now - latest <= window).then_some(latest),
        next,
    }
}

/// The latest planned run at or before `now` (starting from the due run `first`), and the run
/// after it (strictly after `now`).
fn latest_due(
    spec: &TimerSpec,
    first: DateTime<Utc>,
    now: DateTime<Utc>,
) -> (DateTime<Utc>, Option<DateTime<Utc>>) {
    if let TimerSpec::Interval(i) = spec {
        // Arithmetic instead of a walk, so a long pause with a 1 ms timer costs nothing.
        let every = i.every.num_nanoseconds().unwrap_or(i64::MAX).max(1);
        let late = (now - first).num_nanoseconds().unwrap_or(i64::MAX);
        let skipped = late / every;
        let latest = first + TimeDelta::nanoseconds(skipped.saturating_mul(every));
        return (latest, spec.next_fire(latest));
    }
    let mut latest = first;
    let mut next = spec.next_fire(latest);
    for _ in 0..MAX_COALESCED {
        match next {
            Some(t) if t <= now => {
                latest = t;
                next = spec.next_fire(t);
            }
            _ => return (latest, next),
        }
    }
    (latest, spec.next_fire(now))
}
