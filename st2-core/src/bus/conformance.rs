//! The conformance suite every [`Bus`] backend must pass (in-process memory now, RabbitMQ later).
//!
//! Owns the behaviour the services rely on: routing by topic patterns, competing consumers and
//! broadcast, settlement (ack, nack, drop, a crashed consumer), prefetch, bounded queues with a
//! blocked publisher, dead letters, ordering, and volume without loss or duplicates. It is
//! test-support code: each check panics with a message saying what broke. It must not know
//! about any particular backend.
//!
//! Checks assert that something *did not happen* (a publish still blocked, a consumer held back
//! by prefetch) by waiting [`HOLD`]; a correct backend never completes such a wait, so a slow
//! machine cannot fail them. Everything that must happen gets [`WAIT`]. Every check names its
//! exchanges and queues under a fresh random prefix ([`Ctx::name`]), so a shared broker can run
//! the suite repeatedly; [`run_all`] deletes the queues a check made.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde_json::{json, Value};

use super::message::{
    HEADER_DEATH_EXCHANGE, HEADER_DEATH_QUEUE, HEADER_DEATH_REASON, HEADER_DEATH_ROUTING_KEY,
};
use super::names::dead_letter_queue;
use super::{Bus, BusError, Delivery, Message, SubscribeSpec, Subscription};

/// How long something that must happen may take.
pub const WAIT: Duration = Duration::from_secs(10);
/// How long something that must not happen is watched for.
pub const HOLD: Duration = Duration::from_millis(300);
/// How long one whole check may take.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(120);

/// What a check gets: a fresh bus and a unique prefix for its names.
#[derive(Clone)]
pub struct Ctx {
    /// The bus under test.
    pub bus: Arc<dyn Bus>,
    /// Unique to this check's run: every exchange and queue it names starts with it.
    pub prefix: String,
    /// What the backend promises beyond the common contract.
    pub capabilities: Capabilities,
    /// Queues made, deleted after the check.
    queues: Arc<Mutex<Vec<String>>>,
}

/// Promises a backend may not be able to keep, with the reason in each field's doc. The
/// checks that depend on one assert the weaker, still-safe behaviour when it is off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// A publish routed to several queues is enqueued into all of them or none: when one
    /// [`Overflow::Block`](super::Overflow::Block) queue is full, `try_publish` enqueues
    /// nowhere. The memory bus keeps it; RabbitMQ cannot (a `reject-publish` queue refuses its
    /// copy while the other queues take theirs; the publisher only learns of it by a nack), so
    /// there the check asserts instead that the queue with room gets the message exactly once.
    pub atomic_fan_out: bool,
}

impl Default for Capabilities {
    fn default() -> Self {
        Self {
            atomic_fan_out: true,
        }
    }
}

impl Ctx {
    /// A context on `bus` with a fresh random prefix.
    pub fn new(bus: Arc<dyn Bus>) -> Self {
        let id = uuid::Uuid::new_v4().simple().to_string();
        Self {
            bus,
            capabilities: Capabilities::default(),
            prefix: format!("conformance.{}", &id[..12]),
            queues: Default::default(),
        }
    }

    /// `name` under this check's prefix.
    pub fn name(&self, name: &str) -> String {
        format!("{}.{name}", self.prefix)
    }

    /// Declares the exchange `name` (under the prefix) and returns its full name.
    pub async fn exchange(&self, name: &str) -> String {
        let full = self.name(name);
        self.bus
            .declare_exchange(&full)
            .await
            .unwrap_or_else(|e| panic!("declare {full}: {e}"));
        full
    }

    /// The queue name `name` (under the prefix), remembered for deletion after the check.
    pub fn queue(&self, name: &str) -> String {
        let full = self.name(name);
        self.queues
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(full.clone());
        full
    }

    /// Subscribes, panicking with the error.
    pub async fn subscribe(&self, spec: SubscribeSpec) -> Subscription {
        let what = format!("subscribe {}", spec.queue);
        self.bus
            .subscribe(spec)
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}"))
    }

    /// Publishes `value` as JSON, panicking with the error (or after [`WAIT`]).
    pub async fn publish(&self, exchange: &str, key: &str, value: Value) {
        let what = format!("publish to {exchange} with key {key:?}");
        within(&what, self.bus.publish_json(exchange, key, &value))
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}"));
    }

    /// Deletes every queue the check made (and its dead-letter queue), ignoring errors.
    async fn clean_up(&self) {
        let queues =
            std::mem::take(&mut *self.queues.lock().unwrap_or_else(PoisonError::into_inner));
        for queue in queues {
            let _ = self.bus.delete_queue(&queue).await;
            let _ = self.bus.delete_queue(&dead_letter_queue(&queue)).await;
        }
    }
}

/// The future of one check.
pub type CheckFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// One check: takes a fresh bus and panics on failure.
pub type Check = fn(Ctx) -> CheckFuture;

