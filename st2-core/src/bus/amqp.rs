//! The RabbitMQ bus (backend `amqp`, selected by `[messaging] url = amqp://...`), on lapin and
//! tokio. Owns the mapping of the [`Bus`] contract onto AMQP 0.9.1 as RabbitMQ implements it:
//!
//! - exchanges are durable topic exchanges; a publish first checks (once per exchange, with a
//!   passive declare) that its exchange exists, so a typo is [`BusError::UnknownExchange`]
//!   instead of a broken channel.
//! - messages are persistent (`delivery_mode = 2`) and published on one confirm-mode channel
//!   shared by every publisher of the bus: concurrent publishes pipeline their confirms (none
//!   waits for another's); [`AmqpBus::publish_batch`] pipelines a whole batch from one caller.
//! - [`QueueKind::WorkQueue`] queues are durable *quorum* queues: the broker counts deliveries
//!   (`x-delivery-count`, including a consumer that died) and dead-letters a message after
//!   [`SubscribeSpec::max_deliveries`] (`x-delivery-limit`), and a `nack` without requeue, to
//!   [`names::DEAD_LETTER_EXCHANGE`] with routing key `<queue>` (`at-least-once` dead-lettering
//!   where the overflow policy allows it). The dead-letter queue `<queue>.dead` is declared and
//!   bound with its queue; its deliveries carry our `x-death-*` headers, translated from the
//!   broker's `x-death` record.
//! - [`QueueKind::Broadcast`] queues are classic, exclusive and auto-delete, one per
//!   subscription; as only that subscription consumes it, the subscription counts redeliveries
//!   itself (by message id) and dead-letters by publishing to the dead-letter exchange.
//! - capacity is `x-max-length`; [`Overflow::Block`] is `x-overflow = reject-publish`: the
//!   broker nacks the publish and [`Bus::publish`] retries with backoff until it is taken
//!   ([`Bus::try_publish`] returns [`BusError::Full`] instead); [`Overflow::DropOldest`] is
//!   `drop-head`.
//! - prefetch is `basic.qos` per consumer; every subscription has its own channel; acks are
//!   manual only.
//! - when the connection is lost (broker restart), publishers and subscriptions reconnect with
//!   capped exponential backoff; subscriptions declare their queue again and resume consuming.
//!   Deliveries taken before the loss cannot be settled any more: the broker requeues them.
//!
//! Where AMQP differs from the in-process bus: a message routed to several queues, one of them
//! full with `reject-publish`, is enqueued into the others (RabbitMQ has no all-or-nothing
//! fan-out), so a retried blocking publish may reach those twice; consumers must be idempotent
//! (they are: the same message delivered twice changes state once). Drops under `drop-head` are
//! not counted ([`Subscription::dropped`] is `None`).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use futures_core::Stream;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions,
    BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions, ExchangeDeclareOptions,
    QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::publisher_confirm::Confirmation;
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::message::{
    HEADER_DEATH_COUNT, HEADER_DEATH_EXCHANGE, HEADER_DEATH_QUEUE, HEADER_DEATH_REASON,
    HEADER_DEATH_ROUTING_KEY,
};
use super::names::DEAD_LETTER_EXCHANGE;
use super::{
    topic, Acker, Bus, BusError, Consumer, Delivery, DeliveryInfo, Message, Overflow, QueueKind,
    Result, SubscribeSpec, Subscription,
};

/// First wait before reconnecting; doubles up to [`RECONNECT_MAX`].
const RECONNECT_MIN: Duration = Duration::from_millis(100);
/// Longest wait between two reconnection attempts.
const RECONNECT_MAX: Duration = Duration::from_secs(5);
/// First wait before retrying a publish a full queue refused; doubles up to
/// [`BLOCKED_RETRY_MAX`].
const BLOCKED_RETRY_MIN: Duration = Duration::from_millis(1);
/// Longest wait between two retries of a refused publish.
const BLOCKED_RETRY_MAX: Duration = Duration::from_millis(100);
/// Header a broadcast subscription's own dead letters never carry but quorum queues set: how
/// often the message was returned to its queue.
const HEADER_QUORUM_DELIVERY_COUNT: &str = "x-delivery-count";

/// AMQP reply code NOT_FOUND.
const NOT_FOUND: u16 = 404;
/// AMQP reply code PRECONDITION_FAILED.
const PRECONDITION_FAILED: u16 = 406;

/// The RabbitMQ bus. Cheap to clone: clones share the connection and publish channel.
#[derive(Clone)]
pub struct AmqpBus {
    inner: Arc<Inner>,
}

struct Inner {
    url: String,
    closed: AtomicBool,
    shutdown: CancellationToken,
    /// The live connection (replaced on reconnection).
    conn: tokio::sync::Mutex<Option<Arc<Connection>>>,
    /// The confirm-mode channel every publish uses (replaced when it breaks).
    publisher: tokio::sync::Mutex<Option<Channel>>,
    /// Exchanges known to exist (declared here or found by a passive declare).
    exchanges: Mutex<HashSet<String>>,
    /// Block-overflow queues this bus declared: (exchange, binding, queue), to name the full
    /// queue when the broker refuses a publish.
    blocking: Mutex<Vec<(String, String, String)>>,
}

