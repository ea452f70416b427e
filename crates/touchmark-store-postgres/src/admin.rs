//! Tokens, products, factories, stations and orders: the administrative records, each change
//! committed with its event. The checks and their errors are SQLite's; where two replicas can
//! race, a row lock or a conditional update decides, and a duplicate key that slips past a
//! check is refused by the constraint, as `Constraint::DuplicateId`.

use sqlx::postgres::{PgConnection, PgPool};
use time::OffsetDateTime;
use touchmark_core::entity::{ApiToken, Factory, Product, Station};
use touchmark_core::event::{Event, Logged, Sha256Hash};
use touchmark_core::order::{Order, OrderState};
use touchmark_core::policy::order::OrderChange;
use touchmark_core::policy::station::StationChange;
use touchmark_core::{FactoryId, OrderId, ProductId, StationId};

use crate::append;
use crate::rows::{self, factory_columns, get, order_columns, product_columns, station_columns};
use touchmark_store::{Constraint, NewToken, OrderCounts, RecordKind, Rule, StoreError, to_millis};

use crate::error::Result;

pub(super) async fn create_token(pool: &PgPool, token: NewToken, event: Event) -> Result<Logged> {
    let mut tx = pool.begin().await?;
    sqlx::query(
        "INSERT INTO tokens (id, secret_sha256, role, label, created_at)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(token.id.as_str())
    .bind(token.secret_sha256.0.as_slice())
    .bind(token.role.as_str())
    .bind(&token.label)
    .bind(to_millis(token.at))
    .execute(&mut *tx)
    .await?;
    let receipt = append(&mut tx, &event).await?;
    tx.commit().await?;
    Ok(receipt)
}

pub(super) async fn token_by_secret(
    pool: &PgPool,
    secret_sha256: Sha256Hash,
) -> Result<Option<ApiToken>> {
    sqlx::query("SELECT id, role, label, created_at, revoked FROM tokens WHERE secret_sha256 = $1")
        .bind(secret_sha256.0.as_slice())
        .fetch_optional(pool)
        .await?
        .map(|r| rows::token(&r))
        .transpose()
}

pub(super) async fn create_product(
    pool: &PgPool,
    product: Product,
    event: Event,
) -> Result<Logged> {
    let mut tx = pool.begin().await?;
    if exists(
        &mut tx,
        "SELECT 1 FROM products WHERE id = $1",
        product.id.as_str(),
    )
    .await?
    {
        return Err(StoreError::exists(RecordKind::Product, &product.id).into());
    }
    sqlx::query(concat!(
        "INSERT INTO products (",
        product_columns!(),
        ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
    ))
    .bind(product.id.as_str())
    .bind(&product.name)
    .bind(&product.organization)
    .bind(&product.common_name)
    .bind(&product.hw_type_oid)
    .bind(product.crl_url.as_deref())
    .bind(product.ocsp_url.as_deref())
    .bind(product.cert_not_after.map(to_millis))
    .bind(&product.issuing_ca_pem)
    .bind(to_millis(product.created_at))
    .bind(product.attestation_roots_pem.as_deref())
    .execute(&mut *tx)
    .await?;
    let receipt = append(&mut tx, &event).await?;
    tx.commit().await?;
    Ok(receipt)
}

pub(super) async fn install_product_ca(
    pool: &PgPool,
    id: &ProductId,
    issuing_ca_pem: String,
    event: Event,
) -> Result<Logged> {
    let mut tx = pool.begin().await?;
    let current: Option<String> =
        sqlx::query_scalar("SELECT issuing_ca_pem FROM products WHERE id = $1 FOR UPDATE")
            .bind(id.as_str())
            .fetch_optional(&mut *tx)
            .await?;
    match current {
        None => return Err(StoreError::not_found(RecordKind::Product, id).into()),
        Some(pem) if !pem.trim().is_empty() => {
            return Err(StoreError::Refused(touchmark_core::code::Refusal::new(
                touchmark_core::code::ErrorCode::Conflict,
                format!("product {id} has its issuing CA certificate already"),
            ))
            .into());
        }
        Some(_) => {}
    }
    sqlx::query("UPDATE products SET issuing_ca_pem = $2 WHERE id = $1")
        .bind(id.as_str())
        .bind(&issuing_ca_pem)
        .execute(&mut *tx)
        .await?;
    let receipt = append(&mut tx, &event).await?;
    tx.commit().await?;
    Ok(receipt)
}

pub(super) async fn product(pool: &PgPool, id: &ProductId) -> Result<Option<Product>> {
    sqlx::query(concat!(
        "SELECT ",
        product_columns!(),
        " FROM products WHERE id = $1"
    ))
    .bind(id.as_str())
    .fetch_optional(pool)
    .await?
    .map(|r| rows::product(&r))
    .transpose()
}

pub(super) async fn products(pool: &PgPool) -> Result<Vec<Product>> {
    sqlx::query(concat!(
        "SELECT ",
        product_columns!(),
        " FROM products ORDER BY id"
    ))
    .fetch_all(pool)
    .await?
    .iter()
    .map(rows::product)
    .collect()
}

pub(super) async fn create_factory(
    pool: &PgPool,
    factory: Factory,
    event: Event,
) -> Result<Logged> {
    let mut tx = pool.begin().await?;
    if exists(
        &mut tx,
        "SELECT 1 FROM factories WHERE id = $1",
        factory.id.as_str(),
    )
    .await?
    {
        return Err(StoreError::exists(RecordKind::Factory, &factory.id).into());
    }
    sqlx::query("INSERT INTO factories (id, name, created_at) VALUES ($1, $2, $3)")
        .bind(factory.id.as_str())
        .bind(&factory.name)
        .bind(to_millis(factory.created_at))
        .execute(&mut *tx)
        .await?;
    let receipt = append(&mut tx, &event).await?;
    tx.commit().await?;
    Ok(receipt)
}

pub(super) async fn factory(pool: &PgPool, id: &FactoryId) -> Result<Option<Factory>> {
    sqlx::query(concat!(
        "SELECT ",
        factory_columns!(),
        " FROM factories WHERE id = $1"
    ))
    .bind(id.as_str())
    .fetch_optional(pool)
    .await?
    .map(|r| rows::factory(&r))
    .transpose()
}

pub(super) async fn factories(pool: &PgPool) -> Result<Vec<Factory>> {
    sqlx::query(concat!(
        "SELECT ",
        factory_columns!(),
        " FROM factories ORDER BY id"
    ))
    .fetch_all(pool)
    .await?
    .iter()
    .map(rows::factory)
    .collect()
}

pub(super) async fn create_station(
    pool: &PgPool,
    station: Station,
    token_sha256: Sha256Hash,
    event: Event,
) -> Result<Logged> {
    let mut tx = pool.begin().await?;
    let row = sqlx::query(
        "SELECT EXISTS (SELECT 1 FROM factories WHERE id = $1),
                EXISTS (SELECT 1 FROM stations WHERE id = $2)",
    )
    .bind(station.factory.as_str())
    .bind(station.id.as_str())
    .fetch_one(&mut *tx)
    .await?;
    if !get::<bool>(&row, 0)? {
        return Err(StoreError::not_found(RecordKind::Factory, &station.factory).into());
    }
    if get::<bool>(&row, 1)? {
        return Err(StoreError::exists(RecordKind::Station, &station.id).into());
    }
    sqlx::query(
        "INSERT INTO stations (id, factory, name, status, enrollment_sha256,
                               enrollment_expires_at, created_at)
         VALUES ($1, $2, $3, 'pending', $4, $5, $6)",
    )
    .bind(station.id.as_str())
    .bind(station.factory.as_str())
    .bind(&station.name)
    .bind(token_sha256.0.as_slice())
    .bind(to_millis(station.enrollment_expires_at))
    .bind(to_millis(station.created_at))
    .execute(&mut *tx)
    .await?;
    let receipt = append(&mut tx, &event).await?;
    tx.commit().await?;
    Ok(receipt)
}

