//! What callers hand to the store and what it hands back.
//!
//! A store records; it never decides. Every event arrives built: from the authority for a
//! creation, and from a rule of `touchmark_core::policy` for a change that depends on what is
//! stored (an issuance, an order's or a station's change), which the store runs on the rows it
//! holds under its lock, through a [`Rule`] or `policy::issue::decide`.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use time::OffsetDateTime;
use touchmark_core::Clock;
use touchmark_core::code::Refusal;
use touchmark_core::entity::{Role, UnitStatus};
use touchmark_core::event::{Event, EventBody, Logged, Sha256Hash};
use touchmark_core::policy::issue::Issuance;
use touchmark_core::testrecord::{RecordFormat, Verdict};
use touchmark_core::{OrderId, ProductId, Serial, StationId, TokenId};
use touchmark_tlog::Hash;

use crate::StoreError;

/// A store's database connections at one moment, as `/metrics` shows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStatus {
    /// Connections open now, idle or in use.
    pub open: u32,
    /// Of those, idle.
    pub idle: u32,
    /// The most the pool opens.
    pub max: u32,
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
    /// SHA-256(0x00 ‖ bytes), as stored.
    pub leaf_hash: Hash,
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

/// One test record as received with a provisioning request, kept whatever its outcome. Which
/// unit, order and station it belongs to comes from the request it arrives with.
#[derive(Debug, Clone)]
pub struct TestAttempt {
    /// The record's verdict.
    pub verdict: Verdict,
    /// The shape it was sent in.
    pub format: RecordFormat,
    /// SHA-256 of the normalized record.
    pub sha256: Sha256Hash,
    /// The normalized record: canonical JSON text.
    pub record: String,
    /// When it was received.
    pub at: OffsetDateTime,
}

/// A device certificate signed and ready to be recorded.
#[derive(Debug, Clone)]
pub struct NewCertificate {
    /// DER.
    pub der: Vec<u8>,
    /// The certificate's serial number, hex.
    pub serial_hex: String,
}

/// Everything needed to commit one issuance. Inside its transaction the store reads the
/// [`touchmark_core::policy::issue::IssueFacts`], with the time by [`IssueRequest::now`], and
/// `policy::issue::decide` says whether it is a retry, a refusal (with its event) or an
/// issuance, recorded with [`IssueRequest::event`].
///
/// The event is the issuance's own `unit.issued` event, made by [`IssueRequest::new`], so what
/// is stored and what is logged cannot disagree.
#[derive(Debug, Clone)]
pub struct IssueRequest {
    pub(crate) issuance: Issuance,
    pub(crate) event: Event,
    pub(crate) certificate: NewCertificate,
    pub(crate) test: TestAttempt,
    firmware: Option<touchmark_core::firmware::UnitFirmware>,
    clock: Arc<dyn Clock>,
}

impl IssueRequest {
    /// The request to record `issuance`, its signed `certificate` and its passing `test`; the
    /// store decides it at the time `clock` tells inside its transaction (the authority's
    /// clock).
    pub fn new(
        issuance: Issuance,
        certificate: NewCertificate,
        test: TestAttempt,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            event: issuance.issued_event(),
            issuance,
            certificate,
            test,
            firmware: None,
            clock,
        }
    }

    /// The same request, delivering the unit its own image of the order's release: the wrap
    /// is stored with the certificate, and the `unit.issued` event names the release and the
    /// image's SHA-256.
    pub fn with_firmware(mut self, firmware: touchmark_core::firmware::UnitFirmware) -> Self {
        self.event = self
            .issuance
            .issued_event_delivering(Some((&firmware.release, firmware.image_sha256)));
        self.firmware = Some(firmware);
        self
    }

    /// The unit's firmware, when its order has a release.
    pub fn firmware(&self) -> Option<&touchmark_core::firmware::UnitFirmware> {
        self.firmware.as_ref()
    }

    /// The time now, by the authority's clock: what a store reads inside its transaction, with
    /// the other facts, so that check 2 judges the order's window when the issuance commits,
    /// not when the request arrived.
    pub fn now(&self) -> OffsetDateTime {
        self.clock.now()
    }

    /// The clock the request is decided by.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// The issuance, as checks 1 to 5 left it: what checks 6 to 8 decide on.
    pub fn issuance(&self) -> &Issuance {
        &self.issuance
    }

    /// Its `unit.issued` event.
    pub fn event(&self) -> &Event {
        &self.event
    }

    /// The signed certificate.
    pub fn certificate(&self) -> &NewCertificate {
        &self.certificate
    }

    /// The passing test record.
    pub fn test(&self) -> &TestAttempt {
        &self.test
    }

    /// The parts, to build a changed request from.
    pub fn into_parts(self) -> (Issuance, NewCertificate, TestAttempt) {
        (self.issuance, self.certificate, self.test)
    }
}

/// A unit's issued certificate, with where its issuance was logged.
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
    pub logged: Logged,
}

