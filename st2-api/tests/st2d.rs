//! `st2d` as an operator starts it: a fresh data dir, port 0, first-start admin, bundled packs.

mod common;

use std::path::Path;

use common::{copy_tree, http, login, start, wait_until};

fn http_get(addr: &str, path: &str) -> String {
    http(addr, "GET", path, &[], "")
}

fn executions(data: &Path) -> Vec<st2_core::model::Execution> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("rt");
    rt.block_on(async {
        let store = st2_core::store::EmbeddedStore::open(&data.join("st2.db")).expect("open");
        st2_core::store::repo::<st2_core::model::Execution>(&store)
            .find(&st2_core::store::Query::all())
            .await
            .expect("query")
    })
}

#[test]
fn kill_9_mid_execution_then_restart_abandons_it() {
    let data = tempfile::tempdir().expect("tmp");
    let packs = data.path().join("packs");
    std::fs::create_dir_all(&packs).expect("mkdir");
    let fixture = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/packs/e2e"
    ));
    copy_tree(fixture, &packs.join("e2e"));
    let (mut server, addr) = start(data.path());
    let token = login(&addr, data.path());
    let resp = http(
        &addr,
        "POST",
        "/api/v1/webhooks/sleepy",
        &[
            ("X-Auth-Token", &token),
            ("Content-Type", "application/json"),
        ],
        r#"{"seconds": 120, "timeout": 300}"#,
    );
    assert!(resp.starts_with("HTTP/1.1 202"), "{resp}");
    wait_until("the sleep to run", || {
        executions(data.path())
            .iter()
            .any(|e| e.status == st2_core::model::ExecutionStatus::Running)
    });
    // The runner records its child's process group and start time on the execution.
    #[cfg(target_os = "linux")]
    let orphans = {
        let mut child = None;
        wait_until("the child process to be recorded", || {
            child = executions(data.path()).iter().find_map(|e| {
                e.context
                    .get(st2_core::services::worker::RUNNER_PROCESS_KEY)
                    .and_then(|v| {
                        serde_json::from_value::<st2_core::runners::ChildProcess>(v.clone()).ok()
                    })
            });
            child.is_some()
        });
        let child = child.expect("recorded");
        assert_eq!(child.pid, child.pgid, "the child leads its process group");
        let leader = i32::try_from(child.pgid).expect("pgid");
        let mut members = Vec::new();
        wait_until("the sleep to be in the child's process group", || {
            members = group_members(leader);
            members.iter().any(|m| m.comm == "sleep")
        });
        members
    };
    // kill -9: no chance to clean up.
    server.0.kill().expect("kill");
    let _ = server.0.wait();
    #[cfg(target_os = "linux")]
    assert!(
        orphans.iter().any(ProcEntry::alive),
        "kill -9 of st2d leaves its child running: {orphans:?}"
    );
    let (_server2, _addr2) = start(data.path());
    wait_until("the orphaned execution to be abandoned", || {
        executions(data.path())
            .iter()
            .any(|e| e.status == st2_core::model::ExecutionStatus::Abandoned)
    });
    assert!(
        executions(data.path())
            .iter()
            .all(|e| e.status != st2_core::model::ExecutionStatus::Running),
        "nothing stays running"
    );
    // The restart killed the orphaned process group before abandoning its execution.
    #[cfg(target_os = "linux")]
    wait_until("the orphaned sleep to be killed", || {
        orphans.iter().all(|m| !m.alive())
    });
}

/// A process as `/proc/<pid>/stat` shows it.
#[cfg(target_os = "linux")]
#[derive(Debug, Clone, PartialEq, Eq)]
struct ProcEntry {
    pid: i32,
    comm: String,
    pgrp: i32,
    start_time: u64,
}

#[cfg(target_os = "linux")]
impl ProcEntry {
    /// Reads `/proc/<pid>/stat`; `None` when the process is gone or a zombie.
    fn read(pid: i32) -> Option<Self> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let open = stat.find('(')?;
        let close = stat.rfind(')')?;
        let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        if matches!(*fields.first()?, "Z" | "X" | "x") {
            return None;
        }
        Some(Self {
            pid,
            comm: stat[open + 1..close].to_string(),
            pgrp: fields.get(2)?.parse().ok()?,
            start_time: fields.get(19)?.parse().ok()?,
        })
    }

    /// Whether this very process (same pid and start time) still runs. A zombie counts as
    /// gone: in a container, PID 1 may never reap the orphans it inherits.
    fn alive(&self) -> bool {
        Self::read(self.pid).is_some_and(|p| p.start_time == self.start_time)
    }
}

