//! Provisioning one unit (design.md §4): checks 1 to 5 here, in order, on what the request and
//! the order say; then the signature, off the async runtime; then checks 6 to 8, the count, the
//! certificate and the event, in one transaction of the store.

use std::sync::Arc;

use touchmark_core::code::{ErrorCode, Refusal};
use touchmark_core::command::Provision;
use touchmark_core::entity::Station;
use touchmark_core::event::{Event, Sha256Hash};
use touchmark_core::field::Oid;
use touchmark_core::policy::issue::{self, Attempt, Issuance, OrderFacts};
use touchmark_core::{OrderId, ProductId, Serial};
use touchmark_pki::attestation::{Attestation, AttestationRoots};
use touchmark_pki::{CaIssuer, Certificate, CsrError, DeviceProfile, VerifiedCsr, parse_csr};
use touchmark_store::{
    IssueOutcome, IssueRequest, IssuedUnit, NewCertificate, Rejection, TestAttempt,
};

use crate::delivery::{DeliveredFirmware, FirmwareCheck};
use crate::installation::key_names;
use crate::secrets::serial_number;
use crate::{Authority, AuthorityError, Result, off_runtime};

/// A product's issuing CA and certificate profile, loaded once.
#[derive(Debug)]
pub(crate) struct ProductIssuer {
    product: ProductId,
    issuer: CaIssuer,
    profile: DeviceProfile,
    issuing_ca_pem: String,
    /// The vendor roots its units' keys must be attested to, if it requires attestation.
    attestation: Option<AttestationRoots>,
}

/// A unit's attestation, checked for its identity key, with the roots it verified to: its
/// encryption key is checked against it when the order delivers a release.
#[derive(Debug, Clone, Copy)]
pub(crate) struct UnitAttestation<'a> {
    roots: &'a AttestationRoots,
    certs: &'a Attestation,
}

impl UnitAttestation<'_> {
    /// Checks that the attestation certifies the unit's `key` (`what` names it) as well.
    pub(crate) fn certifies(
        &self,
        spki: &[u8],
        what: &'static str,
        now: time::OffsetDateTime,
    ) -> std::result::Result<(), Refusal> {
        self.certs
            .certifies(self.roots, spki, what, now)
            .map_err(|e| Refusal::new(ErrorCode::AttestationInvalid, e.to_string()))
    }
}

impl ProductIssuer {
    /// The attestation a unit sent, parsed, when the product requires one; it is checked for
    /// the identity key by [`UnitAttestation::certifies`]. A product without vendor roots takes
    /// no attestation into account.
    ///
    /// # Errors
    /// `attestation_invalid` when the product requires one and none was sent, or it does not
    /// parse.
    fn attestation_sent(
        &self,
        sent: Option<&str>,
    ) -> std::result::Result<Option<(&AttestationRoots, Attestation)>, Refusal> {
        let Some(roots) = &self.attestation else {
            return Ok(None);
        };
        let invalid = |m: String| Refusal::new(ErrorCode::AttestationInvalid, m);
        let text = sent.ok_or_else(|| {
            invalid(format!(
                "product {} requires secure-element attestation: send the vendor certificates                  of the unit's keys in `attestation`",
                self.product
            ))
        })?;
        let certs = Attestation::parse(text).map_err(|e| invalid(format!("attestation: {e}")))?;
        Ok(Some((roots, certs)))
    }

    /// The issuing CA's certificate and key.
    pub(crate) fn ca(&self) -> (&Certificate, &Arc<dyn touchmark_pki::Signer>) {
        (self.issuer.certificate(), self.issuer.signer())
    }

    /// The profile of a unit of `order`: the product's, with the order's CRL partition and the
    /// OCSP responder under `public_url` where the product names no URL of its own.
    fn profile_for(&self, public_url: Option<&str>, order: &OrderId) -> DeviceProfile {
        let mut profile = self.profile.clone();
        if let Some(base) = public_url {
            if profile.crl_url.is_none() {
                profile.crl_url = Some(format!(
                    "{base}/crl/{}",
                    crate::crl::partition_name(&self.product, order)
                ));
            }
            if profile.ocsp_url.is_none() {
                profile.ocsp_url = Some(format!("{base}/ocsp"));
            }
        }
        profile
    }
}

