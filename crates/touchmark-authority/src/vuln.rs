//! Vulnerability reports (issue 18, `docs/vulnerabilities.md`): the public intake, the status a
//! reporter reads with the report's secret, the admins' triage (states, CRA classification,
//! notifications submitted, links), and the alerts of approaching and overdue CRA deadlines.
//! Every change is logged; the rules are `touchmark_core::policy::vuln`.

use std::str::FromStr;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use time::OffsetDateTime;
use touchmark_core::ProductId;
use touchmark_core::api::{LinkReport, SubmitReport};
use touchmark_core::clock::parse_timestamp;
use touchmark_core::code::ErrorCode;
use touchmark_core::event::{Actor, Event, EventBody, Logged, Sha256Hash};
use touchmark_core::field::FieldError;
use touchmark_core::policy::vuln as rules;
use touchmark_core::vuln::{
    Affected, AffectedCursor, AffectedStream, CraClass, Deadline, Justification, Link, LinkStatus,
    MergeStep, PackageUrl, PageMerge, PerDeadline, Report, ReportContent, ReportState,
    VersionRange, check_link_status,
};
use touchmark_store::{RecordKind, Rule, StoreError};

use crate::secrets::random_secret;
use crate::{Authority, AuthorityError, Result};

/// The prefix of a report's secret.
const SECRET_PREFIX: &str = "tmvr_";

/// A report just received: what the intake answers.
#[derive(Debug, Clone)]
pub struct Received {
    /// The report as stored.
    pub report: Report,
    /// The secret that reads its status: shown once, never stored.
    pub secret: String,
    /// Where `vuln.received` was logged.
    pub logged: Logged,
}

/// Checks an age recipient (`age1…`, an X25519 public key in Bech32), as the configuration
/// and the intake's published key name it.
///
/// # Errors
/// A message for anything else.
pub fn check_recipient(recipient: &str) -> std::result::Result<(), String> {
    age::x25519::Recipient::from_str(recipient)
        .map(|_| ())
        .map_err(|e| format!("`{recipient}` is not an age X25519 recipient (age1…): {e}"))
}

/// Checks that `armored` is an ASCII-armored age file whose header names X25519 recipients:
/// what `age -r RECIPIENT -a` writes. Its payload is not read (only the identity's holder can),
/// so a file encrypted to another key passes this check: the admin finds out on decrypting.
fn check_age_file(armored: &str) -> std::result::Result<(), String> {
    if !armored
        .trim_start()
        .starts_with("-----BEGIN AGE ENCRYPTED FILE-----")
    {
        return Err(
            "it is not ASCII-armored age (`age -a`): `-----BEGIN AGE ENCRYPTED FILE-----`".into(),
        );
    }
    let reader = age::armor::ArmoredReader::new(armored.as_bytes());
    let decryptor =
        age::Decryptor::new(reader).map_err(|e| format!("its age header does not parse: {e}"))?;
    if decryptor.is_scrypt() {
        return Err("it is encrypted to a passphrase, not to the published recipient".into());
    }
    Ok(())
}

fn sha256(text: &str) -> Sha256Hash {
    Sha256Hash(Sha256::digest(text.as_bytes()).into())
}

fn time_field(field: &'static str, text: Option<&str>) -> Result<Option<OffsetDateTime>> {
    text.map(|t| {
        parse_timestamp(t)
            .map(touchmark_store::to_millis)
            .map_err(|e| AuthorityError::Invalid(FieldError::new(field, e)))
    })
    .transpose()
}

fn unknown(field: &'static str, value: &str, allowed: &[&str]) -> AuthorityError {
    AuthorityError::Invalid(FieldError::new(
        field,
        format!(
            "`{}` is not one of {}",
            touchmark_core::clock::truncate(value, 32),
            allowed.join(", ")
        ),
    ))
}

/// A report id as the intake makes them: `vr-` and 16 hex digits (64 random bits).
fn new_report_id() -> String {
    format!("vr-{:016x}", crate::secrets::random_u64())
}

impl Authority {
    /// Publishes `recipient` (an age X25519 recipient, checked by the caller with
    /// [`check_recipient`]): reports may then come encrypted to it.
    #[must_use]
    pub fn with_report_recipient(mut self, recipient: Option<String>) -> Self {
        self.report_recipient = recipient;
        self
    }

    /// The published age recipient, if one is configured.
    pub fn report_recipient(&self) -> Option<&str> {
        self.report_recipient.as_deref()
    }

