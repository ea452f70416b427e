//! Revocation endpoints (admin only): a unit (and the release of its hold), an order, a
//! product's issuing CA, a station, and a station's units by provenance. Thin: parse, call the
//! authority, render what it did.

use axum::Json;
use axum::extract::State;
use touchmark_authority::revocation::logged_parts;
use touchmark_core::api::{ErrorBody, Release, RevocationBody, Revoke, RevokeProvenance};
use touchmark_core::command::{revocation_reason, unit_revocation};
use touchmark_core::policy::revocation::{Action, Revocation, Target};
use touchmark_core::{ErrorCode, OrderId, ProductId, StationId};
use touchmark_store::Revoked;

use super::extract::{ApiJson, ApiPath};
use crate::auth::Admin;
use crate::error::ApiError;
use crate::state::AppState;

type ApiResult<T> = Result<T, ApiError>;

fn path_id<T>(
    what: &str,
    raw: &str,
    parse: impl Fn(&str) -> Result<T, touchmark_core::id::IdError>,
) -> ApiResult<T> {
    parse(raw).map_err(|e| ApiError::invalid(format!("{what} in the path: {e}")))
}

/// `product` names a unit's product, for a serial that exists in several; an order and a CA name
/// their own, so a body that names one for them is refused rather than ignored.
fn no_product(req: &Revoke, target: &str) -> Result<(), ApiError> {
    match req.product {
        None => Ok(()),
        Some(_) => Err(ApiError::new(
            ErrorCode::Unprocessable,
            format!("`product` is only for a unit's revocation: {target} names its own product"),
        )),
    }
}

fn body(target: &str, id: &str, revocation: &Revocation, revoked: Revoked) -> RevocationBody {
    let (index, leaf_hash) = logged_parts(revoked.logged);
    RevocationBody {
        target: target.into(),
        id: id.into(),
        reason: match revocation.action {
            Action::Revoke(reason) => reason.as_str().into(),
            Action::Release => "removeFromCRL".into(),
        },
        revoked: revoked.change.revoke.len() as u64,
        released: revoked.change.release.len() as u64,
        changed: revoked.logged.is_some(),
        index,
        leaf_hash,
    }
}

