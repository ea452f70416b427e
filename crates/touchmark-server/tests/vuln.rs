//! The vulnerability intake (issue 18) against a real server on both backends: a report
//! received, read back by its secret and by admins exactly as sent, logged by hash; bad input
//! of every kind refused with its code, storing and logging nothing; a flood from one address
//! limited and counted while admins are still served; triage by rule; the CRA clocks' due times
//! and their alerts, once per deadline; links. Oracles we did not write: `age` (Debian's Go
//! implementation) opens an encrypted report, `sectxt` validates security.txt, and Red Hat's
//! `cvss` library agrees with the intake on which CVSS vectors are valid.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

use reqwest::Method;
use serde_json::{Value, json};
use touchmark_core::event::Event;
use touchmark_testkit::{Backend, Reply, TestServer};

const PATH: &str = "/v1/vulnerability-reports";

async fn post(kit: &TestServer, path: &str, body: &Value, token: Option<&str>) -> Reply {
    kit.raw()
        .send(
            Method::POST,
            path,
            Some("application/json"),
            serde_json::to_vec(body).unwrap(),
            token,
        )
        .await
}

async fn admin_get(kit: &TestServer, token: &str, path: &str) -> Reply {
    kit.raw()
        .get_with_authorization(path, &format!("Bearer {token}"))
        .await
}

/// A new admin token's secret, for raw requests.
async fn admin_token(kit: &TestServer) -> String {
    kit.admin
        .create_token(&touchmark_client::api::CreateToken {
            role: "admin".into(),
            label: "vuln".into(),
        })
        .await
        .unwrap()
        .token
}

/// Every `vuln.*` event in the log, parsed, after sequencing.
async fn vuln_events(kit: &TestServer) -> Vec<(Value, Vec<u8>)> {
    let size = kit.sequence_now().await;
    let mut out = Vec::new();
    let mut start = 0;
    while start < size {
        let page = kit.admin.events(start, 1000).await.unwrap();
        start += page.len() as u64;
        for e in page {
            let bytes = e.canonical.as_bytes().to_vec();
            Event::from_canonical(&bytes).unwrap();
            let value: Value = serde_json::from_slice(&bytes).unwrap();
            if value["type"].as_str().unwrap_or("").starts_with("vuln.") {
                out.push((value, bytes));
            }
        }
    }
    out
}

const SCRIPT: &str = "<script>alert(document.cookie)</script>";

touchmark_testkit::both_backends!(
    a_report_is_received_read_by_its_secret_and_logged_by_hash,
    bad_reports_store_nothing_and_log_nothing,
    a_flood_from_one_address_is_limited_and_counted,
    triage_moves_by_rule_and_logs_each_change,
    cra_clocks_give_exact_due_times_and_alert_once_per_deadline,
    links_name_known_products_and_checked_components,
    #[cfg_attr(not(tm_age), ignore = "needs age: `apt-get install age`")]
    an_encrypted_report_is_stored_as_sent_and_opens_with_age,
    #[cfg_attr(not(tm_sectxt), ignore = "needs sectxt: `pip install sectxt`")]
    security_txt_is_valid_rfc_9116_for_sectxt,
    #[cfg_attr(
        not(tm_csaf),
        ignore = "needs @secvisogram/csaf-validator-lib: see .ci/run, TOUCHMARK_TEST_CSAF_VALIDATOR"
    )]
    advisories_pass_the_validator_and_are_served,
    bad_advisories_are_refused_and_change_nothing,
);

/// CSAF 2.0 advisories: written, validated, published and served.
#[path = "csaf/advisories.rs"]
mod advisories;
use advisories::{
    advisories_pass_the_validator_and_are_served, bad_advisories_are_refused_and_change_nothing,
};

#[test]
#[cfg_attr(not(tm_cvss), ignore = "needs cvss: `pip install cvss`")]
fn cvss_base_scores_agree_with_the_cvss_package() {
    advisories::cvss_base_scores_agree_with_the_cvss_package();
}