    /// Receives a report from the public intake: checks it, stores it as sent with the SHA-256
    /// of a new secret, and logs `vuln.received` (its content's hash, none of its text).
    ///
    /// # Errors
    /// `invalid_request` for a field the API document forbids; `unprocessable` for a report
    /// with neither description nor encrypted details; `cvss_invalid`; `product_unknown`;
    /// `report_encryption_invalid` for encrypted details that are not an age file, or when no
    /// recipient is published. Nothing is stored or logged then.
    pub async fn submit_report(&self, req: &SubmitReport) -> Result<Received> {
        let content = ReportContent::parse(req).map_err(|e| {
            if e.field == "cvss" {
                AuthorityError::denied(ErrorCode::CvssInvalid, e.to_string())
            } else {
                AuthorityError::Invalid(e)
            }
        })?;
        if let Some(encrypted) = &content.encrypted {
            if self.report_recipient.is_none() {
                return Err(AuthorityError::denied(
                    ErrorCode::ReportEncryptionInvalid,
                    "encrypted: this server publishes no encryption key; send the report in clear",
                ));
            }
            check_age_file(encrypted).map_err(|e| {
                AuthorityError::denied(
                    ErrorCode::ReportEncryptionInvalid,
                    format!("encrypted: {e}"),
                )
            })?;
        }
        let now = touchmark_store::to_millis(self.clock.now());
        let content_sha256 = Sha256Hash::of(
            &content
                .canonical_bytes()
                .map_err(AuthorityError::internal)?,
        );
        let secret = random_secret(SECRET_PREFIX);
        let report = Report {
            id: new_report_id(),
            secret_sha256: sha256(&secret),
            state: ReportState::Received,
            content,
            content_sha256,
            class: None,
            aware_at: None,
            corrective_at: None,
            submitted: PerDeadline::default(),
            alerted: PerDeadline::default(),
            received_at: now,
            updated_at: now,
        };
        let event = Event::new(
            now,
            EventBody::VulnReceived {
                report: report.id.clone(),
                content_sha256,
            },
        );
        let logged = match self.store.create_report(report.clone(), event).await {
            Err(StoreError::NotFound(r)) if r.kind == RecordKind::Product => {
                return Err(AuthorityError::denied(
                    ErrorCode::ProductUnknown,
                    format!("product: no product {} is known here", r.id),
                ));
            }
            other => other?,
        };
        tracing::info!(report = %report.id, "vulnerability report received");
        Ok(Received {
            report,
            secret,
            logged,
        })
    }

    /// The report `id`, for the reporter holding its `secret`. The secret's hash is compared in
    /// constant time; an unknown id and a wrong secret get the same answer, so neither tells
    /// whether the other was right.
    ///
    /// # Errors
    /// `not_found` for both.
    pub async fn report_for_reporter(&self, id: &str, secret: &str) -> Result<Report> {
        let not_found = || AuthorityError::NotFound(format!("vulnerability report {id}"));
        let report = self.store.report(id).await?.ok_or_else(not_found)?;
        let given = sha256(secret);
        if bool::from(given.0.ct_eq(&report.secret_sha256.0)) {
            Ok(report)
        } else {
            Err(not_found())
        }
    }

    /// Moves report `id` to state `to` (logged). For `fixed`, `corrective_at` records when the
    /// corrective measure became available, if before now.
    ///
    /// # Errors
    /// `invalid_request` for an unknown state or a malformed time; `not_found`;
    /// `report_transition_invalid` (409) for a move its state does not allow; `unprocessable`
    /// for a `corrective_at` on another move, or in the future.
    pub async fn change_report_state(
        &self,
        actor: Actor,
        id: &str,
        to: &str,
        corrective_at: Option<&str>,
    ) -> Result<Report> {
        let to = ReportState::parse(to)
            .ok_or_else(|| unknown("state", to, &ReportState::ALL.map(ReportState::as_str)[1..]))?;
        let corrective = time_field("corrective_at", corrective_at)?;
        let at = touchmark_store::to_millis(self.clock.now());
        self.update_report(
            id,
            Rule::new(move |r: &Report| rules::transition(r, to, corrective, actor, at)),
        )
        .await
    }

    /// Classifies report `id` under the CRA (logged): its clocks run from `aware_at`, or now.
    ///
    /// # Errors
    /// `invalid_request` for an unknown class or a malformed time; `not_found`; `conflict` for
    /// a report classified already or rejected; `unprocessable` for a time in the future.
    pub async fn classify_report(
        &self,
        actor: Actor,
        id: &str,
        class: &str,
        aware_at: Option<&str>,
    ) -> Result<Report> {
        let class = CraClass::parse(class)
            .ok_or_else(|| unknown("class", class, &CraClass::ALL.map(CraClass::as_str)))?;
        let aware = time_field("aware_at", aware_at)?;
        let at = touchmark_store::to_millis(self.clock.now());
        self.update_report(
            id,
            Rule::new(move |r: &Report| rules::classify(r, class, aware, actor, at)),
        )
        .await
    }

