//! `touchmark bench`: honest, repeatable measurements of the hot path.
//!
//! `bench provision` starts a real Touchmark server in this process (a fresh installation, the
//! SQLite store with WAL and `synchronous=FULL`, HTTPS with station mTLS), enrolls one station
//! per concurrent worker over the API, and provisions pre-generated units through the typed
//! client on kept-alive connections. Every figure is the median of several rounds, every unit of
//! every round must come back issued (HTTP 201), and the order's count must match what was sent:
//! a run that measured errors fails instead of printing a number.
//!
//! Beside it, the same run measures the machine's ceilings (raw ECDSA P-256, CSR → certificate
//! without I/O, a durable SQLite commit) and, with `--compare cfssl`, Cloudflare's cfssl on the
//! same CSRs.

mod cfssl;
mod crypto;
mod load;
mod log;
mod report;
mod setup;
mod units;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};

use self::load::Sample;
use self::report::{Report, Series, Setup, Verification};
use self::setup::{Backend, Touchmark};
use self::units::Unit;

/// Arguments of `bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// What to measure.
    #[command(subcommand)]
    pub command: BenchCommand,
}

/// What `bench` can measure.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// The provisioning hot path: HTTPS with station mTLS, policy checks, signing and the
    /// durable commit (SQLite, or PostgreSQL with one or more replicas), end to end, in this
    /// process.
    Provision(ProvisionArgs),
    /// The audit log: durable appends, sequencing, and `audit verify` over a large log,
    /// against the machine's raw SHA-256 rate and the provisioning cost per unit.
    Log(log::LogArgs),
}

/// Arguments of `bench provision`.
#[derive(Debug, Args)]
pub struct ProvisionArgs {
    /// Concurrent stations to measure, comma-separated. Each worker is one enrolled station
    /// with its own kept-alive connection.
    #[arg(long, value_delimiter = ',', default_value = "1,8,32")]
    pub concurrency: Vec<usize>,
    /// Rounds per concurrency; every figure is the median of the rounds [default: 5, 2 with
    /// --quick].
    #[arg(long)]
    pub rounds: Option<usize>,
    /// Units per round [default: calibrated by a warm-up for about 3 s per round, 1 s with
    /// --quick].
    #[arg(long)]
    pub units_per_round: Option<usize>,
    /// A short run (2 rounds of about 1 s, shorter ceiling measurements), for CI and smoke tests.
    #[arg(long)]
    pub quick: bool,
    /// Create the installation in this new directory and keep it, instead of a temporary one
    /// (the key passphrase comes from TOUCHMARK_KEY_PASSPHRASE, as for `init`).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Keep the records in a fresh schema of this PostgreSQL database (dropped at the end)
    /// instead of SQLite.
    #[arg(long = "database", value_name = "URL")]
    pub database: Option<crate::database::DatabaseUrl>,
    /// Server replicas on the PostgreSQL database, each with its own pool; the stations are
    /// spread over them [default: 1]. Needs --database.
    #[arg(long, default_value_t = 1)]
    pub replicas: usize,
    /// Also run the same CSRs through another CA server.
    #[arg(long, value_enum)]
    pub compare: Option<Compare>,
    /// Print the whole result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// A CA server to compare with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Compare {
    /// Cloudflare's cfssl (`cfssl serve`), without a database and with its SQLite certdb.
    /// Found through TOUCHMARK_BENCH_CFSSL or PATH.
    Cfssl,
}

/// Runs `touchmark bench`.
///
/// # Errors
/// When a measurement cannot be taken, or a unit was not issued.
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    match args.command {
        BenchCommand::Provision(args) => {
            let json = args.json;
            let plan = Plan::from_args(args)?;
            let report = provision(&plan).await?;
            if json {
                crate::output::json(&report)
            } else {
                report.print();
                Ok(())
            }
        }
        BenchCommand::Log(args) => log::run(args).await,
    }
}

/// The resolved settings of one run.
#[derive(Debug, Clone)]
struct Plan {
    concurrencies: Vec<usize>,
    rounds: usize,
    /// Fixed units per round, or `None` to calibrate for `round_target`.
    units_per_round: Option<usize>,
    round_target: Duration,
    /// How long each ceiling loop runs.
    ceiling_time: Duration,
    quick: bool,
    data: Option<PathBuf>,
    backend: Backend,
    cfssl: bool,
}

