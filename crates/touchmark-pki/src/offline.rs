//! CAs whose certificate is signed elsewhere: a product's issuing CA under an offline root.
//!
//! The installation makes the CA's key and a PKCS#10 request for it ([`ca_csr`]); the root,
//! kept offline, signs it; the certificate it returns is checked ([`check_issued_ca`]) before
//! anything is stored: against the CA's own key first, then its profile, then the chain up to
//! the installation's device root.

use time::OffsetDateTime;
use x509_parser::certificate::X509Certificate;

use crate::cert::{Certificate, Subject, ca_subject};
use crate::signer::{RcgenSigner, Signer};

/// Why a CA certificate signed elsewhere was refused. Each has a stable code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CaCheckError {
    /// The input is not one PEM certificate, or the chain is not PEM certificates
    /// (code `ca_certificate_invalid`).
    #[error("the CA certificate is invalid: {0}")]
    Invalid(String),
    /// The certificate is for another key than the CA's (code `ca_key_mismatch`).
    #[error("the certificate's public key is not the CA's key")]
    KeyMismatch,
    /// The certificate is not a CA certificate fit to issue: basicConstraints cA, keyUsage
    /// keyCertSign and cRLSign, valid now (code `ca_profile_invalid`).
    #[error("the certificate is not fit for an issuing CA: {0}")]
    Profile(String),
    /// The chain does not lead to the device root (code `ca_chain_invalid`).
    #[error("the certificate does not chain to the device root: {0}")]
    Chain(String),
}

impl CaCheckError {
    /// The stable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Invalid(_) => "ca_certificate_invalid",
            Self::KeyMismatch => "ca_key_mismatch",
            Self::Profile(_) => "ca_profile_invalid",
            Self::Chain(_) => "ca_chain_invalid",
        }
    }
}

/// A PKCS#10 request (DER) for a CA named `subject` (O and CN), signed by its key `signer`.
///
/// # Errors
/// [`crate::PkiError::InvalidParameter`] for a bad subject, or
/// [`crate::PkiError::CertificateGeneration`] if the request cannot be signed.
pub fn ca_csr(signer: &dyn Signer, subject: &Subject) -> Result<Vec<u8>, crate::PkiError> {
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = ca_subject(subject)?;
    let request = params
        .serialize_request(&RcgenSigner::new(signer))
        .map_err(|e| crate::PkiError::CertificateGeneration(e.to_string()))?;
    Ok(request.der().to_vec())
}

fn parse(cert: &Certificate) -> Result<X509Certificate<'_>, CaCheckError> {
    cert.parsed()
        .map_err(|e| CaCheckError::Invalid(e.to_string()))
}

/// Whether `cert` may issue certificates at `now`: basicConstraints cA, keyUsage keyCertSign
/// (and cRLSign when `crl` is asked for), and valid at `now`.
fn check_ca(cert: &Certificate, what: &str, crl: bool, now: OffsetDateTime) -> Result<(), String> {
    let parsed = cert.parsed().map_err(|e| e.to_string())?;
    let is_ca = parsed
        .basic_constraints()
        .map_err(|e| e.to_string())?
        .is_some_and(|bc| bc.value.ca);
    if !is_ca {
        return Err(format!(
            "{what} is not a CA (basicConstraints cA is not set)"
        ));
    }
    let ku = parsed
        .key_usage()
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("{what} has no keyUsage"))?;
    if !ku.value.key_cert_sign() {
        return Err(format!("{what} lacks keyUsage keyCertSign"));
    }
    if crl && !ku.value.crl_sign() {
        return Err(format!("{what} lacks keyUsage cRLSign"));
    }
    let (not_before, not_after) = cert.validity().map_err(|e| e.to_string())?;
    if now < not_before || now > not_after {
        return Err(format!(
            "{what} is not valid now (from {not_before} to {not_after})"
        ));
    }
    Ok(())
}

