//! What callers hand to the store and what it hands back.

use time::OffsetDateTime;
use touchmark_core::code::ErrorCode;
use touchmark_core::entity::Role;
use touchmark_core::event::{Event, EventBody, Sha256Hash};
use touchmark_core::{FactoryId, OrderId, ProductId, Serial, StationId, TokenId};

/// Where an event landed in the log: its index and leaf hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Receipt {
    /// The event's index in the log, from 0. `None` while the entry waits for the sequencer: a
    /// backend shared by several replicas (PostgreSQL) commits entries without an index, and the
    /// elected sequencer gives them their indices in batches, within a second.
    pub index: Option<u64>,
    /// SHA-256(0x00 ‖ canonical bytes).
    pub leaf_hash: Sha256Hash,
}

/// An event as stored: its index, canonical bytes and leaf hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    /// The index in the log.
    pub index: u64,
    /// The `type` tag, for filtering without parsing.
    pub kind: String,
    /// The canonical bytes (the log leaf).
    pub bytes: Vec<u8>,
    /// SHA-256(0x00 ‖ bytes).
    pub leaf_hash: Sha256Hash,
}

/// A new API token. Only the secret's SHA-256 is stored.
#[derive(Debug, Clone)]
pub struct NewToken {
    /// The public id.
    pub id: TokenId,
    /// SHA-256 of the secret.
    pub secret_sha256: Sha256Hash,
    /// What it may do.
    pub role: Role,
    /// A note for humans.
    pub label: String,
    /// When it is created.
    pub at: OffsetDateTime,
}

/// One test attempt, kept whatever its outcome.
#[derive(Debug, Clone)]
pub struct TestAttempt {
    /// The order's product.
    pub product: ProductId,
    /// The order named in the request.
    pub order: OrderId,
    /// The station that tested.
    pub station: StationId,
    /// The unit's serial, when it was well formed.
    pub serial: Option<Serial>,
    /// `pass`, `fail`, `error` or `aborted`.
    pub verdict: String,
    /// `touchmark` or `openhtf`.
    pub format: String,
    /// SHA-256 of the normalized record.
    pub sha256: Sha256Hash,
    /// The normalized record, JSON.
    pub record_json: String,
    /// When it was received.
    pub at: OffsetDateTime,
}

/// A device certificate signed and ready to be recorded.
#[derive(Debug, Clone)]
pub struct NewCertificate {
    /// DER.
    pub der: Vec<u8>,
    /// SHA-256 of the DER.
    pub sha256: Sha256Hash,
    /// The certificate's serial number, hex.
    pub serial_hex: String,
}

/// Everything needed to commit one issuance: checks 6 to 8 of DESIGN §4 run inside the
/// transaction, and either the issuance or the refusal is recorded with its event.
#[derive(Debug, Clone)]
pub struct IssueRequest {
    /// When the request was decided.
    pub at: OffsetDateTime,
    /// The order counted against.
    pub order: OrderId,
    /// The order's product.
    pub product: ProductId,
    /// The station's factory.
    pub factory: FactoryId,
    /// The station.
    pub station: StationId,
    /// The unit.
    pub serial: Serial,
    /// SHA-256 of the device's SubjectPublicKeyInfo.
    pub pubkey_sha256: Sha256Hash,
    /// The signed certificate.
    pub certificate: NewCertificate,
    /// The passing test attempt.
    pub test: TestAttempt,
}

impl IssueRequest {
    /// The `unit.issued` event that records this issuance.
    pub fn issued_event(&self) -> Event {
        Event::new(
            self.at,
            EventBody::UnitIssued {
                order: self.order.clone(),
                product: self.product.clone(),
                factory: self.factory.clone(),
                station: self.station.clone(),
                serial: self.serial.clone(),
                cert_sha256: self.certificate.sha256,
                pubkey_sha256: self.pubkey_sha256,
                test_sha256: self.test.sha256,
            },
        )
    }

    /// The `unit.refused` event that records its refusal, decided inside the transaction.
    pub fn refused_event(&self, reason: ErrorCode) -> Event {
        Event::new(
            self.at,
            EventBody::UnitRefused {
                order: self.order.clone(),
                factory: Some(self.factory.clone()),
                station: self.station.clone(),
                serial: Some(self.serial.clone()),
                pubkey_sha256: Some(self.pubkey_sha256),
                test_sha256: Some(self.test.sha256),
                reason,
            },
        )
    }
}

