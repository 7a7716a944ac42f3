//! `remote-shell-cmd` and `remote-shell-script`: StackStorm's `remote_runner`
//! (`ParallelSSHClient` over paramiko), over russh (pure Rust SSH).
//!
//! - `hosts`: comma-separated `host`, `host:port` or `[v6]:port`; results are keyed by the host
//!   name without the port. `port` (default 22) applies to hosts without one. `bastion_host`
//!   tunnels every connection through that host (same credentials).
//! - Credentials: `username` (default [`RunnerSettings::ssh_user`], else the user this process
//!   runs as); then `password`, or `private_key` (key text, or a path to a key file) with
//!   `passphrase`, or [`RunnerSettings::ssh_key_file`]. Host keys are not verified (paramiko's
//!   `AutoAddPolicy`, as StackStorm).
//! - The command is `[export K=V ... && ]cd <cwd> && <cmd>` (`ParamikoRemoteCommandAction`), with
//!   the `env` parameter and the `ST2_ACTION_*` variables exported; `sudo` wraps it in
//!   `sudo -E -- bash -c '...'` (with `sudo_password`: `set +o history ; echo -e '<pw>\n' |
//!   sudo -S -E -- bash -c '...'`). A command starting with `sudo` gets a pseudo-terminal, as in
//!   StackStorm (stdout and stderr then arrive merged). Stdin is closed at once.
//! - Scripts are copied to `<dir>/<execution_id>/<script>` (mode 0744, `dir` default `/tmp`),
//!   with the `lib/` folder next to the script when there is one, run as
//!   `cd <cwd> && <script> <arguments>` (arguments as for local scripts), and the directory is
//!   removed afterwards.
//! - `parallel: true` runs the hosts concurrently (at most
//!   [`RunnerSettings::ssh_max_parallel`]), otherwise one after the other. Live output is
//!   streamed only for a single host, as StackStorm does.
//! - `timeout` (default 60 s) applies to the command on each host; a host that runs out gets
//!   `{timeout: true, return_code: -9, error}`.
//! - Result `{<host>: {stdout, stderr, return_code, succeeded, failed}}` (stdout and stderr as
//!   for local runners: one trailing newline dropped, JSON-decoded when they parse), or for a
//!   host that failed before or around the command `{failed, succeeded, timeout, return_code:
//!   255 | -9, stdout, stderr, error, traceback}`. Status: `succeeded` when every host
//!   succeeded, `timeout` when every host timed out, else `failed`; when no host could be
//!   connected to the result is `{error, traceback}` as StackStorm's
//!   `NoHostsConnectedToException`.

mod ssh;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use russh::keys::PrivateKey;
use serde_json::{json, Map, Value};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use self::ssh::{connect, exec, must, upload, Auth, Exec, Login, Target, Upload};
use super::args::{export_string, py_str, quote_unix, script_arguments, sudo_prefix};
use super::params::{bool_param, env_param, nonempty_str_param, str_param, timeout_param};
use super::shell::{json_or_text, strip_shell_chars, sudo_password_error};
use super::RunnerSettings;
use super::{OutputSink, RunContext, RunOutcome, Runner, RunnerError};
use crate::model::ExecutionStatus;

/// Default `timeout` of the remote runners, in seconds.
pub const DEFAULT_TIMEOUT: u64 = 60;
/// Default SSH port.
pub const DEFAULT_PORT: u16 = 22;
/// How StackStorm recognises key material in `private_key` (lowercased).
const PRIVATE_KEY_HEADER: &str = "private key-----";
/// How long canceled hosts get to stop their commands before the run returns.
const CANCEL_GRACE: Duration = Duration::from_millis(500);
/// What masks secrets in error messages.
const MASK: &str = "********";

/// Which of the two remote runners.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Cmd,
    Script,
}

/// The remote shell runners.
#[derive(Debug, Clone)]
pub struct RemoteShellRunner {
    kind: Kind,
    settings: Arc<RunnerSettings>,
}

