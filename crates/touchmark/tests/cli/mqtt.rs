//! MQTT acceptance: a real Mosquitto broker accepts provisioned devices and refuses others.
//!
//! A Mosquitto 2.0 broker with a TLS listener that requires a client certificate trusts
//! Touchmark's device root CA and the product's issuing CA. A device provisioned through a real
//! `touchmark serve` connects with its key and chain and publishes a message that another
//! provisioned device receives. A self-signed device, a device from another Touchmark
//! installation, and a station of the same installation presenting its own certificate and the
//! station CA (issue 11, finding 6) are refused, while the same command with the good device
//! still succeeds.
//!
//! A data directory made before roots were split has one root over devices and stations: a
//! broker that trusts it accepts a station as a device. After `touchmark split-roots`, the same
//! broker refuses a station enrolled from then on and still accepts every device.
//!
//! A broker that also reads Touchmark's CRL (`crlfile`) accepts a device, and after `touchmark
//! revoke unit` and a refresh of the CRL it has fetched, refuses that device and still accepts
//! its sibling.
//!
//! Needs `mosquitto` (or `TOUCHMARK_TEST_MOSQUITTO`) and `mosquitto_pub` / `mosquitto_sub` (or
//! `TOUCHMARK_TEST_MOSQUITTO_PUB` / `TOUCHMARK_TEST_MOSQUITTO_SUB`); without them the test is
//! reported as ignored, with that reason, unless `CI=true`, where it fails.

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use time::OffsetDateTime;
use touchmark_client::{Client, Identity};
use touchmark_core::api::ProvisionRequest;
use touchmark_pki::{
    CaIssuer, KeyAlgorithm, SerialNumber, SoftwareSigner, Subject, build_csr, create_root_ca,
    issue_server_cert,
};

use crate::kit::{self, Served};

const ORDER: &str = "PO-MQTT";
const TOPIC: &str = "devices/SN-000001/hello";
/// How long any one client or broker step may take before the test gives up.
const DEADLINE: Duration = Duration::from_secs(15);

/// The Mosquitto binaries, from the environment or `PATH`.
struct Tools {
    broker: PathBuf,
    publish: PathBuf,
    subscribe: PathBuf,
}

impl Tools {
    /// The tools, for a test that runs only with `tm_mosquitto` (see `touchmark-testenv`).
    fn find() -> Self {
        Self {
            broker: touchmark_testenv::tool(&touchmark_testenv::MOSQUITTO),
            publish: touchmark_testenv::tool(&touchmark_testenv::MOSQUITTO_PUB),
            subscribe: touchmark_testenv::tool(&touchmark_testenv::MOSQUITTO_SUB),
        }
    }
}

/// A device's credentials on disk: its private key and its certificate chain, PEM.
struct Device {
    key: PathBuf,
    chain: PathBuf,
}

impl Device {
    fn write(dir: &Path, name: &str, key_pem: &str, chain_pem: &str) -> Self {
        let device = Self {
            key: dir.join(format!("{name}.key")),
            chain: dir.join(format!("{name}-chain.pem")),
        };
        std::fs::write(&device.key, key_pem).unwrap();
        std::fs::write(&device.chain, chain_pem).unwrap();
        device
    }
}

/// A running Touchmark installation with a product, a factory, an open order and a station.
struct Installation {
    served: Served,
    station: Client,
    /// The station's own credentials: its key, and its certificate with the station CA.
    station_identity: Identity,
    device_root_pem: String,
    issuing_ca_pem: String,
}

impl Installation {
    async fn start(dir: &Path, token: &str) -> Self {
        let served = Served::start(dir);
        let admin = kit::admin(&served.url, dir, token);
        let product = kit::setup_order(&admin, ORDER, 10).await;
        Self::with_station(served, dir, token, "line-1", product.issuing_ca_pem).await
    }

    /// The installation served by `served`, set up already, with a new station `id`.
    async fn with_station(
        served: Served,
        dir: &Path,
        token: &str,
        id: &str,
        issuing_ca_pem: String,
    ) -> Self {
        let admin = kit::admin(&served.url, dir, token);
        let identity = kit::enroll(&admin, &served.url, dir, "cm", id).await;
        let station = kit::station_client(&served.url, dir, &identity);
        let station_ca = std::fs::read_to_string(dir.join("certs/station-ca.pem")).unwrap();
        let station_identity = Identity::new(
            format!("{}\n{}", identity.cert_chain_pem.trim(), station_ca.trim()),
            identity.key_pem.to_string(),
        );
        Self {
            served,
            station,
            station_identity,
            device_root_pem: kit::device_root(dir),
            issuing_ca_pem,
        }
    }

