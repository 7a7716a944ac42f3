//! Benchmark: the event pipeline in one process — rule matching and parameter rendering, webhook
//! ingestion over real HTTP on 127.0.0.1, webhook → `running` latency, execution throughput
//! (`core.noop`, `core.local cmd=true`), a Python action's round trip, and memory, plus a
//! per-stage breakdown (µs and store calls per stage) to show where the time goes. Prints one
//! markdown row per figure as soon as it is measured, with the target it is held against.
//! Nothing is asserted: a figure that misses its target says `no` in the table.
//!
//! Usage: `cargo run --release -p st2-tests --bin bench-pipeline [-- SCENARIO...]`, with
//! scenarios among `rules render memory breakdown webhook latency noop local python` (default:
//! all). Every scenario is bounded in requests and in time (a stalled pipeline is reported with
//! its queue depths, not waited for); the whole run takes two to three minutes. Pipeline
//! scenarios start their own platform (embedded store in a temporary data dir, in-process bus,
//! bundled packs plus a generated `bench` pack with webhook rules); `memory` runs in a child
//! process of this binary so that earlier scenarios do not inflate its RSS. Progress and CPU
//! steal go to stderr, the table to stdout.

/// mimalloc: the pipeline allocates and frees many small JSON values; glibc malloc spent a
/// third of the CPU on them.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use st2_api::{router, AppState};
use st2_core::bus::{names, Bus, MemoryBus, SubscribeSpec};
use st2_core::config::Config;
use st2_core::model::{Execution, JsonMap, Rule};
use st2_core::platform::Platform;
use st2_core::rules::{MatchContext, RuleSet};
use st2_core::services::executions::{self, ExecutionRequest};
use st2_core::services::Ctx;
use st2_core::store::{repo, Collection, Query, Store, Write};
use st2_core::template::{CompiledTemplate, RenderContext, TemplateEngine};
use st2_tests::bundled_packs;

/// Scenarios, in the order a full run measures them.
const SCENARIOS: &[&str] = &[
    "rules",
    "render",
    "memory",
    "breakdown",
    "webhook",
    "latency",
    "noop",
    "local",
    "python",
];

/// Rules engine: rules, trigger types, and the most instances / longest time one pass takes.
const RULES: usize = 1_000;
const TRIGGER_TYPES: usize = 100;
const RULE_INSTANCES: usize = 300_000;
const RULE_TIME_CAP: Duration = Duration::from_secs(5);
/// The parameter template of the render micro-benchmark (anchor B2).
const PARAM_TEMPLATE: &str = "{{ trigger.body.host }}-{{ trigger.body.sev | upper }}";
const RENDERS: usize = 200_000;
/// Webhook ingestion: requests, connections, time cap.
const WEBHOOK_REQUESTS: usize = 20_000;
const WEBHOOK_INGEST_REQUESTS: usize = 10_000;
const WEBHOOK_CONNECTIONS: usize = 32;
const WEBHOOK_TIME_CAP: Duration = Duration::from_secs(30);
/// Latency: request rate and count (100/s for 10 s).
const LATENCY_INTERVAL: Duration = Duration::from_millis(10);
const LATENCY_REQUESTS: usize = 1_000;
/// Execution throughput.
const NOOP_EXECUTIONS: usize = 5_000;
const NOOP_SEQUENTIAL: usize = 200;
const LOCAL_EXECUTIONS: usize = 1_000;
const REQUESTERS: usize = 32;
/// Python round trips measured (after one warm-up run).
const PYTHON_RUNS: usize = 20;
/// Memory: executions in flight, and how long RSS is sampled while they are.
const MEMORY_EXECUTIONS: usize = 1_000;
const MEMORY_SAMPLE_FOR: Duration = Duration::from_secs(5);
/// Longest wait for a batch of executions to complete.
const DRAIN_CAP: Duration = Duration::from_secs(90);
/// Longest wait for the next completion before a batch is declared stalled.
const STALL_CAP: Duration = Duration::from_secs(15);
/// Longest wait for a platform to shut down.
const SHUTDOWN_CAP: Duration = Duration::from_secs(15);
/// Longest a pipeline scenario may take, whatever happens inside.
const SCENARIO_CAP: Duration = Duration::from_secs(300);

/// Statuses an execution ends in.
const COMPLETED: [&str; 5] = ["succeeded", "failed", "timeout", "canceled", "abandoned"];

/// What a figure is held against.
#[derive(Debug, Clone, Copy)]
enum Target {
    AtLeast(f64),
    AtMost(f64),
}

fn fmt_num(v: f64) -> String {
    if !v.is_finite() {
        return "n/a".into();
    }
    if v.abs() >= 1000.0 {
        let s = format!("{:.0}", v);
        let (sign, digits) = s.strip_prefix('-').map(|d| ("-", d)).unwrap_or(("", &s));
        let mut out = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(c);
        }
        format!("{sign}{out}")
    } else if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// Prints one row of the table.
fn row(id: &str, what: &str, figure: f64, unit: &str, target: Option<Target>, notes: &str) {
    let (target_text, met) = match target {
        Some(Target::AtLeast(t)) => (
            format!("≥ {}", fmt_num(t)),
            if figure >= t { "yes" } else { "no" },
        ),
        Some(Target::AtMost(t)) => (
            format!("≤ {}", fmt_num(t)),
            if figure <= t { "yes" } else { "no" },
        ),
        None => ("—".to_string(), "—"),
    };
    let cell = |text: &str| text.replace('|', "\\|");
    println!(
        "| {id} | {} | {} | {unit} | {target_text} | {met} | {} |",
        cell(what),
        fmt_num(figure),
        cell(notes)
    );
}

/// Progress on stderr (the table is on stdout), with the time since the start of the run.
fn progress(what: impl std::fmt::Display) {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    let t = START.get_or_init(Instant::now).elapsed().as_secs_f64();
    eprintln!("bench-pipeline [{t:7.2} s] {what}");
}

fn header() {
    println!("| # | measure | figure | unit | target | met | how / notes |");
    println!("|---|---|---|---|---|---|---|");
}

/// A field of `/proc/self/status` (`VmRSS`, `VmHWM`) in MiB.
fn proc_status_mib(field: &str) -> f64 {
    status_mib_of("self", field)
}

/// [`proc_status_mib`] of process `pid` (`"self"`: this one).
fn status_mib_of(pid: &str, field: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field) && l[field.len()..].starts_with(':'))
                .and_then(|l| {
                    l.split_whitespace()
                        .nth(1)
                        .and_then(|kb| kb.parse::<f64>().ok())
                })
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

/// (steal, total) CPU time of the machine so far, in clock ticks (`/proc/stat`): steal is time
/// the hypervisor gave to other guests, which makes figures noisy.
fn cpu_ticks() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let fields: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    (
        fields.get(7).copied().unwrap_or(0),
        fields.iter().take(8).sum(),
    )
}

fn steal_percent(from: (u64, u64), to: (u64, u64)) -> f64 {
    let total = to.1.saturating_sub(from.1);
    if total == 0 {
        return 0.0;
    }
    100.0 * to.0.saturating_sub(from.0) as f64 / total as f64
}

/// The `q` quantile (0..=1) of sorted values, nearest rank.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn sorted_ms(durations: impl IntoIterator<Item = Duration>) -> Vec<f64> {
    let mut v: Vec<f64> = durations
        .into_iter()
        .map(|d| d.as_secs_f64() * 1e3)
        .collect();
    v.sort_by(f64::total_cmp);
    v
}

// ---------------------------------------------------------------------------------------------
// 1–2: rules engine and templates, pure, on this thread.