/// A unit's issued certificate, with the receipt of its issuance event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedUnit {
    /// The order it was counted against.
    pub order: OrderId,
    /// The product.
    pub product: ProductId,
    /// The unit's serial.
    pub serial: Serial,
    /// The station that provisioned it.
    pub station: StationId,
    /// The certificate, DER.
    pub cert_der: Vec<u8>,
    /// SHA-256 of the certificate.
    pub cert_sha256: Sha256Hash,
    /// SHA-256 of the public key.
    pub pubkey_sha256: Sha256Hash,
    /// When it was issued.
    pub issued_at: OffsetDateTime,
    /// The issuance event's place in the log.
    pub receipt: Receipt,
}

/// The result of [`crate::Store::issue`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IssueOutcome {
    /// Counted, recorded and logged now.
    Issued(IssuedUnit),
    /// The same serial, key and order were issued before: the same certificate, nothing consumed.
    AlreadyIssued(IssuedUnit),
    /// Refused by a check inside the transaction; the refusal is logged and nothing is counted.
    Refused {
        /// `serial_conflict`, `key_reused`, `quota_exhausted`, `order_not_open` or `station_revoked`.
        code: ErrorCode,
        /// What was wrong.
        message: String,
        /// The refusal event's place in the log.
        receipt: Receipt,
    },
}

/// A refused request or failed test to record: its event, and the test attempt if one was read.
#[derive(Debug, Clone)]
pub struct Rejection {
    /// The `unit.refused` or `unit.test_failed` event.
    pub event: Event,
    /// The test attempt, when the record was valid.
    pub attempt: Option<TestAttempt>,
    /// For a failed test: the unit to record as failed, unless it is already provisioned.
    pub failed_unit: Option<(ProductId, Serial)>,
}

/// A unit's status (DESIGN §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnitStatus {
    /// Tested and failed; consumed no quota.
    FailedTest,
    /// Counted and certified.
    Provisioned,
    /// Certified, then revoked.
    Revoked,
}

impl UnitStatus {
    /// The status as stored and sent.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::FailedTest => "failed_test",
            Self::Provisioned => "provisioned",
            Self::Revoked => "revoked",
        }
    }

    /// Parses a stored status.
    pub fn from_str_opt(text: &str) -> Option<Self> {
        [Self::FailedTest, Self::Provisioned, Self::Revoked]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

/// A unit as listed: its status and, once provisioned, its certificate's hash.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct UnitSummary {
    /// The product.
    pub product: ProductId,
    /// The serial.
    pub serial: Serial,
    /// The order it was last tested or counted under.
    pub order: OrderId,
    /// Its status.
    pub status: UnitStatus,
    /// The station that last handled it.
    pub station: Option<StationId>,
    /// SHA-256 of its certificate, once provisioned.
    pub cert_sha256: Option<Sha256Hash>,
    /// Number of test attempts kept for it.
    pub test_attempts: u64,
}

/// Counts for one order, as the database holds them.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct OrderCounts {
    /// Certificates issued (equals the order's `issued` column).
    pub issued: u64,
    /// Certificates stored for the order.
    pub certificates: u64,
    /// `unit.issued` events for the order.
    pub issued_events: u64,
    /// Failed test attempts.
    pub failed_tests: u64,
    /// Refusals, by code.
    pub refusals: std::collections::BTreeMap<String, u64>,
}

/// The audit log's signed state: the latest checkpoint and the sequencer's tree state at it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogState {
    /// The tree size the checkpoint covers.
    pub size: u64,
    /// The tree's root.
    pub root: Sha256Hash,
    /// The signed checkpoint note, verbatim.
    pub note: String,
    /// The serialized incremental tree state (`touchmark_tlog::tile::TileBuilder::to_bytes`).
    pub tree: Vec<u8>,
}

/// A hash tile's contents at some checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogTile {
    /// The tile level.
    pub level: u8,
    /// The tile index.
    pub index: u64,
    /// The hashes, concatenated (32 bytes each; fewer than 256 for a partial tile).
    pub data: Vec<u8>,
}

/// The right to sequence the log, granted by the store to one holder at a time (DESIGN §10).
///
/// The epoch grows every time the lease changes hands. Every write the sequencer makes names
/// its lease, and the store refuses it ([`crate::StoreError::Fenced`]) once another holder has
/// taken over, so a paused or partitioned former sequencer can never write over its successor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SequencerLease {
    /// Who holds it: a name unique to one server process.
    pub holder: String,
    /// The lease's generation.
    pub epoch: u64,
}
