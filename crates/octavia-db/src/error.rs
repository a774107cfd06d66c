//! Errors of the store; variants exist where callers branch.

/// What went wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The object (or a parent named in the request) does not exist.
    #[error("{kind} {id} not found")]
    NotFound { kind: &'static str, id: String },
    /// The write conflicts with the current state (locked LB, duplicate, in use).
    /// The message is user-facing, in Octavia's words.
    #[error("{0}")]
    Conflict(String),
    /// A project quota would be exceeded; names the resources.
    #[error("quota has been met for resources: {0}")]
    QuotaExceeded(String),
    /// The request is invalid with respect to stored data (bad marker, bad sort key).
    #[error("{0}")]
    Invalid(String),
    /// A transient failure (busy database, serialization failure, lost connection).
    #[error("database temporarily unavailable: {0}")]
    Retryable(String),
    /// Anything else from the driver.
    #[error("database error: {0}")]
    Other(String),
}