impl AmqpBus {
    /// Connects to the broker at `url` (`amqp://user:pass@host:port/vhost`) and declares the
    /// dead-letter exchange. Fails at once when the broker does not answer; later connection
    /// losses are retried with backoff.
    pub async fn connect(url: &str) -> Result<Self> {
        let inner = Arc::new(Inner {
            url: url.to_string(),
            closed: AtomicBool::new(false),
            shutdown: CancellationToken::new(),
            conn: tokio::sync::Mutex::new(None),
            publisher: tokio::sync::Mutex::new(None),
            exchanges: Mutex::new(HashSet::new()),
            blocking: Mutex::new(Vec::new()),
        });
        let conn = open(url).await.map_err(|e| {
            BusError::Backend(format!(
                "cannot connect to RabbitMQ at {}: {e}",
                redact(url)
            ))
        })?;
        *inner.conn.lock().await = Some(Arc::new(conn));
        let bus = Self { inner };
        bus.declare_exchange(DEAD_LETTER_EXCHANGE).await?;
        Ok(bus)
    }

    /// Publishes every message of `batch` to `exchange` with its routing key, pipelining the
    /// publisher confirms: all are sent, then all confirms awaited; messages a full
    /// [`Overflow::Block`] queue refused are sent again (so their order among the batch may
    /// change) until every one is taken.
    pub async fn publish_batch(&self, exchange: &str, batch: Vec<(String, Message)>) -> Result<()> {
        self.inner.check_open()?;
        self.inner.ensure_exchange(exchange).await?;
        let mut pending = batch;
        let mut wait = BLOCKED_RETRY_MIN;
        while !pending.is_empty() {
            let channel = self.inner.publisher().await?;
            let mut confirms = Vec::with_capacity(pending.len());
            for (key, message) in &pending {
                let (payload, props) = outgoing(message);
                confirms.push(
                    channel
                        .basic_publish(
                            exchange,
                            key,
                            BasicPublishOptions::default(),
                            &payload,
                            props,
                        )
                        .await,
                );
            }
            let mut refused = Vec::new();
            for ((key, message), confirm) in pending.into_iter().zip(confirms) {
                let outcome = match confirm {
                    Ok(confirm) => confirm.await,
                    Err(e) => Err(e),
                };
                match outcome {
                    Ok(Confirmation::Ack(_)) | Ok(Confirmation::NotRequested) => {}
                    Ok(Confirmation::Nack(_)) => refused.push((key, message)),
                    Err(e) => {
                        self.inner.publish_failed(exchange, &e)?;
                        refused.push((key, message));
                    }
                }
            }
            pending = refused;
            if !pending.is_empty() {
                self.inner.pause(wait).await?;
                wait = (wait * 2).min(BLOCKED_RETRY_MAX);
            }
        }
        Ok(())
    }
}

/// Hides the password of an AMQP URL in messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{}{user}:***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_string(),
    }
}

async fn open(url: &str) -> lapin::Result<Connection> {
    let props = ConnectionProperties::default()
        .with_executor(tokio_executor_trait::Tokio::current())
        .with_reactor(tokio_reactor_trait::Tokio)
        .with_connection_name("st2-rs".into());
    Connection::connect(url, props).await
}

fn reply_code(e: &lapin::Error) -> Option<u16> {
    match e {
        lapin::Error::ProtocolError(amqp) => Some(amqp.get_id()),
        _ => None,
    }
}

fn backend(what: &str, e: impl std::fmt::Display) -> BusError {
    BusError::Backend(format!("{what}: {e}"))
}

impl Inner {
    fn check_open(&self) -> Result<()> {
        if self.closed.load(Ordering::SeqCst) {
            Err(BusError::Closed)
        } else {
            Ok(())
        }
    }

    /// Sleeps `wait`, or fails with [`BusError::Closed`] if the bus closes meanwhile.
    async fn pause(&self, wait: Duration) -> Result<()> {
        tokio::select! {
            _ = self.shutdown.cancelled() => Err(BusError::Closed),
            _ = tokio::time::sleep(wait) => Ok(()),
        }
    }

    /// The live connection, reconnecting (with backoff, until it works or the bus closes) when
    /// it was lost.
    async fn connection(&self) -> Result<Arc<Connection>> {
        let mut wait = RECONNECT_MIN;
        loop {
            self.check_open()?;
            {
                let mut conn = self.conn.lock().await;
                if let Some(c) = conn.as_ref() {
                    if c.status().connected() {
                        return Ok(c.clone());
                    }
                }
                match open(&self.url).await {
                    Ok(c) => {
                        let c = Arc::new(c);
                        tracing::info!(url = %redact(&self.url), "connected to RabbitMQ");
                        *conn = Some(c.clone());
                        return Ok(c);
                    }
                    Err(e) => {
                        tracing::warn!(url = %redact(&self.url), error = %e, retry_in = ?wait,
                            "RabbitMQ unreachable");
                    }
                }
            }
            self.pause(wait).await?;
            wait = (wait * 2).min(RECONNECT_MAX);
        }
    }

