//! Test records as data (design.md §9): every stored attempt, failed, refused or issued, reads
//! back with its steps and measurements, linked to its unit, and an order's attempts and
//! numeric measurements read back over a window; every order's numeric measurements read back
//! in the order stored, in pages.

use std::sync::Arc;

use serde_json::json;
use time::OffsetDateTime;
use touchmark_core::oversight::{MeasurementEntry, StepEntry};
use touchmark_core::testrecord::TestRecord;

use crate::{FailureCount, OrderMeasurement, Store, TestAttempt, Window};

use super::kit::{Kit, at, clock, index_of, issued, receipt_of, serial};

/// A Touchmark record of `serial` with one RF step measuring `tx` against [10, 14] dBm and a
/// firmware version as text, and a boot step without measurements; it passes when `tx` is
/// within its limits.
pub fn measured(serial_text: &str, tx: f64, when: OffsetDateTime) -> TestAttempt {
    let pass = (10.0..=14.0).contains(&tx);
    let outcome = if pass { "pass" } else { "fail" };
    let record = TestRecord::parse(&json!({
        "serial": serial_text,
        "verdict": outcome,
        "started_at": "2026-01-01T00:00:00Z",
        "ended_at": "2026-01-01T00:00:01Z",
        "steps": [
            {"name": "rf", "outcome": outcome, "measurements": [
                {"name": "tx", "value": tx, "unit": "dBm", "low": 10, "high": 14,
                 "outcome": outcome},
                {"name": "fw", "value": "1.2", "outcome": "pass"},
            ]},
            {"name": "boot", "outcome": "pass", "measurements": []},
        ],
    }))
    .unwrap();
    let normalized = record.normalized();
    TestAttempt {
        verdict: record.verdict,
        format: record.format,
        sha256: normalized.sha256,
        record: normalized.text,
        at: when,
    }
}

/// A passing Touchmark record of `serial` whose steps list their measurements out of name
/// order: an RF step measuring `tx`, a firmware version as text and `rx`, then a power step
/// measuring `volts`.
fn measured_thrice(serial_text: &str, tx: f64, rx: f64, volts: f64) -> TestAttempt {
    let record = TestRecord::parse(&json!({
        "serial": serial_text,
        "verdict": "pass",
        "started_at": "2026-01-01T00:00:00Z",
        "ended_at": "2026-01-01T00:00:01Z",
        "steps": [
            {"name": "rf", "outcome": "pass", "measurements": [
                {"name": "tx", "value": tx, "unit": "dBm", "low": 10, "high": 14,
                 "outcome": "pass"},
                {"name": "fw", "value": "1.2", "outcome": "pass"},
                {"name": "rx", "value": rx, "outcome": "pass"},
            ]},
            {"name": "power", "outcome": "pass", "measurements": [
                {"name": "volts", "value": volts, "high": 3.6, "outcome": "pass"},
            ]},
        ],
    }))
    .unwrap();
    let normalized = record.normalized();
    TestAttempt {
        verdict: record.verdict,
        format: record.format,
        sha256: normalized.sha256,
        record: normalized.text,
        at: at(80),
    }
}

fn steps(tx: f64, outcome: &str) -> Vec<StepEntry> {
    vec![
        StepEntry {
            name: "rf".into(),
            outcome: outcome.into(),
            measurements: vec![
                MeasurementEntry {
                    name: "tx".into(),
                    value: Some(tx),
                    text: None,
                    unit: Some("dBm".into()),
                    low: Some(10.0),
                    high: Some(14.0),
                    outcome: outcome.into(),
                },
                MeasurementEntry {
                    name: "fw".into(),
                    value: None,
                    text: Some("1.2".into()),
                    unit: None,
                    low: None,
                    high: None,
                    outcome: "pass".into(),
                },
            ],
        },
        StepEntry {
            name: "boot".into(),
            outcome: "pass".into(),
            measurements: vec![],
        },
    ]
}

