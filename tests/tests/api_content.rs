//! The content API through the real router: rules (CRUD, validation as registration does it,
//! the shapes `st2 rule list` asks for), a rule created through the API firing on its webhook
//! with its enforcement, trigger instance and trace listed by the CLI's filters, trigger types
//! and triggers, trigger instance re-emit, policies and policy types.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use st2_core::model::{Rule, Trigger, TriggerInstance};
use st2_core::store::{repo, Query};
use st2_tests::api::Harness;

/// A rule on `core.st2.webhook` as `st2 rule create` posts it (YAML loaded, sent as JSON).
fn webhook_rule(name: &str, url: &str, enabled: bool) -> Value {
    json!({
        "name": name,
        "pack": "apitest",
        "description": "fires on a webhook",
        "enabled": enabled,
        "trigger": {"type": "core.st2.webhook", "parameters": {"url": url}},
        "criteria": {"trigger.body.k": {"type": "equals", "pattern": "v"}},
        "action": {"ref": "core.local", "parameters": {"cmd": "echo {{ trigger.body.k }}"}}
    })
}

fn ids(body: &Value) -> Vec<String> {
    body.as_array()
        .expect("a list")
        .iter()
        .map(|v| v["id"].as_str().expect("id").to_string())
        .collect()
}

async fn rule_count(h: &Harness) -> u64 {
    repo::<Rule>(&*h.platform.ctx.store)
        .count(&Query::all())
        .await
        .expect("count")
}

async fn trigger_count(h: &Harness) -> u64 {
    repo::<Trigger>(&*h.platform.ctx.store)
        .count(&Query::all())
        .await
        .expect("count")
}

