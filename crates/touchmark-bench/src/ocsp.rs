//! `ocsp`: how fast Touchmark answers OCSP, how soon a revocation shows, and how large a big CRL
//! is.
//!
//! A fresh installation whose device certificates name CRLs and an OCSP responder (a public
//! URL), an in-process server (SQLite), `units` units provisioned through enrolled stations.
//! Then, in one run:
//!
//! 1. Cached answers: one DER OCSP request per unit (SHA-1 CertID, no nonce, so the answer may
//!    be cached), each sent once to warm the cache, then `concurrency` workers POST them in turn
//!    for a fixed time, each over its own kept-alive HTTPS connection. Only an HTTP 200 whose
//!    body is a successful OCSPResponse counts; any other answer fails the run.
//! 2. The same requests, driven by the same load generator, to `openssl ocsp` as a responder
//!    (plain HTTP; one request per connection, in one process) over an index of the same
//!    certificates, when openssl is found (`TOUCHMARK_TEST_OPENSSL`, else the PATH).
//! 3. From a revocation's commit (the admin's `revoke` answered) to the moment both the OCSP
//!    answer (GET) and the order's CRL partition say the unit is revoked, several times.
//! 4. A CRL of many revoked entries, built and signed by `touchmark-pki` directly: its size and
//!    signing time.

mod der;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;
use time::OffsetDateTime;
use touchmark_authority::Installation;
use touchmark_client::RevocationKind;
use touchmark_core::api::Revoke;
use touchmark_pki::cert::{Certificate, SerialNumber, Subject, certs_from_pem, create_root_ca};
use touchmark_pki::crl::{CrlContent, RevokedEntry, build_crl, certificate_serial};
use touchmark_pki::ocsp::{HashAlg, issuer_hashes};
use touchmark_pki::{KeyAlgorithm, SoftwareSigner};

use self::der::{CertStatus, base64_url, cert_status, crl_lists, ocsp_request, response_status};
use crate::Progress;
use crate::error::{Context as _, Error};
use crate::setup::{Backend, Touchmark};
use crate::units;

/// The cached-answer rate the issue asks for at c=32.
pub const TARGET_RESPONSES_PER_S: f64 = 20_000.0;
/// The longest a revocation may take to show in both the CRL and the OCSP answer, at p99.
pub const TARGET_REFRESH_P99_S: f64 = 1.0;
/// The base URL the certificates name; the run reaches the same routes at the server's address.
const PUBLIC_URL: &str = "https://pki.bench.touchmark.local";
/// Where openssl is named, as the tests name it.
const OPENSSL_ENV: &str = "TOUCHMARK_TEST_OPENSSL";
/// Stations that provision the units.
const STATIONS: usize = 4;
/// Workers that drive `openssl ocsp`: it answers one connection at a time, so a few keep it
/// busy; more only queue in its backlog.
const OPENSSL_WORKERS: usize = 4;
/// How long a revocation is waited for before the run fails.
const REFRESH_LIMIT: Duration = Duration::from_secs(30);

/// What to measure, as `touchmark bench ocsp` is asked: see [`OcspPlan::new`].
#[derive(Debug, Clone)]
pub struct Options {
    /// Units provisioned, each one OCSP request [default: 1,000; 200 quick].
    pub units: Option<usize>,
    /// Concurrent workers against Touchmark.
    pub concurrency: usize,
    /// Seconds each responder is driven [default: 10; 2 quick].
    pub seconds: Option<f64>,
    /// Revocations timed [default: 20; 5 quick].
    pub revocations: Option<usize>,
    /// Revoked entries in the large CRL [default: 100,000; 10,000 quick].
    pub crl_entries: Option<usize>,
    /// A short run.
    pub quick: bool,
}

/// The resolved settings of one run.
#[derive(Debug, Clone)]
pub struct OcspPlan {
    units: usize,
    concurrency: usize,
    duration: Duration,
    revocations: usize,
    crl_entries: usize,
    quick: bool,
}