/// Script in every text field: stored and answered as sent, inside JSON only; the reporter
/// reads the status with the secret (and nothing with another secret); the log holds the
/// content's hash and none of its text.
async fn a_report_is_received_read_by_its_secret_and_logged_by_hash(backend: Backend) {
    let kit = TestServer::start(backend).await;
    let token = admin_token(&kit).await;
    kit.product("sensor").await;
    let description = format!("{SCRIPT}\nThe OTA endpoint overflows.\n\t<img src=x onerror=1>");
    let body = json!({
        "product": "sensor",
        "version": format!("1.2 {SCRIPT}"),
        "description": description,
        "cvss": "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N/E:A",
        "contact": format!("mailto:r@example.com {SCRIPT}"),
    });
    let r = post(&kit, PATH, &body, None).await;
    assert_eq!(r.status.as_u16(), 201, "{}", r.text);
    assert!(r.content_type.starts_with("application/json"));
    let id = r.body["id"].as_str().unwrap().to_owned();
    let secret = r.body["secret"].as_str().unwrap().to_owned();
    assert!(id.starts_with("vr-") && id.len() == 19, "{id}");
    assert_eq!(r.body["state"], "received");

    let status = kit
        .raw()
        .get_with_authorization(&format!("{PATH}/{id}/status"), &format!("Bearer {secret}"))
        .await;
    assert_eq!(status.status.as_u16(), 200, "{}", status.text);
    assert_eq!(status.body["state"], "received");
    assert!(
        status.body.get("description").is_none(),
        "the status holds no content"
    );
    for wrong in [format!("Bearer {secret}x"), format!("Bearer {token}")] {
        kit.raw()
            .get_with_authorization(&format!("{PATH}/{id}/status"), &wrong)
            .await
            .assert_error(404, "not_found");
    }
    kit.raw()
        .get_with_authorization(
            &format!("{PATH}/vr-0000000000000000/status"),
            &format!("Bearer {secret}"),
        )
        .await
        .assert_error(404, "not_found");
    let anonymous = kit
        .raw()
        .send(
            Method::GET,
            &format!("{PATH}/{id}/status"),
            None,
            vec![],
            None,
        )
        .await;
    anonymous.assert_error(401, "unauthorized");
    // Admin routes need an admin token.
    kit.raw()
        .get_with_authorization(&format!("{PATH}/{id}"), &format!("Bearer {secret}"))
        .await
        .assert_error(401, "unauthorized");

    let shown = admin_get(&kit, &token, &format!("{PATH}/{id}")).await;
    assert_eq!(shown.status.as_u16(), 200, "{}", shown.text);
    assert!(shown.content_type.starts_with("application/json"));
    for field in ["description", "version", "contact", "cvss", "product"] {
        assert_eq!(shown.body[field], body[field], "{field}");
    }
    assert_eq!(shown.body["deadlines"], json!([]));

    let events = vuln_events(&kit).await;
    assert_eq!(events.len(), 1);
    let (event, bytes) = &events[0];
    assert_eq!(event["type"], "vuln.received");
    assert_eq!(event["report"], id.as_str());
    assert_eq!(event["content_sha256"], shown.body["content_sha256"]);
    let text = String::from_utf8_lossy(bytes);
    assert!(
        !text.contains("script") && !text.contains("overflows") && !text.contains("sensor"),
        "{text}"
    );
}

