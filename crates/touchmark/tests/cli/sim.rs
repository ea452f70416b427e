//! The line simulator and the demo, run as a factory engineer would run them.

use std::process::Command;

use crate::kit::{self, Served};

fn touchmark(dir: &std::path::Path) -> Command {
    let mut command = Command::new(kit::bin());
    command
        .current_dir(dir)
        .env("TOUCHMARK_KEY_PASSPHRASE", kit::PASSPHRASE);
    command
}

#[test]
fn demo_exits_zero_with_every_outcome_as_expected() {
    let work = tempfile::tempdir().unwrap();
    let out = touchmark(work.path())
        .args(["demo", "--exit", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "demo failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["as_expected"], true, "{summary:#}");
    assert_eq!(summary["issued"], 500);
    assert_eq!(summary["refused_beyond_quota"], 100);
    assert_eq!(summary["failed_tests"], 24);
    assert_eq!(summary["clones"]["clone_serial"]["serial_conflict"], 1);
    assert_eq!(summary["clones"]["clone_key"]["key_reused"], 1);
    assert_eq!(summary["database_agrees_with_log"], true);
    assert!(work.path().join("touchmark-demo/touchmark.db").exists());
    // A second demo replaces the first one's directory, and refuses a directory it did not make.
    let again = touchmark(work.path())
        .args(["demo", "--exit", "--json"])
        .output()
        .unwrap();
    assert!(again.status.success());
    let foreign = work.path().join("mine");
    std::fs::create_dir(&foreign).unwrap();
    std::fs::write(foreign.join("precious.txt"), "keep").unwrap();
    let refused = touchmark(work.path())
        .args(["demo", "--exit", "--data"])
        .arg(&foreign)
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(
        foreign.join("precious.txt").exists(),
        "the demo never deletes what it did not create"
    );
}

pub(crate) fn enroll_with_cli(
    work: &std::path::Path,
    served: &Served,
    data: &std::path::Path,
    token: &str,
    station: &str,
) -> std::path::PathBuf {
    let api = |cmd: &mut Command| {
        cmd.args(["--server", &served.url, "--token", token, "--data"])
            .arg(data);
    };
    let mut create = touchmark(work);
    create
        .args([
            "station",
            "create",
            "--factory",
            "cm",
            "--id",
            station,
            "--enrollment-token-file",
        ])
        .arg(work.join(format!("{station}.token")));
    api(&mut create);
    assert!(create.output().unwrap().status.success());
    let dir = work.join(station);
    let out = touchmark(work)
        .args(["station", "enroll", "--server", &served.url, "--token-file"])
        .arg(work.join(format!("{station}.token")))
        .arg("--ca")
        .arg(data.join("certs/infra-root-ca.pem"))
        .arg("--dir")
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    dir
}

#[test]
fn two_station_run_processes_share_one_order_and_its_quota() {
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    let token = kit::init(&data);
    let served = Served::start(&data);
    let run = |args: &[&str]| {
        let out = touchmark(work.path())
            .args(args)
            .args(["--server", &served.url, "--token", &token, "--data"])
            .arg(&data)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&[
        "product", "create", "--id", "p", "--name", "P", "--org", "O", "--cn", "C",
    ]);
    run(&["factory", "create", "--id", "cm", "--name", "CM"]);
    run(&[
        "order",
        "create",
        "--id",
        "PO-SIM",
        "--product",
        "p",
        "--factory",
        "cm",
        "--quota",
        "150",
        "--open",
    ]);
    let a = enroll_with_cli(work.path(), &served, &data, &token, "line-a");
    let b = enroll_with_cli(work.path(), &served, &data, &token, "line-b");
    let spawn = |dir: &std::path::Path, first: &str| {
        touchmark(work.path())
            .args([
                "station",
                "run",
                "--order",
                "PO-SIM",
                "--units",
                "100",
                "--concurrency",
                "6",
                "--fail-rate",
                "0.1",
                "--seed",
                "7",
            ])
            .args([
                "--clone-serials",
                "1",
                "--clone-keys",
                "1",
                "--first",
                first,
                "--json",
                "--dir",
            ])
            .arg(dir)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (pa, pb) = (spawn(&a, "1"), spawn(&b, "1001"));
    let mut issued = 0;
    let mut failed = 0;
    let mut beyond = 0;
    for p in [pa, pb] {
        let out = p.wait_with_output().unwrap();
        assert!(out.status.success());
        let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(s["sent"], 102, "{s:#}");
        assert_eq!(s["errors"].as_object().unwrap().len(), 0, "{s:#}");
        assert_eq!(s["clones"]["clone_serial"]["serial_conflict"], 1, "{s:#}");
        assert_eq!(s["clones"]["clone_key"]["key_reused"], 1, "{s:#}");
        issued += s["issued"].as_u64().unwrap();
        failed += s["refused"]["test_failed"].as_u64().unwrap_or(0);
        beyond += s["refused"]["quota_exhausted"].as_u64().unwrap_or(0);
    }
    assert_eq!(
        issued, 150,
        "two processes together issue exactly the quota"
    );
    assert_eq!(
        issued + failed + beyond,
        200,
        "every regular unit is issued, failed or beyond quota"
    );
    let admin = kit::admin(&served.url, &data, &token);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let detail = runtime.block_on(admin.order("PO-SIM")).unwrap();
    assert_eq!(
        (
            detail.order.issued,
            detail.certificates,
            detail.issued_events
        ),
        (150, 150, 150)
    );
    assert_eq!(detail.failed_tests, failed);
}
