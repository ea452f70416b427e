//! Keys: the public keys that sign images and that units receive their wrap for, the release
//! key behind the [`KeyAgreement`] seam, and the ephemeral keys of a wrap (injectable, so that a
//! test can reproduce a recorded wrap byte for byte).

use std::fmt;

use aws_lc_rs::agreement::{self, ECDH_P256, PrivateKey, UnparsedPublicKey, X25519};
use aws_lc_rs::digest;
use base64::Engine as _;
use zeroize::Zeroizing;

use crate::error::FirmwareError;

const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];
const X25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x6e, 0x03, 0x21, 0x00,
];
const ED25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];
const X25519_PKCS8_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x6e, 0x04, 0x22, 0x04, 0x20,
];

/// The curve of an encryption (key agreement) key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Curve {
    /// NIST P-256: ENCEC256 (0x32).
    P256,
    /// X25519: ENCX25519 (0x33) and ENCX25519_SHA512 (0x34).
    X25519,
}

impl Curve {
    /// A stable lowercase name: `ec256` or `x25519`, as imgtool's `keygen -t` names them.
    pub fn as_str(self) -> &'static str {
        match self {
            Curve::P256 => "ec256",
            Curve::X25519 => "x25519",
        }
    }

    /// Parses [`Curve::as_str`].
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "ec256" | "p256" => Some(Curve::P256),
            "x25519" => Some(Curve::X25519),
            _ => None,
        }
    }

    /// The length of a raw public key: 65 (uncompressed point) or 32.
    pub fn public_len(self) -> usize {
        match self {
            Curve::P256 => 65,
            Curve::X25519 => 32,
        }
    }

    fn algorithm(self) -> &'static agreement::Algorithm {
        match self {
            Curve::P256 => &ECDH_P256,
            Curve::X25519 => &X25519,
        }
    }
}

impl fmt::Display for Curve {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Decodes the first PEM block labelled `label` (RFC 7468).
///
/// # Errors
/// [`FirmwareError::KeyInvalid`] when there is none or its base64 is bad.
pub fn pem_decode(text: &str, label: &str) -> Result<Vec<u8>, FirmwareError> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = text
        .find(&begin)
        .ok_or_else(|| FirmwareError::KeyInvalid(format!("no {begin} block")))?
        + begin.len();
    let stop = text[start..]
        .find(&end)
        .ok_or_else(|| FirmwareError::KeyInvalid(format!("no {end} line")))?
        + start;
    let b64: String = text[start..stop]
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|e| FirmwareError::KeyInvalid(format!("bad base64 in PEM: {e}")))
}

/// Encodes DER as a PEM block.
pub fn pem_encode(der: &[u8], label: &str) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// A public key, parsed from a SubjectPublicKeyInfo.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum PublicKey {
    /// ECDSA or ECDH on P-256: the 65-byte uncompressed point.
    P256([u8; 65]),
    /// X25519: 32 bytes.
    X25519([u8; 32]),
    /// Ed25519: 32 bytes.
    Ed25519([u8; 32]),
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}({})", self.kind(), hex::encode(self.raw()))
    }
}

impl PublicKey {
    /// Parses a DER SubjectPublicKeyInfo of P-256, X25519 or Ed25519.
    ///
    /// # Errors
    /// [`FirmwareError::KeyInvalid`] for anything else.
    pub fn from_spki_der(der: &[u8]) -> Result<Self, FirmwareError> {
        if let Some(raw) = der.strip_prefix(&P256_SPKI_PREFIX[..]) {
            let point: [u8; 65] = raw
                .try_into()
                .map_err(|_| FirmwareError::KeyInvalid("P-256 point is not 65 bytes".into()))?;
            if point[0] != 0x04 {
                return Err(FirmwareError::KeyInvalid(
                    "P-256 point is not uncompressed".into(),
                ));
            }
            // Whether the point is on the curve: aws-lc parses it for ECDH.
            let probe = PrivateKey::generate(&ECDH_P256)
                .map_err(|_| FirmwareError::Backend("cannot generate a key".into()))?;
            agreement::agree(
                &probe,
                UnparsedPublicKey::new(&ECDH_P256, &point[..]),
                (),
                |_| Ok(()),
            )
            .map_err(|()| FirmwareError::KeyInvalid("P-256 point is not on the curve".into()))?;
            return Ok(PublicKey::P256(point));
        }
        if let Some(raw) = der.strip_prefix(&X25519_SPKI_PREFIX[..]) {
            return raw
                .try_into()
                .map(PublicKey::X25519)
                .map_err(|_| FirmwareError::KeyInvalid("X25519 key is not 32 bytes".into()));
        }
        if let Some(raw) = der.strip_prefix(&ED25519_SPKI_PREFIX[..]) {
            return raw
                .try_into()
                .map(PublicKey::Ed25519)
                .map_err(|_| FirmwareError::KeyInvalid("Ed25519 key is not 32 bytes".into()));
        }
        Err(FirmwareError::KeyInvalid(
            "not a P-256, X25519 or Ed25519 SubjectPublicKeyInfo".into(),
        ))
    }

