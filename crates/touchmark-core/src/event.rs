//! Log events: one for every state change, refusal and failed test (design.md §6).
//!
//! An event's canonical bytes are the RFC 8785 form of its JSON, and those bytes are the leaf of
//! the audit log. The schema is documented for auditors in `docs/events.md`; change it only by
//! adding a new schema version.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use touchmark_tlog::hash::leaf_hash;

use crate::clock::{format_timestamp, parse_timestamp};
use crate::code::ErrorCode;
use crate::id::{FactoryId, OrderId, ProductId, StationId, TokenId};
use crate::serial::Serial;

/// The schema version written into every event as `v`.
pub const SCHEMA_VERSION: u64 = 1;

/// A SHA-256 digest, written as 64 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sha256Hash(pub [u8; 32]);

impl Sha256Hash {
    /// SHA-256 of `data`.
    pub fn of(data: &[u8]) -> Self {
        Self(Sha256::digest(data).into())
    }

    /// Parses 64 hex digits.
    pub fn from_hex(text: &str) -> Option<Self> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(text, &mut out).ok()?;
        Some(Self(out))
    }

    /// The digest as lowercase hex.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Debug for Sha256Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sha256Hash({})", self.to_hex())
    }
}

impl fmt::Display for Sha256Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl Serialize for Sha256Hash {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for Sha256Hash {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Self::from_hex(&text).ok_or_else(|| serde::de::Error::custom("expected 64 hex digits"))
    }
}

/// Who caused an event: an API token, an enrolling station, or the system itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// `touchmark init` or another local command run with the data directory.
    System,
    /// An admin API token.
    Token(TokenId),
}

impl Serialize for Actor {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::System => s.serialize_str("system"),
            Self::Token(id) => s.serialize_str(&format!("token:{id}")),
        }
    }
}

impl<'de> Deserialize<'de> for Actor {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        if text == "system" {
            return Ok(Self::System);
        }
        text.strip_prefix("token:")
            .and_then(|id| TokenId::parse(id).ok())
            .map(Self::Token)
            .ok_or_else(|| serde::de::Error::custom("expected `system` or `token:<id>`"))
    }
}