impl OcspPlan {
    /// Checks `options` and resolves their defaults.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a setting out of range, named as the command line spells it.
    pub fn new(options: Options) -> Result<Self, Error> {
        let quick = options.quick;
        let units = options.units.unwrap_or(if quick { 200 } else { 1_000 });
        if !(1..=100_000).contains(&units) {
            return Err(Error::Invalid("--units must be 1 to 100000".into()));
        }
        if options.concurrency == 0 || options.concurrency > 1024 {
            return Err(Error::Invalid("--concurrency must be 1 to 1024".into()));
        }
        let seconds = options.seconds.unwrap_or(if quick { 2.0 } else { 10.0 });
        if !(0.1..=600.0).contains(&seconds) {
            return Err(Error::Invalid("--seconds must be 0.1 to 600".into()));
        }
        let revocations = options.revocations.unwrap_or(if quick { 5 } else { 20 });
        if revocations == 0 || revocations > units {
            return Err(Error::Invalid(
                "--revocations must be 1 to the number of units".into(),
            ));
        }
        let crl_entries = options
            .crl_entries
            .unwrap_or(if quick { 10_000 } else { 100_000 });
        if !(1..=10_000_000).contains(&crl_entries) {
            return Err(Error::Invalid("--crl-entries must be 1 to 10000000".into()));
        }
        Ok(Self {
            units,
            concurrency: options.concurrency,
            duration: Duration::from_secs_f64(seconds),
            revocations,
            crl_entries,
            quick,
        })
    }
}

/// One responder driven for a fixed time.
#[derive(Debug, Clone, Serialize)]
pub struct Throughput {
    /// Concurrent workers.
    pub workers: usize,
    /// How the workers reach the responder.
    pub connections: String,
    /// From the first request to the last answer, s.
    pub seconds: f64,
    /// Successful OCSP answers (HTTP 200, responseStatus successful).
    pub responses: usize,
    /// Requests that got anything else, or no answer.
    pub failed: usize,
    /// `responses` per second.
    pub responses_per_s: f64,
    /// The median latency of the successful answers, ms.
    pub p50_ms: f64,
    /// Their 99th percentile, ms.
    pub p99_ms: f64,
}

/// `openssl ocsp` on the same requests, or why it was not measured.
#[derive(Debug, Clone, Serialize)]
pub struct Openssl {
    /// `openssl version`, when found.
    pub version: Option<String>,
    /// How it answers: its signing key and certificate, and that it signs every answer.
    pub responder: Option<String>,
    /// The measurement; `None` when skipped.
    pub throughput: Option<Throughput>,
    /// Why it was skipped.
    pub skipped: Option<String>,
}

/// From a revocation's commit to the moment it shows.
#[derive(Debug, Clone, Serialize)]
pub struct Refresh {
    /// Revocations timed.
    pub revocations: usize,
    /// Until the OCSP answer (GET) says revoked: median, ms.
    pub ocsp_p50_ms: f64,
    /// Its 99th percentile (nearest rank), ms.
    pub ocsp_p99_ms: f64,
    /// Until the order's CRL partition lists the certificate: median, ms.
    pub crl_p50_ms: f64,
    /// Its 99th percentile, ms.
    pub crl_p99_ms: f64,
    /// Until both do: median, ms.
    pub both_p50_ms: f64,
    /// Its 99th percentile, ms.
    pub both_p99_ms: f64,
}

/// A large CRL built and signed without a server.
#[derive(Debug, Clone, Serialize)]
pub struct LargeCrl {
    /// Revoked entries.
    pub entries: usize,
    /// Its DER size.
    pub bytes: usize,
    /// `bytes` per entry.
    pub bytes_per_entry: f64,
    /// Building the DER and signing it, ms.
    pub build_and_sign_ms: f64,
}

/// What `bench ocsp` measured.
#[derive(Debug, Serialize)]
pub struct OcspReport {
    /// `release` or `debug`.
    pub build: &'static str,
    /// Cores the machine offers.
    pub cores: usize,
    /// A short run, which shows the method works rather than what the machine can do.
    pub quick: bool,
    /// The server and its storage.
    pub server: String,
    /// Units provisioned, one OCSP request each.
    pub units: usize,
    /// Touchmark's cached answers.
    pub touchmark: Throughput,
    /// `openssl ocsp` on the same requests.
    pub openssl: Openssl,
    /// Touchmark's answers/s over openssl's, when both were measured.
    pub ratio: Option<f64>,
    /// Revocation to refreshed answers.
    pub refresh: Refresh,
    /// The large CRL.
    pub crl: LargeCrl,
}

