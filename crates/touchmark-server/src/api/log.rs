//! The audit log's public endpoints (C2SP tlog-tiles under `/log/`) and its proofs and
//! receipts under `/v1/`.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use touchmark_authority::log::{Log, Signed, UnitReceipt};
use touchmark_core::api::ErrorBody;
use touchmark_core::code::ErrorCode;
use touchmark_core::policy::issue::check_station;
use touchmark_core::{OrderId, Serial};
use touchmark_tlog::tile::{TILE_WIDTH, Tile, TileKind, encode_bundle};

use super::extract::{ApiPath, log_position};
use crate::auth::{Reader, StationAuth};
use crate::error::ApiError;
use crate::state::AppState;

/// How long a receipt request waits for a checkpoint to cover a fresh issuance: the sequencer
/// signs one within a second.
const RECEIPT_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

fn text(body: String, cache: &'static str) -> Response {
    (
        [
            (CONTENT_TYPE, "text/plain; charset=utf-8"),
            (CACHE_CONTROL, cache),
        ],
        body,
    )
        .into_response()
}

fn latest(log: &Log) -> Result<Signed, ApiError> {
    log.latest().ok_or_else(|| {
        ApiError::new(
            ErrorCode::NotFound,
            "the log has not signed a checkpoint yet",
        )
    })
}

/// The latest signed checkpoint (C2SP tlog-checkpoint in a signed note).
#[utoipa::path(get, path = "/log/checkpoint", tag = "audit",
    responses((status = 200, description = "signed checkpoint note", content_type = "text/plain"), (status = 404, body = ErrorBody)))]
pub async fn checkpoint(State(s): State<AppState>) -> Result<Response, ApiError> {
    Ok(text(
        latest(&s.log)?.checkpoint.note().to_owned(),
        "public, max-age=1",
    ))
}

/// The log's verifier key, for convenience: auditors should get it out of band.
#[utoipa::path(get, path = "/log/key", tag = "audit", responses((status = 200, description = "verifier key", content_type = "text/plain")))]
pub async fn key(State(s): State<AppState>) -> Response {
    text(format!("{}\n", s.log.verifier()), "public, max-age=3600")
}

/// A hash tile or an entry bundle (C2SP tlog-tiles): `tile/<L>/<N>[.p/<W>]`,
/// `tile/entries/<N>[.p/<W>]`.
#[utoipa::path(get, path = "/log/tile/{path}", tag = "audit", params(("path" = String, Path, description = "the tile path after `tile/`")),
    responses((status = 200, description = "tile contents", content_type = "application/octet-stream"), (status = "4XX", body = ErrorBody)))]
pub async fn tile(
    State(s): State<AppState>,
    ApiPath(path): ApiPath<String>,
) -> Result<Response, ApiError> {
    let tile = Tile::parse_path(&format!("tile/{path}"))
        .map_err(|e| ApiError::not_found(format!("tile {path} ({e})")))?;
    let size = latest(&s.log)?.size();
    let missing = || ApiError::not_found(format!("tile {path} in the log of size {size}"));
    let data = match tile.kind() {
        TileKind::Entries => {
            let start = tile
                .index()
                .checked_mul(u64::from(TILE_WIDTH))
                .ok_or_else(missing)?;
            if start + u64::from(tile.width()) > size {
                return Err(missing());
            }
            let events = s.store.events(start, u32::from(tile.width())).await?;
            if events.len() != usize::from(tile.width()) {
                return Err(ApiError::internal(format!(
                    "entries of tile {path} are missing"
                )));
            }
            encode_bundle(
                &events
                    .iter()
                    .map(|e| e.bytes.as_slice())
                    .collect::<Vec<_>>(),
            )
            .map_err(ApiError::internal)?
        }
        TileKind::Hashes { level } => {
            // Published only within the latest checkpoint's tree.
            let at_size = touchmark_tlog::tile::tiles_for_size(size)
                .into_iter()
                .find(|t| t.level() == Some(level) && t.index() == tile.index())
                .ok_or_else(missing)?;
            if tile.width() > at_size.width() {
                return Err(missing());
            }
            s.log
                .hash_tile(level, tile.index(), tile.width())
                .await?
                .ok_or_else(missing)?
        }
    };
    let cache = if tile.is_full() {
        "public, max-age=31536000, immutable"
    } else {
        "public, max-age=60"
    };
    Ok((
        [
            (CONTENT_TYPE, "application/octet-stream"),
            (CACHE_CONTROL, cache),
        ],
        data,
    )
        .into_response())
}

fn log_position_required<'de, D: serde::Deserializer<'de>>(de: D) -> Result<u64, D::Error> {
    log_position(de)?.ok_or_else(|| serde::de::Error::custom("a log position is required"))
}

/// Parameters of an inclusion proof.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct InclusionQuery {
    /// The entry's index.
    #[serde(deserialize_with = "log_position_required")]
    pub index: u64,
    /// The tree size (a signed checkpoint's); the latest when absent.
    #[serde(default, deserialize_with = "log_position")]
    pub size: Option<u64>,
}

/// A proof, with the signed checkpoint it leads to.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ProofBody {
    /// The tree size the proof is for.
    pub size: u64,
    /// The proof's hashes, base64.
    pub proof: Vec<String>,
    /// The signed checkpoint of that size.
    pub checkpoint: String,
}

