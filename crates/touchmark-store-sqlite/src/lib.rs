//! The embedded SQLite backend: WAL, `synchronous=FULL`, one writer thread with group commit,
//! and a small pool of read connections. One server process per database file (design.md §10):
//! the writer thread keeps the log's next index.

mod alerts;
pub mod copy;
mod error;
mod field;
mod firmware;
mod records;
mod revocation;
mod rows;
mod vuln;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use time::OffsetDateTime;
use touchmark_core::clock::format_timestamp;
use touchmark_core::entity::{ApiToken, Factory, Product, Station, StationStatus};
use touchmark_core::event::{Event, Logged, Sha256Hash};
use touchmark_core::order::{Order, OrderState};
use touchmark_core::policy::issue::{
    Decision, ExistingCertificate, Issuance, IssueFacts, OrderFacts, decide,
};
use touchmark_core::policy::order::OrderChange;
use touchmark_core::policy::station::StationChange;
use touchmark_core::{FactoryId, OrderId, ProductId, Serial, StationId};
use touchmark_store::codec;
use touchmark_store::log::{LeaseRow, SavedLog, check_lease, check_save};
use touchmark_store::{
    CatalogStore, Constraint, IssuanceStore, IssueOutcome, IssueRequest, IssuedUnit, LogState,
    LogStore, LogTile, NewToken, OrderCounts, RecordKind, Rejection, Rule, SequencerLease,
    StoreError, StoredEvent, TestAttempt, UnitSummary, to_millis,
};
use touchmark_tlog::Hash;

use self::error::{Error, Result};
use self::rows::{ISSUED_UNIT_SQL, issued_unit_from_row};
use self::writer::{WriteCtx, Writer};

/// Migrations, applied in order; `PRAGMA user_version` records how many have run.
const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/0001_init.sql"),
    include_str!("../migrations/0002_log.sql"),
    include_str!("../migrations/0003_lease.sql"),
    include_str!("../migrations/0004_owner.sql"),
    include_str!("../migrations/0005_test_record.sql"),
    include_str!("../migrations/0006_revocation.sql"),
    include_str!("../migrations/0009_oversight.sql"),
    include_str!("../migrations/0010_firmware.sql"),
    include_str!("../migrations/0013_field.sql"),
    include_str!("../migrations/0015_unit_firmware.sql"),
    include_str!("../migrations/0016_release_blobs.sql"),
    include_str!("../migrations/0017_field_updates.sql"),
    include_str!("../migrations/0018_attestation.sql"),
    include_str!("../migrations/0019_vulnerabilities.sql"),
    include_str!("../migrations/0020_units_revoked.sql"),
    include_str!("../migrations/0021_release_components.sql"),
    include_str!("../migrations/0022_advisories.sql"),
    include_str!("../migrations/0023_latest_release.sql"),
];

/// The schema version this build writes and reads: the number of migrations.
pub const SCHEMA_VERSION: usize = MIGRATIONS.len();

/// Read connections kept open between requests.
const MAX_IDLE_READERS: usize = 8;

/// The SQLite store. Cheap to clone.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    path: PathBuf,
    writer: Writer,
    readers: Mutex<Vec<Connection>>,
}

impl Inner {
    fn with_reader<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let conn = self.readers.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let conn = match conn {
            Some(conn) => conn,
            None => {
                let conn = Connection::open_with_flags(
                    &self.path,
                    OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )?;
                conn.busy_timeout(std::time::Duration::from_secs(10))?;
                conn
            }
        };
        let result = f(&conn);
        let mut idle = self.readers.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < MAX_IDLE_READERS {
            idle.push(conn);
        }
        result
    }
}

fn configure(conn: &Connection) -> Result<()> {
    // WAL lets readers run beside the writer; FULL makes every commit durable before it
    // returns (design.md §10). The busy timeout covers other processes, such as a backup.
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // The writer runs each job in a savepoint, and a savepoint keeps the pages it changes in a
    // statement journal: in a temporary file by default, one write system call per page. It
    // is only ever read to roll a job back inside its open transaction (a crash loses the
    // whole uncommitted transaction, which the WAL never saw), so memory holds it as well,
    // without the system calls.
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    Ok(())
}

/// Creates the database file, if it is not there yet, readable and writable by its owner only
/// (0600 on Unix): it holds every test record. SQLite gives the `-wal` and `-shm` files it
/// makes beside it the database file's mode. An existing file is left as it is.
fn create_private(path: &Path) -> touchmark_store::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(StoreError::Database(format!(
            "cannot create {}: {e}",
            path.display()
        ))),
    }
}