    /// The station's credentials, written as a device's would be.
    fn station_as_device(&self, files: &Path, name: &str) -> Device {
        Device::write(
            files,
            name,
            &self.station_identity.key_pem,
            &self.station_identity.cert_chain_pem,
        )
    }

    /// What the broker trusts: the device root and the product's issuing CA.
    fn device_trust(&self) -> String {
        format!(
            "{}\n{}",
            self.device_root_pem.trim(),
            self.issuing_ca_pem.trim()
        )
    }

    /// Provisions a unit with a fresh key, as a station would, and writes its credentials.
    async fn provision(&self, serial: &str, files: &Path, name: &str) -> Device {
        let key = SoftwareSigner::generate(KeyAlgorithm::EcdsaP256).unwrap();
        let csr =
            touchmark_pki::pem::encode("CERTIFICATE REQUEST", &build_csr(&key, serial).unwrap());
        let done = self
            .station
            .provision(
                ORDER,
                &ProvisionRequest {
                    serial: serial.into(),
                    csr,
                    test: kit::passing_test(serial),
                    encryption_key: None,
                    attestation: None,
                },
            )
            .await
            .unwrap();
        assert_eq!(done.status, "issued");
        assert_eq!(
            done.root_ca_pem.trim(),
            self.device_root_pem.trim(),
            "{}",
            self.served.url
        );
        Device::write(files, name, &key.pkcs8_pem(), &done.chain_pem)
    }
}

/// A self-signed CA certificate (O=Acme, CN=`common_name`) with a fresh key: the key and the
/// certificate PEM.
fn self_signed(common_name: &str) -> (Arc<SoftwareSigner>, String) {
    let key = Arc::new(SoftwareSigner::generate(KeyAlgorithm::EcdsaP256).unwrap());
    let now = OffsetDateTime::now_utc();
    let cert = create_root_ca(
        key.as_ref(),
        &Subject {
            organization: "Acme".into(),
            common_name: common_name.into(),
        },
        now - time::Duration::hours(1),
        now + time::Duration::days(1),
        SerialNumber::random(&mut rand::rng()),
    )
    .unwrap();
    (key, cert.pem())
}

/// The broker's TLS identity, from a test CA unrelated to Touchmark: writes `broker-ca.pem`,
/// `broker.pem` and `broker.key` and returns the CA's path.
fn broker_identity(files: &Path) -> PathBuf {
    let (ca_key, ca_pem) = self_signed("MQTT test broker CA");
    let ca = CaIssuer::new(
        touchmark_pki::Certificate::from_pem(&ca_pem).unwrap(),
        ca_key,
    )
    .unwrap();
    let key = SoftwareSigner::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let now = OffsetDateTime::now_utc();
    let cert = issue_server_cert(
        &ca,
        touchmark_pki::Signer::public_key_spki(&key),
        &["localhost".into(), "127.0.0.1".into()],
        now - time::Duration::hours(1),
        now + time::Duration::days(1),
        SerialNumber::random(&mut rand::rng()),
    )
    .unwrap();
    std::fs::write(files.join("broker.pem"), cert.pem()).unwrap();
    std::fs::write(files.join("broker.key"), key.pkcs8_pem().as_bytes()).unwrap();
    let ca_path = files.join("broker-ca.pem");
    std::fs::write(&ca_path, ca_pem).unwrap();
    ca_path
}

/// A running Mosquitto, killed on drop.
struct Broker {
    child: Child,
    port: u16,
    log: PathBuf,
    stderr: PathBuf,
}

impl Broker {
    /// Starts Mosquitto with a TLS listener that requires a certificate chaining to `trust_pem`,
    /// and waits until its port accepts connections.
    fn start(tools: &Tools, files: &Path, trust_pem: &str) -> Self {
        Self::start_with_crl(tools, files, trust_pem, None)
    }

