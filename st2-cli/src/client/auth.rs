//! `st2 auth`, `st2 login`, `st2 whoami` and `st2 apikey`.

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::process::ExitCode;

use anyhow::Context as _;
use serde_json::{json, Value};

use super::cli::{ApikeyCmd, AuthArgs, LoginArgs};
use super::config::{write_credentials, ClientConfig};
use super::http::{create_token, write_cached_token, Client};
use super::output::{print_list, print_one, render, Format};
use super::Ctx;

/// Reads a password from the terminal (echo off when possible) or from stdin.
fn ask_password() -> anyhow::Result<String> {
    eprint!("Password: ");
    let _ = std::io::stderr().flush();
    let tty = std::io::stdin().is_terminal();
    let stty = |arg: &str| {
        if let Ok(t) = std::fs::File::open("/dev/tty") {
            let _ = std::process::Command::new("stty")
                .arg(arg)
                .stdin(t)
                .status();
        }
    };
    if tty {
        stty("-echo");
    }
    let mut line = String::new();
    let read = std::io::stdin().lock().read_line(&mut line);
    if tty {
        stty("echo");
        eprintln!();
    }
    read.context("cannot read the password")?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

fn http_client() -> anyhow::Result<reqwest::blocking::Client> {
    reqwest::blocking::Client::builder()
        .timeout(std::time::Duration::from_secs(60))
        .build()
        .context("cannot build the HTTP client")
}

/// `st2 auth USER [-p PW] [-t] [-l TTL]`: prints the new token (all fields, or only the token).
pub fn auth(config: &ClientConfig, args: &AuthArgs, format: Format) -> anyhow::Result<ExitCode> {
    let password = match &args.password {
        Some(p) => p.clone(),
        None => ask_password()?,
    };
    let token = create_token(
        &http_client()?,
        &config.auth_url,
        &args.username,
        &password,
        args.ttl,
    )?;
    if args.only_token {
        println!("{}", token.token);
    } else {
        let v = serde_json::to_value(&token).context("token")?;
        print_one(&v, &["user", "token", "expiry"], format);
    }
    Ok(ExitCode::SUCCESS)
}

/// `st2 login USER [-p PW]`: gets a token, caches it and writes the user into the config file.
pub fn login(config: &ClientConfig, args: &LoginArgs) -> anyhow::Result<ExitCode> {
    let password = match &args.password {
        Some(p) => p.clone(),
        None => ask_password()?,
    };
    let token = create_token(
        &http_client()?,
        &config.auth_url,
        &args.username,
        &password,
        args.ttl,
    )?;
    write_cached_token(&config.token_file(&args.username), &token)?;
    write_credentials(
        &config.config_file,
        &args.username,
        args.write_password.then_some(password.as_str()),
    )?;
    println!("Logged in as {}", args.username);
    Ok(ExitCode::SUCCESS)
}

/// `st2 whoami`: `GET /user`.
pub fn whoami(ctx: &Ctx) -> anyhow::Result<ExitCode> {
    let me = ctx.client.get("/user", &[])?;
    if ctx.format != Format::Table {
        println!("{}", render(&me, ctx.format));
        return Ok(ExitCode::SUCCESS);
    }
    let user = me.get("username").and_then(Value::as_str).unwrap_or("");
    println!("Currently logged in as \"{user}\".");
    println!();
    if let Some(a) = me.get("authentication") {
        if let Some(m) = a.get("method").and_then(Value::as_str) {
            println!("Authentication method: {m}");
        }
        if let Some(e) = a.get("token_expire").and_then(Value::as_str) {
            println!("Authentication token expire time: {e}");
        }
    }
    if let Some(r) = me.get("rbac") {
        println!();
        println!("RBAC:");
        let enabled = r.get("enabled").and_then(Value::as_bool).unwrap_or(false);
        println!(" - Enabled: {}", if enabled { "True" } else { "False" });
        let roles: Vec<String> = r
            .get("roles")
            .and_then(Value::as_array)
            .map(|l| {
                l.iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        println!(" - Roles: {}", roles.join(", "));
    }
    Ok(ExitCode::SUCCESS)
}

const APIKEY_FIELDS: &[&str] = &[
    "id",
    "uid",
    "user",
    "key",
    "metadata",
    "created_at",
    "enabled",
];

fn set_enabled(client: &Client, id: &str, enabled: bool) -> anyhow::Result<Value> {
    let path = format!("/apikeys/{}", super::encode_path(id));
    let mut key = client.get(&path, &[])?;
    if let Some(o) = key.as_object_mut() {
        o.insert("enabled".into(), Value::Bool(enabled));
    }
    client.put(&path, &key)
}

/// `st2 apikey create/list/get/delete/enable/disable`.
pub fn apikey(ctx: &Ctx, cmd: ApikeyCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        ApikeyCmd::Create {
            only_key,
            metadata,
            user,
        } => {
            let mut body = json!({});
            if let Some(u) = user {
                body["user"] = Value::String(u);
            }
            if let Some(m) = metadata {
                body["metadata"] =
                    serde_json::from_str(&m).context("--metadata must be a JSON object")?;
            }
            let key = ctx.client.post("/apikeys", &body)?;
            if only_key {
                println!("{}", key.get("key").and_then(Value::as_str).unwrap_or(""));
            } else {
                print_one(&key, APIKEY_FIELDS, ctx.format);
            }
        }
        ApikeyCmd::List { user, show_secrets } => {
            let mut q = Vec::new();
            if let Some(u) = user {
                q.push(("user", u));
            }
            if show_secrets {
                q.push(("show_secrets", "True".to_string()));
            }
            let keys = ctx.client.get("/apikeys", &q)?;
            print_list(
                &keys,
                &["id", "user", "metadata", "enabled"],
                ctx.format,
                None,
            );
        }
        ApikeyCmd::Get { id } => {
            let key = ctx.get_one("apikeys", "API Key", &id, &[])?;
            print_one(&key, APIKEY_FIELDS, ctx.format);
        }
        ApikeyCmd::Delete { id } => {
            let key = ctx.get_one("apikeys", "API Key", &id, &[])?;
            let kid = key.get("id").and_then(Value::as_str).unwrap_or(&id);
            ctx.client
                .delete(&format!("/apikeys/{}", super::encode_path(kid)), &[])?;
            println!("Resource with id \"{id}\" has been successfully deleted.");
        }
        ApikeyCmd::Enable { id } => {
            let key = set_enabled(&ctx.client, &id, true)?;
            print_one(&key, APIKEY_FIELDS, ctx.format);
        }
        ApikeyCmd::Disable { id } => {
            let key = set_enabled(&ctx.client, &id, false)?;
            print_one(&key, APIKEY_FIELDS, ctx.format);
        }
    }
    Ok(ExitCode::SUCCESS)
}
