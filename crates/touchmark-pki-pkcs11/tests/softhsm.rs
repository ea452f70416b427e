//! The PKCS#11 key provider against a real token (SoftHSM2), each test with a throwaway token
//! of its own, run in a child process that sees it (`touchmark_testenv::softhsm::in_child`).
//! Independent oracles: aws-lc-rs verifies the signatures, `openssl verify` the certificates,
//! and OpenSC's `pkcs11-tool` reads the token.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::sync::Arc;

use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1, ED25519, UnparsedPublicKey};
use cryptoki::context::{CInitializeArgs, Pkcs11};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeInfo, AttributeType, ObjectClass};
use cryptoki::session::UserType;
use cryptoki::types::AuthPin;
use time::{Duration, OffsetDateTime};
use touchmark_pki::{
    CaIssuer, KeyAlgorithm, KeyProvider, PkiError, SerialNumber, Signer, Subject,
    create_intermediate_ca, create_root_ca,
};
use touchmark_pki_pkcs11::{Pkcs11Config, Pkcs11Keys};
use touchmark_testenv::softhsm::{self, ChildToken};

fn config(token: &ChildToken) -> Pkcs11Config {
    Pkcs11Config {
        module: softhsm::module(),
        token: softhsm::LABEL.into(),
        pin_file: Some(token.pin_file()),
        pin_env: None,
        sessions: None,
        labels: Default::default(),
        label_prefix: None,
    }
}

fn verify(signer: &dyn Signer, message: &[u8], signature: &[u8]) {
    let alg: &dyn aws_lc_rs::signature::VerificationAlgorithm = match signer.algorithm() {
        KeyAlgorithm::EcdsaP256 => &ECDSA_P256_SHA256_ASN1,
        KeyAlgorithm::Ed25519 => &ED25519,
    };
    UnparsedPublicKey::new(alg, signer.public_key_raw())
        .verify(message, signature)
        .unwrap_or_else(|_| {
            panic!(
                "a {} signature from the token does not verify",
                signer.algorithm()
            )
        });
}

fn pkcs11_tool(token: &ChildToken, args: &[&str]) -> (bool, String) {
    let tool = touchmark_testenv::tool(&touchmark_testenv::PKCS11_TOOL);
    let module = softhsm::module();
    let out = token
        .command(&tool)
        .args([
            "--module",
            module.to_str().unwrap(),
            "--token-label",
            softhsm::LABEL,
        ])
        .args(["--login", "--pin", softhsm::PIN])
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
#[cfg_attr(
    not(tm_softhsm),
    ignore = "needs SoftHSM2 and OpenSC: apt-get install softhsm2 opensc"
)]
fn keys_are_made_in_the_token_and_sign_what_verifies() {
    let Some(token) = softhsm::in_child("keys_are_made_in_the_token_and_sign_what_verifies") else {
        return;
    };
    let keys = Pkcs11Keys::open(&config(&token)).unwrap();
    assert!(
        keys.supports(KeyAlgorithm::Ed25519).unwrap(),
        "SoftHSM2 2.6 has Ed25519"
    );
    assert!(!keys.contains("root-ca"));
    assert!(matches!(
        keys.load("root-ca"),
        Err(PkiError::KeyNotFound(_))
    ));
    let ca = keys.generate("root-ca", KeyAlgorithm::EcdsaP256).unwrap();
    let log = keys.generate("log", KeyAlgorithm::Ed25519).unwrap();
    assert!(keys.contains("root-ca") && keys.contains("log"));
    assert!(matches!(
        keys.generate("root-ca", KeyAlgorithm::EcdsaP256),
        Err(PkiError::KeyExists(_))
    ));
    assert!(matches!(
        keys.generate("Not A Name", KeyAlgorithm::EcdsaP256),
        Err(PkiError::InvalidKeyName(_))
    ));
    for signer in [&ca, &log] {
        // Many messages: a DER conversion that drops a leading zero shows up in one of them.
        for i in 0..64u32 {
            let message = format!("message {i}");
            let signature = signer.sign(message.as_bytes()).unwrap();
            verify(signer.as_ref(), message.as_bytes(), &signature);
        }
    }
    assert_eq!(ca.public_key_spki().len(), 91);
    assert_eq!(log.public_key_raw().len(), 32);

    // A second provider (as a restarted server has) finds the same keys.
    let again = Pkcs11Keys::open(&config(&token)).unwrap();
    let loaded = again.load("root-ca").unwrap();
    assert_eq!(loaded.public_key_spki(), ca.public_key_spki());
    assert_eq!(loaded.algorithm(), KeyAlgorithm::EcdsaP256);
    let loaded_log = again.load("log").unwrap();
    assert_eq!(loaded_log.public_key_raw(), log.public_key_raw());
    let signature = loaded_log.sign(b"after a restart").unwrap();
    verify(log.as_ref(), b"after a restart", &signature);
    assert!(keys.describe().contains(softhsm::LABEL));
    // The key's Debug output names it and shows its public key only.
    let debug = format!("{ca:?}");
    assert!(
        debug.contains("root-ca") && debug.contains(&hex::encode(ca.public_key_raw())),
        "{debug}"
    );
}

