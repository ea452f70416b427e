//! The stable error codes that clients, scripts and auditors rely on.
//!
//! A code never changes meaning once released. The provisioning refusals are those of
//! design.md §4, in the order of the checks.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A stable, machine-readable error code, sent as `code` in every error response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorCode {
    /// Check 1: no valid station identity, or the station is not of the order's factory.
    StationNotAuthorized,
    /// Check 1: the station was revoked.
    StationRevoked,
    /// Check 2: the order named in the request does not exist. Logged, so that an auditor sees a
    /// station probing for orders.
    OrderNotFound,
    /// Check 2: the order is not open (draft, closed or cancelled).
    OrderNotOpen,
    /// Check 2: the order is outside its time window.
    OrderExpired,
    /// Check 3: the serial is malformed or outside the order's range or pattern.
    SerialOutOfRange,
    /// Check 4: the CSR does not parse.
    CsrInvalid,
    /// Check 4: the CSR's signature does not verify.
    CsrSignatureInvalid,
    /// Check 4: the CSR's key is not P-256.
    KeyTypeUnsupported,
    /// Check 5: the test record names no serial, or another serial than the unit's (its DUT id
    /// in OpenHTF's shape): a record of another unit, replayed (a clone suspect).
    TestRecordMismatch,
    /// Check 5: the test verdict is not pass.
    TestFailed,
    /// Check 6: the serial is already provisioned with another key (a clone suspect).
    SerialConflict,
    /// Check 7: the public key is already bound to another serial (a cloned secure element).
    KeyReused,
    /// Check 8: the test record was already used to issue another unit (a clone suspect).
    TestRecordReused,
    /// Check 9 (the last): the order has no quota left.
    QuotaExhausted,
    /// The request is malformed: bad JSON, wrong types, missing fields, or a value the API
    /// document forbids (its type, length, pattern or range).
    InvalidRequest,
    /// The request is well-formed as the API document describes it, but breaks a rule the
    /// document cannot state: a serial range whose ends differ in width, a window that ends
    /// before it starts, a test record without a verdict, a date already past.
    Unprocessable,
    /// The request body is larger than the limit.
    PayloadTooLarge,
    /// No valid admin credentials.
    Unauthorized,
    /// The credentials do not allow this action.
    Forbidden,
    /// The named resource does not exist.
    NotFound,
    /// The resource already exists, or its state does not allow the change.
    Conflict,
    /// The enrollment token is unknown, used or expired.
    EnrollmentTokenInvalid,
    /// The database is busy (a row another request holds) or unreachable: nothing was done,
    /// and the same request may be sent again shortly.
    Unavailable,
    /// Something failed inside the server; the details are in its log, never in the response.
    Internal,
    /// A station refused at check 1 again within its refusal window: answered without a log
    /// entry of its own, and counted into one `station.refusal_flood` alert
    /// (`policy::refusals`). Nothing was done; `Retry-After` says when the window ends.
    RateLimited,
    /// Provisioning: the unit's certificate is revoked; its serial cannot be provisioned again.
    UnitRevoked,
    /// Provisioning: the product's issuing CA is revoked; it issues nothing more.
    CaRevoked,
    /// Release upload: the image is larger than the configured limit.
    ImageTooLarge,
    /// Release upload: the file is not an MCUboot image (bad magic, shorter than its header).
    NotMcubootImage,
    /// Release upload: an MCUboot image whose TLV areas, flags or key TLV break MCUboot's format
    /// or what Touchmark can re-wrap (the message names the exact check).
    ImageMalformed,
    /// Release upload: the image is not encrypted (no encryption flag, no key TLV, or a body in
    /// clear).
    NotEncrypted,
    /// Release upload: the product has no release key of the curve the image is encrypted to.
    ReleaseKeyUnknown,
    /// Release upload: the key TLV's tag does not verify under any of the product's release
    /// keys: the image was encrypted to another key, or its key TLV was altered.
    EncTlvHmacMismatch,
    /// Release upload: the decrypted image does not match its hash TLV.
    HashMismatch,
    /// Release upload: no signing key registered for the product verifies the image's
    /// signature.
    SignatureInvalid,
    /// Field: the proof of possession names a challenge that is unknown, expired, already
    /// used, or given to another token. Nothing was verified or stored.
    ChallengeInvalid,
    /// Provisioning on an order with a release: the unit's encryption key is missing, not of
    /// the release key's type, not a valid point, or not bound to the unit's identity key by a
    /// valid signature (`docs/firmware.md`, "The unit's encryption key").
    EncryptionKeyInvalid,
    /// Provisioning on an order whose release was withdrawn: nothing is issued until the order
    /// names another release.
    ReleaseWithdrawn,
    /// Provisioning for a product that requires secure-element attestation: no certificate in
    /// the request's attestation certifies the unit's identity key (or, when the order delivers
    /// a release, its encryption key) up to one of the product's vendor roots
    /// (`docs/firmware.md`, "Attestation").
    AttestationInvalid,
    /// A device route: the caller presented no client certificate, or one this installation
    /// did not issue, or whose chain does not verify. Nothing is served.
    DeviceNotAuthorized,
    /// Installing a CA certificate signed elsewhere: it is not one well-formed PEM certificate.
    CaCertificateInvalid,
    /// Installing a CA certificate: it certifies another key than the product's.
    CaKeyMismatch,
    /// Installing a CA certificate: it is no CA fit to issue (basicConstraints cA, keyUsage
    /// keyCertSign and cRLSign, valid now).
    CaProfileInvalid,
    /// Installing a CA certificate: it does not chain to the installation's device root.
    CaChainInvalid,
    /// Vulnerability intake: the CVSS vector breaks its specification (v3.1 or v4.0: the
    /// version, a metric or value unknown, a metric twice, a base metric missing).
    CvssInvalid,
    /// Vulnerability intake or link: the product named does not exist.
    ProductUnknown,
    /// Vulnerability intake: the encrypted report is not an ASCII-armored age file with an
    /// X25519 recipient stanza, or no encryption recipient is published.
    ReportEncryptionInvalid,
    /// Vulnerability triage: the report's state does not allow that move (received →
    /// triaged → confirmed | rejected; confirmed → fixed → disclosed).
    ReportTransitionInvalid,
    /// Release upload: the SBOM is not a CycloneDX 1.6 JSON BOM valid against the schema (not
    /// JSON, another format or version, the schema's violations), a component's package URL
    /// does not parse, or the SHA-256 hash of the component it describes is not the image's
    /// (`docs/firmware.md`, "SBOM"). Nothing was stored.
    SbomInvalid,
    /// A CSAF advisory of a report whose links name no product or release: there is nothing
    /// to state a status of.
    ReportNotLinked,
    /// Publishing a CSAF advisory, or serving the provider's files, on a server without a
    /// `[csaf]` publisher configured.
    CsafNotConfigured,
}

