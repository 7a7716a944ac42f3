//! Failure handling with several "nodes" sharing one store and bus in this process (see
//! `docs/distributed.md`, "Failure handling"):
//! - concurrency policies hold across two schedulers (slots claimed in the store);
//! - the watchdog abandons the executions of a runner whose heartbeat lease is gone, an
//!   `action.retry` policy with `retry_on: abandoned` re-runs them, and a workflow whose task
//!   was abandoned fails.
//!
//! A runner's death is played by pointing an execution's `lease_owner` at a node that holds no
//! live heartbeat lease; `st2-api/tests/failover.rs` kills real `st2d` processes.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use st2_core::config::{Config, GarbageCollectorConfig};
use st2_core::model::{Execution, ExecutionStatus, JsonMap, TriggerInstance};
use st2_core::platform::Platform;
use st2_core::services::executions::{self, ExecutionRequest};
use st2_core::services::lease::Lease;
use st2_core::services::{concurrency, watchdog, Ctx};
use st2_core::store::{repo, Collection, Query};
use st2_tests::bundled_packs;
use tokio_util::sync::CancellationToken;

/// A platform over a temp data dir holding the pack `ft` (with `files`: path → content).
async fn platform(
    roles: &[&str],
    files: &[(&str, &str)],
    tune: impl FnOnce(&mut Config),
) -> (Platform, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tmp");
    let pack = dir.path().join("packs").join("ft");
    std::fs::create_dir_all(&pack).expect("mkdir");
    std::fs::write(
        pack.join("pack.yaml"),
        "ref: ft\nname: ft\ndescription: failover tests\nauthor: t\nversion: 0.1.0\n",
    )
    .expect("write");
    for (path, content) in files {
        let p = pack.join(path);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, content).expect("write");
    }
    let mut cfg = Config::default();
    cfg.system.data_dir = dir.path().to_path_buf();
    cfg.content.system_packs_base_path = Some(bundled_packs());
    tune(&mut cfg);
    let roles: Vec<String> = roles.iter().map(|s| s.to_string()).collect();
    let p = Platform::start(&cfg, &roles).await.expect("platform");
    (p, dir)
}

/// Another "process" over the same store and bus: its own node id and shutdown.
async fn node(base: &Platform, name: &str, roles: &[&str]) -> (Platform, CancellationToken) {
    let mut ctx = base.ctx.clone();
    ctx.node_id = name.into();
    ctx.shutdown = CancellationToken::new();
    let stop = ctx.shutdown.clone();
    let roles: Vec<String> = roles.iter().map(|s| s.to_string()).collect();
    let p = Platform::start_roles(ctx, &roles, &GarbageCollectorConfig::default())
        .await
        .expect("node");
    (p, stop)
}

async fn request(ctx: &Ctx, action: &str, params: Value) -> Execution {
    executions::request(
        ctx,
        ExecutionRequest {
            action_ref: action.into(),
            parameters: params.as_object().cloned().expect("object"),
            ..Default::default()
        },
    )
    .await
    .expect("request")
}

async fn get(ctx: &Ctx, id: &str) -> Execution {
    repo::<Execution>(&*ctx.store)
        .get(id)
        .await
        .expect("get")
        .expect("exists")
}

