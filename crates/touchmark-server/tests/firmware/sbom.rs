//! A release's SBOM (`docs/firmware.md`, "SBOM"), on both backends: a CycloneDX 1.6 JSON BOM
//! valid against its schema is stored with the release, bound to the image, served back byte
//! for byte, and its components are indexed by package URL; an invalid one is refused as
//! `sbom_invalid` with the validator's findings, and nothing is stored or logged. The oracle is
//! cyclonedx-python-lib's strict JSON validator (`tests/cyclonedx_validate.py`): it accepts
//! what is accepted here and refuses what the schema refuses here.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use touchmark_core::event::Sha256Hash;
use touchmark_core::firmware::ComponentRelease;
use touchmark_firmware::EncKind;
use touchmark_testkit::{Backend, TestServer};

use super::{api_error, build, events_of, product_with_release_key, register};

touchmark_testkit::both_backends!(
    #[cfg_attr(
        not(tm_cyclonedx),
        ignore = "needs cyclonedx-python-lib: `pip install 'cyclonedx-python-lib[json-validation]'`, and TOUCHMARK_TEST_CYCLONEDX_PYTHON"
    )]
    a_valid_sbom_is_stored_bound_to_its_image_served_and_indexed,
    #[cfg_attr(
        not(tm_cyclonedx),
        ignore = "needs cyclonedx-python-lib: `pip install 'cyclonedx-python-lib[json-validation]'`, and TOUCHMARK_TEST_CYCLONEDX_PYTHON"
    )]
    invalid_sboms_are_refused_as_the_oracle_refuses_them_and_nothing_is_stored,
    hostile_sboms_are_refused_quickly_with_bounded_messages,
);

/// A CycloneDX 1.6 SBOM of a firmware image whose SHA-256 is `image_sha256`, with nested
/// components.
pub(super) fn sbom_of(image_sha256: &str) -> Value {
    json!({
        "$schema": "http://cyclonedx.org/schema/bom-1.6.schema.json",
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "serialNumber": "urn:uuid:3e671687-395b-41f5-a30f-a58921a69b79",
        "version": 1,
        "metadata": {
            "timestamp": "2026-12-01T10:00:00Z",
            "component": {
                "type": "firmware",
                "bom-ref": "fw",
                "name": "sensor-fw",
                "version": "1.4.0",
                "purl": "pkg:generic/acme/sensor-fw@1.4.0",
                "hashes": [{"alg": "SHA-256", "content": image_sha256}]
            }
        },
        "components": [
            {
                "type": "library",
                "bom-ref": "rustls",
                "name": "rustls",
                "version": "0.23.5",
                "purl": "pkg:cargo/rustls@0.23.5",
                "licenses": [{"license": {"id": "Apache-2.0"}}],
                "components": [{
                    "type": "library",
                    "bom-ref": "ring",
                    "name": "ring",
                    "version": "0.17.8",
                    "purl": "pkg:cargo/ring@0.17.8"
                }]
            },
            {
                "type": "operating-system",
                "bom-ref": "zephyr",
                "name": "zephyr",
                "version": "3.6.0",
                "purl": "pkg:github/zephyrproject-rtos/zephyr@v3.6.0"
            },
            {"type": "data", "bom-ref": "calibration", "name": "calibration table"}
        ],
        "dependencies": [{"ref": "fw", "dependsOn": ["rustls", "zephyr"]}]
    })
}

