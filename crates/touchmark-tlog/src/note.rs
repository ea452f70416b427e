//! C2SP signed notes (<https://c2sp.org/signed-note>) with Ed25519 keys.
//!
//! A note is a UTF-8 text ending in a newline, a blank line, and one or more signature lines
//! `— <key name> <base64(key ID ‖ signature)>`.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::TlogError;

/// The largest note [`open_note`] accepts, in bytes.
pub const MAX_NOTE_SIZE: usize = 1 << 20;

/// The most signature lines [`open_note`] accepts (the spec requires at least 16).
pub const MAX_SIGNATURES: usize = 100;

/// The signature type byte of Ed25519 note keys.
const ED25519_TYPE: u8 = 0x01;

/// The em dash (U+2014) and space that open a signature line.
const SIG_PREFIX: &str = "\u{2014} ";

/// Whether `name` is a valid key name: non-empty, without Unicode spaces, `+`, or control
/// characters.
pub fn is_valid_key_name(name: &str) -> bool {
    !name.is_empty()
        && !name
            .chars()
            .any(|c| c.is_whitespace() || c == '+' || c.is_control())
}

/// The key ID of an Ed25519 key: the first 4 bytes of
/// SHA-256(name ‖ 0x0A ‖ 0x01 ‖ public key), big-endian.
pub fn ed25519_key_id(name: &str, public_key: &[u8; 32]) -> u32 {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update([b'\n', ED25519_TYPE]);
    h.update(public_key);
    let d = h.finalize();
    u32::from_be_bytes([d[0], d[1], d[2], d[3]])
}

/// Checks that `text` can be the text of a note: non-empty, ending in a newline, and free of
/// control characters other than newline.
fn check_text(text: &str) -> Result<(), TlogError> {
    if text.is_empty() || !text.ends_with('\n') {
        return Err(TlogError::MalformedNote("text must end with a newline"));
    }
    if text.len() > MAX_NOTE_SIZE {
        return Err(TlogError::NoteTooLarge);
    }
    if has_control(text) {
        return Err(TlogError::MalformedNote("control character"));
    }
    Ok(())
}

fn has_control(s: &str) -> bool {
    s.chars().any(|c| c < '\u{20}' && c != '\n')
}

/// A key that signs notes: whatever holds the private half (memory, an HSM), signing goes
/// through this, and the note format is written once, by [`sign_note`].
pub trait NoteKey {
    /// The key name, written in the signature line.
    fn name(&self) -> &str;
    /// The key ID ([`ed25519_key_id`] of the name and public key).
    fn key_id(&self) -> u32;
    /// The Ed25519 signature of `message`.
    ///
    /// # Errors
    ///
    /// [`TlogError::Signing`] if the key could not sign.
    fn sign(&self, message: &[u8]) -> Result<[u8; 64], TlogError>;
}

/// An Ed25519 note signing key held in memory, with its name.
///
/// `Debug` shows the name and key ID only, never the key.
pub struct NoteSigner {
    name: String,
    key: SigningKey,
    key_id: u32,
}

impl NoteSigner {
    /// A signer from a 32-byte Ed25519 seed (RFC 8032 private key) and a key name.
    ///
    /// # Errors
    ///
    /// [`TlogError::InvalidKeyName`] if the name is not a valid key name.
    pub fn from_seed(name: &str, seed: &[u8; 32]) -> Result<Self, TlogError> {
        if !is_valid_key_name(name) {
            return Err(TlogError::InvalidKeyName);
        }
        let key = SigningKey::from_bytes(seed);
        let key_id = ed25519_key_id(name, key.verifying_key().as_bytes());
        Ok(Self {
            name: name.to_owned(),
            key,
            key_id,
        })
    }

    /// The matching verifier.
    pub fn verifier(&self) -> NoteVerifier {
        NoteVerifier {
            name: self.name.clone(),
            key_id: self.key_id,
            key: self.key.verifying_key(),
        }
    }

    /// The signature line for `text`, including its final newline.
    ///
    /// # Errors
    ///
    /// As [`signature_line`].
    pub fn signature_line(&self, text: &str) -> Result<String, TlogError> {
        signature_line(self, text)
    }

    /// Signs `text` into a complete note with this key's signature only.
    ///
    /// # Errors
    ///
    /// As [`sign_note`].
    pub fn sign_note(&self, text: &str) -> Result<String, TlogError> {
        sign_note(text, &[self])
    }
}

impl NoteKey for NoteSigner {
    fn name(&self) -> &str {
        &self.name
    }

    fn key_id(&self) -> u32 {
        self.key_id
    }

    fn sign(&self, message: &[u8]) -> Result<[u8; 64], TlogError> {
        Ok(self.key.sign(message).to_bytes())
    }
}

