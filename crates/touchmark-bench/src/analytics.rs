//! `analytics`: an order's report (`touchmark report order PO`) over a large store of test
//! records, on SQLite or on PostgreSQL.
//!
//! A fresh installation, its store (SQLite in the installation's directory, or a fresh schema in
//! a PostgreSQL database, dropped at the end) and the product, factory and order created through
//! the authority, as the API would. Then:
//!
//! 1. **fill**: N test attempts written straight into `test_attempts`, in large transactions,
//!    the rows provisioning writes: each record is Touchmark's JSON, parsed and normalized by
//!    [`TestRecord`] (canonical text and its SHA-256), with its verdict, format, unit, order,
//!    station and time. The store's own trigger projects every record's steps and
//!    measurements, as it does for an attempt stored by provisioning. One unit in twenty fails
//!    its first test (a measurement beyond its high limit) and passes its retest. The attempts
//!    are spread over the last 24 hours from eight stations. They are not in the log
//!    (`event_index` is empty): the report does not read it.
//! 2. **report**: [`touchmark_analytics::report::order_report`] over the whole order, round by
//!    round, and over its last hour; every figure is the median of the rounds. Each report must
//!    count exactly the attempts and units written, with the yields they were written with, or
//!    the run fails instead of giving a number.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::json;
use time::OffsetDateTime;
use touchmark_core::OrderId;
use touchmark_core::clock::format_timestamp;
use touchmark_core::field::DatabaseUrl;
use touchmark_core::oversight::OrderReport;
use touchmark_core::testrecord::TestRecord;
use touchmark_store::{Store, Window};
use touchmark_store_postgres::ScratchSchema;
use touchmark_store_sqlite::SqliteStore;

use crate::Progress;
use crate::error::{Context as _, Error};
use crate::setup::{self, Fixtures};

const ORDER: &str = "PO-BENCH-ANALYTICS";
const PRODUCT: &str = "bench-analytics-sensor";
/// The product, factory and order the records are written under.
const FIXTURES: Fixtures = Fixtures {
    product: PRODUCT,
    product_name: "Bench Analytics Sensor",
    factory: "bench-analytics-cm",
    factory_name: "Bench Analytics CM",
    order: ORDER,
    quota: 100_000_000,
};
/// Stations the attempts are spread over (they need not exist for a report to read them).
const STATIONS: u64 = 8;
/// One unit in this many fails its first test.
const FAIL_EVERY: u64 = 20;
/// The fewest records one run may write (the last hour's report then still finds some).
const MIN_RECORDS: u64 = 1_000;
/// The most records one run may write.
const MAX_RECORDS: u64 = 10_000_000;
/// Records per transaction.
const BATCH: usize = 5_000;
/// The records of the target.
pub const TARGET_RECORDS: u64 = 1_000_000;
/// An order's report over [`TARGET_RECORDS`] test records must take at most this.
pub const REPORT_TARGET: Duration = Duration::from_millis(200);

/// What to measure, as `touchmark bench analytics` is asked: see [`AnalyticsPlan::new`].
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Test records to write [default: 1,000,000; 20,000 when quick].
    pub records: Option<u64>,
    /// Reports to time; every figure is the median [default: 5, 3 when quick].
    pub rounds: Option<usize>,
    /// A short run (20,000 records, 3 rounds).
    pub quick: bool,
    /// Keep the records in a fresh schema of this PostgreSQL database instead of SQLite.
    pub database: Option<DatabaseUrl>,
}

/// The resolved settings of one run.
#[derive(Debug, Clone)]
pub struct AnalyticsPlan {
    records: u64,
    rounds: usize,
    database: Option<DatabaseUrl>,
}

