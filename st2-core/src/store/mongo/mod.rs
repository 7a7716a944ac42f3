//! MongoDB backend (the official `mongodb` driver), selected by `[database] url = mongodb://...`.
//!
//! Owns the layout in the database, and nothing of the model beyond a few field names:
//! - one collection per [`Collection`] (same names as the embedded tables); a document is the
//!   JSON document converted to BSON in its field order (see [`codec`] for numbers and the
//!   escaping of field names), plus the backend's own top-level fields: `_id` (the document's
//!   `id`, which stays in the document too), `_rev`, `_chunked` and `_expire_at`. These never reach the
//!   caller;
//! - an index per [`Collection::indexed_fields`], and a TTL index on `_expire_at` for tokens
//!   (`expiry`) and key-value pairs (`expire_timestamp`), so MongoDB deletes them when they
//!   expire;
//! - large fields in chunks: a top-level field larger than the chunk threshold (1 MiB by
//!   default), or the largest fields while a document is above 8 MiB, are stored as their JSON
//!   text split into 4 MiB binary pieces in `<collection>.chunks`, under a generation id named
//!   in the document's `_chunked` map (`field → generation`); the field itself holds `null` in
//!   place (it keeps its position; queries on it do not see its value, so the indexed fields
//!   and `id` always stay inline). Chunks are written
//!   before the document that names them and their old generation deleted after it, so a
//!   reader never sees a half-written value without needing a transaction; a crash in between
//!   can only leave unreferenced chunks behind. A 50 MB execution result round-trips.
//!
//! Queries follow [`Query::matches`] (see [`filter`]). [`Store::apply`] validates every write
//! first, then runs the batch in a multi-document transaction when the server supports them
//! (a replica set or mongos; retried on transient errors). On a standalone server it falls back
//! to ordered writes: an invalid batch still writes nothing, but a failure of the server in the
//! middle of a batch can leave its first writes applied. Every document carries a revision stamp
//! (`_rev`, fresh on each write): [`Store::compare_and_set`] reads the document, then updates
//! that revision if its field holds an expected value, reading again when someone else wrote
//! in between. The pre-image comes from the read, not from a `findAndModify`: a MongoDB-wire
//! test server scanned the whole collection for each of those, and on MongoDB itself the read
//! is a primary-key lookup. For the same reason a put or delete of a document that names no
//! chunks is one `replace_one`/`delete_one`; only one that does reads its chunk map first.

mod codec;
mod filter;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use async_trait::async_trait;
use mongodb::bson::spec::BinarySubtype;
use mongodb::bson::{doc, Binary, Bson, DateTime, Document};
use mongodb::error::UNKNOWN_TRANSACTION_COMMIT_RESULT;
use mongodb::error::{Error as MongoError, TRANSIENT_TRANSACTION_ERROR};
use mongodb::event::command::CommandEvent;
use mongodb::event::EventHandler;
use mongodb::options::{ClientOptions, IndexOptions};
use mongodb::{Client, ClientSession, Cursor, Database, IndexModel};
use serde_json::Value;

use super::{Collection, Query, Result, Store, StoreError, Write};
use crate::model::JsonMap;
use codec::{doc_size, field_size, from_bson, object_to_doc, unescape_key};

/// Tracing target of the commands sent to the server (logged at `trace` level only when
/// that target is enabled at connect time, e.g. `RUST_LOG=st2::mongo::command=trace`).
pub const COMMAND_LOG: &str = "st2::mongo::command";

/// Logs one command sent to the server: its name, collection and filter.
fn log_command(event: CommandEvent) {
    if let CommandEvent::Started(s) = event {
        let target = s
            .command
            .get(&s.command_name)
            .map(ToString::to_string)
            .unwrap_or_default();
        let detail = ["filter", "q", "updates", "deletes", "documents"]
            .iter()
            .find_map(|k| s.command.get(*k).map(|v| format!("{k}: {v}")))
            .unwrap_or_default();
        let detail: String = detail.chars().take(300).collect();
        tracing::trace!(target: COMMAND_LOG, "{} {target} {detail}", s.command_name);
    }
}

/// Database used when the URL names none.
pub const DEFAULT_DATABASE: &str = "st2";

/// Default size (bytes of BSON) above which a top-level field is stored in chunks.
pub const DEFAULT_CHUNK_THRESHOLD: usize = 1 << 20;

/// A document above this size (bytes of BSON) has its largest fields moved to chunks.
const DOC_LIMIT: usize = 8 << 20;

/// Bytes of JSON text per chunk document.
const CHUNK_SIZE: usize = 4 << 20;

/// How long a batch keeps being retried after transient transaction errors (write conflicts),
/// as the drivers' `withTransaction` helpers do (they allow 120 s): several processes that
/// start together register the same packs and conflict for seconds, not milliseconds.
const TXN_RETRY_BUDGET: Duration = Duration::from_secs(60);

/// How many times a commit whose result is unknown is sent again.
const COMMIT_ATTEMPTS: u32 = 10;

