//! Action runners: what turns an action and its final parameters into a process, an HTTP
//! request, an SSH session or an immediate answer, and that into a StackStorm-shaped result.
//!
//! # Layout
//! - this file: the [`Runner`] trait, what a runner gets ([`RunContext`]) and returns
//!   ([`RunOutcome`]), live output ([`OutputSink`], [`OutputChunk`]), [`RunnerSettings`] and
//!   the [`RunnerRegistry`] (runner type name → runner).
//! - [`datastore`]: [`DatastoreAccess`], what Python actions' `action_service` calls reach, and
//!   the in-memory [`MemoryDatastore`].
//! - [`shell`]: `local-shell-cmd`, `local-shell-script`.
//! - [`python`]: `python-script`, with the StackStorm-compatible shim of `st2-core/python/`.
//! - [`http`]: the `http-request` runner.
//! - [`remote`]: `remote-shell-cmd`, `remote-shell-script` over SSH.
//! - [`noop`]: `noop`, `announcement`, `inquirer`.
//! - [`wasm`]: `wasm`, sandboxed WebAssembly (WASI) modules with wasmtime (cargo feature
//!   `wasm`, on by default).
//! - `args`: StackStorm's quoting and script argument passing; `params`: typed reads of runner
//!   parameters; `process`: child processes in their own session, streamed, killed as a whole,
//!   reported as [`ChildProcess`] so a restart can kill what a crash left running.
//!
//! # Contract
//! A runner receives **final** parameters: rendering (Jinja, `st2kv`, defaults) and casting to
//! the declared types happen before [`Runner::run`] is called, and the parameters are already
//! split into runner parameters (those the runner type declares) and action-only parameters.
//! A runner never fails with an error: anything that goes wrong becomes an outcome with status
//! `failed` and an `error` key in the result, as StackStorm's runner container does.
//!
//! Outcome statuses: `succeeded`, `failed`, `timeout` (the runner's `timeout` elapsed; the
//! processes were killed), `canceled` ([`RunContext::cancel`] fired; the processes were
//! killed), `abandoned` (a local process died of SIGTERM, as StackStorm maps exit code -15),
//! and `pending` (only `inquirer`: the service must create the inquiry and leave the execution
//! pending until it is answered).
//!
//! # Example
//! ```no_run
//! # async fn demo(action: st2_core::model::Action) {
//! use st2_core::runners::{RunContext, RunnerRegistry, RunnerSettings};
//!
//! let registry = RunnerRegistry::standard(RunnerSettings::default());
//! let (output, mut chunks) = tokio::sync::mpsc::channel(256);
//! let mut ctx = RunContext::new("5f1c0ffee0000000000000aa", action);
//! ctx.runner_params = serde_json::json!({"cmd": "echo hi"}).as_object().cloned().unwrap_or_default();
//! ctx.output = output;
//! let forward = tokio::spawn(async move {
//!     while let Some(chunk) = chunks.recv().await {
//!         println!("{}: {}", chunk.stream, chunk.data); // live output
//!     }
//! });
//! let outcome = registry.run(ctx).await; // looks up ctx.action.runner_type
//! let _ = forward.await; // ends once the runner dropped its sender
//! println!("{} {}", outcome.status, outcome.result);
//! # }
//! ```
//!
//! This module must not touch the store or the bus: publishing announcements, dispatching
//! inquiry triggers, storing results and output is the action runner service's job.

mod args;
pub mod datastore;
pub mod http;
pub mod noop;
mod params;
mod process;
pub mod python;
pub mod remote;
pub mod shell;
#[cfg(feature = "wasm")]
pub mod wasm;

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::sync::mpsc;
pub use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::model::{Action, ExecutionStatus, JsonMap};

pub use datastore::{DatastoreAccess, DatastoreError, KvKey, MemoryDatastore};
pub use process::{ChildProcess, ProcessSink};

/// Which stream a piece of live output came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputStream {
    /// Standard output (StackStorm's `output_type: stdout`).
    Stdout,
    /// Standard error (`output_type: stderr`).
    Stderr,
}

impl OutputStream {
    /// The wire name, `stdout` or `stderr`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stdout => "stdout",
            Self::Stderr => "stderr",
        }
    }
}

impl fmt::Display for OutputStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A piece of live output, sent while the action runs (StackStorm's
/// `action_execution_output` documents). Chunks are what one read returned, not lines; text is
/// UTF-8 with invalid bytes replaced, never split inside a character.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputChunk {
    /// The stream.
    pub stream: OutputStream,
    /// The text.
    pub data: String,
}