impl AnalyticsPlan {
    /// Checks `options` and resolves their defaults.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a setting out of range, named as the command line spells it.
    pub fn new(options: &Options) -> Result<Self, Error> {
        let records = options.records.unwrap_or(if options.quick {
            20_000
        } else {
            TARGET_RECORDS
        });
        if !(MIN_RECORDS..=MAX_RECORDS).contains(&records) {
            return Err(Error::Invalid(format!(
                "--records must be {MIN_RECORDS} to {MAX_RECORDS}"
            )));
        }
        let rounds = options.rounds.unwrap_or(if options.quick { 3 } else { 5 });
        if rounds == 0 || rounds > 100 {
            return Err(Error::Invalid("--rounds must be 1 to 100".into()));
        }
        Ok(Self {
            records,
            rounds,
            database: options.database.clone(),
        })
    }
}

/// The settings a run had.
#[derive(Debug, Clone, Serialize)]
pub struct AnalyticsSetup {
    /// `release` or `debug`.
    pub build: &'static str,
    /// The store: `sqlite` or `postgresql`.
    pub backend: &'static str,
    /// Where the records were kept (a database URL without its password).
    pub data: String,
    /// Test attempts written.
    pub records: u64,
    /// Units they tested.
    pub units: u64,
    /// Numeric measurements per record.
    pub measurements_per_record: u64,
    /// Reports timed per figure.
    pub rounds: usize,
}

/// Timings of one kind of report, in milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Timing {
    /// The median.
    pub median_ms: f64,
    /// The fastest.
    pub min_ms: f64,
    /// The slowest.
    pub max_ms: f64,
    /// Every round, in order.
    pub rounds_ms: Vec<f64>,
}

impl Timing {
    pub(crate) fn of(mut rounds: Vec<Duration>) -> Self {
        let ms: Vec<f64> = rounds.iter().map(|d| d.as_secs_f64() * 1e3).collect();
        rounds.sort();
        let at = |i: usize| rounds.get(i).map_or(0.0, |d| d.as_secs_f64() * 1e3);
        Self {
            median_ms: median(&rounds),
            min_ms: at(0),
            max_ms: at(rounds.len().saturating_sub(1)),
            rounds_ms: ms,
        }
    }
}

/// The median of sorted `values`, in milliseconds.
fn median(sorted: &[Duration]) -> f64 {
    let n = sorted.len();
    if n == 0 {
        return 0.0;
    }
    let ms = |i: usize| sorted[i].as_secs_f64() * 1e3;
    if n % 2 == 1 {
        ms(n / 2)
    } else {
        (ms(n / 2 - 1) + ms(n / 2)) / 2.0
    }
}

/// What the reports counted, against what was written.
#[derive(Debug, Clone, Serialize)]
pub struct AnalyticsVerification {
    /// Attempts counted by the whole-order report / written.
    pub attempts: (u64, u64),
    /// Units counted / written.
    pub units: (u64, u64),
    /// First-pass yield reported / written.
    pub first_pass_yield: (Option<f64>, f64),
    /// Final yield reported / written.
    pub final_yield: (Option<f64>, f64),
    /// Values of the measurement `rf_power/tx_dbm` counted / written.
    pub tx_dbm_values: (u64, u64),
    /// Attempts counted by the last hour's report.
    pub last_hour_attempts: u64,
}

/// The target and whether it was met.
#[derive(Debug, Clone, Serialize)]
pub struct AnalyticsTarget {
    /// The goal, milliseconds.
    pub report_goal_ms: f64,
    /// The median whole-order report, milliseconds.
    pub report_ms: f64,
    /// Whether the median met the goal; `None` under [`TARGET_RECORDS`] records (the run is
    /// not at the target's scale).
    pub met: Option<bool>,
}

/// The result of `touchmark bench analytics`.
#[derive(Debug, Clone, Serialize)]
pub struct AnalyticsReport {
    /// The settings.
    pub setup: AnalyticsSetup,
    /// Writing the records (and the trigger's steps and measurements), seconds.
    pub fill_seconds: f64,
    /// Records written per second.
    pub fill_records_per_s: f64,
    /// The order's report over all its records.
    pub report: Timing,
    /// The order's report over its last hour.
    pub last_hour_report: Timing,
    /// The target.
    pub target: AnalyticsTarget,
    /// What the reports counted.
    pub verification: AnalyticsVerification,
}

/// A deterministic stream of uniform values in `[0, 1)`.
struct Lcg(u64);

