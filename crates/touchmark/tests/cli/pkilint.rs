//! pkilint (issue 11, finding 9): every kind of certificate Touchmark makes passes pkilint's
//! RFC 5280 linters, `lint_pkix_cert` for each certificate and
//! `lint_pkix_signer_signee_cert_chain` for each issuer and subject, with no finding of
//! severity WARNING or above.
//!
//! The certificates are those of a fresh `touchmark init` (the device root, the infrastructure
//! root, the station CA, the server's TLS certificate), a product's issuing CA, a station
//! enrolled through a real `touchmark serve`, and a device it provisioned, its product with
//! CRL and OCSP URLs so that every optional extension is there; and a device of a product
//! without URLs of its own, which names its order's CRL partition and the OCSP responder under
//! the installation's `public_url`.
//!
//! One finding is left, and asserted to be the only one: the server certificate's dNSName
//! `localhost`, which pkilint calls invalid domain name syntax because its name check (the
//! `validators` package) wants a top-level domain. RFC 5280 §4.2.1.6 asks for RFC 1034's
//! preferred name syntax, which `localhost` has; the default certificate names it because
//! clients reach a local server by that name. A server certificate for real host names (`init
//! --host`) lints clean.
//!
//! Needs pkilint (`pip install pkilint`: `lint_pkix_cert` and
//! `lint_pkix_signer_signee_cert_chain`, or `TOUCHMARK_TEST_PKILINT` and
//! `TOUCHMARK_TEST_PKILINT_CHAIN`); without it the test is reported as ignored, with that
//! reason, unless `CI=true`, where it fails.

use std::path::{Path, PathBuf};
use std::process::Command;

use touchmark_core::api::{CreateFactory, CreateProduct, ProvisionRequest};
use touchmark_pki::{KeyAlgorithm, SoftwareSigner, build_csr, certs_from_pem};

use crate::kit;

/// A finding of WARNING or above: its severity, code and message.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Finding {
    severity: String,
    code: String,
    message: String,
}

/// Runs a pkilint program with `args` (`lint -s WARNING -f JSON` first) and returns its
/// findings.
fn lint(program: &Path, args: &[&Path]) -> Vec<Finding> {
    let out = Command::new(program)
        .args(["lint", "-s", "WARNING", "-f", "JSON"])
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "{} gave no JSON report ({e}): {stdout}{}",
            program.display(),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let mut findings = Vec::new();
    for result in report["results"].as_array().unwrap() {
        for finding in result["finding_descriptions"].as_array().unwrap() {
            findings.push(Finding {
                severity: finding["severity"].as_str().unwrap().to_owned(),
                code: finding["code"].as_str().unwrap().to_owned(),
                message: finding["message"].as_str().unwrap_or_default().to_owned(),
            });
        }
    }
    findings
}

