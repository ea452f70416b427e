//! `scale`: one order of many units, start to end, to see whether the cost of a unit stays flat
//! while the tables, their indexes and the log grow.
//!
//! A fresh installation and an in-process server (SQLite, or a fresh PostgreSQL schema), one
//! order, `concurrency` enrolled stations. The units are made in slices of a fiftieth of the
//! run; each slice is generated first (keys, CSRs and test records, untimed), then provisioned
//! through the stations on kept-alive connections (timed). Then:
//!
//! - units/s over the first and the last tenth of the run, from the slices' times;
//! - the database's bytes per unit (SQLite: the database and WAL files; PostgreSQL: the
//!   schema's tables with their indexes);
//! - the checkpoint lag: from the last unit's answer to the moment its receipt, with the
//!   inclusion proof under a signed checkpoint, is served;
//! - `audit verify` over HTTPS on the whole log, which must find every unit;
//! - on PostgreSQL, the database's transactions per unit (`pg_stat_database`): each statement
//!   of the hot path is a transaction of its own, so this counts its round trips. The count is
//!   the whole database's: run it on a database no one else uses at the time.
//!
//! Every unit must come back issued, and the order's count must match what was sent.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use touchmark_audit::{Audit, Silent, Source};
use touchmark_authority::Installation;
use touchmark_core::field::DatabaseUrl;

use crate::Progress;
use crate::cpu::Watch;
use crate::error::{Context as _, Error};
use crate::report::Verification;
use crate::setup::{Backend, Touchmark};
use crate::units;

/// Units of a full run on SQLite.
pub const SQLITE_UNITS: u64 = 1_000_000;
/// Units of a full run on PostgreSQL.
pub const POSTGRES_UNITS: u64 = 250_000;
/// Units of a quick run.
const QUICK_UNITS: u64 = 10_000;
/// The most units one run may hold.
const MAX_UNITS: u64 = 10_000_000;
/// Slices per run: a tenth of the run is five slices.
const SLICES: u64 = 50;
/// The last tenth must keep at least this share of the first tenth's throughput.
pub const FLAT_TARGET: f64 = 0.90;
/// How long the checkpoint lag is waited for before the run fails.
const LAG_LIMIT: Duration = Duration::from_secs(60);

/// What to measure, as `touchmark bench scale` is asked: see [`ScalePlan::new`].
#[derive(Debug, Clone)]
pub struct Options {
    /// Units in the order [default: 1,000,000 on SQLite, 250,000 on PostgreSQL, 10,000 quick].
    pub units: Option<u64>,
    /// Concurrent stations.
    pub concurrency: usize,
    /// Keep the records in a fresh schema of this PostgreSQL database instead of SQLite.
    pub database: Option<DatabaseUrl>,
    /// A short run.
    pub quick: bool,
}

/// The resolved settings of one run.
#[derive(Debug, Clone)]
pub struct ScalePlan {
    units: u64,
    concurrency: usize,
    backend: Backend,
    quick: bool,
}

impl ScalePlan {
    /// Checks `options` and resolves their defaults.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a setting out of range, named as the command line spells it.
    pub fn new(options: Options) -> Result<Self, Error> {
        let default = match (&options.database, options.quick) {
            (_, true) => QUICK_UNITS,
            (None, false) => SQLITE_UNITS,
            (Some(_), false) => POSTGRES_UNITS,
        };
        let units = options.units.unwrap_or(default);
        if !(SLICES..=MAX_UNITS).contains(&units) {
            return Err(Error::Invalid(format!(
                "--units must be {SLICES} to {MAX_UNITS}"
            )));
        }
        if options.concurrency == 0 || options.concurrency > 1024 {
            return Err(Error::Invalid("--concurrency must be 1 to 1024".into()));
        }
        let backend = match options.database {
            None => Backend::Sqlite,
            Some(url) => Backend::Postgres { url, replicas: 1 },
        };
        Ok(Self {
            units,
            concurrency: options.concurrency,
            backend,
            quick: options.quick,
        })
    }
}

/// One slice of the run.
#[derive(Debug, Clone, Serialize)]
pub struct Slice {
    /// Units provisioned before this slice.
    pub first: u64,
    /// Units in it.
    pub units: u64,
    /// From its first request to its last answer.
    pub seconds: f64,
    /// Its units per second.
    pub units_per_s: f64,
}

