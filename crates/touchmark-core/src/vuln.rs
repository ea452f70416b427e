//! Vulnerability reports (issue 18, design.md §13): what a researcher sends to the public
//! intake, the report's state, its CRA classification and clocks, and its links to products,
//! releases and SBOM components.
//!
//! The checked fields of a report live here: a CVSS vector (v3.1 or v4.0, checked metric by
//! metric), a package URL and a version range (`vers`), and the text fields. The rules that
//! move a report (its states, its clocks) are in `policy::vuln`.

use std::fmt;

use time::OffsetDateTime;

use crate::event::Sha256Hash;
use crate::field::FieldError;
use crate::id::ProductId;

mod affected;
pub use affected::{
    Affected, AffectedCounts, AffectedCursor, AffectedLot, AffectedStream, CURSOR_PATTERN,
    LotCount, MergeStep, PageMerge, StreamUnit,
};

/// A report's state: received → triaged → confirmed | rejected; confirmed → fixed →
/// disclosed (`policy::vuln::transition`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ReportState {
    /// Received through the intake; nobody has looked at it.
    Received,
    /// Someone is looking at it.
    Triaged,
    /// It is a vulnerability of the product.
    Confirmed,
    /// It is not (or not ours, or not reproducible). Final.
    Rejected,
    /// A corrective measure is available.
    Fixed,
    /// It was disclosed. Final.
    Disclosed,
}

impl ReportState {
    /// Every state, in the order of a report's life.
    pub const ALL: [ReportState; 6] = [
        Self::Received,
        Self::Triaged,
        Self::Confirmed,
        Self::Rejected,
        Self::Fixed,
        Self::Disclosed,
    ];

    /// The name as stored, logged and sent.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Received => "received",
            Self::Triaged => "triaged",
            Self::Confirmed => "confirmed",
            Self::Rejected => "rejected",
            Self::Fixed => "fixed",
            Self::Disclosed => "disclosed",
        }
    }

    /// Parses a name.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

impl fmt::Display for ReportState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a report is under the Cyber Resilience Act's Article 14, once an admin says so: each
/// class runs the CRA's clocks (`policy::vuln::deadlines`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CraClass {
    /// An actively exploited vulnerability (Art. 14(1)-(2)).
    ExploitedVulnerability,
    /// A severe incident having an impact on the product's security (Art. 14(3)-(4)).
    SevereIncident,
}

impl CraClass {
    /// Both classes.
    pub const ALL: [CraClass; 2] = [Self::ExploitedVulnerability, Self::SevereIncident];

    /// The name as stored, logged and sent.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ExploitedVulnerability => "exploited_vulnerability",
            Self::SevereIncident => "severe_incident",
        }
    }

    /// Parses a name.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == text)
    }
}

impl fmt::Display for CraClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One of the three CRA notifications a classified report owes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Deadline {
    /// The early warning: 24 hours after awareness.
    EarlyWarning,
    /// The vulnerability or incident notification: 72 hours after awareness.
    Notification,
    /// The final report: 14 days after the corrective measure (a vulnerability), or one month
    /// after the notification (an incident).
    FinalReport,
}

impl Deadline {
    /// The three, in the order they fall due.
    pub const ALL: [Deadline; 3] = [Self::EarlyWarning, Self::Notification, Self::FinalReport];

    /// The name as stored, logged and sent.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::EarlyWarning => "early_warning",
            Self::Notification => "notification",
            Self::FinalReport => "final_report",
        }
    }

    /// Parses a name.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|d| d.as_str() == text)
    }
}

impl fmt::Display for Deadline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The three notifications' times, one each: when each was submitted, or when its alert was
/// raised.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PerDeadline {
    /// The early warning's.
    pub early_warning: Option<OffsetDateTime>,
    /// The notification's.
    pub notification: Option<OffsetDateTime>,
    /// The final report's.
    pub final_report: Option<OffsetDateTime>,
}

impl PerDeadline {
    /// The time of `deadline`.
    pub fn of(&self, deadline: Deadline) -> Option<OffsetDateTime> {
        match deadline {
            Deadline::EarlyWarning => self.early_warning,
            Deadline::Notification => self.notification,
            Deadline::FinalReport => self.final_report,
        }
    }

    /// The same, with `deadline`'s time set to `at`.
    #[must_use]
    pub fn with(mut self, deadline: Deadline, at: OffsetDateTime) -> Self {
        let slot = match deadline {
            Deadline::EarlyWarning => &mut self.early_warning,
            Deadline::Notification => &mut self.notification,
            Deadline::FinalReport => &mut self.final_report,
        };
        *slot = Some(at);
        self
    }
}

/// A report as stored. The reporter's text is kept exactly as sent; it is data, never markup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Its tracking id, `vr-<16 hex>`.
    pub id: String,
    /// SHA-256 of the secret the reporter reads its status with; the secret is never stored.
    pub secret_sha256: Sha256Hash,
    /// Its state.
    pub state: ReportState,
    /// What the reporter sent.
    pub content: ReportContent,
    /// SHA-256 of [`ReportContent::canonical_bytes`]: what `vuln.received` logs instead of the
    /// text.
    pub content_sha256: Sha256Hash,
    /// Its CRA class, once an admin gave it one.
    pub class: Option<CraClass>,
    /// When the manufacturer became aware of it, for the CRA's clocks.
    pub aware_at: Option<OffsetDateTime>,
    /// When a corrective or mitigating measure became available: the time the report became
    /// `fixed`, unless an admin recorded another.
    pub corrective_at: Option<OffsetDateTime>,
    /// When each CRA notification was submitted, as an admin recorded it.
    pub submitted: PerDeadline,
    /// When each deadline's alert was raised: once per deadline.
    pub alerted: PerDeadline,
    /// When it was received.
    pub received_at: OffsetDateTime,
    /// When it last changed.
    pub updated_at: OffsetDateTime,
}

