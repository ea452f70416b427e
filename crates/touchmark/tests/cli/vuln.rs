//! `touchmark vuln` against a running server, as an admin types it: a researcher's report is
//! linked to a product, `vuln affected --json` lists every issued unit's serial (read page by
//! page from the server), `--limit` stops early, and `vuln advisory --out` writes the CSAF 2.0
//! draft, which the BSI's validator (csaf-validator-lib) finds valid when it is installed.
//! Advisory revisions published while the server is killed are neither lost nor doubled, on
//! SQLite and on PostgreSQL.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

use crate::kit::{self, Served};

fn touchmark(data: &Path, url: &str, token: &str) -> Command {
    let mut command = Command::new(kit::bin());
    command
        .current_dir(data.parent().unwrap())
        .env("TOUCHMARK_CA", data.join("certs/infra-root-ca.pem"))
        .env_remove("TOUCHMARK_TOKEN_FILE")
        .env("TOUCHMARK_SERVER", url)
        .env("TOUCHMARK_TOKEN", token)
        .env("TOUCHMARK_KEY_PASSPHRASE", kit::PASSPHRASE);
    command
}

fn json_of(out: &Output, what: &str) -> Value {
    kit::assert_success(out, what);
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{what}: not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// An installation's directory (kept while the first value lives), its running server, the
/// admin token, and a report's id.
type Installation = (
    tempfile::TempDir,
    std::path::PathBuf,
    Served,
    String,
    String,
);

/// A running installation (on SQLite, or on the PostgreSQL database `database`) with five
/// units of PO-1 issued out of serial order, and a researcher's report on their product,
/// whose markup is never copied: the installation's directory (kept while the first value
/// lives), the server, the admin token, the report.
async fn installation_with_a_report(database: Option<&str>) -> Installation {
    let (tmp, data) = kit::tempdir();
    let token = kit::init_with(&data, database);
    // A CSAF publisher: advisories need one, and an https public URL they are served under.
    let config = data.join("touchmark.toml");
    let mut toml = std::fs::read_to_string(&config).unwrap();
    assert!(!toml.contains("public_url"), "{toml}");
    toml = format!(
        "public_url = \"https://tm.example\"\n{toml}\n[csaf]\npublisher_name = \"Acme\"\n\
         publisher_namespace = \"https://acme.example\"\n"
    );
    std::fs::write(&config, toml).unwrap();
    let served = Served::start_with(&data, database);
    let admin = kit::admin(&served.url, &data, &token);
    kit::setup_order(&admin, "PO-1", 100).await;
    let identity = kit::enroll(&admin, &served.url, &data, "cm", "line-1").await;
    let station = kit::station_client(&served.url, &data, &identity);
    for n in [7, 3, 12, 1, 5] {
        let unit = kit::Unit::new(format!("SN-{n:06}"));
        station.provision("PO-1", &unit.request()).await.unwrap();
    }
    let report = admin
        .submit_vulnerability_report(&touchmark_core::api::SubmitReport {
            product: Some("sensor".into()),
            description: Some("the sensor answers <script>alert(1)</script>".into()),
            ..Default::default()
        })
        .await
        .unwrap()
        .id;
    (tmp, data, served, token, report)
}

/// [`installation_with_a_report`], the report linked to the product by `touchmark vuln link`.
async fn installation_with_a_linked_report(database: Option<&str>) -> Installation {
    let (tmp, data, served, token, report) = installation_with_a_report(database).await;
    let linked = run(
        &data,
        &served,
        &token,
        &["vuln", "link", &report, "--product", "sensor"],
    );
    kit::assert_success(&linked, "vuln link");
    (tmp, data, served, token, report)
}

/// Runs `touchmark ARGS` against the installation's server as its admin.
fn run(data: &Path, served: &Served, token: &str, args: &[&str]) -> Output {
    touchmark(data, &served.url, token)
        .args(args)
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vuln_link_affected_and_advisory_work_from_the_command_line() {
    let (_tmp, data, served, token, report) = installation_with_a_report(None).await;
    let run = |args: &[&str]| run(&data, &served, &token, args);

    let linked = json_of(
        &run(&["vuln", "link", &report, "--product", "sensor", "--json"]),
        "vuln link",
    );
    assert_eq!(linked["product"], "sensor", "{linked}");

    let affected = json_of(&run(&["vuln", "affected", &report, "--json"]), "affected");
    let serials: Vec<&str> = affected["units"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["serial"].as_str().unwrap())
        .collect();
    assert_eq!(
        serials,
        [
            "SN-000001",
            "SN-000003",
            "SN-000005",
            "SN-000007",
            "SN-000012"
        ]
    );
    assert_eq!(affected["total"], 5);
    assert_eq!(affected["by_order"]["PO-1"], 5);
    assert_eq!(affected["by_release"]["*"], 5);
    assert!(affected.get("next").is_none(), "{affected}");

    // --limit: the first two, and where the rest starts; the counts are of all.
    let first = json_of(
        &run(&["vuln", "affected", &report, "--limit", "2", "--json"]),
        "affected --limit",
    );
    assert_eq!(first["units"].as_array().unwrap().len(), 2);
    assert_eq!(first["total"], 5);
    assert_eq!(first["next"], "SN-000003/PO-1");
    let text = run(&["vuln", "affected", &report]);
    kit::assert_success(&text, "affected as text");
    let text = String::from_utf8_lossy(&text.stdout);
    let has_line = |words: &[&str]| {
        text.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == words)
    };
    assert!(has_line(&["units", "affected", "5"]), "{text}");
    assert!(has_line(&["PO-1", "5"]), "the count of the order: {text}");
    assert!(
        has_line(&["*", "5"]),
        "the count of the product-wide link: {text}"
    );
    assert!(
        !text.contains("SN-000001"),
        "units only with --limit: {text}"
    );
    let refused = run(&["vuln", "affected", &report, "--limit", "0"]);
    assert!(!refused.status.success());
    let refused = run(&["vuln", "affected", "vr-0000000000000000", "--json"]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("not_found"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );

    // The advisory: a draft written to --out, CSAF 2.0, naming the product; the reporter's
    // text is not in it.
    let out = data.join("advisory.json");
    let written = run(&["vuln", "advisory", &report, "--out", out.to_str().unwrap()]);
    kit::assert_success(&written, "vuln advisory");
    let bytes = std::fs::read(&out).unwrap();
    let advisory: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(advisory["document"]["csaf_version"], "2.0");
    assert_eq!(advisory["document"]["category"], "csaf_security_advisory");
    assert_eq!(advisory["document"]["tracking"]["status"], "draft");
    assert!(String::from_utf8_lossy(&bytes).contains("Sensor"));
    assert!(!String::from_utf8_lossy(&bytes).contains("<script>"));
}

/// The advisory `vuln advisory --out` writes passes the BSI's CSAF validator: its strict
/// schema and every mandatory test (`.ci/run` installs it; `TOUCHMARK_TEST_CSAF_VALIDATOR`
/// names its npm prefix).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(tm_csaf),
    ignore = "needs @secvisogram/csaf-validator-lib (npm) and TOUCHMARK_TEST_CSAF_VALIDATOR"
)]
async fn the_advisory_vuln_advisory_writes_passes_the_bsi_validator() {
    let (_tmp, data, served, token, report) = installation_with_a_linked_report(None).await;
    let out = data.join("advisory.json");
    let written = run(
        &data,
        &served,
        &token,
        &["vuln", "advisory", &report, "--out", out.to_str().unwrap()],
    );
    kit::assert_success(&written, "vuln advisory");
    let prefix = std::env::var("TOUCHMARK_TEST_CSAF_VALIDATOR").unwrap();
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../touchmark-server/tests/csaf/validate.mjs");
    let verdict = Command::new("node")
        .arg(&script)
        .arg(&prefix)
        .arg(&out)
        .output()
        .expect("node runs");
    kit::assert_success(&verdict, "the CSAF validator");
    let verdict: Value = serde_json::from_slice(&verdict.stdout).unwrap();
    assert_eq!(verdict["isValid"], true, "{verdict}");
    assert_eq!(verdict["errors"], serde_json::json!([]), "{verdict}");
}

