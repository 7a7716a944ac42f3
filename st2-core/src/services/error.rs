//! Service errors.

use crate::bus::BusError;
use crate::schema::ContentError;
use crate::store::StoreError;
use crate::template::params::ParamError;

/// What a service call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// A referenced resource does not exist.
    #[error("{kind} \"{id}\" not found")]
    NotFound {
        /// Kind of resource (`action`, `trigger`, ...).
        kind: &'static str,
        /// Ref or id looked for.
        id: String,
    },
    /// The request is not acceptable (disabled action, bad payload, ...).
    #[error("{0}")]
    Invalid(String),
    /// Parameters did not render or validate.
    #[error(transparent)]
    Params(#[from] ParamError),
    /// A payload does not match its schema.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Schema(Vec<ContentError>),
    /// The status changed under us (someone else won a compare-and-set).
    #[error("execution {id} is no longer in status {expected}")]
    Conflict {
        /// Execution id.
        id: String,
        /// The status we expected.
        expected: String,
    },
    /// The pipeline is saturated; the caller should retry later (HTTP 503).
    #[error("{0}")]
    Busy(String),
    /// Persistence failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Messaging failed.
    #[error(transparent)]
    Bus(#[from] BusError),
}
