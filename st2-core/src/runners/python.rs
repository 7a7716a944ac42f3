//! `python-script`: StackStorm's `python_runner`. The pack's action file runs unchanged, with
//! the pack virtualenv's `bin/python` (or [`RunnerSettings::python_binary`]), under the wrapper
//! and `st2common` shim of `st2-core/python/` (embedded here, unpacked once per version into
//! [`RunnerSettings::cache_dir`]).
//!
//! - `PYTHONPATH` = the shim, then `<pack>/actions/lib`; the action's directory is appended to
//!   `sys.path` by the wrapper, so `from lib.x import y` works too. A `PYTHONPATH` in the `env`
//!   parameter is ignored, as in StackStorm. The environment also gets the `env` parameter,
//!   the `ST2_ACTION_*` variables and `ST2_API_URL` / `ST2_AUTH_TOKEN`.
//! - Parameters, pack config, user and log level reach the wrapper over a private Unix socket
//!   (a `0700` temporary directory under [`RunnerSettings::runtime_dir`]), which also carries
//!   `self.action_service` datastore calls to [`RunContext::datastore`] and the return value of
//!   `run()` back; stdout and stderr stay the action's own. The protocol is described in
//!   `st2-core/python/st2_python_wrapper.py`.
//! - Result `{stdout, stderr, exit_code, result}`: `result` is what `run()` returned (the second
//!   item of a `(status, result)` tuple); when `run()` never returned (exception, timeout) it is
//!   StackStorm's `"None"`. Status: `failed` when the tuple's status is `False` or the exit code
//!   is not 0 (an exception: the traceback is in `stderr`), `timeout` after `timeout` seconds
//!   (default 600; everything the action started is killed, `error` says so), `canceled` on
//!   cancel, else `succeeded`. A status that is not a bool fails the execution (exit code 220).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio_util::sync::CancellationToken;

use super::params::{env_param, nonempty_str_param, timeout_param};
use super::process::{run_process, Ending, ProcessSpec};
use super::{RunContext, RunOutcome, Runner, RunnerError, RunnerSettings};
use crate::model::ExecutionStatus;

/// Default `timeout` of Python actions, in seconds.
pub const DEFAULT_TIMEOUT: u64 = 600;
/// Exit code of the wrapper when `run()` returned a status that is not a bool.
pub const INVALID_STATUS_EXIT_CODE: i32 = 220;
/// What `result` is when the action never returned one (StackStorm's `'None'`).
const NO_RESULT: &str = "None";

/// The wrapper's file name inside the shim directory.
const WRAPPER: &str = "st2_python_wrapper.py";
/// The sensor wrapper's file name inside the shim directory (see `crate::sensors::python`).
pub const SENSOR_WRAPPER: &str = "st2_sensor_wrapper.py";

/// The shim: relative path → content.
const SHIM_FILES: &[(&str, &str)] = &[
    (WRAPPER, include_str!("../../python/st2_python_wrapper.py")),
    (
        SENSOR_WRAPPER,
        include_str!("../../python/st2_sensor_wrapper.py"),
    ),
    (
        "st2reactor/__init__.py",
        include_str!("../../python/st2reactor/__init__.py"),
    ),
    (
        "st2reactor/sensor/__init__.py",
        include_str!("../../python/st2reactor/sensor/__init__.py"),
    ),
    (
        "st2reactor/sensor/base.py",
        include_str!("../../python/st2reactor/sensor/base.py"),
    ),
    (
        "st2common/__init__.py",
        include_str!("../../python/st2common/__init__.py"),
    ),
    (
        "st2common/log.py",
        include_str!("../../python/st2common/log.py"),
    ),
    (
        "st2common/constants/__init__.py",
        include_str!("../../python/st2common/constants/__init__.py"),
    ),
    (
        "st2common/constants/action.py",
        include_str!("../../python/st2common/constants/action.py"),
    ),
    (
        "st2common/constants/keyvalue.py",
        include_str!("../../python/st2common/constants/keyvalue.py"),
    ),
    (
        "st2common/runners/__init__.py",
        include_str!("../../python/st2common/runners/__init__.py"),
    ),
    (
        "st2common/runners/base_action.py",
        include_str!("../../python/st2common/runners/base_action.py"),
    ),
    (
        "st2common/runners/utils.py",
        include_str!("../../python/st2common/runners/utils.py"),
    ),
    (
        "st2common/services/__init__.py",
        include_str!("../../python/st2common/services/__init__.py"),
    ),
    (
        "st2common/services/datastore.py",
        include_str!("../../python/st2common/services/datastore.py"),
    ),
    (
        "st2common/util/__init__.py",
        include_str!("../../python/st2common/util/__init__.py"),
    ),
    (
        "st2common/util/jsonify.py",
        include_str!("../../python/st2common/util/jsonify.py"),
    ),
    (
        "st2common/util/shell.py",
        include_str!("../../python/st2common/util/shell.py"),
    ),
];

/// The `python-script` runner.
#[derive(Debug)]
pub struct PythonRunner {
    settings: Arc<RunnerSettings>,
    /// The unpacked shim, once it is.
    shim: Mutex<Option<PathBuf>>,
}

