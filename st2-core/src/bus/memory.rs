//! The in-process bus (backend `memory`): the standalone shape's bus, and the reference the
//! conformance suite is written against.
//!
//! One mutex guards all exchanges, bindings and queues, so a publish that routes to several
//! queues checks and fills them atomically; it is held only for short, non-async sections. Every
//! wait is on a tokio `Notify` or `Semaphore` (no polling): consumers wait on their queue's
//! `available`, blocked publishers on its `space`, prefetch on a per-subscription semaphore.
//! Nothing is unbounded: queues hold at most their capacity of ready messages plus the requeued
//! deliveries, which prefetch bounds. This module must not know what messages mean.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};

use async_trait::async_trait;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

use super::message::{
    HEADER_DEATH_COUNT, HEADER_DEATH_EXCHANGE, HEADER_DEATH_QUEUE, HEADER_DEATH_REASON,
    HEADER_DEATH_ROUTING_KEY,
};
use super::names::DEAD_LETTER_EXCHANGE;
use super::{
    topic, validate_name, Acker, Bus, BusError, Consumer, Delivery, DeliveryInfo, Message,
    Overflow, QueueKind, Result, SubscribeSpec, Subscription, MAX_NAME_LEN,
};

/// The in-process bus. Cheap to clone: clones share the same exchanges and queues.
#[derive(Clone)]
pub struct MemoryBus {
    shared: Arc<Shared>,
}

/// A snapshot of one queue, for tests and diagnostics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueStats {
    /// Messages waiting for a consumer.
    pub ready: usize,
    /// Deliveries taken and not yet settled.
    pub unacked: usize,
    /// Live subscriptions.
    pub consumers: usize,
    /// Messages dropped by the drop-oldest overflow policy so far.
    pub dropped: u64,
}

struct Shared {
    state: Mutex<State>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves the state consistent (no await inside, each
        // section completes its invariant before anything can panic), so poisoning is ignored.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[derive(Default)]
struct State {
    closed: bool,
    /// Exchange name → its bindings.
    exchanges: HashMap<String, Vec<Binding>>,
    queues: HashMap<String, Queue>,
    /// Source of [`Queue::id`]: a queue deleted and declared again is another queue, so late
    /// settlements of the old one's deliveries must not touch it.
    next_queue_id: u64,
}

struct Binding {
    pattern: String,
    queue: String,
}

/// The queue's fixed properties, compared on redeclaration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Props {
    kind: QueueKind,
    capacity: usize,
    overflow: Overflow,
    max_deliveries: Option<u32>,
}

struct Queue {
    id: u64,
    props: Props,
    /// Routing key of its dead letters on [`DEAD_LETTER_EXCHANGE`] (the spec's queue name,
    /// shared by all the exclusive queues of one broadcast); `None` for dead-letter queues.
    dead_letter_key: Option<String>,
    ready: VecDeque<Envelope>,
    unacked: usize,
    consumers: usize,
    signals: Arc<Signals>,
}

/// What tasks outside the lock wait on, per queue.
#[derive(Default)]
struct Signals {
    /// A message became ready (`notify_one`, passed on by a consumer that leaves more behind).
    available: Notify,
    /// A full `Block` queue got room (`notify_waiters`: every blocked publisher re-checks).
    space: Notify,
    /// The queue was deleted or the bus closed (`notify_waiters`).
    gone: Notify,
    /// Messages dropped by drop-oldest; outside the lock so a subscription can read it even
    /// after its queue is gone.
    dropped: AtomicU64,
}

impl Signals {
    fn wake_all(&self) {
        self.available.notify_waiters();
        self.space.notify_waiters();
        self.gone.notify_waiters();
    }
}

struct Envelope {
    message: Message,
    exchange: Arc<str>,
    routing_key: Arc<str>,
    deliveries: u32,
}

enum Take {
    Got(Envelope),
    Empty,
    Gone,
}

enum Outcome {
    Ack,
    Requeue,
    Reject,
}

impl Queue {
    fn new(id: u64, props: Props, dead_letter_key: Option<String>) -> Self {
        Self {
            id,
            props,
            dead_letter_key,
            ready: VecDeque::new(),
            unacked: 0,
            consumers: 0,
            signals: Arc::new(Signals::default()),
        }
    }

    fn is_full(&self) -> bool {
        self.ready.len() >= self.props.capacity
    }

