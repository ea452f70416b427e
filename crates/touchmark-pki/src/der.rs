//! A minimal DER writer for the few structures rcgen cannot express (RFC 4108 hardwareModuleName, AIA).

/// Appends a DER length.
fn push_len(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        // Fits in the short form.
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        let significant = &bytes[skip..];
        out.push(0x80 | significant.len() as u8);
        out.extend_from_slice(significant);
    }
}

/// Encodes one tag-length-value with the given (single-byte) tag.
pub(crate) fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 6);
    out.push(tag);
    push_len(&mut out, content.len());
    out.extend_from_slice(content);
    out
}

/// Tag of a SEQUENCE.
pub(crate) const SEQUENCE: u8 = 0x30;
/// Tag of an OCTET STRING.
pub(crate) const OCTET_STRING: u8 = 0x04;
/// Tag of an OBJECT IDENTIFIER.
pub(crate) const OID: u8 = 0x06;

/// Encodes the content octets of an OBJECT IDENTIFIER (X.690 §8.19), or `None` if the arcs are not a valid OID.
pub(crate) fn oid_content(arcs: &[u64]) -> Option<Vec<u8>> {
    let (&first, rest) = arcs.split_first()?;
    let (&second, rest) = rest.split_first()?;
    if first > 2 || (first < 2 && second > 39) {
        return None;
    }
    let mut out = Vec::with_capacity(arcs.len() * 2);
    push_base128(&mut out, first.checked_mul(40)?.checked_add(second)?);
    for &arc in rest {
        push_base128(&mut out, arc);
    }
    Some(out)
}

fn push_base128(out: &mut Vec<u8>, value: u64) {
    let mut groups = [0u8; 10];
    let mut n = 0;
    let mut v = value;
    loop {
        groups[n] = (v & 0x7f) as u8;
        n += 1;
        v >>= 7;
        if v == 0 {
            break;
        }
    }
    for i in (0..n).rev() {
        let continuation = if i == 0 { 0 } else { 0x80 };
        out.push(groups[i] | continuation);
    }
}

/// Tag of an INTEGER.
pub(crate) const INTEGER: u8 = 0x02;
/// Tag of a BIT STRING.
pub(crate) const BIT_STRING: u8 = 0x03;
/// Tag of a BOOLEAN.
pub(crate) const BOOLEAN: u8 = 0x01;
/// Tag of an ENUMERATED.
pub(crate) const ENUMERATED: u8 = 0x0a;

/// A non-negative INTEGER from its big-endian magnitude: leading zeros dropped, a zero byte
/// prepended when the high bit is set, so the value stays positive.
pub(crate) fn unsigned_integer(magnitude: &[u8]) -> Vec<u8> {
    let skip = magnitude.iter().take_while(|b| **b == 0).count();
    let significant = &magnitude[skip..];
    let mut content = Vec::with_capacity(significant.len() + 1);
    if significant.first().is_none_or(|b| b & 0x80 != 0) {
        content.push(0);
    }
    content.extend_from_slice(significant);
    tlv(INTEGER, &content)
}

/// An INTEGER of a `u64`.
pub(crate) fn u64_integer(value: u64) -> Vec<u8> {
    unsigned_integer(&value.to_be_bytes())
}

/// A Time (RFC 5280 §4.1.2.5): UTCTime through 2049, GeneralizedTime from 2050, in whole
/// seconds, UTC.
pub(crate) fn time(at: time::OffsetDateTime) -> Vec<u8> {
    let at = at.to_offset(time::UtcOffset::UTC);
    let rest = format!(
        "{:02}{:02}{:02}{:02}{:02}Z",
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    );
    if (1950..2050).contains(&at.year()) {
        tlv(0x17, format!("{:02}{rest}", at.year() % 100).as_bytes())
    } else {
        tlv(0x18, format!("{:04}{rest}", at.year()).as_bytes())
    }
}

