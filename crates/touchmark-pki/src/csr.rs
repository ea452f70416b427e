//! Checks on device PKCS#10 CSRs (RFC 2986): parse, key type, signature, in that order.
//!
//! This is on the provisioning hot path, so it decodes at most once and verifies one signature.
//! The three error kinds map to the API codes `csr_invalid`, `key_type_unsupported` and
//! `csr_signature_invalid`.

use std::fmt;

use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1, ParsedPublicKey};
use sha2::{Digest as _, Sha256};
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::der_parser::oid::Oid;
use x509_parser::prelude::FromDer as _;

use crate::der::p256_spki;

/// The largest CSR input accepted, in bytes. A P-256 CSR is a few hundred bytes.
pub const MAX_CSR_INPUT: usize = 16 * 1024;

/// Why a CSR was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CsrError {
    /// The input is not a well-formed PKCS#10 CSR (API code `csr_invalid`).
    #[error("the CSR is invalid: {0}")]
    Invalid(String),
    /// The CSR's signature does not verify with its own public key (API code `csr_signature_invalid`).
    #[error("the CSR signature does not verify with the CSR's public key")]
    SignatureInvalid,
    /// The key or signature algorithm is not ECDSA P-256 with SHA-256 (API code `key_type_unsupported`).
    #[error(
        "unsupported key type: {0}; only ECDSA P-256 keys signing with ecdsa-with-SHA256 are accepted"
    )]
    KeyTypeUnsupported(String),
}

impl CsrError {
    /// The stable API error code for this refusal.
    pub fn code(&self) -> &'static str {
        match self {
            CsrError::Invalid(_) => "csr_invalid",
            CsrError::SignatureInvalid => "csr_signature_invalid",
            CsrError::KeyTypeUnsupported(_) => "key_type_unsupported",
        }
    }
}

fn invalid(msg: impl Into<String>) -> CsrError {
    CsrError::Invalid(msg.into())
}

/// A CSR that parsed, carries a P-256 key, and whose signature verified.
///
/// The only way to get one is [`parse_csr`], so holding one proves the checks ran.
#[derive(Clone, PartialEq, Eq)]
pub struct VerifiedCsr {
    der: Vec<u8>,
    spki: Vec<u8>,
    encryption_key: Option<Vec<u8>>,
    spki_sha256: [u8; 32],
}

impl fmt::Debug for VerifiedCsr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifiedCsr")
            .field("spki_sha256", &hex::encode(self.spki_sha256))
            .finish_non_exhaustive()
    }
}

impl VerifiedCsr {
    /// The public key as a canonical DER SubjectPublicKeyInfo (id-ecPublicKey, prime256v1).
    pub fn spki_der(&self) -> &[u8] {
        &self.spki
    }

    /// The 65-byte uncompressed P-256 point.
    pub fn public_key_raw(&self) -> &[u8] {
        // Cannot panic: `spki` is always built by `p256_spki`, a 26-byte prefix and the 65-byte point.
        &self.spki[26..]
    }

    /// SHA-256 of [`VerifiedCsr::spki_der`]: the key fingerprint used to detect key reuse.
    pub fn spki_sha256(&self) -> [u8; 32] {
        self.spki_sha256
    }

    /// The CSR as DER (decoded from PEM or base64 if it came that way).
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// The unit's firmware encryption key (DER SubjectPublicKeyInfo, not checked further) that
    /// the CSR carries in its [`OID_UNIT_ENCRYPTION_KEY`] attribute, bound by its signature.
    pub fn encryption_key(&self) -> Option<&[u8]> {
        self.encryption_key.as_deref()
    }

    /// Whether `signature` (ECDSA P-256 with SHA-256, DER) is the CSR key's signature over
    /// `message`: what binds another key of the unit to the one certified.
    pub fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        aws_lc_rs::signature::UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, self.public_key_raw())
            .verify(message, signature)
            .is_ok()
    }
}

const PEM_LABELS: [&str; 2] = ["CERTIFICATE REQUEST", "NEW CERTIFICATE REQUEST"];

