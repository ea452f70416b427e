//! Revocations on SQLite: the facts of a target read and the change applied by the one writer
//! thread, so nothing issues or revokes in between.

use rusqlite::{Connection, OptionalExtension, params};
use touchmark_core::clock::parse_timestamp;
use touchmark_core::event::Sha256Hash;
use touchmark_core::policy::revocation::{
    CertificateFacts, Reason, RevocationChange, RevocationFacts, RevokedAt, Target,
};
use touchmark_core::{FactoryId, OrderId, ProductId, Serial};
use touchmark_store::{RevokedCa, RevokedCertificate, Rule, StoreError, codec};

use crate::error::Result;
use crate::writer::WriteCtx;
use crate::{rows, ts};

const CERT_SQL: &str =
    "SELECT sha256, product, order_id, serial, revoked_at, revocation_reason FROM certificates";

fn revoked_at(at: Option<String>, reason: Option<String>) -> Result<Option<RevokedAt>> {
    match (at, reason) {
        (Some(at), Some(reason)) => Ok(Some(RevokedAt {
            reason: Reason::parse(&reason)
                .ok_or_else(|| codec::corrupt("revocation reason", &reason))?,
            at: parse_timestamp(&at).map_err(|e| codec::corrupt("revoked_at", e))?,
        })),
        _ => Ok(None),
    }
}

fn certificates(
    conn: &Connection,
    sql: &str,
    args: &[&dyn rusqlite::ToSql],
) -> Result<Vec<CertificateFacts>> {
    let mut stmt = conn.prepare_cached(&format!("{CERT_SQL} {sql} ORDER BY event_index"))?;
    let rows = stmt.query_map(args, |r| {
        Ok((
            r.get::<_, Vec<u8>>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, String>(3)?,
            r.get::<_, Option<String>>(4)?,
            r.get::<_, Option<String>>(5)?,
        ))
    })?;
    rows.map(|row| {
        let (sha, product, order, serial, at, reason) = row?;
        Ok(CertificateFacts {
            cert_sha256: codec::sha256("certificate sha256", &sha)?,
            product: codec::parse::<ProductId>("product", &product)?,
            order: codec::parse::<OrderId>("order", &order)?,
            serial: Serial::parse(&serial).map_err(|e| codec::corrupt("serial", e))?,
            revoked: revoked_at(at, reason)?,
        })
    })
    .collect()
}

fn facts(conn: &Connection, target: &Target) -> Result<RevocationFacts> {
    let mut facts = RevocationFacts::default();
    match target {
        Target::Unit { product, serial } => {
            facts.certificates = certificates(
                conn,
                "WHERE serial = ?1 AND (?2 IS NULL OR product = ?2)",
                &[&serial.as_str(), &product.as_ref().map(ProductId::as_str)],
            )?;
        }
        Target::Order(id) => {
            facts.order = rows::load_order(conn, id)?;
            facts.certificates = certificates(conn, "WHERE order_id = ?1", &[&id.as_str()])?;
        }
        Target::Ca(product) => {
            let found: Option<(Option<String>, Option<String>)> = conn
                .prepare_cached(
                    "SELECT r.revoked_at, r.reason FROM products p
                     LEFT JOIN ca_revocations r ON r.product = p.id WHERE p.id = ?1",
                )?
                .query_row([product.as_str()], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?;
            facts.ca = found
                .map(|(at, reason)| revoked_at(at, reason))
                .transpose()?;
        }
        Target::Provenance { station, from, to } => {
            let factory: Option<String> = conn
                .prepare_cached("SELECT factory FROM stations WHERE id = ?1")?
                .query_row([station.as_str()], |r| r.get(0))
                .optional()?;
            facts.station_factory = factory
                .map(|f| codec::parse::<FactoryId>("factory", &f))
                .transpose()?;
            facts.certificates = certificates(
                conn,
                "WHERE station = ?1 AND issued_at >= ?2 AND issued_at < ?3",
                &[&station.as_str(), &ts(*from), &ts(*to)],
            )?;
        }
    }
    Ok(facts)
}

fn apply(conn: &Connection, change: &RevocationChange) -> Result<()> {
    let set_unit = |sha: &Sha256Hash, status: &str| -> Result<()> {
        conn.prepare_cached(
            "UPDATE units SET status = ?2 WHERE (product, serial) =
                 (SELECT product, serial FROM certificates WHERE sha256 = ?1)",
        )?
        .execute(params![sha.0.as_slice(), status])?;
        Ok(())
    };
    if let Some(revoked) = change.revoked {
        for sha in &change.revoke {
            conn.prepare_cached(
                "UPDATE certificates SET revoked_at = ?2, revocation_reason = ?3 WHERE sha256 = ?1",
            )?
            .execute(params![
                sha.0.as_slice(),
                ts(revoked.at),
                revoked.reason.as_str()
            ])?;
            set_unit(sha, "revoked")?;
        }
        if let Some(product) = &change.revoke_ca {
            conn.prepare_cached(
                "INSERT INTO ca_revocations (product, reason, revoked_at) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![
                product.as_str(),
                revoked.reason.as_str(),
                ts(revoked.at)
            ])?;
        }
    }
    for sha in &change.release {
        conn.prepare_cached(
            "UPDATE certificates SET revoked_at = NULL, revocation_reason = NULL WHERE sha256 = ?1",
        )?
        .execute([sha.0.as_slice()])?;
        set_unit(sha, "provisioned")?;
    }
    if let Some(order) = &change.close_order {
        conn.prepare_cached("UPDATE orders SET state = 'closed' WHERE id = ?1")?
            .execute([order.as_str()])?;
    }
    Ok(())
}

