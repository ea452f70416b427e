//! Oversight over HTTPS (design.md §9), on both backends: every test attempt is kept with its
//! steps and measurements, a unit's history reads them back in time order, and an order's
//! report folds them into yields, Paretos and statistics. One test uses records written by the
//! real `openhtf` package, which a Python script generates during the test.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::io::Write as _;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use touchmark_client::ClientError;
use touchmark_client::api::CreateToken;
use touchmark_core::Clock;
use touchmark_core::oversight::CreateWebhook;
use touchmark_core::policy::alerts::{self, AlertConfig};
use touchmark_server::projector::Projector;
use touchmark_testkit::{Backend, TestServer, Unit, failing_test, passing_test, pem_sha256};

fn api_error(e: ClientError) -> (u16, String) {
    match e {
        ClientError::Api { status, body } => (status, body.code),
        other => panic!("not an API error: {other}"),
    }
}

touchmark_testkit::both_backends!(
    history_and_report_follow_the_test_records,
    #[cfg_attr(
        not(tm_openhtf),
        ignore = "needs OpenHTF: set TOUCHMARK_TEST_OPENHTF_PYTHON to a python3 with `openhtf`"
    )]
    real_openhtf_records_are_stored_as_data,
    #[cfg_attr(
        not(tm_promtool),
        ignore = "needs promtool (Debian prometheus): install it, or set TOUCHMARK_TEST_PROMTOOL"
    )]
    metrics_count_provisioning_and_pass_promtool,
    #[cfg_attr(
        not(tm_standardwebhooks),
        ignore = "needs standardwebhooks (PyPI): set TOUCHMARK_TEST_STANDARDWEBHOOKS_PYTHON"
    )]
    a_clone_alert_is_delivered_signed_and_acknowledged,
    drift_and_low_yield_raise_alerts_and_steady_lines_do_not,
    drift_is_judged_over_the_last_values_across_a_restart,
);

