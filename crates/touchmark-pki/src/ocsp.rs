//! OCSP (RFC 6960, with RFC 5019's lightweight profile): requests parsed and responses built in
//! DER here, signed through a [`Signer`] with a delegated responder certificate
//! (id-kp-OCSPSigning) that the CA issues. Nothing of Touchmark's domain: the caller says which
//! CAs it answers for and each certificate's status.

use rcgen::{
    CustomExtension, DistinguishedName, DnType, DnValue, ExtendedKeyUsagePurpose, IsCa,
    KeyUsagePurpose,
};
use time::OffsetDateTime;
use x509_parser::prelude::{FromDer as _, X509Certificate};

use crate::cert::{CaIssuer, Certificate, SerialNumber, SubjectKey, base_params};
use crate::der::{self, ECDSA_WITH_SHA256, tlv};
use crate::error::PkiError;
use crate::signer::{KeyAlgorithm, Signer};

/// id-sha1.
const OID_SHA1: &[u64] = &[1, 3, 14, 3, 2, 26];
/// id-sha256.
const OID_SHA256: &[u64] = &[2, 16, 840, 1, 101, 3, 4, 2, 1];
/// id-pkix-ocsp-nonce.
const OID_NONCE: &[u64] = &[1, 3, 6, 1, 5, 5, 7, 48, 1, 2];
/// id-pkix-ocsp-basic.
const OID_BASIC: &[u64] = &[1, 3, 6, 1, 5, 5, 7, 48, 1, 1];
/// id-pkix-ocsp-nocheck.
const OID_NOCHECK: &[u64] = &[1, 3, 6, 1, 5, 5, 7, 48, 1, 5];

/// The largest request accepted, in bytes. An RFC 5019 request of one certificate is about
/// 80 bytes; with a nonce and a signature, a few hundred.
pub const MAX_REQUEST: usize = 4096;
/// The most certificates one request may ask about.
pub const MAX_CERTS: usize = 8;

/// OCSPResponseStatus (RFC 6960 §4.2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseStatus {
    /// 1: the request does not parse.
    MalformedRequest = 1,
    /// 2: the responder failed.
    InternalError = 2,
    /// 3: try again later.
    TryLater = 3,
    /// 6: the responder does not answer for this CA.
    Unauthorized = 6,
}

/// The hash a CertID uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HashAlg {
    /// SHA-1, what most clients send (RFC 5019).
    Sha1,
    /// SHA-256.
    Sha256,
}

impl HashAlg {
    fn digest(self, data: &[u8]) -> Vec<u8> {
        match self {
            Self::Sha1 => {
                aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, data)
                    .as_ref()
                    .to_vec()
            }
            Self::Sha256 => aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data)
                .as_ref()
                .to_vec(),
        }
    }
}

/// A CertID (RFC 6960 §4.1.1), with its DER as received, which the response echoes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CertId {
    /// The hash of the two issuer hashes.
    pub hash: HashAlg,
    /// Hash of the issuer's subject (DER).
    pub issuer_name_hash: Vec<u8>,
    /// Hash of the issuer's subjectPublicKey bits.
    pub issuer_key_hash: Vec<u8>,
    /// The certificate's serial number: the INTEGER's content octets.
    pub serial: Vec<u8>,
    /// The CertID's DER, as received.
    pub der: Vec<u8>,
}

/// A parsed OCSP request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OcspRequest {
    /// The certificates asked about, in order.
    pub certs: Vec<CertId>,
    /// The nonce extension's value (its extnValue content), echoed in the response.
    pub nonce: Option<Vec<u8>>,
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed OCSP request: {0}")]
pub struct Malformed(pub String);

/// A minimal DER reader: single-byte tags, definite lengths.
struct Reader<'a> {
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(data: &'a [u8]) -> Self {
        Self { data }
    }

    fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    fn peek(&self) -> Option<u8> {
        self.data.first().copied()
    }

    /// The next TLV: its tag, its content, and its whole encoding.
    fn next(&mut self) -> Result<(u8, &'a [u8], &'a [u8]), Malformed> {
        let bad = |what: &str| Malformed(what.to_owned());
        let (&tag, rest) = self.data.split_first().ok_or_else(|| bad("truncated"))?;
        if tag & 0x1f == 0x1f {
            return Err(bad("multi-byte tag"));
        }
        let (&first, mut rest) = rest.split_first().ok_or_else(|| bad("truncated"))?;
        let len = if first < 0x80 {
            usize::from(first)
        } else {
            let n = usize::from(first & 0x7f);
            if n == 0 || n > 4 || rest.len() < n {
                return Err(bad("bad length"));
            }
            let mut len = 0usize;
            for &b in &rest[..n] {
                len = (len << 8) | usize::from(b);
            }
            if len < 0x80 || rest[0] == 0 {
                return Err(bad("length not in DER form"));
            }
            rest = &rest[n..];
            len
        };
        if rest.len() < len {
            return Err(bad("truncated"));
        }
        let header = self.data.len() - rest.len();
        let whole = &self.data[..header + len];
        let content = &rest[..len];
        self.data = &rest[len..];
        Ok((tag, content, whole))
    }

    fn expect(&mut self, want: u8, what: &str) -> Result<(&'a [u8], &'a [u8]), Malformed> {
        let (tag, content, whole) = self.next()?;
        if tag != want {
            return Err(Malformed(format!(
                "{what}: tag {tag:#04x}, not {want:#04x}"
            )));
        }
        Ok((content, whole))
    }
}

