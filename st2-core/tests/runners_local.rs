//! `local-shell-cmd` and `local-shell-script` against real processes: argument passing,
//! environment, working directory, exit codes, timeouts and cancellation that leave no process
//! behind, live output, large output.

mod runners_common;

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use st2_core::model::ExecutionStatus;
use st2_core::runners::shell::LocalShellRunner;
use st2_core::runners::{OutputChunk, OutputStream, Runner, RunnerRegistry, RunnerSettings};

use runners_common::*;

fn stdout_lines(result: &Value) -> Vec<String> {
    result["stdout"]
        .as_str()
        .expect("stdout text")
        .lines()
        .map(String::from)
        .collect()
}

#[tokio::test]
async fn script_gets_named_positional_and_boolean_arguments() {
    let mut ctx = context(
        fixture_action("echo_args"),
        json!({"env": {"CUSTOM_VAR": "custom value"}}),
        json!({
            "first": "hello world",
            "second": 42,
            "flag": true,
            "off": false,
            "name": "it's",
            "items": ["a", "b"],
        }),
    );
    ctx.api_url = Some("http://127.0.0.1:9101/api/v1".into());
    ctx.auth_token = Some("tok123".into());
    let out = LocalShellRunner::script().run(ctx).await;
    assert_eq!(out.status, ExecutionStatus::Succeeded, "{}", out.result);
    let r = &out.result;
    assert_eq!(r["return_code"], 0);
    assert_eq!(r["succeeded"], true);
    assert_eq!(r["failed"], false);
    assert_eq!(r["stderr"], "to stderr");
    let lines = stdout_lines(r);
    assert_eq!(
        &lines[..5],
        &[
            "arg:--flag",
            "arg:--name=it's",
            "arg:--items=['a', 'b']",
            "arg:hello world",
            "arg:42",
        ],
        "{lines:?}"
    );
    assert!(lines.contains(&"pack:runnertest".to_string()), "{lines:?}");
    assert!(lines.contains(&"execution:5f1c0ffee0000000000000aa".to_string()));
    assert!(lines.contains(&"api:http://127.0.0.1:9101/api/v1".to_string()));
    assert!(lines.contains(&"token:tok123".to_string()));
    assert!(lines.contains(&"custom:custom value".to_string()));
    // Result keys in StackStorm's order.
    let keys: Vec<&String> = r.as_object().expect("object").keys().collect();
    assert_eq!(
        keys,
        ["failed", "succeeded", "return_code", "stdout", "stderr"]
    );
}

#[tokio::test]
async fn kwarg_op_and_missing_positionals() {
    let ctx = context(
        fixture_action("echo_args"),
        json!({"kwarg_op": "-"}),
        json!({"name": "x", "first": null}),
    );
    let out = LocalShellRunner::script().run(ctx).await;
    assert_eq!(out.status, ExecutionStatus::Succeeded, "{}", out.result);
    let lines = stdout_lines(&out.result);
    // Missing positional parameters are still passed, as empty strings, to keep positions.
    assert_eq!(&lines[..3], &["arg:-name=x", "arg:", "arg:"], "{lines:?}");
}

#[tokio::test]
async fn cmd_runs_through_the_shell_with_env_and_cwd() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cwd = dir.path().canonicalize().expect("canonical");
    let ctx = context(
        cmd_action("local-shell-cmd"),
        json!({
            "cmd": "pwd; echo \"$CUSTOM_VAR|$ST2_ACTION_PACK_NAME|$ST2_ACTION_DEBUG\"; echo err >&2",
            "cwd": cwd.to_string_lossy(),
            "env": {"CUSTOM_VAR": "v1"},
        }),
        json!({"ignored": "not passed to cmd actions"}),
    );
    let out = LocalShellRunner::cmd().run(ctx).await;
    assert_eq!(out.status, ExecutionStatus::Succeeded, "{}", out.result);
    assert_eq!(
        out.result["stdout"],
        format!("{}\nv1|core|False", cwd.display())
    );
    assert_eq!(out.result["stderr"], "err");
}