pub(super) async fn station(pool: &PgPool, id: &StationId) -> Result<Option<Station>> {
    sqlx::query(concat!(
        "SELECT ",
        station_columns!(),
        " FROM stations WHERE id = $1"
    ))
    .bind(id.as_str())
    .fetch_optional(pool)
    .await?
    .map(|r| rows::station(&r))
    .transpose()
}

pub(super) async fn stations(pool: &PgPool, factory: Option<&FactoryId>) -> Result<Vec<Station>> {
    sqlx::query(concat!(
        "SELECT ",
        station_columns!(),
        " FROM stations WHERE $1::text IS NULL OR factory = $1 ORDER BY id"
    ))
    .bind(factory.map(FactoryId::as_str))
    .fetch_all(pool)
    .await?
    .iter()
    .map(rows::station)
    .collect()
}

pub(super) async fn station_for_enrollment(
    pool: &PgPool,
    token_sha256: Sha256Hash,
    now: OffsetDateTime,
) -> Result<Option<Station>> {
    let station = sqlx::query(concat!(
        "SELECT ",
        station_columns!(),
        " FROM stations WHERE enrollment_sha256 = $1 AND status = 'pending'"
    ))
    .bind(token_sha256.0.as_slice())
    .fetch_optional(pool)
    .await?
    .map(|r| rows::station(&r))
    .transpose()?;
    Ok(station.filter(|s| now <= s.enrollment_expires_at))
}

