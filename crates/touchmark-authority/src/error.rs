//! The authority's error: what a caller (the server, the CLI) needs to answer, with a stable
//! code, and nothing of the storage driver.

use touchmark_core::code::{ErrorCode, Refusal};
use touchmark_core::event::Logged;
use touchmark_core::field::FieldError;
use touchmark_store::StoreError;

/// Why the authority did not do what was asked.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum AuthorityError {
    /// A provisioning request was refused by a check of design.md §4, and the refusal was logged.
    #[error("{}", refusal.message)]
    Refused {
        /// The stable code and its message.
        refusal: Refusal,
        /// Where the refusal was logged.
        logged: Logged,
    },
    /// A station refused at check 1 again inside its refusal window: nothing was done and
    /// nothing was logged now; the refusal is counted into the window's alert. The code is
    /// `rate_limited`.
    #[error("{}", refusal.message)]
    RateLimited {
        /// The `rate_limited` refusal, naming the code it stands for.
        refusal: Refusal,
        /// How long until the window ends.
        retry_after: std::time::Duration,
    },
    /// A field of the request is not acceptable.
    #[error("{0}")]
    Invalid(#[from] FieldError),
    /// The named record does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// A rule refused the change, or the stored state does not allow it. The refusal's code is
    /// `conflict`, `invalid_request`, or a CSR code at enrollment; nothing was changed.
    #[error("{}", .0.message)]
    Denied(Refusal),
    /// The enrollment token is unknown, used or expired.
    #[error("the enrollment token is unknown, already used or expired")]
    EnrollmentTokenInvalid,
    /// The database is busy or unreachable; nothing was done, and the request may be sent
    /// again shortly. The text is for the server's log only.
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    /// Something failed inside: storage, a key, a stored value. The text is for the server's
    /// log only; a client is told only that it failed.
    #[error("internal error: {0}")]
    Internal(String),
}

impl AuthorityError {
    /// The stable code of this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Refused { refusal, .. }
            | Self::RateLimited { refusal, .. }
            | Self::Denied(refusal) => refusal.code,
            Self::Invalid(e) => e.code(),
            Self::NotFound(_) => ErrorCode::NotFound,
            Self::EnrollmentTokenInvalid => ErrorCode::EnrollmentTokenInvalid,
            Self::Unavailable(_) => ErrorCode::Unavailable,
            Self::Internal(_) => ErrorCode::Internal,
        }
    }

    /// A failure inside, for the log.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        Self::Internal(cause.to_string())
    }

    /// A refusal with `code` and `message` that changed nothing.
    pub fn denied(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::Denied(Refusal::new(code, message))
    }
}

impl From<StoreError> for AuthorityError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(record) => Self::NotFound(record.to_string()),
            StoreError::Exists(_) | StoreError::Constraint(_) => {
                // The domain's words: "product p exists already", "this serial is already
                // certified". A driver's message never gets here.
                Self::denied(ErrorCode::Conflict, e.to_string())
            }
            StoreError::Refused(refusal) => Self::Denied(refusal),
            StoreError::EnrollmentTokenInvalid => Self::EnrollmentTokenInvalid,
            StoreError::Unavailable(why) => Self::Unavailable(why),
            other => Self::internal(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use touchmark_store::{Constraint, RecordKind};

    use super::*;

    #[test]
    fn store_errors_keep_their_meaning_and_lose_driver_text() {
        let cases = [
            (
                StoreError::not_found(RecordKind::Order, "PO-1"),
                ErrorCode::NotFound,
                "order PO-1 not found",
            ),
            (
                StoreError::exists(RecordKind::Product, "p"),
                ErrorCode::Conflict,
                "product p exists already",
            ),
            (
                StoreError::Constraint(Constraint::Other("products_pkey".into())),
                ErrorCode::Conflict,
                "the change conflicts with a stored record",
            ),
            (
                StoreError::Refused(Refusal::new(ErrorCode::Conflict, "order PO-1 is closed")),
                ErrorCode::Conflict,
                "order PO-1 is closed",
            ),
            (
                StoreError::EnrollmentTokenInvalid,
                ErrorCode::EnrollmentTokenInvalid,
                "the enrollment token is unknown, already used or expired",
            ),
            (
                StoreError::Database("connection refused by 10.0.0.5".into()),
                ErrorCode::Internal,
                "internal error: database error: connection refused by 10.0.0.5",
            ),
        ];
        for (store, code, text) in cases {
            let e = AuthorityError::from(store);
            assert_eq!((e.code(), e.to_string().as_str()), (code, text));
        }
    }
}