/// What a reporter sent, checked ([`ReportContent::parse`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportContent {
    /// The product, if the reporter named one (it exists: the store checks).
    pub product: Option<ProductId>,
    /// The version they saw, as they wrote it.
    pub version: Option<String>,
    /// What they found, in clear.
    pub description: Option<String>,
    /// The details encrypted to the installation's published age recipient: an ASCII-armored
    /// age file, kept exactly as sent. Only the holder of the identity reads it.
    pub encrypted: Option<String>,
    /// Their CVSS vector.
    pub cvss: Option<CvssVector>,
    /// How to reach them.
    pub contact: Option<String>,
}

/// The longest description, in characters.
pub const DESCRIPTION_MAX: usize = 32 * 1024;
/// The longest encrypted report (ASCII armor), in bytes.
pub const ENCRYPTED_MAX: usize = 64 * 1024;
/// The longest contact, in characters.
pub const CONTACT_MAX: usize = 256;
/// The longest version, in characters.
pub const VERSION_MAX: usize = 64;
/// The longest CVSS vector, in characters (a v4.0 vector with every metric is about 200).
pub const CVSS_MAX: usize = 256;

/// The rule of a multi-line text (a description) as a JSON Schema pattern: no control
/// character but tab, line feed and carriage return, and one character that is not white
/// space. `maxLength` goes beside it.
pub const MULTILINE_PATTERN: &str = "^[^\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f-\\x9f]*[^\\x00-\\x20\\x7f-\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000][^\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f-\\x9f]*$";

/// The rule of an encrypted report as a JSON Schema pattern: printable ASCII and line
/// breaks, as ASCII armor is. `maxLength` ([`ENCRYPTED_MAX`]) goes beside it.
pub const ARMOR_PATTERN: &str = "^[\\x20-\\x7e\\r\\n]*$";

/// Checks a one-line text field: not blank, at most `max` characters, no control character
/// (as `field::TEXT_PATTERN` states it).
///
/// # Errors
/// [`FieldError`] naming `field`.
pub fn line(field: &'static str, value: &str, max: usize) -> Result<String, FieldError> {
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
    Ok(value.to_owned())
}

/// Checks a multi-line text field: as [`line`], with tab, line feed and carriage return
/// allowed ([`MULTILINE_PATTERN`]).
///
/// # Errors
/// [`FieldError`] naming `field`.
pub fn multiline(field: &'static str, value: &str, max: usize) -> Result<String, FieldError> {
    if value.trim().is_empty() {
        return Err(FieldError::new(field, "must not be empty"));
    }
    if value.chars().count() > max {
        return Err(FieldError::new(
            field,
            format!("is longer than {max} characters"),
        ));
    }
    if value
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
    {
        return Err(FieldError::new(
            field,
            "must not contain control characters other than tab and line breaks",
        ));
    }
    Ok(value.to_owned())
}

impl ReportContent {
    /// Checks a report as the intake receives it. `encrypted` is only bounded here: whether
    /// it is an age file is the authority's check, which knows the published recipient.
    ///
    /// # Errors
    /// [`FieldError`]: `invalid_request` for a value the API document forbids (a product id
    /// that is not an id, text too long or holding control characters), `unprocessable` for a
    /// report with neither a description nor encrypted details. A CVSS vector that breaks its
    /// specification is a [`FieldError`] of field `cvss` (the caller answers `cvss_invalid`).
    pub fn parse(req: &crate::api::SubmitReport) -> Result<Self, FieldError> {
        let product = req
            .product
            .as_deref()
            // The message does not repeat the value: the intake is public, and says back no
            // markup it was sent, even inside JSON.
            .map(|p| {
                ProductId::parse(p).map_err(|_| {
                    FieldError::new(
                        "product",
                        "is not a product id: 1 to 64 of A-Z a-z 0-9 . _ -, the first a letter or digit",
                    )
                })
            })
            .transpose()?;
        let version = req
            .version
            .as_deref()
            .map(|v| line("version", v, VERSION_MAX))
            .transpose()?;
        let description = req
            .description
            .as_deref()
            .map(|d| multiline("description", d, DESCRIPTION_MAX))
            .transpose()?;
        let contact = req
            .contact
            .as_deref()
            .map(|c| line("contact", c, CONTACT_MAX))
            .transpose()?;
        let encrypted = match req.encrypted.as_deref() {
            Some(e) if e.len() > ENCRYPTED_MAX => {
                return Err(FieldError::new(
                    "encrypted",
                    format!("is longer than {ENCRYPTED_MAX} characters"),
                ));
            }
            Some(e) if !e.bytes().all(|b| matches!(b, b' '..=b'~' | b'\r' | b'\n')) => {
                return Err(FieldError::new(
                    "encrypted",
                    "is ASCII armor: printable ASCII and line breaks only",
                ));
            }
            Some(e) => Some(e.to_owned()),
            None => None,
        };
        if description.is_none() && encrypted.is_none() {
            return Err(FieldError::rule(
                "description",
                "a report needs a description, or its details in `encrypted`",
            ));
        }
        let cvss = req
            .cvss
            .as_deref()
            .map(|c| CvssVector::parse("cvss", c))
            .transpose()?;
        Ok(Self {
            product,
            version,
            description,
            encrypted,
            cvss,
            contact,
        })
    }

