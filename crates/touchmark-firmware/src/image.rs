//! Strict parsing of an MCUboot image: the 32-byte header and the protected and unprotected TLV
//! areas (FIRMWARE.md §1). Every length is checked against the file before it is used; entries
//! must tile each area exactly, which is stricter than MCUboot's own iterator (`tlv.c`).

use crate::error::FirmwareError;

/// `ih_magic`.
pub const IMAGE_MAGIC: u32 = 0x96f3_b83d;
/// The size of the fixed header.
pub const IMAGE_HEADER_SIZE: usize = 32;
/// The info magic of the unprotected TLV area.
pub const TLV_INFO_MAGIC: u16 = 0x6907;
/// The info magic of the protected TLV area.
pub const TLV_PROT_INFO_MAGIC: u16 = 0x6908;
/// `IMAGE_F_ENCRYPTED_AES128`.
pub const F_ENCRYPTED_AES128: u32 = 0x04;
/// `IMAGE_F_ENCRYPTED_AES256`.
pub const F_ENCRYPTED_AES256: u32 = 0x08;

/// TLV types this crate acts on (`image.h`).
pub mod tlv {
    /// SHA-256 of the signing key's SubjectPublicKeyInfo.
    pub const KEYHASH: u16 = 0x01;
    /// The signing key's SubjectPublicKeyInfo.
    pub const PUBKEY: u16 = 0x02;
    /// SHA-256 image hash.
    pub const SHA256: u16 = 0x10;
    /// SHA-384 image hash.
    pub const SHA384: u16 = 0x11;
    /// SHA-512 image hash.
    pub const SHA512: u16 = 0x12;
    /// RSA-2048 PSS signature.
    pub const RSA2048_PSS: u16 = 0x20;
    /// ECDSA-P224 signature (legacy).
    pub const ECDSA224: u16 = 0x21;
    /// ECDSA signature (DER).
    pub const ECDSASIG: u16 = 0x22;
    /// RSA-3072 PSS signature.
    pub const RSA3072_PSS: u16 = 0x23;
    /// Ed25519 signature over the hash TLV value.
    pub const ED25519: u16 = 0x24;
    /// Signature over the image itself (not supported).
    pub const SIG_PURE: u16 = 0x25;
    /// RSA-OAEP wrapped key.
    pub const ENCRSA2048: u16 = 0x30;
    /// AES key-wrapped key.
    pub const ENCKW: u16 = 0x31;
    /// ECIES-P256 wrapped key.
    pub const ENCEC256: u16 = 0x32;
    /// ECIES-X25519 wrapped key.
    pub const ENCX25519: u16 = 0x33;
    /// ECIES-X25519 wrapped key with SHA-512 HKDF and HMAC.
    pub const ENCX25519_SHA512: u16 = 0x34;

    /// Whether `t` is an encryption key TLV of any kind.
    pub fn is_enc(t: u16) -> bool {
        (ENCRSA2048..=ENCX25519_SHA512).contains(&t)
    }

    /// MCUboot's `allowed_unprot_tlvs` (`image_validate.c`, `MCUBOOT_USE_TLV_ALLOW_LIST`).
    pub fn allowed_unprotected(t: u16) -> bool {
        matches!(t, KEYHASH | PUBKEY | SHA256..=SHA512 | RSA2048_PSS..=SIG_PURE) || is_enc(t)
    }
}

/// Which TLV area an entry is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Area {
    /// Covered by the hash (and so by the signature).
    Protected,
    /// Not hashed: hash, key id, signature and key TLVs.
    Unprotected,
}

/// One TLV entry: where its value is in the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TlvEntry {
    /// The area it is in.
    pub area: Area,
    /// Its type.
    pub typ: u16,
    /// Offset of its 4-byte header in the file.
    pub tlv_off: usize,
    /// Offset of its value in the file.
    pub off: usize,
    /// Length of its value.
    pub len: usize,
}

impl TlvEntry {
    /// The value's byte range.
    pub fn range(&self) -> std::ops::Range<usize> {
        self.off..self.off + self.len
    }
}

/// The header fields (FIRMWARE.md §1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// `ih_load_addr`.
    pub load_addr: u32,
    /// `ih_hdr_size`: the offset of the body.
    pub hdr_size: u16,
    /// `ih_protect_tlv_size`.
    pub protect_tlv_size: u16,
    /// `ih_img_size`: the body's length.
    pub img_size: u32,
    /// `ih_flags`.
    pub flags: u32,
    /// `ih_ver`: major, minor, revision, build.
    pub version: (u8, u8, u16, u32),
}

