//! The `action-chain` runner through the real API and pipeline: nodes run as child executions
//! with data passed by vars, publish and results by node name; `on-failure` branches; errors
//! (a node naming an action that does not exist); cancel of a running chain.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use st2_core::model::{Execution, ExecutionStatus};
use st2_tests::api::Harness;

async fn run(h: &Harness, action: &str, parameters: Value) -> String {
    let a = h
        .post(
            "/api/v1/executions",
            json!({"action": action, "parameters": parameters}),
        )
        .await;
    assert_eq!(a.status.as_u16(), 201, "{}", a.body);
    a.body["id"].as_str().expect("id").to_string()
}

fn result(e: &Execution) -> Value {
    e.result.clone().unwrap_or(Value::Null)
}

fn states(e: &Execution) -> Vec<(String, String)> {
    result(e)["tasks"]
        .as_array()
        .map(|t| {
            t.iter()
                .map(|t| {
                    (
                        t["name"].as_str().unwrap_or_default().to_string(),
                        t["state"].as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chain_passes_data_between_nodes_and_shows_its_children() {
    let h = Harness::start().await;
    let id = run(&h, "examples.echochain", json!({"word": "hi"})).await;
    let e = h.wait_done(&id).await;
    assert_eq!(e.status, ExecutionStatus::Succeeded, "{:?}", e.result);
    assert_eq!(
        states(&e),
        vec![
            ("c1".to_string(), "succeeded".to_string()),
            ("c2".to_string(), "succeeded".to_string()),
            ("c3".to_string(), "succeeded".to_string())
        ]
    );
    let r = result(&e);
    assert_eq!(
        r["published"]["first"],
        json!("chain c1 hi"),
        "vars + parameters"
    );
    assert_eq!(
        r["published"]["last"],
        json!("c3 done, c2 said c2 got: chain c1 hi"),
        "published values and results by node name"
    );
    // Each node is a child execution of the chain, in order.
    let kids = h.get(&format!("/api/v1/executions/{id}/children")).await;
    let kids = kids.body.as_array().expect("children").clone();
    assert_eq!(kids.len(), 3, "{kids:#?}");
    let task_ids: Vec<Value> = r["tasks"]
        .as_array()
        .expect("tasks")
        .iter()
        .map(|t| t["execution_id"].clone())
        .collect();
    for k in &kids {
        assert!(task_ids.contains(&k["id"]), "{k}");
        assert_eq!(k["parent"], json!(id));
        assert_eq!(k["context"]["parent"]["execution_id"], json!(id));
    }
    let c2 = kids
        .iter()
        .find(|k| k["context"]["chain"]["name"] == json!("c2"))
        .expect("c2");
    assert_eq!(c2["parameters"]["message"], json!("c2 got: chain c1 hi"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failure_branches_unhandled_failures_and_missing_actions() {
    let h = Harness::start_with(&["chains"], |_| {}).await;
    // A failed node with on-failure: the chain goes on; its status is the last node's.
    let id = run(&h, "chains.recover", json!({"code": 4})).await;
    let e = h.wait_done(&id).await;
    assert_eq!(e.status, ExecutionStatus::Succeeded, "{:?}", e.result);
    assert_eq!(
        states(&e),
        vec![
            ("fail".to_string(), "failed".to_string()),
            ("recover".to_string(), "succeeded".to_string())
        ]
    );
    assert_eq!(result(&e)["published"]["said"], json!("recovered 4 4"));
    // A failed node without on-failure ends the chain failed; on-success is not taken.
    let id = run(&h, "chains.unhandled", json!({})).await;
    let e = h.wait_done(&id).await;
    assert_eq!(e.status, ExecutionStatus::Failed, "{:?}", e.result);
    assert_eq!(states(&e), vec![("fail".to_string(), "failed".to_string())]);
    // A node whose action does not exist fails the chain with an error naming it.
    let id = run(&h, "chains.missing", json!({})).await;
    let e = h.wait_done(&id).await;
    assert_eq!(e.status, ExecutionStatus::Failed, "{:?}", e.result);
    let error = result(&e)["error"].as_str().unwrap_or_default().to_string();
    assert!(
        error.contains("\"ghost\"") && error.contains("chains.does_not_exist"),
        "{error}"
    );
    assert_eq!(
        states(&e),
        vec![("first".to_string(), "succeeded".to_string())]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canceling_a_chain_cancels_its_running_node() {
    let h = Harness::start_with(&["chains"], |_| {}).await;
    let id = run(&h, "chains.slow", json!({})).await;
    // Wait for the first node to run.
    let deadline = Instant::now() + Duration::from_secs(30);
    let child = loop {
        let kids = h.get(&format!("/api/v1/executions/{id}/children")).await;
        if let Some(k) = kids
            .body
            .as_array()
            .and_then(|a| a.iter().find(|k| k["status"] == json!("running")))
        {
            break k["id"].as_str().expect("id").to_string();
        }
        assert!(Instant::now() < deadline, "the node never ran");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let c = h.delete(&format!("/api/v1/executions/{id}")).await;
    assert!(c.status.is_success(), "{c:?}");
    let e = h.wait_done(&id).await;
    assert_eq!(e.status, ExecutionStatus::Canceled, "{:?}", e.result);
    let node = h.wait_done(&child).await;
    assert_eq!(node.status, ExecutionStatus::Canceled);
    assert_eq!(
        states(&e),
        vec![("wait".to_string(), "canceled".to_string())],
        "the next node never started"
    );
}
