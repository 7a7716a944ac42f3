//! Helpers shared by the runner tests (`runners_*.rs`): the fixture pack, action metadata read
//! from its YAML files, contexts, and process-table checks.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use st2_core::model::{Action, JsonMap};
use st2_core::runners::{RunContext, RunnerSettings};

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The runner fixture pack (`tests/fixtures/runners/runnertest`).
pub fn fixture_pack() -> PathBuf {
    repo_root()
        .join("tests")
        .join("fixtures")
        .join("runners")
        .join("runnertest")
}

/// An action of `pack_dir` read from `actions/<name>.yaml`.
pub fn load_action(pack_dir: &Path, pack: &str, name: &str) -> Action {
    let path = pack_dir.join("actions").join(format!("{name}.yaml"));
    let text = std::fs::read_to_string(&path).expect("read action metadata");
    let mut action: Action = serde_yaml::from_str(&text).expect("parse action metadata");
    action.pack = pack.to_string();
    action.action_ref = format!("{pack}.{}", action.name);
    action
}

/// An action of the fixture pack.
pub fn fixture_action(name: &str) -> Action {
    load_action(&fixture_pack(), "runnertest", name)
}

/// A synthetic action of `runner_type` with no entry point and no parameters.
pub fn cmd_action(runner_type: &str) -> Action {
    let yaml = format!("name: cmd\nrunner_type: {runner_type}\nentry_point: \"\"\n");
    let mut action: Action = serde_yaml::from_str(&yaml).expect("synthetic action");
    action.pack = "core".into();
    action.action_ref = "core.cmd".into();
    action
}

/// A JSON object literal as a map.
pub fn map(v: Value) -> JsonMap {
    match v {
        Value::Object(o) => o,
        other => panic!("expected an object, got {other}"),
    }
}

/// A context for `action` of the fixture pack with the given parameters.
pub fn context(action: Action, runner_params: Value, action_params: Value) -> RunContext {
    let mut ctx = RunContext::new("5f1c0ffee0000000000000aa", action);
    ctx.pack_dir = Some(fixture_pack());
    ctx.runner_params = map(runner_params);
    ctx.action_params = map(action_params);
    ctx
}

/// Runner settings whose cache is private to the test.
pub fn settings(cache: &Path) -> RunnerSettings {
    RunnerSettings {
        cache_dir: cache.to_path_buf(),
        ..RunnerSettings::default()
    }
}

/// Live (not zombie) processes whose session or process group is `leader`.
pub fn live_members(leader: i32) -> Vec<i32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let Some(after) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            continue;
        };
        let f: Vec<&str> = after.split_whitespace().collect();
        if f.len() < 4 || f[0] == "Z" || f[0] == "X" {
            continue;
        }
        if f[2].parse::<i32>().ok() == Some(leader) || f[3].parse::<i32>().ok() == Some(leader) {
            found.push(pid);
        }
    }
    found
}

/// Whether process `pid` exists and is not a zombie.
pub fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rfind(')')
                .map(|i| s[i + 1..].trim_start().starts_with(['Z', 'X']))
        })
        .is_some_and(|zombie| !zombie)
}

/// Waits (up to `limit`) until `cond` holds.
pub async fn wait_for(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = std::time::Instant::now() + limit;
    while std::time::Instant::now() < end {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cond()
}

/// Reads a pid written by a test command.
pub fn read_pid(path: &Path) -> Option<i32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}