fn migrate(conn: &mut Connection) -> Result<()> {
    let applied: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    let applied = touchmark_store::codec::schema_version(applied, MIGRATIONS.len())?;
    for (n, sql) in MIGRATIONS.iter().enumerate().skip(applied) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (n + 1) as i64)?;
        tx.commit()?;
    }
    Ok(())
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and applies migrations.
    ///
    /// # Errors
    /// [`StoreError::Database`] if the file cannot be opened, [`StoreError::Corrupt`] if its
    /// schema is newer than this build.
    pub fn open(path: &Path) -> touchmark_store::Result<Self> {
        create_private(path)?;
        let mut conn = Connection::open(path).map_err(Error::from)?;
        configure(&conn)?;
        migrate(&mut conn)?;
        let writer = Writer::start(conn)?;
        Ok(Self {
            inner: Arc::new(Inner {
                path: path.to_owned(),
                writer,
                readers: Mutex::new(Vec::new()),
            }),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Runs a read on a pooled read-only connection, on a blocking thread: for queries that
    /// may scan (lists, pages of events).
    async fn read<T, F>(&self, f: F) -> touchmark_store::Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        Ok(tokio::task::spawn_blocking(move || inner.with_reader(f))
            .await
            .map_err(|e| StoreError::Database(format!("read task failed: {e}")))??)
    }

    /// Runs a point lookup by primary key right here: it takes microseconds, less than handing
    /// it to another thread would (WAL readers never wait for the writer).
    fn lookup<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> touchmark_store::Result<T> {
        Ok(self.inner.with_reader(f)?)
    }

    async fn write<T, F>(&self, f: F) -> touchmark_store::Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut WriteCtx<'_>) -> Result<T> + Send + 'static,
    {
        self.inner.writer.write(f).await
    }
}

fn ts(at: OffsetDateTime) -> String {
    format_timestamp(at)
}

fn exists(conn: &Connection, sql: &str, key: &str) -> Result<bool> {
    Ok(conn
        .prepare_cached(sql)?
        .query_row([key], |_| Ok(()))
        .optional()?
        .is_some())
}

/// A stored integer that Touchmark bounded before writing it (quotas, sizes): one beyond `i64`
/// cannot reach the database.
fn int(n: u64) -> Result<i64> {
    Ok(i64::try_from(n).map_err(|_| StoreError::Constraint(Constraint::InvalidValue))?)
}

/// Keeps a test record with the unit, order and station it came with.
fn insert_attempt(
    conn: &Connection,
    test: &TestAttempt,
    product: &ProductId,
    order: &OrderId,
    station: &StationId,
    serial: Option<&Serial>,
    event_index: u64,
) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO test_attempts (product, order_id, station, serial, verdict, format, sha256, record, event_index, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?
    .execute(params![
        product.as_str(),
        order.as_str(),
        station.as_str(),
        serial.map(Serial::as_str),
        test.verdict.as_str(),
        test.format.as_str(),
        test.sha256.0.as_slice(),
        test.record,
        event_index as i64,
        ts(test.at),
    ])?;
    Ok(())
}

/// Reads what `policy::issue::decide` needs. The single writer thread serialises every write,
/// so what is read here stays true until this transaction commits.
fn issue_facts(conn: &Connection, req: &IssueRequest) -> Result<(IssueFacts, Option<IssuedUnit>)> {
    let issuance = req.issuance();
    let status: Option<String> = conn
        .prepare_cached("SELECT status FROM stations WHERE id = ?1")?
        .query_row([issuance.attempt.station.as_str()], |r| r.get(0))
        .optional()?;
    let station = status
        .map(|s| {
            StationStatus::from_str_opt(&s)
                .ok_or_else(|| StoreError::Corrupt(format!("station status `{s}`")))
        })
        .transpose()?;
    let order = rows::load_order(conn, &issuance.attempt.order)?;
    let existing = conn
        .prepare_cached(&format!(
            "{ISSUED_UNIT_SQL} WHERE c.product = ?1 AND c.serial = ?2"
        ))?
        .query_row(
            [issuance.product.as_str(), issuance.serial.as_str()],
            issued_unit_from_row,
        )
        .optional()?
        .transpose()?;
    let key_bound_to: Option<String> = conn
        .prepare_cached("SELECT serial FROM certificates WHERE pubkey_sha256 = ?1")?
        .query_row([issuance.pubkey_sha256.0.as_slice()], |r| r.get(0))
        .optional()?;
    let test_used_by: Option<String> = conn
        .prepare_cached("SELECT serial FROM certificates WHERE test_sha256 = ?1")?
        .query_row([req.test().sha256.0.as_slice()], |r| r.get(0))
        .optional()?;
    let parse =
        |s: String| Serial::parse(&s).map_err(|e| StoreError::Corrupt(format!("serial: {e}")));
    let facts = IssueFacts {
        // Read here, in the transaction that commits the decision.
        now: req.now(),
        station,
        order: order.as_ref().map(OrderFacts::from),
        existing: existing.as_ref().map(|unit| ExistingCertificate {
            order: unit.order.clone(),
            pubkey_sha256: unit.pubkey_sha256,
        }),
        key_bound_to: key_bound_to.map(parse).transpose()?,
        test_used_by: test_used_by.map(parse).transpose()?,
        revoked: revocation::issue_revoked(conn, &issuance.product, &issuance.serial)?,
    };
    Ok((facts, existing))
}

fn issue_in_tx(ctx: &mut WriteCtx<'_>, req: IssueRequest) -> Result<IssueOutcome> {
    let (facts, existing) = issue_facts(ctx.conn, &req)?;
    let issuance = req.issuance();
    let attempt = &issuance.attempt;
    match decide(&facts, issuance) {
        Decision::AlreadyIssued => {
            let unit = existing.ok_or_else(codec::retry_without_unit)?;
            return Ok(IssueOutcome::AlreadyIssued(unit));
        }
        Decision::Refuse { refusal, event } => {
            let (index, logged) = ctx.append(&event)?;
            insert_attempt(
                ctx.conn,
                req.test(),
                &issuance.product,
                &attempt.order,
                &attempt.station,
                Some(&issuance.serial),
                index,
            )?;
            return Ok(IssueOutcome::Refused { refusal, logged });
        }
        Decision::Proceed => {}
    }
    // The race guard behind the quota check: the count moves only while it is below the quota. With one
    // writer it always moves here; if it did not, the facts above were wrong.
    let counted = ctx
        .conn
        .prepare_cached("UPDATE orders SET issued = issued + 1 WHERE id = ?1 AND state = 'open' AND issued < quota")?
        .execute([attempt.order.as_str()])?;
    if counted != 1 {
        return Err(StoreError::Database(format!(
            "order {}: the count did not move although the checks passed",
            attempt.order
        ))
        .into());
    }
    let (index, logged) = ctx.append(req.event())?;
    let conn = ctx.conn;
    let at = ts(attempt.at);
    let cert_sha256 = issuance.cert_sha256;
    conn.prepare_cached(
        "INSERT INTO certificates (sha256, product, serial, order_id, station, pubkey_sha256, cert_serial, der, event_index, issued_at, test_sha256)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )?
    .execute(params![
        cert_sha256.0.as_slice(),
        issuance.product.as_str(),
        issuance.serial.as_str(),
        attempt.order.as_str(),
        attempt.station.as_str(),
        issuance.pubkey_sha256.0.as_slice(),
        req.certificate().serial_hex,
        req.certificate().der,
        index as i64,
        at,
        req.test().sha256.0.as_slice(),
    ])?;
    conn.prepare_cached(
        "INSERT INTO units (product, serial, order_id, status, station, pubkey_sha256, cert_sha256, updated_at)
         VALUES (?1, ?2, ?3, 'provisioned', ?4, ?5, ?6, ?7)
         ON CONFLICT (product, serial) DO UPDATE SET order_id = excluded.order_id, status = 'provisioned',
             station = excluded.station, pubkey_sha256 = excluded.pubkey_sha256,
             cert_sha256 = excluded.cert_sha256, updated_at = excluded.updated_at",
    )?
    .execute(params![
        issuance.product.as_str(),
        issuance.serial.as_str(),
        attempt.order.as_str(),
        attempt.station.as_str(),
        issuance.pubkey_sha256.0.as_slice(),
        cert_sha256.0.as_slice(),
        at,
    ])?;
    insert_attempt(
        conn,
        req.test(),
        &issuance.product,
        &attempt.order,
        &attempt.station,
        Some(&issuance.serial),
        index,
    )?;
    if let Some(firmware) = req.firmware() {
        firmware::insert_unit_firmware(conn, firmware, index)?;
    }
    let (issuance, certificate, _) = req.into_parts();
    let Issuance {
        attempt,
        product,
        serial,
        pubkey_sha256,
        ..
    } = issuance;
    Ok(IssueOutcome::Issued(IssuedUnit {
        order: attempt.order,
        product,
        serial,
        station: attempt.station,
        cert_der: certificate.der,
        cert_sha256,
        pubkey_sha256,
        // As stored: to the millisecond, so a retry reads back the same value.
        issued_at: to_millis(attempt.at),
        logged,
    }))
}

#[async_trait]
impl CatalogStore for SqliteStore {
    async fn create_token(&self, token: NewToken, event: Event) -> touchmark_store::Result<Logged> {
        self.write(move |ctx| {
            ctx.conn
                .prepare_cached(
                    "INSERT INTO tokens (id, secret_sha256, role, label, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                )?
                .execute(params![
                    token.id.as_str(),
                    token.secret_sha256.0.as_slice(),
                    token.role.as_str(),
                    token.label,
                    ts(token.at)
                ])?;
            ctx.append(&event).map(|(_, r)| r)
        })
        .await
    }

    async fn token_by_secret(
        &self,
        secret_sha256: Sha256Hash,
    ) -> touchmark_store::Result<Option<ApiToken>> {
        self.lookup(|conn| {
            conn.prepare_cached(
                "SELECT id, role, label, created_at, revoked FROM tokens WHERE secret_sha256 = ?1",
            )?
            .query_row([secret_sha256.0.as_slice()], rows::token_from_row)
            .optional()?
            .transpose()
        })
    }

    async fn create_product(
        &self,
        product: Product,
        event: Event,
    ) -> touchmark_store::Result<Logged> {
        self.write(move |ctx| {
            if exists(ctx.conn, "SELECT 1 FROM products WHERE id = ?1", product.id.as_str())? {
                return Err(StoreError::exists(RecordKind::Product, &product.id).into());
            }
            ctx.conn
                .prepare_cached(
                    "INSERT INTO products (id, name, organization, common_name, hw_type_oid, crl_url, ocsp_url,
                         cert_not_after, issuing_ca_pem, created_at, attestation_roots_pem)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                )?
                .execute(params![
                    product.id.as_str(),
                    product.name,
                    product.organization,
                    product.common_name,
                    product.hw_type_oid,
                    product.crl_url,
                    product.ocsp_url,
                    product.cert_not_after.map(ts),
                    product.issuing_ca_pem,
                    ts(product.created_at),
                    product.attestation_roots_pem,
                ])?;
            ctx.append(&event).map(|(_, r)| r)
        })
        .await
    }

    async fn install_product_ca(
        &self,
        id: &ProductId,
        issuing_ca_pem: String,
        event: Event,
    ) -> touchmark_store::Result<Logged> {
        let id = id.clone();
        self.write(move |ctx| {
            let current: Option<String> = ctx
                .conn
                .prepare_cached("SELECT issuing_ca_pem FROM products WHERE id = ?1")?
                .query_row([id.as_str()], |r| r.get(0))
                .optional()?;
            match current {
                None => return Err(StoreError::not_found(RecordKind::Product, &id).into()),
                Some(pem) if !pem.trim().is_empty() => {
                    return Err(StoreError::Refused(touchmark_core::code::Refusal::new(
                        touchmark_core::code::ErrorCode::Conflict,
                        format!("product {id} has its issuing CA certificate already"),
                    ))
                    .into());
                }
                Some(_) => {}
            }
            ctx.conn
                .prepare_cached("UPDATE products SET issuing_ca_pem = ?2 WHERE id = ?1")?
                .execute(params![id.as_str(), issuing_ca_pem])?;
            ctx.append(&event).map(|(_, r)| r)
        })
        .await
    }

    async fn product(&self, id: &ProductId) -> touchmark_store::Result<Option<Product>> {
        let id = id.clone();
        self.lookup(|conn| {
            conn.prepare_cached(&format!("{} WHERE id = ?1", rows::PRODUCT_SQL))?
                .query_row([id.as_str()], rows::product_from_row)
                .optional()?
                .transpose()
        })
    }

    async fn products(&self) -> touchmark_store::Result<Vec<Product>> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(&format!("{} ORDER BY id", rows::PRODUCT_SQL))?;
            let rows = stmt.query_map([], rows::product_from_row)?;
            rows.map(|r| r?).collect()
        })
        .await
    }

    async fn create_factory(
        &self,
        factory: Factory,
        event: Event,
    ) -> touchmark_store::Result<Logged> {
        self.write(move |ctx| {
            if exists(
                ctx.conn,
                "SELECT 1 FROM factories WHERE id = ?1",
                factory.id.as_str(),
            )? {
                return Err(StoreError::exists(RecordKind::Factory, &factory.id).into());
            }
            ctx.conn
                .prepare_cached("INSERT INTO factories (id, name, created_at) VALUES (?1, ?2, ?3)")?
                .execute(params![
                    factory.id.as_str(),
                    factory.name,
                    ts(factory.created_at)
                ])?;
            ctx.append(&event).map(|(_, r)| r)
        })
        .await
    }

    async fn factory(&self, id: &FactoryId) -> touchmark_store::Result<Option<Factory>> {
        let id = id.clone();
        self.lookup(|conn| {
            conn.prepare_cached("SELECT id, name, created_at FROM factories WHERE id = ?1")?
                .query_row([id.as_str()], rows::factory_from_row)
                .optional()?
                .transpose()
        })
    }

    async fn factories(&self) -> touchmark_store::Result<Vec<Factory>> {
        self.read(|conn| {
            let mut stmt =
                conn.prepare_cached("SELECT id, name, created_at FROM factories ORDER BY id")?;
            let rows = stmt.query_map([], rows::factory_from_row)?;
            rows.map(|r| r?).collect()
        })
        .await
    }

    async fn create_station(
        &self,
        station: Station,
        token_sha256: Sha256Hash,
        event: Event,
    ) -> touchmark_store::Result<Logged> {
        self.write(move |ctx| {
            if !exists(ctx.conn, "SELECT 1 FROM factories WHERE id = ?1", station.factory.as_str())? {
                return Err(StoreError::not_found(RecordKind::Factory, &station.factory).into());
            }
            if exists(ctx.conn, "SELECT 1 FROM stations WHERE id = ?1", station.id.as_str())? {
                return Err(StoreError::exists(RecordKind::Station, &station.id).into());
            }
            ctx.conn
                .prepare_cached(
                    "INSERT INTO stations (id, factory, name, status, enrollment_sha256, enrollment_expires_at, created_at)
                     VALUES (?1, ?2, ?3, 'pending', ?4, ?5, ?6)",
                )?
                .execute(params![
                    station.id.as_str(),
                    station.factory.as_str(),
                    station.name,
                    token_sha256.0.as_slice(),
                    ts(station.enrollment_expires_at),
                    ts(station.created_at),
                ])?;
            ctx.append(&event).map(|(_, r)| r)
        })
        .await
    }

    async fn station(&self, id: &StationId) -> touchmark_store::Result<Option<Station>> {
        let id = id.clone();
        self.lookup(|conn| {
            conn.prepare_cached(&format!("{} WHERE id = ?1", rows::STATION_SQL))?
                .query_row([id.as_str()], rows::station_from_row)
                .optional()?
                .transpose()
        })
    }

    async fn stations(&self, factory: Option<&FactoryId>) -> touchmark_store::Result<Vec<Station>> {
        let factory = factory.cloned();
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "{} WHERE ?1 IS NULL OR factory = ?1 ORDER BY id",
                rows::STATION_SQL
            ))?;
            let rows = stmt.query_map(
                [factory.as_ref().map(FactoryId::as_str)],
                rows::station_from_row,
            )?;
            rows.map(|r| r?).collect()
        })
        .await
    }

    async fn station_for_enrollment(
        &self,
        token_sha256: Sha256Hash,
        now: OffsetDateTime,
    ) -> touchmark_store::Result<Option<Station>> {
        let station = self
            .read(move |conn| {
                conn.prepare_cached(&format!(
                    "{} WHERE enrollment_sha256 = ?1 AND status = 'pending'",
                    rows::STATION_SQL
                ))?
                .query_row([token_sha256.0.as_slice()], rows::station_from_row)
                .optional()?
                .transpose()
            })
            .await?;
        Ok(station.filter(|s| now <= s.enrollment_expires_at))
    }

    async fn enroll_station(
        &self,
        id: &StationId,
        token_sha256: Sha256Hash,
        cert_sha256: Sha256Hash,
        now: OffsetDateTime,
        event: Event,
    ) -> touchmark_store::Result<Logged> {
        let id = id.clone();
        self.write(move |ctx| {
            // The token is cleared as it is used: one-time, even against concurrent requests.
            let changed = ctx
                .conn
                .prepare_cached(
                    "UPDATE stations SET status = 'active', enrollment_sha256 = NULL, cert_sha256 = ?3
                     WHERE id = ?1 AND enrollment_sha256 = ?2 AND status = 'pending' AND enrollment_expires_at >= ?4",
                )?
                .execute(params![id.as_str(), token_sha256.0.as_slice(), cert_sha256.to_hex(), ts(now)])?;
            if changed != 1 {
                return Err(StoreError::EnrollmentTokenInvalid.into());
            }
            ctx.append(&event).map(|(_, r)| r)
        })
        .await
    }

    async fn update_station(
        &self,
        id: &StationId,
        rule: Rule<Station, StationChange>,
    ) -> touchmark_store::Result<Station> {
        let id = id.clone();
        self.write(move |ctx| {
            let station = ctx
                .conn
                .prepare_cached(&format!("{} WHERE id = ?1", rows::STATION_SQL))?
                .query_row([id.as_str()], rows::station_from_row)
                .optional()?
                .transpose()?
                .ok_or_else(|| StoreError::not_found(RecordKind::Station, &id))?;
            let change = rule.apply(&station)?;
            // A station that is no longer pending keeps no enrollment token.
            ctx.conn
                .prepare_cached(
                    "UPDATE stations SET status = ?2,
                         enrollment_sha256 = CASE WHEN ?2 = 'pending' THEN enrollment_sha256 END
                     WHERE id = ?1",
                )?
                .execute([id.as_str(), change.status.as_str()])?;
            ctx.append(&change.event)?;
            Ok(Station {
                status: change.status,
                ..station
            })
        })
        .await
    }

    async fn create_order(&self, order: Order, event: Event) -> touchmark_store::Result<Logged> {
        self.write(move |ctx| {
            if !exists(ctx.conn, "SELECT 1 FROM products WHERE id = ?1", order.product.as_str())? {
                return Err(StoreError::not_found(RecordKind::Product, &order.product).into());
            }
            if !exists(ctx.conn, "SELECT 1 FROM factories WHERE id = ?1", order.factory.as_str())? {
                return Err(StoreError::not_found(RecordKind::Factory, &order.factory).into());
            }
            if exists(ctx.conn, "SELECT 1 FROM orders WHERE id = ?1", order.id.as_str())? {
                return Err(StoreError::exists(RecordKind::Order, &order.id).into());
            }
            let rule = codec::serial_rule(&order.serial_rule)?;
            ctx.conn
                .prepare_cached(
                    "INSERT INTO orders (id, product, factory, quota, issued, serial_rule, not_before, not_after, state, created_at)
                     VALUES (?1, ?2, ?3, ?4, 0, ?5, ?6, ?7, ?8, ?9)",
                )?
                .execute(params![
                    order.id.as_str(),
                    order.product.as_str(),
                    order.factory.as_str(),
                    int(order.quota)?,
                    rule,
                    order.not_before.map(ts),
                    order.not_after.map(ts),
                    // Orders start in draft whatever the caller passes; opening is its own event.
                    OrderState::Draft.as_str(),
                    ts(order.created_at),
                ])?;
            ctx.append(&event).map(|(_, r)| r)
        })
        .await
    }

    async fn order(&self, id: &OrderId) -> touchmark_store::Result<Option<Order>> {
        let id = id.clone();
        self.lookup(|conn| rows::load_order(conn, &id))
    }

    async fn orders(&self) -> touchmark_store::Result<Vec<Order>> {
        self.read(|conn| {
            let mut stmt =
                conn.prepare_cached(&format!("{} ORDER BY created_at, id", rows::ORDER_SQL))?;
            let rows = stmt.query_map([], rows::order_from_row)?;
            rows.map(|r| r?).collect()
        })
        .await
    }

    async fn update_order(
        &self,
        id: &OrderId,
        rule: Rule<Order, OrderChange>,
    ) -> touchmark_store::Result<Order> {
        let id = id.clone();
        self.write(move |ctx| {
            let order = rows::load_order(ctx.conn, &id)?
                .ok_or_else(|| StoreError::not_found(RecordKind::Order, &id))?;
            let change = rule.apply(&order)?;
            ctx.conn
                .prepare_cached("UPDATE orders SET state = ?2, quota = ?3 WHERE id = ?1")?
                .execute(params![
                    id.as_str(),
                    change.state.as_str(),
                    int(change.quota)?
                ])?;
            ctx.append(&change.event)?;
            Ok(Order {
                state: change.state,
                quota: change.quota,
                ..order
            })
        })
        .await
    }
}

