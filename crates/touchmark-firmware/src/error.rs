//! The one error type of this crate, with the stable refusal codes of FIRMWARE.md §6.

/// Why an image, a key or a per-unit image was refused.
///
/// Each variant has a stable machine code ([`FirmwareError::code`]), the same strings that the
/// independent reference `mcuboot_rewrap.py` prints, so that the server can return them as they
/// are.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FirmwareError {
    /// Bad magic, a file shorter than the 32-byte header, or `ih_hdr_size` < 32.
    #[error("not an MCUboot image: {0}")]
    NotMcubootImage(String),
    /// A TLV area is malformed: wrong info magic, a size that disagrees with the header, an entry
    /// that overruns its area, or an area past the end of the file.
    #[error("malformed TLV area: {0}")]
    MalformedTlv(String),
    /// Neither ENCRYPTED_AES128 nor ENCRYPTED_AES256 is set.
    #[error("the image is not encrypted (neither ENCRYPTED_AES128 nor ENCRYPTED_AES256 is set)")]
    NotEncrypted,
    /// Both encryption flags are set.
    #[error("both ENCRYPTED_AES128 and ENCRYPTED_AES256 are set")]
    BadFlags,
    /// No encryption key TLV.
    #[error("the image has no encryption key TLV")]
    NoEncTlv,
    /// More than one encryption key TLV.
    #[error("the image has {0} encryption key TLVs; exactly one is allowed")]
    MultipleEncTlv(usize),
    /// The key TLV is in the protected (hashed) area, so it cannot be re-wrapped.
    #[error("the encryption key TLV is in the protected area; it cannot be re-wrapped")]
    EncTlvProtected,
    /// An RSA or AES key-wrap TLV: only ECIES (0x32, 0x33, 0x34) is supported.
    #[error("encryption key TLV type 0x{0:02x} is not ECIES (0x32, 0x33 or 0x34)")]
    UnsupportedEncTlv(u16),
    /// The key TLV's length does not fit its type and the AES size of the flags.
    #[error("encryption key TLV 0x{typ:02x} is {len} bytes; AES-{bits} needs {want}")]
    EncTlvBadLength {
        /// The TLV type.
        typ: u16,
        /// Its length.
        len: usize,
        /// The length its type and the AES size need.
        want: usize,
        /// AES key size in bits, from the header flags.
        bits: usize,
    },
    /// A TLV type outside MCUboot's allow list in the unprotected area.
    #[error("TLV type 0x{0:02x} is not allowed in the unprotected area")]
    UnprotectedTlvNotAllowed(u16),
    /// The release key is of the other curve than the key TLV.
    #[error("the release key is {key}, the image's key TLV needs {tlv}")]
    KeyTypeMismatch {
        /// The key's curve.
        key: &'static str,
        /// The curve the TLV needs.
        tlv: &'static str,
    },
    /// The ephemeral public key in the key TLV is not a valid point (or gives an all-zero X25519
    /// secret).
    #[error("the key TLV's ephemeral public key is invalid: {0}")]
    EncTlvBadPoint(&'static str),
    /// The key TLV's HMAC tag does not verify: the wrong private key, or a tampered TLV.
    #[error("the key TLV's HMAC tag does not verify: wrong private key or tampered key TLV")]
    EncTlvHmacMismatch,
    /// An AES-256 key TLV made by imgtool < 2.3.0 (16-byte KEK), which MCUboot cannot open.
    #[error(
        "the AES-256 key TLV was made by imgtool < 2.3.0 (16-byte KEK), which MCUboot cannot \
         open: sign again with imgtool >= 2.3.0"
    )]
    LegacyAes256Wrap,
    /// The ENCRYPTED flag is set but the body is plaintext (`imgtool sign --clear`).
    #[error("the ENCRYPTED flag is set but the body is plaintext (imgtool sign --clear)")]
    BodyNotEncrypted,
    /// Not exactly one hash TLV in the unprotected area.
    #[error("the image has {0} hash TLVs in its unprotected area; exactly one is needed")]
    NoHashTlv(usize),
    /// The decrypted image does not match its hash TLV.
    #[error("the decrypted image does not match its hash TLV")]
    HashMismatch,
    /// No signature TLV verifies with any of the given signing keys.
    #[error("no signature TLV verifies with a registered signing key")]
    SignatureInvalid,
    /// SIG_PURE images (signature over the image, not its hash) are not supported.
    #[error("SIG_PURE images are not supported")]
    PureSignatureUnsupported,
    /// The unit's encryption key is of the other curve than the release's key TLV.
    #[error("the unit key is {key}, the image needs {tlv}")]
    UnitKeyTypeMismatch {
        /// The unit key's curve.
        key: &'static str,
        /// The curve the TLV needs.
        tlv: &'static str,
    },
    /// The unit's encryption key is invalid (a low-order X25519 point, a point off the curve).
    #[error("the unit key is invalid: {0}")]
    UnitKeyInvalid(&'static str),
    /// A per-unit image differs from its release outside the key TLV's value.
    #[error("the per-unit image differs from its release: {0}")]
    NotIdentical(&'static str),
    /// The image is over the configured size limit.
    #[error("the image is {size} bytes, over the limit of {limit}")]
    TooLarge {
        /// The image's size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// The image's key TLV type or AES size is not the one the product's bootloader was built
    /// for.
    #[error(
        "key TLV 0x{tlv:02x} with AES-{bits} is not what the product's bootloader was built for"
    )]
    BootloaderMismatch {
        /// The image's key TLV type.
        tlv: u16,
        /// The image's AES key size in bits.
        bits: usize,
    },
    /// A key file or key bytes could not be read as the expected kind of key.
    #[error("invalid key: {0}")]
    KeyInvalid(String),
    /// The key provider cannot do key agreement, or the crypto backend failed.
    #[error("key agreement failed: {0}")]
    Backend(String),
}