/// Each kind of bad report gets its code, and none stores a report or logs an event.
async fn bad_reports_store_nothing_and_log_nothing(backend: Backend) {
    let kit = TestServer::start(backend).await;
    kit.product("sensor").await;
    let before = kit.sequence_now().await;
    let ok = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H";
    let cases: Vec<(&str, Value, u16, &str)> = vec![
        (
            "malformed CVSS",
            json!({"description": "x", "cvss": "CVSS:3.1/AV:N/AC:L"}),
            422,
            "cvss_invalid",
        ),
        (
            "CVSS metric twice",
            json!({"description": "x", "cvss": format!("{ok}/AV:L")}),
            422,
            "cvss_invalid",
        ),
        (
            "CVSS 3.0",
            json!({"description": "x", "cvss": ok.replace("3.1", "3.0")}),
            422,
            "cvss_invalid",
        ),
        (
            "script as CVSS",
            json!({"description": "x", "cvss": SCRIPT}),
            422,
            "cvss_invalid",
        ),
        (
            "unknown product",
            json!({"description": "x", "product": "toaster"}),
            422,
            "product_unknown",
        ),
        (
            "no description",
            json!({"contact": "a@example.com"}),
            422,
            "unprocessable",
        ),
        (
            "blank description",
            json!({"description": " \n "}),
            400,
            "invalid_request",
        ),
        (
            "description too long",
            json!({"description": "x".repeat(32 * 1024 + 1)}),
            400,
            "invalid_request",
        ),
        (
            "control character",
            json!({"description": "bell\u{7}"}),
            400,
            "invalid_request",
        ),
        (
            "contact on two lines",
            json!({"description": "x", "contact": "a\nb"}),
            400,
            "invalid_request",
        ),
        (
            "product not an id",
            json!({"description": "x", "product": SCRIPT}),
            400,
            "invalid_request",
        ),
        (
            "unknown field",
            json!({"description": "x", "html": SCRIPT}),
            400,
            "invalid_request",
        ),
        (
            "wrong type",
            json!({"description": ["x"]}),
            400,
            "invalid_request",
        ),
        (
            "encrypted, no key published",
            json!({"encrypted": "-----BEGIN AGE ENCRYPTED FILE-----\n-----END AGE ENCRYPTED FILE-----\n"}),
            422,
            "report_encryption_invalid",
        ),
    ];
    for (name, body, status, code) in cases {
        let r = post(&kit, PATH, &body, None).await;
        assert_eq!(
            (r.status.as_u16(), r.code()),
            (status, code),
            "{name}: {}",
            r.text
        );
        r.assert_error(status, code);
        assert!(
            !r.text.contains("<script>"),
            "{name}: the answer echoes markup: {}",
            r.text
        );
    }
    // A body over the intake's limit is refused before it is parsed.
    let huge = json!({"description": "y".repeat(700 * 1024)});
    post(&kit, PATH, &huge, None)
        .await
        .assert_error(413, "payload_too_large");
    let not_json = kit
        .raw()
        .send(
            Method::POST,
            PATH,
            Some("text/html"),
            SCRIPT.as_bytes().to_vec(),
            None,
        )
        .await;
    not_json.assert_error(400, "invalid_request");

    assert!(
        kit.store.reports().await.unwrap().is_empty(),
        "a refused report is stored"
    );
    assert_eq!(
        kit.sequence_now().await,
        before,
        "a refused report is logged"
    );
}

/// Past the burst of its address, the intake answers 429 with `Retry-After`, stores nothing
/// more and counts each in `/metrics`; admins are served all along.
async fn a_flood_from_one_address_is_limited_and_counted(backend: Backend) {
    let kit = TestServer::start_with(backend, &|o| {
        o.vuln.rate = touchmark_server::VulnOptions::default().rate;
    })
    .await;
    let token = admin_token(&kit).await;
    let burst = touchmark_server::VulnOptions::default().rate.burst;
    let body = json!({"description": "one of many"});
    for i in 0..burst {
        let r = post(&kit, PATH, &body, None).await;
        assert_eq!(r.status.as_u16(), 201, "report {i}: {}", r.text);
    }
    for _ in 0..25 {
        let r = post(&kit, PATH, &body, None).await;
        r.assert_error(429, "rate_limited");
        let wait: u64 = r.retry_after.as_deref().unwrap().parse().unwrap();
        assert!((1..=60).contains(&wait), "Retry-After {wait}");
        // Admin traffic is not the intake's.
        let listed = admin_get(&kit, &token, PATH).await;
        assert_eq!(listed.status.as_u16(), 200, "{}", listed.text);
    }
    // Garbage counts against the address too, before its body is read.
    let r = kit
        .raw()
        .send(
            Method::POST,
            PATH,
            Some("application/json"),
            b"{".to_vec(),
            None,
        )
        .await;
    r.assert_error(429, "rate_limited");
    assert_eq!(kit.store.reports().await.unwrap().len(), burst as usize);
    let metrics = admin_get(&kit, &token, "/metrics").await;
    assert!(
        metrics.text.contains(&format!(
            "touchmark_vuln_reports_total{{outcome=\"received\"}} {burst}"
        )) && metrics
            .text
            .contains("touchmark_vuln_reports_total{outcome=\"rate_limited\"} 26"),
        "{}",
        metrics.text
    );
    // The bucket refills on the server's clock: one report a minute.
    kit.advance(time::Duration::seconds(60));
    assert_eq!(post(&kit, PATH, &body, None).await.status.as_u16(), 201);
    post(&kit, PATH, &body, None)
        .await
        .assert_error(429, "rate_limited");
}

