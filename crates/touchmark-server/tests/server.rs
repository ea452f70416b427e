//! Integration tests of Touchmark's HTTPS server: a real server on `127.0.0.1:0` per test, driven
//! over TLS by the typed client and by raw requests, with the issued chains checked by verifiers
//! we did not write (openssl, rustls/webpki). design.md §4 (checks 1 to 8, invariants I1, I2, I4, I6)
//! and §5.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use serde_json::{Value, json};
use time::Duration;
use touchmark_client::api::{
    CreateOrder, CreateStation, CreateToken, EnrollRequest, ProvisionResponse,
};
use touchmark_client::{Client, ClientConfig, ClientError, ErrorCode};
use touchmark_core::OrderId;
use touchmark_core::clock::format_timestamp;
use touchmark_pki::{KeyAlgorithm, SoftwareSigner, build_csr};

use touchmark_testkit::{
    Backend, Snapshot, TestServer, Unit, failing_test, openhtf_passing_test,
    openhtf_real_sn_000400, openhtf_real_unknown_dut, passing_test, pem_sha256,
};

// ---------------------------------------------------------------------------------------------
// Chains: every issued chain verifies with openssl, and works as a TLS client certificate with
// rustls/webpki (design.md §5).
// ---------------------------------------------------------------------------------------------
mod chains {

    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    use rustls::server::WebPkiClientVerifier;
    use rustls_pki_types::pem::PemObject;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    touchmark_testkit::both_backends!(
        #[cfg_attr(
            not(tm_openssl),
            ignore = "needs openssl: install it, or set TOUCHMARK_TEST_OPENSSL"
        )]
        issued_chains_verify_with_openssl_and_as_tls_client_certificates,
        #[cfg_attr(
            not(tm_openssl),
            ignore = "needs openssl: install it, or set TOUCHMARK_TEST_OPENSSL"
        )]
        stations_and_the_server_chain_to_a_root_apart_from_the_devices
    );

    /// A TLS server that requires a client certificate chaining to `root_der`, as a relying
    /// party of the devices would. Returns the chain the client presented, or the handshake
    /// error.
    async fn handshake(
        root_der: CertificateDer<'static>,
        client_chain: Vec<CertificateDer<'static>>,
        client_key: PrivateKeyDer<'static>,
    ) -> Result<Vec<CertificateDer<'static>>, String> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let signing_key = provider.key_provider.load_private_key(client_key).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(root_der).unwrap();
        let verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider))
                .build()
                .unwrap();
        let server_id = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        let server_cert = server_id.cert.der().clone();
        let server_config = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_single_cert(
                vec![server_cert.clone()],
                PrivateKeyDer::try_from(server_id.signing_key.serialize_der()).unwrap(),
            )
            .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server_config));
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let mut tls = acceptor.accept(tcp).await.map_err(|e| e.to_string())?;
            let mut ping = [0u8; 4];
            tls.read_exact(&mut ping).await.map_err(|e| e.to_string())?;
            tls.write_all(b"pong").await.map_err(|e| e.to_string())?;
            tls.shutdown().await.map_err(|e| e.to_string())?;
            Ok::<_, String>(tls.get_ref().1.peer_certificates().unwrap().to_vec())
        });

        let mut client_roots = rustls::RootCertStore::empty();
        client_roots.add(server_cert).unwrap();
        let client_config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(client_roots)
            .with_client_cert_resolver(Arc::new(Present(Arc::new(
                rustls::sign::CertifiedKey::new(client_chain, signing_key),
            ))));
        let connector = tokio_rustls::TlsConnector::from(Arc::new(client_config));
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        // With TLS 1.3 the client finishes before the server has judged its certificate, so the
        // server's view decides; the client's errors only follow from it.
        if let Ok(mut tls) = connector
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
        {
            let _ = tls.write_all(b"ping").await;
            let mut pong = [0u8; 4];
            let _ = tls.read_exact(&mut pong).await;
        }
        server.await.unwrap()
    }

    /// Presents a chain and a key without checking that they belong together, so a chain can
    /// be offered with a key that is not its own.
    #[derive(Debug)]
    struct Present(Arc<rustls::sign::CertifiedKey>);

    impl rustls::client::ResolvesClientCert for Present {
        fn resolve(
            &self,
            _root_hint_subjects: &[&[u8]],
            _sigschemes: &[rustls::SignatureScheme],
        ) -> Option<Arc<rustls::sign::CertifiedKey>> {
            Some(Arc::clone(&self.0))
        }

        fn has_certs(&self) -> bool {
            true
        }
    }

    fn ders(pem: &str) -> Vec<CertificateDer<'static>> {
        CertificateDer::pem_slice_iter(pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .unwrap()
    }

    async fn issued_chains_verify_with_openssl_and_as_tls_client_certificates(backend: Backend) {
        let kit = TestServer::start(backend).await;
        let line = kit.line("chain", 5, "SN-0001..SN-0100").await;
        let station = kit.enroll_station(&line.factory).await;
        let unit = Unit::new("SN-0001");
        let reply = station
            .provision(&line.order, &unit, passing_test(&unit.serial))
            .await;
        assert_eq!(reply.status, 201, "{}", reply.text);
        let issued: ProvisionResponse = serde_json::from_value(reply.body).unwrap();
        assert_eq!(issued.status, "issued");
        assert_eq!(issued.root_ca_pem, kit.device_root_pem);
        assert!(issued.chain_pem.starts_with(&issued.certificate_pem));
        assert_eq!(ders(&issued.chain_pem).len(), 2);
        assert_eq!(issued.cert_sha256, pem_sha256(&issued.certificate_pem));

        // openssl, strict X.509, as a TLS client certificate.
        {
            let openssl = touchmark_testenv::tool(&touchmark_testenv::OPENSSL);
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join("root-ca.pem"), &issued.root_ca_pem).unwrap();
            std::fs::write(dir.path().join("chain.pem"), &issued.chain_pem).unwrap();
            std::fs::write(dir.path().join("certificate.pem"), &issued.certificate_pem).unwrap();
            let verify = ["verify", "-x509_strict", "-CAfile", "root-ca.pem"];
            for extra in [&[][..], &["-purpose", "sslclient"][..]] {
                let args = [
                    &verify[..],
                    &["-untrusted", "chain.pem"],
                    extra,
                    &["certificate.pem"],
                ];
                let (ok, text) = touchmark_testenv::run(&openssl, dir.path(), &args.concat());
                assert!(ok, "openssl verify {extra:?}: {text}");
                assert!(text.contains("certificate.pem: OK"), "{text}");
            }
            // Without the issuing CA, the chain does not verify: openssl really checked it.
            let args = [&verify[..], &["certificate.pem"]].concat();
            let (ok, text) = touchmark_testenv::run(&openssl, dir.path(), &args);
            assert!(!ok, "{text}");
        }

        // A real rustls handshake: the device presents its chain and proves its key.
        let root = ders(&issued.root_ca_pem).remove(0);
        let key = PrivateKeyDer::from_pem_slice(unit.signer.pkcs8_pem().as_bytes()).unwrap();
        let seen = handshake(root.clone(), ders(&issued.chain_pem), key)
            .await
            .expect("the device chain is accepted");
        assert_eq!(seen[0], ders(&issued.certificate_pem)[0]);

        // The same server refuses a self-signed certificate.
        let rogue = rcgen::generate_simple_self_signed(vec!["SN-0001".to_owned()]).unwrap();
        let refused = handshake(
            root.clone(),
            vec![rogue.cert.der().clone()],
            PrivateKeyDer::try_from(rogue.signing_key.serialize_der()).unwrap(),
        )
        .await;
        assert!(
            refused.is_err(),
            "a self-signed client certificate was accepted"
        );

        // And the device certificate with another key: no proof of possession.
        let other = SoftwareSigner::generate(KeyAlgorithm::EcdsaP256).unwrap();
        let wrong_key = PrivateKeyDer::from_pem_slice(other.pkcs8_pem().as_bytes()).unwrap();
        let refused = handshake(root, ders(&issued.chain_pem), wrong_key).await;
        assert!(
            refused.is_err(),
            "a certificate without its key was accepted"
        );
    }

    /// Issue 11, finding 6: with one root over everything, a relying party that trusts the
    /// device root accepted a station's certificate as a device. Stations and the server now
    /// chain to the infrastructure root, which the enrollment hands the station, and the
    /// device root anchors devices alone.
    async fn stations_and_the_server_chain_to_a_root_apart_from_the_devices(backend: Backend) {
        let kit = TestServer::start(backend).await;
        assert_ne!(
            kit.device_root_pem, kit.root_ca_pem,
            "one root anchors the devices and the server"
        );
        let line = kit.line("roots", 5, "SN-0001..SN-0100").await;
        let created = kit
            .admin
            .create_station(&CreateStation {
                id: None,
                factory: line.factory.clone(),
                name: None,
                enrollment_ttl_minutes: None,
            })
            .await
            .unwrap();
        let station_key = SoftwareSigner::generate(KeyAlgorithm::EcdsaP256).unwrap();
        let enrolled = kit
            .anonymous()
            .enroll(&EnrollRequest {
                token: created.enrollment_token,
                csr: touchmark_pki::pem::encode(
                    "CERTIFICATE REQUEST",
                    &build_csr(&station_key, "st").unwrap(),
                ),
            })
            .await
            .unwrap();
        assert_eq!(
            enrolled.root_ca_pem, kit.root_ca_pem,
            "the enrollment hands the station the root of the server"
        );
        let station = kit.enroll_station(&line.factory).await;
        let unit = Unit::new("SN-0001");
        let reply = station
            .provision(&line.order, &unit, passing_test("SN-0001"))
            .await;
        assert_eq!(reply.status, 201, "{}", reply.text);
        let issued: ProvisionResponse = serde_json::from_value(reply.body).unwrap();
        assert_eq!(issued.root_ca_pem, kit.device_root_pem);

        // A relying party of the devices refuses the station, presented with its own key and
        // the station CA, and still accepts the device.
        let device_root = ders(&kit.device_root_pem).remove(0);
        let station_chain = [
            ders(&enrolled.certificate_pem),
            ders(&enrolled.station_ca_pem),
        ]
        .concat();
        let key = |signer: &SoftwareSigner| {
            PrivateKeyDer::from_pem_slice(signer.pkcs8_pem().as_bytes()).unwrap()
        };
        let refused = handshake(
            device_root.clone(),
            station_chain.clone(),
            key(&station_key),
        )
        .await;
        assert!(
            refused.is_err(),
            "a relying party of the devices accepted a station's certificate"
        );
        handshake(device_root, ders(&issued.chain_pem), key(&unit.signer))
            .await
            .expect("the device is accepted");
        // The station's chain is sound: under the infrastructure root it is accepted.
        handshake(
            ders(&kit.root_ca_pem).remove(0),
            station_chain,
            key(&station_key),
        )
        .await
        .expect("the station chain verifies under the infrastructure root");

        // openssl agrees: the station chains to the infrastructure root, not the device root;
        // the device to the device root, not the infrastructure root.
        let openssl = touchmark_testenv::tool(&touchmark_testenv::OPENSSL);
        let dir = tempfile::tempdir().unwrap();
        for (name, pem) in [
            ("device-root.pem", &kit.device_root_pem),
            ("infra-root.pem", &kit.root_ca_pem),
            ("station-ca.pem", &enrolled.station_ca_pem),
            ("station.pem", &enrolled.certificate_pem),
            ("chain.pem", &issued.chain_pem),
            ("device.pem", &issued.certificate_pem),
        ] {
            std::fs::write(dir.path().join(name), pem).unwrap();
        }
        for (root, untrusted, leaf, trusted) in [
            ("infra-root.pem", "station-ca.pem", "station.pem", true),
            ("device-root.pem", "station-ca.pem", "station.pem", false),
            ("device-root.pem", "chain.pem", "device.pem", true),
            ("infra-root.pem", "chain.pem", "device.pem", false),
        ] {
            let args = [
                "verify",
                "-x509_strict",
                "-purpose",
                "sslclient",
                "-CAfile",
                root,
                "-untrusted",
                untrusted,
                leaf,
            ];
            let (ok, text) = touchmark_testenv::run(&openssl, dir.path(), &args);
            assert_eq!(ok, trusted, "{leaf} under {root}: {text}");
        }

        // A client that trusts the device root alone does not reach the server.
        let device_trust = Client::new(ClientConfig::new(&kit.base_url, &kit.device_root_pem))
            .unwrap()
            .health()
            .await;
        assert!(
            device_trust.is_err(),
            "the server's certificate chains to the device root"
        );
        kit.anonymous()
            .health()
            .await
            .expect("the server's certificate chains to the infrastructure root");
    }
}

// ---------------------------------------------------------------------------------------------
// Quota under concurrency (I1): 8 stations, 800 units, quota 500, three rounds on one server.
// ---------------------------------------------------------------------------------------------
mod quota {
    use super::*;

    touchmark_testkit::both_backends!(quota_holds_under_concurrency);

    const STATIONS: usize = 8;
    const UNITS_PER_STATION: usize = 100;
    const WORKERS_PER_STATION: usize = 4;
    const QUOTA: u64 = 500;

