//! Embedded backend: one SQLite file (rusqlite, bundled), the default store.
//!
//! Owns the on-disk layout — one table per [`Collection`] holding `(id TEXT PRIMARY KEY,
//! doc TEXT NOT NULL)` JSON documents, with an expression index on `json_extract(doc, '$.<f>')`
//! for each of [`Collection::indexed_fields`] — and the translation of [`Query`] into SQL.
//! The file is opened in WAL mode with a busy timeout so that the API server and `st2ctl` can
//! share it; every write runs in a `BEGIN IMMEDIATE` transaction, so writers queue on SQLite's
//! lock instead of failing. It must not know about the model beyond the indexed field names.
//!
//! Equality follows [`Query::matches`]: a missing field equals `null`, `true` never equals `1`,
//! `"1"` never equals `1`, and objects/arrays compare as JSON values (key order ignored). One
//! deliberate difference: scalar numbers compare numerically, so `1` equals `1.0` (as in SQL and
//! MongoDB), where `serde_json` would call them different.
//!
//! Sorting uses SQLite's order of the extracted values: missing/`null` first, then numbers (and
//! booleans, as 0/1), then strings by byte order; ties are broken by `id` in the same direction.
//!
//! # Concurrency
//! One writer thread owns the write connection and commits in groups: it takes every write
//! waiting in its queue, runs each in a savepoint of one `BEGIN IMMEDIATE` transaction (a
//! failing write is rolled back alone), commits once, and only then answers the callers. Many
//! concurrent small writes thus share one commit. Reads of a file store run on the caller's
//! thread over a small pool of read connections (WAL readers never wait for the writer); an
//! in-memory store has one connection, so its reads go through the writer thread. A file
//! store's writer never checkpoints: after a commit it wakes a thread of its own that copies
//! the WAL back into the file (at most every 100 ms) without blocking anyone, so no commit
//! waits for that copy and its fsync; an idle store's checkpoint thread sleeps.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::functions::FunctionFlags;
use rusqlite::types::{Value as SqlValue, ValueRef};
use rusqlite::{params_from_iter, Connection, OptionalExtension, TransactionBehavior};
use serde_json::Value;

use super::{Collection, Filter, Query, Result, Store, StoreError, Write};
use crate::model::JsonMap;

/// How long a statement waits for another connection's lock before failing with "busy".
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Name of the SQL function comparing two JSON texts as values (see [`register_functions`]).
const JSON_EQ_FN: &str = "st2_json_eq";

/// Read connections of a file store (reads are short; two cores rarely need more).
const READERS: usize = 4;

/// Shortest time between two copies of the WAL back into the store file.
const CHECKPOINT_PERIOD: Duration = Duration::from_millis(100);

/// Prepared statements kept per connection.
const STATEMENT_CACHE: usize = 256;

/// Most writes committed together.
const MAX_GROUP: usize = 256;

/// What a queued write returns once it has run: called with the group's commit outcome, it
/// answers the caller.
type Finish = Box<dyn FnOnce(Option<&str>) + Send>;

/// A queued write: runs on the writer's connection inside the group transaction (`None`: the
/// transaction could not start, so it does not run); returns whether its changes are kept
/// (else rolled back to its savepoint) and how to answer.
type Job = Box<dyn FnOnce(Option<&Connection>) -> (bool, Finish) + Send>;

/// The embedded SQLite store. Cloning is cheap: clones share the writer thread and readers.
///
/// Several handles (or processes) on the same file coordinate through SQLite's locks.
#[derive(Clone)]
pub struct EmbeddedStore {
    inner: Arc<Inner>,
}

struct Inner {
    /// The writer thread's queue.
    writer: Mutex<std::sync::mpsc::Sender<Job>>,
    /// Read connections (file stores); empty: reads go through the writer.
    readers: Vec<Mutex<Connection>>,
    /// Round-robin start for picking a reader.
    next_reader: std::sync::atomic::AtomicUsize,
    /// The file, or `None` in memory (for `Debug` and error messages).
    path: Option<PathBuf>,
}