    /// A fresh channel on the live connection.
    async fn channel(&self) -> Result<Channel> {
        let mut wait = RECONNECT_MIN;
        loop {
            let conn = self.connection().await?;
            match conn.create_channel().await {
                Ok(channel) => return Ok(channel),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot open an AMQP channel");
                    self.pause(wait).await?;
                    wait = (wait * 2).min(RECONNECT_MAX);
                }
            }
        }
    }

    /// The shared confirm-mode publish channel, opened again when it broke.
    async fn publisher(&self) -> Result<Channel> {
        let mut publisher = self.publisher.lock().await;
        if let Some(channel) = publisher.as_ref() {
            if channel.status().connected() {
                return Ok(channel.clone());
            }
        }
        let channel = self.channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(|e| backend("confirm.select", e))?;
        *publisher = Some(channel.clone());
        Ok(channel)
    }

    /// Checks (once) that `exchange` exists, with a passive declare on a throwaway channel.
    async fn ensure_exchange(&self, exchange: &str) -> Result<()> {
        if exchange.is_empty() || self.known_exchange(exchange) {
            return Ok(());
        }
        let channel = self.channel().await?;
        let passive = ExchangeDeclareOptions {
            passive: true,
            ..Default::default()
        };
        match channel
            .exchange_declare(
                exchange,
                ExchangeKind::Topic,
                passive,
                FieldTable::default(),
            )
            .await
        {
            Ok(()) => {
                let _ = channel.close(200, "ok").await;
                self.remember_exchange(exchange);
                Ok(())
            }
            Err(e) if reply_code(&e) == Some(NOT_FOUND) => Err(BusError::UnknownExchange {
                exchange: exchange.to_string(),
            }),
            Err(e) => Err(backend("exchange.declare (passive)", e)),
        }
    }

    fn known_exchange(&self, exchange: &str) -> bool {
        self.exchanges
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(exchange)
    }

    fn remember_exchange(&self, exchange: &str) {
        self.exchanges
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(exchange.to_string());
    }

    /// Classifies a failed publish: an exchange deleted behind our back is an error for the
    /// caller; anything else (a lost connection) is retried.
    fn publish_failed(&self, exchange: &str, e: &lapin::Error) -> Result<()> {
        self.check_open()?;
        if reply_code(e) == Some(NOT_FOUND) {
            self.exchanges
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(exchange);
            return Err(BusError::UnknownExchange {
                exchange: exchange.to_string(),
            });
        }
        tracing::warn!(error = %e, exchange, "publish failed; retrying");
        Ok(())
    }

    /// Sends one message and waits for its confirm: `Ok(true)` when the broker took it,
    /// `Ok(false)` when a full queue refused it.
    async fn publish_once(
        &self,
        exchange: &str,
        routing_key: &str,
        payload: &[u8],
        props: &BasicProperties,
    ) -> Result<bool> {
        let mut wait = RECONNECT_MIN;
        loop {
            let channel = self.publisher().await?;
            let sent = channel
                .basic_publish(
                    exchange,
                    routing_key,
                    BasicPublishOptions::default(),
                    payload,
                    props.clone(),
                )
                .await;
            let outcome = match sent {
                Ok(confirm) => confirm.await,
                Err(e) => Err(e),
            };
            match outcome {
                Ok(Confirmation::Ack(_)) | Ok(Confirmation::NotRequested) => return Ok(true),
                Ok(Confirmation::Nack(_)) => return Ok(false),
                Err(e) => {
                    self.publish_failed(exchange, &e)?;
                    self.pause(wait).await?;
                    wait = (wait * 2).min(RECONNECT_MAX);
                }
            }
        }
    }

    /// The Block queue a refused publish most likely hit (one this bus declared whose binding
    /// matches), or a description of where it went.
    fn full_queue(&self, exchange: &str, routing_key: &str) -> String {
        self.blocking
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .find(|(x, pattern, _)| x == exchange && topic::matches(pattern, routing_key))
            .map(|(_, _, q)| q.clone())
            .unwrap_or_else(|| format!("a queue bound to {exchange:?} for {routing_key:?}"))
    }
}

/// The AMQP payload and properties of `message`: persistent, with its content type, headers
/// and a fresh message id (broadcast subscriptions count redeliveries by it).
fn outgoing(message: &Message) -> (Vec<u8>, BasicProperties) {
    let mut headers = FieldTable::default();
    for (name, value) in &message.headers {
        headers.insert(
            ShortString::from(name.clone()),
            AMQPValue::LongString(LongString::from(value.as_bytes().to_vec())),
        );
    }
    let props = BasicProperties::default()
        .with_delivery_mode(2)
        .with_content_type(ShortString::from(message.content_type.clone()))
        .with_message_id(ShortString::from(uuid::Uuid::new_v4().simple().to_string()))
        .with_headers(headers);
    (message.payload.to_vec(), props)
}