impl Lcg {
    fn uniform(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Roughly normal around `mean` (four uniforms summed), spread about `sd`.
    fn around(&mut self, mean: f64, sd: f64) -> f64 {
        let sum = self.uniform() + self.uniform() + self.uniform() + self.uniform();
        // Four uniforms have variance 4/12: scale to `sd`, and round to what a meter prints.
        let v = mean + (sum - 2.0) * sd * 3f64.sqrt();
        (v * 1000.0).round() / 1000.0
    }
}

/// One row of `test_attempts`.
struct Row {
    station: String,
    serial: String,
    verdict: &'static str,
    format: &'static str,
    sha256: Vec<u8>,
    record: String,
    at: OffsetDateTime,
}

/// Numeric measurements in each record.
const MEASUREMENTS: u64 = 3;

/// The records of a run, in the order written, and what they add up to.
struct Records {
    total: u64,
    written: u64,
    start: OffsetDateTime,
    spacing: Duration,
    unit: u64,
    /// The current unit failed its first test and waits for its retest.
    retest_due: bool,
    lcg: Lcg,
    units: u64,
    first_pass: u64,
    passed: u64,
}

impl Records {
    fn new(total: u64, end: OffsetDateTime) -> Self {
        let span = Duration::from_secs(24 * 3600);
        let spacing = span / u32::try_from(total).unwrap_or(u32::MAX);
        Self {
            total,
            written: 0,
            start: end - span,
            spacing,
            unit: 0,
            retest_due: false,
            lcg: Lcg(0x2545_f491_4f6c_dd1d),
            units: 0,
            first_pass: 0,
            passed: 0,
        }
    }

    /// The next record, `None` after the last.
    fn next_row(&mut self) -> Result<Option<Row>, Error> {
        if self.written == self.total {
            return Ok(None);
        }
        let k = self.written;
        let retest = self.retest_due;
        if !retest {
            self.unit += 1;
            self.units += 1;
        }
        // A unit's first test fails one time in FAIL_EVERY; its retest passes.
        let pass = retest || !self.unit.is_multiple_of(FAIL_EVERY);
        self.retest_due = !pass;
        if pass {
            self.passed += 1;
            if !retest {
                self.first_pass += 1;
            }
        }
        let serial = format!("BA-{:08}", self.unit);
        let at = self.start + self.spacing * u32::try_from(k).unwrap_or(u32::MAX);
        let tx = if pass {
            self.lcg.around(20.0, 1.0)
        } else {
            25.5 + self.lcg.uniform()
        };
        let vbat = self.lcg.around(3.3, 0.03);
        let current = self.lcg.around(25.0, 2.0);
        let outcome = |ok: bool| if ok { "pass" } else { "fail" };
        let value = json!({
            "serial": serial,
            "verdict": outcome(pass),
            "started_at": format_timestamp(at - Duration::from_secs(3)),
            "ended_at": format_timestamp(at),
            "fixture_version": "bench-1",
            "steps": [
                {"name": "rf_power", "outcome": outcome(pass), "measurements": [
                    {"name": "tx_dbm", "value": tx, "unit": "dBm", "low": 15.0, "high": 25.0,
                     "outcome": outcome(pass)},
                ]},
                {"name": "power", "outcome": "pass", "measurements": [
                    {"name": "vbat", "value": vbat, "unit": "V", "low": 3.0, "high": 3.6,
                     "outcome": "pass"},
                    {"name": "current_ma", "value": current, "unit": "mA", "low": 10.0,
                     "high": 40.0, "outcome": "pass"},
                ]},
            ],
        });
        let record = TestRecord::parse(&value).context("a generated test record")?;
        let normalized = record.normalized();
        self.written += 1;
        Ok(Some(Row {
            station: format!("bench-analytics-st-{}", k % STATIONS),
            serial,
            verdict: record.verdict.as_str(),
            format: record.format.as_str(),
            sha256: normalized.sha256.0.to_vec(),
            record: normalized.text,
            at,
        }))
    }

