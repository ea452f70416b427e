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
    assert_eq!(summary["firmware_opened"], 500, "{summary:#}");
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

/// A served installation with product `p` and factory `cm`, and its admin's command line.
struct Admin {
    work: std::path::PathBuf,
    data: std::path::PathBuf,
    token: String,
    served: Served,
}

impl Admin {
    fn start(work: &std::path::Path) -> Self {
        let data = work.join("data");
        let token = kit::init(&data);
        let served = Served::start(&data);
        let admin = Self {
            work: work.to_owned(),
            data,
            token,
            served,
        };
        admin.run(&[
            "product", "create", "--id", "p", "--name", "P", "--org", "O", "--cn", "C",
        ]);
        admin.run(&["factory", "create", "--id", "cm", "--name", "CM"]);
        admin
    }

    /// Runs an admin command against the server; it must succeed. Returns its output.
    fn run(&self, args: &[&str]) -> Vec<u8> {
        let out = touchmark(&self.work)
            .args(args)
            .args([
                "--server",
                &self.served.url,
                "--token",
                &self.token,
                "--data",
            ])
            .arg(&self.data)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }
}

#[test]
fn two_station_run_processes_share_one_order_and_its_quota() {
    let work = tempfile::tempdir().unwrap();
    let admin = Admin::start(work.path());
    let (data, token, served) = (&admin.data, &admin.token, &admin.served);
    let run = |args: &[&str]| {
        admin.run(args);
    };
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
    let a = enroll_with_cli(work.path(), served, data, token, "line-a");
    let b = enroll_with_cli(work.path(), served, data, token, "line-b");
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
    let admin = kit::admin(&served.url, data, token);
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

/// The firmware walk-through with the real imgtool: a release key made by the server, a
/// signing key made by imgtool and registered, an image signed and encrypted by imgtool and
/// uploaded, an order that delivers it; `station run` provisions units that each fetch their
/// own image and open it with their own key, and the log names the release for each.
#[test]
#[cfg_attr(
    not(tm_imgtool),
    ignore = "needs imgtool 2.5.0 (pip install imgtool==2.5.0), or set TOUCHMARK_TEST_IMGTOOL"
)]
fn station_run_delivers_each_unit_firmware_only_it_opens() {
    let work = tempfile::tempdir().unwrap();
    let admin = Admin::start(work.path());
    let (data, token, served) = (&admin.data, &admin.token, &admin.served);
    let run = |args: &[&str]| admin.run(args);
    let imgtool = |args: &[&str]| {
        let out = Command::new(touchmark_testenv::tool(&touchmark_testenv::IMGTOOL))
            .current_dir(work.path())
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "imgtool {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    };
    run(&[
        "release",
        "key",
        "create",
        "--product",
        "p",
        "--type",
        "x25519",
        "--out",
        "release.pub.pem",
    ]);
    imgtool(&["keygen", "-k", "signing.pem", "-t", "ed25519"]);
    let public = imgtool(&["getpub", "-k", "signing.pem", "-e", "pem"]);
    std::fs::write(work.path().join("signing.pub.pem"), public).unwrap();
    run(&[
        "product",
        "firmware-key",
        "add",
        "--product",
        "p",
        "--key",
        "signing.pub.pem",
    ]);
    let payload: Vec<u8> = (0..20_000u32).map(|i| (i * 13 % 251) as u8).collect();
    std::fs::write(work.path().join("app.bin"), payload).unwrap();
    imgtool(&[
        "sign",
        "--key",
        "signing.pem",
        "--header-size",
        "0x200",
        "--pad-header",
        "--slot-size",
        "0x40000",
        "--version",
        "1.4.0",
        "--encrypt",
        "release.pub.pem",
        "app.bin",
        "app-enc.bin",
    ]);
    run(&[
        "release",
        "upload",
        "--product",
        "p",
        "--version",
        "1.4.0",
        "--image",
        "app-enc.bin",
    ]);
    run(&[
        "order",
        "create",
        "--id",
        "PO-FW",
        "--product",
        "p",
        "--factory",
        "cm",
        "--quota",
        "20",
        "--release",
        "1.4.0",
        "--open",
    ]);
    let line = enroll_with_cli(work.path(), served, data, token, "line-fw");
    let out = touchmark(work.path())
        .args([
            "station",
            "run",
            "--order",
            "PO-FW",
            "--units",
            "24",
            "--concurrency",
            "4",
            "--fail-rate",
            "0",
            "--seed",
            "5",
            "--json",
            "--dir",
        ])
        .arg(&line)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(s["issued"], 20, "{s:#}");
    assert_eq!(s["firmware_opened"], 20, "{s:#}");
    assert_eq!(s["refused"]["quota_exhausted"], 4, "{s:#}");
    assert_eq!(s["errors"].as_object().unwrap().len(), 0, "{s:#}");

    // Each issuance in the log names the release, and its unit's image is another one.
    let admin = kit::admin(&served.url, data, token);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let events = runtime.block_on(kit::all_events(&admin));
    let issued: Vec<serde_json::Value> = events
        .iter()
        .filter(|e| e.kind == "unit.issued")
        .map(|e| serde_json::from_str(&e.canonical).unwrap())
        .collect();
    assert_eq!(issued.len(), 20);
    let release = runtime.block_on(admin.releases("p")).unwrap().remove(0);
    let images: std::collections::HashSet<&str> = issued
        .iter()
        .map(|e| {
            assert_eq!(e["release"], release.id.as_str());
            e["firmware_sha256"].as_str().unwrap()
        })
        .collect();
    assert_eq!(images.len(), 20, "every unit's image is its own");
    assert!(!images.contains(release.image_sha256.as_str()));
}