async fn submit(kit: &TestServer) -> String {
    let r = post(
        kit,
        PATH,
        &json!({"description": "heap overflow in the OTA parser"}),
        None,
    )
    .await;
    assert_eq!(r.status.as_u16(), 201, "{}", r.text);
    r.body["id"].as_str().unwrap().to_owned()
}

async fn admin_post(kit: &TestServer, token: &str, path: &str, body: Value) -> Reply {
    post(kit, path, &body, Some(token)).await
}

/// Each allowed move is logged with its actor; a move the state does not allow is 409
/// `report_transition_invalid` and logs nothing; the reporter sees the state.
async fn triage_moves_by_rule_and_logs_each_change(backend: Backend) {
    let kit = TestServer::start(backend).await;
    let token = admin_token(&kit).await;
    let id = submit(&kit).await;
    let state = |s: &str| json!({ "state": s });
    let path = format!("{PATH}/{id}/state");
    admin_post(&kit, &token, &path, state("fixed"))
        .await
        .assert_error(409, "report_transition_invalid");
    admin_post(&kit, &token, &path, state("received"))
        .await
        .assert_error(409, "report_transition_invalid");
    admin_post(&kit, &token, &path, state("opened"))
        .await
        .assert_error(400, "invalid_request");
    for s in ["triaged", "confirmed"] {
        let r = admin_post(&kit, &token, &path, state(s)).await;
        assert_eq!(
            (r.status.as_u16(), r.body["state"].as_str()),
            (200, Some(s)),
            "{}",
            r.text
        );
    }
    admin_post(
        &kit,
        &token,
        &path,
        json!({"state": "fixed", "corrective_at": "2999-01-01T00:00:00Z"}),
    )
    .await
    .assert_error(422, "unprocessable");
    let corrective = kit.now() - time::Duration::hours(5);
    let r = admin_post(
        &kit,
        &token,
        &path,
        json!({"state": "fixed", "corrective_at": touchmark_core::clock::format_timestamp(corrective)}),
    )
    .await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.text);
    assert_eq!(
        r.body["corrective_at"],
        touchmark_core::clock::format_timestamp(corrective)
    );
    admin_post(&kit, &token, &path, state("triaged"))
        .await
        .assert_error(409, "report_transition_invalid");
    admin_post(
        &kit,
        &token,
        &format!("{PATH}/vr-0000000000000000/state"),
        state("triaged"),
    )
    .await
    .assert_error(404, "not_found");

    let moves: Vec<(String, String)> = vuln_events(&kit)
        .await
        .into_iter()
        .filter(|(e, _)| e["type"] == "vuln.state_changed")
        .map(|(e, _)| {
            assert!(e["actor"].as_str().unwrap().starts_with("token:"));
            (
                e["from"].as_str().unwrap().into(),
                e["to"].as_str().unwrap().into(),
            )
        })
        .collect();
    let expected: Vec<(String, String)> = [
        ("received", "triaged"),
        ("triaged", "confirmed"),
        ("confirmed", "fixed"),
    ]
    .iter()
    .map(|(a, b)| ((*a).into(), (*b).into()))
    .collect();
    assert_eq!(moves, expected);
}

