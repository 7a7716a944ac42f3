//! The message bus: the [`Bus`] trait every backend implements (in-process [`MemoryBus`] now,
//! RabbitMQ later), what it carries ([`Message`], [`Delivery`], [`Subscription`]), StackStorm's
//! exchange and queue [`names`], topic matching ([`topic`]) and the [`conformance`] suite.
//!
//! The model is AMQP's, so a RabbitMQ backend maps onto it one to one:
//! - **exchanges** are topic exchanges, declared by name; [`Bus::publish`] sends a [`Message`] to
//!   one with a routing key. A message no queue is bound for is dropped (AMQP without
//!   `mandatory`).
//! - **queues** are declared and bound by [`Bus::subscribe`] from a [`SubscribeSpec`]: binding
//!   keys are topic patterns (`*` one word, `#` zero or more). A queue bound by several matching
//!   patterns gets one copy.
//!   - [`QueueKind::WorkQueue`]: a named, durable queue shared by competing consumers: each
//!     message goes to exactly one of them. It outlives its subscriptions.
//!   - [`QueueKind::Broadcast`]: every subscription gets an exclusive queue of its own, named
//!     `<queue>.<unique suffix>` and deleted when the subscription is dropped, so every
//!     subscriber gets every message.
//! - **settlement**: at most [`SubscribeSpec::prefetch`] deliveries per consumer are unsettled
//!   at once (AMQP `basic.qos`); see [`Delivery`] for ack, nack and drop.
//! - **dead letters**: a message nacked without requeue, or requeued after
//!   [`SubscribeSpec::max_deliveries`] deliveries, moves to the queue `<queue>.dead` (bound to
//!   [`names::DEAD_LETTER_EXCHANGE`] with routing key `<queue>`, declared with its queue) with
//!   the `x-death-*` headers of [`message`]; consume it with [`SubscribeSpec::dead_letters`].
//!
//! # Bounds and backpressure
//! Every queue holds at most [`SubscribeSpec::capacity`] *ready* messages (as RabbitMQ's
//! `x-max-length`; unsettled deliveries are bounded separately by prefetch × consumers, and a
//! requeued message always goes back, even past the bound). What happens when a publish finds a
//! queue full is its [`Overflow`] policy:
//! - [`Overflow::Block`] (the default of work queues): `publish` waits, asynchronously, until
//!   every full queue it routes to has room, then enqueues to all of them. Nothing is dropped;
//!   a slow consumer slows its publishers. (AMQP: `x-overflow = reject-publish` plus publisher
//!   confirms, the publisher retrying rejected messages.)
//! - [`Overflow::DropOldest`] (the default of broadcast queues, whose subscribers are observers
//!   such as the event stream): the oldest ready message is dropped and counted
//!   ([`Subscription::dropped`]); the publisher never waits for a lagging observer.
//!   (AMQP: `x-overflow = drop-head`.) Dead-letter queues use it too: dead-lettering happens on
//!   a drop, which cannot wait.
//!
//! This module must not know about the store, HTTP or what the messages mean.

pub mod amqp;
pub mod conformance;
mod error;
pub mod memory;
pub mod message;
pub mod names;
pub mod topic;

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;

pub use amqp::AmqpBus;
pub use error::BusError;
pub use memory::MemoryBus;
pub use message::{Acker, Consumer, Delivery, DeliveryInfo, Message, Subscription};

/// Result of bus operations.
pub type Result<T, E = BusError> = std::result::Result<T, E>;

/// Default of [`SubscribeSpec::prefetch`].
pub const DEFAULT_PREFETCH: u16 = 16;
/// Default of [`SubscribeSpec::capacity`].
pub const DEFAULT_CAPACITY: usize = 1024;
/// Default of [`SubscribeSpec::max_deliveries`].
pub const DEFAULT_MAX_DELIVERIES: u32 = 5;
/// Capacity of every dead-letter queue (drop-oldest beyond it).
pub const DEAD_LETTER_CAPACITY: usize = 10_000;
/// Longest exchange or queue name, in bytes (AMQP's short string).
pub const MAX_NAME_LEN: usize = 255;

/// How a queue is shared between subscriptions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueKind {
    /// A named durable queue; its subscriptions compete: each message to exactly one of them.
    WorkQueue,
    /// An exclusive queue per subscription: every subscription gets every message.
    Broadcast,
}

/// What a publish does when a queue it routes to is at capacity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overflow {
    /// The publisher waits until there is room. Never drops.
    Block,
    /// The queue's oldest ready message is dropped (and counted) to make room.
    DropOldest,
}

