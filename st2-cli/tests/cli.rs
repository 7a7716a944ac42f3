//! `st2` as a user runs it: the real binary against a real platform and API on `127.0.0.1:0`
//! (started in this process with `st2_api::server::run`, as `st2d` does).
//!
//! - auth: `auth_*`, `config_file_*`, `bad_token_*`
//! - actions: `action_*`, `run_*`, `unknown_action_*`
//! - executions: `execution_*`
//! - st2ctl: `st2ctl_status_*`

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

use st2_core::config::Config;

/// The shared server: its address and admin password.
struct Server {
    addr: String,
    password: String,
}

fn repo_root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// Starts the platform once for the whole test binary (its data dir lives in the target's
/// temporary dir).
fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| {
        let data: PathBuf = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR"))
            .expect("tmp")
            .keep();
        let mut cfg = Config::default();
        cfg.system.data_dir = data.clone();
        cfg.content.system_packs_base_path = Some(repo_root().join("packs"));
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        std_listener.set_nonblocking(true).expect("nonblocking");
        let addr = std_listener.local_addr().expect("addr").to_string();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Runtime::new().expect("runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(std_listener).expect("listener");
                st2_api::server::run(cfg, &["all".to_string()], listener, std::future::pending())
                    .await
                    .expect("server");
            });
        });
        let http = reqwest::blocking::Client::new();
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            assert!(
                Instant::now() < deadline,
                "the server did not start in time"
            );
            let up = http
                .get(format!("http://{addr}/api/v1/"))
                .send()
                .is_ok_and(|r| r.status().is_success());
            if up {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let password = std::fs::read_to_string(data.join("st2admin.password"))
            .expect("admin password")
            .trim()
            .to_string();
        Server { addr, password }
    })
}

