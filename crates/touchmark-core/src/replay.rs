//! Replaying the log: per-order counts rebuilt from the events alone, every violation of the
//! invariants that the events can show, and every refusal of the clone class (a serial, key or
//! test record of another unit), which an auditor looks at one by one.
//!
//! Auditors run this over a verified log; the demo and tests run it to check that the log tells
//! the same story as the database.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::clock::parse_timestamp;
use crate::code::ErrorCode;
use crate::event::{Event, EventBody, Sha256Hash};
use crate::id::{OrderId, ProductId, StationId};
use crate::policy::revocation::Reason;
use crate::serial::Serial;

/// What the log says about one order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct OrderReport {
    /// The quota after each change, in order (the first is the quota at creation).
    pub quota_history: Vec<u64>,
    /// Units issued.
    pub issued: u64,
    /// Failed tests.
    pub failed_tests: u64,
    /// Refusals, by code.
    pub refusals: BTreeMap<String, u64>,
    /// Units whose certificate is revoked (or on hold) at the end of the replay.
    pub revoked: u64,
}

/// What the log says about one station's refusal floods (`station.refusal_flood` alerts).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct StationReport {
    /// Flood alerts for the station.
    pub floods: u64,
    /// Refusals the alerts counted instead of logging one by one, by code.
    pub limited_refusals: BTreeMap<String, u64>,
}

/// What the log says about one of the installation's private keys (`key.generated`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyReport {
    /// `ecdsa-p256` or `ed25519`.
    pub algorithm: String,
    /// Where it lives: `pkcs11`, `files` or `memory`.
    pub store: String,
    /// SHA-256 of its public key (DER SubjectPublicKeyInfo).
    pub public_key_sha256: Sha256Hash,
    /// The log index of its `key.generated`.
    pub generated_at_index: u64,
    /// When it was made (the event's time).
    pub generated_at: String,
    /// The log index of the `ca.installed` that put a certificate signed elsewhere (an
    /// offline root) over it, if one did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_installed_at_index: Option<u64>,
}

/// An invariant the log shows broken, with the index of the entry that breaks it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// The log index of the offending entry.
    pub index: u64,
    /// What is wrong.
    pub message: String,
}

/// A refusal of the clone class (`ErrorCode::is_clone_suspect`): a unit that presented another
/// unit's serial, key or test record. Refused, so no invariant broke, but each one is evidence of
/// a counterfeit or a replay at the station that sent it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Suspect {
    /// The log index of the refusal.
    pub index: u64,
    /// Why it was refused.
    pub reason: ErrorCode,
    /// The order named in the request.
    pub order: OrderId,
    /// The station that sent it.
    pub station: StationId,
    /// The serial it asked for, when it was well formed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub serial: Option<Serial>,
    /// SHA-256 of the test record it carried, when it carried a valid one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test_sha256: Option<Sha256Hash>,
}

/// An issued certificate as the replay knows it.
#[derive(Debug)]
struct IssuedCertificate {
    order: OrderId,
    station: StationId,
    at: time::OffsetDateTime,
    revoked: Option<Reason>,
}

/// The state of a replay.
#[derive(Debug, Default)]
pub struct Replay {
    next_index: u64,
    orders: BTreeMap<String, OrderReport>,
    order_product: HashMap<OrderId, ProductId>,
    serials: HashMap<(ProductId, Serial), u64>,
    keys: HashMap<Sha256Hash, (Serial, u64)>,
    /// The unit each test record issued, and where.
    tests: HashMap<Sha256Hash, (ProductId, Serial, u64)>,
    suspects: Vec<Suspect>,
    revoked: HashMap<StationId, u64>,
    /// Every issued certificate, by its hash, with what a revocation is checked against.
    certificates: HashMap<Sha256Hash, IssuedCertificate>,
    /// Revoked issuing CAs, by product, with the entry that revoked each.
    revoked_cas: HashMap<ProductId, u64>,
    stations: BTreeMap<String, StationReport>,
    violations: Vec<Violation>,
    events: u64,
    installation_keys: BTreeMap<String, KeyReport>,
    /// The last version of each CSAF advisory published, by tracking id.
    advisories: HashMap<String, u64>,
}

impl Replay {
    /// An empty replay, expecting index 0 first.
    pub fn new() -> Self {
        Self::default()
    }

    fn violation(&mut self, index: u64, message: String) {
        self.violations.push(Violation { index, message });
    }

