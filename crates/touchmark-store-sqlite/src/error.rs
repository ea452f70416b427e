//! The one place where SQLite errors become [`StoreError`]s: constraint violations by the name
//! of the column they guard, everything else as a database error for the server's log.

use touchmark_store::{Constraint, RecordKind, StoreError};

touchmark_store::backend_error!();

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        if let rusqlite::Error::SqliteFailure(code, message) = &e
            && code.code == rusqlite::ErrorCode::ConstraintViolation
        {
            return Self(StoreError::Constraint(constraint(
                message.as_deref().unwrap_or_default(),
            )));
        }
        Self(StoreError::Database(e.to_string()))
    }
}

/// Names the constraint in a message such as `UNIQUE constraint failed: products.id`.
fn constraint(message: &str) -> Constraint {
    let (kind, columns) = message
        .split_once(" constraint failed")
        .unwrap_or((message, ""));
    let columns = columns.trim_start_matches(':').trim();
    match (kind, columns) {
        ("UNIQUE", "tokens.id") => Constraint::DuplicateId(RecordKind::Token),
        ("UNIQUE", "products.id") => Constraint::DuplicateId(RecordKind::Product),
        ("UNIQUE", "factories.id") => Constraint::DuplicateId(RecordKind::Factory),
        ("UNIQUE", "stations.id") => Constraint::DuplicateId(RecordKind::Station),
        ("UNIQUE", "orders.id") => Constraint::DuplicateId(RecordKind::Order),
        ("UNIQUE", "certificates.product, certificates.serial") => Constraint::SerialCertified,
        ("UNIQUE", "certificates.pubkey_sha256") => Constraint::KeyCertified,
        ("UNIQUE", "certificates.test_sha256") => Constraint::TestRecordUsed,
        ("FOREIGN KEY", _) => Constraint::MissingReference,
        ("CHECK", _) | ("NOT NULL", _) => Constraint::InvalidValue,
        _ => Constraint::Other(message.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constraints_are_named_by_what_they_guard() {
        for (message, want) in [
            (
                "UNIQUE constraint failed: products.id",
                Constraint::DuplicateId(RecordKind::Product),
            ),
            (
                "UNIQUE constraint failed: certificates.product, certificates.serial",
                Constraint::SerialCertified,
            ),
            (
                "UNIQUE constraint failed: certificates.pubkey_sha256",
                Constraint::KeyCertified,
            ),
            (
                "UNIQUE constraint failed: certificates.test_sha256",
                Constraint::TestRecordUsed,
            ),
            (
                "FOREIGN KEY constraint failed",
                Constraint::MissingReference,
            ),
            (
                "CHECK constraint failed: issued >= 0 AND issued <= quota",
                Constraint::InvalidValue,
            ),
            (
                "UNIQUE constraint failed: events.idx",
                Constraint::Other("UNIQUE constraint failed: events.idx".into()),
            ),
        ] {
            assert_eq!(constraint(message), want, "{message}");
        }
    }
}
