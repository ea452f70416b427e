//! `touchmark bench log`: the audit log's cost, append to verification.
//!
//! A fresh installation with the SQLite store (WAL, `synchronous=FULL`, group commit) and an
//! in-process server. The product, factory and order are created through the authority, as the
//! API would, so the log starts like a real one. Then:
//!
//! 1. **append**: N `unit.refused` / `unit.test_failed` events through
//!    [`Store::record_rejection`], one event per call, from many concurrent tasks; each call
//!    returns only once its transaction is durable. The server is bound but not yet running, so
//!    its background sequencer does not compete with the appends: they are measured alone.
//! 2. **sequence**: [`Log::sequence_once`](touchmark_authority::log::Log::sequence_once) until a
//!    signed checkpoint covers every event (tree, tiles, checkpoint, in ≤ 100,000-entry steps).
//! 3. **verify**: the server runs; `audit verify` downloads the log over HTTPS, recomputes every
//!    leaf, tile and the root, and replays the events; once cold, once from the warm cache. The
//!    report must show no violation and exactly the counts appended.
//!
//! Beside them: the machine's raw SHA-256 rate on 64-byte inputs (one thread, the `sha2` crate
//! the log uses), and a short `bench provision` run at concurrency 32, to put the append cost
//! per entry next to the provisioning cost per unit.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Args;
use serde::Serialize;
use time::OffsetDateTime;
use touchmark_authority::log::LogConfig;
use touchmark_authority::{InitOptions, Installation};
use touchmark_core::api::{CreateFactory, CreateOrder, CreateProduct};
use touchmark_core::event::{Actor, Event, EventBody, Sha256Hash};
use touchmark_core::{
    Clock, ErrorCode, FactoryId, OrderId, ProductId, Serial, StationId, SystemClock,
};
use touchmark_pki::Passphrase;
use touchmark_server::Server;
use touchmark_store::{Rejection, Store};
use touchmark_store_sqlite::SqliteStore;

use super::{Plan, progress};
use crate::commands::audit::{self, VerifyArgs};
use crate::output::{Table, fields};

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

const ORDER: &str = "PO-BENCH-LOG";
const PRODUCT: &str = "bench-log-sensor";
const FACTORY: &str = "bench-log-cm";
const QUOTA: u64 = 1_000_000;
/// Stations named in the events (they need not exist for a refusal to be recorded).
const STATIONS: usize = 32;
const TEMP_PASSPHRASE: &str = "touchmark bench log, temporary installation";
/// The most events one run may append.
const MAX_EVENTS: u64 = 100_000_000;
/// The concurrency of the provisioning reference.
const PROVISION_CONCURRENCY: usize = 32;
/// `audit verify` of a 1,000,000-event log must take less than this.
const VERIFY_TARGET: Duration = Duration::from_secs(10);
/// Appending must cost less than this share of provisioning's time per unit.
const APPEND_SHARE_TARGET: f64 = 0.10;

/// The resolved settings of one run.
#[derive(Debug, Clone)]
struct LogPlan {
    events: u64,
    concurrency: usize,
    sha_time: Duration,
    quick: bool,
    /// The provisioning reference (one concurrency, one round).
    provision: Plan,
}

impl LogPlan {
    fn from_args(args: &LogArgs) -> anyhow::Result<Self> {
        let events = args
            .events
            .unwrap_or(if args.quick { 20_000 } else { 1_000_000 });
        if events == 0 || events > MAX_EVENTS {
            anyhow::bail!("--events must be 1 to {MAX_EVENTS}");
        }
        if args.concurrency == 0 || args.concurrency > 4096 {
            anyhow::bail!("--concurrency must be 1 to 4096");
        }
        Ok(Self {
            events,
            concurrency: args.concurrency,
            sha_time: Duration::from_millis(if args.quick { 300 } else { 1000 }),
            quick: args.quick,
            provision: Plan {
                concurrencies: vec![PROVISION_CONCURRENCY],
                rounds: 1,
                units_per_round: None,
                round_target: Duration::from_secs(if args.quick { 1 } else { 3 }),
                ceiling_time: Duration::from_millis(if args.quick { 50 } else { 100 }),
                quick: args.quick,
                data: None,
                backend: crate::commands::bench::Backend::Sqlite,
                cfssl: false,
            },
        })
    }
}

