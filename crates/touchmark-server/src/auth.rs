//! Authentication as types: a handler that takes [`Admin`], [`Reader`], [`StationAuth`] or
//! [`DeviceAuth`] cannot run for a caller who lacks it; a [`StationAuth`] is never a revoked
//! station, a [`DeviceAuth`] never a revoked unit.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use touchmark_core::StationId;
use touchmark_core::code::ErrorCode;
use touchmark_core::entity::{ApiToken, Role, Station};
use touchmark_core::event::{Actor, Sha256Hash};
use touchmark_core::policy::issue::station_may_act;
use touchmark_pki::{StationCertError, StationIdentity, verify_station_cert};

use crate::access::RequestNotes;
use crate::error::ApiError;
use crate::listener::PeerCertificates;
use crate::state::AppState;

/// A caller holding a valid admin token.
#[derive(Debug, Clone)]
pub struct Admin(pub ApiToken);

/// A caller holding a valid admin or auditor token: may read everything.
#[derive(Debug, Clone)]
pub struct Reader(pub ApiToken);

impl Admin {
    /// The actor recorded in events.
    pub fn actor(&self) -> Actor {
        Actor::Token(self.0.id.clone())
    }
}

async fn bearer(parts: &Parts, state: &AppState) -> Result<ApiToken, ApiError> {
    let unauthorized = |m: &str| ApiError::new(ErrorCode::Unauthorized, m);
    // The dashboard's session cookie stands for a token when no Authorization header does.
    if !parts
        .headers
        .contains_key(axum::http::header::AUTHORIZATION)
        && let Some(token) = crate::ui::session_token(parts, state).await?
    {
        return Ok(token);
    }
    let header = parts
        .headers
        .get(axum::http::header::AUTHORIZATION)
        .ok_or_else(|| {
            unauthorized("this endpoint needs an API token: `Authorization: Bearer <token>`")
        })?;
    let value = header
        .to_str()
        .map_err(|_| unauthorized("the Authorization header is not ASCII"))?;
    // The scheme's name is case-insensitive (RFC 9110 §11.1), so `bearer` is `Bearer`.
    let secret = value
        .split_once(' ')
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("Bearer"))
        .map(|(_, secret)| secret.trim_start_matches(' '))
        .filter(|s| !s.is_empty() && s.len() <= 256)
        .ok_or_else(|| unauthorized("the Authorization header must be `Bearer <token>`"))?;
    let token = state
        .store
        .token_by_secret(Sha256Hash::of(secret.as_bytes()))
        .await?
        .filter(|t| !t.revoked)
        .ok_or_else(|| unauthorized("the API token is unknown or revoked"))?;
    Ok(token)
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer(parts, state).await?;
        if token.role != Role::Admin {
            return Err(ApiError::new(
                ErrorCode::Forbidden,
                format!(
                    "token {} has role {}; this action needs admin",
                    token.id,
                    token.role.as_str()
                ),
            ));
        }
        Ok(Self(token))
    }
}

impl FromRequestParts<AppState> for Reader {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer(parts, state).await?;
        // A field backend's token verifies devices and nothing else (issue 17).
        if token.role == Role::Field {
            return Err(ApiError::new(
                ErrorCode::Forbidden,
                format!(
                    "token {} has role field; it may only call /v1/field/*",
                    token.id
                ),
            ));
        }
        Ok(Self(token))
    }
}

/// A caller holding a valid field-backend token, within its rate limit: may verify devices and
/// report sightings on `/v1/field/*`, and nothing else. Every other role is refused there.
#[derive(Debug, Clone)]
pub struct FieldBackend(pub ApiToken);

impl FromRequestParts<AppState> for FieldBackend {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer(parts, state).await?;
        if token.role != Role::Field {
            return Err(ApiError::new(
                ErrorCode::Forbidden,
                format!(
                    "token {} has role {}; /v1/field/* needs a field token",
                    token.id,
                    token.role.as_str()
                ),
            ));
        }
        if let Err(retry_after) = state.field_rate.take(token.id.as_str(), state.clock.now()) {
            return Err(ApiError::new(
                ErrorCode::RateLimited,
                format!(
                    "token {} is over its rate limit for /v1/field/*; send again later",
                    token.id
                ),
            )
            .with_retry_after(retry_after));
        }
        Ok(Self(token))
    }
}

/// A station authenticated by its mTLS certificate, that may act: the chain verifies against
/// the station CA now, it is the certificate the station enrolled with, and the station is not
/// revoked, as its row reads at this request (so a revocation applies at once, also on a
/// connection kept alive from before it). A revoked station is refused here on every station
/// endpoint, before its request is read; the provisioning endpoint logs that refusal
/// (check 1, once per window: `policy::refusals`) with the station [`StationRefused`] carries.
#[derive(Debug, Clone)]
pub struct StationAuth {
    /// The station's record.
    pub station: Station,
}

/// Why a caller is not served as a station.
#[derive(Debug)]
pub struct StationRefused {
    /// The answer: `station_not_authorized` (401) when no station could be identified,
    /// `station_revoked` or `station_not_authorized` (403) when one was, but may not act.
    pub error: ApiError,
    /// The station a valid certificate identified, when it may not act.
    pub station: Option<Station>,
}

