//! Distributed mode with real processes: separate `st2d`s share one MongoDB-wire store and one
//! RabbitMQ vhost. An action runner is killed with SIGKILL in the middle of a long action and
//! of a workflow's task: within a bound the action is `abandoned`, the workflow `failed`, the
//! orphaned `sleep`s are killed, and a second runner process runs new work to success.
//!
//! Needs `ST2_TEST_MONGODB_URL` (a MongoDB-wire server; `scripts/test.sh` starts one) and a
//! RabbitMQ broker with its `rabbitmqctl` (`ST2_TEST_AMQP_URL`, default the local guest
//! account); without them the test fails, saying so. It uses a database and a vhost of its
//! own, both removed at the end.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{http, login, Server};
use serde_json::{json, Value};
use st2_core::model::{Execution, ExecutionStatus};
use st2_core::runners::ChildProcess;
use st2_core::store::{repo, MongoStore, Query};

const DEFAULT_AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

/// The abandonment bound: heartbeat TTL (2 s) + watchdog period (0.5 s) + a wide margin.
const BOUND: Duration = Duration::from_secs(20);

fn mongo_url() -> String {
    match std::env::var("ST2_TEST_MONGODB_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => panic!(
            "ST2_TEST_MONGODB_URL is not set: this test needs a MongoDB-wire server; \
             run it through scripts/test.sh, which starts one and sets the variable"
        ),
    }
}

/// `url` with its database set to `db` (the query string kept).
fn with_database(url: &str, db: &str) -> String {
    let (scheme, rest) = url.split_once("://").expect("a mongodb:// URL");
    let (hosts, tail) = rest.split_once('/').unwrap_or((rest, ""));
    let query = tail.split_once('?').map(|(_, q)| q).unwrap_or("");
    match query.is_empty() {
        true => format!("{scheme}://{hosts}/{db}"),
        false => format!("{scheme}://{hosts}/{db}?{query}"),
    }
}

fn rabbitmqctl(args: &[&str]) {
    match Command::new("rabbitmqctl").args(args).output() {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!(
            "rabbitmqctl {args:?} failed: {} (this test needs a local RabbitMQ broker; \
             scripts/test.sh starts one)",
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => panic!("rabbitmqctl {args:?}: {e} (this test needs the local broker's CLI)"),
    }
}

/// A vhost of the test's own, deleted on drop.
struct Vhost(String);

impl Vhost {
    fn create() -> Self {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let name = format!("st2t-failover-{}", &id[..12]);
        rabbitmqctl(&["add_vhost", &name]);
        let v = Vhost(name);
        rabbitmqctl(&["set_permissions", "-p", &v.0, "guest", ".*", ".*", ".*"]);
        v
    }

    fn url(&self) -> String {
        let base = std::env::var("ST2_TEST_AMQP_URL").unwrap_or_else(|_| DEFAULT_AMQP_URL.into());
        let root = base.rsplit_once('/').map(|(r, _)| r).unwrap_or(&base);
        format!("{root}/{}", self.0)
    }
}

impl Drop for Vhost {
    fn drop(&mut self) {
        let _ = Command::new("rabbitmqctl")
            .args(["delete_vhost", &self.0])
            .output();
    }
}

/// Process groups to kill when the test ends, however it ends.
#[derive(Default)]
struct Orphans(Vec<ChildProcess>);

impl Drop for Orphans {
    fn drop(&mut self) {
        for p in &self.0 {
            p.kill_if_alive();
        }
    }
}

/// Whether a live (non-zombie) process of `p`'s group, started no earlier than it, remains.
fn group_alive(p: &ChildProcess) -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return false;
    };
    entries.flatten().any(|e| {
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            return false;
        };
        let Some(close) = stat.rfind(')') else {
            return false;
        };
        let f: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        let zombie = matches!(f.first(), Some(&"Z") | Some(&"X") | Some(&"x"));
        let pgrp = f.get(2).and_then(|x| x.parse::<u32>().ok());
        let start = f.get(19).and_then(|x| x.parse::<u64>().ok());
        !zombie && pgrp == Some(p.pgid) && start.is_some_and(|s| s >= p.start_time)
    })
}

