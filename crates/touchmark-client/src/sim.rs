//! The line simulator: units with their own keys and realistic test records, provisioned by a
//! station at a set concurrency and rate, with a tally of every outcome. `touchmark station
//! run` and the demo run it; clones of issued units stand in for counterfeits.
//!
//! Each simulated unit stands in for a device with a secure element ([`Element`]): its P-256
//! key and its X25519 firmware encryption key are made for it and never leave it; only its CSR,
//! which carries the encryption key, goes to the server. On an order with a release, it fetches
//! its image and opens it as its bootloader would.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use touchmark_core::api::ProvisionRequest;
use touchmark_pki::{KeyAlgorithm, SoftwareSigner, build_csr, build_csr_with};

use crate::element::Element;
use crate::{Client, ClientError};

/// What the simulator meant a unit to be, so the outcome can be checked against it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Passes its test.
    Good,
    /// Fails its test.
    FailsTest,
    /// Reuses an earlier unit's serial with a new key.
    CloneSerial,
    /// Reuses an earlier unit's key with a new serial.
    CloneKey,
}

/// One simulated unit: serial, CSR and test record.
#[derive(Debug, Clone)]
pub struct SimUnit {
    /// The serial.
    pub serial: String,
    /// The CSR, PEM.
    pub csr: String,
    /// The test record.
    pub test: serde_json::Value,
    /// What it is meant to be.
    pub kind: Kind,
    /// Its secure element, when it has its own keys (a clone's is not modelled).
    pub element: Option<Arc<Element>>,
}

/// A unit's key, kept so a clone can reuse it.
#[derive(Debug)]
pub struct UnitKey(Arc<SoftwareSigner>);

impl SimUnit {
    /// A unit with a fresh key.
    ///
    /// # Errors
    /// [`ClientError::Key`] when the key or CSR cannot be made.
    pub fn new(
        serial: String,
        kind: Kind,
        rng: &mut StdRng,
    ) -> Result<(Self, UnitKey), ClientError> {
        let key =
            Arc::new(SoftwareSigner::generate(KeyAlgorithm::EcdsaP256).map_err(ClientError::key)?);
        let unit = Self::with_element(serial, kind, Element::new(Arc::clone(&key))?, rng)?;
        Ok((unit, UnitKey(key)))
    }

    /// A unit with its secure element: its CSR carries the element's encryption key.
    fn with_element(
        serial: String,
        kind: Kind,
        element: Element,
        rng: &mut StdRng,
    ) -> Result<Self, ClientError> {
        let csr = build_csr_with(
            element.identity.as_ref(),
            &serial,
            Some(&element.encryption_key_spki()),
        )
        .map_err(ClientError::key)?;
        Ok(Self {
            csr: touchmark_pki::pem::encode("CERTIFICATE REQUEST", &csr),
            test: test_record(&serial, kind == Kind::FailsTest, rng),
            serial,
            kind,
            element: Some(Arc::new(element)),
        })
    }

    /// A unit whose CSR is signed by an existing key, with no encryption key of its own.
    ///
    /// # Errors
    /// [`ClientError::Key`] when the CSR cannot be made.
    pub fn with_key(
        serial: String,
        kind: Kind,
        key: &SoftwareSigner,
        rng: &mut StdRng,
    ) -> Result<Self, ClientError> {
        let csr = build_csr(key, &serial).map_err(ClientError::key)?;
        let csr = touchmark_pki::pem::encode("CERTIFICATE REQUEST", &csr);
        let test = test_record(&serial, kind == Kind::FailsTest, rng);
        Ok(Self {
            serial,
            csr,
            test,
            kind,
            element: None,
        })
    }

    /// A unit reusing `original`'s key under another serial.
    ///
    /// # Errors
    /// [`ClientError::Key`] when the CSR cannot be made.
    pub fn clone_key(
        serial: String,
        original: &UnitKey,
        rng: &mut StdRng,
    ) -> Result<Self, ClientError> {
        // A copied secure element: the same identity key, which signs its CSR.
        Self::with_element(
            serial,
            Kind::CloneKey,
            Element::new(Arc::clone(&original.0))?,
            rng,
        )
    }
}