    /// Appends, dropping the oldest ready messages if full (callers ensure `Block` queues have
    /// room, except for dead letters, which cannot wait).
    fn enqueue(&mut self, name: &str, envelope: Envelope) {
        while self.is_full() {
            if self.ready.pop_front().is_none() {
                break;
            }
            let dropped = self.signals.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            tracing::debug!(
                queue = name,
                dropped,
                "queue full: dropped its oldest message"
            );
        }
        self.ready.push_back(envelope);
        self.signals.available.notify_one();
    }
}

impl State {
    fn ensure_open(&self) -> Result<()> {
        if self.closed {
            Err(BusError::Closed)
        } else {
            Ok(())
        }
    }

    /// The distinct queues `routing_key` reaches on `exchange`.
    fn route(&self, exchange: &str, routing_key: &str) -> Result<Vec<String>> {
        let bindings = self
            .exchanges
            .get(exchange)
            .ok_or_else(|| BusError::UnknownExchange {
                exchange: exchange.to_string(),
            })?;
        let mut targets: Vec<String> = Vec::new();
        for binding in bindings {
            if !targets.contains(&binding.queue) && topic::matches(&binding.pattern, routing_key) {
                targets.push(binding.queue.clone());
            }
        }
        Ok(targets)
    }

    /// Enqueues to every queue the message routes to, or none: `Some((queue, signals))` of a
    /// full `Block` queue to wait on.
    fn try_publish(
        &mut self,
        exchange: &Arc<str>,
        routing_key: &Arc<str>,
        message: &Message,
    ) -> Result<Option<(String, Arc<Signals>)>> {
        self.ensure_open()?;
        let targets = self.route(exchange, routing_key)?;
        for name in &targets {
            if let Some(q) = self.queues.get(name) {
                if q.props.overflow == Overflow::Block && q.is_full() {
                    return Ok(Some((name.clone(), q.signals.clone())));
                }
            }
        }
        for name in &targets {
            if let Some(q) = self.queues.get_mut(name) {
                let envelope = Envelope {
                    message: message.clone(),
                    exchange: exchange.clone(),
                    routing_key: routing_key.clone(),
                    deliveries: 0,
                };
                q.enqueue(name, envelope);
            }
        }
        Ok(None)
    }

    fn queue(&mut self, name: &str, id: u64) -> Option<&mut Queue> {
        if self.closed {
            return None;
        }
        self.queues.get_mut(name).filter(|q| q.id == id)
    }

    fn is_live(&self, name: &str, id: u64) -> bool {
        !self.closed && self.queues.get(name).is_some_and(|q| q.id == id)
    }

    fn take(&mut self, name: &str, id: u64) -> Take {
        let Some(q) = self.queue(name, id) else {
            return Take::Gone;
        };
        let Some(mut envelope) = q.ready.pop_front() else {
            return Take::Empty;
        };
        envelope.deliveries = envelope.deliveries.saturating_add(1);
        q.unacked += 1;
        if q.props.overflow == Overflow::Block && q.ready.len() + 1 == q.props.capacity {
            // It was full and now has room.
            q.signals.space.notify_waiters();
        }
        if !q.ready.is_empty() {
            // Pass the baton: a notification may have been spent on us.
            q.signals.available.notify_one();
        }
        Take::Got(envelope)
    }

    fn settle(&mut self, name: &str, id: u64, envelope: Envelope, outcome: Outcome) {
        let Some(q) = self.queue(name, id) else {
            // The queue (and the message with it) is gone.
            return;
        };
        q.unacked = q.unacked.saturating_sub(1);
        let reason = match outcome {
            Outcome::Ack => return,
            Outcome::Requeue => match q.props.max_deliveries {
                Some(max) if envelope.deliveries >= max => format!("delivery limit {max} reached"),
                _ => {
                    q.ready.push_front(envelope);
                    q.signals.available.notify_one();
                    return;
                }
            },
            Outcome::Reject => "rejected".to_string(),
        };
        let Some(key) = q.dead_letter_key.clone() else {
            tracing::debug!(
                queue = name,
                reason,
                "dead letter discarded (no dead-letter queue)"
            );
            return;
        };
        self.dead_letter(name, &key, envelope, reason);
    }