    /// Records that a CRA notification of report `id` was submitted (logged), at
    /// `submitted_at` or now.
    ///
    /// # Errors
    /// `invalid_request` for an unknown deadline or a malformed time; `not_found`; `conflict`
    /// for a report not classified, or a notification recorded already; `unprocessable` for a
    /// time in the future or before awareness.
    pub async fn record_submission(
        &self,
        actor: Actor,
        id: &str,
        deadline: &str,
        submitted_at: Option<&str>,
    ) -> Result<Report> {
        let deadline = Deadline::parse(deadline)
            .ok_or_else(|| unknown("deadline", deadline, &Deadline::ALL.map(Deadline::as_str)))?;
        let when = time_field("submitted_at", submitted_at)?;
        let at = touchmark_store::to_millis(self.clock.now());
        self.update_report(
            id,
            Rule::new(move |r: &Report| rules::submit(r, deadline, when, actor, at)),
        )
        .await
    }

    async fn update_report(
        &self,
        id: &str,
        rule: Rule<Report, rules::ReportChange>,
    ) -> Result<Report> {
        match self.store.update_report(id, rule).await {
            Err(StoreError::NotFound(_)) => Err(AuthorityError::NotFound(format!(
                "vulnerability report {id}"
            ))),
            other => Ok(other?),
        }
    }

    /// Links report `id` to a product, optionally one of its releases (by version) and an SBOM
    /// component, stating its status: affected (the default), fixed or not affected (logged).
    ///
    /// # Errors
    /// `invalid_request` for a malformed product id, or an unknown status or justification;
    /// `unprocessable` for a package URL or range that breaks its notation, a range without a
    /// package URL, `not_affected` without a justification (or a justification with another
    /// status), or `fixed` without a release; `product_unknown`;
    /// `not_found` for an unknown report or a version the product has no release of;
    /// `conflict` for the same link twice.
    pub async fn link_report(&self, actor: Actor, id: &str, req: &LinkReport) -> Result<Link> {
        let product = ProductId::parse(&req.product)
            .map_err(|e| AuthorityError::Invalid(FieldError::new("product", e.to_string())))?;
        let purl = req
            .purl
            .as_deref()
            .map(|p| PackageUrl::parse("purl", p))
            .transpose()?;
        let range = req
            .range
            .as_deref()
            .map(|r| VersionRange::parse("range", r))
            .transpose()?;
        if range.is_some() && purl.is_none() {
            return Err(AuthorityError::Invalid(FieldError::rule(
                "range",
                "a version range is the range of a component: give its `purl` too",
            )));
        }
        let status = match req.status.as_deref() {
            None => LinkStatus::Affected,
            Some(s) => LinkStatus::parse(s)
                .ok_or_else(|| unknown("status", s, &LinkStatus::ALL.map(LinkStatus::as_str)))?,
        };
        let justification = req
            .justification
            .as_deref()
            .map(|j| {
                Justification::parse(j).ok_or_else(|| {
                    unknown(
                        "justification",
                        j,
                        &Justification::ALL.map(Justification::as_str),
                    )
                })
            })
            .transpose()?;
        check_link_status(status, justification, req.release.is_some())?;
        if self.store.product(&product).await?.is_none() {
            return Err(AuthorityError::denied(
                ErrorCode::ProductUnknown,
                format!("product: no product {product} is known here"),
            ));
        }
        let release = match req.release.as_deref() {
            None => None,
            Some(version) => {
                let asked = touchmark_core::firmware::parse_version(version);
                let found = self
                    .store
                    .releases(&product)
                    .await?
                    .into_iter()
                    .find(|r| {
                        asked.is_some()
                            && touchmark_core::firmware::parse_version(&r.version) == asked
                    })
                    .ok_or_else(|| {
                        AuthorityError::NotFound(format!(
                            "release {} of product {product}",
                            touchmark_core::clock::truncate(version, 32)
                        ))
                    })?;
                Some(found)
            }
        };
        let link = Link {
            report: id.to_owned(),
            product,
            release: release.as_ref().map(|r| r.id.clone()),
            version: release.map(|r| r.version),
            purl,
            range,
            status,
            justification,
            linked_at: touchmark_store::to_millis(self.clock.now()),
        };
        let event = Event::new(
            link.linked_at,
            EventBody::VulnLinked {
                report: link.report.clone(),
                product: link.product.clone(),
                release: link.release.clone(),
                version: link.version.clone(),
                purl: link.purl.as_ref().map(|p| p.as_str().to_owned()),
                range: link.range.as_ref().map(|r| r.as_str().to_owned()),
                status: Some(link.status.as_str().to_owned()),
                justification: link.justification.map(|j| j.as_str().to_owned()),
                actor,
            },
        );
        match self.store.add_link(link.clone(), event).await {
            Err(StoreError::NotFound(r)) if r.kind == RecordKind::VulnReport => Err(
                AuthorityError::NotFound(format!("vulnerability report {id}")),
            ),
            other => {
                other?;
                Ok(link)
            }
        }
    }

