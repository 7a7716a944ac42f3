//! `builtin:mqtt`: subscribes (MQTT v5) to the topic filter an `mqtt.message` trigger names and
//! dispatches one instance per message, with the exchange `mqtt` pack's payload `{topic,
//! message, userdata, qos, retain}` plus the v5 properties worth having (`content_type`,
//! `response_topic`, `user_properties`).
//!
//! Parameters: `url` (`mqtt://[user:password@]host[:port]`, port 1883 by default), `topic` (a
//! filter: `+` and `#` wildcards, `$share/<group>/<filter>` for a shared subscription the
//! broker balances across subscribers), `qos` (0–2, default 0), `client_id` (default: a fresh
//! one), `userdata` (copied into every payload). The connection is re-established by the
//! service's restart with backoff when it fails.

use std::time::Duration;

use async_trait::async_trait;
use rumqttc::v5::mqttbytes::v5::Packet;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, MqttOptions};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use super::{redact, str_param, BuiltinSensor, SensorError};
use crate::model::Trigger;
use crate::services::{dispatch, Ctx};

/// The name after `builtin:`.
pub const NAME: &str = "mqtt";

/// Default MQTT port.
const DEFAULT_PORT: u16 = 1883;

/// The MQTT v5 sensor.
#[derive(Debug, Clone, Copy, Default)]
pub struct Mqtt;

/// Host, port and credentials (user, password) of a broker.
type Broker = (String, u16, Option<(String, String)>);

/// Host, port and credentials of an `mqtt://` URL.
fn parse_url(url: &str) -> Result<Broker, String> {
    let rest = url
        .strip_prefix("mqtt://")
        .or_else(|| url.strip_prefix("tcp://"))
        .ok_or("the url must start with mqtt:// (TLS is not supported)")?;
    let rest = rest.split('/').next().unwrap_or_default();
    let (creds, hostport) = match rest.rsplit_once('@') {
        Some((c, h)) => {
            let (u, p) = c.split_once(':').unwrap_or((c, ""));
            (Some((u.to_string(), p.to_string())), h)
        }
        None => (None, rest),
    };
    let (host, port) = match hostport.rsplit_once(':') {
        Some((h, p)) => (h, p.parse::<u16>().map_err(|_| format!("bad port {p:?}"))?),
        None => (hostport, DEFAULT_PORT),
    };
    if host.is_empty() {
        return Err("the url has no host".into());
    }
    Ok((host.to_string(), port, creds))
}

fn qos_of(n: u64) -> Option<QoS> {
    match n {
        0 => Some(QoS::AtMostOnce),
        1 => Some(QoS::AtLeastOnce),
        2 => Some(QoS::ExactlyOnce),
        _ => None,
    }
}

#[async_trait]
impl BuiltinSensor for Mqtt {
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
        let topic = str_param(trigger, "topic")?.to_string();
        let bad = |reason: String| SensorError::Parameters {
            trigger: trigger.trigger_ref.clone(),
            reason,
        };
        let broker = |reason: String| SensorError::Broker {
            broker: redact(url),
            reason,
        };
        let (host, port, creds) = parse_url(url).map_err(|r| bad(format!("url: {r}")))?;
        let qos = match trigger.parameters.get("qos") {
            None | Some(Value::Null) => QoS::AtMostOnce,
            Some(v) => v
                .as_u64()
                .and_then(qos_of)
                .ok_or_else(|| bad("qos must be 0, 1 or 2".into()))?,
        };
        let client_id = trigger
            .parameters
            .get("client_id")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| format!("st2-{}", uuid::Uuid::new_v4().simple()));
        let userdata = trigger
            .parameters
            .get("userdata")
            .cloned()
            .unwrap_or(Value::Null);
        let mut opts = MqttOptions::new(client_id, host, port);
        opts.set_keep_alive(Duration::from_secs(30));
        if let Some((u, p)) = creds {
            opts.set_credentials(u, p);
        }
        let (client, mut events) = AsyncClient::new(opts, 64);
        client
            .subscribe(topic.clone(), qos)
            .await
            .map_err(|e| broker(e.to_string()))?;
        tracing::info!(topic = %topic, broker = %redact(url), trigger = %trigger.trigger_ref, "subscribing");
        loop {
            let event = tokio::select! {
                _ = stop.cancelled() => {
                    let _ = client.disconnect().await;
                    return Ok(());
                }
                e = events.poll() => e,
            };
            let publish = match event {
                Ok(Event::Incoming(Packet::Publish(p))) => p,
                Ok(Event::Incoming(Packet::SubAck(ack))) => {
                    let refused = ack.return_codes.iter().any(|c| {
                        !matches!(
                            c,
                            rumqttc::v5::mqttbytes::v5::SubscribeReasonCode::Success(_)
                        )
                    });
                    if refused {
                        return Err(broker(format!(
                            "subscription to \"{topic}\" refused: {:?}",
                            ack.return_codes
                        )));
                    }
                    continue;
                }
                Ok(_) => continue,
                Err(e) => return Err(broker(e.to_string())),
            };
            let text = String::from_utf8_lossy(&publish.payload).into_owned();
            let mut payload = json!({
                "topic": String::from_utf8_lossy(&publish.topic),
                "message": text,
                "userdata": userdata,
                "qos": publish.qos as u8,
                "retain": publish.retain,
            });
            if let Some(props) = &publish.properties {
                if let Some(ct) = &props.content_type {
                    payload["content_type"] = json!(ct);
                }
                if let Some(rt) = &props.response_topic {
                    payload["response_topic"] = json!(rt);
                }
                if !props.user_properties.is_empty() {
                    let map: serde_json::Map<String, Value> = props
                        .user_properties
                        .iter()
                        .map(|(k, v)| (k.clone(), json!(v)))
                        .collect();
                    payload["user_properties"] = Value::Object(map);
                }
            }
            dispatch::dispatch(ctx, &trigger.trigger_ref, payload, None).await?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            parse_url("mqtt://h:1884").expect("ok"),
            ("h".into(), 1884, None)
        );
        assert_eq!(parse_url("mqtt://h").expect("ok").1, 1883);
        assert_eq!(
            parse_url("mqtt://u:p@h:1").expect("ok").2,
            Some(("u".into(), "p".into()))
        );
        assert!(parse_url("http://h").is_err());
        assert!(parse_url("mqtt://:1").is_err());
    }
}