    /// Routes a dead message to the dead-letter exchange; never waits (drop-oldest if full).
    fn dead_letter(&mut self, from: &str, key: &str, envelope: Envelope, reason: String) {
        let message = envelope
            .message
            .with_header(HEADER_DEATH_REASON, reason.clone())
            .with_header(HEADER_DEATH_QUEUE, from)
            .with_header(HEADER_DEATH_EXCHANGE, &*envelope.exchange)
            .with_header(HEADER_DEATH_ROUTING_KEY, &*envelope.routing_key)
            .with_header(HEADER_DEATH_COUNT, envelope.deliveries.to_string());
        let targets = self.route(DEAD_LETTER_EXCHANGE, key).unwrap_or_default();
        if targets.is_empty() {
            tracing::warn!(
                queue = from,
                reason,
                "dead letter lost: its dead-letter queue is gone"
            );
        }
        let exchange: Arc<str> = DEAD_LETTER_EXCHANGE.into();
        let routing_key: Arc<str> = key.into();
        for name in targets {
            if let Some(q) = self.queues.get_mut(&name) {
                if q.is_full() {
                    tracing::warn!(queue = %name, "dead-letter queue full: dropping its oldest");
                }
                let envelope = Envelope {
                    message: message.clone(),
                    exchange: exchange.clone(),
                    routing_key: routing_key.clone(),
                    deliveries: 0,
                };
                q.enqueue(&name, envelope);
            }
        }
    }

    /// Declares (or checks) a queue; returns its id and signals. Does not bind.
    fn declare_queue(
        &mut self,
        name: &str,
        props: Props,
        dead_letter_key: Option<String>,
    ) -> Result<(u64, Arc<Signals>)> {
        if let Some(q) = self.queues.get(name) {
            check_props(name, q.props, props)?;
            return Ok((q.id, q.signals.clone()));
        }
        self.next_queue_id += 1;
        let q = Queue::new(self.next_queue_id, props, dead_letter_key);
        let out = (q.id, q.signals.clone());
        self.queues.insert(name.to_string(), q);
        Ok(out)
    }

    fn bind(&mut self, exchange: &str, pattern: &str, queue: &str) {
        let bindings = self.exchanges.entry(exchange.to_string()).or_default();
        if !bindings
            .iter()
            .any(|b| b.pattern == pattern && b.queue == queue)
        {
            bindings.push(Binding {
                pattern: pattern.to_string(),
                queue: queue.to_string(),
            });
        }
    }

    fn delete_queue(&mut self, name: &str) {
        if let Some(q) = self.queues.remove(name) {
            for bindings in self.exchanges.values_mut() {
                bindings.retain(|b| b.queue != name);
            }
            q.signals.wake_all();
        }
    }
}

/// Refuses routing keys longer than AMQP's short string.
fn check_routing_key(routing_key: &str) -> Result<()> {
    if routing_key.len() > MAX_NAME_LEN {
        return Err(BusError::Invalid {
            what: "routing key",
            reason: format!("longer than {MAX_NAME_LEN} bytes"),
        });
    }
    Ok(())
}

fn check_props(name: &str, have: Props, want: Props) -> Result<()> {
    let mismatch = |what: &str, have: &dyn std::fmt::Debug, want: &dyn std::fmt::Debug| {
        Err(BusError::QueueMismatch {
            queue: name.to_string(),
            reason: format!("{what} {have:?}, not {want:?}"),
        })
    };
    if have.kind != want.kind {
        return mismatch("kind", &have.kind, &want.kind);
    }
    if have.capacity != want.capacity {
        return mismatch("capacity", &have.capacity, &want.capacity);
    }
    if have.overflow != want.overflow {
        return mismatch("overflow", &have.overflow, &want.overflow);
    }
    if have.max_deliveries != want.max_deliveries {
        return mismatch("max_deliveries", &have.max_deliveries, &want.max_deliveries);
    }
    Ok(())
}

fn props_of(spec: &SubscribeSpec) -> Props {
    Props {
        kind: spec.kind,
        capacity: spec.capacity,
        overflow: spec.overflow,
        max_deliveries: spec.max_deliveries,
    }
}

impl MemoryBus {
    /// A new, empty bus (only the dead-letter exchange is declared).
    pub fn new() -> Self {
        let mut state = State::default();
        state
            .exchanges
            .insert(DEAD_LETTER_EXCHANGE.to_string(), Vec::new());
        Self {
            shared: Arc::new(Shared {
                state: Mutex::new(state),
            }),
        }
    }

    /// A snapshot of queue `name`, if it exists.
    pub fn stats(&self, name: &str) -> Option<QueueStats> {
        let state = self.shared.lock();
        state.queues.get(name).map(|q| QueueStats {
            ready: q.ready.len(),
            unacked: q.unacked,
            consumers: q.consumers,
            dropped: q.signals.dropped.load(Ordering::Relaxed),
        })
    }

