//! Unit serial numbers and the rules an order sets for them (design.md §4, check 3).

use std::fmt;

use serde::{Deserialize, Serialize};

/// Longest serial accepted. 802.1AR puts the serial into the subject and the SAN; 64 keeps
/// both well inside the X.520 upper bound for serialNumber (64 characters).
pub const MAX_SERIAL_LEN: usize = 64;

/// A unit's serial number, checked: 1 to 64 characters of `[A-Za-z0-9._-]`, starting with a
/// letter or digit.
///
/// Serials go into certificates, file names and log events, so nothing outside this set
/// (spaces, slashes, control or non-ASCII characters) gets through.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Serial(String);

/// Why a serial was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SerialError {
    /// The serial is empty.
    #[error("the serial is empty")]
    Empty,
    /// The serial is longer than [`MAX_SERIAL_LEN`].
    #[error("the serial is {0} bytes long; at most 64 are allowed")]
    TooLong(usize),
    /// The serial has a character outside `[A-Za-z0-9._-]`, or starts with a punctuation mark.
    #[error(
        "the serial `{0}` has a character outside [A-Za-z0-9._-] or does not start with a letter or digit"
    )]
    BadCharacter(String),
    /// The serial is well formed but outside the order's range.
    #[error("the serial `{serial}` is outside the order's range {rule}")]
    OutOfRange {
        /// The serial.
        serial: String,
        /// The rule, as text.
        rule: String,
    },
}

impl Serial {
    /// Parses a serial.
    ///
    /// # Errors
    /// [`SerialError`] saying which rule the text breaks.
    pub fn parse(raw: &str) -> Result<Self, SerialError> {
        if raw.is_empty() {
            return Err(SerialError::Empty);
        }
        if raw.len() > MAX_SERIAL_LEN {
            return Err(SerialError::TooLong(raw.len()));
        }
        let mut bytes = raw.bytes();
        let first_ok = bytes.next().is_some_and(|b| b.is_ascii_alphanumeric());
        if !first_ok || !bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        {
            return Err(SerialError::BadCharacter(crate::clock::truncate(raw, 64)));
        }
        Ok(Self(raw.to_owned()))
    }

    /// The serial as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Serial {
    type Error = SerialError;
    fn try_from(raw: String) -> Result<Self, SerialError> {
        Self::parse(&raw)
    }
}

impl From<Serial> for String {
    fn from(serial: Serial) -> String {
        serial.0
    }
}

impl fmt::Display for Serial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Which serials an order admits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum SerialRule {
    /// Any well-formed serial.
    Any,
    /// A prefix followed by a fixed-width decimal number in `first..=last`, such as
    /// `SN-000001..SN-000500`.
    Range {
        /// The text before the number.
        prefix: String,
        /// The first number admitted.
        first: u64,
        /// The last number admitted.
        last: u64,
        /// The number of digits, zero-padded.
        width: usize,
    },
    /// A regular expression that the whole serial must match.
    Pattern(String),
}

/// Why a serial rule given by an admin is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid serial rule: {0}")]
pub struct SerialRuleError(String);

impl SerialRule {
    /// Parses a range written `SN-000001..SN-000500`: the same prefix on both ends, and numbers
    /// of the same width.
    ///
    /// # Errors
    /// [`SerialRuleError`] naming what does not fit that shape.
    pub fn parse_range(text: &str) -> Result<Self, SerialRuleError> {
        let err =
            |m: &str| SerialRuleError(format!("range `{}`: {m}", crate::clock::truncate(text, 80)));
        let (low, high) = text
            .split_once("..")
            .ok_or_else(|| err("expected FIRST..LAST, such as SN-000001..SN-000500"))?;
        let split = |s: &str| {
            let digits = s.bytes().rev().take_while(u8::is_ascii_digit).count();
            let (prefix, number) = s.split_at(s.len() - digits);
            (prefix.to_owned(), number.to_owned())
        };
        let (prefix, first) = split(low);
        let (prefix_high, last) = split(high);
        if prefix != prefix_high {
            return Err(err("both ends must share the same prefix"));
        }
        if first.is_empty() || first.len() != last.len() {
            return Err(err("both ends must end in numbers of the same width"));
        }
        if first.len() > 19 {
            return Err(err("the number has more than 19 digits"));
        }
        Serial::parse(low).map_err(|e| err(&e.to_string()))?;
        Serial::parse(high).map_err(|e| err(&e.to_string()))?;
        let parse = |n: &str| {
            n.parse::<u64>()
                .map_err(|_| err("the number does not fit in 64 bits"))
        };
        let (first_n, last_n) = (parse(&first)?, parse(&last)?);
        if first_n > last_n {
            return Err(err("the first serial is after the last"));
        }
        Ok(Self::Range {
            prefix,
            first: first_n,
            last: last_n,
            width: first.len(),
        })
    }

    /// Parses a pattern: a regular expression the whole serial must match. The pattern is
    /// anchored for you, and its size is bounded so an admin cannot make matching slow.
    ///
    /// # Errors
    /// [`SerialRuleError`] when the expression does not compile within the bounds.
    pub fn parse_pattern(pattern: &str) -> Result<Self, SerialRuleError> {
        compile(pattern)?;
        Ok(Self::Pattern(pattern.to_owned()))
    }

