//! Alerts (design.md §9): what an oversight rule saw, with its evidence, and its state.

use std::collections::BTreeMap;
use std::fmt;

use time::OffsetDateTime;

use crate::id::{OrderId, StationId};

/// What an alert is about. A closed set: each is a rule of `policy::alerts`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AlertKind {
    /// A clone refusal: a serial issued with another key, a key issued to another serial, or a
    /// test record already used (`serial_conflict`, `key_reused`, `test_record_reused`).
    CloneSuspect,
    /// An attempt beyond the order's quota (`quota_exhausted`).
    BeyondQuota,
    /// Work outside the order's window, or on an order that is not open (`order_expired`,
    /// `order_not_open`).
    OutsideWindow,
    /// An attempt by a station without standing: unknown to the order's factory, foreign, or
    /// revoked (`station_not_authorized`, `station_revoked`, `order_not_found`, and their flood
    /// alerts).
    StationStanding,
    /// A station's rate far above its own usual rate.
    StationRate,
    /// First-pass yield below its threshold over the order's last units.
    FpyLow,
    /// A measurement drifting: its Cpk over its last values below its threshold, or a point
    /// of its control chart beyond three sigma (Nelson rule 1).
    MeasurementDrift,
    /// A CRA notification of a vulnerability report (early warning, notification, final
    /// report) approaching its due time or overdue (`policy::vuln`): once per deadline.
    CraDeadline,
}

impl AlertKind {
    /// Every kind.
    pub const ALL: [AlertKind; 8] = [
        Self::CloneSuspect,
        Self::BeyondQuota,
        Self::OutsideWindow,
        Self::StationStanding,
        Self::StationRate,
        Self::FpyLow,
        Self::MeasurementDrift,
        Self::CraDeadline,
    ];

    /// The name as logged and sent.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CloneSuspect => "clone_suspect",
            Self::BeyondQuota => "beyond_quota",
            Self::OutsideWindow => "outside_window",
            Self::StationStanding => "station_standing",
            Self::StationRate => "station_rate",
            Self::FpyLow => "fpy_low",
            Self::MeasurementDrift => "measurement_drift",
            Self::CraDeadline => "cra_deadline",
        }
    }

    /// Parses a name.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == text)
    }
}

impl fmt::Display for AlertKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An alert's state: open → acknowledged → resolved, or open → resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AlertState {
    /// Raised, nobody has looked at it.
    Open,
    /// Someone is looking at it.
    Acknowledged,
    /// Closed.
    Resolved,
}

impl AlertState {
    /// The name as stored and sent.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Acknowledged => "acknowledged",
            Self::Resolved => "resolved",
        }
    }

    /// Parses a name.
    pub fn parse(text: &str) -> Option<Self> {
        [Self::Open, Self::Acknowledged, Self::Resolved]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

/// An alert as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alert {
    /// Its id.
    pub id: String,
    /// Its kind.
    pub kind: AlertKind,
    /// What makes two alerts the same: one alert per key is open at a time, so a rule that
    /// keeps firing raises one alert, not one per event.
    pub key: String,
    /// The order it concerns, if one.
    pub order: Option<OrderId>,
    /// The station it concerns, if one.
    pub station: Option<StationId>,
    /// Its state.
    pub state: AlertState,
    /// Its evidence.
    pub evidence: BTreeMap<String, String>,
    /// When it was raised.
    pub raised_at: OffsetDateTime,
    /// When its state last changed.
    pub updated_at: OffsetDateTime,
}
