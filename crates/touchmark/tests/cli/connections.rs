//! Connection exhaustion (issue 11, security finding 1): a `touchmark serve` that may open only
//! 1,024 files, held by 1,000 idle TCP connections, 200 stalled TLS handshakes and 1,100 TLS
//! connections that completed their handshake and send nothing, still answers a station's
//! provisioning request within a second.

use std::io::BufRead;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::kit::{self, Served, Unit};

/// The bound the issue states for a legitimate provision under attack.
const BOUND: Duration = Duration::from_secs(1);

/// A TLS client that trusts the installation's root and presents no certificate.
fn tls_client(dir: &std::path::Path) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(kit::root_ca(dir).as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    Arc::new(config)
}

/// The first half of a real ClientHello: a handshake that starts and stalls.
fn half_a_client_hello(config: Arc<rustls::ClientConfig>) -> Vec<u8> {
    let mut client =
        rustls::ClientConnection::new(config, ServerName::try_from("localhost").unwrap()).unwrap();
    let mut hello = Vec::new();
    client.write_tls(&mut hello).unwrap();
    hello.truncate(hello.len() / 2);
    hello
}

/// This process may open as many files as its hard limit allows: it holds 2,300 sockets.
fn raise_own_open_file_limit() {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        },
    )
    .unwrap();
    let now = getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX);
    assert!(
        now >= 4096,
        "the test needs 4,096 open files; the hard limit is {now}"
    );
}

/// The server's `Max open files` line from /proc: (soft, hard).
fn open_file_limit_of(pid: u32) -> (String, String) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let mut fields = line["Max open files".len()..].split_whitespace();
    (
        fields.next().unwrap().to_owned(),
        fields.next().unwrap().to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_station_gets_in_while_thousands_of_connections_hold_on() {
    raise_own_open_file_limit();
    let (_tmp, dir) = kit::tempdir();
    let token = kit::init(&dir);
    // soft = hard = 1,024, set before `exec`, so the server cannot raise it.
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg("ulimit -Sn 1024 && ulimit -Hn 1024 && exec \"$0\" \"$@\"")
        .arg(kit::bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(&dir)
        .env("TOUCHMARK_KEY_PASSPHRASE", kit::PASSPHRASE)
        .env("TOUCHMARK_LOG", "warn")
        .stderr(Stdio::piped());
    let mut served = Served::spawn(&mut command);
    let warnings = collect_lines(served.child.stderr.take().unwrap());
    assert_eq!(
        open_file_limit_of(served.child.id()),
        ("1024".to_owned(), "1024".to_owned())
    );
    let admin = kit::admin(&served.url, &dir, &token);
    kit::setup_order(&admin, "PO-DOS", 10).await;
    let identity = kit::enroll(&admin, &served.url, &dir, "cm", "line-1").await;
    let port: u16 = served.url.rsplit(':').next().unwrap().parse().unwrap();
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let tls = tls_client(&dir);

    // 1,000 connections that never start TLS.
    let mut held = Vec::new();
    for _ in 0..1_000 {
        held.push(TcpStream::connect(addr).await.unwrap());
    }
    // 200 handshakes that stall halfway through the ClientHello.
    let hello = half_a_client_hello(Arc::clone(&tls));
    for _ in 0..200 {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(&hello).await.unwrap();
        held.push(stream);
    }
    // 1,100 connections that complete their handshake and send nothing, 50 at a time.
    let connector = tokio_rustls::TlsConnector::from(tls);
    let mut silent = Vec::new();
    for _ in 0..22 {
        let mut batch = tokio::task::JoinSet::new();
        for _ in 0..50 {
            let connector = connector.clone();
            batch.spawn(async move {
                let tcp = TcpStream::connect(addr).await.ok()?;
                let handshake = connector.connect(ServerName::try_from("localhost").unwrap(), tcp);
                tokio::time::timeout(Duration::from_secs(15), handshake)
                    .await
                    .ok()?
                    .ok()
            });
        }
        silent.extend(batch.join_all().await.into_iter().flatten());
    }
    eprintln!(
        "attack: {} TCP connections held, {} of 1,100 TLS handshakes completed",
        held.len(),
        silent.len()
    );

    // A station provisions a unit on a connection of its own: answered, and within the bound.
    let station = kit::station_client(&served.url, &dir, &identity);
    let started = Instant::now();
    let answer = tokio::time::timeout(
        Duration::from_secs(10),
        station.provision("PO-DOS", &Unit::new("SN-000001".into()).request()),
    )
    .await;
    let latency = started.elapsed();
    let descriptors = std::fs::read_dir(format!("/proc/{}/fd", served.child.id()))
        .unwrap()
        .count();
    eprintln!("provision under attack: {latency:?}; the server holds {descriptors} descriptors");
    let issued = answer
        .unwrap_or_else(|_| panic!("no answer within 10 s while the connections are held"))
        .unwrap();
    assert_eq!(issued.status, "issued");
    assert!(latency < BOUND, "answered in {latency:?}, beyond {BOUND:?}");
    // The cap kept the server inside its limit: it never failed to accept for want of a
    // descriptor.
    let warnings = warnings.lock().unwrap().clone();
    assert!(
        !warnings.iter().any(|l| l.contains("accept failed")),
        "{warnings:#?}"
    );
    drop((held, silent));
}

/// The lines `stream` yields, collected as they come.
fn collect_lines(stream: impl std::io::Read + Send + 'static) -> Arc<Mutex<Vec<String>>> {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&lines);
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            eprintln!("server: {line}");
            sink.lock().unwrap().push(line);
        }
    });
    lines
}
