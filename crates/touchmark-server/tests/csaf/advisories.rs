//! CSAF 2.0 advisories (`docs/vulnerabilities.md`, "Advisories"), against a real server on both
//! backends: a draft stores and logs nothing; a security advisory (known_affected, fixed,
//! remediations), a VEX document (known_not_affected with its justification flag and impact
//! statement) and a second revision pass the BSI's secvisogram validator with every mandatory
//! test; the provider's files are served over HTTPS exactly as published, their hashes match,
//! provider-metadata.json is valid against OASIS's provider metadata schema
//! (`provider_json_schema.json`, as published with CSAF v2.0, checked by the validator's JSON
//! Schema validator), and each revision is one `vuln.advisory_published` event. Bad requests are refused with
//! their codes and change nothing. The CVSS v3.1 base scores agree with Red Hat's `cvss`.

use std::path::Path;
use std::process::Command;

use reqwest::Method;
use serde_json::{Value, json};
use sha2::{Digest, Sha256, Sha512};
use touchmark_core::api::{LinkReport, WriteAdvisory};
use touchmark_core::csaf::{CsafConfig, Publisher, PublisherCategory};
use touchmark_testkit::{Backend, TestServer};

use super::{PATH, post, vuln_events};

const BASE: &str = "https://touchmark.example";

fn api_error(e: touchmark_client::ClientError) -> (u16, String) {
    match e {
        touchmark_client::ClientError::Api { status, body } => (status, body.code),
        other => panic!("not an API error: {other}"),
    }
}

fn config() -> CsafConfig {
    CsafConfig {
        publisher: Publisher {
            name: "Example Devices".into(),
            namespace: "https://devices.example".into(),
            category: PublisherCategory::Vendor,
            contact_details: Some("security@devices.example".into()),
        },
        base_url: BASE.into(),
        list_on_aggregators: true,
        mirror_on_aggregators: false,
    }
}

async fn with_csaf(backend: Backend) -> TestServer {
    TestServer::start_with(backend, &|o| o.vuln.csaf = Some(config())).await
}

/// The secvisogram validator's verdict on `document`: the strict schema and every mandatory
/// test.
fn validate(document: &[u8]) -> Value {
    run_validator("validate.mjs", document)
}

/// The verdict of OASIS's provider metadata schema, checked by the secvisogram validator's
/// JSON Schema validator, on a provider-metadata.json.
fn validate_provider(metadata: &[u8]) -> Value {
    run_validator("validate_provider.mjs", metadata)
}

