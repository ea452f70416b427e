//! The one place where PostgreSQL errors become [`StoreError`]s (a constraint violation by the
//! name of the constraint, never by the server's message), and the test for the errors a
//! transaction may simply be run again after.

use crate::{Constraint, RecordKind, StoreError};

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
            sqlx::Error::Database(db) => match db.code().as_deref() {
                Some(UNIQUE_VIOLATION) => Self::Constraint(unique(db.constraint())),
                Some(FOREIGN_KEY_VIOLATION) => Self::Constraint(Constraint::MissingReference),
                Some(CHECK_VIOLATION) => Self::Constraint(Constraint::InvalidValue),
                _ => Self::Database(e.to_string()),
            },
            // A value that does not decode into its Rust type was written outside Touchmark.
            sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) => {
                Self::Corrupt(e.to_string())
            }
            sqlx::Error::PoolClosed => Self::Closed,
            _ => Self::Database(e.to_string()),
        }
    }
}

/// Names a unique constraint of `migrations/postgres` by what it guards.
fn unique(name: Option<&str>) -> Constraint {
    match name {
        Some("tokens_pkey") => Constraint::DuplicateId(RecordKind::Token),
        Some("products_pkey") => Constraint::DuplicateId(RecordKind::Product),
        Some("factories_pkey") => Constraint::DuplicateId(RecordKind::Factory),
        Some("stations_pkey") => Constraint::DuplicateId(RecordKind::Station),
        Some("orders_pkey") => Constraint::DuplicateId(RecordKind::Order),
        Some("certificates_product_serial_key") => Constraint::SerialCertified,
        Some("certificates_pubkey_sha256_key") => Constraint::KeyCertified,
        other => Constraint::Other(other.unwrap_or("unnamed").to_owned()),
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
