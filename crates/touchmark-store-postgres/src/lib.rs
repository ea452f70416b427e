//! The PostgreSQL backend: one database shared by any number of stateless server replicas
//! (design.md §10).
//!
//! Every state change commits with its event in one transaction, as on SQLite, but the event
//! takes no log index then: replicas commit concurrently, and only a single writer could hand
//! out dense indices at commit. Events get a `seq` at insert instead, and the one sequencer
//! elected through the `log_lease` row ([`LogStore::acquire_sequencer`]) gives committed events
//! their indices in batches ([`LogStore::sequence_entries`]). Everything that must hold across
//! replicas (quota, one certificate per serial and per key, one-time enrollment tokens, one
//! sequencer) is enforced by the database, by conditional updates, unique constraints and row
//! locks, never by a lock in this process.
//!
//! The crate is split by purpose: `schema` (connecting, migrations), `admin` (tokens,
//! products, factories, stations, orders), `issue` (the hot path and rejections), `log`
//! (events, the lease, sequencing, checkpoints and tiles), `rows` (decoding), `error` (the one
//! mapping of database errors) and, with the `import-sqlite` feature, [`import`] (copying a
//! SQLite installation in).

mod admin;
mod alerts;
mod batch;
mod error;
mod field;
mod firmware;
#[cfg(feature = "import-sqlite")]
pub mod import;
mod issue;
mod log;
mod records;
mod revocation;
mod rows;
mod schema;
mod scratch;
mod vuln;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use time::OffsetDateTime;
use touchmark_core::entity::{ApiToken, Factory, Product, Station};
use touchmark_core::event::{Event, Leaf, Logged, Sha256Hash};
use touchmark_core::order::Order;
use touchmark_core::policy::order::OrderChange;
use touchmark_core::policy::station::StationChange;
use touchmark_core::{FactoryId, OrderId, ProductId, Serial, StationId};

use touchmark_store::{
    CatalogStore, IssuanceStore, IssueOutcome, IssueRequest, IssuedUnit, LogState, LogStore,
    LogTile, NewToken, OrderCounts, Rejection, Rule, SequencerLease, StoreError, StoredEvent,
    UnitSummary,
};

use crate::error::Result;

pub use scratch::{ScratchSchema, usage};

/// Connections per process. Each replica opens its own pool; the database's
/// `max_connections` must cover every replica's.
const MAX_CONNECTIONS: u32 = 16;

/// How long to wait for a connection, new or pooled, before answering that the database is
/// unavailable: a load balancer or a station should hear of an outage at once, not after a
/// hang.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(2);

/// Every session's timeouts (finding 1 of the fault review). No transaction of Touchmark's
/// waits on its client between statements, so one left idle belongs to a replica that froze
/// (a paused VM, a partition): PostgreSQL ends it, and releases its row locks, after 2 s, well
/// inside the sequencer lease. A statement waits at most 1 s for a row lock, and then the
/// request is answered `unavailable` and may be sent again, instead of hanging.
const SESSION_SETTINGS: &str =
    "SELECT set_config('idle_in_transaction_session_timeout', '2s', false),
        set_config('lock_timeout', '1s', false),
        CASE WHEN $1::text IS NOT NULL THEN set_config('search_path', $1, false) END";

/// Lengthens the two session timeouts for the rest of `tx`, for the rare transaction that
/// legitimately waits longer than a request may: a migration, or an import that reads SQLite
/// between batches.
async fn extend_timeouts(
    tx: &mut sqlx::PgConnection,
    lock: &str,
    idle: &str,
) -> std::result::Result<(), sqlx::Error> {
    sqlx::query(
        "SELECT set_config('lock_timeout', $1, true),
            set_config('idle_in_transaction_session_timeout', $2, true)",
    )
    .bind(lock)
    .bind(idle)
    .execute(tx)
    .await?;
    Ok(())
}

