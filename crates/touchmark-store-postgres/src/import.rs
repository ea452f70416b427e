//! Copying a complete SQLite installation into an empty PostgreSQL schema, for the move from
//! the embedded store to a shared database (design.md §10).
//!
//! The copy is one PostgreSQL transaction: either the whole installation arrives, or nothing
//! does. The SQLite file is opened read-only and read in one read transaction, so the copy is
//! one consistent snapshot even if a server still has the file open (stop it first anyway: what
//! it writes afterwards is not copied). Every event keeps its log index (`seq` is set to
//! `idx + 1`, and the sequence moves past it), so the log, its checkpoints and its tiles carry
//! on unchanged: the copied log has the same size and root. Rows travel in batches of column
//! arrays (`INSERT … SELECT FROM UNNEST(…)`), read on a blocking thread while the previous
//! batch is written. Before committing, every table's row count is compared with SQLite's.

use std::path::Path;

use rusqlite::{Connection, OpenFlags};
use time::OffsetDateTime;
use tokio::sync::mpsc;
use touchmark_core::clock::parse_timestamp;
use touchmark_core::event::Sha256Hash;

use touchmark_store::StoreError;

use crate::PostgresStore;
use crate::error::Result;

/// Why a copy did not happen. Nothing was written then.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MigrateError {
    /// The target already holds records.
    #[error(
        "the PostgreSQL schema is not empty (table {0} has rows): copy into a new schema or database"
    )]
    NotEmpty(&'static str),
    /// The SQLite database predates this build's schema.
    #[error(
        "the SQLite database has schema version {0}, older than this touchmark's ({SQLITE_SCHEMA_VERSION}): open it once with this touchmark to upgrade it, then copy it"
    )]
    SourceTooOld(i64),
    /// Either database failed, or what was read does not convert.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for MigrateError {
    fn from(e: sqlx::Error) -> Self {
        Self::Store(crate::error::store_error(e))
    }
}

impl From<rusqlite::Error> for MigrateError {
    fn from(e: rusqlite::Error) -> Self {
        Self::Store(StoreError::Database(e.to_string()))
    }
}

impl From<crate::error::Error> for MigrateError {
    fn from(e: crate::error::Error) -> Self {
        Self::Store(e.0)
    }
}

/// The SQLite schema version this copy reads: the SQLite backend's, whose tables it knows.
const SQLITE_SCHEMA_VERSION: i64 = touchmark_store_sqlite::SCHEMA_VERSION as i64;

/// Rows per batch, at most.
const BATCH_ROWS: usize = 10_000;

/// Bytes of text and blobs per batch, at most (roughly): bounds memory with large records.
const BATCH_BYTES: usize = 16 << 20;

/// What [`sqlite_to_postgres`] copied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationReport {
    /// Every table copied, in copy order, with its row count (equal in both databases).
    pub tables: Vec<(String, u64)>,
    /// The size of the log's latest signed checkpoint, if it signed one.
    pub log_size: Option<u64>,
    /// That checkpoint's root.
    pub log_root: Option<Sha256Hash>,
}

/// How a column is read from SQLite and bound for PostgreSQL.
#[derive(Debug, Clone, Copy)]
enum Kind {
    /// TEXT → text.
    Text,
    /// INTEGER → bigint (or smallint, cast in the statement).
    Int,
    /// BLOB → bytea.
    Blob,
    /// RFC 3339 TEXT → timestamptz.
    Time,
    /// INTEGER 0 or 1 → boolean.
    Bool,
}

/// One batch of one column.
#[derive(Debug)]
enum Values {
    Text(Vec<Option<String>>),
    Int(Vec<Option<i64>>),
    Blob(Vec<Option<Vec<u8>>>),
    Time(Vec<Option<OffsetDateTime>>),
    Bool(Vec<Option<bool>>),
}

impl Values {
    fn new(kind: Kind) -> Self {
        match kind {
            Kind::Text => Self::Text(Vec::new()),
            Kind::Int => Self::Int(Vec::new()),
            Kind::Blob => Self::Blob(Vec::new()),
            Kind::Time => Self::Time(Vec::new()),
            Kind::Bool => Self::Bool(Vec::new()),
        }
    }

