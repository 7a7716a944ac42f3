//! `wasm`: our own runner (StackStorm has none). The action's entry point is a WebAssembly
//! module, binary (`.wasm`) or text (`.wat`), run with wasmtime as a WASI preview 1 command:
//! its `_start` export, in a sandbox that has only what the action's metadata grants.
//!
//! - **Input**: the action-only parameters, as one JSON object on standard input. No
//!   arguments (not even `argv[0]`). Environment: the `env` runner parameter plus
//!   `ST2_ACTION_PACK_NAME` and `ST2_ACTION_EXECUTION_ID`, nothing of this process's own.
//! - **Result** (the `python-script` shape, since a module is a program that returns a
//!   value, as a Python action's `run()` does): `{stdout, stderr, exit_code, result}`, where
//!   `result` is standard output (one trailing newline dropped) decoded as JSON when it
//!   parses, kept as a string otherwise, `null` when empty. Exit code 0 (returning from
//!   `_start` or `proc_exit(0)`) → `succeeded`; any other exit code or a trap → `failed`,
//!   with an `error` key (a trap has exit code 1). Standard output and error are each capped
//!   at [`MAX_OUTPUT_BYTES`] (a module writing more traps) and sent as live output when the
//!   module ends.
//! - **Files**: none, unless `preopened_dirs` grants directories (WASI preopens, read-only
//!   unless marked `:rw`): a list of `"<host>"`, `"<host>:<guest>"` or
//!   `"<host>:<guest>:rw"`, or an object `{"<guest>": "<host>"}` (read-only). A relative host
//!   path is under the pack's directory; the guest path defaults to the host path as given.
//! - **Network**: none. WASI preview 1 has no way to open a socket, so a non-empty
//!   `allowed_hosts` is refused (the execution fails saying so) rather than silently ignored.
//! - **CPU**: `timeout` seconds (default 60; 0 = none) of wall time, enforced by epoch
//!   interruption: a ticker thread advances the engine's epoch every [`EPOCH_TICK`], and
//!   at every tick a running module yields to the executor, where the timeout and
//!   cancellation are watched; the module is then dropped mid-instruction → status `timeout`
//!   (exit code -9, like the local runners) or `canceled`. `fuel` optionally bounds the
//!   instructions executed; running out is a `timeout` too.
//! - **Memory**: linear memory capped at `memory_limit_mb` MiB (default 64), one memory per
//!   module: growing past it traps (an initial size past it fails instantiation) and the
//!   execution fails with an error naming the limit.
//! - **Compilation**: once per module file, cached in the runner by path and the file's
//!   modification time and size (a changed file is compiled again), as a pre-linked
//!   [`InstancePre`], so a cached run is instantiation and the call only. A module that does
//!   not parse, validate or link fails with an error naming the file.
//!
//! The engine is created on first use, so a registry that never runs a WASM action pays
//! nothing for it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use serde_json::{json, Map, Value};
use wasmtime::{
    Config, Engine, InstancePre, Linker, Module, ResourceLimiter, Store, Trap, UpdateDeadline,
};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::p2::pipe::{MemoryInputPipe, MemoryOutputPipe};
use wasmtime_wasi::{FsPerms, I32Exit, WasiCtxBuilder};

use super::params::{env_param, timeout_param};
use super::shell::strip_shell_chars;
use super::{OutputChunk, OutputStream, RunContext, RunOutcome, Runner, RunnerError};
use crate::model::{ExecutionStatus, JsonMap};

/// Default `timeout` of WASM actions, in seconds (the runner type's default).
pub const DEFAULT_TIMEOUT: u64 = 60;
/// Default `memory_limit_mb`.
pub const DEFAULT_MEMORY_LIMIT_MB: u64 = 64;
/// At most this many bytes of standard output, and as many of standard error, per run.
pub const MAX_OUTPUT_BYTES: usize = 16 << 20;
/// How often the engine's epoch advances: the granularity of timeouts and cancellation.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);
/// At most this many table elements per table (function tables of compiled languages are
/// far smaller).
const MAX_TABLE_ELEMENTS: usize = 1 << 20;