/// Reads `target`'s facts, runs `rule`, and applies its change with its event.
pub(crate) fn revoke(
    ctx: &mut WriteCtx<'_>,
    target: &Target,
    rule: Rule<RevocationFacts, RevocationChange>,
) -> Result<touchmark_store::Revoked> {
    let facts = facts(ctx.conn, target)?;
    let change = rule.apply(&facts)?;
    let Some(event) = &change.event else {
        return Ok(touchmark_store::Revoked {
            change,
            logged: None,
        });
    };
    apply(ctx.conn, &change)?;
    let (_, logged) = ctx.append(event)?;
    Ok(touchmark_store::Revoked {
        change,
        logged: Some(logged),
    })
}

pub(crate) fn revoked_certificates(
    conn: &Connection,
    product: &ProductId,
) -> Result<Vec<RevokedCertificate>> {
    let mut stmt = conn.prepare_cached(
        "SELECT order_id, serial, cert_serial, sha256, revoked_at, revocation_reason
         FROM certificates WHERE product = ?1 AND revoked_at IS NOT NULL
         ORDER BY revoked_at, cert_serial",
    )?;
    let rows = stmt.query_map([product.as_str()], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, Vec<u8>>(3)?,
            r.get::<_, Option<String>>(4)?,
            r.get::<_, Option<String>>(5)?,
        ))
    })?;
    rows.map(|row| {
        let (order, serial, cert_serial_hex, sha, at, reason) = row?;
        Ok(RevokedCertificate {
            order: codec::parse::<OrderId>("order", &order)?,
            serial: Serial::parse(&serial).map_err(|e| codec::corrupt("serial", e))?,
            cert_serial_hex,
            cert_sha256: codec::sha256("certificate sha256", &sha)?,
            revoked: revoked_at(at, reason)?
                .ok_or_else(|| StoreError::Corrupt("a revocation without its time".into()))?,
        })
    })
    .collect()
}

pub(crate) fn revoked_cas(conn: &Connection) -> Result<Vec<RevokedCa>> {
    let mut stmt = conn.prepare_cached(
        "SELECT product, revoked_at, reason FROM ca_revocations ORDER BY revoked_at, product",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
        ))
    })?;
    rows.map(|row| {
        let (product, at, reason) = row?;
        Ok(RevokedCa {
            product: codec::parse::<ProductId>("product", &product)?,
            revoked: revoked_at(Some(at), Some(reason))?
                .ok_or_else(|| StoreError::Corrupt("a CA revocation without its time".into()))?,
        })
    })
    .collect()
}

pub(crate) fn certificate_status(
    conn: &Connection,
    product: &ProductId,
    cert_serial_hex: &str,
) -> Result<Option<Option<RevokedAt>>> {
    let row: Option<(Option<String>, Option<String>)> = conn
        .prepare_cached(
            "SELECT revoked_at, revocation_reason FROM certificates
             WHERE product = ?1 AND cert_serial = ?2",
        )?
        .query_row([product.as_str(), cert_serial_hex], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?;
    row.map(|(at, reason)| revoked_at(at, reason)).transpose()
}

/// Whether the product's CA or the serial's certificate is revoked: the issuance fact.
pub(crate) fn issue_revoked(
    conn: &Connection,
    product: &ProductId,
    serial: &Serial,
) -> Result<Option<touchmark_core::policy::issue::RevokedScope>> {
    use touchmark_core::policy::issue::RevokedScope;
    let (ca, unit): (bool, bool) = conn
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM ca_revocations WHERE product = ?1),
                    EXISTS (SELECT 1 FROM certificates WHERE product = ?1 AND serial = ?2
                                                       AND revoked_at IS NOT NULL)",
        )?
        .query_row([product.as_str(), serial.as_str()], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
    Ok(if ca {
        Some(RevokedScope::Ca)
    } else if unit {
        Some(RevokedScope::Unit)
    } else {
        None
    })
}
