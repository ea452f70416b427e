//! Integration tests for touchmark-pki, checked against independent verifiers (openssl, webpki, x509-parser).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls_pki_types::{CertificateDer, UnixTime};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};
use touchmark_pki::{
    CaIssuer, Certificate, CsrError, DeviceProfile, KeyAlgorithm, SerialNumber, Signer,
    SoftwareSigner, Subject, VerifiedCsr, create_intermediate_ca, create_root_ca,
    issue_device_cert, issue_server_cert, issue_station_cert, parse_csr,
};

// ---------------------------------------------------------------------------------------------
// Helpers: the openssl binary, CSRs, a CA hierarchy.
// ---------------------------------------------------------------------------------------------
mod support {
    use super::*;

    /// The openssl binary. Tests that call it run only where openssl is (`tm_openssl`, see
    /// `touchmark-testenv`), and are reported as ignored elsewhere.
    pub fn openssl() -> PathBuf {
        touchmark_testenv::tool(&touchmark_testenv::OPENSSL)
    }

    /// Runs openssl in `dir`, returning (success, stdout + stderr).
    pub fn run(openssl: &Path, dir: &Path, args: &[&str]) -> (bool, String) {
        touchmark_testenv::run(openssl, dir, args)
    }

    /// A P-256 CSR made by openssl (`ecparam -genkey` + `req -new`), as PEM.
    pub fn openssl_csr(openssl: &Path, dir: &Path, name: &str) -> String {
        let key = format!("{name}.key");
        let csr = format!("{name}.csr");
        let (ok, out) = run(
            openssl,
            dir,
            &[
                "ecparam",
                "-genkey",
                "-name",
                "prime256v1",
                "-noout",
                "-out",
                &key,
            ],
        );
        assert!(ok, "{out}");
        let (ok, out) = run(
            openssl,
            dir,
            &["req", "-new", "-key", &key, "-subj", "/CN=x", "-out", &csr],
        );
        assert!(ok, "{out}");
        std::fs::read_to_string(dir.join(csr)).unwrap()
    }

    /// A CSR made by rcgen for the given algorithm, as DER.
    pub fn rcgen_csr(alg: &'static rcgen::SignatureAlgorithm) -> Vec<u8> {
        let key = if alg == &rcgen::PKCS_RSA_SHA256 {
            rcgen::KeyPair::generate_rsa_for(alg, rcgen::RsaKeySize::_2048).unwrap()
        } else {
            rcgen::KeyPair::generate_for(alg).unwrap()
        };
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "x");
        params.serialize_request(&key).unwrap().der().to_vec()
    }

    pub fn p256_csr() -> VerifiedCsr {
        parse_csr(&rcgen_csr(&rcgen::PKCS_ECDSA_P256_SHA256)).unwrap()
    }

    pub fn serial() -> SerialNumber {
        SerialNumber::random(&mut rand::rng())
    }

    pub fn now() -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }

    /// Root CA → product issuing CA, plus a station CA under the same root.
    pub struct Hierarchy {
        pub root: Certificate,
        pub issuing: CaIssuer,
        pub station: CaIssuer,
    }

    pub fn hierarchy() -> Hierarchy {
        let root_key: Arc<dyn Signer> =
            Arc::new(SoftwareSigner::generate(KeyAlgorithm::EcdsaP256).unwrap());
        let root = create_root_ca(
            root_key.as_ref(),
            &Subject {
                organization: "Acme Devices".into(),
                common_name: "Acme Root CA".into(),
            },
            now() - Duration::hours(1),
            datetime!(9999-12-31 23:59:59 UTC),
            serial(),
        )
        .unwrap();
        let root_issuer = CaIssuer::new(root.clone(), root_key).unwrap();
        let mk = |cn: &str| {
            let key: Arc<dyn Signer> =
                Arc::new(SoftwareSigner::generate(KeyAlgorithm::EcdsaP256).unwrap());
            let cert = create_intermediate_ca(
                &root_issuer,
                key.public_key_spki(),
                &Subject {
                    organization: "Acme Devices".into(),
                    common_name: cn.into(),
                },
                now() - Duration::hours(1),
                datetime!(9999-12-31 23:59:59 UTC),
                serial(),
            )
            .unwrap();
            CaIssuer::new(cert, key).unwrap()
        };
        Hierarchy {
            issuing: mk("Acme Widget Issuing CA"),
            station: mk("Acme Station CA"),
            root,
        }
    }

    pub fn profile() -> DeviceProfile {
        DeviceProfile {
            organization: "Acme Devices".into(),
            common_name: "Widget 3000".into(),
            hw_type_oid: vec![1, 3, 6, 1, 4, 1, 99999, 1, 2],
            crl_url: None,
            ocsp_url: None,
            not_after: None,
        }
    }

    /// webpki verification as a TLS client certificate.
    pub fn webpki_client_auth(
        root: &Certificate,
        intermediates: &[&Certificate],
        ee: &Certificate,
        at: OffsetDateTime,
    ) -> Result<(), webpki::Error> {
        let root_der = root.to_cert_der();
        let anchor = webpki::anchor_from_trusted_cert(&root_der).unwrap();
        let inter: Vec<CertificateDer<'static>> =
            intermediates.iter().map(|c| c.to_cert_der()).collect();
        let ee_der = ee.to_cert_der();
        let ee = webpki::EndEntityCert::try_from(&ee_der).unwrap();
        ee.verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            &[anchor],
            &inter,
            UnixTime::since_unix_epoch(std::time::Duration::from_secs(at.unix_timestamp() as u64)),
            webpki::KeyUsage::client_auth(),
            None,
            None,
        )
        .map(|_| ())
    }
}

use support::*;

// ---------------------------------------------------------------------------------------------
// CSR parsing and checks.
// ---------------------------------------------------------------------------------------------
mod csr {
    use base64::Engine as _;

    use super::*;