    /// Reads column `i` of `row` onto the end; returns the bytes it holds.
    fn push(&mut self, row: &rusqlite::Row<'_>, i: usize, what: &str) -> Result<usize> {
        Ok(match self {
            Self::Text(v) => {
                let text: Option<String> = row.get(i)?;
                let len = text.as_ref().map_or(0, String::len);
                v.push(text);
                len
            }
            Self::Int(v) => {
                v.push(row.get(i)?);
                8
            }
            Self::Blob(v) => {
                let blob: Option<Vec<u8>> = row.get(i)?;
                let len = blob.as_ref().map_or(0, Vec::len);
                v.push(blob);
                len
            }
            Self::Time(v) => {
                let text: Option<String> = row.get(i)?;
                let at = text
                    .map(|t| parse_timestamp(&t))
                    .transpose()
                    .map_err(|e| StoreError::Corrupt(format!("{what}, column {i}: {e}")))?;
                v.push(at);
                8
            }
            Self::Bool(v) => {
                let n: Option<i64> = row.get(i)?;
                v.push(n.map(|n| n != 0));
                1
            }
        })
    }

    fn bind<'q>(
        self,
        query: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    ) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
        match self {
            Self::Text(v) => query.bind(v),
            Self::Int(v) => query.bind(v),
            Self::Blob(v) => query.bind(v),
            Self::Time(v) => query.bind(v),
            Self::Bool(v) => query.bind(v),
        }
    }
}

/// One table to copy: how to read it from SQLite and write it to PostgreSQL.
struct Table {
    name: &'static str,
    kinds: &'static [Kind],
    /// SQLite: the columns, in `kinds` order.
    read: &'static str,
    /// SQLite: its row count.
    count_source: &'static str,
    /// PostgreSQL: one `INSERT … SELECT * FROM UNNEST($1::…[], …)` with a parameter per column.
    write: &'static str,
    /// PostgreSQL: its row count.
    count_target: &'static str,
    /// PostgreSQL: whether it holds a row.
    any_target: &'static str,
}

macro_rules! table {
    ($name:literal, [$($kind:ident),* $(,)?], read: $read:literal, write: $write:literal $(,)?) => {
        Table {
            name: $name,
            kinds: &[$(Kind::$kind),*],
            read: $read,
            count_source: concat!("SELECT count(*) FROM ", $name),
            write: $write,
            count_target: concat!("SELECT count(*) FROM ", $name),
            any_target: concat!("SELECT EXISTS (SELECT 1 FROM ", $name, ")"),
        }
    };
}