/// A GeneralizedTime in whole seconds, UTC (what OCSP uses, RFC 6960).
pub(crate) fn generalized_time(at: time::OffsetDateTime) -> Vec<u8> {
    let at = at.to_offset(time::UtcOffset::UTC);
    let text = format!(
        "{:04}{:02}{:02}{:02}{:02}{:02}Z",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    );
    tlv(0x18, text.as_bytes())
}

/// An Extension: `SEQUENCE { extnID, critical BOOLEAN DEFAULT FALSE, extnValue OCTET STRING }`.
pub(crate) fn extension(oid: &[u64], critical: bool, value: &[u8]) -> Vec<u8> {
    let mut content = tlv(OID, &oid_content(oid).unwrap_or_default());
    if critical {
        content.extend_from_slice(&tlv(BOOLEAN, &[0xff]));
    }
    content.extend_from_slice(&tlv(OCTET_STRING, value));
    tlv(SEQUENCE, &content)
}

/// The AlgorithmIdentifier of ecdsa-with-SHA256 (RFC 5758: parameters absent).
pub(crate) const ECDSA_WITH_SHA256: [u8; 12] = [
    0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02,
];

/// DER prefix of a P-256 SubjectPublicKeyInfo, up to the uncompressed point:
/// `SEQUENCE { SEQUENCE { id-ecPublicKey, prime256v1 }, BIT STRING (0 unused bits) }`.
pub(crate) const P256_SPKI_PREFIX: [u8; 27] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00, 0x04,
];

/// DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410), up to the 32-byte key.
pub(crate) const ED25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// Builds the SubjectPublicKeyInfo for a 65-byte uncompressed P-256 point.
pub(crate) fn p256_spki(point: &[u8]) -> Vec<u8> {
    // The prefix already holds the 0x04 point-format byte.
    let mut spki = Vec::with_capacity(91);
    spki.extend_from_slice(&P256_SPKI_PREFIX[..26]);
    spki.extend_from_slice(point);
    spki
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oid_encoding_matches_known_values() {
        // 1.3.6.1.5.5.7.8.4 (id-on-hardwareModuleName)
        assert_eq!(
            oid_content(&[1, 3, 6, 1, 5, 5, 7, 8, 4]),
            Some(vec![0x2b, 6, 1, 5, 5, 7, 8, 4])
        );
        // 1.2.840.10045.2.1 (id-ecPublicKey)
        assert_eq!(
            oid_content(&[1, 2, 840, 10045, 2, 1]),
            Some(vec![0x2a, 0x86, 0x48, 0xce, 0x3d, 2, 1])
        );
        assert_eq!(oid_content(&[1]), None);
        assert_eq!(oid_content(&[3, 1]), None);
        assert_eq!(oid_content(&[1, 40]), None);
    }

    #[test]
    fn integers_stay_positive_and_minimal() {
        assert_eq!(unsigned_integer(&[0, 0, 1]), vec![0x02, 0x01, 0x01]);
        assert_eq!(unsigned_integer(&[0x80]), vec![0x02, 0x02, 0x00, 0x80]);
        assert_eq!(unsigned_integer(&[]), vec![0x02, 0x01, 0x00]);
        assert_eq!(u64_integer(256), vec![0x02, 0x02, 0x01, 0x00]);
    }

    #[test]
    fn times_switch_to_generalized_in_2050() {
        let t = time::macros::datetime!(2026-03-04 05:06:07 UTC);
        assert_eq!(time(t), tlv(0x17, b"260304050607Z"));
        let t = time::macros::datetime!(9999-12-31 23:59:59 UTC);
        assert_eq!(time(t), tlv(0x18, b"99991231235959Z"));
    }

    #[test]
    fn long_lengths() {
        let v = tlv(OCTET_STRING, &[0u8; 300]);
        assert_eq!(&v[..4], &[0x04, 0x82, 0x01, 0x2c]);
        let v = tlv(OCTET_STRING, &[0u8; 128]);
        assert_eq!(&v[..3], &[0x04, 0x81, 0x80]);
    }
}