impl fmt::Debug for NoteSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NoteSigner")
            .field("name", &self.name)
            .field("key_id", &format_args!("{:08x}", self.key_id))
            .finish_non_exhaustive()
    }
}

/// The signature line of `key` for `text`, including its final newline:
/// `— <name> <base64(key ID ‖ signature)>`.
///
/// # Errors
///
/// [`TlogError::MalformedNote`] if the text is empty, does not end with a newline, or holds
/// control characters; [`TlogError::NoteTooLarge`] if it is too large; [`TlogError::Signing`]
/// if the key fails.
pub fn signature_line(key: &dyn NoteKey, text: &str) -> Result<String, TlogError> {
    check_text(text)?;
    let sig = key.sign(text.as_bytes())?;
    let mut blob = Vec::with_capacity(4 + 64);
    blob.extend_from_slice(&key.key_id().to_be_bytes());
    blob.extend_from_slice(&sig);
    Ok(format!(
        "{SIG_PREFIX}{} {}\n",
        key.name(),
        STANDARD.encode(blob)
    ))
}

/// Signs `text` with every key, in order, into one note.
///
/// # Errors
///
/// As [`signature_line`], and [`TlogError::MalformedNote`] when no key is given.
pub fn sign_note(text: &str, keys: &[&dyn NoteKey]) -> Result<String, TlogError> {
    check_text(text)?;
    if keys.is_empty() {
        return Err(TlogError::MalformedNote("no signers"));
    }
    let mut note = String::with_capacity(text.len() + 1 + keys.len() * 128);
    note.push_str(text);
    note.push('\n');
    for key in keys {
        note.push_str(&signature_line(*key, text)?);
    }
    Ok(note)
}

/// An Ed25519 note verifier key, written `<name>+<key ID as 8 hex digits>+<base64(0x01 ‖ key)>`.
#[derive(Clone, PartialEq, Eq)]
pub struct NoteVerifier {
    name: String,
    key_id: u32,
    key: VerifyingKey,
}

impl NoteVerifier {
    /// Parses a verifier key string.
    ///
    /// # Errors
    ///
    /// [`TlogError::InvalidKeyName`] or [`TlogError::MalformedVerifierKey`] if the string is
    /// malformed, is not an Ed25519 key, or its key ID does not match its name and key.
    pub fn parse(vkey: &str) -> Result<Self, TlogError> {
        // Split on the first two `+` only: standard base64 may contain `+`.
        let mut parts = vkey.splitn(3, '+');
        let (Some(name), Some(id), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(TlogError::MalformedVerifierKey("expected name+id+key"));
        };
        if !is_valid_key_name(name) {
            return Err(TlogError::InvalidKeyName);
        }
        if id.len() != 8 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(TlogError::MalformedVerifierKey(
                "key ID is not 8 hex digits",
            ));
        }
        let key_id = u32::from_str_radix(id, 16)
            .map_err(|_| TlogError::MalformedVerifierKey("key ID is not 8 hex digits"))?;
        let key = STANDARD
            .decode(key)
            .map_err(|_| TlogError::MalformedVerifierKey("key is not base64"))?;
        let Some((&ED25519_TYPE, public)) = key.split_first() else {
            return Err(TlogError::MalformedVerifierKey("not an Ed25519 key"));
        };
        let public: [u8; 32] = public
            .try_into()
            .map_err(|_| TlogError::MalformedVerifierKey("Ed25519 key is not 32 bytes"))?;
        if ed25519_key_id(name, &public) != key_id {
            return Err(TlogError::MalformedVerifierKey(
                "key ID does not match the name and key",
            ));
        }
        let key = VerifyingKey::from_bytes(&public)
            .map_err(|_| TlogError::MalformedVerifierKey("invalid Ed25519 key"))?;
        Ok(Self {
            name: name.to_owned(),
            key_id,
            key,
        })
    }

    /// A verifier for a raw Ed25519 public key.
    ///
    /// # Errors
    ///
    /// [`TlogError::InvalidKeyName`] or [`TlogError::MalformedVerifierKey`].
    pub fn from_public_key(name: &str, public_key: &[u8; 32]) -> Result<Self, TlogError> {
        if !is_valid_key_name(name) {
            return Err(TlogError::InvalidKeyName);
        }
        let key = VerifyingKey::from_bytes(public_key)
            .map_err(|_| TlogError::MalformedVerifierKey("invalid Ed25519 key"))?;
        Ok(Self {
            name: name.to_owned(),
            key_id: ed25519_key_id(name, public_key),
            key,
        })
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key ID.
    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// The raw 32-byte Ed25519 public key.
    pub fn public_key(&self) -> &[u8; 32] {
        self.key.as_bytes()
    }

    /// Whether `sig` is this key's valid signature of `text`.
    fn verify(&self, text: &[u8], sig: &[u8]) -> bool {
        Signature::from_slice(sig)
            .map(|sig| self.key.verify_strict(text, &sig).is_ok())
            .unwrap_or(false)
    }
}