/// Every table, parents before children (foreign keys are checked as rows arrive). Not the
/// sequencer lease: the first replica to sequence takes a new one.
const TABLES: &[Table] = &[
    table!(
        "tokens",
        [Text, Blob, Text, Text, Time, Bool],
        read: "SELECT id, secret_sha256, role, label, created_at, revoked FROM tokens",
        write: "INSERT INTO tokens (id, secret_sha256, role, label, created_at, revoked)
                SELECT * FROM UNNEST($1::text[], $2::bytea[], $3::text[], $4::text[],
                                     $5::timestamptz[], $6::boolean[])",
    ),
    table!(
        "products",
        [Text, Text, Text, Text, Text, Text, Text, Time, Text, Time, Text],
        read: "SELECT id, name, organization, common_name, hw_type_oid, crl_url, ocsp_url,
                      cert_not_after, issuing_ca_pem, created_at, attestation_roots_pem
               FROM products",
        write: "INSERT INTO products (id, name, organization, common_name, hw_type_oid, crl_url,
                                      ocsp_url, cert_not_after, issuing_ca_pem, created_at,
                                      attestation_roots_pem)
                SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
                                     $6::text[], $7::text[], $8::timestamptz[], $9::text[],
                                     $10::timestamptz[], $11::text[])",
    ),
    table!(
        "release_keys",
        [Text, Text, Text, Text, Blob, Time],
        read: "SELECT id, product, algorithm, public_key_pem, public_key_sha256, created_at
               FROM release_keys",
        write: "INSERT INTO release_keys (id, product, algorithm, public_key_pem,
                                          public_key_sha256, created_at)
                SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[],
                                     $5::bytea[], $6::timestamptz[])",
    ),
    table!(
        "firmware_keys",
        [Text, Blob, Text, Text, Time],
        read: "SELECT product, key_id, algorithm, public_key_pem, created_at FROM firmware_keys",
        write: "INSERT INTO firmware_keys (product, key_id, algorithm, public_key_pem, created_at)
                SELECT * FROM UNNEST($1::text[], $2::bytea[], $3::text[], $4::text[],
                                     $5::timestamptz[])",
    ),
    table!(
        "releases",
        [Text, Text, Text, Blob, Blob, Int, Blob, Text, Text, Blob, Blob, Time, Time],
        read: "SELECT r.id, r.product, r.version, b.image, r.image_sha256, r.image_size,
                      r.signing_key, r.release_key, r.plaintext_hash, b.sbom, r.sbom_sha256,
                      r.created_at, r.withdrawn_at
               FROM releases r JOIN release_blobs b ON b.release_id = r.id",
        write: "INSERT INTO releases (id, product, version, image, image_sha256, image_size,
                                      signing_key, release_key, plaintext_hash, sbom, sbom_sha256,
                                      created_at, withdrawn_at)
                SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::bytea[],
                                     $5::bytea[], $6::bigint[], $7::bytea[], $8::text[],
                                     $9::text[], $10::bytea[], $11::bytea[], $12::timestamptz[],
                                     $13::timestamptz[])",
    ),
    table!(
        "release_components",
        [Text, Text, Text, Text],
        read: "SELECT release_id, purl_key, purl, version FROM release_components",
        write: "INSERT INTO release_components (release_id, purl_key, purl, version)
                SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[])",
    ),
    table!(
        "factories",
        [Text, Text, Time],
        read: "SELECT id, name, created_at FROM factories",
        write: "INSERT INTO factories (id, name, created_at)
                SELECT * FROM UNNEST($1::text[], $2::text[], $3::timestamptz[])",
    ),
    table!(
        "stations",
        [Text, Text, Text, Text, Blob, Time, Text, Time],
        read: "SELECT id, factory, name, status, enrollment_sha256, enrollment_expires_at,
                      cert_sha256, created_at FROM stations",
        write: "INSERT INTO stations (id, factory, name, status, enrollment_sha256,
                                      enrollment_expires_at, cert_sha256, created_at)
                SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[],
                                     $5::bytea[], $6::timestamptz[], $7::text[],
                                     $8::timestamptz[])",
    ),
    table!(
        "orders",
        [Text, Text, Text, Int, Int, Text, Time, Time, Text, Time],
        read: "SELECT id, product, factory, quota, issued, serial_rule, not_before, not_after,
                      state, created_at FROM orders",
        write: "INSERT INTO orders (id, product, factory, quota, issued, serial_rule, not_before,
                                    not_after, state, created_at)
                SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::bigint[],
                                     $5::bigint[], $6::text[], $7::timestamptz[],
                                     $8::timestamptz[], $9::text[], $10::timestamptz[])",
    ),
    table!(
        "events",
        [Int, Int, Text, Text, Blob, Blob],
        read: "SELECT idx + 1, idx, kind, order_id, bytes, leaf_hash FROM events ORDER BY idx",
        write: "INSERT INTO events (seq, idx, kind, order_id, bytes, leaf_hash)
                SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::text[], $4::text[],
                                     $5::bytea[], $6::bytea[])",
    ),
    table!(
        "units",
        [Text, Text, Text, Text, Text, Blob, Blob, Time],
        read: "SELECT product, serial, order_id, status, station, pubkey_sha256, cert_sha256,
                      updated_at FROM units",
        write: "INSERT INTO units (product, serial, order_id, status, station, pubkey_sha256,
                                   cert_sha256, updated_at)
                SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
                                     $6::bytea[], $7::bytea[], $8::timestamptz[])",
    ),
    table!(
        "order_releases",
        [Text, Text, Time],
        read: "SELECT order_id, release_id, set_at FROM order_releases",
        write: "INSERT INTO order_releases (order_id, release_id, set_at)
                SELECT * FROM UNNEST($1::text[], $2::text[], $3::timestamptz[])",
    ),
    table!(
        "unit_firmware",
        [Text, Text, Text, Blob, Blob, Int, Blob, Text],
        read: "SELECT order_id, serial, release_id, wrap, image_sha256, event_index + 1,
                      encryption_key, latest_release_id
               FROM unit_firmware",
        write: "INSERT INTO unit_firmware (order_id, serial, release_id, wrap, image_sha256,
                                           event_seq, encryption_key, latest_release_id)
                SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::bytea[],
                                     $5::bytea[], $6::bigint[], $7::bytea[], $8::text[])",
    ),
    table!(
        "firmware_deliveries",
        [Text, Text, Text, Blob, Blob, Int, Time],
        read: "SELECT order_id, serial, release_id, wrap, image_sha256, event_index + 1,
                      delivered_at
               FROM firmware_deliveries",
        write: "INSERT INTO firmware_deliveries (order_id, serial, release_id, wrap,
                                                 image_sha256, event_seq, delivered_at)
                SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::bytea[],
                                     $5::bytea[], $6::bigint[], $7::timestamptz[])",
    ),
    // Vulnerability reports (issue 18) and their links, after the products and releases they
    // name.
    table!(
        "vuln_reports",
        [Text, Blob, Text, Text, Text, Text, Text, Text, Text, Blob, Text, Time, Time, Time,
         Time, Time, Time, Time, Time, Time, Time],
        read: "SELECT id, secret_sha256, state, product, version, description, encrypted, cvss,
                      contact, content_sha256, class, aware_at, corrective_at, early_warning_at,
                      notification_at, final_report_at, early_warning_alerted_at,
                      notification_alerted_at, final_report_alerted_at, received_at, updated_at
               FROM vuln_reports",
        write: "INSERT INTO vuln_reports (id, secret_sha256, state, product, version, description,
                                          encrypted, cvss, contact, content_sha256, class,
                                          aware_at, corrective_at, early_warning_at,
                                          notification_at, final_report_at,
                                          early_warning_alerted_at, notification_alerted_at,
                                          final_report_alerted_at, received_at, updated_at)
                SELECT * FROM UNNEST($1::text[], $2::bytea[], $3::text[], $4::text[], $5::text[],
                                     $6::text[], $7::text[], $8::text[], $9::text[], $10::bytea[],
                                     $11::text[], $12::timestamptz[], $13::timestamptz[],
                                     $14::timestamptz[], $15::timestamptz[], $16::timestamptz[],
                                     $17::timestamptz[], $18::timestamptz[], $19::timestamptz[],
                                     $20::timestamptz[], $21::timestamptz[])",
    ),
    table!(
        "vuln_links",
        [Text, Text, Text, Text, Text, Text, Time, Text, Text],
        read: "SELECT report_id, product, release_id, version, purl, version_range, linked_at,
                      status, justification
               FROM vuln_links",
        write: "INSERT INTO vuln_links (report_id, product, release_id, version, purl,
                                        version_range, linked_at, status, justification)
                SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
                                     $6::text[], $7::timestamptz[], $8::text[], $9::text[])",
    ),
    // Published CSAF advisories, after the reports they are about.
    table!(
        "csaf_advisories",
        [Text, Int, Text, Bool, Text, Time, Time, Blob, Blob],
        read: "SELECT tracking_id, version, report_id, vex, summary, initial_at, published_at,
                      document, sha256
               FROM csaf_advisories",
        write: "INSERT INTO csaf_advisories (tracking_id, version, report_id, vex, summary,
                                             initial_at, published_at, document, sha256)
                SELECT * FROM UNNEST($1::text[], $2::bigint[], $3::text[], $4::boolean[],
                                     $5::text[], $6::timestamptz[], $7::timestamptz[],
                                     $8::bytea[], $9::bytea[])",
    ),
    table!(
        "certificates",
        [Blob, Text, Text, Text, Text, Blob, Text, Blob, Int, Time, Blob, Time, Text],
        read: "SELECT sha256, product, serial, order_id, station, pubkey_sha256, cert_serial, der,
                      event_index + 1, issued_at, test_sha256, revoked_at, revocation_reason
               FROM certificates",
        write: "INSERT INTO certificates (sha256, product, serial, order_id, station,
                                          pubkey_sha256, cert_serial, der, event_seq, issued_at,
                                          test_sha256, revoked_at, revocation_reason)
                SELECT * FROM UNNEST($1::bytea[], $2::text[], $3::text[], $4::text[], $5::text[],
                                     $6::bytea[], $7::text[], $8::bytea[], $9::bigint[],
                                     $10::timestamptz[], $11::bytea[], $12::timestamptz[],
                                     $13::text[])",
    ),
    table!(
        "ca_revocations",
        [Text, Text, Time],
        read: "SELECT product, reason, revoked_at FROM ca_revocations",
        write: "INSERT INTO ca_revocations (product, reason, revoked_at)
                SELECT * FROM UNNEST($1::text[], $2::text[], $3::timestamptz[])",
    ),
    table!(
        "test_attempts",
        [Int, Text, Text, Text, Text, Text, Text, Blob, Text, Int, Time],
        read: "SELECT id, product, order_id, station, serial, verdict, format, sha256, record,
                      event_index + 1, created_at FROM test_attempts ORDER BY id",
        write: "INSERT INTO test_attempts (id, product, order_id, station, serial, verdict, format,
                                           sha256, record, event_seq, created_at)
                SELECT * FROM UNNEST($1::bigint[], $2::text[], $3::text[], $4::text[],
                                     $5::text[], $6::text[], $7::text[], $8::bytea[], $9::text[],
                                     $10::bigint[], $11::timestamptz[])",
    ),
    // Where the projector stands, so that the server on PostgreSQL does not fold the copied log
    // again and raise its alerts twice.
    table!(
        "projector_cursors",
        [Text, Int],
        read: "SELECT name, position FROM projector_cursors",
        write: "INSERT INTO projector_cursors (name, position)
                SELECT * FROM UNNEST($1::text[], $2::bigint[])",
    ),
    table!(
        "log_checkpoints",
        [Int, Blob, Text, Time],
        read: "SELECT size, root, note, created_at FROM log_checkpoints ORDER BY size",
        write: "INSERT INTO log_checkpoints (size, root, note, created_at)
                SELECT * FROM UNNEST($1::bigint[], $2::bytea[], $3::text[], $4::timestamptz[])",
    ),
    table!(
        "log_tiles",
        [Int, Int, Blob],
        read: "SELECT level, idx, data FROM log_tiles",
        write: "INSERT INTO log_tiles (level, idx, data)
                SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::bytea[])",
    ),
    table!(
        "log_state",
        [Int, Int, Blob],
        read: "SELECT id, size, tree FROM log_state",
        write: "INSERT INTO log_state (id, size, tree)
                SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::bytea[])",
    ),
    table!(
        "log_owner",
        [Int, Text, Time],
        read: "SELECT id, verifier, claimed_at FROM log_owner",
        write: "INSERT INTO log_owner (id, verifier, claimed_at)
                SELECT * FROM UNNEST($1::bigint[], $2::text[], $3::timestamptz[])",
    ),
];