async fn checkpoint_of(s: &AppState, size: Option<u64>) -> Result<(u64, String), ApiError> {
    let latest = latest(&s.log)?;
    match size {
        None => Ok((latest.size(), latest.checkpoint.note().to_owned())),
        Some(n) if n > latest.size() => {
            Err(ApiError::not_found(format!("a checkpoint of size {n}")))
        }
        Some(n) => {
            let note =
                s.store.checkpoint_at(n).await?.ok_or_else(|| {
                    ApiError::not_found(format!("a signed checkpoint of size {n}"))
                })?;
            Ok((n, note))
        }
    }
}

/// An inclusion proof (RFC 9162 §2.1.3) against a signed checkpoint.
#[utoipa::path(get, path = "/v1/log/proof/inclusion", tag = "audit", params(InclusionQuery),
    responses((status = 200, body = ProofBody), (status = "4XX", body = ErrorBody)))]
pub async fn inclusion(
    State(s): State<AppState>,
    query: Result<Query<InclusionQuery>, QueryRejection>,
) -> Result<Json<ProofBody>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::invalid(e.body_text()))?;
    let (size, checkpoint) = checkpoint_of(&s, q.size).await?;
    if q.index >= size {
        return Err(ApiError::not_found(format!(
            "entry {} in the tree of size {size}",
            q.index
        )));
    }
    let proof = s.log.inclusion_proof(q.index, size).await?;
    Ok(Json(ProofBody {
        size,
        proof: proof.iter().map(|h| h.to_base64()).collect(),
        checkpoint,
    }))
}

/// Parameters of a consistency proof.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ConsistencyQuery {
    /// The older tree size.
    #[serde(deserialize_with = "log_position_required")]
    pub old: u64,
    /// The newer tree size (a signed checkpoint's); the latest when absent.
    #[serde(default, deserialize_with = "log_position")]
    pub new: Option<u64>,
}

/// A consistency proof (RFC 9162 §2.1.4) between two tree sizes.
#[utoipa::path(get, path = "/v1/log/proof/consistency", tag = "audit", params(ConsistencyQuery),
    responses((status = 200, body = ProofBody), (status = "4XX", body = ErrorBody)))]
pub async fn consistency(
    State(s): State<AppState>,
    query: Result<Query<ConsistencyQuery>, QueryRejection>,
) -> Result<Json<ProofBody>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::invalid(e.body_text()))?;
    let (size, checkpoint) = checkpoint_of(&s, q.new).await?;
    if q.old > size {
        return Err(ApiError::not_found(format!(
            "a consistency proof from size {} to the smaller size {size}",
            q.old
        )));
    }
    let proof = s.log.consistency_proof(q.old, size).await?;
    Ok(Json(ProofBody {
        size,
        proof: proof.iter().map(|h| h.to_base64()).collect(),
        checkpoint,
    }))
}

async fn unit_receipt(
    s: &AppState,
    serial: &str,
    order: Option<&OrderId>,
) -> Result<Response, ApiError> {
    let serial =
        Serial::parse(serial).map_err(|e| ApiError::invalid(format!("serial in the path: {e}")))?;
    match s.log.unit_receipt(&serial, order, RECEIPT_WAIT).await? {
        UnitReceipt::Covered(receipt) => Ok(text(receipt, "public, max-age=60")),
        UnitReceipt::NotIssued => Err(ApiError::not_found(format!("an issued unit {serial}"))),
        UnitReceipt::NotCovered { index } => {
            let entry =
                index.map_or_else(|| "the issuance entry".to_owned(), |i| format!("entry {i}"));
            Err(ApiError::new(
                ErrorCode::NotFound,
                format!("no checkpoint covers {entry} yet; retry shortly"),
            ))
        }
    }
}

/// A unit's receipt: its issuance event's inclusion proof and the signed checkpoint.
#[utoipa::path(get, path = "/v1/units/{serial}/receipt", tag = "audit", params(("serial" = String, Path)),
    responses((status = 200, description = "c2sp.org/tlog-proof@v1", content_type = "text/plain"), (status = "4XX", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn unit_receipt_for_reader(
    State(s): State<AppState>,
    _: Reader,
    ApiPath(serial): ApiPath<String>,
) -> Result<Response, ApiError> {
    unit_receipt(&s, &serial, None).await
}

/// A unit's receipt, for the station that provisioned it in this order.
#[utoipa::path(get, path = "/v1/orders/{order}/units/{serial}/receipt", tag = "station",
    params(("order" = String, Path), ("serial" = String, Path)),
    responses((status = 200, description = "c2sp.org/tlog-proof@v1", content_type = "text/plain"), (status = "4XX", body = ErrorBody)),
    security(("mutual_tls" = [])))]
pub async fn unit_receipt_for_station(
    State(s): State<AppState>,
    station: StationAuth,
    ApiPath((order, serial)): ApiPath<(String, String)>,
) -> Result<Response, ApiError> {
    let order = OrderId::parse(&order)
        .map_err(|e| ApiError::invalid(format!("order id in the path: {e}")))?;
    let known = s
        .store
        .order(&order)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("order {order}")))?;
    // Check 1: a station reads only what it may provision: active, and of the order's factory.
    check_station(&station.station, &known)
        .map_err(|refusal| ApiError::new(refusal.code, refusal.message))?;
    unit_receipt(&s, &serial, Some(&order)).await
}
