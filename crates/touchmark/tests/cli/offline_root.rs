//! An installation whose device root stays offline (`init --root-cert`), with openssl playing
//! the root in its safe: no root key is made; a product waits for its CA certificate, and no
//! order may name it until then; `ca csr` gives the request its key signed (in files or a
//! SoftHSM2 token), openssl signs it, and `ca install` checks what comes back (its key, its
//! profile, its chain to the device root) before it stores it, refusing each bad certificate
//! with its code and changing nothing. A unit issued under that CA verifies with openssl
//! against the offline root alone, and the auditor sees the `ca.installed` over the product's
//! key.

use std::path::Path;
use std::process::Command;

use touchmark_core::api::{CreateFactory, CreateOrder, CreateProduct};
use touchmark_testenv::softhsm::{self, Token};

use crate::kit::{self, Keys, Served, Unit};

/// The openssl configuration of the offline root: its name, its own extensions, and those it
/// puts in a product's issuing CA (and, for the refusals, in a certificate fit for no CA).
const ROOT_CNF: &str = "[req]
distinguished_name = dn
prompt = no
[dn]
O = Acme
CN = Acme Offline Device Root
[root]
basicConstraints = critical, CA:TRUE, pathlen:1
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[issuing]
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[leaf]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
";

fn openssl(dir: &Path, args: &[&str]) {
    let openssl = touchmark_testenv::tool(&touchmark_testenv::OPENSSL);
    let (ok, text) = touchmark_testenv::run(&openssl, dir, args);
    assert!(ok, "openssl {args:?}: {text}");
}

/// A self-signed root `name`.pem with its key `name`.key, as an offline root's ceremony makes.
fn make_root(dir: &Path, name: &str) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.pem"),
            "-days",
            "3650",
            "-config",
            "root.cnf",
            "-extensions",
            "root",
        ],
    );
}

/// The root `root` signs the request `csr` into `out` with the extensions of section `ext`.
fn sign(dir: &Path, root: &str, csr: &str, ext: &str, out: &str) {
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            csr,
            "-CA",
            &format!("{root}.pem"),
            "-CAkey",
            &format!("{root}.key"),
            "-set_serial",
            "7",
            "-days",
            "3650",
            "-extfile",
            "root.cnf",
            "-extensions",
            ext,
            "-out",
            out,
        ],
    );
}

/// `touchmark ca ARGS` against the server, as the admin.
fn ca(url: &str, dir: &Path, token: &str, args: &[&str]) -> std::process::Output {
    Command::new(kit::bin())
        .arg("ca")
        .args(args)
        .args(["--server", url, "--token", token, "--ca"])
        .arg(dir.join("certs/infra-root-ca.pem"))
        .output()
        .unwrap()
}