/// The most units one round may hold, whatever the calibration says (memory stays bounded).
const MAX_UNITS_PER_ROUND: usize = 200_000;
/// The most concurrent stations (one enrolled station each).
const MAX_CONCURRENCY: usize = 1024;

impl Plan {
    fn from_args(args: ProvisionArgs) -> anyhow::Result<Self> {
        let mut concurrencies = args.concurrency;
        concurrencies.dedup();
        if concurrencies.is_empty() {
            anyhow::bail!("--concurrency needs at least one value");
        }
        if let Some(bad) = concurrencies
            .iter()
            .find(|&&c| c == 0 || c > MAX_CONCURRENCY)
        {
            anyhow::bail!("--concurrency {bad}: each value must be 1 to {MAX_CONCURRENCY}");
        }
        let rounds = args.rounds.unwrap_or(if args.quick { 2 } else { 5 });
        if rounds == 0 || rounds > 100 {
            anyhow::bail!("--rounds must be 1 to 100");
        }
        if let Some(n) = args.units_per_round
            && (n == 0 || n > MAX_UNITS_PER_ROUND)
        {
            anyhow::bail!("--units-per-round must be 1 to {MAX_UNITS_PER_ROUND}");
        }
        let backend = match (args.database, args.replicas) {
            (_, 0) | (_, 17..) => anyhow::bail!("--replicas must be 1 to 16"),
            (None, 1) => Backend::Sqlite,
            (None, _) => anyhow::bail!(
                "--replicas needs --database postgres://…: replicas share one PostgreSQL database"
            ),
            (Some(url), replicas) => Backend::Postgres { url, replicas },
        };
        Ok(Self {
            backend,
            concurrencies,
            rounds,
            units_per_round: args.units_per_round,
            round_target: Duration::from_secs(if args.quick { 1 } else { 3 }),
            ceiling_time: Duration::from_millis(if args.quick { 300 } else { 1000 }),
            quick: args.quick,
            data: args.data,
            cfssl: args.compare == Some(Compare::Cfssl),
        })
    }

    /// Units of the warm-up that opens the connections and sizes the rounds.
    fn warmup_units(&self, concurrency: usize) -> usize {
        (4 * concurrency).max(if self.quick { 20 } else { 100 })
    }
}

/// Progress of long steps, on stderr so that `--json` output stays clean.
fn progress(message: impl std::fmt::Display) {
    eprintln!("[bench] {message}");
}