/// Turns the input (PEM, base64 of DER, or DER) into DER.
fn decode_input(input: &[u8]) -> Result<Vec<u8>, CsrError> {
    if input.is_empty() {
        return Err(invalid("empty input"));
    }
    if input.len() > MAX_CSR_INPUT {
        return Err(invalid(format!(
            "input is {} bytes; the limit is {MAX_CSR_INPUT}",
            input.len()
        )));
    }
    if input[0] == 0x30 {
        return Ok(input.to_vec());
    }
    let text = std::str::from_utf8(input)
        .map_err(|_| invalid("input is neither DER, PEM nor base64"))?
        .trim();
    if text.starts_with("-----BEGIN ") {
        let blocks = crate::pem::decode_all(text).map_err(|e| invalid(e.to_string()))?;
        let [block] = blocks.as_slice() else {
            return Err(invalid("expected exactly one PEM block"));
        };
        if !PEM_LABELS.contains(&block.label.as_str()) {
            return Err(invalid(format!(
                "PEM label is {:?}; expected \"CERTIFICATE REQUEST\"",
                block.label
            )));
        }
        return Ok(block.der.clone());
    }
    crate::pem::decode_base64_lenient(text)
        .ok_or_else(|| invalid("input is neither DER, PEM nor base64"))
}

// OIDs, as DER content octets, so comparisons need no allocation.
const OID_EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const OID_PRIME256V1: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const OID_ECDSA_WITH_SHA256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02];

/// The CSR attribute that carries a unit's firmware encryption key, its SubjectPublicKeyInfo,
/// under the CSR's own signature: `1.3.6.1.4.1.99999.2.1` (Touchmark's arc).
pub const OID_UNIT_ENCRYPTION_KEY: &[u64] = &[1, 3, 6, 1, 4, 1, 99999, 2, 1];
/// [`OID_UNIT_ENCRYPTION_KEY`] as DER content octets.
const OID_UNIT_ENCRYPTION_KEY_DER: &[u8] =
    &[0x2b, 0x06, 0x01, 0x04, 0x01, 0x86, 0x8d, 0x1f, 0x02, 0x01];

/// A DER header at the start of `der`: its tag, and the content's range.
fn der_header(der: &[u8]) -> Option<(u8, std::ops::Range<usize>)> {
    let (&tag, rest) = der.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, head): (usize, usize) = match first {
        n if n < 0x80 => (usize::from(n), 2),
        0x81 => (usize::from(*rest.first()?), 3),
        0x82 => (
            usize::from(u16::from_be_bytes([*rest.first()?, *rest.get(1)?])),
            4,
        ),
        _ => return None,
    };
    let end = len.checked_add(head)?;
    (end <= der.len()).then_some((tag, head..end))
}

/// A DER element: its tag, the whole TLV, and its content.
type Element<'a> = (u8, &'a [u8], &'a [u8]);

/// The TLVs in `der`, one after another; `None` when one overruns.
fn der_elements(mut der: &[u8]) -> Option<Vec<Element<'_>>> {
    let mut out = Vec::new();
    while !der.is_empty() {
        let (tag, content) = der_header(der)?;
        let (whole, rest) = der.split_at(content.end);
        out.push((tag, whole, whole.get(content)?));
        der = rest;
    }
    Some(out)
}

/// The attributes of a CertificationRequestInfo (its DER), as (OID content octets, the values'
/// SET as DER), from its `[0]` field after version, subject and key; `None` when it does not
/// have that shape.
fn cri_attributes(cri: &[u8]) -> Option<Vec<(&[u8], &[u8])>> {
    let (tag, content) = der_header(cri)?;
    if tag != 0x30 {
        return None;
    }
    let fields = der_elements(cri.get(content)?)?;
    let Some((0xa0, _, attributes)) = fields.get(3).copied() else {
        return Some(Vec::new());
    };
    der_elements(attributes)?
        .into_iter()
        .map(|(tag, _, attribute)| {
            let parts = der_elements(attribute)?;
            match (tag, parts.as_slice()) {
                (0x30, [(0x06, _, oid), (0x31, set, _)]) => Some((*oid, *set)),
                _ => None,
            }
        })
        .collect()
}