/// The units of a line, with their keys kept so that clones can reuse them.
#[derive(Debug)]
pub struct Line {
    /// The units, in the order they were made.
    pub units: Vec<SimUnit>,
    /// Each unit's key, in the same order.
    pub keys: Vec<UnitKey>,
}

impl Line {
    /// A unit for each of `serials`, each with a fresh key; `fails(i, rng)` says whether the
    /// `i`-th fails its test.
    ///
    /// # Errors
    /// [`ClientError::Key`] when a key or CSR cannot be made.
    pub fn new(
        serials: impl IntoIterator<Item = String>,
        mut fails: impl FnMut(usize, &mut StdRng) -> bool,
        rng: &mut StdRng,
    ) -> Result<Self, ClientError> {
        let (mut units, mut keys) = (Vec::new(), Vec::new());
        for (i, serial) in serials.into_iter().enumerate() {
            let kind = if fails(i, rng) {
                Kind::FailsTest
            } else {
                Kind::Good
            };
            let (unit, key) = SimUnit::new(serial, kind, rng)?;
            units.push(unit);
            keys.push(key);
        }
        Ok(Self { units, keys })
    }

    /// Clones of the good units that were issued (`outcomes` in the order of the units), to
    /// send after the line: `serial_clones` units reuse such a unit's serial with a new key
    /// (expect `serial_conflict`), and one unit per serial of `key_clone_serials` reuses such a
    /// unit's key (expect `key_reused`), taking the issued units in turn. `None` when no good
    /// unit was issued.
    ///
    /// # Errors
    /// [`ClientError::Key`] when a key or CSR cannot be made.
    pub fn clones(
        &self,
        outcomes: &[Outcome],
        serial_clones: u64,
        key_clone_serials: impl IntoIterator<Item = String>,
        rng: &mut StdRng,
    ) -> Result<Option<Vec<SimUnit>>, ClientError> {
        let issued: Vec<usize> = outcomes
            .iter()
            .enumerate()
            .filter(|(i, o)| {
                matches!(o, Outcome::Issued | Outcome::AlreadyIssued)
                    && self.units.get(*i).is_some_and(|u| u.kind == Kind::Good)
            })
            .map(|(i, _)| i)
            .collect();
        if issued.is_empty() {
            return Ok(None);
        }
        let mut clones = Vec::new();
        let serial_clones = usize::try_from(serial_clones).unwrap_or(usize::MAX);
        for &i in issued.iter().cycle().take(serial_clones) {
            let (unit, _) = SimUnit::new(self.units[i].serial.clone(), Kind::CloneSerial, rng)?;
            clones.push(unit);
        }
        for (serial, &i) in key_clone_serials.into_iter().zip(issued.iter().cycle()) {
            clones.push(SimUnit::clone_key(serial, &self.keys[i], rng)?);
        }
        Ok(Some(clones))
    }
}

/// A station's run, as `touchmark station run` makes it: a line of simulated units, then clones
/// of units the line issued.
#[derive(Debug, Clone)]
pub struct Run {
    /// The order to provision against.
    pub order: String,
    /// How many units to simulate.
    pub units: u64,
    /// The serial prefix: serials are the prefix and a zero-padded number.
    pub prefix: String,
    /// The number of the first serial.
    pub first: u64,
    /// Digits of the serial number.
    pub digits: usize,
    /// Units in flight at once.
    pub concurrency: usize,
    /// Share of units that fail their test, 0.0 to 1.0.
    pub fail_rate: f64,
    /// Extra units that reuse an issued unit's serial with a new key.
    pub clone_serials: u64,
    /// Extra units that reuse an issued unit's key with a new serial.
    pub clone_keys: u64,
    /// Most units started per second (0: no limit).
    pub rate: f64,
    /// Seed for the simulated test results, so that a run can be repeated.
    pub seed: Option<u64>,
}

