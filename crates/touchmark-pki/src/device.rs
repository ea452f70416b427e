//! Verifying a device's certificate chain in the field (issue 17): the chain must lead to the
//! installation's device root by its signatures (a look-alike CA with the same names does not),
//! and a device proves it holds the certificate's key by signing a challenge.

use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1, UnparsedPublicKey};
use rustls_pki_types::{CertificateDer, UnixTime};
use sha2::{Digest as _, Sha256};
use time::OffsetDateTime;
use webpki::{EndEntityCert, KeyUsage};
use x509_parser::prelude::{FromDer as _, X509Certificate};

use crate::cert::Certificate;

/// Certificates a presented chain may hold: the device's, its issuing CA, the root, and room
/// for an intermediate or two. Anything longer is refused before a signature is checked.
pub const MAX_CHAIN: usize = 8;

/// The prefix of what a device signs to prove it holds its key: these bytes, then one zero
/// byte, then the challenge's nonce (`docs/field.md`).
pub const POSSESSION_CONTEXT: &[u8] = b"touchmark-field-possession-v1";

/// Signature algorithms accepted in device chains: the ones Touchmark's CAs use.
static DEVICE_SIGNATURE_ALGS: &[&dyn rustls_pki_types::SignatureVerificationAlgorithm] = &[
    webpki::aws_lc_rs::ECDSA_P256_SHA256,
    webpki::aws_lc_rs::ECDSA_P384_SHA384,
    webpki::aws_lc_rs::ED25519,
];

/// Why a device chain did not verify.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DeviceChainError {
    /// No certificate at all.
    #[error("the chain holds no certificate")]
    Empty,
    /// More certificates than [`MAX_CHAIN`].
    #[error("the chain holds {0} certificates; at most {max} are accepted", max = MAX_CHAIN)]
    TooLong(usize),
    /// A certificate that does not parse.
    #[error("malformed certificate: {0}")]
    Malformed(String),
    /// The chain does not lead to the device root by its signatures.
    #[error("the chain does not lead to this installation's device root")]
    UnknownIssuer,
    /// A certificate in the chain expired.
    #[error("a certificate in the chain has expired")]
    Expired,
    /// A certificate in the chain is not valid yet.
    #[error("a certificate in the chain is not valid yet")]
    NotYetValid,
    /// A certificate carries a critical extension a relying party cannot understand.
    #[error("a certificate carries an unknown critical extension")]
    UnknownCriticalExtension,
    /// The certificate is not a device's (a CA, or without clientAuth).
    #[error("the certificate is not a device certificate")]
    WrongUsage,
}

impl DeviceChainError {
    /// The short name of the check's result, as a verdict's `checks` report it.
    pub fn result(&self) -> &'static str {
        match self {
            Self::Empty | Self::TooLong(_) | Self::Malformed(_) => "malformed",
            Self::UnknownIssuer => "unknown_issuer",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::UnknownCriticalExtension => "unknown_critical_extension",
            Self::WrongUsage => "wrong_usage",
        }
    }
}

fn map_webpki(e: webpki::Error) -> DeviceChainError {
    #[allow(deprecated)] // Matching the deprecated variant keeps older error paths covered.
    match e {
        webpki::Error::CertExpired { .. } => DeviceChainError::Expired,
        webpki::Error::CertNotValidYet { .. } => DeviceChainError::NotYetValid,
        webpki::Error::UnknownIssuer
        | webpki::Error::InvalidSignatureForPublicKey
        | webpki::Error::MaximumPathDepthExceeded
        | webpki::Error::MaximumPathBuildCallsExceeded
        | webpki::Error::MaximumSignatureChecksExceeded => DeviceChainError::UnknownIssuer,
        webpki::Error::UnsupportedCriticalExtension => DeviceChainError::UnknownCriticalExtension,
        webpki::Error::RequiredEkuNotFound
        | webpki::Error::RequiredEkuNotFoundContext(_)
        | webpki::Error::CaUsedAsEndEntity => DeviceChainError::WrongUsage,
        other => DeviceChainError::Malformed(format!("{other:?}")),
    }
}

