//! The [`Signer`] seam through which every private-key operation goes, and its software implementation.
//!
//! CA keys, log keys and station keys are all used through `&dyn Signer`, so a PKCS#11 (HSM) backend
//! can replace [`SoftwareSigner`] without touching the certificate code. [`RcgenSigner`] adapts any
//! signer to rcgen's `SigningKey`.

use std::fmt;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _,
};
use zeroize::Zeroizing;

use crate::der::{ED25519_SPKI_PREFIX, p256_spki};
use crate::error::PkiError;

fn ed25519_spki(public: &[u8]) -> Vec<u8> {
    let mut spki = Vec::with_capacity(44);
    spki.extend_from_slice(&ED25519_SPKI_PREFIX);
    spki.extend_from_slice(public);
    spki
}

/// The key algorithms Touchmark uses for its own keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyAlgorithm {
    /// ECDSA on NIST P-256 with SHA-256 (CA keys, station keys, device keys).
    EcdsaP256,
    /// Ed25519 (log checkpoint keys).
    Ed25519,
}

impl KeyAlgorithm {
    /// A stable lowercase name, used in key files and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyAlgorithm::EcdsaP256 => "ecdsa-p256",
            KeyAlgorithm::Ed25519 => "ed25519",
        }
    }

    /// Parses the name produced by [`KeyAlgorithm::as_str`].
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "ecdsa-p256" => Some(KeyAlgorithm::EcdsaP256),
            "ed25519" => Some(KeyAlgorithm::Ed25519),
            _ => None,
        }
    }

    fn rcgen_algorithm(self) -> &'static rcgen::SignatureAlgorithm {
        match self {
            KeyAlgorithm::EcdsaP256 => &rcgen::PKCS_ECDSA_P256_SHA256,
            KeyAlgorithm::Ed25519 => &rcgen::PKCS_ED25519,
        }
    }
}

impl fmt::Display for KeyAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A private key that signs. The only way Touchmark code uses private keys.
///
/// Implementations must never expose the private key through `Debug`.
pub trait Signer: Send + Sync + fmt::Debug {
    /// The key's algorithm.
    fn algorithm(&self) -> KeyAlgorithm;
    /// The public key as a DER SubjectPublicKeyInfo.
    fn public_key_spki(&self) -> &[u8];
    /// The raw public key: the 65-byte uncompressed point for P-256, 32 bytes for Ed25519.
    fn public_key_raw(&self) -> &[u8];
    /// Signs `message`.
    ///
    /// ECDSA P-256: an ASN.1 DER `Ecdsa-Sig-Value` over SHA-256(message).
    /// Ed25519: the 64-byte signature over message.
    ///
    /// # Errors
    /// [`PkiError::SigningFailed`] if the backend fails.
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, PkiError>;
}

enum SoftwareKey {
    Ecdsa(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

/// A [`Signer`] whose private key lives in process memory (aws-lc-rs).
///
/// At rest, software keys are kept in a [`crate::KeyStore`].
pub struct SoftwareSigner {
    key: SoftwareKey,
    spki: Vec<u8>,
    raw: Vec<u8>,
}

impl fmt::Debug for SoftwareSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SoftwareSigner")
            .field("algorithm", &self.algorithm())
            .field("public_key", &hex::encode(&self.raw))
            .finish_non_exhaustive()
    }
}

fn rejected(e: aws_lc_rs::error::KeyRejected) -> PkiError {
    PkiError::KeyRejected(e.to_string())
}

impl SoftwareSigner {
    fn from_key(key: SoftwareKey) -> Self {
        let (raw, spki) = match &key {
            SoftwareKey::Ecdsa(k) => {
                let raw = k.public_key().as_ref().to_vec();
                let spki = p256_spki(&raw);
                (raw, spki)
            }
            SoftwareKey::Ed25519(k) => {
                let raw = k.public_key().as_ref().to_vec();
                let spki = ed25519_spki(&raw);
                (raw, spki)
            }
        };
        SoftwareSigner { key, spki, raw }
    }

