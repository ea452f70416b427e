//! Reaching the server (issue 11, newcomers 2 and 6): a station's commands pointed at a server
//! that moved with `--server`, and a server that is not running or not trusted reported with
//! what to check, a stable code and exit status 3, and the cause with `-v`.

use std::path::Path;
use std::process::{Command, Output};

use crate::kit::{self, Served};

fn touchmark(work: &Path) -> Command {
    let mut command = Command::new(kit::bin());
    command
        .current_dir(work)
        .env_remove("TOUCHMARK_SERVER")
        .env_remove("TOUCHMARK_CA")
        .env_remove("TOUCHMARK_TOKEN")
        .env_remove("TOUCHMARK_TOKEN_FILE")
        .env("TOUCHMARK_KEY_PASSPHRASE", kit::PASSPHRASE);
    command
}

fn stderr_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A port nothing listens on: bound, noted and closed again.
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Writes a unit's CSR and a passing test record for `serial` into `work`.
fn unit_files(work: &Path, serial: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let unit = kit::Unit::new(serial.to_owned());
    let csr = work.join(format!("{serial}.csr"));
    std::fs::write(&csr, &unit.csr).unwrap();
    let test = work.join("test.json");
    std::fs::write(&test, kit::passing_test(serial).to_string()).unwrap();
    (csr, test)
}

fn provision(work: &Path, station: &Path, serial: &str, server: Option<&str>) -> Command {
    let (csr, test) = unit_files(work, serial);
    let mut command = touchmark(work);
    command
        .args([
            "station",
            "provision",
            "--order",
            "PO-1",
            "--serial",
            serial,
            "--dir",
        ])
        .arg(station)
        .arg("--csr")
        .arg(csr)
        .arg("--test")
        .arg(test)
        .arg("--out")
        .arg(work.join(serial));
    if let Some(url) = server {
        command.args(["--server", url]);
    }
    command
}

