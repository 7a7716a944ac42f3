//! Orquesta workflows run by the workflow service through the real API and pipeline, with real
//! core actions (fixture pack `wf`):
//!
//! - sequential tasks with publish and output; the children and their `context.orquesta`;
//! - parallel branches joined (`join: all`);
//! - a failing task fails the workflow with `errors`;
//! - with-items of 200 `core.noop` at concurrency 20;
//! - YAQL expressions; a nested workflow; a bad definition;
//! - cancel of a running workflow (the child is canceled, nothing else starts);
//! - pause (after the running child) and resume;
//! - a restart while a child runs: the workflow continues from its stored state.
//! - an inquiry (`core.ask`) pauses the workflow; the response resumes it;
//! - pause, resume and cancel cascade into nested workflows;
//! - the action's `timeout` ends the workflow `timeout` and cancels running tasks;
//! - re-run from a failed task (`POST /executions/{id}/re_run` with `tasks`).

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use serde_json::{json, Value};

use st2_core::model::{Execution, ExecutionStatus};
use st2_core::store::{Collection, Query};
use st2_tests::api::Harness;

async fn harness() -> Harness {
    Harness::start_with(&["wf"], |_| {}).await
}

async fn run(h: &Harness, action: &str, parameters: Value) -> String {
    let a = h
        .post(
            "/api/v1/executions",
            json!({"action": action, "parameters": parameters}),
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    a.body["id"].as_str().expect("id").to_string()
}

async fn children(h: &Harness, id: &str, depth: i64) -> Vec<Value> {
    let a = h
        .get(&format!("/api/v1/executions/{id}/children?depth={depth}"))
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    a.body.as_array().expect("list").clone()
}

fn task_names(children: &[Value]) -> Vec<String> {
    children
        .iter()
        .map(|c| {
            c["context"]["orquesta"]["task_name"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}

/// Waits up to 60 s (long with-items runs) for `id` to complete.
async fn wait_long(h: &Harness, id: &str) -> Execution {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let a = h.get(&format!("/api/v1/executions/{id}")).await;
        let done = a.body["status"].as_str().is_some_and(|s| {
            ["succeeded", "failed", "canceled", "timeout", "abandoned"].contains(&s)
        });
        if done {
            return h.wait_done(id).await;
        }
        assert!(Instant::now() < deadline, "timed out: {}", a.body);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequential_workflow_publishes_and_outputs() {
    let h = harness().await;
    let id = run(&h, "wf.sequential", json!({"who": "world"})).await;
    let done = h.wait_done(&id).await;
    assert_eq!(done.status, ExecutionStatus::Succeeded, "{:?}", done.result);
    assert_eq!(
        done.result,
        Some(json!({"output": {"first": "hello world", "second": "hello world!", "count": 2}}))
    );
    assert_eq!(done.children.len(), 3, "{:?}", done.children);
    assert!(done.context.get("workflow_execution").is_some());

    let kids = children(&h, &id, -1).await;
    assert_eq!(task_names(&kids), ["t1", "t2", "t3"]);
    for k in &kids {
        assert_eq!(k["parent"], json!(id));
        assert_eq!(k["status"], "succeeded");
        assert_eq!(k["context"]["user"], "st2admin", "user inherited");
        assert_eq!(
            k["context"]["orquesta"]["workflow_execution_id"],
            done.context["workflow_execution"]
        );
        assert_eq!(k["context"]["parent"]["execution_id"], json!(id));
    }
    // Stored incrementally: the header (closed once the parent ended) and one record per task.
    let store = &h.platform.ctx.store;
    let wf_id = done.context["workflow_execution"].as_str().expect("wf id");
    // The run is closed just after its parent ended.
    let deadline = Instant::now() + Duration::from_secs(10);
    let header = loop {
        let header = store
            .get(Collection::WorkflowExecutions, wf_id)
            .await
            .expect("get")
            .expect("header");
        if header["closed"] == true || Instant::now() > deadline {
            break header;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(header["status"], "succeeded");
    assert_eq!(header["closed"], true);
    assert_eq!(header["action_execution"], json!(id));
    assert!(
        header["version"].as_u64().is_some_and(|v| v >= 3),
        "{header}"
    );
    let tasks = store
        .find(
            Collection::TaskExecutions,
            &Query::all().eq("workflow_execution", wf_id),
        )
        .await
        .expect("tasks");
    let mut task_ids: Vec<&str> = tasks.iter().filter_map(|t| t["task_id"].as_str()).collect();
    task_ids.sort_unstable();
    assert_eq!(task_ids, ["t1", "t2", "t3"]);
    assert!(tasks.iter().all(|t| t["status"] == "succeeded"));
    assert_eq!(kids[0]["action"]["ref"], "core.echo");
    assert_eq!(kids[0]["parameters"]["message"], "hello world");
    assert_eq!(kids[1]["parameters"]["message"], "hello world!");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_branches_join() {
    let h = harness().await;
    let id = run(&h, "wf.join_all", json!({})).await;
    let done = h.wait_done(&id).await;
    assert_eq!(done.status, ExecutionStatus::Succeeded, "{:?}", done.result);
    assert_eq!(done.result, Some(json!({"output": {"sum": 6}})));
    let kids = children(&h, &id, 1).await;
    assert_eq!(
        kids.last().expect("joined")["parameters"]["message"],
        "sum 6"
    );
    let mut names = task_names(&kids);
    assert_eq!(names.remove(0), "init");
    assert_eq!(
        names.pop().as_deref(),
        Some("joined"),
        "the join runs once, last"
    );
    names.sort();
    assert_eq!(names, ["b1", "b2", "b3"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_task_fails_the_workflow_with_errors() {
    let h = harness().await;
    let id = run(&h, "wf.failing", json!({})).await;
    let done = h.wait_done(&id).await;
    assert_eq!(done.status, ExecutionStatus::Failed, "{:?}", done.result);
    let result = done.result.expect("result");
    let errors = result["errors"].as_array().expect("errors");
    let boom = errors
        .iter()
        .find(|e| e["task_id"] == "boom")
        .unwrap_or_else(|| panic!("no error of boom: {result}"));
    assert_eq!(boom["type"], "error");
    assert_eq!(boom["result"]["return_code"], 3);
    assert!(result.get("output").is_some(), "{result}");
    assert_eq!(task_names(&children(&h, &id, 1).await), ["ok", "boom"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_items_of_200_noops_at_concurrency_20() {
    let h = harness().await;
    let id = run(&h, "wf.items", json!({"count": 200, "concurrency": 20})).await;
    let done = wait_long(&h, &id).await;
    assert_eq!(done.status, ExecutionStatus::Succeeded, "{:?}", done.result);
    assert_eq!(done.result, Some(json!({"output": {"n": 200}})));
    let kids = children(&h, &id, 1).await;
    assert_eq!(kids.len(), 201);
    let mut items: Vec<u64> = kids
        .iter()
        .filter(|k| k["context"]["orquesta"]["task_name"] == "each")
        .map(|k| {
            k["context"]["orquesta"]["item_id"]
                .as_u64()
                .expect("item_id")
        })
        .collect();
    items.sort_unstable();
    assert_eq!(items, (0..200).collect::<Vec<u64>>(), "each item ran once");
    assert_eq!(done.children.len(), 201);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn yaql_expressions() {
    let h = harness().await;
    let id = run(&h, "wf.yaql", json!({"x": 7, "names": ["a", "b", "c"]})).await;
    let done = h.wait_done(&id).await;
    assert_eq!(done.status, ExecutionStatus::Succeeded, "{:?}", done.result);
    assert_eq!(
        done.result,
        Some(json!({"output": {"x": 7, "doubled": 14, "said": "a,b,c", "count": 3, "big": true}}))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nested_workflow() {
    let h = harness().await;
    let id = run(&h, "wf.nested", json!({"who": "there"})).await;
    let done = h.wait_done(&id).await;
    assert_eq!(done.status, ExecutionStatus::Succeeded, "{:?}", done.result);
    assert_eq!(
        done.result,
        Some(json!({"output": {"inner_first": "hi there"}}))
    );
    let direct = children(&h, &id, 1).await;
    assert_eq!(task_names(&direct), ["inner", "after"]);
    assert_eq!(direct[0]["action"]["ref"], "wf.sequential");
    let all = children(&h, &id, -1).await;
    assert_eq!(all.len(), 5, "the inner workflow's tasks are descendants");
    let inner_id = direct[0]["id"].as_str().expect("id");
    assert_eq!(
        task_names(&children(&h, inner_id, 1).await),
        ["t1", "t2", "t3"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_definition_fails_with_errors() {
    let h = harness().await;
    let id = run(&h, "wf.bad_spec", json!({})).await;
    let done = h.wait_done(&id).await;
    assert_eq!(done.status, ExecutionStatus::Failed);
    let result = done.result.expect("result");
    let errors = result["errors"].as_array().expect("errors");
    assert!(!errors.is_empty());
    assert!(
        errors[0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("nowhere")),
        "{result}"
    );
    assert!(done.children.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_cascades_to_the_running_child() {
    let h = harness().await;
    let id = run(&h, "wf.sleepy", json!({})).await;
    let nap = h
        .wait_for("core.local", |e| {
            e.parent.as_deref() == Some(id.as_str()) && e.status == ExecutionStatus::Running
        })
        .await;
    let a = h.delete(&format!("/api/v1/executions/{id}")).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let done = h.wait_done(&id).await;
    assert_eq!(done.status, ExecutionStatus::Canceled, "{:?}", done.result);
    let nap = h.wait_done(&nap.id).await;
    assert_eq!(nap.status, ExecutionStatus::Canceled);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        task_names(&children(&h, &id, 1).await),
        ["nap"],
        "nothing starts after a cancel"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_waits_for_the_running_child_then_resume_continues() {
    let h = harness().await;
    let id = run(&h, "wf.pausable", json!({})).await;
    h.wait_for("core.local", |e| {
        e.parent.as_deref() == Some(id.as_str()) && e.status == ExecutionStatus::Running
    })
    .await;
    let a = h
        .put(
            &format!("/api/v1/executions/{id}"),
            json!({"status": "pausing"}),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let paused = h
        .wait_execution(&id, |e| e.status == ExecutionStatus::Paused)
        .await;
    assert_eq!(paused.children.len(), 1, "second is held while paused");
    let first = h.wait_done(&paused.children[0]).await;
    assert_eq!(first.status, ExecutionStatus::Succeeded);

    let a = h
        .put(
            &format!("/api/v1/executions/{id}"),
            json!({"status": "resuming"}),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let done = h.wait_done(&id).await;
    assert_eq!(done.status, ExecutionStatus::Succeeded, "{:?}", done.result);
    assert_eq!(done.result, Some(json!({"output": {"out": "resumed"}})));
    let statuses: Vec<&str> = done
        .log
        .iter()
        .filter_map(|l| l["status"].as_str())
        .collect();
    for s in ["pausing", "paused", "resuming", "running", "succeeded"] {
        assert!(statuses.contains(&s), "{statuses:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workflow_continues_after_a_restart() {
    use st2_core::config::Config;
    use st2_core::platform::Platform;
    use st2_core::store::repo;

    let h = harness().await;
    let id = run(&h, "wf.restartable", json!({})).await;
    h.wait_for("core.local", |e| {
        e.parent.as_deref() == Some(id.as_str()) && e.status == ExecutionStatus::Running
    })
    .await;
    // Stop the process while `first` sleeps: the worker lets it finish, but the workflow engine
    // no longer takes events, so its completion is not applied before the restart.
    let st2_tests::api::Harness { platform, dir, .. } = h;
    let old_store = platform.ctx.store.clone();
    platform.shutdown().await;
    let before = repo::<Execution>(&*old_store)
        .find(&Query::all().eq("parent", id.as_str()))
        .await
        .expect("children");
    assert_eq!(before.len(), 1, "second not started before the restart");
    assert_eq!(
        before[0].status,
        ExecutionStatus::Succeeded,
        "first finished meanwhile"
    );
    let parent = repo::<Execution>(&*old_store).get(&id).await.expect("get");
    assert_eq!(parent.map(|p| p.status), Some(ExecutionStatus::Running));
    drop(old_store);
    let store = dir.path().to_path_buf();
    let mut cfg = Config::default();
    cfg.system.data_dir = store;
    cfg.content.system_packs_base_path = Some(st2_tests::bundled_packs());
    let p2 = Platform::start(&cfg, &["all".to_string()])
        .await
        .expect("restart");
    let execs = repo::<Execution>(&*p2.ctx.store);
    let deadline = Instant::now() + Duration::from_secs(30);
    let done = loop {
        let e = execs.get(&id).await.expect("get").expect("exists");
        if e.status.is_completed() {
            break e;
        }
        assert!(Instant::now() < deadline, "not finished: {:?}", e.status);
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(done.status, ExecutionStatus::Succeeded, "{:?}", done.result);
    assert_eq!(
        done.result,
        Some(json!({"output": {"out": "slept and continued"}}))
    );
    let kids = execs
        .find(&Query::all().eq("parent", id.as_str()))
        .await
        .expect("children");
    let mut names: Vec<String> = kids
        .iter()
        .map(|k| {
            k.context["orquesta"]["task_name"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    names.sort();
    assert_eq!(names, ["first", "second"], "no task ran twice");
    p2.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_delay_and_retry_run_on_timers() {
    let h = harness().await;
    let marker = h.dir.path().join("flaky-marker");
    let started = Instant::now();
    let id = run(
        &h,
        "wf.retry_delay",
        json!({"marker": marker.to_string_lossy()}),
    )
    .await;
    let done = h.wait_done(&id).await;
    assert_eq!(done.status, ExecutionStatus::Succeeded, "{:?}", done.result);
    assert_eq!(done.result, Some(json!({"output": {"out": "second try"}})));
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "one second of delay, one of retry delay"
    );
    let kids = children(&h, &id, 1).await;
    let tries: Vec<(&str, u64)> = kids
        .iter()
        .map(|k| {
            (
                k["status"].as_str().unwrap_or_default(),
                k["context"]["orquesta"]["retry"].as_u64().unwrap_or(99),
            )
        })
        .collect();
    assert_eq!(tries, [("failed", 0), ("succeeded", 1)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bundled_example_workflow() {
    let h = harness().await;
    let id = run(
        &h,
        "examples.orquesta-sequential",
        json!({"name": "Stanley"}),
    )
    .await;
    let done = h.wait_done(&id).await;
    assert_eq!(done.status, ExecutionStatus::Succeeded, "{:?}", done.result);
    let output = &done.result.as_ref().expect("result")["output"];
    assert_eq!(
        output["greetings"],
        json!(["Hello, Ada!", "Hello, Grace!", "Hello, Linus!"])
    );
    assert_eq!(output["stats"]["people"], 3);
    assert_eq!(output["stats"]["shouted"], "STANLEY");
    let names = task_names(&children(&h, &id, 1).await);
    assert_eq!(names.len(), 8, "{names:?}");
    assert_eq!(names.last().map(String::as_str), Some("report"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inquiry_pauses_the_workflow_and_the_response_resumes_it() {
    let h = harness().await;
    let id = run(&h, "wf.ask", json!({})).await;
    let ask = h
        .wait_for("core.ask", |e| {
            e.parent.as_deref() == Some(id.as_str()) && e.status == ExecutionStatus::Pending
        })
        .await;
    let paused = h
        .wait_execution(&id, |e| e.status == ExecutionStatus::Paused)
        .await;
    assert_eq!(
        paused.children.len(),
        1,
        "nothing runs while the inquiry waits"
    );
    let a = h.get("/api/v1/inquiries").await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert!(
        a.body
            .as_array()
            .is_some_and(|l| l.iter().any(|i| i["id"] == json!(ask.id))),
        "{}",
        a.body
    );
    let a = h
        .put(
            &format!("/api/v1/inquiries/{}", ask.id),
            json!({"id": ask.id, "response": {"approved": true}}),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let done = h.wait_done(&id).await;
    assert_eq!(done.status, ExecutionStatus::Succeeded, "{:?}", done.result);
    assert_eq!(
        done.result,
        Some(json!({"output": {"approved": true, "said": "approved True"}})),
        "a boolean renders as Python renders it"
    );
    let statuses: Vec<&str> = done
        .log
        .iter()
        .filter_map(|l| l["status"].as_str())
        .collect();
    for s in ["paused", "running", "succeeded"] {
        assert!(statuses.contains(&s), "{statuses:?}");
    }
    assert_eq!(
        task_names(&children(&h, &id, 1).await),
        ["approve", "after"]
    );
}

/// The nested workflow execution (task `inner`) of `wf.nested_sleepy` run `id`, once its
/// first task sleeps.
async fn nested_running(h: &Harness, id: &str) -> Execution {
    let inner = h
        .wait_for("wf.pausable", |e| e.parent.as_deref() == Some(id))
        .await;
    h.wait_for("core.local", |e| {
        e.parent.as_deref() == Some(inner.id.as_str()) && e.status == ExecutionStatus::Running
    })
    .await;
    inner
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_and_resume_cascade_into_nested_workflows() {
    let h = harness().await;
    let id = run(&h, "wf.nested_sleepy", json!({})).await;
    let inner = nested_running(&h, &id).await;
    let a = h
        .put(
            &format!("/api/v1/executions/{id}"),
            json!({"status": "pausing"}),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let inner_paused = h
        .wait_execution(&inner.id, |e| e.status == ExecutionStatus::Paused)
        .await;
    assert_eq!(
        inner_paused.children.len(),
        1,
        "the nested workflow holds its second task"
    );
    h.wait_execution(&id, |e| e.status == ExecutionStatus::Paused)
        .await;

    let a = h
        .put(
            &format!("/api/v1/executions/{id}"),
            json!({"status": "resuming"}),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let done = h.wait_done(&id).await;
    assert_eq!(done.status, ExecutionStatus::Succeeded, "{:?}", done.result);
    assert_eq!(
        done.result,
        Some(json!({"output": {"inner_out": "resumed"}}))
    );
    let inner = h.wait_done(&inner.id).await;
    let statuses: Vec<&str> = inner
        .log
        .iter()
        .filter_map(|l| l["status"].as_str())
        .collect();
    for s in ["pausing", "paused", "resuming", "running", "succeeded"] {
        assert!(statuses.contains(&s), "nested: {statuses:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_cascades_into_nested_workflows() {
    let h = harness().await;
    let id = run(&h, "wf.nested_sleepy", json!({})).await;
    let inner = nested_running(&h, &id).await;
    let a = h.delete(&format!("/api/v1/executions/{id}")).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let done = h.wait_done(&id).await;
    assert_eq!(done.status, ExecutionStatus::Canceled, "{:?}", done.result);
    let inner = h.wait_done(&inner.id).await;
    assert_eq!(inner.status, ExecutionStatus::Canceled);
    for grandchild in children(&h, &inner.id, 1).await {
        assert_eq!(grandchild["status"], "canceled", "{grandchild}");
    }
    assert_eq!(task_names(&children(&h, &id, 1).await), ["inner"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workflow_timeout_ends_it_and_cancels_running_tasks() {
    let h = harness().await;
    let id = run(&h, "wf.timeout", json!({"timeout": 1})).await;
    let done = h.wait_done(&id).await;
    assert_eq!(done.status, ExecutionStatus::Timeout, "{:?}", done.result);
    let kids = children(&h, &id, 1).await;
    assert_eq!(
        task_names(&kids),
        ["nap"],
        "nothing starts after the timeout"
    );
    let nap = h.wait_done(kids[0]["id"].as_str().expect("id")).await;
    assert_eq!(nap.status, ExecutionStatus::Canceled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn re_run_from_the_failed_task_keeps_the_original_context() {
    let h = harness().await;
    let marker = h.dir.path().join("rerun-marker");
    let id = run(
        &h,
        "wf.rerunnable",
        json!({"marker": marker.to_string_lossy()}),
    )
    .await;
    let first = h.wait_done(&id).await;
    assert_eq!(first.status, ExecutionStatus::Failed, "{:?}", first.result);
    assert_eq!(task_names(&children(&h, &id, 1).await), ["greet", "flaky"]);

    let a = h
        .post(
            &format!("/api/v1/executions/{id}/re_run"),
            json!({"tasks": ["flaky"]}),
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    let rerun = a.body["id"].as_str().expect("id").to_string();
    let done = h.wait_done(&rerun).await;
    assert_eq!(done.status, ExecutionStatus::Succeeded, "{:?}", done.result);
    assert_eq!(
        done.result,
        Some(json!({"output": {"said": "hello fixed"}})),
        "greet's publish comes from the original run"
    );
    assert_eq!(
        task_names(&children(&h, &rerun, 1).await),
        ["flaky", "after"],
        "greet does not run again"
    );

    // A task that never ran cannot be re-run from.
    let a = h
        .post(
            &format!("/api/v1/executions/{id}/re_run"),
            json!({"tasks": ["nowhere"]}),
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    let bad = h.wait_done(a.body["id"].as_str().expect("id")).await;
    assert_eq!(bad.status, ExecutionStatus::Failed);
    let message = bad.result.expect("result")["errors"][0]["message"].clone();
    assert!(
        message.as_str().is_some_and(|m| m.contains("nowhere")),
        "{message}"
    );
}
