//! `affected`: the units a vulnerability report affects (`touchmark vuln affected`) over a
//! large serial → release lineage, on SQLite or on PostgreSQL.
//!
//! A fresh installation, its store (SQLite in the installation's directory, or a fresh schema of
//! a PostgreSQL database, dropped at the end), and, through the authority as the API would: the
//! product, factory and order, a release key, a signing key, two releases (1.0.0 and 1.1.0) and
//! a report linked to release 1.0.0. Then:
//!
//! 1. **fill**: N units written straight into `units` and `unit_firmware` (each provisioned
//!    with release 1.0.0, as the issuance stores it), in large transactions; one unit in ten
//!    also received 1.1.0 by a field update (`firmware_deliveries`), after its provisioning.
//! 2. **query**: the authority's `affected_units` as the API answers by default: every lot
//!    counted (one query) and the first page of 1,000 serials, round by round: the median and
//!    the slowest round. The counts must be exactly the units that still run 1.0.0, or the run
//!    fails instead of giving a number.
//! 3. **walk**: every affected serial, page after page of 10,000 (as `touchmark vuln affected
//!    --json` reads them: the first page with the counts, the others without), checked in
//!    order and counted, round by round.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use time::OffsetDateTime;
use touchmark_core::ProductId;
use touchmark_core::api::{LinkReport, SubmitReport};
use touchmark_core::clock::format_timestamp;
use touchmark_core::event::Actor;
use touchmark_core::field::DatabaseUrl;
use touchmark_core::firmware::ReleaseKeyAlgorithm;
use touchmark_firmware::PublicKey;
use touchmark_store::Store;
use touchmark_store_postgres::ScratchSchema;
use touchmark_store_sqlite::SqliteStore;

use crate::Progress;
use crate::error::{Context as _, Error};
use crate::firmware::{image_of, signing_key};
use crate::setup::{self, Fixtures};

const ORDER: &str = "PO-BENCH-AFFECTED";
const PRODUCT: &str = "bench-affected-sensor";
const FIXTURES: Fixtures = Fixtures {
    product: PRODUCT,
    product_name: "Bench Affected Sensor",
    factory: "bench-affected-cm",
    factory_name: "Bench Affected CM",
    order: ORDER,
    quota: 100_000_000,
};
/// One unit in this many received the later release in the field.
const UPDATED_EVERY: u64 = 10;
/// The length of a unit's wrap of a release's content key (an ECIES-P256 TLV: ephemeral
/// point, wrapped key, tag), so that the rows are as large as the issuance writes them.
const WRAP_LEN: usize = 113;
/// The length of a unit's bound encryption key (a P-256 SubjectPublicKeyInfo in DER).
const KEY_LEN: usize = 91;
/// Units per transaction.
const BATCH: u64 = 10_000;
/// The units of the target.
pub const TARGET_UNITS: u64 = 1_000_000;
/// The query over [`TARGET_UNITS`] units must take at most this.
pub const QUERY_TARGET: Duration = Duration::from_secs(1);
/// The units of the answer's page, as the API lists them by default.
const PAGE: usize = 1000;
/// The units of each page of the walk: the API's largest page, as the CLI reads them.
const WALK_PAGE: usize = 10_000;

/// What to measure, as `touchmark bench affected` is asked.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Units to write [default: 1,000,000; 20,000 when quick].
    pub units: Option<u64>,
    /// Queries to time [default: 5; 3 when quick].
    pub rounds: Option<usize>,
    /// A short run.
    pub quick: bool,
    /// Keep the units in a fresh schema of this PostgreSQL database instead of SQLite.
    pub database: Option<DatabaseUrl>,
}

/// The result of `touchmark bench affected`.
#[derive(Debug, Clone, Serialize)]
pub struct AffectedReport {
    /// `release` or `debug`.
    pub build: &'static str,
    /// `sqlite` or `postgresql`.
    pub backend: &'static str,
    /// Units written.
    pub units: u64,
    /// Of them, how many received the later release (and are no longer affected).
    pub updated: u64,
    /// Writing the units, seconds.
    pub fill_seconds: f64,
    /// The answer's rounds (every lot counted, and the first page of serials): median,
    /// fastest, slowest (the p99 of so few rounds), each.
    pub query: crate::analytics::Timing,
    /// Listing every affected serial, page after page of the largest size, round by round.
    pub walk: crate::analytics::Timing,
    /// Units each answer listed (all equal, checked).
    pub affected: u64,
    /// The goal, milliseconds.
    pub goal_ms: f64,
    /// Whether the median met it; `None` under [`TARGET_UNITS`] units.
    pub met: Option<bool>,
}