    fn subscribe_now(&self, spec: &SubscribeSpec) -> Result<(String, u64, Arc<Signals>)> {
        let mut state = self.shared.lock();
        state.ensure_open()?;
        if !state.exchanges.contains_key(&spec.exchange) {
            return Err(BusError::UnknownExchange {
                exchange: spec.exchange.clone(),
            });
        }
        let name = match spec.kind {
            QueueKind::WorkQueue => spec.queue.clone(),
            QueueKind::Broadcast => format!("{}.{}", spec.queue, uuid::Uuid::new_v4().simple()),
        };
        validate_name("queue name", &name)?;
        // Dead-letter queues have none of their own: rejecting a dead letter discards it.
        let dead = (spec.exchange != DEAD_LETTER_EXCHANGE).then(|| {
            let dead = SubscribeSpec::dead_letters(&spec.queue);
            (dead.queue.clone(), props_of(&dead))
        });
        // Check everything before changing anything.
        if let Some(q) = state.queues.get(&name) {
            check_props(&name, q.props, props_of(spec))?;
        }
        if let Some((dead_name, dead_props)) = &dead {
            validate_name("dead-letter queue name", dead_name)?;
            if let Some(q) = state.queues.get(dead_name) {
                check_props(dead_name, q.props, *dead_props)?;
            }
        }
        if let Some((dead_name, dead_props)) = dead {
            state.declare_queue(&dead_name, dead_props, None)?;
            state.bind(DEAD_LETTER_EXCHANGE, &spec.queue, &dead_name);
        }
        let dead_letter_key = (spec.exchange != DEAD_LETTER_EXCHANGE).then(|| spec.queue.clone());
        let (id, signals) = state.declare_queue(&name, props_of(spec), dead_letter_key)?;
        for pattern in &spec.bindings {
            state.bind(&spec.exchange, pattern, &name);
        }
        if let Some(q) = state.queues.get_mut(&name) {
            q.consumers += 1;
        }
        Ok((name, id, signals))
    }
}

impl Default for MemoryBus {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait]
impl Bus for MemoryBus {
    fn backend(&self) -> &'static str {
        "memory"
    }

    async fn declare_exchange(&self, name: &str) -> Result<()> {
        validate_name("exchange name", name)?;
        let mut state = self.shared.lock();
        state.ensure_open()?;
        state.exchanges.entry(name.to_string()).or_default();
        Ok(())
    }

    async fn try_publish(&self, exchange: &str, routing_key: &str, message: Message) -> Result<()> {
        check_routing_key(routing_key)?;
        let blocked =
            self.shared
                .lock()
                .try_publish(&exchange.into(), &routing_key.into(), &message)?;
        match blocked {
            None => Ok(()),
            Some((queue, _)) => Err(BusError::Full { queue }),
        }
    }

    async fn publish(&self, exchange: &str, routing_key: &str, message: Message) -> Result<()> {
        check_routing_key(routing_key)?;
        let exchange: Arc<str> = exchange.into();
        let routing_key: Arc<str> = routing_key.into();
        loop {
            let blocked = self
                .shared
                .lock()
                .try_publish(&exchange, &routing_key, &message)?;
            let Some((_, blocked)) = blocked else {
                return Ok(());
            };
            // Register for `space` before looking again, so a consumer freeing room between the
            // two looks cannot be missed.
            let notified = blocked.space.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let again = self
                .shared
                .lock()
                .try_publish(&exchange, &routing_key, &message)?;
            match again {
                None => return Ok(()),
                Some((_, still)) if Arc::ptr_eq(&still, &blocked) => notified.await,
                Some(_) => {} // Blocked elsewhere now: wait on that one.
            }
        }
    }

    async fn subscribe(&self, spec: SubscribeSpec) -> Result<Subscription> {
        spec.validate()?;
        let (queue, queue_id, signals) = self.subscribe_now(&spec)?;
        let core = Arc::new(ConsumerCore {
            shared: self.shared.clone(),
            queue: queue.into(),
            queue_id,
            signals,
            kind: spec.kind,
            prefetch: Arc::new(Semaphore::new(usize::from(spec.prefetch))),
        });
        Ok(Subscription::new(Box::new(MemoryConsumer {
            core,
            pending: None,
        })))
    }

