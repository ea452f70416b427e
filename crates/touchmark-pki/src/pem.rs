//! Reading and writing PEM (RFC 7468) for certificates, keys and CSRs.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use zeroize::Zeroizing;

use crate::error::PkiError;

/// One decoded PEM block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PemBlock {
    /// The label, e.g. `CERTIFICATE`.
    pub label: String,
    /// The decoded contents.
    pub der: Vec<u8>,
}

const BEGIN: &str = "-----BEGIN ";
const END: &str = "-----END ";
const DASHES: &str = "-----";

/// Encodes `der` as PEM with the given label, with 64-character lines and a final newline.
pub fn encode(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = String::with_capacity(b64.len() + b64.len() / 64 + 2 * label.len() + 40);
    push_pem(&mut out, label, &b64);
    out
}

/// Like [`encode`], for secrets: every intermediate buffer is wiped.
pub(crate) fn encode_zeroizing(label: &str, der: &[u8]) -> Zeroizing<String> {
    let b64 = Zeroizing::new(STANDARD.encode(der));
    let mut out = Zeroizing::new(String::with_capacity(
        b64.len() + b64.len() / 64 + 2 * label.len() + 40,
    ));
    push_pem(&mut out, label, &b64);
    out
}

fn push_pem(out: &mut String, label: &str, b64: &str) {
    out.push_str(BEGIN);
    out.push_str(label);
    out.push_str(DASHES);
    out.push('\n');
    // Base64 output is ASCII, so splitting at any byte offset is a char boundary.
    let mut rest = b64;
    while !rest.is_empty() {
        let (line, tail) = rest.split_at(rest.len().min(64));
        out.push_str(line);
        out.push('\n');
        rest = tail;
    }
    out.push_str(END);
    out.push_str(label);
    out.push_str(DASHES);
    out.push('\n');
}

/// Decodes every PEM block in `input`. Text outside blocks (explanatory text) is ignored.
///
/// # Errors
/// [`PkiError::InvalidPem`] if a block is unterminated, its END label differs, or its body is not base64.
pub fn decode_all(input: &str) -> Result<Vec<PemBlock>, PkiError> {
    let mut blocks = Vec::new();
    let mut rest = input;
    while let Some(start) = rest.find(BEGIN) {
        let after_begin = &rest[start + BEGIN.len()..];
        let label_end = after_begin
            .find(DASHES)
            .ok_or_else(|| PkiError::InvalidPem("unterminated BEGIN line".into()))?;
        let label = &after_begin[..label_end];
        if label.contains(['\n', '\r']) {
            return Err(PkiError::InvalidPem("malformed BEGIN line".into()));
        }
        let body_and_more = &after_begin[label_end + DASHES.len()..];
        let end_marker = format!("{END}{label}{DASHES}");
        let body_end = body_and_more
            .find(&end_marker)
            .ok_or_else(|| PkiError::InvalidPem(format!("no matching END line for {label:?}")))?;
        let der = decode_base64_lenient(&body_and_more[..body_end])
            .ok_or_else(|| PkiError::InvalidPem(format!("{label:?} block is not valid base64")))?;
        blocks.push(PemBlock {
            label: label.to_owned(),
            der,
        });
        rest = &body_and_more[body_end + end_marker.len()..];
    }
    Ok(blocks)
}

/// Decodes standard base64, ignoring ASCII whitespace. Returns `None` if it is not valid base64.
pub(crate) fn decode_base64_lenient(text: &str) -> Option<Vec<u8>> {
    let compact: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    STANDARD.decode(compact).ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn round_trip() {
        let der: Vec<u8> = (0..=255).collect();
        let pem = encode("THING", &der);
        assert!(pem.lines().all(|l| l.len() <= 64));
        let blocks = decode_all(&format!("junk\n{pem}{pem}")).unwrap();
        assert_eq!(blocks.len(), 2);
        assert_eq!(blocks[0].label, "THING");
        assert_eq!(blocks[1].der, der);
    }

    #[test]
    fn malformed() {
        assert!(decode_all("-----BEGIN X-----\nAAAA\n-----END Y-----\n").is_err());
        assert!(decode_all("-----BEGIN X-----\n!!!!\n-----END X-----\n").is_err());
        assert!(decode_all("-----BEGIN X").is_err());
    }
}
