//! `/.well-known/security.txt` (RFC 9116): where and how to report a vulnerability in the
//! products this installation serves, generated from the configuration (`[security_txt]`).

use std::fmt::Write as _;

use time::OffsetDateTime;
use touchmark_core::clock::format_timestamp;

/// What the file says. The binary checks each value when it loads the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityTxt {
    /// `Contact:` lines, in order of preference (RFC 9116 §2.5.3): `mailto:`, `https:` or
    /// `tel:` URIs. At least one.
    pub contact: Vec<String>,
    /// When the file stops being valid (§2.5.5): a fixed instant, or a number of days after
    /// each answer.
    pub expires: Expires,
    /// `Policy:`: the vulnerability disclosure policy (§2.5.7).
    pub policy: Option<String>,
    /// `Preferred-Languages:` (§2.5.8), language tags.
    pub preferred_languages: Vec<String>,
    /// `Canonical:`: where this file lives (§2.5.2).
    pub canonical: Option<String>,
    /// `Encryption:`: where the key to encrypt reports to is (§2.5.4).
    pub encryption: Option<String>,
}

/// When the file expires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expires {
    /// At this instant.
    At(OffsetDateTime),
    /// This many days after the moment it is served.
    DaysAfterServing(u16),
}

impl SecurityTxt {
    /// The file as served at `now`, CRLF line endings as RFC 9116 §4 allows and LF-only
    /// readers accept.
    pub fn render(&self, now: OffsetDateTime) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# Report vulnerabilities in this installation's products here. Reports may also be\n\
             # sent to its intake: POST /v1/vulnerability-reports (JSON; see /openapi.json)."
        );
        for contact in &self.contact {
            let _ = writeln!(out, "Contact: {contact}");
        }
        let expires = match self.expires {
            Expires::At(at) => at,
            Expires::DaysAfterServing(days) => now + time::Duration::days(i64::from(days)),
        };
        // RFC 3339 with a `Z`, as §2.5.5 asks; whole seconds.
        let mut stamp = format_timestamp(expires);
        if let Some(dot) = stamp.find('.') {
            stamp.replace_range(dot.., "Z");
        }
        let _ = writeln!(out, "Expires: {stamp}");
        if let Some(encryption) = &self.encryption {
            let _ = writeln!(out, "Encryption: {encryption}");
        }
        if let Some(policy) = &self.policy {
            let _ = writeln!(out, "Policy: {policy}");
        }
        if !self.preferred_languages.is_empty() {
            let _ = writeln!(
                out,
                "Preferred-Languages: {}",
                self.preferred_languages.join(", ")
            );
        }
        if let Some(canonical) = &self.canonical {
            let _ = writeln!(out, "Canonical: {canonical}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn the_file_names_every_configured_field() {
        let txt = SecurityTxt {
            contact: vec![
                "mailto:security@example.com".into(),
                "https://example.com/r".into(),
            ],
            expires: Expires::DaysAfterServing(30),
            policy: Some("https://example.com/policy".into()),
            preferred_languages: vec!["en".into(), "de".into()],
            canonical: Some("https://example.com/.well-known/security.txt".into()),
            encryption: None,
        };
        let text = txt.render(datetime!(2026-11-01 10:00:00.500 UTC));
        assert!(
            text.contains("Contact: mailto:security@example.com\nContact: https://example.com/r\n")
        );
        assert!(text.contains("Expires: 2026-12-01T10:00:00Z\n"), "{text}");
        assert!(text.contains("Preferred-Languages: en, de\n"));
        assert!(text.contains("Canonical: https://example.com/.well-known/security.txt\n"));
        assert!(!text.contains("Encryption:"));
    }
}