    /// Up to [`BATCH`] next records.
    fn batch(&mut self) -> Result<Vec<Row>, Error> {
        let mut rows = Vec::with_capacity(BATCH);
        while rows.len() < BATCH {
            match self.next_row()? {
                Some(row) => rows.push(row),
                None => break,
            }
        }
        Ok(rows)
    }
}

/// Where the records go.
enum Sink {
    Sqlite(PathBuf),
    Postgres(sqlx::PgPool),
}

fn fill_sqlite(path: &Path, records: &mut Records, progress: &dyn Progress) -> Result<(), Error> {
    let mut conn = rusqlite::Connection::open(path).context("cannot open the database")?;
    conn.busy_timeout(Duration::from_secs(30))
        .context("busy timeout")?;
    loop {
        let rows = records.batch()?;
        if rows.is_empty() {
            return Ok(());
        }
        let tx = conn.transaction().context("a transaction")?;
        {
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO test_attempts (product, order_id, station, serial, verdict, \
                     format, sha256, record, event_index, created_at) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, NULL, ?9)",
                )
                .context("the insert")?;
            for r in &rows {
                insert
                    .execute(rusqlite::params![
                        PRODUCT,
                        ORDER,
                        r.station,
                        r.serial,
                        r.verdict,
                        r.format,
                        r.sha256,
                        r.record,
                        format_timestamp(r.at),
                    ])
                    .context("a test attempt")?;
            }
        }
        tx.commit().context("a commit")?;
        report_progress(records, progress);
    }
}

async fn fill_postgres(
    pool: &sqlx::PgPool,
    records: &mut Records,
    progress: &dyn Progress,
) -> Result<(), Error> {
    loop {
        let rows = records.batch()?;
        if rows.is_empty() {
            return Ok(());
        }
        let mut stations = Vec::with_capacity(rows.len());
        let mut serials = Vec::with_capacity(rows.len());
        let mut verdicts = Vec::with_capacity(rows.len());
        let mut formats = Vec::with_capacity(rows.len());
        let mut hashes = Vec::with_capacity(rows.len());
        let mut texts = Vec::with_capacity(rows.len());
        let mut times = Vec::with_capacity(rows.len());
        for r in rows {
            stations.push(r.station);
            serials.push(r.serial);
            verdicts.push(r.verdict.to_owned());
            formats.push(r.format.to_owned());
            hashes.push(r.sha256);
            texts.push(r.record);
            times.push(r.at);
        }
        // One statement per batch: the store's statement-level trigger projects the steps and
        // measurements of every row it inserted.
        sqlx::query(
            "INSERT INTO test_attempts (product, order_id, station, serial, verdict, format, \
             sha256, record, created_at) \
             SELECT $1, $2, s, n, v, f, h, r, t \
             FROM UNNEST($3::text[], $4::text[], $5::text[], $6::text[], $7::bytea[], \
                         $8::text[], $9::timestamptz[]) AS x(s, n, v, f, h, r, t)",
        )
        .bind(PRODUCT)
        .bind(ORDER)
        .bind(stations)
        .bind(serials)
        .bind(verdicts)
        .bind(formats)
        .bind(hashes)
        .bind(texts)
        .bind(times)
        .execute(pool)
        .await
        .context("a batch of test attempts")?;
        report_progress(records, progress);
    }
}

fn report_progress(records: &Records, progress: &dyn Progress) {
    let step = (records.total / 10).max(BATCH as u64);
    if records.written % step < BATCH as u64 && records.written < records.total {
        progress.step(&format!(
            "  {} of {} records written",
            records.written, records.total
        ));
    }
}

async fn time_reports(
    store: &dyn Store,
    order: &OrderId,
    window: Window,
    rounds: usize,
) -> Result<(Timing, OrderReport), Error> {
    let mut times = Vec::with_capacity(rounds);
    let mut last = None;
    for _ in 0..rounds {
        let started = Instant::now();
        let report = touchmark_analytics::report::order_report(store, order, window)
            .await
            .context("the order's report")?
            .ok_or_else(|| Error::Void(format!("the order {order} is missing")))?;
        times.push(started.elapsed());
        last = Some(report);
    }
    let report = last.ok_or_else(|| Error::Void("no report was timed".into()))?;
    Ok((Timing::of(times), report))
}