/// An `st2` command with a private home, no ST2_* from the caller, and the server's URLs.
fn st2_cmd(home: &Path) -> Command {
    let s = server();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_st2"));
    for (k, _) in std::env::vars() {
        if k.starts_with("ST2_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("HOME", home)
        .env("COLUMNS", "200")
        .env("ST2_API_URL", format!("http://{}/api/v1", s.addr))
        .env("ST2_AUTH_URL", format!("http://{}/auth/v1", s.addr))
        .env("ST2_STREAM_URL", format!("http://{}/stream/v1", s.addr));
    cmd
}

fn show(out: &Output) -> String {
    format!(
        "status: {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A token of st2admin obtained with `st2 auth -t`.
fn token(home: &Path) -> String {
    let out = st2_cmd(home)
        .args(["auth", "st2admin", "-p", &server().password, "-t"])
        .output()
        .expect("run st2");
    assert!(out.status.success(), "{}", show(&out));
    let t = stdout(&out).trim().to_string();
    assert!(!t.is_empty() && !t.contains(' '), "{}", show(&out));
    t
}

/// Runs `st2 args...` authenticated with a fresh token.
fn st2(args: &[&str]) -> Output {
    let home = tempfile::tempdir().expect("home");
    let t = token(home.path());
    st2_cmd(home.path())
        .env("ST2_AUTH_TOKEN", t)
        .args(args)
        .output()
        .expect("run st2")
}

fn json_of(out: &Output) -> Value {
    serde_json::from_str(&stdout(out)).unwrap_or_else(|e| panic!("not JSON ({e}): {}", show(out)))
}

#[test]
fn auth_gives_a_token_that_lists_actions() {
    let out = st2(&["action", "list"]);
    assert!(out.status.success(), "{}", show(&out));
    let text = stdout(&out);
    assert!(text.contains("| ref "), "{text}");
    assert!(text.contains("core.local "), "{text}");
    let out = st2(&["action", "list", "-p", "core", "-j"]);
    let list = json_of(&out);
    let refs: Vec<&str> = list
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|a| a["ref"].as_str())
        .collect();
    assert!(refs.contains(&"core.local"), "{refs:?}");
    assert!(refs.iter().all(|r| r.starts_with("core.")), "{refs:?}");
}

#[test]
fn auth_with_a_wrong_password_exits_1() {
    let home = tempfile::tempdir().expect("home");
    let out = st2_cmd(home.path())
        .args(["auth", "st2admin", "-p", "wrong"])
        .output()
        .expect("run st2");
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("ERROR: 401"), "{}", show(&out));
    assert!(err.contains("MESSAGE: "), "{}", show(&out));
}

#[test]
fn config_file_credentials_log_in_and_cache_the_token() {
    let home = tempfile::tempdir().expect("home");
    let st2dir = home.path().join(".st2");
    std::fs::create_dir_all(&st2dir).expect("mkdir");
    std::fs::write(
        st2dir.join("config"),
        format!(
            "[credentials]\nusername = st2admin\npassword = {}\n",
            server().password
        ),
    )
    .expect("config");
    let out = st2_cmd(home.path())
        .args(["action", "get", "core.local"])
        .output()
        .expect("run st2");
    assert!(out.status.success(), "{}", show(&out));
    let text = stdout(&out);
    assert!(text.contains("local-shell-cmd"), "{text}");
    assert!(text.contains("| Property"), "{text}");
    let cached: Value = serde_json::from_str(
        &std::fs::read_to_string(st2dir.join("token-st2admin")).expect("cached token"),
    )
    .expect("json");
    assert!(
        cached["token"].as_str().is_some_and(|t| !t.is_empty()),
        "{cached}"
    );
    assert!(
        cached["expire_timestamp"]
            .as_i64()
            .is_some_and(|t| t > chrono::Utc::now().timestamp()),
        "{cached}"
    );
    // The cached token alone is enough on the next call.
    std::fs::write(
        st2dir.join("config"),
        "[credentials]\nusername = st2admin\n",
    )
    .expect("config");
    let out = st2_cmd(home.path())
        .args(["action", "get", "core.local", "-j"])
        .output()
        .expect("run st2");
    assert_eq!(json_of(&out)["ref"], "core.local", "{}", show(&out));
    // A cached token the server refuses is replaced by logging in again.
    std::fs::write(
        st2dir.join("token-st2admin"),
        r#"{"token": "forgotten", "expire_timestamp": 99999999999}"#,
    )
    .expect("stale token");
    std::fs::write(
        st2dir.join("config"),
        format!(
            "[credentials]\nusername = st2admin\npassword = {}\n",
            server().password
        ),
    )
    .expect("config");
    let out = st2_cmd(home.path())
        .args(["action", "get", "core.local", "-j"])
        .output()
        .expect("run st2");
    assert_eq!(json_of(&out)["ref"], "core.local", "{}", show(&out));
    let cached = std::fs::read_to_string(st2dir.join("token-st2admin")).expect("cached");
    assert!(!cached.contains("forgotten"), "{cached}");
}

#[test]
fn bad_token_is_an_error_with_the_faultstring() {
    let home = tempfile::tempdir().expect("home");
    let out = st2_cmd(home.path())
        .env("ST2_AUTH_TOKEN", "bogus")
        .args(["action", "list"])
        .output()
        .expect("run st2");
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("ERROR: 401"), "{err}");
    assert!(err.contains("MESSAGE: Unauthorized"), "{err}");
}

#[test]
fn action_get_unknown_says_not_found() {
    let out = st2(&["action", "get", "nope.nothing"]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Action \"nope.nothing\" is not found."),
        "{}",
        show(&out)
    );
}

#[test]
fn run_succeeds_and_shows_the_output() {
    let out = st2(&["run", "core.local", "cmd=echo hi"]);
    assert!(out.status.success(), "{}", show(&out));
    let text = stdout(&out);
    assert!(text.contains("status: succeeded"), "{text}");
    assert!(text.contains("stdout: hi"), "{text}");
    assert!(text.contains("action.ref: core.local"), "{text}");
    assert!(text.contains("cmd: echo hi"), "{text}");
}

#[test]
fn run_words_without_equals_become_cmd_and_json_parses() {
    let out = st2(&["run", "core.local", "-j", "echo", "two", "words"]);
    assert!(out.status.success(), "{}", show(&out));
    let e = json_of(&out);
    assert_eq!(e["parameters"]["cmd"], "echo two words");
    assert_eq!(e["status"], "succeeded");
    assert_eq!(e["result"]["stdout"], "two words");
}

#[test]
fn run_casts_by_parameter_type() {
    // `timeout` is an integer runner parameter: "x" is refused before anything is sent.
    let out = st2(&["run", "core.local", "cmd=true", "timeout=x"]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("\"timeout\""),
        "{}",
        show(&out)
    );
    let out = st2(&["run", "core.local", "cmd=true", "timeout=30", "-j"]);
    assert!(out.status.success(), "{}", show(&out));
    assert_eq!(json_of(&out)["parameters"]["timeout"], 30);
}