    #[test]
    fn accepts_pem_base64_and_der() {
        let der = rcgen_csr(&rcgen::PKCS_ECDSA_P256_SHA256);
        let from_der = parse_csr(&der).unwrap();
        let pem = touchmark_pki::pem::encode("CERTIFICATE REQUEST", &der);
        assert_eq!(parse_csr(pem.as_bytes()).unwrap(), from_der);
        let new_pem = touchmark_pki::pem::encode("NEW CERTIFICATE REQUEST", &der);
        assert_eq!(parse_csr(new_pem.as_bytes()).unwrap(), from_der);
        let crlf = pem.replace('\n', "\r\n");
        assert_eq!(parse_csr(crlf.as_bytes()).unwrap(), from_der);
        let b64 = base64::engine::general_purpose::STANDARD.encode(&der);
        assert_eq!(parse_csr(b64.as_bytes()).unwrap(), from_der);
        let wrapped = format!("  {}\n{}\n", &b64[..40], &b64[40..]);
        assert_eq!(parse_csr(wrapped.as_bytes()).unwrap(), from_der);
        assert_eq!(from_der.der(), der.as_slice());
        assert_eq!(from_der.public_key_raw().len(), 65);
        assert_eq!(from_der.public_key_raw()[0], 4);
    }

    #[test]
    #[cfg_attr(
        not(tm_openssl),
        ignore = "needs openssl: install it, or set TOUCHMARK_TEST_OPENSSL"
    )]
    fn accepts_openssl_csr() {
        let openssl = openssl();
        let dir = tempfile::tempdir().unwrap();
        let pem = openssl_csr(&openssl, dir.path(), "dev");
        let csr = parse_csr(pem.as_bytes()).unwrap();
        // The SPKI fingerprint matches openssl's view of the public key.
        let (ok, out) = run(
            &openssl,
            dir.path(),
            &[
                "ec", "-in", "dev.key", "-pubout", "-outform", "DER", "-out", "pub.der",
            ],
        );
        assert!(ok, "{out}");
        let spki = std::fs::read(dir.path().join("pub.der")).unwrap();
        assert_eq!(csr.spki_der(), spki.as_slice());
    }

    #[test]
    fn flipped_signature_byte_is_signature_invalid() {
        let mut der = rcgen_csr(&rcgen::PKCS_ECDSA_P256_SHA256);
        let last = der.len() - 1;
        der[last] ^= 0x01;
        assert_eq!(parse_csr(&der), Err(CsrError::SignatureInvalid));
    }

    #[test]
    fn modified_subject_is_signature_invalid() {
        let mut der = rcgen_csr(&rcgen::PKCS_ECDSA_P256_SHA256);
        // The CN value "x" sits in the signed CertificationRequestInfo.
        let pos = der
            .windows(3)
            .position(|w| w == [0x0c, 0x01, b'x'])
            .unwrap();
        der[pos + 2] = b'y';
        assert_eq!(parse_csr(&der), Err(CsrError::SignatureInvalid));
    }

    #[test]
    fn unsupported_key_types_are_named() {
        for (alg, name) in [
            (&rcgen::PKCS_RSA_SHA256, "RSA"),
            (&rcgen::PKCS_ECDSA_P384_SHA384, "P-384"),
            (&rcgen::PKCS_ED25519, "Ed25519"),
        ] {
            match parse_csr(&rcgen_csr(alg)) {
                Err(CsrError::KeyTypeUnsupported(msg)) => {
                    assert!(msg.contains(name), "{msg}");
                    let shown = CsrError::KeyTypeUnsupported(msg).to_string();
                    assert!(shown.contains(name), "{shown}");
                }
                other => panic!("{name}: {other:?}"),
            }
        }
    }

    #[test]
    #[cfg_attr(
        not(tm_openssl),
        ignore = "needs openssl: install it, or set TOUCHMARK_TEST_OPENSSL"
    )]
    fn openssl_rsa_and_p384_are_unsupported() {
        let openssl = openssl();
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let (ok, out) = run(
            &openssl,
            d,
            &[
                "req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", "rsa.key", "-subj",
                "/CN=x", "-out", "rsa.csr",
            ],
        );
        assert!(ok, "{out}");
        let (ok, out) = run(
            &openssl,
            d,
            &[
                "req",
                "-new",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:secp384r1",
                "-nodes",
                "-keyout",
                "p384.key",
                "-subj",
                "/CN=x",
                "-out",
                "p384.csr",
            ],
        );
        assert!(ok, "{out}");
        for (file, name) in [("rsa.csr", "RSA"), ("p384.csr", "P-384")] {
            let pem = std::fs::read(d.join(file)).unwrap();
            match parse_csr(&pem) {
                Err(CsrError::KeyTypeUnsupported(msg)) => assert!(msg.contains(name), "{msg}"),
                other => panic!("{file}: {other:?}"),
            }
        }
    }

    #[test]
    fn malformed_input_is_invalid() {
        let der = rcgen_csr(&rcgen::PKCS_ECDSA_P256_SHA256);
        let wrong_label = touchmark_pki::pem::encode("CERTIFICATE", &der);
        let mut trailing = der.clone();
        trailing.extend_from_slice(&[0x05, 0x00]);
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("empty", vec![]),
            ("garbage", b"\x00\x01\x02 not a csr \xff".to_vec()),
            ("garbage text", b"hello world".to_vec()),
            ("truncated DER", der[..der.len() - 10].to_vec()),
            ("just a SEQUENCE tag", vec![0x30]),
            ("trailing data", trailing),
            ("wrong PEM label", wrong_label.into_bytes()),
            (
                "unterminated PEM",
                b"-----BEGIN CERTIFICATE REQUEST-----\nMIIB".to_vec(),
            ),
            ("oversize", vec![b'A'; 16 * 1024 + 1]),
            ("oversize DER", {
                let mut v = vec![0x30];
                v.extend(std::iter::repeat_n(0u8, 20_000));
                v
            }),
        ];
        for (name, input) in cases {
            match parse_csr(&input) {
                Err(CsrError::Invalid(msg)) => assert!(!msg.is_empty(), "{name}"),
                other => panic!("{name}: expected Invalid, got {other:?}"),
            }
        }
    }

    #[test]
    fn point_off_the_curve_is_invalid() {
        let mut der = rcgen_csr(&rcgen::PKCS_ECDSA_P256_SHA256);
        let pos = der
            .windows(4)
            .position(|w| w == [0x03, 0x42, 0x00, 0x04])
            .unwrap();
        // Last byte of the y coordinate.
        der[pos + 4 + 64] ^= 0x01;
        assert!(matches!(parse_csr(&der), Err(CsrError::Invalid(_))));
    }

    #[test]
    fn hot_path_is_fast_enough() {
        let csrs: Vec<Vec<u8>> = (0..50)
            .map(|_| rcgen_csr(&rcgen::PKCS_ECDSA_P256_SHA256))
            .collect();
        let start = std::time::Instant::now();
        let n = 2000;
        for i in 0..n {
            parse_csr(&csrs[i % csrs.len()]).unwrap();
        }
        let per_sec = n as f64 / start.elapsed().as_secs_f64();
        eprintln!("parse_csr: {per_sec:.0}/s (debug build)");
        assert!(per_sec > 500.0, "{per_sec}/s");
    }
}