/// The pause before retry number `attempt` of a conflicting transaction: exponential from
/// 2 ms, capped at 200 ms, with full jitter so the conflicting writers spread out.
fn conflict_backoff(attempt: u32) -> Duration {
    let cap = (2u64 << attempt.min(7)).min(200);
    Duration::from_millis(rand::random::<u64>() % cap + 1)
}

/// The backend's revision stamp of a document: a fresh random number on every write, so a
/// compare-and-set can update "the document exactly as it read it".
pub(crate) const REVISION: &str = "_rev";

/// How many times a compare-and-set re-reads a document that others keep changing.
const CAS_ATTEMPTS: u32 = 1_000;

/// A fresh revision stamp.
fn revision() -> i64 {
    // 63 random bits: never negative, so it reads back as the same BSON int64.
    (uuid::Uuid::new_v4().as_u64_pair().0 >> 1) as i64
}

/// A filter on this id when the document names no chunks: a write with it needs no pre-image
/// to clean up after (a MongoDB-wire test server scanned its collection for every
/// `findAndModify`; this filter is a point lookup everywhere).
fn unchunked(id: &str) -> Document {
    doc! {"_id": id, "_chunked": {"$exists": false}}
}

/// The MongoDB store. Cloning is cheap: clones share the driver's connection pool.
#[derive(Clone, Debug)]
pub struct MongoStore {
    client: Client,
    db: Database,
    /// Whether the server runs multi-document transactions.
    transactions: bool,
    /// Size above which a top-level field goes to chunks.
    chunk_threshold: usize,
    /// The documents (as stored, with their revision) this handle wrote last, for a short
    /// while: see [`MongoStore::update_revision`].
    recent: Recent,
}

/// How many recently written documents a handle remembers, and for how long.
const RECENT_CAPACITY: u64 = 1_000;
const RECENT_TTL: Duration = Duration::from_secs(5);

/// Recently written documents by collection and id (see [`MongoStore::update_revision`]).
#[derive(Clone)]
struct Recent(moka::sync::Cache<(Collection, String), Document>);

impl std::fmt::Debug for Recent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Recent({} documents)", self.0.entry_count())
    }
}

impl Recent {
    fn new() -> Self {
        Self(
            moka::sync::Cache::builder()
                .max_capacity(RECENT_CAPACITY)
                .time_to_live(RECENT_TTL)
                .build(),
        )
    }

    /// Remembers a document just written, if it names no chunks (a chunked one is always read).
    fn remember(&self, c: Collection, id: &str, stored: Document) {
        if stored.contains_key("_chunked") {
            self.forget(c, id);
        } else {
            self.0.insert((c, id.to_string()), stored);
        }
    }

    /// Takes the remembered document out (the caller writes it, or drops it as stale).
    fn take(&self, c: Collection, id: &str) -> Option<Document> {
        self.0.remove(&(c, id.to_string()))
    }

    /// Forgets the document (written by a path that does not track its revision).
    fn forget(&self, c: Collection, id: &str) {
        self.0.invalidate(&(c, id.to_string()));
    }
}

/// Maps a driver error to [`StoreError::Backend`] with context.
fn backend(context: impl std::fmt::Display) -> impl FnOnce(MongoError) -> StoreError {
    move |e| StoreError::Backend(format!("{context}: {e}"))
}

/// The field a TTL index expires documents of this collection on, if any.
fn expiry_field(c: Collection) -> Option<&'static str> {
    match c {
        Collection::Tokens => Some("expiry"),
        Collection::KeyValuePairs | Collection::PreprocessState => Some("expire_timestamp"),
        _ => None,
    }
}

/// The expiry instant of an RFC 3339 timestamp field.
fn expire_at(v: Option<&Value>) -> Option<DateTime> {
    let ts = chrono::DateTime::parse_from_rfc3339(v?.as_str()?).ok()?;
    Some(DateTime::from_millis(ts.timestamp_millis()))
}

/// `_id` range holding the chunks of one generation (or of one field of it, with `field`).
fn chunk_range(gen: &str, field: Option<&str>) -> Document {
    match field {
        None => doc! {"_id": {"$gte": format!("{gen}/"), "$lt": format!("{gen}0")}},
        Some(f) => doc! {
            "_id": {"$gte": format!("{gen}/{f}/"), "$lt": format!("{gen}/{f}0")},
            "field": f,
        },
    }
}

/// Reads a whole cursor.
async fn drain(mut cursor: Cursor<Document>, what: &str) -> Result<Vec<Document>> {
    let mut out = Vec::new();
    while cursor.advance().await.map_err(backend(what))? {
        out.push(cursor.deserialize_current().map_err(backend(what))?);
    }
    Ok(out)
}

/// The top-level fields of a document or patch, as stored, with its large fields moved out.
struct Encoded {
    /// Escaped field names and values; a chunked field holds `null`.
    fields: Document,
    /// Chunked fields: escaped name and JSON text.
    chunked: Vec<(String, Vec<u8>)>,
}

