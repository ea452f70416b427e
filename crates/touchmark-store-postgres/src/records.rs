//! Test records as data ([`TestDataStore`]): the steps and measurements that migration 0008's
//! trigger projects from each stored attempt's normalized record, and a serial's certificates.

use std::collections::HashMap;

use async_trait::async_trait;
use sqlx::PgPool;
use sqlx::postgres::PgRow;
use time::OffsetDateTime;
use touchmark_core::clock::format_timestamp;
use touchmark_core::oversight::{AttemptEntry, HistoryEntry, MeasurementEntry, StepEntry};
use touchmark_core::{OrderId, Serial};
use touchmark_store::{
    AttemptRow, FailureCount, MeasurementSample, OrderMeasurement, TestDataStore, Window, codec,
};

use crate::PostgresStore;
use crate::error::Result;
use crate::rows::get;

fn id(n: i64) -> Result<u64> {
    Ok(u64::try_from(n).map_err(|e| codec::corrupt("test attempt id", e))?)
}

fn hex(what: &str, bytes: &[u8]) -> Result<String> {
    Ok(codec::sha256(what, bytes)?.to_hex())
}

/// Open ends of a window as bounds no time passes.
fn bounds(window: Window) -> (OffsetDateTime, OffsetDateTime) {
    (
        window.from.unwrap_or(OffsetDateTime::UNIX_EPOCH),
        window
            .until
            .unwrap_or(OffsetDateTime::UNIX_EPOCH + time::Duration::days(365 * 8000)),
    )
}

async fn attempts_of(pool: &PgPool, serial: &str) -> Result<Vec<AttemptEntry>> {
    let rows = sqlx::query(
        "SELECT t.id, t.created_at, t.product, t.order_id, t.station, t.verdict, t.format,
                t.sha256, e.idx
         FROM test_attempts t LEFT JOIN events e ON e.seq = t.event_seq
         WHERE t.serial = $1 ORDER BY t.id",
    )
    .bind(serial)
    .fetch_all(pool)
    .await?;
    let mut attempts = Vec::with_capacity(rows.len());
    let mut by_id = HashMap::new();
    for r in &rows {
        let n: i64 = get(r, 0)?;
        by_id.insert(n, attempts.len());
        attempts.push(AttemptEntry {
            id: id(n)?,
            at: format_timestamp(get(r, 1)?),
            product: get(r, 2)?,
            order: get(r, 3)?,
            station: get(r, 4)?,
            verdict: get(r, 5)?,
            format: get(r, 6)?,
            sha256: hex("test attempt hash", &get::<Vec<u8>>(r, 7)?)?,
            event_index: get::<Option<i64>>(r, 8)?.map(id).transpose()?,
            steps: Vec::new(),
        });
    }
    let rows = sqlx::query(
        "SELECT s.attempt_id, s.name, s.outcome FROM test_steps s
         JOIN test_attempts t ON t.id = s.attempt_id
         WHERE t.serial = $1 ORDER BY s.attempt_id, s.idx",
    )
    .bind(serial)
    .fetch_all(pool)
    .await?;
    for r in &rows {
        if let Some(&i) = by_id.get(&get::<i64>(r, 0)?) {
            attempts[i].steps.push(StepEntry {
                name: get(r, 1)?,
                outcome: get(r, 2)?,
                measurements: Vec::new(),
            });
        }
    }
    let rows = sqlx::query(
        "SELECT m.attempt_id, m.step_idx, m.name, m.value, m.text, m.unit, m.low, m.high,
                m.outcome
         FROM test_measurements m JOIN test_attempts t ON t.id = m.attempt_id
         WHERE t.serial = $1 ORDER BY m.attempt_id, m.step_idx, m.idx",
    )
    .bind(serial)
    .fetch_all(pool)
    .await?;
    for r in &rows {
        let step =
            usize::try_from(get::<i32>(r, 1)?).map_err(|e| codec::corrupt("test step index", e))?;
        let m = MeasurementEntry {
            name: get(r, 2)?,
            value: get(r, 3)?,
            text: get(r, 4)?,
            unit: get(r, 5)?,
            low: get(r, 6)?,
            high: get(r, 7)?,
            outcome: get(r, 8)?,
        };
        if let Some(s) = by_id
            .get(&get::<i64>(r, 0)?)
            .and_then(|&i| attempts[i].steps.get_mut(step))
        {
            s.measurements.push(m);
        }
    }
    Ok(attempts)
}

async fn certificates_of(pool: &PgPool, serial: &str) -> Result<Vec<HistoryEntry>> {
    // Through the units' serial index: a certificate always has its unit.
    let rows = sqlx::query(
        "SELECT c.issued_at, c.product, c.order_id, c.station, c.sha256, e.idx
         FROM certificates c LEFT JOIN events e ON e.seq = c.event_seq
         WHERE c.product IN (SELECT product FROM units WHERE serial = $1) AND c.serial = $1
         ORDER BY c.issued_at, c.event_seq",
    )
    .bind(serial)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(HistoryEntry {
                at: format_timestamp(get(r, 0)?),
                kind: String::from("certificate.issued"),
                product: get(r, 1)?,
                order: get(r, 2)?,
                station: Some(get(r, 3)?),
                attempt: None,
                cert_sha256: Some(hex("certificate hash", &get::<Vec<u8>>(r, 4)?)?),
                event_index: get::<Option<i64>>(r, 5)?.map(id).transpose()?,
            })
        })
        .collect()
}

