//! `st2 pack`: list, get, install and remove (which start a `packs.install`/`packs.uninstall`
//! execution and wait on it, showing its tasks as they finish), register, search, show, config.

use std::collections::HashMap;
use std::io::{BufRead as _, Write as _};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context as _};
use serde_json::{json, Map, Value};

use super::actions::{cast, COMPLETED};
use super::cli::PackCmd;
use super::http::is_status;
use super::output::{execution_text, lookup, print_list, print_one, render, Format};
use super::{encode_path, Ctx};

const PACK_COLUMNS: &[&str] = &["ref", "name", "description", "version", "author"];
const PACK_ORDER: &[&str] = &[
    "name",
    "version",
    "author",
    "email",
    "keywords",
    "description",
];

/// `st2 pack ...`.
pub fn pack(ctx: &Ctx, cmd: PackCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        PackCmd::List => {
            let list = ctx
                .client
                .get("/packs", &[("include_attributes", PACK_COLUMNS.join(","))])?;
            print_list(&list, PACK_COLUMNS, ctx.format, None);
            Ok(ExitCode::SUCCESS)
        }
        PackCmd::Get { pack } => {
            let p = ctx.get_one("packs", "Pack", &pack, &[])?;
            print_one(&p, PACK_ORDER, ctx.format);
            Ok(ExitCode::SUCCESS)
        }
        PackCmd::Install {
            packs,
            force,
            skip_dependencies,
        } => install(ctx, &packs, force, skip_dependencies),
        PackCmd::Remove { packs } => remove(ctx, &packs),
        PackCmd::Register { packs, types } => {
            let mut body = json!({});
            if !packs.is_empty() {
                body["packs"] = json!(packs);
            }
            if !types.is_empty() {
                body["types"] = json!(types);
            }
            let r = ctx.client.post("/packs/register", &body)?;
            if ctx.format == Format::Table {
                let rows: Vec<Value> = r
                    .as_object()
                    .map(|o| {
                        o.iter()
                            .map(|(k, v)| json!({"content": k, "count": v}))
                            .collect()
                    })
                    .unwrap_or_default();
                print_list(&Value::Array(rows), &["content", "count"], ctx.format, None);
            } else {
                println!("{}", render(&r, ctx.format));
            }
            Ok(ExitCode::SUCCESS)
        }
        PackCmd::Search { query } => {
            let r = ctx
                .client
                .post("/packs/index/search", &json!({"query": query}))?;
            print_list(
                &r,
                &["name", "description", "version", "author"],
                ctx.format,
                None,
            );
            Ok(ExitCode::SUCCESS)
        }
        PackCmd::Show { pack } => {
            let r = ctx
                .client
                .post("/packs/index/search", &json!({"pack": pack}))?;
            if r.is_null() || r.as_object().is_some_and(|o| o.is_empty()) {
                bail!("Pack \"{pack}\" is not found in the index.");
            }
            print_one(&r, PACK_ORDER, ctx.format);
            Ok(ExitCode::SUCCESS)
        }
        PackCmd::Config { pack } => config(ctx, &pack),
    }
}

/// The execution id of a `202 {"execution_id"}` answer.
fn execution_id(answer: &Value) -> anyhow::Result<String> {
    answer
        .get("execution_id")
        .and_then(Value::as_str)
        .map(str::to_string)
        .context("the server did not answer with an execution_id")
}

