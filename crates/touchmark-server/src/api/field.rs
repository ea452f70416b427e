//! The field backends' endpoints (issue 17), for `field` tokens only, each call within the
//! token's rate limit: challenges for a proof of possession, and the verdict on a device's
//! chain. Thin: parse, call the authority.

use axum::Json;
use axum::extract::State;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use touchmark_authority::field::PresentedChain;
use touchmark_core::api::{ErrorBody, FieldChallenge, FieldVerdict, FieldVerify};
use touchmark_core::clock::format_timestamp;
use touchmark_core::policy::field::Possession;

use super::extract::ApiJson;
use crate::auth::FieldBackend;
use crate::error::ApiError;
use crate::state::AppState;

/// A challenge for a device to sign (field token): a nonce accepted once, from this token,
/// until `expires_at`. The device signs `"touchmark-field-possession-v1" || 0x00 || nonce`
/// (docs/field.md).
#[utoipa::path(post, path = "/v1/field/challenge", tag = "field",
    responses((status = 200, body = FieldChallenge), (status = "4XX", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn challenge(
    State(s): State<AppState>,
    backend: FieldBackend,
) -> Result<Json<FieldChallenge>, ApiError> {
    let challenge = s
        .authority
        .field_challenge(&backend.0.id, s.field_challenge_ttl)
        .await?;
    Ok(Json(FieldChallenge {
        nonce: STANDARD.encode(challenge.nonce),
        expires_at: format_timestamp(challenge.expires_at),
    }))
}

/// The verdict on a device (field token): `genuine`, `unknown` (not from this installation,
/// or never issued by it), `revoked` or `clone_suspect`, with every check made. With a proof
/// of possession, its challenge is used up and its signature checked with the certificate's
/// key. A chain or proof that does not parse is `unprocessable`, a chain longer than 64 KiB
/// `payload_too_large`; a challenge unknown, expired, used or another token's is
/// `challenge_invalid`.
#[utoipa::path(post, path = "/v1/field/verify", tag = "field", request_body = FieldVerify,
    responses((status = 200, body = FieldVerdict), (status = "4XX", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn verify(
    State(s): State<AppState>,
    backend: FieldBackend,
    ApiJson(req): ApiJson<FieldVerify>,
) -> Result<Json<FieldVerdict>, ApiError> {
    let chain = PresentedChain::parse(&req.chain)?;
    let possession = match &req.possession {
        Some(proof) => {
            s.authority
                .field_possession(&backend.0.id, &chain, proof)
                .await?
        }
        None => Possession::NotChecked,
    };
    let verdict = s.authority.field_verdict(&chain, possession).await?;
    Ok(Json(verdict))
}