#[tokio::test]
async fn rule_crud_round_trip() {
    let h = Harness::start().await;
    let created = h
        .post("/api/v1/rules", webhook_rule("hook", "crud/hook", true))
        .await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    let rule = created.body;
    let id = rule["id"].as_str().expect("id").to_string();
    assert_eq!(rule["ref"], "apitest.hook");
    assert_eq!(rule["uid"], "rule:apitest:hook");
    assert_eq!(rule["type"], json!({"ref": "standard", "parameters": {}}));
    assert_eq!(rule["tags"], json!([]));
    assert_eq!(rule["enabled"], true);
    let trigger_ref = rule["trigger"]["ref"].as_str().expect("trigger.ref");
    assert!(trigger_ref.starts_with("core."), "{trigger_ref}");
    assert_eq!(rule["trigger"]["type"], "core.st2.webhook");
    assert_eq!(rule["action"]["ref"], "core.local");
    assert_eq!(rule["context"]["user"], "st2admin");

    // The rule's trigger exists, as registration would have made it: the webhook is live.
    let hook = h.get("/api/v1/webhooks/crud/hook").await;
    assert_eq!(hook.status, 200, "{:?}", hook.body);
    assert_eq!(hook.body["ref"], trigger_ref);
    assert_eq!(hook.body["parameters"]["url"], "crud/hook");

    // `pack` defaults to `default`.
    let mut defaulted = webhook_rule("other", "crud/other", false);
    defaulted.as_object_mut().expect("object").remove("pack");
    let other = h.post("/api/v1/rules", defaulted).await;
    assert_eq!(other.status, 201, "{:?}", other.body);
    assert_eq!(other.body["ref"], "default.other");
    assert_eq!(other.body["enabled"], false);

    // Get by ref and by id (with the trailing slash the CLI sends).
    for key in ["apitest.hook", id.as_str()] {
        let got = h.get(&format!("/api/v1/rules/{key}/")).await;
        assert_eq!(got.status, 200);
        assert_eq!(got.body, rule);
    }
    let missing = h.get("/api/v1/rules/apitest.nope").await;
    assert_eq!(missing.status, 404);
    assert!(missing.body["faultstring"]
        .as_str()
        .is_some_and(|s| s.contains("apitest.nope")));

    // `st2 rule list` and `st2 rule list --iftt`.
    let listed = h
        .get("/api/v1/rules/?include_attributes=ref,pack,description,enabled&limit=50&pack=apitest")
        .await;
    assert_eq!(listed.status, 200);
    assert_eq!(listed.headers["x-total-count"], "1");
    assert_eq!(
        listed.body,
        json!([{"id": id, "ref": "apitest.hook", "pack": "apitest",
                "description": "fires on a webhook", "enabled": true}])
    );
    let iftt = h
        .get("/api/v1/rules/?include_attributes=ref,trigger.ref,action.ref,enabled&pack=apitest")
        .await;
    assert_eq!(
        iftt.body,
        json!([{"id": id, "ref": "apitest.hook", "trigger": {"ref": trigger_ref},
                "action": {"ref": "core.local"}, "enabled": true}])
    );

    // Filters: action, trigger (type or trigger ref), enabled as Python booleans, name. The
    // bundled packs have rules too: check every item matches and ours are (not) there.
    let other_id = other.body["id"].as_str().expect("id").to_string();
    let check = |body: &Value, field: &str, want: Value, has: &[&str], lacks: &[&str]| {
        let items = body.as_array().expect("list");
        for it in items {
            let got = field.split('.').fold(it, |v, k| &v[k]);
            assert_eq!(got, &want, "{field} of {it}");
        }
        let found = ids(body);
        for h in has {
            assert!(found.iter().any(|f| f == h), "{h} missing from {found:?}");
        }
        for l in lacks {
            assert!(!found.iter().any(|f| f == l), "{l} in {found:?}");
        }
    };
    let by_action = h.get("/api/v1/rules?action=core.local").await;
    check(
        &by_action.body,
        "action.ref",
        json!("core.local"),
        &[&id, &other_id],
        &[],
    );
    let by_type = h.get("/api/v1/rules?trigger=core.st2.webhook").await;
    check(
        &by_type.body,
        "trigger.type",
        json!("core.st2.webhook"),
        &[&id, &other_id],
        &[],
    );
    let by_trigger = h.get(&format!("/api/v1/rules?trigger={trigger_ref}")).await;
    assert_eq!(ids(&by_trigger.body), vec![id.clone()]);
    assert_eq!(by_trigger.headers["x-total-count"], "1");
    let enabled = h.get("/api/v1/rules?enabled=True&action=core.local").await;
    check(&enabled.body, "enabled", json!(true), &[&id], &[&other_id]);
    let disabled = h.get("/api/v1/rules?enabled=False&action=core.local").await;
    check(
        &disabled.body,
        "enabled",
        json!(false),
        &[&other_id],
        &[&id],
    );
    let by_name = h.get("/api/v1/rules?name=hook").await;
    assert_eq!(ids(&by_name.body), vec![id.clone()]);

    // `st2 rule disable`: the whole object, `enabled` flipped, without `ref`.
    let mut put = rule.clone();
    put["enabled"] = json!(false);
    put.as_object_mut().expect("object").remove("ref");
    let disabled = h.put(&format!("/api/v1/rules/{id}"), put).await;
    assert_eq!(disabled.status, 200, "{:?}", disabled.body);
    assert_eq!(disabled.body["enabled"], false);
    assert_eq!(disabled.body["id"], id.as_str());
    assert_eq!(disabled.body["ref"], "apitest.hook");
    assert_eq!(
        h.get("/api/v1/rules/apitest.hook").await.body["enabled"],
        false
    );
    let mut put = disabled.body.clone();
    put["enabled"] = json!(true);
    put.as_object_mut().expect("object").remove("ref");
    let enabled = h.put("/api/v1/rules/apitest.hook", put).await;
    assert_eq!(enabled.status, 200, "{:?}", enabled.body);
    assert_eq!(enabled.body["enabled"], true);

    // `st2 rule update`: a new webhook url moves the trigger; the old one is gone.
    let mut changed = webhook_rule("hook", "crud/moved", true);
    changed["id"] = json!(id);
    let moved = h.put(&format!("/api/v1/rules/{id}"), changed).await;
    assert_eq!(moved.status, 200, "{:?}", moved.body);
    assert_ne!(moved.body["trigger"]["ref"], trigger_ref);
    assert_eq!(h.get("/api/v1/webhooks/crud/hook").await.status, 404);
    assert_eq!(h.get("/api/v1/webhooks/crud/moved").await.status, 200);
    assert_eq!(rule_count(&h).await, 2 + bundled_rules(&h).await);

    // A duplicate `pack.name` is a 409, whether created or renamed into.
    let dup = h
        .post("/api/v1/rules", webhook_rule("hook", "crud/dup", true))
        .await;
    assert_eq!(dup.status, 409, "{:?}", dup.body);
    assert!(dup.body["faultstring"]
        .as_str()
        .is_some_and(|s| s.contains("apitest.hook")));
    assert_eq!(
        dup.body["conflict-id"],
        id.as_str(),
        "StackStorm's conflict-id"
    );
    let mut rename = other.body.clone();
    rename["pack"] = json!("apitest");
    rename["name"] = json!("hook");
    let clash = h
        .put(
            &format!("/api/v1/rules/{}", other.body["id"].as_str().expect("id")),
            rename,
        )
        .await;
    assert_eq!(clash.status, 409, "{:?}", clash.body);
    assert_eq!(h.get("/api/v1/webhooks/crud/dup").await.status, 404);

    // Delete: 204, then 404; its webhook trigger goes with it.
    let deleted = h.delete("/api/v1/rules/apitest.hook").await;
    assert_eq!(deleted.status, 204);
    assert_eq!(h.get(&format!("/api/v1/rules/{id}")).await.status, 404);
    assert_eq!(h.get("/api/v1/webhooks/crud/moved").await.status, 404);
    assert_eq!(h.delete("/api/v1/rules/apitest.hook").await.status, 404);
}

