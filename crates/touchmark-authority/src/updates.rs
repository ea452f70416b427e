//! Field updates (design.md §7, `docs/firmware.md`): a unit in the field, authenticated by its
//! own device certificate over mTLS, receives the newest release of its product, re-wrapped to
//! the encryption key it bound when it was provisioned. Only a unit this installation issued,
//! unrevoked, is served ([`device_may_update`]); each unit receives one wrap of each release,
//! recorded with its `unit.firmware_delivered` event the first time, and the same image every
//! time after.

use touchmark_core::api::FieldUnit;
use touchmark_core::code::ErrorCode;
use touchmark_core::event::{Event, EventBody, Sha256Hash};
use touchmark_core::firmware::{UnitFirmware, parse_version};
use touchmark_core::policy::field::Possession;
use touchmark_core::policy::firmware::{FieldUpdate, device_may_update, field_update};
use touchmark_core::{OrderId, ProductId, Serial};
use touchmark_firmware::Ephemeral;
use touchmark_firmware::keys::PublicKey;
use touchmark_pki::device::parse_device_cert;

use crate::delivery::UnitImage;
use crate::field::PresentedChain;
use crate::{Authority, AuthorityError, Result};

/// A unit in the field, as its device certificate identifies it.
#[derive(Debug, Clone)]
pub struct DeviceUnit {
    /// The unit's serial.
    pub serial: Serial,
    /// Its product.
    pub product: ProductId,
    /// The order it was counted against.
    pub order: OrderId,
    /// SHA-256 of the certificate it presented (DER).
    pub cert_sha256: Sha256Hash,
}

fn not_authorized(message: impl Into<String>) -> AuthorityError {
    AuthorityError::denied(ErrorCode::DeviceNotAuthorized, message)
}

impl Authority {
    /// The unit whose device certificate is first in `chain`, the chain its TLS handshake
    /// presented (so the handshake proved possession of its key): it must verify to the device
    /// root, be a certificate this installation issued, and be revoked neither itself nor by
    /// its CA.
    ///
    /// # Errors
    /// `device_not_authorized` for an empty chain, one that does not verify, or a certificate
    /// this installation did not issue; `unit_revoked` for a revoked one.
    pub async fn device_unit(&self, chain: Vec<Vec<u8>>) -> Result<DeviceUnit> {
        let first = chain.first().ok_or_else(|| {
            not_authorized(
                "no client certificate was presented; a unit authenticates with its device \
                 certificate",
            )
        })?;
        let device = parse_device_cert(first)
            .map_err(|e| not_authorized(format!("the client certificate: {e}")))?;
        let cert_sha256 = Sha256Hash(device.cert_sha256);
        let presented = PresentedChain {
            certs: chain,
            device,
        };
        let verdict = self.field_verdict(&presented, Possession::Passed).await?;
        let FieldUnit {
            serial,
            product,
            order,
            ..
        } = device_may_update(verdict).map_err(AuthorityError::Denied)?;
        Ok(DeviceUnit {
            serial: Serial::parse(&serial).map_err(AuthorityError::internal)?,
            product: ProductId::parse(&product).map_err(AuthorityError::internal)?,
            order: OrderId::parse(&order).map_err(AuthorityError::internal)?,
            cert_sha256,
        })
    }

    /// The newest release of `unit`'s product, as its own image, if it is newer than
    /// `running` (the version the unit says it runs; `None`: any). The first time the unit
    /// receives a release, its wrap is made and recorded with its `unit.firmware_delivered`
    /// event; every later time, and for the release it received when it was provisioned, the
    /// stored wrap is returned and nothing is logged.
    ///
    /// # Errors
    /// `unprocessable` for a `running` that is not a version; `not_found` when the product has
    /// no release that is not withdrawn; `encryption_key_invalid` when the unit bound no
    /// encryption key at provisioning, or one of another curve than the release's.
    pub async fn field_update(
        &self,
        unit: &DeviceUnit,
        running: Option<&str>,
    ) -> Result<Option<UnitImage>> {
        let running = running
            .map(|v| {
                parse_version(v).ok_or_else(|| {
                    AuthorityError::denied(
                        ErrorCode::Unprocessable,
                        format!(
                            "current {:?} is not a version major.minor.revision[+build]",
                            v.escape_debug().to_string()
                        ),
                    )
                })
            })
            .transpose()?;
        let releases = self.store.releases(&unit.product).await?;
        let release = match field_update(&releases, running) {
            FieldUpdate::NoRelease => {
                return Err(AuthorityError::denied(
                    ErrorCode::NotFound,
                    format!("product {} has no release to deliver", unit.product),
                ));
            }
            FieldUpdate::UpToDate(_) => return Ok(None),
            FieldUpdate::Offer(release) => release.clone(),
        };
        let loaded = self.loaded_release(&release).await?;
        let issued = self.store.unit_firmware(&unit.order, &unit.serial).await?;
        if let Some(first) = issued.as_ref().filter(|f| f.release == release.id) {
            return Ok(Some(loaded.unit_image(first, release)));
        }
        if let Some(before) = self
            .store
            .firmware_delivery(&unit.order, &unit.serial, &release.id)
            .await?
        {
            return Ok(Some(loaded.unit_image(&before, release)));
        }
        let key_invalid = |m: String| AuthorityError::denied(ErrorCode::EncryptionKeyInvalid, m);
        let spki = issued.and_then(|f| f.encryption_key).ok_or_else(|| {
            key_invalid(format!(
                "unit {} bound no encryption key when it was provisioned (its order named no \
                 release): no release can be wrapped to it",
                unit.serial
            ))
        })?;
        let key = PublicKey::from_spki_der(&spki).map_err(AuthorityError::internal)?;
        if key.curve() != Some(loaded.curve()) {
            return Err(key_invalid(format!(
                "unit {}'s encryption key is {}; release {} is encrypted to {} keys",
                unit.serial,
                key.kind(),
                release.version,
                loaded.curve().as_str()
            )));
        }
        let (wrap, image_sha256) = loaded.wrap_to(&key, Ephemeral::Fresh)?;
        let delivery = UnitFirmware {
            order: unit.order.clone(),
            serial: unit.serial.clone(),
            release: release.id.clone(),
            wrap,
            image_sha256,
            encryption_key: None,
        };
        let event = Event::new(
            self.clock.now(),
            EventBody::UnitFirmwareDelivered {
                order: unit.order.clone(),
                product: unit.product.clone(),
                serial: unit.serial.clone(),
                cert_sha256: unit.cert_sha256,
                release: release.id.clone(),
                version: release.version.clone(),
                firmware_sha256: image_sha256,
            },
        );
        let delivered = self
            .store
            .record_firmware_delivery(delivery.clone(), event)
            .await?
            .unwrap_or(delivery);
        Ok(Some(loaded.unit_image(&delivered, release)))
    }
}