impl RemoteShellRunner {
    /// `remote-shell-cmd`.
    pub fn cmd(settings: Arc<RunnerSettings>) -> Self {
        Self {
            kind: Kind::Cmd,
            settings,
        }
    }

    /// `remote-shell-script`.
    pub fn script(settings: Arc<RunnerSettings>) -> Self {
        Self {
            kind: Kind::Script,
            settings,
        }
    }
}

/// StackStorm's `ip_utils.split_host_port`: `[v6]:port`, `host:port`, bare IPv6, bare host.
fn split_host_port(s: &str, default_port: u16) -> Result<Target, String> {
    let s = s.trim();
    if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("Invalid IPv6 host: {s}"))?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().map_err(|_| format!("Invalid port in host {s}"))?,
            None => default_port,
        };
        return Ok(Target {
            host: host.to_string(),
            port,
        });
    }
    match s.matches(':').count() {
        1 => {
            let (host, port) = s.split_once(':').unwrap_or((s, ""));
            let port = port
                .parse()
                .map_err(|_| format!("Invalid port in host {s}"))?;
            Ok(Target {
                host: host.to_string(),
                port,
            })
        }
        _ => Ok(Target {
            host: s.to_string(),
            port: default_port,
        }),
    }
}

/// What one run does on every host.
struct Plan {
    /// Who logs in where, and how.
    login: Login,
    timeout: Option<Duration>,
    timeout_shown: String,
    /// The command to run on each host.
    command: String,
    /// The sudo password, when sudo is used with one (masked in errors, checked in replies).
    sudo_password: Option<String>,
    auth_token: Option<String>,
    /// Script runs: what to copy where.
    upload: Option<Upload>,
}

/// What happened on one host.
enum HostOutcome {
    Done {
        stdout: String,
        stderr: String,
        code: i32,
        pty: bool,
    },
    TimedOut {
        stdout: String,
        stderr: String,
    },
    /// The command could not be run (or sudo refused the password).
    Failed(String),
    /// Connecting or logging in failed.
    Unreachable(String),
}

impl Plan {
    /// `cmd` with secrets masked, for error messages.
    fn sanitized_command(&self) -> String {
        let mut cmd = self.command.clone();
        if let Some(token) = self.auth_token.as_deref().filter(|t| !t.is_empty()) {
            cmd = cmd.replace(token, MASK);
        }
        if let Some(pw) = self.sudo_password.as_deref().filter(|p| !p.is_empty()) {
            cmd = cmd.replace(pw, MASK);
        }
        cmd
    }
}

/// Everything that happens on one host.
async fn run_on_host(
    plan: &Plan,
    target: &Target,
    output: Option<&OutputSink>,
    cancel: &CancellationToken,
) -> HostOutcome {
    let session = match connect(&plan.login, target).await {
        Ok(s) => s,
        Err(e) => return HostOutcome::Unreachable(e),
    };
    if let Some(up) = &plan.upload {
        if let Err(e) = upload(&session, up, plan.login.connect_timeout).await {
            let _ = must(
                &session,
                &format!("rm -rf {}", quote_unix(&up.remote_dir)),
                None,
                plan.login.connect_timeout,
            )
            .await;
            return HostOutcome::Failed(format!(
                "Failed sending file(s) in path {} to host {} {e}",
                up.script.display(),
                target.host
            ));
        }
    }
    let deadline = plan.timeout.map(|t| Instant::now() + t);
    let result = exec(&session, &plan.command, None, deadline, output, cancel).await;
    if let Some(up) = &plan.upload {
        let _ = must(
            &session,
            &format!("rm -rf {}", quote_unix(&up.remote_dir)),
            None,
            plan.login.connect_timeout,
        )
        .await;
    }
    session.disconnect().await;
    match result {
        Ok(Exec::Done {
            stdout,
            stderr,
            code,
        }) => {
            if plan.sudo_password.is_some() {
                if let Some(e) = sudo_password_error(&stderr) {
                    return HostOutcome::Failed(format!(
                        "Failed executing command \"{}\" on host \"{}\" {e}",
                        plan.sanitized_command(),
                        target.host
                    ));
                }
            }
            HostOutcome::Done {
                stdout,
                stderr,
                code,
                pty: plan.command.starts_with("sudo"),
            }
        }
        Ok(Exec::TimedOut { stdout, stderr }) => HostOutcome::TimedOut { stdout, stderr },
        Err(e) => HostOutcome::Failed(format!(
            "Failed executing command \"{}\" on host \"{}\" {e}",
            plan.sanitized_command(),
            target.host
        )),
    }
}