/// What happened. The `type` tag and every field name are part of the log's public schema.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", deny_unknown_fields)]
#[non_exhaustive]
pub enum EventBody {
    /// An API token was created.
    #[serde(rename = "token.created")]
    TokenCreated {
        /// The token's public id.
        token: TokenId,
        /// Its role.
        role: crate::entity::Role,
        /// Who created it.
        actor: Actor,
    },
    /// A product and its issuing CA were created.
    #[serde(rename = "product.created")]
    ProductCreated {
        /// The product.
        product: ProductId,
        /// Subject O of its device certificates.
        organization: String,
        /// Subject CN of its device certificates.
        common_name: String,
        /// SHA-256 of the issuing CA certificate (DER); absent when the device root is offline
        /// and the certificate is installed later (`ca.installed`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        issuing_ca_sha256: Option<Sha256Hash>,
        /// SHA-256 of each vendor root (DER) its units' keys must be attested to, when it
        /// requires secure-element attestation.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        attestation_roots: Vec<Sha256Hash>,
        /// Who created it.
        actor: Actor,
    },
    /// A product's issuing CA certificate, signed by the offline device root, was checked
    /// (its key, its profile, its chain to the device root) and installed: from now on the
    /// product's key signs under it.
    #[serde(rename = "ca.installed")]
    CaInstalled {
        /// The product.
        product: ProductId,
        /// The key that signs under it: `product-<id>`.
        key: String,
        /// SHA-256 of the installed certificate (DER).
        issuing_ca_sha256: Sha256Hash,
        /// SHA-256 of its public key (the DER SubjectPublicKeyInfo): the key's, as its
        /// `key.generated` gives it.
        public_key_sha256: Sha256Hash,
        /// Who installed it.
        actor: Actor,
    },
    /// A factory was created.
    #[serde(rename = "factory.created")]
    FactoryCreated {
        /// The factory.
        factory: FactoryId,
        /// Who created it.
        actor: Actor,
    },
    /// A station was created and given a one-time enrollment token.
    #[serde(rename = "station.created")]
    StationCreated {
        /// The station.
        station: StationId,
        /// Its factory.
        factory: FactoryId,
        /// Who created it.
        actor: Actor,
    },
    /// A station enrolled and received its mTLS certificate.
    #[serde(rename = "station.enrolled")]
    StationEnrolled {
        /// The station.
        station: StationId,
        /// Its factory.
        factory: FactoryId,
        /// SHA-256 of its certificate (DER).
        cert_sha256: Sha256Hash,
        /// SHA-256 of its public key (SubjectPublicKeyInfo DER).
        pubkey_sha256: Sha256Hash,
    },
    /// A station was revoked.
    #[serde(rename = "station.revoked")]
    StationRevoked {
        /// The station.
        station: StationId,
        /// Its factory.
        factory: FactoryId,
        /// Who revoked it.
        actor: Actor,
        /// The RFC 5280 reason, when one was given (`touchmark revoke station`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<crate::policy::revocation::Reason>,
    },
    /// An order was created (in draft).
    #[serde(rename = "order.created")]
    OrderCreated {
        /// The order.
        order: OrderId,
        /// The product it builds.
        product: ProductId,
        /// The factory that builds it.
        factory: FactoryId,
        /// Its quota.
        quota: u64,
        /// The serial rule, as text (`any`, `SN-000001..SN-000500`, `/pattern/`).
        serial_rule: String,
        /// Start of its window, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        not_before: Option<String>,
        /// End of its window, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        not_after: Option<String>,
        /// Who created it.
        actor: Actor,
    },
    /// An order opened.
    #[serde(rename = "order.opened")]
    OrderOpened {
        /// The order.
        order: OrderId,
        /// Who opened it.
        actor: Actor,
    },
    /// An order closed.
    #[serde(rename = "order.closed")]
    OrderClosed {
        /// The order.
        order: OrderId,
        /// Who closed it.
        actor: Actor,
    },
    /// An order was cancelled.
    #[serde(rename = "order.cancelled")]
    OrderCancelled {
        /// The order.
        order: OrderId,
        /// Who cancelled it.
        actor: Actor,
    },
    /// An order's quota changed.
    #[serde(rename = "order.quota_changed")]
    QuotaChanged {
        /// The order.
        order: OrderId,
        /// The quota before.
        old_quota: u64,
        /// The quota after.
        new_quota: u64,
        /// Who changed it.
        actor: Actor,
    },
    /// A unit passed, was counted and received its certificate.
    #[serde(rename = "unit.issued")]
    UnitIssued {
        /// The order it was counted against.
        order: OrderId,
        /// The product.
        product: ProductId,
        /// The factory.
        factory: FactoryId,
        /// The station that provisioned it.
        station: StationId,
        /// The unit's serial.
        serial: Serial,
        /// SHA-256 of the device certificate (DER).
        cert_sha256: Sha256Hash,
        /// SHA-256 of the device's public key (SubjectPublicKeyInfo DER).
        pubkey_sha256: Sha256Hash,
        /// SHA-256 of the normalized test record.
        test_sha256: Sha256Hash,
        /// The release whose image the unit received, re-wrapped to its own key, when its
        /// order has one: the serial → release lineage.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        release: Option<String>,
        /// SHA-256 of the unit's own image (the release with its key TLV re-wrapped).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        firmware_sha256: Option<Sha256Hash>,
    },
    /// A unit's test failed. The record is kept; no quota is consumed.
    #[serde(rename = "unit.test_failed")]
    TestFailed {
        /// The order.
        order: OrderId,
        /// The factory.
        factory: FactoryId,
        /// The station.
        station: StationId,
        /// The unit's serial.
        serial: Serial,
        /// SHA-256 of the device's public key, when its CSR was valid.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pubkey_sha256: Option<Sha256Hash>,
        /// SHA-256 of the normalized test record.
        test_sha256: Sha256Hash,
        /// Always `test_failed`.
        reason: ErrorCode,
    },
    /// A provisioning request was refused. Nothing was counted.
    #[serde(rename = "unit.refused")]
    UnitRefused {
        /// The order named in the request.
        order: OrderId,
        /// The station's factory, when the station is known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        factory: Option<FactoryId>,
        /// The station.
        station: StationId,
        /// The serial, when it was well formed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        serial: Option<Serial>,
        /// SHA-256 of the device's public key, when its CSR was valid.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pubkey_sha256: Option<Sha256Hash>,
        /// SHA-256 of the normalized test record, when it was valid.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        test_sha256: Option<Sha256Hash>,
        /// The refusal code.
        reason: ErrorCode,
    },
    /// An alert: a station was refused for want of standing (check 1, or an order that does not
    /// exist) again and again within one window. The
    /// window's first few refusals were logged as `unit.refused`; the `count` that followed
    /// were answered `rate_limited` and are recorded here once, instead of one entry each
    /// (`policy::refusals`).
    #[serde(rename = "station.refusal_flood")]
    RefusalFlood {
        /// The station the refused certificate identifies.
        station: StationId,
        /// Its factory.
        factory: FactoryId,
        /// The refusal code: `station_revoked`, `station_not_authorized` or `order_not_found`.
        reason: ErrorCode,
        /// Refusals answered `rate_limited` in the window, after its logged ones. At least 1.
        count: u64,
        /// When the window opened: the time of its first refusal.
        window_start: String,
        /// When the window closed.
        window_end: String,
    },
    /// A private key of the installation was made: by `touchmark init` (the roots, the
    /// station CA, the server's TLS key, the log key) or for a product's issuing CA. Names
    /// the key and its public key, so that an auditor knows which key signed what, from when.
    #[serde(rename = "key.generated")]
    KeyGenerated {
        /// The key's name: `root-ca`, `infra-root-ca`, `log`, `product-<id>`, …
        key: String,
        /// `ecdsa-p256` or `ed25519`.
        algorithm: String,
        /// Where it lives: `pkcs11` (inside a hardware token, never extractable), `files`
        /// (encrypted under the passphrase) or `memory` (tests).
        store: String,
        /// SHA-256 of its public key (the DER SubjectPublicKeyInfo).
        public_key_sha256: Sha256Hash,
        /// Who had it made.
        actor: Actor,
    },
    /// A private key moved from one store to another (`touchmark keys migrate`: from the
    /// encrypted files into a PKCS#11 token). The same key, so the same public key: an auditor
    /// checks it against the key's `key.generated`.
    #[serde(rename = "key.migrated")]
    KeyMigrated {
        /// The key's name.
        key: String,
        /// `ecdsa-p256` or `ed25519`.
        algorithm: String,
        /// Where it was: `files`, …
        from: String,
        /// Where it is now: `pkcs11`, …
        to: String,
        /// SHA-256 of its public key (the DER SubjectPublicKeyInfo).
        public_key_sha256: Sha256Hash,
        /// Who moved it.
        actor: Actor,
    },
    /// An alert was raised (design.md §9, `docs/oversight.md`): what a rule saw, with its
    /// evidence. It stays open until acknowledged or resolved.
    #[serde(rename = "alert.raised")]
    AlertRaised {
        /// The alert's id, unique in the installation.
        alert: String,
        /// Its kind (`crate::alert::AlertKind`), such as `clone_suspect` or `fpy_low`.
        kind: String,
        /// The order it concerns, if one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        order: Option<OrderId>,
        /// The station it concerns, if one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        station: Option<StationId>,
        /// The evidence, as named values written as text: the log index of the event that
        /// raised it, counts, rates, yields, capability indices.
        evidence: std::collections::BTreeMap<String, String>,
    },
    /// An alert was acknowledged: someone is looking at it.
    #[serde(rename = "alert.acknowledged")]
    AlertAcknowledged {
        /// The alert.
        alert: String,
        /// Who acknowledged it.
        actor: Actor,
    },
    /// An alert was resolved.
    #[serde(rename = "alert.resolved")]
    AlertResolved {
        /// The alert.
        alert: String,
        /// Who resolved it.
        actor: Actor,
    },
    /// A webhook endpoint was registered for alerts. Its secret is not logged.
    #[serde(rename = "webhook.added")]
    WebhookAdded {
        /// The webhook's id.
        webhook: String,
        /// Where deliveries go.
        url: String,
        /// The alert kinds it receives; empty for all.
        kinds: Vec<String>,
        /// Who added it.
        actor: Actor,
    },
    /// A release encryption key was made for a product (`docs/firmware.md`): the brand owner's
    /// build encrypts the product's images to its public key. The private key stays in the
    /// installation's key provider.
    #[serde(rename = "release_key.created")]
    ReleaseKeyCreated {
        /// The product.
        product: ProductId,
        /// The key's id.
        release_key: String,
        /// `x25519` or `ec256`.
        algorithm: String,
        /// Where the private key lives: `files`, `memory`, …
        store: String,
        /// SHA-256 of its public key (the DER SubjectPublicKeyInfo).
        public_key_sha256: Sha256Hash,
        /// Who had it made.
        actor: Actor,
    },
    /// A public key that signs a product's firmware images was registered. Touchmark holds no
    /// firmware signing private key.
    #[serde(rename = "firmware_key.added")]
    FirmwareKeyAdded {
        /// The product.
        product: ProductId,
        /// The key id: SHA-256 of its DER SubjectPublicKeyInfo (imgtool's KEYHASH).
        key_id: Sha256Hash,
        /// `p256` (ECDSA) or `ed25519`.
        algorithm: String,
        /// Who registered it.
        actor: Actor,
    },
    /// A release was uploaded: an MCUboot image of the product, signed by a registered key
    /// and encrypted to one of its release keys, stored as uploaded.
    #[serde(rename = "release.created")]
    ReleaseCreated {
        /// The product.
        product: ProductId,
        /// The release's id.
        release: String,
        /// The image header's version, `major.minor.revision+build`.
        version: String,
        /// SHA-256 of the image as uploaded.
        image_sha256: Sha256Hash,
        /// The image's size in bytes.
        size: u64,
        /// The id of the signing key that verified it.
        signing_key: Sha256Hash,
        /// The id of the release key its content key is wrapped to.
        release_key: String,
        /// SHA-256 of the SBOM as uploaded, if one was.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sbom_sha256: Option<Sha256Hash>,
        /// Who uploaded it.
        actor: Actor,
    },
    /// A release was withdrawn: it stays stored and listed, and is offered for nothing new.
    #[serde(rename = "release.withdrawn")]
    ReleaseWithdrawn {
        /// The product.
        product: ProductId,
        /// The release's id.
        release: String,
        /// Its version.
        version: String,
        /// Who withdrew it.
        actor: Actor,
    },
    /// An order names the release its units receive, re-wrapped each to its own key.
    #[serde(rename = "order.release_set")]
    OrderReleaseSet {
        /// The order.
        order: OrderId,
        /// The release's id.
        release: String,
        /// Its version.
        version: String,
        /// Who set it.
        actor: Actor,
    },
    /// A unit in the field received a later release of its product, re-wrapped to the
    /// encryption key it bound at provisioning, over its own device certificate's mTLS.
    #[serde(rename = "unit.firmware_delivered")]
    UnitFirmwareDelivered {
        /// The order the unit was counted against.
        order: OrderId,
        /// The product.
        product: ProductId,
        /// The unit's serial.
        serial: Serial,
        /// SHA-256 of the device certificate it authenticated with (DER).
        cert_sha256: Sha256Hash,
        /// The release's id.
        release: String,
        /// Its version.
        version: String,
        /// SHA-256 of the unit's own image (the release with its key TLV re-wrapped).
        firmware_sha256: Sha256Hash,
    },
    /// A unit's certificate was revoked (or put on hold, with `certificateHold`).
    #[serde(rename = "unit.revoked")]
    UnitRevoked {
        /// The product.
        product: ProductId,
        /// The order it was counted against.
        order: OrderId,
        /// The unit's serial.
        serial: Serial,
        /// SHA-256 of the certificate (DER), as its `unit.issued` event names it.
        cert_sha256: Sha256Hash,
        /// The RFC 5280 reason.
        reason: crate::policy::revocation::Reason,
        /// Who revoked it.
        actor: Actor,
    },
    /// A unit's `certificateHold` was released: its certificate is valid again.
    #[serde(rename = "unit.released")]
    UnitReleased {
        /// The product.
        product: ProductId,
        /// The order it was counted against.
        order: OrderId,
        /// The unit's serial.
        serial: Serial,
        /// SHA-256 of the certificate (DER).
        cert_sha256: Sha256Hash,
        /// Who released it.
        actor: Actor,
    },
    /// Every certificate issued under an order and not yet revoked was revoked, and the order
    /// closed: the units are those of its `unit.issued` events before this one, less those
    /// already revoked for good.
    #[serde(rename = "order.revoked")]
    OrderRevoked {
        /// The order.
        order: OrderId,
        /// Its product.
        product: ProductId,
        /// The RFC 5280 reason.
        reason: crate::policy::revocation::Reason,
        /// How many certificates this event revoked.
        units: u64,
        /// Who revoked it.
        actor: Actor,
    },
    /// A product's issuing CA was revoked: every unit under it is revoked for relying parties
    /// (through the root's CRL), and the CA issues nothing more.
    #[serde(rename = "ca.revoked")]
    CaRevoked {
        /// The product whose issuing CA it is.
        product: ProductId,
        /// The RFC 5280 reason.
        reason: crate::policy::revocation::Reason,
        /// Who revoked it.
        actor: Actor,
    },
    /// Every unit one station provisioned in `[from, to)` and not yet revoked was revoked: the
    /// units of the `unit.issued` events before this one that name the station with a time in
    /// the span, less those already revoked for good.
    #[serde(rename = "station.units_revoked")]
    ProvenanceRevoked {
        /// The station.
        station: StationId,
        /// Its factory.
        factory: FactoryId,
        /// The span's start, inclusive.
        from: String,
        /// The span's end, exclusive.
        to: String,
        /// The RFC 5280 reason.
        reason: crate::policy::revocation::Reason,
        /// How many certificates this event revoked.
        units: u64,
        /// Who revoked them.
        actor: Actor,
    },
    // Vulnerability reports (issue 18, docs/vulnerabilities.md). The log is public: these
    // events name reports by id and their content by hash, never the reporter's text.
    /// A vulnerability report was received through the public intake.
    #[serde(rename = "vuln.received")]
    VulnReceived {
        /// The report's tracking id.
        report: String,
        /// SHA-256 of the report's content (`vuln::ReportContent::canonical_bytes`).
        content_sha256: Sha256Hash,
    },
    /// A report moved from one state to another.
    #[serde(rename = "vuln.state_changed")]
    VulnStateChanged {
        /// The report.
        report: String,
        /// Its state before.
        from: String,
        /// Its state after.
        to: String,
        /// For a move to `fixed`: when the corrective measure became available.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        corrective_at: Option<String>,
        /// Who moved it.
        actor: Actor,
    },
    /// A report was classified under the CRA (Article 14): its clocks run from `aware_at`.
    #[serde(rename = "vuln.classified")]
    VulnClassified {
        /// The report.
        report: String,
        /// `exploited_vulnerability` or `severe_incident`.
        class: String,
        /// When the manufacturer became aware of it.
        aware_at: String,
        /// Who classified it.
        actor: Actor,
    },
    /// A CRA notification of a report was submitted.
    #[serde(rename = "vuln.submitted")]
    VulnSubmitted {
        /// The report.
        report: String,
        /// `early_warning`, `notification` or `final_report`.
        deadline: String,
        /// When it was submitted.
        submitted_at: String,
        /// Who recorded it.
        actor: Actor,
    },
    /// A report was linked to a product, optionally a release of it and an SBOM component.
    #[serde(rename = "vuln.linked")]
    VulnLinked {
        /// The report.
        report: String,
        /// The product.
        product: ProductId,
        /// The release's id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        release: Option<String>,
        /// The release's version.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        version: Option<String>,
        /// The component's package URL.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        purl: Option<String>,
        /// The component's affected versions (`vers`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        range: Option<String>,
        /// What the link states: `affected`, `fixed` or `not_affected`. Absent in links
        /// logged before links had a status: those state `affected`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        status: Option<String>,
        /// For `not_affected`: the CSAF flag label that says why.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        justification: Option<String>,
        /// Who linked it.
        actor: Actor,
    },
    /// A revision of a report's CSAF advisory was published: served from now on under
    /// `/.well-known/csaf/` in place of the revision before.
    #[serde(rename = "vuln.advisory_published")]
    VulnAdvisoryPublished {
        /// The report.
        report: String,
        /// The advisory's `/document/tracking/id`.
        tracking_id: String,
        /// Its `/document/tracking/version`: 1 for the first, one more for each after.
        version: u64,
        /// SHA-256 of the exact bytes served.
        sha256: Sha256Hash,
        /// Who published it.
        actor: Actor,
    },
}