async fn offline_root_ceremony(keys: Keys<'_>) {
    let (tmp, dir) = kit::tempdir();
    let files = tmp.path();
    std::fs::write(files.join("root.cnf"), ROOT_CNF).unwrap();
    make_root(files, "root");
    make_root(files, "other-root");

    let mut command = Command::new(kit::bin());
    command
        .args(["init", "--json", "--data"])
        .arg(&dir)
        .arg("--root-cert")
        .arg(files.join("root.pem"));
    keys.apply(&mut command);
    if let Keys::Token(token) = keys {
        command
            .arg("--pkcs11-module")
            .arg(softhsm::module())
            .args(["--pkcs11-token", softhsm::LABEL])
            .arg("--pkcs11-pin-file")
            .arg(token.pin_file());
    }
    let out = command.output().unwrap();
    kit::assert_success(&out, "init --root-cert");
    let init: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let token = init["admin_token"].as_str().unwrap().to_owned();
    assert_eq!(
        std::fs::read_to_string(dir.join("certs/device-root-ca.pem")).unwrap(),
        std::fs::read_to_string(files.join("root.pem")).unwrap(),
        "the device root is the offline root's certificate, as given"
    );

    // No device root key anywhere in the installation.
    let mut list = Command::new(kit::bin());
    list.args(["keys", "list", "--json", "--data"]).arg(&dir);
    keys.apply(&mut list);
    let out = list.output().unwrap();
    kit::assert_success(&out, "keys list");
    let listed: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&str> = listed.iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "infra-root-ca",
            "infra-server-tls",
            "infra-station-ca",
            "log"
        ]
    );

    let served = Served::start_keys(&dir, keys);
    let url = served.url.clone();
    let admin = kit::admin(&url, &dir, &token);
    let product = admin
        .create_product(&CreateProduct {
            id: Some("sensor".into()),
            name: "Sensor".into(),
            organization: "Acme".into(),
            common_name: "Acme Sensor".into(),
            hw_type_oid: Some("1.3.6.1.4.1.99999.1".into()),
            crl_url: None,
            ocsp_url: None,
            cert_not_after: None,
            attestation_roots_pem: None,
        })
        .await
        .unwrap();
    assert_eq!(product.issuing_ca_pem, "", "no CA until the root signs one");
    admin
        .create_factory(&CreateFactory {
            id: Some("cm".into()),
            name: "CM".into(),
        })
        .await
        .unwrap();
    let order = CreateOrder {
        id: Some("PO-OFF".into()),
        product: "sensor".into(),
        factory: "cm".into(),
        quota: 5,
        serial_range: None,
        serial_pattern: None,
        not_before: None,
        not_after: None,
        open: true,
        release: None,
    };
    match admin.create_order(&order).await {
        Err(touchmark_client::ClientError::Api { body, .. }) => {
            assert_eq!(body.code, "conflict", "{}", body.message);
            assert!(body.message.contains("ca csr"), "{}", body.message);
        }
        other => panic!("an order for a product without its CA: {other:?}"),
    }

    // The request, signed by the product's key where the installation keeps it.
    let csr_path = files.join("sensor.csr");
    let out = ca(
        &url,
        &dir,
        &token,
        &[
            "csr",
            "--product",
            "sensor",
            "--out",
            csr_path.to_str().unwrap(),
        ],
    );
    kit::assert_success(&out, "ca csr");
    openssl(files, &["req", "-in", "sensor.csr", "-noout", "-verify"]);
    let listed = {
        let out = list.output().unwrap();
        kit::assert_success(&out, "keys list");
        serde_json::from_slice::<Vec<serde_json::Value>>(&out.stdout).unwrap()
    };
    let product_key = listed
        .iter()
        .find(|r| r["name"] == "product-sensor")
        .unwrap_or_else(|| panic!("{listed:?}"));
    openssl(
        files,
        &[
            "req",
            "-in",
            "sensor.csr",
            "-pubkey",
            "-noout",
            "-out",
            "csr-key.pem",
        ],
    );
    openssl(
        files,
        &[
            "pkey",
            "-pubin",
            "-in",
            "csr-key.pem",
            "-outform",
            "DER",
            "-out",
            "csr-key.der",
        ],
    );
    let spki = std::fs::read(files.join("csr-key.der")).unwrap();
    assert_eq!(
        product_key["public_key_sha256"].as_str().unwrap(),
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&spki)),
        "the request is for the product's key"
    );

    // Bad certificates are refused with their codes, and change nothing.
    openssl(
        files,
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "stray.key",
            "-subj",
            "/O=Acme/CN=Sensor Issuing CA",
            "-out",
            "stray.csr",
        ],
    );
    sign(files, "root", "stray.csr", "issuing", "wrong-key.pem");
    sign(
        files,
        "other-root",
        "sensor.csr",
        "issuing",
        "wrong-root.pem",
    );
    sign(files, "root", "sensor.csr", "leaf", "not-a-ca.pem");
    std::fs::write(files.join("junk.pem"), "not a certificate").unwrap();
    for (file, code) in [
        ("wrong-key.pem", "ca_key_mismatch"),
        ("wrong-root.pem", "ca_chain_invalid"),
        ("not-a-ca.pem", "ca_profile_invalid"),
        ("junk.pem", "ca_certificate_invalid"),
    ] {
        let path = files.join(file);
        let out = ca(
            &url,
            &dir,
            &token,
            &[
                "install",
                "--product",
                "sensor",
                "--cert",
                path.to_str().unwrap(),
            ],
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{file} was installed");
        assert!(stderr.contains(code), "{file}: {stderr}");
    }
    // A chain with anything but the device root in it is refused too.
    sign(files, "root", "sensor.csr", "issuing", "sensor-ca.pem");
    let out = ca(
        &url,
        &dir,
        &token,
        &[
            "install",
            "--product",
            "sensor",
            "--cert",
            files.join("sensor-ca.pem").to_str().unwrap(),
            "--chain",
            files.join("other-root.pem").to_str().unwrap(),
        ],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("ca_chain_invalid"));
    assert_eq!(admin.product("sensor").await.unwrap().issuing_ca_pem, "");
    let events = kit::all_events(&admin).await;
    assert!(!events.iter().any(|e| e.kind == "ca.installed"));

    // The certificate the root signed is installed, once.
    let out = ca(
        &url,
        &dir,
        &token,
        &[
            "install",
            "--product",
            "sensor",
            "--cert",
            files.join("sensor-ca.pem").to_str().unwrap(),
            "--chain",
            files.join("root.pem").to_str().unwrap(),
        ],
    );
    kit::assert_success(&out, "ca install");
    let installed = admin.product("sensor").await.unwrap().issuing_ca_pem;
    let signed = touchmark_pki::Certificate::from_pem(
        &std::fs::read_to_string(files.join("sensor-ca.pem")).unwrap(),
    )
    .unwrap();
    assert_eq!(installed, signed.pem());
    let out = ca(
        &url,
        &dir,
        &token,
        &[
            "install",
            "--product",
            "sensor",
            "--cert",
            files.join("sensor-ca.pem").to_str().unwrap(),
        ],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("conflict"));
    let events = kit::all_events(&admin).await;
    assert_eq!(
        events.iter().filter(|e| e.kind == "ca.installed").count(),
        1
    );

    // It issues: a unit's chain verifies against the offline root alone.
    admin.create_order(&order).await.unwrap();
    let identity = kit::enroll(&admin, &url, &dir, "cm", "line-1").await;
    let station = kit::station_client(&url, &dir, &identity);
    let done = station
        .provision("PO-OFF", &Unit::new("SN-1".into()).request())
        .await
        .unwrap();
    std::fs::write(files.join("unit.pem"), &done.certificate_pem).unwrap();
    let openssl_bin = touchmark_testenv::tool(&touchmark_testenv::OPENSSL);
    let (ok, text) = touchmark_testenv::run(
        &openssl_bin,
        files,
        &[
            "verify",
            "-x509_strict",
            "-CAfile",
            "root.pem",
            "-untrusted",
            "sensor-ca.pem",
            "unit.pem",
        ],
    );
    assert!(ok && text.contains("unit.pem: OK"), "{text}");
    assert!(done.chain_pem.contains(signed.pem().trim()));

    // The auditor replays it: the product's key, and the entry that put the CA over it, once
    // a checkpoint covers the unit (and so the installation before it).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while admin.unit_receipt("SN-1").await.is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "no checkpoint covered the unit"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let audited = kit::audit(&url, &dir, &files.join("audit.state"));
    kit::assert_success(&audited, "audit verify");
    let text = String::from_utf8_lossy(&audited.stdout);
    assert!(text.contains("violations: none"), "{text}");
    let line = text
        .lines()
        .find(|l| l.starts_with("product-sensor "))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(line.contains("entry "), "{line}");
    assert!(
        !text.lines().any(|l| l.starts_with("root-ca ")),
        "no root key is made: {text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(not(tm_openssl), ignore = "needs openssl: apt-get install openssl")]
async fn an_offline_root_signs_a_product_ca_whose_key_is_in_files() {
    offline_root_ceremony(Keys::Files).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(
    not(all(tm_softhsm, tm_openssl)),
    ignore = "needs SoftHSM2, OpenSC and openssl: apt-get install softhsm2 opensc openssl"
)]
async fn an_offline_root_signs_a_product_ca_whose_key_is_in_a_token() {
    let hsm = Token::create();
    offline_root_ceremony(Keys::Token(&hsm)).await;
}
