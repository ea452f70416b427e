//! Turning rows into domain types. A stored value that does not parse is reported as
//! [`StoreError::Corrupt`]: it can only come from a change made outside Touchmark.

// Rows are read as tuples in column order, then checked; the tuple types are long by nature.
#![allow(clippy::type_complexity)]

use rusqlite::{Connection, OptionalExtension, Row};
use time::OffsetDateTime;
use touchmark_core::clock::parse_timestamp;
use touchmark_core::entity::{
    ApiToken, Factory, Product, Role, Station, StationStatus, UnitStatus,
};
use touchmark_core::event::{Logged, Sha256Hash};
use touchmark_core::order::{Order, OrderState};
use touchmark_core::{OrderId, SerialRule};
use touchmark_tlog::Hash;

use touchmark_store::codec;
use touchmark_store::{IssuedUnit, StoredEvent, UnitSummary};

use crate::error::Result;

type RowResult<T> = rusqlite::Result<Result<T>>;

/// A stored value that cannot be read back: the store is corrupt.
pub(crate) fn corrupt(what: &str, e: impl std::fmt::Display) -> crate::error::Error {
    codec::corrupt(what, e).into()
}

fn parse<T: std::str::FromStr>(what: &str, text: String) -> Result<T>
where
    T::Err: std::fmt::Display,
{
    Ok(codec::parse(what, &text)?)
}

/// SQLite keeps timestamps as RFC 3339 text.
fn time(what: &str, text: String) -> Result<OffsetDateTime> {
    parse_timestamp(&text).map_err(|e| corrupt(what, e))
}

fn opt_time(what: &str, text: Option<String>) -> Result<Option<OffsetDateTime>> {
    text.map(|t| time(what, t)).transpose()
}

fn hash(what: &str, bytes: Vec<u8>) -> Result<Sha256Hash> {
    Ok(codec::sha256(what, &bytes)?)
}

fn leaf(what: &str, bytes: Vec<u8>) -> Result<Hash> {
    Ok(codec::tree_hash(what, &bytes)?)
}

pub(super) fn count(n: i64) -> Result<u64> {
    Ok(codec::count(n)?)
}

pub(super) const PRODUCT_SQL: &str = "SELECT id, name, organization, common_name, hw_type_oid, crl_url, ocsp_url, \
     cert_not_after, issuing_ca_pem, created_at, attestation_roots_pem FROM products";

pub(super) fn product_from_row(r: &Row<'_>) -> RowResult<Product> {
    let raw = (
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
        r.get(8)?,
        r.get(9)?,
        r.get(10)?,
    );
    Ok((|| {
        let (
            id,
            name,
            organization,
            common_name,
            hw_type_oid,
            crl_url,
            ocsp_url,
            not_after,
            pem,
            created,
            attestation_roots_pem,
        ): (
            String,
            String,
            String,
            String,
            String,
            Option<String>,
            Option<String>,
            Option<String>,
            String,
            String,
            Option<String>,
        ) = raw;
        Ok(Product {
            id: parse("product id", id)?,
            name,
            organization,
            common_name,
            hw_type_oid,
            crl_url,
            ocsp_url,
            cert_not_after: opt_time("cert_not_after", not_after)?,
            issuing_ca_pem: pem,
            created_at: time("created_at", created)?,
            attestation_roots_pem,
        })
    })())
}

pub(super) fn factory_from_row(r: &Row<'_>) -> RowResult<Factory> {
    let (id, name, created): (String, String, String) = (r.get(0)?, r.get(1)?, r.get(2)?);
    Ok((|| {
        Ok(Factory {
            id: parse("factory id", id)?,
            name,
            created_at: time("created_at", created)?,
        })
    })())
}

pub(super) const STATION_SQL: &str = "SELECT id, factory, name, status, enrollment_expires_at, cert_sha256, created_at FROM stations";

pub(super) fn station_from_row(r: &Row<'_>) -> RowResult<Station> {
    let raw: (
        String,
        String,
        String,
        String,
        String,
        Option<String>,
        String,
    ) = (
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
    );
    Ok((|| {
        let (id, factory, name, status, expires, cert, created) = raw;
        Ok(Station {
            id: parse("station id", id)?,
            factory: parse("factory id", factory)?,
            name,
            status: StationStatus::from_str_opt(&status)
                .ok_or_else(|| corrupt("station status", &status))?,
            enrollment_expires_at: time("enrollment_expires_at", expires)?,
            cert_sha256: cert
                .map(|c| Sha256Hash::from_hex(&c).ok_or_else(|| corrupt("station cert_sha256", &c)))
                .transpose()?,
            created_at: time("created_at", created)?,
        })
    })())
}

pub(super) const ORDER_SQL: &str = "SELECT id, product, factory, quota, issued, serial_rule, not_before, not_after, state, created_at FROM orders";