#[test]
#[cfg_attr(
    not(tm_softhsm),
    ignore = "needs SoftHSM2 and OpenSC: apt-get install softhsm2 opensc"
)]
fn private_keys_cannot_be_read_out_of_the_token() {
    let Some(token) = softhsm::in_child("private_keys_cannot_be_read_out_of_the_token") else {
        return;
    };
    let keys = Pkcs11Keys::open(&config(&token)).unwrap();
    keys.generate("root-ca", KeyAlgorithm::EcdsaP256).unwrap();
    keys.generate("log", KeyAlgorithm::Ed25519).unwrap();

    // Through PKCS#11 directly: the attributes, the value, and a wrap under a key we hold.
    let ctx = Pkcs11::new(softhsm::module()).unwrap();
    match ctx.initialize(CInitializeArgs::OsThreads) {
        Ok(())
        | Err(cryptoki::error::Error::Pkcs11(
            cryptoki::error::RvError::CryptokiAlreadyInitialized,
            _,
        )) => {}
        Err(e) => panic!("{e}"),
    }
    let slot = ctx
        .get_slots_with_token()
        .unwrap()
        .into_iter()
        .find(|s| ctx.get_token_info(*s).unwrap().label().trim_end() == softhsm::LABEL)
        .unwrap();
    let session = ctx.open_rw_session(slot).unwrap();
    match session.login(UserType::User, Some(&AuthPin::new(softhsm::PIN.into()))) {
        Ok(())
        | Err(cryptoki::error::Error::Pkcs11(cryptoki::error::RvError::UserAlreadyLoggedIn, _)) => {
        }
        Err(e) => panic!("{e}"),
    }
    let wrapping = session
        .generate_key(
            &Mechanism::AesKeyGen,
            &[
                Attribute::Token(false),
                Attribute::ValueLen(32u64.into()),
                Attribute::Wrap(true),
            ],
        )
        .unwrap();
    for label in ["root-ca", "log"] {
        let found = session
            .find_objects(&[
                Attribute::Class(ObjectClass::PRIVATE_KEY),
                Attribute::Label(label.as_bytes().to_vec()),
            ])
            .unwrap();
        assert_eq!(found.len(), 1, "{label}");
        let key = found[0];
        let attrs = session
            .get_attributes(
                key,
                &[
                    AttributeType::Sensitive,
                    AttributeType::Extractable,
                    AttributeType::AlwaysSensitive,
                    AttributeType::NeverExtractable,
                    AttributeType::Local,
                ],
            )
            .unwrap();
        for attr in &attrs {
            match attr {
                Attribute::Sensitive(b) => assert!(*b, "{label}: CKA_SENSITIVE"),
                Attribute::Extractable(b) => assert!(!*b, "{label}: CKA_EXTRACTABLE"),
                Attribute::AlwaysSensitive(b) => assert!(*b, "{label}: CKA_ALWAYS_SENSITIVE"),
                Attribute::NeverExtractable(b) => assert!(*b, "{label}: CKA_NEVER_EXTRACTABLE"),
                Attribute::Local(b) => assert!(*b, "{label}: CKA_LOCAL (made in the token)"),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(attrs.len(), 5, "{label}: {attrs:?}");
        // The private value is sensitive: the token will not give it.
        let info = session
            .get_attribute_info(key, &[AttributeType::Value])
            .unwrap();
        assert!(
            matches!(info[0], AttributeInfo::Sensitive),
            "{label}: {info:?}"
        );
        assert!(
            session
                .get_attributes(key, &[AttributeType::Value])
                .unwrap()
                .is_empty(),
            "{label}: a value came out"
        );
        // Nor will it wrap it out under a key that we hold.
        let wrapped = session.wrap_key(&Mechanism::AesKeyWrapPad, wrapping, key);
        assert!(
            matches!(
                wrapped,
                Err(cryptoki::error::Error::Pkcs11(
                    cryptoki::error::RvError::KeyUnextractable,
                    _
                ))
            ),
            "{label}: {wrapped:?}"
        );
    }

    // And an independent tool reads the same attributes. (pkcs11-tool has no way to ask a
    // token for a private key's value or to wrap one: the attempts above are PKCS#11's own.)
    let (ok, text) = pkcs11_tool(&token, &["--list-objects", "--type", "privkey"]);
    assert!(ok, "{text}");
    assert_eq!(
        text.matches("Access:     sensitive, always sensitive, never extractable, local")
            .count(),
        2,
        "{text}"
    );
}

fn openssl(dir: &Path, args: &[&str]) -> (bool, String) {
    touchmark_testenv::run(
        &touchmark_testenv::tool(&touchmark_testenv::OPENSSL),
        dir,
        args,
    )
}

#[test]
#[cfg_attr(not(tm_softhsm), ignore = "needs SoftHSM2, OpenSC and openssl")]
fn certificates_signed_in_the_token_verify_with_openssl() {
    let Some(token) = softhsm::in_child("certificates_signed_in_the_token_verify_with_openssl")
    else {
        return;
    };
    let keys = Pkcs11Keys::open(&config(&token)).unwrap();
    let now = OffsetDateTime::now_utc();
    let subject = |cn: &str| Subject {
        organization: "Token Test".into(),
        common_name: cn.into(),
    };
    let root_key = keys.generate("root-ca", KeyAlgorithm::EcdsaP256).unwrap();
    let root = create_root_ca(
        root_key.as_ref(),
        &subject("Root"),
        now - Duration::hours(1),
        now + Duration::days(3650),
        SerialNumber::random(&mut rand_core()),
    )
    .unwrap();
    let root = CaIssuer::new(root, root_key).unwrap();
    let product_key = keys.generate("product-x", KeyAlgorithm::EcdsaP256).unwrap();
    let product = create_intermediate_ca(
        &root,
        product_key.public_key_spki(),
        &subject("Product X"),
        now - Duration::hours(1),
        now + Duration::days(3650),
        SerialNumber::random(&mut rand_core()),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("root.pem"), root.certificate().pem()).unwrap();
    std::fs::write(dir.path().join("product.pem"), product.pem()).unwrap();
    let (ok, text) = openssl(
        dir.path(),
        &["verify", "-CAfile", "root.pem", "root.pem", "product.pem"],
    );
    assert!(ok, "{text}");
    assert_eq!(text.matches(": OK").count(), 2, "{text}");

    // The token's own public key (read by pkcs11-tool) is the one in the certificate.
    let (ok, text) = pkcs11_tool(
        &token,
        &[
            "--read-object",
            "--type",
            "pubkey",
            "--label",
            "product-x",
            "--output-file",
            dir.path().join("token-pub.der").to_str().unwrap(),
        ],
    );
    assert!(ok, "{text}");
    let (ok, ours) = openssl(
        dir.path(),
        &["x509", "-in", "product.pem", "-noout", "-pubkey"],
    );
    assert!(ok, "{ours}");
    let (ok, theirs) = openssl(
        dir.path(),
        &["pkey", "-pubin", "-inform", "DER", "-in", "token-pub.der"],
    );
    assert!(ok, "{theirs}");
    assert_eq!(ours.trim(), theirs.trim());
    // A certificate signed by the wrong key does not verify: the oracle can fail.
    let other = keys.generate("other", KeyAlgorithm::EcdsaP256).unwrap();
    let forged = create_root_ca(
        other.as_ref(),
        &subject("Root"),
        now - Duration::hours(1),
        now + Duration::days(3650),
        SerialNumber::random(&mut rand_core()),
    )
    .unwrap();
    std::fs::write(dir.path().join("forged.pem"), forged.pem()).unwrap();
    let (ok, text) = openssl(
        dir.path(),
        &["verify", "-CAfile", "forged.pem", "product.pem"],
    );
    assert!(!ok, "{text}");
}

fn rand_core() -> impl rand::RngCore {
    rand::rng()
}

#[test]
#[cfg_attr(
    not(tm_softhsm),
    ignore = "needs SoftHSM2 and OpenSC: apt-get install softhsm2 opensc"
)]
fn bad_configuration_is_a_clear_error_at_start() {
    let Some(token) = softhsm::in_child("bad_configuration_is_a_clear_error_at_start") else {
        return;
    };
    let good = config(&token);
    let message = |c: &Pkcs11Config| Pkcs11Keys::open(c).unwrap_err().to_string();

    let missing = Pkcs11Config {
        module: "/nonexistent/libpkcs11.so".into(),
        ..good.clone()
    };
    let text = message(&missing);
    assert!(
        text.contains("/nonexistent/libpkcs11.so") && text.contains("does not exist"),
        "{text}"
    );

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("pin"), "00000000\n").unwrap();
    let wrong_pin = Pkcs11Config {
        pin_file: Some(dir.path().join("pin")),
        ..good.clone()
    };
    let text = message(&wrong_pin);
    assert!(text.contains("PIN") && text.contains("wrong"), "{text}");

    let no_pin = Pkcs11Config {
        pin_file: None,
        ..good.clone()
    };
    assert!(
        message(&no_pin).contains("pin_file"),
        "{}",
        message(&no_pin)
    );
    let unset = Pkcs11Config {
        pin_file: None,
        pin_env: Some("TOUCHMARK_TEST_NO_SUCH_PIN_VARIABLE".into()),
        ..good.clone()
    };
    assert!(message(&unset).contains("TOUCHMARK_TEST_NO_SUCH_PIN_VARIABLE"));

    let no_token = Pkcs11Config {
        token: "no-such-token".into(),
        ..good.clone()
    };
    let text = message(&no_token);
    assert!(
        text.contains("no-such-token") && text.contains(softhsm::LABEL),
        "{text}"
    );

    // A key label that is not in the token.
    let keys = Pkcs11Keys::open(&good).unwrap();
    let mut relabelled = good.clone();
    relabelled.labels.insert("root-ca".into(), "ca-2026".into());
    let text = Pkcs11Keys::open(&relabelled)
        .unwrap()
        .load("root-ca")
        .unwrap_err()
        .to_string();
    assert!(
        text.contains("root-ca") && text.contains("ca-2026"),
        "{text}"
    );

    // Keys of the wrong type, made by another tool.
    let (ok, text) = pkcs11_tool(
        &token,
        &[
            "--keypairgen",
            "--key-type",
            "rsa:2048",
            "--label",
            "rsa-key",
            "--usage-sign",
        ],
    );
    assert!(ok, "{text}");
    let (ok, text) = pkcs11_tool(
        &token,
        &[
            "--keypairgen",
            "--key-type",
            "EC:secp384r1",
            "--label",
            "p384-key",
            "--usage-sign",
        ],
    );
    assert!(ok, "{text}");
    let text = keys.load("rsa-key").unwrap_err().to_string();
    assert!(text.contains("rsa-key") && text.contains("RSA"), "{text}");
    let text = keys.load("p384-key").unwrap_err().to_string();
    assert!(
        text.contains("p384-key") && text.contains("another curve"),
        "{text}"
    );
}

