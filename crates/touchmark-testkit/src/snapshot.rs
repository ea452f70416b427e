//! Everything about an order that a refusal must leave unchanged, as the API reports it.

use std::collections::BTreeMap;

use touchmark_client::api::UnitBody;

/// Everything about an order that a refusal must leave unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// The order's `issued` column.
    pub issued: u64,
    /// Certificates stored for the order.
    pub certificates: u64,
    /// `unit.issued` events for the order.
    pub issued_events: u64,
    /// Failed test attempts.
    pub failed_tests: u64,
    /// Refusals by code.
    pub refusals: BTreeMap<String, u64>,
    /// The order's units.
    pub units: Vec<UnitBody>,
    /// Events in the whole log.
    pub log_size: u64,
}

impl Snapshot {
    /// This snapshot after one logged refusal with `code`.
    pub fn refused(&self, code: &str) -> Self {
        let mut next = self.clone();
        next.log_size += 1;
        *next.refusals.entry(code.to_owned()).or_default() += 1;
        next
    }

    /// This snapshot after one logged refusal with `code` of a request for `serial`: the unit
    /// keeps every test attempt (design.md §3), so a listed unit with that serial has one more.
    pub fn refused_attempt(&self, code: &str, serial: &str) -> Self {
        let mut next = self.refused(code);
        for unit in next.units.iter_mut().filter(|u| u.serial == serial) {
            unit.test_attempts += 1;
        }
        next
    }
}
