//! A release image from import to per-unit image (FIRMWARE.md §5): the strict import (parse,
//! key TLV, unwrap, decrypt-then-hash, signature), the per-unit re-wrap that changes only the key
//! TLV's value, the comparison of a per-unit image with its release, and the decryption a unit's
//! bootloader does.

use std::io::{self, Write};

use aws_lc_rs::digest;

use crate::ecies::{self, ContentKey, EncKind};
use crate::error::FirmwareError;
use crate::image::{self, Area, ImageLayout, tlv};
use crate::keys::{Ephemeral, KeyAgreement, PublicKey};
use crate::verify;

/// The one ECIES key TLV of an image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EncTlv {
    /// Its kind.
    pub kind: EncKind,
    /// Offset of its value in the file.
    pub value_off: usize,
    /// Length of its value.
    pub len: usize,
    /// The AES key length the header flags give (16 or 32).
    pub key_len: usize,
}

impl EncTlv {
    /// The value's byte range.
    pub fn range(&self) -> std::ops::Range<usize> {
        self.value_off..self.value_off + self.len
    }
}

/// Finds the single ECIES key TLV and checks it against the flags (FIRMWARE.md §5 steps 2–3).
///
/// # Errors
/// [`FirmwareError::NotEncrypted`], [`FirmwareError::BadFlags`], [`FirmwareError::NoEncTlv`],
/// [`FirmwareError::MultipleEncTlv`], [`FirmwareError::EncTlvProtected`],
/// [`FirmwareError::UnsupportedEncTlv`], [`FirmwareError::EncTlvBadLength`].
pub fn enc_tlv(layout: &ImageLayout) -> Result<EncTlv, FirmwareError> {
    let key_len = layout.aes_key_len()?;
    let mut encs = layout.entries.iter().filter(|e| tlv::is_enc(e.typ));
    let e = match (encs.next(), encs.next()) {
        (None, _) => return Err(FirmwareError::NoEncTlv),
        (Some(_), Some(_)) => return Err(FirmwareError::MultipleEncTlv(2 + encs.count())),
        (Some(e), None) => *e,
    };
    if e.area != Area::Unprotected {
        return Err(FirmwareError::EncTlvProtected);
    }
    let kind = EncKind::from_tlv(e.typ).ok_or(FirmwareError::UnsupportedEncTlv(e.typ))?;
    let want = kind.value_len(key_len);
    if e.len != want {
        return Err(FirmwareError::EncTlvBadLength {
            typ: e.typ,
            len: e.len,
            want,
            bits: key_len * 8,
        });
    }
    Ok(EncTlv {
        kind,
        value_off: e.off,
        len: e.len,
        key_len,
    })
}

/// What the server keeps about a release after importing it (nothing secret).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReleaseInfo {
    /// The parsed layout.
    pub layout: ImageLayout,
    /// The key TLV.
    pub enc: EncTlv,
    /// SHA-256 of the file as uploaded.
    pub image_sha256: [u8; 32],
    /// The hash TLV's value: the hash of the plaintext image.
    pub plaintext_hash: Vec<u8>,
    /// Index into the signing keys given to [`import_release`] of the key that verified.
    pub signing_key: usize,
    /// Index into the release keys given to [`import_release`] of the key that opened it.
    pub release_key: usize,
}

/// A release that passed every check, with its content key.
#[derive(Debug)]
pub struct ImportedRelease {
    /// What is kept in clear.
    pub info: ReleaseInfo,
    /// The content key: keep it as secret as a CA key.
    pub content_key: ContentKey,
}

/// Limits on what is imported, and what the product's bootloader was built for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The largest image accepted, in bytes.
    pub max_image_size: u64,
    /// The one key TLV type the bootloader accepts (`MCUBOOT_ENCRYPT_EC256|X25519`, and
    /// `BOOT_HMAC_SHA512`), if known.
    pub bootloader_kind: Option<EncKind>,
    /// The one AES key length the bootloader accepts (16, or 32 with `MCUBOOT_AES_256`), if
    /// known.
    pub bootloader_key_len: Option<usize>,
}

impl Default for Limits {
    /// 16 MiB (more than any MCU's flash slot), any key TLV type and AES size.
    fn default() -> Self {
        Limits {
            max_image_size: 16 * 1024 * 1024,
            bootloader_kind: None,
            bootloader_key_len: None,
        }
    }
}