    /// Parses a `PUBLIC KEY` PEM block.
    ///
    /// # Errors
    /// [`FirmwareError::KeyInvalid`].
    pub fn from_pem(text: &str) -> Result<Self, FirmwareError> {
        Self::from_spki_der(&pem_decode(text, "PUBLIC KEY")?)
    }

    /// An encryption public key from its raw bytes (65-byte point or 32 bytes).
    ///
    /// # Errors
    /// [`FirmwareError::KeyInvalid`] when the length does not fit the curve.
    pub fn from_raw(curve: Curve, raw: &[u8]) -> Result<Self, FirmwareError> {
        let der = match curve {
            Curve::P256 => [&P256_SPKI_PREFIX[..], raw].concat(),
            Curve::X25519 => [&X25519_SPKI_PREFIX[..], raw].concat(),
        };
        Self::from_spki_der(&der)
    }

    /// The DER SubjectPublicKeyInfo.
    pub fn spki_der(&self) -> Vec<u8> {
        match self {
            PublicKey::P256(p) => [&P256_SPKI_PREFIX[..], &p[..]].concat(),
            PublicKey::X25519(p) => [&X25519_SPKI_PREFIX[..], &p[..]].concat(),
            PublicKey::Ed25519(p) => [&ED25519_SPKI_PREFIX[..], &p[..]].concat(),
        }
    }

    /// The `PUBLIC KEY` PEM.
    pub fn to_pem(&self) -> String {
        pem_encode(&self.spki_der(), "PUBLIC KEY")
    }

    /// The raw key bytes.
    pub fn raw(&self) -> &[u8] {
        match self {
            PublicKey::P256(p) => p,
            PublicKey::X25519(p) | PublicKey::Ed25519(p) => p,
        }
    }

    /// `ecdsa-p256`, `x25519` or `ed25519`.
    pub fn kind(&self) -> &'static str {
        match self {
            PublicKey::P256(_) => "p256",
            PublicKey::X25519(_) => "x25519",
            PublicKey::Ed25519(_) => "ed25519",
        }
    }

    /// The key id: lowercase hex SHA-256 of the SubjectPublicKeyInfo DER (what imgtool's
    /// KEYHASH TLV holds).
    pub fn key_id(&self) -> String {
        hex::encode(digest::digest(&digest::SHA256, &self.spki_der()))
    }

    /// The curve, for a key that can do key agreement.
    pub fn curve(&self) -> Option<Curve> {
        match self {
            PublicKey::P256(_) => Some(Curve::P256),
            PublicKey::X25519(_) => Some(Curve::X25519),
            PublicKey::Ed25519(_) => None,
        }
    }
}

/// A shared secret `Z`, wiped on drop.
pub type SharedSecret = Zeroizing<Vec<u8>>;

/// A private key that does key agreement: the release key, or a unit's key.
///
/// It is the seam through which the server's release keys are used, so that a key provider
/// (encrypted key store, HSM) can hold them.
pub trait KeyAgreement: Send + Sync + fmt::Debug {
    /// The key's curve.
    fn curve(&self) -> Curve;
    /// ECDH with `peer` (a 65-byte uncompressed point or 32 raw bytes): P-256 gives the X
    /// coordinate, X25519 the 32-byte output.
    ///
    /// # Errors
    /// [`FirmwareError::EncTlvBadPoint`] when `peer` is not a valid point or the X25519 output
    /// is all zero; [`FirmwareError::Backend`] when the provider fails.
    fn agree(&self, peer: &[u8]) -> Result<SharedSecret, FirmwareError>;
}

