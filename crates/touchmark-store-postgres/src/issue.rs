//! The hot path: one issuance (design.md §4, checks 6 to 8 and I1 to I4) across any number of
//! replicas, rejections, and the unit reads.
//!
//! Two rules make the log tell the truth about concurrent requests (design.md §10). Whatever an
//! issuance or a refusal was decided on (the station active, the order open, quota left) is
//! held, by a row lock, until its event is inserted and committed, so a revocation, a close or
//! a quota change that conflicts with it waits, or is waited for. And an event takes its `seq`
//! after those locks, so the sequencer (which orders committed events by `seq`) puts it after
//! every change it saw and before every change that waited for it. Replaying the log, every
//! decision is then right at its place.
//!
//! The usual issuance is two statements, each its own transaction under READ COMMITTED:
//!
//! 1. One query reads the facts `touchmark_core::policy::issue::decide` needs: the station's
//!    status, the order's state, window and counts, the certificate already issued for the
//!    serial (with where its event was logged), the serial already bound to the key, and the
//!    serial already issued with the test record; `decide` judges them at the time by the
//!    authority's clock ([`IssueRequest::now`]). A retry that was issued before (I2) is
//!    answered here.
//! 2. If they pass, one statement counts and records the issuance: it locks the station's row
//!    if the station is active (`FOR SHARE`: a revocation waits), keeps only the issuances whose
//!    order's window holds the clock read just before the statement (check 2 at commit), updates
//!    the order's count if it is open with quota left (the quota check, I1; the row stays
//!    locked), and only then inserts the event, the certificate, the unit and the test attempt
//!    (I3). Being one statement, it commits the moment it ends: the order's row stays locked
//!    only while the inserts run and the commit flushes, with no round trip to this process in
//!    between.
//!
//! Anything else (a check failed in step 1, or the count did not move in step 2) is settled in
//! one transaction that first locks the station's row (`FOR SHARE`) and the order's row
//! (`FOR NO KEY UPDATE`), then runs the checks again on what is committed and records their
//! verdict: the refusal with its event and test attempt, or, if the state changed back in
//! between (quota raised), the issuance.
//!
//! Two replicas that race on the same serial, key or test record meet at a unique constraint
//! (the certificate's serial, key and test record hash are each unique): the loser's
//! statement or transaction fails whole (nothing of it stays, not even the count), and it runs
//! again, now seeing the winner's row, to answer `AlreadyIssued`, `serial_conflict` or
//! `key_reused` or `test_record_reused` exactly as if the requests had not overlapped.

use std::sync::Arc;

use sqlx::postgres::{PgExecutor, PgPool, PgRow};
use touchmark_core::entity::StationStatus;
use touchmark_core::event::{Leaf, Logged};
use touchmark_core::order::OrderState;
use touchmark_core::policy::issue::{
    Decision, ExistingCertificate, IssueFacts, OrderFacts, RevokedScope, decide,
};
use touchmark_core::{OrderId, ProductId, Serial, StationId};

use touchmark_store::{
    IssueOutcome, IssueRequest, IssuedUnit, Rejection, StoreError, TestAttempt, UnitSummary,
    to_millis,
};

use crate::batch::{Batcher, Counted};
use crate::error::{Error, Result, is_retryable, store_error};
use crate::leaf;
use crate::rows::{self, get, issued_unit_columns, unit_select};

/// How many times an issuance runs before it gives up on a race it keeps losing. One retry
/// settles a race on a serial or key.
const MAX_ATTEMPTS: u32 = 5;

/// Step 1: the facts of `decide`, in one row, whatever exists.
const CHECKS_SQL: &str = concat!(
    "SELECT s.status, o.state, o.issued, o.quota, o.not_before, o.not_after, k.serial, t.serial, ",
    "EXISTS (SELECT 1 FROM ca_revocations WHERE product = $3), ",
    "COALESCE(c.revoked_at IS NOT NULL, false), ",
    issued_unit_columns!(),
    " FROM (VALUES (1)) AS one (x)
      LEFT JOIN stations s ON s.id = $1
      LEFT JOIN orders o ON o.id = $2
      LEFT JOIN certificates c ON c.product = $3 AND c.serial = $4
      LEFT JOIN events e ON e.seq = c.event_seq
      LEFT JOIN certificates k ON k.pubkey_sha256 = $5
      LEFT JOIN certificates t ON t.test_sha256 = $6"
);