    /// The canonical bytes of the content (RFC 8785 JSON of its fields), whose SHA-256 the log
    /// keeps: whoever holds the report can show it is the one received, and the log holds
    /// none of its text.
    ///
    /// # Errors
    /// Never for the fields of a report (strings only); a message otherwise.
    pub fn canonical_bytes(&self) -> Result<Vec<u8>, String> {
        let mut map = serde_json::Map::new();
        let mut put = |k: &str, v: Option<&str>| {
            if let Some(v) = v {
                map.insert(k.into(), v.into());
            }
        };
        put("product", self.product.as_ref().map(ProductId::as_str));
        put("version", self.version.as_deref());
        put("description", self.description.as_deref());
        put("encrypted", self.encrypted.as_deref());
        put("cvss", self.cvss.as_ref().map(CvssVector::as_str));
        put("contact", self.contact.as_deref());
        crate::canonical::to_canonical_vec(&serde_json::Value::Object(map))
            .map_err(|e| e.to_string())
    }
}

/// A CVSS vector string, v3.1 or v4.0, checked strictly against its specification: the
/// version prefix, every metric known with an allowed value, none twice, every base metric
/// present. Metrics may come in any order, as FIRST's specifications allow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CvssVector(String);

/// The metrics of a CVSS version: (name, allowed values, mandatory).
type Metrics = &'static [(&'static str, &'static [&'static str], bool)];

/// CVSS v3.1, specification §6, Table 15.
const CVSS31: Metrics = &[
    ("AV", &["N", "A", "L", "P"], true),
    ("AC", &["L", "H"], true),
    ("PR", &["N", "L", "H"], true),
    ("UI", &["N", "R"], true),
    ("S", &["U", "C"], true),
    ("C", &["H", "L", "N"], true),
    ("I", &["H", "L", "N"], true),
    ("A", &["H", "L", "N"], true),
    ("E", &["X", "U", "P", "F", "H"], false),
    ("RL", &["X", "O", "T", "W", "U"], false),
    ("RC", &["X", "U", "R", "C"], false),
    ("CR", &["X", "L", "M", "H"], false),
    ("IR", &["X", "L", "M", "H"], false),
    ("AR", &["X", "L", "M", "H"], false),
    ("MAV", &["X", "N", "A", "L", "P"], false),
    ("MAC", &["X", "L", "H"], false),
    ("MPR", &["X", "N", "L", "H"], false),
    ("MUI", &["X", "N", "R"], false),
    ("MS", &["X", "U", "C"], false),
    ("MC", &["X", "N", "L", "H"], false),
    ("MI", &["X", "N", "L", "H"], false),
    ("MA", &["X", "N", "L", "H"], false),
];

/// CVSS v4.0, specification §7, Table 23.
const CVSS40: Metrics = &[
    ("AV", &["N", "A", "L", "P"], true),
    ("AC", &["L", "H"], true),
    ("AT", &["N", "P"], true),
    ("PR", &["N", "L", "H"], true),
    ("UI", &["N", "P", "A"], true),
    ("VC", &["H", "L", "N"], true),
    ("VI", &["H", "L", "N"], true),
    ("VA", &["H", "L", "N"], true),
    ("SC", &["H", "L", "N"], true),
    ("SI", &["H", "L", "N"], true),
    ("SA", &["H", "L", "N"], true),
    ("E", &["X", "A", "P", "U"], false),
    ("CR", &["X", "H", "M", "L"], false),
    ("IR", &["X", "H", "M", "L"], false),
    ("AR", &["X", "H", "M", "L"], false),
    ("MAV", &["X", "N", "A", "L", "P"], false),
    ("MAC", &["X", "L", "H"], false),
    ("MAT", &["X", "N", "P"], false),
    ("MPR", &["X", "N", "L", "H"], false),
    ("MUI", &["X", "N", "P", "A"], false),
    ("MVC", &["X", "H", "L", "N"], false),
    ("MVI", &["X", "H", "L", "N"], false),
    ("MVA", &["X", "H", "L", "N"], false),
    ("MSC", &["X", "H", "L", "N"], false),
    ("MSI", &["X", "S", "H", "L", "N"], false),
    ("MSA", &["X", "S", "H", "L", "N"], false),
    ("S", &["X", "N", "P"], false),
    ("AU", &["X", "N", "Y"], false),
    ("R", &["X", "A", "U", "I"], false),
    ("V", &["X", "D", "C"], false),
    ("RE", &["X", "L", "M", "H"], false),
    ("U", &["X", "Clear", "Green", "Amber", "Red"], false),
];

