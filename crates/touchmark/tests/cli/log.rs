//! The touchplate, served: `audit verify` passes on a real log and fails, naming what is wrong,
//! when the log is tampered with, truncated or forked, or records an issuance beyond quota.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::kit::{self, Served, Unit};

/// An installation serving a log with `units` issued units in order `PO-LOG` (quota 1,000).
struct Log {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    token: String,
    served: Option<Served>,
}

impl Log {
    async fn new(units: usize) -> Self {
        let (tmp, dir) = kit::tempdir();
        let token = kit::init(&dir);
        let served = Served::start(&dir);
        let admin = kit::admin(&served.url, &dir, &token);
        kit::setup_order(&admin, "PO-LOG", 1000).await;
        let mut log = Self {
            _tmp: tmp,
            dir,
            token,
            served: Some(served),
        };
        log.provision("A", units).await;
        log
    }

    fn url(&self) -> String {
        self.served.as_ref().unwrap().url.clone()
    }

    async fn provision(&mut self, prefix: &str, units: usize) {
        let url = self.url();
        let admin = kit::admin(&url, &self.dir, &self.token);
        let id = format!("line-{prefix}-{}", rand_suffix());
        let identity = kit::enroll(&admin, &url, &self.dir, "cm", &id).await;
        let station = kit::station_client(&url, &self.dir, &identity);
        for i in 0..units {
            station
                .provision("PO-LOG", &Unit::new(format!("{prefix}-{i:05}")).request())
                .await
                .unwrap();
        }
        self.wait_covered().await;
    }