/// The largest chain accepted as text, PEM or base64: far more than [`MAX_CHAIN`] certificates
/// of any size Touchmark issues.
pub const MAX_CHAIN_TEXT: usize = 64 * 1024;

/// The certificates of `text`: PEM `CERTIFICATE` blocks, or the base64 of DER certificates one
/// after the other. At most [`MAX_CHAIN`]; none is parsed beyond its outer length.
///
/// # Errors
/// [`DeviceChainError::Malformed`], [`DeviceChainError::Empty`] or
/// [`DeviceChainError::TooLong`].
pub fn decode_chain(text: &str) -> Result<Vec<Vec<u8>>, DeviceChainError> {
    if text.len() > MAX_CHAIN_TEXT {
        return Err(DeviceChainError::Malformed(format!(
            "the chain is longer than {MAX_CHAIN_TEXT} bytes"
        )));
    }
    let certs = if text.contains("-----BEGIN") {
        let blocks =
            crate::pem::decode_all(text).map_err(|e| DeviceChainError::Malformed(e.to_string()))?;
        if let Some(other) = blocks.iter().find(|b| b.label != "CERTIFICATE") {
            return Err(DeviceChainError::Malformed(format!(
                "a {:?} PEM block where certificates were expected",
                other.label
            )));
        }
        blocks.into_iter().map(|b| b.der).collect()
    } else {
        let der = crate::pem::decode_base64_lenient(text).ok_or_else(|| {
            DeviceChainError::Malformed("the chain is neither PEM nor base64 DER".into())
        })?;
        split_der(&der)?
    };
    if certs.is_empty() {
        return Err(DeviceChainError::Empty);
    }
    if certs.len() > MAX_CHAIN {
        return Err(DeviceChainError::TooLong(certs.len()));
    }
    Ok(certs)
}

/// Splits DER SEQUENCEs that follow one another.
fn split_der(mut der: &[u8]) -> Result<Vec<Vec<u8>>, DeviceChainError> {
    let bad = |why: &str| DeviceChainError::Malformed(format!("DER: {why}"));
    let mut out = Vec::new();
    while !der.is_empty() {
        if out.len() > MAX_CHAIN {
            return Err(DeviceChainError::TooLong(out.len()));
        }
        if der.first() != Some(&0x30) {
            return Err(bad("a certificate is not a SEQUENCE"));
        }
        let first = *der.get(1).ok_or_else(|| bad("truncated length"))?;
        let (header, len) = if first < 0x80 {
            (2, usize::from(first))
        } else {
            let n = usize::from(first & 0x7f);
            if !(1..=3).contains(&n) {
                return Err(bad("unsupported length"));
            }
            let bytes = der.get(2..2 + n).ok_or_else(|| bad("truncated length"))?;
            (
                2 + n,
                bytes.iter().fold(0usize, |a, b| (a << 8) | usize::from(*b)),
            )
        };
        let end = header
            .checked_add(len)
            .filter(|&end| end <= der.len())
            .ok_or_else(|| bad("truncated certificate"))?;
        out.push(der[..end].to_vec());
        der = &der[end..];
    }
    Ok(out)
}

/// What the field needs from a device certificate that parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceCert {
    /// SHA-256 of its DER: how the store finds it.
    pub cert_sha256: [u8; 32],
    /// Its serial number, lowercase hex of the INTEGER's content octets, as stored.
    pub cert_serial_hex: String,
    /// The unit serial in its subject's serialNumber attribute, when there is exactly one.
    pub unit_serial: Option<String>,
    /// Its uncompressed P-256 public point, when its key is P-256.
    pub p256_point: Option<Vec<u8>>,
}

