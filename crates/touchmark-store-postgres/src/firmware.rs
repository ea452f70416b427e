//! Release encryption keys and firmware signing keys ([`FirmwareStore`]).

use async_trait::async_trait;
use sqlx::postgres::PgRow;
use touchmark_core::event::{Event, Logged};
use touchmark_core::firmware::{
    ComponentRelease, FirmwareKey, NewRelease, Release, ReleaseKey, ReleaseKeyAlgorithm,
    UnitFirmware,
};
use touchmark_core::policy::firmware::ReleaseChange;
use touchmark_core::{OrderId, ProductId, Serial};
use touchmark_store::{FirmwareStore, RecordKind, Rule, StoreError, codec};

use crate::error::{Error, Result};
use crate::rows::corrupt;
use crate::rows::get;
use crate::{PostgresStore, append, append_and_commit};

fn release_key(r: &PgRow) -> Result<ReleaseKey> {
    let algorithm: String = get(r, 2)?;
    Ok(ReleaseKey {
        id: get(r, 0)?,
        product: ProductId::parse(&get::<String>(r, 1)?)
            .map_err(|e| corrupt("release key product", e))?,
        algorithm: ReleaseKeyAlgorithm::parse(&algorithm)
            .ok_or_else(|| corrupt("release key algorithm", &algorithm))?,
        public_key_pem: get(r, 3)?,
        public_key_sha256: codec::sha256("release key hash", &get::<Vec<u8>>(r, 4)?)?,
        created_at: get(r, 5)?,
    })
}

fn firmware_key(r: &PgRow) -> Result<FirmwareKey> {
    Ok(FirmwareKey {
        product: ProductId::parse(&get::<String>(r, 0)?)
            .map_err(|e| corrupt("firmware key product", e))?,
        key_id: codec::sha256("firmware key id", &get::<Vec<u8>>(r, 1)?)?,
        algorithm: get(r, 2)?,
        public_key_pem: get(r, 3)?,
        created_at: get(r, 4)?,
    })
}

macro_rules! release_sql {
    ($rest:literal) => {
        concat!(
            "SELECT id, product, version, image_sha256, image_size, signing_key, release_key, \
             plaintext_hash, sbom_sha256, created_at, withdrawn_at FROM releases",
            $rest
        )
    };
}

fn release(r: &PgRow) -> Result<Release> {
    Ok(Release {
        id: get(r, 0)?,
        product: ProductId::parse(&get::<String>(r, 1)?)
            .map_err(|e| corrupt("release product", e))?,
        version: get(r, 2)?,
        image_sha256: codec::sha256("release image hash", &get::<Vec<u8>>(r, 3)?)?,
        image_size: u64::try_from(get::<i64>(r, 4)?).map_err(|e| corrupt("release size", e))?,
        signing_key: codec::sha256("release signing key", &get::<Vec<u8>>(r, 5)?)?,
        release_key: get(r, 6)?,
        plaintext_hash: get(r, 7)?,
        sbom_sha256: get::<Option<Vec<u8>>>(r, 8)?
            .map(|h| codec::sha256("release SBOM hash", &h))
            .transpose()?,
        created_at: get(r, 9)?,
        withdrawn_at: get(r, 10)?,
    })
}

#[async_trait]
impl FirmwareStore for PostgresStore {
    async fn create_release_key(
        &self,
        key: ReleaseKey,
        event: Event,
    ) -> touchmark_store::Result<Logged> {
        let run = async {
            let mut tx = self.pool().begin().await?;
            let inserted = sqlx::query(
                "INSERT INTO release_keys (id, product, algorithm, public_key_pem,
                                           public_key_sha256, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING",
            )
            .bind(&key.id)
            .bind(key.product.as_str())
            .bind(key.algorithm.as_str())
            .bind(&key.public_key_pem)
            .bind(&key.public_key_sha256.0[..])
            .bind(key.created_at)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if inserted == 0 {
                return Err(StoreError::exists(RecordKind::ReleaseKey, &key.id).into());
            }
            append_and_commit(tx, &event).await
        };
        Ok(run.await?)
    }

    async fn release_keys(&self, product: &ProductId) -> touchmark_store::Result<Vec<ReleaseKey>> {
        let run = async {
            sqlx::query(
                "SELECT id, product, algorithm, public_key_pem, public_key_sha256, created_at
                 FROM release_keys WHERE product = $1 ORDER BY created_at, id",
            )
            .bind(product.as_str())
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(release_key)
            .collect::<Result<Vec<_>>>()
        };
        Ok(run.await?)
    }