/// Live processes of process group `pgrp`.
#[cfg(target_os = "linux")]
fn group_members(pgrp: i32) -> Vec<ProcEntry> {
    std::fs::read_dir("/proc")
        .expect("/proc")
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(ProcEntry::read)
        .filter(|p| p.pgrp == pgrp)
        .collect()
}

#[test]
fn first_start_creates_admin_and_answers() {
    let data = tempfile::tempdir().expect("tmp");
    let (_server, addr) = start(data.path());
    let resp = http_get(&addr, "/api/v1/");
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    assert!(resp.contains("st2_version"), "{resp}");

    let pw = data.path().join("st2admin.password");
    let meta = std::fs::metadata(&pw).expect("password file");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    }
    let password = std::fs::read_to_string(&pw).expect("read");
    assert!(password.trim().len() >= 16, "a real random password");

    // The bundled packs are registered, in the store file the server uses.
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("rt");
    rt.block_on(async {
        let store =
            st2_core::store::EmbeddedStore::open(&data.path().join("st2.db")).expect("open");
        let local = st2_core::store::repo::<st2_core::model::Action>(&store)
            .get_by_ref("core.local")
            .await
            .expect("query");
        assert!(local.is_some(), "core.local registered at start");
    });
}

#[test]
fn kill_9_mid_workflow_then_restart_resumes_it() {
    use st2_core::model::ExecutionStatus;

    let data = tempfile::tempdir().expect("tmp");
    let packs = data.path().join("packs");
    std::fs::create_dir_all(&packs).expect("mkdir");
    let fixture = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/packs/wf"
    ));
    copy_tree(fixture, &packs.join("wf"));
    let (mut server, addr) = start(data.path());
    let token = login(&addr, data.path());
    let resp = http(
        &addr,
        "POST",
        "/api/v1/executions",
        &[
            ("X-Auth-Token", &token),
            ("Content-Type", "application/json"),
        ],
        r#"{"action": "wf.crashable"}"#,
    );
    assert!(resp.starts_with("HTTP/1.1 201"), "{resp}");
    let body = resp.split("\r\n\r\n").nth(1).unwrap_or_default();
    let id = serde_json::from_str::<serde_json::Value>(body).expect("json")["id"]
        .as_str()
        .expect("id")
        .to_string();
    let children = |data: &Path| -> Vec<st2_core::model::Execution> {
        executions(data)
            .into_iter()
            .filter(|e| e.parent.as_deref() == Some(id.as_str()))
            .collect()
    };
    wait_until("the first task to run", || {
        children(data.path()).iter().any(|e| {
            e.status == ExecutionStatus::Running
                && e.context
                    .contains_key(st2_core::services::worker::RUNNER_PROCESS_KEY)
        })
    });
    // kill -9 in the middle of the first task: its run is lost with the process.
    server.0.kill().expect("kill");
    let _ = server.0.wait();
    let (_server2, _addr2) = start(data.path());
    wait_until("the workflow to finish after the restart", || {
        executions(data.path())
            .iter()
            .any(|e| e.id == id && e.status.is_completed())
    });
    let all = executions(data.path());
    let wf = all.iter().find(|e| e.id == id).expect("workflow");
    assert_eq!(wf.status, ExecutionStatus::Succeeded, "{:?}", wf.result);
    assert_eq!(
        wf.result,
        Some(serde_json::json!({"output": {"out": "slept and continued"}}))
    );
    let kids = children(data.path());
    let of = |task: &str| -> Vec<ExecutionStatus> {
        kids.iter()
            .filter(|k| k.context["orquesta"]["task_name"] == task)
            .map(|k| k.status)
            .collect()
    };
    let mut first = of("first");
    first.sort_by_key(|s| s.as_str());
    assert_eq!(
        first,
        vec![ExecutionStatus::Abandoned, ExecutionStatus::Succeeded],
        "the lost run is abandoned and retried once"
    );
    assert_eq!(of("second"), vec![ExecutionStatus::Succeeded], "ran once");
    assert_eq!(of("third"), vec![ExecutionStatus::Succeeded], "ran once");
}
