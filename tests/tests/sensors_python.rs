//! Python sensors through the real platform: the `sensorcontainer` role runs the fixture pack
//! `pysensors` (tests/fixtures/packs/pysensors) unchanged under the StackStorm shim.
//!
//! - A `PollingSensor` keeps a counter in the datastore, reads the pack config and dispatches
//!   triggers that fire a rule; its process start is reported by `process_spawn`.
//! - The sensor crashes once: `process_exit` reports the exit code, it is respawned and goes on
//!   counting from the datastore.
//! - A passive `Sensor` is told about the triggers rules give it (add, update, remove).
//! - Re-registering the pack after its sensor file changed restarts the sensor.
//! - Two sensor containers on one store never run the same sensor twice.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use st2_core::model::{Execution, TriggerInstance};
use st2_core::store::{repo, Query};
use st2_tests::api::Harness;

const TICK: &str = "pysensors.tick";
const SPAWN: &str = "core.st2.sensor.process_spawn";
const EXIT: &str = "core.st2.sensor.process_exit";

async fn start(config: &str) -> Harness {
    let config = config.to_string();
    Harness::start_with(&["pysensors"], move |dir: &Path| {
        let configs = dir.join("configs");
        std::fs::create_dir_all(&configs).expect("mkdir");
        std::fs::write(configs.join("pysensors.yaml"), config).expect("write config");
    })
    .await
}

/// Instances of `trigger`, oldest first.
async fn instances(h: &Harness, trigger: &str) -> Vec<TriggerInstance> {
    let mut all = repo::<TriggerInstance>(&*h.platform.ctx.store)
        .find(&Query::all().eq("trigger", trigger))
        .await
        .expect("instances");
    // Occurrence times can tie; the sensor's counter orders ticks.
    all.sort_by(|a, b| {
        (a.occurrence_time.clone(), a.payload["count"].as_i64())
            .cmp(&(b.occurrence_time.clone(), b.payload["count"].as_i64()))
    });
    all
}

/// Waits (30 s at most) until the instances of `trigger` satisfy `pred`, and returns them.
async fn wait_instances(
    h: &Harness,
    trigger: &str,
    what: &str,
    pred: impl Fn(&[TriggerInstance]) -> bool,
) -> Vec<TriggerInstance> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let all = instances(h, trigger).await;
        if pred(&all) {
            return all;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: instances of {trigger}: {:#?}",
            all.iter().map(|t| &t.payload).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn of_class<'a>(all: &'a [TriggerInstance], class: &str) -> Vec<&'a TriggerInstance> {
    all.iter()
        .filter(|t| t.payload["id"] == json!(class))
        .collect()
}

