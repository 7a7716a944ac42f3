//! `st2 action`, `st2 run` and `st2 execution`: parameters cast by their declared types,
//! polling (or following the stream on a terminal) until an execution completes, tailing
//! output.

use std::collections::HashSet;
use std::io::{IsTerminal as _, Write as _};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context as _};
use serde_json::{json, Map, Value};

use super::cli::{ActionCmd, ExecutionCmd, ExecutionListArgs, RunArgs};
use super::http::read_events;
use super::output::{execution_text, lookup, print_list, print_one, render, Format};
use super::{encode_path, Ctx};

/// Statuses of a finished execution.
pub const COMPLETED: &[&str] = &["succeeded", "failed", "timeout", "canceled", "abandoned"];

/// Statuses `st2 run` keeps waiting on.
const WAITING: &[&str] = &[
    "requested",
    "scheduled",
    "delayed",
    "running",
    "canceling",
    "pausing",
    "resuming",
];

/// The fields of an execution `st2 run` and `st2 execution get` show.
const EXECUTION_ATTRS: &[&str] = &[
    "id",
    "action.ref",
    "context.user",
    "parameters",
    "status",
    "start_timestamp",
    "end_timestamp",
    "result",
];

const ACTION_ORDER: &[&str] = &[
    "id",
    "uid",
    "ref",
    "pack",
    "name",
    "description",
    "enabled",
    "entry_point",
    "runner_type",
    "parameters",
];

fn status_of(e: &Value) -> &str {
    e.get("status").and_then(Value::as_str).unwrap_or("")
}

fn id_of(e: &Value) -> &str {
    e.get("id").and_then(Value::as_str).unwrap_or("")
}

/// `st2 action list/get/execute`.
pub fn action(ctx: &Ctx, cmd: ActionCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        ActionCmd::List { pack } => {
            let mut q = vec![("include_attributes", "ref,pack,description".to_string())];
            if let Some(p) = pack {
                q.push(("pack", p));
            }
            let list = ctx.client.get("/actions", &q)?;
            print_list(&list, &["ref", "pack", "description"], ctx.format, None);
            Ok(ExitCode::SUCCESS)
        }
        ActionCmd::Get { ref_or_id } => {
            let a = ctx.get_one("actions", "Action", &ref_or_id, &[])?;
            print_one(&a, ACTION_ORDER, ctx.format);
            Ok(ExitCode::SUCCESS)
        }
        ActionCmd::Execute(args) => run(ctx, &args, true),
    }
}

/// Casts one `k=v` value to the declared parameter type, like st2client.
pub fn cast(name: &str, value: &str, ty: Option<&str>) -> anyhow::Result<Value> {
    let bad =
        |what: &str| anyhow::anyhow!("Invalid value \"{value}\" for {what} parameter \"{name}\"");
    Ok(match ty.unwrap_or("string") {
        "integer" => Value::from(value.trim().parse::<i64>().map_err(|_| bad("integer"))?),
        "number" => {
            let n: f64 = value.trim().parse().map_err(|_| bad("number"))?;
            serde_json::Number::from_f64(n)
                .map(Value::Number)
                .ok_or_else(|| bad("number"))?
        }
        "boolean" => match value.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "y" | "on" => Value::Bool(true),
            "false" | "0" | "no" | "n" | "off" => Value::Bool(false),
            _ => return Err(bad("boolean")),
        },
        "array" => match serde_json::from_str::<Value>(value) {
            Ok(v @ Value::Array(_)) => v,
            _ if value.is_empty() => Value::Array(Vec::new()),
            _ => Value::Array(
                value
                    .split(',')
                    .map(|s| Value::String(s.trim().to_string()))
                    .collect(),
            ),
        },
        "object" => match serde_json::from_str::<Value>(value) {
            Ok(v @ Value::Object(_)) => v,
            _ => {
                let mut m = Map::new();
                for pair in value.split(',').filter(|p| !p.trim().is_empty()) {
                    let (k, v) = pair.split_once('=').ok_or_else(|| bad("object"))?;
                    m.insert(k.trim().to_string(), Value::String(v.trim().to_string()));
                }
                Value::Object(m)
            }
        },
        _ => Value::String(value.to_string()),
    })
}

