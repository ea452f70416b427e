//! The oversight rules (design.md §9): which logged events and which series raise an alert, as
//! pure functions. Each returns the alert to raise with its evidence, or nothing; the
//! projector (`touchmark-server`) feeds them what the log and the stored test records say, and
//! the store keeps one alert per key open at a time, so a rule that keeps firing raises one
//! alert.
//!
//! - [`from_event`]: clone refusals, attempts beyond the quota, work outside the order's window,
//!   stations without standing (each from one `unit.refused` or `station.refusal_flood`);
//! - [`station_rate`]: a station's rate in its last minute far above its own usual rate;
//! - [`fpy_low`]: first-pass yield over an order's last units below a threshold;
//! - [`drift`]: a measurement's Cpk over its last values below a threshold, or its last value
//!   beyond three sigma of the values before it (Nelson rule 1).

use std::collections::BTreeMap;

use time::OffsetDateTime;

use crate::alert::{Alert, AlertKind, AlertState};
use crate::code::{ErrorCode, Refusal};
use crate::event::{Actor, Event, EventBody};
use crate::id::{OrderId, StationId};

/// The rules' thresholds.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertConfig {
    /// A station's last minute is "far above" its usual rate at this many times its mean
    /// over the minutes before.
    pub rate_factor: f64,
    /// ... and at least this many units in that minute.
    pub rate_min_per_minute: u64,
    /// Minutes of history a station needs before its rate is judged.
    pub rate_history_minutes: usize,
    /// First-pass yield below this raises `fpy_low`.
    pub fpy_threshold: f64,
    /// Over this many of an order's last units (each unit's first attempt).
    pub fpy_window: usize,
    /// Cpk below this raises `measurement_drift`.
    pub drift_cpk: f64,
    /// Over this many of a measurement's last values.
    pub drift_window: usize,
}

impl Default for AlertConfig {
    fn default() -> Self {
        Self {
            rate_factor: 5.0,
            rate_min_per_minute: 30,
            rate_history_minutes: 10,
            fpy_threshold: 0.8,
            fpy_window: 50,
            drift_cpk: 1.0,
            drift_window: 30,
        }
    }
}

/// An alert a rule raises.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Raise {
    /// Its kind.
    pub kind: AlertKind,
    /// One alert per key is open at a time.
    pub key: String,
    /// The order it concerns.
    pub order: Option<OrderId>,
    /// The station it concerns.
    pub station: Option<StationId>,
    /// Its evidence.
    pub evidence: BTreeMap<String, String>,
}

impl Raise {
    /// The `alert.raised` event of this alert, as `id`, at `at`.
    pub fn event(&self, id: &str, at: OffsetDateTime) -> Event {
        Event::new(
            at,
            EventBody::AlertRaised {
                alert: id.to_owned(),
                kind: self.kind.as_str().to_owned(),
                order: self.order.clone(),
                station: self.station.clone(),
                evidence: self.evidence.clone(),
            },
        )
    }
}

