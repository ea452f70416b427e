//! `log`: the audit log's cost, append to verification.
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
//! 3. **verify**: the server runs; [`touchmark_audit::verify`] downloads the log over HTTPS,
//!    recomputes every leaf, tile and the root, and replays the events; once cold, once from the
//!    warm cache. The report must show no violation and exactly the counts appended.
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

use serde::Serialize;
use time::OffsetDateTime;
use touchmark_audit::{Audit, Silent, Source};
use touchmark_authority::Installation;
use touchmark_core::event::{Event, EventBody, Sha256Hash};
use touchmark_core::{ErrorCode, FactoryId, OrderId, ProductId, Serial, StationId};
use touchmark_store::{Rejection, Store};
use touchmark_store_sqlite::SqliteStore;
use touchmark_tlog::note::NoteVerifier;

use crate::Progress;
use crate::cpu::Watch;
use crate::error::{Context as _, Error};
use crate::provision::{self, Backend, Plan};
use crate::setup::{self, Fixtures};

const ORDER: &str = "PO-BENCH-LOG";
/// The product, factory and order the appended events name.
const FIXTURES: Fixtures = Fixtures {
    product: "bench-log-sensor",
    product_name: "Bench Log Sensor",
    factory: "bench-log-cm",
    factory_name: "Bench Log CM",
    order: ORDER,
    quota: 1_000_000,
};
/// Stations named in the events (they need not exist for a refusal to be recorded).
const STATIONS: usize = 32;
/// The most events one run may append.
const MAX_EVENTS: u64 = 100_000_000;
/// The concurrency of the provisioning reference.
const PROVISION_CONCURRENCY: usize = 32;
/// `audit verify` of a 1,000,000-event log must take less than this.
pub const VERIFY_TARGET: Duration = Duration::from_secs(10);
/// Appending must cost less than this share of provisioning's time per unit.
pub const APPEND_SHARE_TARGET: f64 = 0.10;

/// What to measure, as `touchmark bench log` is asked: see [`LogPlan::new`].
#[derive(Debug, Clone)]
pub struct Options {
    /// Events to append [default: 1,000,000; 20,000 when quick].
    pub events: Option<u64>,
    /// Concurrent appending tasks; the store's group commit batches their transactions.
    pub concurrency: usize,
    /// A short run (20,000 events, shorter reference measurements).
    pub quick: bool,
}

/// The resolved settings of one run.
#[derive(Debug, Clone)]
pub struct LogPlan {
    events: u64,
    concurrency: usize,
    sha_time: Duration,
    quick: bool,
    /// The provisioning reference (one concurrency, one round).
    provision: Plan,
}

impl LogPlan {
    /// Checks `options` and resolves their defaults.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a setting out of range, named as the command line spells it.
    pub fn new(options: &Options) -> Result<Self, Error> {
        let events = options
            .events
            .unwrap_or(if options.quick { 20_000 } else { 1_000_000 });
        if events == 0 || events > MAX_EVENTS {
            return Err(Error::Invalid(format!(
                "--events must be 1 to {MAX_EVENTS}"
            )));
        }
        if options.concurrency == 0 || options.concurrency > 4096 {
            return Err(Error::Invalid("--concurrency must be 1 to 4096".into()));
        }
        Ok(Self {
            events,
            concurrency: options.concurrency,
            sha_time: Duration::from_millis(if options.quick { 300 } else { 1000 }),
            quick: options.quick,
            provision: Plan {
                concurrencies: vec![PROVISION_CONCURRENCY],
                rounds: 1,
                units_per_round: None,
                round_target: Duration::from_secs(if options.quick { 1 } else { 3 }),
                ceiling_time: Duration::from_millis(if options.quick { 50 } else { 100 }),
                quick: options.quick,
                keep: None,
                backend: Backend::Sqlite,
                cfssl: false,
                token: None,
            },
        })
    }
}

/// One timed phase.
#[derive(Debug, Clone, Serialize)]
pub struct Phase {
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
pub struct LogSetup {
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
pub struct Shape {
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
pub struct ProvisionReference {
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
pub struct LogVerification {
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
pub struct Targets {
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
pub struct LogReport {
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
    fn new() -> Result<Self, Error> {
        let stations = (0..STATIONS)
            .map(|s| StationId::parse(&format!("bench-line-{s:03}")))
            .collect::<Result<Vec<_>, _>>()
            .context("station id")?;
        Ok(Self {
            product: ProductId::parse(FIXTURES.product).context("product id")?,
            order: OrderId::parse(ORDER).context("order id")?,
            factory: FactoryId::parse(FIXTURES.factory).context("factory id")?,
            stations,
        })
    }

