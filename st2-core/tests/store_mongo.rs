//! The MongoDB store against a live server: the conformance suite, two handles on one
//! database, large results in chunks, TTL indexes and escaped field names.
//!
//! The server comes from `ST2_TEST_MONGODB_URL` (`scripts/test.sh` starts a MongoDB-wire test
//! server and sets it); without it these tests fail. Each test, and each conformance check,
//! runs on a database of its own, unique per run.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use mongodb::bson::{doc, Bson, Document};
use serde_json::{json, Value};
use st2_core::model::{Execution, ExecutionStatus, JsonMap, LiveActionRef, Token};
use st2_core::store::{conformance, repo, Collection, MongoStore, Query, Store};

/// The test server's URL, or a failure saying how to get one.
fn server_url() -> String {
    match std::env::var("ST2_TEST_MONGODB_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => panic!(
            "ST2_TEST_MONGODB_URL is not set: these tests need a MongoDB-wire server; \
             run them through scripts/test.sh, which starts one and sets the variable"
        ),
    }
}

/// A database name unique to this run, test and `n`.
fn db_name(test: &str, n: usize) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("st2t_{}_{nanos}_{test}_{n}", std::process::id())
}

async fn open(db: &str) -> MongoStore {
    MongoStore::connect_db(&server_url(), db)
        .await
        .unwrap_or_else(|e| panic!("connect to the test server (database {db}): {e}"))
}

async fn drop_db(store: &MongoStore) {
    store.database().drop().await.expect("drop test database");
}

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

fn patch(v: Value) -> JsonMap {
    v.as_object().cloned().expect("patch is an object")
}

/// The raw stored document, as the server holds it.
async fn raw(store: &MongoStore, coll: Collection, id: &str) -> Document {
    store
        .database()
        .collection::<Document>(coll.name())
        .find_one(doc! {"_id": id})
        .await
        .expect("raw read")
        .expect("raw document exists")
}

async fn chunk_count(store: &MongoStore, coll: Collection) -> u64 {
    store
        .database()
        .collection::<Document>(&format!("{}.chunks", coll.name()))
        .count_documents(doc! {})
        .await
        .expect("count chunks")
}

/// A result of about `mb` megabytes, with structure (not one flat string).
fn big_result(mb: usize, tag: &str) -> Value {
    let line = format!("{tag} — {}\n", "x".repeat(1000));
    let lines: Vec<Value> = (0..mb * 1000).map(|i| json!([i, line])).collect();
    json!({"stdout": lines, "return_code": 0, "tag": tag})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conformance_suite() {
    let n = AtomicUsize::new(0);
    conformance::run_all(|| {
        let db = db_name("conf", n.fetch_add(1, Ordering::Relaxed));
        async move { Arc::new(open(&db).await) as Arc<dyn Store> }
    })
    .await;
}

/// The ordered-writes fallback (a standalone server has no transactions) passes too.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conformance_suite_without_transactions() {
    let n = AtomicUsize::new(0);
    conformance::run_all(|| {
        let db = db_name("notx", n.fetch_add(1, Ordering::Relaxed));
        async move { Arc::new(open(&db).await.with_transactions(false)) as Arc<dyn Store> }
    })
    .await;
}

/// Concurrent batches writing the same two documents: with transactions each batch lands
/// whole, so both documents always carry the same writer's marker (conflicts are retried).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_batches_are_isolated() {
    let db = db_name("isolation", 0);
    let store = open(&db).await;
    assert!(
        store.uses_transactions(),
        "the test server runs transactions (a replica set member)"
    );
    let coll = Collection::Traces;
    for round in 0..5 {
        let mut tasks = Vec::new();
        for i in 0..8 {
            let s = store.clone();
            tasks.push(tokio::spawn(async move {
                let put = |id: &str| st2_core::store::Write::Put {
                    collection: coll,
                    doc: json!({"id": id, "writer": i, "round": round}),
                };
                s.apply(vec![put("a"), put("b")]).await
            }));
        }
        for t in tasks {
            t.await
                .expect("task")
                .expect("batch applies (conflicts retried)");
        }
        let a = store.get(coll, "a").await.expect("get").expect("a");
        let b = store.get(coll, "b").await.expect("get").expect("b");
        assert_eq!(
            a["writer"], b["writer"],
            "round {round}: one batch's writes, whole"
        );
        assert_eq!(a["round"], json!(round));
    }
    drop_db(&store).await;
}

