//! `touchmark bench`: honest, repeatable measurements of the hot path (see the README). The
//! measuring is `touchmark_bench`'s; this parses the arguments and prints the results.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;

use clap::{Args, Subcommand, ValueEnum};
use touchmark_bench::Progress;
use touchmark_bench::analytics::{self, AnalyticsPlan, AnalyticsReport, TARGET_RECORDS};
use touchmark_bench::log::{self, APPEND_SHARE_TARGET, LogPlan, LogReport, VERIFY_TARGET};
use touchmark_bench::ocsp::{self, OcspPlan, OcspReport, Throughput};
use touchmark_bench::provision::{self, Keep, Plan};
use touchmark_bench::report::Report;
use touchmark_bench::scale::{self, ScalePlan, ScaleReport};
use touchmark_core::field::DatabaseUrl;

use crate::output::{self, Table, fields};
use crate::{config, database, secrets};

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
    Provision(Box<ProvisionArgs>),
    /// The audit log: durable appends, sequencing, and `audit verify` over a large log,
    /// against the machine's raw SHA-256 rate and the provisioning cost per unit.
    Log(LogArgs),
    /// The firmware format layer on one core: import of a 2 MiB MCUboot release, per-unit
    /// re-wrap, and streaming of 512 KiB per-unit images.
    Firmware(FirmwareArgs),
    /// One order of 1,000,000 units (250,000 on PostgreSQL), provisioned in slices: whether
    /// units/s stays flat from the first tenth to the last, bytes per unit, the checkpoint lag,
    /// and `audit verify` on the result.
    Scale(ScaleArgs),
    /// An order's report (`touchmark report order`) over a large store of test records
    /// (1,000,000 by default), on SQLite or on PostgreSQL.
    Analytics(AnalyticsArgs),
    /// The units a vulnerability report affects (`touchmark vuln affected`) over a lineage of
    /// 1,000,000 units, on SQLite or on PostgreSQL: the query's median and slowest round.
    Affected(AffectedArgs),
    /// The public vulnerability intake under a flood of 1,000 reports/s from one address:
    /// what the limit lets through, and the admins' p99 during the flood beside it alone.
    Intake(IntakeArgs),
    /// Revocation: cached OCSP answers per second at c=32 beside `openssl ocsp` on the same
    /// requests, the time from a revocation to refreshed CRL and OCSP answers, and the size and
    /// signing time of a CRL of 100,000 entries.
    Ocsp(OcspArgs),
}