impl CvssVector {
    /// Checks `text` as the request's field `field`.
    ///
    /// # Errors
    /// [`FieldError`] (unprocessable) naming what is wrong: the version, a metric, a value, a
    /// metric twice, a base metric missing.
    pub fn parse(field: &'static str, text: &str) -> Result<Self, FieldError> {
        let bad = |why: String| FieldError::rule(field, why);
        if text.len() > CVSS_MAX {
            return Err(bad(format!("is longer than {CVSS_MAX} characters")));
        }
        let (metrics, rest) = if let Some(rest) = text.strip_prefix("CVSS:3.1/") {
            (CVSS31, rest)
        } else if let Some(rest) = text.strip_prefix("CVSS:4.0/") {
            (CVSS40, rest)
        } else {
            return Err(bad(
                "is not a CVSS vector: it must start with `CVSS:3.1/` or `CVSS:4.0/`".into(),
            ));
        };
        let mut seen = vec![false; metrics.len()];
        for part in rest.split('/') {
            let (name, value) = part.split_once(':').ok_or_else(|| {
                bad(format!(
                    "`{}` is not a metric: a metric is `NAME:VALUE`",
                    crate::clock::truncate(part, 16)
                ))
            })?;
            let (i, (_, values, _)) = metrics
                .iter()
                .enumerate()
                .find(|(_, (n, _, _))| *n == name)
                .ok_or_else(|| {
                    bad(format!(
                        "`{}` is not a metric of this CVSS version",
                        crate::clock::truncate(name, 16)
                    ))
                })?;
            if !values.contains(&value) {
                return Err(bad(format!(
                    "metric {name} takes {}, not `{}`",
                    values.join(", "),
                    crate::clock::truncate(value, 16)
                )));
            }
            if std::mem::replace(&mut seen[i], true) {
                return Err(bad(format!("metric {name} appears twice")));
            }
        }
        let missing: Vec<&str> = metrics
            .iter()
            .zip(&seen)
            .filter(|((_, _, mandatory), seen)| *mandatory && !**seen)
            .map(|((n, _, _), _)| *n)
            .collect();
        if !missing.is_empty() {
            return Err(bad(format!("base metrics missing: {}", missing.join(", "))));
        }
        Ok(Self(text.to_owned()))
    }

    /// The vector.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A package URL (the purl specification): `pkg:TYPE/[NAMESPACE/]NAME[@VERSION][?QUALIFIERS]
/// [#SUBPATH]`, of printable ASCII, its parts percent-encoded where needed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageUrl(String);

/// The longest package URL or version range accepted.
pub const COMPONENT_MAX: usize = 512;

fn percent_encoded_ok(part: &str) -> bool {
    let bytes = part.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3);
            if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                return false;
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    true
}

impl PackageUrl {
    /// Checks `text` as the request's field `field`.
    ///
    /// # Errors
    /// [`FieldError`] (unprocessable) naming the part that breaks the specification.
    pub fn parse(field: &'static str, text: &str) -> Result<Self, FieldError> {
        let bad = |why: &str| FieldError::rule(field, format!("is not a package URL: {why}"));
        if text.len() > COMPONENT_MAX || !text.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(bad(&format!(
                "it must be at most {COMPONENT_MAX} printable ASCII characters"
            )));
        }
        let rest = text
            .strip_prefix("pkg:")
            .ok_or_else(|| bad("it must start with `pkg:`"))?;
        let (rest, subpath) = rest.split_once('#').unwrap_or((rest, ""));
        let (rest, qualifiers) = rest.split_once('?').unwrap_or((rest, ""));
        let rest = rest.trim_start_matches('/');
        let (ty, path) = rest
            .split_once('/')
            .ok_or_else(|| bad("it needs a type and a name, `pkg:TYPE/NAME`"))?;
        let type_ok = ty.bytes().next().is_some_and(|b| b.is_ascii_alphabetic())
            && ty
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'+' | b'-'));
        if !type_ok {
            return Err(bad(
                "its type is letters, digits, `.`, `+` and `-`, and starts with a letter",
            ));
        }
        // The version follows the last `@` of the path (a namespace may not hold one raw).
        let (path, version) = match path.rsplit_once('@') {
            Some((_, "")) => return Err(bad("its version is empty")),
            Some((p, v)) => (p, v),
            None => (path, ""),
        };
        let name = path.trim_end_matches('/').rsplit('/').next().unwrap_or("");
        if name.is_empty() {
            return Err(bad("its name is empty"));
        }
        for (what, part) in [
            ("path", path),
            ("version", version),
            ("qualifiers", qualifiers),
            ("subpath", subpath),
        ] {
            if !percent_encoded_ok(part) {
                return Err(bad(&format!("its {what} holds a `%` that is not `%XX`")));
            }
        }
        if !qualifiers.is_empty() {
            let mut keys = Vec::new();
            for pair in qualifiers.split('&') {
                let (key, value) = pair
                    .split_once('=')
                    .ok_or_else(|| bad("a qualifier is `key=value`"))?;
                let key_ok = key.bytes().next().is_some_and(|b| b.is_ascii_alphabetic())
                    && key
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
                if !key_ok || value.is_empty() {
                    return Err(bad(
                        "a qualifier's key is letters, digits, `.`, `-` and `_`, starts with a \
                         letter, and has a value",
                    ));
                }
                let key = key.to_ascii_lowercase();
                if keys.contains(&key) {
                    return Err(bad("a qualifier appears twice"));
                }
                keys.push(key);
            }
        }
        Ok(Self(text.to_owned()))
    }

    /// The package URL.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The type and the path (namespace and name) of a parsed package URL, each part after
    /// the `pkg:` prefix, its version, qualifiers and subpath set apart.
    fn parts(&self) -> (&str, &str, Option<&str>) {
        // `parse` checked the shape, so each split below finds what it looks for.
        let rest = self.0.strip_prefix("pkg:").unwrap_or(&self.0);
        let rest = rest.split_once('#').map_or(rest, |(r, _)| r);
        let rest = rest.split_once('?').map_or(rest, |(r, _)| r);
        let rest = rest.trim_start_matches('/');
        let (ty, path) = rest.split_once('/').unwrap_or(("", rest));
        match path.rsplit_once('@') {
            Some((path, version)) => (ty, path, Some(version)),
            None => (ty, path, None),
        }
    }

    /// The key that matches a package across versions: `pkg:TYPE/NAMESPACE/NAME` with the type
    /// in lowercase, the namespace and name percent-decoded (`%40scope` is `@scope`), and no
    /// version, qualifiers or subpath. A release's components are indexed under it, and a
    /// report's component is looked up by it.
    pub fn key(&self) -> String {
        let (ty, path, _) = self.parts();
        let segments: Vec<String> = path
            .split('/')
            .filter(|s| !s.is_empty())
            .map(percent_decoded)
            .collect();
        format!("pkg:{}/{}", ty.to_ascii_lowercase(), segments.join("/"))
    }

    /// The version the package URL names, percent-decoded, if it names one.
    pub fn version(&self) -> Option<String> {
        self.parts().2.map(percent_decoded)
    }
}

