//! Faults that stop a replica without killing it (findings 1 and 2 of the fault review): three
//! `touchmark serve` processes on one PostgreSQL database under station load, and the
//! sequencer's process frozen with SIGSTOP, as a paused VM or a cgroup freeze would, then woken
//! with SIGCONT.
//!
//! While it is frozen, another replica must take the lease over and sign a checkpoint covering
//! everything committed at the pause, and the two live replicas must keep answering their
//! stations. After it wakes it must sign nothing more: the log stays one log, and the quota
//! counts every unit once.
//!
//! `TOUCHMARK_TEST_FAULT_TRIALS` (default 2) sets how many freezes one run makes; each trial
//! prints the takeover time and the live replicas' answer rate against the one before the
//! freeze.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::Connection;
use touchmark_client::{Client, ClientError};

use crate::kit::{self, Served, Unit};
use crate::pg;

/// Far longer than a takeover may take: reaching it means the log stalled.
const STALL: Duration = Duration::from_secs(20);
/// How long each answer-rate window lasts, before and after a freeze.
const WINDOW: Duration = Duration::from_secs(3);
const STATIONS_PER_REPLICA: usize = 2;

/// Every answer the stations got: (replica, when, serial, certificate if issued).
type Answers = Arc<Mutex<Vec<(usize, Instant, String, Option<String>)>>>;

fn signal(server: &Served, name: &str) {
    let status = std::process::Command::new("kill")
        .arg(format!("-{name}"))
        .arg(server.child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success(), "kill -{name}");
}

/// The replica that reports holding the lease, among `live`.
async fn sequencer(urls: &[String], live: &[usize], dir: &Path, token: &str) -> Option<usize> {
    for &i in live {
        if let Ok(health) = kit::admin(&urls[i], dir, token).health().await
            && health.sequencer
        {
            return Some(i);
        }
    }
    None
}

/// How many events the database holds, sequenced or not: everything committed so far.
async fn committed_events(url: &str) -> u64 {
    let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    u64::try_from(n).unwrap()
}

/// Station load: each station provisions new units on its replica until `stop`.
fn load(
    clients: Vec<(usize, Client)>,
    stop: &Arc<AtomicBool>,
    answers: &Answers,
) -> Vec<tokio::task::JoinHandle<()>> {
    let next = Arc::new(AtomicUsize::new(0));
    clients
        .into_iter()
        .map(|(replica, client)| {
            let (stop, answers, next) = (Arc::clone(stop), Arc::clone(answers), Arc::clone(&next));
            tokio::spawn(async move {
                while !stop.load(Ordering::SeqCst) {
                    let unit = Unit::new(format!("SN-{:07}", next.fetch_add(1, Ordering::SeqCst)));
                    let cert = match client.provision("PO-FZ", &unit.request()).await {
                        Ok(done) => Some(done.cert_sha256),
                        Err(ClientError::Api { body, .. }) if body.code == "unavailable" => None,
                        Err(e) => panic!("{}: {e}", unit.serial),
                    };
                    answers
                        .lock()
                        .unwrap()
                        .push((replica, Instant::now(), unit.serial, cert));
                }
            })
        })
        .collect()
}