/// Where the issued unit's columns start in a [`CHECKS_SQL`] row.
const CHECKS_UNIT_AT: usize = 10;

/// The slow path's locks, station first (as in step 2), whatever the rows hold.
const LOCK_SQL: &str = "SELECT (SELECT 1 FROM stations WHERE id = $1 FOR SHARE),
                               (SELECT 1 FROM orders WHERE id = $2 FOR NO KEY UPDATE)";

/// Step 2, for one issuance or a batch of them, in one statement: lock the active stations
/// (`FOR SHARE`: a revocation waits), leave out the issuances whose order's window does not
/// hold `now` (the authority's clock, read just before the statement: check 2 at commit; a
/// window never changes, so it needs no lock), lock the orders (in id order, so two replicas'
/// batches never wait for each other in a cycle), count each order's issuances at once if they
/// all fit its quota (the race guard behind the quota check, all or nothing per order), and only then
/// insert the events, certificates, units and test attempts of what was counted (I3). It
/// returns the ordinal (from 1) of every issuance it recorded.
///
/// Being one statement, it commits the moment it ends, and no row stays locked across a round
/// trip to this process: a replica that freezes mid-batch holds nothing (finding 1 of the
/// fault review). Each statement of the `WITH` reads the rows of the one before, so they run in
/// this order (a data-modifying `WITH` runs its statements in an unspecified order otherwise).
const RECORD_SQL: &str = "
WITH input AS MATERIALIZED (
    SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::bytea[], $5::bytea[],
                         $6::bytea[], $7::text[], $8::text[], $9::bytea[], $10::text[],
                         $11::bytea[], $12::timestamptz[], $13::text[], $14::text[],
                         $15::bytea[], $16::text[], $17::timestamptz[], $18::timestamptz[],
                         $19::text[], $20::bytea[], $21::bytea[], $22::bytea[])
        WITH ORDINALITY AS i (order_id, station, kind, bytes, leaf_hash, cert_sha256, product,
                              serial, pubkey_sha256, cert_serial, der, at, verdict, format,
                              test_sha256, record, test_at, now, fw_release, fw_wrap,
                              fw_sha256, fw_key, n)
), station AS MATERIALIZED (
    SELECT id FROM stations
    WHERE id IN (SELECT station FROM input) AND status = 'active'
    ORDER BY id FOR SHARE
), eligible AS MATERIALIZED (
    SELECT input.* FROM input
    JOIN station ON station.id = input.station
    JOIN orders span ON span.id = input.order_id
    WHERE (span.not_before IS NULL OR input.now >= span.not_before)
      AND (span.not_after IS NULL OR input.now <= span.not_after)
), wanted AS MATERIALIZED (
    SELECT order_id, count(*) AS k FROM eligible GROUP BY order_id
), locked AS MATERIALIZED (
    SELECT id FROM orders WHERE id IN (SELECT order_id FROM wanted)
    ORDER BY id FOR NO KEY UPDATE
), counted AS (
    UPDATE orders SET issued = orders.issued + wanted.k
    FROM locked JOIN wanted ON wanted.order_id = locked.id
    WHERE orders.id = locked.id AND orders.state = 'open'
      AND orders.issued + wanted.k <= orders.quota
    RETURNING orders.id
), chosen AS MATERIALIZED (
    SELECT eligible.* FROM eligible JOIN counted ON counted.id = eligible.order_id
), event AS (
    INSERT INTO events (kind, order_id, bytes, leaf_hash)
    SELECT kind, order_id, bytes, leaf_hash FROM chosen ORDER BY n
    RETURNING seq, leaf_hash
), certificate AS (
    INSERT INTO certificates (sha256, product, serial, order_id, station, pubkey_sha256,
                              cert_serial, der, event_seq, issued_at, test_sha256)
    SELECT c.cert_sha256, c.product, c.serial, c.order_id, c.station, c.pubkey_sha256,
           c.cert_serial, c.der, event.seq, c.at, c.test_sha256
    FROM chosen c JOIN event ON event.leaf_hash = c.leaf_hash
    RETURNING event_seq, sha256
), unit AS (
    INSERT INTO units (product, serial, order_id, status, station, pubkey_sha256, cert_sha256,
                       updated_at)
    SELECT c.product, c.serial, c.order_id, 'provisioned', c.station, c.pubkey_sha256,
           c.cert_sha256, c.at
    FROM chosen c JOIN certificate ON certificate.sha256 = c.cert_sha256
    ON CONFLICT (product, serial) DO UPDATE SET order_id = excluded.order_id,
        status = 'provisioned', station = excluded.station,
        pubkey_sha256 = excluded.pubkey_sha256, cert_sha256 = excluded.cert_sha256,
        updated_at = excluded.updated_at
    RETURNING cert_sha256
), attempt AS (
    INSERT INTO test_attempts (product, order_id, station, serial, verdict, format, sha256,
                               record, event_seq, created_at)
    SELECT c.product, c.order_id, c.station, c.serial, c.verdict, c.format, c.test_sha256,
           c.record, certificate.event_seq, c.test_at
    FROM chosen c
    JOIN unit ON unit.cert_sha256 = c.cert_sha256
    JOIN certificate ON certificate.sha256 = c.cert_sha256
    RETURNING 1
), firmware AS (
    INSERT INTO unit_firmware (order_id, serial, release_id, wrap, image_sha256, event_seq,
                               encryption_key)
    SELECT c.order_id, c.serial, c.fw_release, c.fw_wrap, c.fw_sha256, certificate.event_seq,
           c.fw_key
    FROM chosen c JOIN certificate ON certificate.sha256 = c.cert_sha256
    WHERE c.fw_release IS NOT NULL
    RETURNING 1
)
SELECT n FROM chosen";