/// The oracle's verdict on each document: (valid, its message).
fn oracle(version: &str, documents: &[&[u8]]) -> Vec<(bool, String)> {
    let dir = tempfile::tempdir().unwrap();
    let files: Vec<_> = documents
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let path = dir.path().join(format!("{i}.cdx.json"));
            std::fs::write(&path, d).unwrap();
            path
        })
        .collect();
    let python =
        std::env::var("TOUCHMARK_TEST_CYCLONEDX_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cyclonedx_validate.py");
    let out = Command::new(&python)
        .arg(&script)
        .arg(version)
        .args(&files)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the oracle failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let verdicts: Vec<(bool, String)> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            let v: Value = serde_json::from_str(line).unwrap();
            (
                v["valid"].as_bool().unwrap(),
                v["error"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(verdicts.len(), documents.len());
    verdicts
}

/// A valid SBOM, accepted by the oracle too: stored as uploaded with its hash in
/// `release.created`, served back byte for byte by the SBOM route, and its components (nested
/// and the described one) found by package URL key with their versions.
async fn a_valid_sbom_is_stored_bound_to_its_image_served_and_indexed(backend: Backend) {
    let kit = TestServer::start(backend).await;
    let (product, key) = product_with_release_key(&kit).await;
    register(&kit, &product, "keys/sign-ed25519.pub.pem").await;
    let image = build(&key.public_key_pem, (1, 4, 0, 0), EncKind::X25519);
    let sbom = serde_json::to_vec_pretty(&sbom_of(&Sha256Hash::of(&image).to_hex())).unwrap();
    assert_eq!(oracle("1.6", &[&sbom]), [(true, String::new())]);

    let release = kit
        .admin
        .upload_release(&product, "1.4.0", &image, Some(&sbom))
        .await
        .unwrap();
    assert_eq!(release.sbom_sha256, Some(Sha256Hash::of(&sbom).to_hex()));
    let events = events_of(&kit, "release.created").await;
    assert_eq!(events.len(), 1);
    assert_eq!(
        events[0]["sbom_sha256"],
        Sha256Hash::of(&sbom).to_hex().as_str()
    );
    assert_eq!(
        events[0]["image_sha256"],
        Sha256Hash::of(&image).to_hex().as_str()
    );
    assert_eq!(
        kit.admin.release_sbom(&product, &release.id).await.unwrap(),
        sbom
    );
    // An auditor may fetch it, as the CycloneDX media type; without a token, nobody.
    let reader = kit
        .admin
        .create_token(&touchmark_client::api::CreateToken {
            role: "auditor".into(),
            label: "sbom reader".into(),
        })
        .await
        .unwrap()
        .token;
    let path = format!("/v1/products/{product}/releases/{}/sbom", release.id);
    let r = kit
        .raw()
        .send(reqwest::Method::GET, &path, None, vec![], Some(&reader))
        .await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.text);
    assert_eq!(r.content_type, "application/vnd.cyclonedx+json");
    assert_eq!(r.text.as_bytes(), sbom.as_slice());
    let (status, _, _) = kit.raw().get_bytes(&path).await;
    assert_eq!(status.as_u16(), 401);

    let found = |purl: &str, v: &str| ComponentRelease {
        release: release.id.clone(),
        product: touchmark_core::ProductId::parse(&product).unwrap(),
        version: "1.4.0+0".into(),
        purl: purl.into(),
        component_version: Some(v.into()),
    };
    for (key, purl, version) in [
        ("pkg:cargo/rustls", "pkg:cargo/rustls@0.23.5", "0.23.5"),
        ("pkg:cargo/ring", "pkg:cargo/ring@0.17.8", "0.17.8"),
        (
            "pkg:github/zephyrproject-rtos/zephyr",
            "pkg:github/zephyrproject-rtos/zephyr@v3.6.0",
            "v3.6.0",
        ),
        (
            "pkg:generic/acme/sensor-fw",
            "pkg:generic/acme/sensor-fw@1.4.0",
            "1.4.0",
        ),
    ] {
        assert_eq!(
            kit.store.releases_with_component(key).await.unwrap(),
            [found(purl, version)],
            "{key}"
        );
    }

    // A release without an SBOM has none to serve.
    let bare = build(&key.public_key_pem, (1, 5, 0, 0), EncKind::X25519);
    let plain = kit
        .admin
        .upload_release(&product, "1.5.0", &bare, None)
        .await
        .unwrap();
    let e = kit
        .admin
        .release_sbom(&product, &plain.id)
        .await
        .unwrap_err();
    assert_eq!(api_error(e), (404, "not_found".into()));
    let e = kit
        .admin
        .release_sbom(&product, "rel-none")
        .await
        .unwrap_err();
    assert_eq!(api_error(e), (404, "not_found".into()));
}