impl Encoded {
    /// The chunk documents of the chunked fields, under generation `gen`.
    fn chunk_docs(&self, id: &str, gen: &str) -> Vec<Document> {
        let mut out = Vec::new();
        for (field, text) in &self.chunked {
            for (n, piece) in text.chunks(CHUNK_SIZE).enumerate() {
                out.push(doc! {
                    "_id": format!("{gen}/{field}/{n:08}"),
                    "doc": id,
                    "field": field.as_str(),
                    "n": n as i64,
                    "data": Binary { subtype: BinarySubtype::Generic, bytes: piece.to_vec() },
                });
            }
        }
        out
    }
}

/// One validated write of a batch.
enum Op {
    Put {
        collection: Collection,
        id: String,
        /// The stored document.
        doc: Document,
        /// Generation of its chunks, when it has any.
        gen: Option<String>,
        /// Chunk documents to write before it.
        chunks: Vec<Document>,
    },
    Delete {
        collection: Collection,
        id: String,
    },
}

/// Generations named by a stored document's `_chunked` map.
fn generations(doc: &Document) -> Vec<(String, String)> {
    match doc.get("_chunked") {
        Some(Bson::Document(m)) => m
            .iter()
            .filter_map(|(f, g)| g.as_str().map(|g| (f.clone(), g.to_string())))
            .collect(),
        _ => Vec::new(),
    }
}

impl MongoStore {
    /// Connects to the server of a `mongodb://` URL and opens the database it names (or
    /// [`DEFAULT_DATABASE`]), creating the indexes that are missing.
    pub async fn connect(url: &str) -> Result<Self> {
        let opts = ClientOptions::parse(url)
            .await
            .map_err(backend("invalid MongoDB url"))?;
        let db = opts
            .default_database
            .clone()
            .unwrap_or_else(|| DEFAULT_DATABASE.to_string());
        Self::open(opts, &db).await
    }

    /// Like [`MongoStore::connect`], on the database `db` whatever the URL names (tests give
    /// each run a database of its own).
    pub async fn connect_db(url: &str, db: &str) -> Result<Self> {
        let opts = ClientOptions::parse(url)
            .await
            .map_err(backend("invalid MongoDB url"))?;
        Self::open(opts, db).await
    }

    async fn open(mut opts: ClientOptions, db_name: &str) -> Result<Self> {
        if opts.app_name.is_none() {
            opts.app_name = Some("st2".into());
        }
        if opts.server_selection_timeout.is_none() {
            opts.server_selection_timeout = Some(Duration::from_secs(10));
        }
        if tracing::enabled!(target: COMMAND_LOG, tracing::Level::TRACE) {
            opts.command_event_handler = Some(EventHandler::callback(log_command));
        }
        let client = Client::with_options(opts).map_err(backend("invalid MongoDB options"))?;
        let db = client.database(db_name);
        let hello = db
            .run_command(doc! {"hello": 1})
            .await
            .map_err(backend("cannot reach the MongoDB server"))?;
        // Transactions need sessions and a replica set member or a mongos.
        let transactions = hello.contains_key("logicalSessionTimeoutMinutes")
            && (hello.contains_key("setName") || hello.get_str("msg") == Ok("isdbgrid"));
        let store = Self {
            client,
            db,
            transactions,
            chunk_threshold: DEFAULT_CHUNK_THRESHOLD,
            recent: Recent::new(),
        };
        store.create_indexes().await?;
        tracing::debug!(database = db_name, transactions, "opened MongoDB store");
        Ok(store)
    }

    /// Sets the size (bytes) above which a top-level field is stored in chunks.
    pub fn with_chunk_threshold(mut self, bytes: usize) -> Self {
        self.chunk_threshold = bytes.max(1);
        self
    }

    /// Turns multi-document transactions off (`false`: batches become ordered writes, as on a
    /// standalone server); `true` keeps them only where the server supports them.
    pub fn with_transactions(mut self, on: bool) -> Self {
        self.transactions &= on;
        self
    }

    /// Whether batches run in multi-document transactions (false: ordered writes).
    pub fn uses_transactions(&self) -> bool {
        self.transactions
    }

    /// The database this store uses.
    pub fn database(&self) -> &Database {
        &self.db
    }

    fn coll(&self, c: Collection) -> mongodb::Collection<Document> {
        self.db.collection(c.name())
    }

    fn chunks(&self, c: Collection) -> mongodb::Collection<Document> {
        self.db.collection(&format!("{}.chunks", c.name()))
    }

    async fn create_indexes(&self) -> Result<()> {
        for c in Collection::ALL {
            let mut models: Vec<IndexModel> = c
                .indexed_fields()
                .iter()
                .map(|f| {
                    IndexModel::builder()
                        .keys(doc! {(codec::path(f)): 1})
                        .build()
                })
                .collect();
            if expiry_field(c).is_some() {
                let ttl = IndexOptions::builder().expire_after(Duration::ZERO).build();
                models.push(
                    IndexModel::builder()
                        .keys(doc! {"_expire_at": 1})
                        .options(ttl)
                        .build(),
                );
            }
            self.coll(c)
                .create_indexes(models)
                .await
                .map_err(backend(format!(
                    "cannot create the indexes of {}",
                    c.name()
                )))?;
        }
        Ok(())
    }

