//! Requests as the authority takes them: checked, typed commands built at the edge from the
//! wire shapes of [`crate::api`], so the authority never sees an unchecked field.
//!
//! A `TryFrom` conversion names the first field at fault ([`FieldError`]); the server answers
//! it with `invalid_request`.

use time::{Duration, OffsetDateTime};

use crate::api;
use crate::entity::Role;
use crate::field::{FieldError, HttpUrl, Label, Oid, ProductName, SubjectText, timestamp};
use crate::id::{FactoryId, IdError, OrderId, ProductId, StationId};
use crate::policy::order::check_quota;
use crate::policy::revocation::{Action, Reason, Revocation, Target};
use crate::serial::SerialRule;
use crate::testrecord::TestRecord;

fn id<T>(
    field: &'static str,
    value: Option<&str>,
    parse: impl Fn(&str) -> Result<T, IdError>,
) -> Result<Option<T>, FieldError> {
    value
        .map(|v| parse(v).map_err(|e| FieldError::new(field, e.to_string())))
        .transpose()
}

fn url(field: &'static str, value: Option<&str>) -> Result<Option<HttpUrl>, FieldError> {
    value.map(|v| HttpUrl::parse(field, v)).transpose()
}

/// A new product and its issuing CA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewProduct {
    /// The id; generated when absent.
    pub id: Option<ProductId>,
    /// A human name; it also names the issuing CA.
    pub name: ProductName,
    /// Subject O of its device certificates.
    pub organization: SubjectText,
    /// Subject CN of its device certificates.
    pub common_name: SubjectText,
    /// The RFC 4108 hwType OID; one under 2.25 is made when absent.
    pub hw_type_oid: Option<Oid>,
    /// CRL distribution point URL.
    pub crl_url: Option<HttpUrl>,
    /// OCSP responder URL.
    pub ocsp_url: Option<HttpUrl>,
    /// Device certificate notAfter; 99991231235959Z when absent.
    pub cert_not_after: Option<OffsetDateTime>,
    /// The vendor roots of secure-element attestation, PEM, as sent (checked by the authority,
    /// which parses certificates).
    pub attestation_roots_pem: Option<String>,
}

impl TryFrom<api::CreateProduct> for NewProduct {
    type Error = FieldError;

    fn try_from(req: api::CreateProduct) -> Result<Self, FieldError> {
        Ok(Self {
            id: id("id", req.id.as_deref(), ProductId::parse)?,
            name: ProductName::parse("name", &req.name)?,
            organization: SubjectText::parse("organization", &req.organization)?,
            common_name: SubjectText::parse("common_name", &req.common_name)?,
            hw_type_oid: req
                .hw_type_oid
                .as_deref()
                .map(|oid| Oid::parse("hw_type_oid", oid))
                .transpose()?,
            crl_url: url("crl_url", req.crl_url.as_deref())?,
            ocsp_url: url("ocsp_url", req.ocsp_url.as_deref())?,
            cert_not_after: timestamp("cert_not_after", req.cert_not_after.as_deref())?,
            attestation_roots_pem: req.attestation_roots_pem,
        })
    }
}

/// A new factory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewFactory {
    /// The id; generated when absent.
    pub id: Option<FactoryId>,
    /// A human name.
    pub name: Label,
}

impl TryFrom<api::CreateFactory> for NewFactory {
    type Error = FieldError;

    fn try_from(req: api::CreateFactory) -> Result<Self, FieldError> {
        Ok(Self {
            id: id("id", req.id.as_deref(), FactoryId::parse)?,
            name: Label::parse("name", &req.name)?,
        })
    }
}

/// A new station, pending until its fixture PC enrolls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewStation {
    /// The id; generated when absent.
    pub id: Option<StationId>,
    /// The factory it belongs to.
    pub factory: FactoryId,
    /// A human name; the id when absent.
    pub name: Option<Label>,
    /// How long its enrollment token lasts.
    pub enrollment_ttl: Duration,
}

impl NewStation {
    /// The default lifetime of an enrollment token, in minutes: a day.
    pub const TTL_DEFAULT_MINUTES: u64 = 24 * 60;
    /// The longest lifetime of an enrollment token, in minutes: a week.
    pub const TTL_MAX_MINUTES: u64 = 7 * 24 * 60;
}

impl TryFrom<api::CreateStation> for NewStation {
    type Error = FieldError;

    fn try_from(req: api::CreateStation) -> Result<Self, FieldError> {
        let minutes = req
            .enrollment_ttl_minutes
            .unwrap_or(Self::TTL_DEFAULT_MINUTES);
        if !(1..=Self::TTL_MAX_MINUTES).contains(&minutes) {
            return Err(FieldError::new(
                "enrollment_ttl_minutes",
                format!("must be 1 to {}", Self::TTL_MAX_MINUTES),
            ));
        }
        Ok(Self {
            id: id("id", req.id.as_deref(), StationId::parse)?,
            factory: FactoryId::parse(&req.factory)
                .map_err(|e| FieldError::new("factory", e.to_string()))?,
            name: req
                .name
                .as_deref()
                .map(|n| Label::parse("name", n))
                .transpose()?,
            // Within i64 by the bound above.
            enrollment_ttl: Duration::minutes(minutes as i64),
        })
    }
}

