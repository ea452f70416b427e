//! The state every handler shares.

use std::sync::Arc;

use touchmark_core::Clock;
use touchmark_store::Store;

use crate::authority::Authority;

/// Shared by every request. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The storage backend.
    pub store: Arc<dyn Store>,
    /// The decisions and signatures.
    pub authority: Arc<Authority>,
    /// The time source.
    pub clock: Arc<dyn Clock>,
    /// The audit log.
    pub log: Arc<crate::log::Log>,
    /// Station certificates already verified.
    pub station_certs: Arc<crate::auth::StationCertCache>,
}
