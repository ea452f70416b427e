//! A release's withdrawal (design.md §7): a withdrawn release stays stored and listed, so that
//! what was delivered can still be traced, but is offered for nothing new.

use time::OffsetDateTime;

use crate::code::{ErrorCode, Refusal};
use crate::event::{Actor, Event, EventBody};
use crate::firmware::Release;

/// A change to a release, and the event that records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseChange {
    /// When it was withdrawn.
    pub withdrawn_at: OffsetDateTime,
    /// The event that records the change.
    pub event: Event,
}

/// Withdraws `release`.
///
/// # Errors
/// `conflict` when it is withdrawn already.
pub fn withdraw(
    release: &Release,
    actor: Actor,
    at: OffsetDateTime,
) -> Result<ReleaseChange, Refusal> {
    if release.withdrawn_at.is_some() {
        return Err(Refusal::new(
            ErrorCode::Conflict,
            format!("release {} is withdrawn already", release.id),
        ));
    }
    Ok(ReleaseChange {
        withdrawn_at: at,
        event: Event::new(
            at,
            EventBody::ReleaseWithdrawn {
                product: release.product.clone(),
                release: release.id.clone(),
                version: release.version.clone(),
                actor,
            },
        ),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use time::macros::datetime;

    use super::*;
    use crate::event::Sha256Hash;
    use crate::id::ProductId;

    #[test]
    fn a_release_is_withdrawn_once() {
        let at = datetime!(2026-03-01 08:00:00 UTC);
        let mut release = Release {
            id: "rel-1".into(),
            product: ProductId::parse("fw").unwrap(),
            version: "1.4.0+0".into(),
            image_sha256: Sha256Hash([1; 32]),
            image_size: 10,
            signing_key: Sha256Hash([2; 32]),
            release_key: "rk-1".into(),
            plaintext_hash: "00".into(),
            sbom_sha256: None,
            created_at: at,
            withdrawn_at: None,
        };
        let change = withdraw(&release, Actor::System, at).unwrap();
        assert_eq!(change.withdrawn_at, at);
        assert_eq!(change.event.body.kind(), "release.withdrawn");
        release.withdrawn_at = Some(at);
        let refused = withdraw(&release, Actor::System, at).err();
        assert_eq!(refused.map(|r| r.code), Some(ErrorCode::Conflict));
    }

    /// The auditor reads the firmware events from their canonical bytes and replays them
    /// without a violation: they change no order, unit or station.
    #[test]
    fn the_auditor_replays_firmware_events() {
        let at = datetime!(2026-03-01 08:00:00 UTC);
        let product = ProductId::parse("fw").unwrap();
        let bodies = [
            EventBody::ReleaseKeyCreated {
                product: product.clone(),
                release_key: "rk-1".into(),
                algorithm: "x25519".into(),
                store: "files".into(),
                public_key_sha256: Sha256Hash([3; 32]),
                actor: Actor::System,
            },
            EventBody::FirmwareKeyAdded {
                product: product.clone(),
                key_id: Sha256Hash([4; 32]),
                algorithm: "ed25519".into(),
                actor: Actor::System,
            },
            EventBody::ReleaseCreated {
                product: product.clone(),
                release: "rel-1".into(),
                version: "1.4.0+0".into(),
                image_sha256: Sha256Hash([5; 32]),
                size: 4096,
                signing_key: Sha256Hash([4; 32]),
                release_key: "rk-1".into(),
                sbom_sha256: None,
                actor: Actor::System,
            },
            EventBody::ReleaseWithdrawn {
                product,
                release: "rel-1".into(),
                version: "1.4.0+0".into(),
                actor: Actor::System,
            },
        ];
        let mut replay = crate::replay::Replay::new();
        for (index, body) in bodies.into_iter().enumerate() {
            let bytes = Event::new(at, body).canonical_bytes().unwrap();
            let read = Event::from_canonical(&bytes).unwrap();
            replay.apply(index as u64, &read);
        }
        assert_eq!(replay.events(), 4);
        assert!(replay.violations().is_empty());
    }
}
