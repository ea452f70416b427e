//! Percent-encoding of ids and serials put into request paths and queries.
//!
//! The server's ids are `[A-Za-z0-9._-]`, but the client may be handed anything. Every byte
//! outside RFC 3986's unreserved set is percent-encoded (RFC 3986 §2.1), so a `/`, `?`, `#`
//! or `%` cannot change which route is called. `.` and `..` are refused outright: URL parsers
//! treat them, and their encoded forms `%2E`, as dot-segments and remove them (RFC 3986
//! §5.2.4), which would let an id climb out of its route.

use std::fmt::Write as _;

use crate::error::ClientError;

/// Encodes `value` as one path segment or query value.
///
/// # Errors
///
/// [`ClientError::InvalidArgument`] when `value` is empty, `.` or `..`.
pub(crate) fn segment(what: &str, value: &str) -> Result<String, ClientError> {
    if value.is_empty() {
        return Err(ClientError::InvalidArgument(format!("{what} is empty")));
    }
    if value == "." || value == ".." {
        return Err(ClientError::InvalidArgument(format!(
            "{what} may not be {value:?}"
        )));
    }
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            // Writing to a String cannot fail.
            let _ = write!(out, "%{byte:02X}");
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn plain_ids_pass_unchanged() {
        for id in ["o1", "SN-000001", "prod_a.v2", "A~b"] {
            assert_eq!(segment("id", id).ok().as_deref(), Some(id));
        }
    }

    #[test]
    fn hostile_ids_are_encoded() {
        let cases = [
            ("../admin", "..%2Fadmin"),
            ("a/b", "a%2Fb"),
            ("a\\b", "a%5Cb"),
            ("a?x=1", "a%3Fx%3D1"),
            ("a#frag", "a%23frag"),
            ("%2e%2e", "%252e%252e"),
            ("a b", "a%20b"),
            ("a\r\nHost: x", "a%0D%0AHost%3A%20x"),
            ("é", "%C3%A9"),
            ("...", "..."),
        ];
        for (input, want) in cases {
            assert_eq!(
                segment("id", input).ok().as_deref(),
                Some(want),
                "{input:?}"
            );
        }
    }

    #[test]
    fn dot_segments_and_empty_are_refused() {
        for input in ["", ".", ".."] {
            let err = segment("order id", input).err();
            assert!(
                matches!(err, Some(ClientError::InvalidArgument(_))),
                "{input:?}: {err:?}"
            );
        }
    }

    #[test]
    fn encoded_paths_stay_inside_their_route() {
        for input in [
            "../../healthz",
            "x/../../y",
            "..%2F..",
            "a/./b",
            "?",
            "#",
            "%2e%2e",
        ] {
            let seg = segment("id", input).expect("refused");
            let url = reqwest::Url::parse(&format!("https://h/v1/orders/{seg}/units")).unwrap();
            let parts: Vec<&str> = url.path().split('/').collect();
            assert_eq!(parts.len(), 5, "{input:?} -> {}", url.path());
            assert_eq!(parts[1..3], ["v1", "orders"]);
            assert_eq!(parts[4], "units");
            assert_eq!(url.query(), None);
            assert_eq!(url.fragment(), None);
        }
    }
}