// ---------------------------------------------------------------------------------------------
// Device certificates (IEEE 802.1AR IDevID profile).
// ---------------------------------------------------------------------------------------------
mod device {
    use x509_parser::extensions::{GeneralName, ParsedExtension};
    use x509_parser::prelude::*;

    use super::*;

    const HMN_OID: &str = "1.3.6.1.5.5.7.8.4";

    fn attr(cert: &X509Certificate<'_>, oid: &str) -> Vec<String> {
        cert.subject()
            .iter_attributes()
            .filter(|a| a.attr_type().to_id_string() == oid)
            .map(|a| a.as_str().unwrap().to_owned())
            .collect()
    }

    fn sha1(data: &[u8]) -> Vec<u8> {
        aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, data)
            .as_ref()
            .to_vec()
    }

    fn ski(cert: &X509Certificate<'_>) -> Vec<u8> {
        match cert
            .get_extension_unique(&x509_parser::oid_registry::OID_X509_EXT_SUBJECT_KEY_IDENTIFIER)
            .unwrap()
            .unwrap()
            .parsed_extension()
        {
            ParsedExtension::SubjectKeyIdentifier(k) => k.0.to_vec(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn profile_fields() {
        let h = hierarchy();
        let csr = p256_csr();
        let now = datetime!(2026-03-04 05:06:07.891 UTC);
        let cert =
            issue_device_cert(&h.issuing, &csr, "SN-000123", &profile(), now, serial()).unwrap();
        // Round-trips through DER and PEM.
        assert_eq!(Certificate::from_der(cert.der().to_vec()).unwrap(), cert);
        assert_eq!(Certificate::from_pem(&cert.pem()).unwrap(), cert);
        assert_eq!(cert.spki_sha256(), csr.spki_sha256());

        let (rest, x) = X509Certificate::from_der(cert.der()).unwrap();
        assert!(rest.is_empty());
        assert_eq!(x.version(), X509Version::V3);
        assert_eq!(
            x.signature_algorithm.algorithm,
            x509_parser::oid_registry::OID_SIG_ECDSA_WITH_SHA256
        );

        // Subject: O, CN and serialNumber (2.5.4.5) = the unit serial.
        assert_eq!(attr(&x, "2.5.4.10"), ["Acme Devices"]);
        assert_eq!(attr(&x, "2.5.4.3"), ["Widget 3000"]);
        assert_eq!(attr(&x, "2.5.4.5"), ["SN-000123"]);
        assert_eq!(x.subject().iter_attributes().count(), 3);
        // Issuer name is the issuing CA's subject, byte for byte.
        let issuing = h.issuing.certificate();
        let (_, ix) = X509Certificate::from_der(issuing.der()).unwrap();
        assert_eq!(x.issuer().as_raw(), ix.subject().as_raw());

        // SAN: only the hardwareModuleName otherName, non-critical.
        let san = x
            .get_extension_unique(&x509_parser::oid_registry::OID_X509_EXT_SUBJECT_ALT_NAME)
            .unwrap()
            .unwrap();
        assert!(!san.critical);
        let ParsedExtension::SubjectAlternativeName(names) = san.parsed_extension() else {
            panic!("SAN did not parse");
        };
        assert_eq!(names.general_names.len(), 1);
        let GeneralName::OtherName(oid, value) = &names.general_names[0] else {
            panic!("{:?}", names.general_names[0]);
        };
        assert_eq!(oid.to_id_string(), HMN_OID);
        // value = [0] EXPLICIT SEQUENCE { hwType OID, hwSerialNum OCTET STRING }.
        let (_, explicit) = x509_parser::der_parser::der::parse_der(value).unwrap();
        let inner = explicit.as_slice().unwrap();
        let (_, hmn) = x509_parser::der_parser::der::parse_der_sequence(inner).unwrap();
        let items = hmn.as_sequence().unwrap();
        assert_eq!(items.len(), 2);
        assert_eq!(
            items[0].as_oid().unwrap().to_id_string(),
            "1.3.6.1.4.1.99999.1.2"
        );
        assert_eq!(items[1].as_slice().unwrap(), b"SN-000123");

        // keyUsage: digitalSignature only, critical.
        let ku = x.key_usage().unwrap().unwrap();
        assert!(ku.critical);
        assert!(ku.value.digital_signature());
        assert_eq!(ku.value.flags, 1);
        // EKU: clientAuth only.
        let eku = x.extended_key_usage().unwrap().unwrap();
        assert!(eku.value.client_auth);
        assert!(!eku.value.server_auth && !eku.value.any && eku.value.other.is_empty());
        // basicConstraints: critical, cA false.
        let bc = x.basic_constraints().unwrap().unwrap();
        assert!(bc.critical);
        assert!(!bc.value.ca);

        // SKI = SHA-1 of the public key bits; AKI = the issuer's SKI.
        assert_eq!(ski(&x), sha1(csr.public_key_raw()));
        let aki = x
            .get_extension_unique(&x509_parser::oid_registry::OID_X509_EXT_AUTHORITY_KEY_IDENTIFIER)
            .unwrap()
            .unwrap();
        let ParsedExtension::AuthorityKeyIdentifier(aki) = aki.parsed_extension() else {
            panic!("AKI did not parse");
        };
        assert_eq!(aki.key_identifier.as_ref().unwrap().0, ski(&ix).as_slice());

        // Serial: positive, at most 20 octets.
        let raw_serial = x.raw_serial();
        assert!(raw_serial.len() <= 20);
        assert_eq!(raw_serial[0] & 0x80, 0);
        assert!(raw_serial.iter().any(|b| *b != 0));

        // Validity: notBefore = now in whole seconds; notAfter = 99991231235959Z (GeneralizedTime).
        assert_eq!(
            x.validity().not_before.to_datetime(),
            datetime!(2026-03-04 05:06:07 UTC)
        );
        assert_eq!(
            x.validity().not_after.to_datetime(),
            datetime!(9999-12-31 23:59:59 UTC)
        );
        let gt = [&[0x18, 0x0f][..], b"99991231235959Z"].concat();
        assert!(cert.der().windows(gt.len()).any(|w| w == gt));

        // No CRL DP or AIA unless configured.
        assert!(
            x.get_extension_unique(
                &x509_parser::oid_registry::OID_X509_EXT_CRL_DISTRIBUTION_POINTS
            )
            .unwrap()
            .is_none()
        );
        assert!(
            x.get_extension_unique(&x509_parser::oid_registry::OID_PKIX_AUTHORITY_INFO_ACCESS)
                .unwrap()
                .is_none()
        );
        // Exactly these extensions.
        let mut oids: Vec<String> = x
            .extensions()
            .iter()
            .map(|e| e.oid.to_id_string())
            .collect();
        oids.sort();
        assert_eq!(
            oids,
            [
                "2.5.29.14",
                "2.5.29.15",
                "2.5.29.17",
                "2.5.29.19",
                "2.5.29.35",
                "2.5.29.37"
            ]
        );
    }

    #[test]
    fn serials_differ_between_issuances() {
        let h = hierarchy();
        let csr = p256_csr();
        let a = issue_device_cert(&h.issuing, &csr, "SN1", &profile(), now(), serial()).unwrap();
        let b = issue_device_cert(&h.issuing, &csr, "SN1", &profile(), now(), serial()).unwrap();
        let (_, xa) = X509Certificate::from_der(a.der()).unwrap();
        let (_, xb) = X509Certificate::from_der(b.der()).unwrap();
        assert_ne!(xa.raw_serial(), xb.raw_serial());
    }

    #[test]
    fn optional_urls_and_custom_not_after() {
        let h = hierarchy();
        let csr = p256_csr();
        let mut p = profile();
        p.crl_url = Some("http://crl.example.com/widget.crl".into());
        p.ocsp_url = Some("http://ocsp.example.com".into());
        p.not_after = Some(datetime!(2046-01-01 00:00:00 UTC));
        let cert = issue_device_cert(&h.issuing, &csr, "SN_7", &p, now(), serial()).unwrap();
        let (_, x) = X509Certificate::from_der(cert.der()).unwrap();
        assert_eq!(
            x.validity().not_after.to_datetime(),
            datetime!(2046-01-01 00:00:00 UTC)
        );
        // Serial with '_' falls back to UTF8String but keeps its value.
        assert_eq!(attr(&x, "2.5.4.5"), ["SN_7"]);
        let crl = x
            .get_extension_unique(&x509_parser::oid_registry::OID_X509_EXT_CRL_DISTRIBUTION_POINTS)
            .unwrap()
            .unwrap();
        assert!(!crl.critical);
        let ParsedExtension::CRLDistributionPoints(dps) = crl.parsed_extension() else {
            panic!("CRL DP did not parse");
        };
        assert_eq!(dps.points.len(), 1);
        let aia = x
            .get_extension_unique(&x509_parser::oid_registry::OID_PKIX_AUTHORITY_INFO_ACCESS)
            .unwrap()
            .unwrap();
        assert!(!aia.critical);
        let ParsedExtension::AuthorityInfoAccess(aia) = aia.parsed_extension() else {
            panic!("AIA did not parse");
        };
        assert_eq!(aia.accessdescs.len(), 1);
        assert_eq!(
            aia.accessdescs[0].access_method,
            x509_parser::oid_registry::OID_PKIX_ACCESS_DESCRIPTOR_OCSP
        );
        assert_eq!(
            aia.accessdescs[0].access_location,
            GeneralName::URI("http://ocsp.example.com")
        );
        // The chain still verifies.
        webpki_client_auth(
            &h.root,
            &[h.issuing.certificate()],
            &cert,
            now() + Duration::seconds(1),
        )
        .unwrap();
    }

    #[test]
    fn bad_parameters_are_refused() {
        let h = hierarchy();
        let csr = p256_csr();
        let mut bad_oid = profile();
        bad_oid.hw_type_oid = vec![1];
        let mut bad_url = profile();
        bad_url.crl_url = Some("file:///etc/passwd".into());
        let mut expired = profile();
        expired.not_after = Some(datetime!(2000-01-01 00:00:00 UTC));
        for (name, p, serial_str) in [
            ("oid", bad_oid, "SN1"),
            ("url", bad_url, "SN1"),
            ("notAfter before now", expired, "SN1"),
            ("empty serial", profile(), ""),
            ("long serial", profile(), &"9".repeat(65)),
        ] {
            assert!(
                matches!(
                    issue_device_cert(&h.issuing, &csr, serial_str, &p, now(), serial()),
                    Err(touchmark_pki::PkiError::InvalidParameter(_))
                ),
                "{name}"
            );
        }
    }

    #[test]
    fn webpki_accepts_device_chain_as_client_cert() {
        let h = hierarchy();
        let csr = p256_csr();
        let now = now();
        let cert = issue_device_cert(&h.issuing, &csr, "SN1", &profile(), now, serial()).unwrap();
        webpki_client_auth(
            &h.root,
            &[h.issuing.certificate()],
            &cert,
            now + Duration::seconds(1),
        )
        .unwrap();
        // And not before its notBefore.
        assert!(
            webpki_client_auth(
                &h.root,
                &[h.issuing.certificate()],
                &cert,
                now - Duration::days(1)
            )
            .is_err()
        );
        // Not from another hierarchy's root.
        let other = hierarchy();
        assert!(webpki_client_auth(&other.root, &[h.issuing.certificate()], &cert, now).is_err());
    }

    #[test]
    #[cfg_attr(
        not(tm_openssl),
        ignore = "needs openssl: install it, or set TOUCHMARK_TEST_OPENSSL"
    )]
    fn openssl_verifies_chain_from_openssl_csr() {
        let openssl = openssl();
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let h = hierarchy();
        let pem = openssl_csr(&openssl, d, "device");
        let csr = parse_csr(pem.as_bytes()).unwrap();
        let mut p = profile();
        p.crl_url = Some("http://crl.example.com/widget.crl".into());
        p.ocsp_url = Some("http://ocsp.example.com".into());
        let with_urls = issue_device_cert(&h.issuing, &csr, "SN-42", &p, now(), serial()).unwrap();
        let plain =
            issue_device_cert(&h.issuing, &csr, "SN-42", &profile(), now(), serial()).unwrap();
        std::fs::write(d.join("root.pem"), h.root.pem()).unwrap();
        std::fs::write(d.join("issuing.pem"), h.issuing.certificate().pem()).unwrap();
        std::fs::write(d.join("device.pem"), plain.pem()).unwrap();
        std::fs::write(d.join("device-urls.pem"), with_urls.pem()).unwrap();
        for device in ["device.pem", "device-urls.pem"] {
            let (ok, out) = run(
                &openssl,
                d,
                &[
                    "verify",
                    "-x509_strict",
                    "-purpose",
                    "sslclient",
                    "-CAfile",
                    "root.pem",
                    "-untrusted",
                    "issuing.pem",
                    device,
                ],
            );
            assert!(ok, "{device}: {out}");
            assert!(out.contains(": OK"), "{out}");
        }
        // The certificate's key is the one openssl generated.
        let (ok, out) = run(
            &openssl,
            d,
            &["x509", "-in", "device.pem", "-noout", "-pubkey"],
        );
        assert!(ok, "{out}");
        let (ok, out2) = run(&openssl, d, &["ec", "-in", "device.key", "-pubout"]);
        assert!(ok, "{out2}");
        assert!(out2.contains(out.trim()), "{out}\n{out2}");
        // openssl shows the hardwareModuleName.
        let (ok, text) = run(
            &openssl,
            d,
            &["x509", "-in", "device-urls.pem", "-noout", "-text"],
        );
        assert!(ok, "{text}");
        assert!(
            text.contains("Hardware Module Name") || text.contains(HMN_OID),
            "{text}"
        );
        assert!(
            text.contains("99991231235959Z") || text.contains("Dec 31 23:59:59 9999"),
            "{text}"
        );
        assert!(
            text.contains("OCSP - URI:http://ocsp.example.com"),
            "{text}"
        );
        assert!(
            text.contains("URI:http://crl.example.com/widget.crl"),
            "{text}"
        );
    }

    #[test]
    #[cfg_attr(
        not(tm_openssl),
        ignore = "needs openssl: install it, or set TOUCHMARK_TEST_OPENSSL"
    )]
    fn ca_certificates_pass_openssl_strict_checks() {
        let openssl = openssl();
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let h = hierarchy();
        std::fs::write(d.join("root.pem"), h.root.pem()).unwrap();
        std::fs::write(d.join("issuing.pem"), h.issuing.certificate().pem()).unwrap();
        let (ok, out) = run(
            &openssl,
            d,
            &[
                "verify",
                "-x509_strict",
                "-CAfile",
                "root.pem",
                "issuing.pem",
            ],
        );
        assert!(ok, "{out}");
        let (ok, out) = run(
            &openssl,
            d,
            &["verify", "-x509_strict", "-CAfile", "root.pem", "root.pem"],
        );
        assert!(ok, "{out}");
        let (ok, text) = run(
            &openssl,
            d,
            &["x509", "-in", "issuing.pem", "-noout", "-text"],
        );
        assert!(ok, "{text}");
        assert!(text.contains("CA:TRUE, pathlen:0"), "{text}");
        assert!(text.contains("Certificate Sign, CRL Sign"), "{text}");
    }

    #[test]
    fn issuance_rate() {
        let h = hierarchy();
        let csr = p256_csr();
        let p = profile();
        let n = 500;
        let start = std::time::Instant::now();
        for _ in 0..n {
            issue_device_cert(&h.issuing, &csr, "SN-1", &p, now(), serial()).unwrap();
        }
        let per_sec = n as f64 / start.elapsed().as_secs_f64();
        eprintln!("issue_device_cert: {per_sec:.0}/s (debug build)");
        assert!(per_sec > 200.0, "{per_sec}/s");
    }
}

