//! One supervised Python sensor process: spawned with the pack's interpreter under the
//! wrapper, its stdout and stderr forwarded to the log line by line, its control channel served
//! ([`super::channel`]), respawned after a non-zero exit with a backoff (doubling from
//! [`RESPAWN_MIN`] to [`RESPAWN_MAX`], reset after [`STABLE_AFTER`] of running: StackStorm
//! respawns twice, 2.5 s apart, then gives up), and stopped with SIGTERM (the wrapper calls
//! `cleanup()`), then SIGKILL of its process group after [`EXIT_TIMEOUT`].
//!
//! Every start dispatches `core.st2.sensor.process_spawn` `{id, timestamp, pid, cmd}` and every
//! exit `core.st2.sensor.process_exit` `{id, timestamp, exit_code}`, as StackStorm does (`id` is
//! the sensor's class name).

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::UnixListener;
use tokio::process::{Child, Command};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::channel::{self, Triggers};
use crate::runners::DatastoreAccess;
use crate::services::{dispatch, Ctx};

/// First wait before a crashed sensor is started again (StackStorm's 2.5 s).
pub const RESPAWN_MIN: Duration = Duration::from_millis(2500);
/// Longest wait before a crashed sensor is started again.
pub const RESPAWN_MAX: Duration = Duration::from_secs(60);
/// A sensor that ran this long before it crashed is respawned after [`RESPAWN_MIN`] again.
pub const STABLE_AFTER: Duration = Duration::from_secs(10);
/// How long a stopped sensor has to exit after SIGTERM before its process group is killed.
pub const EXIT_TIMEOUT: Duration = Duration::from_secs(5);

/// The trigger dispatched when a sensor process starts.
pub const SPAWN_TRIGGER: &str = "core.st2.sensor.process_spawn";
/// The trigger dispatched when a sensor process exits.
pub const EXIT_TRIGGER: &str = "core.st2.sensor.process_exit";

/// What is needed to start one sensor process.
#[derive(Debug, Clone)]
pub struct SensorSpec {
    /// `pack.Class`.
    pub sensor_ref: String,
    /// Pack ref.
    pub pack: String,
    /// The sensor class.
    pub class_name: String,
    /// The sensor's Python file.
    pub file_path: PathBuf,
    /// `poll_interval` of a `PollingSensor`, seconds.
    pub poll_interval: Option<f64>,
    /// The pack config (`self._config`).
    pub config: Value,
    /// The interpreter (the pack virtualenv's `bin/python`, or the configured one).
    pub python: PathBuf,
    /// The pack's virtualenv, when it has one.
    pub virtualenv: Option<PathBuf>,
    /// The unpacked shim (wrapper, `st2common`, `st2reactor`).
    pub shim: PathBuf,
    /// Where the control socket's private directory goes.
    pub runtime_dir: PathBuf,
}

/// Runs the sensor of `spec` until `stop` is cancelled, respawning it after crashes; the
/// sensor follows the triggers published on `triggers`.
pub async fn supervise(
    ctx: Ctx,
    spec: SensorSpec,
    triggers: watch::Receiver<Triggers>,
    stop: CancellationToken,
) {
    let datastore: Option<Arc<dyn DatastoreAccess>> = ctx.datastore.clone().map(|d| {
        Arc::new(crate::services::kv_access::ActionDatastore(d)) as Arc<dyn DatastoreAccess>
    });
    let mut backoff = RESPAWN_MIN;
    loop {
        let started = tokio::time::Instant::now();
        let code = match run_once(&ctx, &spec, triggers.clone(), datastore.clone(), &stop).await {
            Ok(code) => code,
            Err(e) => {
                tracing::warn!(sensor = %spec.sensor_ref, error = %e, "cannot start the sensor");
                None
            }
        };
        if stop.is_cancelled() {
            return;
        }
        if code == Some(0) {
            // It ended on its own: like StackStorm, not respawned (until it is re-registered).
            tracing::info!(sensor = %spec.sensor_ref, "sensor exited");
            stop.cancelled().await;
            return;
        }
        if started.elapsed() >= STABLE_AFTER {
            backoff = RESPAWN_MIN;
        }
        tracing::warn!(sensor = %spec.sensor_ref, exit_code = ?code, respawn_in = ?backoff, "sensor crashed");
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(RESPAWN_MAX);
    }
}

