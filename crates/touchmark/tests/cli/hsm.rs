//! Every key in a PKCS#11 token (SoftHSM2, a throwaway token per test), through the real
//! binary: `init --pkcs11-*` makes them there and no key file, `keys list` shows them, `serve`
//! logs in with the PIN file alone (no passphrase), and provisioning holds its invariants:
//! the quota under a race, retries that return the same certificate, chains that openssl
//! verifies. A server whose token is misconfigured does not start. The crash test runs on a
//! token too (`crash::sigkill_mid_run_with_keys_in_a_token`).

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::Arc;

use touchmark_client::ClientError;
use touchmark_core::code::ErrorCode;
use touchmark_testenv::softhsm::{self, Token};

use crate::kit::{self, Keys, Served, Unit};

/// SHA-256 of `der` in hex, by openssl: an oracle independent of the code under test.
fn sha256_hex(dir: &std::path::Path, der: &[u8]) -> String {
    std::fs::write(dir.join("spki.der"), der).unwrap();
    let openssl = touchmark_testenv::tool(&touchmark_testenv::OPENSSL);
    let (ok, text) = touchmark_testenv::run(&openssl, dir, &["dgst", "-sha256", "-r", "spki.der"]);
    assert!(ok, "{text}");
    text.split_whitespace().next().unwrap().to_owned()
}

fn keys_list(dir: &std::path::Path, keys: Keys<'_>) -> Vec<serde_json::Value> {
    let mut command = Command::new(kit::bin());
    command.args(["keys", "list", "--json", "--data"]).arg(dir);
    keys.apply(&mut command);
    let out = command.output().unwrap();
    kit::assert_success(&out, "keys list");
    serde_json::from_slice(&out.stdout).unwrap()
}

fn pkcs11_tool(token: &Token, args: &[&str]) -> String {
    let tool = touchmark_testenv::tool(&touchmark_testenv::PKCS11_TOOL);
    let out = token
        .command(&tool)
        .arg("--module")
        .arg(softhsm::module())
        .args([
            "--token-label",
            softhsm::LABEL,
            "--login",
            "--pin",
            softhsm::PIN,
        ])
        .args(args)
        .output()
        .unwrap();
    kit::assert_success(&out, "pkcs11-tool");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(
    not(all(tm_softhsm, tm_openssl)),
    ignore = "needs SoftHSM2, OpenSC and openssl: apt-get install softhsm2 opensc openssl"
)]
async fn an_installation_in_a_token_issues_within_quota_and_retries_the_same() {
    let hsm = Token::create();
    let keys = Keys::Token(&hsm);
    let (tmp, dir) = kit::tempdir();
    let admin_token = kit::init_keys(&dir, None, keys);
    assert!(
        !dir.join("keys").exists(),
        "init made a key store beside the token"
    );
    let config = std::fs::read_to_string(dir.join("touchmark.toml")).unwrap();
    assert!(
        config.contains("[pkcs11]") && config.contains(softhsm::LABEL),
        "{config}"
    );

    // Every key is in the token: `keys list`, and an independent tool, say so.
    let listed = keys_list(&dir, keys);
    let names: Vec<&str> = listed.iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "infra-root-ca",
            "infra-server-tls",
            "infra-station-ca",
            "log",
            "root-ca"
        ]
    );
    for row in &listed {
        assert!(
            row["location"].as_str().unwrap().contains(softhsm::LABEL),
            "{row}"
        );
        let alg = if row["name"] == "log" {
            "ed25519"
        } else {
            "ecdsa-p256"
        };
        assert_eq!(row["algorithm"], alg, "{row}");
    }
    let root = touchmark_pki::Certificate::from_pem(
        &std::fs::read_to_string(dir.join("certs/device-root-ca.pem")).unwrap(),
    )
    .unwrap();
    let root_row = listed.iter().find(|r| r["name"] == "root-ca").unwrap();
    assert_eq!(
        root_row["public_key_sha256"].as_str().unwrap(),
        sha256_hex(tmp.path(), root.spki_der()),
        "the listed hash is the device root certificate's key"
    );
    let objects = pkcs11_tool(&hsm, &["--list-objects", "--type", "privkey"]);
    assert_eq!(objects.matches("never extractable").count(), 5, "{objects}");

    // Served without a passphrase: the PIN file opens the token.
    let served = Served::start_keys(&dir, keys);
    let admin = kit::admin(&served.url, &dir, &admin_token);
    let product = kit::setup_order(&admin, "PO-HSM", 40).await;
    let identity = kit::enroll(&admin, &served.url, &dir, "cm", "line-1").await;
    let station = kit::station_client(&served.url, &dir, &identity);

    // The quota race: 64 units, 16 at a time, for 40.
    let units: Arc<Vec<Unit>> =
        Arc::new((0..64).map(|i| Unit::new(format!("SN-{i:04}"))).collect());
    let mut tasks = Vec::new();
    for worker in 0..16 {
        let (station, units) = (station.clone(), Arc::clone(&units));
        tasks.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            for i in (worker..units.len()).step_by(16) {
                let outcome = match station.provision("PO-HSM", &units[i].request()).await {
                    Ok(done) => Ok((done.cert_sha256, done.certificate_pem, done.chain_pem)),
                    Err(ClientError::Api { body, .. }) => Err(body.code),
                    Err(e) => panic!("unit {i}: {e}"),
                };
                seen.push((i, outcome));
            }
            seen
        }));
    }
    let mut outcomes = BTreeMap::new();
    for task in tasks {
        outcomes.extend(task.await.unwrap());
    }
    let issued: BTreeMap<usize, (String, String, String)> = outcomes
        .iter()
        .filter_map(|(i, o)| o.as_ref().ok().map(|v| (*i, v.clone())))
        .collect();
    assert_eq!(issued.len(), 40, "exactly the quota is issued");
    assert!(
        outcomes
            .values()
            .filter_map(|o| o.as_ref().err())
            .all(|c| c == ErrorCode::QuotaExhausted.as_str()),
        "{outcomes:?}"
    );
    let detail = admin.order("PO-HSM").await.unwrap();
    assert_eq!(detail.order.issued, 40);
    assert_eq!(detail.certificates, 40);
    assert_eq!(detail.issued_events, 40);

    // A retry returns the same certificate and consumes nothing.
    let (&first, (sha, _, _)) = issued.iter().next().unwrap();
    let again = station
        .provision("PO-HSM", &units[first].request())
        .await
        .unwrap();
    assert_eq!(&again.cert_sha256, sha);
    assert_eq!(admin.order("PO-HSM").await.unwrap().order.issued, 40);

    // The product's CA key was made in the token when the product was created.
    let listed = keys_list(&dir, keys);
    assert!(
        listed.iter().any(|r| r["name"] == "product-sensor"),
        "{listed:?}"
    );

    // openssl verifies a device chain signed in the token: device root → product CA → unit.
    let (_, cert, chain) = &issued[&first];
    let files = tmp.path();
    std::fs::write(files.join("root.pem"), root.pem()).unwrap();
    std::fs::write(files.join("product.pem"), &product.issuing_ca_pem).unwrap();
    std::fs::write(files.join("unit.pem"), cert).unwrap();
    assert!(
        chain.contains(product.issuing_ca_pem.trim()),
        "the chain carries the product CA"
    );
    let openssl = touchmark_testenv::tool(&touchmark_testenv::OPENSSL);
    let (ok, text) = touchmark_testenv::run(
        &openssl,
        files,
        &[
            "verify",
            "-CAfile",
            "root.pem",
            "-untrusted",
            "product.pem",
            "unit.pem",
        ],
    );
    assert!(ok && text.contains("unit.pem: OK"), "{text}");
    // The log, signed with the token's Ed25519 key, verifies from end to end.
    let audited = kit::audit(&served.url, &dir, &tmp.path().join("audit.state"));
    kit::assert_success(&audited, "audit verify");
}