/// Runs `bench log`.
///
/// # Errors
/// When a step fails, or the verification does not find exactly what was appended.
pub async fn run(args: LogArgs) -> anyhow::Result<()> {
    let plan = LogPlan::from_args(&args)?;
    let report = measure(&plan).await?;
    if args.json {
        crate::output::json(&report)
    } else {
        report.print();
        Ok(())
    }
}

/// One timed phase.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Phase {
    /// Entries the phase handled.
    pub entries: u64,
    /// Wall-clock time.
    pub seconds: f64,
    /// Entries per second.
    pub entries_per_s: f64,
    /// Wall-clock microseconds per entry (the inverse of the rate).
    pub us_per_entry: f64,
    /// CPU time of this whole process per entry, microseconds (Linux only).
    pub cpu_us_per_entry: Option<f64>,
    /// Entries/s ÷ raw SHA-256 (64-byte inputs) per second on one thread.
    pub of_sha256_one_core: f64,
    /// Entries/s ÷ (raw SHA-256 per second × cores).
    pub of_sha256_all_cores: f64,
}

impl Phase {
    fn new(entries: u64, elapsed: Duration, cpu: Option<Duration>, sha: f64, cores: usize) -> Self {
        let seconds = elapsed.as_secs_f64();
        let entries_per_s = if seconds > 0.0 {
            entries as f64 / seconds
        } else {
            0.0
        };
        let ratio = |d: f64| if d > 0.0 { entries_per_s / d } else { 0.0 };
        Self {
            entries,
            seconds,
            entries_per_s,
            us_per_entry: if entries > 0 {
                seconds * 1e6 / entries as f64
            } else {
                0.0
            },
            cpu_us_per_entry: cpu
                .filter(|_| entries > 0)
                .map(|c| c.as_secs_f64() * 1e6 / entries as f64),
            of_sha256_one_core: ratio(sha),
            of_sha256_all_cores: ratio(sha * cores as f64),
        }
    }
}

/// How the run was set up.
#[derive(Debug, Serialize)]
pub(crate) struct LogSetup {
    /// `release`, or `debug` (figures meaningless).
    pub build: &'static str,
    /// `std::thread::available_parallelism()`.
    pub cores: usize,
    /// Events appended.
    pub events: u64,
    /// Concurrent appending tasks.
    pub concurrency: usize,
    /// `--quick`.
    pub quick: bool,
    /// Where the installation lived.
    pub data: String,
    /// What was measured, and how.
    pub method: String,
}

/// The log's size and shape.
#[derive(Debug, Serialize)]
pub(crate) struct Shape {
    /// Entries in the verified checkpoint (the appended events plus the setup's).
    pub log_size: u64,
    /// Mean canonical size of the appended events, bytes.
    pub mean_entry_bytes: f64,
    /// SHA-256 compression-function calls per entry to build the tree: the leaf hash
    /// (1 + bytes, padded) plus one interior node (65 bytes: 2 blocks).
    pub sha256_blocks_per_entry: f64,
    /// The same work in raw 64-byte hashes (2 blocks each, with the padding block).
    pub sha256_64b_equivalents_per_entry: f64,
}

/// The provisioning reference.
#[derive(Debug, Serialize)]
pub(crate) struct ProvisionReference {
    /// Concurrent stations.
    pub concurrency: usize,
    /// Units in the timed round.
    pub units: usize,
    /// Units per second.
    pub units_per_s: f64,
    /// Wall-clock microseconds per unit (the inverse of the rate).
    pub us_per_unit: f64,
    /// CPU time of this whole process per unit, microseconds.
    pub cpu_us_per_unit: Option<f64>,
}

