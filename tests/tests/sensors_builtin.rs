//! Built-in sensors through the real platform (the `sensorcontainer` role runs them): a rule
//! made through the API names what to watch, the sensor follows it and its trigger instances
//! fire the rule.
//!
//! - `linux.file_watch.line`: appended lines (and lines after a rotation) become instances with
//!   StackStorm's payload; the rule's action runs; deleting the rule stops the watch.
//! - `rabbitmq.new_message`: a message published to a queue on the real RabbitMQ
//!   (`ST2_TEST_AMQP_URL`, default guest on 127.0.0.1:5672).
//! - `mqtt.message`: messages published to the real Mosquitto (`ST2_TEST_MQTT_URL`, set by
//!   `scripts/test.sh`) through a wildcard filter and a shared subscription.
//! - two sensor containers on one store: each line is sent once (a lease per sensor).

use std::io::Write;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use st2_core::model::TriggerInstance;
use st2_core::store::{repo, Query};
use st2_tests::api::Harness;

/// A name unique to this test run.
fn unique(prefix: &str) -> String {
    format!("{prefix}_{}", uuid_like())
}

fn uuid_like() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{}_{nanos}", std::process::id())
}

/// Creates a rule on `trigger_type` with `parameters` whose action echoes `echo`, returning
/// the ref of the trigger the rule got.
async fn rule(
    h: &Harness,
    name: &str,
    trigger_type: &str,
    parameters: Value,
    echo: &str,
) -> String {
    let a = h
        .post(
            "/api/v1/rules",
            json!({
                "name": name,
                "pack": "examples",
                "enabled": true,
                "trigger": {"type": trigger_type, "parameters": parameters},
                "action": {"ref": "core.local", "parameters": {"cmd": format!("echo {echo}")}},
            }),
        )
        .await;
    assert_eq!(a.status.as_u16(), 201, "{a:?}");
    a.body["trigger"]["ref"]
        .as_str()
        .expect("the rule names its trigger")
        .to_string()
}

async fn instances(h: &Harness, trigger: &str) -> Vec<TriggerInstance> {
    repo::<TriggerInstance>(&*h.platform.ctx.store)
        .find(
            &Query::all()
                .eq("trigger", trigger)
                .sort("occurrence_time", false),
        )
        .await
        .expect("instances")
}

/// Calls `poke` every 200 ms until an instance of `trigger` satisfies `pred` (30 s at most).
async fn until<F, Fut>(
    h: &Harness,
    trigger: &str,
    mut poke: F,
    pred: impl Fn(&TriggerInstance) -> bool,
) -> TriggerInstance
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        poke().await;
        for _ in 0..10 {
            if let Some(ti) = instances(h, trigger).await.into_iter().find(|t| pred(t)) {
                return ti;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(
            Instant::now() < deadline,
            "no matching instance of {trigger}"
        );
    }
}

/// Appends probe lines to `log` until the sensor sends one (lines written before the watch
/// starts are not sent).
async fn wait_until_tailing(h: &Harness, trigger: &str, log: &std::path::Path) {
    let mut n = 0;
    until(
        h,
        trigger,
        || {
            n += 1;
            append(log, &format!("probe {n}\n"));
            async {}
        },
        |_| true,
    )
    .await;
}

fn append(path: &std::path::Path, text: &str) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open");
    f.write_all(text.as_bytes()).expect("append");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_watch_tails_new_lines_and_fires_the_rule() {
    let h = Harness::start().await;
    let log = h.dir.path().join("app.log");
    std::fs::write(&log, "old line, never sent\n").expect("write");
    let file_path = log.to_string_lossy().into_owned();
    let trigger = rule(
        &h,
        "tail_app",
        "linux.file_watch.line",
        json!({"file_path": file_path}),
        "got {{ trigger.line }}",
    )
    .await;
    // Probe until the watch is running (lines written before it starts are not sent).
    wait_until_tailing(&h, &trigger, &log).await;
    append(&log, "hello world\nsecond");
    let hello = until(
        &h,
        &trigger,
        || async {},
        |t| t.payload["line"] == json!("hello world"),
    )
    .await;
    assert_eq!(
        hello.payload,
        json!({"file_path": file_path, "file_name": "app.log", "line": "hello world"})
    );
    // The incomplete line is sent once it ends.
    append(&log, " half\n");
    until(
        &h,
        &trigger,
        || async {},
        |t| t.payload["line"] == json!("second half"),
    )
    .await;
    let lines: Vec<Value> = instances(&h, &trigger)
        .await
        .iter()
        .map(|t| t.payload["line"].clone())
        .collect();
    assert!(!lines.contains(&json!("old line, never sent")), "{lines:?}");
    let exec = h
        .wait_for("core.local", |e| {
            e.status.is_completed() && e.parameters["cmd"] == json!("echo got hello world")
        })
        .await;
    assert_eq!(
        exec.result.as_ref().map(|r| r["stdout"].clone()),
        Some(json!("got hello world"))
    );
    // Rotation: the path names a new file, read from its start.
    std::fs::rename(&log, h.dir.path().join("app.log.1")).expect("rotate");
    append(&log, "after rotation\n");
    until(
        &h,
        &trigger,
        || async {},
        |t| t.payload["line"] == json!("after rotation"),
    )
    .await;
    // Deleting the rule removes the trigger: the watch stops.
    let del = h.delete("/api/v1/rules/examples.tail_app").await;
    assert_eq!(del.status.as_u16(), 204);
    tokio::time::sleep(Duration::from_secs(4)).await;
    let before = instances(&h, &trigger).await.len();
    append(&log, "nobody listens\n");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(instances(&h, &trigger).await.len(), before);
}

