//! design.md §4: the eight checks of one provisioning request, in order, and the events that record
//! its outcome.
//!
//! The authority runs checks 1 to 5 on what it read before any transaction: the station, the
//! order, the serial, the CSR (check 4 belongs to `touchmark-pki`) and the test record (its
//! verdict, and that it names this unit). The storage backend then reads [`IssueFacts`] under
//! its locks, with the time by the authority's clock at that moment, and calls [`decide`],
//! which runs checks 1 and 2 again on the rows as committed and at that time (a station revoked,
//! an order closed or its window ended a moment ago), then 6, 7, 8 (a test record that already
//! issued another unit) and 9 (the quota), as `docs/design.md` numbers them. Both sides call the same
//! functions, so a refusal reads the same wherever it was decided. The backend's conditional
//! count (`issued < quota`) stays in SQL, as the race guard behind check 9, and so does a
//! unique index on the test record's hash behind check 8.

use time::OffsetDateTime;

use crate::code::{ErrorCode, Refusal};
use crate::entity::{Station, StationStatus};
use crate::event::{Event, EventBody, Sha256Hash};
use crate::id::{FactoryId, OrderId, ProductId, StationId};
use crate::order::{Order, OrderState};
use crate::serial::{Serial, SerialError, SerialRule};
use crate::testrecord::TestRecord;

/// Check 1, on the station's status alone: enrolled and not revoked. `None` is a station the
/// store does not know.
///
/// # Errors
/// `station_revoked` or `station_not_authorized`.
pub fn station_may_act(id: &StationId, status: Option<StationStatus>) -> Result<(), Refusal> {
    match status {
        Some(StationStatus::Active) => Ok(()),
        Some(StationStatus::Revoked) => Err(Refusal::new(
            ErrorCode::StationRevoked,
            format!("station {id} is revoked"),
        )),
        Some(StationStatus::Pending) => Err(Refusal::new(
            ErrorCode::StationNotAuthorized,
            format!("station {id} has not enrolled"),
        )),
        None => Err(Refusal::new(
            ErrorCode::StationNotAuthorized,
            format!("station {id} is unknown"),
        )),
    }
}

/// Check 1: the station is enrolled, not revoked, and of the order's factory.
///
/// # Errors
/// `station_revoked` or `station_not_authorized`.
pub fn check_station(station: &Station, order: &Order) -> Result<(), Refusal> {
    station_may_act(&station.id, Some(station.status))?;
    if station.factory != order.factory {
        return Err(Refusal::new(
            ErrorCode::StationNotAuthorized,
            format!(
                "station {} belongs to factory {}, not to order {}'s factory",
                station.id, station.factory, order.id
            ),
        ));
    }
    Ok(())
}

/// What check 2 and the quota check read of an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderFacts {
    /// Where the order is in its life.
    pub state: OrderState,
    /// Units counted so far.
    pub issued: u64,
    /// Units it may count.
    pub quota: u64,
    /// Start of its window, if any.
    pub not_before: Option<OffsetDateTime>,
    /// End of its window, if any.
    pub not_after: Option<OffsetDateTime>,
}

impl From<&Order> for OrderFacts {
    fn from(order: &Order) -> Self {
        Self {
            state: order.state,
            issued: order.issued,
            quota: order.quota,
            not_before: order.not_before,
            not_after: order.not_after,
        }
    }
}

/// Check 2: the order is open and `now` is inside its window.
///
/// # Errors
/// `order_not_open` or `order_expired`.
pub fn order_accepts(id: &OrderId, order: &OrderFacts, now: OffsetDateTime) -> Result<(), Refusal> {
    if order.state != OrderState::Open {
        return Err(Refusal::new(
            ErrorCode::OrderNotOpen,
            format!("order {id} is {}, not open", order.state),
        ));
    }
    if order.not_before.is_some_and(|t| now < t) {
        return Err(Refusal::new(
            ErrorCode::OrderExpired,
            format!("order {id} does not accept units before its window opens"),
        ));
    }
    if order.not_after.is_some_and(|t| now > t) {
        return Err(Refusal::new(
            ErrorCode::OrderExpired,
            format!("order {id} stopped accepting units when its window closed"),
        ));
    }
    Ok(())
}

/// Check 2's refusal of an order that does not exist.
pub fn order_not_found(id: &OrderId) -> Refusal {
    Refusal::new(
        ErrorCode::OrderNotFound,
        format!("order {id} does not exist"),
    )
}