/// What the audit found, against what was appended.
#[derive(Debug, Serialize)]
pub(crate) struct LogVerification {
    /// Events appended by the benchmark.
    pub appended: u64,
    /// Events in the store at the end.
    pub event_count: u64,
    /// Events the audit replayed (cold run).
    pub events_replayed: u64,
    /// `unit.test_failed` events appended, and counted by the audit for the order.
    pub failed_tests: (u64, u64),
    /// `unit.refused` events appended by reason, and counted by the audit.
    pub refusals: (BTreeMap<String, u64>, BTreeMap<String, u64>),
    /// Violations the audits reported (cold + warm).
    pub violations: usize,
}

/// Whether the targets were met.
#[derive(Debug, Serialize)]
pub(crate) struct Targets {
    /// The cold verification time scaled to 1,000,000 entries, seconds.
    pub verify_1m_s: f64,
    /// Under 10 s.
    pub verify_met: bool,
    /// Append µs/entry ÷ provisioning µs/unit (wall clock).
    pub append_share: f64,
    /// Append CPU µs/entry ÷ provisioning CPU µs/unit.
    pub append_cpu_share: Option<f64>,
    /// Appending plus sequencing, µs/entry ÷ provisioning µs/unit (wall clock).
    pub append_and_sequence_share: f64,
    /// `append_share` under 10 %.
    pub append_met: bool,
}

/// The whole result.
#[derive(Debug, Serialize)]
pub(crate) struct LogReport {
    /// How the run was set up.
    pub setup: LogSetup,
    /// Raw SHA-256 of 64-byte inputs, one thread, per second.
    pub sha256_64b_per_s: f64,
    /// The log's size and shape.
    pub shape: Shape,
    /// Durable appends through `Store::record_rejection`.
    pub append: Phase,
    /// Tree, tiles and signed checkpoints over the appended entries.
    pub sequence: Phase,
    /// `audit verify` from an empty cache: download, recompute, replay.
    pub verify_cold: Phase,
    /// `audit verify` again from the warm cache (fresh state file).
    pub verify_warm: Phase,
    /// `bench provision`, one round at concurrency 32, in the same run.
    pub provisioning: ProvisionReference,
    /// The targets.
    pub targets: Targets,
    /// The cross-check.
    pub verification: LogVerification,
}

/// CPU time (user + system) this process has used, from `/proc/self/stat` (Linux).
fn process_cpu() -> Option<Duration> {
    const USER_HZ: u64 = 100;
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(Duration::from_millis((utime + stime) * 1000 / USER_HZ))
}

/// A stopwatch for wall-clock and process CPU time.
struct Watch {
    start: Instant,
    cpu: Option<Duration>,
}

impl Watch {
    fn start() -> Self {
        Self {
            cpu: process_cpu(),
            start: Instant::now(),
        }
    }

    fn stop(&self) -> (Duration, Option<Duration>) {
        let elapsed = self.start.elapsed();
        let cpu = self
            .cpu
            .zip(process_cpu())
            .map(|(a, b)| b.saturating_sub(a));
        (elapsed, cpu)
    }
}

/// Raw SHA-256 of 64-byte inputs on one thread, per second: `sha2`, through
/// `Sha256Hash::of`, the same crate and build as the log's `leaf_hash` and `node_hash`.
fn sha256_rate(budget: Duration) -> f64 {
    let mut input = [0x5au8; 64];
    let start = Instant::now();
    let mut done: u64 = 0;
    loop {
        for _ in 0..1024 {
            let hash = Sha256Hash::of(black_box(&input));
            input[..32].copy_from_slice(&hash.0);
        }
        done += 1024;
        let elapsed = start.elapsed();
        if elapsed >= budget {
            black_box(input);
            return done as f64 / elapsed.as_secs_f64();
        }
    }
}

/// What the `i`-th appended event is: a failed test, or a refusal with this reason.
fn kind_of(i: u64) -> Option<ErrorCode> {
    match i % 10 {
        0..=2 => None,
        3..=5 => Some(ErrorCode::QuotaExhausted),
        6 | 7 => Some(ErrorCode::SerialConflict),
        8 => Some(ErrorCode::KeyReused),
        _ => Some(ErrorCode::CsrInvalid),
    }
}

