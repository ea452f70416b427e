//! Revocation (design.md §8): of a unit's certificate, of every certificate of an order (which
//! closes it), of a product's issuing CA, and of every unit one station provisioned in a span of
//! time (by provenance). A station's own revocation is `policy::station`.
//!
//! The store reads the [`RevocationFacts`] of a [`Revocation`]'s target under its lock and
//! calls [`decide`], which returns the [`RevocationChange`] to apply with its event. Revoking
//! again is idempotent: nothing changes and nothing is logged. Only `certificateHold` can be
//! undone, by a release, which is logged too. A revoked unit keeps its serial: its certificate
//! stays stored, so the serial can never be provisioned again (`policy::issue`).

use std::fmt;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::code::{ErrorCode, Refusal};
use crate::event::{Actor, Event, EventBody, Sha256Hash};
use crate::id::{FactoryId, OrderId, ProductId, StationId};
use crate::order::{Order, OrderState};
use crate::serial::Serial;

/// RFC 5280 §5.3.1 CRLReason, as named in its ASN.1 module (`removeFromCRL` is not a reason
/// one revokes with: a release of a hold says it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Reason {
    /// 0
    #[serde(rename = "unspecified")]
    Unspecified,
    /// 1
    #[serde(rename = "keyCompromise")]
    KeyCompromise,
    /// 2
    #[serde(rename = "cACompromise")]
    CaCompromise,
    /// 3
    #[serde(rename = "affiliationChanged")]
    AffiliationChanged,
    /// 4
    #[serde(rename = "superseded")]
    Superseded,
    /// 5
    #[serde(rename = "cessationOfOperation")]
    CessationOfOperation,
    /// 6: the only reason that can be undone, by a release.
    #[serde(rename = "certificateHold")]
    CertificateHold,
    /// 9
    #[serde(rename = "privilegeWithdrawn")]
    PrivilegeWithdrawn,
    /// 10
    #[serde(rename = "aACompromise")]
    AaCompromise,
}

impl Reason {
    /// Every reason, in code order.
    pub const ALL: [Reason; 9] = [
        Self::Unspecified,
        Self::KeyCompromise,
        Self::CaCompromise,
        Self::AffiliationChanged,
        Self::Superseded,
        Self::CessationOfOperation,
        Self::CertificateHold,
        Self::PrivilegeWithdrawn,
        Self::AaCompromise,
    ];

    /// The RFC 5280 name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unspecified => "unspecified",
            Self::KeyCompromise => "keyCompromise",
            Self::CaCompromise => "cACompromise",
            Self::AffiliationChanged => "affiliationChanged",
            Self::Superseded => "superseded",
            Self::CessationOfOperation => "cessationOfOperation",
            Self::CertificateHold => "certificateHold",
            Self::PrivilegeWithdrawn => "privilegeWithdrawn",
            Self::AaCompromise => "aACompromise",
        }
    }

    /// The CRLReason code: what a CRL entry and an OCSP response carry.
    pub fn code(self) -> u8 {
        match self {
            Self::Unspecified => 0,
            Self::KeyCompromise => 1,
            Self::CaCompromise => 2,
            Self::AffiliationChanged => 3,
            Self::Superseded => 4,
            Self::CessationOfOperation => 5,
            Self::CertificateHold => 6,
            Self::PrivilegeWithdrawn => 9,
            Self::AaCompromise => 10,
        }
    }

    /// Parses a reason by its RFC 5280 name, in any case (`keyCompromise`, `keycompromise`,
    /// `CACompromise`).
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|r| r.as_str().eq_ignore_ascii_case(text))
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a revocation names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// One unit's certificate, by serial; the product only when the serial exists in several.
    Unit {
        /// The product, when given.
        product: Option<ProductId>,
        /// The serial.
        serial: Serial,
    },
    /// Every certificate issued under an order; the order closes.
    Order(OrderId),
    /// A product's issuing CA: every unit under it is revoked for relying parties through the
    /// parent's CRL, and the CA issues nothing more.
    Ca(ProductId),
    /// Every unit one station provisioned in `[from, to)`.
    Provenance {
        /// The station.
        station: StationId,
        /// The span's start, inclusive.
        from: OffsetDateTime,
        /// The span's end, exclusive.
        to: OffsetDateTime,
    },
}

/// Revoke with a reason, or release a hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Revoke, with this reason.
    Revoke(Reason),
    /// Release a `certificateHold` (a unit's only).
    Release,
}