/// Where the units go.
enum Sink {
    Sqlite(PathBuf),
    Postgres(sqlx::PgPool),
}

fn serial(n: u64) -> String {
    format!("BF-{n:08}")
}

fn fill_sqlite(
    path: &Path,
    units: u64,
    first: &str,
    later: &str,
    progress: &dyn Progress,
) -> Result<(), Error> {
    let mut conn = rusqlite::Connection::open(path).context("cannot open the database")?;
    conn.busy_timeout(Duration::from_secs(30))
        .context("busy timeout")?;
    let at = format_timestamp(OffsetDateTime::now_utc());
    let mut start = 0;
    while start < units {
        let end = (start + BATCH).min(units);
        let tx = conn.transaction().context("a transaction")?;
        {
            let mut unit = tx
                .prepare_cached(
                    "INSERT INTO units (product, serial, order_id, status, station, \
                     pubkey_sha256, cert_sha256, updated_at) \
                     VALUES (?1, ?2, ?3, 'provisioned', 'bench-st', ?4, ?4, ?5)",
                )
                .context("the unit insert")?;
            let mut firmware = tx
                .prepare_cached(
                    "INSERT INTO unit_firmware (order_id, serial, release_id, wrap, \
                     image_sha256, event_index, encryption_key, latest_release_id) \
                     VALUES (?1, ?2, ?3, zeroblob(?6), ?4, ?5, zeroblob(?7), ?8)",
                )
                .context("the firmware insert")?;
            let mut delivery = tx
                .prepare_cached(
                    "INSERT INTO firmware_deliveries (order_id, serial, release_id, wrap, \
                     image_sha256, event_index, delivered_at) \
                     VALUES (?1, ?2, ?3, zeroblob(?7), ?4, ?5, ?6)",
                )
                .context("the delivery insert")?;
            for n in start..end {
                let s = serial(n);
                let hash = touchmark_core::event::Sha256Hash::of(s.as_bytes()).0;
                let index = i64::try_from(n).unwrap_or(i64::MAX);
                unit.execute(rusqlite::params![PRODUCT, s, ORDER, hash.as_slice(), at])
                    .context("a unit")?;
                let updated = n % UPDATED_EVERY == 0;
                firmware
                    .execute(rusqlite::params![
                        ORDER,
                        s,
                        first,
                        hash.as_slice(),
                        index,
                        WRAP_LEN,
                        KEY_LEN,
                        updated.then_some(later)
                    ])
                    .context("a unit's firmware")?;
                if updated {
                    delivery
                        .execute(rusqlite::params![
                            ORDER,
                            s,
                            later,
                            hash.as_slice(),
                            index + i64::try_from(units).unwrap_or(i64::MAX),
                            at,
                            WRAP_LEN
                        ])
                        .context("a delivery")?;
                }
            }
        }
        tx.commit().context("a commit")?;
        start = end;
        progress_step(progress, start, units);
    }
    Ok(())
}

async fn fill_postgres(
    pool: &sqlx::PgPool,
    units: u64,
    first: &str,
    later: &str,
    progress: &dyn Progress,
) -> Result<(), Error> {
    let at = OffsetDateTime::now_utc();
    let mut start = 0;
    while start < units {
        let end = (start + BATCH).min(units);
        let serials: Vec<String> = (start..end).map(serial).collect();
        let hashes: Vec<Vec<u8>> = serials
            .iter()
            .map(|s| {
                touchmark_core::event::Sha256Hash::of(s.as_bytes())
                    .0
                    .to_vec()
            })
            .collect();
        let seqs: Vec<i64> = (start..end)
            .map(|n| i64::try_from(n).unwrap_or(i64::MAX))
            .collect();
        let mut tx = pool.begin().await.context("a transaction")?;
        sqlx::query(
            "INSERT INTO units (product, serial, order_id, status, station, pubkey_sha256, \
             cert_sha256, updated_at) \
             SELECT $1, s, $2, 'provisioned', 'bench-st', h, h, $3 \
             FROM UNNEST($4::text[], $5::bytea[]) AS x(s, h)",
        )
        .bind(PRODUCT)
        .bind(ORDER)
        .bind(at)
        .bind(&serials)
        .bind(&hashes)
        .execute(&mut *tx)
        .await
        .context("a batch of units")?;
        let latest: Vec<Option<&str>> = (start..end)
            .map(|n| (n % UPDATED_EVERY == 0).then_some(later))
            .collect();
        sqlx::query(
            "INSERT INTO unit_firmware (order_id, serial, release_id, wrap, image_sha256, \
             event_seq, encryption_key, latest_release_id) \
             SELECT $1, s, $2, $6, h, q, $7, l \
             FROM UNNEST($3::text[], $4::bytea[], $5::bigint[], $8::text[]) AS x(s, h, q, l)",
        )
        .bind(ORDER)
        .bind(first)
        .bind(&serials)
        .bind(&hashes)
        .bind(&seqs)
        .bind(vec![0u8; WRAP_LEN])
        .bind(vec![0u8; KEY_LEN])
        .bind(&latest)
        .execute(&mut *tx)
        .await
        .context("a batch of firmware")?;
        let offset = i64::try_from(units).unwrap_or(i64::MAX);
        let (mut s2, mut h2, mut q2) = (Vec::new(), Vec::new(), Vec::new());
        for (i, n) in (start..end).enumerate() {
            if n % UPDATED_EVERY == 0 {
                s2.push(serials[i].clone());
                h2.push(hashes[i].clone());
                q2.push(seqs[i] + offset);
            }
        }
        sqlx::query(
            "INSERT INTO firmware_deliveries (order_id, serial, release_id, wrap, image_sha256, \
             event_seq, delivered_at) \
             SELECT $1, s, $2, $7, h, q, $3 \
             FROM UNNEST($4::text[], $5::bytea[], $6::bigint[]) AS x(s, h, q)",
        )
        .bind(ORDER)
        .bind(later)
        .bind(at)
        .bind(&s2)
        .bind(&h2)
        .bind(&q2)
        .bind(vec![0u8; WRAP_LEN])
        .execute(&mut *tx)
        .await
        .context("a batch of deliveries")?;
        tx.commit().await.context("a commit")?;
        start = end;
        progress_step(progress, start, units);
    }
    Ok(())
}