    /// Escapes the top-level fields of `obj` and moves its large fields out.
    /// Fields of [`Collection::indexed_fields`] (and `id`) stay inline: they are small and
    /// must stay queryable.
    fn encode(&self, c: Collection, obj: &JsonMap) -> std::result::Result<Encoded, String> {
        let keep = |key: &str| {
            key == "id"
                || c.indexed_fields()
                    .iter()
                    .any(|f| f.split('.').next() == Some(key))
        };
        let mut fields = object_to_doc(obj, true);
        let mut chunked = Vec::new();
        let mut total = doc_size(&fields);
        if total > self.chunk_threshold {
            let mut sizes: Vec<(usize, String)> = fields
                .iter()
                .filter(|(k, _)| !keep(k))
                .map(|(k, v)| (field_size(k, v), k.clone()))
                .collect();
            sizes.sort_by_key(|s| std::cmp::Reverse(s.0));
            for (size, key) in sizes {
                if size <= self.chunk_threshold && total <= DOC_LIMIT {
                    break;
                }
                let value = obj
                    .get(unescape_key(&key).as_ref())
                    .ok_or_else(|| format!("field {key:?} vanished while encoding"))?;
                let text = serde_json::to_vec(value).map_err(|e| e.to_string())?;
                fields.insert(key.clone(), Bson::Null);
                total = total.saturating_sub(size) + field_size(&key, &Bson::Null);
                chunked.push((key, text));
            }
        }
        Ok(Encoded { fields, chunked })
    }

    /// Checks and encodes one write before anything of its batch is written.
    fn prepare(&self, write: Write) -> Result<Op> {
        match write {
            Write::Delete { collection, id } => Ok(Op::Delete { collection, id }),
            Write::Put { collection, doc } => {
                let invalid = |reason: &str| StoreError::InvalidDocument {
                    collection,
                    reason: reason.into(),
                };
                let (obj, id) = super::checked_document(collection, &doc)?;
                let enc = self.encode(collection, obj).map_err(|e| invalid(&e))?;
                let gen =
                    (!enc.chunked.is_empty()).then(|| uuid::Uuid::new_v4().simple().to_string());
                let chunks = gen
                    .as_deref()
                    .map(|g| enc.chunk_docs(&id, g))
                    .unwrap_or_default();
                let mut stored = doc! {"_id": id.as_str(), REVISION: revision()};
                if let Some(g) = &gen {
                    let map: Document = enc
                        .chunked
                        .iter()
                        .map(|(f, _)| (f.clone(), Bson::String(g.clone())))
                        .collect();
                    stored.insert("_chunked", map);
                }
                if let Some(t) = expiry_field(collection).and_then(|f| expire_at(obj.get(f))) {
                    stored.insert("_expire_at", t);
                }
                stored.extend(enc.fields);
                Ok(Op::Put {
                    collection,
                    id,
                    doc: stored,
                    gen,
                    chunks,
                })
            }
        }
    }

    /// Loads the chunks of one generation: field → JSON text.
    async fn load_chunks(&self, c: Collection, gen: &str) -> Result<HashMap<String, Vec<u8>>> {
        let cursor = self
            .chunks(c)
            .find(chunk_range(gen, None))
            .await
            .map_err(backend(format!("cannot read chunks of {}", c.name())))?;
        let docs = drain(cursor, "cannot read chunks").await?;
        let mut pieces: HashMap<String, Vec<(i64, Vec<u8>)>> = HashMap::new();
        for d in docs {
            let (Ok(field), Ok(n), Ok(data)) = (
                d.get_str("field"),
                d.get_i64("n"),
                d.get_binary_generic("data"),
            ) else {
                return Err(StoreError::Backend(format!(
                    "malformed chunk in {}.chunks",
                    c.name()
                )));
            };
            pieces
                .entry(field.to_string())
                .or_default()
                .push((n, data.clone()));
        }
        let mut out = HashMap::new();
        for (field, mut parts) in pieces {
            parts.sort_by_key(|p| p.0);
            if parts.iter().enumerate().any(|(i, p)| p.0 != i as i64) {
                return Err(StoreError::Backend(format!(
                    "chunks of field {field:?} (generation {gen}) in {} are incomplete",
                    c.name()
                )));
            }
            out.insert(field, parts.into_iter().flat_map(|p| p.1).collect());
        }
        Ok(out)
    }

    /// A stored document as the caller's JSON: backend fields dropped, chunked fields loaded
    /// (except those named in `skip`, left `null`).
    async fn decode(&self, c: Collection, mut d: Document, skip: &[String]) -> Result<Value> {
        let chunked = generations(&d);
        d.remove("_chunked");
        let mut obj = JsonMap::new();
        for (k, v) in d {
            if k.starts_with('_') {
                continue;
            }
            obj.insert(unescape_key(&k).into_owned(), from_bson(v));
        }
        let mut by_gen: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (field, gen) in chunked {
            if !skip.contains(&field) {
                by_gen.entry(gen).or_default().push(field);
            }
        }
        for (gen, fields) in by_gen {
            let mut texts = self.load_chunks(c, &gen).await?;
            for field in fields {
                let text = texts.remove(&field).ok_or_else(|| {
                    StoreError::Backend(format!(
                        "chunks of field {field:?} (generation {gen}) missing in {}",
                        c.name()
                    ))
                })?;
                let v: Value =
                    serde_json::from_slice(&text).map_err(|source| StoreError::Decode {
                        collection: c,
                        source,
                    })?;
                obj.insert(unescape_key(&field).into_owned(), v);
            }
        }
        Ok(Value::Object(obj))
    }