/// Rules that registration put in the store (bundled packs).
async fn bundled_rules(h: &Harness) -> u64 {
    repo::<Rule>(&*h.platform.ctx.store)
        .find(&Query::all())
        .await
        .expect("rules")
        .iter()
        .filter(|r| r.pack != "apitest" && r.pack != "default")
        .count() as u64
}

#[tokio::test]
async fn invalid_rules_are_400s_naming_the_field_and_store_nothing() {
    let h = Harness::start().await;
    let (rules_before, triggers_before) = (rule_count(&h).await, trigger_count(&h).await);

    let mut unknown_type = webhook_rule("bad1", "bad/1", true);
    unknown_type["trigger"]["type"] = json!("nope.missing");
    let mut unknown_op = webhook_rule("bad2", "bad/2", true);
    unknown_op["criteria"] = json!({"trigger.body.k": {"type": "roughly", "pattern": "v"}});
    let mut no_name = webhook_rule("bad3", "bad/3", true);
    no_name.as_object_mut().expect("object").remove("name");
    let mut no_url = webhook_rule("bad4", "bad/4", true);
    no_url["trigger"]["parameters"] = json!({"path": "x"});
    let mut bad_action = webhook_rule("bad5", "bad/5", true);
    bad_action["action"]["ref"] = json!("nodot");
    let mut bad_type = webhook_rule("bad6", "bad/6", true);
    bad_type["type"] = json!({"ref": "sometimes"});

    let cases = [
        (unknown_type, &["trigger.type", "nope.missing"][..]),
        (unknown_op, &["criteria", "roughly"][..]),
        (no_name, &["name"][..]),
        (no_url, &["trigger.parameters", "url"][..]),
        (bad_action, &["action", "nodot"][..]),
        (bad_type, &["type", "sometimes"][..]),
    ];
    for (body, words) in cases {
        let answer = h.post("/api/v1/rules", body.clone()).await;
        assert_eq!(answer.status, 400, "{body}: {:?}", answer.body);
        let fault = answer.body["faultstring"].as_str().expect("faultstring");
        for w in words {
            assert!(fault.contains(w), "{fault:?} should name {w:?}");
        }
    }
    assert_eq!(rule_count(&h).await, rules_before);
    assert_eq!(trigger_count(&h).await, triggers_before);
    for url in ["bad/1", "bad/2", "bad/3", "bad/4", "bad/5", "bad/6"] {
        assert_eq!(h.get(&format!("/api/v1/webhooks/{url}")).await.status, 404);
    }

    // An update that breaks the rule is refused too, and leaves it as it was.
    let ok = h
        .post("/api/v1/rules", webhook_rule("good", "good/1", true))
        .await;
    assert_eq!(ok.status, 201);
    let mut broken = ok.body.clone();
    broken["trigger"]["parameters"] = json!({"url": 5});
    let refused = h.put("/api/v1/rules/apitest.good", broken).await;
    assert_eq!(refused.status, 400, "{:?}", refused.body);
    assert!(refused.body["faultstring"]
        .as_str()
        .is_some_and(|s| s.contains("trigger.parameters")));
    assert_eq!(h.get("/api/v1/rules/apitest.good").await.body, ok.body);
}

