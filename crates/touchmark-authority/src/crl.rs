//! CRLs (design.md §8), one per issuing CA and one partition per order, signed here and kept
//! ready: a relying party's fetch reads the cache and never signs.
//!
//! What is published, by name (the path after `/crl/`):
//! - `_root`: the device root's CRL, which lists revoked product issuing CAs;
//! - `{product}`: a product issuing CA's full CRL, every revoked unit of the product;
//! - `{product}/{order}`: the order's partition, scoped by an issuing distribution point with
//!   its own URL, which the order's units name in their CRL distribution point. Published only
//!   when a public URL is configured: without one, no certificate names a partition. A device
//!   checks a list of its own order's revocations only.
//!
//! Names start with `_` where they are the installation's own CAs: an id never does, so no
//! product can take one.
//!
//! [`CrlPublisher::run`] regenerates every CRL within a moment of each committed revocation
//! ([`Authority::revocations`]) and, at the latest, [`CrlConfig::refresh`] after the last time,
//! well before nextUpdate. A CRL whose entries did not change is kept as it was until its
//! refresh is due: a signal that changed nothing of it (another CA's revocation, one seen again
//! in the log) costs no signature and gives relying parties no new number. The CRL number is the thisUpdate in milliseconds since 1970, raised
//! above the last number this process gave if the clock went back: it only grows, across
//! restarts and replicas, without a counter to keep.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use time::OffsetDateTime;
use touchmark_core::ProductId;
use touchmark_pki::Certificate;
use touchmark_pki::crl::{CrlContent, RevokedEntry, build_crl};

use crate::{Authority, AuthorityError, Result, off_runtime};

/// The device root's CRL name.
pub const ROOT: &str = "_root";

/// How CRLs are published.
#[derive(Debug, Clone)]
pub struct CrlConfig {
    /// nextUpdate is thisUpdate plus this.
    pub validity: Duration,
    /// CRLs are signed again at least this often (well before nextUpdate).
    pub refresh: Duration,
}

impl Default for CrlConfig {
    fn default() -> Self {
        Self {
            validity: Duration::from_secs(24 * 3600),
            refresh: Duration::from_secs(3600),
        }
    }
}

/// A signed CRL, ready to serve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedCrl {
    /// DER.
    pub der: Vec<u8>,
    /// Its CRL number.
    pub number: u64,
    /// thisUpdate.
    pub this_update: OffsetDateTime,
    /// nextUpdate.
    pub next_update: OffsetDateTime,
    /// Entries.
    pub entries: usize,
    /// What it lists and the partition it is scoped to: a CRL that would list the same is not
    /// signed again before its refresh is due.
    listed: (Vec<RevokedEntry>, Option<String>),
}

/// The CRLs signed last, by name.
#[derive(Debug, Default)]
pub struct CrlPublisher {
    crls: RwLock<HashMap<String, Arc<PublishedCrl>>>,
    last_number: std::sync::Mutex<u64>,
}

impl CrlPublisher {
    /// The CRL published under `name`, as signed last.
    pub fn get(&self, name: &str) -> Option<Arc<PublishedCrl>> {
        self.crls
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
    }

    fn number(&self, at: OffsetDateTime) -> u64 {
        let mut last = self.last_number.lock().unwrap_or_else(|p| p.into_inner());
        let millis = u64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(0);
        *last = millis.max(*last + 1);
        *last
    }

    /// Regenerates every CRL of `authority` now, then again after each committed revocation and
    /// at least every `config.refresh`, until `stop` turns true.
    pub async fn run(
        self: Arc<Self>,
        authority: Arc<Authority>,
        config: CrlConfig,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) {
        let mut revocations = authority.revocations();
        loop {
            revocations.mark_unchanged();
            if let Err(e) = self.publish_all(&authority, &config).await {
                tracing::error!(error = %e, "cannot publish the CRLs");
            }
            tokio::select! {
                _ = revocations.changed() => {}
                _ = tokio::time::sleep(config.refresh) => {}
                _ = stop.changed() => return,
            }
        }
    }

