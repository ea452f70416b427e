//! The vulnerability intake's JSON shapes (issue 18): a researcher's report and its receipt,
//! the status the researcher reads with the secret, and the admins' views and changes.

use serde::{Deserialize, Serialize};

#[cfg(feature = "openapi")]
use utoipa::ToSchema;

/// A vulnerability report, as a researcher sends it to the public intake. Every field is
/// optional but one: a `description`, or the details in `encrypted`. The text is stored as
/// sent and only ever answered inside JSON.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SubmitReport {
    /// The product's id, if known (`GET /v1/products` lists them for admins; a product's id is
    /// in its devices' certificates).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product: Option<String>,
    /// The version found vulnerable, as the researcher saw it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// What was found, how to reproduce it, its impact: plain text, several lines allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The details encrypted to the recipient at `GET /v1/vulnerability-reports/encryption-key`
    /// (`age -r RECIPIENT -a`): an ASCII-armored age file, stored as sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encrypted: Option<String>,
    /// A CVSS v3.1 or v4.0 vector (`CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cvss: Option<String>,
    /// How to reach the researcher: an email address, a URL, a handle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact: Option<String>,
}

/// What the intake answers: the report's tracking id, and the secret that reads its status.
/// The secret is shown once and never stored; keep it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ReportReceipt {
    /// The tracking id, `vr-<16 hex>`.
    pub id: String,
    /// The secret: send it as `Authorization: Bearer <secret>` to
    /// `GET /v1/vulnerability-reports/{id}/status`.
    pub secret: String,
    /// `received`.
    pub state: String,
    /// When it was received (RFC 3339).
    pub received_at: String,
}

/// What a researcher reads about their report with its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ReportStatus {
    /// The tracking id.
    pub id: String,
    /// `received`, `triaged`, `confirmed`, `rejected`, `fixed` or `disclosed`.
    pub state: String,
    /// When it was received.
    pub received_at: String,
    /// When it last changed.
    pub updated_at: String,
}

/// One CRA deadline of a classified report, judged now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct DeadlineBody {
    /// `early_warning`, `notification` or `final_report`.
    pub deadline: String,
    /// When it is due; absent while unknown (a vulnerability's final report before its
    /// corrective measure).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due_at: Option<String>,
    /// When it was submitted, if it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub submitted_at: Option<String>,
    /// `waiting`, `pending`, `approaching`, `overdue`, `met` or `late`.
    pub status: String,
}

/// A report's link to a product, a release and an SBOM component.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct LinkBody {
    /// The product.
    pub product: String,
    /// The release's id, when the link names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<String>,
    /// That release's version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The component's package URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purl: Option<String>,
    /// The component's affected versions (`vers`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range: Option<String>,
    /// `affected`, `fixed` or `not_affected`.
    pub status: String,
    /// For `not_affected`: why, as a CSAF flag label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub justification: Option<String>,
    /// When it was linked.
    pub linked_at: String,
}

/// A report as admins see it: what the researcher sent, its state, its CRA clocks and links.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ReportBody {
    /// The tracking id.
    pub id: String,
    /// Its state.
    pub state: String,
    /// The states an admin may move it to from this one.
    #[serde(default)]
    pub next_states: Vec<String>,
    /// The product the researcher named.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product: Option<String>,
    /// The version they named.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Their description, as sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Their encrypted details, as sent (ASCII-armored age): `age -d -i IDENTITY`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encrypted: Option<String>,
    /// Their CVSS vector.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cvss: Option<String>,
    /// Their contact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact: Option<String>,
    /// SHA-256 of the content, as `vuln.received` logs it.
    pub content_sha256: String,
    /// `exploited_vulnerability` or `severe_incident`, once classified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class: Option<String>,
    /// When the manufacturer became aware of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aware_at: Option<String>,
    /// When its corrective measure became available.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub corrective_at: Option<String>,
    /// Its CRA deadlines, judged now; empty unless classified.
    pub deadlines: Vec<DeadlineBody>,
    /// Its links.
    pub links: Vec<LinkBody>,
    /// When it was received.
    pub received_at: String,
    /// When it last changed.
    pub updated_at: String,
}