/// What a [`Run`] did.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    /// Every unit's outcome, clones included.
    pub tally: Tally,
    /// Clones were asked for, but no unit was issued to clone.
    pub nothing_to_clone: bool,
}

impl Run {
    /// Checks the settings.
    ///
    /// # Errors
    /// [`ClientError::Plan`] naming the setting as `touchmark station run` spells its flag.
    pub fn check(&self) -> Result<(), ClientError> {
        let bad = |message: String| Err(ClientError::Plan(message));
        if !(0.0..=1.0).contains(&self.fail_rate) {
            return bad("--fail-rate must be between 0 and 1".into());
        }
        if !(1..=1024).contains(&self.concurrency) {
            return bad("--concurrency must be 1 to 1024".into());
        }
        if self.rate < 0.0 || !self.rate.is_finite() {
            return bad(
                "--rate must be a positive number of units per second, or 0 for no limit".into(),
            );
        }
        if self.units > 1_000_000 {
            return bad("--units must be at most 1,000,000".into());
        }
        let last = self
            .first
            .checked_add(self.units + self.clone_keys)
            .filter(|n| n.to_string().len() <= self.digits);
        if last.is_none() {
            return bad(format!(
                "serials from {} for {} units do not fit in {} digits",
                self.first, self.units, self.digits
            ));
        }
        Ok(())
    }

    /// The units the run sends, clones included.
    pub fn total(&self) -> u64 {
        self.units + self.clone_serials + self.clone_keys
    }

    fn serial(&self, n: u64) -> String {
        format!("{}{:0width$}", self.prefix, n, width = self.digits)
    }

    /// Runs the line through `client`, then the clones, handing `on_unit` the tally's progress
    /// message after each unit.
    ///
    /// # Errors
    /// [`ClientError::Key`] when a key or CSR cannot be made. Refusals are outcomes.
    pub async fn run(
        &self,
        client: Client,
        on_unit: Option<Arc<dyn Fn(String) + Send + Sync>>,
    ) -> Result<RunOutcome, ClientError> {
        let mut rng = rng(self.seed);
        let serials = (self.first..self.first + self.units).map(|n| self.serial(n));
        let line = Line::new(serials, |_, rng| rng.random_bool(self.fail_rate), &mut rng)?;
        let (mut tally, outcomes) = run_line(
            client.clone(),
            self.order.clone(),
            line.units.clone(),
            self.concurrency,
            self.rate,
            on_unit.clone(),
        )
        .await;

        // Clones go after the line, against units that were really issued.
        let first_key_clone = self.first + self.units;
        let key_clones =
            (first_key_clone..first_key_clone + self.clone_keys).map(|n| self.serial(n));
        let clones = line.clones(&outcomes, self.clone_serials, key_clones, &mut rng)?;
        let asked = self.clone_serials > 0 || self.clone_keys > 0;
        if let Some(clones) = clones.filter(|c| !c.is_empty()) {
            let (clone_tally, _) = run_line(
                client,
                self.order.clone(),
                clones,
                self.concurrency,
                self.rate,
                on_unit,
            )
            .await;
            // The clones run after the line, so their time adds to it (merge keeps the longer
            // of two tallies, which is right for lines that run side by side).
            let line_seconds = tally.seconds;
            tally.merge(&clone_tally);
            tally.seconds = line_seconds + clone_tally.seconds;
            return Ok(RunOutcome {
                tally,
                nothing_to_clone: false,
            });
        }
        Ok(RunOutcome {
            tally,
            nothing_to_clone: asked,
        })
    }
}