/// Every check, by name, in the order [`run_all`] runs them.
pub const CHECKS: &[(&str, Check)] = &[
    ("round_trip_with_headers", |c| {
        Box::pin(round_trip_with_headers(c))
    }),
    ("unknown_exchange_is_an_error", |c| {
        Box::pin(unknown_exchange_is_an_error(c))
    }),
    ("unroutable_message_is_dropped", |c| {
        Box::pin(unroutable_message_is_dropped(c))
    }),
    ("topic_routing", |c| Box::pin(topic_routing(c))),
    ("overlapping_bindings_deliver_once", |c| {
        Box::pin(overlapping_bindings_deliver_once(c))
    }),
    ("queue_redeclaration", |c| Box::pin(queue_redeclaration(c))),
    ("invalid_spec_is_refused", |c| {
        Box::pin(invalid_spec_is_refused(c))
    }),
    ("competing_consumers", |c| Box::pin(competing_consumers(c))),
    ("work_queue_outlives_subscriptions", |c| {
        Box::pin(work_queue_outlives_subscriptions(c))
    }),
    ("broadcast_every_subscriber", |c| {
        Box::pin(broadcast_every_subscriber(c))
    }),
    ("broadcast_lag_never_blocks", |c| {
        Box::pin(broadcast_lag_never_blocks(c))
    }),
    ("ack_removes", |c| Box::pin(ack_removes(c))),
    ("nack_requeue_redelivers", |c| {
        Box::pin(nack_requeue_redelivers(c))
    }),
    ("requeue_reaches_another_consumer", |c| {
        Box::pin(requeue_reaches_another_consumer(c))
    }),
    ("drop_redelivers", |c| Box::pin(drop_redelivers(c))),
    ("crashed_consumer_loses_nothing", |c| {
        Box::pin(crashed_consumer_loses_nothing(c))
    }),
    ("cancelled_next_loses_nothing", |c| {
        Box::pin(cancelled_next_loses_nothing(c))
    }),
    ("prefetch_limit", |c| Box::pin(prefetch_limit(c))),
    ("full_work_queue_blocks_publisher", |c| {
        Box::pin(full_work_queue_blocks_publisher(c))
    }),
    ("try_publish_refuses_when_full", |c| {
        Box::pin(try_publish_refuses_when_full(c))
    }),
    ("dead_letter_after_max_deliveries", |c| {
        Box::pin(dead_letter_after_max_deliveries(c))
    }),
    ("nack_without_requeue_dead_letters", |c| {
        Box::pin(nack_without_requeue_dead_letters(c))
    }),
    ("ordering_single_consumer", |c| {
        Box::pin(ordering_single_consumer(c))
    }),
    ("many_messages_no_loss", |c| {
        Box::pin(many_messages_no_loss(c))
    }),
    ("stream_interface", |c| Box::pin(stream_interface(c))),
    ("delete_queue_ends_subscriptions", |c| {
        Box::pin(delete_queue_ends_subscriptions(c))
    }),
    ("close_ends_everything", |c| {
        Box::pin(close_ends_everything(c))
    }),
];

/// Runs every check of [`CHECKS`], each on a fresh bus from `make`. Panics naming the first
/// check that fails.
pub async fn run_all<F, Fut>(make: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn Bus>>,
{
    for (name, check) in CHECKS {
        run_one(name, *check, make().await).await;
    }
}

/// Runs one check on `bus`, then deletes its queues and closes the bus. Panics with the check's
/// name if it fails or takes longer than [`CHECK_TIMEOUT`].
pub async fn run_one(name: &str, check: Check, bus: Arc<dyn Bus>) {
    run_one_with(name, check, bus, Capabilities::default()).await;
}

/// [`run_one`] for a backend with other [`Capabilities`].
pub async fn run_one_with(name: &str, check: Check, bus: Arc<dyn Bus>, capabilities: Capabilities) {
    let ctx = Ctx {
        capabilities,
        ..Ctx::new(bus)
    };
    // A task of its own, so that a failure can be reported with the check's name.
    let outcome = tokio::spawn(tokio::time::timeout(CHECK_TIMEOUT, check(ctx.clone()))).await;
    ctx.clean_up().await;
    let _ = ctx.bus.close().await;
    let why = match outcome {
        Ok(Ok(())) => return,
        Ok(Err(_)) => format!("did not finish within {CHECK_TIMEOUT:?}"),
        Err(e) if e.is_panic() => {
            let payload = e.into_panic();
            payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "panic".into())
        }
        Err(e) => e.to_string(),
    };
    panic!("bus conformance check `{name}` failed: {why}");
}

// ---------------------------------------------------------------------------------------------
// Helpers.

async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(WAIT, fut)
        .await
        .unwrap_or_else(|_| panic!("timed out after {WAIT:?} waiting for {what}"))
}

/// The next delivery, within [`WAIT`].
async fn recv(sub: &mut Subscription, what: &str) -> Delivery {
    match within(what, sub.next()).await {
        Some(Ok(delivery)) => delivery,
        Some(Err(e)) => panic!("error waiting for {what}: {e}"),
        None => panic!("subscription {} ended waiting for {what}", sub.queue()),
    }
}

/// The next delivery's JSON payload, with the delivery.
async fn recv_value(sub: &mut Subscription, what: &str) -> (Value, Delivery) {
    let delivery = recv(sub, what).await;
    let value = delivery
        .message()
        .value()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    (value, delivery)
}

/// Receives, acks and returns the next JSON payload.
async fn take(sub: &mut Subscription, what: &str) -> Value {
    let (value, delivery) = recv_value(sub, what).await;
    delivery
        .ack()
        .await
        .unwrap_or_else(|e| panic!("ack {what}: {e}"));
    value
}

/// Asserts that no delivery comes for [`HOLD`] (cancel-safe: nothing is lost).
async fn assert_nothing(sub: &mut Subscription, why: &str) {
    if let Ok(got) = tokio::time::timeout(HOLD, sub.next()).await {
        panic!("{why}, yet {} delivered {got:?}", sub.queue());
    }
}