/// `sanitize_output`: one trailing newline dropped; with a pty, `\r\n` → `\n`.
fn sanitize(s: &str, pty: bool) -> String {
    let s = strip_shell_chars(s);
    if pty {
        s.replace("\r\n", "\n")
    } else {
        s.to_string()
    }
}

fn error_result(error: String, timeout: bool, stdout: String, stderr: String) -> Value {
    json!({
        "failed": true,
        "succeeded": false,
        "timeout": timeout,
        "return_code": if timeout { -9 } else { 255 },
        "stdout": stdout,
        "stderr": stderr,
        "error": error,
        "traceback": "",
    })
}

impl HostOutcome {
    fn to_json(&self, plan: &Plan, host: &str, connect_secs: u64) -> Value {
        match self {
            HostOutcome::Done { stdout, stderr, code, pty } => {
                let ok = *code == 0;
                json!({
                    "stdout": json_or_text(&sanitize(stdout, *pty)),
                    "stderr": json_or_text(&sanitize(stderr, *pty)),
                    "return_code": code,
                    "succeeded": ok,
                    "failed": !ok,
                })
            }
            HostOutcome::TimedOut { stdout, stderr } => error_result(
                format!(
                    "Failed executing command \"{}\" on host \"{host}\" Command didn't finish in {} \
                     seconds or the SSH connection did not succeed in {connect_secs} seconds",
                    plan.sanitized_command(),
                    plan.timeout_shown
                ),
                true,
                sanitize(stdout, false),
                sanitize(stderr, false),
            ),
            HostOutcome::Failed(e) => error_result(e.clone(), false, String::new(), String::new()),
            HostOutcome::Unreachable(e) => error_result(
                format!("Failed connecting to host {host}. {e}"),
                false,
                String::new(),
                String::new(),
            ),
        }
    }
}

