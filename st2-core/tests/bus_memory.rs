//! The in-process bus: the conformance suite on both tokio schedulers, and what only the memory
//! backend promises (exact drop counts, atomic fan-out past a full queue, queue statistics).

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use st2_core::bus::{conformance, names, Bus, MemoryBus, SubscribeSpec};

fn memory() -> Arc<dyn Bus> {
    Arc::new(MemoryBus::new())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conformance_multi_thread() {
    conformance::run_all(|| async { memory() }).await;
}

#[tokio::test]
async fn conformance_current_thread() {
    conformance::run_all(|| async { memory() }).await;
}

#[tokio::test]
async fn st2_topology_declares_and_routes() {
    let bus = MemoryBus::new();
    bus.declare_st2_exchanges()
        .await
        .expect("declare exchanges");
    let mut work = bus
        .subscribe(SubscribeSpec::st2(&names::ST2_QUEUES[2]))
        .await
        .expect("actionrunner.work");
    assert_eq!(work.queue(), names::ACTIONRUNNER_WORK);
    bus.publish_json(names::LIVEACTION_STATUS, "requested", &json!({"id": "a"}))
        .await
        .expect("pub");
    bus.publish_json(names::LIVEACTION_STATUS, "scheduled", &json!({"id": "b"}))
        .await
        .expect("pub");
    let d = tokio::time::timeout(Duration::from_secs(5), work.next())
        .await
        .expect("in time")
        .expect("open")
        .expect("ok");
    assert_eq!(d.message().value().expect("json"), json!({"id": "b"}));
    assert_eq!(d.routing_key(), "scheduled");
    d.ack().await.expect("ack");
    let stats = bus.stats(names::ACTIONRUNNER_WORK).expect("queue");
    assert_eq!((stats.ready, stats.unacked), (0, 0));
}

/// A message routed to a full work queue and a broadcast queue reaches neither until the work
/// queue has room: the memory bus enqueues a publish to all its queues or none.
#[tokio::test]
async fn fan_out_waits_for_every_queue() {
    let bus = Arc::new(MemoryBus::new());
    bus.declare_exchange("x").await.expect("declare");
    let work = SubscribeSpec::work("w", "x", ["#"]).with_capacity(1);
    drop(bus.subscribe(work.clone()).await.expect("declare w"));
    let mut watcher = bus
        .subscribe(SubscribeSpec::broadcast("b", "x", ["#"]))
        .await
        .expect("b");
    let b = watcher.queue().to_string();

    bus.publish_json("x", "k", &json!(0))
        .await
        .expect("fills w");
    let bus2 = bus.clone();
    let blocked = tokio::spawn(async move { bus2.publish_json("x", "k", &json!(1)).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!blocked.is_finished(), "publish waits for room in w");
    assert_eq!(
        bus.stats(&b).map(|s| s.ready),
        Some(1),
        "b did not get the waiting message"
    );

    let mut w = bus.subscribe(work).await.expect("consume w");
    let first = w.next().await.expect("open").expect("ok");
    first.ack().await.expect("ack");
    tokio::time::timeout(Duration::from_secs(5), blocked)
        .await
        .expect("publish resumes")
        .expect("task")
        .expect("publish ok");
    for i in 0..2 {
        let d = watcher.next().await.expect("open").expect("ok");
        assert_eq!(d.message().value().expect("json"), json!(i));
        d.ack().await.expect("ack");
    }
}

#[tokio::test]
async fn broadcast_drop_count_is_exact() {
    let bus = MemoryBus::new();
    bus.declare_exchange("x").await.expect("declare");
    let spec = SubscribeSpec::broadcast("slow", "x", ["#"])
        .with_capacity(4)
        .with_prefetch(1);
    let mut slow = bus.subscribe(spec).await.expect("sub");
    for i in 0..10 {
        bus.publish_json("x", "k", &json!(i))
            .await
            .expect("never blocks");
    }
    assert_eq!(slow.dropped(), Some(6));
    for i in 6..10 {
        let d = slow.next().await.expect("open").expect("ok");
        assert_eq!(
            d.message().value().expect("json"),
            json!(i),
            "the newest are kept"
        );
        d.ack().await.expect("ack");
    }
}

/// Consumers that abandon `next()` at random moments while publishers are blocked on a tiny
/// queue: every message still arrives exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cancellation_storm_loses_nothing() {
    let bus = Arc::new(MemoryBus::new());
    bus.declare_exchange("x").await.expect("declare");
    let spec = SubscribeSpec::work("q", "x", ["#"])
        .with_capacity(2)
        .with_prefetch(2)
        .with_max_deliveries(None);
    const N: u64 = 2000;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<u64>(16);
    let mut consumers = Vec::new();
    for c in 0..3u64 {
        let mut sub = bus.subscribe(spec.clone()).await.expect("sub");
        let tx = tx.clone();
        consumers.push(tokio::spawn(async move {
            let mut tick = 0u64;
            loop {
                tick += 1;
                let patience = Duration::from_micros(50 * ((tick + c) % 7));
                let Ok(next) = tokio::time::timeout(patience, sub.next()).await else {
                    continue;
                };
                let Some(Ok(d)) = next else { break };
                let n: u64 = d.decode().expect("number");
                if (tick + c).is_multiple_of(5) {
                    drop(d); // requeue now and then
                    continue;
                }
                d.ack().await.expect("ack");
                if tx.send(n).await.is_err() {
                    break;
                }
            }
        }));
    }
    drop(tx);
    let publisher = {
        let bus = bus.clone();
        tokio::spawn(async move {
            for i in 0..N {
                bus.publish_json("x", "k", &json!(i))
                    .await
                    .expect("publish");
            }
        })
    };
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..N {
        let n = tokio::time::timeout(Duration::from_secs(20), rx.recv())
            .await
            .expect("no stall")
            .expect("consumers alive");
        assert!(seen.insert(n), "{n} twice");
    }
    publisher.await.expect("publisher");
    assert_eq!(seen.len() as u64, N);
    for c in consumers {
        c.abort();
        let _ = c.await;
    }
    let stats = bus.stats("q").expect("queue");
    assert_eq!((stats.ready, stats.unacked), (0, 0), "{stats:?}");
}
