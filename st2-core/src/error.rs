//! The crate error: every module's error gathered in one enum.

use crate::config::ConfigError;
use crate::datastore::DatastoreError;
use crate::packs::PackError;
use crate::schema::ContentError;
use crate::services::ServiceError;
use crate::store::StoreError;

/// Any st2-core failure.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Persistence failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A metadata file is invalid.
    #[error(transparent)]
    Content(#[from] ContentError),
    /// Configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Auth setup failed.
    #[error("auth: {0}")]
    Auth(String),
    /// The datastore failed.
    #[error(transparent)]
    Datastore(#[from] DatastoreError),
    /// A service call failed.
    #[error(transparent)]
    Service(#[from] ServiceError),
    /// Pack install / registration failed.
    #[error(transparent)]
    Pack(#[from] PackError),
}

/// Result with the crate error.
pub type Result<T, E = Error> = std::result::Result<T, E>;