pub(super) async fn enroll_station(
    pool: &PgPool,
    id: &StationId,
    token_sha256: Sha256Hash,
    cert_sha256: Sha256Hash,
    now: OffsetDateTime,
    event: Event,
) -> Result<Logged> {
    let mut tx = pool.begin().await?;
    // The token is cleared as it is used: one-time, even against concurrent requests on other
    // replicas (the second waits for the first's row lock, then finds no token).
    let changed = sqlx::query(
        "UPDATE stations SET status = 'active', enrollment_sha256 = NULL, cert_sha256 = $3
         WHERE id = $1 AND enrollment_sha256 = $2 AND status = 'pending'
           AND enrollment_expires_at >= $4",
    )
    .bind(id.as_str())
    .bind(token_sha256.0.as_slice())
    .bind(cert_sha256.to_hex())
    .bind(to_millis(now))
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if changed != 1 {
        return Err(StoreError::EnrollmentTokenInvalid.into());
    }
    let receipt = append(&mut tx, &event).await?;
    tx.commit().await?;
    Ok(receipt)
}

pub(super) async fn update_station(
    pool: &PgPool,
    id: &StationId,
    rule: Rule<Station, StationChange>,
) -> Result<Station> {
    let mut tx = pool.begin().await?;
    // Locked until commit: the rule decides on the station as it stays until the change lands.
    let station = sqlx::query(concat!(
        "SELECT ",
        station_columns!(),
        " FROM stations WHERE id = $1 FOR NO KEY UPDATE"
    ))
    .bind(id.as_str())
    .fetch_optional(&mut *tx)
    .await?
    .map(|r| rows::station(&r))
    .transpose()?
    .ok_or_else(|| StoreError::not_found(RecordKind::Station, id))?;
    let change = rule.apply(&station)?;
    // A station that is no longer pending keeps no enrollment token.
    sqlx::query(
        "UPDATE stations SET status = $2,
             enrollment_sha256 = CASE WHEN $2 = 'pending' THEN enrollment_sha256 END
         WHERE id = $1",
    )
    .bind(id.as_str())
    .bind(change.status.as_str())
    .execute(&mut *tx)
    .await?;
    append(&mut tx, &change.event).await?;
    tx.commit().await?;
    Ok(Station {
        status: change.status,
        ..station
    })
}

pub(super) async fn create_order(pool: &PgPool, order: Order, event: Event) -> Result<Logged> {
    let quota = int(order.quota)?;
    let rule = touchmark_store::codec::serial_rule(&order.serial_rule)?;
    let mut tx = pool.begin().await?;
    let row = sqlx::query(
        "SELECT EXISTS (SELECT 1 FROM products WHERE id = $1),
                EXISTS (SELECT 1 FROM factories WHERE id = $2),
                EXISTS (SELECT 1 FROM orders WHERE id = $3)",
    )
    .bind(order.product.as_str())
    .bind(order.factory.as_str())
    .bind(order.id.as_str())
    .fetch_one(&mut *tx)
    .await?;
    if !get::<bool>(&row, 0)? {
        return Err(StoreError::not_found(RecordKind::Product, &order.product).into());
    }
    if !get::<bool>(&row, 1)? {
        return Err(StoreError::not_found(RecordKind::Factory, &order.factory).into());
    }
    if get::<bool>(&row, 2)? {
        return Err(StoreError::exists(RecordKind::Order, &order.id).into());
    }
    sqlx::query(concat!(
        "INSERT INTO orders (",
        order_columns!(),
        ") VALUES ($1, $2, $3, $4, 0, $5, $6, $7, $8, $9)"
    ))
    .bind(order.id.as_str())
    .bind(order.product.as_str())
    .bind(order.factory.as_str())
    .bind(quota)
    .bind(rule)
    .bind(order.not_before.map(to_millis))
    .bind(order.not_after.map(to_millis))
    // Orders start in draft whatever the caller passes; opening is its own event.
    .bind(OrderState::Draft.as_str())
    .bind(to_millis(order.created_at))
    .execute(&mut *tx)
    .await?;
    let receipt = append(&mut tx, &event).await?;
    tx.commit().await?;
    Ok(receipt)
}