/// A header value as text, when it is a simple value (tables and arrays are skipped).
fn header_text(value: &AMQPValue) -> Option<String> {
    Some(match value {
        AMQPValue::LongString(s) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
        AMQPValue::ShortString(s) => s.as_str().to_string(),
        AMQPValue::Boolean(b) => b.to_string(),
        AMQPValue::ShortShortInt(n) => n.to_string(),
        AMQPValue::ShortShortUInt(n) => n.to_string(),
        AMQPValue::ShortInt(n) => n.to_string(),
        AMQPValue::ShortUInt(n) => n.to_string(),
        AMQPValue::LongInt(n) => n.to_string(),
        AMQPValue::LongUInt(n) => n.to_string(),
        AMQPValue::LongLongInt(n) => n.to_string(),
        AMQPValue::Timestamp(n) => n.to_string(),
        AMQPValue::Float(n) => n.to_string(),
        AMQPValue::Double(n) => n.to_string(),
        _ => return None,
    })
}

fn header_number(value: &AMQPValue) -> Option<u64> {
    header_text(value).and_then(|s| s.parse().ok())
}

/// Broker-managed headers that are not part of the application's message.
fn is_broker_header(name: &str) -> bool {
    name == HEADER_QUORUM_DELIVERY_COUNT
        || name == "x-death"
        || name.starts_with("x-first-death-")
        || name.starts_with("x-last-death-")
}

/// Our `x-death-*` headers from RabbitMQ's record of a dead-lettering (`x-death`, newest
/// first, and `x-first-death-*`).
fn death_headers(table: &FieldTable, out: &mut BTreeMap<String, String>) {
    let inner = table.inner();
    let Some(AMQPValue::FieldArray(deaths)) = inner.get("x-death") else {
        return;
    };
    let Some(AMQPValue::FieldTable(death)) = deaths.as_slice().first() else {
        return;
    };
    let death = death.inner();
    let text = |key: &str| death.get(key).and_then(header_text);
    let reason = match text("reason").as_deref() {
        Some("delivery_limit") => {
            let count = inner
                .get(HEADER_QUORUM_DELIVERY_COUNT)
                .and_then(header_number);
            match count {
                Some(n) => format!("delivery limit {n} reached"),
                None => "delivery limit reached".to_string(),
            }
        }
        Some("maxlen") => "dropped: queue full".to_string(),
        Some(other) => other.to_string(),
        None => "dead-lettered".to_string(),
    };
    out.insert(HEADER_DEATH_REASON.into(), reason);
    if let Some(q) = text("queue") {
        out.insert(HEADER_DEATH_QUEUE.into(), q);
    }
    if let Some(x) = text("exchange") {
        out.insert(HEADER_DEATH_EXCHANGE.into(), x);
    }
    if let Some(AMQPValue::FieldArray(keys)) = death.get("routing-keys") {
        if let Some(key) = keys.as_slice().first().and_then(header_text) {
            out.insert(HEADER_DEATH_ROUTING_KEY.into(), key);
        }
    }
    if let Some(n) = inner
        .get(HEADER_QUORUM_DELIVERY_COUNT)
        .and_then(header_number)
    {
        out.insert(HEADER_DEATH_COUNT.into(), n.to_string());
    }
}

/// A received message as ours: payload, content type, application headers (with `x-death-*`
/// translated from the broker's record on a dead letter).
fn incoming(delivery: &lapin::message::Delivery) -> Message {
    let props = &delivery.properties;
    let mut headers = BTreeMap::new();
    if let Some(table) = props.headers() {
        for (name, value) in table.inner() {
            if is_broker_header(name.as_str()) {
                continue;
            }
            if let Some(text) = header_text(value) {
                headers.insert(name.as_str().to_string(), text);
            }
        }
        if !headers.contains_key(HEADER_DEATH_REASON) {
            death_headers(table, &mut headers);
        }
    }
    Message {
        payload: bytes::Bytes::from(delivery.data.clone()),
        content_type: props
            .content_type()
            .as_ref()
            .map(|c| c.as_str().to_string())
            .unwrap_or_default(),
        headers,
    }
}