/// The one value of an attribute's `SET OF`, which must be a SEQUENCE filling it exactly.
fn single_sequence(set: &[u8]) -> Option<&[u8]> {
    let (tag, content) = der_header(set)?;
    if tag != 0x31 || content.end != set.len() {
        return None;
    }
    let value = set.get(content)?;
    let (tag, inner) = der_header(value)?;
    (tag == 0x30 && inner.end == value.len()).then_some(value)
}

/// The DER of `value` as the one element of a SET.
fn der_set_of_one(value: &[u8]) -> Vec<u8> {
    let len = value.len();
    let mut out = vec![0x31];
    match len {
        0..0x80 => out.push(len as u8),
        0x80..0x100 => out.extend([0x81, len as u8]),
        _ => out.extend([0x82, (len >> 8) as u8, len as u8]),
    }
    out.extend_from_slice(value);
    out
}

/// A human name for a public-key or curve OID, for error messages.
fn oid_name(oid: &Oid<'_>) -> String {
    let name = match oid.to_id_string().as_str() {
        "1.2.840.113549.1.1.1" => "RSA",
        "1.2.840.113549.1.1.10" => "RSA-PSS",
        "1.2.840.10040.4.1" => "DSA",
        "1.3.101.110" => "X25519",
        "1.3.101.111" => "X448",
        "1.3.101.112" => "Ed25519",
        "1.3.101.113" => "Ed448",
        "1.3.132.0.34" => "EC key on curve P-384 (secp384r1)",
        "1.3.132.0.35" => "EC key on curve P-521 (secp521r1)",
        "1.3.132.0.10" => "EC key on curve secp256k1",
        "1.2.840.10045.4.3.3" => "signature algorithm ecdsa-with-SHA384",
        "1.2.840.10045.4.3.4" => "signature algorithm ecdsa-with-SHA512",
        "1.2.840.10045.4.1" => "signature algorithm ecdsa-with-SHA1",
        "1.2.840.113549.1.1.11" => "signature algorithm sha256WithRSAEncryption",
        other => return format!("OID {other}"),
    };
    name.to_owned()
}