async fn ack(delivery: Delivery) {
    delivery.ack().await.unwrap_or_else(|e| panic!("ack: {e}"));
}

async fn nack(delivery: Delivery, requeue: bool) {
    delivery
        .nack(requeue)
        .await
        .unwrap_or_else(|e| panic!("nack({requeue}): {e}"));
}

// ---------------------------------------------------------------------------------------------
// Checks.

async fn round_trip_with_headers(ctx: Ctx) {
    let x = ctx.exchange("x").await;
    let q = ctx.queue("q");
    let mut sub = ctx.subscribe(SubscribeSpec::work(&q, &x, ["k"])).await;

    let sent = Message::new(&b"\x00\x01 binary \xff"[..], "application/octet-stream")
        .with_header("St2-Trace-Tag", "trace-1")
        .with_header("x-note", "ünïcode");
    within("publish", ctx.bus.publish(&x, "k", sent.clone()))
        .await
        .unwrap_or_else(|e| panic!("publish: {e}"));
    let got = recv(&mut sub, "the binary message").await;
    assert_eq!(got.message().payload, sent.payload, "payload");
    assert_eq!(
        got.message().content_type,
        sent.content_type,
        "content type"
    );
    assert_eq!(got.message().header("St2-Trace-Tag"), Some("trace-1"));
    assert_eq!(got.message().header("x-note"), Some("ünïcode"));
    let info = got.info();
    assert_eq!(
        (info.queue.as_str(), info.exchange.as_str()),
        (q.as_str(), x.as_str())
    );
    assert_eq!(info.routing_key, "k");
    assert!(!info.redelivered, "first delivery is not redelivered");
    assert_eq!(info.delivery_count, 1, "first delivery count");
    ack(got).await;

    let value = json!({"id": "e1", "n": [1, 2.5, null], "s": "ü"});
    ctx.publish(&x, "k", value.clone()).await;
    let (got, delivery) = recv_value(&mut sub, "the JSON message").await;
    assert_eq!(got, value);
    assert_eq!(
        delivery.message().content_type,
        super::message::CONTENT_TYPE_JSON
    );
    ack(delivery).await;
}

async fn unknown_exchange_is_an_error(ctx: Ctx) {
    let nope = ctx.name("nope");
    let published = ctx.bus.publish_json(&nope, "k", &json!(1)).await;
    assert!(
        matches!(published, Err(BusError::UnknownExchange { ref exchange }) if *exchange == nope),
        "publish to an undeclared exchange: {published:?}"
    );
    let q = ctx.queue("q");
    let subscribed = ctx
        .bus
        .subscribe(SubscribeSpec::work(&q, &nope, ["#"]))
        .await;
    assert!(
        matches!(subscribed, Err(BusError::UnknownExchange { .. })),
        "subscribe on an undeclared exchange: {subscribed:?}"
    );
    // Declaring twice is fine.
    ctx.exchange("x").await;
    ctx.exchange("x").await;
}

async fn unroutable_message_is_dropped(ctx: Ctx) {
    let x = ctx.exchange("x").await;
    ctx.publish(&x, "k", json!("nobody listens")).await;
    let mut sub = ctx
        .subscribe(SubscribeSpec::work(ctx.queue("q"), &x, ["k"]))
        .await;
    ctx.publish(&x, "k", json!("after")).await;
    assert_eq!(
        take(&mut sub, "the message published after subscribing").await,
        json!("after")
    );
}

async fn topic_routing(ctx: Ctx) {
    let x = ctx.exchange("x").await;
    let patterns = ["a.*.c", "x.#", "#.end", "exact"];
    let mut wild = ctx
        .subscribe(SubscribeSpec::work(ctx.queue("wild"), &x, patterns))
        .await;
    let mut exact = ctx
        .subscribe(SubscribeSpec::work(ctx.queue("exact"), &x, ["a.b.c"]))
        .await;
    let mut all = ctx
        .subscribe(SubscribeSpec::work(ctx.queue("all"), &x, ["#"]))
        .await;
    // (routing key, reaches `wild`)
    let keys = [
        ("a.b.c", true),
        ("a.c", false),
        ("a.b.b.c", false),
        ("b.b.c", false),
        ("x", true),
        ("x.y.z", true),
        ("y.x", false),
        ("end", true),
        ("p.q.end", true),
        ("p.end.q", false),
        ("exact", true),
        ("exact.not", false),
        ("", false),
    ];
    for (key, _) in keys {
        ctx.publish(&x, key, json!(key)).await;
    }
    // A last message every queue gets: once it arrives, everything before it has (FIFO).
    ctx.publish(&x, "a.b.c", json!("last")).await;

    let mut expected: Vec<Value> = keys
        .iter()
        .filter(|(_, hit)| *hit)
        .map(|(key, _)| json!(key))
        .collect();
    expected.push(json!("last"));
    for (sub, expected, what) in [
        (&mut wild, expected, "wildcard queue"),
        (
            &mut exact,
            vec![json!("a.b.c"), json!("last")],
            "exact queue",
        ),
        (
            &mut all,
            keys.iter()
                .map(|(k, _)| json!(k))
                .chain([json!("last")])
                .collect(),
            "`#`",
        ),
    ] {
        let mut got = Vec::new();
        while got.last() != Some(&json!("last")) {
            got.push(take(sub, what).await);
        }
        assert_eq!(got, expected, "{what} received");
    }
}

