//! The ECIES key TLV of MCUboot (FIRMWARE.md §3): `E ‖ T ‖ C`, with HKDF (zero salt, info
//! `MCUBoot_ECIES_v1`), AES-CTR with a zero counter block, and an HMAC over `C` only.

use aws_lc_rs::cipher::{AES_128, AES_256, EncryptingKey, EncryptionContext, UnboundCipherKey};
use aws_lc_rs::constant_time;
use aws_lc_rs::hmac;
use aws_lc_rs::iv::FixedLength;
use zeroize::Zeroizing;

use crate::error::FirmwareError;
use crate::image::tlv;
use crate::keys::{Curve, Ephemeral, KeyAgreement, PublicKey};

const HKDF_INFO: &[u8] = b"MCUBoot_ECIES_v1";

/// The kind of ECIES key TLV.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EncKind {
    /// ENCEC256 (0x32): P-256, HMAC-SHA256.
    Ec256,
    /// ENCX25519 (0x33): X25519, HMAC-SHA256.
    X25519,
    /// ENCX25519_SHA512 (0x34): X25519, HMAC-SHA512.
    X25519Sha512,
}

impl EncKind {
    /// The kind of a TLV type, if it is ECIES.
    pub fn from_tlv(typ: u16) -> Option<Self> {
        match typ {
            tlv::ENCEC256 => Some(EncKind::Ec256),
            tlv::ENCX25519 => Some(EncKind::X25519),
            tlv::ENCX25519_SHA512 => Some(EncKind::X25519Sha512),
            _ => None,
        }
    }

    /// The TLV type.
    pub fn tlv(self) -> u16 {
        match self {
            EncKind::Ec256 => tlv::ENCEC256,
            EncKind::X25519 => tlv::ENCX25519,
            EncKind::X25519Sha512 => tlv::ENCX25519_SHA512,
        }
    }

    /// The curve of the keys.
    pub fn curve(self) -> Curve {
        match self {
            EncKind::Ec256 => Curve::P256,
            EncKind::X25519 | EncKind::X25519Sha512 => Curve::X25519,
        }
    }

    fn hmac(self) -> hmac::Algorithm {
        match self {
            EncKind::X25519Sha512 => hmac::HMAC_SHA512,
            EncKind::Ec256 | EncKind::X25519 => hmac::HMAC_SHA256,
        }
    }

    fn tag_len(self) -> usize {
        match self {
            EncKind::X25519Sha512 => 64,
            EncKind::Ec256 | EncKind::X25519 => 32,
        }
    }

    /// The TLV value's length for an AES key of `key_len` bytes.
    pub fn value_len(self, key_len: usize) -> usize {
        self.curve().public_len() + self.tag_len() + key_len
    }
}

/// An AES content key (16 or 32 bytes), wiped on drop.
#[derive(Clone, PartialEq, Eq)]
pub struct ContentKey(Zeroizing<Vec<u8>>);

impl std::fmt::Debug for ContentKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ContentKey(AES-{}, ..)", self.0.len() * 8)
    }
}

impl ContentKey {
    /// From 16 or 32 bytes.
    ///
    /// # Errors
    /// [`FirmwareError::KeyInvalid`] for another length.
    pub fn new(bytes: &[u8]) -> Result<Self, FirmwareError> {
        if bytes.len() != 16 && bytes.len() != 32 {
            return Err(FirmwareError::KeyInvalid(format!(
                "a content key is 16 or 32 bytes, not {}",
                bytes.len()
            )));
        }
        Ok(ContentKey(Zeroizing::new(bytes.to_vec())))
    }

    /// A random key of `len` bytes (16 or 32) from the system's CSPRNG, as `imgtool sign
    /// --encrypt` makes one per image.
    ///
    /// # Errors
    /// [`FirmwareError::KeyInvalid`] for another length; [`FirmwareError::Backend`] when the
    /// CSPRNG fails.
    pub fn generate(len: usize) -> Result<Self, FirmwareError> {
        let mut bytes = Zeroizing::new(vec![0u8; len]);
        aws_lc_rs::rand::fill(&mut bytes)
            .map_err(|_| FirmwareError::Backend("the system's random generator failed".into()))?;
        Self::new(&bytes)
    }

    /// The key bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub(crate) fn cipher_key(&self) -> Result<UnboundCipherKey, FirmwareError> {
        aes_key(&self.0)
    }
}

fn aes_key(bytes: &[u8]) -> Result<UnboundCipherKey, FirmwareError> {
    let alg = if bytes.len() == 32 {
        &AES_256
    } else {
        &AES_128
    };
    UnboundCipherKey::new(alg, bytes).map_err(|_| FirmwareError::Backend("bad AES key".into()))
}

