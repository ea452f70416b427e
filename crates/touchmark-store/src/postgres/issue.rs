//! The hot path: one issuance (DESIGN §4, checks 6 to 8 and I1 to I4) across any number of
//! replicas, rejections, and the unit reads.
//!
//! Two rules make the log tell the truth about concurrent requests (DESIGN §10). Whatever an
//! issuance or a refusal was decided on (the station active, the order open, quota left) is
//! held, by a row lock, until its event is inserted and committed, so a revocation, a close or
//! a quota change that conflicts with it waits, or is waited for. And an event takes its `seq`
//! after those locks, so the sequencer (which orders committed events by `seq`) puts it after
//! every change it saw and before every change that waited for it. Replaying the log, every
//! decision is then right at its place.
//!
//! The usual issuance is two statements, each its own transaction under READ COMMITTED:
//!
//! 1. One query reads everything the checks need: the station's status, the order's state and
//!    counts, the certificate already issued for the serial (with its event's receipt), and the
//!    serial already bound to the key. The checks run on it in SQLite's order. A retry that was
//!    issued before (I2) is answered here.
//! 2. If they pass, one statement counts and records the issuance: it locks the station's row
//!    if the station is active (`FOR SHARE`: a revocation waits), updates the order's count if
//!    it is open with quota left (the quota check, I1; the row stays locked), and only then
//!    inserts the event, the certificate, the unit and the test attempt (I3). Being one
//!    statement, it commits the moment it ends: the order's row stays locked only while the
//!    inserts run and the commit flushes, with no round trip to this process in between.
//!
//! Anything else (a check failed in step 1, or the count did not move in step 2) is settled in
//! one transaction that first locks the station's row (`FOR SHARE`) and the order's row
//! (`FOR NO KEY UPDATE`), then runs the checks again on what is committed and records their
//! verdict: the refusal with its event and test attempt, or, if the state changed back in
//! between (quota raised), the issuance.
//!
//! Two replicas that race on the same serial or key meet at a unique constraint: the loser's
//! statement or transaction fails whole (nothing of it stays, not even the count), and it runs
//! again, now seeing the winner's row, to answer `AlreadyIssued`, `serial_conflict` or
//! `key_reused` exactly as if the requests had not overlapped.

use sqlx::postgres::{PgExecutor, PgPool, PgRow};
use touchmark_core::code::ErrorCode;
use touchmark_core::entity::StationStatus;
use touchmark_core::order::OrderState;
use touchmark_core::{OrderId, ProductId, Serial};

use super::batch::{Batcher, Counted};
use super::error::is_retryable;
use super::rows::{self, get, issued_unit_columns, unit_select};
use super::{Leaf, ms};
use crate::{
    IssueOutcome, IssueRequest, IssuedUnit, Receipt, Rejection, Result, StoreError, TestAttempt,
    UnitSummary,
};

/// How many times an issuance runs before it gives up on a race it keeps losing. One retry
/// settles a race on a serial or key.
const MAX_ATTEMPTS: u32 = 5;

/// Step 1: what the checks need, in one row, whatever exists.
const CHECKS_SQL: &str = concat!(
    "SELECT s.status, o.state, o.issued, o.quota, k.serial, ",
    issued_unit_columns!(),
    " FROM (VALUES (1)) AS one (x)
      LEFT JOIN stations s ON s.id = $1
      LEFT JOIN orders o ON o.id = $2
      LEFT JOIN certificates c ON c.product = $3 AND c.serial = $4
      LEFT JOIN events e ON e.seq = c.event_seq
      LEFT JOIN certificates k ON k.pubkey_sha256 = $5"
);

/// Where the issued unit's columns start in a [`CHECKS_SQL`] row.
const CHECKS_UNIT_AT: usize = 5;

/// The slow path's locks, station first (as in step 2), whatever the rows hold.
const LOCK_SQL: &str = "SELECT (SELECT 1 FROM stations WHERE id = $1 FOR SHARE),
                               (SELECT 1 FROM orders WHERE id = $2 FOR NO KEY UPDATE)";