    /// The `i`-th rejection: distinct serials, with the hashes a real refusal carries. Only the
    /// event is recorded: this measures the log's append, not the test-record table.
    fn rejection(&self, i: u64, at: OffsetDateTime) -> Result<Rejection, Error> {
        let serial =
            Serial::parse(&format!("SN-{i:09}")).with_context(|| format!("serial of event {i}"))?;
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
            product: Some(self.product.clone()),
            order,
            station: row_station,
            serial: Some(row_serial),
            test: None,
            failed_unit: false,
        })
    }
}

/// Appends `n` events from `concurrency` tasks, each a durable commit before it returns.
async fn append(
    store: &Arc<dyn Store>,
    n: u64,
    concurrency: usize,
    progress: &Arc<dyn Progress>,
) -> Result<(), Error> {
    let ids = Arc::new(Ids::new()?);
    let next = Arc::new(AtomicU64::new(0));
    let ticker = tokio::spawn({
        let (next, progress) = (Arc::clone(&next), Arc::clone(progress));
        async move {
            let start = Instant::now();
            loop {
                tokio::time::sleep(Duration::from_secs(5)).await;
                let done = next.load(Ordering::Relaxed).min(n);
                progress.step(&format!(
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
                    return Ok::<(), Error>(());
                }
                let rejection = ids.rejection(i, OffsetDateTime::now_utc())?;
                store
                    .record_rejection(rejection)
                    .await
                    .with_context(|| format!("appending event {i}"))?;
            }
        });
    }
    let mut result = Ok(());
    while let Some(joined) = tasks.join_next().await {
        let outcome = joined
            .map_err(|_| Error::Died("an append task"))
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
async fn mean_entry_bytes(store: &Arc<dyn Store>, start: u64) -> Result<f64, Error> {
    let events = store.events(start, 1000).await.context("events")?;
    if events.is_empty() {
        return Err(Error::Void(format!("no event at index {start}")));
    }
    Ok(events.iter().map(|e| e.bytes.len() as f64).sum::<f64>() / events.len() as f64)
}

/// SHA-256 blocks (compression calls) for one entry of `bytes`: the leaf hash of 1 + bytes,
/// padded with at least 9 bytes, and one 65-byte interior node (2 blocks).
fn blocks_per_entry(bytes: f64) -> f64 {
    ((1.0 + bytes + 9.0) / 64.0).ceil() + 2.0
}

/// Audits the log at `url`, trusting `root_ca`, with `key`, a fresh state file and the cache
/// `cache`; fails on any violation.
async fn verify(
    (url, root_ca): (&str, &Path),
    key: &NoteVerifier,
    state: &Path,
    cache: &Path,
) -> Result<(touchmark_audit::Report, Duration, Option<Duration>), Error> {
    let audit = Audit {
        source: Source::Https {
            url: url.to_owned(),
            root_ca: root_ca.to_owned(),
        },
        key: key.clone(),
        state: state.to_owned(),
        cache: Some(cache.to_owned()),
    };
    let watch = Watch::start();
    let report = touchmark_audit::verify(&audit, Arc::new(Silent))
        .await
        .context("audit verify")?;
    let (elapsed, cpu) = watch.stop();
    report
        .verdict()
        .context("the audit of the benchmark's log found violations")?;
    Ok((report, elapsed, cpu))
}

/// Checks that an audit found exactly what was appended.
fn check(
    report: &touchmark_audit::Report,
    size: u64,
    failed: u64,
    refusals: &BTreeMap<String, u64>,
) -> Result<(), Error> {
    let Some(order) = report.orders.get(ORDER) else {
        return Err(Error::Void(format!(
            "the audit does not report order {ORDER}: the figures are void"
        )));
    };
    if report.checkpoint.size != size
        || report.events != size
        || order.failed_tests != failed
        || &order.refusals != refusals
        || order.issued != 0
        || order.quota_history != [FIXTURES.quota]
    {
        return Err(Error::Void(format!(
            "the audit's counts do not match what was appended, the figures are void: log size \
             {size}, checkpoint {}, replayed {}; failed tests {failed} appended, {} counted; \
             refusals {refusals:?} appended, {:?} counted; issued {} (expected 0); quota {:?}",
            report.checkpoint.size,
            report.events,
            order.failed_tests,
            order.refusals,
            order.issued,
            order.quota_history
        )));
    }
    Ok(())
}

/// Runs the whole benchmark described by `plan`, telling `progress` about each long step.
///
/// # Errors
/// When a step fails, or the verification does not find exactly what was appended.
pub async fn run(plan: &LogPlan, progress: &Arc<dyn Progress>) -> Result<LogReport, Error> {
    if cfg!(debug_assertions) {
        progress
            .step("WARNING: this is a DEBUG build; its figures say nothing about production speed");
    }
    let cores = std::thread::available_parallelism().map_or(1, usize::from);

    progress.step("measuring raw SHA-256 on 64-byte inputs (one thread)");
    let sha_time = plan.sha_time;
    let sha = tokio::task::spawn_blocking(move || sha256_rate(sha_time))
        .await
        .map_err(|_| Error::Died("the SHA-256 measurement"))?;

    progress.step("setting up an installation, its order and a server (not yet serving)");
    let installed = setup::install(None, "touchmark-bench-log-")?;
    let database = Installation::database_path(&installed.dir);
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open(&database).context("cannot open the database")?);
    let server = setup::bind(&installed.installation, store).await?;
    FIXTURES.create(server.authority()).await?;
    let store = Arc::clone(server.store());
    let log = Arc::clone(server.log());
    let base = store.event_count().await.context("event count")?;

    progress.step(&format!(
        "appending {} events from {} tasks, each a durable commit",
        plan.events, plan.concurrency
    ));
    let watch = Watch::start();
    append(&store, plan.events, plan.concurrency, progress).await?;
    let (elapsed, cpu) = watch.stop();
    let append = Phase::new(plan.events, elapsed, cpu, sha, cores);
    let size = store.event_count().await.context("event count")?;
    if size != base + plan.events {
        return Err(Error::Void(format!(
            "the store holds {size} events after appending {} to {base}",
            plan.events
        )));
    }

    progress.step("sequencing: tree, tiles and signed checkpoints");
    let before = log.latest().map_or(0, |s| s.size());
    let watch = Watch::start();
    loop {
        match log
            .sequence_once(OffsetDateTime::now_utc())
            .await
            .context("sequencing")?
        {
            Some(n) if n < size => {}
            _ => break,
        }
    }
    let (elapsed, cpu) = watch.stop();
    let signed = log.latest().map_or(0, |s| s.size());
    if signed != size {
        return Err(Error::Void(format!(
            "the log signed a checkpoint of size {signed}, not {size}"
        )));
    }
    let sequence = Phase::new(size - before, elapsed, cpu, sha, cores);

    let key = installed.installation.log_verifier().clone();
    let root_ca = Installation::server_root_path(&installed.dir);
    let addr = server.local_addr().context("the server's address")?;
    let (shutdown, stop) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server.run(async {
        let _ = stop.await;
    }));
    let url = format!("https://127.0.0.1:{}", addr.port());
    let source = (url.as_str(), root_ca.as_path());
    let audit_dir = installed.dir.with_file_name("audit");
    std::fs::create_dir_all(&audit_dir)
        .with_context(|| format!("cannot create {}", audit_dir.display()))?;
    let (failed, refusals) = expected_counts(plan.events);

    progress.step(&format!(
        "audit verify over HTTPS, cold cache: {size} entries"
    ));
    let cache = audit_dir.join("cache");
    let result = verify(source, &key, &audit_dir.join("cold.state"), &cache).await;
    let cold = match result {
        Ok(cold) => cold,
        Err(e) => {
            let _ = shutdown.send(());
            let _ = serving.await;
            return Err(e);
        }
    };
    check(&cold.0, size, failed, &refusals)?;
    progress.step("audit verify again, warm cache (a fresh state file)");
    let warm = verify(source, &key, &audit_dir.join("warm.state"), &cache).await;
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
    let data = format!(
        "{} (temporary, deleted at the end)",
        installed.dir.display()
    );
    drop(installed);

    progress.step(&format!(
        "provisioning reference: `bench provision`, one round at c={PROVISION_CONCURRENCY}"
    ));
    let reference = provision::run(&plan.provision, progress).await?;
    let Some(series) = reference.provisioning.first() else {
        return Err(Error::Void(
            "the provisioning reference measured nothing".into(),
        ));
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
            provision: Plan::tiny(vec![4], Duration::from_millis(20)),
        };
        let progress: Arc<dyn Progress> = Arc::new(crate::Quiet);
        let report = run(&plan, &progress).await.unwrap();
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