/// One provisioned unit, as OCSP and the CRL name it.
struct Issued {
    /// The unit's serial (what the admin revokes).
    unit: String,
    /// The certificate's serial number: its DER INTEGER's content octets.
    cert_serial: Vec<u8>,
    /// Its notAfter.
    not_after: OffsetDateTime,
    /// The OCSP request for it.
    request: Vec<u8>,
}

/// Runs the whole benchmark described by `plan`, telling `progress` about each long step.
///
/// # Errors
/// When a step fails, or an answer is not the expected one.
pub async fn run(plan: &OcspPlan, progress: &Arc<dyn Progress>) -> Result<OcspReport, Error> {
    if cfg!(debug_assertions) {
        progress
            .step("WARNING: this is a DEBUG build; its figures say nothing about production speed");
    }
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    progress.step("setting up an installation with a public URL, a server and stations");
    let touchmark = Touchmark::start_public(&Backend::Sqlite, STATIONS, PUBLIC_URL).await?;
    let result = measure(plan, &touchmark, progress).await;
    let server = format!(
        "in-process, SQLite WAL synchronous=FULL; OCSP over HTTPS without client certificates; \
         the server, the load generator and openssl share the machine's {cores} cores"
    );
    touchmark.stop().await;
    let (touchmark_side, openssl, refresh) = result?;

    progress.step(&format!(
        "building and signing a CRL of {} entries",
        plan.crl_entries
    ));
    let crl = large_crl(plan.crl_entries)?;
    let ratio = openssl
        .throughput
        .as_ref()
        .and_then(|o| ratio(touchmark_side.responses_per_s, o.responses_per_s));
    Ok(OcspReport {
        build: if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
        cores,
        quick: plan.quick,
        server,
        units: plan.units,
        touchmark: touchmark_side,
        openssl,
        ratio,
        refresh,
        crl,
    })
}

/// The parts of the run that need the server.
async fn measure(
    plan: &OcspPlan,
    touchmark: &Touchmark,
    progress: &Arc<dyn Progress>,
) -> Result<(Throughput, Openssl, Refresh), Error> {
    progress.step(&format!("provisioning {} units", plan.units));
    let (issued, issuing_pem) = provision(touchmark, plan.units).await?;
    let requests: Arc<Vec<Vec<u8>>> = Arc::new(issued.iter().map(|u| u.request.clone()).collect());
    let base = touchmark
        .admin()
        .base_url()
        .trim_end_matches('/')
        .to_owned();
    let root_pem = std::fs::read_to_string(Installation::server_root_path(touchmark.dir()))
        .context("cannot read the server's root CA")?;
    let tls = tls_config(Some(&root_pem))?;

    progress.step("warming the OCSP cache: every request once");
    let warm = http_client(&tls, true)?;
    let url: Arc<str> = format!("{base}/ocsp").into();
    for request in requests.iter() {
        post(&warm, &url, request).await.map_err(Error::Void)?;
    }

    progress.step(&format!(
        "Touchmark: {} workers POST cached OCSP requests for {:.1} s",
        plan.concurrency,
        plan.duration.as_secs_f64()
    ));
    let clients = (0..plan.concurrency)
        .map(|_| http_client(&tls, true))
        .collect::<Result<Vec<_>, _>>()?;
    let timed = hammer(
        clients,
        Arc::clone(&url),
        Arc::clone(&requests),
        plan.duration,
    )
    .await?;
    if timed.failed > 0 {
        return Err(Error::Void(format!(
            "touchmark: {} of {} OCSP requests failed; the figures would be meaningless. \
             First failures:\n  {}",
            timed.failed,
            timed.failed + timed.latencies.len(),
            timed.failures.join("\n  ")
        )));
    }
    let touchmark_side = timed.throughput(
        plan.concurrency,
        "HTTPS (HTTP/1.1), one kept-alive connection per worker",
    );

    let openssl = match openssl_binary() {
        Err(why) => {
            progress.step(&why);
            Openssl {
                version: None,
                responder: None,
                throughput: None,
                skipped: Some(why),
            }
        }
        Ok(bin) => {
            progress.step(&format!(
                "openssl ocsp: {OPENSSL_WORKERS} workers POST the same requests for {:.1} s",
                plan.duration.as_secs_f64()
            ));
            let throughput =
                openssl_side(&bin, &issued, &issuing_pem, Arc::clone(&requests), plan).await?;
            Openssl {
                version: Some(openssl_version(&bin)),
                responder: Some(
                    "a P-256 key and self-signed certificate made by `openssl req`; it signs \
                     every answer (no cache), Touchmark answers from its cache"
                        .into(),
                ),
                throughput: Some(throughput),
                skipped: None,
            }
        }
    };

    progress.step(&format!(
        "revoking {} units, waiting for the OCSP answer and the CRL to say so",
        plan.revocations
    ));
    let crl_url = format!(
        "{base}/crl/{}/{}",
        touchmark.product_id(),
        touchmark.order_id()
    );
    let refresh = refresh(
        touchmark,
        &issued[..plan.revocations],
        &base,
        &crl_url,
        &tls,
    )
    .await?;
    Ok((touchmark_side, openssl, refresh))
}