#[tokio::test]
async fn station_commands_reach_a_server_that_moved_with_server() {
    let (tmp, data) = kit::tempdir();
    let work = tmp.path();
    let token = kit::init(&data);
    let first = Served::start(&data);
    kit::setup_order(&kit::admin(&first.url, &data, &token), "PO-1", 100).await;
    let station = crate::sim::enroll_with_cli(work, &first, &data, &token, "line-1");
    let settings = std::fs::read_to_string(station.join("station.json")).unwrap();
    assert!(settings.contains(&first.url), "{settings}");
    // The server moves to another port; station.json still names the old one.
    let old = first.url.clone();
    first.kill();
    let moved = Served::start(&data);
    assert_ne!(moved.url, old);

    let out = provision(work, &station, "SN-000001", None)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr_of(&out));
    assert!(stderr_of(&out).contains(&old), "{}", stderr_of(&out));

    let out = provision(work, &station, "SN-000001", Some(&moved.url))
        .output()
        .unwrap();
    kit::assert_success(&out, "provision --server");
    assert!(work.join("SN-000001/certificate.pem").is_file());
    // The environment variable does the same, for the simulator and receipts too.
    let out = touchmark(work)
        .args([
            "station", "run", "--order", "PO-1", "--units", "3", "--first", "2",
        ])
        .args(["--quiet", "--json", "--dir"])
        .arg(&station)
        .env("TOUCHMARK_SERVER", &moved.url)
        .output()
        .unwrap();
    kit::assert_success(&out, "station run with TOUCHMARK_SERVER");
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["issued"], 3, "{summary}");
    let out = touchmark(work)
        .args([
            "station", "run", "--order", "PO-1", "--units", "2", "--first", "10",
        ])
        .args(["--quiet", "--json", "--server", &moved.url, "--dir"])
        .arg(&station)
        .output()
        .unwrap();
    kit::assert_success(&out, "station run --server");
    // The receipt is there once a checkpoint covers the entry (the sequencer signs one
    // within a second); until then the server answers not_found.
    let mut out = None;
    for _ in 0..100 {
        let tried = touchmark(work)
            .args([
                "station",
                "receipt",
                "--order",
                "PO-1",
                "--serial",
                "SN-000001",
            ])
            .args(["--server", &moved.url, "--dir"])
            .arg(&station)
            .output()
            .unwrap();
        let done = tried.status.success();
        out = Some(tried);
        if done {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    kit::assert_success(&out.unwrap(), "station receipt --server");
    let admin = kit::admin(&moved.url, &data, &token);
    assert_eq!(admin.order("PO-1").await.unwrap().certificates, 6);
    assert_eq!(
        std::fs::read_to_string(station.join("station.json")).unwrap(),
        settings,
        "the station directory is not changed"
    );
    // Not an https URL: refused before anything is sent.
    let out = provision(work, &station, "SN-000020", Some("http://localhost:1"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    assert!(stderr_of(&out).contains("https"), "{}", stderr_of(&out));
    assert_eq!(admin.order("PO-1").await.unwrap().certificates, 6);
}

#[test]
fn a_server_that_is_not_running_is_reported_with_what_to_check() {
    let (tmp, data) = kit::tempdir();
    let token = kit::init(&data);
    let url = format!("https://localhost:{}", closed_port());
    let order_list = |verbose: bool| {
        let mut command = touchmark(tmp.path());
        command
            .args([
                "order", "list", "--server", &url, "--token", &token, "--data",
            ])
            .arg(&data);
        if verbose {
            command.arg("-v");
        }
        command.output().unwrap()
    };
    let out = order_list(false);
    let stderr = stderr_of(&out);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    for needed in [
        &format!("cannot reach the server at {url}") as &str,
        "connection refused",
        "--server",
        "TOUCHMARK_SERVER",
        "`touchmark serve` is running",
        "server_unreachable",
        "-v",
    ] {
        assert!(stderr.contains(needed), "{needed:?} in:\n{stderr}");
    }
    assert!(
        !stderr.contains("tcp connect error") && !stderr.contains("os error"),
        "no transport jargon without -v:\n{stderr}"
    );
    let out = order_list(true);
    let stderr = stderr_of(&out);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("cause:") && stderr.contains("os error"),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_server_signed_by_another_root_is_reported_with_what_to_check() {
    let (tmp, data) = kit::tempdir();
    let token = kit::init(&data);
    let other = tmp.path().join("other");
    kit::init(&other);
    let served = Served::start(&data);
    let wrong_ca = other.join("certs/infra-root-ca.pem");
    let out = touchmark(tmp.path())
        .args([
            "order",
            "list",
            "--server",
            &served.url,
            "--token",
            &token,
            "--ca",
        ])
        .arg(&wrong_ca)
        .output()
        .unwrap();
    let stderr = stderr_of(&out);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    for needed in [
        &format!("the server at {} is not trusted", served.url) as &str,
        "not signed by the root CA",
        "--ca",
        "TOUCHMARK_CA",
        "server_untrusted",
    ] {
        assert!(stderr.contains(needed), "{needed:?} in:\n{stderr}");
    }
    assert!(!stderr.contains("invalid peer certificate"), "{stderr}");
    // The auditor's fetches are read the same way, and -v shows the TLS library's words.
    let out = touchmark(tmp.path())
        .args(["audit", "verify", &served.url, "--quiet", "-v", "--key"])
        .arg(format!("@{}", data.join("log-verifier.txt").display()))
        .arg("--state")
        .arg(tmp.path().join("audit.state"))
        .arg("--ca")
        .arg(&wrong_ca)
        .output()
        .unwrap();
    let stderr = stderr_of(&out);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("not trusted") && stderr.contains("--ca"),
        "{stderr}"
    );
    assert!(stderr.contains("invalid peer certificate"), "{stderr}");
    // The right root works.
    let out = touchmark(tmp.path())
        .args([
            "order",
            "list",
            "--server",
            &served.url,
            "--token",
            &token,
            "--data",
        ])
        .arg(&data)
        .output()
        .unwrap();
    kit::assert_success(&out, "order list with the right root");
}