/// Step 2: lock, count and record, or do nothing. Each statement of the `WITH` reads the rows
/// of the one before, so they run in this order (a data-modifying `WITH` runs its statements
/// in an unspecified order otherwise), and only if the station is active and the count moved.
const ISSUE_SQL: &str = "
WITH station AS MATERIALIZED (
    SELECT id FROM stations WHERE id = $2 AND status = 'active' FOR SHARE
), counted AS (
    UPDATE orders SET issued = issued + 1
    FROM station
    WHERE orders.id = $1 AND orders.state = 'open' AND orders.issued < orders.quota
    RETURNING orders.id
), event AS (
    INSERT INTO events (kind, order_id, bytes, leaf_hash)
    SELECT $3, id, $4, $5 FROM counted
    RETURNING seq
), certificate AS (
    INSERT INTO certificates (sha256, product, serial, order_id, station, pubkey_sha256,
                              cert_serial, der, event_seq, issued_at)
    SELECT $6, $7, $8, $1, $2, $9, $10, $11, seq, $12 FROM event
    RETURNING event_seq
), unit AS (
    INSERT INTO units (product, serial, order_id, status, station, pubkey_sha256, cert_sha256,
                       updated_at)
    SELECT $7, $8, $1, 'provisioned', $2, $9, $6, $12 FROM certificate
    ON CONFLICT (product, serial) DO UPDATE SET order_id = excluded.order_id,
        status = 'provisioned', station = excluded.station,
        pubkey_sha256 = excluded.pubkey_sha256, cert_sha256 = excluded.cert_sha256,
        updated_at = excluded.updated_at
    RETURNING 1
)
INSERT INTO test_attempts (product, order_id, station, serial, verdict, format, sha256, record,
                           event_seq, created_at)
SELECT $13, $14, $15, $16, $17, $18, $19, $20, (SELECT event_seq FROM certificate), $21
FROM unit";

/// An event with, optionally, its test attempt and a failed unit (inserted, or updated while
/// it is still only a failed test: a failed test never downgrades a provisioned unit).
const REJECTION_SQL: &str = "
WITH event AS (
    INSERT INTO events (kind, order_id, bytes, leaf_hash) VALUES ($1, $2, $3, $4)
    RETURNING seq
), attempt AS (
    INSERT INTO test_attempts (product, order_id, station, serial, verdict, format, sha256,
                               record, event_seq, created_at)
    SELECT $5, $6, $7, $8, $9, $10, $11, $12, seq, $13 FROM event WHERE $5::text IS NOT NULL
)
INSERT INTO units (product, serial, order_id, status, station, updated_at)
SELECT $14, $15, $6, 'failed_test', $7, $13 FROM event WHERE $14::text IS NOT NULL
ON CONFLICT (product, serial) DO UPDATE SET order_id = excluded.order_id,
    station = excluded.station, updated_at = excluded.updated_at
WHERE units.status = 'failed_test'";

/// What the checks decided.
enum Decision {
    /// The same serial, key and order were issued before.
    Already(Box<IssuedUnit>),
    /// A check failed: record the refusal and answer it.
    Refuse(ErrorCode, String),
    /// Every check passed: count and record.
    Proceed,
}

/// Why one run of an issuance failed.
enum Failed {
    /// It lost a race to a concurrent transaction: run it again.
    Race(StoreError),
    /// Anything else: give up.
    Fatal(StoreError),
}

impl From<sqlx::Error> for Failed {
    fn from(e: sqlx::Error) -> Self {
        if is_retryable(&e) {
            Self::Race(e.into())
        } else {
            Self::Fatal(e.into())
        }
    }
}

impl From<StoreError> for Failed {
    fn from(e: StoreError) -> Self {
        Self::Fatal(e)
    }
}

pub(super) async fn issue(
    pool: &PgPool,
    batcher: &Batcher,
    req: &IssueRequest,
) -> Result<IssueOutcome> {
    let leaf = Leaf::of(&req.issued_event())?;
    let mut attempt = 1;
    loop {
        // The first run joins this replica's group commit; a run after a lost race goes alone.
        let batch = (attempt == 1).then_some(batcher);
        match try_issue(pool, batch, req, &leaf).await {
            Ok(outcome) => return Ok(outcome),
            Err(Failed::Race(e)) if attempt < MAX_ATTEMPTS => {
                tracing::debug!(
                    error = %e,
                    attempt,
                    serial = %req.serial,
                    "issuance raced another; running it again"
                );
                attempt += 1;
            }
            Err(Failed::Race(e)) => return Err(e),
            Err(Failed::Fatal(e)) => return Err(e),
        }
    }
}

