//! Firmware administration over HTTPS (design.md §7, `docs/firmware.md`), on both backends:
//! release encryption keys made and held by the server, each logged; the public keys that sign
//! a product's images, registered and checked; refusals that store and log nothing.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use serde_json::Value;
use touchmark_client::ClientError;
use touchmark_core::api::{AddFirmwareKey, CreateReleaseKey};
use touchmark_core::event::Sha256Hash;
use touchmark_firmware::builder::{BuildOptions, build_release};
use touchmark_firmware::{ContentKey, EncKind, Ephemeral, PublicKey};
use touchmark_testkit::{Backend, TestServer};

fn api_error(e: ClientError) -> (u16, String) {
    match e {
        ClientError::Api { status, body } => (status, body.code),
        other => panic!("not an API error: {other}"),
    }
}

/// The reference vectors made with imgtool 2.5.0 (`/work/shared/specs/vectors/mcuboot/`).
fn vectors() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../touchmark-firmware/tests/vectors/mcuboot")
}

fn vector(name: &str) -> String {
    std::fs::read_to_string(vectors().join(name)).unwrap()
}

fn key_request(algorithm: Option<&str>) -> CreateReleaseKey {
    CreateReleaseKey {
        algorithm: algorithm.map(str::to_owned),
    }
}

/// The log's events of `kind`, as JSON.
async fn events_of(kit: &TestServer, kind: &str) -> Vec<Value> {
    kit.sequence_now().await;
    kit.admin
        .events(0, 1000)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == kind)
        .map(|e| serde_json::from_str(&e.canonical).unwrap())
        .collect()
}

// A release's SBOM: validated, bound to its image, served, indexed.
#[path = "firmware/sbom.rs"]
mod sbom;

touchmark_testkit::both_backends!(
    release_keys_are_made_held_listed_and_logged,
    release_key_refusals_store_and_log_nothing,
    firmware_signing_keys_are_registered_with_imgtools_key_id,
    firmware_key_refusals_store_and_log_nothing,
    #[cfg_attr(
        not(tm_openssl),
        ignore = "needs openssl: install it, or set TOUCHMARK_TEST_OPENSSL"
    )]
    openssl_reads_the_exported_release_keys,
    releases_are_checked_stored_listed_and_withdrawn,
    release_uploads_are_refused_with_their_codes_and_nothing_stored,
    #[cfg_attr(
        not(tm_imgtool),
        ignore = "needs imgtool 2.5.0 (pip install imgtool==2.5.0), or set TOUCHMARK_TEST_IMGTOOL"
    )]
    a_release_made_by_imgtool_is_accepted,
    #[cfg_attr(
        not(tm_imgtool),
        ignore = "needs python3 with cryptography for the MCUboot reference (pip install imgtool==2.5.0)"
    )]
    each_unit_receives_an_image_only_its_own_key_opens,
    an_order_release_is_named_checked_and_logged,
    #[cfg_attr(
        not(tm_imgtool),
        ignore = "needs python3 with cryptography for the MCUboot reference (pip install imgtool==2.5.0)"
    )]
    a_unit_in_the_field_receives_later_releases_over_its_own_certificate,
    only_an_issued_unrevoked_unit_receives_updates,
    #[cfg_attr(
        not(tm_openssl),
        ignore = "needs openssl: install it, or set TOUCHMARK_TEST_OPENSSL"
    )]
    a_product_that_requires_attestation_takes_only_vendor_certified_keys,
    a_report_affects_the_units_whose_current_firmware_it_names,
);

/// The payload of the releases built here.
fn payload() -> Vec<u8> {
    (0..6000u32).map(|i| (i * 7 % 251) as u8).collect()
}

/// A release built as `imgtool sign --encrypt` builds it, signed by the reference Ed25519 key
/// (`keys/sign-ed25519.pem`), encrypted to `release_pem`.
fn build(release_pem: &str, version: (u8, u8, u16, u32), kind: EncKind) -> Vec<u8> {
    let signing =
        touchmark_firmware::keys::pem_decode(&vector("keys/sign-ed25519.pem"), "PRIVATE KEY")
            .unwrap();
    build_release(
        &payload(),
        &BuildOptions {
            header_size: 0x200,
            version,
            kind,
        },
        &signing,
        &PublicKey::from_pem(release_pem).unwrap(),
        &ContentKey::new(&[7; 16]).unwrap(),
        Ephemeral::Fresh,
    )
    .unwrap()
}

/// A product with an X25519 release key; returns the product and the key's public PEM.
async fn product_with_release_key(
    kit: &TestServer,
) -> (String, touchmark_core::api::ReleaseKeyBody) {
    let product = kit.product("fw").await;
    let key = kit
        .admin
        .create_release_key(&product, &key_request(Some("x25519")))
        .await
        .unwrap();
    (product, key)
}

async fn register(kit: &TestServer, product: &str, pem: &str) -> String {
    kit.admin
        .add_firmware_key(
            product,
            &AddFirmwareKey {
                public_key_pem: vector(pem),
            },
        )
        .await
        .unwrap()
        .key_id
}

/// A release signed by a registered key and encrypted to the product's release key: stored
/// byte for byte as uploaded with its SBOM, logged with its hashes and keys, listed, shown;
/// its version once per product; withdrawn once, and still listed.
async fn releases_are_checked_stored_listed_and_withdrawn(backend: Backend) {
    let kit = TestServer::start(backend).await;
    let (product, key) = product_with_release_key(&kit).await;
    let signing = register(&kit, &product, "keys/sign-ed25519.pub.pem").await;
    let image = build(&key.public_key_pem, (1, 4, 0, 0), EncKind::X25519);
    let sbom = br#"{"bomFormat":"CycloneDX","specVersion":"1.6","components":[]}"#;

    let release = kit
        .admin
        .upload_release(&product, "1.4.0", &image, Some(sbom))
        .await
        .unwrap();
    assert_eq!(release.product, product);
    assert_eq!(release.version, "1.4.0+0");
    assert_eq!(release.image_sha256, Sha256Hash::of(&image).to_hex());
    assert_eq!(release.image_size, image.len() as u64);
    assert_eq!(release.signing_key, signing);
    assert_eq!(release.release_key, key.id);
    assert_eq!(release.sbom_sha256, Some(Sha256Hash::of(sbom).to_hex()));
    assert_eq!(release.withdrawn_at, None);
    // The hash TLV imgtool's format carries: the plaintext's hash.
    let layout = touchmark_firmware::parse(&image).unwrap();
    let hash = layout.entries.iter().find(|e| e.typ == 0x10).unwrap();
    assert_eq!(
        release.plaintext_hash,
        hex::encode(&image[hash.off..hash.off + hash.len])
    );

    // Stored as uploaded: the ciphertext, not a byte changed; the SBOM as it came.
    assert_eq!(
        kit.store.release_image(&release.id).await.unwrap(),
        Some(image.clone())
    );
    assert_eq!(
        kit.store.release_sbom(&release.id).await.unwrap(),
        Some(sbom.to_vec())
    );
    assert_eq!(
        kit.admin.releases(&product).await.unwrap(),
        std::slice::from_ref(&release)
    );
    assert_eq!(
        kit.admin.release(&product, &release.id).await.unwrap(),
        release
    );
    let events = events_of(&kit, "release.created").await;
    assert_eq!(events.len(), 1);
    let e = &events[0];
    assert_eq!(e["release"], release.id.as_str());
    assert_eq!(e["version"], "1.4.0+0");
    assert_eq!(e["image_sha256"], release.image_sha256.as_str());
    assert_eq!(e["size"], image.len() as u64);
    assert_eq!(e["signing_key"], signing.as_str());
    assert_eq!(e["release_key"], key.id.as_str());
    assert_eq!(e["sbom_sha256"], Sha256Hash::of(sbom).to_hex().as_str());

    // The same version again, even as another image: refused, nothing stored or logged.
    let size = kit.log_size().await;
    let again = build(&key.public_key_pem, (1, 4, 0, 0), EncKind::X25519);
    let e = kit
        .admin
        .upload_release(&product, "1.4.0+0", &again, None)
        .await
        .unwrap_err();
    assert_eq!(api_error(e), (409, "conflict".into()));
    assert_eq!(kit.log_size().await, size);
    // Another product's view does not show it.
    let other = kit.product("other").await;
    let e = kit.admin.release(&other, &release.id).await.unwrap_err();
    assert_eq!(api_error(e), (404, "not_found".into()));

    let withdrawn = kit
        .admin
        .withdraw_release(&product, &release.id)
        .await
        .unwrap();
    assert!(withdrawn.withdrawn_at.is_some());
    let e = kit
        .admin
        .withdraw_release(&product, &release.id)
        .await
        .unwrap_err();
    assert_eq!(api_error(e), (409, "conflict".into()));
    let e = kit
        .admin
        .withdraw_release(&product, "rel-none")
        .await
        .unwrap_err();
    assert_eq!(api_error(e), (404, "not_found".into()));
    assert_eq!(kit.admin.releases(&product).await.unwrap(), [withdrawn]);
    let events = events_of(&kit, "release.withdrawn").await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["release"], release.id.as_str());
}