    /// The units report `id` affects, from the serial → release lineage the log holds: every
    /// lot with its counts (one query: [`touchmark_store::VulnStore::affected_lots`]), and the
    /// page of at most `limit` units after `after`, by serial then order, read from each lot's
    /// index range ([`touchmark_store::VulnStore::affected_streams`]). A link to an SBOM
    /// component names the releases of its product whose SBOM holds the component in its
    /// version range; the second value counts the component links that name none. Without
    /// `counted`, the lots are found but their units not counted (the counts are 0): a page
    /// then costs its own units alone, for a caller that has the counts already.
    ///
    /// # Errors
    /// `not_found` for an unknown report.
    pub async fn affected_units(
        &self,
        id: &str,
        after: Option<&AffectedCursor>,
        limit: usize,
        counted: bool,
    ) -> Result<(Affected, u64)> {
        if self.store.report(id).await?.is_none() {
            return Err(AuthorityError::denied(
                ErrorCode::NotFound,
                format!("vulnerability report {} not found", id.escape_debug()),
            ));
        }
        let (mut releases, mut unresolved) = (Vec::<String>::new(), 0u64);
        for link in self
            .store
            .links(id)
            .await?
            .iter()
            .filter(|l| l.is_component())
        {
            let Some(purl) = &link.purl else { continue };
            let mut named = false;
            for component in self.store.releases_with_component(&purl.key()).await? {
                if link.names_component(&component) {
                    named = true;
                    if !releases.contains(&component.release) {
                        releases.push(component.release);
                    }
                }
            }
            unresolved += u64::from(!named);
        }
        let lots = self.store.affected_lots(id, &releases, counted).await?;
        // Each lot's units are read a part at a time, a stream read again only when the page
        // has taken all that was read of it.
        let mut merge = PageMerge::new(lots, after, limit);
        loop {
            let step = merge
                .step()
                .map_err(|e| touchmark_store::codec::corrupt("affected unit", e))?;
            let MergeStep::Read { streams, limit } = &step else {
                break;
            };
            let asked: Vec<(AffectedStream, String)> = streams
                .iter()
                .map(|(_, stream, from)| (stream.clone(), from.clone()))
                .collect();
            let read = self.store.affected_streams(&asked, *limit).await?;
            merge.fill(&step, read);
        }
        let page = merge.finish();
        Ok((page, unresolved))
    }

    /// Raises the `cra_deadline` alert of every deadline approaching or overdue now that has
    /// not raised one, and marks it raised: once per deadline, whichever replica looks first.
    /// Returns how many alerts this call raised.
    ///
    /// # Errors
    /// The store's.
    pub async fn raise_report_deadline_alerts(&self) -> Result<usize> {
        let now = self.clock.now();
        let mut raised = 0;
        for report in self.store.reports().await? {
            for due in rules::alerts_due(&report, now) {
                // Raised first, then marked: a crash between the two raises it again at the
                // next look (an open alert of the same key is not raised twice), rather than never.
                if self
                    .raise_alert(rules::deadline_alert(&report, &due))
                    .await?
                    .is_some()
                {
                    raised += 1;
                }
                self.store
                    .mark_alerted(&report.id, due.deadline, touchmark_store::to_millis(now))
                    .await?;
            }
        }
        Ok(raised)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn recipients_and_age_files_are_checked() {
        let identity = age::x25519::Identity::generate();
        let recipient = identity.to_public();
        assert!(check_recipient(&recipient.to_string()).is_ok());
        assert!(check_recipient("age1notakey").is_err());
        let mut armored = Vec::new();
        {
            let encryptor =
                age::Encryptor::with_recipients(std::iter::once(&recipient as &dyn age::Recipient))
                    .unwrap();
            let armor = age::armor::ArmoredWriter::wrap_output(
                &mut armored,
                age::armor::Format::AsciiArmor,
            )
            .unwrap();
            let mut writer = encryptor.wrap_output(armor).unwrap();
            std::io::Write::write_all(&mut writer, b"details").unwrap();
            writer.finish().unwrap().finish().unwrap();
        }
        let text = String::from_utf8(armored).unwrap();
        assert!(check_age_file(&text).is_ok(), "{text}");
        for bad in [
            "plain text",
            "-----BEGIN AGE ENCRYPTED FILE-----\nbm90IGFnZQ==\n-----END AGE ENCRYPTED FILE-----\n",
        ] {
            assert!(check_age_file(bad).is_err(), "{bad}");
        }
    }
}
