//! X.509 CRLs (RFC 5280 §5), built here in DER and signed through a [`Signer`]: version 2, the
//! issuer's subject and AKI, a CRL number, thisUpdate and nextUpdate, and optionally an issuing
//! distribution point that scopes a partition (a CRL of part of a CA's certificates). Nothing
//! of Touchmark's domain: the caller says what is revoked.

use time::OffsetDateTime;
use x509_parser::prelude::{FromDer as _, ParsedExtension, X509Certificate};

use crate::cert::Certificate;
use crate::der::{self, ECDSA_WITH_SHA256, tlv};
use crate::error::PkiError;
use crate::signer::{KeyAlgorithm, Signer};

/// id-ce-authorityKeyIdentifier.
const OID_AKI: &[u64] = &[2, 5, 29, 35];
/// id-ce-cRLNumber.
const OID_CRL_NUMBER: &[u64] = &[2, 5, 29, 20];
/// id-ce-issuingDistributionPoint.
const OID_IDP: &[u64] = &[2, 5, 29, 28];
/// id-ce-cRLReasons.
const OID_REASON: &[u64] = &[2, 5, 29, 21];

/// One revoked certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevokedEntry {
    /// The certificate's serial number, big-endian magnitude.
    pub serial: Vec<u8>,
    /// When it was revoked.
    pub revoked_at: OffsetDateTime,
    /// The CRLReason code (RFC 5280 §5.3.1); 0 (unspecified) is left out of the entry, as the
    /// RFC asks.
    pub reason: u8,
}

/// What a CRL says, besides its issuer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrlContent {
    /// The CRL number: it only grows, per issuer (and per partition's URL).
    pub number: u64,
    /// thisUpdate.
    pub this_update: OffsetDateTime,
    /// nextUpdate: by then a new CRL is published.
    pub next_update: OffsetDateTime,
    /// The revoked certificates.
    pub entries: Vec<RevokedEntry>,
    /// For a partition: the URL it is published at, which the certificates it covers name in
    /// their CRL distribution point. Makes the CRL carry a critical issuing distribution point
    /// with that URL and onlyContainsUserCerts.
    pub partition_url: Option<String>,
}

/// The issuer's subject (DER) and key identifier, read from its certificate.
fn issuer_parts(issuer: &Certificate) -> Result<(Vec<u8>, Option<Vec<u8>>), PkiError> {
    let (_, cert) = X509Certificate::from_der(issuer.der())
        .map_err(|e| PkiError::InvalidParameter(format!("issuer certificate: {e}")))?;
    let ski = cert
        .extensions()
        .iter()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(k) => Some(k.0.to_vec()),
            _ => None,
        });
    Ok((cert.tbs_certificate.subject.as_raw().to_vec(), ski))
}

/// The issuing distribution point of a partition at `url`: `distributionPoint` its full name,
/// `onlyContainsUserCerts` TRUE.
fn issuing_distribution_point(url: &str) -> Vec<u8> {
    // DistributionPointName [0] { fullName [0] IMPLICIT GeneralNames { [6] URI } }
    let full_name = tlv(0xa0, &tlv(0x86, url.as_bytes()));
    let mut content = tlv(0xa0, &full_name);
    content.extend_from_slice(&tlv(0x81, &[0xff]));
    tlv(der::SEQUENCE, &content)
}

/// The DER of an entry: `SEQUENCE { userCertificate, revocationDate, [reasonCode] }`.
fn entry(e: &RevokedEntry) -> Vec<u8> {
    let mut content = der::unsigned_integer(&e.serial);
    content.extend_from_slice(&der::time(e.revoked_at));
    if e.reason != 0 {
        let reason = tlv(der::ENUMERATED, &[e.reason]);
        content.extend_from_slice(&tlv(
            der::SEQUENCE,
            &der::extension(OID_REASON, false, &reason),
        ));
    }
    tlv(der::SEQUENCE, &content)
}

