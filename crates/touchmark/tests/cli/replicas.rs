//! Several `touchmark serve` processes on one PostgreSQL database (design.md §10): the database
//! holds the quota across replicas, one elected sequencer signs the log, and when its process is
//! killed another replica takes over without signing anything inconsistent.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use touchmark_client::{Client, ClientError, Identity};
use touchmark_core::code::ErrorCode;

use crate::kit::{self, Served, Unit};
use crate::pg;

/// What a station saw for one unit.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Issued(String),
    Refused(String),
}

/// Starts `n` replicas over `database`.
fn replicas(dir: &Path, database: &str, n: usize) -> Vec<Served> {
    (0..n)
        .map(|_| Served::start_with(dir, Some(database)))
        .collect()
}

/// Provisions `units` through `station`, one at a time.
async fn provision_all(station: Client, units: Vec<Unit>) -> Vec<(String, Outcome)> {
    let mut seen = Vec::with_capacity(units.len());
    for unit in units {
        let outcome = match station
            .provision(&current_order(&unit), &unit.request())
            .await
        {
            Ok(done) => Outcome::Issued(done.cert_sha256),
            Err(ClientError::Api { body, .. }) => Outcome::Refused(body.code),
            Err(e) => panic!("{}: {e}", unit.serial),
        };
        seen.push((unit.serial.clone(), outcome));
    }
    seen
}

/// Serials are `<order>/<station>/<n>`-shaped: `PO-R1-S3-042` is counted against `PO-R1`.
fn current_order(unit: &Unit) -> String {
    unit.serial
        .splitn(3, '-')
        .take(2)
        .collect::<Vec<_>>()
        .join("-")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(
    not(tm_postgres),
    ignore = "needs PostgreSQL: set TOUCHMARK_TEST_POSTGRES_URL, e.g. postgres://postgres@127.0.0.1:5432/test"
)]
async fn three_replicas_issue_exactly_the_quota() {
    let db = pg::Fresh::create().await;
    let (tmp, dir) = kit::tempdir();
    let token = kit::init_with(&dir, Some(&db.url));
    // A second installation (other keys, another log key) never writes into the same database.
    let other = tmp.path().join("other");
    let again = std::process::Command::new(kit::bin())
        .args(["init", "--data"])
        .arg(&other)
        .args(["--database", &db.url])
        .env("TOUCHMARK_KEY_PASSPHRASE", kit::PASSPHRASE)
        .output()
        .unwrap();
    assert!(!again.status.success());
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(stderr.contains("already holds"), "{stderr}");
    assert!(
        !other.exists(),
        "nothing is created for a refused installation"
    );
    let servers = replicas(&dir, &db.url, 3);
    let admin = kit::admin(&servers[0].url, &dir, &token);
    kit::setup_order(&admin, "PO-R0", 1).await;
    let mut identities = Vec::new();
    for i in 0..8 {
        let url = &servers[i % 3].url;
        let admin = kit::admin(url, &dir, &token);
        identities.push(kit::enroll(&admin, url, &dir, "cm", &format!("line-{i}")).await);
    }

    // Three rounds, each a new order of 500: 8 stations over 3 replicas, 100 units each.
    for round in 1..=3 {
        let order = format!("PO-R{round}");
        kit::open_order(&admin, &order, 500).await;
        let mut tasks = Vec::new();
        for (i, identity) in identities.iter().enumerate() {
            let station = kit::station_client(&servers[i % 3].url, &dir, identity);
            let units: Vec<Unit> = (0..100)
                .map(|n| Unit::new(format!("{order}-S{i}-{n:03}")))
                .collect();
            tasks.push(tokio::spawn(provision_all(station, units)));
        }
        let mut outcomes = Vec::new();
        for task in tasks {
            outcomes.extend(task.await.unwrap());
        }
        let certs: BTreeSet<&String> = outcomes
            .iter()
            .filter_map(|(_, o)| match o {
                Outcome::Issued(cert) => Some(cert),
                Outcome::Refused(_) => None,
            })
            .collect();
        let refused: Vec<&String> = outcomes
            .iter()
            .filter_map(|(_, o)| match o {
                Outcome::Refused(code) => Some(code),
                Outcome::Issued(_) => None,
            })
            .collect();
        assert_eq!(
            certs.len(),
            500,
            "round {round}: exactly the quota is issued"
        );
        assert_eq!(refused.len(), 300, "round {round}");
        assert!(
            refused
                .iter()
                .all(|c| c.as_str() == ErrorCode::QuotaExhausted.as_str()),
            "round {round}: {refused:?}"
        );
        // Every replica reads the same counts from the database.
        for server in &servers {
            let detail = kit::admin(&server.url, &dir, &token)
                .order(&order)
                .await
                .unwrap();
            assert_eq!(detail.order.issued, 500, "round {round}");
            assert_eq!(detail.certificates, 500, "round {round}");
            assert_eq!(detail.issued_events, 500, "round {round}");
            assert_eq!(
                detail.refusals,
                BTreeMap::from([(ErrorCode::QuotaExhausted.as_str().to_owned(), 300)]),
                "round {round}"
            );
        }
        let listed: BTreeSet<String> = admin
            .order_units(&order)
            .await
            .unwrap()
            .into_iter()
            .filter_map(|u| u.cert_sha256)
            .collect();
        assert_eq!(
            listed,
            certs.into_iter().cloned().collect(),
            "round {round}"
        );
    }

    // One sequencer at a time, and the log verifies against any replica.
    let sequencers = sequencer_flags(&servers, &dir, &token).await;
    assert_eq!(
        sequencers.iter().filter(|s| **s).count(),
        1,
        "exactly one replica is the sequencer: {sequencers:?}"
    );
    let size = kit::wait_settled(&kit::admin(&servers[2].url, &dir, &token)).await;
    assert!(size >= 3 * 800, "every decision is logged: size {size}");
    let state = tmp.path().join("audit.state");
    kit::assert_success(
        &kit::audit(&servers[2].url, &dir, &state),
        "after three rounds",
    );
    drop(servers);
    drop(db);
}

