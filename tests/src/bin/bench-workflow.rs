//! Benchmark: the Orquesta workflow engine — the pure state machine per task transition (100-
//! and 1,000-task sequences, alone and with each event's state change serialised as the service
//! persists it), with-items in the engine alone (1,000 items at concurrency 10; 10,000 items),
//! and end to end in one process (a 10,000-item with-items of `core.noop` at concurrency 100
//! through the real API, store, bus, scheduler and action runner), with the memory growth per
//! 1,000 items. Prints one markdown row per figure with the target it is held against; nothing
//! is asserted (a figure that misses its target says `no`).
//!
//! Usage: `cargo run --release -p st2-tests --bin bench-workflow [-- SCENARIO...]`, scenarios
//! among `machine items e2e` (default: all), and `--items N` for the end-to-end item count
//! (default 10,000). Progress goes to stderr, the table to stdout.

/// mimalloc, as the other benchmarks and the server use.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};

use st2_core::model::ExecutionStatus;
use st2_core::store::repo;
use st2_core::workflow::machine::{ActionStatus, Command, Event, Workflow, WorkflowStatus};
use st2_core::workflow::spec::WorkflowSpec;
use st2_tests::api::Harness;

/// Items of the end-to-end run (default), its concurrency and how long it may take before it
/// is reported as stalled.
const E2E_ITEMS: usize = 10_000;
const E2E_CONCURRENCY: usize = 100;
const E2E_TIME_CAP: Duration = Duration::from_secs(300);

/// How a figure compares with its target.
enum Target {
    AtMost(f64),
}

fn row(what: &str, figure: f64, unit: &str, target: Option<Target>, notes: &str) {
    let (target_text, met) = match target {
        Some(Target::AtMost(t)) => (format!("≤ {t}"), if figure <= t { "yes" } else { "no" }),
        None => ("—".to_string(), "—"),
    };
    println!("| {what} | {figure:.3} | {unit} | {target_text} | {met} | {notes} |");
}

fn progress(what: impl std::fmt::Display) {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    let t = START.get_or_init(Instant::now).elapsed().as_secs_f64();
    eprintln!("bench-workflow [{t:7.2} s] {what}");
}

/// A sequence of `n` tasks, each running `core.noop` and going on to the next.
fn sequence(n: usize) -> Arc<WorkflowSpec> {
    let mut text = String::from("version: 1.0\ntasks:\n");
    for i in 0..n {
        text.push_str(&format!("  t{i}:\n    action: core.noop\n"));
        if i + 1 < n {
            text.push_str(&format!(
                "    next:\n      - when: <% succeeded() %>\n        publish: [{{last: {i}}}]\n        do: t{}\n",
                i + 1
            ));
        }
    }
    Arc::new(WorkflowSpec::parse(&text).expect("generated workflow is valid"))
}

/// A with-items of `core.noop` over `n` items at `concurrency`.
fn items_spec(concurrency: usize) -> Arc<WorkflowSpec> {
    let text = format!(
        "version: 1.0\ninput: [xs]\ntasks:\n  each:\n    with:\n      items: x in <% ctx().xs %>\n      concurrency: {concurrency}\n    action: core.noop\n    next:\n      - publish: [{{n: <% len(result()) %>}}]\noutput:\n  - n: <% ctx().n %>\n"
    );
    Arc::new(WorkflowSpec::parse(&text).expect("generated workflow is valid"))
}

/// Runs `wf` to the end, completing actions in the order they started; `persist` serialises
/// each event's state change as the service writes it. Returns (events, bytes persisted).
fn drive(mut wf: Workflow, first: Vec<Command>, persist: bool) -> (usize, usize, WorkflowStatus) {
    let mut in_flight = std::collections::VecDeque::new();
    let mut cmds = first;
    let (mut events, mut bytes) = (0, 0);
    loop {
        let mut status = None;
        for c in cmds.drain(..) {
            match c {
                Command::RunAction { instance, item, .. } => in_flight.push_back((instance, item)),
                Command::Finished { status: s, .. } => status = Some(s),
                _ => {}
            }
        }
        if let Some(s) = status {
            return (events, bytes, s);
        }
        let Some((instance, item)) = in_flight.pop_front() else {
            return (events, bytes, wf.state.header.status);
        };
        cmds = wf.apply(Event::ActionCompleted {
            instance,
            item,
            status: ActionStatus::Succeeded,
            result: json!({}),
        });
        events += 1;
        if persist {
            let delta = wf.delta();
            bytes += serde_json::to_vec(&delta).map(|b| b.len()).unwrap_or(0);
        }
    }
}