/// Where a runner sends live output: a bounded channel. A full channel makes the runner wait
/// (and so the action, once its pipe fills), which bounds memory; a closed one (receiver
/// dropped) just discards the chunks. The complete output is in the result either way.
/// Runners drop their sender when they return, so the receiver ends after the last chunk.
pub type OutputSink = mpsc::Sender<OutputChunk>;

/// An [`OutputSink`] whose chunks go nowhere (the receiver is already dropped).
pub fn discard_output() -> OutputSink {
    mpsc::channel(1).0
}

/// Everything a runner needs for one execution.
pub struct RunContext {
    /// The execution's id (`ST2_ACTION_EXECUTION_ID`; remote scripts are copied to
    /// `<dir>/<execution_id>/`).
    pub execution_id: String,
    /// The action being run (its `pack`, `name`, `ref`, `entry_point` and parameter specs:
    /// `position` decides positional script arguments, `type` how they are serialized).
    pub action: Action,
    /// Final values of the runner type's parameters (`cmd`, `timeout`, `env`, `hosts`, ...).
    pub runner_params: JsonMap,
    /// Final values of the action-only parameters (script arguments, `run(**kwargs)`,
    /// `method`/`body` of `core.http`, ...).
    pub action_params: JsonMap,
    /// The pack's directory; script and Python actions need it (`actions/<entry_point>`).
    pub pack_dir: Option<PathBuf>,
    /// The pack's virtualenv; Python actions run with its `bin/python`. `None`: the configured
    /// [`RunnerSettings::python_binary`].
    pub virtualenv: Option<PathBuf>,
    /// The pack's config (`self.config` of Python actions), schema defaults already merged.
    pub config: JsonMap,
    /// The user the execution runs for (`action_context.user`; owner of `st2kv.user` keys).
    pub user: String,
    /// The public API URL including `/api/v1` (`ST2_ACTION_API_URL`), when there is one.
    pub api_url: Option<String>,
    /// A token valid for the execution's lifetime (`ST2_ACTION_AUTH_TOKEN`), when auth is on.
    pub auth_token: Option<String>,
    /// Live output.
    pub output: OutputSink,
    /// Fires when the execution is canceled: the runner stops, kills what it started and
    /// returns status `canceled`.
    pub cancel: CancellationToken,
    /// The datastore Python actions reach through `self.action_service`; `None`: those calls
    /// fail inside the action.
    pub datastore: Option<Arc<dyn DatastoreAccess>>,
    /// Where the local runners report each child process they start (its pid, process group
    /// and start time), as soon as it is started; `None`: not reported.
    pub processes: Option<ProcessSink>,
}

impl RunContext {
    /// A context for `action` with empty parameters and config, user `stanley`, no pack
    /// directory, no datastore, output discarded and a fresh cancellation token; set the
    /// fields that matter (they are all public).
    pub fn new(execution_id: impl Into<String>, action: Action) -> Self {
        Self {
            execution_id: execution_id.into(),
            action,
            runner_params: JsonMap::new(),
            action_params: JsonMap::new(),
            pack_dir: None,
            virtualenv: None,
            config: JsonMap::new(),
            user: "stanley".into(),
            api_url: None,
            auth_token: None,
            output: discard_output(),
            cancel: CancellationToken::new(),
            datastore: None,
            processes: None,
        }
    }

    /// The pack's `actions/` directory.
    fn actions_dir(&self) -> Option<PathBuf> {
        self.pack_dir.as_ref().map(|p| p.join("actions"))
    }

    /// The absolute path of the action's entry point (StackStorm's
    /// `get_entry_point_abs_path`: absolute paths are kept, relative ones are under
    /// `<pack>/actions/`).
    fn entry_point_path(&self) -> Result<PathBuf, RunnerError> {
        let ep = self.action.entry_point.trim();
        if ep.is_empty() {
            return Err(RunnerError::Invalid(format!(
                "Action \"{}\" is missing entry_point attribute",
                self.action_ref()
            )));
        }
        let p = PathBuf::from(ep);
        if p.is_absolute() {
            return Ok(p);
        }
        let dir = self.actions_dir().ok_or_else(|| {
            RunnerError::Invalid(format!(
                "the directory of pack \"{}\" is unknown, so entry_point \"{ep}\" cannot be found",
                self.action.pack
            ))
        })?;
        Ok(dir.join(p))
    }