/// A failed attempt and the retest that issued the unit both read back, in order, with their
/// steps and measurements; the unit's certificate reads back with its log index; an order's
/// attempts and numeric measurements read back, and a window bounds them.
pub async fn attempts_are_stored_as_data(store: Arc<dyn Store>) {
    let kit = Kit::new(&store, "td", 5, 1).await;
    let mut failed = kit.failed_test(0, "SN-1");
    let first = measured("SN-1", 9.0, at(50));
    failed.test = Some(first.clone());
    store.record_rejection(failed).await.unwrap();
    let retest = measured("SN-1", 12.5, at(60));
    let outcome = store
        .issue(kit.request_with(&kit.order, 0, "SN-1", "k1", retest.clone(), clock()))
        .await
        .unwrap();
    let index = index_of(&store, &receipt_of(&outcome)).await;
    let unit = issued(outcome);
    issued(
        store
            .issue(kit.request_with(
                &kit.order,
                0,
                "SN-2",
                "k2",
                measured("SN-2", 11.0, at(70)),
                clock(),
            ))
            .await
            .unwrap(),
    );
    // A record without steps stores an attempt without rows.
    issued(store.issue(kit.request(0, "SN-3", "k3")).await.unwrap());

    let attempts = store.unit_attempts(&serial("SN-1")).await.unwrap();
    assert_eq!(attempts.len(), 2);
    assert!(attempts[0].id < attempts[1].id);
    let station = kit.stations[0].as_str();
    for (a, (test, verdict, tx)) in attempts
        .iter()
        .zip([(&first, "fail", 9.0), (&retest, "pass", 12.5)])
    {
        assert_eq!(
            (a.product.as_str(), a.order.as_str(), a.station.as_str()),
            (kit.product.as_str(), kit.order.as_str(), station)
        );
        assert_eq!(
            (a.verdict.as_str(), a.format.as_str()),
            (verdict, "touchmark")
        );
        assert_eq!(a.sha256, test.sha256.to_hex());
        assert_eq!(a.steps, steps(tx, verdict));
    }
    assert_eq!(attempts[1].event_index, Some(index));
    assert_eq!(
        (attempts[0].at.as_str(), attempts[1].at.as_str()),
        ("2026-03-01T08:00:50.000Z", "2026-03-01T08:01:00.000Z")
    );

    let certificates = store.unit_certificates(&serial("SN-1")).await.unwrap();
    assert_eq!(certificates.len(), 1);
    assert_eq!(certificates[0].kind, "certificate.issued");
    assert_eq!(certificates[0].cert_sha256, Some(unit.cert_sha256.to_hex()));
    assert_eq!(certificates[0].event_index, Some(index));
    assert_eq!(certificates[0].station.as_deref(), Some(station));

    let bare = store.unit_attempts(&serial("SN-3")).await.unwrap();
    assert_eq!(bare.len(), 1);
    assert!(bare[0].steps.is_empty());
    assert!(
        store
            .unit_attempts(&serial("SN-404"))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .unit_certificates(&serial("SN-404"))
            .await
            .unwrap()
            .is_empty()
    );

    let all = store
        .order_attempts(&kit.order, Window::default())
        .await
        .unwrap();
    let seen: Vec<_> = all
        .iter()
        .map(|a| (a.serial.as_deref(), a.verdict.as_str()))
        .collect();
    assert_eq!(
        seen,
        [
            (Some("SN-1"), "fail"),
            (Some("SN-1"), "pass"),
            (Some("SN-2"), "pass"),
            (Some("SN-3"), "pass"),
        ]
    );
    assert_eq!(all[0].at, at(50));
    let window = Window {
        from: Some(at(55)),
        until: Some(at(70)),
    };
    let inside = store.order_attempts(&kit.order, window).await.unwrap();
    assert_eq!(inside.len(), 1);
    assert_eq!(inside[0].serial.as_deref(), Some("SN-1"));
    assert_eq!(inside[0].id, attempts[1].id);

    let samples = store
        .order_measurements(&kit.order, Window::default())
        .await
        .unwrap();
    let seen: Vec<_> = samples
        .iter()
        .map(|m| (m.step.as_str(), m.name.as_str(), m.value, m.passed))
        .collect();
    assert_eq!(
        seen,
        [
            ("rf", "tx", 9.0, false),
            ("rf", "tx", 12.5, true),
            ("rf", "tx", 11.0, true),
        ]
    );
    assert_eq!(samples[0].attempt, attempts[0].id);
    assert_eq!(samples[0].at, at(50));
    assert!(samples.iter().all(|m| m.station == station));
    assert_eq!(
        (samples[0].low, samples[0].high, samples[0].unit.as_deref()),
        (Some(10.0), Some(14.0), Some("dBm"))
    );
    let inside = store.order_measurements(&kit.order, window).await.unwrap();
    assert_eq!(inside.len(), 1);
    assert_eq!(inside[0].value, 12.5);
    // Another order sees none of them.
    let other = kit.add_order("td-o2", 1).await;
    assert!(
        store
            .order_measurements(&other, Window::default())
            .await
            .unwrap()
            .is_empty()
    );
    let failures = store
        .order_failures(&kit.order, Window::default())
        .await
        .unwrap();
    assert_eq!(
        failures,
        [
            FailureCount {
                step: "rf".into(),
                measurement: None,
                failures: 1
            },
            FailureCount {
                step: "rf".into(),
                measurement: Some("tx".into()),
                failures: 1
            },
        ]
    );
    assert!(
        store
            .order_failures(&kit.order, window)
            .await
            .unwrap()
            .is_empty()
    );
}