    /// Deletes chunk generations no document names any more (best effort: leftovers are
    /// unreferenced and harmless).
    async fn drop_chunks(&self, stale: Vec<(Collection, String, Option<String>)>) {
        for (c, gen, field) in stale {
            if let Err(e) = self
                .chunks(c)
                .delete_many(chunk_range(&gen, field.as_deref()))
                .await
            {
                tracing::warn!(collection = c.name(), gen, error = %e, "cannot delete stale chunks");
            }
        }
    }

    /// Applies `$set`/`$unset` to the document if its `field` is one of `expected`, as one
    /// update of the revision it read: returns that revision (the pre-image), or `None` when the
    /// document is missing or the field does not match. A document changed between the read and
    /// the update is read again.
    ///
    /// The first attempt skips the read when this handle wrote the document moments ago: it
    /// updates the revision it wrote (a status change right after the one before it, as the
    /// scheduler after the rules engine, or a runner's `running` then `succeeded`). If someone
    /// else wrote since, that update matches nothing and the document is read as usual.
    #[allow(clippy::too_many_arguments)]
    async fn update_revision(
        &self,
        collection: Collection,
        id: &str,
        field: &str,
        expected: &[Value],
        mut set: Document,
        unset: Document,
        what: &str,
    ) -> Result<Option<Document>> {
        let target = self.coll(collection);
        let read = || async {
            target
                .find_one(doc! {"_id": id})
                .await
                .map_err(backend(what))
        };
        let mut current = match self.recent.take(collection, id) {
            Some(known) => Some(known),
            None => read().await?,
        };
        for _ in 0..CAS_ATTEMPTS {
            let Some(before) = current else {
                return Ok(None);
            };
            let rev = before.get_i64(REVISION).ok();
            set.insert(REVISION, revision());
            let mut update = doc! {"$set": set.clone()};
            if !unset.is_empty() {
                update.insert("$unset", unset.clone());
            }
            let cond = filter::cas_filter(id, Some(rev), field, expected);
            let done = target
                .update_one(cond, update)
                .await
                .map_err(backend(what))?;
            if done.matched_count == 1 {
                let names_chunks = |d: &Document| d.keys().any(|k| k.starts_with("_chunked"));
                if names_chunks(&before) || names_chunks(&set) {
                    self.recent.forget(collection, id);
                } else {
                    let mut after = before.clone();
                    for (k, v) in &set {
                        after.insert(k.clone(), v.clone());
                    }
                    for k in unset.keys() {
                        after.remove(k);
                    }
                    self.recent.remember(collection, id, after);
                }
                return Ok(Some(before));
            }
            current = read().await?;
            // The same revision: nothing changed, so the field did not match.
            if current
                .as_ref()
                .is_some_and(|d| d.get_i64(REVISION).ok() == rev)
            {
                return Ok(None);
            }
        }
        Err(StoreError::Backend(format!(
            "{what}: the document kept changing ({CAS_ATTEMPTS} attempts)"
        )))
    }

    /// Runs the writes in order (inside `session`'s transaction when given); returns the chunk
    /// generations of the documents replaced or deleted.
    async fn run_ops(
        &self,
        ops: &[Op],
        mut session: Option<&mut ClientSession>,
        careful: bool,
    ) -> std::result::Result<Vec<(Collection, String, Option<String>)>, MongoError> {
        let mut stale = Vec::new();
        for op in ops {
            stale.extend(self.write_op(op, session.as_deref_mut(), careful).await?.1);
        }
        Ok(stale)
    }

