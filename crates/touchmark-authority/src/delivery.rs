//! Firmware only its own unit can open (design.md §7, `docs/firmware.md`): an order names a
//! release; each unit it issues sends an encryption key that its identity key signs; after the
//! pass and the count, in the transaction of its certificate, the release's content key is
//! re-wrapped to that key. The unit's image is the release with that one TLV value changed.
//!
//! The content key of a release is unwrapped once, by the installation's key provider, and
//! kept in memory only (it is wiped when the release leaves the cache); the image, which is
//! ciphertext, is kept with it.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use base64::Engine as _;
use touchmark_core::code::{ErrorCode, Refusal};
use touchmark_core::event::{Actor, Event, EventBody, Sha256Hash};
use touchmark_core::firmware::{Release, UnitFirmware, binding_message};
use touchmark_core::{OrderId, ProductId, Serial, StationId};
use touchmark_firmware::keys::PublicKey;
use touchmark_firmware::{ContentKey, EncTlv, Ephemeral, UnitHasher};
use touchmark_pki::VerifiedCsr;

use crate::firmware::ProviderAgreement;
use crate::{Authority, AuthorityError, Result, off_runtime};

/// A release ready to be re-wrapped: its image (ciphertext), its key TLV, its content key and
/// the hasher of its per-unit images.
pub(crate) struct LoadedRelease {
    image: Arc<Vec<u8>>,
    enc: EncTlv,
    content_key: ContentKey,
    hasher: UnitHasher,
}

impl std::fmt::Debug for LoadedRelease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedRelease")
            .field("size", &self.image.len())
            .field("enc", &self.enc)
            .finish_non_exhaustive()
    }
}

/// The releases loaded, by id.
#[derive(Debug, Default)]
pub(crate) struct Releases(RwLock<HashMap<String, Arc<LoadedRelease>>>);

/// A unit's firmware as delivered: the release, the key TLV's place and the unit's wrap.
#[derive(Debug, Clone)]
pub struct DeliveredFirmware {
    /// The release.
    pub release: Release,
    /// The unit's wrap and its image's hash.
    pub unit: UnitFirmware,
    /// Offset in the image of the key TLV's value.
    pub key_tlv_offset: u64,
}

/// A unit's whole image, to stream: the release's bytes with the key TLV's value replaced.
#[derive(Debug, Clone)]
pub struct UnitImage {
    /// The release's image, shared by every unit.
    pub release_image: Arc<Vec<u8>>,
    /// Offset of the key TLV's value.
    pub value_offset: usize,
    /// The unit's value.
    pub value: Vec<u8>,
    /// SHA-256 of the unit's image.
    pub sha256: Sha256Hash,
    /// The release.
    pub release: Release,
}

/// Offset in the image of the key TLV's value.
fn offset_of(loaded: &LoadedRelease) -> u64 {
    u64::try_from(loaded.enc.value_off).unwrap_or(u64::MAX)
}

impl LoadedRelease {
    /// The curve of the keys the release's content key can be wrapped to.
    pub(crate) fn curve(&self) -> touchmark_firmware::keys::Curve {
        self.enc.kind.curve()
    }

    /// The content key wrapped to `key` (of [`Self::curve`]), and the SHA-256 of the unit's
    /// image with that wrap.
    ///
    /// # Errors
    /// `encryption_key_invalid` for a key the wrap cannot be made to (a low-order point);
    /// internal for a failure of the cryptographic backend.
    pub(crate) fn wrap_to(
        &self,
        key: &PublicKey,
        ephemeral: Ephemeral,
    ) -> std::result::Result<(Vec<u8>, Sha256Hash), WrapError> {
        let wrap = touchmark_firmware::rewrap_value(&self.enc, &self.content_key, key, ephemeral)
            .map_err(|e| match e {
            touchmark_firmware::FirmwareError::Backend(_) => {
                WrapError::Internal(AuthorityError::internal(e))
            }
            e => WrapError::Key(key_invalid(format!("the unit's encryption key: {e}"))),
        })?;
        let sha256 = self
            .hasher
            .sha256(&self.image, &wrap)
            .map_err(|e| WrapError::Internal(AuthorityError::internal(e)))?;
        Ok((wrap, Sha256Hash(sha256)))
    }