/// The result of an issuance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IssueOutcome {
    /// Counted, recorded and logged now.
    Issued(IssuedUnit),
    /// The same serial, key and order were issued before: the same certificate, nothing consumed.
    AlreadyIssued(IssuedUnit),
    /// Refused by a check inside the transaction; the refusal is logged and nothing is counted.
    Refused {
        /// The code and message the rule gave.
        refusal: Refusal,
        /// Where the refusal was logged.
        logged: Logged,
    },
}

/// A refused request or a failed test to record: its event, and the test record if one was
/// read. Counts nothing.
#[derive(Debug, Clone)]
pub struct Rejection {
    /// The `unit.refused` or `unit.test_failed` event.
    pub event: Event,
    /// The order's product; `None` when the order does not exist (`order_not_found`). The
    /// test record is kept only with a product: a request against an unknown order leaves its
    /// event alone.
    pub product: Option<ProductId>,
    /// The order named in the request.
    pub order: OrderId,
    /// The station that asked.
    pub station: StationId,
    /// The serial, when it was well formed.
    pub serial: Option<Serial>,
    /// The test record, when the request carried a valid one.
    pub test: Option<TestAttempt>,
    /// Whether the unit is recorded as failed: a failed test of a well-formed serial, with its
    /// record. A failed test never downgrades a provisioned unit.
    pub failed_unit: bool,
}

/// The closure inside a [`Rule`].
type RuleFn<T, C> = dyn FnOnce(&T) -> Result<C, Refusal> + Send;

/// A rule applied to a record (`T`) as stored, under the store's lock: the change (`C`) to
/// make, with its event, or why not. The authority builds it from a function of
/// `touchmark_core::policy` (`Rule<Order, OrderChange>` from `policy::order`,
/// `Rule<Station, StationChange>` from `policy::station`); the store only runs it and applies
/// what it returns.
pub struct Rule<T, C>(Box<RuleFn<T, C>>);

impl<T, C> Rule<T, C> {
    /// Wraps `rule`.
    pub fn new(rule: impl FnOnce(&T) -> Result<C, Refusal> + Send + 'static) -> Self {
        Self(Box::new(rule))
    }

    /// Runs the rule on `record`.
    ///
    /// # Errors
    /// [`StoreError::Refused`] with the rule's refusal.
    pub fn apply(self, record: &T) -> Result<C, StoreError> {
        (self.0)(record).map_err(StoreError::Refused)
    }
}

impl<T, C> fmt::Debug for Rule<T, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Rule")
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
    pub refusals: BTreeMap<String, u64>,
}

impl OrderCounts {
    /// Adds the `unit.refused` events among `events` (canonical bytes) to the refusals by
    /// code: the one place where a store's refusal rows are read back as events.
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] when stored bytes are not a canonical event.
    pub fn count_refusals<'a>(
        &mut self,
        events: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<(), StoreError> {
        for bytes in events {
            let event = Event::from_canonical(bytes)
                .map_err(|e| StoreError::Corrupt(format!("a stored event: {e}")))?;
            if let EventBody::UnitRefused { reason, .. } = event.body {
                *self.refusals.entry(reason.as_str().to_owned()).or_default() += 1;
            }
        }
        Ok(())
    }
}

/// The audit log's signed state: the latest checkpoint and the sequencer's tree state at it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogState {
    /// The tree size the checkpoint covers.
    pub size: u64,
    /// The tree's root.
    pub root: Hash,
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

/// The right to sequence the log, granted by the store to one holder at a time (design.md §10).
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

/// A revocation applied: what changed, and where its event was logged (`None` when it was
/// already in force and nothing changed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revoked {
    /// The change the rule returned.
    pub change: touchmark_core::policy::revocation::RevocationChange,
    /// Its event's place in the log.
    pub logged: Option<Logged>,
}

/// A revoked certificate, as a CRL lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevokedCertificate {
    /// The order it was counted against.
    pub order: OrderId,
    /// The unit's serial.
    pub serial: Serial,
    /// The certificate's serial number, hex.
    pub cert_serial_hex: String,
    /// SHA-256 of the certificate.
    pub cert_sha256: Sha256Hash,
    /// Why and when.
    pub revoked: touchmark_core::policy::revocation::RevokedAt,
}

/// A revoked issuing CA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevokedCa {
    /// The product whose CA it is.
    pub product: ProductId,
    /// Why and when.
    pub revoked: touchmark_core::policy::revocation::RevokedAt,
}

/// A timestamp truncated to the millisecond: what every backend stores, so that a value read
/// back equals the value written, and a retry reads back what the first call returned.
pub fn to_millis(at: OffsetDateTime) -> OffsetDateTime {
    at.replace_nanosecond(u32::from(at.millisecond()) * 1_000_000)
        .unwrap_or(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_kept_to_the_millisecond() {
        let at = time::macros::datetime!(2026-03-01 08:00:00.123_456_789 UTC);
        assert_eq!(
            to_millis(at),
            time::macros::datetime!(2026-03-01 08:00:00.123 UTC)
        );
    }
}