// ---------------------------------------------------------------------------------------------
// CA issuers and server certificates.
// ---------------------------------------------------------------------------------------------
mod ca {
    use super::*;

    #[test]
    fn issuer_rejects_wrong_key_and_non_ca() {
        let h = hierarchy();
        let other: Arc<dyn Signer> =
            Arc::new(SoftwareSigner::generate(KeyAlgorithm::EcdsaP256).unwrap());
        assert!(matches!(
            CaIssuer::new(h.root.clone(), other.clone()),
            Err(touchmark_pki::PkiError::KeyMismatch)
        ));
        // A server certificate is not a CA, even with its own key.
        let server = issue_server_cert(
            &h.issuing,
            other.public_key_spki(),
            &["touchmark.example.com".into()],
            now(),
            now() + Duration::days(1),
            serial(),
        )
        .unwrap();
        assert!(matches!(
            CaIssuer::new(server, other),
            Err(touchmark_pki::PkiError::InvalidCertificate(_))
        ));
    }

    #[test]
    fn validity_must_be_ordered() {
        let key = SoftwareSigner::generate(KeyAlgorithm::EcdsaP256).unwrap();
        let t = now();
        let subject = Subject {
            organization: "O".into(),
            common_name: "CN".into(),
        };
        assert!(create_root_ca(&key, &subject, t, t, serial()).is_err());
        assert!(create_root_ca(&key, &subject, t, t - Duration::days(1), serial()).is_err());
        let empty = Subject {
            organization: String::new(),
            common_name: "CN".into(),
        };
        assert!(create_root_ca(&key, &empty, t, t + Duration::days(1), serial()).is_err());
    }