/// Arguments of `bench ocsp`.
#[derive(Debug, Args)]
pub struct OcspArgs {
    /// Units provisioned, one OCSP request each [default: 1,000; 200 with --quick].
    #[arg(long)]
    pub units: Option<usize>,
    /// Concurrent workers against Touchmark, each on its own kept-alive HTTPS connection.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// Seconds each responder is driven [default: 10; 2 with --quick].
    #[arg(long)]
    pub seconds: Option<f64>,
    /// Revocations timed until the CRL and the OCSP answer show them [default: 20; 5 with
    /// --quick].
    #[arg(long)]
    pub revocations: Option<usize>,
    /// Revoked entries in the CRL built and signed without a server [default: 100,000; 10,000
    /// with --quick].
    #[arg(long)]
    pub crl_entries: Option<usize>,
    /// A short run, for CI and smoke tests.
    #[arg(long)]
    pub quick: bool,
    /// Print the whole result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `bench scale`.
#[derive(Debug, Args)]
pub struct ScaleArgs {
    /// Units in the order [default: 1,000,000 on SQLite, 250,000 on PostgreSQL; 10,000 with
    /// --quick].
    #[arg(long)]
    pub units: Option<u64>,
    /// Concurrent stations, each on its own kept-alive connection.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// Keep the records in a fresh schema of this PostgreSQL database (dropped at the end)
    /// instead of SQLite.
    #[arg(long = "database", value_name = "URL")]
    pub database: Option<DatabaseUrl>,
    /// A short run (10,000 units), for CI and smoke tests.
    #[arg(long)]
    pub quick: bool,
    /// Print the whole result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `bench analytics`.
#[derive(Debug, Args)]
pub struct AnalyticsArgs {
    /// Test records to write [default: 1,000,000; 20,000 with --quick].
    #[arg(long)]
    pub records: Option<u64>,
    /// Reports to time; every figure is the median [default: 5, 3 with --quick].
    #[arg(long)]
    pub rounds: Option<usize>,
    /// A short run (20,000 records, 3 rounds), for CI and smoke tests.
    #[arg(long)]
    pub quick: bool,
    /// Keep the records in a fresh schema of this PostgreSQL database (dropped at the end)
    /// instead of SQLite.
    #[arg(long = "database", value_name = "URL")]
    pub database: Option<DatabaseUrl>,
    /// Print the whole result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `bench affected`.
#[derive(Debug, Args)]
pub struct AffectedArgs {
    /// Units to write [default: 1,000,000; 20,000 with --quick].
    #[arg(long)]
    pub units: Option<u64>,
    /// Queries to time [default: 5, 3 with --quick].
    #[arg(long)]
    pub rounds: Option<usize>,
    /// A short run (20,000 units, 3 rounds), for CI and smoke tests.
    #[arg(long)]
    pub quick: bool,
    /// Keep the units in a fresh schema of this PostgreSQL database (dropped at the end)
    /// instead of SQLite.
    #[arg(long = "database", value_name = "URL")]
    pub database: Option<DatabaseUrl>,
    /// Print the whole result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `bench intake`.
#[derive(Debug, Args)]
pub struct IntakeArgs {
    /// Flood requests per second, from one address [default: 1,000].
    #[arg(long)]
    pub rate: Option<u32>,
    /// Seconds each phase (the admins alone, then with the flood) lasts [default: 10; 2 with
    /// --quick].
    #[arg(long)]
    pub seconds: Option<f64>,
    /// A short run, for CI and smoke tests.
    #[arg(long)]
    pub quick: bool,
    /// Print the whole result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `bench firmware`.
#[derive(Debug, Args)]
pub struct FirmwareArgs {
    /// Rounds; every figure is the median of the rounds.
    #[arg(long, default_value_t = 5)]
    pub rounds: usize,
    /// Concurrent stations in the end-to-end provisioning comparison.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// Fewer units per round, for CI and smoke tests.
    #[arg(long)]
    pub quick: bool,
    /// Print the whole result as JSON.
    #[arg(long)]
    pub json: bool,
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
    pub database: Option<DatabaseUrl>,
    /// Server replicas on the PostgreSQL database, each with its own pool; the stations are
    /// spread over them [default: 1]. Needs --database.
    #[arg(long, default_value_t = 1)]
    pub replicas: usize,
    /// Also run the same CSRs through another CA server.
    #[arg(long, value_enum)]
    pub compare: Option<Compare>,
    /// Drive a Touchmark server running elsewhere (`touchmark serve`) instead of one in this
    /// process, so that the load generator's CPU is measured apart from the server's. The run
    /// creates its own product, factory, order and stations there, with an admin token.
    #[arg(long, value_name = "URL", conflicts_with_all = ["data", "database"])]
    pub server: Option<String>,
    /// With --server: a file holding an admin token [env: TOUCHMARK_TOKEN, TOUCHMARK_TOKEN_FILE].
    #[arg(long, requires = "server")]
    pub token_file: Option<PathBuf>,
    /// With --server: the root CA of the server's TLS certificate [env: TOUCHMARK_CA].
    #[arg(long, env = "TOUCHMARK_CA", requires = "server")]
    pub ca: Option<PathBuf>,
    /// With --server: the server's process id, when it runs on this machine; its CPU time per
    /// unit is then read from /proc and reported apart from this process's.
    #[arg(long, value_name = "PID", requires = "server")]
    pub server_pid: Option<u32>,
    /// Print the whole result as JSON.
    #[arg(long)]
    pub json: bool,
    /// Also run every round with all keys in a PKCS#11 token, right after its round with
    /// software keys, and measure the token's raw signing rate. The token is
    /// --pkcs11-token in --pkcs11-module, its PIN in --pkcs11-pin-file; the run makes its keys
    /// under labels of its own (`bench-<pid>-<time>-…`), and leaves them in the token.
    #[arg(long, requires = "pkcs11_pin_file")]
    pub pkcs11: bool,
    /// The PKCS#11 module of --pkcs11.
    #[arg(
        long,
        value_name = "PATH",
        default_value = "/usr/lib/softhsm/libsofthsm2.so"
    )]
    pub pkcs11_module: PathBuf,
    /// The label of the token of --pkcs11.
    #[arg(long, value_name = "LABEL", default_value = "touchmark-bench")]
    pub pkcs11_token: String,
    /// A file holding the user PIN of the token of --pkcs11.
    #[arg(long, value_name = "FILE")]
    pub pkcs11_pin_file: Option<PathBuf>,
}

impl ProvisionArgs {
    /// The server elsewhere that `--server` names, with its token and trust anchor.
    fn external(&self) -> anyhow::Result<Option<provision::External>> {
        let Some(url) = &self.server else {
            return Ok(None);
        };
        let token = secrets::secret(
            None,
            self.token_file.as_deref(),
            "TOUCHMARK_TOKEN",
            Some("TOUCHMARK_TOKEN_FILE"),
        )?
        .ok_or_else(|| {
            anyhow::anyhow!(
                "--server needs an admin token: --token-file F, or TOUCHMARK_TOKEN / \
                 TOUCHMARK_TOKEN_FILE"
            )
        })?;
        let Some(ca) = &self.ca else {
            anyhow::bail!("--server needs the root CA of the server's certificate: --ca FILE");
        };
        let root_ca_pem = std::fs::read_to_string(ca)
            .with_context(|| format!("cannot read the root CA {}", ca.display()))?;
        if let Some(pid) = self.server_pid
            && !std::path::Path::new(&format!("/proc/{pid}/stat")).exists()
        {
            anyhow::bail!("--server-pid {pid}: no such process on this machine");
        }
        Ok(Some(provision::External {
            url: url.clone(),
            root_ca_pem,
            token,
            pid: self.server_pid,
        }))
    }
}

/// A CA server to compare with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Compare {
    /// Cloudflare's cfssl (`cfssl serve`), without a database and with its SQLite certdb.
    /// Found through TOUCHMARK_BENCH_CFSSL or PATH.
    Cfssl,
}

/// Arguments of `bench log`.
#[derive(Debug, Args)]
pub struct LogArgs {
    /// Events to append [default: 1,000,000; 20,000 with --quick].
    #[arg(long)]
    pub events: Option<u64>,
    /// Concurrent appending tasks; the store's group commit batches their transactions.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// A short run (20,000 events, shorter reference measurements), for CI and smoke tests.
    #[arg(long)]
    pub quick: bool,
    /// Print the whole result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs `touchmark bench`.
///
/// # Errors
/// When a measurement cannot be taken, or a unit was not issued.
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let progress: Arc<dyn Progress> = Arc::new(Stderr);
    match args.command {
        BenchCommand::Provision(args) => {
            let server = args.external()?;
            let keep = match args.data {
                Some(dir) => Some(Keep {
                    config: config::initial_file(&database::Database::for_dir(&dir, None)),
                    config_file: config::FILE.into(),
                    passphrase: secrets::passphrase()?,
                    dir,
                }),
                None => None,
            };
            let token: Option<Arc<dyn touchmark_pki::KeyProvider>> = if args.pkcs11 {
                let config = touchmark_pki_pkcs11::Pkcs11Config {
                    module: args.pkcs11_module.clone(),
                    token: args.pkcs11_token.clone(),
                    pin_file: args.pkcs11_pin_file.clone(),
                    pin_env: None,
                    sessions: None,
                    labels: Default::default(),
                    // Labels of this run alone: a token may hold the keys of earlier runs.
                    label_prefix: Some(format!(
                        "bench-{}-{}-",
                        std::process::id(),
                        std::time::SystemTime::now()
                            .duration_since(std::time::UNIX_EPOCH)
                            .map_or(0, |d| d.as_secs())
                    )),
                };
                Some(Arc::new(touchmark_pki_pkcs11::Pkcs11Keys::open(&config)?))
            } else {
                None
            };
            let plan = Plan::new(provision::Options {
                concurrency: args.concurrency,
                rounds: args.rounds,
                units_per_round: args.units_per_round,
                quick: args.quick,
                keep,
                database: args.database,
                replicas: args.replicas,
                cfssl: args.compare == Some(Compare::Cfssl),
                server,
                token,
            })?;
            let report = provision::run(&plan, &progress).await?;
            if args.json {
                return output::json(&report);
            }
            print_provision(&report);
        }
        BenchCommand::Log(args) => {
            let plan = LogPlan::new(&log::Options {
                events: args.events,
                concurrency: args.concurrency,
                quick: args.quick,
            })?;
            let report = log::run(&plan, &progress).await?;
            if args.json {
                return output::json(&report);
            }
            print_log(&report);
        }
        BenchCommand::Scale(args) => {
            let plan = ScalePlan::new(scale::Options {
                units: args.units,
                concurrency: args.concurrency,
                database: args.database,
                quick: args.quick,
            })?;
            let report = scale::run(&plan, &progress).await?;
            if args.json {
                return output::json(&report);
            }
            print_scale(&report);
        }
        BenchCommand::Analytics(args) => {
            let plan = AnalyticsPlan::new(&analytics::Options {
                records: args.records,
                rounds: args.rounds,
                quick: args.quick,
                database: args.database,
            })?;
            let report = analytics::run(&plan, &progress).await?;
            if args.json {
                return output::json(&report);
            }
            print_analytics(&report);
        }
        BenchCommand::Affected(args) => {
            let report = touchmark_bench::affected::run(
                &touchmark_bench::affected::Options {
                    units: args.units,
                    rounds: args.rounds,
                    quick: args.quick,
                    database: args.database,
                },
                &progress,
            )
            .await?;
            if args.json {
                return output::json(&report);
            }
            print_affected(&report);
        }
        BenchCommand::Intake(args) => {
            let report = touchmark_bench::intake::run(
                &touchmark_bench::intake::Options {
                    rate: args.rate,
                    seconds: args.seconds,
                    quick: args.quick,
                },
                &progress,
            )
            .await?;
            if args.json {
                return output::json(&report);
            }
            print_intake(&report);
        }
        BenchCommand::Ocsp(args) => {
            let plan = OcspPlan::new(ocsp::Options {
                units: args.units,
                concurrency: args.concurrency,
                seconds: args.seconds,
                revocations: args.revocations,
                crl_entries: args.crl_entries,
                quick: args.quick,
            })?;
            let report = ocsp::run(&plan, &progress).await?;
            if args.json {
                return output::json(&report);
            }
            print_ocsp(&report);
        }
        BenchCommand::Firmware(args) => {
            let report = touchmark_bench::firmware::run(args.rounds, args.quick)?;
            let delivery =
                touchmark_bench::delivery::run(args.rounds, args.quick, args.concurrency).await?;
            if args.json {
                return output::json(&serde_json::json!({
                    "format": report,
                    "end_to_end": delivery,
                }));
            }
            print_firmware(&report);
            print_delivery(&delivery);
        }
    }
    Ok(())
}

fn print_ocsp(r: &OcspReport) {
    println!(
        "\nOCSP and CRLs over {} units ({} build, {} cores)\n  {}",
        r.units, r.build, r.cores, r.server
    );
    let line = |name: &str, t: &Throughput| {
        println!(
            "  {name}: {} answers/s, p50 {} ms, p99 {} ms, {} failed ({} workers; {})",
            rate(t.responses_per_s, 0),
            ms(t.p50_ms),
            ms(t.p99_ms),
            t.failed,
            t.workers,
            t.connections
        );
    };
    line("touchmark (cached)", &r.touchmark);
    println!(
        "    target >= {} answers/s at c=32",
        rate(ocsp::TARGET_RESPONSES_PER_S, 0)
    );
    match (&r.openssl.throughput, &r.openssl.skipped) {
        (Some(t), _) => {
            line("openssl ocsp", t);
            if let Some(responder) = &r.openssl.responder {
                println!("    {responder}");
            }
            println!(
                "    {}; touchmark/openssl: {}",
                r.openssl.version.as_deref().unwrap_or("openssl"),
                r.ratio.map_or_else(|| "-".into(), |x| format!("{x:.2}x"))
            );
        }
        (None, Some(why)) => println!("  openssl ocsp: skipped: {why}"),
        (None, None) => println!("  openssl ocsp: not measured"),
    }
    let f = &r.refresh;
    println!(
        "  revocation to refreshed answers ({} revocations): OCSP p50 {} / p99 {} ms, CRL p50 {} \
         / p99 {} ms, both p50 {} / p99 {} ms (target p99 <= {} ms)",
        f.revocations,
        ms(f.ocsp_p50_ms),
        ms(f.ocsp_p99_ms),
        ms(f.crl_p50_ms),
        ms(f.crl_p99_ms),
        ms(f.both_p50_ms),
        ms(f.both_p99_ms),
        ocsp::TARGET_REFRESH_P99_S * 1e3
    );
    println!(
        "  a CRL of {} entries: {} bytes, {:.1} bytes/entry, built and signed in {} ms",
        r.crl.entries,
        r.crl.bytes,
        r.crl.bytes_per_entry,
        ms(r.crl.build_and_sign_ms)
    );
    if r.build == "debug" {
        println!("  (a debug build: these figures say nothing about production speed)");
    }
}

fn print_scale(r: &ScaleReport) {
    println!(
        "\nOne order of {} units at c={} ({} build, {} cores)\n  {}",
        r.units, r.concurrency, r.build, r.cores, r.server
    );
    println!(
        "  first 10%: {} units/s   last 10%: {} units/s   last/first: {:.2} (target >= {:.2})",
        rate(r.first_tenth_units_per_s, 0),
        rate(r.last_tenth_units_per_s, 0),
        r.flatness,
        scale::FLAT_TARGET
    );
    println!(
        "  whole run: {} units/s, p50 {} ms, p99 {} ms{}",
        rate(r.units_per_s, 0),
        ms(r.p50_ms),
        ms(r.p99_ms),
        r.cpu_us_per_unit
            .map(|c| format!(", CPU {c:.0} µs/unit (server and load generator)"))
            .unwrap_or_default()
    );
    println!(
        "  database: {} bytes, {:.0} bytes/unit",
        r.database_bytes, r.bytes_per_unit
    );
    if let Some(t) = r.transactions_per_unit {
        println!(
            "  PostgreSQL transactions (round trips) per unit: {t:.2} (the whole database's: \
             other clients count too)"
        );
    }
    println!(
        "  checkpoint lag after the last unit: {} ms",
        ms(r.checkpoint_lag_s * 1e3)
    );
    println!(
        "  audit verify (HTTPS, cold cache): {} entries in {:.2} s",
        r.audit_entries, r.audit_verify_s
    );
    println!(
        "  verified: {} sent, {} answered 201, order count {}, {} certificates, {} issued events",
        r.verification.units_sent,
        r.verification.answered_issued_201,
        r.verification.order_issued,
        r.verification.certificates,
        r.verification.issued_events
    );
}

fn print_firmware(r: &touchmark_bench::firmware::FirmwareReport) {
    use touchmark_bench::firmware::{DELIVERY_TARGET_MB_S, IMPORT_TARGET_MS};
    println!(
        "\nFirmware on one core (median of {} rounds; per-unit images of {} bytes, {} per round)",
        r.rounds, r.delivery_size, r.delivery_units
    );
    println!(
        "  import of a {} byte release: {} ms (target < {IMPORT_TARGET_MS} ms)",
        r.import_size,
        ms(r.import_ms)
    );
    println!(
        "  per-unit delivery (re-wrap + stream): {} MB/s (target >= {DELIVERY_TARGET_MB_S} MB/s)",
        rate(r.delivery_mb_s, 1)
    );
    println!("  re-wraps alone: {}/s", rate(r.rewraps_per_s, 1));
}

fn print_delivery(r: &touchmark_bench::delivery::DeliveryReport) {
    use touchmark_bench::delivery::RELEASE_RATIO_TARGET;
    use touchmark_bench::firmware::{DELIVERY_TARGET_MB_S, IMPORT_TARGET_MS};
    println!(
        "\nFirmware end to end over HTTPS (SQLite, this process; median of {} rounds, {} units per round and order, c={})",
        r.rounds, r.units_per_round, r.concurrency
    );
    println!(
        "  provisioning: {}/s with a release, {}/s without: {:.2} of it (target >= {RELEASE_RATIO_TARGET:.2}); p99 with a release {} ms",
        rate(r.release_units_per_s, 0),
        rate(r.plain_units_per_s, 0),
        r.release_ratio,
        ms(r.release_p99_ms)
    );
    let per_cpu = r
        .image_mb_per_cpu_s
        .map(|m| format!(", {} MB per CPU-second of server and client", rate(m, 0)))
        .unwrap_or_default();
    println!(
        "  whole per-unit images of {} bytes to one station: {} MB/s{per_cpu} (target >= {DELIVERY_TARGET_MB_S} MB/s)",
        r.image_size,
        rate(r.image_mb_s, 0)
    );
    println!(
        "  upload of a {} byte release over HTTPS, checks included: {} ms (target < {IMPORT_TARGET_MS} ms)",
        r.upload_size,
        ms(r.upload_ms)
    );
}

/// Prints the result of `bench analytics`.
fn print_analytics(r: &AnalyticsReport) {
    let s = &r.setup;
    println!("Touchmark analytics benchmark");
    if s.build == "debug" {
        println!();
        println!("  !!! DEBUG BUILD: these figures say nothing about production speed.");
        println!("  !!! Build with `cargo build --release -p touchmark` and run it again.");
    }
    println!();
    fields(&[
        ("build", s.build.to_owned()),
        ("store", format!("{} ({})", s.backend, s.data)),
        (
            "records",
            format!(
                "{} test attempts of {} units, {} measurements each",
                s.records, s.units, s.measurements_per_record
            ),
        ),
        (
            "fill",
            format!(
                "{:.1} s ({} records/s)",
                r.fill_seconds,
                rate(r.fill_records_per_s, 0)
            ),
        ),
    ]);
    println!();
    let mut table = Table::new(&["order report", "median ms", "min ms", "max ms", "rounds"]);
    for (name, t) in [
        ("all records", &r.report),
        ("last hour", &r.last_hour_report),
    ] {
        table.row(vec![
            name.into(),
            ms(t.median_ms),
            ms(t.min_ms),
            ms(t.max_ms),
            t.rounds_ms.len().to_string(),
        ]);
    }
    table.print();
    println!();
    let t = &r.target;
    let mut table = Table::new(&["target", "measured", "goal", "verdict"]);
    table.row(vec![
        format!("order report over {TARGET_RECORDS} test records"),
        format!("{} ms", ms(t.report_ms)),
        format!("<= {} ms", t.report_goal_ms),
        t.met.map_or_else(
            || format!("not at scale ({} records)", s.records),
            |ok| met(ok).into(),
        ),
    ]);
    table.print();
    let v = &r.verification;
    println!(
        "\nVerified: attempts {} counted / {} written; units {} / {}; first-pass yield {:?} / \
         {:.4}; final yield {:?} / {:.4}; tx_dbm values {} / {}; last hour {} attempts.",
        v.attempts.0,
        v.attempts.1,
        v.units.0,
        v.units.1,
        v.first_pass_yield.0,
        v.first_pass_yield.1,
        v.final_yield.0,
        v.final_yield.1,
        v.tx_dbm_values.0,
        v.tx_dbm_values.1,
        v.last_hour_attempts
    );
}

/// Progress of long steps, on stderr so that `--json` output stays clean.
struct Stderr;

impl Progress for Stderr {
    fn step(&self, line: &str) {
        eprintln!("[bench] {line}");
    }
}

fn rate(v: f64, decimals: usize) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.decimals$}")
    }
}