/// SIGKILL while two admins publish revisions of a report's advisory, then a restart, on
/// SQLite: see [`publishing_survives_sigkill`].
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn advisory_revisions_survive_a_sigkill_on_sqlite() {
    publishing_survives_sigkill(None).await;
}

/// The same on PostgreSQL.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(
    not(tm_postgres),
    ignore = "needs PostgreSQL: set TOUCHMARK_TEST_POSTGRES_URL"
)]
async fn advisory_revisions_survive_a_sigkill_on_postgres() {
    let database = crate::pg::Fresh::create().await;
    publishing_survives_sigkill(Some(&database.url)).await;
}

/// Two admins publish revisions of one advisory as fast as they can; the server is killed
/// (SIGKILL) after six answers, with requests in flight, and started again. Then every
/// revision an admin was answered is in the log with the SHA-256 of the bytes it was given,
/// the log's versions are 1, 2, 3… with none twice and none missing, the next revision is
/// the one after the last logged, and the auditor's replay accepts the log.
async fn publishing_survives_sigkill(database: Option<&str>) {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use touchmark_core::api::WriteAdvisory;
    use touchmark_core::event::Sha256Hash;

    let (_tmp, data, served, token, report) = installation_with_a_linked_report(database).await;
    let publish = WriteAdvisory {
        publish: true,
        summary: Some("a revision".into()),
        ..Default::default()
    };
    let answered = Arc::new(AtomicUsize::new(0));
    let (kill_tx, kill_rx) = tokio::sync::oneshot::channel::<()>();
    let kill_tx = Arc::new(std::sync::Mutex::new(Some(kill_tx)));
    let mut workers = Vec::new();
    for _ in 0..2 {
        let admin = kit::admin(&served.url, &data, &token);
        let (report, publish) = (report.clone(), publish.clone());
        let (answered, kill_tx) = (Arc::clone(&answered), Arc::clone(&kill_tx));
        workers.push(tokio::spawn(async move {
            // (version, SHA-256 of the bytes) of each revision this admin was told it published.
            let mut acknowledged = Vec::new();
            for _ in 0..200 {
                match admin.vuln_advisory(&report, &publish).await {
                    Ok((bytes, created)) => {
                        assert!(created, "a published revision is 201");
                        let doc: Value = serde_json::from_slice(&bytes).unwrap();
                        let version = doc["document"]["tracking"]["version"]
                            .as_str()
                            .unwrap()
                            .parse::<u64>()
                            .unwrap();
                        acknowledged.push((version, Sha256Hash::of(&bytes).to_hex()));
                    }
                    // Another admin published the same revision first.
                    Err(touchmark_client::ClientError::Api { body, .. }) => {
                        assert_eq!(body.code, "conflict", "{}", body.message);
                    }
                    // The server is gone.
                    Err(_) => break,
                }
                if answered.fetch_add(1, Ordering::SeqCst) + 1 == 6
                    && let Some(tx) = kill_tx.lock().unwrap().take()
                {
                    let _ = tx.send(());
                }
            }
            acknowledged
        }));
    }
    kill_rx.await.unwrap();
    served.kill();
    let mut acknowledged = Vec::new();
    for worker in workers {
        acknowledged.extend(worker.await.unwrap());
    }
    assert!(acknowledged.len() >= 2, "{acknowledged:?}");

    let served = Served::start_with(&data, database);
    let admin = kit::admin(&served.url, &data, &token);
    // On PostgreSQL the entries committed before the kill wait for a sequencer: this process,
    // once the dead one's lease has run out.
    for _ in 0..120 {
        if admin.health().await.unwrap().sequencer {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    assert!(
        admin.health().await.unwrap().sequencer,
        "no sequencer within a minute"
    );
    kit::wait_settled(&admin).await;
    let logged: Vec<(u64, String)> = kit::all_events(&admin)
        .await
        .iter()
        .filter(|e| e.kind == "vuln.advisory_published")
        .map(|e| {
            let event: Value = serde_json::from_str(&e.canonical).unwrap();
            assert_eq!(event["tracking_id"], report.as_str());
            (
                event["version"].as_u64().unwrap(),
                event["sha256"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let versions: Vec<u64> = logged.iter().map(|(v, _)| *v).collect();
    let expected: Vec<u64> = (1..=versions.len() as u64).collect();
    assert_eq!(versions, expected, "contiguous, each once");
    for revision in &acknowledged {
        assert!(
            logged.contains(revision),
            "{revision:?} is not logged: {logged:?}"
        );
    }
    // The next revision follows the last logged.
    let (bytes, created) = admin.vuln_advisory(&report, &publish).await.unwrap();
    assert!(created);
    let doc: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(
        doc["document"]["tracking"]["version"],
        (versions.len() + 1).to_string()
    );
    assert_eq!(
        doc["document"]["tracking"]["revision_history"]
            .as_array()
            .unwrap()
            .len(),
        versions.len() + 1
    );
    // The auditor replays the whole log, advisories included.
    kit::wait_settled(&admin).await;
    let audited = kit::audit(
        &served.url,
        &data,
        &data.parent().unwrap().join("audit.state"),
    );
    kit::assert_success(&audited, "audit verify after the restart");
}