/// Each refusal of an upload, with its code: nothing stored, nothing logged.
async fn release_uploads_are_refused_with_their_codes_and_nothing_stored(backend: Backend) {
    let kit = TestServer::start(backend).await;
    let (product, key) = product_with_release_key(&kit).await;
    // Only the P-256 key is registered: an image signed by the Ed25519 key is not the
    // product's.
    register(&kit, &product, "keys/sign-ecdsa-p256.pub.pem").await;
    let token = kit
        .admin
        .create_token(&touchmark_client::api::CreateToken {
            role: "admin".into(),
            label: "raw".into(),
        })
        .await
        .unwrap()
        .token;
    let good = build(&key.public_key_pem, (1, 4, 0, 0), EncKind::X25519);
    let upload = |image: Vec<u8>, version: &'static str| {
        let admin = kit.admin.clone();
        let product = product.clone();
        async move {
            let e = admin
                .upload_release(&product, version, &image, None)
                .await
                .unwrap_err();
            api_error(e)
        }
    };
    let size = kit.log_size().await;
    assert_eq!(
        upload(good.clone(), "1.4.0").await,
        (422, "signature_invalid".into())
    );
    register(&kit, &product, "keys/sign-ed25519.pub.pem").await;
    let size = size + 1;

    let mut cases: Vec<(&str, Vec<u8>, &str, u16, &str)> = Vec::new();
    cases.push((
        "not MCUboot",
        b"#!/bin/sh\necho not an image\n".to_vec(),
        "1.4.0",
        422,
        "not_mcuboot_image",
    ));
    let mut clear = good.clone();
    clear[16..20].copy_from_slice(&0u32.to_le_bytes());
    cases.push(("no encryption flag", clear, "1.4.0", 422, "not_encrypted"));
    let foreign = build(
        &vector("keys/release-x25519.pub.pem"),
        (1, 4, 0, 0),
        EncKind::X25519,
    );
    cases.push((
        "encrypted to another X25519 key",
        foreign,
        "1.4.0",
        422,
        "enc_tlv_hmac_mismatch",
    ));
    let p256 = build(
        &vector("keys/release-ec256.pub.pem"),
        (1, 4, 0, 0),
        EncKind::Ec256,
    );
    cases.push((
        "encrypted to a P-256 key",
        p256,
        "1.4.0",
        422,
        "release_key_unknown",
    ));
    let layout = touchmark_firmware::parse(&good).unwrap();
    let enc = layout.entries.iter().find(|e| e.typ == 0x33).unwrap();
    let mut tag = good.clone();
    tag[enc.off + 32] ^= 1;
    cases.push((
        "the key TLV's tag altered",
        tag,
        "1.4.0",
        422,
        "enc_tlv_hmac_mismatch",
    ));
    let mut body = good.clone();
    body[0x200 + 100] ^= 1;
    cases.push((
        "a byte of the body altered",
        body,
        "1.4.0",
        422,
        "hash_mismatch",
    ));
    let mut truncated = good.clone();
    truncated.truncate(good.len() - 10);
    cases.push(("truncated", truncated, "1.4.0", 422, "image_malformed"));
    cases.push((
        "another version than the header's",
        good.clone(),
        "1.5.0",
        422,
        "unprocessable",
    ));
    cases.push((
        "a version beyond MCUboot's widths",
        good.clone(),
        "1.4.99999",
        422,
        "unprocessable",
    ));
    cases.push((
        "a version of another shape",
        good.clone(),
        "v1.4",
        400,
        "invalid_request",
    ));
    cases.push((
        "over the size limit",
        vec![0; 16 * 1024 * 1024 + 1],
        "1.4.0",
        413,
        "image_too_large",
    ));
    for (what, image, version, status, code) in cases {
        assert_eq!(
            upload(image, version).await,
            (status, code.into()),
            "{what}"
        );
    }
    let e = kit
        .admin
        .upload_release("nope", "1.4.0", &good, None)
        .await
        .unwrap_err();
    assert_eq!(api_error(e), (404, "not_found".into()));
    let raw = kit.raw();
    let reply = raw
        .send(
            reqwest::Method::POST,
            &format!("/v1/products/{product}/releases"),
            Some("application/json"),
            br#"{"version":"1.4.0","image_base64":"not base64!"}"#.to_vec(),
            Some(&token),
        )
        .await;
    reply.assert_error(422, "unprocessable");

    assert!(kit.admin.releases(&product).await.unwrap().is_empty());
    assert_eq!(kit.log_size().await, size);
    // The good image is accepted afterwards: the refusals left nothing in its way.
    kit.admin
        .upload_release(&product, "1.4.0", &good, None)
        .await
        .unwrap();
}

