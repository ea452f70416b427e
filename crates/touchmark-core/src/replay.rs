//! Replaying the log: per-order counts rebuilt from the events alone, and every violation of
//! the invariants that the events can show.
//!
//! Auditors run this over a verified log; the demo and tests run it to check that the log tells
//! the same story as the database.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::event::{Event, EventBody, Sha256Hash};
use crate::id::{OrderId, ProductId, StationId};
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
}

/// An invariant the log shows broken, with the index of the entry that breaks it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// The log index of the offending entry.
    pub index: u64,
    /// What is wrong.
    pub message: String,
}

/// The state of a replay.
#[derive(Debug, Default)]
pub struct Replay {
    next_index: u64,
    orders: BTreeMap<String, OrderReport>,
    order_product: HashMap<OrderId, ProductId>,
    serials: HashMap<(ProductId, Serial), u64>,
    keys: HashMap<Sha256Hash, (Serial, u64)>,
    revoked: HashMap<StationId, u64>,
    violations: Vec<Violation>,
    events: u64,
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
                if let Some(at) = self.revoked.get(station) {
                    let message =
                        format!("unit {serial} issued by station {station}, revoked at entry {at}");
                    self.violation(index, message);
                }
            }
            EventBody::TestFailed { order, .. } => {
                self.orders
                    .entry(order.to_string())
                    .or_default()
                    .failed_tests += 1;
            }
            EventBody::UnitRefused { order, reason, .. } => {
                *self
                    .orders
                    .entry(order.to_string())
                    .or_default()
                    .refusals
                    .entry(reason.as_str().to_owned())
                    .or_default() += 1;
            }
            _ => {}
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

    /// Violations found so far.
    pub fn violations(&self) -> &[Violation] {
        &self.violations
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use time::OffsetDateTime;

    use super::*;
    use crate::code::ErrorCode;
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

    fn issued(serial: &str, key: u8, station: &str) -> Event {
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
                test_sha256: Sha256Hash([0; 32]),
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
    }

    #[test]
    fn every_violation_names_its_entry() {
        let revoke = Event::new(
            at(),
            EventBody::StationRevoked {
                station: StationId::parse("s").unwrap(),
                factory: FactoryId::parse("f").unwrap(),
                actor: Actor::System,
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
        ];
        for (name, events, index) in cases {
            let r = replay(&events);
            assert_eq!(r.violations().len(), 1, "{name}: {:?}", r.violations());
            assert_eq!(r.violations()[0].index, index, "{name}");
        }
        let mut r = Replay::new();
        r.apply(0, &created(1));
        r.apply(2, &issued("A", 1, "s"));
        assert!(r.violations()[0].message.contains("out of order"));
    }
}
