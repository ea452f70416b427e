//! Products, factories, stations and API roles: the records an admin manages.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::event::Sha256Hash;
use crate::id::{FactoryId, ProductId, StationId, TokenId};

/// A product: a SKU, the subject its device certificates carry, and its issuing CA.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Product {
    /// The product's identifier.
    pub id: ProductId,
    /// A human name.
    pub name: String,
    /// Subject O of device certificates.
    pub organization: String,
    /// Subject CN of device certificates.
    pub common_name: String,
    /// The RFC 4108 hwType OID, dotted, placed in hardwareModuleName.
    pub hw_type_oid: String,
    /// CRL distribution point URL, when configured.
    pub crl_url: Option<String>,
    /// OCSP responder URL (AIA), when configured.
    pub ocsp_url: Option<String>,
    /// Device certificate notAfter; `None` means 99991231235959Z.
    #[serde(with = "time::serde::rfc3339::option")]
    pub cert_not_after: Option<OffsetDateTime>,
    /// The product's issuing CA certificate, PEM; empty while it awaits the certificate an
    /// offline root signs (`ca csr`, then `ca install`).
    pub issuing_ca_pem: String,
    /// The chip vendor's root certificates, PEM, when the product requires secure-element
    /// attestation of its units' keys: each unit's identity key (and encryption key, for a
    /// release) must be certified up to one of them. Set when the product is created.
    #[serde(default)]
    pub attestation_roots_pem: Option<String>,
    /// When the product was created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

impl Product {
    /// Whether its issuing CA certificate is installed: until then it issues nothing, and no
    /// order may name it.
    pub fn ca_installed(&self) -> bool {
        !self.issuing_ca_pem.trim().is_empty()
    }
}

/// A factory: a contract manufacturer's site, owner of stations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Factory {
    /// The factory's identifier.
    pub id: FactoryId,
    /// A human name.
    pub name: String,
    /// When the factory was created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// Where a station is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StationStatus {
    /// Created; waiting for the fixture PC to enroll with its one-time token.
    Pending,
    /// Enrolled: it holds an mTLS certificate from the station CA.
    Active,
    /// Revoked: refused at once, whatever certificate it presents.
    Revoked,
}

impl StationStatus {
    /// The status as stored and sent.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Active => "active",
            Self::Revoked => "revoked",
        }
    }

    /// Parses a stored status.
    pub fn from_str_opt(text: &str) -> Option<Self> {
        [Self::Pending, Self::Active, Self::Revoked]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

/// A station: one test fixture on a factory's line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Station {
    /// The station's identifier.
    pub id: StationId,
    /// The factory the station belongs to.
    pub factory: FactoryId,
    /// A human name.
    pub name: String,
    /// Where it is in its life.
    pub status: StationStatus,
    /// When its enrollment token expires (meaningful while pending).
    #[serde(with = "time::serde::rfc3339")]
    pub enrollment_expires_at: OffsetDateTime,
    /// SHA-256 of its current mTLS certificate (DER), once enrolled.
    pub cert_sha256: Option<Sha256Hash>,
    /// When the station was created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// What an API token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything: products, orders, quotas, stations, tokens.
    Admin,
    /// Read-only access to everything.
    Auditor,
    /// A field backend (issue 17): verifies device chains and reports sightings on
    /// `/v1/field/*`, and nothing else.
    Field,
}

impl Role {
    /// The role as stored and sent.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Auditor => "auditor",
            Self::Field => "field",
        }
    }

    /// Parses a stored role.
    pub fn from_str_opt(text: &str) -> Option<Self> {
        [Self::Admin, Self::Auditor, Self::Field]
            .into_iter()
            .find(|r| r.as_str() == text)
    }
}

/// An API token's record. The secret itself is never stored, only its SHA-256.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiToken {
    /// The token's public identifier.
    pub id: TokenId,
    /// What it may do.
    pub role: Role,
    /// A note for humans.
    pub label: String,
    /// When it was created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Whether it was revoked.
    pub revoked: bool,
}

/// A unit's status (design.md §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnitStatus {
    /// Tested and failed; consumed no quota.
    FailedTest,
    /// Counted and certified.
    Provisioned,
    /// Certified, then revoked.
    Revoked,
}

impl UnitStatus {
    /// The status as stored and sent.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::FailedTest => "failed_test",
            Self::Provisioned => "provisioned",
            Self::Revoked => "revoked",
        }
    }

    /// Parses a stored status.
    pub fn from_str_opt(text: &str) -> Option<Self> {
        [Self::FailedTest, Self::Provisioned, Self::Revoked]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}