/// What the reading thread sends.
enum Chunk {
    /// Table `table` is next, with this many rows in the snapshot.
    Start { table: usize, rows: u64 },
    /// Rows of the current table, column by column.
    Rows { columns: Vec<Values>, rows: usize },
}

/// Copies the complete SQLite installation at `sqlite_path` into `target`, whose schema must be
/// empty (freshly created by [`PostgresStore::connect`]).
///
/// # Errors
/// [`MigrateError::NotEmpty`] if the target already holds data; [`MigrateError::SourceTooOld`]
/// if the SQLite database needs upgrading first (open it once with this version's server);
/// [`StoreError::Corrupt`] if a SQLite value does not convert or its log has gaps;
/// [`StoreError::Database`] if either database fails, or a table's count differs after the
/// copy. Nothing is written then.
pub async fn sqlite_to_postgres(
    sqlite_path: &Path,
    target: &PostgresStore,
) -> Result<MigrationReport, MigrateError> {
    let source = open_source(sqlite_path)?;
    let mut tx = target.pool().begin().await?;
    // The copy waits on its SQLite reader between batches: longer than the sessions' short
    // idle timeout allows a transaction to sit.
    crate::extend_timeouts(&mut tx, "60s", "10min").await?;
    // No replica may write while the copy runs; plain reads still may.
    sqlx::query(
        "LOCK TABLE tokens, products, factories, stations, orders, events, units, certificates,
             ca_revocations, test_attempts, projector_cursors, log_checkpoints, log_tiles,
             log_state, log_owner
             IN EXCLUSIVE MODE",
    )
    .execute(&mut *tx)
    .await?;
    for table in TABLES {
        let any: bool = sqlx::query_scalar(table.any_target)
            .fetch_one(&mut *tx)
            .await?;
        if any {
            return Err(MigrateError::NotEmpty(table.name));
        }
    }

    let (chunks, mut received) = mpsc::channel::<Result<Chunk>>(2);
    let reader = tokio::task::spawn_blocking(move || {
        if let Err(e) = read_all(&source, &chunks) {
            // The receiver may be gone already (it failed first): nothing more to tell.
            let _ = chunks.blocking_send(Err(e));
        }
    });
    let mut expected: Vec<Option<u64>> = vec![None; TABLES.len()];
    let mut current: Option<usize> = None;
    while let Some(chunk) = received.recv().await {
        match chunk? {
            Chunk::Start { table, rows } => {
                if let Some(slot) = expected.get_mut(table) {
                    *slot = Some(rows);
                }
                current = Some(table);
            }
            Chunk::Rows { columns, rows } => {
                let table = current
                    .and_then(|t| TABLES.get(t))
                    .ok_or_else(|| StoreError::Database("rows before their table".into()))?;
                let query = columns
                    .into_iter()
                    .fold(sqlx::query(table.write), |q, column| column.bind(q));
                let written = query.execute(&mut *tx).await?.rows_affected();
                if written != rows as u64 {
                    return Err(StoreError::Database(format!(
                        "table {}: {written} rows written of a batch of {rows}",
                        table.name
                    ))
                    .into());
                }
            }
        }
    }
    reader
        .await
        .map_err(|e| StoreError::Database(format!("the SQLite reader failed: {e}")))?;

    // New events and attempts continue after the copied ones.
    sqlx::query(
        "SELECT setval(pg_get_serial_sequence('events', 'seq'),
                       coalesce((SELECT max(seq) FROM events), 0) + 1, false),
                setval(pg_get_serial_sequence('test_attempts', 'id'),
                       coalesce((SELECT max(id) FROM test_attempts), 0) + 1, false)",
    )
    .execute(&mut *tx)
    .await?;

    let mut tables = Vec::with_capacity(TABLES.len());
    for (table, expected) in TABLES.iter().zip(expected) {
        let copied: i64 = sqlx::query_scalar(table.count_target)
            .fetch_one(&mut *tx)
            .await?;
        let copied = u64::try_from(copied).unwrap_or_default();
        match expected {
            Some(n) if n == copied => tables.push((table.name.to_owned(), copied)),
            Some(n) => {
                return Err(StoreError::Database(format!(
                    "table {}: {n} rows in SQLite but {copied} copied; nothing was committed",
                    table.name
                ))
                .into());
            }
            None => {
                return Err(StoreError::Database(format!(
                    "table {} was not read; nothing was committed",
                    table.name
                ))
                .into());
            }
        }
    }

    let log: Option<(i64, Vec<u8>)> = sqlx::query_as(
        "SELECT s.size, c.root FROM log_state s JOIN log_checkpoints c ON c.size = s.size
         WHERE s.id = 1",
    )
    .fetch_optional(&mut *tx)
    .await?;
    let (log_size, log_root) = match log {
        Some((size, root)) => {
            let size =
                u64::try_from(size).map_err(|_| StoreError::Corrupt(format!("log size {size}")))?;
            let root = <[u8; 32]>::try_from(root.as_slice())
                .map_err(|_| StoreError::Corrupt("checkpoint root: not 32 bytes".into()))?;
            (Some(size), Some(Sha256Hash(root)))
        }
        None => (None, None),
    };
    tx.commit().await?;
    tracing::info!(
        ?tables,
        log_size,
        "SQLite installation copied to PostgreSQL"
    );
    Ok(MigrationReport {
        tables,
        log_size,
        log_root,
    })
}

