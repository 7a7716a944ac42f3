//! The `wasm` runner against real modules (WebAssembly text fixtures of
//! `tests/fixtures/wasm/`, compiled by wasmtime): the JSON round trip through stdin and
//! stdout, exit codes, the sandbox (files only when preopened, environment only as given, no
//! network), CPU limits by time, fuel and cancellation, the memory cap, clear errors for bad
//! modules, and the compiled-module cache.

#![cfg(feature = "wasm")]

mod runners_common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use st2_core::model::{Action, ExecutionStatus};
use st2_core::runners::wasm::WasmRunner;
use st2_core::runners::{
    OutputChunk, OutputStream, RunContext, RunOutcome, Runner, RunnerRegistry, RunnerSettings,
};

use runners_common::*;

/// A fixture module's absolute path.
fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("fixtures")
        .join("wasm")
        .join(name)
}

/// A `wasm` action whose entry point is `entry_point`.
fn wasm_action(entry_point: &Path) -> Action {
    let yaml = format!(
        "name: mod\nrunner_type: wasm\nentry_point: {:?}\n",
        entry_point.to_string_lossy()
    );
    let mut action: Action = serde_yaml::from_str(&yaml).expect("synthetic action");
    action.pack = "wasmtest".into();
    action.action_ref = "wasmtest.mod".into();
    action
}

/// A context running fixture `name`.
fn ctx(name: &str, runner_params: Value, action_params: Value) -> RunContext {
    let mut c = RunContext::new("5f1c0ffee0000000000000bb", wasm_action(&fixture(name)));
    c.runner_params = map(runner_params);
    c.action_params = map(action_params);
    c
}

async fn run(name: &str, runner_params: Value, action_params: Value) -> RunOutcome {
    WasmRunner::new()
        .run(ctx(name, runner_params, action_params))
        .await
}