    /// Applies the event at `index`.
    pub fn apply(&mut self, index: u64, event: &Event) {
        if index != self.next_index {
            self.violation(
                index,
                format!(
                    "entry {index} is out of order: expected index {}",
                    self.next_index
                ),
            );
        }
        self.next_index = index + 1;
        self.events += 1;
        match &event.body {
            EventBody::OrderCreated {
                order,
                product,
                quota,
                ..
            } => {
                self.order_product.insert(order.clone(), product.clone());
                let report = self.orders.entry(order.to_string()).or_default();
                if report.quota_history.is_empty() {
                    report.quota_history.push(*quota);
                } else {
                    self.violation(index, format!("order {order} is created twice"));
                }
            }
            EventBody::QuotaChanged {
                order,
                old_quota,
                new_quota,
                ..
            } => {
                let report = self.orders.entry(order.to_string()).or_default();
                let current = report.quota_history.last().copied();
                report.quota_history.push(*new_quota);
                if current != Some(*old_quota) {
                    self.violation(index, format!("order {order}: quota change from {old_quota}, but the log's quota is {current:?}"));
                }
            }
            EventBody::StationRevoked { station, .. } => {
                self.revoked.insert(station.clone(), index);
            }
            EventBody::UnitIssued {
                order,
                product,
                station,
                serial,
                pubkey_sha256,
                test_sha256,
                cert_sha256,
                ..
            } => {
                let report = self.orders.entry(order.to_string()).or_default();
                report.issued += 1;
                let (issued, quota) = (report.issued, report.quota_history.last().copied());
                match quota {
                    None => self.violation(index, format!("unit {serial} issued in order {order}, which the log never created")),
                    Some(q) if issued > q => self.violation(index, format!("order {order}: unit {serial} is issuance {issued}, beyond the quota of {q}")),
                    Some(_) => {}
                }
                if self.order_product.get(order).is_some_and(|p| p != product) {
                    self.violation(
                        index,
                        format!("unit {serial} names product {product}, not order {order}'s"),
                    );
                }
                if let Some(first) = self
                    .serials
                    .insert((product.clone(), serial.clone()), index)
                {
                    self.violation(index, format!("serial {serial} of product {product} is issued twice (first at entry {first})"));
                }
                if let Some((other, first)) = self.keys.get(pubkey_sha256) {
                    if other != serial {
                        let message = format!(
                            "public key {pubkey_sha256} is bound to serial {serial} and to serial {other} (entry {first})"
                        );
                        self.violation(index, message);
                    }
                } else {
                    self.keys.insert(*pubkey_sha256, (serial.clone(), index));
                }
                // One test record issues one unit (issue 11, finding 5); a log written before
                // the server refused replayed records may hold two.
                if let Some((other_product, other, first)) = self.tests.get(test_sha256) {
                    if (other_product, other) != (product, serial) {
                        let message = format!(
                            "test record {test_sha256} issued serial {serial} of product {product} \
                             and serial {other} of product {other_product} (entry {first}): a replayed test record"
                        );
                        self.violation(index, message);
                    }
                } else {
                    self.tests
                        .insert(*test_sha256, (product.clone(), serial.clone(), index));
                }
                if let Some(at) = self.revoked.get(station) {
                    let message =
                        format!("unit {serial} issued by station {station}, revoked at entry {at}");
                    self.violation(index, message);
                }
                if let Some(at) = self.revoked_cas.get(product) {
                    let message = format!(
                        "unit {serial} issued by product {product}'s CA, revoked at entry {at}"
                    );
                    self.violation(index, message);
                }
                self.certificates.insert(
                    *cert_sha256,
                    IssuedCertificate {
                        order: order.clone(),
                        station: station.clone(),
                        at: event.at,
                        revoked: None,
                    },
                );
            }
            EventBody::UnitFirmwareDelivered {
                product,
                serial,
                cert_sha256,
                ..
            } => {
                // Only a unit the log issued, unrevoked and under an unrevoked CA, receives an
                // update.
                let refused = match self.certificates.get(cert_sha256) {
                    None => Some("which the log never issued".to_owned()),
                    Some(c) if c.revoked.is_some() => Some("which is revoked".to_owned()),
                    Some(_) => self
                        .revoked_cas
                        .get(product)
                        .map(|at| format!("whose CA was revoked at entry {at}")),
                };
                if let Some(why) = refused {
                    self.violation(
                        index,
                        format!(
                            "unit {serial} received firmware over certificate {cert_sha256}, {why}"
                        ),
                    );
                }
            }
            EventBody::UnitRevoked {
                serial,
                cert_sha256,
                reason,
                ..
            } => self.revoke_one(index, serial, cert_sha256, *reason),
            EventBody::UnitReleased {
                serial,
                cert_sha256,
                ..
            } => {
                match self.certificates.get_mut(cert_sha256) {
                    Some(cert) if cert.revoked == Some(Reason::CertificateHold) => {
                        cert.revoked = None;
                        let order = cert.order.to_string();
                        self.orders.entry(order).or_default().revoked -= 1;
                    }
                    Some(_) => self.violation(
                        index,
                        format!("unit {serial}'s certificate is released, but it is not on hold"),
                    ),
                    None => self.violation(
                        index,
                        format!("unit {serial}'s certificate {cert_sha256} is released, but the log never issued it"),
                    ),
                }
            }
            EventBody::OrderRevoked {
                order,
                reason,
                units,
                ..
            } => {
                let set = self.revocable(|c| &c.order == order);
                self.revoke_set(index, &format!("order {order}'s revocation"), set, *reason, *units);
            }
            EventBody::ProvenanceRevoked {
                station,
                from,
                to,
                reason,
                units,
                ..
            } => match (parse_timestamp(from), parse_timestamp(to)) {
                (Ok(from), Ok(to)) => {
                    let set = self.revocable(|c| &c.station == station && c.at >= from && c.at < to);
                    self.revoke_set(
                        index,
                        &format!("the revocation of station {station}'s units"),
                        set,
                        *reason,
                        *units,
                    );
                }
                _ => self.violation(
                    index,
                    format!("the revocation of station {station}'s units has a malformed span"),
                ),
            },
            EventBody::CaRevoked { product, .. } => {
                let first = self.revoked_cas.insert(product.clone(), index);
                if first.is_some() {
                    self.violation(index, format!("product {product}'s CA is revoked twice"));
                }
            }
            EventBody::TestFailed { order, .. } => {
                self.orders
                    .entry(order.to_string())
                    .or_default()
                    .failed_tests += 1;
            }
            EventBody::UnitRefused {
                order,
                station,
                serial,
                test_sha256,
                reason,
                ..
            } => {
                *self
                    .orders
                    .entry(order.to_string())
                    .or_default()
                    .refusals
                    .entry(reason.as_str().to_owned())
                    .or_default() += 1;
                if reason.is_clone_suspect() {
                    self.suspects.push(Suspect {
                        index,
                        reason: *reason,
                        order: order.clone(),
                        station: station.clone(),
                        serial: serial.clone(),
                        test_sha256: *test_sha256,
                    });
                }
            }
            EventBody::RefusalFlood {
                station,
                reason,
                count,
                window_start,
                window_end,
                ..
            } => {
                let report = self.stations.entry(station.to_string()).or_default();
                report.floods += 1;
                *report
                    .limited_refusals
                    .entry(reason.as_str().to_owned())
                    .or_default() += count;
                let window = parse_timestamp(window_start)
                    .and_then(|start| Ok((start, parse_timestamp(window_end)?)));
                let problem = match window {
                    Err(e) => Some(e),
                    Ok((start, end)) if end < start => Some(format!(
                        "its window ends ({window_end}) before it starts ({window_start})"
                    )),
                    Ok((_, end)) if end > event.at => Some(format!(
                        "its window ends ({window_end}) after the alert was logged"
                    )),
                    Ok(_) if *count == 0 => Some("it counts no refusal".to_owned()),
                    Ok(_) => None,
                };
                if let Some(problem) = problem {
                    self.violation(
                        index,
                        format!(
                            "the refusal flood alert for station {station} is malformed: {problem}"
                        ),
                    );
                }
            }
            EventBody::KeyGenerated {
                key,
                algorithm,
                store,
                public_key_sha256,
                ..
            } => {
                // Keys are never replaced: a name made twice means two keys signed as one.
                if let Some(first) = self.installation_keys.get(key) {
                    let message = format!(
                        "key {key} is generated twice (first at entry {})",
                        first.generated_at_index
                    );
                    self.violation(index, message);
                } else {
                    self.installation_keys.insert(
                        key.clone(),
                        KeyReport {
                            algorithm: algorithm.clone(),
                            store: store.clone(),
                            public_key_sha256: *public_key_sha256,
                            generated_at_index: index,
                            generated_at: crate::clock::format_timestamp(event.at),
                            ca_installed_at_index: None,
                        },
                    );
                }
            }
            EventBody::KeyMigrated {
                key,
                to,
                public_key_sha256,
                ..
            } => match self.installation_keys.get_mut(key) {
                Some(known) if known.public_key_sha256 == *public_key_sha256 => {
                    known.store = to.clone();
                }
                Some(known) => {
                    let message = format!(
                        "key {key} is migrated with public key {public_key_sha256}, but entry {} \
                         made it with {}",
                        known.generated_at_index, known.public_key_sha256
                    );
                    self.violation(index, message);
                }
                // A key made before keys were logged: known from here on.
                None => {
                    self.installation_keys.insert(
                        key.clone(),
                        KeyReport {
                            algorithm: String::new(),
                            store: to.clone(),
                            public_key_sha256: *public_key_sha256,
                            generated_at_index: index,
                            generated_at: crate::clock::format_timestamp(event.at),
                            ca_installed_at_index: None,
                        },
                    );
                }
            },
            EventBody::CaInstalled {
                product,
                key,
                public_key_sha256,
                ..
            } => match self.installation_keys.get_mut(key) {
                Some(known) if known.public_key_sha256 != *public_key_sha256 => {
                    let message = format!(
                        "the CA installed for product {product} is for public key \
                         {public_key_sha256}, but entry {} made key {key} with {}",
                        known.generated_at_index, known.public_key_sha256
                    );
                    self.violation(index, message);
                }
                Some(known) if known.ca_installed_at_index.is_some() => {
                    let message = format!(
                        "a second CA certificate is installed for product {product} (the first at \
                         entry {})",
                        known.ca_installed_at_index.unwrap_or_default()
                    );
                    self.violation(index, message);
                }
                Some(known) => known.ca_installed_at_index = Some(index),
                None => {
                    let message = format!(
                        "a CA certificate is installed for product {product} over key {key}, \
                         which no earlier entry made"
                    );
                    self.violation(index, message);
                }
            },
            EventBody::VulnAdvisoryPublished {
                tracking_id,
                version,
                ..
            } => {
                let last = self.advisories.get(tracking_id).copied().unwrap_or(0);
                if *version == last.saturating_add(1) {
                    self.advisories.insert(tracking_id.clone(), *version);
                } else {
                    let message = format!(
                        "advisory {tracking_id} is published as version {version}, but the \
                         version before it in the log is {last}: versions go up by one"
                    );
                    self.violation(index, message);
                }
            }
            _ => {}
        }
    }

