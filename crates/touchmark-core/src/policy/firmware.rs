//! A release's withdrawal (design.md §7): a withdrawn release stays stored and listed, so that
//! what was delivered can still be traced, but is offered for nothing new. And what a unit in
//! the field may receive: which device may ask, and which release it is offered.

use time::OffsetDateTime;

use crate::api::{FieldUnit, FieldVerdict};
use crate::code::{ErrorCode, Refusal};
use crate::event::{Actor, Event, EventBody};
use crate::firmware::{Release, parse_version};

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

/// Whether the device a verdict is about may receive a field update: only a unit this
/// installation issued, whose certificate and CA are not revoked (`genuine`), may. The verdict
/// is made with the possession proven by the TLS handshake.
///
/// # Errors
/// `device_not_authorized` for a certificate this installation did not issue or whose chain
/// does not verify; `unit_revoked` for a revoked unit or CA; each with the verdict's reason.
pub fn device_may_update(verdict: FieldVerdict) -> Result<FieldUnit, Refusal> {
    let reason = verdict.reason.unwrap_or_default();
    match (verdict.verdict.as_str(), verdict.unit) {
        ("genuine", Some(unit)) => Ok(unit),
        ("revoked", Some(unit)) => Err(Refusal::new(
            ErrorCode::UnitRevoked,
            format!("unit {} is revoked: {reason}", unit.serial),
        )),
        _ => Err(Refusal::new(
            ErrorCode::DeviceNotAuthorized,
            format!("the client certificate is no unit of this installation's: {reason}"),
        )),
    }
}

/// What a unit in the field is offered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldUpdate<'a> {
    /// Its product has no release that is not withdrawn.
    NoRelease,
    /// The newest release is not newer than the one the unit runs.
    UpToDate(&'a Release),
    /// The newest release that is not withdrawn.
    Offer(&'a Release),
}

/// The release offered to a unit of the product whose releases are `releases`, that runs
/// `running` (a version as `parse_version` reads it; `None` when it did not say): the newest
/// by version among those not withdrawn. A unit is never offered an older release than its
/// own, nor a withdrawn one.
pub fn field_update(releases: &[Release], running: Option<(u8, u8, u16, u32)>) -> FieldUpdate<'_> {
    let newest = releases
        .iter()
        .filter(|r| r.withdrawn_at.is_none())
        .filter_map(|r| parse_version(&r.version).map(|v| (v, r)))
        .max_by_key(|(v, _)| *v);
    match (newest, running) {
        (None, _) => FieldUpdate::NoRelease,
        (Some((v, r)), Some(running)) if v <= running => FieldUpdate::UpToDate(r),
        (Some((_, r)), _) => FieldUpdate::Offer(r),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use time::macros::datetime;

    use super::*;
    use crate::event::Sha256Hash;
    use crate::id::ProductId;

    fn release(id: &str, version: &str) -> Release {
        Release {
            id: id.into(),
            product: ProductId::parse("fw").unwrap(),
            version: version.into(),
            image_sha256: Sha256Hash([1; 32]),
            image_size: 10,
            signing_key: Sha256Hash([2; 32]),
            release_key: "rk-1".into(),
            plaintext_hash: "00".into(),
            sbom_sha256: None,
            created_at: datetime!(2026-03-01 08:00:00 UTC),
            withdrawn_at: None,
        }
    }

    #[test]
    fn a_unit_is_offered_the_newest_release_it_does_not_run() {
        let v = |t: &str| parse_version(t);
        assert_eq!(field_update(&[], None), FieldUpdate::NoRelease);
        // Versions compare as numbers, not as text; the build number counts.
        let releases = [
            release("a", "1.4.0+0"),
            release("b", "1.10.0+0"),
            release("c", "1.9.9+7"),
        ];
        let id = |u: FieldUpdate<'_>| match u {
            FieldUpdate::Offer(r) => format!("offer {}", r.id),
            FieldUpdate::UpToDate(r) => format!("up to date {}", r.id),
            FieldUpdate::NoRelease => "none".into(),
        };
        assert_eq!(id(field_update(&releases, None)), "offer b");
        assert_eq!(id(field_update(&releases, v("1.4.0"))), "offer b");
        assert_eq!(id(field_update(&releases, v("1.9.255+0"))), "offer b");
        assert_eq!(id(field_update(&releases, v("1.10.0"))), "up to date b");
        // A unit that runs a newer build than any release is never offered an older one.
        assert_eq!(id(field_update(&releases, v("2.0.0"))), "up to date b");
        // A withdrawn release is offered to nobody; the newest left is.
        let mut withdrawn = releases.clone();
        withdrawn[1].withdrawn_at = Some(datetime!(2026-03-02 08:00:00 UTC));
        assert_eq!(id(field_update(&withdrawn, v("1.4.0"))), "offer c");
        assert_eq!(id(field_update(&withdrawn, v("1.9.9+7"))), "up to date c");
        for r in &mut withdrawn {
            r.withdrawn_at = Some(datetime!(2026-03-02 08:00:00 UTC));
        }
        assert_eq!(id(field_update(&withdrawn, None)), "none");
    }

    #[test]
    fn only_a_genuine_unit_may_update() {
        let unit = FieldUnit {
            serial: "SN-1".into(),
            product: "fw".into(),
            order: "PO-1".into(),
            factory: None,
            station: None,
            issued_at: "2026-03-01T08:00:00.000Z".into(),
            release: None,
        };
        let verdict = |v: &str, unit: Option<FieldUnit>| FieldVerdict {
            verdict: v.into(),
            reason: Some("why".into()),
            unit,
            revocation: None,
            evidence: Vec::new(),
            checks: Vec::new(),
        };
        assert_eq!(
            device_may_update(verdict("genuine", Some(unit.clone()))).unwrap(),
            unit
        );
        let code = |v| device_may_update(v).err().map(|r| r.code);
        assert_eq!(
            code(verdict("revoked", Some(unit.clone()))),
            Some(ErrorCode::UnitRevoked)
        );
        assert_eq!(
            code(verdict("unknown", None)),
            Some(ErrorCode::DeviceNotAuthorized)
        );
        assert_eq!(
            code(verdict("clone_suspect", Some(unit))),
            Some(ErrorCode::DeviceNotAuthorized)
        );
    }

    #[test]
    fn a_release_is_withdrawn_once() {
        let at = datetime!(2026-03-01 08:00:00 UTC);
        let mut release = release("rel-1", "1.4.0+0");
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
