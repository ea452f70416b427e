//! Turning PostgreSQL rows into domain types, and the column lists the queries share. A stored
//! value that does not parse is reported as [`StoreError::Corrupt`]: it can only come from a
//! change made outside Touchmark.

use sqlx::postgres::{PgRow, Postgres};
use sqlx::{Decode, Row, Type};
use time::OffsetDateTime;
use touchmark_core::entity::{
    ApiToken, Factory, Product, Role, Station, StationStatus, UnitStatus,
};
use touchmark_core::event::{Logged, Sha256Hash};
use touchmark_core::order::{Order, OrderState};
use touchmark_core::{Serial, SerialRule};
use touchmark_tlog::Hash;

use touchmark_store::codec;
use touchmark_store::{IssuedUnit, StoredEvent, UnitSummary};

use crate::error::Result;

// The column lists are macros, not constants, so that `concat!` can build whole statements
// as `&'static str` (sqlx accepts only those, or strings explicitly asserted safe).

/// The columns [`product`] reads, in order.
macro_rules! product_columns {
    () => {
        "id, name, organization, common_name, hw_type_oid, crl_url, ocsp_url, cert_not_after, \
         issuing_ca_pem, created_at, attestation_roots_pem"
    };
}

/// The columns [`factory`] reads, in order.
macro_rules! factory_columns {
    () => {
        "id, name, created_at"
    };
}

/// The columns [`station`] reads, in order.
macro_rules! station_columns {
    () => {
        "id, factory, name, status, enrollment_expires_at, cert_sha256, created_at"
    };
}

/// The columns [`order`] reads, in order.
macro_rules! order_columns {
    () => {
        "id, product, factory, quota, issued, serial_rule, not_before, not_after, state, created_at"
    };
}

/// The columns [`issued_unit`] reads, in order, from `certificates c` left-joined with
/// `events e ON e.seq = c.event_seq`.
macro_rules! issued_unit_columns {
    () => {
        "c.order_id, c.product, c.serial, c.station, c.der, c.sha256, c.pubkey_sha256, \
         c.issued_at, e.idx, e.leaf_hash"
    };
}

/// A unit's summary, from `units u`.
macro_rules! unit_select {
    () => {
        "SELECT u.product, u.serial, u.order_id, u.status, u.station, u.cert_sha256, \
         (SELECT count(*) FROM test_attempts t WHERE t.product = u.product AND t.serial = u.serial) \
         FROM units u"
    };
}

pub(super) use {
    factory_columns, issued_unit_columns, order_columns, product_columns, station_columns,
    unit_select,
};

/// Column `i` of `row`; a value of the wrong type is `Corrupt` (see the `From<sqlx::Error>`).
pub(super) fn get<'r, T>(row: &'r PgRow, i: usize) -> Result<T>
where
    T: Decode<'r, Postgres> + Type<Postgres>,
{
    Ok(row.try_get(i)?)
}

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

/// A Merkle tree hash (a leaf hash, a root).
pub(super) fn tree_hash(what: &str, bytes: Vec<u8>) -> Result<Hash> {
    Ok(codec::tree_hash(what, &bytes)?)
}

pub(super) fn serial(text: String) -> Result<Serial> {
    Ok(codec::serial(&text)?)
}

/// A 32-byte content digest.
pub(super) fn hash(what: &str, bytes: Vec<u8>) -> Result<Sha256Hash> {
    Ok(codec::sha256(what, &bytes)?)
}

/// A non-negative count or index.
pub(super) fn count(n: i64) -> Result<u64> {
    Ok(codec::count(n)?)
}

/// Reads [`product_columns`].
pub(super) fn product(r: &PgRow) -> Result<Product> {
    Ok(Product {
        id: parse("product id", get(r, 0)?)?,
        name: get(r, 1)?,
        organization: get(r, 2)?,
        common_name: get(r, 3)?,
        hw_type_oid: get(r, 4)?,
        crl_url: get(r, 5)?,
        ocsp_url: get(r, 6)?,
        cert_not_after: get(r, 7)?,
        issuing_ca_pem: get(r, 8)?,
        created_at: get(r, 9)?,
        attestation_roots_pem: get(r, 10)?,
    })
}

/// Reads [`factory_columns`].
pub(super) fn factory(r: &PgRow) -> Result<Factory> {
    Ok(Factory {
        id: parse("factory id", get(r, 0)?)?,
        name: get(r, 1)?,
        created_at: get(r, 2)?,
    })
}