/// Provisions `n` units through the stations; returns each with its OCSP request, and the
/// issuing CA's PEM.
async fn provision(touchmark: &Touchmark, n: usize) -> Result<(Vec<Issued>, String), Error> {
    let units = units::generate(touchmark.serial_prefix(), 0, n).await?;
    let stations = touchmark.stations(STATIONS);
    let order: Arc<str> = touchmark.order_id().into();
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::with_capacity(stations.len());
    for station in stations {
        let (station, units, order, next) = (
            station.clone(),
            Arc::clone(&units),
            Arc::clone(&order),
            Arc::clone(&next),
        );
        workers.push(tokio::spawn(async move {
            let mut done = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(unit) = units.get(i) else {
                    return Ok::<_, String>(done);
                };
                let answer = station
                    .provision(&order, &unit.request)
                    .await
                    .map_err(|e| format!("{}: {e}", unit.request.serial))?;
                if answer.status != "issued" {
                    return Err(format!(
                        "{}: answered `{}`, expected `issued`",
                        unit.request.serial, answer.status
                    ));
                }
                done.push((i, answer));
            }
        }));
    }
    let mut answers = Vec::with_capacity(n);
    for worker in workers {
        let done = worker
            .await
            .map_err(|_| Error::Died("a provisioning worker"))?
            .map_err(Error::Void)?;
        answers.extend(done);
    }
    answers.sort_by_key(|(i, _)| *i);
    let mut issued = Vec::with_capacity(n);
    let mut issuing_pem = String::new();
    for (_, answer) in answers {
        let chain = certs_from_pem(&answer.chain_pem).context("the answer's chain")?;
        let (Some(cert), Some(issuer)) = (chain.first(), chain.get(1)) else {
            return Err(Error::Void(format!(
                "{}: the chain holds no issuing CA",
                answer.serial
            )));
        };
        if issuing_pem.is_empty() {
            issuing_pem = issuer.pem();
        }
        let (name_hash, key_hash) =
            issuer_hashes(issuer, HashAlg::Sha1).context("the issuing CA's hashes")?;
        let cert_serial = certificate_serial(cert).context("the certificate's serial")?;
        let (_, not_after) = cert.validity().context("the certificate's validity")?;
        issued.push(Issued {
            unit: answer.serial,
            request: ocsp_request(&name_hash, &key_hash, &cert_serial),
            cert_serial,
            not_after,
        });
    }
    Ok((issued, issuing_pem))
}

/// A rustls configuration on aws-lc-rs trusting `root_pem` (nothing for plain HTTP).
fn tls_config(root_pem: Option<&str>) -> Result<rustls::ClientConfig, Error> {
    let mut roots = rustls::RootCertStore::empty();
    if let Some(pem) = root_pem {
        for cert in certs_from_pem(pem).context("the server's root CA")? {
            roots
                .add(cert.to_cert_der())
                .context("the server's root CA")?;
        }
    }
    Ok(rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .context("TLS configuration")?
    .with_root_certificates(roots)
    .with_no_client_auth())
}

/// One worker's client: kept-alive connections, or a new connection per request.
fn http_client(tls: &rustls::ClientConfig, keep_alive: bool) -> Result<reqwest::Client, Error> {
    reqwest::Client::builder()
        .use_preconfigured_tls(tls.clone())
        .pool_max_idle_per_host(usize::from(keep_alive))
        .timeout(Duration::from_secs(30))
        .build()
        .context("HTTP client")
}

