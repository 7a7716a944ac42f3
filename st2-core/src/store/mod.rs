//! Persistence: the [`Store`] trait (one document collection per resource kind), typed
//! repositories over it, and the backends.
//!
//! Backends store JSON documents keyed by `id`; they know nothing of the model beyond the few
//! fields they index. Status changes go through [`Store::compare_and_set`]; everything one
//! registration writes goes through one [`Store::apply`] batch so it lands whole or not at all.
//! This module must not know about packs on disk, HTTP or the bus.

mod collection;
pub mod conformance;
pub mod embedded;
mod error;
pub mod mongo;
mod query;
mod repo;

pub use collection::Collection;
pub use embedded::EmbeddedStore;
pub use error::StoreError;
pub use mongo::MongoStore;
pub use query::{Filter, Query, Sort};
pub use repo::Repo;

use async_trait::async_trait;
use serde_json::Value;

use crate::model::JsonMap;

/// Result of store operations.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// One write of an atomic batch.
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    /// Insert or replace the document with this `id` (the document must carry a non-empty `id`).
    Put {
        /// Target collection.
        collection: Collection,
        /// The whole document.
        doc: Value,
    },
    /// Delete the document with this id (no error if absent).
    Delete {
        /// Target collection.
        collection: Collection,
        /// Document id.
        id: String,
    },
}

/// The persistence seam. Every backend (embedded SQLite, MongoDB) implements it and passes
/// [`conformance`].
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// The document with this id, if any.
    async fn get(&self, collection: Collection, id: &str) -> Result<Option<Value>>;

    /// Documents matching `query`, sorted and paged as it says.
    async fn find(&self, collection: Collection, query: &Query) -> Result<Vec<Value>>;

    /// How many documents match `query`'s filters (sort, limit and offset ignored).
    async fn count(&self, collection: Collection, query: &Query) -> Result<u64>;

    /// Applies every write, atomically: after a failure none of them is visible.
    async fn apply(&self, writes: Vec<Write>) -> Result<()>;

    /// Applies the writes in order, each atomic on its own but not all together: a failure
    /// part-way leaves the earlier ones applied. For writes whose partial application is
    /// harmless (a trace stored without its instance yet). A backend where one atomic batch
    /// costs no more than separate writes applies them as [`Store::apply`] does (the default).
    async fn apply_each(&self, writes: Vec<Write>) -> Result<()> {
        self.apply(writes).await
    }

    /// Merges `patch` into the document's top-level fields if, and only if, its `field` currently
    /// equals one of `expected`. Returns the updated document, or `None` when the document is
    /// missing or the field did not match (someone else won the race).
    async fn compare_and_set(
        &self,
        collection: Collection,
        id: &str,
        field: &str,
        expected: &[Value],
        patch: JsonMap,
    ) -> Result<Option<Value>>;

    /// [`Store::compare_and_set`], returning the updated document as JSON text: for callers
    /// that publish it as it is, decode it into their own type, or only need to know that they
    /// won. A backend that holds documents as text hands that text over without decoding it.
    async fn compare_and_set_text(
        &self,
        collection: Collection,
        id: &str,
        field: &str,
        expected: &[Value],
        patch: JsonMap,
    ) -> Result<Option<String>> {
        Ok(self
            .compare_and_set(collection, id, field, expected, patch)
            .await?
            .map(|doc| doc.to_string()))
    }

    /// [`Store::compare_and_set`] for callers that only need to know whether they won: `true`
    /// when the patch was merged. A backend may skip reading the document.
    async fn set_if(
        &self,
        collection: Collection,
        id: &str,
        field: &str,
        expected: &[Value],
        patch: JsonMap,
    ) -> Result<bool> {
        Ok(self
            .compare_and_set_text(collection, id, field, expected, patch)
            .await?
            .is_some())
    }

    /// Appends to array fields of the document with this id: each entry of `values` names a
    /// top-level field and holds an array whose items go at its end (a missing or `null` field
    /// starts empty). Appends racing on one document all land. Returns `false` when the
    /// document is missing; a field that holds something other than an array is an error.
    async fn append(&self, collection: Collection, id: &str, values: JsonMap) -> Result<bool>;

    /// Inserts `doc` only if no document with its `id` exists, atomically: of two racing
    /// inserts of the same id exactly one returns `true`. A document that exists is left as is.
    async fn insert_new(&self, collection: Collection, doc: Value) -> Result<bool>;

    /// Inserts or replaces one document.
    async fn put(&self, collection: Collection, doc: Value) -> Result<()> {
        self.apply(vec![Write::Put { collection, doc }]).await
    }

    /// Deletes one document; true if it existed.
    async fn delete(&self, collection: Collection, id: &str) -> Result<bool> {
        let existed = self.get(collection, id).await?.is_some();
        self.apply(vec![Write::Delete {
            collection,
            id: id.to_string(),
        }])
        .await?;
        Ok(existed)
    }
}

/// Typed access to each collection.
pub trait StoreExt: Store {
    /// The typed repository of documents of type `T`.
    fn repo<T: crate::model::Document>(&self) -> Repo<'_, T>
    where
        Self: Sized,
    {
        Repo::new(self)
    }
}

impl<S: Store> StoreExt for S {}

/// The object and non-empty string `id` of a document about to be written; every backend checks
/// a `Write::Put` with it before anything of its batch is written.
pub(crate) fn checked_document(collection: Collection, doc: &Value) -> Result<(&JsonMap, String)> {
    let invalid = |reason: &str| StoreError::InvalidDocument {
        collection,
        reason: reason.into(),
    };
    let obj = doc
        .as_object()
        .ok_or_else(|| invalid("document is not a JSON object"))?;
    match obj.get("id") {
        Some(Value::String(id)) if !id.is_empty() => Ok((obj, id.clone())),
        _ => Err(invalid("document has no non-empty string `id`")),
    }
}

/// Appends `values` (field → array of items) to the array fields of `doc` (see
/// [`Store::append`]).
pub(crate) fn append_to(collection: Collection, doc: &mut JsonMap, values: JsonMap) -> Result<()> {
    for (field, items) in values {
        let Value::Array(items) = items else {
            return Err(StoreError::InvalidDocument {
                collection,
                reason: format!("append to {field:?}: the items are not an array"),
            });
        };
        match doc.entry(field.clone()).or_insert(Value::Null) {
            v @ Value::Null => *v = Value::Array(items),
            Value::Array(have) => have.extend(items),
            _ => {
                return Err(StoreError::InvalidDocument {
                    collection,
                    reason: format!("append to {field:?}: the field is not an array"),
                })
            }
        }
    }
    Ok(())
}

/// Typed repository over a trait object store.
pub fn repo<T: crate::model::Document>(store: &dyn Store) -> Repo<'_, T> {
    Repo::new(store)
}