    async fn delete_queue(&self, queue: &str) -> Result<()> {
        let mut state = self.shared.lock();
        state.ensure_open()?;
        state.delete_queue(queue);
        Ok(())
    }

    async fn close(&self) -> Result<()> {
        let mut state = self.shared.lock();
        state.closed = true;
        for (_, q) in state.queues.drain() {
            q.signals.wake_all();
        }
        state.exchanges.clear();
        Ok(())
    }
}

/// What a subscription and its in-flight `recv` share.
struct ConsumerCore {
    shared: Arc<Shared>,
    queue: Arc<str>,
    queue_id: u64,
    signals: Arc<Signals>,
    kind: QueueKind,
    /// `prefetch` permits; each unsettled delivery holds one.
    prefetch: Arc<Semaphore>,
}

type Recv = Pin<Box<dyn Future<Output = Option<Result<Delivery>>> + Send>>;

struct MemoryConsumer {
    core: Arc<ConsumerCore>,
    /// The `recv` in progress, kept across polls so that a cancelled `next()` loses nothing.
    pending: Option<Recv>,
}

impl MemoryConsumer {
    async fn recv(core: Arc<ConsumerCore>) -> Option<Result<Delivery>> {
        let permit = loop {
            let gone = core.signals.gone.notified();
            tokio::pin!(gone);
            gone.as_mut().enable();
            if !core.shared.lock().is_live(&core.queue, core.queue_id) {
                return None;
            }
            tokio::select! {
                // The semaphore is never closed; `None` would only end the subscription.
                permit = core.prefetch.clone().acquire_owned() => match permit {
                    Ok(permit) => break permit,
                    Err(_) => return None,
                },
                () = &mut gone => {}
            }
        };
        loop {
            let available = core.signals.available.notified();
            tokio::pin!(available);
            available.as_mut().enable();
            let taken = core.shared.lock().take(&core.queue, core.queue_id);
            match taken {
                Take::Gone => return None,
                Take::Empty => available.await,
                Take::Got(envelope) => {
                    let info = DeliveryInfo {
                        queue: core.queue.to_string(),
                        exchange: envelope.exchange.to_string(),
                        routing_key: envelope.routing_key.to_string(),
                        redelivered: envelope.deliveries > 1,
                        delivery_count: envelope.deliveries,
                    };
                    let message = envelope.message.clone();
                    let acker = MemoryAcker {
                        shared: core.shared.clone(),
                        queue: core.queue.clone(),
                        queue_id: core.queue_id,
                        envelope: Some(envelope),
                        permit: Some(permit),
                    };
                    return Some(Ok(Delivery::new(message, info, Box::new(acker))));
                }
            }
        }
    }
}

impl Consumer for MemoryConsumer {
    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Delivery>>> {
        let core = &self.core;
        let pending = self
            .pending
            .get_or_insert_with(|| Box::pin(Self::recv(core.clone())));
        let out = pending.as_mut().poll(cx);
        if out.is_ready() {
            self.pending = None;
        }
        out
    }

    fn queue(&self) -> &str {
        &self.core.queue
    }

    fn dropped(&self) -> Option<u64> {
        Some(self.core.signals.dropped.load(Ordering::Relaxed))
    }
}

impl Drop for MemoryConsumer {
    fn drop(&mut self) {
        let core = &self.core;
        let mut state = core.shared.lock();
        let Some(q) = state.queue(&core.queue, core.queue_id) else {
            return;
        };
        q.consumers = q.consumers.saturating_sub(1);
        if core.kind == QueueKind::Broadcast {
            // Exclusive queue: it dies with its subscription.
            state.delete_queue(&core.queue);
        }
    }
}

/// Settles one delivery; dropped unsettled, it requeues.
struct MemoryAcker {
    shared: Arc<Shared>,
    queue: Arc<str>,
    queue_id: u64,
    /// `Some` until settled.
    envelope: Option<Envelope>,
    /// The subscription's prefetch slot, freed on settlement.
    permit: Option<OwnedSemaphorePermit>,
}

impl MemoryAcker {
    fn settle(&mut self, outcome: Outcome) {
        if let Some(envelope) = self.envelope.take() {
            self.shared
                .lock()
                .settle(&self.queue, self.queue_id, envelope, outcome);
        }
        self.permit = None;
    }
}

#[async_trait]
impl Acker for MemoryAcker {
    async fn ack(&mut self) -> Result<()> {
        self.settle(Outcome::Ack);
        Ok(())
    }