/// A new order, in draft unless `open`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOrder {
    /// The id; generated when absent.
    pub id: Option<OrderId>,
    /// The product built.
    pub product: ProductId,
    /// The factory that builds it.
    pub factory: FactoryId,
    /// How many units may receive an identity.
    pub quota: u64,
    /// Which serials it admits.
    pub serial_rule: SerialRule,
    /// Start of its window.
    pub not_before: Option<OffsetDateTime>,
    /// End of its window, after its start.
    pub not_after: Option<OffsetDateTime>,
    /// Whether to open it at once.
    pub open: bool,
    /// The version of the product's release its units receive, if any.
    pub release: Option<String>,
}

impl TryFrom<api::CreateOrder> for NewOrder {
    type Error = FieldError;

    fn try_from(req: api::CreateOrder) -> Result<Self, FieldError> {
        let quota =
            check_quota(req.quota).map_err(|refusal| FieldError::new("quota", refusal.message))?;
        let serial_rule = match (&req.serial_range, &req.serial_pattern) {
            (Some(_), Some(_)) => {
                return Err(FieldError::rule(
                    "serial_range",
                    "give serial_range or serial_pattern, not both",
                ));
            }
            (Some(range), None) => SerialRule::parse_range(range)
                .map_err(|e| FieldError::rule("serial_range", e.to_string()))?,
            (None, Some(pattern)) => SerialRule::parse_pattern(pattern)
                .map_err(|e| FieldError::rule("serial_pattern", e.to_string()))?,
            (None, None) => SerialRule::Any,
        };
        let not_before = timestamp("not_before", req.not_before.as_deref())?;
        let not_after = timestamp("not_after", req.not_after.as_deref())?;
        if let (Some(a), Some(b)) = (not_before, not_after)
            && a >= b
        {
            return Err(FieldError::rule("not_before", "must be before not_after"));
        }
        Ok(Self {
            id: id("id", req.id.as_deref(), OrderId::parse)?,
            product: ProductId::parse(&req.product)
                .map_err(|e| FieldError::new("product", e.to_string()))?,
            factory: FactoryId::parse(&req.factory)
                .map_err(|e| FieldError::new("factory", e.to_string()))?,
            quota,
            serial_rule,
            not_before,
            not_after,
            open: req.open,
            release: match req.release {
                Some(v) if crate::firmware::parse_version(&v).is_none() => {
                    return Err(FieldError::rule(
                        "release",
                        "a release version is major.minor.revision[+build]",
                    ));
                }
                v => v,
            },
        })
    }
}

/// A new API token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTokenRequest {
    /// What it may do.
    pub role: Role,
    /// A note for humans.
    pub label: Label,
}

impl TryFrom<api::CreateToken> for NewTokenRequest {
    type Error = FieldError;

    fn try_from(req: api::CreateToken) -> Result<Self, FieldError> {
        Ok(Self {
            role: Role::from_str_opt(&req.role)
                .ok_or_else(|| FieldError::new("role", "must be `admin`, `auditor` or `field`"))?,
            label: Label::parse("label", &req.label)?,
        })
    }
}

/// One unit to provision: its serial as sent (check 3 decides on it, and a malformed serial is
/// a logged refusal), its CSR as sent (check 4, in `touchmark-pki`), and its test record,
/// parsed: a malformed record is bad input, refused before the policy and logged nowhere.
#[derive(Debug, Clone, PartialEq)]
pub struct Provision {
    /// The serial, as sent.
    pub serial: String,
    /// The CSR, PEM or base64 DER, as sent.
    pub csr: String,
    /// The test record.
    pub record: TestRecord,
    /// The unit's encryption key and its binding, as sent (checked by the authority, which
    /// knows the order's release).
    pub encryption_key: Option<api::EncryptionKeyBinding>,
    /// The unit's attestation certificates, as sent (checked by the authority against the
    /// product's vendor roots).
    pub attestation: Option<String>,
}

impl TryFrom<api::ProvisionRequest> for Provision {
    type Error = FieldError;

    fn try_from(req: api::ProvisionRequest) -> Result<Self, FieldError> {
        Ok(Self {
            // The API document says the record is an object; what it holds is a rule of its own.
            record: TestRecord::parse(&req.test).map_err(|e| {
                if req.test.is_object() {
                    FieldError::rule("test", e.to_string())
                } else {
                    FieldError::new("test", e.to_string())
                }
            })?,
            serial: req.serial,
            csr: req.csr,
            encryption_key: req.encryption_key,
            attestation: req.attestation,
        })
    }
}

