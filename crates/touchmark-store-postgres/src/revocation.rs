//! Revocations on PostgreSQL: the target's rows locked (`FOR UPDATE`; an order's row
//! `FOR NO KEY UPDATE`, as a close takes it, so no issuance counts against it in between), the
//! rule run on them, and the change committed with its event in one transaction.

use sqlx::PgConnection;
use sqlx::postgres::{PgPool, PgRow};
use time::OffsetDateTime;
use touchmark_core::OrderId;
use touchmark_core::policy::revocation::{
    CertificateFacts, Reason, RevocationChange, RevocationFacts, RevokedAt, Target,
};
use touchmark_core::{FactoryId, ProductId};
use touchmark_store::{Revoked, RevokedCa, RevokedCertificate, Rule, StoreError, codec};

use crate::append;
use crate::error::Result;
use crate::rows::{self, get};

macro_rules! cert_sql {
    () => {
        "SELECT sha256, product, order_id, serial, revoked_at, revocation_reason FROM certificates"
    };
}

fn revoked_at(at: Option<OffsetDateTime>, reason: Option<String>) -> Result<Option<RevokedAt>> {
    match (at, reason) {
        (Some(at), Some(reason)) => Ok(Some(RevokedAt {
            reason: Reason::parse(&reason)
                .ok_or_else(|| codec::corrupt("revocation reason", &reason))?,
            at,
        })),
        _ => Ok(None),
    }
}

fn certificate(row: &PgRow) -> Result<CertificateFacts> {
    Ok(CertificateFacts {
        cert_sha256: rows::hash("certificate sha256", get(row, 0)?)?,
        product: codec::parse::<ProductId>("product", &get::<String>(row, 1)?)?,
        order: codec::parse::<OrderId>("order", &get::<String>(row, 2)?)?,
        serial: rows::serial(get(row, 3)?)?,
        revoked: revoked_at(get(row, 4)?, get(row, 5)?)?,
    })
}

async fn facts(conn: &mut PgConnection, target: &Target) -> Result<RevocationFacts> {
    let mut facts = RevocationFacts::default();
    let certs = |rows: Vec<PgRow>| rows.iter().map(certificate).collect::<Result<Vec<_>>>();
    match target {
        Target::Unit { product, serial } => {
            let found = sqlx::query(concat!(
                cert_sql!(),
                " WHERE serial = $1 AND ($2::text IS NULL OR product = $2)
                 ORDER BY product FOR UPDATE"
            ))
            .bind(serial.as_str())
            .bind(product.as_ref().map(ProductId::as_str))
            .fetch_all(&mut *conn)
            .await?;
            facts.certificates = certs(found)?;
        }
        Target::Order(id) => {
            facts.order = crate::admin::lock_order_opt(&mut *conn, id).await?;
            let found = sqlx::query(concat!(
                cert_sql!(),
                " WHERE order_id = $1 ORDER BY event_seq FOR UPDATE"
            ))
            .bind(id.as_str())
            .fetch_all(&mut *conn)
            .await?;
            facts.certificates = certs(found)?;
        }
        Target::Ca(product) => {
            let found = sqlx::query(
                "SELECT r.revoked_at, r.reason FROM products p
                 LEFT JOIN ca_revocations r ON r.product = p.id WHERE p.id = $1
                 FOR UPDATE OF p",
            )
            .bind(product.as_str())
            .fetch_optional(&mut *conn)
            .await?;
            facts.ca = found
                .map(|row| revoked_at(get(&row, 0)?, get(&row, 1)?))
                .transpose()?;
        }
        Target::Provenance { station, from, to } => {
            let factory: Option<String> =
                sqlx::query_scalar("SELECT factory FROM stations WHERE id = $1")
                    .bind(station.as_str())
                    .fetch_optional(&mut *conn)
                    .await?;
            facts.station_factory = factory
                .map(|f| codec::parse::<FactoryId>("factory", &f))
                .transpose()?;
            let found = sqlx::query(concat!(
                cert_sql!(),
                " WHERE station = $1 AND issued_at >= $2 AND issued_at < $3
                 ORDER BY event_seq FOR UPDATE"
            ))
            .bind(station.as_str())
            .bind(*from)
            .bind(*to)
            .fetch_all(&mut *conn)
            .await?;
            facts.certificates = certs(found)?;
        }
    }
    Ok(facts)
}

