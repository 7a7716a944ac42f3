//! Singleton roles over one store: of two timers engines exactly one fires (a store lease), and
//! when the active one stops the standby takes over and the timer keeps firing.

use std::time::{Duration, Instant};

use st2_core::config::{Config, GarbageCollectorConfig};
use st2_core::model::TriggerInstance;
use st2_core::platform::Platform;
use st2_core::services::lease::Lease;
use st2_core::store::{repo, Query};
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