/// Builds and signs a CRL of `issuer` with `signer` (the issuer's key, P-256). Returns its DER.
///
/// # Errors
/// [`PkiError::InvalidParameter`] if the issuer certificate does not parse, the key is not
/// P-256, or nextUpdate is not after thisUpdate; a signer error.
pub fn build_crl(
    issuer: &Certificate,
    signer: &dyn Signer,
    content: &CrlContent,
) -> Result<Vec<u8>, PkiError> {
    if signer.algorithm() != KeyAlgorithm::EcdsaP256 {
        return Err(PkiError::InvalidParameter(
            "a CRL is signed with a P-256 CA key".into(),
        ));
    }
    if content.next_update <= content.this_update {
        return Err(PkiError::InvalidParameter(
            "a CRL's nextUpdate must be after its thisUpdate".into(),
        ));
    }
    let (subject, ski) = issuer_parts(issuer)?;
    let mut tbs = der::u64_integer(1); // v2
    tbs.extend_from_slice(&ECDSA_WITH_SHA256);
    tbs.extend_from_slice(&subject);
    tbs.extend_from_slice(&der::time(content.this_update));
    tbs.extend_from_slice(&der::time(content.next_update));
    if !content.entries.is_empty() {
        let mut list = Vec::with_capacity(content.entries.len() * 40);
        for e in &content.entries {
            list.extend_from_slice(&entry(e));
        }
        tbs.extend_from_slice(&tlv(der::SEQUENCE, &list));
    }
    let mut extensions = Vec::new();
    if let Some(ski) = ski {
        let aki = tlv(der::SEQUENCE, &tlv(0x80, &ski));
        extensions.extend_from_slice(&der::extension(OID_AKI, false, &aki));
    }
    extensions.extend_from_slice(&der::extension(
        OID_CRL_NUMBER,
        false,
        &der::u64_integer(content.number),
    ));
    if let Some(url) = &content.partition_url {
        extensions.extend_from_slice(&der::extension(
            OID_IDP,
            true,
            &issuing_distribution_point(url),
        ));
    }
    tbs.extend_from_slice(&tlv(0xa0, &tlv(der::SEQUENCE, &extensions)));
    let tbs = tlv(der::SEQUENCE, &tbs);
    let signature = signer.sign(&tbs)?;
    let mut bits = Vec::with_capacity(signature.len() + 1);
    bits.push(0);
    bits.extend_from_slice(&signature);
    let mut list = tbs;
    list.extend_from_slice(&ECDSA_WITH_SHA256);
    list.extend_from_slice(&tlv(der::BIT_STRING, &bits));
    Ok(tlv(der::SEQUENCE, &list))
}

/// A certificate's serial number, as its DER INTEGER's content octets.
///
/// # Errors
/// [`PkiError::InvalidParameter`] if the certificate does not parse.
pub fn certificate_serial(cert: &Certificate) -> Result<Vec<u8>, PkiError> {
    let (_, parsed) = X509Certificate::from_der(cert.der())
        .map_err(|e| PkiError::InvalidParameter(format!("certificate: {e}")))?;
    Ok(parsed.tbs_certificate.raw_serial().to_vec())
}

/// The bytes one entry of `entry`'s shape adds to a CRL: what a device pays per revoked
/// certificate.
pub fn entry_size(e: &RevokedEntry) -> usize {
    entry(e).len()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use time::macros::datetime;
    use x509_parser::prelude::CertificateRevocationList;

    use super::*;
    use crate::cert::{SerialNumber, Subject, create_root_ca};
    use crate::signer::SoftwareSigner;

    #[test]
    fn a_crl_parses_back_with_its_entries_number_and_aki() {
        let key = SoftwareSigner::generate(KeyAlgorithm::EcdsaP256).unwrap();
        let now = datetime!(2026-06-01 12:00 UTC);
        let subject = Subject {
            organization: "Touchmark".into(),
            common_name: "Test CRL CA".into(),
        };
        let serial = SerialNumber::from_bytes(&[1, 2, 3]).unwrap();
        let ca =
            create_root_ca(&key, &subject, now, now + time::Duration::days(1), serial).unwrap();
        let content = CrlContent {
            number: 7,
            this_update: now,
            next_update: now + time::Duration::hours(1),
            entries: vec![
                RevokedEntry {
                    serial: vec![0x81, 2, 3],
                    revoked_at: now,
                    reason: 1,
                },
                RevokedEntry {
                    serial: vec![5],
                    revoked_at: now,
                    reason: 0,
                },
            ],
            partition_url: Some("http://pki.example/crl/p/o".into()),
        };
        let der = build_crl(&ca, &key, &content).unwrap();
        let (rest, crl) = CertificateRevocationList::from_der(&der).unwrap();
        assert!(rest.is_empty());
        assert_eq!(crl.crl_number().map(|n| n.to_u64_digits()), Some(vec![7]));
        let serials: Vec<Vec<u8>> = crl
            .iter_revoked_certificates()
            .map(|r| r.raw_serial().to_vec())
            .collect();
        assert_eq!(serials, vec![vec![0, 0x81, 2, 3], vec![5]]);
        // What a unit's entry costs: a 16-octet serial, the time, the reason code.
        let unit = RevokedEntry {
            serial: vec![0x41; 16],
            revoked_at: now,
            reason: 1,
        };
        assert_eq!(entry_size(&unit), 49);
        assert_eq!(entry_size(&RevokedEntry { reason: 0, ..unit }), 35);
        assert_eq!(
            crl.tbs_cert_list.next_update.map(|t| t.timestamp()),
            Some((now + time::Duration::hours(1)).unix_timestamp())
        );
        let err = build_crl(
            &ca,
            &key,
            &CrlContent {
                next_update: now,
                ..content
            },
        )
        .unwrap_err();
        assert!(matches!(err, PkiError::InvalidParameter(_)));
    }
}
