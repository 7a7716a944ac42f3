//! The embedded SQLite store: the conformance suite in memory and on disk, two handles on one
//! file (as the API server and `st2ctl` have), and persistence across reopen.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use serde_json::json;
use st2_core::model::{Execution, ExecutionStatus, LiveActionRef, TriggerInstance};
use st2_core::store::{conformance, repo, Collection, EmbeddedStore, Query, Store, StoreError};
use tempfile::TempDir;

fn execution(id: &str, status: ExecutionStatus) -> Execution {
    Execution {
        id: id.into(),
        action: json!({"ref": "core.local"}),
        runner: json!({"name": "local-shell-cmd"}),
        liveaction: LiveActionRef {
            id: id.into(),
            action: "core.local".into(),
            ..Default::default()
        },
        status,
        parameters: Default::default(),
        result: None,
        context: Default::default(),
        parent: None,
        children: vec![],
        trigger: None,
        trigger_type: None,
        trigger_instance: None,
        rule: None,
        start_timestamp: "2024-05-01T10:00:00Z".into(),
        end_timestamp: None,
        elapsed_seconds: None,
        delay: None,
        log: vec![],
        notified: false,
        lease_owner: None,
    }
}

fn instance(id: &str, status: &str) -> TriggerInstance {
    TriggerInstance {
        id: id.into(),
        trigger: "core.st2.webhook".into(),
        payload: json!({"n": id}),
        occurrence_time: "2024-05-01T10:00:00Z".into(),
        status: status.into(),
        preprocessing: None,
    }
}

