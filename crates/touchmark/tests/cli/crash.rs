//! Crash: SIGKILL the server in the middle of a 1,000-unit run against a quota of 900, restart
//! it, finish the run. Every certificate a station received is in the database and the log,
//! nothing is counted twice, and the order ends at exactly its quota (I1, I2, I3).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use touchmark_client::{Client, ClientError};
use touchmark_core::code::ErrorCode;

use crate::kit::{self, Served, Unit};

const UNITS: usize = 1000;
const QUOTA: u64 = 900;
const CONCURRENCY: usize = 16;

/// What a station learned about one unit.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Issued {
        cert_sha256: String,
        index: u64,
    },
    Refused(String),
    /// The connection died with the server: the unit may or may not have been issued.
    Unknown,
}

async fn provision(station: &Client, unit: &Unit) -> Outcome {
    match station.provision("PO-CRASH", &unit.request()).await {
        Ok(done) => Outcome::Issued {
            cert_sha256: done.cert_sha256,
            index: done
                .receipt
                .index
                .expect("SQLite gives the index at commit"),
        },
        Err(ClientError::Api { body, .. }) => Outcome::Refused(body.code),
        Err(_) => Outcome::Unknown,
    }
}

/// Provisions `units` with `CONCURRENCY` workers; after `kill_after` answers, `on_kill` runs once.
async fn run(
    station: Client,
    units: Arc<Vec<Unit>>,
    todo: Vec<usize>,
    kill_after: Option<(usize, tokio::sync::oneshot::Sender<()>)>,
) -> BTreeMap<usize, Outcome> {
    let next = Arc::new(AtomicUsize::new(0));
    let answered = Arc::new(AtomicUsize::new(0));
    let todo = Arc::new(todo);
    let (limit, kill) = match kill_after {
        Some((n, tx)) => (n, Some(tx)),
        None => (usize::MAX, None),
    };
    let kill = Arc::new(std::sync::Mutex::new(kill));
    let mut workers = Vec::new();
    for _ in 0..CONCURRENCY {
        let (station, units, todo, next, answered, kill) = (
            station.clone(),
            Arc::clone(&units),
            Arc::clone(&todo),
            Arc::clone(&next),
            Arc::clone(&answered),
            Arc::clone(&kill),
        );
        workers.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(&unit) = todo.get(i) else { break };
                let outcome = provision(&station, &units[unit]).await;
                seen.push((unit, outcome));
                if answered.fetch_add(1, Ordering::SeqCst) + 1 == limit
                    && let Some(tx) = kill.lock().unwrap().take()
                {
                    let _ = tx.send(());
                }
            }
            seen
        }));
    }
    let mut outcomes = BTreeMap::new();
    for worker in workers {
        outcomes.extend(worker.await.unwrap());
    }
    outcomes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_mid_run_loses_nothing_and_counts_nothing_twice() {
    sigkill_mid_run(kit::Keys::Files).await;
}

/// The same with every key in a PKCS#11 token (SoftHSM2): the restarted server logs in to the
/// token again, and nothing signed in it is lost or doubled.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(
    not(tm_softhsm),
    ignore = "needs SoftHSM2 and OpenSC: apt-get install softhsm2 opensc"
)]
async fn sigkill_mid_run_with_keys_in_a_token() {
    let token = touchmark_testenv::softhsm::Token::create();
    sigkill_mid_run(kit::Keys::Token(&token)).await;
}

