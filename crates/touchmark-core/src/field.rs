//! Checked field types for what admins type: names, certificate subject text, URLs, OIDs,
//! timestamps and the database URL. Each carries its one limit rule, so the CA that later puts the value into a
//! certificate never meets a value it must refuse.

use std::fmt;

use time::OffsetDateTime;

use crate::clock::{parse_timestamp, truncate};

/// Why a field of a request is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct FieldError {
    /// The field, as the request names it (`name`, `crl_url`).
    pub field: &'static str,
    /// What is wrong with it.
    pub reason: String,
    /// Whether the API document already forbids the value, or only a rule it cannot state.
    pub kind: FieldErrorKind,
}

/// Which side of the API document a field error falls on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldErrorKind {
    /// The document forbids the value: its type, length, pattern or range (`invalid_request`).
    Malformed,
    /// The document allows it, but a rule it cannot state refuses it: a range's two ends, a
    /// window's order, a test record's content (`unprocessable`).
    Unprocessable,
}

impl FieldError {
    /// `field` is wrong for `reason`, as the API document says.
    pub fn new(field: &'static str, reason: impl Into<String>) -> Self {
        Self {
            field,
            reason: reason.into(),
            kind: FieldErrorKind::Malformed,
        }
    }

    /// `field` breaks a rule that the API document cannot state, for `reason`.
    pub fn rule(field: &'static str, reason: impl Into<String>) -> Self {
        Self {
            kind: FieldErrorKind::Unprocessable,
            ..Self::new(field, reason)
        }
    }

    /// The stable code it is answered with.
    pub fn code(&self) -> crate::code::ErrorCode {
        match self.kind {
            FieldErrorKind::Malformed => crate::code::ErrorCode::InvalidRequest,
            FieldErrorKind::Unprocessable => crate::code::ErrorCode::Unprocessable,
        }
    }
}

/// X.520's upper bound on a common name and on an organization name (RFC 5280, Appendix A):
/// 64 characters.
pub const X520_NAME_MAX: usize = 64;

/// What a product's issuing CA adds to the product's name to make its common name.
pub const ISSUING_CA_SUFFIX: &str = " Issuing CA";

/// The rule of [`check_text`] as a JSON Schema (ECMA-262) pattern for the API document: no
/// control character (Unicode category Cc), and at least one character that is not white space
/// (Unicode `White_Space`, as `str::trim` removes it). The length bound goes beside it as
/// `maxLength`, which counts characters as [`check_text`] does.
pub const TEXT_PATTERN: &str = "^[^\\x00-\\x1f\\x7f-\\x9f]*[^\\x00-\\x20\\x7f-\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000][^\\x00-\\x1f\\x7f-\\x9f]*$";