/// Check 3: the serial parses and fits the order's range or pattern.
///
/// # Errors
/// `serial_out_of_range`, with a message saying whether it is malformed or outside the rule.
pub fn check_serial(raw: &str, rule: &SerialRule) -> Result<Serial, Refusal> {
    let refuse = |e: SerialError| Refusal::new(ErrorCode::SerialOutOfRange, e.to_string());
    let serial = Serial::parse(raw).map_err(refuse)?;
    rule.check(&serial).map_err(refuse)?;
    Ok(serial)
}

/// What OpenHTF writes as the DUT id of a test started without one.
const OPENHTF_NO_DUT: &str = "UNKNOWN_DUT";

/// Check 5: the test record is this unit's, and its verdict is pass.
///
/// The record must name the unit's serial (Touchmark's `serial`, OpenHTF's `dut_id`): a record
/// that names another unit, or none, says nothing about this one, and accepting it would let one
/// passing record stand in for any number of units (issue 11, finding 5). So the identity is
/// checked first, and a record of another unit is refused whatever its verdict.
///
/// # Errors
/// `test_record_mismatch` when the record names no serial or another one; `test_failed`,
/// naming the first failing step when the record says which.
pub fn check_test(record: &TestRecord, serial: &Serial) -> Result<(), Refusal> {
    match record.serial.as_deref() {
        Some(named) if named == serial.as_str() => {}
        Some(OPENHTF_NO_DUT) | None => {
            return Err(Refusal::new(
                ErrorCode::TestRecordMismatch,
                format!(
                    "the test record names no unit; it must name serial {serial} (`serial` in \
                     Touchmark's shape, the DUT id in OpenHTF's)"
                ),
            ));
        }
        Some(named) => {
            return Err(Refusal::new(
                ErrorCode::TestRecordMismatch,
                format!(
                    "the test record is of unit {}, not of {serial}; a record of another unit is a \
                     clone suspect",
                    crate::clock::truncate(named, 64)
                ),
            ));
        }
    }
    if record.passed() {
        return Ok(());
    }
    let detail = record
        .failure_summary()
        .unwrap_or_else(|| format!("verdict {}", record.verdict.as_str()));
    Err(Refusal::new(
        ErrorCode::TestFailed,
        format!("the unit failed its test: {detail}"),
    ))
}

/// Who asks and when: what every event of one provisioning request carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// When the request was decided.
    pub at: OffsetDateTime,
    /// The order named in the request.
    pub order: OrderId,
    /// The station's factory.
    pub factory: FactoryId,
    /// The station.
    pub station: StationId,
}

impl Attempt {
    /// The `unit.refused` event of a request refused with `code`, with what was known of the
    /// unit by then.
    pub fn refused(
        &self,
        code: ErrorCode,
        serial: Option<&Serial>,
        pubkey_sha256: Option<Sha256Hash>,
        test_sha256: Option<Sha256Hash>,
    ) -> Event {
        Event::new(
            self.at,
            EventBody::UnitRefused {
                order: self.order.clone(),
                factory: Some(self.factory.clone()),
                station: self.station.clone(),
                serial: serial.cloned(),
                pubkey_sha256,
                test_sha256,
                reason: code,
            },
        )
    }

    /// The `unit.test_failed` event of check 5.
    pub fn test_failed(
        &self,
        serial: &Serial,
        pubkey_sha256: Sha256Hash,
        test_sha256: Sha256Hash,
    ) -> Event {
        Event::new(
            self.at,
            EventBody::TestFailed {
                order: self.order.clone(),
                factory: self.factory.clone(),
                station: self.station.clone(),
                serial: serial.clone(),
                pubkey_sha256: Some(pubkey_sha256),
                test_sha256,
                reason: ErrorCode::TestFailed,
            },
        )
    }
}

/// A request that passed checks 1 to 5 and whose certificate is signed: what checks 6 to 8
/// decide on, and what its events record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issuance {
    /// Who asks and when.
    pub attempt: Attempt,
    /// The order's product.
    pub product: ProductId,
    /// The unit's serial.
    pub serial: Serial,
    /// SHA-256 of the device's SubjectPublicKeyInfo.
    pub pubkey_sha256: Sha256Hash,
    /// SHA-256 of the signed certificate (DER).
    pub cert_sha256: Sha256Hash,
    /// SHA-256 of the normalized test record.
    pub test_sha256: Sha256Hash,
}

impl Issuance {
    /// The `unit.issued` event that records this issuance.
    pub fn issued_event(&self) -> Event {
        self.issued_event_delivering(None)
    }

