//! The JSON shapes of the `/v1` API, shared by the server and the client.
//!
//! Requests reject unknown fields, so a misspelt field is an error rather than silently
//! ignored. Timestamps are RFC 3339 strings, hashes lowercase hex.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[cfg(feature = "openapi")]
use utoipa::ToSchema;

mod field;
mod vuln;

pub use field::{
    FieldChallenge, FieldCheck, FieldRevocation, FieldUnit, FieldVerdict, FieldVerify,
    PossessionProof,
};
pub use vuln::{
    AffectedBody, AffectedUnitBody, AffectedUnitsBody, ChangeReportState, ClassifyReport,
    DeadlineBody, LinkBody, LinkReport, RecordSubmission, ReportBody, ReportReceipt, ReportStatus,
    SubmitReport, WriteAdvisory,
};

/// A count in a request. JSON has one kind of number, and the API document's `integer` is any
/// number without a fractional part, so `43.0` is the count 43 as much as `43` is.
mod count {
    use serde::de::{self, Deserializer, Visitor};

    /// The largest count a float carries exactly (2^53).
    const EXACT: f64 = 9_007_199_254_740_992.0;

    struct Count;

    impl Visitor<'_> for Count {
        type Value = u64;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a whole number, not negative")
        }

        fn visit_u64<E: de::Error>(self, v: u64) -> Result<u64, E> {
            Ok(v)
        }

        fn visit_i64<E: de::Error>(self, v: i64) -> Result<u64, E> {
            u64::try_from(v).map_err(|_| E::invalid_value(de::Unexpected::Signed(v), &self))
        }

        fn visit_f64<E: de::Error>(self, v: f64) -> Result<u64, E> {
            if v.fract() == 0.0 && (0.0..=EXACT).contains(&v) {
                // Whole and within 2^53: the conversion is exact.
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                Ok(v as u64)
            } else {
                Err(E::invalid_value(de::Unexpected::Float(v), &self))
            }
        }
    }

    struct Whole(u64);

    impl<'de> serde::Deserialize<'de> for Whole {
        fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
            de.deserialize_any(Count).map(Whole)
        }
    }

    pub fn required<'de, D: Deserializer<'de>>(de: D) -> Result<u64, D::Error> {
        <Whole as serde::Deserialize>::deserialize(de).map(|w| w.0)
    }

    pub fn optional<'de, D: Deserializer<'de>>(de: D) -> Result<Option<u64>, D::Error> {
        <Option<Whole> as serde::Deserialize>::deserialize(de).map(|w| w.map(|w| w.0))
    }
}

/// Every error response: a stable code and a message for humans.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ErrorBody {
    /// The stable code, such as `quota_exhausted`.
    pub code: String,
    /// What was wrong.
    pub message: String,
    /// For a provisioning refusal: where the refusal was logged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receipt: Option<ReceiptBody>,
}

/// Where an event landed in the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ReceiptBody {
    /// The event's index in the log. `null` while the entry waits for the sequencer: with a
    /// shared PostgreSQL database, the elected sequencer gives committed entries their indices
    /// within a second; the receipt endpoints then serve the index and inclusion proof.
    pub index: Option<u64>,
    /// SHA-256(0x00 ‖ canonical event bytes), hex.
    pub leaf_hash: String,
    /// The `c2sp.org/tlog-proof@v1` receipt (inclusion proof and signed checkpoint), once a
    /// checkpoint covers the entry; fetch it later from the receipt endpoints otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tlog_proof: Option<String>,
}

/// A station's request to provision one unit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ProvisionRequest {
    /// The unit's serial.
    pub serial: String,
    /// The unit's PKCS#10 CSR: PEM, or base64 of the DER.
    pub csr: String,
    /// The test record: Touchmark's JSON or OpenHTF's. It must name the unit it tested
    /// (`serial`, or OpenHTF's `dut_id`).
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub test: serde_json::Value,
    /// The unit's firmware encryption key, bound to its identity key: required when the order
    /// has a release, refused otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption_key: Option<EncryptionKeyBinding>,
    /// The unit's secure-element attestation: PEM certificates (or base64 DER) from its chip
    /// vendor that certify its identity key and, when the order has a release, its encryption
    /// key, with the vendor's intermediates. Required when the product names vendor roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attestation: Option<String>,
}