impl EventBody {
    /// The `type` tag, such as `unit.issued`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::TokenCreated { .. } => "token.created",
            Self::ProductCreated { .. } => "product.created",
            Self::FactoryCreated { .. } => "factory.created",
            Self::StationCreated { .. } => "station.created",
            Self::StationEnrolled { .. } => "station.enrolled",
            Self::StationRevoked { .. } => "station.revoked",
            Self::OrderCreated { .. } => "order.created",
            Self::OrderOpened { .. } => "order.opened",
            Self::OrderClosed { .. } => "order.closed",
            Self::OrderCancelled { .. } => "order.cancelled",
            Self::QuotaChanged { .. } => "order.quota_changed",
            Self::UnitIssued { .. } => "unit.issued",
            Self::TestFailed { .. } => "unit.test_failed",
            Self::UnitRefused { .. } => "unit.refused",
            Self::RefusalFlood { .. } => "station.refusal_flood",
            Self::KeyGenerated { .. } => "key.generated",
            Self::KeyMigrated { .. } => "key.migrated",
            Self::AlertRaised { .. } => "alert.raised",
            Self::AlertAcknowledged { .. } => "alert.acknowledged",
            Self::AlertResolved { .. } => "alert.resolved",
            Self::WebhookAdded { .. } => "webhook.added",
            Self::ReleaseKeyCreated { .. } => "release_key.created",
            Self::FirmwareKeyAdded { .. } => "firmware_key.added",
            Self::ReleaseCreated { .. } => "release.created",
            Self::ReleaseWithdrawn { .. } => "release.withdrawn",
            Self::OrderReleaseSet { .. } => "order.release_set",
            Self::UnitFirmwareDelivered { .. } => "unit.firmware_delivered",
            Self::UnitRevoked { .. } => "unit.revoked",
            Self::UnitReleased { .. } => "unit.released",
            Self::OrderRevoked { .. } => "order.revoked",
            Self::CaRevoked { .. } => "ca.revoked",
            Self::CaInstalled { .. } => "ca.installed",
            Self::ProvenanceRevoked { .. } => "station.units_revoked",
            Self::VulnReceived { .. } => "vuln.received",
            Self::VulnStateChanged { .. } => "vuln.state_changed",
            Self::VulnClassified { .. } => "vuln.classified",
            Self::VulnSubmitted { .. } => "vuln.submitted",
            Self::VulnLinked { .. } => "vuln.linked",
            Self::VulnAdvisoryPublished { .. } => "vuln.advisory_published",
        }
    }

    /// The order the event concerns, if any.
    pub fn order(&self) -> Option<&OrderId> {
        match self {
            Self::OrderCreated { order, .. }
            | Self::OrderOpened { order, .. }
            | Self::OrderClosed { order, .. }
            | Self::OrderCancelled { order, .. }
            | Self::QuotaChanged { order, .. }
            | Self::UnitIssued { order, .. }
            | Self::TestFailed { order, .. }
            | Self::UnitRefused { order, .. }
            | Self::UnitRevoked { order, .. }
            | Self::UnitReleased { order, .. }
            | Self::OrderRevoked { order, .. }
            | Self::OrderReleaseSet { order, .. }
            | Self::UnitFirmwareDelivered { order, .. } => Some(order),
            Self::AlertRaised {
                order: Some(order), ..
            } => Some(order),
            _ => None,
        }
    }
}