/// Reads [`station_columns`].
pub(super) fn station(r: &PgRow) -> Result<Station> {
    let status: String = get(r, 3)?;
    Ok(Station {
        id: parse("station id", get(r, 0)?)?,
        factory: parse("factory id", get(r, 1)?)?,
        name: get(r, 2)?,
        status: StationStatus::from_str_opt(&status)
            .ok_or_else(|| corrupt("station status", &status))?,
        enrollment_expires_at: get(r, 4)?,
        cert_sha256: get::<Option<String>>(r, 5)?
            .map(|c| Sha256Hash::from_hex(&c).ok_or_else(|| corrupt("station cert_sha256", &c)))
            .transpose()?,
        created_at: get(r, 6)?,
    })
}

/// Reads [`order_columns`].
pub(super) fn order(r: &PgRow) -> Result<Order> {
    let rule: String = get(r, 5)?;
    let state: String = get(r, 8)?;
    let serial_rule: SerialRule =
        serde_json::from_str(&rule).map_err(|e| corrupt("serial_rule", e))?;
    Ok(Order {
        id: parse("order id", get(r, 0)?)?,
        product: parse("product id", get(r, 1)?)?,
        factory: parse("factory id", get(r, 2)?)?,
        quota: count(get(r, 3)?)?,
        issued: count(get(r, 4)?)?,
        serial_rule,
        not_before: get(r, 6)?,
        not_after: get(r, 7)?,
        state: OrderState::from_str_opt(&state).ok_or_else(|| corrupt("order state", &state))?,
        created_at: get(r, 9)?,
    })
}

/// Reads `id, role, label, created_at, revoked` from `tokens`.
pub(super) fn token(r: &PgRow) -> Result<ApiToken> {
    let role: String = get(r, 1)?;
    Ok(ApiToken {
        id: parse("token id", get(r, 0)?)?,
        role: Role::from_str_opt(&role).ok_or_else(|| corrupt("role", &role))?,
        label: get(r, 2)?,
        created_at: get::<OffsetDateTime>(r, 3)?,
        revoked: get(r, 4)?,
    })
}

/// Reads [`issued_unit_columns`] starting at column `at`, or `None` when the left join found no
/// certificate (its order column is null). The logged index is `None` until the sequencer
/// has given the issuance event one.
pub(super) fn issued_unit(r: &PgRow, at: usize) -> Result<Option<IssuedUnit>> {
    let Some(order) = get::<Option<String>>(r, at)? else {
        return Ok(None);
    };
    let leaf: Option<Vec<u8>> = get(r, at + 9)?;
    let leaf = leaf.ok_or_else(|| corrupt("certificate", "its event is missing"))?;
    Ok(Some(IssuedUnit {
        order: parse("order id", order)?,
        product: parse("product id", get(r, at + 1)?)?,
        serial: serial(get(r, at + 2)?)?,
        station: parse("station id", get(r, at + 3)?)?,
        cert_der: get(r, at + 4)?,
        cert_sha256: hash("certificate sha256", get(r, at + 5)?)?,
        pubkey_sha256: hash("pubkey sha256", get(r, at + 6)?)?,
        issued_at: get(r, at + 7)?,
        logged: Logged {
            index: get::<Option<i64>>(r, at + 8)?.map(count).transpose()?,
            leaf_hash: tree_hash("leaf hash", leaf)?,
        },
    }))
}

/// Reads [`unit_select`].
pub(super) fn unit(r: &PgRow) -> Result<UnitSummary> {
    let status: String = get(r, 3)?;
    Ok(UnitSummary {
        product: parse("product id", get(r, 0)?)?,
        serial: serial(get(r, 1)?)?,
        order: parse("order id", get(r, 2)?)?,
        status: UnitStatus::from_str_opt(&status).ok_or_else(|| corrupt("unit status", &status))?,
        station: get::<Option<String>>(r, 4)?
            .map(|s| parse("station id", s))
            .transpose()?,
        cert_sha256: get::<Option<Vec<u8>>>(r, 5)?
            .map(|c| hash("certificate sha256", c))
            .transpose()?,
        test_attempts: count(get(r, 6)?)?,
    })
}

/// Reads `idx, kind, bytes, leaf_hash` of a sequenced event.
pub(super) fn event(r: &PgRow) -> Result<StoredEvent> {
    Ok(StoredEvent {
        index: count(get(r, 0)?)?,
        kind: get(r, 1)?,
        bytes: get(r, 2)?,
        leaf_hash: tree_hash("leaf hash", get(r, 3)?)?,
    })
}
