//! The RabbitMQ bus against a real broker: every check of the conformance suite (each as its
//! own test, under its own random name prefix, on a bus of its own), StackStorm's topology, and
//! what only AMQP promises (a subscription survives the broker closing its connection).
//!
//! The broker is `ST2_TEST_AMQP_URL` (default `amqp://guest:guest@127.0.0.1:5672/%2f`;
//! `scripts/test.sh` installs and starts RabbitMQ). Without a broker every test fails, saying so.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use st2_core::bus::{conformance, names, AmqpBus, Bus, SubscribeSpec};

const DEFAULT_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

fn url() -> String {
    std::env::var("ST2_TEST_AMQP_URL").unwrap_or_else(|_| DEFAULT_URL.to_string())
}

async fn amqp() -> AmqpBus {
    let url = url();
    match AmqpBus::connect(&url).await {
        Ok(bus) => bus,
        Err(e) => panic!(
            "no RabbitMQ broker for the amqp bus tests ({e}); start one (scripts/test.sh does) \
             or point ST2_TEST_AMQP_URL at one"
        ),
    }
}

async fn run(name: &str) {
    let (_, check) = conformance::CHECKS
        .iter()
        .find(|(n, _)| *n == name)
        .unwrap_or_else(|| panic!("no conformance check {name}"));
    let bus: Arc<dyn Bus> = Arc::new(amqp().await);
    // RabbitMQ has no all-or-nothing fan-out (see `Capabilities::atomic_fan_out`).
    let capabilities = conformance::Capabilities {
        atomic_fan_out: false,
    };
    conformance::run_one_with(name, *check, bus, capabilities).await;
}

macro_rules! conformance_tests {
    ($($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                run(stringify!($name)).await;
            }
        )*

        /// Every check of the suite has a test here.
        #[test]
        fn every_check_is_run() {
            let here = [$(stringify!($name)),*];
            for (name, _) in conformance::CHECKS {
                assert!(here.contains(name), "conformance check {name} is not run against amqp");
            }
        }
    };
}

conformance_tests!(
    round_trip_with_headers,
    unknown_exchange_is_an_error,
    unroutable_message_is_dropped,
    topic_routing,
    overlapping_bindings_deliver_once,
    queue_redeclaration,
    invalid_spec_is_refused,
    competing_consumers,
    work_queue_outlives_subscriptions,
    broadcast_every_subscriber,
    broadcast_lag_never_blocks,
    ack_removes,
    nack_requeue_redelivers,
    requeue_reaches_another_consumer,
    drop_redelivers,
    crashed_consumer_loses_nothing,
    cancelled_next_loses_nothing,
    prefetch_limit,
    full_work_queue_blocks_publisher,
    try_publish_refuses_when_full,
    dead_letter_after_max_deliveries,
    nack_without_requeue_dead_letters,
    ordering_single_consumer,
    many_messages_no_loss,
    stream_interface,
    delete_queue_ends_subscriptions,
    close_ends_everything,
);

fn unique(name: &str) -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("test.{}.{name}", &id[..12])
}

async fn next_value(sub: &mut st2_core::bus::Subscription) -> serde_json::Value {
    let d = tokio::time::timeout(Duration::from_secs(10), sub.next())
        .await
        .expect("a delivery in time")
        .expect("subscription open")
        .expect("delivery ok");
    let v = d.message().value().expect("json");
    d.ack().await.expect("ack");
    v
}

/// StackStorm's exchanges and a well-known queue's binding, on the broker (the queue is
/// deleted after).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn st2_topology_declares_and_routes() {
    let bus = amqp().await;
    bus.declare_st2_exchanges()
        .await
        .expect("declare exchanges");
    // A private queue bound like st2.actionrunner.work, so a running platform is not disturbed.
    let q = unique(names::ACTIONRUNNER_WORK);
    let st2 = SubscribeSpec::st2(&names::ST2_QUEUES[2]);
    let mut work = bus
        .subscribe(SubscribeSpec {
            queue: q.clone(),
            ..st2
        })
        .await
        .expect("subscribe");
    bus.publish_json(names::LIVEACTION_STATUS, "requested", &json!({"id": "a"}))
        .await
        .expect("pub");
    bus.publish_json(names::LIVEACTION_STATUS, "scheduled", &json!({"id": "b"}))
        .await
        .expect("pub");
    assert_eq!(next_value(&mut work).await, json!({"id": "b"}));
    drop(work);
    bus.delete_queue(&q).await.expect("delete");
    bus.delete_queue(&names::dead_letter_queue(&q))
        .await
        .expect("delete dead");
    bus.close().await.expect("close");
}

/// A batch publish pipelines confirms and loses nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_batch_delivers_all() {
    let bus = amqp().await;
    let x = unique("x");
    bus.declare_exchange(&x).await.expect("declare");
    let q = unique("q");
    let mut sub = bus
        .subscribe(SubscribeSpec::work(&q, &x, ["#"]).with_capacity(10_000))
        .await
        .expect("subscribe");
    let batch: Vec<_> = (0..500)
        .map(|i| ("k".to_string(), st2_core::bus::Message::json(&json!(i))))
        .collect();
    bus.publish_batch(&x, batch).await.expect("batch");
    for i in 0..500 {
        assert_eq!(next_value(&mut sub).await, json!(i));
    }
    drop(sub);
    bus.delete_queue(&q).await.expect("delete");
    bus.delete_queue(&names::dead_letter_queue(&q))
        .await
        .expect("delete dead");
    bus.close().await.expect("close");
}

fn rabbitmqctl(args: &[&str]) {
    match std::process::Command::new("rabbitmqctl")
        .args(args)
        .output()
    {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!(
            "rabbitmqctl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => panic!("rabbitmqctl {args:?}: {e} (the test needs the local broker's CLI)"),
    }
}

/// The broker closing every connection (as a restart does): publishers and subscriptions
/// reconnect, and a message published after the loss arrives. Runs in a vhost of its own so
/// that the other tests' connections are not touched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnects_after_connection_loss() {
    let vhost = unique("vhost");
    rabbitmqctl(&["add_vhost", &vhost]);
    rabbitmqctl(&["set_permissions", "-p", &vhost, "guest", ".*", ".*", ".*"]);
    let base = url();
    let root = base.rsplit_once('/').map(|(root, _)| root).unwrap_or(&base);
    let bus = AmqpBus::connect(&format!("{root}/{vhost}"))
        .await
        .expect("connect to the test vhost");
    let x = unique("x");
    bus.declare_exchange(&x).await.expect("declare");
    let q = unique("q");
    let mut sub = bus
        .subscribe(SubscribeSpec::work(&q, &x, ["#"]))
        .await
        .expect("subscribe");
    bus.publish_json(&x, "k", &json!("before"))
        .await
        .expect("pub");
    assert_eq!(next_value(&mut sub).await, json!("before"));

    rabbitmqctl(&[
        "close_all_connections",
        "-p",
        &vhost,
        "test: simulated broker restart",
    ]);
    tokio::time::sleep(Duration::from_millis(500)).await;
    tokio::time::timeout(
        Duration::from_secs(20),
        bus.publish_json(&x, "k", &json!("after")),
    )
    .await
    .expect("publish after reconnecting in time")
    .expect("publish after reconnecting");
    assert_eq!(next_value(&mut sub).await, json!("after"));
    drop(sub);
    bus.close().await.expect("close");
    rabbitmqctl(&["delete_vhost", &vhost]);
}