/// A revocation asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revocation {
    /// What it names.
    pub target: Target,
    /// Revoke or release.
    pub action: Action,
}

/// A certificate's revocation as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RevokedAt {
    /// Why.
    pub reason: Reason,
    /// When.
    pub at: OffsetDateTime,
}

/// A targeted certificate as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateFacts {
    /// SHA-256 of its DER.
    pub cert_sha256: Sha256Hash,
    /// The product.
    pub product: ProductId,
    /// The order it was counted against.
    pub order: OrderId,
    /// The unit's serial.
    pub serial: Serial,
    /// Its revocation, if any.
    pub revoked: Option<RevokedAt>,
}

/// What the store read, under its lock, for one revocation.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RevocationFacts {
    /// The certificates the target names (for a CA: none are read; its units are revoked
    /// through the CA).
    pub certificates: Vec<CertificateFacts>,
    /// The order, for an order's revocation.
    pub order: Option<Order>,
    /// The station's factory, for a revocation by provenance; `None` if the station is unknown.
    pub station_factory: Option<FactoryId>,
    /// For a CA's revocation: whether the product exists, and its CA's revocation if any.
    pub ca: Option<Option<RevokedAt>>,
}

/// What to apply, and the event that records it. With no event, nothing changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevocationChange {
    /// Certificates to mark revoked with [`RevocationChange::revoked`].
    pub revoke: Vec<Sha256Hash>,
    /// Certificates whose hold is released.
    pub release: Vec<Sha256Hash>,
    /// The revocation written on each certificate of `revoke`, or on the CA.
    pub revoked: Option<RevokedAt>,
    /// The order to close.
    pub close_order: Option<OrderId>,
    /// The product whose issuing CA is revoked.
    pub revoke_ca: Option<ProductId>,
    /// The event; `None` when the revocation was already in force (idempotent).
    pub event: Option<Event>,
}

impl RevocationChange {
    fn none() -> Self {
        Self {
            revoke: Vec::new(),
            release: Vec::new(),
            revoked: None,
            close_order: None,
            revoke_ca: None,
            event: None,
        }
    }
}

/// Decides `revocation` on the `facts` the store read, at `at`.
///
/// # Errors
/// `not_found` for a unit that holds no certificate (a certificate never issued cannot be
/// revoked), an unknown order, product or station; `unprocessable` for a hold on anything
/// but a unit, a release of anything but a unit, or an empty span; `conflict` for a serial in
/// several products without a product named, or a release of a unit that is not on hold.
pub fn decide(
    revocation: &Revocation,
    facts: &RevocationFacts,
    actor: Actor,
    at: OffsetDateTime,
) -> Result<RevocationChange, Refusal> {
    let hold_only_units = |what: &str| {
        Refusal::new(
            ErrorCode::Unprocessable,
            format!("only a unit can be put on hold or released, not {what}"),
        )
    };
    match (&revocation.target, revocation.action) {
        (Target::Unit { serial, .. }, action) => unit(serial, action, facts, actor, at),
        (Target::Order(_), Action::Release) => Err(hold_only_units("an order")),
        (Target::Ca(_), Action::Release) => Err(hold_only_units("a CA")),
        (Target::Provenance { .. }, Action::Release) => Err(hold_only_units("a station's units")),
        (_, Action::Revoke(Reason::CertificateHold)) => Err(hold_only_units("a set of units")),
        (Target::Order(id), Action::Revoke(reason)) => order(id, reason, facts, actor, at),
        (Target::Ca(product), Action::Revoke(reason)) => ca(product, reason, facts, actor, at),
        (Target::Provenance { station, from, to }, Action::Revoke(reason)) => {
            provenance(station, *from, *to, reason, facts, actor, at)
        }
    }
}

/// The certificates of `facts` not revoked for good (none, or on hold).
fn to_revoke(facts: &RevocationFacts) -> Vec<Sha256Hash> {
    facts
        .certificates
        .iter()
        .filter(|c| {
            c.revoked
                .is_none_or(|r| r.reason == Reason::CertificateHold)
        })
        .map(|c| c.cert_sha256)
        .collect()
}