/// Imports a release image (FIRMWARE.md §5 steps 1–6).
///
/// `release_keys` are the product's release keys; the first of the TLV's curve that opens the
/// key TLV is used. `signing_keys` are the product's registered signing keys.
///
/// # Errors
/// Any refusal of FIRMWARE.md §6 that applies to a release, and
/// [`FirmwareError::TooLarge`]. With no release key of the TLV's curve,
/// [`FirmwareError::KeyTypeMismatch`].
pub fn import_release(
    img: &[u8],
    release_keys: &[&dyn KeyAgreement],
    signing_keys: &[PublicKey],
    limits: Limits,
) -> Result<ImportedRelease, FirmwareError> {
    let size = u64::try_from(img.len()).unwrap_or(u64::MAX);
    if size > limits.max_image_size {
        return Err(FirmwareError::TooLarge {
            size,
            limit: limits.max_image_size,
        });
    }
    let layout = image::parse(img)?;
    layout.check_unprotected_allow_list()?;
    let enc = enc_tlv(&layout)?;
    // A bootloader build accepts one key TLV type and one AES size (FIRMWARE.md §3): an image
    // of another would be delivered and never install.
    if limits.bootloader_kind.is_some_and(|k| k != enc.kind)
        || limits.bootloader_key_len.is_some_and(|k| k != enc.key_len)
    {
        return Err(FirmwareError::BootloaderMismatch {
            tlv: enc.kind.tlv(),
            bits: enc.key_len * 8,
        });
    }
    let value = &img[enc.range()];
    let mut outcome = None;
    for (i, key) in release_keys.iter().enumerate() {
        match ecies::unwrap(enc.kind, value, enc.key_len, *key) {
            Ok(k) => {
                outcome = Some(Ok((i, k)));
                break;
            }
            // Another key of the product may open it: keep the most telling refusal.
            Err(e @ FirmwareError::KeyTypeMismatch { .. }) => {
                outcome.get_or_insert(Err(e));
            }
            Err(e) => outcome = Some(Err(e)),
        }
    }
    let (release_key, content_key) = outcome.unwrap_or(Err(FirmwareError::KeyTypeMismatch {
        key: "none",
        tlv: enc.kind.curve().as_str(),
    }))?;
    let plaintext_hash = match verify::verify_hash(img, &layout, Some(&content_key)) {
        Ok(h) => h,
        Err(FirmwareError::HashMismatch) => {
            // A `--clear` image hashes as it is: it would hand out the plaintext.
            return Err(match verify::verify_hash(img, &layout, None) {
                Ok(_) => FirmwareError::BodyNotEncrypted,
                Err(_) => FirmwareError::HashMismatch,
            });
        }
        Err(e) => return Err(e),
    };
    let signing_key = signing_keys
        .iter()
        .position(|k| verify::verify_signature(img, &layout, k).is_ok());
    let Some(signing_key) = signing_key else {
        // Name SIG_PURE rather than a bad signature.
        if layout.entries.iter().any(|e| e.typ == tlv::SIG_PURE) {
            return Err(FirmwareError::PureSignatureUnsupported);
        }
        return Err(FirmwareError::SignatureInvalid);
    };
    let image_sha256 = sha256(img);
    Ok(ImportedRelease {
        info: ReleaseInfo {
            layout,
            enc,
            image_sha256,
            plaintext_hash,
            signing_key,
            release_key,
        },
        content_key,
    })
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest::digest(&digest::SHA256, bytes).as_ref());
    out
}

/// The per-unit key TLV value: the release's content key wrapped to `unit` (steps 8–9).
///
/// # Errors
/// [`FirmwareError::UnitKeyTypeMismatch`], [`FirmwareError::UnitKeyInvalid`].
pub fn rewrap_value(
    enc: &EncTlv,
    content_key: &ContentKey,
    unit: &PublicKey,
    ephemeral: Ephemeral,
) -> Result<Vec<u8>, FirmwareError> {
    let value = ecies::wrap(enc.kind, content_key, unit, ephemeral)?;
    if value.len() != enc.len {
        return Err(FirmwareError::Backend(
            "the wrap's length does not fit the key TLV".into(),
        ));
    }
    Ok(value)
}

/// A per-unit image: the release's bytes with the key TLV's value replaced (step 10). It
/// borrows the release and holds only the new value, so handing it out copies nothing per unit.
#[derive(Clone, Copy, Debug)]
pub struct PerUnitImage<'a> {
    release: &'a [u8],
    value_off: usize,
    value: &'a [u8],
}

impl<'a> PerUnitImage<'a> {
    /// Splices `value` into `release` at the key TLV of `enc`.
    ///
    /// # Errors
    /// [`FirmwareError::NotIdentical`] when `value` does not fit the TLV or the release is shorter
    /// than the TLV's end.
    pub fn new(release: &'a [u8], enc: &EncTlv, value: &'a [u8]) -> Result<Self, FirmwareError> {
        if value.len() != enc.len || release.len() < enc.value_off + enc.len {
            return Err(FirmwareError::NotIdentical(
                "the value does not fit the release's key TLV",
            ));
        }
        Ok(PerUnitImage {
            release,
            value_off: enc.value_off,
            value,
        })
    }

    /// The three parts, in order: release bytes before the value, the value, release bytes after.
    pub fn parts(&self) -> [&'a [u8]; 3] {
        [
            &self.release[..self.value_off],
            self.value,
            &self.release[self.value_off + self.value.len()..],
        ]
    }

    /// The image's length (the release's).
    pub fn len(&self) -> usize {
        self.release.len()
    }

    /// Whether it is empty (never, for a parsed release).
    pub fn is_empty(&self) -> bool {
        self.release.is_empty()
    }

