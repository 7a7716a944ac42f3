//! Benchmark: trigger preprocessing and the built-in file tail sensor, in one process (the
//! shared test harness: embedded store in a temporary data dir, in-process bus, every role).
//!
//! - dispatch cost of one source dispatching sequentially to a trigger type without
//!   preprocessing, with a stateful `dedup` step, and with three stateless match/reject/
//!   criteria steps (fixture pack `preproc`; the last one's rule runs `core.noop`);
//! - `linux.file_watch.line` throughput: lines appended at once → trigger instances stored (the
//!   rule's criteria never hold, so no execution competes for the CPU);
//! - Python sensor dispatch throughput: the fixture pack `pybench`'s `BurstSensor` dispatches
//!   [`BURST`] triggers as fast as it can through the sensor shim; first → last instance
//!   stored; and the resident memory of a running Python sensor process (from the `pid` of its
//!   `process_spawn` trigger).
//!
//! Usage: `cargo run --release -p st2-tests --bin bench-sensors`. Prints one markdown row per
//! figure; nothing is asserted.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::io::Write as _;
use std::time::{Duration, Instant};

use serde_json::json;

use st2_core::model::TriggerInstance;
use st2_core::services::dispatch;
use st2_core::store::{repo, Query};
use st2_tests::api::Harness;

/// Dispatches per preprocessing scenario.
const DISPATCHES: usize = 2_000;
/// Lines appended for the file tail scenario.
const LINES: usize = 5_000;
/// Triggers dispatched by the Python sensor.
const BURST: usize = 20_000;

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let h = Harness::start_with(&["preproc", "pybench"], |_| {}).await;
    let ctx = h.platform.ctx.clone();
    println!("| figure | value |\n|---|---|");
    for (label, trigger) in [
        ("dispatch, no preprocessing", "preproc.plain"),
        ("dispatch, dedup step (store read + write)", "preproc.dedup"),
        (
            "dispatch, 3 regex/criteria steps (all pass)",
            "preproc.filtered",
        ),
    ] {
        let start = Instant::now();
        for i in 0..DISPATCHES {
            let payload =
                json!({"id": format!("evt-{i}"), "level": "error", "source": "db", "count": 5});
            dispatch::dispatch(&ctx, trigger, payload, None).await?;
        }
        let per = start.elapsed() / DISPATCHES as u32;
        println!(
            "| {label} | {:.0} µs each, {:.0}/s (one source, {DISPATCHES} sequential) |",
            per.as_secs_f64() * 1e6,
            1.0 / per.as_secs_f64()
        );
    }

    let log = h.dir.path().join("bench.log");
    std::fs::write(&log, "")?;
    let a = h
        .post(
            "/api/v1/rules",
            json!({"name": "bench_tail", "pack": "examples", "enabled": true,
                   "trigger": {"type": "linux.file_watch.line", "parameters": {"file_path": log.to_string_lossy()}},
                   "criteria": {"trigger.line": {"type": "equals", "pattern": "never"}},
                   "action": {"ref": "core.noop"}}),
        )
        .await;
    anyhow::ensure!(a.status.as_u16() == 201, "rule: {:?}", a.body);
    let trigger = a.body["trigger"]["ref"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let count = |t: String| {
        let store = ctx.store.clone();
        async move {
            repo::<TriggerInstance>(&*store)
                .count(&Query::all().eq("trigger", t.as_str()))
                .await
                .unwrap_or(0) as usize
        }
    };
    // Wait until the watch runs (a probe line arrives).
    let deadline = Instant::now() + Duration::from_secs(30);
    while count(trigger.clone()).await == 0 {
        anyhow::ensure!(Instant::now() < deadline, "the file watch did not start");
        std::fs::OpenOptions::new()
            .append(true)
            .open(&log)?
            .write_all(b"probe\n")?;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let base = count(trigger.clone()).await;
    let text: String = (0..LINES).map(|i| format!("line {i}\n")).collect();
    let start = Instant::now();
    std::fs::OpenOptions::new()
        .append(true)
        .open(&log)?
        .write_all(text.as_bytes())?;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let n = count(trigger.clone()).await - base;
        if n >= LINES {
            break;
        }
        if Instant::now() > deadline {
            println!("| file tail | stalled at {n}/{LINES} lines |");
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "| file tail → stored trigger instances | {:.0} lines/s ({LINES} lines in {:.2} s, poll 200 ms) |",
        LINES as f64 / secs,
        secs
    );
    python_sensor(&h).await
}

/// The burst of the Python sensor, started by saving its pack config (the sensor restarts with
/// it): first → last instance stored.
async fn python_sensor(h: &Harness) -> anyhow::Result<()> {
    let ctx = &h.platform.ctx;
    let saved = h
        .put("/api/v1/configs/pybench", json!({"burst": BURST}))
        .await;
    anyhow::ensure!(saved.status.is_success(), "config: {:?}", saved.body);
    let count = || async {
        repo::<TriggerInstance>(&*ctx.store)
            .count(&Query::all().eq("trigger", "pybench.event"))
            .await
            .unwrap_or(0) as usize
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut first: Option<(Instant, usize)> = None;
    loop {
        let n = count().await;
        if n > 0 && first.is_none() {
            first = Some((Instant::now(), n));
        }
        if n >= BURST {
            break;
        }
        if Instant::now() > deadline {
            println!("| python sensor dispatch | stalled at {n}/{BURST} |");
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (t0, n0) = first.unwrap_or((Instant::now(), 0));
    let secs = t0.elapsed().as_secs_f64().max(1e-9);
    println!(
        "| python sensor → stored trigger instances | {:.0} triggers/s ({} in {:.2} s, one sensor) |",
        (BURST - n0) as f64 / secs,
        BURST - n0,
        secs
    );
    let spawns = repo::<TriggerInstance>(&*ctx.store)
        .find(&Query::all().eq("trigger", "core.st2.sensor.process_spawn"))
        .await?;
    for s in spawns {
        let Some(pid) = s.payload["pid"].as_i64() else {
            continue;
        };
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        if let Some(kb) = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        {
            println!(
                "| memory of a running Python sensor ({}) | {:.1} MiB RSS |",
                s.payload["id"].as_str().unwrap_or_default(),
                kb / 1024.0
            );
        }
    }
    Ok(())
}
