//! Tests of `audit verify` and `audit export` against logs built here with touchmark-tlog and
//! real canonical events, then changed one byte or one tree at a time.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use time::OffsetDateTime;
use touchmark_core::code::ErrorCode;
use touchmark_core::event::{Actor, Event, EventBody, Sha256Hash};
use touchmark_core::{FactoryId, OrderId, ProductId, Serial, StationId};
use touchmark_tlog::checkpoint::{Checkpoint, SignedCheckpoint};
use touchmark_tlog::hash::leaf_hash;
use touchmark_tlog::note::NoteSigner;
use touchmark_tlog::tile::{Tile, TileBuilder, encode_bundle, new_entry_bundles, tiles_for_size};

use super::*;

const ORIGIN: &str = "audit.test/log";

/// An error with its chain of causes, as the command line shows it.
fn chain(error: &Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn silent() -> Arc<dyn Progress> {
    Arc::new(Silent)
}

fn signer() -> NoteSigner {
    NoteSigner::from_seed(ORIGIN, &[7; 32]).unwrap()
}

fn at(seconds: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_800_000_000 + seconds).unwrap()
}

fn created(order: &str, quota: u64) -> Event {
    Event::new(
        at(0),
        EventBody::OrderCreated {
            order: OrderId::parse(order).unwrap(),
            product: ProductId::parse("sensor").unwrap(),
            factory: FactoryId::parse("acme").unwrap(),
            quota,
            serial_rule: "any".into(),
            not_before: None,
            not_after: None,
            actor: Actor::System,
        },
    )
}

/// Unit `n`'s issuance, with its own key and its own test record.
fn issued(order: &str, n: u64) -> Event {
    let mut test = [3u8; 32];
    test[..8].copy_from_slice(&n.to_be_bytes());
    issued_with_test(order, n, Sha256Hash(test))
}

fn issued_with_test(order: &str, n: u64, test_sha256: Sha256Hash) -> Event {
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&n.to_be_bytes());
    Event::new(
        at(1),
        EventBody::UnitIssued {
            order: OrderId::parse(order).unwrap(),
            product: ProductId::parse("sensor").unwrap(),
            factory: FactoryId::parse("acme").unwrap(),
            station: StationId::parse("line-1").unwrap(),
            serial: Serial::parse(&format!("SN-{n:06}")).unwrap(),
            cert_sha256: Sha256Hash(key),
            pubkey_sha256: Sha256Hash(key),
            test_sha256,
            release: None,
            firmware_sha256: None,
        },
    )
}

fn refused(order: &str, reason: ErrorCode) -> Event {
    Event::new(
        at(2),
        EventBody::UnitRefused {
            order: OrderId::parse(order).unwrap(),
            factory: Some(FactoryId::parse("acme").unwrap()),
            station: StationId::parse("line-1").unwrap(),
            serial: Some(Serial::parse("SN-999999").unwrap()),
            pubkey_sha256: None,
            test_sha256: None,
            reason,
        },
    )
}

fn failed(order: &str, n: u64) -> Event {
    Event::new(
        at(3),
        EventBody::TestFailed {
            order: OrderId::parse(order).unwrap(),
            factory: FactoryId::parse("acme").unwrap(),
            station: StationId::parse("line-2").unwrap(),
            serial: Serial::parse(&format!("SN-{n:06}")).unwrap(),
            pubkey_sha256: None,
            test_sha256: Sha256Hash([4; 32]),
            reason: ErrorCode::TestFailed,
        },
    )
}

fn bytes(events: &[Event]) -> Vec<Vec<u8>> {
    events
        .iter()
        .map(|e| e.canonical_bytes().unwrap())
        .collect()
}

/// The story of design.md §12 in small: an order of 3, three units, a failed test, a refusal.
fn story() -> Vec<Vec<u8>> {
    bytes(&[
        created("PO-1", 3),
        issued("PO-1", 1),
        failed("PO-1", 2),
        issued("PO-1", 2),
        issued("PO-1", 3),
        refused("PO-1", ErrorCode::QuotaExhausted),
        refused("PO-1", ErrorCode::QuotaExhausted),
    ])
}