/// What `bench scale` measured.
#[derive(Debug, Serialize)]
pub struct ScaleReport {
    /// `release` or `debug`.
    pub build: &'static str,
    /// Cores the machine offers.
    pub cores: usize,
    /// A short run, which shows the method works rather than what the machine can do.
    pub quick: bool,
    /// The server and its storage.
    pub server: String,
    /// Units in the order.
    pub units: u64,
    /// Concurrent stations.
    pub concurrency: usize,
    /// Each slice, in order.
    pub slices: Vec<Slice>,
    /// Units/s over the first tenth of the run.
    pub first_tenth_units_per_s: f64,
    /// Units/s over the last tenth of the run.
    pub last_tenth_units_per_s: f64,
    /// The last tenth's throughput over the first's.
    pub flatness: f64,
    /// Units/s over the whole run (provisioning time only).
    pub units_per_s: f64,
    /// CPU of this process (server and load generator) per unit, µs, over the provisioning.
    pub cpu_us_per_unit: Option<f64>,
    /// The median and 99th percentile latency over the whole run, ms.
    pub p50_ms: f64,
    /// See `p50_ms`.
    pub p99_ms: f64,
    /// The database's bytes at the end.
    pub database_bytes: u64,
    /// `database_bytes` per unit.
    pub bytes_per_unit: f64,
    /// From the last unit's answer to its receipt under a signed checkpoint, s.
    pub checkpoint_lag_s: f64,
    /// `audit verify` over HTTPS on the whole log, cold cache, s.
    pub audit_verify_s: f64,
    /// Entries the audit verified.
    pub audit_entries: u64,
    /// PostgreSQL only: the database's transactions per unit over the provisioning.
    pub transactions_per_unit: Option<f64>,
    /// The counts the server and the audit report.
    pub verification: Verification,
}