/// What the action's `run()` returned: the tuple's status (if any) and the result.
type Returned = Arc<Mutex<Option<(Option<bool>, Value)>>>;

impl PythonRunner {
    /// A runner using `settings`.
    pub fn new(settings: Arc<RunnerSettings>) -> Self {
        Self {
            settings,
            shim: Mutex::new(None),
        }
    }

    /// The directory holding the unpacked shim, unpacking it the first time (see
    /// [`unpack_shim`]).
    pub fn shim_dir(&self) -> Result<PathBuf, RunnerError> {
        let mut guard = self.shim.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(dir) = guard.as_ref() {
            return Ok(dir.clone());
        }
        let target = unpack_shim(&self.settings.cache_dir)?;
        *guard = Some(target.clone());
        Ok(target)
    }

    /// The interpreter: the virtualenv's, or the configured one.
    fn python(&self, ctx: &RunContext) -> Result<PathBuf, RunnerError> {
        match &ctx.virtualenv {
            Some(venv) if !venv.is_dir() => Err(RunnerError::Invalid(format!(
                "The virtual environment ({}) for pack \"{}\" does not exist. Normally this is \
                 created when you install a pack using \"st2 pack install\". If you installed \
                 your pack by some other means, you can create a new virtual environment using \
                 the command: \"st2 run packs.setup_virtualenv packs={}\"",
                venv.display(),
                ctx.action.pack,
                ctx.action.pack
            ))),
            Some(venv) => Ok(venv.join("bin").join("python")),
            None => Ok(PathBuf::from(&self.settings.python_binary)),
        }
    }

    async fn execute(&self, ctx: &RunContext) -> Result<RunOutcome, RunnerError> {
        let file_path = ctx.entry_point_path()?;
        let python = self.python(ctx)?;
        let shim = self.shim_dir()?;
        let (timeout, timeout_shown) = timeout_param(&ctx.runner_params, DEFAULT_TIMEOUT);

        let sock_dir = tempfile::Builder::new()
            .prefix("st2py-")
            .tempdir_in(&self.settings.runtime_dir)
            .map_err(|e| RunnerError::io("cannot create the control socket directory", e))?;
        let sock_path = sock_dir.path().join("ctl");
        let listener = UnixListener::bind(&sock_path)
            .map_err(|e| RunnerError::io(format!("cannot listen on {}", sock_path.display()), e))?;

        let mut pythonpath = vec![shim.to_string_lossy().into_owned()];
        if let Some(dir) = ctx.actions_dir() {
            pythonpath.push(dir.join("lib").to_string_lossy().into_owned());
        }
        let mut env: Vec<(String, String)> = vec![("PYTHONPATH".into(), pythonpath.join(":"))];
        env.extend(
            env_param(&ctx.runner_params)
                .into_iter()
                .filter(|(k, _)| !k.eq_ignore_ascii_case("pythonpath")),
        );
        env.extend(ctx.st2_env());
        if let Some(token) = &ctx.auth_token {
            env.push(("ST2_AUTH_TOKEN".into(), token.clone()));
        }
        if let Some(url) = &ctx.api_url {
            env.push(("ST2_API_URL".into(), url.clone()));
        }

        let init = json!({
            "pack": ctx.action.pack,
            "file_path": file_path.to_string_lossy(),
            "parameters": ctx.action_params,
            "config": ctx.config,
            "user": ctx.user,
            "log_level": nonempty_str_param(&ctx.runner_params, "log_level").unwrap_or_else(|| "DEBUG".into()),
            "virtualenv": ctx.virtualenv.as_ref().map(|v| v.to_string_lossy().into_owned()),
            "execution_id": ctx.execution_id,
            "api_url": ctx.api_url,
        });
        let returned: Returned = Arc::new(Mutex::new(None));
        let exited = CancellationToken::new();
        let side = control(listener, init, ctx, Arc::clone(&returned), exited.clone());

        let spec = ProcessSpec {
            program: python,
            args: vec![
                "-u".into(),
                shim.join(WRAPPER).to_string_lossy().into_owned(),
                sock_path.to_string_lossy().into_owned(),
            ],
            env,
            env_remove: Vec::new(),
            cwd: None,
            stdin: None,
            timeout,
            report: ctx.processes.clone(),
        };
        let p = run_process(
            spec,
            &ctx.output,
            &ctx.cancel,
            Some((Box::pin(side), exited)),
        )
        .await?;
        drop(sock_dir);

        let returned = returned.lock().unwrap_or_else(|e| e.into_inner()).take();
        let (action_status, result) = match returned {
            Some((s, r)) => (s, r),
            None => (None, Value::String(NO_RESULT.into())),
        };
        let exit_code = match p.ending {
            Ending::Exited => p.exit_code,
            Ending::TimedOut | Ending::Canceled => -9,
        };
        let mut out = Map::new();
        out.insert("stdout".into(), json!(p.stdout));
        out.insert("stderr".into(), json!(p.stderr));
        out.insert("exit_code".into(), json!(exit_code));
        out.insert("result".into(), result);
        let status = match p.ending {
            Ending::TimedOut => {
                out.insert(
                    "error".into(),
                    json!(format!(
                        "Action failed to complete in {timeout_shown} seconds"
                    )),
                );
                ExecutionStatus::Timeout
            }
            Ending::Canceled => {
                out.insert("error".into(), json!("Action was canceled"));
                ExecutionStatus::Canceled
            }
            Ending::Exited if exit_code == INVALID_STATUS_EXIT_CODE => {
                out.insert("error".into(), json!(p.stderr));
                ExecutionStatus::Failed
            }
            Ending::Exited => match (exit_code, action_status) {
                (0, Some(true)) | (0, None) => ExecutionStatus::Succeeded,
                _ => ExecutionStatus::Failed,
            },
        };
        Ok(RunOutcome::new(status, Value::Object(out)))
    }
}

