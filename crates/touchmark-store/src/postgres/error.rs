//! The one place where PostgreSQL errors become [`StoreError`]s, and the test for the errors a
//! transaction may simply be run again after.

use crate::StoreError;

/// SQLSTATE `unique_violation`.
const UNIQUE_VIOLATION: &str = "23505";
/// SQLSTATE `check_violation`.
const CHECK_VIOLATION: &str = "23514";
/// SQLSTATE `foreign_key_violation`.
const FOREIGN_KEY_VIOLATION: &str = "23503";
/// SQLSTATE `serialization_failure`.
const SERIALIZATION_FAILURE: &str = "40001";
/// SQLSTATE `deadlock_detected`.
const DEADLOCK_DETECTED: &str = "40P01";

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            // A constraint violation is a domain conflict (a duplicate id, serial or key); the
            // schema's constraints are the last line of defence behind the checks in the code.
            sqlx::Error::Database(db)
                if matches!(
                    db.code().as_deref(),
                    Some(UNIQUE_VIOLATION | CHECK_VIOLATION | FOREIGN_KEY_VIOLATION)
                ) =>
            {
                Self::Conflict(db.message().to_owned())
            }
            // A value that does not decode into its Rust type was written outside Touchmark.
            sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) => {
                Self::Corrupt(e.to_string())
            }
            sqlx::Error::PoolClosed => Self::Closed,
            _ => Self::Database(e.to_string()),
        }
    }
}

/// Whether `e` says the transaction lost a race with another one and may simply be run again:
/// a unique key that a concurrent transaction (perhaps on another replica) committed first, a
/// deadlock, or a serialization failure. Run again, the transaction's checks see the committed
/// row and answer as if the two had never overlapped.
pub(super) fn is_retryable(e: &sqlx::Error) -> bool {
    matches!(
        e,
        sqlx::Error::Database(db) if matches!(
            db.code().as_deref(),
            Some(UNIQUE_VIOLATION | SERIALIZATION_FAILURE | DEADLOCK_DETECTED)
        )
    )
}