/// The result of a successful provisioning request.
#[derive(Debug)]
pub struct Provisioned {
    /// True when a retry returned the certificate issued before.
    pub already_issued: bool,
    /// The unit and where its issuance was logged.
    pub unit: IssuedUnit,
    /// The device certificate, PEM.
    pub certificate_pem: String,
    /// Device certificate then issuing CA, PEM.
    pub chain_pem: String,
    /// The unit's firmware, when its order has a release.
    pub firmware: Option<DeliveredFirmware>,
}

/// Check 4's codes for a CSR that failed.
pub(crate) fn csr_refusal(e: &CsrError) -> Refusal {
    let code = match e {
        CsrError::SignatureInvalid => ErrorCode::CsrSignatureInvalid,
        CsrError::KeyTypeUnsupported(_) => ErrorCode::KeyTypeUnsupported,
        _ => ErrorCode::CsrInvalid,
    };
    Refusal::new(code, e.to_string())
}

impl Authority {
    /// Provisions one unit: checks 1 to 8 of design.md §4 in order, then signs and commits.
    ///
    /// # Errors
    /// [`AuthorityError::Refused`] with its stable code, logged; an order that does not exist
    /// too (`order_not_found`), so that an auditor sees a station probing for orders. Its event
    /// is built here and recorded like every refusal, so the edge can bound how many it lets
    /// through per station.
    pub async fn provision(
        &self,
        station: &Station,
        order_id: &OrderId,
        req: Provision,
    ) -> Result<Provisioned> {
        let now = self.clock.now();
        // Normalized and hashed once: every row and event of this request uses them.
        let normalized = req.record.normalized();
        let test_sha256 = normalized.sha256;
        let test = TestAttempt {
            verdict: req.record.verdict,
            format: req.record.format,
            sha256: test_sha256,
            record: normalized.text,
            at: now,
        };
        let Some(order) = self.store.order(order_id).await? else {
            return Err(self
                .unknown_order(station, order_id, &req, now, test_sha256)
                .await);
        };
        let attempt = Attempt {
            at: now,
            order: order.id.clone(),
            factory: station.factory.clone(),
            station: station.id.clone(),
        };
        let refuse = |refusal: Refusal, event: Event, serial: Option<Serial>, failed_unit| {
            let rejection = Rejection {
                event,
                product: Some(order.product.clone()),
                order: order.id.clone(),
                station: station.id.clone(),
                serial,
                test: Some(test.clone()),
                failed_unit,
            };
            self.reject(refusal, rejection)
        };
        // 1. The station is active and of the order's factory. Logged for the first few per
        // window (`policy::refusals`): a station refused here can send nothing that matters.
        if let Err(refusal) = issue::check_station(station, &order) {
            let rejection = Rejection {
                event: attempt.refused(refusal.code, None, None, Some(test_sha256)),
                product: Some(order.product.clone()),
                order: order.id.clone(),
                station: station.id.clone(),
                serial: None,
                test: Some(test.clone()),
                failed_unit: false,
            };
            return Err(self.refuse_limited(station, refusal, rejection).await);
        }
        // 2. The order is open and inside its window.
        if let Err(refusal) = issue::order_accepts(&order.id, &OrderFacts::from(&order), now) {
            let event = attempt.refused(refusal.code, None, None, Some(test_sha256));
            return Err(refuse(refusal, event, None, false).await);
        }
        // 3. The serial parses and fits the order's rule. A well-formed serial outside the rule
        // is still named in the event.
        let serial = match issue::check_serial(&req.serial, &order.serial_rule) {
            Ok(serial) => serial,
            Err(refusal) => {
                let serial = Serial::parse(&req.serial).ok();
                let event = attempt.refused(refusal.code, serial.as_ref(), None, Some(test_sha256));
                return Err(refuse(refusal, event, serial, false).await);
            }
        };
        // 4. The CSR parses, its signature verifies, its key is P-256.
        let csr = match parse_csr(req.csr.as_bytes()) {
            Ok(csr) => csr,
            Err(e) => {
                let refusal = csr_refusal(&e);
                let event = attempt.refused(refusal.code, Some(&serial), None, Some(test_sha256));
                return Err(refuse(refusal, event, Some(serial), false).await);
            }
        };
        let pubkey_sha256 = Sha256Hash(csr.spki_sha256());
        // 4, with the CSR: a product that names its chip vendor's roots takes only an identity
        // key the vendor certified (design.md §7).
        let issuer = self.product_issuer(&order.product).await?;
        let sent = match issuer.attestation_sent(req.attestation.as_deref()) {
            Ok(sent) => sent,
            Err(refusal) => {
                let event = attempt.refused(
                    refusal.code,
                    Some(&serial),
                    Some(pubkey_sha256),
                    Some(test_sha256),
                );
                return Err(refuse(refusal, event, Some(serial), false).await);
            }
        };
        let attestation = sent
            .as_ref()
            .map(|(roots, certs)| UnitAttestation { roots, certs });
        if let Some(Err(refusal)) = attestation
            .as_ref()
            .map(|a| a.certifies(csr.spki_der(), "identity key", now))
        {
            let event = attempt.refused(
                refusal.code,
                Some(&serial),
                Some(pubkey_sha256),
                Some(test_sha256),
            );
            return Err(refuse(refusal, event, Some(serial), false).await);
        }
        // 5. The record is this unit's, and it passed. A failure is kept and counts nothing; a
        // record of another unit (or of none) is kept as the refusal's evidence, and says
        // nothing about this unit.
        if let Err(refusal) = issue::check_test(&req.record, &serial) {
            if refusal.code == ErrorCode::TestFailed {
                let event = attempt.test_failed(&serial, pubkey_sha256, test_sha256);
                return Err(refuse(refusal, event, Some(serial), true).await);
            }
            let event = attempt.refused(
                refusal.code,
                Some(&serial),
                Some(pubkey_sha256),
                Some(test_sha256),
            );
            return Err(refuse(refusal, event, Some(serial), false).await);
        }
        // The order's release, if it names one: the unit's encryption key, bound to the CSR's
        // key, gets the release's content key wrapped to it (design.md §7).
        let firmware = match self
            .unit_firmware_for(
                &order.id,
                &serial,
                &csr,
                req.encryption_key.as_ref(),
                attestation.as_ref(),
            )
            .await?
        {
            FirmwareCheck::NoRelease => None,
            FirmwareCheck::Deliver(delivered) => Some(*delivered),
            FirmwareCheck::Refused(refusal) => {
                let event = attempt.refused(
                    refusal.code,
                    Some(&serial),
                    Some(pubkey_sha256),
                    Some(test_sha256),
                );
                return Err(refuse(refusal, event, Some(serial), false).await);
            }
        };
        // 6 to 8 run inside the store's transaction, after signing, so the certificate is
        // stored in the same commit as the count and the event. A retry of an issued unit is
        // answered there with the stored certificate, and the one signed here is dropped: a
        // signature costs less than asking the database first for every new unit would.
        let serial_number = serial_number();
        let profile = issuer.profile_for(self.public_url.as_deref(), &order.id);
        let cert = sign_device_cert(
            Arc::clone(&issuer),
            profile,
            csr,
            serial.clone(),
            now,
            serial_number,
        )
        .await?;
        let issuance = Issuance {
            attempt,
            product: order.product.clone(),
            serial,
            pubkey_sha256,
            cert_sha256: Sha256Hash(cert.sha256()),
            test_sha256,
        };
        let certificate = NewCertificate {
            der: cert.into_der(),
            serial_hex: serial_number.to_hex(),
        };
        // The store reads this clock again inside its transaction: check 2 at commit.
        let mut request = IssueRequest::new(issuance, certificate, test, Arc::clone(&self.clock));
        if let Some(delivered) = &firmware {
            request = request.with_firmware(delivered.unit.clone());
        }
        match self.store.issue(request).await? {
            IssueOutcome::Issued(unit) => Ok(provisioned(false, unit, &issuer, firmware)),
            IssueOutcome::AlreadyIssued(unit) => {
                // A retry gets the wrap stored with the unit, not the one made now (I2).
                let firmware = self.stored_firmware(&unit.order, &unit.serial).await?;
                Ok(provisioned(true, unit, &issuer, firmware))
            }
            IssueOutcome::Refused { refusal, logged } => {
                Err(AuthorityError::Refused { refusal, logged })
            }
        }
    }

