//! MCUboot encrypted images, with no Touchmark domain in them: strict parsing of the header and
//! TLV areas, the hash and signature checks, the ECIES unwrap of the content key (P-256 and
//! X25519, AES-128 and AES-256), and the per-unit re-wrap that changes nothing but the key TLV's
//! value, so the brand owner's signature still holds.
//!
//! The byte layouts and the refusal codes are those of `docs/firmware.md` and of MCUboot
//! (imgtool 2.5.0, bootutil `encrypted.c`). The tests check every vector made with imgtool, and
//! compare with an independent Python reference and with imgtool itself.
//!
//! - [`image`] parses; [`verify`] checks hash and signature; [`ecies`] unwraps and wraps;
//! - [`release`] puts them together: [`import_release`], [`rewrap_value`], [`PerUnitImage`],
//!   [`check_identical`], [`decrypt`];
//! - [`builder`] makes a release as `imgtool sign --encrypt` does, for demos and benchmarks;
//! - [`keys`] holds the key types and the [`KeyAgreement`] seam.

pub mod builder;
pub mod ecies;
pub mod error;
pub mod image;
pub mod keys;
pub mod release;
pub mod verify;

pub use ecies::{ContentKey, EncKind};
pub use error::FirmwareError;
pub use image::{ImageLayout, parse};
pub use keys::{Curve, Ephemeral, KeyAgreement, PublicKey, SoftwareAgreementKey};
pub use release::{
    EncTlv, ImportedRelease, Limits, PerUnitImage, ReleaseInfo, UnitHasher, check_identical,
    decrypt, enc_tlv, import_release, rewrap_value,
};