/// Unpacks the Python shim (action and sensor wrappers, `st2common`, `st2reactor`) under
/// `cache` unless it is there: a directory named after the content's hash, written whole then
/// renamed into place. Returns that directory.
pub fn unpack_shim(cache: &std::path::Path) -> Result<PathBuf, RunnerError> {
    let mut hasher = Sha256::new();
    for (path, content) in SHIM_FILES {
        hasher.update(path.as_bytes());
        hasher.update([0]);
        hasher.update(content.as_bytes());
        hasher.update([0]);
    }
    let hash = hex::encode(hasher.finalize());
    std::fs::create_dir_all(cache)
        .map_err(|e| RunnerError::io(format!("cannot create {}", cache.display()), e))?;
    let cache = cache
        .canonicalize()
        .map_err(|e| RunnerError::io(format!("cannot resolve {}", cache.display()), e))?;
    let target = cache.join(format!("python-shim-{}", &hash[..16]));
    if !target.join(WRAPPER).is_file() {
        let staging = tempfile::Builder::new()
            .prefix(".python-shim-")
            .tempdir_in(&cache)
            .map_err(|e| RunnerError::io("cannot create a staging directory", e))?;
        for (path, content) in SHIM_FILES {
            let file = staging.path().join(path);
            if let Some(parent) = file.parent() {
                std::fs::create_dir_all(parent).map_err(|e| {
                    RunnerError::io(format!("cannot create {}", parent.display()), e)
                })?;
            }
            std::fs::write(&file, content)
                .map_err(|e| RunnerError::io(format!("cannot write {}", file.display()), e))?;
        }
        let staged = staging.keep();
        if let Err(e) = std::fs::rename(&staged, &target) {
            let _ = std::fs::remove_dir_all(&staged);
            // Another runner may have put it there first.
            if !target.join(WRAPPER).is_file() {
                return Err(RunnerError::io(
                    format!("cannot create {}", target.display()),
                    e,
                ));
            }
        }
    }
    Ok(target)
}

/// The runner side of the control channel: accepts the wrapper's connection (giving up once
/// the child has exited without connecting), sends the init message, serves datastore calls
/// and records the result.
async fn control(
    listener: UnixListener,
    init: Value,
    ctx: &RunContext,
    returned: Returned,
    exited: CancellationToken,
) {
    let stream = tokio::select! {
        biased;
        accepted = listener.accept() => match accepted {
            Ok((s, _)) => s,
            Err(e) => {
                tracing::warn!(error = %e, "python runner: control socket accept failed");
                return;
            }
        },
        _ = exited.cancelled() => return,
    };
    drop(listener); // one wrapper, one connection
    if let Err(e) = serve(stream, init, ctx, &returned).await {
        tracing::debug!(error = %e, execution = %ctx.execution_id, "python runner: control channel closed");
    }
}

async fn serve(
    stream: UnixStream,
    init: Value,
    ctx: &RunContext,
    returned: &Returned,
) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    write.write_all(format!("{init}\n").as_bytes()).await?;
    let mut lines = BufReader::new(read).lines();
    while let Some(line) = lines.next_line().await? {
        let Ok(msg) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        let method = msg
            .get("method")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let params = msg.get("params").cloned().unwrap_or(Value::Null);
        if method == "result" {
            let status = params.get("status").and_then(Value::as_bool);
            let result = params.get("result").cloned().unwrap_or(Value::Null);
            *returned.lock().unwrap_or_else(|e| e.into_inner()) = Some((status, result));
            continue;
        }
        let id = msg.get("id").cloned().unwrap_or(Value::Null);
        let reply = match super::datastore::serve_call(
            ctx.datastore.as_deref(),
            &ctx.user,
            method,
            &params,
        )
        .await
        {
            Ok(v) => json!({"id": id, "result": v}),
            Err(e) => json!({"id": id, "error": e}),
        };
        write.write_all(format!("{reply}\n").as_bytes()).await?;
    }
    Ok(())
}

#[async_trait]
impl Runner for PythonRunner {
    fn name(&self) -> &str {
        "python-script"
    }

    async fn run(&self, ctx: RunContext) -> RunOutcome {
        self.execute(&ctx).await.unwrap_or_else(RunOutcome::from)
    }
}