/// Runs `tests/csaf/<script>` with node on `document`: its verdict, as JSON.
fn run_validator(script: &str, document: &[u8]) -> Value {
    let prefix = touchmark_testenv_prefix();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("document.json");
    std::fs::write(&file, document).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/csaf")
        .join(script);
    let out = Command::new("node")
        .arg(script)
        .arg(&prefix)
        .arg(&file)
        .output()
        .expect("node runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn touchmark_testenv_prefix() -> String {
    std::env::var("TOUCHMARK_TEST_CSAF_VALIDATOR").unwrap_or_else(|_| {
        panic!("TOUCHMARK_TEST_CSAF_VALIDATOR is not set: the npm prefix of @secvisogram/csaf-validator-lib")
    })
}

fn assert_valid(document: &[u8]) {
    let verdict = validate(document);
    assert_eq!(
        verdict["errors"],
        json!([]),
        "{verdict}\n{}",
        String::from_utf8_lossy(document)
    );
    assert_eq!(verdict["isValid"], true, "{verdict}");
    assert!(verdict["tests"].as_u64().unwrap() > 30, "{verdict}");
}

fn link(product: &str, release: Option<&str>, status: &str, why: Option<&str>) -> LinkReport {
    LinkReport {
        product: product.into(),
        release: release.map(str::to_owned),
        purl: None,
        range: None,
        status: Some(status.into()),
        justification: why.map(str::to_owned),
    }
}

/// A report about `sensor` (releases 1.4.0 and 1.5.0) and `gateway` (2.0.0), with a CVSS v3.1
/// vector and a confidential description; not linked yet.
async fn report(kit: &TestServer) -> String {
    kit.product("sensor").await;
    kit.product("gateway").await;
    kit.release("sensor", (1, 4, 0)).await;
    kit.release("sensor", (1, 5, 0)).await;
    kit.release("gateway", (2, 0, 0)).await;
    let r = post(
        kit,
        PATH,
        &json!({
            "product": "sensor",
            "description": "CONFIDENTIAL: the OTA parser overflows on a 70000-byte chunk",
            "cvss": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
        }),
        None,
    )
    .await;
    assert_eq!(r.status.as_u16(), 201, "{}", r.text);
    r.body["id"].as_str().unwrap().to_owned()
}

fn write(publish: bool, vex: bool, summary: Option<&str>) -> WriteAdvisory {
    WriteAdvisory {
        publish,
        vex,
        cve: Some("CVE-2026-41234".into()),
        title: Some("Sensor OTA parser overflow".into()),
        description: Some("A crafted OTA chunk overflows a buffer in the sensor's parser.".into()),
        summary: summary.map(str::to_owned),
    }
}

async fn get(kit: &TestServer, path: &str) -> (u16, String, Vec<u8>) {
    let (status, headers, body) = kit.raw().get_bytes(path).await;
    let content_type = headers
        .get(reqwest::header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status.as_u16(), content_type, body)
}

/// The advisory, its VEX document and a second revision: each valid for secvisogram; the
/// draft before them stores and logs nothing; the directory serves the latest revisions'
/// exact bytes with matching hashes, an index and the changes; each revision is logged.
pub async fn advisories_pass_the_validator_and_are_served(backend: Backend) {
    let kit = with_csaf(backend).await;
    let id = report(&kit).await;
    for l in [
        link("sensor", Some("1.4.0"), "affected", None),
        link("sensor", Some("1.5.0"), "fixed", None),
        link(
            "gateway",
            Some("2.0.0"),
            "not_affected",
            Some("vulnerable_code_not_present"),
        ),
    ] {
        kit.admin.vuln_link(&id, &l).await.unwrap();
    }
    let events_before = vuln_events(&kit).await.len();

    // A draft: valid too, stored and logged nowhere.
    let (draft, published) = kit
        .admin
        .vuln_advisory(&id, &write(false, false, None))
        .await
        .unwrap();
    assert!(!published);
    assert_valid(&draft);
    let doc: Value = serde_json::from_slice(&draft).unwrap();
    assert_eq!(doc["document"]["tracking"]["status"], "draft");
    assert!(kit.store.latest_advisories().await.unwrap().is_empty());
    assert_eq!(vuln_events(&kit).await.len(), events_before);

    // The security advisory.
    let (first, published) = kit
        .admin
        .vuln_advisory(&id, &write(true, false, None))
        .await
        .unwrap();
    assert!(published);
    assert_valid(&first);
    let text = String::from_utf8(first.clone()).unwrap();
    assert!(
        !text.contains("CONFIDENTIAL"),
        "the reporter's text stays out"
    );
    let doc: Value = serde_json::from_slice(&first).unwrap();
    let d = &doc["document"];
    assert_eq!(d["category"], "csaf_security_advisory");
    assert_eq!(d["csaf_version"], "2.0");
    assert_eq!(d["publisher"]["namespace"], "https://devices.example");
    assert_eq!(d["distribution"]["tlp"]["label"], "WHITE");
    assert_eq!(d["tracking"]["id"], id.as_str());
    assert_eq!(d["tracking"]["status"], "final");
    assert_eq!(d["tracking"]["version"], "1");
    assert_eq!(d["tracking"]["generator"]["engine"]["name"], "Touchmark");
    let v = &doc["vulnerabilities"][0];
    assert_eq!(v["cve"], "CVE-2026-41234");
    assert_eq!(
        v["product_status"]["known_affected"],
        json!(["sensor@1.4.0+0"])
    );
    assert_eq!(v["product_status"]["fixed"], json!(["sensor@1.5.0+0"]));
    assert_eq!(
        v["product_status"]["known_not_affected"],
        json!(["gateway@2.0.0+0"])
    );
    assert_eq!(v["remediations"][0]["category"], "vendor_fix");
    assert_eq!(
        v["remediations"][0]["product_ids"],
        json!(["sensor@1.4.0+0"])
    );
    assert!(
        v["remediations"][0]["details"]
            .as_str()
            .unwrap()
            .contains("1.5.0")
    );
    assert_eq!(v["scores"][0]["cvss_v3"]["baseScore"], 9.8);
    assert_eq!(v["scores"][0]["cvss_v3"]["baseSeverity"], "CRITICAL");
    // The product tree names each release with its image's SHA-256.
    let tree = doc["product_tree"].to_string();
    let releases = kit.admin.releases("sensor").await.unwrap();
    for r in &releases {
        assert!(tree.contains(&r.image_sha256), "{tree}");
    }

    // The VEX document: the not-affected statement with its flag and impact statement.
    let (vex, _) = kit
        .admin
        .vuln_advisory(&id, &write(true, true, None))
        .await
        .unwrap();
    assert_valid(&vex);
    let vex_doc: Value = serde_json::from_slice(&vex).unwrap();
    assert_eq!(vex_doc["document"]["category"], "csaf_vex");
    assert_eq!(vex_doc["document"]["tracking"]["id"], format!("{id}-vex"));
    let v = &vex_doc["vulnerabilities"][0];
    assert_eq!(v["flags"][0]["label"], "vulnerable_code_not_present");
    assert_eq!(v["flags"][0]["product_ids"], json!(["gateway@2.0.0+0"]));
    assert_eq!(v["threats"][0]["category"], "impact");

    // A second revision: two entries in its history.
    let (second, _) = kit
        .admin
        .vuln_advisory(&id, &write(true, false, Some("Fixed release 1.5.0 named.")))
        .await
        .unwrap();
    assert_valid(&second);
    let doc: Value = serde_json::from_slice(&second).unwrap();
    let history = doc["document"]["tracking"]["revision_history"]
        .as_array()
        .unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(history[1]["number"], "2");
    assert_eq!(history[1]["summary"], "Fixed release 1.5.0 named.");
    assert_eq!(doc["document"]["tracking"]["version"], "2");
    assert_eq!(
        doc["document"]["tracking"]["initial_release_date"],
        serde_json::from_slice::<Value>(&first).unwrap()["document"]["tracking"]["initial_release_date"]
    );

    // Served, publicly, exactly as published: the latest revision only.
    let (status, content_type, meta) = get(&kit, "/.well-known/csaf/provider-metadata.json").await;
    assert_eq!(status, 200);
    assert!(content_type.starts_with("application/json"));
    let verdict = validate_provider(&meta);
    assert_eq!(
        (&verdict["isValid"], &verdict["errors"]),
        (&json!(true), &json!([])),
        "{verdict}\n{}",
        String::from_utf8_lossy(&meta)
    );
    let meta: Value = serde_json::from_slice(&meta).unwrap();
    assert_eq!(meta["role"], "csaf_provider");
    assert_eq!(meta["metadata_version"], "2.0");
    assert_eq!(
        meta["canonical_url"],
        format!("{BASE}/.well-known/csaf/provider-metadata.json")
    );
    assert_eq!(
        meta["distributions"][0]["directory_url"],
        format!("{BASE}/.well-known/csaf/white/")
    );
    assert_eq!(meta["mirror_on_CSAF_aggregators"], false);
    assert_eq!(meta["list_on_CSAF_aggregators"], true);
    assert_eq!(meta["publisher"]["name"], "Example Devices");
    assert_eq!(
        meta["last_updated"],
        doc["document"]["tracking"]["current_release_date"]
    );

    let year = &doc["document"]["tracking"]["initial_release_date"]
        .as_str()
        .unwrap()[..4];
    let path = format!("/.well-known/csaf/white/{year}/{id}.json");
    let (status, content_type, served) = get(&kit, &path).await;
    assert_eq!(status, 200, "{path}");
    assert!(content_type.starts_with("application/json"));
    assert_eq!(served, second, "the latest revision's exact bytes");
    let (status, _, sha256) = get(&kit, &format!("{path}.sha256")).await;
    assert_eq!(status, 200);
    assert_eq!(
        String::from_utf8(sha256).unwrap(),
        format!("{}  {id}.json\n", hex::encode(Sha256::digest(&served)))
    );
    let (status, _, sha512) = get(&kit, &format!("{path}.sha512")).await;
    assert_eq!(status, 200);
    assert_eq!(
        String::from_utf8(sha512).unwrap(),
        format!("{}  {id}.json\n", hex::encode(Sha512::digest(&served)))
    );
    let (_, _, vex_served) = get(
        &kit,
        &format!("/.well-known/csaf/white/{year}/{id}-vex.json"),
    )
    .await;
    assert_eq!(vex_served, vex);
    let (status, content_type, index) = get(&kit, "/.well-known/csaf/white/index.txt").await;
    assert_eq!(status, 200);
    assert!(content_type.starts_with("text/plain"));
    assert_eq!(
        String::from_utf8(index).unwrap(),
        format!("{year}/{id}-vex.json\n{year}/{id}.json\n")
    );
    let (status, content_type, changes) = get(&kit, "/.well-known/csaf/white/changes.csv").await;
    assert_eq!(status, 200);
    assert!(content_type.starts_with("text/csv"));
    let changes = String::from_utf8(changes).unwrap();
    let rows: Vec<&str> = changes.lines().collect();
    assert_eq!(rows.len(), 2, "{changes}");
    assert!(
        rows[0].starts_with(&format!("\"{year}/{id}.json\",\"")),
        "newest first: {changes}"
    );
    for missing in [
        format!("/.well-known/csaf/white/{year}/vr-0000000000000000.json"),
        format!("/.well-known/csaf/white/1999/{id}.json"),
        "/.well-known/csaf/white/2026/x.txt".into(),
        "/.well-known/csaf/red/index.txt".into(),
    ] {
        kit.raw()
            .send(Method::GET, &missing, None, vec![], None)
            .await
            .assert_error(404, "not_found");
    }

    // Each revision is one event naming the exact bytes.
    let events = vuln_events(&kit).await;
    let published: Vec<&Value> = events
        .iter()
        .map(|(v, _)| v)
        .filter(|v| v["type"] == "vuln.advisory_published")
        .collect();
    let seen: Vec<(String, u64, String)> = published
        .iter()
        .map(|v| {
            (
                v["tracking_id"].as_str().unwrap().to_owned(),
                v["version"].as_u64().unwrap(),
                v["sha256"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            (id.clone(), 1, hex::encode(Sha256::digest(&first))),
            (format!("{id}-vex"), 1, hex::encode(Sha256::digest(&vex))),
            (id.clone(), 2, hex::encode(Sha256::digest(&second))),
        ]
    );
}

/// An advisory needs `[csaf]`, a report that exists and links that name a product version;
/// link statuses need their justification rules. Each refusal stores and logs nothing.
pub async fn bad_advisories_are_refused_and_change_nothing(backend: Backend) {
    let plain = TestServer::start(backend).await;
    let id = report(&plain).await;
    plain
        .admin
        .vuln_link(&id, &link("sensor", Some("1.4.0"), "affected", None))
        .await
        .unwrap();
    let e = plain
        .admin
        .vuln_advisory(&id, &write(true, false, None))
        .await
        .unwrap_err();
    assert_eq!(api_error(e), (409, "csaf_not_configured".to_owned()));
    plain
        .raw()
        .send(
            Method::GET,
            "/.well-known/csaf/provider-metadata.json",
            None,
            vec![],
            None,
        )
        .await
        .assert_error(404, "not_found");
    drop(plain);

    let kit = with_csaf(backend).await;
    let id = report(&kit).await;
    let before = vuln_events(&kit).await.len();
    let cases: Vec<(&str, Value, u16, &str)> = vec![
        (
            "no links",
            json!({"publish": true}),
            422,
            "report_not_linked",
        ),
        ("a draft without links", json!({}), 422, "report_not_linked"),
        (
            "a malformed CVE",
            json!({"publish": true, "cve": "CVE-26-1"}),
            422,
            "unprocessable",
        ),
        (
            "an unknown field",
            json!({"publish": true, "tlp": "RED"}),
            400,
            "invalid_request",
        ),
    ];
    let token = super::admin_token(&kit).await;
    for (name, body, status, code) in &cases {
        let r = post(&kit, &format!("{PATH}/{id}/advisories"), body, Some(&token)).await;
        assert_eq!(
            (r.status.as_u16(), r.code()),
            (*status, *code),
            "{name}: {}",
            r.text
        );
    }
    let r = post(
        &kit,
        &format!("{PATH}/vr-0000000000000000/advisories"),
        &json!({"publish": true}),
        Some(&token),
    )
    .await;
    r.assert_error(404, "not_found");
    let links: Vec<(&str, LinkReport, u16, &str)> = vec![
        (
            "not affected without a justification",
            link("sensor", Some("1.4.0"), "not_affected", None),
            422,
            "unprocessable",
        ),
        (
            "a justification with affected",
            link(
                "sensor",
                Some("1.4.0"),
                "affected",
                Some("component_not_present"),
            ),
            422,
            "unprocessable",
        ),
        (
            "fixed without a release",
            link("sensor", None, "fixed", None),
            422,
            "unprocessable",
        ),
        (
            "an unknown status",
            link("sensor", Some("1.4.0"), "patched", None),
            400,
            "invalid_request",
        ),
        (
            "an unknown justification",
            link("sensor", Some("1.4.0"), "not_affected", Some("trust_me")),
            400,
            "invalid_request",
        ),
    ];
    for (name, l, status, code) in links {
        let e = kit.admin.vuln_link(&id, &l).await.unwrap_err();
        assert_eq!(api_error(e), (status, code.to_owned()), "{name}");
    }
    assert_eq!(vuln_events(&kit).await.len(), before, "nothing logged");
    assert!(kit.store.links(&id).await.unwrap().is_empty());
    assert!(kit.store.latest_advisories().await.unwrap().is_empty());
}

/// The base scores the advisories carry agree with Red Hat's `cvss` (PyPI) on vectors that
/// cover every value of every base metric, and temporal metrics that the base score ignores.
pub fn cvss_base_scores_agree_with_the_cvss_package() {
    let values: [(&str, &[&str]); 8] = [
        ("AV", &["N", "A", "L", "P"]),
        ("AC", &["L", "H"]),
        ("PR", &["N", "L", "H"]),
        ("UI", &["N", "R"]),
        ("S", &["U", "C"]),
        ("C", &["H", "L", "N"]),
        ("I", &["H", "L", "N"]),
        ("A", &["H", "L", "N"]),
    ];
    // Every combination is 2,592 vectors: all of them, a few extra with temporal metrics.
    let mut vectors = vec![String::new()];
    for (metric, options) in values {
        vectors = vectors
            .iter()
            .flat_map(|v| options.iter().map(move |o| format!("{v}/{metric}:{o}")))
            .collect();
    }
    let mut vectors: Vec<String> = vectors
        .into_iter()
        .map(|v| format!("CVSS:3.1{v}"))
        .collect();
    vectors.push("CVSS:3.1/AV:N/AC:H/PR:L/UI:R/S:C/C:L/I:L/A:L/E:U/RL:O/RC:R".into());
    let python = std::env::var("TOUCHMARK_TEST_CVSS_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = "import json, sys\nfrom cvss import CVSS3\n\
                  print(json.dumps([[str(CVSS3(v).base_score), CVSS3(v).severities()[0].upper()] \
                  for v in sys.stdin.read().split()]))\n";
    let mut child = Command::new(&python)
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), vectors.join("\n").as_bytes())
        .unwrap();
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let oracle: Vec<(String, String)> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(oracle.len(), vectors.len());
    for (vector, (score, severity)) in vectors.iter().zip(oracle) {
        let ours = touchmark_core::cvss::base_score_v31(
            &touchmark_core::vuln::CvssVector::parse("cvss", vector).unwrap(),
        )
        .unwrap();
        assert_eq!(
            (format!("{:.1}", ours.value()), ours.severity().as_str()),
            (score.clone(), severity.as_str()),
            "{vector}"
        );
    }
}