/// An event: what happened, and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// When it happened.
    pub at: OffsetDateTime,
    /// What happened.
    pub body: EventBody,
}

/// Why event bytes could not be read back.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EventError {
    /// The bytes are not JSON of the event schema.
    #[error("not an event of schema {SCHEMA_VERSION}: {0}")]
    Schema(String),
    /// The bytes are an event, but not in canonical form.
    #[error("event bytes are not in RFC 8785 canonical form")]
    NotCanonical,
    /// The event could not be canonicalized.
    #[error("event cannot be canonicalized: {0}")]
    Canonical(String),
}

impl Event {
    /// An event at `at`.
    pub fn new(at: OffsetDateTime, body: EventBody) -> Self {
        Self { at, body }
    }

    /// The canonical bytes: RFC 8785 JSON of `{"v":1,"time":…,"type":…, fields…}`.
    ///
    /// # Errors
    /// [`EventError::Canonical`] if a field cannot be canonicalized (it cannot, for the
    /// fields defined here: they are strings and integers below 2^53).
    pub fn canonical_bytes(&self) -> Result<Vec<u8>, EventError> {
        let mut value =
            serde_json::to_value(&self.body).map_err(|e| EventError::Canonical(e.to_string()))?;
        let serde_json::Value::Object(map) = &mut value else {
            return Err(EventError::Canonical(
                "an event body must be a JSON object".into(),
            ));
        };
        map.insert("v".into(), SCHEMA_VERSION.into());
        map.insert("time".into(), format_timestamp(self.at).into());
        crate::canonical::to_canonical_vec(&value).map_err(|e| EventError::Canonical(e.to_string()))
    }

