//! Secure-element attestation (`docs/firmware.md`, "Attestation"): a product may require that
//! each unit's keys, its identity key and its firmware encryption key, be certified by its chip
//! vendor: each by a certificate that chains, by its signatures, to one of the vendor roots
//! configured for the product. Without it a factory that invents unit keys within its quota
//! could open a release; with it, only keys a vendor's secure element made are accepted.

use rustls_pki_types::{CertificateDer, UnixTime};
use time::OffsetDateTime;
use webpki::{EndEntityCert, KeyUsage};
use x509_parser::prelude::{FromDer as _, X509Certificate};

use crate::device::decode_chain;

/// Roots a product may name.
pub const MAX_ROOTS: usize = 8;

/// Signature algorithms accepted in vendor chains.
static VENDOR_SIGNATURE_ALGS: &[&dyn rustls_pki_types::SignatureVerificationAlgorithm] = &[
    webpki::aws_lc_rs::ECDSA_P256_SHA256,
    webpki::aws_lc_rs::ECDSA_P256_SHA384,
    webpki::aws_lc_rs::ECDSA_P384_SHA256,
    webpki::aws_lc_rs::ECDSA_P384_SHA384,
    webpki::aws_lc_rs::ED25519,
    webpki::aws_lc_rs::RSA_PKCS1_2048_8192_SHA256,
    webpki::aws_lc_rs::RSA_PKCS1_2048_8192_SHA384,
];

/// id-kp-clientAuth (1.3.6.1.5.5.7.3.2), the OID's content octets: a vendor certificate that
/// lists extended key usages must list it; one that lists none is accepted.
const ID_KP_CLIENT_AUTH: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x02];

/// Why an attestation, or a product's roots, were refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AttestationError {
    /// The text is not PEM certificates (or base64 DER), or a certificate does not parse.
    #[error("{0}")]
    Malformed(String),
    /// A root is not a CA certificate.
    #[error("root {index}: {why}")]
    NotARoot {
        /// Its place in the list, from 1.
        index: usize,
        /// Why.
        why: String,
    },
    /// No certificate of the attestation certifies the key.
    #[error("no certificate in the attestation certifies the unit's {0}")]
    NoCertificate(&'static str),
    /// The certificate of the key does not chain to a root of the product.
    #[error(
        "the certificate of the unit's {key} does not verify to the product's vendor roots: {why}"
    )]
    Chain {
        /// Which key.
        key: &'static str,
        /// Why.
        why: String,
    },
}

/// The vendor root certificates a product's units' keys must chain to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttestationRoots {
    roots: Vec<Vec<u8>>,
}

impl AttestationRoots {
    /// Parses `pem`: one to [`MAX_ROOTS`] PEM certificates, each a CA (basicConstraints cA).
    ///
    /// # Errors
    /// [`AttestationError::Malformed`] or [`AttestationError::NotARoot`].
    pub fn parse(pem: &str) -> Result<Self, AttestationError> {
        if !pem.contains("-----BEGIN") {
            return Err(AttestationError::Malformed(
                "the vendor roots must be PEM certificates".into(),
            ));
        }
        let roots = decode_chain(pem).map_err(|e| AttestationError::Malformed(e.to_string()))?;
        if roots.len() > MAX_ROOTS {
            return Err(AttestationError::Malformed(format!(
                "{} vendor roots; at most {MAX_ROOTS}",
                roots.len()
            )));
        }
        for (i, der) in roots.iter().enumerate() {
            let not_a_root = |why: String| AttestationError::NotARoot { index: i + 1, why };
            let (rest, cert) =
                X509Certificate::from_der(der).map_err(|e| not_a_root(e.to_string()))?;
            if !rest.is_empty() {
                return Err(not_a_root("bytes after the certificate".into()));
            }
            let is_ca = cert
                .basic_constraints()
                .ok()
                .flatten()
                .is_some_and(|b| b.value.ca);
            if !is_ca {
                return Err(not_a_root(
                    "not a CA certificate (basicConstraints cA)".into(),
                ));
            }
            webpki::anchor_from_trusted_cert(&CertificateDer::from(der.as_slice()))
                .map_err(|e| not_a_root(format!("{e:?}")))?;
        }
        Ok(Self { roots })
    }

    /// The roots' DER, in the order given.
    pub fn ders(&self) -> &[Vec<u8>] {
        &self.roots
    }
}

/// The certificates a unit sent to attest its keys: its key certificates and the vendor
/// intermediates, in any order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attestation {
    certs: Vec<Vec<u8>>,
    /// Each certificate's SubjectPublicKeyInfo, DER.
    spkis: Vec<Vec<u8>>,
}