/// A failed test, its retest and a first-time pass: the history holds each attempt with its
/// measurements before the certificate; the report counts units, not attempts.
async fn history_and_report_follow_the_test_records(backend: Backend) {
    let kit = TestServer::start(backend).await;
    let line = kit.line("ov", 10, "SN-000001..SN-000999").await;
    let station = kit.enroll_station(&line.factory).await;
    let sn1 = Unit::new("SN-000001");
    let reply = station
        .provision(&line.order, &sn1, failing_test("SN-000001"))
        .await;
    reply.assert_error(422, "test_failed");
    let reply = station
        .provision(&line.order, &sn1, passing_test("SN-000001"))
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    let cert_sha256 = pem_sha256(reply.body["certificate_pem"].as_str().unwrap());
    let index = kit.index(&reply).await;
    let sn2 = Unit::new("SN-000002");
    let mut second = passing_test("SN-000002");
    second["steps"][0]["measurements"][0]["value"] = json!(18.75);
    let reply = station.provision(&line.order, &sn2, second).await;
    assert_eq!(reply.status, 201, "{}", reply.text);

    let history = kit.admin.unit_history("SN-000001").await.unwrap();
    assert_eq!(history.serial, "SN-000001");
    assert_eq!(history.status, ["provisioned"]);
    assert_eq!((history.test_attempts, history.retests), (2, 1));
    let kinds: Vec<&str> = history.entries.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds,
        ["test.attempt", "test.attempt", "certificate.issued"]
    );
    let failed = history.entries[0].attempt.as_ref().unwrap();
    assert_eq!(
        (failed.verdict.as_str(), failed.format.as_str()),
        ("fail", "touchmark")
    );
    assert_eq!(failed.station, station.id);
    let tx = &failed.steps[0].measurements[0];
    assert_eq!(
        (
            failed.steps[0].name.as_str(),
            tx.name.as_str(),
            tx.value,
            tx.unit.as_deref(),
            tx.low,
            tx.high,
            tx.outcome.as_str()
        ),
        (
            "rf_power",
            "tx_dbm",
            Some(21.7),
            Some("dBm"),
            Some(10.0),
            Some(20.0),
            "fail"
        )
    );
    let passed = history.entries[1].attempt.as_ref().unwrap();
    assert_eq!(passed.verdict, "pass");
    assert_eq!(passed.event_index, Some(index));
    assert_eq!(passed.steps.len(), 2);
    assert_eq!(
        passed.steps[0].measurements[1].text.as_deref(),
        Some("internal")
    );
    let issued = &history.entries[2];
    assert_eq!(issued.cert_sha256.as_deref(), Some(cert_sha256.as_str()));
    assert_eq!(issued.event_index, Some(index));

    let report = kit
        .admin
        .order_report(&line.order, None, None)
        .await
        .unwrap();
    assert_eq!(
        (report.quota, report.quota_used, report.quota_left),
        (10, 2, 8)
    );
    assert_eq!((report.attempts, report.units), (3, 2));
    assert_eq!(report.first_pass_yield, Some(0.5));
    assert_eq!(report.final_yield, Some(1.0));
    assert_eq!(report.retest_rate, Some(0.5));
    assert_eq!(report.failures_by_step.len(), 1);
    assert_eq!(
        (
            report.failures_by_step[0].name.as_str(),
            report.failures_by_step[0].failures
        ),
        ("rf_power", 1)
    );
    assert_eq!(report.failures_by_measurement[0].name, "rf_power/tx_dbm");
    let tx = &report.measurements[0];
    assert_eq!(
        (tx.step.as_str(), tx.name.as_str(), tx.count),
        ("rf_power", "tx_dbm", 3)
    );
    let values = [21.7, 17.25, 18.75];
    let mean = values.iter().sum::<f64>() / 3.0;
    assert!((tx.mean - mean).abs() < 1e-9);
    assert_eq!((tx.min, tx.max), (17.25, 21.7));
    let sd = (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / 2.0).sqrt();
    assert!((tx.stddev.unwrap() - sd).abs() < 1e-9);
    // Ppk with the overall sigma; Cpk with the within sigma: the mean moving range of the
    // values in the order stored, over d2 = 1.128.
    assert!((tx.ppk.unwrap() - (20.0 - mean) / (3.0 * sd)).abs() < 1e-9);
    let within = ((17.25f64 - 21.7).abs() + (18.75f64 - 17.25).abs()) / 2.0 / 1.128;
    assert!((tx.sigma_within.unwrap() - within).abs() < 1e-9);
    assert!((tx.cpk.unwrap() - (20.0 - mean) / (3.0 * within)).abs() < 1e-9);
    assert_eq!(tx.histogram.counts.iter().sum::<u64>(), 3);
    assert_eq!(report.failed_tests, 1);
    assert!(report.refusals.is_empty());
    let hours: u64 = report.units_per_hour.iter().map(|h| h.attempts).sum();
    assert_eq!(hours, 3);

    // A window after every attempt holds none of them; the quota is the order's all the same.
    let later = touchmark_core::clock::format_timestamp(kit.now() + time::Duration::hours(1));
    let empty = kit
        .admin
        .order_report(&line.order, Some(&later), None)
        .await
        .unwrap();
    assert_eq!((empty.attempts, empty.units, empty.quota_used), (0, 0, 2));
    assert_eq!(empty.first_pass_yield, None);
    assert!(empty.measurements.is_empty());

    // Bad input: a clear error with a stable code, never a 500.
    let e = kit.admin.unit_history("SN-000404").await.unwrap_err();
    assert_eq!(api_error(e), (404, "not_found".into()));
    let e = kit.admin.unit_history("bad serial").await.unwrap_err();
    assert_eq!(api_error(e), (400, "invalid_request".into()));
    let e = kit
        .admin
        .order_report("ord-none", None, None)
        .await
        .unwrap_err();
    assert_eq!(api_error(e), (404, "not_found".into()));
    let e = kit
        .admin
        .order_report(&line.order, Some("yesterday"), None)
        .await
        .unwrap_err();
    assert_eq!(api_error(e), (400, "invalid_request".into()));
    // A window that ends before it starts holds nothing.
    let reversed = kit
        .admin
        .order_report(&line.order, Some(&later), Some("2020-01-01T00:00:00Z"))
        .await
        .unwrap();
    assert_eq!((reversed.attempts, reversed.units), (0, 0));
    // Without a token, nothing.
    let e = kit.anonymous().unit_history("SN-000001").await.unwrap_err();
    assert_eq!(api_error(e).0, 401);
}

