//! Distributed mode under faults: separate `st2d` processes (API, rules engine, scheduler,
//! action runners, timers engines) over one RabbitMQ vhost and one MongoDB-wire database, each
//! unique to its test. Every test asserts that nothing is lost and nothing is stuck: every
//! accepted trigger instance ends `processed` once, with one enforcement and one execution,
//! and every execution reaches a final state.
//!
//! Needs `ST2_TEST_MONGODB_URL` (a MongoDB-wire server) and a local RabbitMQ with `rabbitmqctl`
//! (`scripts/test.sh` provides both); without them every test fails, saying so.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::sync::RwLock;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use st2_core::bus::{names, AmqpBus, Bus, Message};
use st2_core::model::{ExecutionStatus, Trigger, TriggerInstance};
use st2_core::store::{repo, Collection, Query, Repo, Store};

use common::cluster::{post_stream, rabbitmqctl, webhook_n, Cluster};

/// The broker-outage test takes it for writing (it cuts every connection of its vhost and
/// refuses new ones for a while); the others take it for reading, so that they never overlap
/// with the outage.
static BROKER: RwLock<()> = RwLock::new(());

/// The trigger the notifier emits for every completed execution.
const ACTION_TRIGGER: &str = st2_core::services::notifier::ACTION_TRIGGER;

/// A webhook `dist` that runs `core.noop`.
const NOOP_RULE: &str = "name: noop_on_webhook\npack: dist\ndescription: t\nenabled: true\n\
trigger:\n  type: core.st2.webhook\n  parameters:\n    url: dist\n\
action:\n  ref: core.noop\n";

/// An interval timer firing every second that runs `core.noop`.
const TICK_RULE: &str = "name: tick\npack: dist\ndescription: t\nenabled: true\n\
trigger:\n  type: core.st2.IntervalTimer\n  parameters:\n    unit: seconds\n    delta: 1\n\
action:\n  ref: core.noop\n";

/// Longest wait for a backlog to drain (debug build, MongoDB-wire test server).
const DRAIN: Duration = Duration::from_secs(240);

/// Webhooks of the broker-outage test (the figure), and the posts before which the two
/// outages start.
const OUTAGE_WEBHOOKS: usize = 1_000;
const OUTAGES_AT: [usize; 2] = [250, 650];
/// Webhooks of the rules-engine kill test (the figure: 500), and how many
/// enforcements are made before the kill.
const KILL_WEBHOOKS: usize = 500;
const KILL_AFTER: u64 = 120;

fn broker_shared() -> std::sync::RwLockReadGuard<'static, ()> {
    BROKER.read().unwrap_or_else(|e| e.into_inner())
}

/// Instances of the action trigger the notifier emits once per completed execution.
fn action_triggers(tis: &[TriggerInstance]) -> Vec<&TriggerInstance> {
    tis.iter().filter(|t| t.trigger == ACTION_TRIGGER).collect()
}

/// The drain condition of a test: `expected` webhook instances and as many executions, every
/// instance processed, every execution final and its action trigger emitted.
fn settled(c: &Cluster, expected: usize) -> bool {
    let tis = c.trigger_instances();
    let execs = c.executions();
    tis.iter().filter(|t| webhook_n(t).is_some()).count() >= expected
        && tis.iter().all(|t| t.status == "processed")
        && execs.len() >= expected
        && execs.iter().all(|e| e.status.is_completed())
        && action_triggers(&tis).len() >= execs.len()
}