impl fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.inner.path {
            Some(p) => f.debug_struct("EmbeddedStore").field("path", p).finish(),
            None => f
                .debug_struct("EmbeddedStore")
                .field("path", &":memory:")
                .finish(),
        }
    }
}

impl EmbeddedStore {
    /// Opens (creating it if needed) the store file at `path`; its directory must exist.
    /// Creates the tables and indexes that are missing.
    pub fn open(path: &Path) -> Result<Self> {
        let open = || {
            let conn = Connection::open(path).map_err(backend(format!(
                "cannot open store file {}",
                path.display()
            )))?;
            configure(&conn)?;
            Ok::<_, StoreError>(conn)
        };
        let writer = open()?;
        let checkpointer = open()?;
        let mut readers = Vec::with_capacity(READERS);
        for _ in 0..READERS {
            let conn = open()?;
            register_functions(&conn)?;
            readers.push(Mutex::new(conn));
        }
        Self::init(
            writer,
            readers,
            Some(path.to_path_buf()),
            Some(checkpointer),
        )
    }

    /// A private, empty store in memory (tests, `--dry-run` style tools).
    pub fn open_in_memory() -> Result<Self> {
        let conn = Connection::open_in_memory()
            .map_err(backend("cannot open in-memory store".to_string()))?;
        configure(&conn)?;
        Self::init(conn, Vec::new(), None, None)
    }

    fn init(
        mut conn: Connection,
        readers: Vec<Mutex<Connection>>,
        path: Option<PathBuf>,
        checkpointer: Option<Connection>,
    ) -> Result<Self> {
        let mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
            .map_err(backend("cannot switch to WAL mode".into()))?;
        if path.is_some() && !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(
                journal_mode = %mode,
                "store file is not in WAL mode; readers may wait for writers"
            );
        }
        // In WAL mode NORMAL never corrupts the file; a power cut (not a crash) may lose the
        // last commits.
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(backend("cannot set synchronous mode".into()))?;
        register_functions(&conn)?;
        create_schema(&mut conn)?;
        let wake_checkpointer = match checkpointer {
            Some(cp) => {
                // Commits only append to the WAL; copying it back into the file (and that
                // copy's fsync) happens on a thread of its own, so no commit waits for it.
                conn.pragma_update(None, "wal_autocheckpoint", 0)
                    .map_err(backend("cannot turn off automatic checkpoints".into()))?;
                let (wake, woken) = std::sync::mpsc::sync_channel::<()>(1);
                std::thread::Builder::new()
                    .name("st2-store-checkpoint".into())
                    .spawn(move || checkpoint_loop(cp, woken))
                    .map_err(|e| {
                        StoreError::Backend(format!("cannot start the store checkpointer: {e}"))
                    })?;
                Some(wake)
            }
            None => None,
        };
        let (tx, rx) = std::sync::mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("st2-store-writer".into())
            .spawn(move || writer_loop(conn, rx, wake_checkpointer))
            .map_err(|e| StoreError::Backend(format!("cannot start the store writer: {e}")))?;
        tracing::debug!(path = ?path, "opened embedded store");
        Ok(Self {
            inner: Arc::new(Inner {
                writer: Mutex::new(tx),
                readers,
                next_reader: std::sync::atomic::AtomicUsize::new(0),
                path,
            }),
        })
    }

    /// Runs `f` in the writer's group transaction (in its own savepoint) and answers once the
    /// group is committed. An `Err` from `f` rolls back `f`'s changes only.
    async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let (reply, answer) = tokio::sync::oneshot::channel::<Result<T>>();
        let job: Job = Box::new(move |conn| {
            let out = match conn {
                Some(conn) => f(conn),
                None => Err(StoreError::Backend(
                    "the write transaction did not start".into(),
                )),
            };
            let keep = out.is_ok();
            let finish: Finish = Box::new(move |commit_error| {
                let out = match (out, commit_error) {
                    (Ok(v), None) => Ok(v),
                    (Ok(_), Some(e)) => Err(StoreError::Backend(format!("cannot commit: {e}"))),
                    (Err(e), _) => Err(e),
                };
                let _ = reply.send(out);
            });
            (keep, finish)
        });
        self.inner
            .writer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .send(job)
            .map_err(|_| StoreError::Backend("the store writer has stopped".into()))?;
        answer
            .await
            .map_err(|_| StoreError::Backend("the store writer dropped a write".into()))?
    }

    /// Runs a read: on a read connection, on the caller's thread (file stores), or through the
    /// writer (in memory).
    async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let readers = &self.inner.readers;
        if readers.is_empty() {
            return self.write(f).await;
        }
        let start = self
            .inner
            .next_reader
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        for i in 0..readers.len() {
            if let Ok(conn) = readers[(start + i) % readers.len()].try_lock() {
                return f(&conn);
            }
        }
        let conn = readers[start % readers.len()]
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        f(&conn)
    }
}