/// ECDH with a private key held in memory.
fn ecdh(private: &PrivateKey, curve: Curve, peer: &[u8]) -> Result<SharedSecret, FirmwareError> {
    if curve == Curve::P256 && (peer.len() != 65 || peer[0] != 0x04) {
        return Err(FirmwareError::EncTlvBadPoint(
            "P-256 key is not a 65-byte uncompressed point",
        ));
    }
    if peer.len() != curve.public_len() {
        return Err(FirmwareError::EncTlvBadPoint("wrong public key length"));
    }
    let z = agreement::agree(
        private,
        UnparsedPublicKey::new(curve.algorithm(), peer),
        FirmwareError::EncTlvBadPoint("not a valid point, or a low-order X25519 point"),
        |z| Ok(Zeroizing::new(z.to_vec())),
    )?;
    // RFC 7748 §6.1: an all-zero X25519 output means a low-order point.
    if z.iter().all(|b| *b == 0) {
        return Err(FirmwareError::EncTlvBadPoint(
            "all-zero shared secret (low-order point)",
        ));
    }
    Ok(z)
}

/// A key-agreement private key held in process memory (aws-lc-rs).
pub struct SoftwareAgreementKey {
    curve: Curve,
    key: PrivateKey,
    public: PublicKey,
}

impl fmt::Debug for SoftwareAgreementKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SoftwareAgreementKey")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

impl SoftwareAgreementKey {
    fn from_private(curve: Curve, key: PrivateKey) -> Result<Self, FirmwareError> {
        let public = key
            .compute_public_key()
            .map_err(|_| FirmwareError::Backend("cannot compute the public key".into()))?;
        let public = PublicKey::from_raw(curve, public.as_ref())?;
        Ok(SoftwareAgreementKey { curve, key, public })
    }

    /// Generates a fresh key from the system CSPRNG.
    ///
    /// # Errors
    /// [`FirmwareError::Backend`] if generation fails.
    pub fn generate(curve: Curve) -> Result<Self, FirmwareError> {
        let key = PrivateKey::generate(curve.algorithm())
            .map_err(|_| FirmwareError::Backend("cannot generate a key".into()))?;
        Self::from_private(curve, key)
    }

    /// From the raw private scalar: 32 bytes, big-endian for P-256, as RFC 7748 for X25519.
    ///
    /// # Errors
    /// [`FirmwareError::KeyInvalid`].
    pub fn from_raw(curve: Curve, raw: &[u8]) -> Result<Self, FirmwareError> {
        let key = PrivateKey::from_private_key(curve.algorithm(), raw)
            .map_err(|e| FirmwareError::KeyInvalid(format!("private key: {e}")))?;
        Self::from_private(curve, key)
    }

    /// From an unencrypted PKCS#8 DER document (what imgtool keygen writes, and what MCUboot's
    /// `bootutil_enc_key` holds).
    ///
    /// # Errors
    /// [`FirmwareError::KeyInvalid`].
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, FirmwareError> {
        if let Some(raw) = der.strip_prefix(&X25519_PKCS8_PREFIX[..]) {
            return Self::from_raw(Curve::X25519, raw);
        }
        let key = PrivateKey::from_private_key_der(&ECDH_P256, der).map_err(|e| {
            FirmwareError::KeyInvalid(format!("not a P-256 or X25519 PKCS#8 key: {e}"))
        })?;
        Self::from_private(Curve::P256, key)
    }

    /// From a `PRIVATE KEY` PEM block.
    ///
    /// # Errors
    /// [`FirmwareError::KeyInvalid`].
    pub fn from_pem(text: &str) -> Result<Self, FirmwareError> {
        let der = Zeroizing::new(pem_decode(text, "PRIVATE KEY")?);
        Self::from_pkcs8_der(&der)
    }

