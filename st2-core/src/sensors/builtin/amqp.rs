//! `builtin:amqp_queue`: consumes the RabbitMQ queue a `rabbitmq.new_message` trigger names
//! (`parameters.url`, `parameters.queue`) and dispatches one instance per message with the
//! exchange `rabbitmq` pack's payload `{queue, body}`.
//!
//! The queue is used as it exists, or declared durable when it does not. A message is
//! acknowledged once its trigger instance is stored, so none is lost when the sensor stops;
//! one whose dispatch fails is returned to the queue. `deserialization_method: json` decodes
//! the body as JSON (a body that is not JSON is sent as text).

use async_trait::async_trait;
use futures_core::Stream;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use super::{redact, str_param, BuiltinSensor, SensorError};
use crate::model::Trigger;
use crate::services::{dispatch, Ctx};

/// The name after `builtin:`.
pub const NAME: &str = "amqp_queue";

/// Messages taken from the broker before the first is acknowledged.
const PREFETCH: u16 = 64;

/// The AMQP queue sensor.
#[derive(Debug, Clone, Copy, Default)]
pub struct AmqpQueue;

#[async_trait]
impl BuiltinSensor for AmqpQueue {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn watch(
        &self,
        ctx: &Ctx,
        trigger: &Trigger,
        stop: CancellationToken,
    ) -> Result<(), SensorError> {
        let url = str_param(trigger, "url")?;
        let queue = str_param(trigger, "queue")?.to_string();
        let as_json = trigger
            .parameters
            .get("deserialization_method")
            .and_then(Value::as_str)
            == Some("json");
        let broker = |reason: String| SensorError::Broker {
            broker: redact(url),
            reason,
        };
        let props = ConnectionProperties::default()
            .with_executor(tokio_executor_trait::Tokio::current())
            .with_reactor(tokio_reactor_trait::Tokio);
        let conn = Connection::connect(url, props)
            .await
            .map_err(|e| broker(format!("cannot connect: {e}")))?;
        let mut channel = conn
            .create_channel()
            .await
            .map_err(|e| broker(e.to_string()))?;
        let passive = QueueDeclareOptions {
            passive: true,
            ..Default::default()
        };
        if channel
            .queue_declare(&queue, passive, FieldTable::default())
            .await
            .is_err()
        {
            // Absent (the failed passive declare closed the channel): declare it durable.
            channel = conn
                .create_channel()
                .await
                .map_err(|e| broker(e.to_string()))?;
            let durable = QueueDeclareOptions {
                durable: true,
                ..Default::default()
            };
            channel
                .queue_declare(&queue, durable, FieldTable::default())
                .await
                .map_err(|e| broker(format!("cannot declare queue \"{queue}\": {e}")))?;
        }
        channel
            .basic_qos(PREFETCH, BasicQosOptions::default())
            .await
            .map_err(|e| broker(e.to_string()))?;
        let tag = format!("st2-sensor-{}", uuid::Uuid::new_v4());
        let mut consumer = channel
            .basic_consume(
                &queue,
                &tag,
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(|e| broker(format!("cannot consume from \"{queue}\": {e}")))?;
        tracing::info!(queue = %queue, broker = %redact(url), trigger = %trigger.trigger_ref, "consuming queue");
        let result = loop {
            let delivery = tokio::select! {
                _ = stop.cancelled() => break Ok(()),
                d = std::future::poll_fn(|cx| std::pin::Pin::new(&mut consumer).poll_next(cx)) => d,
            };
            let delivery = match delivery {
                Some(Ok(d)) => d,
                Some(Err(e)) => break Err(broker(e.to_string())),
                None => break Err(broker("the consumer was cancelled by the broker".into())),
            };
            let text = String::from_utf8_lossy(&delivery.data).into_owned();
            let body = if as_json {
                serde_json::from_str(&text).unwrap_or(Value::String(text))
            } else {
                Value::String(text)
            };
            let payload = json!({"queue": queue, "body": body});
            match dispatch::dispatch(ctx, &trigger.trigger_ref, payload, None).await {
                Ok(_) => {
                    delivery
                        .ack(BasicAckOptions::default())
                        .await
                        .map_err(|e| broker(e.to_string()))?;
                }
                Err(e) => {
                    let _ = delivery
                        .nack(BasicNackOptions {
                            requeue: true,
                            ..Default::default()
                        })
                        .await;
                    break Err(e.into());
                }
            }
        };
        let _ = conn.close(200, "sensor stopped").await;
        result
    }
}