/// Writes a tiled log of `entries` into `dir`, as a server would serve it at that size, and
/// returns its signed checkpoint.
fn build(dir: &Path, entries: &[Vec<u8>]) -> SignedCheckpoint {
    let write = |path: &str, data: &[u8]| {
        let path = dir.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, data).unwrap();
    };
    let mut builder = TileBuilder::new();
    for e in entries {
        for (tile, contents) in builder.append(leaf_hash(e)).unwrap() {
            write(&tile.path(), &contents);
        }
    }
    for (tile, contents) in builder.partial_tiles().unwrap() {
        write(&tile.path(), &contents);
    }
    let size = entries.len() as u64;
    for bundle in new_entry_bundles(0, size).unwrap() {
        let start = (bundle.index() * 256) as usize;
        let end = start + usize::from(bundle.width());
        write(
            &bundle.path(),
            &encode_bundle(&entries[start..end]).unwrap(),
        );
    }
    let checkpoint = Checkpoint::new(ORIGIN, size, builder.root()).unwrap();
    let signed = SignedCheckpoint::sign(checkpoint, &signer()).unwrap();
    write("checkpoint", signed.note().as_bytes());
    write("key", format!("{}\n", signer().verifier()).as_bytes());
    signed
}

struct Case {
    _tmp: tempfile::TempDir,
    root: PathBuf,
}

impl Case {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_owned();
        Self { _tmp: tmp, root }
    }

    fn log(&self, name: &str, entries: &[Vec<u8>]) -> PathBuf {
        let dir = self.root.join(name);
        build(&dir, entries);
        dir
    }

    fn args(&self, source: &Path) -> Audit {
        Audit {
            source: Source::new(
                &source.display().to_string(),
                self.root.join("no-data/certs/root-ca.pem"),
            ),
            key: signer().verifier(),
            state: self.root.join("audit.state"),
            cache: None,
        }
    }

    async fn verify(&self, source: &Path) -> Result<Report, Error> {
        let report = verify(&self.args(source), silent()).await?;
        report.verdict()?;
        Ok(report)
    }

    async fn fails(&self, source: &Path) -> String {
        match self.verify(source).await {
            Ok(report) => panic!("verification passed: {report:?}"),
            Err(e) => chain(&e),
        }
    }
}

fn flip(path: &Path, offset: usize) {
    let mut data = std::fs::read(path).unwrap();
    data[offset] ^= 0x01;
    std::fs::write(path, data).unwrap();
}

#[tokio::test]
async fn a_good_log_passes_with_the_per_order_report_and_again_when_up_to_date() {
    let case = Case::new();
    let dir = case.log("log", &story());
    let report = case.verify(&dir).await.unwrap();
    assert_eq!(report.checkpoint.size, 7);
    assert_eq!(report.events, 7);
    assert!(report.previous.is_none());
    let order = &report.orders["PO-1"];
    assert_eq!(order.quota_history, vec![3]);
    assert_eq!(order.issued, 3);
    assert_eq!(order.failed_tests, 1);
    assert_eq!(order.refusals["quota_exhausted"], 2);
    // The state now holds the verified checkpoint, verbatim.
    let state = std::fs::read_to_string(case.root.join("audit.state")).unwrap();
    assert_eq!(
        state,
        std::fs::read_to_string(dir.join("checkpoint")).unwrap()
    );
    // Up to date: the same checkpoint again passes, compared with itself.
    let again = case.verify(&dir).await.unwrap();
    assert_eq!(again.previous.as_ref().unwrap().size, 7);
    // JSON carries the whole report.
    let json = serde_json::to_value(&again).unwrap();
    assert_eq!(json["orders"]["PO-1"]["issued"], 3);
    assert_eq!(json["violations"], serde_json::json!([]));
}

