//! Release encryption keys and firmware signing keys ([`FirmwareStore`]).

use async_trait::async_trait;
use rusqlite::{OptionalExtension, Row, params};
use touchmark_core::clock::{format_timestamp, parse_timestamp};
use touchmark_core::event::{Event, Logged};
use touchmark_core::firmware::{
    ComponentRelease, FirmwareKey, NewRelease, Release, ReleaseKey, ReleaseKeyAlgorithm,
    UnitFirmware,
};
use touchmark_core::policy::firmware::ReleaseChange;
use touchmark_core::{OrderId, ProductId, Serial};
use touchmark_store::{FirmwareStore, RecordKind, Rule, StoreError, codec};

use crate::SqliteStore;
use crate::error::Result;
use crate::rows::corrupt;

fn release_key_row(r: &Row<'_>) -> rusqlite::Result<Result<ReleaseKey>> {
    let (id, product, algorithm, pem, sha, created): (
        String,
        String,
        String,
        String,
        Vec<u8>,
        String,
    ) = (
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
    );
    Ok((|| {
        Ok(ReleaseKey {
            id,
            product: ProductId::parse(&product).map_err(|e| corrupt("release key product", e))?,
            algorithm: ReleaseKeyAlgorithm::parse(&algorithm)
                .ok_or_else(|| corrupt("release key algorithm", &algorithm))?,
            public_key_pem: pem,
            public_key_sha256: codec::sha256("release key hash", &sha)?,
            created_at: parse_timestamp(&created).map_err(|e| corrupt("release key time", e))?,
        })
    })())
}

fn firmware_key_row(r: &Row<'_>) -> rusqlite::Result<Result<FirmwareKey>> {
    let (product, key_id, algorithm, pem, created): (String, Vec<u8>, String, String, String) =
        (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?);
    Ok((|| {
        Ok(FirmwareKey {
            product: ProductId::parse(&product).map_err(|e| corrupt("firmware key product", e))?,
            key_id: codec::sha256("firmware key id", &key_id)?,
            algorithm,
            public_key_pem: pem,
            created_at: parse_timestamp(&created).map_err(|e| corrupt("firmware key time", e))?,
        })
    })())
}

const RELEASE_SQL: &str = "SELECT id, product, version, image_sha256, image_size, signing_key, \
                           release_key, plaintext_hash, sbom_sha256, created_at, withdrawn_at \
                           FROM releases";

fn release_row(r: &Row<'_>) -> rusqlite::Result<Result<Release>> {
    let id: String = r.get(0)?;
    let product: String = r.get(1)?;
    let version: String = r.get(2)?;
    let image_sha: Vec<u8> = r.get(3)?;
    let size: i64 = r.get(4)?;
    let signing: Vec<u8> = r.get(5)?;
    let release_key: String = r.get(6)?;
    let plaintext: String = r.get(7)?;
    let sbom_sha: Option<Vec<u8>> = r.get(8)?;
    let (created, withdrawn): (String, Option<String>) = (r.get(9)?, r.get(10)?);
    Ok((|| {
        Ok(Release {
            id,
            product: ProductId::parse(&product).map_err(|e| corrupt("release product", e))?,
            version,
            image_sha256: codec::sha256("release image hash", &image_sha)?,
            image_size: u64::try_from(size).map_err(|e| corrupt("release size", e))?,
            signing_key: codec::sha256("release signing key", &signing)?,
            release_key,
            plaintext_hash: plaintext,
            sbom_sha256: sbom_sha
                .map(|h| codec::sha256("release SBOM hash", &h))
                .transpose()?,
            created_at: parse_timestamp(&created).map_err(|e| corrupt("release time", e))?,
            withdrawn_at: withdrawn
                .map(|w| parse_timestamp(&w).map_err(|e| corrupt("release time", e)))
                .transpose()?,
        })
    })())
}

#[async_trait]
impl FirmwareStore for SqliteStore {
    async fn create_release_key(
        &self,
        key: ReleaseKey,
        event: Event,
    ) -> touchmark_store::Result<Logged> {
        self.write(move |ctx| {
            let inserted = ctx
                .conn
                .prepare_cached(
                    "INSERT INTO release_keys (id, product, algorithm, public_key_pem,
                                               public_key_sha256, created_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (id) DO NOTHING",
                )?
                .execute(params![
                    key.id,
                    key.product.as_str(),
                    key.algorithm.as_str(),
                    key.public_key_pem,
                    &key.public_key_sha256.0[..],
                    format_timestamp(key.created_at)
                ])?;
            if inserted == 0 {
                return Err(StoreError::exists(RecordKind::ReleaseKey, &key.id).into());
            }
            Ok(ctx.append(&event)?.1)
        })
        .await
    }