async fn overlapping_bindings_deliver_once(ctx: Ctx) {
    let x = ctx.exchange("x").await;
    let mut sub = ctx
        .subscribe(SubscribeSpec::work(
            ctx.queue("q"),
            &x,
            ["a.*", "a.#", "#", "a.b"],
        ))
        .await;
    ctx.publish(&x, "a.b", json!("once")).await;
    ctx.publish(&x, "z", json!("stop")).await;
    assert_eq!(take(&mut sub, "the message").await, json!("once"));
    assert_eq!(
        take(&mut sub, "the stop message").await,
        json!("stop"),
        "one copy per queue"
    );
}

async fn queue_redeclaration(ctx: Ctx) {
    let x = ctx.exchange("x").await;
    let q = ctx.queue("q");
    let spec = SubscribeSpec::work(&q, &x, ["a"]).with_capacity(10);
    let mut first = ctx.subscribe(spec.clone()).await;

    for (other, what) in [
        (spec.clone().with_capacity(20), "capacity"),
        (spec.clone().with_max_deliveries(Some(9)), "max_deliveries"),
        (
            spec.clone().with_overflow(super::Overflow::DropOldest),
            "overflow",
        ),
    ] {
        let got = ctx.bus.subscribe(other).await;
        assert!(
            matches!(got, Err(BusError::QueueMismatch { ref queue, .. }) if *queue == q),
            "redeclaring with another {what} must fail: {got:?}"
        );
    }
    // Same properties, other bindings and prefetch: a second consumer, bindings add up.
    let second = ctx
        .subscribe(
            SubscribeSpec {
                bindings: vec!["b".into()],
                ..spec
            }
            .with_prefetch(3),
        )
        .await;
    drop(second);
    ctx.publish(&x, "b", json!("via b")).await;
    ctx.publish(&x, "a", json!("via a")).await;
    assert_eq!(
        take(&mut first, "message bound by the second declaration").await,
        json!("via b")
    );
    assert_eq!(
        take(&mut first, "message bound by the first declaration").await,
        json!("via a")
    );
}

async fn invalid_spec_is_refused(ctx: Ctx) {
    let x = ctx.exchange("x").await;
    let q = ctx.queue("q");
    for spec in [
        SubscribeSpec::work(&q, &x, ["#"]).with_prefetch(0),
        SubscribeSpec::work(&q, &x, ["#"]).with_capacity(0),
        SubscribeSpec::work(&q, &x, Vec::<String>::new()),
        SubscribeSpec::work("", &x, ["#"]),
    ] {
        let got = ctx.bus.subscribe(spec.clone()).await;
        assert!(
            matches!(got, Err(BusError::Invalid { .. })),
            "{spec:?} must be refused: {got:?}"
        );
    }
}

async fn competing_consumers(ctx: Ctx) {
    let x = ctx.exchange("x").await;
    let q = ctx.queue("q");
    let spec = SubscribeSpec::work(&q, &x, ["#"]);

    // Spread: three consumers holding one unsettled delivery each get three different messages.
    let mut subs = Vec::new();
    for _ in 0..3 {
        subs.push(ctx.subscribe(spec.clone().with_prefetch(1)).await);
    }
    for i in 0..3 {
        ctx.publish(&x, "k", json!(i)).await;
    }
    let mut held = Vec::new();
    for sub in &mut subs {
        held.push(recv_value(sub, "one message per consumer").await);
    }
    let seen: BTreeSet<String> = held.iter().map(|(v, _)| v.to_string()).collect();
    assert_eq!(
        seen.len(),
        3,
        "each consumer got a different message: {seen:?}"
    );
    for (_, delivery) in held {
        ack(delivery).await;
    }
    drop(subs);

    // Volume: N messages, M busy consumers, each message handled exactly once in total.
    const N: u64 = 400;
    const M: usize = 4;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(usize, u64)>(64);
    let mut workers = Vec::new();
    for w in 0..M {
        let mut sub = ctx.subscribe(spec.clone().with_prefetch(4)).await;
        let tx = tx.clone();
        workers.push(tokio::spawn(async move {
            while let Some(Ok(delivery)) = sub.next().await {
                let n = delivery.decode::<u64>().unwrap_or(u64::MAX);
                let _ = delivery.ack().await;
                if tx.send((w, n)).await.is_err() {
                    break;
                }
            }
        }));
    }
    drop(tx);
    for i in 0..N {
        ctx.publish(&x, "k", json!(i)).await;
    }
    let mut counts: BTreeMap<u64, usize> = BTreeMap::new();
    let mut per_worker = vec![0usize; M];
    for _ in 0..N {
        let (w, n) = within("the work queue's messages", rx.recv())
            .await
            .unwrap_or_else(|| panic!("every worker stopped early"));
        *counts.entry(n).or_default() += 1;
        per_worker[w] += 1;
    }
    let duplicates: Vec<_> = counts.iter().filter(|(_, c)| **c > 1).collect();
    assert!(
        duplicates.is_empty(),
        "delivered more than once: {duplicates:?}"
    );
    assert_eq!(
        counts.len() as u64,
        N,
        "every message delivered (per worker: {per_worker:?})"
    );
    for worker in workers {
        worker.abort();
        let _ = worker.await;
    }
    // Nothing left behind.
    let mut sub = ctx.subscribe(spec).await;
    ctx.publish(&x, "k", json!("sentinel")).await;
    assert_eq!(
        take(&mut sub, "the sentinel").await,
        json!("sentinel"),
        "queue was empty"
    );
}