/// Builds the parameters of `k=v` words: types from the runner's parameters, then the
/// action's; the first word without `=` and every word after it become `cmd`.
pub fn parse_parameters(
    words: &[String],
    runner_params: &Value,
    action_params: &Value,
) -> anyhow::Result<Map<String, Value>> {
    let mut out = Map::new();
    for (i, w) in words.iter().enumerate() {
        match w.split_once('=') {
            Some((k, v)) if !k.is_empty() => {
                let ty = runner_params
                    .get(k)
                    .or_else(|| action_params.get(k))
                    .and_then(|spec| spec.get("type"))
                    .and_then(Value::as_str);
                out.insert(k.to_string(), cast(k, v, ty)?);
            }
            _ => {
                out.insert("cmd".into(), Value::String(words[i..].join(" ")));
                break;
            }
        }
    }
    Ok(out)
}

/// The parameters of `words` for `action` (fetching its runner for the types).
fn action_parameters(
    ctx: &Ctx,
    action: &Value,
    words: &[String],
) -> anyhow::Result<Map<String, Value>> {
    let runner_type = action
        .get("runner_type")
        .and_then(Value::as_str)
        .unwrap_or("");
    let runners = ctx
        .client
        .get("/runnertypes", &[("name", runner_type.to_string())])?;
    let runner = runners
        .as_array()
        .and_then(|l| l.first())
        .with_context(|| format!("Runner type \"{runner_type}\" cannot be found."))?;
    let empty = json!({});
    parse_parameters(
        words,
        runner.get("runner_parameters").unwrap_or(&empty),
        action.get("parameters").unwrap_or(&empty),
    )
}

/// `st2 run` / `st2 action execute`: starts the action, then (unless async) waits and prints
/// the result; exit code 1 when the execution failed.
pub fn run(ctx: &Ctx, args: &RunArgs, force_async: bool) -> anyhow::Result<ExitCode> {
    // An unknown action is reported with the server's faultstring.
    let action = ctx
        .client
        .get(&format!("/actions/{}", encode_path(&args.ref_or_id)), &[])?;
    let action_ref = action
        .get("ref")
        .and_then(Value::as_str)
        .unwrap_or(&args.ref_or_id)
        .to_string();
    let parameters = action_parameters(ctx, &action, &args.parameters)?;
    let mut body = json!({
        "action": action_ref,
        "parameters": parameters,
        "user": args.user,
    });
    if let Some(d) = args.delay {
        body["delay"] = json!(d);
    }
    if let Some(t) = &args.trace_tag {
        body["context"] = json!({"trace_context": {"trace_tag": t}});
    } else if let Some(t) = &args.trace_id {
        body["context"] = json!({"trace_context": {"id_": t}});
    }
    let execution = ctx.client.post("/executions", &body)?;
    finish(ctx, execution, args.run_async || force_async)
}