impl RemoteShellRunner {
    fn plan(&self, ctx: &RunContext) -> Result<(Plan, Vec<Target>, bool), RunnerError> {
        let rp = &ctx.runner_params;
        let port = match rp.get("port") {
            Some(Value::Number(n)) => n
                .as_u64()
                .and_then(|p| u16::try_from(p).ok())
                .ok_or_else(|| RunnerError::Invalid(format!("invalid port {n}")))?,
            _ => DEFAULT_PORT,
        };
        let hosts_text = str_param(rp, "hosts").unwrap_or_default();
        let mut targets = Vec::new();
        for h in hosts_text
            .split(',')
            .map(str::trim)
            .filter(|h| !h.is_empty())
        {
            targets.push(split_host_port(h, port).map_err(RunnerError::Invalid)?);
        }
        if targets.is_empty() {
            return Err(RunnerError::Invalid(format!(
                "No hosts specified to run action for action {}.",
                ctx.execution_id
            )));
        }
        let bastion = nonempty_str_param(rp, "bastion_host")
            .map(|b| split_host_port(&b, DEFAULT_PORT))
            .transpose()
            .map_err(RunnerError::Invalid)?;

        let username = nonempty_str_param(rp, "username")
            .or_else(|| self.settings.ssh_user.clone())
            .or_else(|| {
                nix::unistd::User::from_uid(nix::unistd::getuid())
                    .ok()
                    .flatten()
                    .map(|u| u.name)
            })
            .ok_or_else(|| RunnerError::Invalid("No username to log in with".into()))?;
        let passphrase = nonempty_str_param(rp, "passphrase");
        let auth = if let Some(pw) = str_param(rp, "password").filter(|p| !p.is_empty()) {
            Auth::Password(pw)
        } else {
            let key = match nonempty_str_param(rp, "private_key") {
                Some(k) if k.to_lowercase().contains(PRIVATE_KEY_HEADER) => {
                    russh::keys::decode_secret_key(&k, passphrase.as_deref()).map_err(|e| {
                        RunnerError::Invalid(if passphrase.is_some() {
                            format!("Invalid passphrase or invalid/unsupported key type: {e}")
                        } else {
                            format!("Invalid or unsupported key type: {e}")
                        })
                    })?
                }
                Some(path) => load_key(Path::new(&path), passphrase.as_deref())?,
                None => match &self.settings.ssh_key_file {
                    Some(path) => load_key(path, passphrase.as_deref())?,
                    None => {
                        return Err(RunnerError::Invalid(
                            "No password or private key was given for the SSH connection".into(),
                        ))
                    }
                },
            };
            Auth::Key(Arc::new(key))
        };

        let sudo = bool_param(rp, "sudo", false);
        let sudo_password = nonempty_str_param(rp, "sudo_password");
        let cwd = nonempty_str_param(rp, "cwd").unwrap_or_else(|| "/tmp".into());
        let mut env = env_param(rp);
        env.extend(ctx.st2_env());
        let exports = export_string(&env);
        let (inner, upload) = match self.kind {
            Kind::Cmd => {
                if !ctx.action.entry_point.trim().is_empty() {
                    return Err(RunnerError::Invalid(format!(
                        "Action \"{}\" specified \"entry_point\" attribute. Perhaps wanted to use \
                         \"remote-shell-script\" runner?",
                        ctx.action.name
                    )));
                }
                let cmd = str_param(rp, "cmd").ok_or_else(|| {
                    RunnerError::Invalid(format!("Action \"{}\" has no cmd", ctx.action_ref()))
                })?;
                (format!("cd {cwd} && {cmd}"), None)
            }
            Kind::Script => {
                let script = ctx.entry_point_path().map_err(|_| {
                    RunnerError::Invalid(format!(
                        "Action \"{}\" is missing \"entry_point\" attribute. Perhaps wanted to use \
                         \"remote-shell-script\" runner?",
                        ctx.action.name
                    ))
                })?;
                if !script.is_file() {
                    return Err(RunnerError::Invalid(format!(
                        "Local path {} does not exist.",
                        script.display()
                    )));
                }
                let name = script
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let dir = nonempty_str_param(rp, "dir").unwrap_or_else(|| "/tmp".into());
                let remote_dir = format!("{}/{}", dir.trim_end_matches('/'), ctx.execution_id);
                let remote_script = format!("{remote_dir}/{name}");
                let kwarg_op = str_param(rp, "kwarg_op").unwrap_or_else(|| "--".into());
                let args = script_arguments(&ctx.action, &ctx.action_params, &kwarg_op);
                let run = if args.is_empty() {
                    quote_unix(&remote_script)
                } else {
                    format!("{} {args}", quote_unix(&remote_script))
                };
                let libs = script
                    .parent()
                    .map(|p| p.join("lib"))
                    .filter(|p| p.is_dir());
                (
                    format!("cd {} && {run}", quote_unix(&cwd)),
                    Some(Upload {
                        remote_dir,
                        remote_script,
                        script,
                        libs,
                    }),
                )
            }
        };
        let inner = if exports.is_empty() {
            inner
        } else {
            format!("{exports} && {inner}")
        };
        let command = if sudo {
            let wrapped = format!(
                "{} {}",
                sudo_prefix(sudo_password.is_some()),
                quote_unix(&inner)
            );
            match &sudo_password {
                Some(pw) => format!(
                    "set +o history ; echo -e {} | {wrapped}",
                    quote_unix(&format!("{pw}\n"))
                ),
                None => wrapped,
            }
        } else {
            inner
        };
        let (timeout, timeout_shown) = timeout_param(rp, DEFAULT_TIMEOUT);
        let parallel = bool_param(rp, "parallel", false);
        Ok((
            Plan {
                login: Login {
                    username,
                    auth,
                    bastion,
                    connect_timeout: self.settings.ssh_connect_timeout,
                },
                timeout,
                timeout_shown,
                command,
                sudo_password: sudo_password.filter(|_| sudo),
                auth_token: ctx.auth_token.clone(),
                upload,
            },
            targets,
            parallel,
        ))
    }

