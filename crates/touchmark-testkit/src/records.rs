//! Test records as fixtures send them, each naming the unit it tested: Touchmark's own shape,
//! passing and failing, and OpenHTF's; and records that the real `openhtf` package wrote.

use serde_json::{Value, json};

/// A passing test record of unit `serial` in Touchmark's shape.
pub fn passing_test(serial: &str) -> Value {
    json!({
        "serial": serial,
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

/// A failing test record of unit `serial` in Touchmark's shape: one measurement out of its
/// limits.
pub fn failing_test(serial: &str) -> Value {
    json!({
        "serial": serial,
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

/// A passing test record of unit `serial` as OpenHTF's `JsonOutput` writes it.
pub fn openhtf_passing_test(serial: &str) -> Value {
    json!({
        "dut_id": serial,
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

/// A record the real `openhtf` package (1.6) wrote with its `OutputToJSON` callback, for a test
/// started with DUT id `SN-000400`: one phase, one measured voltage, PASS. Made by
/// `openhtf/make_records.py` beside this file.
pub fn openhtf_real_sn_000400() -> Value {
    parse(include_str!("openhtf/SN-000400.json"))
}

/// The same test run by the real `openhtf` package without a DUT id: it writes `UNKNOWN_DUT`.
pub fn openhtf_real_unknown_dut() -> Value {
    parse(include_str!("openhtf/UNKNOWN_DUT.json"))
}

fn parse(text: &str) -> Value {
    serde_json::from_str(text).expect("a JSON record")
}
