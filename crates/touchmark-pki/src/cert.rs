//! Certificates, the CA hierarchy (root, issuing and station CAs) and the server and station profiles.
//!
//! Every security-relevant field is set explicitly here rather than inherited from rcgen's
//! defaults (STYLE.md habit 9): validity, serial, key usage, EKU, basic constraints, SKI and AKI.
//! The device (IEEE 802.1AR) profile is in [`crate::profile`].

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use rand::RngCore;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, DnValue,
    ExtendedKeyUsagePurpose, IsCa, KeyIdMethod, KeyUsagePurpose, PublicKeyData, SanType,
};
use rustls_pki_types::CertificateDer;
use sha2::{Digest as _, Sha256};
use time::{OffsetDateTime, UtcOffset};
use x509_parser::prelude::{FromDer as _, X509Certificate};

use crate::csr::VerifiedCsr;
use crate::error::PkiError;
use crate::signer::{OwnedRcgenSigner, RcgenSigner, Signer};

/// The organizational unit that marks a station certificate.
pub const STATION_OU: &str = "touchmark-station";

/// Upper bound for `organizationName` and `commonName` (RFC 5280 Appendix A, ub-organization-name, ub-common-name).
const UB_NAME: usize = 64;

/// A parsed-and-checked X.509 certificate, kept as DER.
#[derive(Clone, PartialEq, Eq)]
pub struct Certificate {
    der: Vec<u8>,
    spki: Vec<u8>,
}

impl fmt::Debug for Certificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Certificate")
            .field("sha256", &hex::encode(self.sha256()))
            .finish_non_exhaustive()
    }
}

impl Certificate {
    /// Parses a DER certificate.
    ///
    /// # Errors
    /// [`PkiError::InvalidCertificate`] if it is not exactly one X.509 certificate.
    pub fn from_der(der: Vec<u8>) -> Result<Self, PkiError> {
        let spki = {
            let (rest, cert) = X509Certificate::from_der(&der)
                .map_err(|e| PkiError::InvalidCertificate(e.to_string()))?;
            if !rest.is_empty() {
                return Err(PkiError::InvalidCertificate(
                    "trailing data after the certificate".into(),
                ));
            }
            cert.public_key().raw.to_vec()
        };
        Ok(Certificate { der, spki })
    }

    /// Parses exactly one PEM `CERTIFICATE` block.
    ///
    /// # Errors
    /// [`PkiError::InvalidPem`] if there is not exactly one certificate block;
    /// [`PkiError::InvalidCertificate`] if it does not parse.
    pub fn from_pem(pem: &str) -> Result<Self, PkiError> {
        let mut certs = certs_from_pem(pem)?;
        match (certs.pop(), certs.is_empty()) {
            (Some(cert), true) => Ok(cert),
            _ => Err(PkiError::InvalidPem(
                "expected exactly one CERTIFICATE block".into(),
            )),
        }
    }

    /// The DER encoding.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// The DER encoding, taken out of the certificate without a copy.
    pub fn into_der(self) -> Vec<u8> {
        self.der
    }

