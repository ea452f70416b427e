//! Firmware administration (design.md §7, `docs/firmware.md`): a product's release encryption
//! keys and the public keys that sign its images. Thin: parse, authorize, call the authority,
//! render.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use touchmark_authority::firmware::ReleaseUpload;
use touchmark_core::api::{
    AddFirmwareKey, CreateReleaseKey, ErrorBody, FirmwareKeyBody, OrderReleaseBody, ReleaseBody,
    ReleaseKeyBody, SetOrderRelease, UploadRelease,
};
use touchmark_core::code::ErrorCode;
use touchmark_core::firmware::ReleaseKeyAlgorithm;
use touchmark_core::{OrderId, ProductId};

use super::convert;
use super::extract::{ApiJson, ApiPath};
use crate::auth::{Admin, Reader};
use crate::error::ApiError;
use crate::state::AppState;

type ApiResult<T> = Result<T, ApiError>;

fn product_id(raw: &str) -> ApiResult<ProductId> {
    ProductId::parse(raw).map_err(|e| ApiError::invalid(format!("product id in the path: {e}")))
}

/// Makes a release encryption key for a product (admin). The private key stays in the
/// installation's key provider; the answer carries the public key for `imgtool sign --encrypt`.
#[utoipa::path(post, path = "/v1/products/{id}/release-keys", tag = "admin",
    params(("id" = String, Path)), request_body = CreateReleaseKey,
    responses((status = 201, body = ReleaseKeyBody), (status = "4XX", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create_release_key(
    State(s): State<AppState>,
    admin: Admin,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<CreateReleaseKey>,
) -> ApiResult<(StatusCode, Json<ReleaseKeyBody>)> {
    let product = product_id(&id)?;
    let algorithm = match req.algorithm.as_deref() {
        None => ReleaseKeyAlgorithm::X25519,
        Some(name) => ReleaseKeyAlgorithm::parse(name).ok_or_else(|| {
            ApiError::invalid(format!(
                "algorithm `{}` is not `x25519` or `ec256`",
                name.escape_debug()
            ))
        })?,
    };
    let key = s
        .authority
        .create_release_key(admin.actor(), &product, algorithm)
        .await?;
    Ok((StatusCode::CREATED, Json(convert::release_key(key))))
}

/// Lists a product's release encryption keys, oldest first.
#[utoipa::path(get, path = "/v1/products/{id}/release-keys", tag = "admin",
    params(("id" = String, Path)),
    responses((status = 200, body = Vec<ReleaseKeyBody>), (status = "4XX", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_release_keys(
    State(s): State<AppState>,
    _: Reader,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<Vec<ReleaseKeyBody>>> {
    let product = product_id(&id)?;
    let keys = s.authority.release_keys(&product).await?;
    Ok(Json(keys.into_iter().map(convert::release_key).collect()))
}

/// Registers a public key that signs a product's firmware images (admin). Touchmark never
/// holds a firmware signing private key.
#[utoipa::path(post, path = "/v1/products/{id}/firmware-keys", tag = "admin",
    params(("id" = String, Path)), request_body = AddFirmwareKey,
    responses((status = 201, body = FirmwareKeyBody), (status = "4XX", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn add_firmware_key(
    State(s): State<AppState>,
    admin: Admin,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<AddFirmwareKey>,
) -> ApiResult<(StatusCode, Json<FirmwareKeyBody>)> {
    let product = product_id(&id)?;
    let key = s
        .authority
        .add_firmware_key(admin.actor(), &product, &req.public_key_pem)
        .await?;
    Ok((StatusCode::CREATED, Json(convert::firmware_key(key))))
}

/// Lists a product's firmware signing keys, oldest first.
#[utoipa::path(get, path = "/v1/products/{id}/firmware-keys", tag = "admin",
    params(("id" = String, Path)),
    responses((status = 200, body = Vec<FirmwareKeyBody>), (status = "4XX", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_firmware_keys(
    State(s): State<AppState>,
    _: Reader,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<Vec<FirmwareKeyBody>>> {
    let product = product_id(&id)?;
    let keys = s.authority.firmware_keys(&product).await?;
    Ok(Json(keys.into_iter().map(convert::firmware_key).collect()))
}

/// The largest upload body: a release image at the largest limit a server may be configured
/// with (64 MiB), base64, with its SBOM.
pub const MAX_UPLOAD_BODY: usize = 96 * 1024 * 1024;

fn is_version_shaped(text: &str) -> bool {
    let (main, build) = match text.split_once('+') {
        Some((main, build)) => (main, Some(build)),
        None => (text, None),
    };
    let digits = |s: &str, max: usize| {
        !s.is_empty() && s.len() <= max && s.bytes().all(|b| b.is_ascii_digit())
    };
    let parts: Vec<&str> = main.split('.').collect();
    parts.len() == 3
        && digits(parts[0], 3)
        && digits(parts[1], 3)
        && digits(parts[2], 5)
        && build.is_none_or(|b| digits(b, 10))
}

fn base64_field(what: &str, text: &str) -> ApiResult<Vec<u8>> {
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|e| {
            ApiError::new(
                ErrorCode::Unprocessable,
                format!("{what} is not base64: {e}"),
            )
        })
}

/// Uploads a release of a product (admin): an MCUboot image signed by a registered signing key
/// and encrypted to one of the product's release keys, with an optional SBOM. It is checked
/// (format, encryption, key unwrap, hash, signature, size; the SBOM against the CycloneDX 1.6
/// JSON schema and bound to the image) and stored as uploaded; a refused upload stores nothing.
#[utoipa::path(post, path = "/v1/products/{id}/releases", tag = "admin",
    params(("id" = String, Path)), request_body = UploadRelease,
    responses((status = 201, body = ReleaseBody),
              (status = 422, description = "the image's refusal code, `sbom_invalid` (the SBOM is not a valid CycloneDX 1.6 JSON BOM, or names another image; the message carries the validator's findings), or `unprocessable`", body = ErrorBody),
              (status = "4XX", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn upload_release(
    State(s): State<AppState>,
    admin: Admin,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<UploadRelease>,
) -> ApiResult<(StatusCode, Json<ReleaseBody>)> {
    let product = product_id(&id)?;
    if !is_version_shaped(&req.version) {
        return Err(ApiError::invalid(format!(
            "version `{}` is not major.minor.revision[+build]",
            req.version.escape_debug()
        )));
    }
    let image = base64_field("image_base64", &req.image_base64)?;
    let sbom = req
        .sbom_base64
        .as_deref()
        .map(|text| base64_field("sbom_base64", text))
        .transpose()?;
    let release = s
        .authority
        .upload_release(
            admin.actor(),
            &product,
            ReleaseUpload {
                version: req.version,
                image,
                sbom,
            },
        )
        .await?;
    Ok((StatusCode::CREATED, Json(convert::release(release))))
}

/// Lists a product's releases, oldest first, withdrawn ones included.
#[utoipa::path(get, path = "/v1/products/{id}/releases", tag = "admin",
    params(("id" = String, Path)),
    responses((status = 200, body = Vec<ReleaseBody>), (status = "4XX", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_releases(
    State(s): State<AppState>,
    _: Reader,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<Vec<ReleaseBody>>> {
    let product = product_id(&id)?;
    let releases = s.authority.releases(&product).await?;
    Ok(Json(releases.into_iter().map(convert::release).collect()))
}

fn release_id(raw: &str) -> ApiResult<String> {
    touchmark_core::id::ProductId::parse(raw)
        .map(|_| raw.to_owned())
        .map_err(|e| ApiError::invalid(format!("release id in the path: {e}")))
}

/// Shows one release of a product.
#[utoipa::path(get, path = "/v1/products/{id}/releases/{release}", tag = "admin",
    params(("id" = String, Path), ("release" = String, Path)),
    responses((status = 200, body = ReleaseBody), (status = "4XX", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_release(
    State(s): State<AppState>,
    _: Reader,
    ApiPath((id, release)): ApiPath<(String, String)>,
) -> ApiResult<Json<ReleaseBody>> {
    let product = product_id(&id)?;
    let release = release_id(&release)?;
    let release = s.authority.release(&product, &release).await?;
    Ok(Json(convert::release(release)))
}

/// The media type of a CycloneDX JSON BOM (the CycloneDX specification's registration).
const CYCLONEDX_JSON: &str = "application/vnd.cyclonedx+json";

/// A release's SBOM, byte for byte as uploaded: a CycloneDX 1.6 JSON BOM, validated against
/// its schema at upload; its SHA-256 is the release's `sbom_sha256`.
#[utoipa::path(get, path = "/v1/products/{id}/releases/{release}/sbom", tag = "admin",
    params(("id" = String, Path), ("release" = String, Path)),
    responses((status = 200, description = "the SBOM as uploaded (CycloneDX 1.6 JSON)",
                  content_type = "application/vnd.cyclonedx+json"),
              (status = "4XX", description = "`not_found` also for a release without an SBOM", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_release_sbom(
    State(s): State<AppState>,
    _: Reader,
    ApiPath((id, release)): ApiPath<(String, String)>,
) -> ApiResult<Response> {
    let product = product_id(&id)?;
    let release = release_id(&release)?;
    let sbom = s.authority.release_sbom(&product, &release).await?;
    Ok(([(header::CONTENT_TYPE, CYCLONEDX_JSON)], sbom).into_response())
}

/// Withdraws a release (admin): it stays stored and listed, and the withdrawal is logged.
#[utoipa::path(post, path = "/v1/products/{id}/releases/{release}/withdraw", tag = "admin",
    params(("id" = String, Path), ("release" = String, Path)),
    responses((status = 200, body = ReleaseBody), (status = "4XX", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn withdraw_release(
    State(s): State<AppState>,
    admin: Admin,
    ApiPath((id, release)): ApiPath<(String, String)>,
) -> ApiResult<Json<ReleaseBody>> {
    let product = product_id(&id)?;
    let release = release_id(&release)?;
    let release = s
        .authority
        .withdraw_release(admin.actor(), &product, &release)
        .await?;
    Ok(Json(convert::release(release)))
}

/// Names the release an order's units receive (admin), by version: each unit it issues from
/// then on must send its encryption key, and receives the release re-wrapped to it. Logged as
/// `order.release_set`; allowed on an open order (a new release, or one in place of a
/// withdrawn one).
#[utoipa::path(post, path = "/v1/orders/{id}/release", tag = "admin", params(("id" = String, Path)),
    request_body = SetOrderRelease,
    responses((status = 200, body = OrderReleaseBody), (status = "4XX", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn set_order_release(
    State(s): State<AppState>,
    admin: Admin,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<SetOrderRelease>,
) -> ApiResult<Json<OrderReleaseBody>> {
    let order =
        OrderId::parse(&id).map_err(|e| ApiError::invalid(format!("order id in the path: {e}")))?;
    if touchmark_core::firmware::parse_version(&req.release).is_none() {
        return Err(ApiError::new(
            ErrorCode::Unprocessable,
            "release: a release version is major.minor.revision[+build]",
        ));
    }
    let release = s
        .authority
        .set_order_release(admin.actor(), &order, &req.release)
        .await?;
    Ok(Json(OrderReleaseBody {
        order: order.into(),
        release: release.id,
        version: release.version,
    }))
}
