//! Benchmark: distributed mode over RabbitMQ and a MongoDB-wire server, with the roles as
//! separate `st2d` processes. Prints a markdown table, one row per figure, with its anchor or
//! target; nothing is asserted.
//!
//! 1. Bus: persistent 100-byte messages with publisher confirms through the project's
//!    `AmqpBus` — a pipelined batch, many concurrent publishers, one awaited confirm at a time —
//!    and raw lapin pipelined in the same run (the ≥ 80 % comparison).
//! 2. Store: the MongoDB-wire server's single-document write ceiling (`MongoStore` puts from
//!    concurrent tasks), the figure the end-to-end rate is held against.
//! 3. End to end: 1 API, 1 rules engine (+ scheduler and notifier) and 2 action runners as
//!    separate processes; webhook → `core.noop` `succeeded`: executions/s for a burst, and
//!    p50/p99 webhook → `running` and → `succeeded` at a paced rate.
//! 4. Failover: two timers engines, a 1 s interval timer; time from `kill -9` of the leader to
//!    the standby's next fire.
//!
//! Usage: `bench-distributed [--st2d PATH] [SCENARIO...]` with scenarios among
//! `bus store e2e failover` (default: all). The broker is `ST2_TEST_AMQP_URL` (default
//! `amqp://guest:guest@127.0.0.1:5672/%2f`, administered with the local `rabbitmqctl`; each
//! run uses a vhost of its own, deleted after), the database server `ST2_TEST_MONGODB_URL`
//! (required; a database of its own, dropped after), the server binary `--st2d` or `ST2D_BIN`
//! (default: `st2d` next to this binary). Progress goes to stderr, the table to stdout.

/// mimalloc, as in `st2d`.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context as _};
use serde_json::{json, Value};

use st2_core::bus::{names, AmqpBus, Bus, Message, SubscribeSpec};
use st2_core::model::{Execution, TriggerInstance};
use st2_core::store::{repo, Collection, MongoStore, Query, Store};

const SCENARIOS: &[&str] = &["bus", "store", "e2e", "failover"];
const DEFAULT_AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

/// Bus: messages per measurement, and their size.
const BUS_PIPELINED: usize = 50_000;
const BUS_CONCURRENT: usize = 20_000;
const BUS_PUBLISHERS: usize = 64;
const BUS_AWAITED: usize = 3_000;
const BUS_MESSAGE_BYTES: usize = 100;
/// Store: how long each measurement runs, and the concurrent writers.
const STORE_TIME: Duration = Duration::from_secs(10);
const STORE_WRITERS: usize = 16;
/// End to end: the burst, its concurrent posters, the paced run and its interval.
/// (Small: the MongoDB-wire test server's compare-and-set scans its collection, so a long run
/// measures the collection's growth more than the platform.)
const E2E_BURST: usize = 300;
const E2E_POSTERS: usize = 16;
const E2E_PACED: usize = 100;
const E2E_INTERVAL: Duration = Duration::from_millis(100);
/// Longest wait for a backlog to drain.
const DRAIN_CAP: Duration = Duration::from_secs(300);

/// A webhook `bench` that runs `core.noop`.
const NOOP_RULE: &str = "name: noop_on_webhook\npack: bench\ndescription: b\nenabled: true\n\
trigger:\n  type: core.st2.webhook\n  parameters:\n    url: bench\n\
action:\n  ref: core.noop\n";
/// A 1 s interval timer.
const TICK_RULE: &str = "name: tick\npack: bench\ndescription: b\nenabled: true\n\
trigger:\n  type: core.st2.IntervalTimer\n  parameters:\n    unit: seconds\n    delta: 1\n\
action:\n  ref: core.noop\n";

