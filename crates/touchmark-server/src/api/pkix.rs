//! What relying parties fetch in the PKIX formats, not JSON: CRLs (`/crl/{name}`) and, in its
//! own module, OCSP. No authentication: revocation status is public. A CRL is served from what
//! the publisher signed last; a fetch never signs.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use touchmark_core::api::ErrorBody;

use super::extract::ApiPath;
use crate::error::ApiError;
use crate::state::AppState;

/// How a CRL is served.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CrlFormat {
    /// `der` (the default, `application/pkix-crl`) or `pem`.
    #[param(inline)]
    format: Option<CrlEncoding>,
}

/// The encodings a CRL is served in.
#[derive(Debug, Clone, Copy, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum CrlEncoding {
    /// DER, `application/pkix-crl`.
    Der,
    /// PEM, `application/x-pem-file`.
    Pem,
}

/// A CRL, as signed last: `_root` (the device root's, listing revoked product CAs),
/// `{product}` (a product issuing CA's full CRL), or `{product}/{order}` (an order's
/// partition, which its units name in their CRL distribution point).
#[utoipa::path(get, path = "/crl/{name}", tag = "audit",
    params(("name" = String, Path, description = "`_root`, a product id, or `product/order`"), CrlFormat),
    responses((status = 200, description = "the CRL, DER (or PEM with format=pem)",
               content((Vec<u8> = "application/pkix-crl"), (String = "application/x-pem-file"))),
              (status = "4XX", body = ErrorBody)))]
pub async fn crl(
    State(s): State<AppState>,
    ApiPath(name): ApiPath<String>,
    format: Result<Query<CrlFormat>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(format) = format.map_err(|e| ApiError::invalid(e.body_text()))?;
    let name = name.trim_end_matches(".crl");
    let crl = s
        .crls
        .get(name)
        .ok_or_else(|| ApiError::not_found(format!("CRL {name}")))?;
    let max_age = (crl.next_update - s.clock.now())
        .whole_seconds()
        .clamp(0, 60);
    let cache = format!("public, max-age={max_age}");
    match format.format.unwrap_or(CrlEncoding::Der) {
        CrlEncoding::Der => Ok((
            [
                (CONTENT_TYPE, "application/pkix-crl".to_owned()),
                (CACHE_CONTROL, cache),
            ],
            crl.der.clone(),
        )
            .into_response()),
        CrlEncoding::Pem => Ok((
            [
                (CONTENT_TYPE, "application/x-pem-file".to_owned()),
                (CACHE_CONTROL, cache),
            ],
            touchmark_pki::pem::encode("X509 CRL", &crl.der),
        )
            .into_response()),
    }
}

/// A DER OCSPRequest, as the document describes `POST /ocsp`'s body: bytes.
#[derive(utoipa::ToSchema)]
#[schema(value_type = String, format = Binary)]
#[allow(dead_code)]
pub struct OcspRequestDer(Vec<u8>);

/// The OCSP media types (RFC 6960 Appendix C).
const OCSP_RESPONSE: &str = "application/ocsp-response";

fn ocsp_response(der: Vec<u8>, cacheable: bool) -> Response {
    let cache = if cacheable {
        "public, max-age=60"
    } else {
        "no-store"
    };
    (
        [
            (CONTENT_TYPE, OCSP_RESPONSE.to_owned()),
            (CACHE_CONTROL, cache.to_owned()),
        ],
        der,
    )
        .into_response()
}

/// An OCSP request by POST (RFC 6960 Appendix A.1): the DER request is the body, answered
/// `200` with an OCSPResponse (`unauthorized` for a CA this server does not hold). A body that
/// does not parse as an OCSPRequest, none and one over 4 KiB included, is refused `422` as any
/// request is here that no schema can judge, its body still an OCSPResponse:
/// `malformedRequest` (RFC 6960 §2.3), which OCSP clients read.
#[utoipa::path(post, path = "/ocsp", tag = "audit",
    request_body(content = Option<OcspRequestDer>, content_type = "application/ocsp-request"),
    responses((status = 200, description = "an OCSPResponse (DER)", content_type = "application/ocsp-response"),
              (status = 422, description = "an OCSPResponse (DER) of status malformedRequest", content_type = "application/ocsp-response")))]
pub async fn ocsp_post(State(s): State<AppState>, body: axum::body::Body) -> Response {
    let limit = touchmark_pki::ocsp::MAX_REQUEST;
    let bytes = match axum::body::to_bytes(body, limit).await {
        Ok(bytes) if touchmark_pki::ocsp::parse_request(&bytes).is_ok() => bytes,
        _ => {
            let der = touchmark_pki::ocsp::error_response(
                touchmark_pki::ocsp::ResponseStatus::MalformedRequest,
            );
            let mut response = ocsp_response(der, false);
            *response.status_mut() = axum::http::StatusCode::UNPROCESSABLE_ENTITY;
            return response;
        }
    };
    ocsp_response(s.ocsp.answer(&s.authority, &bytes).await, false)
}

/// An OCSP request by GET (RFC 5019 §5): the DER request, base64, URL-encoded, as the last path
/// segment. Answered as the POST is; a response without a nonce may be cached.
#[utoipa::path(get, path = "/ocsp/{request}", tag = "audit",
    params(("request" = String, Path, description = "the DER OCSPRequest in base64")),
    responses((status = 200, description = "an OCSPResponse (DER)", content_type = "application/ocsp-response")))]
pub async fn ocsp_get(State(s): State<AppState>, uri: axum::http::Uri) -> Response {
    use base64::Engine as _;
    let encoded = uri.path().strip_prefix("/ocsp/").unwrap_or_default();
    let decoded = percent_decode(encoded).and_then(|text| {
        let text: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        base64::engine::general_purpose::STANDARD
            .decode(text.as_bytes())
            .or_else(|_| base64::engine::general_purpose::URL_SAFE.decode(text.as_bytes()))
            .ok()
    });
    let der = match decoded {
        Some(der) => s.ocsp.answer(&s.authority, &der).await,
        None => touchmark_pki::ocsp::error_response(
            touchmark_pki::ocsp::ResponseStatus::MalformedRequest,
        ),
    };
    ocsp_response(der, true)
}

/// Decodes `%XX` escapes; `None` for a bad escape or bytes that are not UTF-8.
fn percent_decode(text: &str) -> Option<String> {
    if text.len() > touchmark_pki::ocsp::MAX_REQUEST * 2 {
        return None;
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}