    /// Checks that the rule is valid: the range is ordered and the pattern compiles.
    ///
    /// # Errors
    /// [`SerialRuleError`] naming the fault.
    pub fn validate(&self) -> Result<(), SerialRuleError> {
        match self {
            Self::Any => Ok(()),
            Self::Range {
                first, last, width, ..
            } if first <= last && (1..=19).contains(width) => Ok(()),
            Self::Range { .. } => Err(SerialRuleError(
                "range is empty or its width is not 1 to 19".into(),
            )),
            Self::Pattern(p) => compile(p).map(|_| ()),
        }
    }

    /// Checks one serial against the rule.
    ///
    /// # Errors
    /// [`SerialError::OutOfRange`] when the serial is not admitted.
    pub fn check(&self, serial: &Serial) -> Result<(), SerialError> {
        let admitted = match self {
            Self::Any => true,
            Self::Range {
                prefix,
                first,
                last,
                width,
            } => serial
                .as_str()
                .strip_prefix(prefix.as_str())
                .filter(|n| n.len() == *width && n.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|n| n.parse::<u64>().ok())
                .is_some_and(|n| (*first..=*last).contains(&n)),
            // An invalid stored pattern admits nothing: strict by default.
            Self::Pattern(p) => compile(p).is_ok_and(|re| re.is_match(serial.as_str())),
        };
        if admitted {
            Ok(())
        } else {
            Err(SerialError::OutOfRange {
                serial: serial.as_str().to_owned(),
                rule: self.to_string(),
            })
        }
    }
}

impl fmt::Display for SerialRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Any => f.write_str("any"),
            Self::Range {
                prefix,
                first,
                last,
                width,
            } => {
                write!(f, "{prefix}{first:0width$}..{prefix}{last:0width$}")
            }
            Self::Pattern(p) => write!(f, "/{p}/"),
        }
    }
}

/// Compiles `pattern` once per process: a pattern order checks every unit's serial against it.
fn compile(pattern: &str) -> Result<regex::Regex, SerialRuleError> {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    static COMPILED: OnceLock<Mutex<HashMap<String, regex::Regex>>> = OnceLock::new();
    let cache = COMPILED.get_or_init(Default::default);
    if let Some(re) = cache.lock().unwrap_or_else(|p| p.into_inner()).get(pattern) {
        return Ok(re.clone());
    }
    let re = compile_uncached(pattern)?;
    let mut cache = cache.lock().unwrap_or_else(|p| p.into_inner());
    // Patterns come from orders, few per installation; the bound only guards against misuse.
    if cache.len() >= 1024 {
        cache.clear();
    }
    cache.insert(pattern.to_owned(), re.clone());
    Ok(re)
}

fn compile_uncached(pattern: &str) -> Result<regex::Regex, SerialRuleError> {
    if pattern.len() > 256 {
        return Err(SerialRuleError(
            "the pattern is longer than 256 characters".into(),
        ));
    }
    regex::RegexBuilder::new(&format!("^(?:{pattern})$"))
        .size_limit(1 << 16)
        .build()
        .map_err(|e| SerialRuleError(format!("pattern does not compile: {e}")))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn serials_are_checked_at_the_edge() {
        assert!(Serial::parse("SN-000001").is_ok());
        assert!(Serial::parse(&"9".repeat(64)).is_ok());
        let cases = [
            ("", "empty"),
            ("SN 1", "space"),
            ("SN-ü", "unicode"),
            ("SN\u{0}", "nul"),
            ("SN\n1", "newline"),
            ("1'; DROP TABLE units;--", "sql"),
            ("../../etc/passwd", "path"),
            ("-SN", "leading dash"),
        ];
        for (raw, why) in cases {
            assert!(Serial::parse(raw).is_err(), "{why}");
        }
        assert_eq!(
            Serial::parse(&"a".repeat(10_000)),
            Err(SerialError::TooLong(10_000))
        );
    }

    #[test]
    fn ranges_admit_exactly_their_members() {
        let rule = SerialRule::parse_range("SN-000001..SN-000500").unwrap();
        assert_eq!(rule.to_string(), "SN-000001..SN-000500");
        let ok = |s: &str| rule.check(&Serial::parse(s).unwrap()).is_ok();
        assert!(ok("SN-000001") && ok("SN-000500") && ok("SN-000250"));
        assert!(!ok("SN-000000") && !ok("SN-000501") && !ok("SN-00001") && !ok("XN-000001"));
        assert!(!ok("SN-0000010"));
    }

    #[test]
    fn bad_ranges_are_refused() {
        for bad in [
            "SN-1",
            "A-001..B-002",
            "SN-01..SN-002",
            "SN-9..SN-1",
            "SN-..SN-",
        ] {
            assert!(SerialRule::parse_range(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn patterns_are_anchored() {
        let rule = SerialRule::parse_pattern("AB[0-9]{3}").unwrap();
        assert!(rule.check(&Serial::parse("AB123").unwrap()).is_ok());
        assert!(rule.check(&Serial::parse("XAB123").unwrap()).is_err());
        assert!(rule.check(&Serial::parse("AB1234").unwrap()).is_err());
        assert!(SerialRule::parse_pattern("(").is_err());
    }
}