async fn order_attempts(pool: &PgPool, order: &str, window: Window) -> Result<Vec<AttemptRow>> {
    let (from, until) = bounds(window);
    let rows = sqlx::query(
        "SELECT id, product, serial, station, verdict, created_at FROM test_attempts
         WHERE order_id = $1 AND created_at >= $2 AND created_at < $3 ORDER BY id",
    )
    .bind(order)
    .bind(from)
    .bind(until)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(AttemptRow {
                id: id(get(r, 0)?)?,
                product: get(r, 1)?,
                serial: get(r, 2)?,
                station: get(r, 3)?,
                verdict: get(r, 4)?,
                at: get(r, 5)?,
            })
        })
        .collect()
}

/// A numeric measurement from the columns `attempt_id, station, step, name, value, unit, low,
/// high, outcome, created_at`, in that order, starting at `first`.
fn sample(r: &PgRow, first: usize) -> Result<MeasurementSample> {
    Ok(MeasurementSample {
        attempt: id(get(r, first)?)?,
        station: get(r, first + 1)?,
        step: get(r, first + 2)?,
        name: get(r, first + 3)?,
        value: get(r, first + 4)?,
        unit: get(r, first + 5)?,
        low: get(r, first + 6)?,
        high: get(r, first + 7)?,
        passed: get::<String>(r, first + 8)? == "pass",
        at: get(r, first + 9)?,
    })
}

async fn order_measurements(
    pool: &PgPool,
    order: &str,
    window: Window,
) -> Result<Vec<MeasurementSample>> {
    let (from, until) = bounds(window);
    let rows = sqlx::query(
        "SELECT attempt_id, station, step, name, value, unit, low, high, outcome, created_at
         FROM test_measurements
         WHERE order_id = $1 AND created_at >= $2 AND created_at < $3 AND value IS NOT NULL
         ORDER BY step, name, attempt_id",
    )
    .bind(order)
    .bind(from)
    .bind(until)
    .fetch_all(pool)
    .await?;
    rows.iter().map(|r| sample(r, 0)).collect()
}

async fn measurements_after(
    pool: &PgPool,
    after: u64,
    limit: u32,
) -> Result<Vec<OrderMeasurement>> {
    // Both reads are ranges of the primary key (attempt_id, step_idx, idx): the inner one finds
    // the page's last attempt, the outer one reads up to its end.
    let rows = sqlx::query(
        "SELECT order_id, attempt_id, station, step, name, value, unit, low, high, outcome,
                created_at
         FROM test_measurements
         WHERE attempt_id > $1 AND value IS NOT NULL
           AND attempt_id <= (
               SELECT max(attempt_id) FROM (
                   SELECT attempt_id FROM test_measurements
                   WHERE attempt_id > $1 AND value IS NOT NULL
                   ORDER BY attempt_id, step_idx, idx LIMIT $2) AS page)
         ORDER BY attempt_id, step_idx, idx",
    )
    .bind(i64::try_from(after).unwrap_or(i64::MAX))
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(OrderMeasurement {
                order: get(r, 0)?,
                sample: sample(r, 1)?,
            })
        })
        .collect()
}

async fn order_failures(pool: &PgPool, order: &str, window: Window) -> Result<Vec<FailureCount>> {
    let (from, until) = bounds(window);
    let rows = sqlx::query(
        "SELECT s.name, NULL::text, count(*) FROM test_steps s
         JOIN test_attempts t ON t.id = s.attempt_id
         WHERE t.order_id = $1 AND t.created_at >= $2 AND t.created_at < $3
           AND s.outcome IN ('fail', 'error')
         GROUP BY s.name
         UNION ALL
         SELECT step, name, count(*) FROM test_measurements
         WHERE order_id = $1 AND created_at >= $2 AND created_at < $3 AND outcome = 'fail'
         GROUP BY step, name
         ORDER BY 1, 2 NULLS FIRST",
    )
    .bind(order)
    .bind(from)
    .bind(until)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(FailureCount {
                step: get(r, 0)?,
                measurement: get(r, 1)?,
                failures: id(get(r, 2)?)?,
            })
        })
        .collect()
}

#[async_trait]
impl TestDataStore for PostgresStore {
    async fn unit_attempts(&self, serial: &Serial) -> touchmark_store::Result<Vec<AttemptEntry>> {
        Ok(attempts_of(self.pool(), serial.as_str()).await?)
    }

    async fn unit_certificates(
        &self,
        serial: &Serial,
    ) -> touchmark_store::Result<Vec<HistoryEntry>> {
        Ok(certificates_of(self.pool(), serial.as_str()).await?)
    }

    async fn order_attempts(
        &self,
        order: &OrderId,
        window: Window,
    ) -> touchmark_store::Result<Vec<AttemptRow>> {
        Ok(order_attempts(self.pool(), order.as_str(), window).await?)
    }

    async fn order_measurements(
        &self,
        order: &OrderId,
        window: Window,
    ) -> touchmark_store::Result<Vec<MeasurementSample>> {
        Ok(order_measurements(self.pool(), order.as_str(), window).await?)
    }

    async fn order_failures(
        &self,
        order: &OrderId,
        window: Window,
    ) -> touchmark_store::Result<Vec<FailureCount>> {
        Ok(order_failures(self.pool(), order.as_str(), window).await?)
    }

    async fn measurements_after(
        &self,
        after: u64,
        limit: u32,
    ) -> touchmark_store::Result<Vec<OrderMeasurement>> {
        Ok(measurements_after(self.pool(), after, limit).await?)
    }
}
