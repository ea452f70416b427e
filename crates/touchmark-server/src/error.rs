//! The one place where errors become HTTP responses: a stable code, a public message, and the
//! right status. Internal causes are logged here, never sent.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use touchmark_authority::AuthorityError;
use touchmark_authority::log::LogError;
use touchmark_core::api::{ErrorBody, ReceiptBody};
use touchmark_core::code::ErrorCode;
use touchmark_core::event::Logged;
use touchmark_core::field::FieldError;
use touchmark_store::StoreError;
use touchmark_tlog::TlogError;

/// What a client is told about a failure inside the server.
const INTERNAL_MESSAGE: &str = "internal error; the server's log has the details";

/// What a client is told when the database is busy or unreachable.
const UNAVAILABLE_MESSAGE: &str =
    "the database is busy or unreachable; nothing was done: send the same request again shortly";

/// An error on its way to the client.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: ErrorCode,
    message: String,
    logged: Option<Logged>,
    retry_after: Option<std::time::Duration>,
}

/// The HTTP status for each code.
pub fn status_of(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::StationNotAuthorized
        | ErrorCode::StationRevoked
        | ErrorCode::DeviceNotAuthorized
        | ErrorCode::Forbidden => StatusCode::FORBIDDEN,
        ErrorCode::Unauthorized | ErrorCode::EnrollmentTokenInvalid => StatusCode::UNAUTHORIZED,
        ErrorCode::OrderNotOpen
        | ErrorCode::OrderExpired
        | ErrorCode::TestRecordReused
        | ErrorCode::SerialConflict
        | ErrorCode::KeyReused
        | ErrorCode::QuotaExhausted
        | ErrorCode::UnitRevoked
        | ErrorCode::CaRevoked
        | ErrorCode::ChallengeInvalid
        | ErrorCode::ReleaseWithdrawn
        | ErrorCode::Conflict => StatusCode::CONFLICT,
        ErrorCode::SerialOutOfRange
        | ErrorCode::CsrInvalid
        | ErrorCode::CsrSignatureInvalid
        | ErrorCode::KeyTypeUnsupported
        | ErrorCode::TestRecordMismatch
        | ErrorCode::TestFailed
        | ErrorCode::NotMcubootImage
        | ErrorCode::ImageMalformed
        | ErrorCode::NotEncrypted
        | ErrorCode::ReleaseKeyUnknown
        | ErrorCode::EncTlvHmacMismatch
        | ErrorCode::HashMismatch
        | ErrorCode::SignatureInvalid
        | ErrorCode::CaCertificateInvalid
        | ErrorCode::CaKeyMismatch
        | ErrorCode::CaProfileInvalid
        | ErrorCode::CaChainInvalid
        | ErrorCode::EncryptionKeyInvalid
        | ErrorCode::AttestationInvalid
        | ErrorCode::Unprocessable => StatusCode::UNPROCESSABLE_ENTITY,
        // Vulnerability intake and triage (issue 18).
        ErrorCode::CvssInvalid | ErrorCode::ProductUnknown | ErrorCode::ReportEncryptionInvalid => {
            StatusCode::UNPROCESSABLE_ENTITY
        }
        ErrorCode::ReportTransitionInvalid => StatusCode::CONFLICT,
        // A release's SBOM (issue 18, item 5).
        ErrorCode::SbomInvalid => StatusCode::UNPROCESSABLE_ENTITY,
        // CSAF advisories (issue 18).
        ErrorCode::ReportNotLinked => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorCode::CsafNotConfigured => StatusCode::CONFLICT,
        ErrorCode::InvalidRequest => StatusCode::BAD_REQUEST,
        ErrorCode::PayloadTooLarge | ErrorCode::ImageTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::NotFound | ErrorCode::OrderNotFound => StatusCode::NOT_FOUND,
        ErrorCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl ApiError {
    /// An error with the status that belongs to `code`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            status: status_of(code),
            code,
            message: message.into(),
            logged: None,
            retry_after: None,
        }
    }

    /// A caller the server could not identify at all: 401 whatever the code, as RFC 9110
    /// §15.5.2 asks, where a caller identified but not allowed gets the code's own status.
    pub fn unauthenticated(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            ..Self::new(code, message)
        }
    }

    /// A route asked with a method it does not take: 405.
    pub fn method_not_allowed() -> Self {
        Self {
            status: StatusCode::METHOD_NOT_ALLOWED,
            ..Self::invalid("this route does not take that method")
        }
    }

    /// A malformed request.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidRequest, message)
    }

    /// A missing resource.
    pub fn not_found(what: impl std::fmt::Display) -> Self {
        Self::new(ErrorCode::NotFound, format!("{what} not found"))
    }

    /// A failure inside the server. The cause is logged here; the client sees a generic message.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(%cause, "internal error");
        Self::new(ErrorCode::Internal, INTERNAL_MESSAGE)
    }

    /// The same error, telling the client how long to wait before it sends again.
    #[must_use]
    pub fn with_retry_after(mut self, after: std::time::Duration) -> Self {
        self.retry_after = Some(after);
        self
    }

    /// The stable code.
    pub fn code(&self) -> ErrorCode {
        self.code
    }
}

