//! Touchmark's authority: it decides and signs, with no HTTP in it.
//!
//! Every write of the product goes through [`Authority`]. It takes checked commands
//! (`touchmark_core::command`), applies the rules of `touchmark_core::policy` in their order,
//! builds every event, signs through the installation's keys, and has the store record the
//! result with its event in one transaction. It answers with its own [`AuthorityError`], which
//! the server maps to HTTP in one place and the CLI prints.
//!
//! Split by capability, as step-ca's `authority/` is:
//! - [`alerts`]: raising, acknowledging and resolving alerts, and their webhooks;
//! - [`field`]: the verdict on a device seen in the field (issue 17);
//! - [`catalog`]: API tokens, products and their issuing CAs, factories, orders and quotas;
//! - [`ca`]: products' issuing CAs under an offline device root (request, install);
//! - [`stations`]: stations, their enrollment and their revocation;
//! - [`issuance`]: provisioning one unit (design.md §4);
//! - `refusals`: recording refusals, check 1's counted per station and window beyond the
//!   first few, and their flood alerts;
//! - [`firmware`]: release encryption keys, firmware signing keys and releases (design.md §7);
//! - [`delivery`]: an order's release, and each unit's image re-wrapped to its own key;
//! - [`keys`]: key operations as events (`key.generated`);
//! - [`revocation`]: revoking units, orders, CAs, stations, and a station's units by
//!   provenance;
//! - [`vuln`]: vulnerability reports: the public intake, triage, CRA clocks and their alerts;
//! - [`log`]: the audit log, its sequencer, proofs and receipts (design.md §6);
//! - [`installation`]: the data directory's keys and certificates, under two roots (`touchmark
//!   init`, `touchmark split-roots`).

pub mod advisory;
pub mod alerts;
pub mod ca;
pub mod catalog;
pub mod crl;
pub mod delivery;
mod error;
pub mod field;
pub mod firmware;
pub mod installation;
pub mod issuance;
pub mod keys;
pub mod log;
pub mod ocsp;
mod refusals;
pub mod revocation;
mod sbom;
pub mod secrets;
pub mod stations;
pub mod updates;
pub mod vuln;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use touchmark_core::{Clock, ProductId};
use touchmark_pki::{CaIssuer, KeyProvider};
use touchmark_store::Store;

pub use error::AuthorityError;
pub use installation::{DeviceRoot, InitOptions, Installation, InstallationError, RootLayout};
pub use issuance::Provisioned;

/// Shorthand for the authority's results.
pub type Result<T, E = AuthorityError> = std::result::Result<T, E>;

/// Decides, signs and records.
#[derive(Debug)]
pub struct Authority {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    keys: Arc<dyn KeyProvider>,
    device_root: installation::DeviceRoot,
    device_root_pem: String,
    server_root_pem: String,
    station_ca: Arc<CaIssuer>,
    station_ca_pem: String,
    issuers: RwLock<HashMap<ProductId, Arc<issuance::ProductIssuer>>>,
    refusals: refusals::RefusalWindows,
    revocations: tokio::sync::watch::Sender<u64>,
    /// The base URL relying parties reach the server's `/crl` and `/ocsp` at, when configured.
    public_url: Option<String>,
    /// What a release upload may be (its size) and what the bootloader accepts.
    firmware_limits: touchmark_firmware::Limits,
    /// The releases whose content key is open, for re-wrapping.
    releases: delivery::Releases,
    /// The age recipient vulnerability reports may be encrypted to, when one is published.
    report_recipient: Option<String>,
    /// The publisher of CSAF advisories and the provider's URLs (`[csaf]`), when configured.
    csaf: Option<touchmark_core::csaf::CsafConfig>,
}

impl Authority {
    /// An authority over `installation`'s keys, recording into `store`.
    pub fn new(installation: &Installation, store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> Self {
        Self {
            store,
            clock,
            keys: Arc::clone(installation.keys()),
            device_root: installation.device_root().clone(),
            device_root_pem: installation.device_root().certificate().pem(),
            server_root_pem: installation.infra_root().certificate().pem(),
            station_ca: Arc::clone(installation.station_ca()),
            station_ca_pem: installation.station_ca().certificate().pem(),
            issuers: RwLock::new(HashMap::new()),
            refusals: refusals::RefusalWindows::new(
                touchmark_core::policy::refusals::RefusalLimit::default(),
            ),
            revocations: tokio::sync::watch::Sender::new(0),
            public_url: None,
            firmware_limits: touchmark_firmware::Limits::default(),
            releases: delivery::Releases::default(),
            report_recipient: None,
            csaf: None,
        }
    }

    /// Release uploads are limited by `limits` (16 MiB by default).
    #[must_use]
    pub fn with_firmware_limits(mut self, limits: touchmark_firmware::Limits) -> Self {
        self.firmware_limits = limits;
        self
    }

    /// Release images larger than `bytes` are refused (`image_too_large`).
    #[must_use]
    pub fn with_max_release_size(mut self, bytes: u64) -> Self {
        self.firmware_limits.max_image_size = bytes;
        self
    }

    /// The limits of a release upload.
    pub fn firmware_limits(&self) -> touchmark_firmware::Limits {
        self.firmware_limits
    }

    /// New device certificates name the CRL partition of their order and the OCSP responder
    /// under `url` (without a trailing `/`), unless their product names URLs of its own.
    #[must_use]
    pub fn with_public_url(mut self, url: Option<String>) -> Self {
        self.public_url = url.map(|u| u.trim_end_matches('/').to_owned());
        self
    }

    /// The public base URL, if one is configured.
    pub fn public_url(&self) -> Option<&str> {
        self.public_url.as_deref()
    }

    /// The station CA.
    pub fn station_ca(&self) -> &CaIssuer {
        &self.station_ca
    }

    /// The station CA certificate, PEM.
    pub fn station_ca_pem(&self) -> &str {
        &self.station_ca_pem
    }

    /// The device root CA certificate, PEM: the anchor of every device chain.
    pub fn device_root_pem(&self) -> &str {
        &self.device_root_pem
    }

    /// The root CA certificate that anchors the server's TLS certificate and the station CA,
    /// PEM: the infrastructure root (the one root, in a data directory from before the
    /// split).
    pub fn server_root_pem(&self) -> &str {
        &self.server_root_pem
    }

    /// The store the authority records into.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The authority's clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }
}

/// Runs `sign` on a blocking thread. Every private-key operation goes through here: a key
/// behind a provider (an HSM over PKCS#11) may take milliseconds, which must not stall the
/// async runtime's workers.
///
/// # Errors
/// [`AuthorityError::Internal`] if the task could not run to its end.
pub(crate) async fn off_runtime<T: Send + 'static>(
    sign: impl FnOnce() -> T + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(sign)
        .await
        .map_err(|e| AuthorityError::internal(format!("a signing task failed: {e}")))
}