#[tokio::test]
async fn json_output_is_decoded_and_one_newline_stripped() {
    let ctx = context(
        cmd_action("local-shell-cmd"),
        json!({"cmd": "echo '{\"a\": [1, 2]}'"}),
        json!({}),
    );
    let out = LocalShellRunner::cmd().run(ctx).await;
    assert_eq!(out.result["stdout"], json!({"a": [1, 2]}));
    let ctx = context(
        cmd_action("local-shell-cmd"),
        json!({"cmd": "printf 'x\\n\\n'"}),
        json!({}),
    );
    let out = LocalShellRunner::cmd().run(ctx).await;
    assert_eq!(out.result["stdout"], "x\n");
}

#[tokio::test]
async fn non_zero_exit_fails() {
    let ctx = context(fixture_action("exit_code"), json!({}), json!({"code": 3}));
    let out = LocalShellRunner::script().run(ctx).await;
    assert_eq!(out.status, ExecutionStatus::Failed);
    assert_eq!(out.result["return_code"], 3);
    assert_eq!(out.result["failed"], true);
    assert_eq!(out.result["succeeded"], false);
    assert_eq!(out.result["stdout"], "exiting with 3");
    assert_eq!(out.result["stderr"], "oops");
}

#[tokio::test]
async fn cmd_killed_by_sigterm_is_abandoned() {
    let ctx = context(
        cmd_action("local-shell-cmd"),
        json!({"cmd": "kill -TERM $$"}),
        json!({}),
    );
    let out = LocalShellRunner::cmd().run(ctx).await;
    assert_eq!(out.status, ExecutionStatus::Abandoned, "{}", out.result);
    assert_eq!(out.result["return_code"], -15);
}

#[tokio::test]
async fn missing_cmd_and_bad_entry_points_fail_cleanly() {
    let out = LocalShellRunner::cmd()
        .run(context(cmd_action("local-shell-cmd"), json!({}), json!({})))
        .await;
    assert_eq!(out.status, ExecutionStatus::Failed);
    assert!(
        out.result["error"]
            .as_str()
            .is_some_and(|e| e.contains("no cmd")),
        "{}",
        out.result
    );

    let mut action = fixture_action("echo_args");
    action.entry_point = String::new();
    let out = LocalShellRunner::script()
        .run(context(action, json!({}), json!({})))
        .await;
    assert_eq!(out.status, ExecutionStatus::Failed);
    assert!(
        out.result["error"]
            .as_str()
            .is_some_and(|e| e.contains("entry_point")),
        "{}",
        out.result
    );
}

#[tokio::test]
async fn timeout_kills_the_whole_process_tree() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pidfile = dir.path().join("pid");
    let cmd = format!(
        "echo $$ > {p}; sleep 100 & (sleep 100 &) ; echo started; sleep 30; wait",
        p = pidfile.display()
    );
    let ctx = context(
        cmd_action("local-shell-cmd"),
        json!({"cmd": cmd, "timeout": 1}),
        json!({}),
    );
    let started = Instant::now();
    let out = LocalShellRunner::cmd().run(ctx).await;
    let took = started.elapsed();
    assert_eq!(out.status, ExecutionStatus::Timeout, "{}", out.result);
    assert!(took < Duration::from_secs(5), "took {took:?}");
    assert_eq!(out.result["return_code"], -9);
    assert_eq!(out.result["failed"], true);
    assert_eq!(out.result["stdout"], "started");
    assert_eq!(
        out.result["error"],
        "Action failed to complete in 1 seconds"
    );
    let leader = read_pid(&pidfile).expect("pid written");
    assert!(
        wait_for(Duration::from_secs(2), || live_members(leader).is_empty()).await,
        "processes left: {:?}",
        live_members(leader)
    );
}