fn evidence<const N: usize>(pairs: [(&str, String); N]) -> BTreeMap<String, String> {
    pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

/// Formats a ratio or index with four decimals, as evidence.
fn fixed(x: f64) -> String {
    format!("{x:.4}")
}

/// The alert one logged event raises, if any: a refusal of a clone, beyond the quota, outside
/// the order's window, or of a station without standing; a refusal flood. `index` is the
/// event's place in the log, kept as evidence.
pub fn from_event(index: u64, event: &Event) -> Option<Raise> {
    match &event.body {
        EventBody::UnitRefused {
            order,
            station,
            serial,
            reason,
            ..
        } => {
            let kind = match reason {
                ErrorCode::SerialConflict | ErrorCode::KeyReused | ErrorCode::TestRecordReused => {
                    AlertKind::CloneSuspect
                }
                ErrorCode::QuotaExhausted => AlertKind::BeyondQuota,
                ErrorCode::OrderExpired | ErrorCode::OrderNotOpen => AlertKind::OutsideWindow,
                ErrorCode::StationNotAuthorized
                | ErrorCode::StationRevoked
                | ErrorCode::OrderNotFound => AlertKind::StationStanding,
                _ => return None,
            };
            let key = match kind {
                AlertKind::StationStanding => format!("{kind}/{station}"),
                _ => format!("{kind}/{order}"),
            };
            let mut ev = evidence([
                ("event_index", index.to_string()),
                ("reason", reason.as_str().to_owned()),
                ("station", station.to_string()),
                ("order", order.to_string()),
            ]);
            if let Some(serial) = serial {
                ev.insert("serial".into(), serial.to_string());
            }
            Some(Raise {
                kind,
                key,
                order: (kind != AlertKind::StationStanding).then(|| order.clone()),
                station: Some(station.clone()),
                evidence: ev,
            })
        }
        EventBody::RefusalFlood {
            station,
            reason,
            count,
            ..
        } => Some(Raise {
            kind: AlertKind::StationStanding,
            key: format!("{}/{station}", AlertKind::StationStanding),
            order: None,
            station: Some(station.clone()),
            evidence: evidence([
                ("event_index", index.to_string()),
                ("reason", reason.as_str().to_owned()),
                ("station", station.to_string()),
                ("rate_limited_refusals", count.to_string()),
            ]),
        }),
        _ => None,
    }
}

/// A station's rate: `minutes` holds its units per minute, oldest first, the last being the
/// minute just ended. Raises `station_rate` when that minute is at least
/// [`AlertConfig::rate_min_per_minute`] and more than [`AlertConfig::rate_factor`] times the
/// mean of the minutes before (at least [`AlertConfig::rate_history_minutes`] of them, a mean
/// below 1 counting as 1).
pub fn station_rate(station: &StationId, minutes: &[u64], config: &AlertConfig) -> Option<Raise> {
    let (&last, before) = minutes.split_last()?;
    if before.len() < config.rate_history_minutes || last < config.rate_min_per_minute {
        return None;
    }
    let usual = before.iter().sum::<u64>() as f64 / before.len() as f64;
    if (last as f64) <= config.rate_factor * usual.max(1.0) {
        return None;
    }
    Some(Raise {
        kind: AlertKind::StationRate,
        key: format!("{}/{station}", AlertKind::StationRate),
        order: None,
        station: Some(station.clone()),
        evidence: evidence([
            ("station", station.to_string()),
            ("last_minute", last.to_string()),
            ("usual_per_minute", fixed(usual)),
            ("minutes_of_history", before.len().to_string()),
            ("factor", fixed(config.rate_factor)),
        ]),
    })
}

/// First-pass yield over an order's last units: `first_attempts` holds, oldest first, whether
/// each unit's first attempt passed. Raises `fpy_low` when the last
/// [`AlertConfig::fpy_window`] of them (no fewer) pass less often than
/// [`AlertConfig::fpy_threshold`].
pub fn fpy_low(order: &OrderId, first_attempts: &[bool], config: &AlertConfig) -> Option<Raise> {
    let window = config.fpy_window.max(1);
    if first_attempts.len() < window {
        return None;
    }
    let last = &first_attempts[first_attempts.len() - window..];
    let passed = last.iter().filter(|p| **p).count();
    let fpy = passed as f64 / window as f64;
    if fpy >= config.fpy_threshold {
        return None;
    }
    Some(Raise {
        kind: AlertKind::FpyLow,
        key: format!("{}/{order}", AlertKind::FpyLow),
        order: Some(order.clone()),
        station: None,
        evidence: evidence([
            ("order", order.to_string()),
            ("units", window.to_string()),
            ("first_pass", passed.to_string()),
            ("first_pass_yield", fixed(fpy)),
            ("threshold", fixed(config.fpy_threshold)),
        ]),
    })
}

/// The capability of a series against its limits: Cpk with the short-term sigma (the mean
/// moving range / 1.128, as on an individuals control chart) and Ppk with the overall sample
/// standard deviation. `None` under two values, without a limit, or without spread.
pub fn capability(values: &[f64], low: Option<f64>, high: Option<f64>) -> Option<(f64, f64)> {
    if values.len() < 2 || (low.is_none() && high.is_none()) {
        return None;
    }
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let overall = (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
    let mr = values.windows(2).map(|w| (w[1] - w[0]).abs()).sum::<f64>() / (n - 1.0);
    let within = mr / 1.128;
    let index = |sigma: f64| {
        let upper = high.map(|h| (h - mean) / (3.0 * sigma));
        let lower = low.map(|l| (mean - l) / (3.0 * sigma));
        match (upper, lower) {
            (Some(u), Some(l)) => u.min(l),
            (Some(one), None) | (None, Some(one)) => one,
            (None, None) => f64::INFINITY,
        }
    };
    if within <= 0.0 || overall <= 0.0 {
        return None;
    }
    Some((index(within), index(overall)))
}

/// Points in a row on one side of the center line that make Nelson rule 2.
pub const NELSON_2_RUN: usize = 9;

/// Standard errors between the means of a window's two halves that make a shift.
pub const SHIFT_Z: f64 = 6.0;

/// A measurement's drift on one line: `values` are its last values from `station` on `order`,
/// oldest first. Over the last [`AlertConfig::drift_window`] values (no fewer), raises
/// `measurement_drift` when
/// - Cpk, with the short-term sigma (mean moving range / 1.128), is below
///   [`AlertConfig::drift_cpk`]: the line is not capable; or
/// - the mean of the window's second half has moved from its first half's by more than
///   [`SHIFT_Z`] standard errors (short-term sigma): a drift, though every value may still be
///   within its limits.
///
/// The evidence carries Cpk and Ppk (overall sigma) apart, since a slow drift keeps Cpk high
/// while Ppk falls, and the control chart's Nelson rules 1 (the last value beyond three
/// short-term sigmas of the mean of the others) and 2 (the last nine values on one side of the
/// window's mean) as signs, not triggers: on random data over a window this short they fire
/// about once in a few hundred values.
pub fn drift(
    order: &OrderId,
    station: &StationId,
    measurement: &str,
    values: &[f64],
    low: Option<f64>,
    high: Option<f64>,
    config: &AlertConfig,
) -> Option<Raise> {
    let window = config.drift_window.max(4);
    if values.len() < window {
        return None;
    }
    let last_values = &values[values.len() - window..];
    let (cpk, ppk) = capability(last_values, low, high)?;
    let (&last, before) = last_values.split_last()?;
    let mean_of = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let sigma_of = |v: &[f64]| {
        v.windows(2).map(|w| (w[1] - w[0]).abs()).sum::<f64>() / (v.len() - 1) as f64 / 1.128
    };
    let sigma = sigma_of(before);
    let nelson_1 = sigma > 0.0 && (last - mean_of(before)).abs() > 3.0 * sigma;
    let center = mean_of(last_values);
    let run = &last_values[window.saturating_sub(NELSON_2_RUN)..];
    let nelson_2 = run.len() == NELSON_2_RUN
        && (run.iter().all(|v| *v > center) || run.iter().all(|v| *v < center));
    let (first_half, second_half) = last_values.split_at(window / 2);
    let within = sigma_of(last_values);
    let standard_error =
        within * (1.0 / first_half.len() as f64 + 1.0 / second_half.len() as f64).sqrt();
    let shift = mean_of(second_half) - mean_of(first_half);
    let shift_z = if standard_error > 0.0 {
        shift / standard_error
    } else {
        0.0
    };
    if cpk >= config.drift_cpk && shift_z.abs() <= SHIFT_Z {
        return None;
    }
    let mut ev = evidence([
        ("order", order.to_string()),
        ("station", station.to_string()),
        ("measurement", measurement.to_owned()),
        ("values", window.to_string()),
        ("mean", fixed(center)),
        ("cpk", fixed(cpk)),
        ("ppk", fixed(ppk)),
        ("cpk_threshold", fixed(config.drift_cpk)),
        ("mean_shift", fixed(shift)),
        ("mean_shift_z", fixed(shift_z)),
        ("nelson_rule_1", nelson_1.to_string()),
        ("nelson_rule_2", nelson_2.to_string()),
        ("last_value", last.to_string()),
    ]);
    if let Some(low) = low {
        ev.insert("low".into(), low.to_string());
    }
    if let Some(high) = high {
        ev.insert("high".into(), high.to_string());
    }
    Some(Raise {
        kind: AlertKind::MeasurementDrift,
        key: format!(
            "{}/{order}/{station}/{measurement}",
            AlertKind::MeasurementDrift
        ),
        order: Some(order.clone()),
        station: Some(station.clone()),
        evidence: ev,
    })
}

/// An alert's state change, with the event that records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertChange {
    /// The state afterwards.
    pub state: AlertState,
    /// The event: `alert.acknowledged` or `alert.resolved`.
    pub event: Event,
}

/// Acknowledges an open alert, by `actor` at `at`. `conflict` for an alert acknowledged or
/// resolved already.
///
/// # Errors
/// The refusal, as the store returns it.
pub fn acknowledge(
    alert: &Alert,
    actor: Actor,
    at: OffsetDateTime,
) -> Result<AlertChange, Refusal> {
    if alert.state != AlertState::Open {
        return Err(Refusal::new(
            ErrorCode::Conflict,
            format!("alert {} is {}, not open", alert.id, alert.state.as_str()),
        ));
    }
    Ok(AlertChange {
        state: AlertState::Acknowledged,
        event: Event::new(
            at,
            EventBody::AlertAcknowledged {
                alert: alert.id.clone(),
                actor,
            },
        ),
    })
}

/// Resolves an open or acknowledged alert, by `actor` at `at`. `conflict` for one resolved
/// already.
///
/// # Errors
/// The refusal, as the store returns it.
pub fn resolve(alert: &Alert, actor: Actor, at: OffsetDateTime) -> Result<AlertChange, Refusal> {
    if alert.state == AlertState::Resolved {
        return Err(Refusal::new(
            ErrorCode::Conflict,
            format!("alert {} is resolved already", alert.id),
        ));
    }
    Ok(AlertChange {
        state: AlertState::Resolved,
        event: Event::new(
            at,
            EventBody::AlertResolved {
                alert: alert.id.clone(),
                actor,
            },
        ),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::id::FactoryId;
    use crate::serial::Serial;

    fn refused(reason: ErrorCode) -> Event {
        Event::new(
            OffsetDateTime::UNIX_EPOCH,
            EventBody::UnitRefused {
                order: OrderId::parse("po-1").unwrap(),
                factory: Some(FactoryId::parse("f").unwrap()),
                station: StationId::parse("line-1").unwrap(),
                serial: Some(Serial::parse("SN-1").unwrap()),
                pubkey_sha256: None,
                test_sha256: None,
                reason,
            },
        )
    }

    #[test]
    fn refusals_raise_their_kind_and_others_none() {
        let table = [
            (ErrorCode::SerialConflict, Some(AlertKind::CloneSuspect)),
            (ErrorCode::KeyReused, Some(AlertKind::CloneSuspect)),
            (ErrorCode::TestRecordReused, Some(AlertKind::CloneSuspect)),
            (ErrorCode::QuotaExhausted, Some(AlertKind::BeyondQuota)),
            (ErrorCode::OrderExpired, Some(AlertKind::OutsideWindow)),
            (ErrorCode::OrderNotOpen, Some(AlertKind::OutsideWindow)),
            (ErrorCode::StationRevoked, Some(AlertKind::StationStanding)),
            (
                ErrorCode::StationNotAuthorized,
                Some(AlertKind::StationStanding),
            ),
            (ErrorCode::OrderNotFound, Some(AlertKind::StationStanding)),
            (ErrorCode::SerialOutOfRange, None),
            (ErrorCode::CsrInvalid, None),
            (ErrorCode::TestRecordMismatch, None),
        ];
        for (code, kind) in table {
            let raised = from_event(7, &refused(code));
            assert_eq!(raised.as_ref().map(|r| r.kind), kind, "{code:?}");
            if let Some(r) = raised {
                assert_eq!(r.evidence["event_index"], "7");
                assert_eq!(r.evidence["reason"], code.as_str());
                assert_eq!(r.evidence["serial"], "SN-1");
                let expected_key = if kind == Some(AlertKind::StationStanding) {
                    format!("{}/line-1", r.kind)
                } else {
                    format!("{}/po-1", r.kind)
                };
                assert_eq!(r.key, expected_key);
            }
        }
        let flood = Event::new(
            OffsetDateTime::UNIX_EPOCH,
            EventBody::RefusalFlood {
                station: StationId::parse("line-9").unwrap(),
                factory: FactoryId::parse("f").unwrap(),
                reason: ErrorCode::StationRevoked,
                count: 40,
                window_start: "2026-01-01T00:00:00.000Z".into(),
                window_end: "2026-01-01T00:01:00.000Z".into(),
            },
        );
        let r = from_event(3, &flood).unwrap();
        assert_eq!(r.kind, AlertKind::StationStanding);
        assert_eq!(r.evidence["rate_limited_refusals"], "40");
    }

    #[test]
    fn a_station_far_above_its_usual_rate_raises() {
        let c = AlertConfig::default();
        let s = StationId::parse("line-1").unwrap();
        let mut usual = vec![10u64; 10];
        usual.push(51);
        let r = station_rate(&s, &usual, &c).unwrap();
        assert_eq!(r.evidence["last_minute"], "51");
        assert_eq!(r.evidence["usual_per_minute"], "10.0000");
        // Not far enough above, too few units, or too little history: nothing.
        usual.pop();
        usual.push(50);
        assert_eq!(station_rate(&s, &usual, &c), None);
        let quiet = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 29];
        assert_eq!(station_rate(&s, &quiet, &c), None);
        assert_eq!(station_rate(&s, &[1, 1, 1, 100], &c), None);
        assert_eq!(station_rate(&s, &[], &c), None);
    }

    #[test]
    fn fpy_below_the_threshold_over_the_window_raises() {
        let c = AlertConfig {
            fpy_window: 10,
            ..AlertConfig::default()
        };
        let o = OrderId::parse("po-1").unwrap();
        let mut firsts = vec![true; 20];
        assert_eq!(fpy_low(&o, &firsts, &c), None);
        // 8 of the last 10: at the threshold, not below.
        firsts[12] = false;
        firsts[15] = false;
        assert_eq!(fpy_low(&o, &firsts, &c), None);
        firsts[18] = false;
        let r = fpy_low(&o, &firsts, &c).unwrap();
        assert_eq!(r.evidence["first_pass_yield"], "0.7000");
        assert_eq!(r.evidence["first_pass"], "7");
        // Too few units to judge.
        assert_eq!(fpy_low(&o, &[false; 9], &c), None);
    }

    #[test]
    fn capability_tells_short_term_from_overall() {
        // A steady ramp: small moving ranges, large overall spread, so Cpk > Ppk.
        let ramp: Vec<f64> = (0..30).map(|i| 10.0 + f64::from(i) * 0.1).collect();
        let (cpk, ppk) = capability(&ramp, Some(8.0), Some(16.0)).unwrap();
        assert!(cpk > ppk, "{cpk} {ppk}");
        // mean 11.45; within sigma 0.1 / 1.128; Cpk = (11.45 - 8) / (3 * 0.0887) = 12.97...
        assert!((cpk - (11.45 - 8.0) / (3.0 * 0.1 / 1.128)).abs() < 1e-9);
        assert_eq!(capability(&[1.0], Some(0.0), Some(2.0)), None);
        assert_eq!(capability(&[1.0, 2.0], None, None), None);
        assert_eq!(capability(&[1.0, 1.0, 1.0], Some(0.0), Some(2.0)), None);
    }

    #[test]
    fn a_drifting_measurement_raises_and_a_steady_one_does_not() {
        let c = AlertConfig::default();
        let o = OrderId::parse("po-1").unwrap();
        let line = StationId::parse("line-3").unwrap();
        let drift = |values: &[f64], low, high, c: &AlertConfig| {
            super::drift(&o, &line, "rf/tx", values, low, high, c)
        };
        // Alternating around 12 within 10..14: capable, no point beyond 3 sigma.
        let steady: Vec<f64> = (0..40)
            .map(|i| 12.0 + if i % 2 == 0 { 0.2 } else { -0.2 })
            .collect();
        assert_eq!(drift(&steady, Some(10.0), Some(14.0), &c), None);
        // Drifting towards the high limit: the mean moves, Cpk falls below 1.
        let drifting: Vec<f64> = (0..40)
            .map(|i| 12.0 + f64::from(i) * 0.05 + if i % 2 == 0 { 0.2 } else { -0.2 })
            .collect();
        let r = drift(&drifting, Some(10.0), Some(14.0), &c).unwrap();
        assert_eq!(r.kind, AlertKind::MeasurementDrift);
        assert_eq!(r.key, "measurement_drift/po-1/line-3/rf/tx");
        assert_eq!(r.station, Some(line.clone()));
        let cpk: f64 = r.evidence["cpk"].parse().unwrap();
        assert!(cpk < 1.0, "{cpk}");
        assert!(r.evidence.contains_key("ppk"));
        // One point far out on a steady series is no drift: it shows as Nelson rule 1 in the
        // evidence of an alert raised for another reason.
        let mut spike = steady.clone();
        spike.push(13.9);
        assert_eq!(drift(&spike, Some(0.0), Some(100.0), &c), None);
        let r = drift(&spike, Some(11.0), Some(14.0), &c).unwrap();
        assert_eq!(r.evidence["nelson_rule_1"], "true");
        // Too few values.
        assert_eq!(drift(&drifting[..29], Some(10.0), Some(14.0), &c), None);
        // A slow, smooth drift well inside wide limits: Cpk (short-term) stays high, Ppk
        // falls, the mean shifts, and the last nine values all lie above the mean.
        let ramp: Vec<f64> = (0..40)
            .map(|i| 12.0 + f64::from(i) * 0.05 + if i % 2 == 0 { 0.01 } else { -0.01 })
            .collect();
        let r = drift(&ramp, Some(0.0), Some(100.0), &c).unwrap();
        assert_eq!(r.evidence["nelson_rule_2"], "true");
        let z: f64 = r.evidence["mean_shift_z"].parse().unwrap();
        assert!(z > SHIFT_Z, "{z}");
        let (cpk, ppk): (f64, f64) = (
            r.evidence["cpk"].parse().unwrap(),
            r.evidence["ppk"].parse().unwrap(),
        );
        assert!(cpk > 1.0 && ppk < cpk, "{cpk} {ppk}");
        // Values spread at random within capable limits: nothing, over many windows.
        let mut state = 7u64;
        let mut noise = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 11) as f64 / (1u64 << 53) as f64
        };
        let random: Vec<f64> = (0..2000).map(|_| 15.0 + noise() * 2.0 - 1.0).collect();
        for end in 30..=random.len() {
            assert_eq!(
                drift(&random[..end], Some(10.0), Some(20.0), &c),
                None,
                "at {end}"
            );
        }
    }

    #[test]
    fn an_alert_is_acknowledged_once_and_resolved_once() {
        let mut alert = Alert {
            id: "al-1".into(),
            kind: AlertKind::FpyLow,
            key: "fpy_low/po-1".into(),
            order: None,
            station: None,
            state: AlertState::Open,
            evidence: BTreeMap::new(),
            raised_at: OffsetDateTime::UNIX_EPOCH,
            updated_at: OffsetDateTime::UNIX_EPOCH,
        };
        let at = OffsetDateTime::UNIX_EPOCH;
        let change = acknowledge(&alert, Actor::System, at).unwrap();
        assert_eq!(change.state, AlertState::Acknowledged);
        assert_eq!(change.event.body.kind(), "alert.acknowledged");
        alert.state = AlertState::Acknowledged;
        assert_eq!(
            acknowledge(&alert, Actor::System, at).unwrap_err().code,
            ErrorCode::Conflict
        );
        let change = resolve(&alert, Actor::System, at).unwrap();
        assert_eq!(change.state, AlertState::Resolved);
        alert.state = AlertState::Resolved;
        assert_eq!(
            resolve(&alert, Actor::System, at).unwrap_err().code,
            ErrorCode::Conflict
        );
        assert_eq!(
            acknowledge(&alert, Actor::System, at).unwrap_err().code,
            ErrorCode::Conflict
        );
    }
}