/// An event with, when the request carried a valid record, its test attempt and, when asked,
/// the unit recorded as failed (inserted, or updated while it is still only a failed test: a
/// failed test never downgrades a provisioned unit).
const REJECTION_SQL: &str = "
WITH event AS (
    INSERT INTO events (kind, order_id, bytes, leaf_hash) VALUES ($1, $2, $3, $4)
    RETURNING seq
), attempt AS (
    INSERT INTO test_attempts (product, order_id, station, serial, verdict, format, sha256,
                               record, event_seq, created_at)
    SELECT $5, $6, $7, $8, $9, $10, $11, $12, seq, $13 FROM event WHERE $9::text IS NOT NULL
)
INSERT INTO units (product, serial, order_id, status, station, updated_at)
SELECT $5, $8, $6, 'failed_test', $7, $13 FROM event
WHERE $14 AND $8::text IS NOT NULL AND $9::text IS NOT NULL
ON CONFLICT (product, serial) DO UPDATE SET order_id = excluded.order_id,
    station = excluded.station, updated_at = excluded.updated_at
WHERE units.status = 'failed_test'";

/// An issuance with its `unit.issued` event encoded once, shared with the batching task.
#[derive(Debug)]
pub(super) struct Prepared {
    req: IssueRequest,
    leaf: Leaf,
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
            Self::Race(store_error(e))
        } else {
            Self::Fatal(store_error(e))
        }
    }
}

impl From<StoreError> for Failed {
    fn from(e: StoreError) -> Self {
        Self::Fatal(e)
    }
}

impl From<Error> for Failed {
    fn from(e: Error) -> Self {
        Self::Fatal(e.0)
    }
}

pub(super) async fn issue(
    pool: &PgPool,
    batcher: &Batcher,
    req: IssueRequest,
) -> Result<IssueOutcome> {
    let prepared = Arc::new(Prepared {
        leaf: leaf(req.event())?,
        req,
    });
    let mut attempt = 1;
    loop {
        // The first run joins this replica's group commit; a run after a lost race goes alone.
        let batch = (attempt == 1).then_some(batcher);
        match try_issue(pool, batch, &prepared).await {
            Ok(outcome) => return Ok(outcome),
            Err(Failed::Race(e)) if attempt < MAX_ATTEMPTS => {
                tracing::debug!(
                    error = %e,
                    attempt,
                    serial = %prepared.req.issuance().serial,
                    "issuance raced another; running it again"
                );
                attempt += 1;
            }
            Err(Failed::Race(e)) => return Err(e.into()),
            Err(Failed::Fatal(e)) => return Err(e.into()),
        }
    }
}