/// A realistic functional test of unit `serial`: power, radio, flash and sensor calibration,
/// with limits. The record names the unit it tested, as the server requires.
pub fn test_record(serial: &str, fail: bool, rng: &mut StdRng) -> serde_json::Value {
    let start = time::OffsetDateTime::now_utc() - time::Duration::seconds(rng.random_range(30..90));
    let end = start + time::Duration::seconds(rng.random_range(20..30));
    // A capable process: each passing value well inside its limits (Cpk above 2).
    let current = rng.random_range(43.0..46.0_f64);
    // A failing unit transmits too hot: outside the 10–20 dBm window.
    let tx = if fail {
        rng.random_range(20.5..23.0_f64)
    } else {
        rng.random_range(14.0..16.5_f64)
    };
    let offset = rng.random_range(-0.15..0.15_f64);
    let round = |v: f64| (v * 100.0).round() / 100.0;
    let verdict = if fail { "fail" } else { "pass" };
    let rf = if fail { "fail" } else { "pass" };
    serde_json::json!({
        "serial": serial,
        "verdict": verdict,
        "started_at": touchmark_core::clock::format_timestamp(start),
        "ended_at": touchmark_core::clock::format_timestamp(end),
        "fixture_version": "touchmark-sim/1",
        "steps": [
            {"name": "power_on", "outcome": "pass", "measurements": [
                {"name": "idle_current", "value": round(current), "unit": "mA", "low": 35.0, "high": 50.0, "outcome": "pass"}]},
            {"name": "rf_power", "outcome": rf, "measurements": [
                {"name": "tx_dbm", "value": round(tx), "unit": "dBm", "low": 10.0, "high": 20.0, "outcome": rf}]},
            {"name": "flash_verify", "outcome": "pass", "measurements": [
                {"name": "crc_ok", "value": true, "outcome": "pass"}]},
            {"name": "sensor_cal", "outcome": "pass", "measurements": [
                {"name": "temp_offset", "value": round(offset), "unit": "degC", "low": -0.5, "high": 0.5, "outcome": "pass"}]}
        ]
    })
}

/// What happened to one unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Issued now.
    Issued,
    /// Issued before; the same certificate came back.
    AlreadyIssued,
    /// Refused with this code (including `test_failed`).
    Refused(String),
    /// No answer from the server's policy: transport or server error.
    Error(String),
}

/// Counts of outcomes.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Tally {
    /// Units sent.
    pub sent: u64,
    /// Issued now.
    pub issued: u64,
    /// Issued before (retries).
    pub already_issued: u64,
    /// Refused, by code (`test_failed` included).
    pub refused: BTreeMap<String, u64>,
    /// Errors, by message.
    pub errors: BTreeMap<String, u64>,
    /// Outcomes of the clones: code by kind.
    pub clones: BTreeMap<String, BTreeMap<String, u64>>,
    /// Units whose firmware image was delivered and opened with their own key.
    pub firmware_opened: u64,
    /// Wall time, seconds.
    pub seconds: f64,
}

impl Tally {
    /// Adds one unit's outcome.
    pub fn add(&mut self, kind: Kind, outcome: &Outcome) {
        self.sent += 1;
        let label = match outcome {
            Outcome::Issued => {
                self.issued += 1;
                "issued".to_owned()
            }
            Outcome::AlreadyIssued => {
                self.already_issued += 1;
                "already_issued".to_owned()
            }
            Outcome::Refused(code) => {
                *self.refused.entry(code.clone()).or_default() += 1;
                code.clone()
            }
            Outcome::Error(message) => {
                *self.errors.entry(message.clone()).or_default() += 1;
                "error".to_owned()
            }
        };
        if matches!(kind, Kind::CloneKey | Kind::CloneSerial) {
            let kind = serde_json::to_value(kind)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            *self
                .clones
                .entry(kind)
                .or_default()
                .entry(label)
                .or_default() += 1;
        }
    }

    /// Adds whether a unit's delivered image opened with its own key; one that did not is an
    /// error.
    pub fn add_firmware(&mut self, opened: &Result<(), String>) {
        match opened {
            Ok(()) => self.firmware_opened += 1,
            Err(e) => {
                *self
                    .errors
                    .entry(format!("firmware did not open: {e}"))
                    .or_default() += 1;
            }
        }
    }

