//! The `st2` client: StackStorm's CLI commands (same names and flags) over the REST API.
//!
//! # Layout
//! - [`config`]: flags, environment, `~/.st2/config`, defaults.
//! - [`http`]: authentication, token cache, JSON calls, error answers, the SSE reader.
//! - [`output`]: JSON/YAML, tables, the execution view.
//! - [`cli`]: the command line (clap).
//! - [`auth`]: `auth`, `login`, `whoami`, `apikey`.
//! - [`actions`]: `action`, `run`, `execution`.
//! - [`resources`]: `rule`, `trigger`, `trigger-instance`, `rule-enforcement`, `webhook`,
//!   `trace`, `inquiry`, `key`.
//! - [`packs`]: the `pack` command.

pub mod actions;
pub mod auth;
pub mod cli;
pub mod config;
pub mod http;
pub mod output;
pub mod packs;
pub mod resources;

use std::process::ExitCode;

use serde_json::Value;

use self::cli::{Cli, Command};
use self::config::ClientConfig;
use self::http::{is_status, ApiError, Client};
use self::output::Format;

/// What every command gets: the connected client and the output format.
pub struct Ctx {
    /// The API client.
    pub client: Client,
    /// `-j`/`-y`/tables.
    pub format: Format,
}

/// A resource the user named that the server does not have (printed as
/// `<Display name> "<x>" is not found.`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotFound {
    /// Display name of the resource kind (`Action`).
    pub kind: String,
    /// What the user named.
    pub name: String,
}

impl std::fmt::Display for NotFound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} \"{}\" is not found.", self.kind, self.name)
    }
}

impl std::error::Error for NotFound {}

impl Ctx {
    /// `GET /<path>/<name>`, a 404 becoming [`NotFound`].
    pub fn get_one(
        &self,
        collection: &str,
        kind: &str,
        name: &str,
        query: &[(&str, String)],
    ) -> anyhow::Result<Value> {
        let path = format!("/{collection}/{}", encode_path(name));
        self.client.get(&path, query).map_err(|e| {
            if is_status(&e, 404) {
                NotFound {
                    kind: kind.into(),
                    name: name.into(),
                }
                .into()
            } else {
                e
            }
        })
    }
}

/// Percent-encodes a path segment (keeping `/` for webhook urls).
pub fn encode_path(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' | b':' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Parses the command line, runs the command and prints errors StackStorm's way.
pub fn main_with(cli: Cli) -> ExitCode {
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            if let Some(api) = e.downcast_ref::<ApiError>() {
                eprintln!("ERROR: {api}");
            } else if let Some(nf) = e.downcast_ref::<NotFound>() {
                eprintln!("{nf}");
            } else {
                eprintln!("ERROR: {e:#}");
            }
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let format = if cli.json {
        Format::Json
    } else if cli.yaml {
        Format::Yaml
    } else {
        Format::Table
    };
    let config = ClientConfig::resolve(&cli.conn)?;
    match cli.command {
        // Commands that create a token need no credential of their own.
        Command::Auth(a) => auth::auth(&config, &a, format),
        Command::Login(a) => auth::login(&config, &a),
        other => {
            let ctx = Ctx {
                client: Client::connect(config)?,
                format,
            };
            dispatch(&ctx, other)
        }
    }
}

fn dispatch(ctx: &Ctx, command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Auth(_) | Command::Login(_) => {
            anyhow::bail!("auth and login run before connecting")
        }
        Command::Whoami => auth::whoami(ctx),
        Command::Apikey(c) => auth::apikey(ctx, c),
        Command::Action(c) => actions::action(ctx, c),
        Command::Run(a) => actions::run(ctx, &a, false),
        Command::Execution(c) => actions::execution(ctx, c),
        Command::Rule(c) => resources::rule(ctx, c),
        Command::Trigger(c) => resources::trigger(ctx, c),
        Command::Sensor(c) => resources::sensor(ctx, c),
        Command::TriggerInstance(c) => resources::trigger_instance(ctx, c),
        Command::RuleEnforcement(c) => resources::rule_enforcement(ctx, c),
        Command::Webhook(c) => resources::webhook(ctx, c),
        Command::Trace(c) => resources::trace(ctx, c),
        Command::Inquiry(c) => resources::inquiry(ctx, c),
        Command::Key(c) => resources::key(ctx, c),
        Command::Pack(c) => packs::pack(ctx, c),
    }
}