/// The arguments a queue of `spec` is declared with (its fixed properties, which RabbitMQ
/// compares on redeclaration).
fn queue_args(spec: &SubscribeSpec, dead_letter_key: Option<&str>) -> FieldTable {
    let mut args = FieldTable::default();
    let mut set = |k: &str, v: AMQPValue| args.insert(ShortString::from(k.to_string()), v);
    let long = |s: &str| AMQPValue::LongString(LongString::from(s.as_bytes().to_vec()));
    // A quorum queue refuses publishes only once it is *over* its limit (it accepts one more
    // message than `x-max-length`), so a blocking one is declared one short of the capacity.
    let quorum_reject = spec.kind == QueueKind::WorkQueue && spec.overflow == Overflow::Block;
    let max_length = if quorum_reject {
        spec.capacity - 1
    } else {
        spec.capacity
    };
    set(
        "x-max-length",
        AMQPValue::LongLongInt(i64::try_from(max_length).unwrap_or(i64::MAX)),
    );
    set(
        "x-overflow",
        long(match spec.overflow {
            Overflow::Block => "reject-publish",
            Overflow::DropOldest => "drop-head",
        }),
    );
    if spec.kind == QueueKind::WorkQueue {
        set("x-queue-type", long("quorum"));
        if let Some(max) = spec.max_deliveries {
            // Quorum queues dead-letter once a message was *returned* more than the limit.
            set(
                "x-delivery-limit",
                AMQPValue::LongLongInt(i64::from(max.saturating_sub(1))),
            );
        }
        if let Some(key) = dead_letter_key {
            set("x-dead-letter-exchange", long(DEAD_LETTER_EXCHANGE));
            set("x-dead-letter-routing-key", long(key));
            if spec.overflow == Overflow::Block {
                set("x-dead-letter-strategy", long("at-least-once"));
            }
        }
    }
    args
}