/// The `wasm` runner: one engine and one compiled-module cache for every execution.
pub struct WasmRunner {
    /// Engine and linker, made on first use (`Err`: the engine could not be created).
    shared: OnceLock<Result<Shared, String>>,
    /// Compiled modules by path.
    cache: Mutex<HashMap<PathBuf, CachedModule>>,
    /// How many modules were compiled (cache misses), for observability and tests.
    compilations: AtomicU64,
}

/// What every execution shares.
struct Shared {
    engine: Engine,
    /// WASI preview 1, asynchronous flavour (a run must be droppable mid-way).
    linker: Linker<State>,
}

/// A compiled, pre-linked module and what it was compiled from.
struct CachedModule {
    stamp: FileStamp,
    pre: InstancePre<State>,
}

/// What tells a module file changed: modification time and size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    modified: Option<SystemTime>,
    len: u64,
}

/// A store's data: the WASI context and the limits.
struct State {
    wasi: WasiP1Ctx,
    limits: Limits,
}

/// Caps linear memory and tables; remembers a refused memory growth so the error can say so.
struct Limits {
    max_memory: usize,
    /// The size a refused growth asked for, in bytes.
    refused: Option<usize>,
}

impl ResourceLimiter for Limits {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_memory {
            self.refused = Some(desired);
            wasmtime::bail!(
                "linear memory of {desired} bytes exceeds the limit of {} bytes",
                self.max_memory
            );
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }

    fn memories(&self) -> usize {
        1
    }
}

/// The runner parameters, read and checked.
#[derive(Debug)]
struct Options {
    timeout: Option<Duration>,
    timeout_shown: String,
    memory_limit_mb: u64,
    fuel: Option<u64>,
    preopens: Vec<Preopen>,
    env: Vec<(String, String)>,
}

/// One granted directory.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Preopen {
    host: PathBuf,
    guest: String,
    writable: bool,
}

/// How a run ended, before it is turned into an outcome.
enum Ending {
    /// `_start` returned or the module called `proc_exit`.
    Exited(i32),
    /// A trap or a host error: the message.
    Trapped(String),
    /// The memory limit refused a growth of this many bytes.
    OutOfMemory(usize),
    /// Fuel ran out.
    OutOfFuel,
    TimedOut,
    Canceled,
}

impl Default for WasmRunner {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for WasmRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WasmRunner")
            .field("compilations", &self.compilations())
            .finish_non_exhaustive()
    }
}

impl WasmRunner {
    /// A runner; its engine is made when the first WASM action runs.
    pub fn new() -> Self {
        Self {
            shared: OnceLock::new(),
            cache: Mutex::new(HashMap::new()),
            compilations: AtomicU64::new(0),
        }
    }

    /// How many modules this runner compiled so far (cache misses).
    pub fn compilations(&self) -> u64 {
        self.compilations.load(Ordering::Relaxed)
    }

    /// The engine and linker, made (with the epoch ticker) the first time.
    fn shared(&self) -> Result<&Shared, RunnerError> {
        self.shared
            .get_or_init(|| {
                let shared = make_shared().map_err(|e| error_text(&e))?;
                start_ticker(&shared.engine);
                Ok(shared)
            })
            .as_ref()
            .map_err(|e| RunnerError::Invalid(format!("cannot start the WebAssembly engine: {e}")))
    }