/// POSTs one OCSP request; `Ok` only for HTTP 200 with a successful OCSPResponse that says the
/// certificate is good (every unit is, until the revocations, which come after the load): an
/// `unknown` would mean the responder does not know the certificate.
async fn post(client: &reqwest::Client, url: &str, request: &[u8]) -> Result<(), String> {
    let answer = client
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/ocsp-request")
        .body(request.to_vec())
        .send()
        .await
        .map_err(|e| format!("POST {url}: {e}"))?;
    let status = answer.status();
    let body = answer
        .bytes()
        .await
        .map_err(|e| format!("POST {url}: {e}"))?;
    if status != reqwest::StatusCode::OK {
        return Err(format!("POST {url}: HTTP {status}"));
    }
    match response_status(&body) {
        Some(0) => {}
        other => return Err(format!("POST {url}: OCSP responseStatus {other:?}")),
    }
    match cert_status(&body) {
        Some(CertStatus::Good) => Ok(()),
        other => Err(format!(
            "POST {url}: certificate status {other:?}, expected good"
        )),
    }
}

/// What a fixed-time drive measured.
struct Timed {
    elapsed: Duration,
    latencies: Vec<Duration>,
    failed: usize,
    failures: Vec<String>,
}

impl Timed {
    fn throughput(&self, workers: usize, connections: &str) -> Throughput {
        Throughput {
            workers,
            connections: connections.into(),
            seconds: self.elapsed.as_secs_f64(),
            responses: self.latencies.len(),
            failed: self.failed,
            responses_per_s: per_s(self.latencies.len(), self.elapsed),
            p50_ms: quantile_ms(&self.latencies, 0.50),
            p99_ms: quantile_ms(&self.latencies, 0.99),
        }
    }
}

/// Each client a worker: POSTs the requests in turn to `url` until `duration` has passed.
async fn hammer(
    clients: Vec<reqwest::Client>,
    url: Arc<str>,
    requests: Arc<Vec<Vec<u8>>>,
    duration: Duration,
) -> Result<Timed, Error> {
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let deadline = start + duration;
    let mut workers = Vec::with_capacity(clients.len());
    for client in clients {
        let (url, requests, next) = (Arc::clone(&url), Arc::clone(&requests), Arc::clone(&next));
        workers.push(tokio::spawn(async move {
            let (mut latencies, mut failed, mut failures) = (Vec::new(), 0usize, Vec::new());
            while Instant::now() < deadline {
                let i = next.fetch_add(1, Ordering::Relaxed) % requests.len().max(1);
                let Some(request) = requests.get(i) else {
                    break;
                };
                let sent = Instant::now();
                match post(&client, &url, request).await {
                    Ok(()) => latencies.push(sent.elapsed()),
                    Err(e) => {
                        failed += 1;
                        if failures.len() < 5 {
                            failures.push(e);
                        }
                    }
                }
            }
            (latencies, failed, failures)
        }));
    }
    let mut timed = Timed {
        elapsed: Duration::ZERO,
        latencies: Vec::new(),
        failed: 0,
        failures: Vec::new(),
    };
    for worker in workers {
        let (latencies, failed, failures) =
            worker.await.map_err(|_| Error::Died("an OCSP worker"))?;
        timed.latencies.extend(latencies);
        timed.failed += failed;
        timed
            .failures
            .extend(failures.into_iter().take(5 - timed.failures.len().min(5)));
    }
    timed.elapsed = start.elapsed();
    timed.latencies.sort_unstable();
    Ok(timed)
}

/// openssl: `TOUCHMARK_TEST_OPENSSL`, else `openssl` on the PATH; else why not.
fn openssl_binary() -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os(OPENSSL_ENV) {
        let path = PathBuf::from(path);
        if path.is_file() {
            return Ok(path);
        }
        return Err(format!(
            "{OPENSSL_ENV} names {}, which is not a file: the comparison with openssl is skipped",
            path.display()
        ));
    }
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join("openssl"))
                .find(|candidate| candidate.is_file())
        })
        .ok_or_else(|| {
            format!(
                "openssl was not found on the PATH (nor named by {OPENSSL_ENV}): the comparison \
                 with openssl is skipped"
            )
        })
}

