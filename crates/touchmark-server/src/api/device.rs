//! Units in the field, authenticated by their own device certificate over mTLS: field updates
//! (`docs/firmware.md`, "Field updates").

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use touchmark_core::api::ErrorBody;

use crate::auth::DeviceAuth;
use crate::error::ApiError;
use crate::state::AppState;

/// What a unit says when it asks for an update.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct UpdateQuery {
    /// The version the unit runs (`major.minor.revision[+build]`): only a newer release is
    /// sent. Without it, the newest release is.
    pub current: Option<String>,
}

/// The newest release of the unit's product, re-wrapped to the encryption key the unit bound
/// when it was provisioned, as the unit's own MCUboot image (device mTLS). Only a unit this
/// installation issued, unrevoked, is served. The first delivery of each release to a unit is
/// logged (`unit.firmware_delivered`); asking again returns the same image.
#[utoipa::path(get, path = "/v1/device/firmware/latest", tag = "device", params(UpdateQuery),
    responses((status = 200, description = "the unit's own image of the newest release", content_type = "application/octet-stream",
                  headers(("X-Touchmark-Image-Sha256" = String, description = "SHA-256 of the image, hex"),
                          ("X-Touchmark-Release" = String, description = "the release's id"),
                          ("X-Touchmark-Version" = String, description = "the release's version"))),
              (status = 204, description = "the unit runs the newest release already"),
              (status = "4XX", description = "refused, with its stable code", body = ErrorBody)),
    security(("mutual_tls" = [])))]
pub async fn latest_firmware(
    State(s): State<AppState>,
    DeviceAuth(unit): DeviceAuth,
    query: Result<Query<UpdateQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::invalid(e.body_text()))?;
    match s
        .authority
        .field_update(&unit, query.current.as_deref())
        .await?
    {
        Some(image) => super::image::response(&image),
        None => Ok(StatusCode::NO_CONTENT.into_response()),
    }
}