    /// The `unit.issued` event that records this issuance and, when its order has a release,
    /// the delivery of the unit's own image: the release's id and the image's SHA-256.
    pub fn issued_event_delivering(&self, firmware: Option<(&str, Sha256Hash)>) -> Event {
        let a = &self.attempt;
        Event::new(
            a.at,
            EventBody::UnitIssued {
                order: a.order.clone(),
                product: self.product.clone(),
                factory: a.factory.clone(),
                station: a.station.clone(),
                serial: self.serial.clone(),
                cert_sha256: self.cert_sha256,
                pubkey_sha256: self.pubkey_sha256,
                test_sha256: self.test_sha256,
                release: firmware.map(|(release, _)| release.to_owned()),
                firmware_sha256: firmware.map(|(_, sha256)| sha256),
            },
        )
    }

    /// The `unit.refused` event of this issuance refused with `code`, decided at `at`.
    pub fn refused_event(&self, code: ErrorCode, at: OffsetDateTime) -> Event {
        let attempt = Attempt {
            at,
            ..self.attempt.clone()
        };
        attempt.refused(
            code,
            Some(&self.serial),
            Some(self.pubkey_sha256),
            Some(self.test_sha256),
        )
    }
}

/// The certificate already issued for the request's product and serial.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExistingCertificate {
    /// The order it was counted against.
    pub order: OrderId,
    /// SHA-256 of the key it certifies.
    pub pubkey_sha256: Sha256Hash,
}

/// What a storage backend read, under its locks, for one issuance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssueFacts {
    /// The time by the authority's clock when the facts were read, inside the transaction that
    /// commits the decision: check 2's window is judged at this time, not when the request
    /// arrived (signing, and the wait for the writer, come in between).
    pub now: OffsetDateTime,
    /// The station's status; `None` if the station is unknown.
    pub station: Option<StationStatus>,
    /// The order; `None` if it is unknown.
    pub order: Option<OrderFacts>,
    /// The certificate already issued for the product and serial, if any.
    pub existing: Option<ExistingCertificate>,
    /// The serial the request's public key is already certified for, if any.
    pub key_bound_to: Option<Serial>,
    /// The serial of the unit, of any product, already issued with the request's test record
    /// (the same SHA-256), if any.
    pub test_used_by: Option<Serial>,
    /// What of the request is revoked (`policy::revocation`): the product's issuing CA, or the
    /// certificate already issued for the serial. `None` when nothing is.
    pub revoked: Option<RevokedScope>,
}

/// What a revocation that refuses an issuance covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevokedScope {
    /// The certificate already issued for the serial is revoked (or on hold): its serial stays
    /// taken.
    Unit,
    /// The product's issuing CA is revoked: it issues nothing more.
    Ca,
}

/// What [`decide`] concluded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// The same serial, key and order were issued before (I2): answer with that certificate;
    /// nothing is counted or recorded.
    AlreadyIssued,
    /// A check failed: record `event`, count nothing, and answer `refusal`.
    Refuse {
        /// The stable code and its message.
        refusal: Refusal,
        /// The `unit.refused` event that records it.
        event: Box<Event>,
    },
    /// Every check passed: count the unit and record [`Issuance::issued_event`].
    Proceed,
}

/// Checks 1 and 2 again, at the time the facts were read, then 6 to 9, on what the store holds
/// (design.md §4, numbered as in `docs/design.md`). A refusal's event carries the time it was
/// decided.
pub fn decide(facts: &IssueFacts, issuance: &Issuance) -> Decision {
    match check_facts(facts, issuance) {
        Ok(decision) => decision,
        Err(refusal) => Decision::Refuse {
            event: Box::new(issuance.refused_event(refusal.code, facts.now)),
            refusal,
        },
    }
}