    /// The DER encoding as the type rustls and webpki use.
    pub fn to_cert_der(&self) -> CertificateDer<'static> {
        CertificateDer::from(self.der.clone())
    }

    /// The certificate as one PEM `CERTIFICATE` block.
    pub fn pem(&self) -> String {
        crate::pem::encode("CERTIFICATE", &self.der)
    }

    /// SHA-256 of the DER: the certificate's fingerprint.
    pub fn sha256(&self) -> [u8; 32] {
        Sha256::digest(&self.der).into()
    }

    /// The subject public key as DER SubjectPublicKeyInfo.
    pub fn spki_der(&self) -> &[u8] {
        &self.spki
    }

    /// SHA-256 of the SubjectPublicKeyInfo (matches [`VerifiedCsr::spki_sha256`] for device certificates).
    pub fn spki_sha256(&self) -> [u8; 32] {
        Sha256::digest(&self.spki).into()
    }

    /// The validity window: notBefore and notAfter.
    ///
    /// # Errors
    /// [`PkiError::InvalidCertificate`] if a time cannot be represented.
    pub fn validity(&self) -> Result<(OffsetDateTime, OffsetDateTime), PkiError> {
        let parsed = self.parsed()?;
        let validity = parsed.validity();
        Ok((
            validity.not_before.to_datetime(),
            validity.not_after.to_datetime(),
        ))
    }

    /// Whether `issuer` issued this certificate: this certificate's issuer name is `issuer`'s
    /// subject, byte for byte, and its signature verifies under `issuer`'s public key.
    pub fn is_issued_by(&self, issuer: &Certificate) -> bool {
        let (Ok(cert), Ok(ca)) = (self.parsed(), issuer.parsed()) else {
            return false;
        };
        cert.issuer().as_raw() == ca.subject().as_raw()
            && cert.verify_signature(Some(ca.public_key())).is_ok()
    }

    /// The subject's organizationName (O), when it has exactly one that is a string.
    pub fn subject_organization(&self) -> Option<String> {
        let cert = self.parsed().ok()?;
        let mut values = cert.subject().iter_organization();
        match (values.next(), values.next()) {
            (Some(value), None) => value.as_str().ok().map(str::to_owned),
            _ => None,
        }
    }

    /// The DNS names and IP addresses of the subjectAltName, in order, as
    /// [`issue_server_cert`] takes them: what a server certificate covers.
    ///
    /// # Errors
    /// [`PkiError::InvalidCertificate`] if the extension does not parse, or holds an IP
    /// address that is neither 4 nor 16 octets.
    pub fn server_hosts(&self) -> Result<Vec<String>, PkiError> {
        use x509_parser::extensions::GeneralName;

        let cert = self.parsed()?;
        let Some(san) = cert
            .subject_alternative_name()
            .map_err(|e| PkiError::InvalidCertificate(e.to_string()))?
        else {
            return Ok(Vec::new());
        };
        let mut hosts = Vec::new();
        for name in &san.value.general_names {
            match name {
                GeneralName::DNSName(dns) => hosts.push((*dns).to_owned()),
                GeneralName::IPAddress(octets) => {
                    let ip = match octets.len() {
                        4 => <[u8; 4]>::try_from(*octets).map(IpAddr::from).ok(),
                        16 => <[u8; 16]>::try_from(*octets).map(IpAddr::from).ok(),
                        _ => None,
                    };
                    let ip = ip.ok_or_else(|| {
                        PkiError::InvalidCertificate(
                            "an iPAddress name is neither 4 nor 16 octets".into(),
                        )
                    })?;
                    hosts.push(ip.to_string());
                }
                _ => {}
            }
        }
        Ok(hosts)
    }

    /// Parses the certificate with x509-parser. It parsed at construction, so this only fails if
    /// the parser is not deterministic.
    pub(crate) fn parsed(&self) -> Result<X509Certificate<'_>, PkiError> {
        X509Certificate::from_der(&self.der)
            .map(|(_, c)| c)
            .map_err(|e| PkiError::InvalidCertificate(e.to_string()))
    }

    /// Wraps DER that rcgen just produced for `spki`, skipping the re-parse on the hot path.
    fn from_issued(cert: rcgen::Certificate, spki: &[u8]) -> Self {
        Certificate {
            der: cert.der().to_vec(),
            spki: spki.to_vec(),
        }
    }
}

impl AsRef<[u8]> for Certificate {
    fn as_ref(&self) -> &[u8] {
        &self.der
    }
}

/// A certificate serial number: a positive INTEGER of at most 20 octets (RFC 5280 §4.1.2.2).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SerialNumber {
    bytes: [u8; 20],
    len: u8,
}

impl SerialNumber {
    /// Length of random serials, in octets.
    const RANDOM_LEN: usize = 16;

    /// A random serial: 16 octets, 126 random bits, positive (top bit clear) and so never zero
    /// (the second-highest bit is set, which also keeps the encoding exactly 16 octets).
    pub fn random<R: RngCore + ?Sized>(rng: &mut R) -> Self {
        let mut bytes = [0u8; 20];
        rng.fill_bytes(&mut bytes[..Self::RANDOM_LEN]);
        bytes[0] = (bytes[0] & 0x3f) | 0x40;
        SerialNumber {
            bytes,
            len: Self::RANDOM_LEN as u8,
        }
    }

