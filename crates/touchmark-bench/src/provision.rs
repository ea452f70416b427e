//! `provision`: the provisioning hot path end to end, against the machine's ceilings and,
//! optionally, cfssl on the same CSRs.

use std::sync::Arc;
use std::time::Duration;

use touchmark_pki::{KeyAlgorithm, KeyProvider};

use crate::Progress;
use crate::cfssl;
use crate::crypto;
use crate::error::{Context as _, Error};
use crate::load::Sample;
use crate::report::{Report, Series, Setup, TokenReport, Verification};
use crate::setup::Touchmark;
use crate::units::{self, Unit};

pub use crate::setup::{Backend, External, Keep};

/// What to measure, as `touchmark bench provision` is asked: see [`Plan::new`].
#[derive(Debug, Clone)]
pub struct Options {
    /// Concurrent stations to measure, one series each.
    pub concurrency: Vec<usize>,
    /// Rounds per concurrency [default: 5, 2 when quick].
    pub rounds: Option<usize>,
    /// Units per round [default: calibrated by a warm-up for about 3 s per round, 1 s when
    /// quick].
    pub units_per_round: Option<usize>,
    /// A short run (2 rounds of about 1 s, shorter ceiling measurements).
    pub quick: bool,
    /// Create the installation here and keep it, instead of a temporary one.
    pub keep: Option<Keep>,
    /// Keep the records in a fresh schema of this PostgreSQL database instead of SQLite.
    pub database: Option<touchmark_core::field::DatabaseUrl>,
    /// Server replicas on the PostgreSQL database.
    pub replicas: usize,
    /// Also run the same CSRs through cfssl.
    pub cfssl: bool,
    /// Drive this server running elsewhere instead of one in this process.
    pub server: Option<External>,
    /// Also run an installation whose keys are all in this provider (a PKCS#11 token), round
    /// by round beside the one with software keys, and measure the token's raw signing rate.
    pub token: Option<Arc<dyn KeyProvider>>,
}

/// The resolved settings of one run.
#[derive(Debug, Clone)]
pub struct Plan {
    pub(crate) concurrencies: Vec<usize>,
    pub(crate) rounds: usize,
    /// Fixed units per round, or `None` to calibrate for `round_target`.
    pub(crate) units_per_round: Option<usize>,
    pub(crate) round_target: Duration,
    /// How long each ceiling loop runs.
    pub(crate) ceiling_time: Duration,
    pub(crate) quick: bool,
    pub(crate) keep: Option<Keep>,
    pub(crate) backend: Backend,
    pub(crate) cfssl: bool,
    pub(crate) token: Option<Arc<dyn KeyProvider>>,
}

#[cfg(test)]
impl Plan {
    /// A plan for the crate's own tests: one round of 20 units on SQLite at each of
    /// `concurrencies`, ceilings measured for `ceiling_time`.
    pub(crate) fn tiny(concurrencies: Vec<usize>, ceiling_time: Duration) -> Self {
        Self {
            concurrencies,
            rounds: 1,
            units_per_round: Some(20),
            round_target: Duration::from_secs(1),
            ceiling_time,
            quick: true,
            keep: None,
            backend: Backend::Sqlite,
            cfssl: false,
            token: None,
        }
    }
}

/// The most units one round may hold, whatever the calibration says (memory stays bounded).
const MAX_UNITS_PER_ROUND: usize = 200_000;
/// The most concurrent stations (one enrolled station each).
const MAX_CONCURRENCY: usize = 1024;

