//! Verifying a station's mTLS client certificate chain at the application layer.
//!
//! The TLS layer may already have checked the chain; this check is what binds a request to a
//! station and a factory, so it runs again here with an injected clock.

use rustls_pki_types::{CertificateDer, UnixTime};
use sha2::{Digest as _, Sha256};
use time::OffsetDateTime;
use webpki::{EndEntityCert, KeyUsage};
use x509_parser::prelude::{FromDer as _, X509Certificate};
use x509_parser::x509::X509Name;

use crate::cert::{Certificate, STATION_OU};

/// Signature algorithms accepted in station chains: the ones Touchmark's CAs and stations use.
static STATION_SIGNATURE_ALGS: &[&dyn rustls_pki_types::SignatureVerificationAlgorithm] = &[
    webpki::aws_lc_rs::ECDSA_P256_SHA256,
    webpki::aws_lc_rs::ECDSA_P384_SHA384,
    webpki::aws_lc_rs::ED25519,
];

/// Who a verified station certificate says the peer is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StationIdentity {
    /// The station identifier (subject CN).
    pub station_id: String,
    /// The factory the station belongs to (subject O).
    pub factory_id: String,
    /// SHA-256 of the station's certificate, for revocation checks and the audit log.
    pub cert_sha256: [u8; 32],
}

/// Why a station certificate was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StationCertError {
    /// The certificate (or one in its chain) expired before `now`.
    #[error("the station certificate has expired")]
    Expired,
    /// The certificate (or one in its chain) is not valid until after `now`.
    #[error("the station certificate is not yet valid")]
    NotYetValid,
    /// The chain does not lead to the station CA.
    #[error("the station certificate was not issued by the station CA")]
    UnknownIssuer,
    /// The chain or a certificate in it could not be parsed or is unacceptable.
    #[error("malformed station certificate: {0}")]
    Malformed(String),
    /// The certificate is not a station client certificate (EKU, key usage, CA flag or OU).
    #[error("the certificate is not a station client certificate")]
    WrongUsage,
}

fn map_webpki(e: webpki::Error) -> StationCertError {
    #[allow(deprecated)] // Matching the deprecated variant keeps older error paths covered.
    match e {
        webpki::Error::CertExpired { .. } => StationCertError::Expired,
        webpki::Error::CertNotValidYet { .. } => StationCertError::NotYetValid,
        // A signature that fails under the station CA's key means another CA (perhaps one with
        // the same name) issued the certificate.
        webpki::Error::UnknownIssuer | webpki::Error::InvalidSignatureForPublicKey => {
            StationCertError::UnknownIssuer
        }
        webpki::Error::RequiredEkuNotFound
        | webpki::Error::RequiredEkuNotFoundContext(_)
        | webpki::Error::CaUsedAsEndEntity => StationCertError::WrongUsage,
        other => StationCertError::Malformed(format!("{other:?}")),
    }
}

/// The single UTF-8 value of attribute `oid` in `name`, if there is exactly one.
fn single_attr(name: &X509Name<'_>, oid: &x509_parser::oid_registry::Oid<'_>) -> Option<String> {
    let mut values = name
        .iter_attributes()
        .filter(|a| a.attr_type() == oid)
        .map(|a| a.as_str().map(str::to_owned));
    match (values.next(), values.next()) {
        (Some(Ok(v)), None) => Some(v),
        _ => None,
    }
}

/// Verifies a station's client certificate chain (end entity first, then intermediates) against
/// the station CA, for client authentication, at time `now`.
///
/// The station CA is the trust anchor. The end-entity certificate must carry EKU clientAuth and
/// the `touchmark-station` OU; its CN is the station id and its O the factory id.
///
/// # Errors
/// The [`StationCertError`] for the first problem found.
pub fn verify_station_cert(
    station_ca: &Certificate,
    chain: &[CertificateDer<'_>],
    now: OffsetDateTime,
) -> Result<StationIdentity, StationCertError> {
    let (end_entity, intermediates) = chain
        .split_first()
        .ok_or_else(|| StationCertError::Malformed("empty certificate chain".into()))?;
    let ca_der = CertificateDer::from(station_ca.der());
    let anchor = webpki::anchor_from_trusted_cert(&ca_der)
        .map_err(|e| StationCertError::Malformed(format!("station CA: {e:?}")))?;
    let seconds = u64::try_from(now.unix_timestamp())
        .map_err(|_| StationCertError::Malformed("time is before 1970".into()))?;
    let time = UnixTime::since_unix_epoch(std::time::Duration::from_secs(seconds));
    let ee = EndEntityCert::try_from(end_entity).map_err(map_webpki)?;
    ee.verify_for_usage(
        STATION_SIGNATURE_ALGS,
        &[anchor],
        intermediates,
        time,
        KeyUsage::client_auth(),
        None,
        None,
    )
    .map_err(map_webpki)?;

    let (_, cert) = X509Certificate::from_der(end_entity)
        .map_err(|e| StationCertError::Malformed(e.to_string()))?;
    let subject = cert.subject();
    let ou = single_attr(
        subject,
        &x509_parser::oid_registry::OID_X509_ORGANIZATIONAL_UNIT,
    );
    if ou.as_deref() != Some(STATION_OU) {
        return Err(StationCertError::WrongUsage);
    }
    let station_id = single_attr(subject, &x509_parser::oid_registry::OID_X509_COMMON_NAME)
        .ok_or_else(|| StationCertError::Malformed("subject needs exactly one CN".into()))?;
    let factory_id = single_attr(
        subject,
        &x509_parser::oid_registry::OID_X509_ORGANIZATION_NAME,
    )
    .ok_or_else(|| StationCertError::Malformed("subject needs exactly one O".into()))?;
    Ok(StationIdentity {
        station_id,
        factory_id,
        cert_sha256: Sha256::digest(end_entity.as_ref()).into(),
    })
}