    /// Takes the content octets of a DER INTEGER: 1 to 20 octets, positive, non-zero, minimally encoded.
    ///
    /// # Errors
    /// [`PkiError::InvalidParameter`] otherwise.
    pub fn from_bytes(value: &[u8]) -> Result<Self, PkiError> {
        let bad = |why: &str| PkiError::InvalidParameter(format!("serial number {why}"));
        let (&first, rest) = value.split_first().ok_or_else(|| bad("is empty"))?;
        if value.len() > 20 {
            return Err(bad("is longer than 20 octets"));
        }
        if first & 0x80 != 0 {
            return Err(bad("is negative"));
        }
        if first == 0 && rest.first().is_none_or(|b| b & 0x80 == 0) {
            return Err(bad("is zero or not minimally encoded"));
        }
        let mut bytes = [0u8; 20];
        bytes[..value.len()].copy_from_slice(value);
        Ok(SerialNumber {
            bytes,
            len: value.len() as u8,
        })
    }

    /// The content octets of the DER INTEGER.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    /// Lowercase hex of [`SerialNumber::as_bytes`].
    pub fn to_hex(&self) -> String {
        hex::encode(self.as_bytes())
    }
}

impl fmt::Debug for SerialNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SerialNumber({})", self.to_hex())
    }
}

impl fmt::Display for SerialNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// The subject of a CA certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subject {
    /// organizationName (O).
    pub organization: String,
    /// commonName (CN).
    pub common_name: String,
}

/// Reads every `CERTIFICATE` block in `input`, in order.
///
/// # Errors
/// [`PkiError::InvalidPem`] if the PEM is malformed, holds a block with another label, or holds no
/// certificate; [`PkiError::InvalidCertificate`] if a block is not an X.509 certificate.
pub fn certs_from_pem(input: &str) -> Result<Vec<Certificate>, PkiError> {
    let blocks = crate::pem::decode_all(input)?;
    if blocks.is_empty() {
        return Err(PkiError::InvalidPem("no CERTIFICATE block found".into()));
    }
    blocks
        .into_iter()
        .map(|b| {
            if b.label == "CERTIFICATE" {
                Certificate::from_der(b.der)
            } else {
                Err(PkiError::InvalidPem(format!(
                    "expected CERTIFICATE, found {:?}",
                    b.label
                )))
            }
        })
        .collect()
}

/// A CA certificate together with its signing key, ready to issue.
///
/// The rcgen issuer (name, key identifier, signer) is built once here, not per certificate.
pub struct CaIssuer {
    cert: Certificate,
    signer: Arc<dyn Signer>,
    issuer: rcgen::Issuer<'static, OwnedRcgenSigner>,
}

impl fmt::Debug for CaIssuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CaIssuer")
            .field("cert", &self.cert)
            .field("signer", &self.signer)
            .finish_non_exhaustive()
    }
}

impl CaIssuer {
    /// Pairs a CA certificate with its signer.
    ///
    /// Checks that the signer's public key is the certificate's, that the certificate is a CA
    /// (basicConstraints cA, keyCertSign), and signs one probe certificate to prove that the
    /// issuer name re-encodes byte-for-byte (chain building compares names exactly) and that the
    /// signer's signatures verify.
    ///
    /// # Errors
    /// [`PkiError::KeyMismatch`], [`PkiError::InvalidCertificate`], or a signer error.
    pub fn new(cert: Certificate, signer: Arc<dyn Signer>) -> Result<Self, PkiError> {
        if cert.spki_der() != signer.public_key_spki() {
            return Err(PkiError::KeyMismatch);
        }
        {
            let parsed = cert.parsed()?;
            let is_ca = parsed
                .basic_constraints()
                .map_err(|e| PkiError::InvalidCertificate(e.to_string()))?
                .is_some_and(|bc| bc.value.ca);
            if !is_ca {
                return Err(PkiError::InvalidCertificate(
                    "not a CA certificate (basicConstraints cA is not set)".into(),
                ));
            }
            let ku = parsed
                .key_usage()
                .map_err(|e| PkiError::InvalidCertificate(e.to_string()))?;
            if ku.is_some_and(|ku| !ku.value.key_cert_sign()) {
                return Err(PkiError::InvalidCertificate(
                    "CA certificate lacks keyUsage keyCertSign".into(),
                ));
            }
            // rcgen's name conversion supports one attribute per RDN only (and would panic on an
            // empty RDN), so refuse such names here.
            if parsed.subject().iter().any(|rdn| rdn.iter().count() != 1) {
                return Err(PkiError::InvalidCertificate(
                    "CA subject has an empty or multi-valued RDN".into(),
                ));
            }
        }
        let issuer = rcgen::Issuer::from_ca_cert_der(
            &CertificateDer::from(cert.der()),
            OwnedRcgenSigner(signer.clone()),
        )?;
        let ca = CaIssuer {
            cert,
            signer,
            issuer,
        };
        ca.probe()?;
        Ok(ca)
    }