/// The counts `n` appended events must replay to.
fn expected_counts(n: u64) -> (u64, BTreeMap<String, u64>) {
    let mut failed = 0;
    let mut refusals = BTreeMap::new();
    // Every 10 events repeat the same mix.
    for i in 0..10.min(n) {
        let times = (n - i).div_ceil(10);
        match kind_of(i) {
            None => failed += times,
            Some(code) => *refusals.entry(code.as_str().to_owned()).or_insert(0) += times,
        }
    }
    (failed, refusals)
}

/// The identifiers the events name.
struct Ids {
    product: ProductId,
    order: OrderId,
    factory: FactoryId,
    stations: Vec<StationId>,
}

impl Ids {
    fn new() -> anyhow::Result<Self> {
        let stations = (0..STATIONS)
            .map(|s| StationId::parse(&format!("bench-line-{s:03}")))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| anyhow::anyhow!("station id: {e}"))?;
        Ok(Self {
            product: ProductId::parse(PRODUCT).map_err(|e| anyhow::anyhow!("product id: {e}"))?,
            order: OrderId::parse(ORDER).map_err(|e| anyhow::anyhow!("order id: {e}"))?,
            factory: FactoryId::parse(FACTORY).map_err(|e| anyhow::anyhow!("factory id: {e}"))?,
            stations,
        })
    }

    /// The `i`-th rejection: distinct serials, with the hashes a real refusal carries. Only the
    /// event is recorded: this measures the log's append, not the test-record table.
    fn rejection(&self, i: u64, at: OffsetDateTime) -> anyhow::Result<Rejection> {
        let serial = Serial::parse(&format!("SN-{i:09}"))
            .map_err(|e| anyhow::anyhow!("serial of event {i}: {e}"))?;
        let station = self.stations[(i % STATIONS as u64) as usize].clone();
        let pubkey = Sha256Hash::of(format!("bench pubkey {i}").as_bytes());
        let test = Sha256Hash::of(format!("bench test record {i}").as_bytes());
        let (order, row_station, row_serial) =
            (self.order.clone(), station.clone(), serial.clone());
        let body = match kind_of(i) {
            None => EventBody::TestFailed {
                order: self.order.clone(),
                factory: self.factory.clone(),
                station,
                serial,
                pubkey_sha256: Some(pubkey),
                test_sha256: test,
                reason: ErrorCode::TestFailed,
            },
            Some(reason) => EventBody::UnitRefused {
                order: self.order.clone(),
                factory: Some(self.factory.clone()),
                station,
                serial: Some(serial),
                // An invalid CSR has no public key to name.
                pubkey_sha256: (reason != ErrorCode::CsrInvalid).then_some(pubkey),
                test_sha256: Some(test),
                reason,
            },
        };
        Ok(Rejection {
            event: Event::new(at, body),
            product: self.product.clone(),
            order,
            station: row_station,
            serial: Some(row_serial),
            test: None,
            failed_unit: false,
        })
    }
}

/// Appends `n` events from `concurrency` tasks, each a durable commit before it returns.
async fn append(store: &Arc<dyn Store>, n: u64, concurrency: usize) -> anyhow::Result<()> {
    let ids = Arc::new(Ids::new()?);
    let next = Arc::new(AtomicU64::new(0));
    let ticker = tokio::spawn({
        let next = Arc::clone(&next);
        async move {
            let start = Instant::now();
            loop {
                tokio::time::sleep(Duration::from_secs(5)).await;
                let done = next.load(Ordering::Relaxed).min(n);
                progress(format!(
                    "append: {done}/{n} ({:.0} events/s so far)",
                    done as f64 / start.elapsed().as_secs_f64()
                ));
            }
        }
    });
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (store, ids, next) = (Arc::clone(store), Arc::clone(&ids), Arc::clone(&next));
        tasks.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return Ok::<(), anyhow::Error>(());
                }
                let rejection = ids.rejection(i, OffsetDateTime::now_utc())?;
                store
                    .record_rejection(rejection)
                    .await
                    .map_err(|e| anyhow::anyhow!("appending event {i}: {e}"))?;
            }
        });
    }
    let mut result = Ok(());
    while let Some(joined) = tasks.join_next().await {
        let outcome = joined
            .map_err(|e| anyhow::anyhow!("an append task died: {e}"))
            .and_then(|r| r);
        if let Err(e) = outcome {
            // Stop the others too: the run is void.
            next.store(n, Ordering::Relaxed);
            if result.is_ok() {
                result = Err(e);
            }
        }
    }
    ticker.abort();
    result
}

