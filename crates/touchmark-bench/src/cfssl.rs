//! The comparison with Cloudflare's cfssl: `cfssl serve` on a loopback port, signing the same
//! pre-generated CSRs through `/api/v1/cfssl/sign`, once without a database and once with its
//! SQLite certdb. Plain HTTP with keep-alive: cfssl does no mTLS, policy, quota or event log
//! here, so the comparison favours it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::CONTENT_TYPE;
use serde::{Deserialize, Serialize};

use crate::Progress;
use crate::error::{Context as _, Error};
use crate::load::{self, Sample};
use crate::report::Series;
use crate::units::Unit;

/// The environment variable naming the cfssl binary.
const ENV: &str = "TOUCHMARK_BENCH_CFSSL";
/// How long cfssl may take to start listening.
const START_TIMEOUT: Duration = Duration::from_secs(15);

/// The certdb schema cfssl 1.2 expects (its `certdb/sqlite/migrations`): cfssl does not create
/// its tables itself.
const CERTDB_SCHEMA: &str = "
CREATE TABLE certificates (
    serial_number blob NOT NULL,
    authority_key_identifier blob NOT NULL,
    ca_label blob,
    status blob NOT NULL,
    reason int,
    expiry timestamp,
    revoked_at timestamp,
    pem blob NOT NULL,
    PRIMARY KEY (serial_number, authority_key_identifier)
);
CREATE TABLE ocsp_responses (
    serial_number blob NOT NULL,
    authority_key_identifier blob NOT NULL,
    body blob NOT NULL,
    expiry timestamp,
    PRIMARY KEY (serial_number, authority_key_identifier)
);
";

/// Finds cfssl: `TOUCHMARK_BENCH_CFSSL`, else `cfssl` on the PATH.
///
/// # Errors
/// When it is not found, with how to install it.
pub(crate) fn binary() -> Result<PathBuf, Error> {
    if let Some(path) = std::env::var_os(ENV) {
        let path = PathBuf::from(path);
        if path.is_file() {
            return Ok(path);
        }
        return Err(Error::Cfssl(format!(
            "{ENV} names {}, which is not a file",
            path.display()
        )));
    }
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("cfssl"))
            .find(|candidate| candidate.is_file())
    });
    found.ok_or_else(|| {
        Error::Cfssl(format!(
            "--compare cfssl: cfssl was not found on the PATH. Install it (Debian/Ubuntu: \
             `apt-get install golang-cfssl`) or set {ENV} to the cfssl binary"
        ))
    })
}

/// `cfssl version`'s version line.
fn version(bin: &Path) -> String {
    Command::new(bin)
        .arg("version")
        .output()
        .ok()
        .and_then(|out| {
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .find_map(|l| l.strip_prefix("Version:").map(|v| v.trim().to_owned()))
        })
        .unwrap_or_else(|| "unknown".into())
}

/// What `cfssl genkey -initca` prints.
#[derive(Deserialize)]
struct InitCa {
    cert: String,
    key: String,
}

/// `/api/v1/cfssl/sign`'s answer, as much as is checked.
#[derive(Deserialize)]
struct SignAnswer {
    success: bool,
    result: Option<SignResult>,
}

#[derive(Deserialize)]
struct SignResult {
    certificate: String,
}

/// A running `cfssl serve`, killed when dropped.
struct Served {
    child: Child,
    log: PathBuf,
    clients: Vec<(reqwest::Client, Arc<str>)>,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(10)..].join("\n  ")
}

