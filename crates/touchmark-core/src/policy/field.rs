//! The field's verdict on a device (issue 17): `genuine`, `unknown`, `revoked` or
//! `clone_suspect`, from the facts the authority and the store gather about one presented
//! chain. Pure: the same facts give the same verdict wherever it is taken.
//!
//! In order, the first that fails decides:
//! 1. `chain`: the chain verifies by its signatures up to the installation's device root, at
//!    the server's time. Otherwise `unknown`: not from this installation (a look-alike CA with
//!    the same names included), expired, not valid yet, or unparseable.
//! 2. `issued`: this exact certificate (its DER's SHA-256) is one the installation issued and
//!    stored. Otherwise `unknown`: a certificate signed by a stolen or misused key, never
//!    issued through an order.
//! 3. `revocation`: neither the certificate nor its product's issuing CA is revoked.
//!    Otherwise `revoked`, with the reason and time.
//! 4. `possession`: when a proof was sent, it verifies with the certificate's key. A failed
//!    proof makes the verdict `clone_suspect`: the certificate is genuine, its presenter does
//!    not hold its key. Without a proof the check reads `not_checked`.

use time::OffsetDateTime;

use crate::TokenId;
use crate::api::{FieldCheck, FieldRevocation, FieldUnit, FieldVerdict};
use crate::clock::format_timestamp;
use crate::code::{ErrorCode, Refusal};
use crate::policy::revocation::RevokedAt;

/// How the chain's verification went: `Ok`, or the check's result and a message.
pub type ChainOutcome = Result<(), (&'static str, String)>;

/// What the store holds about an issued certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedFacts {
    /// The unit's serial.
    pub serial: String,
    /// Its product.
    pub product: String,
    /// The order it was counted against.
    pub order: String,
    /// The order's factory, when the order is found.
    pub factory: Option<String>,
    /// The station that provisioned it.
    pub station: Option<String>,
    /// When the certificate was issued.
    pub issued_at: String,
    /// The certificate's revocation, if it is revoked.
    pub revoked: Option<RevokedAt>,
    /// The product's issuing CA's revocation, if it is revoked.
    pub ca_revoked: Option<RevokedAt>,
}

/// Whether the presenter proved it holds the certificate's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Possession {
    /// No proof was sent.
    NotChecked,
    /// The proof verified.
    Passed,
    /// The proof did not verify, and why.
    Failed(String),
}

/// Everything the verdict is made from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldFacts {
    /// Check 1.
    pub chain: ChainOutcome,
    /// Check 2: `None` when the certificate was never issued here.
    pub issued: Option<IssuedFacts>,
    /// Check 4.
    pub possession: Possession,
}

/// A stored challenge, as a proof names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChallengeFacts {
    /// The token it was given to.
    pub token: TokenId,
    /// When it stops being accepted.
    pub expires_at: OffsetDateTime,
    /// Whether a proof named it before.
    pub used_before: bool,
}

/// Whether a proof sent by `caller` at `now` may name the challenge `found` (`None`: no such
/// challenge). A challenge is accepted once, before it expires, from the token it was given
/// to; otherwise `challenge_invalid`, and nothing is verified.
///
/// # Errors
/// The `challenge_invalid` refusal that says which.
pub fn check_challenge(
    found: Option<&ChallengeFacts>,
    caller: &TokenId,
    now: OffsetDateTime,
) -> Result<(), Refusal> {
    let refuse = |why: &str| {
        Err(Refusal::new(
            ErrorCode::ChallengeInvalid,
            format!(
                "the proof of possession's challenge {why}: ask `POST /v1/field/challenge` for a new one"
            ),
        ))
    };
    match found {
        None => refuse("is unknown to this server"),
        Some(c) if c.token != *caller => refuse("was given to another token"),
        Some(c) if c.used_before => refuse("was used already"),
        Some(c) if now > c.expires_at => refuse("has expired"),
        Some(_) => Ok(()),
    }
}

fn check(name: &str, result: &str, detail: impl Into<Option<String>>) -> FieldCheck {
    FieldCheck {
        name: name.to_owned(),
        result: result.to_owned(),
        detail: detail.into(),
    }
}

fn revocation(r: RevokedAt, scope: &str) -> FieldRevocation {
    FieldRevocation {
        scope: scope.to_owned(),
        reason: r.reason.as_str().to_owned(),
        revoked_at: format_timestamp(r.at),
    }
}

