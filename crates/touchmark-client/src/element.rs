//! A simulated unit's secure element: its P-256 identity key and its X25519 firmware encryption
//! key, both made for it and never leaving it. It signs the binding of its encryption key for
//! one order and serial, and opens its own firmware image as MCUboot would.

use std::sync::Arc;

use base64::Engine as _;
use touchmark_core::api::{EncryptionKeyBinding, UnitFirmwareBody};
use touchmark_core::firmware::binding_message;
use touchmark_core::{OrderId, Serial};
use touchmark_firmware::{Curve, SoftwareAgreementKey};
use touchmark_pki::{Signer as _, SoftwareSigner};

use crate::ClientError;

/// A unit's keys.
pub struct Element {
    identity: Arc<SoftwareSigner>,
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

    /// The encryption key and its binding to the identity key for `order` and `serial`; `None`
    /// when either is not a well-formed id (the server refuses such a request before it looks
    /// at keys).
    pub fn binding(&self, order: &str, serial: &str) -> Option<EncryptionKeyBinding> {
        let (order, serial) = (OrderId::parse(order).ok()?, Serial::parse(serial).ok()?);
        let public = self.encryption.public_key();
        let signature = self
            .identity
            .sign(&binding_message(&order, &serial, &public.spki_der()))
            .ok()?;
        Some(EncryptionKeyBinding {
            public_key_pem: public.to_pem(),
            signature: base64::engine::general_purpose::STANDARD.encode(signature),
        })
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
