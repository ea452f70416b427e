//! The little DER `bench ocsp` writes and reads: an RFC 5019 OCSP request, an OCSPResponse's
//! status and its first certificate's status, whether a CRL lists a serial number, and the
//! base64 of a GET request's path.

/// A TLV with a definite length.
pub(super) fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 6);
    out.push(tag);
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
    out
}

/// The next TLV of `input`: its tag, its content and what follows.
pub(super) fn next_tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |len, &b| (len << 8) | usize::from(b));
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

/// An OCSPRequest for one certificate: SHA-1 CertID, no nonce, unsigned (RFC 5019).
pub(super) fn ocsp_request(
    issuer_name_hash: &[u8],
    issuer_key_hash: &[u8],
    serial: &[u8],
) -> Vec<u8> {
    // AlgorithmIdentifier { id-sha1, NULL }
    let mut cert_id = tlv(
        0x30,
        &[0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a, 0x05, 0x00],
    );
    cert_id.extend_from_slice(&tlv(0x04, issuer_name_hash));
    cert_id.extend_from_slice(&tlv(0x04, issuer_key_hash));
    cert_id.extend_from_slice(&tlv(0x02, serial));
    let request = tlv(0x30, &tlv(0x30, &cert_id));
    let request_list = tlv(0x30, &request);
    let tbs_request = tlv(0x30, &request_list);
    tlv(0x30, &tbs_request)
}

/// An OCSPResponse's responseStatus (0 is successful).
pub(super) fn response_status(body: &[u8]) -> Option<u8> {
    let (0x30, response, _) = next_tlv(body)? else {
        return None;
    };
    match next_tlv(response)? {
        (0x0a, [status], _) => Some(*status),
        _ => None,
    }
}

/// The status a BasicOCSPResponse gives its first certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum CertStatus {
    /// good.
    Good,
    /// revoked.
    Revoked,
    /// unknown.
    Unknown,
}

/// The status of the first certificate of a successful OCSPResponse.
pub(super) fn cert_status(body: &[u8]) -> Option<CertStatus> {
    let (0x30, response, _) = next_tlv(body)? else {
        return None;
    };
    let (0x0a, [0], rest) = next_tlv(response)? else {
        return None;
    };
    let (0xa0, bytes, _) = next_tlv(rest)? else {
        return None;
    };
    let (0x30, bytes, _) = next_tlv(bytes)? else {
        return None;
    };
    let (0x06, _, rest) = next_tlv(bytes)? else {
        return None;
    };
    let (0x04, basic, _) = next_tlv(rest)? else {
        return None;
    };
    let (0x30, basic, _) = next_tlv(basic)? else {
        return None;
    };
    let (0x30, mut tbs, _) = next_tlv(basic)? else {
        return None;
    };
    // [0] version, responderID, producedAt, then the responses.
    let responses = loop {
        let (tag, content, rest) = next_tlv(tbs)?;
        if tag == 0x30 {
            break content;
        }
        tbs = rest;
    };
    let (0x30, single, _) = next_tlv(responses)? else {
        return None;
    };
    let (0x30, _, rest) = next_tlv(single)? else {
        return None;
    };
    match next_tlv(rest)?.0 {
        0x80 => Some(CertStatus::Good),
        0xa1 => Some(CertStatus::Revoked),
        0x82 => Some(CertStatus::Unknown),
        _ => None,
    }
}

/// Whether the CRL `der` lists the certificate of serial `serial` (INTEGER content octets).
pub(super) fn crl_lists(der: &[u8], serial: &[u8]) -> bool {
    let lists = || -> Option<bool> {
        let (0x30, list, _) = next_tlv(der)? else {
            return None;
        };
        let (0x30, mut tbs, _) = next_tlv(list)? else {
            return None;
        };
        // version, signature, issuer, thisUpdate, [nextUpdate], [revokedCertificates], [0] ext.
        for _ in 0..3 {
            tbs = next_tlv(tbs)?.2;
        }
        loop {
            let (tag, content, rest) = next_tlv(tbs)?;
            match tag {
                0x17 | 0x18 => tbs = rest,
                0x30 => {
                    let mut entries = content;
                    while !entries.is_empty() {
                        let (_, entry, rest) = next_tlv(entries)?;
                        if let (0x02, number, _) = next_tlv(entry)?
                            && number == serial
                        {
                            return Some(true);
                        }
                        entries = rest;
                    }
                    return Some(false);
                }
                _ => return Some(false),
            }
        }
    };
    lists().unwrap_or(false)
}

