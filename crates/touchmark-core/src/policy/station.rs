//! A station's revocation: it takes the station as the store holds it, under its lock, and
//! returns the change to apply with the event that records it.

use time::OffsetDateTime;

use crate::code::{ErrorCode, Refusal};
use crate::entity::{Station, StationStatus};
use crate::event::{Actor, Event, EventBody};

/// A change to a station, and the event that records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StationChange {
    /// The station's status afterwards.
    pub status: StationStatus,
    /// The event that records the change.
    pub event: Event,
}

/// Revokes `station`: from now on it is refused, whatever certificate it presents. A pending
/// station's enrollment token dies with it.
///
/// # Errors
/// `conflict` when it is revoked already.
pub fn revoke(
    station: &Station,
    actor: Actor,
    at: OffsetDateTime,
) -> Result<StationChange, Refusal> {
    revoke_for(station, actor, None, at)
}

/// Revokes `station` as [`revoke`] does, with an RFC 5280 reason recorded in the event
/// (`touchmark revoke station`).
///
/// # Errors
/// `conflict` when it is revoked already.
pub fn revoke_for(
    station: &Station,
    actor: Actor,
    reason: Option<crate::policy::revocation::Reason>,
    at: OffsetDateTime,
) -> Result<StationChange, Refusal> {
    if station.status == StationStatus::Revoked {
        return Err(Refusal::new(
            ErrorCode::Conflict,
            format!("station {} is revoked already", station.id),
        ));
    }
    Ok(StationChange {
        status: StationStatus::Revoked,
        event: Event::new(
            at,
            EventBody::StationRevoked {
                station: station.id.clone(),
                factory: station.factory.clone(),
                actor,
                reason,
            },
        ),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use time::macros::datetime;

    use super::*;
    use crate::id::{FactoryId, StationId};

    #[test]
    fn a_station_is_revoked_once() {
        let at = datetime!(2026-06-01 12:00 UTC);
        for (name, status, ok) in [
            ("active", StationStatus::Active, true),
            ("pending", StationStatus::Pending, true),
            ("revoked", StationStatus::Revoked, false),
        ] {
            let station = Station {
                id: StationId::parse("line-1").unwrap(),
                factory: FactoryId::parse("fab").unwrap(),
                name: "Line 1".into(),
                status,
                enrollment_expires_at: at,
                cert_sha256: None,
                created_at: at,
            };
            match revoke(&station, Actor::System, at) {
                Ok(change) => {
                    assert!(ok, "{name}");
                    assert_eq!(change.status, StationStatus::Revoked);
                    assert_eq!(
                        change.event.body,
                        EventBody::StationRevoked {
                            station: station.id.clone(),
                            factory: station.factory.clone(),
                            actor: Actor::System,
                            reason: None,
                        }
                    );
                }
                Err(refusal) => {
                    assert!(!ok, "{name}");
                    assert_eq!(refusal.code, ErrorCode::Conflict);
                }
            }
        }
    }
}