impl From<AuthorityError> for ApiError {
    fn from(e: AuthorityError) -> Self {
        match e {
            AuthorityError::Refused { refusal, logged } => Self {
                logged: Some(logged),
                ..Self::new(refusal.code, refusal.message)
            },
            AuthorityError::RateLimited {
                refusal,
                retry_after,
            } => Self {
                retry_after: Some(retry_after),
                ..Self::new(refusal.code, refusal.message)
            },
            AuthorityError::Internal(cause) => Self::internal(cause),
            AuthorityError::Unavailable(cause) => {
                tracing::warn!(%cause, "the database is unavailable");
                Self::new(ErrorCode::Unavailable, UNAVAILABLE_MESSAGE)
            }
            other => Self::new(other.code(), other.to_string()),
        }
    }
}

impl From<FieldError> for ApiError {
    fn from(e: FieldError) -> Self {
        AuthorityError::from(e).into()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        AuthorityError::from(e).into()
    }
}

impl From<LogError> for ApiError {
    fn from(e: LogError) -> Self {
        match e {
            // A proof asked for an index or size the log does not have.
            LogError::Tlog(
                e @ (TlogError::IndexOutOfRange { .. } | TlogError::SizeOrder { .. }),
            ) => Self::invalid(e.to_string()),
            other => Self::internal(other),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let retry = self.retry_after.or_else(|| self.code.retry_after());
        let body = ErrorBody {
            code: self.code.as_str().to_owned(),
            message: self.message,
            receipt: self.logged.map(|r| receipt_body(&r)),
        };
        let mut response = (self.status, Json(body)).into_response();
        if let Some(after) = retry {
            // Whole seconds (RFC 9110 §10.2.3), rounded up so a client never comes back early.
            let seconds = after.as_secs() + u64::from(after.subsec_nanos() > 0);
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(seconds.max(1)),
            );
        }
        // For the request log (`crate::access`), which writes the code beside the status.
        response.extensions_mut().insert(self.code);
        response
    }
}

/// The wire form of where an event was logged.
pub fn receipt_body(logged: &Logged) -> ReceiptBody {
    ReceiptBody {
        index: logged.index,
        leaf_hash: logged.leaf_hash.to_hex(),
        tlog_proof: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every code has a status of its own: only `internal` is a 500.
    #[test]
    fn every_code_but_internal_has_a_client_or_availability_status() {
        for code in ErrorCode::ALL {
            let status = status_of(code);
            assert_eq!(
                status == StatusCode::INTERNAL_SERVER_ERROR,
                code == ErrorCode::Internal,
                "{code}: {status}"
            );
        }
    }
}