/// The writer thread: takes every queued write, runs each in a savepoint of one transaction,
/// commits once, answers, and wakes the checkpoint thread (file stores). Ends when every
/// handle is gone, which also ends the checkpoint thread.
fn writer_loop(
    conn: Connection,
    rx: std::sync::mpsc::Receiver<Job>,
    wake_checkpointer: Option<std::sync::mpsc::SyncSender<()>>,
) {
    while let Ok(first) = rx.recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        if let Err(e) = run_cached(&conn, "BEGIN IMMEDIATE") {
            let msg = format!("cannot start write transaction: {e}");
            for job in group {
                let (_, finish) = job(None);
                finish(Some(&msg));
            }
            continue;
        }
        let mut finishers = Vec::with_capacity(group.len());
        for job in group {
            let saved = run_cached(&conn, "SAVEPOINT op").is_ok();
            let (keep, finish) = job(Some(&conn));
            if saved {
                let end = if keep {
                    run_cached(&conn, "RELEASE op")
                } else {
                    conn.execute_batch("ROLLBACK TO op; RELEASE op")
                };
                if let Err(e) = end {
                    tracing::warn!(error = %e, "store savepoint");
                }
            }
            finishers.push(finish);
        }
        let commit = run_cached(&conn, "COMMIT").err().map(|e| e.to_string());
        if commit.is_some() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        for finish in finishers {
            finish(commit.as_deref());
        }
        if let Some(wake) = &wake_checkpointer {
            // Full: a wake-up is already pending, which covers this commit too.
            let _ = wake.try_send(());
        }
    }
}

/// Most fields one `json_set` call sets; a larger patch nests calls.
const SET_PER_CALL: usize = 32;

/// The SQL expression of the stored document with `patch`'s top-level fields set (added or
/// replaced, in the patch's order, others kept), and its parameters: each value is bound as
/// JSON text, so `null` sets a null rather than removing the field.
fn json_set_patch(patch: &JsonMap) -> Result<(String, Vec<SqlValue>)> {
    let mut expr = String::from("doc");
    let mut params = Vec::with_capacity(patch.len());
    for chunk in patch.iter().collect::<Vec<_>>().chunks(SET_PER_CALL) {
        let mut call = format!("json_set({expr}");
        for (key, value) in chunk {
            call.push_str(", ");
            call.push_str(&sql_path_literal(&json_path_segment(
                String::from("$"),
                key,
            )?));
            call.push_str(", json(?)");
            let text = serde_json::to_string(value)
                .map_err(|e| StoreError::Backend(format!("cannot encode field {key:?}: {e}")))?;
            params.push(SqlValue::Text(text));
        }
        call.push(')');
        expr = call;
    }
    Ok((expr, params))
}

/// Sets what every connection of the store needs: the busy timeout, and a statement cache
/// large enough for the statements per collection and kind of write plus the transaction's own.
fn configure(conn: &Connection) -> Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(backend("cannot set busy timeout".into()))?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(())
}