    /// The raw private key: 32 bytes (big-endian scalar for P-256). For storing it encrypted.
    ///
    /// # Errors
    /// [`FirmwareError::Backend`] if the backend cannot export it.
    pub fn raw_private(&self) -> Result<Zeroizing<Vec<u8>>, FirmwareError> {
        use aws_lc_rs::encoding::{AsBigEndian, Curve25519SeedBin, EcPrivateKeyBin};
        let out = match self.curve {
            Curve::P256 => {
                let bin: EcPrivateKeyBin = self
                    .key
                    .as_be_bytes()
                    .map_err(|_| FirmwareError::Backend("cannot export the key".into()))?;
                bin.as_ref().to_vec()
            }
            Curve::X25519 => {
                let bin: Curve25519SeedBin = self
                    .key
                    .as_be_bytes()
                    .map_err(|_| FirmwareError::Backend("cannot export the key".into()))?;
                bin.as_ref().to_vec()
            }
        };
        Ok(Zeroizing::new(out))
    }

    /// The key as an unencrypted PKCS#8 DER document, as MCUboot's `bootutil_enc_key` holds it
    /// (and [`Self::from_pkcs8_der`] reads it).
    ///
    /// # Errors
    /// [`FirmwareError::Backend`] if the backend cannot export it.
    pub fn pkcs8_der(&self) -> Result<Zeroizing<Vec<u8>>, FirmwareError> {
        let mut der = Zeroizing::new(Vec::with_capacity(160));
        match self.curve {
            Curve::X25519 => {
                der.extend_from_slice(&X25519_PKCS8_PREFIX);
                der.extend_from_slice(&self.raw_private()?);
            }
            Curve::P256 => {
                use aws_lc_rs::encoding::{AsDer, EcPrivateKeyRfc5915Der};
                let inner: EcPrivateKeyRfc5915Der<'_> = self
                    .key
                    .as_der()
                    .map_err(|_| FirmwareError::Backend("cannot export the key".into()))?;
                // PrivateKeyInfo: version 0, id-ecPublicKey with prime256v1, the ECPrivateKey.
                const ALGORITHM: [u8; 24] = [
                    0x02, 0x01, 0x00, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02,
                    0x01, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07,
                ];
                let mut octets = Zeroizing::new(Vec::with_capacity(inner.as_ref().len() + 4));
                push_der(&mut octets, 0x04, inner.as_ref());
                let mut body = Zeroizing::new(Vec::with_capacity(octets.len() + 24));
                body.extend_from_slice(&ALGORITHM);
                body.extend_from_slice(&octets);
                push_der(&mut der, 0x30, &body);
            }
        }
        Ok(der)
    }

    /// The public key.
    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }
}

impl KeyAgreement for SoftwareAgreementKey {
    fn curve(&self) -> Curve {
        self.curve
    }

    fn agree(&self, peer: &[u8]) -> Result<SharedSecret, FirmwareError> {
        ecdh(&self.key, self.curve, peer)
    }
}

/// The ephemeral key of one wrap. Fresh from the CSPRNG in production ([`Ephemeral::Fresh`]);
/// a recorded key in tests ([`Ephemeral::Fixed`]).
#[derive(Debug)]
pub enum Ephemeral {
    /// A new key from the system CSPRNG, used once.
    Fresh,
    /// A given key (tests that reproduce a recorded wrap).
    Fixed(SoftwareAgreementKey),
}

impl Ephemeral {
    pub(crate) fn key(self, curve: Curve) -> Result<SoftwareAgreementKey, FirmwareError> {
        match self {
            Ephemeral::Fresh => SoftwareAgreementKey::generate(curve),
            Ephemeral::Fixed(k) if k.curve == curve => Ok(k),
            Ephemeral::Fixed(k) => Err(FirmwareError::KeyInvalid(format!(
                "the ephemeral key is {}, the wrap needs {curve}",
                k.curve
            ))),
        }
    }
}

/// Appends a DER element: `tag`, its definite length, `content`.
fn push_der(out: &mut Vec<u8>, tag: u8, content: &[u8]) {
    out.push(tag);
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// A key's PKCS#8 document reads back as the same key, on both curves.
    #[test]
    fn pkcs8_round_trips() {
        for curve in [Curve::X25519, Curve::P256] {
            let key = SoftwareAgreementKey::generate(curve).unwrap();
            let der = key.pkcs8_der().unwrap();
            assert_eq!(der[0], 0x30, "{curve:?}");
            let back = SoftwareAgreementKey::from_pkcs8_der(&der).unwrap();
            assert_eq!(back.public_key(), key.public_key(), "{curve:?}");
        }
    }
}
