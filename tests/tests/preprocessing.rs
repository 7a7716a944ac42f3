//! Trigger preprocessing through the real platform (fixture pack `preproc`, whose trigger types
//! declare `preprocessing:` steps):
//!
//! - dedup: a duplicate within the TTL is suppressed, also after a restart on the same data dir;
//! - match / reject / criteria: dropped instances are recorded and never reach the rules;
//! - extraction: extracted fields are in the stored payload and in the rule's action parameters;
//! - a failing step marks the instance `processing_failed` with the step and reason;
//! - throttle and discard-unchanged;
//! - a bad step is refused at registration with the file and field.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use st2_core::config::Config;
use st2_core::model::{RuleEnforcement, TriggerInstance};
use st2_core::platform::Platform;
use st2_core::services::{dispatch, Ctx};
use st2_core::store::{repo, Query};
use st2_tests::api::Harness;

async fn harness() -> Harness {
    Harness::start_with(&["preproc"], |_| {}).await
}

async fn send(ctx: &Ctx, trigger: &str, payload: Value) -> TriggerInstance {
    dispatch::dispatch(ctx, trigger, payload, None)
        .await
        .expect("dispatch")
}

/// Waits (up to 30 s) until the rules engine has processed trigger instance `id`.
async fn processed(ctx: &Ctx, id: &str) -> TriggerInstance {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ti = repo::<TriggerInstance>(&*ctx.store)
            .get(id)
            .await
            .expect("get")
            .expect("stored");
        if ti.status == "processed" || ti.status == "processing_failed" {
            return ti;
        }
        assert!(Instant::now() < deadline, "{id} still {}", ti.status);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn enforcements(ctx: &Ctx, ti: &str) -> usize {
    repo::<RuleEnforcement>(&*ctx.store)
        .find(&Query::all().eq("trigger_instance_id", ti))
        .await
        .expect("enforcements")
        .len()
}

fn outcome(ti: &TriggerInstance) -> Option<&str> {
    ti.preprocessing
        .as_ref()
        .and_then(|p| p.get("outcome"))
        .and_then(Value::as_str)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dedup_within_ttl_and_after_a_restart() {
    let h = harness().await;
    let ctx = h.platform.ctx.clone();
    let first = send(&ctx, "preproc.dedup", json!({"id": "evt-1"})).await;
    assert_eq!(first.status, "pending");
    assert_eq!(first.preprocessing, None);
    let dup = send(&ctx, "preproc.dedup", json!({"id": "evt-1", "retry": 1})).await;
    assert_eq!(dup.status, "processed");
    assert_eq!(outcome(&dup), Some("suppressed"));
    let p = dup.preprocessing.as_ref().expect("record");
    assert_eq!(p["step"], json!(0));
    assert_eq!(p["name"], json!("once-per-id"));
    let other = send(&ctx, "preproc.dedup", json!({"id": "evt-2"})).await;
    assert_eq!(other.status, "pending");
    // The suppressed instance is stored as such (visible to the API and to clients).
    let stored = h.get(&format!("/api/v1/triggerinstances/{}", dup.id)).await;
    assert_eq!(stored.body["status"], json!("processed"));
    assert_eq!(stored.body["preprocessing"]["outcome"], json!("suppressed"));

    // Restart on the same data dir: the key is remembered.
    let Harness { platform, dir, .. } = h;
    platform.shutdown().await;
    drop(ctx);
    let mut cfg = Config::default();
    cfg.system.data_dir = dir.path().to_path_buf();
    cfg.content.system_packs_base_path = Some(st2_tests::bundled_packs());
    let p2 = Platform::start(&cfg, &["all".to_string()])
        .await
        .expect("restart");
    let again = send(&p2.ctx, "preproc.dedup", json!({"id": "evt-1"})).await;
    assert_eq!(again.status, "processed");
    assert_eq!(outcome(&again), Some("suppressed"));
    let fresh = send(&p2.ctx, "preproc.dedup", json!({"id": "evt-3"})).await;
    assert_eq!(fresh.status, "pending");
    p2.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_instances_never_reach_rules() {
    let h = harness().await;
    let ctx = h.platform.ctx.clone();
    // Through the `st2` webhook, as a client would send it.
    let a = h
        .post(
            "/api/v1/webhooks/st2",
            json!({"trigger": "preproc.filtered", "payload": {"level": "error", "source": "db", "count": 5}}),
        )
        .await;
    assert!(a.status.is_success(), "{a:?}");
    let cases = [
        (
            json!({"level": "info", "source": "db", "count": 5}),
            0,
            "errors-only",
        ),
        (json!({"source": "db", "count": 5}), 0, "errors-only"),
        (
            json!({"level": "critical", "source": "test-1", "count": 5}),
            1,
            "no-tests",
        ),
        (
            json!({"level": "critical", "source": "db", "count": 1}),
            2,
            "big-enough",
        ),
    ];
    let mut dropped = Vec::new();
    for (payload, step, name) in cases {
        let ti = send(&ctx, "preproc.filtered", payload.clone()).await;
        assert_eq!(ti.status, "processed", "{payload}");
        assert_eq!(outcome(&ti), Some("rejected"), "{payload}");
        let p = ti.preprocessing.as_ref().expect("record");
        assert_eq!(
            (p["step"].clone(), p["name"].clone()),
            (json!(step), json!(name))
        );
        dropped.push(ti.id);
    }
    let kept = send(
        &ctx,
        "preproc.filtered",
        json!({"level": "critical", "source": "web", "count": 3}),
    )
    .await;
    assert_eq!(kept.status, "pending");
    let kept = processed(&ctx, &kept.id).await;
    assert_eq!(kept.status, "processed");
    assert_eq!(enforcements(&ctx, &kept.id).await, 1, "the rule fired");
    for id in &dropped {
        assert_eq!(enforcements(&ctx, id).await, 0, "{id} reached the rules");
    }
    // Two instances got through (webhook + kept): exactly two executions of the rule's action.
    let noops: Vec<st2_core::model::Execution> = repo(&*ctx.store)
        .find(&Query::all().eq("action.ref", "core.noop"))
        .await
        .expect("executions");
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut n = noops.len();
    while n < 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
        n = repo::<st2_core::model::Execution>(&*ctx.store)
            .count(&Query::all().eq("action.ref", "core.noop"))
            .await
            .expect("count") as usize;
    }
    assert_eq!(n, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extracted_fields_reach_the_action_parameters() {
    let h = harness().await;
    let ctx = h.platform.ctx.clone();
    let ti = send(
        &ctx,
        "preproc.extracted",
        json!({"data": {"origin": {"host": "web-7"}, "code": 503}}),
    )
    .await;
    assert_eq!(ti.payload["host"], json!("web-7"));
    assert_eq!(ti.payload["summary"], json!("WEB-7:503"));
    let exec = h.wait_for("core.local", |e| e.status.is_completed()).await;
    assert_eq!(exec.parameters["cmd"], json!("echo web-7 WEB-7:503"));
    let stdout = exec.result.as_ref().and_then(|r| r.get("stdout")).cloned();
    assert_eq!(stdout, Some(json!("web-7 WEB-7:503")));
    // A missing optional source leaves the field alone; the template then fails on it.
    let partial = send(&ctx, "preproc.extracted", json!({"data": {"code": 1}})).await;
    assert_eq!(partial.status, "processing_failed");
    let p = partial.preprocessing.expect("record");
    assert_eq!(
        (p["step"].clone(), p["name"].clone()),
        (json!(1), json!("summary"))
    );
    assert!(
        p["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("template"),
        "{p}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_step_is_recorded_on_the_instance() {
    let h = harness().await;
    let ctx = h.platform.ctx.clone();
    let ti = send(&ctx, "preproc.strict", json!({"data": {}})).await;
    assert_eq!(ti.status, "processing_failed");
    let p = ti.preprocessing.clone().expect("record");
    assert_eq!(p["outcome"], json!("failed"));
    assert_eq!(
        (p["step"].clone(), p["name"].clone()),
        (json!(0), json!("need-code"))
    );
    assert!(
        p["reason"].as_str().unwrap_or_default().contains("code"),
        "{p}"
    );
    let listed = h
        .get("/api/v1/triggerinstances?trigger=preproc.strict")
        .await;
    assert_eq!(listed.body[0]["status"], json!("processing_failed"));
    let ok = send(&ctx, "preproc.strict", json!({"data": {"code": 7}})).await;
    assert_eq!(ok.status, "pending");
    assert_eq!(ok.payload["code"], json!(7));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttle_and_discard_unchanged() {
    let h = harness().await;
    let ctx = h.platform.ctx.clone();
    let mut statuses = Vec::new();
    for host in ["a", "a", "b", "a", "b", "b"] {
        statuses.push(
            send(&ctx, "preproc.throttled", json!({"host": host}))
                .await
                .status,
        );
    }
    assert_eq!(
        statuses,
        [
            "pending",
            "pending",
            "pending",
            "processed",
            "pending",
            "processed"
        ]
    );
    let mut kept = Vec::new();
    for (host, state) in [
        ("a", "up"),
        ("a", "up"),
        ("b", "up"),
        ("a", "down"),
        ("a", "down"),
        ("a", "up"),
    ] {
        let ti = send(
            &ctx,
            "preproc.changes",
            json!({"host": host, "state": state}),
        )
        .await;
        kept.push(ti.status == "pending");
    }
    assert_eq!(kept, [true, false, true, true, false, true]);
}

#[tokio::test]
async fn a_bad_step_is_refused_at_registration() {
    let dir = tempfile::tempdir().expect("tmp");
    let pack = dir.path().join("badpre");
    std::fs::create_dir_all(pack.join("triggers")).expect("mkdir");
    std::fs::write(
        pack.join("pack.yaml"),
        "ref: badpre\nname: badpre\ndescription: d\nauthor: a\nversion: 0.1.0\n",
    )
    .expect("write");
    std::fs::write(
        pack.join("triggers/t.yaml"),
        "name: t\npreprocessing:\n  - type: match\n    key: trigger.a\n    pattern: \"(\"\n",
    )
    .expect("write");
    let errs = st2_core::packs::loader::load_pack(&pack, &st2_core::packs::ContentTypes::ALL)
        .map(|_| ())
        .expect_err("refused");
    let text = format!("{errs:?}");
    assert!(text.contains("/preprocessing/0"), "{text}");
    assert!(text.contains("pattern"), "{text}");
}