impl Plan {
    /// Checks `options` and resolves their defaults.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a setting out of range, named as the command line spells it.
    pub fn new(options: Options) -> Result<Self, Error> {
        let invalid = |message: String| Err(Error::Invalid(message));
        let mut concurrencies = options.concurrency;
        concurrencies.dedup();
        if concurrencies.is_empty() {
            return invalid("--concurrency needs at least one value".into());
        }
        if let Some(bad) = concurrencies
            .iter()
            .find(|&&c| c == 0 || c > MAX_CONCURRENCY)
        {
            return invalid(format!(
                "--concurrency {bad}: each value must be 1 to {MAX_CONCURRENCY}"
            ));
        }
        let rounds = options.rounds.unwrap_or(if options.quick { 2 } else { 5 });
        if rounds == 0 || rounds > 100 {
            return invalid("--rounds must be 1 to 100".into());
        }
        if let Some(n) = options.units_per_round
            && (n == 0 || n > MAX_UNITS_PER_ROUND)
        {
            return invalid(format!(
                "--units-per-round must be 1 to {MAX_UNITS_PER_ROUND}"
            ));
        }
        let backend = match (options.server, options.database, options.replicas) {
            (Some(_), database, replicas)
                if database.is_some()
                    || replicas != 1
                    || options.keep.is_some()
                    || options.token.is_some() =>
            {
                return invalid(
                    "--server drives a server running elsewhere, with its own storage and keys: \
                     it takes no --database, --replicas, --data or --pkcs11"
                        .into(),
                );
            }
            (Some(external), _, _) => Backend::External(external),
            (None, _, 0) | (None, _, 17..) => return invalid("--replicas must be 1 to 16".into()),
            (None, None, 1) => Backend::Sqlite,
            (None, None, _) => {
                return invalid(
                    "--replicas needs --database postgres://…: replicas share one PostgreSQL \
                     database"
                        .into(),
                );
            }
            (None, Some(url), replicas) => Backend::Postgres { url, replicas },
        };
        Ok(Self {
            backend,
            concurrencies,
            rounds,
            units_per_round: options.units_per_round,
            round_target: Duration::from_secs(if options.quick { 1 } else { 3 }),
            ceiling_time: Duration::from_millis(if options.quick { 300 } else { 1000 }),
            quick: options.quick,
            keep: options.keep,
            cfssl: options.cfssl,
            token: options.token,
        })
    }

    /// Units of the warm-up that opens the connections and sizes the rounds.
    fn warmup_units(&self, concurrency: usize) -> usize {
        (4 * concurrency).max(if self.quick { 20 } else { 100 })
    }
}

