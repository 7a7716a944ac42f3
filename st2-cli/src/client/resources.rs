//! The list/get/create style resources: rules, trigger types, trigger instances, rule
//! enforcements, webhooks, traces, inquiries and the key-value datastore.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;
use serde_json::{json, Value};

use super::cli::{
    InquiryCmd, KeyCmd, RuleCmd, RuleEnforcementCmd, SensorCmd, TraceCmd, TriggerCmd,
    TriggerInstanceCmd, WebhookCmd,
};
use super::http::is_status;
use super::output::{print_list, print_one, render, Format};
use super::{encode_path, Ctx};

const RULE_ORDER: &[&str] = &[
    "id",
    "uid",
    "ref",
    "pack",
    "name",
    "description",
    "enabled",
    "trigger",
    "criteria",
    "action",
];

/// Reads a YAML or JSON file (YAML is a superset of JSON).
pub fn load_file(file: &Path) -> anyhow::Result<Value> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    serde_yaml::from_str(&text).with_context(|| format!("{} is not YAML or JSON", file.display()))
}

fn str_field<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or("")
}

fn deleted(ctx: &Ctx, kind: &str, name: &str) {
    if ctx.format == Format::Table {
        println!("Resource with id \"{name}\" has been successfully deleted.");
    } else {
        println!(
            "{}",
            render(&json!({"deleted": name, "kind": kind}), ctx.format)
        );
    }
}

