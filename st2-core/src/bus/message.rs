//! What travels on the bus: [`Message`]s going out, [`Delivery`]s coming in through a
//! [`Subscription`], and the two small traits ([`Acker`], [`Consumer`]) a backend implements to
//! produce them.
//!
//! Owns the settlement contract: a delivery is settled exactly once, by [`Delivery::ack`],
//! [`Delivery::nack`], or by being dropped (which counts as `nack(requeue = true)`, so a consumer
//! that crashes or is cancelled mid-work loses nothing). This module knows no backend.

use std::collections::BTreeMap;
use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use super::{BusError, Result};

/// Content type of JSON messages (the default).
pub const CONTENT_TYPE_JSON: &str = "application/json";

/// Header a dead-lettered message carries: why it was dead-lettered (`rejected`, or
/// `delivery limit N reached`).
pub const HEADER_DEATH_REASON: &str = "x-death-reason";
/// Header a dead-lettered message carries: the queue it died in.
pub const HEADER_DEATH_QUEUE: &str = "x-death-queue";
/// Header a dead-lettered message carries: the exchange it was first published to.
pub const HEADER_DEATH_EXCHANGE: &str = "x-death-exchange";
/// Header a dead-lettered message carries: the routing key it was first published with.
pub const HEADER_DEATH_ROUTING_KEY: &str = "x-death-routing-key";
/// Header a dead-lettered message carries: how many times it had been delivered.
pub const HEADER_DEATH_COUNT: &str = "x-death-count";

/// One message: an opaque payload, its content type and string headers (AMQP properties).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The body. `Bytes`, so fanning out to many queues copies no payload.
    pub payload: Bytes,
    /// MIME type of the payload ([`CONTENT_TYPE_JSON`] for the JSON helpers).
    pub content_type: String,
    /// Application headers (`St2-Trace-Tag`, the `x-death-*` headers of dead letters, ...).
    pub headers: BTreeMap<String, String>,
}

impl Message {
    /// A message with this payload and content type and no headers.
    pub fn new(payload: impl Into<Bytes>, content_type: impl Into<String>) -> Self {
        Self {
            payload: payload.into(),
            content_type: content_type.into(),
            headers: BTreeMap::new(),
        }
    }

    /// A JSON message holding `value`.
    pub fn json(value: &Value) -> Self {
        let payload = serde_json::to_vec(value).expect("a serde_json::Value always serializes");
        Self::new(payload, CONTENT_TYPE_JSON)
    }

    /// A JSON message holding `value` serialized.
    pub fn to_json<T: Serialize + ?Sized>(value: &T) -> Result<Self> {
        let payload = serde_json::to_vec(value).map_err(|source| BusError::Encode { source })?;
        Ok(Self::new(payload, CONTENT_TYPE_JSON))
    }

    /// This message with header `name` set to `value`.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.insert(name.into(), value.into());
        self
    }

    /// The value of header `name`, if set.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    /// The payload parsed as JSON.
    pub fn value(&self) -> Result<Value> {
        self.decode()
    }

    /// The payload parsed as JSON into `T`.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_slice(&self.payload).map_err(|source| BusError::Decode {
            content_type: self.content_type.clone(),
            source,
        })
    }
}

/// Where a delivery came from and how often it was delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryInfo {
    /// The queue it was taken from.
    pub queue: String,
    /// The exchange it was published to.
    pub exchange: String,
    /// The routing key it was published with.
    pub routing_key: String,
    /// True if it was delivered before (and requeued, or its consumer went away).
    pub redelivered: bool,
    /// How many times it has been delivered, this time included (1 on first delivery).
    pub delivery_count: u32,
}

/// How a backend settles one delivery with its queue.
///
/// Contract: at most one of `ack`/`nack` is called; dropping an acker on which neither completed
/// must requeue the message (as `nack(true)`), synchronously or by spawning the work.
#[async_trait::async_trait]
pub trait Acker: Send + Sync + 'static {
    /// The message was handled: remove it from the queue.
    async fn ack(&mut self) -> Result<()>;

    /// The message was not handled: requeue it (redelivered later, possibly to another consumer,
    /// or dead-lettered once it reached its delivery limit), or dead-letter it now.
    async fn nack(&mut self, requeue: bool) -> Result<()>;
}

