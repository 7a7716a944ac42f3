//! A distributed platform for tests: separate `st2d` processes (each in its own process group,
//! killed with it) sharing one MongoDB-wire database and one RabbitMQ vhost, both unique to the
//! test and removed when the [`Cluster`] is dropped.
//!
//! The database server comes from `ST2_TEST_MONGODB_URL` (`scripts/test.sh` starts a
//! MongoDB-wire test server and sets it); without it the tests fail, saying so. The broker is
//! `ST2_TEST_AMQP_URL` (default `amqp://guest:guest@127.0.0.1:5672/%2f`), administered with the
//! local `rabbitmqctl` (vhosts, permissions, closing connections).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use st2_core::model::{Execution, RuleEnforcement, TriggerInstance};
use st2_core::store::{repo, Collection, MongoStore, Query, Store};

/// The broker when `ST2_TEST_AMQP_URL` is not set.
pub const DEFAULT_AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

/// How long a process may take to start (register the bundled packs) and listen.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// The MongoDB-wire test server's URL, or a failure saying how to get one.
pub fn mongodb_url() -> String {
    match std::env::var("ST2_TEST_MONGODB_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => panic!(
            "ST2_TEST_MONGODB_URL is not set: these tests need a MongoDB-wire server; \
             run them through scripts/test.sh, which starts one and sets the variable"
        ),
    }
}

