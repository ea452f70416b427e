//! The demo: design.md §12 on one machine. A fresh installation, a server, a product, a factory
//! with three enrolled stations, an order of 500, three simulated lines on 600 passing units
//! plus some that fail their test, two clones, the log audited over HTTPS with its key alone,
//! and a summary that says whether every outcome is what it should be.
//!
//! [`prepare`] makes a fresh data directory, never deleting what it did not create. [`run`]
//! leaves the server serving, so that the installation can be explored; the caller stops it
//! with [`Demo::stop`]. The story is told to a [`Progress`]; nothing here draws on a
//! terminal.

mod error;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;
use touchmark_authority::log::{Log, LogConfig};
use touchmark_authority::{InitOptions, Installation};
use touchmark_client::sim::{self, Kind, Line, Outcome, SimUnit, Tally};
use touchmark_client::station::{self, StationKey};
use touchmark_client::{Client, ClientConfig};
use touchmark_core::api::{
    AddFirmwareKey, CreateFactory, CreateOrder, CreateProduct, CreateReleaseKey, CreateStation,
};
use touchmark_core::command::NewTokenRequest;
use touchmark_core::entity::{Role, UnitStatus};
use touchmark_core::event::Actor;
use touchmark_core::field::Label;
use touchmark_core::{Clock, OrderId, SystemClock};
use touchmark_pki::Passphrase;
use touchmark_server::Server;
use touchmark_store::Store;
use touchmark_store_sqlite::SqliteStore;

pub use crate::error::Error;

/// The demo's order.
pub const ORDER: &str = "PO-DEMO-0001";
/// Its quota.
pub const QUOTA: u64 = 500;
const LINES: usize = 3;
const PASSING: u64 = 600;
/// Every 26th unit fails its test: 24 failures among 624 units.
const FAIL_EVERY: u64 = 26;

/// The line whose idle current drifts towards its high limit (every unit still passing), and
/// the measurement: the drift alert the demo shows.
pub const DRIFTING_LINE: &str = "line-3";
/// The drifting measurement.
pub const DRIFTING_MEASUREMENT: &str = "power_on/idle_current";
/// The order the slow trickle after the summary provisions.
pub const TRICKLE_ORDER: &str = "PO-DEMO-0002";

const DEFAULT_DIR: &str = "touchmark-demo";
const MARKER: &str = ".touchmark-demo";

/// Wraps an I/O error of `what` (`read`, `create`...) on `path`.
fn io(what: &str, path: &Path) -> impl FnOnce(std::io::Error) -> Error {
    let what = format!("{what} {}", path.display());
    move |source| Error::Io { what, source }
}

/// Picks and prepares a fresh data directory: `dir`, or `./touchmark-demo`. The default
/// directory is replaced when it holds an earlier demo; anything else that exists is left
/// alone, and must be empty.
///
/// # Errors
/// [`Error::NotADemo`] for a directory that holds something else, or [`Error::Io`].
pub fn prepare(dir: Option<PathBuf>) -> Result<PathBuf, Error> {
    let (dir, ours) = match dir {
        Some(dir) => (dir, false),
        None => (PathBuf::from(DEFAULT_DIR), true),
    };
    if dir.exists() {
        let empty = std::fs::read_dir(&dir)
            .map(|mut d| d.next().is_none())
            .unwrap_or(false);
        if ours && dir.join(MARKER).exists() {
            std::fs::remove_dir_all(&dir).map_err(io("remove the earlier demo in", &dir))?;
        } else if !empty {
            return Err(Error::NotADemo(dir));
        }
    }
    std::fs::create_dir_all(&dir).map_err(io("create", &dir))?;
    let marker = dir.join(MARKER);
    std::fs::write(
        &marker,
        "created by touchmark demo; removed by the next demo\n",
    )
    .map_err(io("write", &marker))?;
    Ok(dir)
}

