//! `local-shell-cmd` and `local-shell-script`: StackStorm's `local_runner`.
//!
//! - The command goes through `/bin/sh -c` (Python's `shell=True`), as this process's user.
//!   `cmd` runs as given; a script runs as `chmod +x <path> ; <quoted path> <arguments>`
//!   (the `chmod` is skipped on read-only file systems), with StackStorm's script arguments
//!   (`args.rs`): `--name=value` for named parameters (`kwarg_op`, default `--`), then the
//!   parameters with a `position`. Action-only parameters of a
//!   `local-shell-cmd` action are not passed at all (they only feed the `cmd` template).
//! - `sudo: true` wraps it as `sudo -E -- bash -c '<command>'`; with `sudo_password` the
//!   flags become `-S -E` and the password goes to stdin.
//! - Environment: this process's, plus the `env` parameter, plus `ST2_ACTION_PACK_NAME`,
//!   `ST2_ACTION_EXECUTION_ID`, `ST2_ACTION_API_URL`, `ST2_ACTION_DEBUG` and
//!   `ST2_ACTION_AUTH_TOKEN`. `cwd` sets the working directory.
//! - `timeout` (default 60 s; 0 = none) kills the whole process tree: status `timeout`,
//!   `return_code` -9 and `error: "Action failed to complete in <timeout> seconds"`.
//! - Result `{failed, succeeded, return_code, stdout, stderr}`: stdout and stderr lose one
//!   trailing newline and are JSON-decoded when they parse (`echo '{"a": 1}'` gives an object,
//!   `echo 5` a number). Exit 0 → `succeeded`, -9 → `timeout`, -15 → `abandoned`, else `failed`.

use async_trait::async_trait;
use serde_json::{json, Map, Value};

use super::args::{quote_unix, script_arguments, sudo_prefix};
use super::params::{env_param, nonempty_str_param, str_param, timeout_param};
use super::process::{run_process, Ending, ProcessResult, ProcessSpec};
use super::{RunContext, RunOutcome, Runner, RunnerError};
use crate::model::ExecutionStatus;

/// Default `timeout` of the local runners, in seconds.
pub const DEFAULT_TIMEOUT: u64 = 60;

/// Which of the two local runners.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Cmd,
    Script,
}

/// The local shell runners.
#[derive(Debug, Clone)]
pub struct LocalShellRunner {
    kind: Kind,
}

impl LocalShellRunner {
    /// `local-shell-cmd`.
    pub fn cmd() -> Self {
        Self { kind: Kind::Cmd }
    }

    /// `local-shell-script`.
    pub fn script() -> Self {
        Self { kind: Kind::Script }
    }

    /// The full shell command line and what goes to stdin.
    fn command(&self, ctx: &RunContext) -> Result<(String, Option<Vec<u8>>), RunnerError> {
        let rp = &ctx.runner_params;
        let sudo = super::params::bool_param(rp, "sudo", false);
        let sudo_password = nonempty_str_param(rp, "sudo_password");
        let wrap = |inner: &str| {
            format!(
                "{} {}",
                sudo_prefix(sudo_password.is_some()),
                quote_unix(inner)
            )
        };
        let command = match self.kind {
            Kind::Cmd => {
                if !ctx.action.entry_point.trim().is_empty() {
                    return Err(RunnerError::Invalid(
                        "entry_point is only valid for local-shell-script runner".into(),
                    ));
                }
                let cmd = str_param(rp, "cmd").ok_or_else(|| {
                    RunnerError::Invalid(format!("Action \"{}\" has no cmd", ctx.action_ref()))
                })?;
                if sudo {
                    wrap(&cmd)
                } else {
                    cmd
                }
            }
            Kind::Script => {
                let path = ctx.entry_point_path()?;
                let path = path.to_string_lossy().into_owned();
                let kwarg_op = str_param(rp, "kwarg_op").unwrap_or_else(|| "--".into());
                let args = script_arguments(&ctx.action, &ctx.action_params, &kwarg_op);
                let run = if sudo {
                    wrap(&if args.is_empty() {
                        path.clone()
                    } else {
                        format!("{path} {args}")
                    })
                } else if args.is_empty() {
                    quote_unix(&path)
                } else {
                    format!("{} {args}", quote_unix(&path))
                };
                if writable(&path) {
                    format!("chmod +x {} ; {run}", quote_unix(&path))
                } else {
                    run
                }
            }
        };
        // StackStorm pipes `echo <password>` (so "password\n\n") into sudo -S.
        let stdin = sudo_password
            .filter(|_| sudo)
            .map(|p| format!("{p}\n\n").into_bytes());
        Ok((command, stdin))
    }