    /// The compiled module at `path`, compiling it (off the async executor) when it is not
    /// cached or the file changed.
    async fn module(
        &self,
        shared: &Shared,
        path: &Path,
    ) -> Result<InstancePre<State>, RunnerError> {
        let meta = std::fs::metadata(path).map_err(|e| {
            RunnerError::Invalid(format!(
                "cannot read WebAssembly module {}: {e}",
                path.display()
            ))
        })?;
        let stamp = FileStamp {
            modified: meta.modified().ok(),
            len: meta.len(),
        };
        if let Some(hit) = self
            .cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(path)
            .filter(|c| c.stamp == stamp)
        {
            return Ok(hit.pre.clone());
        }
        let engine = shared.engine.clone();
        let file = path.to_path_buf();
        let module = tokio::task::spawn_blocking(move || Module::from_file(&engine, &file))
            .await
            .map_err(|e| RunnerError::Invalid(format!("module compilation did not finish: {e}")))?
            .map_err(|e| {
                RunnerError::Invalid(format!(
                    "invalid WebAssembly module {}: {}",
                    path.display(),
                    error_text(&e)
                ))
            })?;
        self.compilations.fetch_add(1, Ordering::Relaxed);
        let pre = shared.linker.instantiate_pre(&module).map_err(|e| {
            RunnerError::Invalid(format!(
                "WebAssembly module {} cannot be linked (only WASI preview 1 imports are \
                 available): {}",
                path.display(),
                error_text(&e)
            ))
        })?;
        tracing::debug!(module = %path.display(), "wasm runner: module compiled");
        self.cache.lock().unwrap_or_else(|p| p.into_inner()).insert(
            path.to_path_buf(),
            CachedModule {
                stamp,
                pre: pre.clone(),
            },
        );
        Ok(pre)
    }

    async fn execute(&self, ctx: &RunContext) -> Result<RunOutcome, RunnerError> {
        let path = ctx.entry_point_path()?;
        let opts = Options::read(ctx)?;
        let stdin = serde_json::to_vec(&ctx.action_params)
            .map_err(|e| RunnerError::Invalid(format!("cannot encode the parameters: {e}")))?;
        let env = [
            ("ST2_ACTION_PACK_NAME", ctx.action.pack.as_str()),
            ("ST2_ACTION_EXECUTION_ID", ctx.execution_id.as_str()),
        ];
        let (ending, out, err) = self
            .run_sandboxed(&path, &opts, stdin, &env, &ctx.cancel)
            .await?;
        for (stream, data) in [(OutputStream::Stdout, &out), (OutputStream::Stderr, &err)] {
            if !data.is_empty() {
                let _ = ctx
                    .output
                    .send(OutputChunk {
                        stream,
                        data: data.clone(),
                    })
                    .await;
            }
        }
        Ok(outcome(ending, out, err, &opts, &path))
    }

    /// Runs the module at `path` once, outside any execution (WASM sensors): `stdin` as its
    /// standard input, `env` as its environment, under the limits of `params` (the runner's
    /// parameters: `timeout`, `memory_limit_mb`, `fuel`, `env`; relative `preopened_dirs` are
    /// under `base_dir`). Returns the status and the result document an action would get.
    pub async fn run_module(
        &self,
        path: &Path,
        params: &JsonMap,
        base_dir: Option<&Path>,
        stdin: Vec<u8>,
        env: &[(&str, &str)],
        cancel: &tokio_util::sync::CancellationToken,
    ) -> RunOutcome {
        let run = async {
            let opts = Options::from_params(params, base_dir)?;
            let (ending, out, err) = self.run_sandboxed(path, &opts, stdin, env, cancel).await?;
            Ok::<_, RunnerError>(outcome(ending, out, err, &opts, path))
        };
        run.await.unwrap_or_else(RunOutcome::from)
    }