fn openssl_version(bin: &Path) -> String {
    Command::new(bin)
        .arg("version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

/// `openssl ocsp` serving, killed when dropped.
struct Responder(Child);

impl Drop for Responder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `openssl ocsp` over an index of the issued certificates, with a responder key and
/// self-signed certificate openssl makes, and drives it with the same requests.
async fn openssl_side(
    bin: &Path,
    issued: &[Issued],
    issuing_pem: &str,
    requests: Arc<Vec<Vec<u8>>>,
    plan: &OcspPlan,
) -> Result<Throughput, Error> {
    let dir = tempfile::Builder::new()
        .prefix("touchmark-bench-openssl-ocsp-")
        .tempdir()
        .context("cannot create a temporary directory")?;
    let path = dir.path();
    std::fs::write(path.join("issuing.pem"), issuing_pem).context("issuing.pem")?;
    std::fs::write(path.join("index.txt"), index_txt(issued)).context("index.txt")?;
    let made = Command::new(bin)
        .current_dir(path)
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-subj",
            "/CN=openssl bench responder",
            "-days",
            "2",
            "-keyout",
            "rkey.pem",
            "-out",
            "rsigner.pem",
        ])
        .output()
        .context("cannot run openssl req")?;
    if !made.status.success() {
        return Err(Error::Void(format!(
            "openssl req could not make the responder's key: {}",
            String::from_utf8_lossy(&made.stderr)
        )));
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .context("cannot find a free loopback port")?
        .port();
    let log = std::fs::File::create(path.join("ocsp.log")).context("openssl log file")?;
    let child = Command::new(bin)
        .current_dir(path)
        .args([
            "ocsp",
            "-index",
            "index.txt",
            "-CA",
            "issuing.pem",
            "-rsigner",
            "rsigner.pem",
            "-rkey",
            "rkey.pem",
            "-nmin",
            "60",
            "-ignore_err",
            "-port",
            &port.to_string(),
        ])
        .stdin(Stdio::null())
        .stdout(log.try_clone().context("openssl log file")?)
        .stderr(log)
        .spawn()
        .context("cannot start openssl ocsp")?;
    let _responder = Responder(child);
    // Wait for its own word that it listens: a probing connection that sends nothing would
    // hold its one thread.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let log = std::fs::read_to_string(path.join("ocsp.log")).unwrap_or_default();
        if log.contains("waiting for OCSP client connections") {
            break;
        }
        if Instant::now() > deadline {
            return Err(Error::Void(format!(
                "openssl ocsp did not listen on port {port} within 10 s: {log}"
            )));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let tls = tls_config(None)?;
    let url: Arc<str> = format!("http://127.0.0.1:{port}/").into();
    // openssl answers every request of the index before the clock starts, as Touchmark's cache
    // was warmed: it keeps no cache, so this only checks its answers.
    let check = http_client(&tls, false)?;
    for request in requests.iter().take(10) {
        post(&check, &url, request).await.map_err(Error::Void)?;
    }
    let clients = (0..OPENSSL_WORKERS)
        .map(|_| http_client(&tls, false))
        .collect::<Result<Vec<_>, _>>()?;
    let timed = hammer(clients, url, requests, plan.duration).await?;
    Ok(timed.throughput(
        OPENSSL_WORKERS,
        "plain HTTP, a new connection per request (openssl ocsp answers one request per \
         connection, in one process)",
    ))
}

/// openssl's CA database (`index.txt`) of the issued certificates, all valid.
fn index_txt(issued: &[Issued]) -> String {
    let mut text = String::with_capacity(issued.len() * 64);
    for unit in issued {
        let t = unit.not_after;
        text.push_str(&format!(
            "V\t{:02}{:02}{:02}{:02}{:02}{:02}Z\t\t{}\tunknown\t/CN={}\n",
            t.year().rem_euclid(100),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second(),
            serial_hex(&unit.cert_serial),
            unit.unit
        ));
    }
    text
}

/// A serial as openssl's index spells it: upper-case hex, without leading zero bytes.
fn serial_hex(serial: &[u8]) -> String {
    let start = serial.iter().position(|&b| b != 0).unwrap_or(serial.len());
    let hex: String = serial[start..].iter().map(|b| format!("{b:02X}")).collect();
    if hex.is_empty() { "00".into() } else { hex }
}

/// Revokes each unit, and times until its OCSP answer (GET) and `crl_url` say so.
async fn refresh(
    touchmark: &Touchmark,
    units: &[Issued],
    base: &str,
    crl_url: &str,
    tls: &rustls::ClientConfig,
) -> Result<Refresh, Error> {
    let http = http_client(tls, true)?;
    let (mut ocsp_times, mut crl_times, mut both_times) = (Vec::new(), Vec::new(), Vec::new());
    for unit in units {
        let get_url = format!("{base}/ocsp/{}", base64_url(&unit.request));
        touchmark
            .admin()
            .revoke(
                RevocationKind::Unit,
                &unit.unit,
                &Revoke {
                    reason: "keyCompromise".into(),
                    product: None,
                },
            )
            .await
            .with_context(|| format!("cannot revoke {}", unit.unit))?;
        let committed = Instant::now();
        let (mut ocsp_at, mut crl_at) = (None, None);
        while ocsp_at.is_none() || crl_at.is_none() {
            if ocsp_at.is_none() {
                let body = get(&http, &get_url).await?;
                if cert_status(&body) == Some(CertStatus::Revoked) {
                    ocsp_at = Some(committed.elapsed());
                }
            }
            if crl_at.is_none() {
                let body = get(&http, crl_url).await?;
                if crl_lists(&body, &unit.cert_serial) {
                    crl_at = Some(committed.elapsed());
                }
            }
            if committed.elapsed() > REFRESH_LIMIT {
                return Err(Error::Void(format!(
                    "{}: not shown as revoked within {} s (OCSP {}, CRL {})",
                    unit.unit,
                    REFRESH_LIMIT.as_secs(),
                    if ocsp_at.is_some() { "yes" } else { "no" },
                    if crl_at.is_some() { "yes" } else { "no" },
                )));
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        if let (Some(o), Some(c)) = (ocsp_at, crl_at) {
            ocsp_times.push(o);
            crl_times.push(c);
            both_times.push(o.max(c));
        }
    }
    for times in [&mut ocsp_times, &mut crl_times, &mut both_times] {
        times.sort_unstable();
    }
    Ok(Refresh {
        revocations: units.len(),
        ocsp_p50_ms: quantile_ms(&ocsp_times, 0.50),
        ocsp_p99_ms: quantile_ms(&ocsp_times, 0.99),
        crl_p50_ms: quantile_ms(&crl_times, 0.50),
        crl_p99_ms: quantile_ms(&crl_times, 0.99),
        both_p50_ms: quantile_ms(&both_times, 0.50),
        both_p99_ms: quantile_ms(&both_times, 0.99),
    })
}

/// GETs `url`; its body when HTTP 200, else an empty one (a CRL not yet published).
async fn get(http: &reqwest::Client, url: &str) -> Result<Vec<u8>, Error> {
    let answer = http
        .get(url)
        .send()
        .await
        .with_context(|| format!("GET {url}"))?;
    if answer.status() != reqwest::StatusCode::OK {
        return Ok(Vec::new());
    }
    Ok(answer
        .bytes()
        .await
        .with_context(|| format!("GET {url}"))?
        .to_vec())
}

/// Builds and signs a CRL of `entries` random serials with a fresh P-256 CA.
fn large_crl(entries: usize) -> Result<LargeCrl, Error> {
    use rand::RngCore as _;
    let signer = SoftwareSigner::generate(KeyAlgorithm::EcdsaP256).context("CA key")?;
    let now = OffsetDateTime::now_utc();
    let ca: Certificate = create_root_ca(
        &signer,
        &Subject {
            organization: "Touchmark Bench".into(),
            common_name: "Bench CRL CA".into(),
        },
        now,
        now + time::Duration::days(365),
        SerialNumber::random(&mut rand::rng()),
    )
    .context("CA certificate")?;
    let mut rng = rand::rng();
    let list = (0..entries)
        .map(|_| {
            // Sixteen random bytes, as Touchmark's serial numbers.
            let mut serial = vec![0u8; 16];
            rng.fill_bytes(&mut serial);
            serial[0] = (serial[0] & 0x7f) | 0x01;
            RevokedEntry {
                serial,
                revoked_at: now,
                reason: 1,
            }
        })
        .collect();
    let content = CrlContent {
        number: 1,
        this_update: now,
        next_update: now + time::Duration::days(1),
        entries: list,
        partition_url: Some(format!("{PUBLIC_URL}/crl/bench-sensor/PO-BENCH")),
    };
    let start = Instant::now();
    let der = build_crl(&ca, &signer, &content).context("cannot build the CRL")?;
    let elapsed = start.elapsed();
    Ok(LargeCrl {
        entries,
        bytes: der.len(),
        bytes_per_entry: der.len() as f64 / entries as f64,
        build_and_sign_ms: elapsed.as_secs_f64() * 1e3,
    })
}

/// `count` per second over `elapsed`; zero for no time.
fn per_s(count: usize, elapsed: Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs > 0.0 { count as f64 / secs } else { 0.0 }
}

/// The `p`-quantile (nearest rank) of sorted durations, ms; zero for none.
fn quantile_ms(sorted: &[Duration], p: f64) -> f64 {
    crate::load::quantile(sorted, p).as_secs_f64() * 1e3
}

/// `a` over `b`, when `b` is not zero.
fn ratio(a: f64, b: f64) -> Option<f64> {
    (b > 0.0).then(|| a / b)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn openssl_index_serials_drop_leading_zero_bytes() {
        assert_eq!(serial_hex(&[0x00, 0x9a, 0x0b]), "9A0B");
        assert_eq!(serial_hex(&[0x01]), "01");
        assert_eq!(serial_hex(&[0x00]), "00");
    }

    #[test]
    fn the_arithmetic_of_the_report() {
        let ms: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(quantile_ms(&ms, 0.50), 50.0);
        assert_eq!(quantile_ms(&ms, 0.99), 99.0);
        assert_eq!(quantile_ms(&[], 0.99), 0.0);
        assert_eq!(per_s(500, Duration::from_millis(250)), 2000.0);
        assert_eq!(per_s(5, Duration::ZERO), 0.0);
        assert_eq!(ratio(30.0, 10.0), Some(3.0));
        assert_eq!(ratio(30.0, 0.0), None);
    }

    #[test]
    fn plans_check_their_settings() {
        let options = Options {
            units: None,
            concurrency: 32,
            seconds: None,
            revocations: None,
            crl_entries: None,
            quick: true,
        };
        let plan = OcspPlan::new(options.clone()).unwrap();
        assert_eq!(
            (plan.units, plan.revocations, plan.crl_entries),
            (200, 5, 10_000)
        );
        assert!(
            OcspPlan::new(Options {
                revocations: Some(201),
                ..options.clone()
            })
            .is_err()
        );
        assert!(
            OcspPlan::new(Options {
                concurrency: 0,
                ..options
            })
            .is_err()
        );
    }

    /// A tiny run end to end: every answer good, every revocation seen, the CRL of its size;
    /// openssl measured when found (required where the build found it, and under CI), else
    /// skipped with its reason.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_tiny_run_measures_every_part() {
        let plan = OcspPlan::new(Options {
            units: Some(12),
            concurrency: 4,
            seconds: Some(0.2),
            revocations: Some(3),
            crl_entries: Some(100),
            quick: true,
        })
        .unwrap();
        let progress: Arc<dyn Progress> = Arc::new(crate::Quiet);
        let report = run(&plan, &progress).await.unwrap();
        assert_eq!(report.units, 12);
        let t = &report.touchmark;
        assert_eq!((t.workers, t.failed), (4, 0));
        assert!(t.responses > 0 && t.responses_per_s > 0.0);
        assert!(t.p99_ms >= t.p50_ms);
        // openssl is measured exactly where the build found it (always under CI).
        assert_eq!(
            report.openssl.throughput.is_some(),
            cfg!(tm_openssl),
            "openssl measured where present: {:?}",
            report.openssl.skipped
        );
        match &report.openssl.throughput {
            Some(o) => {
                assert_eq!(o.failed, 0);
                assert!(o.responses > 0);
                assert!(report.ratio.is_some());
            }
            None => {
                assert!(report.openssl.skipped.is_some());
                assert!(report.ratio.is_none());
            }
        }
        let f = &report.refresh;
        assert_eq!(f.revocations, 3);
        assert!(f.both_p99_ms >= f.ocsp_p99_ms && f.both_p99_ms >= f.crl_p99_ms);
        assert_eq!(report.crl.entries, 100);
        // Each entry: a 16-octet serial, a UTCTime and a reason code, 49 bytes.
        assert!(report.crl.bytes > 4_900 && report.crl.bytes < 4_900 + 1_000);
    }
}