/// Runs the whole benchmark described by `plan`, telling `progress` about each long step.
///
/// # Errors
/// When a measurement cannot be taken, or a unit was not issued: a run that measured errors
/// fails instead of giving a figure.
pub async fn run(plan: &Plan, progress: &Arc<dyn Progress>) -> Result<Report, Error> {
    let progress = progress.as_ref();
    if cfg!(debug_assertions) {
        progress
            .step("WARNING: this is a DEBUG build; its figures say nothing about production speed");
    }
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    // Fail before the long part when the comparison cannot run.
    let cfssl_bin = if plan.cfssl {
        Some(cfssl::binary()?)
    } else {
        None
    };
    let max_concurrency = plan.concurrencies.iter().copied().max().unwrap_or(1);

    progress.step(&format!(
        "setting up an installation, a server and {max_concurrency} station(s)"
    ));
    let touchmark = Touchmark::start(plan.keep.as_ref(), &plan.backend, max_concurrency).await?;
    let in_token = match &plan.token {
        Some(keys) => {
            progress.step(&format!(
                "setting up a second installation with every key in {}",
                keys.describe()
            ));
            Some(
                Touchmark::start_keys(None, &plan.backend, max_concurrency, Some(Arc::clone(keys)))
                    .await?,
            )
        }
        None => None,
    };
    let mut token_series = Vec::new();
    let mut token_counts = (0u64, 0u64);

    progress.step("measuring the machine's ceilings (single thread, no network)");
    let samples = units::generate(units::PREFIX, 0, 64).await?;
    let ceilings = crypto::measure(plan.ceiling_time, touchmark.dir(), samples).await?;

    let mut cfssl = match &cfssl_bin {
        Some(bin) => Some(cfssl::Pair::start(bin, max_concurrency, progress).await?),
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
        let warm = units::generate(touchmark.serial_prefix(), next_serial, warm_n).await?;
        next_serial += warm_n as u64;
        let sample = touchmark.drive(stations, Arc::clone(&warm)).await?;
        sent += sample.units as u64;
        issued += sample.succeeded() as u64;
        sample.check("touchmark warm-up")?;
        if let Some(t) = &in_token {
            // The same CSRs: the two installations are apart, so their serials do not meet.
            let sample = t.drive(t.stations(concurrency), Arc::clone(&warm)).await?;
            token_counts.0 += sample.units as u64;
            token_counts.1 += sample.succeeded() as u64;
            sample.check("touchmark (keys in the token) warm-up")?;
        }
        let per_round = match plan.units_per_round {
            Some(n) => n,
            None => {
                let rate = sample.units_per_s();
                let n = (rate * plan.round_target.as_secs_f64()).round() as usize;
                n.clamp((10 * concurrency).max(50), MAX_UNITS_PER_ROUND)
            }
        };

        progress.step(&format!(
            "c={concurrency}: generating {} units ({} rounds of {per_round}) before timing",
            per_round * plan.rounds,
            plan.rounds
        ));
        let mut batches: Vec<Arc<Vec<Unit>>> = Vec::with_capacity(plan.rounds);
        for _ in 0..plan.rounds {
            batches.push(units::generate(touchmark.serial_prefix(), next_serial, per_round).await?);
            next_serial += per_round as u64;
        }

        let mut samples: Vec<Sample> = Vec::with_capacity(plan.rounds);
        let mut token_samples: Vec<Sample> = Vec::with_capacity(plan.rounds);
        for (round, batch) in batches.iter().enumerate() {
            let sample = touchmark.drive(stations, Arc::clone(batch)).await?;
            sent += sample.units as u64;
            issued += sample.succeeded() as u64;
            progress.step(&format!(
                "touchmark c={concurrency} round {}/{}: {:.0} units/s",
                round + 1,
                plan.rounds,
                sample.units_per_s()
            ));
            sample.check("touchmark")?;
            samples.push(sample);
            if let Some(t) = &in_token {
                // Side by side: each round of software keys is followed by the same round with
                // every key in the token, so that the machine's drift touches both alike.
                let sample = t.drive(t.stations(concurrency), Arc::clone(batch)).await?;
                token_counts.0 += sample.units as u64;
                token_counts.1 += sample.succeeded() as u64;
                progress.step(&format!(
                    "touchmark (keys in the token) c={concurrency} round {}/{}: {:.0} units/s",
                    round + 1,
                    plan.rounds,
                    sample.units_per_s()
                ));
                sample.check("touchmark (keys in the token)")?;
                token_samples.push(sample);
            }
        }
        series.push(Series::new(concurrency, per_round, &samples));
        if in_token.is_some() {
            token_series.push(Series::new(concurrency, per_round, &token_samples));
        }

        if let Some(pair) = &mut cfssl {
            let (no_db, sqlite) = pair.run(concurrency, &warm, &batches, progress).await?;
            cfssl_series.0.push(no_db);
            cfssl_series.1.push(sqlite);
        }
    }

    progress.step("verifying the order's counts");
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

    let token_report = match (&plan.token, in_token) {
        (Some(keys), Some(t)) => {
            progress.step("verifying the order's counts with the keys in the token");
            let detail = t.order().await?;
            let verification = Verification {
                units_sent: token_counts.0,
                answered_issued_201: token_counts.1,
                order_issued: detail.order.issued,
                certificates: detail.certificates,
                issued_events: detail.issued_events,
                refusals: detail.refusals.values().sum(),
            };
            verification.check()?;
            t.stop().await;
            progress.step(&format!(
                "measuring the token's raw P-256 signing rate (1 and {max_concurrency} threads)"
            ));
            let (single, concurrent) =
                token_sign_rates(Arc::clone(keys), max_concurrency, plan.ceiling_time).await?;
            Some(TokenReport::new(
                keys.describe(),
                &series,
                token_series,
                single,
                concurrent,
                max_concurrency,
                verification,
            ))
        }
        _ => None,
    };
    let cfssl_report = match cfssl {
        Some(pair) => Some(pair.finish(cfssl_series.0, cfssl_series.1)?),
        None => None,
    };
    let data = touchmark.data_description();
    let server = touchmark.server_description();
    touchmark.stop().await;

    let mut report = Report::new(
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
    );
    report.token = token_report;
    Ok(report)
}