/// Writes `pem` (exactly one certificate) to `dir/name` and returns the path.
fn write(dir: &Path, name: &str, pem: &str) -> PathBuf {
    assert_eq!(certs_from_pem(pem).unwrap().len(), 1, "{name}");
    let path = dir.join(name);
    std::fs::write(&path, pem).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(tm_pkilint),
    ignore = "needs pkilint: `pip install pkilint`, or set TOUCHMARK_TEST_PKILINT and TOUCHMARK_TEST_PKILINT_CHAIN"
)]
async fn every_certificate_kind_passes_pkilint() {
    let lint_cert = touchmark_testenv::tool(&touchmark_testenv::PKILINT);
    let lint_chain = touchmark_testenv::tool(&touchmark_testenv::PKILINT_CHAIN);
    let (tmp, data) = kit::tempdir();
    let files = tmp.path();
    let token = kit::init(&data);
    // A public URL (what `init --public-url` writes): a product without URLs of its own has its
    // devices name the order's CRL partition and the OCSP responder under it.
    let config = data.join("touchmark.toml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("public_url = \"https://pki.acme.example\"\n");
    std::fs::write(&config, text).unwrap();
    let served = kit::Served::start(&data);
    let admin = kit::admin(&served.url, &data, &token);
    let product = admin
        .create_product(&CreateProduct {
            id: Some("sensor".into()),
            name: "Sensor".into(),
            organization: "Acme".into(),
            common_name: "Acme Sensor".into(),
            hw_type_oid: Some("1.3.6.1.4.1.99999.1".into()),
            crl_url: Some("http://pki.acme.example/crl/sensor.crl".into()),
            ocsp_url: Some("http://pki.acme.example/ocsp".into()),
            cert_not_after: None,
            attestation_roots_pem: None,
        })
        .await
        .unwrap();
    admin
        .create_factory(&CreateFactory {
            id: Some("cm".into()),
            name: "CM".into(),
        })
        .await
        .unwrap();
    kit::open_order(&admin, "PO-LINT", 1).await;
    let identity = kit::enroll(&admin, &served.url, &data, "cm", "line-1").await;
    let station = kit::station_client(&served.url, &data, &identity);
    let key = SoftwareSigner::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let issued = station
        .provision(
            "PO-LINT",
            &ProvisionRequest {
                serial: "SN-000001".into(),
                csr: touchmark_pki::pem::encode(
                    "CERTIFICATE REQUEST",
                    &build_csr(&key, "SN-000001").unwrap(),
                ),
                test: kit::passing_test("SN-000001"),
                encryption_key: None,
                attestation: None,
            },
        )
        .await
        .unwrap();
    let meter = admin
        .create_product(&CreateProduct {
            id: Some("meter".into()),
            name: "Meter".into(),
            organization: "Acme".into(),
            common_name: "Acme Meter".into(),
            hw_type_oid: Some("1.3.6.1.4.1.99999.2".into()),
            crl_url: None,
            ocsp_url: None,
            cert_not_after: None,
            attestation_roots_pem: None,
        })
        .await
        .unwrap();
    admin
        .create_order(&touchmark_core::api::CreateOrder {
            id: Some("PO-METER".into()),
            product: "meter".into(),
            factory: "cm".into(),
            quota: 1,
            serial_range: None,
            serial_pattern: None,
            not_before: None,
            not_after: None,
            open: true,
            release: None,
        })
        .await
        .unwrap();
    let meter_key = SoftwareSigner::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let metered = station
        .provision(
            "PO-METER",
            &ProvisionRequest {
                serial: "MT-000001".into(),
                csr: touchmark_pki::pem::encode(
                    "CERTIFICATE REQUEST",
                    &build_csr(&meter_key, "MT-000001").unwrap(),
                ),
                test: kit::passing_test("MT-000001"),
                encryption_key: None,
                attestation: None,
            },
        )
        .await
        .unwrap();
    drop(served);
    let meter_der = &certs_from_pem(&metered.certificate_pem).unwrap()[0];
    let meter_text = String::from_utf8_lossy(meter_der.der()).into_owned();
    assert!(
        meter_text.contains("https://pki.acme.example/crl/meter/PO-METER")
            && meter_text.contains("https://pki.acme.example/ocsp"),
        "the device certificate names no URLs under the public URL"
    );
    let sensor_text =
        String::from_utf8_lossy(certs_from_pem(&issued.certificate_pem).unwrap()[0].der())
            .into_owned();
    assert!(
        sensor_text.contains("http://pki.acme.example/crl/sensor.crl")
            && !sensor_text.contains("https://pki.acme.example"),
        "a product's own URLs win over the public URL"
    );

    let certs = data.join("certs");
    let read = |name: &str| std::fs::read_to_string(certs.join(name)).unwrap();
    let device_root = write(files, "device-root.pem", &read("device-root-ca.pem"));
    let infra_root = write(files, "infra-root.pem", &read("infra-root-ca.pem"));
    let station_ca = write(files, "station-ca.pem", &read("station-ca.pem"));
    let server = write(files, "server.pem", &read("server.pem"));
    let product_ca = write(files, "product-ca.pem", &product.issuing_ca_pem);
    let station_cert = write(files, "station.pem", &identity.cert_chain_pem);
    let device = write(files, "device.pem", &issued.certificate_pem);
    let meter_ca = write(files, "meter-ca.pem", &meter.issuing_ca_pem);
    let meter_device = write(files, "meter-device.pem", &metered.certificate_pem);

    let mut problems = Vec::new();
    for (what, cert) in [
        ("the device root CA", &device_root),
        ("the infrastructure root CA", &infra_root),
        ("the station CA", &station_ca),
        ("the product's issuing CA", &product_ca),
        ("the station certificate", &station_cert),
        ("the device certificate", &device),
        (
            "a device certificate with URLs under the public URL",
            &meter_device,
        ),
    ] {
        let findings = lint(&lint_cert, &[cert]);
        if !findings.is_empty() {
            problems.push(format!("{what}: {findings:?}"));
        }
    }
    for (what, issuer, subject) in [
        ("device root → itself", &device_root, &device_root),
        ("device root → product CA", &device_root, &product_ca),
        ("product CA → device", &product_ca, &device),
        (
            "product CA → device with public URLs",
            &meter_ca,
            &meter_device,
        ),
        ("infrastructure root → itself", &infra_root, &infra_root),
        ("infrastructure root → station CA", &infra_root, &station_ca),
        ("station CA → station", &station_ca, &station_cert),
        ("infrastructure root → server", &infra_root, &server),
    ] {
        let findings = lint(&lint_chain, &[issuer, subject]);
        if !findings.is_empty() {
            problems.push(format!("{what}: {findings:?}"));
        }
    }
    assert!(
        problems.is_empty(),
        "pkilint findings:\n{}",
        problems.join("\n")
    );

    // The default server certificate: only `localhost`, as the module documentation says.
    assert_eq!(
        lint(&lint_cert, &[&server]),
        [Finding {
            severity: "ERROR".into(),
            code: "pkix.invalid_domain_name_syntax".into(),
            message: "Invalid domain name syntax: \"localhost\"".into(),
        }]
    );

    // A server certificate for real names is clean.
    let (_named_tmp, named) = kit::tempdir();
    let out = Command::new(kit::bin())
        .args([
            "init",
            "--host",
            "touchmark.example.com",
            "--host",
            "192.0.2.7",
        ])
        .args(["--host", "2001:db8::7", "--data"])
        .arg(&named)
        .env("TOUCHMARK_KEY_PASSPHRASE", kit::PASSPHRASE)
        .output()
        .unwrap();
    kit::assert_success(&out, "init with host names");
    let named_server = named.join("certs/server.pem");
    assert_eq!(lint(&lint_cert, &[&named_server]), []);
    assert_eq!(
        lint(
            &lint_chain,
            &[&named.join("certs/infra-root-ca.pem"), &named_server]
        ),
        []
    );
}
