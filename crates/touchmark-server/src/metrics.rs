//! Prometheus metrics (design.md §9): `GET /metrics`, in the text exposition format, for a
//! bearer token that may read (admin or auditor).
//!
//! Counters and the issuance latency histogram are this process's, observed as each
//! provisioning request is answered ([`observe`]); a replica counts its own, and Prometheus
//! sums replicas and handles restarts (a counter that falls is a reset). Gauges are read at
//! scrape time: each open order's quota, the audit log's size and checkpoint age, and (on
//! PostgreSQL) the connection pool's open, idle and most connections.
//! Labels are bounded: an error code (a closed set), an outcome, an open order's id; never a
//! serial, a station or a key.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use touchmark_core::code::ErrorCode;
use touchmark_core::order::OrderState;

use crate::auth::Reader;
use crate::error::ApiError;
use crate::state::AppState;

/// The provisioning route, as the router names it.
const PROVISION_ROUTE: &str = "/v1/orders/{order}/units";

/// Upper bounds of the latency histogram's buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// How a provisioning request ended, as the latency histogram labels it.
const OUTCOMES: [&str; 4] = ["issued", "already_issued", "refused", "error"];

#[derive(Debug, Default)]
struct Histogram {
    buckets: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        for (bound, n) in BUCKETS.iter().zip(self.buckets.iter_mut()) {
            if seconds <= *bound {
                *n += 1;
            }
        }
        self.count += 1;
        self.sum += seconds;
    }
}

/// This process's counters. Cheap to update: one atomic, or one short lock for a refusal or a
/// latency.
#[derive(Debug, Default)]
pub struct Metrics {
    issued: AtomicU64,
    already_issued: AtomicU64,
    refused: Mutex<BTreeMap<&'static str, u64>>,
    latency: Mutex<[Histogram; OUTCOMES.len()]>,
    /// The checkpoint size last seen and when this process first saw it.
    checkpoint_seen: Mutex<Option<(u64, Instant)>>,
    /// Vulnerability reports received by the public intake.
    reports_received: AtomicU64,
    /// Requests to the public intake refused for their source address's rate.
    reports_rate_limited: AtomicU64,
}

impl Metrics {
    /// Counts a vulnerability report received.
    pub fn report_received(&self) {
        self.reports_received.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a request to the public intake refused for its address's rate (a flood).
    pub fn report_rate_limited(&self) {
        self.reports_rate_limited.fetch_add(1, Ordering::Relaxed);
    }
}

impl Metrics {
    fn record(&self, status: StatusCode, code: Option<ErrorCode>, seconds: f64) {
        let outcome = match (status.as_u16(), code) {
            (201, _) => {
                self.issued.fetch_add(1, Ordering::Relaxed);
                0
            }
            (200, _) => {
                self.already_issued.fetch_add(1, Ordering::Relaxed);
                1
            }
            (_, Some(code)) if code.is_refusal() => {
                *lock(&self.refused).entry(code.as_str()).or_default() += 1;
                2
            }
            _ => 3,
        };
        lock(&self.latency)[outcome].observe(seconds);
    }