/// Where the demo's installation keeps its private keys.
#[derive(Debug, Clone)]
pub enum DemoKeys {
    /// Encrypted files in the data directory, under this passphrase.
    Files(Passphrase),
    /// Another provider, such as a PKCS#11 token, where every key is made.
    Provider(Arc<dyn touchmark_pki::KeyProvider>),
}

/// Where the demo runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// A fresh data directory.
    pub dir: PathBuf,
    /// Where its keys are made.
    pub keys: DemoKeys,
    /// The address to serve on.
    pub listen: SocketAddr,
}

/// Where the demo tells its story.
pub trait Progress: Send + Sync {
    /// A line of the story.
    fn say(&self, line: &str);

    /// Simulated line `name` starts with `units` units; what it returns is called with the
    /// tally's one-line message after each unit.
    fn line(&self, name: &str, units: u64) -> Arc<dyn Fn(String) + Send + Sync>;

    /// The simulated lines are done.
    fn lines_done(&self);
}

/// What the demo showed, and whether it is what it should be.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// The server's URL.
    pub url: String,
    /// The data directory.
    pub data: String,
    /// The order's quota.
    pub quota: u64,
    /// Units issued.
    pub issued: u64,
    /// Units refused with `quota_exhausted`.
    pub refused_beyond_quota: u64,
    /// Units that failed their test.
    pub failed_tests: u64,
    /// The clones' outcomes: code by kind.
    pub clones: BTreeMap<String, BTreeMap<String, u64>>,
    /// Requests that failed.
    pub errors: u64,
    /// Events the audit replayed.
    pub events_replayed: u64,
    /// The size of the checkpoint the audit verified.
    pub checkpoint_size: u64,
    /// What the audit found wrong.
    pub audit_violations: Vec<String>,
    /// Whether the database's counts for the order are the log's.
    pub database_agrees_with_log: bool,
    /// How long the demo took.
    pub seconds: f64,
    /// The dashboard's URL.
    pub dashboard: String,
    /// The alerts raised, by kind.
    pub alerts: BTreeMap<String, u64>,
    /// The drift alert of the drifting line, as `station measurement`, if it was raised.
    pub drift_alert: Option<String>,
    /// Units whose firmware image was delivered and opened with their own key; `None` when
    /// the order carried no release (keys in a token, which makes no release keys yet).
    pub firmware_opened: Option<u64>,
    /// Whether every outcome is as expected.
    pub as_expected: bool,
    /// The outcomes that are not.
    pub problems: Vec<String>,
}

impl Summary {
    /// How many clones of `kind` were refused with `code`.
    pub fn clone_refusals(&self, kind: &str, code: &str) -> u64 {
        self.clones
            .get(kind)
            .and_then(|c| c.get(code))
            .copied()
            .unwrap_or(0)
    }

    /// Fills `problems` and `as_expected` from the outcomes, for `total` units sent in all and
    /// `logged_issued` issuances in the log.
    fn check(&mut self, total: u64, logged_issued: u64, errors: &BTreeMap<String, u64>) {
        let checks = [
            (
                self.issued == QUOTA && logged_issued == QUOTA,
                format!(
                    "issued {} (log: {logged_issued}), expected {QUOTA}",
                    self.issued
                ),
            ),
            (
                self.refused_beyond_quota == PASSING - QUOTA,
                format!(
                    "{} refused beyond quota, expected {}",
                    self.refused_beyond_quota,
                    PASSING - QUOTA
                ),
            ),
            (
                self.failed_tests == total - PASSING,
                format!(
                    "{} failed tests, expected {}",
                    self.failed_tests,
                    total - PASSING
                ),
            ),
            (
                self.clone_refusals("clone_serial", "serial_conflict") == 1,
                "the serial clone was not refused with serial_conflict".to_owned(),
            ),
            (
                self.clone_refusals("clone_key", "key_reused") == 1,
                "the key clone was not refused with key_reused".to_owned(),
            ),
            (
                self.errors == 0,
                format!("{} errors: {errors:?}", self.errors),
            ),
            (
                self.drift_alert.as_deref()
                    == Some(&format!("{DRIFTING_LINE} {DRIFTING_MEASUREMENT}")),
                format!(
                    "the drift of {DRIFTING_MEASUREMENT} on {DRIFTING_LINE} raised no alert \
                     (alerts: {:?})",
                    self.alerts
                ),
            ),
            (
                self.alerts.get("measurement_drift") == Some(&1),
                format!(
                    "one measurement drifts, but the alerts are {:?}",
                    self.alerts
                ),
            ),
            (
                self.firmware_opened.is_none_or(|n| n == QUOTA),
                format!(
                    "{:?} units opened their firmware, expected {QUOTA}",
                    self.firmware_opened
                ),
            ),
            (
                self.audit_violations.is_empty(),
                format!(
                    "the log replay found violations: {:?}",
                    self.audit_violations
                ),
            ),
            (
                self.database_agrees_with_log,
                "the database's counts differ from the log's".to_owned(),
            ),
        ];
        self.problems = checks
            .into_iter()
            .filter(|(ok, _)| !ok)
            .map(|(_, why)| why)
            .collect();
        self.as_expected = self.problems.is_empty();
    }
}