    /// Reads canonical event bytes back, refusing bytes that are not exactly canonical.
    ///
    /// # Errors
    /// [`EventError`] when the bytes are not a canonical event of this schema.
    pub fn from_canonical(bytes: &[u8]) -> Result<Self, EventError> {
        let mut map: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(bytes).map_err(|e| EventError::Schema(e.to_string()))?;
        match map.remove("v").and_then(|v| v.as_u64()) {
            Some(SCHEMA_VERSION) => {}
            other => {
                return Err(EventError::Schema(format!(
                    "schema version {other:?} is not {SCHEMA_VERSION}"
                )));
            }
        }
        let time = map.remove("time");
        let at = parse_timestamp(time.as_ref().and_then(|t| t.as_str()).unwrap_or_default())
            .map_err(EventError::Schema)?;
        let body: EventBody = serde_json::from_value(serde_json::Value::Object(map))
            .map_err(|e| EventError::Schema(e.to_string()))?;
        let event = Self { at, body };
        if event.canonical_bytes()? != bytes {
            return Err(EventError::NotCanonical);
        }
        Ok(event)
    }
}

/// An event encoded for the log, once: its canonical bytes and its leaf hash, with the columns a
/// store keeps beside them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leaf {
    /// The `type` tag, for filtering without parsing.
    pub kind: &'static str,
    /// The order the event concerns, for counting per order without parsing.
    pub order: Option<OrderId>,
    /// The canonical bytes: the log entry.
    pub bytes: Vec<u8>,
    /// The RFC 6962 leaf hash of the bytes, SHA-256(0x00 ‖ bytes).
    pub hash: touchmark_tlog::Hash,
}