    /// The whole image of the unit `firmware` is, to stream.
    pub(crate) fn unit_image(&self, firmware: &UnitFirmware, release: Release) -> UnitImage {
        UnitImage {
            release_image: Arc::clone(&self.image),
            value_offset: self.enc.value_off,
            value: firmware.wrap.clone(),
            sha256: firmware.image_sha256,
            release,
        }
    }
}

/// Why a wrap was not made.
#[derive(Debug)]
pub(crate) enum WrapError {
    /// The key is refused (`encryption_key_invalid`).
    Key(Refusal),
    /// The backend failed.
    Internal(AuthorityError),
}

impl From<WrapError> for AuthorityError {
    fn from(e: WrapError) -> Self {
        match e {
            WrapError::Key(refusal) => AuthorityError::Denied(refusal),
            WrapError::Internal(e) => e,
        }
    }
}

/// What an order's release asks of a unit about to be issued.
#[derive(Debug)]
pub(crate) enum FirmwareCheck {
    /// The order names no release.
    NoRelease,
    /// The unit receives this release, wrapped to its key.
    Deliver(Box<DeliveredFirmware>),
    /// The request is refused.
    Refused(Refusal),
}

fn key_invalid(message: impl Into<String>) -> Refusal {
    Refusal::new(ErrorCode::EncryptionKeyInvalid, message)
}

/// The unit's encryption key, if it is bound to the unit: carried in the CSR's
/// unit-encryption-key attribute (bound by the CSR's signature, already verified), or sent
/// beside it as a `PUBLIC KEY` PEM signed by the CSR's key over [`binding_message`]. Either way
/// it must be of the release key's curve.
fn bound_key(
    binding: Option<&touchmark_core::api::EncryptionKeyBinding>,
    release: &Release,
    loaded: &LoadedRelease,
    csr: &VerifiedCsr,
    order: &OrderId,
    serial: &Serial,
) -> std::result::Result<PublicKey, Refusal> {
    let curve = loaded.enc.kind.curve();
    let key = match (binding, csr.encryption_key()) {
        (Some(_), Some(_)) => {
            return Err(key_invalid(
                "the CSR carries the unit's encryption key and the request binds another: send \
                 one of them",
            ));
        }
        (None, None) => {
            return Err(key_invalid(format!(
                "order {order} delivers release {} ({}): the unit's {} encryption key must be in \
                 its CSR (attribute {}) or in the request (encryption_key)",
                release.id,
                release.version,
                curve.as_str(),
                touchmark_pki::OID_UNIT_ENCRYPTION_KEY
                    .iter()
                    .map(u64::to_string)
                    .collect::<Vec<_>>()
                    .join(".")
            )));
        }
        (None, Some(spki)) => PublicKey::from_spki_der(spki)
            .map_err(|e| key_invalid(format!("the CSR's unit encryption key: {e}")))?,
        (Some(binding), None) => {
            let key = PublicKey::from_pem(&binding.public_key_pem)
                .map_err(|e| key_invalid(format!("encryption_key.public_key_pem: {e}")))?;
            let signature = base64::engine::general_purpose::STANDARD
                .decode(binding.signature.trim())
                .map_err(|e| key_invalid(format!("encryption_key.signature is not base64: {e}")))?;
            if !csr.verifies(&binding_message(order, serial, &key.spki_der()), &signature) {
                return Err(key_invalid(
                    "encryption_key.signature is not the CSR key's ECDSA P-256 SHA-256 signature \
                     over the binding of this order, serial and key",
                ));
            }
            key
        }
    };
    if key.curve() != Some(curve) {
        return Err(key_invalid(format!(
            "the unit's encryption key is {}; release {} is encrypted to {} keys",
            key.kind(),
            release.version,
            curve.as_str()
        )));
    }
    Ok(key)
}