/// After an execution was created: the async hint, or wait and print.
fn finish(ctx: &Ctx, execution: Value, run_async: bool) -> anyhow::Result<ExitCode> {
    let id = id_of(&execution).to_string();
    if run_async {
        if ctx.format == Format::Table {
            println!("To get the results, execute:\n st2 execution get {id}\n");
            println!("To view output in real-time, execute:\n st2 execution tail {id}");
        } else {
            println!("{}", render(&execution, ctx.format));
        }
        return Ok(ExitCode::SUCCESS);
    }
    let done = wait(ctx, &id)?;
    print_execution(ctx, &done, false)?;
    Ok(if status_of(&done) == "failed" {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// Waits until execution `id` leaves the running statuses. On a terminal (table output) its
/// output is followed live on the stream; otherwise, or when the stream fails, it is polled.
pub fn wait(ctx: &Ctx, id: &str) -> anyhow::Result<Value> {
    let path = format!("/executions/{}", encode_path(id));
    if ctx.format == Format::Table && std::io::stdout().is_terminal() {
        if let Err(e) = follow(ctx, id, None, false, false) {
            tracing::debug!(error = %e, "stream unavailable, polling");
        }
    }
    let mut pause = Duration::from_millis(200);
    loop {
        let e = ctx.client.get(&path, &[])?;
        if !WAITING.contains(&status_of(&e)) {
            return Ok(e);
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_secs(2));
    }
}

/// `succeeded (3s elapsed)`.
fn status_text(e: &Value) -> String {
    let status = status_of(e);
    let ts = |k: &str| {
        e.get(k)
            .and_then(Value::as_str)
            .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
            .map(|d| d.with_timezone(&chrono::Utc))
    };
    match ts("start_timestamp") {
        Some(start) => {
            let end = ts("end_timestamp").unwrap_or_else(chrono::Utc::now);
            let secs = (end - start).num_seconds().max(0);
            format!("{status} ({secs}s elapsed)")
        }
        None => status.to_string(),
    }
}

/// Prints an execution: JSON/YAML whole, else StackStorm's `key: value` view (all fields
/// with `detail`), plus the tasks of a workflow.
fn print_execution(ctx: &Ctx, e: &Value, detail: bool) -> anyhow::Result<()> {
    if ctx.format != Format::Table {
        println!("{}", render(e, ctx.format));
        return Ok(());
    }
    let mut shown = e.clone();
    if let Some(o) = shown.as_object_mut() {
        o.insert("status".into(), Value::String(status_text(e)));
    }
    if detail {
        print_one(&shown, &["id", "action", "status"], Format::Table);
    } else {
        print!("{}", execution_text(&shown, EXECUTION_ATTRS));
    }
    let runner = lookup(e, "action.runner_type").as_str().unwrap_or("");
    if matches!(runner, "orquesta" | "action-chain") {
        let path = format!("/executions/{}/children", encode_path(id_of(e)));
        let children = ctx.client.get(&path, &[("depth", "-1".to_string())])?;
        let mut rows = children.as_array().cloned().unwrap_or_default();
        for c in &mut rows {
            let task = lookup(c, "context.orquesta.task_name")
                .as_str()
                .or_else(|| lookup(c, "context.chain.name").as_str())
                .unwrap_or("")
                .to_string();
            let st = status_text(c);
            if let Some(o) = c.as_object_mut() {
                o.insert("task".into(), Value::String(task));
                o.insert("status".into(), Value::String(st));
            }
        }
        if !rows.is_empty() {
            println!("+--------------------------+");
            print_list(
                &Value::Array(rows),
                &["id", "status", "task", "action.ref", "start_timestamp"],
                Format::Table,
                None,
            );
        }
    }
    Ok(())
}

/// Follows execution `id` on the stream, printing its output chunks (and those of its
/// workflow children), until it completes. Returns its last known document.
fn follow(
    ctx: &Ctx,
    id: &str,
    output_type: Option<&str>,
    include_metadata: bool,
    announce: bool,
) -> anyhow::Result<Option<Value>> {
    let resp = ctx.client.open_stream(&[
        ("end_execution_id", id.to_string()),
        ("end_event", "st2.execution__update".to_string()),
        (
            "events",
            "st2.execution__update,st2.execution.output__create".to_string(),
        ),
    ])?;
    let mut ids: HashSet<String> = HashSet::from([id.to_string()]);
    let mut last = None;
    let mut out = std::io::stdout();
    read_events(resp, |ev| {
        match ev.name.as_str() {
            "st2.execution.output__create" => {
                let exec = ev.data.get("execution_id").and_then(Value::as_str);
                let ty = ev.data.get("output_type").and_then(Value::as_str);
                if exec.is_some_and(|x| ids.contains(x))
                    && output_type.is_none_or(|want| ty == Some(want))
                {
                    let data = ev.data.get("data").and_then(Value::as_str).unwrap_or("");
                    if include_metadata {
                        let ts = ev.data.get("timestamp").and_then(Value::as_str);
                        let _ = write!(out, "[{}][{}] {data}", ts.unwrap_or(""), ty.unwrap_or(""));
                    } else {
                        let _ = write!(out, "{data}");
                    }
                    let _ = out.flush();
                }
            }
            "st2.execution__update" => {
                let eid = id_of(&ev.data).to_string();
                let status = status_of(&ev.data).to_string();
                if eid == id {
                    let done = COMPLETED.contains(&status.as_str());
                    last = Some(ev.data);
                    if done {
                        if announce {
                            println!("\nExecution {id} has completed (status={status}).");
                        }
                        return Ok(false);
                    }
                } else if ev
                    .data
                    .get("parent")
                    .and_then(Value::as_str)
                    .is_some_and(|p| ids.contains(p))
                {
                    let task = lookup(&ev.data, "context.orquesta.task_name")
                        .as_str()
                        .or_else(|| lookup(&ev.data, "context.chain.name").as_str())
                        .unwrap_or("")
                        .to_string();
                    if ids.insert(eid.clone()) && announce {
                        println!("Child execution (task={task}) {eid} has started.\n");
                    }
                    if COMPLETED.contains(&status.as_str()) && announce {
                        println!(
                            "\nChild execution (task={task}) {eid} has finished (status={status})."
                        );
                    }
                }
            }
            _ => {}
        }
        Ok(true)
    })?;
    Ok(last)
}

fn list_executions(ctx: &Ctx, a: &ExecutionListArgs) -> anyhow::Result<ExitCode> {
    let mut q = vec![
        ("limit", a.last.to_string()),
        (
            "include_attributes",
            "id,action.ref,context.user,status,start_timestamp,end_timestamp".to_string(),
        ),
    ];
    if a.sort == "asc" {
        q.push(("sort_asc", "True".to_string()));
    } else {
        q.push(("sort_desc", "True".to_string()));
    }
    if !a.showall {
        q.push(("parent", "null".to_string()));
    }
    for (k, v) in [
        ("action", &a.action),
        ("status", &a.status),
        ("user", &a.user),
        ("trigger_instance", &a.trigger_instance),
        ("timestamp_gt", &a.timestamp_gt),
        ("timestamp_lt", &a.timestamp_lt),
    ] {
        if let Some(v) = v {
            q.push((k, v.clone()));
        }
    }
    let (list, total) = ctx.client.get_counted("/executions", &q)?;
    let mut items = list.as_array().cloned().unwrap_or_default();
    // Newest last on screen, like st2.
    items.reverse();
    if ctx.format == Format::Table {
        for e in &mut items {
            let st = status_text(e);
            if let Some(o) = e.as_object_mut() {
                o.insert("status".into(), Value::String(st));
            }
        }
    }
    print_list(
        &Value::Array(items),
        &[
            "id",
            "action.ref",
            "context.user",
            "status",
            "start_timestamp",
            "end_timestamp",
        ],
        ctx.format,
        total,
    );
    Ok(ExitCode::SUCCESS)
}

/// `st2 execution tail ID|last`.
fn tail(
    ctx: &Ctx,
    id: &str,
    output_type: Option<&str>,
    include_metadata: bool,
) -> anyhow::Result<ExitCode> {
    let id = if id == "last" {
        let list = ctx.client.get(
            "/executions",
            &[
                ("limit", "1".to_string()),
                ("sort_desc", "True".to_string()),
            ],
        )?;
        match list.as_array().and_then(|l| l.first()) {
            Some(e) => id_of(e).to_string(),
            None => bail!("No executions found."),
        }
    } else {
        id.to_string()
    };
    let e = ctx.get_one("executions", "Execution", &id, &[])?;
    let status = status_of(&e).to_string();
    if COMPLETED.contains(&status.as_str()) {
        let mut q = Vec::new();
        if let Some(t) = output_type {
            q.push(("output_type", t.to_string()));
        }
        let text = ctx
            .client
            .get_text(&format!("/executions/{}/output", encode_path(&id)), &q)?;
        print!("{text}");
        println!("Execution {id} has completed (status={status}).");
        return Ok(ExitCode::SUCCESS);
    }
    follow(ctx, &id, output_type, include_metadata, true)?;
    Ok(ExitCode::SUCCESS)
}

/// `st2 execution ...`.
pub fn execution(ctx: &Ctx, cmd: ExecutionCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        ExecutionCmd::List(a) => list_executions(ctx, &a),
        ExecutionCmd::Get {
            id,
            detail,
            hide_result,
        } => {
            let q = if hide_result {
                vec![("exclude_attributes", "result".to_string())]
            } else {
                Vec::new()
            };
            let e = ctx.get_one("executions", "Execution", &id, &q)?;
            print_execution(ctx, &e, detail)?;
            Ok(ExitCode::SUCCESS)
        }
        ExecutionCmd::Tail {
            id,
            output_type,
            include_metadata,
        } => tail(ctx, &id, output_type.as_deref(), include_metadata),
        ExecutionCmd::Cancel { ids } => {
            for id in ids {
                let e = ctx
                    .client
                    .delete(&format!("/executions/{}", encode_path(&id)), &[])?;
                if ctx.format != Format::Table {
                    println!("{}", render(&e, ctx.format));
                    continue;
                }
                let action = lookup(&e, "action.ref").as_str().unwrap_or("action");
                if status_of(&e) == "canceled" {
                    println!("{action} execution with id {id} canceled.");
                } else {
                    println!("{action} execution with id {id} requested to be canceled.");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        ExecutionCmd::ReRun {
            id,
            parameters,
            tasks,
            no_reset,
            run_async,
            delay,
        } => {
            let old = ctx.get_one("executions", "Execution", &id, &[])?;
            let action_ref = lookup(&old, "action.ref")
                .as_str()
                .unwrap_or("")
                .to_string();
            let params = if parameters.is_empty() {
                Map::new()
            } else {
                let action = ctx.get_one("actions", "Action", &action_ref, &[])?;
                action_parameters(ctx, &action, &parameters)?
            };
            let reset: Vec<&String> = tasks.iter().filter(|t| !no_reset.contains(t)).collect();
            let mut body = json!({"parameters": params, "tasks": tasks, "reset": reset});
            if let Some(d) = delay {
                body["delay"] = json!(d);
            }
            let e = ctx
                .client
                .post(&format!("/executions/{}/re_run", encode_path(&id)), &body)?;
            finish(ctx, e, run_async)
        }
        ExecutionCmd::Pause { ids } => set_status(ctx, &ids, "pausing"),
        ExecutionCmd::Resume { ids } => set_status(ctx, &ids, "resuming"),
    }
}

fn set_status(ctx: &Ctx, ids: &[String], status: &str) -> anyhow::Result<ExitCode> {
    for id in ids {
        let e = ctx.client.put(
            &format!("/executions/{}", encode_path(id)),
            &json!({ "status": status }),
        )?;
        print_execution(ctx, &e, false)?;
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_cast_by_runner_then_action_types() {
        let runner = json!({"cmd": {"type": "string"}, "timeout": {"type": "integer"}});
        let action = json!({"flag": {"type": "boolean"}, "ids": {"type": "array"},
                            "ratio": {"type": "number"}, "env": {"type": "object"}});
        let words: Vec<String> = [
            "timeout=5",
            "flag=yes",
            "ids=a, b",
            "ratio=0.5",
            "env=A=1,B=2",
            "other=x=y",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let p = parse_parameters(&words, &runner, &action).expect("cast");
        assert_eq!(
            Value::Object(p),
            json!({"timeout": 5, "flag": true, "ids": ["a", "b"], "ratio": 0.5,
                   "env": {"A": "1", "B": "2"}, "other": "x=y"})
        );
        let words: Vec<String> = ["timeout=1", "echo", "a=b"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let p = parse_parameters(&words, &runner, &action).expect("cast");
        assert_eq!(Value::Object(p), json!({"timeout": 1, "cmd": "echo a=b"}));
        let err = parse_parameters(&["timeout=x".to_string()], &runner, &action)
            .expect_err("not an integer");
        assert!(err.to_string().contains("timeout"), "{err}");
    }

    #[test]
    fn json_arrays_and_objects_are_parsed() {
        assert_eq!(cast("a", "[1,2]", Some("array")).expect("a"), json!([1, 2]));
        assert_eq!(
            cast("o", r#"{"k":[1]}"#, Some("object")).expect("o"),
            json!({"k": [1]})
        );
        assert_eq!(cast("s", "5", None).expect("s"), json!("5"));
    }
}