/// `text` with its `%XX` escapes decoded, or as written if they do not decode to UTF-8.
fn percent_decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match escaped {
            Some(b) => {
                out.push(b);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8(out).unwrap_or_else(|_| text.to_owned())
}

/// A version range in the `vers` notation of the package URL project:
/// `vers:SCHEME/CONSTRAINT|CONSTRAINT…`, each constraint a comparator (`=`, `!=`, `<`, `<=`,
/// `>`, `>=`, none for `=`) and a version, or `*` alone for every version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionRange(String);

impl VersionRange {
    /// Checks `text` as the request's field `field`.
    ///
    /// # Errors
    /// [`FieldError`] (unprocessable) naming what breaks the notation.
    pub fn parse(field: &'static str, text: &str) -> Result<Self, FieldError> {
        let bad = |why: &str| FieldError::rule(field, format!("is not a `vers` range: {why}"));
        if text.len() > COMPONENT_MAX || !text.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(bad(&format!(
                "it must be at most {COMPONENT_MAX} printable ASCII characters"
            )));
        }
        let rest = text
            .strip_prefix("vers:")
            .ok_or_else(|| bad("it must start with `vers:`"))?;
        let (scheme, constraints) = rest
            .split_once('/')
            .ok_or_else(|| bad("it is `vers:SCHEME/CONSTRAINTS`"))?;
        let scheme_ok = scheme
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase())
            && scheme.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'+' | b'-')
            });
        if !scheme_ok {
            return Err(bad(
                "its scheme is lowercase letters, digits, `.`, `+` and `-`",
            ));
        }
        if constraints == "*" {
            return Ok(Self(text.to_owned()));
        }
        let mut versions = Vec::new();
        for constraint in constraints.split('|') {
            let version = ["!=", "<=", ">=", "<", ">", "="]
                .iter()
                .find_map(|c| constraint.strip_prefix(c))
                .unwrap_or(constraint);
            if version.is_empty() || version.contains(['<', '>', '=', '!', '*']) {
                return Err(bad(
                    "each constraint is a comparator (=, !=, <, <=, >, >=) and a version, or `*` alone",
                ));
            }
            if !percent_encoded_ok(version) {
                return Err(bad("a version holds a `%` that is not `%XX`"));
            }
            if versions.contains(&version) {
                return Err(bad("a version appears in two constraints"));
            }
            versions.push(version);
        }
        Ok(Self(text.to_owned()))
    }

    /// The range.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `version` is in the range, evaluated as the `vers` specification says
    /// ("Checking if a version is contained within a range"): `*` holds every version; a
    /// version equal to that of a `=`, `<=` or `>=` constraint is in, one equal to that of a
    /// `!=` constraint is out; then the other constraints, in version order, are read as
    /// intervals: a leading `<`/`<=` bounds all below it, a trailing `>`/`>=` all above it, and
    /// a `>`/`>=` followed by a `<`/`<=` the versions between. A range of `!=` constraints
    /// alone holds every other version. `version` is written as in the range, unescaped.
    ///
    /// `None` when the range's scheme is not one Touchmark can compare (see
    /// [`crate::vers::Scheme`]: `semver`, `cargo`, `npm`, `generic`), or when `version` or a
    /// version of the range is not a version of its scheme.
    pub fn contains(&self, version: &str) -> Option<bool> {
        let rest = self.0.strip_prefix("vers:")?;
        let (scheme, constraints) = rest.split_once('/')?;
        let scheme = crate::vers::Scheme::of(scheme)?;
        // The tested version must be one of the scheme even when the range is `*`.
        scheme.compare(version, version)?;
        if constraints == "*" {
            return Some(true);
        }
        let mut parsed: Vec<(&str, String)> = Vec::new();
        for constraint in constraints.split('|') {
            let (comparator, v) = ["!=", "<=", ">=", "<", ">", "="]
                .iter()
                .find_map(|c| constraint.strip_prefix(c).map(|v| (*c, v)))
                .unwrap_or(("=", constraint));
            let v = percent_decoded(v);
            let order = scheme.compare(version, &v)?;
            match (comparator, order) {
                ("=" | "<=" | ">=", std::cmp::Ordering::Equal) => return Some(true),
                ("!=", std::cmp::Ordering::Equal) => return Some(false),
                _ => {}
            }
            parsed.push((comparator, v));
        }
        let only_unequal = parsed.iter().all(|(c, _)| *c == "!=");
        let mut bounds: Vec<(&str, String)> = parsed
            .into_iter()
            .filter(|(c, _)| !matches!(*c, "=" | "!="))
            .collect();
        if bounds.is_empty() {
            return Some(only_unequal);
        }
        // Every version was compared with the tested one above, so each is of the scheme.
        bounds.sort_by(|a, b| {
            scheme
                .compare(&a.1, &b.1)
                .unwrap_or(std::cmp::Ordering::Equal)
        });
        let below = |c: &str| matches!(c, "<" | "<=");
        let above = |c: &str| matches!(c, ">" | ">=");
        let order = |v: &str| scheme.compare(version, v);
        let last = bounds.len() - 1;
        for (i, (comparator, v)) in bounds.iter().enumerate() {
            if i == 0 && below(comparator) && order(v)? == std::cmp::Ordering::Less {
                return Some(true);
            }
            if i == last && above(comparator) && order(v)? == std::cmp::Ordering::Greater {
                return Some(true);
            }
            if let Some((next, w)) = bounds.get(i + 1)
                && above(comparator)
                && below(next)
                && order(v)? == std::cmp::Ordering::Greater
                && order(w)? == std::cmp::Ordering::Less
            {
                return Some(true);
            }
        }
        Some(false)
    }
}