impl FirmwareError {
    /// The stable machine code (FIRMWARE.md §6).
    pub fn code(&self) -> &'static str {
        match self {
            FirmwareError::NotMcubootImage(_) => "not_mcuboot_image",
            FirmwareError::MalformedTlv(_) => "malformed_tlv",
            FirmwareError::NotEncrypted => "not_encrypted",
            FirmwareError::BadFlags => "bad_flags",
            FirmwareError::NoEncTlv => "no_enc_tlv",
            FirmwareError::MultipleEncTlv(_) => "multiple_enc_tlv",
            FirmwareError::EncTlvProtected => "enc_tlv_protected",
            FirmwareError::UnsupportedEncTlv(_) => "unsupported_enc_tlv",
            FirmwareError::EncTlvBadLength { .. } => "enc_tlv_bad_length",
            FirmwareError::UnprotectedTlvNotAllowed(_) => "unprotected_tlv_not_allowed",
            FirmwareError::KeyTypeMismatch { .. } => "key_type_mismatch",
            FirmwareError::EncTlvBadPoint(_) => "enc_tlv_bad_point",
            FirmwareError::EncTlvHmacMismatch => "enc_tlv_hmac_mismatch",
            FirmwareError::LegacyAes256Wrap => "legacy_aes256_wrap",
            FirmwareError::BodyNotEncrypted => "body_not_encrypted",
            FirmwareError::NoHashTlv(_) => "no_hash_tlv",
            FirmwareError::HashMismatch => "hash_mismatch",
            FirmwareError::SignatureInvalid => "signature_invalid",
            FirmwareError::PureSignatureUnsupported => "pure_signature_unsupported",
            FirmwareError::UnitKeyTypeMismatch { .. } => "unit_key_type_mismatch",
            FirmwareError::UnitKeyInvalid(_) => "unit_key_invalid",
            FirmwareError::NotIdentical(_) => "not_identical",
            FirmwareError::TooLarge { .. } => "image_too_large",
            FirmwareError::BootloaderMismatch { .. } => "bootloader_mismatch",
            FirmwareError::KeyInvalid(_) => "key_invalid",
            FirmwareError::Backend(_) => "key_agreement_failed",
        }
    }
}