/// The demo, run, with its server still serving.
#[derive(Debug)]
pub struct Demo {
    /// What it showed.
    pub summary: Summary,
    /// The admin token it made, for exploring the installation afterwards.
    pub token: String,
    admin: Client,
    stations: Vec<Client>,
    trickle: Option<tokio::task::JoinHandle<()>>,
    stop: tokio::sync::oneshot::Sender<()>,
    serving: tokio::task::JoinHandle<()>,
}

impl Demo {
    /// Stops the server (and the trickle) and waits until it has stopped.
    pub async fn stop(self) {
        if let Some(trickle) = self.trickle {
            trickle.abort();
        }
        let _ = self.stop.send(());
        let _ = self.serving.await;
    }

    /// Keeps a slow trickle of units going, so that the dashboard shows a live factory: order
    /// [`TRICKLE_ORDER`] opens, and the lines take turns provisioning a unit every
    /// `every` (one in 20 failing its test), until the demo stops.
    ///
    /// # Errors
    /// When the order cannot be created.
    pub async fn start_trickle(&mut self, every: std::time::Duration) -> Result<(), Error> {
        self.admin
            .create_order(&CreateOrder {
                id: Some(TRICKLE_ORDER.into()),
                product: "sensor-v2".into(),
                factory: "cm-demo".into(),
                quota: 100_000,
                serial_range: Some("SN-100001..SN-199999".into()),
                serial_pattern: None,
                not_before: None,
                not_after: None,
                open: true,
                release: None,
            })
            .await?;
        let stations = self.stations.clone();
        self.trickle = Some(tokio::spawn(async move {
            let mut rng = sim::rng(None);
            let mut tick = tokio::time::interval(every);
            for n in 1u64..100_000 {
                tick.tick().await;
                let kind = if n % 20 == 0 {
                    Kind::FailsTest
                } else {
                    Kind::Good
                };
                let Ok((unit, _)) = SimUnit::new(format!("SN-{:06}", 100_000 + n), kind, &mut rng)
                else {
                    continue;
                };
                if let Some(station) = stations.get(n as usize % stations.len().max(1)) {
                    sim::provision(station, TRICKLE_ORDER, &unit).await;
                }
            }
        }));
        Ok(())
    }
}

/// Makes `units` (one line's, in the order it sends them) drift: their idle current climbs
/// from 42 mA towards the 50 mA limit, with a little noise, every unit still passing.
fn drift(units: &mut [SimUnit]) {
    let n = units.len();
    for (k, unit) in units.iter_mut().enumerate() {
        if let Some(m) = unit.test.pointer_mut("/steps/0/measurements/0/value") {
            *m = serde_json::json!(drifting_current(k, n));
        }
    }
}