/// The conformance checks that neither query nor sort on large fields, with every field above
/// 64 bytes in chunks: they must not notice (chunked fields are not queryable by design).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conformance_checks_with_everything_chunked() {
    let chosen = [
        "round_trip_every_model",
        "replace_and_delete",
        "get_by_ref_and_id",
        "apply_is_atomic",
        "compare_and_set_race",
        "append_basics",
    ];
    for (n, name) in chosen.iter().enumerate() {
        let (_, check) = conformance::CHECKS
            .iter()
            .find(|(c, _)| c == name)
            .unwrap_or_else(|| panic!("no conformance check {name}"));
        let store = open(&db_name("chunky", n)).await.with_chunk_threshold(64);
        let handle: Arc<dyn Store> = Arc::new(store.clone());
        if let Err(e) = tokio::spawn(check(handle)).await {
            panic!("conformance check `{name}` with chunked fields failed: {e}");
        }
        assert!(
            store
                .database()
                .list_collection_names()
                .await
                .expect("list collections")
                .iter()
                .any(|c| c.ends_with(".chunks")),
            "{name}: nothing was chunked"
        );
        drop_db(&store).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cas_across_two_handles_has_one_winner() {
    let db = db_name("cas2", 0);
    let (a, b) = (open(&db).await, open(&db).await);
    let stores: [Arc<dyn Store>; 2] = [Arc::new(a.clone()), Arc::new(b)];
    for _ in 0..3 {
        conformance::cas_race(&stores, 32).await;
    }
    drop_db(&a).await;
}

/// Every write stamps a fresh revision; a compare-and-set updates the revision it read, reads
/// again when another write came in between, and takes up documents written without one.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn compare_and_set_updates_the_revision_it_read() {
    let db = db_name("rev", 0);
    let store = open(&db).await;
    let coll = Collection::Executions;
    store
        .put(coll, json!({"id": "e1", "status": "requested"}))
        .await
        .expect("put");
    let first = raw(&store, coll, "e1")
        .await
        .get_i64("_rev")
        .expect("a put stamps _rev");
    assert!(
        store
            .compare_and_set(
                coll,
                "e1",
                "status",
                &[json!("running")],
                patch(json!({"x": 1}))
            )
            .await
            .expect("cas")
            .is_none(),
        "the field does not match"
    );
    assert_eq!(
        raw(&store, coll, "e1").await.get_i64("_rev").ok(),
        Some(first)
    );

    // Writers of other fields race each compare-and-set: every one still lands, on the
    // document as the writes before it left it.
    let store = Arc::new(store);
    let mut tasks = Vec::new();
    for i in 0..24 {
        let s = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            s.compare_and_set(
                coll,
                "e1",
                "status",
                &[json!("requested")],
                patch(json!({format!("f{i}"): i})),
            )
            .await
        }));
    }
    for (i, t) in tasks.into_iter().enumerate() {
        let after = t
            .await
            .expect("join")
            .expect("cas")
            .expect("status still matches");
        assert_eq!(after[format!("f{i}")], json!(i), "{after}");
    }
    let stored = store.get(coll, "e1").await.expect("get").expect("exists");
    for i in 0..24 {
        assert_eq!(stored[format!("f{i}")], json!(i), "lost f{i}: {stored}");
    }
    assert!(
        stored.get("_rev").is_none(),
        "the stamp never reaches the caller"
    );
    assert_ne!(
        raw(&store, coll, "e1").await.get_i64("_rev").ok(),
        Some(first)
    );

    // A document written without a revision (by an older version) is taken up.
    store
        .database()
        .collection::<Document>(coll.name())
        .insert_one(doc! {"_id": "old", "id": "old", "status": "requested"})
        .await
        .expect("raw insert");
    let after = store
        .compare_and_set(
            coll,
            "old",
            "status",
            &[json!("requested")],
            patch(json!({"status": "scheduled"})),
        )
        .await
        .expect("cas")
        .expect("matches");
    assert_eq!(after["status"], "scheduled");
    assert!(raw(&store, coll, "old").await.get_i64("_rev").is_ok());
    drop_db(&store).await;
}