fn ms(v: f64) -> String {
    format!("{v:.2}")
}

fn times(a: f64, b: f64) -> String {
    if b > 0.0 {
        format!("{:.2}x", a / b)
    } else {
        "-".into()
    }
}

fn percent(v: f64) -> String {
    format!("{:.1}%", v * 100.0)
}

fn met(ok: bool) -> &'static str {
    if ok { "MET" } else { "NOT MET" }
}

/// Prints the result of `bench provision` as tables.
fn print_provision(report: &Report) {
    let s = &report.setup;
    println!("Touchmark provisioning benchmark");
    if s.build == "debug" {
        println!();
        println!("  !!! DEBUG BUILD: these figures say nothing about production speed.");
        println!("  !!! Build with `cargo build --release -p touchmark` and run it again.");
    }
    println!();
    let units: Vec<String> = s
        .concurrencies
        .iter()
        .zip(&s.units_per_round)
        .map(|(c, n)| format!("c={c}: {n}"))
        .collect();
    fields(&[
        ("build", s.build.to_owned()),
        (
            "cores",
            format!("{} (std::thread::available_parallelism)", s.cores),
        ),
        (
            "rounds",
            format!(
                "{} per concurrency; figures are the median of the rounds",
                s.rounds
            ),
        ),
        (
            "units per round",
            match s.round_target_s {
                Some(t) => format!("{} (calibrated for ~{t:.0} s per round)", units.join(", ")),
                None => units.join(", "),
            },
        ),
        ("server", s.server.clone()),
        ("data", s.data.clone()),
    ]);

    let c = &report.ceilings;
    println!("\nCeilings of this machine (one thread, no network, measured in this run)");
    let us = |r: f64| {
        if r > 0.0 {
            format!("{:.1} µs each", 1e6 / r)
        } else {
            "-".into()
        }
    };
    let mut table = Table::new(&["operation", "per second", "cost"]);
    for (name, r) in [
        ("ECDSA P-256 sign (aws-lc-rs)", c.ecdsa_p256_sign_per_s),
        ("ECDSA P-256 verify (aws-lc-rs)", c.ecdsa_p256_verify_per_s),
        ("CSR parse + signature check", c.csr_parse_per_s),
        ("CSR -> device certificate", c.csr_to_certificate_per_s),
        (
            "SQLite durable commit (1 row)",
            c.sqlite_durable_commit_per_s,
        ),
    ] {
        table.row(vec![name.into(), rate(r, 1), us(r)]);
    }
    table.print();

    println!(
        "\nProvisioning over HTTPS + mTLS, durable commit before each answer (median of {} rounds)",
        s.rounds
    );
    // Against a server elsewhere, this process is the load generator alone.
    let external = report
        .provisioning
        .iter()
        .any(|series| series.median.server_cpu_us_per_unit.is_some());
    let mut header = vec![
        "concurrency",
        "units/s",
        "p50 ms",
        "p99 ms",
        "max ms",
        "CPU µs/unit",
        "CPU busy",
        "of ceiling",
    ];
    if external {
        header[5] = "client CPU µs/unit";
        header[6] = "client CPU busy";
        header.push("server CPU µs/unit");
    }
    let mut table = Table::new(&header);
    for (series, ratio) in report.provisioning.iter().zip(&report.ratio) {
        let m = &series.median;
        let mut row = vec![
            series.concurrency.to_string(),
            rate(m.units_per_s, 1),
            ms(m.p50_ms),
            ms(m.p99_ms),
            ms(m.max_ms),
            m.cpu_us_per_unit.map_or("-".into(), |v| format!("{v:.0}")),
            m.cpu_utilization
                .map_or("-".into(), |v| format!("{:.0}%", v * 100.0)),
            format!("{:.1}%", ratio.of_all_cores * 100.0),
        ];
        if external {
            row.push(
                m.server_cpu_us_per_unit
                    .map_or("-".into(), |v| format!("{v:.0}")),
            );
        }
        table.row(row);
    }
    table.print();
    println!(
        "\n\"of ceiling\" = units/s ÷ (CSR -> certificate rate on one thread × {} cores = {} /s).",
        s.cores,
        rate(c.csr_to_certificate_per_s * s.cores as f64, 1)
    );
    if external {
        println!(
            "client CPU counts this process, the load generator (TLS client, JSON); server CPU\n\
             counts the server's process, read from /proc."
        );
    } else {
        println!(
            "CPU µs/unit and CPU busy count this whole process: the server and the load generator\n\
             (TLS client, JSON) share the same cores."
        );
    }

    if let Some(t) = &report.token {
        println!(
            "\nEvery key in {} (the same CSRs, each round right after its software-key round)",
            t.token
        );
        let mut table = Table::new(&[
            "concurrency",
            "software /s",
            "token /s",
            "token / software",
            "p50 ms software|token",
            "p99 ms software|token",
        ]);
        for ((r, tm), sw) in t
            .versus_software
            .iter()
            .zip(&t.provisioning)
            .zip(&report.provisioning)
        {
            table.row(vec![
                r.concurrency.to_string(),
                rate(r.software_units_per_s, 1),
                rate(r.token_units_per_s, 1),
                format!("{:.0}%", r.ratio * 100.0),
                format!("{} | {}", ms(sw.median.p50_ms), ms(tm.median.p50_ms)),
                format!("{} | {}", ms(sw.median.p99_ms), ms(tm.median.p99_ms)),
            ]);
        }
        table.print();
        println!(
            "Raw ECDSA P-256 signatures in the token: {} /s on one thread, {} /s on {} threads \
             (software, one thread: {} /s).",
            rate(t.sign_per_s_single, 1),
            rate(t.sign_per_s_concurrent, 1),
            t.sign_concurrency,
            rate(report.ceilings.ecdsa_p256_sign_per_s, 1)
        );
    }

    if let Some(cf) = &report.cfssl {
        println!(
            "\nCompared with cfssl {} on the same CSRs (cfssl: plain HTTP, no mTLS, no policy, quota or log)",
            cf.version
        );
        let mut table = Table::new(&[
            "concurrency",
            "touchmark /s",
            "cfssl no-db /s",
            "cfssl sqlite /s",
            "tm / no-db",
            "tm / sqlite",
            "p50 ms tm|no-db|sqlite",
            "cfssl failed no-db|sqlite",
        ]);
        for ((tm, nodb), sq) in report
            .provisioning
            .iter()
            .zip(&cf.no_database)
            .zip(&cf.sqlite)
        {
            let (a, b, c) = (
                tm.median.units_per_s,
                nodb.median.units_per_s,
                sq.median.units_per_s,
            );
            table.row(vec![
                tm.concurrency.to_string(),
                rate(a, 1),
                rate(b, 1),
                rate(c, 1),
                times(a, b),
                times(a, c),
                format!(
                    "{} | {} | {}",
                    ms(tm.median.p50_ms),
                    ms(nodb.median.p50_ms),
                    ms(sq.median.p50_ms)
                ),
                format!("{} | {}", nodb.failed, sq.failed),
            ]);
        }
        table.print();
        for series in cf.no_database.iter().chain(&cf.sqlite) {
            if let Some(failure) = &series.first_failure {
                println!(
                    "cfssl FAILED {} requests at c={} (its rates count only certificates \
                     issued); first failure: {failure}",
                    series.failed, series.concurrency
                );
            }
        }
        println!("cfssl certdb rows at the end: {}", cf.certdb_rows);
    }

    let v = &report.verification;
    println!(
        "\nVerified: {} units sent (warm-ups included), {} answered issued (HTTP 201); the order \
         counts {} issued, {} certificates, {} unit.issued events, {} refusals.",
        v.units_sent,
        v.answered_issued_201,
        v.order_issued,
        v.certificates,
        v.issued_events,
        v.refusals
    );
}