#[async_trait]
impl IssuanceStore for SqliteStore {
    async fn order_counts(&self, id: &OrderId) -> touchmark_store::Result<OrderCounts> {
        let id = id.clone();
        self.read(move |conn| {
            let issued: i64 = conn
                .prepare_cached("SELECT issued FROM orders WHERE id = ?1")?
                .query_row([id.as_str()], |r| r.get(0))
                .optional()?
                .ok_or_else(|| StoreError::not_found(RecordKind::Order, &id))?;
            let count = |sql: &str| -> Result<u64> {
                let n: i64 = conn
                    .prepare_cached(sql)?
                    .query_row([id.as_str()], |r| r.get(0))?;
                rows::count(n)
            };
            let mut counts = OrderCounts {
                issued: rows::count(issued)?,
                certificates: count("SELECT count(*) FROM certificates WHERE order_id = ?1")?,
                issued_events: count(
                    "SELECT count(*) FROM events WHERE order_id = ?1 AND kind = 'unit.issued'",
                )?,
                failed_tests: count(
                    "SELECT count(*) FROM events WHERE order_id = ?1 AND kind = 'unit.test_failed'",
                )?,
                refusals: Default::default(),
            };
            let mut stmt = conn.prepare_cached(
                "SELECT bytes FROM events WHERE order_id = ?1 AND kind = 'unit.refused'",
            )?;
            let refused = stmt
                .query_map([id.as_str()], |r| r.get::<_, Vec<u8>>(0))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            counts.count_refusals(refused.iter().map(Vec::as_slice))?;
            Ok(counts)
        })
        .await
    }