/// Runs one statement without parameters, prepared once per connection (the writer runs its
/// transaction statements for every write).
fn run_cached(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(|_| ())
}

/// The checkpoint thread of a file store: woken by the writer after its commits, it copies
/// what the WAL holds back into the file (`PASSIVE`: it never blocks the writer or readers),
/// at most once per [`CHECKPOINT_PERIOD`], so that the writer, whose automatic checkpoints are
/// off, never stalls a commit on that copy and its fsync. Ends, after a last copy, when the
/// writer thread ends.
fn checkpoint_loop(conn: Connection, woken: std::sync::mpsc::Receiver<()>) {
    let checkpoint = || match conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
        Ok((row.get::<_, i64>(1)?, row.get::<_, i64>(2)?))
    }) {
        Ok((frames, copied)) => tracing::trace!(frames, copied, "store checkpoint"),
        Err(e) => tracing::debug!(error = %e, "store checkpoint"),
    };
    let mut last = std::time::Instant::now();
    while woken.recv().is_ok() {
        if let Some(wait) = CHECKPOINT_PERIOD.checked_sub(last.elapsed()) {
            std::thread::sleep(wait);
        }
        checkpoint();
        last = std::time::Instant::now();
    }
    // A last copy, so a clean shutdown leaves a small WAL.
    checkpoint();
}

/// Maps a rusqlite error to [`StoreError::Backend`] with context.
fn backend(context: String) -> impl FnOnce(rusqlite::Error) -> StoreError {
    move |e| StoreError::Backend(format!("{context}: {e}"))
}

/// Registers [`JSON_EQ_FN`]: `st2_json_eq(a, b)` is 1 when both are texts holding equal JSON
/// values (object key order ignored), 0 otherwise.
fn register_functions(conn: &Connection) -> Result<()> {
    let flags = FunctionFlags::SQLITE_UTF8
        | FunctionFlags::SQLITE_DETERMINISTIC
        | FunctionFlags::SQLITE_INNOCUOUS;
    conn.create_scalar_function(JSON_EQ_FN, 2, flags, |ctx| {
        let parse = |i: usize| match ctx.get_raw(i) {
            ValueRef::Text(t) => serde_json::from_slice::<Value>(t).ok(),
            _ => None,
        };
        Ok(matches!((parse(0), parse(1)), (Some(a), Some(b)) if a == b))
    })
    .map_err(backend(format!(
        "cannot register SQL function {JSON_EQ_FN}"
    )))
}

/// Creates every missing table and index, in one transaction so that two processes opening a
/// new file at once do not trip over each other.
fn create_schema(conn: &mut Connection) -> Result<()> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(backend("cannot start schema transaction".into()))?;
    for coll in Collection::ALL {
        let table = coll.name();
        let mut sql = format!(
            "CREATE TABLE IF NOT EXISTS \"{table}\" (id TEXT PRIMARY KEY, doc TEXT NOT NULL);\n"
        );
        for field in coll.indexed_fields() {
            let path = sql_json_path(field)?;
            let index = format!("{table}_{field}_idx").replace('"', "");
            sql.push_str(&format!(
                "CREATE INDEX IF NOT EXISTS \"{index}\" ON \"{table}\" (json_extract(doc, {path}));\n"
            ));
        }
        tx.execute_batch(&sql)
            .map_err(backend(format!("cannot create table {table}")))?;
    }
    tx.commit().map_err(backend("cannot commit schema".into()))
}

/// The SQLite JSON path of a dotted field, as an SQL string literal: `a.b` → `'$.a.b'`, with
/// segments that are not plain identifiers quoted (`on-complete` → `'$."on-complete"'`).
/// The same text is used for indexes and queries, so that SQLite matches them.
fn sql_json_path(field: &str) -> Result<String> {
    let mut path = String::from("$");
    for seg in field.split('.') {
        path = json_path_segment(path, seg)?;
    }
    Ok(sql_path_literal(&path))
}

