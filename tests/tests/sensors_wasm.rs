//! WebAssembly sensors through the real platform: the `sensorcontainer` role polls the fixture
//! pack `wasmsensors`'s `EchoSensor` (a `.wat` module) in the sandbox; each poll's input
//! (pack config, kept state, poll number) comes back as the payload it dispatches, and the
//! state it keeps is in the datastore and reaches the next poll.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::json;

use st2_core::model::TriggerInstance;
use st2_core::store::{repo, Query};
use st2_tests::api::Harness;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wasm_sensor_polls_with_config_and_state() {
    let h = Harness::start_with(&["wasmsensors"], |dir: &Path| {
        let configs = dir.join("configs");
        std::fs::create_dir_all(&configs).expect("mkdir");
        std::fs::write(configs.join("wasmsensors.yaml"), "greeting: Hi\n").expect("config");
    })
    .await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let polls = loop {
        let mut all = repo::<TriggerInstance>(&*h.platform.ctx.store)
            .find(&Query::all().eq("trigger", "wasmsensors.polled"))
            .await
            .expect("instances");
        all.sort_by_key(|t| t.payload["input"]["poll"].as_u64());
        if all.len() >= 3 {
            break all;
        }
        assert!(Instant::now() < deadline, "3 polls: {all:#?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let first = &polls[0].payload["input"];
    assert_eq!(first["poll"], json!(1));
    assert_eq!(first["config"]["greeting"], json!("Hi"), "the pack config");
    assert_eq!(
        first["state"],
        json!(null),
        "no state before the first poll"
    );
    let second = &polls[1].payload["input"];
    assert_eq!(second["poll"], json!(2));
    assert_eq!(
        second["state"],
        json!("seen"),
        "the state the first poll kept"
    );
    assert_eq!(second["triggers"].as_array().map(Vec::len), Some(1));
    let kv = h.get("/api/v1/keys/wasmsensors.EchoSensor:state").await;
    assert_eq!(kv.status.as_u16(), 200, "{kv:?}");
    assert_eq!(kv.body["value"], json!("\"seen\""));
}
