//! Devices in the field over HTTPS (issue 17), on both backends: field tokens and their rate
//! limit, the verdicts (`genuine`, `unknown`, `revoked`, `clone_suspect`) on chains a field
//! backend presents, proofs of possession, and bad input.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use touchmark_client::RevocationKind;
use touchmark_client::api::CreateToken;
use touchmark_core::api::Revoke;
use touchmark_pki::device::possession_message;
use touchmark_server::rate::RateLimit;
use touchmark_testkit::{Backend, Reply, TestServer, Unit, passing_test};

touchmark_testkit::both_backends!(
    field_tokens_verify_and_nothing_else,
    field_calls_are_rate_limited_per_token,
    verdicts_follow_the_store_and_the_signatures,
    possession_is_proved_once_per_challenge,
    the_client_proves_possession_as_the_cli_does,
    bad_input_is_a_clear_error_or_verdict_and_never_a_500,
);

async fn token(kit: &TestServer, role: &str) -> String {
    kit.admin
        .create_token(&CreateToken {
            role: role.into(),
            label: format!("{role} backend"),
        })
        .await
        .expect("token")
        .token
}

async fn post(kit: &TestServer, path: &str, body: &Value, token: &str) -> Reply {
    kit.raw()
        .send(
            reqwest::Method::POST,
            path,
            Some("application/json"),
            serde_json::to_vec(body).unwrap(),
            Some(token),
        )
        .await
}

async fn get(kit: &TestServer, path: &str, token: &str) -> Reply {
    kit.raw()
        .send(reqwest::Method::GET, path, None, Vec::new(), Some(token))
        .await
}

async fn verify(kit: &TestServer, token: &str, body: Value) -> Reply {
    post(kit, "/v1/field/verify", &body, token).await
}

/// A provisioned unit and its chain (device certificate, then the issuing CA), PEM.
async fn provisioned(kit: &TestServer, tag: &str, serials: &[&str]) -> Vec<(Unit, String)> {
    let line = kit.line(tag, 100, "SN-000001..SN-000999").await;
    let station = kit.enroll_station(&line.factory).await;
    let mut out = Vec::new();
    for serial in serials {
        let unit = Unit::new(serial);
        let reply = station
            .provision(&line.order, &unit, passing_test(serial))
            .await;
        assert_eq!(reply.status, 201, "{}", reply.text);
        let chain = reply.body["chain_pem"].as_str().unwrap().to_owned();
        out.push((unit, chain));
    }
    out
}