fn unit(
    serial: &Serial,
    action: Action,
    facts: &RevocationFacts,
    actor: Actor,
    at: OffsetDateTime,
) -> Result<RevocationChange, Refusal> {
    let cert = match facts.certificates.as_slice() {
        [] => {
            return Err(Refusal::new(
                ErrorCode::NotFound,
                format!(
                    "unit {serial} holds no certificate: a certificate never issued cannot be revoked"
                ),
            ));
        }
        [one] => one,
        _ => {
            return Err(Refusal::new(
                ErrorCode::Conflict,
                format!("serial {serial} exists in several products; name the product"),
            ));
        }
    };
    let held = cert.revoked.map(|r| r.reason) == Some(Reason::CertificateHold);
    let event = |body| Some(Event::new(at, body));
    match action {
        Action::Release if held => Ok(RevocationChange {
            release: vec![cert.cert_sha256],
            event: event(EventBody::UnitReleased {
                product: cert.product.clone(),
                order: cert.order.clone(),
                serial: cert.serial.clone(),
                cert_sha256: cert.cert_sha256,
                actor,
            }),
            ..RevocationChange::none()
        }),
        Action::Release => Err(Refusal::new(
            ErrorCode::Conflict,
            format!("unit {serial} is not on hold; only a hold can be released"),
        )),
        // Already revoked for good, or already on hold: nothing to do.
        Action::Revoke(_) if cert.revoked.is_some() && !held => Ok(RevocationChange::none()),
        Action::Revoke(Reason::CertificateHold) if held => Ok(RevocationChange::none()),
        Action::Revoke(reason) => Ok(RevocationChange {
            revoke: vec![cert.cert_sha256],
            revoked: Some(RevokedAt { reason, at }),
            event: event(EventBody::UnitRevoked {
                product: cert.product.clone(),
                order: cert.order.clone(),
                serial: cert.serial.clone(),
                cert_sha256: cert.cert_sha256,
                reason,
                actor,
            }),
            ..RevocationChange::none()
        }),
    }
}

fn order(
    id: &OrderId,
    reason: Reason,
    facts: &RevocationFacts,
    actor: Actor,
    at: OffsetDateTime,
) -> Result<RevocationChange, Refusal> {
    let order = facts
        .order
        .as_ref()
        .ok_or_else(|| Refusal::new(ErrorCode::NotFound, format!("order {id} does not exist")))?;
    let revoke = to_revoke(facts);
    let closes = matches!(order.state, OrderState::Draft | OrderState::Open);
    if revoke.is_empty() && !closes {
        return Ok(RevocationChange::none());
    }
    Ok(RevocationChange {
        event: Some(Event::new(
            at,
            EventBody::OrderRevoked {
                order: id.clone(),
                product: order.product.clone(),
                reason,
                units: revoke.len() as u64,
                actor,
            },
        )),
        revoke,
        revoked: Some(RevokedAt { reason, at }),
        close_order: closes.then(|| id.clone()),
        ..RevocationChange::none()
    })
}

fn ca(
    product: &ProductId,
    reason: Reason,
    facts: &RevocationFacts,
    actor: Actor,
    at: OffsetDateTime,
) -> Result<RevocationChange, Refusal> {
    match facts.ca {
        None => Err(Refusal::new(
            ErrorCode::NotFound,
            format!("product {product} does not exist"),
        )),
        Some(Some(_)) => Ok(RevocationChange::none()),
        Some(None) => Ok(RevocationChange {
            revoked: Some(RevokedAt { reason, at }),
            revoke_ca: Some(product.clone()),
            event: Some(Event::new(
                at,
                EventBody::CaRevoked {
                    product: product.clone(),
                    reason,
                    actor,
                },
            )),
            ..RevocationChange::none()
        }),
    }
}