    /// Issues a throwaway certificate and checks its issuer name and signature against the CA.
    fn probe(&self) -> Result<(), PkiError> {
        // Fixed, long-past validity: the probe is never published and must not read the clock.
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "touchmark issuer probe");
        let params = base_params(
            dn,
            time::macros::datetime!(2000-01-01 00:00:00 UTC),
            time::macros::datetime!(2000-01-01 00:01:00 UTC),
            &SerialNumber::random(&mut rand::rng()),
            IsCa::ExplicitNoCa,
            vec![KeyUsagePurpose::DigitalSignature],
            vec![],
            self.signer.public_key_raw(),
        )?;
        let key = SubjectKey::from_spki(self.signer.public_key_spki())?;
        let der = params.signed_by(&key, &self.issuer)?.der().to_vec();
        let (_, probe) = X509Certificate::from_der(&der)
            .map_err(|e| PkiError::InvalidCertificate(e.to_string()))?;
        let ca = self.cert.parsed()?;
        if probe.issuer().as_raw() != ca.subject().as_raw() {
            return Err(PkiError::InvalidCertificate(
                "the CA subject name does not re-encode identically".into(),
            ));
        }
        probe
            .verify_signature(Some(ca.public_key()))
            .map_err(|_| PkiError::SigningFailed)
    }

    /// The CA certificate.
    pub fn certificate(&self) -> &Certificate {
        &self.cert
    }

    /// The CA's signer.
    pub fn signer(&self) -> &Arc<dyn Signer> {
        &self.signer
    }

    /// Signs `params` for `key`, wrapping the result.
    pub(crate) fn sign(
        &self,
        params: &CertificateParams,
        key: &SubjectKey<'_>,
        spki: &[u8],
    ) -> Result<Certificate, PkiError> {
        let cert = params.signed_by(key, &self.issuer)?;
        Ok(Certificate::from_issued(cert, spki))
    }
}

/// A subject public key as rcgen wants it: the raw key and its algorithm.
pub(crate) struct SubjectKey<'a> {
    raw: &'a [u8],
    alg: &'static rcgen::SignatureAlgorithm,
}

impl<'a> SubjectKey<'a> {
    /// A P-256 point already validated by [`crate::parse_csr`].
    pub(crate) fn p256(point: &'a [u8]) -> Self {
        SubjectKey {
            raw: point,
            alg: &rcgen::PKCS_ECDSA_P256_SHA256,
        }
    }

    /// Parses a SubjectPublicKeyInfo; accepts P-256, P-384 and Ed25519 keys.
    pub(crate) fn from_spki(spki: &'a [u8]) -> Result<Self, PkiError> {
        let bad = |why: &str| PkiError::InvalidParameter(format!("subject public key: {why}"));
        let (rest, info) = x509_parser::x509::SubjectPublicKeyInfo::from_der(spki)
            .map_err(|_| bad("not a DER SubjectPublicKeyInfo"))?;
        if !rest.is_empty() {
            return Err(bad("trailing data"));
        }
        let alg_oid = info.algorithm.algorithm.to_id_string();
        let curve = info
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.as_oid().ok())
            .map(|o| o.to_id_string());
        let alg = match (alg_oid.as_str(), curve.as_deref()) {
            ("1.2.840.10045.2.1", Some("1.2.840.10045.3.1.7")) => &rcgen::PKCS_ECDSA_P256_SHA256,
            ("1.2.840.10045.2.1", Some("1.3.132.0.34")) => &rcgen::PKCS_ECDSA_P384_SHA384,
            ("1.3.101.112", None) => &rcgen::PKCS_ED25519,
            _ => return Err(bad("unsupported algorithm (use P-256, P-384 or Ed25519)")),
        };
        let raw = info.subject_public_key.data;
        // `info` borrows `spki`, so the key bytes do too; find them at the end of the input.
        let raw = spki
            .get(spki.len().saturating_sub(raw.len())..)
            .filter(|tail| *tail == &*raw)
            .ok_or_else(|| bad("unexpected encoding"))?;
        Ok(SubjectKey { raw, alg })
    }
}