/// The token's raw ECDSA P-256 signing rate (signatures per second) on one thread, and on
/// `concurrency` threads at once, each for `time`, with a key made for it.
async fn token_sign_rates(
    keys: Arc<dyn KeyProvider>,
    concurrency: usize,
    time: Duration,
) -> Result<(f64, f64), Error> {
    tokio::task::spawn_blocking(move || {
        let name = format!("bench-sign-{}", std::process::id());
        let key = if keys.contains(&name) {
            keys.load(&name)
        } else {
            keys.generate(&name, KeyAlgorithm::EcdsaP256)
        }
        .context("a signing key in the token")?;
        let rate = |threads: usize| -> Result<f64, Error> {
            let start = std::time::Instant::now();
            let counts: Vec<Result<u64, Error>> = std::thread::scope(|scope| {
                let handles: Vec<_> = (0..threads)
                    .map(|_| {
                        let key = Arc::clone(&key);
                        scope.spawn(move || {
                            let mut n = 0u64;
                            while start.elapsed() < time {
                                key.sign(&n.to_be_bytes()).context("signing in the token")?;
                                n += 1;
                            }
                            Ok(n)
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| {
                        h.join().unwrap_or_else(|_| {
                            Err(Error::Void("a signing thread panicked".into()))
                        })
                    })
                    .collect()
            });
            let total: u64 = counts
                .into_iter()
                .collect::<Result<Vec<u64>, Error>>()?
                .iter()
                .sum();
            Ok(total as f64 / start.elapsed().as_secs_f64())
        };
        Ok((rate(1)?, rate(concurrency)?))
    })
    .await
    .map_err(|e| Error::Void(format!("the signing measurement failed: {e}")))?
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    /// The quick benchmark, with tiny numbers, runs end to end in any build and verifies itself.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn quick_benchmark_runs_and_verifies_every_unit() {
        let plan = Plan::tiny(vec![1, 4], Duration::from_millis(50));
        let progress: Arc<dyn Progress> = Arc::new(crate::Quiet);
        let report = run(&plan, &progress).await.unwrap();
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
        assert!(
            report
                .provisioning
                .iter()
                .all(|s| s.median.server_cpu_us_per_unit.is_none())
        );
    }

    /// `--server`: the run sets up its own order on a server it does not own, twice on the same
    /// server without the runs meeting, and reads the server's CPU time apart from its own.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn drives_a_server_elsewhere_and_measures_its_cpu_apart() {
        use touchmark_authority::Installation;
        use touchmark_core::command::NewTokenRequest;
        use touchmark_core::entity::Role;
        use touchmark_core::event::Actor;
        use touchmark_core::field::Label;
        use touchmark_store_sqlite::SqliteStore;

        let installed = crate::setup::install(None, "touchmark-bench-elsewhere-").unwrap();
        let database = Installation::database_path(&installed.dir);
        let store = Arc::new(SqliteStore::open(&database).unwrap());
        let server = crate::setup::bind(&installed.installation, store)
            .await
            .unwrap();
        let url = format!("https://127.0.0.1:{}", server.local_addr().unwrap().port());
        let request = NewTokenRequest {
            role: Role::Admin,
            label: Label::parse("label", "bench elsewhere").unwrap(),
        };
        let (_, _, token) = server
            .authority()
            .create_token(Actor::System, request)
            .await
            .unwrap();
        let (stop_tx, stop) = tokio::sync::oneshot::channel::<()>();
        let serving = tokio::spawn(server.run(async {
            let _ = stop.await;
        }));
        let external = External {
            url,
            root_ca_pem: installed.installation.infra_root().certificate().pem(),
            token,
            // The server runs in this process here; a real one would be another.
            pid: Some(std::process::id()),
        };
        let mut plan = Plan::tiny(vec![2], Duration::from_millis(50));
        plan.units_per_round = Some(40);
        plan.backend = Backend::External(external);
        let progress: Arc<dyn Progress> = Arc::new(crate::Quiet);
        for _ in 0..2 {
            let report = run(&plan, &progress).await.unwrap();
            let v = &report.verification;
            // A warm-up of 20 units, then one round of 40, counted by this run's own order.
            assert_eq!(v.units_sent, 60);
            assert_eq!(v.order_issued, 60);
            assert_eq!(v.certificates, 60);
            assert_eq!(v.issued_events, 60);
            let series = &report.provisioning[0];
            assert!(series.median.server_cpu_us_per_unit.unwrap() > 0.0);
            assert!(report.setup.server.contains("separate process"));
        }
        let _ = stop_tx.send(());
        serving.await.unwrap();
    }

    #[test]
    fn a_server_elsewhere_takes_no_storage_options() {
        let external = External {
            url: "https://127.0.0.1:1".into(),
            root_ca_pem: String::new(),
            token: "t".into(),
            pid: None,
        };
        let options = |replicas| Options {
            concurrency: vec![1],
            rounds: None,
            units_per_round: None,
            quick: true,
            keep: None,
            database: None,
            replicas,
            cfssl: false,
            server: Some(external.clone()),
            token: None,
        };
        let refused = Plan::new(options(2)).unwrap_err().to_string();
        assert!(refused.contains("--server"), "{refused}");
        assert!(matches!(
            Plan::new(options(1)).unwrap().backend,
            Backend::External(_)
        ));
    }
}
