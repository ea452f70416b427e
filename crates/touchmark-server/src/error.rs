//! The one place where errors become HTTP responses: a stable code, a public message, and the
//! right status. Internal causes are logged, never sent.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use touchmark_core::api::{ErrorBody, ReceiptBody};
use touchmark_core::code::{ErrorCode, Refusal};
use touchmark_store::{Receipt, StoreError};

/// An error on its way to the client.
#[derive(Debug)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The stable code.
    pub code: ErrorCode,
    /// The public message.
    pub message: String,
    /// Where a provisioning refusal was logged.
    pub receipt: Option<Receipt>,
}

/// The HTTP status for each code.
pub fn status_of(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::StationNotAuthorized | ErrorCode::StationRevoked | ErrorCode::Forbidden => {
            StatusCode::FORBIDDEN
        }
        ErrorCode::Unauthorized | ErrorCode::EnrollmentTokenInvalid => StatusCode::UNAUTHORIZED,
        ErrorCode::OrderNotOpen
        | ErrorCode::OrderExpired
        | ErrorCode::SerialConflict
        | ErrorCode::KeyReused
        | ErrorCode::QuotaExhausted
        | ErrorCode::Conflict => StatusCode::CONFLICT,
        ErrorCode::SerialOutOfRange
        | ErrorCode::CsrInvalid
        | ErrorCode::CsrSignatureInvalid
        | ErrorCode::KeyTypeUnsupported
        | ErrorCode::TestFailed => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorCode::InvalidRequest => StatusCode::BAD_REQUEST,
        ErrorCode::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::NotFound => StatusCode::NOT_FOUND,
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
            receipt: None,
        }
    }

    /// The same error with another status (a missing client certificate is 401, not 403).
    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
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
        Self::new(
            ErrorCode::Internal,
            "internal error; the server's log has the details",
        )
    }

    /// A provisioning refusal that was logged at `receipt`.
    pub fn refused(refusal: Refusal, receipt: Receipt) -> Self {
        Self {
            receipt: Some(receipt),
            ..Self::new(refusal.code, refusal.message)
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => Self::not_found(what),
            StoreError::Conflict(message) => Self::new(ErrorCode::Conflict, message),
            StoreError::EnrollmentTokenInvalid => {
                Self::new(ErrorCode::EnrollmentTokenInvalid, e.to_string())
            }
            other => Self::internal(other),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            code: self.code.as_str().to_owned(),
            message: self.message,
            receipt: self.receipt.map(|r| receipt_body(&r)),
        };
        (self.status, Json(body)).into_response()
    }
}

/// The wire form of a receipt.
pub fn receipt_body(receipt: &Receipt) -> ReceiptBody {
    ReceiptBody {
        index: receipt.index,
        leaf_hash: receipt.leaf_hash.to_hex(),
        tlog_proof: None,
    }
}