    async fn issue(&self, request: IssueRequest) -> touchmark_store::Result<IssueOutcome> {
        self.write(move |ctx| issue_in_tx(ctx, request)).await
    }

    async fn record_rejection(&self, rejection: Rejection) -> touchmark_store::Result<Logged> {
        self.write(move |ctx| {
            let r = &rejection;
            let (index, logged) = ctx.append(&r.event)?;
            // A record is kept with its product: an unknown order has none, and keeps only
            // its event.
            let (Some(test), Some(product)) = (&r.test, &r.product) else {
                return Ok(logged);
            };
            insert_attempt(
                ctx.conn,
                test,
                product,
                &r.order,
                &r.station,
                r.serial.as_ref(),
                index,
            )?;
            if let (true, Some(serial)) = (r.failed_unit, &r.serial) {
                // A failed test never downgrades a provisioned unit.
                ctx.conn
                    .prepare_cached(
                        "INSERT INTO units (product, serial, order_id, status, station, updated_at)
                         VALUES (?1, ?2, ?3, 'failed_test', ?4, ?5)
                         ON CONFLICT (product, serial) DO UPDATE SET order_id = excluded.order_id,
                             station = excluded.station, updated_at = excluded.updated_at
                         WHERE units.status = 'failed_test'",
                    )?
                    .execute(params![
                        product.as_str(),
                        serial.as_str(),
                        r.order.as_str(),
                        r.station.as_str(),
                        ts(test.at)
                    ])?;
            }
            Ok(logged)
        })
        .await
    }

