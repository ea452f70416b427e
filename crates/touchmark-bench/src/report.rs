//! The result of a `provision` run: per-round figures, their medians, the ceilings and the
//! ratios, serialized whole for `--json`.

use serde::Serialize;

pub use crate::cfssl::CfsslReport;
pub use crate::crypto::Ceilings;
use crate::error::Error;
use crate::load::Sample;

/// How the run was set up.
#[derive(Debug, Serialize)]
pub struct Setup {
    /// `release`, or `debug` (figures meaningless).
    pub build: &'static str,
    /// `std::thread::available_parallelism()`.
    pub cores: usize,
    /// Rounds per concurrency.
    pub rounds: usize,
    /// Concurrencies measured.
    pub concurrencies: Vec<usize>,
    /// Units per round, per concurrency.
    pub units_per_round: Vec<usize>,
    /// The round length the calibration aimed at, when units per round were not given.
    pub round_target_s: Option<f64>,
    /// `--quick`.
    pub quick: bool,
    /// Where the installation lived.
    pub data: String,
    /// What was measured.
    pub server: String,
}

/// One round's figures.
#[derive(Debug, Clone, Serialize)]
pub struct RoundStats {
    /// Units sent.
    pub units: usize,
    /// Requests that failed (always 0 for Touchmark: a failure aborts the run).
    pub failed: usize,
    /// From the first request to the last answer.
    pub seconds: f64,
    /// Units per second.
    pub units_per_s: f64,
    /// Median latency.
    pub p50_ms: f64,
    /// 99th percentile latency.
    pub p99_ms: f64,
    /// Slowest request.
    pub max_ms: f64,
    /// CPU time of this whole process per unit, microseconds: the server and the load generator
    /// together in process, or the load generator alone against a server elsewhere.
    pub cpu_us_per_unit: Option<f64>,
    /// CPU time of a server elsewhere per unit, microseconds, when its process id was given.
    pub server_cpu_us_per_unit: Option<f64>,
    /// That CPU time over the time all cores offered (1.0 = every core busy all round).
    pub cpu_utilization: Option<f64>,
}

impl RoundStats {
    fn new(sample: &Sample, cores: usize) -> Self {
        let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3;
        let seconds = sample.elapsed.as_secs_f64();
        Self {
            units: sample.units,
            failed: sample.failed,
            seconds,
            units_per_s: sample.units_per_s(),
            p50_ms: ms(sample.quantile(0.50)),
            p99_ms: ms(sample.quantile(0.99)),
            max_ms: ms(sample.quantile(1.0)),
            cpu_us_per_unit: per_unit(sample.cpu, sample.units),
            server_cpu_us_per_unit: per_unit(sample.server_cpu, sample.units),
            cpu_utilization: sample
                .cpu
                .filter(|_| seconds > 0.0)
                .map(|cpu| cpu.as_secs_f64() / (seconds * cores as f64)),
        }
    }
}

/// `cpu` per unit of `units`, in microseconds.
fn per_unit(cpu: Option<std::time::Duration>, units: usize) -> Option<f64> {
    cpu.filter(|_| units > 0)
        .map(|cpu| cpu.as_secs_f64() * 1e6 / units as f64)
}

/// The median of `values` (the mean of the middle two for an even count).
fn median(mut values: Vec<f64>) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    }
}

fn median_opt(values: Vec<Option<f64>>) -> Option<f64> {
    values.into_iter().collect::<Option<Vec<f64>>>().map(median)
}

/// All rounds at one concurrency, and the median of each figure.
#[derive(Debug, Clone, Serialize)]
pub struct Series {
    /// Concurrent workers (stations).
    pub concurrency: usize,
    /// Units per round.
    pub units_per_round: usize,
    /// Each figure's median over the rounds (taken separately per figure).
    pub median: RoundStats,
    /// Failed requests over all rounds.
    pub failed: usize,
    /// The first failure, if any.
    pub first_failure: Option<String>,
    /// Every round.
    pub rounds: Vec<RoundStats>,
}

impl Series {
    /// The series of `samples`, one per round, at `concurrency` with `units_per_round` each.
    pub(crate) fn new(concurrency: usize, units_per_round: usize, samples: &[Sample]) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let rounds: Vec<RoundStats> = samples.iter().map(|s| RoundStats::new(s, cores)).collect();
        let of = |f: fn(&RoundStats) -> f64| median(rounds.iter().map(f).collect());
        let median = RoundStats {
            units: units_per_round,
            failed: of(|r| r.failed as f64).round() as usize,
            seconds: of(|r| r.seconds),
            units_per_s: of(|r| r.units_per_s),
            p50_ms: of(|r| r.p50_ms),
            p99_ms: of(|r| r.p99_ms),
            max_ms: of(|r| r.max_ms),
            cpu_us_per_unit: median_opt(rounds.iter().map(|r| r.cpu_us_per_unit).collect()),
            server_cpu_us_per_unit: median_opt(
                rounds.iter().map(|r| r.server_cpu_us_per_unit).collect(),
            ),
            cpu_utilization: median_opt(rounds.iter().map(|r| r.cpu_utilization).collect()),
        };
        Self {
            concurrency,
            units_per_round,
            median,
            failed: samples.iter().map(|s| s.failed).sum(),
            first_failure: samples.iter().find_map(|s| s.failures.first().cloned()),
            rounds,
        }
    }
}