    /// Generates a new random key.
    ///
    /// # Errors
    /// [`PkiError::Random`] if key generation fails.
    pub fn generate(alg: KeyAlgorithm) -> Result<Self, PkiError> {
        let key = match alg {
            KeyAlgorithm::EcdsaP256 => SoftwareKey::Ecdsa(
                EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING)
                    .map_err(|_| PkiError::Random)?,
            ),
            KeyAlgorithm::Ed25519 => {
                SoftwareKey::Ed25519(Ed25519KeyPair::generate().map_err(|_| PkiError::Random)?)
            }
        };
        Ok(Self::from_key(key))
    }

    /// Loads a key from an unencrypted PKCS#8 (v1 or v2) DER document.
    ///
    /// # Errors
    /// [`PkiError::KeyRejected`] if the document is malformed or is not a key of `alg`.
    pub fn from_pkcs8(alg: KeyAlgorithm, der: &[u8]) -> Result<Self, PkiError> {
        let key = match alg {
            KeyAlgorithm::EcdsaP256 => SoftwareKey::Ecdsa(
                EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, der).map_err(rejected)?,
            ),
            KeyAlgorithm::Ed25519 => {
                SoftwareKey::Ed25519(Ed25519KeyPair::from_pkcs8(der).map_err(rejected)?)
            }
        };
        Ok(Self::from_key(key))
    }

    /// Derives an Ed25519 key from its 32-byte seed (RFC 8032), for deterministic test keys.
    ///
    /// # Errors
    /// [`PkiError::KeyRejected`] if the seed is rejected.
    pub fn from_ed25519_seed(seed: &[u8; 32]) -> Result<Self, PkiError> {
        let key = Ed25519KeyPair::from_seed_unchecked(seed).map_err(rejected)?;
        Ok(Self::from_key(SoftwareKey::Ed25519(key)))
    }

    /// The private key as unencrypted PKCS#8 v1 DER (RFC 5208), the form every tool reads.
    ///
    /// The buffer is wiped on drop. An empty buffer is returned only if the crypto library fails
    /// to serialise a key it holds, which does not happen for well-formed keys.
    pub fn pkcs8_der(&self) -> Zeroizing<Vec<u8>> {
        let doc = match &self.key {
            SoftwareKey::Ecdsa(k) => k.to_pkcs8v1(),
            SoftwareKey::Ed25519(k) => k.to_pkcs8v1(),
        };
        Zeroizing::new(doc.map(|d| d.as_ref().to_vec()).unwrap_or_default())
    }

    /// The private key as a `PRIVATE KEY` PEM document, wiped on drop.
    pub fn pkcs8_pem(&self) -> Zeroizing<String> {
        let der = self.pkcs8_der();
        crate::pem::encode_zeroizing("PRIVATE KEY", &der)
    }
}

impl Signer for SoftwareSigner {
    fn algorithm(&self) -> KeyAlgorithm {
        match self.key {
            SoftwareKey::Ecdsa(_) => KeyAlgorithm::EcdsaP256,
            SoftwareKey::Ed25519(_) => KeyAlgorithm::Ed25519,
        }
    }

    fn public_key_spki(&self) -> &[u8] {
        &self.spki
    }

    fn public_key_raw(&self) -> &[u8] {
        &self.raw
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, PkiError> {
        match &self.key {
            SoftwareKey::Ecdsa(k) => k
                .sign(&SystemRandom::new(), message)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| PkiError::SigningFailed),
            SoftwareKey::Ed25519(k) => k
                .try_sign(message)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| PkiError::SigningFailed),
        }
    }
}

/// Adapts a borrowed [`Signer`] to rcgen's `SigningKey`, so rcgen can sign certificates with it.
#[derive(Debug, Clone, Copy)]
pub struct RcgenSigner<'a>(&'a dyn Signer);

impl<'a> RcgenSigner<'a> {
    /// Wraps a signer.
    pub fn new(signer: &'a dyn Signer) -> Self {
        RcgenSigner(signer)
    }
}

