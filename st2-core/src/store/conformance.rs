//! The conformance suite every [`Store`] backend must pass (embedded SQLite now, MongoDB later).
//!
//! Owns the behaviour the rest of the platform relies on: typed round trips of every model type,
//! query semantics (the reference is [`Query::matches`]), paging, atomic batches and
//! compare-and-set under contention. It is test-support code: each check panics with a message
//! saying what broke. It must not know about any particular backend.
//!
//! A backend's test calls [`run_all`] with a function making a fresh, empty store; backends that
//! can be opened twice on the same data also call [`cas_race`] with several handles.

use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde_json::{json, Value};

use super::{repo, Collection, Query, Store, StoreError, Write};
use crate::model::*;

/// The future of one check.
pub type CheckFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// One check: takes a fresh, empty store and panics on failure.
pub type Check = fn(Arc<dyn Store>) -> CheckFuture;

/// Every check, by name, in the order [`run_all`] runs them.
pub const CHECKS: &[(&str, Check)] = &[
    ("round_trip_every_model", |s| {
        Box::pin(round_trip_every_model(s))
    }),
    ("missing_documents", |s| Box::pin(missing_documents(s))),
    ("replace_and_delete", |s| Box::pin(replace_and_delete(s))),
    ("find_eq_top_level_and_dotted", |s| {
        Box::pin(find_eq_top_level_and_dotted(s))
    }),
    ("eq_null_matches_missing", |s| {
        Box::pin(eq_null_matches_missing(s))
    }),
    ("eq_typed_scalars", |s| Box::pin(eq_typed_scalars(s))),
    ("eq_objects_and_arrays", |s| {
        Box::pin(eq_objects_and_arrays(s))
    }),
    ("find_in", |s| Box::pin(find_in(s))),
    ("find_prefix_is_literal", |s| {
        Box::pin(find_prefix_is_literal(s))
    }),
    ("find_agrees_with_query_matches", |s| {
        Box::pin(find_agrees_with_query_matches(s))
    }),
    ("sorting", |s| Box::pin(sorting(s))),
    ("paging_and_count", |s| Box::pin(paging_and_count(s))),
    ("get_by_ref_and_id", |s| Box::pin(get_by_ref_and_id(s))),
    ("apply_is_atomic", |s| Box::pin(apply_is_atomic(s))),
    ("compare_and_set_basics", |s| {
        Box::pin(compare_and_set_basics(s))
    }),
    ("compare_and_set_race", |s| {
        Box::pin(compare_and_set_race(s))
    }),
    ("set_if_basics", |s| Box::pin(set_if_basics(s))),
    ("insert_new_race", |s| Box::pin(insert_new_race(s))),
    ("append_basics", |s| Box::pin(append_basics(s))),
    ("apply_each_in_order", |s| Box::pin(apply_each_in_order(s))),
    ("append_race", |s| Box::pin(append_race(s))),
];