/// Declares the queue of `spec` named `name` (and its dead-letter queue), binds it, and starts
/// consuming on a fresh channel with the spec's prefetch.
async fn establish(
    inner: &Inner,
    spec: &SubscribeSpec,
    name: &str,
) -> Result<(Channel, lapin::Consumer)> {
    let channel = declare(inner, spec, name).await?;
    channel
        .basic_qos(spec.prefetch, BasicQosOptions::default())
        .await
        .map_err(|e| backend("basic.qos", e))?;
    let consumer = channel
        .basic_consume(
            name,
            "",
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(|e| backend("basic.consume", e))?;
    Ok((channel, consumer))
}

/// Declares and binds the queue `name` of `spec` (and its dead-letter queue) on a fresh
/// channel, which it returns.
async fn declare(inner: &Inner, spec: &SubscribeSpec, name: &str) -> Result<Channel> {
    let channel = inner.channel().await?;
    let mismatch = |queue: &str, e: lapin::Error| match reply_code(&e) {
        Some(PRECONDITION_FAILED) => BusError::QueueMismatch {
            queue: queue.to_string(),
            reason: format!("other properties ({e})"),
        },
        Some(NOT_FOUND) => BusError::UnknownExchange {
            exchange: spec.exchange.clone(),
        },
        _ => backend("queue.declare", e),
    };
    let is_dead_letter_queue = spec.exchange == DEAD_LETTER_EXCHANGE;
    if spec.kind == QueueKind::WorkQueue && !is_dead_letter_queue {
        let dead = SubscribeSpec::dead_letters(&spec.queue);
        channel
            .queue_declare(
                &dead.queue,
                QueueDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                queue_args(&dead, None),
            )
            .await
            .map_err(|e| mismatch(&dead.queue, e))?;
        channel
            .queue_bind(
                &dead.queue,
                DEAD_LETTER_EXCHANGE,
                &spec.queue,
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(|e| backend("queue.bind", e))?;
    }
    let (options, dead_key) = match spec.kind {
        QueueKind::WorkQueue => (
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            (!is_dead_letter_queue).then_some(spec.queue.as_str()),
        ),
        QueueKind::Broadcast => (
            QueueDeclareOptions {
                exclusive: true,
                auto_delete: true,
                ..Default::default()
            },
            None,
        ),
    };
    channel
        .queue_declare(name, options, queue_args(spec, dead_key))
        .await
        .map_err(|e| mismatch(name, e))?;
    for binding in &spec.bindings {
        channel
            .queue_bind(
                name,
                &spec.exchange,
                binding,
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(|e| mismatch(name, e))?;
    }
    Ok(channel)
}

#[async_trait]
impl Bus for AmqpBus {
    fn backend(&self) -> &'static str {
        "amqp"
    }

    async fn declare_exchange(&self, name: &str) -> Result<()> {
        self.inner.check_open()?;
        super::validate_name("exchange name", name)?;
        let channel = self.inner.channel().await?;
        channel
            .exchange_declare(
                name,
                ExchangeKind::Topic,
                ExchangeDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .map_err(|e| backend("exchange.declare", e))?;
        let _ = channel.close(200, "ok").await;
        self.inner.remember_exchange(name);
        Ok(())
    }

    async fn publish(&self, exchange: &str, routing_key: &str, message: Message) -> Result<()> {
        self.inner.check_open()?;
        self.inner.ensure_exchange(exchange).await?;
        let (payload, props) = outgoing(&message);
        let mut wait = BLOCKED_RETRY_MIN;
        while !self
            .inner
            .publish_once(exchange, routing_key, &payload, &props)
            .await?
        {
            // A full reject-publish queue refused it: wait for room, as the contract says.
            self.inner.pause(wait).await?;
            wait = (wait * 2).min(BLOCKED_RETRY_MAX);
        }
        Ok(())
    }

    async fn try_publish(&self, exchange: &str, routing_key: &str, message: Message) -> Result<()> {
        self.inner.check_open()?;
        self.inner.ensure_exchange(exchange).await?;
        let (payload, props) = outgoing(&message);
        if self
            .inner
            .publish_once(exchange, routing_key, &payload, &props)
            .await?
        {
            Ok(())
        } else {
            Err(BusError::Full {
                queue: self.inner.full_queue(exchange, routing_key),
            })
        }
    }

    async fn subscribe(&self, spec: SubscribeSpec) -> Result<Subscription> {
        self.inner.check_open()?;
        spec.validate()?;
        self.inner.ensure_exchange(&spec.exchange).await?;
        let name = match spec.kind {
            QueueKind::WorkQueue => spec.queue.clone(),
            QueueKind::Broadcast => {
                let id = uuid::Uuid::new_v4().simple().to_string();
                let name = format!("{}.{}", spec.queue, &id[..12]);
                super::validate_name("queue name", &name)?;
                name
            }
        };
        let (channel, consumer) = establish(&self.inner, &spec, &name).await?;
        if spec.overflow == Overflow::Block {
            let mut blocking = self
                .inner
                .blocking
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            for binding in &spec.bindings {
                let entry = (spec.exchange.clone(), binding.clone(), name.clone());
                if !blocking.contains(&entry) {
                    blocking.push(entry);
                }
            }
        }
        let (tx, rx) = mpsc::channel(usize::from(spec.prefetch).max(1));
        let counts = Arc::new(Mutex::new(HashMap::new()));
        let task = ConsumeTask {
            inner: self.inner.clone(),
            spec,
            name: name.clone(),
            tx,
            counts,
            outstanding: Arc::new(AtomicU64::new(0)),
        };
        tokio::spawn(task.run(channel, consumer));
        Ok(Subscription::new(Box::new(AmqpConsumer {
            queue: name,
            rx,
        })))
    }

    async fn declare_queue(&self, spec: SubscribeSpec) -> Result<()> {
        self.inner.check_open()?;
        spec.validate()?;
        if spec.kind != QueueKind::WorkQueue {
            return Ok(()); // a broadcast queue lives only as long as its subscription
        }
        self.inner.ensure_exchange(&spec.exchange).await?;
        let channel = declare(&self.inner, &spec, &spec.queue).await?;
        let _ = channel.close(200, "ok").await;
        if spec.overflow == Overflow::Block {
            let mut blocking = self
                .inner
                .blocking
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            for binding in &spec.bindings {
                let entry = (spec.exchange.clone(), binding.clone(), spec.queue.clone());
                if !blocking.contains(&entry) {
                    blocking.push(entry);
                }
            }
        }
        Ok(())
    }

    async fn delete_queue(&self, queue: &str) -> Result<()> {
        self.inner.check_open()?;
        let channel = self.inner.channel().await?;
        channel
            .queue_delete(queue, QueueDeleteOptions::default())
            .await
            .map_err(|e| backend("queue.delete", e))?;
        let _ = channel.close(200, "ok").await;
        self.inner
            .blocking
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|(_, _, q)| q != queue);
        Ok(())
    }

    async fn close(&self) -> Result<()> {
        if self.inner.closed.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        self.inner.shutdown.cancel();
        let conn = self.inner.conn.lock().await.take();
        if let Some(conn) = conn {
            if conn.status().connected() {
                let _ = conn.close(200, "bus closed").await;
            }
        }
        Ok(())
    }
}

/// The task feeding one subscription: consumes, converts, and re-establishes the consumer
/// after a connection loss.
struct ConsumeTask {
    inner: Arc<Inner>,
    spec: SubscribeSpec,
    name: String,
    tx: mpsc::Sender<Result<Delivery>>,
    /// Broadcast only: deliveries so far by message id (the queue has this one consumer).
    counts: Arc<Mutex<HashMap<String, u32>>>,
    /// Deliveries handed out and not yet settled: the channel stays open for them.
    outstanding: Arc<AtomicU64>,
}

impl ConsumeTask {
    async fn run(self, mut channel: Channel, mut consumer: lapin::Consumer) {
        loop {
            let lost = self.consume(&channel, &mut consumer).await;
            if !lost {
                return;
            }
            // The connection (or channel) broke: establish again, with backoff.
            let mut wait = RECONNECT_MIN;
            loop {
                if self.tx.is_closed() {
                    return;
                }
                match establish(&self.inner, &self.spec, &self.name).await {
                    Ok((c, k)) => {
                        tracing::info!(queue = %self.name, "subscription re-established");
                        channel = c;
                        consumer = k;
                        break;
                    }
                    Err(BusError::Closed) => return,
                    Err(e) => {
                        tracing::warn!(queue = %self.name, error = %e, retry_in = ?wait,
                            "cannot re-establish subscription");
                        if self.inner.pause(wait).await.is_err() {
                            return;
                        }
                        wait = (wait * 2).min(RECONNECT_MAX);
                    }
                }
            }
        }
    }

    /// Consumes until the subscription ends (`false`) or the connection is lost (`true`).
    async fn consume(&self, channel: &Channel, consumer: &mut lapin::Consumer) -> bool {
        loop {
            let next = tokio::select! {
                _ = self.inner.shutdown.cancelled() => return false,
                _ = self.tx.closed() => {
                    self.cancel(channel, consumer).await;
                    return false;
                }
                next = std::future::poll_fn(|cx| std::pin::Pin::new(&mut *consumer).poll_next(cx)) => next,
            };
            match next {
                Some(Ok(delivery)) => {
                    let delivery = self.convert(channel, delivery);
                    tokio::select! {
                        _ = self.inner.shutdown.cancelled() => return false,
                        sent = self.tx.send(Ok(delivery)) => if sent.is_err() {
                            self.cancel(channel, consumer).await;
                            return false;
                        },
                    }
                }
                Some(Err(e)) => {
                    if self.inner.closed.load(Ordering::SeqCst) {
                        return false;
                    }
                    tracing::warn!(queue = %self.name, error = %e, "consumer lost its channel");
                    return true;
                }
                None => {
                    // Cancelled by the broker (queue deleted) while the channel lives: the end.
                    if channel.status().connected() || self.inner.closed.load(Ordering::SeqCst) {
                        let channel = channel.clone();
                        let outstanding = self.outstanding.clone();
                        tokio::spawn(close_when_settled(channel, outstanding));
                        return false;
                    }
                    return true;
                }
            }
        }
    }

    /// Cancels the consumer; the channel closes once every delivery taken is settled.
    async fn cancel(&self, channel: &Channel, consumer: &lapin::Consumer) {
        let _ = channel
            .basic_cancel(consumer.tag().as_str(), BasicCancelOptions::default())
            .await;
        tokio::spawn(close_when_settled(
            channel.clone(),
            self.outstanding.clone(),
        ));
    }

    fn convert(&self, channel: &Channel, delivery: lapin::message::Delivery) -> Delivery {
        let message = incoming(&delivery);
        let headers = delivery.properties.headers().as_ref();
        let (delivery_count, redelivered) = match self.spec.kind {
            QueueKind::WorkQueue => {
                let returned = headers
                    .and_then(|h| h.inner().get(HEADER_QUORUM_DELIVERY_COUNT))
                    .and_then(header_number)
                    .unwrap_or(0);
                let count = u32::try_from(returned).unwrap_or(u32::MAX - 1) + 1;
                (count, delivery.redelivered || count > 1)
            }
            QueueKind::Broadcast => {
                let id = delivery
                    .properties
                    .message_id()
                    .as_ref()
                    .map(|m| m.as_str().to_string());
                let count = match id {
                    Some(id) => {
                        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
                        let n = counts.entry(id).or_insert(0);
                        *n += 1;
                        *n
                    }
                    None => 1 + u32::from(delivery.redelivered),
                };
                (count, delivery.redelivered || count > 1)
            }
        };
        let info = DeliveryInfo {
            queue: self.name.clone(),
            exchange: delivery.exchange.as_str().to_string(),
            routing_key: delivery.routing_key.as_str().to_string(),
            redelivered,
            delivery_count,
        };
        self.outstanding.fetch_add(1, Ordering::SeqCst);
        let acker = AmqpAcker {
            acker: Some(delivery.acker),
            inner: self.inner.clone(),
            channel_open: channel.clone(),
            broadcast: (self.spec.kind == QueueKind::Broadcast).then(|| BroadcastDeath {
                dead_letter_key: self.spec.queue.clone(),
                max_deliveries: self.spec.max_deliveries,
                message: message.clone(),
                counts: self.counts.clone(),
                message_id: delivery
                    .properties
                    .message_id()
                    .as_ref()
                    .map(|m| m.as_str().to_string()),
            }),
            info: info.clone(),
            outstanding: self.outstanding.clone(),
        };
        Delivery::new(message, info, Box::new(acker))
    }
}

/// Closes `channel` once no delivery taken from it is unsettled (or after a minute).
async fn close_when_settled(channel: Channel, outstanding: Arc<AtomicU64>) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while outstanding.load(Ordering::SeqCst) > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if channel.status().connected() {
        let _ = channel.close(200, "subscription ended").await;
    }
}

/// What a broadcast delivery needs to dead-letter itself (classic queues do not count).
struct BroadcastDeath {
    dead_letter_key: String,
    max_deliveries: Option<u32>,
    message: Message,
    counts: Arc<Mutex<HashMap<String, u32>>>,
    message_id: Option<String>,
}

struct AmqpAcker {
    acker: Option<lapin::acker::Acker>,
    inner: Arc<Inner>,
    /// Kept so that the channel outlives the subscription until this delivery is settled.
    channel_open: Channel,
    broadcast: Option<BroadcastDeath>,
    info: DeliveryInfo,
    outstanding: Arc<AtomicU64>,
}

impl AmqpAcker {
    async fn settle(
        inner: &Inner,
        acker: lapin::acker::Acker,
        broadcast: Option<&BroadcastDeath>,
        info: &DeliveryInfo,
        requeue: Option<bool>,
    ) -> Result<()> {
        let settled = match (requeue, broadcast) {
            (None, _) => acker.ack(BasicAckOptions::default()).await,
            (Some(requeue), Some(death)) => {
                let reason = match (requeue, death.max_deliveries) {
                    (false, _) => Some("rejected".to_string()),
                    (true, Some(max)) if info.delivery_count >= max => {
                        Some(format!("delivery limit {max} reached"))
                    }
                    _ => None,
                };
                match reason {
                    None => {
                        acker
                            .nack(BasicNackOptions {
                                requeue: true,
                                ..Default::default()
                            })
                            .await
                    }
                    Some(reason) => {
                        if let Some(id) = &death.message_id {
                            death
                                .counts
                                .lock()
                                .unwrap_or_else(PoisonError::into_inner)
                                .remove(id);
                        }
                        let dead = death
                            .message
                            .clone()
                            .with_header(HEADER_DEATH_REASON, reason)
                            .with_header(HEADER_DEATH_QUEUE, info.queue.clone())
                            .with_header(HEADER_DEATH_EXCHANGE, info.exchange.clone())
                            .with_header(HEADER_DEATH_ROUTING_KEY, info.routing_key.clone())
                            .with_header(HEADER_DEATH_COUNT, info.delivery_count.to_string());
                        let (payload, props) = outgoing(&dead);
                        // Dead-letter queues drop their oldest when full: this never waits
                        // for room; an unroutable dead letter (no dead-letter queue) is
                        // dropped by the broker, as with the memory bus.
                        inner
                            .publish_once(
                                DEAD_LETTER_EXCHANGE,
                                &death.dead_letter_key,
                                &payload,
                                &props,
                            )
                            .await?;
                        acker.ack(BasicAckOptions::default()).await
                    }
                }
            }
            (Some(requeue), None) => {
                acker
                    .nack(BasicNackOptions {
                        requeue,
                        ..Default::default()
                    })
                    .await
            }
        };
        settled.map_err(|e| backend("settle delivery", e))
    }

    async fn finish(&mut self, requeue: Option<bool>) -> Result<()> {
        let Some(acker) = self.acker.take() else {
            return Ok(());
        };
        let result = Self::settle(
            &self.inner,
            acker,
            self.broadcast.as_ref(),
            &self.info,
            requeue,
        )
        .await;
        self.outstanding.fetch_sub(1, Ordering::SeqCst);
        result
    }
}

#[async_trait]
impl Acker for AmqpAcker {
    async fn ack(&mut self) -> Result<()> {
        self.finish(None).await
    }

    async fn nack(&mut self, requeue: bool) -> Result<()> {
        self.finish(Some(requeue)).await
    }
}

impl Drop for AmqpAcker {
    fn drop(&mut self) {
        let Some(acker) = self.acker.take() else {
            return;
        };
        // Unsettled: requeue (the Acker contract), on the runtime, in the background.
        let inner = self.inner.clone();
        let broadcast = self.broadcast.take();
        let info = self.info.clone();
        let outstanding = self.outstanding.clone();
        let channel = self.channel_open.clone();
        let settle = async move {
            let result = Self::settle(&inner, acker, broadcast.as_ref(), &info, Some(true)).await;
            if let Err(e) = result {
                tracing::debug!(error = %e, "requeue of a dropped delivery failed");
            }
            outstanding.fetch_sub(1, Ordering::SeqCst);
            drop(channel);
        };
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn(settle);
            }
            Err(_) => {
                // No runtime: closing the channel makes the broker requeue it.
                self.outstanding.fetch_sub(1, Ordering::SeqCst);
            }
        }
    }
}

/// The receiving end of one subscription.
struct AmqpConsumer {
    queue: String,
    rx: mpsc::Receiver<Result<Delivery>>,
}

impl Consumer for AmqpConsumer {
    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Delivery>>> {
        self.rx.poll_recv(cx)
    }

    fn queue(&self) -> &str {
        &self.queue
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_is_redacted() {
        assert_eq!(
            redact("amqp://guest:secret@host:5672/%2f"),
            "amqp://guest:***@host:5672/%2f"
        );
        assert_eq!(redact("amqp://host"), "amqp://host");
    }

    #[test]
    fn work_queue_arguments() {
        let spec = SubscribeSpec::work("q", "x", ["#"]).with_max_deliveries(Some(3));
        let args = queue_args(&spec, Some("q"));
        let args = args.inner();
        assert_eq!(
            args.get("x-delivery-limit"),
            Some(&AMQPValue::LongLongInt(2))
        );
        assert!(args.contains_key("x-dead-letter-exchange"));
        let b = queue_args(&SubscribeSpec::broadcast("b", "x", ["#"]), None);
        assert!(!b.inner().contains_key("x-queue-type"));
    }
}