/// The ids `?due=true` lists.
async fn due(kit: &TestServer, token: &str) -> Vec<String> {
    let r = admin_get(kit, token, &format!("{PATH}?due=true")).await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.text);
    r.body
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect()
}

fn deadline<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["deadlines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["deadline"] == name)
        .unwrap()
}

/// An actively exploited vulnerability: the early warning is due 24 h after awareness and the
/// notification 72 h, to the millisecond; each approaching deadline raises one `cra_deadline`
/// alert (and webhook message), once, however often the server looks; `?due=true` lists the
/// report while a deadline approaches or is overdue.
async fn cra_clocks_give_exact_due_times_and_alert_once_per_deadline(backend: Backend) {
    let kit = TestServer::start(backend).await;
    let token = admin_token(&kit).await;
    let id = submit(&kit).await;
    let other = submit(&kit).await;
    let aware = touchmark_store::to_millis(kit.now() - time::Duration::hours(1));
    let fmt = touchmark_core::clock::format_timestamp;
    let path = format!("{PATH}/{id}/classification");
    admin_post(
        &kit,
        &token,
        &path,
        json!({"class": "exploited", "aware_at": fmt(aware)}),
    )
    .await
    .assert_error(400, "invalid_request");
    let r = admin_post(
        &kit,
        &token,
        &path,
        json!({"class": "exploited_vulnerability", "aware_at": fmt(aware)}),
    )
    .await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.text);
    assert_eq!(
        deadline(&r.body, "early_warning")["due_at"],
        fmt(aware + time::Duration::hours(24))
    );
    assert_eq!(
        deadline(&r.body, "notification")["due_at"],
        fmt(aware + time::Duration::hours(72))
    );
    assert_eq!(deadline(&r.body, "final_report")["status"], "waiting");
    assert!(deadline(&r.body, "final_report").get("due_at").is_none());
    admin_post(&kit, &token, &path, json!({"class": "severe_incident"}))
        .await
        .assert_error(409, "conflict");

    assert!(due(&kit, &token).await.is_empty());
    assert_eq!(
        kit.authority.raise_report_deadline_alerts().await.unwrap(),
        0
    );

    // 18 h after awareness: the early warning is 6 h away, approaching.
    kit.clock.set(aware + time::Duration::hours(18));
    assert_eq!(due(&kit, &token).await, std::slice::from_ref(&id));
    assert_eq!(
        kit.authority.raise_report_deadline_alerts().await.unwrap(),
        1
    );
    assert_eq!(
        kit.authority.raise_report_deadline_alerts().await.unwrap(),
        0
    );
    // Exactly at the due time it is not yet overdue; a millisecond later it is, and alerts no
    // more.
    kit.clock.set(aware + time::Duration::hours(24));
    let shown = admin_get(&kit, &token, &format!("{PATH}/{id}")).await;
    assert_eq!(
        deadline(&shown.body, "early_warning")["status"],
        "approaching"
    );
    kit.clock
        .set(aware + time::Duration::hours(24) + time::Duration::milliseconds(1));
    let shown = admin_get(&kit, &token, &format!("{PATH}/{id}")).await;
    assert_eq!(deadline(&shown.body, "early_warning")["status"], "overdue");
    assert_eq!(
        kit.authority.raise_report_deadline_alerts().await.unwrap(),
        0
    );
    // Submitted late, it is late; the notification approaches at 48 h and alerts once.
    let r = admin_post(
        &kit,
        &token,
        &format!("{PATH}/{id}/submissions"),
        json!({"deadline": "early_warning"}),
    )
    .await;
    assert_eq!(
        deadline(&r.body, "early_warning")["status"],
        "late",
        "{}",
        r.text
    );
    kit.clock.set(aware + time::Duration::hours(48));
    assert_eq!(
        kit.authority.raise_report_deadline_alerts().await.unwrap(),
        1
    );
    assert_eq!(
        kit.authority.raise_report_deadline_alerts().await.unwrap(),
        0
    );

    let alerts = kit.store.alerts(false).await.unwrap();
    let mut seen: Vec<(String, String)> = alerts
        .iter()
        .filter(|a| a.kind == touchmark_core::alert::AlertKind::CraDeadline)
        .map(|a| (a.evidence["deadline"].clone(), a.evidence["due_at"].clone()))
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        [
            (
                "early_warning".to_owned(),
                fmt(aware + time::Duration::hours(24))
            ),
            (
                "notification".to_owned(),
                fmt(aware + time::Duration::hours(72))
            ),
        ]
    );
    assert!(
        alerts
            .iter()
            .all(|a| a.evidence.get("report").is_none_or(|r| *r == id))
    );
    assert!(!due(&kit, &token).await.contains(&other));
    let kinds: Vec<String> = vuln_events(&kit)
        .await
        .into_iter()
        .map(|(e, _)| e["type"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        kinds,
        [
            "vuln.received",
            "vuln.received",
            "vuln.classified",
            "vuln.submitted"
        ]
    );
}

