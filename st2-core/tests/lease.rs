//! Named leases over the embedded store: one holder at a time, renewal, takeover after expiry
//! with a growing fencing token, release, and a singleton's failover between two holders.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use st2_core::services::lease::{Lease, Singleton};
use st2_core::store::{EmbeddedStore, Store};
use tokio_util::sync::CancellationToken;

fn store() -> Arc<dyn Store> {
    Arc::new(EmbeddedStore::open_in_memory().expect("store"))
}

#[tokio::test]
async fn one_holder_renewal_takeover_and_release() {
    let s = store();
    let ttl = Duration::from_millis(300);
    let a = Lease::new(s.clone(), "timersengine", "node-a", ttl);
    let b = Lease::new(s.clone(), "timersengine", "node-b", ttl);

    assert_eq!(
        a.try_acquire().await.expect("store"),
        Some(1),
        "free lease is taken"
    );
    assert_eq!(
        b.try_acquire().await.expect("store"),
        None,
        "held lease is refused"
    );
    assert_eq!(
        a.try_acquire().await.expect("store"),
        Some(1),
        "holder renews, same epoch"
    );
    let st = a.state().await.expect("store").expect("stored");
    assert_eq!(st.holder, "node-a");
    assert_eq!(st.version, 2);

    tokio::time::sleep(ttl + Duration::from_millis(50)).await;
    assert_eq!(
        b.try_acquire().await.expect("store"),
        Some(2),
        "expired lease taken over, epoch grows"
    );
    assert_eq!(
        a.try_acquire().await.expect("store"),
        None,
        "old holder lost it"
    );
    assert!(
        !a.release().await.expect("store"),
        "non-holder cannot release"
    );
    assert!(b.release().await.expect("store"), "holder releases");
    assert_eq!(
        a.try_acquire().await.expect("store"),
        Some(3),
        "released lease is free at once"
    );
}

#[tokio::test]
async fn racing_holders_exactly_one_wins() {
    let s = store();
    let mut tasks = Vec::new();
    for i in 0..12 {
        let l = Lease::new(s.clone(), "gc", format!("node-{i}"), Duration::from_secs(5));
        tasks.push(tokio::spawn(async move {
            l.try_acquire().await.expect("store")
        }));
    }
    let mut won = 0;
    for t in tasks {
        if t.await.expect("store").is_some() {
            won += 1;
        }
    }
    assert_eq!(won, 1);
}

/// Counts the work's active instances and the most that were ever active at once.
#[derive(Default)]
struct Activity {
    active: AtomicUsize,
    max: AtomicUsize,
    runs: AtomicUsize,
}

type Work = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

fn work(act: Arc<Activity>) -> impl FnMut(CancellationToken) -> Work {
    move |stop: CancellationToken| {
        let act = act.clone();
        Box::pin(async move {
            let n = act.active.fetch_add(1, Ordering::SeqCst) + 1;
            act.max.fetch_max(n, Ordering::SeqCst);
            act.runs.fetch_add(1, Ordering::SeqCst);
            stop.cancelled().await;
            act.active.fetch_sub(1, Ordering::SeqCst);
        })
    }
}

#[tokio::test]
async fn singleton_fails_over_when_the_holder_dies_or_stops() {
    let s = store();
    let ttl = Duration::from_millis(400);
    let act = Arc::new(Activity::default());
    // node-a runs on a runtime of its own, so that it can die with all its tasks.
    let rt_a = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    rt_a.spawn(
        Singleton::new(Lease::new(s.clone(), "timers", "node-a", ttl))
            .run(CancellationToken::new(), work(act.clone())),
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    let stop_b = CancellationToken::new();
    let b = tokio::spawn(
        Singleton::new(Lease::new(s.clone(), "timers", "node-b", ttl))
            .run(stop_b.clone(), work(act.clone())),
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(act.active.load(Ordering::SeqCst), 1, "one active");
    assert_eq!(act.runs.load(Ordering::SeqCst), 1, "the standby waits");
    let holder = Lease::new(s.clone(), "timers", "probe", ttl)
        .state()
        .await
        .expect("ok")
        .expect("ok")
        .holder;
    assert_eq!(holder, "node-a");

    // node-a dies without releasing: its renewals stop, its work with it.
    rt_a.shutdown_background();
    act.active.fetch_sub(1, Ordering::SeqCst);
    let mut waited = Duration::ZERO;
    while act.runs.load(Ordering::SeqCst) < 2 {
        assert!(waited < Duration::from_secs(5), "standby did not take over");
        tokio::time::sleep(Duration::from_millis(20)).await;
        waited += Duration::from_millis(20);
    }
    let st = Lease::new(s.clone(), "timers", "probe", ttl)
        .state()
        .await
        .expect("ok")
        .expect("ok");
    assert_eq!(st.holder, "node-b");
    assert_eq!(st.epoch, 2);

    // node-b shuts down cleanly: it releases, so a new standby takes over at once.
    let stop_c = CancellationToken::new();
    let c = tokio::spawn(
        Singleton::new(Lease::new(s.clone(), "timers", "node-c", ttl))
            .run(stop_c.clone(), work(act.clone())),
    );
    stop_b.cancel();
    b.await.expect("store");
    let mut waited = Duration::ZERO;
    while act.runs.load(Ordering::SeqCst) < 3 {
        assert!(
            waited < Duration::from_secs(2),
            "standby did not take over after release"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
        waited += Duration::from_millis(20);
    }
    assert_eq!(
        act.max.load(Ordering::SeqCst),
        1,
        "never two active at once"
    );
    stop_c.cancel();
    c.await.expect("store");
    assert_eq!(act.active.load(Ordering::SeqCst), 0);
}
