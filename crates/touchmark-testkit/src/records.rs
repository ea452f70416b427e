//! Test records as fixtures send them: Touchmark's own shape, passing and failing, and OpenHTF's.

use serde_json::{Value, json};

/// A passing test record in Touchmark's shape.
pub fn passing_test() -> Value {
    json!({
        "verdict": "pass",
        "started_at": "2026-03-01T09:00:00Z",
        "ended_at": "2026-03-01T09:00:42.5Z",
        "fixture_version": "rf-fixture 2.3.1",
        "steps": [
            {
                "name": "rf_power",
                "outcome": "pass",
                "measurements": [
                    { "name": "tx_dbm", "value": 17.25, "unit": "dBm", "low": 10, "high": 20, "outcome": "pass" },
                    { "name": "antenna", "value": "internal", "outcome": "pass" }
                ]
            },
            { "name": "self_test", "outcome": "pass", "measurements": [] }
        ]
    })
}

/// A failing test record in Touchmark's shape: one measurement out of its limits.
pub fn failing_test() -> Value {
    json!({
        "verdict": "fail",
        "started_at": "2026-03-01T09:00:00Z",
        "ended_at": "2026-03-01T09:00:42.5Z",
        "fixture_version": "rf-fixture 2.3.1",
        "steps": [
            {
                "name": "rf_power",
                "outcome": "fail",
                "measurements": [
                    { "name": "tx_dbm", "value": 21.7, "unit": "dBm", "low": 10, "high": 20, "outcome": "fail" }
                ]
            }
        ]
    })
}

/// A passing test record as OpenHTF's `JsonOutput` writes it.
pub fn openhtf_passing_test() -> Value {
    json!({
        "dut_id": "ignored",
        "station_id": "line1-rf-03",
        "start_time_millis": 1_772_355_600_000_u64,
        "end_time_millis": 1_772_355_642_500_u64,
        "outcome": "PASS",
        "metadata": { "test_name": "rf_suite", "test_version": "2.3.1" },
        "phases": [
            {
                "name": "power_on",
                "start_time_millis": 1_772_355_600_010_u64,
                "end_time_millis": 1_772_355_600_500_u64,
                "outcome": "PASS",
                "measurements": {
                    "vbat": {
                        "name": "vbat", "outcome": "PASS", "measured_value": 3.31,
                        "units": { "name": "volt", "code": "VLT", "suffix": "V" },
                        "validators": ["3.2 <= x <= 3.4"]
                    }
                }
            }
        ]
    })
}