pub(super) fn order_from_row(r: &Row<'_>) -> RowResult<Order> {
    let raw: (
        String,
        String,
        String,
        i64,
        i64,
        String,
        Option<String>,
        Option<String>,
        String,
        String,
    ) = (
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
        r.get(8)?,
        r.get(9)?,
    );
    Ok((|| {
        let (id, product, factory, quota, issued, rule, not_before, not_after, state, created) =
            raw;
        let serial_rule: SerialRule =
            serde_json::from_str(&rule).map_err(|e| corrupt("serial_rule", e))?;
        Ok(Order {
            id: parse("order id", id)?,
            product: parse("product id", product)?,
            factory: parse("factory id", factory)?,
            quota: count(quota)?,
            issued: count(issued)?,
            serial_rule,
            not_before: opt_time("not_before", not_before)?,
            not_after: opt_time("not_after", not_after)?,
            state: OrderState::from_str_opt(&state)
                .ok_or_else(|| corrupt("order state", &state))?,
            created_at: time("created_at", created)?,
        })
    })())
}

pub(super) fn load_order(conn: &Connection, id: &OrderId) -> Result<Option<Order>> {
    conn.prepare_cached(&format!("{ORDER_SQL} WHERE id = ?1"))?
        .query_row([id.as_str()], order_from_row)
        .optional()?
        .transpose()
}

pub(super) fn token_from_row(r: &Row<'_>) -> RowResult<ApiToken> {
    let raw: (String, String, String, String, i64) =
        (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?);
    Ok((|| {
        let (id, role, label, created, revoked) = raw;
        Ok(ApiToken {
            id: parse("token id", id)?,
            role: Role::from_str_opt(&role).ok_or_else(|| corrupt("role", &role))?,
            label,
            created_at: time("created_at", created)?,
            revoked: revoked != 0,
        })
    })())
}

pub(super) const ISSUED_UNIT_SQL: &str = "SELECT c.order_id, c.product, c.serial, c.station, c.der, c.sha256, \
     c.pubkey_sha256, c.issued_at, c.event_index, e.leaf_hash FROM certificates c JOIN events e ON e.idx = c.event_index";

pub(super) fn issued_unit_from_row(r: &Row<'_>) -> RowResult<IssuedUnit> {
    let raw: (
        String,
        String,
        String,
        String,
        Vec<u8>,
        Vec<u8>,
        Vec<u8>,
        String,
        i64,
        Vec<u8>,
    ) = (
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
        r.get(8)?,
        r.get(9)?,
    );
    Ok((|| {
        let (order, product, serial, station, der, sha, pubkey, issued_at, index, leaf_hash) = raw;
        Ok(IssuedUnit {
            order: parse("order id", order)?,
            product: parse("product id", product)?,
            serial: codec::serial(&serial)?,
            station: parse("station id", station)?,
            cert_der: der,
            cert_sha256: hash("certificate sha256", sha)?,
            pubkey_sha256: hash("pubkey sha256", pubkey)?,
            issued_at: time("issued_at", issued_at)?,
            logged: Logged {
                index: Some(count(index)?),
                leaf_hash: leaf("leaf hash", leaf_hash)?,
            },
        })
    })())
}

pub(super) const UNIT_SQL: &str = "SELECT u.product, u.serial, u.order_id, u.status, u.station, u.cert_sha256, \
     (SELECT count(*) FROM test_attempts t WHERE t.product = u.product AND t.serial = u.serial) FROM units u";

pub(super) fn unit_from_row(r: &Row<'_>) -> RowResult<UnitSummary> {
    let raw: (
        String,
        String,
        String,
        String,
        Option<String>,
        Option<Vec<u8>>,
        i64,
    ) = (
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
    );
    Ok((|| {
        let (product, serial, order, status, station, cert, attempts) = raw;
        Ok(UnitSummary {
            product: parse("product id", product)?,
            serial: codec::serial(&serial)?,
            order: parse("order id", order)?,
            status: UnitStatus::from_str_opt(&status)
                .ok_or_else(|| corrupt("unit status", &status))?,
            station: station.map(|s| parse("station id", s)).transpose()?,
            cert_sha256: cert.map(|c| hash("certificate sha256", c)).transpose()?,
            test_attempts: count(attempts)?,
        })
    })())
}

pub(super) fn event_from_row(r: &Row<'_>) -> RowResult<StoredEvent> {
    let raw: (i64, String, Vec<u8>, Vec<u8>) = (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?);
    Ok((|| {
        let (index, kind, bytes, leaf_hash) = raw;
        Ok(StoredEvent {
            index: count(index)?,
            kind,
            bytes,
            leaf_hash: leaf("leaf hash", leaf_hash)?,
        })
    })())
}