fn progress_step(progress: &dyn Progress, written: u64, total: u64) {
    let step = (total / 10).max(BATCH);
    if written % step < BATCH && written < total {
        progress.step(&format!("  {written} of {total} units written"));
    }
}

/// Runs `touchmark bench affected`.
///
/// # Errors
/// When a step fails, or an answer does not list exactly the units that run the release.
pub async fn run(options: &Options, progress: &Arc<dyn Progress>) -> Result<AffectedReport, Error> {
    let units = options
        .units
        .unwrap_or(if options.quick { 20_000 } else { TARGET_UNITS });
    if !(100..=10_000_000).contains(&units) {
        return Err(Error::Invalid("--units must be 100 to 10000000".into()));
    }
    let rounds = options.rounds.unwrap_or(if options.quick { 3 } else { 5 });
    if rounds == 0 || rounds > 100 {
        return Err(Error::Invalid("--rounds must be 1 to 100".into()));
    }
    if cfg!(debug_assertions) {
        progress
            .step("WARNING: this is a DEBUG build; its figures say nothing about production speed");
    }
    progress.step("setting up an installation, its store, the order, two releases and a report");
    let installed = setup::install(None, "touchmark-bench-affected-")?;
    let database = touchmark_authority::Installation::database_path(&installed.dir);
    let (store, sink, schema, backend) = match &options.database {
        None => {
            let store: Arc<dyn Store> =
                Arc::new(SqliteStore::open(&database).context("cannot open the database")?);
            (store, Sink::Sqlite(database.clone()), None, "sqlite")
        }
        Some(url) => {
            let schema = ScratchSchema::new(url.expose());
            let pg = schema
                .connect()
                .await
                .with_context(|| format!("cannot open {url}"))?;
            let pool = pg.pool().clone();
            let store: Arc<dyn Store> = Arc::new(pg);
            (store, Sink::Postgres(pool), Some(schema), "postgresql")
        }
    };
    let server = setup::bind(&installed.installation, Arc::clone(&store)).await?;
    let authority = server.authority();
    FIXTURES.create(authority).await?;
    let product = ProductId::parse(PRODUCT).context("the product id")?;
    let key = authority
        .create_release_key(Actor::System, &product, ReleaseKeyAlgorithm::X25519)
        .await
        .context("cannot make a release key")?;
    let release_key = PublicKey::from_pem(&key.public_key_pem).context("the release key")?;
    let (_, sign_pub) = signing_key()?;
    authority
        .add_firmware_key(Actor::System, &product, &sign_pub.to_pem())
        .await
        .context("cannot register the signing key")?;
    let mut releases = Vec::new();
    for (version, header) in [("1.0.0", (1, 0, 0, 0)), ("1.1.0", (1, 1, 0, 0))] {
        let upload = touchmark_authority::firmware::ReleaseUpload {
            version: version.into(),
            image: image_of(16 * 1024, header, &release_key)?,
            sbom: None,
        };
        releases.push(
            authority
                .upload_release(Actor::System, &product, upload)
                .await
                .context("cannot upload a release")?,
        );
    }
    let received = authority
        .submit_report(&SubmitReport {
            product: Some(PRODUCT.into()),
            version: Some("1.0.0".into()),
            description: Some("a flaw in release 1.0.0".into()),
            ..SubmitReport::default()
        })
        .await
        .context("cannot submit the report")?;
    let report = received.report.id.clone();
    authority
        .link_report(
            Actor::System,
            &report,
            &LinkReport {
                product: PRODUCT.into(),
                release: Some("1.0.0".into()),
                purl: None,
                range: None,
                status: None,
                justification: None,
            },
        )
        .await
        .context("cannot link the report")?;

    progress.step(&format!(
        "writing {units} units provisioned with 1.0.0, one in {UPDATED_EVERY} updated to 1.1.0 since"
    ));
    let (first, later) = (releases[0].id.clone(), releases[1].id.clone());
    let started = Instant::now();
    match &sink {
        Sink::Sqlite(path) => {
            let (path, progress) = (path.clone(), Arc::clone(progress));
            tokio::task::spawn_blocking(move || {
                fill_sqlite(&path, units, &first, &later, progress.as_ref())
            })
            .await
            .map_err(|_| Error::Died("the SQLite fill"))??;
        }
        Sink::Postgres(pool) => {
            fill_postgres(pool, units, &first, &later, progress.as_ref()).await?;
            // What autovacuum does to a table filled over weeks, done at once for one filled
            // in a minute: the statistics, and the visibility map an index-only scan reads.
            sqlx::raw_sql("VACUUM (ANALYZE)")
                .execute(pool)
                .await
                .context("VACUUM (ANALYZE)")?;
        }
    }
    let fill = started.elapsed();

    progress.step(&format!("timing the affected-units query, {rounds} rounds"));
    let updated = units.div_ceil(UPDATED_EVERY);
    let expected = units - updated;
    let mut times = Vec::with_capacity(rounds);
    let mut walks = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        // The answer: every lot counted, and the first page of serials.
        let started = Instant::now();
        let (found, _) = authority
            .affected_units(&report, None, PAGE, true)
            .await
            .context("the affected units")?;
        let counts = found.counts();
        times.push(started.elapsed());
        // The first listed is the first serial that was not updated (every UPDATED_EVERY-th
        // from 0 was).
        let first = found.units().next().map(|(s, _, _)| s.to_string());
        if found.len() != PAGE.min(usize::try_from(expected).unwrap_or(usize::MAX))
            || counts.by_release.get("1.0.0+0") != Some(&expected)
            || counts.total != expected
            || first.as_deref() != Some(serial(1).as_str())
        {
            return Err(Error::Void(format!(
                "the query listed {} units (first {first:?}, counts {:?}), not a page of the \
                 {expected} that run 1.0.0",
                found.len(),
                counts.by_release
            )));
        }
        // Every serial, page after page of the largest size, as `vuln affected --json` reads
        // them: each in order, none twice, all of them.
        let started = Instant::now();
        let (mut listed, mut after, mut last) = (0u64, None, None::<String>);
        loop {
            // The first page counted, as `…/affected` answers; the others not, as
            // `…/affected/units` answers.
            let (page, _) = authority
                .affected_units(&report, after.as_ref(), WALK_PAGE, after.is_none())
                .await
                .context("a page of affected units")?;
            for (serial, lot, _) in page.units() {
                let ordered = last.as_deref().is_none_or(|l| l < serial.as_str());
                if !ordered || lot.version.as_deref() != Some("1.0.0+0") {
                    return Err(Error::Void(format!(
                        "the walk listed {serial} of {:?} after {last:?}",
                        lot.version
                    )));
                }
                last = Some(serial.to_string());
                listed += 1;
            }
            after = page.next().cloned();
            if after.is_none() {
                break;
            }
        }
        walks.push(started.elapsed());
        if listed != expected {
            return Err(Error::Void(format!(
                "the walk listed {listed} units, not the {expected} that run 1.0.0"
            )));
        }
    }
    drop(server);
    drop(sink);
    drop(store);
    drop(schema);
    let query = crate::analytics::Timing::of(times);
    let walk = crate::analytics::Timing::of(walks);
    let median = query.median_ms;
    let goal = QUERY_TARGET.as_secs_f64() * 1e3;
    Ok(AffectedReport {
        build: if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
        backend,
        units,
        updated,
        fill_seconds: fill.as_secs_f64(),
        query,
        walk,
        affected: expected,
        goal_ms: goal,
        met: (units >= TARGET_UNITS).then_some(median <= goal),
    })
}