async fn work_queue_outlives_subscriptions(ctx: Ctx) {
    let x = ctx.exchange("x").await;
    let spec = SubscribeSpec::work(ctx.queue("q"), &x, ["#"]);
    drop(ctx.subscribe(spec.clone()).await);
    for i in 0..3 {
        ctx.publish(&x, "k", json!(i)).await;
    }
    let mut sub = ctx.subscribe(spec).await;
    for i in 0..3 {
        assert_eq!(
            take(&mut sub, "messages published with no consumer").await,
            json!(i)
        );
    }
}

async fn broadcast_every_subscriber(ctx: Ctx) {
    let x = ctx.exchange("x").await;
    let q = ctx.queue("stream");
    let mut subs = Vec::new();
    for _ in 0..3 {
        subs.push(ctx.subscribe(SubscribeSpec::broadcast(&q, &x, ["#"])).await);
    }
    let names: BTreeSet<String> = subs.iter().map(|s| s.queue().to_string()).collect();
    assert_eq!(
        names.len(),
        3,
        "each broadcast subscription has its own queue: {names:?}"
    );
    let mut work = ctx
        .subscribe(SubscribeSpec::work(ctx.queue("work"), &x, ["#"]))
        .await;
    const K: u64 = 50;
    for i in 0..K {
        ctx.publish(&x, "k", json!(i)).await;
    }
    for sub in subs.iter_mut().chain([&mut work]) {
        for i in 0..K {
            assert_eq!(take(sub, "every broadcast message").await, json!(i));
        }
    }
}

async fn broadcast_lag_never_blocks(ctx: Ctx) {
    let x = ctx.exchange("x").await;
    let spec = SubscribeSpec::broadcast(ctx.queue("slow"), &x, ["#"])
        .with_capacity(3)
        .with_prefetch(1);
    let mut slow = ctx.subscribe(spec).await;
    const K: u64 = 20;
    for i in 0..K {
        // `publish` panics after WAIT: a lagging broadcast subscriber must not block it.
        ctx.publish(&x, "k", json!(i)).await;
    }
    let mut got = Vec::new();
    while got.last() != Some(&(K - 1)) {
        let n = take(&mut slow, "the newest messages").await;
        got.push(n.as_u64().unwrap_or_else(|| panic!("not a number: {n}")));
    }
    assert!(
        got.windows(2).all(|w| w[0] < w[1]),
        "in order, oldest dropped: {got:?}"
    );
    assert!(
        got.len() <= 3 + 1,
        "at most capacity + prefetch kept: {got:?}"
    );
    if let Some(dropped) = slow.dropped() {
        assert_eq!(
            dropped + got.len() as u64,
            K,
            "dropped count ({dropped}) + received {got:?}"
        );
    }
}

async fn ack_removes(ctx: Ctx) {
    let x = ctx.exchange("x").await;
    let spec = SubscribeSpec::work(ctx.queue("q"), &x, ["#"]);
    let mut sub = ctx.subscribe(spec.clone()).await;
    ctx.publish(&x, "k", json!("one")).await;
    assert_eq!(take(&mut sub, "the message").await, json!("one"));
    drop(sub);
    let mut sub = ctx.subscribe(spec).await;
    ctx.publish(&x, "k", json!("two")).await;
    let (value, delivery) = recv_value(&mut sub, "the next message").await;
    assert_eq!(value, json!("two"), "an acked message is gone");
    assert!(!delivery.redelivered());
    ack(delivery).await;
}

async fn nack_requeue_redelivers(ctx: Ctx) {
    let x = ctx.exchange("x").await;
    let spec = SubscribeSpec::work(ctx.queue("q"), &x, ["#"]).with_max_deliveries(Some(10));
    let mut sub = ctx.subscribe(spec).await;
    ctx.publish(&x, "k", json!("again")).await;
    for count in 1..=3 {
        let (value, delivery) = recv_value(&mut sub, "the nacked message").await;
        assert_eq!(value, json!("again"));
        assert_eq!(
            delivery.redelivered(),
            count > 1,
            "redelivered flag on delivery {count}"
        );
        assert_eq!(delivery.delivery_count(), count, "delivery count");
        nack(delivery, true).await;
    }
    let (_, delivery) = recv_value(&mut sub, "the message once more").await;
    ack(delivery).await;
    ctx.publish(&x, "k", json!("sentinel")).await;
    assert_eq!(
        take(&mut sub, "the sentinel").await,
        json!("sentinel"),
        "acked at last"
    );
}

async fn requeue_reaches_another_consumer(ctx: Ctx) {
    let x = ctx.exchange("x").await;
    let spec = SubscribeSpec::work(ctx.queue("q"), &x, ["#"]).with_prefetch(1);
    let mut a = ctx.subscribe(spec.clone()).await;
    let mut b = ctx.subscribe(spec).await;
    ctx.publish(&x, "k", json!("hot potato")).await;
    // Whichever consumer got it hands it back; the other one must get it.
    let (got_by_a, delivery) = tokio::select! {
        d = recv(&mut a, "the message on a") => (true, d),
        d = recv(&mut b, "the message on b") => (false, d),
    };
    nack(delivery, true).await;
    let other = if got_by_a { &mut b } else { &mut a };
    let (value, delivery) = recv_value(other, "the requeued message on the other consumer").await;
    assert_eq!(value, json!("hot potato"));
    assert!(
        delivery.redelivered(),
        "a requeued message is flagged redelivered"
    );
    ack(delivery).await;
}