impl Authority {
    /// The firmware of a unit about to be issued in `order`, when the order names a release:
    /// the release must not be withdrawn, and the unit's encryption key must be bound to the
    /// CSR's key.
    ///
    /// # Errors
    /// The store's, or the key provider's when the release's content key cannot be opened.
    pub(crate) async fn unit_firmware_for(
        &self,
        order: &OrderId,
        serial: &Serial,
        csr: &VerifiedCsr,
        binding: Option<&touchmark_core::api::EncryptionKeyBinding>,
        attestation: Option<&crate::issuance::UnitAttestation<'_>>,
    ) -> Result<FirmwareCheck> {
        let Some(release) = self.store.order_release(order).await? else {
            return Ok(FirmwareCheck::NoRelease);
        };
        if release.withdrawn_at.is_some() {
            return Ok(FirmwareCheck::Refused(Refusal::new(
                ErrorCode::ReleaseWithdrawn,
                format!(
                    "order {order} delivers release {} ({}), which was withdrawn: the order must \
                     name another release",
                    release.id, release.version
                ),
            )));
        }
        let loaded = self.loaded_release(&release).await?;
        let key = match bound_key(binding, &release, &loaded, csr, order, serial) {
            Ok(key) => key,
            Err(refusal) => return Ok(FirmwareCheck::Refused(refusal)),
        };
        // A product that requires attestation takes only an encryption key the chip vendor
        // certified too.
        if let Some(Err(refusal)) =
            attestation.map(|a| a.certifies(&key.spki_der(), "encryption key", self.clock.now()))
        {
            return Ok(FirmwareCheck::Refused(refusal));
        }
        let (wrap, image_sha256) = match loaded.wrap_to(&key, Ephemeral::Fresh) {
            Ok(made) => made,
            Err(WrapError::Key(refusal)) => return Ok(FirmwareCheck::Refused(refusal)),
            Err(WrapError::Internal(e)) => return Err(e),
        };
        let unit = UnitFirmware {
            order: order.clone(),
            serial: serial.clone(),
            release: release.id.clone(),
            wrap,
            image_sha256,
            encryption_key: Some(key.spki_der()),
        };
        Ok(FirmwareCheck::Deliver(Box::new(DeliveredFirmware {
            release,
            unit,
            key_tlv_offset: offset_of(&loaded),
        })))
    }

    /// The firmware stored with a unit issued before (a retry's answer), if any.
    pub(crate) async fn stored_firmware(
        &self,
        order: &OrderId,
        serial: &Serial,
    ) -> Result<Option<DeliveredFirmware>> {
        let Some(unit) = self.store.unit_firmware(order, serial).await? else {
            return Ok(None);
        };
        let release = self.store.release(&unit.release).await?.ok_or_else(|| {
            AuthorityError::internal(format!(
                "unit {serial} names the unknown release {}",
                unit.release
            ))
        })?;
        let loaded = self.loaded_release(&release).await?;
        Ok(Some(DeliveredFirmware {
            release,
            unit,
            key_tlv_offset: offset_of(&loaded),
        }))
    }

    /// A unit's whole image, for the station of the order's factory that asks: the release's
    /// bytes with the unit's wrap.
    ///
    /// # Errors
    /// `not_found` when the order is unknown or of another factory, or when the unit received
    /// no firmware in it; `release_withdrawn` when its release was withdrawn since.
    pub async fn unit_image(
        &self,
        station: &StationId,
        order: &OrderId,
        serial: &Serial,
    ) -> Result<UnitImage> {
        let not_found = || {
            AuthorityError::denied(
                ErrorCode::NotFound,
                format!("no firmware for unit {serial} in order {order}"),
            )
        };
        let Some(station) = self.store.station(station).await? else {
            return Err(not_found());
        };
        match self.store.order(order).await? {
            Some(o) if o.factory == station.factory => {}
            _ => return Err(not_found()),
        }
        let Some(delivered) = self.stored_firmware(order, serial).await? else {
            return Err(not_found());
        };
        if delivered.release.withdrawn_at.is_some() {
            return Err(AuthorityError::denied(
                ErrorCode::ReleaseWithdrawn,
                format!(
                    "release {} ({}) of unit {serial} was withdrawn",
                    delivered.release.id, delivered.release.version
                ),
            ));
        }
        let loaded = self.loaded_release(&delivered.release).await?;
        Ok(loaded.unit_image(&delivered.unit, delivered.release))
    }