/// Opens the SQLite file read-only and checks that it is a complete, current installation.
fn open_source(path: &Path) -> Result<Connection, MigrateError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version < SQLITE_SCHEMA_VERSION {
        return Err(MigrateError::SourceTooOld(version));
    }
    if version > SQLITE_SCHEMA_VERSION {
        return Err(StoreError::Corrupt(format!(
            "the SQLite database has schema version {version}, newer than this touchmark \
             ({SQLITE_SCHEMA_VERSION}); upgrade touchmark"
        ))
        .into());
    }
    Ok(conn)
}

/// Reads every table in one read transaction (one snapshot) and sends it in batches. Stops
/// quietly if the receiver is gone.
fn read_all(conn: &Connection, chunks: &mpsc::Sender<Result<Chunk>>) -> Result<()> {
    // The snapshot starts with the first read and holds until the end.
    conn.execute_batch("BEGIN")?;
    let (count, max): (i64, Option<i64>) =
        conn.query_row("SELECT count(*), max(idx) FROM events", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
    if max.map_or(0, |m| m + 1) != count {
        return Err(StoreError::Corrupt(format!(
            "the SQLite log has {count} events but its last index is {max:?}: it has gaps"
        ))
        .into());
    }
    for (index, table) in TABLES.iter().enumerate() {
        let rows: i64 = conn.query_row(table.count_source, [], |r| r.get(0))?;
        let rows = u64::try_from(rows).unwrap_or_default();
        if chunks
            .blocking_send(Ok(Chunk::Start { table: index, rows }))
            .is_err()
        {
            return Ok(());
        }
        let mut stmt = conn.prepare(table.read)?;
        let mut cursor = stmt.query([])?;
        let mut batch = Batch::new(table);
        while let Some(row) = cursor.next()? {
            batch.push(row, table)?;
            if batch.rows >= BATCH_ROWS || batch.bytes >= BATCH_BYTES {
                let full = std::mem::replace(&mut batch, Batch::new(table));
                if chunks.blocking_send(Ok(full.into_chunk())).is_err() {
                    return Ok(());
                }
            }
        }
        if batch.rows > 0 && chunks.blocking_send(Ok(batch.into_chunk())).is_err() {
            return Ok(());
        }
    }
    conn.execute_batch("COMMIT")?;
    Ok(())
}

/// Rows being gathered for one batch.
struct Batch {
    columns: Vec<Values>,
    rows: usize,
    bytes: usize,
}

impl Batch {
    fn new(table: &Table) -> Self {
        Self {
            columns: table.kinds.iter().map(|&k| Values::new(k)).collect(),
            rows: 0,
            bytes: 0,
        }
    }

    fn push(&mut self, row: &rusqlite::Row<'_>, table: &Table) -> Result<()> {
        for (i, column) in self.columns.iter_mut().enumerate() {
            self.bytes += column.push(row, i, table.name)?;
        }
        self.rows += 1;
        Ok(())
    }

    fn into_chunk(self) -> Chunk {
        Chunk::Rows {
            columns: self.columns,
            rows: self.rows,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use touchmark_store_sqlite::SqliteStore;

    #[test]
    fn reads_the_current_sqlite_schema() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("touchmark.db");
        drop(SqliteStore::open(&path).unwrap());
        let conn = open_source(&path).unwrap();
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(version, SQLITE_SCHEMA_VERSION);
        // Every table's read and count run on the current schema.
        for table in TABLES {
            let stmt = conn.prepare(table.read).unwrap();
            assert_eq!(stmt.column_count(), table.kinds.len(), "{}", table.name);
            let rows: i64 = conn
                .query_row(table.count_source, [], |r| r.get(0))
                .unwrap();
            assert_eq!(rows, 0, "{}", table.name);
        }
    }
}