    /// Signs every CRL afresh from what the store holds now.
    ///
    /// # Errors
    /// A store or signing failure; the CRLs signed before stay published.
    pub async fn publish_all(&self, authority: &Authority, config: &CrlConfig) -> Result<()> {
        let now = authority.clock.now();
        let next = now + config.validity;
        let mut fresh: HashMap<String, Arc<PublishedCrl>> = HashMap::new();
        // The device root's CRL: revoked product CAs. An offline root's CRL is signed where its
        // key is, not here.
        if let Some(root) = authority.device_root.issuer() {
            let mut root_entries = Vec::new();
            for ca in authority.store.revoked_cas().await? {
                let product = authority.store.product(&ca.product).await?.ok_or_else(|| {
                    AuthorityError::internal(format!(
                        "a revoked CA of unknown product {}",
                        ca.product
                    ))
                })?;
                let cert = Certificate::from_pem(&product.issuing_ca_pem)
                    .map_err(AuthorityError::internal)?;
                root_entries.push(RevokedEntry {
                    serial: touchmark_pki::crl::certificate_serial(&cert)
                        .map_err(AuthorityError::internal)?,
                    revoked_at: ca.revoked.at,
                    reason: ca.revoked.reason.code(),
                });
            }
            let root_crl = self
                .sign(
                    ROOT,
                    config,
                    root.certificate().clone(),
                    Arc::clone(root.signer()),
                    now,
                    next,
                    root_entries,
                    None,
                )
                .await?;
            fresh.insert(ROOT.to_owned(), root_crl);
        }

        let orders = authority.store.orders().await?;
        // A product whose CA certificate is not installed yet has issued nothing.
        for product in authority.store.products().await? {
            if !product.ca_installed() {
                continue;
            }
            let issuer = authority.product_issuer(&product.id).await?;
            let revoked = authority.store.revoked_certificates(&product.id).await?;
            let entry = |r: &touchmark_store::RevokedCertificate| -> Result<RevokedEntry> {
                Ok(RevokedEntry {
                    serial: hex::decode(&r.cert_serial_hex).map_err(AuthorityError::internal)?,
                    revoked_at: r.revoked.at,
                    reason: r.revoked.reason.code(),
                })
            };
            let all = revoked.iter().map(entry).collect::<Result<Vec<_>>>()?;
            let (cert, signer) = issuer.ca();
            let full = self
                .sign(
                    product.id.as_str(),
                    config,
                    cert.clone(),
                    Arc::clone(signer),
                    now,
                    next,
                    all,
                    None,
                )
                .await?;
            fresh.insert(product.id.to_string(), full);
            // A partition is scoped by its URL, which its units name: without a public URL
            // there is none to name, and no partition.
            let Some(base) = authority.public_url.as_deref() else {
                continue;
            };
            for order in orders.iter().filter(|o| o.product == product.id) {
                let entries = revoked
                    .iter()
                    .filter(|r| r.order == order.id)
                    .map(entry)
                    .collect::<Result<Vec<_>>>()?;
                let name = partition_name(&product.id, &order.id);
                let url = Some(format!("{base}/crl/{name}"));
                let crl = self
                    .sign(
                        &name,
                        config,
                        cert.clone(),
                        Arc::clone(signer),
                        now,
                        next,
                        entries,
                        url,
                    )
                    .await?;
                fresh.insert(name, crl);
            }
        }
        let mut crls = self.crls.write().unwrap_or_else(|p| p.into_inner());
        crls.extend(fresh);
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    async fn sign(
        &self,
        name: &str,
        config: &CrlConfig,
        cert: Certificate,
        signer: Arc<dyn touchmark_pki::Signer>,
        now: OffsetDateTime,
        next: OffsetDateTime,
        entries: Vec<RevokedEntry>,
        partition_url: Option<String>,
    ) -> Result<Arc<PublishedCrl>> {
        if let Some(last) = self.get(name)
            && last.listed.0 == entries
            && last.listed.1 == partition_url
            && last.this_update <= now
            && now < last.this_update + config.refresh
        {
            return Ok(last);
        }
        let listed = (entries.clone(), partition_url.clone());
        let content = CrlContent {
            number: self.number(now),
            this_update: now,
            next_update: next,
            entries,
            partition_url,
        };
        let (der, content) = off_runtime(move || {
            build_crl(&cert, signer.as_ref(), &content).map(|der| (der, content))
        })
        .await?
        .map_err(AuthorityError::internal)?;
        Ok(Arc::new(PublishedCrl {
            der,
            number: content.number,
            this_update: content.this_update,
            next_update: content.next_update,
            entries: content.entries.len(),
            listed,
        }))
    }
}

/// The name of an order's partition: `{product}/{order}`.
pub fn partition_name(product: &ProductId, order: &touchmark_core::OrderId) -> String {
    format!("{product}/{order}")
}