    async fn record_alert(&self, event: Event) -> touchmark_store::Result<Logged> {
        self.write(move |ctx| ctx.append(&event).map(|(_, logged)| logged))
            .await
    }

    async fn issued_unit(
        &self,
        product: &ProductId,
        serial: &Serial,
    ) -> touchmark_store::Result<Option<IssuedUnit>> {
        let (product, serial) = (product.clone(), serial.clone());
        self.lookup(|conn| {
            conn.prepare_cached(&format!(
                "{ISSUED_UNIT_SQL} WHERE c.product = ?1 AND c.serial = ?2"
            ))?
            .query_row([product.as_str(), serial.as_str()], issued_unit_from_row)
            .optional()?
            .transpose()
        })
    }

    async fn units(&self, order: &OrderId) -> touchmark_store::Result<Vec<UnitSummary>> {
        let order = order.clone();
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "{} WHERE u.order_id = ?1 ORDER BY u.serial",
                rows::UNIT_SQL
            ))?;
            let rows = stmt.query_map([order.as_str()], rows::unit_from_row)?;
            rows.map(|r| r?).collect()
        })
        .await
    }

    async fn unit(&self, serial: &Serial) -> touchmark_store::Result<Vec<UnitSummary>> {
        let serial = serial.clone();
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "{} WHERE u.serial = ?1 ORDER BY u.product",
                rows::UNIT_SQL
            ))?;
            let rows = stmt.query_map([serial.as_str()], rows::unit_from_row)?;
            rows.map(|r| r?).collect()
        })
        .await
    }
}