/// The verdict on `facts`, with every check that was made and its result.
pub fn judge(facts: &FieldFacts) -> FieldVerdict {
    let mut checks = Vec::new();
    let mut answer = FieldVerdict {
        verdict: "unknown".into(),
        reason: None,
        unit: None,
        revocation: None,
        evidence: Vec::new(),
        checks: Vec::new(),
    };
    if let Err((result, message)) = &facts.chain {
        checks.push(check("chain", result, message.clone()));
        answer.reason = Some(format!(
            "the chain was not verified up to this installation's device root: {message}"
        ));
        answer.checks = checks;
        return answer;
    }
    checks.push(check("chain", "verified", None::<String>));
    let Some(issued) = &facts.issued else {
        checks.push(check(
            "issued",
            "not_found",
            "no certificate with this exact DER was issued by this installation".to_owned(),
        ));
        answer.reason = Some(
            "the certificate verifies, but this installation never issued it: it was not made through an order".into(),
        );
        answer.checks = checks;
        return answer;
    };
    checks.push(check("issued", "found", None::<String>));
    answer.unit = Some(FieldUnit {
        serial: issued.serial.clone(),
        product: issued.product.clone(),
        order: issued.order.clone(),
        factory: issued.factory.clone(),
        station: issued.station.clone(),
        issued_at: issued.issued_at.clone(),
        release: None,
    });
    let revoked = issued
        .ca_revoked
        .map(|r| revocation(r, "ca"))
        .or_else(|| issued.revoked.map(|r| revocation(r, "unit")));
    if let Some(revoked) = revoked {
        checks.push(check("revocation", "revoked", None::<String>));
        answer.verdict = "revoked".into();
        answer.reason = Some(format!(
            "the {} was revoked at {} ({})",
            if revoked.scope == "ca" {
                "product's issuing CA"
            } else {
                "unit's certificate"
            },
            revoked.revoked_at,
            revoked.reason
        ));
        answer.revocation = Some(revoked);
        answer.checks = checks;
        return answer;
    }
    checks.push(check("revocation", "not_revoked", None::<String>));
    match &facts.possession {
        Possession::NotChecked => {
            checks.push(check(
                "possession",
                "not_checked",
                "no proof of possession was sent: a copy of the certificate would pass as well"
                    .to_owned(),
            ));
        }
        Possession::Passed => checks.push(check("possession", "passed", None::<String>)),
        Possession::Failed(why) => {
            checks.push(check("possession", "failed", why.clone()));
            answer.verdict = "clone_suspect".into();
            answer.reason = Some(
                "the certificate is genuine, but its presenter did not prove it holds the unit's key".into(),
            );
            answer.evidence.push(format!("possession_failed: {why}"));
            answer.checks = checks;
            return answer;
        }
    }
    answer.verdict = "genuine".into();
    answer.checks = checks;
    answer
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used)]

    use super::*;
    use crate::policy::revocation::Reason;

    fn issued() -> IssuedFacts {
        IssuedFacts {
            serial: "SN-1".into(),
            product: "p".into(),
            order: "o".into(),
            factory: Some("f".into()),
            station: Some("s".into()),
            issued_at: "2026-01-01T00:00:00Z".into(),
            revoked: None,
            ca_revoked: None,
        }
    }

    fn facts(issued: Option<IssuedFacts>, possession: Possession) -> FieldFacts {
        FieldFacts {
            chain: Ok(()),
            issued,
            possession,
        }
    }

    fn results(v: &FieldVerdict) -> Vec<(String, String)> {
        v.checks
            .iter()
            .map(|c| (c.name.clone(), c.result.clone()))
            .collect()
    }

    #[test]
    fn a_chain_that_does_not_verify_is_unknown_and_nothing_else_is_checked() {
        let v = judge(&FieldFacts {
            chain: Err(("unknown_issuer", "another CA".into())),
            issued: Some(issued()),
            possession: Possession::Passed,
        });
        assert_eq!(v.verdict, "unknown");
        assert!(v.unit.is_none());
        assert_eq!(
            results(&v),
            [("chain".to_owned(), "unknown_issuer".to_owned())]
        );
    }

    #[test]
    fn a_certificate_never_issued_is_unknown() {
        let v = judge(&facts(None, Possession::Passed));
        assert_eq!(v.verdict, "unknown");
        assert_eq!(v.checks[1].result, "not_found");
    }

    #[test]
    fn revocation_of_the_unit_or_its_ca_is_revoked_with_reason_and_time() {
        let at = OffsetDateTime::UNIX_EPOCH;
        let mut unit = issued();
        unit.revoked = Some(RevokedAt {
            reason: Reason::KeyCompromise,
            at,
        });
        let v = judge(&facts(Some(unit.clone()), Possession::NotChecked));
        assert_eq!(v.verdict, "revoked");
        let r = v.revocation.expect("revocation");
        assert_eq!(
            (r.scope.as_str(), r.reason.as_str()),
            ("unit", "keyCompromise")
        );
        unit.ca_revoked = Some(RevokedAt {
            reason: Reason::CaCompromise,
            at,
        });
        let v = judge(&facts(Some(unit), Possession::NotChecked));
        assert_eq!(v.revocation.expect("revocation").scope, "ca");
    }

    #[test]
    fn possession_decides_between_genuine_and_clone_suspect() {
        let v = judge(&facts(Some(issued()), Possession::Passed));
        assert_eq!(v.verdict, "genuine");
        assert_eq!(v.unit.as_ref().map(|u| u.serial.as_str()), Some("SN-1"));
        let v = judge(&facts(Some(issued()), Possession::NotChecked));
        assert_eq!(v.verdict, "genuine");
        assert_eq!(v.checks[3].result, "not_checked");
        let v = judge(&facts(Some(issued()), Possession::Failed("bad".into())));
        assert_eq!(v.verdict, "clone_suspect");
        assert_eq!(v.evidence.len(), 1);
    }

    #[test]
    fn a_challenge_is_accepted_once_before_it_expires_from_its_own_token() {
        let t0 = OffsetDateTime::UNIX_EPOCH;
        let mine = TokenId::parse("t-field").expect("id");
        let other = TokenId::parse("t-other").expect("id");
        let fresh = ChallengeFacts {
            token: mine.clone(),
            expires_at: t0 + time::Duration::seconds(60),
            used_before: false,
        };
        assert!(check_challenge(Some(&fresh), &mine, t0).is_ok());
        let code = |r: Result<(), Refusal>| r.map_err(|e| e.code);
        assert_eq!(
            code(check_challenge(None, &mine, t0)),
            Err(ErrorCode::ChallengeInvalid)
        );
        assert_eq!(
            code(check_challenge(Some(&fresh), &other, t0)),
            Err(ErrorCode::ChallengeInvalid)
        );
        let used = ChallengeFacts {
            used_before: true,
            ..fresh.clone()
        };
        assert!(check_challenge(Some(&used), &mine, t0).is_err());
        let late = t0 + time::Duration::seconds(61);
        assert!(check_challenge(Some(&fresh), &mine, late).is_err());
    }
}