fn amqp_url() -> String {
    std::env::var("ST2_TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amqp_queue_messages_become_trigger_instances() {
    use lapin::options::{BasicPublishOptions, QueueDeclareOptions, QueueDeleteOptions};
    use lapin::types::FieldTable;
    use lapin::{BasicProperties, Connection, ConnectionProperties};

    let h = Harness::start().await;
    let queue = unique("st2_sensor_test");
    let props = ConnectionProperties::default()
        .with_executor(tokio_executor_trait::Tokio::current())
        .with_reactor(tokio_reactor_trait::Tokio);
    let conn = Connection::connect(&amqp_url(), props)
        .await
        .expect("RabbitMQ on ST2_TEST_AMQP_URL (scripts/test.sh starts one)");
    let ch = conn.create_channel().await.expect("channel");
    let durable = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    ch.queue_declare(&queue, durable, FieldTable::default())
        .await
        .expect("declare");
    // Published before the sensor consumes: the queue keeps them.
    for body in [r#"{"n": 1}"#, "plain text"] {
        ch.basic_publish(
            "",
            &queue,
            BasicPublishOptions::default(),
            body.as_bytes(),
            BasicProperties::default(),
        )
        .await
        .expect("publish")
        .await
        .expect("confirm");
    }
    let trigger = rule(
        &h,
        "on_queue",
        "rabbitmq.new_message",
        json!({"url": amqp_url(), "queue": queue, "deserialization_method": "json"}),
        "{{ trigger.body }}",
    )
    .await;
    let first = until(
        &h,
        &trigger,
        || async {},
        |t| t.payload["body"] == json!({"n": 1}),
    )
    .await;
    assert_eq!(first.payload["queue"], json!(queue));
    until(
        &h,
        &trigger,
        || async {},
        |t| t.payload["body"] == json!("plain text"),
    )
    .await;
    h.wait_for("core.local", |e| {
        e.status.is_completed() && e.parameters["cmd"] == json!("echo plain text")
    })
    .await;
    // Acknowledged: nothing is left in the queue.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let passive = QueueDeclareOptions {
            passive: true,
            ..Default::default()
        };
        let q = ch
            .queue_declare(&queue, passive, FieldTable::default())
            .await
            .expect("inspect");
        if q.message_count() == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} messages left",
            q.message_count()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = h.delete("/api/v1/rules/examples.on_queue").await;
    let _ = ch.queue_delete(&queue, QueueDeleteOptions::default()).await;
    let _ = conn.close(200, "done").await;
}