/// Parses the device's certificate (the chain's first).
///
/// # Errors
/// [`DeviceChainError::Malformed`] when it does not parse.
pub fn parse_device_cert(der: &[u8]) -> Result<DeviceCert, DeviceChainError> {
    let (rest, cert) =
        X509Certificate::from_der(der).map_err(|e| DeviceChainError::Malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(DeviceChainError::Malformed(
            "bytes after the certificate".into(),
        ));
    }
    let mut serials = cert
        .subject()
        .iter_attributes()
        .filter(|a| a.attr_type() == &x509_parser::oid_registry::OID_X509_SERIALNUMBER)
        .map(|a| a.as_str().map(str::to_owned));
    let unit_serial = match (serials.next(), serials.next()) {
        (Some(Ok(v)), None) => Some(v),
        _ => None,
    };
    let spki = cert.public_key();
    let point: &[u8] = &spki.subject_public_key.data;
    let is_p256 = spki.algorithm.algorithm == x509_parser::oid_registry::OID_KEY_TYPE_EC_PUBLIC_KEY
        && spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.as_oid().ok())
            .is_some_and(|c| c == x509_parser::oid_registry::OID_EC_P256)
        && point.len() == 65
        && point.first() == Some(&0x04);
    Ok(DeviceCert {
        cert_sha256: Sha256::digest(der).into(),
        cert_serial_hex: hex::encode(cert.raw_serial()),
        unit_serial,
        p256_point: is_p256.then(|| point.to_vec()),
    })
}

/// Verifies `chain` (the device's certificate first, then any intermediates it sent) up to
/// `root`, for client authentication, at `now`. `known` are CA certificates the installation
/// holds (its products' issuing CAs), so a device that sends its certificate alone verifies.
///
/// # Errors
/// The [`DeviceChainError`] for the first problem found.
pub fn verify_device_chain(
    root: &Certificate,
    known: &[Certificate],
    chain: &[Vec<u8>],
    now: OffsetDateTime,
) -> Result<(), DeviceChainError> {
    if chain.len() > MAX_CHAIN {
        return Err(DeviceChainError::TooLong(chain.len()));
    }
    let (end_entity, sent) = chain.split_first().ok_or(DeviceChainError::Empty)?;
    let root_der = CertificateDer::from(root.der());
    let anchor = webpki::anchor_from_trusted_cert(&root_der)
        .map_err(|e| DeviceChainError::Malformed(format!("device root: {e:?}")))?;
    let seconds = u64::try_from(now.unix_timestamp())
        .map_err(|_| DeviceChainError::Malformed("time is before 1970".into()))?;
    let time = UnixTime::since_unix_epoch(std::time::Duration::from_secs(seconds));
    let ee_der = CertificateDer::from(end_entity.as_slice());
    let ee = EndEntityCert::try_from(&ee_der).map_err(map_webpki)?;
    let intermediates: Vec<CertificateDer<'_>> = sent
        .iter()
        .map(|c| CertificateDer::from(c.as_slice()))
        .chain(known.iter().map(|c| CertificateDer::from(c.der())))
        .collect();
    ee.verify_for_usage(
        DEVICE_SIGNATURE_ALGS,
        &[anchor],
        &intermediates,
        time,
        KeyUsage::client_auth(),
        None,
        None,
    )
    .map_err(map_webpki)?;
    Ok(())
}

/// The bytes a device signs to answer a challenge with `nonce`.
pub fn possession_message(nonce: &[u8]) -> Vec<u8> {
    let mut message = Vec::with_capacity(POSSESSION_CONTEXT.len() + 1 + nonce.len());
    message.extend_from_slice(POSSESSION_CONTEXT);
    message.push(0);
    message.extend_from_slice(nonce);
    message
}

/// Whether `signature` (ECDSA P-256 with SHA-256, DER) over [`possession_message`] of `nonce`
/// verifies with the P-256 public point `point`.
pub fn verify_possession(point: &[u8], nonce: &[u8], signature: &[u8]) -> bool {
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, point)
        .verify(&possession_message(nonce), signature)
        .is_ok()
}