#[tokio::test]
async fn orphaned_grandchild_holding_stdout_is_killed_on_timeout() {
    // The shell exits at once, but an orphaned `sleep` keeps stdout open: like StackStorm the
    // run waits for the pipe, so the timeout ends it, and the orphan must die too.
    let dir = tempfile::tempdir().expect("tempdir");
    let pidfile = dir.path().join("pid");
    let cmd = format!("echo $$ > {p}; (sleep 100 &) ; wait", p = pidfile.display());
    let ctx = context(
        cmd_action("local-shell-cmd"),
        json!({"cmd": cmd, "timeout": 1}),
        json!({}),
    );
    let out = LocalShellRunner::cmd().run(ctx).await;
    assert_eq!(out.status, ExecutionStatus::Timeout, "{}", out.result);
    let leader = read_pid(&pidfile).expect("pid written");
    assert!(
        wait_for(Duration::from_secs(2), || live_members(leader).is_empty()).await,
        "processes left: {:?}",
        live_members(leader)
    );
}

#[tokio::test]
async fn background_process_with_redirected_output_does_not_block() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pidfile = dir.path().join("bgpid");
    let cmd = format!(
        "sleep 100 >/dev/null 2>&1 & echo $! > {p}; echo done",
        p = pidfile.display()
    );
    let ctx = context(
        cmd_action("local-shell-cmd"),
        json!({"cmd": cmd, "timeout": 20}),
        json!({}),
    );
    let started = Instant::now();
    let out = LocalShellRunner::cmd().run(ctx).await;
    assert_eq!(out.status, ExecutionStatus::Succeeded, "{}", out.result);
    assert!(started.elapsed() < Duration::from_secs(5));
    // Daemon-style background work survives the action, as in StackStorm; clean it up.
    if let Some(pid) = read_pid(&pidfile) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

#[tokio::test]
async fn cancel_kills_a_running_command() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pidfile = dir.path().join("pid");
    let cmd = format!(
        "echo $$ > {p}; (sleep 100 &); sleep 100",
        p = pidfile.display()
    );
    let ctx = context(
        cmd_action("local-shell-cmd"),
        json!({"cmd": cmd, "timeout": 60}),
        json!({}),
    );
    let cancel = ctx.cancel.clone();
    let task = tokio::spawn(async move { LocalShellRunner::cmd().run(ctx).await });
    assert!(wait_for(Duration::from_secs(5), || read_pid(&pidfile).is_some()).await);
    let leader = read_pid(&pidfile).expect("pid");
    assert!(alive(leader));
    let started = Instant::now();
    cancel.cancel();
    let out = task.await.expect("join");
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(out.status, ExecutionStatus::Canceled, "{}", out.result);
    assert!(
        wait_for(Duration::from_secs(2), || live_members(leader).is_empty()).await,
        "processes left: {:?}",
        live_members(leader)
    );
}

#[tokio::test]
async fn live_output_arrives_before_the_process_ends() {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<OutputChunk>(16);
    let mut ctx = context(
        cmd_action("local-shell-cmd"),
        json!({"cmd": "echo first; echo warn >&2; sleep 2; echo second"}),
        json!({}),
    );
    ctx.output = tx;
    let started = Instant::now();
    let task = tokio::spawn(async move { LocalShellRunner::cmd().run(ctx).await });
    let mut seen = Vec::new();
    while seen
        .iter()
        .filter(|c: &&OutputChunk| c.stream == OutputStream::Stdout)
        .count()
        == 0
        || !seen
            .iter()
            .any(|c: &OutputChunk| c.stream == OutputStream::Stderr)
    {
        let chunk = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("chunk in time")
            .expect("channel open");
        seen.push(chunk);
    }
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "first chunks took {:?}",
        started.elapsed()
    );
    assert!(!task.is_finished());
    assert_eq!(
        seen.iter()
            .find(|c| c.stream == OutputStream::Stdout)
            .map(|c| c.data.as_str()),
        Some("first\n")
    );
    // The rest arrives, then the channel closes when the runner returns.
    while let Some(c) = rx.recv().await {
        seen.push(c);
    }
    let out = task.await.expect("join");
    assert_eq!(out.result["stdout"], "first\nsecond");
    let streamed: String = seen
        .iter()
        .filter(|c| c.stream == OutputStream::Stdout)
        .map(|c| c.data.as_str())
        .collect();
    assert_eq!(streamed, "first\nsecond\n");
}