#[test]
#[cfg_attr(
    not(tm_softhsm),
    ignore = "needs SoftHSM2 and OpenSC: apt-get install softhsm2 opensc"
)]
fn a_server_whose_token_is_misconfigured_does_not_start() {
    let hsm = Token::create();
    let keys = Keys::Token(&hsm);
    let (tmp, dir) = kit::tempdir();
    kit::init_keys(&dir, None, keys);
    let config = std::fs::read_to_string(dir.join("touchmark.toml")).unwrap();
    let serve = |toml: &str| {
        std::fs::write(dir.join("touchmark.toml"), toml).unwrap();
        let mut command = kit::serve_command(&dir);
        keys.apply(&mut command);
        let out = command.output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(!out.status.success(), "{stdout}");
        assert!(!stdout.contains("listening"), "it started: {stdout}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let wrong_pin = tmp.path().join("wrong-pin");
    std::fs::write(&wrong_pin, "11111111\n").unwrap();
    let pin_line = config
        .lines()
        .find(|l| l.starts_with("pin_file"))
        .unwrap()
        .to_owned();
    let text = serve(&config.replace(
        &pin_line,
        &format!("pin_file = {:?}", wrong_pin.to_str().unwrap()),
    ));
    assert!(text.contains("PIN") && text.contains("wrong"), "{text}");
    let text = serve(&config.replace(
        softhsm::module().to_str().unwrap(),
        "/nonexistent/libpkcs11.so",
    ));
    assert!(text.contains("/nonexistent/libpkcs11.so"), "{text}");
    let text = serve(&config.replace(
        &format!("token = \"{}\"", softhsm::LABEL),
        "token = \"elsewhere\"",
    ));
    assert!(text.contains("elsewhere"), "{text}");
    // A key label that the token does not hold.
    let text = serve(&format!("{config}[pkcs11.labels]\nlog = \"log-2027\"\n"));
    assert!(text.contains("log-2027"), "{text}");
    // The good configuration still serves, and no database write happened before.
    std::fs::write(dir.join("touchmark.toml"), &config).unwrap();
    let served = Served::start_keys(&dir, keys);
    drop(served);
}
