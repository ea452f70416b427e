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
    let out = pkcs11_tool_output(token, args);
    kit::assert_success(&out, "pkcs11-tool");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `pkcs11-tool ARGS`, logged in to the test token, whatever its outcome.
fn pkcs11_tool_output(token: &Token, args: &[&str]) -> std::process::Output {
    let tool = touchmark_testenv::tool(&touchmark_testenv::PKCS11_TOOL);
    token
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
        .unwrap()
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
    // A release key is an agreement key, which this provider cannot make yet: a clear
    // refusal, nothing logged, no object made in the token.
    let logged = kit::all_events(&admin).await.len();
    let refused = admin
        .create_release_key(
            &product.id,
            &touchmark_client::api::CreateReleaseKey {
                algorithm: Some("x25519".into()),
            },
        )
        .await
        .unwrap_err();
    match &refused {
        ClientError::Api { status, body } => {
            assert_eq!(
                (*status, body.code.as_str()),
                (409, "conflict"),
                "{refused}"
            );
            assert!(body.message.contains("key agreement"), "{refused}");
        }
        other => panic!("not a refusal: {other}"),
    }
    assert_eq!(kit::all_events(&admin).await.len(), logged);
    assert!(
        admin.release_keys(&product.id).await.unwrap().is_empty(),
        "no release key is listed"
    );
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(
    not(tm_softhsm),
    ignore = "needs SoftHSM2 and OpenSC: apt-get install softhsm2 opensc"
)]
async fn keys_migrate_moves_file_keys_into_the_token_and_logs_each() {
    let hsm = Token::create();
    let (tmp, dir) = kit::tempdir();
    let admin_token = kit::init(&dir);
    let served = Served::start(&dir);
    let admin = kit::admin(&served.url, &dir, &admin_token);
    kit::setup_order(&admin, "PO-MIG", 10).await;
    let identity = kit::enroll(&admin, &served.url, &dir, "cm", "line-1").await;
    let station = kit::station_client(&served.url, &dir, &identity);
    let before = station
        .provision("PO-MIG", &Unit::new("SN-1".into()).request())
        .await
        .unwrap();
    let files = keys_list(&dir, Keys::Files);
    drop(served);

    let mut command = Command::new(kit::bin());
    command
        .args(["keys", "migrate", "--data"])
        .arg(&dir)
        .arg("--pkcs11-module")
        .arg(softhsm::module())
        .args(["--pkcs11-token", softhsm::LABEL])
        .arg("--pkcs11-pin-file")
        .arg(hsm.pin_file())
        .env("TOUCHMARK_KEY_PASSPHRASE", kit::PASSPHRASE)
        .envs(hsm.env());
    let out = command.output().unwrap();
    kit::assert_success(&out, "keys migrate");
    assert!(!dir.join("keys").exists() && dir.join("keys.migrated").is_dir());

    // The same keys, now in the token, as the token itself says.
    let moved = keys_list(&dir, Keys::Token(&hsm));
    assert_eq!(moved.len(), files.len());
    assert_eq!(moved.len(), 6, "five of init and the product's: {moved:?}");
    for (a, b) in files.iter().zip(&moved) {
        assert_eq!(a["name"], b["name"]);
        assert_eq!(a["public_key_sha256"], b["public_key_sha256"], "{a} {b}");
        assert!(
            b["location"].as_str().unwrap().contains(softhsm::LABEL),
            "{b}"
        );
    }
    let objects = pkcs11_tool(&hsm, &["--list-objects", "--type", "privkey"]);
    assert_eq!(
        objects.matches("Private Key Object").count(),
        6,
        "{objects}"
    );
    assert_eq!(
        objects.matches("Access:     sensitive").count(),
        6,
        "{objects}"
    );
    assert_eq!(
        objects.matches("never extractable").count(),
        0,
        "imported keys were extractable once: {objects}"
    );

    // Served from the token, without the passphrase: the same roots, a retry answers the same,
    // and a new unit is issued; the log holds a key.migrated per key and audits clean.
    let served = Served::start_keys(&dir, Keys::Token(&hsm));
    let admin = kit::admin(&served.url, &dir, &admin_token);
    let station = kit::station_client(&served.url, &dir, &identity);
    let again = station
        .provision("PO-MIG", &Unit::new("SN-2".into()).request())
        .await
        .unwrap();
    // The chain is the unit's certificate, then its product CA's: the same CA signs.
    let ca = |chain: &str| {
        chain
            .split_inclusive("-----END CERTIFICATE-----\n")
            .nth(1)
            .unwrap()
            .to_owned()
    };
    assert_eq!(
        ca(&again.chain_pem),
        ca(&before.chain_pem),
        "the same product CA signs"
    );
    assert_ne!(again.certificate_pem, before.certificate_pem);
    let events = kit::all_events(&admin).await;
    let migrated: Vec<_> = events.iter().filter(|e| e.kind == "key.migrated").collect();
    assert_eq!(migrated.len(), 6);
    let generated = events.iter().filter(|e| e.kind == "key.generated").count();
    assert_eq!(generated, 6, "init's five and the product's");
    let audited = kit::audit(&served.url, &dir, &tmp.path().join("audit.state"));
    kit::assert_success(&audited, "audit verify");
    let text = String::from_utf8_lossy(&audited.stdout);
    assert!(text.contains("violations: none"), "{text}");
    // The auditor's key table: every key, now in the token, with the hash `keys list` showed.
    for row in &files {
        let line = text
            .lines()
            .find(|l| {
                l.starts_with(&format!("{} ", row["name"].as_str().unwrap()))
                    && l.contains(row["algorithm"].as_str().unwrap())
            })
            .unwrap_or_else(|| panic!("{row} in\n{text}"));
        assert!(line.contains("pkcs11"), "{line}");
        assert!(
            line.contains(row["public_key_sha256"].as_str().unwrap()),
            "{line}"
        );
    }
}