/// A unit's firmware encryption key and the signature that binds it to the unit's identity
/// key (`docs/firmware.md`, "The unit's encryption key").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct EncryptionKeyBinding {
    /// The public key, a `PUBLIC KEY` PEM: X25519 or P-256, the type of the release's key.
    pub public_key_pem: String,
    /// The identity key's ECDSA P-256 SHA-256 signature (DER, base64 with padding) over
    /// `touchmark-unit-encryption-key-v1`, then 0x00 and the order, 0x00 and the serial, 0x00
    /// and the encryption key's DER SubjectPublicKeyInfo.
    pub signature: String,
}

/// What a unit needs of its own image: the release's bytes with the key TLV's value replaced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct UnitFirmwareBody {
    /// The release's id.
    pub release: String,
    /// Its version.
    pub version: String,
    /// SHA-256 of the release image as uploaded, hex: what a station that caches it checks.
    pub release_sha256: String,
    /// SHA-256 of the unit's image, hex.
    pub image_sha256: String,
    /// The image's size in bytes (the release's).
    pub image_size: u64,
    /// Offset in the image of the key TLV's value.
    pub key_tlv_offset: u64,
    /// The key TLV's new value, base64 (with padding): splice it in at the offset.
    pub key_tlv_value: String,
    /// Where the whole image is served, over the station's mTLS.
    pub image_path: String,
}

/// A unit's certificate and the receipt of its issuance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ProvisionResponse {
    /// `issued`, or `already_issued` for a retry (nothing consumed).
    pub status: String,
    /// The order counted against.
    pub order: String,
    /// The unit's serial.
    pub serial: String,
    /// The device certificate, PEM.
    pub certificate_pem: String,
    /// The device certificate followed by the product's issuing CA, PEM.
    pub chain_pem: String,
    /// The device root CA, PEM: the trust anchor of the chain, and what a relying party of
    /// the devices trusts. It is not the root that anchors the server and the stations.
    pub root_ca_pem: String,
    /// SHA-256 of the device certificate (DER), hex.
    pub cert_sha256: String,
    /// Where the issuance was logged.
    pub receipt: ReceiptBody,
    /// The unit's firmware, when its order has a release.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firmware: Option<UnitFirmwareBody>,
}

/// Creates a product and its issuing CA.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateProduct {
    /// The id; generated when absent.
    #[serde(default)]
    pub id: Option<String>,
    /// A human name.
    pub name: String,
    /// Subject O of device certificates.
    pub organization: String,
    /// Subject CN of device certificates.
    pub common_name: String,
    /// RFC 4108 hwType OID, dotted; a Touchmark default when absent.
    #[serde(default)]
    pub hw_type_oid: Option<String>,
    /// CRL distribution point URL.
    #[serde(default)]
    pub crl_url: Option<String>,
    /// OCSP responder URL.
    #[serde(default)]
    pub ocsp_url: Option<String>,
    /// Device certificate notAfter (RFC 3339); 99991231235959Z when absent.
    #[serde(default)]
    pub cert_not_after: Option<String>,
    /// The chip vendor's root CA certificates, PEM: when given, every unit must attest its
    /// keys with certificates that chain to one of them (`docs/firmware.md`, "Attestation").
    #[serde(default)]
    pub attestation_roots_pem: Option<String>,
}

/// A product.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ProductBody {
    /// The id.
    pub id: String,
    /// A human name.
    pub name: String,
    /// Subject O of device certificates.
    pub organization: String,
    /// Subject CN of device certificates.
    pub common_name: String,
    /// RFC 4108 hwType OID.
    pub hw_type_oid: String,
    /// CRL distribution point URL.
    pub crl_url: Option<String>,
    /// OCSP responder URL.
    pub ocsp_url: Option<String>,
    /// Device certificate notAfter, when not the default.
    pub cert_not_after: Option<String>,
    /// The issuing CA certificate, PEM.
    pub issuing_ca_pem: String,
    /// When it was created.
    pub created_at: String,
    /// The chip vendor's root certificates, PEM, when the product requires secure-element
    /// attestation of its units' keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attestation_roots_pem: Option<String>,
}

/// A request for a product's issuing CA certificate, for the offline device root to sign.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct CaCsrBody {
    /// The PKCS#10 request, PEM: subject O and CN of the product's issuing CA, signed by its
    /// key.
    pub csr_pem: String,
}