/// A queue to declare, bind and consume: see the module docs for what each field maps to.
///
/// The queue's own properties (`kind`, `capacity`, `overflow`, `max_deliveries`) are fixed by
/// its first declaration; declaring it again with others fails with
/// [`BusError::QueueMismatch`]. Bindings add up; `prefetch` is per subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscribeSpec {
    /// The queue's name; for [`QueueKind::Broadcast`], the prefix of each subscription's queue.
    pub queue: String,
    /// The exchange the queue is bound to.
    pub exchange: String,
    /// Binding keys: topic patterns (`*` = one word, `#` = zero or more words).
    pub bindings: Vec<String>,
    /// Shared (competing consumers) or per subscription (broadcast).
    pub kind: QueueKind,
    /// Most unsettled deliveries this subscription holds at once (at least 1).
    pub prefetch: u16,
    /// Most ready messages the queue holds (at least 1).
    pub capacity: usize,
    /// What a publish does when the queue is full.
    pub overflow: Overflow,
    /// Deliveries after which a requeued message is dead-lettered instead; `None`: never.
    pub max_deliveries: Option<u32>,
}

impl SubscribeSpec {
    /// A work queue (competing consumers, [`Overflow::Block`]) with the default bounds.
    pub fn work(
        queue: impl Into<String>,
        exchange: impl Into<String>,
        bindings: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        Self {
            queue: queue.into(),
            exchange: exchange.into(),
            bindings: bindings.into_iter().map(Into::into).collect(),
            kind: QueueKind::WorkQueue,
            prefetch: DEFAULT_PREFETCH,
            capacity: DEFAULT_CAPACITY,
            overflow: Overflow::Block,
            max_deliveries: Some(DEFAULT_MAX_DELIVERIES),
        }
    }

    /// A broadcast subscription (own exclusive queue, [`Overflow::DropOldest`]) with the default
    /// bounds; `queue` is the prefix of the generated queue name.
    pub fn broadcast(
        queue: impl Into<String>,
        exchange: impl Into<String>,
        bindings: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        Self {
            kind: QueueKind::Broadcast,
            overflow: Overflow::DropOldest,
            ..Self::work(queue, exchange, bindings)
        }
    }

    /// One of StackStorm's well-known work queues ([`names::ST2_QUEUES`]).
    pub fn st2(name: &names::QueueName) -> Self {
        Self::work(name.queue, name.exchange, [name.binding])
    }

    /// The dead-letter queue of `queue`, exactly as it is declared alongside `queue`.
    pub fn dead_letters(queue: &str) -> Self {
        Self {
            capacity: DEAD_LETTER_CAPACITY,
            overflow: Overflow::DropOldest,
            max_deliveries: None,
            ..Self::work(
                names::dead_letter_queue(queue),
                names::DEAD_LETTER_EXCHANGE,
                [queue],
            )
        }
    }

    /// This spec with another prefetch.
    pub fn with_prefetch(mut self, prefetch: u16) -> Self {
        self.prefetch = prefetch;
        self
    }

    /// This spec with another capacity.
    pub fn with_capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity;
        self
    }

    /// This spec with another overflow policy.
    pub fn with_overflow(mut self, overflow: Overflow) -> Self {
        self.overflow = overflow;
        self
    }

    /// This spec with another delivery limit (`None`: never dead-letter on redelivery).
    pub fn with_max_deliveries(mut self, max_deliveries: Option<u32>) -> Self {
        self.max_deliveries = max_deliveries;
        self
    }

    /// Checks names, patterns and bounds; backends call it first in [`Bus::subscribe`].
    pub fn validate(&self) -> Result<()> {
        validate_name("queue name", &self.queue)?;
        validate_name("exchange name", &self.exchange)?;
        if self.queue.contains(['*', '#']) {
            return Err(invalid(
                "queue name",
                format!("{:?} contains `*` or `#`", self.queue),
            ));
        }
        if self.bindings.is_empty() {
            return Err(invalid(
                "bindings",
                "at least one binding key is needed".into(),
            ));
        }
        for binding in &self.bindings {
            if binding.len() > MAX_NAME_LEN {
                return Err(invalid(
                    "binding key",
                    format!("longer than {MAX_NAME_LEN} bytes"),
                ));
            }
        }
        if self.prefetch == 0 {
            return Err(invalid("prefetch", "must be at least 1".into()));
        }
        if self.capacity == 0 {
            return Err(invalid("capacity", "must be at least 1".into()));
        }
        if self.max_deliveries == Some(0) {
            return Err(invalid(
                "max_deliveries",
                "must be at least 1 (or None)".into(),
            ));
        }
        Ok(())
    }
}

fn invalid(what: &'static str, reason: String) -> BusError {
    BusError::Invalid { what, reason }
}

/// Checks an exchange or queue name: non-empty, at most [`MAX_NAME_LEN`] bytes.
pub fn validate_name(what: &'static str, name: &str) -> Result<()> {
    if name.is_empty() {
        return Err(invalid(what, "must not be empty".into()));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(invalid(
            what,
            format!("{name:?} is longer than {MAX_NAME_LEN} bytes"),
        ));
    }
    Ok(())
}