impl Leaf {
    /// Where this leaf landed: at `index`, or not yet placed (`None`) when the store's sequencer
    /// gives indices after commit.
    pub fn logged(&self, index: Option<u64>) -> Logged {
        Logged {
            index,
            leaf_hash: self.hash,
        }
    }
}

impl TryFrom<&Event> for Leaf {
    type Error = EventError;

    fn try_from(event: &Event) -> Result<Self, EventError> {
        let bytes = event.canonical_bytes()?;
        Ok(Self {
            kind: event.body.kind(),
            order: event.body.order().cloned(),
            hash: leaf_hash(&bytes),
            bytes,
        })
    }
}

/// Where an event landed in the log: its index and leaf hash. What a client gets back for a
/// logged refusal or issuance, so that it can ask for the inclusion proof.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Logged {
    /// The event's index in the log, from 0. `None` while the entry waits for the sequencer: a
    /// backend shared by several replicas (PostgreSQL) commits entries without an index, and the
    /// elected sequencer gives them their indices in batches, within a second.
    pub index: Option<u64>,
    /// SHA-256(0x00 ‖ canonical bytes).
    pub leaf_hash: touchmark_tlog::Hash,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use time::macros::datetime;

    use super::*;

    fn issued() -> Event {
        Event::new(
            datetime!(2026-11-21 05:38:45.123 UTC),
            EventBody::UnitIssued {
                order: OrderId::parse("PO-1").unwrap(),
                product: ProductId::parse("sensor").unwrap(),
                factory: FactoryId::parse("acme").unwrap(),
                station: StationId::parse("line-1").unwrap(),
                serial: Serial::parse("SN-000001").unwrap(),
                cert_sha256: Sha256Hash([1; 32]),
                pubkey_sha256: Sha256Hash([2; 32]),
                test_sha256: Sha256Hash([3; 32]),
                release: None,
                firmware_sha256: None,
            },
        )
    }

    #[test]
    fn canonical_bytes_are_sorted_compact_json() {
        let bytes = issued().canonical_bytes().unwrap();
        let text = String::from_utf8(bytes).unwrap();
        let expected = format!(
            "{{\"cert_sha256\":\"{}\",\"factory\":\"acme\",\"order\":\"PO-1\",\"product\":\"sensor\",\
             \"pubkey_sha256\":\"{}\",\"serial\":\"SN-000001\",\"station\":\"line-1\",\"test_sha256\":\"{}\",\
             \"time\":\"2026-11-21T05:38:45.123Z\",\"type\":\"unit.issued\",\"v\":1}}",
            "01".repeat(32),
            "02".repeat(32),
            "03".repeat(32)
        );
        assert_eq!(text, expected);
    }

    #[test]
    fn events_round_trip_and_non_canonical_bytes_are_refused() {
        let event = issued();
        let bytes = event.canonical_bytes().unwrap();
        assert_eq!(Event::from_canonical(&bytes).unwrap(), event);
        let spaced = String::from_utf8(bytes).unwrap().replacen(',', ", ", 1);
        assert!(matches!(
            Event::from_canonical(spaced.as_bytes()),
            Err(EventError::NotCanonical)
        ));
        let unknown = br#"{"time":"2026-11-21T05:38:45.123Z","type":"unit.exploded","v":1}"#;
        assert!(matches!(
            Event::from_canonical(unknown),
            Err(EventError::Schema(_))
        ));
    }

    #[test]
    fn a_leaf_is_the_canonical_bytes_and_their_rfc6962_hash() {
        let event = issued();
        let leaf = Leaf::try_from(&event).unwrap();
        assert_eq!(leaf.bytes, event.canonical_bytes().unwrap());
        assert_eq!(leaf.hash, leaf_hash(&leaf.bytes));
        assert_eq!(
            (leaf.kind, leaf.order.as_ref().map(OrderId::as_str)),
            ("unit.issued", Some("PO-1"))
        );
        assert_eq!(
            leaf.logged(Some(7)),
            Logged {
                index: Some(7),
                leaf_hash: leaf.hash
            }
        );
    }

    #[test]
    fn optional_fields_are_omitted_not_null() {
        let event = Event::new(
            datetime!(2026-11-21 0:00 UTC),
            EventBody::UnitRefused {
                order: OrderId::parse("PO-1").unwrap(),
                factory: None,
                station: StationId::parse("s").unwrap(),
                serial: None,
                pubkey_sha256: None,
                test_sha256: None,
                reason: ErrorCode::SerialOutOfRange,
            },
        );
        let text = String::from_utf8(event.canonical_bytes().unwrap()).unwrap();
        assert!(!text.contains("null"), "{text}");
        assert!(text.contains("\"reason\":\"serial_out_of_range\""));
    }
}
