//! The storage error type, and the one place where database errors are mapped to it.

/// Why a storage operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The named record does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// The record exists already, or its state does not allow the change.
    #[error("{0}")]
    Conflict(String),
    /// The enrollment token is unknown, used or expired.
    #[error("the enrollment token is unknown, already used or expired")]
    EnrollmentTokenInvalid,
    /// A stored value does not parse: the database was changed outside Touchmark.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// The database failed or is unreachable.
    #[error("database error: {0}")]
    Database(String),
    /// The store is shutting down.
    #[error("the store is closed")]
    Closed,
    /// The caller's sequencer lease has expired or passed to another holder: it must not write.
    #[error("the sequencer lease is no longer held: {0}")]
    Fenced(String),
}

impl Clone for StoreError {
    fn clone(&self) -> Self {
        match self {
            Self::NotFound(m) => Self::NotFound(m.clone()),
            Self::Conflict(m) => Self::Conflict(m.clone()),
            Self::EnrollmentTokenInvalid => Self::EnrollmentTokenInvalid,
            Self::Corrupt(m) => Self::Corrupt(m.clone()),
            Self::Database(m) => Self::Database(m.clone()),
            Self::Closed => Self::Closed,
            Self::Fenced(m) => Self::Fenced(m.clone()),
        }
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        // A constraint violation is a domain conflict (a duplicate id, serial or key); the
        // schema's constraints are the last line of defence behind the checks in the code.
        if let rusqlite::Error::SqliteFailure(code, message) = &e
            && code.code == rusqlite::ErrorCode::ConstraintViolation
        {
            return Self::Conflict(
                message
                    .clone()
                    .unwrap_or_else(|| "constraint violated".into()),
            );
        }
        Self::Database(e.to_string())
    }
}