/// A report's link to a product, optionally one of its releases, and optionally an SBOM
/// component: what `touchmark vuln affected` will join to the units that run the firmware.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// The report.
    pub report: String,
    /// The product.
    pub product: ProductId,
    /// The release's id, when the link names one (`releases.id`, which `unit_firmware`
    /// names for every unit that received it).
    pub release: Option<String>,
    /// That release's version, as its `release.created` names it.
    pub version: Option<String>,
    /// The SBOM component, a package URL.
    pub purl: Option<PackageUrl>,
    /// The component's affected versions.
    pub range: Option<VersionRange>,
    /// What the link says of the product or release: affected (the default), fixed, or not
    /// affected. Only `affected` links count in the affected units.
    pub status: LinkStatus,
    /// Why a `not_affected` product or release is not, as CSAF's VEX flags name it; set
    /// exactly when the status is `not_affected` ([`check_link_status`]).
    pub justification: Option<Justification>,
    /// When it was linked.
    pub linked_at: OffsetDateTime,
}

/// What a link states about its product or release, as a CSAF advisory's product status
/// says it (`docs/vulnerabilities.md`, "Advisories").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LinkStatus {
    /// It is affected: its units count in `affected`; CSAF `known_affected`.
    Affected,
    /// It contains the fix; CSAF `fixed`.
    Fixed,
    /// It is not affected, for the link's justification; CSAF `known_not_affected`.
    NotAffected,
}

impl LinkStatus {
    /// The three.
    pub const ALL: [LinkStatus; 3] = [Self::Affected, Self::Fixed, Self::NotAffected];

    /// The name as stored, logged and sent.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Affected => "affected",
            Self::Fixed => "fixed",
            Self::NotAffected => "not_affected",
        }
    }

    /// Parses a name.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

impl fmt::Display for LinkStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a product is not affected: the labels of CSAF 2.0's flags (§3.2.3.5), which are the
/// VEX justifications.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Justification {
    /// The vulnerable component is not in the product.
    ComponentNotPresent,
    /// The component is, but not the vulnerable code.
    VulnerableCodeNotPresent,
    /// The vulnerable code is present but never executed.
    VulnerableCodeNotInExecutePath,
    /// The vulnerable code cannot be controlled by an adversary.
    VulnerableCodeCannotBeControlledByAdversary,
    /// The product has built-in protections that prevent exploitation.
    InlineMitigationsAlreadyExist,
}

impl Justification {
    /// The five.
    pub const ALL: [Justification; 5] = [
        Self::ComponentNotPresent,
        Self::VulnerableCodeNotPresent,
        Self::VulnerableCodeNotInExecutePath,
        Self::VulnerableCodeCannotBeControlledByAdversary,
        Self::InlineMitigationsAlreadyExist,
    ];

    /// The CSAF flag label, as stored, logged and sent.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ComponentNotPresent => "component_not_present",
            Self::VulnerableCodeNotPresent => "vulnerable_code_not_present",
            Self::VulnerableCodeNotInExecutePath => "vulnerable_code_not_in_execute_path",
            Self::VulnerableCodeCannotBeControlledByAdversary => {
                "vulnerable_code_cannot_be_controlled_by_adversary"
            }
            Self::InlineMitigationsAlreadyExist => "inline_mitigations_already_exist",
        }
    }

    /// Parses a label.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|j| j.as_str() == text)
    }

    /// The impact statement a VEX document gives with the flag (CSAF 2.0 §3.2.3.12, and its
    /// mandatory test 6.1.27.9): the justification in words.
    pub fn impact_statement(self) -> &'static str {
        match self {
            Self::ComponentNotPresent => "The vulnerable component is not present in the product.",
            Self::VulnerableCodeNotPresent => {
                "The vulnerable code is not present in the product's component."
            }
            Self::VulnerableCodeNotInExecutePath => {
                "The vulnerable code is present but cannot be executed in the product."
            }
            Self::VulnerableCodeCannotBeControlledByAdversary => {
                "The vulnerable code cannot be controlled by an adversary in the product."
            }
            Self::InlineMitigationsAlreadyExist => {
                "The product has built-in protections that prevent exploitation."
            }
        }
    }
}

