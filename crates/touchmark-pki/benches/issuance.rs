//! `cargo bench -p touchmark-pki`: the issuance work of one unit without any I/O — parse and
//! check its CSR, then build and sign its 802.1AR certificate — and the raw ECDSA P-256 sign
//! and verify rates it is bounded by. Plain timing, no harness: each figure is the median of
//! several one-second runs on one thread.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use time::OffsetDateTime;
use touchmark_pki::{
    CaIssuer, DeviceProfile, KeyAlgorithm, SerialNumber, Signer, SoftwareSigner, Subject,
    build_csr, create_intermediate_ca, create_root_ca, issue_device_cert, parse_csr,
};

const RUNS: usize = 5;

/// Runs `f` repeatedly for about a second, `RUNS` times; returns the median rate per second.
fn rate(name: &str, mut f: impl FnMut(u64)) {
    let mut rates = Vec::new();
    for _ in 0..RUNS {
        let start = Instant::now();
        let mut n = 0u64;
        while start.elapsed() < Duration::from_secs(1) {
            for _ in 0..64 {
                f(n);
                n += 1;
            }
        }
        rates.push(n as f64 / start.elapsed().as_secs_f64());
    }
    rates.sort_by(f64::total_cmp);
    let median = rates[RUNS / 2];
    println!(
        "{name:<40} {median:>10.0} /s  {:>8.1} µs each",
        1e6 / median
    );
}

fn main() {
    let now = OffsetDateTime::now_utc();
    let root_key = SoftwareSigner::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let subject = |cn: &str| Subject {
        organization: "Bench".into(),
        common_name: cn.into(),
    };
    let root = create_root_ca(
        &root_key,
        &subject("Root"),
        now,
        now + time::Duration::days(365),
        SerialNumber::random(&mut rand::rng()),
    )
    .unwrap();
    let root = CaIssuer::new(root, std::sync::Arc::new(root_key)).unwrap();
    let issuing_key = SoftwareSigner::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let issuing = create_intermediate_ca(
        &root,
        issuing_key.public_key_spki(),
        &subject("Issuing"),
        now,
        now + time::Duration::days(365),
        SerialNumber::random(&mut rand::rng()),
    )
    .unwrap();
    let issuer = CaIssuer::new(issuing, std::sync::Arc::new(issuing_key)).unwrap();
    let profile = DeviceProfile {
        organization: "Bench".into(),
        common_name: "Bench Sensor".into(),
        hw_type_oid: vec![1, 3, 6, 1, 4, 1, 99999, 1],
        crl_url: None,
        ocsp_url: None,
        not_after: None,
    };
    let units: Vec<Vec<u8>> = (0..256)
        .map(|i| {
            let key = SoftwareSigner::generate(KeyAlgorithm::EcdsaP256).unwrap();
            build_csr(&key, &format!("SN-{i:06}")).unwrap()
        })
        .collect();
    let message = [7u8; 64];
    let signer = SoftwareSigner::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let signature = signer.sign(&message).unwrap();
    let public = aws_lc_rs::signature::UnparsedPublicKey::new(
        &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1,
        signer.public_key_raw().to_vec(),
    );

    println!("one thread, median of {RUNS} runs of ~1 s");
    rate("ECDSA P-256 sign", |_| {
        black_box(signer.sign(black_box(&message)).unwrap());
    });
    rate("ECDSA P-256 verify", |_| {
        public
            .verify(black_box(&message), black_box(&signature))
            .unwrap();
    });
    rate("CSR parse + signature check", |n| {
        black_box(parse_csr(&units[n as usize % units.len()]).unwrap());
    });
    rate("CSR -> 802.1AR certificate (no I/O)", |n| {
        let csr = parse_csr(&units[n as usize % units.len()]).unwrap();
        let serial = SerialNumber::random(&mut rand::rng());
        black_box(issue_device_cert(&issuer, &csr, "SN-000001", &profile, now, serial).unwrap());
    });
}
