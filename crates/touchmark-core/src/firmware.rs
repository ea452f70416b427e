//! Firmware (design.md §7, `docs/firmware.md`): a product's release encryption keys, whose
//! private halves the installation's key provider holds, and the public keys that sign its
//! images, which the brand owner registers (Touchmark never holds a firmware signing key).

use time::OffsetDateTime;

use crate::event::Sha256Hash;
use crate::id::{OrderId, ProductId};
use crate::serial::Serial;

/// The algorithms of a release encryption key, by imgtool's names (`imgtool keygen -t`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReleaseKeyAlgorithm {
    /// X25519: images with the ENCX25519 TLV (0x33).
    X25519,
    /// ECDH on P-256: images with the ENCEC256 TLV (0x32).
    Ec256,
}

impl ReleaseKeyAlgorithm {
    /// Every algorithm.
    pub const ALL: [Self; 2] = [Self::X25519, Self::Ec256];

    /// `x25519` or `ec256`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::X25519 => "x25519",
            Self::Ec256 => "ec256",
        }
    }

    /// Parses [`ReleaseKeyAlgorithm::as_str`].
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == text)
    }
}

impl std::fmt::Display for ReleaseKeyAlgorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A release encryption key of a product. The private key lives in the installation's key
/// provider under [`ReleaseKey::key_name`]; only its public half is stored here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseKey {
    /// The key's id, unique in the installation (`rk-<hex>`).
    pub id: String,
    /// The product whose releases are encrypted to it.
    pub product: ProductId,
    /// Its algorithm.
    pub algorithm: ReleaseKeyAlgorithm,
    /// The public key, a `PUBLIC KEY` PEM (SubjectPublicKeyInfo), for `imgtool sign --encrypt`.
    pub public_key_pem: String,
    /// SHA-256 of the public key's DER SubjectPublicKeyInfo.
    pub public_key_sha256: Sha256Hash,
    /// When it was made.
    pub created_at: OffsetDateTime,
}

impl ReleaseKey {
    /// The name of the private key in the installation's key provider.
    pub fn key_name(&self) -> String {
        Self::key_name_of(&self.id)
    }

    /// The key provider's name for release key `id`.
    pub fn key_name_of(id: &str) -> String {
        format!("release-{}", id.to_ascii_lowercase())
    }
}

/// A public key that signs a product's firmware images (`imgtool sign --key`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirmwareKey {
    /// The product.
    pub product: ProductId,
    /// The key id: SHA-256 of its DER SubjectPublicKeyInfo, what imgtool's KEYHASH TLV holds.
    pub key_id: Sha256Hash,
    /// `p256` (ECDSA) or `ed25519`.
    pub algorithm: String,
    /// The public key, a `PUBLIC KEY` PEM.
    pub public_key_pem: String,
    /// When it was registered.
    pub created_at: OffsetDateTime,
}

/// A release: an MCUboot image of a product, signed and encrypted by the brand owner, stored
/// as uploaded (ciphertext). Nothing secret is kept with it: the content key is unwrapped again
/// with the release key whenever it is needed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Release {
    /// The release's id, unique in the installation (`rel-<hex>`).
    pub id: String,
    /// The product.
    pub product: ProductId,
    /// The image header's version, `major.minor.revision+build`; unique per product.
    pub version: String,
    /// SHA-256 of the image as uploaded.
    pub image_sha256: Sha256Hash,
    /// The image's size in bytes.
    pub image_size: u64,
    /// The id of the registered signing key that verified it.
    pub signing_key: Sha256Hash,
    /// The id of the release key its content key is wrapped to.
    pub release_key: String,
    /// The hash TLV's value (the hash of the plaintext image), hex.
    pub plaintext_hash: String,
    /// SHA-256 of the SBOM as uploaded, if one was.
    pub sbom_sha256: Option<Sha256Hash>,
    /// When it was uploaded.
    pub created_at: OffsetDateTime,
    /// When it was withdrawn, if it was.
    pub withdrawn_at: Option<OffsetDateTime>,
}

/// A release to store, with its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRelease {
    /// What is recorded about it.
    pub release: Release,
    /// The image as uploaded.
    pub image: Vec<u8>,
    /// The SBOM as uploaded (CycloneDX 1.6 JSON, valid against its schema).
    pub sbom: Option<Vec<u8>>,
    /// The SBOM's components that name a package URL, once each (empty without an SBOM).
    pub components: Vec<ReleaseComponent>,
}