    /// Seconds since the checkpoint of `size` was first seen by this process.
    fn checkpoint_age(&self, size: u64) -> f64 {
        let mut seen = lock(&self.checkpoint_seen);
        match *seen {
            Some((s, at)) if s == size => at.elapsed().as_secs_f64(),
            _ => {
                *seen = Some((size, Instant::now()));
                0.0
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The middleware that counts each answered provisioning request.
pub async fn observe(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let provisioning = request.method() == Method::POST
        && request
            .extensions()
            .get::<MatchedPath>()
            .is_some_and(|p| p.as_str() == PROVISION_ROUTE);
    if !provisioning {
        return next.run(request).await;
    }
    let started = Instant::now();
    let response = next.run(request).await;
    let code = response.extensions().get::<ErrorCode>().copied();
    state
        .metrics
        .record(response.status(), code, started.elapsed().as_secs_f64());
    response
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Escapes a label value (backslash, double quote, newline).
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Prometheus metrics in the text exposition format (version 0.0.4).
pub async fn metrics(State(s): State<AppState>, _: Reader) -> Result<Response, ApiError> {
    let m = &s.metrics;
    let mut out = String::with_capacity(4096);
    family(
        &mut out,
        "touchmark_units_issued_total",
        "counter",
        "Units issued a certificate by this server process.",
    );
    let _ = writeln!(
        out,
        "touchmark_units_issued_total {}",
        m.issued.load(Ordering::Relaxed)
    );
    family(
        &mut out,
        "touchmark_units_already_issued_total",
        "counter",
        "Provisioning retries answered with the stored certificate by this server process.",
    );
    let _ = writeln!(
        out,
        "touchmark_units_already_issued_total {}",
        m.already_issued.load(Ordering::Relaxed)
    );
    family(
        &mut out,
        "touchmark_vuln_reports_total",
        "counter",
        "Requests to the public vulnerability intake by this server process: reports received, \
         and requests refused for their source address's rate.",
    );
    let _ = writeln!(
        out,
        "touchmark_vuln_reports_total{{outcome=\"received\"}} {}",
        m.reports_received.load(Ordering::Relaxed)
    );
    let _ = writeln!(
        out,
        "touchmark_vuln_reports_total{{outcome=\"rate_limited\"}} {}",
        m.reports_rate_limited.load(Ordering::Relaxed)
    );
    family(
        &mut out,
        "touchmark_units_refused_total",
        "counter",
        "Provisioning requests refused by this server process, by stable error code.",
    );
    let (refused, failed_tests) = {
        let refused = lock(&m.refused);
        let all: Vec<(&str, u64)> = ErrorCode::ALL
            .into_iter()
            .filter(|c| c.is_refusal())
            .map(|c| (c.as_str(), refused.get(c.as_str()).copied().unwrap_or(0)))
            .collect();
        let failed = refused
            .get(ErrorCode::TestFailed.as_str())
            .copied()
            .unwrap_or(0);
        (all, failed)
    };
    for (code, n) in refused {
        let _ = writeln!(out, "touchmark_units_refused_total{{code=\"{code}\"}} {n}");
    }
    family(
        &mut out,
        "touchmark_tests_failed_total",
        "counter",
        "Units refused because their factory test failed, by this server process.",
    );
    let _ = writeln!(out, "touchmark_tests_failed_total {failed_tests}");
    family(
        &mut out,
        "touchmark_issuance_duration_seconds",
        "histogram",
        "Time to answer a provisioning request, by outcome.",
    );
    {
        let latency = lock(&m.latency);
        for (outcome, h) in OUTCOMES.iter().zip(latency.iter()) {
            for (bound, n) in BUCKETS.iter().zip(h.buckets.iter()) {
                let _ = writeln!(
                    out,
                    "touchmark_issuance_duration_seconds_bucket{{outcome=\"{outcome}\",le=\"{bound}\"}} {n}"
                );
            }
            let _ = writeln!(
                out,
                "touchmark_issuance_duration_seconds_bucket{{outcome=\"{outcome}\",le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                out,
                "touchmark_issuance_duration_seconds_sum{{outcome=\"{outcome}\"}} {}",
                h.sum
            );
            let _ = writeln!(
                out,
                "touchmark_issuance_duration_seconds_count{{outcome=\"{outcome}\"}} {}",
                h.count
            );
        }
    }
    let open: Vec<_> = s
        .store
        .orders()
        .await?
        .into_iter()
        .filter(|o| o.state == OrderState::Open)
        .collect();
    family(
        &mut out,
        "touchmark_order_quota_remaining",
        "gauge",
        "Units an open order's quota still allows.",
    );
    for o in &open {
        let _ = writeln!(
            out,
            "touchmark_order_quota_remaining{{order=\"{}\"}} {}",
            label(o.id.as_str()),
            o.remaining()
        );
    }
    family(
        &mut out,
        "touchmark_order_units_issued",
        "gauge",
        "Units an open order has issued, all replicas.",
    );
    for o in &open {
        let _ = writeln!(
            out,
            "touchmark_order_units_issued{{order=\"{}\"}} {}",
            label(o.id.as_str()),
            o.issued
        );
    }
    family(
        &mut out,
        "touchmark_log_entries",
        "gauge",
        "Entries the latest signed checkpoint of the audit log covers.",
    );
    let size = s.log.latest().map_or(0, |l| l.size());
    let _ = writeln!(out, "touchmark_log_entries {size}");
    family(
        &mut out,
        "touchmark_log_checkpoint_age_seconds",
        "gauge",
        "Seconds since this process first saw the latest signed checkpoint's size.",
    );
    let _ = writeln!(
        out,
        "touchmark_log_checkpoint_age_seconds {}",
        m.checkpoint_age(size)
    );
    family(
        &mut out,
        "touchmark_log_sequencer",
        "gauge",
        "1 while this process holds the audit log's sequencer lease.",
    );
    let _ = writeln!(
        out,
        "touchmark_log_sequencer {}",
        u8::from(s.log.is_sequencer())
    );
    if let Some(pool) = s.store.pool_status() {
        family(
            &mut out,
            "touchmark_db_connections",
            "gauge",
            "This process's database connections, by state (PostgreSQL's pool).",
        );
        let in_use = pool.open.saturating_sub(pool.idle);
        let _ = writeln!(
            out,
            "touchmark_db_connections{{state=\"idle\"}} {}",
            pool.idle
        );
        let _ = writeln!(out, "touchmark_db_connections{{state=\"in_use\"}} {in_use}");
        family(
            &mut out,
            "touchmark_db_connections_max",
            "gauge",
            "The most database connections this process's pool opens.",
        );
        let _ = writeln!(out, "touchmark_db_connections_max {}", pool.max);
    }
    Ok((
        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        out,
    )
        .into_response())
}