fn open(dir: &TempDir, name: &str) -> Arc<dyn Store> {
    Arc::new(EmbeddedStore::open(&dir.path().join(name)).expect("open store file"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conformance_in_memory() {
    conformance::run_all(|| async {
        Arc::new(EmbeddedStore::open_in_memory().expect("in-memory store")) as Arc<dyn Store>
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conformance_file_backed() {
    let dir = Arc::new(TempDir::new().expect("temp dir"));
    let n = AtomicUsize::new(0);
    conformance::run_all(|| {
        let store = open(
            &dir,
            &format!("st2-{}.db", n.fetch_add(1, Ordering::Relaxed)),
        );
        async move { store }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_handles_on_one_file_see_each_other() {
    let dir = TempDir::new().expect("temp dir");
    let (a, b) = (open(&dir, "st2.db"), open(&dir, "st2.db"));

    repo::<TriggerInstance>(&*a)
        .save(instance("ti1", "pending"))
        .await
        .expect("save via a");
    let seen = repo::<TriggerInstance>(&*b)
        .get("ti1")
        .await
        .expect("get via b");
    assert_eq!(seen, Some(instance("ti1", "pending")), "b sees a's write");

    repo::<TriggerInstance>(&*b)
        .save(instance("ti2", "processed"))
        .await
        .expect("save via b");
    let q = Query::all().eq("status", "processed");
    let found = repo::<TriggerInstance>(&*a)
        .find(&q)
        .await
        .expect("find via a");
    assert_eq!(
        found,
        vec![instance("ti2", "processed")],
        "a sees b's write"
    );
    assert_eq!(
        a.count(Collection::TriggerInstances, &Query::all())
            .await
            .expect("count"),
        2
    );

    assert!(b
        .delete(Collection::TriggerInstances, "ti1")
        .await
        .expect("delete via b"));
    assert!(a
        .get(Collection::TriggerInstances, "ti1")
        .await
        .expect("get")
        .is_none());
    assert!(!a
        .delete(Collection::TriggerInstances, "ti1")
        .await
        .expect("delete via a"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cas_across_two_handles_has_one_winner() {
    let dir = TempDir::new().expect("temp dir");
    let stores = [open(&dir, "st2.db"), open(&dir, "st2.db")];
    for _ in 0..5 {
        conformance::cas_race(&stores, 32).await;
    }
}

/// Eight connections contend for SQLite's write lock at once; losers must wait, not fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cas_across_many_handles_has_one_winner() {
    let dir = TempDir::new().expect("temp dir");
    let stores: Vec<_> = (0..8).map(|_| open(&dir, "st2.db")).collect();
    for _ in 0..5 {
        conformance::cas_race(&stores, 64).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_survives_close_and_reopen() {
    let dir = TempDir::new().expect("temp dir");
    let path = dir.path().join("st2.db");
    {
        let store = EmbeddedStore::open(&path).expect("open");
        let r = repo::<Execution>(&store);
        r.save(execution("ex1", ExecutionStatus::Requested))
            .await
            .expect("save");
        r.save(execution("ex2", ExecutionStatus::Requested))
            .await
            .expect("save");
        let patch = json!({"status": "running"})
            .as_object()
            .cloned()
            .expect("object");
        let moved = r
            .compare_and_set("ex1", "status", &[json!("requested")], patch)
            .await;
        assert!(moved.expect("cas").is_some());
    }
    let store = EmbeddedStore::open(&path).expect("reopen");
    let r = repo::<Execution>(&store);
    let ex1 = r.get("ex1").await.expect("get").expect("ex1 persisted");
    assert_eq!(ex1.status, ExecutionStatus::Running, "the CAS persisted");
    let requested = r
        .find(&Query::all().eq("status", "requested"))
        .await
        .expect("find");
    assert_eq!(
        requested,
        vec![execution("ex2", ExecutionStatus::Requested)]
    );

    let fresh = EmbeddedStore::open_in_memory().expect("in-memory");
    assert!(repo::<Execution>(&fresh)
        .get("ex1")
        .await
        .expect("get")
        .is_none());
}

#[test]
fn open_in_a_missing_directory_is_a_backend_error() {
    let dir = TempDir::new().expect("temp dir");
    match EmbeddedStore::open(&dir.path().join("no/such/dir/st2.db")) {
        Err(StoreError::Backend(msg)) => assert!(msg.contains("st2.db"), "{msg}"),
        other => panic!("expected a backend error, got {other:?}"),
    }
}

/// Deterministic half of the race tests: while another connection holds the write lock, a CAS
/// must wait for it and then judge the document as that writer left it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cas_waits_for_another_writer_and_sees_its_commit() {
    let dir = TempDir::new().expect("temp dir");
    let path = dir.path().join("st2.db");
    let store = EmbeddedStore::open(&path).expect("open");
    repo::<Execution>(&store)
        .save(execution("ex", ExecutionStatus::Requested))
        .await
        .expect("save");

    // Another process (say `st2ctl`) holding the write lock.
    let mut other = rusqlite::Connection::open(&path).expect("second connection");
    let tx = other
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .expect("take the write lock");
    let cas = tokio::spawn({
        let store = store.clone();
        async move {
            let patch = json!({"status": "scheduled"})
                .as_object()
                .cloned()
                .expect("object");
            store
                .compare_and_set(
                    Collection::Executions,
                    "ex",
                    "status",
                    &[json!("requested")],
                    patch,
                )
                .await
        }
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(
        !cas.is_finished(),
        "compare_and_set must wait for the other writer"
    );
    tx.execute(
        "UPDATE executions SET doc = json_set(doc, '$.status', 'running') WHERE id = 'ex'",
        [],
    )
    .expect("other writer updates");
    tx.commit().expect("other writer commits");

    let res = cas
        .await
        .expect("cas task")
        .expect("cas waits instead of failing busy");
    assert_eq!(
        res, None,
        "the CAS sees the other writer's status and loses"
    );
    let ex = repo::<Execution>(&store)
        .get("ex")
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(ex.status, ExecutionStatus::Running);
}

/// Commits only append to the WAL; the store's own checkpoint thread copies them back into the
/// file while the store stays open (no other connection checkpoints here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wal_is_copied_back_into_the_file_while_open() {
    let dir = TempDir::new().expect("temp dir");
    let file = dir.path().join("st2.db");
    let store = open(&dir, "st2.db");
    let before = std::fs::metadata(&file).expect("store file").len();
    let filler = "x".repeat(4096);
    for i in 0..256 {
        store
            .put(
                Collection::TriggerInstances,
                json!({"id": format!("ti-{i}"), "payload": filler}),
            )
            .await
            .expect("put");
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut size = before;
    while std::time::Instant::now() < deadline {
        size = std::fs::metadata(&file).expect("store file").len();
        if size > before + 1024 * 1024 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(
        size > before + 1024 * 1024,
        "1 MiB written but the store file grew from {before} to {size} bytes: the WAL was not checkpointed"
    );
    let got = store
        .get(Collection::TriggerInstances, "ti-255")
        .await
        .expect("get");
    assert!(got.is_some(), "the last write reads back");
}
