//! CSAF 2.0 advisories (`docs/vulnerabilities.md`, "Advisories"): the admins' route that writes
//! a report's advisory (a draft, or a published revision), and the provider's public files
//! under `/.well-known/csaf/` (CSAF 2.0 §7.1): `provider-metadata.json`, the TLP:WHITE
//! directory with each advisory's latest revision by year, its `.sha256` and `.sha512`,
//! `index.txt` and `changes.csv`. Published bytes are served exactly as stored. Thin: parse,
//! authorize, call the authority, render.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256, Sha512};
use touchmark_core::api::{ErrorBody, WriteAdvisory};
use touchmark_core::csaf::{self, Advisory};

use super::extract::{ApiJson, ApiPath};
use crate::auth::Admin;
use crate::error::ApiError;
use crate::state::AppState;

type ApiResult<T> = Result<T, ApiError>;

const JSON: &str = "application/json";
const TEXT: &str = "text/plain; charset=utf-8";

fn body(content_type: &'static str, bytes: impl Into<axum::body::Body>) -> Response {
    ([(header::CONTENT_TYPE, content_type)], bytes.into()).into_response()
}

/// Writes a report's CSAF 2.0 advisory (admin): without `publish`, a draft (tracking status
/// `draft`), stored and logged nowhere (200); with it, the next revision (`final`), stored,
/// logged (`vuln.advisory_published`) and served under `/.well-known/csaf/` (201). The answer
/// is the document's exact bytes.
#[utoipa::path(post, path = "/v1/vulnerability-reports/{id}/advisories", tag = "vulnerabilities",
    params(("id" = String, Path)), request_body = WriteAdvisory,
    responses(
        (status = 200, body = serde_json::Value, description = "a draft CSAF 2.0 document"),
        (status = 201, body = serde_json::Value, description = "the published revision, as served"),
        (status = "4XX", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn write_advisory(
    State(s): State<AppState>,
    admin: Admin,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<WriteAdvisory>,
) -> ApiResult<Response> {
    let written = s.authority.write_advisory(admin.actor(), &id, &req).await?;
    let status = if written.logged.is_some() {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, body(JSON, written.advisory.document)).into_response())
}

fn configured(s: &AppState) -> ApiResult<&touchmark_core::csaf::CsafConfig> {
    s.authority
        .csaf()
        .ok_or_else(|| ApiError::not_found("CSAF provider metadata (no [csaf] is configured)"))
}

/// The provider's metadata (CSAF 2.0 §7.1.7): a `csaf_provider` with one TLP:WHITE directory.
#[utoipa::path(get, path = "/.well-known/csaf/provider-metadata.json", tag = "vulnerabilities",
    responses(
        (status = 200, body = serde_json::Value, description = "CSAF provider metadata"),
        (status = 404, body = ErrorBody)))]
pub async fn provider_metadata(State(s): State<AppState>) -> ApiResult<Response> {
    let config = configured(&s)?;
    let latest = s.authority.published_advisories().await?;
    let last_updated = latest
        .iter()
        .map(|a| a.published_at)
        .max()
        .unwrap_or_else(|| touchmark_store::to_millis(s.clock.now()));
    let bytes = csaf::provider_metadata(config, last_updated).map_err(ApiError::internal)?;
    Ok(body(JSON, bytes))
}

/// `index.txt` (§7.1.12): every advisory's path in the TLP:WHITE directory, one a line.
#[utoipa::path(get, path = "/.well-known/csaf/white/index.txt", tag = "vulnerabilities",
    responses(
        (status = 200, content_type = "text/plain", body = String, description = "paths, one a line"),
        (status = 404, body = ErrorBody)))]
pub async fn index_txt(State(s): State<AppState>) -> ApiResult<Response> {
    configured(&s)?;
    let latest = s.authority.published_advisories().await?;
    Ok(body(TEXT, csaf::index_txt(&latest)))
}

/// `changes.csv` (§7.1.13): every advisory's path and the time of its last change, newest
/// first.
#[utoipa::path(get, path = "/.well-known/csaf/white/changes.csv", tag = "vulnerabilities",
    responses(
        (status = 200, content_type = "text/csv", body = String, description = "path, time; newest first"),
        (status = 404, body = ErrorBody)))]
pub async fn changes_csv(State(s): State<AppState>) -> ApiResult<Response> {
    configured(&s)?;
    let latest = s.authority.published_advisories().await?;
    Ok(body("text/csv; charset=utf-8", csaf::changes_csv(&latest)))
}

/// What a file in a year's folder is: the advisory, or one of its hashes.
enum File {
    Document,
    Sha256,
    Sha512,
}

/// An advisory's latest revision (§7.1.11, file name per §5.1), or its `.sha256` or `.sha512`
/// (§7.1.18, as `sha256sum` writes them): the exact bytes published.
#[utoipa::path(get, path = "/.well-known/csaf/white/{year}/{file}", tag = "vulnerabilities",
    params(
        ("year" = String, Path, description = "the year of the advisory's initial release"),
        ("file" = String, Path, description = "`<name>.json`, `<name>.json.sha256` or `<name>.json.sha512`")),
    responses(
        (status = 200, body = serde_json::Value, description = "the CSAF 2.0 document, as published"),
        (status = 404, body = ErrorBody)))]
pub async fn advisory_file(
    State(s): State<AppState>,
    ApiPath((year, file)): ApiPath<(String, String)>,
) -> ApiResult<Response> {
    let not_found = || ApiError::not_found("this advisory");
    configured(&s)?;
    let (name, kind) = if let Some(name) = file.strip_suffix(".sha256") {
        (name, File::Sha256)
    } else if let Some(name) = file.strip_suffix(".sha512") {
        (name, File::Sha512)
    } else {
        (file.as_str(), File::Document)
    };
    let path = format!("{year}/{name}");
    let latest = s.authority.published_advisories().await?;
    let advisory: &Advisory = latest
        .iter()
        .find(|a| a.path() == path)
        .ok_or_else(not_found)?;
    Ok(match kind {
        File::Document => body(JSON, advisory.document.clone()),
        File::Sha256 => body(
            TEXT,
            format!(
                "{}  {name}\n",
                hex::encode(Sha256::digest(&advisory.document))
            ),
        ),
        File::Sha512 => body(
            TEXT,
            format!(
                "{}  {name}\n",
                hex::encode(Sha512::digest(&advisory.document))
            ),
        ),
    })
}