/// HKDF (RFC 5869) with a salt of HashLen zero bytes, as MCUboot's `hkdf()`.
fn hkdf(alg: hmac::Algorithm, ikm: &[u8], len: usize) -> Zeroizing<Vec<u8>> {
    let hash_len = alg.digest_algorithm().output_len();
    let prk = hmac::sign(&hmac::Key::new(alg, &vec![0u8; hash_len]), ikm);
    let prk = hmac::Key::new(alg, prk.as_ref());
    let mut okm = Zeroizing::new(Vec::with_capacity(len + hash_len));
    let mut t: Vec<u8> = Vec::new();
    let mut counter = 1u8;
    while okm.len() < len {
        let mut ctx = hmac::Context::with_key(&prk);
        ctx.update(&t);
        ctx.update(HKDF_INFO);
        ctx.update(&[counter]);
        t = ctx.sign().as_ref().to_vec();
        okm.extend_from_slice(&t);
        counter = counter.wrapping_add(1);
    }
    okm.truncate(len);
    okm
}

/// AES-CTR with a zero counter block over `data`, in place.
fn aes_ctr_zero_iv(key: &[u8], data: &mut [u8]) -> Result<(), FirmwareError> {
    let key =
        EncryptingKey::ctr(aes_key(key)?).map_err(|_| FirmwareError::Backend("AES-CTR".into()))?;
    key.less_safe_encrypt(data, EncryptionContext::Iv128(FixedLength::from([0u8; 16])))
        .map_err(|_| FirmwareError::Backend("AES-CTR".into()))?;
    Ok(())
}

/// Unwraps the content key from a key TLV value with `key` (the release key, or a unit key).
///
/// # Errors
/// [`FirmwareError::KeyTypeMismatch`], [`FirmwareError::EncTlvBadPoint`],
/// [`FirmwareError::LegacyAes256Wrap`] (an imgtool < 2.3.0 AES-256 wrap), or
/// [`FirmwareError::EncTlvHmacMismatch`].
pub fn unwrap(
    kind: EncKind,
    value: &[u8],
    key_len: usize,
    key: &dyn KeyAgreement,
) -> Result<ContentKey, FirmwareError> {
    if key.curve() != kind.curve() {
        return Err(FirmwareError::KeyTypeMismatch {
            key: key.curve().as_str(),
            tlv: kind.curve().as_str(),
        });
    }
    if value.len() != kind.value_len(key_len) {
        return Err(FirmwareError::EncTlvBadLength {
            typ: kind.tlv(),
            len: value.len(),
            want: kind.value_len(key_len),
            bits: key_len * 8,
        });
    }
    let publen = kind.curve().public_len();
    let (eph, rest) = value.split_at(publen);
    let (tag, cipherkey) = rest.split_at(kind.tag_len());
    let z = key.agree(eph)?;
    let okm = hkdf(kind.hmac(), &z, key_len + kind.tag_len());
    let (kek, mac_key) = okm.split_at(key_len);
    let calc = hmac::sign(&hmac::Key::new(kind.hmac(), mac_key), cipherkey);
    if constant_time::verify_slices_are_equal(calc.as_ref(), tag).is_err() {
        if key_len == 32 && kind.tag_len() == 32 {
            // imgtool < 2.3.0 derived 48 bytes for AES-256: a 16-byte KEK and OKM[16..48] as the
            // MAC key (mcuboot issue #1348). Name it, so the brand owner knows to re-sign.
            let legacy = hkdf(kind.hmac(), &z, 48);
            let calc = hmac::sign(&hmac::Key::new(kind.hmac(), &legacy[16..]), cipherkey);
            if constant_time::verify_slices_are_equal(calc.as_ref(), tag).is_ok() {
                return Err(FirmwareError::LegacyAes256Wrap);
            }
        }
        return Err(FirmwareError::EncTlvHmacMismatch);
    }
    let mut content = Zeroizing::new(cipherkey.to_vec());
    aes_ctr_zero_iv(kek, &mut content)?;
    ContentKey::new(&content)
}

/// Wraps `content` to `recipient` with the ephemeral key `ephemeral`: the new TLV value.
///
/// # Errors
/// [`FirmwareError::UnitKeyTypeMismatch`] when the recipient's curve does not fit `kind`;
/// [`FirmwareError::UnitKeyInvalid`] for a low-order X25519 key.
pub fn wrap(
    kind: EncKind,
    content: &ContentKey,
    recipient: &PublicKey,
    ephemeral: Ephemeral,
) -> Result<Vec<u8>, FirmwareError> {
    let curve = kind.curve();
    if recipient.curve() != Some(curve) {
        return Err(FirmwareError::UnitKeyTypeMismatch {
            key: recipient.kind(),
            tlv: curve.as_str(),
        });
    }
    let eph = ephemeral.key(curve)?;
    let z = eph.agree(recipient.raw()).map_err(|e| match e {
        FirmwareError::EncTlvBadPoint(why) => FirmwareError::UnitKeyInvalid(why),
        other => other,
    })?;
    let key_len = content.as_bytes().len();
    let okm = hkdf(kind.hmac(), &z, key_len + kind.tag_len());
    let (kek, mac_key) = okm.split_at(key_len);
    let mut cipherkey = content.as_bytes().to_vec();
    aes_ctr_zero_iv(kek, &mut cipherkey)?;
    let tag = hmac::sign(&hmac::Key::new(kind.hmac(), mac_key), &cipherkey);
    let mut value = Vec::with_capacity(kind.value_len(key_len));
    value.extend_from_slice(eph.public_key().raw());
    value.extend_from_slice(tag.as_ref());
    value.extend_from_slice(&cipherkey);
    Ok(value)
}
