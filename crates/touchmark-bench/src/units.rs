//! Simulated units, generated before any timing starts: each has its own P-256 key, a CSR
//! signed by it, and a realistic passing test record.

use std::sync::Arc;

use touchmark_core::api::ProvisionRequest;
use touchmark_pki::{KeyAlgorithm, SoftwareSigner, build_csr_with};

use crate::error::{Context as _, Error};

/// One unit, ready to send.
#[derive(Debug)]
pub(crate) struct Unit {
    /// The request a station sends for it.
    pub request: ProvisionRequest,
}

/// The serial prefix of a run on a server of its own. On a server that others share, a run
/// adds its own tag: a serial (and its test record) is unique across all of a server's orders.
pub(crate) const PREFIX: &str = "BENCH";

/// The unit serial for number `n`.
fn serial(prefix: &str, n: u64) -> String {
    format!("{prefix}-{n:010}")
}

/// A passing test record of unit `serial` as a factory test fixture would send it: four
/// steps, a few measurements inside their limits, values varying a little per unit.
fn passing_test(serial: &str, n: u64) -> serde_json::Value {
    let jitter = (n % 17) as f64 / 100.0;
    serde_json::json!({
        "serial": serial,
        "verdict": "pass",
        "started_at": "2026-11-21T06:00:00Z",
        "ended_at": "2026-11-21T06:00:42Z",
        "fixture_version": "fct-2.3.1",
        "steps": [
            {"name": "power_on", "outcome": "pass", "measurements": [
                {"name": "vbat_mv", "value": 3300.0 + 10.0 * jitter, "unit": "mV", "low": 3200, "high": 3400, "outcome": "pass"},
                {"name": "idle_current_ua", "value": 41.5 + jitter, "unit": "uA", "low": 0, "high": 60, "outcome": "pass"}]},
            {"name": "rf_power", "outcome": "pass", "measurements": [
                {"name": "tx_dbm", "value": 14.2 + jitter, "unit": "dBm", "low": 10, "high": 20, "outcome": "pass"},
                {"name": "rx_sensitivity_dbm", "value": -97.0 + jitter, "unit": "dBm", "low": -110, "high": -90, "outcome": "pass"}]},
            {"name": "sensor_calibration", "outcome": "pass", "measurements": [
                {"name": "temp_offset_c", "value": 0.12 - jitter, "unit": "C", "low": -0.5, "high": 0.5, "outcome": "pass"}]},
            {"name": "firmware", "outcome": "pass", "measurements": [
                {"name": "fw_version", "value": "1.4.2", "outcome": "pass"}]}
        ]
    })
}

/// Unit `n`; with `encryption_key`, its CSR also carries an X25519 encryption key of its own
/// (for an order that delivers a release).
fn unit(prefix: &str, n: u64, encryption_key: bool) -> Result<Unit, Error> {
    let serial = serial(prefix, n);
    let key =
        SoftwareSigner::generate(KeyAlgorithm::EcdsaP256).context("cannot generate a unit key")?;
    let spki = if encryption_key {
        Some(
            touchmark_firmware::SoftwareAgreementKey::generate(touchmark_firmware::Curve::X25519)
                .context("cannot generate a unit's encryption key")?
                .public_key()
                .spki_der(),
        )
    } else {
        None
    };
    let csr = build_csr_with(&key, &serial, spki.as_deref()).context("cannot build a CSR")?;
    Ok(Unit {
        request: ProvisionRequest {
            csr: touchmark_pki::pem::encode("CERTIFICATE REQUEST", &csr),
            test: passing_test(&serial, n),
            serial,
            encryption_key: None,
            attestation: None,
        },
    })
}

/// Generates units `first .. first + count`, their serials starting with `prefix`, on every
/// core.
///
/// # Errors
/// When a key or CSR cannot be made.
pub(crate) async fn generate(
    prefix: &str,
    first: u64,
    count: usize,
) -> Result<Arc<Vec<Unit>>, Error> {
    generate_for(prefix, first, count, false).await
}

/// [`generate`], each unit's CSR carrying an encryption key of its own, for an order that
/// delivers a release.
///
/// # Errors
/// When a key or CSR cannot be made.
pub(crate) async fn generate_with_encryption_keys(
    prefix: &str,
    first: u64,
    count: usize,
) -> Result<Arc<Vec<Unit>>, Error> {
    generate_for(prefix, first, count, true).await
}

async fn generate_for(
    prefix: &str,
    first: u64,
    count: usize,
    encryption_keys: bool,
) -> Result<Arc<Vec<Unit>>, Error> {
    let prefix: Arc<str> = prefix.into();
    let threads = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .min(count.max(1));
    tokio::task::spawn_blocking(move || {
        let chunk = count.div_ceil(threads);
        let parts: Vec<Result<Vec<Unit>, Error>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    let start = (t * chunk).min(count);
                    let end = ((t + 1) * chunk).min(count);
                    let prefix = Arc::clone(&prefix);
                    scope.spawn(move || {
                        (start..end)
                            .map(|i| unit(&prefix, first + i as u64, encryption_keys))
                            .collect::<Result<Vec<Unit>, Error>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or(Err(Error::Died("a unit generator thread")))
                })
                .collect()
        });
        let mut units = Vec::with_capacity(count);
        for part in parts {
            units.extend(part?);
        }
        Ok(Arc::new(units))
    })
    .await
    .map_err(|_| Error::Died("unit generation"))?
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use touchmark_core::testrecord::TestRecord;

    use super::*;

    #[test]
    fn the_test_record_parses_and_passes() {
        for n in [0, 5, 16, 1_000_003] {
            let record = TestRecord::parse(&passing_test(&serial(PREFIX, n), n)).unwrap();
            assert!(record.passed(), "unit {n}");
            assert_eq!(record.serial, Some(serial(PREFIX, n)), "unit {n}");
        }
    }

    #[test]
    fn the_csr_verifies() {
        let unit = unit(PREFIX, 42, false).unwrap();
        assert_eq!(unit.request.serial, "BENCH-0000000042");
        touchmark_pki::parse_csr(unit.request.csr.as_bytes()).unwrap();
    }
}
