//! Store errors.

use super::Collection;

/// What can go wrong in a store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A document that had to exist does not.
    #[error("{collection:?} document {id:?} not found")]
    NotFound {
        /// Collection searched.
        collection: Collection,
        /// Id looked for.
        id: String,
    },
    /// A document could not be written as given.
    #[error("invalid document for {collection:?}: {reason}")]
    InvalidDocument {
        /// Target collection.
        collection: Collection,
        /// Why.
        reason: String,
    },
    /// A stored document does not match the model type.
    #[error("cannot decode {collection:?} document: {source}")]
    Decode {
        /// Collection read.
        collection: Collection,
        /// The serde error.
        source: serde_json::Error,
    },
    /// The backend failed (I/O, connection, SQL, ...).
    #[error("store backend error: {0}")]
    Backend(String),
}