/// The brand owner's flow with the real imgtool: an Ed25519 signing key made by `imgtool keygen`
/// (imgtool pairs Ed25519 signing with X25519 encryption),
/// its public key registered as `imgtool getpub` writes it, an image signed and encrypted to the
/// exported release key by `imgtool sign --encrypt`: accepted, its signing key named. The same
/// image signed without `--encrypt` is refused as `not_encrypted`.
async fn a_release_made_by_imgtool_is_accepted(backend: Backend) {
    let kit = TestServer::start(backend).await;
    let (product, key) = product_with_release_key(&kit).await;
    let imgtool = touchmark_testenv::tool(&touchmark_testenv::IMGTOOL);
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name);
    let run = |args: Vec<OsString>| {
        let out = std::process::Command::new(&imgtool)
            .args(&args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "imgtool {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    };
    let os = |s: &str| OsString::from(s);
    std::fs::write(path("release.pub.pem"), &key.public_key_pem).unwrap();
    std::fs::write(path("app.bin"), payload()).unwrap();
    run(vec![
        os("keygen"),
        os("-k"),
        path("signing.pem").into(),
        os("-t"),
        os("ed25519"),
    ]);
    let public = run(vec![
        os("getpub"),
        os("-k"),
        path("signing.pem").into(),
        os("-e"),
        os("pem"),
    ]);
    let registered = kit
        .admin
        .add_firmware_key(
            &product,
            &AddFirmwareKey {
                public_key_pem: String::from_utf8(public).unwrap(),
            },
        )
        .await
        .unwrap();
    let sign = |encrypt: bool, out: &str| {
        let mut args = vec![
            os("sign"),
            os("--key"),
            path("signing.pem").into(),
            os("--header-size"),
            os("0x200"),
            os("--pad-header"),
            os("--slot-size"),
            os("0x40000"),
            os("--version"),
            os("1.4.0"),
        ];
        if encrypt {
            args.extend([os("--encrypt"), path("release.pub.pem").into()]);
        }
        args.extend([path("app.bin").into(), path(out).into()]);
        run(args);
        std::fs::read(path(out)).unwrap()
    };
    let clear = sign(false, "app-signed.bin");
    let e = kit
        .admin
        .upload_release(&product, "1.4.0", &clear, None)
        .await
        .unwrap_err();
    assert_eq!(api_error(e), (422, "not_encrypted".into()));
    let image = sign(true, "app-enc.bin");
    let release = kit
        .admin
        .upload_release(&product, "1.4.0", &image, None)
        .await
        .unwrap();
    assert_eq!(release.signing_key, registered.key_id);
    assert_eq!(release.release_key, key.id);
    assert_eq!(release.image_sha256, Sha256Hash::of(&image).to_hex());
}

/// Two keys of each algorithm for one product (rotation): each has its own public key, each is
/// a `release_key.created` event naming it and the key provider it lives in, and the list gives
/// them oldest first.
async fn release_keys_are_made_held_listed_and_logged(backend: Backend) {
    let kit = TestServer::start(backend).await;
    let product = kit.product("fw").await;
    let mut made = Vec::new();
    for algorithm in [None, Some("x25519"), Some("ec256")] {
        let key = kit
            .admin
            .create_release_key(&product, &key_request(algorithm))
            .await
            .unwrap();
        assert_eq!(key.product, product);
        assert_eq!(key.algorithm, algorithm.unwrap_or("x25519"));
        let public = PublicKey::from_pem(&key.public_key_pem).unwrap();
        assert_eq!(
            public.kind(),
            if key.algorithm == "ec256" {
                "p256"
            } else {
                "x25519"
            }
        );
        assert_eq!(public.key_id(), key.public_key_sha256);
        made.push(key);
    }
    assert_ne!(made[0].public_key_pem, made[1].public_key_pem);
    assert_ne!(made[0].id, made[1].id);

    let listed = kit.admin.release_keys(&product).await.unwrap();
    let ids = |keys: &[touchmark_core::api::ReleaseKeyBody]| {
        let mut ids: Vec<String> = keys.iter().map(|k| k.id.clone()).collect();
        ids.sort();
        ids
    };
    assert_eq!(ids(&listed), ids(&made));
    assert_eq!(listed.len(), 3);
    let other = kit.product("other").await;
    assert!(kit.admin.release_keys(&other).await.unwrap().is_empty());

    let events = events_of(&kit, "release_key.created").await;
    assert_eq!(events.len(), 3);
    for key in &made {
        let event = events
            .iter()
            .find(|e| e["release_key"] == key.id.as_str())
            .unwrap();
        assert_eq!(event["product"], product.as_str());
        assert_eq!(event["algorithm"], key.algorithm.as_str());
        assert_eq!(event["public_key_sha256"], key.public_key_sha256.as_str());
        assert_eq!(event["store"], "memory");
        assert!(event["actor"].as_str().unwrap().starts_with("token:"));
    }
}

/// An unknown product, a malformed product id, an unknown algorithm, an auditor's token: each
/// refused with its code, with no key stored and nothing logged.
async fn release_key_refusals_store_and_log_nothing(backend: Backend) {
    let kit = TestServer::start(backend).await;
    let product = kit.product("fw").await;
    let size = kit.log_size().await;

    let e = kit
        .admin
        .create_release_key("nope", &key_request(None))
        .await
        .unwrap_err();
    assert_eq!(api_error(e), (404, "not_found".into()));
    let e = kit.admin.release_keys("nope").await.unwrap_err();
    assert_eq!(api_error(e), (404, "not_found".into()));
    let e = kit
        .admin
        .create_release_key(&product, &key_request(Some("rsa-2048")))
        .await
        .unwrap_err();
    assert_eq!(api_error(e), (400, "invalid_request".into()));
    let e = kit
        .admin
        .create_release_key("bad id!", &key_request(None))
        .await
        .unwrap_err();
    assert_eq!(api_error(e).0, 400);

    let auditor = kit
        .admin
        .create_token(&touchmark_client::api::CreateToken {
            role: "auditor".into(),
            label: "audit".into(),
        })
        .await
        .unwrap();
    let size = size + 1;
    let e = kit
        .with_token(&auditor.token)
        .create_release_key(&product, &key_request(None))
        .await
        .unwrap_err();
    assert_eq!(api_error(e), (403, "forbidden".into()));
    // An auditor may read them.
    assert!(
        kit.with_token(&auditor.token)
            .release_keys(&product)
            .await
            .unwrap()
            .is_empty()
    );

    assert!(kit.admin.release_keys(&product).await.unwrap().is_empty());
    assert_eq!(kit.log_size().await, size);
}

/// The P-256 and Ed25519 keys that signed the reference releases: each registered once, its key
/// id the KEYHASH TLV imgtool wrote into the images they signed, each a `firmware_key.added`
/// event; the list gives both.
async fn firmware_signing_keys_are_registered_with_imgtools_key_id(backend: Backend) {
    let kit = TestServer::start(backend).await;
    let product = kit.product("fw").await;
    let manifest: Value = serde_json::from_str(&vector("vectors.json")).unwrap();
    for (pem, algorithm) in [
        ("keys/sign-ecdsa-p256.pub.pem", "p256"),
        ("keys/sign-ed25519.pub.pem", "ed25519"),
    ] {
        let added = kit
            .admin
            .add_firmware_key(
                &product,
                &AddFirmwareKey {
                    public_key_pem: vector(pem),
                },
            )
            .await
            .unwrap();
        assert_eq!(added.algorithm, algorithm);
        // The KEYHASH TLV of a release this key signed, as imgtool wrote it.
        let release = manifest["releases"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["signing_pub"] == pem)
            .unwrap();
        let image = std::fs::read(vectors().join(release["file"].as_str().unwrap())).unwrap();
        let keyhash = release["tlvs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == "KEYHASH")
            .unwrap();
        let off = usize::try_from(keyhash["off"].as_u64().unwrap()).unwrap();
        assert_eq!(added.key_id, hex::encode(&image[off..off + 32]), "{pem}");
    }
    let listed = kit.admin.firmware_keys(&product).await.unwrap();
    let mut algorithms: Vec<&str> = listed.iter().map(|k| k.algorithm.as_str()).collect();
    algorithms.sort_unstable();
    assert_eq!(algorithms, ["ed25519", "p256"]);
    let events = events_of(&kit, "firmware_key.added").await;
    assert_eq!(events.len(), 2);
    for key in &listed {
        assert!(
            events
                .iter()
                .any(|e| e["key_id"] == key.key_id.as_str() && e["product"] == product.as_str())
        );
    }
}

/// A key registered twice, a release (X25519) key offered as a signing key, a private key, bytes
/// that are no key, an unknown product: each refused with its code; nothing stored or logged.
async fn firmware_key_refusals_store_and_log_nothing(backend: Backend) {
    let kit = TestServer::start(backend).await;
    let product = kit.product("fw").await;
    let add = |pem: String| AddFirmwareKey {
        public_key_pem: pem,
    };
    kit.admin
        .add_firmware_key(&product, &add(vector("keys/sign-ed25519.pub.pem")))
        .await
        .unwrap();
    let size = kit.log_size().await;

    let cases = [
        (
            product.as_str(),
            vector("keys/sign-ed25519.pub.pem"),
            409,
            "conflict",
        ),
        (
            product.as_str(),
            vector("keys/release-x25519.pub.pem"),
            422,
            "unprocessable",
        ),
        (
            product.as_str(),
            vector("keys/sign-ecdsa-p256.pem"),
            422,
            "unprocessable",
        ),
        (
            product.as_str(),
            "not a key".to_owned(),
            422,
            "unprocessable",
        ),
        (product.as_str(), "x".repeat(10_000), 422, "unprocessable"),
        (
            "nope",
            vector("keys/sign-ecdsa-p256.pub.pem"),
            404,
            "not_found",
        ),
    ];
    for (product, pem, status, code) in cases {
        let e = kit
            .admin
            .add_firmware_key(product, &add(pem.clone()))
            .await
            .unwrap_err();
        assert_eq!(
            api_error(e),
            (status, code.into()),
            "{}",
            &pem[..pem.len().min(40)]
        );
    }
    assert_eq!(kit.admin.firmware_keys(&product).await.unwrap().len(), 1);
    assert_eq!(kit.log_size().await, size);
}

/// openssl reads each exported release key as the algorithm asked for.
async fn openssl_reads_the_exported_release_keys(backend: Backend) {
    let kit = TestServer::start(backend).await;
    let product = kit.product("fw").await;
    let openssl = touchmark_testenv::tool(&touchmark_testenv::OPENSSL);
    let dir = tempfile::tempdir().unwrap();
    for (algorithm, expect) in [("x25519", "X25519"), ("ec256", "prime256v1")] {
        let key = kit
            .admin
            .create_release_key(&product, &key_request(Some(algorithm)))
            .await
            .unwrap();
        let file = dir.path().join(format!("{algorithm}.pem"));
        std::fs::write(&file, &key.public_key_pem).unwrap();
        let out = std::process::Command::new(&openssl)
            .args(["pkey", "-pubin", "-noout", "-text", "-in"])
            .arg(&file)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains(expect), "{algorithm}: {text}");
        let der = std::process::Command::new(&openssl)
            .args(["pkey", "-pubin", "-outform", "DER", "-in"])
            .arg(&file)
            .output()
            .unwrap();
        assert!(der.status.success());
        assert_eq!(
            touchmark_core::event::Sha256Hash::of(&der.stdout).to_hex(),
            key.public_key_sha256
        );
    }
}

/// A product with an X25519 release key, a registered signing key and release 1.4.0; a
/// factory with an enrolled station; an open order of 10 units delivering that release.
async fn order_with_release(
    kit: &TestServer,
) -> (
    Vec<u8>,
    String,
    touchmark_testkit::Station,
    touchmark_core::api::ReleaseBody,
) {
    let (product, key) = product_with_release_key(kit).await;
    register(kit, &product, "keys/sign-ed25519.pub.pem").await;
    let image = build(&key.public_key_pem, (1, 4, 0, 0), EncKind::X25519);
    let release = kit
        .admin
        .upload_release(&product, "1.4.0", &image, None)
        .await
        .unwrap();
    let factory = kit.factory("cm").await;
    let mut request =
        touchmark_testkit::order_request("PO-FW", &product, &factory, 10, "SN-000001..SN-000010");
    request.release = Some("1.4.0".into());
    let order = kit.order_with(request).await;
    let station = kit.enroll_station(&factory).await;
    (image, order, station, release)
}

/// A unit's X25519 encryption key, and its binding signed by the unit's identity key.
fn bound_key(
    unit: &touchmark_testkit::Unit,
    order: &str,
) -> (touchmark_firmware::SoftwareAgreementKey, Value) {
    use touchmark_pki::Signer as _;
    let key = touchmark_firmware::SoftwareAgreementKey::generate(touchmark_firmware::Curve::X25519)
        .unwrap();
    let spki = key.public_key().spki_der();
    let message = touchmark_core::firmware::binding_message(
        &touchmark_core::OrderId::parse(order).unwrap(),
        &touchmark_core::Serial::parse(&unit.serial).unwrap(),
        &spki,
    );
    let signature = unit.signer.sign(&message).unwrap();
    let binding = serde_json::json!({
        "public_key_pem": key.public_key().to_pem(),
        "signature": base64::Engine::encode(&base64::engine::general_purpose::STANDARD, signature),
    });
    (key, binding)
}

/// A CSR of `unit`'s identity key that carries `key` in its unit-encryption-key attribute.
fn csr_with_key(
    unit: &touchmark_testkit::Unit,
    key: &touchmark_firmware::SoftwareAgreementKey,
) -> String {
    let der = touchmark_pki::build_csr_with(
        &unit.signer,
        &unit.serial,
        Some(&key.public_key().spki_der()),
    )
    .unwrap();
    touchmark_pki::pem::encode("CERTIFICATE REQUEST", &der)
}

/// The unit's X25519 private key as a PKCS#8 PEM, for the Python reference.
fn x25519_pkcs8_pem(key: &touchmark_firmware::SoftwareAgreementKey) -> String {
    let mut der = hex::decode("302e020100300506032b656e04220420").unwrap();
    der.extend_from_slice(&key.raw_private().unwrap());
    touchmark_firmware::keys::pem_encode(&der, "PRIVATE KEY")
}

/// On an order with a release, each unit that passes and is counted receives, in the answer,
/// the release's content key wrapped to its own encryption key; its whole image is served over
/// the station's mTLS. The image differs from the release only in the key TLV's value; the
/// unit's key opens it (the MCUboot reference finds the content key the release was built
/// with), another unit's key and the release itself do not give it. A retry gets the same
/// wrap; the `unit.issued` event names the release and the image's SHA-256. A station of
/// another factory gets nothing.
async fn each_unit_receives_an_image_only_its_own_key_opens(backend: Backend) {
    let kit = TestServer::start(backend).await;
    let (image, order, station, release) = order_with_release(&kit).await;
    let mut images = Vec::new();
    for n in 1..=3 {
        let unit = touchmark_testkit::Unit::new(&format!("SN-00000{n}"));
        let (key, binding) = bound_key(&unit, &order);
        let mut body = unit.request(touchmark_testkit::passing_test(&unit.serial));
        if n == 3 {
            // The third unit's CSR carries its key, under the CSR's own signature.
            body["csr"] = csr_with_key(&unit, &key).into();
        } else {
            body["encryption_key"] = binding;
        }
        let reply = station.raw.provision(&order, &body).await;
        assert_eq!(reply.status, 201, "{}", reply.text);
        let fw = &reply.body["firmware"];
        assert_eq!(fw["release"], release.id.as_str(), "{}", reply.text);
        assert_eq!(fw["version"], "1.4.0+0");
        assert_eq!(
            fw["release_sha256"],
            Sha256Hash::of(&image).to_hex().as_str()
        );
        assert_eq!(fw["image_size"], image.len() as u64);
        let path = fw["image_path"].as_str().unwrap();
        assert_eq!(
            path,
            format!("/v1/orders/{order}/units/{}/firmware", unit.serial)
        );

        // The whole image, streamed.
        let (status, headers, unit_image) = station.raw.get_bytes(path).await;
        assert_eq!(status, 200);
        assert_eq!(headers["content-type"], "application/octet-stream");
        let sha = Sha256Hash::of(&unit_image).to_hex();
        assert_eq!(fw["image_sha256"], sha.as_str());
        assert_eq!(headers["x-touchmark-image-sha256"], sha.as_str());
        // The answer's splice gives the same bytes as the route.
        let offset = fw["key_tlv_offset"].as_u64().unwrap() as usize;
        let value = base64::Engine::decode(
            &base64::engine::general_purpose::STANDARD,
            fw["key_tlv_value"].as_str().unwrap(),
        )
        .unwrap();
        let mut spliced = image.clone();
        spliced[offset..offset + value.len()].copy_from_slice(&value);
        assert_eq!(spliced, unit_image);
        // Only the key TLV's value differs from the release; the unit's key opens it.
        touchmark_firmware::check_identical(&unit_image, &image).unwrap();
        assert_ne!(unit_image, image);
        let plain = touchmark_firmware::decrypt(&unit_image, &key).unwrap();
        assert_eq!(&plain[0x200..0x200 + payload().len()], payload().as_slice());

        // The MCUboot reference (independent of this code) finds the content key the release
        // was built with, under the unit's key.
        assert_eq!(
            reference_content_key(&unit_image, &key),
            hex::encode([7u8; 16]).as_str()
        );

        // A retry is answered with the same wrap.
        let again = station.raw.provision(&order, &body).await;
        assert_eq!(again.status, 200, "{}", again.text);
        assert_eq!(again.body["firmware"], *fw);
        images.push((unit_image, key, unit.serial.clone()));
    }
    // Another unit's key does not open a unit's image.
    let e = touchmark_firmware::decrypt(&images[0].0, &images[1].1).unwrap_err();
    assert_eq!(e.code(), "enc_tlv_hmac_mismatch");

    // Each issuance names the release and its unit's image.
    let issued = events_of(&kit, "unit.issued").await;
    assert_eq!(issued.len(), 3);
    for ((unit_image, _, serial), e) in images.iter().zip(&issued) {
        assert_eq!(e["serial"], serial.as_str());
        assert_eq!(e["release"], release.id.as_str());
        assert_eq!(
            e["firmware_sha256"],
            Sha256Hash::of(unit_image).to_hex().as_str()
        );
    }
    // A station of another factory, or a unit with no firmware, gets nothing.
    let other = kit.enroll_station(&kit.factory("other-cm").await).await;
    let (status, _, _) = other
        .raw
        .get_bytes(&format!("/v1/orders/{order}/units/SN-000001/firmware"))
        .await;
    assert_eq!(status, 404);
    let (status, _, _) = station
        .raw
        .get_bytes(&format!("/v1/orders/{order}/units/SN-000009/firmware"))
        .await;
    assert_eq!(status, 404);
    let (status, _, _) = kit
        .raw()
        .get_bytes(&format!("/v1/orders/{order}/units/SN-000001/firmware"))
        .await;
    assert_eq!(status, 401);
}

/// An order's release is named by version and logged; a unit without a bound encryption key
/// (none, another type, a binding to another serial or a bad signature) is refused
/// `encryption_key_invalid`, logged, and counts nothing; a withdrawn release stops issuance
/// (`release_withdrawn`) until the order names another.
async fn an_order_release_is_named_checked_and_logged(backend: Backend) {
    let kit = TestServer::start(backend).await;
    let (_, order, station, release) = order_with_release(&kit).await;
    let set = events_of(&kit, "order.release_set").await;
    assert_eq!(set.len(), 1);
    assert_eq!(set[0]["order"], order.as_str());
    assert_eq!(set[0]["release"], release.id.as_str());
    assert_eq!(set[0]["version"], "1.4.0+0");

    let unit = touchmark_testkit::Unit::new("SN-000001");
    let (_, binding) = bound_key(&unit, &order);
    let test = touchmark_testkit::passing_test(&unit.serial);
    let other = touchmark_testkit::Unit::new("SN-000002");
    let (_, others) = bound_key(&other, &order);
    let p256 = touchmark_firmware::SoftwareAgreementKey::generate(touchmark_firmware::Curve::P256)
        .unwrap();
    let mut wrong_type = binding.clone();
    wrong_type["public_key_pem"] = p256.public_key().to_pem().into();
    let mut bad_signature = binding.clone();
    bad_signature["signature"] = "AAAA".into();
    let x25519 =
        touchmark_firmware::SoftwareAgreementKey::generate(touchmark_firmware::Curve::X25519)
            .unwrap();
    let csr_p256 = csr_with_key(&unit, &p256);
    let csr_x25519 = csr_with_key(&unit, &x25519);
    let cases: [(&str, Option<Value>, Option<&str>); 6] = [
        ("no key", None, None),
        ("a P-256 key for an X25519 release", Some(wrong_type), None),
        ("another unit's binding", Some(others), None),
        (
            "a signature that does not verify",
            Some(bad_signature),
            None,
        ),
        (
            "a P-256 key in the CSR for an X25519 release",
            None,
            Some(&csr_p256),
        ),
        (
            "a key in the CSR and another bound in the request",
            Some(binding.clone()),
            Some(&csr_x25519),
        ),
    ];
    for (name, binding, csr) in cases {
        let before = kit.log_size().await;
        let mut body = unit.request(test.clone());
        if let Some(binding) = binding {
            body["encryption_key"] = binding;
        }
        if let Some(csr) = csr {
            body["csr"] = csr.into();
        }
        let reply = station.raw.provision(&order, &body).await;
        assert_eq!(reply.status, 422, "{name}: {}", reply.text);
        assert_eq!(reply.body["code"], "encryption_key_invalid", "{name}");
        assert_eq!(
            kit.log_size().await,
            before + 1,
            "{name}: one refusal logged"
        );
    }
    let detail = kit.admin.order(&order).await.unwrap();
    assert_eq!(detail.order.issued, 0);
    // A refusal stores no wrap (I3: the wrap only with the count and the certificate).
    let order_id = touchmark_core::OrderId::parse(&order).unwrap();
    let serial = touchmark_core::Serial::parse(&unit.serial).unwrap();
    assert_eq!(
        kit.store.unit_firmware(&order_id, &serial).await.unwrap(),
        None
    );

    // Withdrawn: nothing is issued until the order names another release.
    let product = release.product.clone();
    kit.admin
        .withdraw_release(&product, &release.id)
        .await
        .unwrap();
    let mut body = unit.request(test.clone());
    body["encryption_key"] = binding.clone();
    let reply = station.raw.provision(&order, &body).await;
    assert_eq!(reply.status, 409, "{}", reply.text);
    assert_eq!(reply.body["code"], "release_withdrawn");
    let e = kit
        .admin
        .set_order_release(&order, "1.4.0")
        .await
        .unwrap_err();
    assert_eq!(api_error(e), (409, "release_withdrawn".into()));
    let e = kit
        .admin
        .set_order_release(&order, "9.9.9")
        .await
        .unwrap_err();
    assert_eq!(api_error(e), (404, "not_found".into()));
    let e = kit
        .admin
        .set_order_release("PO-NONE", "1.4.0")
        .await
        .unwrap_err();
    assert_eq!(api_error(e), (404, "not_found".into()));
    let key = kit.admin.release_keys(&product).await.unwrap().remove(0);
    let next = build(&key.public_key_pem, (1, 5, 0, 0), EncKind::X25519);
    let next = kit
        .admin
        .upload_release(&product, "1.5.0", &next, None)
        .await
        .unwrap();
    let named = kit.admin.set_order_release(&order, "1.5.0").await.unwrap();
    assert_eq!(named.release, next.id);
    let reply = station.raw.provision(&order, &body).await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    assert_eq!(reply.body["firmware"]["release"], next.id.as_str());
    // Stored with the certificate: the wrap the answer gave, and the image's hash.
    let stored = kit
        .store
        .unit_firmware(&order_id, &serial)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.release, next.id);
    assert_eq!(
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &stored.wrap),
        reply.body["firmware"]["key_tlv_value"].as_str().unwrap()
    );
    assert_eq!(
        stored.image_sha256.to_hex(),
        reply.body["firmware"]["image_sha256"].as_str().unwrap()
    );
    // Refused at the count, after its wrap was made: nothing of it is stored.
    kit.admin.set_quota(&order, 1).await.unwrap();
    let late = touchmark_testkit::Unit::new("SN-000003");
    let (late_key, _) = bound_key(&late, &order);
    let mut body = late.request(touchmark_testkit::passing_test(&late.serial));
    body["csr"] = csr_with_key(&late, &late_key).into();
    let reply = station.raw.provision(&order, &body).await;
    assert_eq!(reply.status, 409, "{}", reply.text);
    assert_eq!(reply.body["code"], "quota_exhausted");
    let late_serial = touchmark_core::Serial::parse(&late.serial).unwrap();
    assert_eq!(
        kit.store
            .unit_firmware(&order_id, &late_serial)
            .await
            .unwrap(),
        None
    );
    assert_eq!(events_of(&kit, "order.release_set").await.len(), 2);
    // An order created with a release that does not exist is not created.
    let factory = station.factory.clone();
    let mut request = touchmark_testkit::order_request(
        "PO-NO-FW",
        &product,
        &factory,
        10,
        "SN-000001..SN-000010",
    );
    request.release = Some("7.0.0".into());
    let e = kit.admin.create_order(&request).await.unwrap_err();
    assert_eq!(api_error(e), (404, "not_found".into()));
    let e = kit.admin.order("PO-NO-FW").await.unwrap_err();
    assert_eq!(api_error(e), (404, "not_found".into()));
}