/// Runs the real `openhtf` package: a two-phase test of `dut` with the battery voltage `vbat`
/// (limits 3.2..3.4 V) and the transmit power 17.25 dBm (limits 10..20), written by its
/// `OutputToJSON` callback.
fn openhtf_record(dut: &str, vbat: f64) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("record.json");
    let script = r#"
import sys
import openhtf as htf
from openhtf.output.callbacks import json_factory
from openhtf.util import units

dut, vbat, out = sys.argv[1], float(sys.argv[2]), sys.argv[3]

@htf.measures(htf.Measurement("vbat").in_range(3.2, 3.4).with_units(units.VOLT))
def power_on(test):
    test.measurements.vbat = vbat

@htf.measures(htf.Measurement("tx_power").in_range(10, 20))
def rf(test):
    test.measurements.tx_power = 17.25

test = htf.Test(power_on, rf, test_name="rf_suite", test_version="2.3.1")
test.add_output_callbacks(json_factory.OutputToJSON(out))
test.execute(test_start=lambda: dut)
"#;
    // OpenHTF reads its phases' source: the script is a file, not `-c`.
    let file = dir.path().join("make_record.py");
    std::fs::write(&file, script).unwrap();
    let python = touchmark_testenv::tool(&touchmark_testenv::OPENHTF);
    let run = Command::new(python)
        .arg(&file)
        .args([dut, &vbat.to_string()])
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "openhtf: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap()
}

/// Records the real `openhtf` package wrote, a failure and its retest, are kept as data:
/// phases as steps, measurements with their units and limits.
async fn real_openhtf_records_are_stored_as_data(backend: Backend) {
    let failing = openhtf_record("SN-000010", 3.5);
    assert_eq!(failing["outcome"], "FAIL");
    let passing = openhtf_record("SN-000010", 3.31);
    assert_eq!(passing["outcome"], "PASS");

    let kit = TestServer::start(backend).await;
    let line = kit.line("oh", 10, "SN-000001..SN-000999").await;
    let station = kit.enroll_station(&line.factory).await;
    let unit = Unit::new("SN-000010");
    station
        .provision(&line.order, &unit, failing)
        .await
        .assert_error(422, "test_failed");
    let reply = station.provision(&line.order, &unit, passing).await;
    assert_eq!(reply.status, 201, "{}", reply.text);

    let history = kit.admin.unit_history("SN-000010").await.unwrap();
    assert_eq!((history.test_attempts, history.retests), (2, 1));
    let attempts: Vec<_> = history
        .entries
        .iter()
        .filter_map(|e| e.attempt.as_ref())
        .collect();
    assert_eq!(attempts.len(), 2);
    for (attempt, (verdict, vbat)) in attempts.iter().zip([("fail", 3.5), ("pass", 3.31)]) {
        assert_eq!(
            (attempt.verdict.as_str(), attempt.format.as_str()),
            (verdict, "openhtf")
        );
        let phases: Vec<(&str, usize)> = attempt
            .steps
            .iter()
            .map(|s| (s.name.as_str(), s.measurements.len()))
            .collect();
        // OpenHTF runs the DUT id's `test_start` as a phase of its own.
        assert_eq!(phases, [("trigger_phase", 0), ("power_on", 1), ("rf", 1)]);
        let v = &attempt.steps[1].measurements[0];
        assert_eq!(
            (v.name.as_str(), v.value, v.unit.as_deref(), v.low, v.high),
            ("vbat", Some(vbat), Some("V"), Some(3.2), Some(3.4))
        );
        assert_eq!(v.outcome, if verdict == "pass" { "pass" } else { "fail" });
        let tx = &attempt.steps[2].measurements[0];
        assert_eq!(
            (tx.name.as_str(), tx.value, tx.low, tx.high),
            ("tx_power", Some(17.25), Some(10.0), Some(20.0))
        );
    }
    assert_eq!(history.entries.last().unwrap().kind, "certificate.issued");

    let report = kit
        .admin
        .order_report(&line.order, None, None)
        .await
        .unwrap();
    assert_eq!(report.first_pass_yield, Some(0.0));
    assert_eq!(report.final_yield, Some(1.0));
    assert_eq!(
        report
            .failures_by_measurement
            .iter()
            .map(|p| (p.name.as_str(), p.failures))
            .collect::<Vec<_>>(),
        [("power_on/vbat", 1)]
    );
    let names: Vec<String> = report
        .measurements
        .iter()
        .map(|m| format!("{}/{}:{}", m.step, m.name, m.count))
        .collect();
    assert_eq!(names, ["power_on/vbat:2", "rf/tx_power:2"]);
}