/// One run of an issuance: the two statements of the usual case, or the locked transaction.
async fn try_issue(
    pool: &PgPool,
    batch: Option<&Batcher>,
    prepared: &Arc<Prepared>,
) -> Result<IssueOutcome, Failed> {
    let req = &prepared.req;
    let (facts, existing) = read_facts(&checks(pool, req).await?, req)?;
    match decide(&facts, req.issuance()) {
        Decision::AlreadyIssued => return Ok(IssueOutcome::AlreadyIssued(already(existing)?)),
        Decision::Proceed => {
            let counted = match batch {
                Some(batcher) => match batcher.count(Arc::clone(prepared)).await {
                    Counted::Yes => true,
                    Counted::No => false,
                    // The batch rolled back whole (a race in one of its issuances): this one
                    // runs again on its own.
                    Counted::Again(why) => {
                        return Err(Failed::Race(StoreError::Database(why)));
                    }
                    Counted::Failed(e) => return Err(Failed::Fatal(e)),
                },
                None => record(pool, &[prepared]).await?[0],
            };
            if counted {
                return Ok(IssueOutcome::Issued(issued_unit_of(prepared)));
            }
        }
        Decision::Refuse { .. } => {}
    }
    // A refusal, or a count that did not move (the last unit of quota went to another request,
    // the order closed or the station was revoked since step 1): decide again, holding what
    // the decision rests on until its event commits.
    let attempt = &req.issuance().attempt;
    let mut tx = pool.begin().await?;
    sqlx::query(LOCK_SQL)
        .bind(attempt.station.as_str())
        .bind(attempt.order.as_str())
        .execute(&mut *tx)
        .await?;
    // A statement of its own, after the locks: it sees every change committed before them.
    let (facts, existing) = read_facts(&checks(&mut *tx, req).await?, req)?;
    let outcome = match decide(&facts, req.issuance()) {
        Decision::AlreadyIssued => IssueOutcome::AlreadyIssued(already(existing)?),
        Decision::Refuse { refusal, event } => {
            let leaf = leaf(&event)?;
            let row = AttemptRow {
                product: Some(&req.issuance().product),
                order: &attempt.order,
                station: &attempt.station,
                serial: Some(&req.issuance().serial),
                test: Some(req.test()),
            };
            reject(&mut *tx, &leaf, &row, false).await?;
            IssueOutcome::Refused {
                refusal,
                logged: leaf.logged(None),
            }
        }
        Decision::Proceed => {
            if !record(&mut *tx, &[prepared]).await?[0] {
                // The checks passed on rows this transaction holds locked: the count cannot
                // fail to move. Say so rather than guess an answer.
                return Err(Failed::Fatal(StoreError::Database(format!(
                    "order {}: the count did not move under its lock",
                    attempt.order
                ))));
            }
            IssueOutcome::Issued(issued_unit_of(prepared))
        }
    };
    tx.commit().await?;
    Ok(outcome)
}

/// The unit a retry is answered with.
fn already(existing: Option<IssuedUnit>) -> Result<IssuedUnit, Failed> {
    existing.ok_or_else(|| Failed::Fatal(touchmark_store::codec::retry_without_unit()))
}

/// Runs [`CHECKS_SQL`] for `req`.
async fn checks<'e>(conn: impl PgExecutor<'e>, req: &IssueRequest) -> Result<PgRow, sqlx::Error> {
    let issuance = req.issuance();
    sqlx::query(CHECKS_SQL)
        .bind(issuance.attempt.station.as_str())
        .bind(issuance.attempt.order.as_str())
        .bind(issuance.product.as_str())
        .bind(issuance.serial.as_str())
        .bind(issuance.pubkey_sha256.0.as_slice())
        .bind(req.test().sha256.0.as_slice())
        .fetch_one(conn)
        .await
}