/// Each kind of invalid SBOM is `sbom_invalid` (422) with the validator's finding in the
/// message; the oracle refuses each that the schema refuses; and after all of them no release,
/// no event and no component is stored.
async fn invalid_sboms_are_refused_as_the_oracle_refuses_them_and_nothing_is_stored(
    backend: Backend,
) {
    let kit = TestServer::start(backend).await;
    let (product, key) = product_with_release_key(&kit).await;
    register(&kit, &product, "keys/sign-ed25519.pub.pem").await;
    let image = build(&key.public_key_pem, (1, 4, 0, 0), EncKind::X25519);
    let image_hex = Sha256Hash::of(&image).to_hex();
    let valid = sbom_of(&image_hex);
    let edit = |f: &dyn Fn(&mut Value)| {
        let mut v = valid.clone();
        f(&mut v);
        serde_json::to_vec(&v).unwrap()
    };
    // (what, the SBOM, words of our message, whether the schema refuses it, so the oracle must)
    let cases: Vec<(&str, Vec<u8>, Vec<&str>, bool)> = vec![
        (
            "not JSON",
            b"bomFormat: CycloneDX".to_vec(),
            vec!["not JSON"],
            true,
        ),
        (
            "specVersion a number",
            edit(&|v| v["specVersion"] = json!(1.6)),
            vec!["`specVersion` is not the string \"1.6\""],
            true,
        ),
        (
            "another format",
            edit(&|v| v["bomFormat"] = json!("SPDX")),
            vec!["bomFormat"],
            true,
        ),
        (
            "a component without its required name",
            edit(&|v| {
                v["components"][1].as_object_mut().unwrap().remove("name");
            }),
            vec!["/components/1", "\"name\""],
            true,
        ),
        (
            "a number where a string belongs",
            edit(&|v| v["components"][0]["components"][0]["version"] = json!(17)),
            vec!["/components/0/components/0/version", "string"],
            true,
        ),
        (
            "a component type that is not in the enumeration",
            edit(&|v| v["components"][2]["type"] = json!("gadget")),
            vec!["/components/2/type", "gadget"],
            true,
        ),
        (
            "a hash algorithm that is not in the enumeration",
            edit(&|v| v["metadata"]["component"]["hashes"][0]["alg"] = json!("SHA-257")),
            vec!["/metadata/component/hashes/0/alg"],
            true,
        ),
        (
            "an unknown top-level property",
            edit(&|v| v["vulnerable"] = json!(false)),
            vec!["vulnerable"],
            true,
        ),
        // Valid for the 1.6 schema (its `specVersion` is any string), refused by Touchmark's
        // rules.
        (
            "specVersion 1.5",
            edit(&|v| v["specVersion"] = json!("1.5")),
            vec!["\"1.5\", not \"1.6\""],
            false,
        ),
        (
            "the SHA-256 of another image",
            edit(&|v| {
                v["metadata"]["component"]["hashes"][0]["content"] =
                    json!(Sha256Hash::of(b"another image").to_hex())
            }),
            vec!["describes another image", &image_hex],
            false,
        ),
        (
            "a package URL that does not parse",
            edit(&|v| v["components"][1]["purl"] = json!("zephyr@3.6.0")),
            vec!["/components/1/purl", "pkg:"],
            false,
        ),
    ];
    let size = kit.log_size().await;
    for (what, sbom, says, _) in &cases {
        let e = kit
            .admin
            .upload_release(&product, "1.4.0", &image, Some(sbom))
            .await
            .unwrap_err();
        let touchmark_client::ClientError::Api { status, body } = e else {
            panic!("{what}: not an API error");
        };
        assert_eq!(
            (status, body.code.as_str()),
            (422, "sbom_invalid"),
            "{what}"
        );
        assert!(
            body.message.starts_with("the SBOM "),
            "{what}: {}",
            body.message
        );
        for word in says {
            assert!(body.message.contains(word), "{what}: {}", body.message);
        }
    }
    let documents: Vec<&[u8]> = cases.iter().map(|(_, s, _, _)| s.as_slice()).collect();
    for ((what, _, _, schema_refuses), (valid, message)) in
        cases.iter().zip(oracle("1.6", &documents))
    {
        assert_eq!(valid, !schema_refuses, "{what}: the oracle says {message}");
    }
    // Nothing stored, nothing logged.
    assert_eq!(kit.log_size().await, size);
    assert!(kit.admin.releases(&product).await.unwrap().is_empty());
    assert!(events_of(&kit, "release.created").await.is_empty());
    for key in ["pkg:cargo/rustls", "pkg:generic/acme/sensor-fw"] {
        assert!(
            kit.store
                .releases_with_component(key)
                .await
                .unwrap()
                .is_empty()
        );
    }
    // The same image with its valid SBOM is then taken: the refusals left nothing behind.
    let sbom = serde_json::to_vec(&valid).unwrap();
    kit.admin
        .upload_release(&product, "1.4.0", &image, Some(&sbom))
        .await
        .unwrap();
}