/// The mean canonical size of up to 1,000 events from `start`.
async fn mean_entry_bytes(store: &Arc<dyn Store>, start: u64) -> anyhow::Result<f64> {
    let events = store.events(start, 1000).await?;
    if events.is_empty() {
        anyhow::bail!("no event at index {start}");
    }
    Ok(events.iter().map(|e| e.bytes.len() as f64).sum::<f64>() / events.len() as f64)
}

/// SHA-256 blocks (compression calls) for one entry of `bytes`: the leaf hash of 1 + bytes,
/// padded with at least 9 bytes, and one 65-byte interior node (2 blocks).
fn blocks_per_entry(bytes: f64) -> f64 {
    ((1.0 + bytes + 9.0) / 64.0).ceil() + 2.0
}

/// The log under test: the installation, the server (bound, started later), and its state.
struct Setup {
    temp: tempfile::TempDir,
    dir: std::path::PathBuf,
    verifier: String,
    server: Server,
}

async fn set_up() -> anyhow::Result<Setup> {
    let temp = tempfile::Builder::new()
        .prefix("touchmark-bench-log-")
        .tempdir()
        .context("cannot create a temporary directory")?;
    let dir = temp.path().join("data");
    let passphrase =
        Passphrase::new(TEMP_PASSPHRASE.into()).map_err(|e| anyhow::anyhow!("passphrase: {e}"))?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let options = InitOptions {
        organization: "Touchmark Bench".into(),
        hosts: vec!["localhost".into(), "127.0.0.1".into()],
        log_origin: "bench.touchmark.local/log".into(),
    };
    let installation = Installation::init(&dir, &passphrase, &options, clock.now())
        .with_context(|| format!("cannot create an installation in {}", dir.display()))?;
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&Installation::database_path(&dir))?);
    installation.claim(store.as_ref(), clock.now()).await?;
    let server = Server::bind(
        "127.0.0.1:0".parse().context("loopback address")?,
        &installation,
        store,
        clock,
        LogConfig::default(),
    )
    .await?;
    let authority = server.authority();
    authority
        .create_product(
            Actor::System,
            CreateProduct {
                id: Some(PRODUCT.into()),
                name: "Bench Log Sensor".into(),
                organization: "Acme".into(),
                common_name: "Acme Sensor".into(),
                hw_type_oid: Some("1.3.6.1.4.1.99999.1".into()),
                crl_url: None,
                ocsp_url: None,
                cert_not_after: None,
            }
            .try_into()?,
        )
        .await
        .context("cannot create the product")?;
    authority
        .create_factory(
            Actor::System,
            CreateFactory {
                id: Some(FACTORY.into()),
                name: "Bench Log CM".into(),
            }
            .try_into()?,
        )
        .await
        .context("cannot create the factory")?;
    authority
        .create_order(
            Actor::System,
            CreateOrder {
                id: Some(ORDER.into()),
                product: PRODUCT.into(),
                factory: FACTORY.into(),
                quota: QUOTA,
                serial_range: None,
                serial_pattern: None,
                not_before: None,
                not_after: None,
                open: true,
            }
            .try_into()?,
        )
        .await
        .context("cannot create the order")?;
    Ok(Setup {
        temp,
        dir,
        verifier: installation.log_verifier().to_string(),
        server,
    })
}

/// Runs `audit verify` against `url` with a fresh state file, and the cache `cache`.
async fn verify(
    url: &str,
    (dir, key): (&Path, &str),
    state: &Path,
    cache: &Path,
) -> anyhow::Result<(audit::Report, Duration, Option<Duration>)> {
    let args = VerifyArgs {
        source: url.to_owned(),
        key: key.to_owned(),
        state: state.to_owned(),
        cache: Some(cache.to_owned()),
        trust: crate::cli::RootCaArgs::of_installation(dir),
        json: false,
        quiet: true,
    };
    let watch = Watch::start();
    let report = audit::verify(&args, None).await?;
    let (elapsed, cpu) = watch.stop();
    report
        .verdict()
        .context("the audit of the benchmark's log found violations")?;
    Ok((report, elapsed, cpu))
}