    async fn execute(&self, ctx: &RunContext) -> Result<RunOutcome, RunnerError> {
        let (command, stdin) = self.command(ctx)?;
        let (timeout, timeout_shown) = timeout_param(&ctx.runner_params, DEFAULT_TIMEOUT);
        let mut env = env_param(&ctx.runner_params);
        env.extend(ctx.st2_env());
        let spec = ProcessSpec {
            program: "/bin/sh".into(),
            args: vec!["-c".into(), command],
            env,
            env_remove: Vec::new(),
            cwd: nonempty_str_param(&ctx.runner_params, "cwd").map(Into::into),
            stdin: stdin.clone(),
            timeout,
            report: ctx.processes.clone(),
        };
        let p = run_process(spec, &ctx.output, &ctx.cancel, None).await?;
        Ok(shell_outcome(&p, &timeout_shown, stdin.is_some()))
    }
}

/// Whether the file system holding `path` is writable (StackStorm's `ST_RDONLY` check before
/// `chmod +x`).
fn writable(path: &str) -> bool {
    use nix::sys::statvfs::{statvfs, FsFlags};
    statvfs(path).is_ok_and(|s| !s.flags().contains(FsFlags::ST_RDONLY))
}

/// StackStorm's `strip_shell_chars`: drops one trailing `\n`, then one trailing `\r`.
pub(crate) fn strip_shell_chars(s: &str) -> &str {
    let s = s.strip_suffix('\n').unwrap_or(s);
    s.strip_suffix('\r').unwrap_or(s)
}

/// StackStorm's `jsonify.json_loads` on an output stream: the parsed JSON when the text is
/// JSON, else the text.
pub(crate) fn json_or_text(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|_| Value::String(s.to_string()))
}