/// Runs `touchmark bench analytics`.
///
/// # Errors
/// When a step fails, or a report does not count what was written.
pub async fn run(
    plan: &AnalyticsPlan,
    progress: &Arc<dyn Progress>,
) -> Result<AnalyticsReport, Error> {
    if cfg!(debug_assertions) {
        progress
            .step("WARNING: this is a DEBUG build; its figures say nothing about production speed");
    }
    progress.step("setting up an installation, its store and the order");
    let installed = setup::install(None, "touchmark-bench-analytics-")?;
    let database = touchmark_authority::Installation::database_path(&installed.dir);
    let (store, sink, schema, backend, data) = match &plan.database {
        None => {
            let store: Arc<dyn Store> =
                Arc::new(SqliteStore::open(&database).context("cannot open the database")?);
            let data = database.display().to_string();
            (store, Sink::Sqlite(database.clone()), None, "sqlite", data)
        }
        Some(url) => {
            let schema = ScratchSchema::new(url.expose());
            let pg = schema
                .connect()
                .await
                .with_context(|| format!("cannot open {url}"))?;
            let pool = pg.pool().clone();
            let data = format!("{url}, schema {}", schema.name());
            let store: Arc<dyn Store> = Arc::new(pg);
            (
                store,
                Sink::Postgres(pool),
                Some(schema),
                "postgresql",
                data,
            )
        }
    };
    let server = setup::bind(&installed.installation, Arc::clone(&store)).await?;
    FIXTURES.create(server.authority()).await?;
    drop(server);
    let order = OrderId::parse(ORDER).context("the order's id")?;

    progress.step(&format!(
        "writing {} test records ({MEASUREMENTS} measurements each) as provisioning stores them",
        plan.records
    ));
    let end = OffsetDateTime::now_utc();
    let mut records = Records::new(plan.records, end);
    let started = Instant::now();
    match &sink {
        Sink::Sqlite(path) => {
            let path = path.clone();
            let progress = Arc::clone(progress);
            records = tokio::task::spawn_blocking(move || {
                fill_sqlite(&path, &mut records, progress.as_ref()).map(|()| records)
            })
            .await
            .map_err(|_| Error::Died("the SQLite fill"))??;
        }
        Sink::Postgres(pool) => fill_postgres(pool, &mut records, progress.as_ref()).await?,
    }
    let fill = started.elapsed();
    if let Sink::Postgres(pool) = &sink {
        // Fresh statistics, as autovacuum would gather after such a load.
        sqlx::query("ANALYZE")
            .execute(pool)
            .await
            .context("ANALYZE")?;
    }

    progress.step(&format!(
        "timing the order's report, {} rounds over all records and {} over the last hour",
        plan.rounds, plan.rounds
    ));
    let (whole, report) =
        time_reports(store.as_ref(), &order, Window::default(), plan.rounds).await?;
    let last_hour = Window {
        from: Some(end - Duration::from_secs(3600)),
        until: None,
    };
    let (hour, hour_report) = time_reports(store.as_ref(), &order, last_hour, plan.rounds).await?;

    let units = records.units as f64;
    let tx_values = report
        .measurements
        .iter()
        .find(|m| m.step == "rf_power" && m.name == "tx_dbm")
        .map_or(0, |m| m.count);
    let verification = AnalyticsVerification {
        attempts: (report.attempts, plan.records),
        units: (report.units, records.units),
        first_pass_yield: (report.first_pass_yield, records.first_pass as f64 / units),
        final_yield: (report.final_yield, records.passed as f64 / units),
        tx_dbm_values: (tx_values, plan.records),
        last_hour_attempts: hour_report.attempts,
    };
    check(&verification, plan.records)?;
    // Every connection closed before the scratch schema is dropped.
    drop(sink);
    drop(store);
    drop(schema);

    Ok(AnalyticsReport {
        setup: AnalyticsSetup {
            build: if cfg!(debug_assertions) {
                "debug"
            } else {
                "release"
            },
            backend,
            data,
            records: plan.records,
            units: records.units,
            measurements_per_record: MEASUREMENTS,
            rounds: plan.rounds,
        },
        fill_seconds: fill.as_secs_f64(),
        fill_records_per_s: plan.records as f64 / fill.as_secs_f64().max(1e-9),
        target: AnalyticsTarget {
            report_goal_ms: REPORT_TARGET.as_secs_f64() * 1e3,
            report_ms: whole.median_ms,
            met: (plan.records >= TARGET_RECORDS)
                .then(|| whole.median_ms <= REPORT_TARGET.as_secs_f64() * 1e3),
        },
        report: whole,
        last_hour_report: hour,
        verification,
    })
}

