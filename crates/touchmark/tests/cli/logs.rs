//! The server's own log (issue 11, newcomer item 8): one structured line per request and per
//! refusal at `info`, as JSON with `--log-format json`, and no colour codes when standard error
//! is not a terminal.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::kit::{self, Served, Unit};

/// A server whose standard error is collected, line by line.
struct Logged {
    served: Served,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Logged {
    /// Starts `touchmark serve` with `args` after `serve`, TOUCHMARK_LOG unset (the server's
    /// default level) and standard error a pipe.
    fn start(dir: &Path, args: &[&str]) -> Self {
        let mut command = kit::serve_command(dir);
        command
            .args(args)
            .env_remove("TOUCHMARK_LOG")
            .env_remove("TOUCHMARK_LOG_FORMAT")
            .env_remove("NO_COLOR")
            .stderr(Stdio::piped());
        let mut served = Served::spawn(&mut command);
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stderr = take_stderr(&mut served.child);
        let sink = Arc::clone(&lines);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap().push(line);
            }
        });
        Self { served, lines }
    }

    /// The lines so far, once `done` holds for them (10 s at most).
    fn lines_when(&self, done: impl Fn(&[String]) -> bool) -> Vec<String> {
        let started = Instant::now();
        loop {
            let lines = self.lines.lock().unwrap().clone();
            if done(&lines) || started.elapsed() > Duration::from_secs(10) {
                return lines;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn take_stderr(child: &mut Child) -> std::process::ChildStderr {
    child.stderr.take().unwrap()
}

/// An order `PO-LOG` and an enrolled station `line-1` on the server.
async fn one_line(served: &Served, dir: &Path, token: &str) -> touchmark_client::Client {
    let admin = kit::admin(&served.url, dir, token);
    kit::setup_order(&admin, "PO-LOG", 10).await;
    let identity = kit::enroll(&admin, &served.url, dir, "cm", "line-1").await;
    kit::station_client(&served.url, dir, &identity)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_log_lines_carry_each_request_and_refusal() {
    let (_tmp, dir) = kit::tempdir();
    let token = kit::init(&dir);
    let logged = Logged::start(&dir, &["--log-format", "json"]);
    let station = one_line(&logged.served, &dir, &token).await;
    let issued = station
        .provision("PO-LOG", &Unit::new("SN-000001".into()).request())
        .await
        .unwrap();
    assert_eq!(issued.status, "issued");
    // The same serial with another key: a clone suspect.
    let refused = station
        .provision("PO-LOG", &Unit::new("SN-000001".into()).request())
        .await
        .unwrap_err();
    assert_eq!(refused.status(), Some(409));

    let is_provision = |v: &Value| v["route"] == "/v1/orders/{order}/units";
    let lines = logged.lines_when(|lines| {
        lines
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(is_provision)
            .count()
            >= 2
    });
    // Every line is a JSON object, whatever wrote it.
    let records: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
        .collect();
    assert!(
        records
            .iter()
            .all(|r| r["level"].is_string() && r["timestamp"].is_string())
    );
    let provisions: Vec<&Value> = records.iter().filter(|r| is_provision(r)).collect();
    assert_eq!(provisions.len(), 2, "{lines:#?}");
    for (record, status, code) in [
        (provisions[0], 201, None),
        (provisions[1], 409, Some("serial_conflict")),
    ] {
        assert_eq!(record["level"], "INFO", "{record}");
        assert_eq!(record["target"], "touchmark_server::access", "{record}");
        assert_eq!(record["message"], "request", "{record}");
        assert_eq!(record["method"], "POST", "{record}");
        assert_eq!(record["station"], "line-1", "{record}");
        assert_eq!(record["order"], "PO-LOG", "{record}");
        assert_eq!(record["status"], status, "{record}");
        assert_eq!(record["code"].as_str(), code, "{record}");
        let latency = record["latency_ms"].as_f64().unwrap();
        assert!(latency > 0.0, "{record}");
        assert!(record["peer"].as_str().unwrap().starts_with("127.0.0.1:"));
    }
    // The admin's requests are logged too, with no station.
    let created = records
        .iter()
        .find(|r| r["route"] == "/v1/orders" && r["method"] == "POST")
        .unwrap_or_else(|| panic!("{lines:#?}"));
    assert_eq!(
        (created["status"].as_u64(), created.get("station")),
        (Some(201), None)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_log_lines_to_a_pipe_have_no_escape_codes() {
    let (_tmp, dir) = kit::tempdir();
    let token = kit::init(&dir);
    let logged = Logged::start(&dir, &[]);
    let station = one_line(&logged.served, &dir, &token).await;
    let unit = Unit::new("SN-000001".into());
    station.provision("PO-LOG", &unit.request()).await.unwrap();
    // The same serial with another key: a clone suspect.
    let refused = station
        .provision("PO-LOG", &Unit::new("SN-000001".into()).request())
        .await
        .unwrap_err();
    assert_eq!(refused.status(), Some(409));
    let lines = logged.lines_when(|lines| lines.iter().any(|l| l.contains("code=serial_conflict")));
    let refusal = lines
        .iter()
        .find(|l| l.contains("code=serial_conflict"))
        .unwrap_or_else(|| panic!("no refusal line: {lines:#?}"));
    for field in [
        "INFO",
        "method=POST",
        "route=/v1/orders/{order}/units",
        "station=line-1",
        "order=PO-LOG",
        "status=409",
        "latency_ms=",
    ] {
        assert!(refusal.contains(field), "{field}: {refusal}");
    }
    let escapes: Vec<&String> = lines.iter().filter(|l| l.contains('\u{1b}')).collect();
    assert!(escapes.is_empty(), "ESC in {escapes:#?}");
}