/// SBOMs made to hurt, within the size limit: nesting as deep as the bytes allow, tens of
/// thousands of components, a huge value the validator would quote. Each is answered within
/// seconds, without a crash, with a message of bounded length.
async fn hostile_sboms_are_refused_quickly_with_bounded_messages(backend: Backend) {
    let kit = TestServer::start(backend).await;
    let (product, key) = product_with_release_key(&kit).await;
    register(&kit, &product, "keys/sign-ed25519.pub.pem").await;
    let image = build(&key.public_key_pem, (1, 4, 0, 0), EncKind::X25519);
    let depth = 1_000_000;
    let deep = format!(
        r#"{{"bomFormat":"CycloneDX","specVersion":"1.6","x":{}{}}}"#,
        "[".repeat(depth),
        "]".repeat(depth)
    );
    // As deep as the parser allows (two levels per component), the innermost one invalid.
    let deep_components = {
        let mut s = String::from(r#"{"bomFormat":"CycloneDX","specVersion":"1.6","components":["#);
        for i in 0..60 {
            s.push_str(&format!(
                r#"{{"type":"library","name":"c{i}","components":["#
            ));
        }
        s.push_str(r#"{"type":"gadget","name":"innermost"}"#);
        for _ in 0..60 {
            s.push_str("]}");
        }
        s.push_str("]}");
        s
    };
    let many = |extra: &str| {
        let components: Vec<String> = (0..30_000)
            .map(|i| {
                format!(
                    r#"{{"type":"library","name":"c{i}","version":"1.0.{i}","purl":"pkg:cargo/c{i}@1.0.{i}"{extra}}}"#
                )
            })
            .collect();
        format!(
            r#"{{"bomFormat":"CycloneDX","specVersion":"1.6","components":[{}]}}"#,
            components.join(",")
        )
    };
    let huge_value = format!(
        r#"{{"bomFormat":"CycloneDX","specVersion":"1.6","components":[{{"type":"{}","name":"x"}}]}}"#,
        "y".repeat(3_000_000)
    );
    let cases = [
        ("nesting a million levels deep", deep),
        ("components nested 60 deep", deep_components),
        (
            "30,000 components, each with an error",
            many(r#","scope":"sometimes""#),
        ),
        ("a 3 MB value in an enumeration", huge_value),
    ];
    let size = kit.log_size().await;
    for (what, sbom) in &cases {
        assert!(
            sbom.len() <= touchmark_authority::firmware::MAX_SBOM,
            "{what}"
        );
        let started = Instant::now();
        let e = kit
            .admin
            .upload_release(&product, "1.4.0", &image, Some(sbom.as_bytes()))
            .await
            .unwrap_err();
        let took = started.elapsed();
        let touchmark_client::ClientError::Api { status, body } = e else {
            panic!("{what}: not an API error");
        };
        assert_eq!(
            (status, body.code.as_str()),
            (422, "sbom_invalid"),
            "{what}"
        );
        assert!(
            body.message.len() < 2_000,
            "{what}: {} bytes",
            body.message.len()
        );
        assert!(took < Duration::from_secs(10), "{what}: took {took:?}");
    }
    assert_eq!(kit.log_size().await, size);
    // 30,000 valid components are taken, indexed, within the same bound.
    let started = Instant::now();
    let sbom = many("");
    let release = kit
        .admin
        .upload_release(&product, "1.4.0", &image, Some(sbom.as_bytes()))
        .await
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    let found = kit
        .store
        .releases_with_component("pkg:cargo/c29999")
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].release, release.id);
    assert_eq!(found[0].component_version.as_deref(), Some("1.0.29999"));
}