/// Checks a link's status and justification together: `not_affected` needs a justification
/// (a VEX statement without one is not a statement: CSAF's mandatory test 6.1.27.9), the
/// other statuses take none, and `fixed` names a release (a fix is in a version).
///
/// # Errors
/// [`FieldError`] (unprocessable) naming the field at fault.
pub fn check_link_status(
    status: LinkStatus,
    justification: Option<Justification>,
    has_release: bool,
) -> Result<(), FieldError> {
    match (status, justification) {
        (LinkStatus::NotAffected, None) => Err(FieldError::rule(
            "justification",
            "a not_affected link needs a justification: component_not_present, \
             vulnerable_code_not_present, vulnerable_code_not_in_execute_path, \
             vulnerable_code_cannot_be_controlled_by_adversary or \
             inline_mitigations_already_exist",
        )),
        (LinkStatus::Affected | LinkStatus::Fixed, Some(_)) => Err(FieldError::rule(
            "justification",
            "only a not_affected link takes a justification",
        )),
        (LinkStatus::Fixed, None) if !has_release => Err(FieldError::rule(
            "status",
            "a fixed link names the release that holds the fix: give `release`",
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn cvss_vectors_are_checked_metric_by_metric() {
        let accepted = [
            "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
            "CVSS:3.1/AC:L/AV:N/PR:N/UI:N/S:U/C:H/I:H/A:H",
            "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H/E:X/RL:O/MI:X/MA:N",
            "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N",
            "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N/E:A/MSI:S/U:Red",
        ];
        for v in accepted {
            assert_eq!(CvssVector::parse("cvss", v).unwrap().as_str(), v);
        }
        let refused = [
            ("CVSS:3.0/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", "start with"),
            ("cvss:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", "start with"),
            ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H", "missing: A"),
            (
                "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H/",
                "not a metric",
            ),
            ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H/AV:L", "twice"),
            (
                "CVSS:3.1/AV:X/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
                "metric AV takes",
            ),
            (
                "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H/AT:N",
                "not a metric",
            ),
            (
                "CVSS:4.0/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
                "metric S takes",
            ),
            ("CVSS:4.0/AV:N/AC:L/PR:N/UI:N/C:H/I:H/A:H", "not a metric"),
            (
                "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N/MSI:s",
                "takes",
            ),
            ("", "start with"),
        ];
        for (v, why) in refused {
            let e = CvssVector::parse("cvss", v).unwrap_err();
            assert!(e.reason.contains(why), "{v}: {e}");
            assert_eq!(e.code(), crate::ErrorCode::Unprocessable);
        }
    }

    #[test]
    fn package_urls_and_version_ranges() {
        for ok in [
            "pkg:cargo/rustls@0.23.5",
            "pkg:github/zephyrproject-rtos/zephyr@v3.6.0",
            "pkg:generic/mbedtls@3.5.0?download_url=https%3A%2F%2Fexample.com",
            "pkg:maven/org.apache/log4j-core@2.14.1#sub/path",
            "pkg:npm/%40scope/name",
        ] {
            assert!(PackageUrl::parse("purl", ok).is_ok(), "{ok}");
        }
        for bad in [
            "cargo/rustls",
            "pkg:cargo",
            "pkg:1cargo/rustls",
            "pkg:cargo/",
            "pkg:cargo/rustls@",
            "pkg:cargo/rus tls",
            "pkg:cargo/a%zz",
            "pkg:cargo/a?x",
            "pkg:cargo/a?x=1&X=2",
        ] {
            assert!(PackageUrl::parse("purl", bad).is_err(), "{bad}");
        }
        for ok in [
            "vers:cargo/>=0.23.0|<0.23.6",
            "vers:semver/*",
            "vers:generic/1.2.3",
            "vers:pypi/!=1.0|>=2.0",
        ] {
            assert!(VersionRange::parse("range", ok).is_ok(), "{ok}");
        }
        for bad in [
            ">=1.0",
            "vers:/1.0",
            "vers:Cargo/1.0",
            "vers:cargo/",
            "vers:cargo/>=",
            "vers:cargo/1.0|1.0",
            "vers:cargo/*|1.0",
            "vers:cargo/=>1.0",
        ] {
            assert!(VersionRange::parse("range", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn package_url_keys_and_versions() {
        let cases = [
            (
                "pkg:cargo/rustls@0.23.5",
                "pkg:cargo/rustls",
                Some("0.23.5"),
            ),
            ("pkg:Cargo/rustls", "pkg:cargo/rustls", None),
            (
                "pkg:npm/%40scope/name@1.0.0-rc.1",
                "pkg:npm/@scope/name",
                Some("1.0.0-rc.1"),
            ),
            (
                "pkg:generic/mbedtls@3.5.0?download_url=https%3A%2F%2Fexample.com#a/b",
                "pkg:generic/mbedtls",
                Some("3.5.0"),
            ),
            (
                "pkg:maven/org.apache/log4j-core@2.14.1",
                "pkg:maven/org.apache/log4j-core",
                Some("2.14.1"),
            ),
            (
                "pkg:/github/zephyr/zephyr@v3.6.0%2Bx",
                "pkg:github/zephyr/zephyr",
                Some("v3.6.0+x"),
            ),
        ];
        for (purl, key, version) in cases {
            let p = PackageUrl::parse("purl", purl).unwrap();
            assert_eq!(p.key(), key, "{purl}");
            assert_eq!(p.version().as_deref(), version, "{purl}");
        }
    }

    #[test]
    fn version_ranges_contain_versions() {
        // (range, version, in it?): the edges of each comparator, intervals, `*`, `!=`.
        let cases: &[(&str, &str, Option<bool>)] = &[
            ("vers:cargo/>=0.23.0|<0.23.6", "0.23.0", Some(true)),
            ("vers:cargo/>=0.23.0|<0.23.6", "0.23.5", Some(true)),
            ("vers:cargo/>=0.23.0|<0.23.6", "0.23.6", Some(false)),
            ("vers:cargo/>=0.23.0|<0.23.6", "0.22.9", Some(false)),
            ("vers:cargo/>=0.23.0|<0.23.6", "0.23.6-rc.1", Some(true)),
            ("vers:cargo/>=0.23.0|<0.23.6", "0.23.0-rc.1", Some(false)),
            // Constraints need not be written in order.
            ("vers:npm/<0.23.6|>=0.23.0", "0.23.3", Some(true)),
            ("vers:semver/>1.0.0", "1.0.0", Some(false)),
            ("vers:semver/>1.0.0", "1.0.1", Some(true)),
            ("vers:semver/<=1.0.0", "1.0.0", Some(true)),
            ("vers:semver/<=1.0.0", "1.0.0-alpha", Some(true)),
            ("vers:semver/<1.0.0", "1.0.0", Some(false)),
            ("vers:semver/1.2.3", "1.2.3", Some(true)),
            ("vers:semver/1.2.3", "1.2.3+build", Some(true)),
            ("vers:semver/1.2.3", "1.2.4", Some(false)),
            ("vers:semver/=1.2.3|=1.2.5", "1.2.5", Some(true)),
            ("vers:semver/*", "9.9.9", Some(true)),
            ("vers:semver/!=1.0.0", "1.0.0", Some(false)),
            ("vers:semver/!=1.0.0", "1.0.1", Some(true)),
            ("vers:semver/!=1.0.5|>=1.0.0|<2.0.0", "1.0.5", Some(false)),
            ("vers:semver/!=1.0.5|>=1.0.0|<2.0.0", "1.0.6", Some(true)),
            // Two intervals, with a gap between them.
            ("vers:semver/<1.0.0|>=2.0.0|<3.0.0", "0.9.0", Some(true)),
            ("vers:semver/<1.0.0|>=2.0.0|<3.0.0", "1.5.0", Some(false)),
            ("vers:semver/<1.0.0|>=2.0.0|<3.0.0", "2.5.0", Some(true)),
            ("vers:semver/<1.0.0|>=2.0.0|<3.0.0", "3.0.0", Some(false)),
            ("vers:semver/>=1.0.0|<2.0.0|>=3.0.0", "4.0.0", Some(true)),
            ("vers:semver/>=1.0.0|<2.0.0|>=3.0.0", "2.5.0", Some(false)),
            ("vers:generic/>=1.0|<1.10", "1.9", Some(true)),
            ("vers:generic/>=1.0|<1.10", "1.10.0", Some(false)),
            // Not comparable: an unknown scheme, a version not of the scheme.
            ("vers:pypi/>=1.0", "1.1", None),
            ("vers:deb/*", "1.1", None),
            ("vers:semver/*", "1.1", None),
            ("vers:semver/>=1.0", "1.1.0", None),
            ("vers:cargo/>=1.0.0", "v1.1.0", None),
        ];
        for (range, version, expected) in cases {
            let r = VersionRange::parse("range", range).unwrap();
            assert_eq!(r.contains(version), *expected, "{version} in {range}");
        }
    }

    #[test]
    fn text_fields() {
        assert!(multiline("description", "line 1\nline 2\r\n\tdone", 100).is_ok());
        assert!(multiline("description", "bell\u{7}", 100).is_err());
        assert!(multiline("description", " \n ", 100).is_err());
        assert!(line("contact", "a\nb", 100).is_err());
        assert!(line("contact", &"x".repeat(101), 100).is_err());
        assert!(line("contact", "<script>alert(1)</script>", 100).is_ok());
    }

    #[test]
    fn the_content_hash_covers_every_field() {
        let content = ReportContent {
            product: Some(ProductId::parse("sensor").unwrap()),
            version: Some("1.0".into()),
            description: Some("x".into()),
            encrypted: None,
            cvss: None,
            contact: Some("mailto:r@example.com".into()),
        };
        let bytes = String::from_utf8(content.canonical_bytes().unwrap()).unwrap();
        assert_eq!(
            bytes,
            r#"{"contact":"mailto:r@example.com","description":"x","product":"sensor","version":"1.0"}"#
        );
    }
}