pub(super) async fn order(pool: &PgPool, id: &OrderId) -> Result<Option<Order>> {
    sqlx::query(concat!(
        "SELECT ",
        order_columns!(),
        " FROM orders WHERE id = $1"
    ))
    .bind(id.as_str())
    .fetch_optional(pool)
    .await?
    .map(|r| rows::order(&r))
    .transpose()
}

pub(super) async fn orders(pool: &PgPool) -> Result<Vec<Order>> {
    sqlx::query(concat!(
        "SELECT ",
        order_columns!(),
        " FROM orders ORDER BY created_at, id"
    ))
    .fetch_all(pool)
    .await?
    .iter()
    .map(rows::order)
    .collect()
}

/// The order, locked until the transaction ends. `FOR NO KEY UPDATE` does not block the
/// foreign-key checks of concurrent issuances (they take `KEY SHARE`); it does wait for, and
/// then see, an issuance's count.
async fn lock_order(conn: &mut PgConnection, id: &OrderId) -> Result<Order> {
    sqlx::query(concat!(
        "SELECT ",
        order_columns!(),
        " FROM orders WHERE id = $1 FOR NO KEY UPDATE"
    ))
    .bind(id.as_str())
    .fetch_optional(conn)
    .await?
    .map(|r| rows::order(&r))
    .transpose()?
    .ok_or_else(|| StoreError::not_found(RecordKind::Order, id).into())
}

/// The order, locked as [`lock_order`] locks it, or `None` if it does not exist.
pub(super) async fn lock_order_opt(conn: &mut PgConnection, id: &OrderId) -> Result<Option<Order>> {
    sqlx::query(concat!(
        "SELECT ",
        order_columns!(),
        " FROM orders WHERE id = $1 FOR NO KEY UPDATE"
    ))
    .bind(id.as_str())
    .fetch_optional(conn)
    .await?
    .map(|r| rows::order(&r))
    .transpose()
}

pub(super) async fn update_order(
    pool: &PgPool,
    id: &OrderId,
    rule: Rule<Order, OrderChange>,
) -> Result<Order> {
    let mut tx = pool.begin().await?;
    let order = lock_order(&mut tx, id).await?;
    let change = rule.apply(&order)?;
    sqlx::query("UPDATE orders SET state = $2, quota = $3 WHERE id = $1")
        .bind(id.as_str())
        .bind(change.state.as_str())
        .bind(int(change.quota)?)
        .execute(&mut *tx)
        .await?;
    append(&mut tx, &change.event).await?;
    tx.commit().await?;
    Ok(Order {
        state: change.state,
        quota: change.quota,
        ..order
    })
}

pub(super) async fn order_counts(pool: &PgPool, id: &OrderId) -> Result<OrderCounts> {
    // One statement, so one snapshot: the counts agree with each other. Events waiting for the
    // sequencer are committed, so they count.
    let row = sqlx::query(
        "SELECT o.issued,
             (SELECT count(*) FROM certificates WHERE order_id = $1),
             (SELECT count(*) FROM events WHERE order_id = $1 AND kind = 'unit.issued'),
             (SELECT count(*) FROM events WHERE order_id = $1 AND kind = 'unit.test_failed'),
             (SELECT coalesce(array_agg(bytes), '{}') FROM events
                  WHERE order_id = $1 AND kind = 'unit.refused')
         FROM orders o WHERE o.id = $1",
    )
    .bind(id.as_str())
    .fetch_optional(pool)
    .await?
    .ok_or_else(|| StoreError::not_found(RecordKind::Order, id))?;
    let mut counts = OrderCounts {
        issued: rows::count(get(&row, 0)?)?,
        certificates: rows::count(get(&row, 1)?)?,
        issued_events: rows::count(get(&row, 2)?)?,
        failed_tests: rows::count(get(&row, 3)?)?,
        refusals: Default::default(),
    };
    let refused: Vec<Vec<u8>> = get(&row, 4)?;
    counts.count_refusals(refused.iter().map(Vec::as_slice))?;
    Ok(counts)
}

/// A stored integer that Touchmark bounded before writing it (a quota): one beyond `i64`
/// cannot reach the database.
fn int(n: u64) -> Result<i64> {
    Ok(i64::try_from(n).map_err(|_| StoreError::Constraint(Constraint::InvalidValue))?)
}

/// Whether `sql` (one `$1` parameter) finds a row.
async fn exists(conn: &mut PgConnection, sql: &'static str, key: &str) -> Result<bool> {
    Ok(sqlx::query(sql)
        .bind(key)
        .fetch_optional(conn)
        .await?
        .is_some())
}
