//! `touchmark bench firmware`'s end-to-end part, over HTTPS with station mTLS against a server
//! in this process (SQLite): provisioning on an order that delivers a release beside the same
//! on an order that does not, alternated round by round; the whole per-unit image of a 512 KiB
//! release streamed to one station; and 2 MiB releases uploaded and checked.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use touchmark_client::Client;
use touchmark_core::api::{AddFirmwareKey, CreateOrder, CreateReleaseKey};
use touchmark_firmware::PublicKey;

use crate::cpu::process_cpu;
use crate::error::{Context as _, Error};
use crate::firmware::{image_of, median, signing_key};
use crate::load::{self, Sample};
use crate::setup::{Backend, Touchmark};
use crate::units::{self, Unit};

/// The target of issue 13: provisioning with a release at 90% or more of the units/s without.
pub const RELEASE_RATIO_TARGET: f64 = 0.90;

/// The order that delivers the release.
const FIRMWARE_ORDER: &str = "bench-order-fw";

/// What the end-to-end part measured: medians of `rounds` rounds.
#[derive(Debug, Clone, Serialize)]
pub struct DeliveryReport {
    /// Rounds per figure.
    pub rounds: usize,
    /// Concurrent stations.
    pub concurrency: usize,
    /// Units per round and order.
    pub units_per_round: usize,
    /// Median units/s on the order without a release.
    pub plain_units_per_s: f64,
    /// Median units/s on the order that delivers a release (bound key, wrap, stored with the
    /// certificate).
    pub release_units_per_s: f64,
    /// Median of the rounds' ratios, release / plain (target ≥ 0.90).
    pub release_ratio: f64,
    /// p99 latency on the order with a release, ms (median of rounds).
    pub release_p99_ms: f64,
    /// Size of the per-unit image streamed, bytes.
    pub image_size: usize,
    /// Images streamed per round, one at a time to one station.
    pub images_per_round: usize,
    /// Median rate of whole per-unit images received, MB/s (10^6 bytes).
    pub image_mb_s: f64,
    /// Median bytes per CPU-second of this process (server and client together), MB.
    pub image_mb_per_cpu_s: Option<f64>,
    /// Size of the uploaded releases, bytes.
    pub upload_size: usize,
    /// Median time of an upload over HTTPS, checks included, ms.
    pub upload_ms: f64,
}

/// Provisions `units` on `order`, one worker per station; a unit counts only when it comes
/// back issued, with firmware exactly when `firmware` says so.
async fn drive(
    stations: &[Client],
    order: &str,
    units: Arc<Vec<Unit>>,
    firmware: bool,
) -> Result<Sample, Error> {
    let what = format!("order {order}");
    let order: Arc<str> = order.into();
    let sample = load::drive(stations, units, move |station: Client, units, i| {
        let order = Arc::clone(&order);
        async move {
            let Some(unit) = units.get(i) else {
                return Err(format!("no unit {i}"));
            };
            match station.provision(&order, &unit.request).await {
                Ok(done) if done.status == "issued" && done.firmware.is_some() == firmware => {
                    Ok(())
                }
                Ok(done) => Err(format!(
                    "{}: status `{}`, firmware {} (expected issued, firmware {firmware})",
                    unit.request.serial,
                    done.status,
                    done.firmware.is_some()
                )),
                Err(e) => Err(format!("{}: {e}", unit.request.serial)),
            }
        }
    })
    .await?;
    sample.check(&what)?;
    Ok(sample)
}

/// Runs the measurements with `concurrency` stations.
///
/// # Errors
/// When a step fails, or any request of a measured round does not end as expected.
pub async fn run(rounds: usize, quick: bool, concurrency: usize) -> Result<DeliveryReport, Error> {
    let rounds = rounds.max(1);
    let concurrency = concurrency.max(1);
    let tm = Touchmark::start(None, &Backend::Sqlite, concurrency).await?;
    let result = measure(&tm, rounds, quick, concurrency).await;
    tm.stop().await;
    result
}