/// The `reason` of a revocation: an RFC 5280 reason name, in any case.
///
/// # Errors
/// [`FieldError`] for a name RFC 5280 does not have (or `removeFromCRL`, which a release says).
pub fn revocation_reason(value: &str) -> Result<Reason, FieldError> {
    Reason::parse(value).ok_or_else(|| {
        FieldError::new(
            "reason",
            format!(
                "not an RFC 5280 reason; one of {}",
                Reason::ALL.map(Reason::as_str).join(", ")
            ),
        )
    })
}

/// A revocation of a unit (or the release of its hold) as the API names it: the serial in the
/// path, the product in the body when given.
///
/// # Errors
/// [`FieldError`] for a malformed serial, product or reason.
pub fn unit_revocation(
    serial: &str,
    product: Option<&str>,
    action: Option<&str>,
) -> Result<Revocation, FieldError> {
    let serial = crate::serial::Serial::parse(serial)
        .map_err(|e| FieldError::new("serial", e.to_string()))?;
    let product = id("product", product, ProductId::parse)?;
    let action = match action {
        Some(reason) => Action::Revoke(revocation_reason(reason)?),
        None => Action::Release,
    };
    Ok(Revocation {
        target: Target::Unit { product, serial },
        action,
    })
}

impl TryFrom<api::RevokeProvenance> for Revocation {
    type Error = FieldError;

    fn try_from(req: api::RevokeProvenance) -> Result<Self, FieldError> {
        let station = StationId::parse(&req.station)
            .map_err(|e| FieldError::new("station", e.to_string()))?;
        let from = timestamp("from", Some(&req.from))?.unwrap_or(OffsetDateTime::UNIX_EPOCH);
        let to = timestamp("to", Some(&req.to))?.unwrap_or(OffsetDateTime::UNIX_EPOCH);
        if to <= from {
            return Err(FieldError::rule("to", "must be after from"));
        }
        Ok(Self {
            target: Target::Provenance { station, from, to },
            action: Action::Revoke(revocation_reason(&req.reason)?),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn product() -> api::CreateProduct {
        api::CreateProduct {
            id: Some("sensor".into()),
            name: "Sensor".into(),
            organization: "Acme".into(),
            common_name: "Acme Sensor".into(),
            hw_type_oid: None,
            crl_url: None,
            ocsp_url: None,
            cert_not_after: None,
            attestation_roots_pem: None,
        }
    }

    #[test]
    fn each_bad_field_is_named() {
        type Edit = fn(&mut api::CreateProduct);
        let cases: [(&str, Edit, &str); 6] = [
            ("bad id", |r| r.id = Some("-x".into()), "id"),
            (
                "name too long for its CA",
                |r| r.name = "n".repeat(54),
                "name",
            ),
            (
                "organization too long",
                |r| r.organization = "o".repeat(65),
                "organization",
            ),
            (
                "bad OID",
                |r| r.hw_type_oid = Some("1.99".into()),
                "hw_type_oid",
            ),
            (
                "bad URL",
                |r| r.ocsp_url = Some("ldap://x".into()),
                "ocsp_url",
            ),
            (
                "bad time",
                |r| r.cert_not_after = Some("tomorrow".into()),
                "cert_not_after",
            ),
        ];
        for (name, edit, field) in cases {
            let mut req = product();
            edit(&mut req);
            assert_eq!(
                NewProduct::try_from(req).unwrap_err().field,
                field,
                "{name}"
            );
        }
        assert!(NewProduct::try_from(product()).is_ok());
    }

    #[test]
    fn order_windows_and_rules_are_checked() {
        let order = |edit: fn(&mut api::CreateOrder)| {
            let mut req = api::CreateOrder {
                id: None,
                product: "p".into(),
                factory: "f".into(),
                quota: 5,
                serial_range: None,
                serial_pattern: None,
                not_before: None,
                not_after: None,
                open: false,
                release: None,
            };
            edit(&mut req);
            NewOrder::try_from(req)
        };
        assert!(order(|_| {}).is_ok());
        let err = |e: Result<NewOrder, FieldError>| e.unwrap_err().field;
        assert_eq!(err(order(|r| r.quota = u64::MAX)), "quota");
        assert_eq!(
            err(order(|r| {
                r.serial_range = Some("A1..A9".into());
                r.serial_pattern = Some("A.".into());
            })),
            "serial_range"
        );
        assert_eq!(
            err(order(|r| {
                r.not_before = Some("2026-02-01T00:00:00Z".into());
                r.not_after = Some("2026-01-01T00:00:00Z".into());
            })),
            "not_before"
        );
    }

    #[test]
    fn enrollment_ttls_are_bounded() {
        let station = |ttl| {
            NewStation::try_from(api::CreateStation {
                id: None,
                factory: "f".into(),
                name: None,
                enrollment_ttl_minutes: ttl,
            })
        };
        assert_eq!(station(None).unwrap().enrollment_ttl, Duration::days(1));
        assert!(station(Some(0)).is_err());
        assert!(station(Some(NewStation::TTL_MAX_MINUTES + 1)).is_err());
        assert_eq!(
            station(Some(1)).unwrap().enrollment_ttl,
            Duration::minutes(1)
        );
    }
}