/// Parses and checks a device CSR.
///
/// Accepts PEM (`CERTIFICATE REQUEST` or `NEW CERTIFICATE REQUEST`), standard base64 of the DER
/// (whitespace allowed), or raw DER, up to [`MAX_CSR_INPUT`] bytes. Checks, in this order:
/// 1. it decodes and parses as one PKCS#10 v1 structure, with no trailing data → [`CsrError::Invalid`];
/// 2. the key is id-ecPublicKey on prime256v1 with an uncompressed point on the curve, and the
///    signature algorithm is ecdsa-with-SHA256 → [`CsrError::KeyTypeUnsupported`] (or `Invalid` for a
///    malformed point);
/// 3. the signature over the CertificationRequestInfo verifies → [`CsrError::SignatureInvalid`].
///
/// # Errors
/// The first failing check, as above.
pub fn parse_csr(input: &[u8]) -> Result<VerifiedCsr, CsrError> {
    let der = decode_input(input)?;
    let (rest, csr) = X509CertificationRequest::from_der(&der)
        .map_err(|e| invalid(format!("not a PKCS#10 certification request ({e})")))?;
    if !rest.is_empty() {
        return Err(invalid(format!(
            "{} bytes of trailing data after the CSR",
            rest.len()
        )));
    }
    let info = &csr.certification_request_info;
    if info.version.0 != 0 {
        return Err(invalid(format!(
            "unsupported CSR version {}",
            info.version.0
        )));
    }

    // Key type.
    let alg = &info.subject_pki.algorithm;
    if alg.algorithm.as_bytes() != OID_EC_PUBLIC_KEY {
        return Err(CsrError::KeyTypeUnsupported(oid_name(&alg.algorithm)));
    }
    let curve = alg
        .parameters
        .as_ref()
        .ok_or_else(|| invalid("EC public key without curve parameters"))?;
    let curve = curve.as_oid().map_err(|_| {
        CsrError::KeyTypeUnsupported("EC key with explicit curve parameters".into())
    })?;
    if curve.as_bytes() != OID_PRIME256V1 {
        return Err(CsrError::KeyTypeUnsupported(oid_name(&curve)));
    }
    let key_bits = &info.subject_pki.subject_public_key;
    if key_bits.unused_bits != 0 {
        return Err(invalid("public key BIT STRING has unused bits"));
    }
    let point: &[u8] = &key_bits.data;
    match point.first() {
        Some(0x04) if point.len() == 65 => {}
        Some(0x02 | 0x03) if point.len() == 33 => {
            return Err(CsrError::KeyTypeUnsupported(
                "compressed P-256 point (send the uncompressed point)".into(),
            ));
        }
        _ => return Err(invalid("public key is not a P-256 point")),
    }
    // Validates that the point is on the curve.
    let key = ParsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, point)
        .map_err(|_| invalid("public key is not a valid point on P-256"))?;

    // Signature algorithm: ecdsa-with-SHA256 has absent parameters (RFC 5758 §3.2).
    let sig_alg = &csr.signature_algorithm;
    if sig_alg.algorithm.as_bytes() != OID_ECDSA_WITH_SHA256 {
        return Err(CsrError::KeyTypeUnsupported(oid_name(&sig_alg.algorithm)));
    }
    if sig_alg.parameters.is_some() {
        return Err(invalid("ecdsa-with-SHA256 must not have parameters"));
    }

    // Proof of possession.
    if csr.signature_value.unused_bits != 0 {
        return Err(CsrError::SignatureInvalid);
    }
    key.verify_sig(info.raw, &csr.signature_value.data)
        .map_err(|_| CsrError::SignatureInvalid)?;

    // A unit's encryption key, bound by the signature just verified.
    let mut encryption_key = None;
    let attributes =
        cri_attributes(info.raw).ok_or_else(|| invalid("the CSR's attributes do not parse"))?;
    for (oid, values) in attributes {
        if oid != OID_UNIT_ENCRYPTION_KEY_DER {
            continue;
        }
        if encryption_key.is_some() {
            return Err(invalid("more than one unit encryption key attribute"));
        }
        let value = single_sequence(values).ok_or_else(|| {
            invalid("the unit encryption key attribute is not a SET of one SubjectPublicKeyInfo")
        })?;
        encryption_key = Some(value.to_vec());
    }

    let spki = p256_spki(point);
    let spki_sha256: [u8; 32] = Sha256::digest(&spki).into();
    drop(csr);
    Ok(VerifiedCsr {
        der,
        spki,
        spki_sha256,
        encryption_key,
    })
}

/// Builds a PKCS#10 CSR for `signer`'s key with subject CN `common_name`, signed by that key.
///
/// Used by fixture software (a station enrolling, a simulated unit); the server never builds
/// CSRs. The key never leaves the signer.
///
/// # Errors
/// [`crate::PkiError::CertificateGeneration`] if the request cannot be encoded or signed.
pub fn build_csr(
    signer: &dyn crate::Signer,
    common_name: &str,
) -> Result<Vec<u8>, crate::PkiError> {
    build_csr_with(signer, common_name, None)
}