/// Whether `s` is a PostgreSQL connection URL (`postgres://` or `postgresql://`), as opposed to
/// a SQLite file path.
pub fn is_postgres_url(s: &str) -> bool {
    s.split_once("://").is_some_and(|(scheme, _)| {
        scheme.eq_ignore_ascii_case("postgres") || scheme.eq_ignore_ascii_case("postgresql")
    })
}

/// The PostgreSQL store. Cheap to clone: clones share one connection pool.
///
/// Its `Debug` output names the server, database, user and schema, never the password.
#[derive(Clone)]
pub struct PostgresStore {
    inner: Arc<Inner>,
}

struct Inner {
    pool: PgPool,
    /// This replica's group commit for issuances.
    batcher: batch::Batcher,
    /// `user@host:port/database`, and the schema: what `Debug` shows.
    target: String,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The pool is left out on purpose: its connect options hold the password.
        f.debug_struct("PostgresStore")
            .field("target", &self.inner.target)
            .finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// Connects to the database at `url` and brings its schema up to date.
    ///
    /// With `schema`, every table lives in that PostgreSQL schema (created if missing): separate
    /// installations, or tests, can share one database. The name must be a plain lower-case
    /// identifier (`[a-z_][a-z0-9_]*`, at most 63 bytes). Without it, the server's default
    /// `search_path` applies (normally `public`).
    ///
    /// Several replicas may start at once: migrations run under an advisory lock, in one
    /// transaction each.
    ///
    /// # Errors
    /// [`StoreError::Database`] if the URL or schema name is invalid or the server cannot be
    /// reached; [`StoreError::Corrupt`] if the database's schema is newer than this build.
    pub async fn connect(url: &str, schema: Option<&str>) -> touchmark_store::Result<Self> {
        let options: PgConnectOptions = url.parse().map_err(|e: sqlx::Error| {
            StoreError::Database(format!("the PostgreSQL URL does not parse: {e}"))
        })?;
        let options = options.application_name("touchmark");
        if let Some(name) = schema {
            schema::check_name(name)?;
        }
        let target = describe(&options, schema);
        let search_path: Option<Arc<str>> = schema.map(|s| Arc::from(schema::quote(s)));
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            // A ping before every use would double the round trips of the hot path; a
            // connection the server dropped fails one request, which the station retries
            // (issuance is idempotent, I2).
            .test_before_acquire(false)
            .after_connect(move |conn, _| {
                let search_path = search_path.clone();
                Box::pin(async move {
                    sqlx::query(SESSION_SETTINGS)
                        .bind(search_path.as_deref())
                        .execute(&mut *conn)
                        .await?;
                    Ok(())
                })
            })
            .connect_with(options)
            .await
            .map_err(|e| StoreError::Database(format!("cannot connect to {target}: {e}")))?;
        schema::migrate(&pool, schema).await?;
        Ok(Self {
            inner: Arc::new(Inner {
                batcher: batch::Batcher::start(pool.clone()),
                pool,
                target,
            }),
        })
    }

    /// Drops `schema` of the database at `url`, with every table in it: for benchmarks and tests
    /// that made a schema of their own with [`PostgresStore::connect`].
    ///
    /// # Errors
    /// [`StoreError::Database`] if the name is not a plain schema name or the server fails.
    pub async fn drop_schema(url: &str, schema: &str) -> touchmark_store::Result<()> {
        Ok(schema::drop(url, schema).await?)
    }

    /// The connection pool, for tools that work on the database next to the store: the SQLite
    /// copy, and fault drills that hold a replica's transaction open. Its sessions carry the
    /// store's timeouts.
    pub fn pool(&self) -> &PgPool {
        &self.inner.pool
    }
}

/// Names the database for logs and `Debug`: `user@host:port/database (schema s)`, without the
/// password.
fn describe(options: &PgConnectOptions, schema: Option<&str>) -> String {
    format!(
        "{}@{}:{}/{}{}",
        options.get_username(),
        options.get_host(),
        options.get_port(),
        options.get_database().unwrap_or_default(),
        schema.map(|s| format!(" (schema {s})")).unwrap_or_default(),
    )
}