    /// Merges another tally into this one.
    pub fn merge(&mut self, other: &Tally) {
        self.sent += other.sent;
        self.firmware_opened += other.firmware_opened;
        self.issued += other.issued;
        self.already_issued += other.already_issued;
        for (k, v) in &other.refused {
            *self.refused.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &other.errors {
            *self.errors.entry(k.clone()).or_default() += v;
        }
        for (kind, codes) in &other.clones {
            let mine = self.clones.entry(kind.clone()).or_default();
            for (k, v) in codes {
                *mine.entry(k.clone()).or_default() += v;
            }
        }
        self.seconds = self.seconds.max(other.seconds);
    }

    /// Refusals with `code`.
    pub fn refused_with(&self, code: &str) -> u64 {
        self.refused.get(code).copied().unwrap_or(0)
    }

    /// The one-line progress message.
    pub fn progress(&self, elapsed: Duration) -> String {
        let refused: u64 = self
            .refused
            .iter()
            .filter(|(c, _)| c.as_str() != "test_failed")
            .map(|(_, n)| n)
            .sum();
        let rate = self.sent as f64 / elapsed.as_secs_f64().max(1e-3);
        format!(
            "issued {} · failed tests {} · refused {} · errors {} · {:.0} units/s",
            self.issued + self.already_issued,
            self.refused_with("test_failed"),
            refused,
            self.errors.values().sum::<u64>(),
            rate
        )
    }
}

/// Sends one unit, and tells a refusal by the server's policy from an error.
pub async fn provision(client: &Client, order: &str, unit: &SimUnit) -> Outcome {
    provision_unit(client, order, unit).await.0
}

/// Sends one unit; when the answer delivers firmware, fetches the unit's image and opens it
/// with the unit's key.
/// Returns the outcome and, for an answer with firmware, whether the image opened.
pub async fn provision_unit(
    client: &Client,
    order: &str,
    unit: &SimUnit,
) -> (Outcome, Option<Result<(), String>>) {
    let request = ProvisionRequest {
        serial: unit.serial.clone(),
        csr: unit.csr.clone(),
        test: unit.test.clone(),
        // The CSR carries the unit's encryption key, when it has one.
        encryption_key: None,
        attestation: None,
    };
    match client.provision(order, &request).await {
        Ok(done) => {
            let outcome = if done.status == "already_issued" {
                Outcome::AlreadyIssued
            } else {
                Outcome::Issued
            };
            let opened = match (&done.firmware, &unit.element) {
                (Some(described), Some(element)) => {
                    Some(match client.unit_firmware(order, &unit.serial).await {
                        Ok(image) => element.open(&image, described),
                        Err(e) => Err(format!("the image could not be fetched: {e}")),
                    })
                }
                (Some(_), None) => Some(Err("a unit without its own keys got firmware".into())),
                (None, _) => None,
            };
            (outcome, opened)
        }
        Err(e) => {
            let outcome = match (e.refusal(), e.body()) {
                (Some(body), _) => Outcome::Refused(body.code.clone()),
                (None, Some(body)) => Outcome::Error(body.code.clone()),
                (None, None) => Outcome::Error(e.to_string()),
            };
            (outcome, None)
        }
    }
}

/// Spaces unit starts so that at most `rate` begin per second (0: no limit).
struct Pacer {
    interval: Option<Duration>,
    next: Mutex<Instant>,
}

impl Pacer {
    fn new(rate: f64) -> Self {
        let interval = (rate > 0.0).then(|| Duration::from_secs_f64(1.0 / rate));
        Self {
            interval,
            next: Mutex::new(Instant::now()),
        }
    }