/// The messaging seam. Every backend implements it and passes [`conformance`]; services hold an
/// `Arc<dyn Bus>`.
#[async_trait]
pub trait Bus: Send + Sync + 'static {
    /// The backend's name, as in the configuration (`memory`, `amqp`).
    fn backend(&self) -> &'static str;

    /// Declares the topic exchange `name` (idempotent).
    async fn declare_exchange(&self, name: &str) -> Result<()>;

    /// Publishes `message` to `exchange` with `routing_key`; every queue bound with a matching
    /// pattern gets a copy. Waits while a [`Overflow::Block`] queue it routes to is full.
    async fn publish(&self, exchange: &str, routing_key: &str, message: Message) -> Result<()>;

    /// Publishes like [`Bus::publish`] but never waits: when a [`Overflow::Block`] queue it
    /// routes to is full, nothing is enqueued anywhere and the result is [`BusError::Full`].
    /// Services that hold a delivery while publishing use it to break wait cycles.
    async fn try_publish(&self, exchange: &str, routing_key: &str, message: Message) -> Result<()>;

    /// [`Bus::try_publish`] of `value` as a JSON message.
    async fn try_publish_json(
        &self,
        exchange: &str,
        routing_key: &str,
        value: &Value,
    ) -> Result<()> {
        self.try_publish(exchange, routing_key, Message::json(value))
            .await
    }

    /// Declares the queue of `spec` (and its dead-letter queue), binds it and starts consuming.
    async fn subscribe(&self, spec: SubscribeSpec) -> Result<Subscription>;

    /// Declares the queue of `spec` (and its dead-letter queue) and binds it, without
    /// consuming: messages routed to it from now on are kept for a later consumer. Only
    /// [`QueueKind::WorkQueue`] queues outlive this call. The default subscribes and drops the
    /// subscription at once, which suits a bus whose queues start empty (the in-process bus).
    async fn declare_queue(&self, spec: SubscribeSpec) -> Result<()> {
        drop(self.subscribe(spec).await?);
        Ok(())
    }

    /// Deletes a queue with its messages and bindings (idempotent); its subscriptions end.
    async fn delete_queue(&self, queue: &str) -> Result<()>;

    /// Closes the bus: subscriptions end, publish and subscribe fail with [`BusError::Closed`].
    async fn close(&self) -> Result<()>;

    /// Publishes `value` as a JSON message.
    async fn publish_json(&self, exchange: &str, routing_key: &str, value: &Value) -> Result<()> {
        self.publish(exchange, routing_key, Message::json(value))
            .await
    }

    /// Declares every StackStorm exchange ([`names::EXCHANGES`]).
    async fn declare_st2_exchanges(&self) -> Result<()> {
        for exchange in names::EXCHANGES {
            self.declare_exchange(exchange).await?;
        }
        Ok(())
    }
}

/// A bus shared by the services of one process.
pub type SharedBus = Arc<dyn Bus>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_validation() {
        let ok = SubscribeSpec::work("q", "x", ["#"]);
        assert!(ok.validate().is_ok());
        let long = "q".repeat(MAX_NAME_LEN + 1);
        let cases: Vec<(SubscribeSpec, &str)> = vec![
            (
                SubscribeSpec {
                    queue: String::new(),
                    ..ok.clone()
                },
                "queue name",
            ),
            (
                SubscribeSpec {
                    queue: long,
                    ..ok.clone()
                },
                "queue name",
            ),
            (
                SubscribeSpec {
                    queue: "a.*".into(),
                    ..ok.clone()
                },
                "queue name",
            ),
            (
                SubscribeSpec {
                    exchange: String::new(),
                    ..ok.clone()
                },
                "exchange name",
            ),
            (
                SubscribeSpec {
                    bindings: vec![],
                    ..ok.clone()
                },
                "bindings",
            ),
            (ok.clone().with_prefetch(0), "prefetch"),
            (ok.clone().with_capacity(0), "capacity"),
            (ok.clone().with_max_deliveries(Some(0)), "max_deliveries"),
        ];
        for (spec, expected) in cases {
            match spec.validate() {
                Err(BusError::Invalid { what, .. }) => assert_eq!(what, expected, "{spec:?}"),
                other => panic!("{spec:?}: expected invalid {expected}, got {other:?}"),
            }
        }
    }

    #[test]
    fn spec_defaults() {
        let b = SubscribeSpec::broadcast("st2.stream", names::EXECUTION, ["#"]);
        assert_eq!(
            (b.kind, b.overflow),
            (QueueKind::Broadcast, Overflow::DropOldest)
        );
        let w = SubscribeSpec::st2(&names::ST2_QUEUES[2]);
        assert_eq!(w.queue, names::ACTIONRUNNER_WORK);
        assert_eq!(
            (w.kind, w.overflow),
            (QueueKind::WorkQueue, Overflow::Block)
        );
        assert_eq!(w.max_deliveries, Some(DEFAULT_MAX_DELIVERIES));
        let d = SubscribeSpec::dead_letters(names::ACTIONRUNNER_WORK);
        assert_eq!(d.queue, "st2.actionrunner.work.dead");
        assert_eq!(d.bindings, vec![names::ACTIONRUNNER_WORK.to_string()]);
        assert_eq!(d.exchange, names::DEAD_LETTER_EXCHANGE);
    }
}
