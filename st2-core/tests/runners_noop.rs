//! `noop`, `announcement` and `inquirer`: the runners that start nothing, with the core pack's
//! actions.

mod runners_common;

use serde_json::json;
use st2_core::model::ExecutionStatus;
use st2_core::runners::noop::{AnnouncementRunner, InquirerRunner, NoopRunner};
use st2_core::runners::Runner;

use runners_common::*;

fn core_action(name: &str) -> st2_core::model::Action {
    load_action(&repo_root().join("packs").join("core"), "core", name)
}

#[tokio::test]
async fn noop_always_succeeds() {
    let out = NoopRunner
        .run(context(
            core_action("noop"),
            json!({}),
            json!({"anything": 1}),
        ))
        .await;
    assert_eq!(out.status, ExecutionStatus::Succeeded);
    assert_eq!(
        out.result,
        json!({"failed": false, "succeeded": true, "return_code": 0})
    );
}

#[tokio::test]
async fn announcement_returns_its_parameters() {
    let ctx = context(
        core_action("announcement"),
        json!({"experimental": true, "route": "general"}),
        json!({"message": {"text": "hi"}}),
    );
    let out = AnnouncementRunner.run(ctx).await;
    assert_eq!(out.status, ExecutionStatus::Succeeded);
    assert_eq!(
        out.result,
        json!({"output": {"message": {"text": "hi"}}, "message": {"text": "hi"}})
    );

    let ctx = context(
        core_action("announcement"),
        json!({"experimental": false}),
        json!({}),
    );
    let out = AnnouncementRunner.run(ctx).await;
    assert_eq!(out.status, ExecutionStatus::Failed);
    assert_eq!(
        out.result["error"],
        "Experimental flag is missing for action core.announcement"
    );
}

#[tokio::test]
async fn inquirer_is_pending_with_the_inquiry_shape() {
    let out = InquirerRunner
        .run(context(core_action("ask"), json!({}), json!({})))
        .await;
    assert_eq!(out.status, ExecutionStatus::Pending);
    assert!(out.is_pending());
    assert_eq!(out.result["roles"], json!([]));
    assert_eq!(out.result["users"], json!([]));
    assert_eq!(out.result["route"], "");
    assert_eq!(out.result["ttl"], 1440);
    assert_eq!(
        out.result["schema"]["properties"]["continue"]["type"],
        "boolean"
    );

    let schema = json!({"type": "object", "properties": {"answer": {"type": "string"}}});
    let ctx = context(
        core_action("ask"),
        json!({"schema": schema, "users": ["alice"], "route": "ops", "ttl": 5}),
        json!({}),
    );
    let out = InquirerRunner.run(ctx).await;
    assert_eq!(
        out.result,
        json!({"schema": schema, "roles": [], "users": ["alice"], "route": "ops", "ttl": 5})
    );
}