/// The MCUboot reference's reading of `image` under `key`: the content key it finds.
fn reference_content_key(image: &[u8], key: &touchmark_firmware::SoftwareAgreementKey) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let (image_path, key_path) = (dir.path().join("unit.bin"), dir.path().join("unit.pem"));
    std::fs::write(&image_path, image).unwrap();
    std::fs::write(&key_path, x25519_pkcs8_pem(key)).unwrap();
    let out = std::process::Command::new(touchmark_testenv::tool(&touchmark_testenv::PYTHON3))
        .current_dir(vectors())
        .arg("mcuboot_rewrap.py")
        .args(["unwrap", "--key"])
        .arg(&key_path)
        .arg(&image_path)
        .output()
        .unwrap();
    let json: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
        panic!(
            "mcuboot_rewrap.py: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert!(out.status.success(), "{json}");
    json["content_key"].clone()
}

/// A unit provisioned with its encryption key bound in its CSR: its device client (its own
/// certificate chain and key over mTLS) and its encryption key.
async fn provisioned_unit(
    kit: &TestServer,
    station: &touchmark_testkit::Station,
    order: &str,
    serial: &str,
) -> (
    touchmark_testkit::Raw,
    touchmark_firmware::SoftwareAgreementKey,
    Value,
) {
    let unit = touchmark_testkit::Unit::new(serial);
    let key = touchmark_firmware::SoftwareAgreementKey::generate(touchmark_firmware::Curve::X25519)
        .unwrap();
    let mut body = unit.request(touchmark_testkit::passing_test(serial));
    body["csr"] = csr_with_key(&unit, &key).into();
    let reply = station.raw.provision(order, &body).await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    let device = touchmark_testkit::Raw::new(
        &kit.base_url,
        &kit.root_ca_pem,
        Some((
            reply.body["chain_pem"].as_str().unwrap(),
            &unit.signer.pkcs8_pem(),
        )),
    );
    (device, key, reply.body)
}

