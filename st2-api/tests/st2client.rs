//! StackStorm's own client (`pip install st2client==3.9.0`, the `st2` command) against a live
//! `st2d`, unchanged: auth, actions, `st2 run`, executions (list/get/tail), keys (system, user,
//! encrypted), a rule created from YAML and fired by a webhook, triggers, webhooks, packs
//! (list/install/remove from a local git repository), API keys and traces.
//!
//! `scripts/test.sh` installs the client in a virtualenv and names its `st2` in `ST2CLIENT_BIN`;
//! without it this test fails and says so.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{http, start, wait_until};

/// StackStorm's client, configured for one server and an isolated home.
struct Client {
    bin: PathBuf,
    addr: String,
    home: PathBuf,
    token: Option<String>,
    api_key: Option<String>,
}

impl Client {
    fn cmd(&self, args: &[&str]) -> Output {
        let mut c = Command::new(&self.bin);
        c.args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", &self.home)
            .env("ST2_API_URL", format!("http://{}/api/v1", self.addr))
            .env("ST2_AUTH_URL", format!("http://{}/auth/v1", self.addr))
            .env("ST2_STREAM_URL", format!("http://{}/stream/v1", self.addr))
            .env("ST2_CLI_SKIP_CONFIG", "1")
            .env("COLUMNS", "200");
        if let Some(t) = &self.token {
            c.env("ST2_AUTH_TOKEN", t);
        }
        if let Some(k) = &self.api_key {
            c.env("ST2_API_KEY", k);
        }
        c.output().expect("run st2")
    }

    /// Runs `st2 args`, asserting exit 0; returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.cmd(args);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "st2 {args:?} failed ({:?}):\n{stdout}\n{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }

    /// Runs `st2 args`, asserting a non-zero exit; returns stdout + stderr.
    fn fails(&self, args: &[&str]) -> String {
        let out = self.cmd(args);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!out.status.success(), "st2 {args:?} should fail:\n{text}");
        text
    }

    /// Runs `st2 args -j`, parsing the JSON it prints.
    fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut a = args.to_vec();
        a.push("-j");
        let out = self.ok(&a);
        serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("st2 {a:?}: {e}:\n{out}"))
    }
}

fn client_bin() -> PathBuf {
    let bin = std::env::var_os("ST2CLIENT_BIN").map(PathBuf::from).expect(
        "ST2CLIENT_BIN must name StackStorm's `st2` (pip install st2client==3.9.0); \
         scripts/test.sh sets it up",
    );
    assert!(
        bin.exists(),
        "ST2CLIENT_BIN={} does not exist",
        bin.display()
    );
    bin
}

/// A git repository holding one pack `st2client_fixture` tagged `v0.1.0`.
fn pack_repo(dir: &Path) -> PathBuf {
    let repo = dir.join("st2client_fixture");
    std::fs::create_dir_all(repo.join("actions")).expect("mkdir");
    std::fs::write(
        repo.join("pack.yaml"),
        "ref: st2client_fixture\nname: st2client_fixture\ndescription: a pack installed by the st2client test\n\
         version: 0.1.0\nauthor: tests\nemail: tests@example.com\n",
    )
    .expect("pack.yaml");
    std::fs::write(
        repo.join("actions").join("hello.yaml"),
        "name: hello\nrunner_type: local-shell-cmd\nentry_point: ''\nenabled: true\n\
         parameters:\n  cmd:\n    type: string\n    default: echo hello from the fixture\n",
    )
    .expect("action");
    let git = |args: &[&str]| {
        let st = Command::new("git")
            .args(args)
            .current_dir(&repo)
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@example.com")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@example.com")
            .status()
            .expect("git");
        assert!(st.success(), "git {args:?}");
    };
    git(&["init", "-q", "-b", "main"]);
    git(&["add", "-A"]);
    git(&["commit", "-q", "-m", "pack"]);
    git(&["tag", "v0.1.0"]);
    repo
}

