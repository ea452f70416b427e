//! A simulated unit's secure element: its P-256 identity key and its X25519 firmware encryption
//! key, both made for it and never leaving it. Its CSR carries the encryption key, under the
//! identity key's signature; it opens its own firmware image as MCUboot would.

use std::sync::Arc;

use touchmark_core::api::UnitFirmwareBody;
use touchmark_firmware::{Curve, SoftwareAgreementKey};
use touchmark_pki::SoftwareSigner;

use crate::ClientError;

/// A unit's keys.
pub struct Element {
    /// The identity key, shared with the unit's [`crate::sim::UnitKey`].
    pub identity: Arc<SoftwareSigner>,
    encryption: SoftwareAgreementKey,
}

impl std::fmt::Debug for Element {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Element").finish_non_exhaustive()
    }
}

impl Element {
    /// An element holding `identity` and a fresh X25519 encryption key.
    ///
    /// # Errors
    /// [`ClientError::Key`] when the key cannot be made.
    pub fn new(identity: Arc<SoftwareSigner>) -> Result<Self, ClientError> {
        Ok(Self {
            identity,
            encryption: SoftwareAgreementKey::generate(Curve::X25519)
                .map_err(|e| ClientError::Key(e.to_string()))?,
        })
    }

    /// The encryption key's DER SubjectPublicKeyInfo, which the unit's CSR carries (its
    /// signature binds the key to the unit).
    pub fn encryption_key_spki(&self) -> Vec<u8> {
        self.encryption.public_key().spki_der()
    }

    /// Opens `image` as the unit's bootloader would: its key TLV with the encryption key, then
    /// the body, checking the hash TLV. The image must also be the one the answer described.
    ///
    /// # Errors
    /// What failed, as text.
    pub fn open(&self, image: &[u8], described: &UnitFirmwareBody) -> Result<(), String> {
        let sha = touchmark_core::event::Sha256Hash::of(image).to_hex();
        if sha != described.image_sha256 {
            return Err(format!(
                "the image's SHA-256 is {sha}, the answer said {}",
                described.image_sha256
            ));
        }
        touchmark_firmware::decrypt(image, &self.encryption)
            .map(|_| ())
            .map_err(|e| format!("{} ({e})", e.code()))
    }
}
