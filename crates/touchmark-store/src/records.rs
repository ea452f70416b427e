//! The rows [`crate::TestDataStore`] gives for analytics: an order's test attempts and numeric
//! measurements over a window, as stored, and the numeric measurements of every order in the
//! order stored, for a reader that tails them.

use time::OffsetDateTime;

/// A window of time, either end open.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Window {
    /// From this instant, inclusive.
    pub from: Option<OffsetDateTime>,
    /// Until this instant, exclusive.
    pub until: Option<OffsetDateTime>,
}

/// One stored test attempt, as an analytics row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptRow {
    /// The store's id: attempts are numbered in the order stored.
    pub id: u64,
    /// The product.
    pub product: String,
    /// The serial, when the request named a well-formed one.
    pub serial: Option<String>,
    /// The station that sent it.
    pub station: String,
    /// `pass`, `fail` or `error`.
    pub verdict: String,
    /// When it was received.
    pub at: OffsetDateTime,
}

/// One numeric measurement of a stored test attempt, as an analytics row.
#[derive(Debug, Clone, PartialEq)]
pub struct MeasurementSample {
    /// The attempt it belongs to ([`AttemptRow::id`]).
    pub attempt: u64,
    /// The station that measured it.
    pub station: String,
    /// Its step's name.
    pub step: String,
    /// Its name.
    pub name: String,
    /// The value.
    pub value: f64,
    /// Its unit.
    pub unit: Option<String>,
    /// Inclusive low limit.
    pub low: Option<f64>,
    /// Inclusive high limit.
    pub high: Option<f64>,
    /// Whether the station judged it a pass.
    pub passed: bool,
    /// When its attempt was received.
    pub at: OffsetDateTime,
}

/// One numeric measurement with the order of its attempt: a row of
/// [`crate::TestDataStore::measurements_after`].
#[derive(Debug, Clone, PartialEq)]
pub struct OrderMeasurement {
    /// The order of its attempt.
    pub order: String,
    /// The measurement.
    pub sample: MeasurementSample,
}

/// How often a step, or a measurement of a step, failed in an order's test attempts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailureCount {
    /// The step's name.
    pub step: String,
    /// The measurement's name; `None` for the step itself (its outcome `fail` or `error`).
    pub measurement: Option<String>,
    /// Attempts in which it failed.
    pub failures: u64,
}

/// A webhook endpoint for alerts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    /// Its id.
    pub id: String,
    /// Where deliveries go.
    pub url: String,
    /// The Standard Webhooks secret, `whsec_<base64>`.
    pub secret: String,
    /// The alert kinds it receives; empty for all.
    pub kinds: Vec<String>,
    /// When it was added.
    pub created_at: OffsetDateTime,
}

/// One message of the webhook outbox: an alert to deliver to one webhook, at least once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Its id, stable across retries (`webhook-id`), for the receiver to deduplicate.
    pub id: String,
    /// The webhook.
    pub webhook: String,
    /// The body to send, JSON.
    pub payload: String,
    /// Attempts made so far.
    pub attempts: u32,
    /// When it may next be attempted.
    pub next_attempt_at: OffsetDateTime,
    /// When it was delivered, once it was.
    pub delivered_at: Option<OffsetDateTime>,
    /// Why the last attempt failed, if it did.
    pub last_error: Option<String>,
}

/// What became of one delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryResult {
    /// The receiver answered 2xx at this time.
    Delivered(OffsetDateTime),
    /// It failed; try again at `retry_at`.
    Failed {
        /// Why.
        error: String,
        /// The next attempt.
        retry_at: OffsetDateTime,
    },
}