impl PublicKeyData for SubjectKey<'_> {
    fn der_bytes(&self) -> &[u8] {
        self.raw
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        self.alg
    }
}

/// SubjectKeyIdentifier per RFC 5280 §4.2.1.2 method 1: SHA-1 of the subjectPublicKey BIT STRING value.
pub(crate) fn key_identifier(raw_public_key: &[u8]) -> Vec<u8> {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, raw_public_key)
        .as_ref()
        .to_vec()
}

/// Normalises a validity bound to UTC whole seconds.
fn whole_seconds(t: OffsetDateTime) -> Result<OffsetDateTime, PkiError> {
    t.to_offset(UtcOffset::UTC)
        .replace_nanosecond(0)
        .map_err(|e| PkiError::InvalidParameter(e.to_string()))
}

/// Builds parameters with every security-relevant field set explicitly.
#[allow(clippy::too_many_arguments)]
pub(crate) fn base_params(
    subject: DistinguishedName,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    serial: &SerialNumber,
    is_ca: IsCa,
    key_usages: Vec<KeyUsagePurpose>,
    extended_key_usages: Vec<ExtendedKeyUsagePurpose>,
    subject_raw_key: &[u8],
) -> Result<CertificateParams, PkiError> {
    let not_before = whole_seconds(not_before)?;
    let not_after = whole_seconds(not_after)?;
    if not_after <= not_before {
        return Err(PkiError::InvalidParameter(
            "notAfter must be later than notBefore".into(),
        ));
    }
    let mut p = CertificateParams::default();
    p.not_before = not_before;
    p.not_after = not_after;
    p.serial_number = Some(rcgen::SerialNumber::from_slice(serial.as_bytes()));
    p.subject_alt_names = Vec::new();
    p.distinguished_name = subject;
    p.is_ca = is_ca;
    p.key_usages = key_usages;
    p.extended_key_usages = extended_key_usages;
    p.name_constraints = None;
    p.crl_distribution_points = Vec::new();
    p.custom_extensions = Vec::new();
    p.use_authority_key_identifier_extension = true;
    p.key_identifier_method = KeyIdMethod::PreSpecified(key_identifier(subject_raw_key));
    Ok(p)
}

/// Checks a directory-string value: non-empty, at most 64 characters, no control characters.
pub(crate) fn checked_name<'a>(what: &str, value: &'a str) -> Result<&'a str, PkiError> {
    if value.is_empty() || value.chars().count() > UB_NAME || value.chars().any(char::is_control) {
        return Err(PkiError::InvalidParameter(format!(
            "{what} must be 1 to {UB_NAME} characters without control characters"
        )));
    }
    Ok(value)
}

pub(crate) fn ca_subject(subject: &Subject) -> Result<DistinguishedName, PkiError> {
    let mut dn = DistinguishedName::new();
    dn.push(
        DnType::OrganizationName,
        DnValue::Utf8String(checked_name("organization", &subject.organization)?.to_owned()),
    );
    dn.push(
        DnType::CommonName,
        DnValue::Utf8String(checked_name("common name", &subject.common_name)?.to_owned()),
    );
    Ok(dn)
}