fn counts(all: &[TriggerInstance]) -> Vec<i64> {
    all.iter()
        .filter_map(|t| t.payload["count"].as_i64())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polling_sensor_dispatches_with_config_and_datastore_and_fires_rules() {
    let h = start("greeting: Howdy\n").await;
    let ticks = wait_instances(&h, TICK, "three ticks", |a| a.len() >= 3).await;
    assert_eq!(
        &counts(&ticks)[..3],
        &[1, 2, 3],
        "the counter goes up by one per poll"
    );
    assert_eq!(ticks[0].payload["greeting"], json!("Howdy"), "self._config");
    let pid = ticks[0].payload["pid"].as_i64().expect("pid");
    assert!(
        ticks.iter().all(|t| t.payload["pid"] == json!(pid)),
        "one process"
    );
    // The process start was reported with its pid.
    let spawns = instances(&h, SPAWN).await;
    let counter_spawns = of_class(&spawns, "CounterSensor");
    assert_eq!(counter_spawns.len(), 1, "{spawns:#?}");
    assert_eq!(counter_spawns[0].payload["pid"], json!(pid));
    assert!(counter_spawns[0].payload["cmd"]
        .as_str()
        .is_some_and(|c| c.contains("st2_sensor_wrapper.py")));
    // The rule on the second tick ran its action with the rendered payload.
    let exec = h
        .wait_for("core.local", |e: &Execution| e.status.is_completed())
        .await;
    assert_eq!(exec.status.as_str(), "succeeded", "{exec:?}");
    assert_eq!(
        exec.result
            .as_ref()
            .map(|r| r["stdout"].clone())
            .unwrap_or_default(),
        json!("Howdy 2")
    );
    // The counter lives in the datastore under the sensor-local name.
    let kv = h.get("/api/v1/keys/pysensors.CounterSensor:count").await;
    assert_eq!(kv.status.as_u16(), 200, "{kv:?}");
    let stored: i64 = kv.body["value"]
        .as_str()
        .and_then(|v| v.parse().ok())
        .expect("a number");
    assert!(stored >= 3, "{kv:?}");
    // Trace tags reach the instances.
    let traces = h.get("/api/v1/traces?trace_tag=tick-1").await;
    assert_eq!(traces.status.as_u16(), 200, "{traces:?}");
    assert!(
        traces.body.as_array().is_some_and(|a| !a.is_empty()),
        "{traces:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crashed_sensor_is_reported_and_respawned() {
    let h = start("crash_at: 2\n").await;
    // Ticks 1, 2, the crash, the respawn (2.5 s later), then 3 from the stored counter.
    let ticks = wait_instances(&h, TICK, "a tick after the respawn", |a| {
        counts(a).contains(&3)
    })
    .await;
    let c = counts(&ticks);
    assert_eq!(&c[..3], &[1, 2, 3], "no count lost or repeated: {c:?}");
    assert_ne!(
        ticks[1].payload["pid"], ticks[2].payload["pid"],
        "tick 3 comes from a new process"
    );
    let exits = instances(&h, EXIT).await;
    let crashed = of_class(&exits, "CounterSensor");
    assert_eq!(crashed.len(), 1, "{exits:#?}");
    assert_eq!(crashed[0].payload["exit_code"], json!(1));
    let spawns = instances(&h, SPAWN).await;
    let pids: Vec<&Value> = of_class(&spawns, "CounterSensor")
        .iter()
        .map(|t| &t.payload["pid"])
        .collect();
    assert_eq!(
        pids,
        vec![&ticks[1].payload["pid"], &ticks[2].payload["pid"]],
        "spawned twice"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passive_sensor_follows_the_triggers_of_rules() {
    let h = start("").await;
    let make = |name: &str| {
        json!({
            "name": "greet_rule",
            "pack": "pysensors",
            "enabled": true,
            "trigger": {"type": "pysensors.greet", "parameters": {"name": name}},
            "action": {"ref": "core.local", "parameters": {"cmd": "echo {{ trigger.event }} {{ trigger.name }}"}},
        })
    };
    let created = h.post("/api/v1/rules", make("ann")).await;
    assert_eq!(created.status.as_u16(), 201, "{created:?}");
    let trigger_ref = created.body["trigger"]["ref"]
        .as_str()
        .expect("trigger ref")
        .to_string();
    // add_trigger: the sensor reports the new trigger, which fires the rule.
    wait_instances(&h, &trigger_ref, "added", |a| {
        a.iter()
            .any(|t| t.payload == json!({"event": "added", "name": "ann"}))
    })
    .await;
    let exec = h
        .wait_for("core.local", |e: &Execution| {
            e.status.is_completed() && e.parameters.get("cmd") == Some(&json!("echo added ann"))
        })
        .await;
    assert_eq!(
        exec.result
            .as_ref()
            .map(|r| r["stdout"].clone())
            .unwrap_or_default(),
        json!("added ann"),
        "{exec:?}"
    );
    // Deleting the rule removes its trigger: remove_trigger.
    let deleted = h.delete("/api/v1/rules/pysensors.greet_rule").await;
    assert!(deleted.status.is_success(), "{deleted:?}");
    wait_instances(&h, "pysensors.greet", "removed", |a| {
        a.iter()
            .any(|t| t.payload == json!({"event": "removed", "name": "ann"}))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn re_registering_the_pack_restarts_its_sensors() {
    let h = start("").await;
    wait_instances(&h, TICK, "a first tick", |a| !a.is_empty()).await;
    let file = h.dir.path().join("packs/pysensors/sensors/counter.py");
    let code = std::fs::read_to_string(&file).expect("read");
    std::fs::write(&file, code.replace("VERSION = 1", "VERSION = 2")).expect("write");
    let r = h
        .post(
            "/api/v1/packs/register",
            json!({"packs": ["pysensors"], "types": ["sensor"]}),
        )
        .await;
    assert!(r.status.is_success(), "{r:?}");
    let ticks = wait_instances(&h, TICK, "a tick of the new code", |a| {
        a.iter().any(|t| t.payload["version"] == json!(2))
    })
    .await;
    let first_v2 = ticks
        .iter()
        .position(|t| t.payload["version"] == json!(2))
        .expect("v2");
    assert!(
        ticks[first_v2..]
            .iter()
            .all(|t| t.payload["version"] == json!(2)),
        "the old process is gone once the new one runs"
    );
    let spawns = instances(&h, SPAWN).await;
    assert_eq!(of_class(&spawns, "CounterSensor").len(), 2, "{spawns:#?}");
    let exits = instances(&h, EXIT).await;
    let stopped = of_class(&exits, "CounterSensor");
    assert_eq!(stopped.len(), 1, "{exits:#?}");
    assert_eq!(stopped[0].payload["exit_code"], json!(0), "a clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sensor_containers_never_run_the_same_python_sensor() {
    use st2_core::sensors::container::SensorContainer;

    let h = start("").await;
    let mut ctx2 = h.platform.ctx.clone();
    ctx2.node_id = "second-container".into();
    ctx2.shutdown = h.platform.ctx.shutdown.child_token();
    let second = SensorContainer::new(ctx2.clone()).start();
    // Both containers reload several times (every second) while the sensor ticks.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let ticks = wait_instances(&h, TICK, "ticks", |a| a.len() >= 5).await;
    let c = counts(&ticks);
    let mut sorted = c.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), c.len(), "a count was sent twice: {c:?}");
    let spawns = instances(&h, SPAWN).await;
    assert_eq!(
        of_class(&spawns, "CounterSensor").len(),
        1,
        "one process for the sensor: {spawns:#?}"
    );
    assert_eq!(of_class(&spawns, "ListenerSensor").len(), 1, "{spawns:#?}");
    // When the second container stops, nothing changes for the sensors the first one runs.
    ctx2.shutdown.cancel();
    second.await.expect("second container stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabling_a_sensor_stops_it_and_enabling_starts_it_again() {
    let h = start("").await;
    wait_instances(&h, TICK, "a first tick", |a| !a.is_empty()).await;
    let listed = h.get("/api/v1/sensortypes?pack=pysensors").await;
    let refs: Vec<&str> = listed
        .body
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|s| s["ref"].as_str())
        .collect();
    assert_eq!(
        refs,
        ["pysensors.CounterSensor", "pysensors.ListenerSensor"]
    );
    let off = h
        .put(
            "/api/v1/sensortypes/pysensors.CounterSensor",
            json!({"enabled": false}),
        )
        .await;
    assert_eq!(off.status.as_u16(), 200, "{off:?}");
    assert_eq!(off.body["enabled"], json!(false));
    let exits = wait_instances(&h, EXIT, "the sensor to stop", |a| {
        !of_class(a, "CounterSensor").is_empty()
    })
    .await;
    assert_eq!(
        of_class(&exits, "CounterSensor")[0].payload["exit_code"],
        json!(0)
    );
    let stopped_at = instances(&h, TICK).await.len();
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        instances(&h, TICK).await.len(),
        stopped_at,
        "no tick while disabled"
    );
    let on = h
        .put(
            "/api/v1/sensortypes/pysensors.CounterSensor",
            json!({"enabled": true}),
        )
        .await;
    assert_eq!(on.status.as_u16(), 200, "{on:?}");
    wait_instances(&h, TICK, "ticks after enabling", |a| a.len() > stopped_at).await;
    let spawns = instances(&h, SPAWN).await;
    assert_eq!(of_class(&spawns, "CounterSensor").len(), 2, "{spawns:#?}");
}