/// Waits on a pack execution, printing `[ status ] task` as its tasks finish. Returns the
/// final execution.
fn wait_with_progress(ctx: &Ctx, id: &str) -> anyhow::Result<Value> {
    let path = format!("/executions/{}", encode_path(id));
    let children = format!("{path}/children");
    let mut seen: HashMap<String, String> = HashMap::new();
    let show = ctx.format == Format::Table;
    loop {
        let e = ctx.client.get(&path, &[])?;
        if show {
            if let Ok(tasks) = ctx.client.get(&children, &[("depth", "-1".to_string())]) {
                for t in tasks.as_array().cloned().unwrap_or_default() {
                    let tid = t
                        .get("id")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string();
                    let status = t.get("status").and_then(Value::as_str).unwrap_or("");
                    if seen.get(&tid).map(String::as_str) == Some(status) {
                        continue;
                    }
                    seen.insert(tid, status.to_string());
                    let task = lookup(&t, "context.orquesta.task_name")
                        .as_str()
                        .or_else(|| lookup(&t, "context.chain.name").as_str())
                        .or_else(|| lookup(&t, "action.ref").as_str())
                        .unwrap_or("");
                    println!("\t[ {status} ] {task}");
                }
            }
        }
        let status = e.get("status").and_then(Value::as_str).unwrap_or("");
        if COMPLETED.contains(&status) || status == "paused" {
            return Ok(e);
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn failed(ctx: &Ctx, e: &Value) -> bool {
    if e.get("status").and_then(Value::as_str) == Some("succeeded") {
        return false;
    }
    if ctx.format == Format::Table {
        print!(
            "{}",
            execution_text(
                e,
                &[
                    "id",
                    "action.ref",
                    "status",
                    "start_timestamp",
                    "end_timestamp",
                    "result"
                ]
            )
        );
    } else {
        println!("{}", render(e, ctx.format));
    }
    true
}

fn install(
    ctx: &Ctx,
    packs: &[String],
    force: bool,
    skip_dependencies: bool,
) -> anyhow::Result<ExitCode> {
    if ctx.format == Format::Table {
        for p in packs {
            // A summary of what will be installed, when the index knows the pack.
            if let Ok(info) = ctx.client.post("/packs/index/search", &json!({"pack": p})) {
                if let Some(content) = info.get("content").and_then(Value::as_object) {
                    let parts: Vec<String> = content
                        .iter()
                        .filter_map(|(k, v)| {
                            v.get("count")
                                .and_then(Value::as_u64)
                                .map(|n| format!("{n} {k}"))
                        })
                        .collect();
                    println!("For the \"{p}\" pack, the following content will be registered:");
                    println!("{}\n", parts.join(" | "));
                }
            }
        }
    }
    let answer = ctx.client.post(
        "/packs/install",
        &json!({"packs": packs, "force": force, "skip_dependencies": skip_dependencies}),
    )?;
    let id = execution_id(&answer)?;
    let e = wait_with_progress(ctx, &id)?;
    if failed(ctx, &e) {
        return Ok(ExitCode::FAILURE);
    }
    let output = lookup(&e, "result.output");
    let installed: Vec<String> = output
        .get("packs_list")
        .and_then(Value::as_array)
        .map(|l| {
            l.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    if let Some(warnings) = output.get("warning_list").and_then(Value::as_array) {
        for w in warnings.iter().filter_map(Value::as_str) {
            eprintln!("WARNING: {w}");
        }
    }
    match installed.as_slice() {
        [one] => {
            let p = ctx.get_one("packs", "Pack", one, &[])?;
            print_one(&p, PACK_ORDER, ctx.format);
        }
        _ => {
            let list = ctx
                .client
                .get("/packs", &[("include_attributes", PACK_COLUMNS.join(","))])?;
            let shown: Vec<Value> = list
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter(|p| {
                    installed.is_empty()
                        || p.get("ref")
                            .and_then(Value::as_str)
                            .is_some_and(|r| installed.iter().any(|i| i == r))
                })
                .collect();
            print_list(&Value::Array(shown), PACK_COLUMNS, ctx.format, None);
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn remove(ctx: &Ctx, packs: &[String]) -> anyhow::Result<ExitCode> {
    let before = ctx.client.get("/packs", &[])?;
    let answer = ctx
        .client
        .post("/packs/uninstall", &json!({"packs": packs}))?;
    let id = execution_id(&answer)?;
    let e = wait_with_progress(ctx, &id)?;
    if failed(ctx, &e) {
        return Ok(ExitCode::FAILURE);
    }
    let mut removed = Vec::new();
    for p in packs {
        match ctx.client.get(&format!("/packs/{}", encode_path(p)), &[]) {
            Err(err) if is_status(&err, 404) => {}
            Err(err) => return Err(err),
            Ok(_) => bail!("Pack {p} has not been removed properly."),
        }
        if let Some(old) = before.as_array().and_then(|l| {
            l.iter()
                .find(|x| x.get("ref").and_then(Value::as_str) == Some(p))
        }) {
            removed.push(old.clone());
        }
    }
    print_list(&Value::Array(removed), PACK_COLUMNS, ctx.format, None);
    Ok(ExitCode::SUCCESS)
}

/// `st2 pack config NAME`: asks each property of the pack's config schema (default shown in
/// brackets, empty keeps it) and saves the config.
fn config(ctx: &Ctx, pack: &str) -> anyhow::Result<ExitCode> {
    let schema = ctx.get_one("config_schemas", "Config schema", pack, &[])?;
    let props = schema
        .get("attributes")
        .or_else(|| schema.get("properties"))
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let current = match ctx
        .client
        .get(&format!("/configs/{}", encode_path(pack)), &[])
    {
        Ok(c) => c.get("values").cloned().unwrap_or(Value::Null),
        Err(e) if is_status(&e, 404) => Value::Null,
        Err(e) => return Err(e),
    };
    let mut values = Map::new();
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    for (name, spec) in &props {
        let ty = spec.get("type").and_then(Value::as_str);
        let default = current.get(name).or_else(|| spec.get("default")).cloned();
        let secret = spec.get("secret").and_then(Value::as_bool).unwrap_or(false);
        let shown = match (&default, secret) {
            (Some(_), true) => " [********]".to_string(),
            (Some(Value::String(s)), _) => format!(" [{s}]"),
            (Some(v), _) => format!(" [{v}]"),
            (None, _) => String::new(),
        };
        print!("{name} ({}){shown}: ", ty.unwrap_or("string"));
        let _ = std::io::stdout().flush();
        let answer = lines.next().transpose()?.unwrap_or_default();
        let answer = answer.trim();
        if answer.is_empty() {
            if let Some(d) = default {
                values.insert(name.clone(), d);
            }
            continue;
        }
        values.insert(name.clone(), cast(name, answer, ty)?);
    }
    let saved = ctx.client.put(
        &format!("/configs/{}", encode_path(pack)),
        &Value::Object(values),
    )?;
    print_one(&saved, &["pack", "values"], ctx.format);
    Ok(ExitCode::SUCCESS)
}
