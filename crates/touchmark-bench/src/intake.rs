//! `intake`: the public vulnerability intake under a flood from one address, and whether the
//! admins are still served meanwhile.
//!
//! A fresh installation and an in-process server (SQLite, HTTPS), with the intake's limit per
//! source address as `touchmark serve` sets it by default. Then:
//!
//! 1. **baseline**: an admin's requests alone, at a steady rate, for the run's time: the list of
//!    reports and the order's detail, in turn. Every one must answer 200.
//! 2. **flood**: the same admin traffic, while one address (this process, over as many
//!    connections as it needs) sends `rate` reports a second to `POST /v1/vulnerability-reports`,
//!    each at its own time whether or not the earlier ones were answered (an open loop: a slow
//!    server does not slow the flood down).
//!
//! The run fails instead of giving a number when an admin request fails, when a flood request
//! gets anything but `201` or `429 rate_limited`, when more reports were accepted than the
//! limit allows, or when the reports the admin then lists are not exactly those accepted.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;
use touchmark_client::{Client, ClientConfig};
use touchmark_core::ErrorCode;
use touchmark_core::api::SubmitReport;

use crate::Progress;
use crate::error::{Context as _, Error};
use crate::load::quantile;
use crate::setup::{Backend, Touchmark};

/// The flood the issue names: requests per second from one address.
pub const TARGET_FLOOD_PER_S: u32 = 1_000;
/// Admin requests per second, in both phases.
const ADMIN_PER_S: u32 = 20;
/// Flood requests in flight at most; a request due while this many wait is counted as not
/// sent (the generator could not keep the rate), never queued.
const MAX_IN_FLIGHT: usize = 2_048;

/// What to measure, as `touchmark bench intake` is asked.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Flood requests per second [default: 1,000].
    pub rate: Option<u32>,
    /// Seconds each phase lasts [default: 10; 2 when quick].
    pub seconds: Option<f64>,
    /// A short run.
    pub quick: bool,
}

/// Admin requests of one phase.
#[derive(Debug, Clone, Serialize)]
pub struct AdminTraffic {
    /// Requests sent (all answered 200).
    pub requests: usize,
    /// Their median latency, ms.
    pub p50_ms: f64,
    /// Their 99th percentile (nearest rank), ms.
    pub p99_ms: f64,
    /// The slowest, ms.
    pub max_ms: f64,
}

/// The flood's requests and what they got.
#[derive(Debug, Clone, Serialize)]
pub struct Flood {
    /// Requests per second asked for.
    pub offered_per_s: f64,
    /// Requests sent per second, from the first to the last.
    pub sent_per_s: f64,
    /// Requests sent.
    pub sent: u64,
    /// Requests not sent at their time, because too many were still waiting for an answer.
    pub not_sent: u64,
    /// Answered `201`: reports stored.
    pub accepted: u64,
    /// Answered `429 rate_limited`.
    pub limited: u64,
    /// The most the limit allows in the phase: its burst, and its rate over the phase.
    pub allowed_at_most: u64,
    /// The median time to a `429`, ms.
    pub limited_p50_ms: f64,
    /// Its 99th percentile, ms.
    pub limited_p99_ms: f64,
}

/// What `bench intake` measured.
#[derive(Debug, Clone, Serialize)]
pub struct IntakeReport {
    /// `release` or `debug`.
    pub build: &'static str,
    /// The server and its storage.
    pub server: String,
    /// Seconds each phase lasted.
    pub seconds: f64,
    /// The admin's requests alone.
    pub baseline: AdminTraffic,
    /// The admin's requests during the flood.
    pub during_flood: AdminTraffic,
    /// The flood.
    pub flood: Flood,
    /// The admin's p99 during the flood over its p99 alone.
    pub admin_p99_ratio: f64,
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn summary(mut times: Vec<Duration>) -> AdminTraffic {
    times.sort_unstable();
    AdminTraffic {
        requests: times.len(),
        p50_ms: millis(quantile(&times, 0.5)),
        p99_ms: millis(quantile(&times, 0.99)),
        max_ms: millis(times.last().copied().unwrap_or_default()),
    }
}

/// Sends the admin's requests at [`ADMIN_PER_S`] for `duration`, in turn the list of reports
/// and the order's detail, and times each.
async fn admin_traffic(tm: &Touchmark, duration: Duration) -> Result<Vec<Duration>, Error> {
    let admin = tm.admin();
    let period = Duration::from_secs_f64(1.0 / f64::from(ADMIN_PER_S));
    let start = tokio::time::Instant::now();
    let mut times = Vec::new();
    let mut i: u32 = 0;
    while start.elapsed() < duration {
        tokio::time::sleep_until(start + period * i).await;
        let sent = Instant::now();
        if i.is_multiple_of(2) {
            admin
                .vuln_reports(false)
                .await
                .context("an admin's list of reports")?;
        } else {
            tm.order().await?;
        }
        times.push(sent.elapsed());
        i += 1;
    }
    Ok(times)
}

/// What the flood's requests got, counted as they are answered.
#[derive(Default)]
struct Tally {
    accepted: AtomicU64,
    limited: AtomicU64,
    not_sent: AtomicU64,
    limited_times: std::sync::Mutex<Vec<Duration>>,
    wrong: std::sync::Mutex<Option<String>>,
}

/// Sends `rate` reports a second for `duration` from `client`, each at its time.
async fn flood(
    client: Client,
    rate: u32,
    duration: Duration,
    tally: Arc<Tally>,
) -> (u64, Duration) {
    let report = Arc::new(SubmitReport {
        product: None,
        version: Some("1.0.0".into()),
        description: Some("a flood of reports from one address".into()),
        encrypted: None,
        cvss: None,
        contact: Some("flood@example.org".into()),
    });
    let gate = Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT));
    let period = Duration::from_secs_f64(1.0 / f64::from(rate));
    let total = (duration.as_secs_f64() * f64::from(rate)).round() as u64;
    let start = tokio::time::Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    let mut sent = 0;
    for i in 0..total {
        tokio::time::sleep_until(start + period.mul_f64(i as f64)).await;
        let Ok(permit) = Arc::clone(&gate).try_acquire_owned() else {
            tally.not_sent.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        sent += 1;
        let (client, report, tally) = (client.clone(), Arc::clone(&report), Arc::clone(&tally));
        tasks.spawn(async move {
            let at = Instant::now();
            let answer = client.submit_vulnerability_report(&report).await;
            let took = at.elapsed();
            drop(permit);
            match answer {
                Ok(_) => {
                    tally.accepted.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) if e.code() == Some(ErrorCode::RateLimited) && e.status() == Some(429) => {
                    tally.limited.fetch_add(1, Ordering::Relaxed);
                    tally
                        .limited_times
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(took);
                }
                Err(e) => {
                    tally
                        .wrong
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .get_or_insert_with(|| e.to_string());
                }
            }
        });
    }
    let sending = start.elapsed();
    while tasks.join_next().await.is_some() {}
    (sent, sending)
}

