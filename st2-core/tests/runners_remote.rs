//! `remote-shell-cmd` and `remote-shell-script` against a real OpenSSH server: each test starts
//! a private `sshd` as the current user on 127.0.0.1:<free port>, with a generated host key and
//! an authorized client key in a temporary directory. Needs `openssh-server` (the README's test
//! command installs it); without `/usr/sbin/sshd` the tests fail, they do not skip.

mod runners_common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use st2_core::model::ExecutionStatus;
use st2_core::runners::remote::RemoteShellRunner;
use st2_core::runners::{OutputChunk, RunOutcome, Runner, RunnerSettings};

use runners_common::*;

const SSHD: &str = "/usr/sbin/sshd";

/// A private sshd; killed when dropped.
struct Sshd {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Sshd {
    fn key(&self) -> PathBuf {
        self.dir.path().join("id_ed25519")
    }

    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

fn keygen(path: &Path) {
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "st2-test", "-f"])
        .arg(path)
        .stdout(Stdio::null())
        .status()
        .expect("ssh-keygen (openssh-client) must be installed");
    assert!(status.success(), "ssh-keygen failed");
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

async fn start_sshd() -> Sshd {
    assert!(
        Path::new(SSHD).is_file(),
        "{SSHD} not found: the remote runner tests need openssh-server; run the README's test \
         command, which installs it"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    keygen(&d.join("host_key"));
    keygen(&d.join("id_ed25519"));
    std::fs::copy(d.join("id_ed25519.pub"), d.join("authorized_keys")).expect("authorized_keys");
    let root = nix::unistd::getuid().is_root();
    if root {
        // sshd started as root insists on its privilege separation directory.
        let _ = std::fs::create_dir_all("/run/sshd");
    }
    let port = free_port();
    let config = format!(
        "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\nPidFile {d}/sshd.pid\n\
         AuthorizedKeysFile {d}/authorized_keys\nStrictModes no\nUsePAM no\n\
         PubkeyAuthentication yes\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
         PermitRootLogin {}\nLogLevel FATAL\nMaxStartups 100\nMaxSessions 100\n",
        if root { "prohibit-password" } else { "no" },
        d = d.display()
    );
    std::fs::write(d.join("sshd_config"), config).expect("config");
    let child = Command::new(SSHD)
        .args(["-D", "-e", "-f"])
        .arg(d.join("sshd_config"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start sshd");
    let sshd = Sshd { child, port, dir };
    // sshd -D writes its pid file once it listens.
    let pidfile = sshd.dir.path().join("sshd.pid");
    assert!(
        wait_for(Duration::from_secs(10), || pidfile.is_file()).await,
        "sshd did not start listening on port {port}"
    );
    sshd
}

fn runner_settings() -> RunnerSettings {
    RunnerSettings {
        ssh_connect_timeout: Duration::from_secs(10),
        ..RunnerSettings::default()
    }
}

async fn remote_cmd(runner_params: Value) -> RunOutcome {
    let ctx = context(cmd_action("remote-shell-cmd"), runner_params, json!({}));
    RemoteShellRunner::cmd(runner_settings().into())
        .run(ctx)
        .await
}

#[tokio::test]
async fn command_with_env_cwd_and_key_file() {
    let sshd = start_sshd().await;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<OutputChunk>(64);
    let mut ctx = context(
        cmd_action("remote-shell-cmd"),
        json!({
            "hosts": sshd.host(),
            "private_key": sshd.key().to_string_lossy(),
            "cmd": "echo \"hello $FOO\"; pwd; echo \"$ST2_ACTION_PACK_NAME\"; echo err >&2",
            "cwd": "/",
            "env": {"FOO": "bar baz"},
        }),
        json!({}),
    );
    ctx.output = tx;
    let out = RemoteShellRunner::cmd(runner_settings().into())
        .run(ctx)
        .await;
    assert_eq!(out.status, ExecutionStatus::Succeeded, "{:#}", out.result);
    let host = &out.result["127.0.0.1"];
    assert_eq!(host["stdout"], "hello bar baz\n/\ncore");
    assert_eq!(host["stderr"], "err");
    assert_eq!(host["return_code"], 0);
    assert_eq!(host["succeeded"], true);
    assert_eq!(host["failed"], false);
    // A single host streams its output.
    let mut streamed = String::new();
    while let Ok(c) = rx.try_recv() {
        if c.stream == st2_core::runners::OutputStream::Stdout {
            streamed.push_str(&c.data);
        }
    }
    assert_eq!(streamed, "hello bar baz\n/\ncore\n");
}

#[tokio::test]
async fn key_material_several_hosts_in_parallel() {
    let sshd = start_sshd().await;
    let key = std::fs::read_to_string(sshd.key()).expect("key");
    let out = remote_cmd(json!({
        "hosts": format!("127.0.0.1:{p}, localhost:{p}", p = sshd.port),
        "private_key": key,
        "cmd": "echo '{\"n\": 1}'",
        "parallel": true,
    }))
    .await;
    assert_eq!(out.status, ExecutionStatus::Succeeded, "{:#}", out.result);
    for h in ["127.0.0.1", "localhost"] {
        assert_eq!(
            out.result[h]["stdout"],
            json!({"n": 1}),
            "{h}: {:#}",
            out.result
        );
    }
    // The `port` parameter applies to hosts without one.
    let out = remote_cmd(
        json!({"hosts": "127.0.0.1", "port": sshd.port, "private_key": key, "cmd": "true"}),
    )
    .await;
    assert_eq!(out.status, ExecutionStatus::Succeeded, "{:#}", out.result);
}

#[tokio::test]
async fn failing_command_fails_the_execution() {
    let sshd = start_sshd().await;
    let out = remote_cmd(json!({
        "hosts": sshd.host(),
        "private_key": sshd.key().to_string_lossy(),
        "cmd": "echo out; exit 3",
    }))
    .await;
    assert_eq!(out.status, ExecutionStatus::Failed);
    assert_eq!(out.result["127.0.0.1"]["return_code"], 3);
    assert_eq!(out.result["127.0.0.1"]["failed"], true);
    assert_eq!(out.result["127.0.0.1"]["stdout"], "out");
}

#[tokio::test]
async fn command_timeout() {
    let sshd = start_sshd().await;
    let pidfile = sshd.dir.path().join("cmd.pid");
    let started = Instant::now();
    let out = remote_cmd(json!({
        "hosts": sshd.host(),
        "private_key": sshd.key().to_string_lossy(),
        "cmd": format!("echo before; echo $$ > {}; exec sleep 30", pidfile.display()),
        "timeout": 1,
    }))
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(out.status, ExecutionStatus::Timeout, "{:#}", out.result);
    let host = &out.result["127.0.0.1"];
    assert_eq!(host["timeout"], true);
    assert_eq!(host["return_code"], -9);
    assert_eq!(host["stdout"], "before");
    assert!(host["error"]
        .as_str()
        .is_some_and(|e| e.contains("Command didn't finish in 1 seconds")));
    // The runner asks sshd to kill the command (a `signal` channel request), which a
    // production sshd honours; this private one runs without privilege separation and refuses,
    // so clean up here.
    if let Some(pid) = read_pid(&pidfile) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

#[tokio::test]
async fn script_is_copied_with_its_lib_and_removed_afterwards() {
    let sshd = start_sshd().await;
    let remote_base = tempfile::tempdir().expect("tempdir");
    let base = remote_base.path().canonicalize().expect("canonical");
    let ctx = context(
        fixture_action("remote_libs"),
        json!({
            "hosts": sshd.host(),
            "private_key": sshd.key().to_string_lossy(),
            "dir": base.to_string_lossy(),
            "cwd": "/tmp",
        }),
        json!({"who": "the world", "loud": true}),
    );
    let out = RemoteShellRunner::script(runner_settings().into())
        .run(ctx)
        .await;
    assert_eq!(out.status, ExecutionStatus::Succeeded, "{:#}", out.result);
    let stdout = out.result["127.0.0.1"]["stdout"]
        .as_str()
        .expect("stdout")
        .to_string();
    let lines: Vec<&str> = stdout.lines().collect();
    let exec_dir = base.join("5f1c0ffee0000000000000aa");
    assert_eq!(
        lines,
        [
            format!("script:{}", exec_dir.display()).as_str(),
            "greeting.py",
            "arg:--loud",
            "arg:the world",
        ]
    );
    assert!(
        !exec_dir.exists(),
        "the remote execution directory is removed"
    );
}

#[tokio::test]
async fn unreachable_hosts_and_bad_credentials() {
    let sshd = start_sshd().await;
    // Nothing listens on a fresh free port.
    let out = remote_cmd(json!({
        "hosts": format!("127.0.0.1:{}", free_port()),
        "private_key": sshd.key().to_string_lossy(),
        "cmd": "true",
    }))
    .await;
    assert_eq!(out.status, ExecutionStatus::Failed);
    let error = out.result["error"].as_str().expect("error");
    assert!(
        error.starts_with("Unable to connect to any one of the hosts: ['127.0.0.1']"),
        "{error}"
    );

    // A key sshd does not know: authentication fails on every host.
    let other = tempfile::tempdir().expect("tempdir");
    keygen(&other.path().join("id"));
    let out = remote_cmd(json!({
        "hosts": format!("127.0.0.1:{p},localhost:{p}", p = sshd.port),
        "private_key": other.path().join("id").to_string_lossy(),
        "cmd": "true",
    }))
    .await;
    assert_eq!(out.status, ExecutionStatus::Failed);
    let error = out.result["error"].as_str().expect("error");
    assert!(error.contains("Authentication failed"), "{error}");

    let out = remote_cmd(json!({"hosts": "", "cmd": "true"})).await;
    assert_eq!(out.status, ExecutionStatus::Failed);
    assert!(out.result["error"]
        .as_str()
        .is_some_and(|e| e.contains("No hosts specified")));
}

#[tokio::test]
async fn cancel_stops_remote_work() {
    let sshd = start_sshd().await;
    let pidfile = sshd.dir.path().join("cmd.pid");
    let cmd = format!("echo $$ > {}; exec sleep 30", pidfile.display());
    let ctx = context(
        cmd_action("remote-shell-cmd"),
        json!({"hosts": sshd.host(), "private_key": sshd.key().to_string_lossy(), "cmd": cmd}),
        json!({}),
    );
    let cancel = ctx.cancel.clone();
    let task = tokio::spawn(async move {
        RemoteShellRunner::cmd(runner_settings().into())
            .run(ctx)
            .await
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    cancel.cancel();
    let out = tokio::time::timeout(Duration::from_secs(3), task)
        .await
        .expect("in time")
        .expect("join");
    assert_eq!(out.status, ExecutionStatus::Canceled);
    if let Some(pid) = read_pid(&pidfile) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}