fn oid(arcs: &[u64]) -> Vec<u8> {
    der::oid_content(arcs).unwrap_or_default()
}

fn parse_cert_id(content: &[u8], whole: &[u8]) -> Result<CertId, Malformed> {
    let mut r = Reader::new(content);
    let (alg, _) = r.expect(der::SEQUENCE, "hashAlgorithm")?;
    let mut alg = Reader::new(alg);
    let (alg_oid, _) = alg.expect(der::OID, "hashAlgorithm OID")?;
    let hash = if alg_oid == oid(OID_SHA1) {
        HashAlg::Sha1
    } else if alg_oid == oid(OID_SHA256) {
        HashAlg::Sha256
    } else {
        return Err(Malformed(
            "a CertID hash other than SHA-1 or SHA-256".into(),
        ));
    };
    let (name, _) = r.expect(der::OCTET_STRING, "issuerNameHash")?;
    let (key, _) = r.expect(der::OCTET_STRING, "issuerKeyHash")?;
    let (serial, _) = r.expect(der::INTEGER, "serialNumber")?;
    if !r.is_empty() || serial.is_empty() || serial.len() > 21 {
        return Err(Malformed("CertID".into()));
    }
    Ok(CertId {
        hash,
        issuer_name_hash: name.to_vec(),
        issuer_key_hash: key.to_vec(),
        serial: serial.to_vec(),
        der: whole.to_vec(),
    })
}

/// Parses an OCSPRequest (DER). Request signatures are not checked (RFC 5019 §2.1.2: the
/// responder may ignore them).
///
/// # Errors
/// [`Malformed`] for anything but an OCSPRequest of 1 to [`MAX_CERTS`] certificates, at most
/// [`MAX_REQUEST`] bytes.
pub fn parse_request(der: &[u8]) -> Result<OcspRequest, Malformed> {
    if der.len() > MAX_REQUEST {
        return Err(Malformed(format!("larger than {MAX_REQUEST} bytes")));
    }
    let mut outer = Reader::new(der);
    let (request, _) = outer.expect(der::SEQUENCE, "OCSPRequest")?;
    if !outer.is_empty() {
        return Err(Malformed("bytes after the request".into()));
    }
    let mut request = Reader::new(request);
    let (tbs, _) = request.expect(der::SEQUENCE, "TBSRequest")?;
    // An optionalSignature [0] may follow; it is not checked.
    let mut tbs = Reader::new(tbs);
    if tbs.peek() == Some(0xa0) {
        tbs.next()?;
    }
    if tbs.peek() == Some(0xa1) {
        tbs.next()?;
    }
    let (list, _) = tbs.expect(der::SEQUENCE, "requestList")?;
    let mut certs = Vec::new();
    let mut list = Reader::new(list);
    while !list.is_empty() {
        let (one, _) = list.expect(der::SEQUENCE, "Request")?;
        let mut one = Reader::new(one);
        let (content, whole) = one.expect(der::SEQUENCE, "CertID")?;
        certs.push(parse_cert_id(content, whole)?);
        if certs.len() > MAX_CERTS {
            return Err(Malformed(format!("more than {MAX_CERTS} certificates")));
        }
    }
    if certs.is_empty() {
        return Err(Malformed("no certificate asked about".into()));
    }
    let mut nonce = None;
    if tbs.peek() == Some(0xa2) {
        let (exts, _) = tbs.expect(0xa2, "requestExtensions")?;
        let (exts, _) = Reader::new(exts).expect(der::SEQUENCE, "Extensions")?;
        let mut exts = Reader::new(exts);
        while !exts.is_empty() {
            let (ext, _) = exts.expect(der::SEQUENCE, "Extension")?;
            let mut ext = Reader::new(ext);
            let (id, _) = ext.expect(der::OID, "extnID")?;
            if ext.peek() == Some(der::BOOLEAN) {
                ext.next()?;
            }
            let (value, _) = ext.expect(der::OCTET_STRING, "extnValue")?;
            if id == oid(OID_NONCE) {
                // RFC 8954: a nonce of 1 to 32 octets.
                if value.is_empty() || value.len() > 34 {
                    return Err(Malformed("a nonce of more than 32 octets".into()));
                }
                nonce = Some(value.to_vec());
            }
        }
    }
    if !tbs.is_empty() {
        return Err(Malformed("unexpected fields in the request".into()));
    }
    Ok(OcspRequest { certs, nonce })
}

