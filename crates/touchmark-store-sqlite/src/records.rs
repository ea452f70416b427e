//! Test records as data ([`TestDataStore`]): the steps and measurements that migration 0009's
//! trigger projects from each stored attempt's normalized record, and a serial's certificates.

use std::collections::HashMap;

use async_trait::async_trait;
use rusqlite::Connection;
use touchmark_core::clock::{format_timestamp, parse_timestamp};
use touchmark_core::oversight::{AttemptEntry, HistoryEntry, MeasurementEntry, StepEntry};
use touchmark_core::{OrderId, Serial};
use touchmark_store::{
    AttemptRow, FailureCount, MeasurementSample, OrderMeasurement, TestDataStore, Window, codec,
};

use crate::SqliteStore;
use crate::error::Result;

/// The window's bounds as stored timestamps (fixed-width RFC 3339, so text order is time
/// order); an open end is a bound no timestamp passes.
fn bounds(window: Window) -> (String, String) {
    (
        window.from.map(format_timestamp).unwrap_or_default(),
        window
            .until
            .map(format_timestamp)
            .unwrap_or_else(|| String::from("~")),
    )
}

fn id(n: i64) -> Result<u64> {
    Ok(u64::try_from(n).map_err(|e| codec::corrupt("test attempt id", e))?)
}

/// A numeric measurement from the columns `attempt_id, station, step, name, value, unit, low,
/// high, outcome, created_at`, in that order, starting at `first`.
fn sample(r: &rusqlite::Row<'_>, first: usize) -> rusqlite::Result<RawSample> {
    Ok((
        r.get(first)?,
        r.get(first + 1)?,
        r.get(first + 2)?,
        r.get(first + 3)?,
        r.get(first + 4)?,
        r.get(first + 5)?,
        r.get(first + 6)?,
        r.get(first + 7)?,
        r.get(first + 8)?,
        r.get(first + 9)?,
    ))
}

/// A measurement's columns as read, before they are checked.
type RawSample = (
    i64,
    String,
    String,
    String,
    f64,
    Option<String>,
    Option<f64>,
    Option<f64>,
    String,
    String,
);

fn checked(raw: RawSample) -> Result<MeasurementSample> {
    let (n, station, step, name, value, unit, low, high, outcome, at) = raw;
    Ok(MeasurementSample {
        attempt: id(n)?,
        station,
        step,
        name,
        value,
        unit,
        low,
        high,
        passed: outcome == "pass",
        at: parse_timestamp(&at).map_err(|e| codec::corrupt("attempt time", e))?,
    })
}

fn attempts_of(conn: &Connection, serial: &str) -> Result<Vec<AttemptEntry>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, created_at, product, order_id, station, verdict, format, sha256, event_index
         FROM test_attempts WHERE serial = ?1 ORDER BY id",
    )?;
    let rows = stmt.query_map([serial], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, String>(3)?,
            r.get::<_, String>(4)?,
            r.get::<_, String>(5)?,
            r.get::<_, String>(6)?,
            r.get::<_, Vec<u8>>(7)?,
            r.get::<_, Option<i64>>(8)?,
        ))
    })?;
    let mut attempts = Vec::new();
    let mut by_id = HashMap::new();
    for row in rows {
        let (n, at, product, order, station, verdict, format, sha256, event) = row?;
        by_id.insert(n, attempts.len());
        attempts.push(AttemptEntry {
            id: id(n)?,
            at,
            product,
            order,
            station,
            verdict,
            format,
            sha256: codec::sha256("test attempt hash", &sha256)?.to_hex(),
            event_index: event.map(id).transpose()?,
            steps: Vec::new(),
        });
    }
    let mut stmt = conn.prepare_cached(
        "SELECT s.attempt_id, s.name, s.outcome FROM test_steps s
         JOIN test_attempts t ON t.id = s.attempt_id
         WHERE t.serial = ?1 ORDER BY s.attempt_id, s.idx",
    )?;
    let rows = stmt.query_map([serial], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
        ))
    })?;
    for row in rows {
        let (n, name, outcome) = row?;
        if let Some(&i) = by_id.get(&n) {
            attempts[i].steps.push(StepEntry {
                name,
                outcome,
                measurements: Vec::new(),
            });
        }
    }
    let mut stmt = conn.prepare_cached(
        "SELECT m.attempt_id, m.step_idx, m.name, m.value, m.text, m.unit, m.low, m.high,
                m.outcome
         FROM test_measurements m JOIN test_attempts t ON t.id = m.attempt_id
         WHERE t.serial = ?1 ORDER BY m.attempt_id, m.step_idx, m.idx",
    )?;
    let rows = stmt.query_map([serial], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, i64>(1)?,
            MeasurementEntry {
                name: r.get(2)?,
                value: r.get(3)?,
                text: r.get(4)?,
                unit: r.get(5)?,
                low: r.get(6)?,
                high: r.get(7)?,
                outcome: r.get(8)?,
            },
        ))
    })?;
    for row in rows {
        let (n, step, m) = row?;
        let step = usize::try_from(step).map_err(|e| codec::corrupt("test step index", e))?;
        if let Some(s) = by_id.get(&n).and_then(|&i| attempts[i].steps.get_mut(step)) {
            s.measurements.push(m);
        }
    }
    Ok(attempts)
}

#[async_trait]
impl TestDataStore for SqliteStore {
    async fn unit_attempts(&self, serial: &Serial) -> touchmark_store::Result<Vec<AttemptEntry>> {
        let serial = serial.clone();
        self.read(move |conn| attempts_of(conn, serial.as_str()))
            .await
    }