    #[test]
    fn ed25519_root_can_issue() {
        let key: Arc<dyn Signer> =
            Arc::new(SoftwareSigner::generate(KeyAlgorithm::Ed25519).unwrap());
        let subject = Subject {
            organization: "Acme".into(),
            common_name: "Ed Root".into(),
        };
        let root = create_root_ca(
            key.as_ref(),
            &subject,
            now() - Duration::hours(1),
            now() + Duration::days(365),
            serial(),
        )
        .unwrap();
        let issuer = CaIssuer::new(root.clone(), key).unwrap();
        let csr = p256_csr();
        let cert = issue_device_cert(&issuer, &csr, "SN1", &profile(), now(), serial()).unwrap();
        webpki_client_auth(&root, &[], &cert, now() + Duration::seconds(1)).unwrap();
    }

    #[test]
    #[cfg_attr(
        not(tm_openssl),
        ignore = "needs openssl: install it, or set TOUCHMARK_TEST_OPENSSL"
    )]
    fn server_cert_verifies_for_its_hosts() {
        let h = hierarchy();
        let key = SoftwareSigner::generate(KeyAlgorithm::EcdsaP256).unwrap();
        let hosts = vec!["touchmark.example.com".to_string(), "127.0.0.1".to_string()];
        let t = now();
        let cert = issue_server_cert(
            &h.issuing,
            key.public_key_spki(),
            &hosts,
            t - Duration::minutes(1),
            t + Duration::days(90),
            serial(),
        )
        .unwrap();
        let root_der = h.root.to_cert_der();
        let anchor = webpki::anchor_from_trusted_cert(&root_der).unwrap();
        let inter = [h.issuing.certificate().to_cert_der()];
        let ee_der = cert.to_cert_der();
        let ee = webpki::EndEntityCert::try_from(&ee_der).unwrap();
        ee.verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            &[anchor],
            &inter,
            UnixTime::since_unix_epoch(std::time::Duration::from_secs(t.unix_timestamp() as u64)),
            webpki::KeyUsage::server_auth(),
            None,
            None,
        )
        .unwrap();
        for host in ["touchmark.example.com", "127.0.0.1"] {
            let name = rustls_pki_types::ServerName::try_from(host).unwrap();
            ee.verify_is_valid_for_subject_name(&name).unwrap();
        }
        let other = rustls_pki_types::ServerName::try_from("evil.example.com").unwrap();
        assert!(ee.verify_is_valid_for_subject_name(&other).is_err());
        // Not a client certificate.
        assert!(webpki_client_auth(&h.root, &[h.issuing.certificate()], &cert, t).is_err());

        for bad in [vec![], vec!["bad host!".to_string()]] {
            assert!(
                issue_server_cert(
                    &h.issuing,
                    key.public_key_spki(),
                    &bad,
                    t,
                    t + Duration::days(1),
                    serial()
                )
                .is_err()
            );
        }
        assert!(
            issue_server_cert(
                &h.issuing,
                b"not an spki",
                &hosts,
                t,
                t + Duration::days(1),
                serial()
            )
            .is_err()
        );

        {
            let openssl = openssl();
            let dir = tempfile::tempdir().unwrap();
            let d = dir.path();
            std::fs::write(d.join("root.pem"), h.root.pem()).unwrap();
            std::fs::write(d.join("issuing.pem"), h.issuing.certificate().pem()).unwrap();
            std::fs::write(d.join("server.pem"), cert.pem()).unwrap();
            let (ok, out) = run(
                &openssl,
                d,
                &[
                    "verify",
                    "-x509_strict",
                    "-purpose",
                    "sslserver",
                    "-verify_hostname",
                    "touchmark.example.com",
                    "-CAfile",
                    "root.pem",
                    "-untrusted",
                    "issuing.pem",
                    "server.pem",
                ],
            );
            assert!(ok, "{out}");
        }
    }

    #[test]
    fn issuer_organization_and_hosts_are_read_back() {
        let h = hierarchy();
        let other = hierarchy();
        let issuing = h.issuing.certificate();
        assert!(issuing.is_issued_by(&h.root));
        assert!(h.root.is_issued_by(&h.root), "a root issues itself");
        assert!(!issuing.is_issued_by(issuing));
        // The same subject name under another key is not the issuer.
        assert!(!issuing.is_issued_by(&other.root));
        assert!(
            !h.station
                .certificate()
                .is_issued_by(h.issuing.certificate())
        );
        assert_eq!(
            issuing.subject_organization().as_deref(),
            Some("Acme Devices")
        );

        let key = SoftwareSigner::generate(KeyAlgorithm::EcdsaP256).unwrap();
        let hosts: Vec<String> = ["touchmark.example.com", "127.0.0.1", "::1", "localhost"]
            .map(String::from)
            .into();
        let t = now();
        let cert = issue_server_cert(
            &h.issuing,
            key.public_key_spki(),
            &hosts,
            t - Duration::minutes(1),
            t + Duration::days(90),
            serial(),
        )
        .unwrap();
        assert_eq!(cert.server_hosts().unwrap(), hosts);
        assert!(cert.is_issued_by(issuing));
        assert_eq!(cert.subject_organization(), None);
        assert_eq!(issuing.server_hosts().unwrap(), Vec::<String>::new());
    }

    #[test]
    fn certs_from_pem_reads_a_chain() {
        let h = hierarchy();
        let bundle = format!("{}{}", h.issuing.certificate().pem(), h.root.pem());
        let certs = touchmark_pki::certs_from_pem(&bundle).unwrap();
        assert_eq!(certs, vec![h.issuing.certificate().clone(), h.root.clone()]);
        assert!(Certificate::from_pem(&bundle).is_err());
        assert!(Certificate::from_der(b"\x30\x03\x02\x01\x01".to_vec()).is_err());
    }
}