    /// The installation's keys the log records, by name.
    pub fn keys(&self) -> &BTreeMap<String, KeyReport> {
        &self.installation_keys
    }

    /// Revokes one certificate: it must have been issued, and not be revoked for good.
    fn revoke_one(&mut self, index: u64, serial: &Serial, cert: &Sha256Hash, reason: Reason) {
        let Some(issued) = self.certificates.get_mut(cert) else {
            self.violation(
                index,
                format!(
                    "unit {serial}'s certificate {cert} is revoked, but the log never issued it"
                ),
            );
            return;
        };
        match issued.revoked {
            Some(Reason::CertificateHold) => issued.revoked = Some(reason),
            Some(_) => {
                self.violation(
                    index,
                    format!("unit {serial}'s certificate is revoked twice"),
                );
            }
            None => {
                issued.revoked = Some(reason);
                let order = issued.order.to_string();
                self.orders.entry(order).or_default().revoked += 1;
            }
        }
    }

    /// The certificates `select` takes that are not revoked for good.
    fn revocable(&self, select: impl Fn(&IssuedCertificate) -> bool) -> Vec<Sha256Hash> {
        self.certificates
            .iter()
            .filter(|(_, c)| select(c) && c.revoked.is_none_or(|r| r == Reason::CertificateHold))
            .map(|(hash, _)| *hash)
            .collect()
    }