    /// Waits until a checkpoint covers every committed event.
    async fn wait_covered(&self) -> u64 {
        let admin = kit::admin(&self.url(), &self.dir, &self.token);
        for _ in 0..100 {
            let size = admin.health().await.unwrap().log_size;
            let note = admin.checkpoint().await.unwrap();
            let signed: u64 = note.lines().nth(1).unwrap().parse().unwrap();
            if signed == size {
                return size;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("no checkpoint covered the log within 10 s");
    }

    fn stop(&mut self) {
        if let Some(served) = self.served.take() {
            served.kill();
        }
    }

    fn restart(&mut self) {
        self.stop();
        self.served = Some(Served::start(&self.dir));
    }

    fn db(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(self.dir.join("touchmark.db")).unwrap()
    }
}

fn rand_suffix() -> String {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    N.fetch_add(1, Ordering::SeqCst).to_string()
}

fn verify(source: &str, data: &Path, state: &Path) -> Output {
    Command::new(kit::bin())
        .args(["audit", "verify", source, "--quiet", "--json", "--key"])
        .arg(format!("@{}", data.join("log-verifier.txt").display()))
        .arg("--state")
        .arg(state)
        .arg("--ca")
        .arg(data.join("certs/infra-root-ca.pem"))
        .output()
        .unwrap()
}

fn assert_fails(out: &Output, needle: &str, what: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !out.status.success(),
        "{what}: audit verify passed\n{stdout}"
    );
    assert!(
        stderr.to_lowercase().contains(&needle.to_lowercase())
            || stdout.to_lowercase().contains(&needle.to_lowercase()),
        "{what}: the failure does not name `{needle}`\n--- stderr\n{stderr}\n--- stdout\n{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_served_log_verifies_and_reports_per_order() {
    let log = Log::new(40).await;
    let state = log.dir.parent().unwrap().join("audit.state");
    let out = verify(&log.url(), &log.dir, &state);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let text = report.to_string();
    assert!(text.contains("PO-LOG"), "{report:#}");
    let order = &report["orders"]["PO-LOG"];
    assert_eq!(order["issued"], 40, "{report:#}");
    assert_eq!(
        order["quota_history"],
        serde_json::json!([1000]),
        "{report:#}"
    );
    // A unit's receipt verifies with the log's key alone.
    let receipt = Command::new(kit::bin())
        .args([
            "unit",
            "receipt",
            "A-00003",
            "--json",
            "--server",
            &log.url(),
            "--token",
            &log.token,
            "--key",
        ])
        .arg(format!("@{}", log.dir.join("log-verifier.txt").display()))
        .arg("--data")
        .arg(&log.dir)
        .output()
        .unwrap();
    assert!(
        receipt.status.success(),
        "{}",
        String::from_utf8_lossy(&receipt.stderr)
    );
    let receipt: serde_json::Value = serde_json::from_slice(&receipt.stdout).unwrap();
    assert_eq!(receipt["verified"], true);
    assert!(
        receipt["receipt"]
            .as_str()
            .unwrap()
            .starts_with("c2sp.org/tlog-proof@v1\n")
    );
    // Run again: the state is up to date, and it still passes.
    assert!(verify(&log.url(), &log.dir, &state).status.success());
    // An exported bundle verifies offline, with the same key.
    let bundle = log.dir.parent().unwrap().join("bundle");
    let export = Command::new(kit::bin())
        .args(["audit", "export"])
        .arg(&bundle)
        .args(["--server", &log.url(), "--ca"])
        .arg(log.dir.join("certs/infra-root-ca.pem"))
        .output()
        .unwrap();
    assert!(
        export.status.success(),
        "{}",
        String::from_utf8_lossy(&export.stderr)
    );
    let fresh_state = log.dir.parent().unwrap().join("offline.state");
    let out = verify(bundle.to_str().unwrap(), &log.dir, &fresh_state);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampering_with_a_served_log_is_detected() {
    // An entry's bytes changed in the database: the served bundle no longer matches the tiles.
    let mut log = Log::new(30).await;
    let state = log.dir.parent().unwrap().join("audit.state");
    log.stop();
    log.db()
        .execute("UPDATE events SET bytes = CAST(replace(CAST(bytes AS TEXT), 'A-00007', 'A-00070') AS BLOB) WHERE kind = 'unit.issued'", [])
        .unwrap();
    log.restart();
    assert_fails(
        &verify(&log.url(), &log.dir, &state),
        "entr",
        "a changed entry byte",
    );

    // A tile changed.
    let mut log = Log::new(30).await;
    let state = log.dir.parent().unwrap().join("audit.state");
    log.stop();
    let data: Vec<u8> = log
        .db()
        .query_row(
            "SELECT data FROM log_tiles WHERE level = 0 AND idx = 0",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let mut bad = data.clone();
    bad[40] ^= 1;
    log.db()
        .execute(
            "UPDATE log_tiles SET data = ?1 WHERE level = 0 AND idx = 0",
            [bad],
        )
        .unwrap();
    log.restart();
    assert_fails(
        &verify(&log.url(), &log.dir, &state),
        "tile",
        "a changed tile byte",
    );

    // A checkpoint changed: its signature no longer verifies, and the server refuses to serve
    // from state it cannot verify; the auditor is given the forged note through a bundle.
    let log = Log::new(10).await;
    let bundle = log.dir.parent().unwrap().join("bundle");
    let export = Command::new(kit::bin())
        .args(["audit", "export"])
        .arg(&bundle)
        .args(["--server", &log.url(), "--ca"])
        .arg(log.dir.join("certs/infra-root-ca.pem"))
        .output()
        .unwrap();
    assert!(export.status.success());
    let checkpoint = std::fs::read_to_string(bundle.join("checkpoint")).unwrap();
    let size_line = checkpoint.lines().nth(1).unwrap().to_owned();
    std::fs::write(
        bundle.join("checkpoint"),
        checkpoint.replacen(
            &size_line,
            &(size_line.parse::<u64>().unwrap() - 1).to_string(),
            1,
        ),
    )
    .unwrap();
    let state = log.dir.parent().unwrap().join("bundle.state");
    assert_fails(
        &verify(bundle.to_str().unwrap(), &log.dir, &state),
        "signature",
        "a changed checkpoint byte",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_or_forked_log_is_detected() {
    let mut log = Log::new(20).await;
    let state = log.dir.parent().unwrap().join("audit.state");
    // Copy the installation as it is now: a snapshot of the smaller log.
    log.stop();
    let snapshot = log.dir.parent().unwrap().join("snapshot");
    copy_dir(&log.dir, &snapshot);
    log.restart();
    log.provision("B", 10).await;
    assert!(
        verify(&log.url(), &log.dir, &state).status.success(),
        "the grown log verifies"
    );

    // Truncated: the snapshot serves the smaller log; the auditor has seen the bigger one.
    log.stop();
    let old = Served::start(&snapshot);
    assert_fails(
        &verify(&old.url, &log.dir, &state),
        "truncat",
        "a truncated log",
    );

    // Forked: the snapshot grows differently to a larger size than the auditor saw.
    let mut fork = Log {
        _tmp: tempfile::tempdir().unwrap(),
        dir: snapshot.clone(),
        token: log.token.clone(),
        served: Some(old),
    };
    fork.provision("C", 30).await;
    assert_fails(
        &verify(&fork.url(), &log.dir, &state),
        "fork",
        "a forked log",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_issuance_beyond_quota_inserted_into_the_database_is_a_violation() {
    let mut log = Log::new(5).await;
    let admin = kit::admin(&log.url(), &log.dir, &log.token);
    admin.set_quota("PO-LOG", 5).await.unwrap();
    log.wait_covered().await;
    log.stop();
    // An insider writes a sixth issuance straight into the event table, with a correct leaf
    // hash, so the sequencer logs and signs it as if it were real.
    let db = log.db();
    let (idx, bytes): (i64, Vec<u8>) = db
        .query_row(
            "SELECT idx, bytes FROM events WHERE kind = 'unit.issued' ORDER BY idx DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    let forged = String::from_utf8(bytes)
        .unwrap()
        .replace("\"serial\":\"A-00004\"", "\"serial\":\"X-00001\"");
    let mut key = forged.clone();
    let at = key.find("\"pubkey_sha256\":\"").unwrap() + 17;
    key.replace_range(at..at + 64, &"ab".repeat(32));
    let next: i64 = db
        .query_row("SELECT max(idx) + 1 FROM events", [], |r| r.get(0))
        .unwrap();
    let leaf = touchmark_tlog::hash::leaf_hash(key.as_bytes());
    db.execute(
        "INSERT INTO events (idx, kind, order_id, bytes, leaf_hash) VALUES (?1, 'unit.issued', 'PO-LOG', ?2, ?3)",
        rusqlite::params![next, key.as_bytes(), leaf.0.as_slice()],
    )
    .unwrap();
    assert!(idx < next);
    log.restart();
    log.wait_covered().await;
    let state = log.dir.parent().unwrap().join("audit.state");
    let out = verify(&log.url(), &log.dir, &state);
    assert_fails(&out, &format!("{next}"), "an issuance beyond quota");
    assert_fails(&out, "quota", "an issuance beyond quota");
}

/// Copies a directory with its files' and directories' permissions, as `cp -a` would: `serve`
/// refuses a data directory that other users can read.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    std::fs::set_permissions(to, std::fs::metadata(from).unwrap().permissions()).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_that_no_longer_matches_its_events_halts_and_says_so() {
    let mut log = Log::new(3).await;
    let admin = kit::admin(&log.url(), &log.dir, &log.token);
    let signed = log.wait_covered().await;
    // While it runs, an event appears whose bytes do not match its leaf hash.
    let next: i64 = log
        .db()
        .query_row("SELECT max(idx) + 1 FROM events", [], |r| r.get(0))
        .unwrap();
    log.db()
        .execute(
            "INSERT INTO events (idx, kind, order_id, bytes, leaf_hash) VALUES (?1, 'unit.refused', 'PO-LOG', ?2, ?3)",
            rusqlite::params![next, b"{}".as_slice(), [0u8; 32].as_slice()],
        )
        .unwrap();
    let mut health = admin.health().await.unwrap();
    for _ in 0..50 {
        if health.log_halted.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        health = admin.health().await.unwrap();
    }
    assert_eq!(health.status, "degraded", "{health:?}");
    assert!(
        health
            .log_halted
            .as_deref()
            .unwrap_or_default()
            .contains(&format!("event {next}")),
        "{health:?}"
    );
    assert_eq!(
        health.checkpoint_size, signed,
        "the last good checkpoint is still served, and no other"
    );
    // Restarted on that database, the server refuses to start rather than sign over it.
    log.stop();
    let out = Command::new(kit::bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(&log.dir)
        .env("TOUCHMARK_KEY_PASSPHRASE", kit::PASSPHRASE)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("refuses to sign") && stderr.contains(&format!("event {next}")),
        "{stderr}"
    );
}