async fn sigkill_mid_run(keys: kit::Keys<'_>) {
    let (_tmp, dir) = kit::tempdir();
    let token = kit::init_keys(&dir, None, keys);
    let served = Served::start_keys(&dir, keys);
    let admin = kit::admin(&served.url, &dir, &token);
    kit::setup_order(&admin, "PO-CRASH", QUOTA).await;
    let identity = kit::enroll(&admin, &served.url, &dir, "cm", "line-1").await;
    let units: Arc<Vec<Unit>> = Arc::new(
        (0..UNITS)
            .map(|i| Unit::new(format!("SN-{i:06}")))
            .collect(),
    );

    // Phase 1: kill the server with SIGKILL after 300 answers, while requests are in flight.
    let (tx, rx) = tokio::sync::oneshot::channel();
    let station = kit::station_client(&served.url, &dir, &identity);
    let (url, audit_dir) = (served.url.clone(), dir.clone());
    let killer = tokio::spawn(async move {
        let _ = rx.await;
        // An auditor verifies the log just before the crash and keeps that checkpoint.
        let before = audit(&url, &audit_dir);
        served.kill();
        before
    });
    let phase1 = run(
        station,
        Arc::clone(&units),
        (0..UNITS).collect(),
        Some((300, tx)),
    )
    .await;
    let before = killer.await.unwrap();
    assert!(
        before.status.success(),
        "audit before the crash: {}",
        String::from_utf8_lossy(&before.stderr)
    );
    let unknown = phase1.values().filter(|o| **o == Outcome::Unknown).count();
    let issued_before: BTreeMap<usize, String> = phase1
        .iter()
        .filter_map(|(&u, o)| match o {
            Outcome::Issued { cert_sha256, .. } => Some((u, cert_sha256.clone())),
            _ => None,
        })
        .collect();
    assert!(
        issued_before.len() >= 300 && issued_before.len() < UNITS,
        "the kill came mid-run: {} issued",
        issued_before.len()
    );
    assert!(
        unknown > 0,
        "some requests must have been cut off by the kill"
    );

    // Phase 2: restart on the same data and send every unit again, as a station would after an
    // outage: the ones with unknown outcomes, and the issued ones too (they must come back the same).
    let served = Served::start_keys(&dir, keys);
    let station = kit::station_client(&served.url, &dir, &identity);
    let phase2 = run(station, Arc::clone(&units), (0..UNITS).collect(), None).await;
    assert!(
        phase2.values().all(|o| *o != Outcome::Unknown),
        "no transport errors after the restart"
    );
    for (unit, cert) in &issued_before {
        match &phase2[unit] {
            Outcome::Issued { cert_sha256, .. } => {
                assert_eq!(cert_sha256, cert, "unit {unit} got another certificate")
            }
            other => panic!("unit {unit} was issued before the crash, now {other:?}"),
        }
    }
    let issued_after: BTreeSet<&String> = phase2
        .values()
        .filter_map(|o| match o {
            Outcome::Issued { cert_sha256, .. } => Some(cert_sha256),
            _ => None,
        })
        .collect();
    assert_eq!(
        issued_after.len() as u64,
        QUOTA,
        "exactly the quota is issued"
    );
    let refused: Vec<&String> = phase2
        .values()
        .filter_map(|o| match o {
            Outcome::Refused(code) => Some(code),
            _ => None,
        })
        .collect();
    assert_eq!(refused.len(), UNITS - QUOTA as usize);
    assert!(
        refused
            .iter()
            .all(|c| c.as_str() == ErrorCode::QuotaExhausted.as_str()),
        "{refused:?}"
    );

    // The database and the log agree with what the stations hold.
    let admin = kit::admin(&served.url, &dir, &token);
    let detail = admin.order("PO-CRASH").await.unwrap();
    assert_eq!(detail.order.issued, QUOTA);
    assert_eq!(detail.certificates, QUOTA);
    assert_eq!(detail.issued_events, QUOTA);
    let units_in_db = admin.order_units("PO-CRASH").await.unwrap();
    let certs_in_db: BTreeSet<String> = units_in_db
        .iter()
        .filter_map(|u| u.cert_sha256.clone())
        .collect();
    assert_eq!(certs_in_db.len() as u64, QUOTA);
    for cert in issued_before.values().chain(issued_after.iter().copied()) {
        assert!(
            certs_in_db.contains(cert),
            "certificate {cert} held by a station is missing from the database"
        );
    }
    let mut logged = BTreeSet::new();
    let mut entries = std::collections::HashMap::new();
    let mut indexes = Vec::new();
    let mut start = 0;
    loop {
        let page = admin.events(start, 1000).await.unwrap();
        if page.is_empty() {
            break;
        }
        for e in &page {
            indexes.push(e.index);
            entries.insert(e.index, e.canonical.clone());
            if e.kind == "unit.issued" {
                let v: serde_json::Value = serde_json::from_str(&e.canonical).unwrap();
                assert!(
                    logged.insert(v["cert_sha256"].as_str().unwrap().to_owned()),
                    "an issuance is logged twice"
                );
            }
        }
        start = page.last().unwrap().index + 1;
    }
    assert_eq!(
        logged, certs_in_db,
        "the log's issuances are exactly the stored certificates"
    );
    assert_eq!(
        indexes,
        (0..indexes.len() as u64).collect::<Vec<_>>(),
        "the log has no gaps after the crash"
    );

    // The checkpoint the auditor kept from before the crash is consistent with the log after
    // it (audit verify checks it against its state file), and the whole log replays cleanly.
    kit::wait_covered(&admin).await;
    let after = audit(&served.url, &dir);
    assert!(
        after.status.success(),
        "audit after the restart: {}",
        String::from_utf8_lossy(&after.stderr)
    );

    // Every issued unit has a receipt that verifies with the log's key alone.
    let verifier = touchmark_tlog::note::NoteVerifier::parse(
        std::fs::read_to_string(dir.join("log-verifier.txt"))
            .unwrap()
            .trim(),
    )
    .unwrap();
    for unit in units_in_db.iter().filter(|u| u.cert_sha256.is_some()) {
        let text = admin.unit_receipt(&unit.serial).await.unwrap();
        let receipt = touchmark_tlog::proof::Receipt::parse(text.as_bytes()).unwrap();
        let entry = &entries[&receipt.index()];
        assert!(
            entry.contains(&format!("\"serial\":\"{}\"", unit.serial)),
            "the receipt proves {}'s issuance",
            unit.serial
        );
        let leaf = touchmark_tlog::hash::leaf_hash(entry.as_bytes());
        receipt
            .verify(&leaf, &verifier)
            .unwrap_or_else(|e| panic!("receipt of {}: {e}", unit.serial));
    }
}