impl ErrorCode {
    /// The code as sent on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::StationNotAuthorized => "station_not_authorized",
            Self::StationRevoked => "station_revoked",
            Self::OrderNotFound => "order_not_found",
            Self::OrderNotOpen => "order_not_open",
            Self::OrderExpired => "order_expired",
            Self::SerialOutOfRange => "serial_out_of_range",
            Self::CsrInvalid => "csr_invalid",
            Self::CsrSignatureInvalid => "csr_signature_invalid",
            Self::KeyTypeUnsupported => "key_type_unsupported",
            Self::TestRecordMismatch => "test_record_mismatch",
            Self::TestRecordReused => "test_record_reused",
            Self::TestFailed => "test_failed",
            Self::SerialConflict => "serial_conflict",
            Self::KeyReused => "key_reused",
            Self::QuotaExhausted => "quota_exhausted",
            Self::InvalidRequest => "invalid_request",
            Self::Unprocessable => "unprocessable",
            Self::PayloadTooLarge => "payload_too_large",
            Self::Unauthorized => "unauthorized",
            Self::Forbidden => "forbidden",
            Self::NotFound => "not_found",
            Self::Conflict => "conflict",
            Self::EnrollmentTokenInvalid => "enrollment_token_invalid",
            Self::Unavailable => "unavailable",
            Self::Internal => "internal",
            Self::RateLimited => "rate_limited",
            Self::UnitRevoked => "unit_revoked",
            Self::CaRevoked => "ca_revoked",
            Self::ImageTooLarge => "image_too_large",
            Self::NotMcubootImage => "not_mcuboot_image",
            Self::ImageMalformed => "image_malformed",
            Self::NotEncrypted => "not_encrypted",
            Self::ReleaseKeyUnknown => "release_key_unknown",
            Self::EncTlvHmacMismatch => "enc_tlv_hmac_mismatch",
            Self::HashMismatch => "hash_mismatch",
            Self::SignatureInvalid => "signature_invalid",
            Self::ChallengeInvalid => "challenge_invalid",
            Self::EncryptionKeyInvalid => "encryption_key_invalid",
            Self::ReleaseWithdrawn => "release_withdrawn",
            Self::AttestationInvalid => "attestation_invalid",
            Self::DeviceNotAuthorized => "device_not_authorized",
            Self::CaCertificateInvalid => "ca_certificate_invalid",
            Self::CaKeyMismatch => "ca_key_mismatch",
            Self::CaProfileInvalid => "ca_profile_invalid",
            Self::CaChainInvalid => "ca_chain_invalid",
            Self::CvssInvalid => "cvss_invalid",
            Self::ProductUnknown => "product_unknown",
            Self::ReportEncryptionInvalid => "report_encryption_invalid",
            Self::ReportTransitionInvalid => "report_transition_invalid",
            Self::SbomInvalid => "sbom_invalid",
            Self::ReportNotLinked => "report_not_linked",
            Self::CsafNotConfigured => "csaf_not_configured",
        }
    }

    /// Every code, for documentation and tests.
    pub const ALL: [ErrorCode; 52] = [
        Self::StationNotAuthorized,
        Self::StationRevoked,
        Self::OrderNotFound,
        Self::OrderNotOpen,
        Self::OrderExpired,
        Self::SerialOutOfRange,
        Self::CsrInvalid,
        Self::CsrSignatureInvalid,
        Self::KeyTypeUnsupported,
        Self::TestRecordMismatch,
        Self::TestFailed,
        Self::SerialConflict,
        Self::KeyReused,
        Self::TestRecordReused,
        Self::QuotaExhausted,
        Self::InvalidRequest,
        Self::Unprocessable,
        Self::PayloadTooLarge,
        Self::Unauthorized,
        Self::Forbidden,
        Self::NotFound,
        Self::Conflict,
        Self::EnrollmentTokenInvalid,
        Self::Unavailable,
        Self::Internal,
        Self::RateLimited,
        Self::UnitRevoked,
        Self::CaRevoked,
        Self::ImageTooLarge,
        Self::NotMcubootImage,
        Self::ImageMalformed,
        Self::NotEncrypted,
        Self::ReleaseKeyUnknown,
        Self::EncTlvHmacMismatch,
        Self::HashMismatch,
        Self::SignatureInvalid,
        Self::ChallengeInvalid,
        Self::EncryptionKeyInvalid,
        Self::ReleaseWithdrawn,
        Self::AttestationInvalid,
        Self::DeviceNotAuthorized,
        Self::CaCertificateInvalid,
        Self::CaKeyMismatch,
        Self::CaProfileInvalid,
        Self::CaChainInvalid,
        Self::CvssInvalid,
        Self::ProductUnknown,
        Self::ReportEncryptionInvalid,
        Self::ReportTransitionInvalid,
        Self::SbomInvalid,
        Self::ReportNotLinked,
        Self::CsafNotConfigured,
    ];

    /// Parses a code from its wire form.
    pub fn from_wire(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == text)
    }

    /// How long a client waits before sending the same request again, for a code that says
    /// nothing was done and asks for a retry (`Retry-After`, RFC 9110 §10.2.3); `None` for
    /// every other code.
    pub fn retry_after(self) -> Option<std::time::Duration> {
        match self {
            Self::Unavailable => Some(std::time::Duration::from_secs(1)),
            _ => None,
        }
    }

    /// Whether this code is a provisioning refusal that is recorded in the log as an event.
    pub fn is_refusal(self) -> bool {
        matches!(
            self,
            Self::StationNotAuthorized
                | Self::StationRevoked
                | Self::OrderNotFound
                | Self::OrderNotOpen
                | Self::OrderExpired
                | Self::SerialOutOfRange
                | Self::CsrInvalid
                | Self::CsrSignatureInvalid
                | Self::KeyTypeUnsupported
                | Self::TestRecordMismatch
                | Self::TestRecordReused
                | Self::TestFailed
                | Self::SerialConflict
                | Self::KeyReused
                | Self::QuotaExhausted
                | Self::UnitRevoked
                | Self::CaRevoked
                | Self::EncryptionKeyInvalid
                | Self::ReleaseWithdrawn
                | Self::AttestationInvalid
        )
    }

    /// Whether this refusal is of the clone class: the request repeats what another unit
    /// already holds (its serial, its key or its test record) or carries another unit's test
    /// record. An auditor lists each one; the server raises an alert.
    pub fn is_clone_suspect(self) -> bool {
        matches!(
            self,
            Self::TestRecordMismatch
                | Self::TestRecordReused
                | Self::SerialConflict
                | Self::KeyReused
        )
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A decision not to act, with its stable code and a message fit for the person who asked: a
/// provisioning refusal (design.md §4) for a station's operator, or a rule that an admin's change
/// breaks (a quota below the issued count, a closed order reopened).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct Refusal {
    /// The stable code.
    pub code: ErrorCode,
    /// What was wrong, for a human.
    pub message: String,
}

impl Refusal {
    /// A refusal with `code` and `message`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_names_round_trip_and_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for code in ErrorCode::ALL {
            assert!(seen.insert(code.as_str()));
            assert_eq!(ErrorCode::from_wire(code.as_str()), Some(code));
            let json = serde_json::to_string(&code).unwrap_or_default();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
        }
        assert_eq!(ErrorCode::ALL.len(), 52);
        assert_eq!(ErrorCode::ALL.iter().filter(|c| c.is_refusal()).count(), 20);
        assert!(
            ErrorCode::ALL
                .iter()
                .filter(|c| c.is_clone_suspect())
                .all(|c| c.is_refusal())
        );
    }
}