/// The idle current (mA) of the `k`th of `n` units of the drifting line.
fn drifting_current(k: usize, n: usize) -> f64 {
    let noise = ((k * 7919) % 13) as f64 * 0.05 - 0.3;
    let value = 42.0 + 7.5 * k as f64 / n.max(1) as f64 + noise;
    (value * 100.0).round() / 100.0
}

/// Creates a station of the demo's factory and enrolls it with a fresh key; returns a client
/// that authenticates as it.
async fn enroll(admin: &Client, url: &str, root: &str, id: &str) -> Result<Client, Error> {
    let created = admin
        .create_station(&CreateStation {
            id: Some(id.into()),
            factory: "cm-demo".into(),
            name: None,
            enrollment_ttl_minutes: Some(60),
        })
        .await?;
    let key = StationKey::generate()?;
    let token = created.enrollment_token;
    Ok(station::enroll(url, root, token, &key, id).await?.1)
}

/// The version of the demo's release.
const RELEASE_VERSION: &str = "1.0.0";

/// Releases the product's firmware as a brand owner would: a release key made by the server,
/// a signing key registered, and an image signed and encrypted to the release key as `imgtool
/// sign --encrypt` makes it, uploaded and checked.
async fn release(admin: &Client) -> Result<(), Error> {
    let fixture = |e: &dyn std::fmt::Display| Error::Fixture(format!("the release: {e}"));
    let key = admin
        .create_release_key(
            "sensor-v2",
            &CreateReleaseKey {
                algorithm: Some("x25519".into()),
            },
        )
        .await?;
    let signing = touchmark_pki::SoftwareSigner::generate(touchmark_pki::KeyAlgorithm::Ed25519)
        .map_err(|e| fixture(&e))?;
    let signing_pub = touchmark_firmware::PublicKey::from_spki_der(
        touchmark_pki::Signer::public_key_spki(&signing),
    )
    .map_err(|e| fixture(&e))?;
    admin
        .add_firmware_key(
            "sensor-v2",
            &AddFirmwareKey {
                public_key_pem: signing_pub.to_pem(),
            },
        )
        .await?;
    let payload: Vec<u8> = (0..48 * 1024u32).map(|i| (i * 31 % 253) as u8).collect();
    let image = touchmark_firmware::builder::build_release(
        &payload,
        &touchmark_firmware::builder::BuildOptions::default(),
        &signing.pkcs8_der(),
        &touchmark_firmware::PublicKey::from_pem(&key.public_key_pem).map_err(|e| fixture(&e))?,
        &touchmark_firmware::ContentKey::generate(16).map_err(|e| fixture(&e))?,
        touchmark_firmware::Ephemeral::Fresh,
    )
    .map_err(|e| fixture(&e))?;
    admin
        .upload_release("sensor-v2", RELEASE_VERSION, &image, None)
        .await?;
    Ok(())
}

/// Creates the product, the factory and the open order, as an admin would; the order delivers
/// the product's release when `firmware` is true.
async fn fixtures(admin: &Client, firmware: bool) -> Result<(), Error> {
    admin
        .create_product(&CreateProduct {
            id: Some("sensor-v2".into()),
            name: "Sensor v2".into(),
            organization: "Acme Devices".into(),
            common_name: "Acme Sensor".into(),
            hw_type_oid: Some("1.3.6.1.4.1.99999.1.2".into()),
            crl_url: None,
            ocsp_url: None,
            cert_not_after: None,
            attestation_roots_pem: None,
        })
        .await?;
    admin
        .create_factory(&CreateFactory {
            id: Some("cm-demo".into()),
            name: "Demo contract manufacturer".into(),
        })
        .await?;
    if firmware {
        release(admin).await?;
    }
    admin
        .create_order(&CreateOrder {
            id: Some(ORDER.into()),
            product: "sensor-v2".into(),
            factory: "cm-demo".into(),
            quota: QUOTA,
            serial_range: Some("SN-000001..SN-000999".into()),
            serial_pattern: None,
            not_before: None,
            not_after: None,
            open: true,
            release: firmware.then(|| RELEASE_VERSION.to_owned()),
        })
        .await?;
    Ok(())
}