/// After a SIGKILL, the restarted server holds the data directory's lock, so the sequencer
/// lease still running in the database can only be its dead predecessor's: it takes it over at
/// once (issue 11, finding 8). The checkpoint it signs before it accepts its first connection
/// covers every entry committed before the kill, rather than one signed once the old lease
/// expires. The lease here runs two minutes and the sequencer signs every ten seconds, so
/// neither the old lease nor a later step could make the checkpoint cover them in time.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restart_after_sigkill_signs_before_serving() {
    let (_tmp, dir) = kit::tempdir();
    let token = kit::init(&dir);
    std::fs::write(
        dir.join("touchmark.toml"),
        "[log]\ninterval_ms = 10000\nlease_ttl_ms = 120000\n",
    )
    .unwrap();
    let served = Served::start(&dir);
    let admin = kit::admin(&served.url, &dir, &token);
    kit::setup_order(&admin, "PO-LEASE", 100).await;
    let identity = kit::enroll(&admin, &served.url, &dir, "cm", "line-1").await;
    let station = kit::station_client(&served.url, &dir, &identity);

    // Provision until the log holds entries no checkpoint covers yet; then kill the server,
    // the sequencer lease still running.
    let mut n = 0;
    let committed = loop {
        let unit = Unit::new(format!("SN-{n:06}"));
        station
            .provision("PO-LEASE", &unit.request())
            .await
            .unwrap();
        n += 1;
        let health = admin.health().await.unwrap();
        if health.checkpoint_size < health.log_size {
            break health.log_size;
        }
        assert!(n < 100, "the sequencer covered every entry each time");
    };
    served.kill();

    let served = Served::start(&dir);
    let admin = kit::admin(&served.url, &dir, &token);
    let health = admin.health().await.unwrap();
    assert!(
        health.checkpoint_size >= committed,
        "the first checkpoint after the restart covers the {committed} entries committed before \
         the kill: it covers {}",
        health.checkpoint_size
    );
    let note = admin.checkpoint().await.unwrap();
    let size: u64 = note.lines().nth(1).unwrap().parse().unwrap();
    assert!(size >= committed, "{note}");
    // And the log verifies from end to end.
    let audited = audit(&served.url, &dir);
    assert!(
        audited.status.success(),
        "audit after the restart: {}",
        String::from_utf8_lossy(&audited.stderr)
    );
}

/// Runs `touchmark audit verify` against `url`, with a state file beside the data directory.
fn audit(url: &str, dir: &std::path::Path) -> std::process::Output {
    kit::audit(url, dir, &dir.parent().unwrap().join("audit.state"))
}
