//! C2SP checkpoints (<https://c2sp.org/tlog-checkpoint>): a log's signed tree head.

use std::fmt;

use crate::TlogError;
use crate::hash::Hash;
use crate::note::{NoteKey, NoteVerifier, open_note, sign_note};

/// The note text of a checkpoint: origin, tree size, root hash, and optional extension lines.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    origin: String,
    size: u64,
    root: Hash,
    extensions: Vec<String>,
}

/// Whether `line` can be one line of a note text: non-empty, no control characters.
fn valid_line(line: &str) -> bool {
    !line.is_empty() && !line.chars().any(char::is_control)
}

impl Checkpoint {
    /// A checkpoint without extension lines.
    ///
    /// # Errors
    ///
    /// [`TlogError::MalformedCheckpoint`] if the origin is empty or holds a control character.
    pub fn new(origin: &str, size: u64, root: Hash) -> Result<Self, TlogError> {
        Self::with_extensions(origin, size, root, Vec::new())
    }

    /// A checkpoint with extension lines (not recommended by the spec: monitors cannot audit
    /// them).
    ///
    /// # Errors
    ///
    /// [`TlogError::MalformedCheckpoint`] if the origin or an extension line is empty or holds a
    /// control character (including a newline).
    pub fn with_extensions(
        origin: &str,
        size: u64,
        root: Hash,
        extensions: Vec<String>,
    ) -> Result<Self, TlogError> {
        if !valid_line(origin) {
            return Err(TlogError::MalformedCheckpoint("invalid origin line"));
        }
        if !extensions.iter().all(|e| valid_line(e)) {
            return Err(TlogError::MalformedCheckpoint("invalid extension line"));
        }
        Ok(Self {
            origin: origin.to_owned(),
            size,
            root,
            extensions,
        })
    }

    /// The origin: the log's identity, normally equal to its key name.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The number of leaves.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The root hash.
    pub fn root(&self) -> &Hash {
        &self.root
    }

    /// The extension lines, if any.
    pub fn extensions(&self) -> &[String] {
        &self.extensions
    }

    /// The note text: every line followed by a newline (the same as `Display`).
    pub fn to_text(&self) -> String {
        self.to_string()
    }

    /// Parses a checkpoint's note text.
    ///
    /// # Errors
    ///
    /// [`TlogError::MalformedCheckpoint`] if it has fewer than three lines, does not end in a
    /// newline, has an empty line, a size with a sign or leading zeros, or a root that is not
    /// canonical base64 of 32 bytes.
    pub fn parse(text: &str) -> Result<Self, TlogError> {
        let body = text
            .strip_suffix('\n')
            .ok_or(TlogError::MalformedCheckpoint(
                "text must end with a newline",
            ))?;
        let mut lines = body.split('\n');
        let (Some(origin), Some(size), Some(root)) = (lines.next(), lines.next(), lines.next())
        else {
            return Err(TlogError::MalformedCheckpoint("fewer than three lines"));
        };
        let size = parse_decimal(size).ok_or(TlogError::MalformedCheckpoint("invalid size"))?;
        let root = Hash::from_base64(root)
            .map_err(|_| TlogError::MalformedCheckpoint("invalid root hash"))?;
        Self::with_extensions(origin, size, root, lines.map(str::to_owned).collect())
    }
}

/// Parses an ASCII decimal u64 with no sign and no leading zeros (except `0` itself).
pub(crate) fn parse_decimal(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) || (s.len() > 1 && s.starts_with('0'))
    {
        return None;
    }
    s.parse().ok()
}

impl fmt::Display for Checkpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            self.root.to_base64()
        )?;
        for e in &self.extensions {
            writeln!(f, "{e}")?;
        }
        Ok(())
    }
}

/// A checkpoint and the signed note that carries it, verbatim.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedCheckpoint {
    checkpoint: Checkpoint,
    note: String,
}