/// Prints the result of `bench log` as tables.
fn print_log(report: &LogReport) {
    let s = &report.setup;
    println!("Touchmark audit log benchmark");
    if s.build == "debug" {
        println!();
        println!("  !!! DEBUG BUILD: these figures say nothing about production speed.");
        println!("  !!! Build with `cargo build --release -p touchmark` and run it again.");
    }
    println!();
    let sh = &report.shape;
    fields(&[
        ("build", s.build.to_owned()),
        (
            "cores",
            format!("{} (std::thread::available_parallelism)", s.cores),
        ),
        (
            "events",
            format!(
                "{} appended by {} concurrent tasks; log size {}",
                s.events, s.concurrency, sh.log_size
            ),
        ),
        (
            "entries",
            format!(
                "{:.0} bytes on average; {:.0} SHA-256 blocks each to build the tree \
                 (= {:.1} raw 64-byte hashes)",
                sh.mean_entry_bytes,
                sh.sha256_blocks_per_entry,
                sh.sha256_64b_equivalents_per_entry
            ),
        ),
        ("method", s.method.clone()),
        ("data", s.data.clone()),
    ]);

    println!(
        "\nRaw SHA-256, 64-byte inputs, one thread (sha2, as the log): {} hashes/s ({:.3} µs each)",
        rate(report.sha256_64b_per_s, 2),
        if report.sha256_64b_per_s > 0.0 {
            1e6 / report.sha256_64b_per_s
        } else {
            0.0
        }
    );

    println!();
    let mut table = Table::new(&[
        "phase",
        "entries",
        "seconds",
        "entries/s",
        "µs/entry",
        "CPU µs/entry",
        "÷ SHA-256 1 core",
        &format!("÷ SHA-256 {} cores", s.cores),
    ]);
    for (name, p) in [
        ("append (durable, group commit)", &report.append),
        ("sequence (tree, tiles, checkpoint)", &report.sequence),
        (
            "audit verify, cold (download+verify+replay)",
            &report.verify_cold,
        ),
        ("audit verify, warm cache", &report.verify_warm),
    ] {
        table.row(vec![
            name.into(),
            p.entries.to_string(),
            format!("{:.2}", p.seconds),
            rate(p.entries_per_s, 2),
            format!("{:.2}", p.us_per_entry),
            p.cpu_us_per_entry.map_or("-".into(), |v| format!("{v:.2}")),
            format!("{:.4}", p.of_sha256_one_core),
            format!("{:.4}", p.of_sha256_all_cores),
        ]);
    }
    table.print();
    println!("CPU µs/entry counts this whole process (during verification: the server too).");

    let pr = &report.provisioning;
    let t = &report.targets;
    println!(
        "\nProvisioning reference (bench provision, c={}, one round of {} units): {} units/s, \
         {:.1} µs/unit wall, {} CPU µs/unit",
        pr.concurrency,
        pr.units,
        rate(pr.units_per_s, 2),
        pr.us_per_unit,
        pr.cpu_us_per_unit.map_or("-".into(), |v| format!("{v:.0}"))
    );
    println!();
    let mut table = Table::new(&["target", "measured", "goal", "verdict"]);
    table.row(vec![
        "audit verify of 1,000,000 entries (cold, scaled)".into(),
        format!("{:.2} s", t.verify_1m_s),
        format!("< {} s", VERIFY_TARGET.as_secs()),
        met(t.verify_met).into(),
    ]);
    table.row(vec![
        "append µs/entry ÷ provisioning µs/unit".into(),
        percent(t.append_share),
        format!("< {}", percent(APPEND_SHARE_TARGET)),
        met(t.append_met).into(),
    ]);
    table.row(vec![
        "  same, CPU time".into(),
        t.append_cpu_share.map_or("-".into(), percent),
        "-".into(),
        "-".into(),
    ]);
    table.row(vec![
        "  append + sequence ÷ provisioning".into(),
        percent(t.append_and_sequence_share),
        "-".into(),
        "-".into(),
    ]);
    table.print();

    let v = &report.verification;
    println!(
        "\nVerified: {} events appended, {} in the store, {} replayed by the audit; failed \
         tests {} appended / {} counted; refusals {:?} appended / {:?} counted; {} violations.",
        v.appended,
        v.event_count,
        v.events_replayed,
        v.failed_tests.0,
        v.failed_tests.1,
        v.refusals.0,
        v.refusals.1,
        v.violations
    );
}