impl Served {
    /// Starts `cfssl serve` on a free loopback port and waits until it accepts connections.
    async fn start(
        bin: &Path,
        dir: &Path,
        name: &str,
        db_config: Option<&Path>,
        workers: usize,
    ) -> Result<Self, Error> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .context("cannot find a free loopback port")?
            .port();
        let log = dir.join(format!("{name}.log"));
        let log_file = std::fs::File::create(&log).context("cfssl log file")?;
        let mut command = Command::new(bin);
        command
            .arg("serve")
            .args(["-address", "127.0.0.1", "-port", &port.to_string()])
            .arg("-ca")
            .arg(dir.join("ca.pem"))
            .arg("-ca-key")
            .arg(dir.join("ca-key.pem"))
            .arg("-config")
            .arg(dir.join("config.json"))
            // Warnings only: cfssl logs every request at its default level, which would cost it.
            .args(["-loglevel", "2"]);
        if let Some(db) = db_config {
            command.arg("-db-config").arg(db);
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().context("cfssl log file")?)
            .stderr(log_file)
            .spawn()
            .with_context(|| format!("cannot start {}", bin.display()))?;
        let url: Arc<str> = format!("http://127.0.0.1:{port}/api/v1/cfssl/sign").into();
        let mut served = Self {
            child,
            log,
            clients: Vec::new(),
        };
        let deadline = tokio::time::Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = served.child.try_wait().context("cfssl serve")? {
                return Err(Error::Cfssl(format!(
                    "cfssl serve ({name}) exited with {status}:\n  {}",
                    log_tail(&served.log)
                )));
            }
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                break;
            }
            if tokio::time::Instant::now() > deadline {
                return Err(Error::Cfssl(format!(
                    "cfssl serve ({name}) did not listen on port {port} within {START_TIMEOUT:?}:\n  {}",
                    log_tail(&served.log)
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // cfssl is plain HTTP, but reqwest still builds a TLS configuration, and the
        // workspace's rustls has no process-wide crypto provider: give it one that trusts nothing.
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .context("TLS configuration")?
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
        for _ in 0..workers {
            // One client per worker: its own kept-alive connection, like a station.
            let http = reqwest::Client::builder()
                .use_preconfigured_tls(tls.clone())
                .pool_max_idle_per_host(1)
                .timeout(Duration::from_secs(30))
                .build()
                .context("HTTP client")?;
            served.clients.push((http, Arc::clone(&url)));
        }
        Ok(served)
    }

    /// Signs every unit's CSR through `concurrency` workers.
    async fn drive(&self, concurrency: usize, units: Arc<Vec<Unit>>) -> Result<Sample, Error> {
        let clients = &self.clients[..concurrency.min(self.clients.len())];
        load::drive(
            clients,
            units,
            |(http, url): (reqwest::Client, Arc<str>), units: Arc<Vec<Unit>>, i| async move {
                let Some(unit) = units.get(i) else {
                    return Err(format!("no unit {i}"));
                };
                let serial = &unit.request.serial;
                let body =
                    serde_json::json!({ "certificate_request": unit.request.csr }).to_string();
                let response = http
                    .post(&*url)
                    .header(CONTENT_TYPE, "application/json")
                    .body(body)
                    .send()
                    .await
                    .map_err(|e| format!("{serial}: {e}"))?;
                let status = response.status();
                let bytes = response
                    .bytes()
                    .await
                    .map_err(|e| format!("{serial}: {e}"))?;
                if !status.is_success() {
                    let text = String::from_utf8_lossy(&bytes);
                    return Err(format!(
                        "{serial}: HTTP {status}: {}",
                        text.chars().take(200).collect::<String>()
                    ));
                }
                let answer: SignAnswer = serde_json::from_slice(&bytes)
                    .map_err(|e| format!("{serial}: not a cfssl answer: {e}"))?;
                match answer.result {
                    Some(r)
                        if answer.success
                            && r.certificate.starts_with("-----BEGIN CERTIFICATE-----") =>
                    {
                        Ok(())
                    }
                    _ => Err(format!("{serial}: cfssl answered without a certificate")),
                }
            },
        )
        .await
    }
}

/// cfssl's own failures (its SQLite certdb answers `database is locked` under concurrency) are
/// a finding to report, not a reason to drop the comparison: they are counted, shown, and left
/// out of its rates. A server that fails every request, though, is a broken setup.
fn tolerate(name: &str, sample: &Sample, progress: &dyn Progress) -> Result<(), Error> {
    if sample.succeeded() == 0 {
        return sample.check(name);
    }
    if let Some(first) = sample.failures.first() {
        progress.step(&format!(
            "WARNING: {name}: {} of {} requests failed (counted and reported); first: {first}",
            sample.failed, sample.units
        ));
    }
    Ok(())
}

/// cfssl without a database and cfssl with its SQLite certdb, both running.
pub(crate) struct Pair {
    version: String,
    no_db: Served,
    sqlite: Served,
    certdb: PathBuf,
    /// Certificates the certdb must hold at the end.
    sqlite_sent: u64,
    /// Dropped last: the servers are killed before their files go.
    _dir: tempfile::TempDir,
}

/// The comparison's results.
#[derive(Debug, Serialize)]
pub struct CfsslReport {
    /// `cfssl version`.
    pub version: String,
    /// `cfssl serve` without a database.
    pub no_database: Vec<Series>,
    /// `cfssl serve -db-config` with the SQLite certdb.
    pub sqlite: Vec<Series>,
    /// Rows in the certdb at the end: must equal the certificates that server issued.
    pub certdb_rows: u64,
}

impl Pair {
    /// Creates a P-256 CA and a signing profile with cfssl itself, an empty certdb, and starts
    /// both servers.
    ///
    /// # Errors
    /// When cfssl fails to make its CA or to start.
    pub(crate) async fn start(
        bin: &Path,
        workers: usize,
        progress: &dyn Progress,
    ) -> Result<Self, Error> {
        let version = version(bin);
        progress.step(&format!(
            "starting cfssl {version} (no database, and SQLite certdb)"
        ));
        let dir = tempfile::Builder::new()
            .prefix("touchmark-bench-cfssl-")
            .tempdir()
            .context("cannot create a temporary directory")?;
        let path = dir.path();
        let write = |name: &str, contents: &[u8]| {
            std::fs::write(path.join(name), contents)
                .with_context(|| format!("cannot write {}", path.join(name).display()))
        };
        write(
            "ca-csr.json",
            br#"{"CN":"Bench cfssl CA","key":{"algo":"ecdsa","size":256},"names":[{"O":"Bench"}]}"#,
        )?;
        let out = Command::new(bin)
            .args(["genkey", "-initca", "-loglevel", "2"])
            .arg(path.join("ca-csr.json"))
            .output()
            .context("cannot run cfssl genkey")?;
        if !out.status.success() {
            return Err(Error::Cfssl(format!(
                "cfssl genkey -initca failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        let ca: InitCa = serde_json::from_slice(&out.stdout)
            .context("cfssl genkey -initca printed no {cert, key}")?;
        write("ca.pem", ca.cert.as_bytes())?;
        write("ca-key.pem", ca.key.as_bytes())?;
        write(
            "config.json",
            br#"{"signing":{"default":{"expiry":"8760h","usages":["digital signature","client auth"]}}}"#,
        )?;
        let certdb = path.join("certdb.sqlite");
        rusqlite::Connection::open(&certdb)
            .and_then(|conn| conn.execute_batch(CERTDB_SCHEMA))
            .context("cannot create cfssl's certdb")?;
        let db_config = path.join("db-config.json");
        write(
            "db-config.json",
            serde_json::json!({"driver": "sqlite3", "data_source": certdb})
                .to_string()
                .as_bytes(),
        )?;
        let no_db = Served::start(bin, path, "cfssl-no-db", None, workers).await?;
        let sqlite = Served::start(bin, path, "cfssl-sqlite", Some(&db_config), workers).await?;
        Ok(Self {
            version,
            no_db,
            sqlite,
            certdb,
            sqlite_sent: 0,
            _dir: dir,
        })
    }

    /// Runs both servers at `concurrency`: a warm-up with `warm`, then one round per batch.
    ///
    /// # Errors
    /// When a request fails or a worker dies.
    pub(crate) async fn run(
        &mut self,
        concurrency: usize,
        warm: &Arc<Vec<Unit>>,
        batches: &[Arc<Vec<Unit>>],
        progress: &dyn Progress,
    ) -> Result<(Series, Series), Error> {
        let per_round = batches.first().map_or(0, |b| b.len());
        let mut results = Vec::with_capacity(2);
        for (name, with_db) in [("cfssl (no db)", false), ("cfssl (sqlite)", true)] {
            let served = if with_db { &self.sqlite } else { &self.no_db };
            let sample = served.drive(concurrency, Arc::clone(warm)).await?;
            tolerate(&format!("{name} warm-up"), &sample, progress)?;
            if with_db {
                self.sqlite_sent += sample.succeeded() as u64;
            }
            let mut samples = Vec::with_capacity(batches.len());
            for (round, batch) in batches.iter().enumerate() {
                let sample = served.drive(concurrency, Arc::clone(batch)).await?;
                progress.step(&format!(
                    "{name} c={concurrency} round {}/{}: {:.0} units/s",
                    round + 1,
                    batches.len(),
                    sample.units_per_s()
                ));
                tolerate(name, &sample, progress)?;
                if with_db {
                    self.sqlite_sent += sample.succeeded() as u64;
                }
                samples.push(sample);
            }
            results.push(Series::new(concurrency, per_round, &samples));
        }
        let sqlite = results.pop();
        let no_db = results.pop();
        match (no_db, sqlite) {
            (Some(no_db), Some(sqlite)) => Ok((no_db, sqlite)),
            _ => Err(Error::Cfssl("cfssl runs are missing".into())),
        }
    }

    /// Checks that the certdb holds every certificate cfssl issued, and stops both servers.
    ///
    /// # Errors
    /// When the certdb cannot be read or its count is wrong.
    pub(crate) fn finish(
        self,
        no_database: Vec<Series>,
        sqlite: Vec<Series>,
    ) -> Result<CfsslReport, Error> {
        let rows: i64 = rusqlite::Connection::open(&self.certdb)
            .and_then(|conn| conn.query_row("SELECT count(*) FROM certificates", [], |r| r.get(0)))
            .context("cannot read cfssl's certdb")?;
        let rows = u64::try_from(rows).unwrap_or(0);
        if rows != self.sqlite_sent {
            return Err(Error::Void(format!(
                "cfssl's certdb holds {rows} certificates, but it answered {} with a certificate",
                self.sqlite_sent
            )));
        }
        Ok(CfsslReport {
            version: self.version.clone(),
            no_database,
            sqlite,
            certdb_rows: rows,
        })
    }
}