#[test]
#[cfg_attr(
    not(tm_softhsm),
    ignore = "needs SoftHSM2 and OpenSC: apt-get install softhsm2 opensc"
)]
fn a_lost_login_reconnects_and_concurrent_signing_uses_many_sessions() {
    let Some(token) =
        softhsm::in_child("a_lost_login_reconnects_and_concurrent_signing_uses_many_sessions")
    else {
        return;
    };
    let keys = Pkcs11Keys::open(&config(&token)).unwrap();
    let ca = keys.generate("ca", KeyAlgorithm::EcdsaP256).unwrap();
    let signature = ca.sign(b"before").unwrap();
    verify(ca.as_ref(), b"before", &signature);
    // The token forgets the login (as one that restarted does): the next signature logs in
    // again and succeeds.
    keys.logout().unwrap();
    let signature = ca.sign(b"after").unwrap();
    verify(ca.as_ref(), b"after", &signature);
    assert!(keys.contains("ca"));

    let ca: Arc<dyn Signer> = ca;
    let threads: Vec<_> = (0..32)
        .map(|t| {
            let ca = Arc::clone(&ca);
            std::thread::spawn(move || {
                for i in 0..25 {
                    let message = format!("{t}/{i}");
                    let signature = ca.sign(message.as_bytes()).unwrap();
                    verify(ca.as_ref(), message.as_bytes(), &signature);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}
