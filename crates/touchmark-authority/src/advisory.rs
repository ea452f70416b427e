//! CSAF 2.0 advisories of vulnerability reports (`docs/vulnerabilities.md`, "Advisories"):
//! the facts gathered from the store (the report, its links, the products and releases they
//! name, the revisions published before), the document built by `touchmark_core::csaf`, and a
//! published revision recorded with its `vuln.advisory_published` event. A draft is written
//! and neither stored nor logged.

use touchmark_core::api::WriteAdvisory;
use touchmark_core::code::ErrorCode;
use touchmark_core::csaf::{
    self, Advisory, AdvisoryFacts, AdvisoryOptions, CsafConfig, Revision, TrackingStatus,
};
use touchmark_core::event::{Actor, Event, EventBody, Logged};
use touchmark_store::{RecordKind, StoreError};

use crate::{Authority, AuthorityError, Result};

/// The generator's version in every document: this build's.
const VERSION: &str = env!("CARGO_PKG_VERSION");

/// A document written: a draft, or a published revision with where it was logged.
#[derive(Debug, Clone)]
pub struct Written {
    /// The document and what is known of it.
    pub advisory: Advisory,
    /// Where `vuln.advisory_published` was logged, for a published revision.
    pub logged: Option<Logged>,
}

impl Authority {
    /// Advisories are published by `config`'s publisher, under its base URL.
    #[must_use]
    pub fn with_csaf(mut self, config: Option<CsafConfig>) -> Self {
        self.csaf = config;
        self
    }

    /// The CSAF configuration, when one is set (`[csaf]`).
    pub fn csaf(&self) -> Option<&CsafConfig> {
        self.csaf.as_ref()
    }

    /// Writes report `id`'s advisory: with `req.publish`, its next revision, stored and logged
    /// (`vuln.advisory_published`) in one transaction; otherwise a draft, neither.
    ///
    /// # Errors
    /// `invalid_request` or `unprocessable` for a malformed field; `csaf_not_configured`
    /// without `[csaf]`; `not_found` for an unknown report; `report_not_linked` for a report
    /// whose links name no product or release; `unprocessable` for links that state two
    /// statuses of one product version; `conflict` when another revision was published
    /// meanwhile.
    pub async fn write_advisory(
        &self,
        actor: Actor,
        id: &str,
        req: &WriteAdvisory,
    ) -> Result<Written> {
        let options = AdvisoryOptions::parse(req)?;
        let config = self.csaf.as_ref().ok_or_else(|| {
            AuthorityError::denied(
                ErrorCode::CsafNotConfigured,
                "this server has no CSAF publisher: configure `[csaf]` (publisher_name, \
                 publisher_namespace) and an https `public_url`",
            )
        })?;
        let not_found = || AuthorityError::NotFound(format!("vulnerability report {id}"));
        let report = self.store.report(id).await?.ok_or_else(not_found)?;
        let links = self.store.links(id).await?;
        let mut products = Vec::new();
        let mut releases = Vec::new();
        for link in &links {
            if products
                .iter()
                .any(|p: &touchmark_core::entity::Product| p.id == link.product)
            {
                continue;
            }
            if let Some(product) = self.store.product(&link.product).await? {
                releases.extend(self.store.releases(&product.id).await?);
                products.push(product);
            }
        }
        let tracking_id = csaf::tracking_id(id, options.vex);
        let history: Vec<Revision> = self
            .store
            .advisories(id)
            .await?
            .into_iter()
            .filter(|a| a.tracking_id == tracking_id)
            .map(|a| Revision {
                version: a.version,
                date: a.published_at,
                summary: a.summary,
            })
            .collect();
        let now = touchmark_store::to_millis(self.clock.now());
        let advisory = csaf::build(&AdvisoryFacts {
            report: &report,
            links: &links,
            products: &products,
            releases: &releases,
            history: &history,
            config,
            options: &options,
            status: if req.publish {
                TrackingStatus::Final
            } else {
                TrackingStatus::Draft
            },
            now,
            generator_version: VERSION,
        })
        .map_err(|r| match r.code {
            ErrorCode::Internal => AuthorityError::internal(r.message),
            _ => AuthorityError::Denied(r),
        })?;
        if !req.publish {
            return Ok(Written {
                advisory,
                logged: None,
            });
        }
        let event = Event::new(
            now,
            EventBody::VulnAdvisoryPublished {
                report: id.to_owned(),
                tracking_id: advisory.tracking_id.clone(),
                version: u64::from(advisory.version),
                sha256: advisory.sha256,
                actor,
            },
        );
        let logged = match self.store.publish_advisory(advisory.clone(), event).await {
            Err(StoreError::NotFound(r)) if r.kind == RecordKind::VulnReport => {
                return Err(not_found());
            }
            Err(StoreError::Exists(_)) => {
                return Err(AuthorityError::denied(
                    ErrorCode::Conflict,
                    format!(
                        "advisory {} had another revision published meanwhile: write it again",
                        advisory.tracking_id
                    ),
                ));
            }
            other => other?,
        };
        tracing::info!(
            report = %id,
            tracking_id = %advisory.tracking_id,
            version = advisory.version,
            "CSAF advisory published"
        );
        Ok(Written {
            advisory,
            logged: Some(logged),
        })
    }

    /// The latest revision of every published advisory: what the provider's directory serves.
    ///
    /// # Errors
    /// The store's.
    pub async fn published_advisories(&self) -> Result<Vec<Advisory>> {
        Ok(self.store.latest_advisories().await?)
    }
}