/// Checks that an audit found exactly what was appended.
fn check(
    report: &audit::Report,
    size: u64,
    failed: u64,
    refusals: &BTreeMap<String, u64>,
) -> anyhow::Result<()> {
    let Some(order) = report.orders.get(ORDER) else {
        anyhow::bail!("the audit does not report order {ORDER}: the figures are void");
    };
    if report.checkpoint.size != size
        || report.events != size
        || order.failed_tests != failed
        || &order.refusals != refusals
        || order.issued != 0
        || order.quota_history != [QUOTA]
    {
        anyhow::bail!(
            "the audit's counts do not match what was appended, the figures are void: log size \
             {size}, checkpoint {}, replayed {}; failed tests {failed} appended, {} counted; \
             refusals {refusals:?} appended, {:?} counted; issued {} (expected 0); quota {:?}",
            report.checkpoint.size,
            report.events,
            order.failed_tests,
            order.refusals,
            order.issued,
            order.quota_history
        );
    }
    Ok(())
}

/// Runs the whole benchmark.
async fn measure(plan: &LogPlan) -> anyhow::Result<LogReport> {
    if cfg!(debug_assertions) {
        progress("WARNING: this is a DEBUG build; its figures say nothing about production speed");
    }
    let cores = std::thread::available_parallelism().map_or(1, usize::from);

    progress("measuring raw SHA-256 on 64-byte inputs (one thread)");
    let sha_time = plan.sha_time;
    let sha = tokio::task::spawn_blocking(move || sha256_rate(sha_time))
        .await
        .map_err(|e| anyhow::anyhow!("the SHA-256 measurement died: {e}"))?;

    progress("setting up an installation, its order and a server (not yet serving)");
    let setup = set_up().await?;
    let store = Arc::clone(setup.server.store());
    let log = Arc::clone(setup.server.log());
    let base = store.event_count().await?;

    progress(format!(
        "appending {} events from {} tasks, each a durable commit",
        plan.events, plan.concurrency
    ));
    let watch = Watch::start();
    append(&store, plan.events, plan.concurrency).await?;
    let (elapsed, cpu) = watch.stop();
    let append = Phase::new(plan.events, elapsed, cpu, sha, cores);
    let size = store.event_count().await?;
    if size != base + plan.events {
        anyhow::bail!(
            "the store holds {size} events after appending {} to {base}",
            plan.events
        );
    }

    progress("sequencing: tree, tiles and signed checkpoints");
    let before = log.latest().map_or(0, |s| s.size());
    let watch = Watch::start();
    loop {
        match log.sequence_once(OffsetDateTime::now_utc()).await? {
            Some(n) if n < size => {}
            _ => break,
        }
    }
    let (elapsed, cpu) = watch.stop();
    let signed = log.latest().map_or(0, |s| s.size());
    if signed != size {
        anyhow::bail!("the log signed a checkpoint of size {signed}, not {size}");
    }
    let sequence = Phase::new(size - before, elapsed, cpu, sha, cores);

    let Setup {
        temp,
        dir,
        verifier,
        server,
    } = setup;
    let addr = server.local_addr()?;
    let (shutdown, stop) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server.run(async {
        let _ = stop.await;
    }));
    let installation = (dir.as_path(), verifier.as_str());
    let url = format!("https://127.0.0.1:{}", addr.port());
    let audit_dir = temp.path().join("audit");
    std::fs::create_dir_all(&audit_dir)
        .with_context(|| format!("cannot create {}", audit_dir.display()))?;
    let (failed, refusals) = expected_counts(plan.events);

    progress(format!(
        "audit verify over HTTPS, cold cache: {size} entries"
    ));
    let cache = audit_dir.join("cache");
    let result = verify(&url, installation, &audit_dir.join("cold.state"), &cache).await;
    let cold = match result {
        Ok(cold) => cold,
        Err(e) => {
            let _ = shutdown.send(());
            let _ = serving.await;
            return Err(e);
        }
    };
    check(&cold.0, size, failed, &refusals)?;
    progress("audit verify again, warm cache (a fresh state file)");
    let warm = verify(&url, installation, &audit_dir.join("warm.state"), &cache).await;
    let _ = shutdown.send(());
    let _ = serving.await;
    let warm = warm?;
    check(&warm.0, size, failed, &refusals)?;
    let verify_cold = Phase::new(size, cold.1, cold.2, sha, cores);
    let verify_warm = Phase::new(size, warm.1, warm.2, sha, cores);

    let mean_bytes = mean_entry_bytes(&store, base).await?;
    let blocks = blocks_per_entry(mean_bytes);
    drop(log);
    drop(store);
    let data = format!("{} (temporary, deleted at the end)", dir.display());
    drop(temp);

    progress(format!(
        "provisioning reference: `bench provision`, one round at c={PROVISION_CONCURRENCY}"
    ));
    let reference = super::provision(&plan.provision).await?;
    let Some(series) = reference.provisioning.first() else {
        anyhow::bail!("the provisioning reference measured nothing");
    };
    let m = &series.median;
    let provisioning = ProvisionReference {
        concurrency: series.concurrency,
        units: series.units_per_round,
        units_per_s: m.units_per_s,
        us_per_unit: if m.units_per_s > 0.0 {
            1e6 / m.units_per_s
        } else {
            0.0
        },
        cpu_us_per_unit: m.cpu_us_per_unit,
    };
    let share = |a: f64, b: f64| if b > 0.0 { a / b } else { f64::INFINITY };
    let append_share = share(append.us_per_entry, provisioning.us_per_unit);
    let verify_1m_s = verify_cold.seconds * 1e6 / size as f64;
    let targets = Targets {
        verify_1m_s,
        verify_met: verify_1m_s < VERIFY_TARGET.as_secs_f64(),
        append_share,
        append_cpu_share: append
            .cpu_us_per_entry
            .zip(provisioning.cpu_us_per_unit)
            .map(|(a, b)| share(a, b)),
        append_and_sequence_share: share(
            append.us_per_entry + sequence.us_per_entry,
            provisioning.us_per_unit,
        ),
        append_met: append_share < APPEND_SHARE_TARGET,
    };

    Ok(LogReport {
        setup: LogSetup {
            build: if cfg!(debug_assertions) {
                "debug"
            } else {
                "release"
            },
            cores,
            events: plan.events,
            concurrency: plan.concurrency,
            quick: plan.quick,
            data,
            method: "in-process; appends through Store::record_rejection (SQLite WAL, \
                     synchronous=FULL, group commit) while the server is bound but not serving, \
                     so its background sequencer does not run during the appends; sequencing \
                     then timed alone; audit verify over HTTPS (h2) from the in-process server, \
                     which shares the cores"
                .into(),
        },
        sha256_64b_per_s: sha,
        shape: Shape {
            log_size: size,
            mean_entry_bytes: mean_bytes,
            sha256_blocks_per_entry: blocks,
            sha256_64b_equivalents_per_entry: blocks / 2.0,
        },
        append,
        sequence,
        verify_cold,
        verify_warm,
        provisioning,
        targets,
        verification: LogVerification {
            appended: plan.events,
            event_count: size,
            events_replayed: cold.0.events,
            failed_tests: (
                failed,
                cold.0.orders.get(ORDER).map_or(0, |o| o.failed_tests),
            ),
            refusals: (
                refusals,
                cold.0
                    .orders
                    .get(ORDER)
                    .map(|o| o.refusals.clone())
                    .unwrap_or_default(),
            ),
            violations: cold.0.violations.len() + warm.0.violations.len(),
        },
    })
}