#[test]
#[cfg_attr(
    not(tm_softhsm),
    ignore = "needs SoftHSM2 and OpenSC: apt-get install softhsm2 opensc"
)]
fn a_token_missing_a_key_or_holding_one_of_the_wrong_type_does_not_start() {
    let hsm = Token::create();
    let keys = Keys::Token(&hsm);
    let (_tmp, dir) = kit::tempdir();
    kit::init_keys(&dir, None, keys);
    let database = std::fs::read(dir.join("touchmark.db")).unwrap();
    let refused = || {
        let mut command = kit::serve_command(&dir);
        keys.apply(&mut command);
        let out = command.output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(!out.status.success(), "{stdout}");
        assert!(!stdout.contains("listening"), "it started: {stdout}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    // The server's TLS key, deleted from the token by another tool.
    pkcs11_tool(
        &hsm,
        &[
            "--delete-object",
            "--type",
            "privkey",
            "--label",
            "infra-server-tls",
        ],
    );
    pkcs11_tool(
        &hsm,
        &[
            "--delete-object",
            "--type",
            "pubkey",
            "--label",
            "infra-server-tls",
        ],
    );
    let text = refused();
    assert!(text.contains("infra-server-tls"), "{text}");
    // A key of another type under the expected label: P-384, where P-256 is the profile's.
    pkcs11_tool(
        &hsm,
        &[
            "--keypairgen",
            "--key-type",
            "EC:secp384r1",
            "--label",
            "infra-server-tls",
            "--usage-sign",
            "--sensitive",
        ],
    );
    let text = refused();
    assert!(
        text.contains("infra-server-tls") && text.contains("another curve"),
        "{text}"
    );
    // Nothing of the installation was written by the servers that did not start.
    assert_eq!(
        std::fs::read(dir.join("touchmark.db")).unwrap(),
        database,
        "the database changed"
    );
}

#[test]
#[cfg_attr(
    not(tm_softhsm),
    ignore = "needs SoftHSM2 and OpenSC: apt-get install softhsm2 opensc"
)]
fn the_demo_runs_with_every_key_in_a_token() {
    let hsm = Token::create();
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("demo");
    let mut command = Command::new(kit::bin());
    command
        .current_dir(work.path())
        .args(["demo", "--exit", "--json", "--data"])
        .arg(&data)
        .arg("--pkcs11-module")
        .arg(softhsm::module())
        .args(["--pkcs11-token", softhsm::LABEL])
        .arg("--pkcs11-pin-file")
        .arg(hsm.pin_file())
        .env_remove("TOUCHMARK_KEY_PASSPHRASE")
        .envs(hsm.env());
    let out = command.output().unwrap();
    kit::assert_success(&out, "demo on a token");
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["as_expected"], true, "{summary:#}");
    assert_eq!(summary["issued"], 500);
    assert_eq!(summary["refused_beyond_quota"], 100);
    assert_eq!(summary["database_agrees_with_log"], true);
    assert!(
        !data.join("keys").exists() && !data.join("passphrase.txt").exists(),
        "no key files beside the token"
    );
    // Every key the demo made is in the token, and its configuration names it.
    let objects = pkcs11_tool(&hsm, &["--list-objects", "--type", "privkey"]);
    assert!(
        objects.matches("never extractable").count() >= 6,
        "five of init and the demo's product: {objects}"
    );
    let config = std::fs::read_to_string(data.join("touchmark.toml")).unwrap();
    assert!(config.contains("[pkcs11]"), "{config}");
}
