//! Identifiers of products, factories, stations, orders and API tokens.
//!
//! Admins choose readable identifiers (`PO-2026-0042`, `line-3`) or let Touchmark generate them.
//! They appear in URLs, file names, certificate subjects and log events, so the grammar is narrow:
//! `[A-Za-z0-9][A-Za-z0-9._-]{0,63}`.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why a string is not a valid identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} `{shown}` is invalid: {reason}")]
pub struct IdError {
    kind: &'static str,
    shown: String,
    reason: &'static str,
}

const MAX_ID_LEN: usize = 64;

/// The rule of every identifier and of a serial, as a JSON Schema (ECMA-262) pattern for the
/// API document: 1 to 64 characters of `[A-Za-z0-9._-]`, starting with a letter or digit.
pub const ID_PATTERN: &str = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$";

fn check_id(kind: &'static str, raw: &str) -> Result<(), IdError> {
    let fail = |reason| IdError {
        kind,
        shown: crate::clock::truncate(raw, 40),
        reason,
    };
    if raw.is_empty() {
        return Err(fail("it is empty"));
    }
    if raw.len() > MAX_ID_LEN {
        return Err(fail("it is longer than 64 characters"));
    }
    let mut bytes = raw.bytes();
    if !bytes.next().is_some_and(|b| b.is_ascii_alphanumeric()) {
        return Err(fail("it must start with a letter or digit"));
    }
    if !bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')) {
        return Err(fail("only letters, digits, '.', '_' and '-' are allowed"));
    }
    Ok(())
}

macro_rules! identifier {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Parses an identifier.
            ///
            /// # Errors
            /// [`IdError`] when `raw` is empty, too long or has a character outside the grammar.
            pub fn parse(raw: &str) -> Result<Self, IdError> {
                check_id($kind, raw)?;
                Ok(Self(raw.to_owned()))
            }

            /// The identifier as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(raw: String) -> Result<Self, IdError> {
                check_id($kind, &raw)?;
                Ok(Self(raw))
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::str::FromStr for $name {
            type Err = IdError;
            fn from_str(raw: &str) -> Result<Self, IdError> {
                Self::parse(raw)
            }
        }
    };
}

identifier!(
    /// A product (a SKU with its certificate profile and issuing CA).
    ProductId,
    "product id"
);
identifier!(
    /// A factory, that is, a contract manufacturer's site.
    FactoryId,
    "factory id"
);
identifier!(
    /// A station: one test fixture on a factory's line.
    StationId,
    "station id"
);
identifier!(
    /// A production order.
    OrderId,
    "order id"
);
identifier!(
    /// An API token's public identifier (never the secret).
    TokenId,
    "token id"
);

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn identifiers_follow_the_grammar() {
        let pattern = regex::Regex::new(ID_PATTERN).unwrap();
        for good in ["a", "PO-2026-0042", "line_3.b", &"x".repeat(64)] {
            assert!(OrderId::parse(good).is_ok(), "{good}");
            assert!(pattern.is_match(good), "{good}");
            assert!(crate::Serial::parse(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "-a",
            ".a",
            "a/b",
            "a b",
            "ü",
            "a\n",
            &"x".repeat(65),
            "../x",
        ] {
            assert!(OrderId::parse(bad).is_err(), "{bad:?}");
            assert!(!pattern.is_match(bad), "{bad:?}");
            assert!(crate::Serial::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn serde_checks_the_grammar() {
        let id: StationId = serde_json::from_str("\"line-1\"").unwrap();
        assert_eq!(id.as_str(), "line-1");
        assert!(serde_json::from_str::<StationId>("\"a/b\"").is_err());
    }
}
