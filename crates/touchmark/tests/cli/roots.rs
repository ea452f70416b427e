//! Two roots (issue 11, finding 6): a fresh installation has a device root over the products'
//! CAs and an infrastructure root over the station CA and the server. A data directory made
//! before the split (one root over everything) keeps serving, with a warning, until `touchmark
//! split-roots` gives stations and the server a root of their own; the device root, the
//! product CAs, the devices and the log stay as they were.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use touchmark_client::{Client, ClientConfig, ErrorCode, Identity};
use touchmark_core::api::CreateStation;
use touchmark_pki::{Certificate, KeyAlgorithm, SoftwareSigner, build_csr, certs_from_pem};

use crate::kit;

const ORDER: &str = "PO-ROOTS";

fn touchmark() -> Command {
    let mut command = Command::new(kit::bin());
    command
        .env("TOUCHMARK_KEY_PASSPHRASE", kit::PASSPHRASE)
        .env_remove("TOUCHMARK_CA")
        .env_remove("TOUCHMARK_TOKEN")
        .env_remove("TOUCHMARK_TOKEN_FILE");
    command
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn cert(path: &Path) -> Certificate {
    Certificate::from_pem(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Runs `touchmark serve` on `data`, which must refuse to start, and returns what it said. A
/// server that starts instead is stopped, and fails the test.
fn serve_refused(data: &Path) -> String {
    let mut child = touchmark()
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(data)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > std::time::Duration::from_secs(30) {
            child.kill().unwrap();
            let out = child.wait_with_output().unwrap();
            panic!("serve started: {}", text(&out));
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success(), "{}", text(&out));
    text(&out)
}

/// `touchmark order show ORDER`, trusting the data directory's default root for the server.
fn order_show(url: &str, data: &Path, token: &str) -> Output {
    touchmark()
        .args([
            "order", "show", ORDER, "--server", url, "--token", token, "--data",
        ])
        .arg(data)
        .output()
        .unwrap()
}

/// Creates station `id` of factory `cm` and enrolls it with `touchmark station enroll` into
/// `station`, trusting `ca` for the server.
async fn enroll(admin: &Client, url: &str, id: &str, ca: &Path, station: &Path) -> Output {
    let created = admin
        .create_station(&CreateStation {
            id: Some(id.into()),
            factory: "cm".into(),
            name: None,
            enrollment_ttl_minutes: None,
        })
        .await
        .unwrap();
    touchmark()
        .args(["station", "enroll", "--server", url, "--token"])
        .arg(&created.enrollment_token)
        .arg("--ca")
        .arg(ca)
        .arg("--dir")
        .arg(station)
        .output()
        .unwrap()
}

/// `touchmark station provision` of unit `serial` from the station in `station`, writing the
/// answer into `work/serial/`.
/// `station provision` from the station directory `station`, at `server` (`--server`: a
/// restarted server listens on another port than the one the station enrolled with).
fn provision(station: &Path, server: &str, work: &Path, serial: &str) -> (Output, PathBuf) {
    let key = SoftwareSigner::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let csr = work.join(format!("{serial}.csr"));
    std::fs::write(
        &csr,
        touchmark_pki::pem::encode("CERTIFICATE REQUEST", &build_csr(&key, serial).unwrap()),
    )
    .unwrap();
    let test = work.join("test.json");
    std::fs::write(&test, kit::passing_test(serial).to_string()).unwrap();
    let out_dir = work.join(serial);
    let out = touchmark()
        .args(["station", "provision", "--order", ORDER, "--serial", serial])
        .arg("--csr")
        .arg(&csr)
        .arg("--test")
        .arg(&test)
        .arg("--out")
        .arg(&out_dir)
        .arg("--dir")
        .arg(station)
        .args(["--server", server])
        .output()
        .unwrap();
    (out, out_dir)
}

#[test]
fn a_fresh_installation_has_a_root_for_devices_and_one_for_the_server() {
    let (_tmp, data) = kit::tempdir();
    let out = touchmark()
        .args(["init", "--json", "--data"])
        .arg(&data)
        .output()
        .unwrap();
    kit::assert_success(&out, "init");
    let init: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let certs = data.join("certs");
    assert_eq!(
        init["device_root_ca"].as_str().map(PathBuf::from),
        Some(certs.join("device-root-ca.pem"))
    );
    assert_eq!(
        init["infra_root_ca"].as_str().map(PathBuf::from),
        Some(certs.join("infra-root-ca.pem"))
    );
    assert!(!certs.join("root-ca.pem").exists());

    let device_root = cert(&certs.join("device-root-ca.pem"));
    let infra_root = cert(&certs.join("infra-root-ca.pem"));
    let station_ca = cert(&certs.join("station-ca.pem"));
    let server = cert(&certs.join("server.pem"));
    assert_ne!(device_root.spki_der(), infra_root.spki_der());
    assert!(device_root.is_issued_by(&device_root));
    assert!(infra_root.is_issued_by(&infra_root));
    for (what, issued) in [("the station CA", &station_ca), ("the server", &server)] {
        assert!(
            issued.is_issued_by(&infra_root),
            "{what} is not under the infrastructure root"
        );
        assert!(
            !issued.is_issued_by(&device_root),
            "{what} is under the device root"
        );
    }
    assert_eq!(
        server.server_hosts().unwrap(),
        ["localhost", "127.0.0.1", "::1"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_root_directory_serves_with_a_warning_until_split_roots() {
    let (tmp, data) = kit::tempdir();
    let work = tmp.path();
    let token = kit::init(&data);
    kit::make_single_root(&data);
    let certs = data.join("certs");
    let single_root = std::fs::read(certs.join("root-ca.pem")).unwrap();
    let verifier = std::fs::read(data.join("log-verifier.txt")).unwrap();
    // What a split that stopped before its swap leaves: never served, and replaced.
    std::fs::create_dir(data.join("certs.split")).unwrap();
    std::fs::write(data.join("certs.split/server.pem"), "not a certificate").unwrap();

    // It serves, and says what is wrong and what fixes it.
    let log = work.join("serve-single.log");
    let served = kit::Served::start_logged(&data, &log);
    let warning = std::fs::read_to_string(&log).unwrap();
    assert!(
        warning.contains("warning: one root CA") && warning.contains("touchmark split-roots"),
        "{warning}"
    );
    let admin = kit::admin(&served.url, &data, &token);
    let product = kit::setup_order(&admin, ORDER, 10).await;
    let old_station = work.join("old-station");
    let out = enroll(
        &admin,
        &served.url,
        "line-1",
        &certs.join("root-ca.pem"),
        &old_station,
    )
    .await;
    kit::assert_success(&out, "enroll with the one root");
    let (out, first) = provision(&old_station, &served.url, work, "SN-000001");
    kit::assert_success(&out, "provision with the one root");
    assert_eq!(
        std::fs::read(first.join("root-ca.pem")).unwrap(),
        single_root
    );
    // The client's default root for the server is the one root.
    kit::assert_success(&order_show(&served.url, &data, &token), "order show");
    drop(served);

    let out = kit::split_roots(&data);
    kit::assert_success(&out, "split-roots");
    let said = text(&out);
    assert!(
        said.contains("infra-root-ca.pem") && said.contains("Enroll every station again"),
        "{said}"
    );
    assert!(!certs.join("root-ca.pem").exists());
    assert!(!data.join("certs.split").exists() && !data.join("certs.single").exists());
    assert_eq!(
        std::fs::read(certs.join("device-root-ca.pem")).unwrap(),
        single_root,
        "the one root stays, as the device root"
    );
    assert_eq!(
        std::fs::read(data.join("log-verifier.txt")).unwrap(),
        verifier
    );
    let device_root = cert(&certs.join("device-root-ca.pem"));
    let infra_root = cert(&certs.join("infra-root-ca.pem"));
    let station_ca = cert(&certs.join("station-ca.pem"));
    let server = cert(&certs.join("server.pem"));
    assert!(station_ca.is_issued_by(&infra_root) && server.is_issued_by(&infra_root));
    assert!(!station_ca.is_issued_by(&device_root) && !server.is_issued_by(&device_root));
    assert_eq!(
        server.server_hosts().unwrap(),
        ["localhost", "127.0.0.1", "::1"],
        "the new server certificate covers the old one's hosts"
    );
    let again = kit::split_roots(&data);
    assert!(!again.status.success());
    assert!(
        text(&again).contains("nothing to split"),
        "{}",
        text(&again)
    );

    let log = work.join("serve-split.log");
    let served = kit::Served::start_logged(&data, &log);
    let said = std::fs::read_to_string(&log).unwrap();
    assert!(!said.contains("warning"), "{said}");
    // The client's default root for the server is now the infrastructure root.
    let shown = order_show(&served.url, &data, &token);
    kit::assert_success(&shown, "order show after the split");
    assert!(
        text(&shown).contains("issued   1 of 10"),
        "{}",
        text(&shown)
    );

    // The station enrolled before the split no longer trusts the server...
    let (out, _) = provision(&old_station, &served.url, work, "SN-000002");
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(text(&out).contains("server_untrusted"), "{}", text(&out));
    // ...and the server no longer accepts its certificate, whatever root the station trusts.
    let read = |name: &str| std::fs::read_to_string(old_station.join(name)).unwrap();
    let mut config = ClientConfig::new(&served.url, kit::root_ca(&data));
    config.identity = Some(Identity::new(read("station.pem"), read("station.key")));
    let refused = Client::new(config)
        .unwrap()
        .provision(ORDER, &kit::Unit::new("SN-000002".into()).request())
        .await
        .unwrap_err();
    assert_eq!(
        (refused.status(), refused.code()),
        (Some(401), Some(ErrorCode::StationNotAuthorized)),
        "{refused}"
    );

    // A station enrolled again, with the infrastructure root, provisions under the same
    // product CA and device root.
    let new_station = work.join("new-station");
    let admin = kit::admin(&served.url, &data, &token);
    let out = enroll(
        &admin,
        &served.url,
        "line-2",
        &certs.join("infra-root-ca.pem"),
        &new_station,
    )
    .await;
    kit::assert_success(&out, "enroll after the split");
    let (out, second) = provision(&new_station, &served.url, work, "SN-000002");
    kit::assert_success(&out, "provision after the split");
    assert_eq!(
        std::fs::read(second.join("root-ca.pem")).unwrap(),
        single_root
    );
    let issuing = |dir: &Path| {
        certs_from_pem(&std::fs::read_to_string(dir.join("chain.pem")).unwrap()).unwrap()[1].clone()
    };
    assert_eq!(issuing(&first), issuing(&second));
    assert_eq!(issuing(&second).pem().trim(), product.issuing_ca_pem.trim());
    let station_cert = cert(&new_station.join("station.pem"));
    assert!(station_cert.is_issued_by(&station_ca));

    // The log, its key and its audit are untouched.
    let audit = kit::audit(&served.url, &data, &work.join("audit.state"));
    kit::assert_success(&audit, "audit verify after the split");
}

#[test]
fn an_interrupted_split_is_refused_by_serve_and_finished_by_split_roots() {
    let (_tmp, data) = kit::tempdir();
    kit::init(&data);
    kit::make_single_root(&data);
    let certs = data.join("certs");
    let before: Vec<(std::ffi::OsString, Vec<u8>)> = std::fs::read_dir(&certs)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (e.file_name(), std::fs::read(e.path()).unwrap())
        })
        .collect();
    kit::assert_success(&kit::split_roots(&data), "split-roots");
    // Put the directory as a split that stopped between its two renames leaves it: the old
    // certs/ moved aside, the new one not yet in place.
    std::fs::rename(&certs, data.join("certs.split")).unwrap();
    std::fs::create_dir(data.join("certs.single")).unwrap();
    for (name, bytes) in &before {
        std::fs::write(data.join("certs.single").join(name), bytes).unwrap();
    }

    let said = serve_refused(&data);
    assert!(
        said.contains("interrupted") && said.contains("split-roots"),
        "{said}"
    );

    let out = kit::split_roots(&data);
    kit::assert_success(&out, "split-roots, again");
    assert!(
        text(&out).contains("Finished the interrupted split"),
        "{}",
        text(&out)
    );
    assert!(certs.join("infra-root-ca.pem").exists());
    assert!(!data.join("certs.split").exists() && !data.join("certs.single").exists());
    let served = kit::Served::start(&data);
    drop(served);
}

#[test]
fn serve_refuses_a_station_ca_that_the_device_root_issued() {
    use time::{Duration, OffsetDateTime};
    use touchmark_pki::{
        CaIssuer, KeyStore, Passphrase, SerialNumber, Subject, create_intermediate_ca,
    };

    let (_tmp, data) = kit::tempdir();
    kit::init(&data);
    // The station CA's own key, certified by the device root instead of the infrastructure
    // root: a relying party of the devices would accept its stations again.
    let keys = KeyStore::open(
        &data.join("keys"),
        &Passphrase::new(kit::PASSPHRASE.into()).unwrap(),
    )
    .unwrap();
    let certs = data.join("certs");
    let device_root = CaIssuer::new(
        cert(&certs.join("device-root-ca.pem")),
        keys.load("root-ca").unwrap(),
    )
    .unwrap();
    let station_key = keys.load("infra-station-ca").unwrap();
    let now = OffsetDateTime::now_utc();
    let crossed = create_intermediate_ca(
        &device_root,
        station_key.public_key_spki(),
        &Subject {
            organization: "Touchmark".into(),
            common_name: "Touchmark Station CA".into(),
        },
        now - Duration::hours(1),
        now + Duration::days(365),
        SerialNumber::random(&mut rand::rng()),
    )
    .unwrap();
    std::fs::write(certs.join("station-ca.pem"), crossed.pem()).unwrap();

    let said = serve_refused(&data);
    assert!(
        said.contains("station-ca.pem")
            && said.contains("not issued by the root that anchors the server"),
        "{said}"
    );
}