/// Encodes `event` for the log.
fn leaf(event: &Event) -> Result<Leaf> {
    Ok(touchmark_store::codec::leaf(event)?)
}

/// Appends a leaf inside the caller's transaction, without an index (the sequencer gives it one
/// once the transaction has committed).
async fn insert_leaf(conn: &mut PgConnection, leaf: &Leaf) -> Result<Logged> {
    sqlx::query("INSERT INTO events (kind, order_id, bytes, leaf_hash) VALUES ($1, $2, $3, $4)")
        .bind(leaf.kind)
        .bind(leaf.order.as_ref().map(OrderId::as_str))
        .bind(leaf.bytes.as_slice())
        .bind(leaf.hash.as_bytes().as_slice())
        .execute(conn)
        .await?;
    Ok(leaf.logged(None))
}

/// Appends an alert, which changes no other record, in a statement of its own.
async fn record_alert(pool: &PgPool, event: &Event) -> Result<Logged> {
    let leaf = leaf(event)?;
    let mut conn = pool.acquire().await?;
    insert_leaf(&mut conn, &leaf).await
}

/// Appends `event` inside the caller's transaction, without an index.
async fn append(conn: &mut PgConnection, event: &Event) -> Result<Logged> {
    insert_leaf(conn, &leaf(event)?).await
}

/// Appends `event` in `tx` and commits: the event is logged exactly when the change it
/// records is.
async fn append_and_commit(
    mut tx: sqlx::Transaction<'_, sqlx::Postgres>,
    event: &Event,
) -> Result<Logged> {
    let logged = append(&mut tx, event).await?;
    tx.commit().await?;
    Ok(logged)
}

#[async_trait]
impl CatalogStore for PostgresStore {
    fn pool_status(&self) -> Option<touchmark_store::PoolStatus> {
        let pool = self.pool();
        let idle = u32::try_from(pool.num_idle()).unwrap_or(u32::MAX);
        Some(touchmark_store::PoolStatus {
            open: pool.size(),
            idle,
            max: pool.options().get_max_connections(),
        })
    }

    async fn create_token(&self, token: NewToken, event: Event) -> touchmark_store::Result<Logged> {
        Ok(admin::create_token(self.pool(), token, event).await?)
    }

    async fn token_by_secret(
        &self,
        secret_sha256: Sha256Hash,
    ) -> touchmark_store::Result<Option<ApiToken>> {
        Ok(admin::token_by_secret(self.pool(), secret_sha256).await?)
    }

    async fn create_product(
        &self,
        product: Product,
        event: Event,
    ) -> touchmark_store::Result<Logged> {
        Ok(admin::create_product(self.pool(), product, event).await?)
    }

    async fn install_product_ca(
        &self,
        id: &ProductId,
        issuing_ca_pem: String,
        event: Event,
    ) -> touchmark_store::Result<Logged> {
        Ok(admin::install_product_ca(self.pool(), id, issuing_ca_pem, event).await?)
    }

    async fn product(&self, id: &ProductId) -> touchmark_store::Result<Option<Product>> {
        Ok(admin::product(self.pool(), id).await?)
    }

    async fn products(&self) -> touchmark_store::Result<Vec<Product>> {
        Ok(admin::products(self.pool()).await?)
    }

    async fn create_factory(
        &self,
        factory: Factory,
        event: Event,
    ) -> touchmark_store::Result<Logged> {
        Ok(admin::create_factory(self.pool(), factory, event).await?)
    }

    async fn factory(&self, id: &FactoryId) -> touchmark_store::Result<Option<Factory>> {
        Ok(admin::factory(self.pool(), id).await?)
    }

    async fn factories(&self) -> touchmark_store::Result<Vec<Factory>> {
        Ok(admin::factories(self.pool()).await?)
    }

    async fn create_station(
        &self,
        station: Station,
        token_sha256: Sha256Hash,
        event: Event,
    ) -> touchmark_store::Result<Logged> {
        Ok(admin::create_station(self.pool(), station, token_sha256, event).await?)
    }