/// A small deterministic generator (xorshift64*), so runs are comparable.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Rule `r` listens on `bench.event_<r % 100>`. Its first criterion is one of the mix (equals,
/// regex, contains, exists: mostly true), its second `trigger.k == r / 100`, so an instance
/// with `k` in 0..100 matches one rule of its trigger for `k < 10`: about 10 % match.
fn bench_rule(r: usize) -> anyhow::Result<Rule> {
    let (key, spec) = match r % 4 {
        0 => (
            "trigger.sev",
            json!({"type": "equals", "pattern": "critical"}),
        ),
        1 => (
            "trigger.host",
            json!({"type": "regex", "pattern": "^web-[0-9]+\\.example\\.com$"}),
        ),
        2 => (
            "trigger.message",
            json!({"type": "contains", "pattern": "disk"}),
        ),
        _ => ("trigger.tags", json!({"type": "exists"})),
    };
    let mut criteria = JsonMap::new();
    criteria.insert(key.into(), spec);
    criteria.insert(
        "trigger.k".into(),
        json!({"type": "equals", "pattern": r / TRIGGER_TYPES}),
    );
    let rule = json!({
        "id": format!("rule{r:06}"),
        "name": format!("rule_{r}"),
        "pack": "bench",
        "ref": format!("bench.rule_{r}"),
        "uid": format!("rule:bench:rule_{r}"),
        "enabled": true,
        "trigger": {"type": format!("bench.event_{}", r % TRIGGER_TYPES)},
        "criteria": criteria,
        "action": {
            "ref": "core.local",
            "parameters": {"cmd": "echo {{ trigger.host }}-{{ trigger.sev | upper }}", "timeout": 60},
        },
        "type": {"ref": "standard"},
    });
    Ok(serde_json::from_value(rule)?)
}

/// Trigger instances: (trigger ref, payload).
fn bench_instances(n: usize) -> Vec<(String, Value)> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    (0..n)
        .map(|_| {
            let t = rng.below(TRIGGER_TYPES);
            let sev = if rng.below(10) < 8 {
                "critical"
            } else {
                "warning"
            };
            let host = if rng.below(10) < 8 {
                format!("web-{}.example.com", rng.below(100))
            } else {
                format!("db-{}.example.com", rng.below(10))
            };
            let message = if rng.below(10) < 8 {
                "disk /var is 97% full"
            } else {
                "load average high"
            };
            let mut payload =
                json!({"k": rng.below(100), "sev": sev, "host": host, "message": message});
            if rng.below(10) < 9 {
                payload["tags"] = json!(["prod", "eu"]);
            }
            (format!("bench.event_{t}"), payload)
        })
        .collect()
}

/// How the matched rule's parameters are rendered.
#[derive(Clone, Copy, PartialEq)]
enum ParamRender {
    /// `TemplateEngine::render_value` on the rule's parameters, as the rules engine service
    /// does (each template string parsed on every render).
    AsService,
    /// Templates compiled once per rule, rendered with `CompiledTemplate::render`.
    Compiled,
}