/// Links to a known product (and a component), logged; an unknown product, an unknown
/// release, a malformed package URL or range, the same link twice: each refused with its code,
/// logging nothing.
async fn links_name_known_products_and_checked_components(backend: Backend) {
    let kit = TestServer::start(backend).await;
    let token = admin_token(&kit).await;
    kit.product("sensor").await;
    let id = submit(&kit).await;
    let path = format!("{PATH}/{id}/links");
    let purl = "pkg:cargo/rustls@0.23.5";
    let range = "vers:cargo/>=0.23.0|<0.23.6";
    let r = admin_post(
        &kit,
        &token,
        &path,
        json!({"product": "sensor", "purl": purl, "range": range}),
    )
    .await;
    assert_eq!(r.status.as_u16(), 201, "{}", r.text);
    assert_eq!(
        (r.body["purl"].as_str(), r.body["range"].as_str()),
        (Some(purl), Some(range))
    );
    let before = kit.sequence_now().await;
    let cases = [
        (json!({"product": "toaster"}), 422, "product_unknown"),
        (
            json!({"product": "sensor", "release": "9.9.9"}),
            404,
            "not_found",
        ),
        (
            json!({"product": "sensor", "purl": "cargo/rustls"}),
            422,
            "unprocessable",
        ),
        (
            json!({"product": "sensor", "purl": purl, "range": ">=1.0"}),
            422,
            "unprocessable",
        ),
        (
            json!({"product": "sensor", "range": range}),
            422,
            "unprocessable",
        ),
        (
            json!({"product": "sensor", "purl": purl, "range": range}),
            409,
            "conflict",
        ),
    ];
    for (body, status, code) in cases {
        admin_post(&kit, &token, &path, body.clone())
            .await
            .assert_error(status, code);
    }
    admin_post(
        &kit,
        &token,
        &format!("{PATH}/vr-0000000000000000/links"),
        json!({"product": "sensor"}),
    )
    .await
    .assert_error(404, "not_found");
    assert_eq!(kit.sequence_now().await, before);
    let shown = admin_get(&kit, &token, &format!("{PATH}/{id}")).await;
    assert_eq!(shown.body["links"].as_array().map(Vec::len), Some(1));
    let linked = vuln_events(&kit)
        .await
        .into_iter()
        .find(|(e, _)| e["type"] == "vuln.linked")
        .unwrap()
        .0;
    assert_eq!(
        (linked["product"].as_str(), linked["purl"].as_str()),
        (Some("sensor"), Some(purl))
    );
}

// ---------------------------------------------------------------------------------------------
// Independent tools.
// ---------------------------------------------------------------------------------------------