/// Answers per second from replicas other than `frozen` in `[from, from + WINDOW)`.
fn rate(answers: &Answers, frozen: usize, from: Instant) -> f64 {
    let n = answers
        .lock()
        .unwrap()
        .iter()
        .filter(|(r, at, _, _)| *r != frozen && *at >= from && *at < from + WINDOW)
        .count();
    n as f64 / WINDOW.as_secs_f64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(
    not(tm_postgres),
    ignore = "needs PostgreSQL: set TOUCHMARK_TEST_POSTGRES_URL, e.g. postgres://postgres@127.0.0.1:5432/test"
)]
async fn a_frozen_sequencer_is_replaced_and_stops_nobody() {
    let trials: usize = std::env::var("TOUCHMARK_TEST_FAULT_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2);
    let db = pg::Fresh::create().await;
    let (tmp, dir) = kit::tempdir();
    let token = kit::init_with(&dir, Some(&db.url));
    let servers: Vec<Served> = (0..3)
        .map(|_| Served::start_with(&dir, Some(&db.url)))
        .collect();
    let urls: Vec<String> = servers.iter().map(|s| s.url.clone()).collect();
    let admin = kit::admin(&urls[0], &dir, &token);
    kit::setup_order(&admin, "PO-FZ", 1_000_000).await;
    let mut clients = Vec::new();
    for (replica, url) in urls.iter().enumerate() {
        for s in 0..STATIONS_PER_REPLICA {
            let identity = kit::enroll(&admin, url, &dir, "cm", &format!("st-{replica}-{s}")).await;
            clients.push((replica, kit::station_client(url, &dir, &identity)));
        }
    }
    let state = tmp.path().join("audit.state");

    let stop = Arc::new(AtomicBool::new(false));
    let answers: Answers = Arc::default();
    let stations = load(clients, &stop, &answers);
    let all: Vec<usize> = (0..urls.len()).collect();
    let mut report = Vec::new();
    for trial in 0..trials {
        let started = Instant::now();
        let frozen = loop {
            if let Some(i) = sequencer(&urls, &all, &dir, &token).await {
                break i;
            }
            assert!(started.elapsed() < STALL, "no replica became the sequencer");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        kit::assert_success(&kit::audit(&urls[frozen], &dir, &state), "before a freeze");
        let before = Instant::now();
        tokio::time::sleep(WINDOW).await;

        signal(&servers[frozen], "STOP");
        let paused = Instant::now();
        let committed = committed_events(&db.url).await;
        let live: Vec<usize> = all.iter().copied().filter(|&i| i != frozen).collect();
        // A live replica signs a checkpoint covering everything committed at the pause.
        let takeover = loop {
            let mut covered = false;
            for &i in &live {
                if let Ok(health) = kit::admin(&urls[i], &dir, &token).health().await {
                    covered |= health.checkpoint_size >= committed;
                }
            }
            if covered {
                break paused.elapsed();
            }
            assert!(
                paused.elapsed() < STALL,
                "trial {trial}: no checkpoint covered the log within {STALL:?} of the freeze"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let wait = (paused + WINDOW).saturating_duration_since(Instant::now());
        tokio::time::sleep(wait).await;
        let (rate_before, rate_frozen) = (
            rate(&answers, frozen, before),
            rate(&answers, frozen, paused),
        );
        assert!(
            rate_frozen > 0.0,
            "trial {trial}: the live replicas answered nothing while one was frozen"
        );
        report.push((takeover, rate_frozen / rate_before));

        // Woken, the former sequencer finds its lease gone: it signs nothing, and the auditor's
        // checkpoint from before the freeze is consistent with what the others serve.
        signal(&servers[frozen], "CONT");
        kit::assert_success(&kit::audit(&urls[live[0]], &dir, &state), "after a freeze");
    }
    stop.store(true, Ordering::SeqCst);
    for station in stations {
        station.await.unwrap();
    }

    // Every unit answered `issued` was counted once, and the count is what the order holds.
    let issued: Vec<String> = answers
        .lock()
        .unwrap()
        .iter()
        .filter_map(|(_, _, serial, cert)| cert.as_ref().map(|_| serial.clone()))
        .collect();
    let distinct: BTreeSet<&String> = issued.iter().collect();
    assert_eq!(distinct.len(), issued.len(), "a serial was answered twice");
    let detail = admin.order("PO-FZ").await.unwrap();
    // A unit answered `unavailable` after its commit (the frozen replica woke into a closed
    // connection) may be counted without an `issued` answer; never the other way round.
    assert!(
        detail.order.issued >= issued.len() as u64,
        "{} counted, {} answered issued",
        detail.order.issued,
        issued.len()
    );
    assert_eq!(detail.certificates, detail.order.issued);
    assert_eq!(detail.issued_events, detail.order.issued);
    for url in &urls {
        kit::assert_success(&kit::audit(url, &dir, &state), "at the end");
    }
    for (trial, (takeover, ratio)) in report.iter().enumerate() {
        eprintln!(
            "trial {trial}: checkpoint covering the pause after {takeover:?}; live replicas at \
             {:.0}% of their answer rate",
            ratio * 100.0
        );
    }
    drop(servers);
    drop(db);
}