    async fn station(&self, id: &StationId) -> touchmark_store::Result<Option<Station>> {
        Ok(admin::station(self.pool(), id).await?)
    }

    async fn stations(&self, factory: Option<&FactoryId>) -> touchmark_store::Result<Vec<Station>> {
        Ok(admin::stations(self.pool(), factory).await?)
    }

    async fn station_for_enrollment(
        &self,
        token_sha256: Sha256Hash,
        now: OffsetDateTime,
    ) -> touchmark_store::Result<Option<Station>> {
        Ok(admin::station_for_enrollment(self.pool(), token_sha256, now).await?)
    }

    async fn enroll_station(
        &self,
        id: &StationId,
        token_sha256: Sha256Hash,
        cert_sha256: Sha256Hash,
        now: OffsetDateTime,
        event: Event,
    ) -> touchmark_store::Result<Logged> {
        Ok(admin::enroll_station(self.pool(), id, token_sha256, cert_sha256, now, event).await?)
    }

    async fn update_station(
        &self,
        id: &StationId,
        rule: Rule<Station, StationChange>,
    ) -> touchmark_store::Result<Station> {
        Ok(admin::update_station(self.pool(), id, rule).await?)
    }

    async fn create_order(&self, order: Order, event: Event) -> touchmark_store::Result<Logged> {
        Ok(admin::create_order(self.pool(), order, event).await?)
    }

    async fn order(&self, id: &OrderId) -> touchmark_store::Result<Option<Order>> {
        Ok(admin::order(self.pool(), id).await?)
    }

    async fn orders(&self) -> touchmark_store::Result<Vec<Order>> {
        Ok(admin::orders(self.pool()).await?)
    }

    async fn update_order(
        &self,
        id: &OrderId,
        rule: Rule<Order, OrderChange>,
    ) -> touchmark_store::Result<Order> {
        Ok(admin::update_order(self.pool(), id, rule).await?)
    }
}

#[async_trait]
impl IssuanceStore for PostgresStore {
    async fn order_counts(&self, id: &OrderId) -> touchmark_store::Result<OrderCounts> {
        Ok(admin::order_counts(self.pool(), id).await?)
    }

    async fn issue(&self, request: IssueRequest) -> touchmark_store::Result<IssueOutcome> {
        Ok(issue::issue(self.pool(), &self.inner.batcher, request).await?)
    }

    async fn record_rejection(&self, rejection: Rejection) -> touchmark_store::Result<Logged> {
        Ok(issue::record_rejection(self.pool(), &rejection).await?)
    }

    async fn record_alert(&self, event: Event) -> touchmark_store::Result<Logged> {
        Ok(record_alert(self.pool(), &event).await?)
    }

    async fn issued_unit(
        &self,
        product: &ProductId,
        serial: &Serial,
    ) -> touchmark_store::Result<Option<IssuedUnit>> {
        Ok(issue::issued_unit(self.pool(), product, serial).await?)
    }

    async fn units(&self, order: &OrderId) -> touchmark_store::Result<Vec<UnitSummary>> {
        Ok(issue::units(self.pool(), order).await?)
    }

    async fn unit(&self, serial: &Serial) -> touchmark_store::Result<Vec<UnitSummary>> {
        Ok(issue::unit(self.pool(), serial).await?)
    }
}

#[async_trait]
impl touchmark_store::RevocationStore for PostgresStore {
    async fn revoke(
        &self,
        target: &touchmark_core::policy::revocation::Target,
        rule: Rule<
            touchmark_core::policy::revocation::RevocationFacts,
            touchmark_core::policy::revocation::RevocationChange,
        >,
    ) -> touchmark_store::Result<touchmark_store::Revoked> {
        Ok(revocation::revoke(self.pool(), target, rule).await?)
    }

    async fn revoked_certificates(
        &self,
        product: &ProductId,
    ) -> touchmark_store::Result<Vec<touchmark_store::RevokedCertificate>> {
        Ok(revocation::revoked_certificates(self.pool(), product).await?)
    }