/// The value of the sample `name` (with its labels, as written) in a text exposition.
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

/// `/metrics` counts what this server answered, reads each open order's quota, and passes
/// `promtool check metrics`; it needs a token that may read.
async fn metrics_count_provisioning_and_pass_promtool(backend: Backend) {
    let kit = TestServer::start(backend).await;
    let line = kit.line("mx", 10, "SN-000001..SN-000999").await;
    let station = kit.enroll_station(&line.factory).await;
    for n in 1..=3 {
        let serial = format!("SN-00000{n}");
        let reply = station
            .provision(&line.order, &Unit::new(&serial), passing_test(&serial))
            .await;
        assert_eq!(reply.status, 201, "{}", reply.text);
    }
    station
        .provision(
            &line.order,
            &Unit::new("SN-000009"),
            failing_test("SN-000009"),
        )
        .await
        .assert_error(422, "test_failed");
    station
        .provision(
            &line.order,
            &Unit::new("SN-001000"),
            passing_test("SN-001000"),
        )
        .await
        .assert_error(422, "serial_out_of_range");
    kit.sequence_now().await;

    let auditor = kit
        .admin
        .create_token(&CreateToken {
            role: "auditor".into(),
            label: "prometheus".into(),
        })
        .await
        .unwrap()
        .token;
    let reply = kit
        .raw()
        .get_with_authorization("/metrics", &format!("Bearer {auditor}"))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert!(
        reply.content_type.starts_with("text/plain; version=0.0.4"),
        "{}",
        reply.content_type
    );
    let text = reply.text;
    assert_eq!(sample(&text, "touchmark_units_issued_total"), Some(3.0));
    assert_eq!(sample(&text, "touchmark_tests_failed_total"), Some(1.0));
    assert_eq!(
        sample(
            &text,
            r#"touchmark_units_refused_total{code="test_failed"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            r#"touchmark_units_refused_total{code="serial_out_of_range"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            r#"touchmark_units_refused_total{code="quota_exhausted"}"#
        ),
        Some(0.0)
    );
    assert_eq!(
        sample(
            &text,
            &format!(
                "touchmark_order_quota_remaining{{order=\"{}\"}}",
                line.order
            )
        ),
        Some(7.0)
    );
    assert_eq!(
        sample(
            &text,
            r#"touchmark_issuance_duration_seconds_count{outcome="issued"}"#
        ),
        Some(3.0)
    );
    assert_eq!(
        sample(
            &text,
            r#"touchmark_issuance_duration_seconds_bucket{outcome="refused",le="+Inf"}"#
        ),
        Some(2.0)
    );
    assert!(sample(&text, "touchmark_log_entries").unwrap() >= 8.0);
    assert!(sample(&text, "touchmark_log_checkpoint_age_seconds").is_some());
    // The connection pool, where the store has one (PostgreSQL): the scrape's own queries
    // left at least one connection open.
    let idle = sample(&text, r#"touchmark_db_connections{state="idle"}"#);
    let in_use = sample(&text, r#"touchmark_db_connections{state="in_use"}"#);
    let max = sample(&text, "touchmark_db_connections_max");
    match backend {
        Backend::Postgres => {
            let open = idle.unwrap() + in_use.unwrap();
            assert!(open >= 1.0 && max.unwrap() >= open, "{text}");
        }
        Backend::Sqlite => assert_eq!((idle, in_use, max), (None, None, None), "{text}"),
    }
    // No serial, station or key is ever a label.
    for secret in ["SN-00000", station.id.as_str()] {
        assert!(!text.contains(secret), "{secret} in {text}");
    }

    let mut promtool = Command::new(touchmark_testenv::tool(&touchmark_testenv::PROMTOOL))
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = promtool.wait_with_output().unwrap();
    assert!(
        out.status.success() && out.stdout.is_empty(),
        "promtool: {}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // Without a token, or with a station's certificate alone, nothing.
    let reply = kit
        .raw()
        .get_with_authorization("/metrics", "Bearer nope")
        .await;
    reply.assert_error(401, "unauthorized");
}

/// A request a webhook receiver kept: its headers and its body.
type Request = (BTreeMap<String, String>, String);

/// What a webhook receiver kept.
type Seen = Arc<Mutex<Vec<Request>>>;

/// A webhook receiver on 127.0.0.1: it answers 503 to the first `failures` requests, then 200,
/// and keeps every request's headers and body.
async fn receiver(failures: usize) -> (String, Seen) {
    let seen: Seen = Arc::default();
    let kept = Arc::clone(&seen);
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
            let kept = Arc::clone(&kept);
            async move {
                let headers = headers
                    .iter()
                    .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
                    .collect();
                let mut seen = kept.lock().unwrap();
                seen.push((headers, body));
                if seen.len() <= failures {
                    axum::http::StatusCode::SERVICE_UNAVAILABLE
                } else {
                    axum::http::StatusCode::OK
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, seen)
}

/// Waits until `seen` holds `n` requests (the delivery loop polls every 250 ms).
async fn requests(seen: &Seen, n: usize) -> Vec<Request> {
    for _ in 0..200 {
        if seen.lock().unwrap().len() >= n {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let got = seen.lock().unwrap().clone();
    assert!(got.len() >= n, "{} requests, not {n}", got.len());
    got
}

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// A serial clone raises one `clone_suspect` alert with its evidence, however many clones
/// follow; the webhook receives it signed (checked by the Standard Webhooks library), first
/// refused, then again under the same id after its backoff; acknowledging it is logged once.
async fn a_clone_alert_is_delivered_signed_and_acknowledged(backend: Backend) {
    let (url, seen) = receiver(1).await;
    let kit = TestServer::start(backend).await;
    let hook = kit
        .admin
        .create_webhook(&CreateWebhook {
            url: url.clone(),
            secret: SECRET.into(),
            kinds: vec!["clone_suspect".into()],
        })
        .await
        .unwrap();
    assert_eq!(hook.kinds, ["clone_suspect"]);
    // Bad webhooks: a clear error, nothing stored.
    for (bad_url, bad_secret, kinds) in [
        ("ftp://x/hook", SECRET, vec![]),
        (url.as_str(), "secret", vec![]),
        (url.as_str(), "whsec_c2hvcnQ=", vec![]),
        (
            url.as_str(),
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS!",
            vec![],
        ),
        (url.as_str(), SECRET, vec!["weather".to_owned()]),
    ] {
        let e = kit
            .admin
            .create_webhook(&CreateWebhook {
                url: bad_url.into(),
                secret: bad_secret.into(),
                kinds,
            })
            .await
            .unwrap_err();
        assert_eq!(api_error(e), (400, "invalid_request".into()));
    }
    assert_eq!(kit.admin.webhooks().await.unwrap().len(), 1);

    let line = kit.line("al", 10, "SN-000001..SN-000999").await;
    let station = kit.enroll_station(&line.factory).await;
    let reply = station
        .provision(
            &line.order,
            &Unit::new("SN-000001"),
            passing_test("SN-000001"),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    kit.project().await;
    assert!(kit.admin.alerts(false).await.unwrap().is_empty());
    // Two clones of the serial (new keys): two refusals, one alert.
    for n in 0..2 {
        let mut record = passing_test("SN-000001");
        record["fixture_version"] = json!(format!("rf-fixture clone {n}"));
        station
            .provision(&line.order, &Unit::new("SN-000001"), record)
            .await
            .assert_error(409, "serial_conflict");
    }
    kit.project().await;
    assert_eq!(kit.project().await, 0);
    let alerts = kit.admin.alerts(false).await.unwrap();
    assert_eq!(alerts.len(), 1);
    let alert = &alerts[0];
    assert_eq!(
        (alert.kind.as_str(), alert.state.as_str()),
        ("clone_suspect", "open")
    );
    assert_eq!(alert.order.as_deref(), Some(line.order.as_str()));
    assert_eq!(alert.evidence["serial"], "SN-000001");
    assert_eq!(alert.evidence["reason"], "serial_conflict");
    let cause: u64 = alert.evidence["event_index"].parse().unwrap();
    let logged = kit.admin.events(cause, 1).await.unwrap().remove(0);
    assert_eq!(logged.kind, "unit.refused");

    // First attempt refused (503), retried after its backoff under the same id. The server
    // schedules the retry when it has read the refusal, which may come after the receiver
    // saw the request: the clock moves past the backoff until the retry comes, so that a
    // retry scheduled from a clock already moved is not waited for forever.
    let first = requests(&seen, 1).await;
    for _ in 0..20 {
        kit.advance(time::Duration::seconds(2));
        for _ in 0..10 {
            if seen.lock().unwrap().len() >= 2 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        if seen.lock().unwrap().len() >= 2 {
            break;
        }
    }
    let both = requests(&seen, 2).await;
    assert_eq!(
        first[0].0["webhook-id"],
        format!("msg_{}_{}", alert.id, hook.id)
    );
    assert_eq!(both[1].0["webhook-id"], both[0].0["webhook-id"]);
    let body: Value = serde_json::from_str(&both[1].1).unwrap();
    assert_eq!(body["type"], "alert.raised");
    assert_eq!(body["data"]["id"], alert.id.as_str());
    assert_eq!(body["data"]["kind"], "clone_suspect");
    // The signature, checked by the Standard Webhooks library.
    let (headers, payload) = &both[1];
    let script = r#"
import json, sys
from standardwebhooks.webhooks import Webhook
headers = json.loads(sys.argv[2])
Webhook(sys.argv[1]).verify(sys.stdin.read(), headers)
print("verified")
"#;
    let python = touchmark_testenv::tool(&touchmark_testenv::STANDARD_WEBHOOKS);
    let mut verify = Command::new(&python)
        .args([
            "-c",
            script,
            SECRET,
            &serde_json::to_string(headers).unwrap(),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    verify
        .stdin
        .take()
        .unwrap()
        .write_all(payload.as_bytes())
        .unwrap();
    let out = verify.wait_with_output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "verified",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut tampered = headers.clone();
    tampered.insert("webhook-id".into(), "msg_other".into());
    let mut verify = Command::new(&python)
        .args([
            "-c",
            script,
            SECRET,
            &serde_json::to_string(&tampered).unwrap(),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    verify
        .stdin
        .take()
        .unwrap()
        .write_all(payload.as_bytes())
        .unwrap();
    assert!(!verify.wait_with_output().unwrap().status.success());
    // Delivered: nothing more is sent.
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    kit.advance(time::Duration::hours(2));
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    assert_eq!(seen.lock().unwrap().len(), 2);

    // Acknowledged once, logged with who did it; a second time is a conflict.
    let ack = kit.admin.alert_action(&alert.id, false).await.unwrap();
    assert_eq!(ack.state, "acknowledged");
    let e = kit.admin.alert_action(&alert.id, false).await.unwrap_err();
    assert_eq!(api_error(e), (409, "conflict".into()));
    let size = kit.sequence_now().await;
    let last = kit.admin.events(size - 1, 1).await.unwrap().remove(0);
    assert_eq!(last.kind, "alert.acknowledged");
    assert!(last.canonical.contains(&alert.id), "{}", last.canonical);
    assert!(
        last.canonical.contains("\"actor\":\"token:"),
        "{}",
        last.canonical
    );
    let resolved = kit.admin.alert_action(&alert.id, true).await.unwrap();
    assert_eq!(resolved.state, "resolved");
    assert!(kit.admin.alerts(false).await.unwrap().is_empty());
    assert_eq!(kit.admin.alerts(true).await.unwrap().len(), 1);
    // Only an admin acknowledges.
    let auditor = kit
        .admin
        .create_token(&CreateToken {
            role: "auditor".into(),
            label: "auditor".into(),
        })
        .await
        .unwrap()
        .token;
    let e = kit
        .with_token(&auditor)
        .alert_action(&alert.id, true)
        .await
        .unwrap_err();
    assert_eq!(api_error(e).0, 403);
    let e = kit.admin.alert_action("al-nope", false).await.unwrap_err();
    assert_eq!(api_error(e), (404, "not_found".into()));
}

/// A Touchmark record of `serial` with `tx_dbm` measured at `tx` (limits 10..20); unless
/// `passed`, its self test failed.
fn record(serial: &str, tx: f64, passed: bool) -> Value {
    let mut r = passing_test(serial);
    r["steps"][0]["measurements"][0]["value"] = json!(tx);
    if !passed {
        r["verdict"] = json!("fail");
        r["steps"][1]["outcome"] = json!("fail");
    }
    r
}

/// On one order the transmit power drifts towards its high limit: a `measurement_drift` alert
/// with Cpk and Ppk. On another, steady units raise nothing; then a run of failures pulls its
/// first-pass yield below 80% over the last 50 units: `fpy_low`.
async fn drift_and_low_yield_raise_alerts_and_steady_lines_do_not(backend: Backend) {
    let kit = TestServer::start(backend).await;
    let drifting = kit.line("dr", 100, "SN-000001..SN-000999").await;
    let station = kit.enroll_station(&drifting.factory).await;
    for n in 1..=40u32 {
        let serial = format!("SN-{n:06}");
        let tx = 13.0 + f64::from(n) * 0.16 + if n.is_multiple_of(2) { 0.05 } else { -0.05 };
        let reply = station
            .provision(
                &drifting.order,
                &Unit::new(&serial),
                record(&serial, tx, true),
            )
            .await;
        assert_eq!(reply.status, 201, "{}", reply.text);
    }
    kit.project().await;
    let alerts = kit.admin.alerts(false).await.unwrap();
    let kinds: Vec<&str> = alerts.iter().map(|a| a.kind.as_str()).collect();
    assert_eq!(kinds, ["measurement_drift"]);
    let drift = &alerts[0];
    assert_eq!(drift.evidence["measurement"], "rf_power/tx_dbm");
    assert_eq!(drift.station.as_deref(), Some(station.id.as_str()));
    let z: f64 = drift.evidence["mean_shift_z"].parse().unwrap();
    assert!(z > 6.0, "{z}");
    let cpk: f64 = drift.evidence["cpk"].parse().unwrap();
    let ppk: f64 = drift.evidence["ppk"].parse().unwrap();
    assert!(ppk < cpk, "{ppk} {cpk}");

    let steady = kit.line("st", 200, "SN-000001..SN-000999").await;
    let station = kit.enroll_station(&steady.factory).await;
    let mut n = 0u32;
    let mut send = |pass: bool| {
        n += 1;
        let serial = format!("SN-{n:06}");
        let tx = 15.0 + if n.is_multiple_of(2) { 0.3 } else { -0.3 };
        (serial.clone(), record(&serial, tx, pass))
    };
    for _ in 0..50 {
        let (serial, r) = send(true);
        let reply = station
            .provision(&steady.order, &Unit::new(&serial), r)
            .await;
        assert_eq!(reply.status, 201, "{}", reply.text);
    }
    kit.advance(time::Duration::seconds(3));
    kit.project().await;
    assert_eq!(kit.admin.alerts(false).await.unwrap().len(), 1);
    // 11 of the next 50 fail their first test: 39/50 = 78% < 80%.
    for i in 0..50 {
        let (serial, r) = send(i % 5 != 0 && i != 1);
        let reply = station
            .provision(&steady.order, &Unit::new(&serial), r)
            .await;
        assert!(
            reply.status == 201 || reply.code() == "test_failed",
            "{}",
            reply.text
        );
    }
    kit.advance(time::Duration::seconds(3));
    kit.project().await;
    let alerts = kit.admin.alerts(false).await.unwrap();
    let fpy: Vec<_> = alerts.iter().filter(|a| a.kind == "fpy_low").collect();
    assert_eq!(fpy.len(), 1, "{alerts:?}");
    assert_eq!(fpy[0].order.as_deref(), Some(steady.order.as_str()));
    let yield_: f64 = fpy[0].evidence["first_pass_yield"].parse().unwrap();
    assert!(yield_ < 0.8, "{yield_}");
    // No drift on the steady line.
    assert!(
        alerts.iter().all(|a| a.kind != "measurement_drift"
            || a.order.as_deref() == Some(drifting.order.as_str())),
        "{alerts:?}"
    );
}

/// Drift judged after many attempts, as they come, over the last values of each series: a
/// steady line judged every ten units raises nothing, its failed values (out of limits) left
/// out; then a projector started again on the same store (a restart) reads the series back
/// and, judging every five units of a drift, raises the alert the rule gives over the whole
/// line's passing values at the first judgement that fires, with the same evidence.
async fn drift_is_judged_over_the_last_values_across_a_restart(backend: Backend) {
    let kit = TestServer::start(backend).await;
    let line = kit.line("dl", 500, "SN-000001..SN-000999").await;
    let station = kit.enroll_station(&line.factory).await;
    let mut passing = Vec::new();
    let mut n = 0u32;
    let mut provision = async |tx: f64| {
        n += 1;
        let serial = format!("SN-{n:06}");
        let unit = Unit::new(&serial);
        if n.is_multiple_of(7) {
            let reply = station
                .provision(&line.order, &unit, failing_test(&serial))
                .await;
            reply.assert_error(422, "test_failed");
        }
        let reply = station
            .provision(&line.order, &unit, record(&serial, tx, true))
            .await;
        assert_eq!(reply.status, 201, "{}", reply.text);
        tx
    };
    for i in 0..120u32 {
        let tx = 14.0 + if i.is_multiple_of(2) { 0.3 } else { -0.3 };
        passing.push(provision(tx).await);
        if i % 10 == 9 {
            kit.project().await;
        }
    }
    assert!(kit.admin.alerts(false).await.unwrap().is_empty());

    let config = AlertConfig::default();
    let restarted = Projector::new(
        Arc::clone(&kit.authority),
        Arc::clone(&kit.store),
        Arc::clone(&kit.log),
        Arc::clone(&kit.clock) as Arc<dyn Clock>,
        config.clone(),
    );
    let order = touchmark_core::OrderId::parse(&line.order).unwrap();
    let station_id = touchmark_core::StationId::parse(&station.id).unwrap();
    let mut expected = None;
    for i in 1..=40u32 {
        let tx = 14.0 + f64::from(i) * 0.12 + if i.is_multiple_of(2) { 0.05 } else { -0.05 };
        passing.push(provision(tx).await);
        if i % 5 == 0 {
            kit.sequence_now().await;
            restarted.catch_up().await.unwrap();
            expected = expected.or_else(|| {
                alerts::drift(
                    &order,
                    &station_id,
                    "rf_power/tx_dbm",
                    &passing,
                    Some(10.0),
                    Some(20.0),
                    &config,
                )
            });
        }
    }
    let expected = expected.expect("the drift fires within 40 units");
    let alerts = kit.admin.alerts(false).await.unwrap();
    let kinds: Vec<&str> = alerts.iter().map(|a| a.kind.as_str()).collect();
    assert_eq!(kinds, ["measurement_drift"], "{alerts:?}");
    assert_eq!(alerts[0].order.as_deref(), Some(line.order.as_str()));
    assert_eq!(alerts[0].evidence, expected.evidence);
}
