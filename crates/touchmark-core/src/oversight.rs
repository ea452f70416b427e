//! The JSON shapes of oversight (design.md §9): a unit's history, built from its stored test
//! attempts with their steps and measurements, and its certificate.
//!
//! Timestamps are RFC 3339 strings in UTC, hashes lowercase hex, as in [`crate::api`].

use serde::{Deserialize, Serialize};

#[cfg(feature = "openapi")]
use utoipa::ToSchema;

/// One measurement of a stored test attempt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct MeasurementEntry {
    /// Its name within its step.
    pub name: String,
    /// A numeric value.
    pub value: Option<f64>,
    /// Any other value: a string, or `true`/`false`.
    pub text: Option<String>,
    /// Its unit, e.g. `dBm`.
    pub unit: Option<String>,
    /// Inclusive low limit.
    pub low: Option<f64>,
    /// Inclusive high limit.
    pub high: Option<f64>,
    /// `pass` or `fail`.
    pub outcome: String,
}

/// One step of a stored test attempt (an OpenHTF phase).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct StepEntry {
    /// Its name.
    pub name: String,
    /// `pass`, `fail`, `skip` or `error`.
    pub outcome: String,
    /// Its measurements, in the record's order.
    pub measurements: Vec<MeasurementEntry>,
}

/// One test attempt of a unit, as stored: every attempt is kept, passed, failed or refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct AttemptEntry {
    /// The store's id of the attempt; attempts of one unit are numbered in the order stored.
    pub id: u64,
    /// When the attempt was received.
    pub at: String,
    /// The product.
    pub product: String,
    /// The order it was sent under.
    pub order: String,
    /// The station that sent it.
    pub station: String,
    /// `pass`, `fail` or `error`.
    pub verdict: String,
    /// The shape it was sent in: `touchmark` or `openhtf`.
    pub format: String,
    /// SHA-256 of the normalized record.
    pub sha256: String,
    /// The log entry that recorded it, once sequenced.
    pub event_index: Option<u64>,
    /// Its steps.
    pub steps: Vec<StepEntry>,
}

/// One event of a unit's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct HistoryEntry {
    /// When it happened.
    pub at: String,
    /// What happened: `test.attempt` or `certificate.issued`. Firmware deliveries,
    /// revocations and field sightings take kinds of their own as they are recorded.
    pub kind: String,
    /// The product.
    pub product: String,
    /// The order.
    pub order: String,
    /// The station.
    pub station: Option<String>,
    /// For `test.attempt`: the attempt.
    pub attempt: Option<AttemptEntry>,
    /// For `certificate.issued`: SHA-256 of the certificate.
    pub cert_sha256: Option<String>,
    /// For `certificate.issued`: the log entry.
    pub event_index: Option<u64>,
}

/// A unit's history: everything stored about one serial, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct UnitHistory {
    /// The serial.
    pub serial: String,
    /// Its current status per product: `failed_test`, `provisioned` or `revoked`.
    pub status: Vec<String>,
    /// Test attempts kept, all products.
    pub test_attempts: u64,
    /// Retests: attempts after the first, all products.
    pub retests: u64,
    /// The events, oldest first (ties: attempts before the certificate they led to).
    pub entries: Vec<HistoryEntry>,
}

/// Test attempts and passes in one hour.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct HourlyCount {
    /// The start of the hour.
    pub hour: String,
    /// Test attempts received in it.
    pub attempts: u64,
    /// Of those, attempts that passed.
    pub passed: u64,
}

/// One bar of a failure Pareto.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ParetoEntry {
    /// The step, or `step/measurement`.
    pub name: String,
    /// Attempts in which it failed.
    pub failures: u64,
    /// Its share of all the failures in this Pareto, from 0 to 1.
    pub share: f64,
}

/// A histogram: `counts[i]` values lie in `[edges[i], edges[i + 1])`, the last bin closed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Histogram {
    /// The bins' edges, one more than the counts.
    pub edges: Vec<f64>,
    /// Values per bin.
    pub counts: Vec<u64>,
}