#[test]
fn stackstorm_client_works_unchanged() {
    let bin = client_bin();
    let data = tempfile::tempdir().expect("tmp");
    let home = tempfile::tempdir().expect("home");
    let (_server, addr) = start(data.path());
    let mut st2 = Client {
        bin,
        addr: addr.clone(),
        home: home.path().to_path_buf(),
        token: None,
        api_key: None,
    };

    // auth: bad password refused, then a token.
    let bad = st2.fails(&["auth", "st2admin", "-p", "wrong"]);
    assert!(bad.contains("Invalid or missing credentials"), "{bad}");
    let pw = std::fs::read_to_string(data.path().join("st2admin.password")).expect("pw");
    let token = st2.ok(&["auth", "st2admin", "-p", pw.trim(), "-t"]);
    st2.token = Some(token.trim().to_string());

    // actions
    let list = st2.ok(&["action", "list", "-p", "core"]);
    assert!(
        list.contains("core.local") && list.contains("core.noop"),
        "{list}"
    );
    let get = st2.ok(&["action", "get", "core.local"]);
    assert!(get.contains("local-shell-cmd"), "{get}");

    // st2 run: output shown, exit 0; a failing command exits 1.
    let run = st2.ok(&["run", "core.local", "cmd=echo hi"]);
    assert!(run.contains("succeeded") && run.contains("hi"), "{run}");
    let failed = st2.fails(&["run", "core.local", "cmd=false"]);
    assert!(failed.contains("failed"), "{failed}");
    let noop = st2.json(&["run", "core.noop"]);
    assert_eq!(noop["status"], "succeeded", "{noop}");
    let exec_id = noop["id"].as_str().expect("id").to_string();

    // executions: list, get, tail of a completed one.
    let el = st2.ok(&["execution", "list", "-n", "5"]);
    assert!(el.contains("core.noop") && el.contains(&exec_id), "{el}");
    let eg = st2.json(&["execution", "get", &exec_id]);
    assert_eq!(eg["status"], "succeeded");
    let tail = st2.ok(&["execution", "tail", &exec_id]);
    assert!(tail.contains("has completed"), "{tail}");

    // keys: system, encrypted, user scope, list, delete.
    st2.ok(&["key", "set", "greeting", "hello"]);
    let kg = st2.json(&["key", "get", "greeting"]);
    assert_eq!(kg["value"], "hello");
    st2.ok(&["key", "set", "password", "s3cret", "--encrypt"]);
    let enc = st2.json(&["key", "get", "password"]);
    assert_eq!(enc["secret"], true);
    assert_ne!(enc["value"], "s3cret", "encrypted unless asked");
    let dec = st2.json(&["key", "get", "password", "-d"]);
    assert_eq!(dec["value"], "s3cret");
    st2.ok(&["key", "set", "mine", "v", "--scope=user"]);
    let ku = st2.json(&["key", "get", "mine", "--scope=user"]);
    assert_eq!(ku["value"], "v");
    let kl = st2.ok(&["key", "list", "--scope=all"]);
    assert!(kl.contains("greeting") && kl.contains("mine"), "{kl}");
    st2.ok(&["key", "delete", "greeting"]);
    let gone = st2.fails(&["key", "get", "greeting"]);
    assert!(gone.contains("not found"), "{gone}");

    // A rule from YAML, fired by a webhook.
    let rule = home.path().join("rule.yaml");
    std::fs::write(
        &rule,
        "name: echo_hook\npack: default\ndescription: echoes a webhook\nenabled: true\n\
         trigger:\n  type: core.st2.webhook\n  parameters:\n    url: st2client\n\
         criteria:\n  trigger.body.kind:\n    type: equals\n    pattern: greet\n\
         action:\n  ref: core.local\n  parameters:\n    cmd: echo webhook said {{ trigger.body.msg }}\n",
    )
    .expect("rule");
    let created = st2.ok(&["rule", "create", rule.to_str().expect("utf-8")]);
    assert!(created.contains("default.echo_hook"), "{created}");
    let rl = st2.ok(&["rule", "list"]);
    assert!(rl.contains("default.echo_hook"), "{rl}");
    let wl = st2.ok(&["webhook", "list"]);
    assert!(wl.contains("st2client"), "{wl}");
    let tl = st2.ok(&["trigger", "list"]);
    assert!(tl.contains("core.st2.webhook"), "{tl}");
    // The rules engine picks up rule changes within its reload interval (2 s).
    std::thread::sleep(std::time::Duration::from_millis(2500));
    let token = st2.token.clone().expect("token");
    let resp = http(
        &addr,
        "POST",
        "/api/v1/webhooks/st2client",
        &[
            ("X-Auth-Token", &token),
            ("Content-Type", "application/json"),
        ],
        r#"{"kind": "greet", "msg": "howdy"}"#,
    );
    assert!(resp.starts_with("HTTP/1.1 202"), "{resp}");
    wait_until("the webhook rule to run its action", || {
        let list = st2.json(&["execution", "list", "--action", "core.local", "-n", "20"]);
        let ids: Vec<String> = list
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["status"] == "succeeded")
            .filter_map(|e| e["id"].as_str().map(String::from))
            .collect();
        ids.iter().any(|id| {
            st2.json(&["execution", "get", id])["result"]["stdout"] == "webhook said howdy"
        })
    });
    let traces = st2.ok(&["trace", "list"]);
    assert!(traces.contains("trace_tag"), "{traces}");
    let traces = st2.json(&["trace", "list"]);
    assert!(
        traces
            .as_array()
            .is_some_and(|l| l.iter().any(|t| t["trace_tag"]
                .as_str()
                .is_some_and(|g| g.starts_with("webhook-st2client-")))),
        "{traces}"
    );

    // packs: list, install from a git repository, remove.
    let pl = st2.ok(&["pack", "list"]);
    assert!(pl.contains("core"), "{pl}");
    let repo = pack_repo(home.path());
    let url = format!("file://{}=v0.1.0", repo.display());
    let installed = st2.ok(&["pack", "install", &url]);
    assert!(installed.contains("st2client_fixture"), "{installed}");
    let hello = st2.ok(&["run", "st2client_fixture.hello"]);
    assert!(hello.contains("hello from the fixture"), "{hello}");
    st2.ok(&["pack", "remove", "st2client_fixture"]);
    let pg = st2.fails(&["pack", "get", "st2client_fixture"]);
    assert!(
        pg.contains("not found") || pg.contains("not installed"),
        "{pg}"
    );

    // API keys: create, then authenticate with the key alone.
    let key = st2.ok(&["apikey", "create", "-k"]);
    st2.token = None;
    st2.api_key = Some(key.trim().to_string());
    let with_key = st2.ok(&["action", "list", "-p", "core"]);
    assert!(with_key.contains("core.local"), "{with_key}");
}