impl Attestation {
    /// Parses `text`: PEM certificates, or the base64 of DER certificates one after the other,
    /// at most [`crate::device::MAX_CHAIN`].
    ///
    /// # Errors
    /// [`AttestationError::Malformed`].
    pub fn parse(text: &str) -> Result<Self, AttestationError> {
        let certs = decode_chain(text).map_err(|e| AttestationError::Malformed(e.to_string()))?;
        let spkis = certs
            .iter()
            .map(|der| {
                X509Certificate::from_der(der)
                    .map(|(_, c)| c.public_key().raw.to_vec())
                    .map_err(|e| AttestationError::Malformed(format!("a certificate: {e}")))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { certs, spkis })
    }

    /// Checks that a certificate of this attestation certifies `spki` (the key's DER
    /// SubjectPublicKeyInfo), is no CA, and chains to one of `roots` at `now`, through the
    /// attestation's other certificates. `key` names the key in errors.
    ///
    /// # Errors
    /// [`AttestationError::NoCertificate`] or [`AttestationError::Chain`].
    pub fn certifies(
        &self,
        roots: &AttestationRoots,
        spki: &[u8],
        key: &'static str,
        now: OffsetDateTime,
    ) -> Result<(), AttestationError> {
        let chain_error = |why: String| AttestationError::Chain { key, why };
        let seconds = u64::try_from(now.unix_timestamp())
            .map_err(|_| chain_error("the time is before 1970".into()))?;
        let time = UnixTime::since_unix_epoch(std::time::Duration::from_secs(seconds));
        let ders: Vec<CertificateDer<'_>> = roots
            .roots
            .iter()
            .map(|r| CertificateDer::from(r.as_slice()))
            .collect();
        let anchors = ders
            .iter()
            .map(webpki::anchor_from_trusted_cert)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| chain_error(format!("a root: {e:?}")))?;
        let intermediates: Vec<CertificateDer<'_>> = self
            .certs
            .iter()
            .map(|c| CertificateDer::from(c.as_slice()))
            .collect();
        let mut last = None;
        for (i, _) in self.spkis.iter().enumerate().filter(|(_, s)| *s == spki) {
            let ee = EndEntityCert::try_from(&intermediates[i])
                .map_err(|e| chain_error(format!("{e:?}")))?;
            match ee.verify_for_usage(
                VENDOR_SIGNATURE_ALGS,
                &anchors,
                &intermediates,
                time,
                KeyUsage::required_if_present(ID_KP_CLIENT_AUTH),
                None,
                None,
            ) {
                Ok(_) => return Ok(()),
                Err(e) => last = Some(describe(&e)),
            }
        }
        Err(match last {
            None => AttestationError::NoCertificate(key),
            Some(why) => chain_error(why),
        })
    }
}

/// A webpki error, for people.
fn describe(e: &webpki::Error) -> String {
    #[allow(deprecated)] // Matching the deprecated variant keeps older error paths covered.
    match e {
        webpki::Error::CertExpired { .. } => "a certificate has expired".into(),
        webpki::Error::CertNotValidYet { .. } => "a certificate is not valid yet".into(),
        webpki::Error::UnknownIssuer => "no chain leads to a vendor root".into(),
        webpki::Error::InvalidSignatureForPublicKey => "a signature does not verify".into(),
        webpki::Error::CaUsedAsEndEntity => "the key's certificate is a CA's".into(),
        webpki::Error::RequiredEkuNotFound | webpki::Error::RequiredEkuNotFoundContext(_) => {
            "the key's certificate lists extended key usages without clientAuth".into()
        }
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use rcgen::{
        BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, PKCS_ECDSA_P256_SHA256,
    };

    use super::*;

    /// A vendor CA: its parameters, its key and its certificate.
    struct Ca {
        params: CertificateParams,
        key: KeyPair,
        cert: rcgen::Certificate,
    }

    fn ca(name: &str) -> Ca {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let cert = params.self_signed(&key).unwrap();
        Ca { params, key, cert }
    }

    /// A certificate for `key`, issued by `issuer`.
    fn leaf(key: &KeyPair, issuer: &Ca) -> rcgen::Certificate {
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, "unit");
        let issuer = rcgen::Issuer::from_params(&issuer.params, &issuer.key);
        params.signed_by(key, &issuer).unwrap()
    }

    fn spki_of(key: &KeyPair) -> Vec<u8> {
        use rcgen::PublicKeyData as _;
        key.subject_public_key_info()
    }

    #[test]
    fn a_key_certified_by_a_vendor_root_is_accepted_and_nothing_else() {
        let vendor = ca("vendor");
        let roots = AttestationRoots::parse(&vendor.cert.pem()).unwrap();
        let unit = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let spki = spki_of(&unit);
        let now = OffsetDateTime::now_utc();
        let attested = Attestation::parse(&leaf(&unit, &vendor).pem()).unwrap();
        attested
            .certifies(&roots, &spki, "identity key", now)
            .unwrap();

        // Another key is not certified by it.
        let other = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        assert_eq!(
            attested.certifies(&roots, &spki_of(&other), "identity key", now),
            Err(AttestationError::NoCertificate("identity key"))
        );
        // A look-alike vendor CA (same name, another key) does not lead to the root.
        let forged = Attestation::parse(&leaf(&unit, &ca("vendor")).pem()).unwrap();
        assert!(matches!(
            forged.certifies(&roots, &spki, "identity key", now),
            Err(AttestationError::Chain { .. })
        ));
        // A certificate that is not yet valid does not verify.
        let past = now - time::Duration::days(400 * 100);
        assert!(matches!(
            attested.certifies(&roots, &spki, "identity key", past),
            Err(AttestationError::Chain { .. })
        ));
        // A leaf is no root.
        assert!(matches!(
            AttestationRoots::parse(&leaf(&unit, &vendor).pem()),
            Err(AttestationError::NotARoot { index: 1, .. })
        ));
        assert!(AttestationRoots::parse("not pem").is_err());
        assert!(
            Attestation::parse("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
                .is_err()
        );
    }
}