/// A certificate's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertStatus {
    /// Issued and not revoked.
    Good,
    /// Revoked at this time, with this CRLReason code.
    Revoked {
        /// When.
        at: OffsetDateTime,
        /// The CRLReason code; `None` leaves it out.
        reason: Option<u8>,
    },
    /// Never issued by this CA, or not known to the responder.
    Unknown,
}

/// The answer about one certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SingleResponse {
    /// The CertID asked about.
    pub cert_id: CertId,
    /// Its status.
    pub status: CertStatus,
    /// When the status was known to be true.
    pub this_update: OffsetDateTime,
    /// When newer information will be available.
    pub next_update: OffsetDateTime,
}

fn single(r: &SingleResponse) -> Vec<u8> {
    let mut content = r.cert_id.der.clone();
    match r.status {
        CertStatus::Good => content.extend_from_slice(&[0x80, 0x00]),
        CertStatus::Unknown => content.extend_from_slice(&[0x82, 0x00]),
        CertStatus::Revoked { at, reason } => {
            let mut revoked = der::generalized_time(at);
            if let Some(code) = reason {
                revoked.extend_from_slice(&tlv(0xa0, &tlv(der::ENUMERATED, &[code])));
            }
            content.extend_from_slice(&tlv(0xa1, &revoked));
        }
    }
    content.extend_from_slice(&der::generalized_time(r.this_update));
    content.extend_from_slice(&tlv(0xa0, &der::generalized_time(r.next_update)));
    tlv(der::SEQUENCE, &content)
}

/// A response that carries only an error status.
pub fn error_response(status: ResponseStatus) -> Vec<u8> {
    tlv(der::SEQUENCE, &tlv(der::ENUMERATED, &[status as u8]))
}

/// Builds a successful OCSPResponse with a BasicOCSPResponse signed by `signer`, the key of
/// `responder` (a delegated responder certificate, included in the response).
///
/// # Errors
/// [`PkiError::InvalidParameter`] if the key is not P-256; a signer error.
pub fn build_response(
    responder: &Certificate,
    signer: &dyn Signer,
    produced_at: OffsetDateTime,
    responses: &[SingleResponse],
    nonce: Option<&[u8]>,
) -> Result<Vec<u8>, PkiError> {
    if signer.algorithm() != KeyAlgorithm::EcdsaP256 {
        return Err(PkiError::InvalidParameter(
            "an OCSP response is signed with a P-256 key".into(),
        ));
    }
    // ResponderID byKey [2]: SHA-1 of the responder's subjectPublicKey bits.
    let key_hash = HashAlg::Sha1.digest(signer.public_key_raw());
    let mut data = tlv(0xa2, &tlv(der::OCTET_STRING, &key_hash));
    data.extend_from_slice(&der::generalized_time(produced_at));
    let mut list = Vec::new();
    for r in responses {
        list.extend_from_slice(&single(r));
    }
    data.extend_from_slice(&tlv(der::SEQUENCE, &list));
    if let Some(nonce) = nonce {
        let ext = der::extension(OID_NONCE, false, nonce);
        data.extend_from_slice(&tlv(0xa1, &tlv(der::SEQUENCE, &ext)));
    }
    let tbs = tlv(der::SEQUENCE, &data);
    let signature = signer.sign(&tbs)?;
    let mut bits = vec![0];
    bits.extend_from_slice(&signature);
    let mut basic = tbs;
    basic.extend_from_slice(&ECDSA_WITH_SHA256);
    basic.extend_from_slice(&tlv(der::BIT_STRING, &bits));
    basic.extend_from_slice(&tlv(0xa0, &tlv(der::SEQUENCE, responder.der())));
    let basic = tlv(der::SEQUENCE, &basic);
    let mut bytes = tlv(der::OID, &oid(OID_BASIC));
    bytes.extend_from_slice(&tlv(der::OCTET_STRING, &basic));
    let mut response = tlv(der::ENUMERATED, &[0]);
    response.extend_from_slice(&tlv(0xa0, &tlv(der::SEQUENCE, &bytes)));
    Ok(tlv(der::SEQUENCE, &response))
}