/// Creates a self-signed root CA certificate for `signer`'s key.
///
/// Profile: subject O and CN; critical basicConstraints cA with pathLenConstraint 1 (root →
/// issuing CA → end entity); critical keyUsage keyCertSign and cRLSign; SKI (SHA-1 method); AKI
/// equal to the SKI; no EKU.
///
/// # Errors
/// [`PkiError::InvalidParameter`] for a bad subject or validity, or a signer error.
pub fn create_root_ca(
    signer: &dyn Signer,
    subject: &Subject,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    serial: SerialNumber,
) -> Result<Certificate, PkiError> {
    let params = base_params(
        ca_subject(subject)?,
        not_before,
        not_after,
        &serial,
        IsCa::Ca(BasicConstraints::Constrained(1)),
        vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign],
        vec![],
        signer.public_key_raw(),
    )?;
    let cert = params.self_signed(&RcgenSigner::new(signer))?;
    Ok(Certificate::from_issued(cert, signer.public_key_spki()))
}

/// Issues an intermediate CA certificate (a product's issuing CA, or the station CA).
///
/// Profile: critical basicConstraints cA with pathLenConstraint 0; critical keyUsage keyCertSign
/// and cRLSign; SKI; AKI = the issuer's SKI; no EKU.
///
/// # Errors
/// [`PkiError::InvalidParameter`] for a bad key, subject or validity, or a signer error.
pub fn create_intermediate_ca(
    issuer: &CaIssuer,
    subject_key_spki: &[u8],
    subject: &Subject,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    serial: SerialNumber,
) -> Result<Certificate, PkiError> {
    let key = SubjectKey::from_spki(subject_key_spki)?;
    let params = base_params(
        ca_subject(subject)?,
        not_before,
        not_after,
        &serial,
        IsCa::Ca(BasicConstraints::Constrained(0)),
        vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign],
        vec![],
        key.raw,
    )?;
    issuer.sign(&params, &key, subject_key_spki)
}

/// Checks a DNS name: LDH labels of 1 to 63 characters, at most 253 characters, optionally a
/// leading `*.` wildcard label.
fn checked_dns_name(host: &str) -> Result<rcgen::string::Ia5String, PkiError> {
    let bad = || PkiError::InvalidParameter(format!("{host:?} is not a DNS name or IP address"));
    let body = host.strip_prefix("*.").unwrap_or(host);
    let labels_ok = !body.is_empty()
        && host.len() <= 253
        && body.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if !labels_ok {
        return Err(bad());
    }
    rcgen::string::Ia5String::try_from(host).map_err(|_| bad())
}

/// Issues a TLS server certificate for Touchmark's own endpoints.
///
/// Profile: subject CN = the first host (when it fits in 64 characters); SAN with every host as a
/// dNSName or iPAddress; critical keyUsage digitalSignature; EKU serverAuth; critical
/// basicConstraints cA false; SKI; AKI.
///
/// # Errors
/// [`PkiError::InvalidParameter`] if `hosts` is empty or holds something that is neither a DNS
/// name nor an IP literal, or for a bad key or validity; or a signer error.
pub fn issue_server_cert(
    issuer: &CaIssuer,
    subject_key_spki: &[u8],
    hosts: &[String],
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    serial: SerialNumber,
) -> Result<Certificate, PkiError> {
    let first = hosts
        .first()
        .ok_or_else(|| PkiError::InvalidParameter("a server certificate needs a host".into()))?;
    let sans = hosts
        .iter()
        .map(|h| match h.parse::<IpAddr>() {
            Ok(ip) => Ok(SanType::IpAddress(ip)),
            Err(_) => checked_dns_name(h).map(SanType::DnsName),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut dn = DistinguishedName::new();
    if first.len() <= UB_NAME {
        dn.push(DnType::CommonName, DnValue::Utf8String(first.clone()));
    }
    let key = SubjectKey::from_spki(subject_key_spki)?;
    let mut params = base_params(
        dn,
        not_before,
        not_after,
        &serial,
        IsCa::ExplicitNoCa,
        vec![KeyUsagePurpose::DigitalSignature],
        vec![ExtendedKeyUsagePurpose::ServerAuth],
        key.raw,
    )?;
    params.subject_alt_names = sans;
    issuer.sign(&params, &key, subject_key_spki)
}

/// Checks a station or factory identifier: 1 to 64 characters from `A-Z a-z 0-9 . _ -`.
fn checked_id<'a>(what: &str, id: &'a str) -> Result<&'a str, PkiError> {
    let ok = !id.is_empty()
        && id.len() <= UB_NAME
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(id)
    } else {
        Err(PkiError::InvalidParameter(format!(
            "{what} must be 1 to 64 characters from A-Z, a-z, 0-9, '.', '_', '-'"
        )))
    }
}