    /// One sandboxed run of the module at `path`: how it ended, its stdout and its stderr.
    async fn run_sandboxed(
        &self,
        path: &Path,
        opts: &Options,
        stdin: Vec<u8>,
        env: &[(&str, &str)],
        cancel: &tokio_util::sync::CancellationToken,
    ) -> Result<(Ending, String, String), RunnerError> {
        let shared = self.shared()?;
        let pre = self.module(shared, path).await?;
        let stdout = MemoryOutputPipe::new(MAX_OUTPUT_BYTES);
        let stderr = MemoryOutputPipe::new(MAX_OUTPUT_BYTES);
        let mut wasi = WasiCtxBuilder::new();
        wasi.stdin(MemoryInputPipe::new(stdin))
            .stdout(stdout.clone())
            .stderr(stderr.clone());
        for (k, v) in &opts.env {
            wasi.env(k, v);
        }
        for (k, v) in env {
            wasi.env(k, v);
        }
        for p in &opts.preopens {
            let perms = if p.writable {
                FsPerms::ReadWrite
            } else {
                FsPerms::ReadOnly
            };
            wasi.preopened_dir(&p.host, &p.guest, perms).map_err(|e| {
                RunnerError::Invalid(format!(
                    "preopened_dirs: cannot open directory {}: {}",
                    p.host.display(),
                    error_text(&e)
                ))
            })?;
        }
        let max_memory =
            usize::try_from(opts.memory_limit_mb.saturating_mul(1 << 20)).unwrap_or(usize::MAX);
        let mut store = Store::new(
            &shared.engine,
            State {
                wasi: wasi.build_p1(),
                limits: Limits {
                    max_memory,
                    refused: None,
                },
            },
        );
        store.limiter(|s| &mut s.limits);
        store
            .set_fuel(opts.fuel.unwrap_or(u64::MAX))
            .map_err(|e| RunnerError::Invalid(format!("fuel: {}", error_text(&e))))?;
        // Yield to the executor at every tick so the timeout and cancel branches below run.
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|_| Ok(UpdateDeadline::Yield(1)));

        let run = async {
            let instance = pre.instantiate_async(&mut store).await?;
            let start = instance
                .get_typed_func::<(), ()>(&mut store, "_start")
                .map_err(|_| {
                    wasmtime::format_err!(
                        "the module has no `_start` function: it must be a WASI command"
                    )
                })?;
            start.call_async(&mut store, ()).await
        };
        let limit = async {
            match opts.timeout {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        let ending = tokio::select! {
            r = run => match r {
                Ok(()) => Ending::Exited(0),
                Err(e) => classify(&e),
            },
            _ = limit => Ending::TimedOut,
            _ = cancel.cancelled() => Ending::Canceled,
        };
        let ending = match (ending, store.data().limits.refused) {
            (Ending::Trapped(_), Some(asked)) => Ending::OutOfMemory(asked),
            (e, _) => e,
        };
        drop(store);

        let out = String::from_utf8_lossy(&stdout.contents()).into_owned();
        let err = String::from_utf8_lossy(&stderr.contents()).into_owned();
        Ok((ending, out, err))
    }
}

/// The engine (epoch interruption, fuel) and the WASI preview 1 linker.
fn make_shared() -> wasmtime::Result<Shared> {
    let mut config = Config::new();
    config.epoch_interruption(true);
    config.consume_fuel(true);
    let engine = Engine::new(&config)?;
    let mut linker = Linker::new(&engine);
    wasmtime_wasi::p1::add_to_linker_async(&mut linker, |s: &mut State| &mut s.wasi)?;
    Ok(Shared { engine, linker })
}

/// Advances the engine's epoch every [`EPOCH_TICK`] until the engine is dropped.
fn start_ticker(engine: &Engine) {
    let weak = engine.weak();
    let spawned = std::thread::Builder::new()
        .name("wasm-epoch".into())
        .spawn(move || loop {
            std::thread::sleep(EPOCH_TICK);
            match weak.upgrade() {
                Some(engine) => engine.increment_epoch(),
                None => break,
            }
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "wasm runner: cannot start the epoch ticker; WASM actions will not time out");
    }
}

/// What a failed `_start` (or instantiation) means.
fn classify(e: &wasmtime::Error) -> Ending {
    if let Some(exit) = e.downcast_ref::<I32Exit>() {
        return Ending::Exited(exit.0);
    }
    if e.downcast_ref::<Trap>() == Some(&Trap::OutOfFuel) {
        return Ending::OutOfFuel;
    }
    Ending::Trapped(error_text(e))
}

/// An error with its causes, `outer: inner: ...`.
fn error_text(e: &wasmtime::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in e.chain() {
        let s = cause.to_string();
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
    }
    parts.join(": ")
}

/// The result document and status.
fn outcome(
    ending: Ending,
    stdout: String,
    stderr: String,
    opts: &Options,
    path: &Path,
) -> RunOutcome {
    let stripped = strip_shell_chars(&stdout);
    let result = if stripped.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(stripped).unwrap_or_else(|_| Value::String(stripped.to_string()))
    };
    let (status, exit_code, error) = match ending {
        Ending::Exited(0) => (ExecutionStatus::Succeeded, 0, None),
        Ending::Exited(code) => (
            ExecutionStatus::Failed,
            code,
            Some(format!("WebAssembly module exited with code {code}")),
        ),
        Ending::Trapped(msg) => (
            ExecutionStatus::Failed,
            1,
            Some(format!(
                "WebAssembly module {} failed: {msg}",
                path.display()
            )),
        ),
        Ending::OutOfMemory(asked) => (
            ExecutionStatus::Failed,
            1,
            Some(format!(
                "WebAssembly module exceeded its memory limit of {} MiB (memory_limit_mb): \
                 it asked for {asked} bytes",
                opts.memory_limit_mb
            )),
        ),
        Ending::OutOfFuel => (
            ExecutionStatus::Timeout,
            -9,
            Some(format!(
                "Action ran out of fuel ({} units)",
                opts.fuel.unwrap_or(u64::MAX)
            )),
        ),
        Ending::TimedOut => (
            ExecutionStatus::Timeout,
            -9,
            Some(format!(
                "Action failed to complete in {} seconds",
                opts.timeout_shown
            )),
        ),
        Ending::Canceled => (
            ExecutionStatus::Canceled,
            -9,
            Some("Action was canceled".to_string()),
        ),
    };
    let mut out = Map::new();
    out.insert("stdout".into(), json!(stdout));
    out.insert("stderr".into(), json!(stderr));
    out.insert("exit_code".into(), json!(exit_code));
    out.insert("result".into(), result);
    if let Some(e) = error {
        out.insert("error".into(), json!(e));
    }
    RunOutcome::new(status, Value::Object(out))
}