    /// One put or delete: whether the document existed, and the chunk generations it named.
    ///
    /// Most documents name no chunks: unless `careful`, the write goes to the document only if
    /// it names none, without reading it first. Otherwise (or when that write did not apply)
    /// the chunk map is read, then the document written by id. Outside a transaction a write
    /// in between can at worst leave unreferenced chunks behind; inside one it makes the
    /// transaction conflict. A put that meets a document naming chunks fails with "duplicate
    /// key": outside a transaction it goes on to the reading path, inside one the error
    /// aborts the transaction, which is run again `careful`.
    async fn write_op(
        &self,
        op: &Op,
        mut session: Option<&mut ClientSession>,
        careful: bool,
    ) -> std::result::Result<(bool, Vec<(Collection, String, Option<String>)>), MongoError> {
        let (collection, id) = match op {
            Op::Put { collection, id, .. } | Op::Delete { collection, id } => (*collection, id),
        };
        let target = self.coll(collection);
        if !careful {
            let done = match op {
                Op::Put { doc, .. } => {
                    let mut act = target.replace_one(unchunked(id), doc).upsert(true);
                    if let Some(s) = session.as_deref_mut() {
                        act = act.session(s);
                    }
                    match act.await {
                        Ok(_) => true,
                        Err(e) if is_duplicate_key(&e) && session.is_none() => false,
                        Err(e) => return Err(e),
                    }
                }
                Op::Delete { .. } => {
                    let mut act = target.delete_one(unchunked(id));
                    if let Some(s) = session.as_deref_mut() {
                        act = act.session(s);
                    }
                    act.await?.deleted_count == 1
                }
            };
            if done {
                return Ok((true, Vec::new()));
            }
        }
        let by_id = doc! {"_id": id.as_str()};
        let mut read = target
            .find_one(by_id.clone())
            .projection(doc! {"_chunked": 1});
        if let Some(s) = session.as_deref_mut() {
            read = read.session(s);
        }
        let old = read.await?;
        let existed = match op {
            Op::Put { doc, .. } => {
                let mut act = target.replace_one(by_id, doc).upsert(true);
                if let Some(s) = session.as_deref_mut() {
                    act = act.session(s);
                }
                act.await?;
                old.is_some()
            }
            Op::Delete { .. } => {
                let mut act = target.delete_one(by_id);
                if let Some(s) = session {
                    act = act.session(s);
                }
                act.await?.deleted_count == 1
            }
        };
        let mut gens: Vec<String> = old
            .iter()
            .flat_map(|o| generations(o).into_iter().map(|g| g.1))
            .collect();
        gens.sort();
        gens.dedup();
        Ok((
            existed,
            gens.into_iter().map(|g| (collection, g, None)).collect(),
        ))
    }

    /// Validates every write, then runs them: in one transaction when `atomic` and the server
    /// has them, else as ordered writes.
    async fn write_batch(&self, writes: Vec<Write>, atomic: bool) -> Result<()> {
        let ops = writes
            .into_iter()
            .map(|w| self.prepare(w))
            .collect::<Result<Vec<_>>>()?;
        if ops.is_empty() {
            return Ok(());
        }
        for op in &ops {
            let (Op::Put { collection, id, .. } | Op::Delete { collection, id }) = op;
            self.recent.forget(*collection, id);
        }
        // Chunks first: invisible until a document names their generation.
        let mut fresh = Vec::new();
        for op in &ops {
            if let Op::Put {
                collection,
                gen: Some(gen),
                chunks,
                ..
            } = op
            {
                self.chunks(*collection)
                    .insert_many(chunks)
                    .await
                    .map_err(backend(format!("cannot write chunks of {collection:?}")))?;
                fresh.push((*collection, gen.clone(), None));
            }
        }
        // One write is atomic on its own: no transaction needed.
        let transaction = atomic && self.transactions && ops.len() > 1;
        let result = if transaction {
            self.run_in_transaction(&ops).await
        } else {
            self.run_ops(&ops, None, false).await
        };
        match result {
            Ok(stale) => {
                self.drop_chunks(stale).await;
                Ok(())
            }
            Err(e) => {
                // Without a transaction some documents may name the new chunks: keep them.
                if transaction {
                    self.drop_chunks(fresh).await;
                }
                Err(StoreError::Backend(format!(
                    "cannot apply write batch: {e}"
                )))
            }
        }
    }

    /// Runs the writes in one transaction, retrying it on transient errors.
    async fn run_in_transaction(
        &self,
        ops: &[Op],
    ) -> std::result::Result<Vec<(Collection, String, Option<String>)>, MongoError> {
        let mut session = self.client.start_session().await?;
        let started = std::time::Instant::now();
        let mut attempt = 0;
        let mut careful = false;
        loop {
            attempt += 1;
            session.start_transaction().await?;
            let stale = match self.run_ops(ops, Some(&mut session), careful).await {
                Ok(stale) => stale,
                Err(e) => {
                    let _ = session.abort_transaction().await;
                    if is_duplicate_key(&e) && !careful {
                        careful = true;
                        continue;
                    }
                    if e.contains_label(TRANSIENT_TRANSACTION_ERROR)
                        && started.elapsed() < TXN_RETRY_BUDGET
                    {
                        tokio::time::sleep(conflict_backoff(attempt)).await;
                        continue;
                    }
                    return Err(e);
                }
            };
            let mut commits = 0;
            loop {
                commits += 1;
                match session.commit_transaction().await {
                    Ok(()) => return Ok(stale),
                    Err(e)
                        if e.contains_label(UNKNOWN_TRANSACTION_COMMIT_RESULT)
                            && commits < COMMIT_ATTEMPTS => {}
                    Err(e) if e.contains_label(TRANSIENT_TRANSACTION_ERROR) => break,
                    Err(e) => return Err(e),
                }
            }
            if started.elapsed() >= TXN_RETRY_BUDGET {
                return Err(MongoError::custom("transaction kept conflicting"));
            }
            tokio::time::sleep(conflict_backoff(attempt)).await;
        }
    }
}