/// Posts to a webhook, answering 202.
async fn fire(h: &Harness, url: &str, body: Value) {
    let answer = h.post(&format!("/api/v1/webhooks/{url}"), body).await;
    assert_eq!(answer.status, 202, "{:?}", answer.body);
}

#[tokio::test]
async fn rule_created_through_the_api_fires_on_its_webhook() {
    let h = Harness::start().await;
    let created = h
        .post("/api/v1/rules", webhook_rule("fire", "api/fire", true))
        .await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    let rule_id = created.body["id"].as_str().expect("id").to_string();
    let trigger_ref = created.body["trigger"]["ref"]
        .as_str()
        .expect("trigger.ref")
        .to_string();

    // Fired at once: the rules engine reloads its rules before the next trigger instance.
    fire(&h, "api/fire", json!({"k": "v"})).await;
    let exec = h.wait_for("core.local", |e| e.status.is_completed()).await;
    let result = exec.result.clone().unwrap_or_default();
    assert_eq!(result["stdout"], "v", "{result:?}");

    // The enforcement, by rule ref, rule id, execution and trigger instance.
    let by_ref = h.get("/api/v1/ruleenforcements/?rule=apitest.fire").await;
    assert_eq!(by_ref.status, 200);
    let list = by_ref.body.as_array().expect("list").clone();
    assert_eq!(list.len(), 1, "{list:?}");
    let enforcement = &list[0];
    assert_eq!(enforcement["execution_id"], exec.id.as_str());
    assert_eq!(enforcement["rule"]["id"], rule_id.as_str());
    assert_eq!(enforcement["status"], "succeeded");
    let ti_id = enforcement["trigger_instance_id"]
        .as_str()
        .expect("trigger instance")
        .to_string();
    let eid = enforcement["id"].as_str().expect("id").to_string();
    for q in [
        format!("rule={rule_id}"),
        format!("execution={}", exec.id),
        format!("trigger_instance={ti_id}"),
    ] {
        let got = h.get(&format!("/api/v1/ruleenforcements?{q}")).await;
        assert_eq!(ids(&got.body), vec![eid.clone()], "{q}");
    }
    assert!(h
        .get("/api/v1/ruleenforcements?rule=apitest.other")
        .await
        .body
        .as_array()
        .is_some_and(Vec::is_empty));
    let one = h.get(&format!("/api/v1/ruleenforcements/{eid}")).await;
    assert_eq!(one.status, 200);
    assert_eq!(&one.body, enforcement);

    // The trigger instance.
    let instances = h
        .get(&format!("/api/v1/triggerinstances?trigger={trigger_ref}"))
        .await;
    assert_eq!(ids(&instances.body), vec![ti_id.clone()]);
    let ti = h.get(&format!("/api/v1/triggerinstances/{ti_id}")).await;
    assert_eq!(ti.status, 200);
    assert_eq!(ti.body["payload"]["body"], json!({"k": "v"}));
    assert_eq!(ti.body["trigger"], trigger_ref.as_str());
    let past = h
        .get("/api/v1/triggerinstances?timestamp_lt=2000-01-01T00:00:00Z")
        .await;
    assert!(past.body.as_array().is_some_and(Vec::is_empty));
    let recent = h
        .get(&format!(
            "/api/v1/triggerinstances?timestamp_gt=2000-01-01T00:00:00Z&trigger={trigger_ref}"
        ))
        .await;
    assert_eq!(ids(&recent.body), vec![ti_id.clone()]);

    // The trace, by execution, rule and trigger instance; one trace printed in detail by the
    // CLI needs object_id, ref and updated_at on every component.
    let mut trace_id = String::new();
    for q in [
        format!("execution={}", exec.id),
        format!("rule={rule_id}"),
        format!("trigger_instance={ti_id}"),
    ] {
        let got = h
            .get(&format!("/api/v1/traces/?limit=50&sort_desc=True&{q}"))
            .await;
        assert_eq!(got.status, 200);
        let traces = got.body.as_array().expect("list");
        assert_eq!(traces.len(), 1, "{q}: {traces:?}");
        trace_id = traces[0]["id"].as_str().expect("id").to_string();
        for kind in ["trigger_instances", "rules", "action_executions"] {
            let comps = traces[0][kind].as_array().expect("components");
            assert!(!comps.is_empty(), "{kind}");
            for c in comps {
                for field in ["object_id", "ref", "updated_at"] {
                    assert!(c[field].is_string(), "{kind}.{field}: {c}");
                }
            }
        }
    }
    let trace = h.get(&format!("/api/v1/traces/{trace_id}")).await;
    assert_eq!(trace.status, 200);
    let tag = trace.body["trace_tag"].as_str().expect("tag").to_string();
    let by_tag = h.get(&format!("/api/v1/traces?trace_tag={tag}")).await;
    assert_eq!(ids(&by_tag.body), vec![trace_id.clone()]);
    assert_eq!(
        h.get("/api/v1/traces/000000000000000000000000")
            .await
            .status,
        404
    );

    // Re-emit: a new trigger instance with the same payload, marked with its origin.
    let re = h
        .post(
            &format!("/api/v1/triggerinstances/{ti_id}/re_emit"),
            json!({}),
        )
        .await;
    assert_eq!(re.status, 200, "{:?}", re.body);
    assert_eq!(
        re.body["message"],
        format!("Trigger instance {ti_id} succesfully re-sent.")
    );
    assert_eq!(re.body["payload"]["body"], json!({"k": "v"}));
    let deadline = Instant::now() + Duration::from_secs(10);
    let again = loop {
        let all: Vec<TriggerInstance> = repo::<TriggerInstance>(&*h.platform.ctx.store)
            .find(&Query::all().eq("trigger", trigger_ref.as_str()))
            .await
            .expect("instances");
        if let Some(new) = all.into_iter().find(|t| t.id != ti_id) {
            break new;
        }
        assert!(Instant::now() < deadline, "no re-emitted instance");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(again.payload["body"], json!({"k": "v"}));
    assert_eq!(again.payload["__context"]["original_id"], ti_id.as_str());
    let listed = h
        .get(&format!("/api/v1/triggerinstances?trigger={trigger_ref}"))
        .await;
    assert_eq!(ids(&listed.body), vec![again.id.clone(), ti_id.clone()]);
    assert_eq!(
        h.post(
            "/api/v1/triggerinstances/000000000000000000000000/re_emit",
            json!({})
        )
        .await
        .status,
        404
    );

    // The re-emitted instance fired the rule too: wait for its enforcement.
    let deadline = Instant::now() + Duration::from_secs(10);
    while h
        .get("/api/v1/ruleenforcements?rule=apitest.fire")
        .await
        .body
        .as_array()
        .map_or(0, Vec::len)
        < 2
    {
        assert!(
            Instant::now() < deadline,
            "the re-emitted instance was not enforced"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A disabled rule no longer fires, from the next trigger instance on.
    let mut put = created.body.clone();
    put["enabled"] = json!(false);
    assert_eq!(
        h.put(&format!("/api/v1/rules/{rule_id}"), put).await.status,
        200
    );
    let before = h.get("/api/v1/ruleenforcements?rule=apitest.fire").await;
    fire(&h, "api/fire", json!({"k": "v"})).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let after = h.get("/api/v1/ruleenforcements?rule=apitest.fire").await;
    assert_eq!(
        before.body.as_array().map(Vec::len),
        after.body.as_array().map(Vec::len)
    );
}

#[tokio::test]
async fn trigger_types_and_triggers() {
    let h = Harness::start().await;
    let listed = h
        .get("/api/v1/triggertypes?include_attributes=ref,pack,description,parameters_schema")
        .await;
    assert_eq!(listed.status, 200);
    let webhook = listed
        .body
        .as_array()
        .expect("list")
        .iter()
        .find(|t| t["ref"] == "core.st2.webhook")
        .expect("core.st2.webhook listed")
        .clone();
    assert_eq!(webhook["pack"], "core");
    assert_eq!(
        webhook["parameters_schema"]["properties"]["url"]["type"],
        "string"
    );
    let core = h
        .get("/api/v1/triggertypes?pack=core&name=st2.webhook")
        .await;
    assert_eq!(core.body.as_array().map(Vec::len), Some(1));
    let one = h.get("/api/v1/triggertypes/core.st2.webhook").await;
    assert_eq!(one.status, 200);
    assert!(one.body["payload_schema"].is_object());
    let by_id = h
        .get(&format!(
            "/api/v1/triggertypes/{}",
            one.body["id"].as_str().expect("id")
        ))
        .await;
    assert_eq!(by_id.body, one.body);
    assert_eq!(h.get("/api/v1/triggertypes/core.nope").await.status, 404);

    // Triggers: the shadow trigger of a parameterless type, and a rule's webhook trigger.
    let timer_shadow = h
        .get("/api/v1/triggers?type=core.st2.generic.actiontrigger")
        .await;
    assert_eq!(timer_shadow.status, 200);
    assert_eq!(
        timer_shadow.body.as_array().expect("list")[0]["ref"],
        "core.st2.generic.actiontrigger"
    );
    let rule = h
        .post("/api/v1/rules", webhook_rule("spec", "specs/1", false))
        .await;
    assert_eq!(rule.status, 201);
    let tref = rule.body["trigger"]["ref"].as_str().expect("ref");
    let specs = h.get("/api/v1/triggers/?type=core.st2.webhook").await;
    let found = specs
        .body
        .as_array()
        .expect("list")
        .iter()
        .find(|t| t["ref"] == tref)
        .expect("the rule's trigger")
        .clone();
    assert_eq!(found["parameters"], json!({"url": "specs/1"}));
    let got = h.get(&format!("/api/v1/triggers/{tref}")).await;
    assert_eq!(got.body, found);

    // A custom trigger type: create, use, refuse deleting while used, delete.
    let created = h
        .post(
            "/api/v1/triggertypes",
            json!({"name": "event", "pack": "apitest", "description": "custom",
                   "payload_schema": {"type": "object"}}),
        )
        .await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    assert_eq!(created.body["ref"], "apitest.event");
    assert_eq!(created.body["uid"], "trigger_type:apitest:event");
    let shadow = h.get("/api/v1/triggers/apitest.event").await;
    assert_eq!(shadow.status, 200);
    let dup = h
        .post(
            "/api/v1/triggertypes",
            json!({"name": "event", "pack": "apitest"}),
        )
        .await;
    assert_eq!(dup.status, 409);
    assert_eq!(dup.body["conflict-id"], created.body["id"]);
    let bad = h
        .post("/api/v1/triggertypes", json!({"pack": "apitest"}))
        .await;
    assert_eq!(bad.status, 400);
    let user = h
        .post(
            "/api/v1/rules",
            json!({"name": "on_event", "pack": "apitest", "enabled": true,
                   "trigger": {"type": "apitest.event"}, "action": {"ref": "core.noop"}}),
        )
        .await;
    assert_eq!(user.status, 201, "{:?}", user.body);
    assert_eq!(user.body["trigger"]["ref"], "apitest.event");
    assert_eq!(
        h.delete("/api/v1/triggertypes/apitest.event").await.status,
        409
    );
    let system = h
        .put("/api/v1/triggertypes/core.st2.webhook", one.body.clone())
        .await;
    assert_eq!(system.status, 400);
    assert_eq!(h.delete("/api/v1/rules/apitest.on_event").await.status, 204);
    assert_eq!(
        h.delete("/api/v1/triggertypes/apitest.event").await.status,
        204
    );
    assert_eq!(h.get("/api/v1/triggers/apitest.event").await.status, 404);
}

#[tokio::test]
async fn policies_and_policy_types() {
    let h = Harness::start().await;
    let types = h.get("/api/v1/policytypes?resource_type=action").await;
    assert_eq!(types.status, 200);
    let refs: Vec<&str> = types
        .body
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|t| t["ref"].as_str())
        .collect();
    assert!(refs.contains(&"action.concurrency"), "{refs:?}");
    assert!(refs.contains(&"action.retry"), "{refs:?}");
    let concurrency = h.get("/api/v1/policytypes/action.concurrency").await;
    assert_eq!(concurrency.status, 200);
    assert_eq!(concurrency.body["resource_type"], "action");
    assert!(concurrency.body["parameters"]["threshold"].is_object());
    assert_eq!(h.get("/api/v1/policytypes/action.nope").await.status, 404);

    let body = json!({"name": "one_at_a_time", "pack": "apitest", "description": "limit",
                      "resource_ref": "core.local", "policy_type": "action.concurrency",
                      "parameters": {"threshold": 1, "action": "delay"}});
    let created = h.post("/api/v1/policies", body.clone()).await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    let id = created.body["id"].as_str().expect("id").to_string();
    assert_eq!(created.body["ref"], "apitest.one_at_a_time");
    assert_eq!(created.body["uid"], "policy:apitest:one_at_a_time");
    assert_eq!(created.body["enabled"], true);
    let dup = h.post("/api/v1/policies", body.clone()).await;
    assert_eq!(dup.status, 409);
    assert_eq!(dup.body["conflict-id"], id.as_str());

    for key in ["apitest.one_at_a_time", id.as_str()] {
        let got = h.get(&format!("/api/v1/policies/{key}")).await;
        assert_eq!(got.status, 200);
        assert_eq!(got.body, created.body);
    }
    for q in [
        "pack=apitest",
        "pack=apitest&resource_ref=core.local",
        "pack=apitest&policy_type=action.concurrency",
        "name=one_at_a_time&resource_ref=core.local",
    ] {
        let got = h.get(&format!("/api/v1/policies?{q}")).await;
        assert_eq!(ids(&got.body), vec![id.clone()], "{q}");
    }
    assert!(h
        .get("/api/v1/policies?pack=apitest&policy_type=action.retry")
        .await
        .body
        .as_array()
        .is_some_and(Vec::is_empty));

    // Validated as registration validates policy files.
    let mut unknown_type = body.clone();
    unknown_type["name"] = json!("x1");
    unknown_type["policy_type"] = json!("action.sometimes");
    let mut bad_param = body.clone();
    bad_param["name"] = json!("x2");
    bad_param["parameters"] = json!({"threshold": "many"});
    let mut bad_ref = body.clone();
    bad_ref["name"] = json!("x3");
    bad_ref["resource_ref"] = json!("nodot");
    for (b, word) in [
        (unknown_type, "policy_type"),
        (bad_param, "parameters.threshold"),
        (bad_ref, "resource_ref"),
    ] {
        let answer = h.post("/api/v1/policies", b).await;
        assert_eq!(answer.status, 400, "{:?}", answer.body);
        assert!(
            answer.body["faultstring"]
                .as_str()
                .is_some_and(|s| s.contains(word)),
            "{:?} should name {word}",
            answer.body
        );
    }
    let all = h.get("/api/v1/policies?pack=apitest").await;
    assert_eq!(all.body.as_array().map(Vec::len), Some(1));

    let mut update = created.body.clone();
    update["parameters"]["threshold"] = json!(3);
    let updated = h.put(&format!("/api/v1/policies/{id}"), update).await;
    assert_eq!(updated.status, 200, "{:?}", updated.body);
    assert_eq!(updated.body["parameters"]["threshold"], 3);
    assert_eq!(updated.body["id"], id.as_str());

    assert_eq!(
        h.delete("/api/v1/policies/apitest.one_at_a_time")
            .await
            .status,
        204
    );
    assert_eq!(h.get(&format!("/api/v1/policies/{id}")).await.status, 404);
}