    async fn nack(&mut self, requeue: bool) -> Result<()> {
        self.settle(if requeue {
            Outcome::Requeue
        } else {
            Outcome::Reject
        });
        Ok(())
    }
}

impl Drop for MemoryAcker {
    fn drop(&mut self) {
        self.settle(Outcome::Requeue);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::time::Duration;

    const X: &str = "x";

    async fn bus() -> MemoryBus {
        let bus = MemoryBus::new();
        bus.declare_exchange(X).await.expect("declare");
        bus
    }

    async fn next(sub: &mut Subscription) -> Delivery {
        tokio::time::timeout(Duration::from_secs(5), sub.next())
            .await
            .expect("a delivery in time")
            .expect("subscription open")
            .expect("delivery ok")
    }

    #[tokio::test]
    async fn stats_follow_take_and_settle() {
        let bus = bus().await;
        let mut sub = bus
            .subscribe(SubscribeSpec::work("q", X, ["#"]))
            .await
            .expect("sub");
        for i in 0..3 {
            bus.publish_json(X, "k", &json!(i)).await.expect("publish");
        }
        let stats = |bus: &MemoryBus| bus.stats("q").expect("queue exists");
        assert_eq!(
            stats(&bus),
            QueueStats {
                ready: 3,
                unacked: 0,
                consumers: 1,
                dropped: 0
            }
        );
        let d = next(&mut sub).await;
        assert_eq!((stats(&bus).ready, stats(&bus).unacked), (2, 1));
        d.ack().await.expect("ack");
        assert_eq!((stats(&bus).ready, stats(&bus).unacked), (2, 0));
        drop(next(&mut sub).await);
        assert_eq!((stats(&bus).ready, stats(&bus).unacked), (2, 0));
        drop(sub);
        assert_eq!(stats(&bus).consumers, 0);
        assert!(
            bus.stats("q.dead").is_some(),
            "dead-letter queue declared with its queue"
        );
    }

    #[tokio::test]
    async fn broadcast_queue_dies_with_its_subscription_and_counts_drops() {
        let bus = bus().await;
        let spec = SubscribeSpec::broadcast("obs", X, ["#"]).with_capacity(2);
        let sub = bus.subscribe(spec).await.expect("sub");
        let name = sub.queue().to_string();
        assert!(name.starts_with("obs."), "{name}");
        for i in 0..5 {
            bus.publish_json(X, "k", &json!(i))
                .await
                .expect("never blocks");
        }
        assert_eq!(bus.stats(&name).map(|s| (s.ready, s.dropped)), Some((2, 3)));
        assert_eq!(sub.dropped(), Some(3));
        drop(sub);
        assert_eq!(bus.stats(&name), None);
    }

    #[tokio::test]
    async fn close_wakes_a_consumer_waiting_on_prefetch() {
        let bus = bus().await;
        let spec = SubscribeSpec::work("q", X, ["#"]).with_prefetch(1);
        let mut sub = bus.subscribe(spec).await.expect("sub");
        bus.publish_json(X, "k", &json!(1)).await.expect("publish");
        bus.publish_json(X, "k", &json!(2)).await.expect("publish");
        let held = next(&mut sub).await;
        let waiter = tokio::spawn(async move { sub.next().await.is_none() });
        tokio::time::sleep(Duration::from_millis(20)).await;
        bus.close().await.expect("close");
        let ended = tokio::time::timeout(Duration::from_secs(5), waiter).await;
        assert!(matches!(ended, Ok(Ok(true))), "subscription ends on close");
        held.ack().await.expect("settling after close is a no-op");
        assert!(matches!(
            bus.publish_json(X, "k", &json!(3)).await,
            Err(BusError::Closed)
        ));
    }

    #[tokio::test]
    async fn late_settlement_does_not_touch_a_redeclared_queue() {
        let bus = bus().await;
        let spec = SubscribeSpec::work("q", X, ["#"]);
        let mut sub = bus.subscribe(spec.clone()).await.expect("sub");
        bus.publish_json(X, "k", &json!("old"))
            .await
            .expect("publish");
        let old = next(&mut sub).await;
        bus.delete_queue("q").await.expect("delete");
        let _sub2 = bus.subscribe(spec).await.expect("redeclare");
        drop(old); // would requeue into the old queue: must not appear in the new one
        assert_eq!(bus.stats("q").map(|s| (s.ready, s.unacked)), Some((0, 0)));
    }
}