#[async_trait]
impl Store for MongoStore {
    async fn get(&self, collection: Collection, id: &str) -> Result<Option<Value>> {
        // A concurrent replace may delete the chunks of the version just read: read again.
        let mut tries = 0;
        loop {
            tries += 1;
            let found = self
                .coll(collection)
                .find_one(doc! {"_id": id})
                .await
                .map_err(backend(format!(
                    "cannot read {collection:?} document {id:?}"
                )))?;
            let Some(d) = found else { return Ok(None) };
            match self.decode(collection, d, &[]).await {
                Err(StoreError::Backend(_)) if tries < 3 => continue,
                other => return other.map(Some),
            }
        }
    }

    async fn find(&self, collection: Collection, query: &Query) -> Result<Vec<Value>> {
        if query.limit == Some(0) {
            return Ok(Vec::new());
        }
        let target = self.coll(collection);
        let mut act = target
            .find(filter::filter(query))
            .sort(filter::sort(query))
            .skip(query.offset);
        if let Some(limit) = query.limit {
            act = act.limit(i64::try_from(limit).unwrap_or(i64::MAX));
        }
        let what = format!("cannot query {collection:?}");
        let cursor = act.await.map_err(backend(&what))?;
        let mut out = Vec::new();
        for d in drain(cursor, &what).await? {
            out.push(self.decode(collection, d, &[]).await?);
        }
        Ok(out)
    }

    async fn count(&self, collection: Collection, query: &Query) -> Result<u64> {
        self.coll(collection)
            .count_documents(filter::filter(query))
            .await
            .map_err(backend(format!("cannot count {collection:?}")))
    }

    async fn apply(&self, writes: Vec<Write>) -> Result<()> {
        self.write_batch(writes, true).await
    }

    /// Ordered writes, no transaction: one operation per write and no commit.
    async fn apply_each(&self, writes: Vec<Write>) -> Result<()> {
        self.write_batch(writes, false).await
    }

    /// One `$push` when no appended field is in chunks (the server refuses one that is not an
    /// array or missing). A document that does not take it (a field in chunks or `null`, or one grown past the
    /// server's document limit) is read, appended to and written back by compare-and-set on its
    /// id: that path is not atomic against a concurrent append.
    async fn append(&self, collection: Collection, id: &str, values: JsonMap) -> Result<bool> {
        self.recent.forget(collection, id);
        if let Some((field, _)) = values.iter().find(|(_, v)| !v.is_array()) {
            return Err(StoreError::InvalidDocument {
                collection,
                reason: format!("append to {field:?}: the items are not an array"),
            });
        }
        let what = format!("cannot append to {collection:?} document {id:?}");
        let mut cond = doc! {"_id": id};
        let mut push = Document::new();
        for (k, v) in object_to_doc(&values, true) {
            cond.insert(format!("_chunked.{k}"), doc! {"$exists": false});
            push.insert(k, doc! {"$each": v});
        }
        let update = doc! {"$push": push, "$set": {REVISION: revision()}};
        match self.coll(collection).update_one(cond, update).await {
            Ok(done) if done.matched_count == 1 => return Ok(true),
            Ok(_) => {}
            Err(e) => {
                tracing::debug!(collection = collection.name(), id, error = %e, "append by $push refused; rewriting the document")
            }
        }
        let Some(Value::Object(mut doc)) = self.get(collection, id).await? else {
            return Ok(false);
        };
        let fields: Vec<String> = values.keys().cloned().collect();
        crate::store::append_to(collection, &mut doc, values)?;
        let patch: JsonMap = fields
            .into_iter()
            .filter_map(|f| doc.remove(&f).map(|v| (f, v)))
            .collect();
        let done = self
            .compare_and_set_text(collection, id, "id", &[Value::from(id)], patch)
            .await
            .map_err(|e| StoreError::Backend(format!("{what}: {e}")))?;
        Ok(done.is_some())
    }

    async fn insert_new(&self, collection: Collection, doc: Value) -> Result<bool> {
        let Op::Put {
            id,
            doc,
            gen,
            chunks,
            ..
        } = self.prepare(Write::Put { collection, doc })?
        else {
            unreachable!("a put prepares into a put")
        };
        if !chunks.is_empty() {
            self.chunks(collection)
                .insert_many(&chunks)
                .await
                .map_err(backend(format!("cannot write chunks of {collection:?}")))?;
        }
        match self.coll(collection).insert_one(&doc).await {
            Ok(_) => {
                self.recent.remember(collection, &id, doc);
                Ok(true)
            }
            Err(e) => {
                if let Some(g) = gen {
                    self.drop_chunks(vec![(collection, g, None)]).await;
                }
                if is_duplicate_key(&e) {
                    Ok(false)
                } else {
                    Err(StoreError::Backend(format!(
                        "cannot insert {collection:?} {id:?}: {e}"
                    )))
                }
            }
        }
    }