fn checks(reply: &Reply) -> Vec<(String, String)> {
    reply.body["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_owned(),
                c["result"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect()
}

/// A field token verifies and is refused everywhere else; the other roles are refused on
/// `/v1/field/*`.
async fn field_tokens_verify_and_nothing_else(backend: Backend) {
    let kit = TestServer::start(backend).await;
    let units = provisioned(&kit, "tok", &["SN-000001"]).await;
    let field = token(&kit, "field").await;
    let auditor = token(&kit, "auditor").await;
    let body = json!({ "chain": units[0].1 });
    let reply = verify(&kit, &field, body.clone()).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.body["verdict"], "genuine");
    for path in [
        "/v1/products",
        "/v1/orders",
        "/v1/units/SN-000001",
        "/v1/events",
        "/v1/alerts",
        "/metrics",
    ] {
        get(&kit, path, &field).await.assert_error(403, "forbidden");
    }
    post(
        &kit,
        "/v1/tokens",
        &json!({ "role": "field", "label": "more" }),
        &field,
    )
    .await
    .assert_error(403, "forbidden");
    post(&kit, "/ui/login", &json!({ "token": field }), &field)
        .await
        .assert_error(403, "forbidden");
    // The auditor reads, but is no field backend.
    assert_eq!(get(&kit, "/v1/products", &auditor).await.status, 200);
    verify(&kit, &auditor, body.clone())
        .await
        .assert_error(403, "forbidden");
    post(&kit, "/v1/field/challenge", &json!({}), &auditor)
        .await
        .assert_error(403, "forbidden");
    // Nor is the admin.
    let admin = token(&kit, "admin").await;
    verify(&kit, &admin, body.clone())
        .await
        .assert_error(403, "forbidden");
    // Without a token at all.
    kit.raw()
        .send(
            reqwest::Method::POST,
            "/v1/field/verify",
            Some("application/json"),
            serde_json::to_vec(&body).unwrap(),
            None,
        )
        .await
        .assert_error(401, "unauthorized");
}

/// Each field token has its own bucket: past its burst it is answered 429 `rate_limited` with
/// `Retry-After`, and served again once the clock has refilled it.
async fn field_calls_are_rate_limited_per_token(backend: Backend) {
    let kit = TestServer::start_with(backend, &|o| {
        o.field_rate = RateLimit {
            per_second: 1.0,
            burst: 3,
        };
    })
    .await;
    let units = provisioned(&kit, "rate", &["SN-000001"]).await;
    let a = token(&kit, "field").await;
    let b = token(&kit, "field").await;
    let body = json!({ "chain": units[0].1 });
    for _ in 0..3 {
        assert_eq!(verify(&kit, &a, body.clone()).await.status, 200);
    }
    let limited = verify(&kit, &a, body.clone()).await;
    limited.assert_error(429, "rate_limited");
    assert_eq!(limited.retry_after.as_deref(), Some("1"));
    // The challenge route counts against the same bucket.
    post(&kit, "/v1/field/challenge", &json!({}), &a)
        .await
        .assert_error(429, "rate_limited");
    // Another token is not slowed by the first.
    assert_eq!(verify(&kit, &b, body.clone()).await.status, 200);
    kit.advance(time::Duration::seconds(1));
    assert_eq!(verify(&kit, &a, body).await.status, 200);
}

/// A device certificate with a genuine unit's names, signed by a lookalike of the product's
/// issuing CA (the same names, another key); with `critical`, it also carries an unknown
/// critical extension. PEM.
fn forged_chain(genuine_chain: &str, critical: bool) -> String {
    let certs = touchmark_pki::pem::decode_all(genuine_chain).unwrap();
    let (leaf, ca) = (&certs[0].der, &certs[1].der);
    let issuer = rcgen::Issuer::from_ca_cert_der(
        &rustls_pki_types::CertificateDer::from(ca.as_slice()),
        rcgen::KeyPair::generate().unwrap(),
    )
    .unwrap();
    let (_, parsed) = x509_parser::parse_x509_certificate(leaf).unwrap();
    let mut p = rcgen::CertificateParams::default();
    for attr in parsed.subject().iter_attributes() {
        let oid: Vec<u64> = attr.attr_type().iter().unwrap().collect();
        p.distinguished_name.push(
            rcgen::DnType::from_oid(&oid),
            rcgen::DnValue::Utf8String(attr.as_str().unwrap().to_owned()),
        );
    }
    p.is_ca = rcgen::IsCa::ExplicitNoCa;
    p.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    if critical {
        let mut ext = rcgen::CustomExtension::from_oid_content(
            &[1, 3, 6, 1, 4, 1, 99999, 1],
            vec![0x05, 0x00],
        );
        ext.set_criticality(true);
        p.custom_extensions.push(ext);
    }
    let device_key = rcgen::KeyPair::generate().unwrap();
    p.signed_by(&device_key, &issuer).unwrap().pem()
}

/// `genuine` with the unit's facts; `unknown` for a chain a lookalike CA signed with the same
/// names; `revoked` with reason and time once the unit is revoked, and for every unit of a
/// revoked CA.
async fn verdicts_follow_the_store_and_the_signatures(backend: Backend) {
    let kit = TestServer::start(backend).await;
    let units = provisioned(&kit, "ver", &["SN-000001", "SN-000002"]).await;
    let field = token(&kit, "field").await;

    let reply = verify(&kit, &field, json!({ "chain": units[0].1 })).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.body["verdict"], "genuine");
    let unit = &reply.body["unit"];
    assert_eq!(unit["serial"], "SN-000001");
    assert_eq!(unit["product"], "prod-ver");
    assert_eq!(unit["order"], "ord-ver");
    assert_eq!(unit["factory"], "fac-ver");
    assert!(unit["station"].is_string());
    assert!(unit["issued_at"].is_string());
    assert_eq!(unit["release"], Value::Null);
    assert_eq!(
        checks(&reply),
        pairs(&[
            ("chain", "verified"),
            ("issued", "found"),
            ("revocation", "not_revoked"),
            ("possession", "not_checked"),
        ])
    );
    // The device certificate alone (its issuing CA left out) is verified the same.
    let leaf_only = touchmark_pki::pem::decode_all(&units[0].1).unwrap()[0]
        .der
        .clone();
    let reply = verify(&kit, &field, json!({ "chain": STANDARD.encode(leaf_only) })).await;
    assert_eq!(reply.body["verdict"], "genuine", "{}", reply.text);

    // The same names, signed by another key: not this installation's.
    let forged = forged_chain(&units[0].1, false);
    let reply = verify(&kit, &field, json!({ "chain": forged })).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.body["verdict"], "unknown");
    assert_eq!(checks(&reply), pairs(&[("chain", "unknown_issuer")]));
    assert!(reply.body.get("unit").is_none());

    kit.admin
        .revoke(
            RevocationKind::Unit,
            "SN-000001",
            &Revoke {
                reason: "keyCompromise".into(),
                product: None,
            },
        )
        .await
        .expect("revoked");
    let reply = verify(&kit, &field, json!({ "chain": units[0].1 })).await;
    assert_eq!(reply.body["verdict"], "revoked", "{}", reply.text);
    assert_eq!(reply.body["revocation"]["scope"], "unit");
    assert_eq!(reply.body["revocation"]["reason"], "keyCompromise");
    assert!(reply.body["revocation"]["revoked_at"].is_string());
    // The other unit is untouched, until its CA is revoked.
    let reply = verify(&kit, &field, json!({ "chain": units[1].1 })).await;
    assert_eq!(reply.body["verdict"], "genuine");
    kit.admin
        .revoke(
            RevocationKind::Ca,
            "prod-ver",
            &Revoke {
                reason: "cACompromise".into(),
                product: None,
            },
        )
        .await
        .expect("revoked");
    let reply = verify(&kit, &field, json!({ "chain": units[1].1 })).await;
    assert_eq!(reply.body["verdict"], "revoked");
    assert_eq!(reply.body["revocation"]["scope"], "ca");
    assert_eq!(reply.body["revocation"]["reason"], "cACompromise");
}