/// Every order's numeric measurements read back after an attempt, by attempt, then step and
/// place in the step (not by name), failed values included and text values not; a page holds
/// the first `limit` rows and the rest of the last one's attempt.
pub async fn measurements_are_tailed_by_attempt(store: Arc<dyn Store>) {
    let kit = Kit::new(&store, "mt", 5, 1).await;
    let other = kit.add_order("mt-o2", 5).await;
    let start = store
        .measurements_after(0, 1000)
        .await
        .unwrap()
        .last()
        .map_or(0, |m| m.sample.attempt);
    let mut failed = kit.failed_test(0, "SN-1");
    failed.test = Some(measured("SN-1", 9.0, at(50)));
    store.record_rejection(failed).await.unwrap();
    let request = |order, serial: &str, key: &str, test| {
        kit.request_with(order, 0, serial, key, test, clock())
    };
    for (order, serial, key, test) in [
        (&kit.order, "SN-1", "k1", measured("SN-1", 12.5, at(60))),
        (&other, "SN-2", "k2", measured("SN-2", 11.0, at(70))),
        (
            &kit.order,
            "SN-4",
            "k4",
            measured_thrice("SN-4", 12.0, -3.5, 3.3),
        ),
    ] {
        issued(
            store
                .issue(request(order, serial, key, test))
                .await
                .unwrap(),
        );
        if serial == "SN-2" {
            // A record without steps stores an attempt without rows.
            issued(store.issue(kit.request(0, "SN-3", "k3")).await.unwrap());
        }
    }
    let mut ids = Vec::new();
    for s in ["SN-1", "SN-2", "SN-3", "SN-4"] {
        ids.extend(
            store
                .unit_attempts(&serial(s))
                .await
                .unwrap()
                .iter()
                .map(|a| a.id),
        );
    }
    let [a1, a2, a3, a4, a5] = ids[..] else {
        panic!("five attempts: {ids:?}");
    };
    assert!(
        start < a1 && a1 < a2 && a2 < a3 && a3 < a4 && a4 < a5,
        "{ids:?}"
    );
    let station = kit.stations[0].as_str();
    let sample = |attempt, order: &str, step: &str, name: &str, value, when| OrderMeasurement {
        order: order.to_owned(),
        sample: crate::MeasurementSample {
            attempt,
            station: station.to_owned(),
            step: step.to_owned(),
            name: name.to_owned(),
            value,
            unit: (name == "tx").then(|| String::from("dBm")),
            low: (name == "tx").then_some(10.0),
            high: match name {
                "tx" => Some(14.0),
                "volts" => Some(3.6),
                _ => None,
            },
            passed: value != 9.0,
            at: at(when),
        },
    };
    let o1 = kit.order.as_str();
    let o2 = other.as_str();
    let all = vec![
        sample(a1, o1, "rf", "tx", 9.0, 50),
        sample(a2, o1, "rf", "tx", 12.5, 60),
        sample(a3, o2, "rf", "tx", 11.0, 70),
        sample(a5, o1, "rf", "tx", 12.0, 80),
        sample(a5, o1, "rf", "rx", -3.5, 80),
        sample(a5, o1, "power", "volts", 3.3, 80),
    ];
    assert_eq!(store.measurements_after(start, 100).await.unwrap(), all);
    // `after` is exclusive, and a page ends with a whole attempt.
    for (after, limit, expected) in [
        (start, 1, &all[..1]),
        (start, 2, &all[..2]),
        (a1, 2, &all[1..3]),
        (a2, 100, &all[2..]),
        (a3, 1, &all[3..]),
        (a3, 2, &all[3..]),
        (a4, 3, &all[3..]),
        (a5, 100, &[][..]),
    ] {
        assert_eq!(
            store.measurements_after(after, limit).await.unwrap(),
            expected,
            "after {after}, limit {limit}"
        );
    }
    // Paging until a page is short reads every row once.
    let (mut after, mut paged) = (start, Vec::new());
    loop {
        let page = store.measurements_after(after, 2).await.unwrap();
        let short = page.len() < 2;
        after = page.last().map_or(after, |m| m.sample.attempt);
        paged.extend(page);
        if short {
            break;
        }
    }
    assert_eq!(paged, all);
}