#[tokio::test]
async fn a_changed_entry_byte_is_named_by_index() {
    let case = Case::new();
    let dir = case.log("log", &story());
    let bundle = dir.join("tile/entries/000.p/7");
    // Entry 0 is `len ‖ bytes`; entry 1 starts after it. Change a byte inside entry 1's JSON.
    let first = story()[0].len();
    flip(&bundle, 2 + first + 2 + 10);
    let error = case.fails(&dir).await;
    assert!(
        error.contains("entry 1 (in tile/entries/000.p/7) was changed"),
        "{error}"
    );
    assert!(
        !case.root.join("audit.state").exists(),
        "a bad log must not update the state"
    );
}

#[tokio::test]
async fn a_changed_bundle_length_is_named_by_path() {
    let case = Case::new();
    let dir = case.log("log", &story());
    flip(&dir.join("tile/entries/000.p/7"), 1);
    let error = case.fails(&dir).await;
    assert!(
        error.contains("entry bundle tile/entries/000.p/7"),
        "{error}"
    );
}

#[tokio::test]
async fn a_changed_hash_tile_byte_is_named_by_path() {
    let case = Case::new();
    let dir = case.log("log", &story());
    flip(&dir.join("tile/0/000.p/7"), 5 * 32 + 3);
    let error = case.fails(&dir).await;
    assert!(
        error.contains("hash tile tile/0/000.p/7 was changed"),
        "{error}"
    );
    assert!(error.contains("entry 5"), "{error}");
}

#[tokio::test]
async fn a_changed_checkpoint_byte_or_another_key_fails() {
    let case = Case::new();
    let dir = case.log("log", &story());
    let note = std::fs::read_to_string(dir.join("checkpoint")).unwrap();
    // In the size line: 7 becomes 6.
    flip(&dir.join("checkpoint"), ORIGIN.len() + 1);
    let error = case.fails(&dir).await;
    assert!(error.contains("bad checkpoint"), "{error}");
    // In the signature.
    std::fs::write(dir.join("checkpoint"), &note).unwrap();
    flip(&dir.join("checkpoint"), note.len() - 10);
    let error = case.fails(&dir).await;
    assert!(error.contains("bad checkpoint"), "{error}");
    // A log signed by a key other than the one the auditor was given.
    std::fs::write(dir.join("checkpoint"), &note).unwrap();
    let mut args = case.args(&dir);
    args.key = NoteSigner::from_seed(ORIGIN, &[8; 32]).unwrap().verifier();
    let error = chain(&verify(&args, silent()).await.unwrap_err());
    assert!(error.contains("bad checkpoint"), "{error}");
    // The key may come from a file.
    let file = case.root.join("key.txt");
    std::fs::write(&file, format!("{}\n", signer().verifier())).unwrap();
    args.key = verifier_key(&format!("@{}", file.display())).unwrap();
    verify(&args, silent()).await.unwrap().verdict().unwrap();
}

#[tokio::test]
async fn a_truncated_log_fails_after_the_bigger_one_was_seen() {
    let case = Case::new();
    let all = story();
    case.verify(&case.log("big", &all)).await.unwrap();
    let small = case.log("small", &all[..5]);
    let error = case.fails(&small).await;
    assert!(error.contains("truncation"), "{error}");
    // The state still holds the bigger checkpoint.
    let state = std::fs::read_to_string(case.root.join("audit.state")).unwrap();
    assert!(state.contains("\n7\n"), "{state}");
}

#[tokio::test]
async fn a_fork_of_the_same_or_a_smaller_size_fails() {
    let case = Case::new();
    let all = story();
    let mut other = all.clone();
    other[6] = refused("PO-1", ErrorCode::KeyReused)
        .canonical_bytes()
        .unwrap();

    // Same size, another tree.
    case.verify(&case.log("fork-same", &other)).await.unwrap();
    let good = case.log("good", &all);
    let error = case.fails(&good).await;
    assert!(error.contains("fork"), "{error}");

    // A smaller tree that the log does not extend.
    std::fs::remove_file(case.root.join("audit.state")).unwrap();
    let mut smaller = all[..4].to_vec();
    smaller[2] = failed("PO-1", 77).canonical_bytes().unwrap();
    case.verify(&case.log("fork-small", &smaller))
        .await
        .unwrap();
    let error = case.fails(&good).await;
    assert!(error.contains("fork: the log's tree at size 4"), "{error}");

    // A smaller tree that the log does extend passes, and moves the state forward.
    std::fs::remove_file(case.root.join("audit.state")).unwrap();
    case.verify(&case.log("prefix", &all[..4])).await.unwrap();
    let report = case.verify(&good).await.unwrap();
    assert_eq!(report.previous.unwrap().size, 4);
}

