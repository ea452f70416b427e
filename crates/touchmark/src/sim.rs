//! The line simulator: units with their own keys and realistic test records, provisioned by a
//! station at a set concurrency and rate, with a tally of every outcome.
//!
//! Each simulated unit stands in for a device with a secure element: its P-256 key is made for
//! it and never leaves it; only its CSR goes to the server.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::ProgressBar;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use touchmark_client::{Client, ClientError};
use touchmark_core::api::ProvisionRequest;
use touchmark_pki::{KeyAlgorithm, SoftwareSigner, build_csr};

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
}

/// A unit's key, kept so a clone can reuse it.
pub struct UnitKey(SoftwareSigner);

impl SimUnit {
    /// A unit with a fresh key.
    ///
    /// # Errors
    /// When the key or CSR cannot be made.
    pub fn new(serial: String, kind: Kind, rng: &mut StdRng) -> anyhow::Result<(Self, UnitKey)> {
        let key = SoftwareSigner::generate(KeyAlgorithm::EcdsaP256)?;
        let unit = Self::with_key(serial, kind, &key, rng)?;
        Ok((unit, UnitKey(key)))
    }

    /// A unit whose CSR is signed by an existing key (a cloned secure element).
    ///
    /// # Errors
    /// When the CSR cannot be made.
    pub fn with_key(
        serial: String,
        kind: Kind,
        key: &SoftwareSigner,
        rng: &mut StdRng,
    ) -> anyhow::Result<Self> {
        let csr = touchmark_pki::pem::encode("CERTIFICATE REQUEST", &build_csr(key, &serial)?);
        let test = test_record(kind == Kind::FailsTest, rng);
        Ok(Self {
            serial,
            csr,
            test,
            kind,
        })
    }

    /// A unit reusing `original`'s key under another serial.
    ///
    /// # Errors
    /// When the CSR cannot be made.
    pub fn clone_key(serial: String, original: &UnitKey, rng: &mut StdRng) -> anyhow::Result<Self> {
        Self::with_key(serial, Kind::CloneKey, &original.0, rng)
    }
}

/// A realistic functional test: power, radio, flash and sensor calibration, with limits.
pub fn test_record(fail: bool, rng: &mut StdRng) -> serde_json::Value {
    let start = time::OffsetDateTime::now_utc() - time::Duration::seconds(rng.random_range(30..90));
    let end = start + time::Duration::seconds(rng.random_range(20..30));
    let current = rng.random_range(41.0..47.0_f64);
    // A failing unit transmits too hot: outside the 10–20 dBm window.
    let tx = if fail {
        rng.random_range(20.5..23.0_f64)
    } else {
        rng.random_range(12.0..18.0_f64)
    };
    let offset = rng.random_range(-0.4..0.4_f64);
    let round = |v: f64| (v * 100.0).round() / 100.0;
    let verdict = if fail { "fail" } else { "pass" };
    let rf = if fail { "fail" } else { "pass" };
    serde_json::json!({
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

    /// Merges another tally into this one.
    pub fn merge(&mut self, other: &Tally) {
        self.sent += other.sent;
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

/// Sends one unit.
pub async fn provision(client: &Client, order: &str, unit: &SimUnit) -> Outcome {
    let request = ProvisionRequest {
        serial: unit.serial.clone(),
        csr: unit.csr.clone(),
        test: unit.test.clone(),
    };
    match client.provision(order, &request).await {
        Ok(done) if done.status == "already_issued" => Outcome::AlreadyIssued,
        Ok(_) => Outcome::Issued,
        Err(ClientError::Api { body, .. })
            if touchmark_core::code::ErrorCode::from_wire(&body.code)
                .is_some_and(|c| c.is_refusal()) =>
        {
            Outcome::Refused(body.code)
        }
        Err(ClientError::Api { body, .. }) => Outcome::Error(body.code),
        Err(e) => Outcome::Error(e.to_string()),
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
/// second, updating `bar` as it goes. Returns the tally and each unit's outcome, in order.
pub async fn run_line(
    client: Client,
    order: String,
    units: Vec<SimUnit>,
    concurrency: usize,
    rate: f64,
    bar: Option<ProgressBar>,
) -> (Tally, Vec<Outcome>) {
    let started = Instant::now();
    let units = Arc::new(units);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let tally = Arc::new(Mutex::new(Tally::default()));
    let outcomes = Arc::new(Mutex::new(vec![None; units.len()]));
    let pacer = Arc::new(Pacer::new(rate));
    let mut workers = Vec::new();
    for _ in 0..concurrency.max(1) {
        let (client, order, units, next, tally, outcomes, pacer, bar) = (
            client.clone(),
            order.clone(),
            Arc::clone(&units),
            Arc::clone(&next),
            Arc::clone(&tally),
            Arc::clone(&outcomes),
            Arc::clone(&pacer),
            bar.clone(),
        );
        workers.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let Some(unit) = units.get(i) else { break };
                pacer.wait().await;
                let outcome = provision(&client, &order, unit).await;
                let message = {
                    let mut t = tally.lock().unwrap_or_else(|p| p.into_inner());
                    t.add(unit.kind, &outcome);
                    t.progress(started.elapsed())
                };
                if let Some(slot) = outcomes
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get_mut(i)
                {
                    *slot = Some(outcome);
                }
                if let Some(bar) = &bar {
                    bar.inc(1);
                    bar.set_message(message);
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

/// A progress bar in Touchmark's style.
pub fn bar(len: u64, prefix: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{prefix:>8} [{bar:30}] {pos:>4}/{len:4} {msg}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_prefix(prefix.to_owned());
    bar
}
