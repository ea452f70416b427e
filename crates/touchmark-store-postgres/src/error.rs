//! The one place where PostgreSQL errors become [`StoreError`]s (a constraint violation by the
//! name of the constraint, never by the server's message), and the test for the errors a
//! transaction may simply be run again after.

use touchmark_store::{Constraint, RecordKind, StoreError};

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
/// SQLSTATE `lock_not_available`: a row stayed locked past `lock_timeout`.
const LOCK_NOT_AVAILABLE: &str = "55P03";
/// SQLSTATE class 08: connection exceptions.
const CONNECTION_EXCEPTION_CLASS: &str = "08";
/// SQLSTATE `admin_shutdown`, `crash_shutdown`, `cannot_connect_now`: the server is going down
/// or coming up.
const SERVER_GOING: [&str; 3] = ["57P01", "57P02", "57P03"];

touchmark_store::backend_error!();

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        Self(store_error(e))
    }
}

#[cfg(feature = "import-sqlite")]
impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        // Only the copy reads SQLite, read-only: any failure there is the source database's.
        Self(StoreError::Database(format!("the SQLite source: {e}")))
    }
}

/// What a driver error means to the store.
pub(crate) fn store_error(e: sqlx::Error) -> StoreError {
    match &e {
        // A constraint violation is a domain conflict (a duplicate id, serial or key); the
        // schema's constraints are the last line of defence behind the checks in the code.
        sqlx::Error::Database(db) => match db.code().as_deref() {
            Some(UNIQUE_VIOLATION) => StoreError::Constraint(unique(db.constraint())),
            Some(FOREIGN_KEY_VIOLATION) => StoreError::Constraint(Constraint::MissingReference),
            Some(CHECK_VIOLATION) => StoreError::Constraint(Constraint::InvalidValue),
            Some(LOCK_NOT_AVAILABLE) => StoreError::Unavailable(e.to_string()),
            Some(code)
                if code.starts_with(CONNECTION_EXCEPTION_CLASS) || SERVER_GOING.contains(&code) =>
            {
                StoreError::Unavailable(e.to_string())
            }
            _ => StoreError::Database(e.to_string()),
        },
        // The server cannot be reached, or no connection was free in time.
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::Tls(_) => {
            StoreError::Unavailable(e.to_string())
        }
        // A value that does not decode into its Rust type was written outside Touchmark.
        sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) => {
            StoreError::Corrupt(e.to_string())
        }
        sqlx::Error::PoolClosed => StoreError::Closed,
        _ => StoreError::Database(e.to_string()),
    }
}

/// Names a unique constraint of `migrations/` by what it guards.
fn unique(name: Option<&str>) -> Constraint {
    match name {
        Some("tokens_pkey") => Constraint::DuplicateId(RecordKind::Token),
        Some("products_pkey") => Constraint::DuplicateId(RecordKind::Product),
        Some("factories_pkey") => Constraint::DuplicateId(RecordKind::Factory),
        Some("stations_pkey") => Constraint::DuplicateId(RecordKind::Station),
        Some("orders_pkey") => Constraint::DuplicateId(RecordKind::Order),
        Some("certificates_product_serial_key") => Constraint::SerialCertified,
        Some("certificates_pubkey_sha256_key") => Constraint::KeyCertified,
        Some("certificates_by_test") => Constraint::TestRecordUsed,
        other => Constraint::Other(other.unwrap_or("unnamed").to_owned()),
    }
}

/// Whether `e` says the transaction lost a race with another one and may simply be run again:
/// a unique key (a serial, key or test record) that a concurrent transaction (perhaps on
/// another replica) committed first, a
/// deadlock, or a serialization failure. Run again, the transaction's checks see the committed
/// row and answer as if the two had never overlapped.
pub(crate) fn is_retryable(e: &sqlx::Error) -> bool {
    matches!(
        e,
        sqlx::Error::Database(db) if matches!(
            db.code().as_deref(),
            Some(UNIQUE_VIOLATION | SERIALIZATION_FAILURE | DEADLOCK_DETECTED)
        )
    )
}

/// Whether `e` says a row stayed locked past `lock_timeout`.
pub(crate) fn is_lock_timeout(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.code().as_deref() == Some(LOCK_NOT_AVAILABLE))
}