/// A product's issuing CA certificate, signed by the offline device root, to install.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct InstallCa {
    /// The CA certificate, PEM.
    pub certificate_pem: String,
    /// The chain handed back with it, PEM: at most the device root itself.
    #[serde(default)]
    pub chain_pem: Option<String>,
}

/// Creates a factory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateFactory {
    /// The id; generated when absent.
    #[serde(default)]
    pub id: Option<String>,
    /// A human name.
    pub name: String,
}

/// A factory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct FactoryBody {
    /// The id.
    pub id: String,
    /// A human name.
    pub name: String,
    /// When it was created.
    pub created_at: String,
}

/// Creates a station and its one-time enrollment token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateStation {
    /// The id; generated when absent.
    #[serde(default)]
    pub id: Option<String>,
    /// The factory it belongs to.
    pub factory: String,
    /// A human name; the id when absent.
    #[serde(default)]
    pub name: Option<String>,
    /// Minutes until the enrollment token expires (1 to 10080; default 1440).
    #[serde(default, deserialize_with = "count::optional")]
    pub enrollment_ttl_minutes: Option<u64>,
}

/// A station.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct StationBody {
    /// The id.
    pub id: String,
    /// Its factory.
    pub factory: String,
    /// A human name.
    pub name: String,
    /// `pending`, `active` or `revoked`.
    pub status: String,
    /// When the enrollment token expires.
    pub enrollment_expires_at: String,
    /// SHA-256 of its mTLS certificate, once enrolled.
    pub cert_sha256: Option<String>,
    /// When it was created.
    pub created_at: String,
}

/// A new station and its enrollment token, shown once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct StationCreated {
    /// The station.
    pub station: StationBody,
    /// The one-time enrollment token. Only its hash is stored.
    pub enrollment_token: String,
}

/// A fixture PC's enrollment: the one-time token and a CSR for the key it generated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct EnrollRequest {
    /// The enrollment token.
    pub token: String,
    /// PKCS#10 CSR for the station's P-256 key: PEM or base64 DER.
    pub csr: String,
}

/// The enrolled station's certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct EnrollResponse {
    /// The station.
    pub station: String,
    /// Its factory.
    pub factory: String,
    /// The station's mTLS client certificate, PEM.
    pub certificate_pem: String,
    /// The station CA, PEM.
    pub station_ca_pem: String,
    /// The infrastructure root CA, PEM: it anchors the server's TLS certificate and the
    /// station CA. (A server whose data directory predates the split answers its one root.)
    /// Not the device root: a device's relying party must not trust it.
    pub root_ca_pem: String,
}

/// Creates an order, in draft unless `open` is true.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateOrder {
    /// The id; generated when absent.
    #[serde(default)]
    pub id: Option<String>,
    /// The product built.
    pub product: String,
    /// The factory that builds it.
    pub factory: String,
    /// How many units may receive an identity.
    #[serde(deserialize_with = "count::required")]
    pub quota: u64,
    /// Serial range, such as `SN-000001..SN-000500`.
    #[serde(default)]
    pub serial_range: Option<String>,
    /// Serial pattern: a regular expression the whole serial must match.
    #[serde(default)]
    pub serial_pattern: Option<String>,
    /// Start of the window, RFC 3339.
    #[serde(default)]
    pub not_before: Option<String>,
    /// End of the window, RFC 3339.
    #[serde(default)]
    pub not_after: Option<String>,
    /// Open the order at once.
    #[serde(default)]
    pub open: bool,
    /// The version of the product's release its units receive, each re-wrapped to the unit's
    /// own key; they must then send their encryption key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<String>,
}

/// Names the release an order's units receive (a logged change, on an open order too).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SetOrderRelease {
    /// The release's version, of the order's product.
    pub release: String,
}

/// The release an order's units receive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct OrderReleaseBody {
    /// The order.
    pub order: String,
    /// The release's id.
    pub release: String,
    /// Its version.
    pub version: String,
}

/// An order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct OrderBody {
    /// The id.
    pub id: String,
    /// The product.
    pub product: String,
    /// The factory.
    pub factory: String,
    /// The quota.
    pub quota: u64,
    /// Units issued.
    pub issued: u64,
    /// Units that may still be issued.
    pub remaining: u64,
    /// `draft`, `open`, `closed` or `cancelled`.
    pub state: String,
    /// The serial rule, as text.
    pub serial_rule: String,
    /// Start of the window.
    pub not_before: Option<String>,
    /// End of the window.
    pub not_after: Option<String>,
    /// When it was created.
    pub created_at: String,
}