/// Starts the sensor once and waits for it to exit (or stops it when `stop` is cancelled).
/// Returns its exit code (a signal as its negated number), `None` when it could not start.
async fn run_once(
    ctx: &Ctx,
    spec: &SensorSpec,
    triggers: watch::Receiver<Triggers>,
    datastore: Option<Arc<dyn DatastoreAccess>>,
    stop: &CancellationToken,
) -> std::io::Result<Option<i32>> {
    let sock_dir = tempfile::Builder::new()
        .prefix("st2s-")
        .tempdir_in(&spec.runtime_dir)?;
    let sock_path = sock_dir.path().join("ctl");
    let listener = UnixListener::bind(&sock_path)?;
    let wrapper = spec.shim.join(crate::runners::python::SENSOR_WRAPPER);
    let mut cmd = Command::new(&spec.python);
    cmd.arg("-u")
        .arg(&wrapper)
        .arg(&sock_path)
        .env("PYTHONPATH", &spec.shim)
        .env("PYTHONUNBUFFERED", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    if let Some(url) = &ctx.api_url {
        cmd.env("ST2_API_URL", url);
    }
    let mut child = cmd.spawn()?;
    let pid = child.id().map(|p| p as i32);
    let cmdline = format!(
        "{} -u {} {}",
        spec.python.display(),
        wrapper.display(),
        sock_path.display()
    );
    tracing::info!(sensor = %spec.sensor_ref, pid = ?pid, "sensor process started");
    lifecycle(
        ctx,
        SPAWN_TRIGGER,
        json!({"id": spec.class_name, "timestamp": unix_now(), "pid": pid, "cmd": cmdline}),
    )
    .await;
    let logs = forward_output(&mut child, &spec.sensor_ref);

    let init = json!({
        "sensor_ref": spec.sensor_ref,
        "pack": spec.pack,
        "file_path": spec.file_path.to_string_lossy(),
        "class_name": spec.class_name,
        "poll_interval": spec.poll_interval,
        "config": spec.config,
        "log_level": "INFO",
        "virtualenv": spec.virtualenv.as_ref().map(|v| v.to_string_lossy().into_owned()),
        "api_url": ctx.api_url,
    });
    let control = async {
        let Ok((stream, _)) = listener.accept().await else {
            return;
        };
        if let Err(e) =
            channel::serve(ctx, &spec.sensor_ref, stream, init, triggers, datastore).await
        {
            tracing::debug!(sensor = %spec.sensor_ref, error = %e, "sensor control channel closed");
        }
        // The wrapper is gone or closed the channel: wait for its exit below.
        std::future::pending::<()>().await
    };
    let status = tokio::select! {
        status = child.wait() => Some(status),
        _ = control => None,
        _ = stop.cancelled() => None,
    };
    let status = match status {
        Some(s) => s?,
        None => terminate(&mut child, pid).await?,
    };
    // Whatever the sensor started dies with it.
    if let Some(pid) = pid {
        let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
    }
    let _ = logs.await;
    let code = exit_code(&status);
    tracing::info!(sensor = %spec.sensor_ref, pid = ?pid, exit_code = code, "sensor process exited");
    lifecycle(
        ctx,
        EXIT_TRIGGER,
        json!({"id": spec.class_name, "timestamp": unix_now(), "exit_code": code}),
    )
    .await;
    Ok(Some(code))
}

/// SIGTERM to the sensor, then SIGKILL to its process group after [`EXIT_TIMEOUT`].
async fn terminate(
    child: &mut Child,
    pid: Option<i32>,
) -> std::io::Result<std::process::ExitStatus> {
    if let Some(pid) = pid {
        let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGTERM);
    }
    match tokio::time::timeout(EXIT_TIMEOUT, child.wait()).await {
        Ok(status) => status,
        Err(_) => {
            if let Some(pid) = pid {
                let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
            }
            child.wait().await
        }
    }
}

/// The exit code, or the negated signal number (as Python's `Popen.returncode`).
fn exit_code(status: &std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .unwrap_or_else(|| -status.signal().unwrap_or(0))
}

/// Sends the child's stdout and stderr to the log, a line at a time; the level comes from a
/// Python logging prefix when the line has one.
fn forward_output(child: &mut Child, sensor_ref: &str) -> tokio::task::JoinHandle<()> {
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let sensor = sensor_ref.to_string();
    tokio::spawn(async move {
        let out = async {
            if let Some(s) = stdout {
                let mut lines = BufReader::new(s).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    tracing::info!(sensor = %sensor, stream = "stdout", "{line}");
                }
            }
        };
        let err = async {
            if let Some(s) = stderr {
                let mut lines = BufReader::new(s).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    log_line(&sensor, &line);
                }
            }
        };
        tokio::join!(out, err);
    })
}

fn log_line(sensor: &str, line: &str) {
    let level = line.split_whitespace().next().unwrap_or_default();
    match level {
        "DEBUG" => tracing::debug!(sensor = %sensor, "{line}"),
        "INFO" | "AUDIT" => tracing::info!(sensor = %sensor, "{line}"),
        "WARNING" => tracing::warn!(sensor = %sensor, "{line}"),
        _ => tracing::warn!(sensor = %sensor, stream = "stderr", "{line}"),
    }
}

fn unix_now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Dispatches a lifecycle trigger; a failure is only logged.
async fn lifecycle(ctx: &Ctx, trigger: &str, payload: Value) {
    if let Err(e) = dispatch::dispatch(ctx, trigger, payload, None).await {
        tracing::warn!(trigger = %trigger, error = %e, "cannot dispatch the sensor lifecycle trigger");
    }
}