/// One run of an issuance: the two statements of the usual case, or the locked transaction.
async fn try_issue(
    pool: &PgPool,
    batch: Option<&Batcher>,
    req: &IssueRequest,
    leaf: &Leaf,
) -> Result<IssueOutcome, Failed> {
    let row = checks(pool, req).await?;
    match decide(&row, req)? {
        Decision::Already(unit) => return Ok(IssueOutcome::AlreadyIssued(*unit)),
        Decision::Proceed => {
            let counted = match batch {
                Some(batcher) => match batcher.count(req.clone(), leaf.clone()).await {
                    Counted::Yes => true,
                    Counted::No => false,
                    // The batch rolled back whole (a race in one of its issuances): this one
                    // runs again on its own.
                    Counted::Again(why) => {
                        return Err(Failed::Race(StoreError::Database(why)));
                    }
                },
                None => count_and_record(pool, req, leaf).await?,
            };
            if counted {
                return Ok(IssueOutcome::Issued(issued_unit_of(req, leaf)));
            }
        }
        Decision::Refuse(..) => {}
    }
    // A refusal, or a count that did not move (the last unit of quota went to another request,
    // the order closed or the station was revoked since step 1): decide again, holding what
    // the decision rests on until its event commits.
    let mut tx = pool.begin().await?;
    sqlx::query(LOCK_SQL)
        .bind(req.station.as_str())
        .bind(req.order.as_str())
        .execute(&mut *tx)
        .await?;
    // A statement of its own, after the locks: it sees every change committed before them.
    let row = checks(&mut *tx, req).await?;
    let outcome = match decide(&row, req)? {
        Decision::Already(unit) => IssueOutcome::AlreadyIssued(*unit),
        Decision::Refuse(code, message) => {
            let event = req.refused_event(code);
            let leaf = Leaf::of(&event)?;
            reject(&mut *tx, &leaf, Some(&req.test), None).await?;
            IssueOutcome::Refused {
                code,
                message,
                receipt: leaf.receipt(),
            }
        }
        Decision::Proceed => {
            if !count_and_record(&mut *tx, req, leaf).await? {
                // The checks passed on rows this transaction holds locked: the count cannot
                // fail to move. Say so rather than guess an answer.
                return Err(Failed::Fatal(StoreError::Database(format!(
                    "order {}: the count did not move under its lock",
                    req.order
                ))));
            }
            IssueOutcome::Issued(issued_unit_of(req, leaf))
        }
    };
    tx.commit().await?;
    Ok(outcome)
}

/// Runs [`CHECKS_SQL`] for `req`.
async fn checks<'e>(conn: impl PgExecutor<'e>, req: &IssueRequest) -> Result<PgRow, sqlx::Error> {
    sqlx::query(CHECKS_SQL)
        .bind(req.station.as_str())
        .bind(req.order.as_str())
        .bind(req.product.as_str())
        .bind(req.serial.as_str())
        .bind(req.pubkey_sha256.0.as_slice())
        .fetch_one(conn)
        .await
}

/// The checks of SQLite's `issue_in_tx`, in its order, on a [`CHECKS_SQL`] row.
fn decide(row: &PgRow, req: &IssueRequest) -> Result<Decision> {
    let station: Option<String> = get(row, 0)?;
    let order_state: Option<String> = get(row, 1)?;
    // Check 1 again: a station revoked a moment ago is refused at once.
    if station.as_deref() != Some(StationStatus::Active.as_str()) {
        let code = if station.as_deref() == Some(StationStatus::Revoked.as_str()) {
            ErrorCode::StationRevoked
        } else {
            ErrorCode::StationNotAuthorized
        };
        let message = format!("station {} is not active", req.station);
        return Ok(Decision::Refuse(code, message));
    }
    // Check 2 again: the order may have been closed since the caller read it.
    if order_state.as_deref() != Some(OrderState::Open.as_str()) {
        let message = format!("order {} is not open", req.order);
        return Ok(Decision::Refuse(ErrorCode::OrderNotOpen, message));
    }
    // Check 6, and the retry of I2: a serial already certified.
    if let Some(unit) = rows::issued_unit(row, CHECKS_UNIT_AT)? {
        if unit.pubkey_sha256 == req.pubkey_sha256 && unit.order == req.order {
            return Ok(Decision::Already(Box::new(unit)));
        }
        let message = format!(
            "serial {} is already provisioned with another key or order; this unit is a clone suspect",
            req.serial
        );
        return Ok(Decision::Refuse(ErrorCode::SerialConflict, message));
    }
    // Check 7: the key bound to another serial.
    if let Some(other) = get::<Option<String>>(row, 4)? {
        let message = format!(
            "this public key is already bound to serial {other}; the secure element is a clone suspect"
        );
        return Ok(Decision::Refuse(ErrorCode::KeyReused, message));
    }
    // Check 8.
    let issued: Option<i64> = get(row, 2)?;
    let quota: Option<i64> = get(row, 3)?;
    if let (Some(issued), Some(quota)) = (issued, quota)
        && issued >= quota
    {
        let message = format!("order {} has no quota left", req.order);
        return Ok(Decision::Refuse(ErrorCode::QuotaExhausted, message));
    }
    Ok(Decision::Proceed)
}