    /// The same, checking each client certificate against the CRL in `crl` (PEM) too.
    fn start_with_crl(tools: &Tools, files: &Path, trust_pem: &str, crl: Option<&Path>) -> Self {
        let trust = files.join("device-trust.pem");
        std::fs::write(&trust, trust_pem).unwrap();
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = files.join("mosquitto.log");
        let stderr = files.join("mosquitto.stderr");
        let config = files.join("mosquitto.conf");
        let path = |name: &str| files.join(name).display().to_string();
        std::fs::write(
            &config,
            format!(
                "# Touchmark MQTT acceptance test\n\
                 # When run as root (containers), stay root so the broker can read the tempdir;\n\
                 # ignored otherwise.\n\
                 user root\n\
                 persistence false\n\
                 log_dest file {log}\n\
                 log_type all\n\
                 connection_messages true\n\
                 listener {port} 127.0.0.1\n\
                 cafile {trust}\n\
                 certfile {cert}\n\
                 keyfile {key}\n\
                 require_certificate true\n\
                 use_identity_as_username true\n\
                 allow_anonymous false\n\
                 {crl}",
                crl = crl.map_or(String::new(), |p| format!("crlfile {}\n", p.display())),
                log = log.display(),
                trust = trust.display(),
                cert = path("broker.pem"),
                key = path("broker.key"),
            ),
        )
        .unwrap();
        let child = Command::new(&tools.broker)
            .arg("-c")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        let mut broker = Self {
            child,
            port,
            log,
            stderr,
        };
        let start = Instant::now();
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            if let Some(status) = broker.child.try_wait().unwrap() {
                panic!("mosquitto exited with {status}: {}", broker.diagnostics());
            }
            assert!(
                start.elapsed() < DEADLINE,
                "mosquitto did not listen on {addr}: {}",
                broker.diagnostics()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        broker
    }

    fn read_log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn diagnostics(&self) -> String {
        format!(
            "stderr: {}\nlog: {}",
            std::fs::read_to_string(&self.stderr).unwrap_or_default(),
            self.read_log()
        )
    }

    /// The client arguments to reach this broker as `device`, trusting `broker_ca`.
    fn client_args(&self, broker_ca: &Path, device: &Device) -> Vec<String> {
        [
            "-h".into(),
            "127.0.0.1".into(),
            "-p".into(),
            self.port.to_string(),
            "--cafile".into(),
            broker_ca.display().to_string(),
            "--cert".into(),
            device.chain.display().to_string(),
            "--key".into(),
            device.key.display().to_string(),
            "-q".into(),
            "1".into(),
            "-t".into(),
            TOPIC.into(),
        ]
        .into()
    }

    /// `mosquitto_pub ... -m hi` as `device`.
    fn publish(&self, tools: &Tools, broker_ca: &Path, device: &Device) -> Output {
        let mut cmd = Command::new(&tools.publish);
        cmd.args(self.client_args(broker_ca, device))
            .args(["-m", "hi"]);
        bounded(&mut cmd)
    }

    /// Publishes as `good`, which must get through.
    fn assert_accepted(&self, tools: &Tools, broker_ca: &Path, what: &str, good: &Device) {
        let published = self.publish(tools, broker_ca, good);
        assert!(
            published.status.success(),
            "{what} is refused: {}; {}",
            describe(&published),
            self.diagnostics()
        );
    }

    /// Publishes as `stranger`, which the broker must refuse at the TLS handshake, and then as
    /// `good`, which must still get through.
    fn assert_refused(
        &self,
        tools: &Tools,
        broker_ca: &Path,
        what: &str,
        stranger: &Device,
        good: &Device,
    ) {
        let before = self.read_log().matches("certificate verify failed").count();
        let refused = self.publish(tools, broker_ca, stranger);
        assert!(
            !refused.status.success(),
            "{what} was accepted: {}",
            describe(&refused)
        );
        let log = self.read_log();
        assert!(
            log.matches("certificate verify failed").count() > before,
            "the broker logged no TLS verification failure for {what}: {log}"
        );
        self.assert_accepted(
            tools,
            broker_ca,
            &format!("after refusing {what}, the provisioned device"),
            good,
        );
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `cmd` to completion; a run that outlives `DEADLINE` is killed (and so fails).
fn bounded(cmd: &mut Command) -> Output {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    bounded_wait(child)
}

fn describe(out: &Output) -> String {
    format!(
        "{}; stdout: {}; stderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout).trim(),
        String::from_utf8_lossy(&out.stderr).trim()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(tm_mosquitto),
    ignore = "needs Mosquitto: install Debian's mosquitto and mosquitto-clients, or set TOUCHMARK_TEST_MOSQUITTO, TOUCHMARK_TEST_MOSQUITTO_PUB and TOUCHMARK_TEST_MOSQUITTO_SUB"
)]
async fn mosquitto_accepts_provisioned_devices_and_refuses_others() {
    let tools = Tools::find();
    let work = tempfile::tempdir().unwrap();
    let files = work.path();

    // Two installations with the same setup: the broker trusts A; B is a stranger.
    let (_a_tmp, a_dir) = kit::tempdir();
    let (_b_tmp, b_dir) = kit::tempdir();
    let (a_token, b_token) = std::thread::scope(|s| {
        let b = s.spawn(|| kit::init(&b_dir));
        (kit::init(&a_dir), b.join().unwrap())
    });
    let a = Installation::start(&a_dir, &a_token).await;
    let b = Installation::start(&b_dir, &b_token).await;
    let device = a.provision("SN-000001", files, "device").await;
    let listener = a.provision("SN-000002", files, "listener").await;
    let foreign = b.provision("SN-000001", files, "foreign").await;
    let (impostor_key, impostor_cert) = self_signed("Acme Sensor");
    let impostor = Device::write(files, "impostor", &impostor_key.pkcs8_pem(), &impostor_cert);

    let station = a.station_as_device(files, "station");

    let broker_ca = broker_identity(files);
    let broker = Broker::start(&tools, files, &a.device_trust());

    // Accepted: the listener subscribes first (the broker logs its SUBACK; the client's own
    // output is block-buffered in a pipe), then the device publishes and the listener receives
    // exactly that message.
    let mut sub = Command::new(&tools.subscribe)
        .args(broker.client_args(&broker_ca, &listener))
        .args(["-C", "1", "-W", "10"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while !broker.read_log().contains("Sending SUBACK") {
        if sub.try_wait().unwrap().is_some() || start.elapsed() > DEADLINE {
            let _ = sub.kill();
            let out = sub.wait_with_output().unwrap();
            panic!(
                "mosquitto_sub never subscribed: {}; {}",
                describe(&out),
                broker.diagnostics()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let published = broker.publish(&tools, &broker_ca, &device);
    assert!(
        published.status.success(),
        "the provisioned device is refused: {}; {}",
        describe(&published),
        broker.diagnostics()
    );
    let received = bounded_wait(sub);
    assert!(
        received.status.success() && String::from_utf8_lossy(&received.stdout).trim() == "hi",
        "the listener did not receive the message: {}; {}",
        describe(&received),
        broker.diagnostics()
    );
    let log = broker.read_log();
    assert!(
        log.contains("u'Acme Sensor'"),
        "the broker took the certificate's CN as the username: {log}"
    );

    // Refused: a self-signed certificate, one from another Touchmark installation, and the
    // installation's own station with its certificate and the station CA (issue 11, finding
    // 6). After each, the good device with the same command still gets through.
    for (what, stranger) in [
        ("a self-signed device", &impostor),
        ("a device of another installation", &foreign),
        ("a station of the same installation", &station),
    ] {
        broker.assert_refused(&tools, &broker_ca, what, stranger, &device);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(tm_mosquitto),
    ignore = "needs Mosquitto: install Debian's mosquitto and mosquitto-clients, or set TOUCHMARK_TEST_MOSQUITTO, TOUCHMARK_TEST_MOSQUITTO_PUB and TOUCHMARK_TEST_MOSQUITTO_SUB"
)]
async fn after_split_roots_the_broker_refuses_new_stations_and_keeps_every_device() {
    let tools = Tools::find();
    let work = tempfile::tempdir().unwrap();
    let files = work.path();
    let (_tmp, dir) = kit::tempdir();
    let token = kit::init(&dir);
    kit::make_single_root(&dir);

    // One root, as data directories made before the split have: the broker that trusts it for
    // devices accepts the station as a device. This is what `serve` warns about.
    let single = Installation::start(&dir, &token).await;
    let old_device = single.provision("SN-000001", files, "old-device").await;
    let old_station = single.station_as_device(files, "old-station");
    let issuing_ca_pem = single.issuing_ca_pem.clone();
    let root_before = single.device_root_pem.clone();
    {
        let broker_ca = broker_identity(files);
        let broker = Broker::start(&tools, files, &single.device_trust());
        broker.assert_accepted(&tools, &broker_ca, "the device", &old_device);
        broker.assert_accepted(
            &tools,
            &broker_ca,
            "with one root, the station presented as a device",
            &old_station,
        );
    }
    drop(single);

    let split = kit::split_roots(&dir);
    kit::assert_success(&split, "split-roots");
    let served = Served::start(&dir);
    let after = Installation::with_station(served, &dir, &token, "line-2", issuing_ca_pem).await;
    assert_eq!(
        after.device_root_pem, root_before,
        "the one root stays, as the device root"
    );
    let new_device = after.provision("SN-000002", files, "new-device").await;
    let new_station = after.station_as_device(files, "new-station");

    let files = files.join("after");
    std::fs::create_dir(&files).unwrap();
    let broker_ca = broker_identity(&files);
    let broker = Broker::start(&tools, &files, &after.device_trust());
    broker.assert_accepted(
        &tools,
        &broker_ca,
        "a device issued after the split",
        &new_device,
    );
    broker.assert_accepted(
        &tools,
        &broker_ca,
        "a device issued before the split",
        &old_device,
    );
    broker.assert_refused(
        &tools,
        &broker_ca,
        "a station enrolled after the split",
        &new_station,
        &new_device,
    );
    // What the split cannot take back (docs/pki.md): a station certificate issued before it
    // still chains to the device root until it expires. The server refuses it.
    broker.assert_accepted(
        &tools,
        &broker_ca,
        "a station certificate issued before the split",
        &old_station,
    );
}

/// Waits for a spawned client, killing it if it outlives `DEADLINE` (and so failing it).
fn bounded_wait(mut child: Child) -> Output {
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > DEADLINE {
            let _ = child.kill();
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    child.wait_with_output().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(tm_mosquitto),
    ignore = "needs Mosquitto: install Debian's mosquitto and mosquitto-clients, or set TOUCHMARK_TEST_MOSQUITTO, TOUCHMARK_TEST_MOSQUITTO_PUB and TOUCHMARK_TEST_MOSQUITTO_SUB"
)]
async fn a_broker_with_the_crl_refuses_a_revoked_device() {
    let tools = Tools::find();
    let work = tempfile::tempdir().unwrap();
    let files = work.path();
    let (_tmp, dir) = kit::tempdir();
    let token = kit::init(&dir);
    let a = Installation::start(&dir, &token).await;
    let device = a.provision("SN-000001", files, "device").await;
    let sibling = a.provision("SN-000002", files, "sibling").await;
    let broker_ca = broker_identity(files);

    // The CRL as a broker's operator fetches it: PEM, from the server, no credentials.
    let server_ca = files.join("server-ca.pem");
    std::fs::write(&server_ca, kit::root_ca(&dir)).unwrap();
    let crl_url = format!("{}/crl/sensor?format=pem", a.served.url);
    let fetch = || {
        let out = bounded(
            Command::new("curl")
                .args(["-sf", "--cacert"])
                .arg(&server_ca)
                .arg(&crl_url),
        );
        assert!(out.status.success(), "curl {crl_url}: {}", describe(&out));
        String::from_utf8(out.stdout).unwrap()
    };
    let crl = files.join("sensor.crl.pem");
    let before = fetch();
    std::fs::write(&crl, &before).unwrap();
    {
        let broker = Broker::start_with_crl(&tools, files, &a.device_trust(), Some(&crl));
        broker.assert_accepted(
            &tools,
            &broker_ca,
            "the device, before its revocation",
            &device,
        );
    }

    let out = Command::new(kit::bin())
        .args([
            "revoke",
            "unit",
            "SN-000001",
            "--reason",
            "keyCompromise",
            "--server",
            &a.served.url,
            "--token",
            &token,
            "--data",
        ])
        .arg(&dir)
        .env_remove("TOUCHMARK_TOKEN")
        .env_remove("TOUCHMARK_TOKEN_FILE")
        .output()
        .unwrap();
    kit::assert_success(&out, "touchmark revoke unit");
    // The CRL refresh: the broker's copy is replaced once the server has signed the new one.
    let start = Instant::now();
    let after = loop {
        let now = fetch();
        if now != before {
            break now;
        }
        assert!(start.elapsed() < DEADLINE, "the CRL never changed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    std::fs::write(&crl, &after).unwrap();
    let broker = Broker::start_with_crl(&tools, files, &a.device_trust(), Some(&crl));
    broker.assert_refused(&tools, &broker_ca, "the revoked device", &device, &sibling);
}