/// Fails unless the reports counted exactly what was written.
fn check(v: &AnalyticsVerification, records: u64) -> Result<(), Error> {
    let close = |got: Option<f64>, want: f64| got.is_some_and(|g| (g - want).abs() < 1e-9);
    // The last hour holds about 1/24 of the attempts, spread evenly.
    let hour_share = v.last_hour_attempts as f64 / records as f64;
    if v.attempts.0 != v.attempts.1
        || v.units.0 != v.units.1
        || !close(v.first_pass_yield.0, v.first_pass_yield.1)
        || !close(v.final_yield.0, v.final_yield.1)
        || v.tx_dbm_values.0 != v.tx_dbm_values.1
        || !(0.03..0.06).contains(&hour_share)
    {
        return Err(Error::Void(format!(
            "the report does not count what was written: {v:?}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::Quiet;

    #[test]
    fn records_add_up() {
        let mut r = Records::new(1000, OffsetDateTime::now_utc());
        let mut rows = 0;
        while let Some(row) = r.next_row().unwrap() {
            assert_eq!(row.sha256.len(), 32);
            rows += 1;
        }
        assert_eq!(rows, 1000);
        // 1000 attempts: units numbered from 1, every 20th retested once.
        assert_eq!(r.units + (r.units / FAIL_EVERY), 1000);
        assert_eq!(r.passed, r.units);
        assert_eq!(r.first_pass, r.units - r.units / FAIL_EVERY);
    }

    #[test]
    fn plan_checks_its_settings() {
        let quick = AnalyticsPlan::new(&Options {
            quick: true,
            ..Options::default()
        })
        .unwrap();
        assert_eq!((quick.records, quick.rounds), (20_000, 3));
        let bad = Options {
            records: Some(0),
            ..Options::default()
        };
        assert!(matches!(AnalyticsPlan::new(&bad), Err(Error::Invalid(_))));
        let bad = Options {
            rounds: Some(0),
            ..Options::default()
        };
        assert!(matches!(AnalyticsPlan::new(&bad), Err(Error::Invalid(_))));
    }

    async fn a_small_run_counts_every_record(database: Option<DatabaseUrl>) {
        let plan = AnalyticsPlan::new(&Options {
            records: Some(2_100),
            rounds: Some(1),
            quick: true,
            database,
        })
        .unwrap();
        let progress: Arc<dyn Progress> = Arc::new(Quiet);
        let report = run(&plan, &progress).await.unwrap();
        assert_eq!(report.verification.attempts, (2_100, 2_100));
        assert_eq!(report.setup.units, 2_000);
        assert_eq!(report.verification.first_pass_yield.0, Some(0.95));
        assert_eq!(report.verification.final_yield.0, Some(1.0));
        assert_eq!(report.target.met, None);
        assert_eq!(report.report.rounds_ms.len(), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_small_run_counts_every_record_on_sqlite() {
        a_small_run_counts_every_record(None).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[cfg_attr(
        not(tm_postgres),
        ignore = "needs PostgreSQL: set TOUCHMARK_TEST_POSTGRES_URL"
    )]
    async fn a_small_run_counts_every_record_on_postgres() {
        let url = DatabaseUrl::parse("database", &touchmark_testenv::postgres_url()).unwrap();
        a_small_run_counts_every_record(Some(url)).await;
    }
}