fn bench_rules() -> anyhow::Result<()> {
    let engine = TemplateEngine::new();
    let rules = (0..RULES)
        .map(bench_rule)
        .collect::<anyhow::Result<Vec<_>>>()?;
    let t = Instant::now();
    let (set, issues) = RuleSet::build(rules, &engine);
    let build = t.elapsed();
    if !issues.is_empty() {
        bail!("rules did not compile: {:?}", issues[0]);
    }
    // Compiled-once parameters, by rule ref (for the `Compiled` variant).
    let mut compiled: HashMap<String, Vec<(String, Option<CompiledTemplate>, Value)>> =
        HashMap::new();
    for r in 0..RULES {
        let rule = bench_rule(r)?;
        let params = rule
            .action
            .parameters
            .iter()
            .map(|(k, v)| {
                let tmpl = v
                    .as_str()
                    .filter(|s| s.contains("{{"))
                    .map(|s| engine.compile(s))
                    .transpose()?;
                Ok((k.clone(), tmpl, v.clone()))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        compiled.insert(rule.rule_ref, params);
    }
    let instances = bench_instances(10_000);
    // The rules engine's render context carries the datastore (an empty one here).
    let kv: Arc<dyn st2_core::template::KvLookup> = Arc::new(st2_core::template::StaticKv::new());
    for (id, variant, what) in [
        ("1", ParamRender::AsService, "rules engine: 1,000 rules / 100 trigger types, match + 1 param render per match (render as `rules_engine::enforce` does: `render_value`, parse per render)"),
        ("1b", ParamRender::Compiled, "same, parameters compiled once at rule load (`CompiledTemplate::render`)"),
    ] {
        let mut done = 0usize;
        let mut matches = 0usize;
        let mut rendered_bytes = 0usize;
        let start = Instant::now();
        'outer: loop {
            for (trigger, payload) in &instances {
                // As `RulesEngine::enforce`: one render context per instance, the payload added
                // as `trigger` only when a rule matched.
                let render_ctx = RenderContext::new().with_kv(kv.clone(), None);
                let match_ctx = MatchContext::from(&render_ctx).for_trigger_instance("bench");
                let result = set.match_instance(trigger, payload, match_ctx);
                let matched = result.matched();
                if !matched.is_empty() {
                    let trigger_ctx = render_ctx.clone().with("trigger", payload.clone());
                    for rule in matched {
                        matches += 1;
                        match variant {
                            ParamRender::AsService => {
                                let v = engine.render_value(&Value::Object(rule.action.parameters.clone()), &trigger_ctx)?;
                                rendered_bytes += v["cmd"].as_str().map_or(0, str::len);
                            }
                            ParamRender::Compiled => {
                                let mut out = JsonMap::new();
                                for (k, tmpl, raw) in compiled.get(&rule.rule_ref).map(Vec::as_slice).unwrap_or_default() {
                                    let v = match tmpl {
                                        Some(t) => Value::String(t.render(&trigger_ctx)?),
                                        None => raw.clone(),
                                    };
                                    out.insert(k.clone(), v);
                                }
                                rendered_bytes += out["cmd"].as_str().map_or(0, str::len);
                            }
                        }
                    }
                }
                done += 1;
                if done >= RULE_INSTANCES || (done & 1023 == 0 && start.elapsed() >= RULE_TIME_CAP) {
                    break 'outer;
                }
            }
        }
        let wall = start.elapsed().as_secs_f64();
        std::hint::black_box(rendered_bytes);
        row(
            id,
            what,
            done as f64 / wall,
            "trigger instances/s (1 thread)",
            Some(Target::AtLeast(100_000.0)),
            &format!(
                "{done} instances in {wall:.2} s, {matches} matched ({:.1} %); criteria mix equals/regex/contains/exists + `k` equals; rule set built in {:.0} ms",
                100.0 * matches as f64 / done as f64,
                build.as_secs_f64() * 1e3
            ),
        );
    }
    Ok(())
}

fn bench_render() -> anyhow::Result<()> {
    let engine = TemplateEngine::new();
    let ctx = RenderContext::new().with(
        "trigger",
        json!({"body": {"host": "web-1.example.com", "sev": "critical", "message": "disk full"}}),
    );
    let tmpl = engine.compile(PARAM_TEMPLATE)?;
    let expected = "web-1.example.com-CRITICAL";
    if tmpl.render(&ctx)? != expected {
        bail!("unexpected rendering {:?}", tmpl.render(&ctx)?);
    }
    let measure = |f: &dyn Fn() -> anyhow::Result<usize>| -> anyhow::Result<(f64, usize)> {
        for _ in 0..1_000 {
            f()?;
        }
        let start = Instant::now();
        let mut n = 0;
        let mut bytes = 0;
        while n < RENDERS && !(n & 1023 == 0 && start.elapsed() > Duration::from_secs(3)) {
            bytes += f()?;
            n += 1;
        }
        std::hint::black_box(bytes);
        Ok((start.elapsed().as_secs_f64() * 1e6 / n as f64, n))
    };
    let (us, n) = measure(&|| Ok(tmpl.render(&ctx)?.len()))?;
    row(
        "2",
        "one parameter render of a compiled template",
        us,
        "µs",
        Some(Target::AtMost(5.0)),
        &format!("`{PARAM_TEMPLATE}`, `CompiledTemplate::render`, context built once; mean of {n}"),
    );
    let (us, n) = measure(&|| Ok(engine.render_str(PARAM_TEMPLATE, &ctx)?.len()))?;
    row(
        "2b",
        "same template through `TemplateEngine::render_str` (parse + render, what the rules engine and notifier call)",
        us,
        "µs",
        None,
        &format!("mean of {n}"),
    );
    let payload = json!({"body": {"host": "web-1.example.com", "sev": "critical", "message": "disk full"}, "headers": {"Content-Type": "application/json", "X-Auth-Token": "0123456789abcdef"}});
    let (us, n) = measure(&|| {
        let c = RenderContext::new().with("trigger", payload.clone());
        Ok(tmpl.render(&c)?.len())
    })?;
    row(
        "2c",
        "compiled render including building the context from a webhook-shaped payload",
        us,
        "µs",
        None,
        &format!("`RenderContext::new().with(\"trigger\", payload.clone())` + render; mean of {n}"),
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// 3–8: a running platform.

/// The generated pack: two webhook rules running `core.noop`, one that always matches
/// (`bench`), one that never does (`bench-ingest`, to measure ingestion without executions).
fn write_bench_pack(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir.join("rules"))?;
    std::fs::write(
        dir.join("pack.yaml"),
        "ref: bench\nname: bench\ndescription: generated by bench-pipeline\nauthor: bench\nversion: 1.0.0\npython_versions: [\"3\"]\n",
    )?;
    std::fs::write(
        dir.join("rules/hook.yaml"),
        "name: hook\npack: bench\ndescription: every POST runs core.noop\nenabled: true\ntrigger:\n  type: core.st2.webhook\n  parameters:\n    url: bench\naction:\n  ref: core.noop\n",
    )?;
    std::fs::write(
        dir.join("rules/ingest.yaml"),
        "name: ingest\npack: bench\ndescription: never matches\nenabled: true\ntrigger:\n  type: core.st2.webhook\n  parameters:\n    url: bench-ingest\ncriteria:\n  trigger.body.seq:\n    type: equals\n    pattern: -1\naction:\n  ref: core.noop\n",
    )
}

/// A platform running every role, optionally serving the API on 127.0.0.1.
///
/// `Platform::start` registers the content (bundled packs and the bench pack) and opens the
/// store; the roles are then started with `Platform::start_roles` over the same context with a
/// `MemoryBus` of our own, which is what `Platform::start` would have created, kept here so that
/// a stalled run can report its queue depths.
struct Harness {
    /// Registration and store (no roles).
    base: Platform,
    /// The roles, over `ctx`.
    roles: Option<Platform>,
    ctx: Ctx,
    bus: Arc<MemoryBus>,
    token: String,
    /// `http://127.0.0.1:<port>` when serving.
    url: String,
    server: Option<tokio::task::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl Harness {
    async fn start(http: bool) -> anyhow::Result<Harness> {
        Self::start_roles(http, &["all"]).await
    }

    async fn start_roles(http: bool, roles: &[&str]) -> anyhow::Result<Harness> {
        Self::start_with(http, roles, None).await
    }

    /// `python`: the `[actionrunner] python_binary` (default: the configuration's default).
    async fn start_with(
        http: bool,
        roles: &[&str],
        python: Option<&str>,
    ) -> anyhow::Result<Harness> {
        let dir = tempfile::tempdir()?;
        write_bench_pack(&dir.path().join("packs").join("bench"))?;
        let mut cfg = Config::default();
        cfg.system.data_dir = dir.path().to_path_buf();
        cfg.content.system_packs_base_path = Some(bundled_packs());
        // The one setting a run may vary, as st2d reads it.
        cfg.messaging.consumer_concurrency = std::env::var("ST2_MESSAGING__CONSUMER_CONCURRENCY")
            .ok()
            .and_then(|v| v.parse().ok());
        if let Some(p) = python {
            cfg.actionrunner.python_binary = p.to_string();
        }
        let t = Instant::now();
        let base = Platform::start(&cfg, &[]).await.context("platform start")?;
        let bus = Arc::new(MemoryBus::new());
        bus.declare_st2_exchanges().await?;
        let mut ctx = base.ctx.clone();
        ctx.bus = bus.clone();
        let roles: Vec<String> = roles.iter().map(|r| r.to_string()).collect();
        let running = match roles.is_empty() {
            true => None,
            false => Some(
                Platform::start_roles(ctx.clone(), &roles, &cfg.garbagecollector)
                    .await
                    .context("roles start")?,
            ),
        };
        let store = ctx.store.clone();
        let token = st2_core::auth::issue_token(&*store, "st2admin", 3600)
            .await?
            .token;
        let (url, server) = if http {
            let state = AppState {
                store,
                services: Some(ctx.clone()),
                auth_enabled: true,
                token_ttl: 3600,
            };
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            let addr = listener.local_addr()?;
            let app = router(state);
            let server = tokio::spawn(async move {
                if let Err(e) = axum::serve(listener, app).await {
                    eprintln!("bench-pipeline: server stopped: {e}");
                }
            });
            (format!("http://{addr}"), Some(server))
        } else {
            (String::new(), None)
        };
        progress(format!(
            "platform started in {:.2} s",
            t.elapsed().as_secs_f64()
        ));
        Ok(Harness {
            base,
            roles: running,
            ctx,
            bus,
            token,
            url,
            server,
            _dir: dir,
        })
    }

    fn ctx(&self) -> &Ctx {
        &self.ctx
    }

    /// Ready / unacked messages of the pipeline's work queues.
    fn queues(&self) -> String {
        queue_report(&self.bus)
    }

    /// Stops the platform, waiting at most [`SHUTDOWN_CAP`] (a wedged pipeline is reported,
    /// not waited for).
    async fn stop(self) {
        if let Some(s) = self.server {
            s.abort();
        }
        let stop = async {
            if let Some(r) = self.roles {
                r.shutdown().await;
            }
            self.base.shutdown().await;
        };
        if tokio::time::timeout(SHUTDOWN_CAP, stop).await.is_err() {
            progress(format!(
                "platform shutdown did not finish in {} s; left behind",
                SHUTDOWN_CAP.as_secs()
            ));
        }
    }
}

/// `queue ready+unacked` for each work queue of the pipeline.
fn queue_report(bus: &MemoryBus) -> String {
    [
        ("rules", names::RULES_ENGINE_WORK),
        ("scheduler", names::ACTIONRUNNER_REQ),
        ("worker", names::ACTIONRUNNER_WORK),
        ("notifier", names::NOTIFIER_WORK),
    ]
    .iter()
    .filter_map(|(short, q)| {
        bus.stats(q)
            .map(|s| format!("{short} {}+{}", s.ready, s.unacked))
    })
    .collect::<Vec<_>>()
    .join(", ")
}

/// An execution that reached a final status, as announced on `st2.liveaction.status`.
#[derive(Debug)]
struct Done {
    id: String,
    status: String,
    at: Instant,
}

/// Follows completions from now on (a broadcast queue of our own, large enough to drop nothing).
async fn completions(ctx: &Ctx) -> anyhow::Result<mpsc::UnboundedReceiver<Done>> {
    let mut sub = ctx
        .bus
        .subscribe(
            SubscribeSpec::broadcast("bench.completions", names::LIVEACTION_STATUS, COMPLETED)
                .with_capacity(1 << 20),
        )
        .await?;
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(d) = sub.next().await {
            let Ok(d) = d else { continue };
            let at = Instant::now();
            let status = d.routing_key().to_string();
            let id = d
                .message()
                .value()
                .ok()
                .and_then(|v| v.get("id").and_then(Value::as_str).map(String::from))
                .unwrap_or_default();
            let _ = d.ack().await;
            if tx.send(Done { id, status, at }).is_err() {
                break;
            }
        }
    });
    Ok(rx)
}

/// Receives up to `n` completions, waiting at most `cap` in all and [`STALL_CAP`] for the next
/// one (a pipeline that stops making progress is reported, not waited for).
async fn collect(
    h: &Harness,
    rx: &mut mpsc::UnboundedReceiver<Done>,
    n: usize,
    cap: Duration,
) -> Vec<Done> {
    let deadline = tokio::time::Instant::now() + cap;
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let next = deadline.min(tokio::time::Instant::now() + STALL_CAP);
        match tokio::time::timeout_at(next, rx.recv()).await {
            Ok(Some(d)) => out.push(d),
            Ok(None) => break,
            Err(_) => {
                if tokio::time::Instant::now() < deadline {
                    progress(format!(
                        "{} of {n} executions completed; none for {} s: giving up (queues ready+unacked: {})",
                        out.len(),
                        STALL_CAP.as_secs(),
                        h.queues()
                    ));
                }
                break;
            }
        }
    }
    out
}

