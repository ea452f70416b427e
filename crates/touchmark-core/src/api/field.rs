//! The field's JSON shapes (issue 17): a backend asks whether a device is genuine.

use serde::{Deserialize, Serialize};

#[cfg(feature = "openapi")]
use utoipa::ToSchema;

/// Asks for the verdict on one device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct FieldVerify {
    /// The device's chain, its own certificate first: PEM, or the base64 of the DER
    /// certificates one after the other.
    pub chain: String,
    /// A proof that the device holds its key, when the backend asked for one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub possession: Option<PossessionProof>,
}

/// The device's answer to a challenge (`POST /v1/field/challenge`): its signature over the
/// bytes `docs/field.md` gives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PossessionProof {
    /// The challenge's nonce, base64 as it was given.
    pub nonce: String,
    /// ECDSA P-256 with SHA-256, DER, base64.
    pub signature: String,
}

/// A challenge for a device to sign.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct FieldChallenge {
    /// 32 random bytes, base64. Accepted once, by the token that asked for it.
    pub nonce: String,
    /// When it stops being accepted (RFC 3339).
    pub expires_at: String,
}

/// The verdict on a device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct FieldVerdict {
    /// `genuine`, `unknown`, `revoked` or `clone_suspect`.
    pub verdict: String,
    /// Why, for humans, when the verdict is not `genuine`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The unit, when the certificate is one this installation issued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<FieldUnit>,
    /// The revocation, when the verdict is `revoked`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revocation: Option<FieldRevocation>,
    /// What makes the device a clone suspect, one line each.
    #[serde(default)]
    pub evidence: Vec<String>,
    /// Each check made, in order, with its result.
    pub checks: Vec<FieldCheck>,
}

/// A genuine certificate's unit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct FieldUnit {
    /// The unit's serial.
    pub serial: String,
    /// Its product.
    pub product: String,
    /// The order it was counted against.
    pub order: String,
    /// The factory that made it.
    #[serde(default)]
    pub factory: Option<String>,
    /// The station that provisioned it.
    #[serde(default)]
    pub station: Option<String>,
    /// When its certificate was issued.
    pub issued_at: String,
    /// Its firmware release; null until firmware is tracked.
    #[serde(default)]
    pub release: Option<String>,
}

/// A revocation that applies to the device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct FieldRevocation {
    /// `unit` (its certificate) or `ca` (its product's issuing CA).
    pub scope: String,
    /// The RFC 5280 reason.
    pub reason: String,
    /// When.
    pub revoked_at: String,
}

/// One check of a verification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct FieldCheck {
    /// `chain`, `issued`, `revocation` or `possession`.
    pub name: String,
    /// Its result: `verified`, `found`, `not_revoked`, `passed`, or what failed.
    pub result: String,
    /// More, for humans.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}