/// Checks the CA certificate `cert_pem`, with the intermediates `chain_pem` (PEM, issuer after
/// subject, may be empty), for the CA key whose SubjectPublicKeyInfo is `ca_spki`, under the
/// device root `root`, at `now`, in this order: one certificate; its key is `ca_spki`'s; it is a
/// CA with keyCertSign and cRLSign, valid now; each certificate is issued (name and signature)
/// by the next, each intermediate a CA valid now; the last is issued by `root`.
///
/// # Errors
/// [`CaCheckError`], naming the first check that fails.
pub fn check_issued_ca(
    cert_pem: &str,
    chain_pem: &str,
    ca_spki: &[u8],
    root: &Certificate,
    now: OffsetDateTime,
) -> Result<Certificate, CaCheckError> {
    let mut certs =
        crate::certs_from_pem(cert_pem).map_err(|e| CaCheckError::Invalid(e.to_string()))?;
    if certs.len() != 1 {
        return Err(CaCheckError::Invalid(format!(
            "expected one certificate, found {}",
            certs.len()
        )));
    }
    let cert = certs.remove(0);
    parse(&cert)?;
    if cert.spki_der() != ca_spki {
        return Err(CaCheckError::KeyMismatch);
    }
    check_ca(&cert, "the certificate", true, now).map_err(CaCheckError::Profile)?;
    let chain = if chain_pem.trim().is_empty() {
        Vec::new()
    } else {
        crate::certs_from_pem(chain_pem).map_err(|e| CaCheckError::Invalid(e.to_string()))?
    };
    let mut subject = &cert;
    for (i, issuer) in chain.iter().enumerate() {
        let what = format!("chain certificate {}", i + 1);
        if !subject.is_issued_by(issuer) {
            return Err(CaCheckError::Chain(format!(
                "{what} did not issue the certificate before it"
            )));
        }
        check_ca(issuer, &what, false, now).map_err(CaCheckError::Chain)?;
        subject = issuer;
    }
    if !subject.is_issued_by(root) {
        return Err(CaCheckError::Chain(
            "the device root did not issue the last certificate".into(),
        ));
    }
    check_ca(root, "the device root", false, now).map_err(CaCheckError::Chain)?;
    Ok(cert)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::sync::Arc;

    use time::Duration;

    use super::*;
    use crate::cert::{CaIssuer, SerialNumber, create_intermediate_ca, create_root_ca};
    use crate::signer::{KeyAlgorithm, SoftwareSigner};

    fn subject(cn: &str) -> Subject {
        Subject {
            organization: "Acme".into(),
            common_name: cn.into(),
        }
    }

    fn root(now: OffsetDateTime) -> CaIssuer {
        let key: Arc<dyn Signer> =
            Arc::new(SoftwareSigner::generate(KeyAlgorithm::EcdsaP256).unwrap());
        let cert = create_root_ca(
            key.as_ref(),
            &subject("Root"),
            now - Duration::hours(1),
            now + Duration::days(365),
            SerialNumber::random(&mut rand::rng()),
        )
        .unwrap();
        CaIssuer::new(cert, key).unwrap()
    }

    #[test]
    fn a_ca_signed_by_the_root_for_its_key_is_accepted_and_others_are_refused() {
        let now = OffsetDateTime::now_utc();
        let (root, other_root) = (root(now), root(now));
        let key = SoftwareSigner::generate(KeyAlgorithm::EcdsaP256).unwrap();
        let csr = crate::parse_csr(&ca_csr(&key, &subject("Sensor Issuing CA")).unwrap()).unwrap();
        assert_eq!(csr.spki_der(), key.public_key_spki());
        let issue = |by: &CaIssuer, spki: &[u8]| {
            create_intermediate_ca(
                by,
                spki,
                &subject("Sensor Issuing CA"),
                now - Duration::hours(1),
                now + Duration::days(30),
                SerialNumber::random(&mut rand::rng()),
            )
            .unwrap()
            .pem()
        };
        let good = issue(&root, key.public_key_spki());
        let cert =
            check_issued_ca(&good, "", key.public_key_spki(), root.certificate(), now).unwrap();
        assert_eq!(cert.spki_der(), key.public_key_spki());

        let other = SoftwareSigner::generate(KeyAlgorithm::EcdsaP256).unwrap();
        let wrong_key = issue(&root, other.public_key_spki());
        let code = |r: Result<Certificate, CaCheckError>| r.unwrap_err().code();
        assert_eq!(
            code(check_issued_ca(
                &wrong_key,
                "",
                key.public_key_spki(),
                root.certificate(),
                now
            )),
            "ca_key_mismatch"
        );
        let wrong_root = issue(&other_root, key.public_key_spki());
        assert_eq!(
            code(check_issued_ca(
                &wrong_root,
                "",
                key.public_key_spki(),
                root.certificate(),
                now
            )),
            "ca_chain_invalid"
        );
        // The root itself is no product CA: not its key.
        assert_eq!(
            code(check_issued_ca(
                &root.certificate().pem(),
                "",
                key.public_key_spki(),
                root.certificate(),
                now
            )),
            "ca_key_mismatch"
        );
        assert_eq!(
            code(check_issued_ca(
                "junk",
                "",
                key.public_key_spki(),
                root.certificate(),
                now
            )),
            "ca_certificate_invalid"
        );
        // Expired by the time it is installed.
        assert_eq!(
            code(check_issued_ca(
                &good,
                "",
                key.public_key_spki(),
                root.certificate(),
                now + Duration::days(60)
            )),
            "ca_profile_invalid"
        );
        // Through an intermediate: the chain is walked to the root.
        let mid_key: Arc<dyn Signer> =
            Arc::new(SoftwareSigner::generate(KeyAlgorithm::EcdsaP256).unwrap());
        let mid_cert = create_intermediate_ca(
            &root,
            mid_key.public_key_spki(),
            &subject("Mid"),
            now - Duration::hours(1),
            now + Duration::days(30),
            SerialNumber::random(&mut rand::rng()),
        )
        .unwrap();
        let mid = CaIssuer::new(mid_cert, mid_key).unwrap();
        let under_mid = issue(&mid, key.public_key_spki());
        assert_eq!(
            code(check_issued_ca(
                &under_mid,
                "",
                key.public_key_spki(),
                root.certificate(),
                now
            )),
            "ca_chain_invalid"
        );
        check_issued_ca(
            &under_mid,
            &mid.certificate().pem(),
            key.public_key_spki(),
            root.certificate(),
            now,
        )
        .unwrap();
    }
}
