//! Key agreement (ECDH) keys: the release encryption keys of firmware (issue 13), which a
//! [`crate::KeyProvider`] holds like a CA key. Only the provider computes with the private key;
//! it hands out the shared secret of one agreement, never the key.

use std::fmt;

use aws_lc_rs::agreement::{self, ECDH_P256, PrivateKey, UnparsedPublicKey, X25519};
use aws_lc_rs::encoding::{AsBigEndian, Curve25519SeedBin, EcPrivateKeyBin};
use zeroize::Zeroizing;

use crate::der::p256_spki;
use crate::error::PkiError;

/// The DER prefix of an X25519 SubjectPublicKeyInfo (RFC 8410).
const X25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x6e, 0x03, 0x21, 0x00,
];

/// The algorithms of key agreement keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AgreementAlgorithm {
    /// X25519 (RFC 7748).
    X25519,
    /// ECDH on NIST P-256; the shared secret is the X coordinate.
    EcdhP256,
}

impl AgreementAlgorithm {
    /// A stable lowercase name: `x25519` or `ec256` (imgtool's names).
    pub fn as_str(self) -> &'static str {
        match self {
            AgreementAlgorithm::X25519 => "x25519",
            AgreementAlgorithm::EcdhP256 => "ec256",
        }
    }

    /// Parses [`AgreementAlgorithm::as_str`].
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "x25519" => Some(AgreementAlgorithm::X25519),
            "ec256" => Some(AgreementAlgorithm::EcdhP256),
            _ => None,
        }
    }

    fn aws(self) -> &'static agreement::Algorithm {
        match self {
            AgreementAlgorithm::X25519 => &X25519,
            AgreementAlgorithm::EcdhP256 => &ECDH_P256,
        }
    }
}

impl fmt::Display for AgreementAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A private key that does key agreement. Implementations never expose it through `Debug`.
pub trait AgreementKey: Send + Sync + fmt::Debug {
    /// The key's algorithm.
    fn algorithm(&self) -> AgreementAlgorithm;
    /// The public key as a DER SubjectPublicKeyInfo.
    fn public_key_spki(&self) -> &[u8];
    /// The raw public key: the 65-byte uncompressed point, or 32 bytes for X25519.
    fn public_key_raw(&self) -> &[u8];
    /// The shared secret with `peer` (raw public key bytes).
    ///
    /// # Errors
    /// [`PkiError::KeyRejected`] when `peer` is not a valid public key of the algorithm, or the
    /// X25519 output is all zero (a low-order point, RFC 7748 §6.1).
    fn agree(&self, peer: &[u8]) -> Result<Zeroizing<Vec<u8>>, PkiError>;
}

/// An [`AgreementKey`] in process memory (aws-lc-rs).
pub struct SoftwareAgreementKey {
    alg: AgreementAlgorithm,
    key: PrivateKey,
    raw: Vec<u8>,
    spki: Vec<u8>,
}

impl fmt::Debug for SoftwareAgreementKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SoftwareAgreementKey")
            .field("algorithm", &self.alg)
            .field("public_key", &hex::encode(&self.raw))
            .finish_non_exhaustive()
    }
}

impl SoftwareAgreementKey {
    fn from_key(alg: AgreementAlgorithm, key: PrivateKey) -> Result<Self, PkiError> {
        let raw = key
            .compute_public_key()
            .map_err(|_| PkiError::KeyRejected("cannot compute the public key".into()))?
            .as_ref()
            .to_vec();
        let spki = match alg {
            AgreementAlgorithm::EcdhP256 => p256_spki(&raw),
            AgreementAlgorithm::X25519 => [&X25519_SPKI_PREFIX[..], &raw].concat(),
        };
        Ok(SoftwareAgreementKey {
            alg,
            key,
            raw,
            spki,
        })
    }

    /// Generates a new key.
    ///
    /// # Errors
    /// [`PkiError::Random`].
    pub fn generate(alg: AgreementAlgorithm) -> Result<Self, PkiError> {
        let key = PrivateKey::generate(alg.aws()).map_err(|_| PkiError::Random)?;
        Self::from_key(alg, key)
    }

    /// From the 32-byte private key (big-endian scalar for P-256, RFC 7748 bytes for X25519).
    ///
    /// # Errors
    /// [`PkiError::KeyRejected`].
    pub fn from_raw(alg: AgreementAlgorithm, raw: &[u8]) -> Result<Self, PkiError> {
        let key = PrivateKey::from_private_key(alg.aws(), raw)
            .map_err(|e| PkiError::KeyRejected(e.to_string()))?;
        Self::from_key(alg, key)
    }

    /// The 32-byte private key, for sealing it at rest.
    ///
    /// # Errors
    /// [`PkiError::KeyRejected`] if the backend cannot export it.
    pub fn raw_private(&self) -> Result<Zeroizing<Vec<u8>>, PkiError> {
        let export = |_| PkiError::KeyRejected("cannot export the key".into());
        let out = match self.alg {
            AgreementAlgorithm::EcdhP256 => {
                let bin: EcPrivateKeyBin = self.key.as_be_bytes().map_err(export)?;
                bin.as_ref().to_vec()
            }
            AgreementAlgorithm::X25519 => {
                let bin: Curve25519SeedBin = self.key.as_be_bytes().map_err(export)?;
                bin.as_ref().to_vec()
            }
        };
        Ok(Zeroizing::new(out))
    }
}

impl AgreementKey for SoftwareAgreementKey {
    fn algorithm(&self) -> AgreementAlgorithm {
        self.alg
    }

    fn public_key_spki(&self) -> &[u8] {
        &self.spki
    }

    fn public_key_raw(&self) -> &[u8] {
        &self.raw
    }

    fn agree(&self, peer: &[u8]) -> Result<Zeroizing<Vec<u8>>, PkiError> {
        let z = agreement::agree(
            &self.key,
            UnparsedPublicKey::new(self.alg.aws(), peer),
            PkiError::KeyRejected(format!("not a valid {} public key", self.alg)),
            |z| Ok(Zeroizing::new(z.to_vec())),
        )?;
        if z.iter().all(|b| *b == 0) {
            return Err(PkiError::KeyRejected(
                "all-zero shared secret (low-order point)".into(),
            ));
        }
        Ok(z)
    }
}