fn machine() {
    for (n, reps) in [(100usize, 50usize), (1_000, 5)] {
        for persist in [false, true] {
            let spec = sequence(n);
            let start = Instant::now();
            let mut transitions = 0;
            for _ in 0..reps {
                let (wf, cmds) = Workflow::new(spec.clone(), &Map::new());
                let (events, _, status) = drive(wf, cmds, persist);
                assert_eq!(status, WorkflowStatus::Succeeded, "sequence completes");
                transitions += events;
            }
            let per = start.elapsed().as_secs_f64() * 1e6 / transitions as f64;
            let (what, target) = if persist {
                ("with the state change serialised per event", 1000.0)
            } else {
                ("pure state machine", 100.0)
            };
            row(
                &format!("{what}: {n}-task sequence"),
                per,
                "µs / transition",
                Some(Target::AtMost(target)),
                &format!("{reps} runs; publish + when per task"),
            );
            progress(format!("machine {n} persist={persist}: {per:.1} µs"));
        }
    }
}

fn items() {
    let mut per_item = Vec::new();
    for (n, concurrency) in [(1_000usize, 10usize), (10_000, 10)] {
        let input: Map<String, Value> = json!({"xs": (0..n).collect::<Vec<_>>()})
            .as_object()
            .cloned()
            .unwrap_or_default();
        let start = Instant::now();
        let (wf, cmds) = Workflow::new(items_spec(concurrency), &input);
        let (events, bytes, status) = drive(wf, cmds, true);
        let elapsed = start.elapsed().as_secs_f64();
        assert_eq!(status, WorkflowStatus::Succeeded, "with-items completes");
        per_item.push(elapsed / n as f64);
        row(
            &format!("with-items, engine only: {n} items at concurrency {concurrency}"),
            elapsed,
            "s",
            (n == 1_000).then_some(Target::AtMost(1.0)),
            &format!(
                "{events} events; {:.0} bytes persisted per item",
                bytes as f64 / n as f64
            ),
        );
        progress(format!("items {n}: {elapsed:.3} s"));
    }
    row(
        "with-items per-item cost, 10,000 vs 1,000 items",
        per_item[1] / per_item[0],
        "ratio",
        Some(Target::AtMost(2.0)),
        "engine only, state change serialised per event",
    );
}

/// A field of `/proc/self/status` in MiB.
fn status_mib(field: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field) && l[field.len()..].starts_with(':'))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

async fn e2e(items: usize) {
    let h = Harness::start_with(&["wf"], |_| {}).await;
    let rss_before = status_mib("VmRSS");
    let start = Instant::now();
    let a = h
        .post(
            "/api/v1/executions",
            json!({"action": "wf.items", "parameters": {"count": items, "concurrency": E2E_CONCURRENCY}}),
        )
        .await;
    let Some(id) = a.body["id"].as_str().map(String::from) else {
        row(
            "end to end",
            f64::NAN,
            "s",
            None,
            &format!("request failed: {}", a.body),
        );
        return;
    };
    let execs = repo::<st2_core::model::Execution>(&*h.platform.ctx.store);
    let mut peak = rss_before;
    let done = loop {
        if let Ok(Some(e)) = execs.get(&id).await {
            if e.status.is_completed() {
                break Some(e);
            }
        }
        peak = peak.max(status_mib("VmRSS"));
        if start.elapsed() > E2E_TIME_CAP {
            break None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let elapsed = start.elapsed().as_secs_f64();
    let Some(done) = done else {
        row(
            &format!(
                "end to end: {items}-item with-items of core.noop at concurrency {E2E_CONCURRENCY}"
            ),
            elapsed,
            "s",
            Some(Target::AtMost(10.0)),
            "stalled: not finished within the time cap",
        );
        return;
    };
    let ok = done.status == ExecutionStatus::Succeeded;
    row(
        &format!(
            "end to end: {items}-item with-items of core.noop at concurrency {E2E_CONCURRENCY}"
        ),
        elapsed,
        "s",
        Some(Target::AtMost(10.0)),
        &format!(
            "standalone (embedded store, in-process bus), API request to workflow {}; {} children",
            done.status,
            done.children.len()
        ),
    );
    if ok {
        row(
            "memory growth per 1,000 items (end to end)",
            (peak - rss_before) / (items as f64 / 1_000.0),
            "MiB",
            None,
            &format!("peak VmRSS {peak:.1} MiB sampled every 20 ms, {rss_before:.1} MiB before"),
        );
    }
    progress(format!("e2e: {elapsed:.2} s ({})", done.status));
    let Harness { platform, dir, .. } = h;
    platform.shutdown().await;
    drop(dir);
}

fn main() -> anyhow::Result<()> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut e2e_items = E2E_ITEMS;
    if let Some(i) = args.iter().position(|a| a == "--items") {
        e2e_items = args
            .get(i + 1)
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| anyhow::anyhow!("--items takes a number"))?;
        args.drain(i..=i + 1);
    }
    let wants = |s: &str| args.is_empty() || args.iter().any(|a| a == s);
    println!("| measure | figure | unit | target | met | how / notes |");
    println!("|---|---|---|---|---|---|");
    if wants("machine") {
        machine();
    }
    if wants("items") {
        items();
    }
    if wants("e2e") {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        rt.block_on(e2e(e2e_items));
    }
    Ok(())
}