const LATEST: &str = "/v1/device/firmware/latest";

/// A unit in the field, over its own device certificate, receives the newest release of its
/// product wrapped to the key it bound at provisioning: only the key TLV's value differs from
/// the release, its key opens it (and the MCUboot reference finds the content key the release
/// was built with), another unit's does not. The first delivery of each release to each unit is
/// logged with the image's hash; asking again, also many times at once, returns the same image
/// and logs nothing. A unit that runs the newest gets 204; a withdrawn release is offered to
/// nobody.
async fn a_unit_in_the_field_receives_later_releases_over_its_own_certificate(backend: Backend) {
    let kit = TestServer::start(backend).await;
    let (_, order, station, first) = order_with_release(&kit).await;
    let (device, key, issued) = provisioned_unit(&kit, &station, &order, "SN-000001").await;
    let (other_device, other_key, _) = provisioned_unit(&kit, &station, &order, "SN-000002").await;

    // Before a later release: the release it was provisioned with, as the station got it, and
    // nothing logged; a unit that says it runs it gets 204.
    let (status, headers, image) = device.get_bytes(LATEST).await;
    assert_eq!(status, 200);
    assert_eq!(headers["x-touchmark-release"], first.id.as_str());
    assert_eq!(headers["x-touchmark-version"], "1.4.0+0");
    let (_, _, provisioned) = station
        .raw
        .get_bytes(issued["firmware"]["image_path"].as_str().unwrap())
        .await;
    assert_eq!(image, provisioned);
    let (status, _, body) = device.get_bytes(&format!("{LATEST}?current=1.4.0")).await;
    assert_eq!((status.as_u16(), body.len()), (204, 0));
    assert!(events_of(&kit, "unit.firmware_delivered").await.is_empty());

    // Release 1.5.0, with another content key.
    let product = first.product.clone();
    let release_pem = kit.admin.release_keys(&product).await.unwrap()[0]
        .public_key_pem
        .clone();
    let later_image = build(&release_pem, (1, 5, 0, 0), EncKind::X25519);
    let later = kit
        .admin
        .upload_release(&product, "1.5.0", &later_image, None)
        .await
        .unwrap();
    let (status, headers, update) = device.get_bytes(&format!("{LATEST}?current=1.4.0")).await;
    assert_eq!(status, 200);
    assert_eq!(headers["x-touchmark-release"], later.id.as_str());
    assert_eq!(headers["x-touchmark-version"], "1.5.0+0");
    let sha = Sha256Hash::of(&update).to_hex();
    assert_eq!(headers["x-touchmark-image-sha256"], sha.as_str());
    touchmark_firmware::check_identical(&update, &later_image).unwrap();
    assert_ne!(update, later_image);
    let plain = touchmark_firmware::decrypt(&update, &key).unwrap();
    assert_eq!(&plain[0x200..0x200 + payload().len()], payload().as_slice());
    assert_eq!(
        touchmark_firmware::decrypt(&update, &other_key)
            .unwrap_err()
            .code(),
        "enc_tlv_hmac_mismatch"
    );
    assert_eq!(
        reference_content_key(&update, &key),
        hex::encode([7u8; 16]).as_str()
    );

    // Logged once, with the unit's certificate and image; asking again changes nothing.
    let (_, _, again) = device.get_bytes(LATEST).await;
    assert_eq!(again, update);
    let delivered = events_of(&kit, "unit.firmware_delivered").await;
    assert_eq!(delivered.len(), 1, "{delivered:?}");
    let e = &delivered[0];
    assert_eq!(e["serial"], "SN-000001");
    assert_eq!(e["order"], order.as_str());
    assert_eq!(e["product"], product.as_str());
    assert_eq!(e["release"], later.id.as_str());
    assert_eq!(e["version"], "1.5.0+0");
    assert_eq!(e["firmware_sha256"], sha.as_str());
    assert_eq!(e["cert_sha256"], issued["cert_sha256"]);

    // Eight requests at once from the other unit: one wrap, one event.
    let fetches = (0..8).map(|_| other_device.get_bytes(LATEST));
    let images: Vec<Vec<u8>> = futures_util::future::join_all(fetches)
        .await
        .into_iter()
        .map(|(status, _, body)| {
            assert_eq!(status, 200);
            body
        })
        .collect();
    assert!(images.iter().all(|i| *i == images[0]));
    touchmark_firmware::decrypt(&images[0], &other_key).unwrap();
    let delivered = events_of(&kit, "unit.firmware_delivered").await;
    assert_eq!(delivered.len(), 2, "{delivered:?}");
    assert_eq!(delivered[1]["serial"], "SN-000002");
    assert_eq!(
        delivered[1]["firmware_sha256"],
        Sha256Hash::of(&images[0]).to_hex().as_str()
    );

    // Withdrawn, 1.5.0 is offered to nobody: the newest left is 1.4.0, which the unit runs.
    kit.admin
        .withdraw_release(&product, &later.id)
        .await
        .unwrap();
    let (status, _, _) = device.get_bytes(&format!("{LATEST}?current=1.4.0")).await;
    assert_eq!(status, 204);
    // A version that is not one is refused.
    let (status, _, body) = device.get_bytes(&format!("{LATEST}?current=1.x")).await;
    assert_eq!(status, 422, "{}", String::from_utf8_lossy(&body));
    assert_eq!(events_of(&kit, "unit.firmware_delivered").await.len(), 2);
}