/// `path` followed by the key `seg`, quoted when it is not a plain identifier; an error when
/// the key holds a `"`, which SQLite's JSON paths cannot express.
fn json_path_segment(mut path: String, seg: &str) -> Result<String> {
    let plain = !seg.is_empty() && seg.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if plain {
        path.push('.');
        path.push_str(seg);
    } else if seg.contains('"') {
        // SQLite's JSON paths have no escape for a quote inside a quoted key.
        return Err(StoreError::Backend(format!(
            "key {seg:?}: the embedded store cannot address keys containing '\"'"
        )));
    } else {
        path.push_str(".\"");
        path.push_str(seg);
        path.push('"');
    }
    Ok(path)
}

/// A JSON path as an SQL string literal.
fn sql_path_literal(path: &str) -> String {
    format!("'{}'", path.replace('\'', "''"))
}

/// A WHERE clause and its bound parameters, built from a query's filters.
#[derive(Debug, Default)]
struct SqlWhere {
    /// `WHERE ...`, or empty.
    sql: String,
    /// Parameters, in placeholder order.
    params: Vec<SqlValue>,
}

impl SqlWhere {
    fn build(filters: &[Filter]) -> Result<Self> {
        let mut w = Self::default();
        let mut clauses = Vec::with_capacity(filters.len());
        for f in filters {
            let clause = match f {
                Filter::Eq(field, v) => w.eq(field, v)?,
                Filter::In(_, vs) if vs.is_empty() => "0".to_string(),
                Filter::In(field, vs) if field == "id" && vs.iter().all(Value::is_string) => {
                    let marks = vec!["?"; vs.len()].join(", ");
                    let ids = vs.iter().filter_map(Value::as_str);
                    w.params
                        .extend(ids.map(|id| SqlValue::Text(id.to_string())));
                    format!("id IN ({marks})")
                }
                Filter::In(field, vs) => {
                    let ors = vs
                        .iter()
                        .map(|v| w.eq(field, v))
                        .collect::<Result<Vec<_>>>()?;
                    format!("({})", ors.join(" OR "))
                }
                Filter::Prefix(field, prefix) => {
                    let x = extract(field)?;
                    let t = json_type(field)?;
                    w.params.push(SqlValue::Text(prefix.clone()));
                    w.params
                        .push(SqlValue::Integer(prefix.chars().count() as i64));
                    w.params.push(SqlValue::Text(prefix.clone()));
                    // `>=` lets an index narrow the scan; `substr` decides (LIKE would treat
                    // `%` and `_` as wildcards).
                    format!("({t} = 'text' AND {x} >= ? AND substr({x}, 1, ?) = ?)")
                }
            };
            clauses.push(clause);
        }
        if !clauses.is_empty() {
            w.sql = format!("WHERE {}", clauses.join(" AND "));
        }
        Ok(w)
    }

    /// The condition `field == v`, pushing its parameters.
    fn eq(&mut self, field: &str, v: &Value) -> Result<String> {
        if field == "id" {
            if let Value::String(s) = v {
                self.params.push(SqlValue::Text(s.clone()));
                return Ok("id = ?".to_string());
            }
        }
        let x = extract(field)?;
        let t = json_type(field)?;
        Ok(match v {
            // json_extract is NULL both for a JSON null and for a missing path.
            Value::Null => format!("{x} IS NULL"),
            Value::Bool(true) => format!("{t} = 'true'"),
            Value::Bool(false) => format!("{t} = 'false'"),
            Value::Number(n) => {
                let bound = match (n.as_i64(), n.as_f64()) {
                    (Some(i), _) => SqlValue::Integer(i),
                    (None, Some(f)) => SqlValue::Real(f),
                    (None, None) => SqlValue::Text(n.to_string()),
                };
                self.params.push(bound);
                format!("({x} = ? AND {t} IN ('integer', 'real'))")
            }
            Value::String(s) => {
                self.params.push(SqlValue::Text(s.clone()));
                format!("({x} = ? AND {t} = 'text')")
            }
            Value::Array(_) | Value::Object(_) => {
                let kind = if v.is_array() { "array" } else { "object" };
                self.params.push(SqlValue::Text(v.to_string()));
                format!("({t} = '{kind}' AND {JSON_EQ_FN}({x}, ?))")
            }
        })
    }
}