    async fn release_keys(&self, product: &ProductId) -> touchmark_store::Result<Vec<ReleaseKey>> {
        let product = product.clone();
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT id, product, algorithm, public_key_pem, public_key_sha256, created_at
                 FROM release_keys WHERE product = ?1 ORDER BY created_at, id",
            )?;
            let rows = stmt.query_map([product.as_str()], release_key_row)?;
            rows.map(|r| r?).collect()
        })
        .await
    }

    async fn add_firmware_key(
        &self,
        key: FirmwareKey,
        event: Event,
    ) -> touchmark_store::Result<Logged> {
        self.write(move |ctx| {
            let inserted = ctx
                .conn
                .prepare_cached(
                    "INSERT INTO firmware_keys (product, key_id, algorithm, public_key_pem,
                                                created_at)
                     VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (product, key_id) DO NOTHING",
                )?
                .execute(params![
                    key.product.as_str(),
                    &key.key_id.0[..],
                    key.algorithm,
                    key.public_key_pem,
                    format_timestamp(key.created_at)
                ])?;
            if inserted == 0 {
                return Err(StoreError::exists(RecordKind::FirmwareKey, key.key_id).into());
            }
            Ok(ctx.append(&event)?.1)
        })
        .await
    }

    async fn firmware_keys(
        &self,
        product: &ProductId,
    ) -> touchmark_store::Result<Vec<FirmwareKey>> {
        let product = product.clone();
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT product, key_id, algorithm, public_key_pem, created_at
                 FROM firmware_keys WHERE product = ?1 ORDER BY created_at, key_id",
            )?;
            let rows = stmt.query_map([product.as_str()], firmware_key_row)?;
            rows.map(|r| r?).collect()
        })
        .await
    }

    async fn create_release(
        &self,
        new: NewRelease,
        event: Event,
    ) -> touchmark_store::Result<Logged> {
        self.write(move |ctx| {
            let r = &new.release;
            let size = i64::try_from(r.image_size).map_err(|e| corrupt("release size", e))?;
            let inserted = ctx
                .conn
                .prepare_cached(
                    "INSERT INTO releases (id, product, version, image_sha256, image_size,
                                           signing_key, release_key, plaintext_hash,
                                           sbom_sha256, created_at, withdrawn_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, NULL)
                     ON CONFLICT DO NOTHING",
                )?
                .execute(params![
                    r.id,
                    r.product.as_str(),
                    r.version,
                    &r.image_sha256.0[..],
                    size,
                    &r.signing_key.0[..],
                    r.release_key,
                    r.plaintext_hash,
                    r.sbom_sha256.map(|h| h.0.to_vec()),
                    format_timestamp(r.created_at)
                ])?;
            if inserted == 0 {
                return Err(StoreError::exists(
                    RecordKind::Release,
                    format!("{} (version {} of product {})", r.id, r.version, r.product),
                )
                .into());
            }
            ctx.conn
                .prepare_cached(
                    "INSERT INTO release_blobs (release_id, image, sbom) VALUES (?1, ?2, ?3)",
                )?
                .execute(params![r.id, new.image, new.sbom])?;
            let mut component = ctx.conn.prepare_cached(
                "INSERT INTO release_components (release_id, purl_key, purl, version)
                 VALUES (?1, ?2, ?3, ?4)",
            )?;
            for c in &new.components {
                component.execute(params![r.id, c.key, c.purl, c.version])?;
            }
            drop(component);
            Ok(ctx.append(&event)?.1)
        })
        .await
    }

    async fn releases_with_component(
        &self,
        key: &str,
    ) -> touchmark_store::Result<Vec<ComponentRelease>> {
        let key = key.to_owned();
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT r.id, r.product, r.version, c.purl, c.version
                 FROM release_components c JOIN releases r ON r.id = c.release_id
                 WHERE c.purl_key = ?1
                 ORDER BY r.created_at, r.id, c.purl",
            )?;
            let rows = stmt.query_map([key.as_str()], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, Option<String>>(4)?,
                ))
            })?;
            rows.map(|row| {
                let (release, product, version, purl, component_version) = row?;
                Ok(ComponentRelease {
                    release,
                    product: ProductId::parse(&product)
                        .map_err(|e| corrupt("release product", e))?,
                    version,
                    purl,
                    component_version,
                })
            })
            .collect()
        })
        .await
    }

    async fn release(&self, id: &str) -> touchmark_store::Result<Option<Release>> {
        let id = id.to_owned();
        self.read(move |conn| {
            conn.prepare_cached(&format!("{RELEASE_SQL} WHERE id = ?1"))?
                .query_row([id.as_str()], release_row)
                .optional()?
                .transpose()
        })
        .await
    }

    async fn releases(&self, product: &ProductId) -> touchmark_store::Result<Vec<Release>> {
        let product = product.clone();
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "{RELEASE_SQL} WHERE product = ?1 ORDER BY created_at, id"
            ))?;
            let rows = stmt.query_map([product.as_str()], release_row)?;
            rows.map(|r| r?).collect()
        })
        .await
    }

    async fn release_image(&self, id: &str) -> touchmark_store::Result<Option<Vec<u8>>> {
        let id = id.to_owned();
        self.read(move |conn| {
            Ok(conn
                .prepare_cached("SELECT image FROM release_blobs WHERE release_id = ?1")?
                .query_row([id.as_str()], |r| r.get(0))
                .optional()?)
        })
        .await
    }

    async fn release_sbom(&self, id: &str) -> touchmark_store::Result<Option<Vec<u8>>> {
        let id = id.to_owned();
        self.read(move |conn| {
            Ok(conn
                .prepare_cached("SELECT sbom FROM release_blobs WHERE release_id = ?1")?
                .query_row([id.as_str()], |r| r.get::<_, Option<Vec<u8>>>(0))
                .optional()?
                .flatten())
        })
        .await
    }

    async fn update_release(
        &self,
        id: &str,
        rule: Rule<Release, ReleaseChange>,
    ) -> touchmark_store::Result<Release> {
        let id = id.to_owned();
        self.write(move |ctx| {
            let release = ctx
                .conn
                .prepare_cached(&format!("{RELEASE_SQL} WHERE id = ?1"))?
                .query_row([id.as_str()], release_row)
                .optional()?
                .transpose()?
                .ok_or_else(|| StoreError::not_found(RecordKind::Release, &id))?;
            let change = rule.apply(&release)?;
            ctx.conn
                .prepare_cached("UPDATE releases SET withdrawn_at = ?2 WHERE id = ?1")?
                .execute([id.as_str(), format_timestamp(change.withdrawn_at).as_str()])?;
            ctx.append(&change.event)?;
            Ok(Release {
                withdrawn_at: Some(change.withdrawn_at),
                ..release
            })
        })
        .await
    }

    async fn set_order_release(
        &self,
        order: &OrderId,
        release: &str,
        event: Event,
    ) -> touchmark_store::Result<Logged> {
        let (order, release) = (order.clone(), release.to_owned());
        self.write(move |ctx| {
            let known = |sql: &str, id: &str| -> Result<bool> {
                Ok(ctx
                    .conn
                    .prepare_cached(sql)?
                    .query_row([id], |_| Ok(()))
                    .optional()?
                    .is_some())
            };
            if !known("SELECT 1 FROM orders WHERE id = ?1", order.as_str())? {
                return Err(StoreError::not_found(RecordKind::Order, order.as_str()).into());
            }
            if !known("SELECT 1 FROM releases WHERE id = ?1", &release)? {
                return Err(StoreError::not_found(RecordKind::Release, &release).into());
            }
            ctx.conn
                .prepare_cached(
                    "INSERT INTO order_releases (order_id, release_id, set_at) VALUES (?1, ?2, ?3)
                     ON CONFLICT (order_id) DO UPDATE SET release_id = excluded.release_id,
                         set_at = excluded.set_at",
                )?
                .execute([
                    order.as_str(),
                    release.as_str(),
                    format_timestamp(event.at).as_str(),
                ])?;
            ctx.append(&event).map(|(_, logged)| logged)
        })
        .await
    }

    async fn order_release(&self, order: &OrderId) -> touchmark_store::Result<Option<Release>> {
        let order = order.clone();
        self.read(move |conn| {
            conn.prepare_cached(&format!(
                "{RELEASE_SQL} WHERE id = (SELECT release_id FROM order_releases WHERE order_id = ?1)"
            ))?
            .query_row([order.as_str()], release_row)
            .optional()?
            .transpose()
        })
        .await
    }

    async fn unit_firmware(
        &self,
        order: &OrderId,
        serial: &Serial,
    ) -> touchmark_store::Result<Option<UnitFirmware>> {
        let (order, serial) = (order.clone(), serial.clone());
        self.read(move |conn| {
            let row = conn
                .prepare_cached(
                    "SELECT release_id, wrap, image_sha256, encryption_key FROM unit_firmware
                     WHERE order_id = ?1 AND serial = ?2",
                )?
                .query_row([order.as_str(), serial.as_str()], firmware_row)
                .optional()?;
            row.map(|row| unit_firmware_of(order, serial, row))
                .transpose()
        })
        .await
    }

    async fn firmware_delivery(
        &self,
        order: &OrderId,
        serial: &Serial,
        release: &str,
    ) -> touchmark_store::Result<Option<UnitFirmware>> {
        let (order, serial, release) = (order.clone(), serial.clone(), release.to_owned());
        self.read(move |conn| delivery_of(conn, order, serial, &release))
            .await
    }

    async fn record_firmware_delivery(
        &self,
        delivery: UnitFirmware,
        event: Event,
    ) -> touchmark_store::Result<Option<UnitFirmware>> {
        self.write(move |ctx| {
            let before = delivery_of(
                ctx.conn,
                delivery.order.clone(),
                delivery.serial.clone(),
                &delivery.release,
            )?;
            if before.is_some() {
                return Ok(before);
            }
            let exists = |sql: &str, ids: &[&str]| -> Result<bool> {
                Ok(ctx
                    .conn
                    .prepare_cached(sql)?
                    .query_row(rusqlite::params_from_iter(ids), |_| Ok(()))
                    .optional()?
                    .is_some())
            };
            if !exists(
                "SELECT 1 FROM unit_firmware WHERE order_id = ?1 AND serial = ?2",
                &[delivery.order.as_str(), delivery.serial.as_str()],
            )? {
                return Err(
                    StoreError::not_found(RecordKind::Unit, delivery.serial.as_str()).into(),
                );
            }
            if !exists("SELECT 1 FROM releases WHERE id = ?1", &[&delivery.release])? {
                return Err(StoreError::not_found(RecordKind::Release, &delivery.release).into());
            }
            let (index, _) = ctx.append(&event)?;
            ctx.conn
                .prepare_cached(
                    "INSERT INTO firmware_deliveries (order_id, serial, release_id, wrap,
                                                      image_sha256, event_index, delivered_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )?
                .execute(params![
                    delivery.order.as_str(),
                    delivery.serial.as_str(),
                    delivery.release,
                    delivery.wrap,
                    delivery.image_sha256.0.as_slice(),
                    index as i64,
                    format_timestamp(event.at),
                ])?;
            // The unit now runs this release: deliveries are appended in log order, so the
            // last one recorded is the latest.
            ctx.conn
                .prepare_cached(
                    "UPDATE unit_firmware SET latest_release_id = ?3
                     WHERE order_id = ?1 AND serial = ?2",
                )?
                .execute(params![
                    delivery.order.as_str(),
                    delivery.serial.as_str(),
                    delivery.release
                ])?;
            Ok(None)
        })
        .await
    }
}