/// Batches replace and delete documents that name chunks, with and without transactions: the
/// chunks they named are gone after, and the new values read back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn batches_over_chunked_documents_drop_their_chunks() {
    use st2_core::store::Write;
    for (n, transactions) in [(0, true), (1, false)] {
        let db = db_name("batchchunks", n);
        let store = open(&db)
            .await
            .with_chunk_threshold(1024)
            .with_transactions(transactions);
        let coll = Collection::Executions;
        let put = |id: &str, size: usize| Write::Put {
            collection: coll,
            doc: json!({"id": id, "status": "succeeded", "result": "r".repeat(size)}),
        };
        store
            .apply(vec![put("a", 4096), put("b", 4096)])
            .await
            .expect("big batch");
        assert!(
            chunk_count(&store, coll).await > 0,
            "the large values are in chunks"
        );
        // A batch meeting a document that names chunks (and one that does not exist yet).
        store
            .apply(vec![put("c", 10), put("a", 10)])
            .await
            .expect("small over big");
        let a = store.get(coll, "a").await.expect("get").expect("a");
        assert_eq!(a["result"], json!("r".repeat(10)));
        store
            .apply(vec![
                put("d", 10),
                Write::Delete {
                    collection: coll,
                    id: "b".into(),
                },
            ])
            .await
            .expect("delete in a batch");
        assert!(store.get(coll, "b").await.expect("get").is_none());
        assert_eq!(
            chunk_count(&store, coll).await,
            0,
            "no chunk outlives its document (transactions {transactions})"
        );
        drop_db(&store).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_megabyte_result_round_trips() {
    let db = db_name("big", 0);
    let store = open(&db).await;
    let coll = Collection::Executions;
    let r = repo::<Execution>(&store);

    // Saved whole.
    let mut ex = execution("big1", ExecutionStatus::Succeeded);
    ex.result = Some(big_result(50, "saved"));
    let saved = r.save(ex).await.expect("save a 50 MB execution");
    let got = r.get("big1").await.expect("get").expect("exists");
    assert_eq!(got, saved, "50 MB result round-trips through save/get");
    let stored = raw(&store, coll, "big1").await;
    assert_eq!(stored.get("result"), Some(&Bson::Null), "result is chunked");
    assert!(
        chunk_count(&store, coll).await >= 12,
        "50 MB in 4 MiB chunks"
    );
    let found = r
        .find(&Query::all().eq("status", "succeeded"))
        .await
        .expect("find");
    assert_eq!(found, vec![saved.clone()], "find loads chunks too");

    // Set by compare-and-set, as a runner finishing does.
    r.save(execution("big2", ExecutionStatus::Running))
        .await
        .expect("save");
    let result = big_result(50, "cas");
    let done = r
        .compare_and_set(
            "big2",
            "status",
            &[json!("running")],
            patch(json!({"status": "succeeded", "result": result})),
        )
        .await
        .expect("cas")
        .expect("cas wins");
    assert_eq!(done.result.as_ref(), Some(&result));
    let got = r.get("big2").await.expect("get").expect("exists");
    assert_eq!(got, done, "CAS-written 50 MB result reads back");

    // Replacing the big result with a small one frees its chunks.
    let before = chunk_count(&store, coll).await;
    let small = r
        .compare_and_set(
            "big2",
            "status",
            &[json!("succeeded")],
            patch(json!({"result": {"ok": true}})),
        )
        .await
        .expect("cas")
        .expect("cas wins");
    assert_eq!(small.result, Some(json!({"ok": true})));
    assert!(
        chunk_count(&store, coll).await < before,
        "stale chunks deleted"
    );
    assert_eq!(r.get("big2").await.expect("get"), Some(small));
    assert!(r.delete("big1").await.expect("delete"));
    assert_eq!(chunk_count(&store, coll).await, 0, "delete frees chunks");
    drop_db(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_fields_keep_their_place_and_other_fields_stay_queryable() {
    let db = db_name("order", 0);
    let store = open(&db).await.with_chunk_threshold(1024);
    let coll = Collection::Executions;
    let mut ex = execution("e1", ExecutionStatus::Failed);
    ex.result = Some(json!({"stderr": "y".repeat(5000)}));
    ex.context = patch(json!({"big": "z".repeat(3000), "user": "stanley"}));
    let saved = repo::<Execution>(&store).save(ex).await.expect("save");
    let want = serde_json::to_value(&saved).expect("serialise");
    let got = store.get(coll, "e1").await.expect("get").expect("exists");
    let keys = |v: &Value| v.as_object().map(|o| o.keys().cloned().collect::<Vec<_>>());
    assert_eq!(keys(&got), keys(&want), "field order is kept");
    assert_eq!(got, want);
    let q = Query::all()
        .eq("status", "failed")
        .eq("liveaction.action", "core.local");
    assert_eq!(store.count(coll, &q).await.expect("count"), 1);

    // A CAS on one chunked field keeps the other one's chunks.
    let p = patch(json!({"result": {"stderr": "w".repeat(4000)}}));
    let after = store
        .compare_and_set(coll, "e1", "status", &[json!("failed")], p)
        .await
        .expect("cas")
        .expect("wins");
    assert_eq!(after["context"]["big"], json!("z".repeat(3000)));
    assert_eq!(store.get(coll, "e1").await.expect("get"), Some(after));
    drop_db(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_and_keys_get_ttl_indexes_and_expiry_dates() {
    let db = db_name("ttl", 0);
    let store = open(&db).await;
    for coll in [Collection::Tokens, Collection::KeyValuePairs] {
        let names = store
            .database()
            .collection::<Document>(coll.name())
            .list_indexes()
            .await
            .expect("list indexes");
        let mut cursor = names;
        let mut ttl = None;
        while cursor.advance().await.expect("cursor") {
            let ix = cursor.deserialize_current().expect("index");
            if ix.keys == doc! {"_expire_at": 1} {
                ttl = ix.options.and_then(|o| o.expire_after);
            }
        }
        assert_eq!(ttl, Some(std::time::Duration::ZERO), "{coll:?} TTL index");
    }
    let token = Token {
        id: "t1".into(),
        user: "stanley".into(),
        token: "secret".into(),
        expiry: "2099-01-01T00:00:00.000000Z".into(),
        metadata: Value::Null,
    };
    repo::<Token>(&store)
        .save(token.clone())
        .await
        .expect("save");
    let stored = raw(&store, Collection::Tokens, "t1").await;
    let at = stored
        .get_datetime("_expire_at")
        .expect("expiry date stored");
    assert_eq!(
        at.try_to_rfc3339_string().expect("rfc3339"),
        "2099-01-01T00:00:00Z"
    );
    assert_eq!(
        repo::<Token>(&store).get("t1").await.expect("get"),
        Some(token),
        "backend fields stay hidden"
    );
    let p = patch(json!({"expiry": "2000-01-01T00:00:00Z"}));
    store
        .compare_and_set(Collection::Tokens, "t1", "user", &[json!("stanley")], p)
        .await
        .expect("cas")
        .expect("wins");
    let stored = raw(&store, Collection::Tokens, "t1").await;
    let at = stored
        .get_datetime("_expire_at")
        .expect("expiry date stored");
    assert_eq!(
        at.try_to_rfc3339_string().expect("rfc3339"),
        "2000-01-01T00:00:00Z"
    );
    drop_db(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odd_field_names_round_trip_and_can_be_queried() {
    let db = db_name("names", 0);
    let store = open(&db).await;
    let coll = Collection::Rules;
    let doc = json!({
        "id": "r1",
        "_id": "not the key",
        "_private": 1,
        "criteria": {"trigger.body.x": {"$type": "equals"}, "": 2, "\u{FF05}d": 3},
        "pack": "p",
    });
    store.put(coll, doc.clone()).await.expect("put");
    assert_eq!(store.get(coll, "r1").await.expect("get"), Some(doc));
    let q = Query::all().eq("criteria.trigger.body.x", json!({"$type": "equals"}));
    assert!(
        store.find(coll, &q).await.expect("find").is_empty(),
        "dots in keys are not paths"
    );
    let q = Query::all().eq("_private", 1).eq("_id", "not the key");
    assert_eq!(store.count(coll, &q).await.expect("count"), 1);
    drop_db(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_with_a_mongodb_url_opens_the_mongo_store() {
    let url = server_url();
    let db = db_name("cfg", 0);
    // Put the database into the URL's path, before any query string.
    let (base, query) = url.split_once('?').unwrap_or((url.as_str(), ""));
    let with_db = format!("{}/{db}?{query}", base.trim_end_matches('/'));
    let dir = tempfile::TempDir::new().expect("temp dir");
    let mut cfg = st2_core::config::Config::default();
    cfg.system.data_dir = dir.path().join("data");
    cfg.database.url = Some(with_db);
    let store = cfg.open_store().await.expect("open the configured store");
    store
        .put(Collection::Packs, json!({"id": "p1", "ref": "demo"}))
        .await
        .expect("put");
    let direct = open(&db).await;
    assert_eq!(
        direct.get(Collection::Packs, "p1").await.expect("get"),
        Some(json!({"id": "p1", "ref": "demo"})),
        "the configured store writes to the URL's database"
    );
    drop_db(&direct).await;
}

/// A handle updates a document it wrote moments ago without reading it first; another
/// handle's write in between is still seen (the stale update matches nothing, the document is
/// read), and a field in chunks is always read back whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn compare_and_set_after_its_own_write_still_sees_other_writers() {
    let db = db_name("recent", 0);
    let a = open(&db).await.with_chunk_threshold(256);
    let b = open(&db).await;
    let coll = Collection::Executions;
    let cas = |s: &MongoStore, from: &str, p: Value| {
        let s = s.clone();
        let from = json!(from);
        async move {
            s.compare_and_set(coll, "e1", "status", &[from], patch(p))
                .await
                .expect("cas")
        }
    };
    assert!(a
        .insert_new(coll, json!({"id": "e1", "status": "requested", "n": 0}))
        .await
        .expect("insert"));
    let doc = cas(&a, "requested", json!({"status": "scheduled", "by": "a"}))
        .await
        .expect("a moves it on");
    assert_eq!(
        (doc["n"].clone(), doc["by"].clone()),
        (json!(0), json!("a"))
    );
    cas(&b, "scheduled", json!({"status": "running", "n": 1}))
        .await
        .expect("b moves it on");
    assert!(
        cas(&a, "scheduled", json!({"status": "failed"}))
            .await
            .is_none(),
        "a's last write is stale: the document is running"
    );
    let doc = cas(&a, "running", json!({"status": "succeeded"}))
        .await
        .expect("a sees b's write");
    assert_eq!(doc["n"], 1, "{doc}");
    assert_eq!(doc["by"], "a", "{doc}");

    // A patch that goes to chunks, then another: the second returns the chunked field whole.
    let big = "x".repeat(1_000);
    cas(&a, "succeeded", json!({"status": "s1", "result": big}))
        .await
        .expect("chunked patch");
    let doc = cas(&a, "s1", json!({"status": "s2"}))
        .await
        .expect("after the chunked patch");
    assert_eq!(doc["result"], json!(big));
    // A delete in between: the remembered document is gone with it.
    assert!(a.delete(coll, "e1").await.expect("delete"));
    assert!(cas(&a, "s2", json!({"status": "s3"})).await.is_none());
    let stored = a.get(coll, "e1").await.expect("get");
    assert!(stored.is_none(), "{stored:?}");
    a.database().drop().await.expect("drop");
}