/// `json_extract(doc, '<path>')` for a dotted field.
fn extract(field: &str) -> Result<String> {
    Ok(format!("json_extract(doc, {})", sql_json_path(field)?))
}

/// `json_type(doc, '<path>')` for a dotted field.
fn json_type(field: &str) -> Result<String> {
    Ok(format!("json_type(doc, {})", sql_json_path(field)?))
}

/// `ORDER BY ...` for a query (by `id` ascending when it names no sort).
fn order_by(query: &Query) -> Result<String> {
    Ok(match &query.sort {
        None => "ORDER BY id ASC".to_string(),
        Some(s) => {
            let dir = if s.descending { "DESC" } else { "ASC" };
            if s.field == "id" {
                format!("ORDER BY id {dir}")
            } else {
                format!("ORDER BY {} {dir}, id {dir}", extract(&s.field)?)
            }
        }
    })
}

/// Parses a stored document.
fn decode(collection: Collection, text: &str) -> Result<Value> {
    serde_json::from_str(text).map_err(|source| StoreError::Decode { collection, source })
}

/// One validated write, ready for SQL.
enum Op {
    Put {
        collection: Collection,
        id: String,
        text: String,
    },
    Delete {
        collection: Collection,
        id: String,
    },
}

/// Checks a write before anything of its batch is written.
fn prepare(write: Write) -> Result<Op> {
    match write {
        Write::Delete { collection, id } => Ok(Op::Delete { collection, id }),
        Write::Put { collection, doc } => {
            let invalid = |reason: &str| StoreError::InvalidDocument {
                collection,
                reason: reason.into(),
            };
            let (_, id) = super::checked_document(collection, &doc)?;
            let text = serde_json::to_string(&doc).map_err(|e| invalid(&e.to_string()))?;
            Ok(Op::Put {
                collection,
                id,
                text,
            })
        }
    }
}

#[async_trait]
impl Store for EmbeddedStore {
    async fn get(&self, collection: Collection, id: &str) -> Result<Option<Value>> {
        let id = id.to_string();
        self.read(move |conn| {
            let sql = format!("SELECT doc FROM \"{}\" WHERE id = ?", collection.name());
            let text: Option<String> = conn
                .prepare_cached(&sql)
                .and_then(|mut st| st.query_row([&id], |row| row.get(0)).optional())
                .map_err(backend(format!(
                    "cannot read {collection:?} document {id:?}"
                )))?;
            text.map(|t| decode(collection, &t)).transpose()
        })
        .await
    }

    async fn find(&self, collection: Collection, query: &Query) -> Result<Vec<Value>> {
        let mut w = SqlWhere::build(&query.filters)?;
        let limit = query
            .limit
            .map_or(-1, |l| i64::try_from(l).unwrap_or(i64::MAX));
        let offset = i64::try_from(query.offset).unwrap_or(i64::MAX);
        w.params.push(SqlValue::Integer(limit));
        w.params.push(SqlValue::Integer(offset));
        let sql = format!(
            "SELECT doc FROM \"{}\" {} {} LIMIT ? OFFSET ?",
            collection.name(),
            w.sql,
            order_by(query)?
        );
        self.read(move |conn| {
            let texts = conn
                .prepare_cached(&sql)
                .and_then(|mut st| {
                    st.query_map(params_from_iter(w.params.iter()), |row| {
                        row.get::<_, String>(0)
                    })?
                    .collect::<rusqlite::Result<Vec<_>>>()
                })
                .map_err(backend(format!("cannot query {collection:?}")))?;
            texts.iter().map(|t| decode(collection, t)).collect()
        })
        .await
    }