    /// `pack.name`, even when the action's `ref` field was left empty.
    fn action_ref(&self) -> String {
        if self.action.action_ref.is_empty() {
            format!("{}.{}", self.action.pack, self.action.name)
        } else {
            self.action.action_ref.clone()
        }
    }

    /// The `ST2_ACTION_*` variables every StackStorm action gets (`ActionRunner.
    /// _get_common_action_env_variables`): pack, execution id, API URL, debug flag (Python's
    /// `str(bool)`) and, with auth on, the token.
    fn st2_env(&self) -> Vec<(String, String)> {
        let debug = params::bool_param(&self.runner_params, "debug", false);
        let mut env = vec![
            ("ST2_ACTION_PACK_NAME".to_string(), self.action.pack.clone()),
            (
                "ST2_ACTION_EXECUTION_ID".to_string(),
                self.execution_id.clone(),
            ),
        ];
        if let Some(url) = &self.api_url {
            env.push(("ST2_ACTION_API_URL".to_string(), url.clone()));
        }
        env.push((
            "ST2_ACTION_DEBUG".to_string(),
            if debug { "True" } else { "False" }.to_string(),
        ));
        if let Some(token) = &self.auth_token {
            env.push(("ST2_ACTION_AUTH_TOKEN".to_string(), token.clone()));
        }
        env
    }
}

impl fmt::Debug for RunContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunContext")
            .field("execution_id", &self.execution_id)
            .field("action", &self.action_ref())
            .field("runner", &self.action.runner_type)
            .field("pack_dir", &self.pack_dir)
            .field("virtualenv", &self.virtualenv)
            .field("user", &self.user)
            .field("api_url", &self.api_url)
            .field("auth_token", &self.auth_token.as_ref().map(|_| "********"))
            .field("datastore", &self.datastore.is_some())
            .finish_non_exhaustive()
    }
}

/// What a run ended with: the execution's new status and its result document.
#[derive(Debug, Clone, PartialEq)]
pub struct RunOutcome {
    /// `succeeded`, `failed`, `timeout`, `canceled`, `abandoned` or (inquirer) `pending`.
    pub status: ExecutionStatus,
    /// The result, shaped like StackStorm's for the runner type.
    pub result: Value,
}

impl RunOutcome {
    /// An outcome.
    pub fn new(status: ExecutionStatus, result: Value) -> Self {
        Self { status, result }
    }

    /// A failure before or around the action itself: `{"error": message}` (StackStorm's
    /// runner container puts an exception's text there).
    pub fn failed(message: impl fmt::Display) -> Self {
        Self::new(
            ExecutionStatus::Failed,
            json!({ "error": message.to_string() }),
        )
    }

    /// Whether the execution must wait for an answer (inquirer).
    pub fn is_pending(&self) -> bool {
        self.status == ExecutionStatus::Pending
    }
}

/// Why a runner could not do its job; turned into a `failed` [`RunOutcome`] at the
/// [`Runner::run`] boundary, never returned to callers.
#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    /// Parameters or action metadata are unusable.
    #[error("{0}")]
    Invalid(String),
    /// A process could not be started or watched.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The I/O error.
        source: std::io::Error,
    },
}

impl RunnerError {
    fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            what: what.into(),
            source,
        }
    }
}

impl From<RunnerError> for RunOutcome {
    fn from(e: RunnerError) -> Self {
        RunOutcome::failed(e)
    }
}

/// A kind of runner. One value serves every execution of its runner type, concurrently.
#[async_trait]
pub trait Runner: Send + Sync {
    /// The runner type name this runner implements (`local-shell-cmd`, `python-script`, ...).
    fn name(&self) -> &str;

    /// Runs one execution to its end (or to `pending` for inquiries). Never panics on bad
    /// input and never returns an error: failures are outcomes.
    async fn run(&self, ctx: RunContext) -> RunOutcome;
}

