//! The machine's ceilings, measured in the same run: raw ECDSA P-256 (aws-lc-rs directly), CSR
//! parsing and CSR → certificate issuance without I/O (touchmark-pki), and one durable SQLite
//! commit on the filesystem of the installation. All single-threaded.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_ASN1, ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair as _,
    UnparsedPublicKey,
};
use serde::Serialize;
use time::{Duration as TimeDuration, OffsetDateTime};
use touchmark_pki::{
    CaIssuer, DeviceProfile, KeyAlgorithm, SerialNumber, Signer as _, SoftwareSigner, Subject,
    create_intermediate_ca, create_root_ca, issue_device_cert, parse_csr,
};

use crate::error::{Context as _, Error};
use crate::units::Unit;

/// Operations per second, each measured on one thread.
#[derive(Debug, Clone, Serialize)]
pub struct Ceilings {
    /// ECDSA P-256 SHA-256 signatures of a 300-byte message (about a TBSCertificate).
    pub ecdsa_p256_sign_per_s: f64,
    /// Verifications of such signatures.
    pub ecdsa_p256_verify_per_s: f64,
    /// `touchmark_pki::parse_csr` of a PEM CSR: decode, checks, signature verification.
    pub csr_parse_per_s: f64,
    /// `parse_csr` then `issue_device_cert` (the device profile, signed by an issuing CA).
    pub csr_to_certificate_per_s: f64,
    /// One-row SQLite transactions, WAL, `synchronous=FULL`, beside the installation: the rate
    /// of durable commits without group commit.
    pub sqlite_durable_commit_per_s: f64,
}

/// Runs `op` repeatedly for about `budget`; returns its rate per second.
fn rate(budget: Duration, mut op: impl FnMut() -> Result<(), Error>) -> Result<f64, Error> {
    // One untimed call warms caches and lazily initialised state.
    op()?;
    let start = Instant::now();
    let mut done: u64 = 0;
    loop {
        for _ in 0..8 {
            op()?;
        }
        done += 8;
        let elapsed = start.elapsed();
        if elapsed >= budget {
            return Ok(done as f64 / elapsed.as_secs_f64());
        }
    }
}

fn ecdsa(budget: Duration) -> Result<(f64, f64), Error> {
    let rng = SystemRandom::new();
    let key = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING)
        .context("cannot generate a P-256 key")?;
    let message = [0x5au8; 300];
    let sign = rate(budget, || {
        let sig = key
            .sign(&rng, black_box(&message))
            .context("P-256 signing failed")?;
        black_box(sig);
        Ok(())
    })?;
    let sig = key.sign(&rng, &message).context("P-256 signing failed")?;
    let public = UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, key.public_key().as_ref());
    let verify = rate(budget, || {
        public
            .verify(black_box(&message), black_box(sig.as_ref()))
            .context("P-256 verification failed")
    })?;
    Ok((sign, verify))
}

/// An issuing CA like a product's: a root, and an intermediate that signs device certificates.
pub(crate) fn issuing_ca() -> Result<CaIssuer, Error> {
    let pki = |e: touchmark_pki::PkiError| Error::Step {
        what: "test CA".into(),
        source: e.into(),
    };
    let now = OffsetDateTime::now_utc();
    let root_key = SoftwareSigner::generate(KeyAlgorithm::EcdsaP256).map_err(pki)?;
    let subject = |cn: &str| Subject {
        organization: "Bench".into(),
        common_name: cn.into(),
    };
    let root_cert = create_root_ca(
        &root_key,
        &subject("Bench Root CA"),
        now - TimeDuration::hours(1),
        now + TimeDuration::days(3650),
        SerialNumber::random(&mut rand::rng()),
    )
    .map_err(pki)?;
    let root = CaIssuer::new(root_cert, Arc::new(root_key)).map_err(pki)?;
    let key = SoftwareSigner::generate(KeyAlgorithm::EcdsaP256).map_err(pki)?;
    let cert = create_intermediate_ca(
        &root,
        key.public_key_spki(),
        &subject("Bench Issuing CA"),
        now - TimeDuration::hours(1),
        now + TimeDuration::days(3650),
        SerialNumber::random(&mut rand::rng()),
    )
    .map_err(pki)?;
    CaIssuer::new(cert, Arc::new(key)).map_err(pki)
}