    async fn execute(&self, ctx: &RunContext) -> Result<RunOutcome, RunnerError> {
        let (plan, targets, parallel) = self.plan(ctx)?;
        let plan = Arc::new(plan);
        let single = targets.len() == 1;
        let mut outcomes: Vec<(Target, HostOutcome)> = Vec::with_capacity(targets.len());

        let work = async {
            if parallel && !single {
                let limit = Arc::new(Semaphore::new(self.settings.ssh_max_parallel.max(1)));
                let mut set = tokio::task::JoinSet::new();
                for (i, t) in targets.iter().cloned().enumerate() {
                    let plan = Arc::clone(&plan);
                    let limit = Arc::clone(&limit);
                    let cancel = ctx.cancel.clone();
                    set.spawn(async move {
                        let _permit = limit.acquire_owned().await;
                        let outcome = run_on_host(&plan, &t, None, &cancel).await;
                        (i, t, outcome)
                    });
                }
                let mut done = Vec::new();
                while let Some(r) = set.join_next().await {
                    match r {
                        Ok(v) => done.push(v),
                        Err(e) => tracing::warn!(error = %e, "remote runner: host task failed"),
                    }
                }
                done.sort_by_key(|(i, _, _)| *i);
                done.into_iter().map(|(_, t, o)| (t, o)).collect::<Vec<_>>()
            } else {
                let mut done = Vec::new();
                for t in &targets {
                    let output = single.then_some(&ctx.output);
                    let o = run_on_host(&plan, t, output, &ctx.cancel).await;
                    done.push((t.clone(), o));
                }
                done
            }
        };
        // On cancel the running commands are told to stop; give them a moment to do so.
        let canceled = async {
            ctx.cancel.cancelled().await;
            tokio::time::sleep(CANCEL_GRACE).await;
        };
        tokio::select! {
            done = work => outcomes.extend(done),
            _ = canceled => {}
        }
        if ctx.cancel.is_cancelled() {
            return Ok(RunOutcome::new(
                ExecutionStatus::Canceled,
                json!({"error": "Action was canceled"}),
            ));
        }

        let connect_secs = plan.login.connect_timeout.as_secs();
        if outcomes
            .iter()
            .all(|(_, o)| matches!(o, HostOutcome::Unreachable(_)))
        {
            let mut errors = Map::new();
            for (t, o) in &outcomes {
                errors.insert(t.host.clone(), o.to_json(&plan, &t.host, connect_secs));
            }
            let hosts: Vec<Value> = targets
                .iter()
                .map(|t| Value::String(t.host.clone()))
                .collect();
            let pretty = serde_json::to_string_pretty(&Value::Object(errors)).unwrap_or_default();
            return Ok(RunOutcome::new(
                ExecutionStatus::Failed,
                json!({
                    "error": format!(
                        "Unable to connect to any one of the hosts: {}.\n\n connect_errors={pretty}",
                        py_str(&Value::Array(hosts))
                    ),
                    "traceback": "",
                }),
            ));
        }
        let all_ok = outcomes
            .iter()
            .all(|(_, o)| matches!(o, HostOutcome::Done { code: 0, .. }));
        let all_timed_out = outcomes
            .iter()
            .all(|(_, o)| matches!(o, HostOutcome::TimedOut { .. }));
        let mut result = Map::new();
        for (t, o) in &outcomes {
            result.insert(t.host.clone(), o.to_json(&plan, &t.host, connect_secs));
        }
        let status = if all_ok {
            ExecutionStatus::Succeeded
        } else if all_timed_out {
            ExecutionStatus::Timeout
        } else {
            ExecutionStatus::Failed
        };
        Ok(RunOutcome::new(status, Value::Object(result)))
    }
}