    async fn add_firmware_key(
        &self,
        key: FirmwareKey,
        event: Event,
    ) -> touchmark_store::Result<Logged> {
        let run = async {
            let mut tx = self.pool().begin().await?;
            let inserted = sqlx::query(
                "INSERT INTO firmware_keys (product, key_id, algorithm, public_key_pem, created_at)
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (product, key_id) DO NOTHING",
            )
            .bind(key.product.as_str())
            .bind(&key.key_id.0[..])
            .bind(&key.algorithm)
            .bind(&key.public_key_pem)
            .bind(key.created_at)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if inserted == 0 {
                return Err(StoreError::exists(RecordKind::FirmwareKey, key.key_id).into());
            }
            append_and_commit(tx, &event).await
        };
        Ok(run.await?)
    }

    async fn firmware_keys(
        &self,
        product: &ProductId,
    ) -> touchmark_store::Result<Vec<FirmwareKey>> {
        let run = async {
            sqlx::query(
                "SELECT product, key_id, algorithm, public_key_pem, created_at
                 FROM firmware_keys WHERE product = $1 ORDER BY created_at, key_id",
            )
            .bind(product.as_str())
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(firmware_key)
            .collect::<Result<Vec<_>>>()
        };
        Ok(run.await?)
    }

    async fn create_release(
        &self,
        new: NewRelease,
        event: Event,
    ) -> touchmark_store::Result<Logged> {
        let run = async {
            let r = &new.release;
            let size = i64::try_from(r.image_size).map_err(|e| corrupt("release size", e))?;
            let mut tx = self.pool().begin().await?;
            let inserted = sqlx::query(
                "INSERT INTO releases (id, product, version, image, image_sha256, image_size,
                                       signing_key, release_key, plaintext_hash, sbom, sbom_sha256,
                                       created_at, withdrawn_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, NULL)
                 ON CONFLICT DO NOTHING",
            )
            .bind(&r.id)
            .bind(r.product.as_str())
            .bind(&r.version)
            .bind(&new.image)
            .bind(&r.image_sha256.0[..])
            .bind(size)
            .bind(&r.signing_key.0[..])
            .bind(&r.release_key)
            .bind(&r.plaintext_hash)
            .bind(new.sbom.as_deref())
            .bind(r.sbom_sha256.map(|h| h.0.to_vec()))
            .bind(r.created_at)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if inserted == 0 {
                return Err(StoreError::exists(
                    RecordKind::Release,
                    format!("{} (version {} of product {})", r.id, r.version, r.product),
                )
                .into());
            }
            if !new.components.is_empty() {
                // One statement over arrays, however many components the SBOM has.
                let (mut keys, mut purls, mut versions) = (Vec::new(), Vec::new(), Vec::new());
                for c in &new.components {
                    keys.push(c.key.as_str());
                    purls.push(c.purl.as_str());
                    versions.push(c.version.as_deref());
                }
                sqlx::query(
                    "INSERT INTO release_components (release_id, purl_key, purl, version)
                     SELECT $1, * FROM UNNEST($2::text[], $3::text[], $4::text[])",
                )
                .bind(&r.id)
                .bind(keys)
                .bind(purls)
                .bind(versions)
                .execute(&mut *tx)
                .await?;
            }
            append_and_commit(tx, &event).await
        };
        Ok(run.await?)
    }

    async fn releases_with_component(
        &self,
        key: &str,
    ) -> touchmark_store::Result<Vec<ComponentRelease>> {
        let run = async {
            sqlx::query(
                "SELECT r.id, r.product, r.version, c.purl, c.version
                 FROM release_components c JOIN releases r ON r.id = c.release_id
                 WHERE c.purl_key = $1
                 ORDER BY r.created_at, r.id, c.purl",
            )
            .bind(key)
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(|row| {
                Ok(ComponentRelease {
                    release: get(row, 0)?,
                    product: ProductId::parse(&get::<String>(row, 1)?)
                        .map_err(|e| corrupt("release product", e))?,
                    version: get(row, 2)?,
                    purl: get(row, 3)?,
                    component_version: get(row, 4)?,
                })
            })
            .collect::<Result<Vec<_>>>()
        };
        Ok(run.await?)
    }

    async fn release(&self, id: &str) -> touchmark_store::Result<Option<Release>> {
        let run = async {
            sqlx::query(release_sql!(" WHERE id = $1"))
                .bind(id)
                .fetch_optional(self.pool())
                .await?
                .as_ref()
                .map(release)
                .transpose()
        };
        Ok(run.await?)
    }

    async fn releases(&self, product: &ProductId) -> touchmark_store::Result<Vec<Release>> {
        let run = async {
            sqlx::query(release_sql!(" WHERE product = $1 ORDER BY created_at, id"))
                .bind(product.as_str())
                .fetch_all(self.pool())
                .await?
                .iter()
                .map(release)
                .collect::<Result<Vec<_>>>()
        };
        Ok(run.await?)
    }

    async fn release_image(&self, id: &str) -> touchmark_store::Result<Option<Vec<u8>>> {
        let run = async {
            let row = sqlx::query("SELECT image FROM releases WHERE id = $1")
                .bind(id)
                .fetch_optional(self.pool())
                .await?;
            row.as_ref().map(|r| get::<Vec<u8>>(r, 0)).transpose()
        };
        Ok(run.await?)
    }

    async fn release_sbom(&self, id: &str) -> touchmark_store::Result<Option<Vec<u8>>> {
        let run = async {
            let row = sqlx::query("SELECT sbom FROM releases WHERE id = $1")
                .bind(id)
                .fetch_optional(self.pool())
                .await?;
            Ok::<_, Error>(
                row.as_ref()
                    .map(|r| get::<Option<Vec<u8>>>(r, 0))
                    .transpose()?
                    .flatten(),
            )
        };
        Ok(run.await?)
    }

    async fn update_release(
        &self,
        id: &str,
        rule: Rule<Release, ReleaseChange>,
    ) -> touchmark_store::Result<Release> {
        let run = async {
            let mut tx = self.pool().begin().await?;
            let row = sqlx::query(release_sql!(" WHERE id = $1 FOR NO KEY UPDATE"))
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or_else(|| StoreError::not_found(RecordKind::Release, id))?;
            let current = release(&row)?;
            let change = rule.apply(&current)?;
            sqlx::query("UPDATE releases SET withdrawn_at = $2 WHERE id = $1")
                .bind(id)
                .bind(change.withdrawn_at)
                .execute(&mut *tx)
                .await?;
            append(&mut tx, &change.event).await?;
            tx.commit().await?;
            Ok::<_, Error>(Release {
                withdrawn_at: Some(change.withdrawn_at),
                ..current
            })
        };
        Ok(run.await?)
    }

    async fn set_order_release(
        &self,
        order: &OrderId,
        release: &str,
        event: Event,
    ) -> touchmark_store::Result<Logged> {
        let run = async {
            let mut tx = self.pool().begin().await?;
            // The order's row is locked, so two changes of its release log in the order they
            // are stored.
            let known: Option<(bool,)> = sqlx::query_as(
                "SELECT EXISTS (SELECT 1 FROM releases WHERE id = $2)
                 FROM orders WHERE id = $1 FOR NO KEY UPDATE",
            )
            .bind(order.as_str())
            .bind(release)
            .fetch_optional(&mut *tx)
            .await?;
            match known {
                None => return Err(StoreError::not_found(RecordKind::Order, order.as_str()).into()),
                Some((false,)) => {
                    return Err(StoreError::not_found(RecordKind::Release, release).into());
                }
                Some((true,)) => {}
            }
            sqlx::query(
                "INSERT INTO order_releases (order_id, release_id, set_at) VALUES ($1, $2, $3)
                 ON CONFLICT (order_id) DO UPDATE SET release_id = excluded.release_id,
                     set_at = excluded.set_at",
            )
            .bind(order.as_str())
            .bind(release)
            .bind(event.at)
            .execute(&mut *tx)
            .await?;
            append_and_commit(tx, &event).await
        };
        Ok(run.await?)
    }

    async fn order_release(&self, order: &OrderId) -> touchmark_store::Result<Option<Release>> {
        let run = async {
            let row = sqlx::query(release_sql!(
                " WHERE id = (SELECT release_id FROM order_releases WHERE order_id = $1)"
            ))
            .bind(order.as_str())
            .fetch_optional(self.pool())
            .await?;
            row.as_ref().map(release).transpose()
        };
        Ok(run.await?)
    }

    async fn unit_firmware(
        &self,
        order: &OrderId,
        serial: &Serial,
    ) -> touchmark_store::Result<Option<UnitFirmware>> {
        let run = async {
            let row: Option<FirmwareRow> = sqlx::query_as(
                "SELECT release_id, wrap, image_sha256, encryption_key FROM unit_firmware
                 WHERE order_id = $1 AND serial = $2",
            )
            .bind(order.as_str())
            .bind(serial.as_str())
            .fetch_optional(self.pool())
            .await?;
            row.map(|row| unit_firmware_of(order, serial, row))
                .transpose()
        };
        Ok(run.await?)
    }

    async fn firmware_delivery(
        &self,
        order: &OrderId,
        serial: &Serial,
        release: &str,
    ) -> touchmark_store::Result<Option<UnitFirmware>> {
        let run = async {
            let mut conn = self.pool().acquire().await?;
            delivery_of(&mut conn, order, serial, release).await
        };
        Ok(run.await?)
    }

    async fn record_firmware_delivery(
        &self,
        delivery: UnitFirmware,
        event: Event,
    ) -> touchmark_store::Result<Option<UnitFirmware>> {
        let (order, serial) = (&delivery.order, &delivery.serial);
        let run = async {
            let mut tx = self.pool().begin().await?;
            // The unit's firmware row is locked, so that two deliveries of one release to one
            // unit, on two replicas, record one wrap and one event.
            let unit: Option<(i32,)> = sqlx::query_as(
                "SELECT 1 FROM unit_firmware WHERE order_id = $1 AND serial = $2
                 FOR NO KEY UPDATE",
            )
            .bind(order.as_str())
            .bind(serial.as_str())
            .fetch_optional(&mut *tx)
            .await?;
            if unit.is_none() {
                return Err(StoreError::not_found(RecordKind::Unit, serial.as_str()).into());
            }
            let before = delivery_of(&mut tx, order, serial, &delivery.release).await?;
            if before.is_some() {
                return Ok(before);
            }
            let known: (bool,) =
                sqlx::query_as("SELECT EXISTS (SELECT 1 FROM releases WHERE id = $1)")
                    .bind(&delivery.release)
                    .fetch_one(&mut *tx)
                    .await?;
            if !known.0 {
                return Err(StoreError::not_found(RecordKind::Release, &delivery.release).into());
            }
            let leaf = crate::leaf(&event)?;
            sqlx::query(
                "WITH event AS (
                     INSERT INTO events (kind, order_id, bytes, leaf_hash)
                     VALUES ($1, $2, $3, $4) RETURNING seq
                 ), latest AS (
                     UPDATE unit_firmware SET latest_release_id = $6
                     WHERE order_id = $2 AND serial = $5
                 )
                 INSERT INTO firmware_deliveries (order_id, serial, release_id, wrap,
                                                  image_sha256, event_seq, delivered_at)
                 SELECT $2, $5, $6, $7, $8, event.seq, $9 FROM event",
            )
            .bind(leaf.kind)
            .bind(order.as_str())
            .bind(leaf.bytes.as_slice())
            .bind(leaf.hash.as_bytes().as_slice())
            .bind(serial.as_str())
            .bind(&delivery.release)
            .bind(&delivery.wrap)
            .bind(delivery.image_sha256.0.as_slice())
            .bind(event.at)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok::<_, Error>(None)
        };
        Ok(run.await?)
    }
}

