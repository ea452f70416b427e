//! Builds a release image the way `imgtool sign --encrypt` does (Ed25519 signing key, no
//! protected TLVs), for the demo, the benchmark and tests that need a release without imgtool.
//! Given the same content key, the bytes are imgtool's outside the key TLV's value (the tests
//! compare with vectors made by imgtool 2.5.0).

use aws_lc_rs::digest;
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair as _};

use crate::ecies::{self, ContentKey, EncKind};
use crate::error::FirmwareError;
use crate::image::{
    F_ENCRYPTED_AES128, F_ENCRYPTED_AES256, IMAGE_HEADER_SIZE, IMAGE_MAGIC, TLV_INFO_MAGIC, tlv,
};
use crate::keys::{Ephemeral, PublicKey};
use crate::verify;

/// What `imgtool sign` is told.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BuildOptions {
    /// `--header-size` (with `--pad-header`: bytes 32.. are 0xff).
    pub header_size: u16,
    /// `--version` as major, minor, revision, build.
    pub version: (u8, u8, u16, u32),
    /// The key TLV's kind (`--encrypt` key type, `--hmac-sha`).
    pub kind: EncKind,
}

impl Default for BuildOptions {
    fn default() -> Self {
        BuildOptions {
            header_size: 0x200,
            version: (1, 0, 0, 0),
            kind: EncKind::X25519,
        }
    }
}

fn push_tlv(out: &mut Vec<u8>, typ: u16, value: &[u8]) -> Result<(), FirmwareError> {
    let len = u16::try_from(value.len())
        .map_err(|_| FirmwareError::MalformedTlv("TLV value over 64 KiB".into()))?;
    out.extend_from_slice(&typ.to_le_bytes());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(value);
    Ok(())
}

/// Signs and encrypts `payload` as imgtool does: header (ENCRYPTED flag of the content key's
/// size), body zero-padded so that header and body end on 16 bytes and encrypted with AES-CTR,
/// then SHA256, KEYHASH, ED25519 and the key TLV wrapped to `release`.
///
/// `signing_pkcs8` is the Ed25519 signing key as PKCS#8 DER (what `imgtool keygen -t ed25519`
/// writes).
///
/// # Errors
/// [`FirmwareError::KeyInvalid`] for a bad signing key, [`FirmwareError::TooLarge`] for a body
/// over 4 GiB, and the errors of [`ecies::wrap`].
pub fn build_release(
    payload: &[u8],
    opts: &BuildOptions,
    signing_pkcs8: &[u8],
    release: &PublicKey,
    content_key: &ContentKey,
    ephemeral: Ephemeral,
) -> Result<Vec<u8>, FirmwareError> {
    let signer = Ed25519KeyPair::from_pkcs8_maybe_unchecked(signing_pkcs8)
        .map_err(|e| FirmwareError::KeyInvalid(format!("Ed25519 signing key: {e}")))?;
    let hdr = usize::from(opts.header_size);
    if hdr < IMAGE_HEADER_SIZE {
        return Err(FirmwareError::NotMcubootImage("header size < 32".into()));
    }
    let padded = (hdr + payload.len()).div_ceil(16) * 16 - hdr;
    let img_size = u32::try_from(padded).map_err(|_| FirmwareError::TooLarge {
        size: u64::try_from(padded).unwrap_or(u64::MAX),
        limit: u64::from(u32::MAX),
    })?;
    let flags = if content_key.as_bytes().len() == 32 {
        F_ENCRYPTED_AES256
    } else {
        F_ENCRYPTED_AES128
    };
    let mut img = vec![0xffu8; hdr];
    let (major, minor, revision, build) = opts.version;
    let mut header = Vec::with_capacity(IMAGE_HEADER_SIZE);
    header.extend_from_slice(&IMAGE_MAGIC.to_le_bytes());
    header.extend_from_slice(&0u32.to_le_bytes());
    header.extend_from_slice(&opts.header_size.to_le_bytes());
    header.extend_from_slice(&0u16.to_le_bytes());
    header.extend_from_slice(&img_size.to_le_bytes());
    header.extend_from_slice(&flags.to_le_bytes());
    header.extend_from_slice(&[major, minor]);
    header.extend_from_slice(&revision.to_le_bytes());
    header.extend_from_slice(&build.to_le_bytes());
    header.extend_from_slice(&0u32.to_le_bytes());
    img[..IMAGE_HEADER_SIZE].copy_from_slice(&header);
    img.extend_from_slice(payload);
    img.resize(hdr + padded, 0);
    // The hash is over the plaintext (imgtool hashes before it encrypts).
    let hash = digest::digest(&digest::SHA256, &img);
    let signing_spki = PublicKey::Ed25519(
        signer
            .public_key()
            .as_ref()
            .try_into()
            .map_err(|_| FirmwareError::KeyInvalid("Ed25519 public key".into()))?,
    )
    .spki_der();
    let key_hash = digest::digest(&digest::SHA256, &signing_spki);
    let signature = signer.sign(hash.as_ref());
    let wrapped = ecies::wrap(opts.kind, content_key, release, ephemeral)?;
    verify::encrypt_in_place(content_key, &mut img[hdr..])?;
    let mut tlvs = Vec::new();
    push_tlv(&mut tlvs, tlv::SHA256, hash.as_ref())?;
    push_tlv(&mut tlvs, tlv::KEYHASH, key_hash.as_ref())?;
    push_tlv(&mut tlvs, tlv::ED25519, signature.as_ref())?;
    push_tlv(&mut tlvs, opts.kind.tlv(), &wrapped)?;
    let tot = u16::try_from(tlvs.len() + 4)
        .map_err(|_| FirmwareError::MalformedTlv("TLV area over 64 KiB".into()))?;
    img.extend_from_slice(&TLV_INFO_MAGIC.to_le_bytes());
    img.extend_from_slice(&tot.to_le_bytes());
    img.extend_from_slice(&tlvs);
    Ok(img)
}