async fn drop_redelivers(ctx: Ctx) {
    let x = ctx.exchange("x").await;
    let mut sub = ctx
        .subscribe(SubscribeSpec::work(ctx.queue("q"), &x, ["#"]))
        .await;
    ctx.publish(&x, "k", json!("dropped")).await;
    drop(recv(&mut sub, "the message").await);
    let (value, delivery) = recv_value(&mut sub, "the dropped message again").await;
    assert_eq!(value, json!("dropped"));
    assert!(delivery.redelivered());
    assert_eq!(delivery.delivery_count(), 2);
    ack(delivery).await;
}

async fn crashed_consumer_loses_nothing(ctx: Ctx) {
    let x = ctx.exchange("x").await;
    let spec = SubscribeSpec::work(ctx.queue("q"), &x, ["#"]);
    let mut doomed = ctx.subscribe(spec.clone()).await;
    ctx.publish(&x, "k", json!(1)).await;
    ctx.publish(&x, "k", json!(2)).await;
    let (tx, rx) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(async move {
        let held = doomed.next().await;
        let _ = tx.send(());
        // Work forever on it, holding the subscription too.
        std::future::pending::<()>().await;
        drop((held, doomed));
    });
    within("the doomed consumer's delivery", rx)
        .await
        .unwrap_or_else(|_| panic!("task died"));
    task.abort();
    let _ = task.await;
    let mut survivor = ctx.subscribe(spec).await;
    let mut got = BTreeSet::new();
    for _ in 0..2 {
        got.insert(
            take(&mut survivor, "messages of the crashed consumer")
                .await
                .to_string(),
        );
    }
    assert_eq!(got.len(), 2, "both messages reach the survivor: {got:?}");
}

async fn cancelled_next_loses_nothing(ctx: Ctx) {
    let x = ctx.exchange("x").await;
    let mut sub = ctx
        .subscribe(SubscribeSpec::work(ctx.queue("q"), &x, ["#"]))
        .await;
    // Start and abandon `next()` many times around publishes.
    for i in 0..50u64 {
        if let Ok(got) = tokio::time::timeout(Duration::from_millis(1), sub.next()).await {
            panic!("nothing published yet, got {got:?}");
        }
        ctx.publish(&x, "k", json!(i)).await;
        assert_eq!(
            take(&mut sub, "the message after a cancelled next").await,
            json!(i)
        );
    }
}

async fn prefetch_limit(ctx: Ctx) {
    let x = ctx.exchange("x").await;
    let spec = SubscribeSpec::work(ctx.queue("q"), &x, ["#"]);
    let mut sub = ctx.subscribe(spec.clone().with_prefetch(2)).await;
    for i in 0..5 {
        ctx.publish(&x, "k", json!(i)).await;
    }
    let d1 = recv(&mut sub, "first within prefetch").await;
    let d2 = recv(&mut sub, "second within prefetch").await;
    assert_nothing(&mut sub, "prefetch 2 with two unsettled deliveries").await;
    let mut all = BTreeSet::new();
    all.insert(value_of(&d1));
    ack(d1).await;
    let d3 = recv(&mut sub, "a third once one is acked").await;
    assert_nothing(&mut sub, "prefetch 2 again full").await;
    // The rest is not hoarded: another consumer gets it.
    let mut other = ctx.subscribe(spec.with_prefetch(10)).await;
    for _ in 0..2 {
        all.insert(
            take(&mut other, "the rest on another consumer")
                .await
                .to_string(),
        );
    }
    for d in [d2, d3] {
        all.insert(value_of(&d));
        ack(d).await;
    }
    assert_eq!(all.len(), 5, "five distinct messages: {all:?}");
}

fn value_of(delivery: &Delivery) -> String {
    match delivery.message().value() {
        Ok(value) => value.to_string(),
        Err(e) => panic!("not JSON: {e}"),
    }
}

async fn full_work_queue_blocks_publisher(ctx: Ctx) {
    let x = ctx.exchange("x").await;
    let spec = SubscribeSpec::work(ctx.queue("q"), &x, ["#"])
        .with_capacity(2)
        .with_prefetch(1);
    // Declare the queue, then leave it without consumers.
    drop(ctx.subscribe(spec.clone()).await);
    ctx.publish(&x, "k", json!(0)).await;
    ctx.publish(&x, "k", json!(1)).await;

    let bus = ctx.bus.clone();
    let x2 = x.clone();
    let mut blocked = tokio::spawn(async move { bus.publish_json(&x2, "k", &json!(2)).await });
    if let Ok(done) = tokio::time::timeout(HOLD, &mut blocked).await {
        panic!("publish to a full work queue must wait, yet it returned {done:?}");
    }
    let mut sub = ctx.subscribe(spec).await;
    assert_eq!(take(&mut sub, "the oldest message").await, json!(0));
    match within("the blocked publish to resume", &mut blocked).await {
        Ok(Ok(())) => {}
        other => panic!("blocked publish failed: {other:?}"),
    }
    assert_eq!(take(&mut sub, "the second message").await, json!(1));
    assert_eq!(
        take(&mut sub, "the once-blocked message").await,
        json!(2),
        "nothing dropped"
    );
}