/// A wrap's row: release, wrap, image hash and, for a unit's issuance, its encryption key.
type FirmwareRow = (String, Vec<u8>, Vec<u8>, Option<Vec<u8>>);

fn unit_firmware_of(
    order: &OrderId,
    serial: &Serial,
    (release, wrap, sha, encryption_key): FirmwareRow,
) -> Result<UnitFirmware> {
    Ok(UnitFirmware {
        order: order.clone(),
        serial: serial.clone(),
        release,
        wrap,
        image_sha256: codec::sha256("unit image hash", &sha)?,
        encryption_key,
    })
}

/// The field update of `release` the unit received, if any.
async fn delivery_of(
    conn: &mut sqlx::PgConnection,
    order: &OrderId,
    serial: &Serial,
    release: &str,
) -> Result<Option<UnitFirmware>> {
    let row: Option<FirmwareRow> = sqlx::query_as(
        "SELECT release_id, wrap, image_sha256, NULL::bytea FROM firmware_deliveries
         WHERE order_id = $1 AND serial = $2 AND release_id = $3",
    )
    .bind(order.as_str())
    .bind(serial.as_str())
    .bind(release)
    .fetch_optional(conn)
    .await?;
    row.map(|row| unit_firmware_of(order, serial, row))
        .transpose()
}