#[async_trait]
impl touchmark_store::RevocationStore for SqliteStore {
    async fn revoke(
        &self,
        target: &touchmark_core::policy::revocation::Target,
        rule: Rule<
            touchmark_core::policy::revocation::RevocationFacts,
            touchmark_core::policy::revocation::RevocationChange,
        >,
    ) -> touchmark_store::Result<touchmark_store::Revoked> {
        let target = target.clone();
        self.write(move |ctx| revocation::revoke(ctx, &target, rule))
            .await
    }

    async fn revoked_certificates(
        &self,
        product: &ProductId,
    ) -> touchmark_store::Result<Vec<touchmark_store::RevokedCertificate>> {
        let product = product.clone();
        self.read(move |conn| revocation::revoked_certificates(conn, &product))
            .await
    }

    async fn revoked_cas(&self) -> touchmark_store::Result<Vec<touchmark_store::RevokedCa>> {
        self.read(revocation::revoked_cas).await
    }

    async fn certificate_status(
        &self,
        product: &ProductId,
        cert_serial_hex: &str,
    ) -> touchmark_store::Result<Option<Option<touchmark_core::policy::revocation::RevokedAt>>>
    {
        self.lookup(|conn| revocation::certificate_status(conn, product, cert_serial_hex))
    }
}

