//! `touchmark bench firmware`: the firmware format layer on one core, in this process: the
//! strict import of a 2 MiB release (parse, unwrap, decrypt-then-hash, signature), the per-unit
//! re-wrap, and the streaming of a 512 KiB per-unit image (release bytes plus the new key TLV
//! value, no per-unit copy of the image). The release is made by `touchmark_firmware::builder`,
//! which writes imgtool's bytes.

use std::io::{self, Write};
use std::time::Instant;

use serde::Serialize;
use touchmark_firmware::builder::{BuildOptions, build_release};
use touchmark_firmware::keys::pem_decode;
use touchmark_firmware::{
    ContentKey, Curve, EncKind, Ephemeral, Limits, PerUnitImage, PublicKey, SoftwareAgreementKey,
    import_release, rewrap_value,
};

use crate::error::{Context as _, Error};

/// The target of issue 13: a 2 MiB upload validated in under 100 ms.
pub const IMPORT_TARGET_MS: f64 = 100.0;
/// The target of issue 13: 512 KiB per-unit images delivered at 200 MB/s or more on one core.
pub const DELIVERY_TARGET_MB_S: f64 = 200.0;

/// A fixed Ed25519 signing key (PKCS#8) for the benchmark's release; not a secret.
const BENCH_SIGNING_KEY: &str = "-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIGVuY2hiZW5jaGJlbmNoYmVuY2hiZW5jaGJlbmNoYmVu
-----END PRIVATE KEY-----";

/// What `bench firmware` measured: medians of `rounds` rounds.
#[derive(Debug, Clone, Serialize)]
pub struct FirmwareReport {
    /// Rounds per figure.
    pub rounds: usize,
    /// Size of the imported release, bytes.
    pub import_size: usize,
    /// Median time to import it, milliseconds.
    pub import_ms: f64,
    /// Size of the per-unit image, bytes.
    pub delivery_size: usize,
    /// Per-unit images made and streamed per round.
    pub delivery_units: usize,
    /// Median delivery rate: re-wrap plus streaming of the whole image, MB/s (10^6 bytes).
    pub delivery_mb_s: f64,
    /// Median re-wraps per second (the work added to an issuance).
    pub rewraps_per_s: f64,
}

/// The median of `v` (NaN when empty).
pub(crate) fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// The benchmark's signing key: its PKCS#8 DER and its public key.
pub(crate) fn signing_key() -> Result<(Vec<u8>, PublicKey), Error> {
    let signing = pem_decode(BENCH_SIGNING_KEY, "PRIVATE KEY").context("bench signing key")?;
    let sign_pub = aws_lc_rs::signature::Ed25519KeyPair::from_pkcs8_maybe_unchecked(&signing)
        .map_err(|e| Error::Invalid(format!("bench signing key: {e}")))?;
    let sign_pub = PublicKey::Ed25519(
        aws_lc_rs::signature::KeyPair::public_key(&sign_pub)
            .as_ref()
            .try_into()
            .map_err(|_| Error::Invalid("bench signing key".into()))?,
    );
    Ok((signing, sign_pub))
}

/// A release of about `size` bytes, version `version`, signed by the benchmark's key and
/// encrypted to `release` with a random content key.
pub(crate) fn image_of(
    size: usize,
    version: (u8, u8, u16, u32),
    release: &PublicKey,
) -> Result<Vec<u8>, Error> {
    let (signing, _) = signing_key()?;
    let mut key = [0u8; 16];
    aws_lc_rs::rand::fill(&mut key).map_err(|_| Error::Invalid("random".into()))?;
    let payload: Vec<u8> = (0..size - 0x200 - 256).map(|i| (i % 251) as u8).collect();
    build_release(
        &payload,
        &BuildOptions {
            kind: EncKind::X25519,
            version,
            ..BuildOptions::default()
        },
        &signing,
        release,
        &ContentKey::new(&key).context("content key")?,
        Ephemeral::Fresh,
    )
    .context("building the release")
}

fn release_of(size: usize) -> Result<(Vec<u8>, SoftwareAgreementKey, PublicKey), Error> {
    let (_, sign_pub) = signing_key()?;
    let release = SoftwareAgreementKey::generate(Curve::X25519).context("release key")?;
    let img = image_of(size, (1, 0, 0, 0), release.public_key())?;
    Ok((img, release, sign_pub))
}

/// A sink that copies every byte into a 64 KiB buffer, as a socket's send buffer would take
/// them, and counts them.
struct Count(usize, Vec<u8>);

impl Write for Count {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        for chunk in buf.chunks(self.1.len()) {
            self.1[..chunk.len()].copy_from_slice(chunk);
        }
        self.0 += buf.len();
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Runs the measurements.
///
/// # Errors
/// When a step fails, or an image made here is refused.
pub fn run(rounds: usize, quick: bool) -> Result<FirmwareReport, Error> {
    let rounds = rounds.max(1);
    let (big, big_key, sign_pub) = release_of(2 * 1024 * 1024)?;
    let signing = [sign_pub];
    let mut import_ms = Vec::new();
    for _ in 0..rounds {
        let t = Instant::now();
        import_release(&big, &[&big_key], &signing, Limits::default()).context("import")?;
        import_ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let (small, small_key, sign_pub) = release_of(512 * 1024)?;
    let imported =
        import_release(&small, &[&small_key], &[sign_pub], Limits::default()).context("import")?;
    let units = if quick { 200 } else { 2000 };
    let unit_keys: Vec<PublicKey> = (0..16)
        .map(|_| SoftwareAgreementKey::generate(Curve::X25519).map(|k| k.public_key().clone()))
        .collect::<Result<_, _>>()
        .context("unit keys")?;
    let mut rates = Vec::new();
    let mut rewraps = Vec::new();
    for _ in 0..rounds {
        let mut sink = Count(0, vec![0u8; 64 * 1024]);
        let t = Instant::now();
        for i in 0..units {
            let value = rewrap_value(
                &imported.info.enc,
                &imported.content_key,
                &unit_keys[i % unit_keys.len()],
                Ephemeral::Fresh,
            )
            .context("re-wrap")?;
            PerUnitImage::new(&small, &imported.info.enc, &value)
                .context("per-unit image")?
                .write_to(&mut sink)
                .context("streaming")?;
        }
        let secs = t.elapsed().as_secs_f64();
        if sink.0 != units * small.len() {
            return Err(Error::Void("streamed bytes do not add up".into()));
        }
        rates.push(sink.0 as f64 / secs / 1e6);
        let t = Instant::now();
        for i in 0..units {
            rewrap_value(
                &imported.info.enc,
                &imported.content_key,
                &unit_keys[i % unit_keys.len()],
                Ephemeral::Fresh,
            )
            .context("re-wrap")?;
        }
        rewraps.push(units as f64 / t.elapsed().as_secs_f64());
    }
    Ok(FirmwareReport {
        rounds,
        import_size: big.len(),
        import_ms: median(import_ms),
        delivery_size: small.len(),
        delivery_units: units,
        delivery_mb_s: median(rates),
        rewraps_per_s: median(rewraps),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// A quick run measures every figure on an image the import accepts, of the sizes the
    /// targets name.
    #[test]
    fn a_quick_run_gives_every_figure() {
        let r = run(1, true).unwrap();
        assert!(r.import_size > 2_000_000 && r.import_size <= 2 * 1024 * 1024);
        assert!(r.delivery_size > 500_000 && r.delivery_size <= 512 * 1024);
        assert!(r.import_ms > 0.0 && r.import_ms.is_finite());
        assert!(r.delivery_mb_s > 0.0 && r.rewraps_per_s > 0.0);
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
    }
}