async fn sequencer_flags(servers: &[Served], dir: &Path, token: &str) -> Vec<bool> {
    let mut flags = Vec::new();
    for server in servers {
        flags.push(
            kit::admin(&server.url, dir, token)
                .health()
                .await
                .unwrap()
                .sequencer,
        );
    }
    flags
}

/// Waits until one of `servers` (skipping `dead`) reports holding the sequencer lease.
async fn wait_for_sequencer(
    servers: &[Option<String>],
    dir: &Path,
    token: &str,
    limit: Duration,
) -> (usize, Duration) {
    let started = Instant::now();
    while started.elapsed() < limit {
        for (i, url) in servers.iter().enumerate() {
            let Some(url) = url else { continue };
            if let Ok(health) = kit::admin(url, dir, token).health().await
                && health.sequencer
            {
                return (i, started.elapsed());
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no replica became the sequencer within {limit:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(
    not(tm_postgres),
    ignore = "needs PostgreSQL: set TOUCHMARK_TEST_POSTGRES_URL, e.g. postgres://postgres@127.0.0.1:5432/test"
)]
async fn sequencer_replica_killed_mid_run_another_takes_over() {
    const UNITS: usize = 600;
    let db = pg::Fresh::create().await;
    let (tmp, dir) = kit::tempdir();
    let token = kit::init_with(&dir, Some(&db.url));
    let servers = replicas(&dir, &db.url, 3);
    let urls: Vec<String> = servers.iter().map(|s| s.url.clone()).collect();
    let admin = kit::admin(&urls[0], &dir, &token);
    kit::setup_order(&admin, "PO-FAIL", 1_000).await;
    let mut identities: Vec<Identity> = Vec::new();
    for i in 0..6 {
        identities.push(kit::enroll(&admin, &urls[0], &dir, "cm", &format!("line-{i}")).await);
    }
    let alive: Vec<Option<String>> = urls.iter().cloned().map(Some).collect();
    let (sequencer, _) = wait_for_sequencer(&alive, &dir, &token, Duration::from_secs(10)).await;

    // An auditor verifies the log before the failover and keeps that checkpoint.
    kit::wait_settled(&kit::admin(&urls[sequencer], &dir, &token)).await;
    let state = tmp.path().join("audit.state");
    kit::assert_success(
        &kit::audit(&urls[sequencer], &dir, &state),
        "before the failover",
    );

    // Six stations spread over the replicas. A station whose replica dies moves to the next
    // one and sends the same unit again, as it would behind a load balancer.
    let units: Arc<Vec<Unit>> = Arc::new(
        (0..UNITS)
            .map(|i| Unit::new(format!("SN-{i:06}")))
            .collect(),
    );
    let next = Arc::new(AtomicUsize::new(0));
    let answered = Arc::new(AtomicUsize::new(0));
    let servers: Arc<Mutex<Vec<Option<Served>>>> =
        Arc::new(Mutex::new(servers.into_iter().map(Some).collect()));
    let killed_at: Arc<Mutex<Option<Instant>>> = Arc::default();
    let mut workers = Vec::new();
    for (w, identity) in identities.iter().enumerate() {
        let clients: Vec<Client> = urls
            .iter()
            .map(|url| kit::station_client(url, &dir, identity))
            .collect();
        let (units, next, answered, servers, killed_at) = (
            Arc::clone(&units),
            Arc::clone(&next),
            Arc::clone(&answered),
            Arc::clone(&servers),
            Arc::clone(&killed_at),
        );
        workers.push(tokio::spawn(async move {
            let mut replica = w % clients.len();
            let mut seen = Vec::new();
            let mut moved = 0;
            loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(unit) = units.get(i) else { break };
                let cert = loop {
                    match clients[replica].provision("PO-FAIL", &unit.request()).await {
                        Ok(done) => break done.cert_sha256,
                        Err(ClientError::Api { body, .. }) => {
                            panic!("{}: refused {}", unit.serial, body.code)
                        }
                        Err(_) => {
                            moved += 1;
                            assert!(moved < 20, "a station kept failing over");
                            replica = (replica + 1) % clients.len();
                        }
                    }
                };
                seen.push((i, cert));
                if answered.fetch_add(1, Ordering::SeqCst) + 1 == 200 {
                    // Kill the sequencer's process mid-run: SIGKILL, no shutdown code runs.
                    let victim = servers.lock().unwrap()[sequencer].take();
                    if let Some(victim) = victim {
                        victim.kill();
                        *killed_at.lock().unwrap() = Some(Instant::now());
                    }
                }
            }
            seen
        }));
    }
    // Watch for the takeover from the moment of the kill, while the run goes on.
    let survivors: Vec<Option<String>> = urls
        .iter()
        .enumerate()
        .map(|(i, url)| (i != sequencer).then(|| url.clone()))
        .collect();
    let watcher = {
        let (survivors, dir, token, killed_at) = (
            survivors.clone(),
            dir.clone(),
            token.clone(),
            Arc::clone(&killed_at),
        );
        tokio::spawn(async move {
            let killed = loop {
                if let Some(at) = *killed_at.lock().unwrap() {
                    break at;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            };
            let (successor, _) =
                wait_for_sequencer(&survivors, &dir, &token, Duration::from_secs(15)).await;
            (successor, killed.elapsed())
        })
    };
    let mut certs = BTreeMap::new();
    for worker in workers {
        for (i, cert) in worker.await.unwrap() {
            assert!(certs.insert(i, cert).is_none(), "unit {i} answered twice");
        }
    }
    assert_eq!(certs.len(), UNITS, "the run completes");
    let distinct: BTreeSet<&String> = certs.values().collect();
    assert_eq!(distinct.len(), UNITS, "one certificate per unit");
    // Another replica took over within a few seconds of the kill: the lease lasts 3 s.
    let (successor, takeover) = watcher.await.unwrap();
    assert_ne!(successor, sequencer);
    assert!(
        takeover < Duration::from_secs(8),
        "the takeover took {takeover:?}"
    );
    let survivor = kit::admin(&urls[successor], &dir, &token);
    let detail = survivor.order("PO-FAIL").await.unwrap();
    assert_eq!(detail.order.issued, UNITS as u64);
    assert_eq!(detail.certificates, UNITS as u64);
    assert_eq!(detail.issued_events, UNITS as u64);

    // The log: dense indices, each issuance once, and the checkpoint the auditor kept from
    // the dead sequencer is consistent with the successor's (audit verify checks it).
    let size = kit::wait_settled(&survivor).await;
    let mut issued = BTreeSet::new();
    let mut start = 0;
    while start < size {
        let page = survivor.events(start, 1000).await.unwrap();
        for (k, e) in page.iter().enumerate() {
            assert_eq!(e.index, start + k as u64, "no gap in the log");
            if e.kind == "unit.issued" {
                let v: serde_json::Value = serde_json::from_str(&e.canonical).unwrap();
                assert!(
                    issued.insert(v["cert_sha256"].as_str().unwrap().to_owned()),
                    "an issuance is logged twice"
                );
            }
        }
        start += page.len() as u64;
    }
    assert_eq!(issued.len(), UNITS);
    assert_eq!(issued.iter().collect::<BTreeSet<_>>(), distinct);
    for url in survivors.iter().flatten() {
        kit::assert_success(&kit::audit(url, &dir, &state), "after the failover");
    }
    // Receipts of units issued on either side of the failover verify with the log key.
    let verifier = touchmark_tlog::note::NoteVerifier::parse(
        std::fs::read_to_string(dir.join("log-verifier.txt"))
            .unwrap()
            .trim(),
    )
    .unwrap();
    for i in [0, 199, 200, 400, UNITS - 1] {
        let serial = &units[i].serial;
        let text = survivor.unit_receipt(serial).await.unwrap();
        let receipt = touchmark_tlog::proof::Receipt::parse(text.as_bytes()).unwrap();
        let entry = survivor.events(receipt.index(), 1).await.unwrap();
        let leaf = touchmark_tlog::hash::leaf_hash(entry[0].canonical.as_bytes());
        receipt
            .verify(&leaf, &verifier)
            .unwrap_or_else(|e| panic!("receipt of {serial}: {e}"));
    }
    eprintln!("sequencer takeover after SIGKILL: {takeover:?} (detected by polling)");
    drop(servers);
    drop(db);
}

/// Runs `touchmark serve` on `database` for the installation in `dir`, expecting a refusal:
/// its stderr. Fails if it starts serving.
fn refused_serve(dir: &Path, database: &str) -> String {
    let mut child = std::process::Command::new(kit::bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(dir)
        .args(["--database", database])
        .env("TOUCHMARK_KEY_PASSPHRASE", kit::PASSPHRASE)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            panic!("serve started on a database it does not own");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("listening"),
        "serve listened"
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// How many rows a table of `database` holds.
async fn rows(database: &str, table: &str) -> i64 {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(database).await.unwrap();
    let n = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
        .fetch_one(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(
    not(tm_postgres),
    ignore = "needs PostgreSQL: set TOUCHMARK_TEST_POSTGRES_URL, e.g. postgres://postgres@127.0.0.1:5432/test"
)]
async fn serve_refuses_an_empty_database_and_another_installations() {
    let (ours, theirs) = (pg::Fresh::create().await, pg::Fresh::create().await);
    let empty = pg::Fresh::create().await;
    let (tmp, dir) = kit::tempdir();
    kit::init_with(&dir, Some(&ours.url));
    let other = tmp.path().join("other");
    kit::init_with(&other, Some(&theirs.url));
    let key = |d: &Path| {
        std::fs::read_to_string(d.join("log-verifier.txt"))
            .unwrap()
            .trim()
            .to_owned()
    };

    // A mistyped database name: empty, and left empty.
    let stderr = refused_serve(&dir, &empty.url);
    assert!(
        stderr.contains("holds no Touchmark installation"),
        "{stderr}"
    );
    assert_eq!(rows(&empty.url, "events").await, 0);
    assert_eq!(rows(&empty.url, "log_owner").await, 0);

    // Another installation's database, initialised but never served: refused, naming both log
    // keys, and nothing written into it.
    let events = rows(&theirs.url, "events").await;
    let stderr = refused_serve(&dir, &theirs.url);
    assert!(
        stderr.contains("belongs to another installation"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&key(&dir)) && stderr.contains(&key(&other)),
        "{stderr}"
    );
    assert_eq!(rows(&theirs.url, "events").await, events);
    assert_eq!(rows(&theirs.url, "log_checkpoints").await, 0);

    // Its rightful installation still serves it.
    let served = Served::start_with(&other, Some(&theirs.url));
    drop(served);
    drop((ours, theirs, empty));
}