impl Options {
    fn read(ctx: &RunContext) -> Result<Self, RunnerError> {
        Self::from_params(&ctx.runner_params, ctx.pack_dir.as_deref())
    }

    fn from_params(rp: &JsonMap, pack_dir: Option<&Path>) -> Result<Self, RunnerError> {
        let (timeout, timeout_shown) = timeout_param(rp, DEFAULT_TIMEOUT);
        let memory_limit_mb = match positive_int(rp, "memory_limit_mb")? {
            Some(n) => n,
            None => DEFAULT_MEMORY_LIMIT_MB,
        };
        let fuel = positive_int(rp, "fuel")?;
        let hosts = match rp.get("allowed_hosts") {
            None | Some(Value::Null) => 0,
            Some(Value::Array(a)) => a.len(),
            Some(Value::String(s)) => usize::from(!s.trim().is_empty()),
            Some(_) => {
                return Err(RunnerError::Invalid(
                    "allowed_hosts: expected a list of host names".into(),
                ))
            }
        };
        if hosts > 0 {
            return Err(RunnerError::Invalid(
                "allowed_hosts: the wasm runner grants no network access (WASI preview 1 has \
                 no sockets); remove allowed_hosts or use another runner"
                    .into(),
            ));
        }
        Ok(Self {
            timeout,
            timeout_shown,
            memory_limit_mb,
            fuel,
            preopens: preopens(rp, pack_dir)?,
            env: env_param(rp),
        })
    }
}

/// A positive integer parameter; `None` when absent or `null`.
fn positive_int(m: &JsonMap, key: &str) -> Result<Option<u64>, RunnerError> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => {
            let n = match v {
                Value::Number(n) => n.as_u64(),
                Value::String(s) => s.trim().parse().ok(),
                _ => None,
            };
            match n {
                Some(n) if n > 0 => Ok(Some(n)),
                _ => Err(RunnerError::Invalid(format!(
                    "{key}: expected a positive integer, got {v}"
                ))),
            }
        }
    }
}