/// A wrap's row: release, wrap, image hash and, for a unit's issuance, its encryption key.
type FirmwareRow = (String, Vec<u8>, Vec<u8>, Option<Vec<u8>>);

fn firmware_row(r: &Row<'_>) -> rusqlite::Result<FirmwareRow> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
}

fn unit_firmware_of(
    order: OrderId,
    serial: Serial,
    (release, wrap, sha, encryption_key): FirmwareRow,
) -> Result<UnitFirmware> {
    Ok(UnitFirmware {
        order,
        serial,
        release,
        wrap,
        image_sha256: codec::sha256("unit image hash", &sha)?,
        encryption_key,
    })
}

/// The field update of `release` the unit received, if any.
fn delivery_of(
    conn: &rusqlite::Connection,
    order: OrderId,
    serial: Serial,
    release: &str,
) -> Result<Option<UnitFirmware>> {
    conn.prepare_cached(
        "SELECT release_id, wrap, image_sha256, NULL FROM firmware_deliveries
         WHERE order_id = ?1 AND serial = ?2 AND release_id = ?3",
    )?
    .query_row([order.as_str(), serial.as_str(), release], firmware_row)
    .optional()?
    .map(|row| unit_firmware_of(order, serial, row))
    .transpose()
}

/// Stores a unit's firmware in the transaction that issues it, with the index of its
/// `unit.issued` event.
pub(crate) fn insert_unit_firmware(
    conn: &rusqlite::Connection,
    firmware: &UnitFirmware,
    index: u64,
) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO unit_firmware (order_id, serial, release_id, wrap, image_sha256, event_index,
                                    encryption_key)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        firmware.order.as_str(),
        firmware.serial.as_str(),
        firmware.release,
        firmware.wrap,
        firmware.image_sha256.0.as_slice(),
        index as i64,
        firmware.encryption_key,
    ])?;
    Ok(())
}