fn check_facts(facts: &IssueFacts, issuance: &Issuance) -> Result<Decision, Refusal> {
    let attempt = &issuance.attempt;
    // 1 again: a station revoked a moment ago is refused at once.
    station_may_act(&attempt.station, facts.station)?;
    // 2 again: the order may have closed, or its window ended, since the request was read.
    let order = facts
        .order
        .as_ref()
        .ok_or_else(|| order_not_found(&attempt.order))?;
    order_accepts(&attempt.order, order, facts.now)?;
    // A revoked CA issues nothing.
    if facts.revoked == Some(RevokedScope::Ca) {
        return Err(Refusal::new(
            ErrorCode::CaRevoked,
            format!("product {}'s issuing CA is revoked", issuance.product),
        ));
    }
    // 6, and the retry of I2: a serial already certified.
    if let Some(existing) = &facts.existing {
        if existing.pubkey_sha256 == issuance.pubkey_sha256 && existing.order == attempt.order {
            // A revoked unit's retry gets no certificate: its serial stays taken.
            if facts.revoked == Some(RevokedScope::Unit) {
                return Err(Refusal::new(
                    ErrorCode::UnitRevoked,
                    format!(
                        "unit {} is revoked; its serial cannot be provisioned again",
                        issuance.serial
                    ),
                ));
            }
            return Ok(Decision::AlreadyIssued);
        }
        return Err(Refusal::new(
            ErrorCode::SerialConflict,
            format!(
                "serial {} is already provisioned with another key or order; this unit is a clone suspect",
                issuance.serial
            ),
        ));
    }
    // 7: the key bound to another serial.
    if let Some(other) = &facts.key_bound_to {
        return Err(Refusal::new(
            ErrorCode::KeyReused,
            format!(
                "this public key is already bound to serial {other}; the secure element is a clone suspect"
            ),
        ));
    }
    // 8: the test record already issued another unit: a replay. A retry of the same unit with
    // the same record was answered above.
    if let Some(other) = &facts.test_used_by {
        return Err(Refusal::new(
            ErrorCode::TestRecordReused,
            format!(
                "this test record was already used to issue serial {other}; a replayed record is a clone suspect"
            ),
        ));
    }
    // 9: quota left. The store's conditional count guards the race behind this check.
    if order.issued >= order.quota {
        return Err(Refusal::new(
            ErrorCode::QuotaExhausted,
            format!("order {} has no quota left", attempt.order),
        ));
    }
    Ok(Decision::Proceed)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]

    use time::macros::datetime;

    use super::*;

    const NOW: OffsetDateTime = datetime!(2026-06-01 12:00 UTC);

    fn sha(text: &str) -> Sha256Hash {
        Sha256Hash::of(text.as_bytes())
    }

    fn issuance() -> Issuance {
        Issuance {
            attempt: Attempt {
                at: NOW,
                order: OrderId::parse("PO-1").unwrap(),
                factory: FactoryId::parse("fab").unwrap(),
                station: StationId::parse("line-1").unwrap(),
            },
            product: ProductId::parse("sensor").unwrap(),
            serial: Serial::parse("SN-1").unwrap(),
            pubkey_sha256: sha("key"),
            cert_sha256: sha("cert"),
            test_sha256: sha("test"),
        }
    }

    fn open_order() -> OrderFacts {
        OrderFacts {
            state: OrderState::Open,
            issued: 4,
            quota: 5,
            not_before: Some(datetime!(2026-01-01 0:00 UTC)),
            not_after: Some(datetime!(2026-12-31 0:00 UTC)),
        }
    }

    fn facts() -> IssueFacts {
        IssueFacts {
            now: NOW,
            station: Some(StationStatus::Active),
            order: Some(open_order()),
            existing: None,
            key_bound_to: None,
            test_used_by: None,
            revoked: None,
        }
    }

    /// Each case changes one fact of an issuance that would otherwise proceed.
    #[test]
    fn decide_refuses_at_the_first_failing_check() {
        type Edit = fn(&mut IssueFacts);
        let cases: [(&str, Edit, Option<ErrorCode>); 23] = [
            ("everything holds", |_| {}, None),
            (
                "station revoked",
                |f| f.station = Some(StationStatus::Revoked),
                Some(ErrorCode::StationRevoked),
            ),
            (
                "station pending",
                |f| f.station = Some(StationStatus::Pending),
                Some(ErrorCode::StationNotAuthorized),
            ),
            (
                "station unknown",
                |f| f.station = None,
                Some(ErrorCode::StationNotAuthorized),
            ),
            (
                "order unknown",
                |f| f.order = None,
                Some(ErrorCode::OrderNotFound),
            ),
            (
                "order closed",
                |f| f.order.as_mut().unwrap().state = OrderState::Closed,
                Some(ErrorCode::OrderNotOpen),
            ),
            (
                "order cancelled",
                |f| f.order.as_mut().unwrap().state = OrderState::Cancelled,
                Some(ErrorCode::OrderNotOpen),
            ),
            (
                "window closed",
                |f| f.order.as_mut().unwrap().not_after = Some(datetime!(2026-05-31 0:00 UTC)),
                Some(ErrorCode::OrderExpired),
            ),
            (
                "window not yet open",
                |f| f.order.as_mut().unwrap().not_before = Some(datetime!(2026-07-01 0:00 UTC)),
                Some(ErrorCode::OrderExpired),
            ),
            (
                // The request arrived inside the window (NOW), the facts are read after it closed.
                "window closed by the time the facts are read",
                |f| f.now = datetime!(2027-01-01 0:00 UTC),
                Some(ErrorCode::OrderExpired),
            ),
            (
                // And the other way round: the window is judged at the time of the facts only.
                "window open by the time the facts are read",
                |f| {
                    f.order.as_mut().unwrap().not_before = Some(datetime!(2026-06-01 12:00:01 UTC));
                    f.now = datetime!(2026-06-01 12:00:01 UTC);
                },
                None,
            ),
            (
                "test record issued another unit",
                |f| f.test_used_by = Some(Serial::parse("SN-9").unwrap()),
                Some(ErrorCode::TestRecordReused),
            ),
            (
                "a serial conflict wins over a reused test record",
                |f| {
                    f.existing = Some(ExistingCertificate {
                        order: OrderId::parse("PO-1").unwrap(),
                        pubkey_sha256: sha("another key"),
                    });
                    f.test_used_by = Some(Serial::parse("SN-1").unwrap());
                },
                Some(ErrorCode::SerialConflict),
            ),
            (
                "serial issued with another key",
                |f| {
                    f.existing = Some(ExistingCertificate {
                        order: OrderId::parse("PO-1").unwrap(),
                        pubkey_sha256: sha("another key"),
                    })
                },
                Some(ErrorCode::SerialConflict),
            ),
            (
                "serial issued under another order",
                |f| {
                    f.existing = Some(ExistingCertificate {
                        order: OrderId::parse("PO-2").unwrap(),
                        pubkey_sha256: sha("key"),
                    })
                },
                Some(ErrorCode::SerialConflict),
            ),
            (
                "key bound to another serial",
                |f| f.key_bound_to = Some(Serial::parse("SN-9").unwrap()),
                Some(ErrorCode::KeyReused),
            ),
            (
                "a reused key wins over a reused test record",
                |f| {
                    f.key_bound_to = Some(Serial::parse("SN-9").unwrap());
                    f.test_used_by = Some(Serial::parse("SN-8").unwrap());
                },
                Some(ErrorCode::KeyReused),
            ),
            (
                "a reused test record wins over no quota",
                |f| {
                    f.test_used_by = Some(Serial::parse("SN-8").unwrap());
                    f.order.as_mut().unwrap().issued = 5;
                },
                Some(ErrorCode::TestRecordReused),
            ),
            (
                "no quota left",
                |f| f.order.as_mut().unwrap().issued = 5,
                Some(ErrorCode::QuotaExhausted),
            ),
            (
                "a revoked station wins over no quota",
                |f| {
                    f.station = Some(StationStatus::Revoked);
                    f.order.as_mut().unwrap().issued = 5;
                },
                Some(ErrorCode::StationRevoked),
            ),
            (
                "issuing CA revoked",
                |f| f.revoked = Some(RevokedScope::Ca),
                Some(ErrorCode::CaRevoked),
            ),
            (
                "a closed order wins over a revoked CA",
                |f| {
                    f.revoked = Some(RevokedScope::Ca);
                    f.order.as_mut().unwrap().state = OrderState::Closed;
                },
                Some(ErrorCode::OrderNotOpen),
            ),
            (
                "a revoked unit's retry",
                |f| {
                    f.existing = Some(ExistingCertificate {
                        order: OrderId::parse("PO-1").unwrap(),
                        pubkey_sha256: sha("key"),
                    });
                    f.revoked = Some(RevokedScope::Unit);
                },
                Some(ErrorCode::UnitRevoked),
            ),
        ];
        let issuance = issuance();
        for (name, edit, want) in cases {
            let mut f = facts();
            edit(&mut f);
            match (decide(&f, &issuance), want) {
                (Decision::Proceed, None) => {}
                (Decision::Refuse { refusal, event }, Some(code)) => {
                    assert_eq!(refusal.code, code, "{name}");
                    // Logged at the time it was decided.
                    assert_eq!(*event, issuance.refused_event(code, f.now), "{name}");
                    assert!(!refusal.message.is_empty(), "{name}");
                }
                (got, want) => panic!("{name}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn the_same_serial_key_and_order_is_a_retry() {
        let mut f = facts();
        f.existing = Some(ExistingCertificate {
            order: OrderId::parse("PO-1").unwrap(),
            pubkey_sha256: sha("key"),
        });
        // Its test record is the one it was issued with: no reuse.
        f.test_used_by = Some(Serial::parse("SN-1").unwrap());
        // Even with no quota left: a retry consumes nothing, so it needs nothing.
        f.order.as_mut().unwrap().issued = 5;
        assert_eq!(decide(&f, &issuance()), Decision::AlreadyIssued);
        // But never for a station revoked since.
        f.station = Some(StationStatus::Revoked);
        assert!(matches!(
            decide(&f, &issuance()),
            Decision::Refuse { refusal, .. } if refusal.code == ErrorCode::StationRevoked
        ));
    }

    #[test]
    fn order_windows_are_inclusive_and_states_other_than_open_refuse() {
        let id = OrderId::parse("PO-1").unwrap();
        let mut order = open_order();
        assert!(order_accepts(&id, &order, datetime!(2026-01-01 0:00 UTC)).is_ok());
        assert!(order_accepts(&id, &order, datetime!(2026-12-31 0:00 UTC)).is_ok());
        for state in [OrderState::Draft, OrderState::Closed, OrderState::Cancelled] {
            order.state = state;
            let refusal = order_accepts(&id, &order, NOW).unwrap_err();
            assert_eq!(refusal.code, ErrorCode::OrderNotOpen, "{state}");
            assert!(refusal.message.contains(state.as_str()), "{state}");
        }
    }

    /// A record in Touchmark's shape naming `serial` (or none), passing or not.
    fn record(serial: Option<&str>, pass: bool) -> TestRecord {
        let mut v = serde_json::json!({
            "verdict": if pass { "pass" } else { "fail" },
            "started_at": "2026-06-01T11:00:00Z",
            "ended_at": "2026-06-01T11:00:30Z",
            "steps": [{ "name": "rf", "outcome": if pass { "pass" } else { "fail" }, "measurements": [] }]
        });
        if let Some(serial) = serial {
            v["serial"] = serial.into();
        }
        TestRecord::parse(&v).unwrap()
    }

    #[test]
    fn a_test_record_must_be_the_units_own_before_its_verdict_counts() {
        let unit = Serial::parse("SN-000402").unwrap();
        let cases: [(&str, Option<&str>, bool, Option<ErrorCode>); 7] = [
            ("names the unit and passes", Some("SN-000402"), true, None),
            (
                "names the unit and fails",
                Some("SN-000402"),
                false,
                Some(ErrorCode::TestFailed),
            ),
            (
                "names another unit",
                Some("SN-000400"),
                true,
                Some(ErrorCode::TestRecordMismatch),
            ),
            (
                "names another unit and fails: not this unit's failure",
                Some("SN-000400"),
                false,
                Some(ErrorCode::TestRecordMismatch),
            ),
            (
                "names no unit",
                None,
                true,
                Some(ErrorCode::TestRecordMismatch),
            ),
            (
                "OpenHTF's placeholder for no DUT id",
                Some("UNKNOWN_DUT"),
                true,
                Some(ErrorCode::TestRecordMismatch),
            ),
            (
                "differs in case only",
                Some("sn-000402"),
                true,
                Some(ErrorCode::TestRecordMismatch),
            ),
        ];
        for (name, named, pass, want) in cases {
            let got = check_test(&record(named, pass), &unit)
                .err()
                .map(|r| r.code);
            assert_eq!(got, want, "{name}");
        }
        let refusal = check_test(&record(Some("SN-000400"), true), &unit).unwrap_err();
        assert!(refusal.message.contains("SN-000400"), "{}", refusal.message);
        let refusal = check_test(&record(None, true), &unit).unwrap_err();
        assert!(
            refusal.message.contains("names no unit"),
            "{}",
            refusal.message
        );
    }

    #[test]
    fn serials_are_parsed_then_held_to_the_rule() {
        let rule = SerialRule::parse_range("SN-000001..SN-000500").unwrap();
        assert_eq!(
            check_serial("SN-000042", &rule).unwrap().as_str(),
            "SN-000042"
        );
        for bad in ["SN-000501", "", "SN 1", "ÄÖ"] {
            assert_eq!(
                check_serial(bad, &rule).unwrap_err().code,
                ErrorCode::SerialOutOfRange,
                "{bad:?}"
            );
        }
    }
}