/// The `preopened_dirs` parameter.
fn preopens(m: &JsonMap, pack_dir: Option<&Path>) -> Result<Vec<Preopen>, RunnerError> {
    let resolve = |host: &str| {
        let p = PathBuf::from(host);
        match pack_dir {
            Some(dir) if p.is_relative() => dir.join(p),
            _ => p,
        }
    };
    let bad = |what: &str| {
        RunnerError::Invalid(format!(
            "preopened_dirs: {what}; expected a list of \"<host>[:<guest>[:ro|rw]]\" or an \
             object {{\"<guest>\": \"<host>\"}}"
        ))
    };
    let mut out = Vec::new();
    match m.get("preopened_dirs") {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => {
            for item in items {
                let Some(s) = item.as_str() else {
                    return Err(bad(&format!("{item} is not a string")));
                };
                let mut parts = s.splitn(3, ':');
                let host = parts.next().unwrap_or_default();
                let guest = parts.next().filter(|g| !g.is_empty()).unwrap_or(host);
                let writable = match parts.next() {
                    None | Some("ro") => false,
                    Some("rw") => true,
                    Some(other) => {
                        return Err(bad(&format!("unknown mode \"{other}\" in \"{s}\"")))
                    }
                };
                if host.is_empty() {
                    return Err(bad(&format!("no host directory in \"{s}\"")));
                }
                out.push(Preopen {
                    host: resolve(host),
                    guest: guest.to_string(),
                    writable,
                });
            }
        }
        Some(Value::Object(o)) => {
            for (guest, host) in o {
                let Some(host) = host.as_str().filter(|h| !h.is_empty()) else {
                    return Err(bad(&format!(
                        "the host directory of \"{guest}\" is not a path"
                    )));
                };
                out.push(Preopen {
                    host: resolve(host),
                    guest: guest.clone(),
                    writable: false,
                });
            }
        }
        Some(Value::String(s)) if s.trim().is_empty() => {}
        Some(other) => return Err(bad(&format!("got {other}"))),
    }
    Ok(out)
}

#[async_trait]
impl Runner for WasmRunner {
    fn name(&self) -> &str {
        "wasm"
    }

    async fn run(&self, ctx: RunContext) -> RunOutcome {
        self.execute(&ctx).await.unwrap_or_else(RunOutcome::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(v: Value) -> JsonMap {
        match v {
            Value::Object(o) => o,
            _ => JsonMap::new(),
        }
    }

    #[test]
    fn preopen_forms() {
        let pack = Path::new("/packs/p");
        let cases = [
            (json!({}), vec![]),
            (
                json!({"preopened_dirs": ["/data", "rel:/in", "/out:/o:rw"]}),
                vec![
                    ("/data", "/data", false),
                    ("/packs/p/rel", "/in", false),
                    ("/out", "/o", true),
                ],
            ),
            (
                json!({"preopened_dirs": {"/in": "/data"}}),
                vec![("/data", "/in", false)],
            ),
        ];
        for (m, want) in cases {
            let got = preopens(&map(m.clone()), Some(pack)).expect("valid");
            let want: Vec<Preopen> = want
                .into_iter()
                .map(|(h, g, w)| Preopen {
                    host: PathBuf::from(h),
                    guest: g.to_string(),
                    writable: w,
                })
                .collect();
            assert_eq!(got, want, "{m}");
        }
        for bad in [
            json!({"preopened_dirs": [1]}),
            json!({"preopened_dirs": ["/a:/b:wx"]}),
            json!({"preopened_dirs": [":/b"]}),
            json!({"preopened_dirs": 5}),
        ] {
            assert!(preopens(&map(bad.clone()), Some(pack)).is_err(), "{bad}");
        }
    }

    #[test]
    fn positive_ints() {
        let m = map(json!({"a": 5, "b": "7", "c": 0, "d": -1, "e": null}));
        assert_eq!(positive_int(&m, "a").ok().flatten(), Some(5));
        assert_eq!(positive_int(&m, "b").ok().flatten(), Some(7));
        assert!(positive_int(&m, "c").is_err());
        assert!(positive_int(&m, "d").is_err());
        assert_eq!(positive_int(&m, "e").ok().flatten(), None);
        assert_eq!(positive_int(&m, "missing").ok().flatten(), None);
    }
}