async fn try_publish_refuses_when_full(ctx: Ctx) {
    let x = ctx.exchange("x").await;
    let full = SubscribeSpec::work(ctx.queue("full"), &x, ["#"])
        .with_capacity(1)
        .with_prefetch(1);
    let other = SubscribeSpec::work(ctx.queue("other"), &x, ["#"]);
    drop(ctx.subscribe(full.clone()).await);
    let mut other_sub = ctx.subscribe(other).await;
    match within(
        "try_publish with room",
        ctx.bus.try_publish_json(&x, "k", &json!(0)),
    )
    .await
    {
        Ok(()) => {}
        e => panic!("try_publish with room failed: {e:?}"),
    }
    assert_eq!(take(&mut other_sub, "the first message").await, json!(0));
    match within(
        "try_publish to a full queue",
        ctx.bus.try_publish_json(&x, "k", &json!(1)),
    )
    .await
    {
        Err(crate::bus::BusError::Full { queue }) => assert_eq!(queue, full.queue),
        other => panic!("try_publish to a full queue must fail with Full, got {other:?}"),
    }
    if ctx.capabilities.atomic_fan_out {
        // All or nothing: the queue with room did not get the refused message either.
        assert_nothing(&mut other_sub, "a refused message reaches no queue").await;
    } else {
        // The queue with room took its copy, once: a refused try_publish is not retried.
        assert_eq!(
            take(&mut other_sub, "the copy of the queue with room").await,
            json!(1)
        );
        assert_nothing(&mut other_sub, "a refused try_publish is not sent again").await;
    }
    let mut sub = ctx.subscribe(full).await;
    assert_eq!(take(&mut sub, "the queued message").await, json!(0));
}

async fn dead_letter_after_max_deliveries(ctx: Ctx) {
    let x = ctx.exchange("x").await;
    let q = ctx.queue("q");
    let spec = SubscribeSpec::work(&q, &x, ["#"]).with_max_deliveries(Some(3));
    let mut sub = ctx.subscribe(spec).await;
    let poison = Message::json(&json!("poison")).with_header("St2-Trace-Tag", "t-9");
    within("publish", ctx.bus.publish(&x, "poison.key", poison))
        .await
        .unwrap_or_else(|e| panic!("publish: {e}"));
    for count in 1..=3 {
        let delivery = recv(&mut sub, "the poison message").await;
        assert_eq!(delivery.delivery_count(), count);
        if count == 2 {
            drop(delivery); // dropping counts as nack + requeue
        } else {
            nack(delivery, true).await;
        }
    }
    ctx.publish(&x, "k", json!("sentinel")).await;
    assert_eq!(
        take(&mut sub, "the sentinel").await,
        json!("sentinel"),
        "after 3 deliveries the poison message is no longer redelivered"
    );
    let mut dead = ctx.subscribe(SubscribeSpec::dead_letters(&q)).await;
    let (value, delivery) = recv_value(&mut dead, "the dead letter").await;
    assert_eq!(value, json!("poison"));
    let m = delivery.message();
    let reason = m.header(HEADER_DEATH_REASON).unwrap_or_default();
    assert!(
        reason.contains("delivery limit"),
        "reason header: {reason:?}"
    );
    assert_eq!(m.header(HEADER_DEATH_QUEUE), Some(q.as_str()));
    assert_eq!(m.header(HEADER_DEATH_EXCHANGE), Some(x.as_str()));
    assert_eq!(m.header(HEADER_DEATH_ROUTING_KEY), Some("poison.key"));
    assert_eq!(
        m.header("St2-Trace-Tag"),
        Some("t-9"),
        "original headers kept"
    );
    assert_eq!(delivery.info().queue, dead_letter_queue(&q));
    ack(delivery).await;
}

async fn nack_without_requeue_dead_letters(ctx: Ctx) {
    let x = ctx.exchange("x").await;
    let q = ctx.queue("q");
    let mut sub = ctx.subscribe(SubscribeSpec::work(&q, &x, ["#"])).await;
    ctx.publish(&x, "k", json!("bad")).await;
    nack(recv(&mut sub, "the bad message").await, false).await;
    ctx.publish(&x, "k", json!("sentinel")).await;
    assert_eq!(
        take(&mut sub, "the sentinel").await,
        json!("sentinel"),
        "rejected is gone"
    );
    let mut dead = ctx.subscribe(SubscribeSpec::dead_letters(&q)).await;
    let (value, delivery) = recv_value(&mut dead, "the rejected message").await;
    assert_eq!(value, json!("bad"));
    assert_eq!(
        delivery.message().header(HEADER_DEATH_REASON),
        Some("rejected")
    );
    // Rejecting a dead letter discards it.
    nack(delivery, false).await;
    assert_nothing(&mut dead, "a rejected dead letter is discarded").await;
}

async fn ordering_single_consumer(ctx: Ctx) {
    let x = ctx.exchange("x").await;
    let spec = SubscribeSpec::work(ctx.queue("q"), &x, ["#"])
        .with_capacity(16)
        .with_prefetch(8);
    let mut sub = ctx.subscribe(spec).await;
    const N: u64 = 1000;
    // Published concurrently with consumption, through a queue smaller than the burst.
    let bus = ctx.bus.clone();
    let x2 = x.clone();
    let publisher = tokio::spawn(async move {
        for i in 0..N {
            bus.publish_json(&x2, "k", &json!(i)).await?;
        }
        Ok::<_, BusError>(())
    });
    for i in 0..N {
        assert_eq!(take(&mut sub, "the next message in order").await, json!(i));
    }
    match within("the publisher", publisher).await {
        Ok(Ok(())) => {}
        other => panic!("publisher failed: {other:?}"),
    }
}