fn provenance(
    station: &StationId,
    from: OffsetDateTime,
    to: OffsetDateTime,
    reason: Reason,
    facts: &RevocationFacts,
    actor: Actor,
    at: OffsetDateTime,
) -> Result<RevocationChange, Refusal> {
    if to <= from {
        return Err(Refusal::new(
            ErrorCode::Unprocessable,
            "the span ends before it starts",
        ));
    }
    let factory = facts.station_factory.clone().ok_or_else(|| {
        Refusal::new(
            ErrorCode::NotFound,
            format!("station {station} does not exist"),
        )
    })?;
    let revoke = to_revoke(facts);
    if revoke.is_empty() {
        return Ok(RevocationChange::none());
    }
    Ok(RevocationChange {
        event: Some(Event::new(
            at,
            EventBody::ProvenanceRevoked {
                station: station.clone(),
                factory,
                from: crate::clock::format_timestamp(from),
                to: crate::clock::format_timestamp(to),
                reason,
                units: revoke.len() as u64,
                actor,
            },
        )),
        revoke,
        revoked: Some(RevokedAt { reason, at }),
        ..RevocationChange::none()
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic, clippy::type_complexity)]

    use time::macros::datetime;

    use super::*;

    const AT: OffsetDateTime = datetime!(2026-06-01 12:00 UTC);

    fn cert(n: u8, revoked: Option<Reason>) -> CertificateFacts {
        CertificateFacts {
            cert_sha256: Sha256Hash([n; 32]),
            product: ProductId::parse("sensor").unwrap(),
            order: OrderId::parse("PO-1").unwrap(),
            serial: Serial::parse(&format!("SN-{n}")).unwrap(),
            revoked: revoked.map(|reason| RevokedAt { reason, at: AT }),
        }
    }

    fn unit_target() -> Target {
        Target::Unit {
            product: None,
            serial: Serial::parse("SN-1").unwrap(),
        }
    }

    fn run(
        target: Target,
        action: Action,
        facts: RevocationFacts,
    ) -> Result<RevocationChange, Refusal> {
        decide(&Revocation { target, action }, &facts, Actor::System, AT)
    }

    fn order_row(state: OrderState) -> Order {
        Order {
            id: OrderId::parse("PO-1").unwrap(),
            product: ProductId::parse("sensor").unwrap(),
            factory: FactoryId::parse("fab").unwrap(),
            quota: 10,
            issued: 2,
            serial_rule: crate::serial::SerialRule::Any,
            not_before: None,
            not_after: None,
            state,
            created_at: AT,
        }
    }

    #[test]
    fn reasons_round_trip_by_name_and_code() {
        for reason in Reason::ALL {
            assert_eq!(Reason::parse(reason.as_str()), Some(reason));
            assert_eq!(Reason::parse(&reason.as_str().to_uppercase()), Some(reason));
            let json = serde_json::to_string(&reason).unwrap();
            assert_eq!(json, format!("\"{}\"", reason.as_str()));
        }
        assert_eq!(Reason::KeyCompromise.code(), 1);
        assert_eq!(Reason::PrivilegeWithdrawn.code(), 9);
        assert_eq!(Reason::parse("removeFromCRL"), None);
    }

    #[test]
    fn a_unit_is_revoked_once_held_released_and_never_revoked_unissued() {
        use Action::{Release, Revoke};
        use Reason::{CertificateHold as Hold, KeyCompromise as Key};
        // (case, stored revocation, action, Ok(logged, revoke, release) or Err(code))
        let cases: [(
            &str,
            Option<Option<Reason>>,
            Action,
            Result<(bool, usize, usize), ErrorCode>,
        ); 9] = [
            ("never issued", None, Revoke(Key), Err(ErrorCode::NotFound)),
            ("fresh", Some(None), Revoke(Key), Ok((true, 1, 0))),
            ("twice", Some(Some(Key)), Revoke(Key), Ok((false, 0, 0))),
            (
                "other reason after",
                Some(Some(Key)),
                Revoke(Reason::Superseded),
                Ok((false, 0, 0)),
            ),
            ("hold", Some(None), Revoke(Hold), Ok((true, 1, 0))),
            (
                "hold twice",
                Some(Some(Hold)),
                Revoke(Hold),
                Ok((false, 0, 0)),
            ),
            (
                "held, then revoked",
                Some(Some(Hold)),
                Revoke(Key),
                Ok((true, 1, 0)),
            ),
            (
                "release a hold",
                Some(Some(Hold)),
                Release,
                Ok((true, 0, 1)),
            ),
            (
                "release a revocation",
                Some(Some(Key)),
                Release,
                Err(ErrorCode::Conflict),
            ),
        ];
        for (name, stored, action, expected) in cases {
            let facts = RevocationFacts {
                certificates: stored.map(|r| cert(1, r)).into_iter().collect(),
                ..Default::default()
            };
            let got = run(unit_target(), action, facts)
                .map(|c| (c.event.is_some(), c.revoke.len(), c.release.len()))
                .map_err(|r| r.code);
            assert_eq!(got, expected, "{name}");
        }
    }

    #[test]
    fn a_serial_in_two_products_needs_the_product() {
        let facts = RevocationFacts {
            certificates: vec![cert(1, None), cert(1, None)],
            ..Default::default()
        };
        let err = run(unit_target(), Action::Revoke(Reason::KeyCompromise), facts).unwrap_err();
        assert_eq!(err.code, ErrorCode::Conflict);
    }

    #[test]
    fn an_order_revokes_what_is_not_revoked_and_closes() {
        let facts = RevocationFacts {
            certificates: vec![
                cert(1, None),
                cert(2, Some(Reason::CertificateHold)),
                cert(3, Some(Reason::KeyCompromise)),
            ],
            order: Some(order_row(OrderState::Open)),
            ..Default::default()
        };
        let target = Target::Order(OrderId::parse("PO-1").unwrap());
        let change = run(
            target.clone(),
            Action::Revoke(Reason::Superseded),
            facts.clone(),
        )
        .unwrap();
        assert_eq!(
            change.revoke,
            vec![Sha256Hash([1; 32]), Sha256Hash([2; 32])]
        );
        assert_eq!(change.close_order, Some(OrderId::parse("PO-1").unwrap()));
        assert!(matches!(
            change.event.unwrap().body,
            EventBody::OrderRevoked {
                units: 2,
                reason: Reason::Superseded,
                ..
            }
        ));
        // Again, once closed and all revoked: nothing.
        let again = RevocationFacts {
            certificates: vec![cert(1, Some(Reason::Superseded))],
            order: Some(order_row(OrderState::Closed)),
            ..facts
        };
        let change = run(target.clone(), Action::Revoke(Reason::Superseded), again).unwrap();
        assert_eq!(change.event, None);
        let err = run(
            target.clone(),
            Action::Revoke(Reason::CertificateHold),
            RevocationFacts::default(),
        )
        .unwrap_err();
        assert_eq!(err.code, ErrorCode::Unprocessable);
        let err = run(
            target,
            Action::Revoke(Reason::KeyCompromise),
            RevocationFacts::default(),
        )
        .unwrap_err();
        assert_eq!(err.code, ErrorCode::NotFound);
    }

    #[test]
    fn a_ca_is_revoked_once() {
        let target = Target::Ca(ProductId::parse("sensor").unwrap());
        let reason = Action::Revoke(Reason::CaCompromise);
        let unknown = run(target.clone(), reason, RevocationFacts::default()).unwrap_err();
        assert_eq!(unknown.code, ErrorCode::NotFound);
        let fresh = RevocationFacts {
            ca: Some(None),
            ..Default::default()
        };
        let change = run(target.clone(), reason, fresh).unwrap();
        assert_eq!(change.revoke_ca, Some(ProductId::parse("sensor").unwrap()));
        assert!(change.event.is_some());
        let twice = RevocationFacts {
            ca: Some(Some(RevokedAt {
                reason: Reason::CaCompromise,
                at: AT,
            })),
            ..Default::default()
        };
        assert_eq!(run(target, reason, twice).unwrap().event, None);
    }

    #[test]
    fn provenance_is_one_event_over_the_span() {
        let target = Target::Provenance {
            station: StationId::parse("line-1").unwrap(),
            from: datetime!(2026-05-01 0:00 UTC),
            to: datetime!(2026-05-02 0:00 UTC),
        };
        let facts = RevocationFacts {
            certificates: vec![cert(1, None), cert(2, None)],
            station_factory: Some(FactoryId::parse("fab").unwrap()),
            ..Default::default()
        };
        let change = run(target.clone(), Action::Revoke(Reason::KeyCompromise), facts).unwrap();
        assert_eq!(change.revoke.len(), 2);
        let EventBody::ProvenanceRevoked {
            units, from, to, ..
        } = change.event.unwrap().body
        else {
            panic!("not a provenance event");
        };
        assert_eq!(
            (units, from.as_str(), to.as_str()),
            (2, "2026-05-01T00:00:00.000Z", "2026-05-02T00:00:00.000Z")
        );
        let err = run(
            target,
            Action::Revoke(Reason::KeyCompromise),
            RevocationFacts::default(),
        )
        .unwrap_err();
        assert_eq!(err.code, ErrorCode::NotFound);
        let backwards = Target::Provenance {
            station: StationId::parse("line-1").unwrap(),
            from: datetime!(2026-05-02 0:00 UTC),
            to: datetime!(2026-05-01 0:00 UTC),
        };
        let err = run(
            backwards,
            Action::Revoke(Reason::KeyCompromise),
            RevocationFacts::default(),
        )
        .unwrap_err();
        assert_eq!(err.code, ErrorCode::Unprocessable);
    }
}