/// The facts of a [`CHECKS_SQL`] row for `req`, at the time by its clock now (just after the
/// row was read), and the issued unit it found.
fn read_facts(row: &PgRow, req: &IssueRequest) -> Result<(IssueFacts, Option<IssuedUnit>)> {
    let corrupt = |what: &str, text: &str| StoreError::Corrupt(format!("{what} `{text}`"));
    let station = get::<Option<String>>(row, 0)?
        .map(|s| StationStatus::from_str_opt(&s).ok_or_else(|| corrupt("station status", &s)))
        .transpose()?;
    let order = match get::<Option<String>>(row, 1)? {
        None => None,
        Some(state) => Some(OrderFacts {
            state: OrderState::from_str_opt(&state)
                .ok_or_else(|| corrupt("order state", &state))?,
            issued: rows::count(get(row, 2)?)?,
            quota: rows::count(get(row, 3)?)?,
            not_before: get(row, 4)?,
            not_after: get(row, 5)?,
        }),
    };
    let existing = rows::issued_unit(row, CHECKS_UNIT_AT)?;
    let facts = IssueFacts {
        now: req.now(),
        station,
        order,
        existing: existing.as_ref().map(|unit| ExistingCertificate {
            order: unit.order.clone(),
            pubkey_sha256: unit.pubkey_sha256,
        }),
        key_bound_to: get::<Option<String>>(row, 6)?
            .map(rows::serial)
            .transpose()?,
        test_used_by: get::<Option<String>>(row, 7)?
            .map(rows::serial)
            .transpose()?,
        revoked: if get::<bool>(row, 8)? {
            Some(RevokedScope::Ca)
        } else if get::<bool>(row, 9)? {
            Some(RevokedScope::Unit)
        } else {
            None
        },
    };
    Ok((facts, existing))
}

/// Step 2 for `batch` ([`RECORD_SQL`]): whether each issuance was counted and recorded. One
/// that was not changed nothing: its station is not active, its order not open, or its order
/// has too little quota left for the batch's issuances of it.
pub(super) async fn record<'e>(
    conn: impl PgExecutor<'e>,
    batch: &[&Prepared],
) -> Result<Vec<bool>, sqlx::Error> {
    let mut c = Columns::with_capacity(batch.len());
    for prepared in batch {
        c.push(prepared);
    }
    let recorded: Vec<i64> = sqlx::query_scalar(RECORD_SQL)
        .bind(c.order)
        .bind(c.station)
        .bind(c.kind)
        .bind(c.bytes)
        .bind(c.leaf_hash)
        .bind(c.cert_sha256)
        .bind(c.product)
        .bind(c.serial)
        .bind(c.pubkey_sha256)
        .bind(c.cert_serial)
        .bind(c.der)
        .bind(c.at)
        .bind(c.verdict)
        .bind(c.format)
        .bind(c.test_sha256)
        .bind(c.record)
        .bind(c.test_at)
        .bind(c.now)
        .bind(c.fw_release)
        .bind(c.fw_wrap)
        .bind(c.fw_sha256)
        .bind(c.fw_key)
        .fetch_all(conn)
        .await?;
    let mut done = vec![false; batch.len()];
    for n in recorded {
        if let Some(slot) = usize::try_from(n).ok().and_then(|n| done.get_mut(n - 1)) {
            *slot = true;
        }
    }
    Ok(done)
}

/// A batch's issuances as the columns of [`RECORD_SQL`]'s arrays.
#[derive(Default)]
struct Columns<'a> {
    order: Vec<&'a str>,
    station: Vec<&'a str>,
    kind: Vec<&'static str>,
    bytes: Vec<&'a [u8]>,
    leaf_hash: Vec<&'a [u8]>,
    cert_sha256: Vec<&'a [u8]>,
    product: Vec<&'a str>,
    serial: Vec<&'a str>,
    pubkey_sha256: Vec<&'a [u8]>,
    cert_serial: Vec<&'a str>,
    der: Vec<&'a [u8]>,
    at: Vec<time::OffsetDateTime>,
    verdict: Vec<&'static str>,
    format: Vec<&'static str>,
    test_sha256: Vec<&'a [u8]>,
    record: Vec<&'a str>,
    test_at: Vec<time::OffsetDateTime>,
    now: Vec<time::OffsetDateTime>,
    fw_release: Vec<Option<&'a str>>,
    fw_wrap: Vec<Option<&'a [u8]>>,
    fw_sha256: Vec<Option<&'a [u8]>>,
    fw_key: Vec<Option<&'a [u8]>>,
}

impl<'a> Columns<'a> {
    fn with_capacity(n: usize) -> Self {
        Self {
            order: Vec::with_capacity(n),
            ..Self::default()
        }
    }

