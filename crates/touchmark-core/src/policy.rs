//! The issuance policy's checks that need no storage: DESIGN §4, checks 1, 2, 3 and 5.
//!
//! Check 4 (the CSR) belongs to `touchmark-pki`; checks 6 to 8 (serial, key and quota) run inside
//! the storage transaction, where concurrent requests cannot race them.

use crate::code::{ErrorCode, Refusal};
use crate::entity::{Station, StationStatus};
use crate::order::Order;
use crate::serial::{Serial, SerialError};
use crate::testrecord::TestRecord;

/// Check 1: the station is enrolled, not revoked, and of the order's factory.
///
/// # Errors
/// `station_revoked` or `station_not_authorized`.
pub fn check_station(station: &Station, order: &Order) -> Result<(), Refusal> {
    match station.status {
        StationStatus::Active => {}
        StationStatus::Revoked => {
            return Err(Refusal::new(
                ErrorCode::StationRevoked,
                format!("station {} is revoked", station.id),
            ));
        }
        StationStatus::Pending => {
            return Err(Refusal::new(
                ErrorCode::StationNotAuthorized,
                format!("station {} has not enrolled", station.id),
            ));
        }
    }
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

/// Check 3: the serial parses and fits the order's range or pattern.
///
/// # Errors
/// `serial_out_of_range`, with a message saying whether it is malformed or outside the rule.
pub fn check_serial(raw: &str, order: &Order) -> Result<Serial, Refusal> {
    let refuse = |e: SerialError| Refusal::new(ErrorCode::SerialOutOfRange, e.to_string());
    let serial = Serial::parse(raw).map_err(refuse)?;
    order.serial_rule.check(&serial).map_err(refuse)?;
    Ok(serial)
}

/// Check 5: the test verdict is pass.
///
/// # Errors
/// `test_failed`, naming the first failing step when the record says which.
pub fn check_test(record: &TestRecord) -> Result<(), Refusal> {
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