    async fn count(&self, collection: Collection, query: &Query) -> Result<u64> {
        let w = SqlWhere::build(&query.filters)?;
        let sql = format!("SELECT COUNT(*) FROM \"{}\" {}", collection.name(), w.sql);
        self.read(move |conn| {
            let n: i64 = conn
                .prepare_cached(&sql)
                .and_then(|mut st| st.query_row(params_from_iter(w.params.iter()), |r| r.get(0)))
                .map_err(backend(format!("cannot count {collection:?}")))?;
            Ok(u64::try_from(n).unwrap_or(0))
        })
        .await
    }

    async fn apply(&self, writes: Vec<Write>) -> Result<()> {
        let ops = writes
            .into_iter()
            .map(prepare)
            .collect::<Result<Vec<_>>>()?;
        if ops.is_empty() {
            return Ok(());
        }
        // The writer's savepoint makes the batch atomic.
        self.write(move |tx| {
            for op in &ops {
                match op {
                    Op::Put {
                        collection,
                        id,
                        text,
                    } => {
                        let sql = format!(
                            "INSERT INTO \"{}\" (id, doc) VALUES (?1, ?2) \
                             ON CONFLICT(id) DO UPDATE SET doc = excluded.doc",
                            collection.name()
                        );
                        tx.prepare_cached(&sql)
                            .and_then(|mut st| st.execute([id, text]))
                            .map_err(backend(format!("cannot write {collection:?} {id:?}")))?;
                    }
                    Op::Delete { collection, id } => {
                        let sql = format!("DELETE FROM \"{}\" WHERE id = ?", collection.name());
                        tx.prepare_cached(&sql)
                            .and_then(|mut st| st.execute([id]))
                            .map_err(backend(format!("cannot delete {collection:?} {id:?}")))?;
                    }
                }
            }
            Ok(())
        })
        .await
    }

    async fn compare_and_set(
        &self,
        collection: Collection,
        id: &str,
        field: &str,
        expected: &[Value],
        patch: JsonMap,
    ) -> Result<Option<Value>> {
        self.compare_and_set_text(collection, id, field, expected, patch)
            .await?
            .map(|text| decode(collection, &text))
            .transpose()
    }

    async fn compare_and_set_text(
        &self,
        collection: Collection,
        id: &str,
        field: &str,
        expected: &[Value],
        patch: JsonMap,
    ) -> Result<Option<String>> {
        if patch.get("id").is_some_and(|new| new.as_str() != Some(id)) {
            return Err(StoreError::InvalidDocument {
                collection,
                reason: format!("compare-and-set on {id:?} may not change its id"),
            });
        }
        // One statement: SQLite checks the field and sets the patched top-level fields in the
        // stored text itself (`json_set`), so the writer never decodes and re-encodes the
        // document in Rust; the caller gets the new text back.
        let (set, mut params) = json_set_patch(&patch)?;
        let w = SqlWhere::build(&[Filter::In(field.to_string(), expected.to_vec())])?;
        let matches = w.sql.strip_prefix("WHERE ").unwrap_or("1");
        params.push(SqlValue::Text(id.to_string()));
        params.extend(w.params);
        let sql = format!(
            "UPDATE \"{}\" SET doc = {set} WHERE id = ? AND {matches} RETURNING doc",
            collection.name()
        );
        let id = id.to_string();
        self.write(move |tx| {
            tx.prepare_cached(&sql)
                .and_then(|mut st| {
                    st.query_row(params_from_iter(params.iter()), |row| {
                        row.get::<_, String>(0)
                    })
                    .optional()
                })
                .map_err(backend(format!(
                    "cannot compare-and-set {collection:?} document {id:?}"
                )))
        })
        .await
    }