impl SqliteStore {
    /// Grants the sequencer lease to `holder` for `ttl`: when there is none, when it has
    /// expired, when it is the holder's own (a live one is renewed in its epoch), or, with
    /// `take_over`, whatever holds it. Any grant but a renewal starts a new epoch, which fences
    /// the former holder.
    async fn claim_sequencer(
        &self,
        holder: &str,
        ttl: std::time::Duration,
        take_over: bool,
    ) -> touchmark_store::Result<Option<SequencerLease>> {
        let holder = holder.to_owned();
        let ttl = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
        self.write(move |ctx| {
            let now = now_millis();
            let current: Option<(String, i64, i64)> = ctx
                .conn
                .prepare_cached("SELECT holder, epoch, expires_at FROM log_lease WHERE id = 1")?
                .query_row([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .optional()?;
            let epoch = match current {
                Some((_, epoch, _)) if take_over => epoch + 1,
                // A live lease of our own is renewed in the same epoch.
                Some((h, epoch, expires)) if h == holder && expires > now => epoch,
                Some((_, _, expires)) if expires > now => return Ok(None),
                Some((_, epoch, _)) => epoch + 1,
                None => 1,
            };
            ctx.conn
                .prepare_cached(
                    "INSERT INTO log_lease (id, holder, epoch, expires_at) VALUES (1, ?1, ?2, ?3)
                     ON CONFLICT (id) DO UPDATE SET holder = excluded.holder, epoch = excluded.epoch,
                         expires_at = excluded.expires_at",
                )?
                .execute(params![holder, epoch, now.saturating_add(ttl)])?;
            Ok(Some(SequencerLease {
                holder,
                epoch: rows::count(epoch)?,
            }))
        })
        .await
    }
}

#[async_trait]
impl LogStore for SqliteStore {
    async fn owner(&self) -> touchmark_store::Result<Option<String>> {
        self.read(|conn| {
            Ok(conn
                .query_row("SELECT verifier FROM log_owner WHERE id = 1", [], |r| {
                    r.get(0)
                })
                .optional()?)
        })
        .await
    }

    async fn claim(&self, verifier: &str, at: OffsetDateTime) -> touchmark_store::Result<String> {
        let verifier = verifier.to_owned();
        self.write(move |ctx| {
            ctx.conn
                .prepare_cached(
                    "INSERT INTO log_owner (id, verifier, claimed_at) VALUES (1, ?1, ?2)
                     ON CONFLICT (id) DO NOTHING",
                )?
                .execute(params![verifier, ts(at)])?;
            Ok(ctx
                .conn
                .query_row("SELECT verifier FROM log_owner WHERE id = 1", [], |r| {
                    r.get(0)
                })?)
        })
        .await
    }

    async fn events(&self, start: u64, limit: u32) -> touchmark_store::Result<Vec<StoredEvent>> {
        self.read(move |conn| {
            let mut stmt =
                conn.prepare_cached("SELECT idx, kind, bytes, leaf_hash FROM events WHERE idx >= ?1 ORDER BY idx LIMIT ?2")?;
            // Past i64::MAX there is nothing: clamp rather than wrap to a negative index.
            let start = i64::try_from(start).unwrap_or(i64::MAX);
            let rows = stmt.query_map(params![start, limit], rows::event_from_row)?;
            rows.map(|r| r?).collect()
        })
        .await
    }

    async fn is_empty(&self) -> touchmark_store::Result<bool> {
        self.read(|conn| {
            Ok(conn.query_row("SELECT NOT EXISTS (SELECT 1 FROM events)", [], |r| r.get(0))?)
        })
        .await
    }

    async fn event_count(&self) -> touchmark_store::Result<u64> {
        self.read(|conn| {
            let n: i64 =
                conn.query_row("SELECT coalesce(max(idx) + 1, 0) FROM events", [], |r| {
                    r.get(0)
                })?;
            Ok(n as u64)
        })
        .await
    }

    async fn acquire_sequencer(
        &self,
        holder: &str,
        ttl: std::time::Duration,
    ) -> touchmark_store::Result<Option<SequencerLease>> {
        self.claim_sequencer(holder, ttl, false).await
    }

    async fn take_over_sequencer(
        &self,
        holder: &str,
        ttl: std::time::Duration,
    ) -> touchmark_store::Result<Option<SequencerLease>> {
        self.claim_sequencer(holder, ttl, true).await
    }

    async fn release_sequencer(&self, lease: &SequencerLease) -> touchmark_store::Result<()> {
        let lease = lease.clone();
        self.write(move |ctx| {
            ctx.conn
                .prepare_cached(
                    "UPDATE log_lease SET expires_at = 0 WHERE id = 1 AND holder = ?1 AND epoch = ?2",
                )?
                .execute(params![lease.holder, lease.epoch as i64])?;
            Ok(())
        })
        .await
    }

    async fn sequence_entries(
        &self,
        lease: &SequencerLease,
        _max: u64,
    ) -> touchmark_store::Result<u64> {
        // Events take their index at commit here: only the lease needs checking.
        let lease = lease.clone();
        self.write(move |ctx| {
            lease_is_live(ctx.conn, &lease)?;
            let n: i64 =
                ctx.conn
                    .query_row("SELECT coalesce(max(idx) + 1, 0) FROM events", [], |r| {
                        r.get(0)
                    })?;
            Ok(n as u64)
        })
        .await
    }

    async fn log_state(&self) -> touchmark_store::Result<Option<LogState>> {
        self.read(|conn| {
            let row: Option<(i64, Vec<u8>)> = conn
                .query_row("SELECT size, tree FROM log_state WHERE id = 1", [], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .optional()?;
            let Some((size, tree)) = row else {
                return Ok(None);
            };
            let (root, note): (Vec<u8>, String) = conn
                .query_row(
                    "SELECT root, note FROM log_checkpoints WHERE size = ?1",
                    [size],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?
                .ok_or_else(|| codec::checkpoint_missing(size as u64))?;
            let root = Hash::from_slice(&root)
                .map_err(|_| StoreError::Corrupt("checkpoint root".into()))?;
            Ok(Some(LogState {
                size: rows::count(size)?,
                root,
                note,
                tree,
            }))
        })
        .await
    }

    async fn save_log_state(
        &self,
        lease: &SequencerLease,
        previous: Option<u64>,
        state: LogState,
        tiles: Vec<LogTile>,
        at: OffsetDateTime,
    ) -> touchmark_store::Result<()> {
        let lease = lease.clone();
        self.write(move |ctx| {
            lease_is_live(ctx.conn, &lease)?;
            let size = int(state.size)?;
            let (saved, signed, events): (Option<i64>, Option<i64>, i64) = ctx.conn.query_row(
                "SELECT (SELECT size FROM log_state WHERE id = 1),
                        (SELECT max(size) FROM log_checkpoints),
                        (SELECT coalesce(max(idx) + 1, 0) FROM events)",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )?;
            let log = SavedLog {
                saved: saved.map(rows::count).transpose()?,
                signed: signed.map(rows::count).transpose()?,
                events: rows::count(events)?,
            };
            check_save(log, previous, state.size)?;
            ctx.conn
                .prepare_cached("INSERT INTO log_checkpoints (size, root, note, created_at) VALUES (?1, ?2, ?3, ?4)")?
                .execute(params![size, state.root.as_bytes().as_slice(), state.note, ts(at)])?;
            for tile in &tiles {
                ctx.conn
                    .prepare_cached(
                        "INSERT INTO log_tiles (level, idx, data) VALUES (?1, ?2, ?3)
                         ON CONFLICT (level, idx) DO UPDATE SET data = excluded.data
                         WHERE length(excluded.data) >= length(log_tiles.data)",
                    )?
                    .execute(params![tile.level, tile.index as i64, tile.data])?;
            }
            ctx.conn
                .prepare_cached(
                    "INSERT INTO log_state (id, size, tree) VALUES (1, ?1, ?2)
                     ON CONFLICT (id) DO UPDATE SET size = excluded.size, tree = excluded.tree",
                )?
                .execute(params![size, state.tree])?;
            Ok(())
        })
        .await
    }

    async fn log_tile(&self, level: u8, index: u64) -> touchmark_store::Result<Option<Vec<u8>>> {
        self.read(move |conn| {
            Ok(conn
                .prepare_cached("SELECT data FROM log_tiles WHERE level = ?1 AND idx = ?2")?
                .query_row(params![level, index as i64], |r| r.get(0))
                .optional()?)
        })
        .await
    }

    async fn checkpoint_at(&self, size: u64) -> touchmark_store::Result<Option<String>> {
        self.read(move |conn| {
            Ok(conn
                .prepare_cached("SELECT note FROM log_checkpoints WHERE size = ?1")?
                .query_row([size as i64], |r| r.get(0))
                .optional()?)
        })
        .await
    }
}

/// Milliseconds since the Unix epoch, by the system clock: the lease's time base.
fn now_millis() -> i64 {
    let now = OffsetDateTime::now_utc();
    i64::try_from(now.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

/// Fails with `Fenced` unless `lease` is the live lease.
fn lease_is_live(conn: &Connection, lease: &SequencerLease) -> Result<()> {
    let current: Option<(String, i64, i64)> = conn
        .prepare_cached("SELECT holder, epoch, expires_at FROM log_lease WHERE id = 1")?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    let current = current
        .map(|(holder, epoch, expires)| {
            Ok::<_, StoreError>(LeaseRow {
                holder,
                epoch: rows::count(epoch)?,
                live: expires > now_millis(),
            })
        })
        .transpose()?;
    Ok(check_lease(lease, current)?)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// A database of schema 4 (before test records were bound to one unit) that already issued
    /// two units with one record: the migration keeps both certificates, gives the record's
    /// hash to the first, and leaves the later one without it, so the unique index holds.
    #[test]
    fn an_old_database_with_a_replayed_record_migrates() {
        let mut conn = Connection::open_in_memory().unwrap();
        // Only the tables the migration reads are filled: no products, orders or stations.
        conn.pragma_update(None, "foreign_keys", "OFF").unwrap();
        for sql in &MIGRATIONS[..4] {
            conn.execute_batch(sql).unwrap();
        }
        conn.pragma_update(None, "user_version", 4).unwrap();
        let record = [0x40u8; 32];
        for (idx, serial, test) in [
            (0, "SN-000400", record),
            (1, "SN-000402", record),
            (2, "SN-000403", [0x41u8; 32]),
        ] {
            conn.execute(
                "INSERT INTO events (idx, kind, order_id, bytes, leaf_hash) VALUES (?1, 'unit.issued', 'o', x'00', ?2)",
                params![idx, [idx as u8; 32].as_slice()],
            )
            .unwrap();
            conn.execute(
                "INSERT INTO certificates (sha256, product, serial, order_id, station, pubkey_sha256, cert_serial, der, event_index, issued_at)
                 VALUES (?1, 'p', ?2, 'o', 's', ?3, '01', x'30', ?4, '2026-01-01T00:00:00.000Z')",
                params![
                    [idx as u8 + 10; 32].as_slice(),
                    serial,
                    [idx as u8 + 20; 32].as_slice(),
                    idx
                ],
            )
            .unwrap();
            conn.execute(
                "INSERT INTO test_attempts (product, order_id, station, serial, verdict, format, sha256, record, event_index, created_at)
                 VALUES ('p', 'o', 's', ?1, 'pass', 'openhtf', ?2, '{}', ?3, '2026-01-01T00:00:00.000Z')",
                params![serial, test.as_slice(), idx],
            )
            .unwrap();
        }
        migrate(&mut conn).unwrap();
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(version as usize, SCHEMA_VERSION);
        let mut stmt = conn
            .prepare("SELECT serial, test_sha256 FROM certificates ORDER BY event_index")
            .unwrap();
        let rows: Vec<(String, Option<Vec<u8>>)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(
            rows,
            vec![
                ("SN-000400".to_owned(), Some(record.to_vec())),
                ("SN-000402".to_owned(), None),
                ("SN-000403".to_owned(), Some(vec![0x41; 32])),
            ]
        );
        // From now on the index refuses a second unit with one record.
        let again = conn.execute(
            "UPDATE certificates SET test_sha256 = ?1 WHERE serial = 'SN-000402'",
            [record.as_slice()],
        );
        assert!(again.is_err());
    }

    /// A database from before the current release was recorded per unit: the migration gives
    /// each unit the release its last field update delivered (by log order, whatever the order
    /// of the rows), and none to a unit that received no update.
    #[test]
    fn an_old_database_with_field_updates_migrates_to_the_latest_release() {
        let at = MIGRATIONS
            .iter()
            .position(|m| m.contains("ADD COLUMN latest_release_id"))
            .unwrap();
        let mut conn = Connection::open_in_memory().unwrap();
        // Only the tables the migration reads are filled: no orders or releases.
        conn.pragma_update(None, "foreign_keys", "OFF").unwrap();
        for sql in &MIGRATIONS[..at] {
            conn.execute_batch(sql).unwrap();
        }
        conn.pragma_update(None, "user_version", at as i64).unwrap();
        for (idx, serial) in [(1, "SN-1"), (2, "SN-2"), (3, "SN-3")] {
            conn.execute(
                "INSERT INTO unit_firmware (order_id, serial, release_id, wrap, image_sha256, event_index)
                 VALUES ('o', ?1, 'r1', x'00', x'00', ?2)",
                params![serial, idx],
            )
            .unwrap();
        }
        for (idx, serial, release) in [(9, "SN-3", "r3"), (5, "SN-3", "r2"), (6, "SN-2", "r2")] {
            conn.execute(
                "INSERT INTO firmware_deliveries (order_id, serial, release_id, wrap, image_sha256, event_index, delivered_at)
                 VALUES ('o', ?1, ?2, x'00', x'00', ?3, '2026-01-01T00:00:00.000Z')",
                params![serial, release, idx],
            )
            .unwrap();
        }
        migrate(&mut conn).unwrap();
        let mut stmt = conn
            .prepare("SELECT serial, latest_release_id FROM unit_firmware ORDER BY serial")
            .unwrap();
        let rows: Vec<(String, Option<String>)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(
            rows,
            vec![
                ("SN-1".to_owned(), None),
                ("SN-2".to_owned(), Some("r2".to_owned())),
                ("SN-3".to_owned(), Some("r3".to_owned())),
            ]
        );
    }
}