/// Prints the result of `bench affected`.
fn print_affected(r: &touchmark_bench::affected::AffectedReport) {
    println!("Touchmark affected-units benchmark");
    if r.build == "debug" {
        println!();
        println!("  !!! DEBUG BUILD: these figures say nothing about production speed.");
    }
    println!();
    fields(&[
        ("build", r.build.to_owned()),
        ("store", r.backend.to_owned()),
        (
            "lineage",
            format!(
                "{} units provisioned with 1.0.0, {} of them updated to 1.1.0 since",
                r.units, r.updated
            ),
        ),
        ("fill", format!("{:.1} s", r.fill_seconds)),
        (
            "affected",
            format!("{} units (checked every round)", r.affected),
        ),
        (
            "answer",
            format!(
                "median {} ms, slowest {} ms, rounds {:?} (every lot counted, the first 1,000 \
                 serials)",
                ms(r.query.median_ms),
                ms(r.query.max_ms),
                r.query.rounds_ms.iter().map(|m| ms(*m)).collect::<Vec<_>>()
            ),
        ),
        (
            "every serial",
            format!(
                "median {} ms, slowest {} ms, rounds {:?} (pages of 10,000)",
                ms(r.walk.median_ms),
                ms(r.walk.max_ms),
                r.walk.rounds_ms.iter().map(|m| ms(*m)).collect::<Vec<_>>()
            ),
        ),
        (
            "target",
            match r.met {
                Some(true) => format!("met: median <= {} ms", ms(r.goal_ms)),
                Some(false) => format!("MISSED: median > {} ms", ms(r.goal_ms)),
                None => "not judged: fewer units than the target's 1,000,000".into(),
            },
        ),
    ]);
}