fn error_of(out: &RunOutcome) -> &str {
    out.result["error"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn parameters_in_json_result_out() {
    let params = json!({"name": "wasm", "n": 3, "list": [1, "two"], "nested": {"ok": true}});
    let (tx, mut rx) = tokio::sync::mpsc::channel::<OutputChunk>(16);
    let mut c = ctx("echo.wat", json!({}), params.clone());
    c.output = tx;
    let out = WasmRunner::new().run(c).await;
    assert_eq!(out.status, ExecutionStatus::Succeeded, "{}", out.result);
    let r = &out.result;
    assert_eq!(r["result"], json!({"echo": params}));
    assert_eq!(r["exit_code"], 0);
    assert_eq!(r["stderr"], "echo done\n");
    assert!(r["stdout"]
        .as_str()
        .expect("stdout")
        .starts_with("{\"echo\":"));
    assert!(r.get("error").is_none(), "{r}");
    let keys: Vec<&String> = r.as_object().expect("object").keys().collect();
    assert_eq!(keys, ["stdout", "stderr", "exit_code", "result"]);
    // Live output: stdout then stderr, then the channel ends (the runner dropped its sender).
    let mut chunks = Vec::new();
    while let Some(c) = rx.recv().await {
        chunks.push(c);
    }
    assert_eq!(chunks.len(), 2, "{chunks:?}");
    assert_eq!(chunks[0].stream, OutputStream::Stdout);
    assert_eq!(chunks[1].stream, OutputStream::Stderr);
    assert_eq!(chunks[1].data, "echo done\n");
}

#[tokio::test]
async fn registry_runs_wasm_actions() {
    let reg = RunnerRegistry::standard(RunnerSettings::default());
    assert!(reg.names().any(|n| n == "wasm"));
    let out = reg.run(ctx("echo.wat", json!({}), json!({"a": 1}))).await;
    assert_eq!(out.status, ExecutionStatus::Succeeded, "{}", out.result);
    assert_eq!(out.result["result"], json!({"echo": {"a": 1}}));
}

#[tokio::test]
async fn example_pack_action_resolves_under_actions_dir() {
    let pack = repo_root().join("packs").join("examples");
    let action = load_action(&pack, "examples", "wasm_echo");
    assert_eq!(action.runner_type, "wasm");
    let mut c = RunContext::new("5f1c0ffee0000000000000bc", action);
    c.pack_dir = Some(pack);
    c.action_params = map(json!({"message": "hi"}));
    let out = WasmRunner::new().run(c).await;
    assert_eq!(out.status, ExecutionStatus::Succeeded, "{}", out.result);
    assert_eq!(
        out.result["result"],
        json!({"greeting": "Hello from WebAssembly", "parameters": {"message": "hi"}})
    );
}

#[test]
fn example_pack_loads_with_its_wasm_action() {
    let pack = repo_root().join("packs").join("examples");
    let loaded =
        st2_core::packs::load_pack(&pack, &st2_core::packs::ContentTypes::ALL).expect("loads");
    let action = loaded
        .actions
        .iter()
        .find(|a| a.name == "wasm_echo")
        .expect("examples.wasm_echo");
    assert_eq!(action.runner_type, "wasm");
    assert_eq!(action.entry_point, "wasm_echo.wat");
}

#[tokio::test]
async fn nonzero_exit_fails_and_keeps_text_output() {
    let out = run("exit_code.wat", json!({}), json!({})).await;
    assert_eq!(out.status, ExecutionStatus::Failed, "{}", out.result);
    assert_eq!(out.result["exit_code"], 3);
    assert_eq!(out.result["stdout"], "not json\n");
    assert_eq!(out.result["result"], "not json");
    assert!(
        error_of(&out).contains("exited with code 3"),
        "{}",
        out.result
    );
}

#[tokio::test]
async fn infinite_loop_times_out() {
    let started = Instant::now();
    let out = run("loop.wat", json!({"timeout": 1}), json!({})).await;
    let took = started.elapsed();
    assert_eq!(out.status, ExecutionStatus::Timeout, "{}", out.result);
    assert_eq!(out.result["exit_code"], -9);
    assert_eq!(
        error_of(&out),
        "Action failed to complete in 1 seconds",
        "{}",
        out.result
    );
    assert!(took >= Duration::from_secs(1), "stopped early: {took:?}");
    assert!(took < Duration::from_secs(10), "not stopped: {took:?}");
}

#[tokio::test]
async fn fuel_runs_out_as_timeout() {
    let out = run(
        "loop.wat",
        json!({"timeout": 30, "fuel": 100000}),
        json!({}),
    )
    .await;
    assert_eq!(out.status, ExecutionStatus::Timeout, "{}", out.result);
    assert!(error_of(&out).contains("ran out of fuel"), "{}", out.result);
}

#[tokio::test]
async fn cancel_stops_the_module() {
    let c = ctx("loop.wat", json!({"timeout": 60}), json!({}));
    let cancel = c.cancel.clone();
    let started = Instant::now();
    let task = tokio::spawn(async move { WasmRunner::new().run(c).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    cancel.cancel();
    let out = tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("stopped after cancel")
        .expect("runner task");
    assert_eq!(out.status, ExecutionStatus::Canceled, "{}", out.result);
    assert_eq!(error_of(&out), "Action was canceled");
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn memory_bomb_is_refused() {
    let out = run("memory_bomb.wat", json!({"memory_limit_mb": 8}), json!({})).await;
    assert_eq!(out.status, ExecutionStatus::Failed, "{}", out.result);
    assert!(
        error_of(&out).contains("exceeded its memory limit of 8 MiB"),
        "{}",
        out.result
    );
    // The default cap (64 MiB) holds too.
    let out = run("memory_bomb.wat", json!({}), json!({})).await;
    assert_eq!(out.status, ExecutionStatus::Failed, "{}", out.result);
    assert!(
        error_of(&out).contains("memory limit of 64 MiB"),
        "{}",
        out.result
    );
}

#[tokio::test]
async fn oversized_initial_memory_is_refused_and_allowed_when_granted() {
    let out = run("big_memory.wat", json!({}), json!({})).await;
    assert_eq!(out.status, ExecutionStatus::Failed, "{}", out.result);
    assert!(
        error_of(&out).contains("memory limit of 64 MiB"),
        "{}",
        out.result
    );
    let out = run("big_memory.wat", json!({"memory_limit_mb": 256}), json!({})).await;
    assert_eq!(out.status, ExecutionStatus::Succeeded, "{}", out.result);
}

#[tokio::test]
async fn files_only_when_preopened() {
    // No grant: the module cannot open anything.
    let out = run("read_file.wat", json!({}), json!({})).await;
    assert_eq!(out.status, ExecutionStatus::Failed, "{}", out.result);
    assert_eq!(out.result["exit_code"], 2);
    assert_eq!(out.result["stderr"], "cannot open data.json\n");

    // Granted (read-only): the file is read.
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::write(dir.path().join("data.json"), r#"{"from": "file"}"#).expect("write");
    let host = dir.path().to_string_lossy().into_owned();
    let out = run(
        "read_file.wat",
        json!({"preopened_dirs": [format!("{host}:/data")]}),
        json!({}),
    )
    .await;
    assert_eq!(out.status, ExecutionStatus::Succeeded, "{}", out.result);
    assert_eq!(out.result["result"], json!({"from": "file"}));

    // Granted a subdirectory: the file beside it stays out of reach.
    let inner = dir.path().join("inner");
    std::fs::create_dir(&inner).expect("mkdir");
    let out = run(
        "read_outside.wat",
        json!({"preopened_dirs": [format!("{}:/data", inner.display())]}),
        json!({}),
    )
    .await;
    assert_eq!(out.status, ExecutionStatus::Failed, "{}", out.result);
    assert_eq!(out.result["exit_code"], 2, "{}", out.result);
    assert_eq!(out.result["stderr"], "cannot open data.json\n");

    // A directory that does not exist is a clear error.
    let out = run(
        "read_file.wat",
        json!({"preopened_dirs": [format!("{host}/missing:/data")]}),
        json!({}),
    )
    .await;
    assert_eq!(out.status, ExecutionStatus::Failed, "{}", out.result);
    assert!(
        error_of(&out).starts_with("preopened_dirs: cannot open directory"),
        "{}",
        out.result
    );
}

#[tokio::test]
async fn environment_is_only_what_is_given() {
    let out = run(
        "environ.wat",
        json!({"env": {"GREETING": "hi there"}}),
        json!({}),
    )
    .await;
    assert_eq!(out.status, ExecutionStatus::Succeeded, "{}", out.result);
    let stdout = out.result["stdout"].as_str().expect("stdout");
    let mut vars: Vec<&str> = stdout.split('\0').filter(|v| !v.is_empty()).collect();
    vars.sort_unstable();
    assert_eq!(
        vars,
        [
            "GREETING=hi there",
            "ST2_ACTION_EXECUTION_ID=5f1c0ffee0000000000000bb",
            "ST2_ACTION_PACK_NAME=wasmtest",
        ]
    );
}

#[tokio::test]
async fn network_grants_are_refused() {
    let out = run(
        "echo.wat",
        json!({"allowed_hosts": ["example.com:443"]}),
        json!({}),
    )
    .await;
    assert_eq!(out.status, ExecutionStatus::Failed, "{}", out.result);
    assert!(
        error_of(&out).starts_with("allowed_hosts: the wasm runner grants no network access"),
        "{}",
        out.result
    );
}

#[tokio::test]
async fn bad_modules_give_clear_errors() {
    let broken = fixture("broken.wat");
    let out = run("broken.wat", json!({}), json!({})).await;
    assert_eq!(out.status, ExecutionStatus::Failed, "{}", out.result);
    let e = error_of(&out);
    assert!(
        e.starts_with(&format!("invalid WebAssembly module {}", broken.display())),
        "{e}"
    );

    let out = run("no_start.wat", json!({}), json!({})).await;
    assert_eq!(out.status, ExecutionStatus::Failed, "{}", out.result);
    assert!(
        error_of(&out).contains("no `_start` function"),
        "{}",
        out.result
    );

    let out = run("missing.wasm", json!({}), json!({})).await;
    assert_eq!(out.status, ExecutionStatus::Failed, "{}", out.result);
    assert!(
        error_of(&out).starts_with("cannot read WebAssembly module"),
        "{}",
        out.result
    );
    assert!(error_of(&out).contains("missing.wasm"), "{}", out.result);

    let dir = tempfile::tempdir().expect("tmp");
    let foreign = dir.path().join("foreign.wat");
    std::fs::write(
        &foreign,
        r#"(module (import "env" "host_secret" (func)) (func (export "_start")))"#,
    )
    .expect("write");
    let out = WasmRunner::new()
        .run(RunContext::new("x", wasm_action(&foreign)))
        .await;
    assert_eq!(out.status, ExecutionStatus::Failed, "{}", out.result);
    assert!(
        error_of(&out).contains("cannot be linked") && error_of(&out).contains("foreign.wat"),
        "{}",
        out.result
    );

    let out = WasmRunner::new()
        .run(RunContext::new("x", wasm_action(Path::new("echo.wat"))))
        .await;
    assert_eq!(out.status, ExecutionStatus::Failed, "{}", out.result);
}

#[tokio::test]
async fn compiled_modules_are_cached_until_the_file_changes() {
    let runner = WasmRunner::new();
    let timed = |label: &'static str, c: RunContext| {
        let runner = &runner;
        async move {
            let started = Instant::now();
            let out = runner.run(c).await;
            eprintln!("wasm round trip, {label}: {:?}", started.elapsed());
            out
        }
    };
    let out = timed("cold", ctx("echo.wat", json!({}), json!({"i": 0}))).await;
    assert_eq!(out.status, ExecutionStatus::Succeeded, "{}", out.result);
    assert_eq!(runner.compilations(), 1);
    for i in 1..5 {
        let out = timed("cached", ctx("echo.wat", json!({}), json!({"i": i}))).await;
        assert_eq!(out.result["result"], json!({"echo": {"i": i}}));
    }
    assert_eq!(runner.compilations(), 1, "recompiled a cached module");

    // A changed file is compiled again and its new behaviour is what runs.
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("mod.wat");
    std::fs::copy(fixture("echo.wat"), &path).expect("copy");
    let out = runner.run(RunContext::new("x", wasm_action(&path))).await;
    assert_eq!(out.status, ExecutionStatus::Succeeded, "{}", out.result);
    assert_eq!(runner.compilations(), 2);
    std::fs::copy(fixture("exit_code.wat"), &path).expect("copy");
    let out = runner.run(RunContext::new("x", wasm_action(&path))).await;
    assert_eq!(out.status, ExecutionStatus::Failed, "{}", out.result);
    assert_eq!(out.result["exit_code"], 3);
    assert_eq!(runner.compilations(), 3);
}

#[tokio::test]
async fn concurrent_runs_are_independent() {
    let runner = std::sync::Arc::new(WasmRunner::new());
    let mut tasks = Vec::new();
    for i in 0..8 {
        let runner = runner.clone();
        tasks.push(tokio::spawn(async move {
            runner
                .run(ctx("echo.wat", json!({}), json!({"i": i})))
                .await
        }));
    }
    // A runaway module next to them does not hold them up.
    let looping = {
        let runner = runner.clone();
        tokio::spawn(async move {
            runner
                .run(ctx("loop.wat", json!({"timeout": 1}), json!({})))
                .await
        })
    };
    for (i, t) in tasks.into_iter().enumerate() {
        let out = t.await.expect("task");
        assert_eq!(out.result["result"], json!({"echo": {"i": i}}));
    }
    assert_eq!(
        looping.await.expect("task").status,
        ExecutionStatus::Timeout
    );
}