/// The published recipient is the one an `age-keygen` identity gives; a report encrypted to it
/// by `age` is stored byte for byte and opens with `age -d`; a passphrase file is refused.
async fn an_encrypted_report_is_stored_as_sent_and_opens_with_age(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let identity = dir.path().join("identity.txt");
    let keygen = touchmark_testenv::tool(&touchmark_testenv::AGE_KEYGEN);
    let age = touchmark_testenv::tool(&touchmark_testenv::AGE);
    let out = Command::new(&keygen)
        .arg("-o")
        .arg(&identity)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new(&keygen)
        .arg("-y")
        .arg(&identity)
        .output()
        .unwrap();
    let recipient = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    touchmark_authority::vuln::check_recipient(&recipient).unwrap();
    let published = recipient.clone();
    let kit = TestServer::start_with(backend, &move |o| {
        o.vuln.recipient = Some(published.clone());
    })
    .await;
    let token = admin_token(&kit).await;

    let (status, _, key) = kit.raw().get_bytes(&format!("{PATH}/encryption-key")).await;
    assert_eq!(status.as_u16(), 200);
    let key_file = dir.path().join("recipient.txt");
    std::fs::write(&key_file, &key).unwrap();
    assert_eq!(String::from_utf8(key).unwrap(), format!("{recipient}\n"));

    let secret_text = format!("Unauthenticated RCE in the bootloader's DFU mode. {SCRIPT}\n");
    let plain = dir.path().join("report.txt");
    std::fs::write(&plain, &secret_text).unwrap();
    let out = Command::new(&age)
        .arg("-R")
        .arg(&key_file)
        .arg("-a")
        .arg(&plain)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let armored = String::from_utf8(out.stdout).unwrap();
    let r = post(
        &kit,
        PATH,
        &json!({"encrypted": armored, "contact": "signal:researcher"}),
        None,
    )
    .await;
    assert_eq!(r.status.as_u16(), 201, "{}", r.text);
    let id = r.body["id"].as_str().unwrap();

    let shown = admin_get(&kit, &token, &format!("{PATH}/{id}")).await;
    assert_eq!(shown.body["encrypted"].as_str(), Some(armored.as_str()));
    assert!(shown.body.get("description").is_none());
    let stored = dir.path().join("stored.age");
    std::fs::write(&stored, shown.body["encrypted"].as_str().unwrap()).unwrap();
    let out = Command::new(&age)
        .arg("-d")
        .arg("-i")
        .arg(&identity)
        .arg(&stored)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8(out.stdout).unwrap(), secret_text);

    // Not age at all, or age to a passphrase: refused, nothing stored.
    let before = kit.store.reports().await.unwrap().len();
    for bad in [
        "-----BEGIN AGE ENCRYPTED FILE-----\nbm90IGFnZQ==\n-----END AGE ENCRYPTED FILE-----\n"
            .to_owned(),
        secret_text.replace('<', ""),
    ] {
        post(&kit, PATH, &json!({"encrypted": bad}), None)
            .await
            .assert_error(422, "report_encryption_invalid");
    }
    assert_eq!(kit.store.reports().await.unwrap().len(), before);
}