impl SignedCheckpoint {
    /// Signs `checkpoint` with the log key, whose name must equal the origin.
    ///
    /// # Errors
    ///
    /// [`TlogError::OriginMismatch`] if the key name is not the origin; as [`sign_note`].
    pub fn sign(checkpoint: Checkpoint, key: &dyn NoteKey) -> Result<Self, TlogError> {
        if checkpoint.origin != key.name() {
            return Err(TlogError::OriginMismatch);
        }
        let note = sign_note(&checkpoint.to_text(), &[key])?;
        Ok(Self { checkpoint, note })
    }

    /// Verifies a signed checkpoint note with the log's key, whose name must equal the origin.
    /// Other signatures (witness cosignatures, say) are ignored.
    ///
    /// # Errors
    ///
    /// Any note error (see [`open_note`]), [`TlogError::MalformedCheckpoint`], or
    /// [`TlogError::OriginMismatch`] if the origin is not the key name.
    pub fn open(note: &[u8], verifier: &NoteVerifier) -> Result<Self, TlogError> {
        let opened = open_note(note, std::slice::from_ref(verifier))?;
        let checkpoint = Checkpoint::parse(opened.text())?;
        if checkpoint.origin != verifier.name() {
            return Err(TlogError::OriginMismatch);
        }
        let note = std::str::from_utf8(note)
            .map_err(|_| TlogError::MalformedNote("not UTF-8"))?
            .to_owned();
        Ok(Self { checkpoint, note })
    }

    /// The checkpoint.
    pub fn checkpoint(&self) -> &Checkpoint {
        &self.checkpoint
    }

    /// The signed note, verbatim.
    pub fn note(&self) -> &str {
        &self.note
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::hash::empty_root;
    use crate::note::NoteSigner;

    #[test]
    fn round_trip() {
        let c = Checkpoint::with_extensions("o.example/log", 12, empty_root(), vec!["x".into()])
            .unwrap();
        let text = c.to_text();
        assert_eq!(
            text,
            format!("o.example/log\n12\n{}\nx\n", empty_root().to_base64())
        );
        assert_eq!(Checkpoint::parse(&text).unwrap(), c);
    }

    #[test]
    fn rejects_malformed() {
        let r = empty_root().to_base64();
        let cases = [
            format!("o\n1\n{r}"),
            format!("o\n01\n{r}\n"),
            format!("o\n+1\n{r}\n"),
            format!("o\n-1\n{r}\n"),
            format!("o\n 1\n{r}\n"),
            format!("o\n18446744073709551616\n{r}\n"),
            format!("\n1\n{r}\n"),
            format!("o\n1\n{r}\n\n"),
            format!("o\n1\n{r}\next\n\n"),
            format!("o\n1\n{}\n", &r[..43]),
            "o\n1\n".to_owned(),
            format!("o\r\n1\n{r}\n"),
        ];
        for c in cases {
            assert!(Checkpoint::parse(&c).is_err(), "{c:?}");
        }
        assert!(Checkpoint::parse(&format!("o\n0\n{r}\n")).is_ok());
        assert!(Checkpoint::parse(&format!("o\n18446744073709551615\n{r}\n")).is_ok());
        assert!(Checkpoint::new("a\nb", 1, empty_root()).is_err());
    }

    #[test]
    fn origin_must_match_key() {
        let s = NoteSigner::from_seed("k.example", &[7; 32]).unwrap();
        let c = Checkpoint::new("other.example", 0, empty_root()).unwrap();
        assert!(matches!(
            SignedCheckpoint::sign(c.clone(), &s),
            Err(TlogError::OriginMismatch)
        ));
        // A note signed by the right key over a checkpoint with another origin.
        let note = s.sign_note(&c.to_text()).unwrap();
        assert!(matches!(
            SignedCheckpoint::open(note.as_bytes(), &s.verifier()),
            Err(TlogError::OriginMismatch)
        ));
        let c = Checkpoint::new("k.example", 0, empty_root()).unwrap();
        let sc = SignedCheckpoint::sign(c.clone(), &s).unwrap();
        let opened = SignedCheckpoint::open(sc.note().as_bytes(), &s.verifier()).unwrap();
        assert_eq!(opened, sc);
    }
}