fn load_key(path: &Path, passphrase: Option<&str>) -> Result<PrivateKey, RunnerError> {
    russh::keys::load_secret_key(path, passphrase).map_err(|e| {
        RunnerError::Invalid(format!(
            "cannot load the private key {}: {e}",
            path.display()
        ))
    })
}

#[async_trait]
impl Runner for RemoteShellRunner {
    fn name(&self) -> &str {
        match self.kind {
            Kind::Cmd => "remote-shell-cmd",
            Kind::Script => "remote-shell-script",
        }
    }

    async fn run(&self, ctx: RunContext) -> RunOutcome {
        self.execute(&ctx).await.unwrap_or_else(RunOutcome::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_forms() {
        let t = |host: &str, port: u16| Target {
            host: host.into(),
            port,
        };
        assert_eq!(split_host_port("example.com", 22), Ok(t("example.com", 22)));
        assert_eq!(
            split_host_port(" example.com:2222 ", 22),
            Ok(t("example.com", 2222))
        );
        assert_eq!(split_host_port("[::1]:2200", 22), Ok(t("::1", 2200)));
        assert_eq!(split_host_port("[::1]", 22), Ok(t("::1", 22)));
        assert_eq!(split_host_port("fe80::1", 22), Ok(t("fe80::1", 22)));
        assert!(split_host_port("host:abc", 22).is_err());
    }

    #[test]
    fn command_lines() {
        // ParamikoRemoteCommandAction.get_full_command_string.
        let action: crate::model::Action = serde_json::from_value(json!({
            "name": "a", "pack": "p", "runner_type": "remote-shell-cmd", "entry_point": "",
        }))
        .expect("action");
        let mut ctx = RunContext::new("e1", action);
        let base = json!({"hosts": "h1,h2:2222", "password": "x", "cmd": "ls -l", "cwd": "/var"});
        ctx.runner_params = base.as_object().cloned().unwrap_or_default();
        let runner = RemoteShellRunner::cmd(Arc::new(RunnerSettings::default()));
        let (plan, targets, parallel) = runner.plan(&ctx).expect("plan");
        let exports = "export ST2_ACTION_PACK_NAME=p ST2_ACTION_EXECUTION_ID=e1 \
                       ST2_ACTION_DEBUG=False";
        assert_eq!(plan.command, format!("{exports} && cd /var && ls -l"));
        assert_eq!(targets.len(), 2);
        assert_eq!(targets[1].port, 2222);
        assert!(!parallel);

        let mut p = base.as_object().cloned().unwrap_or_default();
        p.insert("sudo".into(), json!(true));
        p.insert("sudo_password".into(), json!("s3cret"));
        p.insert("env".into(), json!({"A": "x y"}));
        ctx.runner_params = p;
        let (plan, _, _) = runner.plan(&ctx).expect("plan");
        let inner = format!(
            "export A='x y' {} && cd /var && ls -l",
            &exports["export ".len()..]
        );
        assert_eq!(
            plan.command,
            format!(
                "set +o history ; echo -e 's3cret\n' | sudo -S -E -- bash -c {}",
                quote_unix(&inner)
            )
        );
        assert!(!plan.sanitized_command().contains("s3cret"));
    }

    #[test]
    fn sanitizing_output() {
        assert_eq!(sanitize("a\r\nb\r\n", true), "a\nb");
        assert_eq!(sanitize("a\r\nb\n", false), "a\r\nb");
    }
}