    async fn revoked_cas(&self) -> touchmark_store::Result<Vec<touchmark_store::RevokedCa>> {
        Ok(revocation::revoked_cas(self.pool()).await?)
    }

    async fn certificate_status(
        &self,
        product: &ProductId,
        cert_serial_hex: &str,
    ) -> touchmark_store::Result<Option<Option<touchmark_core::policy::revocation::RevokedAt>>>
    {
        Ok(revocation::certificate_status(self.pool(), product, cert_serial_hex).await?)
    }
}

#[async_trait]
impl LogStore for PostgresStore {
    async fn owner(&self) -> touchmark_store::Result<Option<String>> {
        Ok(log::owner(self.pool()).await?)
    }

    async fn claim(&self, verifier: &str, at: OffsetDateTime) -> touchmark_store::Result<String> {
        Ok(log::claim(self.pool(), verifier, at).await?)
    }

    async fn events(&self, start: u64, limit: u32) -> touchmark_store::Result<Vec<StoredEvent>> {
        Ok(log::events(self.pool(), start, limit).await?)
    }

    async fn is_empty(&self) -> touchmark_store::Result<bool> {
        Ok(log::is_empty(self.pool()).await?)
    }

    async fn event_count(&self) -> touchmark_store::Result<u64> {
        Ok(log::event_count(self.pool()).await?)
    }

    async fn acquire_sequencer(
        &self,
        holder: &str,
        ttl: Duration,
    ) -> touchmark_store::Result<Option<SequencerLease>> {
        Ok(log::claim_sequencer(self.pool(), holder, ttl, false).await?)
    }

    async fn take_over_sequencer(
        &self,
        holder: &str,
        ttl: Duration,
    ) -> touchmark_store::Result<Option<SequencerLease>> {
        Ok(log::claim_sequencer(self.pool(), holder, ttl, true).await?)
    }

    async fn release_sequencer(&self, lease: &SequencerLease) -> touchmark_store::Result<()> {
        Ok(log::release_sequencer(self.pool(), lease).await?)
    }

    async fn sequence_entries(
        &self,
        lease: &SequencerLease,
        max: u64,
    ) -> touchmark_store::Result<u64> {
        Ok(log::sequence_entries(self.pool(), lease, max).await?)
    }

    async fn log_state(&self) -> touchmark_store::Result<Option<LogState>> {
        Ok(log::log_state(self.pool()).await?)
    }

    async fn save_log_state(
        &self,
        lease: &SequencerLease,
        previous: Option<u64>,
        state: LogState,
        tiles: Vec<LogTile>,
        at: OffsetDateTime,
    ) -> touchmark_store::Result<()> {
        Ok(log::save_log_state(self.pool(), lease, previous, state, tiles, at).await?)
    }

    async fn log_tile(&self, level: u8, index: u64) -> touchmark_store::Result<Option<Vec<u8>>> {
        Ok(log::log_tile(self.pool(), level, index).await?)
    }

    async fn checkpoint_at(&self, size: u64) -> touchmark_store::Result<Option<String>> {
        Ok(log::checkpoint_at(self.pool(), size).await?)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn postgres_urls_are_told_from_paths() {
        for (text, expected) in [
            ("postgres://u@h/db", true),
            ("postgresql://u:p@h:5432/db?sslmode=require", true),
            ("POSTGRES://h/db", true),
            ("/var/lib/touchmark/touchmark.db", false),
            ("touchmark.db", false),
            ("sqlite://touchmark.db", false),
            ("postgres:/h", false),
        ] {
            assert_eq!(is_postgres_url(text), expected, "{text}");
        }
    }

    #[test]
    fn the_description_never_shows_the_password() {
        let options: PgConnectOptions = "postgres://alice:s3cr3t-pw@db.example:6543/touchmark"
            .parse()
            .unwrap();
        let text = describe(&options, Some("plant_a"));
        assert_eq!(text, "alice@db.example:6543/touchmark (schema plant_a)");
        assert!(!text.contains("s3cr3t"));
    }
}