/// The shared store, read directly.
struct Db {
    rt: tokio::runtime::Runtime,
    store: MongoStore,
}

impl Db {
    fn open(url: &str, db: &str) -> Self {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let store = rt
            .block_on(MongoStore::connect_db(url, db))
            .unwrap_or_else(|e| panic!("connect to the MongoDB-wire test server: {e}"));
        Self { rt, store }
    }

    fn execution(&self, id: &str) -> Execution {
        self.rt
            .block_on(repo::<Execution>(&self.store).get(id))
            .expect("read")
            .expect("exists")
    }

    fn children(&self, parent: &str) -> Vec<Execution> {
        self.rt
            .block_on(repo::<Execution>(&self.store).find(&Query::all().eq("parent", parent)))
            .expect("read")
    }
}

// The database is left to the test server (in memory, one per test, gone at the end of the
// run): dropping it once left that server spinning and no longer answering.

/// Starts `st2d --roles <roles>` over `data` with `env`; waits until it serves.
fn st2d(data: &Path, roles: &str, env: &[(&str, String)]) -> (Server, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_st2d"));
    cmd.arg("--data-dir")
        .arg(data)
        .arg("--bind")
        .arg("127.0.0.1:0")
        .arg("--roles")
        .arg(roles)
        .env("RUST_LOG", "warn")
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn st2d");
    let stderr = child.stderr.take().expect("stderr");
    let server = Server(child);
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut lines = BufReader::new(stderr).lines();
    loop {
        assert!(
            Instant::now() < deadline,
            "st2d --roles {roles} did not start in time"
        );
        let line = lines
            .next()
            .unwrap_or_else(|| panic!("st2d --roles {roles} exited early"))
            .expect("read");
        if let Some(rest) = line.split("listening on http://").nth(1) {
            let addr = rest.split('/').next().expect("addr").to_string();
            std::thread::spawn(move || for _ in lines {});
            return (server, addr);
        }
    }
}

fn post_execution(addr: &str, token: &str, action: &str, params: Value) -> String {
    let body = json!({"action": action, "parameters": params}).to_string();
    let resp = http(
        addr,
        "POST",
        "/api/v1/executions",
        &[
            ("X-Auth-Token", token),
            ("Content-Type", "application/json"),
        ],
        &body,
    );
    assert!(resp.starts_with("HTTP/1.1 201"), "{resp}");
    let v: Value =
        serde_json::from_str(resp.split("\r\n\r\n").nth(1).expect("body")).expect("json");
    v["id"].as_str().expect("id").to_string()
}