/// Step 2. `Ok(false)` if the station is not active or the count did not move, and then
/// nothing was written.
pub(super) async fn count_and_record<'e>(
    conn: impl PgExecutor<'e>,
    req: &IssueRequest,
    leaf: &Leaf,
) -> Result<bool, sqlx::Error> {
    let at = ms(req.at);
    let test = &req.test;
    let done = sqlx::query(ISSUE_SQL)
        .bind(req.order.as_str())
        .bind(req.station.as_str())
        .bind(leaf.kind)
        .bind(leaf.bytes.as_slice())
        .bind(leaf.hash.0.as_slice())
        .bind(req.certificate.sha256.0.as_slice())
        .bind(req.product.as_str())
        .bind(req.serial.as_str())
        .bind(req.pubkey_sha256.0.as_slice())
        .bind(&req.certificate.serial_hex)
        .bind(req.certificate.der.as_slice())
        .bind(at)
        .bind(test.product.as_str())
        .bind(test.order.as_str())
        .bind(test.station.as_str())
        .bind(test.serial.as_ref().map(Serial::as_str))
        .bind(&test.verdict)
        .bind(&test.format)
        .bind(test.sha256.0.as_slice())
        .bind(&test.record_json)
        .bind(ms(test.at))
        .execute(conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// The unit just issued, as [`issued_unit`] will read it back.
fn issued_unit_of(req: &IssueRequest, leaf: &Leaf) -> IssuedUnit {
    IssuedUnit {
        order: req.order.clone(),
        product: req.product.clone(),
        serial: req.serial.clone(),
        station: req.station.clone(),
        cert_der: req.certificate.der.clone(),
        cert_sha256: req.certificate.sha256,
        pubkey_sha256: req.pubkey_sha256,
        issued_at: ms(req.at),
        receipt: leaf.receipt(),
    }
}

pub(super) async fn record_rejection(pool: &PgPool, rejection: &Rejection) -> Result<Receipt> {
    let attempt = rejection.attempt.as_ref();
    // As on SQLite: the unit is recorded as failed only with a test attempt of a known serial.
    let failed_unit = match (attempt, &rejection.failed_unit) {
        (Some(a), Some((product, serial))) if a.serial.is_some() => Some((product, serial)),
        _ => None,
    };
    let leaf = Leaf::of(&rejection.event)?;
    reject(pool, &leaf, attempt, failed_unit).await?;
    Ok(leaf.receipt())
}

/// One statement: the event, the attempt if any, the failed unit if any.
async fn reject<'e>(
    conn: impl PgExecutor<'e>,
    leaf: &Leaf,
    attempt: Option<&TestAttempt>,
    failed_unit: Option<(&ProductId, &Serial)>,
) -> Result<(), sqlx::Error> {
    sqlx::query(REJECTION_SQL)
        .bind(leaf.kind)
        .bind(leaf.order.as_deref())
        .bind(leaf.bytes.as_slice())
        .bind(leaf.hash.0.as_slice())
        .bind(attempt.map(|a| a.product.as_str()))
        .bind(attempt.map(|a| a.order.as_str()))
        .bind(attempt.map(|a| a.station.as_str()))
        .bind(attempt.and_then(|a| a.serial.as_ref().map(Serial::as_str)))
        .bind(attempt.map(|a| a.verdict.as_str()))
        .bind(attempt.map(|a| a.format.as_str()))
        .bind(attempt.map(|a| a.sha256.0.as_slice()))
        .bind(attempt.map(|a| a.record_json.as_str()))
        .bind(attempt.map(|a| ms(a.at)))
        .bind(failed_unit.map(|(p, _)| p.as_str()))
        .bind(failed_unit.map(|(_, s)| s.as_str()))
        .execute(conn)
        .await?;
    Ok(())
}

pub(super) async fn issued_unit(
    pool: &PgPool,
    product: &ProductId,
    serial: &Serial,
) -> Result<Option<IssuedUnit>> {
    let row = sqlx::query(concat!(
        "SELECT ",
        issued_unit_columns!(),
        " FROM certificates c LEFT JOIN events e ON e.seq = c.event_seq
          WHERE c.product = $1 AND c.serial = $2"
    ))
    .bind(product.as_str())
    .bind(serial.as_str())
    .fetch_optional(pool)
    .await?;
    match row {
        Some(row) => rows::issued_unit(&row, 0),
        None => Ok(None),
    }
}

pub(super) async fn units(pool: &PgPool, order: &OrderId) -> Result<Vec<UnitSummary>> {
    sqlx::query(concat!(
        unit_select!(),
        " WHERE u.order_id = $1 ORDER BY u.serial"
    ))
    .bind(order.as_str())
    .fetch_all(pool)
    .await?
    .iter()
    .map(rows::unit)
    .collect()
}

pub(super) async fn unit(pool: &PgPool, serial: &Serial) -> Result<Vec<UnitSummary>> {
    sqlx::query(concat!(
        unit_select!(),
        " WHERE u.serial = $1 ORDER BY u.product"
    ))
    .bind(serial.as_str())
    .fetch_all(pool)
    .await?
    .iter()
    .map(rows::unit)
    .collect()
}