    /// SHA-256 of the per-unit image.
    pub fn sha256(&self) -> [u8; 32] {
        let mut ctx = digest::Context::new(&digest::SHA256);
        for p in self.parts() {
            ctx.update(p);
        }
        let mut out = [0u8; 32];
        out.copy_from_slice(ctx.finish().as_ref());
        out
    }

    /// Writes the image to `w`.
    ///
    /// # Errors
    /// What `w` returns.
    pub fn write_to(&self, mut w: impl Write) -> io::Result<()> {
        for p in self.parts() {
            w.write_all(p)?;
        }
        Ok(())
    }

    /// The image as one buffer.
    pub fn to_vec(&self) -> Vec<u8> {
        self.parts().concat()
    }
}

/// Hashes the per-unit images of one release: the bytes before the key TLV's value are hashed
/// once, so each unit's SHA-256 costs only the value and what follows it.
#[derive(Clone)]
pub struct UnitHasher {
    prefix: digest::Context,
    value: std::ops::Range<usize>,
}

impl std::fmt::Debug for UnitHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UnitHasher")
            .field("value", &self.value)
            .finish_non_exhaustive()
    }
}

impl UnitHasher {
    /// The hasher of `release`'s per-unit images, whose key TLV is `enc`.
    ///
    /// # Errors
    /// [`FirmwareError::NotIdentical`] when the release is shorter than the TLV's end.
    pub fn new(release: &[u8], enc: &EncTlv) -> Result<Self, FirmwareError> {
        let value = enc.range();
        if release.len() < value.end {
            return Err(FirmwareError::NotIdentical(
                "the release is shorter than its key TLV",
            ));
        }
        let mut prefix = digest::Context::new(&digest::SHA256);
        prefix.update(&release[..value.start]);
        Ok(UnitHasher { prefix, value })
    }

    /// SHA-256 of `release` with the key TLV's value replaced by `value`: what
    /// [`PerUnitImage::sha256`] gives.
    ///
    /// # Errors
    /// [`FirmwareError::NotIdentical`] when `value` does not fit the TLV, or `release` is not
    /// the one the hasher was made for (shorter than the TLV's end).
    pub fn sha256(&self, release: &[u8], value: &[u8]) -> Result<[u8; 32], FirmwareError> {
        if value.len() != self.value.len() || release.len() < self.value.end {
            return Err(FirmwareError::NotIdentical(
                "the value does not fit the release's key TLV",
            ));
        }
        let mut ctx = self.prefix.clone();
        ctx.update(value);
        ctx.update(&release[self.value.end..]);
        let mut out = [0u8; 32];
        out.copy_from_slice(ctx.finish().as_ref());
        Ok(out)
    }
}

/// Checks that `unit_img` is `release_img` with only the key TLV's value changed (FIRMWARE.md
/// §5, "byte-identical").
///
/// # Errors
/// [`FirmwareError::NotIdentical`], or a parse refusal of either image.
pub fn check_identical(unit_img: &[u8], release_img: &[u8]) -> Result<EncTlv, FirmwareError> {
    let pu = image::parse(unit_img)?;
    let pr = image::parse(release_img)?;
    pu.check_unprotected_allow_list()?;
    let eu = enc_tlv(&pu)?;
    let er = enc_tlv(&pr)?;
    if unit_img.len() != release_img.len() {
        return Err(FirmwareError::NotIdentical(
            "the length differs from the release",
        ));
    }
    if eu != er {
        return Err(FirmwareError::NotIdentical(
            "the key TLV's type, offset or length differs from the release",
        ));
    }
    let r = eu.range();
    if unit_img[..r.start] != release_img[..r.start] || unit_img[r.end..] != release_img[r.end..] {
        return Err(FirmwareError::NotIdentical(
            "bytes outside the key TLV's value differ from the release",
        ));
    }
    Ok(eu)
}

/// What a unit's bootloader does: opens the key TLV with `unit_key`, decrypts the body and checks
/// the hash. Returns the image as MCUboot leaves it in the primary slot (header with the
/// ENCRYPTED flag kept, plaintext body, TLVs and trailing bytes unchanged), which `imgtool
/// verify` accepts.
///
/// # Errors
/// Any parse or key TLV refusal, [`FirmwareError::EncTlvHmacMismatch`] for another unit's key,
/// [`FirmwareError::HashMismatch`].
pub fn decrypt(img: &[u8], unit_key: &dyn KeyAgreement) -> Result<Vec<u8>, FirmwareError> {
    let layout = image::parse(img)?;
    let enc = enc_tlv(&layout)?;
    let key = ecies::unwrap(enc.kind, &img[enc.range()], enc.key_len, unit_key)?;
    let mut out = Vec::with_capacity(img.len());
    out.extend_from_slice(&img[..layout.body_off]);
    verify::decrypt_body(img, &layout, &key, |plain| out.extend_from_slice(plain))?;
    out.extend_from_slice(&img[layout.tlv_off..]);
    let plain_layout = image::parse(&out)?;
    verify::verify_hash(&out, &plain_layout, None)?;
    Ok(out)
}