/// Runs `touchmark bench intake`.
///
/// # Errors
/// [`Error::Invalid`] for a setting out of range; [`Error::Void`] when a request failed or the
/// counts do not add up; any failed step of the set-up.
pub async fn run(options: &Options, progress: &Arc<dyn Progress>) -> Result<IntakeReport, Error> {
    let rate = options.rate.unwrap_or(TARGET_FLOOD_PER_S);
    if !(1..=20_000).contains(&rate) {
        return Err(Error::Invalid("--rate must be 1 to 20000".into()));
    }
    let seconds = options
        .seconds
        .unwrap_or(if options.quick { 2.0 } else { 10.0 });
    if !(0.5..=600.0).contains(&seconds) {
        return Err(Error::Invalid("--seconds must be 0.5 to 600".into()));
    }
    let duration = Duration::from_secs_f64(seconds);

    progress.step("starting a fresh installation and its server");
    let tm = Touchmark::start(None, &Backend::Sqlite, 0).await?;
    let limit = touchmark_server::VulnOptions::default().rate;
    let root_pem = tm
        .installation()
        .map(|i| i.infra_root().certificate().pem())
        .ok_or(Error::Died("the in-process installation"))?;
    let public = Client::new(ClientConfig::new(
        tm.admin().base_url().to_owned(),
        root_pem,
    ))
    .context("the reporter's client")?;

    progress.step(&format!(
        "admin traffic alone, {ADMIN_PER_S} requests/s for {seconds} s"
    ));
    let baseline = admin_traffic(&tm, duration).await?;

    progress.step(&format!(
        "the same admin traffic under a flood of {rate} reports/s from one address"
    ));
    let tally = Arc::new(Tally::default());
    let flooding = tokio::spawn(flood(public, rate, duration, Arc::clone(&tally)));
    let during = admin_traffic(&tm, duration).await;
    let (sent, sending) = flooding.await.map_err(|_| Error::Died("the flood"))?;
    let during = during?;

    if let Some(wrong) = tally.wrong.lock().unwrap_or_else(|p| p.into_inner()).take() {
        return Err(Error::Void(format!(
            "a flood request got neither 201 nor 429 rate_limited: {wrong}"
        )));
    }
    let accepted = tally.accepted.load(Ordering::Relaxed);
    let limited = tally.limited.load(Ordering::Relaxed);
    let allowed = u64::from(limit.burst) + (limit.per_second * sending.as_secs_f64()).ceil() as u64;
    if accepted > allowed || accepted + limited != sent {
        return Err(Error::Void(format!(
            "of {sent} reports sent, {accepted} were accepted and {limited} limited; the limit \
             allows {allowed}"
        )));
    }
    let stored = tm
        .admin()
        .vuln_reports(false)
        .await
        .context("the reports stored")?
        .len() as u64;
    if stored != accepted {
        return Err(Error::Void(format!(
            "{accepted} reports were accepted, but {stored} are stored"
        )));
    }
    let server = tm.server_description();
    tm.stop().await;

    let mut limited_times = std::mem::take(
        &mut *tally
            .limited_times
            .lock()
            .unwrap_or_else(|p| p.into_inner()),
    );
    limited_times.sort_unstable();
    let (baseline, during_flood) = (summary(baseline), summary(during));
    let admin_p99_ratio = if baseline.p99_ms > 0.0 {
        during_flood.p99_ms / baseline.p99_ms
    } else {
        f64::NAN
    };
    Ok(IntakeReport {
        build: if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
        server,
        seconds,
        baseline,
        during_flood,
        flood: Flood {
            offered_per_s: f64::from(rate),
            sent_per_s: sent as f64 / sending.as_secs_f64().max(1e-9),
            sent,
            not_sent: tally.not_sent.load(Ordering::Relaxed),
            accepted,
            limited,
            allowed_at_most: allowed,
            limited_p50_ms: millis(quantile(&limited_times, 0.5)),
            limited_p99_ms: millis(quantile(&limited_times, 0.99)),
        },
        admin_p99_ratio,
    })
}