impl fmt::Display for NoteVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut key = Vec::with_capacity(33);
        key.push(ED25519_TYPE);
        key.extend_from_slice(self.key.as_bytes());
        write!(
            f,
            "{}+{:08x}+{}",
            self.name,
            self.key_id,
            STANDARD.encode(key)
        )
    }
}

impl fmt::Debug for NoteVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NoteVerifier({self})")
    }
}

impl FromStr for NoteVerifier {
    type Err = TlogError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// The text of a note whose signature was verified, and the keys that verified it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedNote {
    text: String,
    signers: Vec<(String, u32)>,
}

impl VerifiedNote {
    /// The signed text, with its final newline.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The signed text, with its final newline.
    pub fn into_text(self) -> String {
        self.text
    }

    /// The name and key ID of every known key whose signature verified.
    pub fn signers(&self) -> &[(String, u32)] {
        &self.signers
    }
}

/// One parsed signature line.
struct SigLine<'a> {
    name: &'a str,
    key_id: u32,
    sig: Vec<u8>,
}

/// Splits a note into its text and signature lines, checking its form but not its signatures.
fn split_note(note: &[u8]) -> Result<(&str, Vec<SigLine<'_>>), TlogError> {
    if note.len() > MAX_NOTE_SIZE {
        return Err(TlogError::NoteTooLarge);
    }
    let note = std::str::from_utf8(note).map_err(|_| TlogError::MalformedNote("not UTF-8"))?;
    if has_control(note) {
        return Err(TlogError::MalformedNote("control character"));
    }
    // The text ends at the last blank line; it keeps its final newline.
    let split = note.rfind("\n\n").ok_or(TlogError::MalformedNote(
        "no blank line before the signatures",
    ))?;
    let (text, sigs) = (&note[..=split], &note[split + 2..]);
    let sigs = sigs.strip_suffix('\n').ok_or(TlogError::MalformedNote(
        "signatures must end with a newline",
    ))?;
    let mut lines = Vec::new();
    for line in sigs.split('\n') {
        if lines.len() == MAX_SIGNATURES {
            return Err(TlogError::NoteTooLarge);
        }
        let rest = line
            .strip_prefix(SIG_PREFIX)
            .ok_or(TlogError::MalformedNote(
                "signature line must start with an em dash",
            ))?;
        let (name, b64) = rest.split_once(' ').ok_or(TlogError::MalformedNote(
            "signature line without a signature",
        ))?;
        if !is_valid_key_name(name) {
            return Err(TlogError::MalformedNote("invalid key name"));
        }
        let blob = STANDARD
            .decode(b64)
            .map_err(|_| TlogError::MalformedNote("signature is not base64"))?;
        let Some((id, sig)) = blob.split_first_chunk::<4>() else {
            return Err(TlogError::MalformedNote("signature too short"));
        };
        if sig.is_empty() {
            return Err(TlogError::MalformedNote("signature too short"));
        }
        lines.push(SigLine {
            name,
            key_id: u32::from_be_bytes(*id),
            sig: sig.to_vec(),
        });
    }
    Ok((text, lines))
}