/// Runs the whole benchmark described by `plan`, telling `progress` about each long step.
///
/// # Errors
/// When a step fails, a unit is not issued, or the counts do not match.
pub async fn run(plan: &ScalePlan, progress: &Arc<dyn Progress>) -> Result<ScaleReport, Error> {
    if cfg!(debug_assertions) {
        progress
            .step("WARNING: this is a DEBUG build; its figures say nothing about production speed");
    }
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    progress.step(&format!(
        "setting up an installation, a server and {} station(s)",
        plan.concurrency
    ));
    let touchmark = Touchmark::start(None, &plan.backend, plan.concurrency).await?;
    let stations = touchmark.stations(plan.concurrency);
    let transactions_before = match &plan.backend {
        Backend::Postgres { url, .. } => Some(
            touchmark_store_postgres::usage::transactions(url.expose())
                .await
                .context("PostgreSQL's transaction count")?,
        ),
        _ => None,
    };

    let slice_units = plan.units.div_ceil(SLICES);
    let mut slices = Vec::with_capacity(SLICES as usize);
    let mut latencies = Vec::with_capacity(plan.units as usize);
    let mut cpu = Some(Duration::ZERO);
    let mut issued = 0u64;
    let mut last_serial = String::new();
    let mut done = 0u64;
    while done < plan.units {
        let n = slice_units.min(plan.units - done);
        let batch = units::generate(touchmark.serial_prefix(), done, n as usize).await?;
        if let Some(unit) = batch.last() {
            last_serial.clone_from(&unit.request.serial);
        }
        let mut sample = touchmark.drive(stations, batch).await?;
        sample.check("touchmark")?;
        issued += sample.succeeded() as u64;
        cpu = cpu.zip(sample.cpu).map(|(a, b)| a + b);
        slices.push(Slice {
            first: done,
            units: n,
            seconds: sample.elapsed.as_secs_f64(),
            units_per_s: sample.units_per_s(),
        });
        latencies.append(&mut sample.latencies);
        done += n;
        progress.step(&format!(
            "{done}/{} units: {:.0} units/s in this slice",
            plan.units,
            sample.units_per_s()
        ));
    }
    let answered = Instant::now();

    progress.step("waiting for the last unit's receipt under a signed checkpoint");
    let lag = loop {
        if touchmark.admin().unit_receipt(&last_serial).await.is_ok() {
            break answered.elapsed();
        }
        if answered.elapsed() > LAG_LIMIT {
            return Err(Error::Void(format!(
                "no checkpoint covered the last unit within {} s",
                LAG_LIMIT.as_secs()
            )));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };

    progress.step("verifying the order's counts");
    let detail = touchmark.order().await?;
    let verification = Verification {
        units_sent: plan.units,
        answered_issued_201: issued,
        order_issued: detail.order.issued,
        certificates: detail.certificates,
        issued_events: detail.issued_events,
        refusals: detail.refusals.values().sum(),
    };
    verification.check()?;

    progress.step("audit verify over HTTPS, the whole log");
    let (audit_s, audit_entries) = audit(&touchmark, plan.units).await?;

    let database_bytes = match &plan.backend {
        Backend::Postgres { url, .. } => {
            let schema = touchmark.schema_name().unwrap_or_default().to_owned();
            touchmark_store_postgres::usage::schema_bytes(url.expose(), &schema)
                .await
                .context("the schema's size")?
        }
        _ => sqlite_bytes(&Installation::database_path(touchmark.dir())),
    };
    let server = touchmark.server_description();
    touchmark.stop().await;
    // The servers' pools have closed, so every server process has reported its counts.
    let transactions_per_unit = match (&plan.backend, transactions_before) {
        (Backend::Postgres { url, .. }, Some(before)) => {
            let after = touchmark_store_postgres::usage::transactions(url.expose())
                .await
                .context("PostgreSQL's transaction count")?;
            Some(after.saturating_sub(before) as f64 / plan.units as f64)
        }
        _ => None,
    };

    latencies.sort_unstable();
    let quantile = |p: f64| crate::load::quantile(&latencies, p).as_secs_f64() * 1e3;
    let tenth = |part: &[Slice]| -> f64 {
        let (n, s) = part
            .iter()
            .fold((0u64, 0.0f64), |(n, s), x| (n + x.units, s + x.seconds));
        if s > 0.0 { n as f64 / s } else { 0.0 }
    };
    let k = (slices.len() / 10).max(1);
    let first = tenth(&slices[..k]);
    let last = tenth(&slices[slices.len() - k..]);
    let all = tenth(&slices);
    Ok(ScaleReport {
        build: if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
        cores,
        quick: plan.quick,
        server,
        units: plan.units,
        concurrency: plan.concurrency,
        first_tenth_units_per_s: first,
        last_tenth_units_per_s: last,
        flatness: if first > 0.0 { last / first } else { 0.0 },
        units_per_s: all,
        cpu_us_per_unit: cpu.map(|c| c.as_secs_f64() * 1e6 / plan.units as f64),
        p50_ms: quantile(0.50),
        p99_ms: quantile(0.99),
        slices,
        database_bytes,
        bytes_per_unit: database_bytes as f64 / plan.units as f64,
        checkpoint_lag_s: lag.as_secs_f64(),
        audit_verify_s: audit_s,
        audit_entries,
        transactions_per_unit,
        verification,
    })
}

/// The bytes of the SQLite database at `path`, with its WAL.
fn sqlite_bytes(path: &Path) -> u64 {
    let size = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.len());
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    size(path) + size(Path::new(&wal))
}

/// `audit verify` of the server's whole log over HTTPS, with a cold cache; fails on any
/// violation, or when the audit does not count every unit. Its time and the entries verified.
async fn audit(touchmark: &Touchmark, units: u64) -> Result<(f64, u64), Error> {
    let installation = touchmark
        .installation()
        .ok_or(Error::Invalid("bench scale runs its own server".into()))?;
    let work = tempfile::Builder::new()
        .prefix("touchmark-bench-audit-")
        .tempdir()
        .context("cannot create a temporary directory")?;
    let audit = Audit {
        source: Source::Https {
            url: touchmark.admin().base_url().to_owned(),
            root_ca: Installation::server_root_path(touchmark.dir()),
        },
        key: installation.log_verifier().clone(),
        state: work.path().join("audit.state"),
        cache: Some(work.path().join("cache")),
    };
    let watch = Watch::start();
    let report = touchmark_audit::verify(&audit, Arc::new(Silent))
        .await
        .context("audit verify")?;
    let (elapsed, _) = watch.stop();
    report
        .verdict()
        .context("the audit of the run's log found violations")?;
    let counted = report.orders.values().map(|o| o.issued).sum::<u64>();
    if counted != units {
        return Err(Error::Void(format!(
            "the audit counts {counted} units issued, the run sent {units}"
        )));
    }
    Ok((elapsed.as_secs_f64(), report.checkpoint.size))
}