/// Prints the result of `bench intake`.
fn print_intake(r: &touchmark_bench::intake::IntakeReport) {
    println!("Touchmark vulnerability intake benchmark");
    if r.build == "debug" {
        println!();
        println!("  !!! DEBUG BUILD: these figures say nothing about production speed.");
    }
    println!();
    let admin = |a: &touchmark_bench::intake::AdminTraffic| {
        format!(
            "{} requests, p50 {} ms, p99 {} ms, slowest {} ms",
            a.requests,
            ms(a.p50_ms),
            ms(a.p99_ms),
            ms(a.max_ms)
        )
    };
    let f = &r.flood;
    fields(&[
        ("build", r.build.to_owned()),
        ("server", r.server.clone()),
        ("phases", format!("{} s each", r.seconds)),
        ("admins alone", admin(&r.baseline)),
        ("admins, flood", admin(&r.during_flood)),
        (
            "admin p99 ratio",
            format!("{:.2} (flood / alone)", r.admin_p99_ratio),
        ),
        (
            "flood",
            format!(
                "{:.0}/s offered, {:.0}/s sent ({} sent, {} not sent at their time)",
                f.offered_per_s, f.sent_per_s, f.sent, f.not_sent
            ),
        ),
        (
            "answers",
            format!(
                "{} accepted (the limit allows {} at most), {} limited with 429, p50 {} ms, \
                 p99 {} ms",
                f.accepted,
                f.allowed_at_most,
                f.limited,
                ms(f.limited_p50_ms),
                ms(f.limited_p99_ms)
            ),
        ),
    ]);
}
