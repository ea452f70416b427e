//! Station endpoints: enrollment with a one-time token, and provisioning over mTLS.

use axum::Json;
use axum::extract::{FromRequest, Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use base64::Engine as _;
use touchmark_authority::delivery::DeliveredFirmware;
use touchmark_core::api::{
    EnrollRequest, EnrollResponse, ErrorBody, ProvisionRequest, ProvisionResponse, UnitFirmwareBody,
};
use touchmark_core::{OrderId, Serial};

use super::extract::{ApiJson, ApiPath};
use crate::auth::{StationAuth, StationRefused};
use crate::error::{ApiError, receipt_body};
use crate::state::AppState;

/// Enrolls a fixture PC: trades the one-time token and a CSR for the station's mTLS certificate.
#[utoipa::path(post, path = "/v1/enroll", tag = "station", request_body = EnrollRequest,
    responses((status = 201, body = EnrollResponse), (status = "4XX", body = ErrorBody)))]
pub async fn enroll(
    State(s): State<AppState>,
    ApiJson(req): ApiJson<EnrollRequest>,
) -> Result<(StatusCode, Json<EnrollResponse>), ApiError> {
    let (station, cert) = s.authority.enroll(&req.token, &req.csr).await?;
    Ok((
        StatusCode::CREATED,
        Json(EnrollResponse {
            station: station.id.into(),
            factory: station.factory.into(),
            certificate_pem: cert.pem(),
            station_ca_pem: s.authority.station_ca_pem().to_owned(),
            root_ca_pem: s.authority.server_root_pem().to_owned(),
        }),
    ))
}

/// Provisions one unit against an order's quota (station mTLS).
///
/// Runs the checks of design.md §4 in order and answers with the first refusal, or commits the
/// count, the certificate and its log event durably before answering. A station refused at
/// check 1 (revoked, or of another factory) has its first refusal in a window logged, and the
/// ones after it answered `429 rate_limited` until the window ends. A retry with the same
/// serial, key and order answers 200 with the same certificate and consumes nothing.
#[utoipa::path(post, path = "/v1/orders/{order}/units", tag = "station", params(("order" = String, Path)),
    request_body = ProvisionRequest,
    responses((status = 201, description = "issued", body = ProvisionResponse),
              (status = 200, description = "already issued: the same certificate", body = ProvisionResponse),
              (status = 429, description = "a station refused at check 1 again within its window: counted, not logged one by one", body = ErrorBody,
                  headers(("Retry-After" = u64, description = "seconds until the window ends"))),
              (status = "4XX", description = "refused, with its stable code", body = ErrorBody)),
    security(("mutual_tls" = [])))]
pub async fn provision(
    State(s): State<AppState>,
    station: Result<StationAuth, StationRefused>,
    ApiPath(order): ApiPath<String>,
    body: Request,
) -> Result<(StatusCode, Json<ProvisionResponse>), ApiError> {
    let order = OrderId::parse(&order)
        .map_err(|e| ApiError::invalid(format!("order id in the path: {e}")))?;
    let station = match station {
        Ok(station) => station,
        // Check 1, before the body is read: a station that may not act is refused, and the
        // refusal logged once per window.
        Err(StationRefused {
            station: Some(refused),
            ..
        }) => return Err(s.authority.refuse_station(&refused, &order).await.into()),
        Err(StationRefused { error, .. }) => return Err(error),
    };
    let ApiJson(req) = ApiJson::<ProvisionRequest>::from_request(body, &s).await?;
    let done = s
        .authority
        .provision(&station.station, &order, req.try_into()?)
        .await?;
    let mut receipt = receipt_body(&done.unit.logged);
    // A retry may find its entry already covered by a checkpoint; a fresh issuance is covered
    // within a second, and the receipt endpoints serve it then.
    if let Some(index) = done.unit.logged.index {
        receipt.tlog_proof = s.log.receipt(index).await.ok().flatten();
    }
    let status = if done.already_issued {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((
        status,
        Json(ProvisionResponse {
            status: if done.already_issued {
                "already_issued"
            } else {
                "issued"
            }
            .to_owned(),
            order: done.unit.order.into(),
            serial: done.unit.serial.into(),
            certificate_pem: done.certificate_pem,
            chain_pem: done.chain_pem,
            root_ca_pem: s.authority.device_root_pem().to_owned(),
            cert_sha256: done.unit.cert_sha256.to_hex(),
            receipt,
            firmware: done.firmware.map(firmware_body),
        }),
    ))
}

/// What the answer says of the unit's firmware.
fn firmware_body(f: DeliveredFirmware) -> UnitFirmwareBody {
    UnitFirmwareBody {
        image_path: format!(
            "/v1/orders/{}/units/{}/firmware",
            f.unit.order, f.unit.serial
        ),
        release: f.release.id,
        version: f.release.version,
        release_sha256: f.release.image_sha256.to_hex(),
        image_sha256: f.unit.image_sha256.to_hex(),
        image_size: f.release.image_size,
        key_tlv_offset: f.key_tlv_offset,
        key_tlv_value: base64::engine::general_purpose::STANDARD.encode(&f.unit.wrap),
    }
}

/// A unit's whole image (station mTLS): its order's release with the key TLV's value wrapped
/// to the unit's own key, streamed from the release's bytes without a copy per unit.
#[utoipa::path(get, path = "/v1/orders/{order}/units/{serial}/firmware", tag = "station",
    params(("order" = String, Path), ("serial" = String, Path)),
    responses((status = 200, description = "the unit's MCUboot image", content_type = "application/octet-stream",
                  headers(("X-Touchmark-Image-Sha256" = String, description = "SHA-256 of the image, hex"),
                          ("X-Touchmark-Release" = String, description = "the release's id"))),
              (status = "4XX", description = "refused, with its stable code", body = ErrorBody)),
    security(("mutual_tls" = [])))]
pub async fn unit_firmware(
    State(s): State<AppState>,
    station: StationAuth,
    ApiPath((order, serial)): ApiPath<(String, String)>,
) -> Result<Response, ApiError> {
    let order = OrderId::parse(&order)
        .map_err(|e| ApiError::invalid(format!("order id in the path: {e}")))?;
    let serial = Serial::parse(&serial)
        .map_err(|e| ApiError::invalid(format!("serial in the path: {e}")))?;
    let image = s
        .authority
        .unit_image(&station.station.id, &order, &serial)
        .await?;
    super::image::response(&image)
}