    async fn wait(&self) {
        let Some(interval) = self.interval else {
            return;
        };
        let at = {
            let mut next = self.next.lock().unwrap_or_else(|p| p.into_inner());
            let at = (*next).max(Instant::now());
            *next = at + interval;
            at
        };
        tokio::time::sleep_until(at.into()).await;
    }
}

/// Provisions `units` through `client` with `concurrency` in flight, at most `rate` started per
/// second, handing `on_unit` the tally's one-line progress message after each unit. Returns
/// the tally and each unit's outcome, in order.
pub async fn run_line(
    client: Client,
    order: String,
    units: Vec<SimUnit>,
    concurrency: usize,
    rate: f64,
    on_unit: Option<Arc<dyn Fn(String) + Send + Sync>>,
) -> (Tally, Vec<Outcome>) {
    let started = Instant::now();
    let units = Arc::new(units);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let tally = Arc::new(Mutex::new(Tally::default()));
    let outcomes = Arc::new(Mutex::new(vec![None; units.len()]));
    let pacer = Arc::new(Pacer::new(rate));
    let mut workers = Vec::new();
    for _ in 0..concurrency.max(1) {
        let (client, order, units, next, tally, outcomes, pacer, on_unit) = (
            client.clone(),
            order.clone(),
            Arc::clone(&units),
            Arc::clone(&next),
            Arc::clone(&tally),
            Arc::clone(&outcomes),
            Arc::clone(&pacer),
            on_unit.clone(),
        );
        workers.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let Some(unit) = units.get(i) else { break };
                pacer.wait().await;
                let (outcome, opened) = provision_unit(&client, &order, unit).await;
                let message = {
                    let mut t = tally.lock().unwrap_or_else(|p| p.into_inner());
                    t.add(unit.kind, &outcome);
                    if let Some(opened) = opened {
                        t.add_firmware(&opened);
                    }
                    t.progress(started.elapsed())
                };
                if let Some(slot) = outcomes
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get_mut(i)
                {
                    *slot = Some(outcome);
                }
                if let Some(on_unit) = &on_unit {
                    on_unit(message);
                }
            }
        }));
    }
    for worker in workers {
        if let Err(e) = worker.await {
            tracing::error!(error = %e, "a simulator worker failed");
        }
    }
    let mut tally = Arc::try_unwrap(tally)
        .map(|m| m.into_inner().unwrap_or_else(|p| p.into_inner()))
        .unwrap_or_default();
    tally.seconds = started.elapsed().as_secs_f64();
    let outcomes = Arc::try_unwrap(outcomes)
        .map(|m| m.into_inner().unwrap_or_else(|p| p.into_inner()))
        .unwrap_or_default()
        .into_iter()
        .map(|o| o.unwrap_or_else(|| Outcome::Error("not sent".into())))
        .collect();
    (tally, outcomes)
}

/// A seeded random source: the same seed gives the same test results.
pub fn rng(seed: Option<u64>) -> StdRng {
    match seed {
        Some(seed) => StdRng::seed_from_u64(seed),
        None => StdRng::from_os_rng(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_line_clones_only_its_issued_good_units_in_turn() {
        let serials = (1..=4).map(|n| format!("SN-{n:06}"));
        let line = Line::new(serials, |i, _| i == 1, &mut rng(Some(7))).unwrap();
        let kinds: Vec<Kind> = line.units.iter().map(|u| u.kind).collect();
        assert_eq!(kinds, [Kind::Good, Kind::FailsTest, Kind::Good, Kind::Good]);

        // Unit 0 issued, 1 failed its test, 2 refused, 3 issued on a retry.
        let outcomes = [
            Outcome::Issued,
            Outcome::Refused("test_failed".into()),
            Outcome::Refused("quota_exhausted".into()),
            Outcome::AlreadyIssued,
        ];
        let mut rng = rng(Some(8));
        let clones = line
            .clones(&outcomes, 3, ["SN-000900".to_owned()], &mut rng)
            .unwrap()
            .unwrap();
        let seen: Vec<(&str, Kind)> = clones.iter().map(|u| (u.serial.as_str(), u.kind)).collect();
        assert_eq!(
            seen,
            [
                ("SN-000001", Kind::CloneSerial),
                ("SN-000004", Kind::CloneSerial),
                ("SN-000001", Kind::CloneSerial),
                ("SN-000900", Kind::CloneKey),
            ]
        );
        let none = vec![Outcome::Error("down".into()); 4];
        assert!(line.clones(&none, 1, [], &mut rng).unwrap().is_none());
    }
}