// ---------------------------------------------------------------------------------------------
// Station mTLS certificates.
// ---------------------------------------------------------------------------------------------
mod station {
    use touchmark_pki::{StationCertError, verify_station_cert};

    use super::*;

    fn station_cert(h: &Hierarchy, from: OffsetDateTime, to: OffsetDateTime) -> Certificate {
        issue_station_cert(
            &h.station,
            &p256_csr(),
            "line1-st07",
            "acme-sz",
            from,
            to,
            serial(),
        )
        .unwrap()
    }

    #[test]
    #[cfg_attr(
        not(tm_openssl),
        ignore = "needs openssl: install it, or set TOUCHMARK_TEST_OPENSSL"
    )]
    fn valid_station_cert() {
        let h = hierarchy();
        let t = now();
        let cert = station_cert(&h, t - Duration::minutes(1), t + Duration::days(365));
        let id = verify_station_cert(h.station.certificate(), &[cert.to_cert_der()], t).unwrap();
        assert_eq!(id.station_id, "line1-st07");
        assert_eq!(id.factory_id, "acme-sz");
        assert_eq!(id.cert_sha256, cert.sha256());

        // Named by its subject alone, with no subjectAltName (issue 11, finding 9: the URI it
        // held was an unregistered scheme that pkilint refuses), and usage as specified.
        use x509_parser::prelude::*;
        let (_, x) = X509Certificate::from_der(cert.der()).unwrap();
        assert!(x.subject_alternative_name().unwrap().is_none());
        assert!(
            x.extensions()
                .iter()
                .all(|e| e.oid.to_id_string() != "2.5.29.17")
        );
        assert_eq!(
            x.subject().to_string(),
            "O=acme-sz, OU=touchmark-station, CN=line1-st07"
        );
        assert!(x.extended_key_usage().unwrap().unwrap().value.client_auth);
        assert!(!x.extended_key_usage().unwrap().unwrap().value.server_auth);

        {
            let openssl = openssl();
            let dir = tempfile::tempdir().unwrap();
            let d = dir.path();
            std::fs::write(d.join("root.pem"), h.root.pem()).unwrap();
            std::fs::write(d.join("station-ca.pem"), h.station.certificate().pem()).unwrap();
            std::fs::write(d.join("station.pem"), cert.pem()).unwrap();
            let (ok, out) = run(
                &openssl,
                d,
                &[
                    "verify",
                    "-x509_strict",
                    "-purpose",
                    "sslclient",
                    "-CAfile",
                    "root.pem",
                    "-untrusted",
                    "station-ca.pem",
                    "station.pem",
                ],
            );
            assert!(ok, "{out}");
        }
    }

    #[test]
    fn expired_and_not_yet_valid() {
        let h = hierarchy();
        let t = now();
        let cert = station_cert(&h, t - Duration::days(2), t - Duration::days(1));
        assert_eq!(
            verify_station_cert(h.station.certificate(), &[cert.to_cert_der()], t),
            Err(StationCertError::Expired)
        );
        let cert = station_cert(&h, t + Duration::days(1), t + Duration::days(2));
        assert_eq!(
            verify_station_cert(h.station.certificate(), &[cert.to_cert_der()], t),
            Err(StationCertError::NotYetValid)
        );
    }

    #[test]
    fn other_ca_is_unknown_issuer() {
        let h = hierarchy();
        let other = hierarchy();
        let t = now();
        let cert = station_cert(&other, t - Duration::minutes(1), t + Duration::days(1));
        assert_eq!(
            verify_station_cert(h.station.certificate(), &[cert.to_cert_der()], t),
            Err(StationCertError::UnknownIssuer)
        );
        // A CA with another name.
        let key: Arc<dyn Signer> =
            Arc::new(SoftwareSigner::generate(KeyAlgorithm::EcdsaP256).unwrap());
        let subject = Subject {
            organization: "Elsewhere".into(),
            common_name: "Other Station CA".into(),
        };
        let other_root = create_root_ca(
            key.as_ref(),
            &subject,
            t - Duration::hours(1),
            t + Duration::days(1),
            serial(),
        )
        .unwrap();
        let other_ca = CaIssuer::new(other_root, key).unwrap();
        let cert = issue_station_cert(
            &other_ca,
            &p256_csr(),
            "s1",
            "f1",
            t - Duration::minutes(1),
            t + Duration::days(1),
            serial(),
        )
        .unwrap();
        assert_eq!(
            verify_station_cert(h.station.certificate(), &[cert.to_cert_der()], t),
            Err(StationCertError::UnknownIssuer)
        );
        // A device certificate from the product CA is not a station certificate either.
        let device =
            issue_device_cert(&h.issuing, &p256_csr(), "SN1", &profile(), t, serial()).unwrap();
        assert_eq!(
            verify_station_cert(
                h.station.certificate(),
                &[device.to_cert_der()],
                t + Duration::seconds(1)
            ),
            Err(StationCertError::UnknownIssuer)
        );
    }

    #[test]
    fn server_cert_has_wrong_usage() {
        let h = hierarchy();
        let t = now();
        let key = SoftwareSigner::generate(KeyAlgorithm::EcdsaP256).unwrap();
        let server = issue_server_cert(
            &h.station,
            key.public_key_spki(),
            &["station.example.com".into()],
            t - Duration::minutes(1),
            t + Duration::days(1),
            serial(),
        )
        .unwrap();
        let err =
            verify_station_cert(h.station.certificate(), &[server.to_cert_der()], t).unwrap_err();
        assert!(
            matches!(
                err,
                StationCertError::WrongUsage | StationCertError::UnknownIssuer
            ),
            "{err:?}"
        );
        assert_eq!(err, StationCertError::WrongUsage);
    }

    #[test]
    fn malformed_chains() {
        let h = hierarchy();
        let t = now();
        assert!(matches!(
            verify_station_cert(h.station.certificate(), &[], t),
            Err(StationCertError::Malformed(_))
        ));
        assert!(matches!(
            verify_station_cert(
                h.station.certificate(),
                &[CertificateDer::from(vec![0x30, 0x00])],
                t
            ),
            Err(StationCertError::Malformed(_))
        ));
    }

    #[test]
    fn station_ids_are_checked() {
        let h = hierarchy();
        let t = now();
        for (station, factory) in [("", "f"), ("s", ""), ("a/b", "f"), ("s", "f/../x")] {
            assert!(
                issue_station_cert(
                    &h.station,
                    &p256_csr(),
                    station,
                    factory,
                    t,
                    t + Duration::days(1),
                    serial()
                )
                .is_err(),
                "{station:?} {factory:?}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Encrypted key store.
// ---------------------------------------------------------------------------------------------
mod keystore {
    use std::os::unix::fs::PermissionsExt as _;

    use touchmark_pki::{KeyStore, Passphrase, PkiError};

    use super::*;

    fn pass(s: &str) -> Passphrase {
        Passphrase::new(s.into()).unwrap()
    }

    fn verify(signer: &dyn Signer, msg: &[u8], sig: &[u8]) {
        let alg: &dyn aws_lc_rs::signature::VerificationAlgorithm = match signer.algorithm() {
            KeyAlgorithm::EcdsaP256 => &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1,
            KeyAlgorithm::Ed25519 => &aws_lc_rs::signature::ED25519,
        };
        aws_lc_rs::signature::UnparsedPublicKey::new(alg, signer.public_key_raw())
            .verify(msg, sig)
            .unwrap();
    }

    #[test]
    fn round_trip_both_algorithms() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys");
        let store = KeyStore::create(&path, &pass("correct horse")).unwrap();
        let p256 = store.generate("root-ca", KeyAlgorithm::EcdsaP256).unwrap();
        let ed = store
            .generate("log.ed25519", KeyAlgorithm::Ed25519)
            .unwrap();
        assert!(store.contains("root-ca") && store.contains("log.ed25519"));
        assert!(!store.contains("nope") && !store.contains("../x"));

        // Reopen with a fresh process-like instance.
        drop(store);
        let store = KeyStore::open(&path, &pass("correct horse")).unwrap();
        for (name, original) in [("root-ca", &p256), ("log.ed25519", &ed)] {
            let loaded = store.load(name).unwrap();
            assert_eq!(loaded.algorithm(), original.algorithm());
            assert_eq!(loaded.public_key_spki(), original.public_key_spki());
            let sig = loaded.sign(b"message").unwrap();
            verify(original.as_ref(), b"message", &sig);
        }

        // Import, and keys are never overwritten.
        let imported = SoftwareSigner::from_ed25519_seed(&[7; 32]).unwrap();
        store.import("imported", &imported).unwrap();
        assert_eq!(
            store.load("imported").unwrap().public_key_raw(),
            imported.public_key_raw()
        );
        assert!(matches!(
            store.import("imported", &imported),
            Err(PkiError::KeyExists(_))
        ));
        assert!(matches!(
            store.generate("root-ca", KeyAlgorithm::EcdsaP256),
            Err(PkiError::KeyExists(_))
        ));
        assert!(matches!(
            store.load("absent"),
            Err(PkiError::KeyNotFound(_))
        ));
        // No temporary files are left behind.
        let names: Vec<String> = std::fs::read_dir(&path)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert!(names.iter().all(|n| !n.starts_with('.')), "{names:?}");
    }

    #[test]
    fn wrong_passphrase_and_missing_store() {
        let dir = tempfile::tempdir().unwrap();
        KeyStore::create(dir.path(), &pass("one")).unwrap();
        assert!(matches!(
            KeyStore::open(dir.path(), &pass("two")),
            Err(PkiError::WrongPassphrase)
        ));
        assert!(matches!(
            KeyStore::create(dir.path(), &pass("one")),
            Err(PkiError::KeyStoreExists(_))
        ));
        let empty = tempfile::tempdir().unwrap();
        assert!(matches!(
            KeyStore::open(empty.path(), &pass("one")),
            Err(PkiError::KeyStoreMissing(_))
        ));
        assert!(matches!(
            KeyStore::open(&empty.path().join("nothing-here"), &pass("one")),
            Err(PkiError::KeyStoreMissing(_))
        ));
    }

    #[test]
    fn tampered_or_swapped_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = KeyStore::create(dir.path(), &pass("pw")).unwrap();
        store.generate("a", KeyAlgorithm::EcdsaP256).unwrap();
        store.generate("b", KeyAlgorithm::EcdsaP256).unwrap();
        let a_path = dir.path().join("a.key");
        let original = std::fs::read(&a_path).unwrap();

        // Flip each byte in turn: every position must be detected.
        for i in 0..original.len() {
            let mut bytes = original.clone();
            bytes[i] ^= 0x01;
            std::fs::write(&a_path, &bytes).unwrap();
            match store.load("a") {
                Err(PkiError::KeyFileCorrupt(name)) => assert_eq!(name, "a"),
                other => panic!("byte {i}: {other:?}"),
            }
        }
        // Truncated.
        std::fs::write(&a_path, &original[..original.len() - 1]).unwrap();
        assert!(matches!(store.load("a"), Err(PkiError::KeyFileCorrupt(_))));
        std::fs::write(&a_path, b"").unwrap();
        assert!(matches!(store.load("a"), Err(PkiError::KeyFileCorrupt(_))));
        // Swapped: b's file under a's name.
        std::fs::copy(dir.path().join("b.key"), &a_path).unwrap();
        assert!(matches!(store.load("a"), Err(PkiError::KeyFileCorrupt(_))));
        // Restored.
        std::fs::write(&a_path, &original).unwrap();
        store.load("a").unwrap();

        // Tampered KDF parameters read as a wrong passphrase.
        let meta_path = dir.path().join("keystore.json");
        let meta = std::fs::read_to_string(&meta_path).unwrap();
        std::fs::write(&meta_path, meta.replace("\"t_cost\": 2", "\"t_cost\": 3")).unwrap();
        assert!(matches!(
            KeyStore::open(dir.path(), &pass("pw")),
            Err(PkiError::WrongPassphrase)
        ));
        std::fs::write(&meta_path, "{").unwrap();
        assert!(matches!(
            KeyStore::open(dir.path(), &pass("pw")),
            Err(PkiError::KeyStoreCorrupt(_))
        ));
    }

    #[test]
    fn bad_key_names_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = KeyStore::create(dir.path(), &pass("pw")).unwrap();
        for bad in ["../x", "", "A", "a/b", ".hidden", "x\0y"] {
            assert!(
                matches!(
                    store.generate(bad, KeyAlgorithm::Ed25519),
                    Err(PkiError::InvalidKeyName(_))
                ),
                "{bad:?}"
            );
            assert!(matches!(store.load(bad), Err(PkiError::InvalidKeyName(_))));
        }
        assert!(!dir.path().parent().unwrap().join("x.key").exists());
    }

    #[test]
    fn file_modes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store");
        let store = KeyStore::create(&path, &pass("pw")).unwrap();
        store.generate("k", KeyAlgorithm::EcdsaP256).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o700);
        assert_eq!(mode(&path.join("keystore.json")), 0o600);
        assert_eq!(mode(&path.join("k.key")), 0o600);
    }

    #[test]
    fn passphrase_is_redacted() {
        assert_eq!(format!("{:?}", pass("s3cret")), "Passphrase(<redacted>)");
        assert!(matches!(
            Passphrase::new(String::new()),
            Err(PkiError::EmptyPassphrase)
        ));
    }
}