/// The device profile the benchmark's product uses.
pub(crate) fn profile() -> DeviceProfile {
    DeviceProfile {
        organization: "Acme".into(),
        common_name: "Acme Sensor".into(),
        hw_type_oid: vec![1, 3, 6, 1, 4, 1, 99999, 1],
        crl_url: None,
        ocsp_url: None,
        not_after: None,
    }
}

/// One CSR → certificate issuance, as the authority does it, without I/O.
pub(crate) fn issue_one(
    issuer: &CaIssuer,
    profile: &DeviceProfile,
    unit: &Unit,
) -> Result<(), Error> {
    let csr = parse_csr(unit.request.csr.as_bytes())
        .with_context(|| format!("CSR of {}", unit.request.serial))?;
    let cert = issue_device_cert(
        issuer,
        &csr,
        &unit.request.serial,
        profile,
        OffsetDateTime::now_utc(),
        SerialNumber::random(&mut rand::rng()),
    )
    .with_context(|| format!("issuance for {}", unit.request.serial))?;
    black_box(cert);
    Ok(())
}

fn issuance(budget: Duration, units: &[Unit]) -> Result<(f64, f64), Error> {
    if units.is_empty() {
        return Err(Error::Invalid("no sample CSRs".into()));
    }
    let mut i = 0;
    let parse = rate(budget, || {
        i = (i + 1) % units.len();
        let csr = parse_csr(black_box(units[i].request.csr.as_bytes())).context("CSR")?;
        black_box(csr);
        Ok(())
    })?;
    let issuer = issuing_ca()?;
    let profile = profile();
    let issue = rate(budget, || {
        i = (i + 1) % units.len();
        issue_one(&issuer, &profile, &units[i])
    })?;
    Ok((parse, issue))
}

/// Removes the probe database and its WAL files, whatever happens.
struct ProbeFiles(PathBuf);

impl Drop for ProbeFiles {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let mut path = self.0.clone().into_os_string();
            path.push(suffix);
            let _ = std::fs::remove_file(path);
        }
    }
}

fn sqlite_commits(budget: Duration, dir: &Path) -> Result<f64, Error> {
    let files = ProbeFiles(dir.join("bench-commit-probe.db"));
    let probe = "commit probe database";
    let conn = rusqlite::Connection::open(&files.0).context(probe)?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .context(probe)?;
    conn.pragma_update(None, "synchronous", "FULL")
        .context(probe)?;
    conn.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, body BLOB NOT NULL)")
        .context(probe)?;
    // About the size of a device certificate and its event.
    let body = vec![0xa5u8; 1024];
    let mut insert = conn
        .prepare("INSERT INTO t (body) VALUES (?1)")
        .context(probe)?;
    // Each statement outside a transaction is its own durable commit.
    let rate = rate(budget, || {
        insert.execute([&body]).context(probe)?;
        Ok(())
    })?;
    drop(insert);
    drop(conn);
    drop(files);
    Ok(rate)
}

/// Measures every ceiling, `budget` each, on a blocking thread.
///
/// # Errors
/// When an operation fails.
pub(crate) async fn measure(
    budget: Duration,
    dir: &Path,
    samples: Arc<Vec<Unit>>,
) -> Result<Ceilings, Error> {
    let dir = dir.to_owned();
    tokio::task::spawn_blocking(move || {
        let (sign, verify) = ecdsa(budget)?;
        let (parse, issue) = issuance(budget, &samples)?;
        let commit = sqlite_commits(budget, &dir)?;
        Ok(Ceilings {
            ecdsa_p256_sign_per_s: sign,
            ecdsa_p256_verify_per_s: verify,
            csr_parse_per_s: parse,
            csr_to_certificate_per_s: issue,
            sqlite_durable_commit_per_s: commit,
        })
    })
    .await
    .map_err(|_| Error::Died("the ceiling measurement"))?
}