async fn many_messages_no_loss(ctx: Ctx) {
    let x = ctx.exchange("x").await;
    let spec = SubscribeSpec::work(ctx.queue("q"), &x, ["#"])
        .with_capacity(64)
        .with_prefetch(8);
    const PUBLISHERS: u64 = 4;
    const EACH: u64 = 2500;
    const CONSUMERS: usize = 3;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(u64, u64)>(256);
    let mut consumers = Vec::new();
    for _ in 0..CONSUMERS {
        let mut sub = ctx.subscribe(spec.clone()).await;
        let tx = tx.clone();
        consumers.push(tokio::spawn(async move {
            while let Some(Ok(delivery)) = sub.next().await {
                let (p, i) = delivery
                    .decode::<(u64, u64)>()
                    .unwrap_or((u64::MAX, u64::MAX));
                let _ = delivery.ack().await;
                if tx.send((p, i)).await.is_err() {
                    break;
                }
            }
        }));
    }
    drop(tx);
    let mut publishers = Vec::new();
    for p in 0..PUBLISHERS {
        let bus = ctx.bus.clone();
        let x = x.clone();
        publishers.push(tokio::spawn(async move {
            for i in 0..EACH {
                bus.publish_json(&x, &format!("p{p}"), &json!([p, i]))
                    .await?;
            }
            Ok::<_, BusError>(())
        }));
    }
    let mut seen = BTreeSet::new();
    for n in 0..PUBLISHERS * EACH {
        let got = within("the next of many messages", rx.recv())
            .await
            .unwrap_or_else(|| panic!("every consumer stopped after {n} messages"));
        assert!(seen.insert(got), "{got:?} delivered twice");
    }
    for publisher in publishers {
        match within("a publisher", publisher).await {
            Ok(Ok(())) => {}
            other => panic!("publisher failed: {other:?}"),
        }
    }
    let expected: BTreeSet<(u64, u64)> = (0..PUBLISHERS)
        .flat_map(|p| (0..EACH).map(move |i| (p, i)))
        .collect();
    assert!(seen == expected, "every message exactly once");
    for consumer in consumers {
        consumer.abort();
        let _ = consumer.await;
    }
}

async fn stream_interface(ctx: Ctx) {
    use futures_core::Stream;
    let x = ctx.exchange("x").await;
    let mut sub = ctx
        .subscribe(SubscribeSpec::work(ctx.queue("q"), &x, ["#"]))
        .await;
    ctx.publish(&x, "k", json!(1)).await;
    ctx.publish(&x, "k", json!(2)).await;
    for i in 1..=2 {
        let next = std::future::poll_fn(|cx| Pin::new(&mut sub).poll_next(cx));
        match within("a delivery through Stream", next).await {
            Some(Ok(delivery)) => {
                assert_eq!(delivery.message().value().ok(), Some(json!(i)));
                ack(delivery).await;
            }
            other => panic!("stream yielded {other:?}"),
        }
    }
}

async fn delete_queue_ends_subscriptions(ctx: Ctx) {
    let x = ctx.exchange("x").await;
    let q = ctx.queue("q");
    let mut sub = ctx.subscribe(SubscribeSpec::work(&q, &x, ["#"])).await;
    ctx.publish(&x, "k", json!("doomed")).await;
    let waiter = tokio::spawn(async move {
        // Drain what is there, then wait for the end.
        loop {
            match sub.next().await {
                Some(Ok(d)) => {
                    let _ = d.ack().await;
                }
                Some(Err(e)) => return Err(e.to_string()),
                None => return Ok(()),
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    ctx.bus
        .delete_queue(&q)
        .await
        .unwrap_or_else(|e| panic!("delete: {e}"));
    match within("the subscription to end", waiter).await {
        Ok(Ok(())) => {}
        other => panic!("subscription did not end cleanly: {other:?}"),
    }
    // Deleted with its bindings: publishing again is fine and reaches nobody.
    ctx.publish(&x, "k", json!("after")).await;
    let mut again = ctx.subscribe(SubscribeSpec::work(&q, &x, ["#"])).await;
    ctx.publish(&x, "k", json!("fresh")).await;
    assert_eq!(
        take(&mut again, "the first message of the new queue").await,
        json!("fresh")
    );
    ctx.bus
        .delete_queue(&q)
        .await
        .unwrap_or_else(|e| panic!("delete is idempotent: {e}"));
    ctx.bus
        .delete_queue(&q)
        .await
        .unwrap_or_else(|e| panic!("delete is idempotent: {e}"));
}

async fn close_ends_everything(ctx: Ctx) {
    let x = ctx.exchange("x").await;
    let mut sub = ctx
        .subscribe(SubscribeSpec::work(ctx.queue("q"), &x, ["#"]))
        .await;
    let waiter = tokio::spawn(async move { sub.next().await.is_none() });
    tokio::time::sleep(Duration::from_millis(50)).await;
    ctx.bus
        .close()
        .await
        .unwrap_or_else(|e| panic!("close: {e}"));
    assert!(
        matches!(within("the subscription to end", waiter).await, Ok(true)),
        "a subscription ends when the bus closes"
    );
    let published = ctx.bus.publish_json(&x, "k", &json!(1)).await;
    assert!(
        matches!(published, Err(BusError::Closed)),
        "publish after close: {published:?}"
    );
    let subscribed = ctx
        .bus
        .subscribe(SubscribeSpec::work(ctx.queue("q2"), &x, ["#"]))
        .await;
    assert!(
        matches!(subscribed, Err(BusError::Closed)),
        "subscribe after close: {subscribed:?}"
    );
}