/// Moves a report to another state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ChangeReportState {
    /// `triaged`, `confirmed`, `rejected`, `fixed` or `disclosed`.
    pub state: String,
    /// For `fixed`: when the corrective measure became available (RFC 3339), if earlier than
    /// now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub corrective_at: Option<String>,
}

/// Classifies a report under the CRA, which starts its clocks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ClassifyReport {
    /// `exploited_vulnerability` or `severe_incident`.
    pub class: String,
    /// When the manufacturer became aware of it (RFC 3339), if earlier than now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aware_at: Option<String>,
}

/// Records that a CRA notification was submitted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RecordSubmission {
    /// `early_warning`, `notification` or `final_report`.
    pub deadline: String,
    /// When it was submitted (RFC 3339), if earlier than now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub submitted_at: Option<String>,
}

/// Links a report to a product, optionally one of its releases and an SBOM component.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct LinkReport {
    /// The product's id.
    pub product: String,
    /// A release of the product, by its version (`1.2.0` or `1.2.0+7`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<String>,
    /// An SBOM component's package URL (`pkg:cargo/rustls@0.23.5`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purl: Option<String>,
    /// The component's affected versions, in `vers` (`vers:cargo/>=0.23.0|<0.23.6`); only
    /// with `purl`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range: Option<String>,
    /// What the link states: `affected` (the default: its units count as affected), `fixed`
    /// (the release holds the fix) or `not_affected` (with a `justification`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Why a `not_affected` product or release is not: `component_not_present`,
    /// `vulnerable_code_not_present`, `vulnerable_code_not_in_execute_path`,
    /// `vulnerable_code_cannot_be_controlled_by_adversary` or
    /// `inline_mitigations_already_exist` (CSAF 2.0's flag labels).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub justification: Option<String>,
}

/// Writes a report's CSAF 2.0 advisory (`docs/vulnerabilities.md`, "Advisories"): a draft, or
/// with `publish` its next revision, stored, logged and served under `/.well-known/csaf/`.
/// The reporter's description is never copied into it; `title` and `description` are the
/// public texts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct WriteAdvisory {
    /// Publish it as the next revision (stored, logged, served); otherwise a draft, stored
    /// and logged nowhere.
    #[serde(default)]
    pub publish: bool,
    /// A VEX document (the `csaf_vex` profile) rather than a security advisory.
    #[serde(default)]
    pub vex: bool,
    /// The vulnerability's CVE id (`CVE-2026-12345`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cve: Option<String>,
    /// The document's title: one line, at most 256 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// The vulnerability's public description: at most 8,192 characters, lines allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// This revision's summary in the revision history: one line, at most 1,024 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
}

/// The units a report affects, by serial, with counts per order, factory and release
/// (`docs/vulnerabilities.md`, "Affected units").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct AffectedBody {
    /// The report.
    pub report: String,
    /// How many units.
    pub total: u64,
    /// Of them, how many are revoked.
    pub revoked: u64,
    /// Units per order.
    pub by_order: std::collections::BTreeMap<String, u64>,
    /// Units per factory.
    pub by_factory: std::collections::BTreeMap<String, u64>,
    /// Units per release version (`*` for a product-wide link).
    pub by_release: std::collections::BTreeMap<String, u64>,
    /// Links that name an SBOM component that no release of their product holds in the
    /// link's version range: they add no unit.
    pub unresolved_links: u64,
    /// One page of the units, by serial then order: at most `limit` of them (1,000 unless the
    /// request says), after `after` when the request gives it.
    pub units: Vec<AffectedUnitBody>,
    /// The `after` of the next page (`SERIAL/ORDER`), when there may be one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// A page of the units a report affects, without the counts
/// (`GET …/{id}/affected/units`): what a client that has read them reads page after page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct AffectedUnitsBody {
    /// The report.
    pub report: String,
    /// The units, by serial then order: at most `limit` of them (1,000 unless the request
    /// says), after `after` when the request gives it.
    pub units: Vec<AffectedUnitBody>,
    /// The `after` of the next page (`SERIAL/ORDER`), when there may be one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// One affected unit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct AffectedUnitBody {
    /// The serial.
    pub serial: String,
    /// Its order.
    pub order: String,
    /// Its product.
    pub product: String,
    /// Its factory.
    pub factory: String,
    /// The release it runs, when a link names it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<String>,
    /// That release's version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Whether its certificate is revoked.
    pub revoked: bool,
}
