//! Singleton roles over one store: of two timers engines exactly one fires (a store lease), and
//! when the active one stops (or is cut off, as if it crashed) the standby takes over and the
//! timer keeps firing, with no tick missed and none fired twice.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use st2_core::config::{Config, GarbageCollectorConfig};
use st2_core::model::{JsonMap, TriggerInstance};
use st2_core::platform::Platform;
use st2_core::services::lease::Lease;
use st2_core::store::{repo, Collection, Query, Store, StoreError, Write};
use st2_tests::bundled_packs;
use tokio_util::sync::CancellationToken;

const RULE: &str = "name: every_second\nenabled: true\ntrigger:\n  type: core.st2.IntervalTimer\n  parameters:\n    unit: seconds\n    delta: 1\naction:\n  ref: core.noop\n";

async fn timer_fires(p: &Platform) -> usize {
    // Timer fires carry `executed_at` (action triggers of the executions do not).
    repo::<TriggerInstance>(&*p.ctx.store)
        .find(&Query::all())
        .await
        .expect("query")
        .iter()
        .filter(|ti| ti.payload.get("executed_at").is_some())
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_timers_engine_active_and_the_standby_takes_over() {
    let dir = tempfile::tempdir().expect("tmp");
    let pack = dir.path().join("packs").join("lease_timer");
    std::fs::create_dir_all(pack.join("rules")).expect("mkdir");
    std::fs::write(
        pack.join("pack.yaml"),
        "ref: lease_timer\nname: lease_timer\ndescription: t\nauthor: t\nversion: 0.1.0\n",
    )
    .expect("write");
    std::fs::write(pack.join("rules").join("every.yaml"), RULE).expect("write");
    let mut cfg = Config::default();
    cfg.system.data_dir = dir.path().to_path_buf();
    cfg.content.system_packs_base_path = Some(bundled_packs());
    // Everything but the timers engine; then two timers engines as if in two processes.
    let roles: Vec<String> = ["rulesengine", "scheduler", "actionrunner", "notifier"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let base = Platform::start(&cfg, &roles).await.expect("platform");
    let engine = |node: &str| {
        let mut ctx = base.ctx.clone();
        ctx.node_id = node.into();
        ctx.shutdown = CancellationToken::new();
        ctx
    };
    let (ctx_a, ctx_b) = (engine("node-a"), engine("node-b"));
    let gc = GarbageCollectorConfig::default();
    let timers = vec!["timersengine".to_string()];
    let _a = Platform::start_roles(ctx_a.clone(), &timers, &gc)
        .await
        .expect("a");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _b = Platform::start_roles(ctx_b.clone(), &timers, &gc)
        .await
        .expect("b");
    let lease = Lease::new(
        base.ctx.store.clone(),
        "timersengine",
        "probe",
        Duration::from_secs(3),
    );
    assert_eq!(
        lease.state().await.expect("state").expect("taken").holder,
        "node-a"
    );

    // About one fire a second, not two: only the lease holder fires.
    let before = timer_fires(&base).await;
    tokio::time::sleep(Duration::from_millis(4200)).await;
    let fired = timer_fires(&base).await - before;
    assert!(
        (3..=5).contains(&fired),
        "one engine fires once a second: {fired} fires in 4.2 s"
    );

    // The active engine stops: the standby takes over and fires within 5 s.
    ctx_a.shutdown.cancel();
    let stopped = Instant::now();
    let at_stop = timer_fires(&base).await;
    loop {
        let st = lease.state().await.expect("state").expect("taken");
        if st.holder == "node-b" && timer_fires(&base).await > at_stop + 1 {
            assert_eq!(st.epoch, 2, "one change of holder");
            break;
        }
        assert!(
            stopped.elapsed() < Duration::from_secs(6),
            "the standby did not take over"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    ctx_b.shutdown.cancel();
    base.shutdown().await;
}

/// Fire records created (`timer_fires` inserts that won), as seen by the test's store wrappers:
/// `(node, planned ms, when)`.
type FireLog = Arc<Mutex<Vec<(String, i64, Instant)>>>;

/// One node's view of the shared store: fails every call while `down` (the node is cut off or
/// dead, as far as the store can tell), and logs the fire records it creates.
struct NodeStore {
    inner: Arc<dyn Store>,
    node: String,
    down: Arc<AtomicBool>,
    log: FireLog,
}

impl NodeStore {
    fn check(&self) -> Result<(), StoreError> {
        match self.down.load(Ordering::SeqCst) {
            true => Err(StoreError::Backend(format!("{} is cut off", self.node))),
            false => Ok(()),
        }
    }
}

#[async_trait::async_trait]
impl Store for NodeStore {
    async fn get(&self, c: Collection, id: &str) -> Result<Option<Value>, StoreError> {
        self.check()?;
        self.inner.get(c, id).await
    }
    async fn find(&self, c: Collection, q: &Query) -> Result<Vec<Value>, StoreError> {
        self.check()?;
        self.inner.find(c, q).await
    }
    async fn count(&self, c: Collection, q: &Query) -> Result<u64, StoreError> {
        self.check()?;
        self.inner.count(c, q).await
    }
    async fn apply(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        self.check()?;
        self.inner.apply(writes).await
    }
    async fn compare_and_set(
        &self,
        c: Collection,
        id: &str,
        field: &str,
        expected: &[Value],
        patch: JsonMap,
    ) -> Result<Option<Value>, StoreError> {
        self.check()?;
        self.inner
            .compare_and_set(c, id, field, expected, patch)
            .await
    }
    async fn append(&self, c: Collection, id: &str, values: JsonMap) -> Result<bool, StoreError> {
        self.check()?;
        self.inner.append(c, id, values).await
    }
    async fn insert_new(&self, c: Collection, doc: Value) -> Result<bool, StoreError> {
        self.check()?;
        let planned = doc.get("scheduled_at").and_then(Value::as_i64);
        let won = self.inner.insert_new(c, doc).await?;
        if let (true, Collection::TimerFires, Some(at)) = (won, c, planned) {
            self.log
                .lock()
                .expect("log")
                .push((self.node.clone(), at, Instant::now()));
        }
        Ok(won)
    }
}

/// A platform running every role but the timers engine, over a temp data dir holding the pack
/// `pack` with one rule file.
async fn platform_with_rule(
    pack_ref: &str,
    file: &str,
    rule: &str,
) -> (Platform, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tmp");
    let pack = dir.path().join("packs").join(pack_ref);
    std::fs::create_dir_all(pack.join("rules")).expect("mkdir");
    std::fs::write(
        pack.join("pack.yaml"),
        format!("ref: {pack_ref}\nname: {pack_ref}\ndescription: t\nauthor: t\nversion: 0.1.0\n"),
    )
    .expect("write");
    std::fs::write(pack.join("rules").join(file), rule).expect("write");
    let mut cfg = Config::default();
    cfg.system.data_dir = dir.path().to_path_buf();
    cfg.content.system_packs_base_path = Some(bundled_packs());
    let roles: Vec<String> = ["rulesengine", "scheduler", "actionrunner", "notifier"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let base = Platform::start(&cfg, &roles).await.expect("platform");
    (base, dir)
}

/// The context of another "process" `name` over `base`'s store, seen through a [`NodeStore`]
/// (cut off while `down`), with lease TTL `ttl`.
fn node_ctx(
    base: &Platform,
    name: &str,
    down: Arc<AtomicBool>,
    ttl: Duration,
    log: &FireLog,
) -> st2_core::services::Ctx {
    let mut ctx = base.ctx.clone();
    ctx.node_id = name.into();
    ctx.shutdown = CancellationToken::new();
    ctx.coordination.lease_ttl = ttl;
    ctx.store = Arc::new(NodeStore {
        inner: base.ctx.store.clone(),
        node: name.into(),
        down,
        log: log.clone(),
    });
    ctx
}

const RULE_2S: &str = "name: every_two\nenabled: true\ntrigger:\n  type: core.st2.IntervalTimer\n  parameters:\n    unit: seconds\n    delta: 2\naction:\n  ref: core.noop\n";

/// The timers leader is cut off from the store just before a tick (as if it crashed: its lease
/// is neither renewed nor released). The standby takes over after the lease TTL and fires the
/// tick missed meanwhile, once, keeping the leader's phase: the planned times of all fires
/// form an unbroken 2 s grid with no duplicate, and no two fires are further apart than the
/// interval plus the takeover time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crashed_timers_leader_no_missed_and_no_duplicate_tick() {
    const INTERVAL_MS: i64 = 2000;
    let ttl = Duration::from_millis(900);
    let (base, _dir) = platform_with_rule("crash_timer", "every.yaml", RULE_2S).await;
    let log: FireLog = Default::default();
    let node = |name: &str, down: Arc<AtomicBool>| node_ctx(&base, name, down, ttl, &log);
    let a_down = Arc::new(AtomicBool::new(false));
    let ctx_a = node("node-a", a_down.clone());
    let ctx_b = node("node-b", Arc::new(AtomicBool::new(false)));
    let gc = GarbageCollectorConfig::default();
    let timers = vec!["timersengine".to_string()];
    let _a = Platform::start_roles(ctx_a.clone(), &timers, &gc)
        .await
        .expect("a");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _b = Platform::start_roles(ctx_b.clone(), &timers, &gc)
        .await
        .expect("b");
    let lease = Lease::new(base.ctx.store.clone(), "timersengine", "probe", ttl);
    let fires = |log: &FireLog| log.lock().expect("log").clone();
    let wait_fires = |n: usize, what: &'static str| {
        let log = log.clone();
        async move {
            let t0 = Instant::now();
            while fires(&log).len() < n {
                assert!(
                    t0.elapsed() < Duration::from_secs(15),
                    "{what}: {:?}",
                    fires(&log)
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };

    // Two fires by the leader, then cut it off 200 ms before its third.
    wait_fires(2, "the leader fires").await;
    let before = fires(&log);
    assert!(before.iter().all(|f| f.0 == "node-a"), "{before:?}");
    let last = before.last().expect("fired").2;
    let cut_at = last + Duration::from_millis(INTERVAL_MS as u64 - 200);
    tokio::time::sleep_until(cut_at.into()).await;
    a_down.store(true, Ordering::SeqCst);

    // The standby takes over, catches the missed tick up, then fires on the grid.
    wait_fires(5, "the standby takes over").await;
    assert_eq!(
        lease.state().await.expect("state").expect("taken").holder,
        "node-b"
    );
    let all = fires(&log);
    let planned: Vec<i64> = all.iter().map(|f| f.1).collect();
    for w in planned.windows(2) {
        assert_eq!(
            w[1] - w[0],
            INTERVAL_MS,
            "planned ticks form an unbroken grid (none missed, none twice): {planned:?}"
        );
    }
    assert!(
        all[2..].iter().all(|f| f.0 == "node-b"),
        "the standby fired after the cut: {all:?}"
    );
    let bound =
        Duration::from_millis(INTERVAL_MS as u64) + ttl + ttl / 3 + Duration::from_millis(700);
    for w in all.windows(2) {
        let gap = w[1].2 - w[0].2;
        assert!(
            gap <= bound,
            "fires {gap:?} apart (bound {bound:?}): {all:?}"
        );
    }
    // Every recorded tick was dispatched exactly once.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let dispatched = timer_fires(&base).await;
    assert_eq!(
        dispatched,
        fires(&log).len(),
        "one trigger instance per recorded tick"
    );

    ctx_a.shutdown.cancel();
    ctx_b.shutdown.cancel();
    base.shutdown().await;
}

/// A DateTimer planned by the leader comes due while no engine is active (the leader is cut off
/// before the instant, the standby comes up after it): the new leader fires it once, late.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn date_timer_due_while_no_engine_is_active_fires_once_late() {
    let ttl = Duration::from_millis(600);
    let date = chrono::Utc::now() + chrono::TimeDelta::milliseconds(2500);
    let rule = format!(
        "name: once\nenabled: true\ntrigger:\n  type: core.st2.DateTimer\n  parameters:\n    \
         timezone: UTC\n    date: \"{}\"\naction:\n  ref: core.noop\n",
        date.format("%Y-%m-%d %H:%M:%S")
    );
    let (base, _dir) = platform_with_rule("date_timer", "once.yaml", &rule).await;
    let log: FireLog = Default::default();
    let node = |name: &str, down: Arc<AtomicBool>| node_ctx(&base, name, down, ttl, &log);
    let records = || async {
        base.ctx
            .store
            .find(Collection::TimerFires, &Query::all())
            .await
            .expect("fire records")
    };
    let a_down = Arc::new(AtomicBool::new(false));
    let ctx_a = node("node-a", a_down.clone());
    let gc = GarbageCollectorConfig::default();
    let timers = vec!["timersengine".to_string()];
    let _a = Platform::start_roles(ctx_a.clone(), &timers, &gc)
        .await
        .expect("a");
    // The leader plans the date, then is cut off before it.
    let t0 = Instant::now();
    while records().await.is_empty() {
        assert!(
            t0.elapsed() < Duration::from_secs(2),
            "the leader planned nothing"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    a_down.store(true, Ordering::SeqCst);
    let due = (date - chrono::Utc::now()).to_std().unwrap_or_default();
    tokio::time::sleep(due + Duration::from_millis(300)).await;
    assert_eq!(
        timer_fires(&base).await,
        0,
        "nobody fired while no engine was active"
    );

    let ctx_b = node("node-b", Arc::new(AtomicBool::new(false)));
    let _b = Platform::start_roles(ctx_b.clone(), &timers, &gc)
        .await
        .expect("b");
    let t0 = Instant::now();
    while timer_fires(&base).await == 0 {
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "the due date was not fired late"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(timer_fires(&base).await, 1, "fired once");
    let planned_ms = date.timestamp_millis() / 1000 * 1000;
    let fired: Vec<_> = log
        .lock()
        .expect("log")
        .iter()
        .filter(|f| f.0 == "node-b")
        .map(|f| f.1)
        .collect();
    assert!(
        fired.contains(&planned_ms),
        "node-b fired the planned instant: {fired:?}"
    );

    ctx_a.shutdown.cancel();
    ctx_b.shutdown.cancel();
    base.shutdown().await;
}