/// Detects sudo's "incorrect password" answer, as `BaseLocalShellRunner._run` does.
pub(crate) fn sudo_password_error(stderr: &str) -> Option<String> {
    let attempts = regex::Regex::new(r"sudo: \d+ incorrect password attempts").ok()?;
    if !attempts.is_match(stderr) {
        return None;
    }
    let user = regex::Regex::new(r"\[sudo\] password for (.+?):")
        .ok()
        .and_then(|re| {
            re.captures(stderr)
                .and_then(|c| c.get(1))
                .map(|m| m.as_str().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    Some(format!(
        "Invalid sudo password provided or sudo is not configured for this user ({user})"
    ))
}

/// The status StackStorm maps a local process exit code to.
fn status_for_exit_code(code: i32) -> ExecutionStatus {
    match code {
        0 => ExecutionStatus::Succeeded,
        -9 => ExecutionStatus::Timeout,
        -15 => ExecutionStatus::Abandoned,
        _ => ExecutionStatus::Failed,
    }
}

/// The outcome of a finished local process.
fn shell_outcome(p: &ProcessResult, timeout_shown: &str, sudo_password: bool) -> RunOutcome {
    let mut exit_code = p.exit_code;
    let mut error = None;
    match p.ending {
        Ending::TimedOut => {
            exit_code = -9;
            error = Some(format!(
                "Action failed to complete in {timeout_shown} seconds"
            ));
        }
        Ending::Canceled => {
            exit_code = -9;
            error = Some("Action was canceled".to_string());
        }
        Ending::Exited => {}
    }
    if sudo_password {
        if let Some(e) = sudo_password_error(&p.stderr) {
            error = Some(e);
            exit_code = -1;
        }
    }
    let succeeded = exit_code == 0;
    let mut result = Map::new();
    result.insert("failed".into(), json!(!succeeded));
    result.insert("succeeded".into(), json!(succeeded));
    result.insert("return_code".into(), json!(exit_code));
    result.insert("stdout".into(), json_or_text(strip_shell_chars(&p.stdout)));
    result.insert("stderr".into(), json_or_text(strip_shell_chars(&p.stderr)));
    if let Some(e) = error {
        result.insert("error".into(), json!(e));
    }
    let status = match p.ending {
        Ending::Canceled => ExecutionStatus::Canceled,
        Ending::TimedOut => ExecutionStatus::Timeout,
        Ending::Exited => status_for_exit_code(exit_code),
    };
    RunOutcome::new(status, Value::Object(result))
}

#[async_trait]
impl Runner for LocalShellRunner {
    fn name(&self) -> &str {
        match self.kind {
            Kind::Cmd => "local-shell-cmd",
            Kind::Script => "local-shell-script",
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
    fn strips_one_newline() {
        assert_eq!(strip_shell_chars("a\n\n"), "a\n");
        assert_eq!(strip_shell_chars("a\r\n"), "a");
        assert_eq!(strip_shell_chars("a"), "a");
        assert_eq!(strip_shell_chars(""), "");
    }

    #[test]
    fn output_json_decoding() {
        assert_eq!(json_or_text("{\"a\": 1}"), json!({"a": 1}));
        assert_eq!(json_or_text("5"), json!(5));
        assert_eq!(json_or_text("hello"), json!("hello"));
        assert_eq!(json_or_text(""), json!(""));
    }

    #[test]
    fn sudo_errors() {
        let stderr = "[sudo] password for stanley: \nsudo: 3 incorrect password attempts";
        assert_eq!(
            sudo_password_error(stderr).as_deref(),
            Some(
                "Invalid sudo password provided or sudo is not configured for this user (stanley)"
            )
        );
        assert_eq!(sudo_password_error("fine"), None);
    }

    fn ctx(runner_type: &str, entry_point: &str, runner_params: Value) -> RunContext {
        let action: crate::model::Action = serde_json::from_value(json!({
            "name": "a", "pack": "p", "runner_type": runner_type, "entry_point": entry_point,
            "parameters": {"n": {"type": "integer"}},
        }))
        .expect("action");
        let mut c = RunContext::new("e1", action);
        c.runner_params = runner_params.as_object().cloned().unwrap_or_default();
        c.action_params = json!({"n": 1}).as_object().cloned().unwrap_or_default();
        c
    }

    #[test]
    fn sudo_command_lines() {
        // StackStorm's ShellCommandAction / ShellScriptAction.get_full_command_string.
        let cmd = LocalShellRunner::cmd();
        let (line, stdin) = cmd
            .command(&ctx(
                "local-shell-cmd",
                "",
                json!({"cmd": "echo 'hi'", "sudo": true}),
            ))
            .expect("command");
        assert_eq!(line, "sudo -E -- bash -c 'echo '\"'\"'hi'\"'\"''");
        assert_eq!(stdin, None);
        let (line, stdin) = cmd
            .command(&ctx(
                "local-shell-cmd",
                "",
                json!({"cmd": "id", "sudo": true, "sudo_password": "pw"}),
            ))
            .expect("command");
        assert_eq!(line, "sudo -S -E -- bash -c id");
        assert_eq!(stdin.as_deref(), Some(&b"pw\n\n"[..]));
        let (line, _) = cmd
            .command(&ctx("local-shell-cmd", "", json!({"cmd": "id"})))
            .expect("command");
        assert_eq!(line, "id");

        let script = LocalShellRunner::script();
        let (line, _) = script
            .command(&ctx(
                "local-shell-script",
                "/nonexistent dir/x.sh",
                json!({"sudo": true}),
            ))
            .expect("command");
        assert_eq!(line, "sudo -E -- bash -c '/nonexistent dir/x.sh --n=1'");
        let (line, _) = script
            .command(&ctx(
                "local-shell-script",
                "/nonexistent dir/x.sh",
                json!({}),
            ))
            .expect("command");
        assert_eq!(line, "'/nonexistent dir/x.sh' --n=1");
    }

    #[test]
    fn exit_codes() {
        assert_eq!(status_for_exit_code(0), ExecutionStatus::Succeeded);
        assert_eq!(status_for_exit_code(1), ExecutionStatus::Failed);
        assert_eq!(status_for_exit_code(-9), ExecutionStatus::Timeout);
        assert_eq!(status_for_exit_code(-15), ExecutionStatus::Abandoned);
    }
}