#[tokio::test]
async fn issuing_beyond_the_quota_is_a_violation_naming_the_entry() {
    let case = Case::new();
    let mut events = story();
    events.insert(5, issued("PO-1", 4).canonical_bytes().unwrap());
    let dir = case.log("log", &events);
    let error = case.fails(&dir).await;
    assert!(
        error.contains("entry 5: order PO-1: unit SN-000004 is issuance 4, beyond the quota of 3"),
        "{error}"
    );
    // The tree itself verified, so the state moves on: the violation stays in the log.
    assert!(case.root.join("audit.state").exists());
    let report = verify(&case.args(&dir), silent()).await.unwrap();
    assert_eq!(report.orders["PO-1"].issued, 4);
    assert_eq!(report.violations.len(), 1);
    assert_eq!(report.violations[0].index, Some(5));
    assert_eq!(report.violations[0].kind, ViolationKind::Replay);
}

#[tokio::test]
async fn a_replayed_test_record_in_an_old_log_is_a_violation_and_refusals_of_clones_are_listed() {
    let case = Case::new();
    let mut events = story();
    // A log written before replayed records were refused: unit 402 issued with unit 400's record.
    let record = Sha256Hash([0x40; 32]);
    events.push(
        issued_with_test("PO-2", 400, record)
            .canonical_bytes()
            .unwrap(),
    );
    events.push(
        issued_with_test("PO-2", 402, record)
            .canonical_bytes()
            .unwrap(),
    );
    // And one written since: the replay refused, with the other clone-class refusals.
    for reason in [
        ErrorCode::TestRecordMismatch,
        ErrorCode::TestRecordReused,
        ErrorCode::SerialConflict,
        ErrorCode::KeyReused,
    ] {
        events.push(refused("PO-1", reason).canonical_bytes().unwrap());
    }
    events.insert(7, created("PO-2", 10).canonical_bytes().unwrap());
    let dir = case.log("log", &events);
    let report = verify(&case.args(&dir), silent()).await.unwrap();
    assert_eq!(report.violations.len(), 1, "{:?}", report.violations);
    let v = &report.violations[0];
    assert_eq!((v.kind, v.index), (ViolationKind::Replay, Some(9)));
    assert!(
        v.message.contains("SN-000402")
            && v.message.contains("SN-000400 of product sensor (entry 8)"),
        "{}",
        v.message
    );
    let error = chain(&report.verdict().unwrap_err());
    assert!(error.contains("a replayed test record"), "{error}");

    let suspects: Vec<(u64, ErrorCode)> = report
        .suspects
        .iter()
        .map(|s| (s.index, s.reason))
        .collect();
    assert_eq!(
        suspects,
        vec![
            (10, ErrorCode::TestRecordMismatch),
            (11, ErrorCode::TestRecordReused),
            (12, ErrorCode::SerialConflict),
            (13, ErrorCode::KeyReused),
        ]
    );
    assert_eq!(report.suspects[0].station.as_str(), "line-1");
    assert_eq!(
        report.suspects[0].serial.as_ref().unwrap().as_str(),
        "SN-999999"
    );
    // The story's own refusals (quota) are not clone suspects.
    assert_eq!(report.orders["PO-1"].refusals["quota_exhausted"], 2);
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["suspects"][1]["reason"], "test_record_reused");
}