    async fn compare_and_set(
        &self,
        collection: Collection,
        id: &str,
        field: &str,
        expected: &[Value],
        patch: JsonMap,
    ) -> Result<Option<Value>> {
        if patch.get("id").is_some_and(|new| new.as_str() != Some(id)) {
            return Err(StoreError::InvalidDocument {
                collection,
                reason: format!("compare-and-set on {id:?} may not change its id"),
            });
        }
        if expected.is_empty() {
            return Ok(None);
        }
        let what = format!("compare-and-set on {collection:?} document {id:?}");
        if patch.is_empty() {
            let found = self
                .coll(collection)
                .find_one(filter::cas_filter(id, None, field, expected))
                .await
                .map_err(backend(&what))?;
            return match found {
                Some(d) => self.decode(collection, d, &[]).await.map(Some),
                None => Ok(None),
            };
        }
        let enc = self
            .encode(collection, &patch)
            .map_err(|reason| StoreError::InvalidDocument { collection, reason })?;
        let gen = (!enc.chunked.is_empty()).then(|| uuid::Uuid::new_v4().simple().to_string());
        if let Some(g) = &gen {
            self.chunks(collection)
                .insert_many(enc.chunk_docs(id, g))
                .await
                .map_err(backend(format!("{what}: cannot write chunks")))?;
        }
        let patched: Vec<String> = enc.fields.keys().cloned().collect();
        let mut set = Document::new();
        let mut unset = Document::new();
        for (k, v) in enc.fields {
            let marker = format!("_chunked.{k}");
            match &gen {
                Some(g) if enc.chunked.iter().any(|(f, _)| *f == k) => {
                    set.insert(marker, g.as_str());
                }
                _ => {
                    unset.insert(marker, "");
                }
            }
            set.insert(k, v);
        }
        if let Some(f) = expiry_field(collection) {
            if let Some(v) = patch.get(f) {
                match expire_at(Some(v)) {
                    Some(t) => {
                        set.insert("_expire_at", t);
                    }
                    None => {
                        unset.insert("_expire_at", "");
                    }
                }
            }
        }
        let before = self
            .update_revision(collection, id, field, expected, set, unset, &what)
            .await;
        let before = match before {
            Ok(Some(b)) => b,
            other => {
                if let Some(g) = gen {
                    self.drop_chunks(vec![(collection, g, None)]).await;
                }
                return other.map(|_| None);
            }
        };
        let stale: Vec<_> = generations(&before)
            .into_iter()
            .filter(|(f, _)| patched.contains(f))
            .map(|(f, g)| (collection, g, Some(f)))
            .collect();
        let mut doc = self.decode(collection, before, &patched).await?;
        if let Some(obj) = doc.as_object_mut() {
            obj.extend(patch);
        }
        self.drop_chunks(stale).await;
        Ok(Some(doc))
    }

    /// One update when no patched field is in chunks (nothing to clean up after, so no
    /// pre-image is needed); otherwise, or when it matched nothing, the reading path decides.
    async fn set_if(
        &self,
        collection: Collection,
        id: &str,
        field: &str,
        expected: &[Value],
        patch: JsonMap,
    ) -> Result<bool> {
        self.recent.forget(collection, id);
        let small = self
            .encode(collection, &patch)
            .ok()
            .filter(|enc| enc.chunked.is_empty() && !patch.contains_key("id"));
        let Some(enc) =
            small.filter(|_| !expected.is_empty() && expiry_field(collection).is_none())
        else {
            return Ok(self
                .compare_and_set_text(collection, id, field, expected, patch)
                .await?
                .is_some());
        };
        let mut cond = filter::cas_filter(id, None, field, expected);
        let mut set = enc.fields;
        for k in set.keys() {
            cond.insert(format!("_chunked.{k}"), doc! {"$exists": false});
        }
        set.insert(REVISION, revision());
        let done = self
            .coll(collection)
            .update_one(cond, doc! {"$set": set})
            .await
            .map_err(backend(format!(
                "compare-and-set on {collection:?} document {id:?}"
            )))?;
        if done.matched_count == 1 {
            return Ok(true);
        }
        Ok(self
            .compare_and_set_text(collection, id, field, expected, patch)
            .await?
            .is_some())
    }

    /// "Existed" is exact even under concurrent deletes: it is what the delete itself
    /// answered.
    async fn delete(&self, collection: Collection, id: &str) -> Result<bool> {
        self.recent.forget(collection, id);
        let op = Op::Delete {
            collection,
            id: id.to_string(),
        };
        let (existed, stale) = self
            .write_op(&op, None, false)
            .await
            .map_err(backend(format!("cannot delete {collection:?} {id:?}")))?;
        self.drop_chunks(stale).await;
        Ok(existed)
    }
}

/// Whether a write failed because a document with that `_id` already exists (code 11000).
fn is_duplicate_key(e: &MongoError) -> bool {
    use mongodb::error::{ErrorKind, WriteFailure};
    match e.kind.as_ref() {
        ErrorKind::Write(WriteFailure::WriteError(w)) => w.code == 11000,
        ErrorKind::InsertMany(m) => m
            .write_errors
            .as_ref()
            .is_some_and(|ws| ws.iter().any(|w| w.code == 11000)),
        ErrorKind::Command(c) => c.code == 11000,
        _ => false,
    }
}