/// Revokes a unit's certificate (admin). `certificateHold` puts it on hold, which can be
/// released. Revoking again changes nothing. A unit that holds no certificate is `not_found`.
#[utoipa::path(post, path = "/v1/revocations/units/{serial}", tag = "admin",
    params(("serial" = String, Path)), request_body = Revoke,
    responses((status = 200, body = RevocationBody), (status = "4XX", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn revoke_unit(
    State(s): State<AppState>,
    admin: Admin,
    ApiPath(serial): ApiPath<String>,
    ApiJson(req): ApiJson<Revoke>,
) -> ApiResult<Json<RevocationBody>> {
    let revocation = unit_revocation(&serial, req.product.as_deref(), Some(&req.reason))?;
    let revoked = s
        .authority
        .revoke(admin.actor(), revocation.clone())
        .await?;
    Ok(Json(body("unit", &serial, &revocation, revoked)))
}

/// Releases a unit's `certificateHold` (admin): its certificate is valid again. `conflict` if
/// it is not on hold.
#[utoipa::path(post, path = "/v1/revocations/units/{serial}/release", tag = "admin",
    params(("serial" = String, Path)), request_body = Release,
    responses((status = 200, body = RevocationBody), (status = "4XX", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn release_unit(
    State(s): State<AppState>,
    admin: Admin,
    ApiPath(serial): ApiPath<String>,
    ApiJson(req): ApiJson<Release>,
) -> ApiResult<Json<RevocationBody>> {
    let revocation = unit_revocation(&serial, req.product.as_deref(), None)?;
    let revoked = s
        .authority
        .revoke(admin.actor(), revocation.clone())
        .await?;
    Ok(Json(body("unit", &serial, &revocation, revoked)))
}

/// Revokes every certificate issued under an order and closes it (admin).
#[utoipa::path(post, path = "/v1/revocations/orders/{id}", tag = "admin",
    params(("id" = String, Path)), request_body = Revoke,
    responses((status = 200, body = RevocationBody), (status = "4XX", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn revoke_order(
    State(s): State<AppState>,
    admin: Admin,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<Revoke>,
) -> ApiResult<Json<RevocationBody>> {
    let order = path_id("order id", &id, OrderId::parse)?;
    no_product(&req, "an order")?;
    let revocation = Revocation {
        target: Target::Order(order),
        action: Action::Revoke(revocation_reason(&req.reason)?),
    };
    let revoked = s
        .authority
        .revoke(admin.actor(), revocation.clone())
        .await?;
    Ok(Json(body("order", &id, &revocation, revoked)))
}

/// Revokes a product's issuing CA (admin): every unit under it is revoked for relying parties
/// through the root's CRL, and it issues nothing more.
#[utoipa::path(post, path = "/v1/revocations/cas/{product}", tag = "admin",
    params(("product" = String, Path)), request_body = Revoke,
    responses((status = 200, body = RevocationBody), (status = "4XX", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn revoke_ca(
    State(s): State<AppState>,
    admin: Admin,
    ApiPath(product): ApiPath<String>,
    ApiJson(req): ApiJson<Revoke>,
) -> ApiResult<Json<RevocationBody>> {
    let id = path_id("product id", &product, ProductId::parse)?;
    no_product(&req, "a CA")?;
    let revocation = Revocation {
        target: Target::Ca(id),
        action: Action::Revoke(revocation_reason(&req.reason)?),
    };
    let revoked = s
        .authority
        .revoke(admin.actor(), revocation.clone())
        .await?;
    Ok(Json(body("ca", &product, &revocation, revoked)))
}

/// Revokes a station's mTLS identity (admin): it is refused at once, on a connection kept alive
/// from before too. Revoking again changes nothing.
#[utoipa::path(post, path = "/v1/revocations/stations/{id}", tag = "admin",
    // `revoke_station` is the older `/v1/stations/{id}/revoke`, without a reason.
    operation_id = "revoke_station_certificate",
    params(("id" = String, Path)), request_body = Revoke,
    responses((status = 200, body = RevocationBody), (status = "4XX", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn revoke_station(
    State(s): State<AppState>,
    admin: Admin,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<Revoke>,
) -> ApiResult<Json<RevocationBody>> {
    let station = path_id("station id", &id, StationId::parse)?;
    no_product(&req, "a station")?;
    let reason = revocation_reason(&req.reason)?;
    if reason == touchmark_core::policy::revocation::Reason::CertificateHold {
        return Err(ApiError::new(
            ErrorCode::Unprocessable,
            "only a unit can be put on hold; a station's revocation is final",
        ));
    }
    let done = s
        .authority
        .revoke_station_for(admin.actor(), &station, reason)
        .await?;
    Ok(Json(RevocationBody {
        target: "station".into(),
        id,
        reason: reason.as_str().into(),
        revoked: 0,
        released: 0,
        changed: done.changed,
        index: None,
        leaf_hash: None,
    }))
}

/// Revokes every unit one station provisioned in `[from, to)` (admin): one logged event, whose
/// set of units an auditor recomputes from the log.
#[utoipa::path(post, path = "/v1/revocations/provenance", tag = "admin",
    request_body = RevokeProvenance,
    responses((status = 200, body = RevocationBody), (status = "4XX", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn revoke_provenance(
    State(s): State<AppState>,
    admin: Admin,
    ApiJson(req): ApiJson<RevokeProvenance>,
) -> ApiResult<Json<RevocationBody>> {
    let station = req.station.clone();
    let revocation = Revocation::try_from(req)?;
    let revoked = s
        .authority
        .revoke(admin.actor(), revocation.clone())
        .await?;
    Ok(Json(body("provenance", &station, &revocation, revoked)))
}