fn status_counts(done: &[Done]) -> String {
    let mut counts: Vec<(String, usize)> = Vec::new();
    for d in done {
        match counts.iter_mut().find(|(s, _)| *s == d.status) {
            Some((_, n)) => *n += 1,
            None => counts.push((d.status.clone(), 1)),
        }
    }
    counts
        .iter()
        .map(|(s, n)| format!("{n} {s}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Requests `n` executions from `requesters` concurrent tasks; returns (accepted, first error,
/// when the last request returned).
async fn request_many(
    ctx: &Ctx,
    n: usize,
    requesters: usize,
    make: impl Fn(usize) -> ExecutionRequest + Send + Sync + 'static,
) -> (usize, Option<String>, Instant) {
    let next = Arc::new(AtomicUsize::new(0));
    let make = Arc::new(make);
    let mut tasks = Vec::new();
    for _ in 0..requesters {
        let (ctx, next, make) = (ctx.clone(), Arc::clone(&next), Arc::clone(&make));
        tasks.push(tokio::spawn(async move {
            let (mut ok, mut err) = (0usize, None::<String>);
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                match executions::request(&ctx, make(i)).await {
                    Ok(_) => ok += 1,
                    Err(e) => {
                        err.get_or_insert(e.to_string());
                    }
                }
            }
            (ok, err)
        }));
    }
    let (mut ok, mut err) = (0, None);
    for t in tasks {
        if let Ok((o, e)) = t.await {
            ok += o;
            if err.is_none() {
                err = e;
            }
        }
    }
    (ok, err, Instant::now())
}

fn http_client(connections: usize) -> anyhow::Result<reqwest::Client> {
    // No proxy: every request stays on 127.0.0.1 whatever the environment says.
    Ok(reqwest::Client::builder()
        .no_proxy()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(connections)
        .timeout(Duration::from_secs(10))
        .build()?)
}

/// The outcome of a closed-loop HTTP load.
struct Load {
    accepted: usize,
    failed: usize,
    first_failure: Option<String>,
    wall: Duration,
    latencies: Vec<Duration>,
}

/// `total` POSTs of `{"seq": i, ...}` to `url` from `connections` concurrent clients (each
/// sends its next request when the previous one is answered), stopping early at `cap`.
async fn post_load(
    bus: &Arc<MemoryBus>,
    client: &reqwest::Client,
    url: &str,
    token: &str,
    total: usize,
    connections: usize,
    cap: Duration,
) -> Load {
    let next = Arc::new(AtomicUsize::new(0));
    let accepted = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let ticker = {
        let (accepted, bus) = (Arc::clone(&accepted), Arc::clone(bus));
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(5)).await;
                progress(format!(
                    "{} of {total} POSTs accepted (queues ready+unacked: {})",
                    accepted.load(Ordering::Relaxed),
                    queue_report(&bus)
                ));
            }
        })
    };
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let (client, url, token, next, accepted) = (
            client.clone(),
            url.to_string(),
            token.to_string(),
            Arc::clone(&next),
            Arc::clone(&accepted),
        );
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let (mut failed, mut first) = (0usize, None::<String>);
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total || start.elapsed() >= cap {
                    break;
                }
                let t = Instant::now();
                let resp = client
                    .post(&url)
                    .header("x-auth-token", &token)
                    .header("content-type", "application/json")
                    .body(format!(
                        r#"{{"seq": {i}, "sev": "critical", "host": "web-{}.example.com"}}"#,
                        i % 100
                    ))
                    .send()
                    .await;
                match resp {
                    Ok(r) if r.status().as_u16() == 202 => {
                        let _ = r.bytes().await;
                        lat.push(t.elapsed());
                        accepted.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(r) => {
                        failed += 1;
                        first.get_or_insert(format!("HTTP {}", r.status()));
                    }
                    Err(e) => {
                        failed += 1;
                        first.get_or_insert(e.to_string());
                    }
                }
            }
            (lat, failed, first)
        }));
    }
    let mut load = Load {
        accepted: 0,
        failed: 0,
        first_failure: None,
        wall: Duration::ZERO,
        latencies: Vec::new(),
    };
    for t in tasks {
        if let Ok((lat, failed, first)) = t.await {
            load.accepted += lat.len();
            load.latencies.extend(lat);
            load.failed += failed;
            if load.first_failure.is_none() {
                load.first_failure = first;
            }
        }
    }
    load.wall = start.elapsed();
    ticker.abort();
    load
}

/// Trigger instances stored for webhook POSTs (not the action triggers the notifier emits).
async fn stored_webhook_instances(ctx: &Ctx) -> anyhow::Result<u64> {
    Ok(ctx
        .store
        .count(
            Collection::TriggerInstances,
            &Query::all().eq("payload.body.sev", "critical"),
        )
        .await?)
}

