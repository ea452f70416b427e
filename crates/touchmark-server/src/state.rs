//! The state every handler shares.

use std::sync::Arc;

use touchmark_authority::Authority;
use touchmark_authority::log::Log;
use touchmark_core::Clock;
use touchmark_store::Store;

use crate::auth::StationCertCache;

/// Shared by every request. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The storage backend, for reads.
    pub(crate) store: Arc<dyn Store>,
    /// Every write goes through it.
    pub(crate) authority: Arc<Authority>,
    /// The time source.
    pub(crate) clock: Arc<dyn Clock>,
    /// The audit log.
    pub(crate) log: Arc<Log>,
    /// Station certificates already verified.
    pub(crate) station_certs: Arc<StationCertCache>,
    /// This process's Prometheus counters.
    pub(crate) metrics: Arc<crate::metrics::Metrics>,
    /// The oversight projector: alerts, and the dashboard's live updates.
    pub(crate) projector: Arc<crate::projector::Projector>,
    /// The dashboard's sessions.
    pub(crate) sessions: Arc<crate::ui::Sessions>,
    /// The CRLs, signed ahead of any fetch.
    pub(crate) crls: Arc<touchmark_authority::crl::CrlPublisher>,
    /// The OCSP responder.
    pub(crate) ocsp: Arc<touchmark_authority::ocsp::OcspResponder>,
    /// The field backends' rate limits, per token.
    pub(crate) field_rate: Arc<crate::rate::TokenRates>,
    /// How long a field challenge is accepted.
    pub(crate) field_challenge_ttl: time::Duration,
    /// The vulnerability intake's rate limits, per source address.
    pub(crate) report_rate: Arc<crate::rate::TokenRates>,
    /// `/.well-known/security.txt`, when configured.
    pub(crate) security_txt: Option<Arc<crate::security_txt::SecurityTxt>>,
}