    async fn append(&self, collection: Collection, id: &str, values: JsonMap) -> Result<bool> {
        // Read, append and write back inside the one write transaction: atomic.
        let id = id.to_string();
        let table = collection.name();
        self.write(move |tx| {
            let what = || format!("cannot append to {collection:?} document {id:?}");
            let text: Option<String> = tx
                .prepare_cached(&format!("SELECT doc FROM \"{table}\" WHERE id = ?"))
                .and_then(|mut st| st.query_row([&id], |row| row.get(0)).optional())
                .map_err(backend(what()))?;
            let Some(text) = text else {
                return Ok(false);
            };
            let mut doc = match decode(collection, &text)? {
                Value::Object(m) => m,
                _ => return Err(StoreError::Backend(what())),
            };
            super::append_to(collection, &mut doc, values)?;
            let text = Value::Object(doc).to_string();
            tx.prepare_cached(&format!("UPDATE \"{table}\" SET doc = ?2 WHERE id = ?1"))
                .and_then(|mut st| st.execute([&id, &text]))
                .map_err(backend(what()))?;
            Ok(true)
        })
        .await
    }

    async fn insert_new(&self, collection: Collection, doc: Value) -> Result<bool> {
        let Op::Put { id, text, .. } = prepare(Write::Put { collection, doc })? else {
            unreachable!("a put prepares into a put")
        };
        self.write(move |tx| {
            let sql = format!(
                "INSERT INTO \"{}\" (id, doc) VALUES (?1, ?2) ON CONFLICT(id) DO NOTHING",
                collection.name()
            );
            let n = tx
                .prepare_cached(&sql)
                .and_then(|mut st| st.execute([&id, &text]))
                .map_err(backend(format!("cannot insert {collection:?} {id:?}")))?;
            Ok(n > 0)
        })
        .await
    }

    /// Deletes in one statement, so "existed" is exact even under concurrent deletes.
    async fn delete(&self, collection: Collection, id: &str) -> Result<bool> {
        let id = id.to_string();
        self.write(move |conn| {
            let sql = format!("DELETE FROM \"{}\" WHERE id = ?", collection.name());
            let n = conn
                .prepare_cached(&sql)
                .and_then(|mut st| st.execute([&id]))
                .map_err(backend(format!("cannot delete {collection:?} {id:?}")))?;
            Ok(n > 0)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_paths_quote_what_is_not_an_identifier() {
        let cases = [
            ("status", "'$.status'"),
            ("trigger.type", "'$.trigger.type'"),
            ("notify.on-complete", "'$.notify.\"on-complete\"'"),
            ("it's", "'$.\"it''s\"'"),
            ("a..b", "'$.a.\"\".b'"),
            ("x[0]", "'$.\"x[0]\"'"),
        ];
        for (field, want) in cases {
            assert_eq!(sql_json_path(field).expect("valid field"), want, "{field}");
        }
        assert!(sql_json_path("a\"b").is_err());
    }

    #[test]
    fn indexed_equality_uses_the_expression_index() {
        let conn = Connection::open_in_memory().expect("in-memory db");
        register_functions(&conn).expect("functions");
        let mut conn = conn;
        create_schema(&mut conn).expect("schema");
        let cases = [
            (
                Collection::Executions,
                Query::all().eq("status", "requested"),
                "executions_status_idx",
            ),
            (
                Collection::Actions,
                Query::all().eq("ref", "core.local"),
                "actions_ref_idx",
            ),
            (
                Collection::Rules,
                Query::all().prefix("pack", "co"),
                "rules_pack_idx",
            ),
        ];
        for (coll, q, index) in cases {
            let w = SqlWhere::build(&q.filters).expect("valid query");
            let sql = format!(
                "EXPLAIN QUERY PLAN SELECT doc FROM \"{}\" {}",
                coll.name(),
                w.sql
            );
            let mut st = conn.prepare(&sql).expect("plan statement");
            let plan: Vec<String> = st
                .query_map(params_from_iter(w.params.iter()), |r| r.get::<_, String>(3))
                .expect("plan rows")
                .collect::<rusqlite::Result<_>>()
                .expect("plan rows");
            assert!(plan.iter().any(|p| p.contains(index)), "{coll:?}: {plan:?}");
        }
    }
}