/// Audits the demo's log as an auditor would, over HTTPS with the log's key alone, once a
/// checkpoint covers every event; then compares the log's story with the database's counts.
async fn audit(
    log: &Log,
    store: &Arc<dyn Store>,
    url: &str,
    dir: &Path,
) -> Result<(touchmark_audit::Report, bool), Error> {
    while log.latest().map(|l| l.size()) != Some(store.event_count().await?) {
        log.sequence_once(time::OffsetDateTime::now_utc()).await?;
    }
    let audit = touchmark_audit::Audit {
        source: touchmark_audit::Source::new(url, Installation::server_root_path(dir)),
        key: log.verifier().clone(),
        state: dir.join("audit.state"),
        cache: None,
    };
    let report = touchmark_audit::verify(&audit, Arc::new(touchmark_audit::Silent)).await?;
    let order = OrderId::parse(ORDER).map_err(|e| Error::Fixture(e.to_string()))?;
    let counts = store.order_counts(&order).await?;
    let logged = report.orders.get(ORDER).cloned().unwrap_or_default();
    let agrees = logged.issued == counts.issued
        && counts.issued == counts.certificates
        && logged.failed_tests == counts.failed_tests
        && logged.refusals == counts.refusals;
    Ok((report, agrees))
}

/// Runs the demo in `options.dir`, telling `progress` the story as it goes, and returns with
/// the server still serving.
///
/// # Errors
/// When the demo cannot be set up or a step cannot run. Outcomes that are not as expected are
/// in the summary instead.
pub async fn run(options: &Options, progress: &dyn Progress) -> Result<Demo, Error> {
    let started = Instant::now();
    let dir = &options.dir;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let init = InitOptions {
        organization: "Touchmark Demo".into(),
        hosts: vec!["localhost".into(), "127.0.0.1".into(), "::1".into()],
        log_origin: "demo.touchmark.local/log".into(),
        offline_root: None,
    };
    let installation = match &options.keys {
        DemoKeys::Files(passphrase) => Installation::init(dir, passphrase, &init, clock.now())?,
        DemoKeys::Provider(keys) => {
            Installation::init_with(dir, Arc::clone(keys), &init, clock.now())?
        }
    };
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&Installation::database_path(dir))?);
    installation.claim(store.as_ref(), clock.now()).await?;
    let store_for_server = Arc::clone(&store);
    let server = Server::bind(
        options.listen,
        &installation,
        store_for_server,
        clock,
        LogConfig::default(),
    )
    .await
    .map_err(|e| Error::Server(e.into()))?;
    let port = server
        .local_addr()
        .map_err(|e| Error::Server(e.into()))?
        .port();
    let log = Arc::clone(server.log());
    let projector = Arc::clone(server.projector());
    let admin = NewTokenRequest {
        role: Role::Admin,
        label: Label::parse("label", "touchmark demo")
            .map_err(|e| Error::Fixture(e.to_string()))?,
    };
    let (_, _, token) = server
        .authority()
        .create_token(Actor::System, admin)
        .await
        .map_err(Error::Token)?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));
    let url = format!("https://localhost:{port}");
    let root_path = Installation::server_root_path(dir);
    let root = std::fs::read_to_string(&root_path).map_err(io("read", &root_path))?;
    progress.say(&format!(
        "Touchmark demo: server at {url}, data in {}",
        dir.display()
    ));

    let mut config = ClientConfig::new(url.clone(), root.clone());
    config.token = Some(token.clone());
    let admin = Client::new(config)?;
    // Release keys are agreement keys, which the PKCS#11 provider does not make yet: on a
    // token, the demo's order carries no release.
    let firmware = matches!(options.keys, DemoKeys::Files(_));
    fixtures(&admin, firmware).await?;
    if firmware {
        progress.say(&format!(
            "Release {RELEASE_VERSION} of sensor-v2 uploaded, signed and encrypted to a key only the server holds; \
             order {ORDER} delivers it, re-wrapped to each unit's own key."
        ));
    }
    let mut stations = Vec::new();
    for line in 1..=LINES {
        stations.push(enroll(&admin, &url, &root, &format!("line-{line}")).await?);
    }
    progress.say(&format!(
        "Product sensor-v2, factory cm-demo with {LINES} enrolled stations, order {ORDER} open with a quota of {QUOTA}."
    ));

    // 600 passing units and every 26th failing, dealt to the lines in turn.
    let total = PASSING + PASSING / (FAIL_EVERY - 1);
    let mut rng = sim::rng(Some(2026));
    let serials = (1..=total).map(|n| format!("SN-{n:06}"));
    let fails = |i: usize, _: &mut _| (i as u64 + 1).is_multiple_of(FAIL_EVERY);
    let all = Line::new(serials, fails, &mut rng)?;
    let mut per_line: Vec<Vec<SimUnit>> = vec![Vec::new(); LINES];
    for (i, unit) in all.units.iter().enumerate() {
        per_line[i % LINES].push(unit.clone());
    }
    if let Some(last) = per_line.last_mut() {
        drift(last);
    }
    progress.say(&format!(
        "Running {LINES} lines on {total} units ({} will fail their test)...",
        total - PASSING
    ));
    let mut lines = Vec::new();
    for (i, (units, station)) in per_line.into_iter().zip(&stations).enumerate() {
        let on_unit = progress.line(&format!("line-{}", i + 1), units.len() as u64);
        // The drifting line tests one unit at a time, as a single fixture does: its units reach
        // the server in the order it tested them, which is the series drift watches. Four at a
        // time would shuffle neighbours under load, and the moving range would see the shuffle
        // as noise.
        let fixtures = if i + 1 == LINES { 1 } else { 4 };
        lines.push(tokio::spawn(sim::run_line(
            station.clone(),
            ORDER.into(),
            units,
            fixtures,
            0.0,
            Some(on_unit),
        )));
    }
    let mut tally = Tally::default();
    for line in lines {
        let (line_tally, _) = line.await.map_err(|_| Error::LineDied)?;
        tally.merge(&line_tally);
    }
    progress.lines_done();

    // Two clones: a serial seen again with a new key, and a key seen again with a new serial.
    let order = OrderId::parse(ORDER).map_err(|e| Error::Fixture(e.to_string()))?;
    let issued = store.units(&order).await?;
    let first = issued
        .iter()
        .find(|u| u.status == UnitStatus::Provisioned)
        .map(|u| u.serial.to_string());
    if let Some(first) = first {
        let number: usize = first.trim_start_matches("SN-").parse().unwrap_or(1);
        let (serial_clone, _) = SimUnit::new(first.clone(), Kind::CloneSerial, &mut rng)?;
        let mut clones = vec![serial_clone];
        if let Some(key) = number.checked_sub(1).and_then(|i| all.keys.get(i)) {
            clones.push(SimUnit::clone_key("SN-000900".into(), key, &mut rng)?);
        }
        for unit in clones {
            let outcome = match stations.first() {
                Some(station) => sim::provision(station, ORDER, &unit).await,
                None => Outcome::Error("no station".into()),
            };
            tally.add(unit.kind, &outcome);
            if let Outcome::Refused(code) = &outcome {
                progress.say(&format!(
                    "Clone {} ({:?}) refused: {code}",
                    unit.serial, unit.kind
                ));
            }
        }
    }

    let (audit_report, agrees) = audit(&log, &store, &url, dir).await?;
    // What the oversight rules saw.
    projector.catch_up().await.map_err(Error::Oversight)?;
    let raised = store.alerts(false).await?;
    let mut alerts = BTreeMap::new();
    for a in &raised {
        *alerts.entry(a.kind.as_str().to_owned()).or_insert(0) += 1;
    }
    let drift_alert = raised
        .iter()
        .find(|a| a.kind == touchmark_core::alert::AlertKind::MeasurementDrift)
        .map(|a| {
            format!(
                "{} {}",
                a.station.as_ref().map(|s| s.as_str()).unwrap_or("-"),
                a.evidence
                    .get("measurement")
                    .map(String::as_str)
                    .unwrap_or("-")
            )
        });
    let logged_issued = audit_report.orders.get(ORDER).map_or(0, |o| o.issued);
    let mut summary = Summary {
        url: url.clone(),
        data: dir.display().to_string(),
        quota: QUOTA,
        issued: tally.issued,
        refused_beyond_quota: tally.refused_with("quota_exhausted"),
        failed_tests: tally.refused_with("test_failed"),
        clones: tally.clones.clone(),
        errors: tally.errors.values().sum(),
        events_replayed: audit_report.events,
        checkpoint_size: audit_report.checkpoint.size,
        audit_violations: audit_report
            .violations
            .iter()
            .map(|v| v.to_string())
            .collect(),
        database_agrees_with_log: agrees,
        seconds: started.elapsed().as_secs_f64(),
        dashboard: format!("{url}/ui"),
        alerts,
        drift_alert,
        firmware_opened: firmware.then_some(tally.firmware_opened),
        as_expected: false,
        problems: Vec::new(),
    };
    summary.check(total, logged_issued, &tally.errors);
    Ok(Demo {
        summary,
        token,
        admin,
        stations,
        trickle: None,
        stop,
        serving,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn prepare_never_deletes_what_it_did_not_make() {
        let tmp = tempfile::tempdir().unwrap();
        let fresh = prepare(Some(tmp.path().join("new"))).unwrap();
        assert!(fresh.join(MARKER).is_file());
        // A directory given by name is used only when it is empty, even an earlier demo's.
        assert!(matches!(
            prepare(Some(fresh.clone())),
            Err(Error::NotADemo(_))
        ));
        let mine = tmp.path().join("mine");
        std::fs::create_dir(&mine).unwrap();
        std::fs::write(mine.join("precious.txt"), "keep").unwrap();
        assert!(matches!(
            prepare(Some(mine.clone())),
            Err(Error::NotADemo(_))
        ));
        assert!(mine.join("precious.txt").exists());
        let empty = tmp.path().join("empty");
        std::fs::create_dir(&empty).unwrap();
        assert_eq!(prepare(Some(empty.clone())).unwrap(), empty);
    }

    /// Wherever the quota stops the drifting line (the other two lines pass at most 400 units,
    /// so it issues at least 100), the rule sees the drift in the units it passed, in the
    /// order it tested them, and every value passes its limits.
    #[test]
    fn the_drift_is_seen_wherever_the_quota_stops_the_line() {
        let total = (PASSING + PASSING / (FAIL_EVERY - 1)) as usize;
        let line: Vec<usize> = (0..total).filter(|i| i % LINES == LINES - 1).collect();
        let n = line.len();
        let passing: Vec<f64> = line
            .iter()
            .enumerate()
            .filter(|(_, i)| !(**i as u64 + 1).is_multiple_of(FAIL_EVERY))
            .map(|(k, _)| drifting_current(k, n))
            .collect();
        assert!(passing.iter().all(|v| (35.0..=50.0).contains(v)));
        let config = touchmark_core::policy::alerts::AlertConfig::default();
        let order = OrderId::parse(ORDER).unwrap();
        let station = touchmark_core::StationId::parse(DRIFTING_LINE).unwrap();
        let mut unseen = Vec::new();
        for end in 100..=passing.len() {
            let raised = touchmark_core::policy::alerts::drift(
                &order,
                &station,
                DRIFTING_MEASUREMENT,
                &passing[..end],
                Some(35.0),
                Some(50.0),
                &config,
            );
            if raised.is_none() {
                unseen.push(end);
            }
        }
        assert_eq!(unseen, Vec::<usize>::new(), "cut points without an alert");
    }
}