impl IntoResponse for StationRefused {
    fn into_response(self) -> Response {
        self.error.into_response()
    }
}

impl FromRequestParts<AppState> for StationAuth {
    type Rejection = StationRefused;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, StationRefused> {
        let refuse = |m: String| StationRefused {
            error: ApiError::unauthenticated(ErrorCode::StationNotAuthorized, m),
            station: None,
        };
        let chain = parts
            .extensions
            .get::<PeerCertificates>()
            .and_then(|p| p.0.clone())
            .ok_or_else(|| {
                refuse("no client certificate was presented; stations authenticate with the certificate from `touchmark station enroll`".into())
            })?;
        let now = state.clock.now();
        let identity = state
            .station_certs
            .verify(state.authority.station_ca().certificate(), &chain, now)
            .map_err(|e| refuse(format!("the client certificate was refused: {e}")))?;
        let id = StationId::parse(&identity.station_id).map_err(|e| {
            refuse(format!(
                "the client certificate names no valid station: {e}"
            ))
        })?;
        let station = state
            .store
            .station(&id)
            .await
            .map_err(|e| StationRefused {
                error: e.into(),
                station: None,
            })?
            .ok_or_else(|| refuse(format!("station {id} is unknown to this server")))?;
        if station.factory.as_str() != identity.factory_id
            || station.cert_sha256 != Some(Sha256Hash(identity.cert_sha256))
        {
            return Err(refuse(format!(
                "the client certificate is not station {id}'s current certificate"
            )));
        }
        if let Some(notes) = parts.extensions.get::<RequestNotes>() {
            notes.station(&station.id);
        }
        // Check 1 on the station alone; the order's factory is checked where the order is read.
        if let Err(refusal) = station_may_act(&station.id, Some(station.status)) {
            return Err(StationRefused {
                error: ApiError::new(refusal.code, refusal.message),
                station: Some(station),
            });
        }
        Ok(Self { station })
    }
}

/// A unit in the field authenticated by its own device certificate over mTLS: the chain its
/// handshake presented verifies to the device root, this installation issued the certificate,
/// and neither it nor its CA is revoked, as the store reads at this request.
#[derive(Debug, Clone)]
pub struct DeviceAuth(pub touchmark_authority::updates::DeviceUnit);

impl FromRequestParts<AppState> for DeviceAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let chain: Vec<Vec<u8>> = parts
            .extensions
            .get::<PeerCertificates>()
            .and_then(|p| p.0.as_ref())
            .map(|chain| chain.iter().map(|c| c.as_ref().to_vec()).collect())
            .unwrap_or_default();
        match state.authority.device_unit(chain).await {
            Ok(unit) => Ok(Self(unit)),
            // Not identified at all: 401, as RFC 9110 §15.5.2 asks.
            Err(touchmark_authority::AuthorityError::Denied(refusal))
                if refusal.code == ErrorCode::DeviceNotAuthorized =>
            {
                Err(ApiError::unauthenticated(refusal.code, refusal.message))
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// Station certificates whose chain verified, so a keep-alive station is not re-verified on
/// every request. An entry holds the certificate's validity window, checked against the clock
/// on every use; revocation is checked on every request by the store, not here.
#[derive(Debug, Default)]
pub struct StationCertCache {
    verified: std::sync::Mutex<
        std::collections::HashMap<
            [u8; 32],
            (StationIdentity, time::OffsetDateTime, time::OffsetDateTime),
        >,
    >,
}

/// Entries kept before the cache starts over; far more than any factory's stations.
const STATION_CERT_CACHE: usize = 10_000;

impl StationCertCache {
    /// Verifies `chain` against the station CA at `now`, or finds that it verified before and
    /// is still inside its validity window.
    ///
    /// # Errors
    /// [`StationCertError`] as [`verify_station_cert`] returns it.
    pub fn verify(
        &self,
        station_ca: &touchmark_pki::Certificate,
        chain: &[rustls_pki_types::CertificateDer<'_>],
        now: time::OffsetDateTime,
    ) -> Result<StationIdentity, StationCertError> {
        let leaf = chain
            .first()
            .ok_or_else(|| StationCertError::Malformed("no certificate".into()))?;
        let digest: [u8; 32] = Sha256Hash::of(leaf.as_ref()).0;
        let verified = self.verified.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((identity, not_before, not_after)) = verified.get(&digest) {
            if now < *not_before {
                return Err(StationCertError::NotYetValid);
            }
            if now > *not_after {
                return Err(StationCertError::Expired);
            }
            return Ok(identity.clone());
        }
        drop(verified);
        let identity = verify_station_cert(station_ca, chain, now)?;
        let (_, cert) = x509_parser::parse_x509_certificate(leaf.as_ref())
            .map_err(|e| StationCertError::Malformed(e.to_string()))?;
        let window = (
            cert.validity().not_before.to_datetime(),
            cert.validity().not_after.to_datetime(),
        );
        let mut verified = self.verified.lock().unwrap_or_else(|p| p.into_inner());
        if verified.len() >= STATION_CERT_CACHE {
            verified.clear();
        }
        verified.insert(digest, (identity.clone(), window.0, window.1));
        Ok(identity)
    }
}