#[tokio::test]
async fn refusal_flood_alerts_verify_and_are_reported_per_station() {
    let case = Case::new();
    let flood = |count, end| {
        Event::new(
            at(70),
            EventBody::RefusalFlood {
                station: StationId::parse("line-9").unwrap(),
                factory: FactoryId::parse("acme").unwrap(),
                reason: ErrorCode::StationRevoked,
                count,
                window_start: touchmark_core::clock::format_timestamp(at(0)),
                window_end: touchmark_core::clock::format_timestamp(at(end)),
            },
        )
    };
    let mut events = story();
    events.push(flood(297, 60).canonical_bytes().unwrap());
    let dir = case.log("log", &events);
    let report = case.verify(&dir).await.unwrap();
    assert!(report.violations.is_empty(), "{:?}", report.violations);
    let station = &report.refusal_floods["line-9"];
    assert_eq!(station.floods, 1);
    assert_eq!(station.limited_refusals["station_revoked"], 297);
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(
        json["refusal_floods"]["line-9"]["limited_refusals"]["station_revoked"],
        297
    );
    // An alert that counts nothing is malformed, and named by its entry.
    events.push(flood(0, 60).canonical_bytes().unwrap());
    let dir = case.log("bad", &events);
    let error = case.fails(&dir).await;
    assert!(
        error.contains("entry 8: the refusal flood alert for station line-9 is malformed"),
        "{error}"
    );
}

#[tokio::test]
async fn a_non_canonical_entry_is_a_bad_entry_naming_its_index_only() {
    let case = Case::new();
    let mut events = story();
    let spaced = String::from_utf8(events[3].clone())
        .unwrap()
        .replacen(',', ", ", 1);
    events[3] = spaced.into_bytes();
    let dir = case.log("log", &events);
    let report = verify(&case.args(&dir), silent()).await.unwrap();
    assert_eq!(report.violations.len(), 1, "{:?}", report.violations);
    assert_eq!(report.violations[0].kind, ViolationKind::BadEntry);
    let error = chain(&report.verdict().unwrap_err());
    assert!(
        error.contains("entry 3 (in tile/entries/000.p/7) is not a canonical event"),
        "{error}"
    );
}

/// 600 entries: two full tiles and a partial one at level 0, a partial tile at level 1.
fn many() -> Vec<Vec<u8>> {
    let mut events = vec![created("PO-9", 1000)];
    events.extend((1..600).map(|n| {
        if n % 3 == 0 {
            failed("PO-9", n)
        } else {
            issued("PO-9", n)
        }
    }));
    bytes(&events)
}

#[tokio::test]
async fn a_log_over_several_tiles_and_levels() {
    let case = Case::new();
    let all = many();
    let expected: Vec<String> = tiles_for_size(600).iter().map(Tile::path).collect();
    assert_eq!(
        expected,
        [
            "tile/0/000",
            "tile/0/001",
            "tile/0/002.p/88",
            "tile/1/000.p/2"
        ]
    );
    // Consistency from sizes on and off tile boundaries.
    for old in [300, 512] {
        std::fs::remove_file(case.root.join("audit.state")).ok();
        case.verify(&case.log(&format!("at-{old}"), &all[..old]))
            .await
            .unwrap();
        let report = case.verify(&case.log("all", &all)).await.unwrap();
        assert_eq!(report.previous.unwrap().size, old as u64);
        assert_eq!(report.orders["PO-9"].issued, 400);
        assert_eq!(report.orders["PO-9"].failed_tests, 199);
    }
    let dir = case.root.join("all");
    for (tile, offset) in [("tile/1/000.p/2", 40), ("tile/0/001", 8000)] {
        let path = dir.join(tile);
        flip(&path, offset);
        let error = case.fails(&dir).await;
        assert!(error.contains(&format!("hash tile {tile}")), "{error}");
        flip(&path, offset);
    }
    std::fs::remove_file(dir.join("tile/0/000")).unwrap();
    let error = case.fails(&dir).await;
    assert!(
        error.contains("hash tile tile/0/000 cannot be read"),
        "{error}"
    );
}