/// An order with its counts, as every table records them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct OrderDetail {
    /// The order.
    pub order: OrderBody,
    /// Certificates stored for the order.
    pub certificates: u64,
    /// `unit.issued` events for the order.
    pub issued_events: u64,
    /// Failed test attempts.
    pub failed_tests: u64,
    /// Refusals, by code.
    pub refusals: BTreeMap<String, u64>,
}

/// Sets an order's quota.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SetQuota {
    /// The new quota; not below the issued count.
    #[serde(deserialize_with = "count::required")]
    pub quota: u64,
}

/// A unit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct UnitBody {
    /// The product.
    pub product: String,
    /// The serial.
    pub serial: String,
    /// The order it was last tested or counted under.
    pub order: String,
    /// `failed_test`, `provisioned` or `revoked`.
    pub status: String,
    /// The station that last handled it.
    pub station: Option<String>,
    /// SHA-256 of its certificate, once provisioned.
    pub cert_sha256: Option<String>,
    /// Test attempts kept.
    pub test_attempts: u64,
}

/// Creates an API token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    /// `admin`, `auditor` or `field`.
    pub role: String,
    /// A note for humans.
    pub label: String,
}

/// A new API token, shown once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct TokenCreated {
    /// The public id.
    pub id: String,
    /// `admin`, `auditor` or `field`.
    pub role: String,
    /// The secret bearer token. Only its hash is stored.
    pub token: String,
}

/// A log event as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct EventEntry {
    /// The index in the log.
    pub index: u64,
    /// The `type` tag.
    pub kind: String,
    /// SHA-256(0x00 ‖ canonical), hex.
    pub leaf_hash: String,
    /// The canonical bytes, as UTF-8 text.
    pub canonical: String,
}

/// The server's health.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Health {
    /// `ok`, or `degraded` when the audit log has halted.
    pub status: String,
    /// The server's version.
    pub version: String,
    /// Events in the log that hold an index (entries waiting for the sequencer are not counted).
    pub log_size: u64,
    /// Entries covered by the latest signed checkpoint (0 from a server that predates it).
    #[serde(default)]
    pub checkpoint_size: u64,
    /// Why the audit log stopped signing checkpoints, if it has (status is then `degraded`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_halted: Option<String>,
    /// Whether this replica holds the sequencer lease: it gives entries their indices and signs
    /// the checkpoints. Exactly one replica sharing a database does at a time.
    #[serde(default)]
    pub sequencer: bool,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_count_is_any_whole_number_json_can_write() {
        for (body, quota) in [
            (r#"{"quota": 43}"#, 43),
            (r#"{"quota": 43.0}"#, 43),
            (r#"{"quota": 4.3e1}"#, 43),
            (r#"{"quota": 0}"#, 0),
        ] {
            assert_eq!(
                serde_json::from_str::<SetQuota>(body).unwrap().quota,
                quota,
                "{body}"
            );
        }
        for body in [
            r#"{"quota": 43.5}"#,
            r#"{"quota": -1}"#,
            r#"{"quota": 1e300}"#,
            r#"{"quota": "43"}"#,
            r#"{"quota": null}"#,
        ] {
            assert!(serde_json::from_str::<SetQuota>(body).is_err(), "{body}");
        }
        let station: CreateStation =
            serde_json::from_str(r#"{"factory": "f", "enrollment_ttl_minutes": 60.0}"#).unwrap();
        assert_eq!(station.enrollment_ttl_minutes, Some(60));
        let station: CreateStation = serde_json::from_str(r#"{"factory": "f"}"#).unwrap();
        assert_eq!(station.enrollment_ttl_minutes, None);
    }
}

/// A revocation of a unit, an order, a CA or a station (admin).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Revoke {
    /// The RFC 5280 reason: `unspecified`, `keyCompromise`, `cACompromise`,
    /// `affiliationChanged`, `superseded`, `cessationOfOperation`, `certificateHold` (a unit
    /// only; it can be released), `privilegeWithdrawn` or `aACompromise`. Names are matched in
    /// any case.
    pub reason: String,
    /// For a unit: its product, needed only when the serial exists in several products.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product: Option<String>,
}

/// The release of a unit's `certificateHold` (admin).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Release {
    /// The unit's product, needed only when the serial exists in several products.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product: Option<String>,
}

/// A revocation by provenance: every unit one station provisioned in `[from, to)` (admin).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RevokeProvenance {
    /// The station.
    pub station: String,
    /// The span's start (RFC 3339), inclusive.
    pub from: String,
    /// The span's end (RFC 3339), exclusive.
    pub to: String,
    /// The RFC 5280 reason, as in [`Revoke`] (`certificateHold` is refused here).
    pub reason: String,
}

/// What a revocation did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct RevocationBody {
    /// `unit`, `order`, `ca`, `station` or `provenance`.
    pub target: String,
    /// The unit's serial, the order, the product, or the station.
    pub id: String,
    /// The reason, or `removeFromCRL` for a release.
    pub reason: String,
    /// Certificates this call revoked (0 when it was already in force, and for a CA or a
    /// station, whose own certificate it revokes).
    pub revoked: u64,
    /// Certificates whose hold this call released.
    pub released: u64,
    /// Whether it changed anything: `false` when the revocation was already in force.
    pub changed: bool,
    /// The event's log index, once sequenced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<u64>,
    /// The event's leaf hash (hex), when one was logged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leaf_hash: Option<String>,
}

/// Makes a release encryption key for a product.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateReleaseKey {
    /// `x25519` (ENCX25519 images) or `ec256` (ENCEC256 images); `x25519` when absent.
    #[serde(default)]
    pub algorithm: Option<String>,
}