async fn measure(
    tm: &Touchmark,
    rounds: usize,
    quick: bool,
    concurrency: usize,
) -> Result<DeliveryReport, Error> {
    let admin = tm.admin();
    let product = tm.product_id().to_owned();
    let key = admin
        .create_release_key(
            &product,
            &CreateReleaseKey {
                algorithm: Some("x25519".into()),
            },
        )
        .await
        .context("cannot make a release key")?;
    let release_key = PublicKey::from_pem(&key.public_key_pem).context("the release key")?;
    let (_, sign_pub) = signing_key()?;
    admin
        .add_firmware_key(
            &product,
            &AddFirmwareKey {
                public_key_pem: sign_pub.to_pem(),
            },
        )
        .await
        .context("cannot register the signing key")?;
    let image = image_of(512 * 1024, (1, 0, 0, 0), &release_key)?;
    admin
        .upload_release(&product, "1.0.0", &image, None)
        .await
        .context("cannot upload the release")?;
    let plain_order = admin.order(tm.order_id()).await.context("the order")?.order;
    admin
        .create_order(&CreateOrder {
            id: Some(FIRMWARE_ORDER.into()),
            product: product.clone(),
            factory: plain_order.factory.clone(),
            quota: plain_order.quota,
            serial_range: None,
            serial_pattern: None,
            not_before: None,
            not_after: None,
            open: true,
            release: Some("1.0.0".into()),
        })
        .await
        .context("cannot create the order with a release")?;
    let stations = tm.stations(concurrency);
    let units = if quick { 300 } else { 3000 };

    // A warm-up of each, then rounds alternating which goes first.
    let warm = units::generate("BENCH-WP", 0, concurrency * 20).await?;
    drive(stations, tm.order_id(), warm, false).await?;
    let warm = units::generate_with_encryption_keys("BENCH-WF", 0, concurrency * 20).await?;
    drive(stations, FIRMWARE_ORDER, warm, true).await?;
    let (mut plain, mut with, mut ratios, mut p99) = (vec![], vec![], vec![], vec![]);
    for round in 0..rounds {
        let first = (round * units) as u64;
        let a = units::generate("BENCH-P", first, units).await?;
        let b = units::generate_with_encryption_keys("BENCH-F", first, units).await?;
        let (pa, pb) = if round % 2 == 0 {
            let pa = drive(stations, tm.order_id(), a, false).await?;
            (pa, drive(stations, FIRMWARE_ORDER, b, true).await?)
        } else {
            let pb = drive(stations, FIRMWARE_ORDER, b, true).await?;
            (drive(stations, tm.order_id(), a, false).await?, pb)
        };
        plain.push(pa.units_per_s());
        with.push(pb.units_per_s());
        ratios.push(pb.units_per_s() / pa.units_per_s());
        p99.push(pb.quantile(0.99).as_secs_f64() * 1e3);
    }

    // Whole images, one at a time to one station.
    let station = stations.first().ok_or(Error::Died("no station"))?;
    let images = if quick { 40 } else { 400 };
    let serials: Vec<String> = (0..images.min(units))
        .map(|i| format!("BENCH-F-{i:010}"))
        .collect();
    let (mut rates, mut per_cpu) = (vec![], vec![]);
    for _ in 0..rounds {
        let cpu = process_cpu();
        let t = Instant::now();
        let mut bytes = 0usize;
        for serial in &serials {
            let got = station
                .unit_firmware(FIRMWARE_ORDER, serial)
                .await
                .with_context(|| format!("cannot fetch the image of {serial}"))?;
            if got.len() != image.len() {
                return Err(Error::Void(format!(
                    "the image of {serial} has {} bytes, the release {}",
                    got.len(),
                    image.len()
                )));
            }
            bytes += got.len();
        }
        let secs = t.elapsed().as_secs_f64();
        rates.push(bytes as f64 / secs / 1e6);
        if let Some(used) = cpu.zip(process_cpu()).map(|(a, b)| b.saturating_sub(a))
            && used > Duration::ZERO
        {
            per_cpu.push(bytes as f64 / used.as_secs_f64() / 1e6);
        }
    }

    // 2 MiB releases, each a new version, made before the clock starts.
    let uploads: Vec<Vec<u8>> = (0..rounds)
        .map(|r| image_of(2 * 1024 * 1024, (2, 0, r as u16, 0), &release_key))
        .collect::<Result<_, _>>()?;
    let mut upload_ms = Vec::new();
    for (r, upload) in uploads.iter().enumerate() {
        let t = Instant::now();
        admin
            .upload_release(&product, &format!("2.0.{r}"), upload, None)
            .await
            .context("cannot upload a 2 MiB release")?;
        upload_ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    Ok(DeliveryReport {
        rounds,
        concurrency,
        units_per_round: units,
        plain_units_per_s: median(plain),
        release_units_per_s: median(with),
        release_ratio: median(ratios),
        release_p99_ms: median(p99),
        image_size: image.len(),
        images_per_round: serials.len(),
        image_mb_s: median(rates),
        image_mb_per_cpu_s: (!per_cpu.is_empty()).then(|| median(per_cpu)),
        upload_size: uploads.first().map_or(0, Vec::len),
        upload_ms: median(upload_ms),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// A quick run provisions every unit of both orders (with firmware exactly on the one that
    /// delivers a release), streams whole images of the release's size, and uploads 2 MiB
    /// releases.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_quick_run_gives_every_figure() {
        let r = run(1, true, 4).await.unwrap();
        assert!(r.plain_units_per_s > 0.0 && r.release_units_per_s > 0.0);
        assert!(r.release_ratio > 0.0 && r.release_ratio.is_finite());
        assert!(r.image_size > 500_000 && r.image_size <= 512 * 1024);
        assert_eq!(r.images_per_round, 40);
        assert!(r.image_mb_s > 0.0);
        assert!(r.upload_size > 2_000_000 && r.upload_size <= 2 * 1024 * 1024);
        assert!(r.upload_ms > 0.0);
    }
}