/// A component of a release's SBOM, indexed by its package URL so that a vulnerability's
/// component can be joined to the releases that contain it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseComponent {
    /// The match key: the package URL without version, qualifiers or subpath
    /// ([`crate::vuln::PackageUrl::key`]).
    pub key: String,
    /// The package URL as the SBOM writes it.
    pub purl: String,
    /// The component's version: the package URL's, or else the component's `version`.
    pub version: Option<String>,
}

/// A release whose SBOM holds a component, as found by its match key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentRelease {
    /// The release's id.
    pub release: String,
    /// Its product.
    pub product: ProductId,
    /// The release's version.
    pub version: String,
    /// The component's package URL, as the SBOM writes it.
    pub purl: String,
    /// The component's version, if the SBOM gives one.
    pub component_version: Option<String>,
}

/// A unit's firmware: its order's release, with the release's content key wrapped to the
/// unit's own encryption key. The unit's image is the release's bytes with the key TLV's value
/// replaced by `wrap`; nothing else differs (`docs/firmware.md`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitFirmware {
    /// The order.
    pub order: OrderId,
    /// The unit's serial.
    pub serial: Serial,
    /// The release's id.
    pub release: String,
    /// The key TLV's new value.
    pub wrap: Vec<u8>,
    /// SHA-256 of the unit's image.
    pub image_sha256: Sha256Hash,
    /// The unit's encryption key the wrap is made to (DER SubjectPublicKeyInfo), as bound at
    /// provisioning; `None` only for units issued before it was stored.
    pub encryption_key: Option<Vec<u8>>,
}

/// The domain of the signature that binds a unit's encryption key to its identity key.
pub const BINDING_DOMAIN: &[u8] = b"touchmark-unit-encryption-key-v1";

/// The bytes a unit's identity key signs (ECDSA P-256 with SHA-256) to bind its encryption key
/// to itself, for one order and serial: the domain, then the order, the serial and the
/// encryption key's DER SubjectPublicKeyInfo, each after a 0x00 byte. The order and the serial
/// contain no 0x00 byte (they are checked identifiers), so no two bindings share their bytes.
pub fn binding_message(order: &OrderId, serial: &Serial, encryption_key_spki: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(
        BINDING_DOMAIN.len()
            + 3
            + order.as_str().len()
            + serial.as_str().len()
            + encryption_key_spki.len(),
    );
    m.extend_from_slice(BINDING_DOMAIN);
    for part in [
        order.as_str().as_bytes(),
        serial.as_str().as_bytes(),
        encryption_key_spki,
    ] {
        m.push(0);
        m.extend_from_slice(part);
    }
    m
}

/// Parses a release version as `imgtool sign --version` takes it: `major.minor.revision` with
/// an optional `+build`, within MCUboot's field widths (u8, u8, u16, u32). `None` otherwise.
pub fn parse_version(text: &str) -> Option<(u8, u8, u16, u32)> {
    let (main, build) = match text.split_once('+') {
        Some((main, build)) => (main, Some(build)),
        None => (text, None),
    };
    fn number(s: &str) -> Option<&str> {
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())).then_some(s)
    }
    let mut parts = main.split('.');
    let major = number(parts.next()?)?.parse().ok()?;
    let minor = number(parts.next()?)?.parse().ok()?;
    let revision = number(parts.next()?)?.parse().ok()?;
    if parts.next().is_some() {
        return None;
    }
    let build = match build {
        Some(b) => number(b)?.parse().ok()?,
        None => 0,
    };
    Some((major, minor, revision, build))
}

/// The version as stored and logged: `major.minor.revision+build`.
pub fn version_string((major, minor, revision, build): (u8, u8, u16, u32)) -> String {
    format!("{major}.{minor}.{revision}+{build}")
}

/// The pattern of a release version in the API document.
pub const VERSION_PATTERN: &str = r"^[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,5}(\+[0-9]{1,10})?$";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_within_mcuboots_widths() {
        assert_eq!(parse_version("1.4.0"), Some((1, 4, 0, 0)));
        assert_eq!(parse_version("1.2.3+4"), Some((1, 2, 3, 4)));
        assert_eq!(
            parse_version("255.255.65535+4294967295")
                .map(version_string)
                .as_deref(),
            Some("255.255.65535+4294967295")
        );
        for bad in [
            "", "1.4", "1.4.0.1", "256.0.0", "1.-1.0", "1.4.0+", "a.b.c", "1.4.0+x", " 1.4.0",
        ] {
            assert_eq!(parse_version(bad), None, "{bad}");
        }
    }
}