async fn challenge(kit: &TestServer, token: &str) -> Vec<u8> {
    let reply = post(kit, "/v1/field/challenge", &json!({}), token).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert!(reply.body["expires_at"].is_string());
    STANDARD
        .decode(reply.body["nonce"].as_str().unwrap())
        .unwrap()
}

fn proof(nonce: &[u8], signer: &dyn touchmark_pki::Signer) -> Value {
    let signature = signer.sign(&possession_message(nonce)).unwrap();
    json!({ "nonce": STANDARD.encode(nonce), "signature": STANDARD.encode(signature) })
}

/// The unit's key signs the challenge: `genuine` with possession `passed`. A copy of the
/// certificate without the key: `clone_suspect`. A nonce is accepted once, before it expires,
/// from the token it was given to.
async fn possession_is_proved_once_per_challenge(backend: Backend) {
    let kit = TestServer::start(backend).await;
    let units = provisioned(&kit, "pop", &["SN-000001"]).await;
    let (unit, chain) = &units[0];
    let field = token(&kit, "field").await;
    let other = token(&kit, "field").await;

    let nonce = challenge(&kit, &field).await;
    assert_eq!(nonce.len(), 32);
    let body = json!({ "chain": chain, "possession": proof(&nonce, &unit.signer) });
    let reply = verify(&kit, &field, body.clone()).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.body["verdict"], "genuine");
    assert_eq!(checks(&reply)[3], ("possession".into(), "passed".into()));
    // The same proof again: a replay.
    verify(&kit, &field, body)
        .await
        .assert_error(409, "challenge_invalid");

    // The certificate copied, without its key.
    let copier =
        touchmark_pki::SoftwareSigner::generate(touchmark_pki::KeyAlgorithm::EcdsaP256).unwrap();
    let nonce = challenge(&kit, &field).await;
    let reply = verify(
        &kit,
        &field,
        json!({ "chain": chain, "possession": proof(&nonce, &copier) }),
    )
    .await;
    assert_eq!(reply.body["verdict"], "clone_suspect", "{}", reply.text);
    assert_eq!(checks(&reply)[3], ("possession".into(), "failed".into()));
    assert!(!reply.body["evidence"].as_array().unwrap().is_empty());

    // Another token's challenge.
    let nonce = challenge(&kit, &other).await;
    let body = json!({ "chain": chain, "possession": proof(&nonce, &unit.signer) });
    verify(&kit, &field, body.clone())
        .await
        .assert_error(409, "challenge_invalid");
    // Refused above, it is used up for its own token as well.
    verify(&kit, &other, body)
        .await
        .assert_error(409, "challenge_invalid");

    // An expired one.
    let nonce = challenge(&kit, &field).await;
    kit.advance(time::Duration::seconds(61));
    let body = json!({ "chain": chain, "possession": proof(&nonce, &unit.signer) });
    verify(&kit, &field, body)
        .await
        .assert_error(409, "challenge_invalid");
    // One never given out.
    let body = json!({ "chain": chain, "possession": proof(&[7u8; 32], &unit.signer) });
    verify(&kit, &field, body)
        .await
        .assert_error(409, "challenge_invalid");
    // A proof that is not base64 of the right sizes.
    let body = json!({ "chain": chain, "possession": { "nonce": "AAAA", "signature": "AAAA" } });
    verify(&kit, &field, body)
        .await
        .assert_error(422, "unprocessable");
}