/// Runs every check of [`CHECKS`], each on a fresh store from `make`. Panics naming the first
/// check that fails.
pub async fn run_all<F, Fut>(make: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn Store>>,
{
    for (name, check) in CHECKS {
        let store = make().await;
        // A task of its own, so that a failure can be reported with the check's name.
        if let Err(e) = tokio::spawn(check(store)).await {
            let why = if e.is_panic() {
                let payload = e.into_panic();
                payload
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "panic".into())
            } else {
                e.to_string()
            };
            panic!("store conformance check `{name}` failed: {why}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Sample documents, built from the model types.

const T0: &str = "2024-05-01T10:00:00.000000Z";

fn action(pack: &str, name: &str) -> Action {
    let mut parameters = ParamMap::new();
    parameters.insert(
        "cmd".into(),
        ParamSpec {
            param_type: Some(ParamType::String),
            description: Some("Command to run — ünïcode".into()),
            required: true,
            position: Some(0),
            ..ParamSpec::default()
        },
    );
    Action {
        id: String::new(),
        name: name.into(),
        pack: pack.into(),
        action_ref: format!("{pack}.{name}"),
        uid: format!("action:{pack}:{name}"),
        description: Some(format!("The {name} action")),
        enabled: true,
        runner_type: "local-shell-cmd".into(),
        entry_point: String::new(),
        parameters,
        output_schema: None,
        notify: Some(Notify {
            on_complete: Some(NotifySubSchema {
                message: Some("done".into()),
                data: None,
                routes: vec!["chat".into()],
            }),
            ..Notify::default()
        }),
        tags: vec![json!({"name": "k", "value": "v"})],
        metadata_file: Some(format!("actions/{name}.yaml")),
    }
}

fn rule(pack: &str, name: &str, trigger_type: &str) -> Rule {
    let mut params = JsonMap::new();
    params.insert("url".into(), json!(name));
    Rule {
        id: String::new(),
        name: name.into(),
        pack: pack.into(),
        rule_ref: format!("{pack}.{name}"),
        uid: format!("rule:{pack}:{name}"),
        description: None,
        enabled: true,
        trigger: RuleTrigger {
            trigger_type: trigger_type.into(),
            parameters: params,
            trigger_ref: None,
            description: None,
        },
        criteria: [(
            "trigger.body.x".to_string(),
            json!({"type": "equals", "pattern": 1}),
        )]
        .into_iter()
        .collect(),
        action: RuleAction {
            action_ref: "core.local".into(),
            parameters: [("cmd".to_string(), json!("echo {{ trigger.body }}"))]
                .into_iter()
                .collect(),
            description: None,
        },
        rule_type: RuleType::default(),
        context: None,
        tags: vec![],
        metadata_file: None,
    }
}

fn execution(id: &str, status: ExecutionStatus) -> Execution {
    Execution {
        id: id.into(),
        action: json!({"ref": "core.local", "runner_type": "local-shell-cmd"}),
        runner: json!({"name": "local-shell-cmd"}),
        liveaction: LiveActionRef {
            id: id.into(),
            action: "core.local".into(),
            action_is_workflow: false,
            runner_info: JsonMap::new(),
        },
        status,
        parameters: [("cmd".to_string(), json!("date"))].into_iter().collect(),
        result: None,
        context: [("user".to_string(), json!("stanley"))]
            .into_iter()
            .collect(),
        parent: None,
        children: vec![],
        trigger: None,
        trigger_type: None,
        trigger_instance: None,
        rule: None,
        start_timestamp: T0.into(),
        end_timestamp: None,
        elapsed_seconds: None,
        delay: None,
        log: vec![json!({"status": status.as_str(), "timestamp": T0})],
        notified: false,
        lease_owner: None,
    }
}

fn trigger(id: &str, name: &str, ref_count: u32) -> Trigger {
    Trigger {
        id: id.into(),
        name: name.into(),
        pack: "core".into(),
        trigger_ref: format!("core.{name}"),
        uid: format!("trigger:core:{name}"),
        trigger_type: "core.st2.webhook".into(),
        parameters: JsonMap::new(),
        ref_count,
        description: None,
    }
}

fn kv(id: &str, name: &str) -> KeyValuePair {
    KeyValuePair {
        id: id.into(),
        name: name.into(),
        value: format!("value of {name}"),
        secret: false,
        encrypted: false,
        scope: "st2kv.system".into(),
        user: None,
        ttl: None,
        expire_timestamp: None,
        uid: format!("key_value_pair:st2kv.system:{name}"),
    }
}

fn token(id: &str, user: &str, metadata: Value) -> Token {
    Token {
        id: id.into(),
        user: user.into(),
        token: format!("tok-{id}"),
        expiry: "2099-01-01T00:00:00Z".into(),
        metadata,
    }
}

fn sensor(pack: &str, class_name: &str, trigger_types: &[&str]) -> Sensor {
    Sensor {
        id: String::new(),
        class_name: class_name.into(),
        name: class_name.into(),
        pack: pack.into(),
        sensor_ref: format!("{pack}.{class_name}"),
        uid: format!("sensor_type:{pack}:{class_name}"),
        entry_point: "sensor.py".into(),
        artifact_uri: None,
        description: None,
        enabled: true,
        poll_interval: Some(2.5),
        trigger_types: trigger_types.iter().map(|t| t.to_string()).collect(),
        metadata_file: None,
        extra: None,
    }
}

// ---------------------------------------------------------------------------------------------
// Small helpers.

/// Puts a model document through its typed repository; returns it with its id.
async fn save<T: Document>(store: &dyn Store, doc: T) -> T {
    repo::<T>(store)
        .save(doc)
        .await
        .unwrap_or_else(|e| panic!("save {:?}: {e}", T::COLLECTION))
}

/// Ids of the documents a query finds, in result order.
async fn ids(store: &dyn Store, coll: Collection, q: &Query) -> Vec<String> {
    let docs = store
        .find(coll, q)
        .await
        .unwrap_or_else(|e| panic!("find {q:?}: {e}"));
    docs.iter()
        .map(|d| d["id"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// Ids a query finds, sorted (for checks that do not care about order).
async fn id_set(store: &dyn Store, coll: Collection, q: &Query) -> Vec<String> {
    let mut v = ids(store, coll, q).await;
    v.sort();
    v
}

async fn count(store: &dyn Store, coll: Collection, q: &Query) -> u64 {
    store
        .count(coll, q)
        .await
        .unwrap_or_else(|e| panic!("count {q:?}: {e}"))
}

fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn patch(v: Value) -> JsonMap {
    match v {
        Value::Object(m) => m,
        other => panic!("patch must be an object, got {other}"),
    }
}

async fn round_trip<T: Document + PartialEq + Debug>(store: &dyn Store, doc: T) {
    let coll = T::COLLECTION;
    let saved = save(store, doc).await;
    assert!(!saved.id().is_empty(), "{coll:?}: save must assign an id");
    let got = repo::<T>(store).get(saved.id()).await.expect("typed get");
    assert_eq!(got.as_ref(), Some(&saved), "{coll:?}: typed round trip");
    let raw = store.get(coll, saved.id()).await.expect("raw get");
    let want = serde_json::to_value(&saved).expect("model serialises");
    assert_eq!(
        raw,
        Some(want),
        "{coll:?}: stored JSON differs from the serialised model"
    );
    for other in Collection::ALL.into_iter().filter(|c| *c != coll) {
        let leaked = store.get(other, saved.id()).await.expect("raw get");
        assert!(leaked.is_none(), "{coll:?} document visible in {other:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Checks.

/// Every model type survives a save/get through `Repo<T>`, in its own collection only.
pub async fn round_trip_every_model(store: Arc<dyn Store>) {
    let s = &*store;
    let mut pack_extra = JsonMap::new();
    pack_extra.insert("x-custom".into(), json!({"nested": [1, 2.5, null, true]}));
    round_trip(
        s,
        Pack {
            id: String::new(),
            pack_ref: "demo".into(),
            name: "Demo pack".into(),
            description: "Demo — ✓".into(),
            author: "st2".into(),
            version: "1.2.3".into(),
            stackstorm_version: Some(">=3.0.0".into()),
            python_versions: vec!["3".into()],
            dependencies: vec![],
            system: None,
            keywords: vec!["demo".into()],
            email: Some("a@example.com".into()),
            contributors: vec![],
            files: vec!["pack.yaml".into(), "actions/run.yaml".into()],
            path: Some("packs/demo".into()),
            uid: "pack:demo".into(),
            extra: pack_extra,
        },
    )
    .await;
    round_trip(s, action("demo", "run")).await;
    round_trip(s, rule("demo", "on_hook", "core.st2.webhook")).await;
    round_trip(
        s,
        TriggerType {
            id: String::new(),
            name: "event".into(),
            pack: "demo".into(),
            trigger_type_ref: "demo.event".into(),
            uid: "trigger_type:demo:event".into(),
            description: None,
            payload_schema: patch(json!({"type": "object"})),
            parameters_schema: JsonMap::new(),
            tags: vec![],
            metadata_file: None,
            preprocessing: vec![],
        },
    )
    .await;
    round_trip(s, trigger("", "st2.webhook", 3)).await;
    round_trip(
        s,
        TriggerInstance {
            id: String::new(),
            trigger: "core.st2.webhook".into(),
            payload: json!({"body": {"n": 1, "f": 0.1, "s": "é\"\\"}, "headers": []}),
            occurrence_time: T0.into(),
            status: "processed".into(),
            preprocessing: None,
        },
    )
    .await;
    round_trip(
        s,
        RuleEnforcement {
            id: String::new(),
            trigger_instance_id: "ti1".into(),
            execution_id: Some("ex1".into()),
            rule: json!({"id": "r1", "ref": "demo.on_hook", "uid": "rule:demo:on_hook"}),
            status: "succeeded".into(),
            failure_reason: None,
            enforced_at: T0.into(),
        },
    )
    .await;
    let mut ex = execution("", ExecutionStatus::Succeeded);
    ex.result = Some(json!({"stdout": "ok", "return_code": 0}));
    ex.elapsed_seconds = Some(1.25);
    ex.end_timestamp = Some(T0.into());
    ex.children = vec!["c1".into(), "c2".into()];
    ex.delay = Some(100);
    round_trip(s, ex).await;
    round_trip(s, sensor("demo", "Watcher", &["demo.event"])).await;
    round_trip(
        s,
        Policy {
            id: String::new(),
            name: "limit".into(),
            pack: "demo".into(),
            policy_ref: "demo.limit".into(),
            uid: "policy:demo:limit".into(),
            description: None,
            enabled: true,
            resource_ref: "demo.run".into(),
            policy_type: "action.concurrency".into(),
            parameters: patch(json!({"threshold": 2, "action": "delay"})),
            metadata_file: None,
        },
    )
    .await;
    round_trip(
        s,
        PolicyType {
            id: String::new(),
            name: "concurrency".into(),
            resource_type: "action".into(),
            policy_type_ref: "action.concurrency".into(),
            uid: "policy_type:action:concurrency".into(),
            description: None,
            enabled: true,
            module: "st2actions.policies.concurrency".into(),
            parameters: patch(json!({"threshold": {"type": "integer"}})),
            extra: None,
        },
    )
    .await;
    round_trip(
        s,
        ActionAlias {
            id: String::new(),
            name: "say".into(),
            pack: "demo".into(),
            alias_ref: "demo.say".into(),
            uid: "action:demo:say".into(),
            description: None,
            enabled: true,
            action_ref: "demo.run".into(),
            formats: vec![json!("say {{cmd}}")],
            ack: None,
            result: None,
            extra: None,
            immutable_parameters: JsonMap::new(),
            metadata_file: None,
        },
    )
    .await;
    let mut pair = kv("", "stanley:api_token");
    pair.secret = true;
    pair.ttl = Some(60);
    pair.user = Some("stanley".into());
    round_trip(s, pair).await;
    round_trip(
        s,
        Config {
            id: String::new(),
            pack: "demo".into(),
            values: patch(json!({"a": 1})),
        },
    )
    .await;
    round_trip(
        s,
        ConfigSchema {
            id: String::new(),
            pack: "demo".into(),
            attributes: patch(json!({"a": {"type": "integer", "default": 1}})),
        },
    )
    .await;
    round_trip(
        s,
        RunnerType {
            id: String::new(),
            name: "local-shell-cmd".into(),
            uid: "runner_type:local-shell-cmd".into(),
            description: "Local shell".into(),
            enabled: true,
            runner_module: "local_runner".into(),
            output_key: Some("stdout".into()),
            output_schema: None,
            runner_parameters: ParamMap::new(),
        },
    )
    .await;
    round_trip(
        s,
        Trace {
            id: String::new(),
            trace_tag: "deploy-42".into(),
            trigger_instances: vec![TraceComponent {
                object_id: "ti1".into(),
                component_ref: "core.st2.webhook".into(),
                updated_at: T0.into(),
                caused_by: json!({}),
            }],
            rules: vec![],
            action_executions: vec![],
            start_timestamp: T0.into(),
        },
    )
    .await;
    round_trip(s, token("", "stanley", json!({"source": "cli"}))).await;
    round_trip(
        s,
        ApiKey {
            id: String::new(),
            uid: "api_key:k1".into(),
            user: "stanley".into(),
            key_hash: "ab".repeat(32),
            metadata: Value::Null,
            created_at: T0.into(),
            enabled: false,
        },
    )
    .await;
    round_trip(
        s,
        User {
            id: String::new(),
            name: "stanley".into(),
            password_hash: None,
        },
    )
    .await;
}

/// Reads of what is not there: `None`, empty results, zero counts.
pub async fn missing_documents(store: Arc<dyn Store>) {
    let s = &*store;
    for coll in Collection::ALL {
        assert_eq!(
            s.get(coll, "nope").await.expect("get"),
            None,
            "{coll:?}: get of missing id"
        );
        assert!(
            ids(s, coll, &Query::all()).await.is_empty(),
            "{coll:?}: empty store finds"
        );
        assert_eq!(
            count(s, coll, &Query::all()).await,
            0,
            "{coll:?}: empty store counts"
        );
    }
    let typed = repo::<Execution>(s).get("nope").await.expect("typed get");
    assert!(typed.is_none(), "typed get of missing id");
    assert!(
        !s.delete(Collection::Actions, "nope").await.expect("delete"),
        "delete of missing id"
    );
}

/// Saving an existing id replaces the document; delete reports whether it existed.
pub async fn replace_and_delete(store: Arc<dyn Store>) {
    let s = &*store;
    let mut a = save(s, action("core", "local")).await;
    a.description = Some("changed".into());
    a.enabled = false;
    let a = save(s, a).await;
    assert_eq!(
        count(s, Collection::Actions, &Query::all()).await,
        1,
        "replace keeps one doc"
    );
    let got = repo::<Action>(s).get(&a.id).await.expect("get");
    assert_eq!(got.as_ref(), Some(&a), "replace stores the new version");

    assert!(
        repo::<Action>(s).delete(&a.id).await.expect("delete"),
        "delete of existing id"
    );
    assert!(
        !repo::<Action>(s).delete(&a.id).await.expect("delete"),
        "second delete"
    );
    assert!(
        repo::<Action>(s).get(&a.id).await.expect("get").is_none(),
        "deleted doc is gone"
    );
    assert_eq!(
        count(s, Collection::Actions, &Query::all()).await,
        0,
        "count after delete"
    );
}

/// `Eq` on top-level, dotted and `id` fields.
pub async fn find_eq_top_level_and_dotted(store: Arc<dyn Store>) {
    let s = &*store;
    let mut r1 = rule("core", "r1", "core.st2.webhook");
    r1.id = "r1".into();
    let mut r2 = rule("linux", "r2", "core.st2.IntervalTimer");
    r2.id = "r2".into();
    let mut r3 = rule("linux", "r3", "core.st2.webhook");
    r3.id = "r3".into();
    r3.action.action_ref = "linux.file_touch".into();
    for r in [r1, r2, r3] {
        save(s, r).await;
    }
    let coll = Collection::Rules;
    let cases: &[(Query, &[&str])] = &[
        (Query::all().eq("pack", "linux"), &["r2", "r3"]),
        (
            Query::all().eq("trigger.type", "core.st2.webhook"),
            &["r1", "r3"],
        ),
        (Query::all().eq("action.ref", "linux.file_touch"), &["r3"]),
        (Query::all().eq("trigger.parameters.url", "r2"), &["r2"]),
        (
            Query::all()
                .eq("pack", "linux")
                .eq("trigger.type", "core.st2.webhook"),
            &["r3"],
        ),
        (Query::all().eq("pack", "nope"), &[]),
        (
            Query::all().eq("trigger.type.deeper", "core.st2.webhook"),
            &[],
        ),
        (Query::all().eq("id", "r2"), &["r2"]),
        (Query::all().eq("id", "r2").eq("pack", "core"), &[]),
        (Query::all().eq("ref", "linux.r3"), &["r3"]),
        (Query::all().eq("type.ref", "standard"), &["r1", "r2", "r3"]),
    ];
    for (q, want) in cases {
        assert_eq!(id_set(s, coll, q).await, strs(want), "find {q:?}");
        assert_eq!(count(s, coll, q).await, want.len() as u64, "count {q:?}");
    }
}

/// `Eq(field, null)` matches documents where the field is null or absent.
pub async fn eq_null_matches_missing(store: Arc<dyn Store>) {
    let s = &*store;
    let mut child = execution("child", ExecutionStatus::Running);
    child.parent = Some("root".into());
    save(s, child).await;
    save(s, execution("root", ExecutionStatus::Running)).await;
    let coll = Collection::Executions;
    assert_eq!(
        id_set(s, coll, &Query::all().eq("parent", Value::Null)).await,
        strs(&["root"])
    );
    assert_eq!(
        id_set(s, coll, &Query::all().eq("parent", "root")).await,
        strs(&["child"])
    );
    assert_eq!(
        id_set(s, coll, &Query::all().eq("no_such_field", Value::Null)).await,
        strs(&["child", "root"]),
        "a field no document has is null everywhere"
    );
    assert_eq!(
        id_set(s, coll, &Query::all().eq("parent.deeper", Value::Null)).await,
        strs(&["child", "root"]),
        "a path through a string is missing"
    );

    // Tokens serialise `metadata: null` explicitly.
    save(s, token("t-null", "u", Value::Null)).await;
    save(s, token("t-obj", "u", json!({"source": "cli"}))).await;
    let coll = Collection::Tokens;
    let cases: &[(Query, &[&str])] = &[
        (Query::all().eq("metadata", Value::Null), &["t-null"]),
        (Query::all().eq("metadata.source", Value::Null), &["t-null"]),
        (Query::all().eq("metadata.source", "cli"), &["t-obj"]),
        (
            Query::all().is_in("metadata", vec![Value::Null, json!("x")]),
            &["t-null"],
        ),
    ];
    for (q, want) in cases {
        assert_eq!(id_set(s, coll, q).await, strs(want), "find {q:?}");
    }
}

/// `Eq` on booleans, integers, floats and strings never mixes JSON types.
pub async fn eq_typed_scalars(store: Arc<dyn Store>) {
    let s = &*store;
    let mut on = action("core", "on");
    on.id = "on".into();
    let mut off = action("core", "off");
    off.id = "off".into();
    off.enabled = false;
    save(s, on).await;
    save(s, off).await;
    let coll = Collection::Actions;
    let cases: &[(Query, &[&str])] = &[
        (Query::all().eq("enabled", true), &["on"]),
        (Query::all().eq("enabled", false), &["off"]),
        (Query::all().eq("enabled", 1), &[]),
        (Query::all().eq("enabled", 0), &[]),
        (Query::all().eq("enabled", "true"), &[]),
        (
            Query::all().eq("parameters.cmd.required", true),
            &["off", "on"],
        ),
        (
            Query::all().eq("parameters.cmd.position", 0),
            &["off", "on"],
        ),
        (Query::all().eq("parameters.cmd.position", false), &[]),
    ];
    for (q, want) in cases {
        assert_eq!(id_set(s, coll, q).await, strs(want), "find {q:?}");
    }

    save(s, trigger("t2", "two", 2)).await;
    save(s, trigger("t10", "ten", 10)).await;
    save(s, trigger("t0", "zero", 0)).await;
    save(s, trigger("t1", "one", 1)).await;
    let coll = Collection::Triggers;
    let cases: &[(Query, &[&str])] = &[
        (Query::all().eq("ref_count", 2), &["t2"]),
        (Query::all().eq("ref_count", 10u64), &["t10"]),
        (Query::all().eq("ref_count", 0), &["t0"]),
        (Query::all().eq("ref_count", false), &[]),
        (Query::all().eq("ref_count", true), &[]),
        (Query::all().eq("ref_count", "2"), &[]),
        (Query::all().eq("ref_count", -2), &[]),
        (Query::all().eq("name", 2), &[]),
    ];
    for (q, want) in cases {
        assert_eq!(id_set(s, coll, q).await, strs(want), "find {q:?}");
    }

    let mut slow = execution("slow", ExecutionStatus::Succeeded);
    slow.elapsed_seconds = Some(2.5);
    save(s, slow).await;
    let mut fast = execution("fast", ExecutionStatus::Succeeded);
    fast.elapsed_seconds = Some(0.1);
    save(s, fast).await;
    let coll = Collection::Executions;
    assert_eq!(
        id_set(s, coll, &Query::all().eq("elapsed_seconds", 2.5)).await,
        strs(&["slow"])
    );
    assert_eq!(
        id_set(s, coll, &Query::all().eq("elapsed_seconds", 0.1)).await,
        strs(&["fast"])
    );
    assert_eq!(
        id_set(s, coll, &Query::all().eq("elapsed_seconds", "2.5")).await,
        strs(&[])
    );
}

/// `Eq` with an object or array value compares whole JSON values.
pub async fn eq_objects_and_arrays(store: Arc<dyn Store>) {
    let s = &*store;
    let mut one = sensor("demo", "One", &["demo.a"]);
    one.id = "one".into();
    let mut two = sensor("demo", "Two", &["demo.a", "demo.b"]);
    two.id = "two".into();
    save(s, one).await;
    save(s, two).await;
    let coll = Collection::Sensors;
    let cases: &[(Query, &[&str])] = &[
        (
            Query::all().eq("trigger_types", json!(["demo.a"])),
            &["one"],
        ),
        (
            Query::all().eq("trigger_types", json!(["demo.a", "demo.b"])),
            &["two"],
        ),
        (
            Query::all().eq("trigger_types", json!(["demo.b", "demo.a"])),
            &[],
        ),
        (Query::all().eq("trigger_types", json!([])), &[]),
        (Query::all().eq("trigger_types", "[\"demo.a\"]"), &[]),
        (Query::all().eq("trigger_types", "demo.a"), &[]),
        // A scalar comparison never reaches into an array.
        (
            Query::all().is_in("trigger_types", vec![json!("demo.a"), json!("x")]),
            &[],
        ),
        (Query::all().prefix("trigger_types", "demo"), &[]),
        (Query::all().prefix("trigger_types", ""), &[]),
        (Query::all().eq("trigger_types", Value::Null), &[]),
        (
            Query::all().is_in("trigger_types", vec![Value::Null, json!("demo.b")]),
            &[],
        ),
    ];
    for (q, want) in cases {
        assert_eq!(id_set(s, coll, q).await, strs(want), "find {q:?}");
    }

    let mut r = rule("core", "r", "core.st2.webhook");
    r.id = "r".into();
    save(s, r).await;
    let coll = Collection::Rules;
    let cases: &[(Query, &[&str])] = &[
        (
            Query::all().eq("trigger.parameters", json!({"url": "r"})),
            &["r"],
        ),
        (
            Query::all().eq("trigger.parameters", json!({"url": "x"})),
            &[],
        ),
        (
            Query::all().eq("trigger.parameters", json!({"url": "r", "more": 1})),
            &[],
        ),
        (
            Query::all().eq("trigger.parameters", "{\"url\":\"r\"}"),
            &[],
        ),
        (
            Query::all().eq("type", json!({"ref": "standard", "parameters": {}})),
            &["r"],
        ),
    ];
    for (q, want) in cases {
        assert_eq!(id_set(s, coll, q).await, strs(want), "find {q:?}");
    }
}

/// `In` matches any of its values; an empty list matches nothing.
pub async fn find_in(store: Arc<dyn Store>) {
    let s = &*store;
    use ExecutionStatus::*;
    for (id, st) in [
        ("a", Requested),
        ("b", Running),
        ("c", Succeeded),
        ("d", Failed),
    ] {
        save(s, execution(id, st)).await;
    }
    let coll = Collection::Executions;
    let cases: &[(Query, &[&str])] = &[
        (
            Query::all().is_in("status", vec![json!("requested"), json!("running")]),
            &["a", "b"],
        ),
        (Query::all().is_in("status", vec![json!("failed")]), &["d"]),
        (Query::all().is_in("status", vec![]), &[]),
        (
            Query::all().is_in("status", vec![json!(1), json!(true), json!(null)]),
            &[],
        ),
        (
            Query::all().is_in("id", vec![json!("a"), json!("c"), json!("zz")]),
            &["a", "c"],
        ),
        (Query::all().is_in("id", vec![json!("a"), json!(1)]), &["a"]),
        (
            Query::all().is_in("parent", vec![json!("x"), Value::Null]),
            &["a", "b", "c", "d"],
        ),
        (
            Query::all()
                .is_in("status", vec![json!("running"), json!("failed")])
                .eq("liveaction.action", "core.local"),
            &["b", "d"],
        ),
    ];
    for (q, want) in cases {
        assert_eq!(id_set(s, coll, q).await, strs(want), "find {q:?}");
        assert_eq!(count(s, coll, q).await, want.len() as u64, "count {q:?}");
    }
}

/// `Prefix` is a literal string prefix: `%` and `_` are not wildcards.
pub async fn find_prefix_is_literal(store: Arc<dyn Store>) {
    let s = &*store;
    let names = [
        ("k1", "a%b"),
        ("k2", "a_c"),
        ("k3", "axb"),
        ("k4", "abc"),
        ("k5", "A%B"),
        ("k6", "stanley:token"),
        ("k7", "stanley:ssh"),
        ("k8", "été"),
    ];
    for (id, name) in names {
        save(s, kv(id, name)).await;
    }
    let coll = Collection::KeyValuePairs;
    let cases: &[(Query, &[&str])] = &[
        (Query::all().prefix("name", "a%"), &["k1"]),
        (Query::all().prefix("name", "a_"), &["k2"]),
        (Query::all().prefix("name", "a"), &["k1", "k2", "k3", "k4"]),
        (Query::all().prefix("name", "a%b"), &["k1"]),
        (Query::all().prefix("name", "a%bc"), &[]),
        (Query::all().prefix("name", "%"), &[]),
        (Query::all().prefix("name", "stanley:"), &["k6", "k7"]),
        (Query::all().prefix("name", "é"), &["k8"]),
        (
            Query::all().prefix("name", ""),
            &["k1", "k2", "k3", "k4", "k5", "k6", "k7", "k8"],
        ),
        (Query::all().prefix("user", ""), &[]),
        (
            Query::all()
                .prefix("name", "stanley:")
                .prefix("uid", "key_value_pair:"),
            &["k6", "k7"],
        ),
    ];
    for (q, want) in cases {
        assert_eq!(id_set(s, coll, q).await, strs(want), "find {q:?}");
        assert_eq!(count(s, coll, q).await, want.len() as u64, "count {q:?}");
    }
    // A prefix on a non-string field matches nothing.
    save(s, trigger("t", "x", 12)).await;
    let q = Query::all().prefix("ref_count", "1");
    assert!(
        ids(s, Collection::Triggers, &q).await.is_empty(),
        "prefix on a number"
    );
}

/// For a table of queries, the backend returns exactly what [`Query::matches`] accepts.
pub async fn find_agrees_with_query_matches(store: Arc<dyn Store>) {
    let s = &*store;
    use ExecutionStatus::*;
    let mut all = Vec::new();
    for (i, st) in [Requested, Scheduled, Running, Succeeded, Failed, Running]
        .into_iter()
        .enumerate()
    {
        let mut ex = execution(&format!("ex{i}"), st);
        if i % 2 == 0 {
            ex.parent = Some("ex0".into());
        }
        if i % 3 == 0 {
            ex.delay = Some(i as u64 * 10);
        }
        ex.liveaction.action_is_workflow = i == 4;
        all.push(serde_json::to_value(save(s, ex).await).expect("serialise"));
    }
    let queries = [
        Query::all(),
        Query::all().eq("status", "running"),
        Query::all().eq("parent", "ex0"),
        Query::all().eq("parent", Value::Null),
        Query::all().eq("delay", 30),
        Query::all().eq("delay", Value::Null),
        Query::all().eq("liveaction.action_is_workflow", true),
        Query::all().eq("liveaction.runner_info", json!({})),
        Query::all().is_in(
            "status",
            vec![json!("requested"), json!("failed"), json!(3)],
        ),
        Query::all().prefix("status", "s"),
        Query::all().prefix("id", "ex"),
        Query::all()
            .eq("context.user", "stanley")
            .eq("parent", Value::Null),
    ];
    for q in queries {
        let mut want: Vec<String> = all
            .iter()
            .filter(|d| q.matches(d))
            .map(|d| d["id"].as_str().unwrap_or_default().to_string())
            .collect();
        want.sort();
        assert_eq!(
            id_set(s, Collection::Executions, &q).await,
            want,
            "find {q:?}"
        );
    }
    // The reference semantics themselves, so the table above cannot pass vacuously.
    let q = Query::all().eq("parent", Value::Null);
    assert_eq!(all.iter().filter(|d| q.matches(d)).count(), 3);
}

/// Sorting on string, number and dotted fields, both ways; `id` ascending by default.
pub async fn sorting(store: Arc<dyn Store>) {
    let s = &*store;
    for (id, name, refs) in [
        ("t3", "b", 3),
        ("t1", "ab", 10),
        ("t2", "c", 1),
        ("t4", "a", 2),
    ] {
        save(s, trigger(id, name, refs)).await;
    }
    let coll = Collection::Triggers;
    let cases: &[(Query, &[&str])] = &[
        (Query::all(), &["t1", "t2", "t3", "t4"]),
        (Query::all().sort("id", true), &["t4", "t3", "t2", "t1"]),
        (Query::all().sort("name", false), &["t4", "t1", "t3", "t2"]),
        (Query::all().sort("name", true), &["t2", "t3", "t1", "t4"]),
        (
            Query::all().sort("ref_count", false),
            &["t2", "t4", "t3", "t1"],
        ),
        (
            Query::all().sort("ref_count", true),
            &["t1", "t3", "t4", "t2"],
        ),
        (Query::all().sort("ref", true), &["t2", "t3", "t1", "t4"]),
        (
            Query::all()
                .sort("ref_count", true)
                .eq("type", "core.st2.webhook"),
            &["t1", "t3", "t4", "t2"],
        ),
    ];
    for (q, want) in cases {
        assert_eq!(ids(s, coll, q).await, strs(want), "find {q:?}");
    }

    let mut r1 = rule("p", "r1", "b.type");
    r1.id = "r1".into();
    let mut r2 = rule("p", "r2", "a.type");
    r2.id = "r2".into();
    let mut r3 = rule("p", "r3", "c.type");
    r3.id = "r3".into();
    for r in [r1, r2, r3] {
        save(s, r).await;
    }
    let q = Query::all().sort("trigger.type", false);
    assert_eq!(
        ids(s, Collection::Rules, &q).await,
        strs(&["r2", "r1", "r3"]),
        "dotted sort asc"
    );
    let q = Query::all().sort("trigger.type", true);
    assert_eq!(
        ids(s, Collection::Rules, &q).await,
        strs(&["r3", "r1", "r2"]),
        "dotted sort desc"
    );
}

/// `limit`/`offset` page the sorted result; `count` ignores sort and paging.
pub async fn paging_and_count(store: Arc<dyn Store>) {
    let s = &*store;
    let all: Vec<String> = (0..7).map(|i| format!("kv{i}")).collect();
    for (i, id) in all.iter().enumerate() {
        let mut pair = kv(id, &format!("key{i}"));
        pair.ttl = Some(100 - i as u64);
        save(s, pair).await;
    }
    let coll = Collection::KeyValuePairs;
    let page = |offset, limit| Query::all().page(offset, limit);
    let cases: &[(Query, &[&str])] = &[
        (page(0, Some(3)), &["kv0", "kv1", "kv2"]),
        (page(3, Some(3)), &["kv3", "kv4", "kv5"]),
        (page(6, Some(3)), &["kv6"]),
        (page(7, Some(3)), &[]),
        (page(100, None), &[]),
        (page(5, None), &["kv5", "kv6"]),
        (
            page(0, Some(100)),
            &["kv0", "kv1", "kv2", "kv3", "kv4", "kv5", "kv6"],
        ),
        (
            Query::all().sort("ttl", false).page(1, Some(2)),
            &["kv5", "kv4"],
        ),
        (
            Query::all().sort("ttl", true).page(1, Some(2)),
            &["kv1", "kv2"],
        ),
        (
            Query::all()
                .prefix("name", "key")
                .sort("name", true)
                .page(2, Some(1)),
            &["kv4"],
        ),
    ];
    for (q, want) in cases {
        assert_eq!(ids(s, coll, q).await, strs(want), "find {q:?}");
    }
    let q = Query::all().sort("ttl", true).page(2, Some(1));
    assert_eq!(count(s, coll, &q).await, 7, "count ignores paging and sort");
    let q = Query::all()
        .is_in("name", vec![json!("key1"), json!("key2")])
        .page(1, Some(1));
    assert_eq!(count(s, coll, &q).await, 2, "count applies filters only");
    let q = Query::all().page(0, Some(2));
    assert_eq!(
        repo::<KeyValuePair>(s).count(&q).await.expect("count"),
        7,
        "typed count"
    );
}

/// `Repo::get_by_ref` and `get_by_ref_or_id` (id wins over ref).
pub async fn get_by_ref_and_id(store: Arc<dyn Store>) {
    let s = &*store;
    let local = save(s, action("core", "local")).await;
    let remote = save(s, action("core", "remote")).await;
    let mut odd = action("other", "thing");
    odd.id = "core.remote".into();
    let odd = save(s, odd).await;
    let r = repo::<Action>(s);

    let by_ref = r.get_by_ref("core.local").await.expect("get_by_ref");
    assert_eq!(by_ref.as_ref(), Some(&local), "get_by_ref");
    assert!(
        r.get_by_ref("core.nope")
            .await
            .expect("get_by_ref")
            .is_none(),
        "missing ref"
    );
    assert!(
        r.get_by_ref(&local.id).await.expect("get_by_ref").is_none(),
        "an id is not a ref"
    );

    let got = r.get_by_ref_or_id(&local.id).await.expect("by id");
    assert_eq!(got.as_ref(), Some(&local), "get_by_ref_or_id with an id");
    let got = r.get_by_ref_or_id("core.local").await.expect("by ref");
    assert_eq!(got.as_ref(), Some(&local), "get_by_ref_or_id with a ref");
    let got = r
        .get_by_ref_or_id("core.remote")
        .await
        .expect("by id first");
    assert_eq!(
        got.as_ref(),
        Some(&odd),
        "an id matching another doc's ref wins"
    );
    let got = r.get_by_ref("core.remote").await.expect("by ref");
    assert_eq!(got.as_ref(), Some(&remote), "get_by_ref ignores ids");
    assert!(
        r.get_by_ref_or_id("nope").await.expect("missing").is_none(),
        "missing ref or id"
    );
    let other = repo::<Rule>(s)
        .get_by_ref_or_id("core.local")
        .await
        .expect("other collection");
    assert!(other.is_none(), "refs are per collection");
}

/// A batch lands whole or not at all, and applies its writes in order.
pub async fn apply_is_atomic(store: Arc<dyn Store>) {
    let s = &*store;
    let mut keep = action("core", "keep");
    keep.id = "keep".into();
    let keep = save(s, keep).await;
    let keep_rule = {
        let mut r = rule("core", "keep", "core.st2.webhook");
        r.id = "keep-rule".into();
        save(s, r).await
    };
    let snapshot = |s: Arc<dyn Store>| async move {
        let mut out = Vec::new();
        for coll in [
            Collection::Actions,
            Collection::Rules,
            Collection::Executions,
        ] {
            out.push(s.find(coll, &Query::all()).await.expect("find"));
        }
        out
    };
    let before = snapshot(store.clone()).await;

    let put = |coll, doc: Value| Write::Put {
        collection: coll,
        doc,
    };
    let new_action = |id: &str| {
        let mut a = action("core", id);
        a.id = id.into();
        put(
            Collection::Actions,
            serde_json::to_value(a).expect("serialise"),
        )
    };
    let new_execution = |id: &str| {
        let ex = execution(id, ExecutionStatus::Requested);
        put(
            Collection::Executions,
            serde_json::to_value(ex).expect("serialise"),
        )
    };
    let invalid_docs = [
        json!([1, 2]),
        json!("a string"),
        Value::Null,
        json!({"name": "no id"}),
        json!({"id": ""}),
        json!({"id": 42}),
        json!({"id": null}),
    ];
    for (n, bad) in invalid_docs.into_iter().enumerate() {
        let mut batch = vec![
            new_action("a1"),
            new_execution("e1"),
            Write::Delete {
                collection: Collection::Actions,
                id: keep.id.clone(),
            },
            Write::Delete {
                collection: Collection::Rules,
                id: keep_rule.id.clone(),
            },
            new_action("a2"),
        ];
        // The invalid put goes first, in the middle or last.
        batch.insert([0, 2, 5][n % 3], put(Collection::Actions, bad.clone()));
        match s.apply(batch).await {
            Err(StoreError::InvalidDocument { .. }) => {}
            other => panic!("batch with invalid put {bad} gave {other:?}, not InvalidDocument"),
        }
        assert_eq!(
            snapshot(store.clone()).await,
            before,
            "failed batch ({bad}) wrote something"
        );
    }

    s.apply(vec![]).await.expect("an empty batch is fine");
    s.apply(vec![
        new_action("a1"),
        new_execution("e1"),
        Write::Delete {
            collection: Collection::Actions,
            id: keep.id.clone(),
        },
        Write::Delete {
            collection: Collection::Rules,
            id: "not-there".into(),
        },
    ])
    .await
    .expect("valid batch");
    assert_eq!(
        id_set(s, Collection::Actions, &Query::all()).await,
        strs(&["a1"])
    );
    assert_eq!(
        id_set(s, Collection::Executions, &Query::all()).await,
        strs(&["e1"])
    );
    assert_eq!(
        id_set(s, Collection::Rules, &Query::all()).await,
        strs(&["keep-rule"])
    );

    // Later writes of a batch win over earlier ones.
    let mut v1 = action("core", "twice");
    v1.id = "twice".into();
    let mut v2 = v1.clone();
    v2.description = Some("second".into());
    s.apply(vec![
        put(
            Collection::Actions,
            serde_json::to_value(&v1).expect("serialise"),
        ),
        put(
            Collection::Actions,
            serde_json::to_value(&v2).expect("serialise"),
        ),
        new_action("gone"),
        Write::Delete {
            collection: Collection::Actions,
            id: "gone".into(),
        },
    ])
    .await
    .expect("ordered batch");
    let got = repo::<Action>(s).get("twice").await.expect("get");
    assert_eq!(got, Some(v2), "the last put of an id wins");
    assert!(
        s.get(Collection::Actions, "gone")
            .await
            .expect("get")
            .is_none(),
        "put then delete"
    );
}

/// Compare-and-set: success merges the patch; mismatch and missing documents give `None`.
pub async fn compare_and_set_basics(store: Arc<dyn Store>) {
    let s = &*store;
    let coll = Collection::Executions;
    let original = save(s, execution("ex", ExecutionStatus::Requested)).await;
    let r = repo::<Execution>(s);

    let p = patch(json!({"status": "scheduled", "lease_owner": "w1"}));
    let got = s
        .compare_and_set(coll, "ex", "status", &[json!("requested")], p)
        .await;
    let doc = got
        .expect("cas")
        .expect("cas on a matching status succeeds");
    assert_eq!(doc["status"], "scheduled");
    assert_eq!(doc["lease_owner"], "w1");
    assert_eq!(
        doc["parameters"],
        json!({"cmd": "date"}),
        "untouched fields are kept"
    );
    assert_eq!(
        s.get(coll, "ex").await.expect("get"),
        Some(doc.clone()),
        "returned doc is stored"
    );

    let p = patch(json!({"status": "running"}));
    let got = s
        .compare_and_set(coll, "ex", "status", &[json!("requested")], p)
        .await;
    assert_eq!(got.expect("cas"), None, "cas on a stale status fails");
    assert_eq!(
        s.get(coll, "ex").await.expect("get"),
        Some(doc),
        "failed cas changes nothing"
    );

    let p = patch(json!({"status": "running"}));
    let ok = r
        .compare_and_set("ex", "status", &[json!("delayed"), json!("scheduled")], p)
        .await;
    let ex = ok.expect("typed cas").expect("any expected value matches");
    assert_eq!(ex.status, ExecutionStatus::Running);
    assert_eq!(ex.lease_owner.as_deref(), Some("w1"));
    assert_eq!(ex.action, original.action);

    let p = patch(json!({"status": "running"}));
    let got = s
        .compare_and_set(coll, "nope", "status", &[json!("requested")], p)
        .await;
    assert_eq!(got.expect("cas"), None, "cas on a missing document");
    assert!(
        s.get(coll, "nope").await.expect("get").is_none(),
        "cas does not create documents"
    );

    let p = patch(json!({"status": "failed"}));
    let got = s.compare_and_set(coll, "ex", "status", &[], p).await;
    assert_eq!(got.expect("cas"), None, "nothing expected, nothing matches");

    // Dotted fields.
    let p = patch(json!({"result": {"ok": true}}));
    let got = s
        .compare_and_set(coll, "ex", "liveaction.action", &[json!("core.local")], p)
        .await;
    let doc = got.expect("cas").expect("cas on a dotted field");
    assert_eq!(doc["result"], json!({"ok": true}));
    let p = patch(json!({"result": null}));
    let got = s
        .compare_and_set(coll, "ex", "liveaction.action", &[json!("other")], p)
        .await;
    assert_eq!(got.expect("cas"), None, "dotted mismatch");

    // A null value sets the field to null (it is not removed); keys that are not identifiers.
    let p = patch(json!({"result": null, "on-complete": {"a": [1, 2.5, "x\"y"]}}));
    let got = s
        .compare_and_set(coll, "ex", "status", &[json!("running")], p)
        .await;
    let doc = got.expect("cas").expect("cas on the current status");
    assert_eq!(
        doc.get("result"),
        Some(&Value::Null),
        "null is set, not removed"
    );
    assert_eq!(doc["on-complete"], json!({"a": [1, 2.5, "x\"y"]}));
    assert_eq!(doc["lease_owner"], "w1", "untouched fields are kept");
    assert_eq!(
        s.get(coll, "ex").await.expect("get"),
        Some(doc),
        "returned doc is stored"
    );

    // A missing field equals null: the lease pattern.
    save(s, execution("free", ExecutionStatus::Scheduled)).await;
    let take = |owner: &str| patch(json!({"lease_owner": owner}));
    let got = s
        .compare_and_set(coll, "free", "lease_owner", &[Value::Null], take("a"))
        .await;
    assert!(
        got.expect("cas").is_some(),
        "missing field matches expected null"
    );
    let got = s
        .compare_and_set(coll, "free", "lease_owner", &[Value::Null], take("b"))
        .await;
    assert_eq!(got.expect("cas"), None, "taken lease");
    let got = s.get(coll, "free").await.expect("get").expect("exists");
    assert_eq!(got["lease_owner"], "a");
}

/// `append` adds items at the end of array fields (a missing or null one starts empty),
/// leaves the other fields alone, and refuses what is not an array without writing anything.
pub async fn append_basics(store: Arc<dyn Store>) {
    let s = &*store;
    let coll = Collection::Traces;
    let items = |v: Value| v.as_object().cloned().unwrap_or_default();
    assert!(
        !s.append(coll, "none", items(json!({"rules": [1]})))
            .await
            .expect("append"),
        "a missing document is not created"
    );
    assert!(s.get(coll, "none").await.expect("get").is_none());
    let long = "y".repeat(200);
    s.put(
        coll,
        json!({"id": "t1", "trace_tag": "tag", "trigger_instances": [{"object_id": "a"}],
            "rules": null, "note": long, "n": 5}),
    )
    .await
    .expect("put");
    assert!(s
        .append(
            coll,
            "t1",
            items(
                json!({"trigger_instances": [{"object_id": "b"}, {"object_id": "c"}],
                "rules": ["r"], "action_executions": ["e"]})
            )
        )
        .await
        .expect("append"));
    let want = json!({"id": "t1", "trace_tag": "tag",
        "trigger_instances": [{"object_id": "a"}, {"object_id": "b"}, {"object_id": "c"}],
        "rules": ["r"], "note": long, "n": 5, "action_executions": ["e"]});
    assert_eq!(s.get(coll, "t1").await.expect("get"), Some(want.clone()));
    for bad in [json!({"n": [1]}), json!({"rules": "not a list"})] {
        assert!(
            s.append(coll, "t1", items(bad.clone())).await.is_err(),
            "{bad} is refused"
        );
    }
    assert_eq!(
        s.get(coll, "t1").await.expect("get"),
        Some(want),
        "unchanged"
    );
    // Found by its other fields as before.
    assert_eq!(
        id_set(s, coll, &Query::all().eq("trace_tag", "tag")).await,
        strs(&["t1"])
    );
}

/// `apply_each` applies every write, in order (a later write of the same id wins); an invalid
/// write is refused before anything is written.
pub async fn apply_each_in_order(store: Arc<dyn Store>) {
    let s = &*store;
    let coll = Collection::Traces;
    let put = |doc: Value| Write::Put {
        collection: coll,
        doc,
    };
    s.apply_each(vec![
        put(json!({"id": "a", "n": 1})),
        put(json!({"id": "b", "n": 1})),
        put(json!({"id": "a", "n": 2})),
        Write::Delete {
            collection: coll,
            id: "b".into(),
        },
    ])
    .await
    .expect("apply_each");
    assert_eq!(
        s.get(coll, "a").await.expect("get"),
        Some(json!({"id": "a", "n": 2}))
    );
    assert!(s.get(coll, "b").await.expect("get").is_none());
    let refused = s
        .apply_each(vec![put(json!({"id": "c"})), put(json!({"no": "id"}))])
        .await;
    assert!(refused.is_err());
    assert!(
        s.get(coll, "c").await.expect("get").is_none(),
        "validated first"
    );
}

/// Appends racing on one document all land, each once.
pub async fn append_race(store: Arc<dyn Store>) {
    let coll = Collection::Traces;
    store
        .put(coll, json!({"id": "t", "trace_tag": "race", "rules": []}))
        .await
        .expect("put");
    let mut tasks = Vec::new();
    for i in 0..24 {
        let s = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            let items = json!({"rules": [i]})
                .as_object()
                .cloned()
                .unwrap_or_default();
            s.append(coll, "t", items).await.expect("append")
        }));
    }
    for t in tasks {
        assert!(t.await.expect("task"));
    }
    let doc = store.get(coll, "t").await.expect("get").expect("exists");
    let mut got: Vec<i64> = doc["rules"]
        .as_array()
        .expect("rules")
        .iter()
        .filter_map(Value::as_i64)
        .collect();
    got.sort_unstable();
    assert_eq!(got, (0..24).collect::<Vec<_>>());
}

/// [`Store::set_if`] agrees with [`Store::compare_and_set`]: merges on a match (a field in
/// chunks or not, a missing field as null), changes nothing otherwise, creates nothing; of
/// racing callers exactly one wins.
pub async fn set_if_basics(store: Arc<dyn Store>) {
    let s = &*store;
    let coll = Collection::Executions;
    save(s, execution("ex", ExecutionStatus::Requested)).await;
    let p = patch(json!({"status": "scheduled", "lease_owner": "w1"}));
    assert!(s
        .set_if(
            coll,
            "ex",
            "status",
            &[json!("delayed"), json!("requested")],
            p
        )
        .await
        .expect("set_if"));
    let doc = s.get(coll, "ex").await.expect("get").expect("exists");
    assert_eq!(
        (doc["status"].clone(), doc["lease_owner"].clone()),
        (json!("scheduled"), json!("w1"))
    );
    assert_eq!(
        doc["parameters"],
        json!({"cmd": "date"}),
        "untouched fields are kept"
    );

    let p = patch(json!({"status": "running"}));
    assert!(!s
        .set_if(coll, "ex", "status", &[json!("requested")], p)
        .await
        .expect("set_if"));
    assert_eq!(
        s.get(coll, "ex").await.expect("get"),
        Some(doc),
        "a mismatch changes nothing"
    );
    let p = patch(json!({"status": "running"}));
    assert!(!s
        .set_if(coll, "nope", "status", &[json!("requested")], p)
        .await
        .expect("set_if"));
    assert!(
        s.get(coll, "nope").await.expect("get").is_none(),
        "set_if creates nothing"
    );
    let p = patch(json!({"status": "running"}));
    assert!(!s
        .set_if(coll, "ex", "status", &[], p)
        .await
        .expect("set_if"));

    // A large value, then a small one in its place (a backend that chunks must let go of it).
    let big = json!({"stdout": "x".repeat(3 << 20)});
    let p = patch(json!({"result": big}));
    assert!(s
        .set_if(coll, "ex", "status", &[json!("scheduled")], p)
        .await
        .expect("set_if"));
    assert_eq!(
        s.get(coll, "ex").await.expect("get").expect("exists")["result"],
        big
    );
    let p = patch(json!({"result": {"ok": true}, "status": "running"}));
    assert!(s
        .set_if(coll, "ex", "status", &[json!("scheduled")], p)
        .await
        .expect("set_if"));
    let doc = s.get(coll, "ex").await.expect("get").expect("exists");
    assert_eq!(
        (doc["result"].clone(), doc["status"].clone()),
        (json!({"ok": true}), json!("running"))
    );

    // A missing field equals null.
    save(s, execution("free", ExecutionStatus::Scheduled)).await;
    let take = |owner: &str| patch(json!({"lease_owner": owner}));
    assert!(s
        .set_if(coll, "free", "lease_owner", &[Value::Null], take("a"))
        .await
        .expect("set_if"));
    assert!(!s
        .set_if(coll, "free", "lease_owner", &[Value::Null], take("b"))
        .await
        .expect("set_if"));

    // Racing callers: one winner.
    save(s, execution("race", ExecutionStatus::Requested)).await;
    let mut tasks = Vec::new();
    for i in 0..16 {
        let st = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            let p = patch(json!({"status": "scheduled", "lease_owner": format!("w{i}")}));
            st.set_if(coll, "race", "status", &[json!("requested")], p)
                .await
                .expect("set_if")
        }));
    }
    let mut wins = 0;
    for t in tasks {
        wins += usize::from(t.await.expect("join"));
    }
    assert_eq!(wins, 1, "exactly one racing set_if wins");
}

/// 32 tasks race one execution from `requested` to `scheduled`: exactly one wins.
pub async fn compare_and_set_race(store: Arc<dyn Store>) {
    cas_race(&[store], 32).await;
}

/// `contenders` tasks, spread over `stores` (handles on the same data), all try to move one
/// execution from `requested` to `scheduled` with their own `lease_owner`. Exactly one must
/// win, every handle must see the winner's marker, and the chain
/// scheduled → running → succeeded must then go through while a stale CAS fails.
pub async fn cas_race(stores: &[Arc<dyn Store>], contenders: usize) {
    assert!(
        !stores.is_empty() && contenders >= 2,
        "cas_race needs stores and contenders"
    );
    let coll = Collection::Executions;
    let id = new_id();
    save(&*stores[0], execution(&id, ExecutionStatus::Requested)).await;

    let barrier = Arc::new(tokio::sync::Barrier::new(contenders));
    let mut tasks = Vec::with_capacity(contenders);
    for i in 0..contenders {
        let store = Arc::clone(&stores[i % stores.len()]);
        let barrier = Arc::clone(&barrier);
        let id = id.clone();
        tasks.push(tokio::spawn(async move {
            let marker = format!("worker-{i}");
            let p = patch(json!({"status": "scheduled", "lease_owner": marker}));
            barrier.wait().await;
            let won = store
                .compare_and_set(coll, &id, "status", &[json!("requested")], p)
                .await;
            (marker, won)
        }));
    }
    let mut winners = Vec::new();
    for t in tasks {
        let (marker, won) = t.await.expect("contender task");
        match won {
            Ok(Some(doc)) => {
                assert_eq!(
                    doc["lease_owner"],
                    marker.as_str(),
                    "winner gets its own patch"
                );
                winners.push(marker);
            }
            Ok(None) => {}
            Err(e) => panic!("{marker}: compare_and_set failed instead of losing: {e}"),
        }
    }
    assert_eq!(
        winners.len(),
        1,
        "exactly one contender must win, got {winners:?}"
    );
    let winner = &winners[0];
    for (n, s) in stores.iter().enumerate() {
        let ex = repo::<Execution>(&**s)
            .get(&id)
            .await
            .expect("get")
            .expect("exists");
        assert_eq!(ex.status, ExecutionStatus::Scheduled, "handle {n}");
        assert_eq!(
            ex.lease_owner.as_ref(),
            Some(winner),
            "handle {n} sees the winner's marker"
        );
    }

    let step = |n: usize, from: &str, to: &str| {
        let s = Arc::clone(&stores[n % stores.len()]);
        let (id, from, to) = (id.clone(), json!(from), json!(to));
        async move {
            let p = patch(json!({"status": to}));
            s.compare_and_set(coll, &id, "status", &[from], p)
                .await
                .expect("cas")
        }
    };
    assert!(
        step(1, "scheduled", "running").await.is_some(),
        "scheduled → running"
    );
    assert!(
        step(2, "requested", "scheduled").await.is_none(),
        "stale cas from requested"
    );
    assert!(
        step(3, "scheduled", "running").await.is_none(),
        "stale cas from scheduled"
    );
    assert!(
        step(4, "running", "succeeded").await.is_some(),
        "running → succeeded"
    );
    assert!(
        step(5, "requested", "running").await.is_none(),
        "stale cas after completion"
    );
    for (n, s) in stores.iter().enumerate() {
        let ex = repo::<Execution>(&**s)
            .get(&id)
            .await
            .expect("get")
            .expect("exists");
        assert_eq!(
            ex.status,
            ExecutionStatus::Succeeded,
            "handle {n} sees the final status"
        );
        assert_eq!(
            ex.lease_owner.as_ref(),
            Some(winner),
            "later patches keep the marker"
        );
    }
}

/// 16 tasks race to create one lease document: exactly one insert wins, the stored document is
/// the winner's, and a later insert of the same id changes nothing.
pub async fn insert_new_race(store: Arc<dyn Store>) {
    let coll = Collection::Leases;
    let barrier = Arc::new(tokio::sync::Barrier::new(16));
    let mut tasks = Vec::new();
    for i in 0..16 {
        let (store, barrier) = (Arc::clone(&store), Arc::clone(&barrier));
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let doc = json!({"id": "timersengine", "holder": format!("node-{i}")});
            (i, store.insert_new(coll, doc).await.expect("insert_new"))
        }));
    }
    let mut winners = Vec::new();
    for t in tasks {
        let (i, won) = t.await.expect("contender task");
        if won {
            winners.push(format!("node-{i}"));
        }
    }
    assert_eq!(winners.len(), 1, "exactly one insert wins: {winners:?}");
    let stored = store
        .get(coll, "timersengine")
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(
        stored["holder"],
        winners[0].as_str(),
        "the winner's document is stored"
    );
    let again = store
        .insert_new(coll, json!({"id": "timersengine", "holder": "late"}))
        .await
        .expect("insert_new");
    assert!(!again, "a second insert of an existing id loses");
    let stored = store
        .get(coll, "timersengine")
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(
        stored["holder"],
        winners[0].as_str(),
        "the losing insert changed nothing"
    );
    let bad = store.insert_new(coll, json!({"holder": "no id"})).await;
    assert!(
        matches!(bad, Err(StoreError::InvalidDocument { .. })),
        "a document without an id is refused: {bad:?}"
    );
}