/// The statistics of one numeric measurement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct MeasurementStats {
    /// Its step.
    pub step: String,
    /// Its name.
    pub name: String,
    /// Its unit.
    pub unit: Option<String>,
    /// Values.
    pub count: u64,
    /// Their mean.
    pub mean: f64,
    /// Their sample standard deviation (n − 1); `null` under two values.
    pub stddev: Option<f64>,
    /// The smallest value.
    pub min: f64,
    /// The largest value.
    pub max: f64,
    /// The low limit (the most recent one recorded).
    pub low: Option<f64>,
    /// The high limit (the most recent one recorded).
    pub high: Option<f64>,
    /// The within-subgroup (short-term) sigma: the mean moving range of consecutive values,
    /// in the order stored, over d2 = 1.128; `null` under two values.
    pub sigma_within: Option<f64>,
    /// Process capability Cp `(high − low) / 6σ` with the within sigma; `null` without both
    /// limits or without spread.
    pub cp: Option<f64>,
    /// Process capability Cpk `min(high − mean, mean − low) / 3σ` with the within sigma, over
    /// the limits it has; `null` without either or without spread.
    pub cpk: Option<f64>,
    /// Process performance Pp: Cp with the overall sample standard deviation.
    pub pp: Option<f64>,
    /// Process performance Ppk: Cpk with the overall sample standard deviation.
    pub ppk: Option<f64>,
    /// Ten equal bins from `min` to `max`.
    pub histogram: Histogram,
    /// The last values, oldest first (at most 100): the individuals control chart.
    pub recent: Vec<f64>,
}

/// An order's report over a window of time (design.md §9).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct OrderReport {
    /// The order.
    pub order: String,
    /// Its product.
    pub product: String,
    /// Its factory.
    pub factory: String,
    /// The window's start, inclusive; `null` for the beginning.
    pub from: Option<String>,
    /// The window's end, exclusive; `null` for now.
    pub until: Option<String>,
    /// The quota.
    pub quota: u64,
    /// Units issued (all time).
    pub quota_used: u64,
    /// Units the quota still allows.
    pub quota_left: u64,
    /// Test attempts in the window.
    pub attempts: u64,
    /// Units with at least one attempt in the window.
    pub units: u64,
    /// Units whose first attempt in the window passed, over `units`; `null` without units.
    pub first_pass_yield: Option<f64>,
    /// Units with a passing attempt in the window, over `units`; `null` without units.
    pub final_yield: Option<f64>,
    /// Units tested more than once in the window, over `units`; `null` without units.
    pub retest_rate: Option<f64>,
    /// Attempts and passes per hour, oldest first, hours without attempts left out.
    pub units_per_hour: Vec<HourlyCount>,
    /// Failed steps, most failures first.
    pub failures_by_step: Vec<ParetoEntry>,
    /// Failed measurements (`step/measurement`), most failures first.
    pub failures_by_measurement: Vec<ParetoEntry>,
    /// Every numeric measurement's statistics, by step and name.
    pub measurements: Vec<MeasurementStats>,
    /// Failed tests logged for the order (`unit.test_failed`, all time).
    pub failed_tests: u64,
    /// Refusals logged for the order, by code (all time).
    pub refusals: std::collections::BTreeMap<String, u64>,
}

/// An alert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct AlertBody {
    /// Its id.
    pub id: String,
    /// `clone_suspect`, `beyond_quota`, `outside_window`, `station_standing`, `station_rate`,
    /// `fpy_low` or `measurement_drift`.
    pub kind: String,
    /// `open`, `acknowledged` or `resolved`.
    pub state: String,
    /// The order it concerns, if one.
    pub order: Option<String>,
    /// The station it concerns, if one.
    pub station: Option<String>,
    /// Its evidence: named values as text.
    pub evidence: std::collections::BTreeMap<String, String>,
    /// When it was raised.
    pub raised_at: String,
    /// When its state last changed.
    pub updated_at: String,
}

/// Registers a webhook for alerts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateWebhook {
    /// Where deliveries go: an `http://` or `https://` URL.
    pub url: String,
    /// The Standard Webhooks secret, `whsec_<base64>` of 24 to 64 bytes.
    pub secret: String,
    /// The alert kinds it receives; none or empty for all.
    #[serde(default)]
    pub kinds: Vec<String>,
}

/// A webhook (its secret is never shown again).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct WebhookBody {
    /// Its id.
    pub id: String,
    /// Where deliveries go.
    pub url: String,
    /// The alert kinds it receives; empty for all.
    pub kinds: Vec<String>,
    /// When it was added.
    pub created_at: String,
}