/// The broker's URL (its vhost is replaced per test).
pub fn amqp_url() -> String {
    std::env::var("ST2_TEST_AMQP_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| DEFAULT_AMQP_URL.to_string())
}

/// `url` with its database path replaced by `db` (query options kept).
pub fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let host_end = base[scheme_end..]
        .find('/')
        .map(|i| scheme_end + i)
        .unwrap_or(base.len());
    let mut out = format!("{}/{db}", &base[..host_end]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

/// `url` with its vhost replaced by `vhost`.
pub fn with_vhost(url: &str, vhost: &str) -> String {
    let scheme_end = url.find("://").map(|i| i + 3).unwrap_or(0);
    match url[scheme_end..].find('/') {
        Some(i) => format!("{}/{vhost}", &url[..scheme_end + i]),
        None => format!("{url}/{vhost}"),
    }
}

/// Runs `rabbitmqctl`; panics with its output when it fails.
pub fn rabbitmqctl(args: &[&str]) -> String {
    match Command::new("rabbitmqctl").args(args).output() {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).into_owned(),
        Ok(out) => panic!(
            "rabbitmqctl {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => panic!(
            "rabbitmqctl {args:?}: {e} (these tests need a local RabbitMQ and its CLI; \
             scripts/test.sh installs and starts one)"
        ),
    }
}

/// A name unique to this run and test.
fn unique(test: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("st2t_{}_{nanos}_{test}", std::process::id())
}

/// One `st2d` process of a cluster.
pub struct Node {
    /// What it was started as (for messages).
    pub name: String,
    /// Its roles, comma-separated.
    pub roles: String,
    child: Child,
    /// Its HTTP address.
    pub addr: String,
    log: PathBuf,
    killed: bool,
}

impl Node {
    /// Its process id (also its process group id).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `kill -9` of its whole process group, then reaped.
    pub fn kill9(&mut self) {
        if self.killed {
            return;
        }
        self.killed = true;
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The last lines of its log.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Processes sharing one database and one vhost; everything is removed on drop.
pub struct Cluster {
    /// The shared data dir (packs, datastore key); each process logs to a file in it.
    pub dir: tempfile::TempDir,
    /// The database name.
    pub db: String,
    /// The vhost name.
    pub vhost: String,
    /// The processes, in start order.
    pub nodes: Vec<Node>,
    mongo_url: String,
    amqp_url: String,
    rt: tokio::runtime::Runtime,
    store: MongoStore,
}

impl Cluster {
    /// A fresh database and vhost, and a data dir holding the pack `dist` with `rules`
    /// (file name → YAML).
    pub fn new(test: &str, rules: &[(&str, &str)]) -> Self {
        let mongo = mongodb_url();
        let name = unique(test);
        let db = name.clone();
        let vhost = name;
        rabbitmqctl(&["add_vhost", &vhost]);
        rabbitmqctl(&["set_permissions", "-p", &vhost, "guest", ".*", ".*", ".*"]);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let store = rt
            .block_on(MongoStore::connect_db(&mongo, &db))
            .unwrap_or_else(|e| panic!("connect to the MongoDB-wire test server: {e}"));
        let dir = tempfile::tempdir().expect("tempdir");
        let pack = dir.path().join("packs").join("dist");
        std::fs::create_dir_all(pack.join("rules")).expect("mkdir");
        std::fs::create_dir_all(pack.join("actions")).expect("mkdir");
        std::fs::write(
            pack.join("pack.yaml"),
            "ref: dist\nname: dist\ndescription: distributed tests\nauthor: t\nversion: 0.1.0\n",
        )
        .expect("pack.yaml");
        for (file, yaml) in rules {
            std::fs::write(pack.join("rules").join(file), yaml).expect("rule");
        }
        Self {
            dir,
            mongo_url: with_database(&mongo, &db),
            amqp_url: with_vhost(&amqp_url(), &vhost),
            db,
            vhost,
            nodes: Vec::new(),
            rt,
            store,
        }
    }

    /// The broker URL of this cluster's vhost.
    pub fn amqp_url(&self) -> &str {
        &self.amqp_url
    }

    /// Starts `st2d --roles <roles>` and waits until it listens; returns its index.
    pub fn start(&mut self, name: &str, roles: &str) -> usize {
        self.start_together(&[(name, roles)])[0]
    }

    /// Starts one `st2d` per `(name, roles)` at the same time (as a deployment's services
    /// come up), then waits until every one listens; returns their indexes.
    pub fn start_together(&mut self, nodes: &[(&str, &str)]) -> Vec<usize> {
        use std::os::unix::process::CommandExt as _;
        let first = self.nodes.len();
        for (name, roles) in nodes {
            let log = self
                .dir
                .path()
                .join(format!("{name}-{}.log", self.nodes.len()));
            let file = std::fs::File::create(&log).expect("log file");
            let child = Command::new(env!("CARGO_BIN_EXE_st2d"))
                .arg("--data-dir")
                .arg(self.dir.path())
                .arg("--bind")
                .arg("127.0.0.1:0")
                .arg("--roles")
                .arg(roles)
                .env("ST2_DATABASE__URL", &self.mongo_url)
                .env("ST2_MESSAGING__URL", &self.amqp_url)
                .env("ST2_AUTH__ENABLE", "false")
                .env("RUST_LOG", "warn")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::from(file))
                .process_group(0)
                .spawn()
                .expect("spawn st2d");
            self.nodes.push(Node {
                name: name.to_string(),
                roles: roles.to_string(),
                child,
                addr: String::new(),
                log,
                killed: false,
            });
        }
        let deadline = Instant::now() + START_TIMEOUT;
        for node in &mut self.nodes[first..] {
            loop {
                let text = std::fs::read_to_string(&node.log).unwrap_or_default();
                if let Some(rest) = text.split("listening on http://").nth(1) {
                    node.addr = rest.split('/').next().unwrap_or_default().to_string();
                    break;
                }
                if let Ok(Some(status)) = node.child.try_wait() {
                    panic!("st2d {} exited at start ({status}):\n{text}", node.name);
                }
                assert!(
                    Instant::now() < deadline,
                    "st2d {} did not listen within {START_TIMEOUT:?}:\n{text}",
                    node.name
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        (first..self.nodes.len()).collect()
    }

    /// Runs a store future on the cluster's runtime.
    pub fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    /// The shared store, as the test sees it.
    pub fn store(&self) -> &MongoStore {
        &self.store
    }

    /// Every trigger instance.
    pub fn trigger_instances(&self) -> Vec<TriggerInstance> {
        self.rt
            .block_on(repo::<TriggerInstance>(&self.store).find(&Query::all()))
            .expect("trigger instances")
    }

    /// Every execution.
    pub fn executions(&self) -> Vec<Execution> {
        self.rt
            .block_on(repo::<Execution>(&self.store).find(&Query::all()))
            .expect("executions")
    }

    /// Every rule enforcement.
    pub fn enforcements(&self) -> Vec<RuleEnforcement> {
        self.rt
            .block_on(repo::<RuleEnforcement>(&self.store).find(&Query::all()))
            .expect("enforcements")
    }

    /// How many documents of `collection` match `query`.
    pub fn count(&self, collection: Collection, query: &Query) -> u64 {
        self.rt
            .block_on(self.store.count(collection, query))
            .expect("count")
    }

    /// One document by id.
    pub fn get(&self, collection: Collection, id: &str) -> Option<Value> {
        self.rt
            .block_on(self.store.get(collection, id))
            .expect("get")
    }

    /// Ready and unacknowledged messages of `queue` in this vhost (0, 0 when it does not exist).
    pub fn queue_depth(&self, queue: &str) -> (u64, u64) {
        let out = rabbitmqctl(&[
            "list_queues",
            "-q",
            "-p",
            &self.vhost,
            "name",
            "messages_ready",
            "messages_unacknowledged",
        ]);
        for line in out.lines() {
            let cols: Vec<&str> = line.split_whitespace().collect();
            if let [name, ready, unacked] = cols[..] {
                if name == queue {
                    return (
                        ready.parse().unwrap_or(u64::MAX),
                        unacked.parse().unwrap_or(u64::MAX),
                    );
                }
            }
        }
        (0, 0)
    }

    /// The state of the cluster, for failure messages: statuses in the store, queue depths,
    /// and the last lines of every process's log.
    pub fn logs(&self) -> String {
        let mut execs: std::collections::BTreeMap<String, usize> = Default::default();
        for e in self.executions() {
            *execs.entry(e.status.to_string()).or_default() += 1;
        }
        let mut tis: std::collections::BTreeMap<String, usize> = Default::default();
        for t in self.trigger_instances() {
            *tis.entry(format!("{} {}", t.trigger, t.status))
                .or_default() += 1;
        }
        let queues = Command::new("rabbitmqctl")
            .args([
                "list_queues",
                "-q",
                "-p",
                &self.vhost,
                "name",
                "messages_ready",
                "messages_unacknowledged",
                "consumers",
            ])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        let logs = self
            .nodes
            .iter()
            .map(|n| format!("--- {} ({}):\n{}", n.name, n.roles, n.log_tail(20)))
            .collect::<Vec<_>>()
            .join("\n");
        format!("executions: {execs:?}\ntrigger instances: {tis:?}\nqueues:\n{queues}\n{logs}")
    }

    /// Polls `f` until it holds, at most `limit`; panics with the processes' logs otherwise.
    pub fn wait_until(&self, what: &str, limit: Duration, mut f: impl FnMut(&Self) -> bool) {
        let deadline = Instant::now() + limit;
        while !f(self) {
            if Instant::now() >= deadline {
                panic!(
                    "timed out after {limit:?} waiting for {what}\n{}",
                    self.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            n.kill9();
        }
        let _ = Command::new("rabbitmqctl")
            .args(["delete_vhost", &self.vhost])
            .output();
        // The database is left to the test server: it is in memory and ends with the run
        // (every test uses a database of its own). Dropping it here once left the MongoDB-wire
        // test server spinning and no longer answering, which hung the rest of the suite.
    }
}

/// One HTTP/1.1 request with a bounded wait; `(status, body)`, or the I/O error.
pub fn request(addr: &str, method: &str, path: &str, body: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(60)))?;
    s.set_write_timeout(Some(Duration::from_secs(10)))?;
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes())?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    let status = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = out.split("\r\n\r\n").nth(1).unwrap_or_default().to_string();
    Ok((status, body))
}

/// What a stream of webhook posts saw.
#[derive(Debug, Default, Clone)]
pub struct PostReport {
    /// Posts answered 202 (each `n` once).
    pub accepted: usize,
    /// Attempts refused (not 202, or no answer) and retried.
    pub refused: usize,
}

/// Posts `{"n": i}` for every `i` in `range` to webhook `hook` from `threads` threads; a post not
/// answered 202 is retried (up to 100 times) until it is. `between(i)` runs on the first thread
/// before post `i` (fault injection).
pub fn post_stream(
    addr: &str,
    hook: &str,
    range: std::ops::Range<usize>,
    threads: usize,
    between: &(dyn Fn(usize) + Sync),
) -> PostReport {
    let next = std::sync::atomic::AtomicUsize::new(range.start);
    let report = std::sync::Mutex::new(PostReport::default());
    std::thread::scope(|s| {
        for t in 0..threads {
            let (next, report, range) = (&next, &report, range.clone());
            s.spawn(move || loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if i >= range.end {
                    break;
                }
                if t == 0 {
                    between(i);
                }
                let body = format!("{{\"n\": {i}}}");
                let mut tries = 0;
                loop {
                    tries += 1;
                    match request(addr, "POST", &format!("/api/v1/webhooks/{hook}"), &body) {
                        Ok((202, _)) => break,
                        other => {
                            report.lock().expect("report").refused += 1;
                            assert!(tries < 100, "webhook {i} refused 100 times: {other:?}");
                            std::thread::sleep(Duration::from_millis(100));
                        }
                    }
                }
                report.lock().expect("report").accepted += 1;
            });
        }
    });
    report.into_inner().expect("report")
}

/// The webhook body's `n` of a trigger instance.
pub fn webhook_n(ti: &TriggerInstance) -> Option<u64> {
    ti.payload.pointer("/body/n").and_then(Value::as_u64)
}