/// The provisioning rate against the issuance ceiling.
#[derive(Debug, Serialize)]
pub struct Ratio {
    /// Concurrency.
    pub concurrency: usize,
    /// Median provisioning units/s.
    pub units_per_s: f64,
    /// Provisioning rate ÷ (single-thread CSR→certificate rate × cores).
    pub of_all_cores: f64,
}

/// The end-of-run cross-check of what the stations saw against what the server counted.
#[derive(Debug, Serialize)]
pub struct Verification {
    /// Units sent, warm-ups included.
    pub units_sent: u64,
    /// Answers `issued` with HTTP 201.
    pub answered_issued_201: u64,
    /// The order's issued count.
    pub order_issued: u64,
    /// Certificates stored for the order.
    pub certificates: u64,
    /// `unit.issued` events for the order.
    pub issued_events: u64,
    /// Refusals recorded for the order.
    pub refusals: u64,
}

impl Verification {
    /// Every count must equal the units sent, and nothing may have been refused.
    ///
    /// # Errors
    /// [`Error::Void`], naming the counts.
    pub fn check(&self) -> Result<(), Error> {
        let n = self.units_sent;
        if self.answered_issued_201 != n
            || self.order_issued != n
            || self.certificates != n
            || self.issued_events != n
            || self.refusals != 0
        {
            return Err(Error::Void(format!(
                "the counts do not add up, the figures are not trustworthy: {self:?}"
            )));
        }
        Ok(())
    }
}

/// The whole result.
#[derive(Debug, Serialize)]
pub struct Report {
    /// How the run was set up.
    pub setup: Setup,
    /// The machine's single-thread ceilings.
    pub ceilings: Ceilings,
    /// Touchmark provisioning, per concurrency.
    pub provisioning: Vec<Series>,
    /// Provisioning against the issuance ceiling.
    pub ratio: Vec<Ratio>,
    /// cfssl on the same CSRs, with `--compare cfssl`.
    pub cfssl: Option<CfsslReport>,
    /// The cross-check of the counts.
    pub verification: Verification,
    /// The same rounds with every key in a PKCS#11 token, with `--pkcs11`.
    pub token: Option<TokenReport>,
}

/// Provisioning with every key in a PKCS#11 token, measured round by round beside the
/// software keys, and the token's raw signing rate.
#[derive(Debug, Serialize)]
pub struct TokenReport {
    /// The token, as its provider describes it.
    pub token: String,
    /// Provisioning with the keys in the token, per concurrency.
    pub provisioning: Vec<Series>,
    /// Per concurrency: the token's median units/s against the software keys'.
    pub versus_software: Vec<TokenRatio>,
    /// Raw ECDSA P-256 signatures per second in the token, one thread.
    pub sign_per_s_single: f64,
    /// Raw ECDSA P-256 signatures per second in the token, `sign_concurrency` threads.
    pub sign_per_s_concurrent: f64,
    /// Threads of `sign_per_s_concurrent`.
    pub sign_concurrency: usize,
    /// The cross-check of its installation's counts.
    pub verification: Verification,
}

/// The token's provisioning rate against the software keys' at one concurrency.
#[derive(Debug, Serialize)]
pub struct TokenRatio {
    /// Concurrency.
    pub concurrency: usize,
    /// Median units/s with software keys.
    pub software_units_per_s: f64,
    /// Median units/s with the keys in the token.
    pub token_units_per_s: f64,
    /// token ÷ software.
    pub ratio: f64,
}

impl TokenReport {
    /// The report of the token's series, set against `software`'s at each concurrency.
    pub(crate) fn new(
        token: String,
        software: &[Series],
        provisioning: Vec<Series>,
        sign_per_s_single: f64,
        sign_per_s_concurrent: f64,
        sign_concurrency: usize,
        verification: Verification,
    ) -> Self {
        let versus_software = provisioning
            .iter()
            .zip(software)
            .map(|(t, s)| TokenRatio {
                concurrency: t.concurrency,
                software_units_per_s: s.median.units_per_s,
                token_units_per_s: t.median.units_per_s,
                ratio: if s.median.units_per_s > 0.0 {
                    t.median.units_per_s / s.median.units_per_s
                } else {
                    0.0
                },
            })
            .collect();
        Self {
            token,
            provisioning,
            versus_software,
            sign_per_s_single,
            sign_per_s_concurrent,
            sign_concurrency,
            verification,
        }
    }
}

impl Report {
    /// The report of a run, with the ratios of its provisioning rates to the ceiling.
    pub(crate) fn new(
        setup: Setup,
        ceilings: Ceilings,
        provisioning: Vec<Series>,
        cfssl: Option<CfsslReport>,
        verification: Verification,
    ) -> Self {
        let ceiling = ceilings.csr_to_certificate_per_s * setup.cores as f64;
        let ratio = provisioning
            .iter()
            .map(|s| Ratio {
                concurrency: s.concurrency,
                units_per_s: s.median.units_per_s,
                of_all_cores: if ceiling > 0.0 {
                    s.median.units_per_s / ceiling
                } else {
                    0.0
                },
            })
            .collect();
        Self {
            setup,
            ceilings,
            provisioning,
            ratio,
            cfssl,
            verification,
            token: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(vec![]), 0.0);
    }
}