#[tokio::test]
async fn large_output_is_captured_whole() {
    // ~6.9 MB on stdout, streamed to a slow-ish consumer, and the same with output discarded.
    let cmd = "seq 1 1000000";
    let (tx, mut rx) = tokio::sync::mpsc::channel::<OutputChunk>(4);
    let mut ctx = context(
        cmd_action("local-shell-cmd"),
        json!({"cmd": cmd}),
        json!({}),
    );
    ctx.output = tx;
    let consumer = tokio::spawn(async move {
        let mut n = 0usize;
        while let Some(c) = rx.recv().await {
            n += c.data.len();
        }
        n
    });
    let out = LocalShellRunner::cmd().run(ctx).await;
    assert_eq!(out.status, ExecutionStatus::Succeeded);
    let stdout = out.result["stdout"].as_str().expect("text");
    assert_eq!(stdout.lines().count(), 1_000_000);
    assert!(stdout.ends_with("999999\n1000000"));
    assert_eq!(consumer.await.expect("join"), stdout.len() + 1);

    let ctx = context(
        cmd_action("local-shell-cmd"),
        json!({"cmd": cmd}),
        json!({}),
    );
    let out = LocalShellRunner::cmd().run(ctx).await;
    assert_eq!(
        out.result["stdout"].as_str().map(str::len),
        Some(stdout.len())
    );
}

#[tokio::test]
async fn registry_finds_runners_by_type_name() {
    let reg = RunnerRegistry::standard(RunnerSettings::default());
    let names: Vec<&str> = reg.names().collect();
    for n in [
        "announcement",
        "http-request",
        "inquirer",
        "local-shell-cmd",
        "local-shell-script",
        "noop",
        "python-script",
        "remote-shell-cmd",
        "remote-shell-script",
    ] {
        assert!(names.contains(&n), "{n} missing from {names:?}");
    }
    assert_eq!(
        reg.get("local_shell_cmd")
            .map(|r| r.name().to_string())
            .as_deref(),
        Some("local-shell-cmd")
    );
    let ctx = context(
        cmd_action("local-shell-cmd"),
        json!({"cmd": "echo via registry"}),
        json!({}),
    );
    assert_eq!(reg.run(ctx).await.result["stdout"], "via registry");
    let out = reg
        .run(context(cmd_action("no-such-runner"), json!({}), json!({})))
        .await;
    assert_eq!(out.status, ExecutionStatus::Failed);
    assert!(out.result["error"]
        .as_str()
        .is_some_and(|e| e.contains("no-such-runner")));
}

#[tokio::test]
async fn core_pack_echo_action() {
    // packs/core/actions/echo.yaml, with its cmd as the parameter renderer produces it.
    let core = repo_root().join("packs").join("core");
    let action = load_action(&core, "core", "echo");
    let mut ctx = context(
        action,
        json!({"cmd": "echo \"Hello StackStorm\"", "sudo": false}),
        json!({"message": "Hello StackStorm"}),
    );
    ctx.pack_dir = Some(core);
    let out = LocalShellRunner::cmd().run(ctx).await;
    assert_eq!(out.status, ExecutionStatus::Succeeded);
    assert_eq!(
        out.result,
        json!({"failed": false, "succeeded": true, "return_code": 0, "stdout": "Hello StackStorm", "stderr": ""})
    );
}
