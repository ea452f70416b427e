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
    fn long_lengths() {
        let v = tlv(OCTET_STRING, &[0u8; 300]);
        assert_eq!(&v[..4], &[0x04, 0x82, 0x01, 0x2c]);
        let v = tlv(OCTET_STRING, &[0u8; 128]);
        assert_eq!(&v[..3], &[0x04, 0x81, 0x80]);
    }
}
