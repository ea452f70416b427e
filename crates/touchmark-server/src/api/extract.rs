//! The JSON body extractor: size-limited, strict, and with errors that name the field.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use serde::de::DeserializeOwned;
use touchmark_core::code::ErrorCode;

use crate::error::ApiError;

/// Largest request body accepted, in bytes. A test record of 10,000 measurements fits.
pub const MAX_BODY: usize = 2 * 1024 * 1024;

/// How long a request body may take to arrive, all of it: 2 MiB in 30 s is 70 KB/s.
pub const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// A JSON request body, deserialized strictly.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let is_json = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.split(';')
                    .next()
                    .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
            });
        if !is_json {
            return Err(ApiError::invalid(
                "the body must be JSON, sent with `Content-Type: application/json`",
            ));
        }
        // A body that trickles in would hold its connection busy, out of reach of the idle
        // timeout and of shedding (issue 11, security finding 1).
        let read = tokio::time::timeout(BODY_TIMEOUT, Bytes::from_request(req, state))
            .await
            .map_err(|_| {
                ApiError::invalid(format!(
                    "the body did not arrive within {} seconds",
                    BODY_TIMEOUT.as_secs()
                ))
            })?;
        let bytes = read.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    ErrorCode::PayloadTooLarge,
                    format!("the body is larger than {MAX_BODY} bytes"),
                )
            } else {
                ApiError::invalid(format!("the body could not be read: {e}"))
            }
        })?;
        let mut de = serde_json::Deserializer::from_slice(&bytes);
        let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let path = e.path().to_string();
            let at = if path == "." {
                String::new()
            } else {
                format!(" at `{path}`")
            };
            ApiError::invalid(bounded(&format!("invalid JSON body{at}: {}", e.inner())))
        })?;
        de.end()
            .map_err(|e| ApiError::invalid(format!("invalid JSON body: {e}")))?;
        Ok(Self(value))
    }
}

/// Path parameters, with a JSON error when they do not parse (a non-UTF-8 segment, say).
#[derive(Debug)]
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> axum::extract::FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(value)| Self(value))
            .map_err(|e| ApiError::invalid(bounded(&format!("invalid path: {}", e.body_text()))))
    }
}

/// The largest log position (an entry's index or a tree's size) a request may name: the API
/// document's `int64`. No log comes near it; a larger number is a malformed request.
pub const MAX_LOG_POSITION: u64 = i64::MAX as u64;

/// The most events one page of `/v1/events` holds, and its default size.
pub const MAX_PAGE: u32 = 1000;

/// Deserializes a log position from a query, refusing one above [`MAX_LOG_POSITION`].
pub fn log_position<'de, D: serde::Deserializer<'de>>(de: D) -> Result<Option<u64>, D::Error> {
    let value = <Option<u64> as serde::Deserialize>::deserialize(de)?;
    match value {
        Some(v) if v > MAX_LOG_POSITION => Err(serde::de::Error::custom(format!(
            "{v} is beyond the largest log position, {MAX_LOG_POSITION}"
        ))),
        other => Ok(other),
    }
}

/// Deserializes a page size from a query: 1 to [`MAX_PAGE`].
pub fn page_size<'de, D: serde::Deserializer<'de>>(de: D) -> Result<Option<u32>, D::Error> {
    let value = <Option<u32> as serde::Deserialize>::deserialize(de)?;
    match value {
        Some(v) if !(1..=MAX_PAGE).contains(&v) => Err(serde::de::Error::custom(format!(
            "a page holds 1 to {MAX_PAGE} items, not {v}"
        ))),
        other => Ok(other),
    }
}

/// Cuts an error message that may echo client input, so a huge input is not sent back.
pub fn bounded(message: &str) -> String {
    const MAX: usize = 300;
    if message.chars().count() <= MAX {
        message.to_owned()
    } else {
        format!("{}…", message.chars().take(MAX).collect::<String>())
    }
}