/// [`build_csr`], carrying the unit's firmware encryption key (its DER SubjectPublicKeyInfo) in
/// the [`OID_UNIT_ENCRYPTION_KEY`] attribute, so that the CSR's signature binds it to the unit.
///
/// # Errors
/// [`crate::PkiError::CertificateGeneration`] if the request cannot be encoded or signed.
pub fn build_csr_with(
    signer: &dyn crate::Signer,
    common_name: &str,
    encryption_key_spki: Option<&[u8]>,
) -> Result<Vec<u8>, crate::PkiError> {
    let mut params = rcgen::CertificateParams::default();
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(rcgen::DnType::CommonName, common_name);
    params.distinguished_name = dn;
    let attributes = encryption_key_spki
        .map(|spki| rcgen::Attribute {
            oid: OID_UNIT_ENCRYPTION_KEY,
            values: der_set_of_one(spki),
        })
        .into_iter()
        .collect();
    let request = params
        .serialize_request_with_attributes(&crate::RcgenSigner::new(signer), attributes)
        .map_err(|e| crate::PkiError::CertificateGeneration(e.to_string()))?;
    Ok(request.der().to_vec())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn make_csr() -> Vec<u8> {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.serialize_request(&key).unwrap().der().to_vec()
    }

    #[test]
    fn accepts_der_and_reports_key() {
        let der = make_csr();
        let csr = parse_csr(&der).unwrap();
        assert_eq!(csr.public_key_raw().len(), 65);
        assert_eq!(csr.der(), der.as_slice());
        assert_eq!(
            csr.spki_sha256(),
            <[u8; 32]>::from(Sha256::digest(csr.spki_der()))
        );
    }

    /// A unit's encryption key in the CSR's attribute comes back as it was put, under the
    /// CSR's signature; two such attributes, or one that is not a SET of one SEQUENCE, are
    /// refused.
    #[test]
    fn carries_a_unit_encryption_key_under_its_signature() {
        let signer = crate::SoftwareSigner::generate(crate::KeyAlgorithm::EcdsaP256).unwrap();
        let enc = crate::SoftwareSigner::generate(crate::KeyAlgorithm::EcdsaP256).unwrap();
        let spki = crate::Signer::public_key_spki(&enc).to_vec();
        let der = build_csr_with(&signer, "SN-1", Some(&spki)).unwrap();
        let csr = parse_csr(&der).unwrap();
        assert_eq!(csr.encryption_key(), Some(spki.as_slice()));
        assert_eq!(
            parse_csr(&build_csr(&signer, "SN-1").unwrap())
                .unwrap()
                .encryption_key(),
            None
        );

        let attribute = |values: Vec<u8>| rcgen::Attribute {
            oid: OID_UNIT_ENCRYPTION_KEY,
            values,
        };
        let params = || {
            let mut params = rcgen::CertificateParams::default();
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, "SN-1");
            params
        };
        let rcgen_signer = crate::RcgenSigner::new(&signer);
        let two = params()
            .serialize_request_with_attributes(
                &rcgen_signer,
                vec![
                    attribute(der_set_of_one(&spki)),
                    attribute(der_set_of_one(&spki)),
                ],
            )
            .unwrap();
        assert!(matches!(parse_csr(two.der()), Err(CsrError::Invalid(_))));
        // A SET whose one value is an OCTET STRING, not a SubjectPublicKeyInfo.
        let octets = params()
            .serialize_request_with_attributes(
                &rcgen_signer,
                vec![attribute(der_set_of_one(&[0x04, 0x01, 0x00]))],
            )
            .unwrap();
        assert!(matches!(parse_csr(octets.der()), Err(CsrError::Invalid(_))));
        // A key the CSR's signature does not cover is not there: the tampered CSR fails.
        let mut tampered = der.clone();
        let at = tampered.len() - 80;
        tampered[at] ^= 1;
        assert!(parse_csr(&tampered).is_err());
    }

    #[test]
    fn rejects_trailing_data() {
        let mut der = make_csr();
        der.push(0);
        assert!(matches!(parse_csr(&der), Err(CsrError::Invalid(_))));
    }

    #[test]
    fn codes_are_stable() {
        assert_eq!(CsrError::SignatureInvalid.code(), "csr_signature_invalid");
        assert_eq!(CsrError::Invalid(String::new()).code(), "csr_invalid");
        assert_eq!(
            CsrError::KeyTypeUnsupported(String::new()).code(),
            "key_type_unsupported"
        );
    }
}