#[tokio::test]
async fn export_then_verify_offline_and_verify_through_a_cache() {
    let case = Case::new();
    let server = case.log("server", &many());
    let out = case.root.join("export");
    let remote = Remote::Dir(server.clone());
    export_from(&out, &remote, silent()).await.unwrap();
    assert_eq!(
        std::fs::read_to_string(out.join("log-verifier.txt")).unwrap(),
        format!("{}\n", signer().verifier())
    );
    let report = case.verify(&out).await.unwrap();
    assert_eq!(report.checkpoint.size, 600);
    // A second export into the same directory is refused.
    let error = export_from(&out, &remote, silent())
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("not empty"), "{error}");

    // Verifying "over the network": tiles land in the cache, next to the state file.
    std::fs::remove_file(case.root.join("audit.state")).unwrap();
    let remote_args = case.args(Path::new("https://unused.invalid"));
    for _ in 0..2 {
        let report = verify_from(&remote_args, Some(Remote::Dir(server.clone())), silent())
            .await
            .unwrap();
        report.verdict().unwrap();
    }
    let cache = case.root.join("audit.state.d");
    assert!(cache.join("tile/entries/001").is_file());
    // A corrupted full tile in the cache is found (and named) like a served one.
    flip(&cache.join("tile/0/001"), 100);
    let error = chain(
        &verify_from(&remote_args, Some(Remote::Dir(server)), silent())
            .await
            .unwrap()
            .verdict()
            .unwrap_err(),
    );
    assert!(error.contains("hash tile tile/0/001"), "{error}");
}

#[test]
fn base_urls_must_be_plain_https() {
    assert_eq!(
        remote::base_url("https://log.example:8443/").unwrap(),
        "https://log.example:8443"
    );
    for bad in [
        "http://log.example",
        "https://user:pw@log.example",
        "https://log.example/?q=1",
        "log.example",
    ] {
        assert!(remote::base_url(bad).is_err(), "{bad}");
    }
}

#[tokio::test]
async fn a_url_needs_a_readable_root_ca() {
    let case = Case::new();
    let mut args = case.args(Path::new("https://log.example"));
    let error = chain(&verify(&args, silent()).await.unwrap_err());
    assert!(error.contains("cannot read the root CA"), "{error}");
    let ca = case.root.join("ca.pem");
    std::fs::write(&ca, "not a certificate").unwrap();
    args.source = Source::Https {
        url: "https://log.example".into(),
        root_ca: ca,
    };
    let error = chain(&verify(&args, silent()).await.unwrap_err());
    assert!(error.contains("no certificate"), "{error}");
}

#[test]
fn a_unit_receipt_proves_its_issuance_with_the_key_alone() {
    use touchmark_tlog::proof::Receipt;
    use touchmark_tlog::tree;

    let entries = story();
    let leaves: Vec<_> = entries.iter().map(|e| leaf_hash(e)).collect();
    let checkpoint = Checkpoint::new(ORIGIN, leaves.len() as u64, tree::root(&leaves)).unwrap();
    let signed = SignedCheckpoint::sign(checkpoint, &signer()).unwrap();
    // Entry 1 is the issuance of SN-000001.
    let text = Receipt::new(1, tree::inclusion_proof(&leaves, 1).unwrap(), &signed).to_text();
    let receipt = UnitReceipt::parse(&text).unwrap();
    assert_eq!(receipt.index(), 1);
    let verified = receipt
        .verify(&entries[1], "SN-000001", &signer().verifier())
        .unwrap();
    assert_eq!(verified.size(), 7);
    // Another unit's serial, another entry, another key: each is refused.
    let error = receipt
        .verify(&entries[1], "SN-000002", &signer().verifier())
        .unwrap_err();
    assert!(
        chain(&error).contains("is not the issuance of SN-000002"),
        "{}",
        chain(&error)
    );
    assert!(matches!(
        receipt.verify(&entries[3], "SN-000002", &signer().verifier()),
        Err(Error::ReceiptInvalid(_))
    ));
    let other = NoteSigner::from_seed(ORIGIN, &[8; 32]).unwrap().verifier();
    assert!(matches!(
        receipt.verify(&entries[1], "SN-000001", &other),
        Err(Error::ReceiptInvalid(_))
    ));
    assert!(matches!(
        UnitReceipt::parse("not a receipt"),
        Err(Error::Receipt(_))
    ));
}
