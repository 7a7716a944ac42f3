//! Bus errors.

/// What can go wrong on a bus.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// Publish or subscribe named an exchange nobody declared (AMQP: `NOT_FOUND`).
    #[error("exchange {exchange:?} is not declared")]
    UnknownExchange {
        /// The exchange named.
        exchange: String,
    },
    /// A queue already exists with other properties (AMQP: `PRECONDITION_FAILED`).
    #[error("queue {queue:?} already exists with {reason}")]
    QueueMismatch {
        /// The queue.
        queue: String,
        /// Which property differs, with both values.
        reason: String,
    },
    /// A subscription spec or a name is invalid.
    #[error("invalid {what}: {reason}")]
    Invalid {
        /// What was invalid (`queue name`, `prefetch`, ...).
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// The message could not be encoded as JSON.
    #[error("cannot encode message: {source}")]
    Encode {
        /// The serde error.
        source: serde_json::Error,
    },
    /// The message body is not the JSON expected.
    #[error("cannot decode {content_type:?} message: {source}")]
    Decode {
        /// The message's content type.
        content_type: String,
        /// The serde error.
        source: serde_json::Error,
    },
    /// [`Bus::try_publish`](super::Bus::try_publish) found a queue with
    /// [`Overflow::Block`](super::Overflow::Block) full; nothing was enqueued (AMQP:
    /// `reject-publish` nack).
    #[error("queue {queue:?} is full")]
    Full {
        /// The full queue.
        queue: String,
    },
    /// The bus was closed.
    #[error("bus is closed")]
    Closed,
    /// The backend failed (connection, channel, broker refusal, ...).
    #[error("bus backend error: {0}")]
    Backend(String),
}