#[test]
fn run_that_fails_exits_1() {
    let out = st2(&["run", "core.local", "cmd=false"]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(stdout(&out).contains("status: failed"), "{}", show(&out));
}

#[test]
fn unknown_action_exits_1_with_the_faultstring() {
    let out = st2(&["run", "nope.nothing", "x=1"]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("ERROR: 404"), "{err}");
    assert!(
        err.contains("MESSAGE: ") && err.contains("nope.nothing"),
        "{err}"
    );
}

#[test]
fn execution_list_get_and_tail() {
    let home = tempfile::tempdir().expect("home");
    let t = token(home.path());
    let st2 = |args: &[&str]| {
        st2_cmd(home.path())
            .env("ST2_AUTH_TOKEN", &t)
            .args(args)
            .output()
            .expect("run st2")
    };
    // Async: the id comes back at once.
    let out = st2(&["action", "execute", "core.local", "cmd=echo tailed", "-j"]);
    assert!(out.status.success(), "{}", show(&out));
    let id = json_of(&out)["id"].as_str().expect("id").to_string();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = st2(&["execution", "get", &id, "-j"]);
        assert!(out.status.success(), "{}", show(&out));
        let e = json_of(&out);
        assert_eq!(e["id"], id.as_str());
        assert_eq!(e["action"]["ref"], "core.local");
        if e["status"] == "succeeded" {
            break;
        }
        assert!(Instant::now() < deadline, "never completed: {e}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let out = st2(&["execution", "get", &id]);
    assert!(out.status.success(), "{}", show(&out));
    assert!(
        stdout(&out).contains(&format!("id: {id}")),
        "{}",
        show(&out)
    );
    assert!(stdout(&out).contains("stdout: tailed"), "{}", show(&out));

    let out = st2(&["execution", "list", "-n", "100", "-j"]);
    let list = json_of(&out);
    assert!(
        list.as_array()
            .expect("array")
            .iter()
            .any(|e| e["id"] == id.as_str()),
        "{list}"
    );
    let out = st2(&["execution", "list", "--action", "core.local"]);
    assert!(out.status.success(), "{}", show(&out));
    assert!(stdout(&out).contains(&id), "{}", show(&out));
    assert!(stdout(&out).contains("succeeded ("), "{}", show(&out));
    let out = st2(&["execution", "list", "--action", "core.noop", "-j"]);
    assert!(
        json_of(&out)
            .as_array()
            .expect("array")
            .iter()
            .all(|e| e["id"] != id.as_str()),
        "{}",
        show(&out)
    );

    let out = st2(&["execution", "tail", &id]);
    assert!(out.status.success(), "{}", show(&out));
    let text = stdout(&out);
    assert!(text.contains("tailed"), "{text}");
    assert!(
        text.contains(&format!("Execution {id} has completed (status=succeeded).")),
        "{text}"
    );

    let out = st2(&["execution", "get", "000000000000000000000000"]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
}

#[test]
fn st2ctl_status_reports_running_and_stopped() {
    let s = server();
    let out = Command::new(env!("CARGO_BIN_EXE_st2ctl"))
        .args(["status", "--url", &format!("http://{}", s.addr)])
        .output()
        .expect("run st2ctl");
    assert!(out.status.success(), "{}", show(&out));
    let text = stdout(&out);
    assert!(text.contains("st2d is running"), "{text}");
    assert!(text.contains("StackStorm API 3.9.0"), "{text}");
    // A port nobody listens on.
    let free = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = free.local_addr().expect("addr").port();
    drop(free);
    let out = Command::new(env!("CARGO_BIN_EXE_st2ctl"))
        .args(["status", "--url", &format!("http://127.0.0.1:{port}")])
        .output()
        .expect("run st2ctl");
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(stdout(&out).contains("not running"), "{}", show(&out));
}

#[test]
fn execution_tail_follows_a_running_execution_on_the_stream() {
    let home = tempfile::tempdir().expect("home");
    let t = token(home.path());
    let st2 = |args: &[&str]| {
        st2_cmd(home.path())
            .env("ST2_AUTH_TOKEN", &t)
            .args(args)
            .output()
            .expect("run st2")
    };
    let out = st2(&[
        "action",
        "execute",
        "core.local",
        "cmd=sleep 1; echo one; sleep 1; echo two",
        "-j",
    ]);
    assert!(out.status.success(), "{}", show(&out));
    let id = json_of(&out)["id"].as_str().expect("id").to_string();
    let out = st2(&["execution", "tail", &id, "--include-metadata"]);
    assert!(out.status.success(), "{}", show(&out));
    let text = stdout(&out);
    assert!(text.contains("[stdout] one"), "{text}");
    assert!(text.contains("[stdout] two"), "{text}");
    assert!(
        text.contains(&format!("Execution {id} has completed (status=succeeded).")),
        "{text}"
    );
}

#[test]
fn login_writes_the_user_and_caches_the_token() {
    let home = tempfile::tempdir().expect("home");
    let out = st2_cmd(home.path())
        .args(["login", "st2admin", "-p", &server().password])
        .output()
        .expect("run st2");
    assert!(out.status.success(), "{}", show(&out));
    assert!(
        stdout(&out).contains("Logged in as st2admin"),
        "{}",
        show(&out)
    );
    let config = std::fs::read_to_string(home.path().join(".st2/config")).expect("config written");
    assert!(config.contains("username=st2admin"), "{config}");
    assert!(!config.contains("password"), "{config}");
    assert!(home.path().join(".st2/token-st2admin").exists());
    let out = st2_cmd(home.path())
        .args(["action", "get", "core.local", "-y"])
        .output()
        .expect("run st2");
    assert!(out.status.success(), "{}", show(&out));
    assert!(stdout(&out).contains("ref: core.local"), "{}", show(&out));
}

#[test]
fn keys_rules_webhooks_traces_and_whoami() {
    let ok = |args: &[&str]| {
        let out = st2(args);
        assert!(out.status.success(), "st2 {args:?}: {}", show(&out));
        stdout(&out)
    };
    assert!(ok(&["whoami"]).contains("st2admin"));

    // keys: set, encrypted, decrypt, list, delete, not found after.
    ok(&["key", "set", "cli_k", "v1"]);
    assert_eq!(json_of(&st2(&["key", "get", "cli_k", "-j"]))["value"], "v1");
    ok(&["key", "set", "cli_s", "hush", "--encrypt"]);
    let enc = json_of(&st2(&["key", "get", "cli_s", "-j"]));
    assert_eq!(enc["encrypted"], true);
    assert_ne!(enc["value"], "hush");
    assert_eq!(
        json_of(&st2(&["key", "get", "cli_s", "-d", "-j"]))["value"],
        "hush"
    );
    assert!(ok(&["key", "list", "--prefix", "cli_"]).contains("cli_k"));
    ok(&["key", "delete", "cli_k"]);
    assert_eq!(st2(&["key", "get", "cli_k"]).status.code(), Some(1));

    // rules: create from YAML, list, disable, webhook registered, delete.
    let dir = tempfile::tempdir().expect("tmp");
    let rule = dir.path().join("rule.yaml");
    std::fs::write(
        &rule,
        "name: cli_hook\npack: default\nenabled: true\ntrigger:\n  type: core.st2.webhook\n  parameters:\n    url: cli_hook\naction:\n  ref: core.noop\n",
    )
    .expect("write");
    ok(&["rule", "create", rule.to_str().expect("utf-8")]);
    assert!(ok(&["rule", "list", "-p", "default"]).contains("default.cli_hook"));
    ok(&["rule", "disable", "default.cli_hook"]);
    assert_eq!(
        json_of(&st2(&["rule", "get", "default.cli_hook", "-j"]))["enabled"],
        false
    );
    assert!(ok(&["webhook", "list"]).contains("cli_hook"));
    assert!(ok(&["trigger", "list"]).contains("core.st2.webhook"));
    ok(&["rule", "delete", "default.cli_hook"]);
    assert_eq!(
        st2(&["rule", "get", "default.cli_hook"]).status.code(),
        Some(1)
    );
    ok(&["trace", "list"]);
    ok(&["pack", "list"]);

    // sensors: list, disable, enable.
    assert!(ok(&["sensor", "list", "-p", "linux"]).contains("linux.FileWatchSensor"));
    ok(&["sensor", "disable", "linux.FileWatchSensor"]);
    assert_eq!(
        json_of(&st2(&["sensor", "get", "linux.FileWatchSensor", "-j"]))["enabled"],
        false
    );
    ok(&["sensor", "enable", "linux.FileWatchSensor"]);
    assert_eq!(
        json_of(&st2(&["sensor", "get", "linux.FileWatchSensor", "-j"]))["enabled"],
        true
    );
}