    /// Revokes the set a revocation of many recomputes, which must count `units`.
    fn revoke_set(
        &mut self,
        index: u64,
        what: &str,
        set: Vec<Sha256Hash>,
        reason: Reason,
        units: u64,
    ) {
        if set.len() as u64 != units {
            self.violation(
                index,
                format!(
                    "{what} says it revoked {units} units, but the log gives {}",
                    set.len()
                ),
            );
        }
        for hash in set {
            if let Some(cert) = self.certificates.get_mut(&hash) {
                if cert.revoked.is_none() {
                    self.orders
                        .entry(cert.order.to_string())
                        .or_default()
                        .revoked += 1;
                }
                cert.revoked = Some(reason);
            }
        }
    }

    /// Events applied.
    pub fn events(&self) -> u64 {
        self.events
    }

    /// Per-order reports, by order id.
    pub fn orders(&self) -> &BTreeMap<String, OrderReport> {
        &self.orders
    }

    /// Per-station flood reports, by station id, for the stations that have any.
    pub fn stations(&self) -> &BTreeMap<String, StationReport> {
        &self.stations
    }

    /// Violations found so far.
    pub fn violations(&self) -> &[Violation] {
        &self.violations
    }

    /// Refusals of the clone class found so far, in log order.
    pub fn suspects(&self) -> &[Suspect] {
        &self.suspects
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use time::OffsetDateTime;

    use super::*;
    use crate::event::Actor;
    use crate::id::FactoryId;

    fn at() -> OffsetDateTime {
        OffsetDateTime::UNIX_EPOCH
    }

    fn created(quota: u64) -> Event {
        Event::new(
            at(),
            EventBody::OrderCreated {
                order: OrderId::parse("o").unwrap(),
                product: ProductId::parse("p").unwrap(),
                factory: FactoryId::parse("f").unwrap(),
                quota,
                serial_rule: "any".into(),
                not_before: None,
                not_after: None,
                actor: Actor::System,
            },
        )
    }

    /// A `unit.issued` with a test record of its own (named by the serial).
    fn issued(serial: &str, key: u8, station: &str) -> Event {
        issued_with(serial, key, station, Sha256Hash::of(serial.as_bytes()))
    }

    /// A `unit.issued` whose test record hash is `[test; 32]`.
    fn issued_with_test(serial: &str, key: u8, station: &str, test: u8) -> Event {
        issued_with(serial, key, station, Sha256Hash([test; 32]))
    }

    fn issued_with(serial: &str, key: u8, station: &str, test_sha256: Sha256Hash) -> Event {
        Event::new(
            at(),
            EventBody::UnitIssued {
                order: OrderId::parse("o").unwrap(),
                product: ProductId::parse("p").unwrap(),
                factory: FactoryId::parse("f").unwrap(),
                station: StationId::parse(station).unwrap(),
                serial: Serial::parse(serial).unwrap(),
                cert_sha256: Sha256Hash([key; 32]),
                pubkey_sha256: Sha256Hash([key; 32]),
                test_sha256,
                release: None,
                firmware_sha256: None,
            },
        )
    }

    fn replay(events: &[Event]) -> Replay {
        let mut r = Replay::new();
        for (i, e) in events.iter().enumerate() {
            r.apply(i as u64, e);
        }
        r
    }

    #[test]
    fn a_clean_log_counts_and_has_no_violations() {
        let refused = Event::new(
            at(),
            EventBody::UnitRefused {
                order: OrderId::parse("o").unwrap(),
                factory: None,
                station: StationId::parse("s").unwrap(),
                serial: None,
                pubkey_sha256: None,
                test_sha256: None,
                reason: ErrorCode::QuotaExhausted,
            },
        );
        let r = replay(&[
            created(2),
            issued("A", 1, "s"),
            issued("B", 2, "s"),
            refused,
        ]);
        assert!(r.violations().is_empty(), "{:?}", r.violations());
        let report = &r.orders()["o"];
        assert_eq!((report.issued, report.quota_history.clone()), (2, vec![2]));
        assert_eq!(report.refusals["quota_exhausted"], 1);
        assert!(r.suspects().is_empty(), "{:?}", r.suspects());
    }

    fn refused(reason: ErrorCode, serial: &str) -> Event {
        Event::new(
            at(),
            EventBody::UnitRefused {
                order: OrderId::parse("o").unwrap(),
                factory: Some(FactoryId::parse("f").unwrap()),
                station: StationId::parse("s").unwrap(),
                serial: Some(Serial::parse(serial).unwrap()),
                pubkey_sha256: None,
                test_sha256: Some(Sha256Hash([7; 32])),
                reason,
            },
        )
    }

    #[test]
    fn clone_class_refusals_are_listed_with_their_entries() {
        let r = replay(&[
            created(5),
            issued("A", 1, "s"),
            refused(ErrorCode::QuotaExhausted, "B"),
            refused(ErrorCode::TestRecordMismatch, "C"),
            refused(ErrorCode::TestRecordReused, "D"),
            refused(ErrorCode::SerialConflict, "A"),
            refused(ErrorCode::KeyReused, "E"),
            refused(ErrorCode::TestFailed, "F"),
        ]);
        assert!(r.violations().is_empty(), "{:?}", r.violations());
        let listed: Vec<(u64, ErrorCode, &str)> = r
            .suspects()
            .iter()
            .map(|s| (s.index, s.reason, s.serial.as_ref().unwrap().as_str()))
            .collect();
        assert_eq!(
            listed,
            vec![
                (3, ErrorCode::TestRecordMismatch, "C"),
                (4, ErrorCode::TestRecordReused, "D"),
                (5, ErrorCode::SerialConflict, "A"),
                (6, ErrorCode::KeyReused, "E"),
            ]
        );
        assert_eq!(r.suspects()[0].test_sha256, Some(Sha256Hash([7; 32])));
        assert_eq!(r.orders()["o"].refusals["test_record_mismatch"], 1);
    }

    #[test]
    fn every_violation_names_its_entry() {
        let revoke = Event::new(
            at(),
            EventBody::StationRevoked {
                station: StationId::parse("s").unwrap(),
                factory: FactoryId::parse("f").unwrap(),
                actor: Actor::System,
                reason: None,
            },
        );
        let cases: Vec<(&str, Vec<Event>, u64)> = vec![
            (
                "over quota",
                vec![created(1), issued("A", 1, "s"), issued("B", 2, "s")],
                2,
            ),
            (
                "serial twice",
                vec![created(5), issued("A", 1, "s"), issued("A", 2, "s")],
                2,
            ),
            (
                "key on two serials",
                vec![created(5), issued("A", 1, "s"), issued("B", 1, "s")],
                2,
            ),
            (
                "revoked station",
                vec![created(5), revoke, issued("A", 1, "s")],
                2,
            ),
            (
                "one test record issuing two units",
                vec![
                    created(5),
                    issued_with_test("SN-000400", 1, "s", 9),
                    issued_with_test("SN-000402", 2, "s", 9),
                ],
                2,
            ),
        ];
        for (name, events, index) in cases {
            let r = replay(&events);
            assert_eq!(r.violations().len(), 1, "{name}: {:?}", r.violations());
            assert_eq!(r.violations()[0].index, index, "{name}");
        }
        let r = replay(&[
            created(5),
            issued_with_test("SN-000400", 1, "s", 9),
            issued_with_test("SN-000402", 2, "s", 9),
        ]);
        let message = &r.violations()[0].message;
        assert!(
            message.contains("SN-000400")
                && message.contains("SN-000402")
                && message.contains("entry 1"),
            "{message}"
        );
        let mut r = Replay::new();
        r.apply(0, &created(1));
        r.apply(2, &issued("A", 1, "s"));
        assert!(r.violations()[0].message.contains("out of order"));
    }

    fn flood(count: u64, start: &str, end: &str) -> Event {
        Event::new(
            crate::clock::parse_timestamp("2026-06-01T12:01:00.500Z").unwrap(),
            EventBody::RefusalFlood {
                station: StationId::parse("s").unwrap(),
                factory: FactoryId::parse("f").unwrap(),
                reason: ErrorCode::StationRevoked,
                count,
                window_start: start.into(),
                window_end: end.into(),
            },
        )
    }

    #[test]
    fn flood_alerts_are_reported_per_station_and_checked() {
        let (start, end) = ("2026-06-01T12:00:00.000Z", "2026-06-01T12:01:00.000Z");
        let r = replay(&[flood(299, start, end), flood(1, start, end)]);
        assert!(r.violations().is_empty(), "{:?}", r.violations());
        assert_eq!(
            r.stations()["s"],
            StationReport {
                floods: 2,
                limited_refusals: [("station_revoked".to_owned(), 300)].into()
            }
        );
        for (name, event, problem) in [
            ("no count", flood(0, start, end), "counts no refusal"),
            ("backwards", flood(3, end, start), "before it starts"),
            (
                "logged before it closed",
                flood(3, start, "2026-06-01T12:02:00.000Z"),
                "after the alert was logged",
            ),
            ("not a time", flood(3, "noon", end), "RFC 3339"),
        ] {
            let r = replay(&[event]);
            assert_eq!(r.violations().len(), 1, "{name}");
            assert!(
                r.violations()[0].message.contains(problem),
                "{name}: {}",
                r.violations()[0].message
            );
        }
    }

    fn key_generated(key: &str, public: u8) -> Event {
        Event::new(
            at(),
            EventBody::KeyGenerated {
                key: key.into(),
                algorithm: "ecdsa-p256".into(),
                store: "pkcs11".into(),
                public_key_sha256: Sha256Hash([public; 32]),
                actor: Actor::System,
            },
        )
    }

    fn key_migrated(key: &str, public: u8) -> Event {
        Event::new(
            at(),
            EventBody::KeyMigrated {
                key: key.into(),
                algorithm: "ecdsa-p256".into(),
                from: "files".into(),
                to: "pkcs11".into(),
                public_key_sha256: Sha256Hash([public; 32]),
                actor: Actor::System,
            },
        )
    }

    fn revoked_unit(serial: &str, key: u8, reason: Reason) -> Event {
        Event::new(
            at(),
            EventBody::UnitRevoked {
                product: ProductId::parse("p").unwrap(),
                order: OrderId::parse("o").unwrap(),
                serial: Serial::parse(serial).unwrap(),
                cert_sha256: Sha256Hash([key; 32]),
                reason,
                actor: Actor::System,
            },
        )
    }

    #[test]
    fn a_migrated_key_keeps_its_public_key() {
        let r = replay(&[key_generated("root-ca", 1), key_migrated("root-ca", 1)]);
        assert!(r.violations().is_empty(), "{:?}", r.violations());
        assert_eq!(r.keys()["root-ca"].store, "pkcs11");
        assert_eq!(r.keys()["root-ca"].generated_at_index, 0);
        let r = replay(&[key_generated("root-ca", 1), key_migrated("root-ca", 2)]);
        assert_eq!(r.violations().len(), 1, "another key under the name");
    }

    #[test]
    fn an_installed_ca_is_for_its_product_key_and_installed_once() {
        let installed = |public: u8| {
            Event::new(
                at(),
                EventBody::CaInstalled {
                    product: ProductId::parse("p").unwrap(),
                    key: "product-p".into(),
                    issuing_ca_sha256: Sha256Hash([9; 32]),
                    public_key_sha256: Sha256Hash([public; 32]),
                    actor: Actor::System,
                },
            )
        };
        let r = replay(&[key_generated("product-p", 1), installed(1)]);
        assert!(r.violations().is_empty(), "{:?}", r.violations());
        assert_eq!(r.keys()["product-p"].ca_installed_at_index, Some(1));
        let r = replay(&[key_generated("product-p", 1), installed(2)]);
        assert_eq!(r.violations().len(), 1, "another key's certificate");
        let r = replay(&[key_generated("product-p", 1), installed(1), installed(1)]);
        assert_eq!(r.violations().len(), 1, "installed twice");
        let r = replay(&[installed(1)]);
        assert_eq!(r.violations().len(), 1, "over a key never made");
    }

    #[test]
    fn keys_are_listed_and_a_key_made_twice_is_a_violation() {
        let r = replay(&[key_generated("root-ca", 1), key_generated("log", 2)]);
        assert!(r.violations().is_empty(), "{:?}", r.violations());
        assert_eq!(r.keys().len(), 2);
        let root = &r.keys()["root-ca"];
        assert_eq!(
            (
                root.store.as_str(),
                root.public_key_sha256,
                root.generated_at_index
            ),
            ("pkcs11", Sha256Hash([1; 32]), 0)
        );
        assert_eq!(r.keys()["log"].generated_at_index, 1);
        let r = replay(&[key_generated("root-ca", 1), key_generated("root-ca", 3)]);
        assert_eq!(r.violations().len(), 1);
        assert!(
            r.violations()[0].message.contains("root-ca"),
            "{:?}",
            r.violations()
        );
        assert_eq!(
            r.keys()["root-ca"].public_key_sha256,
            Sha256Hash([1; 32]),
            "the first stands"
        );
    }

    #[test]
    fn revocations_are_replayed_and_checked_against_what_was_issued() {
        let order_revoked = |units| {
            Event::new(
                at(),
                EventBody::OrderRevoked {
                    order: OrderId::parse("o").unwrap(),
                    product: ProductId::parse("p").unwrap(),
                    reason: Reason::Superseded,
                    units,
                    actor: Actor::System,
                },
            )
        };
        let released = Event::new(
            at(),
            EventBody::UnitReleased {
                product: ProductId::parse("p").unwrap(),
                order: OrderId::parse("o").unwrap(),
                serial: Serial::parse("a").unwrap(),
                cert_sha256: Sha256Hash([1; 32]),
                actor: Actor::System,
            },
        );
        let base = vec![
            created(10),
            issued("a", 1, "s"),
            issued("b", 2, "s"),
            issued("c", 3, "s"),
        ];
        let cases: Vec<(&str, Vec<Event>, u64, usize)> = vec![
            (
                "one unit",
                vec![revoked_unit("a", 1, Reason::KeyCompromise)],
                1,
                0,
            ),
            (
                "a hold, released",
                vec![
                    revoked_unit("a", 1, Reason::CertificateHold),
                    released.clone(),
                ],
                0,
                0,
            ),
            ("a release without a hold", vec![released], 0, 1),
            (
                "a certificate never issued",
                vec![revoked_unit("z", 9, Reason::KeyCompromise)],
                0,
                1,
            ),
            (
                "twice for good",
                vec![
                    revoked_unit("a", 1, Reason::KeyCompromise),
                    revoked_unit("a", 1, Reason::KeyCompromise),
                ],
                1,
                1,
            ),
            (
                "the order, after one unit",
                vec![
                    revoked_unit("a", 1, Reason::KeyCompromise),
                    order_revoked(2),
                ],
                3,
                0,
            ),
            ("the order, miscounted", vec![order_revoked(2)], 3, 1),
        ];
        for (name, extra, revoked, violations) in cases {
            let mut events = base.clone();
            events.extend(extra);
            let r = replay(&events);
            assert_eq!(r.orders()["o"].revoked, revoked, "{name}");
            assert_eq!(
                r.violations().len(),
                violations,
                "{name}: {:?}",
                r.violations()
            );
        }
    }

    /// A field update goes only to a certificate the log issued, neither revoked nor under a
    /// revoked CA, at the entry that delivers it.
    #[test]
    fn firmware_goes_only_to_issued_unrevoked_units() {
        let delivered = |serial: &str, key: u8| {
            Event::new(
                at(),
                EventBody::UnitFirmwareDelivered {
                    order: OrderId::parse("o").unwrap(),
                    product: ProductId::parse("p").unwrap(),
                    serial: Serial::parse(serial).unwrap(),
                    cert_sha256: Sha256Hash([key; 32]),
                    release: "rel-1".into(),
                    version: "1.5.0+0".into(),
                    firmware_sha256: Sha256Hash([9; 32]),
                },
            )
        };
        let ca_revoked = Event::new(
            at(),
            EventBody::CaRevoked {
                product: ProductId::parse("p").unwrap(),
                reason: Reason::CaCompromise,
                actor: Actor::System,
            },
        );
        let base = [created(10), issued("a", 1, "s"), issued("b", 2, "s")];
        let cases: Vec<(&str, Vec<Event>, &[&str])> = vec![
            ("an issued unit", vec![delivered("a", 1)], &[]),
            (
                "a certificate never issued",
                vec![delivered("z", 9)],
                &["never issued"],
            ),
            (
                "a revoked unit",
                vec![
                    revoked_unit("a", 1, Reason::KeyCompromise),
                    delivered("a", 1),
                    delivered("b", 2),
                ],
                &["which is revoked"],
            ),
            (
                "a unit on hold",
                vec![
                    revoked_unit("b", 2, Reason::CertificateHold),
                    delivered("b", 2),
                ],
                &["which is revoked"],
            ),
            (
                "a revoked CA",
                vec![ca_revoked, delivered("a", 1)],
                &["whose CA was revoked"],
            ),
        ];
        for (name, tail, expected) in cases {
            let events: Vec<Event> = base.iter().cloned().chain(tail).collect();
            let r = replay(&events);
            let found: Vec<&str> = r.violations().iter().map(|v| v.message.as_str()).collect();
            assert_eq!(found.len(), expected.len(), "{name}: {found:?}");
            for (message, part) in found.iter().zip(expected) {
                assert!(message.contains(part), "{name}: {message}");
            }
        }
    }

    fn advisory(tracking_id: &str, version: u64) -> Event {
        Event::new(
            at(),
            EventBody::VulnAdvisoryPublished {
                report: "vr-0000000000000001".into(),
                tracking_id: tracking_id.into(),
                version,
                sha256: Sha256Hash([7; 32]),
                actor: Actor::System,
            },
        )
    }

    #[test]
    fn advisory_versions_go_up_by_one_per_tracking_id() {
        let r = replay(&[
            advisory("vr-1", 1),
            advisory("vr-1-vex", 1),
            advisory("vr-1", 2),
            advisory("vr-1-vex", 2),
        ]);
        assert!(r.violations().is_empty(), "{:?}", r.violations());
        for (name, events, index) in [
            ("first is not 1", vec![advisory("vr-1", 2)], 0),
            (
                "a version skipped",
                vec![advisory("vr-1", 1), advisory("vr-1", 3)],
                1,
            ),
            (
                "a version again",
                vec![
                    advisory("vr-1", 1),
                    advisory("vr-1", 2),
                    advisory("vr-1", 2),
                ],
                2,
            ),
        ] {
            let r = replay(&events);
            assert_eq!(r.violations().len(), 1, "{name}: {:?}", r.violations());
            assert_eq!(r.violations()[0].index, index, "{name}");
            assert!(r.violations()[0].message.contains("up by one"), "{name}");
        }
    }
}