fn main() -> anyhow::Result<()> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let st2d = match args.iter().position(|a| a == "--st2d") {
        Some(i) => {
            let path = args.get(i + 1).cloned().context("--st2d needs a path")?;
            args.drain(i..=i + 1);
            PathBuf::from(path)
        }
        None => match std::env::var("ST2D_BIN") {
            Ok(p) if !p.is_empty() => PathBuf::from(p),
            _ => std::env::current_exe()?.with_file_name("st2d"),
        },
    };
    let scenarios: Vec<&str> = if args.is_empty() {
        SCENARIOS.to_vec()
    } else {
        for a in &args {
            if !SCENARIOS.contains(&a.as_str()) {
                bail!("unknown scenario {a:?} (known: {})", SCENARIOS.join(" "));
            }
        }
        args.iter().map(String::as_str).collect()
    };
    let mongo = std::env::var("ST2_TEST_MONGODB_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .context("ST2_TEST_MONGODB_URL is not set: the benchmark needs a MongoDB-wire server")?;
    let mongo = without_retryable_writes(&mongo);
    let amqp = std::env::var("ST2_TEST_AMQP_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| DEFAULT_AMQP_URL.to_string());
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    println!("Build: {profile}. st2d: {}.", st2d.display());
    println!();
    println!("| figure | value | anchor / target |");
    println!("|---|---|---|");
    let env = Env {
        mongo,
        amqp,
        st2d,
        name: unique("bench"),
    };
    rabbitmqctl(&["add_vhost", &env.name])?;
    rabbitmqctl(&[
        "set_permissions",
        "-p",
        &env.name,
        "guest",
        ".*",
        ".*",
        ".*",
    ])?;
    let outcome = rt.block_on(async {
        // The store's write ceiling of this run, when the store scenario ran first.
        let mut ceiling = None;
        for s in &scenarios {
            eprintln!("bench-distributed: {s}");
            match *s {
                "bus" => bus(&env).await?,
                "store" => ceiling = Some(store(&env).await?),
                "e2e" => e2e(&env, ceiling).await?,
                "failover" => failover(&env).await?,
                _ => {}
            }
        }
        anyhow::Ok(())
    });
    let _ = rabbitmqctl(&["delete_vhost", &env.name]);
    outcome
}

/// What every scenario needs.
struct Env {
    mongo: String,
    amqp: String,
    st2d: PathBuf,
    /// The vhost and database prefix of this run.
    name: String,
}

impl Env {
    fn amqp_url(&self) -> String {
        with_vhost(&self.amqp, &self.name)
    }
    fn db(&self, scenario: &str) -> String {
        format!("{}_{scenario}", self.name)
    }
}

fn row(figure: &str, value: String, anchor: &str) {
    println!("| {figure} | {value} | {anchor} |");
}

fn unique(what: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("st2b_{}_{nanos}_{what}", std::process::id())
}

fn rabbitmqctl(args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("rabbitmqctl")
        .args(args)
        .output()
        .context("rabbitmqctl (the benchmark needs a local RabbitMQ and its CLI)")?;
    if !out.status.success() {
        bail!(
            "rabbitmqctl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

fn with_vhost(url: &str, vhost: &str) -> String {
    let scheme_end = url.find("://").map(|i| i + 3).unwrap_or(0);
    match url[scheme_end..].find('/') {
        Some(i) => format!("{}/{vhost}", &url[..scheme_end + i]),
        None => format!("{url}/{vhost}"),
    }
}

fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let host_end = base[scheme_end..]
        .find('/')
        .map(|i| scheme_end + i)
        .unwrap_or(base.len());
    match query {
        Some(q) => format!("{}/{db}?{q}", &base[..host_end]),
        None => format!("{}/{db}", &base[..host_end]),
    }
}

/// The URL with `retryWrites=false` unless it says otherwise: the MongoDB-wire test server
/// keeps a record of every retryable write for 30 minutes and walks them all on each write, so
/// with the driver's default a run measures the server's growing record list. Every
/// connection of the run, the ceiling's included, uses the same setting.
fn without_retryable_writes(url: &str) -> String {
    if url.contains("retryWrites=") {
        url.to_string()
    } else if url.contains('?') {
        format!("{url}&retryWrites=false")
    } else if url[url.find("://").map_or(0, |i| i + 3)..].contains('/') {
        format!("{url}?retryWrites=false")
    } else {
        format!("{url}/?retryWrites=false")
    }
}

/// The server's operation counters (`serverStatus.opcounters`): kind → count.
async fn opcounters(store: &MongoStore) -> anyhow::Result<Vec<(String, i64)>> {
    let status = store
        .database()
        .client()
        .database("admin")
        .run_command(mongodb::bson::doc! {"serverStatus": 1})
        .await?;
    let counters = status.get_document("opcounters")?;
    Ok(counters
        .iter()
        .filter_map(|(k, v)| {
            let n = v.as_i64().or_else(|| v.as_i32().map(i64::from))?;
            Some((k.clone(), n))
        })
        .collect())
}

/// Operations per execution between two readings of [`opcounters`], by kind.
fn per_execution(
    before: &[(String, i64)],
    after: &[(String, i64)],
    execs: usize,
) -> Vec<(String, f64)> {
    after
        .iter()
        .map(|(kind, n)| {
            let was = before.iter().find(|(k, _)| k == kind).map_or(0, |b| b.1);
            (kind.clone(), (n - was) as f64 / execs.max(1) as f64)
        })
        .collect()
}

/// [`per_execution`] as a row value: the total, then each kind that counts.
fn ops_per_execution(per: &[(String, f64)]) -> String {
    let total: f64 = per.iter().map(|p| p.1).sum();
    let parts: Vec<String> = per
        .iter()
        .filter(|p| p.1 >= 0.05)
        .map(|(kind, n)| format!("{kind} {n:.1}"))
        .collect();
    format!("{total:.1} ({})", parts.join(", "))
}

fn rate(n: usize, d: Duration) -> String {
    format!("{:.0} msg/s", n as f64 / d.as_secs_f64())
}

/// (1) Bus throughput through `AmqpBus`, and raw lapin for comparison.
async fn bus(env: &Env) -> anyhow::Result<()> {
    let bus = AmqpBus::connect(&env.amqp_url()).await?;
    let x = "bench.x";
    bus.declare_exchange(x).await?;
    let q = "bench.q";
    let capacity = BUS_PIPELINED + BUS_CONCURRENT + BUS_AWAITED;
    let sub = bus
        .subscribe(SubscribeSpec::work(q, x, ["#"]).with_capacity(capacity))
        .await?;
    drop(sub); // the queue stays; nothing consumes it during the measurement
    let msg = Message::new(vec![b'x'; BUS_MESSAGE_BYTES], "application/octet-stream");

    let batch: Vec<_> = (0..BUS_PIPELINED)
        .map(|_| ("k".to_string(), msg.clone()))
        .collect();
    let t = Instant::now();
    for chunk in batch.chunks(1_000) {
        bus.publish_batch(x, chunk.to_vec()).await?;
    }
    row(
        "AmqpBus publish_batch, persistent + confirms (pipelined)",
        rate(BUS_PIPELINED, t.elapsed()),
        "raw lapin ~28,000 msg/s; target ≥ 22,000",
    );

    let t = Instant::now();
    let per = BUS_CONCURRENT / BUS_PUBLISHERS;
    let mut tasks = Vec::new();
    for _ in 0..BUS_PUBLISHERS {
        let (bus, msg) = (bus.clone(), msg.clone());
        tasks.push(tokio::spawn(async move {
            for _ in 0..per {
                bus.publish(x, "k", msg.clone()).await?;
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    row(
        &format!("AmqpBus publish from {BUS_PUBLISHERS} concurrent tasks (shared confirm channel)"),
        rate(per * BUS_PUBLISHERS, t.elapsed()),
        "the services' hot path",
    );

    let t = Instant::now();
    for _ in 0..BUS_AWAITED {
        bus.publish(x, "k", msg.clone()).await?;
    }
    row(
        "AmqpBus publish, one awaited confirm at a time",
        rate(BUS_AWAITED, t.elapsed()),
        "lapin 1,600-4,900 msg/s; kombu 1,400",
    );
    bus.delete_queue(q).await?;
    bus.delete_queue(&names::dead_letter_queue(q)).await?;
    bus.close().await?;

    let raw = raw_lapin(&env.amqp_url(), BUS_PIPELINED).await?;
    row(
        "raw lapin, persistent + confirms (pipelined), same broker",
        rate(BUS_PIPELINED, raw),
        "~28,000 msg/s",
    );
    Ok(())
}

/// Raw lapin: a durable classic queue, persistent messages, all published then all confirms
/// awaited, in chunks of 1,000.
async fn raw_lapin(url: &str, n: usize) -> anyhow::Result<Duration> {
    use lapin::options::{
        BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions, QueueDeleteOptions,
    };
    use lapin::types::FieldTable;
    let props = lapin::ConnectionProperties::default()
        .with_executor(tokio_executor_trait::Tokio::current())
        .with_reactor(tokio_reactor_trait::Tokio);
    let conn = lapin::Connection::connect(url, props).await?;
    let ch = conn.create_channel().await?;
    ch.confirm_select(ConfirmSelectOptions::default()).await?;
    let q = "bench.raw";
    ch.queue_declare(
        q,
        QueueDeclareOptions {
            durable: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await?;
    let payload = vec![b'x'; BUS_MESSAGE_BYTES];
    let t = Instant::now();
    let mut left = n;
    while left > 0 {
        let k = left.min(1_000);
        let mut confirms = Vec::with_capacity(k);
        for _ in 0..k {
            confirms.push(
                ch.basic_publish(
                    "",
                    q,
                    BasicPublishOptions::default(),
                    &payload,
                    lapin::BasicProperties::default().with_delivery_mode(2),
                )
                .await?,
            );
        }
        for c in confirms {
            c.await?;
        }
        left -= k;
    }
    let took = t.elapsed();
    ch.queue_delete(q, QueueDeleteOptions::default()).await?;
    conn.close(200, "done").await?;
    Ok(took)
}

/// (2) The store's single-document write ceiling: puts from concurrent writers for
/// [`STORE_TIME`], then compare-and-sets one at a time for [`STORE_TIME`].
/// Returns the single-document write ceiling (writes/s).
async fn store(env: &Env) -> anyhow::Result<f64> {
    let db = env.db("store");
    let store = Arc::new(MongoStore::connect_db(&env.mongo, &db).await?);
    let t = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..STORE_WRITERS {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            let mut i = 0usize;
            while t.elapsed() < STORE_TIME {
                let doc = json!({"id": format!("{w:04}{i:020}"), "status": "requested",
                    "payload": "x".repeat(200)});
                store.put(Collection::Executions, doc).await?;
                i += 1;
            }
            anyhow::Ok(i)
        }));
    }
    let mut writes = 0;
    for t in tasks {
        writes += t.await??;
    }
    let took = t.elapsed();
    let ceiling = writes as f64 / took.as_secs_f64();
    row(
        &format!("store: single-document writes ({STORE_WRITERS} writers)"),
        format!("{ceiling:.0} writes/s"),
        "the MongoDB-wire test server's ceiling",
    );
    let t = Instant::now();
    let mut sets = 0usize;
    while t.elapsed() < STORE_TIME && sets < writes / STORE_WRITERS {
        let patch = json!({"status": "scheduled"});
        let patch = patch.as_object().cloned().unwrap_or_default();
        store
            .compare_and_set(
                Collection::Executions,
                &format!("{:04}{sets:020}", 0),
                "status",
                &[json!("requested")],
                patch,
            )
            .await?;
        sets += 1;
    }
    row(
        "store: compare-and-set, one at a time",
        format!("{:.0} writes/s", sets as f64 / t.elapsed().as_secs_f64()),
        "latency floor of one transition",
    );
    store.database().drop().await?;
    Ok(ceiling)
}

/// One `st2d` process, killed (with its process group) on drop.
struct Node {
    child: Child,
    addr: String,
}

impl Node {
    fn kill9(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Processes over one database and the run's vhost, with a pack `bench` holding `rules`.
struct Cluster {
    dir: tempfile::TempDir,
    mongo_url: String,
    amqp_url: String,
    st2d: PathBuf,
    store: MongoStore,
    nodes: Vec<Node>,
}

impl Cluster {
    async fn new(env: &Env, scenario: &str, rules: &[(&str, &str)]) -> anyhow::Result<Self> {
        let db = env.db(scenario);
        let dir = tempfile::tempdir()?;
        let pack = dir.path().join("packs").join("bench");
        std::fs::create_dir_all(pack.join("rules"))?;
        std::fs::write(
            pack.join("pack.yaml"),
            "ref: bench\nname: bench\ndescription: b\nauthor: b\nversion: 0.1.0\n",
        )?;
        for (file, yaml) in rules {
            std::fs::write(pack.join("rules").join(file), yaml)?;
        }
        Ok(Self {
            store: MongoStore::connect_db(&env.mongo, &db).await?,
            mongo_url: with_database(&env.mongo, &db),
            amqp_url: env.amqp_url(),
            st2d: env.st2d.clone(),
            dir,
            nodes: Vec::new(),
        })
    }

    /// Starts `st2d --roles roles` and waits until it listens.
    async fn start(&mut self, name: &str, roles: &str) -> anyhow::Result<usize> {
        use std::os::unix::process::CommandExt as _;
        let log = self.dir.path().join(format!("{name}.log"));
        let child = Command::new(&self.st2d)
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
            .stderr(Stdio::from(std::fs::File::create(&log)?))
            .process_group(0)
            .spawn()
            .with_context(|| format!("spawn {}", self.st2d.display()))?;
        let mut node = Node {
            child,
            addr: String::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if let Some(rest) = text.split("listening on http://").nth(1) {
                node.addr = rest.split('/').next().unwrap_or_default().to_string();
                break;
            }
            if node.child.try_wait()?.is_some() || Instant::now() > deadline {
                bail!("st2d {name} did not start:\n{text}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.nodes.push(node);
        Ok(self.nodes.len() - 1)
    }

    async fn executions(&self) -> anyhow::Result<Vec<Execution>> {
        Ok(repo::<Execution>(&self.store).find(&Query::all()).await?)
    }

    async fn finished(&self) -> anyhow::Result<u64> {
        Ok(self
            .store
            .count(
                Collection::Executions,
                &Query::all().eq("status", "succeeded"),
            )
            .await?)
    }

    async fn drop_all(mut self) {
        for n in &mut self.nodes {
            n.kill9();
        }
        let _ = self.store.database().drop().await;
    }
}

fn parse_ts(s: &str) -> Option<f64> {
    chrono::DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.timestamp_micros() as f64 / 1e6)
}

fn now_secs() -> f64 {
    chrono::Utc::now().timestamp_micros() as f64 / 1e6
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Posts `{"n": i}` to the webhook; errors unless answered 202.
async fn post(client: &reqwest::Client, addr: &str, i: usize) -> anyhow::Result<()> {
    let resp = client
        .post(format!("http://{addr}/api/v1/webhooks/bench"))
        .header("content-type", "application/json")
        .body(format!("{{\"n\": {i}}}"))
        .send()
        .await?;
    if resp.status().as_u16() != 202 {
        bail!("webhook answered {}", resp.status());
    }
    Ok(())
}

/// Waits until `n` executions succeeded (bounded).
async fn drain(c: &Cluster, n: usize) -> anyhow::Result<()> {
    let deadline = Instant::now() + DRAIN_CAP;
    while c.finished().await? < n as u64 {
        if Instant::now() > deadline {
            bail!(
                "stalled: {} of {n} executions succeeded after {DRAIN_CAP:?}",
                c.finished().await?
            );
        }
        // The count reads every succeeded execution on the test server: poll gently, so the
        // benchmark's own load stays small (the figures come from the executions' timestamps,
        // not from when this loop notices).
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Ok(())
}

/// (3) End to end over separate processes.
/// `ceiling`: the store's write ceiling measured in this run, if any.
async fn e2e(env: &Env, ceiling: Option<f64>) -> anyhow::Result<()> {
    let mut c = Cluster::new(env, "e2e", &[("noop.yaml", NOOP_RULE)]).await?;
    let api = c.start("api", "api").await?;
    c.start("engine", "rulesengine,scheduler,notifier").await?;
    c.start("runner-1", "actionrunner").await?;
    c.start("runner-2", "actionrunner").await?;
    let addr = c.nodes[api].addr.clone();
    let client = reqwest::Client::new();
    // Warm-up: caches, connections, queue declarations.
    for i in 0..20 {
        post(&client, &addr, 1_000_000 + i).await?;
    }
    drain(&c, 20).await?;

    // Burst: E2E_BURST webhooks from E2E_POSTERS concurrent clients.
    eprintln!("bench-distributed: e2e burst");
    let ops_before = opcounters(&c.store).await?;
    let t0 = now_secs();
    let start = Instant::now();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..E2E_POSTERS {
        let (client, addr, next) = (client.clone(), addr.clone(), Arc::clone(&next));
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if i >= E2E_BURST {
                    return anyhow::Ok(());
                }
                post(&client, &addr, i).await?;
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    let ingest = start.elapsed();
    if let Err(e) = drain(&c, 20 + E2E_BURST).await {
        // A stalled backlog is a figure too: what got through in the time allowed.
        let done = c.finished().await?.saturating_sub(20);
        row(
            "end to end: webhook → core.noop succeeded (1 API, 1 rules engine, 2 runners)",
            format!(
                "{:.1} executions/s ({done} of {E2E_BURST} in {}s: {e})",
                done as f64 / DRAIN_CAP.as_secs_f64(),
                DRAIN_CAP.as_secs()
            ),
            "≥ 1,000/s, or ≥ 50% of the store's write ceiling / writes per execution",
        );
        c.drop_all().await;
        return Ok(());
    }
    let ops_after = opcounters(&c.store).await?;
    let execs = c.executions().await?;
    let last_end = execs
        .iter()
        .filter_map(|e| e.end_timestamp.as_deref().and_then(parse_ts))
        .fold(f64::MIN, f64::max);
    let total = last_end - t0;
    row(
        &format!("webhooks accepted ({E2E_POSTERS} clients, {E2E_BURST} posts)"),
        format!("{:.0} /s", E2E_BURST as f64 / ingest.as_secs_f64()),
        "API ingestion over the MongoDB-wire server",
    );
    let e2e_rate = E2E_BURST as f64 / total;
    row(
        "end to end: webhook → core.noop succeeded (1 API, 1 rules engine, 2 runners)",
        format!("{e2e_rate:.0} executions/s"),
        "≥ 1,000/s, or ≥ 50% of the store's write ceiling / writes per execution",
    );
    let per = per_execution(&ops_before, &ops_after, E2E_BURST);
    // Writes the server counted (inserts, updates, deletes), per execution.
    let server_writes: f64 = per
        .iter()
        .filter(|(k, _)| ["insert", "update", "delete"].contains(&k.as_str()))
        .map(|p| p.1)
        .sum();
    if let Some(ceiling) = ceiling {
        let allowed = ceiling / server_writes.max(1.0);
        row(
            "end to end as a share of what the store allows (ceiling ÷ server writes per execution)",
            format!(
                "{:.0} % ({e2e_rate:.1} of {allowed:.1} executions/s; {server_writes:.1} writes each, ceiling {ceiling:.0} writes/s)",
                100.0 * e2e_rate / allowed
            ),
            "≥ 50 %",
        );
    }
    let writes = writes_per_execution(&c).await?;
    row(
        "store documents written per webhook (instances, traces, enforcements, executions)",
        format!("{writes:.1}"),
        "where the time goes: the store",
    );
    row(
        "server operations per execution (burst, the benchmark's own polling included)",
        ops_per_execution(&per),
        "where the time goes: the store",
    );

    // Paced: one webhook every E2E_INTERVAL, latency per webhook.
    let mut sent = Vec::with_capacity(E2E_PACED);
    let base = 2_000_000;
    eprintln!("bench-distributed: e2e paced");
    let mut tick = tokio::time::interval(E2E_INTERVAL);
    for i in 0..E2E_PACED {
        tick.tick().await;
        sent.push(now_secs());
        post(&client, &addr, base + i).await?;
    }
    drain(&c, 20 + E2E_BURST + E2E_PACED).await?;
    let mut to_running = Vec::new();
    let mut to_done = Vec::new();
    for e in c.executions().await? {
        let Some(n) = e
            .trigger_instance
            .as_ref()
            .and_then(|t| t.pointer("/payload/body/n"))
            .and_then(Value::as_u64)
        else {
            continue;
        };
        let Some(i) = (n as usize).checked_sub(base).filter(|i| *i < E2E_PACED) else {
            continue;
        };
        let running = e
            .log
            .iter()
            .find(|l| l["status"] == "running")
            .and_then(|l| l["timestamp"].as_str())
            .and_then(parse_ts);
        if let Some(r) = running {
            to_running.push((r - sent[i]) * 1e3);
        }
        if let Some(d) = e.end_timestamp.as_deref().and_then(parse_ts) {
            to_done.push((d - sent[i]) * 1e3);
        }
    }
    to_running.sort_by(f64::total_cmp);
    to_done.sort_by(f64::total_cmp);
    let rate = 1.0 / E2E_INTERVAL.as_secs_f64();
    row(
        &format!("webhook → running, p50 / p99 ({E2E_PACED} at {rate:.0}/s)"),
        format!(
            "{:.1} / {:.1} ms",
            percentile(&to_running, 0.5),
            percentile(&to_running, 0.99)
        ),
        "p99 ≤ 50 ms",
    );
    row(
        &format!("webhook → succeeded, p50 / p99 ({E2E_PACED} at {rate:.0}/s)"),
        format!(
            "{:.1} / {:.1} ms",
            percentile(&to_done, 0.5),
            percentile(&to_done, 0.99)
        ),
        "",
    );
    c.drop_all().await;
    Ok(())
}

/// Documents of the pipeline's collections per execution.
async fn writes_per_execution(c: &Cluster) -> anyhow::Result<f64> {
    let mut docs = 0;
    for coll in [
        Collection::TriggerInstances,
        Collection::Traces,
        Collection::RuleEnforcements,
        Collection::Executions,
    ] {
        docs += c.store.count(coll, &Query::all()).await?;
    }
    let execs = c.store.count(Collection::Executions, &Query::all()).await?;
    Ok(docs as f64 / execs.max(1) as f64)
}

/// Timer fires so far.
async fn fires(c: &Cluster) -> anyhow::Result<usize> {
    Ok(repo::<TriggerInstance>(&c.store)
        .find(&Query::all())
        .await?
        .iter()
        .filter(|t| t.payload.get("executed_at").is_some())
        .count())
}

/// (4) Failover of the timers engine.
async fn failover(env: &Env) -> anyhow::Result<()> {
    let mut c = Cluster::new(env, "failover", &[("tick.yaml", TICK_RULE)]).await?;
    let a = c.start("timers-a", "timersengine").await?;
    let b = c.start("timers-b", "timersengine").await?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while fires(&c).await? < 3 {
        if Instant::now() > deadline {
            bail!("no timer fires within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let holder = c
        .store
        .get(Collection::Leases, "timersengine")
        .await?
        .and_then(|d| d["holder"].as_str().map(str::to_string))
        .context("no timers lease")?;
    let pid: u32 = holder
        .rsplit('-')
        .nth(1)
        .and_then(|p| p.parse().ok())
        .context("no pid in the lease holder")?;
    let leader = if c.nodes[a].child.id() == pid { a } else { b };
    let t = Instant::now();
    c.nodes[leader].kill9();
    // Counted after the kill: a dead leader adds none.
    let before = fires(&c).await?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while fires(&c).await? <= before {
        if Instant::now() > deadline {
            bail!("the standby did not fire within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    row(
        "failover: kill -9 of the timers leader → the standby's next fire",
        format!("{:.2} s", t.elapsed().as_secs_f64()),
        &format!(
            "≤ 5 s (lease TTL {} s)",
            st2_core::services::lease::DEFAULT_TTL.as_secs()
        ),
    );
    c.drop_all().await;
    Ok(())
}
