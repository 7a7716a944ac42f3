//! Typed repositories: a [`Repo<T>`] reads and writes documents of one model type.

use std::marker::PhantomData;

use serde_json::Value;

use super::{Collection, Query, Result, Store, StoreError, Write};
use crate::model::{new_id, Document, JsonMap};

/// Typed view of one collection.
pub struct Repo<'s, T> {
    store: &'s dyn Store,
    _t: PhantomData<fn() -> T>,
}

impl<'s, T: Document> Repo<'s, T> {
    /// A repository over `store`.
    pub fn new(store: &'s dyn Store) -> Self {
        Self {
            store,
            _t: PhantomData,
        }
    }

    fn decode(v: Value) -> Result<T> {
        serde_json::from_value(v).map_err(|source| StoreError::Decode {
            collection: T::COLLECTION,
            source,
        })
    }

    /// Serialises a document for a [`Write::Put`], giving it an id if it has none.
    pub fn to_write(doc: &mut T) -> Result<Write> {
        if doc.id().is_empty() {
            doc.set_id(new_id());
        }
        let v = serde_json::to_value(&*doc).map_err(|e| StoreError::InvalidDocument {
            collection: T::COLLECTION,
            reason: e.to_string(),
        })?;
        Ok(Write::Put {
            collection: T::COLLECTION,
            doc: v,
        })
    }

    /// By id.
    pub async fn get(&self, id: &str) -> Result<Option<T>> {
        self.store
            .get(T::COLLECTION, id)
            .await?
            .map(Self::decode)
            .transpose()
    }

    /// By `ref` field (`pack.name`).
    pub async fn get_by_ref(&self, reference: &str) -> Result<Option<T>> {
        self.find_one(Query::all().eq("ref", reference)).await
    }

    /// By id or, failing that, by ref — what StackStorm's `/resource/{ref_or_id}` does.
    pub async fn get_by_ref_or_id(&self, key: &str) -> Result<Option<T>> {
        if let Some(found) = self.get(key).await? {
            return Ok(Some(found));
        }
        self.get_by_ref(key).await
    }

    /// First match of a query.
    pub async fn find_one(&self, query: Query) -> Result<Option<T>> {
        let q = query.page(0, Some(1));
        let mut docs = self.store.find(T::COLLECTION, &q).await?;
        docs.pop().map(Self::decode).transpose()
    }

    /// All matches of a query.
    pub async fn find(&self, query: &Query) -> Result<Vec<T>> {
        self.store
            .find(T::COLLECTION, query)
            .await?
            .into_iter()
            .map(Self::decode)
            .collect()
    }

    /// Count of matches.
    pub async fn count(&self, query: &Query) -> Result<u64> {
        self.store.count(T::COLLECTION, query).await
    }

    /// Inserts or replaces; assigns an id when missing. Returns the saved document.
    pub async fn save(&self, mut doc: T) -> Result<T> {
        let w = Self::to_write(&mut doc)?;
        self.store.apply(vec![w]).await?;
        Ok(doc)
    }

    /// Deletes by id; true if it existed.
    pub async fn delete(&self, id: &str) -> Result<bool> {
        self.store.delete(T::COLLECTION, id).await
    }

    /// Compare-and-set on `field` (see [`Store::compare_and_set`]).
    pub async fn compare_and_set(
        &self,
        id: &str,
        field: &str,
        expected: &[Value],
        patch: JsonMap,
    ) -> Result<Option<T>> {
        self.store
            .compare_and_set(T::COLLECTION, id, field, expected, patch)
            .await?
            .map(Self::decode)
            .transpose()
    }

    /// The collection this repository reads.
    pub fn collection(&self) -> Collection {
        T::COLLECTION
    }
}