/// The trigger instance an execution was started for.
fn instance_of(e: &st2_core::model::Execution) -> Option<String> {
    e.context
        .get("trigger_instance")
        .and_then(|t| t.get("id"))
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// Exactly once in effect: `n` webhook instances (each `n` once), all processed, one
/// enforcement and one succeeded execution each.
fn assert_exactly_once(c: &Cluster, n: usize) {
    let all = c.trigger_instances();
    for t in &all {
        assert_eq!(t.status, "processed", "instance {} is {}", t.id, t.status);
    }
    let tis: Vec<&TriggerInstance> = all.iter().filter(|t| webhook_n(t).is_some()).collect();
    let mut by_n: BTreeMap<u64, usize> = BTreeMap::new();
    for t in &tis {
        *by_n.entry(webhook_n(t).unwrap_or_default()).or_default() += 1;
    }
    let twice: Vec<_> = by_n.iter().filter(|(_, &v)| v > 1).collect();
    assert!(
        twice.is_empty(),
        "webhooks stored more than once: {twice:?}"
    );
    assert_eq!(
        by_n.keys().copied().collect::<Vec<_>>(),
        (0..n as u64).collect::<Vec<_>>(),
        "every accepted webhook has its trigger instance"
    );
    let execs = c.executions();
    assert_eq!(execs.len(), n, "executions = instances");
    let mut per_instance: HashMap<String, usize> = HashMap::new();
    for e in &execs {
        assert_eq!(
            e.status,
            ExecutionStatus::Succeeded,
            "execution {} is {}",
            e.id,
            e.status
        );
        let ti = instance_of(e).unwrap_or_else(|| panic!("execution {} has no instance", e.id));
        *per_instance.entry(ti).or_default() += 1;
    }
    assert!(
        tis.iter().all(|t| per_instance.get(&t.id) == Some(&1)),
        "one execution per instance"
    );
    let enforcements = c.enforcements();
    assert_eq!(enforcements.len(), n, "one enforcement per instance");
    assert!(enforcements.iter().all(|e| e.status == "succeeded"));
    // The notifier's action trigger: exactly one per execution.
    let mut emitted: HashMap<String, usize> = HashMap::new();
    for t in action_triggers(&all) {
        let id = t.payload["execution_id"].as_str().unwrap_or_default();
        *emitted.entry(id.to_string()).or_default() += 1;
    }
    assert!(
        execs.iter().all(|e| emitted.get(&e.id) == Some(&1)) && emitted.len() == execs.len(),
        "one action trigger per execution"
    );
}

/// (a) The broker drops every connection of the platform and refuses new ones for two
/// seconds, twice, during a stream of webhooks: every accepted webhook ends as one processed
/// instance and one succeeded execution.
#[test]
fn broker_outage_during_a_webhook_stream_loses_nothing() {
    let _exclusive = BROKER.write().unwrap_or_else(|e| e.into_inner());
    let mut c = Cluster::new("outage", &[("noop.yaml", NOOP_RULE)]);
    let api = c.start("api", "api");
    c.start("engine", "rulesengine,scheduler,notifier");
    c.start("runner", "actionrunner");
    let addr = c.nodes[api].addr.clone();
    let vhost = c.vhost.clone();
    let outage = |i: usize| {
        if OUTAGES_AT.contains(&i) {
            rabbitmqctl(&["clear_permissions", "-p", &vhost, "guest"]);
            rabbitmqctl(&[
                "close_all_connections",
                "-p",
                &vhost,
                "test: simulated broker outage",
            ]);
            std::thread::sleep(Duration::from_secs(2));
            rabbitmqctl(&["set_permissions", "-p", &vhost, "guest", ".*", ".*", ".*"]);
        }
    };
    let report = post_stream(&addr, "dist", 0..OUTAGE_WEBHOOKS, 8, &outage);
    assert_eq!(report.accepted, OUTAGE_WEBHOOKS, "{report:?}");
    eprintln!("outage: {report:?}");
    c.wait_until("every execution to finish", DRAIN, |c| {
        settled(c, OUTAGE_WEBHOOKS)
    });
    assert_exactly_once(&c, OUTAGE_WEBHOOKS);
}

/// (b) `kill -9` of the rules engine while it works through a stream of webhooks, then a new one:
/// every instance is processed once and executions = instances.
#[test]
fn rules_engine_killed_mid_stream_loses_nothing() {
    let _shared = broker_shared();
    let mut c = Cluster::new("rules_kill", &[("noop.yaml", NOOP_RULE)]);
    let api = c.start("api", "api");
    let rules = c.start("rules", "rulesengine");
    c.start("work", "scheduler,notifier,actionrunner");
    let addr = c.nodes[api].addr.clone();
    let mut processed_at_kill = 0;
    std::thread::scope(|s| {
        let poster = s.spawn(|| post_stream(&addr, "dist", 0..KILL_WEBHOOKS, 8, &|_| {}));
        c.wait_until("the rules engine to be under way", DRAIN, |c| {
            c.count(
                Collection::RuleEnforcements,
                &Query::all().eq("status", "succeeded"),
            ) >= KILL_AFTER
        });
        c.nodes[rules].kill9();
        processed_at_kill = c.count(
            Collection::TriggerInstances,
            &Query::all().eq("status", "processed"),
        );
        std::thread::sleep(Duration::from_millis(500));
        c.start("rules-2", "rulesengine");
        let report = poster.join().expect("poster");
        assert_eq!(report.accepted, KILL_WEBHOOKS, "{report:?}");
    });
    eprintln!("rules engine killed with {processed_at_kill} instances processed");
    c.wait_until("every execution to finish", DRAIN, |c| {
        settled(c, KILL_WEBHOOKS)
    });
    assert_exactly_once(&c, KILL_WEBHOOKS);
}

/// The pid in a lease holder's node id (`<host>-<pid>-<suffix>`).
fn holder_pid(holder: &str) -> Option<u32> {
    holder.rsplit('-').nth(1)?.parse().ok()
}

/// Timer fires so far (instances of interval timers), sorted by `executed_at`.
fn timer_fires(c: &Cluster) -> Vec<TriggerInstance> {
    let mut fires: Vec<_> = c
        .trigger_instances()
        .into_iter()
        .filter(|t| t.payload.get("executed_at").is_some())
        .collect();
    fires.sort_by_key(executed_at);
    fires
}

fn executed_at(t: &TriggerInstance) -> String {
    t.payload["executed_at"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Fires seen during `window`.
fn fires_during(c: &Cluster, window: Duration) -> usize {
    let before = timer_fires(c).len();
    std::thread::sleep(window);
    timer_fires(c).len() - before
}

/// (c) `kill -9` of the timers leader (two timers engines, a 1 s interval timer): the standby
/// takes over within the lease's TTL plus a margin, fires keep coming, and no schedule is fired
/// by two processes (exactly one fire per second while either is active).
#[test]
fn timers_leader_killed_standby_takes_over() {
    let _shared = broker_shared();
    let mut c = Cluster::new("timers_kill", &[("tick.yaml", TICK_RULE)]);
    c.start("work", "rulesengine,scheduler,notifier,actionrunner");
    let a = c.start("timers-a", "timersengine");
    let b = c.start("timers-b", "timersengine");
    let lease = |c: &Cluster| {
        c.get(Collection::Leases, "timersengine")
            .and_then(|d| d["holder"].as_str().map(str::to_string))
    };
    c.wait_until(
        "the timers lease to be taken and fires to come",
        DRAIN,
        |c| lease(c).is_some() && timer_fires(c).len() >= 2,
    );
    // One active engine: about one fire a second, not two.
    let steady = fires_during(&c, Duration::from_secs(4));
    assert!(
        (2..=6).contains(&steady),
        "{steady} fires in 4 s with two timers engines (one is active)"
    );
    let holder = lease(&c).expect("held");
    let leader_pid = holder_pid(&holder).expect("pid in the holder's node id");
    let (leader, standby) = if c.nodes[a].pid() == leader_pid {
        (a, b)
    } else {
        (b, a)
    };
    assert_eq!(
        c.nodes[leader].pid(),
        leader_pid,
        "the holder is one of ours"
    );
    let killed_at = Instant::now();
    c.nodes[leader].kill9();
    // Counted after the kill: a dead leader adds none.
    let fires_at_kill = timer_fires(&c).len();
    let standby_pid = c.nodes[standby].pid();
    // Taken over within the TTL (3 s) plus a renewal period and a generous margin.
    c.wait_until(
        "the standby to take over and fire",
        Duration::from_secs(15),
        |c| {
            lease(c).and_then(|h| holder_pid(&h)) == Some(standby_pid)
                && timer_fires(c).len() > fires_at_kill + 1
        },
    );
    eprintln!(
        "timers failover: next fire {:?} after kill -9",
        killed_at.elapsed()
    );
    let resumed = fires_during(&c, Duration::from_secs(4));
    assert!(
        (2..=6).contains(&resumed),
        "{resumed} fires in 4 s after the takeover (firing resumes, once per second)"
    );
    let fires = timer_fires(&c);
    let mut seen = HashMap::new();
    for f in &fires {
        *seen.entry(executed_at(f)).or_insert(0) += 1;
    }
    assert!(
        seen.values().all(|&n| n == 1),
        "a fire time dispatched twice: {seen:?}"
    );
    // Nothing stuck: every fire processed. The leader's last fire before the kill is left
    // out: a kill between storing an instance and publishing it leaves it `pending` until a
    // re-claim (the in-flight window of a dispatch, a few milliseconds a second).
    let n = fires.len();
    let interrupted = fires[fires_at_kill - 1].id.clone();
    c.wait_until("every fire to be processed", DRAIN, |c| {
        let fires = timer_fires(c);
        fires.len() >= n
            && fires[..n]
                .iter()
                .all(|t| t.status == "processed" || t.id == interrupted)
    });
}

/// (d) The same message delivered twice: a trigger instance published twice at once makes one
/// enforcement and one execution; an execution's `scheduled` message delivered three times runs
/// it once; a duplicate `requested` message after it finished changes nothing.
#[test]
fn duplicate_messages_change_state_once() {
    let _shared = broker_shared();
    let mut c = Cluster::new("duplicates", &[("noop.yaml", NOOP_RULE)]);
    c.start("api", "api");
    c.start("engine", "rulesengine,scheduler,notifier");
    let bus = c
        .block_on(AmqpBus::connect(c.amqp_url()))
        .expect("connect to the test vhost");
    // A pending instance of the webhook's trigger, stored as the API stores one.
    let trigger: Trigger = c
        .block_on(repo::<Trigger>(c.store()).find_one(Query::all().eq("type", "core.st2.webhook")))
        .expect("query")
        .expect("the rule's webhook trigger");
    let mut ti = TriggerInstance {
        id: String::new(),
        trigger: trigger.trigger_ref.clone(),
        payload: json!({"headers": {}, "headers_lower": {}, "body": {"n": 0}}),
        occurrence_time: chrono::Utc::now().to_rfc3339(),
        status: "pending".into(),
        preprocessing: None,
    };
    let w = Repo::<TriggerInstance>::to_write(&mut ti).expect("write");
    c.block_on(c.store().apply(vec![w])).expect("store");
    let msg = Message::json(&json!({"trigger_instance": ti, "trace_id": null}));
    let twice = vec![
        (names::RK_TRIGGER_INSTANCE.to_string(), msg.clone()),
        (names::RK_TRIGGER_INSTANCE.to_string(), msg),
    ];
    c.block_on(bus.publish_batch(names::TRIGGER_INSTANCES_DISPATCH, twice))
        .expect("publish twice");
    c.wait_until("both copies to be consumed", DRAIN, |c| {
        c.queue_depth(names::RULES_ENGINE_WORK) == (0, 0)
            && c.executions()
                .iter()
                .any(|e| e.status == ExecutionStatus::Scheduled)
    });
    let execs = c.executions();
    assert_eq!(
        execs.len(),
        1,
        "one execution for a message delivered twice"
    );
    assert_eq!(c.enforcements().len(), 1, "one enforcement");
    let exec_id = execs[0].id.clone();
    // No action runner yet: the execution waits `scheduled`; two more copies of its message.
    for _ in 0..2 {
        c.block_on(bus.publish_json(
            names::LIVEACTION_STATUS,
            "scheduled",
            &json!({"id": exec_id}),
        ))
        .expect("publish scheduled");
    }
    c.start("runner", "actionrunner");
    c.wait_until(
        "the execution to succeed, every copy consumed",
        DRAIN,
        |c| {
            c.queue_depth(names::ACTIONRUNNER_WORK) == (0, 0)
                && c.executions()
                    .iter()
                    .all(|e| e.status == ExecutionStatus::Succeeded)
        },
    );
    // A late duplicate of its `requested` message changes nothing.
    let done = c.executions();
    c.block_on(bus.publish_json(
        names::LIVEACTION_STATUS,
        "requested",
        &json!({"id": exec_id}),
    ))
    .expect("publish requested");
    c.wait_until("the duplicate to be consumed", DRAIN, |c| {
        c.queue_depth(names::ACTIONRUNNER_REQ) == (0, 0)
    });
    let after = c.executions();
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].status, ExecutionStatus::Succeeded);
    assert_eq!(after[0].log, done[0].log, "nothing logged again");
    let running = after[0]
        .log
        .iter()
        .filter(|l| l["status"] == "running")
        .count();
    assert_eq!(running, 1, "run once: {:?}", after[0].log);
    assert_eq!(
        c.get(Collection::TriggerInstances, &ti.id)
            .map(|d| d["status"].clone()),
        Some(json!("processed"))
    );
    c.block_on(bus.close()).expect("close");
}

/// Services of a deployment that come up at the same moment all start (each registers the
/// packs into the one database: their batches conflict and are retried, none dies), and
/// together they run a webhook's execution.
#[test]
fn services_started_together_all_come_up() {
    // Alone: five registrations at once are slow on a test server the other tests load (a
    // debug build once took over a minute beside a 500-webhook stream).
    let _exclusive = BROKER.write().unwrap_or_else(|e| e.into_inner());
    let mut c = Cluster::new("together", &[("noop.yaml", NOOP_RULE)]);
    // One service first (the database then holds every pack: the others' registrations
    // rewrite the same documents), then the rest at once.
    let api = c.start("api", "api");
    c.start_together(&[
        ("engine", "rulesengine,scheduler,notifier"),
        ("runner-1", "actionrunner"),
        ("runner-2", "actionrunner"),
        ("timers", "timersengine,garbagecollector"),
    ]);
    let addr = c.nodes[api].addr.clone();
    let report = post_stream(&addr, "dist", 0..5, 2, &|_| {});
    assert_eq!(report.accepted, 5, "{report:?}");
    c.wait_until("every execution to finish", DRAIN, |c| settled(c, 5));
    assert_exactly_once(&c, 5);
}