impl rcgen::PublicKeyData for RcgenSigner<'_> {
    fn der_bytes(&self) -> &[u8] {
        // rcgen wants the contents of the subjectPublicKey BIT STRING, i.e. the raw key.
        self.0.public_key_raw()
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        self.0.algorithm().rcgen_algorithm()
    }
}

impl rcgen::SigningKey for RcgenSigner<'_> {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        self.0.sign(msg).map_err(|_| rcgen::Error::RemoteKeyError)
    }
}

/// Like [`RcgenSigner`], but owning its signer, so a CA can cache an rcgen issuer.
#[derive(Debug, Clone)]
pub(crate) struct OwnedRcgenSigner(pub(crate) std::sync::Arc<dyn Signer>);

impl rcgen::PublicKeyData for OwnedRcgenSigner {
    fn der_bytes(&self) -> &[u8] {
        self.0.public_key_raw()
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        self.0.algorithm().rcgen_algorithm()
    }
}

impl rcgen::SigningKey for OwnedRcgenSigner {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        self.0.sign(msg).map_err(|_| rcgen::Error::RemoteKeyError)
    }
}

/// The DER SubjectPublicKeyInfo of a raw public key of `alg` (the 65-byte uncompressed point
/// for P-256, the 32-byte key for Ed25519), for a [`Signer`] whose key lives elsewhere, such as
/// in a hardware module. `None` if `raw` has the wrong length for `alg`.
pub fn spki_of(alg: KeyAlgorithm, raw: &[u8]) -> Option<Vec<u8>> {
    match alg {
        KeyAlgorithm::EcdsaP256 if raw.len() == 65 && raw[0] == 0x04 => Some(p256_spki(raw)),
        KeyAlgorithm::Ed25519 if raw.len() == 32 => Some(ed25519_spki(raw)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1, ED25519, UnparsedPublicKey};

    use super::*;

    #[test]
    fn sign_and_verify_both_algorithms() {
        for (alg, verify) in [
            (
                KeyAlgorithm::EcdsaP256,
                &ECDSA_P256_SHA256_ASN1 as &dyn aws_lc_rs::signature::VerificationAlgorithm,
            ),
            (KeyAlgorithm::Ed25519, &ED25519),
        ] {
            let s = SoftwareSigner::generate(alg).unwrap();
            assert_eq!(s.algorithm(), alg);
            let sig = s.sign(b"hello").unwrap();
            UnparsedPublicKey::new(verify, s.public_key_raw())
                .verify(b"hello", &sig)
                .unwrap();
            let again = SoftwareSigner::from_pkcs8(alg, &s.pkcs8_der()).unwrap();
            assert_eq!(again.public_key_raw(), s.public_key_raw());
            assert!(s.pkcs8_pem().starts_with("-----BEGIN PRIVATE KEY-----\n"));
        }
    }

    #[test]
    fn spki_parses_with_x509_parser() {
        for alg in [KeyAlgorithm::EcdsaP256, KeyAlgorithm::Ed25519] {
            let s = SoftwareSigner::generate(alg).unwrap();
            let (rest, spki) =
                <x509_parser::x509::SubjectPublicKeyInfo as x509_parser::prelude::FromDer<_>>::from_der(
                    s.public_key_spki(),
                )
                .unwrap();
            assert!(rest.is_empty());
            assert_eq!(&*spki.subject_public_key.data, s.public_key_raw());
        }
    }

    #[test]
    fn wrong_algorithm_pkcs8_is_rejected() {
        let s = SoftwareSigner::generate(KeyAlgorithm::Ed25519).unwrap();
        assert!(matches!(
            SoftwareSigner::from_pkcs8(KeyAlgorithm::EcdsaP256, &s.pkcs8_der()),
            Err(PkiError::KeyRejected(_))
        ));
    }

    #[test]
    fn debug_does_not_leak_private_key() {
        let s = SoftwareSigner::generate(KeyAlgorithm::EcdsaP256).unwrap();
        let dbg = format!("{s:?}");
        assert!(dbg.contains("SoftwareSigner"));
        assert!(!dbg.contains(&hex::encode(&*s.pkcs8_der())));
    }
}