/// Runs the whole benchmark described by `plan`.
async fn provision(plan: &Plan) -> anyhow::Result<Report> {
    if cfg!(debug_assertions) {
        progress("WARNING: this is a DEBUG build; its figures say nothing about production speed");
    }
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    // Fail before the long part when the comparison cannot run.
    let cfssl_bin = if plan.cfssl {
        Some(cfssl::binary()?)
    } else {
        None
    };
    let max_concurrency = plan.concurrencies.iter().copied().max().unwrap_or(1);

    progress(format!(
        "setting up an installation, a server and {max_concurrency} station(s)"
    ));
    let touchmark = Touchmark::start(plan.data.as_deref(), &plan.backend, max_concurrency).await?;

    progress("measuring the machine's ceilings (single thread, no network)");
    let samples = units::generate(0, 64).await?;
    let ceilings = crypto::measure(plan.ceiling_time, touchmark.dir(), samples).await?;

    let mut cfssl = match &cfssl_bin {
        Some(bin) => Some(cfssl::Pair::start(bin, max_concurrency).await?),
        None => None,
    };

    let mut next_serial: u64 = 1_000;
    let mut sent: u64 = 0;
    let mut issued: u64 = 0;
    let mut series = Vec::new();
    let mut cfssl_series = (Vec::new(), Vec::new());
    for &concurrency in &plan.concurrencies {
        let stations = touchmark.stations(concurrency);

        // Warm-up: opens each station's connection (TLS handshake) and sizes the rounds.
        let warm_n = plan.warmup_units(concurrency);
        let warm = units::generate(next_serial, warm_n).await?;
        next_serial += warm_n as u64;
        let sample = touchmark.drive(stations, Arc::clone(&warm)).await?;
        sent += sample.units as u64;
        issued += sample.succeeded() as u64;
        sample.check("touchmark warm-up")?;
        let per_round = match plan.units_per_round {
            Some(n) => n,
            None => {
                let rate = sample.units_per_s();
                let n = (rate * plan.round_target.as_secs_f64()).round() as usize;
                n.clamp((10 * concurrency).max(50), MAX_UNITS_PER_ROUND)
            }
        };

        progress(format!(
            "c={concurrency}: generating {} units ({} rounds of {per_round}) before timing",
            per_round * plan.rounds,
            plan.rounds
        ));
        let mut batches: Vec<Arc<Vec<Unit>>> = Vec::with_capacity(plan.rounds);
        for _ in 0..plan.rounds {
            batches.push(units::generate(next_serial, per_round).await?);
            next_serial += per_round as u64;
        }

        let mut samples: Vec<Sample> = Vec::with_capacity(plan.rounds);
        for (round, batch) in batches.iter().enumerate() {
            let sample = touchmark.drive(stations, Arc::clone(batch)).await?;
            sent += sample.units as u64;
            issued += sample.succeeded() as u64;
            progress(format!(
                "touchmark c={concurrency} round {}/{}: {:.0} units/s",
                round + 1,
                plan.rounds,
                sample.units_per_s()
            ));
            sample.check("touchmark")?;
            samples.push(sample);
        }
        series.push(Series::new(concurrency, per_round, &samples));

        if let Some(pair) = &mut cfssl {
            let (no_db, sqlite) = pair.run(concurrency, &warm, &batches).await?;
            cfssl_series.0.push(no_db);
            cfssl_series.1.push(sqlite);
        }
    }

    progress("verifying the order's counts");
    let detail = touchmark.order().await?;
    let verification = Verification {
        units_sent: sent,
        answered_issued_201: issued,
        order_issued: detail.order.issued,
        certificates: detail.certificates,
        issued_events: detail.issued_events,
        refusals: detail.refusals.values().sum(),
    };
    verification.check()?;

    let cfssl_report = match cfssl {
        Some(pair) => Some(pair.finish(cfssl_series.0, cfssl_series.1)?),
        None => None,
    };
    let data = touchmark.data_description();
    let server = touchmark.server_description();
    touchmark.stop().await;

    Ok(Report::new(
        Setup {
            build: if cfg!(debug_assertions) {
                "debug"
            } else {
                "release"
            },
            cores,
            rounds: plan.rounds,
            concurrencies: plan.concurrencies.clone(),
            units_per_round: series.iter().map(|s| s.units_per_round).collect(),
            round_target_s: plan
                .units_per_round
                .is_none()
                .then_some(plan.round_target.as_secs_f64()),
            quick: plan.quick,
            data,
            server,
        },
        ceilings,
        series,
        cfssl_report,
        verification,
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    /// The quick benchmark, with tiny numbers, runs end to end in any build and verifies itself.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn quick_benchmark_runs_and_verifies_every_unit() {
        let plan = Plan {
            concurrencies: vec![1, 4],
            rounds: 1,
            units_per_round: Some(20),
            round_target: Duration::from_secs(1),
            ceiling_time: Duration::from_millis(50),
            quick: true,
            data: None,
            backend: Backend::Sqlite,
            cfssl: false,
        };
        let report = provision(&plan).await.unwrap();
        assert_eq!(report.provisioning.len(), 2);
        for (series, c) in report.provisioning.iter().zip([1, 4]) {
            assert_eq!(series.concurrency, c);
            assert_eq!(series.units_per_round, 20);
            assert_eq!(series.rounds.len(), 1);
            assert!(series.median.units_per_s > 0.0);
            assert!(series.median.p50_ms > 0.0);
            assert!(series.median.p99_ms >= series.median.p50_ms);
            assert!(series.median.max_ms >= series.median.p99_ms);
        }
        let c = &report.ceilings;
        assert!(c.ecdsa_p256_sign_per_s > 0.0 && c.ecdsa_p256_verify_per_s > 0.0);
        assert!(c.csr_parse_per_s > 0.0 && c.csr_to_certificate_per_s > 0.0);
        assert!(c.sqlite_durable_commit_per_s > 0.0);
        assert!(report.ratio.iter().all(|r| r.of_all_cores > 0.0));
        let v = &report.verification;
        // Warm-ups (20 units each in quick mode) plus 20 units per concurrency.
        assert_eq!(v.units_sent, 2 * 20 + 2 * 20);
        assert_eq!(v.answered_issued_201, v.units_sent);
        assert_eq!(v.order_issued, v.units_sent);
        assert_eq!(v.certificates, v.units_sent);
        assert_eq!(v.issued_events, v.units_sent);
        assert!(report.cfssl.is_none());
    }
}