/// Polls the execution until `ok` holds; panics after `within`.
async fn wait_exec(
    ctx: &Ctx,
    id: &str,
    within: Duration,
    ok: impl Fn(&Execution) -> bool,
) -> Execution {
    let t0 = Instant::now();
    loop {
        let e = get(ctx, id).await;
        if ok(&e) {
            return e;
        }
        assert!(
            t0.elapsed() < within,
            "execution {id} still {} after {within:?}: {:?}",
            e.status,
            e.result
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Samples, until stopped, the largest number of `core.local` executions that were scheduled
/// or running at once, per `cmd` (and in total under the key "").
fn sample_active(
    ctx: &Ctx,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<std::collections::HashMap<String, u64>> {
    let store = ctx.store.clone();
    tokio::spawn(async move {
        let mut max = std::collections::HashMap::<String, u64>::new();
        let active: Vec<Value> = ["scheduled", "running", "canceling", "pausing"]
            .iter()
            .map(|s| json!(s))
            .collect();
        while !stop.load(Ordering::SeqCst) {
            let q = Query::all()
                .eq("action.ref", "core.local")
                .is_in("status", active.clone());
            let now = repo::<Execution>(&*store).find(&q).await.expect("find");
            let mut counts = std::collections::HashMap::<String, u64>::new();
            for e in &now {
                let cmd = e.parameters["cmd"].as_str().unwrap_or_default().to_string();
                *counts.entry(cmd).or_default() += 1;
                *counts.entry(String::new()).or_default() += 1;
            }
            for (k, n) in counts {
                let m = max.entry(k).or_default();
                *m = (*m).max(n);
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        max
    })
}

/// Runs `cmds` as `core.local` executions through two schedulers (nodes "sched-a", "sched-b")
/// and returns the peak numbers of active executions (see [`sample_active`]).
async fn run_through_two_schedulers(
    policy: &str,
    cmds: &[&str],
) -> std::collections::HashMap<String, u64> {
    let (base, _dir) = platform(
        &["actionrunner", "notifier"],
        &[("policies/limit.yaml", policy)],
        |_| {},
    )
    .await;
    let (a, stop_a) = node(&base, "sched-a", &["scheduler"]).await;
    let (b, stop_b) = node(&base, "sched-b", &["scheduler"]).await;
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = sample_active(&base.ctx, stop.clone());
    let mut ids = Vec::new();
    for cmd in cmds {
        ids.push(
            request(&base.ctx, "core.local", json!({"cmd": cmd}))
                .await
                .id,
        );
    }
    for id in &ids {
        let e = wait_exec(&base.ctx, id, Duration::from_secs(90), |e| {
            e.status.is_completed()
        })
        .await;
        assert_eq!(e.status, ExecutionStatus::Succeeded, "{:?}", e.result);
    }
    stop.store(true, Ordering::SeqCst);
    let max = sampler.await.expect("sampler");
    // Every slot is free again.
    let slots = base
        .ctx
        .store
        .find(Collection::ConcurrencySlots, &Query::all())
        .await
        .expect("slots");
    assert!(!slots.is_empty(), "slots were claimed in the store");
    assert!(
        slots.iter().all(|s| s["execution"].is_null()),
        "all slots released: {slots:?}"
    );
    stop_a.cancel();
    stop_b.cancel();
    a.shutdown().await;
    b.shutdown().await;
    base.shutdown().await;
    max
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_holds_across_two_schedulers() {
    let policy = "name: two_at_a_time\nresource_ref: core.local\npolicy_type: action.concurrency\nparameters:\n  threshold: 2\n  action: delay\n";
    let cmds = vec!["sleep 0.2"; 20];
    let max = run_through_two_schedulers(policy, &cmds).await;
    assert_eq!(
        max.get("").copied(),
        Some(2),
        "never more than 2 at once, and 2 reached: {max:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_attr_holds_per_group_across_two_schedulers() {
    let policy = "name: one_per_cmd\nresource_ref: core.local\npolicy_type: action.concurrency.attr\nparameters:\n  threshold: 1\n  action: delay\n  attributes: [cmd]\n";
    let mut cmds = vec!["sleep 0.2"; 8];
    cmds.extend(vec!["sleep 0.25"; 8]);
    let max = run_through_two_schedulers(policy, &cmds).await;
    assert_eq!(max.get("sleep 0.2").copied(), Some(1), "{max:?}");
    assert_eq!(max.get("sleep 0.25").copied(), Some(1), "{max:?}");
    assert_eq!(
        max.get("").copied(),
        Some(2),
        "the groups run side by side: {max:?}"
    );
}

/// Points a running execution at another runner, as if that runner had claimed it.
async fn hand_to(ctx: &Ctx, id: &str, owner: &str) {
    let mut patch = JsonMap::new();
    patch.insert("lease_owner".into(), json!(owner));
    ctx.store
        .compare_and_set(
            Collection::Executions,
            id,
            "status",
            &[json!("running")],
            patch,
        )
        .await
        .expect("cas")
        .expect("still running");
}

const RETRY_ON_ABANDONED: &str = "name: rerun\nresource_ref: core.local\npolicy_type: action.retry\nparameters:\n  retry_on: abandoned\n  max_retry_count: 1\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_runner_execution_is_abandoned_then_retried() {
    let interval = Duration::from_millis(200);
    let (p, _dir) = platform(
        &["scheduler", "actionrunner", "notifier"],
        &[("policies/rerun.yaml", RETRY_ON_ABANDONED)],
        |c| c.coordination.watchdog_interval = interval,
    )
    .await;
    let ctx = p.ctx.clone();
    // This process heartbeats: its own executions are left alone.
    let alive = watchdog::runner_alive(&ctx, &ctx.node_id)
        .await
        .expect("lease");
    assert!(alive, "the action runner holds its heartbeat lease");
    let e = request(&ctx, "core.local", json!({"cmd": "sleep 30"})).await;
    wait_exec(&ctx, &e.id, Duration::from_secs(20), |e| {
        e.status == ExecutionStatus::Running && e.context.contains_key("runner_process")
    })
    .await;

    // Owned by "ghost", whose lease lives for 1 s: kept while it lives.
    let ttl = Duration::from_secs(1);
    let ghost = Lease::new(
        ctx.store.clone(),
        watchdog::lease_name("ghost"),
        "ghost",
        ttl,
    );
    assert!(ghost.try_acquire().await.expect("lease").is_some());
    let beat = Instant::now();
    hand_to(&ctx, &e.id, "ghost").await;
    tokio::time::sleep(interval * 3).await;
    assert!(beat.elapsed() < ttl, "checked while the lease lived");
    assert_eq!(get(&ctx, &e.id).await.status, ExecutionStatus::Running);

    // Its lease expires: abandoned within a watchdog period (plus margin).
    let bound = ttl + interval + Duration::from_secs(2);
    let done = wait_exec(&ctx, &e.id, bound, |e| e.status.is_completed()).await;
    assert_eq!(done.status, ExecutionStatus::Abandoned, "{:?}", done.result);
    let result = done.result.clone().expect("result");
    assert_eq!(result["reason"], "runner_lost", "{result}");
    assert_eq!(result["runner"], "ghost", "{result}");

    // The retry policy re-runs it as a new execution.
    let t0 = Instant::now();
    let retried = loop {
        let all = repo::<Execution>(&*ctx.store)
            .find(&Query::all().eq("action.ref", "core.local"))
            .await
            .expect("find");
        if let Some(r) = all.into_iter().find(|x| {
            x.context
                .get("policies")
                .and_then(|p| p.pointer("/retry/retried_liveaction_id"))
                == Some(&json!(e.id))
        }) {
            break r;
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "no retry requested");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(retried.context["policies"]["retry"]["retry_count"], 1);
    assert_eq!(retried.parameters["cmd"], "sleep 30");
    let r = wait_exec(&ctx, &retried.id, Duration::from_secs(20), |e| {
        e.status == ExecutionStatus::Running
    })
    .await;
    executions::cancel(&ctx, &r.id).await.expect("cancel");
    wait_exec(&ctx, &r.id, Duration::from_secs(20), |e| {
        e.status.is_completed()
    })
    .await;
    p.shutdown().await;
}

const NAP_WORKFLOW: &str = "version: 1.0\ntasks:\n  nap:\n    action: core.local\n    input:\n      cmd: sleep 30\n    next:\n      - when: <% succeeded() %>\n        do: after\n  after:\n    action: core.noop\n";
const NAP_ACTION: &str = "name: nap\nrunner_type: orquesta\nenabled: true\nentry_point: workflows/nap.yaml\nparameters: {}\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workflow_fails_when_its_task_is_abandoned() {
    let interval = Duration::from_millis(200);
    let (p, _dir) = platform(
        &["scheduler", "actionrunner", "notifier", "workflowengine"],
        &[
            ("actions/nap.yaml", NAP_ACTION),
            ("actions/workflows/nap.yaml", NAP_WORKFLOW),
        ],
        |c| c.coordination.watchdog_interval = interval,
    )
    .await;
    let ctx = p.ctx.clone();
    let wf = request(&ctx, "ft.nap", json!({})).await;
    let t0 = Instant::now();
    let child = loop {
        let kids = repo::<Execution>(&*ctx.store)
            .find(&Query::all().eq("parent", wf.id.as_str()))
            .await
            .expect("find");
        if let Some(k) = kids.into_iter().find(|k| {
            k.status == ExecutionStatus::Running && k.context.contains_key("runner_process")
        }) {
            break k;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "the task did not start"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    // The task's runner "dies" (no heartbeat lease at all); the workflow itself is stored and
    // owned by this live process, so only the task is abandoned.
    hand_to(&ctx, &child.id, "ghost-of-a-runner").await;
    let done = wait_exec(&ctx, &child.id, Duration::from_secs(5), |e| {
        e.status.is_completed()
    })
    .await;
    assert_eq!(done.status, ExecutionStatus::Abandoned);
    let parent = wait_exec(&ctx, &wf.id, Duration::from_secs(10), |e| {
        e.status.is_completed()
    })
    .await;
    assert_eq!(
        parent.status,
        ExecutionStatus::Failed,
        "{:?}",
        parent.result
    );
    let kids = repo::<Execution>(&*ctx.store)
        .find(&Query::all().eq("parent", wf.id.as_str()))
        .await
        .expect("find");
    assert_eq!(kids.len(), 1, "`after` never ran: {kids:?}");
    p.shutdown().await;
}

/// Slots in the store directly: two claimers of a threshold-2 group, a third refused, a slot
/// of a completed holder taken over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slots_are_claimed_once_and_taken_over_from_finished_holders() {
    let (p, _dir) = platform(&[], &[], |_| {}).await;
    let ctx = p.ctx.clone();
    let mk = || request(&ctx, "core.noop", json!({}));
    let (a, b, c) = (mk().await, mk().await, mk().await);
    for e in [&a, &b] {
        let slot = concurrency::claim(&ctx, "g", 2, &e.id)
            .await
            .expect("claim");
        assert!(slot.is_some(), "a free slot");
    }
    assert_eq!(
        concurrency::claim(&ctx, "g", 2, &a.id)
            .await
            .expect("again"),
        concurrency::claim(&ctx, "g", 2, &a.id)
            .await
            .expect("again"),
        "claiming twice returns the same slot"
    );
    assert_eq!(
        concurrency::claim(&ctx, "g", 2, &c.id)
            .await
            .expect("claim"),
        None
    );
    assert_eq!(concurrency::held(&*ctx.store, "g").await.expect("held"), 2);
    // `a` completes: its slot is taken over even though nobody released it.
    executions::cancel(&ctx, &a.id).await.expect("cancel");
    assert!(concurrency::claim(&ctx, "g", 2, &c.id)
        .await
        .expect("claim")
        .is_some());
    // Released by `b`: free for a new holder.
    assert_eq!(concurrency::release(&ctx, &b.id).await.expect("release"), 1);
    assert_eq!(concurrency::held(&*ctx.store, "g").await.expect("held"), 1);
    p.shutdown().await;
}

const RETRY_ON_FAILURE: &str = "name: again\nresource_ref: core.local\npolicy_type: action.retry\nparameters:\n  retry_on: failure\n  max_retry_count: 1\n";

/// Executions whose `context.policies.retry.retried_liveaction_id` is `id`.
async fn retries_of(ctx: &Ctx, id: &str) -> Vec<Execution> {
    repo::<Execution>(&*ctx.store)
        .find(&Query::all().eq("action.ref", "core.local"))
        .await
        .expect("find")
        .into_iter()
        .filter(|x| {
            x.context
                .get("policies")
                .and_then(|p| p.pointer("/retry/retried_liveaction_id"))
                == Some(&json!(id))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_completion_handled_again_emits_nothing_new() {
    let (p, _dir) = platform(
        &["scheduler", "actionrunner", "notifier"],
        &[("policies/again.yaml", RETRY_ON_FAILURE)],
        |_| {},
    )
    .await;
    let ctx = p.ctx.clone();
    let e = request(&ctx, "core.local", json!({"cmd": "false"})).await;
    let done = wait_exec(&ctx, &e.id, Duration::from_secs(20), |e| e.notified).await;
    assert_eq!(done.status, ExecutionStatus::Failed);
    let instances = || async {
        repo::<st2_core::model::TriggerInstance>(&*ctx.store)
            .find(&Query::all().eq("payload.execution_id", e.id.as_str()))
            .await
            .expect("find")
            .len()
    };
    assert_eq!(instances().await, 1, "one action trigger instance");
    assert_eq!(retries_of(&ctx, &e.id).await.len(), 1, "one retry");

    // A crash after the triggers and the retry but before the execution was marked notified,
    // then the completion delivered again (twice): nothing is emitted a second time.
    let mut unmark = JsonMap::new();
    unmark.insert("notified".into(), json!(false));
    ctx.store
        .compare_and_set(
            Collection::Executions,
            &e.id,
            "notified",
            &[json!(true)],
            unmark,
        )
        .await
        .expect("cas")
        .expect("was notified");
    let again = get(&ctx, &e.id).await;
    assert!(!again.notified);
    let notifier = st2_core::services::notifier::Notifier::new(ctx.clone());
    notifier.completed(&again).await.expect("first redelivery");
    notifier.completed(&again).await.expect("second redelivery");
    assert_eq!(instances().await, 1, "still one action trigger instance");
    assert_eq!(retries_of(&ctx, &e.id).await.len(), 1, "still one retry");
    assert!(get(&ctx, &e.id).await.notified, "marked once emitted");
    p.shutdown().await;
}

/// What a process stored but died before publishing is published again by the watchdog once
/// `republish_after` has passed: a `pending` trigger instance reaches its rule, a `requested`
/// execution runs. (Nothing here starts with the `all` role, so no start-up re-claim helps.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_but_unpublished_work_is_published_again() {
    let rule = "name: on_kv\nenabled: true\ntrigger:\n  type: core.st2.key_value_pair.create\n\
                action:\n  ref: core.noop\n";
    let (p, _dir) = platform(
        &["rulesengine", "scheduler", "actionrunner", "notifier"],
        &[("rules/on_kv.yaml", rule)],
        |c| {
            c.coordination.watchdog_interval = Duration::from_millis(100);
            c.coordination.republish_after = Duration::from_millis(500);
        },
    )
    .await;
    let ctx = &p.ctx;
    let long_ago = (chrono::Utc::now() - chrono::TimeDelta::seconds(60)).to_rfc3339();
    // As a process leaves it when it dies between its store write and its publish.
    let ti = TriggerInstance {
        id: "unpublished-ti".into(),
        trigger: "core.st2.key_value_pair.create".into(),
        payload: json!({"object": {"name": "k", "value": "v"}}),
        occurrence_time: long_ago.clone(),
        status: "pending".into(),
        preprocessing: None,
    };
    repo::<TriggerInstance>(&*ctx.store)
        .save(ti)
        .await
        .expect("store ti");
    let done = request(ctx, "core.noop", json!({})).await;
    let done = wait_exec(ctx, &done.id, Duration::from_secs(10), |e| {
        e.status == ExecutionStatus::Succeeded
    })
    .await;
    let mut stuck = done.clone();
    stuck.id = "unpublished-exec".into();
    stuck.liveaction.id = stuck.id.clone();
    stuck.status = ExecutionStatus::Requested;
    stuck.start_timestamp = long_ago;
    stuck.end_timestamp = None;
    stuck.elapsed_seconds = None;
    stuck.result = None;
    stuck.log = vec![];
    stuck.notified = false;
    stuck.lease_owner = None;
    repo::<Execution>(&*ctx.store)
        .save(stuck)
        .await
        .expect("store execution");

    wait_exec(ctx, "unpublished-exec", Duration::from_secs(10), |e| {
        e.status == ExecutionStatus::Succeeded
    })
    .await;
    let t0 = Instant::now();
    loop {
        let ti = repo::<TriggerInstance>(&*ctx.store)
            .get("unpublished-ti")
            .await
            .expect("get ti")
            .expect("ti");
        let fired: Vec<Execution> = repo::<Execution>(&*ctx.store)
            .find(&Query::all())
            .await
            .expect("executions")
            .into_iter()
            .filter(|e| {
                e.trigger_instance.as_ref().and_then(|t| t.get("id"))
                    == Some(&json!("unpublished-ti"))
            })
            .collect();
        if ti.status == "processed" && fired.len() == 1 {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "trigger instance {} with {} executions",
            ti.status,
            fired.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    p.shutdown().await;
}

/// A rate limit holds across two schedulers: of 12 executions requested at once, exactly the
/// limit is scheduled within the interval (rate slots taken in the store), the others are
/// canceled as the policy says; a second pass after the interval schedules again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_holds_across_two_schedulers() {
    let policy =
        "name: three_per_window\nresource_ref: core.local\npolicy_type: action.ratelimit\n\
                  parameters:\n  limit: 3\n  interval: 4\n  action: cancel\n";
    let (base, _dir) = platform(
        &["actionrunner", "notifier"],
        &[("policies/rate.yaml", policy)],
        |_| {},
    )
    .await;
    let (a, stop_a) = node(&base, "sched-a", &["scheduler"]).await;
    let (b, stop_b) = node(&base, "sched-b", &["scheduler"]).await;
    let burst = |n: usize| {
        let ctx = base.ctx.clone();
        async move {
            // Requested all at once, so that the two schedulers decide side by side.
            let mut requests = Vec::new();
            for _ in 0..n {
                let ctx = ctx.clone();
                requests.push(tokio::spawn(async move {
                    request(&ctx, "core.local", json!({"cmd": "true"})).await.id
                }));
            }
            let mut ids = Vec::new();
            for r in requests {
                ids.push(r.await.expect("request task"));
            }
            let mut succeeded = 0;
            for id in &ids {
                let e = wait_exec(&ctx, id, Duration::from_secs(30), |e| {
                    e.status.is_completed()
                })
                .await;
                match e.status {
                    ExecutionStatus::Succeeded => succeeded += 1,
                    ExecutionStatus::Canceled => {}
                    other => panic!("execution {id} ended {other}: {:?}", e.result),
                }
            }
            succeeded
        }
    };
    let t0 = Instant::now();
    let first = burst(12).await;
    assert!(
        t0.elapsed() < Duration::from_secs(4),
        "the burst outlived the window: the count below means nothing"
    );
    assert_eq!(
        first, 3,
        "exactly the limit is scheduled in one window across two schedulers"
    );
    tokio::time::sleep(Duration::from_millis(4200)).await;
    assert_eq!(burst(1).await, 1, "a new window schedules again");
    stop_a.cancel();
    stop_b.cancel();
    a.shutdown().await;
    b.shutdown().await;
    base.shutdown().await;
}

/// A trigger instance dispatched twice under one derived id (a duplicated first delivery) is
/// created once: the second dispatch leaves the instance and its trace, with what the rules
/// engine added to it, as they are.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_first_dispatch_keeps_the_trace() {
    use st2_core::model::{derived_id, Trace, TraceComponent};
    use st2_core::services::dispatch::{self, Handoff};
    let (p, _dir) = platform(&["notifier"], &[], |_| {}).await;
    let ctx = &p.ctx;
    let id = derived_id("some-execution", "test");
    let payload = || json!({"object": {"name": "k", "value": "v"}});
    let kv = "core.st2.key_value_pair.create";
    let first = dispatch::dispatch_as(ctx, Some(id.clone()), kv, payload(), None, Handoff::Wait)
        .await
        .expect("first dispatch");
    // The rules engine records a rule in the instance's trace.
    let traces = repo::<Trace>(&*ctx.store);
    let trace_id = derived_id(&id, "trace");
    let mut trace = traces
        .get(&trace_id)
        .await
        .expect("get")
        .expect("trace stored");
    trace.rules.push(TraceComponent {
        object_id: "rule-1".into(),
        component_ref: "ft.rule".into(),
        updated_at: "2026-01-01T00:00:00Z".into(),
        caused_by: json!({}),
    });
    traces.save(trace).await.expect("save trace");

    let second = dispatch::dispatch_as(ctx, Some(id.clone()), kv, payload(), None, Handoff::Wait)
        .await
        .expect("second dispatch");
    assert_eq!(
        second.occurrence_time, first.occurrence_time,
        "the stored instance is kept"
    );
    let trace = traces.get(&trace_id).await.expect("get").expect("trace");
    assert_eq!(
        trace.rules.len(),
        1,
        "the rule recorded in the trace is kept: {trace:?}"
    );
    assert_eq!(trace.trigger_instances.len(), 1, "{trace:?}");
    p.shutdown().await;
}