fn check_text(field: &'static str, value: &str, max: usize) -> Result<(), FieldError> {
    if value.trim().is_empty() {
        return Err(FieldError::new(field, "must not be empty"));
    }
    if value.chars().count() > max {
        return Err(FieldError::new(
            field,
            format!("is longer than {max} characters"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(FieldError::new(
            field,
            "must not contain control characters",
        ));
    }
    Ok(())
}

macro_rules! text_field {
    ($(#[$doc:meta])* $name:ident, max = $max:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $name(String);

        impl $name {
            /// The most characters it may have.
            pub const MAX: usize = $max;

            /// Checks `value` as the request's field `field`.
            ///
            /// # Errors
            /// [`FieldError`] when it is blank, too long, or holds a control character.
            pub fn parse(field: &'static str, value: &str) -> Result<Self, FieldError> {
                check_text(field, value, Self::MAX)?;
                Ok(Self(value.to_owned()))
            }

            /// The text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }
    };
}

text_field!(
    /// A human name for a factory or a station, or a token's label: at most 128 characters.
    Label,
    max = 128
);

text_field!(
    /// A product's name. It also names the product's issuing CA (`<name> Issuing CA`), so it
    /// is short enough for that common name to stay within [`X520_NAME_MAX`].
    ProductName,
    max = X520_NAME_MAX - ISSUING_CA_SUFFIX.len()
);

text_field!(
    /// Text that goes into a certificate's subject as an organization (O) or common name
    /// (CN): at most [`X520_NAME_MAX`] characters.
    SubjectText,
    max = X520_NAME_MAX
);

impl ProductName {
    /// The common name of the product's issuing CA.
    pub fn issuing_ca_name(&self) -> SubjectText {
        // Within the bound by construction: `ProductName::MAX` leaves room for the suffix.
        SubjectText(format!("{}{ISSUING_CA_SUFFIX}", self.0))
    }
}

/// An `http://` or `https://` URL that goes into a certificate (CRL distribution point, OCSP):
/// at most 256 printable ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpUrl(String);

impl HttpUrl {
    /// The most characters it may have.
    pub const MAX: usize = 256;
    /// Its rule as a JSON Schema pattern, beside `maxLength` [`HttpUrl::MAX`].
    pub const PATTERN: &str = "^https?://[!-~]*$";

    /// Checks `value` as the request's field `field`.
    ///
    /// # Errors
    /// [`FieldError`] unless it is an http(s) URL of printable ASCII within the limit.
    pub fn parse(field: &'static str, value: &str) -> Result<Self, FieldError> {
        let ok = (value.starts_with("http://") || value.starts_with("https://"))
            && value.len() <= Self::MAX
            && value.bytes().all(|b| b.is_ascii_graphic());
        if !ok {
            return Err(FieldError::new(
                field,
                format!(
                    "must be an http(s) URL of at most {} printable ASCII characters",
                    Self::MAX
                ),
            ));
        }
        Ok(Self(value.to_owned()))
    }

    /// The URL.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<HttpUrl> for String {
    fn from(value: HttpUrl) -> String {
        value.0
    }
}

/// A dotted object identifier, such as `1.3.6.1.4.1.99999.1` (X.660): at least two arcs, at
/// most 32, each of at most 19 digits, the first 0 to 2, the second below 40 under 0 and 1, no
/// leading zeros.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Oid {
    text: String,
    arcs: Vec<u64>,
}

impl Oid {
    /// Its rule as a JSON Schema pattern: two to 32 arcs of at most 19 digits (so each fits 64
    /// bits) without leading zeros, the first 0 to 2, the second below 40 under 0 and 1.
    pub const PATTERN: &str =
        "^(([01]\\.([0-9]|[1-3][0-9]))|(2\\.(0|[1-9][0-9]{0,18})))(\\.(0|[1-9][0-9]{0,18})){0,30}$";

    /// Parses `text` as the request's field `field`.
    ///
    /// # Errors
    /// [`FieldError`] when it is not a dotted OID.
    pub fn parse(field: &'static str, text: &str) -> Result<Self, FieldError> {
        let bad = || {
            FieldError::new(
                field,
                format!(
                    "`{}` is not a dotted OID such as 1.3.6.1.4.1.99999.1",
                    truncate(text, 64)
                ),
            )
        };
        let arcs = text
            .split('.')
            .map(|a| {
                if a.is_empty() || a.len() > 19 || (a.len() > 1 && a.starts_with('0')) {
                    Err(bad())
                } else {
                    a.parse::<u64>().map_err(|_| bad())
                }
            })
            .collect::<Result<Vec<u64>, _>>()?;
        if arcs.len() < 2 || arcs.len() > 32 || arcs[0] > 2 || (arcs[0] < 2 && arcs[1] > 39) {
            return Err(bad());
        }
        Ok(Self {
            text: text.to_owned(),
            arcs,
        })
    }

    /// An OID under `2.25` (ITU-T X.667, a UUID arc) from 64 random bits: it needs no
    /// registration.
    pub fn under_uuid_arc(random: u64) -> Self {
        let arc = random >> 1;
        Self {
            text: format!("2.25.{arc}"),
            arcs: vec![2, 25, arc],
        }
    }

    /// The dotted text.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The arcs.
    pub fn arcs(&self) -> &[u64] {
        &self.arcs
    }
}

/// Parses an optional RFC 3339 timestamp field.
///
/// # Errors
/// [`FieldError`] when it does not parse.
pub fn timestamp(
    field: &'static str,
    value: Option<&str>,
) -> Result<Option<OffsetDateTime>, FieldError> {
    value
        .map(|v| parse_timestamp(v).map_err(|e| FieldError::new(field, e)))
        .transpose()
}

/// A PostgreSQL URL (`postgres://` or `postgresql://`). Its password never appears in `Debug`
/// or `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    /// Parses field `field` as a `postgres://` or `postgresql://` URL.
    ///
    /// # Errors
    /// [`FieldError`] for any other scheme, or a URL without a host part.
    pub fn parse(field: &'static str, text: &str) -> Result<Self, FieldError> {
        let text = text.trim();
        let Some((scheme, rest)) = text.split_once("://") else {
            return Err(FieldError::new(
                field,
                format!(
                    "`{}` is not a database URL: use postgres://USER@HOST:PORT/DATABASE, or \
                     leave it out for SQLite in the data directory",
                    redact(text)
                ),
            ));
        };
        if !matches!(scheme, "postgres" | "postgresql") {
            return Err(FieldError::new(
                field,
                format!(
                    "scheme `{scheme}` is not supported: use postgres://…, or leave it out for \
                     SQLite in the data directory"
                ),
            ));
        }
        if rest.is_empty() || rest.starts_with('/') && !rest.contains("host=") {
            return Err(FieldError::new(
                field,
                format!("the database URL {} names no server", redact(text)),
            ));
        }
        Ok(Self(text.to_owned()))
    }

    /// The URL itself, password included: for the driver only.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the URL carries a password.
    pub fn has_password(&self) -> bool {
        redact(&self.0) != self.0
    }
}

impl std::str::FromStr for DatabaseUrl {
    type Err = FieldError;

    /// Parses a `database` field: see [`DatabaseUrl::parse`].
    fn from_str(text: &str) -> Result<Self, FieldError> {
        Self::parse("database", text)
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({})", redact(&self.0))
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact(&self.0))
    }
}

/// The URL with any password (`user:secret@`, `password=secret`) replaced by `***`.
fn redact(url: &str) -> String {
    let mut out = url.to_owned();
    if let Some((scheme, rest)) = url.split_once("://") {
        let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
        let authority = &rest[..authority_end];
        if let Some(at) = authority.rfind('@')
            && let Some(colon) = authority[..at].find(':')
        {
            out = format!("{scheme}://{}:***{}", &authority[..colon], &rest[at..]);
        }
    }
    if let Some(start) = out.find("password=") {
        let value = start + "password=".len();
        let end = out[value..].find('&').map_or(out.len(), |e| value + e);
        out.replace_range(value..end, "***");
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_product_name_always_makes_a_valid_issuing_ca_name() {
        let longest = "n".repeat(ProductName::MAX);
        let name = ProductName::parse("name", &longest).unwrap();
        assert_eq!(
            name.issuing_ca_name().as_str().chars().count(),
            X520_NAME_MAX
        );
        assert!(SubjectText::parse("cn", name.issuing_ca_name().as_str()).is_ok());
        let err = ProductName::parse("name", &"n".repeat(ProductName::MAX + 1)).unwrap_err();
        assert_eq!(err.to_string(), "name: is longer than 53 characters");
    }

    #[test]
    fn text_fields_refuse_blank_long_and_control_text() {
        for (value, says) in [
            ("", "must not be empty"),
            ("   ", "must not be empty"),
            ("a\u{7}b", "control characters"),
            (&"x".repeat(129), "longer than 128"),
        ] {
            let err = Label::parse("name", value).unwrap_err();
            assert!(err.to_string().contains(says), "{value:?}: {err}");
            assert_eq!(err.field, "name");
        }
        assert_eq!(
            Label::parse("name", "Line 1 — Shenzhen").unwrap().as_str(),
            "Line 1 — Shenzhen"
        );
    }

    #[test]
    fn urls_are_http_and_printable() {
        assert!(HttpUrl::parse("crl_url", "http://crl.example/x.crl").is_ok());
        assert!(HttpUrl::parse("crl_url", "https://crl.example/x.crl").is_ok());
        for bad in [
            "ftp://x",
            "http://a b",
            "javascript:alert(1)",
            &format!("http://{}", "a".repeat(250)),
        ] {
            assert!(HttpUrl::parse("crl_url", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn oids_follow_x660() {
        assert_eq!(
            Oid::parse("oid", "1.3.6.1.4.1.99999.1").unwrap().arcs(),
            [1, 3, 6, 1, 4, 1, 99999, 1]
        );
        assert_eq!(Oid::parse("oid", "2.999.3").unwrap().as_str(), "2.999.3");
        for bad in [
            "",
            "1",
            "3.1",
            "1.40",
            "1.03",
            "1..2",
            "1.2.x",
            "1.2.99999999999999999999",
        ] {
            assert!(Oid::parse("oid", bad).is_err(), "{bad}");
        }
        let random = Oid::under_uuid_arc(u64::MAX);
        assert_eq!(Oid::parse("oid", random.as_str()).unwrap(), random);
    }

    #[test]
    fn database_url_passwords_never_show() {
        let url = DatabaseUrl::parse(
            "database",
            "postgres://app:s3cret@db.example:5432/touchmark",
        )
        .unwrap();
        assert_eq!(
            url.to_string(),
            "postgres://app:***@db.example:5432/touchmark"
        );
        assert!(!format!("{url:?}").contains("s3cret"));
        assert!(url.has_password());
        let url = DatabaseUrl::parse(
            "database",
            "postgres://db/x?user=a&password=p4ss&sslmode=require",
        )
        .unwrap();
        assert_eq!(
            url.to_string(),
            "postgres://db/x?user=a&password=***&sslmode=require"
        );
        let plain =
            DatabaseUrl::parse("database", "postgres://postgres@127.0.0.1:5432/test").unwrap();
        assert_eq!(plain.to_string(), "postgres://postgres@127.0.0.1:5432/test");
        assert!(!plain.has_password());
    }

    #[test]
    fn other_database_schemes_are_refused_clearly() {
        for (bad, says) in [
            ("mysql://root@db/x", "scheme `mysql` is not supported"),
            ("touchmark.db", "is not a database URL"),
            ("postgres://", "names no server"),
        ] {
            let err = DatabaseUrl::parse("database", bad).unwrap_err().to_string();
            assert!(err.contains(says), "{bad}: {err}");
        }
    }

    /// The API document states each rule as a pattern (for clients and for schemathesis, which
    /// checks the server against the document); the pattern and the parser agree on every
    /// sample, each side of each rule.
    #[test]
    fn the_documents_patterns_agree_with_the_parsers() {
        let matches =
            |pattern: &str, value: &str| regex::Regex::new(pattern).unwrap().is_match(value);
        let texts = [
            "a",
            " a ",
            "Line 1 — Shenzhen",
            "\u{a0}x",
            "",
            " ",
            "\u{a0}",
            "\u{3000}\u{2028}",
            "\u{feff}",
            "a\u{7}b",
            "a\u{85}",
            "\u{9f}",
            "tab\there",
            "x\n",
        ];
        for text in texts {
            assert_eq!(
                matches(TEXT_PATTERN, text),
                Label::parse("name", text).is_ok(),
                "{text:?}"
            );
        }
        let urls = [
            "http://",
            "https://crl.example/x.crl",
            "http://a b",
            "ftp://x",
            "HTTP://x",
            "https://\u{e9}",
            "http://x\n",
        ];
        for url in urls {
            assert_eq!(
                matches(HttpUrl::PATTERN, url),
                HttpUrl::parse("url", url).is_ok(),
                "{url:?}"
            );
        }
        let oids = [
            "1.3.6.1.4.1.99999.1",
            "2.999.3",
            "0.39",
            "0.40",
            "1.03",
            "2.0",
            "3.1",
            "1",
            "1..2",
            "1.2.9999999999999999999",
            "1.2.10000000000000000000",
            "1.2.x",
            "1.2 ",
        ];
        for oid in oids {
            assert_eq!(
                matches(Oid::PATTERN, oid),
                Oid::parse("oid", oid).is_ok(),
                "{oid:?}"
            );
        }
        let thirty_two = vec!["1"; 32].join(".");
        let thirty_three = vec!["1"; 33].join(".");
        for oid in [thirty_two, thirty_three] {
            assert_eq!(
                matches(Oid::PATTERN, &oid),
                Oid::parse("oid", &oid).is_ok(),
                "{oid}"
            );
        }
    }
}