    /// Names the release `order`'s units receive, by its version, with its `order.release_set`
    /// event: a new release on an open order, or a release in place of a withdrawn one.
    ///
    /// # Errors
    /// `not_found` for an unknown order, or a version the order's product has no release of;
    /// `release_withdrawn` for a withdrawn release.
    pub async fn set_order_release(
        &self,
        actor: Actor,
        order: &OrderId,
        version: &str,
    ) -> Result<Release> {
        let found = self.store.order(order).await?.ok_or_else(|| {
            AuthorityError::denied(ErrorCode::NotFound, format!("order {order} not found"))
        })?;
        let release = self.deliverable_release(&found.product, version).await?;
        self.name_order_release(actor, order, &release).await?;
        Ok(release)
    }

    /// The release `version` of `product`, if it can be delivered: it exists, is not
    /// withdrawn, and its content key opens.
    pub(crate) async fn deliverable_release(
        &self,
        product: &ProductId,
        version: &str,
    ) -> Result<Release> {
        // `1.4.0` names the release whose header says 1.4.0+0.
        let asked = touchmark_core::firmware::parse_version(version);
        let release = self
            .store
            .releases(product)
            .await?
            .into_iter()
            .find(|r| {
                asked.is_some() && touchmark_core::firmware::parse_version(&r.version) == asked
            })
            .ok_or_else(|| {
                AuthorityError::denied(
                    ErrorCode::NotFound,
                    format!(
                        "product {product} has no release {}",
                        version.escape_debug()
                    ),
                )
            })?;
        if release.withdrawn_at.is_some() {
            return Err(AuthorityError::denied(
                ErrorCode::ReleaseWithdrawn,
                format!("release {} ({version}) was withdrawn", release.id),
            ));
        }
        self.loaded_release(&release).await?;
        Ok(release)
    }

    /// Records that `order`'s units receive `release`.
    pub(crate) async fn name_order_release(
        &self,
        actor: Actor,
        order: &OrderId,
        release: &Release,
    ) -> Result<()> {
        let event = Event::new(
            self.clock.now(),
            EventBody::OrderReleaseSet {
                order: order.clone(),
                release: release.id.clone(),
                version: release.version.clone(),
                actor,
            },
        );
        self.store
            .set_order_release(order, &release.id, event)
            .await?;
        Ok(())
    }

    /// The release's image and content key, loaded (and the key unwrapped by the key
    /// provider) on first use.
    pub(crate) async fn loaded_release(&self, release: &Release) -> Result<Arc<LoadedRelease>> {
        if let Some(found) = self
            .releases
            .0
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&release.id)
        {
            return Ok(Arc::clone(found));
        }
        let image = self
            .store
            .release_image(&release.id)
            .await?
            .ok_or_else(|| {
                AuthorityError::internal(format!("release {} has no image stored", release.id))
            })?;
        let keys = Arc::clone(&self.keys);
        let key_name = touchmark_core::firmware::ReleaseKey::key_name_of(&release.release_key);
        let loaded = off_runtime(move || {
            let layout = touchmark_firmware::parse(&image).map_err(AuthorityError::internal)?;
            let enc = touchmark_firmware::enc_tlv(&layout).map_err(AuthorityError::internal)?;
            let agreement = ProviderAgreement(
                keys.load_agreement(&key_name)
                    .map_err(AuthorityError::internal)?,
            );
            let content_key = touchmark_firmware::ecies::unwrap(
                enc.kind,
                &image[enc.range()],
                enc.key_len,
                &agreement,
            )
            .map_err(AuthorityError::internal)?;
            let hasher = UnitHasher::new(&image, &enc).map_err(AuthorityError::internal)?;
            Ok::<_, AuthorityError>(LoadedRelease {
                image: Arc::new(image),
                enc,
                content_key,
                hasher,
            })
        })
        .await??;
        let loaded = Arc::new(loaded);
        self.releases
            .0
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(release.id.clone(), Arc::clone(&loaded));
        Ok(loaded)
    }
}