/// The code of an error answer's body.
fn code_of(body: &[u8]) -> String {
    serde_json::from_slice::<Value>(body).unwrap()["code"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// No certificate, a self-signed one, a station's, a revoked unit's, a unit of another
/// product, or a unit that bound no encryption key: each gets nothing, with its code, and
/// nothing is logged.
async fn only_an_issued_unrevoked_unit_receives_updates(backend: Backend) {
    let kit = TestServer::start(backend).await;
    let (_, order, station, first) = order_with_release(&kit).await;
    let (device, _, _) = provisioned_unit(&kit, &station, &order, "SN-000001").await;
    let (revoked, _, _) = provisioned_unit(&kit, &station, &order, "SN-000002").await;
    let refused = |status: u16, code: &str, (s, _, body): (reqwest::StatusCode, _, Vec<u8>)| {
        assert_eq!(
            (s.as_u16(), code_of(&body)),
            (status, code.to_owned()),
            "{}",
            String::from_utf8_lossy(&body)
        );
    };

    refused(
        401,
        "device_not_authorized",
        kit.raw().get_bytes(LATEST).await,
    );
    refused(
        401,
        "device_not_authorized",
        station.raw.get_bytes(LATEST).await,
    );
    let rogue = rcgen::generate_simple_self_signed(vec!["SN-000001".to_owned()]).unwrap();
    let rogue = touchmark_testkit::Raw::new(
        &kit.base_url,
        &kit.root_ca_pem,
        Some((&rogue.cert.pem(), &rogue.signing_key.serialize_pem())),
    );
    refused(401, "device_not_authorized", rogue.get_bytes(LATEST).await);

    kit.admin
        .revoke(
            touchmark_client::RevocationKind::Unit,
            "SN-000002",
            &touchmark_core::api::Revoke {
                reason: "keyCompromise".into(),
                product: None,
            },
        )
        .await
        .unwrap();
    refused(409, "unit_revoked", revoked.get_bytes(LATEST).await);

    // A unit of another product gets nothing of this one's releases.
    let other_product = kit.product("other").await;
    let factory = kit.factory("cm-2").await;
    let other_order = kit
        .order_with(touchmark_testkit::order_request(
            "PO-OTHER",
            &other_product,
            &factory,
            5,
            "SN-000001..SN-000005",
        ))
        .await;
    let other_station = kit.enroll_station(&factory).await;
    let unit = touchmark_testkit::Unit::new("SN-000003");
    let reply = other_station
        .provision(
            &other_order,
            &unit,
            touchmark_testkit::passing_test("SN-000003"),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    let other_device = touchmark_testkit::Raw::new(
        &kit.base_url,
        &kit.root_ca_pem,
        Some((
            reply.body["chain_pem"].as_str().unwrap(),
            &unit.signer.pkcs8_pem(),
        )),
    );
    refused(404, "not_found", other_device.get_bytes(LATEST).await);

    // Once its product has a release, a unit that bound no encryption key still gets nothing.
    let key = kit
        .admin
        .create_release_key(&other_product, &key_request(Some("x25519")))
        .await
        .unwrap();
    register(&kit, &other_product, "keys/sign-ed25519.pub.pem").await;
    kit.admin
        .upload_release(
            &other_product,
            "2.0.0",
            &build(&key.public_key_pem, (2, 0, 0, 0), EncKind::X25519),
            None,
        )
        .await
        .unwrap();
    refused(
        422,
        "encryption_key_invalid",
        other_device.get_bytes(LATEST).await,
    );

    // The genuine unit still runs the newest of its own product's.
    let (status, headers, _) = device.get_bytes(LATEST).await;
    assert_eq!(status, 200);
    assert_eq!(headers["x-touchmark-release"], first.id.as_str());
    assert!(events_of(&kit, "unit.firmware_delivered").await.is_empty());
}

/// A chip vendor's PKI made with openssl: a root, and a signer CA under it.
struct Vendor {
    dir: tempfile::TempDir,
}

impl Vendor {
    fn openssl(&self, args: &[&str]) {
        let out = std::process::Command::new(touchmark_testenv::tool(&touchmark_testenv::OPENSSL))
            .current_dir(self.dir.path())
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A root `root.pem` and a signer `signer.pem` under it, both named `name`.
    fn new(name: &str) -> Self {
        let vendor = Self {
            dir: tempfile::tempdir().unwrap(),
        };
        std::fs::write(
            vendor.dir.path().join("ca.ext"),
            "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign\n",
        )
        .unwrap();
        std::fs::write(
            vendor.dir.path().join("leaf.ext"),
            "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyAgreement\n",
        )
        .unwrap();
        for key in ["root.key", "signer.key"] {
            vendor.openssl(&[
                "ecparam",
                "-genkey",
                "-name",
                "prime256v1",
                "-noout",
                "-out",
                key,
            ]);
        }
        let root_subject = format!("/O={name}/CN={name} Root CA");
        vendor.openssl(&[
            "req",
            "-x509",
            "-new",
            "-key",
            "root.key",
            "-subj",
            &root_subject,
            "-days",
            "3650",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign",
            "-out",
            "root.pem",
        ]);
        let signer_subject = format!("/O={name}/CN={name} Signer");
        vendor.openssl(&[
            "req",
            "-new",
            "-key",
            "signer.key",
            "-subj",
            &signer_subject,
            "-out",
            "signer.csr",
        ]);
        vendor.openssl(&[
            "x509",
            "-req",
            "-in",
            "signer.csr",
            "-CA",
            "root.pem",
            "-CAkey",
            "root.key",
            "-days",
            "3650",
            "-extfile",
            "ca.ext",
            "-out",
            "signer.pem",
        ]);
        vendor
    }

    fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(name)).unwrap()
    }

    /// The signer's certificate of the unit's identity key (from its CSR) and of its X25519
    /// encryption key, with the signer's own certificate: what the secure element holds.
    fn attest(
        &self,
        unit: &touchmark_testkit::Unit,
        key: Option<&touchmark_firmware::SoftwareAgreementKey>,
    ) -> String {
        let serial = &unit.serial;
        std::fs::write(self.dir.path().join("unit.csr"), &unit.csr_pem).unwrap();
        self.openssl(&[
            "x509",
            "-req",
            "-in",
            "unit.csr",
            "-CA",
            "signer.pem",
            "-CAkey",
            "signer.key",
            "-days",
            "30",
            "-extfile",
            "leaf.ext",
            "-out",
            "identity.pem",
        ]);
        let mut pem = self.read("identity.pem");
        if let Some(key) = key {
            std::fs::write(self.dir.path().join("enc.pub"), key.public_key().to_pem()).unwrap();
            let subject = format!("/CN={serial} encryption");
            self.openssl(&[
                "x509",
                "-new",
                "-subj",
                &subject,
                "-force_pubkey",
                "enc.pub",
                "-CA",
                "signer.pem",
                "-CAkey",
                "signer.key",
                "-days",
                "30",
                "-extfile",
                "leaf.ext",
                "-out",
                "encryption.pem",
            ]);
            pem.push_str(&self.read("encryption.pem"));
        }
        pem.push_str(&self.read("signer.pem"));
        pem
    }
}

/// A product that names its chip vendor's root takes only units whose identity key, and
/// encryption key for a release, that vendor certified (certificates made with openssl,
/// through a signer CA): a unit with no attestation, one that attests its identity key alone,
/// one attested by a look-alike vendor, or a garbage attestation is refused
/// `attestation_invalid`, logged, and counts nothing. Roots that are not CA certificates are
/// refused when the product is created, and nothing is made.
async fn a_product_that_requires_attestation_takes_only_vendor_certified_keys(backend: Backend) {
    let kit = TestServer::start(backend).await;
    let vendor = Vendor::new("ChipCo");
    let forger = Vendor::new("ChipCo");

    // Roots that are no CA: refused, nothing made.
    let mut request = touchmark_testkit::fixtures::product_request("se", "Secure sensor");
    request.attestation_roots_pem = Some(vendor.attest(&touchmark_testkit::Unit::new("X"), None));
    let e = api_error(kit.admin.create_product(&request).await.unwrap_err());
    assert_eq!(e, (422, "unprocessable".to_owned()));
    assert!(kit.admin.products().await.unwrap().is_empty());

    request.attestation_roots_pem = Some(vendor.read("root.pem"));
    let product = kit.admin.create_product(&request).await.unwrap();
    assert_eq!(product.attestation_roots_pem, Some(vendor.read("root.pem")));
    let created = events_of(&kit, "product.created").await;
    let root_der = touchmark_pki::pem::decode_all(&vendor.read("root.pem")).unwrap()[0]
        .der
        .clone();
    assert_eq!(
        created[0]["attestation_roots"],
        serde_json::json!([Sha256Hash::of(&root_der).to_hex()])
    );
    let key = kit
        .admin
        .create_release_key("se", &key_request(Some("x25519")))
        .await
        .unwrap();
    register(&kit, "se", "keys/sign-ed25519.pub.pem").await;
    let image = build(&key.public_key_pem, (1, 0, 0, 0), EncKind::X25519);
    kit.admin
        .upload_release("se", "1.0.0", &image, None)
        .await
        .unwrap();
    let factory = kit.factory("cm").await;
    let mut order =
        touchmark_testkit::order_request("PO-SE", "se", &factory, 10, "SN-000001..SN-000010");
    order.release = Some("1.0.0".into());
    let order = kit.order_with(order).await;
    let station = kit.enroll_station(&factory).await;

    // Unit `n`, its encryption key in its CSR.
    let provision = |n: u32| {
        let unit = touchmark_testkit::Unit::new(&format!("SN-00000{n}"));
        let enc =
            touchmark_firmware::SoftwareAgreementKey::generate(touchmark_firmware::Curve::X25519)
                .unwrap();
        let mut body = unit.request(touchmark_testkit::passing_test(&unit.serial));
        body["csr"] = csr_with_key(&unit, &enc).into();
        (unit, enc, body)
    };
    // A unit whose two keys the vendor certified is issued, and opens its image.
    let (unit, enc, mut body) = provision(1);
    body["attestation"] = vendor.attest(&unit, Some(&enc)).into();
    // The server's clock stands still; openssl's certificates start now.
    kit.advance(time::Duration::minutes(1));
    let reply = station.raw.provision(&order, &body).await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    let (_, _, unit_image) = station
        .raw
        .get_bytes(reply.body["firmware"]["image_path"].as_str().unwrap())
        .await;
    touchmark_firmware::decrypt(&unit_image, &enc).unwrap();

    let before = kit.snapshot(&order).await;
    type Attest<'a> = Box<
        dyn Fn(
                &touchmark_testkit::Unit,
                &touchmark_firmware::SoftwareAgreementKey,
            ) -> Option<String>
            + 'a,
    >;
    let cases: Vec<(&str, Attest<'_>, &str)> = vec![
        (
            "no attestation",
            Box::new(|_, _| None),
            "requires secure-element attestation",
        ),
        (
            "the identity key attested alone",
            Box::new(|u, _| Some(vendor.attest(u, None))),
            "encryption key",
        ),
        (
            "a look-alike vendor",
            Box::new(|u, k| Some(forger.attest(u, Some(k)))),
            "does not verify",
        ),
        (
            "garbage",
            Box::new(|_, _| Some("<script>alert(1)</script>".into())),
            "attestation",
        ),
    ];
    for (n, (name, attest, says)) in cases.into_iter().enumerate() {
        let (unit, enc, mut body) = provision(2 + n as u32);
        if let Some(pem) = attest(&unit, &enc) {
            body["attestation"] = pem.into();
        }
        kit.advance(time::Duration::minutes(1));
        let reply = station.raw.provision(&order, &body).await;
        reply.assert_error(422, "attestation_invalid");
        assert!(reply.text.contains(says), "{name}: {}", reply.text);
    }
    // Each refusal logged, nothing counted, no wrap stored.
    let refused = events_of(&kit, "unit.refused").await;
    assert_eq!(refused.len(), 4);
    assert!(refused.iter().all(|e| e["reason"] == "attestation_invalid"));
    let after = kit.snapshot(&order).await;
    assert_eq!(after.issued, before.issued);
    assert_eq!(after.certificates, before.certificates);
    assert_eq!(after.units, before.units);
    for n in 2..=5 {
        let serial = touchmark_core::Serial::parse(&format!("SN-00000{n}")).unwrap();
        let order = touchmark_core::OrderId::parse(&order).unwrap();
        assert!(
            kit.store
                .unit_firmware(&order, &serial)
                .await
                .unwrap()
                .is_none()
        );
    }
}

/// Submits a vulnerability report as a researcher would (no token): its id.
async fn submit_report(kit: &TestServer, body: Value) -> String {
    let report: touchmark_core::api::SubmitReport = serde_json::from_value(body).unwrap();
    kit.admin
        .submit_vulnerability_report(&report)
        .await
        .unwrap()
        .id
}

/// A report linked to a release affects the units whose current firmware is that release: the
/// one they were provisioned with, unless a field update gave them another since. Counts per
/// order, factory and release; revoked units counted; a product linked without a release
/// affects all its issued units; a component link names the releases whose SBOM holds it in
/// its range; the units are paged by a cursor; an unknown report is `not_found`.
async fn a_report_affects_the_units_whose_current_firmware_it_names(backend: Backend) {
    let kit = TestServer::start(backend).await;
    let (_, order, station, first) = order_with_release(&kit).await;
    let mut devices = Vec::new();
    for n in 1..=3 {
        let (device, _, _) =
            provisioned_unit(&kit, &station, &order, &format!("SN-00000{n}")).await;
        devices.push(device);
    }
    let product = first.product.clone();
    let release_pem = kit.admin.release_keys(&product).await.unwrap()[0]
        .public_key_pem
        .clone();
    // 1.5.0 comes with an SBOM: its components (ring 0.17.8 among them) name it.
    let image = build(&release_pem, (1, 5, 0, 0), EncKind::X25519);
    let bom = serde_json::to_vec(&sbom::sbom_of(&Sha256Hash::of(&image).to_hex())).unwrap();
    kit.admin
        .upload_release(&product, "1.5.0", &image, Some(&bom))
        .await
        .unwrap();
    // SN-000001 updates to 1.5.0 in the field.
    let (status, _, _) = devices[0].get_bytes(LATEST).await;
    assert_eq!(status, 200);

    let report = submit_report(
        &kit,
        serde_json::json!({
            "product": product,
            "version": "1.4.0",
            "description": "a buffer overflow in the sensor's parser",
        }),
    )
    .await;
    let link = |release: Option<&str>, purl: Option<&str>, product: &str| {
        touchmark_core::api::LinkReport {
            product: product.to_owned(),
            release: release.map(str::to_owned),
            purl: purl.map(str::to_owned),
            range: None,
            status: None,
            justification: None,
        }
    };
    kit.admin
        .vuln_link(&report, &link(Some("1.4.0"), None, &product))
        .await
        .unwrap();
    let a = kit.admin.vuln_affected(&report, None, None).await.unwrap();
    let serials: Vec<&str> = a.units.iter().map(|u| u.serial.as_str()).collect();
    assert_eq!(serials, ["SN-000002", "SN-000003"]);
    assert_eq!(a.total, 2);
    assert_eq!(a.by_order, [(order.clone(), 2)].into_iter().collect());
    assert_eq!(a.by_factory, [("cm".to_owned(), 2)].into_iter().collect());
    assert_eq!(
        a.by_release,
        [("1.4.0+0".to_owned(), 2)].into_iter().collect()
    );
    assert!(
        a.units
            .iter()
            .all(|u| u.release.as_deref() == Some(first.id.as_str()))
    );

    // Linked to 1.5.0 too: the unit that updated is affected by it; a revoked unit counts.
    kit.admin
        .vuln_link(&report, &link(Some("1.5.0"), None, &product))
        .await
        .unwrap();
    kit.admin
        .revoke(
            touchmark_client::RevocationKind::Unit,
            "SN-000003",
            &touchmark_core::api::Revoke {
                reason: "keyCompromise".into(),
                product: None,
            },
        )
        .await
        .unwrap();
    let a = kit
        .admin
        .vuln_affected(&report, Some(1), None)
        .await
        .unwrap();
    assert_eq!((a.total, a.revoked, a.units.len()), (3, 1, 1));
    assert_eq!(
        a.next.as_deref(),
        Some(format!("SN-000001/{order}").as_str())
    );
    assert_eq!(
        a.by_release,
        [("1.4.0+0".to_owned(), 2), ("1.5.0+0".to_owned(), 1)]
            .into_iter()
            .collect()
    );
    assert_eq!(a.unresolved_links, 0);

    // A product linked without a release: every issued unit of it, whatever it runs; a
    // component that no release of its product holds resolves to nothing.
    let other = kit.product("other").await;
    let factory = kit.factory("cm-2").await;
    let other_order = kit
        .order("PO-OTHER", &other, &factory, 5, "SN-000001..SN-000005")
        .await;
    let other_station = kit.enroll_station(&factory).await;
    let unit = touchmark_testkit::Unit::new("SN-000004");
    let reply = other_station
        .provision(
            &other_order,
            &unit,
            touchmark_testkit::passing_test("SN-000004"),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    kit.admin
        .vuln_link(&report, &link(None, None, &other))
        .await
        .unwrap();
    kit.admin
        .vuln_link(
            &report,
            &link(None, Some("pkg:cargo/rustls@0.23.5"), &other),
        )
        .await
        .unwrap();
    let a = kit.admin.vuln_affected(&report, None, None).await.unwrap();
    assert_eq!(a.total, 4);
    assert_eq!(a.unresolved_links, 1);
    let wide: Vec<_> = a.units.iter().filter(|u| u.product == other).collect();
    assert_eq!(wide.len(), 1);
    assert_eq!(wide[0].serial, "SN-000004");
    assert_eq!(wide[0].release, None);
    assert_eq!(a.by_release.get("*"), Some(&1));
    assert_eq!(a.next, None);
    // Page by page, one unit each, from each page's `next`: the same units in the same
    // order (SN-000004 of both products, by order), with the same counts on every counted
    // page, and the same units from the pages that do not count.
    let (mut paged, mut uncounted, mut after) = (Vec::new(), Vec::new(), None::<String>);
    while paged.len() <= a.units.len() {
        let page = kit
            .admin
            .vuln_affected(&report, Some(1), after.as_deref())
            .await
            .unwrap();
        assert_eq!((page.total, &page.by_order), (a.total, &a.by_order));
        let units = kit
            .admin
            .vuln_affected_units(&report, Some(1), after.as_deref())
            .await
            .unwrap();
        assert_eq!((&units.units, &units.next), (&page.units, &page.next));
        uncounted.extend(units.units);
        paged.extend(page.units);
        after = page.next;
        if after.is_none() {
            break;
        }
    }
    assert_eq!(paged, a.units);
    assert_eq!(uncounted, a.units);
    let token = kit
        .admin
        .create_token(&touchmark_client::api::CreateToken {
            role: "admin".into(),
            label: "paging".into(),
        })
        .await
        .unwrap()
        .token;
    for (query, says) in [
        ("?after=SN-000001", "SERIAL/ORDER"),
        ("?after=SN%20000001/PO-1", "after"),
        ("?limit=10001", "1 to 10000 units"),
        ("?limit=0", "1 to 10000 units"),
    ] {
        for route in ["affected", "affected/units"] {
            let r = kit
                .raw()
                .send(
                    reqwest::Method::GET,
                    &format!("/v1/vulnerability-reports/{report}/{route}{query}"),
                    None,
                    vec![],
                    Some(&token),
                )
                .await;
            assert_eq!(
                (r.status.as_u16(), r.body["code"].as_str()),
                (400, Some("invalid_request")),
                "{route}{query}: {}",
                r.text
            );
            assert!(r.text.contains(says), "{route}{query}: {}", r.text);
        }
    }

    // A report that names an SBOM component: the releases of its product whose SBOM holds
    // it in the range (1.5.0, with ring 0.17.8), so the units that run them now; a range
    // that no release's component is in resolves to nothing.
    let by_component =
        submit_report(&kit, serde_json::json!({"description": "a flaw in ring"})).await;
    for range in ["vers:cargo/>=0.17.0|<0.17.9", "vers:cargo/>=0.18.0"] {
        let request = touchmark_core::api::LinkReport {
            range: Some(range.to_owned()),
            ..link(None, Some("pkg:cargo/ring"), &product)
        };
        kit.admin.vuln_link(&by_component, &request).await.unwrap();
    }
    let a = kit
        .admin
        .vuln_affected(&by_component, None, None)
        .await
        .unwrap();
    assert_eq!((a.total, a.unresolved_links), (1, 1), "{a:?}");
    assert_eq!(a.units[0].serial, "SN-000001");
    assert_eq!(a.units[0].version.as_deref(), Some("1.5.0+0"));

    // SN-000001 updates again, to 1.6.0, which no link names: it runs 1.5.0 no more.
    kit.admin
        .upload_release(
            &product,
            "1.6.0",
            &build(&release_pem, (1, 6, 0, 0), EncKind::X25519),
            None,
        )
        .await
        .unwrap();
    let (status, _, _) = devices[0].get_bytes(LATEST).await;
    assert_eq!(status, 200);
    let a = kit.admin.vuln_affected(&report, None, None).await.unwrap();
    assert_eq!(a.total, 3);
    assert_eq!(a.by_release.get("1.5.0+0"), None);
    assert!(a.units.iter().all(|u| u.serial != "SN-000001"));
    // Only links that state `affected` count: a report whose links say 1.5.0 holds the fix
    // and 1.4.0 and the other product are not affected affects no unit, though units run
    // each (the first report, linked as affected to the same releases, affects three).
    let second = submit_report(&kit, serde_json::json!({"description": "a second finding"})).await;
    let stating = |release: Option<&str>, product: &str, status: &str, why: Option<&str>| {
        touchmark_core::api::LinkReport {
            status: Some(status.to_owned()),
            justification: why.map(str::to_owned),
            ..link(release, None, product)
        }
    };
    for request in [
        stating(Some("1.5.0"), &product, "fixed", None),
        stating(
            Some("1.4.0"),
            &product,
            "not_affected",
            Some("vulnerable_code_not_in_execute_path"),
        ),
        stating(None, &other, "not_affected", Some("component_not_present")),
    ] {
        kit.admin.vuln_link(&second, &request).await.unwrap();
    }
    let a = kit.admin.vuln_affected(&second, None, None).await.unwrap();
    assert_eq!((a.total, a.units.len()), (0, 0), "{a:?}");
    let other_report = kit.admin.vuln_report(&second).await.unwrap();
    assert_eq!(other_report.links.len(), 3);
    let e = api_error(
        kit.admin
            .vuln_link(&second, &stating(Some("1.4.0"), &product, "affected", None))
            .await
            .unwrap_err(),
    );
    assert_eq!(e, (409, "conflict".to_owned()), "one status per release");
    let a = kit.admin.vuln_affected(&second, None, None).await.unwrap();
    assert_eq!(a.total, 0);

    let e = api_error(
        kit.admin
            .vuln_affected("vr-0000000000000000", None, None)
            .await
            .unwrap_err(),
    );
    assert_eq!(e, (404, "not_found".to_owned()));
    let e = api_error(
        kit.admin
            .vuln_affected_units("vr-0000000000000000", None, None)
            .await
            .unwrap_err(),
    );
    assert_eq!(e, (404, "not_found".to_owned()));
}