/// Garbage and a chain too deep: `unprocessable`; a huge PEM: `payload_too_large`. An unknown critical extension, an expired
/// or not yet valid chain: `unknown` verdicts that say which. Never a 500.
async fn bad_input_is_a_clear_error_or_verdict_and_never_a_500(backend: Backend) {
    let kit = TestServer::start(backend).await;
    let units = provisioned(&kit, "bad", &["SN-000001"]).await;
    let chain = &units[0].1;
    let field = token(&kit, "field").await;

    for garbage in [
        "",
        "hello",
        "AAAA",
        "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n",
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    ] {
        verify(&kit, &field, json!({ "chain": garbage }))
            .await
            .assert_error(422, "unprocessable");
    }
    verify(&kit, &field, json!({ "chain": 7 }))
        .await
        .assert_error(400, "invalid_request");
    verify(&kit, &field, json!({ "chain": chain, "extra": 1 }))
        .await
        .assert_error(400, "invalid_request");
    let leaf = touchmark_pki::pem::decode_all(chain).unwrap()[0]
        .der
        .clone();
    // One beyond the 8 accepted is refused before any signature is checked; 100 are beyond
    // the size limit as well.
    let deep = touchmark_pki::pem::encode("CERTIFICATE", &leaf).repeat(9);
    let reply = verify(&kit, &field, json!({ "chain": deep })).await;
    reply.assert_error(422, "unprocessable");
    assert!(reply.text.contains("9 certificates"), "{}", reply.text);
    let deep = touchmark_pki::pem::encode("CERTIFICATE", &leaf).repeat(100);
    verify(&kit, &field, json!({ "chain": deep }))
        .await
        .assert_error(413, "payload_too_large");
    let huge = format!("{chain}{}", " ".repeat(70 * 1024));
    verify(&kit, &field, json!({ "chain": huge }))
        .await
        .assert_error(413, "payload_too_large");

    let critical = forged_chain(chain, true);
    let reply = verify(&kit, &field, json!({ "chain": critical })).await;
    assert_eq!(reply.body["verdict"], "unknown", "{}", reply.text);
    assert_eq!(
        checks(&reply),
        pairs(&[("chain", "unknown_critical_extension")])
    );

    kit.advance(-time::Duration::days(30));
    let reply = verify(&kit, &field, json!({ "chain": chain })).await;
    assert_eq!(reply.body["verdict"], "unknown", "{}", reply.text);
    assert_eq!(checks(&reply), pairs(&[("chain", "not_yet_valid")]));
    kit.advance(time::Duration::days(30 + 365 * 200));
    let reply = verify(&kit, &field, json!({ "chain": chain })).await;
    assert_eq!(reply.body["verdict"], "unknown", "{}", reply.text);
    assert_eq!(checks(&reply), pairs(&[("chain", "expired")]));
}

/// `touchmark field verify --chain --key` goes through `Client::field_verify_chain`: with the
/// unit's key it fetches a challenge and signs it, without one it sends the chain alone.
async fn the_client_proves_possession_as_the_cli_does(backend: Backend) {
    let kit = TestServer::start(backend).await;
    let units = provisioned(&kit, "cli", &["SN-000001"]).await;
    let (unit, chain) = &units[0];
    let client = kit.with_token(&token(&kit, "field").await);
    let verdict = client
        .field_verify_chain(chain, Some(&unit.signer))
        .await
        .unwrap();
    assert_eq!(verdict.verdict, "genuine");
    assert_eq!(verdict.checks[3].result, "passed");
    let verdict = client.field_verify_chain(chain, None).await.unwrap();
    assert_eq!(verdict.verdict, "genuine");
    assert_eq!(verdict.checks[3].result, "not_checked");
    let copier =
        touchmark_pki::SoftwareSigner::generate(touchmark_pki::KeyAlgorithm::EcdsaP256).unwrap();
    let verdict = client
        .field_verify_chain(chain, Some(&copier))
        .await
        .unwrap();
    assert_eq!(verdict.verdict, "clone_suspect");
}