/// Issues a station's mTLS client certificate from its CSR.
///
/// Profile: subject O = factory_id, OU = `touchmark-station`, CN = station_id; no
/// subjectAltName; critical keyUsage digitalSignature; EKU clientAuth; critical
/// basicConstraints cA false; SKI; AKI.
///
/// The station is named by its subject, which is what [`crate::verify_station_cert`] reads. It
/// has no subjectAltName: RFC 5280 §4.2.1.6 needs none when the subject is not empty, and the
/// URI it once held (`touchmark:station:…`, an unregistered scheme) was a name no relying party
/// resolved, and one pkilint refuses as URI syntax (issue 11, finding 9).
///
/// # Errors
/// [`PkiError::InvalidParameter`] for a bad identifier or validity, or a signer error.
pub fn issue_station_cert(
    issuer: &CaIssuer,
    csr: &VerifiedCsr,
    station_id: &str,
    factory_id: &str,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    serial: SerialNumber,
) -> Result<Certificate, PkiError> {
    let station_id = checked_id("station id", station_id)?;
    let factory_id = checked_id("factory id", factory_id)?;
    let mut dn = DistinguishedName::new();
    dn.push(
        DnType::OrganizationName,
        DnValue::Utf8String(factory_id.to_owned()),
    );
    dn.push(
        DnType::OrganizationalUnitName,
        DnValue::Utf8String(STATION_OU.to_owned()),
    );
    dn.push(
        DnType::CommonName,
        DnValue::Utf8String(station_id.to_owned()),
    );
    let key = SubjectKey::p256(csr.public_key_raw());
    let params = base_params(
        dn,
        not_before,
        not_after,
        &serial,
        IsCa::ExplicitNoCa,
        vec![KeyUsagePurpose::DigitalSignature],
        vec![ExtendedKeyUsagePurpose::ClientAuth],
        key.raw,
    )?;
    issuer.sign(&params, &key, csr.spki_der())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn shared_types_are_send_and_sync() {
        assert_send_sync::<CaIssuer>();
        assert_send_sync::<Certificate>();
        assert_send_sync::<VerifiedCsr>();
        assert_send_sync::<crate::KeyStore>();
        assert_send_sync::<crate::SoftwareSigner>();
    }

    #[test]
    fn serial_from_bytes() {
        assert!(SerialNumber::from_bytes(&[]).is_err());
        assert!(SerialNumber::from_bytes(&[0]).is_err());
        assert!(SerialNumber::from_bytes(&[0, 1]).is_err());
        assert!(SerialNumber::from_bytes(&[0x80]).is_err());
        assert!(SerialNumber::from_bytes(&[1; 21]).is_err());
        assert_eq!(
            SerialNumber::from_bytes(&[0, 0x80]).unwrap().as_bytes(),
            &[0, 0x80]
        );
        assert_eq!(
            SerialNumber::from_bytes(&[0x7f; 20])
                .unwrap()
                .to_hex()
                .len(),
            40
        );
    }

    #[test]
    fn random_serials_are_positive_and_distinct() {
        let mut rng = rand::rng();
        let a = SerialNumber::random(&mut rng);
        let b = SerialNumber::random(&mut rng);
        assert_ne!(a, b);
        assert_eq!(a.as_bytes().len(), 16);
        assert_eq!(a.as_bytes()[0] & 0xc0, 0x40);
        assert!(SerialNumber::from_bytes(a.as_bytes()).is_ok());
    }

    #[test]
    fn dns_names() {
        assert!(checked_dns_name("touchmark.example.com").is_ok());
        assert!(checked_dns_name("*.example.com").is_ok());
        assert!(checked_dns_name("localhost").is_ok());
        for bad in ["", "a..b", "-a.com", "a b", "ex_ample.com", "*", "é.com"] {
            assert!(checked_dns_name(bad).is_err(), "{bad}");
        }
    }
}