/// Checks a signed note against known verifiers and returns its text.
///
/// Signatures from unknown keys (no verifier with the same name *and* key ID) are ignored. A
/// signature from a known key that fails to verify rejects the whole note, and so does a note
/// with no signature from a known key.
///
/// # Errors
///
/// [`TlogError::NoteTooLarge`], [`TlogError::MalformedNote`], [`TlogError::BadSignature`] or
/// [`TlogError::UnverifiedNote`].
pub fn open_note(note: &[u8], verifiers: &[NoteVerifier]) -> Result<VerifiedNote, TlogError> {
    let (text, lines) = split_note(note)?;
    let mut signers: Vec<(String, u32)> = Vec::new();
    for line in &lines {
        let known: Vec<&NoteVerifier> = verifiers
            .iter()
            .filter(|v| v.name == line.name && v.key_id == line.key_id)
            .collect();
        if known.is_empty() {
            continue;
        }
        if !known.iter().any(|v| v.verify(text.as_bytes(), &line.sig)) {
            return Err(TlogError::BadSignature {
                name: line.name.to_owned(),
            });
        }
        if !signers
            .iter()
            .any(|(n, id)| n == line.name && *id == line.key_id)
        {
            signers.push((line.name.to_owned(), line.key_id));
        }
    }
    if signers.is_empty() {
        return Err(TlogError::UnverifiedNote);
    }
    Ok(VerifiedNote {
        text: text.to_owned(),
        signers,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn signer(name: &str, seed: u8) -> NoteSigner {
        NoteSigner::from_seed(name, &[seed; 32]).unwrap()
    }

    #[test]
    fn sign_and_open() {
        let a = signer("a.example/log", 1);
        let b = signer("b.example/witness", 2);
        let note = sign_note("hello\n\nworld\n", &[&a, &b]).unwrap();
        let v = open_note(note.as_bytes(), &[b.verifier()]).unwrap();
        assert_eq!(v.text(), "hello\n\nworld\n");
        assert_eq!(v.signers(), &[("b.example/witness".to_owned(), b.key_id())]);
        let both = open_note(note.as_bytes(), &[a.verifier(), b.verifier()]).unwrap();
        assert_eq!(both.signers().len(), 2);
    }

    #[test]
    fn unknown_keys_are_ignored_but_one_must_verify() {
        let a = signer("a.example", 1);
        let other = signer("a.example", 3); // same name, other key ID
        let note = a.sign_note("text\n").unwrap();
        assert!(matches!(
            open_note(note.as_bytes(), &[other.verifier()]),
            Err(TlogError::UnverifiedNote)
        ));
        assert!(matches!(
            open_note(note.as_bytes(), &[]),
            Err(TlogError::UnverifiedNote)
        ));
    }

    #[test]
    fn tampering_is_rejected() {
        let a = signer("a.example", 1);
        let note = a.sign_note("text\n").unwrap();
        let bad = note.replacen("text", "texT", 1);
        assert!(matches!(
            open_note(bad.as_bytes(), &[a.verifier()]),
            Err(TlogError::BadSignature { .. })
        ));
    }

    #[test]
    fn malformed_notes() {
        let a = signer("a.example", 1);
        let v = [a.verifier()];
        let good = a.sign_note("text\n").unwrap();
        let cases: Vec<(&str, String)> = vec![
            ("no blank line", good.replacen("\n\n", "\n", 1)),
            ("no final newline", good.trim_end_matches('\n').to_owned()),
            ("carriage return", good.replacen("text", "te\rxt", 1)),
            ("tab", good.replacen("text", "te\txt", 1)),
            ("hyphen", good.replacen('\u{2014}', "-", 1)),
            ("no signatures", "text\n\n".to_owned()),
            ("empty sig line", format!("{good}\n")),
            ("bad base64", good.replacen(" ", " !", 2)),
            ("too short", "text\n\n\u{2014} a.example AAAA\n".to_owned()),
            ("plus in name", good.replacen("a.example", "a+example", 1)),
        ];
        for (name, note) in cases {
            assert!(open_note(note.as_bytes(), &v).is_err(), "{name}");
        }
        assert!(open_note(b"\xff\n\n", &v).is_err());
        let huge = vec![b'a'; MAX_NOTE_SIZE + 1];
        assert!(matches!(open_note(&huge, &v), Err(TlogError::NoteTooLarge)));
    }

    #[test]
    fn sign_rejects_bad_text_and_names() {
        let a = signer("a.example", 1);
        assert!(a.sign_note("").is_err());
        assert!(a.sign_note("no newline").is_err());
        assert!(a.sign_note("bell\u{7}\n").is_err());
        assert!(NoteSigner::from_seed("", &[0; 32]).is_err());
        assert!(NoteSigner::from_seed("a b", &[0; 32]).is_err());
        assert!(NoteSigner::from_seed("a+b", &[0; 32]).is_err());
        assert!(NoteSigner::from_seed("a\u{2003}b", &[0; 32]).is_err());
        assert!(!format!("{a:?}").contains("key:"));
    }

    #[test]
    fn verifier_key_round_trip_and_rejects() {
        let a = signer("a.example", 1);
        let s = a.verifier().to_string();
        assert_eq!(NoteVerifier::parse(&s).unwrap(), a.verifier());
        let (name, rest) = s.split_once('+').unwrap();
        let (id, key) = rest.split_once('+').unwrap();
        assert!(NoteVerifier::parse(&format!("b.example+{id}+{key}")).is_err());
        assert!(NoteVerifier::parse(&format!("{name}+00000000+{key}")).is_err());
        assert!(NoteVerifier::parse(&format!("{name}+{id}")).is_err());
        assert!(NoteVerifier::parse(&format!("{name}+{id}+{}", &key[1..])).is_err());
        assert!(NoteVerifier::parse(&format!("{name}+0{id}+{key}")).is_err());
    }
}