/// A release encryption key: its public half, for `imgtool sign --encrypt`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ReleaseKeyBody {
    /// The key's id.
    pub id: String,
    /// The product.
    pub product: String,
    /// `x25519` or `ec256`.
    pub algorithm: String,
    /// The public key, a `PUBLIC KEY` PEM.
    pub public_key_pem: String,
    /// SHA-256 of the public key's DER SubjectPublicKeyInfo, hex.
    pub public_key_sha256: String,
    /// When it was made.
    pub created_at: String,
}

/// Registers a public key that signs a product's firmware images.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AddFirmwareKey {
    /// The public key (ECDSA P-256 or Ed25519), a `PUBLIC KEY` PEM as `imgtool getpub -e pem`
    /// writes it.
    pub public_key_pem: String,
}

/// A public key that signs a product's firmware images.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct FirmwareKeyBody {
    /// The product.
    pub product: String,
    /// The key id: SHA-256 of the DER SubjectPublicKeyInfo (imgtool's KEYHASH), hex.
    pub key_id: String,
    /// `p256` (ECDSA) or `ed25519`.
    pub algorithm: String,
    /// The public key, a `PUBLIC KEY` PEM.
    pub public_key_pem: String,
    /// When it was registered.
    pub created_at: String,
}

/// Uploads a release: an MCUboot image signed by a registered key and encrypted to one of the
/// product's release keys (`imgtool sign --encrypt`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UploadRelease {
    /// The version, as given to `imgtool sign --version`: `major.minor.revision[+build]`. It
    /// must be the image header's.
    pub version: String,
    /// The image file, base64 (RFC 4648, with padding).
    pub image_base64: String,
    /// The SBOM file (CycloneDX JSON), base64; stored with its hash as uploaded.
    #[serde(default)]
    pub sbom_base64: Option<String>,
}

/// A release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ReleaseBody {
    /// The release's id.
    pub id: String,
    /// The product.
    pub product: String,
    /// The image header's version, `major.minor.revision+build`.
    pub version: String,
    /// SHA-256 of the image as uploaded, hex.
    pub image_sha256: String,
    /// The image's size in bytes.
    pub image_size: u64,
    /// The id of the signing key that verified it (SHA-256 of its SubjectPublicKeyInfo), hex.
    pub signing_key: String,
    /// The id of the release key it is encrypted to.
    pub release_key: String,
    /// The hash TLV's value (the hash of the plaintext image), hex.
    pub plaintext_hash: String,
    /// SHA-256 of the SBOM as uploaded, hex, if one was.
    pub sbom_sha256: Option<String>,
    /// When it was uploaded.
    pub created_at: String,
    /// When it was withdrawn, if it was.
    pub withdrawn_at: Option<String>,
}
