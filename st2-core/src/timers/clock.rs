//! Time for the timer engine: [`SystemClock`] in production, [`ManualClock`] in tests, so
//! tests move time by hand instead of sleeping.

use std::sync::Arc;
use std::time::Duration as StdDuration;

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};
use tokio::sync::watch;

/// Where the timer engine reads the time and waits.
#[async_trait]
pub trait Clock: Send + Sync + 'static {
    /// The current time.
    fn now(&self) -> DateTime<Utc>;

    /// Completes once [`now`](Self::now) has reached `deadline` (at once if it already has).
    async fn sleep_until(&self, deadline: DateTime<Utc>);
}

/// The system clock. Sleeps in chunks of at most a minute and re-reads the wall clock after
/// each, so a suspended machine or a clock step does not leave a timer sleeping for hours.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

#[async_trait]
impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    async fn sleep_until(&self, deadline: DateTime<Utc>) {
        const MAX_CHUNK: StdDuration = StdDuration::from_secs(60);
        loop {
            let left = deadline - Utc::now();
            if left <= TimeDelta::zero() {
                return;
            }
            let left = left.to_std().unwrap_or(StdDuration::ZERO);
            tokio::time::sleep(left.min(MAX_CHUNK)).await;
        }
    }
}

/// A clock that only moves when told to ([`set`](Self::set), [`advance`](Self::advance)).
/// Sleepers wake as soon as the time they wait for is reached. Cheap to clone (shared).
#[derive(Debug, Clone)]
pub struct ManualClock {
    now: Arc<watch::Sender<DateTime<Utc>>>,
    /// How many `sleep_until` calls are waiting, so tests can tell the engine is asleep.
    sleepers: Arc<watch::Sender<usize>>,
}

impl ManualClock {
    /// A clock stopped at `start`.
    pub fn new(start: DateTime<Utc>) -> Self {
        ManualClock {
            now: Arc::new(watch::Sender::new(start)),
            sleepers: Arc::new(watch::Sender::new(0)),
        }
    }

    /// Moves the clock to `t` (backwards too) and wakes the sleepers whose deadline has come.
    pub fn set(&self, t: DateTime<Utc>) {
        self.now.send_replace(t);
    }

    /// Moves the clock forward by `d`.
    pub fn advance(&self, d: TimeDelta) {
        self.now.send_modify(|t| *t += d);
    }

    /// How many sleepers are waiting now.
    pub fn sleepers(&self) -> usize {
        *self.sleepers.borrow()
    }

    /// Waits until at least `n` sleepers are waiting (the engine has gone to sleep).
    pub async fn wait_for_sleepers(&self, n: usize) {
        let mut rx = self.sleepers.subscribe();
        // The sender lives as long as `self`, so this cannot fail while we wait.
        let _ = rx.wait_for(|count| *count >= n).await;
    }
}

/// Decrements the sleeper count when a sleep ends or is dropped.
struct SleeperGuard(Arc<watch::Sender<usize>>);

impl Drop for SleeperGuard {
    fn drop(&mut self) {
        self.0.send_modify(|c| *c = c.saturating_sub(1));
    }
}

#[async_trait]
impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.borrow()
    }

    async fn sleep_until(&self, deadline: DateTime<Utc>) {
        let mut rx = self.now.subscribe();
        if *rx.borrow_and_update() >= deadline {
            return;
        }
        self.sleepers.send_modify(|c| *c += 1);
        let _guard = SleeperGuard(self.sleepers.clone());
        let _ = rx.wait_for(|now| *now >= deadline).await;
    }
}