    fn push(&mut self, prepared: &'a Prepared) {
        let Prepared { req, leaf } = prepared;
        let issuance = req.issuance();
        let test = req.test();
        self.order.push(issuance.attempt.order.as_str());
        self.station.push(issuance.attempt.station.as_str());
        self.kind.push(leaf.kind);
        self.bytes.push(&leaf.bytes);
        self.leaf_hash.push(leaf.hash.as_bytes());
        self.cert_sha256.push(&issuance.cert_sha256.0);
        self.product.push(issuance.product.as_str());
        self.serial.push(issuance.serial.as_str());
        self.pubkey_sha256.push(&issuance.pubkey_sha256.0);
        self.cert_serial.push(&req.certificate().serial_hex);
        self.der.push(&req.certificate().der);
        self.at.push(to_millis(issuance.attempt.at));
        self.verdict.push(test.verdict.as_str());
        self.format.push(test.format.as_str());
        self.test_sha256.push(&test.sha256.0);
        self.record.push(&test.record);
        self.test_at.push(to_millis(test.at));
        // Read as the statement is built, right before it runs: check 2 at commit.
        self.now.push(req.now());
        let firmware = req.firmware();
        self.fw_release.push(firmware.map(|f| f.release.as_str()));
        self.fw_wrap.push(firmware.map(|f| f.wrap.as_slice()));
        self.fw_sha256
            .push(firmware.map(|f| f.image_sha256.0.as_slice()));
        self.fw_key
            .push(firmware.and_then(|f| f.encryption_key.as_deref()));
    }
}

/// The unit just issued, as [`issued_unit`] will read it back.
fn issued_unit_of(prepared: &Prepared) -> IssuedUnit {
    let Prepared { req, leaf } = prepared;
    let issuance = req.issuance();
    IssuedUnit {
        order: issuance.attempt.order.clone(),
        product: issuance.product.clone(),
        serial: issuance.serial.clone(),
        station: issuance.attempt.station.clone(),
        cert_der: req.certificate().der.clone(),
        cert_sha256: issuance.cert_sha256,
        pubkey_sha256: issuance.pubkey_sha256,
        issued_at: to_millis(issuance.attempt.at),
        logged: leaf.logged(None),
    }
}

pub(super) async fn record_rejection(pool: &PgPool, rejection: &Rejection) -> Result<Logged> {
    let leaf = leaf(&rejection.event)?;
    let row = AttemptRow {
        product: rejection.product.as_ref(),
        order: &rejection.order,
        station: &rejection.station,
        serial: rejection.serial.as_ref(),
        test: rejection.test.as_ref(),
    };
    reject(pool, &leaf, &row, rejection.failed_unit).await?;
    Ok(leaf.logged(None))
}

/// A test attempt's row: the record, and the request it came with. A record is kept only with
/// its product: a request against an unknown order keeps its event alone.
struct AttemptRow<'a> {
    product: Option<&'a ProductId>,
    order: &'a OrderId,
    station: &'a StationId,
    serial: Option<&'a Serial>,
    test: Option<&'a TestAttempt>,
}

/// One statement: the event, the attempt if any, and the failed unit if `failed_unit`.
async fn reject<'e>(
    conn: impl PgExecutor<'e>,
    leaf: &Leaf,
    row: &AttemptRow<'_>,
    failed_unit: bool,
) -> Result<(), sqlx::Error> {
    let test = row.test.filter(|_| row.product.is_some());
    sqlx::query(REJECTION_SQL)
        .bind(leaf.kind)
        .bind(leaf.order.as_ref().map(OrderId::as_str))
        .bind(leaf.bytes.as_slice())
        .bind(leaf.hash.as_bytes().as_slice())
        .bind(row.product.map(ProductId::as_str))
        .bind(row.order.as_str())
        .bind(row.station.as_str())
        .bind(row.serial.map(Serial::as_str))
        .bind(test.map(|t| t.verdict.as_str()))
        .bind(test.map(|t| t.format.as_str()))
        .bind(test.map(|t| t.sha256.0.as_slice()))
        .bind(test.map(|t| t.record.as_str()))
        .bind(test.map(|t| to_millis(t.at)))
        .bind(failed_unit)
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
