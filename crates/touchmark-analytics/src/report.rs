//! An order's report over a window: quota, yields, retests, throughput, failure Paretos and
//! each measurement's statistics.

use std::collections::BTreeMap;

use time::OffsetDateTime;
use touchmark_core::OrderId;
use touchmark_core::clock::format_timestamp;
use touchmark_core::oversight::{HourlyCount, MeasurementStats, OrderReport, ParetoEntry};
use touchmark_store::{AttemptRow, FailureCount, MeasurementSample, Store, StoreError, Window};

use crate::stats::{self, BINS};

/// Values kept for a measurement's control chart.
const RECENT: usize = 100;

/// The report of order `id` over `window`; `None` when the order does not exist.
///
/// Yields count units (a product and serial), not attempts: of the units with an attempt in
/// the window, the first-pass yield is the share whose first attempt there passed, the final
/// yield the share with a passing attempt there, the retest rate the share tested more than
/// once there. Attempts that name no well-formed serial count as attempts only.
///
/// # Errors
/// The store's.
pub async fn order_report(
    store: &dyn Store,
    id: &OrderId,
    window: Window,
) -> Result<Option<OrderReport>, StoreError> {
    let Some(order) = store.order(id).await? else {
        return Ok(None);
    };
    let attempts = store.order_attempts(id, window).await?;
    let samples = store.order_measurements(id, window).await?;
    let failures = store.order_failures(id, window).await?;
    let counts = store.order_counts(id).await?;
    let (units, first_pass, final_pass, retested) = yields(&attempts);
    let ratio = |n: u64| (units > 0).then(|| n as f64 / units as f64);
    let (by_step, by_measurement) = paretos(&failures);
    Ok(Some(OrderReport {
        order: order.id.to_string(),
        product: order.product.to_string(),
        factory: order.factory.to_string(),
        from: window.from.map(format_timestamp),
        until: window.until.map(format_timestamp),
        quota: order.quota,
        quota_used: order.issued,
        quota_left: order.remaining(),
        attempts: attempts.len() as u64,
        units,
        first_pass_yield: ratio(first_pass),
        final_yield: ratio(final_pass),
        retest_rate: ratio(retested),
        units_per_hour: hourly(&attempts),
        failures_by_step: by_step,
        failures_by_measurement: by_measurement,
        measurements: measurements(&samples),
        failed_tests: counts.failed_tests,
        refusals: counts.refusals,
    }))
}

/// Units, units passed at their first attempt, units passed at all, units retested.
fn yields(attempts: &[AttemptRow]) -> (u64, u64, u64, u64) {
    // (first attempt passed, any passed, attempts), per unit; attempts come in stored order.
    let mut per_unit: BTreeMap<(&str, &str), (bool, bool, u64)> = BTreeMap::new();
    for a in attempts {
        let Some(serial) = a.serial.as_deref() else {
            continue;
        };
        let passed = a.verdict == "pass";
        let unit = per_unit
            .entry((a.product.as_str(), serial))
            .or_insert((passed, false, 0));
        unit.1 |= passed;
        unit.2 += 1;
    }
    let count =
        |f: fn(&(bool, bool, u64)) -> bool| per_unit.values().filter(|u| f(u)).count() as u64;
    (
        per_unit.len() as u64,
        count(|u| u.0),
        count(|u| u.1),
        count(|u| u.2 > 1),
    )
}

fn hour_of(at: OffsetDateTime) -> OffsetDateTime {
    at.replace_minute(0)
        .and_then(|t| t.replace_second(0))
        .and_then(|t| t.replace_nanosecond(0))
        .unwrap_or(at)
}

fn hourly(attempts: &[AttemptRow]) -> Vec<HourlyCount> {
    let mut hours: BTreeMap<OffsetDateTime, (u64, u64)> = BTreeMap::new();
    for a in attempts {
        let h = hours.entry(hour_of(a.at)).or_default();
        h.0 += 1;
        h.1 += u64::from(a.verdict == "pass");
    }
    hours
        .into_iter()
        .map(|(hour, (attempts, passed))| HourlyCount {
            hour: format_timestamp(hour),
            attempts,
            passed,
        })
        .collect()
}

fn pareto(mut bars: Vec<(String, u64)>) -> Vec<ParetoEntry> {
    bars.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let total: u64 = bars.iter().map(|b| b.1).sum();
    bars.into_iter()
        .map(|(name, failures)| ParetoEntry {
            share: if total == 0 {
                0.0
            } else {
                failures as f64 / total as f64
            },
            name,
            failures,
        })
        .collect()
}

fn paretos(failures: &[FailureCount]) -> (Vec<ParetoEntry>, Vec<ParetoEntry>) {
    let (steps, measurements): (Vec<_>, Vec<_>) =
        failures.iter().partition(|f| f.measurement.is_none());
    (
        pareto(steps.iter().map(|f| (f.step.clone(), f.failures)).collect()),
        pareto(
            measurements
                .iter()
                .map(|f| {
                    let m = f.measurement.as_deref().unwrap_or_default();
                    (format!("{}/{m}", f.step), f.failures)
                })
                .collect(),
        ),
    )
}

/// One [`MeasurementStats`] per step and name; the samples come sorted by both.
fn measurements(samples: &[MeasurementSample]) -> Vec<MeasurementStats> {
    samples
        .chunk_by(|a, b| a.step == b.step && a.name == b.name)
        .filter_map(|group| {
            let values: Vec<f64> = group.iter().map(|m| m.value).collect();
            let summary = stats::describe(&values)?;
            // The limits and unit of the most recent attempt.
            let last = group.iter().max_by_key(|m| m.attempt)?;
            // Values come in the order stored (by attempt), as the moving range needs.
            let indices = stats::capability(&values, &summary, last.low, last.high);
            Some(MeasurementStats {
                step: last.step.clone(),
                name: last.name.clone(),
                unit: last.unit.clone(),
                count: summary.count,
                mean: summary.mean,
                stddev: summary.stddev,
                min: summary.min,
                max: summary.max,
                low: last.low,
                high: last.high,
                sigma_within: indices.sigma_within,
                cp: indices.cp,
                cpk: indices.cpk,
                pp: indices.pp,
                ppk: indices.ppk,
                histogram: stats::histogram(&values, BINS, summary.min, summary.max),
                recent: values[values.len().saturating_sub(RECENT)..].to_vec(),
            })
        })
        .collect()
}