/// Settings shared by the runners (StackStorm's `[actionrunner]`, `[system_user]` and
/// `[ssh_runner]` options).
#[derive(Debug, Clone, PartialEq)]
pub struct RunnerSettings {
    /// Python for `python-script` actions of packs without a virtualenv (`python3`).
    pub python_binary: String,
    /// Where runners keep files they unpack (the Python shim): created when needed.
    pub cache_dir: PathBuf,
    /// Where short-lived private files go (the Python runner's control socket); keep the
    /// path short, a Unix socket path is at most 107 bytes.
    pub runtime_dir: PathBuf,
    /// SSH user when a remote action gives no `username` (StackStorm's `system_user.user`);
    /// `None`: the user this process runs as.
    pub ssh_user: Option<String>,
    /// Private key file when a remote action gives neither `password` nor `private_key`
    /// (StackStorm's `system_user.ssh_key_file`).
    pub ssh_key_file: Option<PathBuf>,
    /// How long an SSH connection (TCP, handshake, authentication) may take.
    pub ssh_connect_timeout: Duration,
    /// At most this many hosts of one `parallel` remote action at once
    /// (`ssh_runner.max_parallel_actions`).
    pub ssh_max_parallel: usize,
}

impl Default for RunnerSettings {
    fn default() -> Self {
        let tmp = std::env::temp_dir();
        Self {
            python_binary: "python3".into(),
            cache_dir: tmp.join("st2-runners"),
            runtime_dir: tmp,
            ssh_user: None,
            ssh_key_file: None,
            ssh_connect_timeout: Duration::from_secs(60),
            ssh_max_parallel: 50,
        }
    }
}

impl RunnerSettings {
    /// Settings from the platform configuration: `[actionrunner] python_binary`, the cache under
    /// `<data_dir>/cache/runners`.
    pub fn from_config(config: &Config) -> Self {
        Self {
            python_binary: config.actionrunner.python_binary.clone(),
            cache_dir: config.system.data_dir.join("cache").join("runners"),
            ..Self::default()
        }
    }
}

/// Runners by runner type name.
#[derive(Clone, Default)]
pub struct RunnerRegistry {
    runners: BTreeMap<String, Arc<dyn Runner>>,
    settings: Arc<RunnerSettings>,
}

impl fmt::Debug for RunnerRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.runners.keys()).finish()
    }
}

impl RunnerRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every runner this module implements: `local-shell-cmd`, `local-shell-script`,
    /// `python-script`, `http-request`, `remote-shell-cmd`, `remote-shell-script`, `noop`,
    /// `announcement`, `inquirer` and (with the `wasm` feature) `wasm`.
    pub fn standard(settings: RunnerSettings) -> Self {
        let settings = Arc::new(settings);
        let mut r = Self {
            settings: Arc::clone(&settings),
            ..Self::new()
        };
        r.register(Arc::new(shell::LocalShellRunner::cmd()));
        r.register(Arc::new(shell::LocalShellRunner::script()));
        r.register(Arc::new(python::PythonRunner::new(Arc::clone(&settings))));
        r.register(Arc::new(http::HttpRunner::new()));
        r.register(Arc::new(remote::RemoteShellRunner::cmd(Arc::clone(
            &settings,
        ))));
        r.register(Arc::new(remote::RemoteShellRunner::script(settings)));
        r.register(Arc::new(noop::NoopRunner));
        r.register(Arc::new(noop::AnnouncementRunner));
        r.register(Arc::new(noop::InquirerRunner));
        #[cfg(feature = "wasm")]
        r.register(Arc::new(wasm::WasmRunner::new()));
        r
    }

    /// The settings the standard runners were made with (the Python interpreter, cache and
    /// runtime dirs), which the Python sensor container shares.
    pub fn settings(&self) -> &Arc<RunnerSettings> {
        &self.settings
    }

    /// Adds (or replaces, returning the old one) the runner for `runner.name()`.
    pub fn register(&mut self, runner: Arc<dyn Runner>) -> Option<Arc<dyn Runner>> {
        self.runners.insert(runner.name().to_string(), runner)
    }

    /// The runner for a runner type name; like StackStorm, `_` may stand for `-`
    /// (`local_shell_cmd`).
    pub fn get(&self, name: &str) -> Option<Arc<dyn Runner>> {
        self.runners
            .get(name)
            .or_else(|| self.runners.get(&name.replace('_', "-")))
            .cloned()
    }

    /// The registered runner type names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.runners.keys().map(String::as_str)
    }

    /// Runs `ctx` with the runner of `ctx.action.runner_type`; an unknown runner is a
    /// `failed` outcome.
    pub async fn run(&self, ctx: RunContext) -> RunOutcome {
        match self.get(&ctx.action.runner_type) {
            Some(r) => r.run(ctx).await,
            None => RunOutcome::failed(format!(
                "Failed to find runner {}. Available runners are: {}",
                ctx.action.runner_type,
                self.names().collect::<Vec<_>>().join(", ")
            )),
        }
    }
}