    async fn quota_holds_under_concurrency(backend: Backend) {
        let kit = TestServer::start(backend).await;
        let product = kit.product("prod-q").await;
        let factory = kit.factory("fac-q").await;
        let mut stations = Vec::new();
        for _ in 0..STATIONS {
            stations.push(kit.enroll_station(&factory).await);
        }
        for round in ["RA", "RB", "RC"] {
            let order = kit
                .order(
                    &format!("ord-{round}"),
                    &product,
                    &factory,
                    QUOTA,
                    &format!("{round}-0001..{round}-0800"),
                )
                .await;
            let before = kit.log_size().await;
            let mut tasks = tokio::task::JoinSet::new();
            for (s, station) in stations.iter().enumerate() {
                for w in 0..WORKERS_PER_STATION {
                    let (station, order) = (station.clone(), order.clone());
                    tasks.spawn(async move {
                        let mut replies = Vec::new();
                        for u in (w..UNITS_PER_STATION).step_by(WORKERS_PER_STATION) {
                            let n = s * UNITS_PER_STATION + u + 1;
                            let unit = Unit::new(&format!("{round}-{n:04}"));
                            replies.push(
                                station
                                    .provision(&order, &unit, passing_test(&unit.serial))
                                    .await,
                            );
                        }
                        replies
                    });
                }
            }
            let mut issued = Vec::new();
            let mut refused = 0;
            while let Some(replies) = tasks.join_next().await {
                for reply in replies.unwrap() {
                    match reply.status.as_u16() {
                        201 => {
                            let body: ProvisionResponse =
                                serde_json::from_value(reply.body).unwrap();
                            assert_eq!(body.status, "issued");
                            assert_eq!(body.cert_sha256, pem_sha256(&body.certificate_pem));
                            issued.push(body);
                        }
                        409 => {
                            reply.assert_error(409, "quota_exhausted");
                            reply.receipt();
                            refused += 1;
                        }
                        other => panic!("round {round}: unexpected {other}: {}", reply.text),
                    }
                }
            }
            assert_eq!(issued.len(), 500, "round {round}");
            assert_eq!(refused, 300, "round {round}");

            let snap = kit.snapshot(&order).await;
            assert_eq!(snap.issued, 500, "round {round}");
            assert_eq!(snap.certificates, 500, "round {round}");
            assert_eq!(snap.issued_events, 500, "round {round}");
            assert_eq!(snap.failed_tests, 0, "round {round}");
            assert_eq!(
                snap.refusals,
                BTreeMap::from([("quota_exhausted".to_owned(), 300)]),
                "round {round}"
            );
            assert_eq!(snap.log_size, before + 800, "round {round}");
            assert_eq!(snap.units.len(), 500, "round {round}");
            // The store agrees with the API: the order's column and every table that counts.
            let counts = kit
                .store
                .order_counts(&OrderId::parse(&order).unwrap())
                .await
                .unwrap();
            assert_eq!(
                (counts.issued, counts.certificates, counts.issued_events),
                (500, 500, 500),
                "round {round}"
            );
            assert!(snap.units.iter().all(|u| u.status == "provisioned"));

            let hashes: HashSet<&str> = issued.iter().map(|b| b.cert_sha256.as_str()).collect();
            assert_eq!(
                hashes.len(),
                500,
                "round {round}: certificates are not distinct"
            );
            let listed: HashSet<&str> = snap
                .units
                .iter()
                .filter_map(|u| u.cert_sha256.as_deref())
                .collect();
            assert_eq!(listed, hashes, "round {round}");
            let logged: Vec<(Option<u64>, String)> = issued
                .iter()
                .map(|b| (b.receipt.index, b.receipt.leaf_hash.clone()))
                .collect();
            let receipts: HashSet<u64> = kit.indices(&logged).await.into_iter().collect();
            assert_eq!(
                receipts.len(),
                500,
                "round {round}: receipts are not distinct"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Retries (I2): the same serial, key and order returns the same certificate, consuming nothing.
// ---------------------------------------------------------------------------------------------
mod retries {
    use super::*;

    touchmark_testkit::both_backends!(
        a_sequential_retry_returns_the_same_certificate,
        a_retry_needs_no_quota_and_a_failed_retest_downgrades_nothing,
        concurrent_identical_requests_issue_once,
    );

    async fn a_sequential_retry_returns_the_same_certificate(backend: Backend) {
        let kit = TestServer::start(backend).await;
        let line = kit.line("retry", 5, "SN-0001..SN-0100").await;
        let station = kit.enroll_station(&line.factory).await;
        let unit = Unit::new("SN-0001");

        let first = station
            .provision(&line.order, &unit, passing_test(&unit.serial))
            .await;
        assert_eq!(first.status, 201, "{}", first.text);
        let after_first = kit.snapshot(&line.order).await;
        let second = station
            .provision(&line.order, &unit, passing_test(&unit.serial))
            .await;
        assert_eq!(second.status, 200, "{}", second.text);
        assert_eq!(first.body["status"], "issued");
        assert_eq!(second.body["status"], "already_issued");
        for field in ["certificate_pem", "chain_pem", "cert_sha256", "serial"] {
            assert_eq!(first.body[field], second.body[field], "{field}");
        }
        // The same log entry. The retry may carry its inclusion proof where the first answer
        // could not yet (a checkpoint covers the entry by now), and on PostgreSQL its index.
        assert_eq!(first.receipt().1, second.receipt().1, "leaf hash");
        assert_eq!(kit.index(&first).await, kit.index(&second).await, "index");
        // The retry consumed nothing and logged nothing.
        assert_eq!(kit.snapshot(&line.order).await, after_first);
        assert_eq!(after_first.issued, 1);
        assert_eq!(after_first.certificates, 1);
        assert_eq!(after_first.issued_events, 1);

        // The typed client sees the same.
        let typed = station
            .client
            .provision(
                &line.order,
                &serde_json::from_value(unit.request(passing_test(&unit.serial))).unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(typed.status, "already_issued");
        assert_eq!(typed.certificate_pem, first.body["certificate_pem"]);
    }

    async fn a_retry_needs_no_quota_and_a_failed_retest_downgrades_nothing(backend: Backend) {
        let kit = TestServer::start(backend).await;
        let line = kit.line("one", 1, "SN-0001..SN-0100").await;
        let station = kit.enroll_station(&line.factory).await;
        let unit = Unit::new("SN-0001");
        let first = station
            .provision(&line.order, &unit, passing_test(&unit.serial))
            .await;
        assert_eq!(first.status, 201, "{}", first.text);
        let spent = kit.snapshot(&line.order).await;
        assert_eq!(spent.units[0].product, line.product);

        // The quota is spent, yet the retry is answered: it consumes nothing.
        let retry = station
            .provision(&line.order, &unit, passing_test(&unit.serial))
            .await;
        assert_eq!(retry.status, 200, "{}", retry.text);
        assert_eq!(retry.body["certificate_pem"], first.body["certificate_pem"]);
        assert_eq!(kit.snapshot(&line.order).await, spent);

        // A failed retest of the provisioned unit is kept, and the unit stays provisioned.
        let retest = station
            .provision(&line.order, &unit, failing_test(&unit.serial))
            .await;
        retest.assert_error(422, "test_failed");
        let after = kit.snapshot(&line.order).await;
        let mut expected = Snapshot {
            failed_tests: 1,
            log_size: spent.log_size + 1,
            ..spent.clone()
        };
        expected.units[0].test_attempts += 1;
        assert_eq!(after, expected);
        assert_eq!(after.units[0].status, "provisioned");

        // The same serial and key under another order of the product is a conflict, not a
        // second certificate.
        let other = kit
            .order(
                "ord-two",
                &line.product,
                &line.factory,
                5,
                "SN-0001..SN-0100",
            )
            .await;
        let before = kit.snapshot(&other).await;
        let reply = station
            .provision(&other, &unit, passing_test(&unit.serial))
            .await;
        reply.assert_error(409, "serial_conflict");
        assert_eq!(
            kit.snapshot(&other).await,
            before.refused("serial_conflict")
        );
    }

    async fn concurrent_identical_requests_issue_once(backend: Backend) {
        let kit = TestServer::start(backend).await;
        let line = kit.line("burst", 5, "SN-0001..SN-0100").await;
        let station = kit.enroll_station(&line.factory).await;
        let unit = Arc::new(Unit::new("SN-0042"));
        let before = kit.snapshot(&line.order).await;
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..16 {
            let (station, unit, order) = (station.clone(), Arc::clone(&unit), line.order.clone());
            tasks.spawn(async move {
                station
                    .provision(&order, &unit, passing_test(&unit.serial))
                    .await
            });
        }
        let mut statuses = BTreeMap::new();
        let mut certificates = HashSet::new();
        let mut receipts = HashSet::new();
        while let Some(reply) = tasks.join_next().await {
            let reply = reply.unwrap();
            *statuses.entry(reply.status.as_u16()).or_insert(0) += 1;
            certificates.insert(reply.body["certificate_pem"].as_str().unwrap().to_owned());
            receipts.insert(reply.receipt());
        }
        assert_eq!(statuses, BTreeMap::from([(200, 15), (201, 1)]));
        assert_eq!(certificates.len(), 1);
        // One log entry: one leaf hash, and one index wherever an answer knew it (on
        // PostgreSQL the entry takes its index when the sequencer places it).
        let leaves: HashSet<&String> = receipts.iter().map(|(_, leaf)| leaf).collect();
        assert_eq!(leaves.len(), 1);
        let indices: HashSet<u64> = receipts.iter().filter_map(|(index, _)| *index).collect();
        assert!(indices.len() <= 1, "{indices:?}");
        let after = kit.snapshot(&line.order).await;
        assert_eq!(
            (after.issued, after.certificates, after.issued_events),
            (1, 1, 1)
        );
        assert_eq!(after.log_size, before.log_size + 1);
        assert!(after.refusals.is_empty(), "{:?}", after.refusals);
        let events = kit.admin.events(0, 1000).await.unwrap();
        assert_eq!(
            events
                .iter()
                .filter(|e| e.kind == "unit.issued" && e.canonical.contains("SN-0042"))
                .count(),
            1
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Every refusal code of design.md §4, as a table of named cases: its status, its code, its receipt,
// and nothing changed but the one logged event (I4).
// ---------------------------------------------------------------------------------------------
mod refusals {
    use super::*;

    touchmark_testkit::both_backends!(every_refusal_is_logged_and_changes_nothing_else);

    /// What a case must leave behind.
    enum After {
        /// One `unit.refused` event with the code; nothing else.
        Refused,
        /// One `unit.refused` event naming an order that does not exist; no order changes.
        OnlyLogged,
        /// One `unit.test_failed` event, the attempt kept, the unit listed as failed.
        TestFailed,
    }

    struct Case<'a> {
        name: &'a str,
        station: &'a touchmark_testkit::Station,
        order: &'a str,
        body: Value,
        status: u16,
        code: &'a str,
        after: After,
    }

    /// A CSR for a key of another algorithm, made by rcgen.
    fn foreign_csr(alg: &'static rcgen::SignatureAlgorithm) -> String {
        let key = if alg == &rcgen::PKCS_RSA_SHA256 {
            rcgen::KeyPair::generate_rsa_for(alg, rcgen::RsaKeySize::_2048).unwrap()
        } else {
            rcgen::KeyPair::generate_for(alg).unwrap()
        };
        let params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.serialize_request(&key).unwrap().pem().unwrap()
    }

    /// The unit's CSR with the last byte of its signature flipped.
    fn tampered_csr(unit: &Unit) -> String {
        let mut der = touchmark_pki::pem::decode_all(&unit.csr_pem).unwrap()[0]
            .der
            .clone();
        *der.last_mut().unwrap() ^= 0x01;
        touchmark_pki::pem::encode("CERTIFICATE REQUEST", &der)
    }

    fn body(serial: &str, csr: &str, test: Value) -> Value {
        json!({ "serial": serial, "csr": csr, "test": test })
    }

    async fn every_refusal_is_logged_and_changes_nothing_else(backend: Backend) {
        let kit = TestServer::start(backend).await;
        let range = "SN-0001..SN-0100";
        let product = kit.product("prod-r").await;
        let factory = kit.factory("fac-r").await;
        let other_factory = kit.factory("fac-other").await;
        let main = kit.order("ord-main", &product, &factory, 10, range).await;
        // Another product's order over the same serials: its SN-0001 is another unit.
        let second_product = kit.product("prod-s").await;
        let second = kit
            .order("ord-second", &second_product, &factory, 10, range)
            .await;
        let full = kit
            .order("ord-full", &product, &factory, 1, "FL-0001..FL-0100")
            .await;
        let spec = |id: &str| touchmark_testkit::order_request(id, &product, &factory, 10, range);
        let draft = kit
            .order_with(CreateOrder {
                open: false,
                ..spec("ord-draft")
            })
            .await;
        let closed = kit.order("ord-closed", &product, &factory, 10, range).await;
        kit.admin.close_order(&closed).await.unwrap();
        let now = kit.now();
        let late = kit
            .order_with(CreateOrder {
                not_after: Some(format_timestamp(now + Duration::hours(1))),
                ..spec("ord-late")
            })
            .await;
        let early = kit
            .order_with(CreateOrder {
                not_before: Some(format_timestamp(now + Duration::days(10))),
                ..spec("ord-early")
            })
            .await;

        let station = kit.enroll_station(&factory).await;
        let stranger = kit.enroll_station(&other_factory).await;
        let revoked = kit.enroll_station(&factory).await;
        assert_eq!(stranger.factory, other_factory);

        // Prior state: one unit issued on `main`, the one unit of `full`'s quota spent, and the
        // soon-revoked station's connection warmed with a successful request.
        let issued = Unit::new("SN-0001");
        let reply = station
            .provision(&main, &issued, passing_test(&issued.serial))
            .await;
        assert_eq!(reply.status, 201, "{}", reply.text);
        let reply = station
            .provision(&full, &Unit::new("FL-0001"), passing_test("FL-0001"))
            .await;
        assert_eq!(reply.status, 201, "{}", reply.text);
        let warm = revoked
            .client
            .provision(
                &main,
                &serde_json::from_value(Unit::new("SN-0099").request(passing_test("SN-0099")))
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(warm.status, "issued");
        kit.admin.revoke_station(&revoked.id).await.unwrap();
        // A unit issued, then revoked; and an order of a product whose issuing CA is revoked.
        let revoked_unit = Unit::new("SN-0050");
        let reply = station
            .provision(&main, &revoked_unit, passing_test(&revoked_unit.serial))
            .await;
        assert_eq!(reply.status, 201, "{}", reply.text);
        let revoke = |reason: &str| touchmark_client::api::Revoke {
            reason: reason.into(),
            product: None,
        };
        kit.admin
            .revoke(
                touchmark_client::RevocationKind::Unit,
                "SN-0050",
                &revoke("keyCompromise"),
            )
            .await
            .unwrap();
        let revoked_product = kit.product("prod-revoked-ca").await;
        let revoked_ca = kit
            .order("ord-revoked-ca", &revoked_product, &factory, 10, range)
            .await;
        kit.admin
            .revoke(
                touchmark_client::RevocationKind::Ca,
                &revoked_product,
                &revoke("cACompromise"),
            )
            .await
            .unwrap();
        // An order that delivers a release, and one whose release was withdrawn.
        let firmware_product = kit.product("prod-fw").await;
        kit.release(&firmware_product, (1, 0, 0)).await;
        let firmware = kit
            .order_with(CreateOrder {
                release: Some("1.0.0".into()),
                ..touchmark_testkit::order_request("ord-fw", &firmware_product, &factory, 10, range)
            })
            .await;
        let withdrawn_product = kit.product("prod-withdrawn").await;
        let (withdrawn_release, _) = kit.release(&withdrawn_product, (1, 0, 0)).await;
        let withdrawn = kit
            .order_with(CreateOrder {
                release: Some("1.0.0".into()),
                ..touchmark_testkit::order_request(
                    "ord-withdrawn",
                    &withdrawn_product,
                    &factory,
                    10,
                    range,
                )
            })
            .await;
        kit.admin
            .withdraw_release(&withdrawn_product, &withdrawn_release.id)
            .await
            .unwrap();
        // An order of a product that requires its chip vendor's attestation.
        let vendor_key = rcgen::KeyPair::generate().unwrap();
        let mut vendor = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        vendor.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let mut attested_product =
            touchmark_testkit::fixtures::product_request("prod-attested", "Attested");
        attested_product.attestation_roots_pem =
            Some(vendor.self_signed(&vendor_key).unwrap().pem());
        kit.admin.create_product(&attested_product).await.unwrap();
        let attested = kit
            .order("ord-attested", "prod-attested", &factory, 10, range)
            .await;
        // `late`'s window closes.
        kit.advance(Duration::hours(2));

        let fresh = |serial: &str| Unit::new(serial).request(passing_test(serial));
        let cases = vec![
            Case {
                name: "an order of a product whose issuing CA is revoked",
                station: &station,
                order: &revoked_ca,
                body: fresh("SN-0004"),
                status: 409,
                code: "ca_revoked",
                after: After::Refused,
            },
            Case {
                name: "the retry of a revoked unit",
                station: &station,
                order: &main,
                body: revoked_unit.request(passing_test(&revoked_unit.serial)),
                status: 409,
                code: "unit_revoked",
                after: After::Refused,
            },
            Case {
                name: "a station of another factory",
                station: &stranger,
                order: &main,
                body: fresh("SN-0002"),
                status: 403,
                code: "station_not_authorized",
                after: After::Refused,
            },
            Case {
                name: "a revoked station",
                station: &revoked,
                order: &main,
                body: fresh("SN-0003"),
                status: 403,
                code: "station_revoked",
                after: After::Refused,
            },
            Case {
                name: "a draft order",
                station: &station,
                order: &draft,
                body: fresh("SN-0004"),
                status: 409,
                code: "order_not_open",
                after: After::Refused,
            },
            Case {
                name: "a closed order",
                station: &station,
                order: &closed,
                body: fresh("SN-0004"),
                status: 409,
                code: "order_not_open",
                after: After::Refused,
            },
            Case {
                name: "an order whose window has closed",
                station: &station,
                order: &late,
                body: fresh("SN-0004"),
                status: 409,
                code: "order_expired",
                after: After::Refused,
            },
            Case {
                name: "an order whose window has not opened",
                station: &station,
                order: &early,
                body: fresh("SN-0004"),
                status: 409,
                code: "order_expired",
                after: After::Refused,
            },
            Case {
                name: "an order that does not exist",
                station: &station,
                order: "ord-nope",
                body: fresh("SN-0004"),
                status: 404,
                code: "order_not_found",
                after: After::OnlyLogged,
            },
            Case {
                name: "a serial outside the range",
                station: &station,
                order: &main,
                body: fresh("SN-0101"),
                status: 422,
                code: "serial_out_of_range",
                after: After::Refused,
            },
            Case {
                name: "a CSR that is garbage",
                station: &station,
                order: &main,
                body: body(
                    "SN-0005",
                    "not a certificate request",
                    passing_test("SN-0005"),
                ),
                status: 422,
                code: "csr_invalid",
                after: After::Refused,
            },
            Case {
                name: "a CSR whose signature does not verify",
                station: &station,
                order: &main,
                body: body(
                    "SN-0005",
                    &tampered_csr(&Unit::new("SN-0005")),
                    passing_test("SN-0005"),
                ),
                status: 422,
                code: "csr_signature_invalid",
                after: After::Refused,
            },
            Case {
                name: "an RSA-2048 CSR",
                station: &station,
                order: &main,
                body: body(
                    "SN-0005",
                    &foreign_csr(&rcgen::PKCS_RSA_SHA256),
                    passing_test("SN-0005"),
                ),
                status: 422,
                code: "key_type_unsupported",
                after: After::Refused,
            },
            Case {
                name: "a P-384 CSR",
                station: &station,
                order: &main,
                body: body(
                    "SN-0005",
                    &foreign_csr(&rcgen::PKCS_ECDSA_P384_SHA384),
                    passing_test("SN-0005"),
                ),
                status: 422,
                code: "key_type_unsupported",
                after: After::Refused,
            },
            Case {
                name: "a test record of another unit",
                station: &station,
                order: &main,
                body: Unit::new("SN-0008").request(passing_test("SN-0009")),
                status: 422,
                code: "test_record_mismatch",
                after: After::Refused,
            },
            Case {
                name: "a test record that names no unit",
                station: &station,
                order: &main,
                body: Unit::new("SN-0008").request({
                    let mut record = passing_test("SN-0008");
                    record.as_object_mut().unwrap().remove("serial");
                    record
                }),
                status: 422,
                code: "test_record_mismatch",
                after: After::Refused,
            },
            Case {
                name: "a test record that issued another product's unit",
                station: &station,
                order: &second,
                body: Unit::new("SN-0001").request(passing_test("SN-0001")),
                status: 409,
                code: "test_record_reused",
                after: After::Refused,
            },
            Case {
                name: "a failed test",
                station: &station,
                order: &main,
                body: Unit::new("SN-0006").request(failing_test("SN-0006")),
                status: 422,
                code: "test_failed",
                after: After::TestFailed,
            },
            Case {
                name: "an issued serial with a new key",
                station: &station,
                order: &main,
                body: Unit::new("SN-0001").request(passing_test("SN-0001")),
                status: 409,
                code: "serial_conflict",
                after: After::Refused,
            },
            Case {
                name: "an issued key on a new serial",
                station: &station,
                order: &main,
                body: issued.clone_key("SN-0007").request(passing_test("SN-0007")),
                status: 409,
                code: "key_reused",
                after: After::Refused,
            },
            Case {
                name: "a unit with no encryption key, on an order that delivers a release",
                station: &station,
                order: &firmware,
                body: fresh("SN-0010"),
                status: 422,
                code: "encryption_key_invalid",
                after: After::Refused,
            },
            Case {
                name: "an order whose release was withdrawn",
                station: &station,
                order: &withdrawn,
                body: fresh("SN-0010"),
                status: 409,
                code: "release_withdrawn",
                after: After::Refused,
            },
            Case {
                name: "a unit with no attestation, for a product that requires one",
                station: &station,
                order: &attested,
                body: fresh("SN-0010"),
                status: 422,
                code: "attestation_invalid",
                after: After::Refused,
            },
            Case {
                name: "an order with no quota left",
                station: &station,
                order: &full,
                body: Unit::new("FL-0002").request(passing_test("FL-0002")),
                status: 409,
                code: "quota_exhausted",
                after: After::Refused,
            },
        ];

        let mut seen = HashSet::new();
        for case in cases {
            let name = case.name;
            // An order that does not exist has no snapshot: the main one must not move.
            let watched = match case.after {
                After::OnlyLogged => main.as_str(),
                _ => case.order,
            };
            let before = kit.snapshot(watched).await;
            let reply = if case.code == "station_revoked" {
                // Through the typed client whose kept-alive connection served a request
                // before the revocation: the revocation applies at once on it.
                let request = serde_json::from_value(case.body.clone()).unwrap();
                match case.station.client.provision(case.order, &request).await {
                    Err(ClientError::Api { status, body }) => {
                        assert_eq!(
                            ErrorCode::from_wire(&body.code),
                            Some(ErrorCode::StationRevoked)
                        );
                        assert!(body.receipt.is_some(), "{name}");
                        assert_eq!(status, 403, "{name}");
                    }
                    other => panic!("{name}: {other:?}"),
                }
                let before = kit.snapshot(case.order).await;
                let reply = case.station.raw.provision(case.order, &case.body).await;
                assert_eq!(
                    kit.snapshot(case.order).await,
                    before.refused(case.code),
                    "{name}"
                );
                reply
            } else {
                case.station.raw.provision(case.order, &case.body).await
            };
            reply.assert_error(case.status, case.code);
            let index = kit.index(&reply).await;
            let after = kit.snapshot(watched).await;
            if case.code != "station_revoked" {
                assert_eq!(
                    index, before.log_size,
                    "{name}: the receipt is the new event"
                );
                let expected = match case.after {
                    After::Refused => {
                        before.refused_attempt(case.code, case.body["serial"].as_str().unwrap())
                    }
                    After::OnlyLogged => Snapshot {
                        log_size: before.log_size + 1,
                        ..before.clone()
                    },
                    After::TestFailed => {
                        let mut expected = Snapshot {
                            failed_tests: before.failed_tests + 1,
                            log_size: before.log_size + 1,
                            ..before.clone()
                        };
                        let serial = case.body["serial"].as_str().unwrap();
                        let unit = after
                            .units
                            .iter()
                            .find(|u| u.serial == serial)
                            .unwrap_or_else(|| panic!("{name}: the failed unit is not listed"));
                        assert_eq!(unit.status, "failed_test", "{name}");
                        assert_eq!(unit.test_attempts, 1, "{name}");
                        assert_eq!(unit.cert_sha256, None, "{name}");
                        expected.units.push(unit.clone());
                        expected.units.sort_by(|a, b| a.serial.cmp(&b.serial));
                        expected
                    }
                };
                assert_eq!(after, expected, "{name}");
            }
            seen.insert(case.code);
        }
        // Every refusal code of design.md §4 was exercised.
        let all: HashSet<&str> = ErrorCode::ALL
            .into_iter()
            .filter(|c| c.is_refusal())
            .map(ErrorCode::as_str)
            .collect();
        assert_eq!(seen, all);
    }
}

// ---------------------------------------------------------------------------------------------
// Test records (issue 11, finding 5): a record is its unit's own, and issues one unit. The
// records here were written by the real `openhtf` package.
// ---------------------------------------------------------------------------------------------
mod records {
    use super::*;

    touchmark_testkit::both_backends!(a_replayed_openhtf_record_is_refused_and_logged);

    /// The log's entry at `index`, parsed.
    async fn entry(kit: &TestServer, index: u64) -> Value {
        let logged = kit.admin.events(index, 1).await.unwrap().remove(0);
        assert_eq!(logged.index, index);
        serde_json::from_str(&logged.canonical).unwrap()
    }

    async fn a_replayed_openhtf_record_is_refused_and_logged(backend: Backend) {
        let kit = TestServer::start(backend).await;
        let line = kit.line("rec", 10, "SN-000001..SN-000999").await;
        let station = kit.enroll_station(&line.factory).await;
        let record = openhtf_real_sn_000400();
        assert_eq!(record["dut_id"], "SN-000400");

        // SN-000400's own record provisions it; sent again, it is a retry.
        let sn400 = Unit::new("SN-000400");
        let first = station.provision(&line.order, &sn400, record.clone()).await;
        assert_eq!(first.status, 201, "{}", first.text);
        let issued = entry(&kit, kit.index(&first).await).await;
        assert_eq!(issued["type"], "unit.issued");
        let again = station.provision(&line.order, &sn400, record.clone()).await;
        assert_eq!(again.status, 200, "{}", again.text);

        // The finding: SN-000400's record sent as SN-000402's test. Refused and logged as a
        // clone suspect with the record's hash; nothing is counted.
        let sn402 = Unit::new("SN-000402");
        let before = kit.snapshot(&line.order).await;
        let reply = station.provision(&line.order, &sn402, record.clone()).await;
        reply.assert_error(422, "test_record_mismatch");
        let message = reply.body["message"].as_str().unwrap();
        assert!(
            message.contains("SN-000400") && message.contains("SN-000402"),
            "{message}"
        );
        let index = kit.index(&reply).await;
        assert_eq!(index, before.log_size);
        let refused = entry(&kit, index).await;
        assert_eq!(refused["type"], "unit.refused");
        assert_eq!(refused["reason"], "test_record_mismatch");
        assert_eq!(refused["serial"], "SN-000402");
        assert_eq!(refused["test_sha256"], issued["test_sha256"]);
        assert_eq!(
            kit.snapshot(&line.order).await,
            before.refused_attempt("test_record_mismatch", "SN-000402")
        );

        // A test openhtf ran without a DUT id names no unit ("UNKNOWN_DUT").
        let unknown = openhtf_real_unknown_dut();
        assert_eq!(unknown["dut_id"], "UNKNOWN_DUT");
        let before = kit.snapshot(&line.order).await;
        let reply = station.provision(&line.order, &sn402, unknown).await;
        reply.assert_error(422, "test_record_mismatch");
        assert!(
            reply.body["message"]
                .as_str()
                .unwrap()
                .contains("names no unit"),
            "{}",
            reply.text
        );
        assert_eq!(
            kit.snapshot(&line.order).await,
            before.refused_attempt("test_record_mismatch", "SN-000402")
        );

        // With a record of its own, SN-000402 is provisioned.
        let reply = station
            .provision(&line.order, &sn402, openhtf_passing_test("SN-000402"))
            .await;
        assert_eq!(reply.status, 201, "{}", reply.text);
        let after = kit.snapshot(&line.order).await;
        assert_eq!(after.issued, 2);
        assert_eq!(after.refusals["test_record_mismatch"], 2);
    }
}

// ---------------------------------------------------------------------------------------------
// Adversarial input (I6): a clear 4xx JSON error, never a panic, never a partial write.
// ---------------------------------------------------------------------------------------------
mod adversarial {
    use reqwest::Method;

    use super::*;

    touchmark_testkit::both_backends!(
        bad_input_gets_a_clear_error_and_changes_nothing,
        a_revoked_station_is_refused_and_logged,
        the_bearer_scheme_is_case_insensitive
    );

    /// Whether the case is logged as a refusal.
    #[derive(Clone, Copy)]
    enum Logged {
        No,
        Refusal,
    }

    /// A named request body and the answer it must get.
    struct Bad<'a> {
        name: &'a str,
        content_type: Option<&'a str>,
        body: Vec<u8>,
        status: u16,
        code: &'a str,
        logged: Logged,
    }

    fn bad<'a>(
        name: &'a str,
        content_type: Option<&'a str>,
        body: Vec<u8>,
        status: u16,
        code: &'a str,
        logged: Logged,
    ) -> Bad<'a> {
        Bad {
            name,
            content_type,
            body,
            status,
            code,
            logged,
        }
    }

    async fn bad_input_gets_a_clear_error_and_changes_nothing(backend: Backend) {
        let kit = TestServer::start(backend).await;
        let line = kit.line("adv", 10, "SN-0001..SN-0100").await;
        let station = kit.enroll_station(&line.factory).await;
        let unit = Unit::new("SN-0001");
        let good = unit.request(passing_test(&unit.serial));
        let with = |key: &str, value: Value| {
            let mut body = good.clone();
            body[key] = value;
            body
        };
        let without = |key: &str| {
            let mut body = good.clone();
            body.as_object_mut().unwrap().remove(key);
            body
        };
        let json_bytes = |v: &Value| serde_json::to_vec(v).unwrap();
        let path = format!("/v1/orders/{}/units", line.order);
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));

        let cases = vec![
            bad(
                "a 10 MB body",
                Some("application/json"),
                json_bytes(&with("test", json!("A".repeat(10 * 1024 * 1024)))),
                413,
                "payload_too_large",
                Logged::No,
            ),
            bad(
                "a unicode serial",
                Some("application/json"),
                json_bytes(&with("serial", json!("SN-０００２-é"))),
                422,
                "serial_out_of_range",
                Logged::Refusal,
            ),
            bad(
                "a serial with a control character",
                Some("application/json"),
                json_bytes(&with("serial", json!("SN-0002\u{0007}\n"))),
                422,
                "serial_out_of_range",
                Logged::Refusal,
            ),
            bad(
                "an SQL injection serial",
                Some("application/json"),
                json_bytes(&with("serial", json!("'; DROP TABLE units;--"))),
                422,
                "serial_out_of_range",
                Logged::Refusal,
            ),
            bad(
                "a path traversal serial",
                Some("application/json"),
                json_bytes(&with("serial", json!("../../etc/passwd"))),
                422,
                "serial_out_of_range",
                Logged::Refusal,
            ),
            bad(
                "a serial of 10,000 characters",
                Some("application/json"),
                json_bytes(&with("serial", json!("S".repeat(10_000)))),
                422,
                "serial_out_of_range",
                Logged::Refusal,
            ),
            bad(
                "an empty serial",
                Some("application/json"),
                json_bytes(&with("serial", json!(""))),
                422,
                "serial_out_of_range",
                Logged::Refusal,
            ),
            bad(
                "a serial of the wrong type",
                Some("application/json"),
                json_bytes(&with("serial", json!(5))),
                400,
                "invalid_request",
                Logged::No,
            ),
            bad(
                "a null CSR",
                Some("application/json"),
                json_bytes(&with("csr", Value::Null)),
                400,
                "invalid_request",
                Logged::No,
            ),
            bad(
                "a missing CSR",
                Some("application/json"),
                json_bytes(&without("csr")),
                400,
                "invalid_request",
                Logged::No,
            ),
            bad(
                "a missing test",
                Some("application/json"),
                json_bytes(&without("test")),
                400,
                "invalid_request",
                Logged::No,
            ),
            bad(
                "an unknown field",
                Some("application/json"),
                json_bytes(&with("private_key", json!("x"))),
                400,
                "invalid_request",
                Logged::No,
            ),
            bad(
                "an array instead of an object",
                Some("application/json"),
                b"[1, 2, 3]".to_vec(),
                400,
                "invalid_request",
                Logged::No,
            ),
            bad(
                "not JSON at all",
                Some("application/json"),
                b"serial=SN-0001&csr=x".to_vec(),
                400,
                "invalid_request",
                Logged::No,
            ),
            bad(
                "JSON followed by garbage",
                Some("application/json"),
                [json_bytes(&good), b"}{".to_vec()].concat(),
                400,
                "invalid_request",
                Logged::No,
            ),
            bad(
                "invalid UTF-8",
                Some("application/json"),
                b"{\"serial\": \"\xff\xfe\"}".to_vec(),
                400,
                "invalid_request",
                Logged::No,
            ),
            bad(
                "an empty body",
                Some("application/json"),
                Vec::new(),
                400,
                "invalid_request",
                Logged::No,
            ),
            bad(
                "JSON nested 100,000 deep",
                Some("application/json"),
                format!("{{\"serial\":\"SN-0002\",\"csr\":\"x\",\"test\":{deep}}}").into_bytes(),
                400,
                "invalid_request",
                Logged::No,
            ),
            bad(
                "the wrong content type",
                Some("text/plain"),
                json_bytes(&good),
                400,
                "invalid_request",
                Logged::No,
            ),
            bad(
                "no content type",
                None,
                json_bytes(&good),
                400,
                "invalid_request",
                Logged::No,
            ),
            bad(
                "a malformed test record",
                Some("application/json"),
                json_bytes(&with(
                    "test",
                    json!({ "verdict": "maybe", "steps": "none" }),
                )),
                422,
                "unprocessable",
                Logged::No,
            ),
            bad(
                "a test record of the wrong type",
                Some("application/json"),
                json_bytes(&with("test", json!("pass"))),
                400,
                "invalid_request",
                Logged::No,
            ),
            bad(
                "a pass verdict contradicted by its measurement",
                Some("application/json"),
                json_bytes(&with("test", {
                    let mut t = passing_test("SN-0001");
                    t["steps"][0]["measurements"][0]["value"] = json!(99);
                    t
                })),
                422,
                "unprocessable",
                Logged::No,
            ),
        ];

        for Bad {
            name,
            content_type,
            body,
            status,
            code,
            logged,
        } in cases
        {
            let before = kit.snapshot(&line.order).await;
            let reply = station
                .raw
                .send(Method::POST, &path, content_type, body, None)
                .await;
            reply.assert_error(status, code);
            let after = kit.snapshot(&line.order).await;
            match logged {
                Logged::No => {
                    assert!(
                        reply.body.get("receipt").is_none(),
                        "{name}: {}",
                        reply.text
                    );
                    assert_eq!(after, before, "{name}");
                }
                Logged::Refusal => {
                    assert_eq!(kit.index(&reply).await, before.log_size, "{name}");
                    assert_eq!(after, before.refused(code), "{name}");
                }
            }
            let message = reply.body["message"].as_str().unwrap();
            assert!(
                message.chars().count() < 1_000,
                "{name}: a {} character message",
                message.len()
            );
        }

        // The OpenHTF shape is accepted; nothing above consumed the serial.
        let reply = station
            .provision(&line.order, &unit, openhtf_passing_test(&unit.serial))
            .await;
        assert_eq!(reply.status, 201, "{}", reply.text);

        // Identities: none, foreign, revoked.
        let before = kit.snapshot(&line.order).await;
        let next = Unit::new("SN-0002").request(passing_test("SN-0002"));
        let reply = kit.raw().provision(&line.order, &next).await;
        reply.assert_error(401, "station_not_authorized");
        assert_eq!(
            kit.snapshot(&line.order).await,
            before,
            "no client certificate"
        );

        let elsewhere = TestServer::start(backend).await;
        let foreign_factory = elsewhere.factory(&line.factory).await;
        let foreign = elsewhere.enroll_station(&foreign_factory).await;
        // The foreign station's identity, presented to this server.
        let foreign_here = touchmark_testkit::Raw::new(
            &kit.base_url,
            &kit.root_ca_pem,
            Some((&foreign.cert_pem, &foreign.key_pem)),
        );
        let reply = foreign_here.provision(&line.order, &next).await;
        reply.assert_error(401, "station_not_authorized");
        assert_eq!(kit.snapshot(&line.order).await, before, "a foreign station");

        // An unknown order: refused, and logged (a station probing for orders is worth an
        // auditor's look), naming the order asked for; no order changes.
        let reply = station.raw.provision("ord-nope", &next).await;
        reply.assert_error(404, "order_not_found");
        let index = kit.index(&reply).await;
        assert_eq!(index, before.log_size, "the refusal takes the next index");
        let logged = kit.admin.events(index, 1).await.unwrap().remove(0);
        let event: Value = serde_json::from_str(&logged.canonical).unwrap();
        assert_eq!(event["type"], "unit.refused");
        assert_eq!(event["reason"], "order_not_found");
        assert_eq!(event["order"], "ord-nope");
        assert_eq!(event["station"], station.id.as_str());
        assert_eq!(event["serial"], "SN-0002");
        assert_eq!(
            kit.snapshot(&line.order).await,
            Snapshot {
                log_size: before.log_size + 1,
                ..before.clone()
            },
            "an unknown order"
        );

        // Admin endpoints: no token, a bad token, an auditor writing.
        let no_token = kit.anonymous();
        let err = no_token.orders().await.unwrap_err();
        assert_eq!(
            (err.status(), err.code()),
            (Some(401), Some(ErrorCode::Unauthorized))
        );
        let err = kit
            .with_token("tm_not_a_token")
            .order(&line.order)
            .await
            .unwrap_err();
        assert_eq!(
            (err.status(), err.code()),
            (Some(401), Some(ErrorCode::Unauthorized))
        );
        let auditor = kit
            .admin
            .create_token(&CreateToken {
                role: "auditor".into(),
                label: "audit".into(),
            })
            .await
            .unwrap();
        let auditor = kit.with_token(&auditor.token);
        assert_eq!(
            auditor.order(&line.order).await.unwrap().order.id,
            line.order
        );
        let before = kit.snapshot(&line.order).await;
        let err = auditor.close_order(&line.order).await.unwrap_err();
        assert_eq!(
            (err.status(), err.code()),
            (Some(403), Some(ErrorCode::Forbidden))
        );
        let err = auditor.set_quota(&line.order, 1_000).await.unwrap_err();
        assert_eq!(
            (err.status(), err.code()),
            (Some(403), Some(ErrorCode::Forbidden))
        );
        let err = no_token.revoke_station(&station.id).await.unwrap_err();
        assert_eq!(
            (err.status(), err.code()),
            (Some(401), Some(ErrorCode::Unauthorized))
        );
        let err = kit.admin.order("ord-nope").await.unwrap_err();
        assert_eq!(
            (err.status(), err.code()),
            (Some(404), Some(ErrorCode::NotFound))
        );
        let after = kit.snapshot(&line.order).await;
        assert_eq!(after, before);
        assert_eq!(
            kit.admin.order(&line.order).await.unwrap().order.state,
            "open"
        );

        // A station certificate past its validity (365 days): refused, nothing logged.
        kit.advance(Duration::days(400));
        let before = kit.snapshot(&line.order).await;
        let reply = station.raw.provision(&line.order, &next).await;
        reply.assert_error(401, "station_not_authorized");
        assert!(
            reply.body["message"].as_str().unwrap().contains("refused"),
            "{}",
            reply.text
        );
        assert_eq!(
            kit.snapshot(&line.order).await,
            before,
            "an expired station certificate"
        );
    }

    /// The authentication scheme's name is case-insensitive (RFC 9110 §11.1): `bearer` and
    /// `BEARER` work as `Bearer` does; another scheme, or none, is still refused.
    async fn the_bearer_scheme_is_case_insensitive(backend: Backend) {
        let kit = TestServer::start(backend).await;
        let auditor = kit
            .admin
            .create_token(&CreateToken {
                role: "auditor".into(),
                label: "scheme".into(),
            })
            .await
            .unwrap();
        let raw = kit.raw();
        for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
            let reply = raw
                .get_with_authorization("/v1/orders", &format!("{scheme} {}", auditor.token))
                .await;
            assert_eq!(reply.status.as_u16(), 200, "{scheme}: {}", reply.text);
        }
        for refused in [
            format!("Basic {}", auditor.token),
            format!("Bearer{}", auditor.token),
            format!("Bearerx {}", auditor.token),
            auditor.token.clone(),
            "bearer ".to_owned(),
        ] {
            let reply = raw.get_with_authorization("/v1/orders", &refused).await;
            reply.assert_error(401, "unauthorized");
        }
    }

    async fn a_revoked_station_is_refused_and_logged(backend: Backend) {
        let kit = TestServer::start(backend).await;
        let line = kit.line("rev", 10, "SN-0001..SN-0100").await;
        let station = kit.enroll_station(&line.factory).await;
        let revoked = kit.admin.revoke_station(&station.id).await.unwrap();
        assert_eq!(revoked.status, "revoked");
        let before = kit.snapshot(&line.order).await;
        let reply = station
            .provision(&line.order, &Unit::new("SN-0001"), passing_test("SN-0001"))
            .await;
        reply.assert_error(403, "station_revoked");
        assert_eq!(
            kit.snapshot(&line.order).await,
            before.refused("station_revoked")
        );
        // Revoking twice is a conflict, not a second event.
        let err = kit.admin.revoke_station(&station.id).await.unwrap_err();
        assert_eq!(err.code(), Some(ErrorCode::Conflict));
        assert_eq!(
            kit.snapshot(&line.order).await,
            before.refused("station_revoked")
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Stations refused for want of standing (issue 11, security findings 3 and 4): a revoked station
// is refused on every station endpoint, reads included, also on a connection opened before its
// revocation; a flood of refusals of a revoked or foreign station, or of one probing for orders,
// is a few logged refusals and one alert with its count, and each refusal of a station that may
// act for an order that exists is still logged.
// ---------------------------------------------------------------------------------------------
mod floods {
    use std::collections::BTreeMap;

    use rustls::pki_types::ServerName;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use touchmark_core::event::{Event, EventBody};
    use touchmark_core::replay::{Replay, StationReport};
    use touchmark_testkit::Reply;

    use super::*;

    touchmark_testkit::both_backends!(
        a_flood_of_refusals_is_a_few_entries_and_one_alert,
        a_revoked_station_is_refused_on_every_endpoint_and_connection
    );

    /// Refused attempts each station sends at once.
    const FLOOD: usize = 300;
    /// Refusals logged one by one per window (`RefusalLimit::default()`).
    const LOGGED: usize = 3;

    /// Sends `FLOOD` provisioning requests of `station` for `order` at once.
    async fn flood(station: &touchmark_testkit::Station, order: &str) -> Vec<Reply> {
        let mut sent = tokio::task::JoinSet::new();
        for i in 0..FLOOD {
            let (raw, order) = (station.raw.clone(), order.to_owned());
            let serial = format!("SN-{:04}", i + 1);
            let body = Unit::new(&serial).request(passing_test(&serial));
            sent.spawn(async move { raw.provision(&order, &body).await });
        }
        sent.join_all().await
    }

    /// `LOGGED` refusals logged with `status`, `code` and a receipt; every other one `429
    /// rate_limited`, with a Retry-After inside the window and no receipt.
    fn assert_few_logged_rest_limited(replies: &[Reply], status: u16, code: &str) {
        let logged: Vec<&Reply> = replies.iter().filter(|r| r.code() == code).collect();
        assert_eq!(
            logged.len(),
            LOGGED,
            "{code}: the window's first refusals are logged"
        );
        for reply in logged {
            reply.assert_error(status, code);
            reply.receipt();
        }
        for reply in replies.iter().filter(|r| r.code() != code) {
            reply.assert_error(429, "rate_limited");
            assert!(reply.body.get("receipt").is_none(), "{}", reply.text);
            let after: u64 = reply.retry_after.as_deref().unwrap().parse().unwrap();
            assert!((1..=60).contains(&after), "Retry-After {after}");
        }
    }

    /// The events after index `from`, parsed.
    async fn events_from(kit: &TestServer, from: u64) -> Vec<Event> {
        kit.sequence_now().await;
        kit.admin
            .events(from, 1000)
            .await
            .unwrap()
            .iter()
            .map(|e| Event::from_canonical(e.canonical.as_bytes()).unwrap())
            .collect()
    }

    async fn a_flood_of_refusals_is_a_few_entries_and_one_alert(backend: Backend) {
        let kit = TestServer::start(backend).await;
        let line = kit.line("fl", 10, "SN-0001..SN-0999").await;
        let other = kit.factory("fac-elsewhere").await;
        let revoked = kit.enroll_station(&line.factory).await;
        let stranger = kit.enroll_station(&other).await;
        let honest = kit.enroll_station(&line.factory).await;
        kit.admin.revoke_station(&revoked.id).await.unwrap();
        let before = kit.snapshot(&line.order).await;
        let opened = kit.now();

        let (from_revoked, from_stranger, from_prober) = tokio::join!(
            flood(&revoked, &line.order),
            flood(&stranger, &line.order),
            flood(&honest, "ord-probe")
        );
        assert_few_logged_rest_limited(&from_revoked, 403, "station_revoked");
        assert_few_logged_rest_limited(&from_stranger, 403, "station_not_authorized");
        // A station asking for an order that does not exist has no standing either.
        assert_few_logged_rest_limited(&from_prober, 404, "order_not_found");
        // A station that may act has each refusal logged, with its unit: none is limited.
        for serial in ["XX-1", "XX-2", "XX-3", "XX-4", "XX-5"] {
            honest
                .provision(&line.order, &Unit::new(serial), passing_test(serial))
                .await
                .assert_error(422, "serial_out_of_range");
        }
        let mut expected = before.clone();
        for _ in 0..LOGGED {
            expected = expected
                .refused("station_revoked")
                .refused("station_not_authorized");
        }
        for _ in 0..5 {
            expected = expected.refused("serial_out_of_range");
        }
        // The probes are logged against the order they named, not this one.
        expected.log_size += LOGGED as u64;
        assert_eq!(
            kit.snapshot(&line.order).await,
            expected,
            "{} refused attempts, {} entries",
            3 * FLOOD + 5,
            3 * LOGGED + 5
        );

        // The window has not ended a moment before its end; at its end, one alert each.
        kit.advance(Duration::seconds(59));
        assert_eq!(kit.close_refusal_windows().await, 0);
        assert_eq!(kit.log_size().await, expected.log_size);
        kit.advance(Duration::seconds(1));
        assert_eq!(kit.close_refusal_windows().await, 3);
        let alerts: BTreeMap<String, EventBody> = events_from(&kit, expected.log_size)
            .await
            .into_iter()
            .map(|e| match &e.body {
                EventBody::RefusalFlood { station, .. } => (station.to_string(), e.body),
                other => panic!("not an alert: {other:?}"),
            })
            .collect();
        assert_eq!(alerts.len(), 3);
        let window = (
            format_timestamp(opened),
            format_timestamp(opened + Duration::seconds(60)),
        );
        for (station, factory, reason) in [
            (&revoked, &line.factory, ErrorCode::StationRevoked),
            (&stranger, &other, ErrorCode::StationNotAuthorized),
            (&honest, &line.factory, ErrorCode::OrderNotFound),
        ] {
            assert_eq!(
                alerts[&station.id],
                EventBody::RefusalFlood {
                    station: touchmark_core::StationId::parse(&station.id).unwrap(),
                    factory: touchmark_core::FactoryId::parse(factory).unwrap(),
                    reason,
                    count: (FLOOD - LOGGED) as u64,
                    window_start: window.0.clone(),
                    window_end: window.1.clone(),
                }
            );
        }
        // The order's counts are unchanged by the alerts.
        let after = kit.snapshot(&line.order).await;
        assert_eq!(
            after,
            Snapshot {
                log_size: expected.log_size + 3,
                ..expected.clone()
            }
        );

        // The next window starts with a logged refusal again.
        let reply = revoked
            .provision(&line.order, &Unit::new("SN-0500"), passing_test("SN-0500"))
            .await;
        reply.assert_error(403, "station_revoked");
        reply.receipt();

        // The auditor's replay accepts the alerts and reports them per station.
        let mut replay = Replay::new();
        for (index, event) in events_from(&kit, 0).await.iter().enumerate() {
            replay.apply(index as u64, event);
        }
        assert!(replay.violations().is_empty(), "{:?}", replay.violations());
        for (station, code) in [
            (&revoked, "station_revoked"),
            (&stranger, "station_not_authorized"),
            (&honest, "order_not_found"),
        ] {
            assert_eq!(
                replay.stations()[&station.id],
                StationReport {
                    floods: 1,
                    limited_refusals: [(code.to_owned(), (FLOOD - LOGGED) as u64)].into(),
                }
            );
        }
    }

    /// One TLS connection speaking HTTP/1.1, kept alive across requests.
    struct KeptAlive(tokio_rustls::client::TlsStream<tokio::net::TcpStream>);

    impl KeptAlive {
        async fn open(kit: &TestServer, station: &touchmark_testkit::Station) -> Self {
            let mut config = touchmark_testkit::client_tls(
                &kit.root_ca_pem,
                Some((&station.cert_pem, &station.key_pem)),
            );
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
            let port: u16 = kit.base_url.rsplit(':').next().unwrap().parse().unwrap();
            let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .unwrap();
            let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
                .connect(ServerName::try_from("localhost").unwrap(), tcp)
                .await
                .unwrap();
            Self(tls)
        }

        /// Sends one request and reads its answer: (status, body).
        async fn send(&mut self, method: &str, path: &str, body: &str) -> (u16, String) {
            let request = format!(
                "{method} {path} HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\n\
                 content-length: {}\r\n\r\n{body}",
                body.len()
            );
            self.0.write_all(request.as_bytes()).await.unwrap();
            let mut head = Vec::new();
            while !head.ends_with(b"\r\n\r\n") {
                let mut byte = [0u8; 1];
                let n = self.0.read(&mut byte).await.unwrap();
                assert_eq!(n, 1, "the server closed the connection");
                head.push(byte[0]);
            }
            let head = String::from_utf8(head).unwrap();
            let status = head[9..12].parse().unwrap();
            let length: usize = head
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse().unwrap())
                })
                .unwrap();
            let mut body = vec![0u8; length];
            self.0.read_exact(&mut body).await.unwrap();
            (status, String::from_utf8(body).unwrap())
        }
    }

    async fn a_revoked_station_is_refused_on_every_endpoint_and_connection(backend: Backend) {
        let kit = TestServer::start(backend).await;
        let line = kit.line("rv", 10, "SN-0001..SN-0100").await;
        let station = kit.enroll_station(&line.factory).await;
        let reply = station
            .provision(&line.order, &Unit::new("SN-0001"), passing_test("SN-0001"))
            .await;
        assert_eq!(reply.status, 201, "{}", reply.text);
        kit.sequence_now().await;

        // A connection that reads a receipt, and stays open across the revocation.
        let mut open = KeptAlive::open(&kit, &station).await;
        let receipt = format!("/v1/orders/{}/units/SN-0001/receipt", line.order);
        let (status, body) = open.send("GET", &receipt, "").await;
        assert_eq!(status, 200, "{body}");
        assert!(body.starts_with("c2sp.org/tlog-proof@v1"), "{body}");

        kit.admin.revoke_station(&station.id).await.unwrap();
        let before = kit.snapshot(&line.order).await;
        let refused = |status: u16, body: &str| {
            let body: Value = serde_json::from_str(body).unwrap();
            assert_eq!(
                (status, body["code"].as_str()),
                (403, Some("station_revoked"))
            );
            body
        };
        // The same connection: reads are refused, an unknown order does not change the answer,
        // and a write is refused and logged.
        let (status, body) = open.send("GET", &receipt, "").await;
        assert!(refused(status, &body).get("receipt").is_none());
        let (status, body) = open
            .send("GET", "/v1/orders/ord-nope/units/SN-0001/receipt", "")
            .await;
        refused(status, &body);
        let (status, body) = open
            .send(
                "POST",
                &format!("/v1/orders/{}/units", line.order),
                &Unit::new("SN-0002")
                    .request(passing_test("SN-0002"))
                    .to_string(),
            )
            .await;
        assert!(refused(status, &body)["receipt"].is_object(), "{body}");
        // A new connection is refused the same way.
        let fresh = station
            .raw
            .send(reqwest::Method::GET, &receipt, None, vec![], None)
            .await;
        fresh.assert_error(403, "station_revoked");
        // Only the write left a trace: one refusal, nothing else.
        assert_eq!(
            kit.snapshot(&line.order).await,
            before.refused("station_revoked")
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Admin input: every field an admin types is checked before anything is made or stored, with
// `invalid_request` naming the field (I6). A product's name also names its issuing CA, whose
// common name X.520 caps at 64 characters.
// ---------------------------------------------------------------------------------------------

mod admin_input {
    use touchmark_client::api::CreateProduct;

    use super::*;

    touchmark_testkit::both_backends!(bad_product_fields_are_refused_by_name_and_change_nothing);

    fn product(id: &str, name: &str) -> CreateProduct {
        touchmark_testkit::fixtures::product_request(id, name)
    }

    async fn bad_product_fields_are_refused_by_name_and_change_nothing(backend: Backend) {
        let kit = TestServer::start(backend).await;
        type Edit = fn(&mut CreateProduct);
        let cases: Vec<(&str, Edit, &str)> = vec![
            (
                "a name of 54 characters",
                |r| r.name = "n".repeat(54),
                "name",
            ),
            (
                "a name of 64 characters",
                |r| r.name = "n".repeat(64),
                "name",
            ),
            (
                "a name of 128 characters",
                |r| r.name = "n".repeat(128),
                "name",
            ),
            (
                "a name of 129 characters",
                |r| r.name = "n".repeat(129),
                "name",
            ),
            ("a blank name", |r| r.name = "  ".into(), "name"),
            (
                "an organization of 65 characters",
                |r| r.organization = "o".repeat(65),
                "organization",
            ),
            (
                "a common name of 65 characters",
                |r| r.common_name = "c".repeat(65),
                "common_name",
            ),
            (
                "a common name with a newline",
                |r| r.common_name = "a\nb".into(),
                "common_name",
            ),
            (
                "an OID with one arc",
                |r| r.hw_type_oid = Some("1".into()),
                "hw_type_oid",
            ),
            (
                "an OID under 1 with a second arc of 40",
                |r| r.hw_type_oid = Some("1.40.3".into()),
                "hw_type_oid",
            ),
            (
                "a CRL URL that is not http",
                |r| r.crl_url = Some("ldap://crl".into()),
                "crl_url",
            ),
            (
                "an OCSP URL with a space",
                |r| r.ocsp_url = Some("http://a b".into()),
                "ocsp_url",
            ),
            (
                "a notAfter that does not parse",
                |r| r.cert_not_after = Some("never".into()),
                "cert_not_after",
            ),
            (
                "a notAfter in the past",
                |r| r.cert_not_after = Some("2001-01-01T00:00:00Z".into()),
                "cert_not_after",
            ),
            ("an id with a slash", |r| r.id = Some("a/b".into()), "id"),
        ];
        for (name, edit, field) in cases {
            let events = kit.log_size().await;
            let products = kit.admin.products().await.unwrap().len();
            let mut request = product("adm-p", "Widget");
            edit(&mut request);
            let err = kit.admin.create_product(&request).await.unwrap_err();
            // What the API document forbids is malformed; a date already past is a rule about
            // the world, which no document can state.
            let expected = if name == "a notAfter in the past" {
                (Some(422), Some(ErrorCode::Unprocessable))
            } else {
                (Some(400), Some(ErrorCode::InvalidRequest))
            };
            assert_eq!((err.status(), err.code()), expected, "{name}: {err}");
            let message = &err.body().unwrap().message;
            assert!(message.contains(field), "{name}: {message}");
            assert_eq!(
                kit.admin.products().await.unwrap().len(),
                products,
                "{name}"
            );
            assert_eq!(kit.log_size().await, events, "{name}");
        }
        // The longest name that fits makes an issuing CA whose common name is exactly 64.
        let longest = "n".repeat(53);
        let made = kit
            .admin
            .create_product(&product("adm-p", &longest))
            .await
            .unwrap();
        let ca = touchmark_pki::Certificate::from_pem(&made.issuing_ca_pem).unwrap();
        let (_, parsed) = x509_parser::parse_x509_certificate(ca.der()).unwrap();
        let cn = parsed.subject().iter_common_name().next().unwrap();
        assert_eq!(cn.as_str().unwrap(), format!("{longest} Issuing CA"));
        assert_eq!(cn.as_str().unwrap().chars().count(), 64);
    }
}

// ---------------------------------------------------------------------------------------------
// Enrollment: one-time tokens that expire; the station's key never travels.
// ---------------------------------------------------------------------------------------------
mod enrollment {
    use super::*;

    touchmark_testkit::both_backends!(a_token_works_once, an_expired_token_is_refused);

    async fn pending_station(
        kit: &TestServer,
        factory: &str,
        ttl: Option<u64>,
    ) -> (String, String) {
        let created = kit
            .admin
            .create_station(&CreateStation {
                id: None,
                factory: factory.into(),
                name: None,
                enrollment_ttl_minutes: ttl,
            })
            .await
            .unwrap();
        (created.station.id, created.enrollment_token)
    }

    fn request(token: &str, signer: &SoftwareSigner) -> EnrollRequest {
        EnrollRequest {
            token: token.to_owned(),
            csr: touchmark_pki::pem::encode(
                "CERTIFICATE REQUEST",
                &build_csr(signer, "st").unwrap(),
            ),
        }
    }

    async fn a_token_works_once(backend: Backend) {
        let kit = TestServer::start(backend).await;
        let factory = kit.factory("fac-e").await;
        let (id, token) = pending_station(&kit, &factory, None).await;
        let signer = SoftwareSigner::generate(KeyAlgorithm::EcdsaP256).unwrap();
        let enroll = request(&token, &signer);

        // The request carries the token and a CSR, nothing else: the key stays on the PC.
        let wire = serde_json::to_value(&enroll).unwrap();
        let keys: Vec<&str> = wire
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys, ["csr", "token"]);
        let pkcs8 = hex::encode(signer.pkcs8_der().as_slice());
        assert!(!wire.to_string().contains("PRIVATE KEY"));
        assert!(!hex::encode(wire.to_string()).contains(&pkcs8));

        let enrolled = kit.anonymous().enroll(&enroll).await.unwrap();
        assert_eq!(enrolled.station, id);
        let station = kit.admin.station(&id).await.unwrap();
        assert_eq!(station.status, "active");
        assert_eq!(
            station.cert_sha256.as_deref(),
            Some(pem_sha256(&enrolled.certificate_pem).as_str())
        );

        let log_size = kit.log_size().await;
        let again = SoftwareSigner::generate(KeyAlgorithm::EcdsaP256).unwrap();
        let err = kit
            .anonymous()
            .enroll(&request(&token, &again))
            .await
            .unwrap_err();
        assert_eq!(
            (err.status(), err.code()),
            (Some(401), Some(ErrorCode::EnrollmentTokenInvalid)),
            "{err}"
        );
        // The second use changed nothing: the station keeps its first certificate.
        assert_eq!(kit.admin.station(&id).await.unwrap(), station);
        assert_eq!(kit.log_size().await, log_size);
    }

    async fn an_expired_token_is_refused(backend: Backend) {
        let kit = TestServer::start(backend).await;
        let factory = kit.factory("fac-x").await;
        let (id, token) = pending_station(&kit, &factory, Some(1)).await;
        kit.advance(Duration::minutes(2));
        let log_size = kit.log_size().await;
        let signer = SoftwareSigner::generate(KeyAlgorithm::EcdsaP256).unwrap();
        let err = kit
            .anonymous()
            .enroll(&request(&token, &signer))
            .await
            .unwrap_err();
        assert_eq!(
            (err.status(), err.code()),
            (Some(401), Some(ErrorCode::EnrollmentTokenInvalid)),
            "{err}"
        );
        assert_eq!(kit.admin.station(&id).await.unwrap().status, "pending");
        assert_eq!(kit.log_size().await, log_size);

        // A station revoked before it enrolled cannot use its token.
        let (id, token) = pending_station(&kit, &factory, None).await;
        kit.admin.revoke_station(&id).await.unwrap();
        let err = kit
            .anonymous()
            .enroll(&request(&token, &signer))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some(ErrorCode::EnrollmentTokenInvalid), "{err}");
        assert_eq!(kit.admin.station(&id).await.unwrap().status, "revoked");

        // A token that was never issued is refused the same way.
        let err = kit
            .anonymous()
            .enroll(&request("tme_not_a_token", &signer))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some(ErrorCode::EnrollmentTokenInvalid));
    }
}

// ---------------------------------------------------------------------------------------------
// The OpenAPI document.
// ---------------------------------------------------------------------------------------------
mod openapi {
    use super::*;

    touchmark_testkit::both_backends!(the_document_lists_the_routes_and_security_schemes);

    async fn the_document_lists_the_routes_and_security_schemes(backend: Backend) {
        let kit = TestServer::start(backend).await;
        let doc = kit.anonymous().openapi().await.unwrap();
        assert!(
            doc["openapi"].as_str().unwrap().starts_with("3."),
            "{}",
            doc["openapi"]
        );
        let provision = &doc["paths"]["/v1/orders/{order}/units"]["post"];
        assert!(provision.is_object(), "no POST /v1/orders/{{order}}/units");
        assert_eq!(provision["security"], json!([{ "mutual_tls": [] }]));
        for status in ["200", "201", "4XX"] {
            assert!(provision["responses"][status].is_object(), "{status}");
        }
        assert!(doc["paths"]["/healthz"]["get"].is_object());
        let schemes = &doc["components"]["securitySchemes"];
        assert_eq!(schemes["mutual_tls"]["type"], "mutualTLS");
        assert_eq!(schemes["bearer"]["type"], "http");
        assert_eq!(schemes["bearer"]["scheme"], "bearer");
        assert!(doc["components"]["schemas"]["ProvisionRequest"].is_object());
    }
}

// ---------------------------------------------------------------------------------------------
// Edges of I6: odd paths, methods, huge field names and out-of-range pages still get JSON errors.
// ---------------------------------------------------------------------------------------------
mod edges {
    use reqwest::Method;

    use super::*;

    touchmark_testkit::both_backends!(
        a_path_that_is_not_utf8_gets_a_json_error,
        a_wrong_method_gets_a_json_error,
        error_messages_do_not_echo_unbounded_input,
        an_event_page_past_the_end_is_empty_or_refused
    );

    /// An error answer in the shape of I6: a 4xx, JSON `{code, message}` with a known code.
    #[track_caller]
    fn assert_json_error(reply: &touchmark_testkit::Reply, what: &str) {
        assert!(reply.status.is_client_error(), "{what}: {}", reply.status);
        assert!(
            reply.content_type.starts_with("application/json"),
            "{what}: {} {:?} {:?}",
            reply.status,
            reply.content_type,
            reply.text
        );
        assert!(
            ErrorCode::from_wire(reply.code()).is_some(),
            "{what}: {}",
            reply.text
        );
        assert!(
            reply.body["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{what}"
        );
    }

    async fn a_path_that_is_not_utf8_gets_a_json_error(backend: Backend) {
        let kit = TestServer::start(backend).await;
        let line = kit.line("utf", 5, "SN-0001..SN-0100").await;
        let station = kit.enroll_station(&line.factory).await;
        let log_size = kit.log_size().await;
        let body =
            serde_json::to_vec(&Unit::new("SN-0001").request(passing_test("SN-0001"))).unwrap();
        let reply = station
            .raw
            .send(
                Method::POST,
                "/v1/orders/%FF/units",
                Some("application/json"),
                body,
                None,
            )
            .await;
        reply.assert_error(400, "invalid_request");
        let reply = kit
            .raw()
            .send(Method::GET, "/v1/units/%FF", None, Vec::new(), None)
            .await;
        assert_json_error(&reply, "GET /v1/units/%FF");
        assert_eq!(kit.log_size().await, log_size);
    }

    async fn a_wrong_method_gets_a_json_error(backend: Backend) {
        let kit = TestServer::start(backend).await;
        let line = kit.line("meth", 5, "SN-0001..SN-0100").await;
        let station = kit.enroll_station(&line.factory).await;
        let reply = station
            .raw
            .send(
                Method::DELETE,
                &format!("/v1/orders/{}/units", line.order),
                None,
                Vec::new(),
                None,
            )
            .await;
        assert_json_error(&reply, "DELETE /v1/orders/{order}/units");
        // An unknown route already answers JSON.
        let reply = kit
            .raw()
            .send(Method::GET, "/v2/nothing", None, Vec::new(), None)
            .await;
        reply.assert_error(404, "not_found");
    }

    async fn error_messages_do_not_echo_unbounded_input(backend: Backend) {
        let kit = TestServer::start(backend).await;
        let line = kit.line("echo", 5, "SN-0001..SN-0100").await;
        let station = kit.enroll_station(&line.factory).await;
        let mut body = Unit::new("SN-0001").request(passing_test("SN-0001"));
        body[&"k".repeat(100_000)] = json!(1);
        let before = kit.snapshot(&line.order).await;
        let reply = station.raw.provision(&line.order, &body).await;
        reply.assert_error(400, "invalid_request");
        assert_eq!(kit.snapshot(&line.order).await, before);
        let message = reply.body["message"].as_str().unwrap();
        assert!(
            message.len() < 1_000,
            "a message of {} bytes",
            message.len()
        );
    }

    async fn an_event_page_past_the_end_is_empty_or_refused(backend: Backend) {
        let kit = TestServer::start(backend).await;
        kit.sequence_now().await;
        let all = kit.admin.events(0, 1000).await.unwrap();
        assert!(!all.is_empty());
        assert!(
            kit.admin
                .events(all.len() as u64, 10)
                .await
                .unwrap()
                .is_empty()
        );
        // The document's int64 bounds a log position: past it, the request is malformed.
        let largest = i64::MAX as u64;
        assert!(kit.admin.events(largest, 10).await.unwrap().is_empty());
        for start in [largest + 1, u64::MAX] {
            let err = kit.admin.events(start, 10).await.unwrap_err();
            assert_eq!(err.code(), Some(ErrorCode::InvalidRequest), "{err}");
        }
        for limit in [0, 1001] {
            let err = kit.admin.events(0, limit).await.unwrap_err();
            assert_eq!(err.code(), Some(ErrorCode::InvalidRequest), "{err}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// A database serves only the installation that claimed it: another installation's server, or
// a server over an empty database, refuses to start before it writes anything.
// ---------------------------------------------------------------------------------------------
mod ownership {
    use std::net::SocketAddr;

    use touchmark_authority::InstallationError;
    use touchmark_authority::log::LogConfig;
    use touchmark_core::Clock;
    use touchmark_core::clock::SystemClock;

    use super::*;

    touchmark_testkit::both_backends!(a_database_serves_only_its_own_installation);

    async fn a_database_serves_only_its_own_installation(backend: Backend) {
        let now = time::OffsetDateTime::now_utc();
        let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let a = touchmark_testkit::installation(dir_a.path(), now);
        let b = touchmark_testkit::installation(dir_b.path(), now);
        let (store, _guard) = touchmark_testkit::open_store(backend, dir_a.path()).await;
        let bind = |installation| {
            let store = Arc::clone(&store);
            async move {
                touchmark_server::Server::bind(
                    "127.0.0.1:0".parse::<SocketAddr>().unwrap(),
                    installation,
                    store,
                    Arc::new(SystemClock) as Arc<dyn Clock>,
                    LogConfig::default(),
                )
                .await
            }
        };

        // Empty: nobody's yet, and no server starts on it (a mistyped database name).
        let err = b
            .check_database(store.as_ref(), false, now)
            .await
            .unwrap_err();
        assert!(matches!(err, InstallationError::DatabaseEmpty), "{err}");
        let err = bind(&b).await.unwrap_err();
        assert!(
            err.to_string().contains("holds no Touchmark installation"),
            "{err:#}"
        );
        assert_eq!(store.owner().await.unwrap(), None);
        assert!(store.is_empty().await.unwrap(), "a refused server wrote");

        // A claims it, once and for good.
        a.claim(store.as_ref(), now).await.unwrap();
        a.claim(store.as_ref(), now).await.unwrap();
        let ours = a.log_verifier().to_string();
        assert_eq!(store.owner().await.unwrap(), Some(ours.clone()));
        let err = b.claim(store.as_ref(), now).await.unwrap_err();
        assert!(
            matches!(err, InstallationError::DatabaseOfAnother { .. }),
            "{err}"
        );

        // Another installation's server refuses it, naming both log keys, and writes nothing.
        let events = store.event_count().await.unwrap();
        let err = b
            .check_database(store.as_ref(), true, now)
            .await
            .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains(&ours) && text.contains(&b.log_verifier().to_string()),
            "{text}"
        );
        assert!(bind(&b).await.is_err());
        assert_eq!(store.event_count().await.unwrap(), events);
        assert!(
            store.log_state().await.unwrap().is_none(),
            "B signed into A's log"
        );

        // A's server starts.
        a.check_database(store.as_ref(), false, now).await.unwrap();
        bind(&a).await.unwrap();
    }
}

// ---------------------------------------------------------------------------------------------
// Outage: with its database unreachable the server answers `503 unavailable` with Retry-After
// at once, on `/healthz` and on provisioning, and serves again when the database is back.
// ---------------------------------------------------------------------------------------------
mod outage {
    use std::time::{Duration, Instant};

    use touchmark_testkit::{Raw, Reply, TcpProxy};

    use super::*;

    /// Far longer than any answer under test should take: reaching it means a hang.
    const HANG: Duration = Duration::from_secs(8);

    async fn health(raw: &Raw) -> Reply {
        tokio::time::timeout(
            HANG,
            raw.send(reqwest::Method::GET, "/healthz", None, Vec::new(), None),
        )
        .await
        .expect("/healthz hung")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    #[cfg_attr(
        not(tm_postgres),
        ignore = "needs PostgreSQL: set TOUCHMARK_TEST_POSTGRES_URL, e.g. postgres://postgres@127.0.0.1:5432/test"
    )]
    async fn an_unreachable_database_is_answered_503_at_once() {
        let (proxy, through) = TcpProxy::in_front_of(&touchmark_testenv::postgres_url()).await;
        let schema = touchmark_store_postgres::ScratchSchema::new(&through);
        let store = Arc::new(schema.connect().await.unwrap());
        let kit = TestServer::start_on(tempfile::tempdir().unwrap(), store, Some(schema)).await;
        let line = kit.line("out", 10, "OUT-0001..OUT-0100").await;
        let station = kit.enroll_station(&line.factory).await;
        let before = kit.snapshot(&line.order).await;
        let raw = kit.raw();
        let unit = Unit::new("OUT-0001");

        // Down: pooled connections fail at once, new ones are refused until the pool gives up;
        // either way the answer is a 503 that says to come back, without a driver message.
        proxy.cut();
        let mut slowest = Duration::ZERO;
        for _ in 0..6 {
            let started = Instant::now();
            let health = health(&raw).await;
            health.assert_error(503, "unavailable");
            assert_eq!(health.retry_after.as_deref(), Some("1"));

            let refused = tokio::time::timeout(
                HANG,
                station.provision(&line.order, &unit, passing_test(&unit.serial)),
            )
            .await
            .expect("provisioning hung on the outage");
            refused.assert_error(503, "unavailable");
            assert_eq!(refused.retry_after.as_deref(), Some("1"));
            for leak in ["pool", "connect", "refused", "os error"] {
                assert!(
                    !refused.text.contains(leak),
                    "a driver message reached the client: {}",
                    refused.text
                );
            }
            slowest = slowest.max(started.elapsed());
        }
        eprintln!("slowest pair of 503 answers: {slowest:?}");

        // Back: served again once the pool has replaced its dead connections (each fails one
        // request; sequential requests take the idle ones in turn, so 16 answers in a row, the
        // pool's size, mean none is left), and the outage changed nothing.
        proxy.restore();
        let started = Instant::now();
        let mut served_since = None;
        let mut in_a_row = 0;
        while in_a_row < 16 {
            assert!(started.elapsed() < HANG, "never served again");
            if health(&raw).await.status == 200 {
                served_since.get_or_insert_with(|| started.elapsed());
                in_a_row += 1;
            } else {
                in_a_row = 0;
            }
        }
        eprintln!("served again after {served_since:?}");
        assert_eq!(kit.snapshot(&line.order).await, before);
        let served = station
            .provision(&line.order, &unit, passing_test(&unit.serial))
            .await;
        assert_eq!(served.status, 201, "{}", served.text);
    }
}

// ---------------------------------------------------------------------------------------------
// Revocation (design.md §8): units, orders, CAs and stations revoked through the admin API, the
// CRLs and OCSP answers that follow within a second, checked by openssl.
// ---------------------------------------------------------------------------------------------
mod revocation {
    use std::time::Instant;

    use touchmark_client::RevocationKind;
    use touchmark_client::api::{Release, Revoke};

    use super::*;

    touchmark_testkit::both_backends!(
        revocations_are_admin_only_idempotent_and_refuse_issuance,
        #[cfg_attr(
            not(tm_openssl),
            ignore = "needs openssl: install it, or set TOUCHMARK_TEST_OPENSSL"
        )]
        crls_and_ocsp_follow_a_revocation_within_a_second,
        #[cfg_attr(
            not(tm_imgtool),
            ignore = "needs Python with cryptography (imgtool brings it): set TOUCHMARK_TEST_PYTHON3"
        )]
        python_cryptography_reads_the_ocsp_answers,
        #[cfg_attr(
            not(tm_openssl),
            ignore = "needs openssl: install it, or set TOUCHMARK_TEST_OPENSSL"
        )]
        a_revocation_through_one_replica_reaches_the_other,
    );

    fn revoke(reason: &str) -> Revoke {
        Revoke {
            reason: reason.into(),
            product: None,
        }
    }

    fn http(kit: &TestServer) -> reqwest::Client {
        reqwest::Client::builder()
            .use_preconfigured_tls(touchmark_testkit::client_tls(&kit.root_ca_pem, None))
            .build()
            .unwrap()
    }

    async fn issue(
        station: &touchmark_testkit::Station,
        order: &str,
        serial: &str,
    ) -> ProvisionResponse {
        issue_unit(station, order, serial).await.0
    }

    async fn issue_unit(
        station: &touchmark_testkit::Station,
        order: &str,
        serial: &str,
    ) -> (ProvisionResponse, Unit) {
        let unit = Unit::new(serial);
        let reply = station.provision(order, &unit, passing_test(serial)).await;
        assert_eq!(reply.status, 201, "{}", reply.text);
        (serde_json::from_value(reply.body).unwrap(), unit)
    }

    /// A TLS handshake with a relying party that checks client certificates against the
    /// device root and `crls` with rustls-webpki, an unknown status being an error.
    async fn handshake_with_crls(
        root_pem: &str,
        crls: Vec<Vec<u8>>,
        chain_pem: &str,
        unit: &Unit,
    ) -> Result<(), String> {
        use rustls::pki_types::{
            CertificateDer, CertificateRevocationListDer, PrivateKeyDer, ServerName,
        };
        use rustls::server::WebPkiClientVerifier;
        use rustls_pki_types::pem::PemObject;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};

        let ders = |pem: &str| -> Vec<CertificateDer<'static>> {
            CertificateDer::pem_slice_iter(pem.as_bytes())
                .map(|c| c.unwrap())
                .collect()
        };
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ders(root_pem).remove(0)).unwrap();
        let verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider))
                .with_crls(crls.into_iter().map(CertificateRevocationListDer::from))
                .build()
                .unwrap();
        let server_id = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        let server_cert = server_id.cert.der().clone();
        let server_config = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_single_cert(
                vec![server_cert.clone()],
                PrivateKeyDer::try_from(server_id.signing_key.serialize_der()).unwrap(),
            )
            .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server_config));
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            match acceptor.accept(tcp).await {
                Ok(mut tls) => {
                    let mut byte = [0u8; 1];
                    let _ = tls.read_exact(&mut byte).await;
                    Ok(())
                }
                Err(e) => Err(e.to_string()),
            }
        });
        let mut client_roots = rustls::RootCertStore::empty();
        client_roots.add(server_cert).unwrap();
        let key = PrivateKeyDer::from_pem_slice(unit.signer.pkcs8_pem().as_bytes()).unwrap();
        let client_config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(client_roots)
            .with_client_auth_cert(ders(chain_pem), key)
            .unwrap();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(client_config));
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        if let Ok(mut tls) = connector
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
        {
            let _ = tls.write_all(b"x").await;
            let _ = tls.flush().await;
        }
        server.await.unwrap()
    }

    async fn revocations_are_admin_only_idempotent_and_refuse_issuance(backend: Backend) {
        let kit = TestServer::start(backend).await;
        let line = kit.line("rev", 10, "SN-0001..SN-0100").await;
        let station = kit.enroll_station(&line.factory).await;
        for n in 1..=3 {
            issue(&station, &line.order, &format!("SN-000{n}")).await;
        }
        let size = kit.log_size().await;

        // Not an admin: refused, nothing logged.
        let err = kit
            .anonymous()
            .revoke(RevocationKind::Unit, "SN-0001", &revoke("keyCompromise"))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some(ErrorCode::Unauthorized), "{err}");

        let done = kit
            .admin
            .revoke(RevocationKind::Unit, "SN-0001", &revoke("KEYCOMPROMISE"))
            .await
            .unwrap();
        assert_eq!(
            (done.changed, done.revoked, done.reason.as_str()),
            (true, 1, "keyCompromise")
        );
        assert_eq!(kit.log_size().await, size + 1);
        let again = kit
            .admin
            .revoke(RevocationKind::Unit, "SN-0001", &revoke("superseded"))
            .await
            .unwrap();
        assert_eq!((again.changed, again.revoked), (false, 0));
        assert_eq!(kit.log_size().await, size + 1);
        let unit = kit.admin.unit("SN-0001").await.unwrap();
        assert_eq!(unit[0].status, "revoked");

        // Bad input: a clear code, nothing logged.
        let cases: [(RevocationKind, &str, Revoke, ErrorCode); 4] = [
            (
                RevocationKind::Unit,
                "SN-0099",
                revoke("keyCompromise"),
                ErrorCode::NotFound,
            ),
            (
                RevocationKind::Unit,
                "SN-0002",
                revoke("removeFromCRL"),
                ErrorCode::InvalidRequest,
            ),
            (
                RevocationKind::Order,
                &line.order,
                revoke("certificateHold"),
                ErrorCode::Unprocessable,
            ),
            (
                RevocationKind::Ca,
                "no-such-product",
                revoke("cACompromise"),
                ErrorCode::NotFound,
            ),
        ];
        for (kind, id, body, code) in cases {
            let err = kit.admin.revoke(kind, id, &body).await.unwrap_err();
            assert_eq!(err.code(), Some(code), "{kind:?} {id}: {err}");
        }
        assert_eq!(kit.log_size().await, size + 1);

        // A hold, released.
        let held = kit
            .admin
            .revoke(RevocationKind::Unit, "SN-0002", &revoke("certificateHold"))
            .await
            .unwrap();
        assert!(held.changed);
        let released = kit
            .admin
            .release_unit("SN-0002", &Release::default())
            .await
            .unwrap();
        assert_eq!(
            (released.released, released.reason.as_str()),
            (1, "removeFromCRL")
        );
        let err = kit
            .admin
            .release_unit("SN-0002", &Release::default())
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some(ErrorCode::Conflict));

        // A revoked unit's serial stays taken.
        let retry = station
            .provision(&line.order, &Unit::new("SN-0001"), passing_test("SN-0001"))
            .await;
        retry.assert_error(409, "serial_conflict");

        // The order: its units revoked and itself closed.
        let order = kit
            .admin
            .revoke(RevocationKind::Order, &line.order, &revoke("superseded"))
            .await
            .unwrap();
        assert_eq!(order.revoked, 2, "SN-0001 was revoked before");
        assert_eq!(
            kit.admin.order(&line.order).await.unwrap().order.state,
            "closed"
        );
        let reply = station
            .provision(&line.order, &Unit::new("SN-0010"), passing_test("SN-0010"))
            .await;
        reply.assert_error(409, "order_not_open");

        // The CA: nothing more issues under it.
        let other = kit
            .order(
                "ord-rev-2",
                &line.product,
                &line.factory,
                10,
                "SN-0001..SN-0100",
            )
            .await;
        let ca = kit
            .admin
            .revoke(RevocationKind::Ca, &line.product, &revoke("cACompromise"))
            .await
            .unwrap();
        assert!(ca.changed);
        let reply = station
            .provision(&other, &Unit::new("SN-0020"), passing_test("SN-0020"))
            .await;
        reply.assert_error(409, "ca_revoked");

        // The station: refused at once, on the connection it already has open.
        let done = kit
            .admin
            .revoke(
                RevocationKind::Station,
                &station.id,
                &revoke("keyCompromise"),
            )
            .await
            .unwrap();
        assert!(done.changed);
        let reply = station
            .provision(&other, &Unit::new("SN-0021"), passing_test("SN-0021"))
            .await;
        reply.assert_error(403, "station_revoked");
        let again = kit
            .admin
            .revoke(
                RevocationKind::Station,
                &station.id,
                &revoke("keyCompromise"),
            )
            .await
            .unwrap();
        assert!(!again.changed);
    }

    async fn get(http: &reqwest::Client, url: String) -> (u16, Vec<u8>) {
        let response = http.get(url).send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.bytes().await.unwrap().to_vec())
    }

    async fn crls_and_ocsp_follow_a_revocation_within_a_second(backend: Backend) {
        let kit = TestServer::start_public(backend, Some("https://pki.test")).await;
        let line = kit.line("crl", 10, "SN-0001..SN-0100").await;
        let station = kit.enroll_station(&line.factory).await;
        let (first, first_unit) = issue_unit(&station, &line.order, "SN-0001").await;
        let (second, second_unit) = issue_unit(&station, &line.order, "SN-0002").await;
        let issuing_pem = first
            .chain_pem
            .strip_prefix(&first.certificate_pem)
            .unwrap()
            .to_owned();
        let http = http(&kit);
        let openssl = touchmark_testenv::tool(&touchmark_testenv::OPENSSL);
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, data: &[u8]| std::fs::write(dir.path().join(name), data).unwrap();
        write("root.pem", kit.device_root_pem.as_bytes());
        write("issuing.pem", issuing_pem.as_bytes());
        write("device.pem", first.certificate_pem.as_bytes());
        write(
            "chain.pem",
            format!("{issuing_pem}{}", kit.device_root_pem).as_bytes(),
        );

        // The OCSP answer before: good, signed by a delegated responder, nonce echoed.
        let ocsp = |expect: &'static str| {
            let (openssl, dir, http, base) = (
                openssl.clone(),
                dir.path().to_owned(),
                http.clone(),
                kit.base_url.clone(),
            );
            async move {
                let (ok, text) = touchmark_testenv::run(
                    &openssl,
                    &dir,
                    &[
                        "ocsp",
                        "-issuer",
                        "issuing.pem",
                        "-cert",
                        "device.pem",
                        "-reqout",
                        "req.der",
                    ],
                );
                assert!(ok, "{text}");
                let request = std::fs::read(dir.join("req.der")).unwrap();
                let response = http
                    .post(format!("{base}/ocsp"))
                    .header("content-type", "application/ocsp-request")
                    .body(request)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), 200);
                std::fs::write(dir.join("resp.der"), response.bytes().await.unwrap()).unwrap();
                let (ok, text) = touchmark_testenv::run(
                    &openssl,
                    &dir,
                    &[
                        "ocsp",
                        "-reqin",
                        "req.der",
                        "-respin",
                        "resp.der",
                        "-issuer",
                        "issuing.pem",
                        "-verify_other",
                        "issuing.pem",
                        "-CAfile",
                        "root.pem",
                        "-resp_text",
                    ],
                );
                // With -reqin, openssl also checks that the response echoes the request's
                // nonce.
                assert!(ok, "{text}");
                assert!(text.contains("Response verify OK"), "{text}");
                assert!(text.contains(&format!("Cert Status: {expect}")), "{text}");
                assert!(
                    text.contains("OCSP Signing")
                        || text.contains("OCSPSigning")
                        || text.contains("OCSP No Check"),
                    "{text}"
                );
                text
            }
        };
        ocsp("good").await;

        // The CRL before: signed by the issuing CA, empty. The publisher signs a new product's
        // CRL within a second of its creation, as it does after a revocation.
        let crl_url = format!("{}/crl/{}", kit.base_url, line.product);
        let mut fetched = get(&http, crl_url.clone()).await;
        for _ in 0..20 {
            if fetched.0 == 200 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            fetched = get(&http, crl_url.clone()).await;
        }
        let (status, before) = fetched;
        assert_eq!(status, 200);
        write("before.crl", &before);
        let (ok, text) = touchmark_testenv::run(
            &openssl,
            dir.path(),
            &[
                "crl",
                "-inform",
                "DER",
                "-in",
                "before.crl",
                "-CAfile",
                "chain.pem",
                "-noout",
                "-verify",
                "-text",
            ],
        );
        assert!(ok, "{text}");
        assert!(text.contains("verify OK"), "{text}");
        assert!(text.contains("No Revoked Certificates"), "{text}");
        let number = |text: &str| -> String {
            let at = text.find("X509v3 CRL Number:").unwrap();
            text[at..].lines().nth(1).unwrap().trim().to_owned()
        };
        let number_before = number(&text);

        let start = Instant::now();
        kit.admin
            .revoke(RevocationKind::Unit, "SN-0001", &revoke("keyCompromise"))
            .await
            .unwrap();
        // The CRL lists it within a second. A CRL signed again for another reason (a new
        // order's partition, say) may come first: wait for one that lists the unit.
        let lists_a_unit = |der: &[u8]| {
            x509_parser::parse_x509_crl(der)
                .map(|(_, crl)| crl.iter_revoked_certificates().count() > 0)
                .unwrap_or(false)
        };
        let after = loop {
            let (_, crl) = get(&http, crl_url.clone()).await;
            if crl != before && lists_a_unit(&crl) {
                break crl;
            }
            assert!(
                start.elapsed() < std::time::Duration::from_secs(1),
                "the CRL did not change within a second"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        };
        write("after.crl", &after);
        let (ok, text) = touchmark_testenv::run(
            &openssl,
            dir.path(),
            &[
                "crl",
                "-inform",
                "DER",
                "-in",
                "after.crl",
                "-CAfile",
                "chain.pem",
                "-noout",
                "-verify",
                "-text",
            ],
        );
        assert!(ok, "{text}");
        assert!(text.contains("Key Compromise"), "{text}");
        assert!(
            number(&text) > number_before || number(&text).len() > number_before.len(),
            "{text}"
        );
        write(
            "after.pem",
            touchmark_pki::pem::encode("X509 CRL", &after).as_bytes(),
        );
        // A relying party with the CRL refuses the revoked unit.
        let (ok, text) = touchmark_testenv::run(
            &openssl,
            dir.path(),
            &[
                "verify",
                "-crl_check",
                "-CAfile",
                "root.pem",
                "-untrusted",
                "issuing.pem",
                "-CRLfile",
                "after.pem",
                "device.pem",
            ],
        );
        assert!(!ok && text.contains("certificate revoked"), "{text}");
        // rustls-webpki with the CRLs (the root's and the issuing CA's: the whole chain is
        // checked) refuses the revoked unit as a client, and accepts its sibling; without the
        // issuing CA's CRL, the unit's status is unknown, which is an error.
        let (_, root_crl) = get(&http, format!("{}/crl/_root", kit.base_url)).await;
        let crls = vec![after.clone(), root_crl.clone()];
        let err = handshake_with_crls(
            &kit.device_root_pem,
            crls.clone(),
            &first.chain_pem,
            &first_unit,
        )
        .await
        .unwrap_err();
        assert!(err.to_lowercase().contains("revoked"), "{err}");
        handshake_with_crls(&kit.device_root_pem, crls, &second.chain_pem, &second_unit)
            .await
            .expect("the unrevoked unit is accepted");
        let err = handshake_with_crls(
            &kit.device_root_pem,
            vec![root_crl],
            &second.chain_pem,
            &second_unit,
        )
        .await
        .unwrap_err();
        assert!(
            err.to_lowercase().contains("unknown") || err.to_lowercase().contains("revocation"),
            "{err}"
        );
        // PEM on request.
        let (status, pem) = get(&http, format!("{crl_url}?format=pem")).await;
        assert_eq!(status, 200);
        assert_eq!(
            String::from_utf8(pem).unwrap(),
            touchmark_pki::pem::encode("X509 CRL", &after)
        );

        // OCSP says revoked at once: the cached good answer is gone.
        let text = ocsp("revoked").await;
        assert!(
            text.contains("Key Compromise") || text.contains("keyCompromise"),
            "{text}"
        );

        // Garbage and oversized requests: refused 422, with a well-formed OCSP error, never a
        // 500; an unknown CA's below.
        for (body, status) in [
            (b"garbage".to_vec(), "malformedrequest"),
            (vec![0x30; 10_000], "malformedrequest"),
            (Vec::new(), "malformedrequest"),
        ] {
            let response = http
                .post(format!("{}/ocsp", kit.base_url))
                .body(body)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 422);
            write("bad.der", &response.bytes().await.unwrap());
            let (_, text) = touchmark_testenv::run(
                &openssl,
                dir.path(),
                &["ocsp", "-respin", "bad.der", "-resp_text", "-noverify"],
            );
            assert!(
                text.to_lowercase().replace(' ', "").contains(status),
                "{text}"
            );
        }
        // A certificate of a CA this server does not hold.
        write("foreign.pem", kit.root_ca_pem.as_bytes());
        let (ok, text) = touchmark_testenv::run(
            &openssl,
            dir.path(),
            &[
                "ocsp",
                "-issuer",
                "foreign.pem",
                "-cert",
                "foreign.pem",
                "-reqout",
                "foreign.der",
                "-no_nonce",
            ],
        );
        assert!(ok, "{text}");
        let response = http
            .post(format!("{}/ocsp", kit.base_url))
            .body(std::fs::read(dir.path().join("foreign.der")).unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        write("foreign-resp.der", &response.bytes().await.unwrap());
        let (_, text) = touchmark_testenv::run(
            &openssl,
            dir.path(),
            &[
                "ocsp",
                "-respin",
                "foreign-resp.der",
                "-resp_text",
                "-noverify",
            ],
        );
        assert!(text.to_lowercase().contains("unauthorized"), "{text}");

        // The order's partition lists the unit too, scoped by its issuing distribution point.
        let (status, partition) = get(&http, format!("{crl_url}/{}", line.order)).await;
        assert_eq!(status, 200);
        write("partition.crl", &partition);
        let (ok, text) = touchmark_testenv::run(
            &openssl,
            dir.path(),
            &[
                "crl",
                "-inform",
                "DER",
                "-in",
                "partition.crl",
                "-CAfile",
                "chain.pem",
                "-noout",
                "-verify",
                "-text",
            ],
        );
        assert!(ok, "{text}");
        assert!(
            text.contains("Issuing Distribution Point")
                && text.contains("https://pki.test/crl/prod-crl/ord-crl")
                && text.contains("Key Compromise"),
            "{text}"
        );
        // The units name that partition in their CRL distribution point, and openssl, which
        // matches the two, refuses the revoked unit with it and accepts its sibling.
        let der = &touchmark_pki::certs_from_pem(&first.certificate_pem).unwrap()[0];
        assert!(
            String::from_utf8_lossy(der.der()).contains("https://pki.test/crl/prod-crl/ord-crl")
        );
        write(
            "partition.pem",
            touchmark_pki::pem::encode("X509 CRL", &partition).as_bytes(),
        );
        write("sibling.pem", second.certificate_pem.as_bytes());
        let verify = |cert: &str| {
            touchmark_testenv::run(
                &openssl,
                dir.path(),
                &[
                    "verify",
                    "-crl_check",
                    "-CAfile",
                    "root.pem",
                    "-untrusted",
                    "issuing.pem",
                    "-CRLfile",
                    "partition.pem",
                    cert,
                ],
            )
        };
        let (ok, text) = verify("device.pem");
        assert!(!ok && text.contains("certificate revoked"), "{text}");
        let (ok, text) = verify("sibling.pem");
        assert!(ok, "{text}");
        // An unknown CRL is a 404.
        let (status, _) = get(&http, format!("{}/crl/no-such-ca", kit.base_url)).await;
        assert_eq!(status, 404);
    }

    /// What Python `cryptography`, an OCSP client we did not write, observed of the server's
    /// answers (tests/ocsp_cryptography.py), by request kind.
    fn python_ocsp(kit: &TestServer, dir: &std::path::Path) -> Value {
        let python = touchmark_testenv::tool(&touchmark_testenv::PYTHON3);
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/ocsp_cryptography.py");
        let out = std::process::Command::new(python)
            .arg(script)
            .arg(&kit.base_url)
            .arg(dir.join("tls-root.pem"))
            .arg(dir.join("issuing.pem"))
            .arg(dir.join("device.pem"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    async fn python_cryptography_reads_the_ocsp_answers(backend: Backend) {
        let kit = TestServer::start_public(backend, Some("https://pki.test")).await;
        let line = kit.line("pyocsp", 10, "SN-0001..SN-0100").await;
        let station = kit.enroll_station(&line.factory).await;
        let first = issue(&station, &line.order, "SN-0001").await;
        let issuing_pem = first
            .chain_pem
            .strip_prefix(&first.certificate_pem)
            .unwrap()
            .to_owned();
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, data: &[u8]| std::fs::write(dir.path().join(name), data).unwrap();
        write("tls-root.pem", kit.root_ca_pem.as_bytes());
        write("issuing.pem", issuing_pem.as_bytes());
        write("device.pem", first.certificate_pem.as_bytes());

        // What holds of every answer about a certificate of a CA this server holds, whatever its
        // status: a delegated responder (id-kp-OCSPSigning, issued by the CA) signed it, and the
        // nonce is echoed exactly when one was sent.
        let check_signed = |seen: &Value, kind: &str, nonce: bool| {
            assert_eq!(seen["http"], 200, "{kind}: {seen}");
            assert_eq!(
                seen["content_type"], "application/ocsp-response",
                "{kind}: {seen}"
            );
            assert_eq!(seen["response_status"], "SUCCESSFUL", "{kind}: {seen}");
            assert!(
                seen["responder_certificates"].as_u64() >= Some(1),
                "{kind}: {seen}"
            );
            for fact in [
                "responder_ocsp_signing",
                "responder_issuer_is_ca",
                "responder_signed_by_ca",
                "signature_valid",
                "responder_id_matches",
            ] {
                assert_eq!(seen[fact], true, "{kind} {fact}: {seen}");
            }
            assert_eq!(seen["nonce_echoed"], nonce, "{kind}: {seen}");
            assert_eq!(seen["nonce_present"], nonce, "{kind}: {seen}");
        };
        let check_errors = |seen: &Value| {
            for method in ["post", "get"] {
                let unknown_ca = &seen[format!("{method}_unknown_ca")];
                assert_eq!(unknown_ca["http"], 200, "{unknown_ca}");
                assert_eq!(
                    unknown_ca["response_status"], "UNAUTHORIZED",
                    "{unknown_ca}"
                );
                for bad in ["garbage", "truncated", "oversized"] {
                    let answer = &seen[format!("{method}_{bad}")];
                    // POST refuses a body no schema can judge 422, GET answers 200: either way
                    // a well-formed OCSPResponse, never a 500.
                    let http = if method == "post" { 422 } else { 200 };
                    assert_eq!(answer["http"], http, "{method} {bad}: {answer}");
                    assert_eq!(
                        answer["content_type"], "application/ocsp-response",
                        "{method} {bad}: {answer}"
                    );
                    assert_eq!(
                        answer["response_status"], "MALFORMED_REQUEST",
                        "{method} {bad}: {answer}"
                    );
                }
            }
            assert_eq!(seen["post_empty"]["http"], 422, "{seen}");
            assert_eq!(
                seen["post_empty"]["response_status"], "MALFORMED_REQUEST",
                "{seen}"
            );
        };

        let before = python_ocsp(&kit, dir.path());
        for method in ["post", "get"] {
            for nonce in [true, false] {
                let kind = format!("{method}_{}", if nonce { "nonce" } else { "no_nonce" });
                let seen = &before[&kind];
                check_signed(seen, &kind, nonce);
                assert_eq!(seen["cert_status"], "GOOD", "{kind}: {seen}");
                assert_eq!(seen["serial_matches"], true, "{kind}: {seen}");
            }
            let kind = format!("{method}_never_issued");
            let seen = &before[&kind];
            check_signed(seen, &kind, false);
            assert_eq!(seen["cert_status"], "UNKNOWN", "{kind}: {seen}");
        }
        check_errors(&before);

        let revoked_at = kit.now().unix_timestamp();
        kit.admin
            .revoke(RevocationKind::Unit, "SN-0001", &revoke("keyCompromise"))
            .await
            .unwrap();
        let after = python_ocsp(&kit, dir.path());
        for method in ["post", "get"] {
            for nonce in [true, false] {
                let kind = format!("{method}_{}", if nonce { "nonce" } else { "no_nonce" });
                let seen = &after[&kind];
                check_signed(seen, &kind, nonce);
                assert_eq!(seen["cert_status"], "REVOKED", "{kind}: {seen}");
                assert_eq!(
                    seen["revocation_reason"], "key_compromise",
                    "{kind}: {seen}"
                );
                assert_eq!(seen["revocation_time"], revoked_at, "{kind}: {seen}");
            }
            assert_eq!(
                after[format!("{method}_never_issued")]["cert_status"],
                "UNKNOWN"
            );
        }
        check_errors(&after);
    }

    async fn a_revocation_through_one_replica_reaches_the_other(backend: Backend) {
        let a = TestServer::start(backend).await;
        let line = a.line("replica", 10, "SN-0001..SN-0100").await;
        let station = a.enroll_station(&line.factory).await;
        let first = issue(&station, &line.order, "SN-0001").await;
        // Replica B, on the same store, started once the product exists.
        let b = a.replica().await;
        let issuing_pem = first
            .chain_pem
            .strip_prefix(&first.certificate_pem)
            .unwrap()
            .to_owned();
        let openssl = touchmark_testenv::tool(&touchmark_testenv::OPENSSL);
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("issuing.pem"), &issuing_pem).unwrap();
        std::fs::write(dir.path().join("device.pem"), &first.certificate_pem).unwrap();
        let (ok, text) = touchmark_testenv::run(
            &openssl,
            dir.path(),
            &[
                "ocsp",
                "-issuer",
                "issuing.pem",
                "-cert",
                "device.pem",
                "-no_nonce",
                "-reqout",
                "req.der",
            ],
        );
        assert!(ok, "{text}");
        let request = std::fs::read(dir.path().join("req.der")).unwrap();
        let der = &touchmark_pki::certs_from_pem(&first.certificate_pem).unwrap()[0];
        let serial = x509_parser::parse_x509_certificate(der.der())
            .unwrap()
            .1
            .serial
            .clone();
        let http = http(&b);
        // B's OCSP status of the unit, and whether B's CRL of the product lists it.
        let at_b = || {
            let (http, request, dir, openssl, base) = (
                http.clone(),
                request.clone(),
                dir.path().to_owned(),
                openssl.clone(),
                b.base_url.clone(),
            );
            let (crl_url, serial) = (format!("{}/crl/{}", b.base_url, line.product), &serial);
            async move {
                let response = http
                    .post(format!("{base}/ocsp"))
                    .header("content-type", "application/ocsp-request")
                    .body(request)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), 200);
                std::fs::write(dir.join("resp.der"), response.bytes().await.unwrap()).unwrap();
                let (_, ocsp) = touchmark_testenv::run(
                    &openssl,
                    &dir,
                    &["ocsp", "-respin", "resp.der", "-resp_text", "-noverify"],
                );
                let (status, crl) = get(&http, crl_url).await;
                assert_eq!(status, 200);
                let (_, crl) = x509_parser::parse_x509_crl(&crl).unwrap();
                let listed = crl
                    .iter_revoked_certificates()
                    .any(|r| &r.user_certificate == serial);
                (ocsp, listed)
            }
        };
        // Asked twice: B's answer is cached.
        for _ in 0..2 {
            let (ocsp, listed) = at_b().await;
            assert!(ocsp.contains("Cert Status: good"), "{ocsp}");
            assert!(!listed);
        }

        a.admin
            .revoke(RevocationKind::Unit, "SN-0001", &revoke("keyCompromise"))
            .await
            .unwrap();
        // B learns of it from the sequenced log (the server sequences every 200 ms; this one
        // when asked), which it looks at every 200 ms: its answers change within that poll and
        // the time to sign its CRLs.
        a.sequence_now().await;
        let start = Instant::now();
        loop {
            let (ocsp, listed) = at_b().await;
            if ocsp.contains("Cert Status: revoked") && listed {
                assert!(ocsp.contains("keyCompromise"), "{ocsp}");
                break;
            }
            assert!(
                start.elapsed() < std::time::Duration::from_secs(1),
                "replica B still answers as before the revocation: {ocsp}, listed: {listed}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
}