/// The two hashes a CertID names `issuer` by, with `hash`.
///
/// # Errors
/// [`PkiError::InvalidParameter`] if the certificate does not parse.
pub fn issuer_hashes(issuer: &Certificate, hash: HashAlg) -> Result<(Vec<u8>, Vec<u8>), PkiError> {
    let (_, cert) = X509Certificate::from_der(issuer.der())
        .map_err(|e| PkiError::InvalidParameter(format!("issuer certificate: {e}")))?;
    let name = hash.digest(cert.tbs_certificate.subject.as_raw());
    let key = hash.digest(&cert.tbs_certificate.subject_pki.subject_public_key.data);
    Ok((name, key))
}

/// Issues a delegated OCSP responder certificate for `key` (P-256) from `ca`: subject CN
/// `common_name`, EKU id-kp-OCSPSigning only, keyUsage digitalSignature, id-pkix-ocsp-nocheck
/// (RFC 6960 §4.2.2.2.1: relying parties do not check the responder's own status, so keep it
/// short-lived).
///
/// # Errors
/// [`PkiError::InvalidParameter`] for a bad name or validity; a signer error.
pub fn issue_responder_cert(
    ca: &CaIssuer,
    key: &dyn Signer,
    common_name: &str,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    serial: SerialNumber,
) -> Result<Certificate, PkiError> {
    if key.algorithm() != KeyAlgorithm::EcdsaP256 {
        return Err(PkiError::InvalidParameter(
            "an OCSP responder key is P-256".into(),
        ));
    }
    let mut dn = DistinguishedName::new();
    dn.push(
        DnType::CommonName,
        DnValue::Utf8String(crate::cert::checked_name("common name", common_name)?.to_owned()),
    );
    let subject_key = SubjectKey::p256(key.public_key_raw());
    let mut params = base_params(
        dn,
        not_before,
        not_after,
        &serial,
        IsCa::ExplicitNoCa,
        vec![KeyUsagePurpose::DigitalSignature],
        vec![ExtendedKeyUsagePurpose::OcspSigning],
        key.public_key_raw(),
    )?;
    params.custom_extensions = vec![CustomExtension::from_oid_content(
        OID_NOCHECK,
        vec![0x05, 0x00],
    )];
    ca.sign(&params, &subject_key, key.public_key_spki())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn garbage_and_oversized_requests_are_malformed() {
        for bad in [
            &b""[..],
            &b"\x30"[..],
            &b"\x30\x80\x00\x00"[..],
            &b"\x30\x03\x30\x01\x00"[..],
            &b"hello world"[..],
            &[0x30, 0x84, 0xff, 0xff, 0xff, 0xff][..],
        ] {
            assert!(parse_request(bad).is_err(), "{bad:?}");
        }
        assert!(parse_request(&vec![0x30; MAX_REQUEST + 1]).is_err());
        assert_eq!(
            error_response(ResponseStatus::MalformedRequest),
            vec![0x30, 0x03, 0x0a, 0x01, 0x01]
        );
    }

    #[test]
    fn a_request_round_trips() {
        // SEQUENCE { SEQUENCE { SEQUENCE { SEQUENCE { CertID } } } } with SHA-1.
        let mut alg = tlv(der::OID, &oid(OID_SHA1));
        alg.extend_from_slice(&[0x05, 0x00]);
        let mut cert_id = tlv(der::SEQUENCE, &alg);
        cert_id.extend_from_slice(&tlv(der::OCTET_STRING, &[1; 20]));
        cert_id.extend_from_slice(&tlv(der::OCTET_STRING, &[2; 20]));
        cert_id.extend_from_slice(&der::unsigned_integer(&[0x42, 0x43]));
        let cert_id = tlv(der::SEQUENCE, &cert_id);
        let request = tlv(der::SEQUENCE, &cert_id);
        let mut tbs = tlv(der::SEQUENCE, &request);
        let nonce = tlv(der::OCTET_STRING, &[9; 16]);
        let ext = der::extension(OID_NONCE, false, &nonce);
        tbs.extend_from_slice(&tlv(0xa2, &tlv(der::SEQUENCE, &ext)));
        let der = tlv(der::SEQUENCE, &tlv(der::SEQUENCE, &tbs));
        let parsed = parse_request(&der).unwrap();
        assert_eq!(parsed.certs.len(), 1);
        assert_eq!(parsed.certs[0].serial, vec![0x42, 0x43]);
        assert_eq!(parsed.certs[0].der, cert_id);
        assert_eq!(parsed.certs[0].hash, HashAlg::Sha1);
        assert_eq!(parsed.nonce, Some(nonce));
    }
}