fn rate(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

fn percent(v: f64) -> String {
    format!("{:.1}%", v * 100.0)
}

fn met(ok: bool) -> &'static str {
    if ok { "MET" } else { "NOT MET" }
}

impl LogReport {
    /// Prints the tables.
    pub fn print(&self) {
        let s = &self.setup;
        println!("Touchmark audit log benchmark");
        if s.build == "debug" {
            println!();
            println!("  !!! DEBUG BUILD: these figures say nothing about production speed.");
            println!("  !!! Build with `cargo build --release -p touchmark` and run it again.");
        }
        println!();
        let sh = &self.shape;
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
            rate(self.sha256_64b_per_s),
            if self.sha256_64b_per_s > 0.0 {
                1e6 / self.sha256_64b_per_s
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
            ("append (durable, group commit)", &self.append),
            ("sequence (tree, tiles, checkpoint)", &self.sequence),
            (
                "audit verify, cold (download+verify+replay)",
                &self.verify_cold,
            ),
            ("audit verify, warm cache", &self.verify_warm),
        ] {
            table.row(vec![
                name.into(),
                p.entries.to_string(),
                format!("{:.2}", p.seconds),
                rate(p.entries_per_s),
                format!("{:.2}", p.us_per_entry),
                p.cpu_us_per_entry.map_or("-".into(), |v| format!("{v:.2}")),
                format!("{:.4}", p.of_sha256_one_core),
                format!("{:.4}", p.of_sha256_all_cores),
            ]);
        }
        table.print();
        println!("CPU µs/entry counts this whole process (during verification: the server too).");

        let pr = &self.provisioning;
        let t = &self.targets;
        println!(
            "\nProvisioning reference (bench provision, c={}, one round of {} units): {} units/s, \
             {:.1} µs/unit wall, {} CPU µs/unit",
            pr.concurrency,
            pr.units,
            rate(pr.units_per_s),
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

        let v = &self.verification;
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
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn expected_counts_follow_the_mix() {
        let (failed, refusals) = expected_counts(23);
        // Indices 0-2, 10-12, 20-22 are failed tests.
        assert_eq!(failed, 9);
        assert_eq!(refusals["quota_exhausted"], 6);
        assert_eq!(refusals["serial_conflict"], 4);
        assert_eq!(refusals["key_reused"], 2);
        assert_eq!(refusals["csr_invalid"], 2);
        assert_eq!(failed + refusals.values().sum::<u64>(), 23);
        assert_eq!(expected_counts(1), (1, BTreeMap::new()));
    }

    /// The log benchmark, with tiny numbers, runs end to end in any build and verifies itself.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn quick_log_benchmark_runs_and_verifies_every_event() {
        let plan = LogPlan {
            events: 500,
            concurrency: 16,
            sha_time: Duration::from_millis(50),
            quick: true,
            provision: Plan {
                concurrencies: vec![4],
                rounds: 1,
                units_per_round: Some(20),
                round_target: Duration::from_secs(1),
                ceiling_time: Duration::from_millis(20),
                quick: true,
                data: None,
                backend: crate::commands::bench::Backend::Sqlite,
                cfssl: false,
            },
        };
        let report = measure(&plan).await.unwrap();
        assert!(report.sha256_64b_per_s > 0.0);
        for phase in [
            &report.append,
            &report.sequence,
            &report.verify_cold,
            &report.verify_warm,
        ] {
            assert!(phase.entries > 0 && phase.entries_per_s > 0.0);
            assert!(phase.us_per_entry > 0.0 && phase.of_sha256_one_core > 0.0);
        }
        assert_eq!(report.append.entries, 500);
        let v = &report.verification;
        // The setup's events (product, factory, order) come before the appended ones.
        assert!(v.event_count > 500);
        assert_eq!(report.shape.log_size, v.event_count);
        assert!(report.sequence.entries >= 500 && report.sequence.entries <= v.event_count);
        assert_eq!(v.events_replayed, v.event_count);
        assert_eq!(v.failed_tests.0, v.failed_tests.1);
        assert_eq!(v.refusals.0, v.refusals.1);
        assert_eq!(v.failed_tests.0 + v.refusals.0.values().sum::<u64>(), 500);
        assert_eq!(v.violations, 0);
        assert!(report.shape.mean_entry_bytes > 100.0);
        assert_eq!(report.provisioning.concurrency, 4);
        assert!(report.provisioning.us_per_unit > 0.0);
        assert!(report.targets.append_share > 0.0 && report.targets.verify_1m_s > 0.0);
    }
}