/// Polls until `f` gives a value, for at most `within`.
fn wait_for<T>(what: &str, within: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let t0 = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            t0.elapsed() < within,
            "timed out after {within:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The process group an execution's runner recorded, once it runs.
fn running_child(e: &Execution) -> Option<ChildProcess> {
    if e.status != ExecutionStatus::Running || e.lease_owner.is_none() {
        return None;
    }
    e.context
        .get(st2_core::services::worker::RUNNER_PROCESS_KEY)
        .and_then(|v| serde_json::from_value(v.clone()).ok())
}

const NAP_WORKFLOW: &str = "version: 1.0\ntasks:\n  nap:\n    action: core.local\n    input:\n      cmd: sleep 60\n      timeout: 120\n    next:\n      - when: <% succeeded() %>\n        do: after\n  after:\n    action: core.noop\n";
const NAP_ACTION: &str = "name: nap\nrunner_type: orquesta\nenabled: true\nentry_point: workflows/nap.yaml\nparameters: {}\n";

#[test]
fn killed_runner_abandons_its_work_and_another_runner_takes_new_work() {
    let url = mongo_url();
    let vhost = Vhost::create();
    let id = uuid::Uuid::new_v4().simple().to_string();
    let db_name = format!("st2t_failover_{}", &id[..12]);
    let db = Db::open(&url, &db_name);
    let mut orphans = Orphans::default();

    // One pack directory for every process: the runner starts the workflow, the engine
    // continues it.
    let tmp = tempfile::tempdir().expect("tmp");
    let extra = tmp.path().join("extra");
    let pack = extra.join("ftwf");
    std::fs::create_dir_all(pack.join("actions").join("workflows")).expect("mkdir");
    std::fs::write(
        pack.join("pack.yaml"),
        "ref: ftwf\nname: ftwf\ndescription: failover\nauthor: t\nversion: 0.1.0\n",
    )
    .expect("write");
    std::fs::write(pack.join("actions").join("nap.yaml"), NAP_ACTION).expect("write");
    std::fs::write(
        pack.join("actions").join("workflows").join("nap.yaml"),
        NAP_WORKFLOW,
    )
    .expect("write");
    let env = [
        ("ST2_DATABASE__URL", with_database(&url, &db_name)),
        ("ST2_MESSAGING__URL", vhost.url()),
        ("ST2_CONTENT__PACKS_BASE_PATHS", extra.display().to_string()),
        ("ST2_COORDINATION__HEARTBEAT_TTL", "2".to_string()),
        ("ST2_COORDINATION__WATCHDOG_INTERVAL", "0.5".to_string()),
    ];
    let dir = |name: &str| {
        let d = tmp.path().join(name);
        std::fs::create_dir_all(&d).expect("mkdir");
        d
    };
    let (_core, addr) = st2d(
        &dir("core"),
        "api,rulesengine,scheduler,notifier,workflowengine",
        &env,
    );
    let token = login(&addr, &tmp.path().join("core"));
    let (mut runner1, _) = st2d(&dir("runner1"), "actionrunner", &env);

    let action = post_execution(&addr, &token, "core.local", json!({"cmd": "sleep 60"}));
    let workflow = post_execution(&addr, &token, "ftwf.nap", json!({}));
    let action_child = wait_for("the action to run", BOUND * 3, || {
        running_child(&db.execution(&action))
    });
    orphans.0.push(action_child.clone());
    let (task, task_child) = wait_for("the workflow's task to run", BOUND * 3, || {
        db.children(&workflow)
            .into_iter()
            .find_map(|c| running_child(&c).map(|p| (c.id.clone(), p)))
    });
    orphans.0.push(task_child.clone());
    let owner = db.execution(&action).lease_owner.expect("owner");
    assert_eq!(
        db.execution(&task).lease_owner.as_deref(),
        Some(owner.as_str())
    );

    // kill -9 of the runner: no chance to clean up.
    runner1.0.kill().expect("kill");
    let _ = runner1.0.wait();
    let killed = Instant::now();

    let abandoned = wait_for("the action to be abandoned", BOUND, || {
        Some(db.execution(&action)).filter(|e| e.status.is_completed())
    });
    eprintln!("abandoned {:?} after the kill", killed.elapsed());
    assert_eq!(
        abandoned.status,
        ExecutionStatus::Abandoned,
        "{:?}",
        abandoned.result
    );
    let result = abandoned.result.clone().expect("result");
    assert_eq!(result["runner"], json!(owner), "{result}");
    assert_eq!(result["reason"], "runner_lost", "{result}");
    let wf = wait_for(
        "the workflow to end",
        BOUND.saturating_sub(killed.elapsed()),
        || Some(db.execution(&workflow)).filter(|e| e.status.is_completed()),
    );
    eprintln!("workflow failed {:?} after the kill", killed.elapsed());
    assert_eq!(wf.status, ExecutionStatus::Failed, "{:?}", wf.result);
    assert_eq!(db.execution(&task).status, ExecutionStatus::Abandoned);
    assert!(killed.elapsed() <= BOUND, "{:?}", killed.elapsed());
    // The watchdog (same machine here) killed the orphaned sleeps before abandoning.
    wait_for(
        "the orphaned sleeps to be killed",
        Duration::from_secs(5),
        || orphans.0.iter().all(|p| !group_alive(p)).then_some(()),
    );

    // A second runner process takes new work.
    let (_runner2, _) = st2d(&dir("runner2"), "actionrunner", &env);
    let ok = post_execution(
        &addr,
        &token,
        "core.local",
        json!({"cmd": "echo still here"}),
    );
    let done = wait_for("the new execution to end", BOUND * 3, || {
        Some(db.execution(&ok)).filter(|e| e.status.is_completed())
    });
    assert_eq!(done.status, ExecutionStatus::Succeeded, "{:?}", done.result);
    assert_ne!(done.lease_owner.as_deref(), Some(owner.as_str()));
}
