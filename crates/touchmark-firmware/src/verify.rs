//! The hash TLV over the plaintext image and the signature TLV over the hash (FIRMWARE.md §2),
//! with a streaming body decryption so that no plaintext copy of the image is made.

use aws_lc_rs::cipher::{DecryptionContext, StreamingDecryptingKey};
use aws_lc_rs::digest::{self, Digest};
use aws_lc_rs::iv::FixedLength;
use aws_lc_rs::signature::{self, ECDSA_P256_SHA256_ASN1, UnparsedPublicKey};

use crate::ecies::ContentKey;
use crate::error::FirmwareError;
use crate::image::{Area, ImageLayout, tlv};
use crate::keys::PublicKey;

/// The chunk in which the body is decrypted and hashed.
const CHUNK: usize = 64 * 1024;

fn hash_alg(typ: u16) -> &'static digest::Algorithm {
    match typ {
        tlv::SHA384 => &digest::SHA384,
        tlv::SHA512 => &digest::SHA512,
        _ => &digest::SHA256,
    }
}

/// Decrypts the body of `img` with `key` chunk by chunk, handing each plaintext chunk to `sink`.
/// The counter block for body offset `o` is `0^12 ‖ BE32(o >> 4)` (MCUboot's
/// `boot_enc_decrypt()`), which is AES-CTR with a zero IV for any body under 64 GiB.
///
/// # Errors
/// [`FirmwareError::Backend`] if the cipher fails.
pub fn decrypt_body(
    img: &[u8],
    layout: &ImageLayout,
    key: &ContentKey,
    mut sink: impl FnMut(&[u8]),
) -> Result<(), FirmwareError> {
    let backend = |_| FirmwareError::Backend("AES-CTR".into());
    let mut dec = StreamingDecryptingKey::ctr(
        key.cipher_key()?,
        DecryptionContext::Iv128(FixedLength::from([0u8; 16])),
    )
    .map_err(backend)?;
    let mut out = vec![0u8; CHUNK + 16];
    for chunk in img[layout.body_off..layout.tlv_off].chunks(CHUNK) {
        let done = dec.update(chunk, &mut out).map_err(backend)?;
        sink(done.written());
    }
    let done = dec.finish(&mut out).map_err(backend)?;
    sink(done.written());
    Ok(())
}

/// The image hash over `[0, hashed_len)` with the body decrypted by `key`, or over the bytes as
/// they are when `key` is `None`.
///
/// # Errors
/// [`FirmwareError::NoHashTlv`], [`FirmwareError::Backend`].
pub fn image_hash(
    img: &[u8],
    layout: &ImageLayout,
    key: Option<&ContentKey>,
) -> Result<Digest, FirmwareError> {
    let hash = layout.hash_tlv()?;
    let mut ctx = digest::Context::new(hash_alg(hash.typ));
    match key {
        Some(key) => {
            ctx.update(&img[..layout.body_off]);
            decrypt_body(img, layout, key, |plain| ctx.update(plain))?;
            ctx.update(&img[layout.tlv_off..layout.hashed_len]);
        }
        None => ctx.update(&img[..layout.hashed_len]),
    }
    Ok(ctx.finish())
}

/// Whether the hash TLV matches the image with its body decrypted by `key` (or as it is).
///
/// # Errors
/// [`FirmwareError::HashMismatch`], [`FirmwareError::NoHashTlv`].
pub fn verify_hash(
    img: &[u8],
    layout: &ImageLayout,
    key: Option<&ContentKey>,
) -> Result<Vec<u8>, FirmwareError> {
    let want = &img[layout.hash_tlv()?.range()];
    let got = image_hash(img, layout, key)?;
    if got.as_ref() != want {
        return Err(FirmwareError::HashMismatch);
    }
    Ok(got.as_ref().to_vec())
}

/// Checks the signature TLVs against one signing key, as `bootutil_verify_sig` does: a key id
/// TLV (KEYHASH or PUBKEY) that names the key, followed by a signature TLV that verifies over the
/// hash TLV's value.
///
/// # Errors
/// [`FirmwareError::SignatureInvalid`], [`FirmwareError::PureSignatureUnsupported`],
/// [`FirmwareError::NoHashTlv`].
pub fn verify_signature(
    img: &[u8],
    layout: &ImageLayout,
    key: &PublicKey,
) -> Result<(), FirmwareError> {
    if layout.entries.iter().any(|e| e.typ == tlv::SIG_PURE) {
        return Err(FirmwareError::PureSignatureUnsupported);
    }
    let hash = layout.hash_tlv()?;
    let digest_value = &img[hash.range()];
    let spki = key.spki_der();
    let (sig_type, verifier): (u16, &'static dyn signature::VerificationAlgorithm) = match key {
        PublicKey::P256(_) => (tlv::ECDSASIG, &ECDSA_P256_SHA256_ASN1),
        PublicKey::Ed25519(_) => (tlv::ED25519, &signature::ED25519),
        PublicKey::X25519(_) => return Err(FirmwareError::SignatureInvalid),
    };
    let key_hash = digest::digest(hash_alg(hash.typ), &spki);
    let mut key_ok = false;
    for e in layout
        .entries
        .iter()
        .filter(|e| e.area == Area::Unprotected)
    {
        let v = &img[e.range()];
        match e.typ {
            tlv::KEYHASH => key_ok = v == key_hash.as_ref(),
            tlv::PUBKEY => key_ok = v == spki.as_slice(),
            t if t == sig_type && key_ok => {
                let ok = match key {
                    PublicKey::P256(point) => {
                        // `--pad-sig` zero-pads the DER to 72 bytes: keep the SEQUENCE only.
                        let der_len = v.get(1).map(|l| usize::from(*l) + 2).unwrap_or(0);
                        let sig = v.get(..der_len).unwrap_or(v);
                        // The signature is over the 32-byte hash as a prehashed digest.
                        match digest::Digest::import_less_safe(digest_value, &digest::SHA256) {
                            Ok(d) => UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, &point[..])
                                .verify_digest(&d, sig)
                                .is_ok(),
                            Err(_) => false,
                        }
                    }
                    _ => UnparsedPublicKey::new(verifier, key.raw())
                        .verify(digest_value, v)
                        .is_ok(),
                };
                if ok {
                    return Ok(());
                }
            }
            _ => {}
        }
    }
    Err(FirmwareError::SignatureInvalid)
}

/// Encrypts (or decrypts: CTR is its own inverse) `body` in place with a zero counter block.
///
/// # Errors
/// [`FirmwareError::Backend`] if the cipher fails.
pub fn encrypt_in_place(key: &ContentKey, body: &mut [u8]) -> Result<(), FirmwareError> {
    use aws_lc_rs::cipher::{EncryptingKey, EncryptionContext};
    let key = EncryptingKey::ctr(key.cipher_key()?)
        .map_err(|_| FirmwareError::Backend("AES-CTR".into()))?;
    key.less_safe_encrypt(body, EncryptionContext::Iv128(FixedLength::from([0u8; 16])))
        .map_err(|_| FirmwareError::Backend("AES-CTR".into()))?;
    Ok(())
}