async fn bench_webhook() -> anyhow::Result<()> {
    // 3: every POST fires the rule → core.noop; the pipeline runs while we post.
    let h = Harness::start(true).await?;
    let mut done = completions(h.ctx()).await?;
    let client = http_client(WEBHOOK_CONNECTIONS)?;
    let url = format!("{}/api/v1/webhooks/bench", h.url);
    let load = post_load(
        &h.bus,
        &client,
        &url,
        &h.token,
        WEBHOOK_REQUESTS,
        WEBHOOK_CONNECTIONS,
        WEBHOOK_TIME_CAP,
    )
    .await;
    let start = Instant::now() - load.wall;
    let stored = stored_webhook_instances(h.ctx()).await?;
    let lat = sorted_ms(load.latencies.iter().copied());
    row(
        "3",
        "webhook POSTs accepted (202) with the trigger instance stored while the whole pipeline runs: every POST's rule starts a core.noop (the ingestion figure is 3c)",
        load.accepted as f64 / load.wall.as_secs_f64(),
        "req/s",
        None,
        &format!(
            "{} accepted in {:.2} s, {} failed{}; {WEBHOOK_CONNECTIONS} keep-alive HTTP/1.1 conns (reqwest, same 2 cores); 202 latency p50 {:.2} ms p99 {:.2} ms; {stored} trigger instances in the store; queues ready+unacked at the end: {}",
            load.accepted,
            load.wall.as_secs_f64(),
            load.failed,
            load.first_failure.as_deref().map(|f| format!(" ({f})")).unwrap_or_default(),
            quantile(&lat, 0.5),
            quantile(&lat, 0.99),
            h.queues()
        ),
    );
    let finished = collect(&h, &mut done, load.accepted, DRAIN_CAP).await;
    let last = finished.iter().map(|d| d.at).max().unwrap_or(start);
    row(
        "3b",
        "same POSTs, until every execution they caused completed (webhook → rule → core.noop, end to end)",
        finished.len() as f64 / (last - start).as_secs_f64(),
        "executions/s",
        None,
        &format!(
            "{} of {} completed {:.2} s after the first POST ({})",
            finished.len(),
            load.accepted,
            (last - start).as_secs_f64(),
            status_counts(&finished)
        ),
    );
    h.stop().await;

    // 3c: a rule that never matches: ingestion plus rules engine, no executions.
    let h = Harness::start(true).await?;
    let url = format!("{}/api/v1/webhooks/bench-ingest", h.url);
    let load = post_load(
        &h.bus,
        &client,
        &url,
        &h.token,
        WEBHOOK_INGEST_REQUESTS,
        WEBHOOK_CONNECTIONS,
        WEBHOOK_TIME_CAP,
    )
    .await;
    let stored = stored_webhook_instances(h.ctx()).await?;
    let lat = sorted_ms(load.latencies.iter().copied());
    let processed_query = Query::all()
        .eq("payload.body.sev", "critical")
        .eq("status", "processed");
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut processed = 0;
    while Instant::now() < deadline {
        processed = h
            .ctx()
            .store
            .count(Collection::TriggerInstances, &processed_query)
            .await?;
        if processed >= stored {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    row(
        "3c",
        "webhook POSTs accepted (202) with the trigger instance durably stored, and each processed by the rules engine (its rule never matches: no executions)",
        load.accepted as f64 / load.wall.as_secs_f64(),
        "req/s",
        Some(Target::AtLeast(5_000.0)),
        &format!(
            "{} accepted in {:.2} s, {} failed; p50 {:.2} ms p99 {:.2} ms; {stored} stored, {processed} processed by the rules engine when counted",
            load.accepted,
            load.wall.as_secs_f64(),
            load.failed,
            quantile(&lat, 0.5),
            quantile(&lat, 0.99)
        ),
    );
    h.stop().await;
    Ok(())
}

async fn bench_latency() -> anyhow::Result<()> {
    let h = Harness::start(true).await?;
    let n = LATENCY_REQUESTS;
    // When each request was sent, and when its execution was seen `running` / `succeeded`.
    let sent: Arc<Mutex<Vec<Option<Instant>>>> = Arc::new(Mutex::new(vec![None; n]));
    let running: Arc<Mutex<Vec<Option<Instant>>>> = Arc::new(Mutex::new(vec![None; n]));
    let succeeded: Arc<Mutex<Vec<Option<Instant>>>> = Arc::new(Mutex::new(vec![None; n]));
    let seen = Arc::new(AtomicUsize::new(0));
    let mut sub = h
        .ctx()
        .bus
        .subscribe(
            SubscribeSpec::broadcast("bench.latency", names::EXECUTION, [names::RK_UPDATE])
                .with_capacity(1 << 20),
        )
        .await?;
    {
        let (running, succeeded, seen) = (
            Arc::clone(&running),
            Arc::clone(&succeeded),
            Arc::clone(&seen),
        );
        tokio::spawn(async move {
            while let Some(d) = sub.next().await {
                let Ok(d) = d else { continue };
                let at = Instant::now();
                if let Ok(doc) = d.message().value() {
                    let seq = doc
                        .pointer("/trigger_instance/payload/body/seq")
                        .and_then(Value::as_u64)
                        .map(|s| s as usize);
                    let (slot, is_running) = match doc.get("status").and_then(Value::as_str) {
                        Some("running") => (Some(&running), true),
                        Some("succeeded") => (Some(&succeeded), false),
                        _ => (None, false),
                    };
                    if let (Some(seq), Some(slot)) = (seq.filter(|s| *s < n), slot) {
                        let mut v = slot.lock().unwrap_or_else(|p| p.into_inner());
                        if v[seq].is_none() {
                            v[seq] = Some(at);
                            if is_running {
                                seen.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                }
                let _ = d.ack().await;
            }
        });
    }
    let client = http_client(64)?;
    let url = format!("{}/api/v1/webhooks/bench", h.url);
    // Warm the connection pool (these requests are not measured: seq beyond n).
    for i in 0..8 {
        let _ = client
            .post(&url)
            .header("x-auth-token", &h.token)
            .header("content-type", "application/json")
            .body(format!(r#"{{"seq": {}, "sev": "warmup"}}"#, n + i))
            .send()
            .await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let http_lat: Arc<Mutex<Vec<Duration>>> = Arc::new(Mutex::new(Vec::new()));
    let mut tick = tokio::time::interval(LATENCY_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let start = Instant::now();
    let mut posts = Vec::with_capacity(n);
    for i in 0..n {
        tick.tick().await;
        let req = client
            .post(&url)
            .header("x-auth-token", &h.token)
            .header("content-type", "application/json")
            .body(format!(r#"{{"seq": {i}, "sev": "latency"}}"#));
        let t = Instant::now();
        sent.lock().unwrap_or_else(|p| p.into_inner())[i] = Some(t);
        let http_lat = Arc::clone(&http_lat);
        posts.push(tokio::spawn(async move {
            if let Ok(r) = req.send().await {
                if r.status().as_u16() == 202 {
                    http_lat
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(t.elapsed());
                }
            }
        }));
    }
    let send_wall = start.elapsed();
    for p in posts {
        let _ = p.await;
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while seen.load(Ordering::Relaxed) < n && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let sent = sent.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let pair = |to: &Arc<Mutex<Vec<Option<Instant>>>>| -> Vec<f64> {
        let to = to.lock().unwrap_or_else(|p| p.into_inner());
        sorted_ms(
            sent.iter()
                .zip(to.iter())
                .filter_map(|(s, r)| Some(r.as_ref()?.duration_since(*s.as_ref()?))),
        )
    };
    let run = pair(&running);
    let ok = pair(&succeeded);
    let http = sorted_ms(
        http_lat
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .copied(),
    );
    let notes = format!(
        "{n} POSTs at {:.0}/s over {:.1} s (open loop), {} seen running; send = just before the POST, running = the `st2.execution` update with status running arriving on our bus subscription; 202 p50 {:.2} ms p99 {:.2} ms; to `succeeded` p50 {:.2} ms p99 {:.2} ms; max to running {:.1} ms",
        n as f64 / send_wall.as_secs_f64(),
        send_wall.as_secs_f64(),
        run.len(),
        quantile(&http, 0.5),
        quantile(&http, 0.99),
        quantile(&ok, 0.5),
        quantile(&ok, 0.99),
        run.last().copied().unwrap_or(f64::NAN),
    );
    row(
        "4",
        "webhook → execution `running` latency p50 at 100 req/s",
        quantile(&run, 0.5),
        "ms",
        Some(Target::AtMost(2.0)),
        &notes,
    );
    row(
        "4b",
        "webhook → execution `running` latency p99 at 100 req/s",
        quantile(&run, 0.99),
        "ms",
        Some(Target::AtMost(10.0)),
        "same run",
    );
    h.stop().await;
    Ok(())
}

/// `n` executions requested by [`REQUESTERS`] concurrent tasks, timed until all completed.
async fn throughput(
    h: &Harness,
    n: usize,
    make: impl Fn(usize) -> ExecutionRequest + Send + Sync + 'static,
) -> anyhow::Result<(f64, String)> {
    let mut done = completions(h.ctx()).await?;
    let start = Instant::now();
    let (accepted, err, requested_at) = request_many(h.ctx(), n, REQUESTERS, make).await;
    let finished = collect(h, &mut done, accepted, DRAIN_CAP).await;
    let last = finished.iter().map(|d| d.at).max().unwrap_or(start);
    let wall = (last - start).as_secs_f64();
    let notes = format!(
        "{accepted} requested by {REQUESTERS} concurrent `executions::request` callers in {:.2} s{}; {} completed in {wall:.2} s ({})",
        (requested_at - start).as_secs_f64(),
        err.map(|e| format!(" (first refusal: {e})")).unwrap_or_default(),
        finished.len(),
        status_counts(&finished),
    );
    Ok((finished.len() as f64 / wall, notes))
}

async fn bench_noop() -> anyhow::Result<()> {
    let h = Harness::start(false).await?;
    let (rate, notes) = throughput(&h, NOOP_EXECUTIONS, |_| ExecutionRequest {
        action_ref: "core.noop".into(),
        ..Default::default()
    })
    .await?;
    row(
        "5",
        "core.noop executions, requested → succeeded, end to end",
        rate,
        "executions/s",
        Some(Target::AtLeast(5_000.0)),
        &notes,
    );
    // One at a time: the pipeline's fixed cost per execution.
    let mut done = completions(h.ctx()).await?;
    let mut times = Vec::with_capacity(NOOP_SEQUENTIAL);
    for _ in 0..NOOP_SEQUENTIAL {
        let t = Instant::now();
        let exec = executions::request(
            h.ctx(),
            ExecutionRequest {
                action_ref: "core.noop".into(),
                ..Default::default()
            },
        )
        .await?;
        if let Some(d) = wait_for(&mut done, &exec.id, Duration::from_secs(10)).await {
            times.push(d.at - t);
        }
    }
    let ms = sorted_ms(times);
    row(
        "5b",
        "core.noop round trip, one at a time (request → succeeded), median",
        quantile(&ms, 0.5),
        "ms",
        None,
        &format!("{} runs; p99 {:.2} ms", ms.len(), quantile(&ms, 0.99)),
    );
    h.stop().await;
    Ok(())
}

/// Waits for the completion of execution `id` (others are skipped).
async fn wait_for(rx: &mut mpsc::UnboundedReceiver<Done>, id: &str, cap: Duration) -> Option<Done> {
    let deadline = tokio::time::Instant::now() + cap;
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(d)) if d.id == id => return Some(d),
            Ok(Some(_)) => continue,
            _ => return None,
        }
    }
}

fn local_request(cmd: &str) -> ExecutionRequest {
    let mut parameters = JsonMap::new();
    parameters.insert("cmd".into(), json!(cmd));
    ExecutionRequest {
        action_ref: "core.local".into(),
        parameters,
        ..Default::default()
    }
}

async fn bench_local() -> anyhow::Result<()> {
    let h = Harness::start(false).await?;
    let (rate, notes) = throughput(&h, LOCAL_EXECUTIONS, |_| local_request("true")).await?;
    row(
        "6",
        "core.local cmd=true executions, requested → succeeded, end to end",
        rate,
        "executions/s",
        Some(Target::AtLeast(600.0)),
        &notes,
    );
    h.stop().await;
    Ok(())
}

/// Median time of `python -c pass`, and the interpreter it resolves to.
fn interpreter_start(python: &str) -> (f64, String) {
    let exe = std::process::Command::new(python)
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let mut times = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        if std::process::Command::new(python)
            .args(["-c", "pass"])
            .status()
            .is_ok()
        {
            times.push(t.elapsed());
        }
    }
    (quantile(&sorted_ms(times), 0.5), exe)
}

/// `examples.hello_python` run one at a time with `python` as the interpreter (`None`: the
/// configuration's default): sorted round trips in ms, and the first failure.
async fn python_round_trips(python: Option<&str>) -> anyhow::Result<(Vec<f64>, Option<String>)> {
    let h = Harness::start_with(false, &["all"], python).await?;
    let mut done = completions(h.ctx()).await?;
    let mut parameters = JsonMap::new();
    parameters.insert("name".into(), json!("bench"));
    let mut times = Vec::with_capacity(PYTHON_RUNS);
    let mut failure = None;
    for run in 0..=PYTHON_RUNS {
        let req = ExecutionRequest {
            action_ref: "examples.hello_python".into(),
            parameters: parameters.clone(),
            ..Default::default()
        };
        let t = Instant::now();
        let exec = executions::request(h.ctx(), req).await?;
        let Some(d) = wait_for(&mut done, &exec.id, Duration::from_secs(30)).await else {
            failure.get_or_insert(format!("{} did not complete in 30 s", exec.id));
            continue;
        };
        if d.status != "succeeded" && failure.is_none() {
            let e = repo::<Execution>(&*h.ctx().store).get(&exec.id).await?;
            let result = e.and_then(|e| e.result).unwrap_or(Value::Null).to_string();
            failure = Some(format!(
                "{}: {}",
                d.status,
                result.chars().take(300).collect::<String>()
            ));
        }
        if run > 0 {
            times.push(d.at - t); // run 0 unpacks the shim and warms the page cache
        }
    }
    h.stop().await;
    Ok((sorted_ms(times), failure))
}

async fn bench_python() -> anyhow::Result<()> {
    let mut variants = vec![("7", None, "python3")];
    // A system interpreter, when there is one: shows the runner's own cost apart from a slow
    // interpreter start (a pyenv shim, site-packages `.pth` hooks).
    if Path::new("/usr/bin/python3").exists() {
        variants.push(("7b", Some("/usr/bin/python3"), "/usr/bin/python3"));
    }
    for (id, python, name) in variants {
        let (ms, failure) = python_round_trips(python).await?;
        let (start_ms, exe) = interpreter_start(name);
        row(
            id,
            &format!("python-script round trip (`examples.hello_python`), request → completed, median; interpreter `{name}`"),
            quantile(&ms, 0.5),
            "ms per execution",
            Some(Target::AtMost(100.0)),
            &format!(
                "{} sequential runs after 1 warm-up; min {:.1} ms, max {:.1} ms; `{name}` is {exe}, `{name} -c pass` alone takes {start_ms:.0} ms{}",
                ms.len(),
                ms.first().copied().unwrap_or(f64::NAN),
                ms.last().copied().unwrap_or(f64::NAN),
                failure.map(|f| format!("; NOT succeeded: {f}")).unwrap_or_default()
            ),
        );
    }
    Ok(())
}

/// A store that counts and times the calls made through it (the breakdown's view of how many
/// store round trips each stage makes).
struct CountingStore {
    inner: Arc<dyn Store>,
    calls: AtomicU64,
    nanos: AtomicU64,
}

impl CountingStore {
    fn note(&self, since: Instant) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.nanos
            .fetch_add(since.elapsed().as_nanos() as u64, Ordering::Relaxed);
    }

    /// (calls, time in them) since the last take.
    fn take(&self) -> (u64, Duration) {
        (
            self.calls.swap(0, Ordering::Relaxed),
            Duration::from_nanos(self.nanos.swap(0, Ordering::Relaxed)),
        )
    }
}

#[async_trait::async_trait]
impl Store for CountingStore {
    async fn get(
        &self,
        collection: Collection,
        id: &str,
    ) -> st2_core::store::Result<Option<Value>> {
        let t = Instant::now();
        let r = self.inner.get(collection, id).await;
        self.note(t);
        r
    }

    async fn find(
        &self,
        collection: Collection,
        query: &Query,
    ) -> st2_core::store::Result<Vec<Value>> {
        let t = Instant::now();
        let r = self.inner.find(collection, query).await;
        self.note(t);
        r
    }

    async fn count(&self, collection: Collection, query: &Query) -> st2_core::store::Result<u64> {
        let t = Instant::now();
        let r = self.inner.count(collection, query).await;
        self.note(t);
        r
    }

    async fn apply(&self, writes: Vec<Write>) -> st2_core::store::Result<()> {
        let t = Instant::now();
        let r = self.inner.apply(writes).await;
        self.note(t);
        r
    }

    async fn append(
        &self,
        collection: Collection,
        id: &str,
        values: JsonMap,
    ) -> st2_core::store::Result<bool> {
        let t = Instant::now();
        let r = self.inner.append(collection, id, values).await;
        self.note(t);
        r
    }

    async fn insert_new(
        &self,
        collection: Collection,
        doc: Value,
    ) -> st2_core::store::Result<bool> {
        let t = Instant::now();
        let r = self.inner.insert_new(collection, doc).await;
        self.note(t);
        r
    }

    async fn compare_and_set(
        &self,
        collection: Collection,
        id: &str,
        field: &str,
        expected: &[Value],
        patch: JsonMap,
    ) -> st2_core::store::Result<Option<Value>> {
        let t = Instant::now();
        let r = self
            .inner
            .compare_and_set(collection, id, field, expected, patch)
            .await;
        self.note(t);
        r
    }

    async fn delete(&self, collection: Collection, id: &str) -> st2_core::store::Result<bool> {
        let t = Instant::now();
        let r = self.inner.delete(collection, id).await;
        self.note(t);
        r
    }
}

/// One stage of the breakdown: median and mean µs per call, store calls and store µs per call.
struct Stage {
    median_us: f64,
    mean_us: f64,
    store_calls: f64,
    store_us: f64,
}

/// Times `n` sequential calls of `f(i)`, counting the store calls they make.
async fn stage<F, Fut>(counter: &CountingStore, n: usize, mut f: F) -> anyhow::Result<Stage>
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let n = n.max(1);
    counter.take();
    let mut times = Vec::with_capacity(n);
    for i in 0..n {
        let t = Instant::now();
        f(i).await?;
        times.push(t.elapsed());
    }
    let (calls, in_store) = counter.take();
    let mean_us = times.iter().map(Duration::as_secs_f64).sum::<f64>() * 1e6 / n as f64;
    let sorted = sorted_ms(times);
    Ok(Stage {
        median_us: quantile(&sorted, 0.5) * 1e3,
        mean_us,
        store_calls: calls as f64 / n as f64,
        store_us: in_store.as_secs_f64() * 1e6 / n as f64,
    })
}

/// The pipeline's stages one at a time, on a platform running no roles (nothing consumes the
/// bus, so each figure is one stage's own cost: its store round trips, JSON work and
/// publishes), in the order a webhook → core.noop event goes through them. The stages get a
/// copy of the platform's context whose store counts calls.
async fn bench_breakdown() -> anyhow::Result<()> {
    use st2_core::services::{
        dispatch, notifier::Notifier, rules_engine::RulesEngine, scheduler::Scheduler,
        worker::Worker,
    };
    const N: usize = 1_000;
    let h = Harness::start_roles(false, &[]).await?;
    let counter = Arc::new(CountingStore {
        inner: h.ctx().store.clone(),
        calls: AtomicU64::new(0),
        nanos: AtomicU64::new(0),
    });
    let mut ctx = h.ctx().clone();
    ctx.store = counter.clone();
    let store = ctx.store.clone();
    let state = AppState::new(store.clone());
    let mut rows: Vec<(&str, String, Stage)> = Vec::new();

    let st = stage(&counter, N, |_| async {
        tokio::task::spawn_blocking(|| std::hint::black_box(1)).await?;
        Ok(())
    })
    .await?;
    rows.push(("0", "`tokio::task::spawn_blocking` round trip doing nothing (how the embedded store runs every call)".into(), st));
    let st = stage(&counter, N, |_| async {
        st2_core::auth::user_for_token(&*store, &h.token).await?;
        Ok(())
    })
    .await?;
    rows.push((
        "a",
        "API auth `auth::user_for_token` (every API call)".into(),
        st,
    ));
    let st = stage(&counter, N, |_| async {
        st2_api::webhooks::find_webhook(&state, "bench").await?;
        Ok(())
    })
    .await?;
    rows.push((
        "b",
        "`webhooks::find_webhook` (every webhook POST)".into(),
        st,
    ));
    let trigger = st2_api::webhooks::find_webhook(&state, "bench")
        .await?
        .context("bench webhook trigger")?;

    let instances = Arc::new(Mutex::new(Vec::with_capacity(N)));
    let st = stage(&counter, N, |i| {
        let (ctx, trigger_ref, instances) = (ctx.clone(), trigger.trigger_ref.clone(), Arc::clone(&instances));
        async move {
            let payload = json!({"headers": {"Content-Type": "application/json"}, "headers_lower": {"content-type": "application/json"}, "body": {"seq": i, "sev": "critical"}});
            let ti = dispatch::dispatch(&ctx, &trigger_ref, payload, None).await?;
            instances.lock().unwrap_or_else(|p| p.into_inner()).push(ti);
            Ok(())
        }
    })
    .await?;
    rows.push(("c", "`dispatch::dispatch` of a webhook payload (resolve trigger, validate, store TI + trace, publish)".into(), st));

    // The rules engine's work per dispatched instance, as its consumer calls it.
    let mut msgs = Vec::with_capacity(N);
    let dispatched = std::mem::take(&mut *instances.lock().unwrap_or_else(|p| p.into_inner()));
    for ti in &dispatched {
        let q = Query::all().eq("trace_tag", format!("trigger_instance-{}", ti.id));
        let trace = h
            .ctx()
            .store
            .find(Collection::Traces, &q)
            .await?
            .into_iter()
            .next()
            .and_then(|t| t.get("id").cloned());
        msgs.push(json!({"trigger_instance": ti, "trace_id": trace}));
    }
    let engine = RulesEngine::new(ctx.clone()).await?;
    let st = stage(&counter, msgs.len(), |i| {
        let (engine, msg) = (Arc::clone(&engine), &msgs[i]);
        async move {
            engine.process(msg).await?;
            Ok(())
        }
    })
    .await?;
    rows.push(("d", "rules engine `process`, instance matching the rule (claim, match, render, `executions::request`, enforcement, trace, done)".into(), st));

    let requested: Vec<String> = h
        .ctx()
        .store
        .find(
            Collection::Executions,
            &Query::all().eq("status", "requested"),
        )
        .await?
        .iter()
        .filter_map(|e| e.get("id").and_then(Value::as_str).map(String::from))
        .collect();
    let doc_bytes = match requested.first() {
        Some(id) => h
            .ctx()
            .store
            .get(Collection::Executions, id)
            .await?
            .map(|d| d.to_string().len())
            .unwrap_or(0),
        None => 0,
    };
    let st = stage(&counter, N, |_| async {
        executions::request(
            &ctx,
            ExecutionRequest {
                action_ref: "core.noop".into(),
                ..Default::default()
            },
        )
        .await?;
        Ok(())
    })
    .await?;
    rows.push(("e", "`executions::request` core.noop (part of d; action, runner, config reads, render, store, publish)".into(), st));
    let id_at = |i: usize| requested.get(i).cloned().unwrap_or_default();
    let st = stage(&counter, requested.len(), |i| {
        let (store, id) = (store.clone(), id_at(i));
        async move {
            store.get(Collection::Executions, &id).await?;
            Ok(())
        }
    })
    .await?;
    rows.push((
        "f",
        format!("store `get` of one execution ({doc_bytes} bytes of JSON)"),
        st,
    ));
    let st = stage(&counter, requested.len(), |i| {
        let (store, id) = (store.clone(), id_at(i));
        async move {
            let mut patch = JsonMap::new();
            patch.insert("status".into(), json!("requested"));
            store
                .compare_and_set(
                    Collection::Executions,
                    &id,
                    "status",
                    &[json!("requested")],
                    patch,
                )
                .await?;
            Ok(())
        }
    })
    .await?;
    rows.push(("g", "store `compare_and_set` on one execution".into(), st));

    let scheduler = Scheduler::new(ctx.clone());
    let st = stage(&counter, requested.len(), |i| {
        let (scheduler, id) = (Arc::clone(&scheduler), id_at(i));
        async move {
            scheduler.schedule(&id).await?;
            Ok(())
        }
    })
    .await?;
    rows.push((
        "h",
        "scheduler `schedule` (read, policies, transition → scheduled)".into(),
        st,
    ));
    let worker = Worker::new(ctx.clone(), 64);
    let st = stage(&counter, requested.len(), |i| {
        let (worker, id) = (Arc::clone(&worker), id_at(i));
        async move {
            worker.execute(&id).await?;
            Ok(())
        }
    })
    .await?;
    rows.push((
        "i",
        "worker `execute` core.noop (→ running, reads, render, run, → succeeded)".into(),
        st,
    ));
    let notifier = Notifier::new(ctx.clone());
    let mut finished = Vec::with_capacity(requested.len());
    for id in &requested {
        if let Some(e) = repo::<Execution>(&*h.ctx().store).get(id).await? {
            finished.push(e);
        }
    }
    let st = stage(&counter, finished.len(), |i| {
        let (notifier, exec) = (Arc::clone(&notifier), finished.get(i).cloned());
        async move {
            if let Some(exec) = exec {
                notifier.completed(&exec).await?;
            }
            Ok(())
        }
    })
    .await?;
    rows.push((
        "j",
        "notifier `completed` (claim `notified`, dispatch core.st2.generic.actiontrigger)".into(),
        st,
    ));
    let action_tis: Vec<Value> = h
        .ctx()
        .store
        .find(
            Collection::TriggerInstances,
            &Query::all()
                .eq("trigger", "core.st2.generic.actiontrigger")
                .eq("status", "pending"),
        )
        .await?;
    let st = stage(&counter, action_tis.len(), |i| {
        let (engine, ti) = (
            Arc::clone(&engine),
            action_tis.get(i).cloned().unwrap_or(Value::Null),
        );
        async move {
            if !ti.is_null() {
                engine.process(&json!({"trigger_instance": ti})).await?;
            }
            Ok(())
        }
    })
    .await?;
    rows.push((
        "k",
        "rules engine `process`, action trigger matching no rule (claim, match, done)".into(),
        st,
    ));

    let in_event = |id: &str| matches!(id, "a" | "b" | "c" | "d" | "h" | "i" | "j" | "k");
    let (mut total, mut calls, mut store_us) = (0.0, 0.0, 0.0);
    for (id, what, st) in &rows {
        if in_event(id) {
            total += st.median_us;
            calls += st.store_calls;
            store_us += st.store_us;
        }
        row(
            &format!("B{id}"),
            what,
            st.median_us,
            "µs/call (median)",
            None,
            &format!(
                "mean {:.0} µs; {:.1} store calls/call taking {:.0} µs ({:.0} % of the mean)",
                st.mean_us,
                st.store_calls,
                st.store_us,
                100.0 * st.store_us / st.mean_us
            ),
        );
    }
    row(
        "B",
        "one webhook → core.noop event, sum of its stages (a b c d h i j k), one at a time",
        total,
        "µs/event",
        None,
        &format!(
            "{calls:.0} store calls taking {store_us:.0} µs (mean); {N} calls per stage, no roles running (nothing consumes the bus); ceiling {:.0} events/s while stages share one store connection",
            1e6 / store_us
        ),
    );
    h.stop().await;
    Ok(())
}

async fn bench_memory() -> anyhow::Result<()> {
    let h = Harness::start(true).await?;
    // As `st2d` does once started: what registration freed goes back to the system.
    st2_api::memory::release_freed();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle = proc_status_mib("VmRSS");
    let hwm_start = proc_status_mib("VmHWM");
    row(
        "8",
        "RSS idle: platform (all roles) + API listening, bundled packs + bench pack registered",
        idle,
        "MB (MiB)",
        Some(Target::AtMost(40.0)),
        &format!("VmRSS of this process 1 s after `Platform::start` (fresh process, embedded store); VmHWM so far {hwm_start:.1} MiB (registration peak)"),
    );
    let mut done = completions(h.ctx()).await?;
    let peak = Arc::new(Mutex::new(0.0f64));
    let stop = Arc::new(AtomicUsize::new(0));
    let sampler = {
        let (peak, stop) = (Arc::clone(&peak), Arc::clone(&stop));
        tokio::spawn(async move {
            while stop.load(Ordering::Relaxed) == 0 {
                let rss = proc_status_mib("VmRSS");
                {
                    let mut p = peak.lock().unwrap_or_else(|e| e.into_inner());
                    if rss > *p {
                        *p = rss;
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let start = Instant::now();
    let (accepted, err, requested_at) =
        request_many(h.ctx(), MEMORY_EXECUTIONS, REQUESTERS, |_| {
            local_request("sleep 2")
        })
        .await;
    tokio::time::sleep(MEMORY_SAMPLE_FOR.saturating_sub(requested_at - start)).await;
    stop.store(1, Ordering::Relaxed);
    let _ = sampler.await;
    let early = collect(&h, &mut done, accepted, Duration::from_millis(1)).await;
    let peak_rss = *peak.lock().unwrap_or_else(|e| e.into_inner());
    row(
        "8b",
        "RSS with 1,000 `core.local cmd=\"sleep 2\"` executions in flight (requested/scheduled/running; 64 run at once)",
        peak_rss,
        "MB (MiB)",
        Some(Target::AtMost(150.0)),
        &format!(
            "peak VmRSS sampled every 20 ms over {:.0} s after requesting {accepted} (requested in {:.2} s{}); {} had completed by then; VmHWM {:.1} MiB",
            MEMORY_SAMPLE_FOR.as_secs_f64(),
            (requested_at - start).as_secs_f64(),
            err.map(|e| format!(", first refusal: {e}")).unwrap_or_default(),
            early.len(),
            proc_status_mib("VmHWM"),
        ),
    );
    // Tidy up: cancel what is left, so no `sleep` outlives the run for long.
    let left: Vec<Execution> = repo::<Execution>(&*h.ctx().store)
        .find(
            &Query::all().is_in(
                "status",
                ["requested", "scheduled", "delayed", "running"]
                    .iter()
                    .map(|s| json!(s))
                    .collect(),
            ),
        )
        .await?;
    for e in &left {
        let _ = executions::cancel(h.ctx(), &e.id).await;
    }
    let _ = collect(
        &h,
        &mut done,
        accepted.saturating_sub(early.len()),
        Duration::from_secs(20),
    )
    .await;
    h.stop().await;
    Ok(())
}

/// Row 8c: the resident size of a real `st2d` (all roles, API listening, bundled packs
/// registered into a fresh data dir), 1 s after it said it listens. `st2d` is taken from
/// `ST2D_BIN` or beside this binary (`cargo build --release -p st2-api --bin st2d`).
fn st2d_idle_rss() -> anyhow::Result<()> {
    use std::io::BufRead as _;
    let st2d = match std::env::var("ST2D_BIN") {
        Ok(p) if !p.is_empty() => std::path::PathBuf::from(p),
        _ => std::env::current_exe()?.with_file_name("st2d"),
    };
    let what = "RSS idle of an `st2d` process: all roles, API listening, bundled packs registered";
    if !st2d.is_file() {
        row("8c", what, f64::NAN, "MB (MiB)", Some(Target::AtMost(40.0)), &format!(
            "not measured: no st2d at {} (build it with `cargo build --release -p st2-api --bin st2d`, or set ST2D_BIN)",
            st2d.display()
        ));
        return Ok(());
    }
    let data = tempfile::tempdir()?;
    let mut child = std::process::Command::new(&st2d)
        .arg("--data-dir")
        .arg(data.path())
        .args(["--bind", "127.0.0.1:0"])
        .env("RUST_LOG", "warn")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start {}", st2d.display()))?;
    let pid = child.id();
    let stderr = child.stderr.take().context("st2d stderr")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if line.contains("listening on") {
                let _ = tx.send(());
            }
        }
    });
    let outcome = rx.recv_timeout(Duration::from_secs(60));
    let started = Instant::now();
    let status = |field: &str| status_mib_of(&pid.to_string(), field);
    if outcome.is_ok() {
        std::thread::sleep(Duration::from_secs(1).saturating_sub(started.elapsed()));
        row("8c", what, status("VmRSS"), "MB (MiB)", Some(Target::AtMost(40.0)), &format!(
            "VmRSS of {} 1 s after it listened (fresh data dir): anonymous {:.1} MiB, file-backed (its code and libraries) {:.1} MiB; VmHWM {:.1} MiB",
            st2d.display(),
            status("RssAnon"),
            status("RssFile"),
            status("VmHWM"),
        ));
    }
    let _ = child.kill();
    let _ = child.wait();
    if outcome.is_err() {
        bail!("{} did not start listening within 60 s", st2d.display());
    }
    Ok(())
}

/// Runs the memory scenario in a fresh process (this binary, `memory --child`), then row 8c.
fn memory_in_child() -> anyhow::Result<()> {
    let exe = std::env::current_exe()?;
    let mut child = std::process::Command::new(exe)
        .args(["memory", "--child"])
        .spawn()?;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(status) = child.try_wait()? {
            if !status.success() {
                bail!("memory child exited with {status}");
            }
            return st2d_idle_rss();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            bail!("memory child took longer than 120 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let child = args.iter().any(|a| a == "--child");
    let mut selected: Vec<&str> = args
        .iter()
        .filter(|a| !a.starts_with("--"))
        .map(String::as_str)
        .collect();
    for s in &selected {
        if !SCENARIOS.contains(s) {
            bail!("unknown scenario {s:?} (known: {})", SCENARIOS.join(", "));
        }
    }
    if selected.is_empty() {
        selected = SCENARIOS.to_vec();
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    if !child {
        println!(
            "bench-pipeline: {} CPUs, release={}",
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(0),
            !cfg!(debug_assertions)
        );
        println!();
        header();
    }
    let capped =
        |s: &str, f: std::pin::Pin<Box<dyn std::future::Future<Output = anyhow::Result<()>>>>| {
            rt.block_on(async {
                match tokio::time::timeout(SCENARIO_CAP, f).await {
                    Ok(r) => r,
                    Err(_) => bail!("{s} did not finish in {} s", SCENARIO_CAP.as_secs()),
                }
            })
        };
    let run_start = cpu_ticks();
    for s in selected {
        if !child {
            progress(format!("scenario {s}"));
        }
        let scenario_start = cpu_ticks();
        let result = match s {
            "rules" => bench_rules(),
            "render" => bench_render(),
            "memory" if !child => memory_in_child(),
            "memory" => capped(s, Box::pin(bench_memory())),
            "breakdown" => capped(s, Box::pin(bench_breakdown())),
            "webhook" => capped(s, Box::pin(bench_webhook())),
            "latency" => capped(s, Box::pin(bench_latency())),
            "noop" => capped(s, Box::pin(bench_noop())),
            "local" => capped(s, Box::pin(bench_local())),
            "python" => capped(s, Box::pin(bench_python())),
            _ => unreachable!("checked above"),
        };
        if let Err(e) = result {
            println!(
                "| {s} | scenario failed: {} | | | | | |",
                format!("{e:#}").replace('|', "/")
            );
        }
        if !child {
            progress(format!(
                "scenario {s} done; CPU steal during it {:.1} %",
                steal_percent(scenario_start, cpu_ticks())
            ));
        }
    }
    if !child {
        println!();
        println!(
            "CPU steal (time the hypervisor gave to other guests) during the run: {:.1} %; per scenario on stderr.",
            steal_percent(run_start, cpu_ticks())
        );
    }
    Ok(())
}