async fn apply(conn: &mut PgConnection, change: &RevocationChange) -> Result<()> {
    let hashes = |list: &[touchmark_core::event::Sha256Hash]| -> Vec<Vec<u8>> {
        list.iter().map(|h| h.0.to_vec()).collect()
    };
    if let Some(revoked) = change.revoked {
        if !change.revoke.is_empty() {
            sqlx::query(
                "WITH c AS (
                     UPDATE certificates SET revoked_at = $2, revocation_reason = $3
                     WHERE sha256 = ANY($1) RETURNING product, serial
                 )
                 UPDATE units u SET status = 'revoked' FROM c
                 WHERE u.product = c.product AND u.serial = c.serial",
            )
            .bind(hashes(&change.revoke))
            .bind(revoked.at)
            .bind(revoked.reason.as_str())
            .execute(&mut *conn)
            .await?;
        }
        if let Some(product) = &change.revoke_ca {
            sqlx::query(
                "INSERT INTO ca_revocations (product, reason, revoked_at) VALUES ($1, $2, $3)",
            )
            .bind(product.as_str())
            .bind(revoked.reason.as_str())
            .bind(revoked.at)
            .execute(&mut *conn)
            .await?;
        }
    }
    if !change.release.is_empty() {
        sqlx::query(
            "WITH c AS (
                 UPDATE certificates SET revoked_at = NULL, revocation_reason = NULL
                 WHERE sha256 = ANY($1) RETURNING product, serial
             )
             UPDATE units u SET status = 'provisioned' FROM c
             WHERE u.product = c.product AND u.serial = c.serial",
        )
        .bind(hashes(&change.release))
        .execute(&mut *conn)
        .await?;
    }
    if let Some(order) = &change.close_order {
        sqlx::query("UPDATE orders SET state = 'closed' WHERE id = $1")
            .bind(order.as_str())
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

pub(super) async fn revoke(
    pool: &PgPool,
    target: &Target,
    rule: Rule<RevocationFacts, RevocationChange>,
) -> Result<Revoked> {
    let mut tx = pool.begin().await?;
    let facts = facts(&mut tx, target).await?;
    let change = rule.apply(&facts)?;
    let Some(event) = &change.event else {
        tx.rollback().await?;
        return Ok(Revoked {
            change,
            logged: None,
        });
    };
    apply(&mut tx, &change).await?;
    let logged = append(&mut tx, event).await?;
    tx.commit().await?;
    Ok(Revoked {
        change,
        logged: Some(logged),
    })
}

pub(super) async fn revoked_certificates(
    pool: &PgPool,
    product: &ProductId,
) -> Result<Vec<RevokedCertificate>> {
    let found = sqlx::query(
        "SELECT order_id, serial, cert_serial, sha256, revoked_at, revocation_reason
         FROM certificates WHERE product = $1 AND revoked_at IS NOT NULL
         ORDER BY revoked_at, cert_serial",
    )
    .bind(product.as_str())
    .fetch_all(pool)
    .await?;
    found
        .iter()
        .map(|row| {
            Ok(RevokedCertificate {
                order: codec::parse::<OrderId>("order", &get::<String>(row, 0)?)?,
                serial: rows::serial(get(row, 1)?)?,
                cert_serial_hex: get(row, 2)?,
                cert_sha256: rows::hash("certificate sha256", get(row, 3)?)?,
                revoked: revoked_at(get(row, 4)?, get(row, 5)?)?
                    .ok_or_else(|| StoreError::Corrupt("a revocation without its time".into()))?,
            })
        })
        .collect()
}

pub(super) async fn revoked_cas(pool: &PgPool) -> Result<Vec<RevokedCa>> {
    let found = sqlx::query(
        "SELECT product, revoked_at, reason FROM ca_revocations ORDER BY revoked_at, product",
    )
    .fetch_all(pool)
    .await?;
    found
        .iter()
        .map(|row| {
            Ok(RevokedCa {
                product: codec::parse::<ProductId>("product", &get::<String>(row, 0)?)?,
                revoked: revoked_at(get(row, 1)?, get(row, 2)?)?.ok_or_else(|| {
                    StoreError::Corrupt("a CA revocation without its time".into())
                })?,
            })
        })
        .collect()
}

pub(super) async fn certificate_status(
    pool: &PgPool,
    product: &ProductId,
    cert_serial_hex: &str,
) -> Result<Option<Option<RevokedAt>>> {
    let row = sqlx::query(
        "SELECT revoked_at, revocation_reason FROM certificates
         WHERE product = $1 AND cert_serial = $2",
    )
    .bind(product.as_str())
    .bind(cert_serial_hex)
    .fetch_optional(pool)
    .await?;
    row.map(|row| revoked_at(get(&row, 0)?, get(&row, 1)?))
        .transpose()
}