fn mqtt_url() -> (String, String, u16) {
    let url = std::env::var("ST2_TEST_MQTT_URL").unwrap_or_else(|_| {
        panic!("ST2_TEST_MQTT_URL is not set: these tests need Mosquitto; run them through scripts/test.sh, which starts one")
    });
    let hostport = url.trim_start_matches("mqtt://").trim_end_matches('/');
    let (host, port) = hostport.rsplit_once(':').expect("mqtt://host:port");
    (url.clone(), host.to_string(), port.parse().expect("port"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_wildcard_and_shared_subscriptions() {
    use rumqttc::v5::mqttbytes::QoS;
    use rumqttc::v5::{AsyncClient, MqttOptions};

    let (url, host, port) = mqtt_url();
    let h = Harness::start().await;
    let base = unique("st2test");
    let wildcard = rule(&h, "on_temp", "mqtt.message", json!({"url": url, "topic": format!("{base}/+/temp"), "qos": 1, "userdata": {"site": "lab"}}), "{{ trigger.topic }}={{ trigger.message }}").await;
    let shared = rule(
        &h,
        "on_shared",
        "mqtt.message",
        json!({"url": url, "topic": format!("$share/st2/{base}/shared/#")}),
        "{{ trigger.message }}",
    )
    .await;

    let (client, mut events) = AsyncClient::new(MqttOptions::new(unique("pub"), host, port), 16);
    tokio::spawn(async move { while events.poll().await.is_ok() {} });
    let publish = |topic: String, msg: &'static str| {
        let c = client.clone();
        async move {
            c.publish(topic, QoS::AtLeastOnce, false, msg)
                .await
                .expect("publish");
        }
    };
    let ti = until(
        &h,
        &wildcard,
        || publish(format!("{base}/room1/temp"), "21.5"),
        |_| true,
    )
    .await;
    assert_eq!(ti.payload["topic"], json!(format!("{base}/room1/temp")));
    assert_eq!(ti.payload["message"], json!("21.5"));
    assert_eq!(ti.payload["userdata"], json!({"site": "lab"}));
    assert_eq!(ti.payload["retain"], json!(false));
    assert!(ti.payload["qos"].is_u64(), "{}", ti.payload);
    // Not matched by the filter: never an instance.
    publish(format!("{base}/room1/humidity"), "40").await;
    publish(format!("{base}/room2/temp"), "19").await;
    until(
        &h,
        &wildcard,
        || async {},
        |t| t.payload["message"] == json!("19"),
    )
    .await;
    let topics: Vec<Value> = instances(&h, &wildcard)
        .await
        .iter()
        .map(|t| t.payload["topic"].clone())
        .collect();
    assert!(
        !topics.contains(&json!(format!("{base}/room1/humidity"))),
        "{topics:?}"
    );
    h.wait_for("core.local", |e| {
        e.status.is_completed()
            && e.parameters["cmd"] == json!(format!("echo {base}/room2/temp=19"))
    })
    .await;

    let ti = until(
        &h,
        &shared,
        || publish(format!("{base}/shared/a/b"), "for the group"),
        |_| true,
    )
    .await;
    assert_eq!(ti.payload["topic"], json!(format!("{base}/shared/a/b")));
    assert_eq!(ti.payload["message"], json!("for the group"));
    let _ = h.delete("/api/v1/rules/examples.on_temp").await;
    let _ = h.delete("/api/v1/rules/examples.on_shared").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sensor_containers_never_run_the_same_sensor() {
    use st2_core::sensors::builtin::service::BuiltinSensors;
    use st2_core::services::lease::Lease;

    let h = Harness::start().await;
    // A second sensor container on the same store, with its own lifetime.
    let mut ctx2 = h.platform.ctx.clone();
    ctx2.shutdown = h.platform.ctx.shutdown.child_token();
    let second = BuiltinSensors::new(ctx2.clone()).start();
    let log = h.dir.path().join("shared.log");
    std::fs::write(&log, "").expect("write");
    let trigger = rule(
        &h,
        "tail_shared",
        "linux.file_watch.line",
        json!({"file_path": log.to_string_lossy()}),
        "{{ trigger.line }}",
    )
    .await;
    wait_until_tailing(&h, &trigger, &log).await;
    // Both containers have reloaded several times by now.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    for i in 0..20 {
        append(&log, &format!("line {i}\n"));
    }
    until(
        &h,
        &trigger,
        || async {},
        |t| t.payload["line"] == json!("line 19"),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(600)).await; // a duplicate would be in by now
    let all = instances(&h, &trigger).await;
    for i in 0..20 {
        let line = json!(format!("line {i}"));
        let count = all.iter().filter(|t| t.payload["line"] == line).count();
        assert_eq!(count, 1, "{line} was sent {count} times");
    }
    // One holder of the sensor's lease, and it is a sensor container.
    let lease = Lease::new(
        h.platform.ctx.store.clone(),
        "sensor:linux.FileWatchSensor",
        "observer",
        Duration::from_secs(3),
    );
    let state = lease
        .state()
        .await
        .expect("read")
        .expect("the sensor is leased");
    assert!(state.holder.contains("-sensors-"), "{state:?}");
    ctx2.shutdown.cancel();
    second.await.expect("second container stops");
}