/// `der` in URL-safe base64 with its padding percent-encoded, for a GET OCSP request's path.
pub(super) fn base64_url(der: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(der.len().div_ceil(3) * 4 + 4);
    for chunk in der.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for k in 0..4 {
            if k <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * k)) & 0x3f) as usize]));
            } else {
                out.push_str("%3D");
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use time::OffsetDateTime;
    use touchmark_pki::cert::{SerialNumber, Subject, create_root_ca};
    use touchmark_pki::crl::{CrlContent, RevokedEntry, build_crl};
    use touchmark_pki::ocsp::HashAlg;
    use touchmark_pki::{KeyAlgorithm, SoftwareSigner};

    use super::*;

    #[test]
    fn the_request_parses_as_an_ocsp_request_of_one_certificate() {
        let serial = [0x00, 0x9a, 0x01, 0x02];
        let der = ocsp_request(&[1; 20], &[2; 20], &serial);
        let parsed = touchmark_pki::ocsp::parse_request(&der).unwrap();
        assert_eq!(parsed.certs.len(), 1);
        assert_eq!(parsed.nonce, None);
        let id = &parsed.certs[0];
        assert_eq!(id.hash, HashAlg::Sha1);
        assert_eq!(id.issuer_name_hash, vec![1; 20]);
        assert_eq!(id.issuer_key_hash, vec![2; 20]);
        assert_eq!(id.serial, serial.to_vec());
    }

    #[test]
    fn long_lengths_round_trip() {
        let content = vec![7u8; 300];
        let der = tlv(0x04, &content);
        assert_eq!(&der[..4], &[0x04, 0x82, 0x01, 0x2c]);
        let (tag, got, rest) = next_tlv(&der).unwrap();
        assert_eq!((tag, got, rest.len()), (0x04, &content[..], 0));
        assert_eq!(next_tlv(&der[..100]), None);
    }

    #[test]
    fn the_response_status_is_read() {
        let error =
            touchmark_pki::ocsp::error_response(touchmark_pki::ocsp::ResponseStatus::Unauthorized);
        assert_eq!(response_status(&error), Some(6));
        assert_eq!(cert_status(&error), None);
        assert_eq!(response_status(b"not der"), None);
    }

    #[test]
    fn a_crl_lists_its_entries_only() {
        let signer = SoftwareSigner::generate(KeyAlgorithm::EcdsaP256).unwrap();
        let now = OffsetDateTime::now_utc();
        let ca = create_root_ca(
            &signer,
            &Subject {
                organization: "O".into(),
                common_name: "CN".into(),
            },
            now,
            now + time::Duration::days(1),
            SerialNumber::random(&mut rand::rng()),
        )
        .unwrap();
        let content = |serials: &[&[u8]]| CrlContent {
            number: 1,
            this_update: now,
            next_update: now + time::Duration::hours(1),
            entries: serials
                .iter()
                .map(|s| RevokedEntry {
                    serial: s.to_vec(),
                    revoked_at: now,
                    reason: 1,
                })
                .collect(),
            partition_url: None,
        };
        let crl = build_crl(&ca, &signer, &content(&[&[0x11, 0x22], &[0x33]])).unwrap();
        assert!(crl_lists(&crl, &[0x11, 0x22]));
        assert!(crl_lists(&crl, &[0x33]));
        assert!(!crl_lists(&crl, &[0x44]));
        let empty = build_crl(&ca, &signer, &content(&[])).unwrap();
        assert!(!crl_lists(&empty, &[0x33]));
        assert!(!crl_lists(b"", &[0x33]));
    }

    #[test]
    fn base64_url_pads_with_escapes() {
        assert_eq!(base64_url(b"\xfb\xff"), "-_8%3D");
        assert_eq!(base64_url(b"a"), "YQ%3D%3D");
        assert_eq!(base64_url(b"abc"), "YWJj");
    }
}