    /// Records and answers the refusal of a request against an order that does not exist: the
    /// event names the order asked for, the station and its factory, and the serial when it is
    /// well formed. Nothing else is kept: there is no product to keep a test record under. Like
    /// a refusal of check 1, it is logged once per window beyond the first few (a station
    /// probing for orders: `policy::refusals`).
    async fn unknown_order(
        &self,
        station: &Station,
        order_id: &OrderId,
        req: &Provision,
        now: time::OffsetDateTime,
        test_sha256: Sha256Hash,
    ) -> AuthorityError {
        let refusal = issue::order_not_found(order_id);
        let attempt = Attempt {
            at: now,
            order: order_id.clone(),
            factory: station.factory.clone(),
            station: station.id.clone(),
        };
        let serial = Serial::parse(&req.serial).ok();
        let rejection = Rejection {
            event: attempt.refused(refusal.code, serial.as_ref(), None, Some(test_sha256)),
            product: None,
            order: order_id.clone(),
            station: station.id.clone(),
            serial,
            test: None,
            failed_unit: false,
        };
        self.refuse_limited(station, refusal, rejection).await
    }

    /// The product's issuing CA and profile, loaded on first use.
    pub(crate) async fn product_issuer(&self, id: &ProductId) -> Result<Arc<ProductIssuer>> {
        if let Some(found) = self
            .issuers
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
        {
            return Ok(Arc::clone(found));
        }
        let product = self.store.product(id).await?.ok_or_else(|| {
            AuthorityError::internal(format!("an order names the unknown product {id}"))
        })?;
        let key = self
            .keys
            .load(&key_names::product(id))
            .map_err(AuthorityError::internal)?;
        let cert =
            Certificate::from_pem(&product.issuing_ca_pem).map_err(AuthorityError::internal)?;
        let issuer = CaIssuer::new(cert, key).map_err(AuthorityError::internal)?;
        let hw_type_oid = Oid::parse("hw_type_oid", &product.hw_type_oid)
            .map_err(|e| AuthorityError::internal(format!("stored product {id}: {e}")))?;
        let loaded = Arc::new(ProductIssuer {
            product: id.clone(),
            issuer,
            profile: DeviceProfile {
                organization: product.organization,
                common_name: product.common_name,
                hw_type_oid: hw_type_oid.arcs().to_vec(),
                crl_url: product.crl_url,
                ocsp_url: product.ocsp_url,
                not_after: product.cert_not_after,
            },
            issuing_ca_pem: product.issuing_ca_pem,
            attestation: product
                .attestation_roots_pem
                .as_deref()
                .map(AttestationRoots::parse)
                .transpose()
                .map_err(|e| AuthorityError::internal(format!("stored product {id}: {e}")))?,
        });
        self.issuers
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.clone(), Arc::clone(&loaded));
        Ok(loaded)
    }
}

/// Signs the device certificate, off the async runtime.
async fn sign_device_cert(
    issuer: Arc<ProductIssuer>,
    profile: DeviceProfile,
    csr: VerifiedCsr,
    serial: Serial,
    now: time::OffsetDateTime,
    serial_number: touchmark_pki::SerialNumber,
) -> Result<Certificate> {
    off_runtime(move || {
        touchmark_pki::issue_device_cert(
            &issuer.issuer,
            &csr,
            serial.as_str(),
            &profile,
            now,
            serial_number,
        )
    })
    .await?
    .map_err(AuthorityError::internal)
}

/// The answer to a provisioning request: the unit, its certificate and its chain, in PEM.
fn provisioned(
    already_issued: bool,
    unit: IssuedUnit,
    issuer: &ProductIssuer,
    firmware: Option<DeliveredFirmware>,
) -> Provisioned {
    let certificate_pem = touchmark_pki::pem::encode("CERTIFICATE", &unit.cert_der);
    let chain_pem = format!("{certificate_pem}{}", issuer.issuing_ca_pem);
    Provisioned {
        already_issued,
        unit,
        certificate_pem,
        chain_pem,
        firmware,
    }
}