/// One message taken from a queue, to settle with [`ack`](Self::ack) or
/// [`nack`](Self::nack); dropping it unsettled requeues it.
pub struct Delivery {
    message: Message,
    info: DeliveryInfo,
    // Dropping it unsettled requeues the message (the `Acker` contract).
    acker: Box<dyn Acker>,
}

impl Delivery {
    /// A delivery, for backends.
    pub fn new(message: Message, info: DeliveryInfo, acker: Box<dyn Acker>) -> Self {
        Self {
            message,
            info,
            acker,
        }
    }

    /// The message.
    pub fn message(&self) -> &Message {
        &self.message
    }

    /// Where it came from and how often it was delivered.
    pub fn info(&self) -> &DeliveryInfo {
        &self.info
    }

    /// True if it was delivered before.
    pub fn redelivered(&self) -> bool {
        self.info.redelivered
    }

    /// How many times it has been delivered, this time included.
    pub fn delivery_count(&self) -> u32 {
        self.info.delivery_count
    }

    /// The routing key it was published with.
    pub fn routing_key(&self) -> &str {
        &self.info.routing_key
    }

    /// The payload parsed as JSON into `T`.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T> {
        self.message.decode()
    }

    /// Acknowledges: the message is removed from its queue.
    pub async fn ack(mut self) -> Result<()> {
        self.acker.ack().await
    }

    /// Rejects: with `requeue` the message goes back to its queue (or to its dead-letter queue
    /// once it reached its delivery limit); without, it is dead-lettered now.
    pub async fn nack(mut self, requeue: bool) -> Result<()> {
        self.acker.nack(requeue).await
    }
}

impl fmt::Debug for Delivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Delivery")
            .field("message", &self.message)
            .field("info", &self.info)
            .finish()
    }
}

/// The receiving end of one subscription, as a backend implements it.
pub trait Consumer: Send + 'static {
    /// The next delivery: `Ready(None)` once the queue is deleted or the bus closed.
    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Delivery>>>;

    /// The queue consumed (for a broadcast subscription, its own exclusive queue).
    fn queue(&self) -> &str;

    /// How many messages this subscription's queue dropped under its overflow policy, if the
    /// backend can count them.
    fn dropped(&self) -> Option<u64> {
        None
    }
}

/// A stream of [`Delivery`]s from one queue. Dropping it cancels the consumer (and deletes a
/// broadcast subscription's queue); deliveries already taken stay valid until settled.
pub struct Subscription {
    consumer: Box<dyn Consumer>,
}

impl Subscription {
    /// A subscription over a backend's consumer.
    pub fn new(consumer: Box<dyn Consumer>) -> Self {
        Self { consumer }
    }

    /// The next delivery; `None` once the queue is deleted or the bus closed. Cancel-safe: if
    /// the future is dropped before completing, no message is lost.
    pub async fn next(&mut self) -> Option<Result<Delivery>> {
        std::future::poll_fn(|cx| self.consumer.poll_next(cx)).await
    }

    /// The queue consumed (for a broadcast subscription, its generated exclusive queue).
    pub fn queue(&self) -> &str {
        self.consumer.queue()
    }

    /// How many messages this subscription's queue dropped because it lagged (drop-oldest
    /// overflow), if the backend can count them.
    pub fn dropped(&self) -> Option<u64> {
        self.consumer.dropped()
    }
}

impl fmt::Debug for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription")
            .field("queue", &self.queue())
            .finish()
    }
}

impl futures_core::Stream for Subscription {
    type Item = Result<Delivery>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().consumer.poll_next(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_round_trip_and_headers() {
        let m = Message::json(&json!({"a": 1})).with_header("St2-Trace-Tag", "t1");
        assert_eq!(m.content_type, CONTENT_TYPE_JSON);
        assert_eq!(m.header("St2-Trace-Tag"), Some("t1"));
        assert_eq!(m.header("missing"), None);
        assert_eq!(m.value().ok(), Some(json!({"a": 1})));

        #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
        struct Event {
            id: String,
        }
        let m = Message::to_json(&Event { id: "e1".into() }).expect("serializable");
        assert_eq!(m.decode::<Event>().ok(), Some(Event { id: "e1".into() }));
    }

    #[test]
    fn decode_error_names_content_type() {
        let m = Message::new(&b"not json"[..], "text/plain");
        match m.value() {
            Err(BusError::Decode { content_type, .. }) => assert_eq!(content_type, "text/plain"),
            other => panic!("expected a decode error, got {other:?}"),
        }
    }
}