// ---------------------------------------------------------------------------------------------
// Signers.
// ---------------------------------------------------------------------------------------------
mod signer {
    use base64::Engine as _;

    use super::*;

    #[test]
    fn ed25519_seed_matches_known_public_key() {
        let seed: [u8; 32] = std::array::from_fn(|i| i as u8);
        let s = SoftwareSigner::from_ed25519_seed(&seed).unwrap();
        let mut tagged = vec![0x01];
        tagged.extend_from_slice(s.public_key_raw());
        assert_eq!(
            base64::engine::general_purpose::STANDARD.encode(tagged),
            "AQOhB7/zzhC+HXDdGOdLwJln5NYwm6UNXx3chmQSVTG4"
        );
    }

    #[test]
    #[cfg_attr(
        not(tm_openssl),
        ignore = "needs openssl: install it, or set TOUCHMARK_TEST_OPENSSL"
    )]
    fn pkcs8_pem_is_readable_by_openssl() {
        let openssl = openssl();
        let dir = tempfile::tempdir().unwrap();
        for alg in [KeyAlgorithm::EcdsaP256, KeyAlgorithm::Ed25519] {
            let s = SoftwareSigner::generate(alg).unwrap();
            std::fs::write(dir.path().join("k.pem"), s.pkcs8_pem().as_bytes()).unwrap();
            let (ok, out) = run(
                &openssl,
                dir.path(),
                &[
                    "pkey", "-in", "k.pem", "-pubout", "-outform", "DER", "-out", "p.der",
                ],
            );
            assert!(ok, "{out}");
            assert_eq!(
                std::fs::read(dir.path().join("p.der")).unwrap(),
                s.public_key_spki()
            );
        }
    }
}