/// Query `limit=N` plus the optional filters given.
fn limited(last: u64, filters: &[(&'static str, &Option<String>)]) -> Vec<(&'static str, String)> {
    let mut q = vec![("limit", last.to_string())];
    for (k, v) in filters {
        if let Some(v) = v {
            q.push((k, v.clone()));
        }
    }
    q
}

/// `st2 rule ...`.
pub fn rule(ctx: &Ctx, cmd: RuleCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        RuleCmd::List {
            last,
            pack,
            action,
            trigger,
            enabled,
            disabled,
            iftt,
        } => {
            let columns: &[&str] = if iftt {
                &["ref", "trigger.ref", "action.ref", "enabled"]
            } else {
                &["ref", "pack", "description", "enabled"]
            };
            let mut q = limited(
                last,
                &[("pack", &pack), ("action", &action), ("trigger", &trigger)],
            );
            q.push(("include_attributes", columns.join(",")));
            if enabled {
                q.push(("enabled", "True".into()));
            } else if disabled {
                q.push(("enabled", "False".into()));
            }
            let (list, total) = ctx.client.get_counted("/rules", &q)?;
            print_list(&list, columns, ctx.format, total);
        }
        RuleCmd::Get { ref_or_id } => {
            let r = ctx.get_one("rules", "Rule", &ref_or_id, &[])?;
            print_one(&r, RULE_ORDER, ctx.format);
        }
        RuleCmd::Create { file } => {
            let body = load_file(&file)?;
            let r = ctx.client.post("/rules", &body)?;
            print_one(&r, RULE_ORDER, ctx.format);
        }
        RuleCmd::Update { ref_or_id, file } => {
            let old = ctx.get_one("rules", "Rule", &ref_or_id, &[])?;
            let id = str_field(&old, "id").to_string();
            let mut body = load_file(&file)?;
            if let Some(o) = body.as_object_mut() {
                o.insert("id".into(), Value::String(id.clone()));
            }
            let r = ctx
                .client
                .put(&format!("/rules/{}", encode_path(&id)), &body)?;
            print_one(&r, RULE_ORDER, ctx.format);
        }
        RuleCmd::Delete { ref_or_id } => {
            let old = ctx.get_one("rules", "Rule", &ref_or_id, &[])?;
            let id = str_field(&old, "id");
            match ctx
                .client
                .delete(&format!("/rules/{}", encode_path(id)), &[])
            {
                Ok(_) => {}
                Err(e) if is_status(&e, 404) => {}
                Err(e) => return Err(e),
            }
            deleted(ctx, "rule", &ref_or_id);
        }
        RuleCmd::Enable { ref_or_id } => set_rule_enabled(ctx, &ref_or_id, true)?,
        RuleCmd::Disable { ref_or_id } => set_rule_enabled(ctx, &ref_or_id, false)?,
    }
    Ok(ExitCode::SUCCESS)
}

fn set_rule_enabled(ctx: &Ctx, ref_or_id: &str, enabled: bool) -> anyhow::Result<()> {
    let mut r = ctx.get_one("rules", "Rule", ref_or_id, &[])?;
    let id = str_field(&r, "id").to_string();
    if let Some(o) = r.as_object_mut() {
        o.remove("ref");
        o.insert("enabled".into(), Value::Bool(enabled));
    }
    let r = ctx
        .client
        .put(&format!("/rules/{}", encode_path(&id)), &r)?;
    print_one(&r, RULE_ORDER, ctx.format);
    Ok(())
}

/// `st2 trigger list/get` (trigger types).
pub fn trigger(ctx: &Ctx, cmd: TriggerCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        TriggerCmd::List { pack } => {
            let mut q = vec![("include_attributes", "ref,pack,description".to_string())];
            if let Some(p) = pack {
                q.push(("pack", p));
            }
            let list = ctx.client.get("/triggertypes", &q)?;
            print_list(&list, &["ref", "pack", "description"], ctx.format, None);
        }
        TriggerCmd::Get { ref_or_id } => {
            let t = ctx.get_one("triggertypes", "Trigger", &ref_or_id, &[])?;
            print_one(
                &t,
                &[
                    "id",
                    "ref",
                    "pack",
                    "name",
                    "description",
                    "parameters_schema",
                    "payload_schema",
                ],
                ctx.format,
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Columns of `st2 sensor get`.
const SENSOR_ORDER: &[&str] = &[
    "id",
    "ref",
    "pack",
    "class_name",
    "description",
    "entry_point",
    "poll_interval",
    "trigger_types",
    "enabled",
];

/// `st2 sensor list/get/enable/disable`.
pub fn sensor(ctx: &Ctx, cmd: SensorCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        SensorCmd::List { pack } => {
            let mut q = Vec::new();
            if let Some(p) = pack {
                q.push(("pack", p));
            }
            let list = ctx.client.get("/sensortypes", &q)?;
            print_list(
                &list,
                &["ref", "pack", "description", "enabled"],
                ctx.format,
                None,
            );
        }
        SensorCmd::Get { ref_or_id } => {
            let s = ctx.get_one("sensortypes", "Sensor", &ref_or_id, &[])?;
            print_one(&s, SENSOR_ORDER, ctx.format);
        }
        SensorCmd::Enable { ref_or_id } => set_sensor_enabled(ctx, &ref_or_id, true)?,
        SensorCmd::Disable { ref_or_id } => set_sensor_enabled(ctx, &ref_or_id, false)?,
    }
    Ok(ExitCode::SUCCESS)
}

fn set_sensor_enabled(ctx: &Ctx, ref_or_id: &str, enabled: bool) -> anyhow::Result<()> {
    let s = ctx.get_one("sensortypes", "Sensor", ref_or_id, &[])?;
    let id = str_field(&s, "id").to_string();
    let s = ctx.client.put(
        &format!("/sensortypes/{}", encode_path(&id)),
        &serde_json::json!({ "enabled": enabled }),
    )?;
    print_one(&s, SENSOR_ORDER, ctx.format);
    Ok(())
}

/// `st2 trigger-instance list/get/re-emit`.
pub fn trigger_instance(ctx: &Ctx, cmd: TriggerInstanceCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        TriggerInstanceCmd::List { last, trigger } => {
            let mut q = limited(last, &[("trigger", &trigger)]);
            q.push(("sort_desc", "True".into()));
            let (list, total) = ctx.client.get_counted("/triggerinstances", &q)?;
            print_list(
                &list,
                &["id", "trigger", "occurrence_time", "status"],
                ctx.format,
                total,
            );
        }
        TriggerInstanceCmd::Get { id } => {
            let t = ctx.get_one("triggerinstances", "Trigger Instance", &id, &[])?;
            print_one(
                &t,
                &["id", "trigger", "occurrence_time", "payload", "status"],
                ctx.format,
            );
        }
        TriggerInstanceCmd::ReEmit { id } => {
            let r = ctx.client.post(
                &format!("/triggerinstances/{}/re_emit", encode_path(&id)),
                &json!({}),
            )?;
            if ctx.format == Format::Table {
                let new = r.get("id").and_then(Value::as_str).unwrap_or("");
                println!("Trigger instance {id} was re-emitted as {new}.");
            } else {
                println!("{}", render(&r, ctx.format));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `st2 rule-enforcement list/get`.
pub fn rule_enforcement(ctx: &Ctx, cmd: RuleEnforcementCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        RuleEnforcementCmd::List {
            last,
            rule,
            trigger_instance,
            execution,
        } => {
            let mut q = limited(
                last,
                &[
                    ("rule_ref", &rule),
                    ("trigger_instance", &trigger_instance),
                    ("execution", &execution),
                ],
            );
            q.push(("sort_desc", "True".into()));
            let (list, total) = ctx.client.get_counted("/ruleenforcements", &q)?;
            print_list(
                &list,
                &[
                    "id",
                    "rule.ref",
                    "trigger_instance_id",
                    "execution_id",
                    "enforced_at",
                ],
                ctx.format,
                total,
            );
        }
        RuleEnforcementCmd::Get { id } => {
            let e = ctx.get_one("ruleenforcements", "Rule Enforcement", &id, &[])?;
            print_one(
                &e,
                &["id", "rule", "trigger_instance_id", "execution_id"],
                ctx.format,
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `st2 webhook list/get`.
pub fn webhook(ctx: &Ctx, cmd: WebhookCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        WebhookCmd::List => {
            let list = ctx.client.get(
                "/webhooks",
                &[("include_attributes", "url,type,description".to_string())],
            )?;
            print_list(
                &list,
                &["parameters.url", "type", "description"],
                ctx.format,
                None,
            );
        }
        WebhookCmd::Get { url } => {
            let w = ctx.get_one("webhooks", "Webhook", url.trim_matches('/'), &[])?;
            print_one(&w, &["id", "ref", "type", "parameters"], ctx.format);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `st2 trace list/get`.
pub fn trace(ctx: &Ctx, cmd: TraceCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        TraceCmd::List {
            last,
            trace_tag,
            execution,
            rule,
            trigger_instance,
        } => {
            let mut q = limited(
                last,
                &[
                    ("trace_tag", &trace_tag),
                    ("execution", &execution),
                    ("rule", &rule),
                    ("trigger_instance", &trigger_instance),
                ],
            );
            q.push(("sort_desc", "True".into()));
            let (list, total) = ctx.client.get_counted("/traces", &q)?;
            print_list(
                &list,
                &["id", "uid", "trace_tag", "start_timestamp"],
                ctx.format,
                total,
            );
        }
        TraceCmd::Get { id } => {
            let t = ctx.get_one("traces", "Trace", &id, &[])?;
            print_one(
                &t,
                &[
                    "id",
                    "trace_tag",
                    "trigger_instances",
                    "rules",
                    "action_executions",
                ],
                ctx.format,
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `st2 inquiry list/get/respond`.
pub fn inquiry(ctx: &Ctx, cmd: InquiryCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        InquiryCmd::List { last } => {
            let (list, total) = ctx
                .client
                .get_counted("/inquiries", &[("limit", last.to_string())])?;
            print_list(
                &list,
                &["id", "roles", "users", "route", "ttl"],
                ctx.format,
                total,
            );
        }
        InquiryCmd::Get { id } => {
            let i = ctx.get_one("inquiries", "Inquiry", &id, &[])?;
            print_one(
                &i,
                &["id", "roles", "users", "route", "ttl", "schema"],
                ctx.format,
            );
        }
        InquiryCmd::Respond { id, response } => {
            let response: Value =
                serde_json::from_str(&response).context("--response must be JSON")?;
            let r = ctx.client.put(
                &format!("/inquiries/{}", encode_path(&id)),
                &json!({"id": id, "response": response}),
            )?;
            if ctx.format == Format::Table {
                println!("Response accepted for inquiry {id}.");
            } else {
                println!("{}", render(&r, ctx.format));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

const KEY_ORDER: &[&str] = &[
    "name",
    "value",
    "secret",
    "encrypted",
    "scope",
    "user",
    "expire_timestamp",
];

fn scope_query(scope: &str, user: &Option<String>) -> Vec<(&'static str, String)> {
    let mut q = vec![("scope", scope.to_string())];
    if let Some(u) = user {
        q.push(("user", u.clone()));
    }
    q
}

/// `PUT /keys/NAME` with StackStorm's body (`user` null unless given, no id).
fn put_key(ctx: &Ctx, item: &Value) -> anyhow::Result<Value> {
    let name = item
        .get("name")
        .and_then(Value::as_str)
        .context("every key needs a \"name\"")?;
    ctx.client
        .put(&format!("/keys/{}", encode_path(name)), item)
}

/// `st2 key ...`.
pub fn key(ctx: &Ctx, cmd: KeyCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        KeyCmd::List {
            prefix,
            decrypt,
            scope,
            user,
            last,
        } => {
            let mut q = vec![
                (
                    "decrypt",
                    if decrypt { "true" } else { "false" }.to_string(),
                ),
                ("scope", scope),
                ("limit", last.to_string()),
            ];
            if let Some(p) = prefix {
                q.push(("prefix", p));
            }
            if let Some(u) = user {
                q.push(("user", u));
            }
            let (list, total) = ctx.client.get_counted("/keys", &q)?;
            print_list(&list, KEY_ORDER, ctx.format, total);
        }
        KeyCmd::Get {
            name,
            decrypt,
            scope,
            user,
        } => {
            let mut q = scope_query(&scope, &user);
            q.push((
                "decrypt",
                if decrypt { "true" } else { "false" }.to_string(),
            ));
            let k = ctx.get_one("keys", "Key Value Pair", &name, &q)?;
            print_one(&k, KEY_ORDER, ctx.format);
        }
        KeyCmd::Set {
            name,
            value,
            encrypt,
            encrypted,
            ttl,
            scope,
            user,
        } => {
            let mut body = json!({"name": name, "value": value, "scope": scope, "user": user});
            if encrypt {
                body["secret"] = Value::Bool(true);
            }
            if encrypted {
                body["encrypted"] = Value::Bool(true);
            }
            if let Some(t) = ttl {
                body["ttl"] = json!(t);
            }
            let k = put_key(ctx, &body)?;
            print_one(&k, KEY_ORDER, ctx.format);
        }
        KeyCmd::Delete { name, scope, user } => {
            let q = scope_query(&scope, &user);
            ctx.get_one("keys", "Key Value Pair", &name, &q)?;
            ctx.client
                .delete(&format!("/keys/{}", encode_path(&name)), &q)?;
            deleted(ctx, "key", &name);
        }
        KeyCmd::DeleteByPrefix { prefix, scope } => {
            let list = ctx.client.get(
                "/keys",
                &[("prefix", prefix.clone()), ("scope", scope.clone())],
            )?;
            let mut names = Vec::new();
            for k in list.as_array().cloned().unwrap_or_default() {
                let name = str_field(&k, "name").to_string();
                let kscope = k
                    .get("scope")
                    .and_then(Value::as_str)
                    .unwrap_or(&scope)
                    .to_string();
                ctx.client.delete(
                    &format!("/keys/{}", encode_path(&name)),
                    &[("scope", kscope)],
                )?;
                names.push(name);
            }
            if ctx.format == Format::Table {
                println!(
                    "Deleted {} keys\nDeleted key names: {}",
                    names.len(),
                    names.join(", ")
                );
            } else {
                println!("{}", render(&json!(names), ctx.format));
            }
        }
        KeyCmd::Load { file, convert } => {
            let data = load_file(&file)?;
            let items = match data {
                Value::Array(l) => l,
                Value::Object(_) => vec![data],
                _ => anyhow::bail!(
                    "{} must hold an object or a list of objects",
                    file.display()
                ),
            };
            let mut done = Vec::new();
            for mut item in items {
                let obj = item
                    .as_object_mut()
                    .context("every item of the file must be an object")?;
                obj.remove("id");
                if let Some(v) = obj.get("value").cloned() {
                    if !v.is_string() {
                        if !convert {
                            anyhow::bail!(
                                "the value of \"{}\" is not a string (use -c/--convert to store it as JSON)",
                                obj.get("name").and_then(Value::as_str).unwrap_or("?")
                            );
                        }
                        obj.insert("value".into(), Value::String(v.to_string()));
                    }
                }
                obj.entry("scope")
                    .or_insert_with(|| Value::String("system".into()));
                if obj.get("scope").and_then(Value::as_str) == Some("st2kv.system") {
                    obj.insert("scope".into(), Value::String("system".into()));
                }
                done.push(put_key(ctx, &item)?);
            }
            print_list(&Value::Array(done), KEY_ORDER, ctx.format, None);
        }
    }
    Ok(ExitCode::SUCCESS)
}