impl Header {
    /// The version as imgtool writes it, `major.minor.revision+build`.
    pub fn version_string(&self) -> String {
        let (a, b, c, d) = self.version;
        format!("{a}.{b}.{c}+{d}")
    }
}

/// A parsed image: offsets into the bytes it was parsed from (it borrows nothing).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageLayout {
    /// The header.
    pub header: Header,
    /// Offset of the body (`hdr_size`).
    pub body_off: usize,
    /// Offset of the TLV areas (`hdr_size + img_size`): the end of the body.
    pub tlv_off: usize,
    /// Offset of the unprotected area's info header.
    pub unprot_off: usize,
    /// The end of the unprotected area: the bytes after it are trailing bytes (`--pad`).
    pub tlv_end: usize,
    /// Bytes `[0, hashed_len)` are hashed: header, body and protected area.
    pub hashed_len: usize,
    /// The entries, protected first, in file order.
    pub entries: Vec<TlvEntry>,
}

fn u16_at(b: &[u8], off: usize) -> Option<u16> {
    let s = b.get(off..off.checked_add(2)?)?;
    Some(u16::from_le_bytes([s[0], s[1]]))
}

fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    let s = b.get(off..off.checked_add(4)?)?;
    Some(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

/// Walks the entries of `[start, end)`; they must tile it exactly.
fn walk(
    img: &[u8],
    start: usize,
    end: usize,
    area: Area,
    out: &mut Vec<TlvEntry>,
) -> Result<(), FirmwareError> {
    let name = match area {
        Area::Protected => "protected",
        Area::Unprotected => "unprotected",
    };
    let mut off = start;
    while off < end {
        let (Some(typ), Some(len)) = (u16_at(img, off), u16_at(img, off + 2)) else {
            return Err(FirmwareError::MalformedTlv(format!(
                "{name} TLV header at {off} runs past the end of the file"
            )));
        };
        if end - off < 4 {
            return Err(FirmwareError::MalformedTlv(format!(
                "{name} TLV header at {off} overruns the area's end {end}"
            )));
        }
        let len = usize::from(len);
        if len > end - off - 4 {
            return Err(FirmwareError::MalformedTlv(format!(
                "{name} TLV 0x{typ:02x} at {off} (length {len}) overruns the area's end {end}"
            )));
        }
        out.push(TlvEntry {
            area,
            typ,
            tlv_off: off,
            off: off + 4,
            len,
        });
        off += 4 + len;
    }
    Ok(())
}

/// Parses an MCUboot image.
///
/// # Errors
/// [`FirmwareError::NotMcubootImage`] or [`FirmwareError::MalformedTlv`] (FIRMWARE.md §6).
pub fn parse(img: &[u8]) -> Result<ImageLayout, FirmwareError> {
    let short = || FirmwareError::NotMcubootImage("shorter than the 32-byte header".into());
    if img.len() < IMAGE_HEADER_SIZE {
        return Err(short());
    }
    let magic = u32_at(img, 0).ok_or_else(short)?;
    if magic != IMAGE_MAGIC {
        return Err(FirmwareError::NotMcubootImage(format!(
            "bad magic 0x{magic:08x}"
        )));
    }
    let field16 = |o| u16_at(img, o).ok_or_else(short);
    let field32 = |o| u32_at(img, o).ok_or_else(short);
    let header = Header {
        load_addr: field32(4)?,
        hdr_size: field16(8)?,
        protect_tlv_size: field16(10)?,
        img_size: field32(12)?,
        flags: field32(16)?,
        version: (img[20], img[21], field16(22)?, field32(24)?),
    };
    let hdr_size = usize::from(header.hdr_size);
    if hdr_size < IMAGE_HEADER_SIZE {
        return Err(FirmwareError::NotMcubootImage(format!(
            "ih_hdr_size {hdr_size} < 32"
        )));
    }
    // u32 fits in usize on every target this runs on (64-bit); checked arithmetic anyway.
    let tlv_off = usize::try_from(header.img_size)
        .ok()
        .and_then(|s| hdr_size.checked_add(s))
        .ok_or_else(|| FirmwareError::MalformedTlv("ih_img_size overflows".into()))?;
    let (Some(p_magic), Some(p_tot)) = (u16_at(img, tlv_off), u16_at(img, tlv_off + 2)) else {
        return Err(FirmwareError::MalformedTlv(format!(
            "TLV area at {tlv_off} is beyond the end of the file ({} bytes)",
            img.len()
        )));
    };
    let prot = usize::from(header.protect_tlv_size);
    let mut entries = Vec::new();
    if p_magic == TLV_PROT_INFO_MAGIC {
        if usize::from(p_tot) != prot || prot < 4 {
            return Err(FirmwareError::MalformedTlv(format!(
                "protected it_tlv_tot {p_tot} != ih_protect_tlv_size {prot}"
            )));
        }
        if tlv_off + prot + 4 > img.len() {
            return Err(FirmwareError::MalformedTlv(
                "protected TLV area is beyond the end of the file".into(),
            ));
        }
        walk(
            img,
            tlv_off + 4,
            tlv_off + prot,
            Area::Protected,
            &mut entries,
        )?;
    } else if prot != 0 {
        return Err(FirmwareError::MalformedTlv(format!(
            "ih_protect_tlv_size {prot} but no 0x6908 info header"
        )));
    }
    let unprot_off = tlv_off + prot;
    let (Some(u_magic), Some(u_tot)) = (u16_at(img, unprot_off), u16_at(img, unprot_off + 2))
    else {
        return Err(FirmwareError::MalformedTlv(
            "unprotected TLV area is beyond the end of the file".into(),
        ));
    };
    if u_magic != TLV_INFO_MAGIC {
        return Err(FirmwareError::MalformedTlv(format!(
            "unprotected TLV info magic 0x{u_magic:04x} != 0x6907"
        )));
    }
    let u_tot = usize::from(u_tot);
    let tlv_end = unprot_off + u_tot;
    if u_tot < 4 || tlv_end > img.len() {
        return Err(FirmwareError::MalformedTlv(format!(
            "unprotected it_tlv_tot {u_tot} is out of range"
        )));
    }
    walk(
        img,
        unprot_off + 4,
        tlv_end,
        Area::Unprotected,
        &mut entries,
    )?;
    Ok(ImageLayout {
        header,
        body_off: hdr_size,
        tlv_off,
        unprot_off,
        tlv_end,
        hashed_len: tlv_off + prot,
        entries,
    })
}

impl ImageLayout {
    /// The AES key length the flags give: 16 or 32.
    ///
    /// # Errors
    /// [`FirmwareError::NotEncrypted`] or [`FirmwareError::BadFlags`].
    pub fn aes_key_len(&self) -> Result<usize, FirmwareError> {
        let f = self.header.flags;
        match (f & F_ENCRYPTED_AES128 != 0, f & F_ENCRYPTED_AES256 != 0) {
            (true, true) => Err(FirmwareError::BadFlags),
            (false, false) => Err(FirmwareError::NotEncrypted),
            (true, false) => Ok(16),
            (false, true) => Ok(32),
        }
    }

    /// Refuses a TLV type outside MCUboot's allow list in the unprotected area.
    ///
    /// # Errors
    /// [`FirmwareError::UnprotectedTlvNotAllowed`].
    pub fn check_unprotected_allow_list(&self) -> Result<(), FirmwareError> {
        match self
            .entries
            .iter()
            .find(|e| e.area == Area::Unprotected && !tlv::allowed_unprotected(e.typ))
        {
            Some(e) => Err(FirmwareError::UnprotectedTlvNotAllowed(e.typ)),
            None => Ok(()),
        }
    }

    /// The single hash TLV of the unprotected area.
    ///
    /// # Errors
    /// [`FirmwareError::NoHashTlv`] when there is not exactly one.
    pub fn hash_tlv(&self) -> Result<TlvEntry, FirmwareError> {
        let mut hashes = self.entries.iter().filter(|e| {
            e.area == Area::Unprotected && matches!(e.typ, tlv::SHA256 | tlv::SHA384 | tlv::SHA512)
        });
        match (hashes.next(), hashes.next()) {
            (Some(e), None) => Ok(*e),
            (None, _) => Err(FirmwareError::NoHashTlv(0)),
            (Some(_), Some(_)) => Err(FirmwareError::NoHashTlv(2 + hashes.count())),
        }
    }
}