/// `/.well-known/security.txt` as configured passes `sectxt` with no error, served as text;
/// without a configuration it is 404.
async fn security_txt_is_valid_rfc_9116_for_sectxt(backend: Backend) {
    let plain = TestServer::start(backend).await;
    plain
        .raw()
        .send(Method::GET, "/.well-known/security.txt", None, vec![], None)
        .await
        .assert_error(404, "not_found");
    drop(plain);
    let base = "https://touchmark.example";
    let kit = TestServer::start_with(backend, &move |o| {
        o.vuln.recipient =
            Some("age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p".into());
        o.vuln.security_txt = Some(touchmark_server::security_txt::SecurityTxt {
            contact: vec![
                "mailto:security@touchmark.example".into(),
                format!("{base}{PATH}"),
            ],
            expires: touchmark_server::security_txt::Expires::DaysAfterServing(180),
            policy: Some(format!("{base}/security-policy")),
            preferred_languages: vec!["en".into(), "de".into()],
            canonical: Some(format!("{base}/.well-known/security.txt")),
            encryption: Some(format!("{base}{PATH}/encryption-key")),
        });
    })
    .await;
    let (status, headers, body) = kit.raw().get_bytes("/.well-known/security.txt").await;
    assert_eq!(status.as_u16(), 200);
    assert!(
        headers[reqwest::header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/plain; charset=utf-8")
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("security.txt");
    std::fs::write(&file, &body).unwrap();
    let python = std::env::var("TOUCHMARK_TEST_SECTXT_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = "import json, sys\nfrom sectxt import Parser\n\
                  p = Parser(open(sys.argv[1], 'rb').read(), urls=sys.argv[2])\n\
                  print(json.dumps({'valid': p.is_valid(), 'errors': p.errors, 'recommendations': p.recommendations}))\n";
    let out = Command::new(&python)
        .args(["-c", script])
        .arg(&file)
        .arg(format!("{base}/.well-known/security.txt"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let verdict: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        verdict["valid"],
        true,
        "{verdict}\n{}",
        String::from_utf8_lossy(&body)
    );
    assert_eq!(verdict["errors"], json!([]), "{verdict}");
    // Its one recommendation is a signature, which a generated file cannot carry.
    let codes: Vec<&str> = verdict["recommendations"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["code"].as_str())
        .collect();
    assert!(codes.iter().all(|c| *c == "not_signed"), "{verdict}");
}

/// The intake's CVSS check agrees with Red Hat's `cvss` library on every vector of a corpus
/// that covers each rule: the version, unknown metrics and values, duplicates, missing base
/// metrics, any order, trailing separators, case.
#[test]
#[cfg_attr(not(tm_cvss), ignore = "needs the cvss package: `pip install cvss`")]
fn cvss_vectors_are_judged_as_the_cvss_library_judges_them() {
    let v31 = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H";
    let v40 = "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N";
    let corpus = [
        v31.to_owned(),
        v40.to_owned(),
        "CVSS:3.1/AC:L/AV:N/PR:N/UI:N/S:U/C:H/I:H/A:H".into(),
        format!("{v31}/E:X/RL:O/RC:C/CR:H/IR:L/AR:M/MAV:P/MAC:H/MPR:L/MUI:R/MS:C/MC:L/MI:N/MA:H"),
        format!("{v31}/AV:N"),
        format!("{v31}/"),
        format!("{v31}/E:Q"),
        format!("{v31}/AT:N"),
        v31.replace("/A:H", ""),
        v31.replace("AV:N", "AV:X"),
        v31.to_lowercase(),
        format!("{v40}/E:A/CR:H/MAV:A/MSI:S/MSA:S/S:P/AU:Y/R:I/V:C/RE:H/U:Amber"),
        format!("{v40}/U:Red/E:U"),
        format!("{v40}/U:red"),
        format!("{v40}/MSI:S/MSI:N"),
        v40.replace("/SA:N", ""),
        v40.replace("AT:N", "AT:X"),
        format!("{v40}/S:U"),
        "CVSS:4.0/AC:L/AV:N/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N".into(),
        "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N/AV:N".into(),
        "CVSS:3.1".into(),
        "CVSS:3.1/".into(),
        "AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H".into(),
    ];
    let python = std::env::var("TOUCHMARK_TEST_CVSS_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = "import json, sys\nfrom cvss import CVSS3, CVSS4\nout = []\n\
                  for v in json.load(sys.stdin):\n\
                  \x20   try:\n\
                  \x20       (CVSS4 if v.startswith('CVSS:4.0/') else CVSS3)(v); out.append(True)\n\
                  \x20   except Exception:\n\
                  \x20       out.append(False)\n\
                  print(json.dumps(out))\n";
    let mut child = Command::new(&python)
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    serde_json::to_writer(child.stdin.take().unwrap(), &corpus).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let theirs: Vec<bool> = serde_json::from_slice(&out.stdout).unwrap();
    for (vector, theirs) in corpus.iter().zip(theirs) {
        let ours = touchmark_core::vuln::CvssVector::parse("cvss", vector).is_ok();
        assert_eq!(ours, theirs, "{vector}");
    }
}
