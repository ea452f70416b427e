//! The few encodings between PKCS#11 and the [`touchmark_pki::Signer`] contract: a token's raw
//! ECDSA signature (`r || s`) to the DER `Ecdsa-Sig-Value`, the curve parameters, and the
//! public point in `CKA_EC_POINT`.

/// `CKA_EC_PARAMS` of P-256: the OID prime256v1 (1.2.840.10045.3.1.7).
pub(crate) const P256_PARAMS: [u8; 10] =
    [0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];

/// `CKA_EC_PARAMS` of Ed25519 as an OID (id-Ed25519, 1.3.101.112; PKCS#11 3.0).
pub(crate) const ED25519_OID_PARAMS: [u8; 5] = [0x06, 0x03, 0x2b, 0x65, 0x70];

/// `CKA_EC_PARAMS` of Ed25519 as a curve name (PrintableString `edwards25519`), which older
/// tokens use.
pub(crate) const ED25519_NAME_PARAMS: [u8; 14] = [
    0x13, 0x0c, b'e', b'd', b'w', b'a', b'r', b'd', b's', b'2', b'5', b'5', b'1', b'9',
];

/// One DER INTEGER of a big-endian unsigned value: leading zeros dropped, a zero put back
/// when the high bit is set.
fn integer(value: &[u8]) -> Vec<u8> {
    let skip = value.iter().take_while(|b| **b == 0).count();
    let digits = &value[skip.min(value.len().saturating_sub(1))..];
    let digits = if digits.is_empty() {
        &[0u8][..]
    } else {
        digits
    };
    let pad = digits[0] & 0x80 != 0;
    let mut out = Vec::with_capacity(digits.len() + 3);
    out.push(0x02);
    out.push((digits.len() + usize::from(pad)) as u8);
    if pad {
        out.push(0);
    }
    out.extend_from_slice(digits);
    out
}

/// A raw P-256 signature (`r || s`, 32 bytes each, as PKCS#11's CKM_ECDSA returns it) as the
/// DER `Ecdsa-Sig-Value` (RFC 3279 §2.2.3), or `None` if it is not 64 bytes.
pub fn ecdsa_raw_to_der(raw: &[u8]) -> Option<Vec<u8>> {
    if raw.len() != 64 {
        return None;
    }
    let (r, s) = raw.split_at(32);
    let mut body = integer(r);
    body.extend(integer(s));
    // At most 2 * 35 bytes: the short length form always fits.
    let mut out = Vec::with_capacity(body.len() + 2);
    out.push(0x30);
    out.push(body.len() as u8);
    out.extend(body);
    Some(out)
}

/// The public point of `CKA_EC_POINT`: the DER OCTET STRING that PKCS#11 specifies, or the
/// bare point that some tokens return. `len` is the point's length (65 for an uncompressed
/// P-256 point, 32 for Ed25519).
pub(crate) fn ec_point(value: &[u8], len: usize) -> Option<Vec<u8>> {
    if value.len() == len + 2 && value[0] == 0x04 && usize::from(value[1]) == len {
        return Some(value[2..].to_vec());
    }
    // The long form of an OCTET STRING's length (0x81 len) for points of 128 bytes or more
    // does not occur for these two curves.
    if value.len() == len {
        return Some(value.to_vec());
    }
    None
}

/// The private value in an unencrypted PKCS#8 v1 document of aws-lc-rs: the 32-byte scalar
/// of a P-256 `ECPrivateKey` (RFC 5915), or the 32-byte seed of an Ed25519 key (RFC 8410).
/// `None` if the document does not have that shape.
pub(crate) fn pkcs8_private(alg: touchmark_pki::KeyAlgorithm, pkcs8: &[u8]) -> Option<Vec<u8>> {
    // ECPrivateKey: version 1, then the OCTET STRING of the scalar; Ed25519: the
    // CurvePrivateKey OCTET STRING inside the privateKey OCTET STRING.
    let marker: &[u8] = match alg {
        touchmark_pki::KeyAlgorithm::EcdsaP256 => &[0x02, 0x01, 0x01, 0x04, 0x20],
        touchmark_pki::KeyAlgorithm::Ed25519 => &[0x04, 0x22, 0x04, 0x20],
    };
    let at = pkcs8.windows(marker.len()).position(|w| w == marker)? + marker.len();
    pkcs8.get(at..at + 32).map(<[u8]>::to_vec)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn raw_signatures_become_minimal_der_integers() {
        // High bit set in r: a zero is put in front; leading zeros of s are dropped.
        let mut raw = [0u8; 64];
        raw[0] = 0x80;
        raw[31] = 1;
        raw[62] = 0x01;
        raw[63] = 0x02;
        let der = ecdsa_raw_to_der(&raw).unwrap();
        assert_eq!(&der[..5], &[0x30, 0x27, 0x02, 0x21, 0x00]);
        assert_eq!(&der[der.len() - 4..], &[0x02, 0x02, 0x01, 0x02]);
        // An all-zero s is the INTEGER 0.
        let der = ecdsa_raw_to_der(
            &[0x11; 32]
                .iter()
                .chain(&[0u8; 32])
                .copied()
                .collect::<Vec<_>>(),
        )
        .unwrap();
        assert_eq!(&der[der.len() - 3..], &[0x02, 0x01, 0x00]);
        assert!(ecdsa_raw_to_der(&[1; 63]).is_none());
    }

    #[test]
    fn points_are_read_wrapped_or_bare() {
        let point: Vec<u8> = std::iter::once(4).chain([7u8; 64]).collect();
        let mut wrapped = vec![0x04, 65];
        wrapped.extend(&point);
        assert_eq!(ec_point(&wrapped, 65).unwrap(), point);
        assert_eq!(ec_point(&point, 65).unwrap(), point);
        assert!(ec_point(&point[1..], 65).is_none());
        let mut ed = vec![0x04, 32];
        ed.extend([9u8; 32]);
        assert_eq!(ec_point(&ed, 32).unwrap(), vec![9u8; 32]);
    }
}