    async fn unit_certificates(
        &self,
        serial: &Serial,
    ) -> touchmark_store::Result<Vec<HistoryEntry>> {
        let serial = serial.clone();
        self.read(move |conn| {
            // Through the units' serial index: a certificate always has its unit.
            let mut stmt = conn.prepare_cached(
                "SELECT issued_at, product, order_id, station, sha256, event_index
                 FROM certificates
                 WHERE product IN (SELECT product FROM units WHERE serial = ?1) AND serial = ?1
                 ORDER BY issued_at, event_index",
            )?;
            let rows = stmt.query_map([serial.as_str()], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, Vec<u8>>(4)?,
                    r.get::<_, i64>(5)?,
                ))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (at, product, order, station, sha256, event) = row?;
                out.push(HistoryEntry {
                    at,
                    kind: String::from("certificate.issued"),
                    product,
                    order,
                    station: Some(station),
                    attempt: None,
                    cert_sha256: Some(codec::sha256("certificate hash", &sha256)?.to_hex()),
                    event_index: Some(id(event)?),
                });
            }
            Ok(out)
        })
        .await
    }

    async fn order_attempts(
        &self,
        order: &OrderId,
        window: Window,
    ) -> touchmark_store::Result<Vec<AttemptRow>> {
        let order = order.clone();
        self.read(move |conn| {
            let (from, until) = bounds(window);
            let mut stmt = conn.prepare_cached(
                "SELECT id, product, serial, station, verdict, created_at FROM test_attempts
                 WHERE order_id = ?1 AND created_at >= ?2 AND created_at < ?3 ORDER BY id",
            )?;
            let rows = stmt.query_map([order.as_str(), &from, &until], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, Option<String>>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, String>(5)?,
                ))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (n, product, serial, station, verdict, at) = row?;
                out.push(AttemptRow {
                    id: id(n)?,
                    product,
                    serial,
                    station,
                    verdict,
                    at: parse_timestamp(&at).map_err(|e| codec::corrupt("attempt time", e))?,
                });
            }
            Ok(out)
        })
        .await
    }

    async fn order_measurements(
        &self,
        order: &OrderId,
        window: Window,
    ) -> touchmark_store::Result<Vec<MeasurementSample>> {
        let order = order.clone();
        self.read(move |conn| {
            let (from, until) = bounds(window);
            let mut stmt = conn.prepare_cached(
                "SELECT attempt_id, station, step, name, value, unit, low, high, outcome,
                        created_at
                 FROM test_measurements
                 WHERE order_id = ?1 AND created_at >= ?2 AND created_at < ?3
                   AND value IS NOT NULL
                 ORDER BY step, name, attempt_id",
            )?;
            let rows = stmt.query_map([order.as_str(), &from, &until], |r| sample(r, 0))?;
            let mut out = Vec::new();
            for row in rows {
                out.push(checked(row?)?);
            }
            Ok(out)
        })
        .await
    }

    async fn order_failures(
        &self,
        order: &OrderId,
        window: Window,
    ) -> touchmark_store::Result<Vec<FailureCount>> {
        let order = order.clone();
        self.read(move |conn| {
            let (from, until) = bounds(window);
            let mut stmt = conn.prepare_cached(
                "SELECT s.name, NULL, count(*) FROM test_steps s
                 JOIN test_attempts t ON t.id = s.attempt_id
                 WHERE t.order_id = ?1 AND t.created_at >= ?2 AND t.created_at < ?3
                   AND s.outcome IN ('fail', 'error')
                 GROUP BY s.name
                 UNION ALL
                 SELECT step, name, count(*) FROM test_measurements
                 WHERE order_id = ?1 AND created_at >= ?2 AND created_at < ?3
                   AND outcome = 'fail'
                 GROUP BY step, name
                 ORDER BY 1, 2",
            )?;
            let rows = stmt.query_map([order.as_str(), &from, &until], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, Option<String>>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (step, measurement, n) = row?;
                out.push(FailureCount {
                    step,
                    measurement,
                    failures: id(n)?,
                });
            }
            Ok(out)
        })
        .await
    }

    async fn measurements_after(
        &self,
        after: u64,
        limit: u32,
    ) -> touchmark_store::Result<Vec<OrderMeasurement>> {
        self.read(move |conn| {
            // Both reads are ranges of the primary key (attempt_id, step_idx, idx): the inner
            // one finds the page's last attempt, the outer one reads up to its end.
            let mut stmt = conn.prepare_cached(
                "SELECT order_id, attempt_id, station, step, name, value, unit, low, high,
                        outcome, created_at
                 FROM test_measurements
                 WHERE attempt_id > ?1 AND value IS NOT NULL
                   AND attempt_id <= (
                       SELECT max(attempt_id) FROM (
                           SELECT attempt_id FROM test_measurements
                           WHERE attempt_id > ?1 AND value IS NOT NULL
                           ORDER BY attempt_id, step_idx, idx LIMIT ?2))
                 ORDER BY attempt_id, step_idx, idx",
            )?;
            let after = i64::try_from(after).unwrap_or(i64::MAX);
            let rows = stmt.query_map([after, i64::from(limit)], |r| {
                Ok((r.get::<_, String>(0)?, sample(r, 1)?))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (order, raw) = row?;
                out.push(OrderMeasurement {
                    order,
                    sample: checked(raw)?,
                });
            }
            Ok(out)
        })
        .await
    }
}
